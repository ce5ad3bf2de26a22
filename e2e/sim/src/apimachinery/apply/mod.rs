//! Server-side apply and `metadata.managedFields`, with structured-merge-diff semantics.
//!
//! Every write records who owns which fields:
//! - [`server_side_apply`] (PATCH `application/apply-patch+yaml`): the applied configuration is
//!   merged into the live object; the manager's `Apply` entry becomes exactly the fields of the
//!   configuration; fields it applied last time and no longer applies are removed unless another
//!   manager owns them; a field another manager owns with a different value is a conflict (409,
//!   [`conflict_status`]) unless `force`, which takes it over.
//! - [`track_update`] (create, update, and the other patch types): the manager's `Update` entry
//!   takes the fields the write added or changed, and other managers lose them.
//!
//! Managers are identified as kube-apiserver identifies them: `(manager, operation, subresource)`,
//! plus `apiVersion` for `Update` entries. Entries are sorted as the API server sorts them
//! (operation, time, manager, apiVersion, subresource). Type metadata (`apiVersion`, `kind`) and
//! server-owned metadata are never owned. An object without managed fields that gets applied to is
//! first attributed to `before-first-apply`.

pub mod fieldset;
mod typed;

use crate::apimachinery::builtin::BuiltinKind;
use crate::apimachinery::gofmt;
use crate::apimachinery::validation::CompiledSchema;
pub use crate::apimachinery::validation::ListType;
use fieldset::{path_string, FieldSet};
use serde_json::{json, Map, Value};

pub use fieldset::path_string as field_path_string;

/// Operation of a managed fields entry.
pub const OPERATION_APPLY: &str = "Apply";
pub const OPERATION_UPDATE: &str = "Update";
/// The only `fieldsType` there is.
pub const FIELDS_TYPE_V1: &str = "FieldsV1";
/// The manager that owns an object's fields when it is first applied to without managed fields.
pub const BEFORE_FIRST_APPLY_MANAGER: &str = "before-first-apply";

/// Type information server-side apply needs: how lists merge, which maps are atomic, and which
/// objects are maps (`map[string]X`) rather than structs. Paths are field names from the root.
pub trait ListTypes {
    fn list_type(&self, path: &[String]) -> ListType;

    /// `x-kubernetes-map-type: atomic` (or `structType=atomic`): replaced whole.
    fn map_is_atomic(&self, _path: &[String]) -> bool {
        false
    }

    /// Whether the object at `path` is a map whose entries are owned individually as members.
    fn is_map(&self, path: &[String]) -> bool {
        object_meta_is_map(path)
    }
}

/// `metadata` is an `ObjectMeta` whatever the kind: its merge rules, for every type.
fn object_meta_list_type(path: &[String]) -> Option<ListType> {
    match path {
        [m, f] if m == "metadata" && f == "finalizers" => Some(ListType::Set),
        [m, f] if m == "metadata" && f == "ownerReferences" => Some(ListType::Map {
            keys: vec!["uid".to_string()],
        }),
        [m, ..] if m == "metadata" => Some(ListType::Atomic),
        _ => None,
    }
}

fn object_meta_is_map(path: &[String]) -> bool {
    matches!(path, [m, f] if m == "metadata" && (f == "labels" || f == "annotations"))
}

impl ListTypes for CompiledSchema {
    fn list_type(&self, path: &[String]) -> ListType {
        if let Some(lt) = object_meta_list_type(path) {
            return lt;
        }
        self.list_type_of(path)
    }

    fn map_is_atomic(&self, path: &[String]) -> bool {
        self.map_is_atomic_of(path)
    }

    fn is_map(&self, path: &[String]) -> bool {
        object_meta_is_map(path) || self.is_map_of(path)
    }
}

/// Map-typed fields of built-in kinds (`map[string]X`).
const BUILTIN_MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "data",
    "binaryData",
    "stringData",
    "nodeSelector",
    "capacity",
    "allocatable",
    "limits",
    "requests",
    "matchLabels",
    "selector",
    "hard",
    "used",
    "overhead",
];

