//! The job state machine: `reconcile(&JobView, now_ms) -> JobPlan`, pure.
//!
//! Data flow: the operator reads a Job, its pods, the jobs it depends on and its queue from
//! its stores and builds a [`JobView`]: the persisted [`JobRecord`] (the status in core form),
//! the [`JobSpec`] essentials, its own [`Admission`] verdict (definition and queue resolved?),
//! the observed [`PodView`]s, the queue's [`TimeLimitAction`]s, the scheduler's latest
//! [`Blocked`] verdict, the `dependsOn` graph around the job (cycles), the grace for missing
//! dependencies, and the API server's refusals of the job's pod creations. [`reconcile`] returns a [`JobPlan`]: the new record, the state changes
//! to announce as Events, the [`JobAction`]s to apply, when to look again, and what the
//! scheduler may place next ([`RunnableWork`]).
//!
//! Contract with the operator (this is what makes it safe to kill at any moment):
//! 1. write `plan.record` to the status first (skip the write when `plan.changed` is false);
//! 2. apply `plan.actions` only after that write succeeded (a `ReleasePod` may concern a result
//!    recorded in this very plan);
//! 3. re-run `reconcile` whenever anything changes, and at `plan.requeue_at_ms`.
//!
//! Invariants (tested): the same view and `now` give the same plan; an old observation never
//! moves the record backwards (terminal stays terminal; an attempt is recorded once; a retry
//! is the only way back to RUNNABLE, and it adds an attempt).
//!
//! States follow AWS Batch: SUBMITTED → PENDING (dependencies unmet) | RUNNABLE → STARTING (a
//! pod of the next attempt exists; the scheduler creates pods, not this machine) → RUNNING
//! (the container runs) → SUCCEEDED (exit 0) | FAILED | RUNNABLE (retry). Array jobs are
//! handled by [`mod@array`]; single jobs by the private `single` module; multi-node parallel
//! jobs (`spec.nodes`) by the private `multinode` module: the same states, driven by the main
//! node's pod (STARTING once it exists, RUNNING once it runs; its result is the attempt's), a
//! [`RunnableWork::Gang`] offered per attempt, the other nodes' pods asked for with
//! [`JobAction::CreateNodePods`] once the main node runs with an IP, every node's state in
//! [`JobPlan::nodes`], and a lost node under any pod of the gang failing the attempt.

pub mod array;
mod multinode;
mod pods;
mod single;

pub use array::{ArrayRecord, ChildStates, MAX_FAILED_CHILD_ATTEMPTS};

use crate::deps::{Dependency, DependencyGraph, DependencyTargets, Surroundings};
use crate::index_set::IndexSet;
use crate::pod_creation::CreationRefusal;
use crate::reasons;
use crate::retry::RetryStrategy;
use crate::state::{JobState, StatusSummary};
use serde::{Deserialize, Serialize};

/// The spec essentials the state machine needs (after the operator merged definition and
/// submission: retry strategy and timeout of the job override those of the definition).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobSpec {
    /// `arrayProperties.size` (2–10,000) for array jobs.
    pub array_size: Option<u32>,
    pub depends_on: Vec<Dependency>,
    /// Applies to the job, or to each array child.
    pub retry_strategy: RetryStrategy,
    /// `timeout.attemptDurationSeconds`; applies to each attempt (of each array child).
    pub attempt_duration_seconds: Option<i64>,
    /// `spec.terminate`: cancel a job that has not started, terminate one that has.
    pub terminate: Option<Terminate>,
    pub ttl_seconds_after_finished: Option<i64>,
    /// Multi-node parallel jobs: the gang's shape (after `nodeOverrides.numNodes`).
    pub nodes: Option<NodesSpec>,
}

/// The shape of a multi-node parallel job's gang.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodesSpec {
    /// `numNodes` (after `nodeOverrides.numNodes`), 1–1,000.
    pub num_nodes: u32,
    /// `mainNode`: the node whose pod starts first and whose exit decides the attempt.
    pub main_node: u32,
}

/// `spec.terminate`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Terminate {
    /// Becomes the status reason; a default is used when empty.
    pub reason: Option<String>,
    /// Only these array children (Barge's extension); `None` means the whole job.
    pub array_indices: Option<IndexSet>,
}

