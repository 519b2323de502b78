//! Python's view of a multiprocess directory, to compare this crate's aggregate with.

use std::process::Command;

use super::Exposition;

/// Python's `MultiProcessCollector` over `dir`, in the text format.
pub fn python_aggregate(python: &std::path::Path, dir: &std::path::Path) -> Exposition {
    let output = Command::new(python)
        .env("PROMETHEUS_MULTIPROC_DIR", dir)
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
