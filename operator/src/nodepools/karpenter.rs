//! The `karpenter` provider: Barge owns one `karpenter.sh/v1` NodePool per compute environment
//! and Karpenter launches and consolidates its nodes.
//!
//! Data flow: a ComputeEnvironment → [`karpenter_pool`] (pure validation, called by
//! [`super::pool_of`]) → a [`KarpenterPool`] → [`desired_nodepool`] (pure: the NodePool as JSON)
//! → [`ensure_nodepool`] (the ComputeEnvironment controller's apply step): the NodePool API and
//! the NodeClass kind must be served (discovery) and the NodeClass must exist (a GET), else the
//! environment is INVALID with [`REASON_PROVIDER_NOT_SERVED`] / [`REASON_NODE_CLASS_NOT_FOUND`];
//! then the NodePool is server-side applied (field manager
//! `FIELD_MANAGER_COMPUTE_ENVIRONMENT_CONTROLLER`), skipped while it equals what this process
//! last applied less than [`REAPPLY_INTERVAL`] ago. Discovery and NodeClass answers are cached
//! ([`SERVED_TTL`], [`NOT_SERVED_TTL`]): the controller reconciles an active pool every second
//! or two, and must not turn that into a request storm.
//!
//! The NodePool is named after the compute environment (both are cluster-scoped, and the name is
//! already a label value on the environment's nodes, as Karpenter makes the NodePool's name the
//! `karpenter.sh/nodepool` label of its nodes). It carries a controller owner reference to the
//! environment, so the garbage collector deletes it (and Karpenter its nodes) with the
//! environment. A NodePool of that name Barge does not own is never overwritten
//! ([`REASON_NODE_POOL_CONFLICT`]).
//!
//! Nodes: the NodePool template gives them the compute-environment label and NoSchedule taint
//! (exactly what Barge's unbound pods select and tolerate, see `pods::render_pod`) and the
//! environment's `tags` as labels. Barge admits work against `maxvCpus` (`bindingMode:
//! KubeScheduler`), creates unbound pods, and Karpenter reacts to those pending pods.
//!
//! `instanceTypes`: entries that are all families (or `optimal`) become a
//! `karpenter.k8s.aws/instance-family In [...]` requirement — Karpenter then picks any size of
//! those families, as AWS Batch does; a list with an exact type becomes
//! `node.kubernetes.io/instance-type In [...]`, families expanded through Barge's catalog (two
//! requirements would be intersected by Karpenter, so a mixed list cannot use both keys).
//! Entries are checked against Barge's catalog, whose shapes the scheduler uses to tell jobs
//! that can never run.
//!
//! Karpenter keeps no idle capacity: `minvCpus` above 0 and `desiredvCpus` are accepted (AWS
//! Batch documents and their defaults import unchanged) but not kept warm; the Ready condition's
//! message says so ([`idle_capacity_note`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{self, Scope};
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};

use barge_core::pool::{InstanceType, CATALOG, OPTIMAL_FAMILIES};
use barge_crds::compute_environment::{
    BindingMode, ComputeResourceType, ComputeResources, KarpenterProvider, NodeClassRef,
};
use barge_crds::consts::{
    API_VERSION, FIELD_MANAGER_COMPUTE_ENVIRONMENT_CONTROLLER, INSTANCE_TYPE_OPTIMAL,
    KIND_COMPUTE_ENVIRONMENT, LABEL_COMPUTE_ENVIRONMENT, LABEL_INSTANCE_TYPE, LABEL_MANAGED_BY,
    MANAGED_BY_BARGE, TAINT_COMPUTE_ENVIRONMENT,
};
use barge_crds::ComputeEnvironment;

use super::PoolError;
use crate::status::{
    REASON_NODE_CLASS_NOT_FOUND, REASON_NODE_POOL_CONFLICT, REASON_NODE_POOL_REFUSED,
    REASON_PROVIDER_NOT_SERVED,
};

