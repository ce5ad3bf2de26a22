//! `field.Error` and the 422 `Status` built from a list of them, worded exactly as
//! `k8s.io/apimachinery/pkg/util/validation/field` and `apierrors.NewInvalid` word them.

use crate::apimachinery::gofmt;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::fmt;

/// The field path Go prints for a nil `*field.Path` (errors about the object as a whole).
pub const ROOT_FIELD: &str = "<nil>";

/// `metav1.CauseType` of a field error (`field.ErrorType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    Required,
    Invalid,
    NotSupported,
    TooMany,
    TooLong,
    TypeInvalid,
    Forbidden,
    Duplicate,
    NotFound,
    Internal,
}

impl FieldErrorKind {
    /// The machine-readable cause reason, e.g. `FieldValueInvalid`.
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TypeInvalid => "FieldValueTypeInvalid",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::NotFound => "FieldValueNotFound",
            FieldErrorKind::Internal => "InternalError",
        }
    }

    /// The human-readable prefix, e.g. `Invalid value`.
    pub fn label(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Invalid | FieldErrorKind::TypeInvalid => "Invalid value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::TooMany => "Too many",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::NotFound => "Not found",
            FieldErrorKind::Internal => "Internal error",
        }
    }
}

/// One validation failure: which field, what kind, the detail message and the offending value.
///
/// `field` is the rendered `field.Path` (`spec.containers[0].name`, `spec.labels[key]`), or
/// [`ROOT_FIELD`] for errors about the whole object. `bad_value` is `None` where Go omits the
/// value from the message (`Required`, `Forbidden`, `TooLong`, or an omitted `TooMany` count).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub kind: FieldErrorKind,
    pub message: String,
    pub bad_value: Option<Value>,
}

impl FieldError {
    pub fn new(
        field: impl Into<String>,
        kind: FieldErrorKind,
        bad_value: Option<Value>,
        message: impl Into<String>,
    ) -> Self {
        FieldError {
            field: non_empty_field(field.into()),
            kind,
            message: message.into(),
            bad_value,
        }
    }

    /// `field.Required(path, detail)`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Required, None, detail)
    }

    /// `field.Invalid(path, value, detail)`.
    pub fn invalid(field: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Invalid, Some(value), detail)
    }

    /// `field.Forbidden(path, detail)`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Forbidden, None, detail)
    }

    /// `field.Duplicate(path, value)`.
    pub fn duplicate(field: impl Into<String>, value: Value) -> Self {
        Self::new(field, FieldErrorKind::Duplicate, Some(value), "")
    }

    /// `field.NotSupported(path, value, validValues)`.
    pub fn not_supported(field: impl Into<String>, value: Value, valid: &[String]) -> Self {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid.iter().map(|v| gofmt::quote(v)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(field, FieldErrorKind::NotSupported, Some(value), detail)
    }

    /// `field.TooMany(path, actual, max)`; a negative `actual` is omitted from the message.
    pub fn too_many(field: impl Into<String>, actual: i64, max: i64) -> Self {
        let detail = if max >= 0 {
            format!("must have at most {max} items")
        } else {
            "has too many items".to_string()
        };
        let value = (actual >= 0).then(|| json!(actual));
        Self::new(field, FieldErrorKind::TooMany, value, detail)
    }

    /// `field.TooLongMaxLength(path, value, max)`.
    pub fn too_long(field: impl Into<String>, value: Value, max: i64) -> Self {
        let detail = if max >= 0 {
            format!("may not be longer than {max}")
        } else {
            "value is too long".to_string()
        };
        Self::new(field, FieldErrorKind::TooLong, Some(value), detail)
    }

    /// `field.TypeInvalid(path, value, detail)`.
    pub fn type_invalid(field: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::TypeInvalid, Some(value), detail)
    }

    /// The cause reason (`FieldValueInvalid`, ...).
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }

    /// `(*field.Error).ErrorBody()`: the message without the field name.
    pub fn body(&self) -> String {
        let mut s = match (self.kind, &self.bad_value) {
            (
                FieldErrorKind::Required
                | FieldErrorKind::Forbidden
                | FieldErrorKind::TooLong
                | FieldErrorKind::Internal,
                _,
            ) => self.kind.label().to_string(),
            (_, None) => self.kind.label().to_string(),
            (_, Some(value)) => format!("{}: {}", self.kind.label(), render_bad_value(value)),
        };
        if !self.message.is_empty() {
            s.push_str(": ");
            s.push_str(&self.message);
        }
        s
    }
}

fn non_empty_field(field: String) -> String {
    if field.is_empty() {
        ROOT_FIELD.to_string()
    } else {
        field
    }
}

/// How `ErrorBody` prints a bad value: simple types with `%v`, strings with `%q`, anything else
/// with `%#v`, and `nil` as `null`.
fn render_bad_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => gofmt::number(n),
        Value::String(s) => gofmt::quote(s),
        other => gofmt::sharp_v(other),
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

impl std::error::Error for FieldError {}

