//! The ComputeEnvironment controller: validates an environment, keeps its nodes in line with
//! its pool, and reports it.
//!
//! Pipeline per environment:
//! 1. validate (pure, [`nodepools::enabled_pool_of`]): an invalid spec, or a provider the
//!    installation did not enable (`--providers`: reason `ProviderDisabled`, and no API call for
//!    it), makes it INVALID with the reason in `statusReason`, the Ready condition and a Warning
//!    Event; a karpenter pool is also INVALID while the cluster does not serve
//!    the `karpenter.sh/v1` NodePool API or the NodeClass kind, or the NodeClass is missing
//!    ([`karpenter::ensure_nodepool`], cached discovery and GET; looked at again every
//!    [`karpenter::RECHECK_INTERVAL`]); a clusterAPI pool is INVALID while the cluster does not
//!    serve MachineDeployments or one it names is missing ([`cluster_api::reconcile`]: one LIST
//!    per namespace per pass; looked at again every [`cluster_api::RECHECK_INTERVAL`]);
//! 2. dereference: its nodes (index by the compute-environment label; all nodes for an
//!    UNMANAGED selector) and what runs on them (the node usage cache);
//! 3. build (pure): [`simulated::plan_nodes`] for a fixed-size MANAGED simulated pool
//!    (`maxvCpus` equal to `minvCpus`; surplus nodes cordoned, then deleted when idle); for a
//!    simulated pool that scales with demand ([`demand::scales_with_demand`]: `maxvCpus` above
//!    `minvCpus`, `desiredvCpus` a floor while ENABLED) barge-core's scaling decision
//!    ([`demand::decide`], from the caches and the runnable book) and
//!    [`simulated::plan_scaled_nodes`]; for a clusterAPI pool the same decision and
//!    [`cluster_api::plan_scaling`] (replicas, cordons, delete-machine marks);
//!    [`unmanaged::plan_membership`] for an UNMANAGED one.
//!    Such a pool is reconciled again every second while it has demand or nodes, and when the
//!    runnable book changes size (checked once a second: coalesced, one reconcile per pool);
//! 4. apply: server-side apply of Barge's Node fields, node deletions, membership labels, the
//!    NodePool of a karpenter pool (skipped while unchanged; its nodes are Karpenter's: those
//!    carrying the environment's label, reported with the vCPUs its pending pods ask for);
//!    Events on scaling (`ScaledOut`, `Cordoned`, `ScaledIn`). A pass makes at most
//!    [`NODE_WRITES_PER_PASS`] node writes and stops early on SIGTERM, deletion or a spec change;
//!    the rest waits for the next pass (requeued at once) and `statusReason` says how far the
//!    pool got. A pool beyond `MAX_NODES_PER_COMPUTE_ENVIRONMENT` nodes is INVALID (step 1);
//! 5. update_status (pure [`build_status`]): `status` (CREATING until a pass finds the new
//!    pool settled, UPDATING from a new spec until then, VALID, INVALID, DELETING: see
//!    [`lifecycle_status`]), `statusReason`, `desiredvCpus`, `allocatedvCpus` (CPU requested by
//!    Barge's pods on its nodes), `nodeCounts`, `instanceTypes` (nodes per type: ready, booting,
//!    draining, [`instance_type_nodes`], for every provider), Ready, `ScalingLimited` (pools that
//!    scale with demand: how much more than `maxvCpus` was wanted), `observedGeneration`; and
//!    the CE gauges. While CREATING or UPDATING the environment is reconciled again soon.
//!
//! Deletion: the `batch.barge.dev/in-use` finalizer (kube's finalizer helper) holds the
//! environment while a queue lists it, and then while Barge pods placed on it have not finished
//! (status DELETING says which, [`HeldBy`]); then the finalizer goes at
//! once: its simulated nodes, which it owns, are deleted by the garbage collector (only nodes
//! missing the owner reference are deleted here, a pass at a time), as is its Karpenter NodePool
//! (and with it, by Karpenter, the NodePool's nodes); its unmanaged nodes are released, as are a
//! clusterAPI pool's nodes and its MachineDeployments' template labels (`replicas` stay).
//!
//! Triggers: the environment, its nodes (and for UNMANAGED selectors any node they match), the
//! queues that list it; a periodic refresh keeps `allocatedvCpus` current, and a quick one while
//! nodes are booting or draining.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use barge_core::scaling::NodeState;
use barge_crds::compute_environment::{
    CeStatus, ComputeEnvironmentType, InstanceTypeNodes, MAX_STATUS_INSTANCE_TYPES,
};
use barge_crds::consts::{
    CONDITION_READY, FIELD_MANAGER_COMPUTE_ENVIRONMENT_CONTROLLER, FINALIZER_IN_USE,
    LABEL_COMPUTE_ENVIRONMENT, LABEL_INSTANCE_TYPE, LABEL_MANAGED_BY, MANAGED_BY_BARGE,
    REASON_NO_READY_NODES, REASON_VALID,
};
use barge_crds::{ComputeEnvironment, ComputeEnvironmentStatus, JobQueue};

use super::{
    controller_config, join_names, measured, ACTION_RECONCILE, REASON_IN_USE, REASON_SCALING,
};
use crate::context::{Context, Provider};
use crate::events::EventSpec;
use crate::metrics::ComputeEnvironmentLabels;
use crate::nodepools::cluster_api::{self, ClusterApiError, ClusterApiPool};
use crate::nodepools::karpenter::{self, KarpenterPool};
use crate::nodepools::simulated::{self, NodeActions, ObservedNode};
use crate::nodepools::unmanaged::{self, Membership};
use crate::nodepools::{self, demand, node_is_ready, Pool, PoolError};
use crate::shutdown::Shutdown;
use crate::status::{
    apply_status, merge_conditions, ready_and_stalled, DesiredCondition, Precondition,
};

const CONTROLLER: &str = "compute-environment";
/// `statusReason` of a VALID environment with a Ready node (AWS Batch's wording).
pub const STATUS_REASON_HEALTHY: &str = "ComputeEnvironment Healthy";
/// `statusReason` of a VALID environment without any Ready node: it cannot run work now.
pub const STATUS_REASON_NO_READY_NODE: &str = "ComputeEnvironment has no Ready node";
/// Event reasons.
pub const EVENT_SCALED_OUT: &str = "ScaledOut";
pub const EVENT_SCALED_IN: &str = "ScaledIn";
pub const EVENT_CORDONED: &str = "Cordoned";
pub const EVENT_INVALID: &str = "InvalidComputeEnvironment";
/// How soon to look again while nodes boot or drain.
const SETTLE_INTERVAL: Duration = Duration::from_secs(2);
/// Most node writes (creations, deletions, changes) of one reconcile; a larger change of a pool
/// is spread over passes, with the status written after each and deletion, a spec change or
/// SIGTERM taking effect in between.
pub const NODE_WRITES_PER_PASS: usize = 20;
/// How soon the next pass of a spread-out change starts (the cache catches up meanwhile).
const NEXT_PASS_INTERVAL: Duration = Duration::from_millis(100);
/// How often a pool that scales with demand looks again while it has demand or nodes (and how
/// often the controller checks the runnable book for new demand).
const DEMAND_INTERVAL: Duration = Duration::from_secs(1);
/// Most node names an Event or note lists; beyond it they are counted.
const LISTED_NODES: usize = 5;
/// Why an enabled simulated pool has no nodes.
pub const ADVICE_EMPTY_POOL: &str = "maxvCpus is 0, so the pool has no nodes: raise maxvCpus to scale with demand (and minvCpus or desiredvCpus to keep nodes when idle)";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("applying node {node} of compute environment {ce}: {source}")]
    ApplyNode {
        ce: String,
        node: String,
        source: kube::Error,
    },
    #[error("deleting node {node} of compute environment {ce}: {source}")]
    DeleteNode {
        ce: String,
        node: String,
        source: kube::Error,
    },
    #[error("labelling node {node} for compute environment {ce}: {source}")]
    LabelNode {
        ce: String,
        node: String,
        source: kube::Error,
    },
    #[error("writing the status of compute environment {ce}: {source}")]
    UpdateStatus { ce: String, source: kube::Error },
    #[error("compute environment {ce} is still used by job queue(s) {queues}; it is deleted once no queue lists it")]
    InUse { ce: String, queues: String },
    #[error("compute environment {ce} is being deleted once its running jobs end: {pods} job pod(s) still on it")]
    JobsRunning { ce: String, pods: usize },
    #[error("compute environment {ce} is being deleted; {left} of its node(s) are left to release, a pass at a time")]
    ReleasingNodes { ce: String, left: usize },
    #[error("checking the Karpenter APIs or applying the NodePool of compute environment {ce}: {source}")]
    Karpenter { ce: String, source: kube::Error },
    #[error("{what} for compute environment {ce}: {source}")]
    ClusterApi {
        ce: String,
        what: String,
        source: kube::Error,
    },
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<Error>>),
}

