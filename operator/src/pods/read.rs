//! Reading a pod back: its labels and status as the job state machine's [`PodView`], whether
//! its node was lost (a `DisruptionTarget` condition), and stopping a pod at its deadline
//! (`activeDeadlineSeconds` counted from the pod's start).

use std::collections::BTreeMap;

use barge_core::job::{PodPhase, PodView};
use barge_crds::consts::{
    FINALIZER_ATTEMPT_RESULT, LABEL_ARRAY_INDEX, LABEL_ATTEMPT, LABEL_NODE_INDEX,
};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Pod condition set when infrastructure disrupts a pod (pod GC of a vanished node, taint
/// manager, node shutdown, preemption, eviction).
pub const CONDITION_DISRUPTION_TARGET: &str = "DisruptionTarget";
/// `status.reason` of a pod whose node stopped responding (node lifecycle controller).
pub const POD_REASON_NODE_LOST: &str = "NodeLost";
/// `status.reason` of a pod stopped by a graceful node shutdown.
pub const POD_REASON_NODE_SHUTDOWN: &str = "Terminated";
const CONDITION_TRUE: &str = "True";
const PHASE_PENDING: &str = "Pending";

fn time_ms(time: &Time) -> i64 {
    time.0.as_millisecond()
}

fn parse_label<T: std::str::FromStr>(
    labels: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<T>, ()> {
    match labels.get(key) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| ()),
    }
}

/// Reads a Pod into the core's [`PodView`]. None when the pod is not a Barge attempt pod (no
/// valid `attempt` label, or a malformed index label).
///
/// The essential container is the first of `spec.containers`. `node_lost` is true when the pod
/// is bound to a node that no longer exists (`node_exists` false) and has not finished, when it
/// has a `DisruptionTarget` condition with status True (pod GC of a vanished node, the taint
/// manager, a node shutdown), or when its `status.reason` is `NodeLost` or `Terminated`.
pub fn pod_view(pod: &Pod, node_exists: bool) -> Option<PodView> {
    let labels = pod.metadata.labels.as_ref()?;
    let attempt: u32 = parse_label(labels, LABEL_ATTEMPT).ok()??;
    if attempt == 0 {
        return None;
    }
    let array_index: Option<u32> = parse_label(labels, LABEL_ARRAY_INDEX).ok()?;
    let node_index: Option<u32> = parse_label(labels, LABEL_NODE_INDEX).ok()?;

    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let phase_text = status
        .and_then(|s| s.phase.as_deref())
        .unwrap_or(PHASE_PENDING);
    let phase = PodPhase::parse(phase_text);
    let node_name = spec.and_then(|s| s.node_name.clone());

    let statuses = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let essential: Option<&ContainerStatus> = match spec.and_then(|s| s.containers.first()) {
        Some(first) => statuses.iter().find(|c| c.name == first.name),
        None => statuses.first(),
    };
    let state = essential.and_then(|c| c.state.as_ref());
    let running = state.and_then(|s| s.running.as_ref());
    let terminated = state.and_then(|s| s.terminated.as_ref());
    let waiting = state.and_then(|s| s.waiting.as_ref());

    let pod_reason = status.and_then(|s| s.reason.clone());
    let disrupted = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == CONDITION_DISRUPTION_TARGET && c.status == CONDITION_TRUE);
    let finished = matches!(phase, PodPhase::Succeeded | PodPhase::Failed);
    let node_gone = node_name.is_some() && !node_exists && !finished;
    let node_lost = node_gone
        || disrupted
        || matches!(
            pod_reason.as_deref(),
            Some(POD_REASON_NODE_LOST) | Some(POD_REASON_NODE_SHUTDOWN)
        );

    Some(PodView {
        name: pod.metadata.name.clone().unwrap_or_default(),
        attempt,
        array_index,
        node_index,
        pod_ip: status
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty()),
        phase,
        node_name,
        started_at_ms: running
            .and_then(|r| r.started_at.as_ref())
            .or_else(|| terminated.and_then(|t| t.started_at.as_ref()))
            .map(time_ms),
        finished_at_ms: terminated.and_then(|t| t.finished_at.as_ref()).map(time_ms),
        exit_code: terminated.map(|t| t.exit_code),
        container_reason: terminated.and_then(|t| t.reason.clone()),
        pod_reason,
        pod_message: status.and_then(|s| s.message.clone()),
        waiting_reason: waiting.and_then(|w| w.reason.clone()),
        waiting_message: waiting.and_then(|w| w.message.clone()),
        deletion_timestamp_ms: pod.metadata.deletion_timestamp.as_ref().map(time_ms),
        active_deadline_at_ms: active_deadline_at_ms(pod),
        node_lost,
        has_finalizer: pod
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == FINALIZER_ATTEMPT_RESULT)),
    })
}