impl ListTypes for BuiltinKind {
    fn list_type(&self, path: &[String]) -> ListType {
        match self.field(path) {
            Some(f) => f.list_type.clone(),
            None => object_meta_list_type(path).unwrap_or_default(),
        }
    }

    fn map_is_atomic(&self, path: &[String]) -> bool {
        self.field(path).is_some_and(|f| f.map_atomic)
    }

    fn is_map(&self, path: &[String]) -> bool {
        path.last()
            .is_some_and(|l| BUILTIN_MAP_FIELDS.contains(&l.as_str()))
            && !self.map_is_atomic(path)
    }
}

/// Type information for objects nobody described: lists atomic, objects granular structs
/// (structured-merge-diff's deduced type), `ObjectMeta` rules for `metadata`.
pub struct Untyped;

impl ListTypes for Untyped {
    fn list_type(&self, path: &[String]) -> ListType {
        object_meta_list_type(path).unwrap_or_default()
    }
}

/// A server-side apply refused because of fields other managers own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyConflict {
    /// `(manager as the API server prints it, field path)`, e.g.
    /// `("\"kubectl\" using apps/v1", ".spec.replicas")`.
    pub conflicts: Vec<(String, String)>,
}

impl ApplyConflict {
    /// `Apply failed with 1 conflict: conflict with "m": .spec.x` (grouped by manager when several).
    pub fn message(&self) -> String {
        if let [(manager, path)] = self.conflicts.as_slice() {
            return format!("Apply failed with 1 conflict: conflict with {manager}: {path}");
        }
        let mut managers: Vec<&String> = self.conflicts.iter().map(|(m, _)| m).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for m in managers {
            lines.push(format!("conflicts with {m}:"));
            for (_, p) in self.conflicts.iter().filter(|(cm, _)| cm == m) {
                lines.push(format!("- {p}"));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.conflicts.len(),
            lines.join("\n")
        )
    }
}

impl std::fmt::Display for ApplyConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ApplyConflict {}

/// The 409 body of a refused apply (`errors.NewApplyConflict`): reason `Conflict`, one
/// `FieldManagerConflict` cause per field. Like the API server, the details name no object; the
/// group, kind and name are accepted for symmetry with the other status builders.
pub fn conflict_status(conflicts: &ApplyConflict, _group: &str, _kind: &str, _name: &str) -> Value {
    let causes: Vec<Value> = conflicts
        .conflicts
        .iter()
        .map(|(m, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": p}))
        .collect();
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": conflicts.message(),
        "reason": "Conflict",
        "details": {"causes": causes},
        "code": 409,
    })
}

/// Fields a write may not own: paths whose subtree the API server resets (e.g. `status` on the
/// main resource of a kind with a status subresource, `spec` on `/status`).
#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    pub ignored_fields: Vec<Vec<String>>,
}

impl ApplyOptions {
    /// The reset fields kube-apiserver uses for custom resources: `status` on the main resource
    /// when the status subresource is enabled, `spec` on `/status`.
    pub fn reset_fields(subresource: Option<&str>, has_status_subresource: bool) -> Self {
        let ignored = match subresource {
            Some("status") => vec![vec!["spec".to_string()]],
            None if has_status_subresource => vec![vec!["status".to_string()]],
            _ => Vec::new(),
        };
        ApplyOptions {
            ignored_fields: ignored,
        }
    }

    fn ignored_set(&self) -> FieldSet {
        let mut s = FieldSet::new();
        for p in &self.ignored_fields {
            let pes: Vec<String> = p.iter().map(|n| typed::field_pe(n)).collect();
            s.insert(&pes);
        }
        s
    }
}

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: String,
    fields: FieldSet,
}

impl Entry {
    fn same_identity(
        &self,
        manager: &str,
        operation: &str,
        api_version: &str,
        subresource: &str,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == subresource
            && (operation == OPERATION_APPLY || self.api_version == api_version)
    }

