//! `fieldpath.Set` of structured-merge-diff: a tree of path elements (`f:name`, `k:{"name":"x"}`,
//! `v:"value"`, `i:0`) whose nodes may themselves be members (`.` in `FieldsV1`).

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The `FieldsV1` marker of a node that is itself a member of the set.
const SELF: &str = ".";

/// A set of field paths. The root node is never a member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    pub fn new() -> Self {
        FieldSet::default()
    }

    /// Adds a path (a sequence of path elements). The empty path is ignored.
    pub fn insert(&mut self, path: &[String]) {
        self.at_first(path, |child, rest| {
            if rest.is_empty() {
                child.member = true;
            } else {
                child.insert(rest);
            }
        });
    }

    /// Calls `then` with the child under `path`'s first element (made if missing) and the rest
    /// of `path`. The empty path is ignored.
    fn at_first(&mut self, path: &[String], then: impl FnOnce(&mut FieldSet, &[String])) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        // The key is copied only when the node is new (most inserts share their prefix).
        if !self.children.contains_key(first) {
            self.children.insert(first.clone(), FieldSet::default());
        }
        if let Some(child) = self.children.get_mut(first) {
            then(child, rest);
        }
    }

    /// Whether `path` is a member.
    pub fn has(&self, path: &[String]) -> bool {
        match path.split_first() {
            None => false,
            Some((first, rest)) => match self.children.get(first) {
                None => false,
                Some(c) if rest.is_empty() => c.member,
                Some(c) => c.has(rest),
            },
        }
    }

    /// The node under a path element, if any.
    pub fn child(&self, pe: &str) -> Option<&FieldSet> {
        self.children.get(pe)
    }

    /// Whether this node is a member of its parent's set.
    pub fn is_member(&self) -> bool {
        self.member
    }

    pub(crate) fn set_member(&mut self, member: bool) {
        self.member = member;
    }

    pub(crate) fn child_mut(&mut self, pe: &str) -> &mut FieldSet {
        self.children.entry(pe.to_string()).or_default()
    }

    pub(crate) fn children(&self) -> impl Iterator<Item = (&String, &FieldSet)> {
        self.children.iter()
    }

    /// Adds a child node unless there is one under `pe` already (which is kept).
    pub(crate) fn insert_child_once(&mut self, pe: String, child: FieldSet) -> bool {
        match self.children.entry(pe) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(child);
                true
            }
            std::collections::btree_map::Entry::Occupied(_) => false,
        }
    }

    /// Adds `path` as a member and the members of `below` under it: the same set as inserting
    /// `path` and each of `below`'s member paths prefixed with it. The empty path is ignored.
    pub(crate) fn graft(&mut self, path: &[String], below: FieldSet) {
        self.at_first(path, |child, rest| {
            if !rest.is_empty() {
                child.graft(rest, below);
                return;
            }
            child.member = true;
            if child.children.is_empty() {
                child.children = below.children;
                return;
            }
            for (k, c) in below.children {
                let merged = match child.children.remove(&k) {
                    Some(mine) => mine.union(&c),
                    None => c,
                };
                child.children.insert(k, merged);
            }
        });
    }

    /// No member anywhere.
    pub fn is_empty(&self) -> bool {
        self.children.values().all(|c| !c.member && c.is_empty())
    }

    fn prune_empty(&mut self) {
        self.children.retain(|_, c| {
            c.prune_empty();
            c.member || !c.children.is_empty()
        });
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.member |= other.member;
        for (k, c) in &other.children {
            let merged = match out.children.get(k) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(k.clone(), merged);
        }
        out
    }

    /// Members of `self` that are not members of `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.difference_inner(other);
        out.prune_empty();
        out
    }

    fn difference_inner(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            let d = match other.children.get(k) {
                Some(o) => c.difference_inner(o),
                None => c.clone(),
            };
            out.children.insert(k.clone(), d);
        }
        out
    }

    /// Members of both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.intersection_inner(other);
        out.prune_empty();
        out
    }

    fn intersection_inner(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            if let Some(o) = other.children.get(k) {
                out.children.insert(k.clone(), c.intersection_inner(o));
            }
        }
        out
    }

    /// Members of `self` that neither are nor lie under a member of `other`.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            match other.children.get(k) {
                Some(o) if o.member => {}
                Some(o) => {
                    out.children.insert(k.clone(), c.recursive_difference(o));
                }
                None => {
                    out.children.insert(k.clone(), c.clone());
                }
            }
        }
        out.prune_empty();
        out
    }

    /// All member paths, in order.
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect(&mut prefix, &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        for (k, c) in &self.children {
            prefix.push(k.clone());
            if c.member {
                out.push(prefix.clone());
            }
            c.collect(prefix, out);
            prefix.pop();
        }
    }

    /// The `fieldsV1` JSON of the set.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(SELF.to_string(), Value::Object(Map::new()));
        }
        for (k, c) in &self.children {
            map.insert(k.clone(), c.to_fields_v1());
        }
        Value::Object(map)
    }

    /// Parses `fieldsV1` JSON; anything that is not an object yields the empty set.
    pub fn from_fields_v1(v: &Value) -> FieldSet {
        let mut root = FieldSet::default();
        if let Value::Object(map) = v {
            root.fill(map);
        }
        root
    }

    fn fill(&mut self, map: &Map<String, Value>) {
        for (k, v) in map {
            if k == SELF {
                continue;
            }
            let child = self.children.entry(k.clone()).or_default();
            match v {
                Value::Object(inner) if !inner.is_empty() => {
                    child.member = inner.contains_key(SELF);
                    child.fill(inner);
                }
                _ => child.member = true,
            }
        }
    }
}

