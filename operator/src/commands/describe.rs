//! `kubectl barge describe NAME`: a job as `kubectl describe` lays an object out — `Key:  value`
//! lines aligned by Go's tabwriter (padding 2), nested sections indented by two spaces: name,
//! namespace, labels, queue, definition, status and reason, times, the array's children or the
//! multi-node job's nodes, dependencies, every attempt (start, stop, exit code, reasons, pod,
//! node), the last attempts of failed array children, conditions, and the job's Events (core/v1,
//! selected by `involvedObject` as kubectl does: Type, Reason, Age, From, Message).
//!
//! [`describe_text`] is pure; [`run_describe`] reads the job and its Events.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Args;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ListParams;
use kube::{Api, Resource, ResourceExt};

use barge_crds::job::{AttemptDetail, DependencyType, JobStatus};
use barge_crds::Job;
use barge_operator::cache::recorded_state;

use super::get::definition;
use super::kube_cli::{age, connect, run, tabwrite, CliError, ClusterArgs};

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// The job's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub fn run_describe(args: DescribeArgs) -> ExitCode {
    run(describe(args))
}

async fn describe(args: DescribeArgs) -> Result<(), CliError> {
    let (client, namespace) = connect(&args.cluster).await?;
    let job = Api::<Job>::namespaced(client.clone(), &namespace)
        .get(&args.name)
        .await?;
    let events = Api::<Event>::namespaced(client, &namespace)
        .list(&ListParams::default().fields(&events_selector(&job)))
        .await?
        .items;
    print!("{}", describe_text(&job, &events, jiff::Timestamp::now()));
    Ok(())
}

/// The field selector of a job's Events, as kubectl's describe builds it.
pub fn events_selector(job: &Job) -> String {
    let mut selector = format!(
        "involvedObject.name={},involvedObject.namespace={},involvedObject.kind={}",
        job.name_any(),
        job.namespace().unwrap_or_default(),
        Job::kind(&())
    );
    if let Some(uid) = job.uid() {
        selector.push_str(&format!(",involvedObject.uid={uid}"));
    }
    selector
}

/// kubectl's describe time format (RFC 1123 with a numeric zone), in UTC.
pub fn describe_time(time: Option<&Time>) -> String {
    match time {
        Some(t) => t.0.strftime("%a, %d %b %Y %H:%M:%S %z").to_string(),
        None => "<unset>".into(),
    }
}

fn or_none(value: Option<&str>) -> &str {
    value.filter(|v| !v.is_empty()).unwrap_or("<none>")
}

/// `Key:\tvalue` for a map, one entry per line as kubectl prints labels.
fn map_lines(
    out: &mut String,
    key: &str,
    map: Option<&std::collections::BTreeMap<String, String>>,
) {
    match map.filter(|m| !m.is_empty()) {
        None => {
            let _ = writeln!(out, "{key}:\t<none>");
        }
        Some(map) => {
            for (i, (k, v)) in map.iter().enumerate() {
                let label = if i == 0 {
                    format!("{key}:")
                } else {
                    String::new()
                };
                let _ = writeln!(out, "{label}\t{k}={v}");
            }
        }
    }
}

/// One attempt's lines, indented by `indent`.
fn attempt_lines(out: &mut String, indent: &str, attempt: &AttemptDetail) {
    let c = &attempt.container;
    let _ = writeln!(
        out,
        "{indent}Started:\t{}",
        describe_time(attempt.started_at.as_ref())
    );
    let _ = writeln!(
        out,
        "{indent}Stopped:\t{}",
        describe_time(attempt.stopped_at.as_ref())
    );
    let exit = c.exit_code.map_or("<none>".to_string(), |e| e.to_string());
    let _ = writeln!(out, "{indent}Exit Code:\t{exit}");
    let _ = writeln!(out, "{indent}Reason:\t{}", or_none(c.reason.as_deref()));
    let _ = writeln!(
        out,
        "{indent}Status Reason:\t{}",
        or_none(attempt.status_reason.as_deref())
    );
    let _ = writeln!(out, "{indent}Pod:\t{}", or_none(c.pod_name.as_deref()));
    let _ = writeln!(out, "{indent}Node:\t{}", or_none(c.node_name.as_deref()));
}

