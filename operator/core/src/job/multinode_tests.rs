//! Tests of the multi-node parallel job state machine, one (or more) per rule.

use super::super::tests::{deleted, released, states, stopped, with_record};
use super::super::*;
use crate::deps::{Dependency, DependencyTarget};
use crate::fixtures::{job, node_pod, secs, JobViewBuilder, PodBuilder, T0};
use crate::naming;
use crate::pod_creation::{CreationRefusal, Unit};
use crate::reasons;
use crate::state::JobState::*;
use std::collections::{BTreeMap, BTreeSet};

/// A 4-node job `mpi` (main node 0) with `attempts` attempts.
fn mpi(attempts: u32) -> JobViewBuilder {
    job("mpi").nodes(4, 0).retry(attempts)
}

/// Node `n` of attempt `attempt` of `mpi`.
fn node(attempt: u32, n: u32) -> PodBuilder {
    node_pod("mpi", attempt, n)
}

/// Nodes 1..=3 of `attempt`, running since `at`.
fn running_children(mut view: JobViewBuilder, attempt: u32, at: i64) -> JobViewBuilder {
    for n in 1..4 {
        view = view.pod(node(attempt, n).running(at));
    }
    view
}

/// The `CreateNodePods` requests of a plan: (attempt, main pod IP, indices).
fn creations(plan: &JobPlan) -> Vec<(u32, &str, Vec<u32>)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            JobAction::CreateNodePods {
                attempt,
                main_pod_ip,
                indices,
            } => Some((*attempt, main_pod_ip.as_str(), indices.clone())),
            _ => None,
        })
        .collect()
}

fn gang(attempt: u32, retried: bool) -> RunnableWork {
    RunnableWork::Gang { attempt, retried }
}

fn nodes(plan: &JobPlan) -> &NodeStates {
    plan.nodes
        .as_ref()
        .expect("a multi-node plan carries node states")
}

// ---------------------------------------------------------------- the happy path

/// RUNNABLE → gang offered → main pod → STARTING → main running without IP (no children) →
/// with IP (children requested) → RUNNING → main exits 0 while children run → SUCCEEDED,
/// children stopped gracefully, released once they exited.
#[test]
fn four_nodes_main_first_then_children_then_the_main_decides() {
    let mut view = mpi(1).build();
    let plan = reconcile(&view, T0);
    assert_eq!(states(&plan), vec![(Submitted, Runnable)]);
    assert_eq!(plan.runnable, gang(1, false));
    assert!(plan.actions.is_empty());
    assert_eq!(
        nodes(&plan),
        &NodeStates {
            attempt: 1,
            states: vec![Runnable; 4],
            main_pod: None,
            main_pod_ip: None,
        }
    );
    view.record = plan.record;

    // The scheduler placed the gang and created the main node's pod only.
    view.pods = vec![node(1, 0).pending().build()];
    let plan = reconcile(&view, T0 + secs(1));
    assert_eq!(states(&plan), vec![(Runnable, Starting)]);
    assert_eq!(plan.runnable, RunnableWork::Nothing);
    assert!(creations(&plan).is_empty());
    assert_eq!(
        nodes(&plan).states,
        vec![Starting, Runnable, Runnable, Runnable]
    );
    assert_eq!(nodes(&plan).main_pod.as_deref(), Some("mpi-1-node-0"));
    view.record = plan.record;

    // An IP before the container runs is not enough.
    view.pods = vec![node(1, 0).pending().ip("10.0.0.5").build()];
    let plan = reconcile(&view, T0 + secs(2));
    assert!(plan.events.is_empty() && creations(&plan).is_empty());

    // Running without an IP: RUNNING, but no children yet.
    view.pods = vec![node(1, 0).running(T0 + secs(3)).build()];
    let plan = reconcile(&view, T0 + secs(4));
    assert_eq!(states(&plan), vec![(Starting, Running)]);
    assert_eq!(plan.record.started_at_ms, Some(T0 + secs(3)));
    assert!(creations(&plan).is_empty(), "{:?}", plan.actions);
    view.record = plan.record;

    // With its IP: the other nodes' pods, main IP included.
    view.pods = vec![node(1, 0).running(T0 + secs(3)).ip("10.0.0.5").build()];
    let plan = reconcile(&view, T0 + secs(5));
    assert!(plan.events.is_empty());
    assert_eq!(creations(&plan), vec![(1, "10.0.0.5", vec![1, 2, 3])]);
    assert_eq!(nodes(&plan).main_pod_ip.as_deref(), Some("10.0.0.5"));
    assert_eq!(plan.actions.len(), 1, "{:?}", plan.actions);

    // Some children exist: only the missing one is asked for again.
    view.pods.push(node(1, 1).pending().build());
    view.pods.push(node(1, 3).running(T0 + secs(6)).build());
    let plan = reconcile(&view, T0 + secs(7));
    assert_eq!(creations(&plan), vec![(1, "10.0.0.5", vec![2])]);
    assert_eq!(
        nodes(&plan).states,
        vec![Running, Starting, Runnable, Running]
    );

    // All nodes run: nothing to do.
    let main = node(1, 0).running(T0 + secs(3)).ip("10.0.0.5");
    let all = running_children(
        mpi(1).record(view.record.clone()).pod(main),
        1,
        T0 + secs(8),
    );
    let plan = reconcile(&all.clone().build(), T0 + secs(9));
    assert!(
        plan.actions.is_empty() && !plan.changed,
        "{:?}",
        plan.actions
    );
    assert_eq!(nodes(&plan).states, vec![Running; 4]);

    // The main exits 0 while the children run: SUCCEEDED, from the main node.
    let done = running_children(
        mpi(1).record(view.record.clone()).pod(
            node(1, 0)
                .node("node-0")
                .ip("10.0.0.5")
                .succeeded(T0 + secs(3), T0 + secs(60)),
        ),
        1,
        T0 + secs(8),
    )
    .build();
    let plan = reconcile(&done, T0 + secs(61));
    assert_eq!(states(&plan), vec![(Running, Succeeded)]);
    assert_eq!(plan.record.stopped_at_ms, Some(T0 + secs(60)));
    let a = &plan.record.attempts[0];
    assert_eq!(
        (a.attempt, a.pod_name.as_str(), a.node_name.as_deref()),
        (1, "mpi-1-node-0", Some("node-0"))
    );
    assert_eq!(a.exit_code, Some(0));
    assert_eq!(
        stopped(&plan),
        vec![
            ("mpi-1-node-1", DeleteReason::Superseded),
            ("mpi-1-node-2", DeleteReason::Superseded),
            ("mpi-1-node-3", DeleteReason::Superseded),
        ],
        "children get SIGTERM, then SIGKILL after their grace period"
    );
    assert!(deleted(&plan).is_empty(), "{:?}", plan.actions);
    assert_eq!(
        released(&plan),
        vec!["mpi-1-node-0"],
        "running children keep theirs"
    );
    assert_eq!(
        nodes(&plan).states,
        vec![Succeeded, Running, Running, Running]
    );

    // Once the children exited (the kubelet enforced their deadline), they are released.
    let mut after = with_record(&done, &plan);
    after.pods = vec![node(1, 0)
        .ip("10.0.0.5")
        .succeeded(T0 + secs(3), T0 + secs(60))
        .released()
        .build()];
    for n in 1..4 {
        after.pods.push(
            node(1, n)
                .failed(143, T0 + secs(8), T0 + secs(62))
                .pod_reason("DeadlineExceeded")
                .deadline(T0 + secs(61))
                .build(),
        );
    }
    let plan = reconcile(&after, T0 + secs(63));
    assert!(plan.events.is_empty() && !plan.changed);
    assert_eq!(
        released(&plan),
        vec!["mpi-1-node-1", "mpi-1-node-2", "mpi-1-node-3"]
    );
    assert!(stopped(&plan).is_empty() && deleted(&plan).is_empty());
    assert_eq!(
        plan.record.state, Succeeded,
        "a child's exit code changes nothing"
    );
    assert_eq!(nodes(&plan).states, vec![Succeeded, Failed, Failed, Failed]);
}

