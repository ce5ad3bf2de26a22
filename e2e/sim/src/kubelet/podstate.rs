//! The kubelet's view of one admitted pod: the state of each (init) container, the pod phase
//! and conditions derived from them, and the JSON status patch that reports it. Pure: the
//! manager feeds it runtime events (`container_started`, `container_exited`) with the current
//! time and asks what to start next, when to restart, and what to write.
//!
//! Phase rules follow the kubelet's `getPhase`: init containers first; a container waiting for
//! its first start keeps the pod Pending; restart policies Always/OnFailure restart containers
//! (with CrashLoopBackOff) instead of ending the pod; a terminated pod (deletion, deadline) ends
//! Succeeded only if every container exited 0.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Map, Value};

use super::consts::*;

/// Formats a time as the API does (RFC 3339, whole seconds, UTC).
pub fn api_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Restart policy of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some(RESTART_NEVER) => Self::Never,
            Some(RESTART_ON_FAILURE) => Self::OnFailure,
            // Always is the API default.
            _ => Self::Always,
        }
    }
}

/// Which list a container belongs to, and its index there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerRef {
    pub init: bool,
    pub index: usize,
}

/// How a container run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub container_id: Option<String>,
}

impl Terminated {
    /// The reason a runtime reports for an exit code.
    pub fn reason_for(exit_code: i32, oom_killed: bool) -> &'static str {
        if oom_killed {
            REASON_OOM_KILLED
        } else if exit_code == 0 {
            REASON_COMPLETED
        } else {
            REASON_ERROR
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ContainerState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
        container_id: String,
    },
    Terminated(Terminated),
}

#[derive(Debug, Clone)]
pub struct ContainerRun {
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    pub last_terminated: Option<Terminated>,
    pub restart_count: i32,
    /// When a container in CrashLoopBackOff may start again (monotonic seconds from the
    /// manager's clock origin; the manager owns the clock).
    pub backoff_done: bool,
}

impl ContainerRun {
    fn new(name: &str, image: &str, waiting_reason: &str) -> Self {
        Self {
            name: name.to_string(),
            image: image.to_string(),
            state: ContainerState::Waiting {
                reason: waiting_reason.to_string(),
                message: None,
            },
            last_terminated: None,
            restart_count: 0,
            backoff_done: true,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, ContainerState::Running { .. })
    }

    fn succeeded(&self) -> bool {
        matches!(&self.state, ContainerState::Terminated(t) if t.exit_code == 0)
    }

    fn never_ran(&self) -> bool {
        matches!(self.state, ContainerState::Waiting { .. }) && self.last_terminated.is_none()
    }
}

/// Why a pod is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// The pod has a deletionTimestamp.
    Deletion,
    /// activeDeadlineSeconds passed.
    DeadlineExceeded,
}

/// What the manager should do after a container exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterExit {
    /// Nothing to restart (the pod may start its next containers or be finished).
    Continue,
    /// Restart the container after this back-off.
    RestartAfter(Duration),
}

