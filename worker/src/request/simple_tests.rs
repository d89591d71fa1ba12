use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior};
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::request::context::RecordContext;

const FILE: &str = "hdfs://nn:9000/data/a.jsonl";

fn builtins() -> Builtins<'static> {
    Builtins { file: FILE, offset: 42, package: "pkg", namespace: "team-a" }
}

/// What minijinja renders, as the builder sets it up (semi-strict undefined).
fn engine(name: &str, source: &str, record: &serde_json::Value) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.add_template_owned(name.to_owned(), source.to_owned())?;
    let ctx = RecordContext {
        record: Arc::new(record.clone()),
        file: Arc::from(FILE),
        offset: 42,
        package: Arc::from("pkg"),
        namespace: Arc::from("team-a"),
    }
    .into_value();
    env.get_template(name)?.render(ctx)
}

fn fields(record: &serde_json::Value) -> &Map<String, Value> {
    record.as_object().expect("an object")
}

#[test]
fn names_in_text_are_simple_and_everything_else_is_not() {
    // (name, source, simple?)
    let table: &[(&str, &str, bool)] = &[
        ("path", "/v1/users/{{ id }}", true),
        ("path", "/v1/{{record.kind}}/{{id}}?f={{ file }}", true),
        ("path", "no names at all", true),
        ("header X-Segment", "{{ segment }}", true),
        ("path", "{{ id | upper }}", false),
        ("path", "{{ id ~ 'x' }}", false),
        ("path", "{{ items[0] }}", false),
        ("path", "{{ a.b }}", false),
        ("path", "{{- id }}", false),
        ("path", "{% if id %}x{% endif %}", false),
        ("path", "{# note #}{{ id }}", false),
        ("path", "{{ id }}\n", false),
        ("path", "{{ true }}", false),
        ("path", "{{ id", false),
        ("header x.json", "{{ id }}", false),
        ("body.html", "{{ id }}", false),
    ];
    for (name, source, simple) in table {
        assert_eq!(SimpleTemplate::parse(name, source).is_some(), *simple, "{name}: {source:?}");
    }
}

#[test]
fn values_the_engine_might_write_differently_are_left_to_it() {
    let t = SimpleTemplate::parse("path", "/{{ v }}").expect("simple");
    let record = json!({ "s": "a b/é", "i": -7, "u": 18446744073709551615u64, "f": 1.0, "b": true, "n": null, "o": {}, "a": [] });
    for (field, rendered) in [("s", Some("/a b/é")), ("i", Some("/-7")), ("u", Some("/18446744073709551615"))] {
        let t = SimpleTemplate::parse("path", &format!("/{{{{ {field} }}}}")).expect("simple");
        assert_eq!(t.render(fields(&record), builtins()).as_deref(), rendered, "{field}");
    }
    for field in ["f", "b", "n", "o", "a", "missing"] {
        let t = SimpleTemplate::parse("path", &format!("/{{{{ {field} }}}}")).expect("simple");
        assert_eq!(t.render(fields(&record), builtins()), None, "{field}");
    }
    assert_eq!(t.render(fields(&json!({ "v": "x" })), builtins()).as_deref(), Some("/x"));
    let whole = SimpleTemplate::parse("path", "{{ record }}").expect("simple");
    assert_eq!(whole.render(fields(&record), builtins()), None, "the whole record is the engine's");
}

#[test]
fn built_in_names_win_over_fields_which_stay_reachable_under_record() {
    let record = json!({ "file": "mine", "offset": 1, "package": "p", "namespace": "n", "id": 5 });
    let t =
        SimpleTemplate::parse("path", "{{file}}|{{offset}}|{{package}}|{{namespace}}|{{record.file}}|{{ record.id }}")
            .expect("simple");
    let expected = format!("{FILE}|42|pkg|team-a|mine|5");
    assert_eq!(t.render(fields(&record), builtins()).as_deref(), Some(expected.as_str()));
    assert_eq!(engine("path", &t_source(&t), &record).expect("renders"), expected);
}

/// The source again, from the parts (for comparing with the engine).
fn t_source(t: &SimpleTemplate) -> String {
    t.parts
        .iter()
        .map(|p| match p {
            Part::Text(s) => s.clone(),
            Part::Name(n) => format!("{{{{ {n} }}}}"),
            Part::Field(f) => format!("{{{{ record.{f} }}}}"),
        })
        .collect()
}

