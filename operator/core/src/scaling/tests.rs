use super::*;
use crate::fixtures::{environment, node, queue, snapshot, workload, SnapshotBuilder};
use crate::pool::{expand_instance_types, lookup};

const NOW: i64 = 1_000_000;
const DELAY_MS: i64 = 60_000;

fn cpu(vcpus: i64, memory_mib: i64) -> Resources {
    Resources::request(Resources::vcpus(vcpus), memory_mib, 0)
}

fn pool(ce: &str, min: i64, max: i64, strategy: AllocationStrategy, types: &[&str]) -> PoolSpec {
    PoolSpec {
        environment: ce.to_string(),
        min_vcpus: min,
        max_vcpus: max,
        desired_vcpus: None,
        strategy,
        offers: expand_instance_types(types)
            .unwrap()
            .into_iter()
            .map(Offer::of)
            .collect(),
        scale_down_delay_ms: DELAY_MS,
    }
}

fn jobs(mut b: SnapshotBuilder, n: usize, q: &str, request: Resources) -> SnapshotBuilder {
    for i in 0..n {
        b = b.workload(workload(&format!("job-{q}-{i}"), q, request, i as i64));
    }
    b
}

fn pool_node(name: &str, ce: &str, ty: &str) -> crate::scheduler::NodeSnapshot {
    node(name, ce, lookup(ty).unwrap().capacity())
        .instance_type(ty)
        .build()
}

fn added(d: &ScalingDecision) -> Vec<(&str, u32)> {
    d.add
        .iter()
        .map(|a| (a.instance_type.as_str(), a.count))
        .collect()
}

fn added_vcpus(d: &ScalingDecision) -> i64 {
    d.add
        .iter()
        .map(|a| lookup(&a.instance_type).unwrap().vcpus * i64::from(a.count))
        .sum()
}

fn no_facts() -> HashMap<String, NodeFacts> {
    HashMap::new()
}

#[test]
fn from_zero_runnable_work_adds_the_cheapest_fitting_nodes_up_to_max_vcpus() {
    let s = jobs(
        snapshot()
            .queue(queue("q", &["ce"]))
            .environment(environment("ce")),
        20,
        "q",
        cpu(1, 1024),
    )
    .build();
    let pools = [pool("ce", 0, 8, AllocationStrategy::BestFit, &["optimal"])];
    let d = &decide_scaling(&s, &pools, &no_facts(), NOW)["ce"];
    assert_eq!(added(d), vec![("c5.large", 4)]);
    assert_eq!(d.desired_vcpus, 8);
    assert_eq!(d.demand_milli_cpu, 8_000);
    assert_eq!(d.wanted_beyond_max_vcpus, 12);
    assert!(d.remove.is_empty());
}

#[test]
fn booting_nodes_count_so_a_second_pass_asks_for_nothing_more() {
    let mut b = jobs(
        snapshot()
            .queue(queue("q", &["ce"]))
            .environment(environment("ce")),
        8,
        "q",
        cpu(1, 1024),
    );
    let mut facts = HashMap::new();
    for i in 0..4 {
        let name = format!("ce-c5-large-{i}");
        b = b.node(pool_node(&name, "ce", "c5.large"));
        facts.insert(
            name,
            NodeFacts {
                state: NodeState::Booting,
                ..NodeFacts::default()
            },
        );
    }
    let pools = [pool("ce", 0, 8, AllocationStrategy::BestFit, &["optimal"])];
    let d = &decide_scaling(&b.build(), &pools, &facts, NOW)["ce"];
    assert!(d.add.is_empty(), "{d:?}");
    assert!(d.remove.is_empty());
    assert_eq!(d.desired_vcpus, 8);
    assert_eq!(d.wanted_beyond_max_vcpus, 0);
}

