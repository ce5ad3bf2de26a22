//! Tests of the scheduling pass, one (or more) per rule.

use super::*;
use crate::fixtures::{alloc, environment, node, queue, req, snapshot, workload, T0};

fn placed(result: &PassResult) -> Vec<(String, Option<u32>, String, String)> {
    result
        .placements
        .iter()
        .map(|p| {
            (
                p.job.name.to_string(),
                p.array_index,
                p.environment.clone(),
                p.node.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn jobs_placed(result: &PassResult) -> Vec<String> {
    result
        .placements
        .iter()
        .map(|p| p.job.name.to_string())
        .collect()
}

fn verdict(result: &PassResult, w: usize) -> Option<Unplaced> {
    result.verdicts[w].unplaced.clone()
}

#[test]
fn fifo_within_a_queue() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("n1", "ce", alloc(2, 4096, 0)))
        .workload(workload("late", "q", req(1000, 1024, 0), T0 + 2))
        .workload(workload("early", "q", req(1000, 1024, 0), T0))
        .workload(workload("middle", "q", req(1000, 1024, 0), T0 + 1))
        .build();
    let r = schedule(&s);
    assert_eq!(jobs_placed(&r), vec!["early", "middle"]);
    assert_eq!(verdict(&r, 0), Some(Unplaced::NoCapacity));
    assert_eq!(
        r.verdicts[1],
        WorkloadVerdict {
            placed: 1,
            unplaced: None
        }
    );
}

#[test]
fn jobs_of_the_same_second_go_in_the_order_the_api_server_stored_them_not_by_name() {
    // `kubectl apply -f dir/`: three jobs in one second of creationTimestamp, created c, a, b.
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("n1", "ce", alloc(2, 4096, 0)))
        .workload(workload("a", "q", req(1000, 1024, 0), T0).submission_order(1_002))
        .workload(workload("b", "q", req(1000, 1024, 0), T0).submission_order(1_003))
        .workload(workload("c", "q", req(1000, 1024, 0), T0).submission_order(1_001))
        .build();
    let r = schedule(&s);
    assert_eq!(jobs_placed(&r), vec!["c", "a"]);
    // A later second still goes after an earlier one, whatever its order number.
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("n1", "ce", alloc(1, 4096, 0)))
        .workload(workload("late", "q", req(1000, 1024, 0), T0 + 1_000).submission_order(1))
        .workload(workload("early", "q", req(1000, 1024, 0), T0).submission_order(9))
        .build();
    assert_eq!(jobs_placed(&schedule(&s)), vec!["early"]);
}

#[test]
fn retried_jobs_go_first() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("n1", "ce", alloc(1, 4096, 0)))
        .workload(workload("old", "q", req(1000, 1024, 0), T0))
        .workload(workload("retry", "q", req(1000, 1024, 0), T0 + 100).retried(2))
        .build();
    let r = schedule(&s);
    assert_eq!(jobs_placed(&r), vec!["retry"]);
    assert_eq!(r.placements[0].attempt, 2);
}

#[test]
fn queues_sharing_an_environment_are_served_by_priority_then_name() {
    let s = snapshot()
        .queue(queue("low", &["ce"]).priority(1))
        .queue(queue("high", &["ce"]).priority(10))
        .queue(queue("b-mid", &["ce"]).priority(5))
        .queue(queue("a-mid", &["ce"]).priority(5))
        .environment(environment("ce"))
        .node(node("n1", "ce", alloc(3, 8192, 0)))
        .workload(workload("low-job", "low", req(1000, 1, 0), T0))
        .workload(workload("high-job", "high", req(1000, 1, 0), T0 + 50))
        .workload(workload("b-job", "b-mid", req(1000, 1, 0), T0))
        .workload(workload("a-job", "a-mid", req(1000, 1, 0), T0 + 10))
        .build();
    let r = schedule(&s);
    assert_eq!(jobs_placed(&r), vec!["high-job", "a-job", "b-job"]);
    assert_eq!(verdict(&r, 0), Some(Unplaced::NoCapacity));
    let order: Vec<&str> = order_queues(&s.queues)
        .into_iter()
        .map(|q| s.queues[q].name.as_str())
        .collect();
    assert_eq!(order, vec!["high", "a-mid", "b-mid", "low"]);
}

#[test]
fn environments_are_tried_in_queue_order() {
    let s = snapshot()
        .queue(queue("q", &["first", "second"]))
        .environment(environment("second"))
        .environment(environment("first"))
        .node(node("a", "first", alloc(1, 2048, 0)))
        .node(node("b", "second", alloc(8, 2048, 0)))
        .workload(workload("j1", "q", req(1000, 1024, 0), T0))
        .workload(workload("j2", "q", req(1000, 1024, 0), T0 + 1))
        .build();
    let r = schedule(&s);
    assert_eq!(
        placed(&r),
        vec![
            ("j1".to_string(), None, "first".to_string(), "a".to_string()),
            (
                "j2".to_string(),
                None,
                "second".to_string(),
                "b".to_string()
            ),
        ]
    );
}

#[test]
fn best_fit_packs_the_fullest_node_that_fits() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("roomy", "ce", alloc(16, 65536, 0)))
        .node(node("snug", "ce", alloc(4, 16384, 0)).used(req(2000, 0, 0)))
        .node(node("too-small", "ce", alloc(1, 16384, 0)))
        .workload(workload("j", "q", req(2000, 1024, 0), T0))
        .build();
    let r = schedule(&s);
    assert_eq!(r.placements[0].node.as_deref(), Some("snug"));
}

#[test]
fn pods_that_are_not_barges_count_against_free_capacity() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("busy", "ce", alloc(4, 8192, 0)).used(Resources::new(3500, 1024, 0, 3)))
        .workload(workload("j", "q", req(1000, 1024, 0), T0))
        .build();
    assert_eq!(verdict(&schedule(&s), 0), Some(Unplaced::NoCapacity));
    let overcommitted = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("over", "ce", alloc(4, 8192, 0)).used(req(9000, 0, 0)))
        .workload(workload("j", "q", req(1, 1, 0), T0))
        .build();
    assert!(schedule(&overcommitted).placements.is_empty());
}

#[test]
fn placements_reserve_capacity_within_the_pass() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("n", "ce", Resources::new(4000, 4096, 0, 3)))
        .workload(workload("a", "q", req(1000, 1024, 0), T0))
        .workload(workload("b", "q", req(1000, 1024, 0), T0 + 1))
        .workload(workload("c", "q", req(1000, 1024, 0), T0 + 2))
        .workload(workload("d", "q", req(1000, 1024, 0), T0 + 3))
        .build();
    let r = schedule(&s);
    assert_eq!(
        jobs_placed(&r),
        vec!["a", "b", "c"],
        "the pod-slot limit (3) is respected"
    );
}

#[test]
fn best_effort_fifo_lets_smaller_jobs_pass_a_big_one() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("n", "ce", alloc(4, 8192, 0)))
        .workload(workload("big", "q", req(8000, 1024, 0), T0))
        .workload(workload("small", "q", req(1000, 1024, 0), T0 + 1))
        .build();
    let r = schedule(&s);
    assert_eq!(jobs_placed(&r), vec!["small"]);
    assert_eq!(
        verdict(&r, 0),
        Some(Unplaced::InsufficientCapacity {
            no_ready_nodes: false,
            environments: "ce".into(),
            instance_types: "m5.xlarge".into()
        }),
        "no Ready node could take it and none is starting"
    );
}

