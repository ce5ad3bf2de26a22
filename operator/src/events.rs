//! Kubernetes Events (`events.k8s.io/v1`): on the job state changes `--job-events` asks for
//! ([`JobEvents`]: by default only failures and retries; every change, as AWS Batch's
//! EventBridge job state change events, with `all`), and on compute environment scaling and
//! configuration problems.
//!
//! Data flow: a controller calls [`EventPublisher::publish`] (never blocks, never fails) → a
//! bounded queue → a background task creating the Events with a few requests in flight. When
//! the queue is full the event is dropped and counted (`barge_events_dropped_total`): a burst of
//! 10,000 state changes must not slow reconciles down. An Event is best effort, as in
//! client-go's recorder.
//!
//! Why not kube's `Recorder`: it keeps every event of the last six minutes in a map and scans the
//! whole map under a write lock on every publish (quadratic in a burst of job transitions), and
//! its series aggregation buys nothing here: a state change of a given job is announced once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::mpsc;
use tracing::debug;

use barge_core::state::JobState;

use crate::metrics::Metrics;

/// Name of the controller in the events' `reportingController`.
pub const REPORTING_CONTROLLER: &str = "batch.barge.dev/barge-operator";
/// Namespace of the events of cluster-scoped objects (as kube's Recorder and client-go do).
pub const CLUSTER_EVENTS_NAMESPACE: &str = "default";
/// Longest `note` the API accepts (1 kB).
const MAX_NOTE_BYTES: usize = 1024;
/// Event reason (on a job): a multi-node job's gang was placed — its main node's pod created,
/// a Kubernetes node reserved for each of the other nodes.
pub const REASON_GANG_PLACED: &str = "GangPlaced";
/// Event action of [`REASON_GANG_PLACED`].
pub const ACTION_PLACE_GANG: &str = "PlaceGang";
/// Event reason (on a job): the main node of a multi-node job's attempt runs, and the pods of
/// its other nodes were created.
pub const REASON_NODES_STARTED: &str = "NodesStarted";
/// Event action of [`REASON_NODES_STARTED`] (and of a refused create of one of those pods).
pub const ACTION_CREATE_NODE_PODS: &str = "CreateNodePods";
/// Events waiting to be written before new ones are dropped.
pub const DEFAULT_QUEUE_CAPACITY: usize = 20_000;
/// Event creations in flight (a burst of job state changes — four per job — must not wait
/// behind the status writes of the same burst until the queue overflows).
const CONCURRENCY: usize = 32;

/// Severity of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Which job state changes are announced as Events (`--job-events`).
///
/// Every Event is an object the API server stores (in etcd, for an hour by default) and a
/// write of the operator's: one per state change costs four or five writes per job, more than
/// the pod and status writes together, and 40,000 objects for a burst of 10,000 jobs. The
/// status (state, reason, every attempt) and the `barge_job_transitions_total` counter say
/// what a normal transition would; an Event is worth its cost where someone must look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum JobEvents {
    /// An Event per state change, as AWS Batch's EventBridge job state change events (4–5 per
    /// job).
    All,
    /// One Event per finished job (Succeeded or Failed), and a Warning per retried attempt.
    Finished,
    /// Warning Events only: a job that failed, an attempt that failed and is retried. Normal
    /// transitions are in the status, the metrics and the watch.
    #[default]
    Failures,
    /// No job state change Events (refusals and gang placement are still announced).
    None,
}

impl JobEvents {
    /// The type of the Event announcing a job's change from `from` to `to`, or None when this
    /// policy announces none. A failed job and a retry (back to RUNNABLE from an attempt that
    /// had started) are Warnings under every policy that announces them.
    pub fn announce(self, from: JobState, to: JobState) -> Option<EventType> {
        let retry =
            to == JobState::Runnable && matches!(from, JobState::Starting | JobState::Running);
        let type_ = if to == JobState::Failed || retry {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let announced = match self {
            JobEvents::All => true,
            JobEvents::Finished => to.is_terminal() || retry,
            JobEvents::Failures => type_ == EventType::Warning,
            JobEvents::None => false,
        };
        announced.then_some(type_)
    }
}

/// One event to publish about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    pub type_: EventType,
    /// CamelCase, e.g. `Running`, `ScaledOut`.
    pub reason: String,
    /// CamelCase action taken, e.g. `StateChange`.
    pub action: String,
    /// Human-readable explanation.
    pub note: String,
}

