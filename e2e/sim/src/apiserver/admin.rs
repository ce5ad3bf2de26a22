//! The sim's admin endpoints under `/sim/v1` (JSON):
//! - `GET|PUT /sim/v1/faults` — the [`FaultConfig`] in force (`DELETE` clears it);
//! - `GET /sim/v1/stats`, `POST /sim/v1/stats/reset` — request counts by verb and resource;
//! - `POST /sim/v1/nodes/{name}/lose` — node loss: the Node is marked lost
//!   (annotation `sim.barge.dev/lost`) then deleted; pod GC fails and deletes its pods;
//! - `POST /sim/v1/nodes/{name}/reclaim-spot` — a Spot interruption: the Node is annotated
//!   `sim.barge.dev/spot-reclaimed`, then lost as above (refused for a node labelled
//!   `karpenter.sh/capacity-type: on-demand`);
//! - `POST /sim/v1/compact` — drop all watch history (older resourceVersions answer 410);
//! - `GET /sim/v1/requests` — the request log of impersonated requests (a JSON list of
//!   [`RequestRecord`](super::auth::reqlog::RequestRecord)); `DELETE` empties it.

use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;
use serde_json::{json, Value};

use super::deletion::{self, DeleteOpts};
use super::faults::FaultConfig;
use super::status::{json_bytes, json_response, ApiError, ApiResult};
use super::store::NODES_STORAGE;
use super::write::{self, WriteOpts};
use super::{ApiServer, State};

/// Annotation put on a Node just before the sim deletes it for a node-loss fault.
pub const LOST_ANNOTATION: &str = "sim.barge.dev/lost";
/// Field manager of node-loss writes.
pub const NODE_LOSS_MANAGER: &str = "barge-sim-node-loss";

/// Mark a node lost and delete it. Returns the number of pods bound to it.
pub fn lose_node(state: &mut State, name: &str) -> ApiResult<usize> {
    let def = annotate_node(state, name, LOST_ANNOTATION)?;
    let pods = state
        .store
        .list(super::store::PODS_STORAGE, None, None)
        .iter()
        .filter(|p| p.node_name.as_deref() == Some(name))
        .count();
    deletion::delete(
        state,
        &def,
        &(String::new(), name.to_string()),
        &DeleteOpts {
            grace: Some(0),
            ..Default::default()
        },
    )?;
    Ok(pods)
}

/// Annotation put on a Node reclaimed by a Spot interruption (before it is lost).
pub const SPOT_RECLAIMED_ANNOTATION: &str = "sim.barge.dev/spot-reclaimed";

/// A Spot interruption: EC2 takes the instance back, so the node goes away with its pods, as in
/// [`lose_node`], after an annotation saying why. Returns the number of pods bound to it.
pub fn reclaim_spot_node(state: &mut State, name: &str) -> ApiResult<usize> {
    let node = state
        .store
        .get(NODES_STORAGE, &(String::new(), name.to_string()))
        .ok_or_else(|| ApiError::not_found("nodes", name))?;
    if node.value()["metadata"]["labels"]["karpenter.sh/capacity-type"] == json!("on-demand") {
        return Err(ApiError::bad_request(format!(
            "node {name} is not a Spot node (karpenter.sh/capacity-type: on-demand)"
        )));
    }
    annotate_node(state, name, SPOT_RECLAIMED_ANNOTATION)?;
    lose_node(state, name)
}

/// Sets `annotation: "true"` on the Node `name` (as the node-loss controller); returns the
/// Node resource's definition.
fn annotate_node(
    state: &mut State,
    name: &str,
    annotation: &str,
) -> ApiResult<Arc<super::registry::ResourceDef>> {
    let def = state
        .registry
        .preferred_for_storage(NODES_STORAGE)
        .ok_or_else(|| ApiError::internal("nodes not served"))?;
    let cur = state
        .store
        .get(NODES_STORAGE, &(String::new(), name.to_string()))
        .ok_or_else(|| ApiError::not_found("nodes", name))?;
    let old = cur.value();
    let mut new = old.clone();
    new["metadata"]["annotations"][annotation] = json!("true");
    write::commit_update(
        state,
        &def,
        &old,
        new,
        &mut WriteOpts::controller(NODE_LOSS_MANAGER),
    )?;
    Ok(def)
}

pub async fn handle(
    api: &Arc<ApiServer>,
    method: &Method,
    path: &str,
    body: &[u8],
) -> ApiResult<Response> {
    let rest = path.trim_start_matches("/sim/v1").trim_matches('/');
    let segs: Vec<&str> = rest.split('/').collect();
    let ok = |v: Value| Ok(json_response(200, json_bytes(&v)));
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["faults"]) => ok(serde_json::to_value(api.faults.get()).unwrap_or_default()),
        ("PUT", ["faults"]) | ("POST", ["faults"]) => {
            let cfg: FaultConfig = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid fault config: {e}")))?;
            if !(0.0..=1.0).contains(&cfg.error_rate) {
                return Err(ApiError::bad_request("errorRate must be between 0 and 1"));
            }
            api.faults.set(cfg.clone());
            ok(serde_json::to_value(cfg).unwrap_or_default())
        }
        ("DELETE", ["faults"]) => {
            api.faults.set(FaultConfig::default());
            ok(serde_json::to_value(FaultConfig::default()).unwrap_or_default())
        }
        ("GET", ["stats"]) => ok(serde_json::to_value(api.stats_snapshot()).unwrap_or_default()),
        ("POST", ["stats", "reset"]) => {
            api.stats.reset();
            ok(json!({"reset": true}))
        }
        ("POST", ["nodes", name, "lose"]) => {
            let pods = {
                let mut st = api
                    .state
                    .lock()
                    .map_err(|_| ApiError::internal("store poisoned"))?;
                lose_node(&mut st, name)?
            };
            api.wake_controllers.notify_one();
            ok(json!({"node": name, "lost": true, "pods": pods}))
        }
        ("POST", ["nodes", name, "reclaim-spot"]) => {
            let pods = {
                let mut st = api
                    .state
                    .lock()
                    .map_err(|_| ApiError::internal("store poisoned"))?;
                reclaim_spot_node(&mut st, name)?
            };
            api.wake_controllers.notify_one();
            ok(json!({"node": name, "reclaimed": true, "pods": pods}))
        }
        ("GET", ["requests"]) => ok(serde_json::to_value(api.request_log()).unwrap_or_default()),
        ("DELETE", ["requests"]) => {
            api.request_log.clear();
            ok(json!({"cleared": true}))
        }
        ("POST", ["compact"]) => {
            let rv = {
                let mut st = api
                    .state
                    .lock()
                    .map_err(|_| ApiError::internal("store poisoned"))?;
                st.store.compact();
                st.store.rv
            };
            ok(json!({"compactedTo": rv.to_string()}))
        }
        _ => Err(ApiError::no_route(path)),
    }
}
