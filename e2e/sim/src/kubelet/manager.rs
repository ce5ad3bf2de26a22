//! The kubelet's single event loop. It owns all state (owned nodes, tracked pods, unbound pods,
//! the deadline queue) and is the only place that changes it, so no locks are needed:
//!
//! ```text
//! node watcher ─┐                       ┌─> start/stop containers (timers, process tasks)
//! pod watcher  ─┼─> inbox ─> Manager ───┼─> want(write) ─> bounded pool of API writes ─┐
//! runtimes     ─┤   (one task)          └─> deadline queue (boot, lease, exits, ...)    │
//! write results ┘<──────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Writes are coalesced per object: at most one write per object is in flight, and a status is
//! rendered when its write is issued, so a burst of changes costs one write ("assume, then
//! write" for bindings: resources are reserved before the binding is posted).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::consts::*;
use super::logs::{ContainerLog, LogStore};
use super::nodestatus::{self, Capacity, NodeReport};
use super::placement::{first_fit, Candidate};
use super::podstate::{api_time, AfterExit, ContainerRef, PodRun, StopCause, Terminated};
use super::process::{
    self, Control, ProcessRun, RuntimeEvent, EXIT_START_ERROR, REASON_START_ERROR,
};
use super::resources::{add_into, first_insufficient, pod_requests, sub_from, Resources};
use super::scripted::{pod_runtime, PodRuntime, ScriptedParams};
use super::KubeletConfig;

/// Counters of what the kubelet did (API writes by kind, pods by outcome).
#[derive(Debug, Default)]
pub struct KubeletStats {
    pub pod_status_patches: AtomicU64,
    pub pod_deletes: AtomicU64,
    pub bindings: AtomicU64,
    pub unschedulable_patches: AtomicU64,
    pub node_status_patches: AtomicU64,
    pub lease_writes: AtomicU64,
    pub write_errors: AtomicU64,
    /// Pods admitted (a pod resumed after a kubelet restart is not admitted again).
    pub pods_admitted: AtomicU64,
    pub pods_rejected: AtomicU64,
    pub pods_finished: AtomicU64,
    /// Times the pod watch (re)started with a full list (1 at start).
    pub pod_relists: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub pod_status_patches: u64,
    pub pod_deletes: u64,
    pub bindings: u64,
    pub unschedulable_patches: u64,
    pub node_status_patches: u64,
    pub lease_writes: u64,
    pub write_errors: u64,
    pub pods_admitted: u64,
    pub pods_rejected: u64,
    pub pods_finished: u64,
    pub pod_relists: u64,
}

impl StatsSnapshot {
    /// Writes made for pods (status patches, deletions, bindings).
    pub fn pod_writes(&self) -> u64 {
        self.pod_status_patches + self.pod_deletes + self.bindings + self.unschedulable_patches
    }
    /// All API writes.
    pub fn api_writes(&self) -> u64 {
        self.pod_writes() + self.node_status_patches + self.lease_writes
    }
}

impl KubeletStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            pod_status_patches: g(&self.pod_status_patches),
            pod_deletes: g(&self.pod_deletes),
            bindings: g(&self.bindings),
            unschedulable_patches: g(&self.unschedulable_patches),
            node_status_patches: g(&self.node_status_patches),
            lease_writes: g(&self.lease_writes),
            write_errors: g(&self.write_errors),
            pods_admitted: g(&self.pods_admitted),
            pods_rejected: g(&self.pods_rejected),
            pods_finished: g(&self.pods_finished),
            pod_relists: g(&self.pod_relists),
        }
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// What the manager reacts to.
#[derive(Debug)]
pub(crate) enum Input {
    Node(Box<watcher::Event<Node>>),
    Pod(Box<watcher::Event<Pod>>),
    Runtime {
        uid: String,
        cref: ContainerRef,
        run: i32,
        event: RuntimeEvent,
    },
    WriteDone {
        key: WriteKey,
        result: Result<(), WriteError>,
    },
    KillNode(String),
}

/// One object write; at most one per key is in flight.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum WriteKey {
    PodStatus(String),
    PodDelete(String),
    Bind(String),
    Unschedulable(String),
    NodeStatus(String),
    Lease(String),
}

#[derive(Debug)]
pub(crate) enum WriteError {
    NotFound,
    Conflict,
    Other(String),
}

impl From<kube::Error> for WriteError {
    fn from(e: kube::Error) -> Self {
        match &e {
            kube::Error::Api(s) if s.code == 404 => Self::NotFound,
            kube::Error::Api(s) if s.code == 409 => Self::Conflict,
            _ => Self::Other(e.to_string()),
        }
    }
}

type WriteFuture = futures::future::BoxFuture<'static, Result<(), WriteError>>;

/// A merge patch of an object's status subresource, counted in `counter`. The request is
/// `Api::patch_status`'s; the answer (the patched object) is not read, so it is not decoded
/// either (a pod's decode, managedFields and all, was ~4 % of barge-sim's CPU in an array).
fn patch_status_call<K>(
    api: Api<K>,
    name: String,
    pp: PatchParams,
    patch: Value,
    stats: Arc<KubeletStats>,
    counter: fn(&KubeletStats) -> &AtomicU64,
) -> WriteFuture
where
    K: kube::Resource + Send + 'static,
{
    Box::pin(async move {
        bump(counter(&stats));
        let mut req = kube::core::Request::new(api.resource_url())
            .patch_subresource("status", &name, &pp, &Patch::Merge(&patch))
            .map_err(|e| WriteError::Other(e.to_string()))?;
        req.extensions_mut().insert("patch_status");
        api.into_client()
            .request_text(req)
            .await
            .map(|_| ())
            .map_err(WriteError::from)
    })
}

type TimerKey = (Instant, u64);

#[derive(Debug, Clone)]
enum Timer {
    NodeBoot(String),
    LeaseRenew(String),
    ScriptedExit {
        uid: String,
        cref: ContainerRef,
        run: i32,
    },
    Backoff {
        uid: String,
        cref: ContainerRef,
    },
    Deadline(String),
    Retry(WriteKey),
    BindPass,
}

struct NodeState {
    uid: String,
    capacity: Capacity,
    config_error: Option<String>,
    /// Boot time has come but `config_error` holds the node back.
    boot_blocked: bool,
    ready: bool,
    ready_since: Timestamp,
    booted_at: Timestamp,
    killed: bool,
    labels: BTreeMap<String, String>,
    taints: Vec<k8s_openapi::api::core::v1::Taint>,
    unschedulable: bool,
    used: Resources,
    pods_used: i128,
}

enum Live {
    /// A scripted container: its exit timer and its log (finished when it stops).
    Timer(TimerKey, Arc<ContainerLog>),
    Process(mpsc::Sender<Control>),
}

