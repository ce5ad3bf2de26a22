//! Tests of fair share (`fair_share` and the fair-share branch of the pass), one (or more) per
//! rule of the module docs.

use super::fair_share::*;
use super::*;
use crate::fixtures::{
    alloc, environment, fair_policy, node, queue, req, share_state, snapshot, workload,
    SnapshotBuilder, T0,
};
use std::collections::{BTreeMap, BTreeSet};

/// One vCPU (and a pod slot).
const ONE_CPU: Resources = req(1000, 256, 0);

/// A compute environment "ce" with one node of `vcpus` free vCPUs.
fn cluster(vcpus: i64) -> SnapshotBuilder {
    snapshot()
        .environment(environment("ce"))
        .node(node("n1", "ce", alloc(vcpus, 1 << 20, 0)))
}

/// `count` one-vCPU jobs of `share` in queue "q", named `<share>-<i>`, submitted one a second
/// from `from_ms`.
fn jobs(share: &str, count: usize, from_ms: i64) -> Vec<Workload> {
    (0..count)
        .map(|i| {
            workload(
                &format!("{share}-{i:04}"),
                "q",
                ONE_CPU,
                from_ms + i as i64 * 1000,
            )
            .share(share, 0)
            .build()
        })
        .collect()
}

fn with_workloads(mut builder: SnapshotBuilder, workloads: Vec<Workload>) -> SnapshotBuilder {
    for w in workloads {
        builder = builder.workload(w);
    }
    builder
}

/// Units placed per share, in the pass's result.
fn placed_by_share(s: &Snapshot, r: &PassResult) -> BTreeMap<String, u64> {
    let mut by_share = BTreeMap::new();
    for p in &r.placements {
        *by_share
            .entry(share_of(&s.workloads[p.workload]).to_string())
            .or_insert(0) += 1;
    }
    by_share
}

fn count(by_share: &BTreeMap<String, u64>, share: &str) -> u64 {
    by_share.get(share).copied().unwrap_or(0)
}

fn names(r: &PassResult) -> Vec<String> {
    r.placements
        .iter()
        .map(|p| p.job.name.to_string())
        .collect()
}

/// A queue on a saturated `slots`-vCPU environment, simulated pass after pass: every `tick_ms`
/// jobs that ran their time (`duration_ms` ± 50 %) finish, the usage ledger advances with what
/// ran, and a pass places what fits. Returns the vCPU-seconds each share ran while every share
/// still had RUNNABLE jobs (the measurement stops when one runs out).
fn simulate(
    policy: FairSharePolicy,
    slots: i64,
    mut pending: Vec<Workload>,
    duration_ms: i64,
    tick_ms: i64,
) -> BTreeMap<String, f64> {
    let shares: BTreeSet<String> = pending.iter().map(|w| share_of(w).to_string()).collect();
    let mut running: Vec<(String, i64)> = Vec::new();
    let mut ledger = UsageLedger::default();
    let mut ran: BTreeMap<String, f64> = BTreeMap::new();
    let mut now = T0 + 1_000_000;
    ledger.advance(now, policy.share_decay_seconds, &BTreeMap::new());
    for _ in 0..100_000 {
        let mut running_by_share: BTreeMap<String, i64> = BTreeMap::new();
        for (share, _) in &running {
            *running_by_share.entry(share.clone()).or_insert(0) += 1000;
        }
        let states = shares
            .iter()
            .map(|share| {
                let live = pending.iter().filter(|w| share_of(w) == share).count()
                    + running.iter().filter(|(s, _)| s == share).count();
                share_state(share)
                    .running(running_by_share.get(share).copied().unwrap_or(0))
                    .usage(ledger.usage_of(share))
                    .live_jobs(live as u64)
                    .build()
            })
            .collect();
        let used = running.len() as i64;
        let s = with_workloads(
            snapshot()
                .queue(queue("q", &["ce"]).fair_share(policy.clone(), states))
                .environment(environment("ce"))
                .node(
                    node("n1", "ce", alloc(slots, 1 << 20, 0)).used(Resources::new(
                        used * 1000,
                        used * 256,
                        0,
                        used,
                    )),
                ),
            pending.clone(),
        )
        .build();
        let r = schedule(&s);
        let started: BTreeSet<usize> = r.placements.iter().map(|p| p.workload).collect();
        for &w in &started {
            // Durations from duration_ms/2 to 3·duration_ms/2, varied by submission.
            let spread = (s.workloads[w].submitted_at_ms / 1000 * 7919).rem_euclid(11) - 5;
            let duration = duration_ms + spread * duration_ms / 10;
            running.push((share_of(&s.workloads[w]).to_string(), now + duration));
        }
        pending = pending
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !started.contains(i))
            .map(|(_, w)| w)
            .collect();
        let every_share_waits = shares
            .iter()
            .all(|share| pending.iter().any(|w| share_of(w) == share));
        if !every_share_waits {
            return ran;
        }
        assert_eq!(
            running.len() as i64,
            slots,
            "the environment stays saturated"
        );
        now += tick_ms;
        let mut ran_now: BTreeMap<String, i64> = BTreeMap::new();
        for (share, _) in &running {
            *ran_now.entry(share.clone()).or_insert(0) += 1000;
            *ran.entry(share.clone()).or_insert(0.0) += tick_ms as f64 / 1000.0;
        }
        ledger.advance(now, policy.share_decay_seconds, &ran_now);
        running.retain(|&(_, end)| end > now);
    }
    panic!("the simulation did not end");
}

