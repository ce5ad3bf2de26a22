//! The two mutations the API server applies to custom resources before validating them:
//! pruning of unknown fields (`structuralpruning.Prune`) and defaulting
//! (`structuraldefaulting.PruneNonNullableNullsWithoutDefaults` then `Default`).

use super::schema::{Additional, FieldPath, Node, Trail};
use serde_json::{Map, Value};

/// Keys of an object that describe the object itself and are never pruned from a resource
/// root or an embedded resource (metadata is the server's own business).
const TYPE_META_KEYS: [&str; 3] = ["apiVersion", "kind", "metadata"];

pub(crate) fn prune(
    node: Option<&Node>,
    value: &mut Value,
    path: &FieldPath,
    is_resource: bool,
    removed: &mut Vec<String>,
) {
    prune_at(node, value, &Trail::Root(path), is_resource, removed);
}

fn prune_at(
    node: Option<&Node>,
    value: &mut Value,
    trail: &Trail<'_>,
    is_resource: bool,
    removed: &mut Vec<String>,
) {
    if let Some(n) = node {
        if n.preserve_unknown || matches!(n.additional, Additional::Any) {
            skip_prune(n, value, trail, removed);
            return;
        }
    }
    match value {
        Value::Object(map) => {
            let Some(n) = node else {
                for (k, _) in std::mem::take(map) {
                    removed.push(Trail::Child(trail, &k).path().as_str().to_string());
                }
                return;
            };
            let resource = is_resource || n.embedded;
            map.retain(|k, v| {
                if resource && TYPE_META_KEYS.contains(&k.as_str()) {
                    return true;
                }
                if let Some(prop) = n.properties.get(k) {
                    prune_at(Some(prop), v, &Trail::Child(trail, k), false, removed);
                    true
                } else if let Additional::Schema(add) = &n.additional {
                    prune_at(Some(add), v, &Trail::Key(trail, k), false, removed);
                    true
                } else {
                    removed.push(Trail::Child(trail, k).path().as_str().to_string());
                    false
                }
            });
        }
        Value::Array(items) => {
            let item_schema = node.and_then(|n| n.items.as_deref());
            for (i, item) in items.iter_mut().enumerate() {
                prune_at(item_schema, item, &Trail::Index(trail, i), false, removed);
            }
        }
        _ => {}
    }
}

/// Under `x-kubernetes-preserve-unknown-fields` unknown keys stay, but known ones are pruned by
/// their own schemas.
fn skip_prune(node: &Node, value: &mut Value, trail: &Trail<'_>, removed: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if node.embedded && TYPE_META_KEYS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(prop) = node.properties.get(k) {
                    prune_at(Some(prop), v, &Trail::Child(trail, k), false, removed);
                } else if let Additional::Schema(add) = &node.additional {
                    prune_at(Some(add), v, &Trail::Key(trail, k), false, removed);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.items.as_deref() {
                for (i, item) in items.iter_mut().enumerate() {
                    skip_prune(item_schema, item, &Trail::Index(trail, i), removed);
                }
            }
        }
        _ => {}
    }
}

/// Removes `null`s of fields that are neither nullable nor defaulted, then fills defaults.
pub(crate) fn apply_defaults(node: &Node, value: &mut Value) {
    prune_non_nullable_nulls(node, value);
    default(node, value);
}

fn prune_non_nullable_nulls(node: &Node, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.values().any(Value::is_null) {
                map.retain(|k, v| {
                    let child = node.child(k);
                    !(v.is_null() && child.is_some_and(|c| c.default.is_none() && !c.nullable))
                });
            }
            for (k, v) in map.iter_mut() {
                if let Some(child) = node.child(k) {
                    prune_non_nullable_nulls(child, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.items.as_deref() {
                items
                    .iter_mut()
                    .for_each(|i| prune_non_nullable_nulls(item_schema, i));
            }
        }
        _ => {}
    }
}

fn default(node: &Node, value: &mut Value) {
    // Nothing to fill below a node none of whose descendants has a default.
    if !node.has_defaults_below {
        return;
    }
    match value {
        Value::Object(map) => {
            fill_property_defaults(node, map);
            for (k, v) in map.iter_mut() {
                if let Some(prop) = node.properties.get(k) {
                    default(prop, v);
                } else if let Additional::Schema(add) = &node.additional {
                    if v.is_null() && !add.nullable {
                        if let Some(d) = &add.default {
                            *v = d.clone();
                        }
                    }
                    default(add, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.items.as_deref() {
                for item in items.iter_mut() {
                    if item.is_null() && !item_schema.nullable {
                        if let Some(d) = &item_schema.default {
                            *item = d.clone();
                        }
                    }
                    default(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

fn fill_property_defaults(node: &Node, map: &mut Map<String, Value>) {
    for (k, prop) in &node.properties {
        let Some(d) = &prop.default else { continue };
        let missing = match map.get(k) {
            None => true,
            Some(Value::Null) => !prop.nullable,
            Some(_) => false,
        };
        if missing {
            map.insert(k.clone(), d.clone());
        }
    }
}
