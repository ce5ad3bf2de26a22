//! MANAGED compute environments with the `clusterAPI` provider: Barge sets `replicas` of the
//! Cluster API MachineDeployments (`cluster.x-k8s.io`) the environment names, following
//! barge-core's scaling decision ([`super::demand::decide`]).
//!
//! Data flow, per reconcile of an environment ([`reconcile`]):
//! 1. read: one LIST of MachineDeployments per namespace the environment names (not one GET
//!    per deployment), at most every [`READ_INTERVAL`] — the controller reconciles a busy pool
//!    every second, so passes in between use what was read (with the replicas Barge set since)
//!    — and always before a pass changes `replicas` or marks a node. A deployment's
//!    instance type is the catalog type its reference names or, without one, what its
//!    `capacity.cluster-autoscaler.kubernetes.io/{cpu,memory,gpu-count}` annotations say (as
//!    the cluster-autoscaler's Cluster API provider reads them). The CRD not served, a missing
//!    deployment or a deployment without a size make the environment INVALID. What was read is
//!    kept in the context's `node_groups`, for the decision of every pool;
//! 2. membership: Barge server-side applies (field manager
//!    [`FIELD_MANAGER_CLUSTER_API_PROVIDER`], only these two keys) to each deployment's
//!    `spec.template.metadata.labels` [`LABEL_CLUSTER_API_COMPUTE_ENVIRONMENT`]`=<ce>` and
//!    [`LABEL_CLUSTER_API_MACHINE_DEPLOYMENT`]`=<deployment>`. Cluster API propagates template
//!    labels in place (no rollout) to MachineSets and Machines, and keys under
//!    `node.cluster.x-k8s.io` on to the Nodes. Nodes carrying the first label are candidate
//!    members: Barge labels them `batch.barge.dev/compute-environment=<ce>` as it labels the
//!    members of an UNMANAGED environment ([`super::unmanaged::plan_membership`]), so placement
//!    and the caches treat every environment alike. The second label tells a Node's deployment
//!    without reading its Machine (so a CE's deployments need distinct names);
//! 3. decide: barge-core's `decide_scaling` with one offer per deployment instance type; the
//!    machines a deployment was asked for that are no Node yet (`spec.replicas` − its Nodes)
//!    count as booting nodes, so a pass never asks twice;
//! 4. plan ([`plan_scaling`], pure): scale-out sets `replicas` = `spec.replicas` + added (from
//!    the spec, not from the nodes, so a restart does not ask twice), within `maxvCpus`.
//!    Scale-in of a node the decision removes (idle past `scaleDownDelaySeconds`, beyond
//!    `minvCpus`, never one with a Barge pod) takes two passes: cordon it; then, still idle,
//!    mark it with Cluster API's [`ANNOTATION_DELETE_MACHINE`] (on its Machine — named by the
//!    Node's [`ANNOTATION_MACHINE`] — when the cluster serves Machines, and on the Node) and
//!    lower `replicas` by the marked nodes, so the MachineSet deletes exactly those. A marked
//!    node still present while `spec.replicas` ≥ its deployment's Nodes means the lowering has
//!    not happened (a restart in between): it is done then, and not twice;
//! 5. apply: cordons, marks, then the `scale` subresource (merge patch of `spec.replicas`).
//!
//! Barge never creates or deletes these Nodes or MachineDeployments. On deletion of the
//! environment it releases its nodes (label removed) and its template labels; `replicas` stay
//! as they are.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use barge_core::pool::{AllocationStrategy as CoreStrategy, InstanceType};
use barge_core::scaling::{NodeFacts, NodeState, Offer, PoolSpec, ScalingDecision};
use barge_core::scheduler::NodeSnapshot;
use barge_crds::common::{is_dns_label, is_label_value};
use barge_crds::compute_environment::ClusterApiProvider;
use barge_crds::consts::{
    FIELD_MANAGER_CLUSTER_API_PROVIDER, LABEL_CLUSTER_API_COMPUTE_ENVIRONMENT,
    LABEL_CLUSTER_API_MACHINE_DEPLOYMENT, REASON_INVALID_SPEC,
};
use barge_crds::ComputeEnvironment;

use super::unmanaged::{self, Membership};
use super::PoolError;
use crate::context::{Context, NodeGroup};

/// Cluster API's annotation marking a Machine to delete first when its MachineSet scales in.
pub const ANNOTATION_DELETE_MACHINE: &str = "cluster.x-k8s.io/delete-machine";
/// Node annotation naming the node's Machine (in its MachineDeployment's namespace).
pub const ANNOTATION_MACHINE: &str = "cluster.x-k8s.io/machine";
/// The cluster-autoscaler's size annotations of a node group (scale from zero).
pub const ANNOTATION_CAPACITY_CPU: &str = "capacity.cluster-autoscaler.kubernetes.io/cpu";
pub const ANNOTATION_CAPACITY_MEMORY: &str = "capacity.cluster-autoscaler.kubernetes.io/memory";
pub const ANNOTATION_CAPACITY_GPU_COUNT: &str =
    "capacity.cluster-autoscaler.kubernetes.io/gpu-count";
