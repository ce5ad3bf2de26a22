//! The scheduling pass (design §3): `schedule(&Snapshot) -> PassResult`, pure.
//!
//! The operator builds a [`Snapshot`] from its stores — queues, compute environments, nodes with
//! their allocatable and what all their pods use (Barge's or not), and the RUNNABLE work as
//! [`Workload`]s — and applies the [`PassResult`]: create (and bind) a pod per [`Placement`],
//! record each unplaced workload's [`Unplaced`] verdict (for the job's condition and status
//! reason).
//!
//! The pass, as a numbered recipe:
//! 1. index capacity: free allocatable per schedulable node of each compute environment — or,
//!    for an environment in budget mode (`bindingMode: KubeScheduler`), what is left of its
//!    vCPU budget: such an environment is one capacity pool, and its placements name no node;
//! 2. group workloads by queue and order each queue ([`QueueOrder`]; FIFO by default: retried
//!    first, then by submission); a queue with a scheduling policy is sorted FIFO and merged
//!    share by share in step 4 ([`fair_share`]: load, weights, compute reservation);
//! 3. order queues: higher priority first, ties by name ([`order_queues`]); queues sharing a
//!    compute environment are so served by priority;
//! 4. admit: each unit tries the queue's usable (enabled and valid) environments in order and
//!    takes the best-fitting node; a unit that fits nowhere does not block smaller work behind
//!    it (best-effort FIFO) unless the queue is strict FIFO (then the queue stops there);
//!    disabled queues place nothing. A gang is placed whole or not at all, and when it does not
//!    fit it holds the nodes it waits for (below);
//! 5. explain: every workload left unplaced gets a verdict; one that no environment of its queue
//!    could ever run gets [`Unplaced::CannotRun`] with AWS Batch's status reason (for a gang
//!    also: only SPOT environments, [`BlockedKind::MultiNodeOnSpot`]; more nodes than any
//!    environment can ever have, [`BlockedKind::GangTooLarge`]); one for which no room can
//!    appear soon (no usable environment has a Ready node that could take it, nor is starting
//!    one; for a gang, not enough such nodes) gets [`Unplaced::InsufficientCapacity`]
//!    (`CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY`); the rest wait ([`Unplaced::NoCapacity`]).
//!
//! Array children are units of one workload, placed in index order; all share one request, so
//! the first child that does not fit ends the array's turn (no 10,000-child walk when nothing
//! fits). Together with the per-environment failure memo (see `capacity`), a pass over 100,000
//! units costs little more than the placements it makes.
//!
//! ## Multi-node jobs (gangs)
//!
//! A multi-node job's attempt is one workload with [`Units::Gang`]: one member per node index.
//! - **All or nothing, one environment.** The gang tries its queue's usable environments in
//!   order, skipping SPOT ones (AWS Batch runs no multi-node job on Spot) and budget-mode ones
//!   (`bindingMode: KubeScheduler`: the pass cannot reserve nodes there). In an environment,
//!   members are placed largest first, each by best fit on a distinct schedulable node that is
//!   not exclusive, has no Barge pod (counting units placed earlier in the pass), fits its
//!   request and matches its `instanceType` (GPU members on GPU nodes only, others on nodes
//!   without GPUs first). Only when every member found a node does the pass emit the gang's
//!   placements — one per member, `node_index` set, the main node's first — and mark the
//!   nodes exclusive for the rest of the pass; otherwise the tentative choices are undone and
//!   nothing of the gang is placed.
//! - **Single tenancy.** Units that are not gang members never go to an exclusive node (the
//!   snapshot's, or one a gang took in this pass), and each of them makes its node ineligible
//!   for gang members for the rest of the pass.
//! - **No starvation.** A gang that does not fit now holds, for the rest of the pass, one node
//!   per member in the first environment (queue order) that has enough nodes able to take it
//!   once their running work ends: for each member, largest first, the schedulable node not
//!   already held that would free soonest (fewest Barge pods — a node running another gang
//!   counts as busy —, then least used, then name) and whose allocatable fits the member and
//!   matches its constraints. Holding is all or nothing too. Held nodes leave the capacity
//!   index: no workload after the gang in this pass — later in its queue, or in a
//!   lower-priority queue sharing the environment, gang or not — is placed on them. Pass after
//!   pass, the waiting gang is met in the same place in the ordered queues and holds again, so
//!   the nodes it waits for only drain: as soon as enough of them are empty, it is placed. A
//!   stream of smaller jobs behind it cannot keep taking those nodes, and a second gang that
//!   cannot fit beside the first waits behind it and holds only nodes the first does not;
//!   once the first runs, the second holds (and then gets) what frees next. Only work ahead of
//!   the gang in the order (higher-priority queues, retried or earlier jobs of its queue) may
//!   delay it, which is what priority and FIFO mean.
//! - **No deadlock.** A gang never holds part of itself in pods: its pods are created only for
//!   a complete placement, so no two gangs can each own some nodes while waiting for the
//!   other's. Holds live in memory for one pass and are recomputed from the ordered queues in
//!   the next, so they cannot outlive the order that made them, and the gang first in order
//!   always holds before any gang behind it.
//! - **Cost.** Holding removes nodes from the capacity trees, which makes later searches
//!   cheaper; gang members search a second per-pool tree of nodes without Barge pods, with a
//!   failure memo of its own and an O(1) "more members than empty nodes" check, so 100 gangs
//!   among 10,000 jobs add little to a pass (see the `gang_pass` benchmark).

mod capacity;
pub mod fair_share;
mod order;
pub mod why;

pub use fair_share::{FairSharePolicy, QueueFairShare, ShareState, ShareWeight, UsageLedger};
pub use order::{fifo_order, order_queues, Fifo, QueueOrder};

use crate::index_set::IndexSet;
use crate::job::{Blocked, BlockedKind, RunnableWork};
use crate::naming;
use crate::reasons;
use crate::resources::Resources;
pub use crate::shared_str::SharedStr;
use capacity::{CapacityIndex, Spot};
use std::collections::HashMap;
use std::fmt;