#[test]
fn strict_fifo_stops_at_the_first_job_that_does_not_fit() {
    let s = snapshot()
        .queue(queue("q", &["ce"]).strict_fifo())
        .environment(environment("ce").starting_nodes(1))
        .node(node("n", "ce", alloc(4, 8192, 0)))
        .workload(workload("first", "q", req(1000, 1024, 0), T0))
        .workload(workload("big", "q", req(8000, 1024, 0), T0 + 1))
        .workload(workload("small", "q", req(1000, 1024, 0), T0 + 2))
        .build();
    let r = schedule(&s);
    assert_eq!(jobs_placed(&r), vec!["first"]);
    assert_eq!(verdict(&r, 1), Some(Unplaced::NoCapacity));
    assert_eq!(
        verdict(&r, 2),
        Some(Unplaced::BehindStrictFifoHead {
            head: JobKey::new("default", "big")
        })
    );
}

#[test]
fn disabled_queue_places_nothing() {
    let s = snapshot()
        .queue(queue("q", &["ce"]).disabled())
        .environment(environment("ce"))
        .node(node("n", "ce", alloc(4, 8192, 0)))
        .workload(workload("j", "q", req(1000, 1024, 0), T0))
        .build();
    let r = schedule(&s);
    assert!(r.placements.is_empty());
    assert_eq!(verdict(&r, 0), Some(Unplaced::QueueDisabled));
    assert_eq!(
        Unplaced::QueueDisabled.message("q"),
        "queue \"q\" is DISABLED"
    );
}

#[test]
fn disabled_and_invalid_environments_receive_nothing() {
    let s = snapshot()
        .queue(queue("q", &["off", "on"]))
        .environment(environment("off").disabled())
        .environment(environment("on"))
        .node(node("n-off", "off", alloc(4, 8192, 0)))
        .node(node("n-on", "on", alloc(4, 8192, 0)))
        .workload(workload("j", "q", req(1000, 1024, 0), T0))
        .build();
    assert_eq!(schedule(&s).placements[0].node.as_deref(), Some("n-on"));

    let all_off = snapshot()
        .queue(queue("q", &["off"]))
        .environment(environment("off").disabled())
        .node(node("n-off", "off", alloc(4, 8192, 0)))
        .workload(workload("j", "q", req(1000, 1024, 0), T0))
        .build();
    assert_eq!(
        verdict(&schedule(&all_off), 0),
        Some(Unplaced::EnvironmentsDisabled)
    );

    let invalid = snapshot()
        .queue(queue("q", &["bad"]))
        .environment(environment("bad").invalid())
        .node(node("n", "bad", alloc(4, 8192, 0)))
        .workload(workload("j", "q", req(1000, 1024, 0), T0))
        .build();
    let r = schedule(&invalid);
    assert!(r.placements.is_empty());
    let v = verdict(&r, 0).expect("verdict");
    assert_eq!(v, Unplaced::EnvironmentsInvalid);
    assert_eq!(
        v.status_reason().as_deref(),
        Some("ACTION_REQUIRED - CE(s) associated with the job queue are invalid.")
    );

    let none = snapshot()
        .queue(queue("q", &["ghost"]))
        .workload(workload("j", "q", req(1000, 1024, 0), T0))
        .workload(workload("k", "nowhere", req(1000, 1024, 0), T0))
        .build();
    let r = schedule(&none);
    assert_eq!(verdict(&r, 0), Some(Unplaced::NoEnvironment));
    assert_eq!(verdict(&r, 1), Some(Unplaced::UnknownQueue));
}

#[test]
fn unschedulable_nodes_and_foreign_nodes_are_skipped() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("cordoned", "ce", alloc(8, 8192, 0)).unschedulable())
        .node(node("other-ce", "elsewhere", alloc(8, 8192, 0)))
        .workload(workload("j", "q", req(1000, 1024, 0), T0))
        .build();
    assert!(schedule(&s).placements.is_empty());
}

#[test]
fn non_gpu_work_avoids_gpu_nodes_unless_nothing_else_fits() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("gpu", "ce", alloc(4, 16384, 1)).instance_type("g4dn.xlarge"))
        .node(node("cpu", "ce", alloc(8, 16384, 0)))
        .workload(workload("a", "q", req(2000, 1024, 0), T0))
        .workload(workload("b", "q", req(6000, 1024, 0), T0 + 1))
        .workload(workload("c", "q", req(1000, 1024, 0), T0 + 2))
        .workload(workload("g", "q", req(1000, 1024, 1), T0 + 3))
        .build();
    let r = schedule(&s);
    assert_eq!(
        placed(&r)
            .into_iter()
            .map(|(j, _, _, n)| (j, n))
            .collect::<Vec<_>>(),
        vec![
            ("a".to_string(), "cpu".to_string()),
            ("b".to_string(), "cpu".to_string()),
            ("c".to_string(), "gpu".to_string()),
            ("g".to_string(), "gpu".to_string()),
        ]
    );
    let gpu_only_on_gpu_nodes = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("cpu", "ce", alloc(8, 16384, 0)))
        .workload(workload("g", "q", req(1000, 1024, 1), T0))
        .build();
    assert!(schedule(&gpu_only_on_gpu_nodes).placements.is_empty());
}

#[test]
fn instance_type_constraint_is_honoured() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("m5", "ce", alloc(4, 16384, 0)).instance_type("m5.xlarge"))
        .node(node("c5", "ce", alloc(4, 8192, 0)).instance_type("c5.xlarge"))
        .workload(workload("pinned", "q", req(1000, 1024, 0), T0).instance_type("c5.xlarge"))
        .workload(workload("nowhere", "q", req(1000, 1024, 0), T0 + 1).instance_type("r5.large"))
        .build();
    let r = schedule(&s);
    assert_eq!(
        placed(&r),
        vec![(
            "pinned".to_string(),
            None,
            "ce".to_string(),
            "c5".to_string()
        )]
    );
    assert!(
        matches!(
            verdict(&r, 1),
            Some(Unplaced::InsufficientCapacity { ref instance_types, .. }) if instance_types == "r5.large"
        ),
        "shapes unknown: cannot call it never, but no r5.large is Ready or starting: {:?}",
        verdict(&r, 1)
    );
}

#[test]
fn array_children_are_placed_in_index_order_until_one_does_not_fit() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("n", "ce", alloc(3, 8192, 0)))
        .workload(
            workload("arr", "q", req(1000, 1024, 0), T0)
                .children("5-9,20")
                .retried(2),
        )
        .build();
    let r = schedule(&s);
    let indices: Vec<Option<u32>> = r.placements.iter().map(|p| p.array_index).collect();
    assert_eq!(indices, vec![Some(5), Some(6), Some(7)]);
    assert!(r.placements.iter().all(|p| p.attempt == 2));
    assert_eq!(
        r.verdicts[0],
        WorkloadVerdict {
            placed: 3,
            unplaced: Some(Unplaced::NoCapacity)
        }
    );
}

