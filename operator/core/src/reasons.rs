//! The AWS Batch status reasons Barge writes, named once.
//!
//! Users match these with `evaluateOnExit.onStatusReason` and
//! `jobStateTimeLimitActions.reason`, so the wording follows the AWS Batch User Guide.

/// A container attempt ended on its own (any exit code). AWS: the ECS task's stopped reason.
pub const ESSENTIAL_CONTAINER_EXITED: &str = "Essential container in task exited";

/// An attempt ran longer than `timeout.attemptDurationSeconds`.
pub const ATTEMPT_DURATION_EXCEEDED: &str = "Job attempt duration exceeded timeout";

/// A dependency of the job (or of this array child) failed.
pub const DEPENDENT_JOB_FAILED: &str = "Dependent Job failed";

/// Used when `spec.terminate` gives no reason.
pub const DEFAULT_TERMINATE_REASON: &str = "Terminated by user request";

/// The code AWS Batch uses for a job whose resource request no instance type can satisfy.
pub const JOB_RESOURCE_REQUIREMENT: &str = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT";

/// The code AWS Batch uses when every compute environment's `maxvCpus` is below the request.
pub const COMPUTE_ENVIRONMENT_MAX_RESOURCE: &str =
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE";

/// The code AWS Batch uses when every compute environment of the queue cannot get the capacity
/// the job needs. Barge shows it on a RUNNABLE job when no usable environment of its queue has
/// a Ready node that could take the job and none is starting one.
pub const INSUFFICIENT_INSTANCE_CAPACITY: &str = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY";

/// The code Barge uses for a multi-node job whose queue's usable compute environments are all
/// SPOT: AWS Batch does not run multi-node parallel jobs on Spot Instances.
pub const MULTI_NODE_ON_SPOT: &str = "MISCONFIGURATION:MULTI_NODE_ON_SPOT";

/// The code AWS Batch uses when every compute environment of the queue is invalid.
pub const ACTION_REQUIRED: &str = "ACTION_REQUIRED";

/// The status reason of a RUNNABLE job no compute environment of its queue can ever run.
pub fn job_resource_requirement() -> String {
    format!(
        "{JOB_RESOURCE_REQUIREMENT} - The job resource requirement (vCPU/memory/GPU) is higher than that can be met by the CE(s) attached to the job queue."
    )
}

/// The status reason of a RUNNABLE job larger than every compute environment's `maxvCpus`.
pub fn compute_environment_max_resource() -> String {
    format!(
        "{COMPUTE_ENVIRONMENT_MAX_RESOURCE} - CE(s) associated with the job queue cannot meet the CPU requirement of the job."
    )
}

/// The status reason of a RUNNABLE multi-node job whose queue offers only SPOT compute
/// environments.
pub fn multi_node_on_spot() -> String {
    format!(
        "{MULTI_NODE_ON_SPOT} - Multi-node parallel jobs aren't supported on compute environments that use Spot Instances."
    )
}

/// The status reason of a RUNNABLE multi-node job with more nodes than any compute environment
/// of its queue can ever hold (one instance per node). It uses AWS Batch's maxvCpus code, which
/// is what users already match in `jobStateTimeLimitActions`.
pub fn gang_too_large() -> String {
    format!(
        "{COMPUTE_ENVIRONMENT_MAX_RESOURCE} - CE(s) associated with the job queue cannot hold an instance for every node of the multi-node job."
    )
}

/// The status reason of a RUNNABLE job for which no environment of its queue has or is starting
/// a node (AWS Batch's wording; `instance_types` names the types the environments use).
pub fn insufficient_instance_capacity(instance_types: &str) -> String {
    format!(
        "{INSUFFICIENT_INSTANCE_CAPACITY} - Service cannot fulfill the capacity requested for instance type {instance_types}"
    )
}

/// The status reason of a RUNNABLE job whose queue has only invalid compute environments.
pub fn environments_invalid() -> String {
    format!("{ACTION_REQUIRED} - CE(s) associated with the job queue are invalid.")
}

