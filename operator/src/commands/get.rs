//! `kubectl barge get NAME...` and `kubectl barge list` (`ls`): jobs as `kubectl get` prints
//! them — a table (NAME, QUEUE, STATUS, ARRAY, ATTEMPTS, AGE; `-o wide` adds the children
//! running and failed, the nodes of a multi-node job, the definition and the status reason),
//! or `-o yaml|json|name`. `list` filters by `--status` and `-l`, across namespaces with `-A`.

use std::process::ExitCode;

use clap::Args;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use barge_crds::job::JobStatus;
use barge_crds::Job;
use barge_operator::cache::recorded_state;

use super::kube_cli::{
    age, connect, document_text, list_document, printable, resource_name, run, table, CliError,
    ClusterArgs, OutputFormat,
};

/// What a job column shows when it does not apply (a single job has no ARRAY).
pub const NOT_APPLICABLE: &str = "-";

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Job names.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Output format (default: a table).
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<OutputFormat>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// List the jobs of every namespace.
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,
    /// Only jobs in these states (comma-separated or repeated), e.g. RUNNING,RUNNABLE.
    #[arg(long, value_delimiter = ',', value_parser = parse_status, value_name = "STATUS")]
    pub status: Vec<JobStatus>,
    /// Label selector, e.g. `team=ml` (as kubectl's `-l`).
    #[arg(long, short = 'l', value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Output format (default: a table).
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<OutputFormat>,
}

/// An AWS Batch job state, in any case.
pub fn parse_status(value: &str) -> Result<JobStatus, String> {
    JobStatus::ALL
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(value))
        .ok_or_else(|| {
            let all: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
            format!("{value:?} is not a job state; one of {}", all.join(", "))
        })
}

pub fn run_get(args: GetArgs) -> ExitCode {
    run(get(args))
}

pub fn run_list(args: ListArgs) -> ExitCode {
    run(list(args))
}

async fn get(args: GetArgs) -> Result<(), CliError> {
    let (client, namespace) = connect(&args.cluster).await?;
    let api: Api<Job> = Api::namespaced(client, &namespace);
    let mut jobs = Vec::new();
    let mut errors = Vec::new();
    for name in &args.names {
        match api.get(name).await {
            Ok(job) => jobs.push(job),
            Err(e) => errors.push(CliError::from(e)),
        }
    }
    // kubectl prints what it found, then an error per name it did not.
    if !jobs.is_empty() {
        let single = args.names.len() == 1;
        print!("{}", render(&jobs, args.output, false, single)?);
    }
    if errors.is_empty() {
        return Ok(());
    }
    for error in errors {
        eprintln!("{error}");
    }
    Err(CliError::Reported)
}

async fn list(args: ListArgs) -> Result<(), CliError> {
    let (client, namespace) = connect(&args.cluster).await?;
    let api: Api<Job> = if args.all_namespaces {
        Api::all(client)
    } else {
        Api::namespaced(client, &namespace)
    };
    let mut params = ListParams::default();
    if let Some(selector) = &args.selector {
        params = params.labels(selector);
    }
    let mut jobs: Vec<Job> = api
        .list(&params)
        .await?
        .items
        .into_iter()
        .filter(|j| args.status.is_empty() || args.status.contains(&recorded_state(j)))
        .collect();
    jobs.sort_by_key(|j| (j.namespace(), j.name_any()));
    if jobs.is_empty() && matches!(args.output, None | Some(OutputFormat::Wide)) {
        let scope = (!args.all_namespaces).then_some(namespace.as_str());
        eprintln!("{}", no_resources(scope));
        return Ok(());
    }
    print!(
        "{}",
        render(&jobs, args.output, args.all_namespaces, false)?
    );
    Ok(())
}

/// kubectl's message for an empty listing.
pub fn no_resources(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("No resources found in {ns} namespace."),
        None => "No resources found".to_string(),
    }
}

