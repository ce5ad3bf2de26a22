//! Tests of the job state machine, one (or more) per rule.

use super::*;
use crate::deps::{Dependency, DependencyTarget};
use crate::fixtures::{array_target, attempt_pod, job, secs, T0};
use crate::reasons;
use crate::state::JobState::*;

/// The view after `plan`'s record was written.
pub(super) fn with_record(view: &JobView, plan: &JobPlan) -> JobView {
    let mut next = view.clone();
    next.record = plan.record.clone();
    next
}

pub(super) fn states(plan: &JobPlan) -> Vec<(JobState, JobState)> {
    plan.events.iter().map(|e| (e.from, e.to)).collect()
}

pub(super) fn released(plan: &JobPlan) -> Vec<&str> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            JobAction::ReleasePod { name } => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

pub(super) fn deleted(plan: &JobPlan) -> Vec<(&str, i64, DeleteReason)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            JobAction::DeletePod {
                name,
                grace_seconds,
                reason,
            } => Some((name.as_str(), *grace_seconds, *reason)),
            _ => None,
        })
        .collect()
}

pub(super) fn stopped(plan: &JobPlan) -> Vec<(&str, DeleteReason)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            JobAction::StopPod { name, reason } => Some((name.as_str(), *reason)),
            _ => None,
        })
        .collect()
}

fn groups(plan: &JobPlan) -> Vec<(u32, bool, String)> {
    match &plan.runnable {
        RunnableWork::Array { groups } => groups
            .iter()
            .map(|g| (g.attempt, g.retried, g.indices.to_string()))
            .collect(),
        other => panic!("expected array work, got {other:?}"),
    }
}

fn array_rec(plan: &JobPlan) -> &ArrayRecord {
    plan.record.array.as_ref().expect("array record")
}

// ---------------------------------------------------------------- single jobs: queueing

#[test]
fn submitted_without_dependencies_becomes_runnable() {
    let plan = reconcile(&job("j").build(), T0 + 5);
    assert_eq!(states(&plan), vec![(Submitted, Runnable)]);
    assert_eq!(plan.record.runnable_since_ms, Some(T0 + 5));
    assert_eq!(
        plan.runnable,
        RunnableWork::Single {
            attempt: 1,
            retried: false
        }
    );
    assert!(plan.changed);
    assert!(plan.actions.is_empty());
}

#[test]
fn unmet_dependency_is_pending_until_it_succeeds() {
    let view = job("b")
        .depends_on(Dependency::standard("a"))
        .dependency("a", DependencyTarget::job(Running))
        .build();
    let plan = reconcile(&view, T0);
    assert_eq!(states(&plan), vec![(Submitted, Pending)]);
    assert_eq!(plan.runnable, RunnableWork::Nothing);
    let reason = plan.waiting.clone().expect("waiting reason");
    assert!(reason.contains("\"a\" to succeed"), "{reason}");
    assert_eq!(plan.record.status_reason.as_deref(), Some(reason.as_str()));

    let mut view = with_record(&view, &plan);
    // Same observation again: nothing changes.
    let again = reconcile(&view, T0 + 1);
    assert!(!again.changed && again.events.is_empty());
    view.dependencies
        .insert("a".into(), DependencyTarget::job(Succeeded));
    let plan = reconcile(&view, T0 + 2);
    assert_eq!(states(&plan), vec![(Pending, Runnable)]);
    assert_eq!(plan.record.status_reason, None);
}

#[test]
fn missing_dependency_waits_with_a_reason_that_says_so() {
    let plan = reconcile(
        &job("b").depends_on(Dependency::standard("ghost")).build(),
        T0,
    );
    assert_eq!(plan.record.state, Pending);
    assert!(plan
        .waiting
        .expect("reason")
        .contains("\"ghost\", which does not exist"));
}

