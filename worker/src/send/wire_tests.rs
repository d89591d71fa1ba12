use bytes::BytesMut;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};

use super::{
    BodyDecoder, Framing, MAX_CHUNK_LINE, MAX_HEAD, MAX_HEADERS, MAX_TRAILERS, WireError, encode_request, parse_head,
};

fn encode(method: Method, target: &str, headers: &[(&str, &str)], extra: &[(&str, &str)], body: &str) -> String {
    let mut map = HeaderMap::new();
    for (n, v) in headers {
        map.append(HeaderName::from_bytes(n.as_bytes()).expect("name"), HeaderValue::from_str(v).expect("value"));
    }
    let extra: Vec<(HeaderName, HeaderValue)> = extra
        .iter()
        .map(|(n, v)| (HeaderName::from_bytes(n.as_bytes()).expect("name"), HeaderValue::from_str(v).expect("value")))
        .collect();
    let mut out = b"leftover".to_vec();
    encode_request(
        &mut out,
        &method,
        target,
        b"partner:8080",
        &map,
        extra.iter().map(|(n, v)| (n, v)),
        body.as_bytes(),
    );
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn a_post_carries_host_headers_extras_length_and_body_in_one_buffer() {
    let text = encode(
        Method::POST,
        "/v1/users?x=1",
        &[("content-type", "application/json")],
        &[("idempotency-key", "abc")],
        "{\"a\":1}",
    );
    assert_eq!(
        text,
        "POST /v1/users?x=1 HTTP/1.1\r\nhost: partner:8080\r\ncontent-type: application/json\r\n\
         idempotency-key: abc\r\ncontent-length: 7\r\n\r\n{\"a\":1}"
    );
}

#[test]
fn encoding_keeps_a_users_host_but_never_their_framing_headers() {
    let text = encode(
        Method::PUT,
        "/x",
        &[
            ("host", "virtual.example"),
            ("content-length", "999"),
            ("transfer-encoding", "chunked"),
            ("connection", "close"),
        ],
        &[],
        "ab",
    );
    assert_eq!(text, "PUT /x HTTP/1.1\r\nhost: virtual.example\r\ncontent-length: 2\r\n\r\nab");
}

#[test]
fn extra_headers_replace_those_of_the_same_name() {
    let text = encode(
        Method::POST,
        "/",
        &[("authorization", "Bearer old"), ("x-a", "1"), ("x-a", "2")],
        &[("authorization", "Bearer new")],
        "",
    );
    assert_eq!(
        text,
        "POST / HTTP/1.1\r\nhost: partner:8080\r\nx-a: 1\r\nx-a: 2\r\nauthorization: Bearer new\r\ncontent-length: 0\r\n\r\n"
    );
}

#[test]
fn a_get_without_body_has_no_content_length_and_an_empty_target_becomes_slash() {
    assert_eq!(encode(Method::GET, "", &[], &[], ""), "GET / HTTP/1.1\r\nhost: partner:8080\r\n\r\n");
    assert_eq!(encode(Method::DELETE, "/r/1", &[], &[], ""), "DELETE /r/1 HTTP/1.1\r\nhost: partner:8080\r\n\r\n");
}

fn head(text: &str, method: &Method) -> Result<Option<(super::Head, usize)>, WireError> {
    parse_head(text.as_bytes(), method)
}

/// (response head, method) → (status, framing, keep-alive)
#[test]
fn heads_give_status_framing_and_keep_alive() {
    let cases: &[(&str, Method, u16, Framing, bool)] = &[
        ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", Method::POST, 200, Framing::Length(2), true),
        ("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", Method::POST, 200, Framing::Length(0), true),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", Method::POST, 200, Framing::Chunked, true),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Method::POST, 200, Framing::Chunked, true),
        ("HTTP/1.1 200 OK\r\nContent-Length:  7 \r\n\r\n", Method::POST, 200, Framing::Length(7), true),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", Method::POST, 200, Framing::UntilClose, false),
        ("HTTP/1.1 200 OK\r\n\r\n", Method::POST, 200, Framing::UntilClose, false),
        ("HTTP/1.1 204 No Content\r\n\r\n", Method::POST, 204, Framing::Empty, true),
        ("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", Method::GET, 304, Framing::Empty, true),
        ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", Method::HEAD, 200, Framing::Empty, true),
        ("HTTP/1.1 100 Continue\r\n\r\n", Method::POST, 100, Framing::Empty, true),
        (
            "HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 4\r\n\r\n",
            Method::POST,
            503,
            Framing::Length(4),
            false,
        ),
        (
            "HTTP/1.1 200 OK\r\nConnection: Upgrade, Close\r\nContent-Length: 1\r\n\r\n",
            Method::POST,
            200,
            Framing::Length(1),
            false,
        ),
        ("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", Method::POST, 200, Framing::Length(1), false),
        (
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
            Method::POST,
            200,
            Framing::Length(1),
            true,
        ),
        (
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n",
            Method::POST,
            429,
            Framing::Length(0),
            true,
        ),
    ];
    for (text, method, status, framing, keep_alive) in cases {
        let (h, len) = head(text, method).expect("valid").expect("complete");
        assert_eq!(len, text.len(), "{text:?}");
        assert_eq!(h.status, StatusCode::from_u16(*status).expect("status"), "{text:?}");
        assert_eq!(h.framing, *framing, "{text:?}");
        assert_eq!(h.keep_alive, *keep_alive, "{text:?}");
    }
}

#[test]
fn a_2xx_head_keeps_no_headers_beyond_its_framing() {
    let text = "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let (h, _) = head(text, &Method::POST).expect("valid").expect("complete");
    assert!(h.headers.is_empty());
    assert_eq!((h.framing, h.keep_alive), (Framing::Length(0), false));
}

#[test]
fn a_head_keeps_every_header_for_the_classifier_and_dead_letters() {
    let text = "HTTP/1.1 429 Slow\r\nRetry-After: 7\r\nX-Reason: quota\r\nX-Reason: burst\r\nContent-Length: 0\r\n\r\n";
    let (h, _) = head(text, &Method::POST).expect("valid").expect("complete");
    assert_eq!(h.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("7"));
    assert_eq!(h.headers.get_all("x-reason").iter().count(), 2);
}

#[test]
fn an_incomplete_head_asks_for_more_and_a_bad_one_is_an_error() {
    assert!(head("HTTP/1.1 200 OK\r\nContent-Le", &Method::POST).expect("partial is fine").is_none());
    assert!(head("", &Method::POST).expect("empty is fine").is_none());
    assert!(matches!(head("SMTP ready\r\n\r\n", &Method::POST), Err(WireError::Head(_))));
    assert!(matches!(
        head("HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", &Method::POST),
        Err(WireError::ContentLength(_))
    ));
    assert!(matches!(
        head("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", &Method::POST),
        Err(WireError::ContentLength(_))
    ));
    assert_eq!(
        head("HTTP/1.1 101 Switching Protocols\r\n\r\n", &Method::POST).err(),
        Some(WireError::SwitchingProtocols)
    );
    let huge = format!("HTTP/1.1 200 OK\r\nX-Big: {}", "a".repeat(MAX_HEAD));
    assert_eq!(head(&huge, &Method::POST).err(), Some(WireError::HeadTooLarge));
}

/// RFC 9112 §6.3 and §8.6: framing a peer could read two ways is an error (the connection is then
/// dropped, never reused); sizes are bounded.
#[test]
fn ambiguous_or_malformed_framing_and_oversized_heads_are_refused() {
    let post = &Method::POST;
    let cases: &[(&str, WireError)] = &[
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", WireError::AmbiguousLength),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\ncontent-length: 0\r\n\r\n", WireError::AmbiguousLength),
        ("HTTP/1.1 503 Busy\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\n", WireError::AmbiguousLength),
        ("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", WireError::ContentLength("+5".into())),
        ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", WireError::ContentLength("-1".into())),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", WireError::ContentLength("5, 5".into())),
        ("HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n", WireError::ContentLength("0x10".into())),
        ("HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n", WireError::ContentLength("1 2".into())),
        ("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", WireError::ContentLength(String::new())),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n",
            WireError::ContentLength("18446744073709551616".into()),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(head(text, post).err().as_ref(), Some(want), "{text:?}");
    }
    let max = "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n";
    assert_eq!(head(max, post).expect("valid").expect("complete").0.framing, Framing::Length(u64::MAX));

    let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
    let too_many = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
    assert_eq!(head(&too_many, post).err(), Some(WireError::Head(httparse::Error::TooManyHeaders)));
    // A complete head over the bound is refused too, not only one still arriving.
    let big = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n", "a".repeat(MAX_HEAD));
    assert_eq!(head(&big, post).err(), Some(WireError::HeadTooLarge));
}

