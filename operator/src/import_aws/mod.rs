//! `barge import aws`: AWS Batch JSON documents → Barge objects, as a pure conversion.
//!
//! Data flow: one JSON value (a document, or a list of documents) → [`convert`] detects each
//! document's kind by its keys (`jobDefinitionName` → RegisterJobDefinition, `jobQueueName` →
//! CreateJobQueue, `computeEnvironmentName` → CreateComputeEnvironment, `name` +
//! `fairsharePolicy` → CreateSchedulingPolicy, `jobName` + `jobQueue` → SubmitJob) → the
//! per-kind module reads it through an [`reader::ObjectReader`], which tracks every field it
//! reads → a typed barge-crds object plus [`Note`]s. Field names are AWS Batch's in Barge too, so
//! most fields carry over as they are; names and ARNs become Kubernetes names, and every field
//! without a Kubernetes meaning (subnets, roles, launch templates, ...) and every field the
//! importer does not know is reported as a note — never dropped silently. Malformed input is an
//! [`ImportError`] naming the field (`containerProperties.vcpus: expected a number, got "two"`).

mod compute_environment;
mod container;
mod job;
mod job_definition;
mod job_queue;
mod names;
mod reader;
mod scheduling_policy;

use std::fmt;

use barge_crds::{ComputeEnvironment, Job, JobDefinition, JobQueue, SchedulingPolicy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use reader::ObjectReader;

/// What the user chose on the command line.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Namespace of the namespaced kinds (JobDefinition, Job); absent: none is set, so
    /// `kubectl apply` uses its current namespace.
    pub namespace: Option<String>,
    /// `--karpenter-node-class`: managed compute environments get the karpenter provider with
    /// this NodeClass (default: the simulated provider).
    pub karpenter_node_class: Option<barge_crds::compute_environment::NodeClassRef>,
    /// `--cluster-api-machine-deployment` (repeatable): managed compute environments get the
    /// clusterAPI provider scaling these MachineDeployments.
    pub cluster_api_machine_deployments: Vec<barge_crds::compute_environment::MachineDeploymentRef>,
}

/// A converted object.
#[derive(Clone, Debug, PartialEq)]
pub enum BargeObject {
    ComputeEnvironment(ComputeEnvironment),
    JobQueue(JobQueue),
    SchedulingPolicy(SchedulingPolicy),
    JobDefinition(Box<JobDefinition>),
    Job(Box<Job>),
}

impl BargeObject {
    /// The object as a Kubernetes manifest.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        match self {
            BargeObject::ComputeEnvironment(o) => serde_json::to_value(o),
            BargeObject::JobQueue(o) => serde_json::to_value(o),
            BargeObject::SchedulingPolicy(o) => serde_json::to_value(o),
            BargeObject::JobDefinition(o) => serde_json::to_value(o),
            BargeObject::Job(o) => serde_json::to_value(o),
        }
    }
}

/// Something the conversion changed, could not carry over, or wants the user to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Path of the field in the input (`computeResources.subnets`).
    pub path: String,
    /// What happened to it.
    pub message: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The notes of a conversion, in the order they arose.
#[derive(Clone, Debug, Default)]
pub struct Notes(Vec<Note>);

impl Notes {
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Note {
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn into_vec(self) -> Vec<Note> {
        self.0
    }
}

/// Malformed input: which field, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ImportError {
    /// Path of the field in the input (`containerProperties.vcpus`, `[2].jobName`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ImportError {
    pub(crate) fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        let path = path.into();
        ImportError {
            path: if path.is_empty() {
                "document".into()
            } else {
                path
            },
            message: message.into(),
        }
    }
}

/// The objects and notes of a conversion.
#[derive(Clone, Debug, Default)]
pub struct Conversion {
    pub objects: Vec<BargeObject>,
    pub notes: Vec<Note>,
}

/// The AWS Batch request a document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentKind {
    RegisterJobDefinition,
    CreateJobQueue,
    CreateComputeEnvironment,
    CreateSchedulingPolicy,
    SubmitJob,
}

/// Recognises a document by its keys.
pub fn detect(document: &Value) -> Option<DocumentKind> {
    let has = |key: &str| document.get(key).is_some();
    if has("jobDefinitionName") {
        Some(DocumentKind::RegisterJobDefinition)
    } else if has("jobQueueName") {
        Some(DocumentKind::CreateJobQueue)
    } else if has("computeEnvironmentName") {
        Some(DocumentKind::CreateComputeEnvironment)
    } else if has("name") && has("fairsharePolicy") {
        Some(DocumentKind::CreateSchedulingPolicy)
    } else if has("jobName") && has("jobQueue") {
        Some(DocumentKind::SubmitJob)
    } else {
        None
    }
}

/// Converts a document or a list of documents.
pub fn convert(input: &Value, options: &ImportOptions) -> Result<Conversion, ImportError> {
    let documents: Vec<(String, &Value)> = match input {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("[{i}]"), d))
            .collect(),
        single => vec![(String::new(), single)],
    };
    let mut notes = Notes::default();
    let mut objects = Vec::new();
    for (path, document) in documents {
        objects.push(convert_document(document, &path, options, &mut notes)?);
    }
    Ok(Conversion {
        objects,
        notes: notes.into_vec(),
    })
}

fn convert_document(
    document: &Value,
    path: &str,
    options: &ImportOptions,
    notes: &mut Notes,
) -> Result<BargeObject, ImportError> {
    let reader = ObjectReader::new(document, path)?;
    let kind = detect(document).ok_or_else(|| {
        ImportError::field(
            path,
            "not an AWS Batch document Barge can import: expected RegisterJobDefinition (jobDefinitionName), \
             CreateJobQueue (jobQueueName), CreateComputeEnvironment (computeEnvironmentName), \
             CreateSchedulingPolicy (name and fairsharePolicy) or SubmitJob (jobName and jobQueue)",
        )
    })?;
    let object = match kind {
        DocumentKind::RegisterJobDefinition => job_definition::convert(&reader, options, notes)?,
        DocumentKind::CreateJobQueue => job_queue::convert(&reader, notes)?,
        DocumentKind::CreateComputeEnvironment => {
            compute_environment::convert(&reader, options, notes)?
        }
        DocumentKind::CreateSchedulingPolicy => scheduling_policy::convert(&reader, notes)?,
        DocumentKind::SubmitJob => job::convert(&reader, options, notes)?,
    };
    reader.finish(notes);
    Ok(object)
}

/// Metadata of a converted object.
pub(crate) fn metadata(name: String, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: namespace.map(str::to_string),
        ..ObjectMeta::default()
    }
}

/// Notes the AWS resource `tags` of a queue, compute environment or policy: Barge keeps
/// Kubernetes labels instead.
pub(crate) fn note_resource_tags(reader: &ObjectReader<'_>, notes: &mut Notes) {
    reader.not_imported(
        "tags",
        "AWS resource tags of this object have no Barge counterpart; use Kubernetes labels on the object",
        notes,
    );
}

#[cfg(test)]
mod tests;
