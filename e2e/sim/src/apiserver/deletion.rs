//! Deletion: the DELETE semantics of kube-apiserver (preconditions, finalizers, deletionTimestamp,
//! graceful deletion of pods, propagation policies) and the controllers of kube-controller-manager
//! that finish deletions: garbage collection of dependents (background, foreground, orphan),
//! namespace deletion, CRD instance cleanup, and pod GC for pods whose node is gone.
//!
//! The controllers run as one task that wakes whenever a write may need them (and once a second)
//! and works directly on the store under its lock, through the same write path as requests.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::objects::{
    self, meta_mut, CRD_CLEANUP_FINALIZER, FOREGROUND_FINALIZER, NAMESPACE_FINALIZER,
    ORPHAN_FINALIZER,
};
use super::registry::ResourceDef;
use super::status::{ApiError, ApiResult};
use super::store::{
    ObjKey, ObjRef, Stored, CRDS_STORAGE, NAMESPACES_STORAGE, NODES_STORAGE, PODS_STORAGE,
};
use super::write::{self, WriteOpts};
use super::{ApiServer, State};

/// Field manager of the built-in controllers' writes.
pub const GC_MANAGER: &str = "generic-garbage-collector";
pub const NAMESPACE_MANAGER: &str = "namespace-controller";
pub const PODGC_MANAGER: &str = "pod-garbage-collector";
pub const CRD_MANAGER: &str = "apiextensions-apiserver";

/// Condition type and reason pod GC sets on pods of vanished nodes.
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";
pub const DELETION_BY_POD_GC: &str = "DeletionByPodGC";

/// Propagation policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    pub fn parse(s: Option<&str>) -> ApiResult<Option<Self>> {
        match s {
            None | Some("") => Ok(None),
            Some("Background") => Ok(Some(Propagation::Background)),
            Some("Foreground") => Ok(Some(Propagation::Foreground)),
            Some("Orphan") => Ok(Some(Propagation::Orphan)),
            Some(o) => Err(ApiError::bad_request(format!("propagationPolicy: Unsupported value: \"{o}\": supported values: \"Foreground\", \"Background\", \"Orphan\""))),
        }
    }
}

/// DeleteOptions, from query parameters and/or the request body.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub grace: Option<i64>,
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

/// Result of a DELETE.
pub enum Deleted {
    /// Removed from storage.
    Gone(Arc<Stored>),
    /// Still there, with deletionTimestamp (finalizers or grace period pending).
    Pending(Arc<Stored>),
}

fn is_terminal_pod(obj: &Value) -> bool {
    matches!(
        obj.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded") | Some("Failed")
    )
}