#[test]
fn a_child_still_running_after_the_end_is_forced_out_after_its_grace_then_released() {
    let mut record = JobRecord::submitted(T0);
    record.state = Succeeded;
    record.stopped_at_ms = Some(T0 + secs(10));
    let stopping = job("mpi")
        .nodes(2, 0)
        .record(record)
        .pod(node(1, 0).succeeded(T0, T0 + secs(10)).released())
        .pod(node(1, 1).running(T0 + secs(1)).deadline(T0 + secs(11)));
    let plan = reconcile(&stopping.clone().build(), T0 + secs(12));
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(
        plan.requeue_at_ms,
        Some(T0 + secs(71)),
        "deadline + grace + margin"
    );
    let plan = reconcile(&stopping.build(), T0 + secs(71));
    assert_eq!(
        deleted(&plan),
        vec![("mpi-1-node-1", 0, DeleteReason::ForceDelete)]
    );
    assert_eq!(
        released(&plan),
        vec!["mpi-1-node-1"],
        "nothing left to wait for"
    );
}

#[test]
fn a_child_that_never_started_is_deleted_at_once_when_the_attempt_ends() {
    let view = job("mpi")
        .nodes(3, 0)
        .state(Running)
        .pod(node(1, 0).ip("10.0.0.5").succeeded(T0, T0 + secs(5)))
        .pod(node(1, 1).waiting("ImagePullBackOff", "no such image"))
        .pod(node(1, 2).pending())
        .build();
    let plan = reconcile(&view, T0 + secs(6));
    assert_eq!(plan.record.state, Succeeded);
    assert_eq!(
        deleted(&plan),
        vec![
            ("mpi-1-node-1", 0, DeleteReason::Superseded),
            ("mpi-1-node-2", 0, DeleteReason::Superseded),
        ]
    );
    assert_eq!(
        released(&plan),
        vec!["mpi-1-node-0", "mpi-1-node-1", "mpi-1-node-2"]
    );
    assert_eq!(nodes(&plan).states, vec![Succeeded, Failed, Starting]);
}

// ---------------------------------------------------------------- retries and outcomes

#[test]
fn a_failed_main_with_attempts_left_retries_the_whole_gang_with_new_pods() {
    let view = running_children(
        mpi(2)
            .state(Running)
            .pod(node(1, 0).ip("10.0.0.5").failed(1, T0, T0 + secs(30))),
        1,
        T0 + secs(1),
    )
    .build();
    let plan = reconcile(&view, T0 + secs(31));
    assert_eq!(states(&plan), vec![(Running, Runnable)]);
    assert_eq!(plan.record.attempts.len(), 1);
    assert_eq!(plan.record.attempts[0].exit_code, Some(1));
    assert_eq!(plan.record.attempts[0].pod_name, "mpi-1-node-0");
    assert_eq!(released(&plan), vec!["mpi-1-node-0"]);
    assert_eq!(
        stopped(&plan).len(),
        3,
        "the old children are stopped: {:?}",
        plan.actions
    );
    // The next gang waits until the old one let go of its nodes.
    assert_eq!(plan.runnable, RunnableWork::Nothing);
    assert!(plan
        .waiting
        .as_deref()
        .unwrap_or_default()
        .contains("attempt 1"));
    assert_eq!(nodes(&plan).attempt, 2);
    assert_eq!(nodes(&plan).states, vec![Runnable; 4]);

    // The old children exited: attempt 2 is offered, retried (first in its queue).
    let mut next = with_record(&view, &plan);
    next.pods = vec![node(1, 0).failed(1, T0, T0 + secs(30)).released().build()];
    for n in 1..4 {
        next.pods.push(
            node(1, n)
                .failed(143, T0 + secs(1), T0 + secs(33))
                .pod_reason("DeadlineExceeded")
                .build(),
        );
    }
    let plan = reconcile(&next, T0 + secs(34));
    assert_eq!(plan.runnable, gang(2, true));
    assert_eq!(released(&plan).len(), 3);
    assert_eq!(plan.waiting, None);

    // Attempt 2's main pod is all new: the old pods are left alone (already released).
    let mut second = with_record(&next, &plan);
    second.pods.iter_mut().for_each(|p| p.has_finalizer = false);
    second
        .pods
        .push(node(2, 0).running(T0 + secs(40)).ip("10.0.0.9").build());
    let plan = reconcile(&second, T0 + secs(41));
    assert_eq!(
        states(&plan),
        vec![(Runnable, Starting), (Starting, Running)]
    );
    assert_eq!(creations(&plan), vec![(2, "10.0.0.9", vec![1, 2, 3])]);
    assert_eq!(plan.actions.len(), 1, "{:?}", plan.actions);
    assert_eq!(nodes(&plan).attempt, 2);
    assert_eq!(nodes(&plan).main_pod.as_deref(), Some("mpi-2-node-0"));
}