#[test]
fn best_fit_picks_the_cheapest_type_with_the_memory_a_job_needs() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .workload(workload("big", "q", cpu(1, 16_384), 0))
        .build();
    let pools = [pool("ce", 0, 64, AllocationStrategy::BestFit, &["optimal"])];
    let d = &decide_scaling(&s, &pools, &no_facts(), NOW)["ce"];
    // r5.large (2 vCPUs, 16 GiB) is the cheapest type with 16 GiB; r4.large has 15.25.
    assert_eq!(added(d), vec![("r5.large", 1)]);
}

fn two_types(strategy: AllocationStrategy, max: i64) -> PoolSpec {
    // The cheaper type is the larger one.
    let big = InstanceType::custom("big.8", 8, 32_768, 0, 100_000);
    let small = InstanceType::custom("small.2", 2, 8_192, 0, 150_000);
    PoolSpec {
        offers: vec![Offer::of(&big), Offer::of(&small)],
        ..pool("ce", 0, max, strategy, &["c5"])
    }
}

#[test]
fn best_fit_waits_for_the_cheapest_type_when_max_vcpus_leaves_no_room_for_it() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .workload(workload("j", "q", cpu(1, 1024), 0))
        .build();
    let d = &decide_scaling(
        &s,
        &[two_types(AllocationStrategy::BestFit, 4)],
        &no_facts(),
        NOW,
    )["ce"];
    assert!(d.add.is_empty());
    assert_eq!(d.wanted_beyond_max_vcpus, 1);
    let d = &decide_scaling(
        &s,
        &[two_types(AllocationStrategy::BestFit, 8)],
        &no_facts(),
        NOW,
    )["ce"];
    assert_eq!(added(d), vec![("big.8", 1)]);
}

#[test]
fn best_fit_progressive_moves_on_to_a_type_that_fits_under_max_vcpus() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .workload(workload("j", "q", cpu(1, 1024), 0))
        .build();
    let p = two_types(AllocationStrategy::BestFitProgressive, 4);
    let d = &decide_scaling(&s, &[p], &no_facts(), NOW)["ce"];
    assert_eq!(added(d), vec![("small.2", 1)]);
    assert_eq!(d.wanted_beyond_max_vcpus, 0);
}

#[test]
fn best_fit_waits_but_progressive_moves_on_when_the_cheapest_type_has_no_capacity() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .workload(workload("j", "q", cpu(1, 1024), 0))
        .build();
    for (strategy, expected) in [
        (AllocationStrategy::BestFit, vec![]),
        (
            AllocationStrategy::BestFitProgressive,
            vec![("m5.large", 1)],
        ),
    ] {
        let mut p = pool("ce", 0, 16, strategy, &["c5.large", "m5.large"]);
        p.offers[0].capacity = 0; // c5.large: none available
        let d = &decide_scaling(&s, &[p], &no_facts(), NOW)["ce"];
        assert_eq!(added(d), expected, "{strategy:?}");
    }
}

#[test]
fn spot_strategies_choose_by_capacity_and_price() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .workload(workload("j", "q", cpu(1, 1024), 0))
        .build();
    let mut p = pool(
        "ce",
        0,
        64,
        AllocationStrategy::SpotCapacityOptimized,
        &["c5.large", "m5.large", "r5.large"],
    );
    p.offers[0].capacity = 40; // c5.large: cheapest, shallow pool
    p.offers[1].capacity = 90; // m5.large
    p.offers[2].capacity = 100; // r5.large: deepest, dearest
    let d = &decide_scaling(&s, std::slice::from_ref(&p), &no_facts(), NOW)["ce"];
    assert_eq!(added(d), vec![("r5.large", 1)]);
    p.strategy = AllocationStrategy::SpotPriceCapacityOptimized;
    // Pools at least half as deep as the deepest: m5.large and r5.large; m5 is cheaper.
    let d = &decide_scaling(&s, &[p], &no_facts(), NOW)["ce"];
    assert_eq!(added(d), vec![("m5.large", 1)]);
}

