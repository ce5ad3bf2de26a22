//! Create and update as the storage layer of kube-apiserver performs them, over plain values:
//! metadata stamping (uid, creationTimestamp, generation, resourceVersion), status-subresource
//! rules, defaulting, CRD pruning / defaulting / validation, managedFields, no-op detection,
//! and the side effects of writing special kinds (CRDs register their resources).
//!
//! Handlers (HTTP) and the built-in controllers (deletion.rs) both write through here, under the
//! store lock, so every write of the cluster follows the same rules.

use std::sync::Arc;

use serde_json::{json, Value};

use super::auth::{self, UserInfo};
use super::crd;
use super::machinery;
use super::objects::{self, meta_mut, meta_str};
use super::registry::ResourceDef;
use super::status::{ApiError, ApiResult};
use super::store::{Encoded, ObjKey, Stored, CRDS_STORAGE, NAMESPACES_STORAGE};
use super::State;

/// `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

impl FieldValidation {
    pub fn parse(s: Option<&str>) -> ApiResult<Self> {
        match s {
            None | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(o) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got \"{o}\""
            ))),
        }
    }
}

/// Options of one write.
#[derive(Debug, Clone)]
pub struct WriteOpts {
    pub manager: String,
    pub subresource: Option<String>,
    pub dry_run: bool,
    pub validation: FieldValidation,
    /// Warnings for the `Warning` response header (fieldValidation=Warn).
    pub warnings: Vec<String>,
    /// managedFields were computed by server-side apply: keep them as they are.
    pub keep_managed_fields: bool,
    /// The impersonated user writing (None: `system:admin` or a built-in controller): RBAC
    /// objects it writes are checked for privilege escalation ([`auth::escalation`]).
    pub user: Option<Arc<UserInfo>>,
}

impl WriteOpts {
    /// Options of a write done by a built-in controller.
    pub fn controller(manager: &str) -> Self {
        WriteOpts {
            manager: manager.into(),
            subresource: None,
            dry_run: false,
            validation: FieldValidation::Ignore,
            warnings: vec![],
            keep_managed_fields: false,
            user: None,
        }
    }
}

fn is_rbac(def: &ResourceDef) -> bool {
    def.group == "rbac.authorization.k8s.io"
}

fn check_name(def: &ResourceDef, name: &str) -> ApiResult<()> {
    let res = if def.resource == "namespaces" {
        objects::check_label_name(name)
    } else if is_rbac(def) {
        if name.contains('/')
            || name.contains('%')
            || name == "."
            || name == ".."
            || name.is_empty()
        {
            Err("may not contain '/' or '%' and may not be '.' or '..'".to_string())
        } else {
            Ok(())
        }
    } else {
        objects::check_subdomain(name)
    };
    res.map_err(|m| {
        ApiError::invalid(
            &def.group,
            &def.kind,
            name,
            "metadata.name",
            &format!("Invalid value: \"{name}\": {m}"),
        )
    })
}

/// RBAC objects written by an impersonated user may not grant more than it holds.
fn check_escalation(
    state: &mut State,
    def: &ResourceDef,
    obj: &Value,
    old: Option<&Value>,
    opts: &WriteOpts,
) -> ApiResult<()> {
    match &opts.user {
        Some(user) if def.group == auth::rbac::RBAC_GROUP => {
            let snap = auth::snapshot(state);
            auth::escalation::check(&snap, def, obj, old, user)
        }
        _ => Ok(()),
    }
}

/// Run CRD pruning, defaulting and validation on an object (no-op for built-ins).
fn schema_checks(
    def: &ResourceDef,
    obj: &mut Value,
    old: Option<&Value>,
    opts: &mut WriteOpts,
) -> ApiResult<()> {
    let Some(schema) = def.schema.as_ref() else {
        return Ok(());
    };
    let pruned = schema.prune(obj);
    if !pruned.is_empty() {
        match opts.validation {
            FieldValidation::Strict => {
                let list: Vec<String> = pruned
                    .iter()
                    .map(|p| format!("unknown field \"{p}\""))
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {}",
                    list.join(", ")
                )));
            }
            FieldValidation::Warn => opts
                .warnings
                .extend(pruned.iter().map(|p| format!("unknown field \"{p}\""))),
            FieldValidation::Ignore => {}
        }
    }
    schema.apply_defaults(obj);
    let name = meta_str(obj, "name").unwrap_or_default().to_string();
    schema
        .validate(&def.group, &def.kind, &name, obj, old)
        .map_err(ApiError::from_status)
}

