//! A real Prometheus server (Debian package `prometheus`) scrapes an app through the
//! layer every second; its query API must see every request and answer quantiles,
//! once as Prometheus scrapes by default (OpenMetrics) and once with native histograms
//! (protobuf).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::fixtures::protobuf_families;
use common::prometheus::{api, query, query_body, start_prometheus, Prometheus};
use common::{eventually, serve, TempDir};
use prometheus_client::metrics::histogram::{Histogram as NativeHistogram, NativeHistogramConfig};
use tower_prometheus::metrics::{Histogram, NativeBuckets};
use tower_prometheus::{MetricsEndpoint, MetricsLayer, MetricsRegistry};

const REQUESTS: u32 = 25;

/// The relabelling the README gives for a layer built with `name_prefix("shop")`: the
/// prefix taken off the layer's families, so the shipped rules and dashboard apply.
const UNPREFIX: &str = "    metric_relabel_configs:\n      - source_labels: [__name__]\n        regex: 'shop_((?:http|grpc)_server_.+)'\n        target_label: __name__\n        replacement: '$1'\n";

/// The feature that makes Prometheus 2.42 scrape protobuf and keep native histograms.
const NATIVE: &[&str] = &["native-histograms"];

fn features(native: bool) -> &'static [&'static str] {
    if native {
        NATIVE
    } else {
        &[]
    }
}

/// A Prometheus scraping `target` with the shipped rules, and `relabel` if given.
fn start_with_shipped_rules(
    binary: &std::path::Path,
    target: SocketAddr,
    relabel: Option<&str>,
) -> Prometheus {
    let rules = contrib().join("prometheus/rules.yml");
    start_prometheus(binary, target, &[], Some(&rules), relabel)
}

/// The shipped rules and dashboard.
fn contrib() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib")
}

/// The query of a dashboard line `"expr": "..."`, with its variables given values
/// that select everything.
fn panel_query(line: &str) -> Option<String> {
    let expr = line.trim().strip_prefix("\"expr\": \"")?;
    Some(
        expr.trim_end_matches(',')
            .trim_end_matches('"')
            .replace("\\\"", "\"")
            .replace("$job", ".*")
            .replace("$__rate_interval", "1m"),
    )
}

