//! `kubectl barge queues`: every JobQueue with its priority, state, status, compute
//! environments (in the order they are tried) and its jobs counted by state — SUBMITTED to
//! FAILED, as AWS Batch's console shows a queue — from one list of the jobs of every namespace
//! (or of `-n NAMESPACE`'s). An array job counts once, in its own state. `-o yaml|json` prints
//! the same as a document (`queues: [...]`), `-o name` the queues' names.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde::Serialize;

use barge_crds::job::{JobStatus, JobStatusCounts};
use barge_crds::{Job, JobQueue};
use barge_operator::cache::recorded_state;

use super::kube_cli::{
    connect, document_text, resource_name, run, table, CliError, ClusterArgs, OutputFormat,
};

#[derive(Debug, Args)]
pub struct QueuesArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Output format (default: a table).
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<QueuesOutput>,
}

/// `-o` of `queues`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum QueuesOutput {
    Yaml,
    Json,
    Name,
}

/// One queue's line (and `-o json|yaml` entry).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueSummary {
    pub name: String,
    pub priority: i32,
    /// ENABLED or DISABLED.
    pub state: String,
    /// VALID or INVALID (absent before the operator has looked at the queue).
    pub status: Option<String>,
    /// In the order they are tried.
    pub compute_environments: Vec<String>,
    /// The queue's jobs by state.
    pub job_counts: JobStatusCounts,
}

/// A serde enum's wire name, e.g. "ENABLED".
fn wire_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The queues (by name) with their jobs counted by state.
pub fn summarize(queues: &[JobQueue], jobs: &[Job]) -> Vec<QueueSummary> {
    let mut counts: BTreeMap<&str, JobStatusCounts> = BTreeMap::new();
    for job in jobs {
        *counts
            .entry(job.spec.job_queue.as_str())
            .or_default()
            .get_mut(recorded_state(job)) += 1;
    }
    let mut summaries: Vec<QueueSummary> = queues
        .iter()
        .map(|q| QueueSummary {
            name: q.name_any(),
            priority: q.spec.priority,
            state: wire_name(&q.spec.state),
            status: q
                .status
                .as_ref()
                .and_then(|s| s.status)
                .map(|s| wire_name(&s)),
            compute_environments: q
                .spec
                .ordered_compute_environments()
                .into_iter()
                .map(String::from)
                .collect(),
            job_counts: counts
                .get(q.name_any().as_str())
                .cloned()
                .unwrap_or_default(),
        })
        .collect();
    summaries.sort_by(|a, b| a.name.cmp(&b.name));
    summaries
}

/// The table of [`summarize`]'s queues.
pub fn queues_table(summaries: &[QueueSummary]) -> String {
    let mut header: Vec<String> = [
        "NAME",
        "PRIORITY",
        "STATE",
        "STATUS",
        "COMPUTE ENVIRONMENTS",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    header.extend(JobStatus::ALL.iter().map(|s| s.to_string()));
    let mut rows = vec![header];
    for q in summaries {
        let mut row = vec![
            q.name.clone(),
            q.priority.to_string(),
            q.state.clone(),
            q.status.clone().unwrap_or_else(|| "<none>".into()),
            if q.compute_environments.is_empty() {
                "<none>".into()
            } else {
                q.compute_environments.join(",")
            },
        ];
        row.extend(
            JobStatus::ALL
                .iter()
                .map(|s| q.job_counts.get(*s).to_string()),
        );
        rows.push(row);
    }
    table(&rows)
}

pub fn run_queues(args: QueuesArgs) -> ExitCode {
    run(queues(args))
}

async fn queues(args: QueuesArgs) -> Result<(), CliError> {
    let (client, namespace) = connect(&args.cluster).await?;
    let queues = Api::<JobQueue>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let jobs_api: Api<Job> = match args.cluster.namespace {
        Some(_) => Api::namespaced(client, &namespace),
        None => Api::all(client),
    };
    let jobs = jobs_api.list(&ListParams::default()).await?.items;
    let summaries = summarize(&queues, &jobs);
    if summaries.is_empty() && args.output.is_none() {
        eprintln!("No resources found");
        return Ok(());
    }
    let text = match args.output {
        None => queues_table(&summaries),
        Some(QueuesOutput::Name) => summaries
            .iter()
            .map(|q| format!("{}\n", resource_name::<JobQueue>(&q.name)))
            .collect(),
        Some(format) => {
            let document = serde_json::json!({ "queues": summaries });
            let format = match format {
                QueuesOutput::Json => OutputFormat::Json,
                _ => OutputFormat::Yaml,
            };
            document_text(&document, format)?
        }
    };
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(name: &str, priority: i32, order: &[(i32, &str)], status: &str) -> JobQueue {
        let order: Vec<serde_json::Value> = order
            .iter()
            .map(|(o, ce)| serde_json::json!({"order": o, "computeEnvironment": ce}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "batch.barge.dev/v1alpha1",
            "kind": "JobQueue",
            "metadata": {"name": name},
            "spec": {"priority": priority, "state": "ENABLED", "computeEnvironmentOrder": order},
            "status": {"status": status},
        }))
        .expect("a queue")
    }

    fn job(queue: &str, status: Option<&str>) -> Job {
        let mut value = serde_json::json!({
            "apiVersion": "batch.barge.dev/v1alpha1",
            "kind": "Job",
            "metadata": {"name": "j"},
            "spec": {"jobQueue": queue, "jobDefinition": "d"},
        });
        if let Some(s) = status {
            value["status"] = serde_json::json!({"status": s});
        }
        serde_json::from_value(value).expect("a job")
    }

    #[test]
    fn queues_count_their_jobs_by_state_and_list_environments_in_order() {
        let queues = vec![
            queue("high", 10, &[(2, "spot"), (1, "ondemand")], "VALID"),
            queue("idle", 1, &[(1, "ondemand")], "VALID"),
        ];
        let jobs = vec![
            job("high", Some("RUNNING")),
            job("high", Some("RUNNING")),
            job("high", Some("FAILED")),
            job("high", None),
            job("gone", Some("RUNNABLE")),
        ];
        let summaries = summarize(&queues, &jobs);
        assert_eq!(summaries[0].compute_environments, vec!["ondemand", "spot"]);
        assert_eq!(summaries[0].job_counts.RUNNING, 2);
        assert_eq!(
            summaries[0].job_counts.SUBMITTED, 1,
            "no status yet: SUBMITTED"
        );
        assert_eq!(
            queues_table(&summaries),
            "NAME   PRIORITY   STATE     STATUS   COMPUTE ENVIRONMENTS   SUBMITTED   PENDING   RUNNABLE   STARTING   RUNNING   SUCCEEDED   FAILED\n\
             high   10         ENABLED   VALID    ondemand,spot          1           0         0          0          2         0           1\n\
             idle   1          ENABLED   VALID    ondemand               0           0         0          0          0         0           0\n"
        );
        let json = serde_json::to_value(&summaries[0]).expect("json");
        assert_eq!(json["jobCounts"]["RUNNING"], 2);
        assert_eq!(json["computeEnvironments"][1], "spot");
    }
}
