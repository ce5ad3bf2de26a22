//! The phases of the end-to-end benchmark and what they share: the simulated cluster, the
//! operator process, the installed queue and definitions, submission, the sim's write counts,
//! and the figures a phase reports.
//!
//! A phase is an async function `run(bench: &Bench) -> Outcome` in its own file here. It prints
//! its figures as it goes (`== <Phase>: ...` then indented `name : value` lines) and returns them
//! in its [`Outcome`]: every measurement as a [`Metric`] (compared with the baseline binary's run
//! when there is one), those of the target table tagged with their [`Row`] (the summary
//! table prints them against their targets).
//!
//! To add a phase: a `mod` line below, a variant of [`Phase`] (and in [`Phase::ALL`]; its
//! `BARGE_BENCH_PHASES` name is the variant in snake case), and an arm in [`Phase::run`]. A
//! phase that never starts the operator goes into [`Phase::uses_operator`]'s list too (the
//! baseline run skips it: only the operator binary differs there). A phase starts the operator
//! with [`start_operator`] so that the baseline run uses the older binary; flags the older
//! binary does not know go only when `!bench.baseline`.

pub mod array_latency;
pub mod memory;
pub mod restart;
pub mod startup;
pub mod throughput;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use kube::Client;

use barge_crds::{ComputeEnvironment, Job, JobDefinition, JobQueue, SchedulingPolicy};
use barge_sim::kubelet::{Kubelet, KubeletConfig, KubeletHandle, RuntimeKind};
use barge_sim::{Cluster, ClusterConfig, StatsSnapshot};

pub const NAMESPACE: &str = "default";
/// vCPUs of the compute environment: 100 m5.xlarge nodes (4 vCPUs each) of 1-vCPU jobs.
pub const CE_VCPUS: i32 = 400;
/// Concurrent submitters of [`submit_many`].
pub const SUBMITTERS: usize = 16;
/// The longest a phase waits for its jobs.
pub const DEADLINE: Duration = Duration::from_secs(1200);

/// One benchmark phase (`BARGE_BENCH_PHASES` selects them by [`Phase::key`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Singles,
    Array,
    NToN,
    Gangs,
    FairShare,
    ArrayLatency,
    Memory,
    Startup,
    Restart,
}

impl Phase {
    /// Every phase, in the order a run takes them.
    pub const ALL: &'static [Phase] = &[
        Phase::Singles,
        Phase::Array,
        Phase::NToN,
        Phase::Gangs,
        Phase::FairShare,
        Phase::ArrayLatency,
        Phase::Memory,
        Phase::Startup,
        Phase::Restart,
    ];

    /// The name `BARGE_BENCH_PHASES` uses: the variant in snake case (`NToN` → `n_to_n`).
    pub fn key(self) -> String {
        snake_case(&format!("{self:?}"))
    }

    /// Whether the phase runs the operator (the baseline run repeats only those).
    pub fn uses_operator(self) -> bool {
        // Phases that measure barge-sim alone.
        let sim_only: &[Phase] = &[];
        !sim_only.contains(&self)
    }

    /// Runs the phase.
    pub fn run(self, bench: &Bench) -> BoxFuture<'_, Outcome> {
        match self {
            Phase::Singles | Phase::Array | Phase::NToN | Phase::Gangs | Phase::FairShare => {
                throughput::run(self, bench).boxed()
            }
            Phase::Memory => memory::run(bench).boxed(),
            Phase::Startup => startup::run(bench).boxed(),
            Phase::Restart => restart::run(bench).boxed(),
            Phase::ArrayLatency => array_latency::run(bench).boxed(),
        }
    }
}

/// `NToN` → `n_to_n`, `FairShare` → `fair_share`.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// What every phase of one run shares.
pub struct Bench {
    /// `BARGE_BENCH_JOBS` (10,000 by default): jobs or children of the throughput phases.
    pub jobs: u64,
    /// `BARGE_BENCH_GANGS` and `BARGE_BENCH_GANG_NODES`: the gang phase's size.
    pub gangs: u64,
    pub gang_nodes: u64,
    /// The `barge` binary phases start.
    pub operator_bin: PathBuf,
    /// Whether this is the run of `BARGE_BENCH_BASELINE_BIN` (an older binary: new flags must
    /// not be passed to it).
    pub baseline: bool,
}

