//! Pieces of the AWS Batch job model shared by JobDefinition and Job: container properties (the
//! AWS shape), resource requirements, environment, volumes, retry strategy and timeout, and the
//! per-job overrides of a container.
//!
//! Field names are AWS Batch's, so a `containerProperties` block of a RegisterJobDefinition
//! document pastes in unchanged. Where AWS has no Kubernetes counterpart the type says so and the
//! importer reports the field; where Kubernetes needs a different value (a user *name*, a secret
//! ARN) the field documents the Kubernetes form and a CEL rule explains it to users.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, EmptyDirVolumeSource, PersistentVolumeClaimVolumeSource,
    SecretVolumeSource,
};
use kube::KubeSchema;

use crate::common::MAX_ENV_VARS;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most entries of `resourceRequirements` (one per type).
pub const MAX_RESOURCE_REQUIREMENTS: usize = 3;
/// Most `evaluateOnExit` entries (AWS Batch: up to 5).
pub const MAX_EVALUATE_ON_EXIT: usize = 5;
/// Retry attempts bounds (AWS Batch: 1–10).
pub const MIN_ATTEMPTS: i32 = 1;
pub const MAX_ATTEMPTS: i32 = 10;
/// Longest `evaluateOnExit` glob (AWS Batch: 512 characters).
pub const MAX_GLOB_LENGTH: usize = 512;
/// Most volumes / mount points / secrets / ulimits / tmpfs mounts / command words of a container.
pub const MAX_VOLUMES: usize = 64;
pub const MAX_COMMAND_WORDS: usize = 256;
/// Most node range groups of a multinode job (AWS Batch: 5).
pub const MAX_NODE_RANGES: usize = 5;
/// Most nodes of a multinode job (AWS Batch: 1,000).
pub const MAX_NUM_NODES: i32 = 1000;

/// Glob of `onExitCode`: digits, optionally ending with `*`.
pub const EXIT_CODE_GLOB_PATTERN: &str = "^[0-9]*[*]?$";
/// Glob of `onReason` / `onStatusReason`: letters, digits, `.`, `:`, spaces and tabs, optionally
/// ending with `*`. The backslash-t is a CEL string escape: the regular expression receives a tab.
pub const REASON_GLOB_PATTERN: &str = "^[A-Za-z0-9.: \\t]*[*]?$";
/// `targetNodes` of a node range: `n`, `a:b`, `a:` or `:b`.
pub const TARGET_NODES_PATTERN: &str = "^([0-9]+|[0-9]*:[0-9]*)$";

/// A resource kind of `resourceRequirements`.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum ResourceType {
    /// vCPUs (Kubernetes `cpu`); may be fractional, e.g. "0.5".
    #[serde(rename = "VCPU")]
    Vcpu,
    /// Memory in MiB (Kubernetes `memory`).
    #[serde(rename = "MEMORY")]
    Memory,
    /// GPUs (the compute environment's GPU resource name, `nvidia.com/gpu` by default).
    #[serde(rename = "GPU")]
    Gpu,
}

/// One entry of `resourceRequirements` (AWS `ResourceRequirement`): the value is a string, as in
/// AWS Batch.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("self.type != 'VCPU' || self.value.matches('^([0-9]+([.][0-9]+)?)$') && double(self.value) > 0.0").message("a VCPU value must be a positive number of vCPUs, e.g. \"1\" or \"0.5\""))]
#[x_kube(validation = Rule::new("self.type != 'MEMORY' || self.value.matches('^[1-9][0-9]*$')").message("a MEMORY value must be a whole, positive number of MiB, e.g. \"2048\""))]
#[x_kube(validation = Rule::new("self.type != 'GPU' || self.value.matches('^[0-9]+$')").message("a GPU value must be a whole number of GPUs, e.g. \"1\""))]
pub struct ResourceRequirement {
    /// VCPU, MEMORY or GPU.
    #[serde(rename = "type")]
    pub r#type: ResourceType,
    /// The amount: vCPUs (decimal), MiB of memory, or a number of GPUs.
    #[schemars(length(min = 1, max = 16))]
    pub value: String,
}