/// Delete one object.
pub fn delete(
    state: &mut State,
    def: &ResourceDef,
    key: &ObjKey,
    opts: &DeleteOpts,
) -> ApiResult<Deleted> {
    let cur = state
        .store
        .get(&def.storage, key)
        .ok_or_else(|| ApiError::not_found(&def.qualified(), &key.1))?;
    if let Some(uid) = &opts.precondition_uid {
        if *uid != cur.uid {
            return Err(ApiError::conflict(
                &def.qualified(),
                &key.1,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    cur.uid
                ),
            ));
        }
    }
    if let Some(rv) = &opts.precondition_rv {
        if *rv != cur.rv.to_string() {
            return Err(ApiError::conflict(&def.qualified(), &key.1, &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", cur.rv)));
        }
    }
    // The finalizers, nodeName and phase are indexed: an object that goes at once (no
    // finalizers, not a pod in its grace period) is removed without decoding it.
    let mut fins = cur.finalizers.clone();
    match opts.propagation {
        Some(Propagation::Orphan) if !fins.iter().any(|f| f == ORPHAN_FINALIZER) => {
            fins.retain(|f| f != FOREGROUND_FINALIZER);
            fins.push(ORPHAN_FINALIZER.into());
        }
        Some(Propagation::Foreground) if !fins.iter().any(|f| f == FOREGROUND_FINALIZER) => {
            fins.retain(|f| f != ORPHAN_FINALIZER);
            fins.push(FOREGROUND_FINALIZER.into());
        }
        Some(Propagation::Background) => {
            fins.retain(|f| f != ORPHAN_FINALIZER && f != FOREGROUND_FINALIZER)
        }
        _ => {}
    }
    // Graceful deletion applies to pods bound to a node and not yet finished.
    let graceful = def.storage == PODS_STORAGE
        && cur.node_name.as_deref().is_some_and(|n| !n.is_empty())
        && !matches!(cur.phase.as_deref(), Some("Succeeded") | Some("Failed"));
    let ns_pending = def.storage == NAMESPACES_STORAGE;
    let remove_now = |state: &mut State, cur: Arc<Stored>| {
        if opts.dry_run {
            return Ok(Deleted::Gone(cur));
        }
        let gone = write::finish_removal(state, def, key)
            .ok_or_else(|| ApiError::not_found(&def.qualified(), &key.1))?;
        Ok(Deleted::Gone(gone))
    };
    if fins.is_empty() && !graceful && !ns_pending {
        return remove_now(state, cur);
    }
    let old = cur.value();
    let mut obj = old.clone();
    let grace = if graceful {
        opts.grace
            .or_else(|| {
                obj.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30)
            .max(0)
    } else {
        0
    };
    let already = cur.deleting;
    let current_grace = obj
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    if fins.is_empty() && grace == 0 && !ns_pending {
        return remove_now(state, cur);
    }
    objects::set_finalizers(&mut obj, &fins);
    let now = jiff::Timestamp::now();
    {
        let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64);
        let m = meta_mut(&mut obj);
        if !already {
            // Setting deletionTimestamp is a change of the object's intent: kube-apiserver bumps
            // a positive generation then (`rest.BeforeDelete` for graceful deletion,
            // `markAsDeleting` for finalizers), so controllers see it as a new generation.
            if let Some(g) = generation.filter(|g| def.has_generation && *g > 0) {
                m.insert("generation".into(), json!(g + 1));
            }
            let when = now
                .checked_add(jiff::SignedDuration::from_secs(grace))
                .unwrap_or(now);
            m.insert("deletionTimestamp".into(), json!(objects::rfc3339(when)));
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
        } else if opts.grace.is_some() && current_grace.is_none_or(|g| grace < g) {
            // Only a shorter grace period, given explicitly, changes a pending deletion; the
            // deadline moves by the difference (`rest.BeforeDelete`: old deletionTimestamp -
            // old grace + new grace). Without one the pending deletion stays as it is.
            let old_when = m
                .get("deletionTimestamp")
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .unwrap_or(now);
            let when = old_when
                .checked_sub(jiff::SignedDuration::from_secs(current_grace.unwrap_or(0)))
                .and_then(|t| t.checked_add(jiff::SignedDuration::from_secs(grace)))
                .unwrap_or(now);
            m.insert("deletionTimestamp".into(), json!(objects::rfc3339(when)));
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
    }
    if ns_pending {
        obj["status"]["phase"] = json!("Terminating");
    }
    if opts.dry_run {
        return Ok(Deleted::Pending(Arc::new(Stored::new(&obj, 0))));
    }
    // deletionTimestamp is immutable for updates; deletion writes it directly.
    let mut opts_w = WriteOpts::controller("");
    let meta_after = obj.get("metadata").cloned();
    let written = commit_deletion_mark(state, def, &old, obj, meta_after, &mut opts_w)?;
    if written.deleting
        && written.finalizers.is_empty()
        && !written_grace_pending(&written)
        && !ns_pending
    {
        if let Some(g) = write::finish_removal(state, def, key) {
            return Ok(Deleted::Gone(g));
        }
    }
    Ok(Deleted::Pending(written))
}

fn written_grace_pending(s: &Stored) -> bool {
    write::grace_pending(&s.value())
}

/// Store the deletion mark (deletionTimestamp, grace, finalizers) — fields updates may not touch.
fn commit_deletion_mark(
    state: &mut State,
    def: &ResourceDef,
    old: &Value,
    mut obj: Value,
    meta: Option<Value>,
    _opts: &mut WriteOpts,
) -> ApiResult<Arc<Stored>> {
    if let Some(m) = meta {
        obj["metadata"] = m;
    }
    if def.storage == CRDS_STORAGE {
        super::crd::prepare(state, &mut obj, Some(old))?;
    }
    if objects::same_object(old, &obj) {
        if let Some(cur) = state.store.get(
            &def.storage,
            &(
                objects::meta_str(&obj, "namespace")
                    .unwrap_or_default()
                    .to_string(),
                objects::meta_str(&obj, "name")
                    .unwrap_or_default()
                    .to_string(),
            ),
        ) {
            return Ok(cur);
        }
    }
    Ok(state.store.put(&def.storage, &mut obj))
}

/// Update an object's metadata/status from a controller (through the normal update path).
fn controller_update(
    state: &mut State,
    def: &ResourceDef,
    old: &Value,
    new: Value,
    manager: &str,
    sub: Option<&str>,
) -> ApiResult<Arc<Stored>> {
    let mut opts = WriteOpts::controller(manager);
    opts.subresource = sub.map(String::from);
    write::commit_update(state, def, old, new, &mut opts)
}

fn def_of(state: &State, storage: &str) -> Option<Arc<ResourceDef>> {
    state.registry.preferred_for_storage(storage)
}

fn remove_finalizer(
    state: &mut State,
    def: &ResourceDef,
    r: &ObjRef,
    finalizer: &str,
    manager: &str,
) {
    let Some(cur) = state.store.get(&r.0, &r.1) else {
        return;
    };
    let old = cur.value();
    let mut new = old.clone();
    let mut f = objects::finalizers(&new);
    f.retain(|x| x != finalizer);
    objects::set_finalizers(&mut new, &f);
    if let Err(e) = controller_update(state, def, &old, new, manager, None) {
        tracing::warn!(object = ?r, error = ?e.body, "removing finalizer failed");
    }
}

fn delete_ref(state: &mut State, r: &ObjRef, propagation: Propagation) {
    let Some(def) = def_of(state, &r.0) else {
        return;
    };
    let opts = DeleteOpts {
        propagation: Some(propagation),
        ..Default::default()
    };
    if let Err(e) = delete(state, &def, &r.1, &opts) {
        if e.code != 404 {
            tracing::warn!(object = ?r, error = ?e.body, "controller delete failed");
        }
    }
}

/// Drop ownerReferences to the given uids from an object.
fn remove_owner_refs(state: &mut State, r: &ObjRef, uids: &BTreeSet<String>) {
    let Some(def) = def_of(state, &r.0) else {
        return;
    };
    let Some(cur) = state.store.get(&r.0, &r.1) else {
        return;
    };
    let old = cur.value();
    let mut new = old.clone();
    if let Some(refs) = new
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
    {
        refs.retain(|o| {
            !o.get("uid")
                .and_then(Value::as_str)
                .is_some_and(|u| uids.contains(u))
        });
        if refs.is_empty() {
            if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("ownerReferences");
            }
        }
    }
    if let Err(e) = controller_update(state, &def, &old, new, GC_MANAGER, None) {
        tracing::warn!(object = ?r, error = ?e.body, "removing owner references failed");
    }
}

/// Garbage collection of dependents whose owners were removed. Returns whether it did anything.
fn gc_removed_owners(state: &mut State) -> bool {
    let removed: BTreeSet<String> = std::mem::take(&mut state.store.removed_uids)
        .into_iter()
        .collect();
    let mut did = false;
    for uid in &removed {
        for dep in state.store.dependents_of(uid) {
            let Some(s) = state.store.get(&dep.0, &dep.1) else {
                continue;
            };
            let (solid, dangling): (Vec<_>, Vec<_>) = s
                .owners
                .iter()
                .partition(|o| state.store.uid_exists(&o.uid));
            if solid.is_empty() {
                let p = if state.store.dependents_of(&s.uid).is_empty() {
                    Propagation::Background
                } else {
                    Propagation::Foreground
                };
                if !s.deleting {
                    delete_ref(state, &dep, p);
                    did = true;
                }
            } else if !dangling.is_empty() {
                let gone: BTreeSet<String> = dangling.iter().map(|o| o.uid.clone()).collect();
                remove_owner_refs(state, &dep, &gone);
                did = true;
            }
        }
    }
    did
}

/// Foreground and orphan finalizers of objects being deleted.
fn gc_deleting_owners(state: &mut State) -> bool {
    let mut did = false;
    let deleting: Vec<ObjRef> = state.store.deleting.iter().cloned().collect();
    for r in deleting {
        let Some(s) = state.store.get(&r.0, &r.1) else {
            continue;
        };
        let Some(def) = def_of(state, &r.0) else {
            continue;
        };
        if s.finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
            let uid: BTreeSet<String> = [s.uid.clone()].into();
            for dep in state.store.dependents_of(&s.uid) {
                remove_owner_refs(state, &dep, &uid);
            }
            remove_finalizer(state, &def, &r, ORPHAN_FINALIZER, GC_MANAGER);
            did = true;
        } else if s.finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
            let mut blocking = false;
            for dep in state.store.dependents_of(&s.uid) {
                let Some(d) = state.store.get(&dep.0, &dep.1) else {
                    continue;
                };
                if d.owners
                    .iter()
                    .any(|o| o.uid == s.uid && o.block_owner_deletion)
                {
                    blocking = true;
                }
                if !d.deleting {
                    let p = if state.store.dependents_of(&d.uid).is_empty() {
                        Propagation::Background
                    } else {
                        Propagation::Foreground
                    };
                    delete_ref(state, &dep, p);
                    did = true;
                }
            }
            // Re-check after the deletions above: removed dependents no longer block.
            let still_blocking = blocking
                && state.store.dependents_of(&s.uid).iter().any(|dep| {
                    state.store.get(&dep.0, &dep.1).is_some_and(|d| {
                        d.owners
                            .iter()
                            .any(|o| o.uid == s.uid && o.block_owner_deletion)
                    })
                });
            if !still_blocking {
                remove_finalizer(state, &def, &r, FOREGROUND_FINALIZER, GC_MANAGER);
                did = true;
            }
        }
    }
    did
}

