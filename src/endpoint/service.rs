//! [`MetricsEndpoint`]: the `/metrics` service.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use tower::Service;

use super::body::MetricsBody;
use super::compress;
use super::families;
use super::format::Format;
use super::guard::{ScrapeGuard, ScrapeRequest};
use super::limit::{ScrapePermit, ScrapeSlots};
use super::negotiate;
#[cfg(feature = "axum")]
use super::reach::ReachCheck;
use super::select::NameSelection;
use crate::registry::Initialized;
use crate::{BuildError, MetricsRegistry};

/// The default path of the endpoint.
pub const DEFAULT_PATH: &str = "/metrics";

/// Scrapes in flight at most, unless the builder says otherwise: an HA pair of
/// Prometheus servers sends 2 at a time and a federating server or a person with curl
/// one more, while a client that holds bodies unread, or opens 100 streams on one
/// HTTP/2 connection, is held to this many bodies.
const DEFAULT_MAX_CONCURRENT_SCRAPES: usize = 10;

/// Answers scrapes: on `GET` of its path it runs the registry's collectors and encodes
/// the registry; `HEAD` gets the same headers (length and encoding included) without
/// the body; other methods
/// get `405 Method Not Allowed` with `Allow: GET, HEAD`, and other paths `404`.
///
/// The [`MetricsLayer`](crate::MetricsLayer) serves it on the application's own
/// listener; as a standalone [`tower::Service`] it serves a separate, internal one.
/// Building it initialises the registry (runs the providers), like building the layer.
///
/// ```
/// use tower_prometheus::{MetricsEndpoint, MetricsRegistry};
///
/// # fn main() -> Result<(), tower_prometheus::BuildError> {
/// let registry = MetricsRegistry::new();
/// let endpoint = MetricsEndpoint::builder(&registry).path("/internal/metrics").build()?;
/// assert_eq!(endpoint.path(), "/internal/metrics");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MetricsEndpoint {
    shared: Arc<EndpointShared>,
}

struct EndpointShared {
    path: String,
    registry: MetricsRegistry,
    initialized: Arc<Initialized>,
    /// Whether scrapes reach the layer that serves this endpoint.
    #[cfg(feature = "axum")]
    reach: ReachCheck,
    guard: Option<ScrapeGuard>,
    slots: Arc<ScrapeSlots>,
    collector_timeout: Option<Duration>,
    on_collector_error: OnCollectorError,
}

/// What a scrape does when a collector fails, panics or times out, as promhttp's
/// `HandlerErrorHandling` offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnCollectorError {
    /// Serve everything else (the failure is counted in
    /// `tower_prometheus_collector_errors_total`), like promhttp's `ContinueOnError`.
    #[default]
    Serve,
    /// Answer `500 Internal Server Error` naming the failed collectors, like promhttp's
    /// `HTTPErrorOnError`.
    Fail,
}

impl MetricsEndpoint {
    /// The endpoint at [`DEFAULT_PATH`].
    pub fn new(registry: &MetricsRegistry) -> Result<Self, BuildError> {
        Self::builder(registry).build()
    }

    /// A builder, to choose the path.
    pub fn builder(registry: &MetricsRegistry) -> MetricsEndpointBuilder {
        MetricsEndpointBuilder {
            registry: registry.clone(),
            path: DEFAULT_PATH.to_string(),
            guard: None,
            max_scrapes: DEFAULT_MAX_CONCURRENT_SCRAPES,
            collector_timeout: None,
            on_collector_error: OnCollectorError::default(),
        }
    }

    /// The path it answers on.
    pub fn path(&self) -> &str {
        &self.shared.path
    }

    /// Whether `request` is addressed to this endpoint.
    fn matches<B>(&self, request: &Request<B>) -> bool {
        request.uri().path() == self.shared.path
    }

    /// Whether the layer serving this endpoint answers `request` itself; the requests
    /// it passes on tell whether scrapes can reach it at all (see [`ReachCheck`]).
    pub(crate) fn intercepts<B>(&self, request: &Request<B>) -> bool {
        let matched = self.matches(request);
        #[cfg(feature = "axum")]
        if !matched {
            self.shared.reach.observe(request, &self.shared.path);
        }
        matched
    }

    /// Runs the collectors and encodes the registry: the body of a scrape.
    ///
    /// A collector that fails, panics or times out is counted in
    /// `tower_prometheus_collector_errors_total`; with
    /// [`OnCollectorError::Fail`] the scrape then fails too.
    pub async fn render(&self, format: Format) -> Result<Vec<u8>, ScrapeError> {
        let shared = &*self.shared;
        render_registry(
            &shared.registry,
            &shared.initialized,
            shared.collector_timeout,
            shared.on_collector_error,
            format,
        )
        .await
    }

