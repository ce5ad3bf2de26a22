//! The container pieces shared by RegisterJobDefinition and SubmitJob: `containerProperties`,
//! `containerOverrides`, `retryStrategy` and `timeout`.

use barge_crds::consts::RESERVED_ENV_PREFIX;
use barge_crds::resources::{
    ContainerOverrides, ContainerProperties, EnvironmentVariable, EvaluateOnExit, Host, JobTimeout,
    LinuxParameters, MountPoint, ResourceRequirement, ResourceType, RetryAction, RetryStrategy,
    Secret, Tmpfs, Ulimit, UlimitName, Volume,
};
use k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource;
use serde_json::Value;

use super::names::{dns_name, NameLimit};
use super::reader::ObjectReader;
use super::{ImportError, Notes};

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
            notes.add(path, format!("not imported: {name} starts with {RESERVED_ENV_PREFIX}, which Barge reserves (it sets these variables itself)"));
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

/// Legacy `vcpus` / `memory`, dropped (with a note) when a resource requirement of the same type
/// is given too, since Barge accepts only one of the two.
fn legacy_amount(
    reader: &ObjectReader<'_>,
    key: &str,
    requirements: &[ResourceRequirement],
    r#type: ResourceType,
    notes: &mut Notes,
) -> Result<Option<i32>, ImportError> {
    let amount = reader.int(key)?;
    if amount.is_some() && requirements.iter().any(|r| r.r#type == r#type) {
        notes.add(
            reader.field_path(key),
            "not imported: resourceRequirements already sets this amount (Barge accepts one of the two)",
        );
        return Ok(None);
    }
    Ok(amount)
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
            Some(efs) => {
                let file_system = efs.required_string("fileSystemId")?;
                let claim = dns_name(&file_system, NameLimit::Object).ok_or_else(|| {
                    ImportError::field(
                        efs.field_path("fileSystemId"),
                        "expected an EFS file system id",
                    )
                })?;
                notes.add(
                    efs.path(),
                    format!("EFS has no meaning in Kubernetes: imported as the PersistentVolumeClaim {claim:?}; create it in the job's namespace bound to file system {file_system} (e.g. with the EFS CSI driver)"),
                );
                efs.finish(notes);
                Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim,
                    read_only: None,
                })
            }
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
        if is_kubernetes_secret_reference(&value_from) && !name.starts_with(RESERVED_ENV_PREFIX) {
            secrets.push(Secret { name, value_from });
        } else {
            notes.add(
                path,
                format!("not imported: {value_from:?} is an AWS Secrets Manager or SSM reference; create a Kubernetes Secret and add {{name: {name}, valueFrom: <secret-name>:<key>}}"),
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
        entry.finish(notes);
        tmpfs.push(Tmpfs {
            container_path,
            size,
            mount_options,
        });
    }
    linux.not_imported(
        "devices",
        "pods cannot map host devices this way; use a device plugin resource",
        notes,
    );
    linux.not_imported(
        "maxSwap",
        "Kubernetes manages swap per node, not per container",
        notes,
    );
    linux.not_imported(
        "swappiness",
        "Kubernetes manages swap per node, not per container",
        notes,
    );
    linux.finish(notes);
    Ok(Some(LinuxParameters {
        shared_memory_size,
        init_process_enabled,
        tmpfs,
    }))
}

fn ulimits(reader: &ObjectReader<'_>, notes: &mut Notes) -> Result<Vec<Ulimit>, ImportError> {
    let mut ulimits = Vec::new();
    for (path, item) in reader.list("ulimits")? {
        let entry = ObjectReader::new(item, &path)?;
        let name = entry.required_string("name")?;
        let soft_limit = entry
            .long("softLimit")?
            .ok_or_else(|| ImportError::field(entry.field_path("softLimit"), "required"))?;
        let hard_limit = entry
            .long("hardLimit")?
            .ok_or_else(|| ImportError::field(entry.field_path("hardLimit"), "required"))?;
        entry.finish(notes);
        match serde_json::from_value::<UlimitName>(Value::String(name.clone())) {
            Ok(name) => ulimits.push(Ulimit {
                name,
                soft_limit,
                hard_limit,
            }),
            Err(_) => notes.add(
                path,
                format!("not imported: {name:?} is not a ulimit Barge knows"),
            ),
        }
    }
    Ok(ulimits)
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
        notes.add(
            reader.field_path("user"),
            format!("not imported: {user:?} is a user name; Kubernetes runs containers by numeric uid (use a uid, uid:gid, root or nobody)"),
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
    let ulimits = ulimits(reader, notes)?;
    let service_account_name = reader.string("serviceAccountName")?;
    let instance_type = reader.string("instanceType")?;
    let instance_type = match instance_type {
        Some(t) if !multinode => {
            notes.add(
                reader.field_path("instanceType"),
                format!("not imported ({t:?}): instanceType applies to multinode node ranges only"),
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
    reader.not_imported(
        "runtimePlatform",
        "choose the nodes' OS and architecture with the compute environment's instance types",
        notes,
    );
    reader.not_imported(
        "ephemeralStorage",
        "Fargate ephemeral storage has no Barge counterpart; use a volume",
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
        ulimits,
        service_account_name,
        instance_type,
    })
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