impl super::ReconcileError for Error {
    fn is_waiting(&self) -> bool {
        match self {
            Error::InUse { .. } | Error::JobsRunning { .. } | Error::ReleasingNodes { .. } => true,
            Error::Finalizer(err) => super::finalizer_error_is_waiting(err),
            _ => false,
        }
    }
}

/// What the status reports about the nodes (pure input of [`build_status`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeReport {
    /// vCPUs the environment is scaled to now (the plan's target; for UNMANAGED, its nodes').
    pub desired_vcpus: i64,
    /// CPU requested by Barge's pods on its nodes, in millicpu.
    pub allocated_milli_cpu: i64,
    /// Its nodes per instance type.
    pub node_counts: BTreeMap<String, i32>,
    /// Its nodes per instance type by state ([`instance_type_nodes`]).
    pub instance_types: Vec<InstanceTypeNodes>,
    /// Nodes this pass created (the cache does not show them yet).
    pub created_nodes: usize,
    /// Whether booting nodes are the pool's own work in progress (a pool whose nodes Barge or
    /// its provider creates), so that the environment stays CREATING or UPDATING until they
    /// are Ready. False for UNMANAGED pools: their NotReady nodes are not Barge's to wait for.
    pub waits_for_booting: bool,
    pub nodes: usize,
    pub ready_nodes: usize,
    /// Human summary of work in progress (creating, draining...) or of problems.
    pub notes: Vec<String>,
    /// Advice that does not mean work in progress (e.g. why a pool has no nodes).
    pub advice: Option<String>,
    /// How far a scaling spread over several passes got (e.g. "scaling out: 40 of 500 node(s)
    /// created, ..."); while set it is the `statusReason`.
    pub progress: Option<String>,
    /// For a pool that scales with demand: what the `ScalingLimited` condition says.
    pub scaling: Option<ScalingReport>,
}

/// The demand side of a pool that scales with demand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScalingReport {
    pub max_vcpus: i64,
    /// vCPUs of RUNNABLE work that found no room under `maxvCpus`.
    pub wanted_beyond_max_vcpus: i64,
    /// Demand, nodes or scale-in pending: reconcile again soon.
    pub active: bool,
}

/// Condition type: demand exceeds `maxvCpus` (only on pools that scale with demand).
pub const CONDITION_SCALING_LIMITED: &str = "ScalingLimited";
/// `ScalingLimited` reasons.
pub const REASON_DEMAND_ABOVE_MAX_VCPUS: &str = "DemandAboveMaxvCpus";
pub const REASON_WITHIN_MAX_VCPUS: &str = "WithinMaxvCpus";

/// The status an environment should have (pure). `verdict` is the validation outcome;
/// `deleting_for` says what still holds a deleted environment (queues that list it, or job
/// pods still running on it).
pub fn build_status(
    ce: &ComputeEnvironment,
    verdict: &Result<(), PoolError>,
    report: &NodeReport,
    deleting_for: Option<&HeldBy>,
    now: Timestamp,
) -> ComputeEnvironmentStatus {
    let generation = ce.metadata.generation;
    let existing = ce
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let (status, reason, ready) = match (verdict, deleting_for) {
        (_, Some(held)) => {
            let message = match held {
                HeldBy::Queues(queues) => format!(
                    "being deleted; still listed by job queue(s) {}",
                    join_names(queues)
                ),
                HeldBy::RunningPods(pods) => format!(
                    "being deleted once its running jobs end: {} job pod(s) still on it ({})",
                    pods.len(),
                    list_nodes(pods)
                ),
            };
            (
                CeStatus::Deleting,
                message.clone(),
                DesiredCondition::new(CONDITION_READY, false, REASON_IN_USE, message),
            )
        }
        (Err(err), None) => (
            CeStatus::Invalid,
            err.message.clone(),
            DesiredCondition::new(CONDITION_READY, false, err.reason, err.message.clone()),
        ),
        (Ok(()), None) => {
            let mut message = format!("{}/{} node(s) ready", report.ready_nodes, report.nodes);
            for note in report.notes.iter().chain(&report.advice) {
                message.push_str("; ");
                message.push_str(note);
            }
            let settled = report.notes.is_empty()
                && report.progress.is_none()
                && report.ready_nodes == report.nodes;
            let booting: i32 = report.instance_types.iter().map(|t| t.booting).sum();
            let pool_busy = report.progress.is_some()
                || report.created_nodes > 0
                || (report.waits_for_booting && booting > 0);
            let previous = ce.status.as_ref();
            let lifecycle = lifecycle_status(
                previous.and_then(|s| s.status),
                previous.and_then(|s| s.observed_generation),
                generation,
                pool_busy,
            );
            let counts = format!("{}/{} node(s) ready", report.ready_nodes, report.nodes);
            let (ready, reason, status_reason) = if report.ready_nodes == 0 {
                (
                    false,
                    REASON_NO_READY_NODES,
                    STATUS_REASON_NO_READY_NODE.to_string(),
                )
            } else if settled {
                (true, REASON_VALID, STATUS_REASON_HEALTHY.to_string())
            } else {
                (true, REASON_SCALING, STATUS_REASON_HEALTHY.to_string())
            };
            let status_reason = match (&report.progress, lifecycle) {
                (Some(progress), _) => progress.clone(),
                (None, CeStatus::Creating) => format!("creating: {counts}"),
                (None, CeStatus::Updating) => format!("updating: {counts}"),
                (None, _) => status_reason,
            };
            (
                lifecycle,
                status_reason,
                DesiredCondition::new(CONDITION_READY, ready, reason, message),
            )
        }
    };
    let vcpus = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
    let mut conditions = ready_and_stalled(ready);
    if let (Some(scaling), None) = (&report.scaling, deleting_for) {
        let limited = scaling.wanted_beyond_max_vcpus > 0;
        conditions.push(if limited {
            DesiredCondition::new(
                CONDITION_SCALING_LIMITED,
                true,
                REASON_DEMAND_ABOVE_MAX_VCPUS,
                format!(
                    "RUNNABLE work wants {} vCPU(s) more than maxvCpus {} allows",
                    scaling.wanted_beyond_max_vcpus, scaling.max_vcpus
                ),
            )
        } else {
            DesiredCondition::new(
                CONDITION_SCALING_LIMITED,
                false,
                REASON_WITHIN_MAX_VCPUS,
                format!("demand fits within maxvCpus {}", scaling.max_vcpus),
            )
        });
    }
    ComputeEnvironmentStatus {
        status: Some(status),
        status_reason: Some(reason),
        desiredv_cpus: Some(vcpus(report.desired_vcpus)),
        allocatedv_cpus: Some(vcpus((report.allocated_milli_cpu + 999) / 1000)),
        node_counts: report.node_counts.clone(),
        instance_types: report.instance_types.clone(),
        conditions: merge_conditions(existing, &conditions, generation, now),
        observed_generation: generation,
    }
}

/// The nodes per instance type by state (pure): ready (Ready, not draining), booting (not
/// Ready, not cordoned, not being deleted), draining (cordoned or being deleted); by name, at
/// most [`MAX_STATUS_INSTANCE_TYPES`].
pub fn instance_type_nodes(nodes: &[Arc<Node>]) -> Vec<InstanceTypeNodes> {
    let mut by_type: BTreeMap<String, InstanceTypeNodes> = BTreeMap::new();
    for node in nodes {
        let name = node
            .labels()
            .get(LABEL_INSTANCE_TYPE)
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        let entry = by_type
            .entry(name.clone())
            .or_insert_with(|| InstanceTypeNodes {
                name,
                ..Default::default()
            });
        let count = match nodepools::node_state(node) {
            NodeState::Ready => &mut entry.ready,
            NodeState::Booting => &mut entry.booting,
            NodeState::Draining => &mut entry.draining,
        };
        *count = count.saturating_add(1);
    }
    by_type
        .into_values()
        .take(MAX_STATUS_INSTANCE_TYPES)
        .collect()
}

/// The lifecycle part of `status.status` for an environment whose spec is valid (pure):
/// - CREATING from its first pass (no status yet) until a pass finds its pool settled;
/// - UPDATING on the first pass that sees a new spec (`metadata.generation` differs from the
///   status' `observedGeneration`), and after that until a pass finds the pool settled;
/// - VALID otherwise.
///
/// Settled: `pool_busy` is false — no node created in the pass, none booting (pools that
/// create their nodes), no node writes left for later passes.
pub fn lifecycle_status(
    previous: Option<CeStatus>,
    observed_generation: Option<i64>,
    generation: Option<i64>,
    pool_busy: bool,
) -> CeStatus {
    match previous {
        None => CeStatus::Creating,
        Some(CeStatus::Creating) if pool_busy => CeStatus::Creating,
        Some(CeStatus::Creating) => CeStatus::Valid,
        Some(_) if observed_generation != generation => CeStatus::Updating,
        Some(CeStatus::Updating) if pool_busy => CeStatus::Updating,
        Some(_) => CeStatus::Valid,
    }
}

