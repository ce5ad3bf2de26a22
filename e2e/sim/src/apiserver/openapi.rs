//! OpenAPI v3 documents, as kubectl reads them: `/openapi/v3` (the index of group-versions, each
//! with a content hash) and `/openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}`.
//!
//! kubectl 1.37 needs them to know that the server validates fields itself (`fieldValidation`
//! on PATCH operations, checked by its QueryParamVerifierV3) and for `kubectl explain` of custom
//! resources. Each document lists the resource paths with their operations tagged by
//! `x-kubernetes-group-version-kind` / `x-kubernetes-action`; CRD kinds also get their
//! `openAPIV3Schema` under `components.schemas`. Built-in kinds carry no schema, so kubectl
//! computes their strategic merge patches from its compiled-in types.
//! `/openapi/v2` is not served (kubectl only falls back to it when v3 is missing).

use axum::response::Response;
use serde_json::{json, Map, Value};

use super::registry::{Registry, ResourceDef};
use super::status::{json_bytes, json_response, ApiError, ApiResult};

/// Parameters accepted by write operations.
const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];

fn param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn op(d: &ResourceDef, action: &str, params: &[&str]) -> Value {
    json!({
        "operationId": format!("{action}{}", d.kind),
        "parameters": params.iter().map(|p| param(p)).collect::<Vec<_>>(),
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": d.group, "version": d.version, "kind": d.kind},
    })
}

/// Schema name of a kind, reversed-group style (`dev.barge.batch.v1alpha1.Job`).
pub fn schema_name(d: &ResourceDef) -> String {
    let mut g: Vec<&str> = d.group.split('.').collect();
    g.reverse();
    format!("{}.{}.{}", g.join("."), d.version, d.kind)
}

/// The document of one group-version.
pub fn gv_doc(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let defs = reg.resources_of(group, version);
    if defs.is_empty() {
        return None;
    }
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for d in defs.iter().filter(|d| !d.create_only) {
        let base = if d.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", d.resource)
        } else {
            format!("{prefix}/{}", d.resource)
        };
        let mut patch_params = WRITE_PARAMS.to_vec();
        patch_params.push("force");
        paths.insert(base.clone(), json!({"get": op(d, "list", &[]), "post": op(d, "post", WRITE_PARAMS), "delete": op(d, "deletecollection", &[])}));
        paths.insert(format!("{base}/{{name}}"), json!({"get": op(d, "get", &[]), "put": op(d, "put", WRITE_PARAMS), "patch": op(d, "patch", &patch_params), "delete": op(d, "delete", &["dryRun"])}));
        if let Some(schema) = &d.schema {
            let mut s = schema.raw().clone();
            s["x-kubernetes-group-version-kind"] =
                json!([{"group": d.group, "version": d.version, "kind": d.kind}]);
            schemas.insert(schema_name(d), s);
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", super::discovery::KUBE_MAJOR, super::discovery::KUBE_MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn hash(v: &Value) -> String {
    // FNV-1a over the document: changes whenever a CRD schema or the set of resources changes.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in serde_json::to_vec(v).unwrap_or_default() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

/// The `/openapi/v3` index.
pub fn index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = vec![(String::new(), "v1".into())];
    for (g, vs) in reg.groups() {
        for v in vs {
            gvs.push((g.clone(), v));
        }
    }
    for (g, v) in gvs {
        let Some(doc) = gv_doc(reg, &g, &v) else {
            continue;
        };
        let key = if g.is_empty() {
            format!("api/{v}")
        } else {
            format!("apis/{g}/{v}")
        };
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", hash(&doc))}),
        );
    }
    json!({"paths": paths})
}

pub fn serve(reg: &Registry, path: &str) -> ApiResult<Response> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let doc = match segs.as_slice() {
        ["openapi", "v3"] => Some(index(reg)),
        ["openapi", "v3", "api", v] => gv_doc(reg, "", v),
        ["openapi", "v3", "apis", g, v] => gv_doc(reg, g, v),
        _ => None,
    };
    doc.map(|d| json_response(200, json_bytes(&d)))
        .ok_or_else(|| ApiError::no_route(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_operations_declare_field_validation() {
        let reg = Registry::with_builtins();
        let doc = gv_doc(&reg, "", "v1").unwrap();
        let p = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert!(p["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "fieldValidation" && x["in"] == "query"));
        let idx = index(&reg);
        assert!(idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .starts_with("/openapi/v3/apis/apps/v1?hash="));
    }
}