/// Karpenter's NodePool API.
pub const NODEPOOL_GROUP: &str = "karpenter.sh";
pub const NODEPOOL_VERSION: &str = "v1";
pub const NODEPOOL_KIND: &str = "NodePool";
/// Node label (and requirement key): spot or on-demand.
pub const LABEL_CAPACITY_TYPE: &str = "karpenter.sh/capacity-type";
/// Node label (and requirement key) of the AWS provider: the instance family.
pub const LABEL_INSTANCE_FAMILY: &str = "karpenter.k8s.aws/instance-family";
/// [`LABEL_CAPACITY_TYPE`] values.
pub const CAPACITY_TYPE_SPOT: &str = "spot";
pub const CAPACITY_TYPE_ON_DEMAND: &str = "on-demand";
/// Karpenter only disrupts empty nodes of Barge's NodePools: a busy node runs a job.
pub const CONSOLIDATION_POLICY: &str = "WhenEmpty";
/// Requirement operators Karpenter accepts.
const OPERATORS: [&str; 8] = [
    "In",
    "NotIn",
    "Exists",
    "DoesNotExist",
    "Gt",
    "Lt",
    "Gte",
    "Lte",
];

/// How long a "served" discovery answer or a found NodeClass is trusted.
pub const SERVED_TTL: Duration = Duration::from_secs(60);
/// How long a "not served" / "not found" answer is trusted (and how soon an environment that is
/// INVALID for it looks again, see [`RECHECK_INTERVAL`]).
pub const NOT_SERVED_TTL: Duration = Duration::from_secs(5);
/// How soon an environment INVALID because of the cluster (API not served, NodeClass missing)
/// is reconciled again: installing Karpenter or creating the NodeClass changes nothing Barge
/// watches.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(5);
/// An unchanged NodePool is applied again after this long (repairs an edit or a deletion by
/// someone else; an unchanged server-side apply writes nothing).
pub const REAPPLY_INTERVAL: Duration = Duration::from_secs(60);

/// A MANAGED compute environment with the `karpenter` provider, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct KarpenterPool {
    pub node_class_ref: NodeClassRef,
    /// The instance requirement Barge derives from `instanceTypes` (key, values).
    pub instance_requirement: (String, Vec<String>),
    /// `spot` for SPOT, `on-demand` for EC2.
    pub capacity_type: &'static str,
    /// The user's extra requirements, as given.
    pub extra_requirements: Vec<k8s_openapi::api::core::v1::NodeSelectorRequirement>,
    /// Catalog entries `instanceTypes` expands to (the scheduler's shapes).
    pub candidates: Vec<InstanceType>,
    pub min_vcpus: i64,
    pub max_vcpus: i64,
    pub desired_vcpus: Option<i64>,
    /// Node labels (`computeResources.tags`).
    pub tags: BTreeMap<String, String>,
    pub scale_down_delay_seconds: i64,
    pub gpu_resource_name: String,
}

/// Validates the karpenter-specific part of a MANAGED environment (pure); problems are added
/// to `problems` (the caller checks the vCPU bounds and tags shared with other providers).
pub fn karpenter_pool(
    ce: &ComputeEnvironment,
    resources: &ComputeResources,
    provider: &KarpenterProvider,
    gpu_resource_name: String,
    problems: &mut Vec<String>,
) -> KarpenterPool {
    if ce.spec.effective_binding_mode() != BindingMode::KubeScheduler {
        problems.push("the karpenter provider needs bindingMode KubeScheduler: Karpenter provisions nodes for pods the kube-scheduler cannot place".into());
    }
    let entries: Vec<String> = if resources.instance_types.is_empty() {
        vec![INSTANCE_TYPE_OPTIMAL.to_string()]
    } else {
        resources.instance_types.clone()
    };
    let candidates: Vec<InstanceType> =
        match barge_core::pool::expand_instance_types_in(CATALOG, &entries) {
            Ok(types) => types.into_iter().cloned().collect(),
            Err(err) => {
                problems.push(format!("instanceTypes: {err}"));
                Vec::new()
            }
        };
    let is_family = |e: &str| {
        e == INSTANCE_TYPE_OPTIMAL || CATALOG.iter().any(|t| t.family == e && t.name != e)
    };
    let instance_requirement = if entries.iter().all(|e| is_family(e.trim())) {
        let mut families: Vec<String> = entries
            .iter()
            .flat_map(|e| match e.trim() {
                INSTANCE_TYPE_OPTIMAL => OPTIMAL_FAMILIES.iter().map(|f| f.to_string()).collect(),
                family => vec![family.to_string()],
            })
            .collect();
        families.sort();
        families.dedup();
        (LABEL_INSTANCE_FAMILY.to_string(), families)
    } else {
        let mut names: Vec<String> = candidates.iter().map(|t| t.name.to_string()).collect();
        names.sort();
        (LABEL_INSTANCE_TYPE.to_string(), names)
    };
    for (i, r) in provider.requirements.iter().enumerate() {
        let at = format!("provider.karpenter.requirements[{i}]");
        if !barge_crds::common::is_label_key(&r.key) {
            problems.push(format!("{at}: key {:?} is not a label key", r.key));
        }
        if !OPERATORS.contains(&r.operator.as_str()) {
            problems.push(format!(
                "{at}: operator {:?} is not one of {}",
                r.operator,
                OPERATORS.join(", ")
            ));
        }
        let values = r.values.as_deref().unwrap_or_default();
        if r.operator == "In" && values.is_empty() {
            problems.push(format!("{at}: operator In needs values"));
        }
        if [LABEL_CAPACITY_TYPE, LABEL_COMPUTE_ENVIRONMENT].contains(&r.key.as_str()) {
            problems.push(format!(
                "{at}: {} is set by Barge (from computeResources.type and the environment's name)",
                r.key
            ));
        }
    }
    KarpenterPool {
        node_class_ref: provider.node_class_ref.clone(),
        instance_requirement,
        capacity_type: if resources.r#type == ComputeResourceType::Spot {
            CAPACITY_TYPE_SPOT
        } else {
            CAPACITY_TYPE_ON_DEMAND
        },
        extra_requirements: provider.requirements.clone(),
        candidates,
        min_vcpus: i64::from(resources.minv_cpus),
        max_vcpus: i64::from(resources.maxv_cpus),
        desired_vcpus: resources.desiredv_cpus.map(i64::from),
        tags: resources.tags.clone(),
        scale_down_delay_seconds: i64::from(resources.effective_scale_down_delay_seconds().max(0)),
        gpu_resource_name,
    }
}