fn count_by_type(nodes: &[Arc<Node>]) -> BTreeMap<String, i32> {
    let mut counts = BTreeMap::new();
    for node in nodes {
        let t = node
            .labels()
            .get(LABEL_INSTANCE_TYPE)
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        *counts.entry(t).or_insert(0) += 1;
    }
    counts
}

fn base_report(nodes: &[Arc<Node>], ctx: &Context) -> NodeReport {
    NodeReport {
        allocated_milli_cpu: nodes
            .iter()
            .map(|n| ctx.caches.usage.barge_milli_cpu_on(&n.name_any()))
            .sum(),
        node_counts: count_by_type(nodes),
        instance_types: instance_type_nodes(nodes),
        nodes: nodes.len(),
        ready_nodes: nodes.iter().filter(|n| node_is_ready(n)).count(),
        ..Default::default()
    }
}

/// The report of a Karpenter pool: its nodes (Karpenter's, carrying the environment's label),
/// and as desired vCPUs theirs plus what its pending (unbound) pods ask for, within `maxvCpus`.
fn karpenter_report(
    ce: &str,
    nodes: &[Arc<Node>],
    pool: &KarpenterPool,
    ctx: &Context,
) -> NodeReport {
    let mut report = base_report(nodes, ctx);
    let node_vcpus: i64 = nodes
        .iter()
        .map(|n| nodepools::node_allocatable(n, &pool.gpu_resource_name).vcpus_ceil())
        .sum();
    let pending_milli =
        (ctx.caches.usage.barge_milli_cpu_in(ce) - report.allocated_milli_cpu).max(0);
    let pending_vcpus = (pending_milli + 999) / 1000;
    report.desired_vcpus = (node_vcpus + pending_vcpus).min(pool.max_vcpus.max(node_vcpus));
    if pending_vcpus > 0 {
        report.notes.push(format!(
            "{pending_vcpus} vCPU(s) of pending pods wait for Karpenter to launch or free nodes"
        ));
    }
    report.advice = karpenter::idle_capacity_note(pool);
    report
}

/// The report of a Cluster API pool: its candidate member nodes, and as desired vCPUs its
/// deployments' replicas.
fn cluster_api_report(
    outcome: &cluster_api::Outcome,
    pool: &ClusterApiPool,
    ctx: &Context,
) -> NodeReport {
    let plan = &outcome.plan;
    let mut report = base_report(&outcome.nodes, ctx);
    report.desired_vcpus = plan.desired_vcpus;
    report.waits_for_booting = true;
    if plan.pending > 0 {
        report.notes.push(format!(
            "{} machine(s) asked for are not Nodes yet",
            plan.pending
        ));
    }
    if !plan.cordon.is_empty() {
        report.notes.push(format!(
            "draining {} before removal",
            list_nodes(&plan.cordon)
        ));
    }
    if !plan.mark.is_empty() {
        let marked: Vec<String> = plan.mark.iter().map(|m| m.node.clone()).collect();
        report
            .notes
            .push(format!("removing {}", list_nodes(&marked)));
    }
    if plan.held > 0 {
        report.notes.push(format!(
            "{} node(s) to add wait until their MachineDeployment has scaled in",
            plan.held
        ));
    }
    if !outcome.membership.conflicts.is_empty() {
        let taken: Vec<String> = outcome
            .membership
            .conflicts
            .iter()
            .map(|(n, other)| format!("{n} (in {other})"))
            .collect();
        report.notes.push(format!(
            "node(s) already in another compute environment are left out: {}",
            join_names(&taken)
        ));
    }
    let d = &outcome.decision;
    report.scaling = Some(ScalingReport {
        max_vcpus: pool.max_vcpus,
        wanted_beyond_max_vcpus: d.wanted_beyond_max_vcpus,
        active: d.demand_milli_cpu > 0 || !d.add.is_empty() || report.nodes > 0 || plan.pending > 0,
    });
    report
}

/// Events of a Cluster API pass: `ScaledOut` / `ScaledIn` with the deployments and their
/// replicas, `Cordoned` for idle nodes on their way out.
fn publish_cluster_api_events(
    ce: &ComputeEnvironment,
    outcome: &cluster_api::Outcome,
    ctx: &Context,
) {
    let plan = &outcome.plan;
    let marked: Vec<String> = plan.mark.iter().map(|m| m.node.clone()).collect();
    for change in &plan.replicas {
        let deployment = format!("MachineDeployment {}/{}", change.namespace, change.name);
        let (reason, note) = if change.to > change.from {
            (
                EVENT_SCALED_OUT,
                format!(
                    "scaled {deployment} from {} to {} replicas for {} desired vCPUs",
                    change.from, change.to, plan.desired_vcpus
                ),
            )
        } else {
            (
                EVENT_SCALED_IN,
                format!(
                    "scaled {deployment} from {} to {} replicas (idle node(s) marked for deletion: {})",
                    change.from,
                    change.to,
                    if marked.is_empty() { "none".to_string() } else { list_nodes(&marked) }
                ),
            )
        };
        ctx.events
            .publish(ce, EventSpec::normal(reason, ACTION_RECONCILE, note));
    }
    if !plan.cordon.is_empty() {
        let note = format!(
            "cordoned idle node(s) {}; they are removed if still idle on the next pass",
            list_nodes(&plan.cordon)
        );
        ctx.events.publish(
            ce,
            EventSpec::normal(EVENT_CORDONED, ACTION_RECONCILE, note),
        );
    }
}

/// The Barge-made nodes of a managed environment.
fn managed_nodes(ce: &str, ctx: &Context) -> Vec<Arc<Node>> {
    ctx.caches
        .nodes_of_compute_environment(ce)
        .into_iter()
        .filter(|n| n.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_BARGE))
        .collect()
}

