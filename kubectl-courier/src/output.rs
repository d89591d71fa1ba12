//! `-o json` and `-o yaml`.

use std::io::Write as _;

use serde::Serialize;

use crate::cli::OutputFormat;
use crate::error::Error;

/// Prints `value` in `format` on stdout.
pub fn print<T: Serialize>(format: OutputFormat, value: &T) -> Result<(), Error> {
    let text = encode(format, value)?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(Error::Output)
}

/// `value` as pretty JSON or YAML, ending in a newline.
pub fn encode<T: Serialize>(format: OutputFormat, value: &T) -> Result<String, Error> {
    let mut text = match format {
        OutputFormat::Json => serde_json::to_string_pretty(value).map_err(|e| Error::Encode(e.to_string()))?,
        OutputFormat::Yaml => serde_norway::to_string(value).map_err(|e| Error::Encode(e.to_string()))?,
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// `value` as one line of JSON (for watching with `-o json`: one document per change).
pub fn json_line<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Encode(e.to_string()))
}
