//! Demand-driven scaling of simulated pools: the caches and the runnable book → barge-core's
//! [`decide_scaling`].
//!
//! Data flow: queues, compute environments ([`super::scheduler_environment`]), nodes
//! ([`super::node_snapshot`]) and the RUNNABLE work of the runnable book → a scheduler
//! `Snapshot`; every ENABLED-or-not simulated pool that can scale ([`scales_with_demand`]) →
//! a [`PoolSpec`]; per node [`NodeFacts`] (ready / booting / draining, pods on it, idle since,
//! from the context's `node_idle_since`) → one [`ScalingDecision`] per pool. The ComputeEnvironment controller
//! carries a decision out with [`super::simulated::plan_scaled_nodes`].
//!
//! Cluster API pools ([`super::cluster_api`]) are decided together with them: one offer per
//! MachineDeployment instance type, their Nodes by the template label (also before Barge's
//! membership label reaches them), and the machines asked for that are no Node yet as booting
//! nodes (from the deployments their last reconcile read, the context's `node_groups`).
//!
//! For a pool in `bindingMode: KubeScheduler` (simulated or Cluster API), its unbound Barge pods
//! are demand too: their jobs left the runnable book when the pod was created, and no node's
//! usage counts them until the kube-scheduler binds them.
//!
//! Every pool whose `maxvCpus` is above `minvCpus` scales with demand; `desiredvCpus`, when
//! set, is a floor while ENABLED (barge-core never scales in below it). A pool whose `maxvCpus`
//! equals `minvCpus` does not scale: it keeps the fixed-size plan ([`scales_with_demand`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kube::ResourceExt;

use barge_core::scaling::{decide_scaling, NodeFacts, Offer, PoolSpec, ScalingDecision};
use barge_core::scheduler::{Snapshot, Units, Workload};
use barge_crds::compute_environment::{CeStatus, ComputeEnvironmentType};
use barge_crds::consts::{
    LABEL_ARRAY_INDEX, LABEL_ATTEMPT, LABEL_COMPUTE_ENVIRONMENT, LABEL_JOB_NAME, LABEL_JOB_QUEUE,
    LABEL_MANAGED_BY, MANAGED_BY_BARGE,
};
use barge_crds::ComputeEnvironment;

use super::cluster_api;
use super::{
    enabled_pool_of, is_enabled, node_snapshot, node_state, scheduler_environment, Pool,
    SimulatedPool,
};
use crate::context::Context;
use crate::queue_access::queue_specs;

/// Whether a simulated pool follows demand: `maxvCpus` is above `minvCpus`. `desiredvCpus`
/// (optional) is then a floor while ENABLED, as in AWS Batch, where it is where the environment
/// starts and Batch then manages it. A pool with `maxvCpus` equal to `minvCpus` keeps the
/// fixed-size plan at that size (DISABLED: still `minvCpus`), resized at once when the spec
/// changes.
pub fn scales_with_demand(pool: &SimulatedPool) -> bool {
    pool.max_vcpus > pool.min_vcpus
}

/// Records in `since` (the context's `node_idle_since`) whether `node` is idle now and
/// returns since when (None: busy). In memory: after a restart the delay starts anew, which
/// only delays scale-in.
fn observe_idle(
    since: &mut HashMap<String, i64>,
    node: &str,
    idle: bool,
    now_ms: i64,
) -> Option<i64> {
    if idle {
        Some(*since.entry(node.to_string()).or_insert(now_ms))
    } else {
        since.remove(node);
        None
    }
}

/// The scaling input of a simulated pool.
pub fn pool_spec(ce: &ComputeEnvironment, pool: &SimulatedPool) -> PoolSpec {
    let delay_s = ce
        .spec
        .compute_resources
        .as_ref()
        .map(|r| r.effective_scale_down_delay_seconds())
        .unwrap_or(0);
    PoolSpec {
        environment: ce.name_any(),
        min_vcpus: pool.min_vcpus,
        max_vcpus: pool.max_vcpus,
        desired_vcpus: pool.desired_vcpus,
        strategy: pool.strategy,
        offers: pool.candidates().into_iter().map(Offer::of).collect(),
        scale_down_delay_ms: i64::from(delay_s.max(0)) * 1000,
    }
}

/// The scaling decisions of every simulated compute environment that scales with demand.
/// (attempt, array index) of every pod of the job with this uid in the pod cache.
fn placed_units(ctx: &Context, namespace: &str, uid: &str) -> Vec<(u32, Option<u32>)> {
    ctx.caches
        .pods_of_job(namespace, uid)
        .iter()
        .filter_map(|pod| {
            let labels = pod.labels();
            let attempt = labels.get(LABEL_ATTEMPT)?.parse().ok()?;
            let index = labels.get(LABEL_ARRAY_INDEX).and_then(|i| i.parse().ok());
            Some((attempt, index))
        })
        .collect()
}

