//! The check-in page's HTML: small server-drawn pages with inline CSS, no scripts, large
//! touch targets. Everything that comes from outside is escaped.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use jejak_domain::{AgeGroup, Gender, Lang, Purpose, Session, Zone};

use super::{Choices, LibrarianView, Refusal};

/// The most sessions the librarian screen lists, newest first, so the page stays
/// small on a busy day (the count above the table is always complete).
const MAX_ROWS: usize = 40;

const STYLE: &str = "\
*{box-sizing:border-box}\
body{font-family:'DejaVu Sans',Arial,Helvetica,sans-serif;font-size:18px;color:#111;background:#f4f6fa;margin:0}\
header{display:flex;flex-wrap:wrap;align-items:center;gap:12px;padding:8px 16px;background:#1f3864;color:#fff}\
header a{color:#fff;font-size:16px}\
header .brand{font-weight:bold;font-size:20px;margin-right:auto}\
main{max-width:960px;margin:0 auto;padding:8px 16px 32px}\
h1{font-size:26px;margin:14px 0 6px}\
h2{font-size:20px;margin:22px 0 8px}\
fieldset{border:0;margin:0 0 14px;padding:0}\
legend{font-weight:bold;font-size:20px;margin-bottom:8px}\
.hint{font-weight:normal;font-size:16px;color:#333}\
.tiles{display:flex;flex-wrap:wrap;gap:10px}\
.tile{display:flex;align-items:center;gap:10px;min-width:200px;min-height:60px;flex:1 1 200px;padding:10px 14px;border:2px solid #1f3864;border-radius:10px;background:#fff;cursor:pointer}\
.tile span{min-width:0;overflow-wrap:anywhere}\
.tile small{display:block;color:#444;font-size:14px}\
.tile input{width:30px;height:30px;margin:0;flex:none}\
input[type=text],input[type=number],input[type=password]{font-size:22px;padding:10px;min-height:56px;width:100%;max-width:360px;border:2px solid #1f3864;border-radius:8px}\
button{font-size:22px;min-height:60px;padding:10px 28px;border:0;border-radius:10px;background:#1f6f3f;color:#fff;cursor:pointer}\
button.secondary{background:#fff;color:#1f3864;border:2px solid #1f3864;font-size:18px;min-height:52px}\
button.finish{background:#c00000;font-size:30px;min-height:90px;width:100%;max-width:480px}\
.errors,.refused{background:#f8cbad;border-left:8px solid #c00000;padding:10px 14px;font-weight:bold}\
.notice{background:#e2efda;border-left:8px solid #1f6f3f;padding:10px 14px}\
.warn{background:#fff2cc;border-left:8px solid #bf8f00;padding:10px 14px}\
.big{font-size:56px;font-weight:bold;margin:8px 0}\
table{border-collapse:collapse;font-size:16px;background:#fff}\
th,td{border:1px solid #999;padding:6px 8px;text-align:left;vertical-align:top}\
th{background:#d9e1f2}\
td.n{text-align:right}\
.row{display:flex;flex-wrap:wrap;gap:12px;align-items:center;margin:14px 0}\
form.inline{display:inline;margin:0}";

/// Escapes text for HTML content and attribute values.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page around `body`: title, header with the language switch, optional refresh.
fn frame(lang: Lang, title: &str, path: &str, refresh_secs: Option<u32>, body: &str) -> String {
    let other = match lang {
        Lang::Id => ("en", "English"),
        Lang::En => ("id", "Bahasa Indonesia"),
    };
    let refresh = refresh_secs
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{refresh}\
         <title>{title} · Jejak</title><style>{STYLE}</style></head><body>\
         <header><span class=\"brand\">Jejak · {library_pc}</span>\
         <a id=\"lang-switch\" href=\"{path}?lang={other_code}\" lang=\"{other_code}\">{other_name}</a>\
         <a id=\"to-librarian\" href=\"/pustakawan\">{librarian}</a></header>\
         <main>{body}</main></body></html>\n",
        code = lang.code(),
        title = esc(title),
        library_pc = esc(lang.pick("Perpustakaan Desa", "Village Library")),
        path = esc(path),
        other_code = other.0,
        other_name = other.1,
        librarian = lang.pick("Pustakawan", "Librarian"),
    )
}

fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// A duration for people: "1 jam 5 menit" / "1 h 5 min".
pub(super) fn duration(secs: u64, lang: Lang) -> String {
    let minutes = secs / 60;
    let (h, m) = (minutes / 60, minutes % 60);
    match (h, m, lang) {
        (0, 0, _) => lang
            .pick("kurang dari 1 menit", "less than a minute")
            .to_string(),
        (0, m, Lang::Id) => format!("{m} menit"),
        (0, m, Lang::En) => format!("{m} min"),
        (h, m, Lang::Id) => format!("{h} jam {m} menit"),
        (h, m, Lang::En) => format!("{h} h {m} min"),
    }
}

/// A time of day in the library's zone.
fn clock_time(at: DateTime<Utc>, zone: Zone) -> String {
    at.with_timezone(&zone.offset()).format("%H:%M").to_string()
}

/// A date and time in the library's zone with the zone's name.
fn date_time(at: DateTime<Utc>, zone: Zone) -> String {
    format!(
        "{} {}",
        at.with_timezone(&zone.offset()).format("%d-%m-%Y %H:%M"),
        zone.label(Lang::Id)
    )
}

/// A few words about each purpose, so the choice is clear without an icon.
fn purpose_hint(purpose: Purpose, lang: Lang) -> &'static str {
    match purpose {
        Purpose::Pendidikan => {
            lang.pick("belajar, tugas sekolah, kursus", "study, homework, courses")
        }
        Purpose::Ekonomi => lang.pick("usaha, jualan, cari kerja", "business, selling, job search"),
        Purpose::Kesehatan => lang.pick("info kesehatan, BPJS", "health information"),
        Purpose::Komunikasi => lang.pick(
            "surel, pesan, media sosial",
            "e-mail, messages, social media",
        ),
        Purpose::Hobi => lang.pick(
            "hiburan, musik, video, game",
            "leisure, music, video, games",
        ),
        Purpose::Pemerintahan => lang.pick(
            "KTP, pajak, layanan desa",
            "ID card, taxes, public services",
        ),
        Purpose::LiterasiDigital => lang.pick(
            "belajar komputer & internet",
            "learning computers & the internet",
        ),
        Purpose::Lainnya => lang.pick("keperluan lain", "something else"),
    }
}