/// Condition reason: the cluster does not serve the MachineDeployment kind.
pub const REASON_CLUSTER_API_NOT_SERVED: &str = "ClusterApiNotServed";
/// Condition reason: a MachineDeployment the environment names does not exist.
pub const REASON_MACHINE_DEPLOYMENT_NOT_FOUND: &str = "MachineDeploymentNotFound";
/// How soon an environment INVALID for a reason of the cluster (Cluster API not served, a
/// deployment missing) looks again: the operator does not watch MachineDeployments.
pub const RECHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// How long what was read of the deployments serves passes that do not scale (an outside change
/// of `replicas`, or a deployment deleted, is seen within this).
pub const READ_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// Most node and replica writes of one pass (as the simulated pool's `NODE_WRITES_PER_PASS`).
const WRITES_PER_PASS: usize = 20;

/// Whether an INVALID reason is the cluster's state rather than the spec's (looked at again
/// after [`RECHECK_INTERVAL`]).
pub fn is_cluster_reason(reason: &str) -> bool {
    reason == REASON_CLUSTER_API_NOT_SERVED || reason == REASON_MACHINE_DEPLOYMENT_NOT_FOUND
}

/// `cluster.x-k8s.io/v1beta2` `MachineDeployment`.
pub fn machine_deployment_resource() -> ApiResource {
    cluster_api_resource("MachineDeployment", "machinedeployments")
}

/// `cluster.x-k8s.io/v1beta2` `Machine`.
pub fn machine_resource() -> ApiResource {
    cluster_api_resource("Machine", "machines")
}

fn cluster_api_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "cluster.x-k8s.io".into(),
        version: "v1beta2".into(),
        api_version: "cluster.x-k8s.io/v1beta2".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// A MachineDeployment of a pool, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentSpec {
    pub namespace: String,
    pub name: String,
    /// The catalog type the reference names; None: read the deployment's annotations.
    pub instance_type: Option<InstanceType>,
}

/// A pool of Cluster API MachineDeployments, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterApiPool {
    pub deployments: Vec<DeploymentSpec>,
    pub strategy: CoreStrategy,
    pub min_vcpus: i64,
    pub max_vcpus: i64,
    pub desired_vcpus: Option<i64>,
    pub gpu_resource_name: String,
}

/// Validates the provider's MachineDeployment references (pure; problems are appended).
pub fn validate(
    provider: &ClusterApiProvider,
    strategy: CoreStrategy,
    (min_vcpus, max_vcpus, desired_vcpus): (i64, i64, Option<i64>),
    gpu_resource_name: String,
    problems: &mut Vec<String>,
) -> ClusterApiPool {
    let mut deployments = Vec::new();
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    if provider.machine_deployments.is_empty() {
        problems.push("provider.clusterAPI.machineDeployments names no MachineDeployment".into());
    }
    for md in &provider.machine_deployments {
        let what = format!("MachineDeployment {}/{}", md.namespace, md.name);
        if !is_dns_label(&md.namespace) {
            problems.push(format!(
                "{what}: {:?} is not a namespace name",
                md.namespace
            ));
        }
        if !is_label_value(&md.name) || md.name.is_empty() {
            problems.push(format!(
                "{what}: Barge labels the deployment's nodes with its name, so it must be a label value (at most 63 characters)"
            ));
        }
        if let Some(other) = names.insert(&md.name, &md.namespace) {
            problems.push(format!(
                "{what}: the environment names a MachineDeployment {:?} in namespace {other} too; Barge tells their nodes apart by name, so the names must differ",
                md.name
            ));
        }
        let instance_type = match &md.instance_type {
            None => None,
            Some(t) => match barge_core::pool::lookup(t) {
                Some(t) => Some(t.clone()),
                None => {
                    problems.push(format!(
                        "{what}: instanceType {t:?} is not in Barge's catalog; name a catalog type, or leave it out and annotate the deployment with {ANNOTATION_CAPACITY_CPU} and {ANNOTATION_CAPACITY_MEMORY}"
                    ));
                    None
                }
            },
        };
        deployments.push(DeploymentSpec {
            namespace: md.namespace.clone(),
            name: md.name.clone(),
            instance_type,
        });
    }
    ClusterApiPool {
        deployments,
        strategy,
        min_vcpus,
        max_vcpus,
        desired_vcpus,
        gpu_resource_name,
    }
}

/// The instance type a deployment's `capacity.cluster-autoscaler.kubernetes.io/*` annotations
/// describe, named `<namespace>/<name>` (pure).
pub fn instance_type_from_annotations(
    namespace: &str,
    name: &str,
    annotations: &BTreeMap<String, String>,
) -> Result<InstanceType, String> {
    let read = |key: &str, parse: fn(&str) -> barge_core::Result<i64>| -> Result<i64, String> {
        let value = annotations.get(key).ok_or_else(|| {
            format!(
                "MachineDeployment {namespace}/{name} has no instanceType in the compute environment and no {key} annotation: Barge cannot size its machines"
            )
        })?;
        parse(value).map_err(|e| {
            format!("MachineDeployment {namespace}/{name}: annotation {key} {value:?}: {e}")
        })
    };
    let milli_cpu = read(ANNOTATION_CAPACITY_CPU, barge_core::quantity::cpu_millis)?;
    let memory_mib = read(ANNOTATION_CAPACITY_MEMORY, barge_core::quantity::memory_mib)?;
    let gpus = match annotations.get(ANNOTATION_CAPACITY_GPU_COUNT) {
        None => 0,
        Some(_) => read(ANNOTATION_CAPACITY_GPU_COUNT, barge_core::quantity::count)?,
    };
    // Whole vCPUs (a fraction is not a schedulable vCPU).
    let vcpus = milli_cpu / 1000;
    if vcpus < 1 || memory_mib < 1 || gpus < 0 {
        return Err(format!(
            "MachineDeployment {namespace}/{name}: its capacity annotations must give at least 1 vCPU and 1 MiB of memory"
        ));
    }
    // Priced as an unpriced custom catalog entry (0.05 $/vCPU-hour).
    Ok(InstanceType::custom(
        &format!("{namespace}/{name}"),
        vcpus,
        memory_mib,
        gpus,
        vcpus * 50_000,
    ))
}