/// The unbound, unfinished Barge pods of `environments` (`bindingMode: KubeScheduler`: the pod
/// exists, so its job left the runnable book, but it waits for a node), one workload each: no
/// node's usage counts them, so they are demand their pool must grow for.
fn unbound_pod_workloads(
    ctx: &Context,
    environments: &std::collections::HashSet<String>,
) -> Vec<Workload> {
    if environments.is_empty() {
        return Vec::new();
    }
    let mut workloads = Vec::new();
    for pod in ctx.caches.pods.state() {
        let labels = pod.labels();
        let (Some(ce), Some(job), Some(queue)) = (
            labels.get(LABEL_COMPUTE_ENVIRONMENT),
            labels.get(LABEL_JOB_NAME),
            labels.get(LABEL_JOB_QUEUE),
        ) else {
            continue;
        };
        let unbound = pod.spec.as_ref().is_some_and(|s| s.node_name.is_none());
        let finished = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed");
        if !environments.contains(ce)
            || !unbound
            || finished
            || pod.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let requests = crate::cache::PodRequests::of_pod(&pod);
        let gpu = ctx
            .caches
            .compute_environments
            .get(&kube::runtime::reflector::ObjectRef::new(ce))
            .map(|c| c.spec.effective_gpu_resource_name().to_string())
            .unwrap_or_else(|| barge_crds::consts::DEFAULT_GPU_RESOURCE_NAME.to_string());
        workloads.push(Workload {
            job: barge_core::scheduler::JobKey::new(
                pod.namespace().as_deref().unwrap_or_default(),
                job,
            ),
            queue: queue.as_str().into(),
            retried: false,
            submitted_at_ms: pod
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_millisecond())
                .unwrap_or(0),
            submission_order: 0,
            attempt: labels
                .get(LABEL_ATTEMPT)
                .and_then(|a| a.parse().ok())
                .unwrap_or(1),
            request: barge_core::resources::Resources::new(
                requests.milli_cpu,
                requests.memory_mib,
                requests.extended(&gpu),
                1,
            ),
            constraints: Default::default(),
            units: Units::Single,
            share: None,
            priority: 0,
        });
    }
    workloads
}