/// The check-in form. `choices` are what came back with an error (never the member
/// number); `thanks` greets the next patron after a Finish; `open` is the session open
/// now, which the check-in fills in (a login nobody checked in) or ends first.
pub(super) fn checkin_form(
    lang: Lang,
    csrf: &str,
    choices: &Choices,
    errors: Option<&[String]>,
    thanks: bool,
    open: Option<&Session>,
    zone: Zone,
) -> String {
    let mut body = String::new();
    if thanks {
        let _ = write!(
            body,
            "<p class=\"notice\" id=\"thanks\">{}</p>",
            lang.pick(
                "Terima kasih! Sesi sudah selesai.",
                "Thank you! The session has ended."
            )
        );
    }
    let _ = write!(
        body,
        "<h1>{}</h1><p class=\"hint\">{}</p>",
        lang.pick(
            "Selamat datang! Isi sebelum memakai komputer",
            "Welcome! Please fill in before using the computer"
        ),
        lang.pick(
            "Tidak ada nama yang dicatat. Isian ini untuk laporan perpustakaan.",
            "No names are recorded. This is for the library's reports."
        )
    );
    if let Some(session) = open.filter(|s| super::is_unattended(s)) {
        let _ = write!(
            body,
            "<p class=\"notice\" id=\"filling-in\">{} {}. {}</p>",
            lang.pick(
                "Komputer ini sudah dipakai sejak",
                "This computer has been in use since"
            ),
            esc(&clock_time(session.started_at, zone)),
            lang.pick(
                "Isi data berikut untuk sesi itu.",
                "Please fill in the following for that session."
            )
        );
    } else if open.is_some() {
        let _ = write!(
            body,
            "<p class=\"warn\" id=\"replacing\">{}</p>",
            lang.pick(
                "Masih ada sesi yang berjalan di komputer ini; sesi itu akan diakhiri saat Anda mulai.",
                "A session is still open on this PC; it will be ended when you start."
            )
        );
    }
    if let Some(errors) = errors {
        body.push_str("<div class=\"errors\" id=\"errors\" role=\"alert\"><ul>");
        for e in errors {
            let _ = write!(body, "<li>{}</li>", esc(e));
        }
        body.push_str("</ul></div>");
    }
    let _ = write!(
        body,
        "<form id=\"checkin\" method=\"post\" action=\"/mulai\">{}",
        csrf_field(csrf)
    );
    let _ = write!(
        body,
        "<fieldset><legend>{} <span class=\"hint\">{}</span></legend><div class=\"tiles\">",
        lang.pick(
            "Untuk apa Anda memakai komputer?",
            "What will you use the computer for?"
        ),
        lang.pick("(pilih 1 sampai 3)", "(choose 1 to 3)")
    );
    for p in Purpose::ALL {
        let checked = if choices.purposes.iter().any(|c| c == p.code()) {
            " checked"
        } else {
            ""
        };
        let _ = write!(
            body,
            "<label class=\"tile\"><input type=\"checkbox\" name=\"purpose\" value=\"{code}\"{checked}>\
             <span>{label}<small>{hint}</small></span></label>",
            code = p.code(),
            label = esc(p.label(lang)),
            hint = esc(purpose_hint(*p, lang)),
        );
    }
    body.push_str("</div></fieldset>");
    radio_group(
        &mut body,
        lang.pick("Jenis kelamin", "Gender"),
        "gender",
        Gender::ALL.iter().map(|g| (g.code(), g.label(lang))),
        choices.gender.as_deref(),
    );
    radio_group(
        &mut body,
        lang.pick("Kelompok umur", "Age group"),
        "age",
        AgeGroup::ALL.iter().map(|a| (a.code(), a.label(lang))),
        choices.age.as_deref(),
    );
    let _ = write!(
        body,
        "<fieldset><legend><label for=\"member\">{}</label> <span class=\"hint\">{}</span></legend>\
         {}<input type=\"text\" id=\"member\" name=\"member\" inputmode=\"numeric\" autocomplete=\"off\" maxlength=\"40\"></fieldset>",
        lang.pick("Nomor anggota", "Member number"),
        lang.pick(
            "(boleh kosong; nomornya tidak disimpan, hanya kode acak darinya)",
            "(optional; the number is not stored, only a scrambled code of it)"
        ),
        if choices.member_given {
            format!(
                "<p class=\"warn\" id=\"member-again\">{}</p>",
                lang.pick(
                    "Nomor anggota tidak disimpan: ketik lagi.",
                    "The member number was not kept: type it again."
                )
            )
        } else {
            String::new()
        }
    );
    let _ = write!(
        body,
        "<fieldset><legend><label for=\"group_size\">{}</label></legend>\
         <input type=\"number\" id=\"group_size\" name=\"group_size\" min=\"1\" max=\"200\" value=\"{}\"></fieldset>",
        lang.pick(
            "Berapa orang memakai komputer ini?",
            "How many people use this computer?"
        ),
        esc(if choices.group_size.is_empty() {
            "1"
        } else {
            &choices.group_size
        }),
    );
    let _ = write!(
        body,
        "<button type=\"submit\" id=\"start\">{}</button></form>",
        lang.pick("Mulai", "Start")
    );
    frame(
        lang,
        lang.pick("Mulai memakai komputer", "Start using the computer"),
        "/",
        None,
        &body,
    )
}

fn radio_group<'a>(
    body: &mut String,
    legend: &str,
    name: &str,
    options: impl Iterator<Item = (&'a str, &'a str)>,
    chosen: Option<&str>,
) {
    let _ = write!(
        body,
        "<fieldset><legend>{}</legend><div class=\"tiles\">",
        esc(legend)
    );
    for (code, label) in options {
        let checked = if chosen == Some(code) { " checked" } else { "" };
        let _ = write!(
            body,
            "<label class=\"tile\"><input type=\"radio\" name=\"{name}\" value=\"{code}\"{checked}><span>{}</span></label>",
            esc(label)
        );
    }
    body.push_str("</div></fieldset>");
}