#[test]
fn work_spills_to_the_next_environment_of_the_queue_and_counts_there() {
    let s = jobs(
        snapshot()
            .queue(queue("q", &["a", "b"]))
            .environment(environment("a"))
            .environment(environment("b")),
        6,
        "q",
        cpu(1, 1024),
    )
    .build();
    let pools = [
        pool("a", 0, 2, AllocationStrategy::BestFit, &["c5"]),
        pool("b", 0, 8, AllocationStrategy::BestFit, &["c5"]),
    ];
    let ds = decide_scaling(&s, &pools, &no_facts(), NOW);
    assert_eq!(added(&ds["a"]), vec![("c5.large", 1)]);
    assert_eq!(added(&ds["b"]), vec![("c5.large", 2)]);
    assert_eq!(ds["a"].wanted_beyond_max_vcpus, 0);
    assert_eq!(ds["b"].desired_vcpus, 4);
}

#[test]
fn disabled_or_invalid_environments_are_skipped_and_add_nothing() {
    let s = jobs(
        snapshot()
            .queue(queue("q", &["off", "bad", "on"]))
            .environment(environment("off").disabled())
            .environment(environment("bad").invalid())
            .environment(environment("on")),
        2,
        "q",
        cpu(1, 1024),
    )
    .build();
    let pools = [
        pool("off", 4, 8, AllocationStrategy::BestFit, &["c5"]),
        pool("bad", 0, 8, AllocationStrategy::BestFit, &["c5"]),
        pool("on", 0, 8, AllocationStrategy::BestFit, &["c5"]),
    ];
    let ds = decide_scaling(&s, &pools, &no_facts(), NOW);
    assert!(
        ds["off"].add.is_empty(),
        "DISABLED adds nothing, not even minvCpus"
    );
    assert!(ds["bad"].add.is_empty());
    assert_eq!(added(&ds["on"]), vec![("c5.large", 1)]);
}

#[test]
fn disabled_queues_count_no_demand() {
    let s = jobs(
        snapshot()
            .queue(queue("q", &["ce"]).disabled())
            .environment(environment("ce")),
        3,
        "q",
        cpu(1, 1024),
    )
    .build();
    let pools = [pool("ce", 0, 8, AllocationStrategy::BestFit, &["c5"])];
    let d = &decide_scaling(&s, &pools, &no_facts(), NOW)["ce"];
    assert!(d.add.is_empty());
    assert_eq!(d.desired_vcpus, 0);
}

#[test]
fn free_room_on_existing_nodes_takes_demand_first() {
    let s = jobs(
        snapshot()
            .queue(queue("q", &["ce"]))
            .environment(environment("ce"))
            .node(pool_node("n1", "ce", "c5.xlarge")),
        4,
        "q",
        cpu(1, 1024),
    )
    .build();
    let facts = HashMap::from([(
        "n1".to_string(),
        NodeFacts {
            state: NodeState::Ready,
            barge_pods: 0,
            idle_since_ms: Some(0),
        },
    )]);
    let pools = [pool("ce", 0, 8, AllocationStrategy::BestFit, &["c5"])];
    let d = &decide_scaling(&s, &pools, &facts, NOW)["ce"];
    assert!(d.add.is_empty());
    assert!(d.remove.is_empty(), "a node about to take work is not idle");
}

#[test]
fn an_array_counts_every_child_and_fills_whole_nodes() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .workload(workload("arr", "q", cpu(1, 1024), 0).children("0-9"))
        .build();
    let pools = [pool(
        "ce",
        0,
        100,
        AllocationStrategy::BestFit,
        &["c5.large"],
    )];
    let d = &decide_scaling(&s, &pools, &no_facts(), NOW)["ce"];
    assert_eq!(added(d), vec![("c5.large", 5)]);
    assert_eq!(d.desired_vcpus, 10);
}

#[test]
fn an_instance_type_constraint_adds_only_that_type() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .workload(workload("j", "q", cpu(1, 1024), 0).instance_type("m5.xlarge"))
        .build();
    let pools = [pool(
        "ce",
        0,
        100,
        AllocationStrategy::BestFit,
        &["optimal"],
    )];
    let d = &decide_scaling(&s, &pools, &no_facts(), NOW)["ce"];
    assert_eq!(added(d), vec![("m5.xlarge", 1)]);
}

