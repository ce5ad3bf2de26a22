//! The typed-value operations of structured-merge-diff over JSON values: field sets of objects
//! (`ToFieldSet`), merging an applied configuration into a live object (`Merge`, right side
//! wins), comparing two objects (`Compare`) and removing items (`RemoveItems`).
//!
//! Type information comes from a [`ListTypes`]: list types (`atomic`, `set`, `map` with keys),
//! atomic maps, and whether an object is a map (`map[string]X`, whose entries are members) or a
//! struct. Paths given to it are field names from the root; list levels are passed through.

use super::fieldset::FieldSet;
use super::ListTypes;
use crate::apimachinery::structural_eq;
use crate::apimachinery::validation::ListType;
use serde_json::{Map, Value};

pub(crate) fn field_pe(name: &str) -> String {
    format!("f:{name}")
}

/// The path element of a list item: `k:{...}` for map lists, `v:...` for sets.
pub(crate) fn item_pe(list_type: &ListType, item: &Value, index: usize) -> String {
    match list_type {
        ListType::Map { keys } => {
            let mut sorted: Vec<&String> = keys.iter().collect();
            sorted.sort();
            let parts: Vec<String> = sorted
                .into_iter()
                .filter_map(|k| {
                    let v = item.get(k).cloned().or_else(|| key_default(k))?;
                    Some(format!("{}:{}", Value::String(k.clone()), v))
                })
                .collect();
            format!("k:{{{}}}", parts.join(","))
        }
        ListType::Set => format!("v:{item}"),
        ListType::Atomic => format!("i:{index}"),
    }
}

/// Defaults of list-map key fields that the Kubernetes schemas declare (`protocol: TCP`).
fn key_default(key: &str) -> Option<Value> {
    (key == "protocol").then(|| Value::String("TCP".to_string()))
}

struct Walk<'a> {
    types: &'a dyn ListTypes,
    names: Vec<String>,
    pes: Vec<String>,
    /// [`compare`] builds the set of a subtree only one side has in one go ([`one_sided`]);
    /// false: leaf by leaf, the reference it is tested against.
    whole_subtrees: bool,
}

impl<'a> Walk<'a> {
    fn new(types: &'a dyn ListTypes) -> Self {
        Walk {
            types,
            names: Vec::new(),
            pes: Vec::new(),
            whole_subtrees: true,
        }
    }

    fn list_type(&self) -> ListType {
        self.types.list_type(&self.names)
    }

    fn map_atomic(&self) -> bool {
        !self.names.is_empty() && self.types.map_is_atomic(&self.names)
    }
}

/// `ToFieldSet`: every leaf, every list item, and map entries that are empty, null, or entries
/// of a `map[string]X`.
pub(crate) fn to_field_set(v: &Value, types: &dyn ListTypes) -> FieldSet {
    let mut set = FieldSet::new();
    let mut w = Walk::new(types);
    fs_walk(&mut w, v, &mut set);
    set
}

fn fs_walk(w: &mut Walk<'_>, v: &Value, set: &mut FieldSet) {
    match v {
        Value::Object(map) => {
            if w.map_atomic() {
                set.insert(&w.pes);
                return;
            }
            let is_map = w.types.is_map(&w.names);
            for (k, child) in map {
                w.names.push(k.clone());
                w.pes.push(field_pe(k));
                fs_walk(w, child, set);
                let empty = child.is_null() || child.as_object().is_some_and(Map::is_empty);
                if empty || is_map {
                    set.insert(&w.pes);
                }
                w.pes.pop();
                w.names.pop();
            }
        }
        Value::Array(items) => {
            let lt = w.list_type();
            if lt == ListType::Atomic {
                set.insert(&w.pes);
                return;
            }
            for (i, item) in items.iter().enumerate() {
                w.pes.push(item_pe(&lt, item, i));
                fs_walk(w, item, set);
                set.insert(&w.pes);
                w.pes.pop();
            }
        }
        _ => set.insert(&w.pes),
    }
}

/// Marks named struct fields that have members below them as members themselves
/// (`EnsureNamedFieldsAreMembers`), so that removing them removes the whole field.
pub(crate) fn ensure_named_fields_are_members(set: &FieldSet, types: &dyn ListTypes) -> FieldSet {
    let mut out = set.clone();
    let mut names = Vec::new();
    ensure_walk(&mut out, types, &mut names);
    out
}

fn ensure_walk(node: &mut FieldSet, types: &dyn ListTypes, names: &mut Vec<String>) {
    let is_map = types.is_map(names);
    let keys: Vec<String> = node.children().map(|(k, _)| k.clone()).collect();
    for k in keys {
        let child = node.child_mut(&k);
        if let Some(name) = k.strip_prefix("f:") {
            if !is_map {
                child.set_member(true);
            }
            names.push(name.to_string());
            ensure_walk(child, types, names);
            names.pop();
        } else {
            ensure_walk(child, types, names);
        }
    }
}

/// `live.Merge(config)`: the applied configuration wins on every field it sets; associative lists
/// are merged item by item, keeping live-only items where they were.
pub(crate) fn merge(live: &Value, config: &Value, types: &dyn ListTypes) -> Value {
    let mut w = Walk::new(types);
    merge_walk(&mut w, Some(live), config)
}