/// The open session: time used and the Finish button. Refreshes every minute.
pub(super) fn session_open(lang: Lang, csrf: &str, session: &Session, zone: Zone) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>{}</h1><div id=\"session-open\"><p>{} {}</p>\
         <p>{}</p><p class=\"big\" id=\"time-used\">{}</p>\
         <form method=\"post\" action=\"/selesai\">{}<button type=\"submit\" class=\"finish\" id=\"finish\">{}</button></form>\
         <p class=\"hint\">{}</p></div>\
         <p class=\"row\"><a href=\"/?baru=1\" id=\"new-patron\">{}</a></p>",
        lang.pick("Sesi sedang berjalan", "Session in progress"),
        lang.pick("Mulai pukul", "Started at"),
        esc(&clock_time(session.started_at, zone)),
        lang.pick("Waktu terpakai:", "Time used:"),
        esc(&duration(session.duration_secs, lang)),
        csrf_field(csrf),
        lang.pick("Selesai", "Finish"),
        lang.pick(
            "Tekan Selesai saat Anda berhenti memakai komputer.",
            "Press Finish when you stop using the computer."
        ),
        lang.pick(
            "Bukan Anda? Mulai sesi baru",
            "Not you? Start a new session"
        ),
    );
    frame(
        lang,
        lang.pick("Sesi berjalan", "Session in progress"),
        "/",
        Some(60),
        &body,
    )
}

/// The PIN form in front of the librarian screen.
pub(super) fn pin_form(lang: Lang, csrf: &str, error: Option<&str>, pin_set: bool) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>{}</h1>",
        lang.pick("Layar pustakawan", "Librarian screen")
    );
    if let Some(error) = error {
        let _ = write!(
            body,
            "<p class=\"errors\" id=\"pin-error\" role=\"alert\">{}</p>",
            esc(error)
        );
    } else if !pin_set {
        let _ = write!(
            body,
            "<p class=\"warn\" id=\"pin-error\">{}</p>",
            lang.pick(
                "PIN pustakawan belum diatur. Jalankan: jejak init … --pin PIN",
                "No librarian PIN is set. Run: jejak init … --pin PIN"
            )
        );
    }
    let _ = write!(
        body,
        "<form id=\"pin\" method=\"post\" action=\"/pustakawan/masuk\">{}\
         <p><label for=\"pin-input\">{}</label></p>\
         <p><input type=\"password\" id=\"pin-input\" name=\"pin\" inputmode=\"numeric\" autocomplete=\"off\" maxlength=\"64\"></p>\
         <p><button type=\"submit\" id=\"pin-submit\">{}</button></p></form>\
         <p><a href=\"/\">{}</a></p>",
        csrf_field(csrf),
        lang.pick("PIN pustakawan", "Librarian PIN"),
        lang.pick("Masuk", "Sign in"),
        lang.pick("Kembali ke halaman pengguna", "Back to the patron page"),
    );
    frame(
        lang,
        lang.pick("Layar pustakawan", "Librarian screen"),
        "/pustakawan",
        None,
        &body,
    )
}

