//! JobQueue (cluster-scoped, short name `jq`): where jobs wait — the counterpart of AWS Batch
//! CreateJobQueue. A queue has a priority among the queues sharing a compute environment, an
//! ordered list of 1–3 compute environments, an optional fair-share SchedulingPolicy, actions for
//! jobs stuck RUNNABLE, and a namespace selector saying who may submit. The queue controller
//! writes `status` (VALID/INVALID and job counts per state).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::State;
use crate::job::JobStatusCounts;

/// Compute environments per queue (AWS Batch: 1–3).
pub const MAX_COMPUTE_ENVIRONMENTS: usize = 3;
/// `jobStateTimeLimitActions[].maxTimeSeconds` bounds (AWS Batch: 10 minutes to 24 hours).
pub const MIN_STATE_TIME_LIMIT_SECONDS: i32 = 600;
pub const MAX_STATE_TIME_LIMIT_SECONDS: i32 = 86_400;

/// A compute environment of a queue and its place in the order (AWS `ComputeEnvironmentOrder`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComputeEnvironmentOrder {
    /// Environments are tried in ascending order.
    #[schemars(range(min = 0))]
    pub order: i32,
    /// Name of the ComputeEnvironment.
    #[x_kube(validation = crate::common::object_name_rule("computeEnvironment"))]
    #[schemars(length(min = 1, max = 253))]
    pub compute_environment: String,
}

/// How a queue treats a job at its head that cannot be placed now.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum QueueingStrategy {
    /// A job that does not fit now does not block the (smaller) jobs behind it — AWS Batch's
    /// behaviour.
    #[default]
    BestEffortFIFO,
    /// Jobs start strictly in queue order: the head job blocks the queue until it fits.
    StrictFIFO,
}

/// The state a time limit watches (AWS Batch supports only RUNNABLE).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum TimeLimitState {
    #[serde(rename = "RUNNABLE")]
    Runnable,
}

/// What a time limit does (AWS Batch supports only CANCEL).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum TimeLimitAction {
    #[serde(rename = "CANCEL")]
    Cancel,
}

/// Cancel a job that stays at the head of the queue in `state` for `reason` longer than
/// `maxTimeSeconds` (AWS `JobStateTimeLimitAction`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStateTimeLimitAction {
    /// The blocking reason the action applies to, e.g.
    /// `MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT`.
    #[schemars(length(min = 1, max = 256))]
    pub reason: String,
    /// RUNNABLE.
    pub state: TimeLimitState,
    /// Seconds, 600–86400.
    #[schemars(range(min = MIN_STATE_TIME_LIMIT_SECONDS, max = MAX_STATE_TIME_LIMIT_SECONDS))]
    pub max_time_seconds: i32,
    /// CANCEL.
    pub action: TimeLimitAction,
}

/// Spec of a JobQueue (AWS CreateJobQueue; the name is `metadata.name`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "batch.barge.dev",
    version = "v1alpha1",
    kind = "JobQueue",
    shortname = "jq",
    category = "barge",
    status = "JobQueueStatus",
    derive = "PartialEq",
    doc = "A queue of Barge jobs with a priority and an ordered list of compute environments (AWS Batch job queue).",
    validation = crate::common::name_fits_label_value_rule("JobQueue", crate::consts::LABEL_JOB_QUEUE),
    printcolumn(name = "State", type_ = "string", json_path = ".spec.state"),
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.status"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Policy",
        type_ = "string",
        json_path = ".spec.schedulingPolicyName",
        priority = 1
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.statusReason",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct JobQueueSpec {
    /// ENABLED (default) or DISABLED: a disabled queue accepts no new jobs; queued ones stay.
    #[serde(default)]
    pub state: State,
    /// Higher first among the queues that share a compute environment (0–1000).
    #[schemars(range(min = 0, max = 1000))]
    pub priority: i32,
    /// 1–3 compute environments with distinct orders, tried in ascending order.
    #[x_kube(validation = Rule::new("self.all(a, self.filter(b, b.order == a.order).size() == 1)").message("computeEnvironmentOrder entries must have distinct order values"))]
    #[x_kube(validation = Rule::new("self.all(a, self.filter(b, b.computeEnvironment == a.computeEnvironment).size() == 1)").message("a compute environment may appear only once in computeEnvironmentOrder"))]
    #[schemars(length(min = 1, max = MAX_COMPUTE_ENVIRONMENTS))]
    pub compute_environment_order: Vec<ComputeEnvironmentOrder>,
    /// Name of a SchedulingPolicy: the queue is then ordered by fair share and its jobs need a
    /// `shareIdentifier`; without one the queue is FIFO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = crate::common::object_name_rule("schedulingPolicyName"))]
    #[schemars(length(min = 1, max = 253))]
    pub scheduling_policy_name: Option<String>,
    /// Cancel jobs stuck RUNNABLE for a given reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub job_state_time_limit_actions: Vec<JobStateTimeLimitAction>,
    /// Namespaces whose jobs may use this queue (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// BestEffortFIFO (default, as AWS Batch): a job that does not fit now lets smaller jobs
    /// behind it start; StrictFIFO: the head job blocks the queue until it fits.
    #[serde(default)]
    pub queueing_strategy: QueueingStrategy,
}

