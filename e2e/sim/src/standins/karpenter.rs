//! A Karpenter stand-in (test infrastructure): provisions Nodes for pending pods from
//! `karpenter.sh/v1` NodePools and removes empty ones after `consolidateAfter`.
//!
//! What it does, after upstream Karpenter (kubernetes-sigs/karpenter, AWS provider):
//! - **Provisioning.** Every pass it takes the pods that wait for a node (no `nodeName`,
//!   default scheduler) oldest first. A pod that fits a Node already there — Ready or still
//!   booting (Karpenter counts in-flight capacity) — is left to the scheduler. Otherwise the
//!   NodePools are tried by `spec.weight` (highest first, then name); for each, the capacity
//!   types its requirements allow (spot before on-demand; on-demand only when
//!   `karpenter.sh/capacity-type` is not constrained, Karpenter's default) and the catalog's
//!   instance types, cheapest first, are tried until one node satisfies the NodePool's
//!   requirements (`In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`) and the pod's
//!   nodeSelector, required node affinity, tolerations of the template taints and resource
//!   requests, within `spec.limits` (every resource named there, summed over the NodePool's
//!   nodes). It then creates the Node — the NodeClaim step is skipped — named
//!   `<nodepool>-<5 chars>` as NodeClaims are, with the template labels, the labels of
//!   single-valued `In` requirements, the well-known labels (`karpenter.sh/nodepool`,
//!   `node.kubernetes.io/instance-type`, `karpenter.sh/capacity-type`,
//!   `karpenter.k8s.aws/instance-family|instance-category|instance-cpu|instance-memory|
//!   instance-gpu-count`, `kubernetes.io/arch|os|hostname`, `topology.kubernetes.io/zone|region`,
//!   `karpenter.sh/registered`), the template taints, a `providerID` `aws:///us-east-1a/i-…`,
//!   and the catalog capacity. Later pending pods pack onto it. The simulated kubelet makes it
//!   Ready after its boot delay and binds the pods (as the kube-scheduler would).
//!   Not modelled: bin-packing several pods into one bigger type, `minValues`, startup taints,
//!   NodeClasses (`nodeClassRef` is not checked), expiry, drift, budgets.
//! - **Consolidation** (`WhenEmpty` and `WhenEmptyOrUnderutilized` both remove empty nodes only):
//!   a Ready node with no non-DaemonSet pod for `spec.disruption.consolidateAfter` (`Never`
//!   disables it) is tainted `karpenter.sh/disrupted:NoSchedule`, as Karpenter does before it
//!   terminates a node, and deleted on the next pass if still empty. A node that a pending pod
//!   would go to (nominated, in Karpenter's words) is not empty: a pod bound or nominated
//!   meanwhile removes the taint, so `consolidateAfter: 0s` (the CRD's default) does not remove
//!   a fresh node before the scheduler has bound its pod. Nodes of a deleted NodePool are deleted.
//! - **Status**: `status.resources` (cpu, memory, pods, ephemeral-storage, nodes) and
//!   `status.nodes` of each NodePool.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, Pod, Taint};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Api, Client};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::catalog::{self, InstanceType, CATALOG};
use super::{node_views, parse_duration, pending_pods, NodeView, StandinHandle};
use crate::kubelet::consts::{ANNOTATION_CAPACITY, LABEL_SIMULATED};
use crate::kubelet::placement::{first_fit, requirement_matches, Candidate};
use crate::kubelet::resources::{
    add_into, parse_resource_strings, pod_requests, sub_from, Resources,
};

fn parse_milli_map(m: &BTreeMap<String, String>) -> Resources {
    parse_resource_strings(m).unwrap_or_default()
}

pub const LABEL_NODEPOOL: &str = "karpenter.sh/nodepool";
pub const LABEL_CAPACITY_TYPE: &str = "karpenter.sh/capacity-type";
pub const LABEL_INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
pub const LABEL_REGISTERED: &str = "karpenter.sh/registered";
pub const TAINT_DISRUPTED: &str = "karpenter.sh/disrupted";
pub const FIELD_MANAGER: &str = "karpenter";
const ZONE: &str = "us-east-1a";
const REGION: &str = "us-east-1";