/// An environment variable (AWS `KeyValuePair`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct EnvironmentVariable {
    /// The variable's name; names starting with `AWS_BATCH` are reserved.
    #[x_kube(validation = crate::common::reserved_env_name_rule())]
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// The value (empty when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A secret exposed as an environment variable (AWS `Secret`). In AWS Batch `valueFrom` is a
/// Secrets Manager or SSM ARN; in Barge it names a key of a Kubernetes Secret in the job's
/// namespace: `<secret-name>:<key>`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// The environment variable to set; names starting with `AWS_BATCH` are reserved.
    #[x_kube(validation = crate::common::reserved_env_name_rule())]
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// `<secret-name>:<key>`: a key of a Secret in the job's namespace.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?:[-._a-zA-Z0-9]+$')").message("valueFrom must be <secret-name>:<key>, naming a key of a Kubernetes Secret in the job's namespace (AWS ARNs have no meaning in Kubernetes)"))]
    #[schemars(length(min = 3, max = 507))]
    pub value_from: String,
}

/// A host directory for a volume (AWS `Host`); without `sourcePath` the volume is scratch space
/// that lives as long as the pod (an emptyDir).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    /// Path on the node to mount (a hostPath volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
}

/// A volume of `containerProperties` (AWS `Volume`, plus Kubernetes sources: AWS's EFS
/// configuration has no Kubernetes meaning, a PersistentVolumeClaim takes its place).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.host) ? 1 : 0) + (has(self.emptyDir) ? 1 : 0) + (has(self.persistentVolumeClaim) ? 1 : 0) + (has(self.configMap) ? 1 : 0) + (has(self.secret) ? 1 : 0) <= 1").message("a volume has at most one source: host, emptyDir, persistentVolumeClaim, configMap or secret"))]
pub struct Volume {
    /// The volume's name, referenced by `mountPoints[].sourceVolume` (a DNS-1123 label, not
    /// starting with `barge-`, which Barge reserves for the volumes it adds).
    #[x_kube(validation = crate::common::reserved_volume_name_rule())]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// A host path (AWS); without a source the volume is an emptyDir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Host>,
    /// Scratch space that lives as long as the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirVolumeSource>,
    /// A PersistentVolumeClaim in the job's namespace (the counterpart of an EFS volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
    /// A ConfigMap in the job's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapVolumeSource>,
    /// A Secret in the job's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretVolumeSource>,
}

/// Where a volume is mounted (AWS `MountPoint`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MountPoint {
    /// Absolute path in the container.
    #[schemars(length(min = 1, max = 4096))]
    pub container_path: String,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Name of one of the container's `volumes`.
    #[schemars(length(min = 1, max = 63))]
    pub source_volume: String,
}

/// A tmpfs mount (AWS `Tmpfs`), an in-memory emptyDir in Kubernetes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tmpfs {
    /// Absolute path in the container.
    #[schemars(length(min = 1, max = 4096))]
    pub container_path: String,
    /// Size in MiB.
    #[schemars(range(min = 1))]
    pub size: i32,
    /// Mount options (informational: Kubernetes emptyDirs take none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub mount_options: Vec<String>,
}

/// Linux-specific settings (AWS `LinuxParameters`, the parts with a Kubernetes meaning).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinuxParameters {
    /// Size of `/dev/shm` in MiB (a memory-backed emptyDir).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub shared_memory_size: Option<i32>,
    /// Run an init process as PID 1 (a shared process namespace in Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_process_enabled: Option<bool>,
    /// In-memory filesystems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub tmpfs: Vec<Tmpfs>,
}

/// A ulimit name (AWS `Ulimit.name`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum UlimitName {
    Core,
    Cpu,
    Data,
    Fsize,
    Locks,
    Memlock,
    Msgqueue,
    Nice,
    Nofile,
    Nproc,
    Rss,
    Rtprio,
    Rttime,
    Sigpending,
    Stack,
}

/// A resource limit for the container's processes (AWS `Ulimit`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.softLimit <= self.hardLimit").message("a ulimit's softLimit must not exceed its hardLimit"))]
pub struct Ulimit {
    /// Which limit.
    pub name: UlimitName,
    /// Soft limit.
    #[schemars(range(min = 0))]
    pub soft_limit: i64,
    /// Hard limit.
    #[schemars(range(min = 0))]
    pub hard_limit: i64,
}