impl EventSpec {
    pub fn normal(reason: &str, action: &str, note: impl Into<String>) -> Self {
        Self {
            type_: EventType::Normal,
            reason: reason.into(),
            action: action.into(),
            note: note.into(),
        }
    }

    pub fn warning(reason: &str, action: &str, note: impl Into<String>) -> Self {
        Self {
            type_: EventType::Warning,
            reason: reason.into(),
            action: action.into(),
            note: note.into(),
        }
    }
}

struct Queued {
    regarding: ObjectReference,
    spec: EventSpec,
    at: Timestamp,
}

/// Publishes events in the background (cheap to clone).
#[derive(Clone)]
pub struct EventPublisher {
    tx: mpsc::Sender<Queued>,
    metrics: Arc<Metrics>,
}

/// The reference an event makes to its object.
pub fn object_reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    obj.object_ref(&())
}

impl EventPublisher {
    /// Starts the writer task; events are created by `client` with `instance` as the reporting
    /// instance. The task ends when every publisher is dropped.
    pub fn start(
        client: Client,
        instance: &str,
        metrics: Arc<Metrics>,
        capacity: usize,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<Queued>(capacity.max(1));
        let instance = instance.to_string();
        let counter = Arc::new(AtomicU64::new(0));
        let task_metrics = metrics.clone();
        let handle = tokio::spawn(async move {
            let queue =
                futures::stream::unfold(
                    rx,
                    |mut rx| async move { rx.recv().await.map(|q| (q, rx)) },
                );
            queue
                .for_each_concurrent(CONCURRENCY, |queued| {
                    let client = client.clone();
                    let instance = instance.clone();
                    let sequence = counter.fetch_add(1, Ordering::Relaxed);
                    let metrics = task_metrics.clone();
                    async move {
                        let event = render_event(&queued, &instance, sequence);
                        let namespace = event.namespace().unwrap_or_else(|| CLUSTER_EVENTS_NAMESPACE.to_string());
                        let api: Api<KubeEvent> = Api::namespaced(client, &namespace);
                        match api.create(&PostParams::default(), &event).await {
                            Ok(_) => {
                                metrics.events_published.inc();
                            }
                            Err(err) => {
                                metrics.events_failed.inc();
                                debug!(error = %err, reason = %queued.spec.reason, "event not written");
                            }
                        }
                    }
                })
                .await;
        });
        (Self { tx, metrics }, handle)
    }

    /// Queues an event about `obj`; drops it (counted) when the queue is full.
    pub fn publish<K: Resource<DynamicType = ()>>(&self, obj: &K, spec: EventSpec) {
        self.publish_to(object_reference(obj), spec);
    }

    /// Queues an event about the object `regarding`.
    pub fn publish_to(&self, regarding: ObjectReference, spec: EventSpec) {
        let queued = Queued {
            regarding,
            spec,
            at: Timestamp::now(),
        };
        if self.tx.try_send(queued).is_err() {
            self.metrics.events_dropped.inc();
        }
    }
}

/// The Event object for a queued event (pure; `sequence` keeps names unique).
fn render_event(queued: &Queued, instance: &str, sequence: u64) -> KubeEvent {
    let regarding = &queued.regarding;
    let name = regarding.name.as_deref().unwrap_or("barge");
    let namespace = regarding
        .namespace
        .clone()
        .unwrap_or_else(|| CLUSTER_EVENTS_NAMESPACE.to_string());
    KubeEvent {
        metadata: ObjectMeta {
            name: Some(format!(
                "{name}.{:x}{:04x}",
                queued.at.as_nanosecond(),
                sequence & 0xffff
            )),
            namespace: Some(namespace),
            ..Default::default()
        },
        action: Some(queued.spec.action.clone()),
        reason: Some(queued.spec.reason.clone()),
        note: Some(truncate(&queued.spec.note, MAX_NOTE_BYTES)),
        type_: Some(queued.spec.type_.as_str().to_string()),
        event_time: Some(MicroTime(queued.at)),
        regarding: Some(regarding.clone()),
        reporting_controller: Some(REPORTING_CONTROLLER.to_string()),
        reporting_instance: Some(instance.to_string()),
        ..Default::default()
    }
}

