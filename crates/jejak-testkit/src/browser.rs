//! Debian's headless Chromium driven through chromedriver (W3C WebDriver), for the
//! dashboard's and the check-in page's browser tests.
//!
//! Without `chromium` and `chromium-driver` the tests print a `SKIPPED:` line and pass,
//! unless `JEJAK_REQUIRE_BROWSER=1` (set by CI), when they fail. `JEJAK_CHROMIUM` and
//! `JEJAK_CHROMEDRIVER` may point elsewhere than Debian's paths.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

fn chromium() -> String {
    std::env::var("JEJAK_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string())
}

fn chromedriver() -> String {
    std::env::var("JEJAK_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".to_string())
}

/// Whether the browser can run here; prints the skip line for `tests` (what needs it)
/// or fails under `JEJAK_REQUIRE_BROWSER=1` when it cannot.
pub fn available(tests: &str) -> bool {
    let missing: Vec<String> = [chromium(), chromedriver()]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("JEJAK_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!(
            "JEJAK_REQUIRE_BROWSER=1 but {} missing: apt-get install chromium chromium-driver",
            missing.join(" and ")
        );
    }
    eprintln!(
        "SKIPPED: {tests} need Debian's chromium and chromium-driver \
         (apt-get install chromium chromium-driver); missing: {}",
        missing.join(", ")
    );
    false
}

/// Where a test's screenshots go: `<target>/test-output/<name>/`, given the test's
/// `env!("CARGO_TARGET_TMPDIR")` (`CARGO_TARGET_DIR` wins when set).
pub fn output_dir(target_tmpdir: &str, name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| Path::new(target_tmpdir).parent().map(Path::to_path_buf))
        .expect("a target directory");
    let dir = target.join("test-output").join(name);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot make {}: {e}", dir.display()));
    dir
}

/// A chromedriver process on a free loopback port, killed when dropped.
#[derive(Debug)]
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    /// Starts chromedriver, accepting only loopback clients.
    pub fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver: {e}"));
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A headless Chromium session with a `width,height` window, its profile in
    /// `profile`, and `prefs` (e.g. where downloads go) if given. Waits up to 30 s for
    /// chromedriver to listen.
    pub async fn browser(
        &self,
        profile: &Path,
        window: &str,
        prefs: Option<serde_json::Value>,
    ) -> Client {
        let mut options = serde_json::json!({
            "binary": chromium(),
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                format!("--window-size={window}"),
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        if let Some(prefs) = prefs {
            options["prefs"] = prefs;
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), "chrome".into());
        capabilities.insert("goog:chromeOptions".into(), options);
        // chromedriver takes a moment to listen.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&self.url)
                .await
            {
                Ok(client) => return client,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromedriver did not start a Chromium session: {e}"),
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of the page the browser shows.
pub async fn path(client: &Client) -> String {
    client
        .current_url()
        .await
        .expect("the current URL")
        .path()
        .to_string()
}

/// The text of the element `css` selects (which must be there).
pub async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

/// A PNG screenshot of the page, saved as `dir/name`.
pub async fn screenshot(client: &Client, dir: &Path, name: &str) -> PathBuf {
    let png = client.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let file = dir.join(name);
    std::fs::write(&file, png).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    eprintln!("screenshot: {}", file.display());
    file
}
