//! `memory`: what the operator's memory costs per queued and per finished job.
//!
//! 1. Queued: a compute environment with no capacity (`maxvCpus: 0`, so nothing is placeable),
//!    the operator's resident set (VmRSS) once it is idle, then `BARGE_BENCH_QUEUED` (100,000
//!    by default) single jobs submitted by 16 clients; once every one is RUNNABLE (the
//!    operator's `barge_jobs` gauge) and the operator is idle again (its status writes done:
//!    no writes for 3 s), the RSS beyond the empty baseline per job.
//! 2. Finished: a compute environment with room (as the throughput phases), then two rounds of
//!    `BARGE_BENCH_JOBS` single zero-length jobs run to SUCCEEDED; the RSS after each round, once
//!    the finished jobs' retention (`--finished-pod-retention-seconds`, set to 5 s here) has passed.
//!    What a finished job costs for ever is the growth of the second round per job: the first
//!    round's transient memory (requests in flight, reconcile queues) is reused by the second,
//!    and what is freed after the retention is reused too, so a bounded cost shows as ~0.
//!
//! RSS is the allocator's view (glibc does not return every freed page), so the figures are an
//! upper bound on what the caches and the scheduler keep.

use std::time::{Duration, Instant};

use kube::api::Api;
use kube::Client;

use barge_crds::Job;
use barge_sim::ClusterConfig;

use super::{
    env_number, install_compute_environment, install_crds, install_definitions, install_queue,
    start_operator, submit_many, wait_nodes, Bench, Operator, Outcome, Phase, Row, Sim, CE_VCPUS,
    DEADLINE, NAMESPACE,
};

/// The retention of finished jobs' pods the finished-job part runs with.
const RETENTION_SECONDS: u64 = 5;

/// Runs both parts.
pub async fn run(bench: &Bench) -> Outcome {
    let mut outcome = Outcome::new(Phase::Memory);
    let queued = env_number("BARGE_BENCH_QUEUED", 100_000);
    println!(
        "== Memory ({} binary): {queued} queued, 2 × {} finished",
        bench.label(),
        bench.jobs
    );
    queued_part(bench, queued, &mut outcome).await;
    finished_part(bench, bench.jobs, &mut outcome).await;
    outcome
}

