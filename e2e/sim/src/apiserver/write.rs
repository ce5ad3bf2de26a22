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
use super::store::{ObjKey, Stored, CRDS_STORAGE, NAMESPACES_STORAGE};
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

/// Create an object. `obj` is in the served version of `def`.
pub fn create(
    state: &mut State,
    def: &ResourceDef,
    mut obj: Value,
    url_ns: Option<&str>,
    opts: &mut WriteOpts,
) -> ApiResult<Arc<Stored>> {
    check_kind(def, &mut obj)?;
    check_namespace(def, &mut obj, url_ns)?;
    let now = objects::now_rfc3339();
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
    let ns = meta_str(&obj, "namespace").unwrap_or_default().to_string();
    if def.namespaced {
        check_namespace_open(state, def, &ns, &name)?;
    }
    if def.custom && crd::is_terminating(state, &def.storage) {
        return Err(ApiError::method_not_allowed(
            "create not allowed while custom resource definition is terminating",
        ));
    }
    check_escalation(state, def, &obj, None, opts)?;
    let key: ObjKey = (ns, name.clone());
    if state.store.get(&def.storage, &key).is_some() {
        return Err(ApiError::already_exists(&def.qualified(), &name));
    }
    let uid = uuid::Uuid::new_v4().to_string();
    {
        let m = meta_mut(&mut obj);
        m.insert("uid".into(), json!(uid));
        m.insert("creationTimestamp".into(), json!(now));
        if def.has_generation {
            m.insert("generation".into(), json!(1));
        }
    }
    match def.storage.as_str() {
        CRDS_STORAGE => crd::prepare(state, &mut obj, None)?,
        "/services" => {
            let n = state.next_service_ip();
            objects::allocate_cluster_ip(&mut obj, n);
        }
        _ => {}
    }
    if !opts.keep_managed_fields {
        machinery::track_update(
            None,
            &mut obj,
            &opts.manager,
            &now,
            opts.subresource.as_deref(),
            def.schema.as_deref(),
            &def.group,
            &def.kind,
            def.has_status(),
        );
    }
    let mut stored = objects::to_storage(def, obj);
    if opts.dry_run {
        return Ok(Arc::new(Stored::new(&stored, 0)));
    }
    let written = state.store.put(&def.storage, &mut stored);
    for owner in &written.owners {
        if !state.store.uid_exists(&owner.uid) {
            // A dependent of a missing owner: the garbage collector deletes it.
            state.store.removed_uids.push(owner.uid.clone());
        }
    }
    if def.storage == CRDS_STORAGE {
        crd::register(state, &stored)?;
    }
    Ok(written)
}

/// Create an object produced by server-side apply (its managedFields are already computed).
pub fn create_applied(
    state: &mut State,
    def: &ResourceDef,
    obj: Value,
    url_ns: Option<&str>,
    opts: &mut WriteOpts,
) -> ApiResult<Arc<Stored>> {
    opts.keep_managed_fields = true;
    create(state, def, obj, url_ns, opts)
}

/// Apply the subresource rules of an update to `new`, from `old`.
fn merge_subresource(def: &ResourceDef, old: &Value, new: Value, sub: Option<&str>) -> Value {
    match sub {
        Some("status") => {
            let mut out = old.clone();
            match new.get("status") {
                Some(s) => out["status"] = s.clone(),
                None => {
                    if let Some(o) = out.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            // A status writer still sends metadata; kube-apiserver keeps the live one except
            // the resourceVersion precondition, which the caller already checked.
            out
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
    check_escalation(state, def, &new, Some(old), opts)?;
    {
        let om = old.get("metadata").cloned().unwrap_or(json!({}));
        let m = meta_mut(&mut new);
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
    let name = meta_str(&new, "name").unwrap_or_default().to_string();
    objects::default_builtin(def, &mut new, false);
    if old.pointer("/metadata/deletionTimestamp").is_some() {
        let before = objects::finalizers(old);
        let added: Vec<String> = objects::finalizers(&new)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            return Err(ApiError::invalid(&def.group, &def.kind, &name, "metadata.finalizers", &format!("Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}")));
        }
    }
    if opts.subresource.is_none() || opts.subresource.as_deref() == Some("status") {
        schema_checks(def, &mut new, Some(old), opts)?;
    }
    super::validate::validate(def, &new).map_err(ApiError::from_status)?;
    if opts.subresource.is_none() {
        super::validate::validate_update(def, old, &new).map_err(ApiError::from_status)?;
    }
    if def.has_generation
        && objects::spec_part(old, def.has_status()) != objects::spec_part(&new, def.has_status())
    {
        let g = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        meta_mut(&mut new).insert("generation".into(), json!(g));
    }
    if def.storage == CRDS_STORAGE {
        crd::prepare(state, &mut new, Some(old))?;
    }
    if !opts.keep_managed_fields {
        machinery::track_update(
            Some(old),
            &mut new,
            &opts.manager,
            &now,
            opts.subresource.as_deref(),
            def.schema.as_deref(),
            &def.group,
            &def.kind,
            def.has_status(),
        );
    }
    let key: ObjKey = (
        meta_str(&new, "namespace").unwrap_or_default().to_string(),
        name,
    );
    if objects::same_object(old, &new) {
        if let Some(cur) = state.store.get(&def.storage, &key) {
            return Ok(cur);
        }
    }
    if opts.dry_run {
        return Ok(Arc::new(Stored::new(&new, 0)));
    }
    let written = state.store.put(&def.storage, &mut new);
    if def.storage == CRDS_STORAGE {
        crd::register(state, &new)?;
    }
    if written.deleting
        && written.finalizers.is_empty()
        && !grace_pending(&new)
        && !namespace_finalizers_pending(def, &new)
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

/// Update a live object by key (PUT): precondition on resourceVersion, then [`commit_update`].
pub fn update(
    state: &mut State,
    def: &ResourceDef,
    key: &ObjKey,
    new: Value,
    opts: &mut WriteOpts,
) -> ApiResult<Arc<Stored>> {
    let cur = state
        .store
        .get(&def.storage, key)
        .ok_or_else(|| ApiError::not_found(&def.qualified(), &key.1))?;
    if let Some(rv) = meta_str(&new, "resourceVersion").filter(|s| !s.is_empty()) {
        if rv != cur.rv.to_string() {
            return Err(ApiError::stale(&def.qualified(), &key.1));
        }
    }
    let old = cur.value();
    let mut new = new;
    check_kind(def, &mut new)?;
    let new = objects::to_storage(def, new);
    commit_update(state, def, &old, new, opts)
}
