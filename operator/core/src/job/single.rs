//! The state machine of a single (non-array) job.
//!
//! Steps, in order: finished job (let every pod go, TTL) → pods of attempts already recorded
//! (stop, release) → `spec.terminate` (cancel or terminate) → admission → dependencies → the
//! current attempt's pod (STARTING, RUNNING, timeout, result) → RUNNABLE bookkeeping (blocked
//! reason, time-limit actions, what the scheduler may place).

use super::pods::{self, Finished, Progress};
use super::{Admission, DeleteReason, Draft, JobAction, JobView, PodView, RunnableWork};
use crate::deps::{self, DependencyVerdict};
use crate::naming;
use crate::reasons;
use crate::retry::{decide_after_attempt, AttemptDecision, AttemptOutcome};
use crate::state::JobState;
use crate::timeout::{self, StopProgress, TimeoutDecision, STOP_GRACE_SECONDS};

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
                        let grace = if progress.started_at().is_some() {
                            STOP_GRACE_SECONDS
                        } else {
                            0
                        };
                        stop_pod(d, pod, grace, DeleteReason::Terminate);
                        d.waiting = Some(format!("terminating: {reason}"));
                    }
                }
            }
            // Nothing started: cancel.
            None => d.fail(reason.to_string()),
        }
        return;
    }

    match &view.admission {
        Admission::Waiting { reason } if d.record.state == JobState::Submitted => {
            d.record.status_reason = Some(reason.clone());
            d.waiting = Some(reason.clone());
            return;
        }
        Admission::Invalid { reason } if current.is_none() && d.record.state.is_queued() => {
            d.fail(reason.clone());
            return;
        }
        _ => {}
    }

    if current.is_none() && matches!(d.record.state, JobState::Submitted | JobState::Pending) {
        match deps::evaluate_job(&view.name, &view.spec.depends_on, &view.dependencies) {
            DependencyVerdict::Failed { status_reason } => {
                d.fail(status_reason);
                return;
            }
            DependencyVerdict::Waiting { reason } => {
                if d.record.state != JobState::Pending
                    || d.record.status_reason.as_ref() != Some(&reason)
                {
                    d.transition(JobState::Pending, Some(reason.clone()));
                }
                d.waiting = Some(reason);
                return;
            }
            DependencyVerdict::Met => d.transition(JobState::Runnable, None),
        }
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
            let vanished = PodView {
                name: pod_name,
                attempt: current_attempt,
                array_index: None,
                node_index: None,
                phase: super::PodPhase::Unknown,
                node_name: None,
                started_at_ms: finished.started_at_ms,
                finished_at_ms: None,
                exit_code: None,
                container_reason: None,
                pod_reason: None,
                pod_message: None,
                waiting_reason: None,
                waiting_message: None,
                deletion_timestamp_ms: None,
                node_lost: false,
                has_finalizer: false,
            };
            // Nothing left to stop or release: just record the result.
            record_result(d, view, &vanished, &finished);
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

/// Moves a queued job to STARTING when its pod exists and to RUNNING once the container ran.
fn observe_started(d: &mut Draft, progress: &Progress) {
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
fn record_result(d: &mut Draft, view: &JobView, pod: &PodView, finished: &Finished) {
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
        d.now_ms,
    ) {
        TimeoutDecision::NoTimeout => watch_deletion(d, pod),
        TimeoutDecision::NotYet { deadline_ms } => {
            d.wake_at(deadline_ms);
            watch_deletion(d, pod);
        }
        TimeoutDecision::Terminate { grace_seconds } => d.act(JobAction::DeletePod {
            name: pod.name.clone(),
            grace_seconds,
            reason: DeleteReason::Timeout,
        }),
        TimeoutDecision::Stopping(_) => watch_deletion(d, pod),
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
