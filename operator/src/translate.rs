//! Translation between Barge's Job objects and barge-core's job types (pure).
//!
//! Data flow, in the job controller: the Job's status → [`record_from_status`] → the core's
//! `JobRecord`; the Job's spec and its resolved definition → [`core_spec`]; jobs named in
//! `dependsOn` → [`dependency_target`]; the queue → [`time_limit_actions`]. barge-core decides,
//! and [`build_status`] turns its `JobPlan` back into the Job's status, with the conditions
//! [`job_conditions`] derives from the plan alone. Nothing here reads a clock or a cache: every
//! input is an argument.
//!
//! The Job's conditions (README, "Conditions and reasons"; docs/gitops.md for what GitOps tools
//! make of them):
//! - `Ready`: True/`JobSucceeded` once SUCCEEDED — a batch job is done, not serving, so it is
//!   Ready (kstatus `Current`, Argo CD `Healthy`) only when it succeeded; False/`JobFailed` once
//!   FAILED; False/`InProgress` before (kstatus `InProgress`: Flux's `wait` waits for the job).
//! - `Stalled`: True/`JobFailed` once FAILED (message: the status reason), absent otherwise
//!   (kstatus `Failed`: Flux's `wait` stops at once instead of timing out).
//! - `Succeeded`: True/`JobSucceeded` once SUCCEEDED; False/`JobFailed` once FAILED;
//!   False/`InProgress` before.
//! - `Failed`: True/`JobFailed` once FAILED (message: the status reason); False/`JobSucceeded`
//!   once SUCCEEDED; False/`InProgress` before.
//! - `Schedulable`: True/`Placed` once a pod of the current attempt exists (STARTING, RUNNING),
//!   and on a finished job that ran; False otherwise, with why: the admission wait of a SUBMITTED
//!   job, `DependenciesPending`, `WaitingForCapacity` (RUNNABLE, room may appear), the
//!   scheduler's verdict (`NoReadyNodes`, `InsufficientCapacity`, `NoInstanceTypeFits`, ...),
//!   or `NeverPlaced` for a finished job no pod was ever created for.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;

use barge_core::deps::{Dependency, DependencyTarget, DependencyType as CoreDependencyType};
use barge_core::index_set::IndexSet;
use barge_core::job::{
    ArrayRecord, AttemptRecord, BlockedKind, JobPlan, JobRecord, JobSpec as CoreJobSpec,
    NodeStates, NodesSpec, Terminate, TimeLimitAction,
};
use barge_core::retry::{EvaluateOnExit, RetryStrategy as CoreRetryStrategy};
use barge_core::state::{JobState, StatusSummary};
use barge_crds::consts::{
    CONDITION_FAILED, CONDITION_READY, CONDITION_SCHEDULABLE, CONDITION_STALLED,
    CONDITION_SUCCEEDED, REASON_COMPUTE_ENVIRONMENTS_DISABLED, REASON_COMPUTE_ENVIRONMENTS_INVALID,
    REASON_COMPUTE_ENVIRONMENT_NOT_FOUND, REASON_DEPENDENCIES_PENDING, REASON_EXCEEDS_MAX_VCPUS,
    REASON_GANG_TOO_LARGE, REASON_INSUFFICIENT_CAPACITY, REASON_IN_PROGRESS, REASON_JOB_FAILED,
    REASON_JOB_QUEUE_DISABLED, REASON_JOB_QUEUE_NOT_FOUND, REASON_JOB_SUCCEEDED,
    REASON_MULTI_NODE_ON_SPOT, REASON_NEVER_PLACED, REASON_NO_INSTANCE_TYPE_FITS,
    REASON_NO_READY_NODES, REASON_PLACED, REASON_POD_CREATION_FAILED, REASON_SUBMITTED,
    REASON_WAITING_FOR_CAPACITY, REASON_WAITING_FOR_QUEUE_HEAD,
};
use barge_crds::job::{
    ArrayStatus, AttemptContainerDetail, AttemptDetail, ChildAttempt, DependencyType,
    JobStatusCounts, NodeGroupStatus, NodePropertiesStatus, ResolvedJobDefinition,
    RetryingChildren,
};
use barge_crds::resources::{RetryAction, RetryStrategy};
use barge_crds::{Job, JobDefinitionSpec, JobQueue, JobStatus, JobStatusDetail};

use crate::pods::{node_layout, service_name, NodeLayout, RenderError};
use crate::status::{merge_conditions, DesiredCondition};

/// The core state of a recorded status.
pub fn job_state(status: JobStatus) -> JobState {
    match status {
        JobStatus::Submitted => JobState::Submitted,
        JobStatus::Pending => JobState::Pending,
        JobStatus::Runnable => JobState::Runnable,
        JobStatus::Starting => JobState::Starting,
        JobStatus::Running => JobState::Running,
        JobStatus::Succeeded => JobState::Succeeded,
        JobStatus::Failed => JobState::Failed,
    }
}

/// The API spelling of a core state.
pub fn crd_state(state: JobState) -> JobStatus {
    match state {
        JobState::Submitted => JobStatus::Submitted,
        JobState::Pending => JobStatus::Pending,
        JobState::Runnable => JobStatus::Runnable,
        JobState::Starting => JobStatus::Starting,
        JobState::Running => JobStatus::Running,
        JobState::Succeeded => JobStatus::Succeeded,
        JobState::Failed => JobStatus::Failed,
    }
}

/// Unix milliseconds of an API timestamp.
pub fn ms_of(time: &Time) -> i64 {
    time.0.as_millisecond()
}

