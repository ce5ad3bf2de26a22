//! The state machine of a multi-node parallel (MNP) job: one attempt is one gang of
//! `numNodes` pods, `<job>-<attempt>-node-<n>`, and the main node decides.
//!
//! AWS Batch ("Multi-node parallel jobs", "Job lifecycle for MNP jobs"), in Barge's terms:
//! - the scheduler places the whole gang at once ([`RunnableWork::Gang`]) but creates only the
//!   main node's pod; the job is STARTING once that pod exists and RUNNING once its container
//!   runs;
//! - when the main node's container runs and its pod has an IP, the other nodes' pods are
//!   created ([`JobAction::CreateNodePods`], asked again until each exists: the operator
//!   creates them under deterministic names, so a repeat is AlreadyExists); if the API server
//!   keeps refusing them (recorded, like the main pod's refusals, under the attempt's
//!   [`crate::pod_creation::Unit`]), the attempt fails at the same bound with
//!   `PodCreationRefused: ...`;
//! - the attempt's result is the main node's: when the main pod ends, the attempt is recorded
//!   from it (its exit code, reasons, pod and node) and `retryStrategy` decides; every other
//!   pod of the attempt is then stopped (SIGTERM, grace, SIGKILL for a started container;
//!   deleted at once if it never started) and released once it has exited;
//! - a child node exiting or failing changes nothing by itself (AWS: "if a child node dies,
//!   AWS Batch doesn't take any action on the other nodes");
//! - a lost Kubernetes node under any pod of the attempt that had not finished ends the attempt
//!   FAILED with `Host EC2 (instance <node>) terminated.` (so `onStatusReason: "Host EC2*"`
//!   rules apply) and the retry strategy decides;
//! - `timeout.attemptDurationSeconds` covers the whole attempt from the main node's start: at
//!   the deadline every pod is stopped, and the attempt (recorded when the main pod ends)
//!   times out, never retried;
//! - `spec.terminate` cancels a job whose current attempt has no main pod, and otherwise stops
//!   every pod of the attempt and records it (terminated) when the main pod has ended;
//! - a retry is a new attempt with all-new pods. Its gang is offered to the scheduler only once
//!   no pod of an earlier attempt is still live (not exited, on a node that still exists), so
//!   at most one attempt's gang holds nodes at a time.
//!
//! Steps, in the order of the single-job machine: finished job (let every pod go, TTL) → pods
//! of attempts already recorded (stop, release) → `spec.terminate` → admission → dependencies
//! → the current attempt (main pod, lost nodes, timeout, children) → RUNNABLE bookkeeping
//! (blocked reason, time-limit actions, refused main-pod creation, the gang to place). Every
//! plan carries [`NodeStates`] (see [`node_states`]).

use super::pods::{self, Finished, Progress};
use super::single::{
    apply_admission, give_up_refused_creation, observe_started, record_result,
    resolve_dependencies, stop_pod, stop_running_pod, watch_deletion,
};
use super::{
    DeleteReason, Draft, JobAction, JobRecord, JobView, NodeStates, NodesSpec, PodPhase, PodView,
    RunnableWork,
};
use crate::naming;
use crate::pod_creation::{GiveUp, Unit};
use crate::reasons;
use crate::retry::AttemptOutcome;
use crate::state::JobState;
use crate::timeout::{self, TimeoutDecision};

/// Decides the next step of a multi-node job whose gang has the shape `shape` (`spec.nodes`).
pub(crate) fn reconcile_multinode(view: &JobView, shape: NodesSpec, d: &mut Draft) {
    // Every pod of the job takes part, in node order (a pod without a node index, which Barge
    // does not create for a multi-node job, still stops and lets go with its attempt).
    let mut job_pods: Vec<&PodView> = view
        .pods
        .iter()
        .filter(|p| p.array_index.is_none())
        .collect();
    job_pods.sort_by(|a, b| {
        (a.attempt, a.node_index, &a.name).cmp(&(b.attempt, b.node_index, &b.name))
    });
    advance(view, d, shape, &job_pods);
    d.nodes = Some(node_states(&d.record, shape, &job_pods));
}

