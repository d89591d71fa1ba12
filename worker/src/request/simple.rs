//! Templates that only put names in text — `/v1/users/{{ id }}`, `{{ record.segment }}` — are
//! rendered by substitution, without the template engine; anything else, and any value whose
//! text the engine might write differently (not a string or an integer, or missing), goes
//! through minijinja as before. The output is the engine's, byte for byte (a property test
//! compares the two).

use std::fmt::Write as _;

use super::context::BUILTINS;
use super::fields::{Picked, Scalar};
use minijinja::{AutoEscape, default_auto_escape_callback};
use serde_json::{Map, Value};

/// A template of literal text and plain names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// A top-level name: a built-in (`file`, `offset`, `package`, `namespace`) or else a field.
    Name(String),
    /// `record.<field>`.
    Field(String),
}

/// What a template may name besides the record's fields.
#[derive(Debug, Clone, Copy)]
pub struct Builtins<'a> {
    pub file: &'a str,
    pub offset: u64,
    pub package: &'a str,
    pub namespace: &'a str,
}

impl SimpleTemplate {
    /// The template `source` named `name`, if it only substitutes names and the engine would
    /// not escape them (a name ending `.json` or `.html` would be).
    pub fn parse(name: &str, source: &str) -> Option<Self> {
        if !matches!(default_auto_escape_callback(name), AutoEscape::None)
            || source.contains("{%")
            || source.contains("{#")
            || source.ends_with('\n')
        {
            return None;
        }
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}")?;
            parts.push(variable(after[..end].trim())?);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Some(Self { parts })
    }

    /// The record fields it reads, or None when it names the whole record (`{{ record }}`).
    pub fn fields(&self) -> Option<Vec<&str>> {
        let mut fields = Vec::new();
        for part in &self.parts {
            match part {
                Part::Text(_) => {}
                Part::Name(name) if name == "record" => return None,
                // The other built-ins are the package's and the file's, not the record's.
                Part::Name(name) if BUILTINS.contains(&name.as_str()) => {}
                Part::Name(field) | Part::Field(field) => fields.push(field.as_str()),
            }
        }
        Some(fields)
    }

    /// The rendered text, or None when a value is missing or not a string or an integer
    /// (the engine then renders it, or says why it cannot).
    pub fn render(&self, record: &Map<String, Value>, builtins: Builtins<'_>) -> Option<String> {
        let mut out = String::with_capacity(64);
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Name(name) => match name.as_str() {
                    "file" => out.push_str(builtins.file),
                    "offset" => write!(out, "{}", builtins.offset).ok()?,
                    "package" => out.push_str(builtins.package),
                    "namespace" => out.push_str(builtins.namespace),
                    "record" => return None,
                    field => push_value(&mut out, record.get(field)?)?,
                },
                Part::Field(field) => push_value(&mut out, record.get(field)?)?,
            }
        }
        Some(out)
    }
}

/// A [`SimpleTemplate`] with its names resolved once: each built-in to what it is, each field
/// to its position among the fields picked from a line ([`super::fields::pick`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    File,
    Offset,
    Package,
    Namespace,
    Picked(usize),
}

impl SimpleTemplate {
    /// Resolved, with `slot` giving each field's position; None when it names the whole record.
    pub fn resolve(&self, mut slot: impl FnMut(&str) -> usize) -> Option<Resolved> {
        let mut pieces = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            pieces.push(match part {
                Part::Text(text) => Piece::Text(text.clone()),
                Part::Name(name) => match name.as_str() {
                    "record" => return None,
                    "file" => Piece::File,
                    "offset" => Piece::Offset,
                    "package" => Piece::Package,
                    "namespace" => Piece::Namespace,
                    field => Piece::Picked(slot(field)),
                },
                Part::Field(field) => Piece::Picked(slot(field)),
            });
        }
        Some(Resolved { pieces })
    }
}

impl Resolved {
    /// Appends the rendered text to `out` — what [`SimpleTemplate::render`] gives for the same
    /// values — or gives None when a picked value is missing or not a string or an integer
    /// (`out` then holds part of it).
    pub fn render_into(&self, out: &mut String, picked: &Picked<'_>, builtins: Builtins<'_>) -> Option<()> {
        let mut digits = itoa::Buffer::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::File => out.push_str(builtins.file),
                Piece::Offset => out.push_str(digits.format(builtins.offset)),
                Piece::Package => out.push_str(builtins.package),
                Piece::Namespace => out.push_str(builtins.namespace),
                Piece::Picked(i) => match picked.get(*i)?.as_ref()? {
                    Scalar::Str(s) => out.push_str(s),
                    Scalar::Int(n) => out.push_str(digits.format(*n)),
                    Scalar::UInt(n) => out.push_str(digits.format(*n)),
                    Scalar::Other => return None,
                },
            }
        }
        Some(())
    }
}

/// A plain name or `record.<name>`; anything else (filters, operators, calls, literals,
/// whitespace control) is not simple.
fn variable(expr: &str) -> Option<Part> {
    match expr.split_once('.') {
        None => identifier(expr).then(|| Part::Name(expr.to_owned())),
        Some(("record", field)) => identifier(field).then(|| Part::Field(field.to_owned())),
        Some(_) => None,
    }
}

fn identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(s, "true" | "false" | "none" | "True" | "False" | "None" | "loop" | "self")
}

fn push_value(out: &mut String, value: &Value) -> Option<()> {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Number(n) if n.is_i64() || n.is_u64() => write!(out, "{n}").ok()?,
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
#[path = "simple_tests.rs"]
mod tests;