fn fraction(ran: &BTreeMap<String, f64>, share: &str) -> f64 {
    let total: f64 = ran.values().sum();
    ran.get(share).copied().unwrap_or(0.0) / total
}

#[test]
fn a_quarter_weight_takes_six_or_seven_of_eight_slots_from_zero_usage() {
    let policy = fair_policy(3600, 0).weight("a", 1.0).weight("b", 0.25);
    let mut all = jobs("a", 200, T0);
    all.extend(jobs("b", 200, T0 + 1_000_000));
    let s = with_workloads(
        cluster(8).queue(queue("q", &["ce"]).fair_share(policy, vec![])),
        all,
    )
    .build();
    let r = schedule(&s);
    let by_share = placed_by_share(&s, &r);
    assert_eq!(r.placements.len(), 8);
    assert!(
        (6..=7).contains(&count(&by_share, "b")),
        "b placed {by_share:?}"
    );
    // Unit by unit, each to the share whose load at the middle of the unit is lowest: b's
    // first two (0.125, 0.375 < a's 0.5), a's first, four of b (0.625 to 1.375 < 1.5), a.
    assert_eq!(
        names(&r),
        ["b-0000", "b-0001", "a-0000", "b-0002", "b-0003", "b-0004", "b-0005", "a-0001"]
    );
    // Verdicts: every placed job counts its unit; the rest wait for capacity.
    let waiting = r
        .verdicts
        .iter()
        .filter(|v| v.placed == 0 && v.unplaced == Some(Unplaced::NoCapacity))
        .count();
    assert_eq!(waiting, 400 - 8);
}

#[test]
fn a_quarter_weight_runs_eighty_percent_of_the_vcpu_seconds_over_passes() {
    let policy = fair_policy(600, 0)
        .weight("a", 1.0)
        .weight("b", 0.25)
        .build();
    let mut all = jobs("a", 200, T0);
    all.extend(jobs("b", 200, T0 + 1_000_000));
    let ran = simulate(policy, 8, all, 60_000, 10_000);
    let b = fraction(&ran, "b");
    assert!(
        (0.75..=0.85).contains(&b),
        "b ran {b:.3} of the vCPU-seconds"
    );
}

#[test]
fn an_eighth_weight_gets_eight_times_the_compute() {
    let policy = fair_policy(600, 0).weight("a", 1.0).weight("b", 0.125);
    let mut all = jobs("a", 100, T0);
    all.extend(jobs("b", 100, T0));
    let s = with_workloads(
        cluster(18).queue(queue("q", &["ce"]).fair_share(policy.clone(), vec![])),
        all.clone(),
    )
    .build();
    let by_share = placed_by_share(&s, &schedule(&s));
    assert_eq!((count(&by_share, "a"), count(&by_share, "b")), (2, 16));

    let mut all = jobs("a", 300, T0);
    all.extend(jobs("b", 300, T0));
    let ran = simulate(policy.build(), 9, all, 60_000, 10_000);
    let ratio = ran["b"] / ran["a"];
    assert!((7.0..=9.0).contains(&ratio), "b ran {ratio:.2}x a");
}

#[test]
fn a_share_alone_gets_everything() {
    // A share with a heavy weight and a long history, alone in the queue: every slot is its.
    let policy = fair_policy(600, 0).weight("a", 8.0);
    let s = with_workloads(
        cluster(8).queue(
            queue("q", &["ce"]).fair_share(policy, vec![share_state("a").usage(1e6).build()]),
        ),
        jobs("a", 20, T0),
    )
    .build();
    let r = schedule(&s);
    assert_eq!(r.placements.len(), 8);
    // Another share that is active but has nothing RUNNABLE does not hold anything back
    // (no computeReservation).
    let policy = fair_policy(600, 0);
    let s = with_workloads(
        cluster(8).queue(queue("q", &["ce"]).fair_share(
            policy,
            vec![share_state("b").live_jobs(3).usage(10.0).build()],
        )),
        jobs("a", 20, T0),
    )
    .build();
    assert_eq!(schedule(&s).placements.len(), 8);
}