    /// The response to a request known to be addressed to this endpoint.
    pub(crate) fn respond<B>(&self, request: &Request<B>) -> EndpointFuture {
        let shared = &*self.shared;
        #[cfg(feature = "axum")]
        shared.reach.settle();
        let scrape = ScrapeRequest {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
        };
        if shared
            .guard
            .as_ref()
            .is_some_and(|guard| !guard.allows(&scrape))
        {
            return refusal(
                StatusCode::UNAUTHORIZED,
                "unauthorized\n",
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"metrics\"",
            );
        }
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: the metrics endpoint answers GET and HEAD\n",
                header::ALLOW,
                "GET, HEAD",
            );
        }
        let Some(permit) = shared.slots.acquire() else {
            return refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many scrapes in flight\n",
                header::RETRY_AFTER,
                "1",
            );
        };
        let names = match NameSelection::from_query(request.uri().query()) {
            Ok(names) => names,
            Err(error) => {
                return EndpointFuture::ready(plain_response(
                    StatusCode::BAD_REQUEST,
                    format!("bad query: {error}\n"),
                ))
            }
        };
        let format = negotiate::format(request.headers());
        let gzip = negotiate::accepts_gzip(request.headers());
        let head = *request.method() == Method::HEAD;
        let endpoint = self.clone();
        let scrape = Scrape {
            format,
            names,
            gzip,
            head,
        };
        EndpointFuture {
            inner: Box::pin(async move { endpoint.scrape(scrape, permit).await }),
        }
    }

    /// Answers a scrape. `HEAD` renders the body too, so that it gets `GET`'s headers
    /// (`Content-Length` and `Content-Encoding` among them), and then sends none of it.
    async fn scrape(&self, scrape: Scrape, permit: ScrapePermit) -> Response<MetricsBody> {
        let Scrape {
            format,
            names,
            gzip,
            head,
        } = scrape;
        let rendered = self.render(format).await.and_then(|body| match &names {
            None => Ok(body),
            Some(names) => families::retain(format, &body, |name, kind| names.keeps(name, kind))
                .map_err(|_| ScrapeError::Encode),
        });
        let body = match rendered {
            Ok(body) => body,
            Err(error) => {
                return plain_response(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
            }
        };
        // Compression of a buffer in memory cannot fail short of running out of
        // memory; should it, the plain body is served.
        let compressed = gzip.then(|| compress::gzip(&body)).and_then(Result::ok);
        let gzipped = compressed.is_some();
        let body = compressed.unwrap_or(body);
        let length = HeaderValue::from(body.len());
        let mut response = Response::new(if head {
            MetricsBody::default()
        } else {
            MetricsBody::holding(body, permit)
        });
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        headers.insert(header::CONTENT_LENGTH, length);
        headers.insert(
            header::VARY,
            HeaderValue::from_static("Accept, Accept-Encoding"),
        );
        if gzipped {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }
}

/// Runs the collectors of `registry` and encodes it in `format`: the body of a scrape
/// (and of a push, which sends what a scrape would get).
pub(crate) async fn render_registry(
    registry: &MetricsRegistry,
    initialized: &Arc<Initialized>,
    collector_timeout: Option<Duration>,
    on_collector_error: OnCollectorError,
    format: Format,
) -> Result<Vec<u8>, ScrapeError> {
    let failures = initialized
        .collectors()
        .run(registry, collector_timeout)
        .await;
    if on_collector_error == OnCollectorError::Fail && !failures.is_empty() {
        let failed: Vec<String> = failures.iter().map(ToString::to_string).collect();
        return Err(ScrapeError::Collectors(failed.join(", ")));
    }
    let encode = {
        let initialized = Arc::clone(initialized);
        move || initialized.with_registry(|registry| format.encode(registry))
    };
    // Encoding the multi-process aggregate reads every process's files: on a blocking
    // thread, so that requests never wait behind it on the runtime's own threads.
    let encoded = match tokio::runtime::Handle::try_current() {
        Ok(runtime) if initialized.reads_files() => runtime
            .spawn_blocking(encode)
            .await
            .unwrap_or(Err(std::fmt::Error)),
        _ => encode(),
    };
    encoded.map_err(|_| ScrapeError::Encode)
}

/// What a scrape asked for.
struct Scrape {
    format: Format,
    /// The `name[]` parameters; `None` serves every family.
    names: Option<NameSelection>,
    gzip: bool,
    /// `HEAD`: the headers of `GET`, no body.
    head: bool,
}

/// A scrape turned away with `status`, and the header that tells the client why or
/// what to do instead.
fn refusal(
    status: StatusCode,
    message: &'static str,
    name: HeaderName,
    value: &'static str,
) -> EndpointFuture {
    let mut response = plain_response(status, message.into());
    response
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
    EndpointFuture::ready(response)
}

fn plain_response(status: StatusCode, message: String) -> Response<MetricsBody> {
    let mut response = Response::new(MetricsBody::new(message));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsEndpoint")
            .field("path", &self.shared.path)
            .field("registry", &self.shared.registry)
            .finish()
    }
}