/// When the kubelet stops the pod for its `spec.activeDeadlineSeconds` (counted from
/// `status.startTime`, as the kubelet counts it), if both are set.
pub fn active_deadline_at_ms(pod: &Pod) -> Option<i64> {
    let seconds = pod.spec.as_ref()?.active_deadline_seconds?;
    let start = pod.status.as_ref()?.start_time.as_ref()?;
    Some(time_ms(start).saturating_add(seconds.saturating_mul(1000)))
}

/// The merge patch that stops a running pod now without deleting it (see
/// `barge_core::timeout`): an `activeDeadlineSeconds` that has already passed. `None` when the
/// kubelet has not started the pod (no `status.startTime`): such a pod has no log to keep.
pub fn stop_now_patch(pod: &Pod, now_ms: i64) -> Option<serde_json::Value> {
    let start = time_ms(pod.status.as_ref()?.start_time.as_ref()?);
    let seconds = barge_core::timeout::active_deadline_seconds_to_stop_now(start, now_ms);
    Some(serde_json::json!({ "spec": { "activeDeadlineSeconds": seconds } }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::fixtures::*;
    use barge_crds::consts::LABEL_JOB_UID;
    use serde_json::json;

    /// A pod as the simulated kubelet reports it (e2e/sim/src/kubelet/podstate.rs).
    fn sim_pod(phase: &str, state: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "render-2-7",
                "namespace": "team-a",
                "labels": {LABEL_ATTEMPT: "2", LABEL_ARRAY_INDEX: "7", LABEL_JOB_UID: UID},
                "finalizers": [FINALIZER_ATTEMPT_RESULT],
            },
            "spec": {"nodeName": "node-1", "containers": [{"name": "main", "image": "busybox"}]},
            "status": {
                "phase": phase,
                "conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "hostIP": "127.0.0.1",
                "startTime": "2026-01-01T00:00:00Z",
                "containerStatuses": [{
                    "name": "main", "image": "busybox", "imageID": "sim://busybox",
                    "ready": false, "started": false, "restartCount": 0,
                    "state": state, "lastState": {},
                }],
            },
        })
    }

    fn view(pod: serde_json::Value, node_exists: bool) -> PodView {
        let pod: Pod = serde_json::from_value(pod).expect("a valid Pod");
        pod_view(&pod, node_exists).expect("a Barge pod")
    }

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    const T1: &str = "2026-01-01T00:00:05Z";
    const T2: &str = "2026-01-01T00:00:09Z";

    #[test]
    fn pod_view_reads_running_and_succeeded_pods() {
        let running = view(
            sim_pod("Running", json!({"running": {"startedAt": T1}})),
            true,
        );
        assert_eq!(running.name, "render-2-7");
        assert_eq!(
            (running.attempt, running.array_index, running.node_index),
            (2, Some(7), None)
        );
        assert_eq!(running.phase, PodPhase::Running);
        assert_eq!(running.node_name.as_deref(), Some("node-1"));
        assert_eq!(running.started_at_ms, Some(T0 + 5000));
        assert_eq!((running.finished_at_ms, running.exit_code), (None, None));
        assert!(running.has_finalizer);
        assert!(!running.node_lost);

        let done = view(
            sim_pod(
                "Succeeded",
                json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": T1, "finishedAt": T2, "containerID": "sim://x"}}),
            ),
            true,
        );
        assert_eq!(done.phase, PodPhase::Succeeded);
        assert_eq!(done.exit_code, Some(0));
        assert_eq!(done.container_reason.as_deref(), Some("Completed"));
        assert_eq!(
            (done.started_at_ms, done.finished_at_ms),
            (Some(T0 + 5000), Some(T0 + 9000))
        );
        assert!(!done.node_lost);
        // A finished pod whose node then went away is not a lost attempt.
        assert!(
            !view(
                sim_pod(
                    "Succeeded",
                    json!({"terminated": {"exitCode": 0, "finishedAt": T2}})
                ),
                false
            )
            .node_lost
        );
    }

    #[test]
    fn pod_view_reads_failures_oom_and_waiting() {
        let failed = view(
            sim_pod(
                "Failed",
                json!({"terminated": {"exitCode": 3, "reason": "Error", "startedAt": T1, "finishedAt": T2}}),
            ),
            true,
        );
        assert_eq!(failed.phase, PodPhase::Failed);
        assert_eq!(
            (failed.exit_code, failed.container_reason.as_deref()),
            (Some(3), Some("Error"))
        );

        let oom = view(
            sim_pod(
                "Failed",
                json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": T1, "finishedAt": T2}}),
            ),
            true,
        );
        assert_eq!(
            (oom.exit_code, oom.container_reason.as_deref()),
            (Some(137), Some("OOMKilled"))
        );

        let pulling = view(
            sim_pod(
                "Pending",
                json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}),
            ),
            true,
        );
        assert_eq!(pulling.phase, PodPhase::Pending);
        assert_eq!(pulling.waiting_reason.as_deref(), Some("ImagePullBackOff"));
        assert_eq!(
            pulling.waiting_message.as_deref(),
            Some("Back-off pulling image")
        );
        assert_eq!(pulling.started_at_ms, None);

        let mut deadline = sim_pod(
            "Failed",
            json!({"terminated": {"exitCode": 143, "reason": "Error", "startedAt": T1, "finishedAt": T2}}),
        );
        deadline["status"]["reason"] = json!("DeadlineExceeded");
        deadline["status"]["message"] =
            json!("Pod was active on the node longer than the specified deadline");
        let deadline = view(deadline, true);
        assert_eq!(deadline.pod_reason.as_deref(), Some("DeadlineExceeded"));
        assert!(deadline.pod_message.is_some());
        assert!(!deadline.node_lost);
    }

    #[test]
    fn pod_view_reads_deletion_and_finalizer() {
        let mut deleting = sim_pod("Running", json!({"running": {"startedAt": T1}}));
        deleting["metadata"]["deletionTimestamp"] = json!(T2);
        deleting["metadata"]["finalizers"] = json!(["example.com/other"]);
        let deleting = view(deleting, true);
        assert_eq!(deleting.deletion_timestamp_ms, Some(T0 + 9000));
        assert!(!deleting.has_finalizer);
    }

    #[test]
    fn a_pod_is_stopped_through_a_deadline_counted_from_its_start_time() {
        let mut pod = sim_pod("Running", json!({"running": {"startedAt": T1}}));
        assert_eq!(view(pod.clone(), true).active_deadline_at_ms, None);
        let typed: Pod = serde_json::from_value(pod.clone()).expect("a valid Pod");
        // 65.5 s after startTime (2026-01-01T00:00:00Z): the deadline that stops it now is 65 s.
        assert_eq!(
            stop_now_patch(&typed, T0 + 65_500),
            Some(json!({"spec": {"activeDeadlineSeconds": 65}}))
        );
        pod["spec"]["activeDeadlineSeconds"] = json!(65);
        assert_eq!(
            view(pod.clone(), true).active_deadline_at_ms,
            Some(T0 + 65_000)
        );
        pod["status"]
            .as_object_mut()
            .expect("status")
            .remove("startTime");
        let unstarted: Pod = serde_json::from_value(pod).expect("a valid Pod");
        assert_eq!(stop_now_patch(&unstarted, T0), None);
    }

    #[test]
    fn pod_view_sees_lost_nodes() {
        // The sim's pod GC after `lose_node`: Failed with DisruptionTarget, container state as
        // the kubelet last reported it, then deleted.
        let mut gc = sim_pod("Failed", json!({"running": {"startedAt": T1}}));
        gc["status"]["conditions"]
            .as_array_mut()
            .expect("conditions")
            .push(
                json!({"type": "DisruptionTarget", "status": "True", "lastTransitionTime": T2,
                         "reason": "DeletionByPodGC", "message": "PodGC: node no longer exists"}),
            );
        gc["metadata"]["deletionTimestamp"] = json!(T2);
        let gc = view(gc, false);
        assert!(gc.node_lost);
        assert_eq!(gc.started_at_ms, Some(T0 + 5000));
        assert_eq!(gc.exit_code, None);

        // Before pod GC runs: still Running, but the node object is gone.
        assert!(
            view(
                sim_pod("Running", json!({"running": {"startedAt": T1}})),
                false
            )
            .node_lost
        );
        // An unbound pod has no node to lose.
        let mut unbound = sim_pod(
            "Pending",
            json!({"waiting": {"reason": "ContainerCreating"}}),
        );
        unbound["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("nodeName");
        assert!(!view(unbound, false).node_lost);
        // The node lifecycle controller's reason.
        let mut node_lost = sim_pod("Running", json!({"running": {"startedAt": T1}}));
        node_lost["status"]["reason"] = json!("NodeLost");
        assert!(view(node_lost, true).node_lost);
        // A DisruptionTarget that is False does not count.
        let mut not_disrupted = sim_pod("Running", json!({"running": {"startedAt": T1}}));
        not_disrupted["status"]["conditions"]
            .as_array_mut()
            .expect("conditions")
            .push(json!({"type": "DisruptionTarget", "status": "False"}));
        assert!(!view(not_disrupted, true).node_lost);
    }

    #[test]
    fn pod_view_ignores_pods_that_are_not_barge_attempts() {
        let parse = |pod: serde_json::Value| {
            pod_view(
                &serde_json::from_value::<Pod>(pod).expect("a valid Pod"),
                true,
            )
        };
        let mut no_labels = sim_pod("Running", json!({}));
        no_labels["metadata"]
            .as_object_mut()
            .expect("meta")
            .remove("labels");
        assert_eq!(parse(no_labels), None);
        let mut bad_attempt = sim_pod("Running", json!({}));
        bad_attempt["metadata"]["labels"][LABEL_ATTEMPT] = json!("first");
        assert_eq!(parse(bad_attempt), None);
        let mut zero = sim_pod("Running", json!({}));
        zero["metadata"]["labels"][LABEL_ATTEMPT] = json!("0");
        assert_eq!(parse(zero), None);
        let mut bad_index = sim_pod("Running", json!({}));
        bad_index["metadata"]["labels"][LABEL_ARRAY_INDEX] = json!("-1");
        assert_eq!(parse(bad_index), None);
        // A freshly created pod without status is Pending.
        let mut fresh = sim_pod("Running", json!({}));
        fresh.as_object_mut().expect("pod").remove("status");
        let fresh = parse(fresh).expect("a Barge pod");
        assert_eq!(fresh.phase, PodPhase::Pending);
        assert_eq!(fresh.exit_code, None);
    }
}