#[test]
fn weight_factors_exact_beats_prefix_longest_prefix_wins_unlisted_weigh_one() {
    let policy = fair_policy(0, 0)
        .weight("team-*", 0.5)
        .weight("team-a", 2.0)
        .weight("team-gpu-*", 0.125)
        .weight("broken", 0.0)
        .build();
    assert_eq!(policy.weight_factor("team-a"), 2.0, "exact beats prefix");
    assert_eq!(policy.weight_factor("team-b"), 0.5, "prefix");
    assert_eq!(policy.weight_factor("team-gpu-x"), 0.125, "longest prefix");
    assert_eq!(policy.weight_factor("team-"), 0.5, "an empty rest matches");
    assert_eq!(policy.weight_factor("team"), 1.0, "not a match: unlisted");
    assert_eq!(policy.weight_factor("ops"), DEFAULT_WEIGHT_FACTOR);
    assert_eq!(
        policy.weight_factor("broken"),
        1.0,
        "a weight of 0 is ignored"
    );
    // Entry order does not matter.
    let reversed = FairSharePolicy {
        weights: policy.weights.iter().rev().cloned().collect(),
        ..policy.clone()
    };
    for share in ["team-a", "team-b", "team-gpu-x", "ops"] {
        assert_eq!(reversed.weight_factor(share), policy.weight_factor(share));
    }
}

#[test]
fn a_wildcard_entry_weighs_the_shares_it_matches_in_a_pass() {
    let policy = fair_policy(0, 0).weight("team-*", 0.25);
    let mut all = jobs("ops", 50, T0);
    all.extend(jobs("team-a", 50, T0));
    all.extend(jobs("team-b", 50, T0));
    let s = with_workloads(
        cluster(9).queue(queue("q", &["ce"]).fair_share(policy, vec![])),
        all,
    )
    .build();
    let by_share = placed_by_share(&s, &schedule(&s));
    // ops weighs 1.0, team-a and team-b 0.25 each: 1 : 4 : 4.
    assert_eq!(
        (
            count(&by_share, "ops"),
            count(&by_share, "team-a"),
            count(&by_share, "team-b")
        ),
        (1, 4, 4)
    );
    let views = share_views(
        s.queues[0].fair_share.as_ref().unwrap(),
        &s.workloads,
        &(0..s.workloads.len()).collect::<Vec<_>>(),
    );
    let targets: Vec<(&str, f64)> = views
        .iter()
        .map(|v| (v.share.as_str(), v.target_fraction))
        .collect();
    assert_eq!(
        targets,
        vec![
            ("ops", 1.0 / 9.0),
            ("team-a", 4.0 / 9.0),
            ("team-b", 4.0 / 9.0)
        ]
    );
}

#[test]
fn a_compute_reservation_of_fifty_holds_half_the_queue_back_for_one_active_share() {
    let s = with_workloads(
        cluster(8).queue(queue("q", &["ce"]).fair_share(fair_policy(0, 50), vec![])),
        jobs("a", 200, T0),
    )
    .build();
    let r = schedule(&s);
    assert_eq!(r.placements.len(), 4, "(50/100)^1 of 8 vCPUs held back");
    assert!(r.verdicts[4..]
        .iter()
        .all(|v| v.placed == 0 && v.unplaced == Some(Unplaced::NoCapacity)));
    // The queue's maximum is its environments' maxvCpus where known.
    let s = with_workloads(
        snapshot()
            .environment(environment("ce").max_vcpus(4))
            .node(node("n1", "ce", alloc(8, 1 << 20, 0)))
            .queue(queue("q", &["ce"]).fair_share(fair_policy(0, 50), vec![])),
        jobs("a", 200, T0),
    )
    .build();
    assert_eq!(schedule(&s).placements.len(), 2);
}

#[test]
fn a_new_share_finds_the_room_held_for_it_in_the_same_pass() {
    // a runs 4 of 8 vCPUs, all its reservation allows with one active share; b submits a job.
    let mut all = jobs("a", 200, T0);
    all.extend(jobs("b", 1, T0 + 1_000_000));
    let s = with_workloads(
        snapshot()
            .environment(environment("ce"))
            .node(node("n1", "ce", alloc(8, 1 << 20, 0)).used(Resources::new(4000, 1024, 0, 4)))
            .queue(queue("q", &["ce"]).fair_share(
                fair_policy(0, 50),
                vec![share_state("a").running(4000).live_jobs(204).build()],
            )),
        all,
    )
    .build();
    let r = schedule(&s);
    // Two active shares: (1/2)^2 of 8 = 2 vCPUs held back, 8 − 2 − 4 = 2 of room: b's job
    // first (lowest load), then one of a's.
    assert_eq!(names(&r), vec!["b-0000", "a-0000"]);
}