/// `fieldpath.Path.String()`: `.spec.containers[name="main"].image`, `.metadata.finalizers[="x"]`.
pub fn path_string(path: &[String]) -> String {
    let mut out = String::new();
    for pe in path {
        if let Some(name) = pe.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = pe.strip_prefix("k:") {
            let fields: Vec<String> = match serde_json::from_str::<Value>(key) {
                Ok(Value::Object(m)) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                _ => vec![key.to_string()],
            };
            out.push('[');
            out.push_str(&fields.join(","));
            out.push(']');
        } else if let Some(v) = pe.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        } else if let Some(i) = pe.strip_prefix("i:") {
            out.push_str(&format!("[{i}]"));
        } else {
            out.push_str(pe);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fields_v1_round_trips_with_self_markers() {
        let v = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"main\"}": {".": {}, "f:image": {}, "f:name": {}}}}
        });
        let s = FieldSet::from_fields_v1(&v);
        assert!(s.has(&p(&["f:metadata", "f:labels"])));
        assert!(s.has(&p(&["f:metadata", "f:labels", "f:app"])));
        assert!(!s.has(&p(&["f:metadata"])));
        assert!(s.has(&p(&[
            "f:spec",
            "f:containers",
            "k:{\"name\":\"main\"}",
            "f:image"
        ])));
        assert_eq!(s.to_fields_v1(), v);
    }

    #[test]
    fn set_algebra() {
        let mut a = FieldSet::new();
        a.insert(&p(&["f:spec", "f:a"]));
        a.insert(&p(&["f:spec", "f:b"]));
        let mut b = FieldSet::new();
        b.insert(&p(&["f:spec", "f:b"]));
        b.insert(&p(&["f:spec", "f:c"]));
        assert_eq!(a.difference(&b).paths(), vec![p(&["f:spec", "f:a"])]);
        assert_eq!(a.intersection(&b).paths(), vec![p(&["f:spec", "f:b"])]);
        assert_eq!(a.union(&b).paths().len(), 3);
        assert!(a.difference(&a).is_empty());
        let mut prefix = FieldSet::new();
        prefix.insert(&p(&["f:spec"]));
        assert!(a.recursive_difference(&prefix).is_empty());
    }

    #[test]
    fn paths_render_like_structured_merge_diff() {
        assert_eq!(path_string(&p(&["f:spec", "f:replicas"])), ".spec.replicas");
        assert_eq!(
            path_string(&p(&[
                "f:spec",
                "f:containers",
                "k:{\"name\":\"main\"}",
                "f:image"
            ])),
            ".spec.containers[name=\"main\"].image"
        );
        assert_eq!(
            path_string(&p(&["f:metadata", "f:finalizers", "v:\"x\""])),
            ".metadata.finalizers[=\"x\"]"
        );
        assert_eq!(
            path_string(&p(&[
                "f:ports",
                "k:{\"containerPort\":80,\"protocol\":\"TCP\"}"
            ])),
            ".ports[containerPort=80,protocol=\"TCP\"]"
        );
    }
}
