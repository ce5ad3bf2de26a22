//! Benchmark of the simulated API server, run as a child process (`barge-sim serve`) so its memory
//! is measured alone. Prints:
//! - creates per second of small objects (ConfigMaps) with 16 concurrent kube-rs clients, and in
//!   the same run creates and server-side applies (`kubectl apply --server-side`: PATCH
//!   `application/apply-patch+yaml` with a fieldManager) per second of Barge Jobs (the repository's
//!   CRDs, config/crd/bases, with their schemas and CEL rules), as a ratio to the ConfigMap rate;
//! - the server's CPU time per `/status` merge patch of a Job (utime + stime of the server process
//!   from /proc/<pid>/stat over the patches, divided by their number);
//! - write → watch-event latency (p50/p99) with 100 concurrent watchers;
//! - the server's CPU time per pod write of an array child's life: the operator's pod create, the
//!   scripted kubelet's two `pods/status` merge patches (running, then succeeded: the patches
//!   `kubelet::podstate::PodRun::status_patch` renders) and the operator's finalizer release (a
//!   JSON patch that tests and removes the result finalizer and labels the pod disposable, as
//!   `operator/src/pods/finalizer.rs` sends it);
//! - write → watch-event latency (p50/p99) with 100 concurrent watchers;
//! - the server's RSS (VmRSS) empty and holding 100,000 pods (`BARGE_SIM_BENCH_PODS` overrides).
//!
//! `cargo bench -p barge-sim --bench apiserver` (`BARGE_SIM_BENCH_SERVER_BIN=<path>` runs another
//! `barge-sim` binary as the server, `BARGE_SIM_BENCH_PODS` and `BARGE_SIM_BENCH_WRITES` size it,
//! `BARGE_SIM_BENCH_PHASES=creates,crd,pods,watch,scale` picks phases, all by default).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::Client;
use serde_json::json;
use tokio::sync::Mutex;

const CLIENTS: usize = 16;
const CREATES: usize = 20_000;
/// Objects per write figure of the CRD comparison (`BARGE_SIM_BENCH_WRITES` overrides).
const CRD_WRITES: usize = 10_000;
/// `/status` patches the CPU figure is averaged over.
const STATUS_WRITES: usize = 2_000;
const WATCHERS: usize = 100;
const WATCHED_WRITES: usize = 200;

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("kubeconfig");
    // Another server binary (e.g. a previous commit's) for before/after figures on one machine.
    let bin = std::env::var("BARGE_SIM_BENCH_SERVER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_barge-sim").to_string());
    let mut child = Command::new(bin)
        .args(["serve", "--port", "0", "--kubeconfig"])
        .arg(&kc)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("barge-sim serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("server prints its address")
            .expect("read");
        if let Some(rest) = line.strip_prefix("barge-sim API server listening on ") {
            break rest.trim().to_string();
        }
    };
    // Keep draining stdout so the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        url,
        _dir: dir,
    }
}

fn client(url: &str) -> Client {
    let config = kube::Config::new(url.parse().expect("url"));
    Client::try_from(config).expect("client")
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Whether a phase runs (`BARGE_SIM_BENCH_PHASES`, a comma-separated list; all when unset).
fn phase_enabled(name: &str) -> bool {
    match std::env::var("BARGE_SIM_BENCH_PHASES") {
        Ok(list) => list.split(',').any(|p| p.trim() == name),
        Err(_) => true,
    }
}

/// The first three fields of /proc/loadavg.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_string())
}

/// CPU time (user + system) the process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // /proc counts in USER_HZ, which Linux fixes at 100 whatever the kernel's tick rate.
    Duration::from_millis(ticks * 10)
}