/// What the Ready condition says about `minvCpus` / `desiredvCpus`, which Karpenter cannot keep.
pub fn idle_capacity_note(pool: &KarpenterPool) -> Option<String> {
    let mut ignored = Vec::new();
    if pool.min_vcpus > 0 {
        ignored.push(format!("minvCpus {}", pool.min_vcpus));
    }
    if let Some(d) = pool.desired_vcpus.filter(|d| *d > 0) {
        ignored.push(format!("desiredvCpus {d}"));
    }
    (!ignored.is_empty()).then(|| {
        format!(
            "Karpenter keeps no idle nodes: {} not kept warm; nodes are launched for pending jobs up to maxvCpus {}",
            ignored.join(" and "),
            pool.max_vcpus
        )
    })
}

/// The NodePool's name: the compute environment's.
pub fn nodepool_name(ce: &ComputeEnvironment) -> String {
    ce.name_any()
}

/// The NodePool Barge applies for `ce` (pure).
pub fn desired_nodepool(ce: &ComputeEnvironment, pool: &KarpenterPool) -> Value {
    let name = ce.name_any();
    let mut labels = pool.tags.clone();
    labels.insert(LABEL_COMPUTE_ENVIRONMENT.to_string(), name.clone());
    let (key, values) = &pool.instance_requirement;
    let mut requirements = vec![
        json!({"key": key, "operator": "In", "values": values}),
        json!({"key": LABEL_CAPACITY_TYPE, "operator": "In", "values": [pool.capacity_type]}),
    ];
    requirements.extend(
        pool.extra_requirements
            .iter()
            .map(|r| serde_json::to_value(r).unwrap_or_default()),
    );
    let node_class = &pool.node_class_ref;
    json!({
        "apiVersion": format!("{NODEPOOL_GROUP}/{NODEPOOL_VERSION}"),
        "kind": NODEPOOL_KIND,
        "metadata": {
            "name": nodepool_name(ce),
            "labels": {
                LABEL_MANAGED_BY: MANAGED_BY_BARGE,
                LABEL_COMPUTE_ENVIRONMENT: name,
            },
            "ownerReferences": [{
                "apiVersion": API_VERSION,
                "kind": KIND_COMPUTE_ENVIRONMENT,
                "name": name,
                "uid": ce.metadata.uid.clone().unwrap_or_default(),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeClassRef": {
                        "group": node_class.group,
                        "kind": node_class.kind,
                        "name": node_class.name,
                    },
                    "taints": [{
                        "key": TAINT_COMPUTE_ENVIRONMENT,
                        "value": name,
                        "effect": "NoSchedule",
                    }],
                    "requirements": requirements,
                },
            },
            "limits": {"cpu": pool.max_vcpus.to_string()},
            "disruption": {
                "consolidationPolicy": CONSOLIDATION_POLICY,
                "consolidateAfter": format!("{}s", pool.scale_down_delay_seconds),
            },
        },
    })
}

