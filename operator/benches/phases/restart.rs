//! `restart`: from an operator's SIGKILL to the new operator's first pod, with many jobs stored.
//!
//! 1. A compute environment of [`CE_VCPUS`] whose nodes come up while it is ENABLED, then is
//!    set DISABLED (its nodes stay, nothing new is placed), the queue and the definitions.
//! 2. `BARGE_BENCH_RESTART_JOBS` (100,000 by default) single jobs submitted by 16 clients; the
//!    operator admits every one (the `barge_jobs` gauge counts them RUNNABLE).
//! 3. SIGKILL; the environment is ENABLED again while no operator runs; a new operator starts.
//!    Measured from the kill: its caches synced (`/readyz` answers 200, after listing every
//!    kind — the jobs possibly without their finished history) and its first pod (the sim's
//!    pod count).
//!
//! `BARGE_BENCH_RESTART_FINISHED` (0 by default) jobs are stored finished besides: created and
//! recorded SUCCEEDED through `/status` before the first operator starts (a finished history
//! without the hours it takes to run it). The operator lists the unfinished jobs first, so
//! with a long history its first pod should not wait for the history's list.

use std::time::{Duration, Instant};

use futures::StreamExt;

use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::Client;

use barge_crds::{ComputeEnvironment, Job};
use barge_sim::ClusterConfig;

use super::{
    env_number, install_crds, install_definitions, install_queue, start_operator, submit_many,
    wait_nodes, yaml, Bench, Operator, Outcome, Phase, Row, Sim, CE_VCPUS, DEADLINE, NAMESPACE,
};

/// Runs the phase.
pub async fn run(bench: &Bench) -> Outcome {
    let mut outcome = Outcome::new(Phase::Restart);
    let jobs = env_number("BARGE_BENCH_RESTART_JOBS", 100_000);
    let finished = env_number("BARGE_BENCH_RESTART_FINISHED", 0);
    println!(
        "== Restart ({} binary): SIGKILL → first new pod, {jobs} queued and {finished} finished jobs stored",
        bench.label()
    );
    let sim = Sim::start(ClusterConfig {
        watch_history: Some((jobs + finished) as usize * 4 + 100_000),
        ..ClusterConfig::default()
    })
    .await;
    let client = sim.client.clone();
    install_crds(&client).await;
    set_environment(&client, "ENABLED", true).await;
    install_queue(&client, None).await;
    install_definitions(&client, 1).await;
    if finished > 0 {
        let started = Instant::now();
        store_finished(&client, finished).await;
        println!(
            "  finished history         : {finished} jobs stored SUCCEEDED in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let kubeconfig = sim.cluster.kubeconfig_path().to_path_buf();
    let operator = start_operator(bench, &kubeconfig, "restart", &[]);
    wait_nodes(&client, (CE_VCPUS / 4) as usize).await;
    set_environment(&client, "DISABLED", false).await;

    let submitted = Instant::now();
    submit_many(
        &Api::<Job>::namespaced(client.clone(), NAMESPACE),
        "r",
        "zero",
        jobs,
        None,
    )
    .await;
    let submit_s = submitted.elapsed().as_secs_f64();
    wait_runnable(&operator, jobs, submitted).await;
    println!(
        "  submitted                : {jobs} in {submit_s:.1} s, all RUNNABLE after {:.1} s",
        submitted.elapsed().as_secs_f64()
    );
    assert_eq!(
        pod_count(&client).await,
        0,
        "restart: nothing ran before the kill"
    );

    operator.kill().await;
    let killed = Instant::now();
    set_environment(&client, "ENABLED", false).await;
    let operator = start_operator(bench, &kubeconfig, "restart-2", &[]);
    let mut synced_s = None;
    let first_pod_s = loop {
        if synced_s.is_none() && ready(&operator).await {
            synced_s = Some(killed.elapsed().as_secs_f64());
        }
        if pod_count(&client).await > 0 {
            break killed.elapsed().as_secs_f64();
        }
        assert!(
            killed.elapsed() < DEADLINE,
            "restart: no pod after {DEADLINE:?}; operator log: {}",
            operator.log.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let synced_s = synced_s.unwrap_or(first_pod_s);
    println!("  caches synced (lists)    : {synced_s:.2} s after the kill");
    println!("  first new pod            : {first_pod_s:.2} s after the kill");
    println!("  load average             : {}", super::load_average());
    if finished == 0 {
        outcome.metric("restart: caches synced after the kill, s", synced_s);
        outcome.figure(Row::RestartFirstPod, first_pod_s);
    } else {
        let stored = format!("{jobs} queued + {finished} finished");
        outcome.metric(
            format!("restart ({stored}): caches synced after the kill, s"),
            synced_s,
        );
        outcome.metric(
            format!("restart ({stored}): first new pod after the kill, s"),
            first_pod_s,
        );
    }
    operator.kill().await;
    sim.shutdown().await;
    outcome
}

/// Stores `n` jobs (`h-0`…) finished: created, then recorded SUCCEEDED through `/status` (no
/// operator runs yet), 16 clients at a time.
async fn store_finished(client: &Client, n: u64) {
    let api = Api::<Job>::namespaced(client.clone(), NAMESPACE);
    submit_many(&api, "h", "zero", n, None).await;
    let status = serde_json::json!({"status": {
        "status": "SUCCEEDED",
        "statusReason": "Essential container in task exited",
        "startedAt": "2026-01-01T00:00:00Z",
        "stoppedAt": "2026-01-01T00:00:01Z",
    }});
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let status = status.clone();
            async move {
                api.patch_status(
                    &format!("h-{i}"),
                    &PatchParams::default(),
                    &Patch::Merge(status),
                )
                .await
                .expect("finished status")
            }
        })
        .buffer_unordered(super::SUBMITTERS)
        .collect::<Vec<_>>()
        .await;
}

/// Creates (first call) or sets the state of the compute environment `bench`.
async fn set_environment(client: &Client, state: &str, create: bool) {
    let api = Api::<ComputeEnvironment>::all(client.clone());
    if create {
        let ce: ComputeEnvironment = yaml(&format!(
            "apiVersion: batch.barge.dev/v1alpha1\nkind: ComputeEnvironment\nmetadata: {{name: bench}}\nspec:\n  type: MANAGED\n  state: {state}\n  computeResources: {{type: EC2, minvCpus: 0, maxvCpus: {CE_VCPUS}, desiredvCpus: {CE_VCPUS}, instanceTypes: [m5.xlarge], provider: {{simulated: {{}}}}}}\n"
        ));
        api.create(&Default::default(), &ce).await.expect("ce");
        return;
    }
    api.patch(
        "bench",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"state": state}})),
    )
    .await
    .expect("ce state");
}

/// Pods in the namespace (at most one is listed).
async fn pod_count(client: &Client) -> usize {
    Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default().limit(1))
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
}

/// Whether the operator's `/readyz` answers 200 (its caches are synced).
async fn ready(operator: &Operator) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", operator.metrics_port)).await
    else {
        return false;
    };
    let request = "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response.starts_with("HTTP/1.1 200")
}

/// Waits until the operator's `barge_jobs` gauge counts `n` jobs RUNNABLE.
async fn wait_runnable(operator: &Operator, n: u64, started: Instant) {
    loop {
        let runnable: f64 = operator
            .scrape(&["barge_jobs{"])
            .await
            .iter()
            .filter(|l| l.contains("state=\"RUNNABLE\""))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum();
        if runnable as u64 >= n {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "restart: {runnable} of {n} jobs RUNNABLE after {DEADLINE:?}; operator log: {}",
            operator.log.display()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