/// Installs the repository's CRDs (config/crd/bases) and waits until Jobs are served.
async fn install_crds(url: &str) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/crd/bases");
    let api: Api<CustomResourceDefinition> = Api::all(client(url));
    for entry in std::fs::read_dir(dir).expect("config/crd/bases") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("crd yaml");
            let crd: CustomResourceDefinition = serde_yaml::from_str(&text).expect("crd");
            api.create(&PostParams::default(), &crd)
                .await
                .expect("create CRD");
        }
    }
    let jobs = jobs_api(client(url));
    for _ in 0..200 {
        if jobs.list(&Default::default()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Jobs are not served after installing the CRDs");
}

fn job_resource() -> ApiResource {
    ApiResource {
        group: "batch.barge.dev".into(),
        version: "v1alpha1".into(),
        api_version: "batch.barge.dev/v1alpha1".into(),
        kind: "Job".into(),
        plural: "jobs".into(),
    }
}

fn jobs_api(c: Client) -> Api<DynamicObject> {
    Api::namespaced_with(c, "default", &job_resource())
}

/// A single Job as users submit them (queue, definition, share, parameters, an override).
fn job(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "batch.barge.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"bench": "jobs"}},
        "spec": {
            "jobQueue": "bench-queue",
            "jobDefinition": "bench-def:1",
            "shareIdentifier": "teamA",
            "parameters": {"seconds": "0"},
            "containerOverrides": {"resourceRequirements": [
                {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]},
            "retryStrategy": {"attempts": 2},
            "timeout": {"attemptDurationSeconds": 600},
        },
    }))
    .expect("job")
}

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"bench": "creates"}}, "data": {"k": "v"}}),
    )
    .expect("cm")
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "barge", "batch.barge.dev/job-name": name}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", "true"],
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
    }))
    .expect("pod")
}

/// Create `total` objects with CLIENTS concurrent clients; returns objects per second.
async fn concurrent_creates<F>(url: &str, total: usize, make: F) -> f64
where
    F: Fn(Client, usize) -> futures::future::BoxFuture<'static, ()> + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = client(url);
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = c;
            while i < total {
                make(client.clone(), i).await;
                i += CLIENTS;
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn watch_latency(url: &str) -> (Duration, Duration, usize) {
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; WATCHED_WRITES]));
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::new()));
    let ns = "default";
    let writer: Api<ConfigMap> = Api::namespaced(client(url), ns);
    let rv = writer
        .list_metadata(&Default::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut tasks = Vec::new();
    for _ in 0..WATCHERS {
        let api: Api<ConfigMap> = Api::namespaced(client(url), ns);
        let sent = sent.clone();
        let latencies = latencies.clone();
        let rv = rv.clone();
        tasks.push(tokio::spawn(async move {
            let wp = WatchParams::default().labels("bench=watch").timeout(120);
            let mut stream = api.watch(&wp, &rv).await.expect("watch").boxed();
            let mut seen = 0;
            while seen < WATCHED_WRITES {
                match stream.try_next().await {
                    Ok(Some(WatchEvent::Added(cm))) => {
                        let now = Instant::now();
                        let idx: usize = cm
                            .metadata
                            .name
                            .as_deref()
                            .and_then(|n| n.strip_prefix("w-"))
                            .and_then(|n| n.parse().ok())
                            .expect("index");
                        if let Some(t) = sent.lock().await[idx] {
                            latencies.lock().await.push(now - t);
                        }
                        seen += 1;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }));
    }
    // Let every watcher connect before writing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..WATCHED_WRITES {
        let obj: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": format!("w-{i}"), "labels": {"bench": "watch"}}}),
        )
        .expect("cm");
        sent.lock().await[i] = Some(Instant::now());
        writer
            .create(&PostParams::default(), &obj)
            .await
            .expect("create");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(60), t).await;
    }
    let mut l = latencies.lock().await.clone();
    l.sort();
    (percentile(&l, 0.5), percentile(&l, 0.99), l.len())
}