impl Bench {
    /// The run's settings from the environment, with this build's `barge`.
    pub fn from_env() -> Bench {
        Bench {
            jobs: env_number("BARGE_BENCH_JOBS", 10_000),
            gangs: env_number("BARGE_BENCH_GANGS", 50),
            gang_nodes: env_number("BARGE_BENCH_GANG_NODES", 8),
            // `BARGE_BENCH_OPERATOR_BIN`: another build of the new binary (a copy, when the
            // target directory is shared with builds that replace `target/release/barge`).
            operator_bin: std::env::var_os("BARGE_BENCH_OPERATOR_BIN")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_barge"))),
            baseline: false,
        }
    }

    /// "new" or "old" (the baseline binary), for log file names and headings.
    pub fn label(&self) -> &'static str {
        if self.baseline {
            "old"
        } else {
            "new"
        }
    }
}

/// A number from the environment, or `default`.
pub fn env_number(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A row of the target table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    SinglesPerSecond,
    ChildrenPerSecond,
    WritesPerSingle,
    WritesPerChild,
    KibPerQueuedJob,
    KibPerFinishedJob,
    RestartFirstPod,
    SimJobCreateVsConfigMap,
    SimJobApplyVsConfigMap,
    SimStatusWriteCpu,
    LatencyArrayChildrenPerSecond,
    LatencyArrayWritesPerChild,
    StartupFirstPod,
    StartupRefusedWrites,
}

/// A figure's target.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    pub fn met(self, value: f64) -> bool {
        match self {
            Target::AtLeast(t) => value >= t,
            Target::AtMost(t) => value <= t,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::AtLeast(t) => write!(f, "≥ {t}"),
            Target::AtMost(t) => write!(f, "≤ {t}"),
        }
    }
}

impl Row {
    /// Every row, in the order.
    pub const ALL: &'static [Row] = &[
        Row::SinglesPerSecond,
        Row::ChildrenPerSecond,
        Row::WritesPerSingle,
        Row::WritesPerChild,
        Row::KibPerQueuedJob,
        Row::KibPerFinishedJob,
        Row::RestartFirstPod,
        Row::SimJobCreateVsConfigMap,
        Row::SimJobApplyVsConfigMap,
        Row::SimStatusWriteCpu,
        Row::LatencyArrayChildrenPerSecond,
        Row::LatencyArrayWritesPerChild,
        Row::StartupFirstPod,
        Row::StartupRefusedWrites,
    ];

    /// The figure, as the summary table names it.
    pub fn label(self) -> &'static str {
        match self {
            Row::SinglesPerSecond => "single jobs per second (submission → all SUCCEEDED)",
            Row::ChildrenPerSecond => "array children per second",
            Row::WritesPerSingle => "operator API writes per single job",
            Row::WritesPerChild => "operator API writes per array child",
            Row::KibPerQueuedJob => "operator KiB per queued job (100,000 RUNNABLE)",
            Row::KibPerFinishedJob => "operator KiB per finished job (after retention)",
            Row::RestartFirstPod => "restart (SIGKILL) → first new pod, s",
            Row::SimJobCreateVsConfigMap => "sim: Job create rate / ConfigMap create rate",
            Row::SimJobApplyVsConfigMap => {
                "sim: Job server-side apply rate / ConfigMap create rate"
            }
            Row::SimStatusWriteCpu => "sim: CPU ms per /status write",
            Row::LatencyArrayChildrenPerSecond => "100 ms write latency: array children per second",
            Row::LatencyArrayWritesPerChild => "100 ms write latency: writes per child",
            Row::StartupFirstPod => "start-up with 3,000+ waiting → first pod, s",
            Row::StartupRefusedWrites => "start-up: writes refused (429) or timed out (504)",
        }
    }

    pub fn target(self) -> Target {
        match self {
            Row::SinglesPerSecond => Target::AtLeast(1000.0),
            Row::ChildrenPerSecond => Target::AtLeast(2000.0),
            Row::WritesPerSingle => Target::AtMost(5.0),
            Row::WritesPerChild => Target::AtMost(2.2),
            Row::KibPerQueuedJob => Target::AtMost(1.0),
            // "Bounded": what a finished job costs once its retention has passed, held to the
            // queued job's budget.
            Row::KibPerFinishedJob => Target::AtMost(1.0),
            Row::RestartFirstPod => Target::AtMost(10.0),
            Row::SimJobCreateVsConfigMap | Row::SimJobApplyVsConfigMap => Target::AtLeast(0.5),
            Row::SimStatusWriteCpu => Target::AtMost(0.2),
            Row::LatencyArrayChildrenPerSecond => Target::AtLeast(100.0),
            Row::LatencyArrayWritesPerChild => Target::AtMost(4.0),
            Row::StartupFirstPod => Target::AtMost(10.0),
            Row::StartupRefusedWrites => Target::AtMost(0.0),
        }
    }
}

