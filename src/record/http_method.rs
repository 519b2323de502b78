//! [`HttpMethod`]: the `http_request_method` label, of requests served and sent.

/// The `http_request_method` label: the standard methods, and `_OTHER` for the rest,
/// so a client inventing methods cannot create series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH`
    Patch,
    /// Any other method: `_OTHER`.
    Other,
}

impl HttpMethod {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Connect => "CONNECT",
            HttpMethod::Options => "OPTIONS",
            HttpMethod::Trace => "TRACE",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Other => "_OTHER",
        }
    }
}

impl From<&http::Method> for HttpMethod {
    fn from(method: &http::Method) -> Self {
        match *method {
            http::Method::GET => HttpMethod::Get,
            http::Method::HEAD => HttpMethod::Head,
            http::Method::POST => HttpMethod::Post,
            http::Method::PUT => HttpMethod::Put,
            http::Method::DELETE => HttpMethod::Delete,
            http::Method::CONNECT => HttpMethod::Connect,
            http::Method::OPTIONS => HttpMethod::Options,
            http::Method::TRACE => HttpMethod::Trace,
            http::Method::PATCH => HttpMethod::Patch,
            _ => HttpMethod::Other,
        }
    }
}
