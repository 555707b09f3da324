//! The server's Prometheus metrics (`GET /metrics`).
//!
//! Built on `prometheus-client`, the Prometheus project's own Rust client: it is
//! maintained with the exposition format, needs no global registry (tests can run many
//! servers in one process) and has no macros or background threads. The figures are
//! counts and durations only; no label ever carries a library, a PC or patron data.
//!
//! Two expositions, as the scraper's `Accept` asks ([`Exposition::for_accept`]):
//! OpenMetrics (`application/openmetrics-text`, what Prometheus asks for first), which
//! the client writes, and the classic text format 0.0.4 (`text/plain`, the default: what
//! `curl`, `promtool check metrics` and older scrapers read). The classic one is the
//! OpenMetrics text with its three differences undone ([`classic_text`]): a counter's
//! HELP and TYPE name the `_total` series itself, and there is no `# UNIT` or `# EOF`.
//! Every labelled series exists from the start, at zero, so a rate over a result that
//! has not happened yet is 0 rather than missing.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Label = [(&'static str, &'static str); 1];

/// What one `POST /api/v1/batches` came to, as the `result` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchResult {
    /// Stored (200).
    Accepted,
    /// 409: the batch started past the held seq.
    SeqGap,
    /// 401: no token, an unknown one or a revoked one.
    Unauthorized,
    /// 403: a staff token, or a payload naming another device.
    Forbidden,
    /// 400 or 422: unreadable or invalid.
    Invalid,
    /// 413: over a size or record limit.
    TooLarge,
    /// 415: a media type or content encoding the server does not read.
    Unsupported,
    /// 5xx: the store failed.
    Error,
}

impl BatchResult {
    /// Every result, for the series made at start.
    pub const ALL: [BatchResult; 8] = [
        BatchResult::Accepted,
        BatchResult::SeqGap,
        BatchResult::Unauthorized,
        BatchResult::Forbidden,
        BatchResult::Invalid,
        BatchResult::TooLarge,
        BatchResult::Unsupported,
        BatchResult::Error,
    ];

    fn label(self) -> &'static str {
        match self {
            BatchResult::Accepted => "accepted",
            BatchResult::SeqGap => "seq_gap",
            BatchResult::Unauthorized => "unauthorized",
            BatchResult::Forbidden => "forbidden",
            BatchResult::Invalid => "invalid",
            BatchResult::TooLarge => "too_large",
            BatchResult::Unsupported => "unsupported",
            BatchResult::Error => "error",
        }
    }
}

/// The registry and the handles the handlers update.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    batches: Family<Label, Counter>,
    records: Family<Label, Counter>,
    ingest_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("jejak");
        let batches = Family::<Label, Counter>::default();
        registry.register("batches", "Batches received, by result", batches.clone());
        let records = Family::<Label, Counter>::default();
        registry.register(
            "records",
            "Records of accepted batches, by outcome (new, duplicate, rejected)",
            records.clone(),
        );
        // 1 ms to about 65 s: a batch waits for at least one fsync, and at most for a
        // queue of other batches on a slow disk.
        let ingest_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register(
            "ingest_duration_seconds",
            "Time from the end of the request body to the committed answer",
            ingest_seconds.clone(),
        );
        // Every labelled series at zero from the start.
        for result in BatchResult::ALL {
            let _ = batches.get_or_create(&[("result", result.label())]);
        }
        for outcome in RECORD_OUTCOMES {
            let _ = records.get_or_create(&[("outcome", outcome)]);
        }
        Metrics {
            registry,
            batches,
            records,
            ingest_seconds,
        }
    }

    /// Counts one batch request.
    pub fn batch(&self, result: BatchResult) {
        self.batches
            .get_or_create(&[("result", result.label())])
            .inc();
    }

    /// Counts the records of an accepted batch.
    pub fn records(&self, new: u64, duplicates: u64, rejected: u64) {
        for (outcome, n) in RECORD_OUTCOMES.into_iter().zip([new, duplicates, rejected]) {
            self.records
                .get_or_create(&[("outcome", outcome)])
                .inc_by(n);
        }
    }

    /// Records how long storing one batch took.
    pub fn ingest_duration(&self, elapsed: Duration) {
        self.ingest_seconds.observe(elapsed.as_secs_f64());
    }

    /// The exposition in `format`.
    pub fn render(&self, format: Exposition) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error would leave a partial page, which
        // a scraper reports, rather than a panic.
        let _ = encode(&mut out, &self.registry);
        match format {
            Exposition::OpenMetrics => out,
            Exposition::Classic => classic_text(&out),
        }
    }
}

/// The `outcome` label's values of `jejak_records_total`.
const RECORD_OUTCOMES: [&str; 3] = ["new", "duplicate", "rejected"];

/// The two text expositions Prometheus' tools read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// OpenMetrics 1.0.0.
    OpenMetrics,
    /// The classic text format, version 0.0.4.
    Classic,
}

