//! The format-neutral report model.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset};
use jejak_domain::Lang;
use serde::{Deserialize, Serialize, Serializer};

use super::RenderOptions;
use super::number::format_number;

/// A text in Indonesian and English.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Text {
    /// Indonesian.
    pub id: String,
    /// English.
    pub en: String,
}

impl Text {
    /// A text in both languages.
    pub fn new(id: impl Into<String>, en: impl Into<String>) -> Self {
        Text {
            id: id.into(),
            en: en.into(),
        }
    }

    /// A text that reads the same in both languages (a name, a code).
    pub fn same(text: impl Into<String>) -> Self {
        let text = text.into();
        Text {
            id: text.clone(),
            en: text,
        }
    }

    /// The text in `lang`.
    pub fn get(&self, lang: Lang) -> &str {
        lang.pick(&self.id, &self.en)
    }
}

/// A logo image for the letterhead (kop), e.g. the regency's coat of arms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Logo {
    /// The image's media type, e.g. `image/png`.
    pub media_type: String,
    /// The image file's bytes (serialised as a list of numbers; keep logos small).
    pub bytes: Vec<u8>,
}

/// The letterhead (kop surat) printed above a report, centered, one line each, e.g.
/// `PEMERINTAH KABUPATEN BANYUMAS` / `DINAS ARSIP DAN PERPUSTAKAAN` / `Jl. …`. The first
/// line is the most prominent. Configured per district.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Letterhead {
    /// The lines, top to bottom.
    pub lines: Vec<String>,
    /// An optional logo shown left of the lines in HTML (XLSX leaves it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo: Option<Logo>,
}

/// A report: a title, subtitle lines, a letterhead and its tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    /// A stable identifier used in file names, e.g. `rekap-bulanan-2026-11`.
    pub id: String,
    /// The title, e.g. "Rekap Bulanan Kabupaten" / "District Monthly Summary".
    pub title: Text,
    /// Lines under the title: period, library identity, …
    #[serde(default)]
    pub subtitle: Vec<Text>,
    /// The letterhead above everything.
    #[serde(default)]
    pub letterhead: Letterhead,
    /// The tables, in order.
    pub sections: Vec<Table>,
    /// When the report was generated, in the district's offset (shown in footers).
    #[schema(value_type = String, format = DateTime)]
    pub generated_at: DateTime<FixedOffset>,
    /// Wide tables (district matrices) print in A4 landscape.
    #[serde(default)]
    pub landscape: bool,
    /// Set on a suppressed export: counts `1..k` were replaced by `"<k"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed_below: Option<u32>,
    /// The signature block printed at the end (the village monthly report's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

/// The signature block at the end of a printed report, as Indonesian offices lay it
/// out: on the left the person who acknowledges it ("Mengetahui, Kepala Desa …"), on
/// the right the place and date and the person who made it (the library's manager), each
/// with room to sign, the name under it and the NIP where there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Signature {
    /// The place written before the date (the desa), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    /// The report's date, shown in the long form ("Senin, 2 November 2026").
    #[schema(value_type = String, format = Date)]
    pub date: chrono::NaiveDate,
    /// Who acknowledges the report (left).
    pub acknowledged_by: Signatory,
    /// Who made the report (right, under the place and date).
    pub made_by: Signatory,
}

/// One person of a [`Signature`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Signatory {
    /// The lines above the room to sign, e.g. "Mengetahui," / "Kepala Desa Dermaji".
    pub heading: Vec<Text>,
    /// The name under the room to sign; left as a line to fill in by hand when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The NIP in its usual groups (`19850312 201001 2 004`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nip: Option<String>,
}

impl Signature {
    /// The "place, date" line in `lang`: "Dermaji, 2 November 2026" (offices write the
    /// date of signing without its day of the week).
    pub fn place_and_date(&self, lang: Lang) -> String {
        let date = super::dates::day_month_year(self.date, lang);
        match &self.place {
            Some(place) => format!("{place}, {date}"),
            None => date,
        }
    }

