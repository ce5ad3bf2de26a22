//! `array_latency`: one array of 3,000 children (`BARGE_BENCH_LATENCY_CHILDREN`) on a barge-sim
//! that adds 100 ms to every write (`BARGE_BENCH_WRITE_LATENCY_MS`), as a real API server
//! answers a busy cluster's writes: the latency must not serialize the work (the upstream Job
//! controller manages ~42 pods/s on a real API server here). Printed like the throughput
//! phases: time from submission to SUCCEEDED, children per second, and the operator's API
//! writes per child by kind.

use std::time::{Duration, Instant};

use kube::api::Api;

use barge_crds::{Job, JobStatus};
use barge_sim::ClusterConfig;

use super::{
    env_number, install, print_writes_per, start_operator, submit_array, wait_nodes, Bench,
    OperatorWrites, Outcome, Phase, Row, Sim, CE_VCPUS, DEADLINE, NAMESPACE,
};

/// Runs the phase.
pub async fn run(bench: &Bench) -> Outcome {
    let n = env_number("BARGE_BENCH_LATENCY_CHILDREN", 3_000);
    let latency = Duration::from_millis(env_number("BARGE_BENCH_WRITE_LATENCY_MS", 100));
    let sim = Sim::start(ClusterConfig {
        watch_history: Some(400_000),
        write_latency: latency,
        ..ClusterConfig::default()
    })
    .await;
    let client = sim.client.clone();
    install(&client, 1, None).await;
    let operator = start_operator(bench, sim.cluster.kubeconfig_path(), "ArrayLatency", &[]);
    wait_nodes(&client, (CE_VCPUS / 4) as usize).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sim.cluster.reset_stats();

    let started = Instant::now();
    let jobs: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
    submit_array(&jobs, n).await;
    let done = |j: &Job| j.status.as_ref().and_then(|s| s.status) == Some(JobStatus::Succeeded);
    while !jobs.get("array").await.is_ok_and(|j| done(&j)) {
        assert!(
            started.elapsed() < DEADLINE,
            "array_latency did not finish in {DEADLINE:?}; operator log: {}",
            operator.log.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let elapsed = started.elapsed();
    let stats = sim.stats();
    operator.kill().await;
    sim.shutdown().await;

    let secs = elapsed.as_secs_f64();
    let children = n as f64;
    let w = OperatorWrites::of(&stats);
    println!(
        "== ArrayLatency ({} binary): {n} children, {} ms per write",
        bench.label(),
        latency.as_millis()
    );
    println!("  submission → all SUCCEEDED : {secs:.1} s");
    println!("  children per second        : {:.2}", children / secs);
    print_writes_per("child", children, &stats);
    let mut o = Outcome::new(Phase::ArrayLatency);
    o.figure(Row::LatencyArrayChildrenPerSecond, children / secs);
    o.figure(Row::LatencyArrayWritesPerChild, w.total() as f64 / children);
    o.metric("seconds", secs);
    o.metric("pod deletes per child", w.pod_deletes as f64 / children);
    o
}
