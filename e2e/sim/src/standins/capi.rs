//! A Cluster API stand-in (test infrastructure): keeps `spec.replicas` Nodes for every
//! `cluster.x-k8s.io` MachineDeployment (read at the storage version, `v1beta2`).
//!
//! Faithfulness, and what stands in for the objects the sim does not have (MachineSets,
//! Machines, infrastructure templates):
//! - **Nodes.** One Node per replica, named `<machinedeployment>-<5 chars>`, with what Cluster
//!   API puts on a Node: the template labels it propagates (keys under `node-role.kubernetes.io`,
//!   `node-restriction.kubernetes.io` and `node.cluster.x-k8s.io`, and their subdomains — other
//!   template labels stay on the Machine, as upstream), the annotations
//!   `cluster.x-k8s.io/cluster-name`, `cluster.x-k8s.io/cluster-namespace`,
//!   `cluster.x-k8s.io/machine`, `cluster.x-k8s.io/owner-kind: MachineSet` and
//!   `cluster.x-k8s.io/owner-name`, and the template's `spec.taints` (v1beta2). Because there are
//!   no Machine objects, the sim also labels the Node with what upstream puts on the Machine:
//!   `cluster.x-k8s.io/cluster-name` and `cluster.x-k8s.io/deployment-name` (sim-only on a
//!   Node: on a real cluster find the Machine through the `cluster.x-k8s.io/machine`
//!   annotation). The cloud provider's labels follow: `node.kubernetes.io/instance-type` — the
//!   type comes from the annotation `sim.barge.dev/instance-type` on the MachineDeployment or
//!   its template metadata (standing in for the infrastructure template's `instanceType`,
//!   default `m5.large`), with that type's capacity — plus `kubernetes.io/arch|os|hostname`,
//!   `topology.kubernetes.io/zone|region` and a `providerID` `aws:///us-east-1a/i-…`.
//! - **In-place propagation.** A change of the template's labels reaches the existing Nodes
//!   without a rollout, as upstream propagates `spec.template.metadata.labels` in place to the
//!   MachineSets and Machines, and the Machine controller syncs the propagated keys to the Node
//!   (recording them in the Node annotation `cluster.x-k8s.io/labels-from-machine`, so a key
//!   removed from the template is removed from the Node too). Upstream does not propagate to
//!   Machines marked for deletion; the sim does not to Nodes being deleted.
//! - **Scale-in** removes first the nodes carrying `cluster.x-k8s.io/delete-machine` (any
//!   value, as upstream's MachineSet deletion priority). Upstream that annotation is on the
//!   Machine; the sim reads it on the Node (the object that stands for the Machine here). Then
//!   the newest nodes go (upstream's default order is Random; `spec.deletion.order: Oldest`
//!   is honoured). A removed node is cordoned and deleted; pod GC fails the pods still on it
//!   (upstream drains first).
//! - **Status**: `replicas`, `readyReplicas`, `availableReplicas`, `upToDateReplicas`,
//!   `selector` (the `scale` subresource's `labelSelectorPath`), `observedGeneration`, `phase`.
//!   Scaling through the `scale` subresource works as the API server serves it for the CRD.
//! - Nodes of a deleted MachineDeployment are deleted. `spec.replicas` absent counts as 1 (the
//!   upstream default).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Api, Client};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::catalog;
use super::{node_views, StandinHandle};
use crate::kubelet::consts::{ANNOTATION_CAPACITY, LABEL_SIMULATED};

pub const ANNOTATION_DELETE_MACHINE: &str = "cluster.x-k8s.io/delete-machine";
pub const ANNOTATION_MACHINE: &str = "cluster.x-k8s.io/machine";
pub const ANNOTATION_CLUSTER_NAME: &str = "cluster.x-k8s.io/cluster-name";
pub const ANNOTATION_CLUSTER_NAMESPACE: &str = "cluster.x-k8s.io/cluster-namespace";
pub const ANNOTATION_OWNER_KIND: &str = "cluster.x-k8s.io/owner-kind";
pub const ANNOTATION_OWNER_NAME: &str = "cluster.x-k8s.io/owner-name";
/// Node annotation: the label keys the Machine controller keeps in sync on the Node.
pub const ANNOTATION_LABELS_FROM_MACHINE: &str = "cluster.x-k8s.io/labels-from-machine";
pub const LABEL_DEPLOYMENT_NAME: &str = "cluster.x-k8s.io/deployment-name";
pub const LABEL_CLUSTER_NAME: &str = "cluster.x-k8s.io/cluster-name";
/// The instance type of a MachineDeployment's nodes (sim-only).
pub const ANNOTATION_INSTANCE_TYPE: &str = "sim.barge.dev/instance-type";
pub const DEFAULT_INSTANCE_TYPE: &str = "m5.large";
const ZONE: &str = "us-east-1a";

