//! Job (namespaced, short names `bjob`, `bj`): one submitted job — single, array (2–10,000
//! children) or multi-node — the counterpart of AWS Batch SubmitJob.
//!
//! The spec is what the user submitted and cannot change afterwards, except `terminate`, which can
//! be set (and widened) but never withdrawn. The job controller and the scheduler fill `status`:
//! the AWS Batch state, attempts, the resolved definition revision, and for arrays a compact
//! summary of the children (counts per state and index ranges such as "0-41,43-99"), so a
//! 10,000-child array costs one object.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::job_definition::MAX_SCHEDULING_PRIORITY;
use crate::resources::{
    ContainerOverrides, JobTimeout, RetryStrategy, MAX_ATTEMPTS, MAX_NODE_RANGES, MAX_NUM_NODES,
};

/// Array size bounds (AWS Batch: 2–10,000).
pub const MIN_ARRAY_SIZE: i32 = 2;
pub const MAX_ARRAY_SIZE: i32 = 10_000;
/// Most dependencies of a job (AWS Batch: 20).
pub const MAX_DEPENDENCIES: usize = 20;
/// Most records in `status.arrayProperties.failedAttempts` (the latest ones are kept).
pub const MAX_FAILED_ATTEMPT_RECORDS: usize = 100;
/// A compact list of array indices: "0-41,43,45-99".
pub const INDEX_RANGES_PATTERN: &str = "^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$";
/// A job definition reference: `name` (latest revision) or `name:revision` (revision ≥ 1).
pub const JOB_DEFINITION_REFERENCE_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[1-9][0-9]{0,8})?$";
/// The only spec field that may change after creation.
pub const MUTABLE_SPEC_FIELD: &str = "terminate";

/// The AWS Batch job states.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum JobStatus {
    /// Accepted, not evaluated yet.
    #[serde(rename = "SUBMITTED")]
    Submitted,
    /// Waiting for dependencies.
    #[serde(rename = "PENDING")]
    Pending,
    /// Waiting in its queue for capacity.
    #[serde(rename = "RUNNABLE")]
    Runnable,
    /// Placed: pods created, containers not running yet.
    #[serde(rename = "STARTING")]
    Starting,
    /// A container runs.
    #[serde(rename = "RUNNING")]
    Running,
    /// Ended with exit code 0.
    #[serde(rename = "SUCCEEDED")]
    Succeeded,
    /// Ended otherwise (failed, cancelled, terminated, timed out, dependency failed).
    #[serde(rename = "FAILED")]
    Failed,
}

impl JobStatus {
    /// All states, in lifecycle order.
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Submitted,
        JobStatus::Pending,
        JobStatus::Runnable,
        JobStatus::Starting,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
    ];

    /// SUCCEEDED or FAILED: nothing more will happen.
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed)
    }

    /// The AWS Batch spelling, e.g. "RUNNABLE".
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Submitted => "SUBMITTED",
            JobStatus::Pending => "PENDING",
            JobStatus::Runnable => "RUNNABLE",
            JobStatus::Starting => "STARTING",
            JobStatus::Running => "RUNNING",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Number of jobs (or array children) per state, as AWS Batch's `statusSummary`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[allow(non_snake_case)]
pub struct JobStatusCounts {
    #[serde(default)]
    pub SUBMITTED: i32,
    #[serde(default)]
    pub PENDING: i32,
    #[serde(default)]
    pub RUNNABLE: i32,
    #[serde(default)]
    pub STARTING: i32,
    #[serde(default)]
    pub RUNNING: i32,
    #[serde(default)]
    pub SUCCEEDED: i32,
    #[serde(default)]
    pub FAILED: i32,
}

impl JobStatusCounts {
    /// The count of `status`.
    pub fn get(&self, status: JobStatus) -> i32 {
        match status {
            JobStatus::Submitted => self.SUBMITTED,
            JobStatus::Pending => self.PENDING,
            JobStatus::Runnable => self.RUNNABLE,
            JobStatus::Starting => self.STARTING,
            JobStatus::Running => self.RUNNING,
            JobStatus::Succeeded => self.SUCCEEDED,
            JobStatus::Failed => self.FAILED,
        }
    }

    /// A mutable reference to the count of `status`.
    pub fn get_mut(&mut self, status: JobStatus) -> &mut i32 {
        match status {
            JobStatus::Submitted => &mut self.SUBMITTED,
            JobStatus::Pending => &mut self.PENDING,
            JobStatus::Runnable => &mut self.RUNNABLE,
            JobStatus::Starting => &mut self.STARTING,
            JobStatus::Running => &mut self.RUNNING,
            JobStatus::Succeeded => &mut self.SUCCEEDED,
            JobStatus::Failed => &mut self.FAILED,
        }
    }