/// The scaling input of a Cluster API pool: one offer per distinct instance type of its
/// deployments (always available: the infrastructure provider's capacity is not known here).
pub fn pool_spec(ce: &ComputeEnvironment, pool: &ClusterApiPool, groups: &[NodeGroup]) -> PoolSpec {
    let delay_s = ce
        .spec
        .compute_resources
        .as_ref()
        .map(|r| r.effective_scale_down_delay_seconds())
        .unwrap_or(0);
    let mut offers: Vec<Offer> = Vec::new();
    for group in groups {
        if !offers
            .iter()
            .any(|o| o.instance_type.name == group.instance_type.name)
        {
            offers.push(Offer {
                instance_type: group.instance_type.clone(),
                capacity: 100,
            });
        }
    }
    PoolSpec {
        environment: ce.name_any(),
        min_vcpus: pool.min_vcpus,
        max_vcpus: pool.max_vcpus,
        desired_vcpus: pool.desired_vcpus,
        strategy: pool.strategy,
        offers,
        scale_down_delay_ms: i64::from(delay_s.max(0)) * 1000,
    }
}

/// The Cluster API pools the scaling decision sizes (valid spec, deployments read by their last
/// reconcile), with those deployments.
pub fn scaled_pools(
    ctx: &Context,
    ces: &[Arc<ComputeEnvironment>],
) -> HashMap<String, (ClusterApiPool, Vec<NodeGroup>)> {
    let read = ctx.node_groups.lock().unwrap_or_else(|e| e.into_inner());
    ces.iter()
        .filter_map(
            |ce| match super::enabled_pool_of(ce, &ctx.config.providers) {
                Ok(super::Pool::ClusterApi(pool)) => {
                    let groups = read.get(&ce.name_any())?.clone();
                    Some((ce.name_any(), (pool, groups)))
                }
                _ => None,
            },
        )
        .collect()
}

/// The environment whose deployment template labelled this node (candidate membership).
pub fn template_environment(node: &Node) -> Option<&String> {
    node.labels().get(LABEL_CLUSTER_API_COMPUTE_ENVIRONMENT)
}

/// The node group a node belongs to, by its deployment label.
pub fn group_of<'a>(groups: &'a [NodeGroup], node: &Node) -> Option<&'a NodeGroup> {
    let deployment = node.labels().get(LABEL_CLUSTER_API_MACHINE_DEPLOYMENT)?;
    groups.iter().find(|g| g.name == *deployment)
}

/// The machines each deployment was asked for that are no (live) Node yet, as booting nodes of
/// the scaling decision: `spec.replicas` − its Nodes.
pub fn pending_machines(
    ce: &str,
    groups: &[NodeGroup],
    nodes: &[Arc<Node>],
) -> Vec<(NodeSnapshot, NodeFacts)> {
    let mut pending = Vec::new();
    for group in groups {
        let have = nodes_of_group(ce, group, nodes).len() as i64;
        for i in 0..(group.replicas - have).max(0) {
            pending.push((
                NodeSnapshot {
                    name: format!("{}/{}#machine-{i}", group.namespace, group.name),
                    environment: Some(ce.to_string()),
                    allocatable: group.instance_type.capacity(),
                    used: Default::default(),
                    schedulable: false,
                    instance_type: Some(group.instance_type.name.to_string()),
                    // A machine that is no Node yet runs nothing.
                    barge_pods: 0,
                    exclusive: false,
                },
                NodeFacts {
                    state: NodeState::Booting,
                    barge_pods: 0,
                    idle_since_ms: None,
                },
            ));
        }
    }
    pending
}

/// The live (not deleting) Nodes of a deployment of environment `ce`.
fn nodes_of_group<'a>(ce: &str, group: &NodeGroup, nodes: &'a [Arc<Node>]) -> Vec<&'a Arc<Node>> {
    nodes
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .filter(|n| template_environment(n).map(String::as_str) == Some(ce))
        .filter(|n| {
            n.labels()
                .get(LABEL_CLUSTER_API_MACHINE_DEPLOYMENT)
                .is_some_and(|d| *d == group.name)
        })
        .collect()
}

fn is_cordoned(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

fn is_marked(node: &Node) -> bool {
    node.annotations().contains_key(ANNOTATION_DELETE_MACHINE)
}

/// A node to mark for deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeToRemove {
    pub node: String,
    /// Its Machine (namespace, name), from the Node's [`ANNOTATION_MACHINE`].
    pub machine: Option<(String, String)>,
}

/// A new `spec.replicas` of a deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaChange {
    pub namespace: String,
    pub name: String,
    pub from: i64,
    pub to: i64,
}

