//! Standard process metrics, read from `/proc` on every scrape; their names and
//! meaning are listed on `MetricsRegistry::without_process_metrics`.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// `/proc` reports CPU times in USER_HZ, which Linux fixes at 100 for user space.
const TICKS_PER_SECOND: f64 = 100.0;

/// Encodes the process metrics on each scrape.
#[derive(Debug, Default)]
pub(crate) struct ProcessCollector;

/// What `/proc` said; a missing value is left out.
#[derive(Debug, Default, PartialEq)]
struct Snapshot {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<f64>,
    virtual_bytes: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
    start_time_seconds: Option<f64>,
}

impl Snapshot {
    fn read() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let fields = stat.as_deref().map(stat_fields).unwrap_or_default();
        let field = |n: usize| fields.get(n).and_then(|f| f.parse::<f64>().ok());
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| line_value(&stat, "btime"));
        Snapshot {
            cpu_seconds: field(UTIME)
                .zip(field(STIME))
                .map(|(user, system)| (user + system) / TICKS_PER_SECOND),
            resident_bytes: line_value(&status, "VmRSS:").map(|kib| kib * 1024.0),
            virtual_bytes: field(VSIZE),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|entries| entries.count() as f64),
            max_fds: std::fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|limits| soft_limit(&limits, "Max open files")),
            start_time_seconds: boot_time
                .zip(field(STARTTIME))
                .map(|(boot, ticks)| boot + ticks / TICKS_PER_SECOND),
        }
    }
}

/// Indexes into `stat_fields`, which start at field 3 of `/proc/<pid>/stat`.
const UTIME: usize = 14 - 3;
const STIME: usize = 15 - 3;
const STARTTIME: usize = 22 - 3;
const VSIZE: usize = 23 - 3;

/// The fields after the command name, which may itself hold spaces and parentheses.
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rfind(')')
        .map(|end| stat[end + 1..].split_whitespace().collect())
        .unwrap_or_default()
}

/// The first number on the line that starts with `key`.
fn line_value(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
}

/// The soft limit of the `/proc/<pid>/limits` line named `name`.
fn soft_limit(limits: &str, name: &str) -> Option<f64> {
    let rest = limits.lines().find_map(|line| line.strip_prefix(name))?;
    match rest.split_whitespace().next()? {
        "unlimited" => Some(f64::INFINITY),
        value => value.parse().ok(),
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let snapshot = Snapshot::read();
        if let Some(seconds) = snapshot.cpu_seconds {
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(seconds).encode(metric)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                snapshot.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                snapshot.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                snapshot.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                snapshot.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                snapshot.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(value).encode(metric)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_formats() {
        let stat = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1000 123456789 300";
        let fields = stat_fields(stat);
        assert_eq!(fields[UTIME], "250");
        assert_eq!(fields[STIME], "50");
        assert_eq!(fields[STARTTIME], "1000");
        assert_eq!(fields[VSIZE], "123456789");
        assert_eq!(
            line_value("VmPeak:\t  9 kB\nVmRSS:\t  2176 kB\n", "VmRSS:"),
            Some(2176.0)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(soft_limit(limits, "Max open files"), Some(1024.0));
        assert_eq!(
            soft_limit("Max open files unlimited unlimited files", "Max open files"),
            Some(f64::INFINITY)
        );
        assert_eq!(stat_fields("garbage"), Vec::<&str>::new());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let snapshot = Snapshot::read();
        assert!(snapshot
            .resident_bytes
            .is_some_and(|rss| rss > 1024.0 * 1024.0));
        assert!(snapshot.open_fds.is_some_and(|fds| fds >= 3.0));
        assert!(snapshot.max_fds >= snapshot.open_fds);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        assert!(snapshot
            .start_time_seconds
            .is_some_and(|start| start <= now + 1.0 && start > now - 86_400.0));
    }
}
