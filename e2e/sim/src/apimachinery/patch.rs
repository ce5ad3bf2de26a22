//! The three PATCH content types: JSON merge patch (RFC 7386), JSON patch (RFC 6902, via the
//! `json-patch` crate, applied atomically) and strategic merge patch for built-in kinds.
//!
//! Strategic merge patch follows `k8s.io/apimachinery/pkg/util/strategicpatch` (server side:
//! parallel lists merged): lists with `patchStrategy: merge` are merged by their merge key (or as
//! sets of scalars), everything else is replaced; the directives kubectl sends are honoured —
//! `$patch: replace|delete` (maps and list items), `$retainKeys`, `$setElementOrder/<list>` and
//! `$deleteFromPrimitiveList/<list>` — and list order follows the upstream rules (patch items in
//! patch order, server-only items kept in place relative to them). Custom resources do not
//! support it: the server answers 415 ([`unsupported_media_type_status`]).

use super::builtin::PatchStrategy;
pub use super::builtin::{builtin_kind, BuiltinKind};
use super::structural_eq;
use serde_json::{json, Map, Value};
use std::fmt;

const DIRECTIVE: &str = "$patch";
const DELETE: &str = "delete";
const REPLACE: &str = "replace";
const MERGE: &str = "merge";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// The media types a server accepts for PATCH.
pub const JSON_PATCH_CONTENT_TYPE: &str = "application/json-patch+json";
pub const MERGE_PATCH_CONTENT_TYPE: &str = "application/merge-patch+json";
pub const STRATEGIC_MERGE_PATCH_CONTENT_TYPE: &str = "application/strategic-merge-patch+json";
pub const APPLY_PATCH_CONTENT_TYPE: &str = "application/apply-patch+yaml";

/// How the API server reports a patch that cannot be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchErrorKind {
    /// 400: the patch document itself is malformed.
    BadRequest,
    /// 422: a well-formed patch that does not apply to this object.
    Unprocessable,
    /// 500: what kube-apiserver reports for the remaining strategic merge patch errors.
    Internal,
}

/// A patch that cannot be applied, with the message the API server gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchError {
    pub kind: PatchErrorKind,
    pub message: String,
}

impl PatchError {
    fn bad_request(message: impl Into<String>) -> Self {
        PatchError {
            kind: PatchErrorKind::BadRequest,
            message: message.into(),
        }
    }

    fn unprocessable(message: impl Into<String>) -> Self {
        PatchError {
            kind: PatchErrorKind::Unprocessable,
            message: message.into(),
        }
    }

    fn internal(message: impl Into<String>) -> Self {
        PatchError {
            kind: PatchErrorKind::Internal,
            message: message.into(),
        }
    }

    /// The HTTP status code of the error response.
    pub fn status_code(&self) -> u16 {
        match self.kind {
            PatchErrorKind::BadRequest => 400,
            PatchErrorKind::Unprocessable => 422,
            PatchErrorKind::Internal => 500,
        }
    }

    /// The `Status` body the API server sends for this error.
    pub fn to_status(&self) -> Value {
        let (reason, message) = match self.kind {
            PatchErrorKind::BadRequest => ("BadRequest", self.message.clone()),
            PatchErrorKind::Unprocessable => ("Invalid", self.message.clone()),
            PatchErrorKind::Internal => (
                "InternalError",
                format!("Internal error occurred: {}", self.message),
            ),
        };
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": self.status_code(),
        });
        if self.kind == PatchErrorKind::Internal {
            status["details"] = json!({"causes": [{"message": self.message}]});
        }
        status
    }
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PatchError {}

/// The 415 a server sends for a strategic merge patch of a custom resource.
pub fn unsupported_media_type_status(content_type: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "the body of the request was in an unknown format - accepted media types include: {JSON_PATCH_CONTENT_TYPE}, {MERGE_PATCH_CONTENT_TYPE}, {APPLY_PATCH_CONTENT_TYPE}"
        ),
        "reason": "UnsupportedMediaType",
        "details": {"causes": [{"reason": "UnsupportedMediaType", "message": content_type}]},
        "code": 415,
    })
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902 JSON patch; atomic (on error `target` is unchanged). A malformed patch is a 400, an
/// operation that fails on this object a 422.
///
/// As in Kubernetes (evanphx/json-patch), a `test` of `null` passes on a member that does not
/// exist: kube-rs' finalizer helper adds the first finalizer with `test /metadata/finalizers
/// null` then `add`.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops = json_patch_operations(patch)?;
    let mut work = target.clone();
    apply_json_patch(&mut work, ops)?;
    *target = work;
    Ok(())
}