#[test]
fn endless_chunk_lines_and_trailers_are_refused_before_they_fill_memory() {
    let long_ext = format!("5;{}", "e".repeat(MAX_CHUNK_LINE + 1));
    assert_eq!(decode(Framing::Chunked, long_ext.as_bytes(), 1000, 10).err(), Some(WireError::ChunkLineTooLong));
    let endless_trailer = format!("0\r\nX-T: {}", "t".repeat(MAX_TRAILERS + 1));
    assert_eq!(decode(Framing::Chunked, endless_trailer.as_bytes(), 1000, 10).err(), Some(WireError::TrailersTooLarge));
    let many: String = (0..=MAX_HEADERS + 1).map(|i| format!("T{i}: v\r\n")).collect();
    let many_trailers = format!("0\r\n{many}\r\n");
    assert_eq!(decode(Framing::Chunked, many_trailers.as_bytes(), 1000, 10).err(), Some(WireError::TrailersTooLarge));
    // A few trailers are fine.
    assert!(decode(Framing::Chunked, b"0\r\nA: 1\r\nB: 2\r\n\r\n", 3, 10).expect("valid").0);
}

/// Feeds `wire` to a decoder in pieces of `step` bytes; returns (done, kept, read, leftover).
fn decode(framing: Framing, wire: &[u8], step: usize, keep: usize) -> Result<(bool, Vec<u8>, u64, Vec<u8>), WireError> {
    let mut decoder = BodyDecoder::new(framing, keep);
    let mut buf = BytesMut::new();
    for piece in wire.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        decoder.feed(&mut buf)?;
    }
    let done = decoder.is_done();
    let read = decoder.read();
    Ok((done, decoder.into_kept().to_vec(), read, buf.to_vec()))
}

