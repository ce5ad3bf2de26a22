//! The state machine of a single (non-array) job.
//!
//! Steps, in order: finished job (let every pod go, TTL) → pods of attempts already recorded
//! (stop, release) → `spec.terminate` (cancel or terminate) → admission → dependencies (cycles
//! and missing jobs fail, see [`crate::deps::Surroundings::settle`]) → the current attempt's pod
//! (STARTING, RUNNING, timeout, result), or its refused creation (give up at the bound) →
//! RUNNABLE bookkeeping (blocked reason, time-limit actions, what the scheduler may place).

use super::pods::{self, Finished, Progress};
use super::{Admission, DeleteReason, Draft, JobAction, JobView, PodView, RunnableWork};
use crate::deps::{self, DependencyVerdict};
use crate::naming;
use crate::pod_creation::{GiveUp, Unit};
use crate::reasons;
use crate::retry::{decide_after_attempt, AttemptDecision, AttemptOutcome};
use crate::state::JobState;
use crate::timeout::{self, DeadlineStop, StopProgress, TimeoutDecision};

pub(crate) fn reconcile_single(view: &JobView, d: &mut Draft) {
    let recorded = u32::try_from(d.record.attempts.len()).unwrap_or(u32::MAX);
    let current_attempt = recorded.saturating_add(1);
    let own_pods: Vec<&PodView> = view
        .pods
        .iter()
        .filter(|p| p.array_index.is_none() && p.node_index.is_none())
        .collect();
    let current = own_pods
        .iter()
        .copied()
        .find(|p| p.attempt == current_attempt);

    if d.record.state.is_terminal() {
        // Every pod of a finished job lets go: recorded attempts, and any pod placed while the
        // job was ending (e.g. while it was being cancelled).
        for pod in &own_pods {
            let_go(d, pod);
        }
        d.apply_ttl(view);
        return;
    }

    // Pods whose attempt is already in the record: make sure they stop and let them go.
    for pod in own_pods.iter().filter(|p| p.attempt <= recorded) {
        let_go(d, pod);
    }

    if let Some(terminate) = &view.spec.terminate {
        let reason = terminate.reason();
        match current {
            Some(pod) => {
                let progress = pods::progress(
                    pod,
                    view.spec.attempt_duration_seconds,
                    Some(reason),
                    d.now_ms,
                );
                observe_started(d, &progress);
                match progress {
                    Progress::Finished(finished) => finish_attempt(d, view, pod, &finished),
                    _ => {
                        if progress.started_at().is_some() {
                            stop_running_pod(d, pod, DeleteReason::Terminate);
                        } else {
                            stop_pod(d, pod, 0, DeleteReason::Terminate);
                        }
                        d.waiting = Some(format!("terminating: {reason}"));
                    }
                }
            }
            // Nothing started: cancel.
            None => d.fail(reason.to_string()),
        }
        return;
    }

    if !apply_admission(view, d, current.is_some())
        || !resolve_dependencies(view, d, current.is_some())
    {
        return;
    }

    match current {
        Some(pod) => {
            let progress = pods::progress(pod, view.spec.attempt_duration_seconds, None, d.now_ms);
            observe_started(d, &progress);
            match progress {
                Progress::Waiting => watch_deletion(d, pod),
                Progress::Running { started_at_ms } => {
                    enforce_timeout(d, view, pod, started_at_ms);
                }
                Progress::Finished(finished) => finish_attempt(d, view, pod, &finished),
            }
        }
        None if matches!(d.record.state, JobState::Starting | JobState::Running) => {
            // The pod of the current attempt was seen before and is gone without a result
            // (its finalizer was removed by hand): count the attempt as failed.
            let pod_name = naming::attempt_pod_name(&view.name, current_attempt, None);
            let finished = Finished {
                outcome: AttemptOutcome::pod_failed(reasons::pod_vanished(&pod_name), None),
                started_at_ms: d
                    .record
                    .started_at_ms
                    .filter(|_| d.record.state == JobState::Running),
                stopped_at_ms: d.now_ms,
            };
            let vanished =
                pods::absent_pod(pod_name, current_attempt, None, finished.started_at_ms);
            // Nothing left to stop or release: just record the result.
            record_result(d, view, &vanished, &finished);
        }
        None if d.record.state == JobState::Runnable => {
            let pod_name = naming::attempt_pod_name(&view.name, current_attempt, None);
            give_up_refused_creation(d, view, current_attempt, pod_name);
        }
        None => {}
    }

    if d.record.state == JobState::Runnable {
        if d.apply_blocked(view) {
            let reason = Draft::time_limit_reason(
                view,
                d.record.status_reason.as_deref().unwrap_or_default(),
            );
            d.fail(reason);
            return;
        }
        d.runnable = RunnableWork::Single {
            attempt: u32::try_from(d.record.attempts.len())
                .unwrap_or(u32::MAX)
                .saturating_add(1),
            retried: d.record.is_retried(),
        };
    }
}