/// [`json_patch`] of a document the caller gives up: patched in place, without the copy that
/// keeps [`json_patch`]'s target unchanged on an error (there is no target left then). Same
/// result, same errors.
pub fn json_patch_owned(mut target: Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = json_patch_operations(patch)?;
    apply_json_patch(&mut target, ops)?;
    Ok(target)
}

fn json_patch_operations(patch: &Value) -> Result<json_patch::Patch, PatchError> {
    serde_json::from_value(patch.clone()).map_err(|e| PatchError::bad_request(e.to_string()))
}

/// The operations one by one (a `test` of `null` on a missing member passes); stops at the first
/// that fails, leaving the document partly patched.
fn apply_json_patch(work: &mut Value, ops: json_patch::Patch) -> Result<(), PatchError> {
    for op in ops.0 {
        if let json_patch::PatchOperation::Test(test) = &op {
            if test.value.is_null() && work.pointer(test.path.as_str()).is_none() {
                continue;
            }
        }
        json_patch::patch(work, &[op]).map_err(|e| PatchError::unprocessable(e.to_string()))?;
    }
    Ok(())
}

/// Strategic merge patch of a built-in kind. Returns the patched object.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    kind: &BuiltinKind,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::bad_request(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            go_json_kind(patch)
        )));
    };
    let original = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::bad_request("invalid JSON document")),
    };
    let mut path = Vec::new();
    let merged = Merger { kind }.merge_map(original, patch.clone(), &mut path)?;
    Ok(Value::Object(merged))
}

fn go_json_kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
        Value::Object(_) => "object",
    }
}

/// Go's `%v` of a `map[string]interface{}` for error messages.
fn go_map(m: &Map<String, Value>) -> String {
    crate::apimachinery::gofmt::plain_v(&Value::Object(m.clone()))
}

fn err_no_merge_key(m: &Map<String, Value>, key: &str) -> PatchError {
    PatchError::internal(format!(
        "map: {} does not contain declared merge key: {key}",
        go_map(m)
    ))
}

fn err_bad_patch_type(t: &Value, m: &Map<String, Value>) -> PatchError {
    PatchError::internal(format!(
        "unknown patch type: {} in map: {}",
        crate::apimachinery::gofmt::plain_v(t),
        go_map(m)
    ))
}

fn err_bad_arg_type(expected: &str, actual: &Value) -> PatchError {
    let actual = match actual {
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
        Value::String(_) => "string",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::Bool(_) => "bool",
        Value::Null => "<nil>",
    };
    PatchError::internal(format!("expected a {expected}, but received a {actual}"))
}

/// Go's reflect type of a decoded JSON value, for "same type" checks.
fn go_type(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(n) if n.is_f64() => 2,
        Value::Number(_) => 3,
        Value::String(_) => 4,
        Value::Array(_) => 5,
        Value::Object(_) => 6,
    }
}

/// Key/value pairs of a patch map.
type Entries = Vec<(String, Value)>;

struct Merger<'a> {
    kind: &'a BuiltinKind,
}