#[test]
fn a_share_not_runnable_yet_keeps_its_room_from_the_share_already_running() {
    // a runs 4 of 8 (c = 50, one share: 4 held back). b's job is SUBMITTED: b is active, but
    // the room its arrival frees is held for it, not taken by a.
    let a_only = |b: ShareState| {
        with_workloads(
            snapshot()
                .environment(environment("ce"))
                .node(node("n1", "ce", alloc(8, 1 << 20, 0)).used(Resources::new(4000, 1024, 0, 4)))
                .queue(queue("q", &["ce"]).fair_share(
                    fair_policy(0, 50),
                    vec![share_state("a").running(4000).live_jobs(204).build(), b],
                )),
            jobs("a", 200, T0),
        )
        .build()
    };
    assert!(names(&schedule(&a_only(share_state("b").live_jobs(1).build()))).is_empty());
    // Once b has run (established), both are held to (1/2)^2: a may grow to 6 of 8.
    let r = schedule(&a_only(share_state("b").running(1000).live_jobs(1).build()));
    assert_eq!(names(&r), vec!["a-0000"]);
    // b's jobs RUNNABLE (a newcomer): its first starts in the held room; b is then established,
    // both are held to 6 of 8, and b's lower load takes the last of it.
    let mut all = jobs("a", 200, T0);
    all.extend(jobs("b", 2, T0 + 1_000_000));
    let s = with_workloads(
        snapshot()
            .environment(environment("ce"))
            .node(node("n1", "ce", alloc(8, 1 << 20, 0)).used(Resources::new(4000, 1024, 0, 4)))
            .queue(queue("q", &["ce"]).fair_share(
                fair_policy(0, 50),
                vec![
                    share_state("a").running(4000).live_jobs(204).build(),
                    share_state("b").live_jobs(2).build(),
                ],
            )),
        all,
    )
    .build();
    assert_eq!(names(&schedule(&s)), vec!["b-0000", "b-0001"]);
}

#[test]
fn the_reservation_shrinks_as_shares_become_active() {
    let policy = fair_policy(0, 50).build();
    assert_eq!(policy.reserved_fraction(0), 1.0);
    assert_eq!(policy.reserved_fraction(1), 0.5);
    assert_eq!(policy.reserved_fraction(2), 0.25);
    assert_eq!(policy.reserved_fraction(3), 0.125);
    assert_eq!(fair_policy(0, 0).build().reserved_fraction(1), 0.0);
    // Three active shares (b, c with unfinished jobs not RUNNABLE yet, a RUNNABLE): 1 of 8
    // vCPUs held back for shares not active yet. None of them has run: a's first unit may use
    // all but that 1; then a is established and held to (1/2)^1, 4 of 8 — the rest stays held
    // for b's and c's first jobs.
    let s = with_workloads(
        cluster(8).queue(queue("q", &["ce"]).fair_share(
            policy,
            vec![
                share_state("b").live_jobs(1).build(),
                share_state("c").live_jobs(1).build(),
                // Finished and decayed: not active.
                share_state("d").usage(0.5).build(),
            ],
        )),
        jobs("a", 200, T0),
    )
    .build();
    let fair = s.queues[0].fair_share.as_ref().unwrap();
    let views = share_views(fair, &s.workloads, &(0..200).collect::<Vec<_>>());
    let held = reservation(fair, &views, queue_max_milli_cpu(&s, &s.queues[0]));
    assert_eq!(
        (
            held.active_shares,
            held.reserved_milli_cpu,
            held.max_milli_cpu
        ),
        (3, 1000, 8000)
    );
    assert_eq!(held.established_shares, 0);
    assert_eq!(schedule(&s).placements.len(), 4);
}

#[test]
fn a_share_with_high_decayed_usage_yields_to_a_fresh_one_until_loads_meet() {
    // a ran 4 vCPUs on average over the decay window; b is fresh. Equal weights.
    let mut all = jobs("a", 50, T0);
    all.extend(jobs("b", 50, T0 + 1_000_000));
    let history = vec![share_state("a").usage(4.0 * 3600.0).build()];
    let s = with_workloads(
        cluster(8).queue(queue("q", &["ce"]).fair_share(fair_policy(3600, 0), history.clone())),
        all.clone(),
    )
    .build();
    let r = schedule(&s);
    // b takes 4 before the loads meet at 4, then they alternate (ties: a first).
    assert_eq!(
        names(&r),
        vec!["b-0000", "b-0001", "b-0002", "b-0003", "a-0000", "b-0004", "a-0001", "b-0005"]
    );
    // With shareDecaySeconds 0 the history does not count: the shares alternate from the start.
    let s = with_workloads(
        cluster(8).queue(queue("q", &["ce"]).fair_share(fair_policy(0, 0), history)),
        all,
    )
    .build();
    let by_share = placed_by_share(&s, &schedule(&s));
    assert_eq!((count(&by_share, "a"), count(&by_share, "b")), (4, 4));
}