    /// `printManager` of the entry's identifier (no time: identifiers carry none).
    fn display(&self) -> String {
        let mut s = gofmt::quote(&self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {}", gofmt::quote(&self.subresource));
        }
        if self.operation == OPERATION_UPDATE {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!(FIELDS_TYPE_V1));
        m.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m)
    }

    fn from_json(v: &Value) -> Option<Entry> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Entry {
            manager: s("manager").unwrap_or_default(),
            operation: s("operation")?,
            api_version: s("apiVersion").unwrap_or_default(),
            time: s("time"),
            subresource: s("subresource").unwrap_or_default(),
            fields: FieldSet::from_fields_v1(v.get("fieldsV1").unwrap_or(&Value::Null)),
        })
    }
}

fn decode_managed_fields(obj: Option<&Value>) -> Vec<Entry> {
    obj.and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter_map(Entry::from_json)
                .filter(|e| !e.fields.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn seconds(t: &Option<String>) -> i64 {
    t.as_deref()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map(|ts| ts.as_second())
        .unwrap_or(0)
}

/// Writes the entries into `metadata.managedFields`, sorted as the API server sorts them.
fn encode_managed_fields(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|p, q| {
        p.operation
            .cmp(&q.operation)
            .then(seconds(&p.time).cmp(&seconds(&q.time)))
            .then(p.manager.cmp(&q.manager))
            .then(p.api_version.cmp(&q.api_version))
            .then(p.subresource.cmp(&q.subresource))
    });
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::to_json).collect()),
        );
    }
}

/// The object without `metadata.managedFields`.
fn without_managed_fields(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    o
}

/// Paths nobody owns (`stripMetaManager`): type meta and server-managed metadata.
fn strip_set() -> &'static FieldSet {
    static STRIP: std::sync::OnceLock<FieldSet> = std::sync::OnceLock::new();
    STRIP.get_or_init(build_strip_set)
}

fn build_strip_set() -> FieldSet {
    let mut s = FieldSet::new();
    for p in [
        &["apiVersion"][..],
        &["kind"],
        &["metadata"],
        &["metadata", "name"],
        &["metadata", "namespace"],
        &["metadata", "creationTimestamp"],
        &["metadata", "selfLink"],
        &["metadata", "uid"],
        &["metadata", "clusterName"],
        &["metadata", "generation"],
        &["metadata", "managedFields"],
        &["metadata", "resourceVersion"],
    ] {
        let pes: Vec<String> = p.iter().map(|n| typed::field_pe(n)).collect();
        s.insert(&pes);
    }
    s
}

fn api_version_of(obj: &Value) -> String {
    obj.get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Conflicts of `others` with a change, and removal of changed/removed fields from them
/// (structured-merge-diff's `update`).
fn settle_other_managers(
    entries: &mut [Entry],
    acting: &dyn Fn(&Entry) -> bool,
    cmp: &typed::Comparison,
    force: bool,
) -> Result<(), ApplyConflict> {
    let changed = cmp.modified.union(&cmp.added);
    let mut conflicts = Vec::new();
    for e in entries.iter().filter(|e| !acting(e)) {
        let clash = e.fields.intersection(&changed);
        for p in clash.paths() {
            conflicts.push((e.display(), path_string(&p)));
        }
    }
    if !force && !conflicts.is_empty() {
        return Err(ApplyConflict { conflicts });
    }
    for e in entries.iter_mut().filter(|e| !acting(e)) {
        e.fields = e.fields.difference(&changed).difference(&cmp.removed);
    }
    Ok(())
}

/// Server-side apply of `applied` (the configuration a manager sends) onto `live` (`None` on
/// create). Returns the new object with `metadata.managedFields`, or the conflicts.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    schema: &dyn ListTypes,
    now_rfc3339: &str,
    subresource: Option<&str>,
) -> Result<Value, ApplyConflict> {
    server_side_apply_with(
        live,
        applied,
        manager,
        force,
        schema,
        now_rfc3339,
        subresource,
        &ApplyOptions::default(),
    )
}

