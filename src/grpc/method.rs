//! Which requests claim to be gRPC calls, which responses are gRPC answers, and which
//! method a call names.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, Method, Request};

use super::labels::GrpcType;
use crate::record::MAX_ROUTE_LEN;

/// Content type of gRPC over HTTP/2. Media types compare without case, and gRPC
/// allows any suffix (`+proto`, `+json`, `; charset=...`), so the prefix is what counts.
const GRPC_CONTENT_TYPE: &[u8] = b"application/grpc";
/// gRPC-Web frames its trailers inside the body, so it stays with the HTTP families.
const GRPC_WEB_CONTENT_TYPE: &[u8] = b"application/grpc-web";
/// Header carrying the client's deadline.
const GRPC_TIMEOUT: &str = "grpc-timeout";

/// Whether `headers` carry a gRPC content type (not gRPC-Web).
fn has_grpc_content_type(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(CONTENT_TYPE) else {
        return false;
    };
    let value = content_type.as_bytes();
    let starts_with = |prefix: &[u8]| {
        value
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    starts_with(GRPC_CONTENT_TYPE) && !starts_with(GRPC_WEB_CONTENT_TYPE)
}

/// Whether a request claims to be a gRPC call: a POST with a gRPC content type. A
/// claim is only a claim: the call is recorded as gRPC if the answer is gRPC.
pub(crate) fn claims_grpc<B>(request: &Request<B>) -> bool {
    request.method() == Method::POST && has_grpc_content_type(request.headers())
}

/// Whether response headers are a gRPC answer, by their content type.
pub(crate) fn is_grpc_response(headers: &HeaderMap) -> bool {
    has_grpc_content_type(headers)
}

/// The client's deadline from `grpc-timeout` (at most 8 digits and a unit, as the
/// gRPC spec writes it); `None` when absent or malformed, which servers ignore.
pub(crate) fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(GRPC_TIMEOUT)?.as_bytes();
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 8 digits: no overflow, in any unit.
    let amount = digits
        .iter()
        .fold(0u64, |sum, digit| sum * 10 + u64::from(digit - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// `(service, method)` of a `/package.Service/Method` path, or `None` for a path of
/// another shape (or too long to be a label).
pub(crate) fn service_and_method(path: &str) -> Option<(&str, &str)> {
    if path.len() > MAX_ROUTE_LEN {
        return None;
    }
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let valid = !service.is_empty() && !method.is_empty() && !method.contains('/');
    valid.then_some((service, method))
}

/// The methods the user declared, with their `grpc_type`; the others are unary.
#[derive(Clone, Debug, Default)]
pub(crate) struct MethodTypes {
    types: Arc<HashMap<String, GrpcType>>,
}

impl MethodTypes {
    /// Declares the type of the method at `path` (`/package.Service/Method`; the
    /// leading slash may be left out).
    pub(crate) fn insert(&mut self, mut path: String, grpc_type: GrpcType) {
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        Arc::make_mut(&mut self.types).insert(path, grpc_type);
    }

    /// The declared type of the method at `path`, or unary.
    pub(crate) fn get(&self, path: &str) -> GrpcType {
        self.types.get(path).copied().unwrap_or_default()
    }

    /// The declared paths, each with its type.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, GrpcType)> {
        self.types.iter().map(|(path, kind)| (path.as_str(), *kind))
    }

    /// The first declared path that names no method, if any.
    pub(crate) fn invalid(&self) -> Option<&str> {
        self.types
            .keys()
            .map(String::as_str)
            .find(|path| service_and_method(path).is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn request(method: Method, content_type: &'static str) -> Request<()> {
        Request::builder()
            .method(method)
            .header(CONTENT_TYPE, content_type)
            .body(())
            .expect("valid request")
    }

    #[test]
    fn grpc_content_types_as_grpc_peers_send_them() {
        let post = |content_type| claims_grpc(&request(Method::POST, content_type));
        assert!(post("application/grpc"));
        assert!(post("application/grpc+proto"));
        assert!(post("application/grpc; charset=utf-8"));
        assert!(post("Application/GRPC"));
        assert!(post("application/grpcfoo"));
        assert!(!post("application/grpc-web"));
        assert!(!post("APPLICATION/GRPC-WEB+proto"));
        assert!(!post("application/json"));
        assert!(!post("application/grp"));
        assert!(!claims_grpc(&request(Method::GET, "application/grpc")));
        assert!(!claims_grpc(
            &Request::post("/a.B/C").body(()).expect("valid request")
        ));
    }

    #[test]
    fn timeouts_parse_as_the_spec_writes_them() {
        let timeout = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(GRPC_TIMEOUT, HeaderValue::from_static(value));
            grpc_timeout(&headers)
        };
        assert_eq!(timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(timeout("1S"), Some(Duration::from_secs(1)));
        assert_eq!(timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            timeout("99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(timeout("7n"), Some(Duration::from_nanos(7)));
        for bad in ["", "S", "123456789S", "12", "1x", "-1S", "1.5S", " 1S"] {
            assert_eq!(timeout(bad), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&HeaderMap::new()), None);
    }

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            service_and_method("/grpc.health.v1.Health/Check"),
            Some(("grpc.health.v1.Health", "Check"))
        );
        assert_eq!(service_and_method("/Health/"), None);
        assert_eq!(service_and_method("//Check"), None);
        assert_eq!(service_and_method("/a/b/c"), None);
        assert_eq!(service_and_method("no-slash"), None);
        assert_eq!(service_and_method(&format!("/a/{}", "m".repeat(300))), None);
    }

    #[test]
    fn declared_types_with_or_without_the_leading_slash() {
        let mut types = MethodTypes::default();
        types.insert("/a.B/Watch".into(), GrpcType::ServerStream);
        types.insert("a.B/Upload".into(), GrpcType::ClientStream);
        assert_eq!(types.get("/a.B/Watch"), GrpcType::ServerStream);
        assert_eq!(types.get("/a.B/Upload"), GrpcType::ClientStream);
        assert_eq!(types.get("/a.B/Check"), GrpcType::Unary);
        assert_eq!(types.invalid(), None);
        types.insert("not-a-method".into(), GrpcType::Unary);
        assert_eq!(types.invalid(), Some("/not-a-method"));
    }
}