/// One measurement of a phase.
#[derive(Clone, Debug)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    /// The target-table row it answers, if any.
    pub row: Option<Row>,
}

/// What a phase measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub phase: Phase,
    pub metrics: Vec<Metric>,
}

impl Outcome {
    pub fn new(phase: Phase) -> Outcome {
        Outcome {
            phase,
            metrics: Vec::new(),
        }
    }

    /// Records a measurement (compared with the baseline run's, not in the summary table).
    pub fn metric(&mut self, name: impl Into<String>, value: f64) {
        self.metrics.push(Metric {
            name: name.into(),
            value,
            row: None,
        });
    }

    /// Records a figure of the target table (also compared with the baseline run's).
    pub fn figure(&mut self, row: Row, value: f64) {
        self.metrics.push(Metric {
            name: row.label().to_string(),
            value,
            row: Some(row),
        });
    }

    /// A measurement by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }
}

/// The 1, 5 and 15 minute load averages and the running/total tasks (`/proc/loadavg`).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// A simulated cluster with the scripted kubelet (zero-length containers unless a job's tags
/// say otherwise).
pub struct Sim {
    pub cluster: Cluster,
    pub client: Client,
    kubelet: KubeletHandle,
}

impl Sim {
    /// Starts barge-sim (with `config`) and its kubelet.
    pub async fn start(config: ClusterConfig) -> Sim {
        let cluster = Cluster::start(config).await.expect("cluster");
        let client = cluster.client().expect("client");
        let kubelet = Kubelet::start(
            client.clone(),
            KubeletConfig {
                runtime: RuntimeKind::Scripted,
                ..KubeletConfig::default()
            },
        )
        .await
        .expect("kubelet");
        Sim {
            cluster,
            client,
            kubelet,
        }
    }

    /// The throughput phases' cluster: a watch history long enough for their runs.
    pub async fn start_default() -> Sim {
        Sim::start(ClusterConfig {
            watch_history: Some(400_000),
            ..ClusterConfig::default()
        })
        .await
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.cluster.stats()
    }

    pub async fn shutdown(self) {
        self.kubelet.shutdown().await;
        self.cluster.shutdown().await;
    }
}

/// A running `barge operator` process (killed when dropped).
pub struct Operator {
    child: tokio::process::Child,
    pub pid: u32,
    pub metrics_port: u16,
    pub log: PathBuf,
}

/// Starts `bench.operator_bin` as the operator against `kubeconfig`, with metrics on a free
/// port, warnings only (to `<tmp>/barge-bench-<name>-<new|old>.log`), a 200 ms scheduler
/// interval and `extra_args`.
pub fn start_operator(
    bench: &Bench,
    kubeconfig: &Path,
    name: &str,
    extra_args: &[&str],
) -> Operator {
    let log = std::env::temp_dir().join(format!("barge-bench-{name}-{}.log", bench.label()));
    let metrics_port = free_port();
    let child = tokio::process::Command::new(&bench.operator_bin)
        .args(["operator", "--kubeconfig"])
        .arg(kubeconfig)
        .args([
            "--metrics-addr",
            &format!("127.0.0.1:{metrics_port}"),
            "--log-level",
            "warn",
            "--scheduler-interval-ms",
            "200",
        ])
        .args(extra_args)
        .args(env_args(if bench.baseline {
            "BARGE_BENCH_BASELINE_ARGS"
        } else {
            "BARGE_BENCH_OPERATOR_ARGS"
        }))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("barge operator");
    let pid = child.id().expect("pid");
    Operator {
        child,
        pid,
        metrics_port,
        log,
    }
}

