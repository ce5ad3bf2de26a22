//! End-to-end benchmark: the real `barge operator` binary against barge-sim with the scripted
//! kubelet (zero-length containers), in one run:
//! 1. N single jobs submitted at once (16 concurrent submitters);
//! 2. one array job of N children;
//! 3. two arrays of N children linked N_TO_N (the dependency bookkeeping must stay O(size)).
//!
//! Each phase gets a fresh cluster and a fresh operator process. Printed per phase: time from
//! the first submission to the last job (or child) SUCCEEDED, jobs (children) per second, API
//! writes per job by kind (from the sim's request statistics), status writes per second on the
//! parent for arrays, and the operator process's peak RSS (VmHWM).
//!
//! `cargo bench -p barge-operator --bench end_to_end` (N = 10,000);
//! `BARGE_BENCH_JOBS=2000` for a shorter run.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use kube::Client;

use barge_crds::{ComputeEnvironment, Job, JobDefinition, JobQueue, JobStatus};
use barge_sim::kubelet::{Kubelet, KubeletConfig, RuntimeKind};
use barge_sim::{Cluster, ClusterConfig, StatsSnapshot};

const NAMESPACE: &str = "default";
/// vCPUs of the compute environment: 100 m5.xlarge nodes (4 vCPUs each) of 1-vCPU jobs.
const CE_VCPUS: i32 = 400;
const SUBMITTERS: usize = 16;
const DEADLINE: Duration = Duration::from_secs(1200);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Singles,
    Array,
    NToN,
}

struct Report {
    phase: Phase,
    units: u64,
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

async fn install(client: &Client) {
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
    let queue: JobQueue = yaml("apiVersion: batch.barge.dev/v1alpha1\nkind: JobQueue\nmetadata: {name: bench}\nspec: {priority: 1, computeEnvironmentOrder: [{order: 1, computeEnvironment: bench}]}\n");
    Api::<JobQueue>::all(client.clone())
        .create(&PostParams::default(), &queue)
        .await
        .expect("queue");
    let jd: JobDefinition = yaml("apiVersion: batch.barge.dev/v1alpha1\nkind: JobDefinition\nmetadata: {name: zero}\nspec:\n  type: container\n  propagateTags: true\n  tags: {sim.barge.dev/runtime: scripted, sim.barge.dev/duration-seconds: \"0\"}\n  containerProperties: {image: busybox, command: [\"true\"], resourceRequirements: [{type: VCPU, value: \"1\"}, {type: MEMORY, value: \"256\"}]}\n");
    Api::<JobDefinition>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &jd)
        .await
        .expect("jd");
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
    yaml(&format!(
        "apiVersion: batch.barge.dev/v1alpha1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  jobQueue: bench\n  jobDefinition: zero\n{extra}"
    ))
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
        Phase::Singles => {
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

async fn run_phase(phase: Phase, n: u64) -> Report {
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
    install(&client).await;
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
        Phase::Singles => {
            futures::stream::iter(0..n)
                .map(|i| {
                    let jobs = jobs.clone();
                    async move {
                        jobs.create(&PostParams::default(), &job(&format!("single-{i}"), ""))
                            .await
                            .expect("submit")
                    }
                })
                .buffer_unordered(SUBMITTERS)
                .collect::<Vec<_>>()
                .await;
        }
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
    let metrics = scrape(metrics_port, &["barge_events_", "barge_status_writes"]).await;
    eprintln!("{phase:?}: submitted in {submitted:?}, done in {elapsed:?}");
    let _ = operator.kill().await;
    kubelet.shutdown().await;
    cluster.shutdown().await;
    let units = if phase == Phase::NToN { 2 * n } else { n };
    Report {
        phase,
        units,
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
    let events = s.count("create", "events");
    let job_creates = s.count("create", "jobs");
    println!("== {:?}: {} units", r.phase, r.units);
    println!("  submission → all SUCCEEDED : {secs:.1} s");
    println!("  units per second           : {:.0}", units / secs);
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
    println!("  job status writes per s    : {:.1}", status as f64 / secs);
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
    let n: u64 = std::env::var("BARGE_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let singles = run_phase(Phase::Singles, n).await;
        print(&singles);
        let array = run_phase(Phase::Array, n).await;
        print(&array);
        let linked = run_phase(Phase::NToN, n).await;
        print(&linked);
        let per_unit = |r: &Report| r.elapsed.as_secs_f64() / r.units as f64;
        let writes = |r: &Report| r.stats.writes as f64 / r.units as f64;
        println!("== ratios (same run)");
        println!(
            "  array vs singles, time per unit   : {:.2}x (below 1: the array is faster)",
            per_unit(&array) / per_unit(&singles)
        );
        println!(
            "  array vs singles, writes per unit : {:.2}x",
            writes(&array) / writes(&singles)
        );
        println!(
            "  N_TO_N pair vs one array, time per child: {:.2}x",
            per_unit(&linked) / per_unit(&array)
        );
    });
}