async fn scraped_by_prometheus(native: bool) -> common::Checked {
    let binary = common::require_tool(
        "prometheus",
        "run a real Prometheus server against the endpoint",
    )?;
    let registry = MetricsRegistry::new();
    registry
        .provider("work_seconds", "Work done per request.", || {
            NativeHistogram::new_classic_and_native(
                [0.001, 0.01, 0.1],
                NativeHistogramConfig::with_schema(3),
            )
        })
        .unwrap();
    let router = Router::new()
        .route("/", get(|| async { "hello" }))
        .layer(MetricsLayer::new(&registry).unwrap());
    let app = serve(router).await;
    let work = registry.get::<NativeHistogram>("work_seconds").unwrap();
    let prometheus = start_prometheus(&binary, app, features(native), None, None);

    for i in 0..REQUESTS {
        common::get(app, "/").await;
        work.observe(f64::from(i) / 1000.0);
    }
    let total = "sum(http_server_requests_total{http_route=\"/\"})";
    eventually(
        Duration::from_secs(60),
        "Prometheus to see every request",
        || async {
            (query(prometheus.addr, total).await == Some(f64::from(REQUESTS))).then_some(())
        },
    )
    .await;
    // A rate needs traffic in its window: keep a trickle of requests (bounded by the
    // polls below) while waiting for the quantiles.
    let trickle = tokio::spawn({
        let work = work.clone();
        async move {
            for i in 0..1200u32 {
                common::get(app, "/trickle").await;
                work.observe(f64::from(i % 10) / 1000.0);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let p99 = "histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket[1m])))";
    let quantile = eventually(
        Duration::from_secs(60),
        "a p99 of the request duration",
        || async { query(prometheus.addr, p99).await },
    )
    .await;
    assert!(quantile >= 0.0, "{quantile}");
    if native {
        // Only a native histogram answers without `_bucket` series.
        let native_p99 = "histogram_quantile(0.99, sum(rate(work_seconds[1m])))";
        let value = eventually(
            Duration::from_secs(60),
            "a p99 of the native histogram",
            || async { query(prometheus.addr, native_p99).await },
        )
        .await;
        assert!((0.0..=0.05).contains(&value), "{value}");
    }
    trickle.abort();
    Ok(())
}

async fn prometheus_scrapes_openmetrics_by_default() -> common::Checked {
    scraped_by_prometheus(false).await
}

async fn prometheus_scrapes_native_histograms_through_protobuf() -> common::Checked {
    scraped_by_prometheus(true).await
}

/// The relative width of a bucket at `schema`: `2^(2^-schema) - 1`.
fn bucket_width(schema: i32) -> f64 {
    (-f64::from(schema)).exp2().exp2() - 1.0
}

/// Waits until Prometheus has stored a sample of `histogram` with `count`
/// observations, so a rate over the next minute starts from it.
async fn stored(prometheus: SocketAddr, histogram: &str, count: f64) {
    let promql = format!("histogram_count({histogram})");
    eventually(
        Duration::from_secs(60),
        &format!("a stored sample of {histogram} at {count}"),
        || async { (query(prometheus, &promql).await == Some(count)).then_some(()) },
    )
    .await;
}

/// Known observations, recorded all at once into the crate's native-only histograms,
/// read back by Prometheus 2.42 (`--enable-feature=native-histograms`, protobuf):
/// `histogram_quantile` over their rate is within the served schema's relative error
/// of the exact quantile.
///
/// The bound: the rate's increase is exactly the batch (its first sample, stored
/// before the batch, holds none of it; extrapolation scales every bucket alike), so
/// Prometheus's rank `q * n` falls in the bucket `(l, u]` that holds the exact
/// quantile, the value of rank `ceil(q * n)` (n = 1001 keeps `q * n` off whole numbers,
/// away from rounding). Its estimate is interpolated inside that bucket, so both lie in
/// `(l, u]` and differ by at most `u - l = (2^(2^-s) - 1) * l`, less than
/// `(2^(2^-s) - 1)` times the exact quantile.
async fn native_quantiles_are_within_the_schemas_relative_error() -> common::Checked {
    let binary = common::require_tool(
        "prometheus",
        "read the crate's native histograms with a real Prometheus",
    )?;
    let registry = MetricsRegistry::new();
    registry
        .provider("known_seconds", "Known values, schema 3.", || {
            Histogram::native(NativeBuckets::default())
        })
        .unwrap();
    registry
        .provider(
            "limited_seconds",
            "Known values, at most 30 buckets.",
            || Histogram::native(NativeBuckets::new(3).unwrap().with_max_buckets(30).unwrap()),
        )
        .unwrap();
    let app = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    let prometheus = start_prometheus(&binary, app, NATIVE, None, None);
    for name in ["known_seconds", "limited_seconds"] {
        stored(prometheus.addr, name, 0.0).await;
    }

    // 1001 distinct values spread evenly on a log scale from 1 ms to 2 s, in a
    // scrambled order.
    let n = 1001u32;
    let values: Vec<f64> = (0..n)
        .map(|i| 0.001 * 2000f64.powf(f64::from(i * 7919 % n) / f64::from(n)))
        .collect();
    let known = registry.get::<Histogram>("known_seconds").unwrap();
    let limited = registry.get::<Histogram>("limited_seconds").unwrap();
    for value in &values {
        known.observe(*value);
        limited.observe(*value);
    }
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);

    // The schema each is served at, from the protobuf scrape Prometheus reads too.
    let reply = common::scrape_reply(
        app,
        &[("accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")],
    )
    .await;
    let schema_of = |name: &str| {
        protobuf_families(&reply.raw)
            .into_iter()
            .find(|family| family.name == name)
            .and_then(|family| family.metric.into_iter().next()?.histogram)
            .map(|histogram| histogram.schema)
            .expect("a native histogram")
    };
    let known_schema = schema_of("known_seconds");
    let limited_schema = schema_of("limited_seconds");
    assert_eq!(known_schema, 3);
    assert_eq!(
        limited_schema, 1,
        "{limited_schema}: 11 octaves take about 44 buckets at schema 2, 22 at schema 1"
    );

    for (name, schema) in [
        ("known_seconds", known_schema),
        ("limited_seconds", limited_schema),
    ] {
        let bound = bucket_width(schema);
        for q in [0.5, 0.9, 0.99] {
            let rank = (q * f64::from(n)).ceil() as usize;
            let exact = sorted[rank - 1];
            let promql = format!("histogram_quantile({q}, sum(rate({name}[1m])))");
            let estimate = eventually(Duration::from_secs(30), &format!("`{promql}`"), || async {
                query(prometheus.addr, &promql).await
            })
            .await;
            let error = (estimate - exact).abs() / exact;
            assert!(
                error <= bound,
                "{name} q={q}: Prometheus says {estimate}, exact {exact}: relative error \
                 {error} above {bound} (schema {schema})"
            );
        }
    }
    Ok(())
}

/// The layer's duration family, native, through a real Prometheus: every request
/// counted, and the median of requests that each take at least 25 ms no lower than
/// the bucket of 25 ms allows.
async fn the_layers_native_durations_reach_prometheus() -> common::Checked {
    let binary = common::require_tool(
        "prometheus",
        "read the layer's native durations with a real Prometheus",
    )?;
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .native_histograms(NativeBuckets::default())
        .build()
        .unwrap();
    let router = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(25)).await;
                "slow"
            }),
        )
        .layer(layer);
    let app = serve(router).await;
    let prometheus = start_prometheus(&binary, app, NATIVE, None, None);
    common::get(app, "/slow").await;
    let series = "http_server_request_duration_seconds{http_route=\"/slow\"}";
    stored(prometheus.addr, series, 1.0).await;
    for _ in 0..20 {
        common::get(app, "/slow").await;
    }
    stored(prometheus.addr, series, 21.0).await;
    let promql = format!("histogram_quantile(0.5, sum(rate({series}[1m])))");
    let median = eventually(Duration::from_secs(30), "the median", || async {
        query(prometheus.addr, &promql).await
    })
    .await;
    let lowest = 0.025 / (1.0 + bucket_width(3));
    assert!(
        (lowest..2.0).contains(&median),
        "median {median}: not within [{lowest}, 2)"
    );
    Ok(())
}