/// Namespaces being deleted: delete their content, then release the `kubernetes` finalizer.
fn namespaces(state: &mut State) -> bool {
    let mut did = false;
    let terminating: Vec<ObjRef> = state
        .store
        .deleting
        .iter()
        .filter(|r| r.0 == NAMESPACES_STORAGE)
        .cloned()
        .collect();
    let Some(ns_def) = def_of(state, NAMESPACES_STORAGE) else {
        return false;
    };
    for r in terminating {
        let ns = r.1 .1.clone();
        let mut remaining = 0usize;
        for def in state.registry.namespaced_storages() {
            for obj in state.store.list(&def.storage, Some(&ns), None) {
                remaining += 1;
                if !obj.deleting {
                    let opts = DeleteOpts {
                        propagation: Some(Propagation::Background),
                        ..Default::default()
                    };
                    let _ = delete(state, &def, &obj.key(), &opts);
                    did = true;
                }
            }
        }
        if remaining > 0 {
            continue;
        }
        let Some(cur) = state.store.get(&r.0, &r.1) else {
            continue;
        };
        let old = cur.value();
        let spec_fins: Vec<String> = old
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if spec_fins.iter().any(|f| f == NAMESPACE_FINALIZER) {
            let mut new = old.clone();
            new["spec"]["finalizers"] = json!(spec_fins
                .iter()
                .filter(|f| *f != NAMESPACE_FINALIZER)
                .collect::<Vec<_>>());
            let _ = controller_update(
                state,
                &ns_def,
                &old,
                new,
                NAMESPACE_MANAGER,
                Some("finalize"),
            );
            did = true;
        }
        if let Some(cur) = state.store.get(&r.0, &r.1) {
            let v = cur.value();
            if cur.finalizers.is_empty() && !write::namespace_finalizers_pending(&ns_def, &v) {
                write::finish_removal(state, &ns_def, &r.1);
                did = true;
            }
        }
    }
    did
}

