//! The server's Prometheus metrics (`GET /metrics`).
//!
//! Built on `prometheus-client`, the Prometheus project's own Rust client: it is
//! maintained with the exposition format, needs no global registry (tests can run many
//! servers in one process) and has no macros or background threads. The figures are
//! counts and durations only; no label ever carries a library, a PC or patron data.

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
        for (outcome, n) in [
            ("new", new),
            ("duplicate", duplicates),
            ("rejected", rejected),
        ] {
            self.records
                .get_or_create(&[("outcome", outcome)])
                .inc_by(n);
        }
    }

    /// Records how long storing one batch took.
    pub fn ingest_duration(&self, elapsed: Duration) {
        self.ingest_seconds.observe(elapsed.as_secs_f64());
    }

    /// The text exposition (OpenMetrics, which Prometheus reads).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error would leave a partial page, which
        // a scraper reports, rather than a panic.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_exposition() {
        let m = Metrics::new();
        m.batch(BatchResult::Accepted);
        m.batch(BatchResult::SeqGap);
        m.records(5, 2, 1);
        m.ingest_duration(Duration::from_millis(3));
        let text = m.render();
        assert!(
            text.contains("jejak_batches_total{result=\"accepted\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("jejak_records_total{outcome=\"new\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("jejak_ingest_duration_seconds_count 1"),
            "{text}"
        );
    }
}
