//! HTTP handlers of resource requests: get, list, create, update, patch (merge, JSON, strategic,
//! apply), delete, deletecollection, pods/binding, pods/eviction and the access reviews.
//!
//! Each handler decodes the request into plain values, takes the store lock once, runs the
//! storage rules of write.rs / deletion.rs and renders the answer as kube-apiserver does (object
//! JSON, List, Table, or Status). Watches and logs live in watch.rs and logs.rs.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};

use super::auth::{self, UserInfo};
use super::deletion::{self, DeleteOpts, Deleted, Propagation};
use super::machinery::{self, FieldSelector, LabelSelector};
use super::objects::{self, meta_str};
use super::paths::{Query, Target};
use super::registry::ResourceDef;
use super::status::{json_bytes, json_response, success_status, ApiError, ApiResult};
use super::store::{ObjKey, Stored, INDEXED_FIELDS};
use super::write::{self, FieldValidation, WriteOpts};
use super::ApiServer;

/// Everything a handler needs about its request.
pub struct Req<'a> {
    pub api: &'a Arc<ApiServer>,
    pub def: Arc<ResourceDef>,
    pub target: Target,
    pub query: Query,
    pub headers: HeaderMap,
    /// The impersonated user; None: `system:admin` (no impersonation).
    pub user: Option<Arc<UserInfo>>,
}

impl Req<'_> {
    /// The user the request is authenticated as.
    pub fn user_info(&self) -> UserInfo {
        self.user
            .as_deref()
            .cloned()
            .unwrap_or_else(UserInfo::admin)
    }

    fn key(&self) -> ObjKey {
        (
            self.target.namespace.clone().unwrap_or_default(),
            self.target.name.clone().unwrap_or_default(),
        )
    }

    fn accept(&self) -> &str {
        self.headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn wants_table(&self) -> bool {
        self.accept()
            .split(',')
            .any(|part| part.contains("as=Table"))
    }

    /// fieldManager, defaulting to the User-Agent's product as kube-apiserver does.
    fn manager(&self) -> String {
        if let Some(m) = self.query.get("fieldManager") {
            return m.to_string();
        }
        let ua = self
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        ua.split('/')
            .next()
            .unwrap_or("unknown")
            .chars()
            .take(128)
            .collect()
    }

    /// The store lock.
    fn lock(&self) -> ApiResult<std::sync::MutexGuard<'_, super::State>> {
        self.api
            .state
            .lock()
            .map_err(|_| ApiError::internal("store poisoned"))
    }

    /// Runs the commit of a write prepared without the lock under it, timing the critical
    /// section (the stats' `commit_nanos`).
    fn commit<T>(&self, f: impl FnOnce(&mut super::State) -> ApiResult<T>) -> ApiResult<T> {
        let mut st = self.lock()?;
        let start = std::time::Instant::now();
        let out = f(&mut st);
        drop(st);
        self.api.stats.record_commit(start.elapsed());
        out
    }

    fn write_opts(&self) -> ApiResult<WriteOpts> {
        Ok(WriteOpts {
            manager: self.manager(),
            subresource: self.target.subresource.clone(),
            dry_run: self.query.dry_run(),
            validation: FieldValidation::parse(self.query.get("fieldValidation"))?,
            warnings: Vec::new(),
            keep_managed_fields: false,
            user: self.user.clone(),
        })
    }
}

/// Decode a JSON (or YAML) request body.
pub fn decode_body(body: &[u8], content_type: &str) -> ApiResult<Value> {
    if content_type.contains("protobuf") {
        return super::protobuf::decode(body)
            .map_err(|e| ApiError::new(415, "UnsupportedMediaType", e, None));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(e) => {
            if content_type.contains("yaml") {
                serde_yaml::from_slice::<Value>(body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
            } else {
                Err(ApiError::bad_request(format!(
                    "couldn't get version/kind; json parse error: {e}"
                )))
            }
        }
    }
}

/// The JSON bytes of a stored object as served by `def`.
pub fn render(def: &ResourceDef, s: &Stored) -> Bytes {
    if objects::needs_conversion(def) {
        json_bytes(&objects::from_storage(def, s.value()))
    } else {
        s.json.clone()
    }
}

/// A stored object as a `Value` in the served version.
pub fn served_value(def: &ResourceDef, s: &Stored) -> Value {
    objects::from_storage(def, s.value())
}

fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(http::header::WARNING, v);
        }
    }
    resp
}

