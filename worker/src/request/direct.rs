//! The plan for building requests straight from a JSON line, when every template of a Datum
//! only puts names in text ([`SimpleTemplate`]): its templates resolved once, when the builder
//! is made, and the fields they (and the idempotency key) read, by position. Per record the
//! builder picks those fields from the line as text ([`fields::pick`]) and writes them into the
//! path, headers and body — no JSON value, no template context, no look-up of a template or a
//! field by name. What this cannot write exactly as the engine would (a missing field, a value
//! that is not a string or an integer, a line that is not a JSON object) is left to the general
//! path, which gives the same request or the same error as before.

use std::collections::HashMap;

use courier_core::request::{BODY_TEMPLATE, CompiledRequest, PATH_TEMPLATE};
use http::HeaderValue;
use http::header::HeaderName;

use super::fields::{self, MAX_PICKED, Picked, Scalar};
use super::simple::{Resolved, SimpleTemplate};

/// The resolved templates of one Datum and the fields they read.
#[derive(Debug)]
pub struct Direct {
    /// The record fields to pick from a line; a [`Resolved`] template refers to them by position.
    names: Vec<String>,
    pub path: Option<Resolved>,
    /// The templated headers, in the order of [`CompiledRequest::header_templates`].
    pub headers: Vec<(HeaderName, Resolved)>,
    pub body: Option<Resolved>,
    /// Position of the idempotency key field, when the key is a record field.
    key: Option<usize>,
}

impl Direct {
    /// The plan for `compiled`, whose simple templates are `simple` (by name); None when a
    /// template is not simple or names the whole record, or more than [`MAX_PICKED`] fields are
    /// read.
    pub fn new(compiled: &CompiledRequest, simple: &HashMap<String, SimpleTemplate>) -> Option<Self> {
        let mut names: Vec<String> = Vec::new();
        let mut resolve = |template: &str| simple.get(template)?.resolve(|field| slot(&mut names, field));
        let path = if compiled.path_template { Some(resolve(PATH_TEMPLATE)?) } else { None };
        let body = if compiled.body_template { Some(resolve(BODY_TEMPLATE)?) } else { None };
        let headers = compiled
            .header_templates
            .iter()
            .map(|(name, template)| Some((name.clone(), resolve(template)?)))
            .collect::<Option<Vec<_>>>()?;
        let key = compiled.key_field.as_deref().map(|field| slot(&mut names, field));
        (names.len() <= MAX_PICKED).then_some(Self { names, path, headers, body, key })
    }

    /// The fields of `line` the templates and the key read; None when the line is not a JSON
    /// object (or not JSON).
    pub fn pick<'a>(&self, line: &'a [u8]) -> Option<Picked<'a>> {
        fields::pick(line, &self.names)
    }

    /// The idempotency key from the picked key field, when it is one; `Some(None)` when the
    /// key is positional. None when the field is missing or a value whose text only the general
    /// path writes (a float) or that cannot be a key.
    pub fn key(&self, picked: &Picked<'_>) -> Option<Option<String>> {
        let Some(slot) = self.key else { return Some(None) };
        match picked.get(slot)?.as_ref()? {
            Scalar::Str(s) if HeaderValue::from_str(s).is_ok() => Some(Some(s.clone().into_owned())),
            Scalar::Int(n) => Some(Some(n.to_string())),
            Scalar::UInt(n) => Some(Some(n.to_string())),
            _ => None,
        }
    }
}

/// The position of `field` in `names`, added at the end if new.
fn slot(names: &mut Vec<String>, field: &str) -> usize {
    names.iter().position(|n| n == field).unwrap_or_else(|| {
        names.push(field.to_owned());
        names.len() - 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use courier_core::request::RequestSpec;

    fn plan(path: Option<&str>, headers: &[(&str, &str)], key: Option<&str>) -> Option<Direct> {
        let mut s = RequestSpec::new("http://h/api", "ns", "pkg");
        s.path_template = path.map(str::to_owned);
        s.header_templates = headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        s.idempotency.field = key.map(str::to_owned);
        let compiled = CompiledRequest::new(&s).expect("spec");
        let simple = compiled
            .env
            .templates()
            .filter_map(|(name, t)| Some((name.to_owned(), SimpleTemplate::parse(name, t.source())?)))
            .collect();
        Direct::new(&compiled, &simple)
    }

    /// Path template, header templates, key field, fields picked (None: no plan).
    type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], Option<&'a str>, Option<&'a [&'a str]>);

    #[test]
    fn each_field_is_picked_once_whichever_templates_name_it() {
        // (path, headers, key field, fields picked; None: no plan)
        let table: &[Case<'_>] = &[
            (Some("/v1/users/{{ id }}"), &[("X-Segment", "{{ segment }}")], None, Some(&["id", "segment"])),
            (
                Some("/{{ id }}/{{ record.id }}"),
                &[("X-A", "{{ a }}-{{ id }}")],
                Some("uuid"),
                Some(&["id", "a", "uuid"]),
            ),
            (Some("/{{ file }}/{{ offset }}"), &[("X-N", "{{ namespace }}")], None, Some(&[])),
            (None, &[("X-Static", "plain")], Some("id"), Some(&["id"])),
            (Some("/{{ record }}"), &[], None, None),
            (Some("/{{ id | upper }}"), &[], None, None),
            (None, &[("X-H", "{% if a %}a{% endif %}")], None, None),
            (
                Some("/{{a}}{{b}}{{c}}{{d}}{{e}}{{f}}{{g}}{{h}}"),
                &[],
                None,
                Some(&["a", "b", "c", "d", "e", "f", "g", "h"]),
            ),
            (Some("/{{a}}{{b}}{{c}}{{d}}{{e}}{{f}}{{g}}{{h}}"), &[], Some("i"), None),
        ];
        for (path, headers, key, expected) in table {
            let got = plan(*path, headers, *key);
            let names = got.as_ref().map(|d| d.names.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(names.as_deref(), *expected, "{path:?} {headers:?} {key:?}");
        }
    }

    #[test]
    fn the_key_is_a_picked_string_usable_as_a_header_value_or_an_integer() {
        let d = plan(Some("/{{ id }}"), &[], Some("uuid")).expect("a plan");
        // (line, key; None: left to the general path)
        let table: &[(&str, Option<&str>)] = &[
            (r#"{"id":1,"uuid":"abc"}"#, Some("abc")),
            (r#"{"id":1,"uuid":12}"#, Some("12")),
            (r#"{"id":1,"uuid":-3}"#, Some("-3")),
            (r#"{"id":1,"uuid":1.5}"#, None),
            (r#"{"id":1,"uuid":"a\nb"}"#, None),
            (r#"{"id":1,"uuid":null}"#, None),
            (r#"{"id":1}"#, None),
        ];
        for (line, expected) in table {
            let picked = d.pick(line.as_bytes()).expect("an object");
            assert_eq!(d.key(&picked).map(|k| k.expect("a key field")).as_deref(), *expected, "{line}");
        }
        let positional = plan(Some("/{{ id }}"), &[], None).expect("a plan");
        let picked = positional.pick(br#"{"id":1}"#).expect("an object");
        assert_eq!(positional.key(&picked), Some(None));
    }
}