#[test]
fn failed_dependency_fails_the_job() {
    let view = job("b")
        .depends_on(Dependency::standard("a"))
        .dependency("a", DependencyTarget::job(Failed))
        .build();
    let plan = reconcile(&view, T0 + 9);
    assert_eq!(states(&plan), vec![(Submitted, Failed)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some(reasons::DEPENDENT_JOB_FAILED)
    );
    assert_eq!(plan.record.stopped_at_ms, Some(T0 + 9));
}

#[test]
fn admission_waiting_keeps_submitted_and_invalid_fails() {
    let waiting = job("j")
        .admission(Admission::Waiting {
            reason: "job definition \"render\" does not exist".into(),
        })
        .build();
    let plan = reconcile(&waiting, T0);
    assert_eq!(plan.record.state, Submitted);
    assert!(plan.events.is_empty());
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("job definition \"render\" does not exist")
    );
    assert_eq!(
        plan.waiting.as_deref(),
        Some("job definition \"render\" does not exist")
    );

    let invalid = job("j")
        .admission(Admission::Invalid {
            reason: "containerProperties.image is empty".into(),
        })
        .build();
    let plan = reconcile(&invalid, T0);
    assert_eq!(states(&plan), vec![(Submitted, Failed)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("containerProperties.image is empty")
    );
}

// ---------------------------------------------------------------- single jobs: attempts

#[test]
fn pod_created_means_starting_and_running_container_means_running() {
    let base = job("j").state(Runnable);
    let plan = reconcile(
        &base
            .clone()
            .pod(attempt_pod("j", 1, None).pending())
            .build(),
        T0,
    );
    assert_eq!(states(&plan), vec![(Runnable, Starting)]);
    assert_eq!(plan.runnable, RunnableWork::Nothing);

    // Seen directly as running: both steps are announced.
    let plan = reconcile(
        &base
            .pod(attempt_pod("j", 1, None).running(T0 + 100))
            .build(),
        T0 + 200,
    );
    assert_eq!(
        states(&plan),
        vec![(Runnable, Starting), (Starting, Running)]
    );
    assert_eq!(plan.record.started_at_ms, Some(T0 + 100));
}

#[test]
fn exit_zero_succeeds_records_the_attempt_and_releases_the_pod() {
    let view = job("j")
        .state(Running)
        .pod(
            attempt_pod("j", 1, None)
                .node("n7")
                .succeeded(T0, T0 + secs(30)),
        )
        .build();
    let plan = reconcile(&view, T0 + secs(31));
    assert_eq!(states(&plan), vec![(Running, Succeeded)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some(reasons::ESSENTIAL_CONTAINER_EXITED)
    );
    assert_eq!(plan.record.stopped_at_ms, Some(T0 + secs(30)));
    assert_eq!(plan.record.attempts.len(), 1);
    let a = &plan.record.attempts[0];
    assert_eq!(
        (a.attempt, a.exit_code, a.node_name.as_deref()),
        (1, Some(0), Some("n7"))
    );
    assert_eq!(a.pod_name, "j-1");
    assert_eq!(released(&plan), vec!["j-1"]);
}

#[test]
fn failed_attempt_with_attempts_left_goes_back_to_runnable_first_in_queue() {
    let view = job("j")
        .retry(3)
        .state(Running)
        .pod(attempt_pod("j", 1, None).failed(2, T0, T0 + secs(5)))
        .build();
    let plan = reconcile(&view, T0 + secs(6));
    assert_eq!(states(&plan), vec![(Running, Runnable)]);
    assert_eq!(plan.record.runnable_since_ms, Some(T0 + secs(6)));
    assert_eq!(plan.record.attempts.len(), 1);
    assert_eq!(
        plan.runnable,
        RunnableWork::Single {
            attempt: 2,
            retried: true
        }
    );
    assert_eq!(released(&plan), vec!["j-1"]);
}

#[test]
fn last_attempt_failure_fails_the_job() {
    let mut record = JobRecord::submitted(T0);
    record.state = Running;
    record.attempts.push(AttemptRecord {
        attempt: 1,
        array_index: None,
        pod_name: "j-1".into(),
        node_name: None,
        exit_code: Some(1),
        reason: None,
        started_at_ms: Some(T0),
        stopped_at_ms: T0 + 1,
        status_reason: reasons::ESSENTIAL_CONTAINER_EXITED.into(),
    });
    let view = job("j")
        .retry(2)
        .record(record)
        .pod(attempt_pod("j", 1, None).failed(1, T0, T0 + 1).released())
        .pod(attempt_pod("j", 2, None).failed(3, T0 + 10, T0 + 20))
        .build();
    let plan = reconcile(&view, T0 + 30);
    assert_eq!(states(&plan), vec![(Running, Failed)]);
    assert_eq!(plan.record.attempts.len(), 2);
    assert_eq!(plan.record.attempts[1].exit_code, Some(3));
    assert_eq!(released(&plan), vec!["j-2"]);
}

#[test]
fn evaluate_on_exit_exit_rule_stops_retries() {
    let view = job("j")
        .retry_rules(5, &[(None, Some("OOM*"), None, "EXIT")])
        .state(Running)
        .pod(
            attempt_pod("j", 1, None)
                .failed(137, T0, T0 + 1)
                .container_reason("OOMKilled"),
        )
        .build();
    let plan = reconcile(&view, T0 + 2);
    assert_eq!(plan.record.state, Failed);
    assert_eq!(plan.record.attempts[0].reason.as_deref(), Some("OOMKilled"));
}

#[test]
fn lost_host_is_retried_by_host_ec2_rule() {
    let view = job("j")
        .retry_rules(
            5,
            &[
                (None, None, Some("Host EC2*"), "RETRY"),
                (None, Some("*"), None, "EXIT"),
            ],
        )
        .state(Running)
        .pod(
            attempt_pod("j", 1, None)
                .node("spot-3")
                .running(T0)
                .node_lost(),
        )
        .build();
    let plan = reconcile(&view, T0 + secs(9));
    assert_eq!(plan.record.state, Runnable);
    assert_eq!(
        plan.record.attempts[0].status_reason,
        "Host EC2 (instance spot-3) terminated."
    );
    assert_eq!(plan.record.attempts[0].stopped_at_ms, T0 + secs(9));
    assert_eq!(released(&plan), vec!["j-1"]);
}

#[test]
fn evicted_pod_without_exit_code_is_a_retryable_failure() {
    let view = job("j")
        .retry(2)
        .state(Starting)
        .pod(attempt_pod("j", 1, None).rejected("Evicted", "The node was low on resource: memory."))
        .build();
    let plan = reconcile(&view, T0);
    assert_eq!(plan.record.state, Runnable);
    assert_eq!(
        plan.record.attempts[0].status_reason,
        "Evicted: The node was low on resource: memory."
    );
    assert_eq!(plan.record.attempts[0].exit_code, None);
}

#[test]
fn vanished_pod_counts_as_a_failed_attempt() {
    let view = job("j").retry(2).state(Running).build();
    let plan = reconcile(&view, T0);
    assert_eq!(states(&plan), vec![(Running, Runnable)]);
    assert_eq!(
        plan.record.attempts[0].status_reason,
        reasons::pod_vanished("j-1")
    );
    assert!(
        plan.actions.is_empty(),
        "nothing to stop or release: {:?}",
        plan.actions
    );
}

#[test]
fn a_dependency_cycle_fails_the_job_naming_the_cycle() {
    let view = job("a")
        .depends_on(Dependency::standard("b"))
        .dependency("b", DependencyTarget::job(Pending))
        .graph_edge("a", &["b"])
        .graph_edge("b", &["c"])
        .graph_edge("c", &["a"])
        .state(Pending)
        .build();
    let plan = reconcile(&view, T0 + 5);
    assert_eq!(states(&plan), vec![(Pending, Failed)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("Dependency cycle: a → b → c → a")
    );
    assert_eq!(plan.runnable, RunnableWork::Nothing);

    // An array in a cycle fails every child with the same reason.
    let view = job("arr")
        .array(3)
        .depends_on(Dependency::standard("b"))
        .dependency("b", DependencyTarget::job(Pending))
        .graph_edge("arr", &["b"])
        .graph_edge("b", &["arr"])
        .build();
    let plan = reconcile(&view, T0);
    assert_eq!(plan.record.state, Failed);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("Dependency cycle: arr → b → arr")
    );
    assert_eq!(array_rec(&plan).failed.to_string(), "0-2");
}

#[test]
fn a_dependency_missing_past_the_grace_fails_the_job() {
    let view = job("b")
        .depends_on(Dependency::standard("ghost"))
        .missing_dependency_grace(60)
        .build();
    let plan = reconcile(&view, T0 + secs(10));
    assert_eq!(plan.record.state, Pending);
    assert_eq!(
        plan.requeue_at_ms,
        Some(T0 + secs(60)),
        "looks again when the grace ends"
    );
    let view = with_record(&view, &plan);
    let plan = reconcile(&view, T0 + secs(60));
    assert_eq!(states(&plan), vec![(Pending, Failed)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("Dependency not found: job \"ghost\" does not exist (waited 60 s)")
    );
    // An array waiting on a missing N_TO_N target fails the same way.
    let view = job("arr")
        .array(2)
        .depends_on(Dependency::n_to_n("ghost"))
        .missing_dependency_grace(60)
        .build();
    let plan = reconcile(&view, T0 + secs(61));
    assert_eq!(plan.record.state, Failed);
    assert!(plan
        .record
        .status_reason
        .as_deref()
        .is_some_and(|r| r.starts_with(reasons::DEPENDENCY_NOT_FOUND)));
}

#[test]
fn a_missing_dependency_is_not_judged_before_every_job_is_listed() {
    // Start-up: the view holds only the unfinished jobs; "done" may be a finished job whose
    // listing has not come in. Long past the grace, nothing is decided or recorded.
    let single = job("b")
        .depends_on(Dependency::standard("done"))
        .missing_dependency_grace(60)
        .finished_jobs_unlisted()
        .build();
    let plan = reconcile(&single, T0 + secs(3600));
    assert_eq!(plan.record.state, Submitted);
    assert!(!plan.changed, "nothing to write");
    assert_eq!(
        plan.requeue_at_ms, None,
        "the complete list reconciles it again"
    );
    assert!(single.awaits_unlisted_dependency());
    // Once "done" is listed SUCCEEDED, the job goes on.
    let mut listed = single.clone();
    listed.all_jobs_listed = true;
    listed
        .dependencies
        .insert("done".into(), DependencyTarget::job(Succeeded));
    assert!(!listed.awaits_unlisted_dependency());
    let plan = reconcile(&listed, T0 + secs(3600));
    assert_eq!(plan.record.state, Runnable);
    // A dependency already in the view is judged as usual, listed history or not.
    let mut found = single.clone();
    found
        .dependencies
        .insert("done".into(), DependencyTarget::job(Failed));
    assert!(!found.awaits_unlisted_dependency());
    assert_eq!(reconcile(&found, T0 + secs(1)).record.state, Failed);
    // An array waiting on an unlisted N_TO_N target waits without failing.
    let array = job("arr")
        .array(2)
        .depends_on(Dependency::n_to_n("done"))
        .missing_dependency_grace(60)
        .finished_jobs_unlisted()
        .build();
    let plan = reconcile(&array, T0 + secs(3600));
    assert_ne!(plan.record.state, Failed);
    assert_eq!(array_rec(&plan).failed.to_string(), "");
    assert_eq!(plan.requeue_at_ms, None);
}

#[test]
fn a_refused_pod_creation_fails_the_attempt_at_the_bound_then_retries() {
    use crate::pod_creation::{CreationRefusal, Unit};
    let first = Unit {
        attempt: 1,
        array_index: None,
    };
    let refusal = CreationRefusal::new(first, "pods \"j-1\" is forbidden: quota", T0, secs(300));
    let view = job("j")
        .retry(2)
        .state(Runnable)
        .creation_refusal(refusal.clone())
        .build();
    let plan = reconcile(&view, T0 + secs(10));
    assert_eq!(plan.record.state, Runnable);
    assert!(plan.record.attempts.is_empty());
    assert_eq!(
        plan.requeue_at_ms,
        Some(T0 + secs(300)),
        "wakes at the bound"
    );
    assert_eq!(
        plan.runnable,
        RunnableWork::Single {
            attempt: 1,
            retried: false
        }
    );

    let plan = reconcile(&view, T0 + secs(300));
    assert_eq!(plan.record.state, Runnable, "attempt 2 of 2 is left");
    assert_eq!(plan.record.attempts.len(), 1);
    let attempt = &plan.record.attempts[0];
    assert_eq!(attempt.pod_name, "j-1");
    assert_eq!(
        attempt.status_reason,
        "PodCreationRefused: pods \"j-1\" is forbidden: quota"
    );
    assert_eq!(
        plan.runnable,
        RunnableWork::Single {
            attempt: 2,
            retried: true
        }
    );

    // The second attempt has a bound of its own; past it, the job fails.
    let mut refusal = refusal;
    let second = Unit {
        attempt: 2,
        array_index: None,
    };
    refusal.refused_again(second, "pods \"j-2\" is forbidden: quota", T0 + secs(301));
    let mut view = with_record(&view, &plan);
    view.creation_refusal = Some(refusal);
    let plan = reconcile(&view, T0 + secs(400));
    assert_eq!(plan.record.state, Runnable);
    assert_eq!(plan.requeue_at_ms, Some(T0 + secs(601)));
    let plan = reconcile(&view, T0 + secs(601));
    assert_eq!(states(&plan), vec![(Runnable, Failed)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("PodCreationRefused: pods \"j-2\" is forbidden: quota")
    );
    assert_eq!(plan.record.attempts.len(), 2);
}

#[test]
fn an_exit_rule_on_the_refusal_reason_stops_after_one_attempt() {
    use crate::pod_creation::{CreationRefusal, Unit};
    let first = Unit {
        attempt: 1,
        array_index: None,
    };
    let view = job("j")
        .retry_rules(3, &[(None, None, Some("PodCreationRefused*"), "EXIT")])
        .state(Runnable)
        .creation_refusal(CreationRefusal::new(first, "forbidden", T0, secs(60)))
        .build();
    let plan = reconcile(&view, T0 + secs(60));
    assert_eq!(plan.record.state, Failed);
    assert_eq!(plan.record.attempts.len(), 1);
}

#[test]
fn refused_array_children_fail_their_attempt_at_the_bound() {
    use crate::pod_creation::{CreationRefusal, Unit};
    let child = |index| Unit {
        attempt: 1,
        array_index: Some(index),
    };
    let mut refusal = CreationRefusal::new(child(1), "forbidden", T0, secs(60));
    refusal.refused_again(child(2), "forbidden", T0 + secs(30));
    let view = job("arr")
        .array(4)
        .state(Runnable)
        .creation_refusal(refusal)
        .build();
    let plan = reconcile(&view, T0 + secs(60));
    let rec = array_rec(&plan);
    assert_eq!(rec.failed.to_string(), "1", "child 1 reached the bound");
    assert_eq!(
        rec.failed_attempt(1).map(|a| a.status_reason.as_str()),
        Some("PodCreationRefused: forbidden")
    );
    assert_eq!(groups(&plan), vec![(1, false, "0,2-3".to_string())]);
    assert_eq!(plan.requeue_at_ms, Some(T0 + secs(90)), "child 2's bound");
}

// ---------------------------------------------------------------- timeouts

#[test]
fn timeout_wakes_at_deadline_then_stops_the_pod_without_deleting_it() {
    let running = job("j")
        .timeout(60)
        .retry(3)
        .state(Running)
        .pod(attempt_pod("j", 1, None).running(T0));
    let plan = reconcile(&running.clone().build(), T0 + secs(10));
    assert_eq!(plan.requeue_at_ms, Some(T0 + secs(60)));
    assert!(plan.actions.is_empty());

    // The pod is kept (its log is the attempt's log): the kubelet stops it at its deadline.
    let plan = reconcile(&running.clone().build(), T0 + secs(60));
    assert_eq!(stopped(&plan), vec![("j-1", DeleteReason::Timeout)]);
    assert!(deleted(&plan).is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.record.state, Running);

    // Deadline set: wait for the kubelet (30 s grace) plus a margin, then delete.
    let stopping = job("j").timeout(60).retry(3).state(Running).pod(
        attempt_pod("j", 1, None)
            .running(T0)
            .deadline(T0 + secs(60)),
    );
    let plan = reconcile(&stopping.clone().build(), T0 + secs(61));
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.requeue_at_ms, Some(T0 + secs(120)));
    let plan = reconcile(&stopping.build(), T0 + secs(120));
    assert_eq!(deleted(&plan), vec![("j-1", 0, DeleteReason::ForceDelete)]);

    // A deadline of the user's pod spec that lies later does not delay the timeout.
    let later = job("j").timeout(60).state(Running).pod(
        attempt_pod("j", 1, None)
            .running(T0)
            .deadline(T0 + secs(3600)),
    );
    let plan = reconcile(&later.build(), T0 + secs(60));
    assert_eq!(stopped(&plan), vec![("j-1", DeleteReason::Timeout)]);
}

#[test]
fn a_pod_stopped_at_its_deadline_records_the_timeout_and_stays() {
    let view = job("j")
        .timeout(60)
        .retry(3)
        .state(Running)
        .pod(
            attempt_pod("j", 1, None)
                .failed(137, T0, T0 + secs(62))
                .pod_reason("DeadlineExceeded")
                .deadline(T0 + secs(61)),
        )
        .build();
    let plan = reconcile(&view, T0 + secs(63));
    assert_eq!(plan.record.state, Failed);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some(reasons::ATTEMPT_DURATION_EXCEEDED)
    );
    assert!(deleted(&plan).is_empty(), "the pod and its log stay");
    assert_eq!(released(&plan), vec!["j-1"]);
}

#[test]
fn timed_out_attempt_fails_and_is_not_retried() {
    let view = job("j")
        .timeout(60)
        .retry(3)
        .state(Running)
        .pod(
            attempt_pod("j", 1, None)
                .failed(143, T0, T0 + secs(61))
                .deleting(T0 + secs(90)),
        )
        .build();
    let plan = reconcile(&view, T0 + secs(62));
    assert_eq!(plan.record.state, Failed);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some(reasons::ATTEMPT_DURATION_EXCEEDED)
    );
    assert_eq!(plan.record.attempts[0].exit_code, Some(143));
}

#[test]
fn kubelet_deadline_exceeded_counts_as_timeout() {
    let view = job("j")
        .retry(3)
        .state(Running)
        .pod(attempt_pod("j", 1, None).rejected(
            "DeadlineExceeded",
            "Pod was active on the node longer than the specified deadline",
        ))
        .build();
    let plan = reconcile(&view, T0);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some(reasons::ATTEMPT_DURATION_EXCEEDED)
    );
}