impl Exposition {
    /// The exposition an `Accept` header asks for: OpenMetrics when
    /// `application/openmetrics-text` has the highest quality of what this server
    /// writes (the first listed wins a tie), the classic text otherwise and by default.
    pub fn for_accept(accept: Option<&str>) -> Exposition {
        let mut best: Option<(f32, Exposition)> = None;
        for entry in accept.unwrap_or_default().split(',') {
            let mut parts = entry.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let quality = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, q)| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let offered = match media.as_str() {
                "application/openmetrics-text" => Exposition::OpenMetrics,
                "text/plain" | "text/*" | "*/*" => Exposition::Classic,
                _ => continue,
            };
            if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, offered));
            }
        }
        best.map_or(Exposition::Classic, |(_, exposition)| exposition)
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Exposition::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The classic text format (0.0.4) of an OpenMetrics text: a counter family's `# HELP`
/// and `# TYPE` name its `_total` series (OpenMetrics names the family without the
/// suffix, so classic parsers filed the samples as untyped, without help), and the
/// `# UNIT` lines, `_created` samples and the `# EOF` marker, which 0.0.4 does not know,
/// are left out. Samples are written the same way in both.
pub fn classic_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let family = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .and_then(|rest| rest.split(' ').next());
        match family {
            Some(name) if counters.contains(&name) => {
                // "# HELP name …" → "# HELP name_total …"
                let (keyword, rest) = line.split_at(7);
                out.push_str(keyword);
                out.push_str(name);
                out.push_str("_total");
                out.push_str(&rest[name.len()..]);
            }
            _ => {
                let sample = line.split(['{', ' ']).next().unwrap_or_default();
                if !line.starts_with('#')
                    && sample
                        .strip_suffix("_created")
                        .is_some_and(|name| counters.contains(&name))
                {
                    continue;
                }
                out.push_str(line);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_both_expositions() {
        let m = Metrics::new();
        m.batch(BatchResult::Accepted);
        m.batch(BatchResult::SeqGap);
        m.records(5, 2, 1);
        m.ingest_duration(Duration::from_millis(3));
        for format in [Exposition::OpenMetrics, Exposition::Classic] {
            let text = m.render(format);
            for sample in [
                "jejak_batches_total{result=\"accepted\"} 1",
                "jejak_records_total{outcome=\"new\"} 5",
                "jejak_ingest_duration_seconds_count 1",
            ] {
                assert!(text.contains(sample), "{format:?}: {sample}\n{text}");
            }
        }
    }

    #[test]
    fn the_classic_text_types_the_total_series_and_has_no_eof() {
        let m = Metrics::new();
        let openmetrics = m.render(Exposition::OpenMetrics);
        assert!(openmetrics.contains("# TYPE jejak_batches counter"));
        assert!(openmetrics.ends_with("# EOF\n"));
        let classic = m.render(Exposition::Classic);
        assert!(
            classic.contains("# TYPE jejak_batches_total counter"),
            "{classic}"
        );
        assert!(classic.contains("# HELP jejak_batches_total Batches received"));
        assert!(classic.contains("# TYPE jejak_records_total counter"));
        assert!(classic.contains("# TYPE jejak_ingest_duration_seconds histogram"));
        assert!(!classic.contains("# EOF"));
        assert!(!classic.contains("# UNIT"));
        assert_eq!(
            classic_text(
                "# HELP a_thing A thing.\n# TYPE a_thing counter\n# UNIT a_thing seconds\na_thing_total 3\na_thing_created 1.7e9\n# EOF\n"
            ),
            "# HELP a_thing_total A thing.\n# TYPE a_thing_total counter\na_thing_total 3\n"
        );
    }

    #[test]
    fn every_labelled_series_is_there_at_zero_from_the_start() {
        let text = Metrics::new().render(Exposition::Classic);
        for result in BatchResult::ALL {
            let sample = format!("jejak_batches_total{{result=\"{}\"}} 0", result.label());
            assert!(text.contains(&sample), "{sample}\n{text}");
        }
        for outcome in RECORD_OUTCOMES {
            let sample = format!("jejak_records_total{{outcome=\"{outcome}\"}} 0");
            assert!(text.contains(&sample), "{sample}");
        }
    }

    #[test]
    fn the_exposition_follows_the_accept_header() {
        use Exposition::{Classic, OpenMetrics};
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        for (accept, expected) in [
            (None, Classic),
            (Some(""), Classic),
            (Some("*/*"), Classic),
            (Some("text/plain"), Classic),
            (Some("text/plain; version=0.0.4"), Classic),
            (Some(prometheus), OpenMetrics),
            (Some("application/openmetrics-text"), OpenMetrics),
            (
                Some("text/plain;q=0.9, application/openmetrics-text"),
                OpenMetrics,
            ),
            (
                Some("application/openmetrics-text;q=0.2, text/plain"),
                Classic,
            ),
            (Some("application/openmetrics-text;q=0"), Classic),
            (Some("application/json"), Classic),
        ] {
            assert_eq!(Exposition::for_accept(accept), expected, "{accept:?}");
        }
    }
}