/// What this process knows of the cluster, cached (see the module docs).
#[derive(Default)]
struct Known {
    /// (group, version or "", kind) → when asked, and the resource if served.
    served: HashMap<(String, String, String), (Instant, Option<ApiResource>)>,
    /// (group, kind, name) → when asked, and whether it exists.
    node_classes: HashMap<(String, String, String), (Instant, bool)>,
    /// compute environment → when applied, and the NodePool applied.
    applied: HashMap<String, (Instant, Value)>,
    /// uids of environments with another provider known to have no NodePool of Barge's.
    retired: HashSet<String>,
}

static KNOWN: LazyLock<Mutex<Known>> = LazyLock::new(|| Mutex::new(Known::default()));

fn known() -> std::sync::MutexGuard<'static, Known> {
    KNOWN.lock().unwrap_or_else(|e| e.into_inner())
}

fn fresh(asked: Instant, positive: bool) -> bool {
    asked.elapsed() < if positive { SERVED_TTL } else { NOT_SERVED_TTL }
}

fn is_not_found(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => status.code == 404,
        kube::Error::Discovery(_) => true,
        _ => false,
    }
}

/// The resource of `group`/`kind` (at `version`, or the group's preferred one) if the cluster
/// serves it; transient errors are returned.
async fn served(
    client: &Client,
    group: &str,
    version: Option<&str>,
    kind: &str,
) -> Result<Option<ApiResource>, kube::Error> {
    let key = (
        group.to_string(),
        version.unwrap_or_default().to_string(),
        kind.to_string(),
    );
    if let Some((asked, resource)) = known().served.get(&key) {
        if fresh(*asked, resource.is_some()) {
            return Ok(resource.clone());
        }
    }
    let found = match version {
        Some(version) => {
            discovery::pinned_kind(client, &GroupVersionKind::gvk(group, version, kind)).await
        }
        None => discovery::group(client, group).await.and_then(|g| {
            g.recommended_kind(kind).ok_or_else(|| {
                kube::Error::Discovery(kube::error::DiscoveryError::MissingKind(kind.into()))
            })
        }),
    };
    let resource = match found {
        Ok((resource, caps)) => Some(resource).filter(|_| caps.scope == Scope::Cluster),
        Err(err) if is_not_found(&err) => None,
        Err(err) => return Err(err),
    };
    known()
        .served
        .insert(key, (Instant::now(), resource.clone()));
    Ok(resource)
}

async fn node_class_exists(
    client: &Client,
    resource: &ApiResource,
    node_class: &NodeClassRef,
) -> Result<bool, kube::Error> {
    let key = (
        node_class.group.clone(),
        node_class.kind.clone(),
        node_class.name.clone(),
    );
    if let Some((asked, exists)) = known().node_classes.get(&key) {
        if fresh(*asked, *exists) {
            return Ok(*exists);
        }
    }
    let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
    let exists = api.get_opt(&node_class.name).await?.is_some();
    known().node_classes.insert(key, (Instant::now(), exists));
    Ok(exists)
}

