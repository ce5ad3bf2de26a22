//! Benchmark of the simulated API server, run as a child process (`barge-sim serve`) so its memory
//! is measured alone. Prints:
//! - creates per second of small objects (ConfigMaps) with 16 concurrent kube-rs clients;
//! - write → watch-event latency (p50/p99) with 100 concurrent watchers;
//! - the server's RSS (VmRSS) empty and holding 100,000 pods (`BARGE_SIM_BENCH_PODS` overrides).
//!
//! `cargo bench -p barge-sim --bench apiserver`

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube::Client;
use serde_json::json;
use tokio::sync::Mutex;

const CLIENTS: usize = 16;
const CREATES: usize = 20_000;
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_barge-sim"))
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
        "barge-sim API server benchmark ({} CPUs)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    let rate = concurrent_creates(&server.url, CREATES, |c, i| {
        Box::pin(async move {
            let api: Api<ConfigMap> = Api::namespaced(c, "default");
            api.create(&PostParams::default(), &configmap(&format!("c-{i}")))
                .await
                .expect("create");
        })
    })
    .await;
    println!("writes: {rate:.0} creates/s ({CREATES} ConfigMaps, {CLIENTS} concurrent clients)");

    let (p50, p99, n) = watch_latency(&server.url).await;
    println!(
        "watch: write→event latency p50 {:.2} ms, p99 {:.2} ms ({WATCHERS} watchers, {n} events)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );

    // Memory: a fresh server, empty then with `pods` pods.
    drop(server);
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
    let _ = pid;
}
