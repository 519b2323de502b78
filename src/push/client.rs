//! [`Pusher`]: sends a registry to a group of a Pushgateway, or deletes the group.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::base64;
use super::error::MAX_REJECTION_BODY;
use super::group::group_uri;
use super::PushError;
use crate::endpoint::{render_registry, token_problem, Format, OnCollectorError};
use crate::MetricsRegistry;

/// How long a request may take, from connecting to the end of the answer, unless
/// [`PusherBuilder::timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends what the registry's endpoint would serve to one group of a Pushgateway, over
/// HTTP/1.1.
///
/// The group is the job and the grouping labels; its URL is built once, when the
/// pusher is built. [`push`](Self::push) (`PUT`) replaces the whole group,
/// [`push_add`](Self::push_add) (`POST`) only the families it sends, and
/// [`delete`](Self::delete) (`DELETE`) removes the group. The body is the Prometheus
/// text format 0.0.4, which every Pushgateway reads (it does not read OpenMetrics
/// text); the registry's collectors run first, and in multi-process mode the body holds
/// the totals over all processes, as a scrape would.
///
/// A cheap [`Clone`] handle: clones share one connection pool. Requests run on the
/// Tokio runtime they are awaited on, which needs its I/O and time drivers (as under
/// `#[tokio::main]`).
///
/// ```
/// use std::time::Duration;
/// use tower_prometheus::push::Pusher;
///
/// # fn main() -> Result<(), tower_prometheus::push::PushError> {
/// let pusher = Pusher::builder("http://127.0.0.1:9091", "nightly_backup")
///     .grouping("instance", "db-1")
///     .grouping("path", "/var/backups")
///     .timeout(Duration::from_secs(5))
///     .build()?;
/// assert_eq!(
///     pusher.url().to_string(),
///     "http://127.0.0.1:9091/metrics/job/nightly_backup/instance/db-1/path@base64/L3Zhci9iYWNrdXBz"
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Pusher {
    client: Client<HttpConnector, Full<Bytes>>,
    group: Uri,
    /// The gateway's `host:port`, for error messages.
    gateway: String,
    authorization: Option<HeaderValue>,
    timeout: Duration,
}

impl Pusher {
    /// A pusher to the group of `job`, without grouping labels, on the Pushgateway at
    /// `gateway` (`http://host:port`, with a path prefix if the gateway has one, or
    /// `host:port`).
    pub fn new(gateway: impl Into<String>, job: impl Into<String>) -> Result<Self, PushError> {
        Self::builder(gateway, job).build()
    }

    /// A builder, to add grouping labels, credentials or a timeout.
    pub fn builder(gateway: impl Into<String>, job: impl Into<String>) -> PusherBuilder {
        PusherBuilder {
            gateway: gateway.into(),
            job: job.into(),
            grouping: Vec::new(),
            authorization: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The URL of the group: `<gateway>/metrics/job/<job>{/<label>/<value>}`, values
    /// in base64 behind `@base64` when they are empty or have characters other than
    /// letters, digits, `-`, `.`, `_` and `~`.
    pub fn url(&self) -> &Uri {
        &self.group
    }

    /// `PUT`: the group then holds exactly the registry's metrics (the Pushgateway
    /// adds `push_time_seconds`).
    pub async fn push(&self, registry: &MetricsRegistry) -> Result<(), PushError> {
        let body = encode(registry).await?;
        self.send(Method::PUT, body).await
    }

    /// `POST`: replaces, in the group, only the families the registry has; others
    /// pushed earlier stay.
    pub async fn push_add(&self, registry: &MetricsRegistry) -> Result<(), PushError> {
        let body = encode(registry).await?;
        self.send(Method::POST, body).await
    }

    /// `DELETE`: removes every metric of the group (deleting a group that holds none
    /// succeeds too). The Pushgateway queues a delete and answers `202 Accepted`; a
    /// push sent after it is applied after it.
    pub async fn delete(&self) -> Result<(), PushError> {
        self.send(Method::DELETE, Bytes::new()).await
    }

    /// Sends one request; any `2xx` is success.
    async fn send(&self, method: Method, body: Bytes) -> Result<(), PushError> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method.clone();
        *request.uri_mut() = self.group.clone();
        let headers = request.headers_mut();
        if method != Method::DELETE {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(Format::PrometheusText.content_type()),
            );
        }
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("tower-prometheus/", env!("CARGO_PKG_VERSION"))),
        );
        if let Some(authorization) = &self.authorization {
            headers.insert(header::AUTHORIZATION, authorization.clone());
        }
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|error| self.failure(&method, error))?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            Err(PushError::Rejected {
                method: method.clone(),
                status,
                body: read_prefix(response.into_body()).await,
            })
        };
        let answered = tokio::time::timeout(self.timeout, exchange).await;
        answered.unwrap_or_else(|_| {
            Err(PushError::Timeout {
                method,
                timeout: self.timeout,
            })
        })
    }

    fn failure(&self, method: &Method, error: hyper_util::client::legacy::Error) -> PushError {
        let gateway = self.gateway.clone();
        if error.is_connect() {
            PushError::Unreachable {
                gateway,
                source: Box::new(error),
            }
        } else {
            PushError::Exchange {
                method: method.clone(),
                gateway,
                source: Box::new(error),
            }
        }
    }
}

