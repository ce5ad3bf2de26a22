//! The container pieces shared by RegisterJobDefinition and SubmitJob: `containerProperties`,
//! `containerOverrides`, `retryStrategy` and `timeout`.

use barge_crds::consts::RESERVED_ENV_PREFIX;
use barge_crds::resources::{
    ContainerOverrides, ContainerProperties, EnvironmentVariable, EvaluateOnExit, Host, JobTimeout,
    LinuxParameters, MountPoint, ResourceRequirement, ResourceType, RetryAction, RetryStrategy,
    Secret, Tmpfs, Volume,
};
use k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource;

use super::names::{dns_name, NameLimit};
use super::reader::ObjectReader;
use super::{ImportError, Notes};

/// tmpfs mount options a memory-backed emptyDir honours: the kubelet mounts it read-write,
/// executable and asynchronous (Docker's tmpfs, which AWS uses, defaults to noexec, nosuid and
/// nodev; an emptyDir is more permissive, so asking for these is honoured). Every other option
/// (`noexec`, `nosuid`, `nodev`, `ro`, `size=`, `mode=`, `uid=`, ...) would not be.
pub(crate) const TMPFS_OPTIONS_HONOURED: &[&str] = &["rw", "exec", "async"];

const JOB_ROLE_NOTE: &str = "AWS IAM roles have no meaning in Kubernetes; set containerProperties.serviceAccountName to a service account with the permissions the job needs (e.g. through IRSA or EKS Pod Identity)";

pub(crate) fn environment(
    reader: &ObjectReader<'_>,
    notes: &mut Notes,
) -> Result<Vec<EnvironmentVariable>, ImportError> {
    let mut env = Vec::new();
    for (path, item) in reader.list("environment")? {
        let entry = ObjectReader::new(item, &path)?;
        let name = entry.required_string("name")?;
        let value = entry.string("value")?;
        entry.finish(notes);
        if name.starts_with(RESERVED_ENV_PREFIX) {
            notes.refuse(path, format!("{name} starts with {RESERVED_ENV_PREFIX}, which Barge (as AWS Batch) reserves: it sets these variables itself"));
            continue;
        }
        env.push(EnvironmentVariable { name, value });
    }
    Ok(env)
}