#[tracing::instrument(name = "reconcile", skip_all, fields(compute_environment = %ce.name_any()))]
async fn reconcile(
    ce: Arc<ComputeEnvironment>,
    ctx: Arc<Context>,
    shutdown: Shutdown,
) -> Result<Action, Error> {
    measured(&ctx, CONTROLLER, async {
        let api: Api<ComputeEnvironment> = Api::all(ctx.client.clone());
        finalizer(&api, FINALIZER_IN_USE, ce, |event| async {
            match event {
                FinalizerEvent::Apply(ce) => apply(&ce, &ctx, &shutdown).await,
                FinalizerEvent::Cleanup(ce) => cleanup(&ce, &ctx).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))
    })
    .await
}

async fn apply(
    ce: &ComputeEnvironment,
    ctx: &Context,
    shutdown: &Shutdown,
) -> Result<Action, Error> {
    let name = ce.name_any();
    let providers = &ctx.config.providers;
    if providers.allows(Provider::Karpenter)
        && ce
            .spec
            .compute_resources
            .as_ref()
            .is_some_and(|r| r.provider.karpenter.is_none())
    {
        // A provider switched away from karpenter leaves no NodePool behind (best effort).
        if let Err(err) = karpenter::retire_nodepool(&ctx.client, ce).await {
            tracing::warn!(compute_environment = %name, error = %err, "retiring its Karpenter NodePool");
        }
    }
    let (verdict, report, settled) = match nodepools::enabled_pool_of(ce, providers) {
        Err(err) => {
            let nodes = ctx.caches.nodes_of_compute_environment(&name);
            (Err(err), base_report(&nodes, ctx), true)
        }
        Ok(Pool::Simulated(pool)) => {
            let nodes = managed_nodes(&name, ctx);
            let observed: Vec<ObservedNode> = nodes
                .iter()
                .map(|n| ObservedNode {
                    node: (**n).clone(),
                    busy: ctx.caches.usage.is_busy(&n.name_any()),
                })
                .collect();
            let scaled = demand::scales_with_demand(&pool);
            let decision = scaled.then(|| {
                demand::decide(ctx, Timestamp::now().as_millisecond())
                    .remove(&name)
                    .unwrap_or_default()
            });
            let planned = match &decision {
                Some(decision) => simulated::plan_scaled_nodes(ce, &pool, &observed, decision),
                None => simulated::plan_nodes(ce, &pool, nodepools::is_enabled(ce), &observed),
            };
            match planned {
                Err(err) => (Err(err), base_report(&nodes, ctx), true),
                Ok(mut actions) => {
                    actions.limit_writes(NODE_WRITES_PER_PASS);
                    if apply_node_actions(ce, &actions, ctx, shutdown).await? == Pass::Superseded {
                        // Deleted, changed or shutting down: the next pass (if any) plans anew.
                        return Ok(Action::requeue(NEXT_PASS_INTERVAL));
                    }
                    let mut report = base_report(&nodes, ctx);
                    report.desired_vcpus = actions.target_vcpus;
                    report.created_nodes = actions.created.len();
                    report.waits_for_booting = true;
                    report.notes = node_notes(&actions);
                    report.progress = actions.progress(NODE_WRITES_PER_PASS);
                    if actions.target_vcpus == 0 && nodepools::is_enabled(ce) && !scaled {
                        report.advice = Some(ADVICE_EMPTY_POOL.to_string());
                    }
                    report.scaling = decision.map(|d| ScalingReport {
                        max_vcpus: pool.max_vcpus,
                        wanted_beyond_max_vcpus: d.wanted_beyond_max_vcpus,
                        active: d.demand_milli_cpu > 0 || !d.add.is_empty() || report.nodes > 0,
                    });
                    let settled = report.notes.is_empty()
                        && report.ready_nodes == report.nodes
                        && !report.scaling.as_ref().is_some_and(|s| s.active);
                    (Ok(()), report, settled)
                }
            }
        }
        Ok(Pool::Karpenter(pool)) => {
            let nodes = ctx.caches.nodes_of_compute_environment(&name);
            let ensured = karpenter::ensure_nodepool(&ctx.client, ce, &pool)
                .await
                .map_err(|source| Error::Karpenter {
                    ce: name.clone(),
                    source,
                })?;
            let report = karpenter_report(&name, &nodes, &pool, ctx);
            let settled = report.notes.is_empty() && report.ready_nodes == report.nodes;
            (ensured, report, settled)
        }
        Ok(Pool::ClusterApi(pool)) => {
            let now = Timestamp::now().as_millisecond();
            match cluster_api::reconcile(ce, &pool, ctx, now).await {
                Err(ClusterApiError::Invalid(err)) => {
                    let nodes = ctx.caches.nodes_of_compute_environment(&name);
                    (Err(err), base_report(&nodes, ctx), true)
                }
                Err(ClusterApiError::Api { what, source }) => {
                    return Err(Error::ClusterApi {
                        ce: name,
                        what,
                        source,
                    })
                }
                Ok(outcome) => {
                    publish_cluster_api_events(ce, &outcome, ctx);
                    let report = cluster_api_report(&outcome, &pool, ctx);
                    let settled = report.notes.is_empty()
                        && report.ready_nodes == report.nodes
                        && !report.scaling.as_ref().is_some_and(|s| s.active);
                    (Ok(()), report, settled)
                }
            }
        }
        Ok(Pool::Unmanaged(pool)) => {
            let all: Vec<Arc<Node>> = ctx.caches.nodes.state();
            let mut membership =
                unmanaged::plan_membership(&name, &pool.node_selector, &all, false);
            let joining: BTreeSet<&String> =
                membership.members.iter().chain(&membership.label).collect();
            let members: Vec<Arc<Node>> = all
                .iter()
                .filter(|n| joining.contains(&n.name_any()))
                .cloned()
                .collect();
            let deferred = membership.limit_writes(NODE_WRITES_PER_PASS);
            apply_membership(&name, &membership, ctx).await?;
            let mut report = base_report(&members, ctx);
            if deferred > 0 {
                report.progress = Some(format!(
                    "updating membership labels: {deferred} node(s) left, at most {NODE_WRITES_PER_PASS} node writes per pass"
                ));
            }
            report.desired_vcpus = members
                .iter()
                .map(|n| nodepools::node_allocatable(n, &pool.gpu_resource_name).vcpus_ceil())
                .sum();
            if !membership.conflicts.is_empty() {
                let taken: Vec<String> = membership
                    .conflicts
                    .iter()
                    .map(|(n, other)| format!("{n} (in {other})"))
                    .collect();
                report.notes.push(format!(
                    "node(s) already in another compute environment are left out: {}",
                    join_names(&taken)
                ));
            }
            let settled = membership.label.is_empty() && membership.unlabel.is_empty();
            (Ok(()), report, settled)
        }
    };
    let written = write_status(ce, &verdict, &report, None, ctx).await?;
    Ok(match (&verdict, settled) {
        (Err(err), _) if karpenter::is_cluster_reason(err.reason) => {
            Action::requeue(karpenter::RECHECK_INTERVAL)
        }
        (Err(err), _) if cluster_api::is_cluster_reason(err.reason) => {
            Action::requeue(cluster_api::RECHECK_INTERVAL)
        }
        (Err(_), _) => Action::await_change(),
        (Ok(()), _) if report.progress.is_some() => Action::requeue(NEXT_PASS_INTERVAL),
        (Ok(()), _) if report.scaling.as_ref().is_some_and(|s| s.active) => {
            Action::requeue(DEMAND_INTERVAL)
        }
        (Ok(()), false) => Action::requeue(SETTLE_INTERVAL),
        // CREATING or UPDATING ends on a pass that finds the pool settled: look again soon.
        (Ok(()), true) if !matches!(written, Some(CeStatus::Valid)) => {
            Action::requeue(SETTLE_INTERVAL)
        }
        (Ok(()), true) => Action::requeue(ctx.config.status_refresh_interval),
    })
}

/// Node names for a note or Event: all of a few, else the first ones and a count.
fn list_nodes(names: &[String]) -> String {
    if names.len() <= LISTED_NODES {
        join_names(names)
    } else {
        format!(
            "{}, ... ({} in all)",
            names[..LISTED_NODES - 1].join(", "),
            names.len()
        )
    }
}

fn node_notes(actions: &NodeActions) -> Vec<String> {
    let mut notes = Vec::new();
    if !actions.created.is_empty() {
        notes.push(format!("creating {}", list_nodes(&actions.created)));
    }
    if !actions.cordoned.is_empty() || !actions.draining.is_empty() {
        let mut surplus = actions.cordoned.clone();
        surplus.extend(actions.draining.iter().cloned());
        notes.push(format!("draining {} before removal", list_nodes(&surplus)));
    }
    if !actions.delete.is_empty() {
        notes.push(format!("removing {}", list_nodes(&actions.delete)));
    }
    notes
}

/// How a pass of node writes ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Done,
    /// Stopped before a write: see [`superseded`].
    Superseded,
}

/// Whether a pass should stop before its next write: shutdown was requested, or the cache shows
/// the environment gone, being deleted, or with a newer spec (which the next pass plans for).
fn superseded(ce: &ComputeEnvironment, ctx: &Context, shutdown: &Shutdown) -> bool {
    if shutdown.is_requested() {
        return true;
    }
    match ctx
        .caches
        .compute_environments
        .get(&ObjectRef::from_obj(ce))
    {
        None => true,
        Some(current) => {
            current.metadata.deletion_timestamp.is_some()
                || current.metadata.generation != ce.metadata.generation
        }
    }
}

/// Carries out one pass of node writes (already limited by [`NodeActions::limit_writes`]),
/// checking before each write that the pass is still wanted.
async fn apply_node_actions(
    ce: &ComputeEnvironment,
    actions: &NodeActions,
    ctx: &Context,
    shutdown: &Shutdown,
) -> Result<Pass, Error> {
    let name = ce.name_any();
    let api: Api<Node> = Api::all(ctx.client.clone());
    let params = PatchParams::apply(FIELD_MANAGER_COMPUTE_ENVIRONMENT_CONTROLLER).force();
    let create = PostParams {
        field_manager: Some(FIELD_MANAGER_COMPUTE_ENVIRONMENT_CONTROLLER.to_string()),
        ..Default::default()
    };
    let mut pass = Pass::Done;
    let mut deleted = Vec::new();
    for node_name in &actions.delete {
        if superseded(ce, ctx, shutdown) {
            pass = Pass::Superseded;
            break;
        }
        match api.delete(node_name, &DeleteParams::default()).await {
            Ok(_) => deleted.push(node_name.clone()),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(Error::DeleteNode {
                    ce: name.clone(),
                    node: node_name.clone(),
                    source,
                })
            }
        }
    }
    // New nodes are created (a node a lagging cache did not show yet is AlreadyExists, not
    // created twice), existing ones get Barge's fields by server-side apply.
    let mut created = Vec::new();
    for node in &actions.apply {
        if pass == Pass::Superseded || superseded(ce, ctx, shutdown) {
            pass = Pass::Superseded;
            break;
        }
        let node_name = node.name_any();
        let apply_error = |source| Error::ApplyNode {
            ce: name.clone(),
            node: node_name.clone(),
            source,
        };
        if actions.created.contains(&node_name) {
            match api.create(&create, node).await {
                Ok(_) => created.push(node_name.clone()),
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(source) => return Err(apply_error(source)),
            }
            continue;
        }
        let mut body = serde_json::to_value(node).unwrap_or_default();
        if let Some(obj) = body.as_object_mut() {
            obj.insert("apiVersion".into(), "v1".into());
            obj.insert("kind".into(), "Node".into());
        }
        api.patch(&node_name, &params, &Patch::Apply(&body))
            .await
            .map_err(apply_error)?;
    }
    ctx.metrics.nodes_created.inc_by(created.len() as u64);
    ctx.metrics.nodes_deleted.inc_by(deleted.len() as u64);
    if !created.is_empty() {
        let note = format!(
            "created {} node(s) ({}) for {} desired vCPUs",
            created.len(),
            list_nodes(&created),
            actions.target_vcpus
        );
        ctx.events.publish(
            ce,
            EventSpec::normal(EVENT_SCALED_OUT, ACTION_RECONCILE, note),
        );
    }
    if pass == Pass::Done && !actions.cordoned.is_empty() {
        let note = format!(
            "cordoned surplus node(s) {}; they are removed once idle",
            list_nodes(&actions.cordoned)
        );
        ctx.events.publish(
            ce,
            EventSpec::normal(EVENT_CORDONED, ACTION_RECONCILE, note),
        );
    }
    if !deleted.is_empty() {
        let note = format!(
            "removed {} idle node(s) ({}) for {} desired vCPUs",
            deleted.len(),
            list_nodes(&deleted),
            actions.target_vcpus
        );
        ctx.events.publish(
            ce,
            EventSpec::normal(EVENT_SCALED_IN, ACTION_RECONCILE, note),
        );
    }
    if !created.is_empty() || !deleted.is_empty() {
        ctx.scheduler.wake();
    }
    Ok(pass)
}

