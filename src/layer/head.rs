//! A request's head lent as [`Parts`], for the functions users give the layer.

use http::request::Parts;
use http::Request;

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

#[cfg(test)]
mod tests {
    use http::{Method, Request, Version};

    use super::with_parts;

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
}