/// The steps of the state machine (everything but the node states).
fn advance(view: &JobView, d: &mut Draft, shape: NodesSpec, job_pods: &[&PodView]) {
    let recorded = recorded_attempts(&d.record);
    let current_attempt = recorded.saturating_add(1);
    let gang: Vec<&PodView> = job_pods
        .iter()
        .copied()
        .filter(|p| p.attempt == current_attempt)
        .collect();
    let main = main_pod(&gang, shape);

    if d.record.state.is_terminal() {
        // Every pod of a finished job lets go: recorded attempts, and any pod placed while the
        // job was ending (e.g. while it was being cancelled).
        for pod in job_pods {
            let_go_gracefully(d, pod);
        }
        d.apply_ttl(view);
        return;
    }

    // Pods whose attempt is already in the record: make sure they stop and let them go.
    for pod in job_pods.iter().filter(|p| p.attempt <= recorded) {
        let_go_gracefully(d, pod);
    }

    if let Some(terminate) = &view.spec.terminate {
        let reason = terminate.reason();
        match main {
            Some(main) => {
                let progress = pods::progress(
                    main,
                    view.spec.attempt_duration_seconds,
                    Some(reason),
                    d.now_ms,
                );
                observe_started(d, &progress);
                match progress {
                    Progress::Finished(finished) => end_attempt(d, view, main, &finished, &gang),
                    _ => {
                        for pod in &gang {
                            stop_node_pod(d, pod, DeleteReason::Terminate);
                        }
                        d.waiting = Some(format!("terminating: {reason}"));
                    }
                }
            }
            // The main node never got a pod: cancel (and let any stray pod of the attempt go).
            None => {
                d.fail(reason.to_string());
                for pod in &gang {
                    let_go_gracefully(d, pod);
                }
            }
        }
        return;
    }

    if !apply_admission(view, d, main.is_some()) {
        return;
    }
    if shape.main_node >= shape.num_nodes && main.is_none() && d.record.state.is_queued() {
        d.fail(reasons::main_node_out_of_range(
            shape.main_node,
            shape.num_nodes,
        ));
        return;
    }

    if !resolve_dependencies(view, d, main.is_some()) {
        return;
    }

    let main_pod_name = naming::node_pod_name(&view.name, current_attempt, shape.main_node);
    match main {
        Some(main) => run_attempt(view, d, shape, main, &gang),
        None if matches!(d.record.state, JobState::Starting | JobState::Running) => {
            // The main node's pod was seen before and is gone without a result (its finalizer
            // was removed by hand): count the attempt as failed and stop the rest of the gang.
            let started_at_ms = d
                .record
                .started_at_ms
                .filter(|_| d.record.state == JobState::Running);
            let finished = Finished {
                outcome: AttemptOutcome::pod_failed(reasons::pod_vanished(&main_pod_name), None),
                started_at_ms,
                stopped_at_ms: d.now_ms,
            };
            let vanished =
                pods::absent_pod(main_pod_name, current_attempt, None, finished.started_at_ms);
            end_attempt(d, view, &vanished, &finished, &gang);
        }
        None if d.record.state == JobState::Runnable => {
            give_up_refused_creation(d, view, current_attempt, main_pod_name);
        }
        None => {}
    }

    if d.record.state == JobState::Runnable {
        let attempt = recorded_attempts(&d.record).saturating_add(1);
        if let Some(stopping) = job_pods.iter().find(|p| p.attempt < attempt && is_live(p)) {
            // The previous gang still holds its nodes: place the next one once it let go.
            d.waiting = Some(format!(
                "waiting for the pods of attempt {} to stop before attempt {attempt} is placed",
                stopping.attempt
            ));
            return;
        }
        if d.apply_blocked(view) {
            let reason = Draft::time_limit_reason(
                view,
                d.record.status_reason.as_deref().unwrap_or_default(),
            );
            d.fail(reason);
            return;
        }
        d.runnable = RunnableWork::Gang {
            attempt,
            retried: d.record.is_retried(),
        };
    }
}

