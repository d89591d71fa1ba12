//! A Datum's `format` block as decoders and the planner see it, converted from the API here
//! and nowhere else. Its JSON shape is the resource's (the protocol carries it).

use serde::{Deserialize, Serialize};

/// File format of a Datum's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FormatKind {
    /// One JSON object per line.
    JsonLines,
    /// Comma (or another one-byte delimiter) separated values, RFC 4180 quoting.
    Csv,
    /// Tab separated values, no quoting.
    Tsv,
    /// Apache Parquet.
    Parquet,
    /// Apache Avro object container files.
    Avro,
}

/// Whole-file compression of text formats. Parquet and Avro compress internally and ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Compression {
    /// Plain bytes.
    None,
    /// gzip (concatenated members are read as one stream).
    Gzip,
    /// Zstandard (concatenated frames are read as one stream).
    Zstd,
    /// Chosen per file by extension: `.gz` → gzip, `.zst`/`.zstd` → zstd, anything else → none.
    #[default]
    Auto,
}

impl Compression {
    /// The concrete compression of the file at `url` (never `Auto`).
    pub fn resolve(self, url: &str) -> Compression {
        match self {
            Compression::Auto => {
                let path = url.split(['?', '#']).next().unwrap_or(url);
                if path.ends_with(".gz") {
                    Compression::Gzip
                } else if path.ends_with(".zst") || path.ends_with(".zstd") {
                    Compression::Zstd
                } else {
                    Compression::None
                }
            }
            other => other,
        }
    }
}

/// CSV options; TSV uses only `header`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvOptions {
    /// The first line of each file names the columns (and is not a record).
    #[serde(default = "default_header")]
    pub header: bool,
    /// One ASCII character.
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
}

fn default_header() -> bool {
    CsvOptions::default().header
}

fn default_delimiter() -> String {
    CsvOptions::default().delimiter
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { header: true, delimiter: ",".to_owned() }
    }
}

/// Everything a decoder needs to know about a Datum's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatSpec {
    /// The file format.
    #[serde(rename = "type")]
    pub kind: FormatKind,
    /// Whole-file compression (text formats only).
    #[serde(default)]
    pub compression: Compression,
    /// CSV/TSV options.
    #[serde(default)]
    pub csv: CsvOptions,
    /// CSV/TSV: column names (override the header line when both exist).
    /// Parquet/Avro: the fields kept in each record (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

/// A format spec the worker cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The CSV delimiter is not exactly one ASCII character.
    #[error("CSV delimiter must be exactly one ASCII character, got {0:?}")]
    BadDelimiter(String),
    /// Neither a header nor a field list names the columns — allowed, but an empty field list is not.
    #[error("the field list is empty")]
    EmptyFields,
}

impl FormatSpec {
    /// A spec for `kind` with default options (Auto compression, CSV header, comma).
    pub fn new(kind: FormatKind) -> Self {
        FormatSpec { kind, compression: Compression::Auto, csv: CsvOptions::default(), fields: None }
    }

    /// Sets the compression.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Sets whether CSV/TSV files start with a header line.
    pub fn with_header(mut self, header: bool) -> Self {
        self.csv.header = header;
        self
    }

    /// Sets the field list.
    pub fn with_fields<S: Into<String>>(mut self, fields: impl IntoIterator<Item = S>) -> Self {
        self.fields = Some(fields.into_iter().map(Into::into).collect());
        self
    }

    /// True for formats read line by line.
    pub fn is_text(&self) -> bool {
        matches!(self.kind, FormatKind::JsonLines | FormatKind::Csv | FormatKind::Tsv)
    }

    /// The delimiter byte for CSV/TSV.
    pub fn delimiter(&self) -> Result<u8, SpecError> {
        match self.kind {
            FormatKind::Tsv => Ok(b'\t'),
            _ => match self.csv.delimiter.as_bytes() {
                [b] if b.is_ascii() && *b != b'\n' && *b != b'\r' && *b != b'"' => Ok(*b),
                _ => Err(SpecError::BadDelimiter(self.csv.delimiter.clone())),
            },
        }
    }

