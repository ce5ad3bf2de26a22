//! `kubectl barge submit`: creates a Job (AWS Batch SubmitJob) from a JobDefinition name and
//! overrides given as flags, or from AWS SubmitJob JSON (`--from-aws FILE|-`, converted by
//! `barge import aws`'s SubmitJob conversion). Prints `job.batch.barge.dev/NAME created` per
//! job, as `kubectl create` does, or the created objects with `-o`.
//!
//! The flags are AWS SubmitJob's, spelled as kubectl spells flags: `--job-definition NAME[:REV]`,
//! `--job-queue`, `--array-size`, `--depends-on JOB[:N_TO_N]` / `SEQUENTIAL`, `--parameters
//! k=v`, and the container overrides `--command` (a JSON array, or the words after `--`),
//! `--env K=V`, `--vcpus`, `--memory` (MiB), `--gpus`, plus `--timeout` (seconds),
//! `--retry-attempts`, `--share-identifier`, `--scheduling-priority`. Without `--name` the API
//! server generates one from the definition's name (`generateName`). [`job_from_flags`] is
//! pure; the API server's CRD schema validates the rest.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};

use barge_crds::consts::FIELD_MANAGER_CLI;
use barge_crds::job::{
    parse_job_definition_reference, ArrayProperties, DependencyType, JobDependency,
};
use barge_crds::resources::{
    ContainerOverrides, EnvironmentVariable, JobTimeout, ResourceRequirement, ResourceType,
    RetryStrategy,
};
use barge_crds::{Job, JobSpec};

use super::kube_cli::{
    connect, document_text, list_document, printable, resource_name, run, CliError, ClusterArgs,
    OutputFormat,
};
use crate::import_aws::{convert, BargeObject, ImportOptions};

/// Longest prefix of a generated name: the API server adds 5 characters, and the name of an
/// array child's pod (`<job>-<attempt>-<index>`) must stay a valid label value.
const MAX_GENERATED_PREFIX: usize = 40;

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// AWS SubmitJob JSON to submit instead of flags (a document or a list; "-": stdin).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["job_definition", "job_queue", "name"])]
    pub from_aws: Option<PathBuf>,
    #[command(flatten)]
    pub job: JobFlags,
    /// Output format of the created jobs (default: `job.batch.barge.dev/NAME created`).
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<OutputFormat>,
}

/// A job as flags (everything but the cluster and output flags of `submit`).
#[derive(Debug, Default, Args)]
pub struct JobFlags {
    /// The JobDefinition, `NAME` (its latest revision) or `NAME:REVISION`.
    #[arg(
        long,
        value_name = "NAME[:REVISION]",
        required_unless_present = "from_aws"
    )]
    pub job_definition: Option<String>,
    /// The JobQueue.
    #[arg(long, value_name = "QUEUE", required_unless_present = "from_aws")]
    pub job_queue: Option<String>,
    /// The job's name (default: generated from the definition's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Makes it an array job of this many children (2–10,000).
    #[arg(long, value_name = "N")]
    pub array_size: Option<i32>,
    /// A job to wait for: `JOB`, `JOB:N_TO_N`, or `SEQUENTIAL` (children in index order);
    /// repeatable.
    #[arg(long, value_name = "JOB[:N_TO_N]|SEQUENTIAL", value_parser = parse_dependency)]
    pub depends_on: Vec<JobDependency>,
    /// A `Ref::` parameter value, `KEY=VALUE`; repeatable or comma-separated.
    #[arg(long, value_name = "KEY=VALUE", value_delimiter = ',', value_parser = parse_key_value)]
    pub parameters: Vec<(String, String)>,
    /// Replaces the definition's command: a JSON array, e.g. '["sh","-c","echo hi"]' (or put
    /// the words after `--`).
    #[arg(long, value_name = "JSON", value_parser = parse_command, conflicts_with = "args")]
    pub command: Option<CommandWords>,
    /// An environment variable, `NAME=VALUE`; repeatable.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,
    /// vCPUs (may be fractional, e.g. 0.5).
    #[arg(long, value_name = "VCPUS")]
    pub vcpus: Option<String>,
    /// Memory in MiB.
    #[arg(long, value_name = "MIB")]
    pub memory: Option<String>,
    /// GPUs.
    #[arg(long, value_name = "N")]
    pub gpus: Option<String>,
    /// Per-attempt time limit in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<i32>,
    /// Attempts in all (1–10; 1: no retry).
    #[arg(long, value_name = "N")]
    pub retry_attempts: Option<i32>,
    /// Fair-share identifier.
    #[arg(long, value_name = "ID")]
    pub share_identifier: Option<String>,
    /// Replaces the definition's scheduling priority (0–9999).
    #[arg(long, value_name = "N")]
    pub scheduling_priority: Option<i32>,
    /// The command, after `--` (as `kubectl run ... -- COMMAND ARGS`).
    #[arg(last = true, value_name = "COMMAND")]
    pub args: Vec<String>,
}

