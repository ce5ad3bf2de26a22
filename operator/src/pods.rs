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
use barge_crds::common::{is_label_key, is_label_value};
use barge_crds::consts::{
    API_VERSION, DEFAULT_GPU_RESOURCE_NAME, ENV_CE_NAME, ENV_JOB_ARRAY_INDEX, ENV_JOB_ARRAY_SIZE,
    ENV_JOB_ATTEMPT, ENV_JOB_ID, ENV_JQ_NAME, FINALIZER_ATTEMPT_RESULT, KIND_JOB,
    LABEL_ARRAY_INDEX, LABEL_ATTEMPT, LABEL_COMPUTE_ENVIRONMENT, LABEL_JOB_DEFINITION,
    LABEL_JOB_NAME, LABEL_JOB_QUEUE, LABEL_JOB_UID, LABEL_MANAGED_BY, LABEL_NODE_INDEX,
    MAIN_CONTAINER_NAME, MANAGED_BY_BARGE, TAINT_COMPUTE_ENVIRONMENT,
    TERMINATION_GRACE_PERIOD_SECONDS,
};
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
        .unwrap_or_default();

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
            substitute_container_refs(container, &parameters);
            append_batch_env(container, &batch_env);
        }
        PodSpec {
            containers,
            init_containers: (!init_containers.is_empty()).then_some(init_containers),
            volumes: (!props.volumes.is_empty()).then(|| props.volumes.clone()),
            service_account_name: props.service_account_name.clone(),
            ..PodSpec::default()
        }
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
            .filter(|(name, key)| !name.is_empty() && !key.is_empty())
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
/// named `nvidia.com/gpu` or `<vendor>/gpu`.
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
