//! CSV and TSV lines → JSON objects of strings.
//!
//! One record per line. CSV follows RFC 4180 quoting (`"a,b"`, `""` for a quote) within the
//! line; a quoted field cannot span lines (such a record comes out malformed). TSV has no
//! quoting: every tab separates. Values stay strings.

use serde_json::{Map, Value};

/// Decodes lines of one file.
#[derive(Debug, Clone)]
pub struct CsvDecoder {
    names: Vec<String>,
    delimiter: u8,
    quoting: bool,
    fields: Vec<String>,
}

impl CsvDecoder {
    /// A decoder producing objects keyed by `names`; with no names, each line's columns are
    /// called `col1`, `col2`, … and any column count is accepted.
    pub fn new(names: Vec<String>, delimiter: u8, quoting: bool) -> Self {
        CsvDecoder { names, delimiter, quoting, fields: Vec::new() }
    }

    /// The column names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Splits one line into its fields (for header lines).
    pub fn split(&mut self, line: &[u8]) -> Result<Vec<String>, String> {
        split_line(line, self.delimiter, self.quoting, &mut self.fields)?;
        Ok(std::mem::take(&mut self.fields))
    }

    /// Decodes one line into an object; the error is the dead-letter reason.
    pub fn decode(&mut self, line: &[u8]) -> Result<Map<String, Value>, String> {
        split_line(line, self.delimiter, self.quoting, &mut self.fields)?;
        let mut object = Map::new();
        if self.names.is_empty() {
            for (i, value) in self.fields.drain(..).enumerate() {
                object.insert(format!("col{}", i + 1), Value::String(value));
            }
            return Ok(object);
        }
        if self.fields.len() != self.names.len() {
            return Err(format!("expected {} fields, found {}", self.names.len(), self.fields.len()));
        }
        for (name, value) in self.names.iter().zip(self.fields.drain(..)) {
            object.insert(name.clone(), Value::String(value));
        }
        Ok(object)
    }
}

/// Splits `line` at `delimiter` into `out` (cleared first).
fn split_line(line: &[u8], delimiter: u8, quoting: bool, out: &mut Vec<String>) -> Result<(), String> {
    out.clear();
    let text = std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8: {e}"))?;
    let bytes = text.as_bytes();
    let mut i = 0;
    loop {
        if quoting && bytes.get(i) == Some(&b'"') {
            let mut value = String::new();
            let mut j = i + 1;
            loop {
                match memchr::memchr(b'"', &bytes[j..]) {
                    None => return Err(format!("unterminated quoted field at column {}", out.len() + 1)),
                    Some(k) => {
                        value.push_str(&text[j..j + k]);
                        j += k + 1;
                        if bytes.get(j) == Some(&b'"') {
                            value.push('"');
                            j += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            out.push(value);
            match bytes.get(j) {
                None => return Ok(()),
                Some(b) if *b == delimiter => i = j + 1,
                Some(_) => {
                    return Err(format!("unexpected character after closing quote at column {}", out.len()));
                }
            }
        } else {
            match memchr::memchr(delimiter, &bytes[i..]) {
                Some(k) => {
                    out.push(text[i..i + k].to_owned());
                    i += k + 1;
                }
                None => {
                    out.push(text[i..].to_owned());
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str, delimiter: u8, quoting: bool) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        split_line(line.as_bytes(), delimiter, quoting, &mut out).map(|()| out)
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn csv_lines_split_with_rfc4180_quoting() {
        let cases: &[(&str, &[&str])] = &[
            ("a,b,c", &["a", "b", "c"]),
            ("a,,c", &["a", "", "c"]),
            ("", &[""]),
            ("a,", &["a", ""]),
            (r#""x,y",z"#, &["x,y", "z"]),
            (r#""say ""hi""","#, &[r#"say "hi""#, ""]),
            (r#""""#, &[""]),
            ("é,ü", &["é", "ü"]),
            (r#"a"b,c"#, &[r#"a"b"#, "c"]),
        ];
        for (line, want) in cases {
            assert_eq!(split(line, b',', true), Ok(strings(want)), "{line}");
        }
    }

    #[test]
    fn broken_quoting_is_a_reason_not_a_panic() {
        let err = split(r#""open,b"#, b',', true).expect_err("unterminated");
        assert!(err.contains("unterminated quoted field"), "{err}");
        let err = split(r#""a"b,c"#, b',', true).expect_err("garbage after quote");
        assert!(err.contains("after closing quote"), "{err}");
    }

    #[test]
    fn tsv_splits_on_every_tab_and_keeps_quotes() {
        assert_eq!(split("a\t\"b\t\tc", b'\t', false), Ok(strings(&["a", "\"b", "", "c"])));
    }

    #[test]
    fn records_map_names_to_string_values() {
        let mut d = CsvDecoder::new(vec!["id".into(), "name".into()], b';', true);
        let obj = d.decode(b"7;Ada").expect("two fields");
        assert_eq!(serde_json::Value::Object(obj), serde_json::json!({"id": "7", "name": "Ada"}));
        let err = d.decode(b"7;Ada;extra").expect_err("three fields");
        assert_eq!(err, "expected 2 fields, found 3");
        let err = d.decode(b"\xff;x").expect_err("bad utf-8");
        assert!(err.starts_with("invalid UTF-8"), "{err}");
    }

    #[test]
    fn without_names_columns_are_numbered_from_one() {
        let mut d = CsvDecoder::new(Vec::new(), b',', true);
        let obj = d.decode(b"a,b").expect("any count");
        assert_eq!(serde_json::Value::Object(obj), serde_json::json!({"col1": "a", "col2": "b"}));
    }
}