#[test]
fn lingering_terminating_pod_is_force_deleted() {
    let view = job("j").timeout(60).state(Running).pod(
        attempt_pod("j", 1, None)
            .running(T0)
            .deleting(T0 + secs(90)),
    );
    let plan = reconcile(&view.clone().build(), T0 + secs(100));
    assert!(plan.actions.is_empty());
    assert_eq!(plan.requeue_at_ms, Some(T0 + secs(120)));
    let plan = reconcile(&view.build(), T0 + secs(120));
    assert_eq!(deleted(&plan), vec![("j-1", 0, DeleteReason::ForceDelete)]);
}

// ---------------------------------------------------------------- terminate / cancel

#[test]
fn terminate_before_start_cancels() {
    let plan = reconcile(
        &job("j")
            .state(Runnable)
            .terminate("no longer needed")
            .build(),
        T0,
    );
    assert_eq!(states(&plan), vec![(Runnable, Failed)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("no longer needed")
    );
    assert!(plan.record.attempts.is_empty());
    let plan = reconcile(&job("j").terminate("").build(), T0);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some(reasons::DEFAULT_TERMINATE_REASON)
    );
}

#[test]
fn terminate_running_job_stops_the_pod_then_fails_with_the_reason() {
    let running = job("j")
        .retry(5)
        .state(Running)
        .terminate("operator said stop")
        .pod(attempt_pod("j", 1, None).running(T0));
    let plan = reconcile(&running.build(), T0 + 1);
    assert_eq!(stopped(&plan), vec![("j-1", DeleteReason::Terminate)]);
    assert!(deleted(&plan).is_empty(), "the pod and its log stay");
    assert_eq!(plan.record.state, Running);
    assert!(plan
        .waiting
        .expect("waiting")
        .contains("operator said stop"));

    let stopped = job("j")
        .retry(5)
        .state(Running)
        .terminate("operator said stop")
        .pod(
            attempt_pod("j", 1, None)
                .failed(143, T0, T0 + secs(2))
                .deleting(T0 + secs(31)),
        )
        .build();
    let plan = reconcile(&stopped, T0 + secs(3));
    assert_eq!(states(&plan), vec![(Running, Failed)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("operator said stop")
    );
    assert_eq!(plan.record.attempts[0].exit_code, Some(143));
    assert_eq!(released(&plan), vec!["j-1"]);
}

#[test]
fn terminate_starting_job_deletes_without_grace() {
    let view = job("j")
        .state(Starting)
        .terminate("stop")
        .pod(attempt_pod("j", 1, None).pending())
        .build();
    assert_eq!(
        deleted(&reconcile(&view, T0)),
        vec![("j-1", 0, DeleteReason::Terminate)]
    );
}

// ---------------------------------------------------------------- runnable: blocked, time limits

#[test]
fn blocked_reason_is_shown_and_time_limit_cancels_after_max_time() {
    let reason = reasons::job_resource_requirement();
    let view = job("j")
        .state(Runnable)
        .blocked(
            BlockedKind::NoInstanceTypeFits,
            Some(&reason),
            "requests cpu=64000m memory=1Mi per pod, more than ...",
        )
        .time_limit(reasons::JOB_RESOURCE_REQUIREMENT, 600)
        .build();
    let plan = reconcile(&view, T0 + secs(1));
    assert_eq!(plan.record.status_reason.as_deref(), Some(reason.as_str()));
    assert_eq!(plan.record.blocked_since_ms, Some(T0 + secs(1)));
    assert_eq!(plan.requeue_at_ms, Some(T0 + secs(601)));
    assert!(plan
        .waiting
        .as_deref()
        .expect("message")
        .starts_with("requests cpu=64000m"));

    let view = with_record(&view, &plan);
    let plan = reconcile(&view, T0 + secs(300));
    assert!(!plan.changed, "the blocked clock does not restart");
    let plan = reconcile(&view, T0 + secs(601));
    assert_eq!(states(&plan), vec![(Runnable, Failed)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("Canceled by JobStateTimeLimit action due to reason: MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT")
    );
}

#[test]
fn the_plan_names_the_verdict_it_applied_and_plain_waiting_has_none() {
    let capacity = reasons::insufficient_instance_capacity("c5.large");
    let view = job("j")
        .state(Runnable)
        .blocked(BlockedKind::NoReadyNodes, Some(&capacity), "no Ready node")
        .time_limit(reasons::INSUFFICIENT_INSTANCE_CAPACITY, 600)
        .build();
    let plan = reconcile(&view, T0);
    assert_eq!(plan.blocked, Some(BlockedKind::NoReadyNodes));
    assert_eq!(plan.waiting.as_deref(), Some("no Ready node"));
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some(capacity.as_str())
    );
    assert_eq!(
        plan.requeue_at_ms,
        Some(T0 + secs(600)),
        "the capacity rule's deadline"
    );
    let cancelled = reconcile(
        &job("j")
            .record(plan.record.clone())
            .blocked(BlockedKind::NoReadyNodes, Some(&capacity), "no Ready node")
            .time_limit(reasons::INSUFFICIENT_INSTANCE_CAPACITY, 600)
            .build(),
        T0 + secs(600),
    );
    assert_eq!(cancelled.record.state, Failed);
    assert_eq!(
        cancelled.record.status_reason.as_deref(),
        Some("Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY")
    );
    assert!(!cancelled.record.was_placed());
    let plain = reconcile(&job("j").state(Runnable).build(), T0);
    assert_eq!((plain.blocked, plain.waiting), (None, None));
}

#[test]
fn a_job_was_placed_once_one_of_its_pods_had_a_node() {
    let mut record = JobRecord::submitted(T0);
    assert!(!record.was_placed());
    let refused = AttemptRecord {
        attempt: 1,
        array_index: None,
        pod_name: "j-1".into(),
        node_name: None,
        exit_code: None,
        reason: None,
        started_at_ms: None,
        stopped_at_ms: T0,
        status_reason: "PodCreationRefused: forbidden".into(),
    };
    record.attempts.push(refused.clone());
    assert!(!record.was_placed(), "a refused pod never had a node");
    record.attempts.push(AttemptRecord {
        attempt: 2,
        node_name: Some("n1".into()),
        ..refused
    });
    assert!(record.was_placed());
    let mut array = JobRecord::submitted(T0);
    array.array = Some(ArrayRecord {
        size: 3,
        succeeded: crate::index_set::IndexSet::parse("1").expect("set"),
        ..ArrayRecord::default()
    });
    assert!(array.was_placed(), "a child succeeded");
}

#[test]
fn time_limit_ignores_other_reasons_and_unblocked_jobs() {
    let view = job("j")
        .state(Runnable)
        .blocked(
            BlockedKind::ComputeEnvironmentsInvalid,
            Some("ACTION_REQUIRED - CE(s) associated with the job queue are invalid."),
            "invalid",
        )
        .time_limit(reasons::JOB_RESOURCE_REQUIREMENT, 1)
        .build();
    let plan = reconcile(&view, T0 + secs(100));
    assert_eq!(plan.record.state, Runnable);
    // The verdict goes away: the reason is cleared.
    let mut next = with_record(&view, &plan);
    next.blocked = None;
    let plan = reconcile(&next, T0 + secs(101));
    assert_eq!(plan.record.status_reason, None);
    assert_eq!(plan.record.blocked_since_ms, None);
}

// ---------------------------------------------------------------- finished jobs

#[test]
fn ttl_deletes_the_job_after_it_finished() {
    let mut record = JobRecord::submitted(T0);
    record.state = Succeeded;
    record.stopped_at_ms = Some(T0);
    let view = job("j").ttl(100).record(record).build();
    assert_eq!(
        reconcile(&view, T0 + secs(50)).requeue_at_ms,
        Some(T0 + secs(100))
    );
    assert_eq!(
        reconcile(&view, T0 + secs(100)).actions,
        vec![JobAction::DeleteJob]
    );
    let no_ttl = job("j").state(Failed).build();
    assert!(reconcile(&no_ttl, T0 + secs(1_000_000)).actions.is_empty());
}

#[test]
fn a_finished_jobs_released_pods_go_after_the_retention() {
    let mut record = JobRecord::submitted(T0);
    record.state = Succeeded;
    record.stopped_at_ms = Some(T0);
    let done = || attempt_pod("j", 1, None).succeeded(T0 - secs(5), T0);
    let view = job("j")
        .finished_pod_retention(600)
        .record(record.clone())
        .pod(done().released())
        .build();
    let before = reconcile(&view, T0 + secs(599));
    assert!(before.actions.is_empty());
    assert_eq!(before.requeue_at_ms, Some(T0 + secs(600)));
    assert_eq!(
        reconcile(&view, T0 + secs(600)).actions,
        vec![JobAction::DeletePod {
            name: "j-1".into(),
            grace_seconds: 0,
            reason: DeleteReason::Retention,
        }]
    );

    // A pod still holding its result is released first; one being deleted is left alone; with
    // no retention the pods stay.
    let held = job("j")
        .finished_pod_retention(600)
        .record(record.clone())
        .pod(done())
        .build();
    assert_eq!(
        reconcile(&held, T0 + secs(700)).actions,
        vec![JobAction::ReleasePod { name: "j-1".into() }]
    );
    let going = job("j")
        .finished_pod_retention(600)
        .record(record.clone())
        .pod(done().released().deleting(T0 + secs(650)))
        .build();
    let plan = reconcile(&going, T0 + secs(700));
    assert!(plan.actions.is_empty());
    assert_eq!(plan.requeue_at_ms, None);
    let kept = job("j").record(record).pod(done().released()).build();
    let plan = reconcile(&kept, T0 + secs(1_000_000));
    assert!(plan.actions.is_empty());
    assert_eq!(plan.requeue_at_ms, None);
}

#[test]
fn a_finished_arrays_kept_child_pods_go_after_the_retention() {
    let mut record = JobRecord::submitted(T0);
    record.state = Failed;
    record.stopped_at_ms = Some(T0);
    let view = job("a")
        .array(10)
        .finished_pod_retention(60)
        .record(record)
        .pod(
            attempt_pod("a", 1, Some(3))
                .succeeded(T0 - secs(5), T0)
                .released(),
        )
        .build();
    let plan = reconcile(&view, T0 + secs(60));
    assert!(plan.actions.contains(&JobAction::DeletePod {
        name: crate::naming::attempt_pod_name("a", 1, Some(3)),
        grace_seconds: 0,
        reason: DeleteReason::Retention,
    }));
}

#[test]
fn stray_pod_of_a_finished_job_is_deleted_and_released() {
    let view = job("j")
        .state(Failed)
        .pod(attempt_pod("j", 1, None).pending())
        .build();
    let plan = reconcile(&view, T0);
    assert_eq!(deleted(&plan), vec![("j-1", 0, DeleteReason::Superseded)]);
    assert_eq!(released(&plan), vec!["j-1"]);
    assert!(!plan.changed);
}

// ---------------------------------------------------------------- idempotency and monotonicity

#[test]
fn same_input_same_plan() {
    let view = job("j")
        .retry(3)
        .timeout(600)
        .state(Running)
        .pod(attempt_pod("j", 1, None).failed(1, T0, T0 + 5))
        .build();
    assert_eq!(reconcile(&view, T0 + 10), reconcile(&view, T0 + 10));
}

#[test]
fn an_attempt_is_recorded_once_and_old_observations_do_not_move_back() {
    let view = job("j")
        .retry(3)
        .state(Running)
        .pod(attempt_pod("j", 1, None).failed(1, T0, T0 + 5))
        .build();
    let first = reconcile(&view, T0 + 10);
    assert_eq!(first.record.attempts.len(), 1);
    // The operator died after writing the status but before releasing: same pod again.
    let again = reconcile(&with_record(&view, &first), T0 + 20);
    assert_eq!(again.record.attempts.len(), 1, "recorded once");
    assert!(again.events.is_empty());
    assert_eq!(released(&again), vec!["j-1"], "release is retried");
    assert!(!again.changed);

    // A stale cache still shows attempt 1 running: it is not re-read, it is stopped.
    let mut stale = with_record(&view, &first);
    stale.pods = vec![attempt_pod("j", 1, None).running(T0).build()];
    let plan = reconcile(&stale, T0 + 30);
    assert_eq!(plan.record.state, Runnable);
    assert_eq!(plan.record.attempts.len(), 1);
    assert_eq!(deleted(&plan), vec![("j-1", 0, DeleteReason::Superseded)]);

    // A finished job stays finished whatever is observed.
    let mut done = job("j").state(Succeeded).build();
    done.pods = vec![attempt_pod("j", 1, None).failed(9, T0, T0 + 1).build()];
    done.dependencies
        .insert("x".into(), DependencyTarget::job(Failed));
    done.spec.terminate = Some(Terminate::job("late"));
    let plan = reconcile(&done, T0);
    assert_eq!(plan.record.state, Succeeded);
    assert!(plan.events.is_empty());
}

#[test]
fn released_pods_are_not_released_again() {
    let mut record = JobRecord::submitted(T0);
    record.state = Succeeded;
    let view = job("j")
        .record(record)
        .pod(attempt_pod("j", 1, None).succeeded(T0, T0 + 1).released())
        .build();
    assert!(reconcile(&view, T0 + 2).actions.is_empty());
}

/// A whole single-job life: SUBMITTED → RUNNABLE → STARTING → RUNNING → RUNNABLE (retry) →
/// STARTING → RUNNING → SUCCEEDED, with every release after the result is in the record.
#[test]
fn lifecycle_with_one_retry() {
    let mut view = job("life").retry(2).build();
    let mut all_events = Vec::new();
    let mut step = |view: &mut JobView, pods: Vec<PodView>, now: i64| -> JobPlan {
        view.pods = pods;
        let plan = reconcile(view, now);
        for name in released(&plan) {
            let pod = view
                .pods
                .iter()
                .find(|p| p.name == name)
                .expect("released pod was observed");
            let recorded = plan
                .record
                .attempts
                .iter()
                .any(|a| a.pod_name == name && a.attempt == pod.attempt);
            assert!(recorded, "{name} released before its result was recorded");
        }
        all_events.extend(states(&plan));
        view.record = plan.record.clone();
        plan
    };
    step(&mut view, vec![], T0);
    step(
        &mut view,
        vec![attempt_pod("life", 1, None).pending().build()],
        T0 + 1,
    );
    step(
        &mut view,
        vec![attempt_pod("life", 1, None).running(T0 + 2).build()],
        T0 + 3,
    );
    let plan = step(
        &mut view,
        vec![attempt_pod("life", 1, None)
            .failed(1, T0 + 2, T0 + 4)
            .build()],
        T0 + 5,
    );
    assert_eq!(
        plan.runnable,
        RunnableWork::Single {
            attempt: 2,
            retried: true
        }
    );
    let old = attempt_pod("life", 1, None)
        .failed(1, T0 + 2, T0 + 4)
        .released()
        .build();
    step(
        &mut view,
        vec![old.clone(), attempt_pod("life", 2, None).pending().build()],
        T0 + 6,
    );
    step(
        &mut view,
        vec![
            old.clone(),
            attempt_pod("life", 2, None).running(T0 + 7).build(),
        ],
        T0 + 8,
    );
    step(
        &mut view,
        vec![
            old,
            attempt_pod("life", 2, None)
                .succeeded(T0 + 7, T0 + 9)
                .build(),
        ],
        T0 + 10,
    );
    assert_eq!(
        all_events,
        vec![
            (Submitted, Runnable),
            (Runnable, Starting),
            (Starting, Running),
            (Running, Runnable),
            (Runnable, Starting),
            (Starting, Running),
            (Running, Succeeded),
        ]
    );
    assert_eq!(view.record.attempts.len(), 2);
    assert_eq!(view.record.started_at_ms, Some(T0 + 7));
}

// ---------------------------------------------------------------- arrays

#[test]
fn new_array_makes_every_child_runnable() {
    let plan = reconcile(&job("arr").array(10).build(), T0);
    assert_eq!(states(&plan), vec![(Submitted, Runnable)]);
    assert_eq!(groups(&plan), vec![(1, false, "0-9".to_string())]);
    let s = plan.summary.expect("summary");
    assert_eq!((s.runnable, s.pending, s.total()), (10, 0, 10));
    assert_eq!(array_rec(&plan).size, 10);
}

#[test]
fn invalid_array_size_is_refused() {
    let plan = reconcile(&job("arr").array(1).build(), T0);
    assert_eq!(plan.record.state, Failed);
    assert!(plan
        .record
        .status_reason
        .expect("reason")
        .contains("between 2 and 10000, got 1"));
    let plan = reconcile(&job("arr").array(10_001).build(), T0);
    assert_eq!(plan.record.state, Failed);
}

#[test]
fn sequential_children_run_one_after_another() {
    let view = job("seq")
        .array(4)
        .depends_on(Dependency::sequential())
        .build();
    let plan = reconcile(&view, T0);
    assert_eq!(groups(&plan), vec![(1, false, "0".to_string())]);
    assert_eq!(plan.summary.expect("summary").pending, 3);

    let mut view = with_record(&view, &plan);
    view.pods = vec![attempt_pod("seq", 1, Some(0)).succeeded(T0, T0 + 1).build()];
    let plan = reconcile(&view, T0 + 2);
    assert_eq!(array_rec(&plan).succeeded.to_string(), "0");
    assert_eq!(groups(&plan), vec![(1, false, "1".to_string())]);
    assert_eq!(
        plan.record.state, Running,
        "a child ran, so the parent is RUNNING"
    );
    assert_eq!(plan.record.started_at_ms, Some(T0));
}

#[test]
fn sequential_failure_fails_every_later_child() {
    let view = job("seq")
        .array(4)
        .depends_on(Dependency::sequential())
        .state(Running)
        .pod(
            attempt_pod("seq", 1, Some(0))
                .succeeded(T0, T0 + 1)
                .released(),
        )
        .pod(attempt_pod("seq", 1, Some(1)).failed(1, T0 + 2, T0 + 3))
        .build();
    let mut view = view;
    view.record.array = Some(ArrayRecord {
        size: 4,
        succeeded: IndexSet::parse("0").expect("valid"),
        ..ArrayRecord::default()
    });
    let plan = reconcile(&view, T0 + 4);
    let rec = array_rec(&plan);
    assert_eq!(rec.failed.to_string(), "1-3");
    assert_eq!(plan.record.state, Failed);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("3 of 4 child jobs failed")
    );
    assert_eq!(rec.failed_attempts.len(), 1, "only child 1 had an attempt");
}

