//! End-to-end benchmark: the real `barge operator` binary against barge-sim with the scripted
//! kubelet (zero-length containers), in one run:
//! 1. N single jobs submitted at once (16 concurrent submitters);
//! 2. one array job of N children;
//! 3. two arrays of N children linked N_TO_N (the dependency bookkeeping must stay O(size));
//! 4. G multi-node (gang) jobs of 8 nodes each, 1 s per node, submitted at once: 12 gangs fit
//!    the 100 nodes at a time (one Kubernetes node per job node), so they run in waves;
//! 5. N single jobs across 10 share identifiers on a queue with a scheduling policy (fair share,
//!    issue 12), submitted as in phase 1: its jobs per second against phase 1's FIFO run, and
//!    the queue status writes per second that usage (`status.fairShare`) and the front of the
//!    queue (`status.frontOfQueue`) cost.
//!
//! Each phase gets a fresh cluster and a fresh operator process. Printed per phase: time from
//! the first submission to the last job (or child) SUCCEEDED, jobs (children) per second, API
//! writes per job by kind (from the sim's request statistics), status writes per second on the
//! parent for arrays, queue status writes per second, and the operator process's peak RSS
//! (VmHWM).
//!
//! `cargo bench -p barge-operator --bench end_to_end` (N = 10,000, G = 50);
//! `BARGE_BENCH_JOBS=2000` for a shorter run; `BARGE_BENCH_PHASES=gangs` (a comma-separated list
//! of `singles`, `array`, `n_to_n`, `gangs`, `fair_share`) runs only those phases;
//! `BARGE_BENCH_GANGS` and `BARGE_BENCH_GANG_NODES` size the gang phase.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use kube::Client;

use barge_crds::{ComputeEnvironment, Job, JobDefinition, JobQueue, JobStatus, SchedulingPolicy};
use barge_sim::kubelet::{Kubelet, KubeletConfig, RuntimeKind};
use barge_sim::{Cluster, ClusterConfig, StatsSnapshot};

const NAMESPACE: &str = "default";
/// vCPUs of the compute environment: 100 m5.xlarge nodes (4 vCPUs each) of 1-vCPU jobs.
const CE_VCPUS: i32 = 400;
const SUBMITTERS: usize = 16;
/// Nodes (pods) per gang by default, and gangs of the gang phase.
const GANG_NODES: u64 = 8;
const GANGS: u64 = 50;
/// Share identifiers of the fair-share phase (`share-0`…): the first half weigh 1.0, the second
/// half 0.5.
const SHARES: u64 = 10;
const DEADLINE: Duration = Duration::from_secs(1200);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Singles,
    Array,
    NToN,
    Gangs,
    FairShare,
}

impl Phase {
    const ALL: [Phase; 5] = [
        Phase::Singles,
        Phase::Array,
        Phase::NToN,
        Phase::Gangs,
        Phase::FairShare,
    ];

    /// The name `BARGE_BENCH_PHASES` uses.
    fn key(self) -> &'static str {
        match self {
            Phase::Singles => "singles",
            Phase::Array => "array",
            Phase::NToN => "n_to_n",
            Phase::Gangs => "gangs",
            Phase::FairShare => "fair_share",
        }
    }
}

