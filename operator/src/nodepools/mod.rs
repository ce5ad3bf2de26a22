//! Node pools: where the nodes of a compute environment come from, and how they look to the
//! scheduler.
//!
//! Data flow: a ComputeEnvironment spec → [`pool_of`] (pure validation) → a [`Pool`]:
//! - [`Pool::Simulated`] ([`simulated`]): a MANAGED environment with the `simulated` provider;
//!   Barge creates and deletes Node objects itself to match barge-core's fixed-size plan
//!   (`maxvCpus` equal to `minvCpus`), or, for a pool that scales with demand (`maxvCpus` above
//!   `minvCpus`; `desiredvCpus` its floor), barge-core's scaling decision ([`demand`]);
//! - [`Pool::Unmanaged`] ([`unmanaged`]): existing nodes picked by `nodeSelector`, labelled as
//!   members, never scaled.
//!
//! - [`Pool::Karpenter`] ([`karpenter`]): a MANAGED environment with the `karpenter` provider;
//!   Barge owns one `karpenter.sh/v1` NodePool per environment and Karpenter launches and
//!   consolidates its nodes for the pending pods Barge creates (`bindingMode: KubeScheduler`).
//!
//! - [`Pool::ClusterApi`] ([`cluster_api`]): a MANAGED environment with the `clusterAPI`
//!   provider; Barge sets `replicas` of the Cluster API MachineDeployments it names (through
//!   their `scale` subresource), following barge-core's scaling decision ([`demand`]), and marks
//!   the idle machines to remove with Cluster API's delete-machine annotation.
//!
//! For the scheduler: [`scheduler_environment`] turns a compute environment into barge-core's
//! `EnvironmentSpec` (with the node shapes it has or will have, for "can never run"), and
//! [`node_snapshot`] turns a Node and the pod usage into a `NodeSnapshot`.

pub mod cluster_api;
pub mod demand;
pub mod karpenter;
pub mod simulated;
pub mod unmanaged;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;

use barge_core::pool::{AllocationStrategy as CoreStrategy, InstanceType};
use barge_core::resources::Resources;
use barge_core::scaling::NodeState;
use barge_core::scheduler::{EnvironmentSpec, NodeShape, NodeSnapshot};
use barge_crds::common::{is_label_key, is_label_value, State};
use barge_crds::compute_environment::{
    AllocationStrategy, CeStatus, ComputeEnvironmentType, ComputeResourceType, InstanceTypeSpec,
};
use barge_crds::consts::{
    INSTANCE_TYPE_OPTIMAL, LABEL_COMPUTE_ENVIRONMENT, LABEL_INSTANCE_TYPE, REASON_INVALID_SPEC,
    RESERVED_LABEL_PREFIX, TAINT_COMPUTE_ENVIRONMENT,
};
use barge_crds::ComputeEnvironment;

use crate::cache::{Caches, NodeUsage};
use crate::context::{EnabledProviders, Provider};
use crate::status::REASON_PROVIDER_DISABLED;

/// Why a compute environment has no usable pool.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PoolError {
    /// CamelCase condition reason.
    pub reason: &'static str,
    pub message: String,
}

impl PoolError {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            reason: REASON_INVALID_SPEC,
            message: message.into(),
        }
    }
}

/// A managed pool of simulated nodes, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulatedPool {
    /// The built-in catalog plus the environment's own instance types.
    pub catalog: Vec<InstanceType>,
    /// Names of the catalog entries `instanceTypes` expands to.
    pub instance_types: Vec<String>,
    pub strategy: CoreStrategy,
    pub min_vcpus: i64,
    pub max_vcpus: i64,
    pub desired_vcpus: Option<i64>,
    /// Labels for the nodes (`computeResources.tags`).
    pub tags: BTreeMap<String, String>,
    pub gpu_resource_name: String,
}

impl SimulatedPool {
    /// The vCPUs of the fixed-size plan: `desiredvCpus` (default `minvCpus`) while ENABLED,
    /// `minvCpus` while DISABLED. Only pools whose `maxvCpus` equals `minvCpus` keep this plan
    /// (so it is `minvCpus`); the others scale with demand, `desiredvCpus` their floor while
    /// ENABLED (see [`demand`]).
    pub fn target_vcpus(&self, enabled: bool) -> i64 {
        if enabled {
            self.desired_vcpus.unwrap_or(self.min_vcpus)
        } else {
            self.min_vcpus
        }
    }

    /// The catalog entries of `instanceTypes`.
    pub fn candidates(&self) -> Vec<&InstanceType> {
        self.catalog
            .iter()
            .filter(|t| self.instance_types.iter().any(|n| *n == t.name))
            .collect()
    }
}

