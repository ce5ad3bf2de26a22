//! Rendering one attempt of a job (or of one array child) into its Pod, and reading a Pod back
//! into barge-core's [`PodView`]. Everything here is pure: no client, no clock.
//!
//! - [`render_pod`]: the Pod of an attempt (design §2). The pod is named deterministically
//!   (`<job>-<attempt>[-<index>]`), owned by the Job, carries Barge's labels and the
//!   attempt-result finalizer, tolerates and selects its compute environment, and runs either
//!   one container `main` built from the AWS-shaped `containerProperties` or the containers of
//!   the Kubernetes-shaped `podProperties`, with the `AWS_BATCH_*` variables set last.
//! - [`job_request`]: what one pod of a job asks for (millicpu, MiB, GPUs, one pod slot), as the
//!   scheduler counts it and as Kubernetes computes a pod's requests.
//! - [`pod_view`]: labels and status of a pod as the job state machine reads them, including
//!   whether its node was lost (the simulated API server's pod GC and a real cluster's both set a
//!   `DisruptionTarget` condition).

use std::collections::BTreeMap;

use barge_core::job::{PodPhase, PodView};
use barge_core::naming::attempt_pod_name;
use barge_core::quantity;
use barge_core::resources::Resources;
use barge_crds::common::{is_dns_subdomain, is_label_key, is_label_value};
use barge_crds::consts::{
    API_VERSION, DEFAULT_GPU_RESOURCE_NAME, ENV_CE_NAME, ENV_JOB_ARRAY_INDEX, ENV_JOB_ARRAY_SIZE,
    ENV_JOB_ATTEMPT, ENV_JOB_ID, ENV_JQ_NAME, FINALIZER_ATTEMPT_RESULT, KIND_JOB,
    LABEL_ARRAY_INDEX, LABEL_ATTEMPT, LABEL_COMPUTE_ENVIRONMENT, LABEL_JOB_DEFINITION,
    LABEL_JOB_DEFINITION_REVISION, LABEL_JOB_NAME, LABEL_JOB_QUEUE, LABEL_JOB_UID,
    LABEL_MANAGED_BY, LABEL_NODE_INDEX, MAIN_CONTAINER_NAME, MANAGED_BY_BARGE,
    TAINT_COMPUTE_ENVIRONMENT, TERMINATION_GRACE_PERIOD_SECONDS,
};
use barge_crds::job_definition::PodProperties;
use barge_crds::resources::{
    ContainerOverrides, ContainerProperties, EnvironmentVariable, ResourceRequirement,
    ResourceType, Volume as BatchVolume,
};
use barge_crds::{ComputeEnvironment, Job, JobDefinitionSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, EmptyDirVolumeSource, EnvVar, EnvVarSource, HostPathVolumeSource,
    Pod, PodSpec, ResourceRequirements, SecretKeySelector, SecurityContext, Toleration, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use crate::controllers::job_definition::parse_user;
use crate::nodepools::simulated::TAINT_EFFECT_NO_SCHEDULE;

/// `spec.restartPolicy` of every attempt pod: a failed attempt is retried by Barge (as a new
/// pod), never restarted in place by the kubelet.
const RESTART_POLICY_NEVER: &str = "Never";
/// Toleration operator matching the taint's value exactly.
const TOLERATION_OPERATOR_EQUAL: &str = "Equal";
/// emptyDir medium backed by memory (tmpfs).
const MEDIUM_MEMORY: &str = "Memory";
/// Kubernetes resource names.
const RESOURCE_CPU: &str = "cpu";
const RESOURCE_MEMORY: &str = "memory";
/// Name and mount path of the memory-backed volume of `linuxParameters.sharedMemorySize`.
const SHM_VOLUME_NAME: &str = "barge-dev-shm";
const SHM_MOUNT_PATH: &str = "/dev/shm";
/// Prefix of the names of the memory-backed volumes of `linuxParameters.tmpfs`.
const TMPFS_VOLUME_PREFIX: &str = "barge-tmpfs-";
/// Restart policy of an init container that is a sidecar (runs beside the main containers).
const SIDECAR_RESTART_POLICY: &str = "Always";

/// Pod condition set when infrastructure disrupts a pod (pod GC of a vanished node, taint
/// manager, node shutdown, preemption, eviction).
pub const CONDITION_DISRUPTION_TARGET: &str = "DisruptionTarget";
/// `status.reason` of a pod whose node stopped responding (node lifecycle controller).
pub const POD_REASON_NODE_LOST: &str = "NodeLost";
/// `status.reason` of a pod stopped by a graceful node shutdown.
pub const POD_REASON_NODE_SHUTDOWN: &str = "Terminated";
const CONDITION_TRUE: &str = "True";
const PHASE_PENDING: &str = "Pending";

/// One attempt of a job (or of one array child) to render.
pub struct AttemptPod<'a> {
    /// The job; `metadata.name`, `namespace` and `uid` must be set.
    pub job: &'a Job,
    /// The JobDefinition the job resolved, and its revision.
    pub definition_name: &'a str,
    pub definition_revision: i32,
    /// The spec of that revision.
    pub definition: &'a JobDefinitionSpec,
    /// The queue the job was admitted to.
    pub queue: &'a str,
    /// The compute environment the attempt is placed on.
    pub compute_environment: &'a ComputeEnvironment,
    /// Some: Barge binds the pod (`spec.nodeName`); None: the kube-scheduler binds it.
    pub node_name: Option<&'a str>,
    /// 1-based.
    pub attempt: u32,
    /// The array child (array jobs only) and the array's size.
    pub array_index: Option<u32>,
    pub array_size: Option<u32>,
}

