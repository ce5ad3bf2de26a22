//! What the benchmarks share: a deterministic RNG (xorshift), the 1,000-node cluster of 5
//! compute environments shared by 20 queues, its RUNNABLE single jobs, and timing helpers.
//! (Each bench includes this module with `mod common;` and uses part of it.)
#![allow(dead_code)]

use barge_core::fixtures::T0;
use barge_core::resources::Resources;
use barge_core::scheduler::{
    Constraints, EnvironmentSpec, JobKey, NodeSnapshot, QueueSpec, Units, Workload,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// xorshift64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub const ENVIRONMENTS: usize = 5;
pub const NODES: usize = 1_000;
pub const QUEUES: usize = 20;

/// (instance type, vCPUs, memory MiB, GPUs)
pub const SHAPES: [(&str, i64, i64, i64); 5] = [
    ("m5.xlarge", 4, 16_384, 0),
    ("c5.2xlarge", 8, 16_384, 0),
    ("r5.xlarge", 4, 32_768, 0),
    ("m5.4xlarge", 16, 65_536, 0),
    ("g4dn.xlarge", 4, 16_384, 1),
];

/// 1,000 nodes of 5 shapes (a quarter partly used by foreign pods) in 5 environments, and 20
/// queues over 1–3 overlapping environments each (queue 7 strict FIFO).
pub fn cluster(rng: &mut Rng) -> (Vec<QueueSpec>, Vec<EnvironmentSpec>, Vec<NodeSnapshot>) {
    let environments: Vec<EnvironmentSpec> = (0..ENVIRONMENTS)
        .map(|e| EnvironmentSpec {
            name: format!("ce-{e}"),
            enabled: true,
            valid: true,
            shapes: None,
            max_milli_cpu: None,
            starting_nodes: 0,
            budget_milli_cpu: None,
            spot: false,
        })
        .collect();
    let nodes = (0..NODES)
        .map(|n| {
            let (instance_type, vcpus, memory, gpus) = SHAPES[n % SHAPES.len()];
            let allocatable = Resources::new(vcpus * 1000, memory, gpus, 110);
            // Some nodes carry foreign pods (daemons, other workloads).
            let used = if rng.below(4) == 0 {
                Resources::new(rng.below(2000) as i64, rng.below(4096) as i64, 0, 3)
            } else {
                Resources::ZERO
            };
            NodeSnapshot {
                name: format!("node-{n:04}"),
                environment: Some(format!("ce-{}", n % ENVIRONMENTS)),
                allocatable,
                used,
                schedulable: true,
                instance_type: Some(instance_type.to_string()),
                barge_pods: 0,
                exclusive: false,
            }
        })
        .collect();
    let queues = (0..QUEUES)
        .map(|q| QueueSpec {
            name: format!("queue-{q:02}"),
            priority: (q % 4) as i32,
            enabled: true,
            // 1-3 environments each, overlapping: every environment is shared by several queues.
            environments: (0..1 + q % 3)
                .map(|k| format!("ce-{}", (q + k) % ENVIRONMENTS))
                .collect(),
            strict_fifo: q == 7,
            fair_share: None,
        })
        .collect();
    (queues, environments, nodes)
}

/// Makes every node large (96 vCPUs, 384 GiB; GPU nodes keep their GPUs): the placement-heavy
/// case, where tens of thousands of units are actually placed.
pub fn make_roomy(nodes: &mut [NodeSnapshot]) {
    for node in nodes {
        let gpus = node.allocatable.gpus;
        node.allocatable = Resources::new(96_000, 393_216, gpus, 250);
        node.instance_type = Some(
            if gpus > 0 {
                "g4dn.24xlarge"
            } else {
                "m5.24xlarge"
            }
            .to_string(),
        );
    }
}

/// `count` single jobs with mixed requests (some GPU, some pinned to an instance type),
/// submitted over one hour, on random queues.
pub fn single_jobs(rng: &mut Rng, count: usize) -> Vec<Workload> {
    const CPU: [i64; 5] = [250, 500, 1000, 2000, 4000];
    const MEM: [i64; 5] = [256, 512, 1024, 4096, 8192];
    (0..count)
        .map(|i| {
            let gpus = i64::from(rng.below(50) == 0);
            let instance_type =
                (rng.below(100) == 0).then(|| SHAPES[rng.below(4) as usize].0.to_string());
            Workload {
                job: JobKey::new("bench", &format!("job-{i:06}")),
                queue: format!("queue-{:02}", rng.below(QUEUES as u64)).into(),
                retried: rng.below(20) == 0,
                submitted_at_ms: T0 + rng.below(3_600_000) as i64,
                submission_order: i as i64,
                attempt: 1,
                request: Resources::request(
                    CPU[rng.below(5) as usize],
                    MEM[rng.below(5) as usize],
                    gpus,
                ),
                constraints: Constraints { instance_type },
                units: Units::Single,
                share: None,
                priority: 0,
            }
        })
        .collect()
}

pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

pub fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        black_box(f());
        samples.push(started.elapsed());
    }
    let min = samples.iter().copied().min().unwrap_or_default();
    (median(samples), min)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