/// Checks that the cluster can run the pool and applies its NodePool when it changed (or was
/// last applied more than [`REAPPLY_INTERVAL`] ago). `Ok(Err(_))`: the environment is INVALID
/// for that reason (the cluster lacks something; look again after [`RECHECK_INTERVAL`]);
/// `Err(_)`: a transient API error.
pub async fn ensure_nodepool(
    client: &Client,
    ce: &ComputeEnvironment,
    pool: &KarpenterPool,
) -> Result<Result<(), PoolError>, kube::Error> {
    let Some(nodepools) = served(
        client,
        NODEPOOL_GROUP,
        Some(NODEPOOL_VERSION),
        NODEPOOL_KIND,
    )
    .await?
    else {
        return Ok(Err(PoolError {
            reason: REASON_PROVIDER_NOT_SERVED,
            message: format!(
                "the karpenter provider needs Karpenter's {NODEPOOL_GROUP}/{NODEPOOL_VERSION} {NODEPOOL_KIND} API, which this cluster does not serve: install Karpenter"
            ),
        }));
    };
    let node_class = &pool.node_class_ref;
    let Some(class_resource) = served(client, &node_class.group, None, &node_class.kind).await?
    else {
        return Ok(Err(PoolError {
            reason: REASON_PROVIDER_NOT_SERVED,
            message: format!(
                "nodeClassRef names kind {} of group {}, which this cluster does not serve (as a cluster-scoped kind): install the Karpenter provider that defines it, or fix nodeClassRef",
                node_class.kind, node_class.group
            ),
        }));
    };
    if !node_class_exists(client, &class_resource, node_class).await? {
        return Ok(Err(PoolError {
            reason: REASON_NODE_CLASS_NOT_FOUND,
            message: format!(
                "nodeClassRef names {} {:?} (group {}), which does not exist",
                node_class.kind, node_class.name, node_class.group
            ),
        }));
    }
    let desired = desired_nodepool(ce, pool);
    let name = nodepool_name(ce);
    let previous = known().applied.get(&name).cloned();
    if let Some((at, applied)) = &previous {
        if *applied == desired && at.elapsed() < REAPPLY_INTERVAL {
            return Ok(Ok(()));
        }
    }
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &nodepools);
    if previous.is_none() {
        // First apply by this process: never take over a NodePool someone else made.
        if let Some(existing) = api.get_opt(&name).await? {
            let uid = ce.metadata.uid.as_deref().unwrap_or_default();
            if !existing
                .owner_references()
                .iter()
                .any(|o| o.uid == uid && o.controller == Some(true))
            {
                return Ok(Err(PoolError {
                    reason: REASON_NODE_POOL_CONFLICT,
                    message: format!(
                        "a NodePool named {name} exists and is not this compute environment's: rename or delete it"
                    ),
                }));
            }
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER_COMPUTE_ENVIRONMENT_CONTROLLER).force();
    match api.patch(&name, &params, &Patch::Apply(&desired)).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 422 || status.code == 400 => {
            known().applied.remove(&name);
            return Ok(Err(PoolError {
                reason: REASON_NODE_POOL_REFUSED,
                message: format!("the API server refused the NodePool: {}", status.message),
            }));
        }
        Err(err) => {
            known().applied.remove(&name);
            return Err(err);
        }
    }
    known().applied.insert(name, (Instant::now(), desired));
    Ok(Ok(()))
}

/// Deletes the NodePool of an environment that no longer uses the karpenter provider (its spec
/// switched to another one), if Barge made it. Looked at once per environment and process (a
/// discovery and a GET), and again only after this process applied a NodePool for it.
pub async fn retire_nodepool(client: &Client, ce: &ComputeEnvironment) -> Result<(), kube::Error> {
    let name = nodepool_name(ce);
    let uid = ce.metadata.uid.clone().unwrap_or_default();
    {
        let known = known();
        if known.retired.contains(&uid) && !known.applied.contains_key(&name) {
            return Ok(());
        }
    }
    if let Some(resource) = served(
        client,
        NODEPOOL_GROUP,
        Some(NODEPOOL_VERSION),
        NODEPOOL_KIND,
    )
    .await?
    {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        if let Some(existing) = api.get_opt(&name).await? {
            let ours = existing
                .owner_references()
                .iter()
                .any(|o| o.uid == uid && o.controller == Some(true));
            if ours {
                match api.delete(&name, &Default::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(err) => return Err(err),
                }
            }
        }
    }
    let mut known = known();
    known.applied.remove(&name);
    known.retired.insert(uid);
    Ok(())
}

/// Forgets what was applied for a deleted environment (its NodePool goes by garbage collection).
pub fn forget(ce: &ComputeEnvironment) {
    let mut known = known();
    known.applied.remove(&nodepool_name(ce));
    known
        .retired
        .remove(ce.metadata.uid.as_deref().unwrap_or_default());
}