/// The librarian screen.
pub(super) fn librarian(lang: Lang, csrf: &str, view: &LibrarianView, zone: Zone) -> String {
    let mut body = String::new();
    let never = lang.pick("belum pernah", "never");
    let _ = write!(
        body,
        "<h1>{}</h1><div id=\"librarian\">",
        lang.pick("Layar pustakawan", "Librarian screen")
    );
    // The outcome of this screen's own "sync now", or that it is running.
    if view.run.running {
        let _ = write!(
            body,
            "<p class=\"warn\" id=\"sync-result\">{}</p>",
            lang.pick(
                "Sinkron sedang berjalan… halaman ini diperbarui sendiri.",
                "Sync in progress… this page refreshes itself."
            )
        );
    } else if let Some((at, outcome)) = &view.run.last {
        let _ = write!(
            body,
            "<p class=\"{}\" id=\"sync-result\">{} · {}</p>",
            if outcome.ok { "notice" } else { "errors" },
            esc(&clock_time(*at, zone)),
            esc(outcome.message(lang))
        );
    }
    let rows: Vec<(&str, &str, String)> = vec![
        (
            "today-count",
            lang.pick("Sesi hari ini", "Sessions today"),
            view.today.len().to_string(),
        ),
        (
            "open-session",
            lang.pick("Sesi berjalan", "Open session"),
            match &view.open {
                Some(s) => format!(
                    "{} {} · {}",
                    lang.pick("sejak", "since"),
                    clock_time(s.started_at, zone),
                    duration(s.duration_secs, lang)
                ),
                None => lang.pick("tidak ada", "none").to_string(),
            },
        ),
        (
            "pending",
            lang.pick("Menunggu sinkron", "Waiting to sync"),
            format!("{} {}", view.pending, lang.pick("perubahan", "changes")),
        ),
        (
            "last-success",
            lang.pick("Sinkron terakhir berhasil", "Last successful sync"),
            view.sync
                .last_success
                .map(|t| date_time(t, zone))
                .unwrap_or_else(|| never.to_string()),
        ),
        (
            "last-result",
            lang.pick("Hasil sinkron terakhir", "Last sync result"),
            match (&view.sync.last_attempt, &view.sync.last_result) {
                (Some(at), Some(result)) => {
                    let short: String = result.chars().take(160).collect();
                    format!("{} · {short}", date_time(*at, zone))
                }
                _ => "-".to_string(),
            },
        ),
        (
            "rejected",
            lang.pick("Ditolak server", "Rejected by the server"),
            format!(
                "{} {}",
                view.sync.rejected,
                lang.pick(
                    "catatan (disimpan di komputer ini)",
                    "records (kept on this PC)"
                )
            ),
        ),
        (
            "clock",
            lang.pick("Jam komputer", "PC clock"),
            view.clock.advice(lang),
        ),
    ];
    body.push_str("<table id=\"summary\"><tbody>");
    for (id, label, value) in rows {
        let _ = write!(
            body,
            "<tr><th>{}</th><td id=\"{id}\">{}</td></tr>",
            esc(label),
            esc(&value)
        );
    }
    body.push_str("</tbody></table>");

    // Buttons: sync now, end the open session, sign out.
    body.push_str("<div class=\"row\">");
    if view.enrolled {
        let _ = write!(
            body,
            "<form class=\"inline\" method=\"post\" action=\"/pustakawan/sinkron\">{}<button type=\"submit\" id=\"sync-now\"{}>{}</button></form>",
            csrf_field(csrf),
            if view.run.running { " disabled" } else { "" },
            lang.pick("Sinkron sekarang", "Sync now")
        );
    } else {
        let _ = write!(
            body,
            "<p class=\"warn\" id=\"not-enrolled\">{}</p>",
            lang.pick(
                "Komputer ini belum terdaftar di server kabupaten (jejak enroll).",
                "This PC is not enrolled with the district server (jejak enroll)."
            )
        );
    }
    if view.open.is_some() {
        let _ = write!(
            body,
            "<form class=\"inline\" method=\"post\" action=\"/pustakawan/akhiri\">{}<button type=\"submit\" class=\"secondary\" id=\"staff-end\">{}</button></form>",
            csrf_field(csrf),
            lang.pick("Akhiri sesi berjalan", "End the open session")
        );
    }
    let _ = write!(
        body,
        "<form class=\"inline\" method=\"post\" action=\"/pustakawan/keluar\">{}<button type=\"submit\" class=\"secondary\" id=\"sign-out\">{}</button></form></div>",
        csrf_field(csrf),
        lang.pick("Tutup layar pustakawan", "Sign out")
    );

    // Clock warnings and rejected records, when there are any.
    let _ = write!(
        body,
        "<h2>{}</h2>",
        lang.pick("Peringatan jam", "Clock warnings")
    );
    if view.clock_warnings.is_empty() {
        let _ = write!(
            body,
            "<p id=\"clock-warnings\">{}</p>",
            lang.pick("Tidak ada.", "None.")
        );
    } else {
        body.push_str("<ul id=\"clock-warnings\">");
        for w in &view.clock_warnings {
            let _ = write!(
                body,
                "<li>{} · {}{}</li>",
                esc(&date_time(w.at, zone)),
                esc(w.kind.label(lang)),
                w.delta_ms
                    .map(|d| format!(" ({:+} s)", d / 1000))
                    .unwrap_or_default()
            );
        }
        body.push_str("</ul>");
    }
    if !view.rejected.is_empty() {
        let _ = write!(
            body,
            "<h2>{}</h2><ul id=\"rejected-list\">",
            lang.pick("Catatan yang ditolak server", "Records the server rejected")
        );
        for r in &view.rejected {
            let _ = write!(
                body,
                "<li>seq {} · {} · {}</li>",
                r.seq,
                esc(&r.code),
                esc(&r.detail)
            );
        }
        body.push_str("</ul>");
    }

    // Today's sessions on this PC, newest first.
    let _ = write!(
        body,
        "<h2>{}</h2>",
        lang.pick(
            "Sesi hari ini di komputer ini",
            "Today's sessions on this PC"
        )
    );
    if view.today.is_empty() {
        let _ = write!(
            body,
            "<p id=\"today-sessions\">{}</p>",
            lang.pick("Belum ada sesi hari ini.", "No sessions yet today.")
        );
    } else {
        let _ = write!(
            body,
            "<table id=\"today-sessions\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            lang.pick("Mulai", "Start"),
            lang.pick("Durasi", "Duration"),
            lang.pick("Kriteria", "User kind"),
            lang.pick("Tujuan", "Purposes"),
            lang.pick("JK", "Gender"),
            lang.pick("Umur", "Age"),
            lang.pick("Alasan berakhir", "End reason"),
        );
        for s in view.today.iter().take(MAX_ROWS) {
            let purposes: Vec<&str> = s.patron.purposes.iter().map(|p| p.label(lang)).collect();
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&clock_time(s.started_at, zone)),
                esc(&duration(s.duration_secs, lang)),
                esc(s.patron.user_kind.label(lang)),
                esc(&purposes.join(", ")),
                esc(s.patron.gender.code()),
                esc(s.patron.age_group.label(lang)),
                esc(s
                    .end_reason
                    .map(|r| r.label(lang))
                    .unwrap_or(lang.pick("(berjalan)", "(open)")))
            );
        }
        body.push_str("</tbody></table>");
        if view.today.len() > MAX_ROWS {
            let _ = write!(
                body,
                "<p class=\"hint\" id=\"more-sessions\">{} {} {}</p>",
                lang.pick("Dan", "And"),
                view.today.len() - MAX_ROWS,
                lang.pick(
                    "sesi lebih awal (jejak session list menampilkan semuanya).",
                    "earlier sessions (jejak session list shows them all)."
                )
            );
        }
    }
    body.push_str("</div>");
    // While a sync runs the screen refreshes every 2 s to show its outcome.
    let refresh = if view.run.running { Some(2) } else { None };
    frame(
        lang,
        lang.pick("Layar pustakawan", "Librarian screen"),
        "/pustakawan",
        refresh,
        &body,
    )
}