impl Merger<'_> {
    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(directive) = patch.get(DIRECTIVE) {
            return match directive.as_str() {
                Some(REPLACE) => {
                    patch.remove(DIRECTIVE);
                    Ok(patch)
                }
                Some(DELETE) => Ok(Map::new()),
                _ => Err(err_bad_patch_type(directive, &patch)),
            };
        }
        apply_retain_keys(&mut original, &mut patch)?;
        self.merge_set_element_order(&mut original, &mut patch, path)?;

        // Regular keys first, then parallel deletion lists, each in key order.
        let (deletions, regular): (Entries, Entries) = patch
            .into_iter()
            .partition(|(k, _)| k.starts_with(DELETE_FROM_PRIMITIVE_LIST));
        for (k, patch_v) in regular {
            self.merge_key(&mut original, k, patch_v, path)?;
        }
        for (k, to_delete) in deletions {
            let key = extract_key(&k, DELETE_FROM_PRIMITIVE_LIST)
                .ok_or_else(|| PatchError::bad_request("invalid patch format of primitive list"))?;
            let Value::Array(to_delete) = to_delete else {
                return Err(err_bad_arg_type("[]interface {}", &to_delete));
            };
            if let Some(Value::Array(current)) = original.get_mut(&key) {
                current.retain(|v| !to_delete.iter().any(|d| structural_eq(d, v)));
            }
        }
        Ok(original)
    }

    fn merge_key(
        &self,
        original: &mut Map<String, Value>,
        k: String,
        patch_v: Value,
        path: &mut Vec<String>,
    ) -> Result<(), PatchError> {
        if patch_v.is_null() {
            original.remove(&k);
            return Ok(());
        }
        path.push(k.clone());
        let (strategy, merge_key) = self.kind.patch_meta(path);
        let result = match original.remove(&k) {
            None => self.clean_new_value(patch_v, strategy, merge_key, path),
            Some(orig_v) if go_type(&orig_v) != go_type(&patch_v) => Ok(patch_v),
            Some(Value::Object(orig_m)) => match (patch_v, strategy) {
                (Value::Object(patch_m), Some(PatchStrategy::Replace)) => {
                    Ok(Value::Object(patch_m))
                }
                (Value::Object(patch_m), _) => {
                    self.merge_map(orig_m, patch_m, path).map(Value::Object)
                }
                (other, _) => Ok(other),
            },
            Some(Value::Array(orig_l)) => match (patch_v, strategy) {
                (Value::Array(patch_l), Some(PatchStrategy::Merge)) => self
                    .merge_slice(orig_l, patch_l, merge_key, path)
                    .map(Value::Array),
                (other, _) => Ok(other),
            },
            Some(_) => Ok(patch_v),
        };
        path.pop();
        original.insert(k, result?);
        Ok(())
    }

    /// A value added where the original had none: processed against an empty value so that no
    /// directive ends up in the stored object.
    fn clean_new_value(
        &self,
        v: Value,
        strategy: Option<PatchStrategy>,
        merge_key: Option<&str>,
        path: &mut Vec<String>,
    ) -> Result<Value, PatchError> {
        match (v, strategy) {
            (Value::Object(m), Some(PatchStrategy::Replace)) => Ok(Value::Object(m)),
            (Value::Object(m), _) => self.merge_map(Map::new(), m, path).map(Value::Object),
            (Value::Array(l), Some(PatchStrategy::Merge)) => self
                .merge_slice(Vec::new(), l, merge_key, path)
                .map(Value::Array),
            (other, _) => Ok(other),
        }
    }

    fn merge_slice(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        merge_key: Option<&str>,
        path: &mut Vec<String>,
    ) -> Result<Vec<Value>, PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let elem = slice_element_type(&[&original, &patch])?;
        let key = merge_key.unwrap_or("");
        let (original, patch, merged) = if elem != 6 {
            let mut both = original.clone();
            both.extend(patch.iter().cloned());
            (original, patch, dedup_scalars(both))
        } else {
            if key.is_empty() {
                return Err(PatchError::internal(
                    "cannot merge lists without merge key for type struct",
                ));
            }
            let (original, patch) = merge_slice_with_special_elements(original, patch, key)?;
            let merged =
                self.merge_slice_without_special_elements(original.clone(), &patch, key, path)?;
            (original, patch, merged)
        };
        let (patch_items, server_only) = partition_by_presence(merged, &patch, key)?;
        normalize_element_order(patch_items, server_only, &patch, &original, key)
    }

    fn merge_slice_without_special_elements(
        &self,
        mut original: Vec<Value>,
        patch: &[Value],
        key: &str,
        path: &mut Vec<String>,
    ) -> Result<Vec<Value>, PatchError> {
        for v in patch {
            let Value::Object(pm) = v else {
                return Err(err_bad_arg_type("map[string]interface {}", v));
            };
            let Some(kv) = pm.get(key) else {
                return Err(err_no_merge_key(pm, key));
            };
            match find_by_key(&original, key, kv)? {
                Some(i) => {
                    let om = match std::mem::take(&mut original[i]) {
                        Value::Object(om) => om,
                        other => return Err(err_bad_arg_type("map[string]interface {}", &other)),
                    };
                    original[i] = Value::Object(self.merge_map(om, pm.clone(), path)?);
                }
                None => original.push(Value::Object(self.merge_map(
                    Map::new(),
                    pm.clone(),
                    path,
                )?)),
            }
        }
        Ok(original)
    }

    /// `$setElementOrder/<list>`: merges the list with its patch and orders it as the directive
    /// says (precedence: directive, then patch order, then live order).
    fn merge_set_element_order(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<(), PatchError> {
        let order_keys: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
            .cloned()
            .collect();
        for directive_key in order_keys {
            let Some(order) = patch.remove(&directive_key) else {
                continue;
            };
            let Value::Array(order) = order else {
                return Err(err_bad_arg_type("[]interface {}", &order));
            };
            let key = extract_key(&directive_key, SET_ELEMENT_ORDER).ok_or_else(|| {
                PatchError::bad_request("invalid patch format of setElementOrder list")
            })?;
            let original_list = match original.get(&key) {
                Some(Value::Array(l)) => Some(l.clone()),
                Some(other) => return Err(err_bad_arg_type("[]interface {}", other)),
                None => None,
            };
            let patch_list = match patch.get(&key) {
                Some(Value::Array(l)) => Some(l.clone()),
                Some(other) => return Err(err_bad_arg_type("[]interface {}", other)),
                None => None,
            };
            path.push(key.clone());
            let (strategy, merge_key) = self.kind.patch_meta(path);
            let mk = merge_key.unwrap_or("");
            validate_patch_with_set_order_list(patch_list.as_deref().unwrap_or(&[]), &order, mk)?;
            let merged = match (original_list.clone(), patch_list.clone()) {
                (Some(o), None) => o,
                (None, Some(p)) => p,
                (Some(o), Some(p)) => {
                    if strategy == Some(PatchStrategy::Merge) {
                        self.merge_slice(o, p, merge_key, path)?
                    } else {
                        p
                    }
                }
                (None, None) => {
                    path.pop();
                    continue;
                }
            };
            path.pop();
            let result = if merged.is_empty() {
                merged
            } else {
                let (patch_items, server_only) = partition_by_presence(merged, &order, mk)?;
                normalize_element_order(
                    patch_items,
                    server_only,
                    &order,
                    original_list.as_deref().unwrap_or(&[]),
                    mk,
                )?
            };
            original.insert(key.clone(), Value::Array(result));
            patch.remove(&key);
        }
        Ok(())
    }
}