impl Terminate {
    /// The whole job, with `reason`.
    pub fn job(reason: &str) -> Terminate {
        Terminate {
            reason: Some(reason.to_string()),
            array_indices: None,
        }
    }

    /// The status reason to record.
    pub fn reason(&self) -> &str {
        match self.reason.as_deref() {
            Some(r) if !r.trim().is_empty() => r,
            _ => reasons::DEFAULT_TERMINATE_REASON,
        }
    }
}

/// The operator's verdict on the job's references (definition, queue).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Admission {
    /// Definition and queue resolved; the job may proceed.
    #[default]
    Admitted,
    /// Not yet (e.g. the definition does not exist yet): the job stays SUBMITTED with this reason.
    Waiting { reason: String },
    /// Never (e.g. an invalid definition): a job that has not started fails with this reason.
    Invalid { reason: String },
}

/// Why the scheduler could not place a RUNNABLE job. The operator names each kind with a
/// CamelCase condition reason (the job's `Schedulable=False` condition); plain "waiting for
/// room that running work or starting nodes will free" is no verdict at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockedKind {
    /// No usable compute environment of the queue has a Ready node, and none is starting one.
    NoReadyNodes,
    /// The usable environments have Ready nodes, but none that could ever take the job, and no
    /// node that could is starting.
    InsufficientCapacity,
    /// The queue is DISABLED.
    QueueDisabled,
    /// The queue does not exist (any more).
    QueueNotFound,
    /// The queue lists no compute environment that exists.
    NoComputeEnvironment,
    /// Every compute environment of the queue is DISABLED.
    ComputeEnvironmentsDisabled,
    /// Every compute environment of the queue is INVALID.
    ComputeEnvironmentsInvalid,
    /// A strict-FIFO queue waits for its head job.
    BehindQueueHead,
    /// No instance type of any compute environment of the queue fits the job.
    NoInstanceTypeFits,
    /// The job asks for more vCPUs than every compute environment's `maxvCpus`.
    ExceedsMaxvCpus,
    /// The job was placed but its pod could not be created (or rendered).
    PodCreationFailed,
    /// A multi-node job whose queue's usable compute environments are all SPOT.
    MultiNodeOnSpot,
    /// A multi-node job whose gang is larger than any compute environment of its queue can
    /// ever hold (one Kubernetes node per gang node).
    GangTooLarge,
}

/// The scheduler's latest verdict for a RUNNABLE job it could not place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub kind: BlockedKind,
    /// AWS-style status reason to show while RUNNABLE (e.g. `MISCONFIGURATION:...`), if any.
    pub status_reason: Option<String>,
    /// Human explanation for the job's condition.
    pub message: String,
}

/// `jobStateTimeLimitActions[].action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimeLimitActionKind {
    Cancel,
}

/// One `jobStateTimeLimitActions` entry of the job's queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeLimitAction {
    /// The status reason code it applies to, e.g. `MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT`;
    /// it matches status reasons that start with it (a trailing `*` is allowed and ignored).
    pub reason: String,
    /// The state it watches (AWS Batch: RUNNABLE only).
    pub state: JobState,
    pub max_time_seconds: i64,
    pub action: TimeLimitActionKind,
}

impl TimeLimitAction {
    /// A RUNNABLE/CANCEL action for `reason` after `max_time_seconds`.
    pub fn cancel_runnable(reason: &str, max_time_seconds: i64) -> TimeLimitAction {
        TimeLimitAction {
            reason: reason.to_string(),
            state: JobState::Runnable,
            max_time_seconds,
            action: TimeLimitActionKind::Cancel,
        }
    }

    /// Does a job's status reason fall under this action?
    pub fn matches(&self, status_reason: &str) -> bool {
        let prefix = self.reason.strip_suffix('*').unwrap_or(&self.reason);
        !prefix.is_empty() && status_reason.starts_with(prefix)
    }
}

/// A pod's phase, as Kubernetes reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl PodPhase {
    /// Parses `status.phase`; anything unrecognised is `Unknown`.
    pub fn parse(text: &str) -> PodPhase {
        match text {
            "Pending" => PodPhase::Pending,
            "Running" => PodPhase::Running,
            "Succeeded" => PodPhase::Succeeded,
            "Failed" => PodPhase::Failed,
            _ => PodPhase::Unknown,
        }
    }
}