/// An API timestamp of unix milliseconds (clamped to the representable range).
pub fn time_of(ms: i64) -> Time {
    Time(jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
}

/// The state-machine essentials of a job: the job's retry strategy and timeout override the
/// definition's; a multi-node job's gang shape (`numNodes` after `nodeOverrides`, `mainNode`).
/// Err: a spec the API server should have refused (an old object, a skipped webhook), or a
/// multi-node job whose nodes cannot be laid out ([`node_layout`]) — the job fails with this
/// message instead of hanging. Without the definition (a finished job), a multi-node job's
/// shape is the one its status recorded.
pub fn core_spec(job: &Job, definition: Option<&JobDefinitionSpec>) -> Result<CoreJobSpec, String> {
    let spec = &job.spec;
    let nodes = match definition {
        Some(d) if d.node_properties.is_some() => {
            let layout = node_layout(job, d).map_err(|e| e.to_string())?;
            Some(NodesSpec {
                num_nodes: layout.num_nodes,
                main_node: layout.main_node,
            })
        }
        Some(_) if spec.node_overrides.is_some() => {
            return Err(RenderError::NodeOverridesWithoutNodes.to_string())
        }
        Some(_) => None,
        None => recorded_nodes(job),
    };
    let array_size = match &spec.array_properties {
        Some(props) => {
            let size = u32::try_from(props.size)
                .map_err(|_| format!("arrayProperties.size {} is negative", props.size))?;
            barge_core::job::array::validate_size(size).map_err(|e| e.to_string())?;
            Some(size)
        }
        None => None,
    };
    let depends_on = spec
        .depends_on
        .iter()
        .map(|d| match (d.r#type, d.job_name.as_deref()) {
            (Some(DependencyType::Sequential), _) => Ok(Dependency::sequential()),
            (Some(DependencyType::NToN), Some(name)) => Ok(Dependency::n_to_n(name)),
            (None, Some(name)) => Ok(Dependency::standard(name)),
            (_, None) => Err("a dependsOn entry without jobName must be SEQUENTIAL".to_string()),
        })
        .collect::<Result<Vec<_>, String>>()?;
    if depends_on
        .iter()
        .any(|d| d.kind == CoreDependencyType::Sequential)
        && array_size.is_none()
    {
        return Err("a SEQUENTIAL dependency needs arrayProperties".into());
    }
    let retry = spec
        .retry_strategy
        .as_ref()
        .or(definition.and_then(|d| d.retry_strategy.as_ref()));
    let retry_strategy = match retry {
        Some(r) => core_retry_strategy(r)?,
        None => CoreRetryStrategy::default(),
    };
    let attempt_duration_seconds = spec
        .timeout
        .as_ref()
        .and_then(|t| t.attempt_duration_seconds)
        .or_else(|| {
            definition
                .and_then(|d| d.timeout.as_ref())
                .and_then(|t| t.attempt_duration_seconds)
        })
        .map(i64::from);
    let terminate = match &spec.terminate {
        Some(t) => Some(Terminate {
            reason: Some(t.reason.clone()),
            array_indices: t
                .array_indices
                .as_deref()
                .map(IndexSet::parse)
                .transpose()
                .map_err(|e| format!("terminate.arrayIndices: {e}"))?,
        }),
        None => None,
    };
    Ok(CoreJobSpec {
        nodes,
        array_size,
        depends_on,
        retry_strategy,
        attempt_duration_seconds,
        terminate,
        ttl_seconds_after_finished: spec.ttl_seconds_after_finished.map(i64::from),
    })
}

/// The gang shape a multi-node job's status recorded.
fn recorded_nodes(job: &Job) -> Option<NodesSpec> {
    let recorded = job.status.as_ref()?.node_properties.as_ref()?;
    Some(NodesSpec {
        num_nodes: u32::try_from(recorded.num_nodes).ok().filter(|n| *n > 0)?,
        main_node: u32::try_from(recorded.main_node).ok()?,
    })
}

fn core_retry_strategy(r: &RetryStrategy) -> Result<CoreRetryStrategy, String> {
    let attempts = u32::try_from(r.attempts.unwrap_or(1))
        .map_err(|_| "retryStrategy.attempts must be positive".to_string())?;
    let rules = r
        .evaluate_on_exit
        .iter()
        .map(|e| {
            let action = match e.action {
                RetryAction::Retry => "RETRY",
                RetryAction::Exit => "EXIT",
            };
            EvaluateOnExit::parse(
                e.on_exit_code.as_deref(),
                e.on_reason.as_deref(),
                e.on_status_reason.as_deref(),
                action,
            )
        })
        .collect::<barge_core::Result<Vec<_>>>()
        .map_err(|e| format!("retryStrategy.evaluateOnExit: {e}"))?;
    CoreRetryStrategy::new(attempts, rules).map_err(|e| format!("retryStrategy: {e}"))
}

/// The job's record as persisted in its status (a fresh SUBMITTED record when there is none).
pub fn record_from_status(job: &Job) -> JobRecord {
    let created_at_ms = job
        .metadata
        .creation_timestamp
        .as_ref()
        .map(ms_of)
        .unwrap_or_default();
    let Some(status) = job.status.as_ref().filter(|s| s.status.is_some()) else {
        return JobRecord::submitted(created_at_ms);
    };
    let state = job_state(status.status.unwrap_or(JobStatus::Submitted));
    // A RUNNABLE job's status reason is the scheduler's blocked reason; while it shows, the
    // Schedulable condition's transition time says since when (`build_status` keeps it so):
    // the clock of `jobStateTimeLimitActions`, which must survive an operator restart.
    let blocked_since_ms = status
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_SCHEDULABLE && c.status == "False")
        .filter(|_| state == JobState::Runnable && status.status_reason.is_some())
        .map(|c| ms_of(&c.last_transition_time));
    JobRecord {
        state,
        status_reason: status.status_reason.clone(),
        created_at_ms: status.created_at.as_ref().map_or(created_at_ms, ms_of),
        runnable_since_ms: None,
        blocked_since_ms,
        started_at_ms: status.started_at.as_ref().map(ms_of),
        stopped_at_ms: status.stopped_at.as_ref().map(ms_of),
        attempts: status
            .attempts
            .iter()
            .enumerate()
            .map(|(i, a)| attempt_record(a, u32::try_from(i + 1).unwrap_or(u32::MAX), None))
            .collect(),
        array: status.array_properties.as_ref().map(array_record),
    }
}

fn attempt_record(a: &AttemptDetail, attempt: u32, array_index: Option<u32>) -> AttemptRecord {
    AttemptRecord {
        attempt,
        array_index,
        pod_name: a.container.pod_name.clone().unwrap_or_default(),
        node_name: a.container.node_name.clone(),
        exit_code: a.container.exit_code,
        reason: a.container.reason.clone(),
        started_at_ms: a.started_at.as_ref().map(ms_of),
        stopped_at_ms: a.stopped_at.as_ref().map(ms_of).unwrap_or_default(),
        status_reason: a.status_reason.clone().unwrap_or_default(),
    }
}

fn attempt_detail(a: &AttemptRecord) -> AttemptDetail {
    AttemptDetail {
        container: AttemptContainerDetail {
            exit_code: a.exit_code,
            reason: a.reason.clone(),
            pod_name: Some(a.pod_name.clone()).filter(|p| !p.is_empty()),
            node_name: a.node_name.clone(),
            log_stream_name: None,
        },
        started_at: a.started_at_ms.map(time_of),
        stopped_at: Some(time_of(a.stopped_at_ms)),
        status_reason: Some(a.status_reason.clone()).filter(|r| !r.is_empty()),
    }
}

