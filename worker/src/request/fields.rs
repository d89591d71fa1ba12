//! Reading only the fields a request needs from a JSON line: the others are checked as JSON
//! and skipped, never copied (a record's large fields cost a scan, not an allocation).
//! [`parse_wanted`] gives them as a JSON object; [`pick`] gives their text as it stands in the
//! line, by position, for templates that only put names in text.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

/// The fields of `line` named in `wanted`, as an object; a line that is JSON but not an object
/// gives `Value::Null` (no field can be read from it). A line that is not JSON at all, or has
/// anything after its value, is an error — as a whole parse would say.
pub fn parse_wanted(line: &[u8], wanted: &HashSet<String>) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let value = Wanted(wanted).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

struct Wanted<'a>(&'a HashSet<String>);

impl<'de> DeserializeSeed<'de> for Wanted<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Wanted<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if self.0.contains(key.as_ref()) {
                fields.insert(key.into_owned(), map.next_value::<Value>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Value::Object(fields))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_str<E>(self, _: &str) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// Fields [`pick`] reads at most.
pub const MAX_PICKED: usize = 8;

/// A picked field's value: a string (borrowed from the line unless it has escapes) or an
/// integer; `Other` for anything else (a float, a bool, null, an object, an array).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    UInt(u64),
    Other,
}

/// The picked values, by position of their name (None: the line has no such field).
pub type Picked<'a> = [Option<Scalar<'a>>; MAX_PICKED];

/// The values of the fields `names` (at most [`MAX_PICKED`]) in `line`, by position in `names`;
/// of a repeated key the last value counts, as in a whole parse. None when the line is not a
/// JSON object, is not JSON at all or has anything after its value (the caller then parses it
/// again as before, for the same error or the same result). Nothing is allocated unless a
/// picked string has escapes.
pub fn pick<'a>(line: &'a [u8], names: &[String]) -> Option<Picked<'a>> {
    if names.len() > MAX_PICKED {
        return None;
    }
    let mut de = serde_json::Deserializer::from_slice(line);
    let picked = Pick(names).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(picked)
}

struct Pick<'n>(&'n [String]);

impl<'de> DeserializeSeed<'de> for Pick<'_> {
    type Value = Picked<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Picked<'de>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Pick<'_> {
    type Value = Picked<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Picked<'de>, A::Error> {
        let mut picked = Picked::default();
        while let Some(slot) = map.next_key_seed(Slot(self.0))? {
            match slot {
                Some(i) => picked[i] = Some(map.next_value_seed(ScalarSeed)?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(picked)
    }
}

/// A key, as the position of the name it equals (no copy of the key).
struct Slot<'n>(&'n [String]);

impl<'de> DeserializeSeed<'de> for Slot<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for Slot<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|name| name == key))
    }
}

struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Scalar<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::UInt(v))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }

    fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn wanted(names: &[&str]) -> HashSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn only_the_wanted_fields_are_kept_and_the_rest_is_still_checked() {
        let w = wanted(&["id", "segment"]);
        // (line, result: Some(value) or None for an error)
        let table: &[(&str, Option<Value>)] = &[
            (r#"{"id":7,"pad":"xxxx","segment":"gold"}"#, Some(json!({"id": 7, "segment": "gold"}))),
            (r#"{"pad":{"deep":[1,2,{"a":null}]},"id":"a\"b"}"#, Some(json!({"id": "a\"b"}))),
            (r#"{"i\u0064":1}"#, Some(json!({"id": 1}))),
            (r#"{"id":1,"id":2}"#, Some(json!({"id": 2}))),
            (r#"{}"#, Some(json!({}))),
            (r#"[1,2]"#, Some(Value::Null)),
            (r#"5"#, Some(Value::Null)),
            (r#"{"id":1,"pad":tru}"#, None),
            (r#"{"id":1} trailing"#, None),
            (r#"not json"#, None),
            (r#"{"id":1"#, None),
        ];
        for (line, expected) in table {
            let got = parse_wanted(line.as_bytes(), &w).ok();
            assert_eq!(&got, expected, "{line}");
        }
    }

    #[test]
    fn picked_fields_are_their_text_in_the_line_by_position() {
        let names = ["id".to_owned(), "segment".to_owned()];
        let s = |t: &str| Some(Scalar::Str(Cow::Owned(t.to_owned())));
        // (line, picked id and segment; None: not a JSON object, or not JSON)
        let table: &[(&str, Option<[Option<Scalar<'_>>; 2]>)] = &[
            (r#"{"id":7,"pad":"xx","segment":"gold"}"#, Some([Some(Scalar::UInt(7)), s("gold")])),
            (r#"{"segment":"é ü","id":-7}"#, Some([Some(Scalar::Int(-7)), s("é ü")])),
            (r#"{"id":"a\"b\u00e9\n","segment":null}"#, Some([s("a\"b\u{e9}\n"), Some(Scalar::Other)])),
            (r#"{"i\u0064":18446744073709551615}"#, Some([Some(Scalar::UInt(u64::MAX)), None])),
            (r#"{"id":18446744073709551616,"segment":1.0}"#, Some([Some(Scalar::Other), Some(Scalar::Other)])),
            (r#"{"id":true,"segment":{"a":[1,{"b":"c"}]}}"#, Some([Some(Scalar::Other), Some(Scalar::Other)])),
            (r#"{"id":[1,"x"],"id":2}"#, Some([Some(Scalar::UInt(2)), None])),
            (r#"{"id":2,"id":[1,"x"]}"#, Some([Some(Scalar::Other), None])),
            (r#"{"pad":{"id":1}}"#, Some([None, None])),
            (r#"{}"#, Some([None, None])),
            (r#"[{"id":1}]"#, None),
            (r#""id""#, None),
            (r#"{"id":1,"pad":tru}"#, None),
            (r#"{"id":1} trailing"#, None),
            (r#"{"id":1"#, None),
            (r#"not json"#, None),
        ];
        for (line, expected) in table {
            let got = pick(line.as_bytes(), &names).map(|p| [p[0].clone(), p[1].clone()]);
            assert_eq!(&got, expected, "{line}");
            if let Some(picked) = pick(line.as_bytes(), &names) {
                assert!(picked[2..].iter().all(Option::is_none), "{line}");
            }
        }
        // A string without escapes is the line's own text; one with escapes is a copy.
        let picked = pick(br#"{"id":"plain","segment":"a\/b"}"#, &names).expect("an object");
        assert!(matches!(picked[0], Some(Scalar::Str(Cow::Borrowed("plain")))));
        assert!(matches!(picked[1], Some(Scalar::Str(Cow::Owned(ref t))) if t == "a/b"));
        let nine: Vec<String> = (0..9).map(|i| format!("f{i}")).collect();
        assert_eq!(pick(b"{}", &nine), None, "more than MAX_PICKED names are not picked");
    }

    fn scalar(value: Option<&Value>) -> Option<Scalar<'_>> {
        Some(match value? {
            Value::String(s) => Scalar::Str(Cow::Borrowed(s)),
            Value::Number(n) if n.is_u64() => Scalar::UInt(n.as_u64().expect("u64")),
            Value::Number(n) if n.is_i64() => Scalar::Int(n.as_i64().expect("i64")),
            _ => Scalar::Other,
        })
    }

    fn json_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            "[ -~é\n\t]{0,8}".prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
            Just(serde_json::json!({"a": [1, "b"]})),
        ]
    }

    proptest! {
        #[test]
        fn picked_fields_are_those_of_a_whole_parse(
            record in proptest::collection::btree_map("[a-d]{1,2}", json_value(), 0..6),
            names in proptest::collection::vec("[a-d]{1,2}", 0..MAX_PICKED),
        ) {
            let line = serde_json::to_vec(&record).expect("serializes");
            let whole: Value = serde_json::from_slice(&line).expect("parses");
            let picked = pick(&line, &names).expect("an object");
            for (i, name) in names.iter().enumerate() {
                // A name listed twice is found at its first position.
                let first = names.iter().position(|n| n == name).expect("listed");
                let expected = if first == i { scalar(whole.get(name)) } else { None };
                prop_assert_eq!(&picked[i], &expected, "{}", name);
            }
        }

        #[test]
        fn the_wanted_fields_are_those_of_a_whole_parse(
            record in proptest::collection::btree_map("[a-d]{1,2}", any::<i32>().prop_map(Value::from), 0..6),
            names in proptest::collection::hash_set("[a-d]{1,2}", 0..4),
        ) {
            let line = serde_json::to_vec(&record).expect("serializes");
            let whole: Value = serde_json::from_slice(&line).expect("parses");
            let picked = parse_wanted(&line, &names).expect("parses");
            let expected: Map<String, Value> = whole
                .as_object()
                .expect("an object")
                .iter()
                .filter(|(k, _)| names.contains(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            prop_assert_eq!(picked, Value::Object(expected));
        }
    }
}
