//! The Datum as a worker needs it: the format of its files and its request templates — the
//! protocol's own type, converted from the API once.
//!
//! The JSON shape follows the Datum resource's spec, so workers and operators of the previous
//! protocol version read it.

use courier_api::datum as api;
use serde::{Deserialize, Serialize};

use crate::format::FormatSpec;
use crate::request::RequestTemplates;

/// What a worker needs of a Datum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatumSettings {
    pub format: FormatSpec,
    #[serde(default)]
    pub request: RequestTemplates,
}

impl From<&api::DatumSpec> for DatumSettings {
    fn from(spec: &api::DatumSpec) -> Self {
        DatumSettings { format: FormatSpec::from(&spec.format), request: RequestTemplates::from(&spec.request) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> api::DatumSpec {
        serde_norway::from_str(yaml).expect("valid Datum spec")
    }

    const DATUMS: [&str; 3] = [
        "format: {type: JsonLines}\n",
        "format: {type: Csv, compression: Gzip, csv: {header: false, delimiter: ';'}, fields: [id, name]}\n\
         request: {pathTemplate: '/u/{{ id }}', headers: {X-T: '{{ t }}'}, body: {template: '{}'}, \
         contentType: text/plain, idempotencyKey: {header: X-Key, field: id}}\n\
         landing: {path: 'file:///in', destinations: [{name: d}]}\n",
        "format: {type: Parquet, fields: [a]}\nrequest: {pathTemplate: '/x'}\n",
    ];

    #[test]
    fn what_this_operator_sends_still_parses_as_the_spec_a_previous_worker_expects() {
        for yaml in DATUMS {
            let api = spec(yaml);
            let json = serde_json::to_value(DatumSettings::from(&api)).expect("serializes");
            let old: api::DatumSpec = serde_json::from_value(json).expect("a previous worker parses it");
            assert_eq!(FormatSpec::from(&old.format), FormatSpec::from(&api.format), "{yaml}");
            assert_eq!(old.request, api.request, "{yaml}");
        }
    }

    #[test]
    fn the_spec_a_previous_operator_sent_parses_as_settings() {
        for yaml in DATUMS {
            let api = spec(yaml);
            let json = serde_json::to_value(&api).expect("serializes");
            let settings: DatumSettings = serde_json::from_value(json).expect("parses");
            assert_eq!(settings, DatumSettings::from(&api), "{yaml}");
        }
    }
}
