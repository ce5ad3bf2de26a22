//! Benchmark: a scripted kubelet driving many pods through Pending → Running → Succeeded
//! against the in-process sim API server. Two phases:
//! - `stream`: pods are created (16 clients) while the kubelet runs: the pace is set by
//!   creation;
//! - `backlog`: the pods exist (bound to nodes that do not exist yet) before their nodes are
//!   created: the pace is the kubelet's own (admission, status writes) on the shared server.
//!
//! `cargo bench -p barge-sim --bench kubelet_scripted` (env `BARGE_BENCH_PODS`, default
//! 10,000; `BARGE_BENCH_NODES`, default 100; `BARGE_BENCH_DURATION`, seconds each pod runs,
//! default 1; `BARGE_BENCH_WRITES`, the kubelet's concurrent writes; `BARGE_BENCH_PHASES`,
//! default `stream,backlog`). Prints pods/s and the
//! API writes per pod (the kubelet's own count and the server's).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use barge_sim::kubelet::{Kubelet, KubeletConfig, KubeletHandle, RuntimeKind};
use barge_sim::{Cluster, ClusterConfig};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use serde_json::json;

type BoxError = Box<dyn std::error::Error>;

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Params {
    pods: usize,
    nodes: usize,
    duration: f64,
}

async fn create_nodes(client: &Client, prefix: &str, p: &Params) -> Result<(), BoxError> {
    let api: Api<Node> = Api::all(client.clone());
    let per_node = p.pods.div_ceil(p.nodes) + 1;
    for i in 0..p.nodes {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": format!("{prefix}-{i}"), "labels": {"sim.barge.dev/simulated": "true"},
                "annotations": {"sim.barge.dev/capacity": json!({"cpu": "1000", "memory": "4000Gi", "pods": per_node.to_string()}).to_string()}},
        }))?;
        api.create(&PostParams::default(), &node).await?;
    }
    Ok(())
}

async fn create_pods(
    client: &Client,
    ns: &str,
    prefix: &str,
    p: &Params,
) -> Result<Duration, BoxError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let annotations = json!({"sim.barge.dev/duration-seconds": p.duration.to_string(), "sim.barge.dev/exit-code": "0"});
    let begun = Instant::now();
    futures::stream::iter(0..p.pods)
        .map(|i| {
            let api = api.clone();
            let body = json!({"metadata": {"name": format!("p-{i}"), "annotations": annotations}, "spec": {
                "restartPolicy": "Never", "nodeName": format!("{prefix}-{}", i % p.nodes),
                "containers": [{"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}],
            }});
            async move {
                let pod: Pod = serde_json::from_value(body)?;
                api.create(&PostParams::default(), &pod).await?;
                Ok::<_, BoxError>(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(begun.elapsed())
}

/// Watches a namespace; resolves once `n` pods have Succeeded, with how many were seen Running.
fn count_succeeded(client: &Client, ns: &str, n: usize) -> tokio::task::JoinHandle<usize> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    tokio::spawn(async move {
        let mut running = HashSet::new();
        let mut succeeded = HashSet::new();
        let mut stream = std::pin::pin!(watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects());
        while let Ok(Some(p)) = stream.try_next().await {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
                Some("Running") => {
                    running.insert(uid);
                }
                Some("Succeeded") => {
                    succeeded.insert(uid);
                    if succeeded.len() >= n {
                        break;
                    }
                }
                _ => {}
            }
        }
        running.len()
    })
}

async fn report(
    phase: &str,
    p: &Params,
    cluster: &Cluster,
    kubelet: &KubeletHandle,
    begun: Instant,
    done: tokio::task::JoinHandle<usize>,
) -> Result<(), BoxError> {
    let running = tokio::time::timeout(Duration::from_secs(600), done)
        .await
        .map_err(|_| format!("{phase}: pods did not all succeed in time"))??;
    let total = begun.elapsed();
    let after = kubelet.stats();
    let server = cluster.stats();
    let n = p.pods as f64;
    let pod_writes = after.pod_writes();
    println!(
        "  {phase}: all {} Succeeded after {:.2} s: {:.0} pods/s (seen Running: {running})",
        p.pods,
        total.as_secs_f64(),
        n / total.as_secs_f64()
    );
    println!(
        "    kubelet pod writes {pod_writes} ({:.2}/pod), pod watch lists {}; server write requests {} ({:.2}/pod incl. creates), pods/status patches {}",
        pod_writes as f64 / n,
        after.pod_relists,
        server.writes,
        server.writes as f64 / n,
        server.count("patch", "pods/status"),
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let p = Params {
        pods: env_num("BARGE_BENCH_PODS", 10_000.0) as usize,
        nodes: env_num("BARGE_BENCH_NODES", 100.0).max(1.0) as usize,
        duration: env_num("BARGE_BENCH_DURATION", 1.0),
    };
    let writes = env_num(
        "BARGE_BENCH_WRITES",
        KubeletConfig::default().max_concurrent_writes as f64,
    ) as usize;
    println!(
        "kubelet_scripted: {} pods on {} nodes, {} s each, {writes} concurrent kubelet writes",
        p.pods, p.nodes, p.duration
    );

    let phases = std::env::var("BARGE_BENCH_PHASES").unwrap_or_else(|_| "stream,backlog".into());
    for phase in phases
        .split(',')
        .filter(|p| ["stream", "backlog"].contains(p))
    {
        let cluster = Cluster::start(ClusterConfig {
            watch_history: Some(200_000),
            ..Default::default()
        })
        .await?;
        let client = cluster.client()?;
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": phase}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        let kubelet = Kubelet::start(
            client.clone(),
            KubeletConfig {
                runtime: RuntimeKind::Scripted,
                max_concurrent_writes: writes,
                ..Default::default()
            },
        )
        .await?;
        let done = count_succeeded(&client, phase, p.pods);
        if phase == "stream" {
            create_nodes(&client, phase, &p).await?;
            cluster.reset_stats();
            let begun = Instant::now();
            let created = create_pods(&client, phase, phase, &p).await?;
            println!(
                "  stream: created in {:.2} s ({:.0} creates/s)",
                created.as_secs_f64(),
                p.pods as f64 / created.as_secs_f64()
            );
            report(phase, &p, &cluster, &kubelet, begun, done).await?;
        } else {
            create_pods(&client, phase, phase, &p).await?;
            cluster.reset_stats();
            let begun = Instant::now();
            create_nodes(&client, phase, &p).await?;
            report(phase, &p, &cluster, &kubelet, begun, done).await?;
        }
        kubelet.shutdown().await;
        cluster.shutdown().await;
    }
    Ok(())
}