/// What a pass changes (see the module doc, step 4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScalingPlan {
    /// Idle nodes the decision removes: cordoned first.
    pub cordon: Vec<String>,
    /// Cordoned idle nodes the decision removes: marked with the delete-machine annotation.
    pub mark: Vec<NodeToRemove>,
    pub replicas: Vec<ReplicaChange>,
    /// vCPUs of the deployments' replicas after the plan.
    pub desired_vcpus: i64,
    /// Machines asked for that are no Node yet.
    pub pending: i64,
    /// Nodes to add that wait for a later pass (their deployments are scaling in).
    pub held: u32,
}

/// Plans a pass from the decision (pure). `nodes`: every node; `busy`: whether a node runs a
/// Barge pod.
pub fn plan_scaling(
    ce: &str,
    pool: &ClusterApiPool,
    groups: &[NodeGroup],
    nodes: &[Arc<Node>],
    decision: &ScalingDecision,
    busy: impl Fn(&str) -> bool,
) -> ScalingPlan {
    let mut plan = ScalingPlan::default();
    let removals: BTreeSet<&str> = decision.remove.iter().map(String::as_str).collect();
    // Per group: (base replicas, marked nodes after this pass).
    let mut base: Vec<(i64, usize)> = Vec::new();
    for group in groups {
        let mine = nodes_of_group(ce, group, nodes);
        let have = mine.len() as i64;
        let replicas = group.replicas.max(0);
        plan.pending += (replicas - have).max(0);
        let mut marked = mine.iter().filter(|n| is_marked(n)).count();
        for node in mine.iter().filter(|n| !is_marked(n)) {
            let name = node.name_any();
            if !removals.contains(name.as_str()) {
                continue;
            }
            if !is_cordoned(node) {
                plan.cordon.push(name);
            } else if !busy(&name) && replicas <= have {
                // Not while machines of this deployment are still coming: `spec.replicas` −
                // Nodes would no longer tell booting machines from a lowering not yet done.
                plan.mark.push(NodeToRemove {
                    machine: node
                        .annotations()
                        .get(ANNOTATION_MACHINE)
                        .map(|m| (group.namespace.clone(), m.clone())),
                    node: name,
                });
                marked += 1;
            }
        }
        let lowered = if marked > 0 && replicas >= have {
            replicas - marked as i64
        } else {
            replicas
        };
        base.push((lowered.max(0), marked));
    }
    // Scale-out: to the first deployment of the type that is not scaling in.
    let mut added = vec![0i64; groups.len()];
    for add in &decision.add {
        match groups
            .iter()
            .enumerate()
            .find(|(g, group)| group.instance_type.name == add.instance_type && base[*g].1 == 0)
        {
            Some((g, _)) => added[g] += i64::from(add.count),
            None => plan.held += add.count,
        }
    }
    // Within maxvCpus: drop additions from the last deployment first.
    let vcpus = |g: usize| groups[g].instance_type.vcpus.max(1);
    let mut total: i64 = (0..groups.len())
        .map(|g| (base[g].0 + added[g]) * vcpus(g))
        .sum();
    for g in (0..groups.len()).rev() {
        while total > pool.max_vcpus && added[g] > 0 {
            added[g] -= 1;
            total -= vcpus(g);
        }
    }
    plan.desired_vcpus = total;
    for (g, group) in groups.iter().enumerate() {
        let to = base[g].0 + added[g];
        if to != group.replicas {
            plan.replicas.push(ReplicaChange {
                namespace: group.namespace.clone(),
                name: group.name.clone(),
                from: group.replicas,
                to,
            });
        }
    }
    plan.cordon.truncate(WRITES_PER_PASS);
    plan.mark.truncate(WRITES_PER_PASS);
    plan
}

/// Why a reconcile of a Cluster API pool stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClusterApiError {
    /// The environment cannot work as specified (INVALID, with this reason).
    #[error("{0}")]
    Invalid(PoolError),
    /// A request failed (transient: retried).
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
}

fn api_error(what: String) -> impl FnOnce(kube::Error) -> ClusterApiError {
    move |source| ClusterApiError::Api { what, source }
}

/// What a reconcile did and saw, for the status and Events.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The environment's candidate member nodes (carrying its template label).
    pub nodes: Vec<Arc<Node>>,
    pub plan: ScalingPlan,
    pub membership: Membership,
    pub decision: ScalingDecision,
}

/// A deployment as read: its node group and its template labels.
struct ReadDeployment {
    group: NodeGroup,
    template_labels: BTreeMap<String, String>,
}