    /// Sum over all states.
    pub fn total(&self) -> i32 {
        JobStatus::ALL.iter().map(|s| self.get(*s)).sum()
    }
}

/// The kind of a dependency (AWS Batch).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum DependencyType {
    /// Child i of this array job waits for child i of `jobName` (an array job of the same size).
    #[serde(rename = "N_TO_N")]
    NToN,
    /// Child i of this array job waits for its child i-1 (no `jobName`).
    #[serde(rename = "SEQUENTIAL")]
    Sequential,
}

/// A job this job waits for (AWS `JobDependency`; `jobId` becomes `jobName`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.jobName) || (has(self.type) && self.type == 'SEQUENTIAL')").message("a dependsOn entry needs a jobName (only a SEQUENTIAL dependency, between the children of this array job, has none)"))]
#[x_kube(validation = Rule::new("!has(self.type) || self.type != 'SEQUENTIAL' || !has(self.jobName)").message("a SEQUENTIAL dependency chains the children of this array job in index order and takes no jobName"))]
pub struct JobDependency {
    /// Name of a Job in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(format!("self.matches('{}')", crate::common::DNS_LABEL_PATTERN)).message("dependsOn[].jobName must be the name of a Job: lowercase letters, digits and '-'"))]
    #[schemars(length(min = 1, max = 63))]
    pub job_name: Option<String>,
    /// N_TO_N or SEQUENTIAL (array jobs); absent: wait for the whole job.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub r#type: Option<DependencyType>,
}

/// Makes this an array job (AWS `ArrayProperties`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArrayProperties {
    /// Number of children, 2–10,000; child i sees `AWS_BATCH_JOB_ARRAY_INDEX=i`.
    #[schemars(range(min = MIN_ARRAY_SIZE, max = MAX_ARRAY_SIZE))]
    pub size: i32,
}

/// Overrides for a range of nodes of a multinode job (AWS `NodePropertyOverride`). Where
/// ranges overlap, the narrower one decides a node (of two equally wide ranges, the later one).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = crate::resources::target_nodes_order_rule())]
pub struct NodePropertyOverride {
    /// Node indices: "n", "a:b", "a:" or ":b".
    #[x_kube(validation = crate::resources::target_nodes_rule())]
    #[schemars(length(min = 1, max = 21))]
    pub target_nodes: String,
    /// What changes in those nodes' container (command, environment, resources, instanceType).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_overrides: Option<ContainerOverrides>,
}

/// Overrides of a multinode job (AWS `NodeOverrides`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = crate::resources::target_nodes_within_rule("nodePropertyOverrides", "nodeOverrides.nodePropertyOverrides"))]
pub struct NodeOverrides {
    /// Replaces the definition's number of nodes (1–1,000). The definition's ranges must still
    /// cover every node: a range open at the top ("a:") grows with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_NUM_NODES))]
    pub num_nodes: Option<i32>,
    /// Per-range container overrides (at most 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_NODE_RANGES))]
    pub node_property_overrides: Vec<NodePropertyOverride>,
}

/// A request to stop the job (AWS CancelJob / TerminateJob): a job that has not started is
/// cancelled, a running one terminated; it ends FAILED with `reason`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Terminate {
    /// Recorded as the job's (or children's) status reason.
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
    /// Array jobs: terminate only these children, e.g. "0-3,7"; absent: the whole job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(format!("self.matches('{INDEX_RANGES_PATTERN}')")).message("arrayIndices must be a comma-separated list of indices and ranges, e.g. \"0-3,7\""))]
    #[schemars(length(min = 1, max = 4096))]
    pub array_indices: Option<String>,
}

