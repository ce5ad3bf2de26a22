//! Benchmark of the scaling decision (run with `cargo bench -p barge-core --bench scaling_decision`).
//!
//! 100 managed compute environments (`optimal` instance types, BEST_FIT, BEST_FIT_PROGRESSIVE
//! and the two Spot strategies in turn; maxvCpus 256 to 2,048), 50 queues of three
//! environments each, 100,000 RUNNABLE single jobs with mixed requests (some arrays of 100),
//! and 1,000 nodes (ready, booting, idle past the delay, partly used). Median and worst of
//! several decisions; target ≤ 20 ms per decision on a 2-core machine.
//!
//! Only std: `Instant` and `black_box`. Inputs are generated deterministically (xorshift).

use barge_core::index_set::IndexSet;
use barge_core::pool::{expand_instance_types, lookup, AllocationStrategy};
use barge_core::resources::Resources;
use barge_core::scaling::{decide_scaling, NodeFacts, NodeState, Offer, PoolSpec};
use barge_core::scheduler::{
    Constraints, EnvironmentSpec, JobKey, NodeSnapshot, QueueSpec, Snapshot, Units, Workload,
};
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

mod common;
use common::Rng;

const ENVIRONMENTS: usize = 100;
const QUEUES: usize = 50;
const JOBS: usize = 100_000;
const NODES: usize = 1_000;
const NOW: i64 = 10_000_000;

const STRATEGIES: [AllocationStrategy; 4] = [
    AllocationStrategy::BestFit,
    AllocationStrategy::BestFitProgressive,
    AllocationStrategy::SpotCapacityOptimized,
    AllocationStrategy::SpotPriceCapacityOptimized,
];

const NODE_TYPES: [&str; 5] = [
    "c5.xlarge",
    "m5.2xlarge",
    "r5.large",
    "m5.4xlarge",
    "c4.2xlarge",
];

fn input(rng: &mut Rng) -> (Snapshot, Vec<PoolSpec>, HashMap<String, NodeFacts>) {
    let offers: Vec<Offer> = expand_instance_types(&["optimal"])
        .unwrap()
        .into_iter()
        .map(Offer::of)
        .collect();
    let environments: Vec<EnvironmentSpec> = (0..ENVIRONMENTS)
        .map(|e| EnvironmentSpec {
            name: format!("ce-{e}"),
            enabled: e % 20 != 19,
            valid: true,
            shapes: None,
            max_milli_cpu: None,
            starting_nodes: 0,
            budget_milli_cpu: None,
            spot: false,
        })
        .collect();
    let pools: Vec<PoolSpec> = (0..ENVIRONMENTS)
        .map(|e| PoolSpec {
            environment: format!("ce-{e}"),
            min_vcpus: if e % 10 == 0 { 16 } else { 0 },
            max_vcpus: 256 << (e % 4),
            desired_vcpus: None,
            strategy: STRATEGIES[e % STRATEGIES.len()],
            offers: offers.clone(),
            scale_down_delay_ms: 300_000,
        })
        .collect();
    let queues: Vec<QueueSpec> = (0..QUEUES)
        .map(|q| QueueSpec {
            name: format!("q-{q}"),
            priority: (q % 5) as i32,
            enabled: true,
            environments: (0..3)
                .map(|k| format!("ce-{}", (q * 2 + k) % ENVIRONMENTS))
                .collect(),
            strict_fifo: false,
            fair_share: None,
        })
        .collect();
    let mut nodes = Vec::with_capacity(NODES);
    let mut facts = HashMap::new();
    for n in 0..NODES {
        let ty = lookup(NODE_TYPES[rng.below(NODE_TYPES.len() as u64) as usize]).unwrap();
        let name = format!("node-{n}");
        let allocatable = ty.capacity();
        let busy = rng.below(3) == 0;
        let used = if busy {
            Resources::new(allocatable.milli_cpu / 2, allocatable.memory_mib / 4, 0, 3)
        } else {
            Resources::ZERO
        };
        let state = match rng.below(10) {
            0 => NodeState::Booting,
            1 => NodeState::Draining,
            _ => NodeState::Ready,
        };
        facts.insert(
            name.clone(),
            NodeFacts {
                state,
                barge_pods: if busy { 3 } else { 0 },
                idle_since_ms: (!busy).then_some(rng.below(NOW as u64) as i64),
            },
        );
        nodes.push(NodeSnapshot {
            name,
            environment: Some(format!("ce-{}", n % ENVIRONMENTS)),
            allocatable,
            used,
            schedulable: state == NodeState::Ready,
            instance_type: Some(ty.name.to_string()),
            barge_pods: 0,
            exclusive: false,
        });
    }
    let mut workloads = Vec::with_capacity(JOBS);
    let mut units = 0usize;
    let mut j = 0usize;
    while units < JOBS {
        let request = match rng.below(10) {
            0..=5 => Resources::request(1000, 2048, 0),
            6..=7 => Resources::request(2000, 8192, 0),
            8 => Resources::request(500, 512, 0),
            _ => Resources::request(4000, 16_384, 0),
        };
        let array = rng.below(100) == 0;
        let count = if array { 100 } else { 1 };
        workloads.push(Workload {
            job: JobKey::new("bench", &format!("job-{j}")),
            queue: format!("q-{}", rng.below(QUEUES as u64)).into(),
            retried: rng.below(50) == 0,
            submitted_at_ms: j as i64,
            submission_order: j as i64,
            attempt: 1,
            request,
            constraints: Constraints {
                instance_type: (rng.below(200) == 0).then(|| "m5.xlarge".to_string()),
            },
            units: if array {
                Units::Array(IndexSet::parse("0-99").unwrap())
            } else {
                Units::Single
            },
            share: None,
            priority: 0,
        });
        units += count;
        j += 1;
    }
    (
        Snapshot {
            queues,
            environments,
            nodes,
            workloads,
        },
        pools,
        facts,
    )
}

fn main() {
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let (snapshot, pools, facts) = input(&mut rng);
    let units: u64 = snapshot.workloads.iter().map(|w| w.units.count()).sum();
    // Warm up, and show what the decision does.
    let decisions = decide_scaling(&snapshot, &pools, &facts, NOW);
    let added: u32 = decisions
        .values()
        .flat_map(|d| d.add.iter().map(|a| a.count))
        .sum();
    let removed: usize = decisions.values().map(|d| d.remove.len()).sum();
    let beyond: i64 = decisions.values().map(|d| d.wanted_beyond_max_vcpus).sum();
    let limited = decisions
        .values()
        .filter(|d| d.wanted_beyond_max_vcpus > 0)
        .count();
    println!(
        "scaling decision: {} CEs, {} RUNNABLE units in {} workloads, {} nodes",
        pools.len(),
        units,
        snapshot.workloads.len(),
        snapshot.nodes.len()
    );
    println!(
        "  result: {added} nodes to add, {removed} to remove, {beyond} vCPUs wanted beyond maxvCpus ({limited} CEs limited)"
    );
    let mut times: Vec<Duration> = (0..15)
        .map(|_| {
            let start = Instant::now();
            black_box(decide_scaling(
                black_box(&snapshot),
                black_box(&pools),
                black_box(&facts),
                NOW,
            ));
            start.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "  time per decision: median {:.2} ms, min {:.2} ms, max {:.2} ms (15 runs; target ≤ 20 ms)",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    );
}