fn object_response(req: &Req, code: u16, s: &Stored) -> Response {
    if req.wants_table() {
        let v = served_value(&req.def, s);
        return match table_of(req, &[v]) {
            Ok(t) => json_response(code, json_bytes(&t)),
            Err(e) => e.into_response(),
        };
    }
    json_response(code, render(&req.def, s))
}

fn table_of(req: &Req, items: &[Value]) -> ApiResult<Value> {
    let include = req.query.get("includeObject").unwrap_or("Metadata");
    machinery::table(
        items,
        req.def.custom,
        &req.def.group,
        &req.def.kind,
        &req.def.printer_columns,
        jiff::Timestamp::now(),
        include,
    )
}

/// GET of one object (main resource or status).
pub fn get(req: &Req) -> ApiResult<Response> {
    let s = req
        .api
        .state
        .lock()
        .map_err(|_| ApiError::internal("store poisoned"))?
        .store
        .get(&req.def.storage, &req.key());
    let s = s.ok_or_else(|| ApiError::not_found(&req.def.qualified(), &req.key().1))?;
    Ok(object_response(req, 200, &s))
}

/// Parsed label and field selectors of a list or watch.
pub struct Selectors {
    pub labels: Option<LabelSelector>,
    pub fields: Option<FieldSelector>,
    /// Field selector reads only indexed fields.
    indexed: bool,
}

impl Selectors {
    pub fn parse(q: &Query, def: &ResourceDef) -> ApiResult<Self> {
        let labels = q
            .get("labelSelector")
            .map(LabelSelector::parse)
            .transpose()?;
        let fields = q
            .get("fieldSelector")
            .map(|f| {
                let custom = def.custom.then_some(def.selectable_fields.as_slice());
                FieldSelector::parse(f, &def.group, &def.kind, custom)
            })
            .transpose()?;
        let indexed = fields.as_ref().is_none_or(|f| {
            f.keys()
                .iter()
                .all(|k| INDEXED_FIELDS.contains(&k.as_str()))
        });
        Ok(Selectors {
            labels,
            fields,
            indexed,
        })
    }

    pub fn matches(&self, s: &Stored) -> bool {
        if let Some(l) = &self.labels {
            if !l.matches(&s.labels) {
                return false;
            }
        }
        match &self.fields {
            None => true,
            Some(f) if self.indexed => f.matches(&s.indexed_fields()),
            Some(f) => f.matches(&s.fields_at(f.keys())),
        }
    }
}

/// `continue` tokens: base64 of {"rv": N, "start": "ns/name"}.
fn encode_continue(rv: u64, key: &ObjKey) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"rv": rv, "ns": key.0, "name": key.1}).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, ObjKey)> {
    use base64::Engine;
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let ns = v.get("ns").and_then(Value::as_str).ok_or_else(bad)?;
    let name = v.get("name").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((rv, (ns.to_string(), name.to_string())))
}

/// A List body from already-rendered items.
pub fn list_body(
    def: &ResourceDef,
    items: &[Bytes],
    rv: u64,
    cont: Option<&str>,
    remaining: Option<u64>,
) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    if let Some(r) = remaining {
        meta["remainingItemCount"] = json!(r);
    }
    let head = json!({"kind": def.list_kind(), "apiVersion": def.api_version(), "metadata": meta});
    let mut out = serde_json::to_vec(&head).unwrap_or_default();
    out.pop(); // the closing brace
    out.extend_from_slice(b",\"items\":[");
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(it);
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

