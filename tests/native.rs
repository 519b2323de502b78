//! Native histograms of the crate's own `Histogram` and of the layer's duration
//! families, read from real scrapes: protobuf decoded bucket by bucket, text and
//! OpenMetrics checked by promtool and Python's parser, multi-process mode's classic
//! fallback.

mod common;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use common::fixtures::{classic_buckets, native_side, positive_buckets, protobuf_histograms};
use common::{scrape_reply, serve, Exposition, TempDir};
use tower_prometheus::layer::{HttpLabels, HttpMethod, RequestDuration, REQUEST_DURATION};
use tower_prometheus::metrics::{Buckets, Histogram, NativeBuckets};
use tower_prometheus::{BuildError, MetricsEndpoint, MetricsLayer, MetricsRegistry};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0";

/// A registry with a native-only histogram `work_seconds` at schema 0 (zero threshold
/// 0.5) and a classic-and-native one `size_bytes`, with known observations.
fn known_registry() -> MetricsRegistry {
    let registry = MetricsRegistry::new();
    registry
        .provider("work_seconds", "Work.", || {
            let config = NativeBuckets::new(0)
                .and_then(|c| c.with_zero_threshold(0.5))
                .expect("a valid configuration");
            let work = Histogram::native(config);
            for value in [1.0, 1.0, 3.0, 0.25, -2.0, f64::NAN] {
                work.observe(value);
            }
            work
        })
        .unwrap();
    registry
        .provider("size_bytes", "Sizes.", || {
            let size = Histogram::classic_and_native(
                Buckets::new([10.0, 100.0]).unwrap(),
                NativeBuckets::new(1).unwrap(),
            );
            for value in [4.0, 50.0, 500.0] {
                size.observe(value);
            }
            size
        })
        .unwrap();
    registry
}

/// Every native bucket, the zero bucket and the classic `+Inf` of a native-only
/// histogram; both bucket kinds of a classic-and-native one.
async fn protobuf_carries_spans_deltas_and_the_zero_bucket() {
    let addr = serve(MetricsEndpoint::new(&known_registry()).unwrap()).await;
    let work = &protobuf_histograms(addr, "work_seconds").await[0];
    assert_eq!(work.schema, 0);
    assert_eq!(work.zero_threshold, 0.5);
    assert_eq!(work.zero_count, 1);
    // 1 closes bucket 0, 3 lies in (2, 4]: bucket 2; -2 closes negative bucket 1.
    assert_eq!(positive_buckets(work), [(0, 2), (2, 1)]);
    assert_eq!(
        native_side(&work.negative_span, &work.negative_delta),
        [(1, 1)]
    );
    // NaN is counted, as in Go's client, but in no native bucket.
    assert_eq!(work.sample_count, 6);
    assert!(work.sample_sum.is_nan());
    assert_eq!(classic_buckets(work), [(f64::INFINITY, 6)]);

    let size = &protobuf_histograms(addr, "size_bytes").await[0];
    assert_eq!(size.schema, 1);
    // Schema 1: 4 = 2^2 closes bucket 4; 50 in (2^5.5, 2^6]: 12; 500 in (2^8.5, 2^9]: 18.
    assert_eq!(positive_buckets(size), [(4, 1), (12, 1), (18, 1)]);
    assert_eq!(
        classic_buckets(size),
        [(10.0, 1), (100.0, 2), (f64::INFINITY, 3)]
    );
    assert_eq!((size.sample_count, size.sample_sum), (3, 554.0));
}