/// The current attempt, whose main pod exists: STARTING/RUNNING, its end (the main pod's
/// result, or a lost node under any pod), the timeout over the whole gang, and the other
/// nodes' pods once the main node runs with an IP (until their creation is refused for too
/// long, which fails the attempt as a refused main pod would).
fn run_attempt(view: &JobView, d: &mut Draft, shape: NodesSpec, main: &PodView, gang: &[&PodView]) {
    let progress = pods::progress(main, view.spec.attempt_duration_seconds, None, d.now_ms);
    observe_started(d, &progress);
    let started_at_ms = match progress {
        Progress::Finished(finished) => {
            end_attempt(d, view, main, &finished, gang);
            return;
        }
        Progress::Waiting => None,
        Progress::Running { started_at_ms } => Some(started_at_ms),
    };
    let timing_out = match timeout::decide_timeout(
        view.spec.attempt_duration_seconds,
        started_at_ms,
        main.deletion_timestamp_ms,
        main.active_deadline_at_ms,
        d.now_ms,
    ) {
        TimeoutDecision::NoTimeout => false,
        TimeoutDecision::NotYet { deadline_ms } => {
            d.wake_at(deadline_ms);
            false
        }
        TimeoutDecision::Stop(_) | TimeoutDecision::Stopping(_) => true,
    };
    if timing_out {
        // The deadline covers the whole attempt: stop every node; the main pod's end records
        // the attempt as timed out (a node lost meanwhile does not make it retryable).
        for pod in gang {
            stop_node_pod(d, pod, DeleteReason::Timeout);
        }
        return;
    }
    if let Some(lost) = gang.iter().find(|p| lost_while_live(p)) {
        let finished = Finished {
            outcome: AttemptOutcome::host_lost(lost.node_name.as_deref().unwrap_or("unknown")),
            started_at_ms,
            stopped_at_ms: lost.finished_at_ms.unwrap_or(d.now_ms),
        };
        end_attempt(d, view, main, &finished, gang);
        return;
    }
    for pod in gang {
        watch_deletion(d, pod);
    }
    let Some(started_at_ms) = started_at_ms else {
        return;
    };
    let Some(main_pod_ip) = main.pod_ip.as_deref().filter(|ip| !ip.is_empty()) else {
        return;
    };
    let stopping = main.deletion_timestamp_ms.is_some()
        || main.active_deadline_at_ms.is_some_and(|at| at <= d.now_ms);
    let missing = missing_nodes(shape, gang);
    if stopping || missing.is_empty() {
        return;
    }
    // The main pod was created, so refusals of this attempt since then are of the other
    // nodes' pods: they give up at the same bound as the main pod's would.
    let unit = Unit {
        attempt: main.attempt,
        array_index: None,
    };
    match view
        .creation_refusal
        .as_ref()
        .and_then(|r| r.give_up(unit, d.now_ms))
    {
        Some(GiveUp::Now { status_reason }) => {
            let finished = Finished {
                outcome: AttemptOutcome::pod_failed(status_reason, None),
                started_at_ms: Some(started_at_ms),
                stopped_at_ms: d.now_ms,
            };
            end_attempt(d, view, main, &finished, gang);
            return;
        }
        Some(GiveUp::NotYet { at_ms }) => d.wake_at(at_ms),
        None => {}
    }
    d.act(JobAction::CreateNodePods {
        attempt: main.attempt,
        main_pod_ip: main_pod_ip.to_string(),
        indices: missing,
    });
}

/// The node indices of the gang, other than the main node, that have no pod.
fn missing_nodes(shape: NodesSpec, gang: &[&PodView]) -> Vec<u32> {
    (0..shape.num_nodes)
        .filter(|n| *n != shape.main_node)
        .filter(|n| !gang.iter().any(|p| p.node_index == Some(*n)))
        .collect()
}

/// Records the attempt from the main node (`main`, possibly an absent stand-in) with
/// `finished`, decides what follows, and lets every pod of the attempt go.
fn end_attempt(
    d: &mut Draft,
    view: &JobView,
    main: &PodView,
    finished: &Finished,
    gang: &[&PodView],
) {
    record_result(d, view, main, finished);
    for pod in gang {
        let_go_gracefully(d, pod);
    }
}

/// Stops a pod of the gang: a container that started gets SIGTERM, then SIGKILL after its grace
/// period (through its deadline, keeping the pod and its log); a pod whose container never
/// started, or whose node is gone, is deleted at once. Nothing to do once it exited.
fn stop_node_pod(d: &mut Draft, pod: &PodView, reason: DeleteReason) {
    if pods::has_exited(pod) {
        return;
    }
    if pod.started_at_ms.is_some() && !pod.node_lost {
        stop_running_pod(d, pod, reason);
    } else {
        stop_pod(d, pod, 0, reason);
    }
}