/// [`server_side_apply`] with fields the write may not own (see [`ApplyOptions`]).
#[allow(clippy::too_many_arguments)]
pub fn server_side_apply_with(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    schema: &dyn ListTypes,
    now_rfc3339: &str,
    subresource: Option<&str>,
    options: &ApplyOptions,
) -> Result<Value, ApplyConflict> {
    let subresource = subresource.unwrap_or_default();
    let live_obj = live
        .map(without_managed_fields)
        .unwrap_or_else(|| json!({}));
    let config = without_managed_fields(applied);
    let api_version = api_version_of(&config);
    let ignored = options.ignored_set();
    let strip = strip_set();

    let mut entries = decode_managed_fields(live);
    if live.is_some() && entries.is_empty() {
        let fields = typed::to_field_set(&live_obj, schema)
            .difference(strip)
            .recursive_difference(&ignored);
        entries.push(Entry {
            manager: BEFORE_FIRST_APPLY_MANAGER.to_string(),
            operation: OPERATION_UPDATE.to_string(),
            api_version: api_version_of(&live_obj),
            time: None,
            subresource: String::new(),
            fields,
        });
    }

    let config_set = typed::to_field_set(&config, schema)
        .difference(strip)
        .recursive_difference(&ignored);
    // Merged into nothing, the configuration is the object.
    let merged = match live {
        Some(_) => typed::merge(&live_obj, &config, schema),
        None => config,
    };
    let is_me = |e: &Entry| e.same_identity(manager, OPERATION_APPLY, &api_version, subresource);
    let last_set = entries.iter().find(|e| is_me(e)).map(|e| e.fields.clone());
    let previous_time = entries
        .iter()
        .find(|e| is_me(e))
        .and_then(|e| e.time.clone());
    entries.retain(|e| !is_me(e));
    entries.push(Entry {
        manager: manager.to_string(),
        operation: OPERATION_APPLY.to_string(),
        api_version: api_version.clone(),
        time: previous_time,
        subresource: subresource.to_string(),
        fields: config_set,
    });

    let new_obj = match &last_set {
        Some(last) if !last.is_empty() => prune(&merged, &entries, last, schema),
        _ => merged,
    };

    // Other managers lose (or conflict on) what changed; with none, there is nothing to compare.
    if entries.iter().any(|e| !is_me(e)) {
        let cmp = typed::compare(&live_obj, &new_obj, schema);
        settle_other_managers(&mut entries, &is_me, &cmp, force)?;
    }

    let changed = !crate::apimachinery::structural_eq(&live_obj, &new_obj);
    if let Some(me) = entries.iter_mut().find(|e| is_me(e)) {
        if changed || me.time.is_none() {
            me.time = Some(now_rfc3339.to_string());
        }
    }
    let mut out = new_obj;
    encode_managed_fields(&mut out, entries);
    Ok(out)
}

/// Removes what the manager applied last time and no longer applies, unless someone owns it
/// (`Updater.prune` with `addBackOwnedItems` and `addBackDanglingItems`).
fn prune(merged: &Value, entries: &[Entry], last: &FieldSet, schema: &dyn ListTypes) -> Value {
    let named = |s: &FieldSet| typed::ensure_named_fields_are_members(s, schema);
    let last_n = named(last);
    let pruned = typed::remove_items(merged, &last_n, schema);
    let managed = entries
        .iter()
        .fold(FieldSet::new(), |acc, e| acc.union(&e.fields));
    let merged_set = named(&typed::to_field_set(merged, schema));
    let pruned_set = named(&typed::to_field_set(&pruned, schema));
    let keep = pruned_set.union(&named(&managed));
    let pruned = typed::remove_items(merged, &merged_set.difference(&keep), schema);
    let pruned_set = named(&typed::to_field_set(&pruned, schema));
    typed::remove_items(
        merged,
        &merged_set.difference(&pruned_set).intersection(&last_n),
        schema,
    )
}

/// Records an ordinary write (create, update, JSON/merge/strategic patch) in
/// `new.metadata.managedFields`: `manager`'s `Update` entry gains the fields the write added or
/// changed, other managers lose them and the removed ones. `old` is `None` on create. Managed
/// fields sent in `new` replace the live ones (clients may edit them; `[{}]` clears them), except
/// on subresources; when `new` carries none, the live ones are kept.
pub fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    now_rfc3339: &str,
    subresource: Option<&str>,
    schema: &dyn ListTypes,
) {
    track_update_with(
        old,
        new,
        manager,
        now_rfc3339,
        subresource,
        schema,
        &ApplyOptions::default(),
    );
}

