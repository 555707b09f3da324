//! What the reports' terms mean, in a sentence each: shown under the printable report
//! and on the dashboard's pages, for the district officer who has to explain a number
//! ("Waktu daring", "Internet aktif", "Kelengkapan data" …).
//!
//! A report's glossary holds the terms of the columns it shows, in the order they first
//! appear, each under the label the reader sees; a column without an entry here (names,
//! codes, plain counts such as men and women) is not explained. The meanings restate the
//! rules of `build.rs` and `facts.rs`: change one, change both.

use jejak_domain::Lang;

use super::Report;

/// One explained term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The term as the report's header shows it.
    pub term: String,
    /// What it means.
    pub meaning: &'static str,
}

/// The meaning of a column, by its key, in `lang`.
pub(crate) fn meaning(key: &str, lang: Lang) -> Option<&'static str> {
    let (id, en) = match key {
        "sessions" => (
            "Satu pemakaian komputer oleh satu orang atau satu rombongan, dihitung pada hari mulainya (waktu setempat). Sesi petugas tidak dihitung.",
            "One use of a computer by one person or one group, counted on the local day it started. Staff sessions are not counted.",
        ),
        "persons" => (
            "Orang dalam sesi-sesi itu: satu sesi rombongan dihitung sebanyak anggotanya.",
            "The people in those sessions: a group session counts as many as its members.",
        ),
        "unique_users" => (
            "Anggota berbeda yang memakai komputer bulan itu, dikenali dari kode acak nomor anggotanya. Sesi tanpa nomor anggota tidak terhitung, dan angkanya tidak dijumlahkan antar perpustakaan.",
            "Distinct members who used a computer in the month, known by a scrambled code of their member number. Sessions without a member number are not in it, and it is not added up across libraries.",
        ),
        "days_open" => (
            "Hari ketika setidaknya satu sesi dimulai atau satu PC dinyalakan.",
            "Days on which at least one session started or a PC was switched on.",
        ),
        "pcs" => (
            "PC yang masih terdaftar (tokennya aktif) atau yang dipakai bulan itu.",
            "PCs still enrolled (an active token) or used in the month.",
        ),
        "hours" => (
            "Lama semua sesi dijumlahkan; sesi yang melewati tengah malam dibagi ke hari-harinya.",
            "The sessions' length added up; a session past midnight is split over its days.",
        ),
        "mean_minutes" => (
            "Lama rata-rata satu sesi, dalam menit.",
            "The mean length of a session, in minutes.",
        ),
        "sessions_per_pc_day" => (
            "Sesi dibagi (jumlah PC × hari buka).",
            "Sessions divided by (PCs × days open).",
        ),
        "use_rate" => (
            "Menit pemakaian dibagi waktu buka, yaitu jumlah PC × hari buka × 420 menit (dianggap buka 7 jam sehari).",
            "Minutes in use divided by the opening time: PCs × days open × 420 minutes (7 opening hours a day are assumed).",
        ),
        "online_share" => (
            "Bagian dari waktu pemakaian ketika internet tersambung, menurut pemeriksaan sambungan di PC.",
            "The part of the time in use during which the internet was reachable, by the PC's own link check.",
        ),
        "internet_uptime" => (
            "Bagian dari waktu PC menyala ketika internet tersambung. Di bawah 50% ditandai di rekap kabupaten.",
            "The part of the time the PCs were on during which the internet was reachable. Under 50% is flagged in the district summary.",
        ),
        "data_mb" => (
            "Data yang diterima dan dikirim PC selama sesi, dalam megabita (1 MB = 1.000.000 bita).",
            "Data the PCs received and sent during sessions, in megabytes (1 MB = 1,000,000 bytes).",
        ),
        "completeness" => (
            "Bagian dari sesi yang isiannya lengkap: jenis kelamin disebutkan, kelompok umur diisi dan setidaknya satu tujuan dipilih.",
            "The share of sessions filled in completely: gender stated, age group given and at least one purpose chosen.",
        ),
        "last_sync" => (
            "Tanggal data terakhir diterima server kabupaten dari PC perpustakaan. Lebih dari 14 hari lalu ditandai.",
            "The date the district server last received data from the library's PCs. More than 14 days ago is flagged.",
        ),
        "change" => (
            "Selisih sesi dibanding periode sebelumnya yang sama panjangnya, sebagai persentase dari periode sebelumnya.",
            "The difference in sessions against the previous period of the same length, as a percentage of the previous period.",
        ),
        "npp" => (
            "Nomor Pokok Perpustakaan dari Perpustakaan Nasional (data.perpusnas.go.id), diisi dinas dengan jejak server edit-library.",
            "The library's national number (Nomor Pokok Perpustakaan) from Perpustakaan Nasional, set by the district with jejak server edit-library.",
        ),
        "kecamatan" => (
            "Kecamatan tempat perpustakaan berada. Perpustakaan dikelompokkan per kecamatan dengan jumlah per kecamatan; yang belum diisi dikelompokkan terakhir.",
            "The sub-district the library is in. Libraries are grouped by it with a subtotal each; those without one come last.",
        ),
        "user_kind" => (
            "Kriteria pengguna yang dipilih saat sesi dimulai: anggota, non-anggota, rombongan atau pelatihan. Sesi petugas tidak dihitung.",
            "The user kind chosen when the session started: member, non-member, group or training. Staff sessions are not counted.",
        ),
        "umkm" => (
            "Sesi dengan tujuan Ekonomi/UMKM (usaha, jualan, lowongan kerja).",
            "Sessions with the purpose Economy/UMKM (business, selling, jobs).",
        ),
        "token" => (
            "Apakah PC masih boleh mengirim data (aktif) atau tokennya sudah dicabut.",
            "Whether the PC may still send data (active) or its token was revoked.",
        ),
        "days_silent" => (
            "Hari sejak data terakhir diterima dari PC ini.",
            "Days since data last arrived from this PC.",
        ),
        "clock_offset_s" => (
            "Jam server dikurangi jam PC, diukur saat sinkron terakhir; negatif berarti jam PC lebih cepat.",
            "The server's clock minus the PC's, measured at the last sync; negative means the PC's clock is ahead.",
        ),
        "open_over_12h" => (
            "Sesi yang terbuka lebih dari 12 jam, biasanya karena lupa diakhiri.",
            "Sessions open for more than 12 hours, usually left unfinished.",
        ),
        "rejected" => (
            "Catatan yang ditolak server; tetap disimpan di PC dan bisa diperiksa di layar pustakawan.",
            "Records the server refused; they stay on the PC and show on the librarian screen.",
        ),
        "new_epochs_30d" => (
            "Berapa kali penyimpanan data PC dimulai dari awal dalam 30 hari (misalnya setelah berkas rusak diganti).",
            "How often the PC's store started again from the beginning in 30 days (for instance after a damaged file was replaced).",
        ),
        "lost" => (
            "Catatan yang hilang karena server dipulihkan dari cadangan lama setelah PC menghapusnya.",
            "Records lost because the server was restored from an older backup after the PC had pruned them.",
        ),
        "days_served" => (
            "Hari ketika sebuah PC perpustakaan dipakai atau dinyalakan, atau buku tamu mencatat pengunjung.",
            "Days on which a library PC was used or switched on, or the visitor book has a visitor.",
        ),
        "visits" => crate::facts::VISITS_RULE,
        "visits_per_day" => (
            "Kunjungan dibagi hari layanan.",
            "Visits divided by the days served.",
        ),
        "activities" => (
            "Kegiatan yang dicatat (pelatihan, sosialisasi/KIE, bimbingan belajar, bedah buku, lomba, pameran, kunjungan, lainnya), menurut tanggal pelaksanaan.",
            "Activities recorded (training, socialisation/KIE, tutoring, book talks, competitions, exhibitions, visits, other), by the day they were held.",
        ),
        "participants" => (
            "Jumlah peserta semua kegiatan (menurut jenis kelamin × kelompok umur yang dicatat).",
            "The participants of all activities (as recorded by gender × age group).",
        ),
        "participants_kie" => (
            "Peserta kegiatan berjenis sosialisasi/KIE: partisipasi masyarakat dalam kegiatan perpustakaan yang diminta IPLM.",
            "Participants of socialisation/KIE activities: the community participation in library activities the IPLM asks for.",
        ),
        "members" => (
            "Anggota terdaftar pada akhir bulan menurut isian pustakawan (buku anggota tetap di kertas); kosong bila tidak diisi.",
            "Registered members at the month's end as the librarian entered them (the member book stays on paper); empty when not entered.",
        ),
        "new_members" => (
            "Anggota baru bulan itu menurut isian pustakawan.",
            "The month's new members as the librarian entered them.",
        ),
        _ => return None,
    };
    Some(lang.pick(id, en))
}

