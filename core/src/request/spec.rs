//! The request part of a Datum plus the Destination's endpoint, as plain values (independent
//! of the CRD types, which convert into it).
//!
//! [`RequestTemplates`] is the Datum's `request` block as the protocol carries it (same JSON
//! shape as the resource's); [`RequestSpec`] joins it with the endpoint and the package.

use std::collections::BTreeMap;

use courier_api::datum as api;
use serde::{Deserialize, Serialize};

use crate::destination::EndpointSettings;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencySpec {
    /// The header name (default `Idempotency-Key`).
    #[serde(default = "default_key_header")]
    pub header: String,
    /// A record field whose value is the key; by default the key is the stable hash of
    /// (namespace, package, file, offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

fn default_key_header() -> String {
    api::IdempotencyKey::default().header
}

fn default_content_type() -> String {
    api::RequestSpec::default().content_type
}

impl Default for IdempotencySpec {
    fn default() -> Self {
        Self { header: default_key_header(), field: None }
    }
}

/// A body template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyTemplate {
    pub template: String,
}

/// The request part of a Datum: templates and content type, without the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestTemplates {
    /// Appended to the endpoint URL (empty: none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path_template: String,
    /// Header templates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// No body template: the record as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyTemplate>,
    #[serde(default = "default_content_type")]
    pub content_type: String,
    #[serde(default)]
    pub idempotency_key: IdempotencySpec,
}

impl Default for RequestTemplates {
    fn default() -> Self {
        Self::from(&api::RequestSpec::default())
    }
}

impl From<&api::RequestSpec> for RequestTemplates {
    fn from(request: &api::RequestSpec) -> Self {
        RequestTemplates {
            path_template: request.path_template.clone(),
            headers: request.headers.clone(),
            body: request.body.as_ref().map(|b| BodyTemplate { template: b.template.clone() }),
            content_type: request.content_type.clone(),
            idempotency_key: IdempotencySpec {
                header: request.idempotency_key.header.clone(),
                field: request.idempotency_key.field.clone(),
            },
        }
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
            content_type: default_content_type(),
            idempotency: IdempotencySpec::default(),
            namespace: namespace.into(),
            package: package.into(),
        }
    }
}

impl RequestSpec {
    /// A POST of the records of a Datum (`templates`) to `url`, without the Destination's
    /// static headers: what the operator compiles to check a Datum.
    pub fn from_templates(url: &str, templates: &RequestTemplates, namespace: &str, package: &str) -> Self {
        Self {
            path_template: Some(templates.path_template.clone()).filter(|p| !p.is_empty()),
            header_templates: templates.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            body: templates.body.as_ref().map_or(BodySpec::Record, |b| BodySpec::Template(b.template.clone())),
            content_type: templates.content_type.clone(),
            idempotency: templates.idempotency_key.clone(),
            ..Self::new(url, namespace, package)
        }
    }

    /// The request spec of records of a Datum (`templates`) sent to a Destination
    /// (`endpoint`) for package `namespace/package`.
    pub fn for_endpoint(
        endpoint: &EndpointSettings,
        templates: &RequestTemplates,
        namespace: &str,
        package: &str,
    ) -> Self {
        Self {
            method: endpoint.method.clone(),
            static_headers: endpoint.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            ..Self::from_templates(&endpoint.url, templates, namespace, package)
        }
    }
}