/// How the stand-in behaves.
#[derive(Debug, Clone)]
pub struct ClusterApiConfig {
    /// Time between passes.
    pub interval: Duration,
}

impl Default for ClusterApiConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(100),
        }
    }
}

/// `cluster.x-k8s.io/v1beta2` `MachineDeployment`.
pub fn machinedeployment_resource() -> ApiResource {
    ApiResource {
        group: "cluster.x-k8s.io".into(),
        version: "v1beta2".into(),
        api_version: "cluster.x-k8s.io/v1beta2".into(),
        kind: "MachineDeployment".into(),
        plural: "machinedeployments".into(),
    }
}

/// Whether Cluster API propagates a Machine label of this key to its Node.
pub fn propagated_label(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return false;
    };
    [
        "node-role.kubernetes.io",
        "node-restriction.kubernetes.io",
        "node.cluster.x-k8s.io",
    ]
    .iter()
    .any(|d| prefix == *d || prefix.ends_with(&format!(".{d}")))
}

/// Entry point.
pub struct ClusterApi;

impl ClusterApi {
    pub fn start(client: Client, config: ClusterApiConfig) -> StandinHandle {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut last_status: BTreeMap<(String, String), Value> = BTreeMap::new();
            loop {
                pass(&client, &mut last_status).await;
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(config.interval) => {}
                }
            }
        });
        StandinHandle::new(stop, task)
    }
}

fn str_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