/// What the operator observed of one of the job's pods (from its labels and status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    /// `batch.barge.dev/attempt` (1-based).
    pub attempt: u32,
    /// `batch.barge.dev/array-index`, for array children.
    pub array_index: Option<u32>,
    /// `batch.barge.dev/node-index`, for the nodes of multi-node jobs.
    pub node_index: Option<u32>,
    /// `status.podIP` (multi-node jobs: the main node's address for the other nodes).
    pub pod_ip: Option<String>,
    pub phase: PodPhase,
    pub node_name: Option<String>,
    /// When the (essential) container started running.
    pub started_at_ms: Option<i64>,
    /// When the (essential) container terminated.
    pub finished_at_ms: Option<i64>,
    pub exit_code: Option<i32>,
    /// The container's termination reason (`OOMKilled`, `Error`, ...): `onReason`.
    pub container_reason: Option<String>,
    /// `status.reason` of the pod (`Evicted`, `DeadlineExceeded`, ...).
    pub pod_reason: Option<String>,
    /// `status.message` of the pod.
    pub pod_message: Option<String>,
    /// The container's `state.waiting.reason` while it is not running (`ImagePullBackOff`, ...).
    pub waiting_reason: Option<String>,
    /// The container's `state.waiting.message`.
    pub waiting_message: Option<String>,
    /// `metadata.deletionTimestamp`: the pod is being deleted; SIGKILL is due at this time.
    pub deletion_timestamp_ms: Option<i64>,
    /// `status.startTime + spec.activeDeadlineSeconds`: when the kubelet stops the pod (Barge
    /// sets the deadline to stop a timed-out or terminated attempt without deleting its pod).
    pub active_deadline_at_ms: Option<i64>,
    /// The pod's node disappeared (node object gone, or a `DisruptionTarget` condition saying so).
    pub node_lost: bool,
    /// Barge's `batch.barge.dev/attempt-result` finalizer is still on the pod.
    pub has_finalizer: bool,
}

/// One finished attempt, as kept in the job's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    /// 1-based attempt number.
    pub attempt: u32,
    /// The array child it belongs to (array jobs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_index: Option<u32>,
    pub pod_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The container's reason (`onReason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    pub stopped_at_ms: i64,
    pub status_reason: String,
}

/// The persisted state of a job (what the operator stores in `status`, in core form).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    pub state: JobState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub created_at_ms: i64,
    /// When the job last entered RUNNABLE (for retries: the retry time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runnable_since_ms: Option<i64>,
    /// Since when `status_reason` holds the scheduler's blocked reason (time-limit actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_since_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at_ms: Option<i64>,
    /// Finished attempts of a single job, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptRecord>,
    /// Children bookkeeping of an array job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array: Option<ArrayRecord>,
}

impl JobRecord {
    /// A freshly submitted job.
    pub fn submitted(created_at_ms: i64) -> JobRecord {
        JobRecord {
            state: JobState::Submitted,
            status_reason: None,
            created_at_ms,
            runnable_since_ms: None,
            blocked_since_ms: None,
            started_at_ms: None,
            stopped_at_ms: None,
            attempts: Vec::new(),
            array: None,
        }
    }

    /// True once a retry happened (retried jobs go first in their queue).
    pub fn is_retried(&self) -> bool {
        !self.attempts.is_empty()
    }

    /// True once a pod of the job (of any attempt, of any array child) was placed on a node: a
    /// container started, a recorded attempt names its node, or an array child succeeded. (An
    /// attempt whose pod the API server refused is recorded without a node.)
    pub fn was_placed(&self) -> bool {
        let placed = |a: &AttemptRecord| a.node_name.is_some() || a.started_at_ms.is_some();
        self.started_at_ms.is_some()
            || self.attempts.iter().any(placed)
            || self
                .array
                .as_ref()
                .is_some_and(|a| !a.succeeded.is_empty() || a.failed_attempts.iter().any(placed))
    }
}