#[test]
fn a_full_cluster_does_not_walk_every_child() {
    // Two arrays of 10,000 identical children; room for five. The second array's first child
    // is refused by the failure memo without looking at nodes.
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("n", "ce", alloc(5, 8192, 0)))
        .workload(workload("a", "q", req(1000, 1024, 0), T0).children("0-9999"))
        .workload(workload("b", "q", req(1000, 1024, 0), T0 + 1).children("0-9999"))
        .workload(workload("c", "q", req(2000, 2048, 0), T0 + 2).children("0-9999"))
        .build();
    let r = schedule(&s);
    assert_eq!(r.placements.len(), 5);
    assert_eq!(
        r.verdicts[1],
        WorkloadVerdict {
            placed: 0,
            unplaced: Some(Unplaced::NoCapacity)
        }
    );
    assert_eq!(
        r.stats.memo_hits, 2,
        "b's and c's first children answered from the memo"
    );
    assert_eq!(r.stats.units_placed, 5);
}

#[test]
fn jobs_larger_than_any_instance_type_can_never_run() {
    let s = snapshot()
        .queue(queue("q", &["small", "medium"]))
        .environment(environment("small").shape("c5.large", alloc(2, 4096, 0)))
        .environment(
            environment("medium")
                .shape("c5.2xlarge", alloc(8, 16384, 0))
                .shape("r5.xlarge", alloc(4, 32768, 0)),
        )
        .workload(workload("huge", "q", req(16000, 1024, 0), T0))
        .workload(workload("fits-r5", "q", req(4000, 30000, 0), T0))
        .workload(workload("cpu-and-mem", "q", req(8000, 32768, 0), T0))
        .workload(workload("no-such-type", "q", req(1000, 1024, 0), T0).instance_type("p3.2xlarge"))
        .build();
    let r = schedule(&s);
    match verdict(&r, 0) {
        Some(Unplaced::CannotRun {
            kind,
            status_reason,
            message,
        }) => {
            assert_eq!(kind, BlockedKind::NoInstanceTypeFits);
            assert!(status_reason.starts_with("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"));
            assert!(message.contains("cpu=16000m"), "{message}");
            assert!(
                message.contains("largest: cpu=8000m memory=32768Mi"),
                "{message}"
            );
        }
        other => panic!("expected CannotRun, got {other:?}"),
    }
    assert_eq!(
        verdict(&r, 1).and_then(|u| u.kind()),
        Some(BlockedKind::NoReadyNodes),
        "fits an r5.xlarge, but no node is Ready or starting"
    );
    assert!(
        matches!(verdict(&r, 2), Some(Unplaced::CannotRun { .. })),
        "8 vCPU and 32 GiB fit no single shape, though each fits some shape"
    );
    match verdict(&r, 3) {
        Some(Unplaced::CannotRun { message, .. }) => {
            assert!(message.contains("instance type p3.2xlarge"), "{message}")
        }
        other => panic!("expected CannotRun, got {other:?}"),
    }
    assert!(verdict(&r, 0).expect("verdict").is_permanent());
}

#[test]
fn jobs_above_every_max_vcpus_can_never_run() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(
            environment("ce")
                .shape("m5.24xlarge", alloc(96, 393216, 0))
                .max_vcpus(16),
        )
        .workload(workload("wide", "q", req(32000, 1024, 0), T0))
        .build();
    match verdict(&schedule(&s), 0) {
        Some(Unplaced::CannotRun { status_reason, .. }) => {
            assert!(status_reason.starts_with("MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"))
        }
        other => panic!("expected CannotRun, got {other:?}"),
    }
}

#[test]
fn can_never_run_is_judged_even_in_a_disabled_queue_or_behind_a_strict_head() {
    let s = snapshot()
        .queue(queue("q", &["ce"]).disabled())
        .environment(environment("ce").shape("c5.large", alloc(2, 4096, 0)))
        .workload(workload("huge", "q", req(4000, 1024, 0), T0))
        .build();
    assert!(matches!(
        verdict(&schedule(&s), 0),
        Some(Unplaced::CannotRun { .. })
    ));
}

#[test]
fn same_snapshot_same_result_and_ties_break_by_node_name() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("n-b", "ce", alloc(4, 8192, 0)))
        .node(node("n-a", "ce", alloc(4, 8192, 0)))
        .workload(workload("j", "q", req(1000, 1024, 0), T0))
        .build();
    let r = schedule(&s);
    assert_eq!(r.placements[0].node.as_deref(), Some("n-a"));
    assert_eq!(schedule(&s), r);
}

#[test]
fn queue_ordering_is_pluggable() {
    struct Newest;
    impl QueueOrder for Newest {
        fn order(&self, _q: &QueueSpec, workloads: &[Workload], members: &mut Vec<usize>) {
            members.sort_by_key(|&w| std::cmp::Reverse(workloads[w].submitted_at_ms));
        }
    }
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("n", "ce", alloc(1, 8192, 0)))
        .workload(workload("old", "q", req(1000, 1024, 0), T0))
        .workload(workload("new", "q", req(1000, 1024, 0), T0 + 1))
        .build();
    assert_eq!(jobs_placed(&schedule_with(&s, &Newest)), vec!["new"]);
    assert_eq!(jobs_placed(&schedule(&s)), vec!["old"]);
}

#[test]
fn messages_explain_verdicts() {
    assert!(Unplaced::NoCapacity
        .message("q")
        .contains("waiting for capacity"));
    let head = Unplaced::BehindStrictFifoHead {
        head: JobKey::new("ns", "big"),
    };
    assert!(head.message("q").contains("ns/big"));
    assert_eq!(Unplaced::NoCapacity.status_reason(), None);
}

#[test]
fn workloads_come_from_the_job_plan_and_placements_name_their_pods() {
    use crate::fixtures::{attempt_pod, job};
    use crate::job::reconcile;
    let view = job("arr")
        .array(6)
        .retry(2)
        .state(crate::state::JobState::Running)
        .pod(attempt_pod("arr", 1, Some(4)).failed(1, T0, T0 + 1))
        .pod(attempt_pod("arr", 1, Some(5)).running(T0))
        .build();
    let plan = reconcile(&view, T0 + 2);
    let key = JobKey::new("default", "arr");
    let workloads = Workload::from_runnable(
        &key,
        "q",
        T0,
        0,
        req(1000, 1024, 0),
        &Constraints::default(),
        None,
        &plan.runnable,
    );
    assert_eq!(workloads.len(), 2);
    assert_eq!((workloads[0].attempt, workloads[0].retried), (2, true));
    assert_eq!(
        workloads[0].units,
        Units::Array(IndexSet::parse("4").expect("valid"))
    );
    assert_eq!(
        workloads[1].units,
        Units::Array(IndexSet::parse("0-3").expect("valid"))
    );
    let mut s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("n", "ce", alloc(2, 8192, 0)))
        .build();
    s.workloads = workloads;
    let r = schedule(&s);
    let names: Vec<String> = r.placements.iter().map(Placement::pod_name).collect();
    assert_eq!(
        names,
        vec!["arr-2-4", "arr-1-0"],
        "the retried child first, on attempt 2"
    );
    let unplaced = r.verdicts[1].unplaced.as_ref().expect("partly placed");
    assert_eq!(unplaced, &Unplaced::NoCapacity);
    assert_eq!(
        unplaced.to_blocked("q"),
        None,
        "waiting for capacity is no verdict"
    );
    let single = Workload::from_runnable(
        &JobKey::new("ns", "one"),
        "q",
        T0,
        0,
        req(1, 1, 0),
        &Constraints::default(),
        None,
        &crate::job::RunnableWork::Single {
            attempt: 3,
            retried: true,
        },
    );
    assert_eq!(single.len(), 1);
    assert_eq!(single[0].units, Units::Single);
    assert!(Workload::from_runnable(
        &key,
        "q",
        T0,
        0,
        req(1, 1, 0),
        &Constraints::default(),
        None,
        &crate::job::RunnableWork::Nothing
    )
    .is_empty());
}