/// Text 0.0.4 and OpenMetrics scrapes of a native-only histogram: its count, sum and
/// `+Inf` bucket.
async fn text_scrapes_show_count_sum_and_inf() {
    let addr = serve(MetricsEndpoint::new(&known_registry()).unwrap()).await;
    let text = Exposition::parse(&common::get(addr, "/metrics").await.body);
    let open = scrape_reply(addr, &[("accept", OPENMETRICS)]).await;
    assert!(open.body.ends_with("# EOF\n"), "{}", open.body);
    let open = Exposition::parse(&open.body);
    for scrape in [&text, &open] {
        assert!(
            scrape.declares("work_seconds", "histogram"),
            "{}",
            scrape.text
        );
        assert_eq!(
            scrape.value("work_seconds_bucket", &[("le", "+Inf")]),
            Some(6.0)
        );
        assert_eq!(scrape.value("work_seconds_count", &[]), Some(6.0));
        assert_eq!(scrape.matching("work_seconds_bucket", &[]).len(), 1);
        let at_ten = scrape
            .matching("size_bytes_bucket", &[])
            .into_iter()
            .find(|s| s.labels["le"].parse::<f64>().ok() == Some(10.0))
            .map(|s| s.value);
        assert_eq!(at_ten, Some(1.0), "{}", scrape.text);
        assert_eq!(scrape.value("size_bytes_sum", &[]), Some(554.0));
    }
}

/// A native-only histogram `work_seconds` of three ordinary values (sum 0.432), for the
/// external parsers.
fn ordinary_registry() -> MetricsRegistry {
    let registry = MetricsRegistry::new();
    registry
        .provider("work_seconds", "Work.", || {
            let work = Histogram::native(NativeBuckets::default());
            for value in [0.002, 0.03, 0.4] {
                work.observe(value);
            }
            work
        })
        .unwrap();
    registry
}

async fn promtool_accepts_the_text_scrape_of_a_native_only_histogram() -> common::Checked {
    let addr = serve(MetricsEndpoint::new(&ordinary_registry()).unwrap()).await;
    let text = common::get(addr, "/metrics").await.body;
    assert!(
        text.contains("work_seconds_bucket{le=\"+Inf\"} 3"),
        "{text}"
    );
    common::promtool_accepts(&text)
}

async fn python_parsers_read_a_native_only_histogram() -> common::Checked {
    let python = common::require_python_client("parse native-only histograms with Python")?;
    let addr = serve(MetricsEndpoint::new(&ordinary_registry()).unwrap()).await;
    let openmetrics = scrape_reply(addr, &[("accept", OPENMETRICS)]).await.body;
    let text = common::get(addr, "/metrics").await.body;
    // Prints the histogram's samples as `name le value`.
    let script = "for family in parse(sys.stdin.read()):\n\
        \x20   if family.name == 'work_seconds' and family.type == 'histogram':\n\
        \x20       for s in family.samples:\n\
        \x20           print(s.name, s.labels.get('le', '-'), s.value)\n";
    for (flavour, body) in [("om", &openmetrics), ("text", &text)] {
        let samples = common::python_parser_output(&python, script, flavour, body);
        let value = |name: &str, le: &str| {
            samples.lines().find_map(|line| {
                let mut fields = line.split(' ');
                (fields.next() == Some(name) && fields.next() == Some(le))
                    .then(|| fields.next()?.parse::<f64>().ok())?
            })
        };
        assert_eq!(
            value("work_seconds_bucket", "+Inf"),
            Some(3.0),
            "{flavour}: {samples}"
        );
        assert_eq!(
            value("work_seconds_count", "-"),
            Some(3.0),
            "{flavour}: {samples}"
        );
        let sum = value("work_seconds_sum", "-");
        assert!(
            sum.is_some_and(|s| (s - 0.432).abs() < 1e-12),
            "{flavour}: {samples}"
        );
        assert_eq!(samples.lines().count(), 3, "{flavour}: {samples}");
    }
    Ok(())
}