struct ActivePod {
    pod: Arc<Pod>,
    ns: String,
    name: String,
    node: String,
    runtime: PodRuntime,
    requests: Resources,
    holds: bool,
    run: PodRun,
    live: HashMap<ContainerRef, Live>,
    deadline: Option<(i64, TimerKey)>,
    deleting: bool,
    delete_sent: bool,
    last_hash: Option<u64>,
}

/// A pod that has finished (or was terminal when first seen): only its deletion is left.
struct DonePod {
    ns: String,
    node: String,
    name: String,
    /// Being deleted with a grace period, which the API server holds the pod for until this
    /// kubelet confirms the termination (see [`awaits_kubelet`]).
    deleting: bool,
    delete_sent: bool,
}

enum Tracked {
    Active(Box<ActivePod>),
    Done(DonePod),
}

struct UnboundPod {
    pod: Arc<Pod>,
    requests: Result<Resources, String>,
    last_message: Option<String>,
    assumed: Option<(String, Resources)>,
}

pub(crate) struct Manager {
    cfg: Arc<KubeletConfig>,
    client: Client,
    logs: Arc<LogStore>,
    log_port: u16,
    work_dir: PathBuf,
    stats: Arc<KubeletStats>,
    inbox: mpsc::UnboundedSender<Input>,
    default_capacity: Capacity,

    nodes: BTreeMap<String, NodeState>,
    pods: HashMap<String, Tracked>,
    unbound: HashMap<String, UnboundPod>,
    /// Pods bound to a node that is not (yet) owned and Ready, by node name then uid.
    parked: HashMap<String, HashMap<String, Arc<Pod>>>,
    parked_node: HashMap<String, String>,
    pod_init: Option<Vec<Pod>>,
    node_init: Option<Vec<Node>>,

    timers: BTreeMap<TimerKey, Timer>,
    timer_seq: u64,
    bind_pass_scheduled: bool,
    next_ip: u32,

    queue: VecDeque<WriteKey>,
    queued: HashSet<WriteKey>,
    in_flight: HashSet<WriteKey>,
    again: HashSet<WriteKey>,
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn pod_uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn pod_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or(PHASE_PENDING)
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(pod_phase(pod), PHASE_SUCCEEDED | PHASE_FAILED)
}

fn creation_key(pod: &Pod) -> (String, String, String) {
    (
        pod.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

fn hash_value(v: &Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish()
}

fn termination_grace(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64)
}

/// Whether the API server keeps the pod until a kubelet confirms its termination with a
/// grace-0 delete: a deletion with a grace period still running. A pod whose grace period is
/// already 0 (deleted with grace 0, or terminal when deleted) waits on its finalizers only, and
/// another delete from the kubelet would change nothing.
fn awaits_kubelet(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
        && pod.metadata.deletion_grace_period_seconds.unwrap_or(0) > 0
}

fn spec_grace(pod: &Pod) -> Duration {
    let secs = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64)
}

/// The one log line of a scripted container (so that `kubectl logs` works on scripted pods).
fn scripted_log_line(p: &ScriptedParams) -> String {
    format!(
        "barge-sim scripted container: runs {}s, then exits {}{}",
        p.duration.as_secs_f64(),
        p.exit_code,
        if p.oom_killed { " (OOMKilled)" } else { "" }
    )
}

/// The instant at which `wall` is reached (now if it has passed).
fn instant_of(wall: Timestamp) -> Instant {
    let delta = wall.as_millisecond() - now().as_millisecond();
    Instant::now() + Duration::from_millis(delta.max(0) as u64)
}