#[test]
fn n_to_n_children_follow_their_counterparts() {
    let view = job("b")
        .array(6)
        .depends_on(Dependency::n_to_n("a"))
        .dependency("a", array_target(Running, 6, "0-1,4", "3"))
        .build();
    let plan = reconcile(&view, T0);
    assert_eq!(groups(&plan), vec![(1, false, "0-1,4".to_string())]);
    let rec = array_rec(&plan);
    assert_eq!(rec.failed.to_string(), "3", "child 3's counterpart failed");
    let s = plan.summary.expect("summary");
    assert_eq!((s.runnable, s.failed, s.pending), (3, 1, 2));
}

#[test]
fn n_to_n_size_mismatch_fails_the_job_clearly() {
    let view = job("b")
        .array(6)
        .depends_on(Dependency::n_to_n("a"))
        .dependency("a", array_target(Succeeded, 5, "0-4", ""))
        .build();
    let plan = reconcile(&view, T0);
    assert_eq!(plan.record.state, Failed);
    let reason = plan.record.status_reason.expect("reason");
    assert!(
        reason.contains("array size 5, which does not match this job's array size 6"),
        "{reason}"
    );
}

#[test]
fn plain_dependency_on_array_keeps_the_whole_array_pending() {
    let view = job("b")
        .array(3)
        .depends_on(Dependency::standard("a"))
        .dependency("a", array_target(Running, 10, "0-8", ""))
        .build();
    let plan = reconcile(&view, T0);
    assert_eq!(plan.record.state, Pending);
    assert_eq!(plan.runnable, RunnableWork::Nothing);
    assert_eq!(plan.summary.expect("summary").pending, 3);
    assert!(plan
        .record
        .status_reason
        .expect("reason")
        .contains("\"a\" to succeed"));
}

