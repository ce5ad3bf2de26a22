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
//! A pool whose spec sets `desiredvCpus`, or whose `maxvCpus` equals `minvCpus`, does not
//! scale: it keeps the fixed-size plan ([`scales_with_demand`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;

use barge_core::scaling::{decide_scaling, NodeFacts, NodeState, Offer, PoolSpec, ScalingDecision};
use barge_core::scheduler::{Snapshot, Units, Workload};
use barge_crds::compute_environment::ComputeEnvironmentType;
use barge_crds::consts::{
    LABEL_ARRAY_INDEX, LABEL_ATTEMPT, LABEL_COMPUTE_ENVIRONMENT, LABEL_MANAGED_BY, MANAGED_BY_BARGE,
};
use barge_crds::ComputeEnvironment;

use super::{
    is_enabled, node_is_ready, node_snapshot, pool_of, scheduler_environment, Pool, SimulatedPool,
};
use crate::context::Context;
use crate::queue_access::queue_specs;

/// Whether a simulated pool follows demand: `desiredvCpus` is not set (AWS Batch manages it)
/// and `maxvCpus` is above `minvCpus`. A pool whose spec sets `desiredvCpus` keeps the
/// fixed-size plan at that size (DISABLED: `minvCpus`), resized at once when the spec changes.
pub fn scales_with_demand(pool: &SimulatedPool) -> bool {
    pool.desired_vcpus.is_none() && pool.max_vcpus > pool.min_vcpus
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

fn node_state(node: &Node) -> NodeState {
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

pub fn decide(ctx: &Context, now_ms: i64) -> BTreeMap<String, ScalingDecision> {
    let caches = &ctx.caches;
    let ces: Vec<Arc<ComputeEnvironment>> = caches.compute_environments.state();
    let simulated: HashMap<String, SimulatedPool> = ces
        .iter()
        .filter(|ce| ce.spec.r#type == ComputeEnvironmentType::Managed)
        .filter_map(|ce| match pool_of(ce) {
            Ok(Pool::Simulated(pool)) if scales_with_demand(&pool) => Some((ce.name_any(), pool)),
            _ => None,
        })
        .collect();
    let pools: Vec<PoolSpec> = ces
        .iter()
        .filter_map(|ce| Some(pool_spec(ce, simulated.get(&ce.name_any())?)))
        .collect();
    if pools.is_empty() {
        return BTreeMap::new();
    }
    let queues = queue_specs(caches);
    let environments = ces
        .iter()
        .map(|ce| {
            let mut env = scheduler_environment(ce, caches);
            env.enabled = is_enabled(ce);
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
    for node in caches.nodes.state() {
        let Some(ce) = node.labels().get(LABEL_COMPUTE_ENVIRONMENT) else {
            continue;
        };
        if !simulated.contains_key(ce.as_str())
            || node.labels().get(LABEL_MANAGED_BY).map(String::as_str) != Some(MANAGED_BY_BARGE)
        {
            continue;
        }
        let name = node.name_any();
        let pods = caches.usage.pods_on(&name);
        facts.insert(
            name.clone(),
            NodeFacts {
                state: node_state(&node),
                barge_pods: u32::try_from(pods.max(0)).unwrap_or(u32::MAX),
                idle_since_ms: observe_idle(&mut idle, &name, pods == 0, now_ms),
            },
        );
        let gpu = gpu
            .get(ce)
            .map(String::as_str)
            .unwrap_or(barge_crds::consts::DEFAULT_GPU_RESOURCE_NAME);
        let mut snap = node_snapshot(&node, &caches.usage, gpu);
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
            }
        }
        nodes.push(snap);
    }
    idle.retain(|n, _| facts.contains_key(n));
    drop(idle);
    let mut workloads: Vec<Workload> = Vec::new();
    for (key, entry) in ctx.runnable.entries() {
        // A unit whose pod exists is running (or about to), not demand: the book may still
        // offer it until the job controller sees the pod, while the node usage already counts
        // it — counting it twice would ask for a node nobody needs.
        let placed = placed_units(ctx, &key.namespace, &entry.uid);
        for mut workload in Workload::from_runnable(
            &key,
            &entry.queue,
            entry.submitted_at_ms,
            entry.submission_order,
            entry.request,
            &entry.constraints,
            &entry.work,
        ) {
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
            }
            workloads.push(workload);
        }
    }
    let snapshot = Snapshot {
        queues,
        environments,
        nodes,
        workloads,
    };
    decide_scaling(&snapshot, &pools, &facts, now_ms)
}