/// The terms of the columns `report` shows, in `lang`.
pub(crate) fn glossary(report: &Report, lang: Lang) -> Vec<Term> {
    let mut seen: Vec<&str> = Vec::new();
    let mut terms = Vec::new();
    for column in report.sections.iter().flat_map(|t| &t.columns) {
        if seen.contains(&column.key.as_str()) {
            continue;
        }
        seen.push(&column.key);
        if let Some(meaning) = meaning(&column.key, lang) {
            terms.push(Term {
                term: column.label.get(lang).to_string(),
                meaning,
            });
        }
    }
    terms
}

/// The glossary's heading.
pub(crate) fn heading(lang: Lang) -> &'static str {
    lang.pick("Keterangan istilah", "Glossary")
}

/// The glossary as a template shows it (`templates/glossary.html`), shared by the
/// printable page and the dashboard.
#[derive(Debug, askama::Template)]
#[template(path = "glossary.html")]
pub struct GlossarySection {
    /// The heading, in the page's language.
    pub heading: &'static str,
    /// The terms of the report's columns, explained.
    pub terms: Vec<Term>,
}

impl GlossarySection {
    /// The glossary of `report`'s columns in `lang`.
    pub fn new(report: &Report, lang: Lang) -> GlossarySection {
        GlossarySection {
            heading: heading(lang),
            terms: glossary(report, lang),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The services columns (the district matrix's second table, the IPLM sheet) are
    /// explained in both languages, each under the label its report shows.
    #[test]
    fn the_services_columns_are_explained() {
        let keys = [
            "days_served",
            "visits",
            "visits_per_day",
            "activities",
            "participants",
            "participants_kie",
            "members",
            "new_members",
        ];
        for key in keys {
            let (id, en) = (meaning(key, Lang::Id), meaning(key, Lang::En));
            assert!(id.is_some() && en.is_some() && id != en, "{key}");
        }
        assert_eq!(meaning("visits", Lang::Id), Some(crate::VISITS_RULE.0));
        // The district matrix, even of an empty month, shows them with their labels.
        let month = chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
        let facts = crate::MonthFacts {
            month,
            libraries: Vec::new(),
        };
        let now = chrono::Utc::now();
        let matrix = crate::district_monthly(&facts, month, Lang::Id, now);
        let terms: Vec<String> = glossary(&matrix, Lang::Id)
            .into_iter()
            .map(|t| t.term)
            .collect();
        for label in [
            "Hari layanan",
            "Kunjungan",
            "Peserta sosialisasi/KIE",
            "Anggota baru",
        ] {
            assert!(terms.iter().any(|t| t == label), "{label} in {terms:?}");
        }
    }
}