/// CEL rule shared by containers and overrides: the legacy `vcpus` and a VCPU requirement are
/// alternatives, not both.
const VCPUS_EXCLUSIVE_RULE: &str = "!has(self.vcpus) || !has(self.resourceRequirements) || !self.resourceRequirements.exists(r, r.type == 'VCPU')";
const VCPUS_EXCLUSIVE_MESSAGE: &str = "set vCPUs either with vcpus (deprecated) or with a VCPU entry of resourceRequirements, not both";
const MEMORY_EXCLUSIVE_RULE: &str = "!has(self.memory) || !has(self.resourceRequirements) || !self.resourceRequirements.exists(r, r.type == 'MEMORY')";
const MEMORY_EXCLUSIVE_MESSAGE: &str = "set memory either with memory (deprecated) or with a MEMORY entry of resourceRequirements, not both";

/// A container in the AWS Batch shape (`containerProperties`, and the `container` of a node range).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(VCPUS_EXCLUSIVE_RULE).message(VCPUS_EXCLUSIVE_MESSAGE))]
#[x_kube(validation = Rule::new(MEMORY_EXCLUSIVE_RULE).message(MEMORY_EXCLUSIVE_MESSAGE))]
#[x_kube(validation = Rule::new("!has(self.mountPoints) || self.mountPoints.all(m, has(self.volumes) && self.volumes.exists(v, v.name == m.sourceVolume))").message("every mountPoints[].sourceVolume must name one of the container's volumes"))]
pub struct ContainerProperties {
    /// The image to run.
    #[schemars(length(min = 1, max = 1024))]
    pub image: String,
    /// The command (replaces the image's entrypoint arguments); `Ref::name` words are replaced by
    /// the job's parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_COMMAND_WORDS))]
    pub command: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ENV_VARS), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub environment: Vec<EnvironmentVariable>,
    /// vCPUs, memory (MiB) and GPUs, at most one entry per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_RESOURCE_REQUIREMENTS), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub resource_requirements: Vec<ResourceRequirement>,
    /// Deprecated in AWS Batch: vCPUs (use a VCPU resource requirement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub vcpus: Option<i32>,
    /// Deprecated in AWS Batch: memory in MiB (use a MEMORY resource requirement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 4))]
    pub memory: Option<i32>,
    /// Volumes the container mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_VOLUMES), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub volumes: Vec<Volume>,
    /// Where the volumes are mounted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_VOLUMES))]
    pub mount_points: Vec<MountPoint>,
    /// Secrets exposed as environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_VOLUMES), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub secrets: Vec<Secret>,
    /// The user to run as: a numeric uid (optionally `uid:gid`), `root` or `nobody` (Kubernetes
    /// cannot resolve other user names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(:[0-9]+)?|root|nobody)$')").message("user must be a numeric uid (optionally uid:gid), root or nobody: Kubernetes cannot look up other user names"))]
    #[schemars(length(max = 32))]
    pub user: Option<String>,
    /// Run privileged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// Mount the root filesystem read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly_root_filesystem: Option<bool>,
    /// Linux-specific settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux_parameters: Option<LinuxParameters>,
    /// Resource limits of the container's processes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 15))]
    pub ulimits: Vec<Ulimit>,
    /// The Kubernetes service account the pod runs as (Barge's stand-in for `jobRoleArn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = crate::common::object_name_rule("serviceAccountName"))]
    #[schemars(length(max = 253))]
    pub service_account_name: Option<String>,
    /// Instance type for the nodes of a multinode node range (not for single-node jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub instance_type: Option<String>,
}

/// What a job changes in its definition's container (AWS `ContainerOverrides`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(VCPUS_EXCLUSIVE_RULE).message(VCPUS_EXCLUSIVE_MESSAGE))]
#[x_kube(validation = Rule::new(MEMORY_EXCLUSIVE_RULE).message(MEMORY_EXCLUSIVE_MESSAGE))]
pub struct ContainerOverrides {
    /// Replaces the definition's command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_COMMAND_WORDS))]
    pub command: Option<Vec<String>>,
    /// Added to (and overriding by name) the definition's environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ENV_VARS), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub environment: Vec<EnvironmentVariable>,
    /// Replaces the definition's requirements of the same type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_RESOURCE_REQUIREMENTS), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub resource_requirements: Vec<ResourceRequirement>,
    /// Deprecated in AWS Batch: vCPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub vcpus: Option<i32>,
    /// Deprecated in AWS Batch: memory in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 4))]
    pub memory: Option<i32>,
    /// Instance type (multinode jobs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub instance_type: Option<String>,
}