// ------------------------------------------------------- waiting vs. no room that can appear soon

#[test]
fn no_ready_node_and_none_starting_is_insufficient_capacity() {
    let s = snapshot()
        .queue(queue("q", &["empty", "off"]))
        .environment(environment("empty").shape("c5.large", alloc(2, 4096, 0)))
        .environment(environment("off").disabled())
        .node(node("off-1", "off", alloc(8, 8192, 0)))
        .workload(workload("j", "q", req(1000, 1024, 0), T0))
        .build();
    let r = schedule(&s);
    let unplaced = verdict(&r, 0).expect("unplaced");
    assert_eq!(
        unplaced,
        Unplaced::InsufficientCapacity {
            no_ready_nodes: true,
            environments: "empty".into(),
            instance_types: "c5.large".into()
        },
        "only usable environments count: the disabled one's node does not"
    );
    let blocked = unplaced.to_blocked("q").expect("a verdict");
    assert_eq!(blocked.kind, BlockedKind::NoReadyNodes);
    assert_eq!(
        blocked.status_reason.as_deref(),
        Some("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested for instance type c5.large")
    );
    assert!(
        blocked
            .message
            .contains("has a Ready node, and none is starting one"),
        "{}",
        blocked.message
    );
    assert!(!unplaced.is_permanent(), "a node may still come");
}

#[test]
fn a_starting_node_or_a_busy_ready_node_that_fits_means_waiting() {
    let starting = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce").starting_nodes(2))
        .workload(workload("j", "q", req(1000, 1024, 0), T0))
        .build();
    assert_eq!(verdict(&schedule(&starting), 0), Some(Unplaced::NoCapacity));
    let busy = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("n", "ce", alloc(2, 4096, 0)).used(alloc(2, 0, 0)))
        .workload(workload("j", "q", req(1000, 1024, 0), T0))
        .build();
    assert_eq!(
        verdict(&schedule(&busy), 0),
        Some(Unplaced::NoCapacity),
        "room appears when the running work ends"
    );
    let cordoned = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("n", "ce", alloc(2, 4096, 0)).unschedulable())
        .workload(workload("j", "q", req(1000, 1024, 0), T0))
        .build();
    assert_eq!(
        verdict(&schedule(&cordoned), 0).and_then(|u| u.kind()),
        Some(BlockedKind::NoReadyNodes),
        "a cordoned node is no Ready node"
    );
}

#[test]
fn every_verdict_but_plain_waiting_names_its_kind() {
    let head = JobKey::new("ns", "big");
    let cases = [
        (Unplaced::NoCapacity, None),
        (Unplaced::QueueDisabled, Some(BlockedKind::QueueDisabled)),
        (Unplaced::UnknownQueue, Some(BlockedKind::QueueNotFound)),
        (
            Unplaced::NoEnvironment,
            Some(BlockedKind::NoComputeEnvironment),
        ),
        (
            Unplaced::EnvironmentsDisabled,
            Some(BlockedKind::ComputeEnvironmentsDisabled),
        ),
        (
            Unplaced::EnvironmentsInvalid,
            Some(BlockedKind::ComputeEnvironmentsInvalid),
        ),
        (
            Unplaced::BehindStrictFifoHead { head },
            Some(BlockedKind::BehindQueueHead),
        ),
        (
            Unplaced::InsufficientCapacity {
                no_ready_nodes: false,
                environments: "ce".into(),
                instance_types: "c5.large".into(),
            },
            Some(BlockedKind::InsufficientCapacity),
        ),
    ];
    for (unplaced, kind) in cases {
        assert_eq!(unplaced.kind(), kind, "{unplaced:?}");
        assert_eq!(
            unplaced.to_blocked("q").map(|b| b.kind),
            kind,
            "{unplaced:?}"
        );
    }
}

// --- Budget mode (`bindingMode: KubeScheduler`): an environment is a vCPU pool, not nodes. ---

#[test]
fn budget_mode_admits_fifo_within_the_budget_and_binds_to_no_node() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce").max_vcpus(4).budget_vcpus(3))
        // Its nodes are the kube-scheduler's: even a roomy one does not widen the budget.
        .node(node("n1", "ce", alloc(64, 65536, 0)))
        .workload(workload("late", "q", req(1000, 1024, 0), T0 + 2))
        .workload(workload("early", "q", req(2000, 1024, 0), T0))
        .workload(workload("middle", "q", req(1000, 1024, 0), T0 + 1))
        .build();
    let r = schedule(&s);
    assert_eq!(jobs_placed(&r), vec!["early", "middle"]);
    assert!(r.placements.iter().all(|p| p.node.is_none()));
    assert!(r.placements.iter().all(|p| p.environment == "ce"));
    // Waiting for the budget is plain waiting (no verdict): it frees as admitted work ends.
    assert_eq!(verdict(&r, 0), Some(Unplaced::NoCapacity));
}

#[test]
fn a_budget_is_never_over_admitted_not_even_by_an_array() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce").max_vcpus(8).budget_vcpus(5))
        .workload(workload("arr", "q", req(1000, 1024, 0), T0).children("0-99"))
        .workload(workload("small", "q", req(500, 1024, 0), T0 + 1))
        .build();
    let r = schedule(&s);
    let admitted: i64 = r
        .placements
        .iter()
        .map(|p| s.workloads[p.workload].request.milli_cpu)
        .sum();
    assert_eq!(r.verdicts[0].placed, 5);
    assert_eq!(
        r.placements
            .iter()
            .filter_map(|p| p.array_index)
            .collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert!(admitted <= 5000, "admitted {admitted}m of a 5000m budget");
    // Best-effort FIFO: the smaller job behind does not fit either (budget exhausted).
    assert_eq!(r.verdicts[1].placed, 0);
    // An exhausted budget admits nothing.
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce").max_vcpus(8).budget_vcpus(0))
        .workload(workload("j", "q", req(1000, 1024, 0), T0))
        .build();
    let r = schedule(&s);
    assert!(r.placements.is_empty());
    assert_eq!(verdict(&r, 0), Some(Unplaced::NoCapacity));
}