/// How the stand-in behaves.
#[derive(Debug, Clone)]
pub struct KarpenterConfig {
    /// Time between passes.
    pub interval: Duration,
}

impl Default for KarpenterConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(100),
        }
    }
}

/// `karpenter.sh/v1` `NodePool`.
pub fn nodepool_resource() -> ApiResource {
    ApiResource {
        group: "karpenter.sh".into(),
        version: "v1".into(),
        api_version: "karpenter.sh/v1".into(),
        kind: "NodePool".into(),
        plural: "nodepools".into(),
    }
}

/// Entry point.
pub struct Karpenter;

impl Karpenter {
    pub fn start(client: Client, config: KarpenterConfig) -> StandinHandle {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut ctl = Controller {
                client,
                empty_since: BTreeMap::new(),
                last_status: BTreeMap::new(),
            };
            loop {
                ctl.pass().await;
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(config.interval) => {}
                }
            }
        });
        StandinHandle::new(stop, task)
    }
}

struct Controller {
    client: Client,
    empty_since: BTreeMap<String, Instant>,
    last_status: BTreeMap<String, Value>,
}

/// One NodePool, parsed.
struct Pool {
    name: String,
    weight: i64,
    labels: BTreeMap<String, String>,
    taints: Vec<Taint>,
    requirements: Vec<NodeSelectorRequirement>,
    limits: Resources,
    consolidate_after: Option<Duration>,
    /// Summed capacity of its nodes.
    usage: Resources,
    nodes: usize,
}

impl Pool {
    fn parse(obj: &DynamicObject) -> Option<Pool> {
        let name = obj.metadata.name.clone()?;
        let spec = obj.data.get("spec")?;
        let template = spec.get("template").cloned().unwrap_or_default();
        let labels = template["metadata"]["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let taints = serde_json::from_value(template["spec"]["taints"].clone()).unwrap_or_default();
        let requirements =
            serde_json::from_value(template["spec"]["requirements"].clone()).unwrap_or_default();
        let limits: BTreeMap<String, String> = spec
            .get("limits")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let s = v
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string());
                        (k.clone(), s)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let consolidate_after = spec["disruption"]["consolidateAfter"]
            .as_str()
            .map_or(Some(Duration::ZERO), parse_duration);
        Some(Pool {
            name,
            weight: spec.get("weight").and_then(Value::as_i64).unwrap_or(0),
            labels,
            taints,
            requirements,
            limits: parse_milli_map(&limits),
            consolidate_after,
            usage: Resources::new(),
            nodes: 0,
        })
    }

    /// The capacity types this pool may launch, preferred first.
    fn capacity_types(&self) -> Vec<&'static str> {
        let constrained = self
            .requirements
            .iter()
            .any(|r| r.key == LABEL_CAPACITY_TYPE);
        if !constrained {
            return vec!["on-demand"];
        }
        ["spot", "on-demand"]
            .into_iter()
            .filter(|ct| {
                let v = ct.to_string();
                self.requirements
                    .iter()
                    .filter(|r| r.key == LABEL_CAPACITY_TYPE)
                    .all(|r| requirement_matches(r, Some(&v)))
            })
            .collect()
    }

    /// The labels of a node of `it` / `capacity_type` from this pool, or `None` when the
    /// pool's requirements exclude it.
    fn node_labels(
        &self,
        name: &str,
        it: &InstanceType,
        capacity_type: &str,
    ) -> Option<BTreeMap<String, String>> {
        let mut labels = self.labels.clone();
        let category: String = it
            .family
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        let mut well_known: Vec<(&str, String)> = vec![
            (LABEL_NODEPOOL, self.name.clone()),
            (LABEL_INSTANCE_TYPE, it.name.to_string()),
            (LABEL_CAPACITY_TYPE, capacity_type.to_string()),
            ("karpenter.k8s.aws/instance-family", it.family.to_string()),
            ("karpenter.k8s.aws/instance-category", category),
            ("karpenter.k8s.aws/instance-cpu", it.vcpus.to_string()),
            (
                "karpenter.k8s.aws/instance-memory",
                it.memory_mib.to_string(),
            ),
            ("kubernetes.io/arch", "amd64".into()),
            ("kubernetes.io/os", "linux".into()),
            ("kubernetes.io/hostname", name.to_string()),
            ("topology.kubernetes.io/zone", ZONE.into()),
            ("topology.kubernetes.io/region", REGION.into()),
            (LABEL_REGISTERED, "true".into()),
            (LABEL_SIMULATED, "true".into()),
        ];
        if it.gpus > 0 {
            well_known.push(("karpenter.k8s.aws/instance-gpu-count", it.gpus.to_string()));
        }
        for (k, v) in well_known {
            labels.insert(k.to_string(), v);
        }
        for r in &self.requirements {
            let values = r.values.as_deref().unwrap_or_default();
            if r.operator == "In" && !labels.contains_key(&r.key) && !values.is_empty() {
                labels.insert(r.key.clone(), values[0].clone());
            }
        }
        self.requirements
            .iter()
            .all(|r| requirement_matches(r, labels.get(&r.key)))
            .then_some(labels)
    }

    fn within_limits(&self, it: &InstanceType) -> bool {
        let mut after = self.usage.clone();
        add_into(&mut after, &capacity_of(it));
        self.limits
            .iter()
            .all(|(k, limit)| after.get(k).copied().unwrap_or(0) <= *limit)
    }
}