/// The status reason of an attempt whose node disappeared (matches `onStatusReason: "Host EC2*"`).
pub fn host_terminated(node_name: &str) -> String {
    format!("Host EC2 (instance {node_name}) terminated.")
}

/// The status reason of a job cancelled by a queue's `jobStateTimeLimitActions`.
pub fn canceled_by_time_limit(reason: &str) -> String {
    format!("Canceled by JobStateTimeLimit action due to reason: {reason}")
}

/// The status reason of an attempt whose pod vanished before Barge recorded its result
/// (only possible when someone removes Barge's finalizer by hand).
pub fn pod_vanished(pod_name: &str) -> String {
    format!("Pod {pod_name} disappeared before its result was recorded")
}

/// Prefix of the status reason of a job in a dependency cycle.
pub const DEPENDENCY_CYCLE: &str = "Dependency cycle";

/// The status reason of a job in a dependency cycle: `Dependency cycle: a → b → a`.
pub fn dependency_cycle(path: &[String]) -> String {
    format!("{DEPENDENCY_CYCLE}: {}", path.join(" → "))
}

/// Prefix of the status reason of a job whose dependency never appeared.
pub const DEPENDENCY_NOT_FOUND: &str = "Dependency not found";

/// The status reason of a job whose dependency `name` was still missing after the grace period.
pub fn dependency_not_found(name: &str, grace_seconds: i64) -> String {
    format!("{DEPENDENCY_NOT_FOUND}: job {name:?} does not exist (waited {grace_seconds} s)")
}

/// Prefix of the status reason of an attempt whose pod the API server kept refusing to create
/// (match it with `evaluateOnExit: [{onStatusReason: "PodCreationRefused*", action: EXIT}]`).
pub const POD_CREATION_REFUSED: &str = "PodCreationRefused";

/// The status reason of an attempt whose pod creation was refused: `PodCreationRefused: <the
/// API server's message>`.
pub fn pod_creation_refused(message: &str) -> String {
    format!("{POD_CREATION_REFUSED}: {message}")
}

/// The status reason of a multi-node job whose `mainNode` is not one of its nodes (e.g. after
/// `nodeOverrides.numNodes` shrank the gang).
pub fn main_node_out_of_range(main_node: u32, num_nodes: u32) -> String {
    format!("nodeProperties.mainNode {main_node} is not a node index below numNodes {num_nodes}")
}

/// The status reason of an array parent that ended with failed children.
pub fn array_children_failed(failed: u64, size: u32) -> String {
    format!("{failed} of {size} child jobs failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glob::Glob;

    #[test]
    fn host_reason_matches_the_documented_retry_pattern() {
        let glob = Glob::text("Host EC2*").expect("valid");
        assert!(glob.matches(&host_terminated("sim-node-3")));
        assert_eq!(host_terminated("n1"), "Host EC2 (instance n1) terminated.");
    }

    #[test]
    fn misconfiguration_reasons_start_with_their_code() {
        assert!(job_resource_requirement().starts_with(JOB_RESOURCE_REQUIREMENT));
        assert!(compute_environment_max_resource().starts_with(COMPUTE_ENVIRONMENT_MAX_RESOURCE));
        assert!(environments_invalid().starts_with(ACTION_REQUIRED));
        assert!(multi_node_on_spot().starts_with("MISCONFIGURATION:"));
        assert!(multi_node_on_spot().starts_with(MULTI_NODE_ON_SPOT));
        assert!(gang_too_large().starts_with(COMPUTE_ENVIRONMENT_MAX_RESOURCE));
        assert_eq!(
            insufficient_instance_capacity("c5.large"),
            "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested for instance type c5.large"
        );
        assert_eq!(
            canceled_by_time_limit(JOB_RESOURCE_REQUIREMENT),
            "Canceled by JobStateTimeLimit action due to reason: MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"
        );
    }
}
