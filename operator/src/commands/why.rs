//! `barge why JOB` (also `kubectl barge why JOB`): why a job waits, from the same code the
//! operator runs — and nothing written to the cluster.
//!
//! 1. **Read**: one LIST per kind the operator watches (jobs, job definitions, their
//!    ControllerRevisions, queues, compute environments, scheduling policies, pods, nodes,
//!    namespaces), fed into a fresh [`Caches`] as a watch's first list would be.
//! 2. **The job controller's view**: for the job, and for every unfinished job of the queues that
//!    share compute environments with its queue (transitively), the plan and the RUNNABLE work
//!    the job controller would publish now (`controllers::job::runnable_entry`: admission, the
//!    state machine, the runnable entry — without acting).
//! 3. **The scheduler's view**: that work as workloads (as the scheduling loop collects them),
//!    the loop's snapshot (`scheduler::snapshot`, no assumed pods), the fair-share state (usage
//!    recovered from the queues' status, as a new leader does), barge-core's pass, and
//!    `barge_core::scheduler::why::explain` for the job's workloads.
//! 4. **Print**: text, or `-o json|yaml`. A PENDING job lists its dependencies and their state;
//!    a job in another state says where it is (its nodes while STARTING/RUNNING, its reason once
//!    finished).
//!
//! The command only lists: it creates no Event, patches no status, publishes nothing. Exit
//! code 0 when the job was explained, 1 on an error (no such job, the cluster unreachable).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::ListParams;
use kube::core::DeserializeGuard;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use barge_core::scheduler::why::{explain, Explanation};
use barge_core::scheduler::{schedule, JobKey, Workload};
use barge_crds::consts::{LABEL_MANAGED_BY, MANAGED_BY_BARGE};
use barge_crds::job::{DependencyType, JobStatus};
use barge_crds::{ComputeEnvironment, Job, JobDefinition, JobQueue, SchedulingPolicy};
use barge_operator::cache::{recorded_state, Backing, CachedPod, Caches, JobRecord, Sink};
use barge_operator::context::{Context, OperatorConfig, RunnableEntry};
use barge_operator::controllers::job::runnable_entry;
use barge_operator::events::EventPublisher;
use barge_operator::metrics::Metrics;
use barge_operator::scheduler::fair_share::{fill_fair_share, Ledgers};
use barge_operator::scheduler::{snapshot, LoopState};

use super::kube_cli::{config_and_namespace, ConfigError};

#[derive(Debug, Args)]
pub struct WhyArgs {
    /// The job's name.
    pub job: String,
    /// The job's namespace (default: the kubeconfig context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// The kubeconfig to use (default: KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// How `barge why` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
    Yaml,
}

/// What `barge why` found (the `-o json|yaml` document).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WhyReport {
    pub job: String,
    pub namespace: String,
    pub state: String,
    pub status_reason: Option<String>,
    /// What there is to say about a job that does not wait for the scheduler.
    pub summary: Option<String>,
    /// PENDING jobs: what each `dependsOn` entry waits for.
    pub dependencies: Vec<DependencyReport>,
    /// RUNNABLE work: one explanation per workload (an array's attempt groups are several).
    pub scheduling: Vec<Explanation>,
    /// STARTING / RUNNING: the nodes its pods are on.
    pub nodes: Vec<String>,
}

/// One `dependsOn` entry and the state of what it names.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencyReport {
    /// The job it names (None for SEQUENTIAL: the job's own children).
    pub job_name: Option<String>,
    /// N_TO_N, SEQUENTIAL, or none (the whole job).
    pub r#type: Option<String>,
    /// The named job's state (None: it does not exist).
    pub state: Option<String>,
    /// An array's finished children, e.g. "3/10".
    pub progress: Option<String>,
    /// What the entry waits for, in words.
    pub waits_for: String,
}

pub fn run(args: WhyArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("barge why: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(why(&args)) {
        Ok(report) => match print(&report, args.output) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("barge why: {err}");
                ExitCode::FAILURE
            }
        },
        Err(err) => {
            eprintln!("barge why: {err}");
            ExitCode::FAILURE
        }
    }
}

/// A client and the namespace to use, from the kubeconfig as kubectl picks them.
async fn connect(args: &WhyArgs) -> Result<(Client, String), String> {
    let (config, namespace) = config_and_namespace(
        args.kubeconfig.as_deref(),
        args.context.as_deref(),
        args.namespace.as_deref(),
    )
    .await
    .map_err(|e| match e {
        ConfigError::Read(path, e) => format!("reading kubeconfig {}: {e}", path.display()),
        ConfigError::File(path, e) => format!("kubeconfig {}: {e}", path.display()),
        ConfigError::Default(e) => format!("kubeconfig: {e}"),
    })?;
    let client = Client::try_from(config).map_err(|e| format!("kube client: {e}"))?;
    Ok((client, namespace))
}

