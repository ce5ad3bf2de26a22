//! Benchmark of the scheduling pass with multi-node jobs (run with
//! `cargo bench -p barge-core --bench gang_pass`).
//!
//! One run prints the median time per pass of
//! (a) 10,000 RUNNABLE single jobs and 100 gangs of 8 nodes, and
//! (b) the same 10,000 single jobs without the gangs,
//! on 1,000 nodes in 5 compute environments shared by 20 queues (the cluster and the single jobs
//! of `scheduling_pass`), and their ratio. The gangs are spread over the queues and the same
//! hour of submissions as the single jobs; one in ten has GPU members, one in ten pins its
//! workers to an instance type. Most gangs do not fit next to the single jobs ahead of them, so
//! the pass also pays for their holds.
//!
//! Only std: `Instant` and `black_box`. Inputs are generated deterministically (xorshift).

use barge_core::fixtures::T0;
use barge_core::resources::Resources;
use barge_core::scheduler::{
    self, Constraints, Gang, GangMember, JobKey, Snapshot, Units, Workload,
};
use std::hint::black_box;

mod common;
use common::{cluster, ms, single_jobs, time, Rng, ENVIRONMENTS, NODES, QUEUES};

const SINGLE_JOBS: usize = 10_000;
const GANGS: usize = 100;
const GANG_NODES: usize = 8;

/// `count` gangs of `GANG_NODES` nodes: a small main node and larger workers.
fn gangs(rng: &mut Rng, count: usize) -> Vec<Workload> {
    (0..count)
        .map(|i| {
            let gpus = i64::from(i % 10 == 3);
            let pinned = (i % 10 == 7).then(|| "m5.xlarge".to_string());
            let main = GangMember {
                request: Resources::request(1000, 2048, 0),
                constraints: Constraints::default(),
            };
            let worker = GangMember {
                request: Resources::request(2000 + 500 * rng.below(3) as i64, 4096, gpus),
                constraints: Constraints {
                    instance_type: pinned.clone(),
                },
            };
            let mut members = vec![worker; GANG_NODES];
            members[0] = main.clone();
            Workload {
                job: JobKey::new("bench", &format!("mnp-{i:03}")),
                queue: format!("queue-{:02}", rng.below(QUEUES as u64)).into(),
                retried: false,
                submitted_at_ms: T0 + rng.below(3_600_000) as i64,
                submission_order: (SINGLE_JOBS + i) as i64,
                attempt: 1,
                request: main.request,
                constraints: main.constraints,
                units: Units::Gang(Gang {
                    main_node: 0,
                    members,
                }),
                share: None,
                priority: 0,
            }
        })
        .collect()
}

fn main() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (queues, environments, nodes) = cluster(&mut rng);
    let singles = single_jobs(&mut rng, SINGLE_JOBS);
    let mut with_gangs = singles.clone();
    with_gangs.extend(gangs(&mut rng, GANGS));
    let cases = [
        (
            format!("{SINGLE_JOBS} single jobs + {GANGS} gangs of {GANG_NODES} nodes"),
            with_gangs,
        ),
        (format!("{SINGLE_JOBS} single jobs, no gangs"), singles),
    ];
    println!(
        "gang pass: {NODES} nodes, {ENVIRONMENTS} compute environments, {QUEUES} queues (median of 21 passes)"
    );
    println!(
        "{:<44} {:>10} {:>10} {:>11} {:>13} {:>13}",
        "case", "median ms", "min ms", "placements", "gangs placed", "gangs holding"
    );
    let mut medians = Vec::new();
    for (name, workloads) in cases {
        let snapshot = Snapshot {
            queues: queues.clone(),
            environments: environments.clone(),
            nodes: nodes.clone(),
            workloads,
        };
        let result = scheduler::schedule(&snapshot);
        let gangs_placed = snapshot
            .workloads
            .iter()
            .zip(&result.verdicts)
            .filter(|(w, v)| matches!(w.units, Units::Gang(_)) && v.placed > 0)
            .count();
        let (med, min) = time(21, || scheduler::schedule(black_box(&snapshot)));
        println!(
            "{name:<44} {:>10.2} {:>10.2} {:>11} {:>13} {:>13}",
            ms(med),
            ms(min),
            result.placements.len(),
            gangs_placed,
            result.stats.gangs_holding
        );
        medians.push(med);
    }
    if let [with, without] = medians[..] {
        println!(
            "ratio with gangs / without: {:.2}x",
            with.as_secs_f64() / without.as_secs_f64().max(1e-12)
        );
    }
}
