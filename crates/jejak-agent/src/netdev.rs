//! Interface byte counters from Linux's `/proc/net/dev`.

use std::path::Path;

use crate::store::NetCounters;

/// Sums received and sent bytes over every interface except loopback. `None` when the
/// file cannot be read or has no usable line (for example on a system without it).
pub fn read_counters(path: &Path) -> Option<NetCounters> {
    let text = std::fs::read_to_string(path).ok()?;
    parse(&text)
}

fn parse(text: &str) -> Option<NetCounters> {
    let mut total = NetCounters { rx: 0, tx: 0 };
    let mut seen = false;
    // The first two lines are headers; each further line is
    // "  iface: rx_bytes rx_packets … (8 receive fields) tx_bytes …".
    for line in text.lines().skip(2) {
        let Some((name, fields)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let numbers: Vec<u64> = fields
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        if numbers.len() < 9 {
            continue;
        }
        total.rx = total.rx.saturating_add(numbers[0]);
        total.tx = total.tx.saturating_add(numbers[8]);
        seen = true;
    }
    seen.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  999999     100    0    0    0     0          0         0   999999     100    0    0    0     0       0          0
  eth0: 1000 10 0 0 0 0 0 0 200 5 0 0 0 0 0 0
 wwan0:   500       3    0    0    0     0          0         0       50       1    0    0    0     0       0          0
";

    #[test]
    fn loopback_is_excluded_and_interfaces_are_summed() {
        assert_eq!(parse(SAMPLE), Some(NetCounters { rx: 1500, tx: 250 }));
    }

    #[test]
    fn garbage_gives_nothing() {
        assert_eq!(parse("nonsense"), None);
        assert_eq!(read_counters(Path::new("/nonexistent/net/dev")), None);
    }
}
