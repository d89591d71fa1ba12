//! Validate (pure): compile a Datum's request templates as the worker will (`courier-core`'s
//! compiled request) and check its format options, so a Datum that cannot work is refused
//! before any package uses it.

use courier_api::Datum;
use courier_api::conditions::DatumReason;
use courier_api::datum::FormatType;
use courier_core::format::FormatSpec;
use courier_core::request::{CompiledRequest, RequestSpec, RequestTemplates};

/// Why a Datum is not Ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Ready=False reason.
    pub reason: DatumReason,
    /// The compile or format error.
    pub message: String,
}

/// Checks that the templates compile and the format options are consistent.
pub fn validate(datum: &Datum) -> Result<(), Invalid> {
    let templates = RequestTemplates::from(&datum.spec.request);
    let spec = RequestSpec::from_templates("http://127.0.0.1/", &templates, "namespace", "package");
    CompiledRequest::new(&spec)
        .map_err(|e| Invalid { reason: DatumReason::TemplateInvalid, message: e.to_string() })?;
    let format = &datum.spec.format;
    let format_invalid = |message: String| Invalid { reason: DatumReason::FormatInvalid, message };
    FormatSpec::from(format).validate().map_err(|e| format_invalid(e.to_string()))?;
    if format.csv.is_some() && !matches!(format.type_, FormatType::Csv | FormatType::Tsv) {
        return Err(format_invalid(format!("format.csv applies to Csv and Tsv only, not {:?}", format.type_)));
    }
    if let Some(landing) = &datum.spec.landing
        && !(landing.path.starts_with("hdfs://") || landing.path.starts_with("file://"))
    {
        return Err(Invalid {
            reason: DatumReason::LandingPathInvalid,
            message: format!("landing.path {:?} must start with hdfs:// or file://", landing.path),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datum(spec: &str) -> Datum {
        let yaml = format!(
            "apiVersion: courier.dev/v1alpha1\nkind: Datum\nmetadata: {{ name: d, namespace: ns }}\nspec:\n{spec}"
        );
        serde_norway::from_str(&yaml).expect("valid Datum YAML")
    }

    #[test]
    fn a_datum_with_compiling_templates_is_valid() {
        let d = datum(
            "  format: { type: JsonLines }\n  request:\n    pathTemplate: \"/users/{{ id }}\"\n    headers: { X-Tenant: \"{{ tenant }}\" }\n    body: { template: \"{\\\"id\\\": {{ id }}}\" }\n",
        );
        assert_eq!(validate(&d), Ok(()));
    }

    #[test]
    fn a_template_that_does_not_compile_is_template_invalid_with_the_compiler_message() {
        let d = datum("  format: { type: JsonLines }\n  request:\n    pathTemplate: \"/users/{{ id \"\n");
        let err = validate(&d).expect_err("invalid");
        assert_eq!(err.reason, DatumReason::TemplateInvalid);
        assert!(err.message.contains("path"), "{}", err.message);
    }

    #[test]
    fn a_multi_character_csv_delimiter_is_format_invalid() {
        let d = datum("  format: { type: Csv, csv: { header: true, delimiter: \";;\" } }\n  request: {}\n");
        assert_eq!(validate(&d).expect_err("invalid").reason, DatumReason::FormatInvalid);
    }

    #[test]
    fn csv_options_on_parquet_are_format_invalid() {
        let d = datum("  format: { type: Parquet, csv: { header: true } }\n  request: {}\n");
        assert_eq!(validate(&d).expect_err("invalid").reason, DatumReason::FormatInvalid);
    }
}
