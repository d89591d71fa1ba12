//! A request spec checked and its templates compiled, once per package: the one definition of
//! "this Datum's request can work" (the operator's Datum check and the worker's builder both
//! start here).

use std::sync::Arc;

use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};
use minijinja::{Environment, UndefinedBehavior};

use super::spec::{BodySpec, RequestSpec};

/// Name of the compiled path template.
pub const PATH_TEMPLATE: &str = "path";
/// Name of the compiled body template.
pub const BODY_TEMPLATE: &str = "body";

/// Template instructions one render may run (a loop over a record's fields takes a few per
/// field): a template that runs longer fails that record, which is dead-lettered, instead of
/// holding a worker.
pub const RENDER_FUEL: u64 = 100_000;

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

/// Everything fixed for the requests of one package: method, base URL, static headers, the
/// idempotency header and the compiled templates.
#[derive(Debug)]
pub struct CompiledRequest {
    pub method: Method,
    /// The endpoint URL without a trailing `/` (a rendered path is appended to it).
    pub base_url: String,
    pub base_uri: Uri,
    /// Content type, the Destination's static headers and the Datum's headers without
    /// template syntax.
    pub headers: HeaderMap,
    pub key_header: HeaderName,
    /// A record field whose value is the idempotency key.
    pub key_field: Option<String>,
    /// The compiled templates, by name ([`PATH_TEMPLATE`], [`BODY_TEMPLATE`], `header <name>`).
    pub env: Environment<'static>,
    pub path_template: bool,
    /// Headers rendered per record, with their template's name.
    pub header_templates: Vec<(HeaderName, String)>,
    pub body_template: bool,
    pub namespace: Arc<str>,
    pub package: Arc<str>,
}

impl CompiledRequest {
    /// Compiles `spec`'s templates and checks its names and URL.
    pub fn new(spec: &RequestSpec) -> Result<Self, SpecError> {
        let method = Method::from_bytes(spec.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| SpecError::Method(spec.method.clone()))?;
        let base_url = spec.url.trim_end_matches('/').to_owned();
        let base_uri: Uri = spec.url.parse().map_err(|source| SpecError::Url { url: spec.url.clone(), source })?;
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_fuel(Some(RENDER_FUEL));
        let mut add = |name: String, source: &str| {
            env.add_template_owned(name.clone(), source.to_owned())
                .map_err(|source| SpecError::Template { what: name, source })
        };
        let path_template = match &spec.path_template {
            Some(p) if !p.is_empty() => {
                add(PATH_TEMPLATE.to_owned(), p)?;
                true
            }
            _ => false,
        };
        let body_template = match &spec.body {
            BodySpec::Record => false,
            BodySpec::Template(t) => {
                add(BODY_TEMPLATE.to_owned(), t)?;
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

    /// True when building a request needs the record's fields (any template or a key field).
    pub fn needs_fields(&self) -> bool {
        self.path_template || self.body_template || !self.header_templates.is_empty() || self.key_field.is_some()
    }
}

fn header_name(name: &str) -> Result<HeaderName, SpecError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| SpecError::HeaderName(name.to_owned()))
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, SpecError> {
    HeaderValue::from_str(value).map_err(|_| SpecError::HeaderValue(name.to_owned()))
}
