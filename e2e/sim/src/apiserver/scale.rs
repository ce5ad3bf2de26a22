//! The `scale` subresource (`kubectl scale`): an `autoscaling/v1` Scale view of a workload's
//! replicas, read and written through the paths of [`ScalePaths`] (built-in workloads:
//! `.spec.replicas`, `.status.replicas`, `.spec.selector`; CRDs: their `subresources.scale`).

use axum::http::Method;
use axum::response::Response;
use serde_json::{json, Value};

use super::handlers::{decode_body, served_value, PatchType, Req};
use super::machinery;
use super::objects;
use super::registry::ScalePaths;
use super::status::{json_bytes, json_response, ApiError, ApiResult};
use super::write;

fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .collect()
}

/// Read a `.a.b` path.
pub fn get_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    segments(path)
        .into_iter()
        .try_fold(obj, |cur, seg| cur.get(seg))
}

/// Write a `.a.b` path, creating objects on the way.
pub fn set_path(obj: &mut Value, path: &str, v: Value) {
    let segs = segments(path);
    let mut cur = obj;
    for (i, seg) in segs.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let map = cur.as_object_mut().expect("object ensured");
        if i + 1 == segs.len() {
            map.insert(seg.to_string(), v);
            return;
        }
        cur = map.entry(seg.to_string()).or_insert_with(|| json!({}));
    }
}

/// `{matchLabels, matchExpressions}` as the selector string a Scale reports.
pub fn selector_string(sel: &Value) -> String {
    if let Some(s) = sel.as_str() {
        return s.to_string();
    }
    let mut parts: Vec<String> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(
            match e
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default()
            {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                _ => format!("!{key}"),
            },
        );
    }
    parts.join(",")
}

/// The Scale view of an object.
pub fn scale_of(obj: &Value, paths: &ScalePaths) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut status = json!({"replicas": get_path(obj, &paths.status_replicas).and_then(Value::as_i64).unwrap_or(0)});
    if let Some(sel) = paths
        .label_selector
        .as_deref()
        .and_then(|p| get_path(obj, p))
    {
        status["selector"] = json!(selector_string(sel));
    }
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
                     "resourceVersion": meta.get("resourceVersion"), "creationTimestamp": meta.get("creationTimestamp")},
        "spec": {"replicas": get_path(obj, &paths.spec_replicas).and_then(Value::as_i64).unwrap_or(0)},
        "status": status,
    })
}

/// GET, PUT or PATCH of `{resource}/{name}/scale`.
pub fn handle(req: &Req, method: &Method, body: &[u8], content_type: &str) -> ApiResult<Response> {
    let paths = req
        .def
        .scale
        .clone()
        .ok_or_else(|| ApiError::no_route("scale"))?;
    let key = (
        req.target.namespace.clone().unwrap_or_default(),
        req.target.name.clone().unwrap_or_default(),
    );
    let mut st = req
        .api
        .state
        .lock()
        .map_err(|_| ApiError::internal("store poisoned"))?;
    let cur = st
        .store
        .get(&req.def.storage, &key)
        .ok_or_else(|| ApiError::not_found(&req.def.qualified(), &key.1))?;
    let obj = served_value(&req.def, &cur);
    let current = scale_of(&obj, &paths);
    let wanted = match *method {
        Method::GET => return Ok(json_response(200, json_bytes(&current))),
        Method::PUT => decode_body(body, content_type)?,
        _ => {
            let patch = decode_body(body, content_type)?;
            let mut s = current.clone();
            match PatchType::from_content_type(content_type)? {
                PatchType::Json => machinery::json_patch(&mut s, &patch)?,
                _ => machinery::merge_patch(&mut s, &patch),
            }
            s
        }
    };
    if let Some(rv) = wanted
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        if rv != cur.rv.to_string() {
            return Err(ApiError::stale(&req.def.qualified(), &key.1));
        }
    }
    let replicas = wanted
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::invalid(
                "autoscaling",
                "Scale",
                &key.1,
                "spec.replicas",
                "Invalid value: must be greater than or equal to 0",
            )
        })?;
    let mut new = obj.clone();
    set_path(&mut new, &paths.spec_replicas, json!(replicas));
    let old_storage = cur.value();
    let new = objects::to_storage(&req.def, new);
    let mut opts =
        write::WriteOpts::controller(req.query.get("fieldManager").unwrap_or("kubectl-scale"));
    opts.subresource = Some("scale".into());
    opts.dry_run = req.query.dry_run();
    let written = write::commit_update(&mut st, &req.def, &old_storage, new, &mut opts)?;
    Ok(json_response(
        200,
        json_bytes(&scale_of(&served_value(&req.def, &written), &paths)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_view_and_paths() {
        let d = json!({"metadata": {"name": "d", "namespace": "n"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "x"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}}, "status": {"replicas": 1}});
        let s = scale_of(&d, &ScalePaths::workload());
        assert_eq!(s["spec"]["replicas"], 2);
        assert_eq!(s["status"]["replicas"], 1);
        assert_eq!(s["status"]["selector"], "app=x,tier in (a,b)");
        let mut o = json!({});
        set_path(&mut o, ".spec.replicas", json!(5));
        assert_eq!(o, json!({"spec": {"replicas": 5}}));
        assert_eq!(get_path(&o, ".spec.replicas"), Some(&json!(5)));
    }
}