fn capacity_of(it: &InstanceType) -> Resources {
    let declared: BTreeMap<String, String> =
        serde_json::from_value(catalog::node_capacity(it)).unwrap_or_default();
    parse_milli_map(&declared)
}

impl Controller {
    async fn pass(&mut self) {
        let pools_api: Api<DynamicObject> =
            Api::all_with(self.client.clone(), &nodepool_resource());
        let pools = match pools_api.list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(kube::Error::Api(e)) if e.code == 404 => return, // CRD not installed
            Err(e) => {
                tracing::debug!(error = %e, "karpenter stand-in: listing NodePools");
                return;
            }
        };
        let nodes_api: Api<Node> = Api::all(self.client.clone());
        let pods_api: Api<Pod> = Api::all(self.client.clone());
        let (Ok(nodes), Ok(pods)) = (
            nodes_api.list(&ListParams::default()).await,
            pods_api.list(&ListParams::default()).await,
        ) else {
            return;
        };
        let views = node_views(&nodes.items, &pods.items);
        let mut pools: Vec<Pool> = pools
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(Pool::parse)
            .collect();
        pools.sort_by(|a, b| b.weight.cmp(&a.weight).then(a.name.cmp(&b.name)));
        for v in &views {
            if let Some(pool) = v
                .labels
                .get(LABEL_NODEPOOL)
                .and_then(|n| pools.iter_mut().find(|p| &p.name == n))
            {
                add_into(&mut pool.usage, &v.allocatable);
                pool.nodes += 1;
            }
        }
        let nominated = self.provision(&mut pools, &views, &pods.items).await;
        self.consolidate(&pools, &views, &nominated).await;
        self.report(&pools_api, &pools).await;
    }

    /// Launches nodes for the pending pods that fit nowhere; returns the existing nodes pending
    /// pods are nominated to (Karpenter does not disrupt those, and aborts a disruption).
    async fn provision(
        &mut self,
        pools: &mut [Pool],
        views: &[NodeView],
        pods: &[Pod],
    ) -> BTreeSet<String> {
        // Nodes a pod may go to: Ready ones and the NodePools' in-flight ones (a node being
        // disrupted counts: a pod nominated to it aborts the disruption).
        let mut candidates: Vec<Candidate> = views
            .iter()
            .filter(|v| !v.deleting && (v.ready || v.labels.contains_key(LABEL_NODEPOOL)))
            .map(|v| {
                let mut c = v.candidate();
                c.taints.retain(|t| t.key != TAINT_DISRUPTED);
                c
            })
            .collect();
        let existing: BTreeSet<String> = candidates.iter().map(|c| c.name.clone()).collect();
        let mut nominated = BTreeSet::new();
        for pod in pending_pods(pods) {
            let Some(spec) = pod.spec.as_ref() else {
                continue;
            };
            let Ok(request) = pod_requests(spec) else {
                continue;
            };
            if let Ok(c) = first_fit(spec, &request, &candidates) {
                let name = c.name.clone();
                if existing.contains(&name) {
                    nominated.insert(name.clone());
                }
                if let Some(c) = candidates.iter_mut().find(|c| c.name == name) {
                    sub_from(&mut c.free, &request);
                    c.free_pods -= 1;
                }
                continue;
            }
            let Some((pool_idx, node, mut cand)) = choose(pools, spec, &request) else {
                continue;
            };
            let nodes: Api<Node> = Api::all(self.client.clone());
            match nodes.create(&PostParams::default(), &node).await {
                Ok(_) => {
                    let pool = &mut pools[pool_idx];
                    let cap = node_capacity(&node);
                    add_into(&mut pool.usage, &cap);
                    pool.nodes += 1;
                    sub_from(&mut cand.free, &request);
                    cand.free_pods -= 1;
                    tracing::info!(
                        node = cand.name,
                        nodepool = pool.name,
                        "karpenter stand-in: launched a node"
                    );
                    candidates.push(cand);
                }
                Err(e) => tracing::warn!(error = %e, "karpenter stand-in: creating a node"),
            }
        }
        nominated
    }

    async fn consolidate(
        &mut self,
        pools: &[Pool],
        views: &[NodeView],
        nominated: &BTreeSet<String>,
    ) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let now = Instant::now();
        let mut seen = BTreeSet::new();
        for v in views {
            let Some(pool_name) = v.labels.get(LABEL_NODEPOOL) else {
                continue;
            };
            if v.deleting {
                continue;
            }
            seen.insert(v.name.clone());
            let Some(pool) = pools.iter().find(|p| &p.name == pool_name) else {
                // The NodePool is gone: its nodes go too.
                let _ = nodes.delete(&v.name, &DeleteParams::default()).await;
                continue;
            };
            let tainted = v.taints().iter().any(|t| t.key == TAINT_DISRUPTED);
            let busy = v.workload_pods > 0 || nominated.contains(&v.name);
            if !v.ready || busy {
                self.empty_since.remove(&v.name);
                if tainted && busy {
                    self.set_disrupted(&nodes, v, false).await;
                }
                continue;
            }
            let since = *self.empty_since.entry(v.name.clone()).or_insert(now);
            let Some(after) = pool.consolidate_after else {
                continue;
            };
            if now.duration_since(since) < after {
                continue;
            }
            if !tainted {
                self.set_disrupted(&nodes, v, true).await;
            } else {
                tracing::info!(
                    node = v.name,
                    nodepool = pool.name,
                    "karpenter stand-in: consolidating an empty node"
                );
                if let Err(e) = nodes.delete(&v.name, &DeleteParams::default()).await {
                    tracing::warn!(error = %e, "karpenter stand-in: deleting a node");
                }
                self.empty_since.remove(&v.name);
            }
        }
        self.empty_since.retain(|n, _| seen.contains(n));
    }

    async fn set_disrupted(&self, nodes: &Api<Node>, v: &NodeView, on: bool) {
        let mut taints: Vec<Taint> = v
            .taints()
            .into_iter()
            .filter(|t| t.key != TAINT_DISRUPTED)
            .collect();
        if on {
            taints.push(Taint {
                key: TAINT_DISRUPTED.into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            });
        }
        let patch = json!({"spec": {"taints": taints}});
        if let Err(e) = nodes
            .patch(&v.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(error = %e, "karpenter stand-in: tainting a node");
        }
    }

    async fn report(&mut self, api: &Api<DynamicObject>, pools: &[Pool]) {
        for p in pools {
            let get = |k: &str| p.usage.get(k).copied().unwrap_or(0);
            let status = json!({
                "resources": {
                    "cpu": milli_string(get("cpu")),
                    "memory": format!("{}Mi", get("memory") / 1000 / (1024 * 1024)),
                    "pods": milli_string(get("pods")),
                    "ephemeral-storage": format!("{}Gi", get("ephemeral-storage") / 1000 / (1024 * 1024 * 1024)),
                    "nodes": p.nodes.to_string(),
                },
                "nodes": p.nodes,
            });
            if self.last_status.get(&p.name) == Some(&status) {
                continue;
            }
            let patch = json!({"status": status});
            match api
                .patch_status(&p.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.last_status.insert(p.name.clone(), status);
                }
                Err(e) => tracing::debug!(error = %e, "karpenter stand-in: NodePool status"),
            }
        }
        self.last_status
            .retain(|n, _| pools.iter().any(|p| &p.name == n));
    }
}