/// Lists every object of `api` into `sink`, as a watch's first list.
async fn fill<K>(api: Api<K>, params: ListParams, sink: &mut Sink<K>) -> Result<(), String>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync,
{
    let list = api
        .list(&params)
        .await
        .map_err(|e| format!("listing {}: {e}", K::plural(&())))?;
    sink.apply(watcher::Event::Init);
    for item in list.items {
        sink.apply(watcher::Event::InitApply(item));
    }
    sink.apply(watcher::Event::InitDone);
    Ok(())
}

/// [`fill`] for Barge's kinds, leaving out objects that do not parse (as the operator's watches
/// do).
async fn fill_guarded<K, B>(client: &Client, sink: &mut Sink<K, B>) -> Result<(), String>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync,
    B: Backing<K>,
{
    let api: Api<DeserializeGuard<K>> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing {}: {e}", K::plural(&())))?;
    sink.apply(watcher::Event::Init);
    for item in list.items {
        if let Ok(obj) = item.0 {
            sink.apply(watcher::Event::InitApply(obj));
        }
    }
    sink.apply(watcher::Event::InitDone);
    Ok(())
}

/// The caches as the operator would have them, from one LIST per kind.
async fn read_cluster(client: &Client) -> Result<Arc<Caches>, String> {
    let (caches, mut sinks) = Caches::new();
    let barge = ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY_BARGE}"));
    fill_guarded::<JobRecord, _>(client, &mut sinks.jobs).await?;
    fill_guarded::<JobDefinition, _>(client, &mut sinks.job_definitions).await?;
    fill(
        Api::<ControllerRevision>::all(client.clone()),
        barge,
        &mut sinks.revisions,
    )
    .await?;
    fill_guarded::<JobQueue, _>(client, &mut sinks.queues).await?;
    fill_guarded::<ComputeEnvironment, _>(client, &mut sinks.compute_environments).await?;
    fill_guarded::<SchedulingPolicy, _>(client, &mut sinks.scheduling_policies).await?;
    let all = ListParams::default;
    fill(
        Api::<CachedPod>::all(client.clone()),
        all(),
        &mut sinks.pods,
    )
    .await?;
    fill(Api::<Node>::all(client.clone()), all(), &mut sinks.nodes).await?;
    fill(
        Api::<Namespace>::all(client.clone()),
        all(),
        &mut sinks.namespaces,
    )
    .await?;
    Ok(caches)
}

async fn why(args: &WhyArgs) -> Result<WhyReport, String> {
    let (client, namespace) = connect(args).await?;
    let caches = read_cluster(&client).await?;
    // The job controller's code reads a `Context`; its event publisher is never used here (the
    // plan is computed, not acted upon), so nothing is written.
    let metrics = Arc::new(Metrics::new());
    let (events, _writer) = EventPublisher::start(client.clone(), "barge-why", metrics.clone(), 1);
    let ctx = Context::new(
        client,
        caches.clone(),
        metrics,
        events,
        OperatorConfig::default(),
    );
    let job = caches
        .job_object(&namespace, &args.job)
        .ok_or_else(|| format!("job {:?} not found in namespace {namespace:?}", args.job))?;
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let state = recorded_state(&job);
    let status_reason = job.status.as_ref().and_then(|s| s.status_reason.clone());
    let mut report = WhyReport {
        job: args.job.clone(),
        namespace: namespace.clone(),
        state: state.to_string(),
        status_reason,
        summary: None,
        dependencies: Vec::new(),
        scheduling: Vec::new(),
        nodes: Vec::new(),
    };
    let (_, entry) = runnable_entry(&job, &ctx, now_ms);
    if entry.is_some() {
        report.scheduling = explain_scheduling(&ctx, &job, now_ms);
    }
    match state {
        JobStatus::Pending => report.dependencies = dependencies(&caches, &job),
        JobStatus::Starting | JobStatus::Running => {
            let uid = job.uid().unwrap_or_default();
            let nodes: BTreeSet<String> = caches
                .pods_of_job(&namespace, &uid)
                .iter()
                .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
                .collect();
            report.nodes = nodes.into_iter().collect();
        }
        _ => {}
    }
    report.summary = summary(&report, entry.is_some());
    Ok(report)
}

