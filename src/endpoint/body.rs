//! The body of an endpoint response.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;

/// The body the metrics endpoint answers with: the whole exposition in one frame.
#[derive(Debug, Default)]
pub struct MetricsBody {
    inner: Full<Bytes>,
}

impl MetricsBody {
    pub(crate) fn new(bytes: impl Into<Bytes>) -> Self {
        Self {
            inner: Full::new(bytes.into()),
        }
    }
}

impl Body for MetricsBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
