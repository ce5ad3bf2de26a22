//! OpenAPI keyword validation as kube-openapi's `validate.SchemaValidator` does it for CRDs, with
//! its messages (`spec.replicas in body should be greater than or equal to 1`), converted into
//! field errors as apiextensions-apiserver's `kubeOpenAPIResultToFieldErrors` converts them.
//! Also the two checks that run beside it: list-type uniqueness (`ValidateListSetsAndMaps`) and
//! the type metadata of embedded resources.

use super::errors::{FieldError, ROOT_FIELD};
use super::formats;
use super::schema::{Additional, Node, Trail};
use super::ListType;
use crate::apimachinery::gofmt;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Where kube-openapi says values come from.
const IN: &str = "body";

/// kube-openapi paths are dotted names with the root as `""` (`spec.items[0].name`); the field
/// error path is the name with a leading `.` trimmed, or the root marker.
fn field_of(name: &str) -> String {
    let trimmed = name.strip_prefix('.').unwrap_or(name);
    if trimmed.is_empty() {
        ROOT_FIELD.to_string()
    } else {
        trimmed.to_string()
    }
}

/// A kube-openapi name being built (`spec.items[0].name`), rendered only when an error needs it.
#[derive(Clone, Copy)]
pub(crate) enum Name<'a> {
    /// The root (`""`).
    Root,
    /// A declared property (`spec.x`, or `x` under the root).
    Prop(&'a Name<'a>, &'a str),
    /// An `additionalProperties` entry (`spec.key`; `.key` under the root).
    Additional(&'a Name<'a>, &'a str),
    /// A list item (`spec.items[0]`).
    Item(&'a Name<'a>, usize),
}

impl std::fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Name::Root => Ok(()),
            Name::Prop(Name::Root, key) => f.write_str(key),
            Name::Prop(parent, key) | Name::Additional(parent, key) => {
                write!(f, "{parent}.{key}")
            }
            Name::Item(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// The JSON type kube-openapi infers for decoded data.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::String(_) => "string",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(v: &Value) -> bool {
    matches!(v, Value::Number(n) if n.is_i64() || n.is_u64())
}

pub(crate) use crate::apimachinery::structural_eq as json_eq;

/// A `float64` boundary printed as kube-openapi prints it for this data: integer data is
/// compared (and printed) against `int64(boundary)`.
fn boundary(data: &Value, b: f64) -> String {
    if is_integer(data) {
        (b as i64).to_string()
    } else {
        gofmt::float(b)
    }
}

fn as_f64(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Validates `value` against `node`, appending field errors. `path` is the kube-openapi name.
///
/// `old` is the correlated old value on an update (properties and map values by key, items of
/// `map` lists by their keys and of `set` lists by value; atomic list items do not correlate):
/// as kube-apiserver's ratcheting validator (`CRDValidationRatcheting`), an unchanged value is not
/// re-validated, so errors already stored are not reported again while new ones are.
pub(crate) fn validate(
    node: &Node,
    value: &Value,
    old: Option<&Value>,
    path: &Name<'_>,
    errs: &mut Vec<FieldError>,
) {
    if old.is_some_and(|o| json_eq(o, value)) {
        return;
    }
    // Rendered only when an error is reported.
    let field = || field_of(&path.to_string());
    if value.is_null() {
        if (node.ty.is_some() || node.int_or_string) && !node.nullable {
            let type_name = type_list(node);
            errs.push(FieldError::type_invalid(
                field(),
                json!("null"),
                format!("{path} in {IN} must be of type {type_name}: \"null\""),
            ));
        }
        if let Some(values) = &node.enum_values {
            if !values.iter().any(Value::is_null) {
                errs.push(FieldError::not_supported(
                    field(),
                    Value::Null,
                    &enum_strings(values),
                ));
            }
        }
        return;
    }

    // Type.
    if node.ty.is_some() || node.int_or_string {
        let sch = json_type(value);
        let allowed: &[&str] = if node.int_or_string {
            &["integer", "string"]
        } else {
            match node.ty.as_deref() {
                Some("object") => &["object"],
                Some("array") => &["array"],
                Some("string") => &["string"],
                Some("integer") => &["integer"],
                Some("number") => &["number"],
                Some("boolean") => &["boolean"],
                _ => &[],
            }
        };
        let float_int =
            sch == "number" && as_f64(value).fract() == 0.0 && allowed.contains(&"integer");
        let int_float = sch == "integer" && allowed.contains(&"number");
        if !(allowed.contains(&sch) || float_int || int_float) {
            errs.push(FieldError::type_invalid(
                field(),
                json!(sch),
                format!(
                    "{path} in {IN} must be of type {}: {}",
                    type_list(node),
                    gofmt::quote(sch)
                ),
            ));
            return;
        }
    }

    validate_junctors(node, value, old, path, errs);

    match value {
        Value::String(s) => validate_string(node, s, value, path, &field, errs),
        Value::Number(_) => validate_number(node, value, path, &field, errs),
        Value::Array(items) => validate_array(node, items, old, path, &field, errs),
        _ => {}
    }

    if let Some(values) = &node.enum_values {
        if !values.iter().any(|e| json_eq(e, value)) {
            errs.push(FieldError::not_supported(
                field(),
                value.clone(),
                &enum_strings(values),
            ));
        }
    }

    if let Value::Object(map) = value {
        let n = map.len() as i64;
        if let Some(min) = node.min_properties {
            if n < min {
                errs.push(FieldError::invalid(
                    field(),
                    json!(n),
                    format!("{path} in {IN} should have at least {min} properties"),
                ));
                return;
            }
        }
        if let Some(max) = node.max_properties {
            if n > max {
                errs.push(FieldError::too_many(field(), n, max));
                return;
            }
        }
        match &node.additional {
            Additional::Forbidden => {
                for k in map.keys().filter(|k| !node.properties.contains_key(*k)) {
                    errs.push(FieldError::invalid(
                        field_of(&path.to_string()),
                        json!(k),
                        format!("{path}.{k} in {IN} is a forbidden property"),
                    ));
                }
            }
            Additional::Schema(add) => {
                for (k, v) in map
                    .iter()
                    .filter(|(k, _)| !node.properties.contains_key(*k))
                {
                    validate(
                        add,
                        v,
                        old.and_then(|o| o.get(k)),
                        &Name::Additional(path, k),
                        errs,
                    );
                }
            }
            Additional::Unset | Additional::Any => {}
        }
        for (k, prop) in &node.properties {
            if let Some(v) = map.get(k) {
                validate(
                    prop,
                    v,
                    old.and_then(|o| o.get(k)),
                    &Name::Prop(path, k),
                    errs,
                );
            }
        }
        for k in &node.required {
            if !map.contains_key(k) {
                errs.push(FieldError::required(field_of(&format!("{path}.{k}")), ""));
            }
        }
    }
}

fn type_list(node: &Node) -> String {
    if node.int_or_string {
        "integer,string".to_string()
    } else {
        node.type_name().to_string()
    }
}

fn enum_strings(values: &[Value]) -> Vec<String> {
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => serde_json::to_string(other).unwrap_or_default(),
        })
        .collect()
}