/// Jobs as `-o` asks: a table (with a NAMESPACE column across namespaces), names, or a
/// document — the object itself for a single `get NAME`, else a `List`.
pub fn render(
    jobs: &[Job],
    output: Option<OutputFormat>,
    with_namespace: bool,
    single: bool,
) -> Result<String, CliError> {
    match output {
        None | Some(OutputFormat::Wide) => {
            let wide = output == Some(OutputFormat::Wide);
            let now = jiff::Timestamp::now();
            let mut rows = vec![header(wide, with_namespace)];
            rows.extend(jobs.iter().map(|j| row(j, now, wide, with_namespace)));
            Ok(table(&rows))
        }
        Some(OutputFormat::Name) => Ok(jobs
            .iter()
            .map(|j| format!("{}\n", resource_name::<Job>(&j.name_any())))
            .collect()),
        Some(format) => {
            let document = match jobs {
                [job] if single => printable(job)?,
                _ => list_document(jobs.iter().map(printable).collect::<Result<_, _>>()?),
            };
            document_text(&document, format)
        }
    }
}

/// The table's header.
pub fn header(wide: bool, with_namespace: bool) -> Vec<String> {
    let mut columns = Vec::new();
    if with_namespace {
        columns.push("NAMESPACE");
    }
    columns.extend(["NAME", "QUEUE", "STATUS", "ARRAY", "ATTEMPTS", "AGE"]);
    if wide {
        columns.extend(["RUNNING", "FAILED", "NODES", "DEFINITION", "REASON"]);
    }
    columns.into_iter().map(String::from).collect()
}

/// A job's row, aged at `now`.
pub fn row(job: &Job, now: jiff::Timestamp, wide: bool, with_namespace: bool) -> Vec<String> {
    let status = job.status.as_ref();
    let array = status.and_then(|s| s.array_properties.as_ref());
    let mut cells = Vec::new();
    if with_namespace {
        cells.push(job.namespace().unwrap_or_default());
    }
    cells.push(job.name_any());
    cells.push(job.spec.job_queue.clone());
    cells.push(recorded_state(job).to_string());
    cells.push(array_progress(job).unwrap_or_else(|| NOT_APPLICABLE.into()));
    cells.push(attempts(job).map_or_else(|| NOT_APPLICABLE.into(), |a| a.to_string()));
    cells.push(age(
        job.metadata.creation_timestamp.as_ref().map(|t| t.0),
        now,
    ));
    if wide {
        let children = |state: JobStatus| {
            array.map_or(NOT_APPLICABLE.to_string(), |a| {
                a.status_summary.get(state).to_string()
            })
        };
        cells.push(children(JobStatus::Running));
        cells.push(children(JobStatus::Failed));
        cells.push(
            status
                .and_then(|s| s.node_properties.as_ref())
                .and_then(|n| n.progress.clone())
                .unwrap_or_else(|| NOT_APPLICABLE.into()),
        );
        cells.push(definition(job));
        cells.push(
            status
                .and_then(|s| s.status_reason.clone())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "<none>".into()),
        );
    }
    cells
}

/// An array job's succeeded children over its size, e.g. "8/10" (before the operator has
/// counted them: "0/size"); None for other jobs.
pub fn array_progress(job: &Job) -> Option<String> {
    let size = job.spec.array_properties.as_ref()?.size;
    let succeeded = job
        .status
        .as_ref()
        .and_then(|s| s.array_properties.as_ref())
        .map_or(0, |a| a.status_summary.SUCCEEDED);
    Some(format!("{succeeded}/{size}"))
}

/// Attempts started by a single or multi-node job; None for an array job (its children each
/// have their own, which the job's status does not add up).
pub fn attempts(job: &Job) -> Option<i32> {
    if job.spec.array_properties.is_some() {
        return None;
    }
    let Some(status) = job.status.as_ref() else {
        return Some(0);
    };
    Some(
        status
            .attempt_count
            .unwrap_or(i32::try_from(status.attempts.len()).unwrap_or(i32::MAX)),
    )
}