/// A job's identity: namespace and name.
///
/// Both are [`SharedStr`]s: a key is copied into the runnable book, the verdicts and every
/// pass's workloads and placements, and a copy is a reference count, not two allocations (the
/// operator also interns the namespace, one allocation for all jobs of a namespace).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobKey {
    pub namespace: SharedStr,
    pub name: SharedStr,
}

impl JobKey {
    pub fn new(namespace: &str, name: &str) -> JobKey {
        JobKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of shared (e.g. interned) names.
    pub fn shared(namespace: SharedStr, name: SharedStr) -> JobKey {
        JobKey { namespace, name }
    }
}

impl fmt::Display for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A job queue as the pass sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueSpec {
    pub name: String,
    /// Higher first among queues sharing a compute environment.
    pub priority: i32,
    /// `state: ENABLED`.
    pub enabled: bool,
    /// `computeEnvironmentOrder`, already sorted by `order`.
    pub environments: Vec<String>,
    /// Stop at the first job that does not fit (default: best-effort FIFO).
    pub strict_fifo: bool,
    /// Its scheduling policy and what the operator knows of its shares: the queue is ordered
    /// by fair share (see `fair_share`). None: FIFO.
    pub fair_share: Option<QueueFairShare>,
}

/// A node shape an environment has or could have (for "can never run").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeShape {
    pub instance_type: String,
    pub allocatable: Resources,
}

/// A compute environment as the pass sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvironmentSpec {
    pub name: String,
    /// `state: ENABLED`.
    pub enabled: bool,
    /// `status: VALID`.
    pub valid: bool,
    /// Every node shape it has or could have: for a managed pool its instance types, for an
    /// unmanaged one its nodes. `None` when unknown (then nothing is called "can never run").
    pub shapes: Option<Vec<NodeShape>>,
    /// `maxvCpus` in millicpu, for managed environments.
    pub max_milli_cpu: Option<i64>,
    /// Nodes that are not Ready yet but are expected to be: booting (not Ready, not cordoned,
    /// not being deleted), or planned by the pool and not created yet. While any exist, work
    /// that finds no room waits without a verdict.
    pub starting_nodes: u32,
    /// `bindingMode: KubeScheduler`: the environment is a capacity pool, not nodes. The pass
    /// admits units while their CPU fits in this budget — millicpu left of the vCPU budget
    /// (`maxvCpus`) once every Barge pod of the environment, bound or not, is counted — and
    /// places them on no node (the kube-scheduler binds them). Memory and GPUs are not
    /// budgeted (a unit no node shape could hold is still "can never run"). None: Barge binds
    /// to nodes.
    pub budget_milli_cpu: Option<i64>,
    /// Its instances are Spot (`type: SPOT`): multi-node jobs do not run on it (AWS Batch).
    pub spot: bool,
}

/// A node as the pass sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSnapshot {
    pub name: String,
    /// Its `batch.barge.dev/compute-environment` label.
    pub environment: Option<String>,
    pub allocatable: Resources,
    /// Requests of every pod bound to it (Barge's or not), including pods Barge just created.
    pub used: Resources,
    /// Ready, not cordoned, not being deleted.
    pub schedulable: bool,
    /// `node.kubernetes.io/instance-type`.
    pub instance_type: Option<String>,
    /// Barge pods bound to it that have not finished (including pods Barge just created): a
    /// node of a multi-node job goes only where there are none (single tenant).
    pub barge_pods: u32,
    /// It runs a node of a multi-node job, or is reserved for one whose pod is not created yet:
    /// no other Barge pod goes there.
    pub exclusive: bool,
}

/// Placement constraints of a workload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Constraints {
    /// `containerOverrides.instanceType`: only nodes of this type.
    pub instance_type: Option<String>,
}

/// The schedulable units of a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Units {
    /// One pod.
    Single,
    /// These array children (one pod each, all with the same request), placed in index order.
    Array(IndexSet),
    /// The nodes of a multi-node job's attempt: placed all or nothing, each alone on its own
    /// Kubernetes node among Barge's pods, all in one compute environment. The workload's
    /// `request` and `constraints` are the main node's; each member has its own.
    Gang(Gang),
}

impl Units {
    /// Number of units.
    pub fn count(&self) -> u64 {
        match self {
            Units::Single => 1,
            Units::Array(set) => set.len(),
            Units::Gang(gang) => gang.members.len() as u64,
        }
    }
}

/// The nodes of a multi-node job (one pod each).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Gang {
    /// `mainNode`: its pod is created first.
    pub main_node: u32,
    /// One member per node index (`members[i]` is node `i`).
    pub members: Vec<GangMember>,
}

/// One node of a gang.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GangMember {
    /// What its pod asks for, including one pod slot.
    pub request: Resources,
    /// Its node range's `instanceType`, if any.
    pub constraints: Constraints,
}

/// RUNNABLE work of one job on one attempt number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub job: JobKey,
    pub queue: SharedStr,
    /// Back in the queue after a failed attempt (goes first).
    pub retried: bool,
    /// The job's `createdAt` (FIFO order).
    pub submitted_at_ms: i64,
    /// Order of creation as the API server committed it (FIFO among jobs of the same
    /// `submitted_at_ms`, which has one-second resolution).
    pub submission_order: i64,
    /// The attempt the pods will run (pod names derive from it).
    pub attempt: u32,
    /// What one unit (pod) asks for, including one pod slot.
    pub request: Resources,
    pub constraints: Constraints,
    pub units: Units,
    /// The job's `shareIdentifier` (counted only in fair-share queues).
    pub share: Option<SharedStr>,
    /// `schedulingPriorityOverride`, else the definition's `schedulingPriority`, else 0
    /// (higher first within a share; fair-share queues only).
    pub priority: i32,
}

impl Workload {
    /// The workload with its share and scheduling priority.
    pub fn with_share<S: Into<SharedStr>>(mut self, share: Option<S>, priority: i32) -> Workload {
        self.share = share.map(Into::into);
        self.priority = priority;
        self
    }