/// Reads every deployment of the pool: one LIST per namespace.
async fn read_deployments(
    ctx: &Context,
    pool: &ClusterApiPool,
    now_ms: i64,
) -> Result<Vec<ReadDeployment>, ClusterApiError> {
    let namespaces: BTreeSet<&str> = pool
        .deployments
        .iter()
        .map(|d| d.namespace.as_str())
        .collect();
    let mut listed: HashMap<(String, String), DynamicObject> = HashMap::new();
    for ns in namespaces {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), ns, &machine_deployment_resource());
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                for md in list.items {
                    listed.insert((ns.to_string(), md.name_any()), md);
                }
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                return Err(ClusterApiError::Invalid(PoolError {
                    reason: REASON_CLUSTER_API_NOT_SERVED,
                    message: "this cluster does not serve Cluster API MachineDeployments (cluster.x-k8s.io/v1beta2 MachineDeployment): install Cluster API, or use another provider".into(),
                }))
            }
            Err(source) => {
                return Err(api_error(format!("listing MachineDeployments in {ns}"))(
                    source,
                ))
            }
        }
    }
    let mut read = Vec::new();
    let mut missing = Vec::new();
    let mut unsized_ = Vec::new();
    for d in &pool.deployments {
        let Some(md) = listed.get(&(d.namespace.clone(), d.name.clone())) else {
            missing.push(format!("{}/{}", d.namespace, d.name));
            continue;
        };
        let instance_type = match &d.instance_type {
            Some(t) => t.clone(),
            None => match instance_type_from_annotations(&d.namespace, &d.name, md.annotations()) {
                Ok(t) => t,
                Err(problem) => {
                    unsized_.push(problem);
                    continue;
                }
            },
        };
        let spec = md.data.get("spec");
        // Absent `replicas` is Cluster API's default, 1.
        let replicas = spec
            .and_then(|s| s.get("replicas"))
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(1);
        let template_labels = spec
            .and_then(|s| s.pointer("/template/metadata/labels"))
            .and_then(|l| serde_json::from_value(l.clone()).ok())
            .unwrap_or_default();
        read.push(ReadDeployment {
            group: NodeGroup {
                namespace: d.namespace.clone(),
                name: d.name.clone(),
                instance_type,
                replicas,
                read_at_ms: now_ms,
            },
            template_labels,
        });
    }
    if !missing.is_empty() {
        return Err(ClusterApiError::Invalid(PoolError {
            reason: REASON_MACHINE_DEPLOYMENT_NOT_FOUND,
            message: format!("MachineDeployment(s) {} do not exist", missing.join(", ")),
        }));
    }
    if !unsized_.is_empty() {
        return Err(ClusterApiError::Invalid(PoolError {
            reason: REASON_INVALID_SPEC,
            message: unsized_.join("; "),
        }));
    }
    Ok(read)
}

/// The template labels Barge keeps on a deployment of environment `ce`.
fn template_labels(ce: &str, deployment: &str) -> BTreeMap<String, String> {
    [
        (
            LABEL_CLUSTER_API_COMPUTE_ENVIRONMENT.to_string(),
            ce.to_string(),
        ),
        (
            LABEL_CLUSTER_API_MACHINE_DEPLOYMENT.to_string(),
            deployment.to_string(),
        ),
    ]
    .into()
}

/// Server-side applies Barge's template labels (`labels` None: releases them).
async fn apply_template_labels(
    ctx: &Context,
    namespace: &str,
    name: &str,
    labels: Option<BTreeMap<String, String>>,
) -> Result<(), kube::Error> {
    let resource = machine_deployment_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &resource);
    let mut body = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {"name": name, "namespace": namespace},
    });
    if let Some(labels) = labels {
        body["spec"] = json!({"template": {"metadata": {"labels": labels}}});
    }
    let params = PatchParams::apply(FIELD_MANAGER_CLUSTER_API_PROVIDER).force();
    api.patch(name, &params, &Patch::Apply(&body)).await?;
    Ok(())
}

async fn label_nodes(
    ctx: &Context,
    ce: &str,
    membership: &Membership,
) -> Result<(), (String, kube::Error)> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    let label = unmanaged::membership_patch(Some(ce));
    let unlabel = unmanaged::membership_patch(None);
    for (nodes, patch) in [(&membership.label, &label), (&membership.unlabel, &unlabel)] {
        for node in nodes {
            match api
                .patch(node, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => return Err((format!("labelling node {node}"), source)),
            }
        }
    }
    Ok(())
}

