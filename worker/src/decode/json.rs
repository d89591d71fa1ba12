//! JSON lines: each non-empty line must be one JSON object. The line is checked, not kept
//! parsed: the record carries the raw bytes.

use bytes::Bytes;
use serde::de::IgnoredAny;

/// Checks that `line` is exactly one JSON object (surrounding whitespace allowed).
/// The error is the reason given to the dead letter.
pub fn check_object(line: &[u8]) -> Result<(), String> {
    match line.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(other) => {
            return Err(format!("not a JSON object: line starts with {:?}", char::from(*other)));
        }
        None => return Err("blank line".to_owned()),
    }
    // serde_json does not check UTF-8 inside strings it skips: check the whole line first.
    let text = std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8: {e}"))?;
    serde_json::from_str::<IgnoredAny>(text).map(|_| ()).map_err(|e| format!("invalid JSON: {e}"))
}

/// Drops a UTF-8 byte-order mark (only ever at the start of a file).
pub fn strip_bom(line: Bytes) -> Bytes {
    if line.starts_with(b"\xEF\xBB\xBF") { line.slice(3..) } else { line }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_pass_and_everything_else_has_a_reason() {
        assert_eq!(check_object(br#"{"id":1,"tags":["a"]}"#), Ok(()));
        assert_eq!(check_object(br#"  {"id":1}  "#), Ok(()));
        let cases: &[(&[u8], &str)] = &[
            (b"[1,2]", "not a JSON object"),
            (b"42", "not a JSON object"),
            (br#"{"id":1"#, "invalid JSON: EOF while parsing"),
            (br#"{"id":1}{"id":2}"#, "invalid JSON: trailing characters"),
            (br#"{"id":01}"#, "invalid JSON"),
            (b"{\"s\":\"\xff\"}", "invalid UTF-8"),
        ];
        for (line, reason) in cases {
            let err = check_object(line).expect_err("must be refused");
            assert!(err.starts_with(reason), "{err:?} for {:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn byte_order_marks_are_dropped() {
        assert_eq!(&strip_bom(Bytes::from_static(b"\xEF\xBB\xBF{}"))[..], b"{}");
        assert_eq!(&strip_bom(Bytes::from_static(b"{}"))[..], b"{}");
    }
}