async fn pass(client: &Client, last_status: &mut BTreeMap<(String, String), Value>) {
    let mds_api: Api<DynamicObject> = Api::all_with(client.clone(), &machinedeployment_resource());
    let mds = match mds_api.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(kube::Error::Api(e)) if e.code == 404 => return, // CRD not installed
        Err(e) => {
            tracing::debug!(error = %e, "cluster-api stand-in: listing MachineDeployments");
            return;
        }
    };
    let nodes_api: Api<Node> = Api::all(client.clone());
    let pods_api: Api<Pod> = Api::all(client.clone());
    let (Ok(nodes), Ok(pods)) = (
        nodes_api.list(&ListParams::default()).await,
        pods_api.list(&ListParams::default()).await,
    ) else {
        return;
    };
    let views = node_views(&nodes.items, &pods.items);
    // (namespace, machinedeployment) → its nodes
    let mut owned: BTreeMap<(String, String), Vec<&super::NodeView>> = BTreeMap::new();
    for v in &views {
        let ann = v.node.metadata.annotations.clone().unwrap_or_default();
        if let (Some(md), Some(ns)) = (
            v.labels.get(LABEL_DEPLOYMENT_NAME),
            ann.get(ANNOTATION_CLUSTER_NAMESPACE),
        ) {
            owned.entry((ns.clone(), md.clone())).or_default().push(v);
        }
    }
    let mut live = Vec::new();
    for md in &mds {
        let (Some(ns), Some(name)) = (md.metadata.namespace.clone(), md.metadata.name.clone())
        else {
            continue;
        };
        let key = (ns.clone(), name.clone());
        live.push(key.clone());
        if md.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let spec = md.data.get("spec").cloned().unwrap_or_default();
        let want = spec
            .get("replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0) as usize;
        let mut mine: Vec<&super::NodeView> = owned
            .get(&key)
            .map(|v| v.iter().copied().filter(|n| !n.deleting).collect())
            .unwrap_or_default();
        if mine.len() < want {
            for _ in mine.len()..want {
                let node = new_node(&ns, &name, md, &spec);
                if let Err(e) = nodes_api.create(&PostParams::default(), &node).await {
                    tracing::warn!(error = %e, "cluster-api stand-in: creating a node");
                }
            }
        } else if mine.len() > want {
            let oldest_first = spec["deletion"]["order"].as_str() == Some("Oldest");
            mine.sort_by(|a, b| {
                let marked = |n: &super::NodeView| {
                    n.node
                        .metadata
                        .annotations
                        .as_ref()
                        .is_some_and(|a| a.contains_key(ANNOTATION_DELETE_MACHINE))
                };
                let age = |n: &super::NodeView| {
                    (n.node.metadata.creation_timestamp.clone(), n.name.clone())
                };
                marked(b).cmp(&marked(a)).then_with(|| {
                    if oldest_first {
                        age(a).cmp(&age(b))
                    } else {
                        age(b).cmp(&age(a))
                    }
                })
            });
            let excess = mine.len() - want;
            for v in mine.drain(..excess) {
                let cordon = json!({"spec": {"unschedulable": true}});
                let _ = nodes_api
                    .patch(&v.name, &PatchParams::default(), &Patch::Merge(&cordon))
                    .await;
                tracing::info!(
                    node = v.name,
                    machinedeployment = name,
                    "cluster-api stand-in: scaling in"
                );
                if let Err(e) = nodes_api.delete(&v.name, &DeleteParams::default()).await {
                    tracing::warn!(error = %e, "cluster-api stand-in: deleting a node");
                }
            }
        }
        propagate_labels(&nodes_api, &spec, &mine).await;
        // Observed state: nodes created in this pass are counted on the next one.
        let replicas = mine.len();
        let ready = mine.iter().filter(|n| n.ready).count();
        let selector = spec
            .get("selector")
            .map(crate::apiserver::scale::selector_string)
            .unwrap_or_default();
        let status = json!({
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "upToDateReplicas": replicas,
            "selector": selector,
            "observedGeneration": md.metadata.generation.unwrap_or(0),
            "phase": if ready == want && replicas == want { "Running" } else if replicas > want { "ScalingDown" } else { "ScalingUp" },
        });
        if last_status.get(&key) == Some(&status) {
            continue;
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &ns, &machinedeployment_resource());
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
        {
            Ok(_) => {
                last_status.insert(key, status);
            }
            Err(e) => tracing::debug!(error = %e, "cluster-api stand-in: MachineDeployment status"),
        }
    }
    // Nodes of MachineDeployments that are gone.
    for (key, nodes) in &owned {
        if live.contains(key) {
            continue;
        }
        for v in nodes.iter().filter(|n| !n.deleting) {
            let _ = nodes_api.delete(&v.name, &DeleteParams::default()).await;
        }
    }
    last_status.retain(|k, _| live.contains(k));
}

/// The template labels Cluster API puts on a Node.
fn node_labels_of(spec: &Value) -> BTreeMap<String, String> {
    str_map(&spec["template"]["metadata"]["labels"])
        .into_iter()
        .filter(|(k, _)| propagated_label(k))
        .collect()
}

