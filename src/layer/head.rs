//! A request's or a response's head lent as `Parts`, for the functions users give
//! the layer.

use http::request::Parts;
use http::{response, Request, Response};

/// Runs `f` on the head of `request` as [`Parts`], which `http` hands out only by
/// taking the request apart. The head's fields are swapped into a `Parts` and back,
/// a few words each, so the request itself (large) stays where it is.
pub(crate) fn with_parts<B, R>(request: &mut Request<B>, f: impl FnOnce(&Parts) -> R) -> R {
    let (mut parts, ()) = Request::new(()).into_parts();
    swap(request, &mut parts);
    let result = f(&parts);
    swap(request, &mut parts);
    result
}

fn swap<B>(request: &mut Request<B>, parts: &mut Parts) {
    std::mem::swap(request.method_mut(), &mut parts.method);
    std::mem::swap(request.uri_mut(), &mut parts.uri);
    std::mem::swap(request.version_mut(), &mut parts.version);
    std::mem::swap(request.headers_mut(), &mut parts.headers);
    std::mem::swap(request.extensions_mut(), &mut parts.extensions);
}

/// Runs `f` on the head of `response` as [`response::Parts`], the same way.
pub(crate) fn with_response_parts<B, R>(
    response: &mut Response<B>,
    f: impl FnOnce(&response::Parts) -> R,
) -> R {
    let (mut parts, ()) = Response::new(()).into_parts();
    swap_response(response, &mut parts);
    let result = f(&parts);
    swap_response(response, &mut parts);
    result
}

fn swap_response<B>(response: &mut Response<B>, parts: &mut response::Parts) {
    std::mem::swap(response.status_mut(), &mut parts.status);
    std::mem::swap(response.version_mut(), &mut parts.version);
    std::mem::swap(response.headers_mut(), &mut parts.headers);
    std::mem::swap(response.extensions_mut(), &mut parts.extensions);
}

#[cfg(test)]
mod tests {
    use http::{Method, Request, Response, StatusCode, Version};

    use super::{with_parts, with_response_parts};

    #[test]
    fn the_head_is_lent_and_given_back() {
        let mut request = Request::post("/users/7?x=1")
            .version(Version::HTTP_2)
            .header("tenant", "a")
            .extension(7_u32)
            .body("body")
            .expect("a request");
        let seen = with_parts(&mut request, |parts| {
            (
                parts.method.clone(),
                parts.uri.to_string(),
                parts.version,
                parts.headers["tenant"].clone(),
                parts.extensions.get::<u32>().copied(),
            )
        });
        assert_eq!(seen.0, Method::POST);
        assert_eq!(seen.1, "/users/7?x=1");
        assert_eq!(seen.2, Version::HTTP_2);
        assert_eq!(seen.3, "a");
        assert_eq!(seen.4, Some(7));
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "/users/7?x=1");
        assert_eq!(request.version(), Version::HTTP_2);
        assert_eq!(request.headers()["tenant"], "a");
        assert_eq!(request.extensions().get::<u32>(), Some(&7));
        assert_eq!(*request.body(), "body");
    }

    #[test]
    fn the_response_head_is_lent_and_given_back() {
        let mut response = Response::builder()
            .status(StatusCode::CREATED)
            .header("x-cache", "hit")
            .extension("typed")
            .body("body")
            .expect("a response");
        let seen = with_response_parts(&mut response, |parts| {
            (
                parts.status,
                parts.headers["x-cache"].clone(),
                parts.extensions.get::<&str>().copied(),
            )
        });
        assert_eq!(
            seen,
            (
                StatusCode::CREATED,
                "hit".parse().expect("a value"),
                Some("typed")
            )
        );
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()["x-cache"], "hit");
        assert_eq!(response.extensions().get::<&str>(), Some(&"typed"));
        assert_eq!(*response.body(), "body");
    }
}
