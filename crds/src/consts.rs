//! Every name Barge components share: the API group, label and annotation keys, the finalizers,
//! field managers, condition types and reasons, AWS Batch status reasons and environment variables,
//! and the contract between the operator and the simulated cluster (`sim.barge.dev/...`).
//!
//! Components import these constants instead of spelling the strings, so a name is written
//! exactly once in the code base.

// ---------------------------------------------------------------------------------------------
// API
// ---------------------------------------------------------------------------------------------

/// The API group of every Barge kind.
pub const GROUP: &str = "batch.barge.dev";
/// The (only) served and stored version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every Barge object.
pub const API_VERSION: &str = "batch.barge.dev/v1alpha1";
/// The category every Barge CRD belongs to: `kubectl get barge` lists everything.
pub const CATEGORY: &str = "barge";

/// Kind names.
pub const KIND_COMPUTE_ENVIRONMENT: &str = "ComputeEnvironment";
pub const KIND_JOB_QUEUE: &str = "JobQueue";
pub const KIND_SCHEDULING_POLICY: &str = "SchedulingPolicy";
pub const KIND_JOB_DEFINITION: &str = "JobDefinition";
pub const KIND_JOB: &str = "Job";

// ---------------------------------------------------------------------------------------------
// Labels, annotations, taints and finalizers on objects Barge creates
// ---------------------------------------------------------------------------------------------

/// The standard "managed by" label; every object Barge creates carries it.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`] on Barge's objects.
pub const MANAGED_BY_BARGE: &str = "barge";

/// Pod label: name of the Barge Job the pod runs an attempt of.
pub const LABEL_JOB_NAME: &str = "batch.barge.dev/job-name";
/// Pod label: uid of the Barge Job (tells a re-created job of the same name apart).
pub const LABEL_JOB_UID: &str = "batch.barge.dev/job-uid";
/// Pod label: attempt number, 1-based.
pub const LABEL_ATTEMPT: &str = "batch.barge.dev/attempt";
/// Pod label: index of the array child the pod runs.
pub const LABEL_ARRAY_INDEX: &str = "batch.barge.dev/array-index";
/// Pod label: node index of a multi-node job's pod.
pub const LABEL_NODE_INDEX: &str = "batch.barge.dev/node-index";
/// Pod label, set to "true" in the same patch that releases the result finalizer of an array
/// child's pod that `--array-pod-retention` lets go: the job controller deletes such pods in
/// batches (one DELETE of the collection its job uid and this label select).
pub const LABEL_DISPOSABLE: &str = "batch.barge.dev/disposable";
/// On the main node's pod of a multi-node job: the Kubernetes node reserved for each node of
/// the gang, comma-separated in node-index order (e.g. "ip-1,ip-7,ip-3"). Written when the
/// gang is placed, before any other node's pod exists, so that the reservation survives an
/// operator restart and the other nodes' pods go exactly there.
pub const ANNOTATION_GANG_NODES: &str = "batch.barge.dev/gang-nodes";
/// Pod label: the job queue the job was submitted to.
/// Pod annotation: the job's `shareIdentifier` (fair-share usage is counted per queue and share
/// from the pods; an annotation because identifiers may be longer than a label value).
pub const ANNOTATION_SHARE_IDENTIFIER: &str = "batch.barge.dev/share-identifier";
pub const LABEL_JOB_QUEUE: &str = "batch.barge.dev/job-queue";
/// Pod and node label (and node taint key): the compute environment.
pub const LABEL_COMPUTE_ENVIRONMENT: &str = "batch.barge.dev/compute-environment";
/// Taint key on the nodes of a compute environment (`<key>=<ce-name>:NoSchedule`); only Barge
/// pods tolerate it.
pub const TAINT_COMPUTE_ENVIRONMENT: &str = LABEL_COMPUTE_ENVIRONMENT;
/// Label on ControllerRevisions that keep the revisions of a JobDefinition.
pub const LABEL_JOB_DEFINITION: &str = "batch.barge.dev/job-definition";
/// Pod label: the revision of the JobDefinition the attempt runs (beside [`LABEL_JOB_DEFINITION`]).
pub const LABEL_JOB_DEFINITION_REVISION: &str = "batch.barge.dev/job-definition-revision";
/// Well-known node label holding the instance type.
pub const LABEL_INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
/// Label Barge puts in the pod template of the Cluster API MachineDeployments a `clusterAPI`
/// compute environment names (`spec.template.metadata.labels`): Cluster API propagates it in
/// place, without a rollout, to the Machines and — being under `node.cluster.x-k8s.io` — on to
/// their Nodes, which makes them candidate members of the environment.
pub const LABEL_CLUSTER_API_COMPUTE_ENVIRONMENT: &str =
    "node.cluster.x-k8s.io/barge-compute-environment";