#[test]
fn bodies_decode_whole_whatever_the_read_sizes() {
    let chunked = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
    // (framing, bytes on the wire, body, bytes left after it)
    type Case<'a> = (Framing, &'a [u8], &'a [u8], &'a [u8]);
    let cases: &[Case] = &[
        (Framing::Length(5), b"hello", b"hello", b""),
        (Framing::Length(3), b"abcdef", b"abc", b"def"),
        (Framing::Chunked, chunked, b"Wikipedia in \r\n\r\nchunks.", b"NEXT"),
        (Framing::Chunked, b"0\r\n\r\n", b"", b""),
        (Framing::Empty, b"rest", b"", b"rest"),
    ];
    for (framing, wire, body, leftover) in cases {
        for step in [1, 2, 3, 7, 1000] {
            let (done, kept, read, left) = decode(*framing, wire, step, 4096).expect("valid");
            assert!(done, "{framing:?} step {step}");
            assert_eq!(kept, *body, "{framing:?} step {step}");
            assert_eq!(read, body.len() as u64);
            assert_eq!(left, *leftover, "{framing:?} step {step}");
        }
    }
}

#[test]
fn only_the_first_bytes_are_kept_but_all_are_counted() {
    let (done, kept, read, _) = decode(Framing::Length(10), b"0123456789", 3, 4).expect("valid");
    assert!(done);
    assert_eq!(kept, b"0123");
    assert_eq!(read, 10);
}

#[test]
fn a_body_until_close_ends_at_eof_and_a_short_one_does_not() {
    let mut decoder = BodyDecoder::new(Framing::UntilClose, 4096);
    let mut buf = BytesMut::from(&b"partial answer"[..]);
    decoder.feed(&mut buf).expect("valid");
    assert!(!decoder.is_done());
    assert!(decoder.eof());
    assert_eq!(decoder.into_kept().as_ref(), b"partial answer");

    let mut short = BodyDecoder::new(Framing::Length(10), 4096);
    let mut buf = BytesMut::from(&b"abc"[..]);
    short.feed(&mut buf).expect("valid");
    assert!(!short.eof());
}