/// Why a job's attempt cannot be turned into a Pod. Every variant is permanent: the job fails
/// with the message as its reason.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RenderError {
    /// Multi-node parallel jobs are not implemented yet.
    #[error(
        "multi-node parallel jobs (nodeProperties) are not supported by this version of Barge"
    )]
    MultiNodeNotSupported,
    /// The definition has neither `containerProperties` nor `podProperties`.
    #[error("the job definition has neither containerProperties nor podProperties")]
    NoContainer,
    /// `podProperties` lists no container.
    #[error("podProperties lists no containers")]
    NoPodContainers,
    /// The job object lacks a field the pod needs (name, namespace, uid).
    #[error("the job has no metadata.{0}")]
    MissingJobMetadata(&'static str),
    /// A resource amount that is not a quantity.
    #[error("{field} {value:?} is not a valid amount: {problem}")]
    BadQuantity {
        field: String,
        value: String,
        problem: String,
    },
    /// The compute environment object has no name.
    #[error("the compute environment has no metadata.name")]
    UnnamedComputeEnvironment,
    /// A `user` Kubernetes cannot run as.
    #[error("{0}")]
    BadUser(String),
    /// A secret whose `valueFrom` is not `<secret-name>:<key>`.
    #[error("secret {name}: valueFrom {value_from:?} must be <secret-name>:<key>, a key of a Secret in the job's namespace")]
    BadSecret { name: String, value_from: String },
    /// A name that must become a label value (at most 63 characters) is not one.
    #[error("{what} {value:?} cannot be a label value of the job's pods (at most 63 letters, digits, '-', '_' or '.')")]
    BadLabelValue { what: &'static str, value: String },
    /// A container volume uses a name Barge reserves for its own volumes.
    #[error("volume name {0:?} is reserved by Barge")]
    ReservedVolumeName(String),
}

/// The Pod of one attempt. Deterministic: the same input gives the same Pod.
pub fn render_pod(input: &AttemptPod) -> Result<Pod, RenderError> {
    let job = input.job;
    let definition = input.definition;
    if definition.node_properties.is_some() {
        return Err(RenderError::MultiNodeNotSupported);
    }
    let job_name = job
        .metadata
        .name
        .as_deref()
        .ok_or(RenderError::MissingJobMetadata("name"))?;
    let namespace = job
        .metadata
        .namespace
        .as_deref()
        .ok_or(RenderError::MissingJobMetadata("namespace"))?;
    let uid = job
        .metadata
        .uid
        .as_deref()
        .ok_or(RenderError::MissingJobMetadata("uid"))?;
    let ce_name = input
        .compute_environment
        .metadata
        .name
        .as_deref()
        .filter(|name| !name.is_empty())
        .ok_or(RenderError::UnnamedComputeEnvironment)?;

    let batch_env = batch_environment(input, uid, ce_name);
    let parameters = merged_parameters(definition, job);
    let overrides = job.spec.container_overrides.as_ref();

    let mut spec = if let Some(props) = &definition.container_properties {
        container_pod_spec(
            props,
            overrides,
            &parameters,
            &batch_env,
            input.compute_environment.spec.effective_gpu_resource_name(),
        )?
    } else if let Some(props) = &definition.pod_properties {
        pod_properties_spec(props, overrides, &parameters, &batch_env)?
    } else {
        return Err(RenderError::NoContainer);
    };

    spec.restart_policy = Some(RESTART_POLICY_NEVER.to_string());
    spec.node_name = input.node_name.map(str::to_string);
    spec.termination_grace_period_seconds = Some(TERMINATION_GRACE_PERIOD_SECONDS);
    spec.tolerations = Some(vec![Toleration {
        key: Some(TAINT_COMPUTE_ENVIRONMENT.to_string()),
        operator: Some(TOLERATION_OPERATOR_EQUAL.to_string()),
        value: Some(ce_name.to_string()),
        effect: Some(TAINT_EFFECT_NO_SCHEDULE.to_string()),
        toleration_seconds: None,
    }]);
    spec.node_selector = Some(BTreeMap::from([(
        LABEL_COMPUTE_ENVIRONMENT.to_string(),
        ce_name.to_string(),
    )]));

    let metadata = ObjectMeta {
        name: Some(attempt_pod_name(job_name, input.attempt, input.array_index)),
        namespace: Some(namespace.to_string()),
        labels: Some(pod_labels(input, job_name, uid, ce_name)?),
        annotations: propagated_tags(definition, job),
        owner_references: Some(vec![OwnerReference {
            api_version: API_VERSION.to_string(),
            kind: KIND_JOB.to_string(),
            name: job_name.to_string(),
            uid: uid.to_string(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        finalizers: Some(vec![FINALIZER_ATTEMPT_RESULT.to_string()]),
        ..ObjectMeta::default()
    };
    Ok(Pod {
        metadata,
        spec: Some(spec),
        status: None,
    })
}

/// The pod spec of a Kubernetes-shaped `podProperties`: its containers, init containers, volumes
/// and service account as they are, with `Ref::` parameters substituted in commands and
/// arguments, the job's command and environment overrides applied to the first container, and
/// the `AWS_BATCH_*` variables appended to every container.
fn pod_properties_spec(
    props: &PodProperties,
    overrides: Option<&ContainerOverrides>,
    parameters: &BTreeMap<String, String>,
    batch_env: &[EnvVar],
) -> Result<PodSpec, RenderError> {
    let mut containers = props.containers.clone();
    let first = containers.first_mut().ok_or(RenderError::NoPodContainers)?;
    if let Some(overrides) = overrides {
        if let Some(command) = &overrides.command {
            first.command = Some(command.clone());
        }
        let mut env = first.env.take().unwrap_or_default();
        for var in &overrides.environment {
            set_env(&mut env, env_var(var));
        }
        first.env = (!env.is_empty()).then_some(env);
    }
    let mut init_containers = props.init_containers.clone();
    for container in containers.iter_mut().chain(init_containers.iter_mut()) {
        substitute_container_refs(container, parameters);
        append_batch_env(container, batch_env);
    }
    Ok(PodSpec {
        containers,
        init_containers: (!init_containers.is_empty()).then_some(init_containers),
        volumes: (!props.volumes.is_empty()).then(|| props.volumes.clone()),
        service_account_name: props.service_account_name.clone(),
        ..PodSpec::default()
    })
}

/// The pod's labels; every value is checked, so that a long queue or compute environment name
/// fails the job with a reason instead of a refused pod creation.
fn pod_labels(
    input: &AttemptPod,
    job_name: &str,
    uid: &str,
    ce_name: &str,
) -> Result<BTreeMap<String, String>, RenderError> {
    let mut labels = BTreeMap::new();
    let mut put = |key: &str, what: &'static str, value: &str| {
        if !is_label_value(value) {
            return Err(RenderError::BadLabelValue {
                what,
                value: value.to_string(),
            });
        }
        labels.insert(key.to_string(), value.to_string());
        Ok(())
    };
    put(LABEL_MANAGED_BY, "managed-by", MANAGED_BY_BARGE)?;
    put(LABEL_JOB_NAME, "job name", job_name)?;
    put(LABEL_JOB_UID, "job uid", uid)?;
    put(LABEL_ATTEMPT, "attempt", &input.attempt.to_string())?;
    if let Some(index) = input.array_index {
        put(LABEL_ARRAY_INDEX, "array index", &index.to_string())?;
    }
    put(LABEL_JOB_QUEUE, "job queue", input.queue)?;
    put(LABEL_COMPUTE_ENVIRONMENT, "compute environment", ce_name)?;
    put(
        LABEL_JOB_DEFINITION,
        "job definition",
        input.definition_name,
    )?;
    put(
        LABEL_JOB_DEFINITION_REVISION,
        "job definition revision",
        &input.definition_revision.to_string(),
    )?;
    Ok(labels)
}

/// With `propagateTags` (the job's, else the definition's), the definition's tags overridden by
/// the job's, as pod annotations. Tags whose keys are not valid annotation keys (AWS allows
/// spaces, Kubernetes does not) are left out rather than failing the job.
fn propagated_tags(definition: &JobDefinitionSpec, job: &Job) -> Option<BTreeMap<String, String>> {
    let propagate = job
        .spec
        .propagate_tags
        .or(definition.propagate_tags)
        .unwrap_or(false);
    if !propagate {
        return None;
    }
    let tags: BTreeMap<String, String> = definition
        .tags
        .iter()
        .chain(&job.spec.tags)
        .filter(|(key, _)| is_label_key(key))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!tags.is_empty()).then_some(tags)
}

/// The definition's parameters overridden by the job's.
fn merged_parameters(definition: &JobDefinitionSpec, job: &Job) -> BTreeMap<String, String> {
    let mut parameters = definition.parameters.clone();
    parameters.extend(
        job.spec
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    parameters
}

/// The `AWS_BATCH_*` variables of the attempt, in a fixed order.
fn batch_environment(input: &AttemptPod, uid: &str, ce_name: &str) -> Vec<EnvVar> {
    let job_id = match input.array_index {
        Some(index) => format!("{uid}:{index}"),
        None => uid.to_string(),
    };
    let mut vars = vec![
        (ENV_JOB_ID, job_id),
        (ENV_JOB_ATTEMPT, input.attempt.to_string()),
        (ENV_JQ_NAME, input.queue.to_string()),
        (ENV_CE_NAME, ce_name.to_string()),
    ];
    if let Some(index) = input.array_index {
        vars.push((ENV_JOB_ARRAY_INDEX, index.to_string()));
    }
    if let Some(size) = input.array_size {
        vars.push((ENV_JOB_ARRAY_SIZE, size.to_string()));
    }
    vars.into_iter()
        .map(|(name, value)| EnvVar {
            name: name.to_string(),
            value: Some(value),
            value_from: None,
        })
        .collect()
}

/// Appends the `AWS_BATCH_*` variables to a container's environment (dropping any earlier entry
/// of the same name, so each is set once and last).
fn append_batch_env(container: &mut Container, batch_env: &[EnvVar]) {
    let mut env = container.env.take().unwrap_or_default();
    env.retain(|var| !batch_env.iter().any(|b| b.name == var.name));
    env.extend(batch_env.iter().cloned());
    container.env = Some(env);
}

/// Sets `var` in `env`: replaces the entry of the same name in place, or appends it.
fn set_env(env: &mut Vec<EnvVar>, var: EnvVar) {
    match env.iter_mut().find(|existing| existing.name == var.name) {
        Some(existing) => *existing = var,
        None => env.push(var),
    }
}

/// Whether `key` can be a key of a Secret's data (letters, digits, `-`, `_`, `.`).
fn is_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn env_var(var: &EnvironmentVariable) -> EnvVar {
    EnvVar {
        name: var.name.clone(),
        value: var.value.clone(),
        value_from: None,
    }
}

/// Replaces `Ref::name` in `text` by the value of parameter `name`, as AWS Batch does: the
/// longest parameter name that follows `Ref::` and ends at a word boundary (the next character
/// is not a letter, digit or `_`) is replaced; a reference to an unknown parameter stays as
/// written. Values are inserted as they are (not substituted again).
pub fn substitute_refs(text: &str, parameters: &BTreeMap<String, String>) -> String {
    const MARKER: &str = "Ref::";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(MARKER) {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + MARKER.len()..];
        let known = parameters
            .iter()
            .filter(|(name, _)| {
                !name.is_empty()
                    && after.starts_with(name.as_str())
                    && !after[name.len()..]
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
            .max_by_key(|(name, _)| name.len());
        match known {
            Some((name, value)) => {
                out.push_str(value);
                rest = &after[name.len()..];
            }
            None => {
                out.push_str(MARKER);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn substitute_all(words: &[String], parameters: &BTreeMap<String, String>) -> Vec<String> {
    words
        .iter()
        .map(|word| substitute_refs(word, parameters))
        .collect()
}

fn substitute_container_refs(container: &mut Container, parameters: &BTreeMap<String, String>) {
    if let Some(command) = &container.command {
        container.command = Some(substitute_all(command, parameters));
    }
    if let Some(args) = &container.args {
        container.args = Some(substitute_all(args, parameters));
    }
}

/// Effective vCPUs (millicpu), memory (MiB) and GPUs of an AWS-shaped container after the job's
/// overrides. Per type, in order of precedence: the override's `resourceRequirements`, the
/// override's legacy `vcpus`/`memory`, the definition's `resourceRequirements`, the definition's
/// legacy fields. Absent amounts are None.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct AwsAmounts {
    milli_cpu: Option<i64>,
    memory_mib: Option<i64>,
    gpus: Option<i64>,
}

fn bad_quantity(field: &str, value: &str, err: barge_core::Error) -> RenderError {
    let problem = match err {
        barge_core::Error::Quantity { problem, .. } => problem,
        other => other.to_string(),
    };
    RenderError::BadQuantity {
        field: field.to_string(),
        value: value.to_string(),
        problem,
    }
}

fn requirement_value(list: &[ResourceRequirement], ty: ResourceType) -> Option<String> {
    list.iter()
        .find(|r| r.r#type == ty)
        .map(|r| r.value.clone())
}

fn aws_amounts(
    props: &ContainerProperties,
    overrides: Option<&ContainerOverrides>,
) -> Result<AwsAmounts, RenderError> {
    let empty = Vec::new();
    let override_reqs = overrides.map_or(&empty, |o| &o.resource_requirements);
    let pick = |ty: ResourceType, legacy_override: Option<i32>, legacy: Option<i32>| {
        requirement_value(override_reqs, ty)
            .or(legacy_override.map(|n| n.to_string()))
            .or(requirement_value(&props.resource_requirements, ty))
            .or(legacy.map(|n| n.to_string()))
    };
    let milli_cpu = pick(
        ResourceType::Vcpu,
        overrides.and_then(|o| o.vcpus),
        props.vcpus,
    )
    .map(|value| quantity::aws_vcpus_millis(&value).map_err(|e| bad_quantity("VCPU", &value, e)))
    .transpose()?;
    let memory_mib = pick(
        ResourceType::Memory,
        overrides.and_then(|o| o.memory),
        props.memory,
    )
    .map(|value| quantity::aws_memory_mib(&value).map_err(|e| bad_quantity("MEMORY", &value, e)))
    .transpose()?;
    let gpus = pick(ResourceType::Gpu, None, None)
        .map(|value| quantity::count(&value).map_err(|e| bad_quantity("GPU", &value, e)))
        .transpose()?;
    Ok(AwsAmounts {
        milli_cpu,
        memory_mib,
        gpus,
    })
}

/// Millicpu as a Kubernetes quantity: whole vCPUs as "2", otherwise "500m".
fn cpu_quantity(milli_cpu: i64) -> Quantity {
    if milli_cpu % 1000 == 0 {
        Quantity((milli_cpu / 1000).to_string())
    } else {
        Quantity(format!("{milli_cpu}m"))
    }
}

/// The requests and limits (equal) of an AWS-shaped container.
fn container_resources(amounts: AwsAmounts, gpu_resource_name: &str) -> ResourceRequirements {
    let mut amounts_map = BTreeMap::new();
    if let Some(m) = amounts.milli_cpu {
        amounts_map.insert(RESOURCE_CPU.to_string(), cpu_quantity(m));
    }
    if let Some(mib) = amounts.memory_mib {
        amounts_map.insert(RESOURCE_MEMORY.to_string(), Quantity(format!("{mib}Mi")));
    }
    if let Some(gpus) = amounts.gpus.filter(|n| *n > 0) {
        amounts_map.insert(gpu_resource_name.to_string(), Quantity(gpus.to_string()));
    }
    ResourceRequirements {
        requests: (!amounts_map.is_empty()).then(|| amounts_map.clone()),
        limits: (!amounts_map.is_empty()).then_some(amounts_map),
        claims: None,
    }
}

fn batch_volume(volume: &BatchVolume) -> Volume {
    let mut out = Volume {
        name: volume.name.clone(),
        ..Volume::default()
    };
    if let Some(path) = volume.host.as_ref().and_then(|h| h.source_path.clone()) {
        out.host_path = Some(HostPathVolumeSource { path, type_: None });
    } else if let Some(pvc) = &volume.persistent_volume_claim {
        out.persistent_volume_claim = Some(pvc.clone());
    } else if let Some(config_map) = &volume.config_map {
        out.config_map = Some(config_map.clone());
    } else if let Some(secret) = &volume.secret {
        out.secret = Some(secret.clone());
    } else {
        // An explicit emptyDir, a host without sourcePath, or no source at all: scratch space
        // that lives as long as the pod (AWS: a Docker volume).
        out.empty_dir = Some(volume.empty_dir.clone().unwrap_or_default());
    }
    out
}

fn memory_volume(name: String, size_mib: i32) -> Volume {
    Volume {
        name,
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some(MEDIUM_MEMORY.to_string()),
            size_limit: Some(Quantity(format!("{size_mib}Mi"))),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// The pod spec of an AWS-shaped container (one container, [`MAIN_CONTAINER_NAME`]).
///
/// `ulimits` have no Kubernetes counterpart (the container runtime's defaults apply); they are
/// accepted and ignored, as the importer reports.
fn container_pod_spec(
    props: &ContainerProperties,
    overrides: Option<&ContainerOverrides>,
    parameters: &BTreeMap<String, String>,
    batch_env: &[EnvVar],
    gpu_resource_name: &str,
) -> Result<PodSpec, RenderError> {
    let command = overrides
        .and_then(|o| o.command.as_ref())
        .unwrap_or(&props.command);
    let command = substitute_all(command, parameters);

    let mut env: Vec<EnvVar> = props.environment.iter().map(env_var).collect();
    for var in overrides.into_iter().flat_map(|o| &o.environment) {
        set_env(&mut env, env_var(var));
    }
    for secret in &props.secrets {
        let (name, key) = secret
            .value_from
            .split_once(':')
            .filter(|(name, key)| is_dns_subdomain(name) && is_secret_key(key))
            .ok_or_else(|| RenderError::BadSecret {
                name: secret.name.clone(),
                value_from: secret.value_from.clone(),
            })?;
        set_env(
            &mut env,
            EnvVar {
                name: secret.name.clone(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: name.to_string(),
                        key: key.to_string(),
                        optional: None,
                    }),
                    ..EnvVarSource::default()
                }),
            },
        );
    }

    let mut volumes: Vec<Volume> = Vec::new();
    for volume in &props.volumes {
        if volume.name == SHM_VOLUME_NAME || volume.name.starts_with(TMPFS_VOLUME_PREFIX) {
            return Err(RenderError::ReservedVolumeName(volume.name.clone()));
        }
        volumes.push(batch_volume(volume));
    }
    let mut mounts: Vec<VolumeMount> = props
        .mount_points
        .iter()
        .map(|m| VolumeMount {
            name: m.source_volume.clone(),
            mount_path: m.container_path.clone(),
            read_only: m.read_only,
            ..VolumeMount::default()
        })
        .collect();
    let linux = props.linux_parameters.as_ref();
    if let Some(size) = linux.and_then(|l| l.shared_memory_size) {
        volumes.push(memory_volume(SHM_VOLUME_NAME.to_string(), size));
        mounts.push(VolumeMount {
            name: SHM_VOLUME_NAME.to_string(),
            mount_path: SHM_MOUNT_PATH.to_string(),
            ..VolumeMount::default()
        });
    }
    for (i, tmpfs) in linux.into_iter().flat_map(|l| &l.tmpfs).enumerate() {
        let name = format!("{TMPFS_VOLUME_PREFIX}{i}");
        volumes.push(memory_volume(name.clone(), tmpfs.size));
        mounts.push(VolumeMount {
            name,
            mount_path: tmpfs.container_path.clone(),
            ..VolumeMount::default()
        });
    }

    let (run_as_user, run_as_group) = match props.user.as_deref() {
        Some(user) => {
            let (uid, gid) = parse_user(user).map_err(RenderError::BadUser)?;
            (Some(uid), gid)
        }
        None => (None, None),
    };
    let security_context = SecurityContext {
        run_as_user,
        run_as_group,
        privileged: props.privileged,
        read_only_root_filesystem: props.readonly_root_filesystem,
        ..SecurityContext::default()
    };
    let security_context =
        (security_context != SecurityContext::default()).then_some(security_context);

    let mut container = Container {
        name: MAIN_CONTAINER_NAME.to_string(),
        image: Some(props.image.clone()),
        command: (!command.is_empty()).then_some(command),
        env: (!env.is_empty()).then_some(env),
        resources: Some(container_resources(
            aws_amounts(props, overrides)?,
            gpu_resource_name,
        )),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        security_context,
        ..Container::default()
    };
    append_batch_env(&mut container, batch_env);

    Ok(PodSpec {
        containers: vec![container],
        volumes: (!volumes.is_empty()).then_some(volumes),
        service_account_name: props.service_account_name.clone(),
        share_process_namespace: linux.and_then(|l| l.init_process_enabled),
        ..PodSpec::default()
    })
}

/// What one pod of this job asks for (after `containerOverrides`): millicpu, MiB, GPUs and one
/// pod slot. For `containerProperties`, resource requirements win over the legacy
/// `vcpus`/`memory`, and the job's overrides over the definition. For `podProperties`, as
/// Kubernetes computes a pod's requests: the sum over containers of their requests (their limits
/// where a request is absent), at least the largest init container's; GPUs are the resources
/// named `nvidia.com/gpu` or `<vendor>/gpu`. (A job's `containerOverrides` change only the
/// command and environment of a `podProperties` pod, as [`render_pod`] applies them, not its
/// resources.)
pub fn job_request(job: &Job, definition: &JobDefinitionSpec) -> Result<Resources, RenderError> {
    if definition.node_properties.is_some() {
        return Err(RenderError::MultiNodeNotSupported);
    }
    if let Some(props) = &definition.container_properties {
        let amounts = aws_amounts(props, job.spec.container_overrides.as_ref())?;
        return Ok(Resources::request(
            amounts.milli_cpu.unwrap_or(0),
            amounts.memory_mib.unwrap_or(0),
            amounts.gpus.unwrap_or(0),
        ));
    }
    let Some(props) = &definition.pod_properties else {
        return Err(RenderError::NoContainer);
    };
    if props.containers.is_empty() {
        return Err(RenderError::NoPodContainers);
    }
    let mut main = Resources::ZERO;
    for container in &props.containers {
        main = main.saturating_add(&kube_container_request(container)?);
    }
    // Init containers run one after the other, each beside the sidecars (restartable init
    // containers) started before it; sidecars keep running beside the main containers.
    let mut sidecars = Resources::ZERO;
    let mut init_peak = Resources::ZERO;
    for container in &props.init_containers {
        let request = kube_container_request(container)?;
        if container.restart_policy.as_deref() == Some(SIDECAR_RESTART_POLICY) {
            sidecars = sidecars.saturating_add(&request);
            init_peak = init_peak.max_each(&sidecars);
        } else {
            init_peak = init_peak.max_each(&sidecars.saturating_add(&request));
        }
    }
    let pod = main.saturating_add(&sidecars).max_each(&init_peak);
    Ok(Resources::request(pod.milli_cpu, pod.memory_mib, pod.gpus))
}

fn is_gpu_resource(name: &str) -> bool {
    name == DEFAULT_GPU_RESOURCE_NAME || name.ends_with("/gpu")
}

/// One Kubernetes container's request (its limits where a request is absent); `pods` is zero.
fn kube_container_request(container: &Container) -> Result<Resources, RenderError> {
    let resources = container.resources.as_ref();
    let requests = resources.and_then(|r| r.requests.as_ref());
    let limits = resources.and_then(|r| r.limits.as_ref());
    let mut names: Vec<&String> = requests
        .into_iter()
        .chain(limits)
        .flat_map(|m| m.keys())
        .collect();
    names.sort();
    names.dedup();
    let mut total = Resources::ZERO;
    for name in names {
        let Some(Quantity(value)) = requests
            .and_then(|m| m.get(name))
            .or_else(|| limits.and_then(|m| m.get(name)))
        else {
            continue;
        };
        let field = || format!("podProperties container {} {name}", container.name);
        if name == RESOURCE_CPU {
            total.milli_cpu =
                quantity::cpu_millis(value).map_err(|e| bad_quantity(&field(), value, e))?;
        } else if name == RESOURCE_MEMORY {
            total.memory_mib =
                quantity::memory_mib(value).map_err(|e| bad_quantity(&field(), value, e))?;
        } else if is_gpu_resource(name) {
            let gpus = quantity::count(value).map_err(|e| bad_quantity(&field(), value, e))?;
            total.gpus = total.gpus.saturating_add(gpus);
        }
    }
    Ok(total)
}

fn time_ms(time: &Time) -> i64 {
    time.0.as_millisecond()
}

fn parse_label<T: std::str::FromStr>(
    labels: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<T>, ()> {
    match labels.get(key) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| ()),
    }
}

/// Reads a Pod into the core's [`PodView`]. None when the pod is not a Barge attempt pod (no
/// valid `attempt` label, or a malformed index label).
///
/// The essential container is the first of `spec.containers`. `node_lost` is true when the pod
/// is bound to a node that no longer exists (`node_exists` false) and has not finished, when it
/// has a `DisruptionTarget` condition with status True (pod GC of a vanished node, the taint
/// manager, a node shutdown), or when its `status.reason` is `NodeLost` or `Terminated`.
pub fn pod_view(pod: &Pod, node_exists: bool) -> Option<PodView> {
    let labels = pod.metadata.labels.as_ref()?;
    let attempt: u32 = parse_label(labels, LABEL_ATTEMPT).ok()??;
    if attempt == 0 {
        return None;
    }
    let array_index: Option<u32> = parse_label(labels, LABEL_ARRAY_INDEX).ok()?;
    let node_index: Option<u32> = parse_label(labels, LABEL_NODE_INDEX).ok()?;

    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let phase_text = status
        .and_then(|s| s.phase.as_deref())
        .unwrap_or(PHASE_PENDING);
    let phase = PodPhase::parse(phase_text);
    let node_name = spec.and_then(|s| s.node_name.clone());

    let statuses = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let essential: Option<&ContainerStatus> = match spec.and_then(|s| s.containers.first()) {
        Some(first) => statuses.iter().find(|c| c.name == first.name),
        None => statuses.first(),
    };
    let state = essential.and_then(|c| c.state.as_ref());
    let running = state.and_then(|s| s.running.as_ref());
    let terminated = state.and_then(|s| s.terminated.as_ref());
    let waiting = state.and_then(|s| s.waiting.as_ref());

    let pod_reason = status.and_then(|s| s.reason.clone());
    let disrupted = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == CONDITION_DISRUPTION_TARGET && c.status == CONDITION_TRUE);
    let finished = matches!(phase, PodPhase::Succeeded | PodPhase::Failed);
    let node_gone = node_name.is_some() && !node_exists && !finished;
    let node_lost = node_gone
        || disrupted
        || matches!(
            pod_reason.as_deref(),
            Some(POD_REASON_NODE_LOST) | Some(POD_REASON_NODE_SHUTDOWN)
        );

    Some(PodView {
        name: pod.metadata.name.clone().unwrap_or_default(),
        attempt,
        array_index,
        node_index,
        phase,
        node_name,
        started_at_ms: running
            .and_then(|r| r.started_at.as_ref())
            .or_else(|| terminated.and_then(|t| t.started_at.as_ref()))
            .map(time_ms),
        finished_at_ms: terminated.and_then(|t| t.finished_at.as_ref()).map(time_ms),
        exit_code: terminated.map(|t| t.exit_code),
        container_reason: terminated.and_then(|t| t.reason.clone()),
        pod_reason,
        pod_message: status.and_then(|s| s.message.clone()),
        waiting_reason: waiting.and_then(|w| w.reason.clone()),
        waiting_message: waiting.and_then(|w| w.message.clone()),
        deletion_timestamp_ms: pod.metadata.deletion_timestamp.as_ref().map(time_ms),
        node_lost,
        has_finalizer: pod
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == FINALIZER_ATTEMPT_RESULT)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::aws_job_definition;
    use serde_json::json;

    const UID: &str = "5f0c7a2e-1111-4a4a-9b9b-000000000001";

    fn job(spec: serde_json::Value) -> Job {
        let mut spec = spec;
        let object = spec.as_object_mut().expect("job spec is an object");
        object
            .entry("jobQueue")
            .or_insert_with(|| json!("high-priority"));
        object
            .entry("jobDefinition")
            .or_insert_with(|| json!("render"));
        serde_json::from_value(json!({
            "apiVersion": API_VERSION,
            "kind": KIND_JOB,
            "metadata": {"name": "render", "namespace": "team-a", "uid": UID},
            "spec": spec,
        }))
        .expect("a valid Job")
    }

    fn compute_environment(gpu_resource_name: Option<&str>) -> ComputeEnvironment {
        let mut spec = json!({
            "type": "MANAGED",
            "computeResources": {
                "type": "EC2", "minvCpus": 0, "maxvCpus": 64,
                "provider": {"simulated": {}},
            },
        });
        if let Some(name) = gpu_resource_name {
            spec["gpuResourceName"] = json!(name);
        }
        serde_json::from_value(json!({
            "apiVersion": API_VERSION,
            "kind": "ComputeEnvironment",
            "metadata": {"name": "c4ondemand"},
            "spec": spec,
        }))
        .expect("a valid ComputeEnvironment")
    }

    fn definition(spec: serde_json::Value) -> JobDefinitionSpec {
        serde_json::from_value(spec).expect("a valid JobDefinitionSpec")
    }

    /// Builder of render inputs: attempt 1 of a single job, bound to node-1.
    struct Render {
        job: Job,
        definition: JobDefinitionSpec,
        ce: ComputeEnvironment,
        queue: String,
        node_name: Option<&'static str>,
        attempt: u32,
        array: Option<(u32, u32)>,
    }

    impl Render {
        fn new(definition: JobDefinitionSpec, job: Job) -> Self {
            Render {
                job,
                definition,
                ce: compute_environment(None),
                queue: "high-priority".into(),
                node_name: Some("node-1"),
                attempt: 1,
                array: None,
            }
        }

        fn attempt(mut self, attempt: u32) -> Self {
            self.attempt = attempt;
            self
        }

        fn array_child(mut self, index: u32, size: u32) -> Self {
            self.array = Some((index, size));
            self
        }

        fn unbound(mut self) -> Self {
            self.node_name = None;
            self
        }

        fn ce(mut self, ce: ComputeEnvironment) -> Self {
            self.ce = ce;
            self
        }

        fn queue(mut self, queue: &str) -> Self {
            self.queue = queue.into();
            self
        }

        fn render(&self) -> Result<Pod, RenderError> {
            render_pod(&AttemptPod {
                job: &self.job,
                definition_name: "render",
                definition_revision: 3,
                definition: &self.definition,
                queue: &self.queue,
                compute_environment: &self.ce,
                node_name: self.node_name,
                attempt: self.attempt,
                array_index: self.array.map(|(i, _)| i),
                array_size: self.array.map(|(_, n)| n),
            })
        }

        fn pod(&self) -> Pod {
            self.render().expect("the attempt renders")
        }
    }

    fn main_container(pod: &Pod) -> &Container {
        &pod.spec.as_ref().expect("spec").containers[0]
    }

    fn env_pairs(container: &Container) -> Vec<(String, Option<String>)> {
        container
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect()
    }

    fn env_value(container: &Container, name: &str) -> Option<String> {
        container
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    }

    fn quantities(pod: &Pod, which: &str) -> BTreeMap<String, String> {
        let resources = main_container(pod).resources.as_ref().expect("resources");
        let map = if which == "requests" {
            resources.requests.as_ref()
        } else {
            resources.limits.as_ref()
        };
        map.expect(which)
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect()
    }

    #[test]
    fn every_aws_fixture_renders_except_multinode() {
        for file in crate::test_support::CONTAINER_JOB_DEFINITION_FIXTURES {
            let def = aws_job_definition(file);
            let pod = Render::new(def.clone(), job(json!({})))
                .render()
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            let container = main_container(&pod);
            assert_eq!(container.name, MAIN_CONTAINER_NAME, "{file}");
            assert_eq!(
                container.image.as_deref(),
                def.container_properties.as_ref().map(|c| c.image.as_str()),
                "{file}"
            );
            // The pod serializes (what the API server receives).
            serde_json::to_value(&pod).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        let multinode = aws_job_definition("jobdef-multinode.json");
        assert_eq!(
            Render::new(multinode.clone(), job(json!({}))).render(),
            Err(RenderError::MultiNodeNotSupported)
        );
        assert_eq!(
            job_request(&job(json!({})), &multinode),
            Err(RenderError::MultiNodeNotSupported)
        );
    }

    #[test]
    fn fetch_and_run_maps_legacy_resources_user_and_environment() {
        let pod = Render::new(
            aws_job_definition("jobdef-fetch_and_run.json"),
            job(json!({})),
        )
        .pod();
        let container = main_container(&pod);
        assert_eq!(
            container.command,
            Some(vec!["myjob.sh".to_string(), "60".to_string()])
        );
        let expected = BTreeMap::from([
            ("cpu".to_string(), "2".to_string()),
            ("memory".to_string(), "2000Mi".to_string()),
        ]);
        assert_eq!(quantities(&pod, "requests"), expected);
        assert_eq!(quantities(&pod, "limits"), expected);
        let security = container
            .security_context
            .as_ref()
            .expect("security context");
        assert_eq!(security.run_as_user, Some(65534), "nobody");
        assert_eq!(security.run_as_group, None);
        assert_eq!(
            env_value(container, "BATCH_FILE_TYPE").as_deref(),
            Some("script")
        );
    }

    #[test]
    fn ref_parameters_are_substituted_with_job_values_winning() {
        let def = aws_job_definition("jobdef-ffmpeg_parameters.json");
        let submitted = job(json!({
            "parameters": {"inputfile": "s3://in/a.mov", "outputfile": "s3://out/a.mp4", "codec": "h264"},
        }));
        let pod = Render::new(def.clone(), submitted).pod();
        assert_eq!(
            main_container(&pod).command.as_deref(),
            Some(
                &[
                    "ffmpeg",
                    "-i",
                    "s3://in/a.mov",
                    "-c",
                    "h264",
                    "-o",
                    "s3://out/a.mp4"
                ]
                .map(String::from)[..]
            )
        );
        // Without job parameters: the definition's default for codec, unknown refs left alone.
        let pod = Render::new(def, job(json!({}))).pod();
        assert_eq!(
            main_container(&pod).command.as_deref(),
            Some(
                &[
                    "ffmpeg",
                    "-i",
                    "Ref::inputfile",
                    "-c",
                    "mp4",
                    "-o",
                    "Ref::outputfile"
                ]
                .map(String::from)[..]
            )
        );
    }

    #[test]
    fn ref_tokens_inside_words_respect_word_boundaries() {
        let params = BTreeMap::from([
            ("in".to_string(), "X".to_string()),
            ("input".to_string(), "Y".to_string()),
            ("codec".to_string(), "Ref::in".to_string()),
        ]);
        assert_eq!(
            substitute_refs("--file=Ref::input.mov", &params),
            "--file=Y.mov"
        );
        assert_eq!(substitute_refs("Ref::in-Ref::input", &params), "X-Y");
        assert_eq!(substitute_refs("Ref::inputs", &params), "Ref::inputs");
        assert_eq!(
            substitute_refs("Ref::codec", &params),
            "Ref::in",
            "values are not re-substituted"
        );
        assert_eq!(substitute_refs("Ref::", &params), "Ref::");
        assert_eq!(substitute_refs("no refs", &params), "no refs");
    }

    #[test]
    fn container_overrides_replace_command_environment_and_resources_by_type() {
        let def = definition(json!({
            "type": "container",
            "containerProperties": {
                "image": "busybox",
                "command": ["echo", "definition"],
                "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
            },
        }));
        let submitted = job(json!({
            "containerOverrides": {
                "command": ["echo", "Ref::who"],
                "environment": [{"name": "B", "value": "override"}, {"name": "C", "value": "3"}],
                "resourceRequirements": [{"type": "VCPU", "value": "0.5"}],
            },
            "parameters": {"who": "job"},
        }));
        let pod = Render::new(def.clone(), submitted.clone()).pod();
        let container = main_container(&pod);
        assert_eq!(
            container.command,
            Some(vec!["echo".to_string(), "job".to_string()])
        );
        let names: Vec<String> = env_pairs(container).into_iter().map(|(n, _)| n).collect();
        assert_eq!(&names[..3], ["A", "B", "C"]);
        assert_eq!(env_value(container, "B").as_deref(), Some("override"));
        assert_eq!(
            quantities(&pod, "requests"),
            BTreeMap::from([
                ("cpu".to_string(), "500m".to_string()),
                ("memory".to_string(), "512Mi".to_string()),
            ])
        );
        assert_eq!(
            job_request(&submitted, &def),
            Ok(Resources::request(500, 512, 0))
        );
    }

    #[test]
    fn aws_batch_variables_come_last_and_describe_the_attempt() {
        let def = aws_job_definition("jobdef-fetch_and_run.json");
        let pod = Render::new(def.clone(), job(json!({}))).attempt(2).pod();
        let env = env_pairs(main_container(&pod));
        let tail: Vec<(String, Option<String>)> = env[env.len() - 4..].to_vec();
        assert_eq!(
            tail,
            vec![
                (ENV_JOB_ID.to_string(), Some(UID.to_string())),
                (ENV_JOB_ATTEMPT.to_string(), Some("2".to_string())),
                (ENV_JQ_NAME.to_string(), Some("high-priority".to_string())),
                (ENV_CE_NAME.to_string(), Some("c4ondemand".to_string())),
            ]
        );
        assert!(!env.iter().any(|(n, _)| n == ENV_JOB_ARRAY_INDEX));

        let pod = Render::new(def, job(json!({"arrayProperties": {"size": 100}})))
            .array_child(41, 100)
            .pod();
        let env = env_pairs(main_container(&pod));
        let tail: Vec<(String, Option<String>)> = env[env.len() - 6..].to_vec();
        assert_eq!(tail[0], (ENV_JOB_ID.to_string(), Some(format!("{UID}:41"))));
        assert_eq!(
            tail[4],
            (ENV_JOB_ARRAY_INDEX.to_string(), Some("41".to_string()))
        );
        assert_eq!(
            tail[5],
            (ENV_JOB_ARRAY_SIZE.to_string(), Some("100".to_string()))
        );
        assert_eq!(pod.metadata.name.as_deref(), Some("render-1-41"));
        assert_eq!(
            pod.metadata
                .labels
                .as_ref()
                .expect("labels")
                .get(LABEL_ARRAY_INDEX),
            Some(&"41".to_string())
        );
    }

    #[test]
    fn gpus_use_the_compute_environment_resource_name() {
        let def = aws_job_definition("jobdef-gpu.json");
        let pod = Render::new(def.clone(), job(json!({})))
            .ce(compute_environment(Some("amd.com/gpu")))
            .pod();
        for which in ["requests", "limits"] {
            let q = quantities(&pod, which);
            assert_eq!(
                q.get("amd.com/gpu").map(String::as_str),
                Some("1"),
                "{which}"
            );
            assert!(!q.contains_key(DEFAULT_GPU_RESOURCE_NAME));
            assert_eq!(q.get("cpu").map(String::as_str), Some("1"));
            assert_eq!(q.get("memory").map(String::as_str), Some("2048Mi"));
        }
        let pod = Render::new(def.clone(), job(json!({}))).pod();
        assert!(quantities(&pod, "limits").contains_key(DEFAULT_GPU_RESOURCE_NAME));
        assert_eq!(
            job_request(&job(json!({})), &def),
            Ok(Resources::request(1000, 2048, 1))
        );
    }

    #[test]
    fn user_privileged_read_only_root_and_shared_memory() {
        let def = definition(json!({
            "type": "container",
            "containerProperties": {
                "image": "busybox",
                "user": "1000:2000",
                "privileged": true,
                "readonlyRootFilesystem": true,
                "linuxParameters": {
                    "sharedMemorySize": 256,
                    "tmpfs": [{"containerPath": "/scratch", "size": 64}],
                    "initProcessEnabled": true,
                },
                "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}],
            },
        }));
        let pod = Render::new(def, job(json!({}))).pod();
        let container = main_container(&pod);
        let security = container
            .security_context
            .as_ref()
            .expect("security context");
        assert_eq!(security.run_as_user, Some(1000));
        assert_eq!(security.run_as_group, Some(2000));
        assert_eq!(security.privileged, Some(true));
        assert_eq!(security.read_only_root_filesystem, Some(true));
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.share_process_namespace, Some(true));
        let volumes = spec.volumes.as_ref().expect("volumes");
        let shm = volumes
            .iter()
            .find(|v| v.name == SHM_VOLUME_NAME)
            .and_then(|v| v.empty_dir.as_ref())
            .expect("an emptyDir for /dev/shm");
        assert_eq!(shm.medium.as_deref(), Some(MEDIUM_MEMORY));
        assert_eq!(shm.size_limit, Some(Quantity("256Mi".into())));
        let mounts = container.volume_mounts.as_ref().expect("mounts");
        assert!(mounts
            .iter()
            .any(|m| m.name == SHM_VOLUME_NAME && m.mount_path == "/dev/shm"));
        assert!(mounts.iter().any(|m| m.mount_path == "/scratch"));
    }

    #[test]
    fn user_names_kubernetes_cannot_resolve_are_refused() {
        let def = definition(json!({
            "type": "container",
            "containerProperties": {"image": "busybox", "user": "www-data"},
        }));
        assert!(matches!(
            Render::new(def, job(json!({}))).render(),
            Err(RenderError::BadUser(_))
        ));
    }

    #[test]
    fn volumes_mount_points_and_secrets_map_to_kubernetes() {
        let def = definition(json!({
            "type": "container",
            "containerProperties": {
                "image": "busybox",
                "volumes": [
                    {"name": "data", "host": {"sourcePath": "/mnt/data"}},
                    {"name": "scratch"},
                    {"name": "creds", "secret": {"secretName": "creds"}},
                ],
                "mountPoints": [
                    {"containerPath": "/data", "sourceVolume": "data", "readOnly": true},
                    {"containerPath": "/tmp/work", "sourceVolume": "scratch"},
                ],
                "secrets": [{"name": "DB_PASSWORD", "valueFrom": "db:password"}],
            },
        }));
        let pod = Render::new(def, job(json!({}))).pod();
        let spec = pod.spec.as_ref().expect("spec");
        let volumes = spec.volumes.as_ref().expect("volumes");
        assert_eq!(
            volumes[0].host_path.as_ref().map(|h| h.path.as_str()),
            Some("/mnt/data")
        );
        assert!(volumes[1].empty_dir.is_some());
        assert_eq!(
            volumes[2]
                .secret
                .as_ref()
                .and_then(|s| s.secret_name.as_deref()),
            Some("creds")
        );
        let container = main_container(&pod);
        let mounts = container.volume_mounts.as_ref().expect("mounts");
        assert_eq!(mounts[0].name, "data");
        assert_eq!(mounts[0].mount_path, "/data");
        assert_eq!(mounts[0].read_only, Some(true));
        let secret = container
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "DB_PASSWORD")
            .and_then(|e| e.value_from.as_ref())
            .and_then(|f| f.secret_key_ref.as_ref())
            .expect("a secretKeyRef");
        assert_eq!(
            (secret.name.as_str(), secret.key.as_str()),
            ("db", "password")
        );

        let bad = definition(json!({
            "type": "container",
            "containerProperties": {
                "image": "busybox",
                "secrets": [{"name": "TOKEN", "valueFrom": "arn:aws:secretsmanager:x"}],
            },
        }));
        let missing_key = definition(json!({
            "type": "container",
            "containerProperties": {
                "image": "busybox",
                "secrets": [{"name": "TOKEN", "valueFrom": "just-a-name"}],
            },
        }));
        for (def, value_from) in [
            (bad, "arn:aws:secretsmanager:x"),
            (missing_key, "just-a-name"),
        ] {
            assert_eq!(
                Render::new(def, job(json!({}))).render(),
                Err(RenderError::BadSecret {
                    name: "TOKEN".into(),
                    value_from: value_from.into()
                })
            );
        }
    }

    #[test]
    fn propagated_tags_become_annotations_job_tags_winning() {
        let def = definition(json!({
            "type": "container",
            "propagateTags": true,
            "tags": {"team": "render", "sim.barge.dev/duration-seconds": "5", "Cost Center": "42"},
            "containerProperties": {"image": "busybox"},
        }));
        let pod = Render::new(
            def.clone(),
            job(json!({"tags": {"team": "vfx", "sim.barge.dev/exit-code": "3"}})),
        )
        .pod();
        let annotations = pod.metadata.annotations.expect("annotations");
        assert_eq!(
            annotations,
            BTreeMap::from([
                (
                    "sim.barge.dev/duration-seconds".to_string(),
                    "5".to_string()
                ),
                ("sim.barge.dev/exit-code".to_string(), "3".to_string()),
                ("team".to_string(), "vfx".to_string()),
            ]),
            "job tags win; keys that are not annotation keys are left out"
        );
        // The job's propagateTags: false wins over the definition's true.
        let pod = Render::new(
            def,
            job(json!({"propagateTags": false, "tags": {"a": "b"}})),
        )
        .pod();
        assert_eq!(pod.metadata.annotations, None);
    }

    #[test]
    fn metadata_names_labels_owner_finalizer_and_placement() {
        let def = aws_job_definition("jobdef-spot-retry.json");
        let render = Render::new(def, job(json!({}))).attempt(3);
        let pod = render.pod();
        assert_eq!(pod, render.pod(), "deterministic");
        assert_eq!(
            serde_json::to_string(&pod).expect("json"),
            serde_json::to_string(&render.pod()).expect("json")
        );
        assert_eq!(pod.metadata.name.as_deref(), Some("render-3"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("team-a"));
        let labels = pod.metadata.labels.clone().expect("labels");
        assert_eq!(
            labels,
            BTreeMap::from([
                (LABEL_MANAGED_BY.to_string(), MANAGED_BY_BARGE.to_string()),
                (LABEL_JOB_NAME.to_string(), "render".to_string()),
                (LABEL_JOB_UID.to_string(), UID.to_string()),
                (LABEL_ATTEMPT.to_string(), "3".to_string()),
                (LABEL_JOB_QUEUE.to_string(), "high-priority".to_string()),
                (
                    LABEL_COMPUTE_ENVIRONMENT.to_string(),
                    "c4ondemand".to_string()
                ),
                (LABEL_JOB_DEFINITION.to_string(), "render".to_string()),
                (LABEL_JOB_DEFINITION_REVISION.to_string(), "3".to_string()),
            ])
        );
        let owner = &pod.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.kind.as_str(),
                owner.name.as_str(),
                owner.uid.as_str()
            ),
            (API_VERSION, KIND_JOB, "render", UID)
        );
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
        assert_eq!(
            pod.metadata.finalizers,
            Some(vec![FINALIZER_ATTEMPT_RESULT.to_string()])
        );
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(
            spec.tolerations,
            Some(vec![Toleration {
                key: Some(TAINT_COMPUTE_ENVIRONMENT.to_string()),
                operator: Some("Equal".to_string()),
                value: Some("c4ondemand".to_string()),
                effect: Some("NoSchedule".to_string()),
                toleration_seconds: None,
            }])
        );
        assert_eq!(
            spec.node_selector,
            Some(BTreeMap::from([(
                LABEL_COMPUTE_ENVIRONMENT.to_string(),
                "c4ondemand".to_string()
            )]))
        );
        assert_eq!(spec.automount_service_account_token, None);
        let unbound = Render::new(aws_job_definition("jobdef-spot-retry.json"), job(json!({})))
            .unbound()
            .pod();
        assert_eq!(unbound.spec.expect("spec").node_name, None);
    }

    #[test]
    fn names_that_cannot_be_label_values_fail_the_render() {
        let long = "q".repeat(70);
        let result = Render::new(aws_job_definition("jobdef-spot-retry.json"), job(json!({})))
            .queue(&long)
            .render();
        assert_eq!(
            result,
            Err(RenderError::BadLabelValue {
                what: "job queue",
                value: long
            })
        );
        let mut unnamed = compute_environment(None);
        unnamed.metadata.name = None;
        assert_eq!(
            Render::new(aws_job_definition("jobdef-spot-retry.json"), job(json!({})))
                .ce(unnamed)
                .render(),
            Err(RenderError::UnnamedComputeEnvironment)
        );
        let mut nameless = job(json!({}));
        nameless.metadata.uid = None;
        assert_eq!(
            Render::new(aws_job_definition("jobdef-spot-retry.json"), nameless).render(),
            Err(RenderError::MissingJobMetadata("uid"))
        );
    }

    fn pod_properties_definition() -> JobDefinitionSpec {
        definition(json!({
            "type": "container",
            "parameters": {"mode": "fast"},
            "podProperties": {
                "serviceAccountName": "renderer",
                "containers": [
                    {"name": "app", "image": "app:1", "command": ["run", "Ref::mode"],
                     "env": [{"name": "LEVEL", "value": "info"}],
                     "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": "1"}}},
                    {"name": "side", "image": "side:1",
                     "resources": {"limits": {"cpu": "250m", "memory": "256Mi"}}},
                ],
                "initContainers": [
                    {"name": "fetch", "image": "fetch:1",
                     "resources": {"requests": {"cpu": "2", "memory": "128Mi"}}},
                ],
                "volumes": [{"name": "work", "emptyDir": {}}],
            },
        }))
    }

    #[test]
    fn pod_properties_keep_their_containers_and_get_the_batch_environment() {
        let submitted = job(json!({
            "containerOverrides": {
                "command": ["run", "Ref::mode", "--verbose"],
                "environment": [{"name": "LEVEL", "value": "debug"}],
            },
            "parameters": {"mode": "slow"},
        }));
        let pod = Render::new(pod_properties_definition(), submitted).pod();
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.service_account_name.as_deref(), Some("renderer"));
        assert_eq!(spec.volumes.as_ref().map(Vec::len), Some(1));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        let app = &spec.containers[0];
        assert_eq!(app.name, "app");
        assert_eq!(
            app.command,
            Some(vec![
                "run".to_string(),
                "slow".to_string(),
                "--verbose".to_string()
            ])
        );
        assert_eq!(env_value(app, "LEVEL").as_deref(), Some("debug"));
        let init = &spec.init_containers.as_ref().expect("init containers")[0];
        for container in [app, &spec.containers[1], init] {
            let env = env_pairs(container);
            assert_eq!(
                env.last().map(|(n, _)| n.as_str()),
                Some(ENV_CE_NAME),
                "{}",
                container.name
            );
            assert_eq!(env_value(container, ENV_JOB_ID).as_deref(), Some(UID));
        }
        assert_eq!(
            env_value(&spec.containers[1], "LEVEL"),
            None,
            "overrides touch the first container only"
        );
    }

    #[test]
    fn job_request_follows_kubernetes_pod_requests_for_pod_properties() {
        // Containers: 500m + 250m (limit as request) = 750m, 1024 + 256 MiB, 1 GPU; the init
        // container needs 2 CPUs alone, so the pod needs 2000m.
        assert_eq!(
            job_request(&job(json!({})), &pod_properties_definition()),
            Ok(Resources::request(2000, 1280, 1))
        );
        let with_sidecar = definition(json!({
            "type": "container",
            "podProperties": {
                "containers": [{"name": "app", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
                "initContainers": [
                    {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                    {"name": "migrate", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}},
                ],
            },
        }));
        // Main: 1000m + 100m sidecar; init peak: 100m + 1000m, 64 + 2048 MiB.
        assert_eq!(
            job_request(&job(json!({})), &with_sidecar),
            Ok(Resources::request(1100, 2112, 0))
        );
        let bad = definition(json!({
            "type": "container",
            "podProperties": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "lots"}}}]},
        }));
        assert!(matches!(
            job_request(&job(json!({})), &bad),
            Err(RenderError::BadQuantity { .. })
        ));
    }

    #[test]
    fn job_request_prefers_requirements_over_legacy_and_overrides_over_definition() {
        let legacy = aws_job_definition("jobdef-tensorflow_mnist_deep.json");
        assert_eq!(
            job_request(&job(json!({})), &legacy),
            Ok(Resources::request(8000, 32000, 0))
        );
        assert_eq!(
            job_request(
                &job(json!({"containerOverrides": {"vcpus": 4, "memory": 1024}})),
                &legacy
            ),
            Ok(Resources::request(4000, 1024, 0))
        );
        let mixed = definition(json!({
            "type": "container",
            "containerProperties": {
                "image": "busybox", "vcpus": 2,
                "resourceRequirements": [{"type": "MEMORY", "value": "4096"}],
            },
        }));
        assert_eq!(
            job_request(
                &job(
                    json!({"containerOverrides": {"resourceRequirements": [{"type": "VCPU", "value": "0.25"}], "memory": 100}})
                ),
                &mixed
            ),
            Ok(Resources::request(250, 100, 0)),
            "override requirements and override legacy fields beat the definition"
        );
        let spot = aws_job_definition("jobdef-spot-retry.json");
        assert_eq!(
            job_request(&job(json!({})), &spot),
            Ok(Resources::request(1000, 512, 0))
        );
    }

    /// A pod as the simulated kubelet reports it (e2e/sim/src/kubelet/podstate.rs).
    fn sim_pod(phase: &str, state: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "render-2-7",
                "namespace": "team-a",
                "labels": {LABEL_ATTEMPT: "2", LABEL_ARRAY_INDEX: "7", LABEL_JOB_UID: UID},
                "finalizers": [FINALIZER_ATTEMPT_RESULT],
            },
            "spec": {"nodeName": "node-1", "containers": [{"name": "main", "image": "busybox"}]},
            "status": {
                "phase": phase,
                "conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "hostIP": "127.0.0.1",
                "startTime": "2026-01-01T00:00:00Z",
                "containerStatuses": [{
                    "name": "main", "image": "busybox", "imageID": "sim://busybox",
                    "ready": false, "started": false, "restartCount": 0,
                    "state": state, "lastState": {},
                }],
            },
        })
    }

    fn view(pod: serde_json::Value, node_exists: bool) -> PodView {
        let pod: Pod = serde_json::from_value(pod).expect("a valid Pod");
        pod_view(&pod, node_exists).expect("a Barge pod")
    }

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    const T1: &str = "2026-01-01T00:00:05Z";
    const T2: &str = "2026-01-01T00:00:09Z";

    #[test]
    fn pod_view_reads_running_and_succeeded_pods() {
        let running = view(
            sim_pod("Running", json!({"running": {"startedAt": T1}})),
            true,
        );
        assert_eq!(running.name, "render-2-7");
        assert_eq!(
            (running.attempt, running.array_index, running.node_index),
            (2, Some(7), None)
        );
        assert_eq!(running.phase, PodPhase::Running);
        assert_eq!(running.node_name.as_deref(), Some("node-1"));
        assert_eq!(running.started_at_ms, Some(T0 + 5000));
        assert_eq!((running.finished_at_ms, running.exit_code), (None, None));
        assert!(running.has_finalizer);
        assert!(!running.node_lost);

        let done = view(
            sim_pod(
                "Succeeded",
                json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": T1, "finishedAt": T2, "containerID": "sim://x"}}),
            ),
            true,
        );
        assert_eq!(done.phase, PodPhase::Succeeded);
        assert_eq!(done.exit_code, Some(0));
        assert_eq!(done.container_reason.as_deref(), Some("Completed"));
        assert_eq!(
            (done.started_at_ms, done.finished_at_ms),
            (Some(T0 + 5000), Some(T0 + 9000))
        );
        assert!(!done.node_lost);
        // A finished pod whose node then went away is not a lost attempt.
        assert!(
            !view(
                sim_pod(
                    "Succeeded",
                    json!({"terminated": {"exitCode": 0, "finishedAt": T2}})
                ),
                false
            )
            .node_lost
        );
    }

    #[test]
    fn pod_view_reads_failures_oom_and_waiting() {
        let failed = view(
            sim_pod(
                "Failed",
                json!({"terminated": {"exitCode": 3, "reason": "Error", "startedAt": T1, "finishedAt": T2}}),
            ),
            true,
        );
        assert_eq!(failed.phase, PodPhase::Failed);
        assert_eq!(
            (failed.exit_code, failed.container_reason.as_deref()),
            (Some(3), Some("Error"))
        );

        let oom = view(
            sim_pod(
                "Failed",
                json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": T1, "finishedAt": T2}}),
            ),
            true,
        );
        assert_eq!(
            (oom.exit_code, oom.container_reason.as_deref()),
            (Some(137), Some("OOMKilled"))
        );

        let pulling = view(
            sim_pod(
                "Pending",
                json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}),
            ),
            true,
        );
        assert_eq!(pulling.phase, PodPhase::Pending);
        assert_eq!(pulling.waiting_reason.as_deref(), Some("ImagePullBackOff"));
        assert_eq!(
            pulling.waiting_message.as_deref(),
            Some("Back-off pulling image")
        );
        assert_eq!(pulling.started_at_ms, None);

        let mut deadline = sim_pod(
            "Failed",
            json!({"terminated": {"exitCode": 143, "reason": "Error", "startedAt": T1, "finishedAt": T2}}),
        );
        deadline["status"]["reason"] = json!("DeadlineExceeded");
        deadline["status"]["message"] =
            json!("Pod was active on the node longer than the specified deadline");
        let deadline = view(deadline, true);
        assert_eq!(deadline.pod_reason.as_deref(), Some("DeadlineExceeded"));
        assert!(deadline.pod_message.is_some());
        assert!(!deadline.node_lost);
    }

    #[test]
    fn pod_view_reads_deletion_and_finalizer() {
        let mut deleting = sim_pod("Running", json!({"running": {"startedAt": T1}}));
        deleting["metadata"]["deletionTimestamp"] = json!(T2);
        deleting["metadata"]["finalizers"] = json!(["example.com/other"]);
        let deleting = view(deleting, true);
        assert_eq!(deleting.deletion_timestamp_ms, Some(T0 + 9000));
        assert!(!deleting.has_finalizer);
    }

    #[test]
    fn pod_view_sees_lost_nodes() {
        // The sim's pod GC after `lose_node`: Failed with DisruptionTarget, container state as
        // the kubelet last reported it, then deleted.
        let mut gc = sim_pod("Failed", json!({"running": {"startedAt": T1}}));
        gc["status"]["conditions"]
            .as_array_mut()
            .expect("conditions")
            .push(
                json!({"type": "DisruptionTarget", "status": "True", "lastTransitionTime": T2,
                         "reason": "DeletionByPodGC", "message": "PodGC: node no longer exists"}),
            );
        gc["metadata"]["deletionTimestamp"] = json!(T2);
        let gc = view(gc, false);
        assert!(gc.node_lost);
        assert_eq!(gc.started_at_ms, Some(T0 + 5000));
        assert_eq!(gc.exit_code, None);

        // Before pod GC runs: still Running, but the node object is gone.
        assert!(
            view(
                sim_pod("Running", json!({"running": {"startedAt": T1}})),
                false
            )
            .node_lost
        );
        // An unbound pod has no node to lose.
        let mut unbound = sim_pod(
            "Pending",
            json!({"waiting": {"reason": "ContainerCreating"}}),
        );
        unbound["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("nodeName");
        assert!(!view(unbound, false).node_lost);
        // The node lifecycle controller's reason.
        let mut node_lost = sim_pod("Running", json!({"running": {"startedAt": T1}}));
        node_lost["status"]["reason"] = json!("NodeLost");
        assert!(view(node_lost, true).node_lost);
        // A DisruptionTarget that is False does not count.
        let mut not_disrupted = sim_pod("Running", json!({"running": {"startedAt": T1}}));
        not_disrupted["status"]["conditions"]
            .as_array_mut()
            .expect("conditions")
            .push(json!({"type": "DisruptionTarget", "status": "False"}));
        assert!(!view(not_disrupted, true).node_lost);
    }

    #[test]
    fn pod_view_ignores_pods_that_are_not_barge_attempts() {
        let parse = |pod: serde_json::Value| {
            pod_view(
                &serde_json::from_value::<Pod>(pod).expect("a valid Pod"),
                true,
            )
        };
        let mut no_labels = sim_pod("Running", json!({}));
        no_labels["metadata"]
            .as_object_mut()
            .expect("meta")
            .remove("labels");
        assert_eq!(parse(no_labels), None);
        let mut bad_attempt = sim_pod("Running", json!({}));
        bad_attempt["metadata"]["labels"][LABEL_ATTEMPT] = json!("first");
        assert_eq!(parse(bad_attempt), None);
        let mut zero = sim_pod("Running", json!({}));
        zero["metadata"]["labels"][LABEL_ATTEMPT] = json!("0");
        assert_eq!(parse(zero), None);
        let mut bad_index = sim_pod("Running", json!({}));
        bad_index["metadata"]["labels"][LABEL_ARRAY_INDEX] = json!("-1");
        assert_eq!(parse(bad_index), None);
        // A freshly created pod without status is Pending.
        let mut fresh = sim_pod("Running", json!({}));
        fresh.as_object_mut().expect("pod").remove("status");
        let fresh = parse(fresh).expect("a Barge pod");
        assert_eq!(fresh.phase, PodPhase::Pending);
        assert_eq!(fresh.exit_code, None);
    }

    #[test]
    fn rendered_pods_read_back_as_their_attempt() {
        let pod = Render::new(
            aws_job_definition("jobdef-spot-retry.json"),
            job(json!({"arrayProperties": {"size": 10}})),
        )
        .attempt(4)
        .array_child(9, 10)
        .pod();
        let view = pod_view(&pod, true).expect("a Barge pod");
        assert_eq!((view.attempt, view.array_index), (4, Some(9)));
        assert_eq!(view.name, "render-4-9");
        assert_eq!(view.phase, PodPhase::Pending);
        assert!(view.has_finalizer);
        assert!(!view.node_lost);
    }
}