/// A pod whose attempt is over (recorded, or its job finished): it must not run on. It is
/// stopped as [`stop_node_pod`] says, and its finalizer is removed once nothing is left to
/// wait for: it exited, it never started, its node is gone, or it is being deleted.
fn let_go_gracefully(d: &mut Draft, pod: &PodView) {
    stop_node_pod(d, pod, DeleteReason::Superseded);
    if !pod.has_finalizer {
        return;
    }
    let deleting = pod.deletion_timestamp_ms.is_some()
        || d.actions
            .iter()
            .any(|a| matches!(a, JobAction::DeletePod { name, .. } if *name == pod.name));
    if pods::has_exited(pod) || pod.started_at_ms.is_none() || pod.node_lost || deleting {
        d.act(JobAction::ReleasePod {
            name: pod.name.clone(),
        });
    }
}

/// The main node's pod among the pods of one attempt.
fn main_pod<'a>(gang: &[&'a PodView], shape: NodesSpec) -> Option<&'a PodView> {
    gang.iter()
        .copied()
        .find(|p| p.node_index == Some(shape.main_node))
}

fn recorded_attempts(record: &JobRecord) -> u32 {
    u32::try_from(record.attempts.len()).unwrap_or(u32::MAX)
}

/// The pod's node disappeared while its container had not finished on its own (a pod that
/// exited before its idle node went away lost nothing).
fn lost_while_live(pod: &PodView) -> bool {
    pod.node_lost && pod.phase != PodPhase::Succeeded && pod.exit_code.is_none()
}

/// The pod still holds its node: it has not exited, and its node still exists.
fn is_live(pod: &PodView) -> bool {
    !pods::has_exited(pod) && !pod.node_lost
}

/// Where each node of the job's current attempt stands, for the status; once the job is
/// finished, its last recorded attempt (attempt 1 if it never had one).
///
/// A node with a pod: STARTING until its container runs, RUNNING, then SUCCEEDED or FAILED as
/// its pod ended (a pod whose node is lost or whose container cannot start is FAILED; a child
/// stopped because the main node ended is FAILED, as in AWS). A node without a pod: the job's
/// state while the job is SUBMITTED or PENDING, RUNNABLE while the gang waits to be placed or
/// for the main node to run; once the job is finished, the job's final state for the main
/// node (its result is the job's) and FAILED for any other node (it did not run to the end).
fn node_states(record: &JobRecord, shape: NodesSpec, job_pods: &[&PodView]) -> NodeStates {
    let recorded = recorded_attempts(record);
    let finished = record.state.is_terminal();
    let attempt = if finished && recorded > 0 {
        recorded
    } else {
        recorded.saturating_add(1)
    };
    let pod_of = |n: u32| {
        job_pods
            .iter()
            .copied()
            .find(|p| p.attempt == attempt && p.node_index == Some(n))
    };
    let states = (0..shape.num_nodes)
        .map(|n| match pod_of(n) {
            Some(pod) => pod_state(pod),
            None if finished && n == shape.main_node => record.state,
            None if finished => JobState::Failed,
            None if matches!(record.state, JobState::Submitted | JobState::Pending) => record.state,
            None => JobState::Runnable,
        })
        .collect();
    let main = pod_of(shape.main_node);
    let recorded_main = record
        .attempts
        .iter()
        .find(|a| a.attempt == attempt)
        .map(|a| a.pod_name.clone());
    NodeStates {
        attempt,
        states,
        main_pod: main.map(|p| p.name.clone()).or(recorded_main),
        main_pod_ip: main.and_then(|p| p.pod_ip.clone()),
    }
}

/// The state of one node from its pod.
fn pod_state(pod: &PodView) -> JobState {
    match pod.phase {
        PodPhase::Succeeded => JobState::Succeeded,
        PodPhase::Failed => JobState::Failed,
        _ if pod.node_lost || pods::start_failure(pod).is_some() => JobState::Failed,
        _ if pod.started_at_ms.is_some() => JobState::Running,
        _ => JobState::Starting,
    }
}

#[cfg(test)]
#[path = "multinode_tests.rs"]
mod tests;