    /// The workloads of one job from what its plan says the scheduler may place
    /// (`JobPlan::runnable`): one for a single job, one per attempt group for an array, one
    /// for a multi-node job's gang (`gang`: its nodes; without it a gang offers nothing).
    #[allow(clippy::too_many_arguments)]
    pub fn from_runnable(
        job: &JobKey,
        queue: impl Into<SharedStr>,
        submitted_at_ms: i64,
        submission_order: i64,
        request: Resources,
        constraints: &Constraints,
        gang: Option<&Gang>,
        work: &RunnableWork,
    ) -> Vec<Workload> {
        let mut workloads = Vec::new();
        Workload::push_runnable(
            &mut workloads,
            job,
            queue,
            submitted_at_ms,
            submission_order,
            request,
            constraints,
            gang,
            work,
        );
        workloads
    }

    /// [`Workload::from_runnable`], appended to `out` (a pass over 100,000 jobs then allocates
    /// no vector per job).
    #[allow(clippy::too_many_arguments)]
    pub fn push_runnable(
        out: &mut Vec<Workload>,
        job: &JobKey,
        queue: impl Into<SharedStr>,
        submitted_at_ms: i64,
        submission_order: i64,
        request: Resources,
        constraints: &Constraints,
        gang: Option<&Gang>,
        work: &RunnableWork,
    ) {
        let queue = queue.into();
        let make = |attempt: u32, retried: bool, units: Units| Workload {
            job: job.clone(),
            queue: queue.clone(),
            retried,
            submitted_at_ms,
            submission_order,
            attempt,
            request,
            constraints: constraints.clone(),
            units,
            share: None,
            priority: 0,
        };
        match work {
            RunnableWork::Nothing => {}
            RunnableWork::Single { attempt, retried } => {
                out.push(make(*attempt, *retried, Units::Single));
            }
            RunnableWork::Array { groups } => out.extend(
                groups
                    .iter()
                    .filter(|g| !g.indices.is_empty())
                    .map(|g| make(g.attempt, g.retried, Units::Array(g.indices.clone()))),
            ),
            RunnableWork::Gang { attempt, retried } => out.extend(
                gang.filter(|g| !g.members.is_empty())
                    .map(|g| make(*attempt, *retried, Units::Gang(g.clone()))),
            ),
        }
    }
}

/// The input of a pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub queues: Vec<QueueSpec>,
    pub environments: Vec<EnvironmentSpec>,
    pub nodes: Vec<NodeSnapshot>,
    pub workloads: Vec<Workload>,
}

/// Put one unit on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Position of the workload in `Snapshot::workloads`.
    pub workload: usize,
    pub job: JobKey,
    pub array_index: Option<u32>,
    /// The node index, for a node of a multi-node job (a gang's placements come together,
    /// one per node, main node first).
    pub node_index: Option<u32>,
    pub attempt: u32,
    pub environment: String,
    /// The node to bind to; None for an environment in budget mode (an unbound pod that the
    /// kube-scheduler places on a node of the environment).
    pub node: Option<String>,
}

impl Placement {
    /// The deterministic name of the pod to create (`<job>-<attempt>[-<index>|-node-<n>]`).
    pub fn pod_name(&self) -> String {
        match self.node_index {
            Some(n) => naming::node_pod_name(&self.job.name, self.attempt, n),
            None => naming::attempt_pod_name(&self.job.name, self.attempt, self.array_index),
        }
    }
}

/// Why (part of) a workload was not placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unplaced {
    /// No room now; it keeps its place in the queue.
    NoCapacity,
    /// Its queue is DISABLED.
    QueueDisabled,
    /// Its queue is not in the snapshot.
    UnknownQueue,
    /// Its queue lists no compute environment that exists.
    NoEnvironment,
    /// Every compute environment of its queue is DISABLED.
    EnvironmentsDisabled,
    /// Every compute environment of its queue is INVALID.
    EnvironmentsInvalid,
    /// Waiting behind the head of a strict-FIFO queue that does not fit.
    BehindStrictFifoHead { head: JobKey },
    /// No compute environment of its queue can ever run it.
    CannotRun {
        /// [`BlockedKind::NoInstanceTypeFits`] or [`BlockedKind::ExceedsMaxvCpus`]; for a gang
        /// also [`BlockedKind::MultiNodeOnSpot`] or [`BlockedKind::GangTooLarge`].
        kind: BlockedKind,
        status_reason: SharedStr,
        message: SharedStr,
    },
    /// No room now, and none can appear soon: no usable environment of its queue has a Ready
    /// node that could take it (where running work would free room), and none is starting a
    /// node.
    InsufficientCapacity {
        /// The usable environments have no Ready node at all.
        no_ready_nodes: bool,
        /// The usable environments, comma-separated.
        environments: SharedStr,
        /// The instance types they have or could have, comma-separated (for AWS's wording).
        instance_types: SharedStr,
    },
}

impl Unplaced {
    /// The AWS-style status reason the job shows while RUNNABLE, if any.
    pub fn status_reason(&self) -> Option<String> {
        match self {
            Unplaced::CannotRun { status_reason, .. } => Some(status_reason.to_string()),
            Unplaced::EnvironmentsInvalid => Some(reasons::environments_invalid()),
            Unplaced::InsufficientCapacity { instance_types, .. } => {
                Some(reasons::insufficient_instance_capacity(instance_types))
            }
            _ => None,
        }
    }

