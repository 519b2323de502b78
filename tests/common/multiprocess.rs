//! Python's view of a multiprocess directory, to compare this crate's aggregate with.

use std::process::Command;

use super::Exposition;

/// A Python worker writing multiprocess files: `python -c PYTHON_WORKER <n>` counts `n`
/// into `py_jobs{kind="a\"b"}`, observes `0.05 * n` in `py_latency_seconds` (buckets 0.1
/// and 1), and sets the gauges `py_peak` (mode max), `py_each` (all) and `py_live`
/// (livesum) to `n`; with a second argument it prints `ready` and stays alive until its
/// stdin closes.
pub const PYTHON_WORKER: &str = "import sys\n\
    from prometheus_client import Counter, Gauge, Histogram\n\
    n = int(sys.argv[1])\n\
    Counter('py_jobs', 'Jobs.', ['kind']).labels('a\"b').inc(n)\n\
    Histogram('py_latency_seconds', 'Latency.', buckets=[0.1, 1.0]).observe(0.05 * n)\n\
    Gauge('py_peak', 'Peak.', multiprocess_mode='max').set(n)\n\
    Gauge('py_each', 'Each.', multiprocess_mode='all').set(n)\n\
    Gauge('py_live', 'Live.', multiprocess_mode='livesum').set(n)\n\
    if len(sys.argv) > 2:\n\
    \x20   print('ready', flush=True)\n\
    \x20   sys.stdin.read()\n";

/// A metric file of one entry, whose key is `key` (written as it is, valid or not)
/// and whose value is 1, laid out as Python and this crate lay out theirs: `used`,
/// then the key's length, the key padded to 8 bytes, the value and a timestamp.
pub fn file_of_one_entry(key: &str) -> Vec<u8> {
    file_of_entries(&[(key, 1.0)])
}

/// A metric file of `entries`, each a key (written as it is) and its value, laid out as
/// [`file_of_one_entry`] lays out one.
pub fn file_of_entries<K: AsRef<str>>(entries: &[(K, f64)]) -> Vec<u8> {
    let mut file = vec![0u8; 8];
    for (key, value) in entries {
        let key = key.as_ref();
        let padded = key.len() + (8 - (key.len() + 4) % 8);
        let start = file.len();
        file.extend_from_slice(&i32::try_from(key.len()).unwrap().to_le_bytes());
        file.extend_from_slice(key.as_bytes());
        file.resize(start + 4 + padded, b' ');
        file.extend_from_slice(&value.to_le_bytes());
        file.extend_from_slice(&0.0f64.to_le_bytes());
    }
    let used = i32::try_from(file.len()).unwrap();
    file[..4].copy_from_slice(&used.to_le_bytes());
    file.resize(file.len() + 64, 0);
    file
}

/// The entries of a metric file, `(key, value)` in file order: the layout
/// [`file_of_one_entry`] writes, read back.
pub fn file_entries(path: &std::path::Path) -> Vec<(String, f64)> {
    let file = std::fs::read(path).expect("metric file read");
    let word = |at: usize| i32::from_le_bytes(file[at..at + 4].try_into().unwrap());
    let used = usize::try_from(word(0)).expect("used is positive");
    let mut entries = Vec::new();
    let mut at = 8;
    while at < used {
        let length = usize::try_from(word(at)).expect("key length is positive");
        let key = String::from_utf8(file[at + 4..at + 4 + length].to_vec()).expect("UTF-8 key");
        at += 4 + length + (8 - (length + 4) % 8);
        let value = f64::from_le_bytes(file[at..at + 8].try_into().unwrap());
        entries.push((key, value));
        at += 16;
    }
    entries
}

/// Runs [`PYTHON_WORKER`] with `n` to the end, writing its files in `dir`.
pub fn run_python_worker(python: &std::path::Path, dir: &std::path::Path, n: &str) {
    let status = Command::new(python)
        .env("PROMETHEUS_MULTIPROC_DIR", dir)
        .args(["-c", PYTHON_WORKER, n])
        .status()
        .expect("python runs");
    assert!(status.success());
}

/// Python's `MultiProcessCollector` over `dir`, in the text format.
pub fn python_aggregate(python: &std::path::Path, dir: &std::path::Path) -> Exposition {
    python_aggregate_via(python, "PROMETHEUS_MULTIPROC_DIR", dir)
}

/// Python's `MultiProcessCollector` over `dir`, which only the environment variable
/// `variable` names.
pub fn python_aggregate_via(
    python: &std::path::Path,
    variable: &str,
    dir: &std::path::Path,
) -> Exposition {
    let output = Command::new(python)
        .env_remove("PROMETHEUS_MULTIPROC_DIR")
        .env(variable, dir)
        .args([
            "-c",
            "from prometheus_client import CollectorRegistry, generate_latest, multiprocess\n\
             r = CollectorRegistry()\n\
             multiprocess.MultiProcessCollector(r)\n\
             print(generate_latest(r).decode())",
        ])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Exposition::parse(&String::from_utf8_lossy(&output.stdout))
}

/// Every sample Python's aggregate has (other than `skip`) has the same value here.
/// Bucket bounds are compared as numbers: Python writes `le="1.0"` where the Go and
/// Rust clients write `le="1"`.
pub fn assert_same_samples(ours: &Exposition, python: &Exposition, skip: &[&str]) {
    let mut compared = 0;
    for sample in python
        .samples
        .iter()
        .filter(|s| !skip.iter().any(|p| s.name.starts_with(p)))
    {
        let value = ours
            .samples
            .iter()
            .find(|candidate| {
                candidate.name == sample.name
                    && candidate.labels.len() == sample.labels.len()
                    && candidate
                        .labels
                        .iter()
                        .all(|(k, v)| match sample.labels.get(k) {
                            Some(theirs) if k == "le" => {
                                theirs.parse::<f64>().ok() == v.parse::<f64>().ok()
                            }
                            Some(theirs) => theirs == v,
                            None => false,
                        })
            })
            .map(|s| s.value);
        assert!(
            value.is_some_and(|v| (v - sample.value).abs() <= 1e-9 * sample.value.abs().max(1.0)),
            "{} {:?}: python {} here {:?}\n--- here ---\n{}",
            sample.name,
            sample.labels,
            sample.value,
            value,
            ours.text
        );
        compared += 1;
    }
    assert!(compared > 0, "python aggregated nothing");
}
