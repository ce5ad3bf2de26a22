//! SubmitJob → Job.

use barge_crds::job::{
    ArrayProperties, DependencyType, JobDependency, NodeOverrides, NodePropertyOverride,
};
use barge_crds::{Job, JobSpec};

use super::container::{container_overrides, retry_strategy, timeout};
use super::names::{arn_resource, convert_name, convert_reference, dns_name, NameLimit};
use super::reader::ObjectReader;
use super::{metadata, BargeObject, ImportError, ImportOptions, Notes};

pub(crate) fn convert(
    reader: &ObjectReader<'_>,
    options: &ImportOptions,
    notes: &mut Notes,
) -> Result<BargeObject, ImportError> {
    let aws_name = reader.required_string("jobName")?;
    let name = convert_name(
        &aws_name,
        &reader.field_path("jobName"),
        NameLimit::Label,
        notes,
    )?;
    let queue = reader.required_string("jobQueue")?;
    let job_queue = convert_reference(
        &queue,
        &reader.field_path("jobQueue"),
        "job-queue",
        NameLimit::Label,
        notes,
    )?;
    let definition = reader.required_string("jobDefinition")?;
    let job_definition =
        job_definition_reference(&definition, &reader.field_path("jobDefinition"), notes)?;
    let array_properties = match reader.object("arrayProperties")? {
        Some(array) => {
            let size = array.int("size")?;
            array.finish(notes);
            size.map(|size| ArrayProperties { size })
        }
        None => None,
    };
    let depends_on = dependencies(reader, notes)?;
    let parameters = reader.string_map("parameters")?;
    let container_overrides = match reader.object("containerOverrides")? {
        Some(overrides) => {
            let converted = container_overrides(&overrides, notes)?;
            overrides.finish(notes);
            Some(converted)
        }
        None => None,
    };
    let node_overrides = reader
        .object("nodeOverrides")?
        .map(|n| node_overrides(n, notes))
        .transpose()?;
    let retry_strategy = retry_strategy(reader, notes)?;
    let timeout = timeout(reader, notes)?;
    let share_identifier = reader.string("shareIdentifier")?;
    let scheduling_priority_override = reader.int("schedulingPriorityOverride")?;
    let tags = reader.string_map("tags")?;
    let propagate_tags = reader.bool("propagateTags")?;
    reader.not_imported(
        "eksPropertiesOverride",
        "override podProperties containers with containerOverrides",
        notes,
    );
    reader.not_imported(
        "ecsPropertiesOverride",
        "ECS task properties have no Barge counterpart",
        notes,
    );
    reader.not_imported(
        "consumableResourcePropertiesOverride",
        "consumable resources are not supported yet",
        notes,
    );
    let spec = JobSpec {
        job_queue,
        job_definition,
        array_properties,
        depends_on,
        parameters,
        container_overrides,
        node_overrides,
        retry_strategy,
        timeout,
        share_identifier,
        scheduling_priority_override,
        tags,
        propagate_tags,
        terminate: None,
        ttl_seconds_after_finished: None,
    };
    let mut object = Job::new(&name, spec);
    object.metadata = metadata(name, options.namespace.as_deref());
    Ok(BargeObject::Job(Box::new(object)))
}

/// `name`, `name:revision` or a job-definition ARN → `name` / `name:revision` in Kubernetes form.
fn job_definition_reference(
    value: &str,
    path: &str,
    notes: &mut Notes,
) -> Result<String, ImportError> {
    let reference = match arn_resource(value) {
        Some(("job-definition", reference)) => {
            notes.add(
                path,
                format!("the ARN {value:?} becomes a reference by name to {reference:?}"),
            );
            reference
        }
        Some((resource, _)) => {
            return Err(ImportError::field(
                path,
                format!("{value:?} is an ARN of a {resource}, expected a job-definition"),
            ))
        }
        None => value,
    };
    let (name, revision) = match reference.rsplit_once(':') {
        Some((name, revision)) => {
            let revision: u32 = revision.parse().ok().filter(|r| *r >= 1).ok_or_else(|| {
                ImportError::field(
                    path,
                    format!("{value:?}: the revision after ':' must be a number from 1"),
                )
            })?;
            (name, Some(revision))
        }
        None => (reference, None),
    };
    let name = convert_name(name, path, NameLimit::Label, notes)?;
    Ok(match revision {
        Some(revision) => format!("{name}:{revision}"),
        None => name,
    })
}

fn dependencies(
    reader: &ObjectReader<'_>,
    notes: &mut Notes,
) -> Result<Vec<JobDependency>, ImportError> {
    let mut depends_on = Vec::new();
    for (path, item) in reader.list("dependsOn")? {
        let entry = ObjectReader::new(item, &path)?;
        let r#type = match entry.string("type")?.as_deref() {
            None => None,
            Some("N_TO_N") => Some(DependencyType::NToN),
            Some("SEQUENTIAL") => Some(DependencyType::Sequential),
            Some(other) => {
                return Err(ImportError::field(
                    entry.field_path("type"),
                    format!("expected N_TO_N or SEQUENTIAL, got {other:?}"),
                ))
            }
        };
        let job_id = entry.string("jobId")?;
        let sequential = r#type == Some(DependencyType::Sequential);
        let job_name = match job_id {
            Some(job_id) if sequential => {
                notes.add(
                    entry.field_path("jobId"),
                    format!("not imported ({job_id:?}): a SEQUENTIAL dependency chains the children of this array job and names no job"),
                );
                None
            }
            None if !sequential => {
                return Err(ImportError::field(
                    entry.field_path("jobId"),
                    "required (only a SEQUENTIAL dependency names no job)",
                ))
            }
            Some(job_id) => {
                let job_name = dns_name(&job_id, NameLimit::Label).ok_or_else(|| {
                    ImportError::field(entry.field_path("jobId"), "expected a job id")
                })?;
                notes.add(
                    entry.field_path("jobId"),
                    format!("AWS job ids have no meaning in Kubernetes: {job_id:?} becomes jobName {job_name:?}; make it the name of the Job (in the same namespace) this job waits for"),
                );
                Some(job_name)
            }
            None => None,
        };
        entry.finish(notes);
        depends_on.push(JobDependency { job_name, r#type });
    }
    Ok(depends_on)
}

fn node_overrides(
    reader: ObjectReader<'_>,
    notes: &mut Notes,
) -> Result<NodeOverrides, ImportError> {
    let num_nodes = reader.int("numNodes")?;
    let mut node_property_overrides = Vec::new();
    for (path, item) in reader.list("nodePropertyOverrides")? {
        let entry = ObjectReader::new(item, &path)?;
        let target_nodes = entry.required_string("targetNodes")?;
        let container_overrides = match entry.object("containerOverrides")? {
            Some(overrides) => {
                let converted = container_overrides(&overrides, notes)?;
                overrides.finish(notes);
                Some(converted)
            }
            None => None,
        };
        entry.not_imported(
            "instanceTypes",
            "set instanceType in the range's containerOverrides",
            notes,
        );
        entry.finish(notes);
        node_property_overrides.push(NodePropertyOverride {
            target_nodes,
            container_overrides,
        });
    }
    reader.finish(notes);
    Ok(NodeOverrides {
        num_nodes,
        node_property_overrides,
    })
}