    /// A human explanation for the job's condition.
    pub fn message(&self, queue: &str) -> String {
        match self {
            Unplaced::NoCapacity => {
                format!("waiting for capacity in the compute environments of queue {queue:?}")
            }
            Unplaced::QueueDisabled => format!("queue {queue:?} is DISABLED"),
            Unplaced::UnknownQueue => format!("queue {queue:?} does not exist"),
            Unplaced::NoEnvironment => {
                format!("queue {queue:?} has no existing compute environment")
            }
            Unplaced::EnvironmentsDisabled => {
                format!("every compute environment of queue {queue:?} is DISABLED")
            }
            Unplaced::EnvironmentsInvalid => {
                format!("every compute environment of queue {queue:?} is INVALID")
            }
            Unplaced::BehindStrictFifoHead { head } => {
                format!("queue {queue:?} is strict FIFO and its head {head} does not fit yet")
            }
            Unplaced::CannotRun { message, .. } => message.to_string(),
            Unplaced::InsufficientCapacity {
                no_ready_nodes: true,
                environments,
                ..
            } => format!(
                "no compute environment of queue {queue:?} ({environments}) has a Ready node, and none is starting one"
            ),
            Unplaced::InsufficientCapacity { environments, .. } => format!(
                "no Ready node of the compute environments of queue {queue:?} ({environments}) could take the job, and none that could is starting"
            ),
        }
    }

    /// The kind of verdict the job's condition names (None: plain waiting for capacity).
    pub fn kind(&self) -> Option<BlockedKind> {
        Some(match self {
            Unplaced::NoCapacity => return None,
            Unplaced::QueueDisabled => BlockedKind::QueueDisabled,
            Unplaced::UnknownQueue => BlockedKind::QueueNotFound,
            Unplaced::NoEnvironment => BlockedKind::NoComputeEnvironment,
            Unplaced::EnvironmentsDisabled => BlockedKind::ComputeEnvironmentsDisabled,
            Unplaced::EnvironmentsInvalid => BlockedKind::ComputeEnvironmentsInvalid,
            Unplaced::BehindStrictFifoHead { .. } => BlockedKind::BehindQueueHead,
            Unplaced::CannotRun { kind, .. } => *kind,
            Unplaced::InsufficientCapacity {
                no_ready_nodes: true,
                ..
            } => BlockedKind::NoReadyNodes,
            Unplaced::InsufficientCapacity { .. } => BlockedKind::InsufficientCapacity,
        })
    }

    /// The verdict as the job state machine takes it (`JobView::blocked`); None for plain
    /// waiting for capacity, which is what RUNNABLE means (no verdict, no status write).
    pub fn to_blocked(&self, queue: &str) -> Option<Blocked> {
        Some(Blocked {
            kind: self.kind()?,
            status_reason: self.status_reason(),
            message: self.message(queue),
        })
    }

    /// True for verdicts that will not change without a configuration change.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Unplaced::CannotRun { .. })
    }
}

/// What the pass decided for one workload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadVerdict {
    /// Units placed in this pass.
    pub placed: u64,
    /// Why the rest was not placed (None when everything was placed).
    pub unplaced: Option<Unplaced>,
}

/// Counters for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassStats {
    pub workloads: usize,
    pub units_placed: u64,
    /// Placement questions answered by the failure memo without looking at nodes.
    pub memo_hits: u64,
    /// Gangs that did not fit and hold nodes for the rest of the pass (see the module docs).
    pub gangs_holding: u64,
}

/// The outcome of a pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassResult {
    pub placements: Vec<Placement>,
    /// One verdict per workload, aligned with `Snapshot::workloads`.
    pub verdicts: Vec<WorkloadVerdict>,
    pub stats: PassStats,
}

/// Runs a pass with FIFO queue ordering.
pub fn schedule(snapshot: &Snapshot) -> PassResult {
    schedule_with(snapshot, &Fifo)
}

/// Runs a pass with the given queue ordering (fair share plugs in here).
pub fn schedule_with(snapshot: &Snapshot, ordering: &dyn QueueOrder) -> PassResult {
    // 1. Capacity.
    let env_index: HashMap<&str, usize> = snapshot
        .environments
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.as_str(), i))
        .collect();
    let mut nodes: Vec<&NodeSnapshot> = snapshot.nodes.iter().collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut capacity = CapacityIndex::build(&snapshot.environments, &nodes, &env_index);

    // 2. Workloads by queue, each queue ordered.
    let queue_index: HashMap<&str, usize> = snapshot
        .queues
        .iter()
        .enumerate()
        .map(|(i, q)| (q.name.as_str(), i))
        .collect();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); snapshot.queues.len()];
    let mut verdicts = vec![WorkloadVerdict::default(); snapshot.workloads.len()];
    for (i, w) in snapshot.workloads.iter().enumerate() {
        match queue_index.get(w.queue.as_str()) {
            Some(&q) => members[q].push(i),
            None => verdicts[i].unplaced = Some(Unplaced::UnknownQueue),
        }
    }

    // 3. Queues by priority; 4. admit.
    let mut placements = Vec::new();
    for q in order_queues(&snapshot.queues) {
        let queue = &snapshot.queues[q];
        let mut list = std::mem::take(&mut members[q]);
        if queue.fair_share.is_some() {
            // The fair-share merge orders within each share from FIFO order (see `fair_share`).
            fifo_order(&snapshot.workloads, &mut list);
        } else {
            ordering.order(queue, &snapshot.workloads, &mut list);
        }
        admit_queue(
            snapshot,
            queue,
            &list,
            &env_index,
            &nodes,
            &mut capacity,
            &mut placements,
            &mut verdicts,
        );
    }

    // 5. Explain what stays unplaced.
    explain_unplaced(snapshot, &queue_index, &env_index, &mut verdicts);

    let units_placed = placements.len() as u64;
    PassResult {
        placements,
        verdicts,
        stats: PassStats {
            workloads: snapshot.workloads.len(),
            units_placed,
            memo_hits: capacity.memo_hits,
            gangs_holding: capacity.gangs_holding,
        },
    }
}