/// [`track_update`] with fields the write may not own (see [`ApplyOptions`]).
///
/// Entries the write does not touch (neither the manager's own entry gaining fields nor one that
/// owns a changed or removed field) are kept as they were stored instead of being decoded and
/// encoded again: the same JSON, since every stored entry was encoded by [`Entry::to_json`]
/// ([`canonical_entry`] checks it; any other entry goes the decoding way, as before). Stored
/// entries the write does touch are edited in place ([`fields_v1_difference`],
/// [`fields_v1_union`]): the JSON decoding, settling and encoding them gives. A create that
/// starts from no entries writes its one entry straight from the object
/// ([`created_fields_v1`]): the fields comparing it with nothing gives.
pub fn track_update_with(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    now_rfc3339: &str,
    subresource: Option<&str>,
    schema: &dyn ListTypes,
    options: &ApplyOptions,
) {
    track_update_impl(
        old,
        new,
        manager,
        now_rfc3339,
        subresource,
        schema,
        options,
        true,
    );
}

/// [`track_update_with`]; `short_cuts: false` takes the general way every time (decoding every
/// touched entry, comparing a new object with nothing): the reference the short cuts are tested
/// against.
#[allow(clippy::too_many_arguments)]
fn track_update_impl(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    now_rfc3339: &str,
    subresource: Option<&str>,
    schema: &dyn ListTypes,
    options: &ApplyOptions,
    short_cuts: bool,
) {
    let subresource = subresource.unwrap_or_default();
    // A client may rewrite managed fields (`[{}]` clears them); none sent means "keep".
    let sent = new
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("managedFields"));
    let sent_any = sent
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let live = old.and_then(|o| o.pointer("/metadata/managedFields"));
    // The entries the write starts from, moved out of `new` when they are those (the subresource
    // rules copy the live metadata, a patch starts from the live object).
    let source: Vec<Value> = match sent {
        Some(Value::Array(a)) if sent_any && subresource.is_empty() => a,
        Some(Value::Array(a)) if live.is_some_and(|l| l.as_array() == Some(&a)) => a,
        _ => live.and_then(Value::as_array).cloned().unwrap_or_default(),
    };
    let api_version = api_version_of(new);
    let strip = strip_set();
    let ignored = options.ignored_set();

    if short_cuts && old.is_none() && source.is_empty() {
        // A create: every field of the object is added, nobody else owns anything.
        let fields = created_fields_v1(new, schema, strip, &ignored);
        let entry = (!fields.is_empty()).then(|| {
            let mut m = Map::new();
            m.insert("manager".into(), json!(manager));
            m.insert("operation".into(), json!(OPERATION_UPDATE));
            m.insert("apiVersion".into(), json!(api_version));
            m.insert("time".into(), json!(now_rfc3339));
            m.insert("fieldsType".into(), json!(FIELDS_TYPE_V1));
            m.insert("fieldsV1".into(), Value::Object(fields));
            if !subresource.is_empty() {
                m.insert("subresource".into(), json!(subresource));
            }
            Value::Object(m)
        });
        set_managed_fields(new, entry.map(|e| vec![e]));
        return;
    }

    let empty = json!({});
    // `compare` skips managedFields itself: no copies of the objects without them.
    let mut cmp = typed::compare(old.unwrap_or(&empty), new, schema);
    cmp.added = cmp.added.difference(strip).recursive_difference(&ignored);
    cmp.modified = cmp
        .modified
        .difference(strip)
        .recursive_difference(&ignored);
    cmp.removed = cmp.removed.difference(strip).recursive_difference(&ignored);
    let taken = cmp.modified.union(&cmp.added);
    let lost = taken.union(&cmp.removed);

    // Every manager loses what the write changed or removed (force-settled against a fresh
    // "current operation" manager), then the manager's own entry takes what it changed.
    let is_me = |e: &Entry| e.same_identity(manager, OPERATION_UPDATE, &api_version, subresource);
    let mut entries: Vec<Tracked> = Vec::with_capacity(source.len() + 1);
    for mut raw in source {
        if canonical_entry(&raw) {
            let fields = raw.get("fieldsV1").and_then(Value::as_object);
            if fields.is_some_and(Map::is_empty) {
                // An entry that owns nothing is dropped (decoded, it has no fields).
                continue;
            }
            let me = Tracked::raw_identity(&raw, manager, &api_version, subresource);
            let untouched = (!me || taken.is_empty())
                && !fields.is_some_and(|f| fields_v1_intersects(f, &lost));
            if untouched {
                entries.push(Tracked::raw(raw));
                continue;
            }
            if short_cuts {
                if let Some(f) = raw.get_mut("fieldsV1").and_then(Value::as_object_mut) {
                    fields_v1_difference(f, &taken);
                    fields_v1_difference(f, &cmp.removed);
                }
                entries.push(Tracked::raw(raw));
                continue;
            }
        }
        let Some(mut e) = Entry::from_json(&raw) else {
            continue;
        };
        if e.fields.is_empty() {
            continue;
        }
        e.fields = e.fields.difference(&taken).difference(&cmp.removed);
        entries.push(Tracked::decoded(e));
    }
    if !taken.is_empty() {
        let mine = entries.iter_mut().find(|t| match &t.body {
            Body::Decoded(e) => is_me(e),
            Body::Raw(v) => Tracked::raw_identity(v, manager, &api_version, subresource),
        });
        match mine {
            Some(t) => {
                match &mut t.body {
                    Body::Decoded(me) => {
                        me.fields = me.fields.union(&taken);
                        me.time = Some(now_rfc3339.to_string());
                    }
                    Body::Raw(v) => {
                        if let Some(f) = v.get_mut("fieldsV1").and_then(Value::as_object_mut) {
                            fields_v1_union(f, &taken);
                        }
                        if let Some(m) = v.as_object_mut() {
                            m.insert("time".into(), json!(now_rfc3339));
                        }
                    }
                }
                t.secs = seconds(&Some(now_rfc3339.to_string()));
            }
            None => entries.push(Tracked::decoded(Entry {
                manager: manager.to_string(),
                operation: OPERATION_UPDATE.to_string(),
                api_version,
                time: Some(now_rfc3339.to_string()),
                subresource: subresource.to_string(),
                fields: taken,
            })),
        }
    }
    entries.retain(|t| match &t.body {
        Body::Raw(v) => v
            .get("fieldsV1")
            .and_then(Value::as_object)
            .is_some_and(|f| !f.is_empty()),
        Body::Decoded(e) => !e.fields.is_empty(),
    });
    // Sorted as [`encode_managed_fields`] sorts (a stable sort on the same keys).
    entries.sort_by(|p, q| {
        let (pi, qi) = (p.identity(), q.identity());
        pi.0.cmp(qi.0)
            .then(p.secs.cmp(&q.secs))
            .then(pi.1.cmp(qi.1))
            .then(pi.2.cmp(qi.2))
            .then(pi.3.cmp(qi.3))
    });
    let encoded = entries
        .into_iter()
        .map(|t| match t.body {
            Body::Raw(v) => v,
            Body::Decoded(e) => e.to_json(),
        })
        .collect::<Vec<_>>();
    set_managed_fields(new, (!encoded.is_empty()).then_some(encoded));
}