#[test]
fn budget_mode_takes_retried_work_first_and_smaller_work_past_a_big_head() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce").max_vcpus(8).budget_vcpus(2))
        .workload(workload("old", "q", req(1000, 1024, 0), T0))
        .workload(workload("big", "q", req(2000, 1024, 0), T0 + 1))
        .workload(workload("retry", "q", req(1000, 1024, 0), T0 + 100).retried(2))
        .build();
    let r = schedule(&s);
    // Retried first; then "old"; "big" no longer fits, and nothing else is left.
    assert_eq!(jobs_placed(&r), vec!["retry", "old"]);
    assert_eq!(r.placements[0].attempt, 2);
    // Strict FIFO stops at a head that does not fit the budget.
    let s = snapshot()
        .queue(queue("q", &["ce"]).strict_fifo())
        .environment(environment("ce").max_vcpus(8).budget_vcpus(1))
        .workload(workload("big", "q", req(2000, 1024, 0), T0))
        .workload(workload("small", "q", req(1000, 1024, 0), T0 + 1))
        .build();
    let r = schedule(&s);
    assert!(r.placements.is_empty());
    assert!(matches!(
        verdict(&r, 1),
        Some(Unplaced::BehindStrictFifoHead { .. })
    ));
}

#[test]
fn budget_mode_keeps_priority_among_queues_and_spills_to_the_next_environment() {
    let s = snapshot()
        .queue(queue("low", &["pool", "nodes"]).priority(1))
        .queue(queue("high", &["pool", "nodes"]).priority(10))
        .environment(environment("pool").max_vcpus(2).budget_vcpus(2))
        .environment(environment("nodes"))
        .node(node("n1", "nodes", alloc(1, 4096, 0)))
        .workload(workload("low-job", "low", req(1000, 1024, 0), T0))
        .workload(workload("high-1", "high", req(1000, 1024, 0), T0 + 10))
        .workload(workload("high-2", "high", req(1000, 1024, 0), T0 + 11))
        .workload(workload("high-3", "high", req(1000, 1024, 0), T0 + 12))
        .build();
    let r = schedule(&s);
    assert_eq!(
        placed(&r),
        vec![
            (
                "high-1".to_string(),
                None,
                "pool".to_string(),
                String::new()
            ),
            (
                "high-2".to_string(),
                None,
                "pool".to_string(),
                String::new()
            ),
            (
                "high-3".to_string(),
                None,
                "nodes".to_string(),
                "n1".to_string()
            ),
        ]
    );
    assert_eq!(verdict(&r, 0), Some(Unplaced::NoCapacity));
}

#[test]
fn budget_mode_still_judges_work_no_shape_or_budget_can_ever_hold() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(
            environment("ce")
                .shape("m5.xlarge", alloc(4, 16384, 0))
                .max_vcpus(8)
                .budget_vcpus(8),
        )
        .workload(workload("huge", "q", req(1000, 65536, 0), T0))
        .workload(workload("wide", "q", req(16000, 1024, 0), T0 + 1))
        .build();
    let r = schedule(&s);
    assert!(r.placements.is_empty());
    assert!(matches!(verdict(&r, 0), Some(Unplaced::CannotRun { .. })));
    assert!(matches!(verdict(&r, 1), Some(Unplaced::CannotRun { .. })));
}

// ---------------------------------------------------------------------------------------------
// Multi-node jobs (gangs)
// ---------------------------------------------------------------------------------------------

/// (job, node index, node) of every gang placement, in order.
fn members_placed(result: &PassResult) -> Vec<(String, u32, String)> {
    result
        .placements
        .iter()
        .filter_map(|p| {
            Some((
                p.job.name.to_string(),
                p.node_index?,
                p.node.clone().unwrap_or_default(),
            ))
        })
        .collect()
}

/// Nodes n1..=count of `ce`, 4 vCPUs and 16 GiB each.
fn ce_nodes(
    mut b: crate::fixtures::SnapshotBuilder,
    ce: &str,
    count: usize,
) -> crate::fixtures::SnapshotBuilder {
    for i in 1..=count {
        b = b.node(node(&format!("{ce}-n{i}"), ce, alloc(4, 16384, 0)));
    }
    b
}

#[test]
fn a_gang_is_placed_all_or_nothing() {
    // 8 nodes wanted, 7 free ones: the eighth node runs a Barge pod.
    let s = ce_nodes(
        snapshot()
            .queue(queue("q", &["ce"]))
            .environment(environment("ce")),
        "ce",
        7,
    )
    .node(node("ce-n8", "ce", alloc(4, 16384, 0)).barge_pods(1))
    .workload(workload("mnp", "q", req(2000, 1024, 0), T0).gang(8))
    .build();
    let r = schedule(&s);
    assert!(r.placements.is_empty(), "{:?}", r.placements);
    assert_eq!(
        r.verdicts[0],
        WorkloadVerdict {
            placed: 0,
            unplaced: Some(Unplaced::NoCapacity)
        }
    );
    // With the eighth node free, the whole gang goes.
    let s = ce_nodes(
        snapshot()
            .queue(queue("q", &["ce"]))
            .environment(environment("ce")),
        "ce",
        8,
    )
    .workload(workload("mnp", "q", req(2000, 1024, 0), T0).gang(8))
    .build();
    let r = schedule(&s);
    assert_eq!(r.placements.len(), 8);
    assert_eq!(
        r.verdicts[0],
        WorkloadVerdict {
            placed: 8,
            unplaced: None
        }
    );
    assert_eq!(r.stats.units_placed, 8);
}

