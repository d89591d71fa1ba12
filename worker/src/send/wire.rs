//! HTTP/1.1 on the wire, as pure functions over buffers: a request head and body encoded into
//! one buffer (so a request is one write), a response head parsed with `httparse`, and the
//! response body's framing (length, chunked, or until close) decoded incrementally, keeping its
//! first bytes. No I/O here: `conn` feeds these from the socket.

use std::io::Write as _;

use bytes::{Buf as _, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, HeaderName, HeaderValue, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode};

/// Headers of a response head at most (more: [`WireError::Head`] with `TooManyHeaders`).
pub const MAX_HEADERS: usize = 100;
/// A response head larger than this is refused.
pub const MAX_HEAD: usize = 64 * 1024;
/// A chunk-size line (size and extensions) longer than this is refused.
pub const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Trailer section of a chunked body: at most this many bytes and [`MAX_HEADERS`] lines.
pub const MAX_TRAILERS: usize = 16 * 1024;

/// The response did not follow HTTP/1.1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("invalid response head: {0}")]
    Head(httparse::Error),
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("invalid Content-Length {0:?}")]
    ContentLength(String),
    /// RFC 9112 §6.3: both framings at once may be a smuggling attempt; the answer is an
    /// error and its connection is closed.
    #[error("response has both Content-Length and Transfer-Encoding")]
    AmbiguousLength,
    #[error("invalid chunk size in a chunked response body")]
    ChunkSize,
    #[error("chunk-size line longer than {MAX_CHUNK_LINE} bytes")]
    ChunkLineTooLong,
    #[error("trailer section larger than {MAX_TRAILERS} bytes or {MAX_HEADERS} lines")]
    TrailersTooLarge,
    #[error("chunked response body: expected CRLF after a chunk")]
    ChunkEnd,
    #[error("the partner switched protocols (101), which Courier does not speak")]
    SwitchingProtocols,
}

/// One request's head and body, written into `out` (cleared first).
///
/// `Host` comes from `host` unless `headers` has one; `Content-Length` is always Courier's own
/// (a user's would desynchronise the connection if wrong), and `Transfer-Encoding` and
/// `Connection` from `headers` are left out for the same reason. `extra` headers replace any of
/// the same name in `headers`.
pub fn encode_request<'a>(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    host: &[u8],
    headers: &HeaderMap,
    extra: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)> + Clone,
    body: &[u8],
) {
    out.clear();
    out.reserve(256 + body.len());
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(if target.is_empty() { b"/" } else { target.as_bytes() });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.contains_key(HOST) {
        header_line(out, HOST.as_str(), host);
    }
    for (name, value) in headers {
        let own = *name == CONTENT_LENGTH || *name == TRANSFER_ENCODING || *name == CONNECTION;
        if own || extra.clone().any(|(n, _)| n == name) {
            continue;
        }
        header_line(out, name.as_str(), value.as_bytes());
    }
    for (name, value) in extra {
        header_line(out, name.as_str(), value.as_bytes());
    }
    if !body.is_empty() || !matches!(*method, Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS) {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "content-length: {}\r\n", body.len());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

fn header_line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 204, 304, 1xx).
    Empty,
    Length(u64),
    Chunked,
    /// Read until the partner closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    /// Every header of a non-2xx answer; empty for a 2xx answer.
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The connection may carry another request after this response.
    pub keep_alive: bool,
}

/// Parses the response head at the start of `buf`: `None` while it is incomplete, else the head
/// and its length in bytes. Interim (1xx) heads are returned like any other; the caller skips
/// them.
pub fn parse_head(buf: &[u8], method: &Method) -> Result<Option<(Head, usize)>, WireError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let len = match response.parse(buf).map_err(WireError::Head)? {
        httparse::Status::Complete(len) if len > MAX_HEAD => return Err(WireError::HeadTooLarge),
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial if buf.len() >= MAX_HEAD => return Err(WireError::HeadTooLarge),
        httparse::Status::Partial => return Ok(None),
    };
    let code = response.code.unwrap_or_default();
    let status = StatusCode::from_u16(code).map_err(|_| WireError::Head(httparse::Error::Status))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(WireError::SwitchingProtocols);
    }
    // An accepted record needs nothing but its status: a 2xx answer's headers are read for
    // framing only, not kept (retries, throttling and dead letters look at the others').
    let keep_headers = !status.is_success();
    let mut headers = if keep_headers { HeaderMap::with_capacity(response.headers.len()) } else { HeaderMap::new() };
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut encoded = false;
    let mut close = false;
    let mut keep_alive_token = false;
    for h in response.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let text = || String::from_utf8_lossy(h.value).into_owned();
            let n = content_length(h.value).ok_or_else(|| WireError::ContentLength(text()))?;
            if length.is_some_and(|l| l != n) {
                return Err(WireError::ContentLength(text()));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            encoded = true;
            chunked = last_token(h.value).eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        // httparse checked the name is a token; a value that `http` refuses is left out rather
        // than failing an otherwise usable answer.
        if keep_headers && let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(h.value))
        {
            headers.append(name, value);
        }
    }
    if encoded && length.is_some() {
        return Err(WireError::AmbiguousLength);
    }
    let bodiless = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if bodiless {
        Framing::Empty
    } else if encoded {
        if chunked { Framing::Chunked } else { Framing::UntilClose }
    } else {
        length.map_or(Framing::UntilClose, Framing::Length)
    };
    let http11 = response.version == Some(1);
    let keep_alive = framing != Framing::UntilClose && !close && (http11 || keep_alive_token);
    Ok(Some((Head { status, headers, framing, keep_alive }, len)))
}