fn extract_key(s: &str, prefix: &str) -> Option<String> {
    let (p, rest) = s.split_once('/')?;
    (p == prefix).then(|| rest.to_string())
}

/// `$retainKeys`: drop original keys not listed; every patch key must be listed.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::bad_request(
            "invalid patch format of retainKeys",
        ));
    };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !listed(k) {
            return Err(PatchError::bad_request(
                "invalid patch format of retainKeys",
            ));
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// All elements of the given slices must have one type, and not be lists.
fn slice_element_type(slices: &[&[Value]]) -> Result<u8, PatchError> {
    let mut prev: Option<u8> = None;
    for s in slices {
        for v in s.iter() {
            let t = go_type(v);
            match prev {
                None => {
                    if t == 5 {
                        return Err(PatchError::unprocessable(
                            "lists of lists are not supported",
                        ));
                    }
                    prev = Some(t);
                }
                Some(p) if p != t => {
                    return Err(PatchError::internal("list element types are not identical"));
                }
                Some(_) => {}
            }
        }
    }
    prev.ok_or_else(|| PatchError::internal("no elements in any of the given slices"))
}

fn dedup_scalars(items: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    for v in items {
        if !out.iter().any(|o| structural_eq(o, &v)) {
            out.push(v);
        }
    }
    out
}

fn merge_key_value<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    if key.is_empty() {
        Some(item)
    } else {
        item.get(key)
    }
}