/// Every panel query of the shipped dashboard and every recording rule of the shipped
/// rules returns data from a real Prometheus that scrapes an app under traffic (HTTP
/// and gRPC, served and sent, some of it failing, objectives declared, multi-process
/// mode).
async fn every_dashboard_query_and_recording_rule_returns_data() -> common::Checked {
    use std::time::Duration as D;

    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::post;
    use tower_prometheus::layer::Objective;

    let binary = common::require_tool(
        "prometheus",
        "run every dashboard query against a real Prometheus",
    )?;
    let contrib = contrib();
    let files = TempDir::new("dashboard-multiprocess");
    std::fs::write(files.path().join("counter_4000009.db"), [9u8; 3]).expect("a corrupt file");
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(files.path()).unwrap();
    registry.service_build("1.2.3", "abc123").unwrap();
    registry
        .collector("always_failing", |_| Err("backend down".into()))
        .unwrap();
    let layer = MetricsLayer::builder(&registry)
        // Two label sets per family, so a third route folds into the overflow series.
        .max_series(2)
        .objective(
            "/",
            Objective::availability(0.99).with_latency(D::from_millis(250), 0.9),
        )
        .grpc_objective("/shop.Cart/Get", Objective::availability(0.99))
        .build()
        .unwrap();
    let grpc_reply = || async {
        let mut message = vec![0u8, 0, 0, 0, 2];
        message.extend_from_slice(b"ok");
        (
            [
                (header::CONTENT_TYPE, "application/grpc"),
                (header::HeaderName::from_static("grpc-status"), "0"),
            ],
            message,
        )
            .into_response()
    };
    let router = Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route("/extra", get(|| async { "past the cap" }))
        .route("/shop.Cart/Get", post(grpc_reply))
        .layer(layer);
    let app = serve(router).await;
    let prometheus = start_with_shipped_rules(&binary, app, None);

    // Traffic for the whole test, bounded in count: plain requests, and calls through
    // a client layer on the same registry, so the app's outgoing calls are recorded.
    let client = tower::ServiceBuilder::new()
        .layer(tower_prometheus::ClientMetricsLayer::new(&registry).unwrap())
        .service(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http(),
        );
    let traffic = tokio::spawn(async move {
        use tower::ServiceExt;

        for i in 0..3000u32 {
            common::get(app, "/").await;
            let outgoing = if i % 4 == 0 {
                common::get(app, "/extra").await;
                "/fail"
            } else {
                "/"
            };
            let get = http::Request::get(format!("http://{app}{outgoing}"))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("valid request");
            let _ = client.clone().oneshot(get).await;
            let call = http::Request::post(format!("http://{app}/shop.Cart/Get"))
                .header(header::CONTENT_TYPE, "application/grpc")
                .body(http_body_util::Full::new(bytes::Bytes::from_static(
                    b"\0\0\0\0\x02hi",
                )))
                .expect("valid request");
            let _ = client.clone().oneshot(call).await;
            tokio::time::sleep(D::from_millis(20)).await;
        }
    });

    let dashboard =
        std::fs::read_to_string(contrib.join("grafana/dashboard.json")).expect("dashboard.json");
    let mut queries: Vec<String> = dashboard.lines().filter_map(panel_query).collect();
    assert!(queries.len() >= 25, "{queries:?}");
    let rules = std::fs::read_to_string(contrib.join("prometheus/rules.yml")).expect("rules.yml");
    queries.extend(
        rules
            .lines()
            .filter_map(|line| line.trim().strip_prefix("- record: "))
            .map(str::to_string),
    );
    // The deploy annotation shows a new build-info series: ask for it first.
    for query in &queries {
        eventually(
            Duration::from_secs(90),
            &format!("data for `{query}`"),
            || async {
                let body = query_body(prometheus.addr, query).await?;
                (body.contains("\"status\":\"success\"") && !body.contains("\"result\":[]"))
                    .then_some(())
            },
        )
        .await;
    }
    traffic.abort();
    Ok(())
}