/// Step 4 for one queue.
#[allow(clippy::too_many_arguments)]
fn admit_queue(
    snapshot: &Snapshot,
    queue: &QueueSpec,
    list: &[usize],
    env_index: &HashMap<&str, usize>,
    nodes: &[&NodeSnapshot],
    capacity: &mut CapacityIndex,
    placements: &mut Vec<Placement>,
    verdicts: &mut [WorkloadVerdict],
) {
    let listed: Vec<usize> = queue
        .environments
        .iter()
        .filter_map(|e| env_index.get(e.as_str()).copied())
        .collect();
    let usable: Vec<usize> = listed
        .iter()
        .copied()
        .filter(|&e| snapshot.environments[e].enabled && snapshot.environments[e].valid)
        .collect();
    let queue_verdict = if !queue.enabled {
        Some(Unplaced::QueueDisabled)
    } else if listed.is_empty() {
        Some(Unplaced::NoEnvironment)
    } else if usable.is_empty() {
        if listed.iter().all(|&e| !snapshot.environments[e].valid) {
            Some(Unplaced::EnvironmentsInvalid)
        } else {
            Some(Unplaced::EnvironmentsDisabled)
        }
    } else {
        None
    };
    if let Some(verdict) = queue_verdict {
        for &w in list {
            verdicts[w].unplaced = Some(verdict.clone());
        }
        return;
    }
    let mut step = Stepper {
        snapshot,
        usable: &usable,
        nodes,
        capacity,
        placements,
        next_index: HashMap::new(),
    };
    match &queue.fair_share {
        None => {
            let mut strict_head: Option<&JobKey> = None;
            for &w in list {
                if let Some(head) = strict_head {
                    verdicts[w].unplaced =
                        Some(Unplaced::BehindStrictFifoHead { head: head.clone() });
                    continue;
                }
                let (placed, complete) = step.place(w, u64::MAX);
                verdicts[w].placed = placed;
                if !complete {
                    verdicts[w].unplaced = Some(Unplaced::NoCapacity);
                    if queue.strict_fifo {
                        strict_head = Some(&snapshot.workloads[w].job);
                    }
                }
            }
        }
        Some(fair) => {
            // Fair share: unit by unit, to the share whose load at the middle of the unit is
            // lowest (see `fair_share`), within the room the compute reservation leaves.
            let (views, mut merge) =
                fair_share::ShareMerge::weighed(fair, &snapshot.workloads, list);
            let mut reservation = (fair.policy.compute_reservation > 0).then(|| {
                let max = fair_share::queue_max_milli_cpu(snapshot, queue);
                fair_share::reservation(fair, &views, max)
            });
            while let Some(w) = merge.next_workload() {
                let workload = &snapshot.workloads[w];
                let need = fair_share::step_milli_cpu(workload);
                // A newcomer's first unit may use the room held for newcomers.
                let newcomer = merge.current_is_newcomer();
                let held_back = reservation.is_some_and(|r| !r.allows(need, newcomer));
                let (placed, complete) = if held_back {
                    (0, false)
                } else {
                    step.place(w, 1)
                };
                verdicts[w].placed += placed;
                if placed > 0 {
                    if let Some(r) = reservation.as_mut() {
                        r.take(need, newcomer);
                    }
                    let more = !complete && verdicts[w].placed < workload.units.count();
                    merge.placed(need, more);
                    continue;
                }
                merge.done();
                if !complete {
                    verdicts[w].unplaced = Some(Unplaced::NoCapacity);
                    if queue.strict_fifo {
                        let head = workload.job.clone();
                        for rest in merge.remaining() {
                            verdicts[rest].unplaced =
                                Some(Unplaced::BehindStrictFifoHead { head: head.clone() });
                        }
                        break;
                    }
                }
            }
        }
    }
}

/// Places the units of a queue's workloads (step 4), remembering where each array stopped.
struct Stepper<'s, 'c> {
    snapshot: &'s Snapshot,
    usable: &'c [usize],
    nodes: &'c [&'s NodeSnapshot],
    capacity: &'c mut CapacityIndex,
    placements: &'c mut Vec<Placement>,
    /// Array workloads partly placed in this pass: where their next child is.
    next_index: HashMap<usize, ArrayCursor>,
}

/// The next child of an array to place: range `range` of its indices, index `index` (placing a
/// fair-share queue's array one child per turn costs O(1) per child, not a walk from the start).
#[derive(Clone, Copy, Debug, Default)]
struct ArrayCursor {
    range: usize,
    index: u32,
}

impl Stepper<'_, '_> {
    /// Places up to `max` units of workload `w` (a gang counts as one step: all its nodes);
    /// returns the units placed and whether the workload has none left to place. A unit that
    /// does not fit ends the attempt (array children all ask the same).
    fn place(&mut self, w: usize, max: u64) -> (u64, bool) {
        let snapshot = self.snapshot;
        let workload = &snapshot.workloads[w];
        match &workload.units {
            Units::Single => {
                let ok = self.place_one(w, None);
                (u64::from(ok), ok)
            }
            Units::Array(indices) => {
                let start = self.next_index.get(&w).copied().unwrap_or_default();
                let mut placed = 0;
                let mut stopped: Option<ArrayCursor> = None;
                'ranges: for (range, (first, last)) in
                    indices.ranges().enumerate().skip(start.range)
                {
                    let from = if range == start.range {
                        first.max(start.index)
                    } else {
                        first
                    };
                    for index in from..=last {
                        if placed == max || !self.place_one(w, Some(index)) {
                            stopped = Some(ArrayCursor { range, index });
                            break 'ranges;
                        }
                        placed += 1;
                    }
                }
                if placed > 0 {
                    if let Some(cursor) = stopped {
                        self.next_index.insert(w, cursor);
                    }
                }
                // Stopped by `max` with children left: not complete, but not stuck either (the
                // caller tells the two apart by `placed`).
                (placed, stopped.is_none())
            }
            Units::Gang(gang) => match place_gang(snapshot, self.usable, self.capacity, gang) {
                Some((env, chosen)) => {
                    let n = gang.members.len() as u32;
                    let main = (gang.main_node < n).then_some(gang.main_node);
                    let order = main.into_iter().chain((0..n).filter(|&i| Some(i) != main));
                    for i in order {
                        self.placements.push(Placement {
                            workload: w,
                            job: workload.job.clone(),
                            array_index: None,
                            node_index: Some(i),
                            attempt: workload.attempt,
                            environment: snapshot.environments[env].name.clone(),
                            node: Some(self.nodes[chosen[i as usize]].name.clone()),
                        });
                    }
                    (u64::from(n), true)
                }
                None => {
                    hold_for_gang(snapshot, self.usable, self.capacity, gang);
                    (0, false)
                }
            },
        }
    }