/// A condition as last computed: status, reason, message, lastTransitionTime.
type ConditionState = (bool, Option<&'static str>, Option<String>, Timestamp);

/// One admitted pod.
#[derive(Debug, Clone)]
pub struct PodRun {
    pub uid: String,
    pub restart_policy: RestartPolicy,
    pub init: Vec<ContainerRun>,
    pub main: Vec<ContainerRun>,
    pub start_time: Option<Timestamp>,
    pub pod_ip: Option<String>,
    pub host_ip: String,
    pub sandbox_ready: bool,
    pub stopping: Option<StopCause>,
    /// Phase, reason and message fixed at admission (a rejected pod).
    pub rejected: Option<(String, String)>,
    /// When the kubelet first computed this pod's conditions.
    first_seen: Option<Timestamp>,
    /// Condition type → (status, reason, message, lastTransitionTime).
    conditions: BTreeMap<&'static str, ConditionState>,
}

/// The kubelet's crash-loop back-off: 0 before the first restart, then base·2^(n-1), capped
/// at five minutes.
pub fn crash_backoff(base: Duration, restarts_so_far: i32) -> Duration {
    if restarts_so_far <= 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (restarts_so_far - 1).min(16) as u32;
    base.saturating_mul(factor).min(Duration::from_secs(300))
}

impl PodRun {
    /// The run of a pod about to be started on `host_ip`.
    pub fn new(pod: &Pod, host_ip: &str) -> Self {
        let spec = pod.spec.as_ref();
        let init: Vec<ContainerRun> = spec
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
            .map(|c| {
                ContainerRun::new(
                    &c.name,
                    c.image.as_deref().unwrap_or_default(),
                    REASON_POD_INITIALIZING,
                )
            })
            .collect();
        let main_reason = if init.is_empty() {
            REASON_CONTAINER_CREATING
        } else {
            REASON_POD_INITIALIZING
        };
        let main = spec
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                ContainerRun::new(&c.name, c.image.as_deref().unwrap_or_default(), main_reason)
            })
            .collect();
        Self {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            restart_policy: RestartPolicy::parse(spec.and_then(|s| s.restart_policy.as_deref())),
            init,
            main,
            start_time: None,
            pod_ip: None,
            host_ip: host_ip.to_string(),
            sandbox_ready: false,
            stopping: None,
            rejected: None,
            first_seen: None,
            conditions: BTreeMap::new(),
        }
    }

    /// A pod refused at admission: phase Failed with the kubelet's reason and message.
    pub fn rejected(
        pod: &Pod,
        host_ip: &str,
        reason: String,
        message: String,
        now: Timestamp,
    ) -> Self {
        let mut run = Self::new(pod, host_ip);
        run.rejected = Some((reason, message));
        run.refresh_conditions(now);
        run
    }

    pub fn container(&self, r: ContainerRef) -> &ContainerRun {
        if r.init {
            &self.init[r.index]
        } else {
            &self.main[r.index]
        }
    }

    fn container_mut(&mut self, r: ContainerRef) -> &mut ContainerRun {
        if r.init {
            &mut self.init[r.index]
        } else {
            &mut self.main[r.index]
        }
    }

    /// Creates the sandbox: startTime, pod IP, PodReadyToStartContainers.
    pub fn start_sandbox(&mut self, now: Timestamp, pod_ip: String) {
        self.start_time.get_or_insert(now);
        self.pod_ip = Some(pod_ip);
        self.sandbox_ready = true;
        self.refresh_conditions(now);
    }

    fn init_done(&self) -> bool {
        self.init.iter().all(ContainerRun::succeeded)
    }

    /// Containers that should be started now.
    pub fn containers_to_start(&self) -> Vec<ContainerRef> {
        if self.stopping.is_some()
            || self.rejected.is_some()
            || !self.sandbox_ready
            || self.is_finished()
        {
            return Vec::new();
        }
        let startable =
            |c: &ContainerRun| matches!(c.state, ContainerState::Waiting { .. }) && c.backoff_done;
        if let Some(index) = self.init.iter().position(|c| !c.succeeded()) {
            let c = &self.init[index];
            return if startable(c) {
                vec![ContainerRef { init: true, index }]
            } else {
                Vec::new()
            };
        }
        (0..self.main.len())
            .filter(|&index| startable(&self.main[index]))
            .map(|index| ContainerRef { init: false, index })
            .collect()
    }

    /// Marks a container waiting while the runtime retries (e.g. a missing Secret).
    pub fn container_waiting(
        &mut self,
        r: ContainerRef,
        reason: &str,
        message: Option<String>,
        now: Timestamp,
    ) {
        self.container_mut(r).state = ContainerState::Waiting {
            reason: reason.to_string(),
            message,
        };
        self.refresh_conditions(now);
    }

    pub fn container_started(&mut self, r: ContainerRef, now: Timestamp) {
        let uid = self.uid.clone();
        let c = self.container_mut(r);
        let container_id = format!("sim://{uid}-{}-{}", c.name, c.restart_count);
        c.state = ContainerState::Running {
            started_at: now,
            container_id,
        };
        self.refresh_conditions(now);
    }

    /// Records a container's exit and decides about its restart.
    pub fn container_exited(
        &mut self,
        r: ContainerRef,
        exit_code: i32,
        reason: &str,
        message: Option<String>,
        now: Timestamp,
        backoff_base: Duration,
    ) -> AfterExit {
        let stopping = self.stopping.is_some();
        let policy = self.restart_policy;
        let pod_short = uid_short(&self.uid).to_string();
        let c = self.container_mut(r);
        let (started_at, container_id) = match &c.state {
            ContainerState::Running {
                started_at,
                container_id,
            } => (Some(*started_at), Some(container_id.clone())),
            _ => (None, None),
        };
        let t = Terminated {
            exit_code,
            reason: reason.to_string(),
            message,
            started_at,
            finished_at: now,
            container_id,
        };
        let restart = !stopping
            && match policy {
                RestartPolicy::Never => false,
                RestartPolicy::OnFailure => exit_code != 0,
                // Init containers are restarted only on failure even under Always.
                RestartPolicy::Always => !r.init || exit_code != 0,
            };
        let after = if restart {
            let delay = crash_backoff(backoff_base, c.restart_count);
            c.restart_count += 1;
            c.last_terminated = Some(t);
            c.backoff_done = delay.is_zero();
            if delay.is_zero() {
                c.state = ContainerState::Waiting {
                    reason: REASON_CONTAINER_CREATING.to_string(),
                    message: None,
                };
            } else {
                c.state = ContainerState::Waiting {
                    reason: REASON_CRASH_LOOP.to_string(),
                    message: Some(format!(
                        "back-off {}s restarting failed container={} pod={}",
                        delay.as_secs(),
                        c.name,
                        pod_short
                    )),
                };
            }
            AfterExit::RestartAfter(delay)
        } else {
            c.state = ContainerState::Terminated(t);
            AfterExit::Continue
        };
        // Once the init containers are done, the main containers stop waiting on them.
        if r.init && self.init_done() {
            for c in &mut self.main {
                if let ContainerState::Waiting { reason, .. } = &mut c.state {
                    if reason == REASON_POD_INITIALIZING {
                        *reason = REASON_CONTAINER_CREATING.to_string();
                    }
                }
            }
        }
        self.refresh_conditions(now);
        after
    }

    /// Ends a container's back-off so that it is started again.
    pub fn backoff_elapsed(&mut self, r: ContainerRef) {
        let c = self.container_mut(r);
        if matches!(c.state, ContainerState::Waiting { .. }) {
            c.backoff_done = true;
        }
    }

    /// Begins stopping the pod; returns the containers to kill.
    pub fn begin_stop(&mut self, cause: StopCause, now: Timestamp) -> Vec<ContainerRef> {
        if self.stopping.is_none() || cause == StopCause::DeadlineExceeded {
            // A deadline that passes during deletion still marks the pod DeadlineExceeded.
            if self.stopping != Some(StopCause::DeadlineExceeded) {
                self.stopping = Some(cause);
            }
        }
        self.refresh_conditions(now);
        self.running_containers()
    }

    pub fn running_containers(&self) -> Vec<ContainerRef> {
        let init = self
            .init
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_running())
            .map(|(index, _)| ContainerRef { init: true, index });
        let main = self
            .main
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_running())
            .map(|(index, _)| ContainerRef { init: false, index });
        init.chain(main).collect()
    }

    /// Marks every running container as lost (its process is gone without an exit status), as
    /// a kubelet does for containers it cannot find.
    pub fn containers_lost(&mut self, now: Timestamp) {
        for r in self.running_containers() {
            let c = self.container_mut(r);
            if let ContainerState::Running {
                started_at,
                container_id,
            } = &c.state
            {
                c.state = ContainerState::Terminated(Terminated {
                    exit_code: EXIT_SIGKILL,
                    reason: REASON_STATUS_UNKNOWN.to_string(),
                    message: Some(MESSAGE_STATUS_UNKNOWN.to_string()),
                    started_at: Some(*started_at),
                    finished_at: now,
                    container_id: Some(container_id.clone()),
                });
            }
        }
        self.refresh_conditions(now);
    }

    /// The pod is in a terminal phase and nothing runs any more.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase().0, PHASE_SUCCEEDED | PHASE_FAILED)
            && self.running_containers().is_empty()
    }

    /// Phase, reason and message.
    pub fn phase(&self) -> (&'static str, Option<&str>, Option<&str>) {
        if let Some((reason, message)) = &self.rejected {
            return (PHASE_FAILED, Some(reason), Some(message));
        }
        let any_running = self
            .init
            .iter()
            .chain(&self.main)
            .any(ContainerRun::is_running);
        if let Some(cause) = self.stopping {
            if !any_running {
                if cause == StopCause::DeadlineExceeded {
                    return (
                        PHASE_FAILED,
                        Some(REASON_DEADLINE_EXCEEDED),
                        Some(MESSAGE_DEADLINE_EXCEEDED),
                    );
                }
                let all_ok = self.init_done() && self.main.iter().all(ContainerRun::succeeded);
                return (
                    if all_ok {
                        PHASE_SUCCEEDED
                    } else {
                        PHASE_FAILED
                    },
                    None,
                    None,
                );
            }
        }
        // Init containers.
        if !self.init_done() {
            let failed_for_good = self.restart_policy == RestartPolicy::Never
                && self
                    .init
                    .iter()
                    .any(|c| matches!(&c.state, ContainerState::Terminated(t) if t.exit_code != 0));
            return (
                if failed_for_good {
                    PHASE_FAILED
                } else {
                    PHASE_PENDING
                },
                None,
                None,
            );
        }
        if self.main.iter().any(ContainerRun::never_ran) {
            return (PHASE_PENDING, None, None);
        }
        if self.main.iter().any(ContainerRun::is_running) {
            return (PHASE_RUNNING, None, None);
        }
        // Everything has stopped (or waits to restart).
        let all_succeeded = self.main.iter().all(ContainerRun::succeeded);
        let phase = match self.restart_policy {
            RestartPolicy::Always => PHASE_RUNNING,
            RestartPolicy::OnFailure if all_succeeded => PHASE_SUCCEEDED,
            RestartPolicy::OnFailure => PHASE_RUNNING,
            RestartPolicy::Never if all_succeeded => PHASE_SUCCEEDED,
            RestartPolicy::Never => PHASE_FAILED,
        };
        (phase, None, None)
    }

    /// Recomputes conditions; lastTransitionTime moves only when a status flips.
    fn refresh_conditions(&mut self, now: Timestamp) {
        self.first_seen.get_or_insert(now);
        let (phase, _, _) = self.phase();
        let terminal = phase == PHASE_SUCCEEDED || phase == PHASE_FAILED;
        let mut want: Vec<(&'static str, bool, Option<&'static str>, Option<String>)> = Vec::new();
        want.push((
            COND_READY_TO_START,
            self.sandbox_ready && !(terminal && self.running_containers().is_empty()),
            None,
            None,
        ));
        let incomplete: Vec<&str> = self
            .init
            .iter()
            .filter(|c| !c.succeeded())
            .map(|c| c.name.as_str())
            .collect();
        if self.rejected.is_some() {
            // A rejected pod never got further than admission.
        } else if phase == PHASE_SUCCEEDED {
            want.push((COND_INITIALIZED, true, Some(REASON_POD_COMPLETED), None));
        } else if incomplete.is_empty() {
            want.push((COND_INITIALIZED, true, None, None));
        } else {
            want.push((
                COND_INITIALIZED,
                false,
                Some(REASON_CONTAINERS_NOT_INITIALIZED),
                Some(format!(
                    "containers with incomplete status: [{}]",
                    incomplete.join(" ")
                )),
            ));
        }
        if self.rejected.is_none() {
            let unready: Vec<&str> = self
                .main
                .iter()
                .filter(|c| !c.is_running())
                .map(|c| c.name.as_str())
                .collect();
            let ready = if phase == PHASE_SUCCEEDED {
                (false, Some(REASON_POD_COMPLETED), None)
            } else if unready.is_empty() && !terminal {
                (true, None, None)
            } else {
                (
                    false,
                    Some(REASON_CONTAINERS_NOT_READY),
                    Some(format!(
                        "containers with unready status: [{}]",
                        unready.join(" ")
                    )),
                )
            };
            want.push((COND_READY, ready.0, ready.1, ready.2.clone()));
            want.push((COND_CONTAINERS_READY, ready.0, ready.1, ready.2));
        }
        for (ty, status, reason, message) in want {
            let since = match self.conditions.get(ty) {
                Some((old, _, _, t)) if *old == status => *t,
                _ => now,
            };
            self.conditions.insert(ty, (status, reason, message, since));
        }
    }

    /// The merge patch (for pods/status) that reports this run. `preserved` are the conditions
    /// the kubelet does not own (PodScheduled, DisruptionTarget, readiness gates...), copied
    /// from the object as last seen.
    pub fn status_patch(&self, preserved: &[Value]) -> Value {
        let (phase, reason, message) = self.phase();
        let mut status = Map::new();
        status.insert("phase".into(), json!(phase));
        if let Some(r) = reason {
            status.insert("reason".into(), json!(r));
        }
        if let Some(m) = message {
            status.insert("message".into(), json!(m));
        }
        let order = [
            COND_READY_TO_START,
            COND_INITIALIZED,
            COND_READY,
            COND_CONTAINERS_READY,
        ];
        let mut conditions: Vec<Value> = order
            .iter()
            .filter_map(|ty| self.conditions.get(ty).map(|c| (ty, c)))
            .map(|(ty, (s, reason, message, since))| {
                let mut c = json!({"type": ty, "status": if *s { TRUE } else { FALSE }, "lastProbeTime": null, "lastTransitionTime": api_time(*since)});
                if let Some(r) = reason {
                    c["reason"] = json!(r);
                }
                if let Some(m) = message {
                    c["message"] = json!(m);
                }
                c
            })
            .collect();
        // When the kubelet sees a pod, PodScheduled is True (the kubelet sets it if the
        // scheduler did not, e.g. for a pod created with spec.nodeName).
        let is_scheduled =
            |c: &Value| c.get("type").and_then(Value::as_str) == Some(COND_POD_SCHEDULED);
        let scheduled = preserved
            .iter()
            .find(|c| is_scheduled(c) && c.get("status").and_then(Value::as_str) == Some(TRUE))
            .cloned()
            .unwrap_or_else(|| {
                let since = self.start_time.or(self.first_seen).map(api_time);
                json!({"type": COND_POD_SCHEDULED, "status": TRUE, "lastProbeTime": null, "lastTransitionTime": since})
            });
        conditions.extend(
            preserved
                .iter()
                .filter(|c| {
                    c.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| !order.contains(&t) && t != COND_POD_SCHEDULED)
                })
                .cloned(),
        );
        conditions.push(scheduled);
        status.insert("conditions".into(), Value::Array(conditions));
        status.insert("hostIP".into(), json!(self.host_ip));
        status.insert("hostIPs".into(), json!([{"ip": self.host_ip}]));
        if let Some(ip) = &self.pod_ip {
            status.insert("podIP".into(), json!(ip));
            status.insert("podIPs".into(), json!([{"ip": ip}]));
        }
        if let Some(t) = self.start_time {
            status.insert("startTime".into(), json!(api_time(t)));
        }
        if self.rejected.is_none() {
            if !self.init.is_empty() {
                status.insert(
                    "initContainerStatuses".into(),
                    self.init.iter().map(container_status).collect(),
                );
            }
            status.insert(
                "containerStatuses".into(),
                self.main.iter().map(container_status).collect(),
            );
        }
        json!({"metadata": {"uid": self.uid}, "status": Value::Object(status)})
    }
}

