//! How the request body reaches the inner service: [`Untouched`], or wrapped in a
//! [`RequestBody`] that counts gRPC messages and, when their sizes are recorded, the
//! bytes of HTTP request bodies ([`CountMessages`]).

use http::Request;

use super::request_body::RequestBody;

mod sealed {
    pub trait Sealed {}
}

/// What the inner service of a [`MetricsLayer`](super::MetricsLayer) receives as its
/// request body: [`Untouched`] (the default) or [`CountMessages`].
pub trait RequestBodies: sealed::Sealed {
    /// The body the inner service receives, for a client's body `B`.
    type Body<B>;

    /// An HTTP request, as the inner service receives it.
    #[doc(hidden)]
    fn http<B>(request: Request<B>) -> Request<Self::Body<B>>;

    /// A request whose body the layer wrapped to count what passes, as the inner
    /// service receives it.
    #[doc(hidden)]
    fn wrapped<B>(request: Request<RequestBody<B>>) -> Request<Self::Body<B>>;
}

/// Every request reaches the inner service with the client's body as it came
/// (`Request<B>`): a hyper handler takes `Request<Incoming>`, and axum boxes nothing.
/// gRPC calls are recorded, but their received messages are not counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Untouched;

/// The inner service receives `Request<RequestBody<B>>`: a gRPC call's body counts
/// the messages received as the service reads them, and notices a client that breaks
/// its request off; another request's body counts its bytes if the layer records
/// request body sizes, and otherwise passes through as it is.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountMessages;

impl sealed::Sealed for Untouched {}
impl sealed::Sealed for CountMessages {}

impl RequestBodies for Untouched {
    type Body<B> = B;

    #[inline(always)]
    fn http<B>(request: Request<B>) -> Request<B> {
        request
    }

    #[inline(always)]
    fn wrapped<B>(request: Request<RequestBody<B>>) -> Request<B> {
        request.map(RequestBody::into_inner)
    }
}

impl RequestBodies for CountMessages {
    type Body<B> = RequestBody<B>;

    #[inline(always)]
    fn http<B>(request: Request<B>) -> Request<RequestBody<B>> {
        request.map(RequestBody::plain)
    }

    #[inline(always)]
    fn wrapped<B>(request: Request<RequestBody<B>>) -> Request<RequestBody<B>> {
        request
    }
}