    /// The block as plain lines for text formats (terminal, the end of an XLSX sheet):
    /// the place and date, then each signatory's heading, a blank line to sign on, the
    /// name (or a line to fill in) and the NIP.
    pub fn lines(&self, lang: Lang) -> Vec<String> {
        let mut lines = vec![self.place_and_date(lang)];
        for person in [&self.acknowledged_by, &self.made_by] {
            lines.push(String::new());
            lines.extend(person.heading.iter().map(|line| line.get(lang).to_string()));
            lines.push(String::new());
            lines.push(person.name_line());
            if let Some(nip) = &person.nip {
                lines.push(format!("NIP {nip}"));
            }
        }
        lines
    }
}

impl Signatory {
    /// The name, or a line to write it on by hand.
    pub fn name_line(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| "(................................)".to_string())
    }
}

/// One table of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Table {
    /// A stable identifier, e.g. `purpose_by_gender` (used in CSV file names).
    pub id: String,
    /// The title (also the XLSX sheet name, shortened to 31 characters).
    pub title: Text,
    /// The columns.
    pub columns: Vec<Column>,
    /// The rows; each has one cell per column.
    pub rows: Vec<Row>,
    /// Sentences printed under the table: how its figures are counted, when a reader of
    /// the table alone needs to know (the visit-counting rule). Not rows, so that the
    /// total stays the last row and machines reading the rows meet no prose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Text>,
}

/// A column: a key for machines, a label for people, and how its numbers read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Column {
    /// A stable identifier, e.g. `sessions`.
    pub key: String,
    /// The header label.
    pub label: Text,
    /// How the column's cells are shown.
    pub kind: ColumnKind,
}

impl Column {
    /// A column.
    pub fn new(key: impl Into<String>, label: Text, kind: ColumnKind) -> Self {
        Column {
            key: key.into(),
            label,
            kind,
        }
    }
}

/// How a column's cells are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "type", content = "places")]
pub enum ColumnKind {
    /// Free text (names, codes).
    Text,
    /// A count of people or sessions: whole numbers, subject to suppression.
    Count,
    /// A measure with this many decimal places (hours, MB, minutes).
    Decimal(u8),
    /// A fraction shown as a percentage with this many decimal places (`0.5` → 50,0%).
    Percent(u8),
    /// An ISO date (`2026-11-02`) held as text.
    Date,
}

impl ColumnKind {
    /// Whether the column holds numbers (right-aligned).
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            ColumnKind::Count | ColumnKind::Decimal(_) | ColumnKind::Percent(_)
        )
    }
}

/// One row of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Row {
    /// One cell per column.
    pub cells: Vec<Cell>,
    /// A highlight, e.g. a village silent for over 14 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emphasis: Option<Flag>,
    /// A total (or average) row, shown bold.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_total: bool,
}

impl Row {
    /// A plain row.
    pub fn new(cells: Vec<Cell>) -> Self {
        Row {
            cells,
            emphasis: None,
            is_total: false,
        }
    }

    /// A total row.
    pub fn total(cells: Vec<Cell>) -> Self {
        Row {
            is_total: true,
            ..Row::new(cells)
        }
    }

    /// The same row, highlighted.
    pub fn flagged(mut self, flag: Flag) -> Self {
        self.emphasis = Some(flag);
        self
    }
}

/// Why a row is highlighted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Flag {
    /// How strong the highlight is.
    pub severity: Severity,
    /// The reason, shown in the "Catatan"/"Note" column.
    pub reason: Text,
}

impl Flag {
    /// An alert (light red), e.g. silent for over 14 days.
    pub fn alert(reason: Text) -> Self {
        Flag {
            severity: Severity::Alert,
            reason,
        }
    }

    /// A warning (light yellow).
    pub fn warning(reason: Text) -> Self {
        Flag {
            severity: Severity::Warning,
            reason,
        }
    }
}

/// The strength of a row highlight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Light yellow.
    Warning,
    /// Light red.
    Alert,
}

/// A cell. In JSON: a string, a number (whole numbers without `.0`) or `null`.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Cell {
    /// Text, or a suppressed count (`<5`).
    Text(String),
    /// A number.
    Number(f64),
    /// Nothing (no data).
    Empty,
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Text(text) => serializer.serialize_str(text),
            Cell::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 =>
            {
                #[allow(clippy::cast_possible_truncation)]
                serializer.serialize_i64(*n as i64)
            }
            Cell::Number(n) => serializer.serialize_f64(*n),
            Cell::Empty => serializer.serialize_none(),
        }
    }
}

