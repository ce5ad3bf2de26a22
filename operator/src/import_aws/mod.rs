//! `barge import aws`: AWS Batch JSON documents → Barge objects, as a pure conversion.
//!
//! Faithful or loud: every field the importer carries is one Barge honours at run time. A field
//! Barge would not honour (a ulimit, a tmpfs mount option, ECS properties, an AWS secret ARN, a
//! field the importer does not know, ...) is *refused*: the conversion fails naming it, and
//! nothing is printed. Only fields that are AWS metadata or AWS infrastructure with no run-time
//! effect on the job's container (IAM roles, log drivers, subnets, ...) are dropped, each with a
//! warning naming it. docs/import-aws.md lists the decision for every field.
//!
//! Data flow: the inputs (a document, a list of documents, or DescribeJobDefinitions output
//! `{"jobDefinitions": [...]}`) → [`convert_inputs`] collects their documents → the revisions of
//! each job definition are chosen ([`revisions`]: the newest ACTIVE one) → each document's kind
//! is detected by its keys (`jobDefinitionName` → RegisterJobDefinition, `jobQueueName` →
//! CreateJobQueue, `computeEnvironmentName` → CreateComputeEnvironment, `name` +
//! `fairsharePolicy` → CreateSchedulingPolicy, `jobName` + `jobQueue` → SubmitJob) → the
//! per-kind module reads it through an [`reader::ObjectReader`], which tracks every field it
//! reads → a typed barge-crds object plus warnings and refusals ([`Notes`]) → every object is
//! validated against its CRD's schema and CEL rules ([`validate`]) exactly as the API server
//! would. Malformed input is an [`ImportError`] naming the field (`containerProperties.vcpus:
//! expected a number, got "two"`).

mod compute_environment;
mod container;
mod job;
mod job_definition;
mod job_queue;
mod names;
mod reader;
mod revisions;
mod scheduling_policy;
mod validate;

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
    /// The object's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            BargeObject::ComputeEnvironment(_) => "ComputeEnvironment",
            BargeObject::JobQueue(_) => "JobQueue",
            BargeObject::SchedulingPolicy(_) => "SchedulingPolicy",
            BargeObject::JobDefinition(_) => "JobDefinition",
            BargeObject::Job(_) => "Job",
        }
    }

    /// The object's name.
    pub fn name(&self) -> String {
        let metadata = match self {
            BargeObject::ComputeEnvironment(o) => &o.metadata,
            BargeObject::JobQueue(o) => &o.metadata,
            BargeObject::SchedulingPolicy(o) => &o.metadata,
            BargeObject::JobDefinition(o) => &o.metadata,
            BargeObject::Job(o) => &o.metadata,
        };
        metadata.name.clone().unwrap_or_default()
    }

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

/// Something the conversion changed, could not carry over, or refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The input it came from (a file name; empty for a document converted on its own).
    pub file: String,
    /// Path of the field in the input (`computeResources.subnets`).
    pub path: String,
    /// What happened to it.
    pub message: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.file.is_empty() {
            write!(f, "{}: ", self.file)?;
        }
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The notes of a conversion, in the order they arose: warnings (a field dropped because it
/// has no meaning in Kubernetes, a name changed) and refusals (a field Barge would not honour
/// at run time: the conversion fails naming it).
#[derive(Clone, Debug, Default)]
pub struct Notes {
    warnings: Vec<Note>,
    refusals: Vec<Note>,
}

impl Notes {
    /// A warning: printed on stderr, the conversion goes on.
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Note {
            file: String::new(),
            path: path.into(),
            message: message.into(),
        });
    }

    /// A refusal: the field would not be honoured at run time, so nothing is imported.
    pub(crate) fn refuse(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.refusals.push(Note {
            file: String::new(),
            path: path.into(),
            message: format!("refused: {}", message.into()),
        });
    }
}