fn array_record(a: &ArrayStatus) -> ArrayRecord {
    let parse = |s: &str| IndexSet::parse(s).unwrap_or_default();
    let mut prior_attempts = std::collections::BTreeMap::<u32, IndexSet>::new();
    for group in &a.retrying {
        if let Ok(attempts) = u32::try_from(group.attempts) {
            let set = prior_attempts.entry(attempts).or_default();
            *set = set.union(&parse(&group.indices));
        }
    }
    ArrayRecord {
        size: u32::try_from(a.size).unwrap_or_default(),
        succeeded: parse(&a.succeeded_indices),
        failed: parse(&a.failed_indices),
        terminated: parse(&a.terminated_indices),
        prior_attempts,
        failed_attempts: a
            .failed_attempts
            .iter()
            .map(|c| {
                attempt_record(
                    &c.attempt,
                    u32::try_from(c.attempts).unwrap_or_default(),
                    u32::try_from(c.index).ok(),
                )
            })
            .collect(),
        failed_attempts_omitted: 0,
    }
}

fn counts(summary: &StatusSummary) -> JobStatusCounts {
    let mut counts = JobStatusCounts::default();
    for state in JobState::ALL {
        *counts.get_mut(crd_state(state)) = i32::try_from(summary.get(state)).unwrap_or(i32::MAX);
    }
    counts
}

fn array_status(record: &ArrayRecord, summary: Option<&StatusSummary>) -> ArrayStatus {
    let size = i32::try_from(record.size).unwrap_or(i32::MAX);
    let done = record.done_count();
    ArrayStatus {
        size,
        status_summary: summary.map(counts).unwrap_or_default(),
        progress: Some(format!("{done}/{}", record.size)),
        succeeded_indices: record.succeeded.to_string(),
        failed_indices: record.failed.to_string(),
        terminated_indices: record.terminated.to_string(),
        retrying: record
            .prior_attempts
            .iter()
            .filter(|(_, set)| !set.is_empty())
            .map(|(attempts, set)| RetryingChildren {
                attempts: i32::try_from(*attempts).unwrap_or(i32::MAX),
                indices: set.to_string(),
            })
            .collect(),
        failed_attempts: record
            .failed_attempts
            .iter()
            .map(|a| ChildAttempt {
                index: a
                    .array_index
                    .and_then(|i| i32::try_from(i).ok())
                    .unwrap_or_default(),
                attempts: i32::try_from(a.attempt).unwrap_or(i32::MAX),
                attempt: attempt_detail(a),
            })
            .collect(),
    }
}

/// What the job's status shows besides the record.
pub struct StatusInputs<'a> {
    pub resolved: Option<ResolvedJobDefinition>,
    pub compute_environment: Option<String>,
    /// Attempts started so far (finished ones plus a live one), for the printer column.
    pub attempt_count: Option<i32>,
    /// The condition reason of a SUBMITTED job's admission wait (None: `Submitted`).
    pub waiting_reason: Option<&'a str>,
    pub now_ms: i64,
}

/// `status.nodeProperties` of a multi-node job: the shape, "R/N nodes" with R the nodes
/// RUNNING, the main node's pod and IP, the headless Service, and per node group (each
/// `nodeRangeProperties` entry that decides some node) its nodes per state.
pub fn node_properties_status(
    job_name: &str,
    nodes: &NodeStates,
    layout: &NodeLayout,
) -> NodePropertiesStatus {
    let running = nodes
        .states
        .iter()
        .filter(|s| **s == JobState::Running)
        .count();
    let to_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    NodePropertiesStatus {
        num_nodes: to_i32(layout.num_nodes),
        main_node: to_i32(layout.main_node),
        progress: Some(format!("{running}/{} nodes", layout.num_nodes)),
        main_node_pod_name: nodes.main_pod.clone(),
        main_node_private_ipv4_address: nodes.main_pod_ip.clone(),
        service_name: Some(service_name(job_name)),
        node_groups: layout
            .groups
            .iter()
            .map(|(target_nodes, members)| {
                let mut status_summary = JobStatusCounts::default();
                for state in members.iter().filter_map(|n| nodes.states.get(*n as usize)) {
                    *status_summary.get_mut(crd_state(*state)) += 1;
                }
                NodeGroupStatus {
                    target_nodes: target_nodes.clone(),
                    status_summary,
                }
            })
            .collect(),
    }
}

/// `recorded` with the progress and the main node's pod and IP taken from `nodes` (when the
/// layout that maps nodes to groups is not at hand).
fn refreshed_without_layout(
    mut recorded: NodePropertiesStatus,
    nodes: &NodeStates,
) -> NodePropertiesStatus {
    let running = nodes
        .states
        .iter()
        .filter(|s| **s == JobState::Running)
        .count();
    recorded.progress = Some(format!("{running}/{} nodes", nodes.states.len()));
    recorded.main_node_pod_name = nodes.main_pod.clone().or(recorded.main_node_pod_name);
    recorded.main_node_private_ipv4_address = nodes
        .main_pod_ip
        .clone()
        .or(recorded.main_node_private_ipv4_address);
    recorded
}

/// The job's place in submission order (FIFO among jobs of the same `createdAt` second): the
/// one recorded in its status, else its resourceVersion as seen now — its creation's, as long
/// as nothing but Barge writes it, and Barge records it with its first status write. 0 when the
/// API server's resourceVersions are not numbers (ties then fall back to the job's name).
pub fn submission_order(job: &Job) -> i64 {
    job.status
        .as_ref()
        .and_then(|s| s.submission_order)
        .or_else(|| job.metadata.resource_version.as_deref()?.parse().ok())
        .unwrap_or(0)
}