impl Cell {
    /// A text cell.
    pub fn text(text: impl Into<String>) -> Self {
        Cell::Text(text.into())
    }

    /// A number cell.
    pub fn number(value: impl Into<f64>) -> Self {
        Cell::Number(value.into())
    }
}

impl Report {
    /// The report as it leaves under `options`: itself, or a copy with small counts
    /// replaced by `"<k"` text cells and `suppressed_below` set.
    pub fn for_export(&self, options: &RenderOptions) -> Cow<'_, Report> {
        let Some(k) = options.suppress_below else {
            return Cow::Borrowed(self);
        };
        let mut report = self.clone();
        report.suppressed_below = Some(k);
        let shown = format!("<{k}");
        for table in &mut report.sections {
            for (index, column) in table.columns.iter().enumerate() {
                if column.kind != ColumnKind::Count {
                    continue;
                }
                for row in &mut table.rows {
                    if let Some(cell) = row.cells.get_mut(index)
                        && let Cell::Number(n) = *cell
                        && n > 0.0
                        && n < f64::from(k)
                    {
                        *cell = Cell::Text(shown.clone());
                    }
                }
            }
        }
        Cow::Owned(report)
    }

    /// The note telling readers of a suppressed export what `<k` means.
    pub(crate) fn suppression_note(&self, lang: Lang) -> Option<String> {
        self.suppressed_below.map(|k| match lang {
            Lang::Id => format!(
                "Angka 1 sampai {} ditampilkan sebagai <{k} untuk melindungi privasi.",
                k.saturating_sub(1)
            ),
            Lang::En => format!(
                "Counts from 1 to {} are shown as <{k} to protect privacy.",
                k.saturating_sub(1)
            ),
        })
    }
}

impl Table {
    /// Whether any row is flagged (the table then has a note column).
    pub(crate) fn has_flags(&self) -> bool {
        self.rows.iter().any(|row| row.emphasis.is_some())
    }

    /// The header labels in `lang`, with the note column when rows are flagged.
    pub(crate) fn header(&self, lang: Lang) -> Vec<String> {
        let mut header: Vec<String> = self
            .columns
            .iter()
            .map(|c| c.label.get(lang).to_string())
            .collect();
        if self.has_flags() {
            header.push(note_label(lang).to_string());
        }
        header
    }
}

/// The label of the column holding flag reasons.
pub(crate) fn note_label(lang: Lang) -> &'static str {
    lang.pick("Catatan", "Note")
}

/// A cell as people read it: id-ID or English numbers, percentages with `%`, dates in
/// the long form ("Senin, 2 November 2026").
pub(crate) fn human_cell(cell: &Cell, kind: ColumnKind, lang: Lang) -> String {
    match (cell, kind) {
        (Cell::Text(text), ColumnKind::Date) => {
            match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Ok(date) => super::dates::long_date(date, lang),
                Err(_) => text.clone(),
            }
        }
        (Cell::Text(text), _) => text.clone(),
        (Cell::Empty, _) => String::new(),
        (Cell::Number(n), ColumnKind::Count) => format_number(*n, 0, lang),
        (Cell::Number(n), ColumnKind::Decimal(places)) => format_number(*n, places, lang),
        (Cell::Number(n), ColumnKind::Percent(places)) => {
            format!("{}%", format_number(n * 100.0, places, lang))
        }
        // A number in a text or date column: shown plainly, as a count would be.
        (Cell::Number(n), ColumnKind::Text | ColumnKind::Date) => {
            let places = if n.fract() == 0.0 { 0 } else { 2 };
            format_number(*n, places, lang)
        }
    }
}

/// The generation time as people read it ("Senin, 2 November 2026 10:00 WIB"), with
/// the Indonesian zone name when the offset is one of WIB/WITA/WIT.
pub(crate) fn generated_text(at: &DateTime<FixedOffset>, lang: Lang) -> String {
    let zone = match at.offset().local_minus_utc() {
        25_200 => "WIB".to_string(),
        28_800 => "WITA".to_string(),
        32_400 => "WIT".to_string(),
        _ => format!("UTC{}", at.format("%:z")),
    };
    format!(
        "{} {} {zone}",
        super::dates::long_date(at.date_naive(), lang),
        at.format("%H:%M")
    )
}