#[test]
fn with_share_decay_zero_only_running_vcpus_count_and_the_ledger_keeps_nothing() {
    let mut ledger = UsageLedger::default();
    let running = BTreeMap::from([("a".to_string(), 4000)]);
    ledger.advance(T0, 0, &running);
    ledger.advance(T0 + 3_600_000, 0, &running);
    assert!(ledger.usage.is_empty());
    assert_eq!(ledger.usage_of("a"), 0.0);
    assert_eq!(ledger.at_ms, Some(T0 + 3_600_000));
    // Running vCPUs do count: a running 4 yields to b until b runs 4 too.
    let mut all = jobs("a", 50, T0);
    all.extend(jobs("b", 50, T0 + 1_000_000));
    let s = with_workloads(
        snapshot()
            .environment(environment("ce"))
            .node(node("n1", "ce", alloc(12, 1 << 20, 0)).used(Resources::new(4000, 1024, 0, 4)))
            .queue(queue("q", &["ce"]).fair_share(
                fair_policy(0, 0),
                vec![share_state("a")
                    .running(4000)
                    .usage(1e6)
                    .live_jobs(54)
                    .build()],
            )),
        all,
    )
    .build();
    let by_share = placed_by_share(&s, &schedule(&s));
    assert_eq!((count(&by_share, "a"), count(&by_share, "b")), (2, 6));
}

#[test]
fn the_ledger_decays_toward_running_times_the_decay_window() {
    let d = 600u32;
    let e = std::f64::consts::E;
    let two = BTreeMap::from([("a".to_string(), 2000)]);
    let mut ledger = UsageLedger::default();
    // The first observation only sets the stamp.
    ledger.advance(T0, d, &two);
    assert_eq!(ledger.usage_of("a"), 0.0);
    // One window of 2 vCPUs: 2·D·(1 − 1/e).
    ledger.advance(T0 + 600_000, d, &two);
    let expected = 2.0 * 600.0 * (1.0 - 1.0 / e);
    assert!((ledger.usage_of("a") - expected).abs() < 1e-9);
    // Long enough: r·D.
    ledger.advance(T0 + 600_000 * 30, d, &two);
    assert!((ledger.usage_of("a") - 1200.0).abs() < 1e-6);
    // Time going backwards changes nothing, the stamp included.
    let before = ledger.clone();
    ledger.advance(T0, d, &BTreeMap::new());
    assert_eq!(ledger, before);
    // Nothing running: halves in D·ln 2.
    let half_life_ms = (600.0 * std::f64::consts::LN_2 * 1000.0).round() as i64;
    let at = ledger.at_ms.unwrap();
    ledger.advance(at + half_life_ms, d, &BTreeMap::new());
    assert!((ledger.usage_of("a") - 600.0).abs() < 1e-3);
    // Decayed below 1 vCPU-second and running nothing: dropped; a share running is kept.
    let one = BTreeMap::from([("b".to_string(), 1000)]);
    ledger.advance(at + half_life_ms + 600_000 * 10, d, &one);
    assert!(!ledger.usage.contains_key("a"));
    let expected_b = 600.0 * (1.0 - (-10.0f64).exp());
    assert!((ledger.usage_of("b") - expected_b).abs() < 1e-9);
    assert_eq!(ledger.usage.len(), 1);
}

#[test]
fn within_a_share_retried_first_then_priority_then_submission() {
    let s = cluster(4)
        .queue(queue("q", &["ce"]).fair_share(fair_policy(0, 0), vec![]))
        .workload(workload("old-low", "q", ONE_CPU, T0).share("a", 0))
        .workload(workload("new-high", "q", ONE_CPU, T0 + 3000).share("a", 5))
        .workload(workload("mid-high", "q", ONE_CPU, T0 + 2000).share("a", 5))
        .workload(
            workload("retried-low", "q", ONE_CPU, T0 + 9000)
                .share("a", -1)
                .retried(2),
        )
        .workload(workload("older-mid", "q", ONE_CPU, T0 + 1000).share("a", 1))
        .build();
    let r = schedule(&s);
    assert_eq!(
        names(&r),
        vec!["retried-low", "mid-high", "new-high", "older-mid"]
    );
    // The same order as the definition.
    let mut members: Vec<usize> = (0..s.workloads.len()).collect();
    within_share_order(&s.workloads, &mut members);
    let front: Vec<usize> = queue_front(&s, &s.queues[0], 10)
        .iter()
        .map(|f| f.workload)
        .collect();
    assert_eq!(front, members);
}