/// `status.status` of a queue.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum JqStatus {
    #[serde(rename = "VALID")]
    Valid,
    #[serde(rename = "INVALID")]
    Invalid,
}

/// Observed state of a queue.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobQueueStatus {
    /// VALID or INVALID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<JqStatus>,
    /// Why (e.g. which compute environment is missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Jobs of the queue per state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_counts: Option<JobStatusCounts>,
    /// Ready etc.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::common::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Fair-share usage of a queue with a scheduling policy: per active share, refreshed at a
    /// bounded rate by the scheduler (and read back after a restart, so usage is not reset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fair_share: Option<FairShareStatus>,
    /// The next jobs to run, in order (AWS Batch GetJobQueueSnapshot), refreshed at a bounded
    /// rate by the scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub front_of_queue: Option<FrontOfQueue>,
}

/// Most shares listed in `status.fairShare.shares` (the most used first).
pub const MAX_SHARES_IN_STATUS: usize = 100;
/// Most jobs listed in `status.frontOfQueue.jobs` (as AWS Batch's GetJobQueueSnapshot).
pub const MAX_FRONT_OF_QUEUE: usize = 100;

/// Fair-share usage of a queue (`status.fairShare`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FairShareStatus {
    /// When the usage below was computed: decayed usage is recovered from here after a restart.
    /// The scheduler recomputes this status every `--queue-status-interval-ms` but writes it only
    /// when more than the usage changed: until then a share's usage is
    /// `usage·e^(−t/D) + runningVcpus·D·(1 − e^(−t/D))`, t seconds after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Time>,
    /// The scheduling policy the usage is kept for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_policy_name: Option<String>,
    /// Shares with jobs not finished, or with usage not decayed yet.
    #[serde(default)]
    pub active_shares: i32,
    /// vCPUs held back for shares that are not active yet:
    /// (computeReservation/100)^activeShares of the queue's maximum vCPUs.
    #[serde(default)]
    pub reserved_vcpus: f64,
    /// The queue's maximum vCPUs (its compute environments' `maxvCpus`, or their nodes'
    /// allocatable CPU when unmanaged).
    #[serde(default)]
    pub max_vcpus: f64,
    /// Active shares, the most used first (at most 100).
    // Serialized also when empty: the scheduler writes this status with a JSON merge patch,
    // where an absent list would keep the old one.
    #[serde(default)]
    #[schemars(length(max = MAX_SHARES_IN_STATUS))]
    pub shares: Vec<ShareUsageStatus>,
}

/// One share's usage (`status.fairShare.shares[]`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShareUsageStatus {
    pub share_identifier: String,
    /// Its weight factor under the policy (lower gets more).
    pub weight_factor: f64,
    /// vCPUs of its jobs' pods running (or placed) now.
    pub running_vcpus: f64,
    /// vCPU-seconds of its running and recently finished jobs, decayed over
    /// `shareDecaySeconds` (0 when the policy counts only current usage).
    pub usage_vcpu_seconds: f64,
    /// The fraction of the queue's compute it is entitled to among the active shares:
    /// (1/weightFactor) / Σ active (1/weightFactor).
    pub target_fraction: f64,
    /// Its RUNNABLE jobs (array children counted one each).
    pub runnable: i64,
}

/// The front of a queue (`status.frontOfQueue`), as AWS Batch's `FrontOfQueueDetail`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrontOfQueue {
    /// When the list last changed (it is recomputed every `--queue-status-interval-ms` and
    /// written only when it changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_at: Option<Time>,
    /// The next RUNNABLE jobs (or array children) to run, first first (at most 100).
    // Serialized also when empty, as `fairShare.shares`.
    #[serde(default)]
    #[schemars(length(max = MAX_FRONT_OF_QUEUE))]
    pub jobs: Vec<FrontOfQueueJob>,
}

/// One entry of the front of a queue (AWS `FrontOfQueueJobSummary`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrontOfQueueJob {
    pub namespace: String,
    /// The Job's name.
    pub name: String,
    /// The array child, for an array job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_index: Option<u32>,
    /// Its `shareIdentifier` (fair-share queues).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_identifier: Option<String>,
    /// Its scheduling priority (`schedulingPriorityOverride`, else the definition's
    /// `schedulingPriority`, else 0).
    #[serde(default)]
    pub scheduling_priority: i32,
    /// When it reached its current position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest_time_at_position: Option<Time>,
}

impl JobQueueSpec {
    /// The compute environments in the order they are tried.
    pub fn ordered_compute_environments(&self) -> Vec<&str> {
        let mut order: Vec<&ComputeEnvironmentOrder> =
            self.compute_environment_order.iter().collect();
        order.sort_by_key(|entry| entry.order);
        order
            .into_iter()
            .map(|entry| entry.compute_environment.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_environments_are_tried_in_ascending_order() {
        let entry = |order, name: &str| ComputeEnvironmentOrder {
            order,
            compute_environment: name.to_string(),
        };
        let spec = JobQueueSpec {
            state: State::Enabled,
            priority: 1,
            compute_environment_order: vec![entry(3, "c"), entry(1, "a"), entry(2, "b")],
            scheduling_policy_name: None,
            job_state_time_limit_actions: vec![],
            namespace_selector: None,
            queueing_strategy: QueueingStrategy::default(),
        };
        assert_eq!(spec.ordered_compute_environments(), vec!["a", "b", "c"]);
    }
}
