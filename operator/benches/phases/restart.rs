//! `restart`: from an operator's SIGKILL to the new operator's first pod, with many jobs stored
//! (100,000 by default: the issue's condition).
//!
//! 1. A compute environment of [`CE_VCPUS`] whose nodes come up while it is ENABLED, then is
//!    set DISABLED (its nodes stay, nothing new is placed), the queue and the definitions.
//! 2. `BARGE_BENCH_RESTART_FINISHED` (95,000 by default) jobs stored finished: created and
//!    recorded SUCCEEDED through `/status` before the first operator starts (a finished history
//!    without the hours it takes to run it), [`STORE_CONCURRENCY`] at a time.
//! 3. `BARGE_BENCH_RESTART_JOBS` (5,000 by default) single jobs submitted by 16 clients; the
//!    operator admits every one (the `barge_jobs` gauge counts them RUNNABLE).
//! 4. SIGKILL; the environment is ENABLED again while no operator runs; a new operator starts.
//!    Measured from the kill: its caches synced (`/readyz` answers 200, after listing every
//!    kind — the jobs possibly without their finished history), its first pod (the first pod
//!    create the sim receives) and the CPU it used until then.
//! 5. With `BARGE_BENCH_BASELINE_BIN`, the older binary is measured right after on the same
//!    cluster (the environment DISABLED, the new operator SIGKILLed, step 4 again): storing
//!    100,000 jobs twice would double the phase; the baseline pass then reports these figures.
//!    The load average is printed with each figure.
//!
//! The operator lists the unfinished jobs first, so with a long history its first pod should
//! not wait for the history's list. The figure counts for the target table when 100,000 jobs
//! or more are stored.

use std::time::{Duration, Instant};

use futures::StreamExt;

use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;

use barge_crds::{ComputeEnvironment, Job};
use barge_sim::ClusterConfig;

use super::{
    env_number, install_crds, install_definitions, install_queue, job_of, start_operator,
    submit_many, wait_nodes, yaml, Bench, Operator, Outcome, Phase, Row, Sim, CE_VCPUS, DEADLINE,
    NAMESPACE,
};

/// Runs the phase.
pub async fn run(bench: &Bench) -> Outcome {
    if bench.baseline {
        if let Some(old) = lock_baseline().take() {
            println!("== Restart (old binary): measured above, on the new binary's cluster");
            return old;
        }
    }
    let mut outcome = Outcome::new(Phase::Restart);
    let jobs = env_number("BARGE_BENCH_RESTART_JOBS", 5_000);
    let finished = env_number("BARGE_BENCH_RESTART_FINISHED", 95_000);
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
            "  finished history         : {finished} jobs stored SUCCEEDED in {:.1} s (load average {})",
            started.elapsed().as_secs_f64(),
            super::load_average()
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

    let stored = format!("{jobs} queued + {finished} finished");
    let (operator, new) = restart(&sim, operator, bench, &kubeconfig, "restart-2").await;
    outcome.record(&new, jobs + finished, &stored);
    // The baseline binary, on the same stored jobs: placing stops, the new operator goes, the
    // old one restarts from the same SIGKILL. (A few hundred jobs ran in between, of the
    // thousands stored.)
    if let Some(old_bench) = baseline_bench(bench) {
        set_environment(&client, "DISABLED", false).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!("  -- the baseline binary, same cluster and jobs:");
        let (old_operator, old) =
            restart(&sim, operator, &old_bench, &kubeconfig, "restart-2").await;
        let mut old_outcome = Outcome::new(Phase::Restart);
        old_outcome.record(&old, jobs + finished, &stored);
        *lock_baseline() = Some(old_outcome);
        old_operator.kill().await;
    } else {
        operator.kill().await;
    }
    sim.shutdown().await;
    outcome
}

/// What one restart measured, from the SIGKILL.
struct Restarted {
    /// `/readyz` answered 200 (the caches are synced).
    synced_s: f64,
    /// The first pod create reached the API server.
    first_pod_s: f64,
    /// CPU (user + system) the new operator used until its first pod.
    cpu_s: f64,
}