/// LIST with selectors and limit/continue pagination.
pub fn list(req: &Req) -> ApiResult<Response> {
    let sel = Selectors::parse(&req.query, &req.def)?;
    let limit = req
        .query
        .int("limit")
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let ns = req.target.namespace.as_deref();
    let (list_rv, after) = match req.query.get("continue") {
        Some(tok) => {
            let (rv, key) = decode_continue(tok)?;
            (rv, Some(key))
        }
        None => (0, None),
    };
    let lock = || {
        req.api
            .state
            .lock()
            .map_err(|_| ApiError::internal("store poisoned"))
    };
    let rv = {
        let st = lock()?;
        if after.is_some() && list_rv < st.store.compacted_rv(&req.def.storage) {
            return Err(ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."));
        }
        if after.is_some() {
            list_rv
        } else {
            st.store.rv
        }
    };
    // Objects are taken from the store in chunks (the lock is held only to copy their handles)
    // and matched outside the lock; the scan stops once the page is full, so a paginated list
    // of n objects costs O(n) in all, not O(n) per page.
    let chunk = limit.map_or(usize::MAX, |l| (l + 1).max(1024));
    let mut picked: Vec<Arc<Stored>> = Vec::new();
    let mut cursor = after;
    let mut full = false;
    'scan: loop {
        let (candidates, more) =
            lock()?
                .store
                .list_page(&req.def.storage, ns, cursor.as_ref(), Some(chunk));
        for s in candidates {
            if !sel.matches(&s) {
                cursor = Some(s.key());
                continue;
            }
            if limit.is_some_and(|l| picked.len() == l) {
                full = true;
                break 'scan;
            }
            cursor = Some(s.key());
            picked.push(s);
        }
        if !more {
            break;
        }
    }
    let last = picked.last().filter(|_| full).map(|s| s.key());
    let cont = last.as_ref().map(|key| encode_continue(rv, key));
    // `remainingItemCount` only for lists without selectors, as kube-apiserver does.
    let remaining = match (&last, sel.labels.is_none() && sel.fields.is_none()) {
        (Some(key), true) => Some(lock()?.store.count_after(&req.def.storage, ns, key) as u64),
        _ => None,
    };
    if req.wants_table() {
        let items: Vec<Value> = picked.iter().map(|s| served_value(&req.def, s)).collect();
        let mut t = table_of(req, &items)?;
        t["metadata"] = json!({"resourceVersion": rv.to_string()});
        if let Some(c) = &cont {
            t["metadata"]["continue"] = json!(c);
        }
        return Ok(json_response(200, json_bytes(&t)));
    }
    let items: Vec<Bytes> = picked.iter().map(|s| render(&req.def, s)).collect();
    Ok(json_response(
        200,
        list_body(&req.def, &items, rv, cont.as_deref(), remaining),
    ))
}

/// POST: create.
pub fn create(req: &Req, body: &[u8], content_type: &str) -> ApiResult<Response> {
    if req.def.create_only {
        return review(req, body, content_type);
    }
    let obj = decode_body(body, content_type)?;
    let mut opts = req.write_opts()?;
    let ns = req.target.namespace.as_deref();
    let stored = if write::lock_free(&req.def) {
        // Everything but the cluster checks and the store itself happens without the lock.
        let prepared = write::prepare_create(&req.def, obj, ns, &mut opts)?;
        req.commit(|st| write::commit_create(st, &req.def, prepared, &opts))?
    } else {
        write::create(&mut *req.lock()?, &req.def, obj, ns, &mut opts)?
    };
    req.api.wake_controllers.notify_one();
    Ok(with_warnings(
        object_response(req, 201, &stored),
        &opts.warnings,
    ))
}

/// PUT: update (main resource, status, namespace finalize).
pub fn update(req: &Req, body: &[u8], content_type: &str) -> ApiResult<Response> {
    let mut obj = decode_body(body, content_type)?;
    let key = req.key();
    if let Some(n) = meta_str(&obj, "name") {
        if n != key.1 {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({})",
                key.1
            )));
        }
    }
    write::check_namespace(&req.def, &mut obj, req.target.namespace.as_deref())?;
    let mut opts = req.write_opts()?;
    let def = &req.def;
    let (_, stored) = guaranteed_update(req, &key, &mut opts, |cur| {
        let cur = cur.ok_or_else(|| ApiError::not_found(&def.qualified(), &key.1))?;
        if let Some(rv) = meta_str(&obj, "resourceVersion").filter(|s| !s.is_empty()) {
            if rv != cur.rv.to_string() {
                return Err(ApiError::stale(&def.qualified(), &key.1));
            }
        }
        let mut new = obj.clone();
        write::check_kind(def, &mut new)?;
        Ok(Intent::Update {
            base_rv: cur.rv,
            old: cur.value(),
            new: objects::to_storage(def, new),
            applied: false,
        })
    })?;
    req.api.wake_controllers.notify_one();
    Ok(with_warnings(
        object_response(req, 200, &stored),
        &opts.warnings,
    ))
}

/// What a write computed from the object it read (see [`guaranteed_update`]).
enum Intent {
    /// Create this object (served form; server-side apply of an object that does not exist, its
    /// managedFields already computed).
    Create(Value),
    /// Replace the object read at `base_rv` (`old`, storage form) with `new` (storage form);
    /// `applied`: managedFields were computed by server-side apply.
    Update {
        base_rv: u64,
        old: Value,
        new: Value,
        applied: bool,
    },
}

