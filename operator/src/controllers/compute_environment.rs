//! The ComputeEnvironment controller: validates an environment, keeps its nodes in line with
//! its pool, and reports it.
//!
//! Pipeline per environment:
//! 1. validate (pure, [`nodepools::pool_of`]): an invalid spec, or a provider Barge does not
//!    implement yet (karpenter, clusterAPI), makes it INVALID with the reason in
//!    `statusReason`, the Ready condition and a Warning Event;
//! 2. dereference: its nodes (index by the compute-environment label; all nodes for an
//!    UNMANAGED selector) and what runs on them (the node usage cache);
//! 3. build (pure): [`simulated::plan_nodes`] for a MANAGED simulated pool (fixed size:
//!    `desiredvCpus`, or `minvCpus` while DISABLED; surplus nodes cordoned, then deleted when
//!    idle); for a simulated pool that scales with demand ([`demand::scales_with_demand`]:
//!    no `desiredvCpus`, `maxvCpus` above `minvCpus`) barge-core's scaling decision
//!    ([`demand::decide`], from the caches and the runnable book) and
//!    [`simulated::plan_scaled_nodes`]; [`unmanaged::plan_membership`] for an UNMANAGED one.
//!    Such a pool is reconciled again every second while it has demand or nodes, and when the
//!    runnable book changes size (checked once a second: coalesced, one reconcile per pool);
//! 4. apply: server-side apply of Barge's Node fields, node deletions, membership labels;
//!    Events on scaling (`ScaledOut`, `Cordoned`, `ScaledIn`). A pass makes at most
//!    [`NODE_WRITES_PER_PASS`] node writes and stops early on SIGTERM, deletion or a spec change;
//!    the rest waits for the next pass (requeued at once) and `statusReason` says how far the
//!    pool got. A pool beyond `MAX_NODES_PER_COMPUTE_ENVIRONMENT` nodes is INVALID (step 1);
//! 5. update_status (pure [`build_status`]): `status`, `statusReason`, `desiredvCpus`,
//!    `allocatedvCpus` (CPU requested by Barge's pods on its nodes), `nodeCounts`, Ready,
//!    `ScalingLimited` (pools that scale with demand: how much more than `maxvCpus` was wanted),
//!    `observedGeneration`; and the CE gauges.
//!
//! Deletion: the `batch.barge.dev/in-use` finalizer (kube's finalizer helper) holds the
//! environment while a queue lists it (status DELETING says which); then the finalizer goes at
//! once: its simulated nodes, which it owns, are deleted by the garbage collector (only nodes
//! missing the owner reference are deleted here, a pass at a time), and its unmanaged nodes are
//! released.
//!
//! Triggers: the environment, its nodes (and for UNMANAGED selectors any node they match), the
//! queues that list it; a periodic refresh keeps `allocatedvCpus` current, and a quick one while
//! nodes are booting or draining.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use barge_crds::compute_environment::{CeStatus, ComputeEnvironmentType};
use barge_crds::consts::{
    CONDITION_READY, FIELD_MANAGER_COMPUTE_ENVIRONMENT_CONTROLLER, FINALIZER_IN_USE,
    LABEL_INSTANCE_TYPE, LABEL_MANAGED_BY, MANAGED_BY_BARGE, REASON_NO_READY_NODES, REASON_VALID,
};
use barge_crds::{ComputeEnvironment, ComputeEnvironmentStatus, JobQueue};

use super::{
    controller_config, join_names, measured, ACTION_RECONCILE, REASON_IN_USE, REASON_SCALING,
};
use crate::context::Context;
use crate::events::EventSpec;
use crate::metrics::ComputeEnvironmentLabels;
use crate::nodepools::simulated::{self, NodeActions, ObservedNode};
use crate::nodepools::unmanaged::{self, Membership};
use crate::nodepools::{self, demand, node_is_ready, Pool, PoolError};
use crate::shutdown::Shutdown;
use crate::status::{apply_status, merge_conditions, DesiredCondition, Precondition};

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
pub const ADVICE_EMPTY_POOL: &str = "desiredvCpus (default minvCpus) is 0, so the pool has no nodes: set desiredvCpus to run jobs, or leave it unset with maxvCpus above minvCpus to scale with demand";

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
    #[error("compute environment {ce} is being deleted; {left} of its node(s) are left to release, a pass at a time")]
    ReleasingNodes { ce: String, left: usize },
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<Error>>),
}

