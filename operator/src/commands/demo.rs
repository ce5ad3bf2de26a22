//! `barge demo`: a simulated cluster, the operator and a sample workload, in one process.
//!
//! The recipe ([`demo`]):
//! 1. start barge-sim's API server on loopback, its kubeconfig written to a stable path
//!    (`--kubeconfig-out`), and a simulated kubelet with the process runtime (the jobs' commands
//!    really run, with /bin/sh on this machine);
//! 2. install Barge's CRDs and wait until they are Established;
//! 3. start the operator in-process ([`barge_operator::run::run_until`]);
//! 4. apply the demo manifests (config/samples/demo, embedded in the binary; `--samples DIR`
//!    reads another directory instead): two compute environments, a queue over both, job
//!    definitions and jobs — one with a dependency, one that fails then succeeds on retry, one
//!    that times out, a small array;
//! 5. print a line per job state change until every demo job is finished, then a summary table
//!    (job, status, attempts, duration, reason, and whether the job ended as its
//!    `demo.barge.dev/expect` annotation says);
//! 6. with `--keep`, leave everything up for `kubectl` until Ctrl-C or SIGTERM; then stop.
//!
//! Exit code 0 when every job ended as expected, 1 otherwise (or on any error).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};

use barge_crds::consts::{
    FIELD_MANAGER_DEMO, KIND_COMPUTE_ENVIRONMENT, KIND_JOB, KIND_JOB_DEFINITION, KIND_JOB_QUEUE,
    KIND_SCHEDULING_POLICY,
};
use barge_crds::job::JobStatus;
use barge_crds::{ComputeEnvironment, Job, JobDefinition, JobQueue, SchedulingPolicy};
use barge_operator::run::{self, LogFormat, OperatorArgs};
use barge_operator::shutdown::Shutdown;
use barge_sim::kubelet::{Kubelet, KubeletConfig, KubeletError, RuntimeKind};
use barge_sim::{Cluster, ClusterConfig, SimError};

/// Annotation of a demo job: the final state the demo expects (SUCCEEDED or FAILED).
pub const ANNOTATION_EXPECT: &str = "demo.barge.dev/expect";
/// Namespace of the demo's jobs and job definitions.
pub const DEMO_NAMESPACE: &str = "default";