/// Check the object's kind/apiVersion against the endpoint and fill them in when missing.
pub fn check_kind(def: &ResourceDef, obj: &mut Value) -> ApiResult<()> {
    let Some(o) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    };
    match o.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            o.insert("kind".into(), json!(def.kind));
        }
        Some(k) if k == def.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!("the API version in the data ({}) does not match the expected API version ({})/kind {k} does not match {}", o.get("apiVersion").and_then(Value::as_str).unwrap_or_default(), def.api_version(), def.kind)));
        }
    }
    match o.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            o.insert("apiVersion".into(), json!(def.api_version()));
        }
        Some(v) if v == def.api_version() => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({})",
                def.api_version()
            )));
        }
    }
    Ok(())
}

/// Set (or check) the namespace of an object against the URL's.
pub fn check_namespace(def: &ResourceDef, obj: &mut Value, url_ns: Option<&str>) -> ApiResult<()> {
    let m = meta_mut(obj);
    if def.namespaced {
        let url_ns = url_ns.ok_or_else(|| {
            ApiError::bad_request("namespace is required for namespaced resources")
        })?;
        match m.get("namespace").and_then(Value::as_str) {
            None | Some("") => {
                m.insert("namespace".into(), json!(url_ns));
            }
            Some(n) if n == url_ns => {}
            Some(_) => return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request")),
        }
    } else {
        m.remove("namespace");
    }
    Ok(())
}

/// Namespace must exist and not be terminating for new content.
fn check_namespace_open(state: &State, def: &ResourceDef, ns: &str, name: &str) -> ApiResult<()> {
    let Some(nsobj) = state
        .store
        .get(NAMESPACES_STORAGE, &(String::new(), ns.to_string()))
    else {
        return Err(ApiError::not_found("namespaces", ns));
    };
    if nsobj.deleting {
        return Err(ApiError::forbidden(
            &def.qualified(),
            name,
            &format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ),
        ));
    }
    Ok(())
}

/// Whether writes of `def` can be computed outside the store lock: every kind but those whose
/// writes read or change other cluster state (CRDs register resources, Services allocate
/// ClusterIPs, RBAC objects are checked for privilege escalation against the stored roles).
pub fn lock_free(def: &ResourceDef) -> bool {
    def.storage != CRDS_STORAGE && def.storage != SERVICES_STORAGE && !is_rbac(def)
}

const SERVICES_STORAGE: &str = "/services";

/// A write computed outside the store lock, committed by [`commit_create`] or
/// [`commit_prepared_update`].
pub struct Prepared {
    /// The object in storage form, without its resourceVersion.
    obj: Value,
    /// `obj` encoded (None for dry runs, which store nothing).
    encoded: Option<Encoded>,
    key: ObjKey,
}

impl Prepared {
    fn new(mut obj: Value, dry_run: bool) -> Prepared {
        let key = (
            meta_str(&obj, "namespace").unwrap_or_default().to_string(),
            meta_str(&obj, "name").unwrap_or_default().to_string(),
        );
        let encoded = (!dry_run).then(|| Encoded::new(&mut obj));
        Prepared { obj, encoded, key }
    }
}

/// The checks of a create that read nothing but the request: kind, namespace, name (or
/// generateName), stripped system fields, defaulting, schema and built-in validation.
fn create_checks(
    def: &ResourceDef,
    mut obj: Value,
    url_ns: Option<&str>,
    opts: &mut WriteOpts,
) -> ApiResult<Value> {
    check_kind(def, &mut obj)?;
    check_namespace(def, &mut obj, url_ns)?;
    {
        let m = meta_mut(&mut obj);
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            match m.get("generateName").and_then(Value::as_str) {
                Some(g) if !g.is_empty() => {
                    let n = format!("{g}{}", objects::generated_suffix());
                    m.insert("name".into(), json!(n));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &def.group,
                        &def.kind,
                        "",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    ));
                }
            }
        }
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "generation",
            "selfLink",
        ] {
            m.remove(k);
        }
    }
    let name = meta_str(&obj, "name").unwrap_or_default().to_string();
    check_name(def, &name)?;
    if def.custom && def.has_status() {
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }
    objects::default_builtin(def, &mut obj, true);
    schema_checks(def, &mut obj, None, opts)?;
    super::validate::validate(def, &obj).map_err(ApiError::from_status)?;
    Ok(obj)
}