/// A Content-Length value: decimal digits only (no sign, no list, no spaces inside), at most
/// `u64::MAX`; surrounding whitespace is allowed.
fn content_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

fn last_token(value: &[u8]) -> &[u8] {
    value.rsplit(|b| *b == b',').next().unwrap_or_default().trim_ascii()
}

/// Where the body decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    UntilClose,
    Done,
}

/// Decodes a response body as its bytes arrive, keeping the first `keep` of them and counting
/// the rest.
#[derive(Debug)]
pub struct BodyDecoder {
    state: State,
    kept: BytesMut,
    keep: usize,
    read: u64,
    /// Bytes and lines of the trailer section so far.
    trailer_bytes: usize,
    trailer_lines: usize,
}

impl BodyDecoder {
    /// A decoder for a body framed as `framing`, keeping its first `keep` bytes.
    pub fn new(framing: Framing, keep: usize) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        Self { state, kept: BytesMut::new(), keep, read: 0, trailer_bytes: 0, trailer_lines: 0 }
    }

    /// True once the whole body was read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Body bytes read so far.
    pub fn read(&self) -> u64 {
        self.read
    }

    /// Consumes from `buf` as much of the body as it holds; stops at the body's end, leaving
    /// anything after it in `buf`.
    pub fn feed(&mut self, buf: &mut BytesMut) -> Result<(), WireError> {
        loop {
            match self.state {
                State::Done => return Ok(()),
                State::Length(remaining) | State::ChunkData(remaining) => {
                    if buf.is_empty() {
                        return Ok(());
                    }
                    let take = usize::try_from(remaining).unwrap_or(usize::MAX).min(buf.len());
                    self.take(buf, take);
                    let left = remaining - take as u64;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), n) => State::Length(n),
                        (_, 0) => State::ChunkEnd,
                        (_, n) => State::ChunkData(n),
                    };
                }
                State::UntilClose => {
                    let all = buf.len();
                    self.take(buf, all);
                    return Ok(());
                }
                State::ChunkSize => match httparse::parse_chunk_size(buf).map_err(|_| WireError::ChunkSize)? {
                    httparse::Status::Partial if buf.len() > MAX_CHUNK_LINE => {
                        return Err(WireError::ChunkLineTooLong);
                    }
                    httparse::Status::Partial => return Ok(()),
                    httparse::Status::Complete((used, 0)) => {
                        buf.advance(used);
                        self.state = State::Trailers;
                    }
                    httparse::Status::Complete((used, size)) => {
                        buf.advance(used);
                        self.state = State::ChunkData(size);
                    }
                },
                State::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(());
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(WireError::ChunkEnd);
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    // Trailer lines until an empty one; their content is not used.
                    let Some(end) = memchr::memchr(b'\n', buf) else {
                        if self.trailer_bytes + buf.len() > MAX_TRAILERS {
                            return Err(WireError::TrailersTooLarge);
                        }
                        return Ok(());
                    };
                    let empty = buf[..end].iter().all(|b| *b == b'\r');
                    self.trailer_bytes += end + 1;
                    self.trailer_lines += 1;
                    if self.trailer_bytes > MAX_TRAILERS || self.trailer_lines > MAX_HEADERS + 1 {
                        return Err(WireError::TrailersTooLarge);
                    }
                    buf.advance(end + 1);
                    if empty {
                        self.state = State::Done;
                    }
                }
            }
        }
    }

    /// The partner closed the connection: fine when the body runs until close, an error when
    /// more was announced.
    pub fn eof(&mut self) -> bool {
        if self.state == State::UntilClose {
            self.state = State::Done;
        }
        self.is_done()
    }

    /// The kept first bytes of the body.
    pub fn into_kept(self) -> Bytes {
        self.kept.freeze()
    }

    fn take(&mut self, buf: &mut BytesMut, n: usize) {
        if self.kept.len() < self.keep {
            let keep = n.min(self.keep - self.kept.len());
            self.kept.extend_from_slice(&buf[..keep]);
        }
        self.read += n as u64;
        buf.advance(n);
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