    /// One pod of workload `w`.
    fn place_one(&mut self, w: usize, array_index: Option<u32>) -> bool {
        let workload = &self.snapshot.workloads[w];
        match place_unit(workload, self.usable, self.capacity) {
            Some((env, spot)) => {
                self.placements.push(Placement {
                    workload: w,
                    job: workload.job.clone(),
                    array_index,
                    node_index: None,
                    attempt: workload.attempt,
                    environment: self.snapshot.environments[env].name.clone(),
                    node: match spot {
                        Spot::Node(node) => Some(self.nodes[node].name.clone()),
                        Spot::Budget => None,
                    },
                });
                true
            }
            None => false,
        }
    }
}

/// One unit: the first usable environment (in queue order) with a node that fits, best fit
/// (or, in budget mode, with room left in its budget).
fn place_unit(
    workload: &Workload,
    environments: &[usize],
    capacity: &mut CapacityIndex,
) -> Option<(usize, Spot)> {
    let instance_type = workload.constraints.instance_type.as_deref();
    for &env in environments {
        if let Some(spot) = capacity.find(env, &workload.request, instance_type) {
            capacity.reserve(env, spot, &workload.request);
            return Some((env, spot));
        }
    }
    None
}

/// The environments a gang may use, in queue order: the usable ones that are not SPOT (AWS
/// Batch runs no multi-node job on Spot) and not in budget mode (the pass cannot reserve nodes
/// there).
fn gang_environments<'a>(
    snapshot: &'a Snapshot,
    usable: &'a [usize],
) -> impl Iterator<Item = usize> + 'a {
    usable.iter().copied().filter(|&e| {
        let env = &snapshot.environments[e];
        !env.spot && env.budget_milli_cpu.is_none()
    })
}

/// A whole gang in the first environment (queue order) where every member finds a node of its
/// own; the environment and the node of each member (aligned with `gang.members`).
fn place_gang(
    snapshot: &Snapshot,
    usable: &[usize],
    capacity: &mut CapacityIndex,
    gang: &Gang,
) -> Option<(usize, Vec<usize>)> {
    gang_environments(snapshot, usable).find_map(|env| {
        capacity
            .place_gang(env, &gang.members)
            .map(|nodes| (env, nodes))
    })
}

/// A gang that does not fit now holds, for the rest of the pass, the nodes it waits for in the
/// first environment (queue order) that has enough of them (see the module docs). Returns
/// whether it holds nodes.
fn hold_for_gang(
    snapshot: &Snapshot,
    usable: &[usize],
    capacity: &mut CapacityIndex,
    gang: &Gang,
) -> bool {
    gang_environments(snapshot, usable).any(|env| capacity.hold_for_gang(env, &gang.members))
}

/// Step 5: replaces verdicts of workloads no environment of their queue can ever run, and
/// of workloads waiting for room that cannot appear soon.
fn explain_unplaced(
    snapshot: &Snapshot,
    queue_index: &HashMap<&str, usize>,
    env_index: &HashMap<&str, usize>,
    verdicts: &mut [WorkloadVerdict],
) {
    // A gang is judged on its members, not on its main node's request: it is part of the key.
    type Key<'a> = (usize, Resources, Option<&'a str>, Option<&'a Gang>);
    let mut cache: HashMap<Key, Option<Unplaced>> = HashMap::new();
    let mut no_room: HashMap<Key, Option<Unplaced>> = HashMap::new();
    let mut ready_nodes: Option<Vec<Vec<&NodeSnapshot>>> = None;
    for (w, verdict) in verdicts.iter_mut().enumerate() {
        if verdict.unplaced.is_none() {
            continue;
        }
        let workload = &snapshot.workloads[w];
        let Some(&q) = queue_index.get(workload.queue.as_str()) else {
            continue;
        };
        let gang = match &workload.units {
            Units::Gang(gang) => Some(gang),
            _ => None,
        };
        let key = (
            q,
            workload.request,
            workload.constraints.instance_type.as_deref(),
            gang,
        );
        let never = cache
            .entry(key)
            .or_insert_with(|| never_runs(snapshot, &snapshot.queues[q], env_index, workload))
            .clone();
        if let Some(never) = never {
            verdict.unplaced = Some(never);
            continue;
        }
        if verdict.unplaced != Some(Unplaced::NoCapacity) {
            continue;
        }
        let ready =
            ready_nodes.get_or_insert_with(|| ready_nodes_by_environment(snapshot, env_index));
        let stuck = no_room
            .entry(key)
            .or_insert_with(|| {
                no_room_soon(snapshot, &snapshot.queues[q], env_index, ready, workload)
            })
            .clone();
        if let Some(stuck) = stuck {
            verdict.unplaced = Some(stuck);
        }
    }
}

/// The schedulable (Ready, not cordoned) nodes of each environment, by environment position.
fn ready_nodes_by_environment<'a>(
    snapshot: &'a Snapshot,
    env_index: &HashMap<&str, usize>,
) -> Vec<Vec<&'a NodeSnapshot>> {
    let mut ready = vec![Vec::new(); snapshot.environments.len()];
    for node in snapshot.nodes.iter().filter(|n| n.schedulable) {
        if let Some(&e) = node.environment.as_deref().and_then(|e| env_index.get(e)) {
            ready[e].push(node);
        }
    }
    ready
}