/// Whether an INVALID reason depends on the cluster rather than on the spec (look again after
/// [`RECHECK_INTERVAL`], not only on a spec change).
pub fn is_cluster_reason(reason: &str) -> bool {
    [
        REASON_PROVIDER_NOT_SERVED,
        REASON_NODE_CLASS_NOT_FOUND,
        REASON_NODE_POOL_CONFLICT,
    ]
    .contains(&reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodepools::tests::simulated_ce;
    use crate::nodepools::{pool_of, Pool};
    use barge_crds::compute_environment::KarpenterProvider;
    use barge_sim::apimachinery::validation::CompiledSchema;
    use k8s_openapi::api::core::v1::NodeSelectorRequirement;

    pub fn karpenter_ce(name: &str, instance_types: &[&str], max: i32) -> ComputeEnvironment {
        let mut ce = simulated_ce(name, instance_types, 0, None, max);
        ce.metadata.uid = Some("uid-1".into());
        let resources = ce.spec.compute_resources.as_mut().expect("cr");
        resources.provider.simulated = None;
        resources.provider.karpenter = Some(KarpenterProvider {
            node_class_ref: NodeClassRef {
                group: "karpenter.k8s.aws".into(),
                kind: "EC2NodeClass".into(),
                name: "default".into(),
            },
            requirements: vec![NodeSelectorRequirement {
                key: "kubernetes.io/arch".into(),
                operator: "In".into(),
                values: Some(vec!["amd64".into()]),
            }],
        });
        resources.tags = [("team".to_string(), "genomics".to_string())].into();
        resources.scale_down_delay_seconds = Some(30);
        ce
    }

    fn pool(ce: &ComputeEnvironment) -> KarpenterPool {
        match pool_of(ce) {
            Ok(Pool::Karpenter(pool)) => pool,
            other => panic!("karpenter pool expected: {other:?}"),
        }
    }

    fn nodepool_schema() -> CompiledSchema {
        let text = barge_fixtures::read(&barge_fixtures::crd("karpenter.sh_nodepools.yaml"));
        let crd: Value = serde_yaml::from_str(&text).expect("CRD YAML");
        let v1 = crd["spec"]["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .find(|v| v["name"] == NODEPOOL_VERSION)
            .expect("v1")
            .clone();
        CompiledSchema::new(&v1["schema"]["openAPIV3Schema"]).expect("schema compiles")
    }

    #[test]
    fn the_nodepool_is_rendered_field_by_field() {
        let ce = karpenter_ce("genomics", &["c5.large", "m5"], 8);
        let np = desired_nodepool(&ce, &pool(&ce));
        assert_eq!(np["apiVersion"], "karpenter.sh/v1");
        assert_eq!(np["kind"], "NodePool");
        assert_eq!(np["metadata"]["name"], "genomics");
        assert_eq!(np["metadata"]["labels"][LABEL_MANAGED_BY], "barge");
        assert_eq!(
            np["metadata"]["labels"][LABEL_COMPUTE_ENVIRONMENT],
            "genomics"
        );
        let owner = &np["metadata"]["ownerReferences"][0];
        assert_eq!(
            (
                &owner["apiVersion"],
                &owner["kind"],
                &owner["name"],
                &owner["uid"],
                &owner["controller"]
            ),
            (
                &json!(API_VERSION),
                &json!("ComputeEnvironment"),
                &json!("genomics"),
                &json!("uid-1"),
                &json!(true)
            )
        );
        let template = &np["spec"]["template"];
        assert_eq!(
            template["metadata"]["labels"],
            json!({LABEL_COMPUTE_ENVIRONMENT: "genomics", "team": "genomics"})
        );
        assert_eq!(
            template["spec"]["taints"],
            json!([{"key": TAINT_COMPUTE_ENVIRONMENT, "value": "genomics", "effect": "NoSchedule"}])
        );
        assert_eq!(
            template["spec"]["nodeClassRef"],
            json!({"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"})
        );
        let requirements = template["spec"]["requirements"].as_array().expect("list");
        // A mixed list (a type and a family): exact names, the family expanded.
        assert_eq!(requirements[0]["key"], LABEL_INSTANCE_TYPE);
        let names = requirements[0]["values"].as_array().expect("names");
        assert_eq!(names.len(), 9, "c5.large and the 8 m5 sizes: {names:?}");
        assert!(names.contains(&json!("c5.large")) && names.contains(&json!("m5.24xlarge")));
        assert_eq!(
            requirements[1],
            json!({"key": LABEL_CAPACITY_TYPE, "operator": "In", "values": ["on-demand"]})
        );
        assert_eq!(
            requirements[2],
            json!({"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]})
        );
        assert_eq!(requirements.len(), 3);
        assert_eq!(np["spec"]["limits"], json!({"cpu": "8"}));
        assert_eq!(
            np["spec"]["disruption"],
            json!({"consolidationPolicy": "WhenEmpty", "consolidateAfter": "30s"})
        );
    }

    #[test]
    fn families_and_optimal_become_an_instance_family_requirement_and_spot_a_capacity_type() {
        let mut ce = karpenter_ce("spot", &["m5", "c5"], 64);
        ce.spec.compute_resources.as_mut().expect("cr").r#type = ComputeResourceType::Spot;
        let np = desired_nodepool(&ce, &pool(&ce));
        let requirements = &np["spec"]["template"]["spec"]["requirements"];
        assert_eq!(
            requirements[0],
            json!({"key": LABEL_INSTANCE_FAMILY, "operator": "In", "values": ["c5", "m5"]})
        );
        assert_eq!(requirements[1]["values"], json!(["spot"]));
        let optimal = karpenter_ce("o", &["optimal"], 64);
        let p = pool(&optimal);
        assert_eq!(
            p.instance_requirement,
            (
                LABEL_INSTANCE_FAMILY.to_string(),
                ["c4", "c5", "m4", "m5", "r4", "r5"]
                    .map(String::from)
                    .to_vec()
            )
        );
        assert_eq!(p.candidates.len(), 41, "the shapes of every optimal type");
    }

    #[test]
    fn the_rendered_nodepool_passes_the_upstream_crd_schema() {
        let schema = nodepool_schema();
        for ce in [
            karpenter_ce("genomics", &["c5.large", "m5"], 8),
            karpenter_ce("families", &["optimal"], 1000),
        ] {
            let mut np = desired_nodepool(&ce, &pool(&ce));
            schema.apply_defaults(&mut np);
            schema
                .validate(&np, None)
                .unwrap_or_else(|e| panic!("{}: {e:?}", ce.name_any()));
        }
        // The validator does refuse a bad one (the test proves something).
        let ce = karpenter_ce("bad", &["m5"], 8);
        let mut np = desired_nodepool(&ce, &pool(&ce));
        np["spec"]["disruption"]["consolidateAfter"] = json!("5 seconds");
        assert!(schema.validate(&np, None).is_err());
    }

    #[test]
    fn bad_requirements_and_unknown_types_make_the_environment_invalid() {
        let mut ce = karpenter_ce("k", &["x9.huge"], 8);
        ce.spec
            .compute_resources
            .as_mut()
            .expect("cr")
            .provider
            .karpenter
            .as_mut()
            .expect("karpenter")
            .requirements = vec![
            NodeSelectorRequirement {
                key: LABEL_CAPACITY_TYPE.into(),
                operator: "In".into(),
                values: Some(vec!["spot".into()]),
            },
            NodeSelectorRequirement {
                key: "example.com/tier".into(),
                operator: "Near".into(),
                values: None,
            },
        ];
        let err = pool_of(&ce).unwrap_err();
        for expected in [
            "\"x9.huge\" is neither",
            "requirements[0]: karpenter.sh/capacity-type is set by Barge",
            "requirements[1]: operator \"Near\" is not one of",
        ] {
            assert!(err.message.contains(expected), "{expected:?} in {err}");
        }
    }

    #[test]
    fn min_and_desired_vcpus_are_accepted_with_a_note() {
        let mut ce = karpenter_ce("warm", &["m5"], 64);
        let resources = ce.spec.compute_resources.as_mut().expect("cr");
        resources.minv_cpus = 4;
        resources.desiredv_cpus = Some(16);
        let p = pool(&ce);
        assert_eq!(
            idle_capacity_note(&p).as_deref(),
            Some("Karpenter keeps no idle nodes: minvCpus 4 and desiredvCpus 16 not kept warm; nodes are launched for pending jobs up to maxvCpus 64")
        );
        assert_eq!(
            idle_capacity_note(&pool(&karpenter_ce("cold", &["m5"], 8))),
            None
        );
    }

    #[test]
    fn cluster_reasons_are_rechecked() {
        assert!(is_cluster_reason(REASON_PROVIDER_NOT_SERVED));
        assert!(is_cluster_reason(REASON_NODE_CLASS_NOT_FOUND));
        assert!(!is_cluster_reason(barge_crds::consts::REASON_INVALID_SPEC));
    }
}