/// `JOB`, `JOB:N_TO_N`, `SEQUENTIAL` or `:SEQUENTIAL`.
pub fn parse_dependency(value: &str) -> Result<JobDependency, String> {
    let sequential = JobDependency {
        job_name: None,
        r#type: Some(DependencyType::Sequential),
    };
    match value.split_once(':') {
        None if value == "SEQUENTIAL" => Ok(sequential),
        None if !value.is_empty() => Ok(JobDependency {
            job_name: Some(value.to_string()),
            r#type: None,
        }),
        Some(("", "SEQUENTIAL")) => Ok(sequential),
        Some((job, "N_TO_N")) if !job.is_empty() => Ok(JobDependency {
            job_name: Some(job.to_string()),
            r#type: Some(DependencyType::NToN),
        }),
        Some((_, "SEQUENTIAL")) => Err(format!(
            "{value:?}: a SEQUENTIAL dependency chains this array job's own children and names no job: write SEQUENTIAL"
        )),
        _ => Err(format!(
            "{value:?} is not JOB, JOB:N_TO_N or SEQUENTIAL"
        )),
    }
}

/// `KEY=VALUE` (the value may be empty and contain '=').
pub fn parse_key_value(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, v)) if !key.is_empty() => Ok((key.to_string(), v.to_string())),
        _ => Err(format!("{value:?} is not KEY=VALUE")),
    }
}

/// The words of a command (`--command`'s JSON array).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandWords(pub Vec<String>);

/// A command as a JSON array of strings.
pub fn parse_command(value: &str) -> Result<CommandWords, String> {
    serde_json::from_str(value).map(CommandWords).map_err(|e| {
        format!("{value:?} is not a JSON array of strings, e.g. '[\"sh\",\"-c\",\"echo hi\"]': {e}")
    })
}

