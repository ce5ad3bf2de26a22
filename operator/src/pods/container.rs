//! The AWS-shaped `containerProperties` (with the job's `containerOverrides`) → the pod's one
//! container `main`: command, environment, resources (vCPU/memory/GPU requirements and the
//! legacy fields), user, privileges, volumes and mount points, shared memory and tmpfs.

use std::collections::BTreeMap;

use barge_core::quantity;
use barge_crds::common::is_dns_subdomain;
use barge_crds::consts::{MAIN_CONTAINER_NAME, RESERVED_VOLUME_PREFIX};
use barge_crds::resources::{
    ContainerOverrides, ContainerProperties, ResourceRequirement, ResourceType,
    Volume as BatchVolume,
};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, HostPathVolumeSource, PodSpec,
    ResourceRequirements, SecretKeySelector, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::environment::{append_batch_env, env_var, is_secret_key, set_env, substitute_all};
use super::RenderError;

/// emptyDir medium backed by memory (tmpfs).
const MEDIUM_MEMORY: &str = "Memory";
/// Kubernetes resource names.
pub(super) const RESOURCE_CPU: &str = "cpu";
pub(super) const RESOURCE_MEMORY: &str = "memory";
/// Name and mount path of the memory-backed volume of `linuxParameters.sharedMemorySize`.
/// (Both start with `RESERVED_VOLUME_PREFIX`, which the API server refuses in users' volumes.)
const SHM_VOLUME_NAME: &str = "barge-dev-shm";
const SHM_MOUNT_PATH: &str = "/dev/shm";
/// Prefix of the names of the memory-backed volumes of `linuxParameters.tmpfs`.
const TMPFS_VOLUME_PREFIX: &str = "barge-tmpfs-";

/// Effective vCPUs (millicpu), memory (MiB) and GPUs of an AWS-shaped container (after the
/// job's overrides: see [`with_overrides`]). Per type, in order of precedence: the
/// `resourceRequirements` entry, the legacy `vcpus`/`memory`. Absent amounts are None.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct AwsAmounts {
    pub(super) milli_cpu: Option<i64>,
    pub(super) memory_mib: Option<i64>,
    pub(super) gpus: Option<i64>,
}