/// The demo manifests, embedded so that the binary works anywhere (file name, content).
pub const DEMO_MANIFESTS: &[(&str, &str)] = &[
    (
        "01-compute-environments.yaml",
        include_str!("../../../config/samples/demo/01-compute-environments.yaml"),
    ),
    (
        "02-job-queue.yaml",
        include_str!("../../../config/samples/demo/02-job-queue.yaml"),
    ),
    (
        "03-job-definitions.yaml",
        include_str!("../../../config/samples/demo/03-job-definitions.yaml"),
    ),
    (
        "04-jobs.yaml",
        include_str!("../../../config/samples/demo/04-jobs.yaml"),
    ),
];

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the cluster and the operator up after the summary, until Ctrl-C (or SIGTERM).
    #[arg(long)]
    pub keep: bool,
    /// Where to write the simulated cluster's kubeconfig (default: barge-demo/kubeconfig in the
    /// system temporary directory).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig_out: Option<PathBuf>,
    /// Apply the YAML files of this directory instead of the embedded demo manifests.
    #[arg(long, value_name = "DIR")]
    pub samples: Option<PathBuf>,
    /// Port of the simulated API server (0: a free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Give up when the jobs have not all finished after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_seconds: u64,
    /// Log filter of the operator and the simulated cluster (their logs go to stderr).
    #[arg(long, default_value = "warn")]
    pub log_level: String,
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("creating {path}: {source}")]
    KubeconfigDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting the simulated cluster: {0}")]
    Cluster(#[source] SimError),
    #[error("starting the simulated kubelet: {0}")]
    Kubelet(#[source] KubeletError),
    #[error("installing the CRD {name}: {source}")]
    InstallCrd { name: String, source: kube::Error },
    #[error("the CRDs were not established in time")]
    CrdsNotEstablished,
    #[error("reading the samples in {path}: {source}")]
    ReadSamples {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Manifest { file: String, message: String },
    #[error("{file}: applying {kind} {name}: {source}")]
    Apply {
        file: String,
        kind: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("the samples contain no Job")]
    NoJobs,
    #[error("the operator stopped: {0}")]
    Operator(#[source] run::RunError),
    #[error("the operator stopped unexpectedly")]
    OperatorStopped,
    #[error("creating the namespace {DEMO_NAMESPACE}: {0}")]
    Namespace(#[source] kube::Error),
    #[error("listing the demo jobs: {0}")]
    ListJobs(#[source] kube::Error),
    #[error("jobs still unfinished after {seconds} s: {}", pending.join(", "))]
    TimedOut { seconds: u64, pending: Vec<String> },
    #[error("waiting for Ctrl-C or SIGTERM: {0}")]
    Signal(#[source] std::io::Error),
}

/// One manifest of the demo workload.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub file: String,
    pub object: DynamicObject,
}

impl Manifest {
    fn kind(&self) -> &str {
        self.object
            .types
            .as_ref()
            .map(|t| t.kind.as_str())
            .unwrap_or_default()
    }
}

/// Parses multi-document YAML into objects of Barge's kinds (pure).
pub fn parse_manifests(file: &str, text: &str) -> Result<Vec<Manifest>, DemoError> {
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value: serde_json::Value =
            serde::Deserialize::deserialize(document).map_err(|e| DemoError::Manifest {
                file: file.to_string(),
                message: format!("not YAML: {e}"),
            })?;
        if value.is_null() {
            continue;
        }
        let object: DynamicObject =
            serde_json::from_value(value).map_err(|e| DemoError::Manifest {
                file: file.to_string(),
                message: format!("not a Kubernetes object: {e}"),
            })?;
        let manifest = Manifest {
            file: file.to_string(),
            object,
        };
        if api_resource(manifest.kind()).is_none() {
            return Err(DemoError::Manifest {
                file: file.to_string(),
                message: format!(
                    "kind {:?} is not one of Barge's kinds (the demo applies only those)",
                    manifest.kind()
                ),
            });
        }
        if manifest.object.metadata.name.is_none() {
            return Err(DemoError::Manifest {
                file: file.to_string(),
                message: format!("a {} without metadata.name", manifest.kind()),
            });
        }
        out.push(manifest);
    }
    Ok(out)
}

/// (resource, namespaced) of Barge's kinds.
fn api_resource(kind: &str) -> Option<(ApiResource, bool)> {
    Some(match kind {
        KIND_COMPUTE_ENVIRONMENT => (ApiResource::erase::<ComputeEnvironment>(&()), false),
        KIND_JOB_QUEUE => (ApiResource::erase::<JobQueue>(&()), false),
        KIND_SCHEDULING_POLICY => (ApiResource::erase::<SchedulingPolicy>(&()), false),
        KIND_JOB_DEFINITION => (ApiResource::erase::<JobDefinition>(&()), true),
        KIND_JOB => (ApiResource::erase::<Job>(&()), true),
        _ => return None,
    })
}

/// The embedded manifests, or the YAML files of `dir` in name order.
fn load_manifests(dir: Option<&Path>) -> Result<Vec<Manifest>, DemoError> {
    let mut out = Vec::new();
    match dir {
        None => {
            for (file, text) in DEMO_MANIFESTS {
                out.extend(parse_manifests(file, text)?);
            }
        }
        Some(dir) => {
            let read_err = |source| DemoError::ReadSamples {
                path: dir.to_path_buf(),
                source,
            };
            let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(read_err)?
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "yaml" || e == "yml")
                        && p.file_name().is_some_and(|n| n != "kustomization.yaml")
                })
                .collect();
            paths.sort();
            for path in paths {
                let text =
                    std::fs::read_to_string(&path).map_err(|source| DemoError::ReadSamples {
                        path: path.clone(),
                        source,
                    })?;
                out.extend(parse_manifests(&path.display().to_string(), &text)?);
            }
        }
    }
    Ok(out)
}

/// What the demo shows of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobView {
    pub name: String,
    pub status: Option<JobStatus>,
    pub reason: String,
    pub attempts: usize,
    pub progress: Option<String>,
    /// Seconds from start (or creation) to stop, once stopped.
    pub duration_seconds: Option<i64>,
    pub expected: Option<String>,
}

