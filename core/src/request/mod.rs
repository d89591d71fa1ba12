//! The request part of a Datum with the Destination's endpoint ([`RequestSpec`]), and its
//! compiled form ([`CompiledRequest`]). The worker renders records with it.

mod compile;
mod spec;

pub use compile::{BODY_TEMPLATE, CompiledRequest, PATH_TEMPLATE, SpecError};
pub use spec::{BodySpec, BodyTemplate, IdempotencySpec, RequestSpec, RequestTemplates};
