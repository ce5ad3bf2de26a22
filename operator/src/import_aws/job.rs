//! SubmitJob → Job.

use barge_crds::job::{
    ArrayProperties, DependencyType, JobDependency, NodeOverrides, NodePropertyOverride,
};
use barge_crds::{Job, JobSpec};

use super::container::{container_overrides, retry_strategy, timeout};
use super::names::{arn_resource, convert_name, convert_reference, dns_name, NameLimit};
use super::reader::ObjectReader;
use super::revisions::ImportedRevisions;
use super::{metadata, BargeObject, Context, ImportError, Notes};

pub(crate) fn convert(
    reader: &ObjectReader<'_>,
    context: &Context<'_>,
    notes: &mut Notes,
) -> Result<BargeObject, ImportError> {
    let options = context.options;
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
    let job_definition = job_definition_reference(
        &definition,
        &reader.field_path("jobDefinition"),
        context.revisions,
        notes,
    )?;
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
    super::job_definition::check_propagated_tags(reader, &tags, propagate_tags, notes);
    reader.refuse(
        "eksPropertiesOverride",
        "Barge applies a job's overrides to a podProperties definition through containerOverrides (command, environment); remove it or rewrite it as containerOverrides",
        notes,
    );
    reader.refuse(
        "ecsPropertiesOverride",
        "Barge does not run ECS task properties",
        notes,
    );
    reader.refuse(
        "consumableResourcePropertiesOverride",
        "Barge has no consumable resources: the job would run without waiting for them",
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

/// `name`, `name:revision` or a job-definition ARN → the Kubernetes name of the definition.
/// A revision is carried only when it is the revision imported in this run (see
/// [`super::revisions`]); any other is refused, since Barge numbers its revisions itself.
fn job_definition_reference(
    value: &str,
    path: &str,
    revisions: &ImportedRevisions,
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
            let revision: i32 = revision.parse().ok().filter(|r| *r >= 1).ok_or_else(|| {
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
    if let Some(revision) = revision {
        match revisions.get(&name) {
            Some(Some(imported)) if *imported == revision => notes.add(
                path,
                format!("revision {revision} of {name} is the one imported with this job: the job names {name:?} and runs its latest Barge revision, the imported spec (Barge numbers its revisions itself, from 1)"),
            ),
            Some(Some(imported)) => notes.refuse(
                path,
                format!("revision {revision} of {name} cannot be carried: this run imports revision {imported}, and a Barge JobDefinition holds one spec (Barge numbers its revisions itself, from 1; its revision {revision} would be another spec)"),
            ),
            _ => notes.refuse(
                path,
                format!("AWS revision {revision} of {name} cannot be carried: Barge numbers a definition's revisions itself, from 1, so {name}:{revision} in Barge would be another spec. Import the definition's revision {revision} in the same run (DescribeJobDefinitions output), or reference it as {name:?} to run its latest revision"),
            ),
        }
    }
    Ok(name)
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
        let mut container_overrides = match entry.object("containerOverrides")? {
            Some(overrides) => {
                let converted = container_overrides(&overrides, notes)?;
                overrides.finish(notes);
                Some(converted)
            }
            None => None,
        };
        if let Some(instance_type) = super::container::single_instance_type(
            &entry,
            container_overrides
                .as_ref()
                .and_then(|o| o.instance_type.as_deref()),
            notes,
        )? {
            container_overrides
                .get_or_insert_with(Default::default)
                .instance_type = Some(instance_type);
        }
        entry.refuse(
            "eksPropertiesOverride",
            "Barge's node ranges run AWS-shaped containers",
            notes,
        );
        entry.refuse(
            "ecsPropertiesOverride",
            "Barge does not run ECS task properties",
            notes,
        );
        entry.refuse(
            "consumableResourcePropertiesOverride",
            "Barge has no consumable resources: the job would run without waiting for them",
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