/// Can room for `workload` appear soon in some usable (enabled, valid) environment of `queue`?
/// It can where a Ready node could take the job once running work ends, or where a node is
/// starting. None: it can (or the queue has no usable environment: other verdicts say so).
pub fn no_room_soon(
    snapshot: &Snapshot,
    queue: &QueueSpec,
    env_index: &HashMap<&str, usize>,
    ready_nodes: &[Vec<&NodeSnapshot>],
    workload: &Workload,
) -> Option<Unplaced> {
    let usable: Vec<usize> = queue
        .environments
        .iter()
        .filter_map(|e| env_index.get(e.as_str()).copied())
        .filter(|&e| snapshot.environments[e].enabled && snapshot.environments[e].valid)
        .collect();
    if usable.is_empty() {
        return None;
    }
    let wanted_type = workload.constraints.instance_type.as_deref();
    let could_take = |n: &&NodeSnapshot| {
        wanted_type.is_none_or(|t| n.instance_type.as_deref() == Some(t))
            && workload.request.fits_in(&n.allocatable)
    };
    let room_soon = match &workload.units {
        // A gang needs a node of its own per member in one environment where it may run: room
        // appears once running work ends on enough Ready nodes that could take its members, or
        // once the nodes starting there make up the difference.
        Units::Gang(gang) => gang_environments(snapshot, &usable).any(|e| {
            let hosted = members_hosted(&gang.members, &ready_nodes[e]);
            hosted + snapshot.environments[e].starting_nodes as usize >= gang.members.len()
        }),
        // In budget mode the budget frees as admitted work ends, and nodes are the
        // kube-scheduler's (or Karpenter's) to find: work waits there without a verdict.
        _ => usable.iter().any(|&e| {
            let env = &snapshot.environments[e];
            env.budget_milli_cpu.is_some()
                || env.starting_nodes > 0
                || ready_nodes[e].iter().any(could_take)
        }),
    };
    if room_soon {
        return None;
    }
    let mut instance_types: Vec<&str> = usable
        .iter()
        .flat_map(|&e| {
            let shapes = snapshot.environments[e].shapes.iter().flatten();
            let nodes = ready_nodes[e]
                .iter()
                .filter_map(|n| n.instance_type.as_deref());
            shapes.map(|s| s.instance_type.as_str()).chain(nodes)
        })
        .filter(|t| wanted_type.is_none_or(|w| w == *t))
        .collect();
    instance_types.sort_unstable();
    instance_types.dedup();
    let instance_types = match (instance_types.is_empty(), wanted_type) {
        (false, _) => instance_types.join(", "),
        (true, Some(t)) => t.to_string(),
        (true, None) => "any".to_string(),
    };
    Some(Unplaced::InsufficientCapacity {
        no_ready_nodes: usable.iter().all(|&e| ready_nodes[e].is_empty()),
        environments: usable
            .iter()
            .map(|&e| snapshot.environments[e].name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
            .into(),
        instance_types: instance_types.into(),
    })
}

/// Can no environment of `queue` ever run `workload`? (None: it can, or we cannot tell.)
pub fn never_runs(
    snapshot: &Snapshot,
    queue: &QueueSpec,
    env_index: &HashMap<&str, usize>,
    workload: &Workload,
) -> Option<Unplaced> {
    let envs: Vec<&EnvironmentSpec> = queue
        .environments
        .iter()
        .filter_map(|e| {
            env_index
                .get(e.as_str())
                .map(|&i| &snapshot.environments[i])
        })
        .collect();
    if envs.is_empty() {
        return None;
    }
    match &workload.units {
        Units::Gang(gang) => gang_never_runs(snapshot, queue, &envs, gang),
        _ => request_never_runs(
            queue,
            &envs,
            &workload.request,
            workload.constraints.instance_type.as_deref(),
        ),
    }
}

/// Can no environment of `queue` (`envs`) ever run a pod of `request` (on `wanted_type`)?
fn request_never_runs(
    queue: &QueueSpec,
    envs: &[&EnvironmentSpec],
    request: &Resources,
    wanted_type: Option<&str>,
) -> Option<Unplaced> {
    let mut shapes_per_env = Vec::with_capacity(envs.len());
    for env in envs {
        shapes_per_env.push(env.shapes.as_ref()?);
    }
    let shape_ok = |s: &NodeShape| {
        wanted_type.is_none_or(|t| s.instance_type == t) && request.fits_in(&s.allocatable)
    };
    let env_names = envs
        .iter()
        .map(|e| e.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let fitting: Vec<&EnvironmentSpec> = envs
        .iter()
        .zip(&shapes_per_env)
        .filter(|(_, shapes)| shapes.iter().any(shape_ok))
        .map(|(e, _)| *e)
        .collect();
    if fitting.is_empty() {
        let message = match wanted_type {
            Some(t) if !shapes_per_env.iter().any(|shapes| shapes.iter().any(|s| s.instance_type == t)) => format!(
                "asks for instance type {t}, which no compute environment of queue {:?} ({env_names}) offers",
                queue.name
            ),
            _ => {
                let largest = shapes_per_env
                    .iter()
                    .flat_map(|shapes| shapes.iter())
                    .fold(Resources::ZERO, |acc, s| acc.max_each(&s.allocatable));
                format!(
                    "requests {} per pod, more than any instance type of the compute environments of queue {:?} ({env_names}) offers (largest: {})",
                    request, queue.name, largest
                )
            }
        };
        return Some(Unplaced::CannotRun {
            kind: BlockedKind::NoInstanceTypeFits,
            status_reason: reasons::job_resource_requirement().into(),
            message: message.into(),
        });
    }
    if fitting
        .iter()
        .all(|e| e.max_milli_cpu.is_some_and(|max| request.milli_cpu > max))
    {
        return Some(Unplaced::CannotRun {
            kind: BlockedKind::ExceedsMaxvCpus,
            status_reason: reasons::compute_environment_max_resource().into(),
            message: format!(
                "requests {}m CPU per pod, more than the maxvCpus of every compute environment of queue {:?} ({env_names})",
                request.milli_cpu, queue.name
            ).into(),
        });
    }
    None
}

/// Can no environment of `queue` (`envs`) ever run `gang`? In this order: every usable
/// environment (every environment, when none is usable) is SPOT ([`BlockedKind::MultiNodeOnSpot`]);
/// a member no instance type fits (as for a single job, naming the node); no environment that
/// is not SPOT can ever hold one node per member ([`BlockedKind::GangTooLarge`]): under its
/// `maxvCpus` when it has one (each member on the smallest of its shapes that fits), else on
/// the nodes it has. An environment in budget mode holds no gang. None when it can, or when an
/// environment's shapes are unknown.
fn gang_never_runs(
    snapshot: &Snapshot,
    queue: &QueueSpec,
    envs: &[&EnvironmentSpec],
    gang: &Gang,
) -> Option<Unplaced> {
    let names = |list: &[&EnvironmentSpec]| {
        list.iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let usable: Vec<&EnvironmentSpec> = envs
        .iter()
        .copied()
        .filter(|e| e.enabled && e.valid)
        .collect();
    let judged = if usable.is_empty() { envs } else { &usable };
    if judged.iter().all(|e| e.spot) {
        return Some(Unplaced::CannotRun {
            kind: BlockedKind::MultiNodeOnSpot,
            status_reason: reasons::multi_node_on_spot().into(),
            message: format!(
                "multi-node jobs do not run on SPOT compute environments, and every usable compute environment of queue {:?} ({}) is SPOT",
                queue.name,
                names(judged)
            ).into(),
        });
    }
    let mut seen = std::collections::HashSet::new();
    for (i, member) in gang.members.iter().enumerate() {
        let wanted_type = member.constraints.instance_type.as_deref();
        if !seen.insert((member.request, wanted_type)) {
            continue;
        }
        if let Some(Unplaced::CannotRun {
            kind,
            status_reason,
            message,
        }) = request_never_runs(queue, envs, &member.request, wanted_type)
        {
            return Some(Unplaced::CannotRun {
                kind,
                status_reason,
                message: format!("node {i} {message}").into(),
            });
        }
    }
    let wanted = gang.members.len();
    let mut limits = Vec::with_capacity(envs.len());
    for env in envs {
        if env.spot {
            limits.push(format!("{} is SPOT", env.name));
            continue;
        }
        if env.budget_milli_cpu.is_some() {
            limits.push(format!(
                "{} binds through the kube-scheduler and cannot reserve nodes",
                env.name
            ));
            continue;
        }
        let shapes = env.shapes.as_ref()?;
        let (hosted, limit) = match env.max_milli_cpu {
            Some(max) => (
                members_under_max(&gang.members, shapes, max),
                format!("maxvCpus {}", max / 1000),
            ),
            None => {
                let nodes: Vec<&NodeSnapshot> = snapshot
                    .nodes
                    .iter()
                    .filter(|n| n.environment.as_deref() == Some(env.name.as_str()))
                    .collect();
                (
                    members_hosted(&gang.members, &nodes),
                    format!("{} nodes", nodes.len()),
                )
            }
        };
        if hosted >= wanted {
            return None;
        }
        limits.push(format!("{} at most {hosted} ({limit})", env.name));
    }
    Some(Unplaced::CannotRun {
        kind: BlockedKind::GangTooLarge,
        status_reason: reasons::gang_too_large().into(),
        message: format!(
            "the multi-node job needs {wanted} nodes, a Kubernetes node of its own for each, more than any compute environment of queue {:?} can ever hold: {}",
            queue.name,
            limits.join("; ")
        ).into(),
    })
}

/// How many of `members` a pool may hold under `max_milli_cpu`, each on a node of the smallest
/// shape that fits it (0 when some member fits no shape: the gang cannot run there at all).
fn members_under_max(members: &[GangMember], shapes: &[NodeShape], max_milli_cpu: i64) -> usize {
    let mut costs = Vec::with_capacity(members.len());
    for member in members {
        let wanted_type = member.constraints.instance_type.as_deref();
        let cheapest = shapes
            .iter()
            .filter(|s| {
                wanted_type.is_none_or(|t| s.instance_type == t)
                    && member.request.fits_in(&s.allocatable)
            })
            .map(|s| s.allocatable.milli_cpu)
            .min();
        match cheapest {
            Some(cost) => costs.push(cost),
            None => return 0,
        }
    }
    costs.sort_unstable();
    let mut total = 0i64;
    costs
        .iter()
        .take_while(|&&cost| {
            total = total.saturating_add(cost);
            total <= max_milli_cpu
        })
        .count()
}

/// How many of `members` find a distinct node among `nodes` whose allocatable fits them and
/// whose instance type matches: largest members first, each on the smallest such node (GPU
/// members on GPU nodes, other members on nodes without GPUs first).
fn members_hosted(members: &[GangMember], nodes: &[&NodeSnapshot]) -> usize {
    let mut order: Vec<&GangMember> = members.iter().collect();
    order.sort_by(|a, b| capacity::largest_first(&a.request, &b.request));
    let mut by_size: Vec<&NodeSnapshot> = nodes.to_vec();
    by_size.sort_by(|a, b| {
        (a.allocatable.milli_cpu, a.allocatable.memory_mib, &a.name).cmp(&(
            b.allocatable.milli_cpu,
            b.allocatable.memory_mib,
            &b.name,
        ))
    });
    let mut taken = vec![false; by_size.len()];
    let mut hosted = 0;
    for member in order {
        let wanted_type = member.constraints.instance_type.as_deref();
        let fits = |k: usize, gpu: bool| {
            let n = by_size[k];
            !taken[k]
                && (n.allocatable.gpus > 0) == gpu
                && wanted_type.is_none_or(|t| n.instance_type.as_deref() == Some(t))
                && member.request.fits_in(&n.allocatable)
        };
        let passes: &[bool] = if member.request.gpus > 0 {
            &[true]
        } else {
            &[false, true]
        };
        let found = passes
            .iter()
            .find_map(|&gpu| (0..by_size.len()).find(|&k| fits(k, gpu)));
        if let Some(k) = found {
            taken[k] = true;
            hosted += 1;
        }
    }
    hosted
}

#[cfg(test)]
mod fair_share_tests;
#[cfg(test)]
mod tests;