/// Spec of a Job (AWS SubmitJob; the job name is `metadata.name`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "batch.barge.dev",
    version = "v1alpha1",
    kind = "Job",
    namespaced,
    shortname = "bjob",
    shortname = "bj",
    category = "barge",
    status = "JobStatusDetail",
    derive = "PartialEq",
    doc = "A Barge job: single, array or multi-node (AWS Batch SubmitJob).",
    validation = crate::common::name_fits_label_value_rule("Job", crate::consts::LABEL_JOB_NAME),
    validation = Rule::new("!self.metadata.name.contains('.')").message("a Job name may not contain '.': it names the job's pods and, for multi-node jobs, a Service"),
    validation = Rule::new("!has(self.spec.dependsOn) || self.spec.dependsOn.all(d, !has(d.jobName) || d.jobName != self.metadata.name)").message("a job cannot depend on itself"),
    // Kubernetes ≥ 1.31: the operator lists the unfinished jobs first on start-up
    // (`status.status!=SUCCEEDED,status.status!=FAILED`), then the finished history.
    selectable = ".status.status",
    printcolumn(name = "Queue", type_ = "string", json_path = ".spec.jobQueue"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.status"),
    printcolumn(name = "Attempts", type_ = "integer", json_path = ".status.attemptCount"),
    printcolumn(name = "Progress", type_ = "string", json_path = ".status.arrayProperties.progress"),
    printcolumn(name = "Nodes", type_ = "string", json_path = ".status.nodeProperties.progress"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.statusReason", priority = 1),
    printcolumn(name = "Definition", type_ = "string", json_path = ".spec.jobDefinition", priority = 1)
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = add_spec_immutability_rules)]
#[x_kube(validation = Rule::new(format!("!has(oldSelf.{MUTABLE_SPEC_FIELD}) || has(self.{MUTABLE_SPEC_FIELD})")).message("terminate cannot be withdrawn once set"))]
#[x_kube(validation = Rule::new("!has(oldSelf.terminate) || !has(self.terminate) || has(oldSelf.terminate.arrayIndices) || !has(self.terminate.arrayIndices)").message("a terminate of the whole job cannot be narrowed to arrayIndices"))]
#[x_kube(validation = Rule::new("!has(self.terminate) || !has(self.terminate.arrayIndices) || has(self.arrayProperties)").message("terminate.arrayIndices applies to array jobs only"))]
#[x_kube(validation = Rule::new("!has(self.terminate) || !has(self.terminate.arrayIndices) || !has(self.arrayProperties) || self.terminate.arrayIndices.findAll('[0-9]+').all(i, int(i) < self.arrayProperties.size)").message("terminate.arrayIndices may only name children below arrayProperties.size (indices start at 0)"))]
#[x_kube(validation = Rule::new("!has(self.dependsOn) || has(self.arrayProperties) || self.dependsOn.all(d, !has(d.type))").message("N_TO_N and SEQUENTIAL dependencies are for array jobs: set arrayProperties.size"))]
#[x_kube(validation = Rule::new("!has(self.nodeOverrides) || !has(self.arrayProperties)").message("a multi-node job (nodeOverrides) cannot be an array job"))]
#[x_kube(validation = Rule::new("!has(self.nodeOverrides) || !has(self.containerOverrides)").message("a multi-node job (nodeOverrides) overrides its nodes' containers in nodeOverrides.nodePropertyOverrides[].containerOverrides, not in containerOverrides"))]
pub struct JobSpec {
    /// Name of the JobQueue.
    #[x_kube(validation = crate::common::object_name_rule("jobQueue"))]
    #[schemars(length(min = 1, max = 253))]
    pub job_queue: String,
    /// `name` (the latest revision when the job is admitted) or `name:revision` of a
    /// JobDefinition in the job's namespace.
    #[x_kube(validation = Rule::new(format!("self.matches('{JOB_DEFINITION_REFERENCE_PATTERN}')")).message("jobDefinition must be the name of a JobDefinition in the job's namespace, optionally followed by :revision (a number from 1), e.g. \"my-def\" or \"my-def:3\""))]
    #[schemars(length(min = 1, max = 263))]
    pub job_definition: String,
    /// Makes this an array job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_properties: Option<ArrayProperties>,
    /// Jobs (in the same namespace) this job waits for, at most 20.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_DEPENDENCIES))]
    pub depends_on: Vec<JobDependency>,
    /// Values of `Ref::name` placeholders (override the definition's defaults).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::common::parameters_schema")]
    pub parameters: BTreeMap<String, String>,
    /// Changes to the definition's container (single and array jobs; a multi-node job uses
    /// `nodeOverrides`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_overrides: Option<ContainerOverrides>,
    /// Changes to a multinode definition's nodes (multi-node jobs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_overrides: Option<NodeOverrides>,
    /// Replaces the definition's retry strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_strategy: Option<RetryStrategy>,
    /// Replaces the definition's timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<JobTimeout>,
    /// Fair-share identifier (required on queues with a scheduling policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_-]+$')").message("shareIdentifier may contain only letters, digits, '-' and '_'"))]
    #[schemars(length(min = 1, max = 255))]
    pub share_identifier: Option<String>,
    /// Replaces the definition's scheduling priority (0–9999).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_SCHEDULING_PRIORITY))]
    pub scheduling_priority_override: Option<i32>,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::common::tags_schema")]
    pub tags: BTreeMap<String, String>,
    /// Copy the tags of the job and definition to its pods (as annotations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate_tags: Option<bool>,
    /// Set to stop the job; it ends FAILED with `terminate.reason`. The only field that may change
    /// after creation; it cannot be removed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate: Option<Terminate>,
    /// Delete the Job this many seconds after it finished (absent: keep it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
}

