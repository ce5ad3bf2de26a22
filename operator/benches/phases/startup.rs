//! `startup`: the operator starts with `BARGE_BENCH_STARTUP_JOBS` (3,000 by default) jobs
//! waiting, on a barge-sim with kube-apiserver's in-flight limits (400 read-only, 200 mutating;
//! over them, 429 with `Retry-After: 1`) and a 50 ms write latency, as its service account (only
//! `system:masters` is never refused).
//!
//! 1. The compute environment's nodes come up with a first operator (as the cluster admin),
//!    which is then killed; the jobs are submitted while none runs.
//! 2. A new operator starts as `system:serviceaccount:barge-system:barge` (bound to
//!    `cluster-admin`). Measured from its start: the first pod, the time until every job is
//!    admitted (each has a status past SUBMITTED; checked every 0.5 s), and the requests the sim
//!    refused with 429 meanwhile (barge-sim does not time requests out: no 504s).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, ListParams, PostParams};
use kube::Client;

use barge_crds::job::JobStatus;
use barge_crds::Job;
use barge_sim::apiserver::inflight::MaxInFlight;
use barge_sim::ClusterConfig;

use super::{
    env_number, install, start_operator, submit_many, wait_nodes, Bench, Outcome, Phase, Row, Sim,
    CE_VCPUS, DEADLINE, NAMESPACE,
};

/// The operator's user (config/rbac's service account).
const OPERATOR_USER: &str = "system:serviceaccount:barge-system:barge";
/// The write latency of the sim (what the e2e latency tests call realistic).
const WRITE_LATENCY: Duration = Duration::from_millis(50);

/// Runs the phase.
pub async fn run(bench: &Bench) -> Outcome {
    let mut outcome = Outcome::new(Phase::Startup);
    let jobs = env_number("BARGE_BENCH_STARTUP_JOBS", 3_000);
    println!(
        "== Startup ({} binary): {jobs} jobs waiting, in-flight limits 400/200, {} ms writes",
        bench.label(),
        WRITE_LATENCY.as_millis()
    );
    let sim = Sim::start(ClusterConfig {
        watch_history: Some(400_000),
        write_latency: WRITE_LATENCY,
        max_in_flight: MaxInFlight::upstream_defaults(),
        ..ClusterConfig::default()
    })
    .await;
    let client = sim.client.clone();
    install(&client, 1, None).await;
    let admin_kubeconfig = sim.cluster.kubeconfig_path().to_path_buf();
    let first = start_operator(bench, &admin_kubeconfig, "startup-nodes", &[]);
    wait_nodes(&client, (CE_VCPUS / 4) as usize).await;
    first.kill().await;
    bind_cluster_admin(&client).await;
    let submitted = Instant::now();
    submit_many(
        &Api::<Job>::namespaced(client.clone(), NAMESPACE),
        "s",
        "zero",
        jobs,
        None,
    )
    .await;
    println!(
        "  submitted                : {jobs} in {:.1} s",
        submitted.elapsed().as_secs_f64()
    );

    let kubeconfig = std::env::temp_dir().join(format!(
        "barge-bench-startup-{}-{}.kubeconfig",
        bench.label(),
        std::process::id()
    ));
    std::fs::write(&kubeconfig, sim.cluster.kubeconfig_as(OPERATOR_USER, &[]))
        .expect("operator kubeconfig");
    sim.cluster.reset_stats();
    let started = Instant::now();
    let operator = start_operator(bench, &kubeconfig, "startup", &[]);
    let mut first_pod_s = None;
    let mut round = 0u32;
    let admitted_s = loop {
        if first_pod_s.is_none() && pod_count(&client).await > 0 {
            first_pod_s = Some(started.elapsed().as_secs_f64());
        }
        // Listing every job costs the sim: every 10th round (0.5 s).
        round += 1;
        if first_pod_s.is_some() && round.is_multiple_of(10) && all_admitted(&client, jobs).await {
            break started.elapsed().as_secs_f64();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "startup: not every job admitted after {DEADLINE:?}; operator log: {}",
            operator.log.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let first_pod_s = first_pod_s.unwrap_or(admitted_s);
    let stats = sim.stats();
    let refused = stats.throttled as f64;
    println!("  first pod                : {first_pod_s:.2} s after the start");
    println!("  every job admitted       : {admitted_s:.2} s after the start");
    println!(
        "  refused with 429         : {} ({} writes)",
        stats.throttled, stats.throttled_mutating
    );
    println!(
        "  job status writes        : {}",
        stats.count("patch", "jobs/status")
    );
    // Where the operator's requests waited: its client-side throttle, by priority.
    for line in operator
        .scrape(&["barge_kube_api_requests", "barge_kube_api_throttle_wait"])
        .await
    {
        println!("  {line}");
    }
    println!("  load average             : {}", super::load_average());
    outcome.figure(Row::StartupFirstPod, first_pod_s);
    outcome.figure(Row::StartupRefusedWrites, refused);
    outcome.metric("startup: every job admitted, s", admitted_s);
    operator.kill().await;
    let _ = std::fs::remove_file(&kubeconfig);
    sim.shutdown().await;
    outcome
}

/// Binds `cluster-admin` to [`OPERATOR_USER`] (this phase is about load, not permissions).
async fn bind_cluster_admin(client: &Client) {
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "barge-bench-operator"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": OPERATOR_USER}],
    }))
    .expect("binding");
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind cluster-admin");
}

/// Pods in the namespace (at most one is listed).
async fn pod_count(client: &Client) -> usize {
    Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default().limit(1))
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
}

/// Whether all `n` jobs have a status past SUBMITTED on the API server (the operator admitted
/// each one).
async fn all_admitted(client: &Client, n: u64) -> bool {
    let Ok(list) = Api::<Job>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await
    else {
        return false;
    };
    list.items.len() as u64 >= n
        && list.items.iter().all(|j| {
            j.status
                .as_ref()
                .and_then(|s| s.status)
                .is_some_and(|s| s != JobStatus::Submitted)
        })
}