impl JobView {
    pub fn of(job: &Job) -> JobView {
        let status = job.status.as_ref();
        let attempts = status
            .map(|s| {
                s.attempt_count
                    .map(|n| n.max(0) as usize)
                    .unwrap_or(s.attempts.len())
                    .max(s.attempts.len())
            })
            .unwrap_or(0);
        let begin = status
            .and_then(|s| s.started_at.as_ref().or(s.created_at.as_ref()))
            .map(|t| t.0)
            .or_else(|| job.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let end = status.and_then(|s| s.stopped_at.as_ref()).map(|t| t.0);
        let duration_seconds = match (begin, end) {
            (Some(b), Some(e)) => Some(e.duration_since(b).as_secs()),
            _ => None,
        };
        JobView {
            name: job.name_any(),
            status: status.and_then(|s| s.status),
            reason: status
                .and_then(|s| s.status_reason.clone())
                .unwrap_or_default(),
            attempts,
            progress: status
                .and_then(|s| s.array_properties.as_ref())
                .and_then(|a| a.progress.clone()),
            duration_seconds,
            expected: job.annotations().get(ANNOTATION_EXPECT).cloned(),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.status.is_some_and(JobStatus::is_finished)
    }

    /// Whether the job ended as its annotation expects (true without an expectation).
    pub fn as_expected(&self) -> bool {
        match (&self.expected, self.status) {
            (None, _) => true,
            (Some(expected), Some(status)) => expected.eq_ignore_ascii_case(status.as_str()),
            (Some(_), None) => false,
        }
    }
}

fn state_name(status: Option<JobStatus>) -> &'static str {
    status.map(JobStatus::as_str).unwrap_or("(new)")
}

/// A progress line, e.g. `12:00:01  fetch        RUNNABLE → STARTING` (pure).
pub fn progress_line(clock: &str, width: usize, before: Option<&JobView>, now: &JobView) -> String {
    let mut line = format!(
        "{clock}  {:<width$}  {} → {}",
        now.name,
        state_name(before.and_then(|b| b.status)),
        state_name(now.status),
    );
    if let Some(progress) = &now.progress {
        line.push_str(&format!("  [{progress}]"));
    }
    if now.attempts > 1 {
        line.push_str(&format!("  (attempt {})", now.attempts));
    }
    if !now.reason.is_empty() && now.status != Some(JobStatus::Succeeded) {
        line.push_str(&format!("  {}", now.reason));
    }
    line
}

/// Whether a change is worth a line: the state, the array progress or the attempt count moved.
fn changed(before: Option<&JobView>, now: &JobView) -> bool {
    match before {
        None => now.status.is_some(),
        Some(b) => {
            b.status != now.status || b.progress != now.progress || b.attempts != now.attempts
        }
    }
}

/// The summary table (pure).
pub fn summary_table(jobs: &[JobView]) -> String {
    let headers = [
        "JOB", "STATUS", "ATTEMPTS", "DURATION", "EXPECTED", "REASON",
    ];
    let rows: Vec<[String; 6]> = jobs
        .iter()
        .map(|j| {
            [
                j.name.clone(),
                state_name(j.status).to_string(),
                // An array parent makes no attempts itself: its children do.
                if j.progress.is_some() {
                    "-".to_string()
                } else {
                    j.attempts.to_string()
                },
                j.duration_seconds
                    .map(|s| format!("{s}s"))
                    .unwrap_or_else(|| "-".into()),
                match (&j.expected, j.as_expected()) {
                    (None, _) => "-".to_string(),
                    (Some(e), true) => format!("{e} ✓"),
                    (Some(e), false) => format!("{e} ✗"),
                },
                j.reason.clone(),
            ]
        })
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let render = |cells: Vec<&str>| {
        let line: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        line.join("  ").trim_end().to_string()
    };
    let mut out = render(headers.to_vec());
    out.push('\n');
    for row in &rows {
        out.push_str(&render(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

fn clock() -> String {
    jiff::Zoned::now().strftime("%H:%M:%S").to_string()
}

pub fn run(args: DemoArgs) -> ExitCode {
    run::init_tracing(&args.log_level, LogFormat::Text);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("barge demo: {}", DemoError::Runtime(err));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(demo(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("barge demo: some jobs did not end as expected");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("barge demo: {err}");
            ExitCode::FAILURE
        }
    }
}

fn default_kubeconfig_path() -> PathBuf {
    std::env::temp_dir().join("barge-demo").join("kubeconfig")
}

/// Runs the demo; `Ok(true)` when every job ended as expected.
pub async fn demo(args: DemoArgs) -> Result<bool, DemoError> {
    let manifests = load_manifests(args.samples.as_deref())?;
    let job_names: Vec<String> = manifests
        .iter()
        .filter(|m| m.kind() == KIND_JOB)
        .map(|m| m.object.name_any())
        .collect();
    if job_names.is_empty() {
        return Err(DemoError::NoJobs);
    }

    // 1. The simulated cluster and its kubelet.
    let kubeconfig = args
        .kubeconfig_out
        .clone()
        .unwrap_or_else(default_kubeconfig_path);
    if let Some(dir) = kubeconfig.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| DemoError::KubeconfigDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let cluster = Cluster::start(ClusterConfig {
        port: args.port,
        kubeconfig: Some(kubeconfig.clone()),
        ..Default::default()
    })
    .await
    .map_err(DemoError::Cluster)?;
    let client = cluster.client().map_err(DemoError::Cluster)?;
    let kubelet = Kubelet::start(
        client.clone(),
        KubeletConfig {
            runtime: RuntimeKind::Process,
            ..Default::default()
        },
    )
    .await
    .map_err(DemoError::Kubelet)?;
    println!("simulated cluster at {}", cluster.url());
    println!(
        "kubeconfig: {}   (export KUBECONFIG={}; kubectl get barge -A)",
        kubeconfig.display(),
        kubeconfig.display()
    );

    let (trigger, shutdown) = Shutdown::new();
    let mut operator = None;
    let outcome = async {
        // 2. CRDs. 3. The operator.
        install_crds(&client).await?;
        let task = operator.insert(tokio::spawn(run::run_until(
            operator_args(&kubeconfig, &args.log_level),
            shutdown.clone(),
        )));
        // 4. The workload.
        apply_all(&client, &manifests).await?;
        println!(
            "applied {} objects; following {} jobs in namespace {DEMO_NAMESPACE}",
            manifests.len(),
            job_names.len()
        );
        // 5. Progress until every job is finished (or the operator stops).
        let views = tokio::select! {
            views = follow(&client, &job_names, Duration::from_secs(args.timeout_seconds)) => views?,
            stopped = task => {
                return Err(match stopped {
                    Ok(Err(err)) => DemoError::Operator(err),
                    _ => DemoError::OperatorStopped,
                });
            }
        };
        println!();
        print!("{}", summary_table(&views));
        let all_as_expected = views.iter().all(JobView::as_expected);
        // 6. --keep.
        if args.keep {
            println!();
            println!(
                "the cluster stays up: KUBECONFIG={} kubectl get bjob; Ctrl-C (or SIGTERM) to stop",
                kubeconfig.display()
            );
            stop_signal().await?;
        }
        Ok(all_as_expected)
    }
    .await;

    trigger.trigger();
    if let Some(task) = operator.filter(|t| !t.is_finished()) {
        if tokio::time::timeout(Duration::from_secs(25), task)
            .await
            .is_err()
        {
            eprintln!("barge demo: the operator did not stop in time");
        }
    }
    kubelet.shutdown().await;
    cluster.shutdown().await;
    outcome
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn stop_signal() -> Result<(), DemoError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(DemoError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DemoError::Signal)?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

fn operator_args(kubeconfig: &Path, log_level: &str) -> OperatorArgs {
    OperatorArgs {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        metrics_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        log_level: log_level.to_string(),
        log_format: LogFormat::Text,
        array_pod_retention: barge_operator::context::ArrayPodRetention::All,
        leader_election: false,
        lease_name: "barge-operator".into(),
        lease_namespace: Some(DEMO_NAMESPACE.into()),
        lease_duration_seconds: 15,
        lease_renew_deadline_seconds: 10,
        lease_retry_period_seconds: 2,
        identity: Some("barge-demo".into()),
        status_coalesce_ms: 200,
        scheduler_interval_ms: 200,
        pod_create_concurrency: 16,
        queue_status_interval_ms: 1000,
        reconcile_concurrency: 0,
        status_refresh_seconds: 2,
        dependency_grace_seconds: 300,
        pod_create_give_up_seconds: 300,
        providers: barge_operator::context::EnabledProviders::only(&[
            barge_operator::context::Provider::Simulated,
        ]),
        // A demo is small: every state change is worth showing.
        job_events: barge_operator::events::JobEvents::All,
        finished_pod_retention_seconds:
            barge_operator::context::DEFAULT_FINISHED_POD_RETENTION_SECONDS,
        kube_api_qps: barge_operator::throttle::DEFAULT_QPS,
        kube_api_burst: barge_operator::throttle::DEFAULT_BURST,
        kube_api_max_in_flight: barge_operator::throttle::DEFAULT_MAX_IN_FLIGHT,
    }
}

async fn install_crds(client: &Client) -> Result<(), DemoError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in barge_crds::all_crds() {
        let name = crd.name_any();
        match api.create(&PostParams::default(), &crd).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(source) => return Err(DemoError::InstallCrd { name, source }),
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for name in run::crd_names() {
        loop {
            let established = api
                .get_opt(&name)
                .await
                .ok()
                .flatten()
                .and_then(|crd| crd.status)
                .and_then(|s| s.conditions)
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DemoError::CrdsNotEstablished);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

async fn apply_all(client: &Client, manifests: &[Manifest]) -> Result<(), DemoError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces
        .get_opt(DEMO_NAMESPACE)
        .await
        .map_err(DemoError::Namespace)?
        .is_none()
    {
        let namespace = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(DEMO_NAMESPACE.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(DemoError::Namespace)?;
    }
    for manifest in manifests {
        let kind = manifest.kind().to_string();
        let name = manifest.object.name_any();
        let Some((resource, namespaced)) = api_resource(&kind) else {
            continue;
        };
        let api: Api<DynamicObject> = if namespaced {
            Api::namespaced_with(client.clone(), DEMO_NAMESPACE, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER_DEMO).force(),
            &Patch::Apply(&manifest.object),
        )
        .await
        .map_err(|source| DemoError::Apply {
            file: manifest.file.clone(),
            kind,
            name,
            source: Box::new(source),
        })?;
    }
    Ok(())
}

/// Prints a line per change of the demo jobs until all are finished; returns their final views
/// in the order of the manifests.
async fn follow(
    client: &Client,
    names: &[String],
    limit: Duration,
) -> Result<Vec<JobView>, DemoError> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), DEMO_NAMESPACE);
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let deadline = tokio::time::Instant::now() + limit;
    let mut last: BTreeMap<String, JobView> = BTreeMap::new();
    loop {
        let list = jobs
            .list(&ListParams::default())
            .await
            .map_err(DemoError::ListJobs)?;
        for job in &list.items {
            let view = JobView::of(job);
            if !names.contains(&view.name) {
                continue;
            }
            let before = last.get(&view.name);
            if changed(before, &view) {
                println!("{}", progress_line(&clock(), width, before, &view));
                last.insert(view.name.clone(), view);
            }
        }
        let pending: Vec<String> = names
            .iter()
            .filter(|n| !last.get(*n).is_some_and(JobView::is_finished))
            .cloned()
            .collect();
        if pending.is_empty() {
            return Ok(names.iter().filter_map(|n| last.remove(n)).collect());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DemoError::TimedOut {
                seconds: limit.as_secs(),
                pending,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, status: Option<JobStatus>) -> JobView {
        JobView {
            name: name.into(),
            status,
            reason: String::new(),
            attempts: 1,
            progress: None,
            duration_seconds: None,
            expected: None,
        }
    }

    #[test]
    fn the_embedded_manifests_are_barge_objects_with_expectations() {
        let manifests = load_manifests(None).expect("embedded manifests parse");
        let mut kinds = BTreeMap::<String, usize>::new();
        for m in &manifests {
            *kinds.entry(m.kind().to_string()).or_default() += 1;
            let value = serde_json::to_value(&m.object).expect("json");
            let typed = match m.kind() {
                KIND_COMPUTE_ENVIRONMENT => {
                    serde_json::from_value::<ComputeEnvironment>(value).map(|_| ())
                }
                KIND_JOB_QUEUE => serde_json::from_value::<JobQueue>(value).map(|_| ()),
                KIND_JOB_DEFINITION => serde_json::from_value::<JobDefinition>(value).map(|_| ()),
                KIND_JOB => serde_json::from_value::<Job>(value).map(|_| ()),
                other => panic!("unexpected kind {other}"),
            };
            typed.unwrap_or_else(|e| panic!("{} {}: {e}", m.file, m.object.name_any()));
            if m.kind() == KIND_JOB {
                let expect = m.object.annotations().get(ANNOTATION_EXPECT);
                assert!(
                    matches!(expect.map(String::as_str), Some("SUCCEEDED" | "FAILED")),
                    "{} says what it should end as",
                    m.object.name_any()
                );
            }
        }
        assert_eq!(kinds.get(KIND_COMPUTE_ENVIRONMENT), Some(&2));
        assert_eq!(kinds.get(KIND_JOB_QUEUE), Some(&1));
        assert_eq!(kinds.get(KIND_JOB), Some(&6));
    }

    #[test]
    fn foreign_kinds_and_nameless_objects_are_refused() {
        let err = parse_manifests("x.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
            .expect_err("a Pod is refused");
        assert!(err.to_string().starts_with("x.yaml: kind \"Pod\""), "{err}");
        let err = parse_manifests(
            "y.yaml",
            "apiVersion: batch.barge.dev/v1alpha1\nkind: Job\nmetadata: {}\nspec: {}\n",
        )
        .expect_err("nameless");
        assert!(err.to_string().contains("without metadata.name"), "{err}");
        assert!(parse_manifests("z.yaml", "a: [").is_err());
    }

    #[test]
    fn progress_lines_show_the_transition_and_what_explains_it() {
        let before = view("fetch", Some(JobStatus::Runnable));
        let now = view("fetch", Some(JobStatus::Starting));
        assert_eq!(
            progress_line("12:00:01", 8, Some(&before), &now),
            "12:00:01  fetch     RUNNABLE → STARTING"
        );
        let mut failed = view("slow", Some(JobStatus::Failed));
        failed.reason = "Job attempt duration exceeded timeout".into();
        failed.attempts = 2;
        assert_eq!(
            progress_line("12:00:02", 4, None, &failed),
            "12:00:02  slow  (new) → FAILED  (attempt 2)  Job attempt duration exceeded timeout"
        );
        let mut array = view("render", Some(JobStatus::Running));
        array.progress = Some("2/5".into());
        assert!(progress_line("t", 6, None, &array).ends_with("RUNNING  [2/5]"));
    }

    #[test]
    fn only_real_changes_print() {
        let a = view("a", Some(JobStatus::Running));
        assert!(!changed(Some(&a), &a));
        assert!(changed(None, &a));
        assert!(!changed(None, &view("a", None)));
        let mut more = a.clone();
        more.attempts = 2;
        assert!(changed(Some(&a), &more));
    }

    #[test]
    fn the_summary_aligns_columns_and_marks_expectations() {
        let mut ok = view("fetch", Some(JobStatus::Succeeded));
        ok.expected = Some("SUCCEEDED".into());
        ok.duration_seconds = Some(3);
        let mut bad = view("too-slow", Some(JobStatus::Succeeded));
        bad.expected = Some("FAILED".into());
        let mut array = view("render", Some(JobStatus::Succeeded));
        array.progress = Some("5/5".into());
        array.attempts = 0;
        let table = summary_table(&[ok.clone(), bad.clone(), array]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "JOB       STATUS     ATTEMPTS  DURATION  EXPECTED     REASON"
        );
        assert_eq!(
            lines[1],
            "fetch     SUCCEEDED  1         3s        SUCCEEDED ✓"
        );
        assert_eq!(
            lines[2],
            "too-slow  SUCCEEDED  1         -         FAILED ✗"
        );
        assert!(ok.as_expected());
        assert!(!bad.as_expected());
    }
}
