//! Names shared with the rest of the simulated cluster and with Kubernetes itself: label and
//! annotation keys of the sim contract, condition types, reasons and messages a kubelet reports.
//! Named once here so that call sites never repeat a literal.

/// Label that marks a Node as owned by the simulated kubelet.
pub const LABEL_SIMULATED: &str = "sim.barge.dev/simulated";
/// Default label selector for the Nodes the kubelet owns.
pub const DEFAULT_NODE_SELECTOR: &str = "sim.barge.dev/simulated=true";
/// Node annotation: JSON object resource name → quantity string.
pub const ANNOTATION_CAPACITY: &str = "sim.barge.dev/capacity";
/// Node annotation: decimal seconds before the node turns Ready.
pub const ANNOTATION_BOOT_DELAY: &str = "sim.barge.dev/boot-delay-seconds";
/// Node annotation (`sim.barge.dev/lost`) set by the sim API server's node-loss fault: the kubelet
/// stops heartbeating and stops running the node's pods. Any value other than "false" counts.
pub const ANNOTATION_NODE_KILLED: &str = crate::apiserver::admin::LOST_ANNOTATION;
/// Pod annotation: `scripted` or `process`.
pub const ANNOTATION_RUNTIME: &str = "sim.barge.dev/runtime";
/// Pod annotation (scripted runtime): decimal seconds each container runs.
pub const ANNOTATION_DURATION: &str = "sim.barge.dev/duration-seconds";
/// Pod annotation (scripted runtime): exit code of each container.
pub const ANNOTATION_EXIT_CODE: &str = "sim.barge.dev/exit-code";
/// Pod annotation (scripted runtime): `"true"` makes each container end OOMKilled (exit 137).
pub const ANNOTATION_OOM_KILLED: &str = "sim.barge.dev/oom-killed";

/// Field manager of every write the kubelet makes.
pub const FIELD_MANAGER: &str = "barge-sim-kubelet";
/// Scheduler name the kubelet binds for (when binding is enabled).
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";
/// Namespace of node heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// Lease duration a kubelet announces (kubelet's nodeLeaseDurationSeconds default).
pub const NODE_LEASE_DURATION_SECONDS: i32 = 40;
/// Version string reported in node.status.nodeInfo.
pub const KUBELET_VERSION: &str = "v1.35.0-sim";
/// Loopback address of every simulated node (its InternalIP and the log server's bind address).
pub const NODE_IP: &str = "127.0.0.1";

// Pod phases.
pub const PHASE_PENDING: &str = "Pending";
pub const PHASE_RUNNING: &str = "Running";
pub const PHASE_SUCCEEDED: &str = "Succeeded";
pub const PHASE_FAILED: &str = "Failed";

// Restart policies.
pub const RESTART_ALWAYS: &str = "Always";
pub const RESTART_ON_FAILURE: &str = "OnFailure";
pub const RESTART_NEVER: &str = "Never";

// Condition types (pods and nodes) and statuses.
pub const COND_POD_SCHEDULED: &str = "PodScheduled";
pub const COND_READY_TO_START: &str = "PodReadyToStartContainers";
pub const COND_INITIALIZED: &str = "Initialized";
pub const COND_CONTAINERS_READY: &str = "ContainersReady";
pub const COND_READY: &str = "Ready";
pub const COND_MEMORY_PRESSURE: &str = "MemoryPressure";
pub const COND_DISK_PRESSURE: &str = "DiskPressure";
pub const COND_PID_PRESSURE: &str = "PIDPressure";
pub const TRUE: &str = "True";
pub const FALSE: &str = "False";

// Reasons.
pub const REASON_CONTAINER_CREATING: &str = "ContainerCreating";
pub const REASON_POD_INITIALIZING: &str = "PodInitializing";
pub const REASON_COMPLETED: &str = "Completed";
pub const REASON_ERROR: &str = "Error";
pub const REASON_OOM_KILLED: &str = "OOMKilled";
pub const REASON_CRASH_LOOP: &str = "CrashLoopBackOff";
pub const REASON_CONFIG_ERROR: &str = "CreateContainerConfigError";
pub const REASON_STATUS_UNKNOWN: &str = "ContainerStatusUnknown";
pub const REASON_POD_COMPLETED: &str = "PodCompleted";
pub const REASON_CONTAINERS_NOT_READY: &str = "ContainersNotReady";
pub const REASON_CONTAINERS_NOT_INITIALIZED: &str = "ContainersNotInitialized";
pub const REASON_DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";
pub const REASON_KUBELET_READY: &str = "KubeletReady";
pub const REASON_KUBELET_NOT_READY: &str = "KubeletNotReady";
pub const REASON_KUBELET_HAS_SUFFICIENT_MEMORY: &str = "KubeletHasSufficientMemory";
pub const REASON_KUBELET_HAS_NO_DISK_PRESSURE: &str = "KubeletHasNoDiskPressure";
pub const REASON_KUBELET_HAS_SUFFICIENT_PID: &str = "KubeletHasSufficientPID";

// Messages, worded as the kubelet words them.
pub const MESSAGE_DEADLINE_EXCEEDED: &str =
    "Pod was active on the node longer than the specified deadline";
pub const MESSAGE_POD_REJECTED_PREFIX: &str = "Pod was rejected: ";
pub const MESSAGE_KUBELET_READY: &str = "kubelet is posting ready status";
pub const MESSAGE_KUBELET_NOT_READY: &str =
    "container runtime status check may not have completed yet";
pub const MESSAGE_STATUS_UNKNOWN: &str =
    "The container could not be located when the pod was terminated";
pub const MESSAGE_NO_ENTRYPOINT: &str =
    "barge-sim: container has no command; the image entrypoint is not simulated, exiting 0";

/// Exit code of a container stopped by SIGTERM (128 + 15).
pub const EXIT_SIGTERM: i32 = 143;
/// Exit code of a container stopped by SIGKILL (128 + 9).
pub const EXIT_SIGKILL: i32 = 137;

/// Resource names with special meaning.
pub const RESOURCE_CPU: &str = "cpu";
pub const RESOURCE_MEMORY: &str = "memory";
pub const RESOURCE_PODS: &str = "pods";
