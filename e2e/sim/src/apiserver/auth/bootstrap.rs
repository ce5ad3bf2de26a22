//! The RBAC objects a fresh cluster starts with, as kube-apiserver's `rbac/bootstrap-roles`
//! post-start hook creates them: the ClusterRoles and ClusterRoleBindings of
//! [`upstream/cluster-roles.yaml`](upstream/cluster-roles.yaml) and
//! [`upstream/cluster-role-bindings.yaml`](upstream/cluster-role-bindings.yaml), copied from
//! kubernetes' bootstrappolicy (labelled `kubernetes.io/bootstrapping: rbac-defaults`). The
//! aggregated roles (`admin`, `edit`, `view`) start without rules and are aggregated
//! ([`super::aggregation`]) before the cluster serves its first request.

use std::sync::OnceLock;

use serde_json::{json, Value};

use super::rbac::{CLUSTER_ROLES_STORAGE, CLUSTER_ROLE_BINDINGS_STORAGE};
use crate::apiserver::objects;
use crate::apiserver::registry::Registry;
use crate::apiserver::store::Store;
use crate::apiserver::write::{self, WriteOpts};
use crate::apiserver::State;

const CLUSTER_ROLES_YAML: &str = include_str!("upstream/cluster-roles.yaml");
const CLUSTER_ROLE_BINDINGS_YAML: &str = include_str!("upstream/cluster-role-bindings.yaml");

/// Field manager of the bootstrap writes.
pub const BOOTSTRAP_MANAGER: &str = "kube-apiserver";

fn items(yaml: &str) -> Vec<Value> {
    let list: Value = serde_yaml::from_str(yaml).unwrap_or(Value::Null);
    list.get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The bootstrap ClusterRoles (parsed once per process).
pub fn cluster_roles() -> &'static [Value] {
    static ROLES: OnceLock<Vec<Value>> = OnceLock::new();
    ROLES.get_or_init(|| items(CLUSTER_ROLES_YAML))
}

/// The bootstrap ClusterRoleBindings (parsed once per process).
pub fn cluster_role_bindings() -> &'static [Value] {
    static BINDINGS: OnceLock<Vec<Value>> = OnceLock::new();
    BINDINGS.get_or_init(|| items(CLUSTER_ROLE_BINDINGS_YAML))
}

/// Create the bootstrap roles and bindings through the write path (validation, defaulting,
/// managed fields), then aggregate the roles.
fn create_all(state: &mut State) {
    for (storage, objects) in [
        (CLUSTER_ROLES_STORAGE, cluster_roles()),
        (CLUSTER_ROLE_BINDINGS_STORAGE, cluster_role_bindings()),
    ] {
        let Some(def) = state.registry.preferred_for_storage(storage) else {
            tracing::error!(storage, "RBAC kinds are not served");
            continue;
        };
        for obj in objects {
            if let Err(e) = write::create(
                state,
                &def,
                obj.clone(),
                None,
                &mut WriteOpts::controller(BOOTSTRAP_MANAGER),
            ) {
                tracing::error!(error = ?e.body, "creating a bootstrap RBAC object failed");
            }
        }
    }
    super::aggregation::run(state);
}

/// The stored form of the bootstrap objects, made once per process by [`create_all`] on a
/// scratch store: (storage, object without uid and resourceVersion).
fn prepared() -> &'static [(&'static str, Value)] {
    static PREPARED: OnceLock<Vec<(&'static str, Value)>> = OnceLock::new();
    PREPARED.get_or_init(|| {
        let mut scratch = State {
            store: Store::new(1, 16),
            registry: Registry::with_builtins(),
            next_ip: 0,
            rbac: None,
            aggregation_seen_rv: 0,
        };
        create_all(&mut scratch);
        let mut out = Vec::new();
        for storage in [CLUSTER_ROLES_STORAGE, CLUSTER_ROLE_BINDINGS_STORAGE] {
            for s in scratch.store.list(storage, None, None) {
                let mut v = s.value();
                let m = objects::meta_mut(&mut v);
                m.remove("uid");
                m.remove("resourceVersion");
                out.push((storage, v));
            }
        }
        out
    })
}

/// Create the bootstrap roles and bindings in a fresh store, already aggregated. Building them
/// through the write path costs tens of milliseconds (managed fields of long rule lists), so
/// that is done once per process and each cluster gets copies with their own uids and
/// timestamps — the same objects, as every new cluster would create them.
pub fn install(state: &mut State) {
    let now = objects::now_rfc3339();
    for (storage, obj) in prepared() {
        let mut v = obj.clone();
        let m = objects::meta_mut(&mut v);
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now));
        if let Some(fields) = m.get_mut("managedFields").and_then(Value::as_array_mut) {
            for f in fields {
                f["time"] = json!(now);
            }
        }
        state.store.put(storage, &mut v);
    }
    state.aggregation_seen_rv = state.store.last_write_rv(CLUSTER_ROLES_STORAGE);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_documents_parse() {
        let names: Vec<&str> = cluster_roles()
            .iter()
            .map(|r| r["metadata"]["name"].as_str().unwrap())
            .collect();
        for want in [
            "cluster-admin",
            "admin",
            "edit",
            "view",
            "system:aggregate-to-admin",
            "system:aggregate-to-edit",
            "system:aggregate-to-view",
            "system:discovery",
            "system:basic-user",
            "system:public-info-viewer",
        ] {
            assert!(names.contains(&want), "{want} in {names:?}");
        }
        for r in cluster_roles() {
            assert_eq!(
                r["metadata"]["labels"]["kubernetes.io/bootstrapping"], "rbac-defaults",
                "{}",
                r["metadata"]["name"]
            );
        }
        let bindings: Vec<&str> = cluster_role_bindings()
            .iter()
            .map(|r| r["roleRef"]["name"].as_str().unwrap())
            .collect();
        assert!(bindings.iter().all(|b| names.contains(b)), "{bindings:?}");
        assert!(bindings.contains(&"system:discovery"));
    }
}
