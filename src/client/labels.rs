//! Label sets of the HTTP client families, following OpenTelemetry's semantic
//! conventions in their Prometheus form.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};

use super::error_type::ErrorType;
use crate::record::HttpMethod;
use crate::record::{DEFAULT_FALLBACK_ROUTE, MAX_ROUTE_LEN};

/// The server a request is sent to: `server_address` and `server_port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerLabels {
    method: HttpMethod,
    address: Arc<str>,
    port: Option<u16>,
}

impl ServerLabels {
    /// The label set of a method sent to `address` on `port` (`None`: not known, and
    /// left out).
    pub fn new(method: HttpMethod, address: impl Into<Arc<str>>, port: Option<u16>) -> Self {
        Self {
            method,
            address: address.into(),
            port,
        }
    }

    /// The `http_request_method` label.
    pub fn method(&self) -> HttpMethod {
        self.method
    }

    /// The `server_address` label.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The `server_port` label.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    fn encode_into(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("http_request_method", self.method.as_str()).encode(encoder.encode_label())?;
        ("server_address", &*self.address).encode(encoder.encode_label())?;
        match self.port {
            Some(port) => ("server_port", port).encode(encoder.encode_label()),
            None => Ok(()),
        }
    }
}

impl EncodeLabelSet for ServerLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.encode_into(encoder)
    }
}

/// How an outgoing request ended: the response status it got, and the
/// [`ErrorType`] when it failed (no response came, or its body failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientOutcome {
    /// The `http_response_status_code` label, when a response came.
    pub status: Option<u16>,
    /// The `error_type` label, when the request failed.
    pub error: Option<ErrorType>,
}

impl ClientOutcome {
    /// A response with `status`, read to its end (or dropped by the caller).
    pub fn status(status: u16) -> Self {
        Self {
            status: Some(status),
            error: None,
        }
    }

    /// No response: the request failed with `error`.
    pub fn failed(error: ErrorType) -> Self {
        Self {
            status: None,
            error: Some(error),
        }
    }
}

/// Labels of `http_client_request_duration_seconds` and `http_client_requests_total`:
/// the server's labels, `http_response_status_code` when a response came, and
/// `error_type` when the request failed. A label without a value is left out.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpClientLabels {
    server: ServerLabels,
    outcome: ClientOutcome,
}

impl HttpClientLabels {
    /// The label set of a request to `server` that ended with `outcome`.
    pub fn new(server: ServerLabels, outcome: ClientOutcome) -> Self {
        Self { server, outcome }
    }

    /// The server's labels.
    pub fn server(&self) -> &ServerLabels {
        &self.server
    }

    /// How the request ended.
    pub fn outcome(&self) -> ClientOutcome {
        self.outcome
    }
}

impl EncodeLabelSet for HttpClientLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.server.encode_into(encoder)?;
        if let Some(status) = self.outcome.status {
            ("http_response_status_code", status).encode(encoder.encode_label())?;
        }
        if let Some(error) = self.outcome.error {
            ("error_type", error.as_str()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// `server_address` and `server_port` of a request: from its URI's authority (a
/// hyper client's requests carry it), else from its `Host` header; the port, when
/// not written, is the scheme's (80 for `http`, 443 for `https`). A request naming no
/// server, or one longer than 256 bytes, is `_OTHER`, with no port.
pub(crate) fn server_of<B>(request: &http::Request<B>) -> (&str, Option<u16>) {
    let uri = request.uri();
    let default_port = || match uri.scheme_str() {
        Some("http") => Some(80),
        Some("https") => Some(443),
        _ => None,
    };
    let named = match uri.host() {
        Some(host) => Some((host, uri.port_u16())),
        None => request
            .headers()
            .get(http::header::HOST)
            .and_then(|value| value.to_str().ok())
            .and_then(split_host),
    };
    match named {
        // Longer names are no hosts anyone runs, and would make huge labels.
        Some((host, port)) if host.len() <= MAX_ROUTE_LEN => (host, port.or_else(default_port)),
        _ => (DEFAULT_FALLBACK_ROUTE, None),
    }
}

/// `host[:port]` split in two; `None` for an empty host or a port that is not one.
fn split_host(value: &str) -> Option<(&str, Option<u16>)> {
    // An IPv6 literal is bracketed, and has colons of its own.
    let after_host = if value.starts_with('[') {
        value.find(']')? + 1
    } else {
        value.find(':').unwrap_or(value.len())
    };
    let (host, rest) = value.split_at(after_host);
    let port = match rest.strip_prefix(':') {
        Some(port) => Some(port.parse().ok()?),
        None if rest.is_empty() => None,
        None => return None,
    };
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(uri: &str, host: Option<&str>) -> (String, Option<u16>) {
        let mut request = http::Request::get(uri);
        if let Some(host) = host {
            request = request.header(http::header::HOST, host);
        }
        let request = request.body(()).expect("a request");
        let (address, port) = server_of(&request);
        (address.to_string(), port)
    }

    #[test]
    fn the_server_comes_from_the_uri_else_the_host_header() {
        assert_eq!(
            server("http://a.example/x", None),
            ("a.example".into(), Some(80))
        );
        assert_eq!(
            server("https://a.example/x", None),
            ("a.example".into(), Some(443))
        );
        assert_eq!(
            server("http://127.0.0.1:8080/", None),
            ("127.0.0.1".into(), Some(8080))
        );
        assert_eq!(server("http://[::1]:9/", None), ("[::1]".into(), Some(9)));
        assert_eq!(
            server("/x", Some("b.example:81")),
            ("b.example".into(), Some(81))
        );
        assert_eq!(server("/x", Some("[::1]:82")), ("[::1]".into(), Some(82)));
        assert_eq!(server("/x", Some("b.example")), ("b.example".into(), None));
        for bad in ["", ":80", "b:port", "[::1]x"] {
            assert_eq!(server("/x", Some(bad)), ("_OTHER".into(), None), "{bad:?}");
        }
        assert_eq!(server("/x", None), ("_OTHER".into(), None));
        let long = format!("http://{}.example/", "a".repeat(300));
        assert_eq!(server(&long, None), ("_OTHER".into(), None));
    }
}
