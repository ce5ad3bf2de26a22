//! A path-tracking reader over one JSON object of an AWS document.
//!
//! Every accessor records the key it read, so that [`ObjectReader::finish`] can report every
//! key the conversion did not use: nothing in an AWS document is dropped silently. Type errors
//! name the field by its path in the document (`containerProperties.vcpus: expected a number`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::{ImportError, Notes};

/// Joins a parent path and a key: `containerProperties` + `vcpus`.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A short description of a JSON value's type, for error messages.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn type_error(path: &str, expected: &str, value: &Value) -> ImportError {
    ImportError::field(
        path,
        format!("expected {expected}, got {}", describe(value)),
    )
}

/// Reads the fields of one JSON object; see the module docs.
pub(crate) struct ObjectReader<'a> {
    path: String,
    map: &'a Map<String, Value>,
    used: RefCell<BTreeSet<String>>,
}

impl<'a> ObjectReader<'a> {
    /// A reader over `value`, which must be an object.
    pub(crate) fn new(value: &'a Value, path: &str) -> Result<Self, ImportError> {
        match value {
            Value::Object(map) => Ok(ObjectReader {
                path: path.to_string(),
                map,
                used: RefCell::new(BTreeSet::new()),
            }),
            other => Err(type_error(
                if path.is_empty() { "document" } else { path },
                "an object",
                other,
            )),
        }
    }

    /// The path of this object in the document.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The path of one of this object's fields.
    pub(crate) fn field_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Whether the object has `key` (not null).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    /// The raw value of `key` (null counts as absent); marks it used.
    pub(crate) fn value(&self, key: &str) -> Option<&'a Value> {
        self.used.borrow_mut().insert(key.to_string());
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, ImportError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(type_error(&self.field_path(key), "a string", other)),
        }
    }

    pub(crate) fn required_string(&self, key: &str) -> Result<String, ImportError> {
        self.string(key)?
            .ok_or_else(|| ImportError::field(self.field_path(key), "required"))
    }

    /// A whole number that fits an int32 (AWS Batch's Integer).
    pub(crate) fn int(&self, key: &str) -> Result<Option<i32>, ImportError> {
        match self.value(key) {
            None => Ok(None),
            Some(value @ Value::Number(n)) => {
                match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
                    Some(i) => Ok(Some(i)),
                    None => Err(type_error(&self.field_path(key), "a whole number", value)),
                }
            }
            Some(other) => Err(type_error(&self.field_path(key), "a number", other)),
        }
    }

    pub(crate) fn required_int(&self, key: &str) -> Result<i32, ImportError> {
        self.int(key)?
            .ok_or_else(|| ImportError::field(self.field_path(key), "required"))
    }

    /// A whole number that fits an int64.
    pub(crate) fn long(&self, key: &str) -> Result<Option<i64>, ImportError> {
        match self.value(key) {
            None => Ok(None),
            Some(value @ Value::Number(n)) => match n.as_i64() {
                Some(i) => Ok(Some(i)),
                None => Err(type_error(&self.field_path(key), "a whole number", value)),
            },
            Some(other) => Err(type_error(&self.field_path(key), "a number", other)),
        }
    }

    pub(crate) fn float(&self, key: &str) -> Result<Option<f64>, ImportError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(other) => Err(type_error(&self.field_path(key), "a number", other)),
        }
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, ImportError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(type_error(&self.field_path(key), "true or false", other)),
        }
    }

    /// The items of a list field with their paths (`volumes[2]`); empty when absent.
    pub(crate) fn list(&self, key: &str) -> Result<Vec<(String, &'a Value)>, ImportError> {
        match self.value(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, item)| (format!("{}[{i}]", self.field_path(key)), item))
                .collect()),
            Some(other) => Err(type_error(&self.field_path(key), "a list", other)),
        }
    }

    pub(crate) fn string_list(&self, key: &str) -> Result<Vec<String>, ImportError> {
        self.list(key)?
            .into_iter()
            .map(|(path, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(type_error(&path, "a string", other)),
            })
            .collect()
    }

    /// A string-to-string map (AWS `tags`, `parameters`).
    pub(crate) fn string_map(&self, key: &str) -> Result<BTreeMap<String, String>, ImportError> {
        match self.value(key) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    other => Err(type_error(
                        &format!("{}.{k}", self.field_path(key)),
                        "a string",
                        other,
                    )),
                })
                .collect(),
            Some(other) => Err(type_error(
                &self.field_path(key),
                "an object of strings",
                other,
            )),
        }
    }

    /// A reader over an object field.
    pub(crate) fn object(&self, key: &str) -> Result<Option<ObjectReader<'a>>, ImportError> {
        self.value(key)
            .map(|value| ObjectReader::new(value, &self.field_path(key)))
            .transpose()
    }

    /// Marks `key` used and, when present, notes that it is not imported and why.
    pub(crate) fn not_imported(&self, key: &str, why: &str, notes: &mut Notes) {
        if let Some(value) = self.value(key) {
            notes.add(
                self.field_path(key),
                format!("not imported ({}): {why}", describe_short(value)),
            );
        }
    }

    /// Marks `key` used and, when present, refuses it: Barge would not honour it at run time.
    pub(crate) fn refuse(&self, key: &str, why: &str, notes: &mut Notes) {
        if let Some(value) = self.value(key) {
            notes.refuse(
                self.field_path(key),
                format!("{} ({}): {why}", key, describe_short(value)),
            );
        }
    }

    /// Refuses every key that no accessor read: a field the importer does not know may change
    /// how the job runs, so it is neither dropped nor guessed at.
    pub(crate) fn finish(self, notes: &mut Notes) {
        let used = self.used.into_inner();
        for (key, value) in self.map {
            if !used.contains(key) && !value.is_null() {
                notes.refuse(
                    join(&self.path, key),
                    format!(
                        "{key} ({}) is not a field Barge knows, so it cannot honour it; remove it to import the rest",
                        describe_short(value)
                    ),
                );
            }
        }
    }
}