fn validate_string(
    node: &Node,
    s: &str,
    value: &Value,
    path: &Name<'_>,
    field: &dyn Fn() -> String,
    errs: &mut Vec<FieldError>,
) {
    let len = s.chars().count() as i64;
    if let Some(min) = node.min_length {
        if len < min {
            errs.push(FieldError::invalid(
                field(),
                value.clone(),
                format!("{path} in {IN} should be at least {min} chars long"),
            ));
        }
    }
    if let Some(max) = node.max_length {
        if len > max {
            errs.push(FieldError::too_long(field(), value.clone(), max));
        }
    }
    if let Some(p) = &node.pattern {
        if !p.regex.is_match(s) {
            errs.push(FieldError::invalid(
                field(),
                value.clone(),
                format!("{path} in {IN} should match '{}'", p.source),
            ));
        }
    }
    if let Some(fmt) = &node.format {
        if formats::check(fmt, s) == Some(false) {
            errs.push(FieldError::type_invalid(
                field(),
                value.clone(),
                format!("{path} in {IN} must be of type {fmt}: {}", gofmt::quote(s)),
            ));
        }
    }
}

fn validate_number(
    node: &Node,
    value: &Value,
    path: &Name<'_>,
    field: &dyn Fn() -> String,
    errs: &mut Vec<FieldError>,
) {
    let data = as_f64(value);
    if let Some(factor) = node.multiple_of {
        let bad = if factor < 0.0 {
            errs.push(FieldError::invalid(
                field(),
                value.clone(),
                format!(
                    "factor MultipleOf declared for {path} must be positive: {}",
                    gofmt::float(factor)
                ),
            ));
            false
        } else if is_integer(value) && factor >= 1.0 {
            let f = factor as i64;
            f != 0 && value.as_i64().is_some_and(|i| i % f != 0)
        } else {
            let mult = if factor < 1.0 {
                1.0 / factor * data
            } else {
                data / factor
            };
            mult.fract() != 0.0
        };
        if bad {
            errs.push(FieldError::invalid(
                field(),
                value.clone(),
                format!(
                    "{path} in {IN} should be a multiple of {}",
                    boundary(value, factor)
                ),
            ));
        }
    }
    if let Some(max) = node.maximum {
        let exceeds = if let (true, Some(i)) = (is_integer(value), value.as_i64()) {
            let m = max as i64;
            if node.exclusive_maximum {
                i >= m
            } else {
                i > m
            }
        } else if node.exclusive_maximum {
            data >= max
        } else {
            data > max
        };
        if exceeds {
            let op = if node.exclusive_maximum {
                "less than"
            } else {
                "less than or equal to"
            };
            errs.push(FieldError::invalid(
                field(),
                value.clone(),
                format!("{path} in {IN} should be {op} {}", boundary(value, max)),
            ));
        }
    }
    if let Some(min) = node.minimum {
        let below = if let (true, Some(i)) = (is_integer(value), value.as_i64()) {
            let m = min as i64;
            if node.exclusive_minimum {
                i <= m
            } else {
                i < m
            }
        } else if node.exclusive_minimum {
            data <= min
        } else {
            data < min
        };
        if below {
            let op = if node.exclusive_minimum {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errs.push(FieldError::invalid(
                field(),
                value.clone(),
                format!("{path} in {IN} should be {op} {}", boundary(value, min)),
            ));
        }
    }
}

fn validate_array(
    node: &Node,
    items: &[Value],
    old: Option<&Value>,
    path: &Name<'_>,
    field: &dyn Fn() -> String,
    errs: &mut Vec<FieldError>,
) {
    if let Some(item_schema) = &node.items {
        for (i, item) in items.iter().enumerate() {
            let old_item = correlate_item(&node.list_type, item, old);
            validate(item_schema, item, old_item, &Name::Item(path, i), errs);
        }
    }
    let size = items.len() as i64;
    if let Some(min) = node.min_items {
        if size < min {
            errs.push(FieldError::invalid(
                field(),
                json!(size),
                format!("{path} in {IN} should have at least {min} items"),
            ));
        }
    }
    if let Some(max) = node.max_items {
        if size > max {
            errs.push(FieldError::too_many(field(), size, max));
        }
    }
    if node.unique_items {
        let dup = items
            .iter()
            .enumerate()
            .any(|(i, a)| items[..i].iter().any(|b| json_eq(a, b)));
        if dup {
            errs.push(FieldError::invalid(
                field(),
                json!(""),
                format!("{path} in {IN} shouldn't contain duplicates"),
            ));
        }
    }
}

/// `allOf`/`anyOf`/`oneOf`/`not`. Their summary errors are not `*errors.Validation`, so the API
/// server reports them at the root (`<nil>: Invalid value: "": "spec" must validate ...`).
fn validate_junctors(
    node: &Node,
    value: &Value,
    old: Option<&Value>,
    path: &Name<'_>,
    errs: &mut Vec<FieldError>,
) {
    let root_err = |msg: String| FieldError::invalid(ROOT_FIELD, json!(""), msg);
    if !node.any_of.is_empty() {
        let mut best: Option<Vec<FieldError>> = None;
        let mut ok = false;
        for branch in &node.any_of {
            let mut e = Vec::new();
            validate(branch, value, old, path, &mut e);
            if e.is_empty() {
                ok = true;
                break;
            }
            if best.as_ref().is_none_or(|b| e.len() < b.len()) {
                best = Some(e);
            }
        }
        if !ok {
            errs.push(root_err(format!(
                "{} must validate at least one schema (anyOf)",
                gofmt::quote(&path.to_string())
            )));
            errs.extend(best.unwrap_or_default());
        }
    }
    if !node.one_of.is_empty() {
        let mut valid = 0;
        let mut best: Option<Vec<FieldError>> = None;
        for branch in &node.one_of {
            let mut e = Vec::new();
            validate(branch, value, old, path, &mut e);
            if e.is_empty() {
                valid += 1;
            } else if valid == 0 && best.as_ref().is_none_or(|b| e.len() < b.len()) {
                best = Some(e);
            }
        }
        if valid != 1 {
            let extra = if valid == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {valid} valid alternatives")
            };
            errs.push(root_err(format!(
                "{} must validate one and only one schema (oneOf). {extra}",
                gofmt::quote(&path.to_string())
            )));
            if valid == 0 {
                errs.extend(best.unwrap_or_default());
            }
        }
    }
    if !node.all_of.is_empty() {
        let mut valid = 0;
        for branch in &node.all_of {
            let mut e = Vec::new();
            validate(branch, value, old, path, &mut e);
            if e.is_empty() {
                valid += 1;
            }
            errs.extend(e);
        }
        if valid != node.all_of.len() {
            let extra = if valid == 0 { ". None validated" } else { "" };
            errs.push(root_err(format!(
                "{} must validate all the schemas (allOf){extra}",
                gofmt::quote(&path.to_string())
            )));
        }
    }
    if let Some(not) = &node.not {
        let mut e = Vec::new();
        validate(not, value, old, path, &mut e);
        if e.is_empty() {
            errs.push(root_err(format!(
                "{} must not validate the schema (not)",
                gofmt::quote(&path.to_string())
            )));
        }
    }
}