/// A pool of existing nodes chosen by labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnmanagedPool {
    pub node_selector: BTreeMap<String, String>,
    pub gpu_resource_name: String,
}

/// The pool of a compute environment.
#[derive(Clone, Debug, PartialEq)]
pub enum Pool {
    Simulated(SimulatedPool),
    Unmanaged(UnmanagedPool),
    Karpenter(karpenter::KarpenterPool),
    ClusterApi(cluster_api::ClusterApiPool),
}

impl Pool {
    /// The provider a MANAGED pool needs enabled; None for an UNMANAGED one.
    pub fn provider(&self) -> Option<Provider> {
        match self {
            Pool::Simulated(_) => Some(Provider::Simulated),
            Pool::Karpenter(_) => Some(Provider::Karpenter),
            Pool::ClusterApi(_) => Some(Provider::ClusterApi),
            Pool::Unmanaged(_) => None,
        }
    }
}

/// Why an environment whose provider `--providers` leaves out has no pool (pure).
pub fn provider_disabled(provider: Provider, enabled: &EnabledProviders) -> PoolError {
    PoolError {
        reason: REASON_PROVIDER_DISABLED,
        message: format!(
            "the {} provider is not enabled in this Barge installation (enabled: {enabled}); the platform team enables it with the Helm value {}=true (`barge operator --providers`)",
            provider.spec_field(),
            provider.helm_value()
        ),
    }
}

/// [`pool_of`] for an operator that may use only the `enabled` providers: a pool of another
/// provider is INVALID ([`provider_disabled`]), and nothing is done for it.
pub fn enabled_pool_of(
    ce: &ComputeEnvironment,
    enabled: &EnabledProviders,
) -> Result<Pool, PoolError> {
    let pool = pool_of(ce)?;
    match pool.provider() {
        Some(provider) if !enabled.allows(provider) => Err(provider_disabled(provider, enabled)),
        _ => Ok(pool),
    }
}