struct Report {
    phase: Phase,
    units: u64,
    /// Pods per unit: 1, or the nodes of a gang.
    pods_per_unit: u64,
    elapsed: Duration,
    stats: StatsSnapshot,
    peak_rss_kib: u64,
    /// The operator's own counters at the end (`barge_events_*`, `barge_status_writes*`).
    metrics: Vec<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The operator's metric lines whose names start with one of `prefixes`.
async fn scrape(port: u16, prefixes: &[&str]) -> Vec<String> {
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

fn yaml<K: serde::de::DeserializeOwned>(text: &str) -> K {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("manifest: {e}\n{text}"))
}

/// The scheduling policy of the fair-share phase: [`SHARES`] identifiers, usage decaying over
/// 600 s (the window AWS's API reference names for `shareDecaySeconds: 0`), 10 % reserved for
/// new shares.
fn scheduling_policy() -> SchedulingPolicy {
    let distribution: Vec<String> = (0..SHARES)
        .map(|i| {
            let weight = if i < SHARES / 2 { 1.0 } else { 0.5 };
            format!("{{shareIdentifier: share-{i}, weightFactor: {weight:?}}}")
        })
        .collect();
    yaml(&format!(
        "apiVersion: batch.barge.dev/v1alpha1\nkind: SchedulingPolicy\nmetadata: {{name: bench}}\nspec:\n  fairsharePolicy: {{shareDecaySeconds: 600, computeReservation: 10, shareDistribution: [{}]}}\n",
        distribution.join(", ")
    ))
}

/// Installs the CRDs, the compute environment, the queue `bench` (with the scheduling policy
/// `bench` when `fair_share`) and the job definitions.
async fn install(client: &Client, gang_nodes: u64, fair_share: bool) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in barge_crds::all_crds() {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("crd");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ce: ComputeEnvironment = yaml(&format!(
        "apiVersion: batch.barge.dev/v1alpha1\nkind: ComputeEnvironment\nmetadata: {{name: bench}}\nspec:\n  type: MANAGED\n  computeResources: {{type: EC2, minvCpus: 0, maxvCpus: {CE_VCPUS}, desiredvCpus: {CE_VCPUS}, instanceTypes: [m5.xlarge], provider: {{simulated: {{}}}}}}\n"
    ));
    Api::<ComputeEnvironment>::all(client.clone())
        .create(&PostParams::default(), &ce)
        .await
        .expect("ce");
    if fair_share {
        Api::<SchedulingPolicy>::all(client.clone())
            .create(&PostParams::default(), &scheduling_policy())
            .await
            .expect("scheduling policy");
    }
    let policy = if fair_share {
        ", schedulingPolicyName: bench"
    } else {
        ""
    };
    let queue: JobQueue = yaml(&format!("apiVersion: batch.barge.dev/v1alpha1\nkind: JobQueue\nmetadata: {{name: bench}}\nspec: {{priority: 1, computeEnvironmentOrder: [{{order: 1, computeEnvironment: bench}}]{policy}}}\n"));
    Api::<JobQueue>::all(client.clone())
        .create(&PostParams::default(), &queue)
        .await
        .expect("queue");
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

async fn wait_nodes(client: &Client, want: usize) {
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

fn job(name: &str, extra: &str) -> Job {
    job_of(name, "zero", extra)
}

fn job_of(name: &str, definition: &str, extra: &str) -> Job {
    yaml(&format!(
        "apiVersion: batch.barge.dev/v1alpha1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  jobQueue: bench\n  jobDefinition: {definition}\n{extra}"
    ))
}

/// Submits `n` jobs `<prefix>-<i>` of `definition` with [`SUBMITTERS`] concurrent clients; with
/// `shares`, job `i` has share identifier `share-<i mod shares>`.
async fn submit_many(jobs: &Api<Job>, prefix: &str, definition: &str, n: u64, shares: Option<u64>) {
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

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn succeeded(client: &Client, phase: Phase, n: u64) -> bool {
    let jobs: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
    let done = |j: &Job| j.status.as_ref().and_then(|s| s.status) == Some(JobStatus::Succeeded);
    match phase {
        Phase::Singles | Phase::Gangs | Phase::FairShare => {
            let mut count = 0u64;
            let mut params = ListParams::default().limit(2000);
            loop {
                let Ok(page) = jobs.list(&params).await else {
                    return false;
                };
                count += page.items.iter().filter(|j| done(j)).count() as u64;
                match page.metadata.continue_ {
                    Some(token) if !token.is_empty() => params = params.continue_token(&token),
                    _ => break,
                }
            }
            count >= n
        }
        Phase::Array => jobs.get("array").await.is_ok_and(|j| done(&j)),
        Phase::NToN => jobs.get("second").await.is_ok_and(|j| done(&j)),
    }
}

async fn run_phase(phase: Phase, n: u64, gang_nodes: u64) -> Report {
    let cluster = Cluster::start(ClusterConfig {
        watch_history: Some(400_000),
        ..ClusterConfig::default()
    })
    .await
    .expect("cluster");
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
    install(&client, gang_nodes, phase == Phase::FairShare).await;
    let log = std::env::temp_dir().join(format!("barge-bench-{phase:?}.log"));
    let metrics_port = free_port();
    let mut operator = tokio::process::Command::new(env!("CARGO_BIN_EXE_barge"))
        .args(["operator", "--kubeconfig"])
        .arg(cluster.kubeconfig_path())
        .args([
            "--metrics-addr",
            &format!("127.0.0.1:{metrics_port}"),
            "--log-level",
            "warn",
            "--scheduler-interval-ms",
            "200",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("barge operator");
    let pid = operator.id().expect("pid");
    wait_nodes(&client, (CE_VCPUS / 4) as usize).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.reset_stats();

    let started = Instant::now();
    let jobs: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
    match phase {
        Phase::Singles => submit_many(&jobs, "single", "zero", n, None).await,
        Phase::Gangs => submit_many(&jobs, "gang", "gang", n, None).await,
        Phase::FairShare => submit_many(&jobs, "shared", "zero", n, Some(SHARES)).await,
        Phase::Array => {
            jobs.create(
                &PostParams::default(),
                &job("array", &format!("  arrayProperties: {{size: {n}}}\n")),
            )
            .await
            .expect("submit");
        }
        Phase::NToN => {
            jobs.create(
                &PostParams::default(),
                &job("first", &format!("  arrayProperties: {{size: {n}}}\n")),
            )
            .await
            .expect("submit");
            jobs.create(
                &PostParams::default(),
                &job(
                    "second",
                    &format!(
                        "  arrayProperties: {{size: {n}}}\n  dependsOn: [{{jobName: first, type: N_TO_N}}]\n"
                    ),
                ),
            )
            .await
            .expect("submit");
        }
    }
    let submitted = started.elapsed();
    loop {
        if succeeded(&client, phase, n).await {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{phase:?} did not finish in {DEADLINE:?}; operator log: {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let elapsed = started.elapsed();
    let stats = cluster.stats();
    let peak_rss_kib = peak_rss_kib(pid);
    let metrics = scrape(
        metrics_port,
        &[
            "barge_events_",
            "barge_status_writes",
            "barge_queue_status_writes",
        ],
    )
    .await;
    eprintln!("{phase:?}: submitted in {submitted:?}, done in {elapsed:?}");
    let _ = operator.kill().await;
    kubelet.shutdown().await;
    cluster.shutdown().await;
    let units = if phase == Phase::NToN { 2 * n } else { n };
    Report {
        phase,
        units,
        pods_per_unit: if phase == Phase::Gangs { gang_nodes } else { 1 },
        elapsed,
        stats,
        peak_rss_kib,
        metrics,
    }
}

fn print(r: &Report) {
    let units = r.units as f64;
    let secs = r.elapsed.as_secs_f64();
    let s = &r.stats;
    let status = s.count("patch", "jobs/status") + s.count("update", "jobs/status");
    let pod_creates = s.count("create", "pods");
    let pod_patches = s.count("patch", "pods");
    let pod_deletes = s.count("delete", "pods");
    let kubelet = s.count("patch", "pods/status") + s.count("update", "pods/status");
    let queue_status = s.count("patch", "jobqueues/status") + s.count("update", "jobqueues/status");
    let events = s.count("create", "events");
    let job_creates = s.count("create", "jobs");
    println!("== {:?}: {} units", r.phase, r.units);
    println!("  submission → all SUCCEEDED : {secs:.1} s");
    println!("  units per second           : {:.2}", units / secs);
    println!(
        "  API writes per unit        : {:.2} (all writers: {} writes)",
        s.writes as f64 / units,
        s.writes
    );
    println!(
        "    operator                 : {:.2} (job status {status}, pod create {pod_creates}, pod patch {pod_patches}, pod delete {pod_deletes}, events {events})",
        (status + pod_creates + pod_patches + pod_deletes + events) as f64 / units
    );
    println!(
        "    kubelet pod status       : {:.2}",
        kubelet as f64 / units
    );
    println!("    job submissions          : {job_creates}");
    if r.pods_per_unit > 1 {
        // Gangs: the same writes per node (pod) of a gang, and the headless Services.
        let nodes = units * r.pods_per_unit as f64;
        let services = s.count("create", "services") + s.count("delete", "services");
        let finalizers = pod_patches;
        println!(
            "  per gang node ({} nodes per gang, {nodes} in all):",
            r.pods_per_unit
        );
        println!(
            "    API writes, all writers  : {:.2}",
            s.writes as f64 / nodes
        );
        println!(
            "    operator                 : {:.2} (pod create {:.2}, job status {:.2}, pod patch {:.2}, pod delete {:.2}, events {:.2}, service create+delete {:.2})",
            (status + pod_creates + pod_patches + pod_deletes + events + services) as f64 / nodes,
            pod_creates as f64 / nodes,
            status as f64 / nodes,
            finalizers as f64 / nodes,
            pod_deletes as f64 / nodes,
            events as f64 / nodes,
            services as f64 / nodes,
        );
        println!(
            "    kubelet pod status       : {:.2}",
            kubelet as f64 / nodes
        );
    }
    println!("  job status writes per s    : {:.1}", status as f64 / secs);
    println!(
        "  queue status writes per s  : {:.2} ({queue_status} in all)",
        queue_status as f64 / secs
    );
    println!(
        "  operator peak RSS          : {:.0} MiB",
        r.peak_rss_kib as f64 / 1024.0
    );
    println!("  operator counters at the end:");
    for line in &r.metrics {
        println!("    {line}");
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let number = |var: &str, default: u64| -> u64 {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = number("BARGE_BENCH_JOBS", 10_000);
    let gangs = number("BARGE_BENCH_GANGS", GANGS);
    let gang_nodes = number("BARGE_BENCH_GANG_NODES", GANG_NODES);
    let wanted = std::env::var("BARGE_BENCH_PHASES").unwrap_or_default();
    let phases: Vec<Phase> = Phase::ALL
        .into_iter()
        .filter(|p| wanted.is_empty() || wanted.split(',').any(|w| w.trim() == p.key()))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut reports = Vec::new();
        for phase in phases {
            let units = if phase == Phase::Gangs { gangs } else { n };
            let report = run_phase(phase, units, gang_nodes).await;
            print(&report);
            reports.push(report);
        }
        let of = |phase: Phase| reports.iter().find(|r| r.phase == phase);
        if let (Some(fifo), Some(fair)) = (of(Phase::Singles), of(Phase::FairShare)) {
            let rate = |r: &Report| r.units as f64 / r.elapsed.as_secs_f64();
            println!("== fair share vs FIFO (same run, same jobs but for shareIdentifier)");
            println!(
                "  jobs per second            : {:.2} vs {:.2} ({:.2}x)",
                rate(fair),
                rate(fifo),
                rate(fair) / rate(fifo)
            );
        }
        let (Some(singles), Some(array), Some(linked)) =
            (of(Phase::Singles), of(Phase::Array), of(Phase::NToN))
        else {
            return;
        };
        let per_unit = |r: &Report| r.elapsed.as_secs_f64() / r.units as f64;
        let writes = |r: &Report| r.stats.writes as f64 / r.units as f64;
        println!("== ratios (same run)");
        println!(
            "  array vs singles, time per unit   : {:.2}x (below 1: the array is faster)",
            per_unit(array) / per_unit(singles)
        );
        println!(
            "  array vs singles, writes per unit : {:.2}x",
            writes(array) / writes(singles)
        );
        println!(
            "  N_TO_N pair vs one array, time per child: {:.2}x",
            per_unit(linked) / per_unit(array)
        );
    });
}
