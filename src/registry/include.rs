//! The checks of [`MetricsRegistry::include_registry`]: no name declared twice, and no
//! two names that could put the same name on the wire.

use std::collections::HashMap;
use std::sync::Arc;

use super::{MetricsRegistry, RegistryError};

/// The suffixes the exposition formats append to a family's name for its samples
/// (OpenMetrics 1.0: counter, summary, histogram, gauge histogram, info). OpenMetrics
/// asks exposers to avoid names that end with them.
const SAMPLE_SUFFIXES: [&str; 8] = [
    "_total", "_created", "_bucket", "_count", "_sum", "_gcount", "_gsum", "_info",
];

/// A declared name, with the registry that declares it.
pub(super) struct Declared {
    pub(super) name: String,
    registry: Option<Arc<str>>,
}

impl Declared {
    pub(super) fn new(name: &str, registry: &MetricsRegistry) -> Self {
        Self {
            name: name.to_string(),
            registry: registry.name.clone(),
        }
    }

    /// The registry, as an error names it; `side` when it has no name.
    fn registry(&self, side: &str) -> String {
        match &self.registry {
            Some(name) => format!("registry `{name}`"),
            None => side.to_string(),
        }
    }
}

/// Refuses a name declared on both sides, then two names that could expose the same
/// name on the wire, whatever types their providers build (which only run later).
pub(super) fn check(existing: &[Declared], incoming: &[Declared]) -> Result<(), RegistryError> {
    if let Some(clash) = incoming
        .iter()
        .find(|d| existing.iter().any(|e| e.name == d.name))
    {
        return Err(RegistryError::Duplicate {
            name: clash.name.clone(),
        });
    }
    let mut exposed: HashMap<String, &Declared> = HashMap::new();
    for declared in existing {
        for wire in wire_names(&declared.name) {
            exposed.entry(wire).or_insert(declared);
        }
    }
    for declared in incoming {
        for wire in wire_names(&declared.name) {
            if let Some(other) = exposed.get(&wire) {
                return Err(RegistryError::NameCollision {
                    name: other.name.clone(),
                    registry: other.registry("the including registry"),
                    other: declared.name.clone(),
                    other_registry: declared.registry("the included registry"),
                    exposed: wire,
                });
            }
        }
    }
    Ok(())
}

/// Every name a metric declared as `name` may put on the wire, as a family or a
/// sample, whatever its type: `name` with each sample suffix, and for a name ending
/// with `_total` (a counter may be declared with it) the family without it.
fn wire_names(name: &str) -> Vec<String> {
    let mut names = vec![name.to_string()];
    names.extend(
        SAMPLE_SUFFIXES
            .iter()
            .map(|suffix| format!("{name}{suffix}")),
    );
    if let Some(family) = name.strip_suffix("_total") {
        names.push(family.to_string());
        names.push(format!("{family}_created"));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::wire_names;

    fn collide(a: &str, b: &str) -> bool {
        let b = wire_names(b);
        wire_names(a).iter().any(|wire| b.contains(wire))
    }

    #[test]
    fn names_that_a_type_would_expose_alike_collide() {
        for (a, b) in [
            ("jobs", "jobs_total"),
            ("jobs_total", "jobs_created"),
            ("latency", "latency_bucket"),
            ("latency", "latency_count"),
            ("latency", "latency_sum"),
            ("x", "x_created"),
            ("build", "build_info"),
        ] {
            assert!(collide(a, b), "{a} and {b}");
            assert!(collide(b, a), "{b} and {a}");
        }
        for (a, b) in [
            ("jobs", "jobs_done"),
            ("x_count", "x_sum"),
            ("queue", "queue_depth"),
        ] {
            assert!(!collide(a, b), "{a} and {b}");
        }
    }
}