#[test]
fn work_that_fits_no_type_wants_nothing_of_the_pool() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .workload(workload("huge", "q", cpu(500, 1024), 0))
        .build();
    let pools = [pool("ce", 0, 1000, AllocationStrategy::BestFit, &["c5"])];
    let d = &decide_scaling(&s, &pools, &no_facts(), NOW)["ce"];
    assert!(d.add.is_empty());
    assert_eq!(d.wanted_beyond_max_vcpus, 0);
}

#[test]
fn no_demand_keeps_the_min_and_desired_vcpus_floor() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .build();
    let mut p = pool("ce", 4, 16, AllocationStrategy::BestFit, &["c5.large"]);
    let d = &decide_scaling(&s, std::slice::from_ref(&p), &no_facts(), NOW)["ce"];
    assert_eq!(added(d), vec![("c5.large", 2)]);
    assert_eq!(d.desired_vcpus, 4);
    p.desired_vcpus = Some(8);
    let d = &decide_scaling(&s, &[p], &no_facts(), NOW)["ce"];
    assert_eq!(added(d), vec![("c5.large", 4)]);
    assert_eq!(d.desired_vcpus, 8);
}

#[test]
fn desired_vcpus_is_a_floor_demand_goes_above_it_and_scale_in_stops_at_it() {
    // desiredvCpus 4 of c5.large (2 vCPUs): two nodes kept, demand for 6 more vCPUs adds three.
    let mut p = pool("ce", 0, 16, AllocationStrategy::BestFit, &["c5.large"]);
    p.desired_vcpus = Some(4);
    let busy = jobs(
        snapshot()
            .queue(queue("q", &["ce"]))
            .environment(environment("ce")),
        5,
        "q",
        cpu(2, 1024),
    )
    .node(pool_node("n0", "ce", "c5.large"))
    .node(pool_node("n1", "ce", "c5.large"))
    .build();
    let d = &decide_scaling(&busy, std::slice::from_ref(&p), &no_facts(), NOW)["ce"];
    assert_eq!(added(d), vec![("c5.large", 3)]);
    assert_eq!(d.desired_vcpus, 10);
    // Without demand, four idle nodes past the delay: two go, the desiredvCpus floor stays.
    let idle_pool = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(pool_node("n0", "ce", "c5.large"))
        .node(pool_node("n1", "ce", "c5.large"))
        .node(pool_node("n2", "ce", "c5.large"))
        .node(pool_node("n3", "ce", "c5.large"))
        .build();
    let facts: HashMap<String, NodeFacts> = (0..4)
        .map(|i| (format!("n{i}"), idle(NOW - DELAY_MS - i)))
        .collect();
    let d = &decide_scaling(&idle_pool, std::slice::from_ref(&p), &facts, NOW)["ce"];
    assert_eq!(d.remove, vec!["n2".to_string(), "n3".to_string()]);
    assert!(d.add.is_empty());
    assert_eq!(d.desired_vcpus, 4);
    // DISABLED: desiredvCpus is no floor; the pool shrinks to minvCpus (0) as nodes go idle.
    let disabled = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce").disabled())
        .node(pool_node("n0", "ce", "c5.large"))
        .node(pool_node("n1", "ce", "c5.large"))
        .build();
    let d = &decide_scaling(&disabled, &[p], &facts, NOW)["ce"];
    assert_eq!(d.remove, vec!["n0".to_string(), "n1".to_string()]);
    assert_eq!(d.desired_vcpus, 0);
}

