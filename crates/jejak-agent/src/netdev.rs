//! Interface byte counters: Linux's `/proc/net/dev` (or a file in its format that a test
//! or `net_dev_path` names), and the rule that picks which Windows interfaces count.

use std::path::Path;

use crate::store::NetCounters;

/// The counters now: from `file` when the configuration names one (`net_dev_path`, in
/// `/proc/net/dev`'s format), otherwise from the system's own source.
pub fn read_counters(file: Option<&Path>) -> Option<NetCounters> {
    match file {
        Some(path) => read_proc_net_dev(path),
        None => crate::platform::system_net_counters(),
    }
}

/// Sums received and sent bytes over every interface except loopback. `None` when the
/// file cannot be read or has no usable line (for example on a system without it).
pub fn read_proc_net_dev(path: &Path) -> Option<NetCounters> {
    let text = std::fs::read_to_string(path).ok()?;
    parse(&text)
}

/// One row of Windows' interface table (`GetIfTable2`), as far as the rule needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceRow {
    /// The IANA interface type (`IF_TYPE_*`).
    pub if_type: u32,
    /// `HardwareInterface`: the interface belongs to a hardware adapter.
    pub hardware: bool,
    /// `FilterInterface`: a filter driver's view of another interface (its bytes are that
    /// interface's bytes again).
    pub filter: bool,
    /// `ConnectorPresent`: a physical network adapter is there.
    pub connector_present: bool,
    pub rx: u64,
    pub tx: u64,
}

const IF_TYPE_PPP: u32 = 23;
const IF_TYPE_SOFTWARE_LOOPBACK: u32 = 24;
const IF_TYPE_TUNNEL: u32 = 131;
const IF_TYPE_WWANPP: u32 = 243;
const IF_TYPE_WWANPP2: u32 = 244;

/// Whether a Windows interface's bytes are the PC's internet use: physical adapters
/// (Ethernet, Wi-Fi, a USB 4G modem that shows as a network adapter) and modem links
/// (PPP dial-up, mobile broadband), never loopback, tunnels, filter drivers' copies of an
/// adapter, or virtual adapters (Hyper-V, VPN, VirtualBox), whose traffic is counted on
/// the physical adapter it leaves through.
pub fn counts_on_windows(row: &InterfaceRow) -> bool {
    if row.filter || matches!(row.if_type, IF_TYPE_SOFTWARE_LOOPBACK | IF_TYPE_TUNNEL) {
        return false;
    }
    let modem_link = matches!(row.if_type, IF_TYPE_PPP | IF_TYPE_WWANPP | IF_TYPE_WWANPP2);
    modem_link || (row.hardware && row.connector_present)
}

/// Sums the interfaces that count; `None` when none does.
pub fn sum_windows_interfaces(rows: &[InterfaceRow]) -> Option<NetCounters> {
    let counted: Vec<&InterfaceRow> = rows.iter().filter(|r| counts_on_windows(r)).collect();
    if counted.is_empty() {
        return None;
    }
    Some(
        counted
            .iter()
            .fold(NetCounters { rx: 0, tx: 0 }, |acc, r| NetCounters {
                rx: acc.rx.saturating_add(r.rx),
                tx: acc.tx.saturating_add(r.tx),
            }),
    )
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
        assert_eq!(read_proc_net_dev(Path::new("/nonexistent/net/dev")), None);
    }

    /// Rows as `GetIfTable2` gave them on a Windows 10 PC with Ethernet, Wi-Fi, a USB
    /// 4G modem (RNDIS), a PPP dial-up link, the filter drivers' copies of the Wi-Fi
    /// adapter, loopback, a Teredo tunnel and a Hyper-V virtual switch.
    #[test]
    fn windows_counts_physical_adapters_and_modem_links_only() {
        let row = |if_type, hardware, filter, connector_present, rx, tx| InterfaceRow {
            if_type,
            hardware,
            filter,
            connector_present,
            rx,
            tx,
        };
        let rows = [
            row(6, true, false, true, 1_000, 100),         // Ethernet
            row(71, true, false, true, 2_000, 200),        // Wi-Fi
            row(71, true, true, true, 2_000, 200),         // WFP filter over the Wi-Fi
            row(71, false, true, false, 2_000, 200),       // native Wi-Fi filter
            row(6, true, false, true, 30_000, 3_000),      // USB 4G modem (RNDIS)
            row(23, false, false, false, 400_000, 40_000), // PPP dial-up modem
            row(24, false, false, false, 9_999, 9_999),    // loopback
            row(131, false, false, false, 5_000, 5_000),   // Teredo tunnel
            row(6, false, false, false, 7_000, 7_000),     // Hyper-V vEthernet
        ];
        assert_eq!(
            sum_windows_interfaces(&rows),
            Some(NetCounters {
                rx: 433_000,
                tx: 43_300
            })
        );
        assert_eq!(sum_windows_interfaces(&rows[6..]), None, "nothing counts");
    }

    #[test]
    fn a_named_file_wins_over_the_system() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev");
        std::fs::write(&path, SAMPLE).unwrap();
        assert_eq!(
            read_counters(Some(&path)),
            Some(NetCounters { rx: 1500, tx: 250 })
        );
    }
}