#[test]
fn the_merge_orders_a_share_as_within_share_order_defines() {
    // 300 jobs with random retries, priorities, seconds and order within a second (xorshift).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut b = cluster(1).queue(queue("q", &["ce"]).fair_share(fair_policy(0, 0), vec![]));
    for i in 0..300 {
        let mut w = workload(
            &format!("j-{i:03}"),
            "q",
            ONE_CPU,
            T0 + random(20) as i64 * 1000,
        )
        .submission_order(random(5) as i64)
        .share("a", random(4) as i32 - 1);
        if random(10) == 0 {
            w = w.retried(2);
        }
        b = b.workload(w);
    }
    let s = b.build();
    let mut expected: Vec<usize> = (0..300).collect();
    within_share_order(&s.workloads, &mut expected);
    let front: Vec<usize> = queue_front(&s, &s.queues[0], 300)
        .iter()
        .map(|f| f.workload)
        .collect();
    assert_eq!(front, expected);
    assert_eq!(
        names(&schedule(&s)),
        vec![s.workloads[expected[0]].job.name.clone()]
    );
}

#[test]
fn priority_does_not_reorder_a_fifo_queue() {
    let s = cluster(2)
        .queue(queue("q", &["ce"]))
        .workload(workload("first", "q", ONE_CPU, T0).share("a", 0))
        .workload(workload("urgent", "q", ONE_CPU, T0 + 2000).share("a", 100))
        .workload(workload("second", "q", ONE_CPU, T0 + 1000).priority(-5))
        .build();
    assert_eq!(names(&schedule(&s)), vec!["first", "second"]);
}

#[test]
fn a_job_without_share_counts_as_the_empty_share() {
    let s = cluster(3)
        .queue(queue("q", &["ce"]).fair_share(fair_policy(0, 0), vec![]))
        .workload(workload("a-0", "q", ONE_CPU, T0).share("a", 0))
        .workload(workload("a-1", "q", ONE_CPU, T0 + 1).share("a", 0))
        .workload(workload("none-0", "q", ONE_CPU, T0 + 2))
        .workload(workload("none-1", "q", ONE_CPU, T0 + 3))
        .build();
    // Ties at zero go by identifier: "" before "a"; then they alternate.
    assert_eq!(names(&schedule(&s)), vec!["none-0", "a-0", "none-1"]);
    let views = share_views(
        s.queues[0].fair_share.as_ref().unwrap(),
        &s.workloads,
        &[0, 1, 2, 3],
    );
    let shares: Vec<(&str, u64)> = views
        .iter()
        .map(|v| (v.share.as_str(), v.runnable_units))
        .collect();
    assert_eq!(shares, vec![("", 2), ("a", 2)]);
}

#[test]
fn equal_loads_go_by_share_identifier_not_by_submission() {
    let s = cluster(1)
        .queue(queue("q", &["ce"]).fair_share(fair_policy(0, 0), vec![]))
        .workload(workload("z-early", "q", ONE_CPU, T0).share("z", 0))
        .workload(workload("m-late", "q", ONE_CPU, T0 + 5000).share("m", 0))
        .build();
    assert_eq!(names(&schedule(&s)), vec!["m-late"]);
}

#[test]
fn a_strict_fifo_fair_queue_stops_at_the_first_unit_that_does_not_fit() {
    let build = |strict: bool| {
        let mut q = queue("q", &["ce"]).fair_share(fair_policy(0, 0), vec![]);
        if strict {
            q = q.strict_fifo();
        }
        // a's first job asks for more memory than the node has (its vCPU weighs as the others').
        snapshot()
            .environment(environment("ce"))
            .node(node("n1", "ce", alloc(2, 2048, 0)))
            .queue(q)
            .workload(workload("a-big", "q", req(1000, 4096, 0), T0).share("a", 0))
            .workload(workload("a-small", "q", ONE_CPU, T0 + 1000).share("a", 0))
            .workload(workload("b-small", "q", ONE_CPU, T0 + 2000).share("b", 0))
            .build()
    };
    // Best effort: a-big's turn ends, the share's next job and b's run.
    let r = schedule(&build(false));
    assert_eq!(names(&r), vec!["a-small", "b-small"]);
    // Strict FIFO: a-big is first in line (a < b at equal load): the queue stops there.
    let r = schedule(&build(true));
    assert!(r.placements.is_empty());
    let head = JobKey::new("default", "a-big");
    for w in [1, 2] {
        assert_eq!(
            r.verdicts[w].unplaced,
            Some(Unplaced::BehindStrictFifoHead { head: head.clone() })
        );
    }
}

