//! A real Prometheus server (Debian package `prometheus`) scraping a test's app, and
//! its query API.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use super::TempDir;

/// Stops the server when dropped, also when the test fails.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    _dir: TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Prometheus scraping `target` every second, with `rules` and the scrape job's
/// `relabel` configuration if given.
pub fn start_prometheus(
    binary: &std::path::Path,
    target: SocketAddr,
    features: &[&str],
    rules: Option<&std::path::Path>,
    relabel: Option<&str>,
) -> Prometheus {
    let dir = TempDir::new("prometheus");
    let rule_files = rules.map_or(String::new(), |rules| {
        format!("rule_files:\n  - '{}'\n", rules.display())
    });
    let relabel = relabel.unwrap_or_default();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rule_files}scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{target}']\n{relabel}"
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).expect("config written");
    let addr = super::free_address();
    let mut command = Command::new(binary);
    command
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for feature in features {
        command.arg(format!("--enable-feature={feature}"));
    }
    let child = command.spawn().expect("prometheus starts");
    Prometheus {
        child,
        addr,
        _dir: dir,
    }
}

/// The body of the answer of API `endpoint` (such as `query`) to `params`.
pub async fn api(
    prometheus: SocketAddr,
    endpoint: &str,
    params: &[(&str, &str)],
) -> Option<String> {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect()
    };
    let query: Vec<String> = params
        .iter()
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri = format!("http://{prometheus}/api/v1/{endpoint}?{}", query.join("&"))
        .parse()
        .ok()?;
    let response = client.get(uri).await.ok()?;
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .ok()?
        .to_bytes();
    Some(String::from_utf8_lossy(&body).into_owned())
}

/// The body of an instant query's answer.
pub async fn query_body(prometheus: SocketAddr, promql: &str) -> Option<String> {
    api(prometheus, "query", &[("query", promql)]).await
}

/// The value of an instant query's first result, if it has one.
pub async fn query(prometheus: SocketAddr, promql: &str) -> Option<f64> {
    let body = query_body(prometheus, promql).await?;
    // {"status":"success","data":{"resultType":"vector","result":[{"metric":{...},"value":[1700000000.123,"25"]}]}}
    let after = body.split("\"value\":[").nth(1)?;
    let value = after
        .split(',')
        .nth(1)?
        .trim_start()
        .trim_start_matches('"');
    let value = &value[..value.find('"')?];
    value.parse().ok().filter(|v: &f64| v.is_finite())
}