/// "1 node", "4 nodes": a count and its noun, for notes.
pub fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_english() {
        assert_eq!(counted(1, "node"), "1 node");
        assert_eq!(counted(0, "node"), "0 nodes");
        assert_eq!(counted(8, "node"), "8 nodes");
    }

    fn queued(namespace: Option<&str>, note: &str) -> Queued {
        Queued {
            regarding: ObjectReference {
                api_version: Some("batch.barge.dev/v1alpha1".into()),
                kind: Some("Job".into()),
                name: Some("j".into()),
                namespace: namespace.map(str::to_string),
                uid: Some("u".into()),
                ..Default::default()
            },
            spec: EventSpec::normal("Running", "StateChange", note),
            at: Timestamp::from_second(1_700_000_000).expect("ts"),
        }
    }

    #[test]
    fn events_name_their_object_and_reporter() {
        let e = render_event(&queued(Some("team"), "job j is RUNNING"), "pod-0", 7);
        assert_eq!(e.metadata.namespace.as_deref(), Some("team"));
        assert!(e.metadata.name.as_deref().expect("name").starts_with("j."));
        assert_eq!(
            e.reporting_controller.as_deref(),
            Some(REPORTING_CONTROLLER)
        );
        assert_eq!(e.reporting_instance.as_deref(), Some("pod-0"));
        assert_eq!(e.type_.as_deref(), Some("Normal"));
        assert_eq!(
            e.regarding.as_ref().and_then(|r| r.kind.as_deref()),
            Some("Job")
        );
        let other = render_event(&queued(Some("team"), "x"), "pod-0", 8);
        assert_ne!(
            e.metadata.name, other.metadata.name,
            "same instant, distinct names"
        );
    }

    #[test]
    fn cluster_scoped_objects_report_in_default_and_notes_are_bounded() {
        let e = render_event(&queued(None, &"é".repeat(1000)), "i", 0);
        assert_eq!(
            e.metadata.namespace.as_deref(),
            Some(CLUSTER_EVENTS_NAMESPACE)
        );
        assert!(e.note.expect("note").len() <= MAX_NOTE_BYTES);
    }

    #[test]
    fn job_events_follow_the_policy() {
        use JobState::*;
        let changes = [
            (Submitted, Runnable),
            (Runnable, Starting),
            (Starting, Running),
            (Running, Succeeded),
            (Running, Runnable),
            (Starting, Runnable),
            (Running, Failed),
            (Pending, Failed),
            (Submitted, Pending),
        ];
        let announced = |policy: JobEvents| -> Vec<(JobState, JobState, EventType)> {
            changes
                .iter()
                .filter_map(|&(from, to)| policy.announce(from, to).map(|t| (from, to, t)))
                .collect()
        };
        let all = announced(JobEvents::All);
        assert_eq!(all.len(), changes.len(), "all: every change");
        assert_eq!(
            all.iter().filter(|c| c.2 == EventType::Warning).count(),
            4,
            "retries and failures are Warnings: {all:?}"
        );
        assert_eq!(
            announced(JobEvents::Finished),
            vec![
                (Running, Succeeded, EventType::Normal),
                (Running, Runnable, EventType::Warning),
                (Starting, Runnable, EventType::Warning),
                (Running, Failed, EventType::Warning),
                (Pending, Failed, EventType::Warning),
            ]
        );
        assert_eq!(
            announced(JobEvents::Failures),
            vec![
                (Running, Runnable, EventType::Warning),
                (Starting, Runnable, EventType::Warning),
                (Running, Failed, EventType::Warning),
                (Pending, Failed, EventType::Warning),
            ]
        );
        assert!(announced(JobEvents::None).is_empty());
        assert_eq!(JobEvents::default(), JobEvents::Failures);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let metrics = Arc::new(Metrics::new());
        let (tx, _rx) = mpsc::channel(1);
        let publisher = EventPublisher {
            tx,
            metrics: metrics.clone(),
        };
        publisher.publish_to(
            queued(None, "a").regarding,
            EventSpec::normal("A", "Test", "a"),
        );
        publisher.publish_to(
            queued(None, "b").regarding,
            EventSpec::normal("B", "Test", "b"),
        );
        assert_eq!(metrics.events_dropped.get(), 1);
    }
}