/// CRDs being deleted: delete their objects, then release the cleanup finalizer.
fn crds(state: &mut State) -> bool {
    let mut did = false;
    let terminating: Vec<ObjRef> = state
        .store
        .deleting
        .iter()
        .filter(|r| r.0 == CRDS_STORAGE)
        .cloned()
        .collect();
    let Some(crd_def) = def_of(state, CRDS_STORAGE) else {
        return false;
    };
    for r in terminating {
        let Some(cur) = state.store.get(&r.0, &r.1) else {
            continue;
        };
        if !cur.finalizers.iter().any(|f| f == CRD_CLEANUP_FINALIZER) {
            continue;
        }
        let v = cur.value();
        let (Some(group), Some(plural)) = (
            v.pointer("/spec/group").and_then(Value::as_str),
            v.pointer("/spec/names/plural").and_then(Value::as_str),
        ) else {
            continue;
        };
        let storage = super::registry::storage_id(group, plural);
        if let Some(def) = def_of(state, &storage) {
            for obj in state.store.list(&storage, None, None) {
                if !obj.deleting {
                    let _ = delete(state, &def, &obj.key(), &DeleteOpts::default());
                    did = true;
                }
            }
        }
        if state.store.count(&storage) == 0 {
            remove_finalizer(state, &crd_def, &r, CRD_CLEANUP_FINALIZER, CRD_MANAGER);
            did = true;
        }
    }
    did
}