fn merge_walk(w: &mut Walk<'_>, lhs: Option<&Value>, rhs: &Value) -> Value {
    let Some(lhs) = lhs else { return rhs.clone() };
    match (lhs, rhs) {
        (Value::Object(l), Value::Object(r)) if !w.map_atomic() => {
            let mut out = l.clone();
            for (k, rv) in r {
                w.names.push(k.clone());
                let merged = merge_walk(w, l.get(k), rv);
                w.names.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(r)) => {
            let lt = w.list_type();
            if lt == ListType::Atomic {
                rhs.clone()
            } else {
                Value::Array(merge_list(w, &lt, l, r))
            }
        }
        _ => rhs.clone(),
    }
}

/// structured-merge-diff's list merge: RHS items in RHS order, LHS-only items kept in place.
fn merge_list(w: &mut Walk<'_>, lt: &ListType, lhs: &[Value], rhs: &[Value]) -> Vec<Value> {
    let lpes: Vec<String> = lhs
        .iter()
        .enumerate()
        .map(|(i, v)| item_pe(lt, v, i))
        .collect();
    let rpes: Vec<String> = rhs
        .iter()
        .enumerate()
        .map(|(i, v)| item_pe(lt, v, i))
        .collect();
    let in_r = |pe: &String| rpes.iter().position(|p| p == pe);
    let in_l = |pe: &String| lpes.iter().position(|p| p == pe);
    let mut shared: std::collections::VecDeque<&String> =
        rpes.iter().filter(|pe| in_l(pe).is_some()).collect();
    let mut next_shared = shared.pop_front();
    let mut merged_r: Vec<&String> = Vec::new();
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let (mut li, mut ri) = (0, 0);
    while li < lhs.len() || ri < rhs.len() {
        if li < lhs.len() && ri < rhs.len() {
            if lpes[li] == rpes[ri] {
                merged_r.push(&rpes[ri]);
                out.push(merge_walk(w, Some(&lhs[li]), &rhs[ri]));
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if in_r(&lpes[li]).is_some() && next_shared.is_some_and(|s| *s != lpes[li]) {
                li += 1;
                continue;
            }
        }
        if li < lhs.len() {
            if in_r(&lpes[li]).is_none() {
                out.push(lhs[li].clone());
                li += 1;
                continue;
            } else if merged_r.contains(&&lpes[li]) {
                li += 1;
                continue;
            }
        }
        if ri < rhs.len() {
            let pe = &rpes[ri];
            merged_r.push(pe);
            let l = in_l(pe).map(|i| &lhs[i]);
            out.push(merge_walk(w, l, &rhs[ri]));
            ri += 1;
            if next_shared.is_some_and(|s| s == pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    out
}

/// Added, modified and removed paths between two objects (`Compare`).
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

/// `Compare` of two objects; `metadata.managedFields` is skipped (it is never owned), so callers
/// need not copy the objects without it.
pub(crate) fn compare(lhs: &Value, rhs: &Value, types: &dyn ListTypes) -> Comparison {
    compare_with(lhs, rhs, types, true)
}

/// [`compare`]; `whole_subtrees: false` walks a one-sided subtree leaf by leaf (the reference).
pub(crate) fn compare_with(
    lhs: &Value,
    rhs: &Value,
    types: &dyn ListTypes,
    whole_subtrees: bool,
) -> Comparison {
    let mut c = Comparison::default();
    let mut w = Walk::new(types);
    w.whole_subtrees = whole_subtrees;
    compare_walk(&mut w, Some(lhs), Some(rhs), &mut c);
    c
}

/// The members below a node only one side of a comparison has (`v`, at the walk's path), as
/// [`compare_walk`] finds them with nothing on the other side: every object member (but
/// `metadata.managedFields`), every item of an associative list (the first of equal path
/// elements); atomic maps, atomic or empty lists and empty objects have none.
fn one_sided(w: &mut Walk<'_>, v: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    match v {
        Value::Object(map) if !map.is_empty() && !w.map_atomic() => {
            let in_metadata = matches!(w.names.as_slice(), [m] if m == "metadata");
            for (k, child) in map {
                if in_metadata && k == "managedFields" {
                    continue;
                }
                w.names.push(k.clone());
                let mut below = one_sided(w, child);
                w.names.pop();
                below.set_member(true);
                set.insert_child_once(field_pe(k), below);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let lt = w.list_type();
            if lt == ListType::Atomic {
                return set;
            }
            for (i, item) in items.iter().enumerate() {
                let pe = item_pe(&lt, item, i);
                if set.child(&pe).is_some() {
                    continue;
                }
                let mut below = one_sided(w, item);
                below.set_member(true);
                set.insert_child_once(pe, below);
            }
        }
        _ => {}
    }
    set
}

fn empty_container(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

fn leaf(w: &Walk<'_>, lhs: Option<&Value>, rhs: Option<&Value>, c: &mut Comparison) {
    match (lhs, rhs) {
        (None, Some(_)) => c.added.insert(&w.pes),
        (Some(_), None) => c.removed.insert(&w.pes),
        (Some(l), Some(r)) if !structural_eq(l, r) => c.modified.insert(&w.pes),
        _ => {}
    }
}

fn compare_walk(w: &mut Walk<'_>, lhs: Option<&Value>, rhs: Option<&Value>, c: &mut Comparison) {
    if w.whole_subtrees && !w.pes.is_empty() {
        match (lhs, rhs) {
            (None, Some(v)) => {
                let below = one_sided(w, v);
                c.added.graft(&w.pes, below);
                return;
            }
            (Some(v), None) => {
                let below = one_sided(w, v);
                c.removed.graft(&w.pes, below);
                return;
            }
            _ => {}
        }
    }
    let is_obj = |v: Option<&Value>| v.is_none_or(|v| v.is_object() || v.is_null());
    let is_arr = |v: Option<&Value>| v.is_none_or(|v| v.is_array() || v.is_null());
    let any_obj = lhs.is_some_and(Value::is_object) || rhs.is_some_and(Value::is_object);
    let any_arr = lhs.is_some_and(Value::is_array) || rhs.is_some_and(Value::is_array);
    if any_obj && is_obj(lhs) && is_obj(rhs) {
        if w.map_atomic() || (empty_container(lhs) && empty_container(rhs)) {
            leaf(w, lhs, rhs, c);
            return;
        }
        let empty = Map::new();
        let l = lhs.and_then(Value::as_object).unwrap_or(&empty);
        let r = rhs.and_then(Value::as_object).unwrap_or(&empty);
        let mut keys: Vec<&String> = l.keys().chain(r.keys()).collect();
        keys.sort();
        keys.dedup();
        // Nobody owns managedFields (`stripMetaManager`): never walk them.
        let in_metadata = matches!(w.names.as_slice(), [m] if m == "metadata");
        for k in keys {
            if in_metadata && k == "managedFields" {
                continue;
            }
            let (lv, rv) = (l.get(k), r.get(k));
            // Equal on both sides: nothing added, modified or removed below.
            if lv.zip(rv).is_some_and(|(a, b)| structural_eq(a, b)) {
                continue;
            }
            w.names.push(k.clone());
            w.pes.push(field_pe(k));
            compare_walk(w, lv, rv, c);
            w.pes.pop();
            w.names.pop();
        }
        container_added_removed(w, lhs, rhs, c);
    } else if any_arr && is_arr(lhs) && is_arr(rhs) {
        let lt = w.list_type();
        if lt == ListType::Atomic || (empty_container(lhs) && empty_container(rhs)) {
            leaf(w, lhs, rhs, c);
            return;
        }
        let empty = Vec::new();
        let l = lhs.and_then(Value::as_array).unwrap_or(&empty);
        let r = rhs.and_then(Value::as_array).unwrap_or(&empty);
        let lpes: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(i, v)| item_pe(&lt, v, i))
            .collect();
        let rpes: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, v)| item_pe(&lt, v, i))
            .collect();
        let mut all: Vec<&String> = Vec::new();
        for pe in lpes.iter().chain(rpes.iter()) {
            if !all.contains(&pe) {
                all.push(pe);
            }
        }
        for pe in all {
            let li = lpes.iter().position(|p| p == pe).map(|i| &l[i]);
            let ri = rpes.iter().position(|p| p == pe).map(|i| &r[i]);
            if li.zip(ri).is_some_and(|(a, b)| structural_eq(a, b)) {
                continue;
            }
            w.pes.push(pe.clone());
            compare_walk(w, li, ri, c);
            w.pes.pop();
        }
        container_added_removed(w, lhs, rhs, c);
    } else {
        leaf(w, lhs, rhs, c);
    }
}

fn container_added_removed(
    w: &Walk<'_>,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    c: &mut Comparison,
) {
    if lhs.is_none() {
        c.added.insert(&w.pes);
    } else if rhs.is_none() {
        c.removed.insert(&w.pes);
    }
}

/// Removes every member of `set` (with its subtree) from the value (`RemoveItems`).
pub(crate) fn remove_items(v: &Value, set: &FieldSet, types: &dyn ListTypes) -> Value {
    let mut w = Walk::new(types);
    remove_walk(&mut w, v, set)
}

fn remove_walk(w: &mut Walk<'_>, v: &Value, set: &FieldSet) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, child) in map {
                match set.child(&field_pe(k)) {
                    Some(s) if s.is_member() => {}
                    Some(s) => {
                        w.names.push(k.clone());
                        out.insert(k.clone(), remove_walk(w, child, s));
                        w.names.pop();
                    }
                    None => {
                        out.insert(k.clone(), child.clone());
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let lt = w.list_type();
            if lt == ListType::Atomic {
                return v.clone();
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match set.child(&item_pe(&lt, item, i)) {
                    Some(s) if s.is_member() => {}
                    Some(s) => out.push(remove_walk(w, item, s)),
                    None => out.push(item.clone()),
                }
            }
            Value::Array(out)
        }
        other => other.clone(),
    }
}