/// kube-apiserver's `GuaranteedUpdate`: read the live object, compute the write from it without
/// holding the store lock (`compute`: the patch or the replacement; then defaulting, validation,
/// managedFields and encoding in [`write::prepare_update`]), and commit it in a short critical
/// section only if the object is still at the revision it was computed from; otherwise compute
/// again from the fresh object. An apply that creates retries the same way when another write
/// created the object first. Kinds that are not [`write::lock_free`] compute the same way but
/// store with [`write::commit_update`] under the lock. Answers the HTTP code (200, or 201 for a
/// create) and the stored object; `opts` ends as the committed attempt left it (warnings).
fn guaranteed_update<F>(
    req: &Req,
    key: &ObjKey,
    opts: &mut WriteOpts,
    mut compute: F,
) -> ApiResult<(u16, Arc<Stored>)>
where
    F: FnMut(Option<Arc<Stored>>) -> ApiResult<Intent>,
{
    let def = &req.def;
    let ns = req.target.namespace.as_deref();
    let lock_free = write::lock_free(def);
    loop {
        let cur = req.lock()?.store.get(&def.storage, key);
        let mut attempt = opts.clone();
        let done = match compute(cur)? {
            Intent::Create(obj) => {
                attempt.keep_managed_fields = true;
                let created = if lock_free {
                    let prepared = write::prepare_create(def, obj, ns, &mut attempt)?;
                    req.commit(|st| write::commit_create(st, def, prepared, &attempt))
                } else {
                    write::create(&mut *req.lock()?, def, obj, ns, &mut attempt)
                };
                match created {
                    Ok(s) => Some((201, s)),
                    Err(e) if e.code == 409 && e.body["reason"] == "AlreadyExists" => None,
                    Err(e) => return Err(e),
                }
            }
            Intent::Update {
                base_rv,
                old,
                new,
                applied,
            } => {
                attempt.keep_managed_fields = applied;
                if lock_free {
                    let prepared = write::prepare_update(def, &old, new, &mut attempt)?;
                    req.commit(|st| write::commit_prepared_update(st, def, base_rv, prepared))?
                        .map(|s| (200, s))
                } else {
                    let mut st = req.lock()?;
                    match st.store.get(&def.storage, key) {
                        Some(c) if c.rv == base_rv => Some((
                            200,
                            write::commit_update(&mut st, def, &old, new, &mut attempt)?,
                        )),
                        Some(_) => None,
                        None => return Err(ApiError::not_found(&def.qualified(), &key.1)),
                    }
                }
            }
        };
        if let Some(out) = done {
            *opts = attempt;
            return Ok(out);
        }
    }
}

/// The four PATCH content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> ApiResult<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchType::Apply),
            other => Err(ApiError::unsupported_media(other)),
        }
    }
}

