//! The request part of a Datum plus the Destination's endpoint, as plain values (independent
//! of the CRD types, which convert into it).

/// How the body of each request is made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BodySpec {
    /// The record as JSON: a JSON-lines line byte for byte, other formats serialized.
    #[default]
    Record,
    /// A minijinja template rendered per record.
    Template(String),
}

/// Where each request's idempotency key comes from and which header carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencySpec {
    /// The header name (default `Idempotency-Key`).
    pub header: String,
    /// A record field whose value is the key; by default the key is the stable hash of
    /// (namespace, package, file, offset).
    pub field: Option<String>,
}

impl Default for IdempotencySpec {
    fn default() -> Self {
        Self { header: "Idempotency-Key".to_owned(), field: None }
    }
}

/// Everything needed to build the request of any record of one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSpec {
    /// The Destination endpoint URL; a rendered path template is appended to it.
    pub url: String,
    /// HTTP method (default POST).
    pub method: String,
    /// The Destination's static headers.
    pub static_headers: Vec<(String, String)>,
    /// Optional path template, appended to `url` (e.g. `/users/{{ id }}`).
    pub path_template: Option<String>,
    /// Header templates from the Datum (rendered per record; a header whose template has no
    /// `{{`/`{%` is treated as static).
    pub header_templates: Vec<(String, String)>,
    /// The body.
    pub body: BodySpec,
    /// Content type of the body (default `application/json`).
    pub content_type: String,
    /// The idempotency key.
    pub idempotency: IdempotencySpec,
    /// Namespace of the DeliveryPackage (part of the idempotency key and a template variable).
    pub namespace: String,
    /// Name of the DeliveryPackage (part of the idempotency key and a template variable).
    pub package: String,
}

impl RequestSpec {
    /// A POST of each record as JSON to `url`, with the default idempotency header.
    pub fn new(url: impl Into<String>, namespace: impl Into<String>, package: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            method: "POST".to_owned(),
            static_headers: Vec::new(),
            path_template: None,
            header_templates: Vec::new(),
            body: BodySpec::Record,
            content_type: "application/json".to_owned(),
            idempotency: IdempotencySpec::default(),
            namespace: namespace.into(),
            package: package.into(),
        }
    }
}

impl RequestSpec {
    /// The request spec of records of a Datum (`request`) sent to a Destination (`endpoint`)
    /// for package `namespace/package`.
    pub fn from_api(
        endpoint: &courier_api::destination::Endpoint,
        request: &courier_api::datum::RequestSpec,
        namespace: &str,
        package: &str,
    ) -> Self {
        Self {
            url: endpoint.url.clone(),
            method: endpoint.method.as_str().to_owned(),
            static_headers: endpoint.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            path_template: Some(request.path_template.clone()).filter(|p| !p.is_empty()),
            header_templates: request.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            body: request.body.as_ref().map_or(BodySpec::Record, |b| BodySpec::Template(b.template.clone())),
            content_type: request.content_type.clone(),
            idempotency: IdempotencySpec {
                header: request.idempotency_key.header.clone(),
                field: request.idempotency_key.field.clone(),
            },
            namespace: namespace.to_owned(),
            package: package.to_owned(),
        }
    }
}