#[test]
fn gang_members_go_to_distinct_nodes_main_node_first() {
    // Each node could hold two members; they still get one node each.
    let s = ce_nodes(
        snapshot()
            .queue(queue("q", &["ce"]))
            .environment(environment("ce")),
        "ce",
        5,
    )
    .workload(
        workload("mnp", "q", req(1000, 1024, 0), T0)
            .gang(4)
            .main_node(2),
    )
    .build();
    let r = schedule(&s);
    let members = members_placed(&r);
    assert_eq!(
        members.iter().map(|m| m.1).collect::<Vec<_>>(),
        vec![2, 0, 1, 3],
        "main node first, then index order"
    );
    let mut nodes: Vec<&str> = members.iter().map(|m| m.2.as_str()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    assert_eq!(nodes.len(), 4, "{members:?}");
    assert!(r
        .placements
        .iter()
        .all(|p| p.array_index.is_none() && p.environment == "ce" && p.attempt == 1));
    assert_eq!(r.placements[0].pod_name(), "mnp-1-node-2");
}

#[test]
fn gangs_and_other_work_never_share_a_node() {
    // A single job placed first takes n1 (best fit among equals: name order); a gang of 3 then
    // needs the 3 other nodes; a gang of 4 finds no room.
    let s = ce_nodes(
        snapshot()
            .queue(queue("q", &["ce"]))
            .environment(environment("ce")),
        "ce",
        4,
    )
    .workload(workload("small", "q", req(500, 512, 0), T0))
    .workload(workload("three", "q", req(1000, 1024, 0), T0 + 1).gang(3))
    .workload(workload("after", "q", req(500, 512, 0), T0 + 2))
    .workload(workload("four", "q", req(1000, 1024, 0), T0 + 3).gang(4))
    .build();
    let r = schedule(&s);
    assert_eq!(r.placements[0].node.as_deref(), Some("ce-n1"));
    let three: Vec<&str> = r
        .placements
        .iter()
        .filter(|p| p.job.name == "three")
        .filter_map(|p| p.node.as_deref())
        .collect();
    assert_eq!(three.len(), 3);
    assert!(!three.contains(&"ce-n1"), "{three:?}");
    assert_eq!(verdict(&r, 3), Some(Unplaced::NoCapacity));
    // The job after the gangs does not go to a gang's node, though each has room left.
    let after = r
        .placements
        .iter()
        .find(|p| p.job.name == "after")
        .expect("placed");
    assert_eq!(after.node.as_deref(), Some("ce-n1"));
}

#[test]
fn exclusive_and_busy_nodes_are_skipped() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("reserved", "ce", alloc(4, 16384, 0)).exclusive())
        .node(node("busy", "ce", alloc(4, 16384, 0)).barge_pods(2))
        .node(node("free-1", "ce", alloc(4, 16384, 0)))
        .node(node("free-2", "ce", alloc(4, 16384, 0)))
        .workload(workload("mnp", "q", req(1000, 1024, 0), T0).gang(2))
        .build();
    let r = schedule(&s);
    let nodes: Vec<String> = members_placed(&r).into_iter().map(|m| m.2).collect();
    assert_eq!(nodes, vec!["free-1", "free-2"]);
    // An exclusive node takes no single job either, even with room for it.
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("reserved", "ce", alloc(8, 16384, 0)).exclusive())
        .workload(workload("j", "q", req(1000, 1024, 0), T0))
        .build();
    let r = schedule(&s);
    assert!(r.placements.is_empty());
    assert_eq!(
        verdict(&r, 0),
        Some(Unplaced::NoCapacity),
        "the gang there will end"
    );
}

#[test]
fn two_gangs_that_cannot_both_fit_run_one_after_the_other_and_small_jobs_wait_too() {
    // Two 3-node gangs on 4 nodes, small jobs behind them in the same queue and in a
    // lower-priority queue sharing the environment.
    let base = || {
        snapshot()
            .queue(queue("q", &["ce"]).priority(10))
            .queue(queue("low", &["ce"]).priority(1))
            .environment(environment("ce"))
    };
    let work = |b: crate::fixtures::SnapshotBuilder, first_done: bool| {
        let b = if first_done {
            b
        } else {
            b.workload(workload("first", "q", req(2000, 1024, 0), T0).gang(3))
        };
        b.workload(workload("second", "q", req(2000, 1024, 0), T0 + 1).gang(3))
            .workload(workload("small", "q", req(500, 512, 0), T0 + 2))
            .workload(workload("low-small", "low", req(500, 512, 0), T0))
    };
    // Pass 1: the first gang is placed; the second holds the fourth node.
    let s = work(ce_nodes(base(), "ce", 4), false).build();
    for _ in 0..5 {
        let r = schedule(&s);
        assert_eq!(
            jobs_placed(&r),
            vec!["first", "first", "first"],
            "small jobs do not take the node the second gang waits for"
        );
        assert_eq!(verdict(&r, 1), Some(Unplaced::NoCapacity));
        assert_eq!(verdict(&r, 2), Some(Unplaced::NoCapacity));
        assert_eq!(verdict(&r, 3), Some(Unplaced::NoCapacity));
        assert_eq!(r.stats.gangs_holding, 1);
    }
    let first_nodes: Vec<String> = members_placed(&schedule(&s))
        .into_iter()
        .map(|m| m.2)
        .collect();
    // Pass 2: the first gang runs (its nodes exclusive); the second still holds the free node.
    let mut b = work(base(), true);
    for i in 1..=4 {
        let name = format!("ce-n{i}");
        let mut n = node(&name, "ce", alloc(4, 16384, 0));
        if first_nodes.contains(&name) {
            n = n.used(req(2000, 1024, 0)).barge_pods(1).exclusive();
        }
        b = b.node(n);
    }
    let s = b.build();
    let r = schedule(&s);
    assert!(r.placements.is_empty(), "{:?}", r.placements);
    assert_eq!(verdict(&r, 0), Some(Unplaced::NoCapacity));
    // Pass 3: the first gang ended; the second is placed, the small jobs take what is left.
    let s = work(ce_nodes(base(), "ce", 4), true).build();
    let r = schedule(&s);
    assert_eq!(
        jobs_placed(&r),
        vec!["second", "second", "second", "small", "low-small"]
    );
    let second: Vec<&str> = r
        .placements
        .iter()
        .filter(|p| p.job.name == "second")
        .filter_map(|p| p.node.as_deref())
        .collect();
    let small_nodes: Vec<&str> = r
        .placements
        .iter()
        .filter(|p| p.job.name != "second")
        .filter_map(|p| p.node.as_deref())
        .collect();
    assert!(
        small_nodes.iter().all(|n| !second.contains(n)),
        "{second:?} {small_nodes:?}"
    );
}

#[test]
fn a_waiting_gang_holds_the_nodes_that_free_soonest_and_leaves_the_rest() {
    // A 2-node gang that does not fit (every node busy): it holds the two least busy nodes;
    // a small job behind it takes a third.
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(
            node("a", "ce", alloc(4, 16384, 0))
                .used(req(1500, 1024, 0))
                .barge_pods(3),
        )
        .node(
            node("b", "ce", alloc(4, 16384, 0))
                .used(req(3000, 1024, 0))
                .barge_pods(1),
        )
        .node(
            node("c", "ce", alloc(4, 16384, 0))
                .used(req(3200, 1024, 0))
                .barge_pods(1),
        )
        .workload(workload("mnp", "q", req(2000, 1024, 0), T0).gang(2))
        .workload(workload("small", "q", req(500, 512, 0), T0 + 1))
        .build();
    let r = schedule(&s);
    assert_eq!(placed(&r).len(), 1);
    assert_eq!(
        r.placements[0].node.as_deref(),
        Some("a"),
        "b and c are held (one pod each), a is not (three pods); without the hold, best fit \
         would have taken c"
    );
    // A gang that can never fit its environment holds nothing.
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("a", "ce", alloc(4, 16384, 0)))
        .workload(workload("mnp", "q", req(1000, 1024, 0), T0).gang(2))
        .workload(workload("small", "q", req(500, 512, 0), T0 + 1))
        .build();
    assert_eq!(jobs_placed(&schedule(&s)), vec!["small"]);
}

#[test]
fn a_gang_that_holds_does_not_stop_work_ahead_of_it_or_elsewhere() {
    let s = snapshot()
        .queue(queue("high", &["ce"]).priority(10))
        .queue(queue("q", &["ce"]).priority(5))
        .queue(queue("other", &["elsewhere"]).priority(1))
        .environment(environment("ce"))
        .environment(environment("elsewhere"))
        .node(node("n1", "ce", alloc(4, 16384, 0)))
        .node(node("n2", "ce", alloc(4, 16384, 0)))
        .node(node("e1", "elsewhere", alloc(4, 16384, 0)))
        .workload(workload("high-job", "high", req(500, 512, 0), T0 + 5))
        .workload(workload("mnp", "q", req(1000, 1024, 0), T0).gang(2))
        .workload(workload("other-job", "other", req(500, 512, 0), T0 + 9))
        .build();
    let r = schedule(&s);
    assert_eq!(jobs_placed(&r), vec!["high-job", "other-job"]);
    assert_eq!(verdict(&r, 1), Some(Unplaced::NoCapacity));
}