/// The old counterpart of a list item for ratcheting: `map` lists correlate by their key fields,
/// `set` lists by value, atomic lists not at all.
pub(crate) fn correlate_item<'a>(
    list_type: &ListType,
    item: &Value,
    old: Option<&'a Value>,
) -> Option<&'a Value> {
    let old_items = old?.as_array()?;
    match list_type {
        ListType::Map { keys } => old_items.iter().find(|o| map_list_keys_eq(o, item, keys)),
        ListType::Set => old_items.iter().find(|o| json_eq(o, item)),
        ListType::Atomic => None,
    }
}

/// `x-kubernetes-list-type: set|map` uniqueness (`structurallisttype.ValidateListSetsAndMaps`).
pub(crate) fn validate_list_types(
    node: &Node,
    value: &Value,
    path: &Trail<'_>,
    errs: &mut Vec<FieldError>,
) {
    // Nothing to check below a node without set or map lists.
    if !node.has_list_types {
        return;
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if let Some(prop) = node.properties.get(k) {
                    validate_list_types(prop, v, &Trail::Child(path, k), errs);
                } else if let Additional::Schema(add) = &node.additional {
                    validate_list_types(add, v, &Trail::Key(path, k), errs);
                }
            }
        }
        Value::Array(items) => {
            match &node.list_type {
                ListType::Set => {
                    for i in first_repeats(
                        items.len(),
                        |a, b| canonical_eq(&items[a], &items[b]),
                        |i| canonical(&items[i]),
                    ) {
                        errs.push(FieldError::duplicate(
                            Trail::Index(path, i).path().as_str(),
                            items[i].clone(),
                        ));
                    }
                }
                ListType::Map { keys } => {
                    if let Some((i, bad)) = items
                        .iter()
                        .enumerate()
                        .find(|(_, x)| !x.is_object() && !x.is_null())
                    {
                        errs.push(FieldError::invalid(
                            Trail::Index(path, i).path().as_str(),
                            bad.clone(),
                            "must be an object for an array of list-type map",
                        ));
                    } else if items.len() > 1 {
                        // (A single item cannot repeat a key: nothing to build.)
                        // Items compare by their key fields in place; the key object is built
                        // for an error only.
                        let keys_eq = |a: &Value, b: &Value| {
                            keys.iter().all(|k| match (a.get(k), b.get(k)) {
                                (None, None) => true,
                                (Some(x), Some(y)) => canonical_eq(x, y),
                                _ => false,
                            })
                        };
                        for i in first_repeats(
                            items.len(),
                            |a, b| keys_eq(&items[a], &items[b]),
                            |i| canonical(&map_list_key(&items[i], keys)),
                        ) {
                            errs.push(FieldError::duplicate(
                                Trail::Index(path, i).path().as_str(),
                                map_list_key(&items[i], keys),
                            ));
                        }
                    }
                }
                ListType::Atomic => {}
            }
            if let Some(item_schema) = &node.items {
                for (i, item) in items.iter().enumerate() {
                    validate_list_types(item_schema, item, &Trail::Index(path, i), errs);
                }
            }
        }
        _ => {}
    }
}