/// Label beside [`LABEL_CLUSTER_API_COMPUTE_ENVIRONMENT`]: the name of the MachineDeployment
/// (which tells a Node's deployment without reading its Machine).
pub const LABEL_CLUSTER_API_MACHINE_DEPLOYMENT: &str =
    "node.cluster.x-k8s.io/barge-machine-deployment";
/// Prefix of label keys Barge reserves for itself (user tags may not use it).
pub const RESERVED_LABEL_PREFIX: &str = "batch.barge.dev/";
/// Prefix of the pod volumes Barge adds itself (`barge-dev-shm` for
/// `linuxParameters.sharedMemorySize`, `barge-tmpfs-<i>` for `linuxParameters.tmpfs`); the
/// volumes of `containerProperties` may not use it.
pub const RESERVED_VOLUME_PREFIX: &str = "barge-";

/// Name of the container Barge renders from an AWS-shaped `containerProperties` (the essential
/// container of the attempt's pod, whose log `barge logs` shows).
pub const MAIN_CONTAINER_NAME: &str = "main";

/// Finalizer on Barge pods: removed only once the attempt's result is recorded in the job status.
pub const FINALIZER_ATTEMPT_RESULT: &str = "batch.barge.dev/attempt-result";
/// Finalizer on compute environments and job queues that are still in use.
pub const FINALIZER_IN_USE: &str = "batch.barge.dev/in-use";

// ---------------------------------------------------------------------------------------------
// Field managers (server-side apply): one per writer
// ---------------------------------------------------------------------------------------------

pub const FIELD_MANAGER_JOB_CONTROLLER: &str = "barge-job-controller";
pub const FIELD_MANAGER_SCHEDULER: &str = "barge-scheduler";
pub const FIELD_MANAGER_COMPUTE_ENVIRONMENT_CONTROLLER: &str =
    "barge-compute-environment-controller";
pub const FIELD_MANAGER_JOB_QUEUE_CONTROLLER: &str = "barge-job-queue-controller";
pub const FIELD_MANAGER_JOB_DEFINITION_CONTROLLER: &str = "barge-job-definition-controller";
pub const FIELD_MANAGER_SCHEDULING_POLICY_CONTROLLER: &str = "barge-scheduling-policy-controller";
/// The `clusterAPI` provider's labels in MachineDeployment templates (its own manager, so it
/// never touches the user's fields).
pub const FIELD_MANAGER_CLUSTER_API_PROVIDER: &str = "barge-cluster-api-provider";
/// The `barge` command line (submit, terminate, ...).
pub const FIELD_MANAGER_CLI: &str = "barge-cli";
/// `barge demo`, applying its sample workload.
pub const FIELD_MANAGER_DEMO: &str = "barge-demo";

// ---------------------------------------------------------------------------------------------
// Conditions (Kubernetes API conventions: CamelCase types and reasons)
// ---------------------------------------------------------------------------------------------