/// Everything [`reconcile`] looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobView {
    /// The Job object's name (pod names derive from it).
    pub name: String,
    pub spec: JobSpec,
    pub record: JobRecord,
    pub admission: Admission,
    /// Jobs named in `dependsOn`, keyed by name.
    pub dependencies: DependencyTargets,
    /// The job's pods (by its `batch.barge.dev/job-uid` label).
    pub pods: Vec<PodView>,
    /// The queue's `jobStateTimeLimitActions`.
    pub time_limit_actions: Vec<TimeLimitAction>,
    /// The scheduler's latest verdict, when it could not place the job.
    pub blocked: Option<Blocked>,
    /// The `dependsOn` graph around the job (for cycles); may be empty when the job does not
    /// wait for dependencies.
    pub dependency_graph: DependencyGraph,
    /// How long a job named in `dependsOn` may be missing before this job fails.
    pub missing_dependency_grace_ms: i64,
    /// Whether the operator's view holds every job. Early in a start-up it holds only the
    /// unfinished ones (the finished history is still being listed): a job named in
    /// `dependsOn` that is missing then may be a finished one, so nothing is decided on it.
    pub all_jobs_listed: bool,
    /// The API server's refusals of this job's pod creations, if any.
    pub creation_refusal: Option<CreationRefusal>,
    /// How long a finished job's pods stay after it stopped (`--finished-pod-retention-seconds`);
    /// None keeps them until the job is deleted.
    pub finished_pod_retention_ms: Option<i64>,
}

/// One state change, to announce as a Kubernetes Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub from: JobState,
    pub to: JobState,
    pub reason: Option<String>,
}

/// Why Barge stops or deletes a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    /// The attempt exceeded `attemptDurationSeconds`.
    Timeout,
    /// `spec.terminate` asked for it.
    Terminate,
    /// It was asked to stop long ago and is still there.
    ForceDelete,
    /// Its attempt was already decided (or its job/child is finished): it must not run on.
    Superseded,
    /// Its job finished longer ago than the finished pods' retention.
    Retention,
}

/// What the operator must do (after persisting the record).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobAction {
    /// Delete the pod with this grace period (SIGTERM, SIGKILL when it ends).
    DeletePod {
        name: String,
        grace_seconds: i64,
        reason: DeleteReason,
    },
    /// Stop the pod's containers but keep the pod (its record and log): set its
    /// `spec.activeDeadlineSeconds` to the time it has run (see
    /// [`crate::timeout::active_deadline_seconds_to_stop_now`]), so that the kubelet stops it
    /// now (SIGTERM, SIGKILL after its grace period) and marks it Failed (`DeadlineExceeded`).
    StopPod { name: String, reason: DeleteReason },
    /// Remove Barge's result finalizer: the pod's result is in the record.
    ReleasePod { name: String },
    /// `ttlSecondsAfterFinished` has passed: delete the Job.
    DeleteJob,
    /// Multi-node jobs: the main node of `attempt` runs at `main_pod_ip`; create the pods of
    /// the other nodes `indices` (on the Kubernetes nodes reserved for them when the gang was
    /// placed).
    CreateNodePods {
        attempt: u32,
        main_pod_ip: String,
        indices: Vec<u32>,
    },
}

/// A batch of array children the scheduler may place, all on the same attempt number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnableGroup {
    pub attempt: u32,
    /// True for children on a retry (they go first in their queue).
    pub retried: bool,
    pub indices: IndexSet,
}

/// What the scheduler may place for this job now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RunnableWork {
    #[default]
    Nothing,
    /// A single job's next attempt.
    Single { attempt: u32, retried: bool },
    /// Array children, grouped by attempt number (retried groups first).
    Array { groups: Vec<RunnableGroup> },
    /// A multi-node job's next attempt: its whole gang, placed all or nothing.
    Gang { attempt: u32, retried: bool },
}

/// Where the nodes of a multi-node job's current attempt stand (for its status).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStates {
    /// The attempt the states describe.
    pub attempt: u32,
    /// One state per node index: RUNNABLE (no pod yet), STARTING, RUNNING, SUCCEEDED, FAILED.
    pub states: Vec<JobState>,
    /// The main node's pod, once it exists.
    pub main_pod: Option<String>,
    /// The main node's pod IP, once it has one.
    pub main_pod_ip: Option<String>,
}