#[test]
fn gang_members_honour_their_own_instance_types() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("c5", "ce", alloc(8, 16384, 0)).instance_type("c5.2xlarge"))
        .node(node("m5-a", "ce", alloc(4, 16384, 0)))
        .node(node("m5-b", "ce", alloc(4, 16384, 0)))
        .workload(
            workload("mnp", "q", req(1000, 1024, 0), T0)
                .gang(3)
                .node_request(0, req(1000, 1024, 0), Some("m5.xlarge"))
                .node_request(2, req(2000, 1024, 0), Some("c5.2xlarge")),
        )
        .build();
    let r = schedule(&s);
    let mut members = members_placed(&r);
    members.sort();
    assert_eq!(members.len(), 3);
    assert_eq!(members[2].2, "c5");
    assert!(members[0].2.starts_with("m5"));
    // No second c5.2xlarge node: nothing of the gang is placed.
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("c5", "ce", alloc(8, 16384, 0)).instance_type("c5.2xlarge"))
        .node(node("m5-a", "ce", alloc(4, 16384, 0)))
        .workload(
            workload("mnp", "q", req(1000, 1024, 0), T0)
                .gang(2)
                .node_request(0, req(1000, 1024, 0), Some("c5.2xlarge"))
                .node_request(1, req(1000, 1024, 0), Some("c5.2xlarge")),
        )
        .build();
    assert!(schedule(&s).placements.is_empty());
}

#[test]
fn gpu_members_go_to_gpu_nodes_only_and_the_others_avoid_them() {
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("gpu-1", "ce", alloc(8, 32768, 1)).instance_type("g4dn.2xlarge"))
        .node(node("gpu-2", "ce", alloc(8, 32768, 1)).instance_type("g4dn.2xlarge"))
        .node(node("cpu-1", "ce", alloc(8, 32768, 0)))
        .workload(
            workload("mnp", "q", req(2000, 1024, 0), T0)
                .gang(2)
                .node_request(1, req(2000, 1024, 1), None),
        )
        .build();
    let r = schedule(&s);
    assert_eq!(
        members_placed(&r),
        vec![
            ("mnp".to_string(), 0, "cpu-1".to_string()),
            ("mnp".to_string(), 1, "gpu-1".to_string()),
        ]
    );
    // Two GPU members, one GPU node: nothing placed, though a CPU node is free.
    let s = snapshot()
        .queue(queue("q", &["ce"]))
        .environment(environment("ce"))
        .node(node("gpu-1", "ce", alloc(8, 32768, 1)).instance_type("g4dn.2xlarge"))
        .node(node("cpu-1", "ce", alloc(8, 32768, 0)))
        .workload(workload("mnp", "q", req(2000, 1024, 1), T0).gang(2))
        .build();
    assert!(schedule(&s).placements.is_empty());
}