/// Pods bound to nodes that no longer exist: Failed with a DisruptionTarget condition, then deleted.
fn pod_gc(state: &mut State) -> bool {
    let removed: BTreeSet<String> = std::mem::take(&mut state.store.removed_nodes)
        .into_iter()
        .collect();
    if removed.is_empty() {
        return false;
    }
    let gone: BTreeSet<String> = removed
        .into_iter()
        .filter(|n| {
            state
                .store
                .get(NODES_STORAGE, &(String::new(), n.clone()))
                .is_none()
        })
        .collect();
    let Some(def) = def_of(state, PODS_STORAGE) else {
        return false;
    };
    let mut did = false;
    let pods: Vec<Arc<Stored>> = state
        .store
        .list(PODS_STORAGE, None, None)
        .into_iter()
        .filter(|p| p.node_name.as_ref().is_some_and(|n| gone.contains(n)))
        .collect();
    for pod in pods {
        let old = pod.value();
        if !is_terminal_pod(&old) {
            let mut new = old.clone();
            new["status"]["phase"] = json!("Failed");
            let cond = json!({"type": DISRUPTION_TARGET, "status": "True", "lastTransitionTime": objects::now_rfc3339(),
                              "reason": DELETION_BY_POD_GC, "message": "PodGC: node no longer exists"});
            let conds = new["status"]
                .get("conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut conds: Vec<Value> = conds
                .into_iter()
                .filter(|c| c["type"] != DISRUPTION_TARGET)
                .collect();
            conds.push(cond);
            new["status"]["conditions"] = json!(conds);
            let _ = controller_update(state, &def, &old, new, PODGC_MANAGER, Some("status"));
        }
        let _ = delete(
            state,
            &def,
            &pod.key(),
            &DeleteOpts {
                grace: Some(0),
                ..Default::default()
            },
        );
        did = true;
    }
    did
}

/// One pass of every controller; true if anything changed (another pass may be due).
pub fn run_once(state: &mut State) -> bool {
    let a = gc_removed_owners(state);
    let b = gc_deleting_owners(state);
    let c = namespaces(state);
    let d = crds(state);
    let e = pod_gc(state);
    let f = super::auth::aggregation::run(state);
    a || b || c || d || e || f
}

/// The controller task: runs passes while there is work, sleeps until woken or for a second.
pub async fn controller_loop(api: Arc<ApiServer>) {
    let mut shutdown = api.shutdown.clone();
    loop {
        let mut rounds = 0;
        loop {
            let more = match api.state.lock() {
                Ok(mut st) => run_once(&mut st),
                Err(_) => return,
            };
            rounds += 1;
            if !more || rounds > 100 {
                break;
            }
            tokio::task::yield_now().await;
        }
        tokio::select! {
            _ = api.wake_controllers.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
