//! Hostile values that reach labels (quotes, backslashes, newlines, long strings from a
//! route function) come out escaped or bounded, and the reference parsers accept the
//! scrape in both text formats.

mod common;

use std::borrow::Cow;
use std::convert::Infallible;

use bytes::Bytes;
use common::{scrape_reply, serve, Exposition};
use http::{Request, Response};
use http_body_util::Full;
use tower::{service_fn, Layer};
use tower_prometheus::{MetricsLayer, MetricsRegistry};

/// The longest route label the layer keeps, as its docs promise.
const MAX_ROUTE_LEN: usize = 256;

const HOSTILE: [&str; 5] = [
    "/quote\"d",
    "/back\\slash",
    "/new\nline",
    "/unicode/é/😀",
    "/trailing\\",
];

async fn hostile_server() -> std::net::SocketAddr {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .route_fn(|parts| {
            let index: usize = parts.uri.path().trim_start_matches('/').parse().ok()?;
            Some(match HOSTILE.get(index) {
                Some(route) => Cow::Borrowed(*route),
                None => Cow::Owned("x".repeat(10_000)),
            })
        })
        .build()
        .unwrap();
    let service = layer.layer(service_fn(
        |_request: Request<hyper::body::Incoming>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        },
    ));
    let addr = serve(service).await;
    for index in 0..=HOSTILE.len() {
        common::get(addr, &format!("/{index}")).await;
    }
    addr
}

async fn hostile_routes_are_escaped_and_bounded() {
    let addr = hostile_server().await;
    let text = common::get(addr, "/metrics").await.body;
    let metrics = Exposition::parse(&text);
    for route in HOSTILE {
        assert_eq!(
            metrics.value(
                "http_server_requests_total",
                &[
                    ("http_request_method", "GET"),
                    ("http_response_status_code", "200"),
                    ("http_route", route)
                ]
            ),
            Some(1.0),
            "{route:?}"
        );
    }
    let longest = metrics
        .samples
        .iter()
        .filter_map(|s| s.labels.get("http_route"))
        .map(String::len)
        .max()
        .unwrap_or(0);
    assert_eq!(longest, MAX_ROUTE_LEN);
}

async fn promtool_accepts_hostile_values() -> common::Checked {
    let promtool = common::require_tool("promtool", "check a scrape with hostile label values")?;
    let addr = hostile_server().await;
    let text = common::get(addr, "/metrics").await.body;
    common::assert_promtool_accepts(&promtool, &text);
    Ok(())
}

async fn python_parsers_read_hostile_values_in_both_formats() -> common::Checked {
    let python = common::require_python_client("parse the scrape with Python's text parsers")?;
    let addr = hostile_server().await;
    let openmetrics = scrape_reply(
        addr,
        &[("accept", "application/openmetrics-text; version=1.0.0")],
    )
    .await
    .body;
    let text = common::get(addr, "/metrics").await.body;
    // Prints every http_route value the parser decoded, one JSON string per line.
    let script = "import sys, json\n\
        from prometheus_client.parser import text_string_to_metric_families as text\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as om\n\
        parse = om if sys.argv[1] == 'om' else text\n\
        routes = set()\n\
        for family in parse(sys.stdin.read()):\n\
        \x20   for sample in family.samples:\n\
        \x20       if 'http_route' in sample.labels:\n\
        \x20           routes.add(sample.labels['http_route'])\n\
        for route in sorted(routes):\n\
        \x20   print(json.dumps(route))\n";
    for (flavour, body) in [("om", &openmetrics), ("text", &text)] {
        let output = common::run_with_stdin(&python, &["-c", script, flavour], body);
        assert!(
            output.status.success(),
            "python's {flavour} parser rejected the scrape: {}\n{body}",
            String::from_utf8_lossy(&output.stderr)
        );
        let decoded: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(decode_json_string)
            .collect();
        for route in HOSTILE {
            assert!(
                decoded.iter().any(|r| r == route),
                "{flavour}: {route:?} not in {decoded:?}"
            );
        }
        assert!(decoded.iter().any(|r| r.len() == MAX_ROUTE_LEN));
    }
    Ok(())
}

/// A JSON string as `json.dumps` writes it (ASCII-only, `\uXXXX` escapes).
fn decode_json_string(line: &str) -> String {
    let inner = line.trim().trim_start_matches('"').trim_end_matches('"');
    let mut out = String::new();
    let mut chars = inner.chars();
    let mut pending_high: Option<u32> = None;
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('u') => {
                let code = u32::from_str_radix(&chars.by_ref().take(4).collect::<String>(), 16)
                    .unwrap_or(0xFFFD);
                match pending_high.take() {
                    Some(high) => out.push(
                        char::from_u32(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00))
                            .unwrap_or('?'),
                    ),
                    None if (0xD800..0xDC00).contains(&code) => pending_high = Some(code),
                    None => out.push(char::from_u32(code).unwrap_or('?')),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

test_main! {
    tokio hostile_routes_are_escaped_and_bounded,
    tokio promtool_accepts_hostile_values,
    tokio python_parsers_read_hostile_values_in_both_formats,
}