/// What to do when an `evaluateOnExit` entry matches.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RetryAction {
    /// Retry the job (if attempts are left).
    #[serde(rename = "RETRY")]
    Retry,
    /// Do not retry: the job fails.
    #[serde(rename = "EXIT")]
    Exit,
}

/// A condition on a failed attempt and the action to take (AWS `EvaluateOnExit`). All the given
/// globs must match; a glob may end with `*` to match a prefix.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluateOnExit {
    /// Glob on the attempt's status reason, e.g. `Host EC2*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(format!("self.matches('{REASON_GLOB_PATTERN}')")).message("onStatusReason may contain only letters, digits, '.', ':', spaces and tabs, optionally ending with a single '*' (e.g. \"Host EC2*\")"))]
    #[schemars(length(max = MAX_GLOB_LENGTH))]
    pub on_status_reason: Option<String>,
    /// Glob on the container's reason, e.g. `OutOfMemory*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(format!("self.matches('{REASON_GLOB_PATTERN}')")).message("onReason may contain only letters, digits, '.', ':', spaces and tabs, optionally ending with a single '*' (e.g. \"CannotPullContainerError:*\")"))]
    #[schemars(length(max = MAX_GLOB_LENGTH))]
    pub on_reason: Option<String>,
    /// Glob on the decimal exit code, e.g. `137` or `1*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(format!("self.size() > 0 && self.matches('{EXIT_CODE_GLOB_PATTERN}')")).message("onExitCode may contain only digits, optionally ending with a single '*' (e.g. \"137\" or \"1*\")"))]
    #[schemars(length(max = MAX_GLOB_LENGTH))]
    pub on_exit_code: Option<String>,
    /// RETRY or EXIT.
    pub action: RetryAction,
}

/// How failed attempts are retried (AWS `RetryStrategy`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    /// Total attempts, 1–10 (1 = no retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MIN_ATTEMPTS, max = MAX_ATTEMPTS))]
    pub attempts: Option<i32>,
    /// Up to 5 conditions, first match wins; no match means retry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_EVALUATE_ON_EXIT))]
    pub evaluate_on_exit: Vec<EvaluateOnExit>,
}

/// Per-attempt time limit (AWS `JobTimeout`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobTimeout {
    /// Seconds after an attempt's start after which it is stopped (SIGTERM, SIGKILL 30 s later)
    /// and the job fails without retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub attempt_duration_seconds: Option<i32>,
}

/// Tags of definitions and jobs (AWS resource tags).
pub type Tags = BTreeMap<String, String>;

/// CEL rule on a `targetNodes` string.
pub fn target_nodes_rule() -> kube::core::Rule {
    kube::core::Rule::new(format!("self.matches('{TARGET_NODES_PATTERN}')")).message(
        "targetNodes must be a node index or range: \"n\", \"a:b\", \"a:\" (to the last node) or \":b\" (from node 0)",
    )
}

/// CEL rule on an object with a `targetNodes` string: a range `a:b` must not end before it
/// starts.
pub fn target_nodes_order_rule() -> kube::core::Rule {
    kube::core::Rule::new(format!("!self.targetNodes.matches('{TARGET_NODES_PATTERN}') || !self.targetNodes.contains(':') || self.targetNodes.startsWith(':') || self.targetNodes.endsWith(':') || int(self.targetNodes.split(':')[0]) <= int(self.targetNodes.split(':')[1])"))
        .message("a targetNodes range a:b must have a <= b")
}

/// CEL rule on an object with `numNodes` and a list of objects with `targetNodes` (the
/// definition's `nodeRangeProperties`, a job's `nodePropertyOverrides`): every index a range
/// names is below `numNodes`.
pub fn target_nodes_within_rule(list: &str, field: &str) -> kube::core::Rule {
    kube::core::Rule::new(format!("!has(self.numNodes) || !has(self.{list}) || self.{list}.all(r, !r.targetNodes.matches('{TARGET_NODES_PATTERN}') || r.targetNodes.split(':').all(p, p == '' || int(p) < self.numNodes))"))
        .message(kube::core::Message::Message(format!(
            "{field}[].targetNodes may only name node indices below numNodes"
        )))
}

impl RetryStrategy {
    /// Total attempts allowed (1 when unset).
    pub fn effective_attempts(&self) -> i32 {
        self.attempts.unwrap_or(MIN_ATTEMPTS)
    }
}
