//! Which requests are gRPC calls, and which method they call.

use std::collections::HashMap;
use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{Method, Request};

use super::labels::GrpcType;
use crate::layer::MAX_ROUTE_LEN;

/// Content type of gRPC over HTTP/2; `application/grpc+proto` and
/// `application/grpc; ...` are gRPC too, while gRPC-Web (`application/grpc-web`) frames
/// its trailers inside the body and stays with the HTTP families.
const GRPC_CONTENT_TYPE: &[u8] = b"application/grpc";

/// Whether a request is a gRPC call, by its content type. gRPC calls are POSTs (the
/// protocol has no other method), so other requests skip the header lookup.
pub(crate) fn is_grpc<B>(request: &Request<B>) -> bool {
    if request.method() != Method::POST {
        return false;
    }
    let Some(content_type) = request.headers().get(CONTENT_TYPE) else {
        return false;
    };
    match content_type.as_bytes().strip_prefix(GRPC_CONTENT_TYPE) {
        Some(rest) => matches!(rest.first(), None | Some(b'+' | b';')),
        None => false,
    }
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

/// The `grpc_type` of each method the user declared; the others are unary.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, content_type: &'static str) -> Request<()> {
        Request::builder()
            .method(method)
            .header(CONTENT_TYPE, content_type)
            .body(())
            .expect("valid request")
    }

    #[test]
    fn grpc_content_types() {
        let post = |content_type| is_grpc(&request(Method::POST, content_type));
        assert!(post("application/grpc"));
        assert!(post("application/grpc+proto"));
        assert!(post("application/grpc; charset=utf-8"));
        assert!(!post("application/grpc-web"));
        assert!(!post("application/json"));
        assert!(!is_grpc(&request(Method::GET, "application/grpc")));
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
    }
}