/// The outcome of [`reconcile`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobPlan {
    pub record: JobRecord,
    /// `record` differs from the input record (write it).
    pub changed: bool,
    pub events: Vec<StateChange>,
    pub actions: Vec<JobAction>,
    /// Reconcile again at this time (unix ms), if nothing else happens first.
    pub requeue_at_ms: Option<i64>,
    pub runnable: RunnableWork,
    /// Array jobs: children per state (`arrayProperties.statusSummary`).
    pub summary: Option<StatusSummary>,
    /// Array jobs: which children are in which state.
    pub children: Option<ChildStates>,
    /// Multi-node jobs: the nodes of the current (or last) attempt.
    pub nodes: Option<NodeStates>,
    /// Why the job is not progressing, for a condition (waiting for a dependency, blocked...).
    pub waiting: Option<String>,
    /// The scheduler's verdict the plan applied (RUNNABLE work only), for the condition reason.
    pub blocked: Option<BlockedKind>,
}

/// The job's dependencies with what the operator knows around them (graph, missing grace).
pub(crate) fn surroundings(view: &JobView) -> Surroundings<'_> {
    Surroundings {
        own_name: &view.name,
        deps: &view.spec.depends_on,
        targets: &view.dependencies,
        graph: &view.dependency_graph,
        waiting_since_ms: view.record.created_at_ms,
        missing_grace_ms: view.missing_dependency_grace_ms,
        all_jobs_listed: view.all_jobs_listed,
    }
}

impl JobView {
    /// A job named in `dependsOn` is missing while the view does not hold every job yet: it may
    /// be a finished job not listed yet, so the job's dependencies cannot be judged.
    pub fn awaits_unlisted_dependency(&self) -> bool {
        !self.all_jobs_listed
            && self
                .spec
                .depends_on
                .iter()
                .filter_map(|d| d.job_name.as_deref())
                .any(|name| {
                    matches!(
                        self.dependencies.get(name),
                        None | Some(crate::deps::DependencyTarget::Missing)
                    )
                })
    }
}

/// Decides the next step of a job. Pure: same view and `now_ms`, same plan.
pub fn reconcile(view: &JobView, now_ms: i64) -> JobPlan {
    let mut draft = Draft::new(view.record.clone(), now_ms);
    if view.spec.array_size.is_some() || view.record.array.is_some() {
        array::reconcile_array(view, &mut draft);
    } else if let Some(shape) = view.spec.nodes {
        multinode::reconcile_multinode(view, shape, &mut draft);
    } else {
        single::reconcile_single(view, &mut draft);
    }
    draft.finish(&view.record)
}

/// The plan under construction, shared by the single and array paths.
pub(crate) struct Draft {
    pub record: JobRecord,
    pub now_ms: i64,
    pub events: Vec<StateChange>,
    pub actions: Vec<JobAction>,
    pub wake_at_ms: Option<i64>,
    pub runnable: RunnableWork,
    pub summary: Option<StatusSummary>,
    pub children: Option<ChildStates>,
    pub nodes: Option<NodeStates>,
    pub waiting: Option<String>,
    pub blocked: Option<BlockedKind>,
}

impl Draft {
    fn new(record: JobRecord, now_ms: i64) -> Draft {
        Draft {
            record,
            now_ms,
            events: Vec::new(),
            actions: Vec::new(),
            wake_at_ms: None,
            runnable: RunnableWork::Nothing,
            summary: None,
            children: None,
            nodes: None,
            waiting: None,
            blocked: None,
        }
    }

    /// Moves the job to `to` with `reason`, announcing the change and keeping the timestamps.
    pub fn transition(&mut self, to: JobState, reason: Option<String>) {
        let from = self.record.state;
        if from.is_terminal() {
            return;
        }
        if from != to {
            self.events.push(StateChange {
                from,
                to,
                reason: reason.clone(),
            });
            self.record.state = to;
            if to == JobState::Runnable {
                self.record.runnable_since_ms = Some(self.now_ms);
            }
        }
        if to.is_terminal() {
            self.record.stopped_at_ms = Some(self.now_ms);
        }
        self.record.blocked_since_ms = None;
        self.record.status_reason = reason;
    }

    /// Ends the job FAILED with `reason`.
    pub fn fail(&mut self, reason: String) {
        self.transition(JobState::Failed, Some(reason));
    }