/// The object is usable (CE/queue VALID, definition resolvable, policy valid) / the job ended
/// SUCCEEDED (docs/gitops.md: what GitOps tools make of it). Its `observedGeneration` is the
/// generation it describes.
pub const CONDITION_READY: &str = "Ready";
/// True (`Placed`) once a pod of the job's current attempt exists; False with the reason it has
/// none (waiting for admission, dependencies or capacity, blocked by the scheduler, never placed).
pub const CONDITION_SCHEDULABLE: &str = "Schedulable";
/// The job ended SUCCEEDED.
pub const CONDITION_SUCCEEDED: &str = "Succeeded";
/// The job ended FAILED.
pub const CONDITION_FAILED: &str = "Failed";
/// kstatus' abnormal-true condition: the object cannot make progress until its spec changes (an
/// invalid spec) or ever (a FAILED job). Written only while True; Flux and kstatus report such an
/// object Failed instead of waiting for it to become Ready.
pub const CONDITION_STALLED: &str = "Stalled";

pub const REASON_VALID: &str = "Valid";
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
pub const REASON_JOB_DEFINITION_NOT_FOUND: &str = "JobDefinitionNotFound";
pub const REASON_JOB_QUEUE_NOT_FOUND: &str = "JobQueueNotFound";
pub const REASON_JOB_QUEUE_DISABLED: &str = "JobQueueDisabled";
pub const REASON_COMPUTE_ENVIRONMENT_NOT_FOUND: &str = "ComputeEnvironmentNotFound";
pub const REASON_SCHEDULING_POLICY_NOT_FOUND: &str = "SchedulingPolicyNotFound";
pub const REASON_NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
/// A job without `shareIdentifier` submitted to a queue with a scheduling policy.
pub const REASON_SHARE_IDENTIFIER_REQUIRED: &str = "ShareIdentifierRequired";
pub const REASON_NO_INSTANCE_TYPE_FITS: &str = "NoInstanceTypeFits";
pub const REASON_EXCEEDS_MAX_VCPUS: &str = "ExceedsMaxvCpus";
pub const REASON_WAITING_FOR_CAPACITY: &str = "WaitingForCapacity";
/// Job `Schedulable=True`: a pod of the current (or, once finished, the last) attempt was created.
pub const REASON_PLACED: &str = "Placed";
/// Job `Schedulable=False`: the job finished without any pod ever being created.
pub const REASON_NEVER_PLACED: &str = "NeverPlaced";
/// Job `Schedulable=False`: SUBMITTED, not admitted yet (no more specific reason known).
pub const REASON_SUBMITTED: &str = "Submitted";
/// Job/queue/CE: no usable compute environment has a Ready node, and none is starting one
/// (a compute environment or queue: it has no Ready node now).
pub const REASON_NO_READY_NODES: &str = "NoReadyNodes";
/// Job `Schedulable=False`: no Ready node could take the job and none that could is starting.
pub const REASON_INSUFFICIENT_CAPACITY: &str = "InsufficientCapacity";
pub const REASON_COMPUTE_ENVIRONMENTS_DISABLED: &str = "ComputeEnvironmentsDisabled";
pub const REASON_COMPUTE_ENVIRONMENTS_INVALID: &str = "ComputeEnvironmentsInvalid";
/// Job `Schedulable=False`: a strict-FIFO queue waits for its head job.
pub const REASON_WAITING_FOR_QUEUE_HEAD: &str = "WaitingForQueueHead";
/// Job `Schedulable=False`: the job was placed but its pod could not be created.
pub const REASON_POD_CREATION_FAILED: &str = "PodCreationFailed";
/// Job condition reason: a multi-node job whose queue's usable compute environments are all SPOT.
pub const REASON_MULTI_NODE_ON_SPOT: &str = "MultiNodeOnSpot";
/// Job condition reason: a multi-node job's gang is larger than any compute environment of its
/// queue can hold.
pub const REASON_GANG_TOO_LARGE: &str = "GangTooLarge";
/// Job `Succeeded=True` / `Failed=False`: the job ended SUCCEEDED.
pub const REASON_JOB_SUCCEEDED: &str = "JobSucceeded";
/// Job `Succeeded=False` / `Failed=True`: the job ended FAILED.
pub const REASON_JOB_FAILED: &str = "JobFailed";
/// Job `Succeeded=False` / `Failed=False`: the job has not finished.
pub const REASON_IN_PROGRESS: &str = "InProgress";
pub const REASON_DEPENDENCIES_PENDING: &str = "DependenciesPending";
pub const REASON_DEPENDENCY_FAILED: &str = "DependencyFailed";
pub const REASON_ALL_SUCCEEDED: &str = "AllSucceeded";
pub const REASON_ATTEMPTS_EXHAUSTED: &str = "AttemptsExhausted";
pub const REASON_EXITED: &str = "Exited";
pub const REASON_TERMINATED: &str = "Terminated";
pub const REASON_TIMED_OUT: &str = "TimedOut";
pub const REASON_CANCELED: &str = "Canceled";