#[test]
fn mixed_plain_and_sequential_dependencies() {
    let view = job("b")
        .array(3)
        .depends_on(Dependency::standard("setup"))
        .depends_on(Dependency::sequential())
        .dependency("setup", DependencyTarget::job(Succeeded))
        .build();
    assert_eq!(
        groups(&reconcile(&view, T0)),
        vec![(1, false, "0".to_string())]
    );
    let mut failed = view.clone();
    failed
        .dependencies
        .insert("setup".into(), DependencyTarget::job(Failed));
    let plan = reconcile(&failed, T0);
    assert_eq!(plan.record.state, Failed);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some(reasons::DEPENDENT_JOB_FAILED)
    );
    assert_eq!(array_rec(&plan).failed.to_string(), "0-2");
}

#[test]
fn child_pods_drive_parent_starting_and_running_and_the_summary() {
    let base = job("arr").array(5).state(Runnable);
    let plan = reconcile(
        &base
            .clone()
            .pod(attempt_pod("arr", 1, Some(2)).pending())
            .build(),
        T0,
    );
    assert_eq!(plan.record.state, Starting);
    let s = plan.summary.expect("summary");
    assert_eq!((s.starting, s.runnable), (1, 4));
    assert_eq!(groups(&plan), vec![(1, false, "0-1,3-4".to_string())]);

    let plan = reconcile(
        &base
            .pod(attempt_pod("arr", 1, Some(2)).running(T0 + 5))
            .pod(attempt_pod("arr", 1, Some(3)).pending())
            .build(),
        T0 + 6,
    );
    assert_eq!(plan.record.state, Running);
    assert_eq!(plan.record.started_at_ms, Some(T0 + 5));
    let s = plan.summary.expect("summary");
    assert_eq!((s.running, s.starting, s.runnable), (1, 1, 3));
}