    /// Checks the options that can be wrong.
    pub fn validate(&self) -> Result<(), SpecError> {
        if matches!(self.kind, FormatKind::Csv | FormatKind::Tsv) {
            self.delimiter()?;
        }
        if self.fields.as_ref().is_some_and(Vec::is_empty) {
            return Err(SpecError::EmptyFields);
        }
        Ok(())
    }
}

impl From<&courier_api::datum::Format> for FormatSpec {
    fn from(format: &courier_api::datum::Format) -> Self {
        use courier_api::datum::{Compression as C, FormatType as T};
        let kind = match format.type_ {
            T::JsonLines => FormatKind::JsonLines,
            T::Csv => FormatKind::Csv,
            T::Tsv => FormatKind::Tsv,
            T::Parquet => FormatKind::Parquet,
            T::Avro => FormatKind::Avro,
        };
        let compression = match format.compression {
            C::Auto => Compression::Auto,
            C::None => Compression::None,
            C::Gzip => Compression::Gzip,
            C::Zstd => Compression::Zstd,
        };
        let options = format.csv.clone().unwrap_or_default();
        FormatSpec {
            kind,
            compression,
            csv: CsvOptions { header: options.header, delimiter: options.delimiter.unwrap_or_else(|| ",".to_owned()) },
            fields: (!format.fields.is_empty()).then(|| format.fields.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datum_formats_convert_with_their_defaults() {
        let yaml = "type: Tsv\ncsv:\n  header: false\nfields: [id, name]\n";
        let api: courier_api::datum::Format = serde_norway::from_str(yaml).expect("valid format");
        let spec = FormatSpec::from(&api);
        assert_eq!(spec.kind, FormatKind::Tsv);
        assert_eq!(spec.compression, Compression::Auto);
        assert!(!spec.csv.header);
        assert_eq!(spec.fields, Some(vec!["id".to_owned(), "name".to_owned()]));
        assert_eq!(spec.delimiter(), Ok(b'\t'));

        let api: courier_api::datum::Format =
            serde_norway::from_str("type: Csv\ncompression: Gzip\n").expect("valid format");
        let spec = FormatSpec::from(&api);
        assert_eq!((spec.kind, spec.compression), (FormatKind::Csv, Compression::Gzip));
        assert!(spec.csv.header);
        assert_eq!(spec.delimiter(), Ok(b','));
        assert_eq!(spec.fields, None);
    }

    #[test]
    fn auto_compression_follows_the_extension() {
        let cases = [
            ("hdfs://nn/a/part-0.jsonl.gz", Compression::Gzip),
            ("file:///a/part-0.csv.zst", Compression::Zstd),
            ("file:///a/part-0.csv.zstd", Compression::Zstd),
            ("file:///a/part-0.csv", Compression::None),
            ("file:///a/gz/part-0", Compression::None),
        ];
        for (url, want) in cases {
            assert_eq!(Compression::Auto.resolve(url), want, "{url}");
        }
        assert_eq!(Compression::Gzip.resolve("x.csv"), Compression::Gzip);
    }

    #[test]
    fn delimiters_must_be_one_ascii_character() {
        let mut spec = FormatSpec::new(FormatKind::Csv);
        assert_eq!(spec.delimiter(), Ok(b','));
        spec.csv.delimiter = ";".into();
        assert_eq!(spec.delimiter(), Ok(b';'));
        for bad in ["", ";;", "é", "\n", "\""] {
            spec.csv.delimiter = bad.into();
            assert!(spec.validate().is_err(), "{bad:?} accepted");
        }
        let tsv = FormatSpec::new(FormatKind::Tsv);
        assert_eq!(tsv.delimiter(), Ok(b'\t'));
    }
}
