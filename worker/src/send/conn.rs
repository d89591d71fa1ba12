//! One HTTP/1.1 keep-alive connection, driven by the request that holds it: write the encoded
//! request, read the response head and body, report whether the connection can carry the next
//! request. No connection task, no channel: the exchange runs inside the request's own future,
//! as a C load generator's event loop would do it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf as _, BytesMut};
use http::Method;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::client::Response;
use super::wire::{BodyDecoder, WireError, parse_head};

/// Bytes read from the socket at a time (grown for larger heads).
const READ_CHUNK: usize = 8 * 1024;

/// A connected socket, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TokioIo<TokioIo<TcpStream>>>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("failed to send the request: {0}")]
    Write(io::Error),
    #[error("failed to read the response: {0}")]
    Read(io::Error),
    #[error("the partner closed the connection before a complete response")]
    Closed {
        /// No byte of the response had arrived.
        nothing_read: bool,
    },
    #[error("{0}")]
    Wire(#[from] WireError),
}

impl ExchangeError {
    /// The partner closed a reused connection before answering at all: the request can go
    /// again on a fresh connection (the partner dropped an idle keep-alive connection as the
    /// request was sent).
    pub fn is_stale_connection(&self) -> bool {
        match self {
            ExchangeError::Closed { nothing_read } => *nothing_read,
            ExchangeError::Read(e) | ExchangeError::Write(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted
            ),
            ExchangeError::Wire(_) => false,
        }
    }
}

/// A complete response, and whether its connection can carry another request.
#[derive(Debug)]
pub struct Answer {
    pub response: Response,
    pub reusable: bool,
}

/// An HTTP/1.1 connection with its buffers, reused across requests.
pub struct Conn {
    stream: Stream,
    read: BytesMut,
    /// The encoded request (head and body), written in one go.
    pub out: Vec<u8>,
    /// When it went back to the pool.
    pub idle_since: Instant,
}

impl Conn {
    pub fn new(stream: Stream) -> Self {
        Self { stream, read: BytesMut::with_capacity(READ_CHUNK), out: Vec::new(), idle_since: Instant::now() }
    }

    /// An idle connection is still usable: the partner has neither closed it nor sent anything
    /// unasked. Checked without waiting.
    pub fn is_open(&mut self) -> bool {
        if !self.read.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        // Ready means closed (0 bytes), unexpected bytes, or an error.
        Pin::new(&mut self.stream).poll_read(&mut cx, &mut buf).is_pending()
    }

    /// Writes `self.out` and reads the response to `method`, keeping the first `keep` bytes of
    /// its body; a body larger than `drain_max` is not read to its end (the connection is then
    /// not reusable).
    pub async fn exchange(&mut self, method: &Method, keep: usize, drain_max: u64) -> Result<Answer, ExchangeError> {
        self.stream.write_all(&self.out).await.map_err(ExchangeError::Write)?;
        self.stream.flush().await.map_err(ExchangeError::Write)?;
        let mut got_any = false;
        let head = loop {
            if let Some((head, len)) = parse_head(&self.read, method)? {
                self.read.advance(len);
                if head.status.is_informational() {
                    continue;
                }
                break head;
            }
            if self.fill().await? == 0 {
                return Err(ExchangeError::Closed { nothing_read: !got_any });
            }
            got_any = true;
        };
        let mut body = BodyDecoder::new(head.framing, keep);
        let mut complete = true;
        loop {
            body.feed(&mut self.read)?;
            if body.is_done() {
                break;
            }
            if body.read() > drain_max {
                complete = false;
                break;
            }
            if self.fill().await? == 0 {
                if !body.eof() {
                    return Err(ExchangeError::Closed { nothing_read: false });
                }
                complete = false;
                break;
            }
        }
        // Bytes after the response (nothing was asked for them) make the connection unusable.
        let reusable = complete && head.keep_alive && self.read.is_empty();
        let response = Response { status: head.status, headers: head.headers, body: body.into_kept() };
        Ok(Answer { response, reusable })
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> Result<usize, ExchangeError> {
        if self.read.capacity() - self.read.len() < READ_CHUNK / 2 {
            self.read.reserve(READ_CHUNK);
        }
        self.stream.read_buf(&mut self.read).await.map_err(ExchangeError::Read)
    }
}