/// Malformed or refused input: which file and field, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportError {
    /// The input it came from (a file name; empty for a document converted on its own).
    pub file: String,
    /// Path of the field in the input (`containerProperties.vcpus`, `[2].jobName`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ImportError {
    pub(crate) fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        let path = path.into();
        ImportError {
            file: String::new(),
            path: if path.is_empty() {
                "document".into()
            } else {
                path
            },
            message: message.into(),
        }
    }

    fn in_file(mut self, file: &str) -> Self {
        self.file = file.to_string();
        self
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.file.is_empty() {
            write!(f, "{}: ", self.file)?;
        }
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ImportError {}

impl From<Note> for ImportError {
    fn from(note: Note) -> Self {
        ImportError {
            file: note.file,
            path: note.path,
            message: note.message,
        }
    }
}

/// Every error of a conversion (one per line when shown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportErrors(pub Vec<ImportError>);

impl fmt::Display for ImportErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for ImportErrors {}

/// The objects and warnings of a conversion.
#[derive(Clone, Debug, Default)]
pub struct Conversion {
    pub objects: Vec<BargeObject>,
    /// Where each object came from (`file`, or `file: path` for a document in a list).
    pub sources: Vec<String>,
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

/// Recognises a document by its keys. A job definition as DescribeJobDefinitions returns it
/// (with `revision`, `status`, `jobDefinitionArn`) is a RegisterJobDefinition document too.
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

/// One document of the input, where it came from.
struct Document<'a> {
    file: &'a str,
    path: String,
    value: &'a Value,
}

/// The documents of one input: a document, a list of documents, or DescribeJobDefinitions
/// output (`{"jobDefinitions": [...], "nextToken": ...}`).
fn documents<'a>(
    file: &'a str,
    input: &'a Value,
    notes: &mut Notes,
) -> Result<Vec<Document<'a>>, ImportError> {
    let document = |path: String, value: &'a Value| Document { file, path, value };
    match input {
        Value::Array(items) => Ok(items
            .iter()
            .enumerate()
            .map(|(i, d)| document(format!("[{i}]"), d))
            .collect()),
        Value::Object(map) if map.contains_key("jobDefinitions") && detect(input).is_none() => {
            let reader = ObjectReader::new(input, "")?;
            let items = reader.list("jobDefinitions")?;
            reader.not_imported(
                "nextToken",
                "this is one page of DescribeJobDefinitions output: import the other pages too (aws batch describe-job-definitions without --max-items pages through all of them)",
                notes,
            );
            reader.finish(notes);
            Ok(items
                .into_iter()
                .map(|(path, value)| document(path, value))
                .collect())
        }
        single => Ok(vec![document(String::new(), single)]),
    }
}

/// Converts a document, a list of documents or DescribeJobDefinitions output.
pub fn convert(input: &Value, options: &ImportOptions) -> Result<Conversion, ImportErrors> {
    convert_inputs(&[(String::new(), input.clone())], options)
}

/// Converts the documents of several inputs (file name, JSON) together: revisions of the same
/// job definition are chosen among all of them, a job's `name:N` reference is checked against
/// the definitions imported with it, every object is validated against its CRD, and any
/// malformed or refused field fails the whole conversion.
pub fn convert_inputs(
    inputs: &[(String, Value)],
    options: &ImportOptions,
) -> Result<Conversion, ImportErrors> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut all = Vec::new();
    for (file, input) in inputs {
        let mut notes = Notes::default();
        match documents(file, input, &mut notes) {
            Ok(found) => all.extend(found),
            Err(e) => errors.push(e.in_file(file)),
        }
        collect(notes, file, &mut warnings, &mut errors);
    }
    let selection = revisions::select(
        all.iter()
            .map(|d| (d.file, d.path.as_str(), d.value))
            .collect(),
    );
    let (skipped, imported) = match selection {
        Ok(selection) => {
            for (file, note) in selection.notes {
                let mut note = note;
                note.file = file.to_string();
                warnings.push(note);
            }
            (selection.skipped, selection.imported)
        }
        Err(e) => {
            errors.push(e);
            return Err(ImportErrors(errors));
        }
    };
    let context = Context {
        options,
        revisions: &imported,
    };
    let mut validator = validate::Validator::default();
    let mut objects: Vec<(BargeObject, &str, String)> = Vec::new();
    for (index, document) in all.iter().enumerate() {
        if skipped.contains(&index) {
            continue;
        }
        let mut notes = Notes::default();
        match convert_document(document.value, &document.path, &context, &mut notes) {
            Ok(object) => {
                if notes.refusals.is_empty() {
                    if let Err(message) = validator.check(&object) {
                        errors.push(
                            ImportError::field(document.path.clone(), message)
                                .in_file(document.file),
                        );
                    }
                }
                objects.push((object, document.file, document.path.clone()));
            }
            Err(e) => errors.push(e.in_file(document.file)),
        }
        collect(notes, document.file, &mut warnings, &mut errors);
    }
    duplicates(&objects, &mut errors);
    if errors.is_empty() {
        let sources = objects
            .iter()
            .map(|(_, file, path)| match (file.is_empty(), path.is_empty()) {
                (_, true) => file.to_string(),
                (true, false) => path.clone(),
                (false, false) => format!("{file}: {path}"),
            })
            .collect();
        Ok(Conversion {
            objects: objects.into_iter().map(|(o, _, _)| o).collect(),
            sources,
            notes: warnings,
        })
    } else {
        Err(ImportErrors(errors))
    }
}