/// The merge patch that brings a Node's propagated labels in line with the template (None: in
/// line already).
pub fn label_sync_patch(node: &Node, wanted: &BTreeMap<String, String>) -> Option<Value> {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let synced: Vec<String> = node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_LABELS_FROM_MACHINE))
        .map(|keys| {
            keys.split(',')
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let keys: Vec<&str> = wanted.keys().map(String::as_str).collect();
    let record = keys.join(",");
    let mut patch_labels = serde_json::Map::new();
    for (k, v) in wanted {
        if labels.get(k) != Some(v) {
            patch_labels.insert(k.clone(), json!(v));
        }
    }
    for k in &synced {
        if !wanted.contains_key(k) && labels.contains_key(k) {
            patch_labels.insert(k.clone(), Value::Null);
        }
    }
    if patch_labels.is_empty() && synced.join(",") == record {
        return None;
    }
    Some(json!({"metadata": {
        "labels": patch_labels,
        "annotations": {ANNOTATION_LABELS_FROM_MACHINE: record},
    }}))
}

/// Syncs the template's propagated labels onto the deployment's live Nodes.
async fn propagate_labels(nodes_api: &Api<Node>, spec: &Value, nodes: &[&super::NodeView]) {
    let wanted = node_labels_of(spec);
    for v in nodes.iter().filter(|n| !n.deleting) {
        if let Some(patch) = label_sync_patch(&v.node, &wanted) {
            if let Err(e) = nodes_api
                .patch(&v.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::debug!(error = %e, node = v.name, "cluster-api stand-in: syncing labels");
            }
        }
    }
}

fn new_node(ns: &str, md_name: &str, md: &DynamicObject, spec: &Value) -> Node {
    let template = spec.get("template").cloned().unwrap_or_default();
    let cluster = spec["clusterName"].as_str().unwrap_or_default().to_string();
    let annotations = md.metadata.annotations.clone().unwrap_or_default();
    let template_annotations = str_map(&template["metadata"]["annotations"]);
    let type_name = annotations
        .get(ANNOTATION_INSTANCE_TYPE)
        .or_else(|| template_annotations.get(ANNOTATION_INSTANCE_TYPE))
        .cloned()
        .unwrap_or_else(|| DEFAULT_INSTANCE_TYPE.to_string());
    let it = catalog::lookup(&type_name).or_else(|| catalog::lookup(DEFAULT_INSTANCE_TYPE));
    let machine_set = format!("{md_name}-sim");
    let name = format!("{md_name}-{}", super::suffix());
    let mut labels = node_labels_of(spec);
    let synced_keys: Vec<String> = labels.keys().cloned().collect();
    for (k, v) in [
        (LABEL_DEPLOYMENT_NAME, md_name.to_string()),
        (LABEL_CLUSTER_NAME, cluster.clone()),
        ("node.kubernetes.io/instance-type", type_name.clone()),
        ("kubernetes.io/arch", "amd64".into()),
        ("kubernetes.io/os", "linux".into()),
        ("kubernetes.io/hostname", name.clone()),
        ("topology.kubernetes.io/zone", ZONE.into()),
        ("topology.kubernetes.io/region", "us-east-1".into()),
        (LABEL_SIMULATED, "true".into()),
    ] {
        labels.insert(k.to_string(), v);
    }
    let taints: Vec<Value> = template["spec"]["taints"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    let mut t = t.clone();
                    if let Some(o) = t.as_object_mut() {
                        o.remove("propagation");
                    }
                    t
                })
                .collect()
        })
        .unwrap_or_default();
    let mut node_annotations = json!({
        ANNOTATION_CLUSTER_NAME: cluster,
        ANNOTATION_CLUSTER_NAMESPACE: ns,
        ANNOTATION_MACHINE: name,
        ANNOTATION_OWNER_KIND: "MachineSet",
        ANNOTATION_OWNER_NAME: machine_set,
        ANNOTATION_LABELS_FROM_MACHINE: synced_keys.join(","),
    });
    if let Some(it) = it {
        node_annotations[ANNOTATION_CAPACITY] = json!(catalog::node_capacity(it).to_string());
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": node_annotations},
        "spec": {
            "taints": taints,
            "providerID": format!("aws:///{ZONE}/{}", super::instance_id()),
        },
    }))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagates_the_label_domains_cluster_api_does() {
        assert!(propagated_label("node-role.kubernetes.io/worker"));
        assert!(propagated_label("node.cluster.x-k8s.io/ce"));
        assert!(propagated_label("barge.node.cluster.x-k8s.io/ce"));
        assert!(!propagated_label("batch.barge.dev/compute-environment"));
        assert!(!propagated_label("plain"));
    }

    #[test]
    fn template_label_changes_reach_existing_nodes_in_place() {
        let wanted: BTreeMap<String, String> =
            [("node.cluster.x-k8s.io/ce".to_string(), "a".to_string())].into();
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n", "labels": {"node-role.kubernetes.io/old": "", "other": "x"},
                         "annotations": {ANNOTATION_LABELS_FROM_MACHINE: "node-role.kubernetes.io/old"}},
        }))
        .expect("node");
        let patch = label_sync_patch(&node, &wanted).expect("a change");
        assert_eq!(
            patch,
            json!({"metadata": {
                "labels": {"node.cluster.x-k8s.io/ce": "a", "node-role.kubernetes.io/old": null},
                "annotations": {ANNOTATION_LABELS_FROM_MACHINE: "node.cluster.x-k8s.io/ce"},
            }})
        );
        let synced: Node = serde_json::from_value(json!({
            "metadata": {"name": "n", "labels": {"node.cluster.x-k8s.io/ce": "a", "other": "x"},
                         "annotations": {ANNOTATION_LABELS_FROM_MACHINE: "node.cluster.x-k8s.io/ce"}},
        }))
        .expect("node");
        assert_eq!(label_sync_patch(&synced, &wanted), None);
    }
}