fn value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        "[ -~é/?&%{}<>\"']{0,12}".prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ]
}

fn source() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        "[a-z/?=&.-]{0,6}",
        Just("{{ a }}".to_owned()),
        Just("{{b}}".to_owned()),
        Just("{{ record.a }}".to_owned()),
        Just("{{ record.c }}".to_owned()),
        Just("{{ offset }}".to_owned()),
        Just("{{ file }}".to_owned()),
        Just("{{ namespace }}".to_owned()),
        Just("{{ missing }}".to_owned()),
    ];
    proptest::collection::vec(part, 0..6).prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn what_is_rendered_without_the_engine_is_what_the_engine_renders(
        source in source(), a in value(), b in value(), c in value(),
    ) {
        let record = json!({ "a": a, "b": b, "c": c });
        let t = SimpleTemplate::parse("path", &source).expect("these sources are simple");
        if let Some(fast) = t.render(fields(&record), builtins()) {
            let slow = engine("path", &source, &record);
            prop_assert_eq!(Some(fast), slow.ok(), "{}", source);
        }
    }
}

/// `t` resolved against the fields it names, and the value of each field picked from `record`
/// serialized as a JSON line, rendered.
fn render_picked(t: &SimpleTemplate, record: &serde_json::Value) -> Option<String> {
    let mut names: Vec<String> = Vec::new();
    let resolved = t
        .resolve(|field| {
            names.iter().position(|n| n == field).unwrap_or_else(|| {
                names.push(field.to_owned());
                names.len() - 1
            })
        })
        .expect("names no whole record");
    let line = serde_json::to_vec(record).expect("serializes");
    let picked = crate::request::fields::pick(&line, &names).expect("an object");
    let mut out = String::new();
    resolved.render_into(&mut out, &picked, builtins()).map(|()| out)
}

#[test]
fn a_resolved_template_renders_picked_values_as_the_engine_does() {
    let t =
        SimpleTemplate::parse("path", "/v1/{{ record.kind }}/{{ id }}?at={{ offset }}&f={{ file }}").expect("simple");
    // (record, rendered; None: left to the engine)
    let table = [
        (json!({ "kind": "users", "id": 7 }), Some(format!("/v1/users/7?at=42&f={FILE}"))),
        (json!({ "kind": "é ü ∂", "id": -7 }), Some(format!("/v1/é ü ∂/-7?at=42&f={FILE}"))),
        (
            json!({ "kind": "a\"b\\c\n<&>", "id": u64::MAX }),
            Some(format!("/v1/a\"b\\c\n<&>/{}?at=42&f={FILE}", u64::MAX)),
        ),
        (json!({ "kind": "", "id": "" }), Some(format!("/v1//?at=42&f={FILE}"))),
        (json!({ "kind": "k", "id": 1.5 }), None),
        (json!({ "kind": "k", "id": true }), None),
        (json!({ "kind": "k", "id": null }), None),
        (json!({ "kind": "k", "id": [1] }), None),
        (json!({ "kind": "k", "id": { "a": 1 } }), None),
        (json!({ "kind": "k" }), None),
    ];
    for (record, expected) in table {
        let got = render_picked(&t, &record);
        assert_eq!(got, expected, "{record}");
        assert_eq!(got, t.render(fields(&record), builtins()), "{record}: as substituted from the object");
        if let Some(text) = got {
            assert_eq!(engine("path", &t_source(&t), &record).expect("renders"), text, "{record}");
        }
    }
    assert_eq!(SimpleTemplate::parse("path", "/{{ record }}").expect("simple").resolve(|_| 0), None);
}

proptest! {
    #[test]
    fn what_is_rendered_from_a_picked_line_is_what_the_engine_renders(
        source in source(), a in value(), b in value(), c in value(),
    ) {
        let record = json!({ "a": a, "b": b, "c": c });
        let t = SimpleTemplate::parse("path", &source).expect("these sources are simple");
        let picked = render_picked(&t, &record);
        prop_assert_eq!(&picked, &t.render(fields(&record), builtins()));
        if let Some(fast) = picked {
            prop_assert_eq!(Some(fast), engine("path", &source, &record).ok(), "{}", source);
        }
    }
}