#[test]
fn work_without_gpus_gets_a_type_without_gpus_and_gpu_work_a_gpu_type() {
    let gpu = Resources::request(Resources::vcpus(1), 1024, 1);
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .workload(workload("gpu", "q", gpu, 0))
        .workload(workload("cpu", "q", cpu(1, 512), 1))
        .build();
    for strategy in [
        AllocationStrategy::BestFit,
        AllocationStrategy::BestFitProgressive,
        AllocationStrategy::SpotCapacityOptimized,
        AllocationStrategy::SpotPriceCapacityOptimized,
    ] {
        let p = pool("ce", 0, 32, strategy, &["m5.large", "p3.2xlarge"]);
        let d = &decide_scaling(&s, &[p], &no_facts(), NOW)["ce"];
        // The CPU job does not fill the room left on the p3 added for the GPU job.
        assert_eq!(
            added(d),
            vec![("m5.large", 1), ("p3.2xlarge", 1)],
            "{strategy:?}"
        );
    }
    // Only GPU types listed: work without GPUs may use them.
    let p = pool("ce", 0, 32, AllocationStrategy::BestFit, &["p3.2xlarge"]);
    let d = &decide_scaling(&s, &[p], &no_facts(), NOW)["ce"];
    assert_eq!(added(d), vec![("p3.2xlarge", 1)]);
}

fn idle(since: i64) -> NodeFacts {
    NodeFacts {
        state: NodeState::Ready,
        barge_pods: 0,
        idle_since_ms: Some(since),
    }
}

#[test]
fn idle_nodes_go_after_the_delay_down_to_min_vcpus_and_busy_nodes_stay() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(pool_node("busy", "ce", "c5.large"))
        .node(pool_node("old-idle", "ce", "c5.large"))
        .node(pool_node("older-idle", "ce", "c5.large"))
        .node(pool_node("new-idle", "ce", "c5.large"))
        .build();
    let facts = HashMap::from([
        (
            "busy".to_string(),
            NodeFacts {
                state: NodeState::Ready,
                barge_pods: 1,
                idle_since_ms: None,
            },
        ),
        ("old-idle".to_string(), idle(NOW - DELAY_MS)),
        ("older-idle".to_string(), idle(NOW - 2 * DELAY_MS)),
        ("new-idle".to_string(), idle(NOW - DELAY_MS + 1)),
    ]);
    let p = pool("ce", 0, 16, AllocationStrategy::BestFit, &["c5"]);
    let d = &decide_scaling(&s, std::slice::from_ref(&p), &facts, NOW)["ce"];
    assert_eq!(
        d.remove,
        vec!["old-idle".to_string(), "older-idle".to_string()]
    );
    // minvCpus 6 keeps one of them: the longest idle goes first.
    let p = PoolSpec { min_vcpus: 6, ..p };
    let d = &decide_scaling(&s, &[p], &facts, NOW)["ce"];
    assert_eq!(d.remove, vec!["older-idle".to_string()]);
}

#[test]
fn a_busy_node_is_never_removed_even_when_draining_or_disabled() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce").disabled())
        .node(pool_node("busy", "ce", "c5.large").clone())
        .node(pool_node("drained", "ce", "c5.large"))
        .node(pool_node("idle", "ce", "c5.large"))
        .build();
    let facts = HashMap::from([
        (
            "busy".to_string(),
            NodeFacts {
                state: NodeState::Draining,
                barge_pods: 2,
                idle_since_ms: None,
            },
        ),
        (
            "drained".to_string(),
            NodeFacts {
                state: NodeState::Draining,
                barge_pods: 0,
                idle_since_ms: Some(NOW),
            },
        ),
        ("idle".to_string(), idle(NOW - DELAY_MS)),
    ]);
    let p = pool("ce", 0, 16, AllocationStrategy::BestFit, &["c5"]);
    let d = &decide_scaling(&s, &[p], &facts, NOW)["ce"];
    assert_eq!(d.remove, vec!["drained".to_string(), "idle".to_string()]);
    assert!(d.add.is_empty());
}