/// One reconcile of a Cluster API pool (see the module doc). `now_ms` is the decision's clock.
pub async fn reconcile(
    ce: &ComputeEnvironment,
    pool: &ClusterApiPool,
    ctx: &Context,
    now_ms: i64,
) -> Result<Outcome, ClusterApiError> {
    let name = ce.name_any();
    // 1. read (or what was read lately)
    let (mut groups, mut fresh) = match recent_groups(ctx, &name, pool, now_ms) {
        Some(groups) => (groups, false),
        None => (read_and_label(ctx, &name, pool, now_ms).await?, true),
    };
    // 2. membership
    let all: Vec<Arc<Node>> = ctx.caches.nodes.state();
    let selector: BTreeMap<String, String> = [(
        LABEL_CLUSTER_API_COMPUTE_ENVIRONMENT.to_string(),
        name.clone(),
    )]
    .into();
    let mut membership = unmanaged::plan_membership(&name, &selector, &all, false);
    membership.limit_writes(WRITES_PER_PASS);
    label_nodes(ctx, &name, &membership)
        .await
        .map_err(|(what, source)| ClusterApiError::Api { what, source })?;
    // 3. decide, 4. plan — on a fresh read before any replica change or mark
    let (decision, plan) = loop {
        let decision = super::demand::decide(ctx, now_ms)
            .remove(&name)
            .unwrap_or_default();
        let plan = plan_scaling(&name, pool, &groups, &all, &decision, |n| {
            ctx.caches.usage.is_busy(n)
        });
        if fresh || (plan.replicas.is_empty() && plan.mark.is_empty()) {
            break (decision, plan);
        }
        groups = read_and_label(ctx, &name, pool, now_ms).await?;
        fresh = true;
    };
    // 5. apply
    let nodes_api: Api<Node> = Api::all(ctx.client.clone());
    for node in &plan.cordon {
        let cordon = json!({"spec": {"unschedulable": true}});
        match nodes_api
            .patch(node, &PatchParams::default(), &Patch::Merge(&cordon))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => return Err(api_error(format!("cordoning node {node}"))(source)),
        }
    }
    let mark = json!({"metadata": {"annotations": {
        ANNOTATION_DELETE_MACHINE: jiff::Timestamp::from_millisecond(now_ms)
            .map(|t| t.to_string())
            .unwrap_or_default()
    }}});
    for remove in &plan.mark {
        if let Some((namespace, machine)) = &remove.machine {
            // Upstream reads the mark on the Machine. Not found (or Machines not served):
            // the Node's mark stands alone.
            let machines: Api<DynamicObject> =
                Api::namespaced_with(ctx.client.clone(), namespace, &machine_resource());
            match machines
                .patch(machine, &PatchParams::default(), &Patch::Merge(&mark))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(api_error(format!("marking Machine {namespace}/{machine}"))(
                        source,
                    ))
                }
            }
        }
        match nodes_api
            .patch(&remove.node, &PatchParams::default(), &Patch::Merge(&mark))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => return Err(api_error(format!("marking node {}", remove.node))(source)),
        }
    }
    for change in &plan.replicas {
        let api: Api<DynamicObject> = Api::namespaced_with(
            ctx.client.clone(),
            &change.namespace,
            &machine_deployment_resource(),
        );
        let patch = json!({"spec": {"replicas": change.to}});
        api.patch_scale(&change.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_error(format!(
                "scaling MachineDeployment {}/{} to {} replicas",
                change.namespace, change.name, change.to
            )))?;
    }
    if !plan.replicas.is_empty() {
        // What this pass set is what the next passes start from.
        for group in &mut groups {
            if let Some(change) = plan
                .replicas
                .iter()
                .find(|c| c.namespace == group.namespace && c.name == group.name)
            {
                group.replicas = change.to;
            }
        }
        remember(ctx, &name, &groups);
    }
    if !plan.replicas.is_empty() || !membership.label.is_empty() || !membership.unlabel.is_empty() {
        ctx.scheduler.wake();
    }
    let nodes = all
        .iter()
        .filter(|n| template_environment(n).map(String::as_str) == Some(name.as_str()))
        .filter(|n| !membership.conflicts.iter().any(|(c, _)| *c == n.name_any()))
        .cloned()
        .collect();
    Ok(Outcome {
        nodes,
        plan,
        membership,
        decision,
    })
}

/// What was read of the environment's deployments, if recent enough and of the same spec.
fn recent_groups(
    ctx: &Context,
    ce: &str,
    pool: &ClusterApiPool,
    now_ms: i64,
) -> Option<Vec<NodeGroup>> {
    let read = ctx.node_groups.lock().unwrap_or_else(|e| e.into_inner());
    let groups = read.get(ce)?;
    let same_spec = groups.len() == pool.deployments.len()
        && groups.iter().zip(&pool.deployments).all(|(g, d)| {
            g.namespace == d.namespace
                && g.name == d.name
                && d.instance_type
                    .as_ref()
                    .is_none_or(|t| *t == g.instance_type)
        });
    let recent = groups
        .iter()
        .all(|g| now_ms - g.read_at_ms < READ_INTERVAL.as_millis() as i64);
    (same_spec && recent).then(|| groups.clone())
}

fn remember(ctx: &Context, ce: &str, groups: &[NodeGroup]) {
    ctx.node_groups
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(ce.to_string(), groups.to_vec());
}

/// Reads the deployments (INVALID ones forget what was read before), keeps them for the
/// decision of every pool, and labels their templates where Barge's labels are missing.
async fn read_and_label(
    ctx: &Context,
    ce: &str,
    pool: &ClusterApiPool,
    now_ms: i64,
) -> Result<Vec<NodeGroup>, ClusterApiError> {
    let read = match read_deployments(ctx, pool, now_ms).await {
        Ok(read) => read,
        Err(err) => {
            forget(ctx, ce);
            return Err(err);
        }
    };
    let groups: Vec<NodeGroup> = read.iter().map(|r| r.group.clone()).collect();
    remember(ctx, ce, &groups);
    for r in &read {
        let wanted = template_labels(ce, &r.group.name);
        if wanted
            .iter()
            .any(|(k, v)| r.template_labels.get(k) != Some(v))
        {
            apply_template_labels(ctx, &r.group.namespace, &r.group.name, Some(wanted))
                .await
                .map_err(api_error(format!(
                    "labelling the template of MachineDeployment {}/{}",
                    r.group.namespace, r.group.name
                )))?;
        }
    }
    Ok(groups)
}

/// Drops what was read of an environment's deployments (invalid or deleted).
pub fn forget(ctx: &Context, ce: &str) {
    ctx.node_groups
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(ce);
}

