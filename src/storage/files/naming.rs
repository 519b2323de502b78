//! The names of the files in the directory: which kind of metric a file holds and
//! which process wrote it, as Python prometheus_client names them.

/// How the gauges of several processes combine; the names are Python's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GaugeMode {
    /// One series per process, with a `pid` label (Python's default).
    #[default]
    All,
    /// Like `All`, for live processes only.
    LiveAll,
    /// The sum over processes.
    Sum,
    /// The sum over live processes (for example requests in flight).
    LiveSum,
    /// The largest value.
    Max,
    /// The largest value among live processes.
    LiveMax,
    /// The smallest value.
    Min,
    /// The smallest value among live processes.
    LiveMin,
    /// The value set last.
    MostRecent,
    /// The value set last among live processes.
    LiveMostRecent,
}

impl GaugeMode {
    pub(crate) const ALL: [GaugeMode; 10] = [
        GaugeMode::All,
        GaugeMode::LiveAll,
        GaugeMode::Sum,
        GaugeMode::LiveSum,
        GaugeMode::Max,
        GaugeMode::LiveMax,
        GaugeMode::Min,
        GaugeMode::LiveMin,
        GaugeMode::MostRecent,
        GaugeMode::LiveMostRecent,
    ];

    /// Python's name of the mode, as it appears in file names.
    pub fn as_str(self) -> &'static str {
        match self {
            GaugeMode::All => "all",
            GaugeMode::LiveAll => "liveall",
            GaugeMode::Sum => "sum",
            GaugeMode::LiveSum => "livesum",
            GaugeMode::Max => "max",
            GaugeMode::LiveMax => "livemax",
            GaugeMode::Min => "min",
            GaugeMode::LiveMin => "livemin",
            GaugeMode::MostRecent => "mostrecent",
            GaugeMode::LiveMostRecent => "livemostrecent",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.as_str() == name)
    }

    /// Whether exited processes drop out.
    pub fn is_live(self) -> bool {
        self.as_str().starts_with("live")
    }

    /// Whether the mode needs the time of each change.
    pub(crate) fn is_most_recent(self) -> bool {
        matches!(self, GaugeMode::MostRecent | GaugeMode::LiveMostRecent)
    }
}

/// Which file of a process a value lives in: the kind of metric, and for gauges how
/// processes combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum FileKind {
    Counter,
    Histogram,
    Gauge(GaugeMode),
    /// Python's summaries; this crate reads them but writes none.
    Summary,
}

impl FileKind {
    /// Every kind of file, gauges in every mode.
    pub(crate) fn all() -> impl Iterator<Item = FileKind> {
        [FileKind::Counter, FileKind::Histogram, FileKind::Summary]
            .into_iter()
            .chain(GaugeMode::ALL.into_iter().map(FileKind::Gauge))
    }

    /// The name of the file of this kind that process `pid` writes.
    pub(crate) fn file_name(self, pid: u32) -> String {
        self.file_name_of(pid)
    }

    /// The name of the file of this kind whose owner (a pid, or the archive) is `owner`.
    pub(crate) fn file_name_of(self, owner: impl std::fmt::Display) -> String {
        match self {
            FileKind::Counter => format!("counter_{owner}.db"),
            FileKind::Histogram => format!("histogram_{owner}.db"),
            FileKind::Summary => format!("summary_{owner}.db"),
            FileKind::Gauge(mode) => format!("gauge_{}_{owner}.db", mode.as_str()),
        }
    }

    /// What a file's name says: its kind and the pid of the process that wrote it.
    pub(crate) fn parse(name: &str) -> Option<(FileKind, &str)> {
        let stem = name.strip_suffix(".db")?;
        let mut parts = stem.split('_');
        let kind = match parts.next()? {
            "counter" => FileKind::Counter,
            "histogram" => FileKind::Histogram,
            "summary" => FileKind::Summary,
            "gauge" => FileKind::Gauge(GaugeMode::from_name(parts.next()?)?),
            _ => return None,
        };
        let pid = parts.next()?;
        parts.next().is_none().then_some((kind, pid))
    }
}

/// Name of the lock file a process holds for its whole life. Python's reader only
/// reads `*.db` files, so it does not see these.
pub(crate) fn lock_file_name(pid: u32) -> String {
    format!("tower_prometheus_{pid}.lock")
}

/// The pid whose lock file `name` is, if it is one.
pub(crate) fn lock_file_owner(name: &str) -> Option<u32> {
    name.strip_prefix("tower_prometheus_")?
        .strip_suffix(".lock")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_as_python_writes_them() {
        assert_eq!(
            FileKind::parse("counter_12.db"),
            Some((FileKind::Counter, "12"))
        );
        assert_eq!(
            FileKind::parse("gauge_livesum_7.db"),
            Some((FileKind::Gauge(GaugeMode::LiveSum), "7"))
        );
        assert_eq!(
            FileKind::parse("histogram_3.db"),
            Some((FileKind::Histogram, "3"))
        );
        assert_eq!(FileKind::parse("gauge_bogus_3.db"), None);
        assert_eq!(FileKind::parse("tower_prometheus_3.lock"), None);
        assert_eq!(
            FileKind::parse("summary_3.db"),
            Some((FileKind::Summary, "3"))
        );
        for kind in [FileKind::Counter, FileKind::Histogram, FileKind::Summary]
            .into_iter()
            .chain(GaugeMode::ALL.map(FileKind::Gauge))
        {
            assert_eq!(FileKind::parse(&kind.file_name(41)), Some((kind, "41")));
        }
    }
}