/// The refusal page: what happened and what to do.
pub(super) fn refused(lang: Lang, refusal: Refusal) -> String {
    let why = match refusal {
        Refusal::NotLoopback => lang.pick(
            "Halaman ini hanya bisa dibuka dari komputer ini sendiri.",
            "This page can only be opened on this computer itself.",
        ),
        Refusal::BadHost => lang.pick(
            "Alamat tidak dikenal. Buka halaman ini lewat http://127.0.0.1 atau http://localhost.",
            "Unknown address. Open this page at http://127.0.0.1 or http://localhost.",
        ),
        Refusal::ForeignOrigin => lang.pick(
            "Permintaan dari situs lain ditolak.",
            "A request from another site was refused.",
        ),
        Refusal::MissingCsrf => lang.pick(
            "Formulir ini kedaluwarsa atau tidak berasal dari halaman ini. Buka halaman lagi lalu coba sekali lagi.",
            "This form has expired or did not come from this page. Open the page again and retry.",
        ),
    };
    let body = format!(
        "<h1>{}</h1><p class=\"refused\" id=\"refused\" data-reason=\"{}\">{}</p><p><a href=\"/\">{}</a></p>",
        lang.pick("Permintaan ditolak", "Request refused"),
        refusal.code(),
        esc(why),
        lang.pick("Ke halaman awal", "To the start page"),
    );
    frame(
        lang,
        lang.pick("Permintaan ditolak", "Request refused"),
        "/",
        None,
        &body,
    )
}

pub(super) fn not_found(lang: Lang) -> String {
    let body = format!(
        "<h1>{}</h1><p><a href=\"/\">{}</a></p>",
        lang.pick("Halaman tidak ada", "No such page"),
        lang.pick("Ke halaman awal", "To the start page"),
    );
    frame(
        lang,
        lang.pick("Halaman tidak ada", "No such page"),
        "/",
        None,
        &body,
    )
}

pub(super) fn store_failure(lang: Lang, message: &str) -> String {
    let body = format!(
        "<h1>{}</h1><p class=\"errors\">{}</p><p>{}</p><p><a href=\"/\">{}</a></p>",
        lang.pick("Belum bisa mencatat", "Cannot record right now"),
        esc(message),
        lang.pick(
            "Coba lagi sebentar lagi, atau beri tahu petugas.",
            "Try again in a moment, or tell the librarian."
        ),
        lang.pick("Coba lagi", "Try again"),
    );
    frame(
        lang,
        lang.pick("Belum bisa mencatat", "Cannot record right now"),
        "/",
        Some(30),
        &body,
    )
}