#[test]
fn each_child_retries_with_the_parents_strategy() {
    let view = job("arr")
        .array(4)
        .retry(2)
        .state(Running)
        .pod(attempt_pod("arr", 1, Some(3)).failed(1, T0, T0 + 1))
        .build();
    let plan = reconcile(&view, T0 + 2);
    let rec = array_rec(&plan);
    assert_eq!(
        rec.prior_attempts.get(&1).map(|s| s.to_string()),
        Some("3".to_string())
    );
    assert_eq!(rec.next_attempt(3), 2);
    assert_eq!(
        groups(&plan),
        vec![(2, true, "3".to_string()), (1, false, "0-2".to_string())],
        "retried children go first, on attempt 2"
    );
    assert_eq!(released(&plan), vec!["arr-1-3"]);

    // Attempt 2 runs and fails too: out of attempts, the child fails with its attempt kept.
    let mut view = with_record(&view, &plan);
    view.pods = vec![
        attempt_pod("arr", 1, Some(3))
            .failed(1, T0, T0 + 1)
            .released()
            .build(),
        attempt_pod("arr", 2, Some(3))
            .failed(7, T0 + 3, T0 + 4)
            .build(),
    ];
    let plan = reconcile(&view, T0 + 5);
    let rec = array_rec(&plan);
    assert!(rec.prior_attempts.is_empty());
    assert_eq!(rec.failed.to_string(), "3");
    let kept = rec.failed_attempt(3).expect("latest attempt kept");
    assert_eq!((kept.attempt, kept.exit_code), (2, Some(7)));
    assert_eq!(released(&plan), vec!["arr-2-3"]);
    // Idempotent: re-reading both pods records nothing new.
    let again = reconcile(&with_record(&view, &plan), T0 + 6);
    assert_eq!(again.record, plan.record);
}

#[test]
fn parent_succeeds_when_all_children_succeed_and_fails_when_any_failed() {
    let ok = job("arr")
        .array(2)
        .state(Running)
        .pod(attempt_pod("arr", 1, Some(0)).succeeded(T0, T0 + 1))
        .pod(attempt_pod("arr", 1, Some(1)).succeeded(T0, T0 + 2))
        .build();
    let plan = reconcile(&ok, T0 + 3);
    assert_eq!(states(&plan), vec![(Running, Succeeded)]);
    assert_eq!(plan.summary.expect("summary").succeeded, 2);
    assert_eq!(plan.runnable, RunnableWork::Nothing);

    let bad = job("arr")
        .array(2)
        .state(Running)
        .pod(attempt_pod("arr", 1, Some(0)).succeeded(T0, T0 + 1))
        .pod(attempt_pod("arr", 1, Some(1)).failed(2, T0, T0 + 2))
        .build();
    let plan = reconcile(&bad, T0 + 3);
    assert_eq!(states(&plan), vec![(Running, Failed)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("1 of 2 child jobs failed")
    );
}

#[test]
fn parent_stays_running_while_children_retry() {
    let view = job("arr")
        .array(2)
        .retry(3)
        .state(Running)
        .pod(attempt_pod("arr", 1, Some(0)).failed(1, T0, T0 + 1))
        .pod(attempt_pod("arr", 1, Some(1)).failed(1, T0, T0 + 1))
        .build();
    let mut view = view;
    view.record.started_at_ms = Some(T0);
    let plan = reconcile(&view, T0 + 2);
    assert_eq!(
        plan.record.state, Running,
        "never back to RUNNABLE once a child ran"
    );
    assert!(plan.events.is_empty());
    assert_eq!(groups(&plan), vec![(2, true, "0-1".to_string())]);
}

#[test]
fn terminating_the_parent_terminates_every_child() {
    let view = job("arr")
        .array(4)
        .state(Running)
        .terminate("abort")
        .pod(attempt_pod("arr", 1, Some(0)).running(T0))
        .pod(attempt_pod("arr", 1, Some(1)).pending())
        .build();
    let plan = reconcile(&view, T0 + 1);
    assert_eq!(stopped(&plan), vec![("arr-1-0", DeleteReason::Terminate)]);
    assert_eq!(
        deleted(&plan),
        vec![("arr-1-1", 0, DeleteReason::Terminate)],
        "a pod that never ran has no log to keep"
    );
    let rec = array_rec(&plan);
    assert_eq!(
        rec.failed.to_string(),
        "2-3",
        "children without pods are cancelled at once"
    );
    assert_eq!(
        plan.record.state, Running,
        "still waiting for two pods to stop"
    );
    assert_eq!(plan.runnable, RunnableWork::Nothing);

    let mut view = with_record(&view, &plan);
    view.pods = vec![
        attempt_pod("arr", 1, Some(0))
            .failed(143, T0, T0 + 2)
            .deleting(T0 + secs(31))
            .build(),
        attempt_pod("arr", 1, Some(1))
            .rejected("Terminated", "deleted")
            .deleting(T0 + 1)
            .build(),
    ];
    let plan = reconcile(&view, T0 + 3);
    assert_eq!(plan.record.state, Failed);
    assert_eq!(plan.record.status_reason.as_deref(), Some("abort"));
    assert_eq!(array_rec(&plan).failed.to_string(), "0-3");
    assert_eq!(
        array_rec(&plan)
            .failed_attempt(0)
            .map(|a| a.status_reason.as_str()),
        Some("abort")
    );
}

#[test]
fn terminating_chosen_children_fails_just_those() {
    let view = job("arr")
        .array(5)
        .state(Running)
        .terminate_indices("1,3-4", "bad inputs")
        .pod(attempt_pod("arr", 1, Some(0)).running(T0))
        .pod(attempt_pod("arr", 1, Some(3)).running(T0))
        .build();
    let plan = reconcile(&view, T0 + 1);
    assert_eq!(stopped(&plan), vec![("arr-1-3", DeleteReason::Terminate)]);
    assert!(deleted(&plan).is_empty());
    let rec = array_rec(&plan);
    assert_eq!(rec.failed.to_string(), "1,4");
    assert_eq!(
        rec.terminated.to_string(),
        "1,4",
        "cancelled before they ran"
    );
    assert_eq!(groups(&plan), vec![(1, false, "2".to_string())]);
    assert_eq!(plan.record.state, Running);

    // Later everything else is done: the parent fails, with the children's count.
    let mut view = with_record(&view, &plan);
    view.pods = vec![
        attempt_pod("arr", 1, Some(0)).succeeded(T0, T0 + 5).build(),
        attempt_pod("arr", 1, Some(2)).succeeded(T0, T0 + 5).build(),
        attempt_pod("arr", 1, Some(3))
            .failed(143, T0, T0 + 5)
            .deleting(T0 + secs(31))
            .build(),
    ];
    let plan = reconcile(&view, T0 + 6);
    assert_eq!(plan.record.state, Failed);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("3 of 5 child jobs failed")
    );
    assert_eq!(array_rec(&plan).succeeded.to_string(), "0,2");
    assert_eq!(
        array_rec(&plan).terminated.to_string(),
        "1,3-4",
        "the stopped child joins the terminated ones; child 0 finished on its own"
    );
}

