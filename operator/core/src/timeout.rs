//! Attempt timeouts (`timeout.attemptDurationSeconds`) and the stopping of pods.
//!
//! AWS Batch: when `attemptDurationSeconds` have passed since the attempt's `startedAt`, the
//! container gets SIGTERM, then SIGKILL 30 s later; the job fails and is not retried. In
//! Kubernetes terms Barge deletes the pod with a 30 s grace period (the kubelet sends SIGTERM,
//! then SIGKILL when the grace period ends). If the pod is still there well after its grace
//! period (a stuck kubelet), Barge deletes it again with grace 0.
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
    /// Past the deadline: delete the pod with this grace period (SIGTERM now, SIGKILL after).
    Terminate { grace_seconds: i64 },
    /// Past the deadline and already being deleted: wait; see [`StopProgress`].
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

/// Decides what to do about a running attempt's timeout.
pub fn decide_timeout(
    attempt_duration_seconds: Option<i64>,
    started_at_ms: Option<i64>,
    deletion_timestamp_ms: Option<i64>,
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
        StopProgress::NotRequested => TimeoutDecision::Terminate {
            grace_seconds: STOP_GRACE_SECONDS,
        },
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
            decide_timeout(None, Some(T0), None, T0 + 10_000_000),
            TimeoutDecision::NoTimeout
        );
        assert_eq!(
            decide_timeout(Some(60), None, None, T0),
            TimeoutDecision::NoTimeout
        );
    }

    #[test]
    fn wakes_at_the_deadline() {
        assert_eq!(
            decide_timeout(Some(60), Some(T0), None, T0 + 59_999),
            TimeoutDecision::NotYet {
                deadline_ms: T0 + 60_000
            }
        );
    }

    #[test]
    fn terminates_with_thirty_seconds_grace_at_the_deadline() {
        assert_eq!(
            decide_timeout(Some(60), Some(T0), None, T0 + 60_000),
            TimeoutDecision::Terminate { grace_seconds: 30 }
        );
    }

    #[test]
    fn waits_while_terminating_then_forces() {
        let deletion = T0 + 60_000 + 30_000; // requested at the deadline with 30 s grace
        assert_eq!(
            decide_timeout(Some(60), Some(T0), Some(deletion), T0 + 70_000),
            TimeoutDecision::Stopping(StopProgress::Waiting {
                force_at_ms: deletion + 30_000
            })
        );
        assert_eq!(
            decide_timeout(Some(60), Some(T0), Some(deletion), deletion + 30_000),
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
