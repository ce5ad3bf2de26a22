//! Reading a pod: where its attempt stands and, once over, its [`AttemptOutcome`].
//!
//! An attempt is over when the pod's phase is Succeeded or Failed, when its node is lost, or
//! when its container cannot be started at all (the image cannot be pulled, the container
//! cannot be created): AWS Batch fails such an attempt with `CannotPullContainerError` /
//! `CannotCreateContainerError` / `CannotStartContainerError`, where Kubernetes would keep the
//! pod Pending and retry forever.
//!
//! Precedence for a finished attempt: a requested termination, then a timeout (the pod was
//! deleted after its deadline, or the kubelet enforced `activeDeadlineSeconds`), then success
//! (phase Succeeded), then a lost node, then a container that could not start, then the
//! container's exit code, then the pod's reason.

use super::{AttemptRecord, PodPhase, PodView};
use crate::retry::AttemptOutcome;
use crate::timeout;

/// The kubelet's pod `status.reason` when `activeDeadlineSeconds` expired.
pub const POD_REASON_DEADLINE_EXCEEDED: &str = "DeadlineExceeded";

/// Container waiting reasons (`state.waiting.reason`) that mean the image cannot be pulled.
/// (`ErrImagePull` alone is not final: the kubelet retries once before backing off.)
pub const IMAGE_PULL_FAILURES: [&str; 4] = [
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
];

/// Container waiting reasons that mean the container cannot be created.
pub const CREATE_FAILURES: [&str; 2] = ["CreateContainerConfigError", "CreateContainerError"];

/// Container waiting reasons that mean the container cannot be started.
pub const START_FAILURES: [&str; 2] = ["RunContainerError", "StartError"];

/// The AWS-style status reason for a container that cannot start, if `waiting_reason` is one.
pub(crate) fn start_failure(pod: &PodView) -> Option<String> {
    let reason = pod.waiting_reason.as_deref()?;
    let kind = if IMAGE_PULL_FAILURES.contains(&reason) {
        "CannotPullContainerError"
    } else if CREATE_FAILURES.contains(&reason) {
        "CannotCreateContainerError"
    } else if START_FAILURES.contains(&reason) {
        "CannotStartContainerError"
    } else {
        return None;
    };
    Some(match pod.waiting_message.as_deref() {
        Some(message) if !message.is_empty() => format!("{kind}: {message}"),
        _ => format!("{kind}: {reason}"),
    })
}

/// Where a pod's attempt stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Created; the container is not running yet (STARTING).
    Waiting,
    /// The container runs (RUNNING).
    Running { started_at_ms: i64 },
    /// The attempt is over.
    Finished(Finished),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Finished {
    pub outcome: AttemptOutcome,
    pub started_at_ms: Option<i64>,
    pub stopped_at_ms: i64,
}

impl Progress {
    /// The container has been seen running (now or before it finished).
    pub fn started_at(&self) -> Option<i64> {
        match self {
            Progress::Waiting => None,
            Progress::Running { started_at_ms } => Some(*started_at_ms),
            Progress::Finished(f) => f.started_at_ms,
        }
    }
}

/// True when the pod's attempt is over (its result can be recorded).
pub(crate) fn is_finished(pod: &PodView) -> bool {
    has_exited(pod) || pod.node_lost || start_failure(pod).is_some()
}

/// True when Kubernetes reports the pod done (phase Succeeded or Failed): nothing to stop.
pub(crate) fn has_exited(pod: &PodView) -> bool {
    matches!(pod.phase, PodPhase::Succeeded | PodPhase::Failed)
}

/// Reads a pod. `terminate_reason` is set when a termination applies to this pod.
pub(crate) fn progress(
    pod: &PodView,
    attempt_duration_seconds: Option<i64>,
    terminate_reason: Option<&str>,
    now_ms: i64,
) -> Progress {
    if !is_finished(pod) {
        // Running phase without a container start time is still starting (the kubelet reports
        // startedAt with the running state; falling back to `now` would not be idempotent).
        return match pod.started_at_ms {
            Some(started_at_ms) => Progress::Running { started_at_ms },
            None => Progress::Waiting,
        };
    }
    let stopped_at_ms = pod.finished_at_ms.unwrap_or(now_ms);
    let outcome = if let Some(reason) = terminate_reason {
        AttemptOutcome::terminated(reason, pod.exit_code)
    } else if pod.pod_reason.as_deref() == Some(POD_REASON_DEADLINE_EXCEEDED)
        || (pod.deletion_timestamp_ms.is_some()
            && timeout::exceeded(attempt_duration_seconds, pod.started_at_ms, stopped_at_ms))
    {
        AttemptOutcome::timed_out(pod.exit_code)
    } else if pod.phase == PodPhase::Succeeded {
        AttemptOutcome::exited(pod.exit_code.unwrap_or(0), pod.container_reason.clone())
    } else if pod.node_lost {
        AttemptOutcome::host_lost(pod.node_name.as_deref().unwrap_or("unknown"))
    } else if let Some(reason) = start_failure(pod).filter(|_| !has_exited(pod)) {
        AttemptOutcome::pod_failed(reason, pod.waiting_reason.clone())
    } else {
        match pod.exit_code {
            Some(code) if code != 0 => AttemptOutcome::exited(code, pod.container_reason.clone()),
            _ => AttemptOutcome::pod_failed(pod_failure_reason(pod), pod.container_reason.clone()),
        }
    };
    Progress::Finished(Finished {
        outcome,
        started_at_ms: pod.started_at_ms,
        stopped_at_ms,
    })
}

fn pod_failure_reason(pod: &PodView) -> String {
    match (pod.pod_reason.as_deref(), pod.pod_message.as_deref()) {
        (Some(r), Some(m)) => format!("{r}: {m}"),
        (Some(r), None) => r.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => "Pod failed without a container exit code".to_string(),
    }
}

/// Stands in for the pod of an attempt that has none (it vanished, or it was never created):
/// nothing to stop or release.
pub(crate) fn absent_pod(
    name: String,
    attempt: u32,
    array_index: Option<u32>,
    started_at_ms: Option<i64>,
) -> PodView {
    PodView {
        name,
        attempt,
        array_index,
        node_index: None,
        pod_ip: None,
        phase: PodPhase::Unknown,
        node_name: None,
        started_at_ms,
        finished_at_ms: None,
        exit_code: None,
        container_reason: None,
        pod_reason: None,
        pod_message: None,
        waiting_reason: None,
        waiting_message: None,
        deletion_timestamp_ms: None,
        active_deadline_at_ms: None,
        node_lost: false,
        has_finalizer: false,
    }
}

/// The attempt record of a finished pod.
pub(crate) fn attempt_record(pod: &PodView, finished: &Finished) -> AttemptRecord {
    AttemptRecord {
        attempt: pod.attempt,
        array_index: pod.array_index,
        pod_name: pod.name.clone(),
        node_name: pod.node_name.clone(),
        exit_code: finished.outcome.exit_code,
        reason: finished.outcome.container_reason.clone(),
        started_at_ms: finished.started_at_ms,
        stopped_at_ms: finished.stopped_at_ms,
        status_reason: finished.outcome.status_reason.clone(),
    }
}
