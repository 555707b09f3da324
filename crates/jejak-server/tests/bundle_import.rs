//! `jejak_server::bundle_import` at its own home: what it refuses before anything is
//! stored. A real bundle's whole round trip (made on a PC, imported, acknowledged) is in
//! the end-to-end tests (`tests/sync_e2e.rs`, `tests/usability_e2e.rs`).
#![allow(clippy::unwrap_used)]

use jejak_server::bundle_import::{ImportError, ImportTrust, import_bundle};
use jejak_server::{ServerStore, SqliteStore, system_clock};

/// A store with one enrolled PC, and the folder it is in.
async fn store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("server.db")).unwrap();
    jejak_testkit::server::enroll(&store, "dermaji", "Perpustakaan Desa", "pc-01").await;
    (store, dir)
}

/// Imports `name` from the store's folder with the default trust; the acknowledgement
/// would go beside it.
async fn import(
    store: &SqliteStore,
    dir: &tempfile::TempDir,
    name: &str,
) -> (
    Result<jejak_server::bundle_import::ImportSummary, ImportError>,
    std::path::PathBuf,
) {
    let file = dir.path().join(name);
    let ack = dir.path().join(format!("{name}.ack.json"));
    let outcome = import_bundle(store, &file, &ack, &ImportTrust::default(), &system_clock()).await;
    (outcome, ack)
}

/// Nothing of any PC was stored, and no acknowledgement file was written.
async fn nothing_stored(store: &SqliteStore, ack: &std::path::Path) {
    for device in store.devices().await.unwrap() {
        let device = store
            .find_device(&device.library, &device.pc)
            .await
            .unwrap()
            .unwrap();
        assert!(store.sessions(&device).await.unwrap().is_empty());
    }
    assert!(!ack.exists(), "a refused bundle gets no acknowledgement");
}

#[tokio::test]
async fn a_file_that_is_not_a_bundle_is_refused_in_both_languages_and_nothing_is_stored() {
    let (store, dir) = store().await;
    let file = dir.path().join("notes.jejak");
    std::fs::write(&file, b"{\"not\": \"a bundle\"}").unwrap();
    let (outcome, ack) = import(&store, &dir, "notes.jejak").await;
    match outcome.unwrap_err() {
        ImportError::Refused { id, en } => {
            assert!(id.starts_with("berkas ditolak: "), "{id}");
            assert!(en.starts_with("bundle refused: "), "{en}");
        }
        other => panic!("refused, not {other:?}"),
    }
    nothing_stored(&store, &ack).await;
}

#[tokio::test]
async fn a_file_too_large_to_be_a_bundle_is_refused_before_it_is_parsed() {
    let (store, dir) = store().await;
    let file = dir.path().join("huge.jejak");
    let opened = std::fs::File::create(&file).unwrap();
    // Sparse: 33 MB on paper, nothing on the disk.
    opened.set_len(33 << 20).unwrap();
    let (outcome, ack) = import(&store, &dir, "huge.jejak").await;
    match outcome.unwrap_err() {
        ImportError::Refused { en, .. } => assert!(en.contains("larger than 32 MB"), "{en}"),
        other => panic!("refused, not {other:?}"),
    }
    nothing_stored(&store, &ack).await;
}

#[tokio::test]
async fn a_missing_file_is_a_file_error_naming_it() {
    let (store, dir) = store().await;
    let file = dir.path().join("missing.jejak");
    let (outcome, ack) = import(&store, &dir, "missing.jejak").await;
    match outcome.unwrap_err() {
        ImportError::File {
            path,
            writing,
            source,
        } => {
            assert_eq!(path, file);
            assert!(!writing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("a file error, not {other:?}"),
    }
    nothing_stored(&store, &ack).await;
}