pub(crate) fn resource_requirements(
    reader: &ObjectReader<'_>,
    notes: &mut Notes,
) -> Result<Vec<ResourceRequirement>, ImportError> {
    let mut requirements = Vec::new();
    for (path, item) in reader.list("resourceRequirements")? {
        let entry = ObjectReader::new(item, &path)?;
        let kind = entry.required_string("type")?;
        let r#type = match kind.as_str() {
            "VCPU" => ResourceType::Vcpu,
            "MEMORY" => ResourceType::Memory,
            "GPU" => ResourceType::Gpu,
            other => {
                return Err(ImportError::field(
                    entry.field_path("type"),
                    format!("expected VCPU, MEMORY or GPU, got {other:?}"),
                ))
            }
        };
        let value = entry.required_string("value")?;
        entry.finish(notes);
        requirements.push(ResourceRequirement { r#type, value });
    }
    Ok(requirements)
}

/// Legacy `vcpus` / `memory`. Given together with a resource requirement of the same type,
/// Barge accepts only one of the two: the legacy field is dropped (with a warning) when both
/// say the same, and refused when they differ (which one AWS would use is not Barge's guess).
fn legacy_amount(
    reader: &ObjectReader<'_>,
    key: &str,
    requirements: &[ResourceRequirement],
    r#type: ResourceType,
    notes: &mut Notes,
) -> Result<Option<i32>, ImportError> {
    let amount = reader.int(key)?;
    let (Some(amount), Some(requirement)) =
        (amount, requirements.iter().find(|r| r.r#type == r#type))
    else {
        return Ok(amount);
    };
    if requirement.value.parse::<f64>().ok() == Some(f64::from(amount)) {
        notes.add(
            reader.field_path(key),
            "not imported: resourceRequirements sets the same amount (Barge accepts one of the two)",
        );
    } else {
        notes.refuse(
            reader.field_path(key),
            format!(
                "{key} ({amount}) differs from the {:?} of resourceRequirements ({:?}); keep one of the two",
                requirement.r#type, requirement.value
            ),
        );
    }
    Ok(None)
}

fn volumes(reader: &ObjectReader<'_>, notes: &mut Notes) -> Result<Vec<Volume>, ImportError> {
    let mut volumes = Vec::new();
    for (path, item) in reader.list("volumes")? {
        let entry = ObjectReader::new(item, &path)?;
        let aws_name = entry.required_string("name")?;
        let name = volume_name(&aws_name, &entry.field_path("name"), notes)?;
        let host = match entry.object("host")? {
            Some(host) => {
                let source_path = host.string("sourcePath")?;
                host.finish(notes);
                Some(Host { source_path })
            }
            None => None,
        };
        let persistent_volume_claim = match entry.object("efsVolumeConfiguration")? {
            Some(efs) => Some(efs_claim(efs, notes)?),
            None => None,
        };
        entry.finish(notes);
        volumes.push(Volume {
            name,
            host,
            empty_dir: None,
            persistent_volume_claim,
            config_map: None,
            secret: None,
        });
    }
    Ok(volumes)
}

/// An EFS volume → the PersistentVolumeClaim named after the file system, which the user
/// creates bound to it (e.g. with the EFS CSI driver). The warning says what the volume must
/// carry: `volumeHandle` `<fs>[:<rootDirectory>][:<accessPointId>]` and the mount options
/// `tls` (transitEncryption) and `iam` (authorizationConfig.iam).
fn efs_claim(
    efs: ObjectReader<'_>,
    notes: &mut Notes,
) -> Result<PersistentVolumeClaimVolumeSource, ImportError> {
    let file_system = efs.required_string("fileSystemId")?;
    let claim = dns_name(&file_system, NameLimit::Object).ok_or_else(|| {
        ImportError::field(
            efs.field_path("fileSystemId"),
            "expected an EFS file system id",
        )
    })?;
    let root = efs.string("rootDirectory")?.filter(|r| r != "/");
    let enabled = |reader: &ObjectReader<'_>, key: &str| -> Result<bool, ImportError> {
        match reader.string(key)?.as_deref() {
            None | Some("DISABLED") => Ok(false),
            Some("ENABLED") => Ok(true),
            Some(other) => Err(ImportError::field(
                reader.field_path(key),
                format!("expected ENABLED or DISABLED, got {other:?}"),
            )),
        }
    };
    let mut mount_options = Vec::new();
    if enabled(&efs, "transitEncryption")? {
        mount_options.push("tls");
    }
    efs.refuse(
        "transitEncryptionPort",
        "the EFS CSI driver chooses the port of its TLS tunnel",
        notes,
    );
    let mut access_point = None;
    if let Some(authorization) = efs.object("authorizationConfig")? {
        access_point = authorization.string("accessPointId")?;
        if enabled(&authorization, "iam")? {
            mount_options.push("iam");
        }
        authorization.finish(notes);
    }
    let path = efs.path().to_string();
    efs.finish(notes);
    let handle = match (&root, &access_point) {
        (None, None) => file_system.clone(),
        (root, access_point) => format!(
            "{file_system}:{}:{}",
            root.as_deref().unwrap_or(""),
            access_point.as_deref().unwrap_or("")
        )
        .trim_end_matches(':')
        .to_string(),
    };
    let options = if mount_options.is_empty() {
        String::new()
    } else {
        format!(" and mountOptions [{}]", mount_options.join(", "))
    };
    notes.add(
        path,
        format!("EFS has no meaning in Kubernetes: imported as the PersistentVolumeClaim {claim:?}; create it in the job's namespace, bound to a PersistentVolume of the EFS CSI driver with volumeHandle {handle:?}{options}, or the job's pods wait for it"),
    );
    Ok(PersistentVolumeClaimVolumeSource {
        claim_name: claim,
        read_only: None,
    })
}

fn volume_name(aws_name: &str, path: &str, notes: &mut Notes) -> Result<String, ImportError> {
    super::names::convert_name(aws_name, path, NameLimit::Label, notes)
}

fn mount_points(
    reader: &ObjectReader<'_>,
    notes: &mut Notes,
) -> Result<Vec<MountPoint>, ImportError> {
    let mut mounts = Vec::new();
    for (path, item) in reader.list("mountPoints")? {
        let entry = ObjectReader::new(item, &path)?;
        let container_path = entry.required_string("containerPath")?;
        let read_only = entry.bool("readOnly")?;
        let source = entry.required_string("sourceVolume")?;
        // The same conversion as the volume's name, without repeating its note.
        let source_volume = dns_name(&source, NameLimit::Label).ok_or_else(|| {
            ImportError::field(entry.field_path("sourceVolume"), "expected a volume name")
        })?;
        entry.finish(notes);
        mounts.push(MountPoint {
            container_path,
            read_only,
            source_volume,
        });
    }
    Ok(mounts)
}

/// `<secret-name>:<key>`, the only valueFrom Barge understands.
fn is_kubernetes_secret_reference(value: &str) -> bool {
    value.split_once(':').is_some_and(|(secret, key)| {
        barge_crds::common::is_dns_subdomain(secret)
            && !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    })
}

fn secrets(reader: &ObjectReader<'_>, notes: &mut Notes) -> Result<Vec<Secret>, ImportError> {
    let mut secrets = Vec::new();
    for (path, item) in reader.list("secrets")? {
        let entry = ObjectReader::new(item, &path)?;
        let name = entry.required_string("name")?;
        let value_from = entry.required_string("valueFrom")?;
        entry.finish(notes);
        if name.starts_with(RESERVED_ENV_PREFIX) {
            notes.refuse(
                format!("{path}.name"),
                format!(
                    "{name} starts with {RESERVED_ENV_PREFIX}, which Barge (as AWS Batch) reserves"
                ),
            );
        } else if is_kubernetes_secret_reference(&value_from) {
            secrets.push(Secret { name, value_from });
        } else {
            notes.refuse(
                format!("{path}.valueFrom"),
                format!("{value_from:?} is an AWS Secrets Manager or SSM reference, which Barge cannot read: the job would run without {name}. Create a Kubernetes Secret and set valueFrom to <secret-name>:<key>"),
            );
        }
    }
    Ok(secrets)
}

fn linux_parameters(
    reader: &ObjectReader<'_>,
    notes: &mut Notes,
) -> Result<Option<LinuxParameters>, ImportError> {
    let Some(linux) = reader.object("linuxParameters")? else {
        return Ok(None);
    };
    let shared_memory_size = linux.int("sharedMemorySize")?;
    let init_process_enabled = linux.bool("initProcessEnabled")?;
    let mut tmpfs = Vec::new();
    for (path, item) in linux.list("tmpfs")? {
        let entry = ObjectReader::new(item, &path)?;
        let container_path = entry.required_string("containerPath")?;
        let size = entry.required_int("size")?;
        let mount_options = entry.string_list("mountOptions")?;
        for (i, option) in mount_options.iter().enumerate() {
            if !TMPFS_OPTIONS_HONOURED.contains(&option.as_str()) {
                notes.refuse(
                    format!("{}[{i}]", entry.field_path("mountOptions")),
                    format!("Barge mounts a tmpfs as a memory-backed emptyDir (sizeLimit {size}Mi), which the kubelet mounts with its own options: it cannot apply {option:?} (honoured: {})", TMPFS_OPTIONS_HONOURED.join(", ")),
                );
            }
        }
        entry.finish(notes);
        tmpfs.push(Tmpfs {
            container_path,
            size,
            mount_options,
        });
    }
    linux.refuse(
        "devices",
        "pods cannot map host devices; request a device plugin resource (e.g. GPU in resourceRequirements) instead",
        notes,
    );
    linux.refuse(
        "maxSwap",
        "Kubernetes sets swap per node (the kubelet's swap behaviour), not per container",
        notes,
    );
    linux.refuse(
        "swappiness",
        "Kubernetes sets swap per node (the kubelet's swap behaviour), not per container",
        notes,
    );
    linux.finish(notes);
    Ok(Some(LinuxParameters {
        shared_memory_size,
        init_process_enabled,
        tmpfs,
    }))
}

/// Ulimits are refused: Kubernetes has no per-container ulimit, so Barge carries none to the pod
/// (the node's container runtime defaults apply). Each entry is still read, so a malformed one
/// is named as such, and AWS's `-1` (unlimited) is named by its field.
fn ulimits(reader: &ObjectReader<'_>, notes: &mut Notes) -> Result<(), ImportError> {
    const WHY: &str = "Kubernetes has no per-container ulimits, so Barge cannot set them (the node's container runtime defaults apply); set them in the node's runtime configuration or in the container's entrypoint (ulimit -n ...) and remove them here";
    for (path, item) in reader.list("ulimits")? {
        let entry = ObjectReader::new(item, &path)?;
        let name = entry.required_string("name")?;
        let soft_limit = entry
            .long("softLimit")?
            .ok_or_else(|| ImportError::field(entry.field_path("softLimit"), "required"))?;
        let hard_limit = entry
            .long("hardLimit")?
            .ok_or_else(|| ImportError::field(entry.field_path("hardLimit"), "required"))?;
        let limit_path = |key: &str| entry.field_path(key);
        let (soft_path, hard_path) = (limit_path("softLimit"), limit_path("hardLimit"));
        entry.finish(notes);
        let unlimited: Vec<String> = [(soft_path, soft_limit), (hard_path, hard_limit)]
            .into_iter()
            .filter(|(_, limit)| *limit == -1)
            .map(|(path, _)| path)
            .collect();
        match unlimited.as_slice() {
            [] => notes.refuse(
                path,
                format!("ulimit {name} (soft {soft_limit}, hard {hard_limit}): {WHY}"),
            ),
            paths => {
                for path in paths {
                    notes.refuse(path.clone(), format!("ulimit {name} -1 (unlimited): {WHY}"));
                }
            }
        }
    }
    Ok(())
}

fn user(reader: &ObjectReader<'_>, notes: &mut Notes) -> Result<Option<String>, ImportError> {
    let Some(user) = reader.string("user")? else {
        return Ok(None);
    };
    let numeric = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let ok = user == "root"
        || user == "nobody"
        || match user.split_once(':') {
            Some((uid, gid)) => numeric(uid) && numeric(gid),
            None => numeric(&user),
        };
    if ok {
        Ok(Some(user))
    } else {
        notes.refuse(
            reader.field_path("user"),
            format!("{user:?} is a user name, which Kubernetes cannot look up: it runs containers by numeric uid (use the uid, uid:gid, root or nobody)"),
        );
        Ok(None)
    }
}

/// `containerProperties` (or a node range's `container`).
pub(crate) fn container_properties(
    reader: &ObjectReader<'_>,
    multinode: bool,
    notes: &mut Notes,
) -> Result<ContainerProperties, ImportError> {
    let image = reader.required_string("image")?;
    let command = reader.string_list("command")?;
    let environment = environment(reader, notes)?;
    let resource_requirements = resource_requirements(reader, notes)?;
    let vcpus = legacy_amount(
        reader,
        "vcpus",
        &resource_requirements,
        ResourceType::Vcpu,
        notes,
    )?;
    let memory = legacy_amount(
        reader,
        "memory",
        &resource_requirements,
        ResourceType::Memory,
        notes,
    )?;
    let volumes = volumes(reader, notes)?;
    let mount_points = mount_points(reader, notes)?;
    let secrets = secrets(reader, notes)?;
    let user = user(reader, notes)?;
    let privileged = reader.bool("privileged")?;
    let readonly_root_filesystem = reader.bool("readonlyRootFilesystem")?;
    let linux_parameters = linux_parameters(reader, notes)?;
    ulimits(reader, notes)?;
    let service_account_name = reader.string("serviceAccountName")?;
    let instance_type = reader.string("instanceType")?;
    let instance_type = match instance_type {
        Some(t) if !multinode => {
            notes.refuse(
                reader.field_path("instanceType"),
                format!("{t:?}: instanceType applies to the node ranges of multinode jobs only (as in AWS Batch)"),
            );
            None
        }
        other => other,
    };
    reader.not_imported("jobRoleArn", JOB_ROLE_NOTE, notes);
    reader.not_imported("executionRoleArn", "the kubelet pulls images and reads secrets itself; use imagePullSecrets on the service account for private registries", notes);
    reader.not_imported(
        "logConfiguration",
        "container logs are the pods' logs (kubectl logs, barge logs)",
        notes,
    );
    reader.not_imported(
        "repositoryCredentials",
        "use imagePullSecrets on the service account",
        notes,
    );
    reader.not_imported(
        "networkConfiguration",
        "Fargate networking has no Kubernetes meaning",
        notes,
    );
    reader.not_imported(
        "fargatePlatformConfiguration",
        "Barge does not run on Fargate",
        notes,
    );
    reader.refuse(
        "runtimePlatform",
        "Barge cannot pin a job to an operating system or CPU architecture; choose them with the compute environment's instance types and remove it here",
        notes,
    );
    reader.refuse(
        "ephemeralStorage",
        "Barge requests no ephemeral storage for a job, so the size would not be guaranteed; use a volume",
        notes,
    );
    reader.not_imported("enableExecuteCommand", "use kubectl exec", notes);
    Ok(ContainerProperties {
        image,
        command,
        environment,
        resource_requirements,
        vcpus,
        memory,
        volumes,
        mount_points,
        secrets,
        user,
        privileged,
        readonly_root_filesystem,
        linux_parameters,
        ulimits: Vec::new(),
        service_account_name,
        instance_type,
    })
}

/// AWS's `instanceTypes` of a node range (or of a node property override): Barge runs a range
/// on one instance type, so a single entry becomes the container's `instanceType` (refused when
/// it names another than the container's) and several entries are refused.
pub(crate) fn single_instance_type(
    range: &ObjectReader<'_>,
    container_instance_type: Option<&str>,
    notes: &mut Notes,
) -> Result<Option<String>, ImportError> {
    let types = range.string_list("instanceTypes")?;
    let path = range.field_path("instanceTypes");
    match types.as_slice() {
        [] => Ok(None),
        [one] => match container_instance_type {
            Some(other) if other != one => {
                notes.refuse(
                    path,
                    format!("{one:?} differs from the container's instanceType {other:?}"),
                );
                Ok(None)
            }
            _ => Ok(Some(one.clone())),
        },
        several => {
            notes.refuse(
                path,
                format!(
                    "{} instance types: Barge runs a node range on one instance type (set one)",
                    several.len()
                ),
            );
            Ok(None)
        }
    }
}

/// `containerOverrides` of SubmitJob (or of a node property override).
pub(crate) fn container_overrides(
    reader: &ObjectReader<'_>,
    notes: &mut Notes,
) -> Result<ContainerOverrides, ImportError> {
    let command = reader
        .has("command")
        .then(|| reader.string_list("command"))
        .transpose()?;
    let environment = environment(reader, notes)?;
    let resource_requirements = resource_requirements(reader, notes)?;
    let vcpus = legacy_amount(
        reader,
        "vcpus",
        &resource_requirements,
        ResourceType::Vcpu,
        notes,
    )?;
    let memory = legacy_amount(
        reader,
        "memory",
        &resource_requirements,
        ResourceType::Memory,
        notes,
    )?;
    let instance_type = reader.string("instanceType")?;
    Ok(ContainerOverrides {
        command,
        environment,
        resource_requirements,
        vcpus,
        memory,
        instance_type,
    })
}

pub(crate) fn retry_strategy(
    reader: &ObjectReader<'_>,
    notes: &mut Notes,
) -> Result<Option<RetryStrategy>, ImportError> {
    let Some(retry) = reader.object("retryStrategy")? else {
        return Ok(None);
    };
    let attempts = retry.int("attempts")?;
    let mut evaluate_on_exit = Vec::new();
    for (path, item) in retry.list("evaluateOnExit")? {
        let entry = ObjectReader::new(item, &path)?;
        let on_status_reason = entry.string("onStatusReason")?;
        let on_reason = entry.string("onReason")?;
        let on_exit_code = entry.string("onExitCode")?;
        // AWS Batch reads the action case-insensitively.
        let action = match entry
            .required_string("action")?
            .to_ascii_uppercase()
            .as_str()
        {
            "RETRY" => RetryAction::Retry,
            "EXIT" => RetryAction::Exit,
            other => {
                return Err(ImportError::field(
                    entry.field_path("action"),
                    format!("expected RETRY or EXIT, got {other:?}"),
                ))
            }
        };
        entry.finish(notes);
        evaluate_on_exit.push(EvaluateOnExit {
            on_status_reason,
            on_reason,
            on_exit_code,
            action,
        });
    }
    retry.finish(notes);
    Ok(Some(RetryStrategy {
        attempts,
        evaluate_on_exit,
    }))
}

pub(crate) fn timeout(
    reader: &ObjectReader<'_>,
    notes: &mut Notes,
) -> Result<Option<JobTimeout>, ImportError> {
    let Some(timeout) = reader.object("timeout")? else {
        return Ok(None);
    };
    let attempt_duration_seconds = timeout.int("attemptDurationSeconds")?;
    timeout.finish(notes);
    Ok(Some(JobTimeout {
        attempt_duration_seconds,
    }))
}
