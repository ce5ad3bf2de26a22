//! End-to-end: the promises that latency and races used to break (issue 9, items 0–2), through
//! the real `barge` binary:
//! - a child of an array that has SUCCEEDED never runs again, whatever the API latency (arrays
//!   of 3,000 with 300 ms on every request, under each `--array-pod-retention` mode);
//! - a retried job is first in line for the capacity its own failed attempt frees (20 copies at
//!   once, each on a one-node environment with a later job waiting for that node);
//! - jobs applied together run in the order the API server stored them, not by name, also
//!   after an operator restart.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use barge_crds::job::JobStatus;
use barge_sim::FaultConfig;
use kube::ResourceExt;

use support::{
    compute_environment, compute_environment_of, fixed_pool_and_queue, job, job_definition,
    job_queue, scripted_tags, status_of, trace_spans, traced, E2e, Options, GATE,
};

/// Children per array in the latency scenario.
const ARRAY_SIZE: usize = 3_000;
/// Injected latency of every API request in the latency scenario (a busy real API server's
/// write latency was measured at 74–134 ms p50).
const LATENCY_MS: u64 = 300;
/// Longest wait for the array of 3,000 at that latency.
const ARRAY_WAIT: Duration = Duration::from_secs(900);

/// Nodes of the latency scenario's environment: 28 c5.9xlarge of 110 pods each, room for every
/// child of the array at once (so one reconcile meets a thousand finished children at a time).
const BIG_NODES: usize = 28;