/// Extra operator flags from the environment variable `var` (split at whitespace), e.g.
/// `BARGE_BENCH_OPERATOR_ARGS="--reconcile-concurrency 0"` for the new binary and
/// `BARGE_BENCH_BASELINE_ARGS` for the baseline's: with the same binary as the baseline, one run
/// compares two settings of a flag.
fn env_args(var: &str) -> Vec<String> {
    std::env::var(var)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

impl Operator {
    /// CPU time (user + system) the process has used so far, seconds.
    pub fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(self.pid)
    }

    /// Peak resident set size (VmHWM), KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid, "VmHWM:")
    }

    /// Current resident set size (VmRSS), KiB.
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid, "VmRSS:")
    }

    /// The operator's metric lines whose names start with one of `prefixes`.
    pub async fn scrape(&self, prefixes: &[&str]) -> Vec<String> {
        scrape(self.metrics_port, prefixes).await
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// CPU time (user + system) process `pid` has used so far, seconds (`/proc/<pid>/stat`; the
/// bench's own process: `std::process::id()`). CPU per unit of work survives the machine's load
/// better than rates do.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command's closing parenthesis: the state first, utime the 12th and
    // stime the 13th of them.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    // In USER_HZ, 100 on Linux.
    ticks / 100.0
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The metric lines at `127.0.0.1:<port>/metrics` whose names start with one of `prefixes`.
pub async fn scrape(port: u16, prefixes: &[&str]) -> Vec<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return Vec::new();
    };
    let request = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return Vec::new();
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body).await;
    body.lines()
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
        .map(str::to_string)
        .collect()
}

pub fn yaml<K: serde::de::DeserializeOwned>(text: &str) -> K {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("manifest: {e}\n{text}"))
}

/// Installs the CRDs and waits for them to be served.
pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in barge_crds::all_crds() {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("crd");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// The compute environment `bench`: `vcpus` of m5.xlarge nodes (none with 0: nothing is
/// placeable).
pub async fn install_compute_environment(client: &Client, vcpus: i32) {
    let ce: ComputeEnvironment = yaml(&format!(
        "apiVersion: batch.barge.dev/v1alpha1\nkind: ComputeEnvironment\nmetadata: {{name: bench}}\nspec:\n  type: MANAGED\n  computeResources: {{type: EC2, minvCpus: 0, maxvCpus: {vcpus}, desiredvCpus: {vcpus}, instanceTypes: [m5.xlarge], provider: {{simulated: {{}}}}}}\n"
    ));
    Api::<ComputeEnvironment>::all(client.clone())
        .create(&PostParams::default(), &ce)
        .await
        .expect("ce");
}

/// The scheduling policy `bench`: `shares` identifiers `share-<i>` (the first half weigh 1.0,
/// the second half 0.5), usage decaying over 600 s (the window AWS's API reference names for
/// `shareDecaySeconds: 0`), 10 % reserved for new shares.
pub fn scheduling_policy(shares: u64) -> SchedulingPolicy {
    let distribution: Vec<String> = (0..shares)
        .map(|i| {
            let weight = if i < shares / 2 { 1.0 } else { 0.5 };
            format!("{{shareIdentifier: share-{i}, weightFactor: {weight:?}}}")
        })
        .collect();
    yaml(&format!(
        "apiVersion: batch.barge.dev/v1alpha1\nkind: SchedulingPolicy\nmetadata: {{name: bench}}\nspec:\n  fairsharePolicy: {{shareDecaySeconds: 600, computeReservation: 10, shareDistribution: [{}]}}\n",
        distribution.join(", ")
    ))
}

/// The queue `bench` on the compute environment `bench`, with the scheduling policy `bench` of
/// `shares` identifiers when given.
pub async fn install_queue(client: &Client, shares: Option<u64>) {
    if let Some(shares) = shares {
        Api::<SchedulingPolicy>::all(client.clone())
            .create(&PostParams::default(), &scheduling_policy(shares))
            .await
            .expect("scheduling policy");
    }
    let policy = if shares.is_some() {
        ", schedulingPolicyName: bench"
    } else {
        ""
    };
    let queue: JobQueue = yaml(&format!("apiVersion: batch.barge.dev/v1alpha1\nkind: JobQueue\nmetadata: {{name: bench}}\nspec: {{priority: 1, computeEnvironmentOrder: [{{order: 1, computeEnvironment: bench}}]{policy}}}\n"));
    Api::<JobQueue>::all(client.clone())
        .create(&PostParams::default(), &queue)
        .await
        .expect("queue");
}

/// The job definitions `zero` (one zero-length container, 1 vCPU) and `gang` (`gang_nodes`
/// nodes of 1 s each).
pub async fn install_definitions(client: &Client, gang_nodes: u64) {
    let jd: JobDefinition = yaml("apiVersion: batch.barge.dev/v1alpha1\nkind: JobDefinition\nmetadata: {name: zero}\nspec:\n  type: container\n  propagateTags: true\n  tags: {sim.barge.dev/runtime: scripted, sim.barge.dev/duration-seconds: \"0\"}\n  containerProperties: {image: busybox, command: [\"true\"], resourceRequirements: [{type: VCPU, value: \"1\"}, {type: MEMORY, value: \"256\"}]}\n");
    Api::<JobDefinition>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &jd)
        .await
        .expect("jd");
    let gang: JobDefinition = yaml(&format!("apiVersion: batch.barge.dev/v1alpha1\nkind: JobDefinition\nmetadata: {{name: gang}}\nspec:\n  type: multinode\n  propagateTags: true\n  tags: {{sim.barge.dev/runtime: scripted, sim.barge.dev/duration-seconds: \"1\"}}\n  nodeProperties:\n    numNodes: {gang_nodes}\n    mainNode: 0\n    nodeRangeProperties:\n      - targetNodes: \"0:\"\n        container: {{image: busybox, command: [\"true\"], resourceRequirements: [{{type: VCPU, value: \"1\"}}, {{type: MEMORY, value: \"256\"}}]}}\n"));
    Api::<JobDefinition>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &gang)
        .await
        .expect("gang jd");
}