/// The Job the flags describe, in `namespace`.
pub fn job_from_flags(flags: &JobFlags, namespace: &str) -> Result<Job, String> {
    let definition = flags
        .job_definition
        .clone()
        .ok_or("--job-definition is required")?;
    let reference = parse_job_definition_reference(&definition)
        .map_err(|e| format!("--job-definition: {e}"))?;
    let job_queue = flags.job_queue.clone().ok_or("--job-queue is required")?;
    let command = match (&flags.command, flags.args.is_empty()) {
        (Some(command), _) => Some(command.0.clone()),
        (None, false) => Some(flags.args.clone()),
        (None, true) => None,
    };
    let resource_requirements: Vec<ResourceRequirement> = [
        (ResourceType::Vcpu, &flags.vcpus),
        (ResourceType::Memory, &flags.memory),
        (ResourceType::Gpu, &flags.gpus),
    ]
    .into_iter()
    .filter_map(|(r#type, value)| {
        value
            .clone()
            .map(|value| ResourceRequirement { r#type, value })
    })
    .collect();
    let environment: Vec<EnvironmentVariable> = flags
        .env
        .iter()
        .map(|(name, value)| EnvironmentVariable {
            name: name.clone(),
            value: Some(value.clone()),
        })
        .collect();
    let overrides = ContainerOverrides {
        command,
        environment,
        resource_requirements,
        ..ContainerOverrides::default()
    };
    let spec = JobSpec {
        job_queue,
        job_definition: definition.clone(),
        array_properties: flags.array_size.map(|size| ArrayProperties { size }),
        depends_on: flags.depends_on.clone(),
        parameters: flags.parameters.iter().cloned().collect::<BTreeMap<_, _>>(),
        container_overrides: (overrides != ContainerOverrides::default()).then_some(overrides),
        node_overrides: None,
        retry_strategy: flags.retry_attempts.map(|attempts| RetryStrategy {
            attempts: Some(attempts),
            evaluate_on_exit: Vec::new(),
        }),
        timeout: flags.timeout.map(|seconds| JobTimeout {
            attempt_duration_seconds: Some(seconds),
        }),
        share_identifier: flags.share_identifier.clone(),
        scheduling_priority_override: flags.scheduling_priority,
        tags: BTreeMap::new(),
        propagate_tags: None,
        terminate: None,
        ttl_seconds_after_finished: None,
    };
    let metadata = match &flags.name {
        Some(name) => ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        None => ObjectMeta {
            generate_name: Some(generated_prefix(reference.name)),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
    };
    let mut job = Job::new("", spec);
    job.metadata = metadata;
    Ok(job)
}

/// The `generateName` of a job of definition `definition`: its name made a Job name (no '.'),
/// shortened, and a '-' (the API server appends 5 random characters, as to a pod's).
pub fn generated_prefix(definition: &str) -> String {
    let base: String = definition
        .chars()
        .map(|c| if c == '.' { '-' } else { c })
        .take(MAX_GENERATED_PREFIX)
        .collect();
    format!("{}-", base.trim_end_matches('-'))
}

/// The Jobs of AWS SubmitJob JSON (`name` for messages), in `namespace`, with the conversion's
/// notes; any other kind of document is refused.
pub fn jobs_from_aws(
    name: &str,
    text: &str,
    namespace: &str,
) -> Result<(Vec<Job>, Vec<String>), String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("{name}: not valid JSON: {e}"))?;
    let options = ImportOptions {
        namespace: Some(namespace.to_string()),
        ..ImportOptions::default()
    };
    let conversion = convert(&value, &options).map_err(|e| format!("{name}: {e}"))?;
    let notes = conversion
        .notes
        .iter()
        .map(|n| format!("{name}: {n}"))
        .collect();
    let jobs = conversion
        .objects
        .into_iter()
        .map(|object| match object {
            BargeObject::Job(job) => Ok(*job),
            _ => Err(format!(
                "{name}: only SubmitJob documents (jobName, jobQueue, jobDefinition) can be submitted; use `barge import aws` for definitions, queues and compute environments"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((jobs, notes))
}

fn read_input(path: &PathBuf) -> Result<(String, String), CliError> {
    let name = path.display().to_string();
    if name == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::other(format!("standard input: {e}")))?;
        return Ok(("standard input".into(), text));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| CliError::other(format!("{name}: {e}")))?;
    Ok((name, text))
}

pub fn run_submit(args: SubmitArgs) -> ExitCode {
    run(submit(args))
}

async fn submit(args: SubmitArgs) -> Result<(), CliError> {
    // Read and convert before connecting: a bad document never reaches the cluster.
    let aws = args.from_aws.as_ref().map(read_input).transpose()?;
    let (client, namespace) = connect(&args.cluster).await?;
    let jobs = match aws {
        Some((name, text)) => {
            let (jobs, notes) = jobs_from_aws(&name, &text, &namespace).map_err(CliError::Other)?;
            for note in notes {
                eprintln!("warning: {note}");
            }
            jobs
        }
        None => vec![job_from_flags(&args.job, &namespace).map_err(CliError::Other)?],
    };
    let api: Api<Job> = Api::namespaced(client, &namespace);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER_CLI.to_string()),
        ..PostParams::default()
    };
    let mut created = Vec::new();
    for job in &jobs {
        let job = api.create(&params, job).await?;
        if args.output.is_none() {
            println!("{} created", resource_name::<Job>(&job.name_any()));
        }
        created.push(job);
    }
    match args.output {
        None => {}
        Some(OutputFormat::Name | OutputFormat::Wide) => {
            for job in &created {
                println!("{}", resource_name::<Job>(&job.name_any()));
            }
        }
        Some(format) => {
            let document = match created.as_slice() {
                [job] => printable(job)?,
                many => list_document(many.iter().map(printable).collect::<Result<_, _>>()?),
            };
            print!("{}", document_text(&document, format)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        flags: JobFlags,
        #[arg(long)]
        from_aws: Option<PathBuf>,
    }

    fn flags(args: &[&str]) -> JobFlags {
        Cli::try_parse_from(std::iter::once("submit").chain(args.iter().copied()))
            .expect("flags parse")
            .flags
    }

    #[test]
    fn flags_map_onto_the_submit_job_fields() {
        let f = flags(&[
            "--job-definition=render:3",
            "--job-queue=gpu",
            "--name=frames",
            "--array-size=10",
            "--depends-on=prep:N_TO_N",
            "--depends-on=SEQUENTIAL",
            "--parameters=codec=mp4,quality=high",
            "--env=MODE=fast",
            "--vcpus=0.5",
            "--memory=2048",
            "--gpus=1",
            "--timeout=600",
            "--retry-attempts=3",
            "--share-identifier=teamA",
            "--scheduling-priority=7",
            "--",
            "sh",
            "-c",
            "echo $MODE",
        ]);
        let job = job_from_flags(&f, "ml").expect("a job");
        let value = serde_json::to_value(&job).expect("json");
        assert_eq!(
            value,
            serde_json::json!({
                "apiVersion": "batch.barge.dev/v1alpha1",
                "kind": "Job",
                "metadata": {"name": "frames", "namespace": "ml"},
                "spec": {
                    "jobQueue": "gpu",
                    "jobDefinition": "render:3",
                    "arrayProperties": {"size": 10},
                    "dependsOn": [{"jobName": "prep", "type": "N_TO_N"}, {"type": "SEQUENTIAL"}],
                    "parameters": {"codec": "mp4", "quality": "high"},
                    "containerOverrides": {
                        "command": ["sh", "-c", "echo $MODE"],
                        "environment": [{"name": "MODE", "value": "fast"}],
                        "resourceRequirements": [
                            {"type": "VCPU", "value": "0.5"},
                            {"type": "MEMORY", "value": "2048"},
                            {"type": "GPU", "value": "1"},
                        ],
                    },
                    "retryStrategy": {"attempts": 3},
                    "timeout": {"attemptDurationSeconds": 600},
                    "shareIdentifier": "teamA",
                    "schedulingPriorityOverride": 7,
                },
            })
        );
    }

    #[test]
    fn without_a_name_the_server_generates_one_from_the_definition() {
        let f = flags(&[
            "--job-definition=video.encode:2",
            "--job-queue=q",
            "--command=[\"true\"]",
        ]);
        let job = job_from_flags(&f, "default").expect("a job");
        assert_eq!(job.metadata.name, None);
        assert_eq!(job.metadata.generate_name.as_deref(), Some("video-encode-"));
        let overrides = job.spec.container_overrides.expect("overrides");
        assert_eq!(overrides.command, Some(vec!["true".to_string()]));
        assert_eq!(
            generated_prefix(&"x".repeat(80)).len(),
            MAX_GENERATED_PREFIX + 1
        );
        // No override flag: no containerOverrides at all.
        let plain =
            job_from_flags(&flags(&["--job-definition=d", "--job-queue=q"]), "ns").expect("a job");
        assert_eq!(plain.spec.container_overrides, None);
    }

    #[test]
    fn bad_flags_are_refused_before_anything_is_sent() {
        let refused = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("submit").chain(args.iter().copied())).is_err()
        };
        assert!(refused(&["--job-queue=q"]), "a definition is required");
        assert!(refused(&[
            "--job-definition=d",
            "--job-queue=q",
            "--env=NOEQUALS"
        ]));
        assert!(refused(&[
            "--job-definition=d",
            "--job-queue=q",
            "--command=sh"
        ]));
        assert!(refused(&[
            "--job-definition=d",
            "--job-queue=q",
            "--depends-on=a:SEQUENTIAL"
        ]));
        assert!(!refused(&["--from-aws=-"]), "a document needs no flags");
        let bad_revision = flags(&["--job-definition=d:0", "--job-queue=q"]);
        assert!(job_from_flags(&bad_revision, "ns")
            .unwrap_err()
            .contains("--job-definition"));
    }

    #[test]
    fn aws_submit_job_documents_become_jobs_and_nothing_else_is_accepted() {
        let text = r#"{
            "jobName": "nightly-report",
            "jobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/prod",
            "jobDefinition": "report",
            "parameters": {"day": "monday"},
            "arrayProperties": {"size": 3}
        }"#;
        let (jobs, notes) = jobs_from_aws("r.json", text, "ml").expect("converts");
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        assert_eq!(job.metadata.name.as_deref(), Some("nightly-report"));
        assert_eq!(job.metadata.namespace.as_deref(), Some("ml"));
        assert_eq!(job.spec.job_queue, "prod");
        assert_eq!(job.spec.array_properties, Some(ArrayProperties { size: 3 }));
        assert_eq!(
            job.spec.parameters.get("day").map(String::as_str),
            Some("monday")
        );
        assert!(notes.iter().all(|n| n.starts_with("r.json: ")), "{notes:?}");
        let definition = r#"{"jobDefinitionName": "report", "type": "container",
            "containerProperties": {"image": "busybox", "command": ["true"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]}}"#;
        let refused = jobs_from_aws("d.json", definition, "ml").unwrap_err();
        assert!(refused.contains("only SubmitJob"), "{refused}");
        assert!(jobs_from_aws("x.json", "{", "ml")
            .unwrap_err()
            .starts_with("x.json: not valid JSON"));
    }
}