#[test]
fn broken_chunked_bodies_are_errors() {
    assert_eq!(decode(Framing::Chunked, b"zz\r\n", 100, 10).err(), Some(WireError::ChunkSize));
    assert_eq!(decode(Framing::Chunked, b"2\r\nabXY", 100, 10).err(), Some(WireError::ChunkEnd));
}

#[test]
fn headers_named_like_ours_in_any_case_are_still_ours() {
    // HeaderMap lower-cases names, so `Content-Type` from a Datum is written as `content-type`.
    let mut map = HeaderMap::new();
    map.insert(CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    let extra = [(AUTHORIZATION, HeaderValue::from_static("Basic x"))];
    let mut out = Vec::new();
    encode_request(&mut out, &Method::POST, "/", b"h", &map, extra.iter().map(|(n, v)| (n, v)), b"");
    let text = String::from_utf8(out).expect("utf-8");
    assert!(
        text.contains("\r\ncontent-type: text/csv\r\n") && text.contains("\r\nauthorization: Basic x\r\n"),
        "{text}"
    );
}

mod prop {
    use bytes::BytesMut;
    use proptest::prelude::*;

    use super::super::{BodyDecoder, Framing};

    /// `body` as a chunked encoding with chunks of the given sizes (cycled), some with an
    /// extension, and a trailer.
    fn chunked(body: &[u8], sizes: &[usize], extension: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = body;
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].clamp(1, rest.len());
            let ext = if extension && i % 2 == 0 { ";name=value" } else { "" };
            out.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
            i += 1;
        }
        out.extend_from_slice(b"0\r\nx-checksum: 1\r\n\r\n");
        out
    }

    /// Feeds `wire` in pieces of the given sizes (cycled); what was kept, read, and left over.
    fn feed(framing: Framing, wire: &[u8], pieces: &[usize], keep: usize) -> (bool, Vec<u8>, u64, Vec<u8>) {
        let mut decoder = BodyDecoder::new(framing, keep);
        let mut buf = BytesMut::new();
        let mut at = 0;
        let mut i = 0;
        while at < wire.len() {
            let n = pieces[i % pieces.len()].clamp(1, wire.len() - at);
            buf.extend_from_slice(&wire[at..at + n]);
            decoder.feed(&mut buf).expect("valid body");
            at += n;
            i += 1;
        }
        let (done, read) = (decoder.is_done(), decoder.read());
        (done, decoder.into_kept().to_vec(), read, buf.to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn chunked_bodies_decode_to_what_was_encoded_whatever_the_chunks_and_reads(
            body in prop::collection::vec(any::<u8>(), 0..3000),
            sizes in prop::collection::vec(1usize..700, 1..6),
            pieces in prop::collection::vec(1usize..300, 1..6),
            extension in any::<bool>(),
            keep in 0usize..5000,
        ) {
            let mut wire = chunked(&body, &sizes, extension);
            wire.extend_from_slice(b"HTTP/1.1");
            let (done, kept, read, left) = feed(Framing::Chunked, &wire, &pieces, keep);
            prop_assert!(done);
            prop_assert_eq!(&kept[..], &body[..keep.min(body.len())]);
            prop_assert_eq!(read, body.len() as u64);
            prop_assert_eq!(&left[..], b"HTTP/1.1", "the next response's bytes are left alone");
        }

        #[test]
        fn length_bodies_stop_at_their_length(
            body in prop::collection::vec(any::<u8>(), 0..3000),
            pieces in prop::collection::vec(1usize..300, 1..6),
        ) {
            let mut wire = body.clone();
            wire.extend_from_slice(b"NEXT");
            let (done, kept, read, left) = feed(Framing::Length(body.len() as u64), &wire, &pieces, 4096);
            prop_assert!(done);
            prop_assert_eq!(kept, body.clone());
            prop_assert_eq!(read, body.len() as u64);
            prop_assert_eq!(&left[..], b"NEXT");
        }
    }
}
