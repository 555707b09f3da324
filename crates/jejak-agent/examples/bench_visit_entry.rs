//! Benchmark: one tap of the visitor book on the librarian screen, to stored. The real
//! page (`Checkin` served by `checkin::spawn` on 127.0.0.1:0) over a real store file
//! (WAL with `synchronous=FULL`), a librarian signed in with the PIN, and each tap the
//! HTTP POST a browser sends (`/pustakawan/tamu`, its CSRF token and cookies, same
//! Origin), timed until the answer, which comes after the store's commit.
//!
//! ```text
//! cargo run --profile pc -p jejak-agent --example bench_visit_entry -- \
//!     --dir /some/dir/on/the/disk [--taps 400] [--warmup 20]
//! ```
//!
//! Prints one JSON figure line per figure on stdout (`scripts/bench.sh` relays them);
//! details go to stderr.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use jejak_agent::checkin::pin::{PIN_FILE, PinHash};
use jejak_agent::checkin::{self, Checkin, CheckinSettings};
use jejak_agent::clock::{Clock, SystemClock};
use jejak_agent::store::Store;
use jejak_domain::{DeviceIdentity, Lang, LibraryCode, PcCode, RecordBody, Zone};

const PIN: &str = "246810";

struct Args {
    dir: PathBuf,
    taps: usize,
    warmup: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        dir: std::env::temp_dir(),
        taps: 400,
        warmup: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next().unwrap_or_else(|| {
                eprintln!("{flag} needs a value");
                std::process::exit(2)
            })
        };
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(value()),
            "--taps" => args.taps = value().parse().unwrap(),
            "--warmup" => args.warmup = value().parse().unwrap(),
            other => {
                eprintln!(
                    "unknown argument {other}; usage: bench_visit_entry --dir DIR [--taps N] [--warmup N]"
                );
                std::process::exit(2)
            }
        }
    }
    args.taps = args.taps.max(1);
    args
}

/// The value at quantile `q` (nearest rank) of sorted milliseconds.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The `name=value` pairs a response sets, added to `jar`.
fn keep_cookies(response: &reqwest::Response, jar: &mut Vec<(String, String)>) {
    for set in response.headers().get_all("set-cookie") {
        let pair = set.to_str().unwrap().split(';').next().unwrap();
        let (name, value) = pair.split_once('=').unwrap();
        jar.retain(|(n, _)| n != name);
        jar.push((name.to_string(), value.to_string()));
    }
}

fn cookie_header(jar: &[(String, String)]) -> String {
    jar.iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn csrf_of(body: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = body.find(marker).expect("a form with a CSRF token") + marker.len();
    body[at..at + 64].to_string()
}

fn main() {
    let args = parse_args();
    let dir = tempfile::tempdir_in(&args.dir).unwrap();
    let identity = DeviceIdentity {
        library: LibraryCode::parse("bench").unwrap(),
        pc: PcCode::parse("pc-01").unwrap(),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let path = dir.path().join("jejak.db");
    let (store, _) = Store::open(&path, identity.clone(), clock.clone()).unwrap();
    PinHash::new(PIN)
        .unwrap()
        .save(&dir.path().join(PIN_FILE))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut samples = runtime.block_on(async {
        let listener = checkin::bind(0).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let page = Checkin::new(
            store,
            CheckinSettings {
                port,
                data_dir: dir.path().to_path_buf(),
                zone: Zone::Wib,
                lang: Lang::Id,
                net_dev_path: None,
            },
            None,
        );
        let handle = checkin::spawn(listener, page);
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut jar = Vec::new();

        // Sign in as the librarian, as the browser does.
        let response = http.get(format!("{url}/pustakawan")).send().await.unwrap();
        keep_cookies(&response, &mut jar);
        let csrf = csrf_of(&response.text().await.unwrap());
        let response = http
            .post(format!("{url}/pustakawan/masuk"))
            .header("Cookie", cookie_header(&jar))
            .header("Origin", &url)
            .form(&[("csrf", csrf.as_str()), ("pin", PIN)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 303, "the PIN sign-in");
        keep_cookies(&response, &mut jar);
        let cookies = cookie_header(&jar);

        let genders = ["L", "P"];
        let purposes = ["membaca", "pinjam_kembali", "belajar"];
        let mut samples = Vec::with_capacity(args.taps);
        for i in 0..args.warmup + args.taps {
            let form = [
                ("csrf", csrf.as_str()),
                ("gender", genders[i % genders.len()]),
                ("age", "remaja"),
                ("kind", "non_anggota"),
                ("purpose", purposes[i % purposes.len()]),
                ("people", "1"),
            ];
            let t = Instant::now();
            let response = http
                .post(format!("{url}/pustakawan/tamu"))
                .header("Cookie", &cookies)
                .header("Origin", &url)
                .form(&form)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let elapsed = t.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(status, 303, "a tap of the visitor book");
            if i >= args.warmup {
                samples.push(elapsed);
            }
        }
        handle.stop().await;
        samples
    });

    // Every tap is in the store.
    let (store, _) = Store::open(&path, identity, clock).unwrap();
    let stored = store
        .desk_records("visit", u32::MAX)
        .unwrap()
        .iter()
        .filter(|r| matches!(r, RecordBody::Visit(v) if !v.withdrawn))
        .count();
    assert_eq!(stored, args.warmup + args.taps, "visits stored");

    samples.sort_by(f64::total_cmp);
    let p50 = quantile(&samples, 0.5);
    let p99 = quantile(&samples, 0.99);
    eprintln!(
        "bench_visit_entry: {} taps after {} warm-up, {stored} visits stored; p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.2} ms",
        samples.len(),
        args.warmup,
        samples.last().copied().unwrap_or_default()
    );
    for (name, value, goal) in [
        ("visit_entry_p50_ms", p50, "info"),
        ("visit_entry_p99_ms", p99, "< 50"),
    ] {
        println!(
            "{}",
            serde_json::json!({"name": name, "value": value, "unit": "ms", "goal": goal})
        );
    }
}
