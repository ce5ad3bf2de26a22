//! The throughput phases, each on a fresh cluster with a fresh operator:
//! 1. `singles`: N single jobs submitted at once (16 concurrent submitters);
//! 2. `array`: one array job of N children;
//! 3. `n_to_n`: two arrays of N children linked N_TO_N (the dependency bookkeeping must stay
//!    O(size));
//! 4. `gangs`: G multi-node (gang) jobs of 8 nodes each, 1 s per node, submitted at once: 12
//!    gangs fit the 100 nodes at a time (one Kubernetes node per job node), so they run in
//!    waves;
//! 5. `fair_share`: N single jobs across 10 share identifiers on a queue with a scheduling
//!    policy (fair share, issue 12), submitted as in phase 1: its jobs per second against
//!    phase 1's FIFO run, and the queue status writes per second that usage
//!    (`status.fairShare`) and the front of the queue (`status.frontOfQueue`) cost.
//!
//! Printed per phase: time from the first submission to the last job (or child) SUCCEEDED, jobs
//! (children) per second, API writes per job by kind (from the sim's request statistics),
//! status writes per second on the parent for arrays, queue status writes per second, the
//! operator process's peak RSS (VmHWM), and CPU time per unit (utime + stime from submission to
//! the end) of the operator process and of the bench process (barge-sim's API server and its
//! kubelet, with the bench's own polling).

use std::time::{Duration, Instant};

use kube::api::{Api, ListParams, PostParams};
use kube::Client;

use barge_crds::{Job, JobStatus};
use barge_sim::StatsSnapshot;

use super::{
    install, job_of, kubelet_writes, print_writes_per, process_cpu_seconds, start_operator,
    submit_array, submit_many, wait_nodes, Bench, OperatorWrites, Outcome, Phase, Row, Sim,
    CE_VCPUS, DEADLINE, NAMESPACE,
};

/// Share identifiers of the fair-share phase (`share-0`…).
const SHARES: u64 = 10;

struct Report {
    phase: Phase,
    units: u64,
    /// Pods per unit: 1, or the nodes of a gang.
    pods_per_unit: u64,
    elapsed: Duration,
    stats: StatsSnapshot,
    peak_rss_kib: u64,
    /// CPU seconds of the operator process from the first submission to the end.
    operator_cpu_s: f64,
    /// CPU seconds of the bench process (barge-sim and its kubelet) over the same time.
    sim_cpu_s: f64,
    /// The operator's own counters at the end (`barge_events_*`, `barge_status_writes*`).
    metrics: Vec<String>,
}