/// PATCH in all four flavours; apply may create.
pub fn patch(req: &Req, body: &[u8], content_type: &str) -> ApiResult<Response> {
    let ptype = PatchType::from_content_type(content_type)?;
    let patch_body = decode_body(
        body,
        if ptype == PatchType::Apply {
            "application/yaml"
        } else {
            content_type
        },
    )?;
    if ptype == PatchType::Strategic && req.def.custom {
        return Err(ApiError::unsupported_media(
            "application/strategic-merge-patch+json",
        ));
    }
    let mut opts = req.write_opts()?;
    if ptype == PatchType::Apply && req.query.get("fieldManager").is_none() {
        return Err(ApiError::bad_request("PATCH /apply requires fieldManager"));
    }
    let key = req.key();
    let def = &req.def;
    let force = req.query.flag("force");
    let now = objects::now_rfc3339();
    let manager = opts.manager.clone();
    let (code, stored) = guaranteed_update(req, &key, &mut opts, |cur| {
        match cur {
            None if ptype == PatchType::Apply && req.target.subresource.is_none() => {
                let mut applied = patch_body.clone();
                if let Some(n) = meta_str(&applied, "name") {
                    if n != key.1 {
                        return Err(ApiError::bad_request(format!(
                            "the name of the object ({n}) does not match the name on the URL ({})",
                            key.1
                        )));
                    }
                }
                write::check_kind(def, &mut applied)?;
                write::check_namespace(def, &mut applied, req.target.namespace.as_deref())?;
                objects::meta_mut(&mut applied).insert("name".into(), json!(key.1));
                let obj = machinery::server_side_apply(
                    None,
                    &applied,
                    &manager,
                    force,
                    def.schema.as_deref(),
                    &def.group,
                    &def.kind,
                    &now,
                    None,
                    def.has_status(),
                )?;
                Ok(Intent::Create(obj))
            }
            None => Err(ApiError::not_found(&def.qualified(), &key.1)),
            Some(cur) => {
                let old_storage = cur.value();
                // The served object, read only by the patch types that need it besides the copy
                // they patch.
                let served = || objects::from_storage(def, old_storage.clone());
                let new = match ptype {
                    PatchType::Merge => {
                        let mut n = served();
                        machinery::merge_patch(&mut n, &patch_body);
                        n
                    }
                    PatchType::Json => machinery::json_patch_owned(served(), &patch_body)?,
                    PatchType::Strategic => {
                        let old = served();
                        machinery::strategic_merge_patch(&old, &patch_body, &def.group, &def.kind)?
                    }
                    PatchType::Apply => {
                        let old = served();
                        let mut applied = patch_body.clone();
                        write::check_kind(def, &mut applied)?;
                        machinery::server_side_apply(
                            Some(&old),
                            &applied,
                            &manager,
                            force,
                            def.schema.as_deref(),
                            &def.group,
                            &def.kind,
                            &now,
                            req.target.subresource.as_deref(),
                            def.has_status(),
                        )?
                    }
                };
                // A patch that names a resourceVersion is a precondition.
                let wanted_rv = match ptype {
                    PatchType::Json => meta_str(&new, "resourceVersion")
                        .filter(|rv| Some(*rv) != meta_str(&old_storage, "resourceVersion"))
                        .map(String::from),
                    _ => patch_body
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .map(String::from),
                };
                if let Some(rv) = wanted_rv {
                    if rv != cur.rv.to_string() {
                        return Err(ApiError::stale(&def.qualified(), &key.1));
                    }
                }
                let mut new = new;
                write::check_kind(def, &mut new)?;
                Ok(Intent::Update {
                    base_rv: cur.rv,
                    old: old_storage,
                    new: objects::to_storage(def, new),
                    applied: ptype == PatchType::Apply,
                })
            }
        }
    })?;
    req.api.wake_controllers.notify_one();
    Ok(with_warnings(
        object_response(req, code, &stored),
        &opts.warnings,
    ))
}

/// DeleteOptions from the query and an optional JSON body.
fn delete_opts(req: &Req, body: &[u8]) -> ApiResult<DeleteOpts> {
    let ct = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        decode_body(body, ct)?
    };
    let mut o = DeleteOpts {
        grace: req
            .query
            .int("gracePeriodSeconds")
            .or_else(|| b.get("gracePeriodSeconds").and_then(Value::as_i64)),
        propagation: Propagation::parse(
            req.query
                .get("propagationPolicy")
                .or_else(|| b.get("propagationPolicy").and_then(Value::as_str)),
        )?,
        precondition_uid: b
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from),
        precondition_rv: b
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from),
        dry_run: req.query.dry_run()
            || b.get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x == "All")),
    };
    let orphan = req
        .query
        .get("orphanDependents")
        .map(|v| v == "true")
        .or_else(|| b.get("orphanDependents").and_then(Value::as_bool));
    if o.propagation.is_none() {
        o.propagation = orphan.map(|orph| {
            if orph {
                Propagation::Orphan
            } else {
                Propagation::Background
            }
        });
    }
    Ok(o)
}

/// DELETE of one object.
pub fn delete(req: &Req, body: &[u8]) -> ApiResult<Response> {
    let opts = delete_opts(req, body)?;
    let key = req.key();
    let out = {
        let mut st = req
            .api
            .state
            .lock()
            .map_err(|_| ApiError::internal("store poisoned"))?;
        deletion::delete(&mut st, &req.def, &key, &opts)?
    };
    req.api.wake_controllers.notify_one();
    Ok(match out {
        Deleted::Pending(s) => object_response(req, 200, &s),
        Deleted::Gone(s) if req.def.resource == "pods" || req.def.custom => {
            object_response(req, 200, &s)
        }
        Deleted::Gone(s) => json_response(
            200,
            json_bytes(&success_status(
                &s.name,
                &req.def.group,
                &req.def.resource,
                &s.uid,
            )),
        ),
    })
}