/// The summed value of the `barge_jobs` gauge in `state`.
async fn jobs_in_state(operator: &Operator, state: &str) -> u64 {
    let label = format!("state=\"{state}\"");
    operator
        .scrape(&["barge_jobs{"])
        .await
        .iter()
        .filter(|l| l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum::<f64>() as u64
}

/// Waits until the `barge_jobs` gauge counts `n` jobs in `state`.
async fn wait_state(operator: &Operator, state: &str, n: u64, started: Instant) {
    loop {
        if jobs_in_state(operator, state).await >= n {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "memory: fewer than {n} jobs {state} after {DEADLINE:?}; operator log: {}",
            operator.log.display()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Waits until the cluster's writes have stopped (fewer than [`QUIET_WRITES`] in
/// [`QUIET_SPAN`]: a leader lease renewal may fall in it) and returns the writes counted so far.
async fn wait_quiet(sim: &Sim, operator: &Operator, started: Instant) -> u64 {
    let mut last = sim.stats().writes;
    loop {
        tokio::time::sleep(QUIET_SPAN).await;
        let now = sim.stats().writes;
        if now - last < QUIET_WRITES {
            return now;
        }
        last = now;
        assert!(
            started.elapsed() < DEADLINE,
            "memory: the operator still writes after {DEADLINE:?}; operator log: {}",
            operator.log.display()
        );
    }
}

/// The span [`wait_quiet`] watches for writes.
const QUIET_SPAN: Duration = Duration::from_secs(3);

/// Fewer writes than this in [`QUIET_SPAN`] count as quiet.
const QUIET_WRITES: u64 = 5;

/// The operator's RSS once it has settled: the least of a few samples a second apart (a pass
/// or a reconcile in progress holds transient memory).
async fn settled_rss_kib(operator: &Operator) -> u64 {
    let mut least = u64::MAX;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        least = least.min(operator.rss_kib());
    }
    least
}

/// Scheduling passes the operator has run (`barge_scheduler_pass_duration_seconds_count`).
async fn scheduler_passes(operator: &Operator) -> f64 {
    operator
        .scrape(&["barge_scheduler_pass_duration_seconds_count"])
        .await
        .iter()
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

async fn queued_part(bench: &Bench, n: u64, outcome: &mut Outcome) {
    let sim = Sim::start(ClusterConfig {
        watch_history: Some(4 * n as usize + 10_000),
        ..ClusterConfig::default()
    })
    .await;
    let client = sim.client.clone();
    install_crds(&client).await;
    install_compute_environment(&client, 0).await;
    install_queue(&client, None).await;
    install_definitions(&client, bench.gang_nodes).await;
    let operator = start_operator(bench, sim.cluster.kubeconfig_path(), "memory-queued", &[]);
    let empty = settled_rss_kib(&operator).await;
    let started = Instant::now();
    let jobs: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
    submit_many(&jobs, "queued", "zero", n, None).await;
    let submitted = started.elapsed();
    wait_state(&operator, "RUNNABLE", n, started).await;
    let runnable = started.elapsed();
    // RUNNABLE is not idle: each job's `Schedulable=False` condition is written after its
    // RUNNABLE status, and until those writes are done their reconciles and requests hold
    // several KiB each. Measure once the writes have stopped.
    let writes = wait_quiet(&sim, &operator, started).await;
    let quiet = started.elapsed();
    // While the RSS settles the operator only runs scheduling passes over the queued jobs
    // (every 200 ms, paced by their own duration): its CPU then is what a pass costs.
    let (passes_before, cpu_before) = (scheduler_passes(&operator).await, operator.cpu_seconds());
    let full = settled_rss_kib(&operator).await;
    let idle_cpu = operator.cpu_seconds() - cpu_before;
    let passes = scheduler_passes(&operator).await - passes_before;
    let peak = operator.peak_rss_kib();
    operator.kill().await;
    sim.shutdown().await;
    let per_job = full.saturating_sub(empty) as f64 / n as f64;
    println!(
        "  queued: submitted in {submitted:.1?}, all RUNNABLE after {runnable:.1?}, writes done \
         after {quiet:.1?} ({:.2} writes per job, its create included)",
        writes as f64 / n as f64
    );
    println!(
        "  operator RSS, empty       : {:.1} MiB",
        empty as f64 / 1024.0
    );
    println!(
        "  operator RSS, {n} RUNNABLE : {:.1} MiB (peak {:.1} MiB)",
        full as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!("  KiB per queued job        : {per_job:.2}");
    let cpu_per_pass_ms = idle_cpu * 1e3 / passes.max(1.0);
    println!(
        "  idle with {n} RUNNABLE    : {passes:.0} scheduling passes, operator CPU {:.2} s ({cpu_per_pass_ms:.1} ms per pass)",
        idle_cpu
    );
    outcome.figure(Row::KibPerQueuedJob, per_job);
    outcome.metric(
        "operator CPU per scheduling pass once idle, ms",
        cpu_per_pass_ms,
    );
    outcome.metric("RSS empty, MiB", empty as f64 / 1024.0);
    outcome.metric("RSS with the queued jobs, MiB", full as f64 / 1024.0);
    outcome.metric("peak RSS while queueing, MiB", peak as f64 / 1024.0);
}

async fn finished_part(bench: &Bench, n: u64, outcome: &mut Outcome) {
    let sim = Sim::start_default().await;
    let client = sim.client.clone();
    install_crds(&client).await;
    install_compute_environment(&client, CE_VCPUS).await;
    install_queue(&client, None).await;
    install_definitions(&client, bench.gang_nodes).await;
    let retention = RETENTION_SECONDS.to_string();
    let args: &[&str] = if bench.baseline {
        &[]
    } else {
        &["--finished-pod-retention-seconds", &retention]
    };
    let operator = start_operator(
        bench,
        sim.cluster.kubeconfig_path(),
        "memory-finished",
        args,
    );
    wait_nodes(&client, (CE_VCPUS / 4) as usize).await;
    let empty = settled_rss_kib(&operator).await;
    let mut after = Vec::new();
    for round in 0..2u64 {
        let started = Instant::now();
        let jobs: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
        submit_many(&jobs, &format!("finished{round}"), "zero", n, None).await;
        wait_state(&operator, "SUCCEEDED", (round + 1) * n, started).await;
        tokio::time::sleep(Duration::from_secs(RETENTION_SECONDS + 5)).await;
        wait_pods_gone(&client, &operator, bench.baseline, started).await;
        after.push(settled_rss_kib(&operator).await);
    }
    let peak = operator.peak_rss_kib();
    operator.kill().await;
    sim.shutdown().await;
    let first = after[0].saturating_sub(empty) as f64 / n as f64;
    let second = after[1].saturating_sub(after[0]) as f64 / n as f64;
    println!(
        "  operator RSS, empty       : {:.1} MiB",
        empty as f64 / 1024.0
    );
    println!(
        "  after {n} finished        : {:.1} MiB ({first:.2} KiB per job, transient included)",
        after[0] as f64 / 1024.0
    );
    println!(
        "  after {} finished       : {:.1} MiB (peak {:.1} MiB)",
        2 * n,
        after[1] as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!("  KiB per finished job      : {second:.2} (growth of the second round)");
    outcome.figure(Row::KibPerFinishedJob, second);
    outcome.metric("KiB per finished job, first round", first);
    outcome.metric("RSS after both rounds, MiB", after[1] as f64 / 1024.0);
}

/// With a retention (the new binary), waits until the finished jobs' pods are deleted.
async fn wait_pods_gone(client: &Client, operator: &Operator, baseline: bool, started: Instant) {
    if baseline {
        return;
    }
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), NAMESPACE);
    loop {
        let left = pods
            .list_metadata(&kube::api::ListParams::default().limit(1))
            .await
            .map(|l| l.items.len())
            .unwrap_or(1);
        if left == 0 {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "memory: finished pods not deleted after their retention; operator log: {}",
            operator.log.display()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