#[tokio::main]
async fn main() {
    let pods: usize = std::env::var("BARGE_SIM_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let server = start_server();
    let pid = server.child.id();
    println!(
        "barge-sim API server benchmark ({} CPUs, load average {})",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        load_average()
    );

    if phase_enabled("creates") {
        let rate = concurrent_creates(&server.url, CREATES, |c, i| {
            Box::pin(async move {
                let api: Api<ConfigMap> = Api::namespaced(c, "default");
                api.create(&PostParams::default(), &configmap(&format!("c-{i}")))
                    .await
                    .expect("create");
            })
        })
        .await;
        println!(
            "writes: {rate:.0} creates/s ({CREATES} ConfigMaps, {CLIENTS} concurrent clients)"
        );
    }

    if phase_enabled("crd") {
        crd_writes(&server.url, pid).await;
    }

    if phase_enabled("pods") {
        pod_writes(&server.url, pid).await;
    }

    if phase_enabled("watch") {
        let (p50, p99, n) = watch_latency(&server.url).await;
        println!(
            "watch: write→event latency p50 {:.2} ms, p99 {:.2} ms ({WATCHERS} watchers, {n} events)",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }

    // Memory: a fresh server, empty then with `pods` pods.
    drop(server);
    if !phase_enabled("scale") {
        return;
    }
    let server = start_server();
    let pid2 = server.child.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let empty = rss_kib(pid2);
    let rate = concurrent_creates(&server.url, pods, |c, i| {
        Box::pin(async move {
            let api: Api<Pod> = Api::namespaced(c, "default");
            api.create(&PostParams::default(), &pod(&format!("job-{i}-1")))
                .await
                .expect("create");
        })
    })
    .await;
    let full = rss_kib(pid2);
    println!("scale: {pods} pods created at {rate:.0} pods/s");
    println!(
        "scale: server RSS {:.1} MiB empty, {:.1} MiB holding {pods} pods ({:.2} KiB per pod)",
        empty as f64 / 1024.0,
        full as f64 / 1024.0,
        (full.saturating_sub(empty)) as f64 / pods.max(1) as f64
    );
}

/// The server's stats (`GET /sim/v1/stats`).
async fn sim_stats(url: &str) -> serde_json::Value {
    let req = http::Request::get("/sim/v1/stats")
        .body(Vec::new())
        .expect("request");
    let text = client(url).request_text(req).await.expect("stats");
    serde_json::from_str(&text).expect("stats JSON")
}

async fn reset_sim_stats(url: &str) {
    let req = http::Request::post("/sim/v1/stats/reset")
        .body(Vec::new())
        .expect("request");
    client(url).request_text(req).await.expect("reset stats");
}

/// ConfigMap creates, Job creates and Job server-side applies per second (16 clients each, same
/// server, same run), then the server's CPU per Job `/status` patch.
async fn crd_writes(url: &str, pid: u32) {
    let writes: usize = std::env::var("BARGE_SIM_BENCH_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CRD_WRITES);
    install_crds(url).await;
    // Server CPU per write of each kind: survives the machine's load better than the rates.
    let cpu_per_write =
        |since: Duration| (cpu_time(pid) - since).as_secs_f64() * 1e3 / writes.max(1) as f64;
    let start = cpu_time(pid);
    let cm_rate = concurrent_creates(url, writes, |c, i| {
        Box::pin(async move {
            let api: Api<ConfigMap> = Api::namespaced(c, "default");
            api.create(&PostParams::default(), &configmap(&format!("cmp-{i}")))
                .await
                .expect("create");
        })
    })
    .await;
    let cm_cpu = cpu_per_write(start);
    reset_sim_stats(url).await;
    let start = cpu_time(pid);
    let job_rate = concurrent_creates(url, writes, |c, i| {
        Box::pin(async move {
            jobs_api(c)
                .create(&PostParams::default(), &job(&format!("job-{i}")))
                .await
                .expect("create Job");
        })
    })
    .await;
    let job_cpu = cpu_per_write(start);
    let start = cpu_time(pid);
    let apply_rate = concurrent_creates(url, writes, |c, i| {
        Box::pin(async move {
            let name = format!("applied-{i}");
            jobs_api(c)
                .patch(
                    &name,
                    &PatchParams::apply("bench-apply"),
                    &Patch::Apply(job(&name)),
                )
                .await
                .expect("apply Job");
        })
    })
    .await;
    let apply_cpu = cpu_per_write(start);
    println!("crd writes: ConfigMaps {cm_rate:.0} creates/s, Jobs {job_rate:.0} creates/s ({:.0} %), Jobs {apply_rate:.0} server-side applies/s ({:.0} %) ({writes} each, {CLIENTS} concurrent clients; target ≥ 50 %)",
        100.0 * job_rate / cm_rate, 100.0 * apply_rate / cm_rate);
    println!(
        "crd writes: server CPU per write: ConfigMap create {cm_cpu:.3} ms, Job create {job_cpu:.3} ms ({:.0} % of the ConfigMap's rate if CPU-bound), Job apply {apply_cpu:.3} ms ({:.0} %)",
        100.0 * cm_cpu / job_cpu,
        100.0 * cm_cpu / apply_cpu
    );
    let stats = sim_stats(url).await;
    let commits = stats["commits"].as_u64().unwrap_or(0);
    if commits > 0 {
        println!(
            "crd writes: store lock held {:.1} µs per Job write commit ({commits} commits; the rest of each write runs outside it)",
            stats["commitNanos"].as_u64().unwrap_or(0) as f64 / commits as f64 / 1e3
        );
    }
    // CPU per /status write: sequential merge patches of the created Jobs' status, nothing else
    // running against the server.
    let api = jobs_api(client(url));
    let n = STATUS_WRITES.min(writes);
    let before = cpu_time(pid);
    for i in 0..n {
        let status = if i % 2 == 0 { "RUNNABLE" } else { "STARTING" };
        let patch =
            json!({"status": {"status": status, "statusReason": format!("bench patch {i}")}});
        api.patch_status(
            &format!("job-{i}"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("patch status");
    }
    let cpu = cpu_time(pid) - before;
    println!(
        "crd writes: server CPU {:.3} ms per Job /status patch ({n} patches; target ≤ 0.2 ms)",
        cpu.as_secs_f64() * 1e3 / n as f64
    );
}

/// A pod as the operator creates it for an array child: Barge's labels, an owner (`owner_uid`: an
/// object that exists, or the garbage collector would delete the pod), the result finalizer, bound
/// to a node, the compute environment's toleration and selector, the batch environment variables.
fn array_pod(name: &str, index: usize, owner_uid: &str) -> Pod {
    let env: Vec<serde_json::Value> = [
        ("AWS_BATCH_JOB_ID", format!("bench-array:{index}")),
        ("AWS_BATCH_JOB_ARRAY_INDEX", index.to_string()),
        ("AWS_BATCH_JOB_ATTEMPT", "1".to_string()),
        ("AWS_BATCH_JQ_NAME", "bench-queue".to_string()),
        ("AWS_BATCH_CE_NAME", "bench-ce".to_string()),
        ("BARGE_JOB_NAME", "bench-array".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| json!({"name": k, "value": v}))
    .collect();
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/managed-by": "barge",
                "batch.barge.dev/job-name": "bench-array",
                "batch.barge.dev/job-uid": "0d6f6b7e-3f5c-4a53-9a55-3b1f4c1d2e3f",
                "batch.barge.dev/attempt": "1",
                "batch.barge.dev/array-index": index.to_string(),
                "batch.barge.dev/job-queue": "bench-queue",
                "batch.barge.dev/compute-environment": "bench-ce",
                "batch.barge.dev/job-definition": "bench-def",
                "batch.barge.dev/job-definition-revision": "1",
            },
            "annotations": {"batch.barge.dev/share-identifier": "teamA"},
            "finalizers": ["batch.barge.dev/attempt-result"],
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": "bench-array",
                "uid": owner_uid, "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "nodeName": "bench-node-1",
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [{"key": "batch.barge.dev/compute-environment", "operator": "Equal",
                             "value": "bench-ce", "effect": "NoSchedule"}],
            "nodeSelector": {"batch.barge.dev/compute-environment": "bench-ce"},
            "containers": [{
                "name": "main", "image": "busybox:1.36", "command": ["sh", "-c", "true"],
                "env": env,
                "resources": {"requests": {"cpu": "1", "memory": "2048Mi"},
                              "limits": {"cpu": "1", "memory": "2048Mi"}},
            }],
        },
    }))
    .expect("pod")
}

/// The pod writes of an array child's life, each kind over `BARGE_SIM_BENCH_WRITES` pods with
/// 16 clients, and the server's CPU per write: the operator's create, the kubelet's status patch
/// when the container runs and when it has succeeded, and the operator's finalizer release.
async fn pod_writes(url: &str, pid: u32) {
    use barge_sim::kubelet::podstate::{ContainerRef, PodRun};
    let writes: usize = std::env::var("BARGE_SIM_BENCH_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CRD_WRITES);
    let ns = "default";
    let cpu_per_write =
        |since: Duration| (cpu_time(pid) - since).as_secs_f64() * 1e3 / writes.max(1) as f64;
    let created: Arc<std::sync::Mutex<Vec<Option<Pod>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; writes]));
    // The pods' owner (the operator's pods belong to their Job).
    let owner: Api<ConfigMap> = Api::namespaced(client(url), ns);
    let owner_uid: Arc<str> = owner
        .create(&PostParams::default(), &configmap("bench-array"))
        .await
        .expect("create the pods' owner")
        .metadata
        .uid
        .expect("uid")
        .into();

    let start = cpu_time(pid);
    let sink = created.clone();
    let create_rate = concurrent_creates(url, writes, move |c, i| {
        let sink = sink.clone();
        let owner_uid = owner_uid.clone();
        Box::pin(async move {
            let api: Api<Pod> = Api::namespaced(c, ns);
            let pp = PostParams {
                field_manager: Some("barge".into()),
                ..Default::default()
            };
            let pod = api
                .create(&pp, &array_pod(&format!("child-{i}"), i, &owner_uid))
                .await
                .expect("create pod");
            sink.lock().expect("pods")[i] = Some(pod);
        })
    })
    .await;
    let create_cpu = cpu_per_write(start);
    let pods: Arc<Vec<Pod>> = Arc::new(
        std::mem::take(&mut *created.lock().expect("pods"))
            .into_iter()
            .map(|p| p.expect("created"))
            .collect(),
    );

    // The kubelet's status patches, rendered by its own code (`PodRun::status_patch`).
    let main = ContainerRef {
        init: false,
        index: 0,
    };
    let status_patches = |finished: bool| {
        let pods = pods.clone();
        move |c: Client, i: usize| -> futures::future::BoxFuture<'static, ()> {
            let pod = &pods[i];
            let now = jiff::Timestamp::now();
            let mut run = PodRun::new(pod, "10.0.0.1");
            run.start_sandbox(now, format!("10.1.{}.{}", i / 250, i % 250));
            run.container_started(main, now);
            if finished {
                let _ =
                    run.container_exited(main, 0, "Completed", None, now, Duration::from_secs(10));
            }
            let patch = run.status_patch(&[]);
            let name = pod.metadata.name.clone().expect("name");
            Box::pin(async move {
                let api: Api<Pod> = Api::namespaced(c, ns);
                let pp = PatchParams {
                    field_manager: Some(barge_sim::kubelet::consts::FIELD_MANAGER.to_string()),
                    ..Default::default()
                };
                api.patch_status(&name, &pp, &Patch::Merge(&patch))
                    .await
                    .expect("status patch");
            })
        }
    };
    let start = cpu_time(pid);
    let running_rate = concurrent_creates(url, writes, status_patches(false)).await;
    let running_cpu = cpu_per_write(start);
    let start = cpu_time(pid);
    let succeeded_rate = concurrent_creates(url, writes, status_patches(true)).await;
    let succeeded_cpu = cpu_per_write(start);

    // The operator's release: test and remove the finalizer, label the pod disposable.
    let start = cpu_time(pid);
    let release_rate = concurrent_creates(url, writes, move |c, i| {
        Box::pin(async move {
            let api: Api<Pod> = Api::namespaced(c, ns);
            let patch: json_patch::Patch = serde_json::from_value(json!([
                {"op": "test", "path": "/metadata/finalizers/0", "value": "batch.barge.dev/attempt-result"},
                {"op": "remove", "path": "/metadata/finalizers/0"},
                {"op": "add", "path": "/metadata/labels/batch.barge.dev~1disposable", "value": "true"},
            ]))
            .expect("json patch");
            api.patch(
                &format!("child-{i}"),
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await
            .expect("release patch");
        })
    })
    .await;
    let release_cpu = cpu_per_write(start);
    println!(
        "pod writes: {create_rate:.0} creates/s, {running_rate:.0} + {succeeded_rate:.0} kubelet status patches/s (running, succeeded), {release_rate:.0} finalizer releases/s ({writes} each, {CLIENTS} concurrent clients)"
    );
    println!(
        "pod writes: server CPU per write: create {create_cpu:.3} ms, kubelet status patch {running_cpu:.3} ms (running) / {succeeded_cpu:.3} ms (succeeded), finalizer release {release_cpu:.3} ms; a child's four writes {:.3} ms",
        create_cpu + running_cpu + succeeded_cpu + release_cpu
    );
}