/// Past the bucket limit, the scrape carries a lower schema whose buckets fit.
async fn the_bucket_limit_lowers_the_schema_of_the_scrape() {
    let registry = MetricsRegistry::new();
    registry
        .provider("spread_seconds", "Spread.", || {
            Histogram::native(NativeBuckets::new(3).unwrap().with_max_buckets(5).unwrap())
        })
        .unwrap();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    let spread = registry.get::<Histogram>("spread_seconds").unwrap();
    // 2^-4 .. 2^4 in 40 steps: many buckets at schema 3.
    let values: Vec<f64> = (0..=40)
        .map(|i| (f64::from(i) / 5.0 - 4.0).exp2())
        .collect();
    for value in &values {
        spread.observe(*value);
    }
    let histogram = &protobuf_histograms(addr, "spread_seconds").await[0];
    let buckets = positive_buckets(histogram);
    assert!(buckets.len() <= 5, "{buckets:?}");
    assert!(histogram.schema < 3, "{}", histogram.schema);
    // One schema higher would not fit: the scrape lowers no more than it must.
    let finer: std::collections::BTreeSet<i32> = values
        .iter()
        .map(|v| (v.log2() * f64::from(1 << (histogram.schema + 1))).ceil() as i32)
        .collect();
    assert!(finer.len() > 5, "{finer:?}");
    // Every observation is in the bucket its value lies in at the served schema.
    let scale =
        f64::from(1 << histogram.schema.max(0)) / f64::from(1 << (-histogram.schema).max(0));
    for value in &values {
        let key = (value.log2() * scale).ceil() as i32;
        assert!(
            buckets.iter().any(|(k, _)| *k == key),
            "{value} in {key}: {buckets:?}"
        );
    }
    assert_eq!(
        buckets.iter().map(|(_, c)| c).sum::<u64>(),
        values.len() as u64
    );
}

/// A gRPC answer with its status in the headers (trailers-only).
async fn grpc_reply() -> axum::response::Response {
    (
        [
            (header::CONTENT_TYPE, "application/grpc"),
            (header::HeaderName::from_static("grpc-status"), "0"),
        ],
        Vec::<u8>::new(),
    )
        .into_response()
}

async fn grpc_call(addr: std::net::SocketAddr) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let call = http::Request::post(format!("http://{addr}/shop.Cart/Get"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"\0\0\0\0\0",
        )))
        .expect("valid request");
    let reply = client.request(call).await.expect("the call is answered");
    assert_eq!(reply.status(), 200);
}

/// The duration series of `GET /` answered 200.
fn root_duration(registry: &MetricsRegistry) -> Histogram {
    registry
        .get::<RequestDuration>(REQUEST_DURATION)
        .unwrap()
        .get(&HttpLabels::new(HttpMethod::Get, 200, "/"))
        .expect("the route's series")
}

fn router(layer: MetricsLayer) -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/shop.Cart/Get", post(grpc_reply))
        .layer(layer)
}

/// The layer's duration families, native: every request in a native bucket, the
/// classic buckets left out unless kept.
async fn the_layers_duration_families_are_native() {
    let config = NativeBuckets::new(4).unwrap();
    for keep_classic in [false, true] {
        let registry = MetricsRegistry::new();
        let layer = MetricsLayer::builder(&registry)
            .native_histograms(config)
            .classic_buckets(keep_classic)
            .time_to_headers_histogram(true)
            .build()
            .unwrap();
        let addr = serve(router(layer)).await;
        for _ in 0..3 {
            common::get(addr, "/").await;
        }
        grpc_call(addr).await;
        for (family, classic_len, count) in [
            ("http_server_request_duration_seconds", 15, 3),
            ("http_server_time_to_headers_seconds", 15, 3),
            ("grpc_server_handling_seconds", 12, 1),
        ] {
            let histograms = protobuf_histograms(addr, family).await;
            // The HTTP families also hold the gRPC call's series, as HTTP.
            let histogram = histograms
                .iter()
                .find(|h| h.sample_count == count)
                .unwrap_or_else(|| panic!("{family}: no series of {count}: {histograms:?}"));
            assert_eq!(histogram.schema, 4, "{family}");
            let native: u64 = positive_buckets(histogram).iter().map(|(_, c)| c).sum();
            assert_eq!(native + histogram.zero_count, count, "{family}");
            let expected = if keep_classic { classic_len } else { 1 };
            assert_eq!(histogram.bucket.len(), expected, "{family}");
            assert_eq!(
                histogram.bucket.last().map(|b| b.cumulative_count),
                Some(count)
            );
        }
        assert_eq!(root_duration(&registry).native_buckets(), Some(&config));
    }
}

