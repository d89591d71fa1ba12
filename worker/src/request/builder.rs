//! Turns records into requests. Templates are compiled once, when the builder is made; a
//! package without templates builds every request without touching the template engine.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};
use minijinja::{Environment, UndefinedBehavior};

use super::context::RecordContext;
use super::idempotency::idempotency_key;
use super::spec::{BodySpec, RequestSpec};
use crate::record::{Payload, Record};

const PATH: &str = "path";
const BODY: &str = "body";

/// A request spec that cannot be used at all (reported on the Datum, not per record).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("failed to compile the {what} template: {source}")]
    Template { what: String, source: minijinja::Error },
    #[error("invalid endpoint URL {url:?}: {source}")]
    Url { url: String, source: http::uri::InvalidUri },
    #[error("invalid HTTP method {0:?}")]
    Method(String),
    #[error("invalid header name {0:?}")]
    HeaderName(String),
    #[error("invalid value of header {0:?}")]
    HeaderValue(String),
}

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
    method: Method,
    base_url: String,
    base_uri: Uri,
    headers: HeaderMap,
    key_header: HeaderName,
    key_field: Option<String>,
    env: Environment<'static>,
    path_template: bool,
    header_templates: Vec<(HeaderName, String)>,
    body_template: bool,
    namespace: Arc<str>,
    package: Arc<str>,
}

impl RequestBuilder {
    /// Compiles `spec`'s templates and checks its names and URL.
    pub fn new(spec: &RequestSpec) -> Result<Self, SpecError> {
        let method = Method::from_bytes(spec.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| SpecError::Method(spec.method.clone()))?;
        let base_url = spec.url.trim_end_matches('/').to_owned();
        let base_uri: Uri = spec.url.parse().map_err(|source| SpecError::Url { url: spec.url.clone(), source })?;
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        let mut add = |name: String, source: &str| {
            env.add_template_owned(name.clone(), source.to_owned())
                .map_err(|source| SpecError::Template { what: name, source })
        };
        let path_template = match &spec.path_template {
            Some(p) if !p.is_empty() => {
                add(PATH.to_owned(), p)?;
                true
            }
            _ => false,
        };
        let body_template = match &spec.body {
            BodySpec::Record => false,
            BodySpec::Template(t) => {
                add(BODY.to_owned(), t)?;
                true
            }
        };
        let mut headers = HeaderMap::new();
        let content_type =
            HeaderValue::from_str(&spec.content_type).map_err(|_| SpecError::HeaderValue(CONTENT_TYPE.to_string()))?;
        headers.insert(CONTENT_TYPE, content_type);
        for (name, value) in &spec.static_headers {
            headers.insert(header_name(name)?, header_value(name, value)?);
        }
        let mut header_templates = Vec::new();
        for (name, value) in &spec.header_templates {
            let header = header_name(name)?;
            if value.contains("{{") || value.contains("{%") {
                let template = format!("header {name}");
                add(template.clone(), value)?;
                header_templates.push((header, template));
            } else {
                headers.insert(header, header_value(name, value)?);
            }
        }
        Ok(Self {
            method,
            base_url,
            base_uri,
            headers,
            key_header: header_name(&spec.idempotency.header)?,
            key_field: spec.idempotency.field.clone(),
            env,
            path_template,
            header_templates,
            body_template,
            namespace: spec.namespace.as_str().into(),
            package: spec.package.as_str().into(),
        })
    }

    /// The idempotency key header name.
    pub fn key_header(&self) -> &HeaderName {
        &self.key_header
    }

    fn needs_fields(&self) -> bool {
        self.path_template || self.body_template || !self.header_templates.is_empty() || self.key_field.is_some()
    }

    /// The stable idempotency key of a record by position (ignores any key field).
    pub fn positional_key(&self, file_url: &str, offset: u64) -> String {
        idempotency_key(&self.namespace, &self.package, file_url, offset)
    }

    /// Builds the request of `record`.
    pub fn build(&self, record: &Record) -> Result<BuiltRequest, BuildError> {
        if !self.needs_fields() {
            return Ok(BuiltRequest {
                method: self.method.clone(),
                uri: self.base_uri.clone(),
                headers: self.headers.clone(),
                body: record_body(&record.payload)?,
                idempotency_key: self.positional_key(&record.file.url, record.offset),
            });
        }
        let value = match &record.payload {
            Payload::JsonLine(line) => serde_json::from_slice(line).map_err(BuildError::InvalidJson)?,
            Payload::Object(fields) => serde_json::Value::Object(fields.clone()),
        };
        let idempotency_key = match &self.key_field {
            None => self.positional_key(&record.file.url, record.offset),
            Some(field) => match value.get(field) {
                Some(serde_json::Value::String(s)) if HeaderValue::from_str(s).is_ok() => s.clone(),
                Some(n @ serde_json::Value::Number(_)) => n.to_string(),
                _ => return Err(BuildError::KeyField(field.clone())),
            },
        };
        let body = if self.body_template { None } else { Some(record_body(&record.payload)?) };
        let ctx = RecordContext {
            record: value,
            file: record.file.url.clone(),
            offset: record.offset,
            package: self.package.clone(),
            namespace: self.namespace.clone(),
        }
        .into_value();
        let uri = if self.path_template {
            let path = self.render(PATH, &ctx)?;
            let url = join_url(&self.base_url, &path);
            url.parse().map_err(|source| BuildError::Url { url, source })?
        } else {
            self.base_uri.clone()
        };
        let mut headers = self.headers.clone();
        for (name, template) in &self.header_templates {
            let rendered = self.render(template, &ctx)?;
            let value =
                HeaderValue::try_from(rendered).map_err(|_| BuildError::HeaderValue { name: name.to_string() })?;
            headers.insert(name.clone(), value);
        }
        let body = match body {
            Some(b) => b,
            None => Bytes::from(self.render(BODY, &ctx)?),
        };
        Ok(BuiltRequest { method: self.method.clone(), uri, headers, body, idempotency_key })
    }

    fn render(&self, name: &str, ctx: &minijinja::Value) -> Result<String, BuildError> {
        let render_err = |source| BuildError::Render { what: name.to_owned(), source };
        self.env.get_template(name).and_then(|t| t.render(ctx)).map_err(render_err)
    }
}

/// The record as a JSON body: a JSON line as-is (no copy), an object serialized.
fn record_body(payload: &Payload) -> Result<Bytes, BuildError> {
    match payload {
        Payload::JsonLine(line) => Ok(line.clone()),
        Payload::Object(fields) => serde_json::to_vec(fields).map(Bytes::from).map_err(BuildError::Serialize),
    }
}

fn join_url(base: &str, path: &str) -> String {
    if path.is_empty() || path.starts_with('/') || path.starts_with('?') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    }
}

fn header_name(name: &str) -> Result<HeaderName, SpecError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| SpecError::HeaderName(name.to_owned()))
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, SpecError> {
    HeaderValue::from_str(value).map_err(|_| SpecError::HeaderValue(name.to_owned()))
}

#[cfg(test)]
#[path = "builder_tests.rs"]
mod tests;