/// The describe text of a job and its events, seen at `now`.
pub fn describe_text(job: &Job, events: &[Event], now: jiff::Timestamp) -> String {
    let status = job.status.clone().unwrap_or_default();
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "Name:\t{}", job.name_any());
    let _ = writeln!(w, "Namespace:\t{}", job.namespace().unwrap_or_default());
    map_lines(w, "Labels", job.metadata.labels.as_ref());
    let annotations = job.metadata.annotations.as_ref().map(|a| {
        a.iter()
            .filter(|(k, _)| *k != "kubectl.kubernetes.io/last-applied-configuration")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    });
    map_lines(w, "Annotations", annotations.as_ref());
    let _ = writeln!(w, "Job ID:\t{}", or_none(job.uid().as_deref()));
    let _ = writeln!(w, "Queue:\t{}", job.spec.job_queue);
    let resolved = definition(job);
    let definition_text = if resolved == job.spec.job_definition {
        resolved
    } else {
        format!("{resolved} (requested {})", job.spec.job_definition)
    };
    let _ = writeln!(w, "Definition:\t{definition_text}");
    let _ = writeln!(w, "Status:\t{}", recorded_state(job));
    let _ = writeln!(
        w,
        "Status Reason:\t{}",
        or_none(status.status_reason.as_deref())
    );
    let _ = writeln!(
        w,
        "Compute Environment:\t{}",
        or_none(status.compute_environment.as_deref())
    );
    if let Some(share) = &job.spec.share_identifier {
        let _ = writeln!(w, "Share Identifier:\t{share}");
    }
    let _ = writeln!(
        w,
        "Created:\t{}",
        describe_time(
            status
                .created_at
                .as_ref()
                .or(job.metadata.creation_timestamp.as_ref())
        )
    );
    let _ = writeln!(w, "Started:\t{}", describe_time(status.started_at.as_ref()));
    let _ = writeln!(w, "Stopped:\t{}", describe_time(status.stopped_at.as_ref()));
    if let Some(spec) = &job.spec.array_properties {
        let _ = writeln!(w, "Array Properties:");
        let _ = writeln!(w, "  Size:\t{}", spec.size);
        let array = status.array_properties.clone().unwrap_or_default();
        let _ = writeln!(
            w,
            "  Progress:\t{}/{} succeeded",
            array.status_summary.SUCCEEDED, spec.size
        );
        let _ = writeln!(
            w,
            "  Children:\t{}",
            children_summary(&array.status_summary)
        );
        let _ = writeln!(
            w,
            "  Succeeded:\t{}",
            or_none(Some(&array.succeeded_indices))
        );
        let _ = writeln!(w, "  Failed:\t{}", or_none(Some(&array.failed_indices)));
        if !array.terminated_indices.is_empty() {
            let _ = writeln!(w, "  Terminated:\t{}", array.terminated_indices);
        }
        for retrying in &array.retrying {
            let _ = writeln!(
                w,
                "  Retrying:\t{} after {} attempt(s)",
                retrying.indices, retrying.attempts
            );
        }
    }
    if let Some(nodes) = &status.node_properties {
        let _ = writeln!(w, "Node Properties:");
        let _ = writeln!(w, "  Nodes:\t{}", nodes.num_nodes);
        let _ = writeln!(w, "  Main Node:\t{}", nodes.main_node);
        let _ = writeln!(w, "  Progress:\t{}", or_none(nodes.progress.as_deref()));
        let _ = writeln!(
            w,
            "  Main Pod:\t{}",
            or_none(nodes.main_node_pod_name.as_deref())
        );
        let _ = writeln!(w, "  Service:\t{}", or_none(nodes.service_name.as_deref()));
    }
    if job.spec.depends_on.is_empty() {
        let _ = writeln!(w, "Depends On:\t<none>");
    } else {
        let _ = writeln!(w, "Depends On:");
        for d in &job.spec.depends_on {
            let line = match (&d.job_name, d.r#type) {
                (Some(name), Some(DependencyType::NToN)) => format!("{name} (N_TO_N)"),
                (Some(name), _) => name.clone(),
                (None, _) => "SEQUENTIAL (each child after the previous one)".into(),
            };
            let _ = writeln!(w, "  {line}");
        }
    }
    if let Some(terminate) = &job.spec.terminate {
        let scope = terminate
            .array_indices
            .as_ref()
            .map(|i| format!(" (children {i})"))
            .unwrap_or_default();
        let _ = writeln!(w, "Terminate:\t{}{scope}", terminate.reason);
    }
    if status.attempts.is_empty() {
        let _ = writeln!(w, "Attempts:\t<none>");
    } else {
        let _ = writeln!(w, "Attempts:");
        for (i, attempt) in status.attempts.iter().enumerate() {
            let _ = writeln!(w, "  #{}:", i + 1);
            attempt_lines(w, "    ", attempt);
        }
    }
    let failed_children = status
        .array_properties
        .as_ref()
        .map(|a| a.failed_attempts.as_slice())
        .unwrap_or_default();
    if !failed_children.is_empty() {
        let _ = writeln!(w, "Failed Children:");
        for child in failed_children {
            let _ = writeln!(
                w,
                "  Index {} ({} attempt(s)), last attempt:",
                child.index, child.attempts
            );
            attempt_lines(w, "    ", &child.attempt);
        }
    }
    if status.conditions.is_empty() {
        let _ = writeln!(w, "Conditions:\t<none>");
    } else {
        let _ = writeln!(w, "Conditions:");
        let _ = writeln!(w, "  Type\tStatus\tReason\tMessage");
        let _ = writeln!(w, "  ----\t------\t------\t-------");
        for c in &status.conditions {
            let _ = writeln!(
                w,
                "  {}\t{}\t{}\t{}",
                c.type_, c.status, c.reason, c.message
            );
        }
    }
    let mut text = tabwrite(&out, 0, 2);
    text.push_str(&events_text(events, now));
    text
}