impl Outcome {
    /// Records a restart's figures; the target table's row when 100,000 jobs or more are
    /// stored (the issue's condition).
    fn record(&mut self, r: &Restarted, stored_jobs: u64, stored: &str) {
        self.metric(
            format!("restart ({stored}): caches synced after the kill, s"),
            r.synced_s,
        );
        self.metric(
            format!("restart ({stored}): operator CPU until its first pod, s"),
            r.cpu_s,
        );
        if stored_jobs >= 100_000 {
            self.figure(Row::RestartFirstPod, r.first_pod_s);
        } else {
            self.metric(
                format!("restart ({stored}): first new pod after the kill, s"),
                r.first_pod_s,
            );
        }
    }
}

/// SIGKILLs `running`, enables the compute environment and starts `bench`'s operator; returns
/// it once it created its first pod, with what was measured.
async fn restart(
    sim: &Sim,
    running: Operator,
    bench: &Bench,
    kubeconfig: &std::path::Path,
    name: &str,
) -> (Operator, Restarted) {
    let client = &sim.client;
    running.kill().await;
    let pods_before = sim.stats().count("create", "pods");
    let killed = Instant::now();
    set_environment(client, "ENABLED", false).await;
    let operator = start_operator(bench, kubeconfig, name, &[]);
    let mut synced_s = None;
    let first_pod_s = loop {
        if synced_s.is_none() && ready(&operator).await {
            synced_s = Some(killed.elapsed().as_secs_f64());
        }
        if sim.stats().count("create", "pods") > pods_before {
            break killed.elapsed().as_secs_f64();
        }
        assert!(
            killed.elapsed() < DEADLINE,
            "restart: no pod after {DEADLINE:?}; operator log: {}",
            operator.log.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cpu_s = operator.cpu_seconds();
    let synced_s = synced_s.unwrap_or(first_pod_s);
    println!(
        "  caches synced (lists)    : {synced_s:.2} s after the kill ({} binary)",
        bench.label()
    );
    println!(
        "  first new pod            : {first_pod_s:.2} s after the kill ({} binary; its CPU {cpu_s:.2} s)",
        bench.label()
    );
    println!("  load average             : {}", super::load_average());
    (
        operator,
        Restarted {
            synced_s,
            first_pod_s,
            cpu_s,
        },
    )
}

/// The old binary's figures, measured by the new binary's run on its cluster (the baseline
/// pass returns them instead of storing every job again).
static BASELINE: std::sync::Mutex<Option<Outcome>> = std::sync::Mutex::new(None);

fn lock_baseline() -> std::sync::MutexGuard<'static, Option<Outcome>> {
    BASELINE.lock().unwrap_or_else(|p| p.into_inner())
}

/// `BARGE_BENCH_BASELINE_BIN`'s bench, when the new binary's run should measure it too.
fn baseline_bench(bench: &Bench) -> Option<Bench> {
    if bench.baseline {
        return None;
    }
    let path = std::env::var_os("BARGE_BENCH_BASELINE_BIN").filter(|p| !p.is_empty())?;
    Some(Bench {
        operator_bin: path.into(),
        baseline: true,
        ..Bench::from_env()
    })
}

/// Stores `n` jobs (`h-0`…) finished: each created, then recorded SUCCEEDED through `/status`
/// (no operator runs yet), [`STORE_CONCURRENCY`] jobs at a time.
async fn store_finished(client: &Client, n: u64) {
    let api = Api::<Job>::namespaced(client.clone(), NAMESPACE);
    let status = serde_json::json!({"status": {
        "status": "SUCCEEDED",
        "statusReason": "Essential container in task exited",
        "startedAt": "2026-01-01T00:00:00Z",
        "stoppedAt": "2026-01-01T00:00:01Z",
    }});
    let started = Instant::now();
    let mut done = 0u64;
    let mut stored = futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let status = &status;
            async move {
                let name = format!("h-{i}");
                api.create(&PostParams::default(), &job_of(&name, "zero", ""))
                    .await
                    .expect("finished job");
                api.patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(status.clone()),
                )
                .await
                .expect("finished status");
            }
        })
        .buffer_unordered(STORE_CONCURRENCY);
    while stored.next().await.is_some() {
        done += 1;
        if done.is_multiple_of(20_000) && done < n {
            println!(
                "  finished history         : {done} of {n} after {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
}

/// Jobs of the finished history being stored at once (a create then a `/status` write each).
const STORE_CONCURRENCY: usize = 32;

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
