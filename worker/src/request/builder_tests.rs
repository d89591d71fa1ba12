use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;

use super::*;
use crate::record::FileRef;
use crate::request::{BodySpec, IdempotencySpec};

fn spec() -> RequestSpec {
    RequestSpec::new("http://127.0.0.1:8080/api", "ns", "pkg")
}

fn line(text: &str, offset: u64) -> Record {
    Record {
        file: FileRef { url: Arc::from("file:///data/a.jsonl") },
        offset,
        size: text.len() as u64,
        payload: Payload::JsonLine(Bytes::copy_from_slice(text.as_bytes())),
    }
}

fn object(value: serde_json::Value, offset: u64) -> Record {
    let serde_json::Value::Object(fields) = value else { panic!("not an object") };
    Record {
        file: FileRef { url: Arc::from("file:///data/a.csv") },
        offset,
        size: 10,
        payload: Payload::Object(fields),
    }
}

#[test]
fn without_templates_a_json_line_is_sent_byte_for_byte_without_copying() {
    let builder = RequestBuilder::new(&spec()).expect("spec");
    let record = line(r#"{"id": 1,  "name":"a"}"#, 7);
    let req = builder.build(&record).expect("build");
    let Payload::JsonLine(original) = &record.payload else { unreachable!() };
    assert_eq!(req.body, *original);
    assert_eq!(req.body.as_ptr(), original.as_ptr(), "the body shares the line's buffer");
    assert_eq!(req.method, http::Method::POST);
    assert_eq!(req.uri, "http://127.0.0.1:8080/api");
    assert_eq!(req.headers["content-type"], "application/json");
    assert_eq!(req.idempotency_key, idempotency_key("ns", "pkg", "file:///data/a.jsonl", 7));
}

#[test]
fn an_object_record_is_serialized_as_json() {
    let builder = RequestBuilder::new(&spec()).expect("spec");
    let req = builder.build(&object(json!({"id": "x", "n": 2}), 0)).expect("build");
    let body: serde_json::Value = serde_json::from_slice(&req.body).expect("json");
    assert_eq!(body, json!({"id": "x", "n": 2}));
}

#[test]
fn path_headers_and_body_templates_see_fields_and_builtins() {
    let mut s = spec();
    s.method = "put".into();
    s.path_template = Some("/users/{{ id }}?src={{ file | urlencode }}".into());
    s.header_templates = vec![("X-Offset".into(), "{{ offset }}".into()), ("X-Static".into(), "plain".into())];
    s.body = BodySpec::Template(r#"{"user": {{ record.id | tojson }}, "pkg": "{{ namespace }}/{{ package }}"}"#.into());
    let builder = RequestBuilder::new(&s).expect("spec");
    let req = builder.build(&line(r#"{"id": "u1"}"#, 99)).expect("build");
    assert_eq!(req.method, http::Method::PUT);
    assert_eq!(req.uri, "http://127.0.0.1:8080/api/users/u1?src=file%3A///data/a.jsonl");
    assert_eq!(req.headers["x-offset"], "99");
    assert_eq!(req.headers["x-static"], "plain");
    assert_eq!(&req.body[..], br#"{"user": "u1", "pkg": "ns/pkg"}"#);
}

#[test]
fn a_template_naming_a_missing_field_fails_that_record_only() {
    let mut s = spec();
    s.path_template = Some("/users/{{ id }}".into());
    let builder = RequestBuilder::new(&s).expect("spec");
    let err = builder.build(&line(r#"{"name": "no id"}"#, 0)).expect_err("missing field");
    assert!(matches!(err, BuildError::Render { .. }), "{err}");
    assert!(builder.build(&line(r#"{"id": 5}"#, 1)).is_ok());
}

#[test]
fn a_line_that_is_not_json_fails_only_when_a_template_needs_its_fields() {
    let plain = RequestBuilder::new(&spec()).expect("spec");
    assert!(plain.build(&line("not json", 0)).is_ok());
    let mut s = spec();
    s.path_template = Some("/{{ id }}".into());
    let templated = RequestBuilder::new(&s).expect("spec");
    assert!(matches!(templated.build(&line("not json", 0)), Err(BuildError::InvalidJson(_))));
}

#[test]
fn the_idempotency_key_can_come_from_a_record_field_under_a_custom_header() {
    let mut s = spec();
    s.idempotency = IdempotencySpec { header: "X-Request-Key".into(), field: Some("uuid".into()) };
    let builder = RequestBuilder::new(&s).expect("spec");
    assert_eq!(builder.key_header(), "x-request-key");
    assert_eq!(builder.build(&line(r#"{"uuid": "abc"}"#, 0)).expect("build").idempotency_key, "abc");
    assert_eq!(builder.build(&object(json!({"uuid": 12}), 0)).expect("build").idempotency_key, "12");
    assert!(matches!(builder.build(&line(r#"{"other": 1}"#, 0)), Err(BuildError::KeyField(_))));
}

#[test]
fn a_broken_template_or_header_name_is_refused_when_the_builder_is_made() {
    let mut s = spec();
    s.body = BodySpec::Template("{{ unclosed".into());
    assert!(matches!(RequestBuilder::new(&s), Err(SpecError::Template { .. })));
    let mut s = spec();
    s.static_headers = vec![("bad header".into(), "x".into())];
    assert!(matches!(RequestBuilder::new(&s), Err(SpecError::HeaderName(_))));
    let mut s = spec();
    s.url = "not a url with spaces".into();
    assert!(matches!(RequestBuilder::new(&s), Err(SpecError::Url { .. })));
}

#[test]
fn a_rendered_header_with_a_newline_fails_the_record() {
    let mut s = spec();
    s.header_templates = vec![("X-Name".into(), "{{ name }}".into())];
    let builder = RequestBuilder::new(&s).expect("spec");
    let err = builder.build(&line(r#"{"name": "a\nb"}"#, 0)).expect_err("newline");
    assert!(matches!(err, BuildError::HeaderValue { .. }));
}

#[test]
fn a_simple_template_goes_to_the_engine_for_values_it_does_not_write_itself() {
    let mut s = spec();
    s.path_template = Some("/users/{{ id }}".into());
    s.header_templates.push(("X-Segment".into(), "{{ segment }}".into()));
    let builder = RequestBuilder::new(&s).expect("spec");
    assert_eq!(builder.simple.len(), 2, "both templates only put names in text");
    // (record, path, segment header)
    let table = [
        (r#"{"id": 7, "segment": "gold"}"#, "/api/users/7", "gold"),
        (r#"{"id": "a-b", "segment": "x y"}"#, "/api/users/a-b", "x y"),
        // A float and a bool are the engine's to write (it writes a bool as Jinja does).
        (r#"{"id": 1.5, "segment": true}"#, "/api/users/1.5", "True"),
    ];
    for (text, path, segment) in table {
        let req = builder.build(&line(text, 0)).expect("build");
        assert_eq!(req.uri.path(), path, "{text}");
        assert_eq!(req.headers["x-segment"], segment, "{text}");
    }
}

#[test]
fn a_json_line_is_read_for_the_fields_the_templates_need_when_that_can_be_told() {
    let set = |names: &[&str]| Some(names.iter().map(|s| (*s).to_owned()).collect::<std::collections::HashSet<_>>());
    // (path template, header template, key field, fields read; None: the whole record)
    let table = [
        ("/u/{{ id }}", "{{ segment }}", None, set(&["id", "segment"])),
        ("/u/{{ record.id }}/{{ offset }}", "{{ namespace }}", Some("uuid"), set(&["id", "uuid"])),
        ("/u/{{ id }}", "{{ record }}", None, None),
        ("/u/{{ id | upper }}", "{{ segment }}", None, None),
    ];
    for (path, header, key, expected) in table {
        let mut s = spec();
        s.path_template = Some(path.into());
        s.header_templates.push(("X-H".into(), header.into()));
        if let Some(field) = key {
            s.idempotency = IdempotencySpec { header: "Idempotency-Key".into(), field: Some(field.into()) };
        }
        let builder = RequestBuilder::new(&s).expect("spec");
        assert_eq!(builder.wanted, expected, "{path} {header}");
    }
    // Read for two fields, a record still fails as a whole parse would, and a float still goes
    // through the engine.
    let mut s = spec();
    s.path_template = Some("/u/{{ id }}".into());
    s.header_templates.push(("X-Segment".into(), "{{ segment }}".into()));
    let builder = RequestBuilder::new(&s).expect("spec");
    let req = builder.build(&line(r#"{"pad":{"a":[1,2,3]},"id":2.5,"segment":"s"}"#, 0)).expect("build");
    assert_eq!((req.uri.path(), &req.headers["x-segment"]), ("/api/u/2.5", &HeaderValue::from_static("s")));
    assert!(matches!(builder.build(&line(r#"{"id":1,"segment":"s","pad":nope}"#, 0)), Err(BuildError::InvalidJson(_))));
    assert!(matches!(builder.build(&line(r#"{"segment":"s"}"#, 0)), Err(BuildError::Render { .. })));
    let req = builder.build(&object(json!({"id": 3, "segment": "t", "big": "x".repeat(100)}), 0)).expect("build");
    assert_eq!(req.uri.path(), "/api/u/3");
}

#[test]
fn a_rendered_path_joined_from_the_parts_is_the_url_parsed_whole() {
    let bases = ["http://h:8080", "http://h:8080/", "https://h/api", "https://h/api//", "http://[::1]:9/v1/x"];
    let paths = ["", "/", "/users/7", "users/7", "?x=1", "/a?b=c&d=e", "a b", "/é", "/a#frag", "//double", "/%41"];
    let mut made = 0;
    for base in bases {
        let base_uri: Uri = base.parse().expect("a base URL");
        let base_url = base.trim_end_matches('/');
        for path in paths {
            let whole = join_url(base_url, path).parse::<Uri>();
            match (uri_with_path(&base_uri, path), &whole) {
                (Some(fast), Ok(parsed)) => {
                    assert_eq!(fast.to_string(), parsed.to_string(), "{base} + {path:?}");
                    made += 1;
                }
                (Some(fast), Err(_)) => panic!("{base} + {path:?}: {fast} made, but the whole URL does not parse"),
                (None, _) => {}
            }
        }
    }
    assert!(made >= 35, "most joins are made from the parts ({made} of 55)");
    let with_query: Uri = "http://h/api?k=v".parse().expect("valid");
    assert!(uri_with_path(&with_query, "/x").is_none(), "a base with a query is parsed whole");
}

/// A request as text: URI, headers in the order they are sent, body, idempotency key.
type Described = (String, Vec<(String, String)>, Bytes, String);

/// A request (or the error) as text.
fn described(built: Result<BuiltRequest, BuildError>) -> Result<Described, String> {
    let req = built.map_err(|e| e.to_string())?;
    let headers = req.headers.iter().map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()));
    Ok((req.uri.to_string(), headers.collect(), req.body, req.idempotency_key))
}

#[test]
fn a_json_line_built_straight_from_the_line_is_the_request_the_engine_builds() {
    // The sample Datum's templates and two more; with `suffix` `{{ '' }}` (which renders
    // nothing) no template is simple, so that builder renders everything through minijinja.
    let datum = |suffix: &str, key: Option<&str>| {
        let mut s = spec();
        s.path_template = Some(format!("/v1/users/{{{{ id }}}}{suffix}"));
        s.static_headers = vec![("X-Where".into(), "overwritten in place".into())];
        s.header_templates = vec![
            ("X-Segment".into(), format!("{{{{ segment }}}}{suffix}")),
            ("X-Where".into(), format!("{{{{ file }}}}@{{{{ offset }}}}/{{{{ record.segment }}}}{suffix}")),
        ];
        s.idempotency.field = key.map(str::to_owned);
        RequestBuilder::new(&s).expect("spec")
    };
    // (key field, line)
    let table: &[(Option<&str>, &str)] = &[
        (None, r#"{"id":7,"email":"u7@example.com","segment":"gold","pad":"xxxx"}"#),
        (None, r#"{"segment":"é ü ∂","id":"ü"}"#),
        (None, r#"{"id":"a\"b\u00e9","segment":"tab\there"}"#),
        (None, r#"{"id":"x\/y","segment":"\u0041"}"#),
        (None, r#"{"i\u0064":-7,"segment":""}"#),
        (None, r#"{"id":18446744073709551615,"segment":"s"}"#),
        (None, r#"{"id":18446744073709551616,"segment":"s"}"#),
        (None, r#"{"id":1.5,"segment":true}"#),
        (None, r#"{"id":1e3,"segment":null}"#),
        (None, r#"{"id":[1,2],"segment":{"a":1}}"#),
        (None, r#"{"id":[1],"id":3,"segment":"s"}"#),
        (None, r#"{"id":3,"id":"three","segment":"s"}"#),
        (None, r#"{"id":"?q=1","segment":"s"}"#),
        (None, r#"{"id":"a b","segment":"s"}"#),
        (None, r#"{"id":1,"segment":"a\nb"}"#),
        (None, r#"{"id":1}"#),
        (None, r#"{"segment":"s"}"#),
        (None, r#"{}"#),
        (None, r#"[{"id":1}]"#),
        (None, r#"null"#),
        (None, r#"{"id":1,"segment":"s","pad":tru}"#),
        (None, r#"{"id":1,"segment":"s"} trailing"#),
        (None, r#"not json"#),
        (Some("uuid"), r#"{"id":1,"segment":"s","uuid":"k-1"}"#),
        (Some("uuid"), r#"{"id":1,"segment":"s","uuid":12}"#),
        (Some("uuid"), r#"{"id":1,"segment":"s","uuid":2.5}"#),
        (Some("uuid"), r#"{"id":1,"segment":"s","uuid":"a\nb"}"#),
        (Some("uuid"), r#"{"id":1,"segment":"s","uuid":null}"#),
        (Some("uuid"), r#"{"id":1,"segment":"s"}"#),
        (Some("id"), r#"{"id":"k-2","segment":"s"}"#),
    ];
    let mut direct_built = 0;
    for (key, text) in table {
        let fast = datum("", *key);
        assert!(fast.direct.is_some(), "the sample Datum's templates are resolved once");
        let engine = datum("{{ '' }}", *key);
        assert!(engine.direct.is_none() && engine.simple.is_empty());
        let mut general = datum("", *key);
        general.direct = None;
        let record = line(text, 42);
        let got = described(fast.build(&record));
        assert_eq!(got, described(general.build(&record)), "{text}: as the general path builds it");
        match (&got, described(engine.build(&record))) {
            (Ok(_), slow) => assert_eq!(got, slow, "{text}: as the engine renders it"),
            // Errors name what failed the same way; a render error's details are the engine's.
            (Err(e), Err(slow)) => assert_eq!(e.split(':').next(), slow.split(':').next(), "{text}"),
            (Err(e), Ok(_)) => panic!("{text}: {e}, but the engine builds it"),
        }
        if let Payload::JsonLine(l) = &record.payload
            && fast.direct.as_ref().is_some_and(|d| fast.build_direct(d, &record, l).is_some())
        {
            direct_built += 1;
        }
    }
    assert_eq!(direct_built, 12, "records the plan builds itself (the rest are the general path's)");
}

#[test]
fn templated_headers_keep_the_place_and_order_the_general_path_gives_them() {
    let mut s = spec();
    s.static_headers = vec![("X-B".into(), "static".into()), ("X-A".into(), "static".into())];
    s.header_templates = vec![("X-C".into(), "{{ c }}".into()), ("X-A".into(), "{{ a }}".into())];
    let builder = RequestBuilder::new(&s).expect("spec");
    let req = builder.build(&line(r#"{"a":"1","c":"2"}"#, 0)).expect("build");
    let order: Vec<_> = req.headers.iter().map(|(n, v)| format!("{n}={}", v.to_str().expect("ascii"))).collect();
    assert_eq!(order, ["content-type=application/json", "x-b=static", "x-a=1", "x-c=2"]);
}