/// The operator's admission verdict for a job whose current attempt has a pod (`has_pod`) or
/// not: a SUBMITTED job waits with the reason; a queued job without a pod fails when invalid.
/// Returns false when the reconcile ends here.
pub(crate) fn apply_admission(view: &JobView, d: &mut Draft, has_pod: bool) -> bool {
    match &view.admission {
        Admission::Waiting { reason } if d.record.state == JobState::Submitted => {
            d.record.status_reason = Some(reason.clone());
            d.waiting = Some(reason.clone());
            false
        }
        Admission::Invalid { reason } if !has_pod && d.record.state.is_queued() => {
            d.fail(reason.clone());
            false
        }
        _ => true,
    }
}

/// Dependencies of a SUBMITTED or PENDING job whose current attempt has no pod: PENDING while
/// they are unmet (with the reason), FAILED when one failed (or a cycle or missing job settles
/// it), RUNNABLE once met. Returns false when the reconcile ends here.
pub(crate) fn resolve_dependencies(view: &JobView, d: &mut Draft, has_pod: bool) -> bool {
    if has_pod || !matches!(d.record.state, JobState::Submitted | JobState::Pending) {
        return true;
    }
    if view.awaits_unlisted_dependency() {
        // Nothing to decide or record until every job is listed.
        return false;
    }
    let verdict = deps::evaluate_job(&view.name, &view.spec.depends_on, &view.dependencies);
    let settled = super::surroundings(view).settle(verdict, d.now_ms);
    if let Some(at) = settled.recheck_at_ms {
        d.wake_at(at);
    }
    match settled.verdict {
        DependencyVerdict::Failed { status_reason } => {
            d.fail(status_reason);
            false
        }
        DependencyVerdict::Waiting { reason } => {
            if d.record.state != JobState::Pending
                || d.record.status_reason.as_ref() != Some(&reason)
            {
                d.transition(JobState::Pending, Some(reason.clone()));
            }
            d.waiting = Some(reason);
            false
        }
        DependencyVerdict::Met => {
            d.transition(JobState::Runnable, None);
            true
        }
    }
}

/// A RUNNABLE attempt whose pod (`pod_name`; a multi-node job's main node) the API server kept
/// refusing to create: once the bound since the first refusal has passed, the attempt fails
/// with `PodCreationRefused: <message>` (and the retry strategy decides what follows); until
/// then, look again at that time.
pub(crate) fn give_up_refused_creation(
    d: &mut Draft,
    view: &JobView,
    attempt: u32,
    pod_name: String,
) {
    let Some(refusal) = &view.creation_refusal else {
        return;
    };
    let unit = Unit {
        attempt,
        array_index: None,
    };
    match refusal.give_up(unit, d.now_ms) {
        None => {}
        Some(GiveUp::NotYet { at_ms }) => d.wake_at(at_ms),
        Some(GiveUp::Now { status_reason }) => {
            let finished = Finished {
                outcome: AttemptOutcome::pod_failed(status_reason, None),
                started_at_ms: None,
                stopped_at_ms: d.now_ms,
            };
            record_result(
                d,
                view,
                &pods::absent_pod(pod_name, attempt, None, None),
                &finished,
            );
        }
    }
}

/// Moves a queued job to STARTING when its pod exists and to RUNNING once the container ran.
pub(crate) fn observe_started(d: &mut Draft, progress: &Progress) {
    if d.record.state.is_queued() {
        d.transition(JobState::Starting, None);
    }
    if let Some(started) = progress.started_at() {
        if d.record.state == JobState::Starting {
            d.transition(JobState::Running, None);
        }
        if d.record.state == JobState::Running && d.record.started_at_ms != Some(started) {
            d.record.started_at_ms = Some(started);
        }
    }
}