/// An array of 3,000 zero-second children, all placeable at once, with 300 ms on every API
/// request and the operator's default intervals: every child's pod is created exactly once (one
/// uid per pod name: no second pod after a child SUCCEEDED and its pod was deleted, and no
/// create refused as AlreadyExists).
async fn array_children_run_once_at_latency(retention: &str) {
    let env = E2e::start_with(
        &format!("once-{retention}"),
        Options::scripted()
            .flag(&format!("--array-pod-retention={retention}"))
            .flag("--status-coalesce-ms=1000")
            .flag("--scheduler-interval-ms=1000"),
    )
    .await;
    env.apply(&format!(
        "{}{}",
        compute_environment_of("ce", BIG_NODES * 36, "c5.9xlarge"),
        job_queue("q", 10, &["ce"])
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", BIG_NODES).await;
    env.apply(&job_definition("zero", "true", &[], "0.25", ""))
        .await;
    let uids = env.watch_pod_uids();
    if let Some(sim) = env.sim_cluster() {
        sim.reset_stats();
        sim.faults().set(FaultConfig {
            latency_ms: LATENCY_MS,
            ..Default::default()
        });
    }
    env.apply(&job(
        "big",
        "q",
        "zero",
        &format!(
            "arrayProperties: {{size: {ARRAY_SIZE}}}\n{}",
            scripted_tags("0", 0)
        ),
    ))
    .await;
    let done = env
        .wait_until_for("the array of 3,000 to finish", ARRAY_WAIT, || async {
            env.jobs()
                .get_opt("big")
                .await
                .ok()
                .flatten()
                .filter(|j| status_of(j).is_some_and(JobStatus::is_finished))
        })
        .await;
    let pod_creates = env.sim_cluster().map(|sim| {
        sim.faults().clear();
        sim.stats().count("create", "pods")
    });
    assert_eq!(
        status_of(&done),
        Some(JobStatus::Succeeded),
        "{:#?}",
        done.status
    );
    // The watch may trail the job's status: wait until it has seen a pod of every child.
    let seen = env
        .wait_until("the pod watch to have seen every child", || async {
            let seen = uids.snapshot();
            (seen.len() >= ARRAY_SIZE).then_some(seen)
        })
        .await;
    let twice: BTreeMap<&String, usize> = seen
        .iter()
        .filter(|(_, uids)| uids.len() > 1)
        .map(|(name, uids)| (name, uids.len()))
        .collect();
    assert!(
        twice.is_empty(),
        "{} children ran more than once (retention {retention}): {:?}",
        twice.len(),
        twice.iter().take(20).collect::<Vec<_>>()
    );
    assert_eq!(
        seen.len(),
        ARRAY_SIZE,
        "one pod name per child: {:?}",
        seen.keys()
            .filter(|n| !n.starts_with("big-1-"))
            .collect::<Vec<_>>()
    );
    // No create is wasted on a pod that exists already (AlreadyExists) either.
    if let Some(creates) = pod_creates {
        eprintln!("retention {retention}: {creates} pod creates for {ARRAY_SIZE} children");
        assert_eq!(
            creates, ARRAY_SIZE as u64,
            "one pod create per child (retention {retention})"
        );
    }
    // Pods go once, as the retention mode says, in batches: the operator deletes the released
    // children's pods by collection (job uid and the disposable label), never one by one; the
    // kubelet sends no delete (a finished pod needs no graceful termination).
    if let Some(sim) = env.sim_cluster() {
        let kept = if retention == "all" { ARRAY_SIZE } else { 0 };
        let pods = env.pods();
        env.wait_until_for("the pods the retention mode keeps", ARRAY_WAIT, || async {
            let left = pods.list(&Default::default()).await.ok()?.items.len();
            (left == kept).then_some(())
        })
        .await;
        let deletes = sim.stats().count("delete", "pods");
        let batches = sim.stats().count("deletecollection", "pods");
        eprintln!(
            "retention {retention}: {deletes} pod deletes, {batches} batched deletes, {kept} pods kept"
        );
        assert_eq!(deletes, 0, "no pod deleted alone (retention {retention})");
        let removed = (ARRAY_SIZE - kept) as u64;
        assert!(
            batches <= removed / 10,
            "{batches} batched deletes for {removed} pods (retention {retention})"
        );
        if removed > 0 {
            assert!(batches > 0, "the pods went by batched deletes");
        }
    }
    env.finish().await;
}

/// The three `--array-pod-retention` modes at once (each its own cluster and operator), so the
/// scenario costs the suite the time of one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn array_children_run_once_at_latency_in_every_retention_mode() {
    futures::join!(
        array_children_run_once_at_latency("none"),
        array_children_run_once_at_latency("failed"),
        array_children_run_once_at_latency("all"),
    );
}

/// Copies of the retry scenario run at once (each its own one-node environment and queue).
const COPIES: usize = 20;

/// Each copy: `r` holds the only node of its environment, `l` is submitted after it and waits;
/// `r`'s first attempt then fails. Its second attempt must take the node before `l`.
#[tokio::test]
async fn a_retried_job_is_first_in_line_for_the_capacity_its_attempt_frees() {
    let env = E2e::start("retryfirst").await;
    let mut setup = String::new();
    for i in 0..COPIES {
        setup.push_str(&compute_environment(&format!("ce{i}"), 2));
        setup.push_str(&job_queue(&format!("q{i}"), 10, &[&format!("ce{i}")]));
    }
    env.apply(&setup).await;
    for i in 0..COPIES {
        env.wait_compute_environment(&format!("${{NS}}-ce{i}"), 1)
            .await;
    }
    // Attempt 1 holds its node until the gate opens, then fails; attempt 2 succeeds.
    env.apply(&job_definition(
        "flaky",
        &traced(
            "$0-$AWS_BATCH_JOB_ATTEMPT",
            &format!("if [ \"$AWS_BATCH_JOB_ATTEMPT\" = 1 ]; then {GATE}; exit 1; fi"),
        ),
        &["Ref::label"],
        "2",
        "retryStrategy: {attempts: 2}\n",
    ))
    .await;
    env.apply(&job_definition(
        "plain",
        &traced("$0", "true"),
        &["Ref::label"],
        "2",
        "",
    ))
    .await;
    let mut retried = String::new();
    for i in 0..COPIES {
        retried.push_str(&job(
            &format!("r{i}"),
            &format!("q{i}"),
            "flaky",
            &format!("parameters: {{label: r{i}}}\n"),
        ));
    }
    env.apply(&retried).await;
    for i in 0..COPIES {
        env.wait_job_reached(&format!("r{i}"), JobStatus::Running)
            .await;
    }
    let mut later = String::new();
    for i in 0..COPIES {
        later.push_str(&job(
            &format!("l{i}"),
            &format!("q{i}"),
            "plain",
            &format!("parameters: {{label: l{i}}}\n"),
        ));
    }
    env.apply(&later).await;
    for i in 0..COPIES {
        env.wait_job_reached(&format!("l{i}"), JobStatus::Runnable)
            .await;
    }
    env.open_gate();
    for i in 0..COPIES {
        env.wait_job(&format!("r{i}"), JobStatus::Succeeded).await;
        env.wait_job(&format!("l{i}"), JobStatus::Succeeded).await;
    }
    let spans = trace_spans(&env.trace());
    let mut overtaken = Vec::new();
    for i in 0..COPIES {
        let second = spans
            .get(&format!("r{i}-2"))
            .and_then(|s| s.0)
            .unwrap_or_else(|| panic!("r{i}'s second attempt started: {spans:?}"));
        let later = spans
            .get(&format!("l{i}"))
            .and_then(|s| s.0)
            .unwrap_or_else(|| panic!("l{i} started: {spans:?}"));
        if later < second {
            overtaken.push(i);
        }
    }
    assert!(
        overtaken.is_empty(),
        "a later job took the node before the retried job in copies {overtaken:?} of {COPIES}"
    );
    env.finish().await;
}

/// Jobs applied together in one burst (one second of `creationTimestamp`), named so that
/// alphabetical order is not creation order, run one at a time in creation order — also when
/// the operator restarts between their submission and their run.
#[tokio::test]
async fn jobs_applied_together_run_in_the_order_the_api_server_stored_them() {
    const JOBS: usize = 20;
    let mut env = E2e::start("fifo").await;
    fixed_pool_and_queue(&env, 2).await;
    env.apply(&job_definition(
        "hold",
        &traced("$0", GATE),
        &["Ref::label"],
        "2",
        "",
    ))
    .await;
    env.apply(&job_definition(
        "step",
        &traced("$0", "true"),
        &["Ref::label"],
        "2",
        "",
    ))
    .await;
    env.apply(&job(
        "blocker",
        "q",
        "hold",
        "parameters: {label: blocker}\n",
    ))
    .await;
    env.wait_job_reached("blocker", JobStatus::Running).await;
    // A fixed shuffle: neither alphabetical nor reverse-alphabetical.
    let names: Vec<String> = (0..JOBS)
        .map(|i| format!("job-{:02}", (i * 7 + 3) % JOBS))
        .collect();
    let burst: String = names
        .iter()
        .map(|n| job(n, "q", "step", &format!("parameters: {{label: {n}}}\n")))
        .collect();
    env.apply(&burst).await;
    for name in &names {
        env.wait_job_reached(name, JobStatus::Runnable).await;
    }
    // A restart: the new operator must know the order from the API objects alone.
    env.restart_operator();
    env.open_gate();
    for name in &names {
        env.wait_job(name, JobStatus::Succeeded).await;
    }
    let spans = trace_spans(&env.trace());
    let mut ran: Vec<(u128, String)> = names
        .iter()
        .map(|n| {
            let start = spans
                .get(n)
                .and_then(|s| s.0)
                .unwrap_or_else(|| panic!("{n} started: {spans:?}"));
            (start, n.clone())
        })
        .collect();
    ran.sort();
    let ran: Vec<String> = ran.into_iter().map(|(_, n)| n).collect();
    let jobs = env.jobs();
    let mut created = Vec::new();
    for name in &names {
        let job = jobs.get(name).await.expect("job");
        created.push(job.creation_timestamp().map(|t| t.0.to_string()));
    }
    assert_eq!(
        ran, names,
        "run order is creation order (creation timestamps: {created:?})"
    );
    env.finish().await;
}