/// What to say of a job that does not wait for the scheduler (its status reason is printed
/// with its state).
fn summary(report: &WhyReport, runnable: bool) -> Option<String> {
    if runnable {
        return None;
    }
    Some(match report.state.as_str() {
        "SUBMITTED" => "the job is SUBMITTED: the operator has not admitted it yet".to_string(),
        "PENDING" => "the job is PENDING: it waits for its dependencies".to_string(),
        "RUNNABLE" => "the job is RUNNABLE but offers the scheduler nothing now".to_string(),
        "STARTING" | "RUNNING" if !report.nodes.is_empty() => format!(
            "the job is {}: it waits for nothing, it runs on {}",
            report.state,
            report.nodes.join(", ")
        ),
        "STARTING" | "RUNNING" => format!("the job is {}: it waits for nothing", report.state),
        _ => format!(
            "the job is {}: finished, there is nothing to wait for",
            report.state
        ),
    })
}

/// The queues whose work competes with `queue`'s: those sharing a compute environment with it,
/// transitively.
fn competing_queues(caches: &Caches, queue: &str) -> BTreeSet<String> {
    let queues = caches.queues.state();
    let environments = |q: &JobQueue| -> BTreeSet<String> {
        q.spec
            .compute_environment_order
            .iter()
            .map(|o| o.compute_environment.clone())
            .collect()
    };
    let mut names = BTreeSet::from([queue.to_string()]);
    let mut envs: BTreeSet<String> = queues
        .iter()
        .filter(|q| q.name_any() == queue)
        .flat_map(|q| environments(q))
        .collect();
    loop {
        let before = names.len();
        for q in &queues {
            let mine = environments(q);
            if !mine.is_disjoint(&envs) {
                names.insert(q.name_any());
                envs.extend(mine);
            }
        }
        if names.len() == before {
            return names;
        }
    }
}

/// Steps 2 and 3 of the module docs: the pass over the work of the job's queue and those
/// competing with it, and the explanation of the job's workloads.
fn explain_scheduling(ctx: &Context, job: &Job, now_ms: i64) -> Vec<Explanation> {
    let caches = &ctx.caches;
    let queues = competing_queues(caches, &job.spec.job_queue);
    let mut entries: Vec<(JobKey, RunnableEntry)> = Vec::new();
    for record in caches.jobs.state() {
        if !queues.contains(&**record.queue()) {
            continue;
        }
        if matches!(record.state(), JobStatus::Succeeded | JobStatus::Failed) {
            continue;
        }
        let other = record.job();
        if let (_, Some(entry)) = runnable_entry(&other, ctx, now_ms) {
            let key = JobKey::new(&other.namespace().unwrap_or_default(), &other.name_any());
            entries.push((key, entry));
        }
    }
    let workloads: Vec<Workload> = entries.iter().flat_map(|(k, e)| e.workloads(k)).collect();
    let mut snap = snapshot(caches, &LoopState::default(), workloads);
    fill_fair_share(caches, &Ledgers::recovered(caches, now_ms), &mut snap);
    let result = schedule(&snap);
    let target = JobKey::new(&job.namespace().unwrap_or_default(), &job.name_any());
    snap.workloads
        .iter()
        .enumerate()
        .filter(|(_, w)| w.job == target)
        .map(|(i, _)| explain(&snap, &result, i))
        .collect()
}

/// What each `dependsOn` entry of a PENDING job waits for.
fn dependencies(caches: &Caches, job: &Job) -> Vec<DependencyReport> {
    let namespace = job.namespace().unwrap_or_default();
    job.spec
        .depends_on
        .iter()
        .map(|d| {
            let kind = d.r#type.map(|t| match t {
                DependencyType::NToN => "N_TO_N".to_string(),
                DependencyType::Sequential => "SEQUENTIAL".to_string(),
            });
            let Some(name) = d.job_name.clone() else {
                return DependencyReport {
                    job_name: None,
                    r#type: kind,
                    state: None,
                    progress: None,
                    waits_for:
                        "each child waits for the previous child of this array job to succeed"
                            .to_string(),
                };
            };
            let target = caches.job_object(&namespace, &name);
            let state = target.as_ref().map(recorded_state);
            let progress = target.as_ref().and_then(|t| {
                t.status
                    .as_ref()
                    .and_then(|s| s.array_properties.as_ref())
                    .and_then(|a| a.progress.clone())
            });
            let waits_for = match (state, d.r#type) {
                (None, _) => format!("job {name:?} does not exist (yet)"),
                (Some(JobStatus::Succeeded), _) => {
                    format!(
                        "nothing: job {name:?} SUCCEEDED (the job moves on at its next reconcile)"
                    )
                }
                (Some(JobStatus::Failed), _) => {
                    format!("nothing: job {name:?} FAILED, so this job fails too")
                }
                (Some(s), Some(DependencyType::NToN)) => {
                    format!("child i of job {name:?}, for each child i; it is {s}")
                }
                (Some(s), _) => format!("job {name:?} to succeed; it is {s}"),
            };
            DependencyReport {
                job_name: Some(name),
                r#type: kind,
                state: state.map(|s| s.to_string()),
                progress,
                waits_for,
            }
        })
        .collect()
}