impl<B> Service<Request<B>> for MetricsEndpoint {
    type Response = Response<MetricsBody>;
    type Error = Infallible;
    type Future = EndpointFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if self.matches(&request) {
            return self.respond(&request);
        }
        EndpointFuture::ready(plain_response(
            StatusCode::NOT_FOUND,
            format!("not found: metrics are served at {}\n", self.shared.path),
        ))
    }
}

/// Builds a [`MetricsEndpoint`].
#[derive(Debug)]
#[must_use]
pub struct MetricsEndpointBuilder {
    registry: MetricsRegistry,
    path: String,
    /// A bearer token's guard is checked when the endpoint is built.
    guard: Option<Result<ScrapeGuard, BuildError>>,
    max_scrapes: usize,
    collector_timeout: Option<Duration>,
    on_collector_error: OnCollectorError,
}

impl MetricsEndpointBuilder {
    /// The path to answer on (default [`DEFAULT_PATH`]).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Answers only scrapes with `Authorization: Bearer <token>` (the scheme in any
    /// case); others get `401 Unauthorized` with `WWW-Authenticate`. An empty token, or
    /// one with characters other than visible ASCII, fails the build.
    pub fn bearer_token(mut self, token: impl AsRef<str>) -> Self {
        self.guard = Some(ScrapeGuard::bearer(token.as_ref()));
        self
    }

    /// Answers only scrapes for which `allows` returns true; others get
    /// `401 Unauthorized`. Replaces a bearer token set before.
    pub fn guard(
        mut self,
        allows: impl Fn(&ScrapeRequest<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.guard = Some(Ok(ScrapeGuard::new(allows)));
        self
    }

    /// At most `max` scrapes in flight, each until its body has been sent or dropped;
    /// more get `503 Service Unavailable` with `Retry-After`. Every request counts,
    /// each stream of an HTTP/2 connection included. The default, 10, is well above
    /// the 2 at a time an HA pair of Prometheus servers sends, and holds a client that
    /// leaves bodies unread (or opens 100 streams on one connection) to 10 bodies;
    /// `usize::MAX` lifts the cap, as Go's promhttp has none.
    pub fn max_concurrent_scrapes(mut self, max: usize) -> Self {
        self.max_scrapes = max;
        self
    }

    /// Gives each collector at most `timeout` per scrape (sync ones then run on a
    /// blocking thread); a slower one is left behind and counted with
    /// `reason="timeout"` (needs a Tokio runtime with timers, as under hyper, axum and
    /// tonic; without one, collectors run to the end).
    pub fn collector_timeout(mut self, timeout: Duration) -> Self {
        self.collector_timeout = Some(timeout);
        self
    }

    /// What a scrape does when a collector fails (default: serve everything else).
    pub fn on_collector_error(mut self, handling: OnCollectorError) -> Self {
        self.on_collector_error = handling;
        self
    }

    /// Initialises the registry (runs its providers, once) and builds the endpoint.
    pub fn build(self) -> Result<MetricsEndpoint, BuildError> {
        if !self.path.starts_with('/') {
            return Err(BuildError::InvalidPath(self.path));
        }
        let guard = self.guard.transpose()?;
        let initialized = self.registry.init()?;
        Ok(MetricsEndpoint {
            shared: Arc::new(EndpointShared {
                path: self.path,
                registry: self.registry,
                initialized,
                #[cfg(feature = "axum")]
                reach: ReachCheck::default(),
                guard,
                slots: Arc::new(ScrapeSlots::new(self.max_scrapes)),
                collector_timeout: self.collector_timeout,
                on_collector_error: self.on_collector_error,
            }),
        })
    }
}

/// Why a scrape could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScrapeError {
    /// A metric failed to encode itself.
    #[error("encoding the registry failed: a metric returned an error from its encoder")]
    Encode,
    /// Collectors failed and the endpoint is set to [`OnCollectorError::Fail`].
    #[error("collectors failed: {0}")]
    Collectors(String),
}

/// The future of an endpoint response.
pub struct EndpointFuture {
    inner: Pin<Box<dyn Future<Output = Response<MetricsBody>> + Send>>,
}

impl fmt::Debug for EndpointFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointFuture").finish_non_exhaustive()
    }
}

impl EndpointFuture {
    fn ready(response: Response<MetricsBody>) -> Self {
        Self {
            inner: Box::pin(std::future::ready(response)),
        }
    }
}

impl Future for EndpointFuture {
    type Output = Result<Response<MetricsBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx).map(Ok)
    }
}
