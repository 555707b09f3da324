//! Benchmark: the latency of a durable session start and a durable session end,
//! through the same store path the CLI uses (`Store::open`, `start_session`,
//! `end_session`; WAL with `synchronous=FULL` on a real file), and the cost of one raw
//! 4 KiB append + `fdatasync` on the same file system, sampled between the session
//! writes so that both see the same disk, so the session figure can be read relative
//! to the disk.
//!
//! ```text
//! cargo run --release -p jejak-agent --example bench_session_write -- \
//!     --dir /some/dir/on/the/disk [--ops 2000] [--fsync-samples 200] [--warmup 20]
//! ```
//!
//! Prints one `name value` line per figure on stdout (`scripts/bench.sh` turns them
//! into JSON lines with goals); details go to stderr.

#![allow(clippy::unwrap_used)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jejak_agent::clock::{Clock, SystemClock};
use jejak_agent::store::{NetCounters, Store};
use jejak_domain::{
    AgeGroup, DeviceIdentity, EndReason, Gender, LibraryCode, PatronProfile, PcCode, Purpose,
    UserKind,
};

struct Args {
    dir: PathBuf,
    /// Timed operations in all: half are starts, half are ends.
    ops: usize,
    fsync_samples: usize,
    /// Untimed start/end pairs first (the first write of a run also records the boot).
    warmup: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        dir: std::env::temp_dir(),
        ops: 2000,
        fsync_samples: 200,
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
            "--ops" => args.ops = value().parse().unwrap(),
            "--fsync-samples" => args.fsync_samples = value().parse().unwrap(),
            "--warmup" => args.warmup = value().parse().unwrap(),
            other => {
                eprintln!(
                    "unknown argument {other}; usage: bench_session_write --dir DIR [--ops N] [--fsync-samples N] [--warmup N]"
                );
                std::process::exit(2)
            }
        }
    }
    args.ops = args.ops.max(2);
    args.fsync_samples = args.fsync_samples.max(1);
    args
}

/// The value at quantile `q` (nearest rank) of sorted milliseconds.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// A patron as the librarian would check one in.
fn profile(i: usize) -> PatronProfile {
    let purposes = [Purpose::Pendidikan, Purpose::Ekonomi, Purpose::Komunikasi];
    PatronProfile {
        user_kind: UserKind::Anggota,
        purposes: vec![purposes[i % purposes.len()]],
        gender: [Gender::P, Gender::L][i % 2],
        age_group: AgeGroup::Remaja,
        group_size: 1,
        patron_key: None,
    }
}

/// Times `ops` session writes (half starts, half ends) and takes `fsync_samples` raw
/// fsyncs spread evenly between them.
fn session_writes(
    dir: &Path,
    ops: usize,
    warmup: usize,
    fsync_samples: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let identity = DeviceIdentity {
        library: LibraryCode::parse("bench").unwrap(),
        pc: PcCode::parse("pc-01").unwrap(),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let path = dir.join("jejak.db");
    let opened = Instant::now();
    let (mut store, _) = Store::open(&path, identity, clock).unwrap();
    eprintln!(
        "bench_session_write: opened {} in {:.2} ms",
        path.display(),
        ms(opened.elapsed())
    );
    let pairs = ops / 2;
    let mut starts = Vec::with_capacity(pairs);
    let mut ends = Vec::with_capacity(pairs);
    let mut fsync = FsyncProbe::new(dir, fsync_samples);
    let mut bytes = 0u64;
    for i in 0..warmup + pairs {
        // The CLI passes the interface counters it read; so does the benchmark.
        bytes += 1500;
        let net = Some(NetCounters {
            rx: bytes,
            tx: bytes / 4,
        });
        let t = Instant::now();
        store.start_session(profile(i), net).unwrap();
        let start = ms(t.elapsed());
        let t = Instant::now();
        store.end_session(EndReason::Logout, net).unwrap();
        let end = ms(t.elapsed());
        if i >= warmup {
            starts.push(start);
            ends.push(end);
            // Outside the timed calls: fsync samples so far in proportion to pairs done.
            let due = (i - warmup + 1) * fsync_samples / pairs;
            while fsync.samples.len() < due {
                fsync.sample();
            }
        }
    }
    (starts, ends, fsync.finish())
}

/// Raw 4 KiB appends + `fdatasync` to a file beside the store, as a WAL commit does on
/// a growing log. Sampled between the session writes, so that both see the same disk.
struct FsyncProbe {
    path: PathBuf,
    file: File,
    samples: Vec<f64>,
}

impl FsyncProbe {
    fn new(dir: &Path, capacity: usize) -> Self {
        let path = dir.join("fsync-probe.bin");
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .unwrap();
        FsyncProbe {
            path,
            file,
            samples: Vec::with_capacity(capacity),
        }
    }

    fn sample(&mut self) {
        let block = [0x5au8; 4096];
        let t = Instant::now();
        self.file.write_all(&block).unwrap();
        self.file.sync_data().unwrap();
        self.samples.push(ms(t.elapsed()));
    }

    fn finish(self) -> Vec<f64> {
        drop(self.file);
        std::fs::remove_file(&self.path).unwrap();
        self.samples
    }
}

fn main() {
    let args = parse_args();
    std::fs::create_dir_all(&args.dir).unwrap();
    let (starts, ends, fsync) =
        session_writes(&args.dir, args.ops, args.warmup, args.fsync_samples);
    let fsync = sorted(fsync);
    let all = sorted(starts.iter().chain(&ends).copied().collect());
    let starts = sorted(starts);
    let ends = sorted(ends);

    eprintln!(
        "bench_session_write: {} timed writes ({} starts, {} ends) after {} warm-up pairs",
        all.len(),
        starts.len(),
        ends.len(),
        args.warmup
    );
    for (name, v) in [("start", &starts), ("end", &ends), ("all", &all)] {
        eprintln!(
            "  {name:5} p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            quantile(v, 0.5),
            quantile(v, 0.9),
            quantile(v, 0.99),
            quantile(v, 1.0)
        );
    }
    eprintln!(
        "  fsync p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms ({} samples)",
        quantile(&fsync, 0.5),
        quantile(&fsync, 0.99),
        quantile(&fsync, 1.0),
        fsync.len()
    );

    let p50 = quantile(&all, 0.5);
    let fsync_p50 = quantile(&fsync, 0.5);
    println!("session_write_p50_ms {p50:.4}");
    println!("session_write_p99_ms {:.4}", quantile(&all, 0.99));
    println!("fsync_ms {fsync_p50:.4}");
    println!(
        "session_write_p50_vs_fsync {:.4}",
        p50 / fsync_p50.max(1e-6)
    );
}