fn print(report: &WhyReport, output: Output) -> Result<(), String> {
    match output {
        Output::Json => {
            let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
            println!("{text}");
        }
        Output::Yaml => {
            let text = serde_yaml::to_string(report).map_err(|e| e.to_string())?;
            print!("{text}");
        }
        Output::Text => print!("{}", text(report)),
    }
    Ok(())
}

/// The report as text.
pub fn text(report: &WhyReport) -> String {
    let mut out = format!("job {}/{}: {}", report.namespace, report.job, report.state);
    if let Some(reason) = &report.status_reason {
        out.push_str(&format!(" ({reason})"));
    }
    out.push('\n');
    if let Some(summary) = &report.summary {
        out.push_str(&format!("  {summary}\n"));
    }
    for d in &report.dependencies {
        let kind = d.r#type.as_deref().unwrap_or("whole job");
        let mut line = match &d.job_name {
            Some(name) => format!("  depends on {name} ({kind}): waits for {}", d.waits_for),
            None => format!("  depends on its own children ({kind}): {}", d.waits_for),
        };
        if let Some(progress) = &d.progress {
            line.push_str(&format!(" [{progress} children finished]"));
        }
        out.push_str(&line);
        out.push('\n');
    }
    for (i, explanation) in report.scheduling.iter().enumerate() {
        if report.scheduling.len() > 1 {
            out.push_str(&format!("  workload {}:\n", i + 1));
        }
        for line in explanation.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(name: &str, environments: &[&str]) -> JobQueue {
        let order: Vec<serde_json::Value> = environments
            .iter()
            .enumerate()
            .map(|(i, ce)| serde_json::json!({"order": i + 1, "computeEnvironment": ce}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "batch.barge.dev/v1alpha1",
            "kind": "JobQueue",
            "metadata": {"name": name},
            "spec": {"priority": 1, "computeEnvironmentOrder": order},
        }))
        .expect("a job queue")
    }

    #[test]
    fn competing_queues_share_environments_transitively() {
        let (caches, mut sinks) = Caches::new();
        sinks.queues.apply(watcher::Event::Init);
        for q in [
            queue("a", &["ce1"]),
            queue("b", &["ce1", "ce2"]),
            queue("c", &["ce2"]),
            queue("alone", &["ce3"]),
        ] {
            sinks.queues.apply(watcher::Event::InitApply(q));
        }
        sinks.queues.apply(watcher::Event::InitDone);
        let names = |q: &str| competing_queues(&caches, q).into_iter().collect::<Vec<_>>();
        assert_eq!(names("a"), vec!["a", "b", "c"]);
        assert_eq!(names("c"), vec!["a", "b", "c"]);
        assert_eq!(names("alone"), vec!["alone"]);
        assert_eq!(names("gone"), vec!["gone"]);
    }

    #[test]
    fn the_text_lists_dependencies_and_the_summary() {
        let report = WhyReport {
            job: "second".into(),
            namespace: "ml".into(),
            state: "PENDING".into(),
            status_reason: Some("waiting for job \"first\"".into()),
            summary: Some("the job is PENDING: it waits for its dependencies".into()),
            dependencies: vec![DependencyReport {
                job_name: Some("first".into()),
                r#type: Some("N_TO_N".into()),
                state: Some("RUNNING".into()),
                progress: Some("3/10".into()),
                waits_for: "child i of job \"first\", for each child i; it is RUNNING".into(),
            }],
            scheduling: Vec::new(),
            nodes: Vec::new(),
        };
        assert_eq!(
            text(&report),
            "job ml/second: PENDING (waiting for job \"first\")\n  \
             the job is PENDING: it waits for its dependencies\n  \
             depends on first (N_TO_N): waits for child i of job \"first\", for each child i; it is RUNNING [3/10 children finished]\n"
        );
    }
}