#[test]
fn an_exit_rule_on_the_main_nodes_exit_code_fails_the_job() {
    let view = running_children(
        job("mpi")
            .nodes(4, 0)
            .retry_rules(5, &[(Some("3"), None, None, "EXIT")])
            .state(Running)
            .pod(node(1, 0).ip("10.0.0.5").failed(3, T0, T0 + secs(9))),
        1,
        T0,
    )
    .build();
    let plan = reconcile(&view, T0 + secs(10));
    assert_eq!(states(&plan), vec![(Running, Failed)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some(reasons::ESSENTIAL_CONTAINER_EXITED)
    );
    assert_eq!(plan.record.attempts[0].exit_code, Some(3));
    assert_eq!(plan.runnable, RunnableWork::Nothing);
    assert_eq!(stopped(&plan).len(), 3);
}

#[test]
fn a_child_that_exits_or_fails_changes_nothing() {
    let view = mpi(3)
        .state(Running)
        .pod(node(1, 0).running(T0).ip("10.0.0.5"))
        .pod(node(1, 1).failed(1, T0 + secs(1), T0 + secs(5)))
        .pod(node(1, 2).succeeded(T0 + secs(1), T0 + secs(6)))
        .pod(node(1, 3).rejected("Evicted", "The node was low on resource: memory."))
        .build();
    let plan = reconcile(&view, T0 + secs(7));
    assert!(plan.events.is_empty());
    assert_eq!(plan.record.state, Running);
    assert!(
        plan.actions.is_empty(),
        "kept until the attempt ends: {:?}",
        plan.actions
    );
    assert!(plan.record.attempts.is_empty());
    assert_eq!(
        nodes(&plan).states,
        vec![Running, Failed, Succeeded, Failed]
    );
}

#[test]
fn a_lost_node_under_a_child_fails_the_attempt_with_the_host_reason_and_retries() {
    let view = job("mpi")
        .nodes(4, 0)
        .retry_rules(
            3,
            &[
                (None, None, Some("Host EC2*"), "RETRY"),
                (None, None, None, "EXIT"),
            ],
        )
        .state(Running)
        .pod(node(1, 0).node("node-0").running(T0).ip("10.0.0.5"))
        .pod(node(1, 1).running(T0 + secs(1)))
        .pod(node(1, 2).node("gone-2").running(T0 + secs(1)).node_lost())
        .pod(node(1, 3).running(T0 + secs(1)))
        .build();
    let plan = reconcile(&view, T0 + secs(20));
    assert_eq!(states(&plan), vec![(Running, Runnable)]);
    let a = &plan.record.attempts[0];
    assert_eq!(a.status_reason, "Host EC2 (instance gone-2) terminated.");
    assert_eq!(
        (a.pod_name.as_str(), a.node_name.as_deref(), a.exit_code),
        ("mpi-1-node-0", Some("node-0"), None),
        "the attempt is the main node's"
    );
    assert_eq!(
        (a.started_at_ms, a.stopped_at_ms),
        (Some(T0), T0 + secs(20))
    );
    assert_eq!(
        stopped(&plan),
        vec![
            ("mpi-1-node-0", DeleteReason::Superseded),
            ("mpi-1-node-1", DeleteReason::Superseded),
            ("mpi-1-node-3", DeleteReason::Superseded),
        ]
    );
    assert_eq!(
        deleted(&plan),
        vec![("mpi-1-node-2", 0, DeleteReason::Superseded)]
    );
    assert_eq!(released(&plan), vec!["mpi-1-node-2"]);
    assert_eq!(nodes(&plan).attempt, 2);

    // With the exit rule first, the host loss ends the job instead.
    let mut exit = view.clone();
    exit.spec.retry_strategy = crate::retry::RetryStrategy::new(
        3,
        vec![
            crate::retry::EvaluateOnExit::parse(None, None, Some("Host EC2*"), "EXIT")
                .expect("rule"),
        ],
    )
    .expect("strategy");
    let plan = reconcile(&exit, T0 + secs(20));
    assert_eq!(states(&plan), vec![(Running, Failed)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("Host EC2 (instance gone-2) terminated.")
    );
}

#[test]
fn a_lost_main_node_fails_the_attempt_with_its_host() {
    let view = running_children(
        mpi(1).state(Running).pod(
            node(1, 0)
                .node("gone-0")
                .running(T0)
                .ip("10.0.0.5")
                .node_lost(),
        ),
        1,
        T0,
    )
    .build();
    let plan = reconcile(&view, T0 + secs(5));
    assert_eq!(states(&plan), vec![(Running, Failed)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("Host EC2 (instance gone-0) terminated.")
    );
    assert_eq!(
        deleted(&plan),
        vec![("mpi-1-node-0", 0, DeleteReason::Superseded)]
    );
    assert_eq!(stopped(&plan).len(), 3);
}

#[test]
fn an_idle_node_lost_under_a_child_that_already_exited_changes_nothing() {
    let view = mpi(3)
        .state(Running)
        .pod(node(1, 0).running(T0).ip("10.0.0.5"))
        .pod(node(1, 1).succeeded(T0, T0 + secs(2)).node_lost())
        .pod(node(1, 2).failed(1, T0, T0 + secs(2)).node_lost())
        .pod(node(1, 3).running(T0))
        .build();
    let plan = reconcile(&view, T0 + secs(9));
    assert!(
        plan.events.is_empty() && plan.actions.is_empty(),
        "{:?}",
        plan
    );
}

#[test]
fn a_vanished_main_pod_fails_the_attempt_and_stops_the_rest() {
    let view = job("mpi")
        .nodes(3, 0)
        .retry(2)
        .state(Running)
        .pod(node(1, 1).running(T0))
        .pod(node(1, 2).running(T0))
        .build();
    let plan = reconcile(&view, T0 + secs(3));
    assert_eq!(states(&plan), vec![(Running, Runnable)]);
    assert_eq!(
        plan.record.attempts[0].status_reason,
        reasons::pod_vanished("mpi-1-node-0")
    );
    assert_eq!(plan.record.attempts[0].pod_name, "mpi-1-node-0");
    assert_eq!(stopped(&plan).len(), 2);
    assert_eq!(
        plan.runnable,
        RunnableWork::Nothing,
        "the old children still run"
    );
}

#[test]
fn a_refused_main_pod_gives_up_at_the_bound() {
    let unit = Unit {
        attempt: 1,
        array_index: None,
    };
    let refusal = CreationRefusal::new(unit, "forbidden: quota", T0, secs(300));
    let view = mpi(1).state(Runnable).creation_refusal(refusal).build();
    let plan = reconcile(&view, T0 + secs(10));
    assert_eq!(plan.record.state, Runnable);
    assert_eq!(plan.runnable, gang(1, false));
    assert_eq!(plan.requeue_at_ms, Some(T0 + secs(300)));
    let plan = reconcile(&view, T0 + secs(300));
    assert_eq!(states(&plan), vec![(Runnable, Failed)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("PodCreationRefused: forbidden: quota")
    );
    assert_eq!(plan.record.attempts[0].pod_name, "mpi-1-node-0");
    assert_eq!(plan.record.attempts[0].node_name, None);
}

#[test]
fn refused_child_pods_fail_the_attempt_at_the_bound() {
    let unit = Unit {
        attempt: 1,
        array_index: None,
    };
    // Refused since T0, after the main pod was created.
    let refusal = CreationRefusal::new(unit, "forbidden: quota", T0, secs(300));
    let view = mpi(2)
        .state(Running)
        .creation_refusal(refusal)
        .pod(node(1, 0).running(T0).ip("10.0.0.5"))
        .pod(node(1, 1).running(T0))
        .build();
    let plan = reconcile(&view, T0 + secs(10));
    assert_eq!(creations(&plan), vec![(1, "10.0.0.5", vec![2, 3])]);
    assert_eq!(plan.requeue_at_ms, Some(T0 + secs(300)));

    let plan = reconcile(&view, T0 + secs(300));
    assert_eq!(states(&plan), vec![(Running, Runnable)]);
    assert!(creations(&plan).is_empty());
    let a = &plan.record.attempts[0];
    assert_eq!(a.status_reason, "PodCreationRefused: forbidden: quota");
    assert_eq!(
        (a.pod_name.as_str(), a.started_at_ms),
        ("mpi-1-node-0", Some(T0))
    );
    assert_eq!(
        stopped(&plan),
        vec![
            ("mpi-1-node-0", DeleteReason::Superseded),
            ("mpi-1-node-1", DeleteReason::Superseded),
        ]
    );

    // Every node has its pod: a refusal entry left over changes nothing.
    let complete = running_children(
        mpi(2)
            .state(Running)
            .creation_refusal(CreationRefusal::new(unit, "forbidden", T0, secs(300)))
            .pod(node(1, 0).running(T0).ip("10.0.0.5")),
        1,
        T0,
    )
    .build();
    let plan = reconcile(&complete, T0 + secs(400));
    assert!(plan.actions.is_empty() && plan.record.attempts.is_empty());
}

// ---------------------------------------------------------------- timeout

#[test]
fn the_timeout_covers_the_whole_attempt_from_the_mains_start() {
    let running = running_children(
        mpi(3)
            .timeout(60)
            .state(Running)
            .pod(node(1, 0).running(T0).ip("10.0.0.5")),
        1,
        T0 + secs(20),
    );
    let plan = reconcile(&running.clone().build(), T0 + secs(30));
    assert!(plan.actions.is_empty());
    assert_eq!(
        plan.requeue_at_ms,
        Some(T0 + secs(60)),
        "from the main's start"
    );

    // At the deadline every node is stopped, gracefully; no new child is asked for.
    let expired = mpi(3)
        .timeout(60)
        .state(Running)
        .pod(node(1, 0).running(T0).ip("10.0.0.5"))
        .pod(node(1, 1).running(T0 + secs(20)))
        .pod(node(1, 2).pending())
        .pod(node(1, 3).failed(1, T0 + secs(20), T0 + secs(30)))
        .build();
    let plan = reconcile(&expired, T0 + secs(60));
    assert_eq!(
        stopped(&plan),
        vec![
            ("mpi-1-node-0", DeleteReason::Timeout),
            ("mpi-1-node-1", DeleteReason::Timeout),
        ]
    );
    assert_eq!(
        deleted(&plan),
        vec![("mpi-1-node-2", 0, DeleteReason::Timeout)]
    );
    assert!(released(&plan).is_empty(), "the attempt is not over yet");
    assert_eq!(plan.record.state, Running);

    // The main pod stopped at its deadline: timed out, not retried, the rest let go.
    let timed_out = mpi(3)
        .timeout(60)
        .state(Running)
        .pod(
            node(1, 0)
                .failed(143, T0, T0 + secs(62))
                .pod_reason("DeadlineExceeded")
                .deadline(T0 + secs(60)),
        )
        .pod(node(1, 1).running(T0 + secs(20)).deadline(T0 + secs(60)))
        .pod(node(1, 3).failed(1, T0 + secs(20), T0 + secs(30)))
        .build();
    let plan = reconcile(&timed_out, T0 + secs(63));
    assert_eq!(states(&plan), vec![(Running, Failed)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some(reasons::ATTEMPT_DURATION_EXCEEDED)
    );
    assert_eq!(plan.record.attempts.len(), 1);
    assert_eq!(released(&plan), vec!["mpi-1-node-0", "mpi-1-node-3"]);
    assert!(stopped(&plan).is_empty(), "node 1 is stopping already");
    assert_eq!(plan.requeue_at_ms, Some(T0 + secs(120)));
}

#[test]
fn a_node_lost_while_the_gang_times_out_does_not_make_the_attempt_retryable() {
    let view = mpi(3)
        .timeout(60)
        .state(Running)
        .pod(
            node(1, 0)
                .running(T0)
                .ip("10.0.0.5")
                .deadline(T0 + secs(60)),
        )
        .pod(node(1, 1).node("gone-1").running(T0).node_lost())
        .build();
    let plan = reconcile(&view, T0 + secs(61));
    assert!(plan.record.attempts.is_empty(), "the main's end decides");
    assert_eq!(
        deleted(&plan),
        vec![("mpi-1-node-1", 0, DeleteReason::Timeout)]
    );
    // Before the deadline the same loss fails the attempt.
    let plan = reconcile(&view, T0 + secs(59));
    assert_eq!(
        plan.record.attempts[0].status_reason,
        "Host EC2 (instance gone-1) terminated."
    );
}

#[test]
fn no_child_is_created_once_the_main_is_being_stopped() {
    let view = mpi(1)
        .timeout(60)
        .state(Running)
        .pod(node(1, 0).running(T0).ip("10.0.0.5"))
        .build();
    let plan = reconcile(&view, T0 + secs(61));
    assert!(creations(&plan).is_empty(), "{:?}", plan.actions);
    let deleting = mpi(1)
        .state(Running)
        .pod(
            node(1, 0)
                .running(T0)
                .ip("10.0.0.5")
                .deleting(T0 + secs(40)),
        )
        .build();
    let plan = reconcile(&deleting, T0 + secs(20));
    assert!(creations(&plan).is_empty(), "{:?}", plan.actions);
}

// ---------------------------------------------------------------- terminate

#[test]
fn terminate_before_the_main_pod_exists_cancels() {
    let plan = reconcile(&mpi(3).state(Runnable).terminate("not needed").build(), T0);
    assert_eq!(states(&plan), vec![(Runnable, Failed)]);
    assert_eq!(plan.record.status_reason.as_deref(), Some("not needed"));
    assert!(plan.record.attempts.is_empty());
    assert_eq!(plan.runnable, RunnableWork::Nothing);
    assert_eq!(
        nodes(&plan),
        &NodeStates {
            attempt: 1,
            states: vec![Failed; 4],
            main_pod: None,
            main_pod_ip: None,
        }
    );
}

#[test]
fn terminate_after_start_stops_every_node_then_records_the_main() {
    let running = mpi(5)
        .state(Running)
        .terminate("operator said stop")
        .pod(node(1, 0).running(T0).ip("10.0.0.5"))
        .pod(node(1, 1).running(T0 + secs(1)))
        .pod(node(1, 2).pending())
        .build();
    let plan = reconcile(&running, T0 + secs(5));
    assert_eq!(
        stopped(&plan),
        vec![
            ("mpi-1-node-0", DeleteReason::Terminate),
            ("mpi-1-node-1", DeleteReason::Terminate),
        ]
    );
    assert_eq!(
        deleted(&plan),
        vec![("mpi-1-node-2", 0, DeleteReason::Terminate)]
    );
    assert!(creations(&plan).is_empty(), "no new node while terminating");
    assert_eq!(plan.record.state, Running);
    assert!(plan
        .waiting
        .unwrap_or_default()
        .contains("operator said stop"));

    let ended = mpi(5)
        .state(Running)
        .terminate("operator said stop")
        .pod(
            node(1, 0)
                .failed(143, T0, T0 + secs(7))
                .pod_reason("DeadlineExceeded"),
        )
        .pod(node(1, 1).running(T0 + secs(1)).deadline(T0 + secs(5)))
        .build();
    let plan = reconcile(&ended, T0 + secs(8));
    assert_eq!(states(&plan), vec![(Running, Failed)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("operator said stop")
    );
    assert_eq!(plan.record.attempts[0].exit_code, Some(143));
    assert_eq!(released(&plan), vec!["mpi-1-node-0"]);
}

// ---------------------------------------------------------------- shape, dependencies

#[test]
fn the_main_node_need_not_be_node_zero() {
    let view = job("mpi")
        .nodes(4, 2)
        .state(Runnable)
        .pod(node(1, 2).running(T0).ip("10.1.0.2"))
        .build();
    let plan = reconcile(&view, T0 + secs(1));
    assert_eq!(
        states(&plan),
        vec![(Runnable, Starting), (Starting, Running)]
    );
    assert_eq!(creations(&plan), vec![(1, "10.1.0.2", vec![0, 1, 3])]);
    assert_eq!(
        nodes(&plan).states,
        vec![Runnable, Runnable, Running, Runnable]
    );
    assert_eq!(nodes(&plan).main_pod.as_deref(), Some("mpi-1-node-2"));

    // Node 0 finishing is a child finishing: nothing; node 2 finishing decides.
    let view = job("mpi")
        .nodes(4, 2)
        .state(Running)
        .pod(node(1, 0).succeeded(T0, T0 + secs(3)))
        .pod(node(1, 1).running(T0))
        .pod(node(1, 2).running(T0).ip("10.1.0.2"))
        .pod(node(1, 3).running(T0))
        .build();
    let plan = reconcile(&view, T0 + secs(4));
    assert!(plan.events.is_empty() && plan.actions.is_empty());
    let mut view = view;
    view.pods[2] = node(1, 2).failed(2, T0, T0 + secs(5)).build();
    let plan = reconcile(&view, T0 + secs(6));
    assert_eq!(states(&plan), vec![(Running, Failed)]);
    assert_eq!(plan.record.attempts[0].pod_name, "mpi-1-node-2");
    assert_eq!(plan.record.attempts[0].exit_code, Some(2));
    assert_eq!(
        released(&plan),
        vec!["mpi-1-node-0", "mpi-1-node-2"],
        "exited pods go at once, running ones once stopped"
    );
}

#[test]
fn a_main_node_outside_the_gang_fails_the_job() {
    let plan = reconcile(&job("mpi").nodes(2, 2).build(), T0);
    assert_eq!(states(&plan), vec![(Submitted, Failed)]);
    assert_eq!(
        plan.record.status_reason,
        Some(reasons::main_node_out_of_range(2, 2))
    );
}

#[test]
fn a_gang_waits_for_its_dependencies_and_fails_with_them() {
    let view = mpi(1)
        .depends_on(Dependency::standard("prep"))
        .dependency("prep", DependencyTarget::job(Running))
        .build();
    let plan = reconcile(&view, T0);
    assert_eq!(states(&plan), vec![(Submitted, Pending)]);
    assert_eq!(plan.runnable, RunnableWork::Nothing);
    assert!(plan
        .waiting
        .clone()
        .unwrap_or_default()
        .contains("\"prep\""));
    assert_eq!(nodes(&plan).states, vec![Pending; 4]);

    let mut view = with_record(&view, &plan);
    view.dependencies
        .insert("prep".into(), DependencyTarget::job(Succeeded));
    let plan = reconcile(&view, T0 + 1);
    assert_eq!(states(&plan), vec![(Pending, Runnable)]);
    assert_eq!(plan.runnable, gang(1, false));

    view.dependencies
        .insert("prep".into(), DependencyTarget::job(Failed));
    let plan = reconcile(&view, T0 + 2);
    assert_eq!(states(&plan), vec![(Pending, Failed)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some(reasons::DEPENDENT_JOB_FAILED)
    );
}

#[test]
fn admission_and_time_limits_apply_as_for_single_jobs() {
    let waiting = mpi(1)
        .admission(Admission::Waiting {
            reason: "definition mpi-def not found".into(),
        })
        .build();
    let plan = reconcile(&waiting, T0);
    assert_eq!(plan.record.state, Submitted);
    assert_eq!(plan.runnable, RunnableWork::Nothing);

    let invalid = mpi(1)
        .admission(Admission::Invalid {
            reason: "nodeOverrides uncovers node 3".into(),
        })
        .build();
    assert_eq!(reconcile(&invalid, T0).record.state, Failed);

    let blocked = mpi(1)
        .state(Runnable)
        .blocked(
            BlockedKind::MultiNodeOnSpot,
            Some("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - multi-node jobs do not run on SPOT"),
            "every usable compute environment is SPOT",
        )
        .time_limit("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT", 600);
    let plan = reconcile(&blocked.clone().build(), T0 + secs(1));
    assert_eq!(plan.blocked, Some(BlockedKind::MultiNodeOnSpot));
    assert_eq!(plan.runnable, gang(1, false));
    assert_eq!(plan.requeue_at_ms, Some(T0 + secs(601)));
    let view = with_record(&blocked.build(), &plan);
    let plan = reconcile(&view, T0 + secs(601));
    assert_eq!(states(&plan), vec![(Runnable, Failed)]);
    assert!(plan
        .record
        .status_reason
        .unwrap_or_default()
        .starts_with("Canceled by JobStateTimeLimit action"));
}

// ---------------------------------------------------------------- finished jobs, invariants

#[test]
fn a_finished_job_shows_its_last_attempt_and_lets_every_pod_go() {
    let mut record = JobRecord::submitted(T0);
    record.state = Failed;
    record.stopped_at_ms = Some(T0 + secs(9));
    record.attempts.push(AttemptRecord {
        attempt: 1,
        array_index: None,
        pod_name: "mpi-1-node-0".into(),
        node_name: Some("node-0".into()),
        exit_code: Some(1),
        reason: None,
        started_at_ms: Some(T0),
        stopped_at_ms: T0 + secs(9),
        status_reason: reasons::ESSENTIAL_CONTAINER_EXITED.into(),
    });
    // The main pod is gone; node 1 still runs, node 2 was never created.
    let view = job("mpi")
        .nodes(3, 0)
        .ttl(60)
        .record(record)
        .pod(node(1, 1).running(T0 + secs(1)))
        .build();
    let plan = reconcile(&view, T0 + secs(10));
    assert!(plan.events.is_empty() && !plan.changed);
    assert_eq!(
        nodes(&plan),
        &NodeStates {
            attempt: 1,
            states: vec![Failed, Running, Failed],
            main_pod: Some("mpi-1-node-0".into()),
            main_pod_ip: None,
        }
    );
    assert_eq!(
        stopped(&plan),
        vec![("mpi-1-node-1", DeleteReason::Superseded)]
    );
    assert_eq!(
        plan.requeue_at_ms,
        Some(T0 + secs(69)),
        "ttl after stoppedAt"
    );
    assert_eq!(
        reconcile(&view, T0 + secs(69)).actions.last(),
        Some(&JobAction::DeleteJob)
    );
}

#[test]
fn same_input_same_plan_and_an_attempt_is_recorded_once() {
    let view = running_children(
        mpi(3)
            .timeout(600)
            .state(Running)
            .pod(node(1, 0).ip("10.0.0.5").failed(1, T0, T0 + secs(5))),
        1,
        T0,
    )
    .build();
    let first = reconcile(&view, T0 + secs(6));
    assert_eq!(first, reconcile(&view, T0 + secs(6)));
    assert_eq!(first.record.attempts.len(), 1);

    // The operator died after writing the status: the same pods again.
    let again = reconcile(&with_record(&view, &first), T0 + secs(7));
    assert_eq!(again.record.attempts.len(), 1, "recorded once");
    assert!(again.events.is_empty() && !again.changed);
    assert_eq!(released(&again), vec!["mpi-1-node-0"], "release is retried");
    assert_eq!(stopped(&again).len(), 3, "so is the stop");

    // A stale cache shows attempt 1's main running again: it is stopped, not re-read.
    let mut stale = with_record(&view, &first);
    stale.pods = vec![node(1, 0).running(T0).ip("10.0.0.5").build()];
    let plan = reconcile(&stale, T0 + secs(8));
    assert_eq!(plan.record, first.record);
    assert!(creations(&plan).is_empty());
    assert_eq!(
        stopped(&plan),
        vec![("mpi-1-node-0", DeleteReason::Superseded)]
    );
}

// ---------------------------------------------------------------- simulated lifecycles

/// What the simulation checked along the way.
#[derive(Debug, Default)]
struct SimReport {
    record: Option<JobRecord>,
    gangs_placed: u32,
    children_requested: u32,
    /// Passes where a retry waited for the previous gang to let go.
    held: u32,
}

/// A tiny deterministic cluster around one multi-node job: the "scheduler" creates the main
/// node's pod when a gang is offered, the operator creates children as asked, the "kubelet"
/// moves pods along at random (start, IP, exit 0/1, node lost, honour deadlines and deletions),
/// and every plan is applied (record first, then actions). Invariants are checked each step.
fn simulate_gang(seed: u64, num_nodes: u32, main_node: u32, attempts: u32) -> SimReport {
    let mut rng = seed;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut builder = job("sim").nodes(num_nodes, main_node).retry(attempts);
    // Every fourth job has a timeout and a main node that tends to outlive it.
    let main_dice = if seed.is_multiple_of(4) {
        builder = builder.timeout(60);
        400
    } else {
        12
    };
    let mut view = builder.build();
    // Every fifth job is terminated at some point of its life.
    let terminate_at = seed.is_multiple_of(5).then_some(5 + seed % 60);
    let mut now = T0;
    let mut report = SimReport::default();
    let mut ips: BTreeMap<u32, String> = BTreeMap::new();
    for step in 0..5_000 {
        now += 1_000;
        if terminate_at == Some(step) {
            view.spec.terminate = Some(Terminate::job("sim stop"));
        }
        let plan = reconcile(&view, now);
        assert_eq!(plan, reconcile(&view, now), "same view, same plan");

        // The record never moves backwards; an attempt is recorded once.
        if view.record.state.is_terminal() {
            assert_eq!(
                plan.record.state, view.record.state,
                "terminal stays terminal"
            );
        }
        assert!(plan.record.attempts.len() >= view.record.attempts.len());
        assert_eq!(
            plan.record.attempts[..view.record.attempts.len()],
            view.record.attempts[..],
            "recorded attempts never change"
        );
        for (i, a) in plan.record.attempts.iter().enumerate() {
            assert_eq!(
                a.attempt as usize,
                i + 1,
                "attempts recorded once, in order"
            );
            assert_eq!(
                a.pod_name,
                naming::node_pod_name("sim", a.attempt, main_node),
                "an attempt is the main node's"
            );
        }
        assert!(plan.record.attempts.len() <= attempts as usize);
        let states = &nodes(&plan).states;
        assert_eq!(states.len(), num_nodes as usize);

        for name in released(&plan) {
            let pod = view
                .pods
                .iter()
                .find(|p| p.name == name)
                .expect("released pod was observed");
            assert!(
                plan.record.state.is_terminal()
                    || plan.record.attempts.len() >= pod.attempt as usize,
                "{name} released before its attempt was recorded"
            );
        }
        for (attempt, ip, indices) in creations(&plan) {
            let main = view
                .pods
                .iter()
                .find(|p| p.attempt == attempt && p.node_index == Some(main_node))
                .expect("children asked for with their main pod observed");
            assert!(
                main.phase == PodPhase::Running && main.started_at_ms.is_some(),
                "children asked for before the main ran (step {step})"
            );
            assert_eq!(main.pod_ip.as_deref(), Some(ip));
            assert_eq!(
                attempt as usize,
                plan.record.attempts.len() + 1,
                "current attempt"
            );
            assert!(!indices.contains(&main_node));
        }
        if plan.record.state == Runnable && plan.runnable == RunnableWork::Nothing {
            report.held += 1;
        }
        if let RunnableWork::Gang { attempt, retried } = plan.runnable {
            assert_eq!(attempt as usize, plan.record.attempts.len() + 1);
            assert_eq!(retried, attempt > 1);
        }

        // Apply: record, then actions.
        view.record = plan.record.clone();
        for action in &plan.actions {
            match action {
                JobAction::ReleasePod { name } => {
                    if let Some(p) = view.pods.iter_mut().find(|p| &p.name == name) {
                        p.has_finalizer = false;
                    }
                }
                JobAction::DeletePod {
                    name,
                    grace_seconds,
                    ..
                } => {
                    if let Some(p) = view.pods.iter_mut().find(|p| &p.name == name) {
                        p.deletion_timestamp_ms
                            .get_or_insert(now + grace_seconds * 1000);
                    }
                }
                JobAction::StopPod { name, .. } => {
                    if let Some(p) = view.pods.iter_mut().find(|p| &p.name == name) {
                        p.active_deadline_at_ms.get_or_insert(now);
                    }
                }
                JobAction::CreateNodePods {
                    attempt,
                    main_pod_ip,
                    indices,
                } => {
                    for n in indices {
                        let name = naming::node_pod_name("sim", *attempt, *n);
                        if view.pods.iter().all(|p| p.name != name) {
                            report.children_requested += 1;
                            ips.insert(*attempt, main_pod_ip.clone());
                            view.pods.push(
                                node_pod("sim", *attempt, *n)
                                    .node(&format!("k8s-{attempt}-{n}"))
                                    .pending()
                                    .build(),
                            );
                        }
                    }
                }
                JobAction::DeleteJob => {}
            }
        }
        // Deleted pods without a finalizer go away; exited, released pods now and then.
        view.pods.retain(|p| {
            let gone = p.deletion_timestamp_ms.is_some() && !p.has_finalizer;
            let collected = !p.has_finalizer && pods::has_exited(p) && next(3) == 0;
            !gone && !collected
        });

        // At most one attempt's gang holds nodes at a time.
        let live: BTreeSet<u32> = view
            .pods
            .iter()
            .filter(|p| !pods::has_exited(p) && !p.node_lost)
            .map(|p| p.attempt)
            .collect();
        assert!(
            live.len() <= 1,
            "two gangs live at once: {live:?} (step {step})"
        );

        if plan.record.state.is_terminal() && view.pods.iter().all(|p| !p.has_finalizer) {
            report.record = Some(plan.record);
            return report;
        }

        // The "scheduler": place an offered gang (it creates the main node's pod only).
        if let RunnableWork::Gang { attempt, .. } = plan.runnable {
            if next(2) == 0 {
                report.gangs_placed += 1;
                let name = naming::node_pod_name("sim", attempt, main_node);
                assert!(
                    view.pods.iter().all(|p| p.name != name),
                    "a gang is placed once per attempt"
                );
                view.pods.push(
                    node_pod("sim", attempt, main_node)
                        .node(&format!("k8s-{attempt}-{main_node}"))
                        .pending()
                        .build(),
                );
            }
        }

        // The "kubelet".
        for pod in view.pods.iter_mut() {
            if pods::has_exited(pod) || pod.node_lost {
                continue;
            }
            let stop_due = pod.active_deadline_at_ms.is_some_and(|at| at <= now)
                || pod.deletion_timestamp_ms.is_some();
            if stop_due {
                if next(2) == 0 {
                    pod.phase = PodPhase::Failed;
                    pod.exit_code = pod.started_at_ms.map(|_| 143);
                    pod.finished_at_ms = Some(now);
                    if pod.active_deadline_at_ms.is_some() {
                        pod.pod_reason = Some("DeadlineExceeded".into());
                    }
                }
                continue;
            }
            // The IP comes with the pod's sandbox, sometimes only after the container runs.
            if pod.pod_ip.is_none() && next(3) == 0 {
                pod.pod_ip = Some(format!("10.{}.0.{}", pod.attempt, step % 250));
            }
            let is_main = pod.node_index == Some(main_node);
            match pod.phase {
                PodPhase::Pending => {
                    if next(2) == 0 {
                        pod.phase = PodPhase::Running;
                        pod.started_at_ms = Some(now);
                    }
                }
                _ => match next(if is_main { main_dice } else { 20 }) {
                    1 => {
                        pod.phase = PodPhase::Succeeded;
                        pod.exit_code = Some(0);
                        pod.finished_at_ms = Some(now);
                    }
                    2 => {
                        pod.phase = PodPhase::Failed;
                        pod.exit_code = Some(1);
                        pod.finished_at_ms = Some(now);
                    }
                    3 => pod.node_lost = true,
                    _ => {}
                },
            }
        }
        // Children carry the main node's IP of their attempt.
        for (attempt, ip) in &ips {
            let main = naming::node_pod_name("sim", *attempt, main_node);
            if let Some(p) = view.pods.iter().find(|p| p.name == main) {
                assert_eq!(
                    p.pod_ip.as_ref(),
                    Some(ip),
                    "a main pod's IP does not change"
                );
            }
        }
    }
    panic!("the simulated gang did not finish (seed {seed})");
}

#[test]
fn simulated_gangs_keep_every_invariant_and_finish() {
    let mut outcomes = BTreeMap::new();
    let mut reasons_seen = BTreeSet::new();
    let (mut children, mut held, mut terminated) = (0, 0, 0);
    for seed in 1..=200u64 {
        let num_nodes = 1 + (seed % 5) as u32;
        let main_node = (seed % u64::from(num_nodes)) as u32;
        let report = simulate_gang(
            seed * 0x9e37_79b9,
            num_nodes,
            main_node,
            1 + (seed % 3) as u32,
        );
        let record = report.record.expect("finished");
        if (seed * 0x9e37_79b9).is_multiple_of(5)
            && record.state == Failed
            && record.status_reason.as_deref() == Some("sim stop")
        {
            terminated += 1;
        }
        assert!(report.gangs_placed as usize >= record.attempts.len());
        children += report.children_requested;
        held += report.held;
        for a in &record.attempts {
            reasons_seen.insert(
                a.status_reason
                    .split(' ')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        *outcomes.entry(record.state).or_insert(0) += 1;
    }
    assert!(
        outcomes.get(&Succeeded).copied().unwrap_or(0) > 0,
        "{outcomes:?}"
    );
    assert!(
        outcomes.get(&Failed).copied().unwrap_or(0) > 0,
        "{outcomes:?}"
    );
    assert!(children > 0, "no child pod was ever created");
    assert!(held > 0, "no retry ever waited for the previous gang");
    assert!(terminated > 0, "no simulated job was terminated");
    for reason in ["Essential", "Host", "Job"] {
        assert!(
            reasons_seen.contains(reason),
            "no attempt ended by {reason}: {reasons_seen:?}"
        );
    }
}