/// The checks of a create against the cluster (under the store lock): the namespace is open,
/// the CRD is not terminating, no privilege escalation, the name is free.
fn create_admit(
    state: &mut State,
    def: &ResourceDef,
    obj: &Value,
    opts: &WriteOpts,
) -> ApiResult<()> {
    let ns = meta_str(obj, "namespace").unwrap_or_default();
    let name = meta_str(obj, "name").unwrap_or_default();
    if def.namespaced {
        check_namespace_open(state, def, ns, name)?;
    }
    if def.custom && crd::is_terminating(state, &def.storage) {
        return Err(ApiError::method_not_allowed(
            "create not allowed while custom resource definition is terminating",
        ));
    }
    check_escalation(state, def, obj, None, opts)?;
    let key: ObjKey = (ns.to_string(), name.to_string());
    if state.store.get(&def.storage, &key).is_some() {
        return Err(ApiError::already_exists(&def.qualified(), name));
    }
    Ok(())
}

/// uid, creationTimestamp and generation of a new object.
fn stamp_identity(def: &ResourceDef, obj: &mut Value, now: &str) {
    let uid = uuid::Uuid::new_v4().to_string();
    let m = meta_mut(obj);
    m.insert("uid".into(), json!(uid));
    m.insert("creationTimestamp".into(), json!(now));
    if def.has_generation {
        m.insert("generation".into(), json!(1));
    }
}

/// managedFields of a new object (unless server-side apply computed them) and its storage form.
fn finish_new(def: &ResourceDef, mut obj: Value, now: &str, opts: &WriteOpts) -> Value {
    if !opts.keep_managed_fields {
        machinery::track_update(
            None,
            &mut obj,
            &opts.manager,
            now,
            opts.subresource.as_deref(),
            def.schema.as_deref(),
            &def.group,
            &def.kind,
            def.has_status(),
        );
    }
    objects::to_storage(def, obj)
}

/// Store a new object (or answer a dry run) with the side effects of its kind.
fn store_new(state: &mut State, def: &ResourceDef, prepared: Prepared) -> ApiResult<Arc<Stored>> {
    let Some(encoded) = prepared.encoded else {
        return Ok(Arc::new(Stored::new(&prepared.obj, 0)));
    };
    let written = state.store.put_encoded(&def.storage, encoded);
    for owner in &written.owners {
        if !state.store.uid_exists(&owner.uid) {
            // A dependent of a missing owner: the garbage collector deletes it.
            state.store.removed_uids.push(owner.uid.clone());
        }
    }
    if def.storage == CRDS_STORAGE {
        let mut obj = prepared.obj;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(written.rv.to_string()));
        crd::register(state, &obj)?;
    }
    Ok(written)
}

/// Create an object. `obj` is in the served version of `def`.
pub fn create(
    state: &mut State,
    def: &ResourceDef,
    obj: Value,
    url_ns: Option<&str>,
    opts: &mut WriteOpts,
) -> ApiResult<Arc<Stored>> {
    let now = objects::now_rfc3339();
    let mut obj = create_checks(def, obj, url_ns, opts)?;
    create_admit(state, def, &obj, opts)?;
    stamp_identity(def, &mut obj, &now);
    match def.storage.as_str() {
        CRDS_STORAGE => crd::prepare(state, &mut obj, None)?,
        SERVICES_STORAGE => {
            let n = state.next_service_ip();
            objects::allocate_cluster_ip(&mut obj, n);
        }
        _ => {}
    }
    let obj = finish_new(def, obj, &now, opts);
    store_new(state, def, Prepared::new(obj, opts.dry_run))
}

/// The part of a create of a [`lock_free`] kind done without the store lock: everything
/// [`create`] does but the checks against the cluster and the store itself.
pub fn prepare_create(
    def: &ResourceDef,
    obj: Value,
    url_ns: Option<&str>,
    opts: &mut WriteOpts,
) -> ApiResult<Prepared> {
    debug_assert!(lock_free(def));
    let now = objects::now_rfc3339();
    let mut obj = create_checks(def, obj, url_ns, opts)?;
    stamp_identity(def, &mut obj, &now);
    let obj = finish_new(def, obj, &now, opts);
    Ok(Prepared::new(obj, opts.dry_run))
}

/// The commit of a [`prepare_create`]d object, under the store lock: the cluster checks (the
/// name is still free, the namespace open, ...), a revision, the store and the watch event.
pub fn commit_create(
    state: &mut State,
    def: &ResourceDef,
    prepared: Prepared,
    opts: &WriteOpts,
) -> ApiResult<Arc<Stored>> {
    create_admit(state, def, &prepared.obj, opts)?;
    store_new(state, def, prepared)
}

