//! Attempt timeouts (`timeout.attemptDurationSeconds`) and the stopping of pods.
//!
//! AWS Batch: when `attemptDurationSeconds` have passed since the attempt's `startedAt`, the
//! container gets SIGTERM, then SIGKILL 30 s later; the job fails and is not retried. In
//! Kubernetes terms Barge stops the pod's containers without deleting the pod, so that its
//! record and its log stay (`kubectl logs` works on a timed-out attempt as on any failed one):
//! it sets the pod's `spec.activeDeadlineSeconds` to the time the pod has already run, and the
//! kubelet kills the pod (SIGTERM, SIGKILL after the pod's 30 s `terminationGracePeriodSeconds`)
//! and marks it Failed with reason `DeadlineExceeded`. If the pod is still running well after
//! that (a stuck kubelet, a lost node), Barge deletes it with grace 0. `spec.terminate` stops a
//! running pod the same way.
//!
//! Everything takes `now_ms` (unix milliseconds) and the pod's `deletionTimestamp` in the same
//! unit; Kubernetes sets `deletionTimestamp` to the request time plus the grace period, i.e.
//! the moment SIGKILL is due.

/// SIGTERM → SIGKILL grace period for timed-out and terminated attempts (AWS Batch: 30 s).
pub const STOP_GRACE_SECONDS: i64 = 30;

/// How long after a pod's `deletionTimestamp` Barge waits before deleting it again with grace 0.
pub const FORCE_DELETE_AFTER_SECONDS: i64 = 30;

/// Smallest `attemptDurationSeconds` AWS Batch accepts.
pub const MIN_ATTEMPT_DURATION_SECONDS: i64 = 60;

/// Where a running attempt stands against its timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeoutDecision {
    /// No timeout configured, or the attempt has not started running yet.
    NoTimeout,
    /// Still within its time; look again at `deadline_ms`.
    NotYet { deadline_ms: i64 },
    /// Past the deadline: stop the pod's containers, keeping the pod; see [`DeadlineStop`].
    Stop(DeadlineStop),
    /// Past the deadline and already being deleted (by someone): wait; see [`StopProgress`].
    Stopping(StopProgress),
}

/// Progress of a pod Barge (or anyone) asked to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopProgress {
    /// Not being deleted.
    NotRequested,
    /// Being deleted; if it is still there at `force_at_ms`, delete it with grace 0.
    Waiting { force_at_ms: i64 },
    /// Far past its grace period: delete it with grace 0 now.
    ForceDelete,
}

/// Progress of a pod Barge stops through `spec.activeDeadlineSeconds` (its containers are
/// killed, the pod and its log stay).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeadlineStop {
    /// No deadline on the pod yet: set one that has passed already (the kubelet stops it now).
    Request,
    /// The kubelet's deadline is set; if the pod still runs at `force_at_ms`, delete it.
    Waiting { force_at_ms: i64 },
    /// The kubelet did not stop it in time (stuck kubelet, lost node): delete it with grace 0.
    ForceDelete,
}

/// The moment an attempt that started at `started_at_ms` times out.
pub fn attempt_deadline_ms(started_at_ms: i64, attempt_duration_seconds: i64) -> i64 {
    started_at_ms.saturating_add(attempt_duration_seconds.saturating_mul(1000))
}

/// Where a pod being deleted stands, given its `deletionTimestamp` (if any).
pub fn stop_progress(deletion_timestamp_ms: Option<i64>, now_ms: i64) -> StopProgress {
    match deletion_timestamp_ms {
        None => StopProgress::NotRequested,
        Some(due) => {
            let force_at_ms = due.saturating_add(FORCE_DELETE_AFTER_SECONDS * 1000);
            if now_ms >= force_at_ms {
                StopProgress::ForceDelete
            } else {
                StopProgress::Waiting { force_at_ms }
            }
        }
    }
}

/// Where a pod stopped through its deadline stands, given when that deadline falls
/// (`status.startTime + spec.activeDeadlineSeconds`, if set).
pub fn deadline_stop(active_deadline_at_ms: Option<i64>, now_ms: i64) -> DeadlineStop {
    let Some(at) = active_deadline_at_ms else {
        return DeadlineStop::Request;
    };
    let force_at_ms = at.saturating_add((STOP_GRACE_SECONDS + FORCE_DELETE_AFTER_SECONDS) * 1000);
    if now_ms >= force_at_ms {
        DeadlineStop::ForceDelete
    } else {
        DeadlineStop::Waiting { force_at_ms }
    }
}