/// The CamelCase condition reason of a scheduler verdict.
pub fn blocked_reason(kind: BlockedKind) -> &'static str {
    match kind {
        BlockedKind::NoReadyNodes => REASON_NO_READY_NODES,
        BlockedKind::InsufficientCapacity => REASON_INSUFFICIENT_CAPACITY,
        BlockedKind::QueueDisabled => REASON_JOB_QUEUE_DISABLED,
        BlockedKind::QueueNotFound => REASON_JOB_QUEUE_NOT_FOUND,
        BlockedKind::NoComputeEnvironment => REASON_COMPUTE_ENVIRONMENT_NOT_FOUND,
        BlockedKind::ComputeEnvironmentsDisabled => REASON_COMPUTE_ENVIRONMENTS_DISABLED,
        BlockedKind::ComputeEnvironmentsInvalid => REASON_COMPUTE_ENVIRONMENTS_INVALID,
        BlockedKind::BehindQueueHead => REASON_WAITING_FOR_QUEUE_HEAD,
        BlockedKind::NoInstanceTypeFits => REASON_NO_INSTANCE_TYPE_FITS,
        BlockedKind::ExceedsMaxvCpus => REASON_EXCEEDS_MAX_VCPUS,
        BlockedKind::PodCreationFailed => REASON_POD_CREATION_FAILED,
        BlockedKind::MultiNodeOnSpot => REASON_MULTI_NODE_ON_SPOT,
        BlockedKind::GangTooLarge => REASON_GANG_TOO_LARGE,
    }
}

/// The Job's conditions after a plan (pure; derived from the plan alone, never from the
/// conditions it had): `Ready`, `Succeeded`, `Failed`, `Schedulable` and, once FAILED, `Stalled`
/// (see the module docs).
/// `waiting_reason` names a SUBMITTED job's admission wait; `compute_environment` is where
/// its latest pod went.
pub fn job_conditions(
    queue: &str,
    plan: &JobPlan,
    waiting_reason: Option<&str>,
    compute_environment: Option<&str>,
) -> Vec<DesiredCondition> {
    let record = &plan.record;
    let state = record.state;
    let status_reason = record.status_reason.clone().unwrap_or_default();
    let in_progress = || format!("the job is {state}");
    let (succeeded, failed) = match state {
        JobState::Succeeded => (
            DesiredCondition::new(
                CONDITION_SUCCEEDED,
                true,
                REASON_JOB_SUCCEEDED,
                "the job succeeded",
            ),
            DesiredCondition::new(
                CONDITION_FAILED,
                false,
                REASON_JOB_SUCCEEDED,
                "the job succeeded",
            ),
        ),
        JobState::Failed => (
            DesiredCondition::new(
                CONDITION_SUCCEEDED,
                false,
                REASON_JOB_FAILED,
                status_reason.clone(),
            ),
            DesiredCondition::new(
                CONDITION_FAILED,
                true,
                REASON_JOB_FAILED,
                status_reason.clone(),
            ),
        ),
        _ => (
            DesiredCondition::new(
                CONDITION_SUCCEEDED,
                false,
                REASON_IN_PROGRESS,
                in_progress(),
            ),
            DesiredCondition::new(CONDITION_FAILED, false, REASON_IN_PROGRESS, in_progress()),
        ),
    };
    let placed = |message: String| {
        let message = match compute_environment {
            Some(ce) => format!("{message} (compute environment {ce})"),
            None => message,
        };
        DesiredCondition::new(CONDITION_SCHEDULABLE, true, REASON_PLACED, message)
    };
    let not_placed = |reason: &str, message: String| {
        DesiredCondition::new(CONDITION_SCHEDULABLE, false, reason, message)
    };
    let waiting = plan.waiting.clone();
    let schedulable = match state {
        JobState::Succeeded | JobState::Failed if record.was_placed() => {
            placed(format!("the job ran before it ended {state}"))
        }
        JobState::Succeeded | JobState::Failed => not_placed(
            REASON_NEVER_PLACED,
            format!("the job ended {state} before any pod was created: {status_reason}"),
        ),
        JobState::Starting | JobState::Running => match (&record.array, &plan.summary) {
            (Some(_), Some(summary)) => placed(format!(
                "{} child job(s) have a pod",
                summary.starting + summary.running
            )),
            _ => placed(format!(
                "a pod of attempt {} was created",
                record.attempts.len() + 1
            )),
        },
        JobState::Submitted => not_placed(
            waiting_reason.unwrap_or(REASON_SUBMITTED),
            waiting.unwrap_or_else(in_progress),
        ),
        JobState::Pending => not_placed(
            REASON_DEPENDENCIES_PENDING,
            waiting.unwrap_or_else(in_progress),
        ),
        JobState::Runnable => match plan.blocked {
            Some(kind) => not_placed(blocked_reason(kind), waiting.unwrap_or_else(in_progress)),
            None => not_placed(
                REASON_WAITING_FOR_CAPACITY,
                waiting.unwrap_or_else(|| {
                    format!("waiting for room in the compute environments of queue {queue:?}")
                }),
            ),
        },
    };
    let ready = DesiredCondition {
        type_: CONDITION_READY.into(),
        ..succeeded.clone()
    };
    let stalled = (state == JobState::Failed).then(|| DesiredCondition {
        type_: CONDITION_STALLED.into(),
        ..failed.clone()
    });
    [ready, succeeded, failed, schedulable]
        .into_iter()
        .chain(stalled)
        .collect()
}

/// The Job's status after a plan: the record in API form plus conditions. A multi-node job's
/// `nodeProperties` stay as they are: see [`build_status_with_nodes`].
pub fn build_status(job: &Job, plan: &JobPlan, inputs: StatusInputs<'_>) -> JobStatusDetail {
    build_status_with_nodes(job, plan, inputs, None)
}

/// [`build_status`], and for a multi-node job `status.nodeProperties` from the plan's node
/// states and `node_layout`, the job's nodes ([`node_layout`]). Without a layout (a finished
/// job, whose definition is not read again) the status keeps the `nodeProperties` it has.
pub fn build_status_with_nodes(
    job: &Job,
    plan: &JobPlan,
    inputs: StatusInputs<'_>,
    node_layout: Option<&NodeLayout>,
) -> JobStatusDetail {
    let record = &plan.record;
    let existing = job.status.clone().unwrap_or_default();
    let state = record.state;
    let compute_environment = inputs.compute_environment.or(existing.compute_environment);
    let desired = job_conditions(
        &job.spec.job_queue,
        plan,
        inputs.waiting_reason,
        compute_environment.as_deref(),
    );
    let now = time_of(inputs.now_ms).0;
    let generation = job.metadata.generation;
    let mut conditions = merge_conditions(&existing.conditions, &desired, generation, now);
    // The Schedulable condition's transition time records since when a blocked reason shows
    // (jobStateTimeLimitActions count from there).
    if let (Some(since), Some(c)) = (
        record.blocked_since_ms,
        conditions
            .iter_mut()
            .find(|c: &&mut Condition| c.type_ == CONDITION_SCHEDULABLE),
    ) {
        c.last_transition_time = time_of(since);
    }
    JobStatusDetail {
        status: Some(crd_state(state)),
        status_reason: record.status_reason.clone(),
        job_id: job.uid(),
        created_at: Some(time_of(record.created_at_ms)),
        submission_order: Some(submission_order(job)),
        started_at: record.started_at_ms.map(time_of),
        stopped_at: record.stopped_at_ms.map(time_of),
        attempts: record.attempts.iter().map(attempt_detail).collect(),
        attempt_count: inputs.attempt_count,
        resolved_job_definition: inputs.resolved.or(existing.resolved_job_definition),
        job_queue: Some(job.spec.job_queue.clone()),
        compute_environment,
        array_properties: record
            .array
            .as_ref()
            .map(|a| array_status(a, plan.summary.as_ref())),
        node_properties: match (&plan.nodes, node_layout) {
            (Some(nodes), Some(layout)) => {
                Some(node_properties_status(&job.name_any(), nodes, layout))
            }
            // No layout (its definition revision is gone): the progress and the main node
            // still follow the nodes; the group counts stay as last written.
            (Some(nodes), None) => existing
                .node_properties
                .map(|recorded| refreshed_without_layout(recorded, nodes)),
            _ => existing.node_properties,
        },
        conditions,
        observed_generation: generation,
    }
}