/// `metadata.managedFields` of `obj`: the entries, or none (the key removed).
fn set_managed_fields(obj: &mut Value, entries: Option<Vec<Value>>) {
    let Some(meta) = obj.as_object_mut().map(|root| {
        root.entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()))
    }) else {
        return;
    };
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    match entries {
        None => {
            meta.remove("managedFields");
        }
        Some(e) => {
            meta.insert("managedFields".into(), Value::Array(e));
        }
    }
}

/// The `fieldsV1` of the fields a create adds: what [`typed::compare`] of nothing with `obj`
/// reports as added (every node below the root but `metadata.managedFields`: object members,
/// items of associative lists by their path elements — the first of equal ones —, atomic maps,
/// atomic and empty lists and empty objects as leaves), less `strip` (as
/// [`FieldSet::difference`]) and the subtrees of `ignored` (as
/// [`FieldSet::recursive_difference`]), encoded as [`FieldSet::to_fields_v1`] encodes: built in
/// one walk, without the field set.
fn created_fields_v1(
    obj: &Value,
    types: &dyn ListTypes,
    strip: &FieldSet,
    ignored: &FieldSet,
) -> Map<String, Value> {
    let mut names = Vec::new();
    added_children(obj, types, &mut names, Some(strip), Some(ignored))
}