fn find_by_key(list: &[Value], key: &str, value: &Value) -> Result<Option<usize>, PatchError> {
    for (i, v) in list.iter().enumerate() {
        let Value::Object(m) = v else {
            return Err(PatchError::internal(format!(
                "value for key {i} is not a map."
            )));
        };
        if m.get(key).is_some_and(|x| structural_eq(x, value)) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Items with `$patch` directives: `delete` removes matching entries from the original,
/// `replace` makes the rest of the patch list the whole list.
fn merge_slice_with_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::new();
    let mut replace = false;
    for v in patch {
        let Value::Object(m) = &v else {
            return Err(err_bad_arg_type("map[string]interface {}", &v));
        };
        match m.get(DIRECTIVE) {
            None => plain.push(v),
            Some(d) => match d.as_str() {
                Some(DELETE) => {
                    let Some(kv) = m.get(key) else {
                        return Err(err_no_merge_key(m, key));
                    };
                    original.retain(|o| !o.get(key).is_some_and(|x| structural_eq(x, kv)));
                }
                Some(REPLACE) => replace = true,
                Some(MERGE) => {
                    return Err(PatchError::internal(
                        "merging lists cannot yet be specified in the patch",
                    ))
                }
                _ => return Err(err_bad_patch_type(d, m)),
            },
        }
    }
    if replace {
        Ok((plain, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

/// Splits `merged` into the items present in `partition_by` and the others.
fn partition_by_presence(
    merged: Vec<Value>,
    partition_by: &[Value],
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut in_patch = Vec::new();
    let mut server_only = Vec::new();
    for v in merged {
        let kv = if key.is_empty() {
            v.clone()
        } else {
            let Value::Object(m) = &v else {
                return Err(err_bad_arg_type("map[string]interface {}", &v));
            };
            match m.get(key) {
                Some(x) => x.clone(),
                None => return Err(err_no_merge_key(m, key)),
            }
        };
        let found = partition_by
            .iter()
            .any(|p| merge_key_value(p, key).is_some_and(|x| structural_eq(x, &kv)));
        if found {
            in_patch.push(v);
        } else {
            server_only.push(v);
        }
    }
    Ok((in_patch, server_only))
}

fn index_in(order: &[Value], item: &Value, key: &str) -> Option<usize> {
    let kv = merge_key_value(item, key)?;
    order
        .iter()
        .position(|o| merge_key_value(o, key).is_some_and(|x| structural_eq(x, kv)))
}

/// Stable sort of `items` by their position in `order`; for maps, `$patch: delete` items last.
fn normalize_slice_order(
    items: Vec<Value>,
    order: &[Value],
    key: &str,
) -> Result<Vec<Value>, PatchError> {
    let (mut keep, delete): (Vec<Value>, Vec<Value>) = if key.is_empty() {
        (items, Vec::new())
    } else {
        for v in items.iter().chain(order.iter()) {
            let Value::Object(m) = v else {
                return Err(err_bad_arg_type("map[string]interface {}", v));
            };
            if !m.contains_key(key) {
                return Err(err_no_merge_key(m, key));
            }
        }
        items
            .into_iter()
            .partition(|v| v.get(DIRECTIVE).and_then(Value::as_str) != Some(DELETE))
    };
    keep.sort_by_key(|v| index_in(order, v, key).unwrap_or(usize::MAX));
    keep.extend(delete);
    Ok(keep)
}

fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: &str,
) -> Result<Vec<Value>, PatchError> {
    let patch = normalize_slice_order(patch, patch_order, key)?;
    let server_only = normalize_slice_order(server_only, server_order, key)?;
    Ok(merge_sorted(server_only, patch, server_order, key))
}

/// `mergeSortedSlice(left=serverOnly, right=patch)`: a server-only item goes first only when it
/// precedes the next patch item in the live list.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    key: &str,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut l = left.into_iter().peekable();
    let mut r = right.into_iter().peekable();
    loop {
        let take_left = match (l.peek(), r.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => match (
                index_in(server_order, a, key),
                index_in(server_order, b, key),
            ) {
                (Some(i), Some(j)) => i < j,
                _ => false,
            },
        };
        let next = if take_left { l.next() } else { r.next() };
        out.extend(next);
    }
    out
}

/// `$setElementOrder` must list the patch items in the same relative order.
fn validate_patch_with_set_order_list(
    patch_list: &[Value],
    order: &[Value],
    key: &str,
) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = if key.is_empty() {
        patch_list.iter().collect()
    } else {
        patch_list
            .iter()
            .filter(|v| v.get(DIRECTIVE).and_then(Value::as_str) != Some(DELETE))
            .collect()
    };
    let (mut pi, mut oi) = (0, 0);
    while pi < non_delete.len() && oi < order.len() {
        if non_delete[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        let a = merge_key_value(non_delete[pi], key);
        let b = merge_key_value(&order[oi], key);
        if a.is_none() || b.is_none() {
            let m = non_delete[pi].as_object().cloned().unwrap_or_default();
            return Err(err_no_merge_key(&m, key));
        }
        if a.zip(b).is_some_and(|(a, b)| structural_eq(a, b)) {
            pi += 1;
        }
        oi += 1;
    }
    if pi < non_delete.len() && oi >= order.len() {
        return Err(PatchError::internal(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            crate::apimachinery::gofmt::plain_v(&Value::Array(patch_list.to_vec())),
            crate::apimachinery::gofmt::plain_v(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