/// The `spec.activeDeadlineSeconds` that stops a pod now: the whole seconds it has run since
/// its `status.startTime` (at least 1, the smallest value the API accepts). The deadline is
/// then already past, so the kubelet stops the pod at once.
pub fn active_deadline_seconds_to_stop_now(pod_started_at_ms: i64, now_ms: i64) -> i64 {
    (now_ms.saturating_sub(pod_started_at_ms) / 1000).max(1)
}

/// Decides what to do about a running attempt's timeout.
pub fn decide_timeout(
    attempt_duration_seconds: Option<i64>,
    started_at_ms: Option<i64>,
    deletion_timestamp_ms: Option<i64>,
    active_deadline_at_ms: Option<i64>,
    now_ms: i64,
) -> TimeoutDecision {
    let (Some(duration), Some(started)) = (attempt_duration_seconds, started_at_ms) else {
        return TimeoutDecision::NoTimeout;
    };
    let deadline_ms = attempt_deadline_ms(started, duration);
    if now_ms < deadline_ms {
        return TimeoutDecision::NotYet { deadline_ms };
    }
    match stop_progress(deletion_timestamp_ms, now_ms) {
        StopProgress::NotRequested => {
            TimeoutDecision::Stop(deadline_stop(active_deadline_at_ms, now_ms))
        }
        progress => TimeoutDecision::Stopping(progress),
    }
}

/// True when an attempt that started at `started_at_ms` and ended (or is still running) at
/// `ended_or_now_ms` ran into its timeout.
pub fn exceeded(
    attempt_duration_seconds: Option<i64>,
    started_at_ms: Option<i64>,
    ended_or_now_ms: i64,
) -> bool {
    match (attempt_duration_seconds, started_at_ms) {
        (Some(duration), Some(started)) => {
            ended_or_now_ms >= attempt_deadline_ms(started, duration)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    #[test]
    fn no_timeout_without_duration_or_start() {
        assert_eq!(
            decide_timeout(None, Some(T0), None, None, T0 + 10_000_000),
            TimeoutDecision::NoTimeout
        );
        assert_eq!(
            decide_timeout(Some(60), None, None, None, T0),
            TimeoutDecision::NoTimeout
        );
    }

    #[test]
    fn wakes_at_the_deadline() {
        assert_eq!(
            decide_timeout(Some(60), Some(T0), None, None, T0 + 59_999),
            TimeoutDecision::NotYet {
                deadline_ms: T0 + 60_000
            }
        );
    }

    #[test]
    fn at_the_deadline_the_pod_is_stopped_through_its_active_deadline_not_deleted() {
        assert_eq!(
            decide_timeout(Some(60), Some(T0), None, None, T0 + 60_000),
            TimeoutDecision::Stop(DeadlineStop::Request)
        );
        // The pod started (startTime) 5 s before its container: 65 s have passed.
        assert_eq!(
            active_deadline_seconds_to_stop_now(T0 - 5_000, T0 + 60_000),
            65
        );
        assert_eq!(active_deadline_seconds_to_stop_now(T0, T0 + 10), 1);
    }

    #[test]
    fn a_pod_the_kubelet_does_not_stop_is_deleted_after_grace_and_margin() {
        let deadline_at = T0 + 60_000; // startTime + activeDeadlineSeconds
        let force_at = deadline_at + 60_000; // 30 s grace + 30 s margin
        assert_eq!(
            decide_timeout(Some(60), Some(T0), None, Some(deadline_at), T0 + 70_000),
            TimeoutDecision::Stop(DeadlineStop::Waiting {
                force_at_ms: force_at
            })
        );
        assert_eq!(
            decide_timeout(Some(60), Some(T0), None, Some(deadline_at), force_at),
            TimeoutDecision::Stop(DeadlineStop::ForceDelete)
        );
    }

    #[test]
    fn waits_while_someone_deletes_it_then_forces() {
        let deletion = T0 + 60_000 + 30_000;
        assert_eq!(
            decide_timeout(Some(60), Some(T0), Some(deletion), None, T0 + 70_000),
            TimeoutDecision::Stopping(StopProgress::Waiting {
                force_at_ms: deletion + 30_000
            })
        );
        assert_eq!(
            decide_timeout(Some(60), Some(T0), Some(deletion), None, deletion + 30_000),
            TimeoutDecision::Stopping(StopProgress::ForceDelete)
        );
    }

    #[test]
    fn exceeded_compares_end_with_deadline() {
        assert!(exceeded(Some(60), Some(T0), T0 + 60_000));
        assert!(!exceeded(Some(60), Some(T0), T0 + 59_000));
        assert!(!exceeded(None, Some(T0), i64::MAX));
        assert_eq!(attempt_deadline_ms(i64::MAX - 5, 60), i64::MAX);
    }
}
