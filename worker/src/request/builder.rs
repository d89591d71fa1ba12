//! Turns records into requests. Templates are compiled once, when the builder is made; a
//! package without templates builds every request without touching the template engine, and a
//! package whose templates only put names in text builds a JSON line's request straight from
//! the line ([`Direct`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use courier_core::request::{BODY_TEMPLATE, CompiledRequest, PATH_TEMPLATE, RequestSpec, SpecError};
use http::header::{HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Uri};

use super::context::RecordContext;
use super::direct::Direct;
use super::fields;
use super::idempotency::idempotency_key;
use super::simple::{Builtins, SimpleTemplate};
use crate::record::{Payload, Record};

/// Why one record could not become a request; the record is dead-lettered with this reason.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("record is not valid JSON: {0}")]
    InvalidJson(serde_json::Error),
    #[error("failed to serialize record as JSON: {0}")]
    Serialize(serde_json::Error),
    #[error("failed to render the {what} template: {source}")]
    Render { what: String, source: minijinja::Error },
    #[error("rendered URL {url:?} is invalid: {source}")]
    Url { url: String, source: http::uri::InvalidUri },
    #[error("rendered value of header {name:?} is not a valid header value")]
    HeaderValue { name: String },
    #[error("idempotency key field {0:?} is missing, or not a number or a string usable as a header value")]
    KeyField(String),
}

/// One request, ready for the sender (which adds the auth header).
#[derive(Debug, Clone)]
pub struct BuiltRequest {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub idempotency_key: String,
}

/// Builds the request of every record of one package.
#[derive(Debug)]
pub struct RequestBuilder {
    compiled: CompiledRequest,
    /// Each template by name, when it only puts names in text ([`SimpleTemplate`]).
    simple: HashMap<String, SimpleTemplate>,
    /// The only record fields a request needs, when every template is simple and none names
    /// the whole record: a JSON line is then read for those alone ([`fields::parse_wanted`]).
    wanted: Option<HashSet<String>>,
    /// The plan for a JSON line, when every template is simple and none names the whole record.
    direct: Option<Direct>,
    /// The compiled headers with every templated header already in its place (with an empty
    /// value, replaced per record): a record's map is a copy of this one, filled in without
    /// growing.
    headers: HeaderMap,
}

impl RequestBuilder {
    /// Compiles `spec`'s templates and checks its names and URL.
    pub fn new(spec: &RequestSpec) -> Result<Self, SpecError> {
        let compiled = CompiledRequest::new(spec)?;
        let simple = compiled
            .env
            .templates()
            .filter_map(|(name, t)| Some((name.to_owned(), SimpleTemplate::parse(name, t.source())?)))
            .collect();
        let wanted = wanted_fields(&compiled, &simple);
        let direct = wanted.as_ref().and_then(|_| Direct::new(&compiled, &simple));
        let mut headers = compiled.headers.clone();
        for (name, _) in &compiled.header_templates {
            headers.insert(name.clone(), HeaderValue::from_static(""));
        }
        Ok(Self { compiled, simple, wanted, direct, headers })
    }

    /// The idempotency key header name.
    pub fn key_header(&self) -> &HeaderName {
        &self.compiled.key_header
    }

    /// The stable idempotency key of a record by position (ignores any key field).
    pub fn positional_key(&self, file_url: &str, offset: u64) -> String {
        idempotency_key(&self.compiled.namespace, &self.compiled.package, file_url, offset)
    }