#[test]
fn gangs_skip_spot_and_budget_mode_environments() {
    let s = snapshot()
        .queue(queue("q", &["spot", "budget", "ondemand"]))
        .environment(environment("spot").spot())
        .environment(environment("budget").budget_vcpus(100))
        .environment(environment("ondemand"))
        .node(node("s1", "spot", alloc(4, 16384, 0)))
        .node(node("s2", "spot", alloc(4, 16384, 0)))
        .node(node("b1", "budget", alloc(4, 16384, 0)))
        .node(node("b2", "budget", alloc(4, 16384, 0)))
        .node(node("o1", "ondemand", alloc(4, 16384, 0)))
        .node(node("o2", "ondemand", alloc(4, 16384, 0)))
        .workload(workload("mnp", "q", req(1000, 1024, 0), T0).gang(2))
        .workload(workload("single", "q", req(1000, 1024, 0), T0 + 1))
        .build();
    let r = schedule(&s);
    let mnp: Vec<&str> = r
        .placements
        .iter()
        .filter(|p| p.job.name == "mnp")
        .map(|p| p.environment.as_str())
        .collect();
    assert_eq!(mnp, vec!["ondemand", "ondemand"]);
    let single = r.placements.iter().find(|p| p.job.name == "single");
    assert_eq!(
        single.map(|p| p.environment.as_str()),
        Some("spot"),
        "single jobs still use SPOT"
    );
    // Only a budget-mode environment: no node can be reserved there.
    let s = snapshot()
        .queue(queue("q", &["budget"]))
        .environment(
            environment("budget")
                .budget_vcpus(100)
                .shape("m5.xlarge", alloc(4, 16384, 0)),
        )
        .workload(workload("mnp", "q", req(1000, 1024, 0), T0).gang(2))
        .build();
    let r = schedule(&s);
    assert!(r.placements.is_empty());
    match verdict(&r, 0) {
        Some(Unplaced::CannotRun { kind, message, .. }) => {
            assert_eq!(kind, BlockedKind::GangTooLarge);
            assert!(message.contains("cannot reserve nodes"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_gang_whose_queue_has_only_spot_environments_can_never_run() {
    let s = snapshot()
        .queue(queue("q", &["spot-a", "spot-b", "off"]))
        .environment(environment("spot-a").spot())
        .environment(environment("spot-b").spot())
        .environment(environment("off").disabled())
        .node(node("s1", "spot-a", alloc(4, 16384, 0)))
        .node(node("s2", "spot-a", alloc(4, 16384, 0)))
        .workload(workload("mnp", "q", req(1000, 1024, 0), T0).gang(2))
        .workload(workload("single", "q", req(1000, 1024, 0), T0 + 1))
        .build();
    let r = schedule(&s);
    assert_eq!(jobs_placed(&r), vec!["single"]);
    let unplaced = verdict(&r, 0).expect("unplaced");
    let blocked = unplaced.to_blocked("q").expect("a verdict");
    assert_eq!(blocked.kind, BlockedKind::MultiNodeOnSpot);
    assert!(unplaced.is_permanent());
    assert!(blocked
        .status_reason
        .as_deref()
        .is_some_and(|r| r.starts_with(reasons::MULTI_NODE_ON_SPOT)));
    assert!(
        blocked.message.contains("\"q\"") && blocked.message.contains("spot-a, spot-b"),
        "{}",
        blocked.message
    );
}

#[test]
fn a_gang_larger_than_any_environment_can_hold_can_never_run() {
    // maxvCpus 8 of 4-vCPU nodes: at most 2 nodes; the gang wants 3.
    let s = snapshot()
        .queue(queue("q", &["managed", "spot"]))
        .environment(
            environment("managed")
                .shape("m5.xlarge", alloc(4, 16384, 0))
                .max_vcpus(8),
        )
        .environment(
            environment("spot")
                .spot()
                .shape("m5.xlarge", alloc(4, 16384, 0)),
        )
        .workload(workload("mnp", "q", req(1000, 1024, 0), T0).gang(3))
        .workload(workload("fits", "q", req(1000, 1024, 0), T0 + 1).gang(2))
        .build();
    let r = schedule(&s);
    match verdict(&r, 0) {
        Some(Unplaced::CannotRun {
            kind,
            status_reason,
            message,
        }) => {
            assert_eq!(kind, BlockedKind::GangTooLarge);
            assert!(status_reason.starts_with("MISCONFIGURATION:"));
            assert!(
                message.contains("needs 3 nodes")
                    && message.contains("managed at most 2 (maxvCpus 8)")
                    && message.contains("spot is SPOT"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !matches!(verdict(&r, 1), Some(Unplaced::CannotRun { .. })),
        "2 nodes fit under maxvCpus: {:?}",
        verdict(&r, 1)
    );
    // An unmanaged environment holds as many members as it has nodes that fit them.
    let s = snapshot()
        .queue(queue("q", &["unmanaged"]))
        .environment(environment("unmanaged").shape("m5.xlarge", alloc(4, 16384, 0)))
        .node(node("u1", "unmanaged", alloc(4, 16384, 0)))
        .node(node("u2", "unmanaged", alloc(4, 16384, 0)))
        .node(node("small", "unmanaged", alloc(1, 16384, 0)))
        .workload(workload("mnp", "q", req(2000, 1024, 0), T0).gang(3))
        .build();
    let r = schedule(&s);
    assert_eq!(
        verdict(&r, 0).and_then(|u| u.kind()),
        Some(BlockedKind::GangTooLarge),
        "{:?}",
        verdict(&r, 0)
    );
    // A member larger than any instance type is the single-job verdict, naming the node.
    let s = snapshot()
        .queue(queue("q", &["managed"]))
        .environment(
            environment("managed")
                .shape("m5.xlarge", alloc(4, 16384, 0))
                .max_vcpus(64),
        )
        .workload(
            workload("mnp", "q", req(1000, 1024, 0), T0)
                .gang(3)
                .node_request(2, req(16_000, 1024, 0), None),
        )
        .build();
    match verdict(&schedule(&s), 0) {
        Some(Unplaced::CannotRun { kind, message, .. }) => {
            assert_eq!(kind, BlockedKind::NoInstanceTypeFits);
            assert!(message.starts_with("node 2 requests"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn gangs_and_single_jobs_of_the_same_request_are_judged_apart() {
    for gang_first in [true, false] {
        let gang = workload("mnp", "q", req(1000, 1024, 0), T0).gang(3);
        let single = workload("single", "q", req(1000, 1024, 0), T0);
        let b = snapshot()
            .queue(queue("q", &["ce"]).disabled())
            .environment(
                environment("ce")
                    .shape("m5.xlarge", alloc(4, 16384, 0))
                    .max_vcpus(8),
            );
        let s = if gang_first {
            b.workload(gang).workload(single)
        } else {
            b.workload(single).workload(gang)
        }
        .build();
        let r = schedule(&s);
        let (g, one) = if gang_first { (0, 1) } else { (1, 0) };
        assert_eq!(
            verdict(&r, g).and_then(|u| u.kind()),
            Some(BlockedKind::GangTooLarge)
        );
        assert_eq!(verdict(&r, one), Some(Unplaced::QueueDisabled));
    }
}

#[test]
fn a_gang_waits_while_enough_nodes_could_free_or_start_and_says_so_otherwise() {
    // 2 Ready nodes (busy), a gang of 3: no room soon, unless a node is starting.
    let make = |starting: u32| {
        snapshot()
            .queue(queue("q", &["ce"]))
            .environment(environment("ce").starting_nodes(starting))
            .node(node("n1", "ce", alloc(4, 16384, 0)).barge_pods(1))
            .node(node("n2", "ce", alloc(4, 16384, 0)).barge_pods(1))
            .workload(workload("mnp", "q", req(1000, 1024, 0), T0).gang(3))
            .build()
    };
    assert_eq!(
        verdict(&schedule(&make(0)), 0).and_then(|u| u.kind()),
        Some(BlockedKind::InsufficientCapacity)
    );
    assert_eq!(verdict(&schedule(&make(1)), 0), Some(Unplaced::NoCapacity));
    // 3 Ready nodes, all busy: room comes when their work ends.
    let s = ce_nodes(
        snapshot()
            .queue(queue("q", &["ce"]))
            .environment(environment("ce")),
        "ce",
        3,
    )
    .workload(workload("single", "q", req(500, 512, 0), T0))
    .workload(workload("mnp", "q", req(1000, 1024, 0), T0 + 1).gang(3))
    .build();
    assert_eq!(verdict(&schedule(&s), 1), Some(Unplaced::NoCapacity));
}

#[test]
fn a_strict_fifo_queue_stops_at_a_gang_that_does_not_fit() {
    let s = ce_nodes(
        snapshot()
            .queue(queue("q", &["ce"]).strict_fifo())
            .environment(environment("ce")),
        "ce",
        2,
    )
    .workload(workload("mnp", "q", req(1000, 1024, 0), T0).gang(3))
    .workload(workload("small", "q", req(500, 512, 0), T0 + 1))
    .build();
    let r = schedule(&s);
    assert!(r.placements.is_empty());
    assert_eq!(
        verdict(&r, 1),
        Some(Unplaced::BehindStrictFifoHead {
            head: JobKey::new("default", "mnp")
        })
    );
}

#[test]
fn gang_passes_are_deterministic() {
    let mut b = snapshot()
        .queue(queue("q", &["ce"]))
        .queue(queue("p", &["ce"]).priority(0))
        .environment(environment("ce"));
    for i in 0..12 {
        b = b.node(node(
            &format!("n{i:02}"),
            "ce",
            alloc(4 + (i % 3) * 4, 16384, 0),
        ));
    }
    for i in 0..6 {
        b = b.workload(
            workload(&format!("g{i}"), "q", req(1000 + 500 * i, 1024, 0), T0 + i).gang(3),
        );
        b = b.workload(workload(&format!("s{i}"), "p", req(700, 512, 0), T0 + i));
    }
    let s = b.build();
    let first = schedule(&s);
    for _ in 0..20 {
        assert_eq!(schedule(&s), first);
    }
    assert!(!first.placements.is_empty());
}

#[test]
fn gang_workloads_come_from_the_job_plan() {
    let gang = Gang {
        main_node: 1,
        members: vec![
            GangMember {
                request: req(1000, 1024, 0),
                constraints: Constraints::default(),
            };
            3
        ],
    };
    let job = JobKey::new("ns", "mnp");
    let work = crate::job::RunnableWork::Gang {
        attempt: 2,
        retried: true,
    };
    let w = Workload::from_runnable(
        &job,
        "q",
        T0,
        0,
        req(1000, 1024, 0),
        &Constraints::default(),
        Some(&gang),
        &work,
    );
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].units, Units::Gang(gang));
    assert!(w[0].retried);
    assert!(Workload::from_runnable(
        &job,
        "q",
        T0,
        0,
        req(1000, 1024, 0),
        &Constraints::default(),
        None,
        &work
    )
    .is_empty());
}