// ---------------------------------------------------------------------------------------------
// AWS Batch status reasons (what users match with evaluateOnExit / jobStateTimeLimitActions)
// ---------------------------------------------------------------------------------------------

/// `statusReason` of a job failed because a job it depends on failed.
pub const STATUS_REASON_DEPENDENT_JOB_FAILED: &str = "Dependent Job failed";
/// `statusReason` of an attempt stopped by `timeout.attemptDurationSeconds`.
pub const STATUS_REASON_TIMEOUT: &str = "Job attempt duration exceeded timeout";
/// Prefix of the status reason of an attempt whose node disappeared (`onStatusReason: "Host EC2*"`).
pub const STATUS_REASON_HOST_TERMINATED_PREFIX: &str = "Host EC2";
/// `jobStateTimeLimitActions` reason: all compute environments have too few maxvCpus for the job.
pub const BLOCKED_REASON_COMPUTE_ENVIRONMENT_MAX_RESOURCE: &str =
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE";
/// `jobStateTimeLimitActions` reason: no instance type of any compute environment fits the job.
pub const BLOCKED_REASON_JOB_RESOURCE_REQUIREMENT: &str =
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT";
/// `jobStateTimeLimitActions` reason: the compute environments cannot get capacity.
pub const BLOCKED_REASON_INSUFFICIENT_INSTANCE_CAPACITY: &str =
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY";
/// Prefix of the status reason of a job cancelled by a `jobStateTimeLimitActions` entry; AWS Batch
/// appends the action's reason.
pub const STATUS_REASON_CANCELED_BY_TIME_LIMIT_PREFIX: &str =
    "Canceled by JobStateTimeLimit action due to reason: ";

/// Which pod of an attempt a name is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptPod {
    /// The pod of a single (non-array, single-node) job.
    Single,
    /// The pod of array child `index`.
    ArrayChild(u32),
    /// The pod of node `index` of a multi-node job.
    Node(u32),
}

/// The deterministic name of an attempt's pod: `<job>-<attempt>`, `<job>-<attempt>-<index>` for
/// an array child, `<job>-<attempt>-node-<n>` for a node of a multi-node job. A re-created pod
/// gets the same name, so the API server answers AlreadyExists instead of making a twin.
pub fn attempt_pod_name(job: &str, attempt: u32, pod: AttemptPod) -> String {
    match pod {
        AttemptPod::Single => format!("{job}-{attempt}"),
        AttemptPod::ArrayChild(index) => format!("{job}-{attempt}-{index}"),
        AttemptPod::Node(node) => format!("{job}-{attempt}-node-{node}"),
    }
}

/// The status reason of an attempt whose node was lost, as AWS Batch words it.
pub fn host_terminated_status_reason(node_name: &str) -> String {
    format!("{STATUS_REASON_HOST_TERMINATED_PREFIX} (instance {node_name}) terminated.")
}

// ---------------------------------------------------------------------------------------------
// Environment variables set in every container of a job
// ---------------------------------------------------------------------------------------------