impl super::ReconcileError for Error {
    fn is_waiting(&self) -> bool {
        match self {
            Error::InUse { .. } | Error::ReleasingNodes { .. } => true,
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
/// `deleting_for` names the queues that still hold a deleted environment.
pub fn build_status(
    ce: &ComputeEnvironment,
    verdict: &Result<(), PoolError>,
    report: &NodeReport,
    deleting_for: Option<&[String]>,
    now: Timestamp,
) -> ComputeEnvironmentStatus {
    let generation = ce.metadata.generation;
    let existing = ce
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let (status, reason, ready) = match (verdict, deleting_for) {
        (_, Some(queues)) => {
            let message = format!(
                "being deleted; still listed by job queue(s) {}",
                join_names(queues)
            );
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
            let (ready, reason, status_reason) = if report.ready_nodes == 0 {
                (false, REASON_NO_READY_NODES, STATUS_REASON_NO_READY_NODE)
            } else if settled {
                (true, REASON_VALID, STATUS_REASON_HEALTHY)
            } else {
                (true, REASON_SCALING, STATUS_REASON_HEALTHY)
            };
            (
                CeStatus::Valid,
                report
                    .progress
                    .clone()
                    .unwrap_or_else(|| status_reason.to_string()),
                DesiredCondition::new(CONDITION_READY, ready, reason, message),
            )
        }
    };
    let vcpus = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
    let mut conditions = vec![ready];
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
        conditions: merge_conditions(existing, &conditions, generation, now),
        observed_generation: generation,
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
        nodes: nodes.len(),
        ready_nodes: nodes.iter().filter(|n| node_is_ready(n)).count(),
        ..Default::default()
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
    let (verdict, report, settled) = match nodepools::pool_of(ce) {
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
                    busy: ctx.caches.usage.pods_on(&n.name_any()) > 0,
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
    write_status(ce, &verdict, &report, None, ctx).await?;
    Ok(match (&verdict, settled) {
        (Err(_), _) => Action::await_change(),
        (Ok(()), _) if report.progress.is_some() => Action::requeue(NEXT_PASS_INTERVAL),
        (Ok(()), _) if report.scaling.as_ref().is_some_and(|s| s.active) => {
            Action::requeue(DEMAND_INTERVAL)
        }
        (Ok(()), false) => Action::requeue(SETTLE_INTERVAL),
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
        let verdict = nodepools::pool_of(ce).map(|_| ());
        write_status(ce, &verdict, &report, Some(&queues), ctx).await?;
        return Err(Error::InUse {
            ce: name,
            queues: join_names(&queues),
        });
    }
    match ce.spec.r#type {
        ComputeEnvironmentType::Managed => {
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
    deleting_for: Option<&[String]>,
    ctx: &Context,
) -> Result<(), Error> {
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
    Ok(())
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
            if let Ok(Pool::Simulated(pool)) = nodepools::pool_of(&ce) {
                if demand::scales_with_demand(&pool) {
                    ctx.triggers
                        .compute_environments
                        .fire(ObjectRef::from_obj(&*ce));
                }
            }
        }
    }
}

/// Runs the controller until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) {
    let caches = ctx.caches.clone();
    let (for_nodes, for_queues) = (caches.clone(), caches.clone());
    let node_filter = super::ChangeFilter::default();
    let queue_filter = super::ChangeFilter::default();
    let mut controller = Controller::for_shared_stream(
        caches.compute_environments_feed.subscribe(),
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

    #[test]
    fn a_valid_settled_pool_is_healthy() {
        let mut ce = simulated_ce("ce", &["m5.xlarge"], 0, Some(8), 16);
        ce.metadata.generation = Some(2);
        let report = NodeReport {
            desired_vcpus: 8,
            allocated_milli_cpu: 2500,
            node_counts: [("m5.xlarge".to_string(), 2)].into(),
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
        let ce = simulated_ce("ce", &["c5.large"], 0, None, 8);
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
        let ce = simulated_ce("ce", &["m5.xlarge"], 0, Some(8), 16);
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
        let ce = simulated_ce("ce", &["m5.xlarge"], 0, None, 16);
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
            .starts_with("0/0 node(s) ready; desiredvCpus (default minvCpus) is 0"));
    }

    #[test]
    fn a_pool_growing_over_several_passes_says_how_far_it_got() {
        let ce = simulated_ce("ce", &["c5.large"], 0, Some(1000), 1000);
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
        let deleting = build_status(&ce, &Ok(()), &NodeReport::default(), Some(&queues), now());
        assert_eq!(deleting.status, Some(CeStatus::Deleting));
        assert_eq!(
            deleting.status_reason.as_deref(),
            Some("being deleted; still listed by job queue(s) high and low")
        );
    }
}