/// Children per state, the non-zero ones in lifecycle order: "1 RUNNING, 8 SUCCEEDED, 1 FAILED".
pub fn children_summary(counts: &barge_crds::job::JobStatusCounts) -> String {
    let parts: Vec<String> = JobStatus::ALL
        .iter()
        .filter(|s| counts.get(**s) > 0)
        .map(|s| format!("{} {s}", counts.get(*s)))
        .collect();
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(", ")
    }
}

/// When an event last happened (kubectl sorts by it).
fn event_last(e: &Event) -> Option<jiff::Timestamp> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
        .or(e.last_timestamp.as_ref().map(|t| t.0))
        .or(e.event_time.as_ref().map(|t| t.0))
        .or(e.first_timestamp.as_ref().map(|t| t.0))
        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// kubectl's Events section (its `DescribeEvents`), its own tabwriter block.
pub fn events_text(events: &[Event], now: jiff::Timestamp) -> String {
    if events.is_empty() {
        return tabwrite("Events:\t<none>\n", 0, 2);
    }
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| event_last(e));
    let mut out = String::from(
        "Events:\n  Type\tReason\tAge\tFrom\tMessage\n  ----\t------\t----\t----\t-------\n",
    );
    for e in sorted {
        let first = age(
            e.event_time
                .as_ref()
                .map(|t| t.0)
                .or(e.first_timestamp.as_ref().map(|t| t.0))
                .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0)),
            now,
        );
        let interval = match (&e.series, e.count.unwrap_or(0)) {
            (Some(series), _) => format!(
                "{} (x{} over {first})",
                age(series.last_observed_time.as_ref().map(|t| t.0), now),
                series.count.unwrap_or(0)
            ),
            (None, count) if count > 1 => format!(
                "{} (x{count} over {first})",
                age(e.last_timestamp.as_ref().map(|t| t.0), now)
            ),
            _ => first,
        };
        let source = e
            .source
            .as_ref()
            .and_then(|s| s.component.clone())
            .filter(|c| !c.is_empty())
            .or_else(|| e.reporting_component.clone())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}\t{}\t{interval}\t{source}\t{}",
            e.type_.as_deref().unwrap_or_default(),
            e.reason.as_deref().unwrap_or_default(),
            e.message.as_deref().unwrap_or_default().trim()
        );
    }
    tabwrite(&out, 0, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().expect("a timestamp")
    }

    const FAILED_RETRIED: &str = r#"
apiVersion: batch.barge.dev/v1alpha1
kind: Job
metadata:
  name: train
  namespace: ml
  uid: u-1
  labels: {team: ml}
  creationTimestamp: "2026-01-01T00:00:00Z"
spec:
  jobQueue: cpu
  jobDefinition: train
  dependsOn: [{jobName: prep}]
status:
  status: FAILED
  statusReason: Essential container in task exited
  computeEnvironment: ce
  createdAt: "2026-01-01T00:00:00Z"
  startedAt: "2026-01-01T00:00:05Z"
  stoppedAt: "2026-01-01T00:01:00Z"
  resolvedJobDefinition: {name: train, revision: 2}
  attempts:
    - container: {exitCode: 1, podName: train-1, nodeName: node-a}
      startedAt: "2026-01-01T00:00:05Z"
      stoppedAt: "2026-01-01T00:00:30Z"
      statusReason: Essential container in task exited
    - container: {exitCode: 137, reason: OOMKilled, podName: train-2, nodeName: node-b}
      startedAt: "2026-01-01T00:00:35Z"
      stoppedAt: "2026-01-01T00:01:00Z"
      statusReason: Essential container in task exited
  conditions:
    - {type: Failed, status: "True", reason: JobFailed, message: attempts exhausted, lastTransitionTime: "2026-01-01T00:01:00Z"}