/// The key fields of a map-list item, as the object `{key: value}` the API server reports.
pub(crate) fn map_list_key(item: &Value, keys: &[String]) -> Value {
    let mut out = serde_json::Map::new();
    if let Value::Object(obj) = item {
        for k in keys {
            if let Some(v) = obj.get(k) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Whether two map-list items have the same key (`json_eq` of their [`map_list_key`]s), compared
/// in place.
pub(crate) fn map_list_keys_eq(a: &Value, b: &Value, keys: &[String]) -> bool {
    keys.iter().all(|k| match (a.get(k), b.get(k)) {
        (None, None) => true,
        (Some(x), Some(y)) => json_eq(x, y),
        _ => false,
    })
}

/// Lists up to this long look for repeats by comparing items pairwise (no canonical strings).
const PAIRWISE_REPEATS_MAX: usize = 16;

/// Indices (of `n` items) of the second occurrence of every value that occurs more than once;
/// `eq(a, b)` is `canonical(a) == canonical(b)`, compared in place.
fn first_repeats(
    n: usize,
    eq: impl Fn(usize, usize) -> bool,
    canon: impl Fn(usize) -> String,
) -> Vec<usize> {
    if n <= PAIRWISE_REPEATS_MAX {
        // The second occurrence: exactly one equal item before it.
        return (1..n)
            .filter(|&i| (0..i).filter(|&j| eq(j, i)).count() == 1)
            .collect();
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for i in 0..n {
        let count = seen.entry(canon(i)).or_insert(0);
        *count += 1;
        if *count == 2 {
            out.push(i);
        }
    }
    out
}

/// `canonical(a) == canonical(b)` without building the strings: numbers by their rendering
/// (1 and 1.0 are one value), objects by key and value, arrays item by item, the rest by value
/// (a rendering never equals another JSON type's).
pub(crate) fn canonical_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => canonical(a) == canonical(b),
        },
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| canonical_eq(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| canonical_eq(v, w))
        }
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Null, Value::Null) => true,
        _ => false,
    }
}