/// Adds to the JobSpec schema one transition rule per property except `terminate`: the property
/// may be neither added, removed nor changed after creation. Generated from the schema's own
/// properties, so a new spec field is immutable without anyone remembering to say so.
fn add_spec_immutability_rules(schema: &mut schemars::Schema) {
    let fields: Vec<String> = schema
        .get("properties")
        .and_then(serde_json::Value::as_object)
        .map(|props| {
            props
                .keys()
                .filter(|name| name.as_str() != MUTABLE_SPEC_FIELD)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let rules: Vec<serde_json::Value> = fields
        .iter()
        .map(|field| {
            serde_json::json!({
                "rule": format!("has(self.{field}) == has(oldSelf.{field}) && (!has(self.{field}) || self.{field} == oldSelf.{field})"),
                "message": format!("{field} cannot change after the job is created (only terminate may be set)"),
                "fieldPath": format!(".{field}"),
            })
        })
        .collect();
    let entry = schema
        .ensure_object()
        .entry("x-kubernetes-validations")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    if let Some(list) = entry.as_array_mut() {
        list.extend(rules);
    }
}

/// The container side of an attempt (AWS `AttemptContainerDetail`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptContainerDetail {
    /// The container's exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why the container stopped (e.g. OOMKilled, DeadlineExceeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The attempt's pod (for a multinode job, the main node's pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// The node the pod ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Where its log can be read (`<namespace>/<pod>/<container>`), while the pod exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_stream_name: Option<String>,
}

/// One attempt of a job or array child (AWS `AttemptDetail`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptDetail {
    /// The container's result.
    #[serde(default)]
    pub container: AttemptContainerDetail,
    /// When the attempt's container started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Time>,
    /// Why it stopped, e.g. "Essential container in task exited" or "Host EC2 (instance n) terminated.".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
}

/// The definition revision a job resolved and runs (pinned at admission).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedJobDefinition {
    /// The JobDefinition's name.
    pub name: String,
    /// Its revision.
    pub revision: i32,
}

/// Array children between attempts that have made the same number of attempts, waiting to be
/// retried (one entry per attempt count, so the list stays short at any array size).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryingChildren {
    /// Attempts each of these children made so far.
    pub attempts: i32,
    /// The children, as index ranges, e.g. "3,17-20".
    pub indices: String,
}

/// The last attempt of a failed array child.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChildAttempt {
    /// The child's index.
    pub index: i32,
    /// Attempts the child made.
    pub attempts: i32,
    /// Its last attempt.
    pub attempt: AttemptDetail,
}

/// Status of an array job's children (AWS `ArrayPropertiesDetail`, plus Barge's bookkeeping).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArrayStatus {
    /// Number of children.
    pub size: i32,
    /// Children per state.
    #[serde(default)]
    pub status_summary: JobStatusCounts,
    /// Finished children over size, e.g. "42/100" (printer column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Succeeded children as index ranges, e.g. "0-41,43-99".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub succeeded_indices: String,
    /// Failed children as index ranges.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub failed_indices: String,
    /// Children stopped by `terminate` (a subset of the failed ones), as index ranges.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub terminated_indices: String,
    /// Children between attempts, grouped by the attempts they made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ATTEMPTS))]
    pub retrying: Vec<RetryingChildren>,
    /// The last attempt of the most recently failed children (at most 100 are kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_FAILED_ATTEMPT_RECORDS))]
    pub failed_attempts: Vec<ChildAttempt>,
}

/// Status of a group of nodes of a multinode job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeGroupStatus {
    /// The node range, as in the definition's `targetNodes`.
    pub target_nodes: String,
    /// The group's nodes per state.
    #[serde(default)]
    pub status_summary: JobStatusCounts,
}

