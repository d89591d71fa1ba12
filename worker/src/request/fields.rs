//! Reading only the fields a request needs from a JSON line: the others are checked as JSON
//! and skipped, never copied (a record's large fields cost a scan, not an allocation).

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

    proptest! {
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