impl Manager {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cfg: Arc<KubeletConfig>,
        client: Client,
        logs: Arc<LogStore>,
        log_port: u16,
        work_dir: PathBuf,
        stats: Arc<KubeletStats>,
        inbox: mpsc::UnboundedSender<Input>,
        default_capacity: Capacity,
    ) -> Self {
        Self {
            cfg,
            client,
            logs,
            log_port,
            work_dir,
            stats,
            inbox,
            default_capacity,
            nodes: BTreeMap::new(),
            pods: HashMap::new(),
            unbound: HashMap::new(),
            parked: HashMap::new(),
            parked_node: HashMap::new(),
            pod_init: None,
            node_init: None,
            timers: BTreeMap::new(),
            timer_seq: 0,
            bind_pass_scheduled: false,
            next_ip: 0,
            queue: VecDeque::new(),
            queued: HashSet::new(),
            in_flight: HashSet::new(),
            again: HashSet::new(),
        }
    }

    /// Runs until `shutdown` resolves; then stops every container.
    pub(crate) async fn run(
        mut self,
        mut inbox: mpsc::UnboundedReceiver<Input>,
        mut shutdown: tokio::sync::oneshot::Receiver<()>,
    ) {
        loop {
            let next = self.timers.keys().next().map(|k| k.0);
            tokio::select! {
                _ = &mut shutdown => break,
                input = inbox.recv() => {
                    let Some(input) = input else { break };
                    self.handle(input);
                    // Batch whatever else is already waiting before writing.
                    for _ in 0..256 {
                        match inbox.try_recv() {
                            Ok(input) => self.handle(input),
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    self.fire_due_timers();
                }
            }
            self.flush_writes();
        }
        self.stop_everything().await;
    }

    async fn stop_everything(&mut self) {
        let mut waits = Vec::new();
        for tracked in self.pods.values_mut() {
            if let Tracked::Active(a) = tracked {
                for live in a.live.values() {
                    if let Live::Process(tx) = live {
                        let _ = tx.try_send(Control::Stop {
                            grace: Duration::ZERO,
                        });
                        let tx = tx.clone();
                        waits.push(async move { tx.closed().await });
                    }
                }
            }
        }
        let _ =
            tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(waits)).await;
        let _ = tokio::fs::remove_dir_all(&self.work_dir).await;
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Node(ev) => self.on_node_event(*ev),
            Input::Pod(ev) => self.on_pod_event(*ev),
            Input::Runtime {
                uid,
                cref,
                run,
                event,
            } => self.on_runtime(uid, cref, run, event),
            Input::WriteDone { key, result } => self.on_write_done(key, result),
            Input::KillNode(name) => self.kill_node(&name),
        }
    }

    // ----- timers -----

    fn at(&mut self, when: Instant, t: Timer) -> TimerKey {
        self.timer_seq += 1;
        let key = (when, self.timer_seq);
        self.timers.insert(key, t);
        key
    }

    fn fire_due_timers(&mut self) {
        let now_i = Instant::now();
        while let Some((&key, _)) = self.timers.iter().next() {
            if key.0 > now_i {
                break;
            }
            let Some(t) = self.timers.remove(&key) else {
                break;
            };
            match t {
                Timer::NodeBoot(name) => self.node_booted(&name),
                Timer::LeaseRenew(name) => {
                    if self.nodes.get(&name).is_some_and(|n| !n.killed) {
                        self.want(WriteKey::Lease(name.clone()));
                        let every = self.cfg.lease_renew_interval;
                        self.at(Instant::now() + every, Timer::LeaseRenew(name));
                    }
                }
                Timer::ScriptedExit { uid, cref, run } => self.scripted_exit(&uid, cref, run, key),
                Timer::Backoff { uid, cref } => {
                    if let Some(Tracked::Active(a)) = self.pods.get_mut(&uid) {
                        a.run.backoff_elapsed(cref);
                        self.advance(&uid);
                    }
                }
                Timer::Deadline(uid) => self.deadline_reached(&uid),
                Timer::Retry(k) => self.want(k),
                Timer::BindPass => self.bind_pass(),
            }
        }
    }

    // ----- writes -----

    fn want(&mut self, key: WriteKey) {
        if self.in_flight.contains(&key) {
            self.again.insert(key);
        } else if self.queued.insert(key.clone()) {
            self.queue.push_back(key);
        }
    }

    fn flush_writes(&mut self) {
        while self.in_flight.len() < self.cfg.max_concurrent_writes.max(1) {
            let Some(key) = self.queue.pop_front() else {
                break;
            };
            self.queued.remove(&key);
            self.issue(key);
        }
    }

    fn retry_later(&mut self, key: WriteKey) {
        self.at(
            Instant::now() + Duration::from_millis(500),
            Timer::Retry(key),
        );
    }

    /// Starts the API call for `key` (or decides it is not needed any more).
    fn issue(&mut self, key: WriteKey) {
        let client = self.client.clone();
        let stats = self.stats.clone();
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        let fut: WriteFuture = match &key {
            WriteKey::PodStatus(uid) => {
                let Some(Tracked::Active(a)) = self.pods.get_mut(uid) else {
                    return;
                };
                let preserved: Vec<Value> = a
                    .pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .map(|cs| {
                        cs.iter()
                            .filter_map(|c| serde_json::to_value(c).ok())
                            .collect()
                    })
                    .unwrap_or_default();
                let patch = a.run.status_patch(&preserved);
                let h = hash_value(&patch);
                if a.last_hash == Some(h) {
                    self.after_status_written(uid.clone());
                    return;
                }
                a.last_hash = Some(h);
                let api: Api<Pod> = Api::namespaced(client, &a.ns);
                patch_status_call(api, a.name.clone(), pp, patch, stats, |s| {
                    &s.pod_status_patches
                })
            }
            WriteKey::PodDelete(uid) => {
                let (ns, name) = match self.pods.get_mut(uid) {
                    Some(Tracked::Active(a)) => {
                        a.delete_sent = true;
                        (a.ns.clone(), a.name.clone())
                    }
                    Some(Tracked::Done(d)) => {
                        d.delete_sent = true;
                        (d.ns.clone(), d.name.clone())
                    }
                    None => return,
                };
                let api: Api<Pod> = Api::namespaced(client, &ns);
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                Box::pin(async move {
                    bump(&stats.pod_deletes);
                    api.delete(&name, &dp)
                        .await
                        .map(|_| ())
                        .map_err(WriteError::from)
                })
            }
            WriteKey::Bind(uid) => {
                let Some(u) = self.unbound.get(uid) else {
                    return;
                };
                let Some((node, _)) = &u.assumed else { return };
                let ns = u.pod.metadata.namespace.clone().unwrap_or_default();
                let name = u.pod.metadata.name.clone().unwrap_or_default();
                let binding = json!({
                    "apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": name, "namespace": ns, "uid": uid},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node},
                });
                let api: Api<Pod> = Api::namespaced(client, &ns);
                Box::pin(async move {
                    bump(&stats.bindings);
                    api.create_subresource::<Value, Value>(
                        "binding",
                        &name,
                        &PostParams::default(),
                        &binding,
                    )
                    .await
                    .map(|_| ())
                    .map_err(WriteError::from)
                })
            }
            WriteKey::Unschedulable(uid) => {
                let Some(u) = self.unbound.get(uid) else {
                    return;
                };
                let Some(message) = u.last_message.clone() else {
                    return;
                };
                let ns = u.pod.metadata.namespace.clone().unwrap_or_default();
                let name = u.pod.metadata.name.clone().unwrap_or_default();
                let patch = json!({"metadata": {"uid": uid}, "status": {"conditions": [{
                    "type": COND_POD_SCHEDULED, "status": FALSE, "reason": REASON_UNSCHEDULABLE,
                    "message": message, "lastProbeTime": null, "lastTransitionTime": api_time(now()),
                }]}});
                let api: Api<Pod> = Api::namespaced(client, &ns);
                let pp = PatchParams {
                    field_manager: Some(DEFAULT_SCHEDULER.to_string()),
                    ..Default::default()
                };
                patch_status_call(api, name, pp, patch, stats, |s| &s.unschedulable_patches)
            }
            WriteKey::NodeStatus(name) => {
                let Some(n) = self.nodes.get(name) else {
                    return;
                };
                if n.killed {
                    return;
                }
                let patch = nodestatus::node_status_patch(&NodeReport {
                    name,
                    capacity: &n.capacity,
                    // A node whose annotations broke reports NotReady, saying why.
                    ready: n.ready && n.config_error.is_none(),
                    ready_since: n.ready_since,
                    booted_at: n.booted_at,
                    now: now(),
                    log_port: self.log_port,
                    config_error: n.config_error.as_deref(),
                });
                let api: Api<Node> = Api::all(client);
                patch_status_call(api, name.clone(), pp, patch, stats, |s| {
                    &s.node_status_patches
                })
            }
            WriteKey::Lease(name) => {
                let Some(n) = self.nodes.get(name) else {
                    return;
                };
                if n.killed {
                    return;
                }
                let node_uid = n.uid.clone();
                let api: Api<Lease> = Api::namespaced(client, NODE_LEASE_NAMESPACE);
                let name = name.clone();
                Box::pin(async move {
                    let t = now();
                    bump(&stats.lease_writes);
                    match api
                        .patch(&name, &pp, &Patch::Merge(&nodestatus::lease_renewal(t)))
                        .await
                    {
                        Err(kube::Error::Api(s)) if s.code == 404 => {
                            bump(&stats.lease_writes);
                            let lease: Lease =
                                serde_json::from_value(nodestatus::new_lease(&name, &node_uid, t))
                                    .map_err(|e| WriteError::Other(e.to_string()))?;
                            let pp = PostParams {
                                field_manager: Some(FIELD_MANAGER.to_string()),
                                ..Default::default()
                            };
                            api.create(&pp, &lease)
                                .await
                                .map(|_| ())
                                .map_err(WriteError::from)
                        }
                        other => other.map(|_| ()).map_err(WriteError::from),
                    }
                })
            }
        };
        self.in_flight.insert(key.clone());
        let inbox = self.inbox.clone();
        tokio::spawn(async move {
            let result = fut.await;
            let _ = inbox.send(Input::WriteDone { key, result });
        });
    }

    fn on_write_done(&mut self, key: WriteKey, result: Result<(), WriteError>) {
        self.in_flight.remove(&key);
        match &result {
            Ok(()) => {}
            Err(WriteError::Other(message)) => {
                bump(&self.stats.write_errors);
                tracing::warn!(?key, %message, "kubelet write failed (will retry)");
            }
            Err(e) => {
                bump(&self.stats.write_errors);
                tracing::debug!(?key, error = ?e, "kubelet write refused");
            }
        }
        match (&key, result) {
            (WriteKey::PodStatus(uid), Ok(())) => self.after_status_written(uid.clone()),
            (WriteKey::PodStatus(_), Err(WriteError::NotFound)) => {}
            (WriteKey::PodStatus(uid), Err(_)) => {
                if let Some(Tracked::Active(a)) = self.pods.get_mut(uid) {
                    a.last_hash = None;
                }
                self.retry_later(key.clone());
            }
            // A pod that is gone needs no deletion. Anything else (a 409 included: with the uid
            // precondition it may be injected or transient) is retried; a pod replaced by a
            // namesake leaves `pods` through the watch, which ends the retries.
            (WriteKey::PodDelete(_), Ok(()) | Err(WriteError::NotFound)) => {}
            (WriteKey::PodDelete(uid), Err(_)) => {
                match self.pods.get_mut(uid) {
                    Some(Tracked::Active(a)) => a.delete_sent = false,
                    Some(Tracked::Done(d)) => d.delete_sent = false,
                    None => {}
                }
                self.retry_later(key.clone());
            }
            (WriteKey::Bind(_), Ok(())) => {}
            (WriteKey::Bind(uid), Err(_)) => {
                // Undo the assumption and try again later; a pod that is in fact bound leaves
                // `unbound` through the watch before that.
                if let Some(u) = self.unbound.get_mut(uid) {
                    u.assumed = None;
                    self.at(Instant::now() + Duration::from_millis(500), Timer::BindPass);
                }
            }
            (WriteKey::Unschedulable(uid), Err(_)) => {
                if let Some(u) = self.unbound.get_mut(uid) {
                    u.last_message = None;
                }
            }
            (WriteKey::Unschedulable(_), Ok(())) => {}
            (WriteKey::NodeStatus(_), Ok(()) | Err(WriteError::NotFound)) => {}
            (WriteKey::NodeStatus(_), Err(_)) => self.retry_later(key.clone()),
            (WriteKey::Lease(_), _) => {}
        }
        if self.again.remove(&key) {
            self.want(key);
        }
    }

    /// A pod's status is as it should be: delete it if it is finished and being deleted, or
    /// shrink it to a DonePod.
    fn after_status_written(&mut self, uid: String) {
        if self.again.contains(&WriteKey::PodStatus(uid.clone())) {
            return;
        }
        let Some(Tracked::Active(a)) = self.pods.get(&uid) else {
            return;
        };
        if !(a.run.is_finished() && a.live.is_empty()) {
            return;
        }
        let done = DonePod {
            ns: a.ns.clone(),
            node: a.node.clone(),
            name: a.name.clone(),
            deleting: a.deleting && awaits_kubelet(&a.pod),
            delete_sent: a.delete_sent,
        };
        let delete = done.deleting && !done.delete_sent;
        self.pods.insert(uid.clone(), Tracked::Done(done));
        if delete {
            self.want(WriteKey::PodDelete(uid));
        }
    }

    // ----- nodes -----

    fn on_node_event(&mut self, ev: watcher::Event<Node>) {
        match ev {
            watcher::Event::Apply(n) => self.on_node_apply(n),
            watcher::Event::Delete(n) => {
                if let Some(name) = n.metadata.name.as_deref() {
                    self.node_gone(name);
                }
            }
            watcher::Event::Init => self.node_init = Some(Vec::new()),
            watcher::Event::InitApply(n) => match &mut self.node_init {
                Some(buf) => buf.push(n),
                None => self.on_node_apply(n),
            },
            watcher::Event::InitDone => {
                let listed = self.node_init.take().unwrap_or_default();
                let names: HashSet<String> = listed
                    .iter()
                    .filter_map(|n| n.metadata.name.clone())
                    .collect();
                let gone: Vec<String> = self
                    .nodes
                    .keys()
                    .filter(|n| !names.contains(*n))
                    .cloned()
                    .collect();
                for name in gone {
                    self.node_gone(&name);
                }
                for n in listed {
                    self.on_node_apply(n);
                }
            }
        }
    }

    fn on_node_apply(&mut self, node: Node) {
        let Some(name) = node.metadata.name.clone() else {
            return;
        };
        let uid = node.metadata.uid.clone().unwrap_or_default();
        if self.nodes.get(&name).is_some_and(|n| n.uid != uid) {
            // Deleted and created again while the watch was away.
            self.node_gone(&name);
        }
        let (capacity, config_error) =
            match nodestatus::node_capacity(&node, &self.default_capacity) {
                Ok(c) => (c, None),
                Err(e) => (
                    Capacity {
                        declared: BTreeMap::new(),
                        parsed: Resources::new(),
                    },
                    Some(e),
                ),
            };
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let spec = node.spec.clone().unwrap_or_default();
        let taints = spec.taints.unwrap_or_default();
        let unschedulable = spec.unschedulable.unwrap_or(false);
        let killed = nodestatus::is_killed(&node);
        match self.nodes.get_mut(&name) {
            Some(n) => {
                let changed = n.capacity != capacity || n.config_error != config_error;
                // What the binder matches pods against (a kube-scheduler retries unschedulable
                // pods when a node's labels, taints or cordon change).
                let rematch =
                    n.labels != labels || n.taints != taints || n.unschedulable != unschedulable;
                n.capacity = capacity;
                n.config_error = config_error;
                n.labels = labels;
                n.taints = taints;
                n.unschedulable = unschedulable;
                if killed && !n.killed {
                    self.kill_node(&name);
                } else if changed && n.boot_blocked && n.config_error.is_none() {
                    // The annotation that kept the node from booting has been fixed.
                    self.node_booted(&name);
                } else if changed {
                    self.want(WriteKey::NodeStatus(name));
                    self.schedule_bind_pass();
                } else if rematch {
                    self.schedule_bind_pass();
                }
            }
            None => {
                let t = now();
                let state = NodeState {
                    uid,
                    capacity,
                    config_error,
                    boot_blocked: false,
                    ready: false,
                    ready_since: t,
                    booted_at: t,
                    killed: false,
                    labels,
                    taints,
                    unschedulable,
                    used: Resources::new(),
                    pods_used: 0,
                };
                self.nodes.insert(name.clone(), state);
                if killed {
                    self.kill_node(&name);
                    return;
                }
                if nodestatus::reports_ready(&node) {
                    self.node_booted(&name);
                    return;
                }
                self.want(WriteKey::NodeStatus(name.clone()));
                let delay = match nodestatus::boot_delay(&node, self.cfg.boot_delay) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(node = %name, error = %e, "using the default boot delay");
                        self.cfg.boot_delay
                    }
                };
                self.at(Instant::now() + delay, Timer::NodeBoot(name));
            }
        }
    }

    fn node_booted(&mut self, name: &str) {
        let Some(n) = self.nodes.get_mut(name) else {
            return;
        };
        if n.ready || n.killed {
            return;
        }
        // A node whose annotations are unusable stays NotReady and says why.
        n.boot_blocked = n.config_error.is_some();
        if n.boot_blocked {
            self.want(WriteKey::NodeStatus(name.to_string()));
            return;
        }
        n.ready = true;
        n.ready_since = now();
        self.want(WriteKey::NodeStatus(name.to_string()));
        self.want(WriteKey::Lease(name.to_string()));
        let every = self.cfg.lease_renew_interval;
        self.at(Instant::now() + every, Timer::LeaseRenew(name.to_string()));
        // Pods that waited for the node, oldest first.
        if let Some(waiting) = self.parked.remove(name) {
            let mut pods: Vec<Arc<Pod>> = waiting.into_values().collect();
            pods.sort_by_key(|p| creation_key(p));
            for p in pods {
                self.parked_node.remove(&pod_uid(&p));
                self.on_pod_apply(Arc::unwrap_or_clone(p));
            }
        }
        self.schedule_bind_pass();
    }

    /// Stops every container of the node's pods at once and forgets them (the API server's pod
    /// GC fails and deletes them).
    fn drop_node_pods(&mut self, name: &str) {
        let uids: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, t)| matches!(t, Tracked::Active(a) if a.node == name))
            .map(|(u, _)| u.clone())
            .collect();
        for uid in uids {
            self.stop_and_forget(&uid, false);
        }
        // Finished pods of the node need nothing more from this kubelet.
        self.pods
            .retain(|_, t| !matches!(t, Tracked::Done(d) if d.node == name));
    }

    fn node_gone(&mut self, name: &str) {
        self.drop_node_pods(name);
        self.nodes.remove(name);
        self.timers
            .retain(|_, t| !matches!(t, Timer::NodeBoot(n) | Timer::LeaseRenew(n) if n == name));
        self.schedule_bind_pass();
    }

    /// The node-loss fault: no more heartbeats, no more pods.
    fn kill_node(&mut self, name: &str) {
        let Some(n) = self.nodes.get_mut(name) else {
            return;
        };
        n.killed = true;
        n.ready = false;
        self.drop_node_pods(name);
        self.timers
            .retain(|_, t| !matches!(t, Timer::NodeBoot(n) | Timer::LeaseRenew(n) if n == name));
    }

    // ----- pods -----

    fn on_pod_event(&mut self, ev: watcher::Event<Pod>) {
        match ev {
            watcher::Event::Apply(p) => self.on_pod_apply(p),
            watcher::Event::Delete(p) => self.on_pod_deleted(&p),
            watcher::Event::Init => {
                bump(&self.stats.pod_relists);
                self.pod_init = Some(Vec::new());
            }
            watcher::Event::InitApply(p) => match &mut self.pod_init {
                Some(buf) => buf.push(p),
                None => self.on_pod_apply(p),
            },
            watcher::Event::InitDone => {
                let mut listed = self.pod_init.take().unwrap_or_default();
                let uids: HashSet<String> = listed.iter().map(pod_uid).collect();
                let known: Vec<String> = self
                    .pods
                    .keys()
                    .chain(self.unbound.keys())
                    .chain(self.parked_node.keys())
                    .filter(|u| !uids.contains(*u))
                    .cloned()
                    .collect();
                for uid in known {
                    self.forget(&uid);
                }
                // Pods that already run hold their resources before new ones are admitted;
                // then oldest first, as a kubelet admits after a restart.
                listed.sort_by_key(|p| {
                    let started = p
                        .status
                        .as_ref()
                        .and_then(|s| s.start_time.as_ref())
                        .is_some();
                    (!started, creation_key(p))
                });
                for p in listed {
                    self.on_pod_apply(p);
                }
            }
        }
    }

    fn on_pod_deleted(&mut self, pod: &Pod) {
        let uid = pod_uid(pod);
        self.forget(&uid);
        if let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) {
            self.logs.remove_pod(ns, name, &uid);
        }
    }

    /// Drops everything known about a pod (it is gone from the API).
    fn forget(&mut self, uid: &str) {
        self.stop_and_forget(uid, true);
        if self.unbound.remove(uid).is_some() {
            self.schedule_bind_pass();
        }
        if let Some(node) = self.parked_node.remove(uid) {
            if let Some(m) = self.parked.get_mut(&node) {
                m.remove(uid);
            }
        }
    }

    /// Kills the pod's containers (no grace), releases its resources and drops its entry.
    fn stop_and_forget(&mut self, uid: &str, remove_dir: bool) {
        let Some(tracked) = self.pods.remove(uid) else {
            return;
        };
        let Tracked::Active(mut a) = tracked else {
            return;
        };
        for (_, live) in a.live.drain() {
            match live {
                Live::Timer(k, log) => {
                    self.timers.remove(&k);
                    log.finish();
                }
                Live::Process(tx) => {
                    let _ = tx.try_send(Control::Stop {
                        grace: Duration::ZERO,
                    });
                }
            }
        }
        if let Some((_, k)) = a.deadline.take() {
            self.timers.remove(&k);
        }
        self.release(&mut a);
        if remove_dir && matches!(a.runtime, PodRuntime::Process) {
            let dir = self.work_dir.join(uid);
            tokio::spawn(async move {
                let _ = tokio::fs::remove_dir_all(dir).await;
            });
        }
    }

    fn release(&mut self, a: &mut ActivePod) {
        if !a.holds {
            return;
        }
        a.holds = false;
        if let Some(n) = self.nodes.get_mut(&a.node) {
            sub_from(&mut n.used, &a.requests);
            n.pods_used -= 1;
        }
        self.schedule_bind_pass();
    }

    fn on_pod_apply(&mut self, pod: Pod) {
        let uid = pod_uid(&pod);
        if uid.is_empty() {
            return;
        }
        // Already tracked: follow deletion and deadline changes.
        if let Some(tracked) = self.pods.get_mut(&uid) {
            let deleting = pod.metadata.deletion_timestamp.is_some();
            match tracked {
                Tracked::Done(d) => {
                    if awaits_kubelet(&pod) && !d.deleting {
                        d.deleting = true;
                        if !d.delete_sent {
                            self.want(WriteKey::PodDelete(uid));
                        }
                    }
                }
                Tracked::Active(a) => {
                    let grace = termination_grace(&pod);
                    let new_deadline = pod.spec.as_ref().and_then(|s| s.active_deadline_seconds);
                    a.pod = Arc::new(pod);
                    if deleting && !a.deleting {
                        a.deleting = true;
                        self.stop_pod(&uid, StopCause::Deletion, grace);
                    } else if new_deadline != a.deadline.as_ref().map(|d| d.0) {
                        self.arm_deadline(&uid, new_deadline);
                    }
                }
            }
            return;
        }
        let Some(node_name) = pod_node(&pod).map(str::to_string) else {
            self.track_unbound(uid, pod);
            return;
        };
        self.unbound.remove(&uid);
        let node_ready = self.nodes.get(&node_name).map(|n| (n.ready, n.killed));
        match node_ready {
            Some((_, true)) => {}
            Some((true, false)) => {
                if let Some(old) = self.parked_node.remove(&uid) {
                    if let Some(m) = self.parked.get_mut(&old) {
                        m.remove(&uid);
                    }
                }
                self.admit(uid, node_name, pod);
            }
            _ => {
                // Not ours (yet), or not booted: wait. Terminal pods need nothing.
                if !is_terminal(&pod) || pod.metadata.deletion_timestamp.is_some() {
                    self.parked_node.insert(uid.clone(), node_name.clone());
                    self.parked
                        .entry(node_name)
                        .or_default()
                        .insert(uid, Arc::new(pod));
                }
            }
        }
    }

    fn track_unbound(&mut self, uid: String, pod: Pod) {
        let eligible = self.cfg.bind_unscheduled
            && !is_terminal(&pod)
            && pod.metadata.deletion_timestamp.is_none()
            && pod.spec.as_ref().is_some_and(|s| {
                s.scheduler_name
                    .as_deref()
                    .is_none_or(|n| n.is_empty() || n == DEFAULT_SCHEDULER)
            });
        if !eligible {
            self.unbound.remove(&uid);
            return;
        }
        let requests = pod
            .spec
            .as_ref()
            .map(pod_requests)
            .unwrap_or_else(|| Ok(Resources::new()))
            .map_err(|e| e.to_string());
        match self.unbound.get_mut(&uid) {
            Some(u) => {
                u.pod = Arc::new(pod);
                u.requests = requests;
            }
            None => {
                self.unbound.insert(
                    uid,
                    UnboundPod {
                        pod: Arc::new(pod),
                        requests,
                        last_message: None,
                        assumed: None,
                    },
                );
            }
        }
        self.schedule_bind_pass();
    }

    fn allocate_ip(&mut self) -> String {
        let n = self.next_ip;
        self.next_ip = self.next_ip.wrapping_add(1);
        format!(
            "10.{}.{}.{}",
            1 + (n / (256 * 254)) % 250,
            (n / 254) % 256,
            n % 254 + 1
        )
    }

    /// Admission, then the start of a pod on a Ready owned node.
    fn admit(&mut self, uid: String, node_name: String, pod: Pod) {
        let t = now();
        let host_ip = NODE_IP.to_string();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let deleting = pod.metadata.deletion_timestamp.is_some();
        if is_terminal(&pod) {
            // Finished before this kubelet saw it: only a deletion may be left to do.
            self.pods.insert(
                uid.clone(),
                Tracked::Done(DonePod {
                    ns,
                    node: node_name,
                    name,
                    deleting: awaits_kubelet(&pod),
                    delete_sent: false,
                }),
            );
            if awaits_kubelet(&pod) {
                self.want(WriteKey::PodDelete(uid));
            }
            return;
        }
        let runtime = pod_runtime(&pod, self.cfg.runtime);
        let requests = pod
            .spec
            .as_ref()
            .map(pod_requests)
            .unwrap_or_else(|| Ok(Resources::new()));
        let resumed = pod.status.as_ref().and_then(|s| s.start_time.clone());
        let Some(node) = self.nodes.get_mut(&node_name) else {
            return;
        };
        let verdict = match &requests {
            Err(e) => Some((
                "UnexpectedAdmissionError".to_string(),
                format!("{MESSAGE_POD_REJECTED_PREFIX}{e}"),
            )),
            // A pod this kubelet (or its previous run) already started is not admitted again.
            Ok(_) if resumed.is_some() || deleting => None,
            Ok(req) => first_insufficient(req, &node.used, node.pods_used, &node.capacity.parsed)
                .map(|r| {
                    (
                        r.reason,
                        format!("{MESSAGE_POD_REJECTED_PREFIX}{}", r.message),
                    )
                }),
        };
        let pod = Arc::new(pod);
        if let Some((reason, message)) = verdict {
            bump(&self.stats.pods_rejected);
            let run = PodRun::rejected(&pod, &host_ip, reason, message, t);
            self.pods.insert(
                uid.clone(),
                Tracked::Active(Box::new(ActivePod {
                    pod,
                    ns,
                    name,
                    node: node_name,
                    runtime,
                    requests: Resources::new(),
                    holds: false,
                    run,
                    live: HashMap::new(),
                    deadline: None,
                    deleting,
                    delete_sent: false,
                    last_hash: None,
                })),
            );
            self.want(WriteKey::PodStatus(uid));
            return;
        }
        let requests = requests.unwrap_or_default();
        add_into(&mut node.used, &requests);
        node.pods_used += 1;
        if resumed.is_none() {
            bump(&self.stats.pods_admitted);
        }
        let mut run = PodRun::new(&pod, &host_ip);
        let previous_ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty());
        let ip = match previous_ip {
            Some(ip) => ip,
            None => self.allocate_ip(),
        };
        let started = resumed.as_ref().map(|s| s.0).unwrap_or(t);
        run.start_sandbox(started, ip);
        let deadline = pod.spec.as_ref().and_then(|s| s.active_deadline_seconds);
        let mut active = ActivePod {
            pod: pod.clone(),
            ns,
            name,
            node: node_name,
            runtime,
            requests,
            holds: true,
            run,
            live: HashMap::new(),
            deadline: None,
            deleting: false,
            delete_sent: false,
            last_hash: None,
        };
        if resumed.is_some() {
            self.resume(&mut active, t);
        }
        self.pods
            .insert(uid.clone(), Tracked::Active(Box::new(active)));
        if deleting {
            let grace = termination_grace(&pod);
            if let Some(Tracked::Active(a)) = self.pods.get_mut(&uid) {
                a.deleting = true;
            }
            self.stop_pod(&uid, StopCause::Deletion, grace);
            return;
        }
        self.arm_deadline(&uid, deadline);
        self.advance(&uid);
    }

    /// Picks up a pod a previous run of this kubelet started: scripted containers keep their
    /// start times (and finish when they would have); process containers are lost.
    fn resume(&mut self, a: &mut ActivePod, t: Timestamp) {
        let status = a.pod.status.clone().unwrap_or_default();
        let init_done = a
            .pod
            .status
            .as_ref()
            .is_some_and(|s| s.phase.as_deref() == Some(PHASE_RUNNING))
            || status.init_container_statuses.iter().flatten().all(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .is_some_and(|x| x.exit_code == 0)
            });
        for index in 0..a.run.init.len() {
            if init_done {
                let cref = ContainerRef { init: true, index };
                a.run.container_started(cref, t);
                a.run.container_exited(
                    cref,
                    0,
                    REASON_COMPLETED,
                    None,
                    t,
                    self.cfg.restart_backoff,
                );
            }
        }
        for cs in status.container_statuses.iter().flatten() {
            let Some(index) = a.run.main.iter().position(|c| c.name == cs.name) else {
                continue;
            };
            let cref = ContainerRef { init: false, index };
            let Some(started) = cs
                .state
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .and_then(|r| r.started_at.clone())
            else {
                continue;
            };
            a.run.container_started(cref, started.0);
            if let PodRuntime::Scripted(p) = &a.runtime {
                {
                    let end = started
                        .0
                        .checked_add(jiff::SignedDuration::try_from(p.duration).unwrap_or_default())
                        .unwrap_or(t);
                    self.timer_seq += 1;
                    let key = (instant_of(end), self.timer_seq);
                    self.timers.insert(
                        key,
                        Timer::ScriptedExit {
                            uid: a.run.uid.clone(),
                            cref,
                            run: 0,
                        },
                    );
                    let name = a.run.container(cref).name.clone();
                    let log = self.logs.container(&a.ns, &a.name, &a.run.uid, &name);
                    log.append(&scripted_log_line(p));
                    a.live.insert(cref, Live::Timer(key, log));
                }
            }
        }
        if !matches!(a.runtime, PodRuntime::Scripted(_)) {
            a.run.containers_lost(t);
        }
    }

    fn arm_deadline(&mut self, uid: &str, secs: Option<i64>) {
        let Some(Tracked::Active(a)) = self.pods.get_mut(uid) else {
            return;
        };
        if let Some((_, k)) = a.deadline.take() {
            self.timers.remove(&k);
        }
        let Some(secs) = secs else { return };
        let start = a.run.start_time.unwrap_or_else(now);
        let end = start
            .checked_add(jiff::SignedDuration::from_secs(secs.max(0)))
            .unwrap_or(start);
        self.timer_seq += 1;
        let key = (instant_of(end), self.timer_seq);
        self.timers.insert(key, Timer::Deadline(uid.to_string()));
        a.deadline = Some((secs, key));
    }

    fn deadline_reached(&mut self, uid: &str) {
        let Some(Tracked::Active(a)) = self.pods.get_mut(uid) else {
            return;
        };
        a.deadline = None;
        if a.run.is_finished() {
            return;
        }
        let grace = spec_grace(&a.pod);
        self.stop_pod(uid, StopCause::DeadlineExceeded, grace);
    }

    /// Stops the pod's containers: scripted ones at once (exit 143), processes with SIGTERM and
    /// SIGKILL after `grace`.
    fn stop_pod(&mut self, uid: &str, cause: StopCause, grace: Duration) {
        let t = now();
        let backoff = self.cfg.restart_backoff;
        let Some(Tracked::Active(a)) = self.pods.get_mut(uid) else {
            return;
        };
        a.run.begin_stop(cause, t);
        let crefs: Vec<ContainerRef> = a.live.keys().copied().collect();
        for cref in crefs {
            match a.live.get(&cref) {
                Some(Live::Timer(k, log)) => {
                    self.timers.remove(k);
                    log.append("barge-sim scripted container: stopped by SIGTERM");
                    log.finish();
                    a.live.remove(&cref);
                    a.run
                        .container_exited(cref, EXIT_SIGTERM, REASON_ERROR, None, t, backoff);
                }
                Some(Live::Process(tx)) => {
                    let _ = tx.try_send(Control::Stop { grace });
                }
                None => {}
            }
        }
        self.advance(uid);
    }

    fn on_runtime(&mut self, uid: String, cref: ContainerRef, run: i32, event: RuntimeEvent) {
        let t = now();
        let backoff = self.cfg.restart_backoff;
        let Some(Tracked::Active(a)) = self.pods.get_mut(&uid) else {
            return;
        };
        if cref.index
            >= if cref.init {
                a.run.init.len()
            } else {
                a.run.main.len()
            }
            || a.run.container(cref).restart_count != run
        {
            return;
        }
        match event {
            RuntimeEvent::Started => a.run.container_started(cref, t),
            RuntimeEvent::Waiting { reason, message } => {
                a.run.container_waiting(cref, &reason, Some(message), t)
            }
            RuntimeEvent::NeverStarted => {
                a.live.remove(&cref);
            }
            RuntimeEvent::Exited {
                exit_code,
                reason,
                message,
            } => {
                a.live.remove(&cref);
                if !a.run.container(cref).is_running() {
                    // Failed before it started (StartError): it still ran, briefly.
                    a.run.container_started(cref, t);
                }
                let reason =
                    reason.unwrap_or_else(|| Terminated::reason_for(exit_code, false).to_string());
                let after = a
                    .run
                    .container_exited(cref, exit_code, &reason, message, t, backoff);
                self.after_exit(&uid, cref, after);
            }
        }
        self.advance(&uid);
    }

    fn after_exit(&mut self, uid: &str, cref: ContainerRef, after: AfterExit) {
        if let AfterExit::RestartAfter(d) = after {
            if !d.is_zero() {
                self.at(
                    Instant::now() + d,
                    Timer::Backoff {
                        uid: uid.to_string(),
                        cref,
                    },
                );
            }
        }
    }

    fn scripted_exit(&mut self, uid: &str, cref: ContainerRef, run: i32, key: TimerKey) {
        let t = now();
        let backoff = self.cfg.restart_backoff;
        let Some(Tracked::Active(a)) = self.pods.get_mut(uid) else {
            return;
        };
        if !matches!(a.live.get(&cref), Some(Live::Timer(k, _)) if *k == key)
            || a.run.container(cref).restart_count != run
        {
            return;
        }
        if let Some(Live::Timer(_, log)) = a.live.remove(&cref) {
            log.finish();
        }
        let PodRuntime::Scripted(p) = a.runtime.clone() else {
            return;
        };
        let reason = Terminated::reason_for(p.exit_code, p.oom_killed);
        let after = a
            .run
            .container_exited(cref, p.exit_code, reason, None, t, backoff);
        self.after_exit(uid, cref, after);
        self.advance(uid);
    }

    /// Starts what should run next, releases a finished pod's resources, and asks for a
    /// status write.
    fn advance(&mut self, uid: &str) {
        let Some(Tracked::Active(a)) = self.pods.get(uid) else {
            return;
        };
        let to_start: Vec<ContainerRef> = a
            .run
            .containers_to_start()
            .into_iter()
            .filter(|c| !a.live.contains_key(c))
            .collect();
        for cref in to_start {
            self.start_container(uid, cref);
        }
        let mut finished = false;
        if let Some(Tracked::Active(a)) = self.pods.get_mut(uid) {
            if a.run.is_finished() && a.live.is_empty() && a.holds {
                finished = true;
                if let Some((_, k)) = a.deadline.take() {
                    self.timers.remove(&k);
                }
            }
        }
        if finished {
            bump(&self.stats.pods_finished);
            if let Some(Tracked::Active(mut a)) = self.pods.remove(uid) {
                self.release(&mut a);
                self.pods.insert(uid.to_string(), Tracked::Active(a));
            }
        }
        self.want(WriteKey::PodStatus(uid.to_string()));
    }

    fn start_container(&mut self, uid: &str, cref: ContainerRef) {
        let t = now();
        let backoff = self.cfg.restart_backoff;
        let Some(Tracked::Active(a)) = self.pods.get_mut(uid) else {
            return;
        };
        let run_no = a.run.container(cref).restart_count;
        match a.runtime.clone() {
            PodRuntime::Scripted(p) => {
                a.run.container_started(cref, t);
                self.timer_seq += 1;
                let key = (Instant::now() + p.duration, self.timer_seq);
                self.timers.insert(
                    key,
                    Timer::ScriptedExit {
                        uid: uid.to_string(),
                        cref,
                        run: run_no,
                    },
                );
                let name = a.run.container(cref).name.clone();
                let log = self.logs.container(&a.ns, &a.name, uid, &name);
                log.begin_run();
                log.append(&scripted_log_line(&p));
                a.live.insert(cref, Live::Timer(key, log));
            }
            PodRuntime::Invalid(message) => {
                a.run.container_started(cref, t);
                let after = a.run.container_exited(
                    cref,
                    EXIT_START_ERROR,
                    REASON_START_ERROR,
                    Some(message),
                    t,
                    backoff,
                );
                self.after_exit(uid, cref, after);
            }
            PodRuntime::Process => {
                let (tx, rx) = mpsc::channel(1);
                a.live.insert(cref, Live::Process(tx));
                let container_name = a.run.container(cref).name.clone();
                let node_allocatable = self
                    .nodes
                    .get(&a.node)
                    .map(|n| n.capacity.parsed.clone())
                    .unwrap_or_default();
                let run = ProcessRun {
                    client: self.client.clone(),
                    pod: a.pod.clone(),
                    cref,
                    pod_ip: a.run.pod_ip.clone().unwrap_or_default(),
                    host_ip: a.run.host_ip.clone(),
                    node_allocatable,
                    pod_dir: self.work_dir.join(uid),
                    log: self.logs.container(&a.ns, &a.name, uid, &container_name),
                };
                let inbox = self.inbox.clone();
                let uid = uid.to_string();
                tokio::spawn(process::run_container(run, rx, move |event| {
                    let _ = inbox.send(Input::Runtime {
                        uid: uid.clone(),
                        cref,
                        run: run_no,
                        event,
                    });
                }));
            }
        }
    }

    // ----- binding -----

    fn schedule_bind_pass(&mut self) {
        if self.cfg.bind_unscheduled && !self.bind_pass_scheduled && !self.unbound.is_empty() {
            self.bind_pass_scheduled = true;
            self.at(Instant::now() + Duration::from_millis(10), Timer::BindPass);
        }
    }

    /// First-fit of every unbound pod, oldest first, against Ready nodes' free resources.
    fn bind_pass(&mut self) {
        self.bind_pass_scheduled = false;
        let mut assumed_by_node: HashMap<&str, (Resources, i128)> = HashMap::new();
        for u in self.unbound.values() {
            if let Some((node, req)) = &u.assumed {
                let e = assumed_by_node.entry(node.as_str()).or_default();
                add_into(&mut e.0, req);
                e.1 += 1;
            }
        }
        let mut candidates: Vec<Candidate> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.ready && !n.killed)
            .map(|(name, n)| {
                let mut free = n.capacity.parsed.clone();
                sub_from(&mut free, &n.used);
                let mut pods =
                    n.capacity.parsed.get(RESOURCE_PODS).copied().unwrap_or(0) / 1000 - n.pods_used;
                if let Some((r, c)) = assumed_by_node.get(name.as_str()) {
                    sub_from(&mut free, r);
                    pods -= c;
                }
                Candidate {
                    name: name.clone(),
                    labels: n.labels.clone(),
                    taints: n.taints.clone(),
                    unschedulable: n.unschedulable,
                    free,
                    free_pods: pods,
                }
            })
            .collect();
        let mut order: Vec<(&String, &UnboundPod)> = self
            .unbound
            .iter()
            .filter(|(_, u)| u.assumed.is_none())
            .collect();
        order.sort_by_key(|(_, u)| creation_key(&u.pod));
        let order: Vec<String> = order.into_iter().map(|(k, _)| k.clone()).collect();
        for uid in order {
            let Some(u) = self.unbound.get_mut(&uid) else {
                continue;
            };
            let outcome = match (&u.requests, u.pod.spec.as_ref()) {
                (Ok(req), Some(spec)) => match first_fit(spec, req, &candidates) {
                    Ok(c) => Ok((c.name.clone(), req.clone())),
                    Err(m) => Err(m),
                },
                (Err(e), _) => Err(e.clone()),
                (_, None) => Err("pod has no spec".to_string()),
            };
            match outcome {
                Ok((node, req)) => {
                    if let Some(c) = candidates.iter_mut().find(|c| c.name == node) {
                        sub_from(&mut c.free, &req);
                        c.free_pods -= 1;
                    }
                    u.assumed = Some((node, req));
                    self.want(WriteKey::Bind(uid));
                }
                Err(message) => {
                    if u.last_message.as_deref() != Some(&message) {
                        u.last_message = Some(message);
                        self.want(WriteKey::Unschedulable(uid));
                    }
                }
            }
        }
    }
}