pub(super) fn bad_quantity(field: &str, value: &str, err: barge_core::Error) -> RenderError {
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

/// A container with a job's overrides applied (AWS `containerOverrides`, and the
/// `containerOverrides` of a multi-node job's `nodePropertyOverrides`): the command is replaced;
/// environment variables are replaced by name or added; per resource type, the override's
/// `resourceRequirements` entry wins, then its legacy `vcpus`/`memory`, then the container's
/// entry, then the container's legacy field; `instanceType` is replaced.
pub(super) fn with_overrides(
    props: &ContainerProperties,
    overrides: &ContainerOverrides,
) -> ContainerProperties {
    let mut out = props.clone();
    if let Some(command) = &overrides.command {
        out.command = command.clone();
    }
    for var in &overrides.environment {
        match out.environment.iter_mut().find(|e| e.name == var.name) {
            Some(existing) => *existing = var.clone(),
            None => out.environment.push(var.clone()),
        }
    }
    for requirement in &overrides.resource_requirements {
        out.resource_requirements
            .retain(|r| r.r#type != requirement.r#type);
        out.resource_requirements.push(requirement.clone());
    }
    let has_override_requirement = |ty: ResourceType| {
        overrides
            .resource_requirements
            .iter()
            .any(|r| r.r#type == ty)
    };
    // A legacy override beats the container's requirement of the same type.
    if let (Some(vcpus), false) = (
        overrides.vcpus,
        has_override_requirement(ResourceType::Vcpu),
    ) {
        out.resource_requirements
            .retain(|r| r.r#type != ResourceType::Vcpu);
        out.vcpus = Some(vcpus);
    }
    if let (Some(memory), false) = (
        overrides.memory,
        has_override_requirement(ResourceType::Memory),
    ) {
        out.resource_requirements
            .retain(|r| r.r#type != ResourceType::Memory);
        out.memory = Some(memory);
    }
    if let Some(instance_type) = &overrides.instance_type {
        out.instance_type = Some(instance_type.clone());
    }
    out
}

pub(super) fn aws_amounts(props: &ContainerProperties) -> Result<AwsAmounts, RenderError> {
    let pick = |ty: ResourceType, legacy: Option<i32>| {
        requirement_value(&props.resource_requirements, ty).or(legacy.map(|n| n.to_string()))
    };
    let milli_cpu = pick(ResourceType::Vcpu, props.vcpus)
        .map(|value| {
            quantity::aws_vcpus_millis(&value).map_err(|e| bad_quantity("VCPU", &value, e))
        })
        .transpose()?;
    let memory_mib = pick(ResourceType::Memory, props.memory)
        .map(|value| {
            quantity::aws_memory_mib(&value).map_err(|e| bad_quantity("MEMORY", &value, e))
        })
        .transpose()?;
    let gpus = pick(ResourceType::Gpu, None)
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

/// The pod spec of an AWS-shaped container (one container, [`MAIN_CONTAINER_NAME`]), after the
/// job's `overrides` ([`with_overrides`]).
///
/// `ulimits` have no Kubernetes counterpart (the container runtime's defaults apply); they are
/// accepted and ignored (the definition controller warns; `barge import aws` refuses them).
pub(super) fn container_pod_spec(
    props: &ContainerProperties,
    overrides: Option<&ContainerOverrides>,
    parameters: &BTreeMap<String, String>,
    batch_env: &[EnvVar],
    gpu_resource_name: &str,
) -> Result<PodSpec, RenderError> {
    let overridden = overrides.map(|o| with_overrides(props, o));
    let props = overridden.as_ref().unwrap_or(props);
    let command = substitute_all(&props.command, parameters);

    let mut env: Vec<EnvVar> = props.environment.iter().map(env_var).collect();
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
        // The API server refuses these (CEL); an object stored before that rule still must not
        // collide with the volumes Barge adds.
        if volume.name.starts_with(RESERVED_VOLUME_PREFIX) {
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
        resources: Some(container_resources(aws_amounts(props)?, gpu_resource_name)),
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

/// A `user` as a uid and optional gid (`nobody` is 65534, `root` 0).
pub fn parse_user(user: &str) -> Result<(i64, Option<i64>), String> {
    const NOBODY: i64 = 65534;
    let numeric = |text: &str| {
        text.parse::<i64>()
            .ok()
            .filter(|n| (0..=i64::from(u32::MAX)).contains(n))
    };
    match user {
        "root" => Ok((0, None)),
        "nobody" => Ok((NOBODY, None)),
        other => match other.split_once(':') {
            Some((uid, gid)) => match (numeric(uid), numeric(gid)) {
                (Some(uid), Some(gid)) => Ok((uid, Some(gid))),
                _ => Err(format!("user {other:?} is not uid:gid with numeric ids")),
            },
            None => numeric(other).map(|uid| (uid, None)).ok_or_else(|| {
                format!("user {other:?} cannot be used: Kubernetes needs a numeric uid (optionally uid:gid), root or nobody")
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::fixtures::*;
    use crate::pods::job_request;
    use crate::test_support::aws_job_definition;
    use barge_core::resources::Resources;
    use barge_crds::consts::DEFAULT_GPU_RESOURCE_NAME;
    use serde_json::json;

    #[test]
    fn barge_volume_names_are_in_the_reserved_prefix() {
        assert!(SHM_VOLUME_NAME.starts_with(RESERVED_VOLUME_PREFIX));
        assert!(TMPFS_VOLUME_PREFIX.starts_with(RESERVED_VOLUME_PREFIX));
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
    fn overrides_apply_to_a_container_as_aws_orders_them() {
        let props: ContainerProperties = serde_json::from_value(json!({
            "image": "busybox",
            "command": ["run"],
            "environment": [{"name": "A", "value": "1"}],
            "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "2048"}, {"type": "GPU", "value": "1"}],
            "instanceType": "c5.large",
        }))
        .expect("container");
        let overrides: ContainerOverrides = serde_json::from_value(json!({
            "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "3"}],
            "resourceRequirements": [{"type": "GPU", "value": "2"}],
            "vcpus": 4,
            "memory": 512,
            "instanceType": "p3.2xlarge",
        }))
        .expect("overrides");
        let merged = with_overrides(&props, &overrides);
        assert_eq!(merged.command, vec!["run"], "no command override: kept");
        let env: Vec<(&str, Option<&str>)> = merged
            .environment
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref()))
            .collect();
        assert_eq!(env, [("A", Some("3")), ("B", Some("2"))]);
        // The override's legacy vcpus/memory beat the container's requirements.
        assert_eq!(
            aws_amounts(&merged),
            Ok(AwsAmounts {
                milli_cpu: Some(4000),
                memory_mib: Some(512),
                gpus: Some(2),
            })
        );
        assert_eq!(merged.instance_type.as_deref(), Some("p3.2xlarge"));
        // No override: the same container.
        assert_eq!(
            with_overrides(&props, &ContainerOverrides::default()),
            props
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
}