async fn succeeded(client: &Client, phase: Phase, n: u64) -> bool {
    let jobs: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
    let done = |j: &Job| j.status.as_ref().and_then(|s| s.status) == Some(JobStatus::Succeeded);
    match phase {
        Phase::Array => jobs.get("array").await.is_ok_and(|j| done(&j)),
        Phase::NToN => jobs.get("second").await.is_ok_and(|j| done(&j)),
        _ => {
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
    }
}

/// Runs one of the throughput phases (`singles`, `array`, `n_to_n`, `gangs`, `fair_share`).
pub async fn run(phase: Phase, bench: &Bench) -> Outcome {
    let (n, gang_nodes) = match phase {
        Phase::Gangs => (bench.gangs, bench.gang_nodes),
        _ => (bench.jobs, bench.gang_nodes),
    };
    let sim = Sim::start_default().await;
    let client = sim.client.clone();
    let shares = (phase == Phase::FairShare).then_some(SHARES);
    install(&client, gang_nodes, shares).await;
    let operator = start_operator(
        bench,
        sim.cluster.kubeconfig_path(),
        &format!("{phase:?}"),
        &[],
    );
    wait_nodes(&client, (CE_VCPUS / 4) as usize).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sim.cluster.reset_stats();
    let operator_cpu_before = operator.cpu_seconds();
    let sim_cpu_before = process_cpu_seconds(std::process::id());

    let started = Instant::now();
    let jobs: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
    match phase {
        Phase::Gangs => submit_many(&jobs, "gang", "gang", n, None).await,
        Phase::FairShare => submit_many(&jobs, "shared", "zero", n, Some(SHARES)).await,
        Phase::Array => {
            submit_array(&jobs, n).await;
        }
        Phase::NToN => {
            jobs.create(
                &PostParams::default(),
                &job_of(
                    "first",
                    "zero",
                    &format!("  arrayProperties: {{size: {n}}}\n"),
                ),
            )
            .await
            .expect("submit");
            jobs.create(
                &PostParams::default(),
                &job_of(
                    "second",
                    "zero",
                    &format!(
                        "  arrayProperties: {{size: {n}}}\n  dependsOn: [{{jobName: first, type: N_TO_N}}]\n"
                    ),
                ),
            )
            .await
            .expect("submit");
        }
        _ => submit_many(&jobs, "single", "zero", n, None).await,
    }
    let submitted = started.elapsed();
    loop {
        if succeeded(&client, phase, n).await {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{phase:?} did not finish in {DEADLINE:?}; operator log: {}",
            operator.log.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let elapsed = started.elapsed();
    let operator_cpu_s = operator.cpu_seconds() - operator_cpu_before;
    let sim_cpu_s = process_cpu_seconds(std::process::id()) - sim_cpu_before;
    let stats = sim.stats();
    let peak_rss_kib = operator.peak_rss_kib();
    let metrics = operator
        .scrape(&[
            "barge_events_",
            "barge_reconciles_total",
            "barge_status_writes",
            "barge_queue_status_writes",
        ])
        .await;
    eprintln!(
        "{phase:?} ({}): submitted in {submitted:?}, done in {elapsed:?}",
        bench.label()
    );
    operator.kill().await;
    sim.shutdown().await;
    let units = if phase == Phase::NToN { 2 * n } else { n };
    let report = Report {
        phase,
        units,
        pods_per_unit: if phase == Phase::Gangs { gang_nodes } else { 1 },
        elapsed,
        stats,
        peak_rss_kib,
        operator_cpu_s,
        sim_cpu_s,
        metrics,
    };
    print(&report, bench);
    outcome(&report)
}

/// The report's figures: those of the target table for `singles` and `array`.
fn outcome(r: &Report) -> Outcome {
    let units = r.units as f64;
    let operator = OperatorWrites::of(&r.stats);
    let mut o = Outcome::new(r.phase);
    let per_second = units / r.elapsed.as_secs_f64();
    let writes_per_unit = operator.total() as f64 / units;
    match r.phase {
        Phase::Singles => {
            o.figure(Row::SinglesPerSecond, per_second);
            o.figure(Row::WritesPerSingle, writes_per_unit);
        }
        Phase::Array => {
            o.figure(Row::ChildrenPerSecond, per_second);
            o.figure(Row::WritesPerChild, writes_per_unit);
        }
        _ => {
            o.metric("units per second", per_second);
            o.metric("operator writes per unit", writes_per_unit);
        }
    }
    o.metric("seconds", r.elapsed.as_secs_f64());
    o.metric(
        "API writes per unit, all writers",
        r.stats.writes as f64 / units,
    );
    o.metric(
        "job status writes per unit",
        operator.job_status as f64 / units,
    );
    o.metric("events per unit", operator.events as f64 / units);
    o.metric("operator peak RSS, MiB", r.peak_rss_kib as f64 / 1024.0);
    o.metric(
        "operator CPU ms per unit",
        r.operator_cpu_s * 1000.0 / units,
    );
    o.metric(
        "sim + kubelet CPU ms per unit",
        r.sim_cpu_s * 1000.0 / units,
    );
    o
}

fn print(r: &Report, bench: &Bench) {
    let units = r.units as f64;
    let secs = r.elapsed.as_secs_f64();
    let s = &r.stats;
    let w = OperatorWrites::of(s);
    let kubelet = kubelet_writes(s);
    let queue_status = s.count("patch", "jobqueues/status") + s.count("update", "jobqueues/status");
    let job_creates = s.count("create", "jobs");
    println!(
        "== {:?} ({} binary): {} units",
        r.phase,
        bench.label(),
        r.units
    );
    println!("  submission → all SUCCEEDED : {secs:.1} s");
    println!("  units per second           : {:.2}", units / secs);
    print_writes_per("unit", units, s);
    println!("    job submissions          : {job_creates}");
    if r.pods_per_unit > 1 {
        // Gangs: the same writes per node (pod) of a gang, and the headless Services.
        let nodes = units * r.pods_per_unit as f64;
        let services = s.count("create", "services") + s.count("delete", "services");
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
            (w.total() + services) as f64 / nodes,
            w.pod_creates as f64 / nodes,
            w.job_status as f64 / nodes,
            w.pod_patches as f64 / nodes,
            w.pod_deletes as f64 / nodes,
            w.events as f64 / nodes,
            services as f64 / nodes,
        );
        println!(
            "    kubelet pod status       : {:.2}",
            kubelet as f64 / nodes
        );
    }
    println!(
        "  job status writes per s    : {:.1}",
        w.job_status as f64 / secs
    );
    println!(
        "  queue status writes per s  : {:.2} ({queue_status} in all)",
        queue_status as f64 / secs
    );
    println!(
        "  operator peak RSS          : {:.0} MiB",
        r.peak_rss_kib as f64 / 1024.0
    );
    println!(
        "  CPU per unit               : operator {:.3} ms, sim + kubelet {:.3} ms ({:.1} s and {:.1} s in all)",
        r.operator_cpu_s * 1000.0 / units,
        r.sim_cpu_s * 1000.0 / units,
        r.operator_cpu_s,
        r.sim_cpu_s
    );
    println!("  operator counters at the end:");
    for line in &r.metrics {
        println!("    {line}");
    }
}

/// The comparisons between throughput phases of one run (fair share vs FIFO, array vs singles,
/// N_TO_N pair vs one array), for the phases that ran.
pub fn compare(outcomes: &[Outcome]) {
    let of = |phase: Phase| outcomes.iter().find(|o| o.phase == phase);
    let rate = |o: &Outcome| {
        o.get(Row::SinglesPerSecond.label())
            .or_else(|| o.get(Row::ChildrenPerSecond.label()))
            .or_else(|| o.get("units per second"))
            .unwrap_or(0.0)
    };
    let writes = |o: &Outcome| o.get("API writes per unit, all writers").unwrap_or(0.0);
    if let (Some(fifo), Some(fair)) = (of(Phase::Singles), of(Phase::FairShare)) {
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
    println!("== ratios (same run)");
    println!(
        "  array vs singles, time per unit   : {:.2}x (below 1: the array is faster)",
        rate(singles) / rate(array)
    );
    println!(
        "  array vs singles, writes per unit : {:.2}x",
        writes(array) / writes(singles)
    );
    println!(
        "  N_TO_N pair vs one array, time per child: {:.2}x",
        rate(array) / rate(linked)
    );
}
