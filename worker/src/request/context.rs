//! The variables a template sees for one record: the record's fields at the top level, and
//! `record` (the whole record), `file`, `offset`, `package`, `namespace`. The built-in names
//! win over record fields of the same name (those stay reachable as `record.<name>`).
//!
//! Values are converted to template values lazily, only for the names a template uses.

use std::sync::Arc;

use minijinja::value::{Enumerator, Object, Serde, Value};

pub(super) const BUILTINS: [&str; 5] = ["record", "file", "offset", "package", "namespace"];

/// One record as a template context.
#[derive(Debug)]
pub struct RecordContext {
    pub record: Arc<serde_json::Value>,
    pub file: Arc<str>,
    pub offset: u64,
    pub package: Arc<str>,
    pub namespace: Arc<str>,
}

impl RecordContext {
    /// The context as a template value.
    pub fn into_value(self) -> Value {
        Value::from_object(self)
    }
}

impl Object for RecordContext {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        match key {
            "record" => Some(Value::from(Serde(&*self.record))),
            "file" => Some(Value::from(&*self.file)),
            "offset" => Some(Value::from(self.offset)),
            "package" => Some(Value::from(&*self.package)),
            "namespace" => Some(Value::from(&*self.namespace)),
            field => self.record.as_object()?.get(field).map(|v| Value::from(Serde(v))),
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<Value> = BUILTINS.iter().map(|k| Value::from(*k)).collect();
        if let Some(fields) = self.record.as_object() {
            keys.extend(fields.keys().filter(|k| !BUILTINS.contains(&k.as_str())).map(|k| Value::from(k.as_str())));
        }
        Enumerator::Values(keys)
    }
}