    /// Builds the request of `record`.
    pub fn build(&self, record: &Record) -> Result<BuiltRequest, BuildError> {
        if !self.compiled.needs_fields() {
            return Ok(BuiltRequest {
                method: self.compiled.method.clone(),
                uri: self.compiled.base_uri.clone(),
                headers: self.compiled.headers.clone(),
                body: record_body(&record.payload)?,
                idempotency_key: self.positional_key(&record.file.url, record.offset),
            });
        }
        if let (Some(direct), Payload::JsonLine(line)) = (&self.direct, &record.payload)
            && let Some(request) = self.build_direct(direct, record, line)
        {
            return Ok(request);
        }
        let value = match (&record.payload, &self.wanted) {
            (Payload::JsonLine(line), None) => serde_json::from_slice(line).map_err(BuildError::InvalidJson)?,
            (Payload::JsonLine(line), Some(wanted)) => {
                fields::parse_wanted(line, wanted).map_err(BuildError::InvalidJson)?
            }
            (Payload::Object(fields), None) => serde_json::Value::Object(fields.clone()),
            (Payload::Object(fields), Some(wanted)) => serde_json::Value::Object(
                fields.iter().filter(|(k, _)| wanted.contains(*k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
            ),
        };
        let idempotency_key = match &self.compiled.key_field {
            None => self.positional_key(&record.file.url, record.offset),
            Some(field) => match value.get(field) {
                Some(serde_json::Value::String(s)) if HeaderValue::from_str(s).is_ok() => s.clone(),
                Some(n @ serde_json::Value::Number(_)) => n.to_string(),
                _ => return Err(BuildError::KeyField(field.clone())),
            },
        };
        let body = if self.compiled.body_template { None } else { Some(record_body(&record.payload)?) };
        let value = Arc::new(value);
        let builtins = Builtins {
            file: &record.file.url,
            offset: record.offset,
            package: &self.compiled.package,
            namespace: &self.compiled.namespace,
        };
        // The engine's context, made only if a template needs the engine.
        let mut ctx = None;
        let mut render = |name: &str| -> Result<String, BuildError> {
            if let (Some(simple), Some(fields)) = (self.simple.get(name), value.as_object())
                && let Some(text) = simple.render(fields, builtins)
            {
                return Ok(text);
            }
            let ctx = ctx.get_or_insert_with(|| {
                RecordContext {
                    record: Arc::clone(&value),
                    file: record.file.url.clone(),
                    offset: record.offset,
                    package: self.compiled.package.clone(),
                    namespace: self.compiled.namespace.clone(),
                }
                .into_value()
            });
            self.render(name, ctx)
        };
        let uri = if self.compiled.path_template {
            let path = render(PATH_TEMPLATE)?;
            match uri_with_path(&self.compiled.base_uri, &path) {
                Some(uri) => uri,
                None => {
                    let url = join_url(&self.compiled.base_url, &path);
                    url.parse().map_err(|source| BuildError::Url { url, source })?
                }
            }
        } else {
            self.compiled.base_uri.clone()
        };
        let mut headers = self.headers.clone();
        for (name, template) in &self.compiled.header_templates {
            let rendered = render(template)?;
            let value =
                HeaderValue::try_from(rendered).map_err(|_| BuildError::HeaderValue { name: name.to_string() })?;
            headers.insert(name.clone(), value);
        }
        let body = match body {
            Some(b) => b,
            None => Bytes::from(render(BODY_TEMPLATE)?),
        };
        Ok(BuiltRequest { method: self.compiled.method.clone(), uri, headers, body, idempotency_key })
    }

    /// The request of a JSON line by [`Direct`]'s plan; None when the plan cannot write it as
    /// the general path would (that path then builds it, or says why it cannot).
    fn build_direct(&self, direct: &Direct, record: &Record, line: &Bytes) -> Option<BuiltRequest> {
        let picked = direct.pick(line)?;
        let idempotency_key = match direct.key(&picked)? {
            Some(key) => key,
            None => self.positional_key(&record.file.url, record.offset),
        };
        let builtins = Builtins {
            file: &record.file.url,
            offset: record.offset,
            package: &self.compiled.package,
            namespace: &self.compiled.namespace,
        };
        let mut text = String::with_capacity(128);
        let uri = match &direct.path {
            None => self.compiled.base_uri.clone(),
            Some(path) => {
                path.render_into(&mut text, &picked, builtins)?;
                match uri_with_path(&self.compiled.base_uri, &text) {
                    Some(uri) => uri,
                    None => join_url(&self.compiled.base_url, &text).parse().ok()?,
                }
            }
        };
        let mut headers = self.headers.clone();
        for (name, template) in &direct.headers {
            text.clear();
            template.render_into(&mut text, &picked, builtins)?;
            headers.insert(name.clone(), HeaderValue::from_str(&text).ok()?);
        }
        let body = match &direct.body {
            None => line.clone(),
            Some(body) => {
                let mut text = String::new();
                body.render_into(&mut text, &picked, builtins)?;
                Bytes::from(text)
            }
        };
        Some(BuiltRequest { method: self.compiled.method.clone(), uri, headers, body, idempotency_key })
    }

    fn render(&self, name: &str, ctx: &minijinja::Value) -> Result<String, BuildError> {
        let render_err = |source| BuildError::Render { what: name.to_owned(), source };
        self.compiled.env.get_template(name).and_then(|t| t.render(ctx)).map_err(render_err)
    }
}

/// The record fields the requests of `compiled` need, if they can be told: every template is
/// simple and none names the whole record (the idempotency key field counts too).
fn wanted_fields(compiled: &CompiledRequest, simple: &HashMap<String, SimpleTemplate>) -> Option<HashSet<String>> {
    let mut wanted = HashSet::new();
    for (name, _) in compiled.env.templates() {
        wanted.extend(simple.get(name)?.fields()?.into_iter().map(str::to_owned));
    }
    wanted.extend(compiled.key_field.iter().cloned());
    Some(wanted)
}

/// The record as a JSON body: a JSON line as-is (no copy), an object serialized.
fn record_body(payload: &Payload) -> Result<Bytes, BuildError> {
    match payload {
        Payload::JsonLine(line) => Ok(line.clone()),
        Payload::Object(fields) => serde_json::to_vec(fields).map(Bytes::from).map_err(BuildError::Serialize),
    }
}

/// `base` with `path` joined to its path as [`join_url`] joins them, made from the parts `base`
/// already has (only the new path is parsed). None when `base` has a query, or the joined path is
/// not valid: the whole URL is then parsed as text, which says why.
fn uri_with_path(base: &Uri, path: &str) -> Option<Uri> {
    if base.query().is_some() {
        return None;
    }
    let base_path = base.path().trim_end_matches('/');
    let sep = if path.starts_with('/') || (base_path.is_empty() && path.is_empty()) {
        ""
    } else if path.is_empty() || path.starts_with('?') {
        if base_path.is_empty() { "/" } else { "" }
    } else {
        "/"
    };
    // Exactly as long as it is, so that its bytes become the path's without another allocation.
    let mut joined = String::with_capacity(base_path.len() + sep.len() + path.len());
    joined.push_str(base_path);
    joined.push_str(sep);
    joined.push_str(path);
    let mut parts = base.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::from_maybe_shared(Bytes::from(joined)).ok()?);
    Uri::from_parts(parts).ok()
}

fn join_url(base: &str, path: &str) -> String {
    if path.is_empty() || path.starts_with('/') || path.starts_with('?') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    }
}

#[cfg(test)]
#[path = "builder_tests.rs"]
mod tests;
