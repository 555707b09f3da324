//! Checkers that no one here wrote, for what real clients read: axe-core (accessibility,
//! run inside the browser under test), the W3C Nu HTML checker (`vnu.jar`, markup),
//! Redocly's and openapi-spec-validator's OpenAPI lints, `promtool check metrics` and
//! LibreOffice reading a CSV as an Indonesian spreadsheet would.
//!
//! `scripts/checkers.sh` installs the first five, pinned, into one folder
//! (`JEJAK_CHECKERS`, by default `~/.cache/jejak-checkers`), and LibreOffice from
//! Debian. Without a checker a test prints a `SKIPPED:` line and passes, unless
//! `JEJAK_REQUIRE_CHECKERS=1` (set by CI), in which case it fails.
//!
//! Shared by the test crates through `#[path]`: the dashboard's browser test (server
//! crate) and the check-in page's (the binary's end-to-end tests).
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The folder `scripts/checkers.sh` installs into.
pub fn checkers_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("JEJAK_CHECKERS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache").join("jejak-checkers")
}

fn required() -> bool {
    std::env::var("JEJAK_REQUIRE_CHECKERS").as_deref() == Ok("1")
}

/// `path` if it exists; otherwise the skip line (or, when checkers are required, a
/// failure naming how to install it).
pub fn find(what: &str, path: PathBuf) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    let message = format!(
        "{what} needs {} (bash scripts/checkers.sh installs it)",
        path.display()
    );
    assert!(!required(), "JEJAK_REQUIRE_CHECKERS=1 but {message}");
    eprintln!("SKIPPED: {message}");
    None
}

/// A checker installed by `scripts/checkers.sh`, by its path inside the folder.
pub fn installed(what: &str, relative: &str) -> Option<PathBuf> {
    find(what, checkers_dir().join(relative))
}

/// axe-core's script, to inject into a page.
pub fn axe_script() -> Option<String> {
    installed(
        "the accessibility check (axe-core)",
        "node_modules/axe-core/axe.min.js",
    )
    .map(|path| std::fs::read_to_string(path).unwrap())
}

/// Runs axe-core in the page the browser shows (WCAG 2.0–2.2 A and AA rules and axe's
/// best practices) and returns each violation as `rule (impact): help — nodes`.
pub async fn axe_violations(client: &fantoccini::Client, axe: &str) -> Vec<String> {
    // WebDriver runs the script outside the page's content security policy, so the
    // pages need not allow scripts for the check.
    let script = format!(
        "{axe}\n;const done = arguments[arguments.length - 1];\
         axe.run(document, {{ resultTypes: ['violations'] }})\
           .then(r => done(r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.help + ' — ' \
             + v.nodes.map(n => n.target.join(' ')).join(', '))))\
           .catch(e => done(['axe failed: ' + e]));"
    );
    let answer = client.execute_async(&script, vec![]).await.unwrap();
    answer
        .as_array()
        .unwrap_or_else(|| panic!("axe answered {answer}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect()
}

/// Asserts that axe-core finds nothing on the page the browser shows.
pub async fn assert_accessible(client: &fantoccini::Client, axe: Option<&str>, page: &str) {
    let Some(axe) = axe else { return };
    let violations = axe_violations(client, axe).await;
    assert!(
        violations.is_empty(),
        "axe-core on {page}:\n{}",
        violations.join("\n")
    );
}

/// The Nu HTML checker's jar.
pub fn nu_checker() -> Option<PathBuf> {
    installed(
        "the markup check (the W3C Nu HTML checker)",
        "node_modules/vnu-jar/build/dist/vnu.jar",
    )
}

/// Checks each page's HTML (`name`, markup) with the Nu HTML checker and returns its
/// errors and warnings as `name: message (extract)`; `None` when the checker is not
/// installed (and not required).
pub fn nu_messages(pages: &[(String, String)]) -> Option<Vec<String>> {
    let jar = nu_checker()?;
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, (_, html)) in pages.iter().enumerate() {
        let file = dir.path().join(format!("page-{i}.html"));
        std::fs::write(&file, html).unwrap();
        files.push(file);
    }
    let output = Command::new("java")
        .arg("-jar")
        .arg(&jar)
        .args(["--format", "json", "--stdout", "--exit-zero-always"])
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("java -jar {}: {e}", jar.display()));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the Nu checker's answer is not JSON ({e}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let name_of = |url: &str| {
        files
            .iter()
            .position(|f| url.ends_with(&*f.file_name().unwrap().to_string_lossy()))
            .map_or(url.to_string(), |i| pages[i].0.clone())
    };
    Some(
        report["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                format!(
                    "{} [{}]: {} ({})",
                    name_of(m["url"].as_str().unwrap_or_default()),
                    m["type"].as_str().unwrap_or_default(),
                    m["message"].as_str().unwrap_or_default(),
                    m["extract"].as_str().unwrap_or_default().trim()
                )
            })
            .collect(),
    )
}

/// Asserts that the Nu HTML checker finds nothing (no error, no warning) in the pages.
pub fn assert_valid_markup(pages: &[(String, String)]) {
    if let Some(messages) = nu_messages(pages) {
        assert!(
            messages.is_empty(),
            "the Nu HTML checker:\n{}",
            messages.join("\n")
        );
        eprintln!("the Nu HTML checker: {} pages valid", pages.len());
    }
}

/// Runs `program` with `args`, returning its exit status and everything it printed.
pub fn run(program: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}