/// The `fieldsV1` children of the node `v` at `names` (see [`created_fields_v1`]); `strip` and
/// `ignored` are those sets' nodes at the same path.
fn added_children(
    v: &Value,
    types: &dyn ListTypes,
    names: &mut Vec<String>,
    strip: Option<&FieldSet>,
    ignored: Option<&FieldSet>,
) -> Map<String, Value> {
    let mut out = Map::new();
    let child = |out: &mut Map<String, Value>,
                 names: &mut Vec<String>,
                 pe: String,
                 c: &Value,
                 name: Option<&String>| {
        if out.contains_key(&pe) {
            return;
        }
        let ign = ignored.and_then(|s| s.child(&pe));
        if ign.is_some_and(FieldSet::is_member) {
            return;
        }
        let st = strip.and_then(|s| s.child(&pe));
        if let Some(n) = name {
            names.push(n.clone());
        }
        let mut children = added_children(c, types, names, st, ign);
        if name.is_some() {
            names.pop();
        }
        let member = !st.is_some_and(FieldSet::is_member);
        if children.is_empty() {
            if member {
                out.insert(pe, Value::Object(Map::new()));
            }
        } else {
            if member {
                children.insert(".".into(), Value::Object(Map::new()));
            }
            out.insert(pe, Value::Object(children));
        }
    };
    match v {
        Value::Object(map) => {
            if map.is_empty() || (!names.is_empty() && types.map_is_atomic(names)) {
                return out;
            }
            let in_metadata = matches!(names.as_slice(), [m] if m == "metadata");
            for (k, c) in map {
                if in_metadata && k == "managedFields" {
                    continue;
                }
                child(&mut out, names, typed::field_pe(k), c, Some(k));
            }
        }
        Value::Array(items) => {
            if items.is_empty() {
                return out;
            }
            let lt = types.list_type(names);
            if lt == ListType::Atomic {
                return out;
            }
            for (i, item) in items.iter().enumerate() {
                child(&mut out, names, typed::item_pe(&lt, item, i), item, None);
            }
        }
        _ => {}
    }
    out
}

/// Removes the members of `set` from the `fieldsV1` node `raw` (in stored form) in place: the
/// encoding of `FieldSet::from_fields_v1(raw).difference(set)`.
fn fields_v1_difference(raw: &mut Map<String, Value>, set: &FieldSet) {
    for (k, c) in set.children() {
        let Some(Value::Object(node)) = raw.get_mut(k) else {
            continue;
        };
        let member = (node.is_empty() || node.contains_key(".")) && !c.is_member();
        fields_v1_difference(node, c);
        let has_children = node.keys().any(|k| k != ".");
        if !has_children && !member {
            raw.remove(k);
        } else if !has_children || !member {
            node.remove(".");
        } else {
            node.insert(".".into(), Value::Object(Map::new()));
        }
    }
}

/// Adds the members of `set` to the `fieldsV1` node `raw` (in stored form) in place: the
/// encoding of `FieldSet::from_fields_v1(raw).union(set)`.
fn fields_v1_union(raw: &mut Map<String, Value>, set: &FieldSet) {
    for (k, c) in set.children() {
        match raw.get_mut(k) {
            Some(Value::Object(node)) => {
                let member = node.is_empty() || node.contains_key(".") || c.is_member();
                fields_v1_union(node, c);
                let has_children = node.keys().any(|k| k != ".");
                if has_children && member {
                    node.insert(".".into(), Value::Object(Map::new()));
                } else {
                    node.remove(".");
                }
            }
            _ => {
                raw.insert(k.clone(), c.to_fields_v1());
            }
        }
    }
}