fn milli_string(m: i128) -> String {
    if m % 1000 == 0 {
        (m / 1000).to_string()
    } else {
        format!("{m}m")
    }
}

fn node_capacity(node: &Node) -> Resources {
    super::allocatable(node)
}

/// The first (pool, instance type, capacity type) that can take the pod: the Node to create
/// and its candidate view.
fn choose(
    pools: &[Pool],
    spec: &k8s_openapi::api::core::v1::PodSpec,
    request: &Resources,
) -> Option<(usize, Node, Candidate)> {
    for (i, pool) in pools.iter().enumerate() {
        let name = format!("{}-{}", pool.name, super::suffix());
        let mut options: Vec<(&InstanceType, &str)> = pool
            .capacity_types()
            .into_iter()
            .flat_map(|ct| CATALOG.iter().map(move |it| (it, ct)))
            .collect();
        options.sort_by_key(|(it, ct)| (catalog::price(it, ct), it.name.clone()));
        for (it, ct) in options {
            let Some(labels) = pool.node_labels(&name, it, ct) else {
                continue;
            };
            if !pool.within_limits(it) {
                continue;
            }
            let cand = Candidate {
                name: name.clone(),
                labels: labels.clone(),
                taints: pool.taints.clone(),
                unschedulable: false,
                free: capacity_of(it),
                free_pods: 110,
            };
            if first_fit(spec, request, std::slice::from_ref(&cand)).is_err() {
                continue;
            }
            let node: Node = serde_json::from_value(json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": labels,
                    "annotations": {
                        ANNOTATION_CAPACITY: catalog::node_capacity(it).to_string(),
                        "karpenter.sh/nodepool-hash-version": "v3",
                    },
                },
                "spec": {
                    "taints": pool.taints,
                    "providerID": format!("aws:///{ZONE}/{}", super::instance_id()),
                },
            }))
            .ok()?;
            return Some((i, node, cand));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standins::catalog::lookup;

    fn pool(requirements: Value, limits: Value) -> Pool {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
            "metadata": {"name": "p"},
            "spec": {
                "template": {
                    "metadata": {"labels": {"team": "a"}},
                    "spec": {"requirements": requirements},
                },
                "limits": limits,
            },
        }))
        .expect("nodepool");
        Pool::parse(&obj).expect("parse")
    }

    #[test]
    fn capacity_type_defaults_to_on_demand_and_prefers_spot() {
        assert_eq!(
            pool(json!([]), json!({})).capacity_types(),
            vec!["on-demand"]
        );
        let both = pool(
            json!([{"key": LABEL_CAPACITY_TYPE, "operator": "In", "values": ["on-demand", "spot"]}]),
            json!({}),
        );
        assert_eq!(both.capacity_types(), vec!["spot", "on-demand"]);
    }

    #[test]
    fn requirements_select_instance_types_and_become_labels() {
        let p = pool(
            json!([
                {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["m5"]},
                {"key": "karpenter.k8s.aws/instance-cpu", "operator": "Gt", "values": ["2"]},
                {"key": "example.com/tier", "operator": "In", "values": ["batch"]},
            ]),
            json!({"cpu": "8"}),
        );
        let m5x = lookup("m5.xlarge").expect("type");
        let labels = p.node_labels("p-abcde", m5x, "on-demand").expect("allowed");
        assert_eq!(labels["team"], "a");
        assert_eq!(labels["example.com/tier"], "batch");
        assert_eq!(labels[LABEL_NODEPOOL], "p");
        assert_eq!(labels[LABEL_INSTANCE_TYPE], "m5.xlarge");
        assert!(p
            .node_labels("n", lookup("m5.large").expect("t"), "on-demand")
            .is_none());
        assert!(p
            .node_labels("n", lookup("c5.xlarge").expect("t"), "on-demand")
            .is_none());
        assert!(p.within_limits(lookup("m5.2xlarge").expect("t")));
        assert!(!p.within_limits(lookup("m5.4xlarge").expect("t")));
    }
}
