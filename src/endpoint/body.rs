//! The body of an endpoint response.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;

use super::limit::ScrapePermit;

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

    /// A scrape's body, which keeps the scrape's slot for as long as any part of the
    /// buffer is alive: the server holds the frame until it has written the last byte
    /// to the socket, so a client that never reads keeps the slot, and the limit on
    /// scrapes bounds the bodies in memory.
    pub(crate) fn holding(bytes: Vec<u8>, permit: ScrapePermit) -> Self {
        Self::new(Bytes::from_owner(HeldBuffer {
            bytes,
            _permit: permit,
        }))
    }
}

/// A rendered exposition and the slot it occupies.
struct HeldBuffer {
    bytes: Vec<u8>,
    _permit: ScrapePermit,
}

impl AsRef<[u8]> for HeldBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http_body_util::BodyExt;

    use super::*;
    use crate::endpoint::limit::ScrapeSlots;

    #[tokio::test]
    async fn the_slot_is_held_until_the_last_piece_of_the_body_is_gone() {
        let slots = Arc::new(ScrapeSlots::new(1));
        let permit = slots.acquire().expect("a free slot");
        let mut body = MetricsBody::holding(b"up 1\n".to_vec(), permit);
        assert!(slots.acquire().is_none());

        // The server takes the frame out of the body and drops the body...
        let frame = body.frame().await.expect("one frame");
        drop(body);
        let Ok(bytes) = frame.map(|frame| frame.into_data().expect("data"));
        assert_eq!(&bytes[..], b"up 1\n");
        // ...but still holds the bytes while it writes them.
        let unsent = bytes.slice(2..);
        drop(bytes);
        assert!(slots.acquire().is_none());
        drop(unsent);
        assert!(slots.acquire().is_some());
    }

    #[test]
    fn a_body_dropped_unsent_gives_the_slot_back() {
        let slots = Arc::new(ScrapeSlots::new(1));
        let permit = slots.acquire().expect("a free slot");
        let body = MetricsBody::holding(vec![b'x'; 1 << 20], permit);
        assert!(slots.acquire().is_none());
        drop(body);
        assert!(slots.acquire().is_some());
    }
}