async fn layer_settings_that_cannot_hold_are_typed_errors() {
    let no_buckets = MetricsLayer::builder(&MetricsRegistry::new())
        .classic_buckets(false)
        .build();
    assert!(
        matches!(
            no_buckets,
            Err(BuildError::Setting {
                setting: "classic_buckets",
                ..
            })
        ),
        "{no_buckets:?}"
    );

    let registry = MetricsRegistry::new();
    let config = NativeBuckets::new(2).unwrap();
    MetricsLayer::builder(&registry)
        .native_histograms(config)
        .build()
        .unwrap();
    // The same layout again joins the shared families; another one cannot.
    MetricsLayer::builder(&registry)
        .native_histograms(config)
        .build()
        .unwrap();
    for other in [
        MetricsLayer::builder(&registry).native_histograms(NativeBuckets::new(3).unwrap()),
        MetricsLayer::builder(&registry)
            .native_histograms(config)
            .classic_buckets(true),
        MetricsLayer::builder(&registry).classic_buckets(true),
    ] {
        let built = other.build();
        match built {
            Err(BuildError::Setting { setting, message }) => {
                assert_eq!(setting, "native_histograms");
                assert!(message.contains(REQUEST_DURATION), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Python's files have no native buckets: in multi-process mode the duration
/// histograms serve their classic buckets only (native-only ones, count, sum and
/// `+Inf`), and a protobuf scrape carries no native bucket.
async fn multiprocess_mode_serves_classic_buckets_only() {
    for keep_classic in [false, true] {
        let dir = TempDir::new("native-multiprocess");
        let registry = MetricsRegistry::new();
        registry.multiprocess_dir(dir.path()).unwrap();
        let layer = MetricsLayer::builder(&registry)
            .native_histograms(NativeBuckets::default())
            .classic_buckets(keep_classic)
            .build()
            .unwrap();
        let addr = serve(router(layer)).await;
        for _ in 0..2 {
            common::get(addr, "/").await;
        }
        let histograms = protobuf_histograms(addr, REQUEST_DURATION).await;
        let histogram = histograms
            .iter()
            .find(|h| h.sample_count == 2)
            .unwrap_or_else(|| panic!("{histograms:?}"));
        assert!(histogram.positive_span.is_empty() && histogram.positive_delta.is_empty());
        assert_eq!((histogram.zero_threshold, histogram.zero_count), (0.0, 0));
        assert_eq!(histogram.bucket.len(), if keep_classic { 15 } else { 1 });
        let text = Exposition::parse(&common::get(addr, "/metrics").await.body);
        let route = [("http_route", "/")];
        assert_eq!(
            text.sum("http_server_request_duration_seconds_count", &route),
            2.0
        );
        assert_eq!(root_duration(&registry).native_buckets(), None);
    }
}

test_main! {
    tokio protobuf_carries_spans_deltas_and_the_zero_bucket,
    tokio text_scrapes_show_count_sum_and_inf,
    tokio promtool_accepts_the_text_scrape_of_a_native_only_histogram,
    tokio python_parsers_read_a_native_only_histogram,
    tokio the_bucket_limit_lowers_the_schema_of_the_scrape,
    tokio_2 the_layers_duration_families_are_native,
    tokio layer_settings_that_cannot_hold_are_typed_errors,
    tokio multiprocess_mode_serves_classic_buckets_only,
}
