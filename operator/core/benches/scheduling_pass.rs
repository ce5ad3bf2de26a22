//! Benchmarks of Barge's pure decisions (run with `cargo bench -p barge-core`).
//!
//! 1. The scheduling pass: 10k, 25k, 50k and 100k RUNNABLE single jobs over 1,000 nodes in 5
//!    compute environments shared by 20 queues (mixed requests, some GPU and instance-type
//!    constraints, nodes partly used by foreign pods); median of several runs, and the growth
//!    ratio 100k/10k.
//!    Then the placement-heavy case: 100k jobs on 1,000 nodes of 96 vCPUs (tens of thousands of
//!    placements, so the best-fit search itself is measured).
//! 2. A pass with a 10,000-child array among 10,000 single jobs.
//! 3. Array bookkeeping: N_TO_N readiness of an array of 10,000 linked to another of 10,000
//!    (worst-case fragmented progress), and a full `job::reconcile` of such an array with 1,000
//!    live pods; nanoseconds per child.
//!
//! Only std: `Instant` and `black_box`. Inputs are generated deterministically (xorshift).

use barge_core::deps::{self, Dependency, DependencyTarget, DependencyTargets};
use barge_core::fixtures::{self as fx, attempt_pod, T0};
use barge_core::index_set::IndexSet;
use barge_core::job;
use barge_core::resources::Resources;
use barge_core::scheduler::{self, Constraints, JobKey, Snapshot, Units, Workload};
use barge_core::state::JobState;
use std::hint::black_box;

mod common;
use common::{cluster, make_roomy, ms, single_jobs, time, Rng, ENVIRONMENTS, NODES, QUEUES};

fn bench_pass() {
    println!(
        "scheduling pass: {NODES} nodes, {ENVIRONMENTS} compute environments, {QUEUES} queues"
    );
    println!(
        "{:>10} {:>12} {:>12} {:>11} {:>11}",
        "jobs", "median ms", "min ms", "placements", "memo hits"
    );
    let mut medians = Vec::new();
    for &count in &[10_000usize, 25_000, 50_000, 100_000] {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (queues, environments, nodes) = cluster(&mut rng);
        let snapshot = Snapshot {
            queues,
            environments,
            nodes,
            workloads: single_jobs(&mut rng, count),
        };
        let result = scheduler::schedule(&snapshot);
        let (med, min) = time(9, || scheduler::schedule(black_box(&snapshot)));
        println!(
            "{count:>10} {:>12.2} {:>12.2} {:>11} {:>11}",
            ms(med),
            ms(min),
            result.placements.len(),
            result.stats.memo_hits
        );
        medians.push(med);
    }
    if let (Some(first), Some(last)) = (medians.first(), medians.last()) {
        println!(
            "growth 100k/10k: {:.2}x for 10x the jobs",
            last.as_secs_f64() / first.as_secs_f64().max(1e-12)
        );
    }
}

/// The placement-heavy case: the same 100,000 jobs on 1,000 large nodes (96 vCPUs, 384 GiB),
/// so that tens of thousands of units are actually placed.
fn bench_roomy_pass() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (queues, environments, mut nodes) = cluster(&mut rng);
    make_roomy(&mut nodes);
    let snapshot = Snapshot {
        queues,
        environments,
        nodes,
        workloads: single_jobs(&mut rng, 100_000),
    };
    let result = scheduler::schedule(&snapshot);
    let (med, min) = time(5, || scheduler::schedule(black_box(&snapshot)));
    println!(
        "placement-heavy: 100000 jobs on 1000 nodes of 96 vCPUs: median {:.2} ms (min {:.2} ms), {} placements",
        ms(med),
        ms(min),
        result.placements.len()
    );
}

fn bench_array_pass() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (queues, environments, nodes) = cluster(&mut rng);
    let mut workloads = single_jobs(&mut rng, 10_000);
    workloads.push(Workload {
        job: JobKey::new("bench", "array-10k"),
        // A priority-3 queue: the array competes with the other jobs of the top queues.
        queue: "queue-03".into(),
        retried: false,
        submitted_at_ms: T0,
        submission_order: 0,
        attempt: 1,
        request: Resources::request(1000, 1024, 0),
        constraints: Constraints::default(),
        units: Units::Array(IndexSet::all(10_000)),
        share: None,
        priority: 0,
    });
    let snapshot = Snapshot {
        queues,
        environments,
        nodes,
        workloads,
    };
    let result = scheduler::schedule(&snapshot);
    let array_placed = result.verdicts.last().map_or(0, |v| v.placed);
    let (med, min) = time(9, || scheduler::schedule(black_box(&snapshot)));
    println!();
    println!(
        "pass with a 10,000-child array + 10,000 single jobs: median {:.2} ms (min {:.2} ms), {} placements ({} children)",
        ms(med),
        ms(min),
        result.placements.len(),
        array_placed
    );
}

fn bench_n_to_n() {
    let size = 10_000u32;
    // Worst case for range lists: every other child of A succeeded, every fourth failed.
    let succeeded: IndexSet = (0..size).step_by(2).collect();
    let failed: IndexSet = (1..size).step_by(4).collect();
    let mut targets = DependencyTargets::new();
    targets.insert(
        "a".to_string(),
        DependencyTarget::array(JobState::Running, size, succeeded.clone(), failed.clone()),
    );
    let own_succeeded: IndexSet = (0..size).step_by(3).collect();
    let deps_list = [Dependency::n_to_n("a")];
    let (med, _) = time(51, || {
        deps::evaluate_array(
            "b",
            size,
            &deps_list,
            &targets,
            &own_succeeded,
            &IndexSet::new(),
        )
    });
    println!();
    println!("array bookkeeping, two arrays of {size} linked N_TO_N:");
    println!(
        "  readiness (evaluate_array):      {:>9.1} µs per evaluation, {:>6.1} ns per child",
        med.as_secs_f64() * 1e6,
        med.as_secs_f64() * 1e9 / f64::from(size)
    );

    let mut builder = fx::job("b")
        .array(size)
        .retry(3)
        .timeout(3600)
        .depends_on(Dependency::n_to_n("a"))
        .dependency(
            "a",
            DependencyTarget::array(JobState::Running, size, succeeded, failed),
        )
        .state(JobState::Running);
    for i in (0..2_000).step_by(2) {
        builder = builder.pod(attempt_pod("b", 1, Some(i)).running(T0));
    }
    let view = builder.build();
    let plan = job::reconcile(&view, T0 + 1);
    let (med, _) = time(21, || job::reconcile(black_box(&view), T0 + 1));
    println!(
        "  job::reconcile (1,000 live pods): {:>9.1} µs per reconcile, {:>6.1} ns per child ({} runnable, {} running)",
        med.as_secs_f64() * 1e6,
        med.as_secs_f64() * 1e9 / f64::from(size),
        plan.summary.map_or(0, |s| s.runnable),
        plan.summary.map_or(0, |s| s.running)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful: run either way.
    bench_pass();
    bench_roomy_pass();
    bench_array_pass();
    bench_n_to_n();
}