fn uid_short(uid: &str) -> &str {
    uid.get(..8).unwrap_or(uid)
}

fn terminated_json(t: &Terminated) -> Value {
    let mut v =
        json!({"exitCode": t.exit_code, "reason": t.reason, "finishedAt": api_time(t.finished_at)});
    // The API reports startedAt even for a container that never started (zero time → null).
    v["startedAt"] = t
        .started_at
        .map(|s| json!(api_time(s)))
        .unwrap_or(Value::Null);
    if let Some(m) = &t.message {
        v["message"] = json!(m);
    }
    if let Some(id) = &t.container_id {
        v["containerID"] = json!(id);
    }
    v
}

fn container_status(c: &ContainerRun) -> Value {
    let running = c.is_running();
    let (state, id) = match &c.state {
        ContainerState::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if let Some(m) = message {
                w["message"] = json!(m);
            }
            (json!({"waiting": w}), None)
        }
        ContainerState::Running {
            started_at,
            container_id,
        } => (
            json!({"running": {"startedAt": api_time(*started_at)}}),
            Some(container_id.clone()),
        ),
        ContainerState::Terminated(t) => (
            json!({"terminated": terminated_json(t)}),
            t.container_id.clone(),
        ),
    };
    let mut v = json!({
        "name": c.name,
        "image": c.image,
        "imageID": if c.never_ran() { String::new() } else { format!("sim://{}", c.image) },
        "ready": running,
        "started": running,
        "restartCount": c.restart_count,
        "state": state,
        "lastState": c.last_terminated.as_ref().map(|t| json!({"terminated": terminated_json(t)})).unwrap_or_else(|| json!({})),
    });
    if let Some(id) = id {
        v["containerID"] = json!(id);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).expect("valid time")
    }

    fn pod(policy: &str, init: &[&str], main: &[&str]) -> Pod {
        let c = |n: &&str| Container {
            name: n.to_string(),
            image: Some("busybox".into()),
            ..Default::default()
        };
        Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                uid: Some("0123456789ab".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some(policy.into()),
                init_containers: (!init.is_empty()).then(|| init.iter().map(c).collect()),
                containers: main.iter().map(c).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const MAIN0: ContainerRef = ContainerRef {
        init: false,
        index: 0,
    };
    const INIT0: ContainerRef = ContainerRef {
        init: true,
        index: 0,
    };
    const B: Duration = Duration::from_secs(10);

    fn cond<'a>(patch: &'a Value, ty: &str) -> &'a Value {
        patch["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .find(|c| c["type"] == ty)
            .expect(ty)
    }

    #[test]
    fn never_pod_goes_pending_running_succeeded() {
        let mut run = PodRun::new(&pod("Never", &[], &["main"]), "127.0.0.1");
        run.start_sandbox(t(0), "10.1.0.1".into());
        let p = run.status_patch(&[]);
        assert_eq!(p["status"]["phase"], "Pending");
        assert_eq!(
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert_eq!(p["metadata"]["uid"], "0123456789ab");
        assert_eq!(run.containers_to_start(), vec![MAIN0]);
        run.container_started(MAIN0, t(1));
        let p = run.status_patch(&[json!({"type": "PodScheduled", "status": "True"})]);
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(p["status"]["podIP"], "10.1.0.1");
        assert_eq!(p["status"]["startTime"], "2023-11-14T22:13:20Z");
        assert_eq!(cond(&p, "Ready")["status"], "True");
        assert_eq!(cond(&p, "PodScheduled")["status"], "True");
        let generated = run.status_patch(&[
            json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}),
        ]);
        assert_eq!(cond(&generated, "PodScheduled")["status"], "True");
        assert_eq!(
            cond(&generated, "PodScheduled")["lastTransitionTime"],
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"],
            "2023-11-14T22:13:21Z"
        );
        assert_eq!(
            run.container_exited(MAIN0, 0, "Completed", None, t(5), B),
            AfterExit::Continue
        );
        assert!(run.is_finished());
        let p = run.status_patch(&[]);
        assert_eq!(p["status"]["phase"], "Succeeded");
        let term = &p["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(term["exitCode"], 0);
        assert_eq!(term["reason"], "Completed");
        assert_eq!(term["startedAt"], "2023-11-14T22:13:21Z");
        assert_eq!(term["finishedAt"], "2023-11-14T22:13:25Z");
        assert_eq!(cond(&p, "Ready")["reason"], "PodCompleted");
        assert_eq!(cond(&p, "Initialized")["reason"], "PodCompleted");
        assert_eq!(cond(&p, "PodReadyToStartContainers")["status"], "False");
        // lastTransitionTime of Ready moved when it flipped back to False.
        assert_eq!(
            cond(&p, "Ready")["lastTransitionTime"],
            "2023-11-14T22:13:25Z"
        );
    }

    #[test]
    fn never_pod_with_failing_container_fails() {
        let mut run = PodRun::new(&pod("Never", &[], &["a", "b"]), "127.0.0.1");
        run.start_sandbox(t(0), "10.1.0.1".into());
        run.container_started(MAIN0, t(0));
        run.container_started(
            ContainerRef {
                init: false,
                index: 1,
            },
            t(0),
        );
        run.container_exited(MAIN0, 3, "Error", None, t(1), B);
        assert_eq!(run.phase().0, "Running");
        run.container_exited(
            ContainerRef {
                init: false,
                index: 1,
            },
            0,
            "Completed",
            None,
            t(2),
            B,
        );
        assert_eq!(run.phase().0, "Failed");
        let p = run.status_patch(&[]);
        assert_eq!(
            cond(&p, "Ready")["message"],
            "containers with unready status: [a b]"
        );
    }

    #[test]
    fn init_containers_run_first_and_failure_fails_a_never_pod() {
        let mut run = PodRun::new(&pod("Never", &["setup"], &["main"]), "127.0.0.1");
        run.start_sandbox(t(0), "10.1.0.1".into());
        assert_eq!(run.containers_to_start(), vec![INIT0]);
        let p = run.status_patch(&[]);
        assert_eq!(
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        assert_eq!(
            cond(&p, "Initialized")["message"],
            "containers with incomplete status: [setup]"
        );
        run.container_started(INIT0, t(0));
        assert!(run.containers_to_start().is_empty());
        run.container_exited(INIT0, 0, "Completed", None, t(1), B);
        assert_eq!(run.containers_to_start(), vec![MAIN0]);
        assert_eq!(run.phase().0, "Pending");

        let mut bad = PodRun::new(&pod("Never", &["setup"], &["main"]), "127.0.0.1");
        bad.start_sandbox(t(0), "10.1.0.2".into());
        bad.container_started(INIT0, t(0));
        bad.container_exited(INIT0, 1, "Error", None, t(1), B);
        assert_eq!(bad.phase().0, "Failed");
        assert!(bad.is_finished());
        assert!(bad.containers_to_start().is_empty());
    }

    #[test]
    fn on_failure_restarts_with_backoff_and_counts_restarts() {
        let mut run = PodRun::new(&pod("OnFailure", &[], &["main"]), "127.0.0.1");
        run.start_sandbox(t(0), "10.1.0.1".into());
        run.container_started(MAIN0, t(0));
        assert_eq!(
            run.container_exited(MAIN0, 1, "Error", None, t(1), B),
            AfterExit::RestartAfter(Duration::ZERO)
        );
        assert_eq!(run.phase().0, "Running");
        assert_eq!(run.containers_to_start(), vec![MAIN0]);
        run.container_started(MAIN0, t(2));
        assert_eq!(
            run.container_exited(MAIN0, 1, "Error", None, t(3), B),
            AfterExit::RestartAfter(B)
        );
        let p = run.status_patch(&[]);
        let cs = &p["status"]["containerStatuses"][0];
        assert_eq!(cs["restartCount"], 2);
        assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
        assert!(run.containers_to_start().is_empty(), "in back-off");
        run.backoff_elapsed(MAIN0);
        assert_eq!(run.containers_to_start(), vec![MAIN0]);
        run.container_started(MAIN0, t(20));
        assert_eq!(
            run.container_exited(MAIN0, 0, "Completed", None, t(21), B),
            AfterExit::Continue
        );
        assert_eq!(run.phase().0, "Succeeded");
        assert_eq!(crash_backoff(B, 3), Duration::from_secs(40));
        assert_eq!(crash_backoff(B, 30), Duration::from_secs(300));
    }

    #[test]
    fn always_restarts_even_on_success() {
        let mut run = PodRun::new(&pod("Always", &[], &["main"]), "127.0.0.1");
        run.start_sandbox(t(0), "10.1.0.1".into());
        run.container_started(MAIN0, t(0));
        assert!(matches!(
            run.container_exited(MAIN0, 0, "Completed", None, t(1), B),
            AfterExit::RestartAfter(_)
        ));
        assert_eq!(run.phase().0, "Running");
    }

    #[test]
    fn deletion_ends_in_failed_with_the_kill_exit_code_and_no_restart() {
        let mut run = PodRun::new(&pod("Always", &[], &["main"]), "127.0.0.1");
        run.start_sandbox(t(0), "10.1.0.1".into());
        run.container_started(MAIN0, t(0));
        assert_eq!(run.begin_stop(StopCause::Deletion, t(1)), vec![MAIN0]);
        assert_eq!(run.phase().0, "Running");
        assert_eq!(
            run.container_exited(MAIN0, EXIT_SIGTERM, "Error", None, t(2), B),
            AfterExit::Continue
        );
        assert!(run.is_finished());
        assert_eq!(run.phase().0, "Failed");
        let p = run.status_patch(&[]);
        assert_eq!(
            p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            143
        );
    }

    #[test]
    fn deadline_marks_the_pod_deadline_exceeded() {
        let mut run = PodRun::new(&pod("Never", &[], &["main"]), "127.0.0.1");
        run.start_sandbox(t(0), "10.1.0.1".into());
        run.container_started(MAIN0, t(0));
        run.begin_stop(StopCause::DeadlineExceeded, t(5));
        run.container_exited(MAIN0, EXIT_SIGTERM, "Error", None, t(6), B);
        let p = run.status_patch(&[]);
        assert_eq!(p["status"]["phase"], "Failed");
        assert_eq!(p["status"]["reason"], "DeadlineExceeded");
        assert_eq!(p["status"]["message"], MESSAGE_DEADLINE_EXCEEDED);
    }

    #[test]
    fn rejected_pod_reports_the_admission_reason() {
        let run = PodRun::rejected(
            &pod("Never", &[], &["main"]),
            "127.0.0.1",
            "OutOfcpu".into(),
            "Pod was rejected: x".into(),
            t(0),
        );
        let p = run.status_patch(&[]);
        assert_eq!(p["status"]["phase"], "Failed");
        assert_eq!(p["status"]["reason"], "OutOfcpu");
        assert_eq!(p["status"]["message"], "Pod was rejected: x");
        assert!(p["status"].get("containerStatuses").is_none());
        assert!(p["status"].get("podIP").is_none());
        assert!(run.is_finished());
    }

    #[test]
    fn lost_containers_are_reported_unknown() {
        let mut run = PodRun::new(&pod("Never", &[], &["main"]), "127.0.0.1");
        run.start_sandbox(t(0), "10.1.0.1".into());
        run.container_started(MAIN0, t(0));
        run.containers_lost(t(3));
        let p = run.status_patch(&[]);
        let term = &p["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(term["reason"], "ContainerStatusUnknown");
        assert_eq!(term["exitCode"], 137);
        assert_eq!(p["status"]["phase"], "Failed");
    }
}