async fn apply_membership(ce: &str, membership: &Membership, ctx: &Context) -> Result<(), Error> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    let params = PatchParams::default();
    let label = unmanaged::membership_patch(Some(ce));
    let unlabel = unmanaged::membership_patch(None);
    for (nodes, patch) in [(&membership.label, &label), (&membership.unlabel, &unlabel)] {
        for node in nodes {
            match api.patch(node, &params, &Patch::Merge(patch)).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(Error::LabelNode {
                        ce: ce.to_string(),
                        node: node.clone(),
                        source,
                    })
                }
            }
        }
    }
    if !membership.label.is_empty() || !membership.unlabel.is_empty() {
        ctx.scheduler.wake();
    }
    Ok(())
}

/// What keeps a deleted compute environment from going.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeldBy {
    /// Job queues that still list it.
    Queues(Vec<String>),
    /// Barge pods (`namespace/name`) placed on it that have not finished.
    RunningPods(Vec<String>),
}

/// Barge's pods of compute environment `ce` (its label) that have not finished.
fn running_pods(ce: &str, ctx: &Context) -> Vec<String> {
    let mut pods: Vec<String> = ctx
        .caches
        .pods
        .state()
        .iter()
        .filter(|p| {
            p.labels()
                .get(LABEL_COMPUTE_ENVIRONMENT)
                .map(String::as_str)
                == Some(ce)
        })
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()))
        .collect();
    pods.sort();
    pods
}

async fn cleanup(ce: &ComputeEnvironment, ctx: &Context) -> Result<Action, Error> {
    let name = ce.name_any();
    let queues: Vec<String> = ctx
        .caches
        .queues_of_compute_environment(&name)
        .iter()
        .map(|q| q.name_any())
        .collect();
    if !queues.is_empty() {
        let nodes = ctx.caches.nodes_of_compute_environment(&name);
        let report = base_report(&nodes, ctx);
        let verdict = nodepools::enabled_pool_of(ce, &ctx.config.providers).map(|_| ());
        write_status(
            ce,
            &verdict,
            &report,
            Some(&HeldBy::Queues(queues.clone())),
            ctx,
        )
        .await?;
        return Err(Error::InUse {
            ce: name,
            queues: join_names(&queues),
        });
    }
    // As AWS refuses to delete an environment with jobs on it: its running jobs end first (its
    // nodes, which the garbage collector deletes with it, must not go from under them).
    let running = running_pods(&name, ctx);
    if !running.is_empty() {
        let nodes = ctx.caches.nodes_of_compute_environment(&name);
        let report = base_report(&nodes, ctx);
        let verdict = nodepools::enabled_pool_of(ce, &ctx.config.providers).map(|_| ());
        let pods = running.len();
        write_status(
            ce,
            &verdict,
            &report,
            Some(&HeldBy::RunningPods(running)),
            ctx,
        )
        .await?;
        return Err(Error::JobsRunning { ce: name, pods });
    }
    match ce.spec.r#type {
        ComputeEnvironmentType::Managed => {
            // A Karpenter NodePool is owned by its environment too: the garbage collector
            // deletes it, and Karpenter its nodes.
            karpenter::forget(ce);
            // A Cluster API pool's nodes and deployments are the user's: released, not deleted.
            if let Ok(Pool::ClusterApi(pool)) =
                nodepools::enabled_pool_of(ce, &ctx.config.providers)
            {
                let left =
                    cluster_api::release(ce, &pool, ctx)
                        .await
                        .map_err(|(what, source)| Error::ClusterApi {
                            ce: name.clone(),
                            what,
                            source,
                        })?;
                if left > 0 {
                    return Err(Error::ReleasingNodes { ce: name, left });
                }
            }
            // Barge's nodes are owned by their environment (a controller owner reference), so
            // the garbage collector deletes them once it is gone, however many there are; this
            // pass only deletes nodes without that reference, a pass at a time.
            let nodes = managed_nodes(&name, ctx);
            let uid = ce.metadata.uid.as_deref().unwrap_or_default();
            let (owned, unowned): (Vec<_>, Vec<_>) = nodes
                .iter()
                .partition(|n| n.owner_references().iter().any(|o| o.uid == uid));
            let api: Api<Node> = Api::all(ctx.client.clone());
            for node in unowned.iter().take(NODE_WRITES_PER_PASS) {
                match api.delete(&node.name_any(), &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(source) => {
                        return Err(Error::DeleteNode {
                            ce: name.clone(),
                            node: node.name_any(),
                            source,
                        })
                    }
                }
            }
            if !nodes.is_empty() {
                let names: Vec<String> = nodes.iter().map(|n| n.name_any()).collect();
                ctx.events.publish(
                    ce,
                    EventSpec::normal(
                        EVENT_SCALED_IN,
                        ACTION_RECONCILE,
                        format!(
                            "deleting node(s) {} with the compute environment ({} by the garbage collector)",
                            list_nodes(&names),
                            owned.len()
                        ),
                    ),
                );
            }
            if unowned.len() > NODE_WRITES_PER_PASS {
                return Err(Error::ReleasingNodes {
                    ce: name,
                    left: unowned.len() - NODE_WRITES_PER_PASS,
                });
            }
        }
        ComputeEnvironmentType::Unmanaged => {
            let selector = ce.spec.node_selector.clone().unwrap_or_default();
            let mut membership =
                unmanaged::plan_membership(&name, &selector, &ctx.caches.nodes.state(), true);
            let left = membership.limit_writes(NODE_WRITES_PER_PASS);
            apply_membership(&name, &membership, ctx).await?;
            if left > 0 {
                return Err(Error::ReleasingNodes { ce: name, left });
            }
        }
    }
    let labels = ComputeEnvironmentLabels {
        compute_environment: name,
    };
    ctx.metrics.ce_desired_vcpus.remove(&labels);
    ctx.metrics.ce_allocated_vcpus.remove(&labels);
    Ok(Action::await_change())
}

async fn write_status(
    ce: &ComputeEnvironment,
    verdict: &Result<(), PoolError>,
    report: &NodeReport,
    deleting_for: Option<&HeldBy>,
    ctx: &Context,
) -> Result<Option<CeStatus>, Error> {
    let name = ce.name_any();
    let status = build_status(ce, verdict, report, deleting_for, Timestamp::now());
    let labels = ComputeEnvironmentLabels {
        compute_environment: name.clone(),
    };
    ctx.metrics
        .ce_desired_vcpus
        .get_or_create(&labels)
        .set(i64::from(status.desiredv_cpus.unwrap_or(0)));
    ctx.metrics
        .ce_allocated_vcpus
        .get_or_create(&labels)
        .set(i64::from(status.allocatedv_cpus.unwrap_or(0)));
    let before = ce.status.as_ref();
    let changed_verdict = before.and_then(|s| s.status) != status.status
        || before.and_then(|s| s.status_reason.clone()) != status.status_reason;
    if changed_verdict {
        if let Err(err) = verdict {
            ctx.events.publish(
                ce,
                EventSpec::warning(EVENT_INVALID, ACTION_RECONCILE, err.message.clone()),
            );
        }
    }
    let api: Api<ComputeEnvironment> = Api::all(ctx.client.clone());
    apply_status(
        &api,
        ce,
        &status,
        FIELD_MANAGER_COMPUTE_ENVIRONMENT_CONTROLLER,
        Precondition::None,
        &ctx.metrics,
    )
    .await
    .map_err(|source| Error::UpdateStatus { ce: name, source })?;
    if changed_verdict {
        // Usable environments changed: queues are re-validated through their watch; the
        // scheduler looks again.
        ctx.scheduler.wake();
    }
    Ok(status.status)
}

