//! CreateJobQueue → JobQueue.

use barge_crds::job_queue::{
    ComputeEnvironmentOrder, JobStateTimeLimitAction, QueueingStrategy, TimeLimitAction,
    TimeLimitState,
};
use barge_crds::{JobQueue, JobQueueSpec};

use super::compute_environment::parse_state;
use super::names::{convert_name, convert_reference, NameLimit};
use super::reader::ObjectReader;
use super::{metadata, note_resource_tags, BargeObject, ImportError, Notes};

pub(crate) fn convert(
    reader: &ObjectReader<'_>,
    notes: &mut Notes,
) -> Result<BargeObject, ImportError> {
    let aws_name = reader.required_string("jobQueueName")?;
    let name = convert_name(
        &aws_name,
        &reader.field_path("jobQueueName"),
        NameLimit::Label,
        notes,
    )?;
    let state = parse_state(reader)?;
    let priority = reader.required_int("priority")?;
    let mut compute_environment_order = Vec::new();
    for (path, item) in reader.list("computeEnvironmentOrder")? {
        let entry = ObjectReader::new(item, &path)?;
        let order = entry.required_int("order")?;
        let reference = entry.required_string("computeEnvironment")?;
        let compute_environment = convert_reference(
            &reference,
            &entry.field_path("computeEnvironment"),
            "compute-environment",
            NameLimit::Label,
            notes,
        )?;
        entry.finish(notes);
        compute_environment_order.push(ComputeEnvironmentOrder {
            order,
            compute_environment,
        });
    }
    let scheduling_policy_name = reader
        .string("schedulingPolicyArn")?
        .map(|arn| {
            convert_reference(
                &arn,
                &reader.field_path("schedulingPolicyArn"),
                "scheduling-policy",
                NameLimit::Object,
                notes,
            )
        })
        .transpose()?;
    let mut job_state_time_limit_actions = Vec::new();
    for (path, item) in reader.list("jobStateTimeLimitActions")? {
        let entry = ObjectReader::new(item, &path)?;
        let reason = entry.required_string("reason")?;
        let state = match entry.required_string("state")?.as_str() {
            "RUNNABLE" => TimeLimitState::Runnable,
            other => {
                return Err(ImportError::field(
                    entry.field_path("state"),
                    format!("expected RUNNABLE, got {other:?}"),
                ))
            }
        };
        let max_time_seconds = entry.required_int("maxTimeSeconds")?;
        let action = match entry.required_string("action")?.as_str() {
            "CANCEL" => TimeLimitAction::Cancel,
            other => {
                return Err(ImportError::field(
                    entry.field_path("action"),
                    format!("expected CANCEL, got {other:?}"),
                ))
            }
        };
        entry.finish(notes);
        job_state_time_limit_actions.push(JobStateTimeLimitAction {
            reason,
            state,
            max_time_seconds,
            action,
        });
    }
    if reader.string("jobQueueType")?.as_deref() == Some("SAGEMAKER_TRAINING") {
        notes.refuse(
            reader.field_path("jobQueueType"),
            "a SAGEMAKER_TRAINING queue runs SageMaker training jobs, which Barge cannot run",
        );
    } else {
        reader.not_imported(
            "jobQueueType",
            "Barge queues always run jobs as Kubernetes pods",
            notes,
        );
    }
    reader.refuse(
        "serviceEnvironmentOrder",
        "service environments (SageMaker) have no Barge counterpart: the queue's jobs would not run there",
        notes,
    );
    note_resource_tags(reader, notes);
    let spec = JobQueueSpec {
        state,
        priority,
        compute_environment_order,
        scheduling_policy_name,
        job_state_time_limit_actions,
        namespace_selector: None,
        queueing_strategy: QueueingStrategy::default(),
    };
    let mut object = JobQueue::new(&name, spec);
    object.metadata = metadata(name, None);
    Ok(BargeObject::JobQueue(object))
}