pub(crate) fn canonical(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => gofmt::float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", gofmt::quote(k), canonical(&map[*k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// Embedded resources must say what they are (`apiVersion` and `kind`).
pub(crate) fn validate_embedded(
    node: &Node,
    value: &Value,
    path: &Trail<'_>,
    errs: &mut Vec<FieldError>,
) {
    // Nothing to check below a node without embedded resources.
    if !node.has_embedded {
        return;
    }
    match value {
        Value::Object(map) => {
            if node.embedded {
                for key in ["apiVersion", "kind"] {
                    match map.get(key) {
                        Some(Value::String(s)) if !s.is_empty() => {}
                        _ => errs.push(FieldError::required(
                            Trail::Child(path, key).path().as_str(),
                            "must not be empty",
                        )),
                    }
                }
            }
            for (k, v) in map {
                if let Some(prop) = node.properties.get(k) {
                    validate_embedded(prop, v, &Trail::Child(path, k), errs);
                } else if let Additional::Schema(add) = &node.additional {
                    validate_embedded(add, v, &Trail::Key(path, k), errs);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &node.items {
                for (i, item) in items.iter().enumerate() {
                    validate_embedded(item_schema, item, &Trail::Index(path, i), errs);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<Value> {
        vec![
            json!(null),
            json!(true),
            json!(false),
            json!(1),
            json!(1.0),
            json!(1.5),
            json!(-0.0),
            json!(0),
            json!(u64::MAX),
            json!(18446744073709551615.0),
            json!("1"),
            json!("a,b"),
            json!(""),
            json!([]),
            json!([1, "a"]),
            json!([1.0, "a"]),
            json!(["a", 1]),
            json!({}),
            json!({"a": 1}),
            json!({"a": 1.0}),
            json!({"a": 1, "b": null}),
            json!({"b": null, "a": 1}),
            json!({"a": "1"}),
            json!({"a": {"b": [1, 2]}}),
            json!({"a": {"b": [1, 2.0]}}),
        ]
    }

    #[test]
    fn canonical_eq_is_equality_of_the_canonical_renderings() {
        let vs = values();
        for a in &vs {
            for b in &vs {
                assert_eq!(
                    canonical_eq(a, b),
                    canonical(a) == canonical(b),
                    "{a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn pairwise_repeats_equal_the_canonical_ones() {
        // Lists short enough to compare pairwise and longer ones (canonical strings) find the
        // same second occurrences.
        let vs = values();
        for len in [0, 1, 2, 5, PAIRWISE_REPEATS_MAX, 40] {
            for start in 0..vs.len() {
                let items: Vec<Value> = (0..len)
                    .map(|i| vs[(start + i * 7 + i / 3) % vs.len()].clone())
                    .collect();
                let pairwise: Vec<usize> = (1..items.len())
                    .filter(|&i| {
                        (0..i)
                            .filter(|&j| canonical_eq(&items[j], &items[i]))
                            .count()
                            == 1
                    })
                    .collect();
                let mut seen: HashMap<String, usize> = HashMap::new();
                let mut by_string = Vec::new();
                for (i, x) in items.iter().enumerate() {
                    let count = seen.entry(canonical(x)).or_insert(0);
                    *count += 1;
                    if *count == 2 {
                        by_string.push(i);
                    }
                }
                assert_eq!(pairwise, by_string, "{items:?}");
                let found = first_repeats(
                    items.len(),
                    |a, b| canonical_eq(&items[a], &items[b]),
                    |i| canonical(&items[i]),
                );
                assert_eq!(found, by_string, "{items:?}");
            }
        }
    }
}