/// The definition the job runs: the resolved `name:revision`, else what the spec asks for.
pub fn definition(job: &Job) -> String {
    job.status
        .as_ref()
        .and_then(|s| s.resolved_job_definition.as_ref())
        .map(|d| format!("{}:{}", d.name, d.revision))
        .unwrap_or_else(|| job.spec.job_definition.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job from YAML (the test's own fixture).
    pub(crate) fn job(yaml: &str) -> Job {
        serde_yaml::from_str(yaml).expect("a job")
    }

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().expect("a timestamp")
    }

    const ARRAY: &str = r#"
apiVersion: batch.barge.dev/v1alpha1
kind: Job
metadata: {name: render, namespace: ml, creationTimestamp: "2026-01-01T00:00:00Z"}
spec: {jobQueue: gpu, jobDefinition: render, arrayProperties: {size: 10}}
status:
  status: RUNNING
  resolvedJobDefinition: {name: render, revision: 3}
  arrayProperties:
    size: 10
    statusSummary: {SUCCEEDED: 8, RUNNING: 1, FAILED: 1}
"#;

    const SINGLE: &str = r#"
apiVersion: batch.barge.dev/v1alpha1
kind: Job
metadata: {name: train, namespace: ml, creationTimestamp: "2026-01-01T00:00:00Z"}
spec: {jobQueue: cpu, jobDefinition: "train:2"}
status:
  status: FAILED
  statusReason: Essential container in task exited
  attemptCount: 2
"#;

    #[test]
    fn rows_show_array_progress_attempts_and_age() {
        let now = at("2026-01-03T04:00:00Z");
        let rows = vec![
            header(false, false),
            row(&job(ARRAY), now, false, false),
            row(&job(SINGLE), now, false, false),
        ];
        assert_eq!(
            table(&rows),
            "NAME     QUEUE   STATUS    ARRAY   ATTEMPTS   AGE\n\
             render   gpu     RUNNING   8/10    -          2d4h\n\
             train    cpu     FAILED    -       2          2d4h\n"
        );
    }

    #[test]
    fn wide_rows_add_children_definition_and_reason() {
        let now = at("2026-01-01T00:00:07Z");
        let rows = vec![
            header(true, true),
            row(&job(ARRAY), now, true, true),
            row(&job(SINGLE), now, true, true),
        ];
        assert_eq!(
            table(&rows),
            "NAMESPACE   NAME     QUEUE   STATUS    ARRAY   ATTEMPTS   AGE   RUNNING   FAILED   NODES   DEFINITION   REASON\n\
             ml          render   gpu     RUNNING   8/10    -          7s    1         1        -       render:3     <none>\n\
             ml          train    cpu     FAILED    -       2          7s    -         -        -       train:2      Essential container in task exited\n"
        );
    }

    #[test]
    fn a_new_array_job_shows_zero_of_its_size() {
        let fresh = job(
            "apiVersion: batch.barge.dev/v1alpha1\nkind: Job\nmetadata: {name: a}\nspec: {jobQueue: q, jobDefinition: d, arrayProperties: {size: 4}}\n",
        );
        assert_eq!(array_progress(&fresh).as_deref(), Some("0/4"));
        assert_eq!(recorded_state(&fresh), JobStatus::Submitted);
        assert_eq!(attempts(&fresh), None);
        assert_eq!(
            row(&fresh, at("2026-01-01T00:00:00Z"), false, false)[5],
            "<unknown>"
        );
    }

    #[test]
    fn documents_are_the_object_for_one_name_and_a_list_otherwise() {
        let one = render(&[job(SINGLE)], Some(OutputFormat::Json), false, true).expect("json");
        let value: serde_json::Value = serde_json::from_str(&one).expect("parses");
        assert_eq!(value["kind"], "Job");
        let many = render(&[job(SINGLE)], Some(OutputFormat::Yaml), false, false).expect("yaml");
        let value: serde_json::Value = serde_yaml::from_str(&many).expect("parses");
        assert_eq!(value["kind"], "List");
        assert_eq!(value["items"][0]["metadata"]["name"], "train");
        assert_eq!(
            render(&[job(SINGLE)], Some(OutputFormat::Name), false, false).expect("names"),
            "job.batch.barge.dev/train\n"
        );
    }

    #[test]
    fn states_parse_in_any_case() {
        assert_eq!(parse_status("running"), Ok(JobStatus::Running));
        assert_eq!(parse_status("FAILED"), Ok(JobStatus::Failed));
        assert!(parse_status("done").is_err());
        assert_eq!(
            no_resources(Some("ml")),
            "No resources found in ml namespace."
        );
    }
}