/// The throughput phases' set-up: CRDs, the [`CE_VCPUS`] compute environment, the queue (fair
/// share with `shares`) and the definitions.
pub async fn install(client: &Client, gang_nodes: u64, shares: Option<u64>) {
    install_crds(client).await;
    install_compute_environment(client, CE_VCPUS).await;
    install_queue(client, shares).await;
    install_definitions(client, gang_nodes).await;
}

/// Waits (up to 120 s) for `want` Ready nodes.
pub async fn wait_nodes(client: &Client, want: usize) {
    let nodes: Api<Node> = Api::all(client.clone());
    let start = Instant::now();
    loop {
        let ready = nodes
            .list(&ListParams::default())
            .await
            .map(|l| {
                l.items
                    .iter()
                    .filter(|n| barge_operator::nodepools::node_is_ready(n))
                    .count()
            })
            .unwrap_or(0);
        if ready >= want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "nodes not ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Job `name` of `definition` on the queue `bench`, with `extra` spec lines (indented two
/// spaces).
/// Submits one array job named "array" of `n` zero-length children.
pub async fn submit_array(jobs: &Api<Job>, n: u64) {
    jobs.create(
        &PostParams::default(),
        &job_of(
            "array",
            "zero",
            &format!("  arrayProperties: {{size: {n}}}\n"),
        ),
    )
    .await
    .expect("submit");
}

pub fn job_of(name: &str, definition: &str, extra: &str) -> Job {
    yaml(&format!(
        "apiVersion: batch.barge.dev/v1alpha1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  jobQueue: bench\n  jobDefinition: {definition}\n{extra}"
    ))
}

/// Submits `n` jobs `<prefix>-<i>` of `definition` with [`SUBMITTERS`] concurrent clients; with
/// `shares`, job `i` has share identifier `share-<i mod shares>`.
pub async fn submit_many(
    jobs: &Api<Job>,
    prefix: &str,
    definition: &str,
    n: u64,
    shares: Option<u64>,
) {
    futures::stream::iter(0..n)
        .map(|i| {
            let jobs = jobs.clone();
            let extra = shares
                .map(|s| format!("  shareIdentifier: share-{}\n", i % s))
                .unwrap_or_default();
            async move {
                jobs.create(
                    &PostParams::default(),
                    &job_of(&format!("{prefix}-{i}"), definition, &extra),
                )
                .await
                .expect("submit")
            }
        })
        .buffer_unordered(SUBMITTERS)
        .collect::<Vec<_>>()
        .await;
}

/// The operator's API writes in the sim's request counts, by kind.
#[derive(Clone, Copy, Debug, Default)]
pub struct OperatorWrites {
    /// Job status patches and updates.
    pub job_status: u64,
    pub pod_creates: u64,
    /// Pod patches (the result-tracking finalizer's release).
    pub pod_patches: u64,
    /// Pod deletions, one by one or by collection.
    pub pod_deletes: u64,
    pub events: u64,
}

impl OperatorWrites {
    pub fn of(s: &StatsSnapshot) -> OperatorWrites {
        OperatorWrites {
            job_status: s.count("patch", "jobs/status") + s.count("update", "jobs/status"),
            pod_creates: s.count("create", "pods"),
            pod_patches: s.count("patch", "pods"),
            pod_deletes: s.count("delete", "pods") + s.count("deletecollection", "pods"),
            events: s.count("create", "events"),
        }
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.job_status + self.pod_creates + self.pod_patches + self.pod_deletes + self.events
    }
}

/// Pod status writes of the kubelet.
pub fn kubelet_writes(s: &StatsSnapshot) -> u64 {
    s.count("patch", "pods/status") + s.count("update", "pods/status")
}

/// Prints the API writes per `unit` (all writers, the operator's by kind, the kubelet's) of a
/// phase that ran `units` jobs or children.
pub fn print_writes_per(unit: &str, units: f64, s: &StatsSnapshot) {
    let w = OperatorWrites::of(s);
    let label = format!("API writes per {unit}");
    println!(
        "  {label:<27}: {:.2} (all writers: {} writes)",
        s.writes as f64 / units,
        s.writes
    );
    println!(
        "    operator                 : {:.2} (job status {}, pod create {}, pod patch {}, pod delete {}, events {})",
        w.total() as f64 / units,
        w.job_status,
        w.pod_creates,
        w.pod_patches,
        w.pod_deletes,
        w.events
    );
    println!(
        "    kubelet pod status       : {:.2}",
        kubelet_writes(s) as f64 / units
    );
}

/// Runs `phases` with `bench`'s binary, printing each as it ends.
pub async fn run_all(bench: &Bench, phases: &[Phase]) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for &phase in phases {
        outcomes.push(phase.run(bench).await);
    }
    outcomes
}

/// Prints, per phase and measurement, the new figure, the old one and their ratio.
pub fn print_ratios(new: &[Outcome], old: &[Outcome]) {
    println!("== new vs old binary (same run; ratio new/old)");
    for outcome in new {
        let Some(before) = old.iter().find(|o| o.phase == outcome.phase) else {
            continue;
        };
        println!("  {}:", outcome.phase.key());
        for m in &outcome.metrics {
            let Some(was) = before.get(&m.name) else {
                continue;
            };
            let ratio = if was != 0.0 {
                format!("{:.2}x", m.value / was)
            } else {
                "-".to_string()
            };
            println!(
                "    {:<58} {:>12} vs {:>12}  {ratio}",
                m.name,
                short(m.value),
                short(was)
            );
        }
    }
}

/// Prints every target-table figure the phases measured, with its target, pass or fail, and
/// the old binary's figure and the ratio when there was a baseline run.
pub fn print_summary(new: &[Outcome], old: Option<&[Outcome]>) {
    let find = |outcomes: &[Outcome], row: Row| {
        outcomes
            .iter()
            .flat_map(|o| &o.metrics)
            .find(|m| m.row == Some(row))
            .map(|m| m.value)
    };
    println!("== summary: the issue's targets");
    let baseline = if old.is_some() {
        "  old      new/old"
    } else {
        ""
    };
    println!(
        "  {:<60} {:>10} {:>12}  result{baseline}",
        "figure", "target", "new"
    );
    for &row in Row::ALL {
        let Some(value) = find(new, row) else {
            continue;
        };
        let target = row.target();
        let result = if target.met(value) { "pass" } else { "FAIL" };
        let mut line = format!(
            "  {:<60} {:>10} {:>12}  {result:<6}",
            row.label(),
            target.to_string(),
            short(value)
        );
        if let Some(was) = old.and_then(|old| find(old, row)) {
            let ratio = if was != 0.0 {
                format!("{:.2}x", value / was)
            } else {
                "-".to_string()
            };
            line.push_str(&format!(" {:>8} {ratio:>8}", short(was)));
        }
        println!("{line}");
    }
}

/// A figure with the precision its size deserves.
fn short(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
