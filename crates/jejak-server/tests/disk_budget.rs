//! The brief budgets at most 64 bytes of server disk per session, rollups included.
//! This stores 20,000 realistic sessions of 15 PCs as busy as the brief's stress
//! district through the real ingest path, compacts the file and divides its size by
//! the sessions.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_sessions_fit_the_disk_budget() {
    let dir = tempfile::tempdir().unwrap();
    let figure = jejak_testkit::bench::disk_bytes_per_session(
        dir.path(),
        15,
        20_000,
        jejak_testkit::sim::Pace::STRESS,
    )
    .await
    .unwrap();
    println!(
        "server_disk_bytes_per_session: {:.1} ({} bytes for {} sessions)",
        figure.bytes_per_session, figure.file_bytes, figure.sessions
    );
    assert_eq!(figure.sessions, 20_000);
    assert!(
        figure.bytes_per_session <= 64.0,
        "{:.1} bytes per session is over the budget",
        figure.bytes_per_session
    );
}
