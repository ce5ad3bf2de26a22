//! `x-kubernetes-validations`: each node's rules were compiled once by kube-cel; here they are
//! evaluated node by node with kube-cel's validator, with `oldSelf` correlated the way the API
//! server correlates it (object properties and map values by key, `x-kubernetes-list-type: map`
//! items by their key fields, other list items not at all), and failures turned into field
//! errors as `apiextensions-apiserver/pkg/apiserver/schema/cel` reports them.

use super::errors::{FieldError, FieldErrorKind};
use super::schema::{Additional, FieldPath, Node};
use super::structural::{json_eq, map_list_key};
use super::ListType;
use kube::core::cel::{ErrorKind, ValidationError};
use serde_json::{json, Value};

pub(crate) fn validate(
    node: &Node,
    value: &Value,
    old: Option<&Value>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    if !node.has_rules {
        return;
    }
    if let Some(compiled) = &node.cel {
        if let Err(failures) = kube::core::cel::validate_compiled(compiled, value, old) {
            for f in failures.iter() {
                errs.push(to_field_error(node, path, value, f));
            }
        }
    }
    match value {
        Value::Object(map) => {
            for (k, prop) in &node.properties {
                if !prop.has_rules {
                    continue;
                }
                if let Some(v) = map.get(k) {
                    validate(prop, v, old.and_then(|o| o.get(k)), &path.child(k), errs);
                }
            }
            if let Additional::Schema(add) = &node.additional {
                if add.has_rules && !node.preserve_unknown {
                    for (k, v) in map
                        .iter()
                        .filter(|(k, _)| !node.properties.contains_key(*k))
                    {
                        validate(add, v, old.and_then(|o| o.get(k)), &path.key(k), errs);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.items.as_deref().filter(|i| i.has_rules) {
                for (i, item) in items.iter().enumerate() {
                    let old_item = correlate_item(&node.list_type, item, old);
                    validate(item_schema, item, old_item, &path.index(i), errs);
                }
            }
        }
        _ => {}
    }
}

/// The old counterpart of a list item: only `map` lists correlate (by their key fields).
fn correlate_item<'a>(
    list_type: &ListType,
    item: &Value,
    old: Option<&'a Value>,
) -> Option<&'a Value> {
    let ListType::Map { keys } = list_type else {
        return None;
    };
    let key = map_list_key(item, keys);
    old?.as_array()?
        .iter()
        .find(|o| json_eq(&map_list_key(o, keys), &key))
}

/// The field error of a failed rule, as `validateExpressions` and `fieldErrorForReason` build
/// it: a rule that evaluated to false shows the value it was evaluated on — omitted for objects
/// and arrays (`spec: Invalid value: <message>`), printed for scalars (`spec.size: Invalid value:
/// 11: <message>`, `spec.name: Invalid value: "x": <message>`) — whether the detail comes from
/// `message`, `messageExpression` or the default `failed rule: <rule>`; `reason` picks the error
/// type (`Forbidden` and `Required` print no value); `fieldPath` moves the error to that field but
/// the value stays the rule's own. A rule that could not be evaluated (a runtime error) shows the
/// schema type instead (`Invalid value: "object": ... evaluating rule: ...`).
fn to_field_error(node: &Node, base: &FieldPath, value: &Value, f: &ValidationError) -> FieldError {
    let path = resolve_field_path(node, base, &f.field_path);
    // kube-apiserver trims the detail, and an empty one falls back to the default.
    let detail = match f.message.trim() {
        "" => format!("failed rule: {}", f.rule.trim()),
        d => d.to_string(),
    };
    let shown = match node.type_name() {
        "object" | "array" => None,
        _ => Some(value.clone()),
    };
    match f.kind {
        ErrorKind::ValidationFailure => match f.reason.as_deref() {
            Some("FieldValueForbidden") => FieldError::forbidden(path.as_str(), detail),
            Some("FieldValueRequired") => FieldError::required(path.as_str(), detail),
            Some("FieldValueDuplicate") => {
                FieldError::new(path.as_str(), FieldErrorKind::Duplicate, shown, "")
            }
            _ => FieldError::new(path.as_str(), FieldErrorKind::Invalid, shown, detail),
        },
        _ => FieldError::invalid(path.as_str(), json!(node.type_name()), f.message.clone()),
    }
}

/// Turns a rule's relative `fieldPath` (`.spec.x`, `.labels['a.b']`) into a field path under
/// `base`, rendering map keys as `[key]` the way the API server does.
fn resolve_field_path(node: &Node, base: &FieldPath, rel: &str) -> FieldPath {
    let mut path = base.clone();
    let mut current = Some(node);
    for seg in parse_segments(rel) {
        match seg {
            Segment::Name(name) => {
                let is_key = current.is_some_and(|n| n.is_map_key(&name));
                path = if is_key {
                    path.key(&name)
                } else {
                    path.child(&name)
                };
                current = current.and_then(|n| n.child(&name));
            }
            Segment::Index(i) => {
                path = path.index(i);
                current = current.and_then(|n| n.items.as_deref());
            }
        }
    }
    path
}

enum Segment {
    Name(String),
    Index(usize),
}

fn parse_segments(rel: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let chars: Vec<char> = rel.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => i += 1,
            '[' => {
                let end = chars[i..]
                    .iter()
                    .position(|c| *c == ']')
                    .map(|p| p + i)
                    .unwrap_or(chars.len());
                let inner: String = chars[i + 1..end].iter().collect();
                let trimmed = inner.trim_matches(|c| c == '\'' || c == '"');
                match (
                    inner.starts_with('\'') || inner.starts_with('"'),
                    trimmed.parse::<usize>(),
                ) {
                    (false, Ok(n)) => out.push(Segment::Index(n)),
                    _ => out.push(Segment::Name(trimmed.to_string())),
                }
                i = end + 1;
            }
            _ => {
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                out.push(Segment::Name(chars[start..i].iter().collect()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_parse_names_keys_and_indices() {
        let segs = parse_segments(".spec.labels['a.b'][2]");
        let rendered: Vec<String> = segs
            .into_iter()
            .map(|s| match s {
                Segment::Name(n) => format!("N:{n}"),
                Segment::Index(i) => format!("I:{i}"),
            })
            .collect();
        assert_eq!(rendered, vec!["N:spec", "N:labels", "N:a.b", "I:2"]);
    }
}