pub fn decide(ctx: &Context, now_ms: i64) -> BTreeMap<String, ScalingDecision> {
    let caches = &ctx.caches;
    let ces: Vec<Arc<ComputeEnvironment>> = caches.compute_environments.state();
    let simulated: HashMap<String, SimulatedPool> = ces
        .iter()
        .filter(|ce| ce.spec.r#type == ComputeEnvironmentType::Managed)
        .filter_map(|ce| match enabled_pool_of(ce, &ctx.config.providers) {
            Ok(Pool::Simulated(pool)) if scales_with_demand(&pool) => Some((ce.name_any(), pool)),
            _ => None,
        })
        .collect();
    let mut pools: Vec<PoolSpec> = ces
        .iter()
        .filter_map(|ce| Some(pool_spec(ce, simulated.get(&ce.name_any())?)))
        .collect();
    // Cluster API pools whose deployments their last reconcile read.
    let cluster_api = cluster_api::scaled_pools(ctx, &ces);
    pools.extend(ces.iter().filter_map(|ce| {
        let (pool, groups) = cluster_api.get(&ce.name_any())?;
        Some(cluster_api::pool_spec(ce, pool, groups))
    }));
    if pools.is_empty() {
        return BTreeMap::new();
    }
    let queues = queue_specs(caches);
    let environments = ces
        .iter()
        .map(|ce| {
            let mut env = scheduler_environment(ce, caches);
            env.enabled = is_enabled(ce);
            if simulated.contains_key(&env.name) || cluster_api.contains_key(&env.name) {
                // Its spec is valid (`pool_of`): a pool being created (no status yet, or
                // CREATING) scales too, so its first nodes appear; only INVALID stops it.
                env.valid = ce.status.as_ref().and_then(|s| s.status) != Some(CeStatus::Invalid);
            }
            env
        })
        .collect();
    let gpu: HashMap<String, String> = ces
        .iter()
        .map(|ce| {
            (
                ce.name_any(),
                ce.spec.effective_gpu_resource_name().to_string(),
            )
        })
        .collect();
    let mut facts = HashMap::new();
    let mut nodes = Vec::new();
    let mut idle = ctx
        .node_idle_since
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    // From here until the demand is collected, no pod event is half applied: a pod is in both
    // the node usage (room used) and the pod index (its unit is not demand), or in neither.
    let pods_settled = caches.pod_updates.read().unwrap_or_else(|e| e.into_inner());
    for node in caches.nodes.state() {
        // A Cluster API node counts from when its deployment's template label reaches it.
        let capi = cluster_api::template_environment(&node)
            .filter(|ce| cluster_api.contains_key(ce.as_str()));
        let Some(ce) = capi.or_else(|| node.labels().get(LABEL_COMPUTE_ENVIRONMENT)) else {
            continue;
        };
        if capi.is_none()
            && (!simulated.contains_key(ce.as_str())
                || node.labels().get(LABEL_MANAGED_BY).map(String::as_str)
                    != Some(MANAGED_BY_BARGE))
        {
            continue;
        }
        let name = node.name_any();
        let pods = caches.usage.pods_on(&name);
        // A node reserved for a gang's node whose pod is not created yet is not idle: its pod
        // comes as soon as the gang's main node runs.
        let busy = caches.usage.is_busy(&name);
        facts.insert(
            name.clone(),
            NodeFacts {
                state: node_state(&node),
                barge_pods: u32::try_from(pods.max(0)).unwrap_or(u32::MAX),
                idle_since_ms: observe_idle(&mut idle, &name, !busy, now_ms),
            },
        );
        let gpu = gpu
            .get(ce)
            .map(String::as_str)
            .unwrap_or(barge_crds::consts::DEFAULT_GPU_RESOURCE_NAME);
        let mut snap = node_snapshot(&node, &caches.usage, gpu);
        snap.environment = Some(ce.clone());
        if snap.allocatable.is_zero() {
            // Booting: the kubelet has not reported allocatable yet; the catalog knows it.
            let catalog = simulated
                .get(ce)
                .map(|p| p.catalog.as_slice())
                .unwrap_or_default();
            if let Some(t) = snap
                .instance_type
                .as_deref()
                .and_then(|t| catalog.iter().find(|c| c.name == t))
            {
                snap.allocatable = t.capacity();
            } else if let Some(group) = cluster_api
                .get(ce)
                .and_then(|(_, groups)| cluster_api::group_of(groups, &node))
            {
                snap.allocatable = group.instance_type.capacity();
            }
        }
        nodes.push(snap);
    }
    // Machines asked for that are no Node yet boot too: a pass never asks twice for them.
    let all_nodes = caches.nodes.state();
    for (ce, (_, groups)) in &cluster_api {
        for (snap, fact) in cluster_api::pending_machines(ce, groups, &all_nodes) {
            facts.insert(snap.name.clone(), fact);
            nodes.push(snap);
        }
    }
    idle.retain(|n, _| facts.contains_key(n));
    drop(idle);
    let mut workloads: Vec<Workload> = Vec::new();
    for (key, entry) in ctx.runnable.entries() {
        // A unit whose pod exists is running (or about to), not demand: the book may still
        // offer it until the job controller sees the pod, while the node usage already counts
        // it — counting it twice would ask for a node nobody needs.
        let placed = placed_units(ctx, &key.namespace, &entry.uid);
        for mut workload in entry.workloads(&key) {
            let of_attempt = placed.iter().filter(|(a, _)| *a == workload.attempt);
            match &mut workload.units {
                Units::Single => {
                    if of_attempt.count() > 0 {
                        continue;
                    }
                }
                Units::Array(set) => {
                    for index in of_attempt.filter_map(|(_, i)| *i) {
                        set.remove(index);
                    }
                    if set.is_empty() {
                        continue;
                    }
                }
                // A gang's pods are created together with its placement (main node first,
                // the others reserved): any pod of the attempt means the gang is placed.
                Units::Gang(_) => {
                    if of_attempt.count() > 0 {
                        continue;
                    }
                }
            }
            workloads.push(workload);
        }
    }
    let kube_scheduled: std::collections::HashSet<String> = ces
        .iter()
        .filter(|ce| {
            ce.spec.effective_binding_mode()
                == barge_crds::compute_environment::BindingMode::KubeScheduler
        })
        .map(|ce| ce.name_any())
        .filter(|name| simulated.contains_key(name) || cluster_api.contains_key(name))
        .collect();
    workloads.extend(unbound_pod_workloads(ctx, &kube_scheduled));
    drop(pods_settled);
    let snapshot = Snapshot {
        queues,
        environments,
        nodes,
        workloads,
    };
    decide_scaling(&snapshot, &pools, &facts, now_ms)
}