/// Moves a document's notes into the conversion's warnings and errors.
fn collect(notes: Notes, file: &str, warnings: &mut Vec<Note>, errors: &mut Vec<ImportError>) {
    let with_file = |mut note: Note| {
        note.file = file.to_string();
        note
    };
    warnings.extend(notes.warnings.into_iter().map(with_file));
    errors.extend(
        notes
            .refusals
            .into_iter()
            .map(|n| ImportError::from(with_file(n))),
    );
}

/// Two documents that become the same object would overwrite each other when applied: refused.
fn duplicates(objects: &[(BargeObject, &str, String)], errors: &mut Vec<ImportError>) {
    let mut seen: std::collections::BTreeMap<(&'static str, String), (&str, &str)> =
        std::collections::BTreeMap::new();
    for (object, file, path) in objects {
        let key = (object.kind(), object.name());
        match seen.get(&key) {
            Some((first_file, first_path)) => errors.push(
                ImportError::field(
                    path.clone(),
                    format!(
                        "refused: {} {:?} is also imported from {}{}; applying both would keep only the last",
                        key.0,
                        key.1,
                        if first_file.is_empty() { String::new() } else { format!("{first_file}: ") },
                        if first_path.is_empty() { "the document" } else { first_path },
                    ),
                )
                .in_file(file),
            ),
            None => {
                seen.insert(key, (file, path));
            }
        }
    }
}

/// What the per-kind conversions need besides the document.
pub(crate) struct Context<'a> {
    pub(crate) options: &'a ImportOptions,
    /// The definitions imported in this run and the AWS revision each was imported from.
    pub(crate) revisions: &'a revisions::ImportedRevisions,
}

fn convert_document(
    document: &Value,
    path: &str,
    context: &Context<'_>,
    notes: &mut Notes,
) -> Result<BargeObject, ImportError> {
    let options = context.options;
    let reader = ObjectReader::new(document, path)?;
    let kind = detect(document).ok_or_else(|| {
        ImportError::field(
            path,
            "not an AWS Batch document Barge can import: expected RegisterJobDefinition (jobDefinitionName), \
             CreateJobQueue (jobQueueName), CreateComputeEnvironment (computeEnvironmentName), \
             CreateSchedulingPolicy (name and fairsharePolicy), SubmitJob (jobName and jobQueue) \
             or DescribeJobDefinitions output (jobDefinitions)",
        )
    })?;
    let object = match kind {
        DocumentKind::RegisterJobDefinition => job_definition::convert(&reader, options, notes)?,
        DocumentKind::CreateJobQueue => job_queue::convert(&reader, notes)?,
        DocumentKind::CreateComputeEnvironment => {
            compute_environment::convert(&reader, options, notes)?
        }
        DocumentKind::CreateSchedulingPolicy => scheduling_policy::convert(&reader, notes)?,
        DocumentKind::SubmitJob => job::convert(&reader, context, notes)?,
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