/// A managedFields entry of [`track_update_with`]: kept as stored, or decoded because the write
/// changes it; `secs` is its time as the sort reads it.
struct Tracked {
    body: Body,
    secs: i64,
}

enum Body {
    Raw(Value),
    Decoded(Entry),
}

impl Tracked {
    fn raw(v: Value) -> Tracked {
        let secs = seconds(&v.get("time").and_then(Value::as_str).map(str::to_string));
        Tracked {
            body: Body::Raw(v),
            secs,
        }
    }

    fn decoded(e: Entry) -> Tracked {
        Tracked {
            secs: seconds(&e.time),
            body: Body::Decoded(e),
        }
    }

    /// `(operation, manager, apiVersion, subresource)`, as [`Entry::from_json`] reads them.
    fn identity(&self) -> (&str, &str, &str, &str) {
        match &self.body {
            Body::Raw(v) => {
                let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
                (
                    s("operation"),
                    s("manager"),
                    s("apiVersion"),
                    s("subresource"),
                )
            }
            Body::Decoded(e) => (
                e.operation.as_str(),
                e.manager.as_str(),
                e.api_version.as_str(),
                e.subresource.as_str(),
            ),
        }
    }

    /// Whether a stored entry is the `Update` entry of `manager` ([`Entry::same_identity`]).
    fn raw_identity(v: &Value, manager: &str, api_version: &str, subresource: &str) -> bool {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
        s("manager") == manager
            && s("operation") == OPERATION_UPDATE
            && s("subresource") == subresource
            && s("apiVersion") == api_version
    }
}

/// Whether `v` is exactly what [`Entry::to_json`] encodes for the entry [`Entry::from_json`]
/// decodes from it (so it can be kept as it is): the known keys only, with their types, and
/// `fieldsV1` in the form [`FieldSet::to_fields_v1`] writes.
fn canonical_entry(v: &Value) -> bool {
    let Some(m) = v.as_object() else {
        return false;
    };
    let known = m.iter().all(|(k, x)| match k.as_str() {
        "manager" | "operation" | "apiVersion" | "time" => x.is_string(),
        "subresource" => x.as_str().is_some_and(|s| !s.is_empty()),
        "fieldsType" => x.as_str() == Some(FIELDS_TYPE_V1),
        "fieldsV1" => x
            .as_object()
            .is_some_and(|f| !f.contains_key(".") && f.values().all(canonical_fields_node)),
        _ => false,
    });
    known
        && [
            "manager",
            "operation",
            "apiVersion",
            "fieldsType",
            "fieldsV1",
        ]
        .iter()
        .all(|k| m.contains_key(*k))
}

/// A node of `fieldsV1` as [`FieldSet::to_fields_v1`] writes it: `{}` (a member without
/// children), `{".": {}, ...}` (a member with children) or `{...}` (children only).
fn canonical_fields_node(v: &Value) -> bool {
    let Some(m) = v.as_object() else {
        return false;
    };
    match m.get(".") {
        Some(marker) => {
            marker.as_object().is_some_and(Map::is_empty)
                && m.len() > 1
                && m.iter()
                    .filter(|(k, _)| k.as_str() != ".")
                    .all(|(_, c)| canonical_fields_node(c))
        }
        None => m.values().all(canonical_fields_node),
    }
}

/// Whether a member of `set` is a member of the set `raw` (`fieldsV1`) encodes, read in place
/// as [`FieldSet::from_fields_v1`] reads it.
fn fields_v1_intersects(raw: &Map<String, Value>, set: &FieldSet) -> bool {
    set.children().any(|(k, c)| match raw.get(k) {
        None => false,
        Some(v) => {
            let inner = v.as_object().filter(|m| !m.is_empty());
            let member = inner.is_none_or(|m| m.contains_key("."));
            (c.is_member() && member) || inner.is_some_and(|m| fields_v1_intersects(m, c))
        }
    })
}

#[cfg(test)]
mod tests;
