//! Reading a long range as a chain of short ones, the next one opened ahead.
//!
//! hdfs-native reads a block range with a task that pulls packets (64 KiB) from the datanode
//! into a channel of 100 as fast as the datanode sends them, whether or not anyone reads them:
//! a reader slower than the datanode (every worker under a limit) keeps up to 6.4 MiB read ahead
//! per open range. A worker reading four shards held 72–74 MiB against 31 MiB reading the same
//! records from `file://` (docs/benchmarks-worker-hdfs.md). Reading a shard as windows of
//! [`WINDOW`] bytes bounds what is read ahead to the window being read and the next one, which
//! is opened when the one before starts, so it has arrived by the time it is wanted. Each window
//! is one read request on a datanode connection the client keeps open between them.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;

/// Bytes per window: 16 packets of 64 KiB.
pub const WINDOW: usize = 1 << 20;

/// Opens the stream of `len` bytes at `start`.
pub type Opener<E> = Box<dyn FnMut(usize, usize) -> BoxStream<'static, Result<Bytes, E>> + Send>;

/// The next window, opened ahead: its first item once it came.
struct Ahead<E> {
    stream: BoxStream<'static, Result<Bytes, E>>,
    first: Option<Option<Result<Bytes, E>>>,
}

/// `len` bytes from `start`, read `window` bytes at a time, each next window opened (and its
/// first packet asked for) as soon as the one before is.
pub struct Windowed<E> {
    open: Opener<E>,
    current: Option<BoxStream<'static, Result<Bytes, E>>>,
    ahead: Option<Ahead<E>>,
    /// Where the next window to open starts, and where the range ends.
    next: usize,
    end: usize,
    window: usize,
}

impl<E> Windowed<E> {
    /// The stream of `len` bytes from `start` (`window` is at least 1).
    pub fn new(start: usize, len: usize, window: usize, open: Opener<E>) -> Self {
        let mut w = Windowed {
            open,
            current: None,
            ahead: None,
            next: start,
            end: start.saturating_add(len),
            window: window.max(1),
        };
        w.current = w.open_next();
        w.ahead = w.open_next().map(|stream| Ahead { stream, first: None });
        w
    }

    fn open_next(&mut self) -> Option<BoxStream<'static, Result<Bytes, E>>> {
        if self.next >= self.end {
            return None;
        }
        let len = self.window.min(self.end - self.next);
        let stream = (self.open)(self.next, len);
        self.next += len;
        Some(stream)
    }

    /// Starts the read of the window ahead: its first item is kept until its turn.
    fn poll_ahead(&mut self, cx: &mut Context<'_>) {
        if let Some(ahead) = &mut self.ahead
            && ahead.first.is_none()
            && let Poll::Ready(item) = ahead.stream.as_mut().poll_next(cx)
        {
            ahead.first = Some(item);
        }
    }

    /// Yields `e` and ends the stream (the reader reopens from the first byte not yielded).
    fn fail(&mut self, e: E) -> Poll<Option<Result<Bytes, E>>> {
        self.current = None;
        self.ahead = None;
        Poll::Ready(Some(Err(e)))
    }
}

// Every field is boxed or plain data: nothing in it is pinned.
impl<E> Unpin for Windowed<E> {}