/// `utilerrors.Aggregate` of `errs.ToAggregate()`: one message as is, several (deduplicated)
/// in brackets joined by `", "`.
pub fn aggregate_message(errors: &[FieldError]) -> String {
    let mut seen = BTreeSet::new();
    let mut msgs = Vec::new();
    for e in errors {
        let m = e.to_string();
        if seen.insert(m.clone()) {
            msgs.push(m);
        }
    }
    match msgs.len() {
        0 => String::new(),
        1 => msgs.remove(0),
        _ => format!("[{}]", msgs.join(", ")),
    }
}

/// `schema.GroupKind.String()`: `Kind.group`, or just `Kind` for the core group.
pub fn qualified_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

/// The 422 body a real API server returns for invalid objects (`apierrors.NewInvalid`).
pub fn invalid_status(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Value {
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| {
            let mut c = Map::new();
            c.insert("reason".into(), json!(e.reason()));
            c.insert("message".into(), json!(e.body()));
            c.insert("field".into(), json!(e.field));
            Value::Object(c)
        })
        .collect();
    let qk = qualified_kind(group, kind);
    let message = if errors.is_empty() {
        format!("{qk} {} is invalid", gofmt::quote(name))
    } else {
        format!(
            "{qk} {} is invalid: {}",
            gofmt::quote(name),
            aggregate_message(errors)
        )
    };
    let mut details = Map::new();
    if !name.is_empty() {
        details.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        details.insert("group".into(), json!(group));
    }
    if !kind.is_empty() {
        details.insert("kind".into(), json!(kind));
    }
    if !causes.is_empty() {
        details.insert("causes".into(), Value::Array(causes));
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": Value::Object(details),
        "code": 422,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_go_error_body() {
        assert_eq!(
            FieldError::required("spec.a", "").to_string(),
            "spec.a: Required value"
        );
        assert_eq!(
            FieldError::invalid("spec.a", json!(3), "must be even").to_string(),
            "spec.a: Invalid value: 3: must be even"
        );
        assert_eq!(
            FieldError::invalid("spec.a", json!("x"), "bad").to_string(),
            "spec.a: Invalid value: \"x\": bad"
        );
        assert_eq!(
            FieldError::not_supported("spec.t", json!("X"), &["A".into(), "B".into()]).to_string(),
            "spec.t: Unsupported value: \"X\": supported values: \"A\", \"B\""
        );
        assert_eq!(
            FieldError::too_many("spec.l", 5, 3).to_string(),
            "spec.l: Too many: 5: must have at most 3 items"
        );
        assert_eq!(
            FieldError::too_many("spec.l", -1, 3).to_string(),
            "spec.l: Too many: must have at most 3 items"
        );
        assert_eq!(
            FieldError::too_long("spec.s", json!("abcdef"), 3).to_string(),
            "spec.s: Too long: may not be longer than 3"
        );
        assert_eq!(
            FieldError::forbidden("spec.f", "not allowed").to_string(),
            "spec.f: Forbidden: not allowed"
        );
        assert_eq!(
            FieldError::duplicate("spec.l[1]", json!({"name": "a"})).to_string(),
            "spec.l[1]: Duplicate value: map[string]interface {}{\"name\":\"a\"}"
        );
        assert_eq!(
            FieldError::invalid("", Value::Null, "whole").to_string(),
            "<nil>: Invalid value: null: whole"
        );
    }

    #[test]
    fn invalid_status_is_a_422_status_with_causes() {
        let errs = vec![
            FieldError::invalid("spec.a", json!(3), "must be even"),
            FieldError::required("spec.b", ""),
        ];
        let st = invalid_status("batch.barge.dev", "Job", "x", &errs);
        assert_eq!(st["code"], 422);
        assert_eq!(st["reason"], "Invalid");
        assert_eq!(st["status"], "Failure");
        assert_eq!(
            st["message"],
            "Job.batch.barge.dev \"x\" is invalid: [spec.a: Invalid value: 3: must be even, spec.b: Required value]"
        );
        assert_eq!(st["details"]["kind"], "Job");
        assert_eq!(st["details"]["group"], "batch.barge.dev");
        assert_eq!(st["details"]["name"], "x");
        assert_eq!(st["details"]["causes"][0]["reason"], "FieldValueInvalid");
        assert_eq!(
            st["details"]["causes"][0]["message"],
            "Invalid value: 3: must be even"
        );
        assert_eq!(st["details"]["causes"][0]["field"], "spec.a");
        assert_eq!(st["details"]["causes"][1]["reason"], "FieldValueRequired");
    }

    #[test]
    fn single_error_message_has_no_brackets_and_core_group_is_omitted() {
        let st = invalid_status(
            "",
            "Pod",
            "p",
            &[FieldError::required("spec.containers", "")],
        );
        assert_eq!(
            st["message"],
            "Pod \"p\" is invalid: spec.containers: Required value"
        );
        assert!(st["details"].get("group").is_none());
    }

    #[test]
    fn duplicate_messages_are_collapsed_in_the_aggregate() {
        let e = FieldError::required("spec.a", "");
        assert_eq!(aggregate_message(&[e.clone(), e]), "spec.a: Required value");
    }
}