/// An AWS-style price ("0.17" dollars per hour) in micro-dollars per hour.
pub fn price_micros(price: &str) -> Result<i64, String> {
    let bad = || format!("price {price:?} is not a decimal number of dollars per hour");
    let (whole, fraction) = price.trim().split_once('.').unwrap_or((price.trim(), ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let dollars: i64 = whole.parse().map_err(|_| bad())?;
    let mut micros: i64 = 0;
    for (i, digit) in fraction.bytes().take(6).enumerate() {
        micros += i64::from(digit - b'0') * 10_i64.pow(5 - i as u32);
    }
    dollars
        .checked_mul(1_000_000)
        .and_then(|d| d.checked_add(micros))
        .ok_or_else(bad)
}

fn custom_type(spec: &InstanceTypeSpec) -> Result<InstanceType, String> {
    if spec.v_cpus < 1 || spec.memory_mib < 1 || spec.gpus.unwrap_or(0) < 0 {
        return Err(format!(
            "catalog entry {:?} needs vCpus ≥ 1, memoryMiB ≥ 1 and gpus ≥ 0",
            spec.name
        ));
    }
    let price = match &spec.price {
        Some(p) => price_micros(p).map_err(|e| format!("catalog entry {:?}: {e}", spec.name))?,
        // Without a price, a type costs what the built-in catalog charges per vCPU on average
        // (0.05 $/vCPU-hour), so BEST_FIT still prefers fewer, fitting nodes.
        None => i64::from(spec.v_cpus) * 50_000,
    };
    Ok(InstanceType::custom(
        &spec.name,
        i64::from(spec.v_cpus),
        i64::from(spec.memory_mib),
        i64::from(spec.gpus.unwrap_or(0)),
        price,
    ))
}

fn strategy_of(
    strategy: Option<AllocationStrategy>,
    capacity: ComputeResourceType,
) -> CoreStrategy {
    match strategy {
        Some(AllocationStrategy::BestFit) => CoreStrategy::BestFit,
        Some(AllocationStrategy::BestFitProgressive) => CoreStrategy::BestFitProgressive,
        Some(AllocationStrategy::SpotCapacityOptimized) => CoreStrategy::SpotCapacityOptimized,
        Some(AllocationStrategy::SpotPriceCapacityOptimized) => {
            CoreStrategy::SpotPriceCapacityOptimized
        }
        None if capacity == ComputeResourceType::Spot => CoreStrategy::SpotCapacityOptimized,
        None => CoreStrategy::BestFit,
    }
}

fn check_labels(
    what: &str,
    labels: &BTreeMap<String, String>,
    reserved_allowed: bool,
    problems: &mut Vec<String>,
) {
    for (key, value) in labels {
        if !is_label_key(key) {
            problems.push(format!("{what} key {key:?} is not a Kubernetes label key"));
        } else if !reserved_allowed && key.starts_with(RESERVED_LABEL_PREFIX) {
            problems.push(format!(
                "{what} key {key:?} uses the {RESERVED_LABEL_PREFIX} prefix Barge reserves"
            ));
        }
        if !is_label_value(value) {
            problems.push(format!(
                "{what} value {value:?} of {key:?} is not a Kubernetes label value"
            ));
        }
    }
}

/// Validates a compute environment and returns its pool (pure).
pub fn pool_of(ce: &ComputeEnvironment) -> Result<Pool, PoolError> {
    let spec = &ce.spec;
    let gpu_resource_name = spec.effective_gpu_resource_name().to_string();
    let mut problems = Vec::new();
    if !is_label_key(&gpu_resource_name) {
        problems.push(format!(
            "gpuResourceName {gpu_resource_name:?} is not a resource name"
        ));
    }
    let pool = match spec.r#type {
        ComputeEnvironmentType::Unmanaged => {
            if spec.compute_resources.is_some() {
                problems.push("computeResources is for MANAGED compute environments".into());
            }
            let node_selector = spec.node_selector.clone().unwrap_or_default();
            if node_selector.is_empty() {
                problems.push(
                    "an UNMANAGED compute environment needs a nodeSelector to pick its nodes"
                        .into(),
                );
            }
            check_labels("nodeSelector", &node_selector, true, &mut problems);
            Pool::Unmanaged(UnmanagedPool {
                node_selector,
                gpu_resource_name,
            })
        }
        ComputeEnvironmentType::Managed => {
            let Some(resources) = &spec.compute_resources else {
                return Err(PoolError::invalid(
                    "a MANAGED compute environment needs computeResources",
                ));
            };
            if matches!(
                resources.r#type,
                ComputeResourceType::Fargate | ComputeResourceType::FargateSpot
            ) {
                return Err(PoolError::invalid(
                    "FARGATE and FARGATE_SPOT compute environments are not supported: Barge runs jobs as pods on nodes; use EC2 or SPOT",
                ));
            }
            let provider = &resources.provider;
            let named = [
                provider.simulated.is_some(),
                provider.karpenter.is_some(),
                provider.cluster_api.is_some(),
            ]
            .iter()
            .filter(|p| **p)
            .count();
            if named != 1 {
                return Err(PoolError::invalid(
                    "provider must name exactly one of simulated, karpenter or clusterAPI",
                ));
            }
            let simulated = provider.simulated.clone().unwrap_or_default();
            let (min, max) = (
                i64::from(resources.minv_cpus),
                i64::from(resources.maxv_cpus),
            );
            let desired = resources.desiredv_cpus.map(i64::from);
            if min < 0 || max < 0 || min > max {
                problems.push(format!(
                    "minvCpus {min} and maxvCpus {max} must satisfy 0 ≤ minvCpus ≤ maxvCpus"
                ));
            }
            if let Some(d) = desired {
                if d < min || d > max {
                    problems.push(format!(
                        "desiredvCpus {d} must lie between minvCpus {min} and maxvCpus {max}"
                    ));
                }
            }
            check_labels(
                "computeResources.tags",
                &resources.tags,
                false,
                &mut problems,
            );
            if let Some(karpenter) = &provider.karpenter {
                let pool = karpenter::karpenter_pool(
                    ce,
                    resources,
                    karpenter,
                    gpu_resource_name,
                    &mut problems,
                );
                return if problems.is_empty() {
                    Ok(Pool::Karpenter(pool))
                } else {
                    Err(PoolError::invalid(problems.join("; ")))
                };
            }
            if let Some(cluster_api) = &provider.cluster_api {
                let pool = cluster_api::validate(
                    cluster_api,
                    strategy_of(resources.allocation_strategy, resources.r#type),
                    (min, max, desired),
                    gpu_resource_name,
                    &mut problems,
                );
                return if problems.is_empty() {
                    Ok(Pool::ClusterApi(pool))
                } else {
                    Err(PoolError::invalid(problems.join("; ")))
                };
            }
            let mut custom = Vec::new();
            for entry in &simulated.catalog {
                match custom_type(entry) {
                    Ok(t) => custom.push(t),
                    Err(problem) => problems.push(problem),
                }
            }
            let catalog = barge_core::pool::catalog_with(&custom);
            let entries: Vec<String> = if resources.instance_types.is_empty() {
                vec![INSTANCE_TYPE_OPTIMAL.to_string()]
            } else {
                resources.instance_types.clone()
            };
            let instance_types =
                match barge_core::pool::expand_instance_types_in(&catalog, &entries) {
                    Ok(types) => types.iter().map(|t| t.name.to_string()).collect(),
                    Err(err) => {
                        problems.push(format!("instanceTypes: {err}"));
                        Vec::new()
                    }
                };
            let pool = SimulatedPool {
                catalog,
                instance_types,
                strategy: strategy_of(resources.allocation_strategy, resources.r#type),
                min_vcpus: min,
                max_vcpus: max,
                desired_vcpus: desired,
                tags: resources.tags.clone(),
                gpu_resource_name,
            };
            problems.extend(simulated::beyond_node_cap(&pool));
            Pool::Simulated(pool)
        }
    };
    if problems.is_empty() {
        Ok(pool)
    } else {
        Err(PoolError::invalid(problems.join("; ")))
    }
}

/// Whether the environment takes new placements: ENABLED and not being deleted.
pub fn is_enabled(ce: &ComputeEnvironment) -> bool {
    ce.spec.state == State::Enabled && ce.metadata.deletion_timestamp.is_none()
}

fn quantity(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    name: &str,
    parse: fn(&str) -> barge_core::Result<i64>,
) -> i64 {
    map.and_then(|m| m.get(name))
        .and_then(|q| parse(&q.0).ok())
        .unwrap_or(0)
}

/// A node's allocatable resources, GPUs under `gpu_resource`.
pub fn node_allocatable(node: &Node, gpu_resource: &str) -> Resources {
    let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
    Resources::new(
        quantity(allocatable, "cpu", barge_core::quantity::cpu_millis),
        quantity(allocatable, "memory", barge_core::quantity::memory_mib),
        quantity(allocatable, gpu_resource, barge_core::quantity::count),
        quantity(allocatable, "pods", barge_core::quantity::count),
    )
}

/// Whether the node's Ready condition is True.
pub fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| {
            conds
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// A node's lifecycle as its pool sees it: draining when cordoned or being deleted; otherwise
/// Ready, or booting while its Ready condition is not True.
pub fn node_state(node: &Node) -> NodeState {
    let cordoned = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    if cordoned || node.metadata.deletion_timestamp.is_some() {
        NodeState::Draining
    } else if node_is_ready(node) {
        NodeState::Ready
    } else {
        NodeState::Booting
    }
}

/// Whether Barge may place pods on the node: Ready, not cordoned, not being deleted, and no
/// NoSchedule/NoExecute taint other than the compute environment's own (the only one Barge
/// pods tolerate).
pub fn node_is_schedulable(node: &Node) -> bool {
    let spec = node.spec.as_ref();
    let foreign_taint = spec.and_then(|s| s.taints.as_ref()).is_some_and(|taints| {
        taints.iter().any(|t| {
            t.key != TAINT_COMPUTE_ENVIRONMENT
                && (t.effect == "NoSchedule" || t.effect == "NoExecute")
        })
    });
    node_is_ready(node)
        && !spec.and_then(|s| s.unschedulable).unwrap_or(false)
        && node.metadata.deletion_timestamp.is_none()
        && !foreign_taint
}

/// The scheduler's view of a node: allocatable, what all its pods request, schedulability,
/// and who occupies it among Barge's pods (multi-node jobs' reservations included).
pub fn node_snapshot(node: &Node, usage: &NodeUsage, gpu_resource: &str) -> NodeSnapshot {
    let name = node.name_any();
    let occupancy = usage.occupancy_on(&name);
    NodeSnapshot {
        allocatable: node_allocatable(node, gpu_resource),
        used: usage.used_on(&name, gpu_resource),
        schedulable: node_is_schedulable(node),
        environment: node.labels().get(LABEL_COMPUTE_ENVIRONMENT).cloned(),
        instance_type: node.labels().get(LABEL_INSTANCE_TYPE).cloned(),
        barge_pods: occupancy.barge_pods,
        exclusive: occupancy.exclusive,
        name,
    }
}

/// Whether an environment in `status` takes work: VALID; UPDATING (as in AWS Batch, an
/// environment being updated keeps running its queues' jobs); and CREATING, on the nodes that
/// are Ready already (its jobs wait for nodes, not with "CE(s) ... are invalid"). INVALID and
/// DELETING take none.
pub fn takes_work(status: CeStatus) -> bool {
    matches!(
        status,
        CeStatus::Valid | CeStatus::Updating | CeStatus::Creating
    )
}

/// The scheduler's view of a compute environment. Its shapes are the node shapes it has or
/// will have: for a fixed-size simulated pool (`maxvCpus` equal to `minvCpus`), the types of its
/// plan and of its nodes (it does not grow, so a larger type it lists but never creates cannot
/// run a job); for one that scales with demand, also all its instance types; for an unmanaged
/// pool, its member nodes. `None` (unknown) for an invalid environment or one without any.
pub fn scheduler_environment(ce: &ComputeEnvironment, caches: &Caches) -> EnvironmentSpec {
    let name = ce.name_any();
    let valid = ce
        .status
        .as_ref()
        .and_then(|s| s.status)
        .is_some_and(takes_work);
    let pool = pool_of(ce).ok();
    let gpu = ce.spec.effective_gpu_resource_name().to_string();
    let nodes = caches.nodes_of_compute_environment(&name);
    let mut shapes: Vec<NodeShape> = nodes
        .iter()
        .map(|n| NodeShape {
            instance_type: n
                .labels()
                .get(LABEL_INSTANCE_TYPE)
                .cloned()
                .unwrap_or_else(|| n.name_any()),
            allocatable: node_allocatable(n, &gpu),
        })
        .filter(|s| !s.allocatable.is_zero())
        .collect();
    let mut max_milli_cpu = None;
    let mut planned_nodes = 0;
    if let Some(Pool::Simulated(simulated)) = &pool {
        let candidates = simulated.candidates();
        if let Ok(plan) = barge_core::pool::plan_fixed_pool(
            simulated.target_vcpus(true),
            &candidates,
            simulated.strategy,
        ) {
            shapes.extend(plan.iter().map(|(t, _)| t.shape()));
            planned_nodes = plan.iter().map(|(_, n)| *n as usize).sum();
        }
        if demand::scales_with_demand(simulated) {
            // It may grow with any of its instance types.
            shapes.extend(candidates.iter().map(|t| t.shape()));
        }
        max_milli_cpu = Some(Resources::vcpus(simulated.max_vcpus));
    }
    if let Some(Pool::Karpenter(karpenter)) = &pool {
        // Karpenter may launch any of its instance types.
        shapes.extend(karpenter.candidates.iter().map(|t| t.shape()));
        max_milli_cpu = Some(Resources::vcpus(karpenter.max_vcpus));
    }
    let mut unknown_shapes = false;
    if let Some(Pool::ClusterApi(cluster_api)) = &pool {
        // It may grow with the type of any of its deployments; a type read from a deployment's
        // annotations is not known here, so then its jobs are not judged by shape.
        for d in &cluster_api.deployments {
            match &d.instance_type {
                Some(t) => shapes.push(t.shape()),
                None => unknown_shapes = true,
            }
        }
        max_milli_cpu = Some(Resources::vcpus(cluster_api.max_vcpus));
    }
    shapes.sort_by(|a, b| {
        a.instance_type
            .cmp(&b.instance_type)
            .then(a.allocatable.cmp(&b.allocatable))
    });
    shapes.dedup();
    EnvironmentSpec {
        name,
        enabled: is_enabled(ce),
        valid,
        // An empty fixed pool has no shapes to judge a job by: its jobs wait (and the
        // environment's status says it has no nodes) rather than all being "can never run".
        shapes: if valid && pool.is_some() && !shapes.is_empty() && !unknown_shapes {
            Some(shapes)
        } else {
            None
        },
        max_milli_cpu,
        starting_nodes: starting_nodes(&nodes, planned_nodes),
        // The scheduler sets it for `bindingMode: KubeScheduler` (it counts admitted pods).
        budget_milli_cpu: None,
        spot: ce.spec.compute_resources.as_ref().is_some_and(|r| {
            r.r#type == barge_crds::compute_environment::ComputeResourceType::Spot
        }),
    }
}

/// Nodes expected to become Ready: booting ones (not Ready, not cordoned, not being deleted)
/// and, for a managed pool, planned ones not created yet.
fn starting_nodes(nodes: &[std::sync::Arc<Node>], planned: usize) -> u32 {
    let active = |n: &&std::sync::Arc<Node>| {
        n.metadata.deletion_timestamp.is_none()
            && !n
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false)
    };
    let booting = nodes
        .iter()
        .filter(active)
        .filter(|n| !node_is_ready(n))
        .count();
    let missing = planned.saturating_sub(nodes.iter().filter(active).count());
    u32::try_from(booting + missing).unwrap_or(u32::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cache::EventSink;
    use crate::test_support::aws_document;
    use barge_crds::compute_environment::{
        ComputeEnvironmentSpec, ComputeResources, NodeProvider, SimulatedProvider,
    };
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus, Taint};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use kube::api::ObjectMeta;

    /// The AWS fixture `computeenv-managed.json` as a simulated compute environment (the
    /// AWS-only fields are ignored; `provider` is what a Kubernetes user adds).
    pub fn aws_managed_ce() -> ComputeEnvironment {
        let mut doc = aws_document("computeenv-managed.json");
        doc["computeResources"]["provider"] = serde_json::json!({"simulated": {}});
        // AWS tag values may contain spaces; Barge's become labels, so the sample keeps a label-safe one.
        doc["computeResources"]["tags"] = serde_json::json!({"Name": "C4OnDemand"});
        let spec: ComputeEnvironmentSpec =
            serde_json::from_value(doc).expect("AWS document as a spec");
        ComputeEnvironment::new("c4ondemand", spec)
    }

    pub fn simulated_ce(
        name: &str,
        instance_types: &[&str],
        min: i32,
        desired: Option<i32>,
        max: i32,
    ) -> ComputeEnvironment {
        ComputeEnvironment::new(
            name,
            ComputeEnvironmentSpec {
                r#type: ComputeEnvironmentType::Managed,
                state: State::Enabled,
                compute_resources: Some(ComputeResources {
                    r#type: ComputeResourceType::Ec2,
                    minv_cpus: min,
                    maxv_cpus: max,
                    desiredv_cpus: desired,
                    instance_types: instance_types.iter().map(|s| s.to_string()).collect(),
                    allocation_strategy: None,
                    bid_percentage: None,
                    tags: BTreeMap::new(),
                    provider: NodeProvider {
                        simulated: Some(SimulatedProvider::default()),
                        karpenter: None,
                        cluster_api: None,
                    },
                    scale_down_delay_seconds: None,
                }),
                node_selector: None,
                gpu_resource_name: None,
                binding_mode: None,
            },
        )
    }

    #[test]
    fn the_crds_vcpu_bound_is_the_planners() {
        assert_eq!(
            i64::from(barge_crds::compute_environment::MAX_VCPUS),
            barge_core::pool::MAX_TARGET_VCPUS
        );
    }

    #[test]
    fn the_aws_managed_fixture_is_a_valid_simulated_pool() {
        let Pool::Simulated(pool) = pool_of(&aws_managed_ce()).expect("valid") else {
            panic!("simulated")
        };
        assert_eq!(pool.instance_types.len(), 5);
        assert_eq!(pool.target_vcpus(true), 48);
        assert_eq!(pool.target_vcpus(false), 0, "DISABLED shrinks to minvCpus");
        assert_eq!(pool.strategy, CoreStrategy::BestFit);
    }

    #[test]
    fn the_aws_spot_fixture_defaults_to_capacity_optimized() {
        let mut doc = aws_document("computeenv-spot.json");
        doc["computeResources"]["provider"] = serde_json::json!({"simulated": {}});
        doc["computeResources"]["tags"] = serde_json::json!({});
        let ce = ComputeEnvironment::new("spot", serde_json::from_value(doc).expect("spec"));
        let Pool::Simulated(pool) = pool_of(&ce).expect("valid") else {
            panic!("simulated")
        };
        assert_eq!(pool.strategy, CoreStrategy::SpotCapacityOptimized);
        assert!(pool.instance_types.iter().all(|t| t.starts_with("m4.")));
    }

    #[test]
    fn unsupported_providers_and_bad_specs_say_why() {
        let mut ce = simulated_ce("k", &["m5"], 0, None, 16);
        let provider = &mut ce.spec.compute_resources.as_mut().expect("cr").provider;
        provider.simulated = None;
        provider.karpenter = Some(barge_crds::compute_environment::KarpenterProvider {
            node_class_ref: barge_crds::compute_environment::NodeClassRef {
                group: "g".into(),
                kind: "k".into(),
                name: "n".into(),
            },
            requirements: vec![],
        });
        // Karpenter is a provider now (its own tests: nodepools::karpenter).
        assert!(
            matches!(pool_of(&ce), Ok(Pool::Karpenter(_))),
            "{:?}",
            pool_of(&ce)
        );

        let mut bad = simulated_ce("b", &["x9.huge"], 4, Some(2), 16);
        bad.spec.compute_resources.as_mut().expect("cr").tags =
            [("Cost Center".to_string(), "a b".to_string())].into();
        let err = pool_of(&bad).unwrap_err();
        assert_eq!(err.reason, REASON_INVALID_SPEC);
        for expected in [
            "desiredvCpus 2 must lie between",
            "\"x9.huge\" is neither",
            "\"Cost Center\" is not a Kubernetes label key",
            "\"a b\"",
        ] {
            assert!(
                err.message.contains(expected),
                "missing {expected:?} in {err}"
            );
        }
    }

    #[test]
    fn custom_catalog_entries_join_the_pool() {
        let mut ce = simulated_ce("c", &["sim"], 0, Some(4), 8);
        ce.spec
            .compute_resources
            .as_mut()
            .expect("cr")
            .provider
            .simulated = Some(SimulatedProvider {
            catalog: vec![InstanceTypeSpec {
                name: "sim.small".into(),
                v_cpus: 2,
                memory_mib: 4096,
                gpus: None,
                price: Some("0.05".into()),
            }],
        });
        let Pool::Simulated(pool) = pool_of(&ce).expect("valid") else {
            panic!("simulated")
        };
        assert_eq!(pool.instance_types, ["sim.small"]);
        assert_eq!(pool.candidates()[0].price_micros_per_hour, 50_000);
        assert_eq!(price_micros("0.17"), Ok(170_000));
        assert_eq!(price_micros("3"), Ok(3_000_000));
        assert_eq!(price_micros("1.2345678"), Ok(1_234_567));
        assert!(
            price_micros("-1").is_err()
                && price_micros("1.x").is_err()
                && price_micros("").is_err()
        );
    }

    #[test]
    fn a_pool_of_a_provider_left_off_is_invalid_and_says_how_to_enable_it() {
        let ce = simulated_ce("s", &["c5.large"], 2, None, 2);
        let karpenter_only = EnabledProviders::only(&[Provider::Karpenter]);
        let err = enabled_pool_of(&ce, &karpenter_only).unwrap_err();
        assert_eq!(err.reason, REASON_PROVIDER_DISABLED);
        for needle in [
            "the simulated provider",
            "(enabled: karpenter)",
            "providers.simulated.enabled=true",
        ] {
            assert!(err.message.contains(needle), "{needle}: {}", err.message);
        }
        assert!(matches!(
            enabled_pool_of(&ce, &EnabledProviders::all()),
            Ok(Pool::Simulated(_))
        ));
        // An invalid spec says so first, whatever the providers.
        let mut bad = ce.clone();
        bad.spec.compute_resources.as_mut().expect("cr").maxv_cpus = 1;
        assert_eq!(
            enabled_pool_of(&bad, &EnabledProviders::none())
                .unwrap_err()
                .reason,
            REASON_INVALID_SPEC
        );
        // UNMANAGED pools need no provider.
        let mut unmanaged = ce;
        unmanaged.spec.r#type = ComputeEnvironmentType::Unmanaged;
        unmanaged.spec.compute_resources = None;
        unmanaged.spec.node_selector = Some([("pool".to_string(), "batch".to_string())].into());
        assert!(matches!(
            enabled_pool_of(&unmanaged, &EnabledProviders::none()),
            Ok(Pool::Unmanaged(_))
        ));
    }

    #[test]
    fn unmanaged_needs_a_valid_selector() {
        let mut ce = simulated_ce("u", &[], 0, None, 0);
        ce.spec.r#type = ComputeEnvironmentType::Unmanaged;
        ce.spec.compute_resources = None;
        ce.spec.node_selector = Some([("pool".to_string(), "batch".to_string())].into());
        assert!(matches!(pool_of(&ce), Ok(Pool::Unmanaged(_))));
        ce.spec.node_selector = Some([("pool".to_string(), "not valid".to_string())].into());
        assert!(pool_of(&ce)
            .unwrap_err()
            .message
            .contains("not a Kubernetes label value"));
    }

    pub fn ready_node(name: &str, ce: &str, instance_type: &str, cpu: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    [
                        (LABEL_COMPUTE_ENVIRONMENT.to_string(), ce.to_string()),
                        (LABEL_INSTANCE_TYPE.to_string(), instance_type.to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(vec![Taint {
                    key: TAINT_COMPUTE_ENVIRONMENT.into(),
                    value: Some(ce.into()),
                    effect: "NoSchedule".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                allocatable: Some(
                    [
                        ("cpu", cpu),
                        ("memory", "8Gi"),
                        ("pods", "110"),
                        ("nvidia.com/gpu", "1"),
                    ]
                    .iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect(),
                ),
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn node_snapshots_respect_readiness_cordons_and_foreign_taints() {
        let usage = NodeUsage::new();
        let node = ready_node("n1", "ce", "m5.xlarge", "4");
        let snap = node_snapshot(&node, &usage, "nvidia.com/gpu");
        assert_eq!(snap.allocatable, Resources::new(4000, 8192, 1, 110));
        assert!(snap.schedulable);
        assert_eq!(
            (snap.environment.as_deref(), snap.instance_type.as_deref()),
            (Some("ce"), Some("m5.xlarge"))
        );
        let mut cordoned = node.clone();
        cordoned.spec.as_mut().expect("spec").unschedulable = Some(true);
        assert!(!node_is_schedulable(&cordoned));
        let mut tainted = node.clone();
        tainted
            .spec
            .as_mut()
            .expect("spec")
            .taints
            .as_mut()
            .expect("taints")
            .push(Taint {
                key: "node.kubernetes.io/not-ready".into(),
                effect: "NoExecute".into(),
                ..Default::default()
            });
        assert!(!node_is_schedulable(&tainted));
        let mut not_ready = node.clone();
        not_ready.status.as_mut().expect("status").conditions = None;
        assert!(!node_is_schedulable(&not_ready));

        // Barge's occupancy comes from the usage: a Barge pod on the node, and the node
        // reserved for a gang by a main pod that runs elsewhere.
        assert_eq!((snap.barge_pods, snap.exclusive), (0, false));
        let pod = |name: &str, extra: serde_json::Value| -> k8s_openapi::api::core::v1::Pod {
            let mut value = serde_json::json!({
                "metadata": {"name": name, "namespace": "ns", "labels": {
                    barge_crds::consts::LABEL_MANAGED_BY: barge_crds::consts::MANAGED_BY_BARGE,
                }},
                "spec": {"containers": [], "nodeName": "n1"},
                "status": {"phase": "Running"},
            });
            json_patch::merge(&mut value, &extra);
            serde_json::from_value(value).expect("pod")
        };
        usage.apply(&kube::runtime::watcher::Event::Apply(
            crate::cache::Shared::from(pod("single-1", serde_json::json!({}))),
        ));
        let snap = node_snapshot(&node, &usage, "nvidia.com/gpu");
        assert_eq!((snap.barge_pods, snap.exclusive), (1, false));
        usage.apply(&kube::runtime::watcher::Event::Apply(
            crate::cache::Shared::from(pod(
                "mnp-1-node-0",
                serde_json::json!({
                    "metadata": {
                        "labels": {barge_crds::consts::LABEL_NODE_INDEX: "0"},
                        "annotations": {barge_crds::consts::ANNOTATION_GANG_NODES: "n0,n1"},
                    },
                    "spec": {"nodeName": "n0"},
                }),
            )),
        ));
        let snap = node_snapshot(&node, &usage, "nvidia.com/gpu");
        assert_eq!((snap.barge_pods, snap.exclusive), (1, true));
    }

    #[test]
    fn scheduler_environment_reports_planned_shapes_and_max() {
        use kube::runtime::watcher::Event;
        let (caches, mut sinks) = Caches::new();
        let mut ce = simulated_ce("ce", &["m5.xlarge", "m5.4xlarge"], 8, Some(8), 8);
        let unknown = scheduler_environment(&ce, &caches);
        assert!(!unknown.valid && unknown.shapes.is_none());
        ce.status = Some(barge_crds::ComputeEnvironmentStatus {
            status: Some(CeStatus::Valid),
            ..Default::default()
        });
        sinks.nodes.apply(Event::Apply(ready_node(
            "ce-m5-xlarge-0",
            "ce",
            "m5.xlarge",
            "4",
        )));
        let env = scheduler_environment(&ce, &caches);
        assert!(env.valid && env.enabled);
        assert_eq!(env.max_milli_cpu, Some(8_000));
        let shapes = env.shapes.expect("known shapes");
        // The plan for 8 vCPUs uses m5.xlarge only; m5.4xlarge is listed but never created.
        assert!(
            shapes.iter().all(|s| s.instance_type == "m5.xlarge"),
            "{shapes:?}"
        );
        ce.spec.state = State::Disabled;
        assert!(!scheduler_environment(&ce, &caches).enabled);
        // A fixed pool of 0 vCPUs: no nodes, no verdicts.
        let mut empty = simulated_ce("empty", &["m5"], 0, None, 0);
        empty.status = ce.status.clone();
        assert_eq!(
            scheduler_environment(&empty, &caches).shapes,
            None,
            "no nodes, no verdicts"
        );
        // A pool that scales with demand may grow with any of its types, whether or not
        // desiredvCpus (its floor) is set.
        for desired in [None, Some(8)] {
            let mut scaling = simulated_ce("scaling", &["m5"], 0, desired, 64);
            scaling.status = ce.status.clone();
            let shapes = scheduler_environment(&scaling, &caches)
                .shapes
                .expect("its instance types");
            assert_eq!(shapes.len(), 8, "{shapes:?}");
        }
    }
}
