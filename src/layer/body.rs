//! [`ResponseBody`]: the response body, watched until its end.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::guard::Recorder;
use crate::endpoint::MetricsBody;

pin_project! {
    /// Response body of [`MetricsService`](super::MetricsService): the inner body,
    /// recorded when it ends, fails or is dropped; or the metrics endpoint's body.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner {
            #[pin]
            body: B,
            guard: Option<Recorder>,
        },
        Metrics {
            body: MetricsBody,
        },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn inner(body: B, guard: Option<Recorder>) -> Self {
        Self {
            kind: Kind::Inner { body, guard },
        }
    }

    pub(crate) fn metrics(body: MetricsBody) -> Self {
        Self {
            kind: Kind::Metrics { body },
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { mut body, guard } => {
                let frame = body.as_mut().poll_frame(cx);
                let ended = match &frame {
                    Poll::Ready(None) => Some(false),
                    Poll::Ready(Some(Err(_))) => Some(true),
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(guard) = guard.as_mut() {
                            guard.on_frame(frame);
                        }
                        body.is_end_stream().then_some(false)
                    }
                    Poll::Pending => None,
                };
                if let Some(failed) = ended {
                    if let Some(guard) = guard.take() {
                        guard.on_end(failed);
                    }
                }
                frame
            }
            KindProj::Metrics { body } => Pin::new(body).poll_frame(cx).map(|frame| {
                frame.map(|frame| match frame {
                    Ok(frame) => Ok(frame.map_data(Into::into)),
                    Err(never) => match never {},
                })
            }),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body, .. } => body.is_end_stream(),
            Kind::Metrics { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body, .. } => body.size_hint(),
            Kind::Metrics { body } => body.size_hint(),
        }
    }
}