/// Users may not set environment variables with this prefix (refused by the CRD schema). AWS
/// Batch reserves `AWS_BATCH` itself, without the underscore: "Environment variables cannot start
/// with AWS_BATCH" (RegisterJobDefinition, `environment`).
pub const RESERVED_ENV_PREFIX: &str = "AWS_BATCH";
pub const ENV_JOB_ID: &str = "AWS_BATCH_JOB_ID";
pub const ENV_JOB_ATTEMPT: &str = "AWS_BATCH_JOB_ATTEMPT";
pub const ENV_JQ_NAME: &str = "AWS_BATCH_JQ_NAME";
pub const ENV_CE_NAME: &str = "AWS_BATCH_CE_NAME";
pub const ENV_JOB_ARRAY_INDEX: &str = "AWS_BATCH_JOB_ARRAY_INDEX";
pub const ENV_JOB_ARRAY_SIZE: &str = "AWS_BATCH_JOB_ARRAY_SIZE";
pub const ENV_JOB_NODE_INDEX: &str = "AWS_BATCH_JOB_NODE_INDEX";
pub const ENV_JOB_NUM_NODES: &str = "AWS_BATCH_JOB_NUM_NODES";
pub const ENV_JOB_MAIN_NODE_INDEX: &str = "AWS_BATCH_JOB_MAIN_NODE_INDEX";
pub const ENV_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS: &str =
    "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS";

// ---------------------------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------------------------

/// Default extended resource name of GPUs on compute environment nodes.
pub const DEFAULT_GPU_RESOURCE_NAME: &str = "nvidia.com/gpu";
/// `instanceTypes` entry meaning "let Barge choose from the catalog".
pub const INSTANCE_TYPE_OPTIMAL: &str = "optimal";
/// Grace period between SIGTERM and SIGKILL when an attempt times out or is terminated.
pub const TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;

// ---------------------------------------------------------------------------------------------
// Simulated cluster contract (e2e/sim) ⟷ the operator
// ---------------------------------------------------------------------------------------------

/// Node label marking nodes owned by the simulated kubelet (value [`SIM_TRUE`]).
pub const LABEL_SIM_SIMULATED: &str = "sim.barge.dev/simulated";
pub const SIM_TRUE: &str = "true";
/// Node annotation: JSON object resource name → quantity string.
pub const ANNOTATION_SIM_CAPACITY: &str = "sim.barge.dev/capacity";
/// Node annotation overriding the simulated kubelet's boot delay.
pub const ANNOTATION_SIM_BOOT_DELAY_SECONDS: &str = "sim.barge.dev/boot-delay-seconds";
/// Pod annotation choosing the runtime: [`SIM_RUNTIME_SCRIPTED`] or [`SIM_RUNTIME_PROCESS`].
pub const ANNOTATION_SIM_RUNTIME: &str = "sim.barge.dev/runtime";
pub const SIM_RUNTIME_SCRIPTED: &str = "scripted";
pub const SIM_RUNTIME_PROCESS: &str = "process";
/// Pod annotation of the scripted runtime: run time in seconds (decimal, default 0).
pub const ANNOTATION_SIM_DURATION_SECONDS: &str = "sim.barge.dev/duration-seconds";
/// Pod annotation of the scripted runtime: exit code (integer, default 0).
pub const ANNOTATION_SIM_EXIT_CODE: &str = "sim.barge.dev/exit-code";
/// Path prefix of the simulated API server's admin endpoints.
pub const SIM_ADMIN_PATH_PREFIX: &str = "/sim/v1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_terminated_reason_matches_the_aws_wording_and_prefix() {
        let reason = host_terminated_status_reason("node-7");
        assert_eq!(reason, "Host EC2 (instance node-7) terminated.");
        assert!(reason.starts_with(STATUS_REASON_HOST_TERMINATED_PREFIX));
    }

    #[test]
    fn attempt_pod_names_follow_the_contract() {
        assert_eq!(
            attempt_pod_name("render", 1, AttemptPod::Single),
            "render-1"
        );
        assert_eq!(
            attempt_pod_name("render", 2, AttemptPod::ArrayChild(41)),
            "render-2-41"
        );
        assert_eq!(
            attempt_pod_name("mpi", 1, AttemptPod::Node(0)),
            "mpi-1-node-0"
        );
    }

    #[test]
    fn api_version_is_group_slash_version() {
        assert_eq!(API_VERSION, format!("{GROUP}/{VERSION}"));
        assert!(LABEL_JOB_NAME.starts_with(RESERVED_LABEL_PREFIX));
        assert!(RESERVED_LABEL_PREFIX.starts_with(GROUP));
    }
}