#[test]
fn an_array_of_a_thousand_children_does_not_starve_another_share() {
    let s = cluster(8)
        .queue(queue("q", &["ce"]).fair_share(fair_policy(0, 0), vec![]))
        .workload(
            workload("array", "q", ONE_CPU, T0)
                .share("a", 0)
                .children("0-999"),
        )
        .workload(workload("b-0", "q", ONE_CPU, T0 + 1000).share("b", 0))
        .workload(workload("b-1", "q", ONE_CPU, T0 + 2000).share("b", 0))
        .workload(workload("b-2", "q", ONE_CPU, T0 + 3000).share("b", 0))
        .workload(workload("b-3", "q", ONE_CPU, T0 + 4000).share("b", 0))
        .workload(workload("b-4", "q", ONE_CPU, T0 + 5000).share("b", 0))
        .build();
    let r = schedule(&s);
    let order: Vec<(String, Option<u32>)> = r
        .placements
        .iter()
        .map(|p| (p.job.name.to_string(), p.array_index))
        .collect();
    let expected: Vec<(String, Option<u32>)> = [
        ("array", Some(0)),
        ("b-0", None),
        ("array", Some(1)),
        ("b-1", None),
        ("array", Some(2)),
        ("b-2", None),
        ("array", Some(3)),
        ("b-3", None),
    ]
    .iter()
    .map(|&(n, i)| (n.to_string(), i))
    .collect();
    assert_eq!(order, expected);
    assert_eq!(
        r.verdicts[0],
        WorkloadVerdict {
            placed: 4,
            unplaced: Some(Unplaced::NoCapacity)
        }
    );
    assert_eq!(r.verdicts[4].placed, 1);
    assert_eq!(r.verdicts[5].unplaced, Some(Unplaced::NoCapacity));
}

#[test]
fn an_array_placed_child_by_child_resumes_where_it_stopped_across_ranges() {
    // Children 3-4 and 10-11 and 20 (a retried group's holes); b interleaves.
    let s = cluster(6)
        .queue(queue("q", &["ce"]).fair_share(fair_policy(0, 0), vec![]))
        .workload(
            workload("array", "q", ONE_CPU, T0)
                .share("a", 0)
                .children("3-4,10-11,20"),
        )
        .workload(workload("b-0", "q", ONE_CPU, T0 + 1000).share("b", 0))
        .build();
    let r = schedule(&s);
    let children: Vec<Option<u32>> = r
        .placements
        .iter()
        .filter(|p| p.job.name == "array")
        .map(|p| p.array_index)
        .collect();
    assert_eq!(
        children,
        vec![Some(3), Some(4), Some(10), Some(11), Some(20)]
    );
    assert_eq!(
        r.verdicts[0],
        WorkloadVerdict {
            placed: 5,
            unplaced: None
        }
    );
    assert_eq!(names(&r)[1], "b-0");
}

#[test]
fn gangs_in_a_fair_queue_are_placed_whole_and_charge_all_their_vcpus() {
    let mut s = snapshot()
        .environment(environment("ce"))
        .queue(queue("q", &["ce"]).fair_share(fair_policy(0, 0), vec![]))
        .workload(workload("gang", "q", ONE_CPU, T0).share("a", 0).gang(4))
        .workload(workload("a-after", "q", ONE_CPU, T0 + 1000).share("a", 0));
    for i in 0..8 {
        s = s.node(node(&format!("n{i}"), "ce", alloc(1, 1 << 20, 0)));
    }
    for i in 0..6 {
        s = s.workload(workload(&format!("b-{i}"), "q", ONE_CPU, T0 + 2000 + i).share("b", 0));
    }
    let s = s.build();
    let r = schedule(&s);
    let gang_nodes: BTreeSet<&str> = r
        .placements
        .iter()
        .filter(|p| p.job.name == "gang")
        .map(|p| p.node.as_deref().unwrap())
        .collect();
    assert_eq!(gang_nodes.len(), 4, "whole, one node per member");
    assert_eq!(r.verdicts[0].placed, 4);
    // The gang charged a 4 vCPUs: b takes the other 4 nodes before a's next job.
    let by_share = placed_by_share(&s, &r);
    assert_eq!((count(&by_share, "a"), count(&by_share, "b")), (4, 4));
    assert_eq!(r.verdicts[1].unplaced, Some(Unplaced::NoCapacity));
}