/// DELETE of a collection (with selectors).
pub fn delete_collection(req: &Req, body: &[u8]) -> ApiResult<Response> {
    let opts = delete_opts(req, body)?;
    let sel = Selectors::parse(&req.query, &req.def)?;
    let (rv, deleted) = {
        let mut st = req
            .api
            .state
            .lock()
            .map_err(|_| ApiError::internal("store poisoned"))?;
        let objs = st
            .store
            .list(&req.def.storage, req.target.namespace.as_deref(), None);
        let mut out = Vec::new();
        for s in objs.into_iter().filter(|s| sel.matches(s)) {
            match deletion::delete(&mut st, &req.def, &s.key(), &opts) {
                Ok(Deleted::Gone(x)) | Ok(Deleted::Pending(x)) => out.push(render(&req.def, &x)),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        (st.store.rv, out)
    };
    req.api.wake_controllers.notify_one();
    Ok(json_response(
        200,
        list_body(&req.def, &deleted, rv, None, None),
    ))
}

/// POST pods/{name}/binding: assign a node.
pub fn bind(req: &Req, body: &[u8], content_type: &str) -> ApiResult<Response> {
    let b = decode_body(body, content_type)?;
    let node = b
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::invalid("", "Binding", &req.key().1, "target.name", "Required value")
        })?
        .to_string();
    let key = req.key();
    {
        let mut st = req
            .api
            .state
            .lock()
            .map_err(|_| ApiError::internal("store poisoned"))?;
        let cur = st
            .store
            .get(&req.def.storage, &key)
            .ok_or_else(|| ApiError::not_found(&req.def.qualified(), &key.1))?;
        let old = cur.value();
        if cur.deleting {
            return Err(ApiError::conflict(
                "pods/binding",
                &key.1,
                &format!(
                    "pod {} is being deleted, cannot be assigned to a host",
                    key.1
                ),
            ));
        }
        if let Some(n) = cur.node_name.as_ref() {
            return Err(ApiError::conflict(
                "pods/binding",
                &key.1,
                &format!("pod {} is already assigned to node \"{n}\"", key.1),
            ));
        }
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!(node);
        let mut conds: Vec<Value> = new
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        conds.retain(|c| c["type"] != "PodScheduled");
        conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": objects::now_rfc3339()}));
        new["status"]["conditions"] = json!(conds);
        let mut opts = req.write_opts()?;
        opts.subresource = Some("binding".into());
        write::commit_update(&mut st, &req.def, &old, new, &mut opts)?;
    }
    Ok(json_response(
        201,
        json_bytes(
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ),
    ))
}

/// POST pods/{name}/eviction: delete the pod (no disruption budgets are enforced).
pub fn evict(req: &Req, body: &[u8], content_type: &str) -> ApiResult<Response> {
    let b = decode_body(body, content_type)?;
    let opts_body = b
        .get("deleteOptions")
        .map(|d| serde_json::to_vec(d).unwrap_or_default())
        .unwrap_or_default();
    let opts = delete_opts(req, &opts_body)?;
    {
        let mut st = req
            .api
            .state
            .lock()
            .map_err(|_| ApiError::internal("store poisoned"))?;
        deletion::delete(&mut st, &req.def, &req.key(), &opts)?;
    }
    req.api.wake_controllers.notify_one();
    Ok(json_response(
        201,
        json_bytes(
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ),
    ))
}

/// Access reviews (SelfSubjectAccessReview, SubjectAccessReview, LocalSubjectAccessReview,
/// SelfSubjectRulesReview, SelfSubjectReview): answered by the authorizer requests go through
/// ([`auth::review`]) for the request's user; nothing is stored.
fn review(req: &Req, body: &[u8], content_type: &str) -> ApiResult<Response> {
    let mut b = decode_body(body, content_type)?;
    write::check_kind(&req.def, &mut b)?;
    let snap = req.api.rbac_snapshot();
    let out = auth::review::answer(
        &req.def.kind,
        b,
        &req.user_info(),
        req.target.namespace.as_deref(),
        &snap,
    )?;
    Ok(json_response(201, json_bytes(&out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let key = ("ns".to_string(), "a/b".to_string());
        let tok = encode_continue(42, &key);
        assert_eq!(decode_continue(&tok).unwrap(), (42, key));
        assert_eq!(decode_continue("!!").unwrap_err().code, 400);
    }

    #[test]
    fn patch_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json").unwrap(),
            PatchType::Merge
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml; charset=utf-8").unwrap(),
            PatchType::Apply
        );
        assert_eq!(
            PatchType::from_content_type("text/plain").unwrap_err().code,
            415
        );
    }
}