/// Apply the subresource rules of an update to `new`, from `old`.
fn merge_subresource(def: &ResourceDef, old: &Value, new: Value, sub: Option<&str>) -> Value {
    match sub {
        Some("status") => {
            // The live object but its status, which is the one sent: a status writer still
            // sends metadata; kube-apiserver keeps the live one except the resourceVersion
            // precondition, which the caller already checked.
            let mut sent = match new {
                Value::Object(m) => m,
                _ => serde_json::Map::new(),
            };
            let status = sent.remove("status");
            let Some(live) = old.as_object() else {
                let mut out = old.clone();
                match status {
                    Some(s) => out["status"] = s,
                    None => {
                        if let Some(o) = out.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
                return out;
            };
            // Only what the writer sent different from the live object is copied from it (a
            // status patch starts from the live object, so usually nothing is).
            let mut out = serde_json::Map::new();
            for (k, v) in live.iter().filter(|(k, _)| k.as_str() != "status") {
                match sent.remove(k) {
                    Some(same) if same == *v => out.insert(k.clone(), same),
                    _ => out.insert(k.clone(), v.clone()),
                };
            }
            if let Some(s) = status {
                out.insert("status".into(), s);
            }
            Value::Object(out)
        }
        // Binding sets spec.nodeName and the PodScheduled condition together.
        Some("binding") => new,
        Some("finalize") => {
            let mut out = old.clone();
            out["spec"]["finalizers"] = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            out
        }
        _ => {
            let mut out = new;
            if def.has_status() {
                match old.get("status") {
                    Some(s) => out["status"] = s.clone(),
                    None => {
                        if let Some(o) = out.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            out
        }
    }
}

/// The subresource rules of an update and the object's kind: the first step of every update.
fn update_merge(def: &ResourceDef, old: &Value, new: Value, opts: &WriteOpts) -> ApiResult<Value> {
    // Server-side apply computed managedFields for the whole object: keep them across the
    // subresource rules (which start from the live metadata for /status).
    let applied_fields = if opts.keep_managed_fields {
        new.pointer("/metadata/managedFields").cloned()
    } else {
        None
    };
    let mut new = merge_subresource(def, old, new, opts.subresource.as_deref());
    if let Some(mf) = applied_fields {
        meta_mut(&mut new).insert("managedFields".into(), mf);
    }
    if !new.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    new["apiVersion"] = json!(def.storage_api_version);
    new["kind"] = json!(def.kind);
    Ok(new)
}

/// The checks of an update that read only the old and new objects: immutable metadata,
/// defaulting, finalizers of a deleting object, schema (ratcheting) and built-in validation, and
/// the generation bump.
fn update_checks(
    def: &ResourceDef,
    old: &Value,
    new: &mut Value,
    opts: &mut WriteOpts,
) -> ApiResult<()> {
    {
        let empty = serde_json::Map::new();
        let om = old
            .get("metadata")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let m = meta_mut(new);
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match om.get(k) {
                Some(v) => {
                    m.insert(k.into(), v.clone());
                }
                None => {
                    m.remove(k);
                }
            }
        }
        m.remove("selfLink");
    }
    let name = meta_str(new, "name").unwrap_or_default().to_string();
    objects::default_builtin(def, new, false);
    if old.pointer("/metadata/deletionTimestamp").is_some() {
        let before = objects::finalizers(old);
        let added: Vec<String> = objects::finalizers(new)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            return Err(ApiError::invalid(&def.group, &def.kind, &name, "metadata.finalizers", &format!("Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}")));
        }
    }
    if opts.subresource.is_none() || opts.subresource.as_deref() == Some("status") {
        schema_checks(def, new, Some(old), opts)?;
    }
    super::validate::validate(def, new).map_err(ApiError::from_status)?;
    if opts.subresource.is_none() {
        super::validate::validate_update(def, old, new).map_err(ApiError::from_status)?;
    }
    if def.has_generation && objects::spec_changed(old, new, def.has_status()) {
        let g = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        meta_mut(new).insert("generation".into(), json!(g));
    }
    Ok(())
}

/// managedFields of an update (unless server-side apply computed them).
fn update_fields(def: &ResourceDef, old: &Value, new: &mut Value, now: &str, opts: &WriteOpts) {
    if !opts.keep_managed_fields {
        machinery::track_update(
            Some(old),
            new,
            &opts.manager,
            now,
            opts.subresource.as_deref(),
            def.schema.as_deref(),
            &def.group,
            &def.kind,
            def.has_status(),
        );
    }
}

/// What an update computed: the object to store, or nothing to write (a no-op update).
pub enum PreparedUpdate {
    Write(Box<Prepared>),
    Unchanged(ObjKey),
}

impl PreparedUpdate {
    fn new(old: &Value, new: Value, dry_run: bool) -> PreparedUpdate {
        if objects::same_object(old, &new) {
            let key = (
                meta_str(&new, "namespace").unwrap_or_default().to_string(),
                meta_str(&new, "name").unwrap_or_default().to_string(),
            );
            PreparedUpdate::Unchanged(key)
        } else {
            PreparedUpdate::Write(Box::new(Prepared::new(new, dry_run)))
        }
    }
}

/// Store `new` over `old` (both in storage form): the update path shared by PUT, PATCH, apply and
/// the controllers.
pub fn commit_update(
    state: &mut State,
    def: &ResourceDef,
    old: &Value,
    new: Value,
    opts: &mut WriteOpts,
) -> ApiResult<Arc<Stored>> {
    let now = objects::now_rfc3339();
    let mut new = update_merge(def, old, new, opts)?;
    check_escalation(state, def, &new, Some(old), opts)?;
    update_checks(def, old, &mut new, opts)?;
    if def.storage == CRDS_STORAGE {
        crd::prepare(state, &mut new, Some(old))?;
    }
    update_fields(def, old, &mut new, &now, opts);
    store_update(state, def, PreparedUpdate::new(old, new, opts.dry_run))
}

/// The part of an update of a [`lock_free`] kind done without the store lock, from a snapshot of
/// the stored object (`old`, storage form): everything [`commit_update`] does but the store.
pub fn prepare_update(
    def: &ResourceDef,
    old: &Value,
    new: Value,
    opts: &mut WriteOpts,
) -> ApiResult<PreparedUpdate> {
    debug_assert!(lock_free(def));
    let now = objects::now_rfc3339();
    let mut new = update_merge(def, old, new, opts)?;
    update_checks(def, old, &mut new, opts)?;
    update_fields(def, old, &mut new, &now, opts);
    Ok(PreparedUpdate::new(old, new, opts.dry_run))
}

/// The commit of a [`prepare_update`], under the store lock, if the object is still at revision
/// `base_rv` (the snapshot it was computed from); `Ok(None)` when it changed meanwhile: the caller
/// computes the update again from the fresh object, as kube-apiserver's `GuaranteedUpdate` does.
pub fn commit_prepared_update(
    state: &mut State,
    def: &ResourceDef,
    base_rv: u64,
    prepared: PreparedUpdate,
) -> ApiResult<Option<Arc<Stored>>> {
    let key = match &prepared {
        PreparedUpdate::Write(p) => &p.key,
        PreparedUpdate::Unchanged(k) => k,
    };
    match state.store.get(&def.storage, key) {
        Some(cur) if cur.rv == base_rv => store_update(state, def, prepared).map(Some),
        Some(_) => Ok(None),
        None => Err(ApiError::not_found(&def.qualified(), &key.1)),
    }
}

/// Store an update (or return the live object for a no-op) with the side effects of its kind:
/// CRDs re-register, an object whose deletion was only waiting for its finalizers goes.
fn store_update(
    state: &mut State,
    def: &ResourceDef,
    prepared: PreparedUpdate,
) -> ApiResult<Arc<Stored>> {
    let Prepared {
        mut obj,
        encoded,
        key,
    } = match prepared {
        PreparedUpdate::Unchanged(key) => {
            return state
                .store
                .get(&def.storage, &key)
                .ok_or_else(|| ApiError::not_found(&def.qualified(), &key.1));
        }
        PreparedUpdate::Write(p) => *p,
    };
    let Some(encoded) = encoded else {
        return Ok(Arc::new(Stored::new(&obj, 0)));
    };
    let written = state.store.put_encoded(&def.storage, encoded);
    if def.storage == CRDS_STORAGE {
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(written.rv.to_string()));
        crd::register(state, &obj)?;
    }
    if written.deleting
        && written.finalizers.is_empty()
        && !grace_pending(&obj)
        && !namespace_finalizers_pending(def, &obj)
    {
        return Ok(finish_removal(state, def, &key).unwrap_or(written));
    }
    Ok(written)
}

/// A pod still inside its graceful-deletion period.
pub fn grace_pending(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        > 0
}

/// A namespace whose spec.finalizers are not done.
pub fn namespace_finalizers_pending(def: &ResourceDef, obj: &Value) -> bool {
    def.storage == NAMESPACES_STORAGE
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
}

/// Remove an object for good, with the side effects of its kind.
pub fn finish_removal(state: &mut State, def: &ResourceDef, key: &ObjKey) -> Option<Arc<Stored>> {
    let gone = state.store.remove(&def.storage, key)?;
    if def.storage == CRDS_STORAGE {
        crd::unregister(state, &gone.value());
    }
    Some(gone)
}