"#;

    fn event(reason: &str, message: &str, time: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("train.{reason}"), "namespace": "ml"},
            "involvedObject": {"kind": "Job", "name": "train", "namespace": "ml"},
            "type": "Normal",
            "reason": reason,
            "message": message,
            "eventTime": time,
            "reportingComponent": "batch.barge.dev/barge-operator",
        }))
        .expect("an event")
    }

    #[test]
    fn a_retried_job_lists_each_attempt_and_its_events() {
        let job: Job = serde_yaml::from_str(FAILED_RETRIED).expect("a job");
        let events = vec![
            event("Failed", "the job failed", "2026-01-01T00:01:00Z"),
            event("Running", "the job runs", "2026-01-01T00:00:05Z"),
        ];
        let text = describe_text(&job, &events, at("2026-01-01T00:03:00Z"));
        let expected = "\
Name:                 train
Namespace:            ml
Labels:               team=ml
Annotations:          <none>
Job ID:               u-1
Queue:                cpu
Definition:           train:2 (requested train)
Status:               FAILED
Status Reason:        Essential container in task exited
Compute Environment:  ce
Created:              Thu, 01 Jan 2026 00:00:00 +0000
Started:              Thu, 01 Jan 2026 00:00:05 +0000
Stopped:              Thu, 01 Jan 2026 00:01:00 +0000
Depends On:
  prep
Attempts:
  #1:
    Started:        Thu, 01 Jan 2026 00:00:05 +0000
    Stopped:        Thu, 01 Jan 2026 00:00:30 +0000
    Exit Code:      1
    Reason:         <none>
    Status Reason:  Essential container in task exited
    Pod:            train-1
    Node:           node-a
  #2:
    Started:        Thu, 01 Jan 2026 00:00:35 +0000
    Stopped:        Thu, 01 Jan 2026 00:01:00 +0000
    Exit Code:      137
    Reason:         OOMKilled
    Status Reason:  Essential container in task exited
    Pod:            train-2
    Node:           node-b
Conditions:
  Type    Status  Reason     Message
  ----    ------  ------     -------
  Failed  True    JobFailed  attempts exhausted
Events:
  Type    Reason   Age    From                            Message
  ----    ------   ----   ----                            -------
  Normal  Running  2m55s  batch.barge.dev/barge-operator  the job runs
  Normal  Failed   2m     batch.barge.dev/barge-operator  the job failed
";
        assert_eq!(text, expected);
    }

    #[test]
    fn an_array_job_summarises_its_children() {
        let job: Job = serde_yaml::from_str(
            r#"
apiVersion: batch.barge.dev/v1alpha1
kind: Job
metadata: {name: frames, namespace: ml}
spec: {jobQueue: q, jobDefinition: d, arrayProperties: {size: 4}, dependsOn: [{type: SEQUENTIAL}],
       terminate: {reason: enough, arrayIndices: "3"}}
status:
  status: RUNNING
  arrayProperties:
    size: 4
    statusSummary: {SUCCEEDED: 2, RUNNING: 1, FAILED: 1}
    succeededIndices: "0-1"
    failedIndices: "3"
    terminatedIndices: "3"
    failedAttempts:
      - index: 3
        attempts: 1
        attempt: {container: {exitCode: 143, podName: frames-1-3}, statusReason: enough}
"#,
        )
        .expect("a job");
        let text = describe_text(&job, &[], at("2026-01-01T00:00:00Z"));
        for line in [
            "Array Properties:\n",
            "  Size:        4\n",
            "  Progress:    2/4 succeeded\n",
            "  Children:    1 RUNNING, 2 SUCCEEDED, 1 FAILED\n",
            "  Succeeded:   0-1\n",
            "  Terminated:  3\n",
            "  SEQUENTIAL (each child after the previous one)\n",
            // A line without a tab ends a tabwriter block, as in kubectl.
            "Terminate:  enough (children 3)\n",
            "  Index 3 (1 attempt(s)), last attempt:\n",
            "    Exit Code:      143\n",
            "    Pod:            frames-1-3\n",
            "Events:  <none>\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn events_are_selected_as_kubectl_selects_them() {
        let job: Job = serde_yaml::from_str(FAILED_RETRIED).expect("a job");
        assert_eq!(
            events_selector(&job),
            "involvedObject.name=train,involvedObject.namespace=ml,involvedObject.kind=Job,involvedObject.uid=u-1"
        );
    }
}