/// Releases a deleted environment: its nodes lose the membership label and its deployments
/// Barge's template labels (best effort for deployments that are gone). `replicas` stay.
/// Returns how many node label writes are left for a later pass.
pub async fn release(
    ce: &ComputeEnvironment,
    pool: &ClusterApiPool,
    ctx: &Context,
) -> Result<usize, (String, kube::Error)> {
    let name = ce.name_any();
    forget(ctx, &name);
    let selector: BTreeMap<String, String> = [(
        LABEL_CLUSTER_API_COMPUTE_ENVIRONMENT.to_string(),
        name.clone(),
    )]
    .into();
    let mut membership =
        unmanaged::plan_membership(&name, &selector, &ctx.caches.nodes.state(), true);
    let left = membership.limit_writes(WRITES_PER_PASS);
    label_nodes(ctx, &name, &membership).await?;
    if left == 0 {
        for d in &pool.deployments {
            match apply_template_labels(ctx, &d.namespace, &d.name, None).await {
                Ok(()) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err((
                        format!(
                            "releasing the template labels of MachineDeployment {}/{}",
                            d.namespace, d.name
                        ),
                        source,
                    ))
                }
            }
        }
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use barge_core::scaling::NodesToAdd;
    use barge_crds::compute_environment::MachineDeploymentRef;
    use k8s_openapi::api::core::v1::NodeSpec;
    use kube::api::ObjectMeta;

    fn md_ref(name: &str, instance_type: Option<&str>) -> MachineDeploymentRef {
        MachineDeploymentRef {
            name: name.into(),
            namespace: "capi".into(),
            instance_type: instance_type.map(str::to_string),
        }
    }

    fn pool(deployments: &[MachineDeploymentRef], max: i64) -> (ClusterApiPool, Vec<String>) {
        let mut problems = Vec::new();
        let pool = validate(
            &ClusterApiProvider {
                machine_deployments: deployments.to_vec(),
            },
            CoreStrategy::BestFit,
            (0, max, None),
            "nvidia.com/gpu".into(),
            &mut problems,
        );
        (pool, problems)
    }

    fn group(name: &str, instance_type: &str, replicas: i64) -> NodeGroup {
        NodeGroup {
            namespace: "capi".into(),
            name: name.into(),
            instance_type: barge_core::pool::lookup(instance_type)
                .expect("catalog type")
                .clone(),
            replicas,
            read_at_ms: 0,
        }
    }

    /// A node of deployment `md` of environment `ce`.
    fn node(name: &str, ce: &str, md: &str, cordoned: bool, marked: bool) -> Arc<Node> {
        let mut annotations = BTreeMap::from([(ANNOTATION_MACHINE.to_string(), name.to_string())]);
        if marked {
            annotations.insert(ANNOTATION_DELETE_MACHINE.into(), "t".into());
        }
        Arc::new(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(template_labels(ce, md)),
                annotations: Some(annotations),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                unschedulable: cordoned.then_some(true),
                ..Default::default()
            }),
            status: None,
        })
    }

    fn decision(add: &[(&str, u32)], remove: &[&str]) -> ScalingDecision {
        ScalingDecision {
            environment: "ce".into(),
            add: add
                .iter()
                .map(|(t, n)| NodesToAdd {
                    instance_type: t.to_string(),
                    count: *n,
                })
                .collect(),
            remove: remove.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn references_name_catalog_types_distinct_deployments_and_label_values() {
        let (ok, problems) = pool(&[md_ref("a", Some("c5.large")), md_ref("b", None)], 8);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            ok.deployments[0].instance_type.as_ref().map(|t| t.vcpus),
            Some(2)
        );
        assert_eq!(
            ok.deployments[1].instance_type, None,
            "read from annotations"
        );
        let long = "x".repeat(64);
        let (_, problems) = pool(
            &[
                md_ref("a", Some("z9.huge")),
                MachineDeploymentRef {
                    namespace: "other".into(),
                    ..md_ref("a", None)
                },
                md_ref(&long, None),
            ],
            8,
        );
        let all = problems.join("; ");
        for expected in [
            "MachineDeployment capi/a: instanceType \"z9.huge\" is not in Barge's catalog",
            "MachineDeployment other/a: the environment names a MachineDeployment \"a\" in namespace capi too",
            "must be a label value",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in {all}");
        }
    }

    #[test]
    fn the_autoscaler_capacity_annotations_size_a_deployment() {
        let annotations: BTreeMap<String, String> = [
            (ANNOTATION_CAPACITY_CPU, "16"),
            (ANNOTATION_CAPACITY_MEMORY, "128G"),
            (ANNOTATION_CAPACITY_GPU_COUNT, "2"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let t = instance_type_from_annotations("capi", "gpu", &annotations).expect("sized");
        assert_eq!(
            (t.name.as_ref(), t.vcpus, t.gpus, t.memory_mib),
            ("capi/gpu", 16, 2, 122_071)
        );
        let err = instance_type_from_annotations("capi", "bare", &BTreeMap::new()).unwrap_err();
        assert!(
            err.contains("capi/bare has no instanceType") && err.contains(ANNOTATION_CAPACITY_CPU),
            "{err}"
        );
        let mut bad = annotations.clone();
        bad.insert(ANNOTATION_CAPACITY_CPU.into(), "lots".into());
        assert!(instance_type_from_annotations("capi", "gpu", &bad)
            .unwrap_err()
            .contains("annotation capacity.cluster-autoscaler.kubernetes.io/cpu \"lots\""));
    }

    #[test]
    fn machines_asked_for_but_not_nodes_yet_boot() {
        let groups = [group("a", "c5.large", 3), group("b", "c5.xlarge", 0)];
        let nodes = [
            node("a-1", "ce", "a", false, false),
            node("x-1", "other", "a", false, false),
        ];
        let pending = pending_machines("ce", &groups, &nodes);
        assert_eq!(pending.len(), 2, "3 replicas, 1 node of this environment");
        assert!(pending.iter().all(|(s, f)| f.state == NodeState::Booting
            && s.environment.as_deref() == Some("ce")
            && s.allocatable.milli_cpu == 2000));
    }

    #[test]
    fn scale_out_adds_to_spec_replicas_within_max_vcpus() {
        let (p, _) = pool(&[md_ref("a", Some("c5.large"))], 8);
        let groups = [group("a", "c5.large", 1)];
        let nodes = [node("a-1", "ce", "a", false, false)];
        // 1 replica + 2 → 3; the node count does not matter, spec.replicas does.
        let plan = plan_scaling(
            "ce",
            &p,
            &groups,
            &nodes,
            &decision(&[("c5.large", 2)], &[]),
            |_| false,
        );
        assert_eq!(
            plan.replicas,
            [ReplicaChange {
                namespace: "capi".into(),
                name: "a".into(),
                from: 1,
                to: 3
            }]
        );
        assert_eq!(plan.desired_vcpus, 6);
        // Never beyond maxvCpus 8 (4 × c5.large).
        let plan = plan_scaling(
            "ce",
            &p,
            &groups,
            &nodes,
            &decision(&[("c5.large", 9)], &[]),
            |_| false,
        );
        assert_eq!((plan.replicas[0].to, plan.desired_vcpus), (4, 8));
        // Nothing to do: no write.
        let plan = plan_scaling("ce", &p, &groups, &nodes, &decision(&[], &[]), |_| false);
        assert!(plan.replicas.is_empty() && plan.cordon.is_empty());
    }

    #[test]
    fn scale_in_cordons_then_marks_then_lowers_replicas_once() {
        let (p, _) = pool(&[md_ref("a", Some("c5.large"))], 8);
        let groups = [group("a", "c5.large", 2)];
        // Pass 1: an idle Ready node the decision removes is cordoned only.
        let nodes = [
            node("a-1", "ce", "a", false, false),
            node("a-2", "ce", "a", false, false),
        ];
        let plan = plan_scaling("ce", &p, &groups, &nodes, &decision(&[], &["a-2"]), |_| {
            false
        });
        assert_eq!(plan.cordon, ["a-2"]);
        assert!(plan.mark.is_empty() && plan.replicas.is_empty());
        // Pass 2: cordoned and still idle → marked (its Machine too), replicas 2 → 1.
        let nodes = [
            node("a-1", "ce", "a", false, false),
            node("a-2", "ce", "a", true, false),
        ];
        let plan = plan_scaling("ce", &p, &groups, &nodes, &decision(&[], &["a-2"]), |_| {
            false
        });
        assert_eq!(
            plan.mark,
            [NodeToRemove {
                node: "a-2".into(),
                machine: Some(("capi".into(), "a-2".into()))
            }]
        );
        assert_eq!((plan.replicas[0].from, plan.replicas[0].to), (2, 1));
        // A pod landed on it meanwhile: not marked.
        let plan = plan_scaling("ce", &p, &groups, &nodes, &decision(&[], &["a-2"]), |n| {
            n == "a-2"
        });
        assert!(plan.mark.is_empty() && plan.replicas.is_empty());
        // Restart after marking, before lowering: lowered now.
        let marked = [
            node("a-1", "ce", "a", false, false),
            node("a-2", "ce", "a", true, true),
        ];
        let plan = plan_scaling("ce", &p, &groups, &marked, &decision(&[], &["a-2"]), |_| {
            false
        });
        assert!(plan.mark.is_empty());
        assert_eq!(plan.replicas[0].to, 1);
        // Restart after lowering, node not gone yet: not lowered twice.
        let lowered = [group("a", "c5.large", 1)];
        let plan = plan_scaling(
            "ce",
            &p,
            &lowered,
            &marked,
            &decision(&[], &["a-2"]),
            |_| false,
        );
        assert!(plan.replicas.is_empty(), "{plan:?}");
        assert_eq!(plan.desired_vcpus, 2);
    }

    #[test]
    fn no_mark_while_machines_boot_and_no_add_while_scaling_in() {
        let (p, _) = pool(&[md_ref("a", Some("c5.large"))], 8);
        // 3 replicas, 2 nodes (one booting machine): the cordoned idle node waits.
        let nodes = [
            node("a-1", "ce", "a", false, false),
            node("a-2", "ce", "a", true, false),
        ];
        let plan = plan_scaling(
            "ce",
            &p,
            &[group("a", "c5.large", 3)],
            &nodes,
            &decision(&[], &["a-2"]),
            |_| false,
        );
        assert!(plan.mark.is_empty() && plan.replicas.is_empty());
        assert_eq!(plan.pending, 1);
        // A marked node: additions of its type wait.
        let marked = [
            node("a-1", "ce", "a", false, false),
            node("a-2", "ce", "a", true, true),
        ];
        let plan = plan_scaling(
            "ce",
            &p,
            &[group("a", "c5.large", 1)],
            &marked,
            &decision(&[("c5.large", 1)], &[]),
            |_| false,
        );
        assert_eq!(plan.held, 1);
        assert!(plan.replicas.is_empty());
    }
}