fn error_policy(_: Arc<ComputeEnvironment>, error: &Error, _: Arc<Context>) -> Action {
    use super::ReconcileError;
    Action::requeue(if error.is_waiting() {
        super::WAIT_RETRY
    } else {
        super::TRANSIENT_RETRY
    })
}

/// The environments a node change concerns: the one its label names, and the UNMANAGED ones
/// whose selector it matches.
fn environments_of_node(
    node: &Node,
    caches: &crate::cache::Caches,
) -> Vec<ObjectRef<ComputeEnvironment>> {
    let mut refs: Vec<ObjectRef<ComputeEnvironment>> = node
        .labels()
        .get(barge_crds::consts::LABEL_COMPUTE_ENVIRONMENT)
        .map(|ce| ObjectRef::new(ce))
        .into_iter()
        .collect();
    for ce in caches.compute_environments.state() {
        if ce.spec.r#type == ComputeEnvironmentType::Unmanaged {
            let selector = ce.spec.node_selector.clone().unwrap_or_default();
            if unmanaged::selects(&selector, node.labels()) {
                refs.push(ObjectRef::from_obj(&*ce));
            }
        }
    }
    refs
}

/// Wakes the pools that scale with demand when the runnable book changes size (checked every
/// [`DEMAND_INTERVAL`], so a burst of submissions costs one reconcile per pool, not one per
/// job); while a pool has demand or nodes it also requeues itself at that interval.
async fn wake_on_demand(ctx: Arc<Context>, shutdown: Shutdown) {
    let mut last = 0usize;
    loop {
        tokio::select! {
            _ = shutdown.clone().wait() => return,
            _ = tokio::time::sleep(DEMAND_INTERVAL) => {}
        }
        let now = ctx.runnable.len();
        if now == last {
            continue;
        }
        last = now;
        for ce in ctx.caches.compute_environments.state() {
            let scales = match nodepools::enabled_pool_of(&ce, &ctx.config.providers) {
                Ok(Pool::Simulated(pool)) => demand::scales_with_demand(&pool),
                Ok(Pool::ClusterApi(_)) => true,
                _ => false,
            };
            if scales {
                ctx.triggers
                    .compute_environments
                    .fire(ObjectRef::from_obj(&*ce));
            }
        }
    }
}

/// What a change of an environment must show for it to be reconciled (see [`run`]): whether
/// it is cached, its uid, generation (its spec), deletion, finalizers, and of its status only
/// the lifecycle (`status`, `observedGeneration`) — not the counts a pass writes.
#[derive(Clone, Debug, PartialEq)]
pub struct ReconcileFacts {
    present: bool,
    uid: Option<String>,
    generation: Option<i64>,
    deleting: bool,
    finalizers: Vec<String>,
    lifecycle: Option<CeStatus>,
    observed_generation: Option<i64>,
}

impl ReconcileFacts {
    /// The facts of `ce` (`present`: whether the cache holds it; a deleted one is not).
    pub fn of(ce: &ComputeEnvironment, present: bool) -> Self {
        let status = ce.status.as_ref();
        Self {
            present,
            uid: ce.metadata.uid.clone(),
            generation: ce.metadata.generation,
            deleting: ce.metadata.deletion_timestamp.is_some(),
            finalizers: ce.finalizers().to_vec(),
            lifecycle: status.and_then(|s| s.status),
            observed_generation: status.and_then(|s| s.observed_generation),
        }
    }
}

/// The environments' changes that start a pass (see [`ReconcileFacts`]). A pass writes the
/// status whenever its counts moved (`allocatedvCpus`, nodes per type): during a busy array that
/// is nearly every pass, and each write came back through the watch as a change that started the
/// next pass at once — a loop of scaling decisions and status writes. Only what a pass acts on
/// starts one: spec, deletion, finalizers, and lifecycle transitions (CREATING → VALID is decided
/// on the pass after CREATING is written); the requeues keep the counts current.
fn changed_environments(
    caches: &Arc<crate::cache::Caches>,
) -> impl futures::Stream<Item = Arc<ComputeEnvironment>> + Send + 'static {
    let caches = caches.clone();
    let filter = super::ChangeFilter::default();
    let feed = caches.compute_environments_feed.subscribe();
    feed.filter(move |ce: &Arc<ComputeEnvironment>| {
        let present = caches
            .compute_environments
            .get(&ObjectRef::from_obj(&**ce))
            .is_some();
        let changed = filter
            .update(&ce.name_any(), ReconcileFacts::of(ce, present))
            .is_some();
        std::future::ready(changed)
    })
}