/// Status of a multi-node job's nodes (AWS `NodeDetails` / `NodeProperties` of DescribeJobs,
/// plus what Kubernetes adds: the main node's pod and the job's headless Service).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePropertiesStatus {
    /// Number of nodes of the job (after `nodeOverrides.numNodes`).
    pub num_nodes: i32,
    /// The main node's index.
    pub main_node: i32,
    /// Running nodes over nodes of the current attempt, e.g. "4/4 nodes" (printer column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// The main node's pod of the current attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_node_pod_name: Option<String>,
    /// The main node's pod IP (what the other nodes get as
    /// `AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_node_private_ipv4_address: Option<String>,
    /// The headless Service that gives every node a DNS name
    /// (`node-<n>.<service>.<namespace>.svc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// The node groups (one per `nodeRangeProperties` entry that applies to some node) and
    /// their nodes per state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_NODE_RANGES))]
    pub node_groups: Vec<NodeGroupStatus>,
}

/// Observed state of a job (the AWS Batch `JobDetail` fields with a Kubernetes meaning).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatusDetail {
    /// SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED or FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
    /// A human-readable reason for the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// The job's id: its uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// When the job was submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
    /// Where the job stands in submission order: the API server's resourceVersion of the job
    /// when Barge first saw it, which is its creation's unless its metadata was edited before
    /// Barge saw it. Jobs created within the same second of `createdAt` run in this order
    /// (FIFO as the API server stored them); kept here so that it survives operator restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission_order: Option<i64>,
    /// When it first became RUNNING.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Time>,
    /// Its attempts, oldest first (for array jobs: none; see arrayProperties).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ATTEMPTS))]
    pub attempts: Vec<AttemptDetail>,
    /// Number of attempts started (printer column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_count: Option<i32>,
    /// The definition revision the job runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_job_definition: Option<ResolvedJobDefinition>,
    /// The queue the job was admitted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_queue: Option<String>,
    /// The compute environment it was placed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_environment: Option<String>,
    /// Array jobs: the children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_properties: Option<ArrayStatus>,
    /// Multi-node jobs: the nodes of the current (or last) attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_properties: Option<NodePropertiesStatus>,
    /// Ready, Schedulable, Succeeded, Failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::common::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A parsed `jobDefinition` reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobDefinitionReference<'a> {
    /// The JobDefinition's name.
    pub name: &'a str,
    /// The pinned revision, or None for the latest.
    pub revision: Option<i32>,
}

/// Why a `jobDefinition` reference is not `name` or `name:N`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid jobDefinition reference {reference:?}: expected \"name\" or \"name:revision\" with a revision from 1")]
pub struct InvalidJobDefinitionReference {
    /// The offending reference.
    pub reference: String,
}

impl JobSpec {
    /// Splits `jobDefinition` into name and optional revision.
    pub fn job_definition_reference(
        &self,
    ) -> Result<JobDefinitionReference<'_>, InvalidJobDefinitionReference> {
        parse_job_definition_reference(&self.job_definition)
    }
}

/// Splits a `name` / `name:N` job definition reference.
pub fn parse_job_definition_reference(
    reference: &str,
) -> Result<JobDefinitionReference<'_>, InvalidJobDefinitionReference> {
    let invalid = || InvalidJobDefinitionReference {
        reference: reference.to_string(),
    };
    let (name, revision) = match reference.split_once(':') {
        None => (reference, None),
        Some((name, revision)) => {
            let revision: i32 = revision.parse().map_err(|_| invalid())?;
            if revision < 1 {
                return Err(invalid());
            }
            (name, Some(revision))
        }
    };
    if name.is_empty() {
        return Err(invalid());
    }
    Ok(JobDefinitionReference { name, revision })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_definition_reference_parses_name_and_revision() {
        assert_eq!(
            parse_job_definition_reference("render"),
            Ok(JobDefinitionReference {
                name: "render",
                revision: None
            })
        );
        assert_eq!(
            parse_job_definition_reference("render:12"),
            Ok(JobDefinitionReference {
                name: "render",
                revision: Some(12)
            })
        );
        assert!(parse_job_definition_reference("render:0").is_err());
        assert!(parse_job_definition_reference("render:x").is_err());
        assert!(parse_job_definition_reference(":3").is_err());
    }

    #[test]
    fn status_counts_get_and_total_agree() {
        let mut counts = JobStatusCounts::default();
        for (n, status) in JobStatus::ALL.iter().enumerate() {
            *counts.get_mut(*status) += n as i32 + 1;
        }
        assert_eq!(counts.get(JobStatus::Runnable), 3);
        assert_eq!(counts.total(), 28);
        let json = serde_json::to_value(&counts).expect("counts serialize");
        assert_eq!(json["RUNNABLE"], 3);
    }

    #[test]
    fn job_status_spelling_matches_serde() {
        for status in JobStatus::ALL {
            assert_eq!(
                serde_json::to_value(status).expect("status serializes"),
                serde_json::json!(status.as_str())
            );
        }
    }
}