#[test]
fn each_child_gets_the_timeout_and_is_not_retried_after_it() {
    let view = job("arr")
        .array(3)
        .retry(3)
        .timeout(60)
        .state(Running)
        .pod(attempt_pod("arr", 1, Some(0)).running(T0))
        .pod(attempt_pod("arr", 1, Some(1)).running(T0 + secs(30)))
        .pod(
            attempt_pod("arr", 1, Some(2))
                .failed(143, T0, T0 + secs(61))
                .deleting(T0 + secs(90)),
        )
        .build();
    let plan = reconcile(&view, T0 + secs(62));
    assert_eq!(stopped(&plan), vec![("arr-1-0", DeleteReason::Timeout)]);
    assert!(deleted(&plan).is_empty(), "the child's pod and log stay");
    assert_eq!(
        plan.requeue_at_ms,
        Some(T0 + secs(90)),
        "child 1 times out at its own deadline"
    );
    let rec = array_rec(&plan);
    assert_eq!(rec.failed.to_string(), "2");
    assert_eq!(
        rec.failed_attempt(2).map(|a| a.status_reason.as_str()),
        Some(reasons::ATTEMPT_DURATION_EXCEEDED)
    );
}

#[test]
fn a_childs_record_survives_its_pod_deletion() {
    let view = job("arr")
        .array(3)
        .state(Running)
        .pod(attempt_pod("arr", 1, Some(1)).succeeded(T0, T0 + 1))
        .build();
    let plan = reconcile(&view, T0 + 2);
    let mut view = with_record(&view, &plan);
    view.pods.clear();
    let plan = reconcile(&view, T0 + 3);
    assert_eq!(array_rec(&plan).succeeded.to_string(), "1");
    let s = plan.summary.expect("summary");
    assert_eq!((s.succeeded, s.runnable), (1, 2));
    assert_eq!(groups(&plan), vec![(1, false, "0,2".to_string())]);
}

#[test]
fn array_time_limit_cancels_runnable_children() {
    let reason = reasons::job_resource_requirement();
    let view = job("arr")
        .array(3)
        .state(Runnable)
        .blocked(BlockedKind::NoInstanceTypeFits, Some(&reason), "too big")
        .time_limit("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT*", 60)
        .build();
    let plan = reconcile(&view, T0);
    assert_eq!(plan.record.blocked_since_ms, Some(T0));
    let plan = reconcile(&with_record(&view, &plan), T0 + secs(60));
    assert_eq!(plan.record.state, Failed);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("Canceled by JobStateTimeLimit action due to reason: MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT")
    );
    assert_eq!(array_rec(&plan).failed.to_string(), "0-2");
}

#[test]
fn array_record_stays_small_at_ten_thousand_children() {
    let size = 10_000u32;
    let mut rec = ArrayRecord::new(size);
    rec.succeeded = IndexSet::parse("0-4999").expect("valid");
    for i in 5_000..size {
        rec.mark_failed(
            i,
            AttemptRecord {
                attempt: 3,
                array_index: Some(i),
                pod_name: format!("a-very-long-job-name-for-testing-3-{i}"),
                node_name: Some(format!("ce-m5-xlarge-{}", i % 1000)),
                exit_code: Some(1),
                reason: Some("Error".into()),
                started_at_ms: Some(T0),
                stopped_at_ms: T0 + 1,
                status_reason: reasons::ESSENTIAL_CONTAINER_EXITED.into(),
            },
        );
    }
    rec.prior_attempts
        .insert(1, IndexSet::parse("10-20,30-40").expect("valid"));
    assert_eq!(rec.failed_attempts.len(), MAX_FAILED_CHILD_ATTEMPTS);
    assert_eq!(
        rec.failed_attempts_omitted,
        5_000 - MAX_FAILED_CHILD_ATTEMPTS as u32
    );
    assert_eq!(
        rec.failed_attempts.last().and_then(|a| a.array_index),
        Some(9_999),
        "most recent kept"
    );
    let json = serde_json::to_string(&rec).expect("serialise");
    assert!(
        json.len() < 8 * 1024,
        "array record is {} bytes",
        json.len()
    );
    let back: ArrayRecord = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(back, rec);
}

#[test]
fn array_same_input_same_plan_and_admission() {
    let view = job("arr")
        .array(100)
        .retry(2)
        .depends_on(Dependency::n_to_n("a"))
        .dependency("a", array_target(Running, 100, "0-49", "60-69"))
        .pod(attempt_pod("arr", 1, Some(3)).failed(1, T0, T0 + 1))
        .build();
    assert_eq!(reconcile(&view, T0), reconcile(&view, T0));
    let waiting = job("arr")
        .array(4)
        .admission(Admission::Waiting {
            reason: "no queue yet".into(),
        })
        .build();
    let plan = reconcile(&waiting, T0);
    assert_eq!(plan.record.state, Submitted);
    assert_eq!(plan.summary.expect("summary").submitted, 4);
}

/// Ten thousand children linked N_TO_N to another array of ten thousand, with a thousand live
/// pods: one reconcile must stay fast (it is O(size + pods), not O(size²)).
#[test]
fn large_array_reconcile_is_fast() {
    let size = 10_000u32;
    // Worst case for range lists: every other child of the dependency succeeded.
    let succeeded: IndexSet = (0..size).step_by(2).collect();
    let mut builder = job("big")
        .array(size)
        .retry(3)
        .depends_on(Dependency::n_to_n("a"))
        .dependency(
            "a",
            DependencyTarget::array(Running, size, succeeded, IndexSet::new()),
        )
        .state(Running);
    for i in (0..2_000).step_by(2) {
        builder = builder.pod(attempt_pod("big", 1, Some(i)).running(T0));
    }
    let view = builder.build();
    let started = std::time::Instant::now();
    let plan = reconcile(&view, T0 + 1);
    let elapsed = started.elapsed();
    let s = plan.summary.expect("summary");
    assert_eq!(s.running, 1_000);
    assert_eq!(s.runnable, 4_000);
    assert!(
        elapsed < std::time::Duration::from_secs(1),
        "reconcile took {elapsed:?}"
    );
}

// ---------------------------------------------------------------- hardening

#[test]
fn image_that_cannot_be_pulled_fails_the_attempt_and_removes_the_pod() {
    let base = job("j")
        .retry_rules(
            3,
            &[(None, None, Some("CannotPullContainerError*"), "EXIT")],
        )
        .state(Starting);
    let backoff = base
        .clone()
        .pod(
            attempt_pod("j", 1, None)
                .waiting("ImagePullBackOff", "Back-off pulling image \"nope:1\""),
        )
        .build();
    let plan = reconcile(&backoff, T0);
    assert_eq!(states(&plan), vec![(Starting, Failed)]);
    assert_eq!(
        plan.record.status_reason.as_deref(),
        Some("CannotPullContainerError: Back-off pulling image \"nope:1\"")
    );
    assert_eq!(
        plan.record.attempts[0].reason.as_deref(),
        Some("ImagePullBackOff")
    );
    assert_eq!(deleted(&plan), vec![("j-1", 0, DeleteReason::Superseded)]);
    assert_eq!(released(&plan), vec!["j-1"]);

    // The first ErrImagePull is not final: the kubelet retries the pull.
    let first_try = base
        .pod(attempt_pod("j", 1, None).waiting("ErrImagePull", "timeout"))
        .build();
    let plan = reconcile(&first_try, T0);
    assert_eq!(plan.record.state, Starting);
    assert!(plan.actions.is_empty());

    let config = job("j")
        .retry(2)
        .state(Starting)
        .pod(
            attempt_pod("j", 1, None)
                .waiting("CreateContainerConfigError", "secret \"db\" not found"),
        )
        .build();
    let plan = reconcile(&config, T0);
    assert_eq!(
        plan.record.state, Runnable,
        "retried: no rule says otherwise"
    );
    assert_eq!(
        plan.record.attempts[0].status_reason,
        "CannotCreateContainerError: secret \"db\" not found"
    );
}

#[test]
fn pod_on_a_lost_node_is_deleted_once_recorded() {
    let view = job("j")
        .retry(2)
        .state(Running)
        .pod(
            attempt_pod("j", 1, None)
                .node("gone")
                .running(T0)
                .node_lost(),
        )
        .build();
    let plan = reconcile(&view, T0 + 1);
    assert_eq!(plan.record.state, Runnable);
    assert_eq!(deleted(&plan), vec![("j-1", 0, DeleteReason::Superseded)]);
    assert_eq!(released(&plan), vec!["j-1"]);
}