/// Runs the controller until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) {
    let caches = ctx.caches.clone();
    let (for_nodes, for_queues) = (caches.clone(), caches.clone());
    let node_filter = super::ChangeFilter::default();
    let queue_filter = super::ChangeFilter::default();
    let mut controller = Controller::for_shared_stream(
        changed_environments(&caches),
        caches.compute_environments.clone(),
    )
    // Node heartbeats and queue status writes change nothing a CE looks at: the filters let
    // through only what does (a node's labels, taints, cordon, readiness, allocatable,
    // existence; a queue's CE list and existence — old and new CEs both hear of a change).
    .watches_shared_stream(caches.nodes_feed.subscribe(), move |node: Arc<Node>| {
        let present = for_nodes.nodes.get(&ObjectRef::from_obj(&*node)).is_some();
        let spec = node.spec.as_ref();
        let facts = super::digest(&(
            present,
            node.metadata.deletion_timestamp.is_some(),
            node.labels(),
            spec.and_then(|s| s.taints.as_ref()),
            spec.and_then(|s| s.unschedulable),
            node_is_ready(&node),
            node.status.as_ref().and_then(|s| s.allocatable.as_ref()),
        ));
        match node_filter.update(&node.name_any(), facts) {
            None => Vec::new(),
            Some(_) => environments_of_node(&node, &for_nodes),
        }
    })
    .watches_shared_stream(
        caches.queues_feed.subscribe(),
        move |queue: Arc<JobQueue>| {
            let present = for_queues
                .queues
                .get(&ObjectRef::from_obj(&*queue))
                .is_some();
            let listed: Vec<String> = if present {
                queue
                    .spec
                    .compute_environment_order
                    .iter()
                    .map(|o| o.compute_environment.clone())
                    .collect()
            } else {
                Vec::new()
            };
            let facts = (
                present,
                queue.metadata.deletion_timestamp.is_some(),
                listed.clone(),
            );
            match queue_filter.update(&queue.name_any(), facts) {
                None => Vec::new(),
                Some(previous) => {
                    let mut names = listed;
                    names.extend(previous.map(|(_, _, old)| old).unwrap_or_default());
                    names.extend(
                        queue
                            .spec
                            .compute_environment_order
                            .iter()
                            .map(|o| o.compute_environment.clone()),
                    );
                    names.sort();
                    names.dedup();
                    names
                        .iter()
                        .map(|n| ObjectRef::<ComputeEnvironment>::new(n))
                        .collect::<Vec<_>>()
                }
            }
        },
    )
    .with_config(controller_config(&ctx))
    .graceful_shutdown_on(shutdown.clone().wait());
    if let Some(requests) = ctx.triggers.compute_environments.stream() {
        controller = controller.reconcile_on(requests);
    }
    tokio::spawn(wake_on_demand(ctx.clone(), shutdown.clone()));
    let stop = shutdown;
    super::drain_classified(
        CONTROLLER,
        controller.run(
            move |ce, ctx| reconcile(ce, ctx, stop.clone()),
            error_policy,
            ctx,
        ),
        super::ReconcileError::is_waiting,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodepools::tests::simulated_ce;
    use barge_crds::consts::REASON_INVALID_SPEC;

    fn now() -> Timestamp {
        Timestamp::from_second(100).expect("ts")
    }

    /// The environment as a settled earlier pass left it: VALID for its generation.
    fn settled(mut ce: ComputeEnvironment) -> ComputeEnvironment {
        ce.status = Some(ComputeEnvironmentStatus {
            status: Some(CeStatus::Valid),
            observed_generation: ce.metadata.generation,
            ..Default::default()
        });
        ce
    }

    #[test]
    fn only_changes_a_pass_acts_on_start_one() {
        let mut ce = settled(simulated_ce("ce", &["m5.xlarge"], 0, Some(8), 16));
        ce.metadata.generation = Some(1);
        ce.metadata.uid = Some("u1".into());
        let facts = ReconcileFacts::of(&ce, true);
        // What a pass writes besides the lifecycle: counts, reasons, conditions.
        let mut counted = ce.clone();
        let status = counted.status.as_mut().expect("status");
        status.allocatedv_cpus = Some(7);
        status.desiredv_cpus = Some(12);
        status.status_reason = Some("3/3 node(s) ready".into());
        status.node_counts = BTreeMap::from([("m5.xlarge".to_string(), 3)]);
        counted.metadata.resource_version = Some("99".into());
        assert_eq!(ReconcileFacts::of(&counted, true), facts);
        // What a pass acts on.
        let mut changes: Vec<ComputeEnvironment> = Vec::new();
        let mut spec = ce.clone();
        spec.metadata.generation = Some(2);
        changes.push(spec);
        let mut deleting = ce.clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        changes.push(deleting);
        let mut finalized = ce.clone();
        finalized.metadata.finalizers = Some(vec![FINALIZER_IN_USE.to_string()]);
        changes.push(finalized);
        let mut creating = ce.clone();
        creating.status.as_mut().expect("status").status = Some(CeStatus::Creating);
        changes.push(creating);
        let mut observed = ce.clone();
        observed
            .status
            .as_mut()
            .expect("status")
            .observed_generation = Some(0);
        changes.push(observed);
        let mut recreated = ce.clone();
        recreated.metadata.uid = Some("u2".into());
        changes.push(recreated);
        for changed in &changes {
            assert_ne!(ReconcileFacts::of(changed, true), facts, "{changed:?}");
        }
        assert_ne!(ReconcileFacts::of(&ce, false), facts, "deleted");
        // Through the filter the controller uses: the first sight passes, a count does not.
        let filter = crate::controllers::ChangeFilter::default();
        assert!(filter.update("ce", facts.clone()).is_some());
        assert!(filter
            .update("ce", ReconcileFacts::of(&counted, true))
            .is_none());
        assert!(filter
            .update("ce", ReconcileFacts::of(&changes[0], true))
            .is_some());
    }

    #[test]
    fn a_valid_settled_pool_is_healthy() {
        let mut ce = simulated_ce("ce", &["m5.xlarge"], 0, Some(8), 16);
        ce.metadata.generation = Some(2);
        let ce = settled(ce);
        let report = NodeReport {
            desired_vcpus: 8,
            allocated_milli_cpu: 2500,
            node_counts: [("m5.xlarge".to_string(), 2)].into(),
            instance_types: vec![InstanceTypeNodes {
                name: "m5.xlarge".into(),
                ready: 2,
                booting: 0,
                draining: 0,
            }],
            created_nodes: 0,
            waits_for_booting: true,
            nodes: 2,
            ready_nodes: 2,
            notes: vec![],
            advice: None,
            progress: None,
            scaling: None,
        };
        let status = build_status(&ce, &Ok(()), &report, None, now());
        assert_eq!(status.status, Some(CeStatus::Valid));
        assert_eq!(status.status_reason.as_deref(), Some(STATUS_REASON_HEALTHY));
        assert_eq!(
            (status.desiredv_cpus, status.allocatedv_cpus),
            (Some(8), Some(3)),
            "allocated rounds up"
        );
        assert_eq!(status.node_counts["m5.xlarge"], 2);
        assert_eq!(status.instance_types, report.instance_types);
        assert_eq!(
            (
                status.conditions[0].reason.as_str(),
                status.conditions[0].message.as_str()
            ),
            (REASON_VALID, "2/2 node(s) ready")
        );
        assert_eq!(status.observed_generation, Some(2));
    }

    #[test]
    fn a_pool_that_scales_says_when_demand_exceeds_max_vcpus() {
        let ce = settled(simulated_ce("ce", &["c5.large"], 0, None, 8));
        let mut report = NodeReport {
            desired_vcpus: 8,
            nodes: 4,
            ready_nodes: 4,
            scaling: Some(ScalingReport {
                max_vcpus: 8,
                wanted_beyond_max_vcpus: 12,
                active: true,
            }),
            ..Default::default()
        };
        let status = build_status(&ce, &Ok(()), &report, None, now());
        let limited = &status.conditions[1];
        assert_eq!(
            (
                limited.type_.as_str(),
                limited.status.as_str(),
                limited.reason.as_str()
            ),
            (
                CONDITION_SCALING_LIMITED,
                "True",
                REASON_DEMAND_ABOVE_MAX_VCPUS
            )
        );
        assert_eq!(
            limited.message,
            "RUNNABLE work wants 12 vCPU(s) more than maxvCpus 8 allows"
        );
        assert_eq!(status.desiredv_cpus, Some(8));
        report.scaling = Some(ScalingReport {
            max_vcpus: 8,
            wanted_beyond_max_vcpus: 0,
            active: false,
        });
        let status = build_status(&ce, &Ok(()), &report, None, now());
        assert_eq!(status.conditions[1].status, "False");
        assert_eq!(status.conditions[1].reason, REASON_WITHIN_MAX_VCPUS);
        // A fixed-size pool has no ScalingLimited condition.
        report.scaling = None;
        let status = build_status(&ce, &Ok(()), &report, None, now());
        assert_eq!(status.conditions.len(), 1);
    }

    #[test]
    fn booting_nodes_show_as_scaling_while_valid() {
        let ce = settled(simulated_ce("ce", &["m5.xlarge"], 0, Some(8), 16));
        let report = NodeReport {
            desired_vcpus: 8,
            nodes: 1,
            ready_nodes: 0,
            notes: vec!["creating ce-m5-xlarge-1".into()],
            ..Default::default()
        };
        let status = build_status(&ce, &Ok(()), &report, None, now());
        assert_eq!(status.status, Some(CeStatus::Valid));
        assert_eq!(
            (
                status.conditions[0].status.as_str(),
                status.conditions[0].reason.as_str()
            ),
            ("False", REASON_NO_READY_NODES),
            "valid, but no node can run work yet"
        );
        assert_eq!(
            status.status_reason.as_deref(),
            Some(STATUS_REASON_NO_READY_NODE)
        );
        assert_eq!(
            status.conditions[0].message,
            "0/1 node(s) ready; creating ce-m5-xlarge-1"
        );
        let one_up = NodeReport {
            nodes: 2,
            ready_nodes: 1,
            ..report
        };
        let status = build_status(&ce, &Ok(()), &one_up, None, now());
        assert_eq!(
            (
                status.conditions[0].status.as_str(),
                status.conditions[0].reason.as_str()
            ),
            ("True", REASON_SCALING)
        );
        assert_eq!(status.status_reason.as_deref(), Some(STATUS_REASON_HEALTHY));
    }

    #[test]
    fn an_empty_enabled_pool_says_how_to_get_nodes() {
        let ce = settled(simulated_ce("ce", &["m5.xlarge"], 0, None, 0));
        let report = NodeReport {
            advice: Some(ADVICE_EMPTY_POOL.into()),
            ..Default::default()
        };
        let status = build_status(&ce, &Ok(()), &report, None, now());
        assert_eq!(
            (
                status.conditions[0].status.as_str(),
                status.conditions[0].reason.as_str()
            ),
            ("False", REASON_NO_READY_NODES),
            "an empty pool is not healthy"
        );
        assert!(status.conditions[0]
            .message
            .starts_with("0/0 node(s) ready; maxvCpus is 0"));
    }

    #[test]
    fn a_pool_growing_over_several_passes_says_how_far_it_got() {
        let ce = settled(simulated_ce("ce", &["c5.large"], 0, Some(1000), 1000));
        let progress = "scaling out: 40 of 500 node(s) created, at most 20 node writes per pass";
        let report = NodeReport {
            desired_vcpus: 1000,
            nodes: 40,
            ready_nodes: 40,
            progress: Some(progress.into()),
            ..Default::default()
        };
        let status = build_status(&ce, &Ok(()), &report, None, now());
        assert_eq!(status.status, Some(CeStatus::Valid));
        assert_eq!(status.status_reason.as_deref(), Some(progress));
        assert_eq!(
            (
                status.conditions[0].status.as_str(),
                status.conditions[0].reason.as_str()
            ),
            ("True", REASON_SCALING),
            "work in progress, though every node so far is ready"
        );
    }

    #[test]
    fn node_lists_are_cut_short() {
        let names: Vec<String> = (0..20).map(|i| format!("n{i}")).collect();
        assert_eq!(list_nodes(&names[..2]), "n0 and n1");
        assert_eq!(list_nodes(&names[..5]), "n0, n1, n2, n3 and n4");
        assert_eq!(list_nodes(&names), "n0, n1, n2, n3, ... (20 in all)");
    }

    fn node(name: &str, instance_type: Option<&str>) -> Node {
        let mut node = crate::nodepools::tests::ready_node(name, "ce", "x", "2");
        let labels = node.metadata.labels.as_mut().expect("labels");
        match instance_type {
            Some(t) => {
                labels.insert(LABEL_INSTANCE_TYPE.into(), t.into());
            }
            None => {
                labels.remove(LABEL_INSTANCE_TYPE);
            }
        }
        node
    }

    fn booting(mut node: Node) -> Node {
        node.status.as_mut().expect("status").conditions = None;
        node
    }

    fn cordoned(mut node: Node) -> Node {
        node.spec.as_mut().expect("spec").unschedulable = Some(true);
        node
    }

    #[test]
    fn nodes_are_counted_per_instance_type_as_ready_booting_or_draining() {
        let mut deleting = node("c5-3", Some("c5.large"));
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::from_second(1).expect("ts"),
            ));
        let nodes: Vec<Arc<Node>> = [
            node("c5-0", Some("c5.large")),
            booting(node("c5-1", Some("c5.large"))),
            // Cordoned: draining, whether Ready or not.
            cordoned(node("c5-2", Some("c5.large"))),
            cordoned(booting(deleting)),
            node("p3-0", Some("p3.2xlarge")),
            node("mystery", None),
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let counts = instance_type_nodes(&nodes);
        let entry = |name: &str, ready, booting, draining| InstanceTypeNodes {
            name: name.into(),
            ready,
            booting,
            draining,
        };
        assert_eq!(
            counts,
            vec![
                entry("c5.large", 1, 1, 2),
                entry("p3.2xlarge", 1, 0, 0),
                entry("unknown", 1, 0, 0),
            ]
        );
        assert!(instance_type_nodes(&[]).is_empty());
    }

    #[test]
    fn lifecycle_creating_then_valid_updating_on_a_new_spec_until_settled() {
        use CeStatus::*;
        // The first pass is CREATING whatever it did; CREATING lasts while the pool is busy.
        assert_eq!(lifecycle_status(None, None, Some(1), false), Creating);
        assert_eq!(
            lifecycle_status(Some(Creating), Some(1), Some(1), true),
            Creating
        );
        assert_eq!(
            lifecycle_status(Some(Creating), Some(1), Some(1), false),
            Valid
        );
        // A spec change seen for the first time is UPDATING even when nothing is to do; then
        // UPDATING while the pool is busy.
        assert_eq!(
            lifecycle_status(Some(Valid), Some(1), Some(2), false),
            Updating
        );
        assert_eq!(
            lifecycle_status(Some(Updating), Some(2), Some(2), true),
            Updating
        );
        assert_eq!(
            lifecycle_status(Some(Updating), Some(2), Some(2), false),
            Valid
        );
        // A VALID pool scaling with demand (same spec) stays VALID.
        assert_eq!(lifecycle_status(Some(Valid), Some(2), Some(2), true), Valid);
        // An INVALID spec fixed: UPDATING, then VALID.
        assert_eq!(
            lifecycle_status(Some(Invalid), Some(2), Some(3), false),
            Updating
        );
    }

    #[test]
    fn a_new_pool_is_creating_until_its_first_nodes_are_ready() {
        let mut ce = simulated_ce("ce", &["m5.xlarge"], 8, Some(8), 8);
        ce.metadata.generation = Some(1);
        let creating_two = NodeReport {
            desired_vcpus: 8,
            created_nodes: 2,
            waits_for_booting: true,
            notes: vec!["creating ce-m5-xlarge-0 and ce-m5-xlarge-1".into()],
            ..Default::default()
        };
        let first = build_status(&ce, &Ok(()), &creating_two, None, now());
        assert_eq!(first.status, Some(CeStatus::Creating));
        assert_eq!(
            first.status_reason.as_deref(),
            Some("creating: 0/0 node(s) ready")
        );
        assert_eq!(
            (
                first.conditions[0].status.as_str(),
                first.conditions[0].reason.as_str()
            ),
            ("False", REASON_NO_READY_NODES)
        );
        assert_eq!(first.observed_generation, Some(1));
        // Next pass: one node Ready, one booting — still CREATING.
        ce.status = Some(first);
        let one_booting = NodeReport {
            desired_vcpus: 8,
            nodes: 2,
            ready_nodes: 1,
            waits_for_booting: true,
            instance_types: vec![InstanceTypeNodes {
                name: "m5.xlarge".into(),
                ready: 1,
                booting: 1,
                draining: 0,
            }],
            ..Default::default()
        };
        let second = build_status(&ce, &Ok(()), &one_booting, None, now());
        assert_eq!(second.status, Some(CeStatus::Creating));
        assert_eq!(
            second.status_reason.as_deref(),
            Some("creating: 1/2 node(s) ready")
        );
        // Both Ready: VALID and healthy.
        ce.status = Some(second);
        let all_ready = NodeReport {
            ready_nodes: 2,
            instance_types: vec![InstanceTypeNodes {
                name: "m5.xlarge".into(),
                ready: 2,
                booting: 0,
                draining: 0,
            }],
            ..one_booting
        };
        let third = build_status(&ce, &Ok(()), &all_ready, None, now());
        assert_eq!(third.status, Some(CeStatus::Valid));
        assert_eq!(third.status_reason.as_deref(), Some(STATUS_REASON_HEALTHY));
        assert_eq!(third.conditions[0].reason, REASON_VALID);
        // The spec changes (generation 2): UPDATING while the new node boots, then VALID.
        ce.status = Some(third);
        ce.metadata.generation = Some(2);
        let growing = NodeReport {
            nodes: 3,
            created_nodes: 1,
            ..all_ready.clone()
        };
        let updating = build_status(&ce, &Ok(()), &growing, None, now());
        assert_eq!(updating.status, Some(CeStatus::Updating));
        assert_eq!(
            updating.status_reason.as_deref(),
            Some("updating: 2/3 node(s) ready")
        );
        assert_eq!(
            updating.conditions[0].status, "True",
            "an UPDATING environment keeps running jobs"
        );
        ce.status = Some(updating);
        let grown = NodeReport {
            nodes: 3,
            ready_nodes: 3,
            ..all_ready.clone()
        };
        let valid = build_status(&ce, &Ok(()), &grown, None, now());
        assert_eq!(valid.status, Some(CeStatus::Valid));
        assert_eq!(valid.observed_generation, Some(2));
    }

    #[test]
    fn booting_nodes_of_an_unmanaged_pool_do_not_hold_it_in_creating() {
        let mut ce = simulated_ce("ce", &[], 0, None, 0);
        ce.status = Some(ComputeEnvironmentStatus {
            status: Some(CeStatus::Creating),
            ..Default::default()
        });
        let report = NodeReport {
            nodes: 2,
            ready_nodes: 1,
            waits_for_booting: false,
            instance_types: vec![InstanceTypeNodes {
                name: "m5.large".into(),
                ready: 1,
                booting: 1,
                draining: 0,
            }],
            ..Default::default()
        };
        let status = build_status(&ce, &Ok(()), &report, None, now());
        assert_eq!(status.status, Some(CeStatus::Valid));
    }

    #[test]
    fn invalid_and_deleting_environments_say_why() {
        let ce = simulated_ce("ce", &["m5.xlarge"], 0, Some(8), 16);
        let err = PoolError {
            reason: REASON_INVALID_SPEC,
            message: "instanceTypes: \"x\" is neither".into(),
        };
        let status = build_status(&ce, &Err(err), &NodeReport::default(), None, now());
        assert_eq!(status.status, Some(CeStatus::Invalid));
        assert_eq!(
            status.status_reason.as_deref(),
            Some("instanceTypes: \"x\" is neither")
        );
        assert_eq!(status.conditions[0].status, "False");
        let queues = ["high".to_string(), "low".to_string()];
        let deleting = build_status(
            &ce,
            &Ok(()),
            &NodeReport::default(),
            Some(&HeldBy::Queues(queues.to_vec())),
            now(),
        );
        assert_eq!(deleting.status, Some(CeStatus::Deleting));
        assert_eq!(
            deleting.status_reason.as_deref(),
            Some("being deleted; still listed by job queue(s) high and low")
        );
        let running = build_status(
            &ce,
            &Ok(()),
            &NodeReport::default(),
            Some(&HeldBy::RunningPods(vec!["team-a/render-1".into()])),
            now(),
        );
        assert_eq!(running.status, Some(CeStatus::Deleting));
        assert_eq!(
            running.status_reason.as_deref(),
            Some("being deleted once its running jobs end: 1 job pod(s) still on it (team-a/render-1)")
        );
        assert_eq!(running.conditions[0].status, "False");
    }
}