/// Records the attempt's result, decides what follows, and lets the pod go.
fn finish_attempt(d: &mut Draft, view: &JobView, pod: &PodView, finished: &Finished) {
    record_result(d, view, pod, finished);
    let_go(d, pod);
}

/// Records the attempt's result and decides what follows.
pub(crate) fn record_result(d: &mut Draft, view: &JobView, pod: &PodView, finished: &Finished) {
    d.record.attempts.push(pods::attempt_record(pod, finished));
    match decide_after_attempt(&view.spec.retry_strategy, pod.attempt, &finished.outcome) {
        AttemptDecision::Succeed => {
            d.transition(
                JobState::Succeeded,
                Some(finished.outcome.status_reason.clone()),
            );
            d.record.stopped_at_ms = Some(finished.stopped_at_ms);
        }
        AttemptDecision::Retry => d.transition(JobState::Runnable, None),
        AttemptDecision::Fail { status_reason } => {
            d.transition(JobState::Failed, Some(status_reason));
            d.record.stopped_at_ms = Some(finished.stopped_at_ms);
        }
    }
}

fn enforce_timeout(d: &mut Draft, view: &JobView, pod: &PodView, started_at_ms: i64) {
    match timeout::decide_timeout(
        view.spec.attempt_duration_seconds,
        Some(started_at_ms),
        pod.deletion_timestamp_ms,
        pod.active_deadline_at_ms,
        d.now_ms,
    ) {
        TimeoutDecision::NoTimeout => watch_deletion(d, pod),
        TimeoutDecision::NotYet { deadline_ms } => {
            d.wake_at(deadline_ms);
            watch_deletion(d, pod);
        }
        TimeoutDecision::Stop(_) => stop_running_pod(d, pod, DeleteReason::Timeout),
        TimeoutDecision::Stopping(_) => watch_deletion(d, pod),
    }
}

/// Stops a running pod's containers through its deadline, keeping the pod and its log; deletes
/// it only if the kubelet has not stopped it well after the deadline (or someone deletes it).
pub(crate) fn stop_running_pod(d: &mut Draft, pod: &PodView, reason: DeleteReason) {
    if pod.deletion_timestamp_ms.is_some() {
        watch_deletion(d, pod);
        return;
    }
    // A deadline still in the future (set by the user's pod spec) does not stop it now.
    let due = pod.active_deadline_at_ms.filter(|at| *at <= d.now_ms);
    match timeout::deadline_stop(due, d.now_ms) {
        DeadlineStop::Request => d.act(JobAction::StopPod {
            name: pod.name.clone(),
            reason,
        }),
        DeadlineStop::Waiting { force_at_ms } => d.wake_at(force_at_ms),
        DeadlineStop::ForceDelete => d.act(JobAction::DeletePod {
            name: pod.name.clone(),
            grace_seconds: 0,
            reason: DeleteReason::ForceDelete,
        }),
    }
}

/// Asks a live pod to stop (once), then waits, then forces.
pub(crate) fn stop_pod(d: &mut Draft, pod: &PodView, grace_seconds: i64, reason: DeleteReason) {
    match timeout::stop_progress(pod.deletion_timestamp_ms, d.now_ms) {
        StopProgress::NotRequested => d.act(JobAction::DeletePod {
            name: pod.name.clone(),
            grace_seconds,
            reason,
        }),
        StopProgress::Waiting { force_at_ms } => d.wake_at(force_at_ms),
        StopProgress::ForceDelete => d.act(JobAction::DeletePod {
            name: pod.name.clone(),
            grace_seconds: 0,
            reason: DeleteReason::ForceDelete,
        }),
    }
}

/// A pod someone is deleting: wait for it, force it if it lingers.
pub(crate) fn watch_deletion(d: &mut Draft, pod: &PodView) {
    if pod.deletion_timestamp_ms.is_some() {
        stop_pod(d, pod, 0, DeleteReason::ForceDelete);
    }
}

/// A pod whose result is recorded (or not needed): it must not run on (a pod still Pending or
/// Running, e.g. on a lost node or unable to pull its image, is deleted); release it.
pub(crate) fn let_go(d: &mut Draft, pod: &PodView) {
    if !pods::has_exited(pod) {
        stop_pod(d, pod, 0, DeleteReason::Superseded);
    }
    if pod.has_finalizer {
        d.act(JobAction::ReleasePod {
            name: pod.name.clone(),
        });
    }
}