impl<E> Stream for Windowed<E> {
    type Item = Result<Bytes, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.poll_ahead(cx);
        loop {
            // None once the range is read, or after an error.
            let Some(current) = &mut this.current else { return Poll::Ready(None) };
            match current.as_mut().poll_next(cx) {
                Poll::Ready(None) => {}
                Poll::Ready(Some(Err(e))) => return this.fail(e),
                other => return other,
            }
            // The window is read: the one ahead takes its place, and the one after it opens.
            loop {
                let Some(Ahead { stream, first }) = this.ahead.take() else {
                    this.current = None;
                    return Poll::Ready(None);
                };
                this.ahead = this.open_next().map(|stream| Ahead { stream, first: None });
                this.poll_ahead(cx);
                match first {
                    Some(Some(Err(e))) => return this.fail(e),
                    Some(Some(item)) => {
                        this.current = Some(stream);
                        return Poll::Ready(Some(item));
                    }
                    // It ended without a byte (never polled again): the next one.
                    Some(None) => {}
                    // Its first item has not come yet: read it as the current one.
                    None => {
                        this.current = Some(stream);
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures::StreamExt as _;
    use futures::stream;

    use super::*;

    /// An opener over `data` recording each window it opens, in 3-byte chunks.
    fn opener(data: &'static [u8], opened: Arc<Mutex<Vec<(usize, usize)>>>) -> Opener<String> {
        Box::new(move |start, len| {
            opened.lock().expect("not poisoned").push((start, len));
            let chunks: Vec<Result<Bytes, String>> =
                data[start..start + len].chunks(3).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
            stream::iter(chunks).boxed()
        })
    }

    #[tokio::test]
    async fn the_windows_yield_the_range_in_order_each_byte_once() {
        let data: &'static [u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        // (start, len, window)
        for (start, len, window) in
            [(0, 36, 10), (5, 20, 7), (0, 36, 36), (0, 36, 100), (3, 1, 10), (0, 0, 4), (35, 1, 1)]
        {
            let opened = Arc::new(Mutex::new(Vec::new()));
            let w = Windowed::new(start, len, window, opener(data, Arc::clone(&opened)));
            let got: Vec<u8> = w.map(|c| c.expect("no error").to_vec()).concat().await;
            assert_eq!(got, &data[start..start + len], "{start} {len} {window}");
            let windows = opened.lock().expect("not poisoned").clone();
            assert_eq!(windows.len(), len.div_ceil(window), "{start} {len} {window}: {windows:?}");
            assert!(windows.iter().all(|(_, l)| *l <= window));
        }
    }

    #[tokio::test]
    async fn the_next_window_is_opened_while_the_current_is_read_and_no_further() {
        let data: &'static [u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let opened = Arc::new(Mutex::new(Vec::new()));
        let mut w = Windowed::new(0, 36, 10, opener(data, Arc::clone(&opened)));
        assert_eq!(opened.lock().expect("not poisoned").len(), 2, "the first window and the one ahead");
        assert_eq!(w.next().await.expect("item").expect("ok"), Bytes::from_static(b"012"));
        assert_eq!(opened.lock().expect("not poisoned").len(), 2, "reading within a window opens nothing more");
        for _ in 0..3 {
            w.next().await.expect("item").expect("ok");
        }
        // The first window is read; the second is current and the third ahead.
        assert_eq!(w.next().await.expect("item").expect("ok"), Bytes::from_static(b"abc"));
        assert_eq!(opened.lock().expect("not poisoned").as_slice(), &[(0, 10), (10, 10), (20, 10)]);
    }

    #[tokio::test]
    async fn an_error_ends_the_stream_after_it_is_yielded() {
        let calls = Arc::new(Mutex::new(0));
        let seen = Arc::clone(&calls);
        let open: Opener<String> = Box::new(move |start, _len| {
            *seen.lock().expect("not poisoned") += 1;
            if start == 4 {
                stream::iter(vec![Err("datanode gone".to_owned())]).boxed()
            } else {
                stream::iter(vec![Ok(Bytes::from_static(b"abcd"))]).boxed()
            }
        });
        let items: Vec<Result<Bytes, String>> = Windowed::new(0, 12, 4, open).collect().await;
        assert_eq!(items, vec![Ok(Bytes::from_static(b"abcd")), Err("datanode gone".to_owned())]);
    }

    #[tokio::test]
    async fn a_window_that_yields_nothing_does_not_end_the_range() {
        let open: Opener<String> = Box::new(move |start, len| {
            if start == 0 {
                stream::empty().boxed()
            } else {
                stream::iter(vec![Ok(Bytes::from(vec![b'x'; len]))]).boxed()
            }
        });
        let got: Vec<u8> = Windowed::new(0, 9, 3, open).map(|c| c.expect("ok").to_vec()).concat().await;
        assert_eq!(got, vec![b'x'; 6]);
    }
}
