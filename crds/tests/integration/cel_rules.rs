//! The validation table: every object under config/samples/invalid/ must be refused with the
//! message in its `# expect:` line, and every valid sample accepted. CEL rules are evaluated here
//! client-side (kube's CEL support); the e2e suite replays the same files against a real apiserver.

use std::path::{Path, PathBuf};

use courier_api::{Datum, DeliveryPackage, Destination};
use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde_json::Value;

struct Case {
    file: String,
    expect: String,
    docs: Vec<Value>,
}

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples")
}

fn load(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("sample is readable");
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("sample is YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn invalid_cases() -> Vec<Case> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(samples_dir().join("invalid"))
        .expect("invalid samples exist")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    entries.sort();
    entries
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("readable");
            let expect = text
                .lines()
                .find_map(|l| l.strip_prefix("# expect: "))
                .unwrap_or_else(|| panic!("{} has an `# expect:` line", path.display()))
                .to_owned();
            Case { file: path.file_name().expect("name").to_string_lossy().into_owned(), expect, docs: load(&path) }
        })
        .collect()
}

fn schema_for(kind: &str) -> Value {
    let crd = match kind {
        "Destination" => Destination::crd(),
        "Datum" => Datum::crd(),
        "DeliveryPackage" => DeliveryPackage::crd(),
        other => panic!("unknown kind {other}"),
    };
    serde_json::to_value(
        crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).expect("schema"),
    )
    .expect("schema is JSON")
}

/// What refuses an object client-side: the CEL rules, or (for enum values, which the apiserver
/// checks with OpenAPI and which CEL never sees) the typed deserialization.
fn refusal(kind: &str, new: &Value, old: Option<&Value>) -> Option<String> {
    if let Err(errors) = Validator::new().validate(&schema_for(kind), new, old) {
        return Some(errors.into_vec().into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "));
    }
    let typed = match kind {
        "Destination" => serde_json::from_value::<Destination>(new.clone()).err(),
        "Datum" => serde_json::from_value::<Datum>(new.clone()).err(),
        _ => serde_json::from_value::<DeliveryPackage>(new.clone()).err(),
    };
    typed.map(|e| e.to_string())
}

#[test]
fn there_are_at_least_twenty_invalid_samples() {
    assert!(invalid_cases().len() >= 20);
}

#[test]
fn every_invalid_sample_is_refused_with_its_message() {
    let mut failures = Vec::new();
    for case in invalid_cases() {
        let kind = case.docs[0]["kind"].as_str().expect("kind").to_owned();
        let (new, old) = match case.docs.as_slice() {
            [only] => (only, None),
            [old, new] => {
                assert!(refusal(&kind, old, None).is_none(), "{}: the original object must be valid", case.file);
                (new, Some(old))
            }
            _ => panic!("{}: one or two documents", case.file),
        };
        match refusal(&kind, new, old) {
            None => failures.push(format!("{}: accepted, expected refusal with {:?}", case.file, case.expect)),
            Some(msg) if case.expect.starts_with("Unsupported value: ") => {
                // OpenAPI enum check: apiserver message differs from serde's; check the value is named.
                let value = case.expect.trim_start_matches("Unsupported value: ");
                if !msg.contains(value.trim_matches('"')) {
                    failures.push(format!("{}: refused with {msg:?}, expected it to name {value}", case.file));
                }
            }
            Some(msg) if !msg.contains(&case.expect) => {
                failures.push(format!("{}: refused with {msg:?}, expected {:?}", case.file, case.expect))
            }
            Some(_) => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_valid_sample_is_accepted() {
    for name in ["destination.yaml", "datum.yaml", "deliverypackage.yaml"] {
        for doc in load(&samples_dir().join(name)) {
            let kind = doc["kind"].as_str().expect("kind").to_owned();
            if kind == "Secret" {
                continue;
            }
            assert_eq!(refusal(&kind, &doc, None), None, "{name} must be valid");
        }
    }
}

#[test]
fn an_unchanged_update_of_an_immutable_field_is_accepted() {
    let docs = load(&samples_dir().join("deliverypackage.yaml"));
    let mut updated = docs[0].clone();
    updated["spec"]["suspend"] = Value::Bool(true);
    updated["spec"]["retryNonce"] = Value::String("again".into());
    assert_eq!(refusal("DeliveryPackage", &updated, Some(&docs[0])), None);
}