impl fmt::Debug for Pusher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pusher")
            .field("url", &self.group)
            .field("authorization", &self.authorization.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What a scrape of the registry's endpoint would serve, in the text format 0.0.4.
async fn encode(registry: &MetricsRegistry) -> Result<Bytes, PushError> {
    let initialized = registry.init()?;
    let body = render_registry(
        registry,
        &initialized,
        None,
        OnCollectorError::Serve,
        Format::PrometheusText,
    )
    .await
    .map_err(PushError::Encode)?;
    Ok(Bytes::from(body))
}

/// The first [`MAX_REJECTION_BODY`] bytes of a rejection's body, as text. A body that
/// fails part way still says why, as far as it got.
async fn read_prefix(mut body: Incoming) -> String {
    let mut kept = Vec::new();
    while kept.len() < MAX_REJECTION_BODY {
        let Some(Ok(frame)) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame.into_data() {
            let room = MAX_REJECTION_BODY - kept.len();
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// Builds a [`Pusher`]; nothing is checked or sent before [`build`](Self::build).
#[must_use]
pub struct PusherBuilder {
    gateway: String,
    job: String,
    grouping: Vec<(String, String)>,
    /// Credentials are checked when the pusher is built.
    authorization: Option<Result<HeaderValue, PushError>>,
    timeout: Duration,
}

impl PusherBuilder {
    /// Adds the grouping label `name="value"`: with the job, the labels name the group
    /// (the Pushgateway sets them on every metric of it). Any value goes, an empty one
    /// or one with `/` or unicode included; `name` must be a label name other than
    /// `job`, not starting with `__`, given once.
    pub fn grouping(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.grouping.push((name.into(), value.into()));
        self
    }

    /// Sends `Authorization: Basic` with these credentials on every request (what a
    /// Pushgateway's `--web.config.file` asks for with `basic_auth_users`). A user
    /// name with a `:` fails the build. Replaces a bearer token set before.
    pub fn basic_auth(mut self, user: impl AsRef<str>, password: impl AsRef<str>) -> Self {
        let (user, password) = (user.as_ref(), password.as_ref());
        self.authorization = Some(if user.contains(':') {
            Err(PushError::InvalidCredentials("the user name has a `:`"))
        } else {
            let credentials = base64::standard(format!("{user}:{password}").as_bytes());
            sensitive(format!("Basic {credentials}"))
        });
        self
    }

    /// Sends `Authorization: Bearer <token>` on every request (for a proxy in front of
    /// the gateway). An empty token, or one with characters other than visible ASCII,
    /// fails the build. Replaces basic credentials set before.
    pub fn bearer_token(mut self, token: impl AsRef<str>) -> Self {
        let token = token.as_ref();
        self.authorization = Some(match token_problem(token) {
            Some(problem) => Err(PushError::InvalidCredentials(problem)),
            None => sensitive(format!("Bearer {token}")),
        });
        self
    }

    /// Gives each request at most `timeout`, from connecting to the end of the answer
    /// (default [`DEFAULT_TIMEOUT`]); past it, the request fails with
    /// [`PushError::Timeout`]. Needs a Tokio runtime with timers, as every request does.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the URL, the job, the labels and the credentials, and builds the pusher.
    pub fn build(self) -> Result<Pusher, PushError> {
        let group = group_uri(&self.gateway, &self.job, &self.grouping)?;
        let authorization = self.authorization.transpose()?;
        let gateway = group
            .authority()
            .map_or_else(String::new, ToString::to_string);
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Ok(Pusher {
            client: Client::builder(TokioExecutor::new()).build(connector),
            group,
            gateway,
            authorization,
            timeout: self.timeout,
        })
    }
}

impl fmt::Debug for PusherBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PusherBuilder")
            .field("gateway", &self.gateway)
            .field("job", &self.job)
            .field("grouping", &self.grouping)
            .field("authorization", &self.authorization.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An `Authorization` value, marked sensitive so that hyper keeps it out of its
/// header tables and debug output.
fn sensitive(value: String) -> Result<HeaderValue, PushError> {
    let mut value = HeaderValue::try_from(value)
        .map_err(|_| PushError::InvalidCredentials("they cannot be sent in a header"))?;
    value.set_sensitive(true);
    Ok(value)
}