/// Pass after pass on a saturated environment that frees one slot per pass: the units in the
/// order the passes place them.
fn placed_one_per_pass(
    q: QueueSpec,
    mut pending: Vec<Workload>,
    units: usize,
) -> Vec<(String, Option<u32>)> {
    let mut order = Vec::new();
    for _ in 0..units {
        let s = with_workloads(
            snapshot()
                .queue(q.clone())
                .environment(environment("ce"))
                .node(node("n1", "ce", alloc(8, 1 << 20, 0)).used(Resources::new(7000, 0, 0, 7))),
            pending.clone(),
        )
        .build();
        let r = schedule(&s);
        assert_eq!(r.placements.len(), 1);
        let p = &r.placements[0];
        order.push((p.job.name.to_string(), p.array_index));
        match (&mut pending[p.workload].units, p.array_index) {
            (Units::Array(indices), Some(i)) => {
                indices.remove(i);
                if indices.is_empty() {
                    pending.remove(p.workload);
                }
            }
            _ => {
                pending.remove(p.workload);
            }
        }
    }
    order
}

fn front_names(s: &Snapshot, limit: usize) -> Vec<(String, Option<u32>)> {
    queue_front(s, &s.queues[0], limit)
        .iter()
        .map(|f| (s.workloads[f.workload].job.name.to_string(), f.array_index))
        .collect()
}

fn front_workloads() -> Vec<Workload> {
    vec![
        workload("late", "q", ONE_CPU, T0 + 5000)
            .share("a", 0)
            .build(),
        workload("array", "q", ONE_CPU, T0 + 1000)
            .share("a", 2)
            .children("0-2")
            .build(),
        workload("retried", "q", ONE_CPU, T0 + 9000)
            .share("a", 0)
            .retried(2)
            .build(),
        workload("early", "q", ONE_CPU, T0).share("a", 0).build(),
        workload("urgent", "q", ONE_CPU, T0 + 7000)
            .share("a", 9)
            .build(),
    ]
}

#[test]
fn the_front_of_a_fifo_queue_is_the_order_in_which_passes_place_its_units() {
    let q = queue("q", &["ce"]).build();
    let s = with_workloads(cluster(8).queue(q.clone()), front_workloads()).build();
    let front = front_names(&s, 100);
    let unit = |n: &str, i: Option<u32>| (n.to_string(), i);
    assert_eq!(
        front,
        vec![
            unit("retried", None),
            unit("early", None),
            unit("array", Some(0)),
            unit("array", Some(1)),
            unit("array", Some(2)),
            unit("late", None),
            unit("urgent", None),
        ]
    );
    assert_eq!(placed_one_per_pass(q, front_workloads(), 7), front);
}

#[test]
fn the_front_of_a_fair_queue_is_the_order_in_which_passes_place_its_units() {
    let q = queue("q", &["ce"])
        .fair_share(
            fair_policy(600, 0),
            vec![share_state("a").running(7000).build()],
        )
        .build();
    let s = with_workloads(cluster(8).queue(q.clone()), front_workloads()).build();
    let front = front_names(&s, 100);
    let unit = |n: &str, i: Option<u32>| (n.to_string(), i);
    assert_eq!(
        front,
        vec![
            unit("retried", None),
            unit("urgent", None),
            unit("array", Some(0)),
            unit("array", Some(1)),
            unit("array", Some(2)),
            unit("early", None),
            unit("late", None),
        ]
    );
    assert_eq!(placed_one_per_pass(q, front_workloads(), 7), front);
}

#[test]
fn the_front_interleaves_shares_as_the_pass_does() {
    let policy = fair_policy(0, 0).weight("b", 0.5);
    let mut all = jobs("a", 10, T0);
    all.extend(jobs("b", 10, T0 + 100_000));
    let s = with_workloads(
        cluster(6).queue(queue("q", &["ce"]).fair_share(policy, vec![])),
        all,
    )
    .build();
    let pass: Vec<(String, Option<u32>)> = schedule(&s)
        .placements
        .iter()
        .map(|p| (p.job.name.to_string(), p.array_index))
        .collect();
    assert_eq!(front_names(&s, 6), pass);
}

#[test]
fn the_front_lists_at_most_limit_units() {
    let mut all = jobs("a", 50, T0);
    all.push(
        workload("array", "q", ONE_CPU, T0 - 1)
            .share("b", 0)
            .children("0-99")
            .build(),
    );
    for fair in [false, true] {
        let mut q = queue("q", &["ce"]);
        if fair {
            q = q.fair_share(fair_policy(0, 0), vec![]);
        }
        let s = with_workloads(cluster(1).queue(q), all.clone()).build();
        for limit in [0, 1, 10, 100, 1000] {
            let front = queue_front(&s, &s.queues[0], limit);
            assert_eq!(front.len(), limit.min(150), "fair {fair}, limit {limit}");
        }
    }
}