    pub fn act(&mut self, action: JobAction) {
        if !self.actions.contains(&action) {
            self.actions.push(action);
        }
    }

    pub fn wake_at(&mut self, at_ms: i64) {
        self.wake_at_ms = Some(self.wake_at_ms.map_or(at_ms, |w| w.min(at_ms)));
    }

    /// Applies the scheduler's blocked verdict and the queue's time-limit actions to a job
    /// that is RUNNABLE. Returns true when a time-limit action cancelled it.
    pub fn apply_blocked(&mut self, view: &JobView) -> bool {
        if self.record.state != JobState::Runnable {
            return false;
        }
        let Some(blocked) = &view.blocked else {
            if self.record.blocked_since_ms.take().is_some() {
                self.record.status_reason = None;
            }
            return false;
        };
        self.waiting = Some(blocked.message.clone());
        self.blocked = Some(blocked.kind);
        let Some(reason) = &blocked.status_reason else {
            if self.record.blocked_since_ms.take().is_some() {
                self.record.status_reason = None;
            }
            return false;
        };
        if self.record.status_reason.as_ref() != Some(reason)
            || self.record.blocked_since_ms.is_none()
        {
            self.record.status_reason = Some(reason.clone());
            self.record.blocked_since_ms = Some(self.now_ms);
        }
        let since = self.record.blocked_since_ms.unwrap_or(self.now_ms);
        for action in &view.time_limit_actions {
            if action.state != JobState::Runnable || !action.matches(reason) {
                continue;
            }
            let due = since.saturating_add(action.max_time_seconds.saturating_mul(1000));
            if self.now_ms >= due {
                return true;
            }
            self.wake_at(due);
        }
        false
    }

    /// The reason a time-limit action cancels with (the first matching action's code).
    pub fn time_limit_reason(view: &JobView, status_reason: &str) -> String {
        let code = view
            .time_limit_actions
            .iter()
            .find(|a| a.matches(status_reason))
            .map(|a| a.reason.trim_end_matches('*').to_string())
            .unwrap_or_else(|| status_reason.to_string());
        reasons::canceled_by_time_limit(&code)
    }

    /// TTL handling for a finished job, and the retention of its pods.
    pub fn apply_ttl(&mut self, view: &JobView) {
        self.apply_pod_retention(view);
        let (Some(ttl), Some(stopped)) = (
            view.spec.ttl_seconds_after_finished,
            self.record.stopped_at_ms,
        ) else {
            return;
        };
        let due = stopped.saturating_add(ttl.saturating_mul(1000));
        if self.now_ms >= due {
            self.act(JobAction::DeleteJob);
        } else {
            self.wake_at(due);
        }
    }

    /// The pods of a finished job go once `finished_pod_retention_ms` has passed since it
    /// stopped: their results are in the record, and each one kept costs the API server and
    /// the operator's pod cache for ever. Only pods that exited and were released (no result
    /// finalizer) go; one still held waits for its release, which triggers the next reconcile.
    fn apply_pod_retention(&mut self, view: &JobView) {
        let (Some(retention), Some(stopped)) =
            (view.finished_pod_retention_ms, self.record.stopped_at_ms)
        else {
            return;
        };
        let expired: Vec<&PodView> = view
            .pods
            .iter()
            .filter(|p| {
                pods::has_exited(p) && !p.has_finalizer && p.deletion_timestamp_ms.is_none()
            })
            .collect();
        if expired.is_empty() {
            return;
        }
        let due = stopped.saturating_add(retention.max(0));
        if self.now_ms < due {
            self.wake_at(due);
            return;
        }
        for pod in expired {
            self.act(JobAction::DeletePod {
                name: pod.name.clone(),
                grace_seconds: 0,
                reason: DeleteReason::Retention,
            });
        }
    }

    fn finish(self, input: &JobRecord) -> JobPlan {
        let changed = self.record != *input;
        JobPlan {
            changed,
            record: self.record,
            events: self.events,
            actions: self.actions,
            requeue_at_ms: self.wake_at_ms,
            runnable: self.runnable,
            summary: self.summary,
            children: self.children,
            nodes: self.nodes,
            waiting: self.waiting,
            blocked: self.blocked,
        }
    }
}

#[cfg(test)]
mod tests;
