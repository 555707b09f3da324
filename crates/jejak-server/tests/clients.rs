//! What tools no one here wrote make of the API, on a real server on 127.0.0.1:0:
//!
//! - `promtool check metrics` (Prometheus' own linter) reads `/metrics` in the classic
//!   text format a plain scrape gets, and finds nothing to say; Prometheus' own
//!   `Accept` gets OpenMetrics.
//! - `redocly lint` and `openapi-spec-validator` read `/api/v1/openapi.json` and find
//!   nothing to say.
//!
//! The tools come from `scripts/checkers.sh`; without them the tests print a `SKIPPED:`
//! line and pass, unless `JEJAK_REQUIRE_CHECKERS=1` (set by CI).
#![allow(clippy::unwrap_used)]

#[path = "../../../tests/support/checkers.rs"]
mod checkers;
mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::TestServer;

/// What Prometheus 2.x sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// `/metrics` with `accept`: its content type and text.
async fn scrape(server: &TestServer, accept: Option<&str>) -> (String, String) {
    let mut request = server.http.get(format!("{}/metrics", server.url));
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    (content_type, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_finds_nothing_to_say_about_the_metrics() {
    let server = TestServer::start().await;
    // Before anything happened, every labelled series is there at zero.
    let (content_type, text) = scrape(&server, None).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    for sample in [
        "jejak_batches_total{result=\"accepted\"} 0",
        "jejak_batches_total{result=\"seq_gap\"} 0",
        "jejak_batches_total{result=\"too_large\"} 0",
        "jejak_records_total{outcome=\"duplicate\"} 0",
    ] {
        assert!(text.contains(sample), "{sample}\n{text}");
    }
    // Then a batch, and one refused.
    server.sync_simulated(&[("dermaji", "pc-01", 5)], 1).await;
    let refused = server
        .post_raw(
            Some("jejak_dev_nope"),
            "application/json",
            None,
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(refused.0, 401);

    let (content_type, classic) = scrape(&server, Some("text/plain")).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(
        classic.contains("# TYPE jejak_batches_total counter"),
        "{classic}"
    );
    assert!(classic.contains("jejak_batches_total{result=\"accepted\"} 1"));
    assert!(classic.contains("jejak_batches_total{result=\"unauthorized\"} 1"));
    assert!(!classic.contains("# EOF"));
    let (content_type, openmetrics) = scrape(&server, Some(PROMETHEUS_ACCEPT)).await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");

    let Some(promtool) = checkers::installed("checking the metrics (promtool)", "promtool") else {
        return;
    };
    for text in [&classic, &scrape(&server, None).await.1] {
        let mut child = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "promtool: {said}\n{text}");
        assert!(said.trim().is_empty(), "promtool: {said}");
    }
}

/// The server's OpenAPI document, in a file.
async fn openapi_file(server: &TestServer, dir: &std::path::Path) -> std::path::PathBuf {
    let response = server
        .http
        .get(format!("{}/api/v1/openapi.json", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let file = dir.join("openapi.json");
    std::fs::write(&file, response.bytes().await.unwrap()).unwrap();
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redocly_and_openapi_spec_validator_find_nothing_to_say_about_the_openapi_document() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let document = openapi_file(&server, dir.path()).await;
    let document = document.to_str().unwrap();
    if let Some(redocly) = checkers::installed(
        "linting the OpenAPI document (Redocly)",
        "node_modules/.bin/redocly",
    ) {
        // The recommended rules; a warning counts as much as an error.
        let output = Command::new(&redocly)
            .args([
                "lint",
                "--format",
                "json",
                "--max-problems",
                "100",
                document,
            ])
            .output()
            .unwrap();
        let said: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "redocly lint ({e}): {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        assert!(output.status.success(), "redocly lint: {said:#}");
        assert_eq!(said["totals"]["errors"], 0, "redocly lint: {said:#}");
        assert_eq!(said["totals"]["warnings"], 0, "redocly lint: {said:#}");
    }
    if let Some(validator) = checkers::installed(
        "validating the OpenAPI document (openapi-spec-validator)",
        "venv/bin/openapi-spec-validator",
    ) {
        let (ok, said) = checkers::run(&validator, &[document]);
        assert!(ok && said.contains("OK"), "openapi-spec-validator:\n{said}");
    }
}
