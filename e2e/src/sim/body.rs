//! Response bodies: whole at once, or trickled in delayed chunks.

use std::convert::Infallible;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// The body of every simulator response.
#[derive(Debug)]
pub enum SimBody {
    /// Sent in one frame.
    Full(Option<Bytes>),
    /// Sent piece by piece with a pause before each piece.
    Trickle(Trickle),
}

impl SimBody {
    /// A body sent in one frame.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Some(bytes.into()))
    }
}

/// A body sent in `chunk_len`-byte pieces, `delay` apart.
#[derive(Debug)]
pub struct Trickle {
    rest: Bytes,
    chunk_len: usize,
    delay: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Trickle {
    /// Splits `body` into `chunks` pieces (at least one byte each).
    pub fn new(body: Bytes, chunks: u32, delay: Duration) -> Self {
        let chunks = usize::try_from(chunks.max(1)).unwrap_or(usize::MAX);
        let chunk_len = body.len().div_ceil(chunks).max(1);
        Self { rest: body, chunk_len, delay, sleep: None }
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Trickle(trickle) => {
                if trickle.rest.is_empty() {
                    return Poll::Ready(None);
                }
                let delay = trickle.delay;
                let sleep = trickle.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
                ready!(sleep.as_mut().poll(cx));
                trickle.sleep = None;
                let len = trickle.chunk_len.min(trickle.rest.len());
                Poll::Ready(Some(Ok(Frame::data(trickle.rest.split_to(len)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Trickle(trickle) => trickle.rest.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let len = match self {
            Self::Full(bytes) => bytes.as_ref().map_or(0, Bytes::len),
            Self::Trickle(trickle) => trickle.rest.len(),
        };
        SizeHint::with_exact(len as u64)
    }
}