/// A layer with a prefix, scraped through the README's relabelling: Prometheus stores
/// the unprefixed names (with the constant labels), and the shipped rules record from
/// them.
async fn a_prefix_relabelled_away_keeps_the_shipped_rules_working() -> common::Checked {
    let binary = common::require_tool("prometheus", "scrape a prefixed layer through relabelling")?;
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .name_prefix("shop")
        .constant_labels([("service", "checkout")])
        .build()
        .unwrap();
    let router = Router::new()
        .route("/", get(|| async { "hello" }))
        .layer(layer);
    let app = serve(router).await;
    let prometheus = start_with_shipped_rules(&binary, app, Some(UNPREFIX));
    let traffic = tokio::spawn(async move {
        for _ in 0..3000u32 {
            common::get(app, "/").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let unprefixed = "sum(http_server_requests_total{http_route=\"/\",service=\"checkout\"})";
    let seen = eventually(Duration::from_secs(60), "the unprefixed series", || async {
        query(prometheus.addr, unprefixed)
            .await
            .filter(|seen| *seen > 0.0)
    })
    .await;
    assert!(seen > 0.0);
    let rate = "sum(http_route:http_server_requests:rate5m{http_route=\"/\"})";
    eventually(
        Duration::from_secs(60),
        "a shipped recording rule's result",
        || async {
            query(prometheus.addr, rate)
                .await
                .filter(|rate| *rate > 0.0)
        },
    )
    .await;
    let prefixed = query_body(prometheus.addr, "shop_http_server_requests_total")
        .await
        .expect("Prometheus answers");
    assert!(prefixed.contains("\"result\":[]"), "{prefixed}");
    traffic.abort();
    Ok(())
}

/// `(trace_id, span_id)` of every exemplar Prometheus stores for the series `promql`
/// selects, from `/api/v1/query_exemplars`; `None` while the query fails.
async fn stored_exemplars(prometheus: SocketAddr, promql: &str) -> Option<Vec<(String, String)>> {
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs()
        + 3600;
    let end = end.to_string();
    let params = [("query", promql), ("start", "0"), ("end", end.as_str())];
    let body = api(prometheus, "query_exemplars", &params).await?;
    if !body.contains("\"status\":\"success\"") {
        return None;
    }
    // {"labels":{"span_id":"..","trace_id":".."},"value":"0.0012","timestamp":1.7e9}
    let label = |labels: &str, name: &str| -> Option<String> {
        let after = labels.split(&format!("\"{name}\":\"")).nth(1)?;
        Some(after[..after.find('"')?].to_string())
    };
    body.split("\"labels\":{")
        .skip(1)
        .map(|exemplar| {
            let labels = &exemplar[..exemplar.find('}')?];
            Some((label(labels, "trace_id")?, label(labels, "span_id")?))
        })
        .collect()
}

/// Exemplars through a real Prometheus 2.42 (`--enable-feature=exemplar-storage`,
/// which scrapes OpenMetrics): a client sends a W3C trace context with each request,
/// and `/api/v1/query_exemplars` for the duration histogram, the request counter and
/// the dashboard's exemplar panel returns the traces it sent, each with its span.
async fn exemplars_reach_prometheus() -> common::Checked {
    use tower_prometheus::layer::Exemplars;

    let binary = common::require_tool("prometheus", "store the layer's exemplars")?;
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .exemplars(Exemplars::traceparent())
        .build()
        .unwrap();
    let router = Router::new()
        .route("/traced", get(|| async { "traced" }))
        .layer(layer);
    let app = serve(router).await;
    let prometheus = start_prometheus(&binary, app, &["exemplar-storage"], None, None);
    let trace = |i: u32| {
        (
            format!("0af7651916cd43dd{:016x}", 0x8448_0000 + i),
            format!("{:016x}", 0xb7ad_0000 + i),
        )
    };
    let sent: Vec<(String, String)> = (1..=3).map(trace).collect();
    let duration = "http_server_request_duration_seconds_bucket{http_route=\"/traced\"}";
    // One request per scrape at most: each bucket keeps its latest exemplar only.
    for (trace_id, span_id) in &sent {
        let traceparent = format!("00-{trace_id}-{span_id}-01");
        common::send_with_headers(
            app,
            http::Method::GET,
            "/traced",
            &[("traceparent", &traceparent)],
        )
        .await;
        eventually(Duration::from_secs(30), "the exemplar stored", || async {
            let stored = stored_exemplars(prometheus.addr, duration).await?;
            stored
                .contains(&(trace_id.clone(), span_id.clone()))
                .then_some(())
        })
        .await;
    }
    let mut stored = stored_exemplars(prometheus.addr, duration)
        .await
        .expect("exemplars");
    stored.sort();
    assert_eq!(stored, sent);

    let requests = "http_server_requests_total{http_route=\"/traced\"}";
    let counted = stored_exemplars(prometheus.addr, requests)
        .await
        .expect("exemplars");
    assert!(counted.contains(&sent[2]), "{counted:?}");
    assert!(
        counted.iter().all(|pair| sent.contains(pair)),
        "{counted:?}"
    );

    // The dashboard's exemplar panel: its query finds the same traces.
    let dashboard =
        std::fs::read_to_string(contrib().join("grafana/dashboard.json")).expect("dashboard.json");
    let lines: Vec<&str> = dashboard.lines().collect();
    let panel_queries: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.trim().starts_with("\"exemplar\": true"))
        .filter_map(|(at, _)| lines[..at].iter().rev().find_map(|line| panel_query(line)))
        .collect();
    assert_eq!(panel_queries.len(), 1, "one exemplar panel");
    let mut shown = stored_exemplars(prometheus.addr, &panel_queries[0])
        .await
        .expect("exemplars");
    shown.sort();
    assert_eq!(shown, sent, "{}", panel_queries[0]);
    Ok(())
}

test_main! {
    tokio_2 exemplars_reach_prometheus,
    tokio_2 a_prefix_relabelled_away_keeps_the_shipped_rules_working,
    tokio_2 prometheus_scrapes_openmetrics_by_default,
    tokio_2 prometheus_scrapes_native_histograms_through_protobuf,
    tokio_2 native_quantiles_are_within_the_schemas_relative_error,
    tokio_2 the_layers_native_durations_reach_prometheus,
    tokio_2 every_dashboard_query_and_recording_rule_returns_data,
}