/// A value as shown in notes: scalars in full, collections by size.
pub(crate) fn describe_short(value: &Value) -> String {
    match value {
        Value::Array(items) => format!("a list of {}", items.len()),
        Value::Object(map) => format!("an object with {} field(s)", map.len()),
        other => describe(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_errors_name_the_field() {
        let doc = json!({"containerProperties": {"vcpus": "two"}});
        let root = ObjectReader::new(&doc, "").expect("object");
        let container = root
            .object("containerProperties")
            .expect("ok")
            .expect("present");
        let err = container.int("vcpus").expect_err("not a number");
        assert_eq!(
            err.to_string(),
            "containerProperties.vcpus: expected a number, got \"two\""
        );
        let err = ObjectReader::new(&json!({"a": 1.5}), "x")
            .expect("object")
            .int("a")
            .expect_err("fraction");
        assert_eq!(err.to_string(), "x.a: expected a whole number, got 1.5");
    }

    #[test]
    fn finish_refuses_unread_fields() {
        let doc =
            json!({"image": "busybox", "logConfiguration": {"logDriver": "awslogs"}, "gone": null});
        let reader = ObjectReader::new(&doc, "containerProperties").expect("object");
        assert_eq!(
            reader.string("image").expect("string").as_deref(),
            Some("busybox")
        );
        let mut notes = Notes::default();
        reader.finish(&mut notes);
        assert!(notes.warnings.is_empty(), "no warnings");
        let refusals: Vec<String> = notes.refusals.iter().map(ToString::to_string).collect();
        assert_eq!(
            refusals,
            vec!["containerProperties.logConfiguration: refused: logConfiguration (an object with 1 field(s)) is not a field Barge knows, so it cannot honour it; remove it to import the rest"]
        );
    }
}