#[test]
fn higher_priority_queues_take_the_room_first() {
    let s = snapshot()
        .queue(queue("low", &["small", "big"]).priority(1))
        .queue(queue("high", &["small"]).priority(10))
        .environment(environment("small"))
        .environment(environment("big"))
        .workload(workload("l", "low", cpu(2, 1024), 0))
        .workload(workload("h", "high", cpu(2, 1024), 1))
        .build();
    let pools = [
        pool("small", 0, 2, AllocationStrategy::BestFit, &["c5.large"]),
        pool("big", 0, 8, AllocationStrategy::BestFit, &["c5.large"]),
    ];
    let ds = decide_scaling(&s, &pools, &no_facts(), NOW);
    assert_eq!(added(&ds["small"]), vec![("c5.large", 1)]);
    assert_eq!(
        added(&ds["big"]),
        vec![("c5.large", 1)],
        "low spills to big"
    );
    assert_eq!(added_vcpus(&ds["small"]), 2);
}

// Multi-node jobs (gangs)

fn busy() -> NodeFacts {
    NodeFacts {
        state: NodeState::Ready,
        barge_pods: 1,
        idle_since_ms: None,
    }
}

#[test]
fn a_gang_gets_a_whole_node_per_member() {
    // Three 1-vCPU members: three c5.large, not one node for all (a c5.large holds two units).
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .workload(workload("mnp", "q", cpu(1, 1024), 0).gang(3))
        .workload(workload("single-a", "q", cpu(1, 1024), 1))
        .workload(workload("single-b", "q", cpu(1, 1024), 2))
        .build();
    let pools = [pool(
        "ce",
        0,
        64,
        AllocationStrategy::BestFit,
        &["c5.large"],
    )];
    let d = &decide_scaling(&s, &pools, &no_facts(), NOW)["ce"];
    // The single jobs share a fourth node: they do not fill the gang's nodes.
    assert_eq!(added(d), vec![("c5.large", 4)]);
    assert_eq!(
        d.demand_milli_cpu,
        3 * 2_000 + 2 * 1_000,
        "whole nodes for the gang"
    );
    assert_eq!(d.desired_vcpus, 8);
    assert_eq!(d.wanted_beyond_max_vcpus, 0);
}

#[test]
fn a_gang_takes_only_existing_nodes_without_barge_pods_that_nothing_else_took() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(pool_node("idle", "ce", "c5.xlarge"))
        .node(pool_node("busy", "ce", "c5.xlarge"))
        .node(pool_node("taken", "ce", "c5.xlarge"))
        // Counted first: it goes to the first node with room in name order ("busy").
        .workload(workload("single", "q", cpu(1, 1024), 0))
        .workload(workload("mnp", "q", cpu(2, 1024), 1).gang(3))
        .build();
    let facts = HashMap::from([
        ("idle".to_string(), idle(0)),
        ("busy".to_string(), busy()),
        ("taken".to_string(), idle(0)),
    ]);
    let pools = [pool(
        "ce",
        0,
        64,
        AllocationStrategy::BestFit,
        &["c5.large", "c5.xlarge"],
    )];
    let d = &decide_scaling(&s, &pools, &facts, NOW)["ce"];
    // The single job goes to "busy" (first with room, name order); "idle" and "taken" take two
    // members; the third gets a node of its own.
    assert_eq!(added(d), vec![("c5.large", 1)]);
    assert!(d.remove.is_empty(), "{d:?}");
    // With the single job on an idle node instead (the busy one full), the gang needs two.
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(pool_node("a-idle", "ce", "c5.xlarge"))
        .node(pool_node("b-idle", "ce", "c5.xlarge"))
        .workload(workload("single", "q", cpu(1, 1024), 0))
        .workload(workload("mnp", "q", cpu(2, 1024), 1).gang(3))
        .build();
    let facts = HashMap::from([
        ("a-idle".to_string(), idle(0)),
        ("b-idle".to_string(), idle(0)),
    ]);
    let d = &decide_scaling(&s, &pools, &facts, NOW)["ce"];
    assert_eq!(added(d), vec![("c5.large", 2)]);
}

