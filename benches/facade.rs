//! `counter!` with two labels through this crate's facade recorder against
//! metrics-exporter-prometheus's recorder, the same call onto a series that exists, in
//! one run. Each recorder is set for the bench thread only.
//!
//! `cargo bench --bench facade --features metrics` prints each time per call and
//! their ratio.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use metrics::Recorder;
use metrics_exporter_prometheus::PrometheusBuilder;
use tower_prometheus::facade::FacadeRecorder;
use tower_prometheus::MetricsRegistry;

/// The call every variant makes: the macro (the key of literal labels is static) and
/// the record.
fn record() {
    metrics::counter!("orders", "kind" => "book", "region" => "eu").increment(black_box(1));
}

fn variants() -> Vec<(&'static str, Box<dyn Recorder>)> {
    let registry = MetricsRegistry::new();
    let ours = FacadeRecorder::new(&registry).expect("recorder");
    let theirs = PrometheusBuilder::new().build_recorder();
    vec![
        ("tower_prometheus", Box::new(ours)),
        ("metrics_exporter_prometheus", Box::new(theirs)),
    ]
}

/// Calls per timed run, and runs per variant (taking turns; each keeps its median).
const CALLS: u32 = 1_000_000;
const TURNS: usize = 15;

fn per_call(variants: &[(&str, Box<dyn Recorder>)]) -> Vec<f64> {
    let mut runs = vec![Vec::with_capacity(TURNS); variants.len()];
    for _ in 0..TURNS {
        for ((_, recorder), runs) in variants.iter().zip(&mut runs) {
            metrics::with_local_recorder(recorder.as_ref(), || {
                let start = Instant::now();
                for _ in 0..CALLS {
                    record();
                }
                runs.push(start.elapsed().as_secs_f64() * 1e9 / f64::from(CALLS));
            });
        }
    }
    runs.iter_mut()
        .map(|runs| {
            runs.sort_by(f64::total_cmp);
            runs[runs.len() / 2]
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let variants = variants();
    let mut group = c.benchmark_group("facade");
    for (name, recorder) in &variants {
        metrics::with_local_recorder(recorder.as_ref(), || {
            record();
            group.bench_function(*name, |b| b.iter(record));
        });
    }
    group.finish();

    let times = per_call(&variants);
    println!("\ncounter! with 2 labels onto an existing series, median of {TURNS} runs:");
    for ((name, _), time) in variants.iter().zip(&times) {
        println!("  {name:<28} {time:>6.1} ns");
    }
    println!(
        "  tower_prometheus / metrics_exporter_prometheus = {:.2}",
        times[0] / times[1]
    );
}

criterion_group!(facade_benches, benches);

fn main() {
    facade_benches();
    Criterion::default().configure_from_args().final_summary();
}