/// How a job named in `dependsOn` stands, for its dependents.
pub fn dependency_target(job: Option<&Job>) -> DependencyTarget {
    let Some(job) = job else {
        return DependencyTarget::Missing;
    };
    let record = record_from_status(job);
    match (&record.array, &job.spec.array_properties) {
        (Some(array), _) => DependencyTarget::array(
            record.state,
            array.size,
            array.succeeded.clone(),
            array.failed.clone(),
        ),
        (None, Some(props)) => DependencyTarget::array(
            record.state,
            u32::try_from(props.size).unwrap_or_default(),
            IndexSet::default(),
            IndexSet::default(),
        ),
        (None, None) => DependencyTarget::job(record.state),
    }
}

/// The queue's `jobStateTimeLimitActions` in core form.
pub fn time_limit_actions(queue: &JobQueue) -> Vec<TimeLimitAction> {
    queue
        .spec
        .job_state_time_limit_actions
        .iter()
        .map(|a| TimeLimitAction::cancel_runnable(&a.reason, i64::from(a.max_time_seconds)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use barge_core::job::{reconcile, Admission, JobView};
    use barge_crds::job::{ArrayProperties, JobDependency, JobSpec};

    fn job(spec: JobSpec) -> Job {
        let mut job = Job::new("j", spec);
        job.metadata.namespace = Some("ns".into());
        job.metadata.uid = Some("u1".into());
        job.metadata.creation_timestamp = Some(time_of(1_700_000_000_000));
        job
    }

    fn spec() -> JobSpec {
        serde_json::from_value(serde_json::json!({"jobQueue": "q", "jobDefinition": "d"}))
            .expect("spec")
    }

    fn definition() -> JobDefinitionSpec {
        serde_json::from_value(serde_json::json!({
            "type": "container",
            "containerProperties": {"image": "busybox", "command": ["true"]},
            "retryStrategy": {"attempts": 3, "evaluateOnExit": [{"onExitCode": "3", "action": "EXIT"}]},
            "timeout": {"attemptDurationSeconds": 60}
        }))
        .expect("definition")
    }

    #[test]
    fn the_jobs_retry_strategy_and_timeout_override_the_definitions() {
        let mut s = spec();
        s.retry_strategy = Some(RetryStrategy {
            attempts: Some(5),
            evaluate_on_exit: Vec::new(),
        });
        let core = core_spec(&job(s), Some(&definition())).expect("spec");
        assert_eq!(core.retry_strategy.attempts(), 5);
        assert_eq!(core.attempt_duration_seconds, Some(60));
        let core = core_spec(&job(spec()), Some(&definition())).expect("spec");
        assert_eq!(core.retry_strategy.attempts(), 3);
        assert_eq!(core.retry_strategy.evaluate_on_exit().len(), 1);
    }

    #[test]
    fn dependencies_translate_and_sequential_needs_an_array() {
        let mut s = spec();
        s.depends_on = vec![JobDependency {
            job_name: None,
            r#type: Some(DependencyType::Sequential),
        }];
        assert!(core_spec(&job(s.clone()), Some(&definition()))
            .unwrap_err()
            .contains("SEQUENTIAL"));
        s.array_properties = Some(ArrayProperties { size: 4 });
        s.depends_on.push(JobDependency {
            job_name: Some("a".into()),
            r#type: None,
        });
        let core = core_spec(&job(s), Some(&definition())).expect("spec");
        assert_eq!(
            core.depends_on,
            vec![Dependency::sequential(), Dependency::standard("a")]
        );
        assert_eq!(core.array_size, Some(4));
    }

    fn view(job: &Job) -> JobView {
        JobView {
            name: job.name_any(),
            spec: core_spec(job, Some(&definition())).expect("spec"),
            record: record_from_status(job),
            admission: Admission::Admitted,
            dependencies: Default::default(),
            pods: Vec::new(),
            time_limit_actions: Vec::new(),
            blocked: None,
            dependency_graph: barge_core::deps::DependencyGraph::new(),
            missing_dependency_grace_ms: barge_core::deps::DEFAULT_MISSING_DEPENDENCY_GRACE_SECONDS
                * 1000,
            all_jobs_listed: true,
            creation_refusal: None,
            finished_pod_retention_ms: None,
        }
    }

    fn inputs(now_ms: i64) -> StatusInputs<'static> {
        StatusInputs {
            resolved: None,
            compute_environment: None,
            attempt_count: None,
            waiting_reason: None,
            now_ms,
        }
    }

    #[test]
    fn a_written_status_reads_back_as_the_same_record() {
        let mut j = job(spec());
        let now = 1_700_000_005_000;
        let plan = reconcile(&view(&j), now);
        assert_eq!(plan.record.state, JobState::Runnable);
        j.status = Some(build_status(&j, &plan, inputs(now)));
        let again = reconcile(&view(&j), now + 1000);
        assert!(!again.changed, "a re-read record is stable: {again:?}");
        assert_eq!(
            j.status.as_ref().and_then(|s| s.status),
            Some(JobStatus::Runnable)
        );
    }

    #[test]
    fn every_condition_and_the_status_carry_the_generation_they_describe() {
        let mut j = job(spec());
        j.metadata.generation = Some(3);
        let now = 1_700_000_005_000;
        let plan = reconcile(&view(&j), now);
        let status = build_status(&j, &plan, inputs(now));
        assert_eq!(status.observed_generation, Some(3));
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_READY)
            .expect("a Ready condition");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", REASON_IN_PROGRESS)
        );
        assert!(status
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn an_array_record_round_trips_through_the_status() {
        let mut s = spec();
        s.array_properties = Some(ArrayProperties { size: 10 });
        let mut j = job(s);
        let now = 1_700_000_005_000;
        let mut plan = reconcile(&view(&j), now);
        let array = plan.record.array.as_mut().expect("array record");
        array.succeeded = IndexSet::parse("0-3,5").expect("set");
        array
            .prior_attempts
            .insert(1, IndexSet::parse("7,9").expect("set"));
        array
            .prior_attempts
            .insert(2, IndexSet::parse("8").expect("set"));
        j.status = Some(build_status(&j, &plan, inputs(now)));
        let status = j.status.as_ref().expect("status");
        let a = status.array_properties.as_ref().expect("array status");
        assert_eq!(a.succeeded_indices, "0-3,5");
        assert_eq!(a.progress.as_deref(), Some("5/10"));
        assert_eq!(
            a.retrying,
            vec![
                RetryingChildren {
                    attempts: 1,
                    indices: "7,9".into()
                },
                RetryingChildren {
                    attempts: 2,
                    indices: "8".into()
                }
            ]
        );
        assert_eq!(record_from_status(&j).array, plan.record.array);
    }

    #[test]
    fn the_status_of_a_busy_10000_child_array_stays_a_few_kib() {
        let mut s = spec();
        s.array_properties = Some(ArrayProperties { size: 10_000 });
        let mut j = job(s);
        let now = 1_700_000_005_000;
        let mut view = view(&j);
        view.spec.retry_strategy = CoreRetryStrategy::attempts_only(5).expect("strategy");
        let mut plan = reconcile(&view, now);
        let array = plan.record.array.as_mut().expect("array record");
        array.succeeded = IndexSet::parse("0-4999,5500-8999").expect("set");
        array.failed = IndexSet::parse("9000-9019").expect("set");
        for i in 9000..9020 {
            array.failed_attempts.push(AttemptRecord {
                attempt: 5,
                array_index: Some(i),
                pod_name: format!("j-5-{i}"),
                node_name: Some("node-with-a-long-name-0001".into()),
                exit_code: Some(1),
                reason: Some("Error".into()),
                started_at_ms: Some(now),
                stopped_at_ms: now,
                status_reason: "Essential container in task exited".into(),
            });
        }
        for attempts in 1..5 {
            let start = 5000 + 100 * attempts;
            array
                .prior_attempts
                .insert(attempts, IndexSet::range(start, start + 99));
        }
        j.status = Some(build_status(&j, &plan, inputs(now)));
        let bytes = serde_json::to_vec(&j.status).expect("json").len();
        assert!(bytes < 8 * 1024, "status of {bytes} bytes");
        assert_eq!(record_from_status(&j).array, plan.record.array);
    }

    // ------------------------------------------------------------------ multi-node jobs

    fn multinode_job(spec_json: serde_json::Value) -> Job {
        let mut spec = spec_json;
        spec["jobQueue"] = serde_json::json!("q");
        spec["jobDefinition"] = serde_json::json!("mpi");
        job(serde_json::from_value(spec).expect("spec"))
    }

    #[test]
    fn a_multi_node_jobs_spec_carries_its_gang_shape_after_overrides() {
        let def = crate::test_support::aws_job_definition("jobdef-multinode.json");
        let core = core_spec(&multinode_job(serde_json::json!({})), Some(&def)).expect("spec");
        assert_eq!(
            core.nodes,
            Some(NodesSpec {
                num_nodes: 6,
                main_node: 0
            })
        );
        assert_eq!(core.retry_strategy.attempts(), 2);
        let grown = multinode_job(serde_json::json!({"nodeOverrides": {"numNodes": 8}}));
        assert_eq!(
            core_spec(&grown, Some(&def)).expect("spec").nodes,
            Some(NodesSpec {
                num_nodes: 8,
                main_node: 0
            })
        );
        // A layout that cannot be: the job fails with the layout's reason.
        let mut closed = def.clone();
        closed
            .node_properties
            .as_mut()
            .expect("nodes")
            .node_range_properties[1]
            .target_nodes = "1:5".into();
        assert_eq!(
            core_spec(&grown, Some(&closed)).expect_err("refused"),
            "nodes 6-7 are not covered by any nodeProperties.nodeRangeProperties[].targetNodes (numNodes 8 from nodeOverrides.numNodes)"
        );
        assert_eq!(
            core_spec(
                &multinode_job(serde_json::json!({"arrayProperties": {"size": 3}})),
                Some(&def)
            )
            .expect_err("refused"),
            "a multi-node job definition cannot be submitted as an array job: remove arrayProperties"
        );
        assert!(core_spec(&grown, Some(&definition()))
            .expect_err("refused")
            .starts_with("nodeOverrides applies only to multi-node jobs"));
        // Single jobs have no gang.
        assert_eq!(
            core_spec(&job(spec()), Some(&definition()))
                .expect("spec")
                .nodes,
            None
        );
    }

    #[test]
    fn the_status_counts_the_nodes_of_each_group_and_names_the_main_pod_and_service() {
        let def = crate::test_support::aws_job_definition("jobdef-multinode.json");
        let mut j = multinode_job(serde_json::json!({}));
        let layout = node_layout(&j, &def).expect("layout");
        let mut plan = runnable_plan();
        plan.record.state = JobState::Running;
        plan.nodes = Some(NodeStates {
            attempt: 1,
            states: vec![
                JobState::Running,
                JobState::Running,
                JobState::Starting,
                JobState::Runnable,
                JobState::Failed,
                JobState::Succeeded,
            ],
            main_pod: Some("j-1-node-0".into()),
            main_pod_ip: Some("10.0.0.7".into()),
        });
        let now = 1_700_000_005_000;
        let status = build_status_with_nodes(&j, &plan, inputs(now), Some(&layout));
        let nodes = status.node_properties.clone().expect("node properties");
        let counts = |pairs: &[(JobStatus, i32)]| {
            let mut c = JobStatusCounts::default();
            for (s, n) in pairs {
                *c.get_mut(*s) = *n;
            }
            c
        };
        assert_eq!(
            nodes,
            NodePropertiesStatus {
                num_nodes: 6,
                main_node: 0,
                progress: Some("2/6 nodes".into()),
                main_node_pod_name: Some("j-1-node-0".into()),
                main_node_private_ipv4_address: Some("10.0.0.7".into()),
                service_name: Some("j-nodes".into()),
                node_groups: vec![
                    NodeGroupStatus {
                        target_nodes: "0".into(),
                        status_summary: counts(&[(JobStatus::Running, 1)]),
                    },
                    NodeGroupStatus {
                        target_nodes: "1:".into(),
                        status_summary: counts(&[
                            (JobStatus::Running, 1),
                            (JobStatus::Starting, 1),
                            (JobStatus::Runnable, 1),
                            (JobStatus::Failed, 1),
                            (JobStatus::Succeeded, 1),
                        ]),
                    },
                ],
            }
        );
        // Without the layout (its definition revision is gone), the recorded groups stay, the
        // progress and the main node follow the nodes, and so does the gang shape the state
        // machine reads.
        j.status = Some(status);
        let again = build_status(&j, &plan, inputs(now + 1000));
        assert_eq!(again.node_properties, Some(nodes.clone()));
        let mut stopped = plan.clone();
        if let Some(n) = stopped.nodes.as_mut() {
            n.states = vec![JobState::Succeeded; 6];
            n.states[3] = JobState::Failed;
        }
        let after = build_status(&j, &stopped, inputs(now + 2000))
            .node_properties
            .expect("node properties");
        assert_eq!(after.progress.as_deref(), Some("0/6 nodes"));
        assert_eq!(after.node_groups, nodes.node_groups);
        assert_eq!(after.main_node_pod_name, nodes.main_node_pod_name);
        assert_eq!(
            core_spec(&j, None).expect("spec").nodes,
            Some(NodesSpec {
                num_nodes: 6,
                main_node: 0
            })
        );
        // A single job has none.
        assert_eq!(
            build_status(&job(spec()), &runnable_plan(), inputs(now)).node_properties,
            None
        );
    }

    #[test]
    fn a_missing_or_array_dependency_is_described() {
        assert_eq!(dependency_target(None), DependencyTarget::Missing);
        let mut s = spec();
        s.array_properties = Some(ArrayProperties { size: 3 });
        match dependency_target(Some(&job(s))) {
            DependencyTarget::Found {
                state: JobState::Submitted,
                array: Some(p),
            } => assert_eq!(p.size, 3),
            other => panic!("unexpected {other:?}"),
        }
    }

    // ------------------------------------------------------------------ conditions and reasons

    /// A plan for job `j` (RUNNABLE, nothing placed), to adjust per case.
    fn runnable_plan() -> JobPlan {
        let plan = reconcile(&view(&job(spec())), 1_700_000_005_000);
        assert_eq!(plan.record.state, JobState::Runnable);
        plan
    }

    /// (type, status, reason, message) of each condition.
    fn shown(conditions: &[DesiredCondition]) -> Vec<(String, bool, String)> {
        conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status, c.reason.clone()))
            .collect()
    }

    fn condition<'c>(conditions: &'c [DesiredCondition], type_: &str) -> &'c DesiredCondition {
        conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("{type_} in {conditions:?}"))
    }

    fn ran(plan: &mut JobPlan, exit_code: i32) {
        plan.record.attempts.push(AttemptRecord {
            attempt: 1,
            array_index: None,
            pod_name: "j-1".into(),
            node_name: Some("node-1".into()),
            exit_code: Some(exit_code),
            reason: None,
            started_at_ms: Some(1_700_000_006_000),
            stopped_at_ms: 1_700_000_007_000,
            status_reason: "Essential container in task exited".into(),
        });
    }

    #[test]
    fn a_succeeded_job_says_so_and_that_it_was_placed() {
        let mut plan = runnable_plan();
        ran(&mut plan, 0);
        plan.record.state = JobState::Succeeded;
        let conditions = job_conditions("q", &plan, None, Some("ce"));
        assert_eq!(
            shown(&conditions),
            vec![
                ("Ready".into(), true, REASON_JOB_SUCCEEDED.into()),
                ("Succeeded".into(), true, REASON_JOB_SUCCEEDED.into()),
                ("Failed".into(), false, REASON_JOB_SUCCEEDED.into()),
                ("Schedulable".into(), true, REASON_PLACED.into()),
            ]
        );
        assert!(condition(&conditions, CONDITION_SCHEDULABLE)
            .message
            .contains("compute environment ce"));
    }

    #[test]
    fn a_failed_job_is_not_succeeded_and_says_why() {
        let mut plan = runnable_plan();
        ran(&mut plan, 1);
        plan.record.state = JobState::Failed;
        plan.record.status_reason = Some("Essential container in task exited".into());
        let conditions = job_conditions("q", &plan, None, None);
        assert_eq!(
            shown(&conditions),
            vec![
                ("Ready".into(), false, REASON_JOB_FAILED.into()),
                ("Succeeded".into(), false, REASON_JOB_FAILED.into()),
                ("Failed".into(), true, REASON_JOB_FAILED.into()),
                ("Schedulable".into(), true, REASON_PLACED.into()),
                // kstatus: Failed, so Flux stops waiting for it.
                ("Stalled".into(), true, REASON_JOB_FAILED.into()),
            ]
        );
        for type_ in [
            CONDITION_READY,
            CONDITION_SUCCEEDED,
            CONDITION_FAILED,
            CONDITION_STALLED,
        ] {
            assert_eq!(
                condition(&conditions, type_).message,
                "Essential container in task exited"
            );
        }
    }

    #[test]
    fn a_job_that_failed_before_any_pod_was_created_was_never_placed() {
        let mut plan = runnable_plan();
        plan.record.state = JobState::Failed;
        plan.record.status_reason = Some("Terminated by user request".into());
        let conditions = job_conditions("q", &plan, None, None);
        let schedulable = condition(&conditions, CONDITION_SCHEDULABLE);
        assert_eq!(
            (schedulable.status, schedulable.reason.as_str()),
            (false, REASON_NEVER_PLACED)
        );
        assert!(
            schedulable.message.contains("Terminated by user request"),
            "{}",
            schedulable.message
        );
        // An attempt the API server refused to create has no node: still never placed.
        plan.record.attempts.push(AttemptRecord {
            attempt: 1,
            array_index: None,
            pod_name: "j-1".into(),
            node_name: None,
            exit_code: None,
            reason: None,
            started_at_ms: None,
            stopped_at_ms: 1_700_000_007_000,
            status_reason: "PodCreationRefused: forbidden".into(),
        });
        assert_eq!(
            condition(
                &job_conditions("q", &plan, None, None),
                CONDITION_SCHEDULABLE
            )
            .reason,
            REASON_NEVER_PLACED
        );
    }

    #[test]
    fn unfinished_jobs_are_in_progress_and_placed_only_with_a_pod() {
        let mut plan = runnable_plan();
        for state in [JobState::Starting, JobState::Running] {
            plan.record.state = state;
            let conditions = job_conditions("q", &plan, None, None);
            assert_eq!(
                shown(&conditions),
                vec![
                    ("Ready".into(), false, REASON_IN_PROGRESS.into()),
                    ("Succeeded".into(), false, REASON_IN_PROGRESS.into()),
                    ("Failed".into(), false, REASON_IN_PROGRESS.into()),
                    ("Schedulable".into(), true, REASON_PLACED.into()),
                ],
                "{state}"
            );
            assert_eq!(
                condition(&conditions, CONDITION_SCHEDULABLE).message,
                "a pod of attempt 1 was created"
            );
        }
    }

    #[test]
    fn a_queued_job_says_what_it_waits_for() {
        let mut plan = runnable_plan();
        let schedulable = |plan: &JobPlan, admission: Option<&str>| {
            let c = job_conditions("q", plan, admission, None);
            let c = condition(&c, CONDITION_SCHEDULABLE).clone();
            assert!(!c.status, "{c:?}");
            (c.reason, c.message)
        };
        assert_eq!(
            schedulable(&plan, None),
            (
                REASON_WAITING_FOR_CAPACITY.to_string(),
                "waiting for room in the compute environments of queue \"q\"".to_string()
            )
        );
        plan.record.state = JobState::Pending;
        plan.waiting = Some("waiting for job a".into());
        assert_eq!(
            schedulable(&plan, None),
            (
                REASON_DEPENDENCIES_PENDING.to_string(),
                "waiting for job a".to_string()
            )
        );
        plan.record.state = JobState::Submitted;
        plan.waiting = Some("job definition d does not exist".into());
        assert_eq!(
            schedulable(&plan, Some("JobDefinitionNotFound")).0,
            "JobDefinitionNotFound"
        );
        assert_eq!(schedulable(&plan, None).0, REASON_SUBMITTED);
    }

    #[test]
    fn every_scheduler_verdict_has_its_own_reason() {
        let kinds = [
            (BlockedKind::NoReadyNodes, REASON_NO_READY_NODES),
            (
                BlockedKind::InsufficientCapacity,
                REASON_INSUFFICIENT_CAPACITY,
            ),
            (BlockedKind::QueueDisabled, REASON_JOB_QUEUE_DISABLED),
            (BlockedKind::QueueNotFound, REASON_JOB_QUEUE_NOT_FOUND),
            (
                BlockedKind::NoComputeEnvironment,
                REASON_COMPUTE_ENVIRONMENT_NOT_FOUND,
            ),
            (
                BlockedKind::ComputeEnvironmentsDisabled,
                REASON_COMPUTE_ENVIRONMENTS_DISABLED,
            ),
            (
                BlockedKind::ComputeEnvironmentsInvalid,
                REASON_COMPUTE_ENVIRONMENTS_INVALID,
            ),
            (BlockedKind::BehindQueueHead, REASON_WAITING_FOR_QUEUE_HEAD),
            (
                BlockedKind::NoInstanceTypeFits,
                REASON_NO_INSTANCE_TYPE_FITS,
            ),
            (BlockedKind::ExceedsMaxvCpus, REASON_EXCEEDS_MAX_VCPUS),
            (BlockedKind::PodCreationFailed, REASON_POD_CREATION_FAILED),
            (BlockedKind::MultiNodeOnSpot, REASON_MULTI_NODE_ON_SPOT),
            (BlockedKind::GangTooLarge, REASON_GANG_TOO_LARGE),
        ];
        let mut plan = runnable_plan();
        let mut seen = std::collections::BTreeSet::new();
        for (kind, reason) in kinds {
            plan.blocked = Some(kind);
            plan.waiting = Some(format!("because {kind:?}"));
            let conditions = job_conditions("q", &plan, None, None);
            let schedulable = condition(&conditions, CONDITION_SCHEDULABLE);
            assert_eq!(
                (
                    schedulable.status,
                    schedulable.reason.as_str(),
                    schedulable.message.clone()
                ),
                (false, reason, format!("because {kind:?}"))
            );
            assert!(seen.insert(reason), "{reason} named twice");
        }
    }

    #[test]
    fn a_capacity_verdict_reaches_the_status_and_its_clock_survives_a_reread() {
        let mut j = job(spec());
        let t0 = 1_700_000_005_000;
        let mut v = view(&j);
        v.blocked = Some(barge_core::job::Blocked {
            kind: BlockedKind::NoReadyNodes,
            status_reason: Some(barge_core::reasons::insufficient_instance_capacity(
                "c5.large",
            )),
            message: "no compute environment of queue \"q\" (ce) has a Ready node, and none is starting one".into(),
        });
        v.time_limit_actions = vec![TimeLimitAction::cancel_runnable(
            barge_core::reasons::INSUFFICIENT_INSTANCE_CAPACITY,
            600,
        )];
        let plan = reconcile(&v, t0);
        j.status = Some(build_status(&j, &plan, inputs(t0)));
        let status = j.status.clone().expect("status");
        assert_eq!(status.status, Some(JobStatus::Runnable));
        assert!(status
            .status_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY")));
        let schedulable = status
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_SCHEDULABLE)
            .expect("Schedulable");
        assert_eq!(
            (schedulable.status.as_str(), schedulable.reason.as_str()),
            ("False", REASON_NO_READY_NODES)
        );
        // Re-read later (as after a restart): the clock still starts at t0, and once
        // maxTimeSeconds passed the queue's action cancels the job.
        let mut again = view(&j);
        again.blocked = v.blocked.clone();
        again.time_limit_actions = v.time_limit_actions.clone();
        assert_eq!(again.record.blocked_since_ms, Some(t0));
        let steady = reconcile(&again, t0 + 60_000);
        assert!(
            !steady.changed,
            "no write while nothing changes: {steady:?}"
        );
        let due = reconcile(&again, t0 + 600_000);
        assert_eq!(due.record.state, JobState::Failed);
        assert_eq!(
            due.record.status_reason.as_deref(),
            Some("Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY")
        );
        let done = job_conditions("q", &due, None, None);
        assert_eq!(
            condition(&done, CONDITION_SCHEDULABLE).reason,
            REASON_NEVER_PLACED
        );
        assert_eq!(
            condition(&done, CONDITION_SUCCEEDED).reason,
            REASON_JOB_FAILED
        );
    }
}