#[test]
fn spot_pools_never_grow_for_a_gang() {
    let s = snapshot()
        .queue(queue("q", &["spot", "ondemand"]))
        .environment(environment("spot").spot())
        .environment(environment("ondemand"))
        .workload(workload("mnp", "q", cpu(1, 1024), 0).gang(2))
        .build();
    let pools = [
        pool(
            "spot",
            0,
            64,
            AllocationStrategy::SpotCapacityOptimized,
            &["c5.large"],
        ),
        pool(
            "ondemand",
            0,
            64,
            AllocationStrategy::BestFit,
            &["c5.large"],
        ),
    ];
    let d = decide_scaling(&s, &pools, &no_facts(), NOW);
    assert!(d["spot"].add.is_empty(), "{:?}", d["spot"]);
    assert_eq!(d["spot"].wanted_beyond_max_vcpus, 0);
    assert_eq!(added(&d["ondemand"]), vec![("c5.large", 2)]);
    // A queue of SPOT pools only: nothing grows, nothing is wanted.
    let s = snapshot()
        .queue(queue("q", &["spot"]))
        .environment(environment("spot").spot())
        .workload(workload("mnp", "q", cpu(1, 1024), 0).gang(2))
        .build();
    let d = &decide_scaling(&s, &pools[..1], &no_facts(), NOW)["spot"];
    assert!(d.add.is_empty());
    assert_eq!(d.demand_milli_cpu, 0);
}

#[test]
fn gang_members_get_the_instance_type_their_node_range_asks_for() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .workload(workload("mnp", "q", cpu(1, 1024), 0).gang(3).node_request(
            1,
            cpu(1, 1024),
            Some("c5.2xlarge"),
        ))
        .build();
    let pools = [pool(
        "ce",
        0,
        64,
        AllocationStrategy::BestFit,
        &["c5.large", "c5.2xlarge"],
    )];
    let d = &decide_scaling(&s, &pools, &no_facts(), NOW)["ce"];
    assert_eq!(added(d), vec![("c5.large", 2), ("c5.2xlarge", 1)]);
}

#[test]
fn a_gang_larger_than_max_vcpus_adds_nothing_and_is_wanted_beyond_it() {
    // Three c5.large (6 vCPUs) under maxvCpus 4: it can never fit.
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .workload(workload("mnp", "q", cpu(1, 1024), 0).gang(3))
        .build();
    let pools = [pool("ce", 0, 4, AllocationStrategy::BestFit, &["c5.large"])];
    let d = &decide_scaling(&s, &pools, &no_facts(), NOW)["ce"];
    assert!(d.add.is_empty(), "{d:?}");
    assert_eq!(d.wanted_beyond_max_vcpus, 6);
    // It fits under maxvCpus 8 once the busy node frees: the room left is used now, and the
    // member still without a node is wanted beyond maxvCpus.
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(pool_node("busy", "ce", "c5.large"))
        .workload(workload("mnp", "q", cpu(1, 1024), 0).gang(4))
        .build();
    let facts = HashMap::from([("busy".to_string(), busy())]);
    let pools = [pool("ce", 0, 8, AllocationStrategy::BestFit, &["c5.large"])];
    let d = &decide_scaling(&s, &pools, &facts, NOW)["ce"];
    assert_eq!(added(d), vec![("c5.large", 3)]);
    assert_eq!(d.wanted_beyond_max_vcpus, 2);
}

#[test]
fn a_gang_goes_whole_to_the_first_pool_that_can_take_all_of_it() {
    // The first pool has room for one member only; the second takes the whole gang.
    let s = snapshot()
        .queue(queue("q", &["small", "large"]))
        .environment(environment("small"))
        .environment(environment("large"))
        .workload(workload("mnp", "q", cpu(1, 1024), 0).gang(2))
        .build();
    let pools = [
        pool("small", 0, 2, AllocationStrategy::BestFit, &["c5.large"]),
        pool("large", 0, 64, AllocationStrategy::BestFit, &["c5.large"]),
    ];
    let d = decide_scaling(&s, &pools, &no_facts(), NOW);
    assert!(d["small"].add.is_empty(), "{:?}", d["small"]);
    assert_eq!(added(&d["large"]), vec![("c5.large", 2)]);
}