#[test]
fn terminate_cancels_a_job_still_waiting_for_admission() {
    let waiting = Admission::Waiting {
        reason: "definition missing".into(),
    };
    let plan = reconcile(
        &job("j")
            .admission(waiting.clone())
            .terminate("never mind")
            .build(),
        T0,
    );
    assert_eq!(states(&plan), vec![(Submitted, Failed)]);
    assert_eq!(plan.record.status_reason.as_deref(), Some("never mind"));
    let plan = reconcile(
        &job("arr")
            .array(3)
            .admission(waiting)
            .terminate("never mind")
            .build(),
        T0,
    );
    assert_eq!(states(&plan), vec![(Submitted, Failed)]);
    assert_eq!(array_rec(&plan).failed.to_string(), "0-2");
}

#[test]
fn every_pod_of_a_finished_job_lets_go() {
    let view = job("j")
        .state(Failed)
        .pod(attempt_pod("j", 1, None).failed(1, T0, T0 + 1))
        .pod(attempt_pod("j", 3, None).pending())
        .build();
    let plan = reconcile(&view, T0);
    assert_eq!(released(&plan), vec!["j-1", "j-3"]);
    assert_eq!(deleted(&plan), vec![("j-3", 0, DeleteReason::Superseded)]);
    let arr = job("arr")
        .array(2)
        .state(Succeeded)
        .pod(attempt_pod("arr", 1, Some(0)).succeeded(T0, T0 + 1))
        .pod(attempt_pod("arr", 4, Some(1)).running(T0))
        .build();
    let plan = reconcile(&arr, T0);
    assert_eq!(released(&plan), vec!["arr-1-0", "arr-4-1"]);
    assert_eq!(
        deleted(&plan),
        vec![("arr-4-1", 0, DeleteReason::Superseded)]
    );
}

#[test]
fn child_states_say_where_each_child_stands() {
    let view = job("arr")
        .array(8)
        .retry(2)
        .depends_on(Dependency::n_to_n("a"))
        .dependency("a", array_target(Running, 8, "0-5", "7"))
        .state(Running)
        .pod(attempt_pod("arr", 1, Some(0)).running(T0))
        .pod(attempt_pod("arr", 1, Some(1)).pending())
        .pod(attempt_pod("arr", 1, Some(2)).succeeded(T0, T0 + 1))
        .pod(attempt_pod("arr", 1, Some(3)).failed(1, T0, T0 + 1))
        .build();
    let plan = reconcile(&view, T0 + 2);
    let children = plan.children.clone().expect("children");
    let expected = [
        (0, Running),
        (1, Starting),
        (2, Succeeded),
        (3, Runnable), // retried
        (4, Runnable),
        (5, Runnable),
        (6, Pending), // its counterpart is still running
        (7, Failed),  // its counterpart failed
    ];
    for (index, state) in expected {
        assert_eq!(children.state_of(index), Some(state), "child {index}");
    }
    assert_eq!(children.state_of(8), None);
    assert_eq!(plan.summary, Some(children.summary()));
    assert_eq!(plan.summary.expect("summary").total(), 8);
    assert_eq!(
        groups(&plan),
        vec![(2, true, "3".to_string()), (1, false, "4-5".to_string())]
    );
}

#[test]
fn parent_does_not_move_back_when_a_child_returns_to_runnable() {
    // The only started child's pod failed before its container ran; the child retries. The
    // parent, already STARTING, does not go back to RUNNABLE.
    let view = job("arr")
        .array(2)
        .retry(2)
        .state(Starting)
        .pod(attempt_pod("arr", 1, Some(0)).rejected("Evicted", "node pressure"))
        .build();
    let mut view = view;
    view.record.array = Some(ArrayRecord {
        size: 2,
        succeeded: IndexSet::parse("1").expect("valid"),
        ..ArrayRecord::default()
    });
    let plan = reconcile(&view, T0);
    assert_eq!(plan.record.state, Starting);
    assert!(plan.events.is_empty());
    assert_eq!(groups(&plan), vec![(2, true, "0".to_string())]);
}

// ---------------------------------------------------------------- simulated lifecycles

/// A tiny deterministic cluster: each step, the "scheduler" creates pods for up to `slots`
/// runnable children; each pod moves Pending → Running → (exit 0 | exit 1 | node lost) at
/// random; the operator applies every plan (record first, then actions). Invariants are
/// checked at every step; the array must finish.
fn simulate_array(seed: u64, size: u32, attempts: u32, sequential: bool) -> JobRecord {
    let mut rng = seed;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut builder = job("sim").array(size).retry(attempts);
    if sequential {
        builder = builder.depends_on(Dependency::sequential());
    }
    let mut view = builder.build();
    let mut now = T0;
    let mut attempts_seen: std::collections::BTreeMap<u32, u32> = Default::default();
    for _step in 0..10_000 {
        now += 1_000;
        let plan = reconcile(&view, now);
        // Invariants.
        let summary = plan.summary.expect("summary");
        assert_eq!(
            summary.total(),
            u64::from(size),
            "every child is counted once"
        );
        if view.record.state.is_terminal() {
            assert_eq!(
                plan.record.state, view.record.state,
                "terminal stays terminal"
            );
        } else if !plan.record.state.is_terminal() {
            assert!(
                plan.record.state >= view.record.state,
                "the parent never moves back"
            );
        }
        let rec = array_rec(&plan);
        assert!(rec.succeeded.intersection(&rec.failed).is_empty());
        for set in rec.prior_attempts.values() {
            assert!(
                set.intersection(&rec.succeeded).is_empty()
                    && set.intersection(&rec.failed).is_empty()
            );
        }
        for name in released(&plan) {
            let pod = view
                .pods
                .iter()
                .find(|p| p.name == name)
                .expect("released pod observed");
            let index = pod.array_index.expect("child pod");
            assert!(
                rec.is_done(index) || rec.attempts_made(index) >= pod.attempt,
                "{name} released before its result was recorded"
            );
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
                JobAction::DeletePod { name, .. } => {
                    view.pods.retain(|p| &p.name != name || p.has_finalizer)
                }
                JobAction::StopPod { name, .. } => {
                    if let Some(p) = view.pods.iter_mut().find(|p| &p.name == name) {
                        p.active_deadline_at_ms = Some(now);
                    }
                }
                JobAction::DeleteJob | JobAction::CreateNodePods { .. } => {}
            }
        }
        // Released, finished pods are garbage collected now and then.
        view.pods.retain(|p| p.has_finalizer || next(3) != 0);
        if plan.record.state.is_terminal() {
            return plan.record;
        }
        // The "scheduler": place some runnable children.
        if let RunnableWork::Array { groups } = &plan.runnable {
            let mut slots = 1 + next(4);
            for group in groups {
                for index in group.indices.iter() {
                    if slots == 0 {
                        break;
                    }
                    slots -= 1;
                    let count = attempts_seen.entry(index).or_default();
                    *count += 1;
                    assert!(
                        *count <= attempts,
                        "child {index} got more than {attempts} attempts"
                    );
                    assert_eq!(group.attempt, *count, "attempt numbers count up from 1");
                    view.pods.push(
                        attempt_pod("sim", group.attempt, Some(index))
                            .pending()
                            .build(),
                    );
                }
            }
        }
        // The "kubelet": move pods along.
        for pod in view.pods.iter_mut().filter(|p| p.has_finalizer) {
            match pod.phase {
                PodPhase::Pending if next(2) == 0 => {
                    pod.phase = PodPhase::Running;
                    pod.started_at_ms = Some(now);
                }
                PodPhase::Running if !pod.node_lost => match next(6) {
                    0 | 1 => {
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
                _ => {}
            }
        }
    }
    panic!("the array did not finish");
}

#[test]
fn simulated_arrays_keep_every_invariant_and_finish() {
    for seed in 1..=12u64 {
        let sequential = seed % 3 == 0;
        let record = simulate_array(seed * 0x9e37_79b9, 40, 3, sequential);
        let rec = record.array.as_ref().expect("array");
        assert_eq!(rec.done_count(), 40, "seed {seed}");
        assert!(rec.prior_attempts.is_empty(), "seed {seed}");
        let expected = if rec.failed.is_empty() {
            Succeeded
        } else {
            Failed
        };
        assert_eq!(record.state, expected, "seed {seed}");
        if sequential && !rec.failed.is_empty() {
            // After the first failure every later child failed too.
            let first = rec.failed.first().expect("failed");
            assert_eq!(rec.failed, IndexSet::range(first, 40), "seed {seed}");
        }
    }
    // With ten attempts per child, retries carry arrays through to SUCCEEDED.
    let succeeded = (13..=20u64)
        .map(|seed| simulate_array(seed * 0x9e37_79b9, 10, 10, false))
        .filter(|record| record.state == Succeeded)
        .count();
    assert!(succeeded > 0, "no simulated array succeeded");
}
