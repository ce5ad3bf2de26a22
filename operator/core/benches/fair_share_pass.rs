//! Benchmark of the scheduling pass with fair-share queues (run with
//! `cargo bench -p barge-core --bench fair_share_pass`).
//!
//! The 100,000 RUNNABLE single jobs of `scheduling_pass` on its cluster (1,000 nodes in 5
//! compute environments shared by 20 queues), each job carrying a `shareIdentifier` and a
//! scheduling priority, passed twice in one run:
//! - **fair**: every queue names a scheduling policy — weights from 0.125 to 2, a `team-1*`
//!   wildcard, `computeReservation` on one queue in three, `shareDecaySeconds` on two in three —
//!   and knows prior usage and running vCPUs for some of its shares; 100 share identifiers,
//!   each in two queues (10 per queue);
//! - **FIFO**: the same jobs and cluster, every queue FIFO (shares and priorities ignored).
//!
//! The two are timed interleaved (fair, FIFO, fair, FIFO, ...) and the medians compared; the
//! target is fair ≤ 2× FIFO. Two clusters: the saturated one (a few thousand placements, most
//! jobs wait) and the placement-heavy one of `scheduling_pass` (nodes of 96 vCPUs: tens of
//! thousands of placements, each a fair-share merge step).
//!
//! Only std: `Instant` and `black_box`. Inputs are generated deterministically (xorshift).

use barge_core::scheduler::{
    self, FairSharePolicy, QueueFairShare, ShareState, ShareWeight, Snapshot,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

mod common;
use common::{cluster, make_roomy, median, ms, single_jobs, Rng, ENVIRONMENTS, NODES, QUEUES};

const JOBS: usize = 100_000;
const SHARES: u64 = 100;
const SHARES_PER_QUEUE: u64 = 10;
const RUNS: usize = 11;

/// The share identifiers of queue `q`: 10 consecutive ones of the 100, so that each share
/// appears in two queues.
fn share_of_queue(q: u64, k: u64) -> String {
    format!("team-{:02}", (q * SHARES_PER_QUEUE / 2 + k) % SHARES)
}

/// Queue `q`'s policy and what is known of its shares.
fn fair_share(rng: &mut Rng, q: u64) -> QueueFairShare {
    const WEIGHTS: [f64; 6] = [0.125, 0.25, 0.5, 1.0, 1.5, 2.0];
    let mut weights: Vec<ShareWeight> = (0..SHARES_PER_QUEUE)
        .step_by(2)
        .map(|k| ShareWeight {
            share_identifier: share_of_queue(q, k),
            weight_factor: WEIGHTS[rng.below(WEIGHTS.len() as u64) as usize],
        })
        .collect();
    weights.push(ShareWeight {
        share_identifier: "team-1*".to_string(),
        weight_factor: 0.5,
    });
    let mut shares = Vec::new();
    for k in 0..SHARES_PER_QUEUE {
        if rng.below(2) == 0 {
            shares.push(ShareState {
                share: share_of_queue(q, k),
                running_milli_cpu: rng.below(64) as i64 * 1000,
                usage_vcpu_seconds: rng.below(200_000) as f64,
                live_jobs: 1 + rng.below(1_000),
            });
        }
    }
    QueueFairShare {
        policy: FairSharePolicy {
            share_decay_seconds: if q.is_multiple_of(3) { 0 } else { 3_600 },
            compute_reservation: if q % 3 == 1 { 10 } else { 0 },
            weights,
        },
        shares,
    }
}

/// The fair-share snapshot and its FIFO twin.
fn snapshots(roomy: bool) -> (Snapshot, Snapshot) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (queues, environments, mut nodes) = cluster(&mut rng);
    if roomy {
        make_roomy(&mut nodes);
    }
    let mut workloads = single_jobs(&mut rng, JOBS);
    for w in &mut workloads {
        let q: u64 = w.queue["queue-".len()..].parse().unwrap_or(0);
        let share = share_of_queue(q, rng.below(SHARES_PER_QUEUE));
        let priority = rng.below(4) as i32;
        *w = w.clone().with_share(Some(&share), priority);
    }
    let fifo = Snapshot {
        queues: queues.clone(),
        environments: environments.clone(),
        nodes: nodes.clone(),
        workloads: workloads.clone(),
    };
    let mut fair = fifo.clone();
    for (q, queue) in fair.queues.iter_mut().enumerate() {
        queue.fair_share = Some(fair_share(&mut rng, q as u64));
    }
    (fair, fifo)
}

fn timed(snapshot: &Snapshot) -> Duration {
    let started = Instant::now();
    black_box(scheduler::schedule(black_box(snapshot)));
    started.elapsed()
}

fn compare(name: &str, roomy: bool) -> f64 {
    let (fair, fifo) = snapshots(roomy);
    let fair_result = scheduler::schedule(&fair);
    let fifo_result = scheduler::schedule(&fifo);
    let mut fair_samples = Vec::with_capacity(RUNS);
    let mut fifo_samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        fair_samples.push(timed(&fair));
        fifo_samples.push(timed(&fifo));
    }
    let fair_ms = ms(median(fair_samples));
    let fifo_ms = ms(median(fifo_samples));
    let ratio = fair_ms / fifo_ms.max(1e-9);
    println!(
        "{name:<16} {fifo_ms:>9.2} {:>11} {fair_ms:>9.2} {:>11} {ratio:>7.2}x",
        fifo_result.placements.len(),
        fair_result.placements.len(),
    );
    ratio
}

fn main() {
    println!(
        "fair-share pass: {JOBS} jobs, {NODES} nodes, {ENVIRONMENTS} compute environments, \
         {QUEUES} queues, {SHARES} shares (median of {RUNS} interleaved passes each)"
    );
    println!(
        "{:<16} {:>9} {:>11} {:>9} {:>11} {:>8}",
        "cluster", "FIFO ms", "placements", "fair ms", "placements", "ratio"
    );
    let saturated = compare("saturated", false);
    let roomy = compare("placement-heavy", true);
    println!("fair / FIFO (target <= 2x): saturated {saturated:.2}x, placement-heavy {roomy:.2}x");
}
