//! The operator's caches: one watch per kind, feeding a reflector store, secondary indexes and
//! the shared trigger streams of the controllers — so nothing in a hot path ever GETs.
//!
//! Data flow, per kind: `watcher(Api<K>)` → [`Sink`], which for every watcher event, in this
//! order, strips what nobody reads (managedFields, the last-applied annotation of client-side
//! `kubectl apply`; a node's image list), then
//! 1. applies it to the kind's store ([`Backing`]): kube's reflector `Writer` (readers hold the
//!    [`Store`]), or for jobs Barge's own [`JobStore`] (same semantics; keyed by the record's
//!    interned `namespace/name` instead of kube's `ObjectRef` with its own copies of the name,
//!    namespace, uid and resourceVersion),
//! 2. applies it to the kind's [`Index`]es (same protocol: Init/InitApply/InitDone swap),
//! 3. broadcasts the object to every subscriber of the kind's [`Feed`] — including objects that
//!    were deleted, and after a relist every object (and those that vanished while the watch was
//!    down), so a controller never misses a change.
//!
//! Controllers are driven from the feeds: the job controller through its gate and runner
//! (`controllers::gate`, `controllers::runner`), the others with kube's shared-stream API
//! (`watches_shared_stream`, `owns_shared_stream`). The feed is Barge's own rather than
//! `Writer::subscribe`: kube's `ReflectHandle` never yields deletions and returns `Pending`
//! without a waker when an object is deleted between broadcast and poll; ours yields every event,
//! cannot stall the watch (unbounded per-subscriber channels; the controllers' schedulers
//! de-duplicate), and a late subscriber (a replica that becomes leader after start-up) first
//! receives every cached object.
//!
//! Barge's own kinds are watched through kube's `DeserializeGuard`: an object that does not
//! match the API types is logged and left out rather than failing the list (Stackable style).
//!
//! Pods are watched once, cluster-wide: every pod feeds the compact [`NodeUsage`] (requests of
//! all non-terminal pods bound to nodes, Barge's or not: what the scheduler subtracts from a
//! node's allocatable; and which nodes Barge's pods occupy, or multi-node gangs hold), and only Barge's pods (`app.kubernetes.io/managed-by=barge`) go into
//! the pod store, its index by job uid, and the pod feed. ControllerRevisions are watched with
//! the same label. Pods and nodes are decoded without their managedFields (a node also without
//! its image list) rather than decoded and then stripped ([`decode`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Container, Namespace, Node, Pod};
use kube::api::{Api, ListParams};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use barge_core::resources::Resources;
use barge_crds::consts::{
    ANNOTATION_GANG_NODES, ANNOTATION_SHARE_IDENTIFIER, FINALIZER_ATTEMPT_RESULT,
    LABEL_COMPUTE_ENVIRONMENT, LABEL_JOB_DEFINITION, LABEL_JOB_QUEUE, LABEL_JOB_UID,
    LABEL_MANAGED_BY, LABEL_NODE_INDEX, MANAGED_BY_BARGE,
};
use barge_crds::job::JobStatus;
use barge_crds::{ComputeEnvironment, Job, JobDefinition, JobQueue, SchedulingPolicy};

use crate::index::Index;

pub mod decode;

pub use decode::Shared;
use decode::{shared, Prunable, Pruned};

/// A cached pod: the pod store holds them without copying each pod it is handed
/// ([`Shared`]); a reader derefs to the `Pod`.
pub type CachedPod = Shared<Pod>;

mod job_record;
pub use job_record::{intern, JobRecord};
mod job_store;
pub use job_store::{JobStore, JobStoreWriter};

/// Something that consumes the watcher events of kind `K` (an [`Index`], the [`NodeUsage`]).
pub trait EventSink<K>: Send + Sync {
    fn apply(&self, event: &watcher::Event<K>);

    /// Whether [`EventSink::apply_after`] needs the object's cached version before the event.
    fn needs_previous(&self) -> bool {
        false
    }

    /// Applies `event` given the object's cached version before it (None: not cached, or not
    /// looked up because no sink of the kind [`EventSink::needs_previous`]).
    fn apply_after(&self, event: &watcher::Event<K>, previous: Option<&K>) {
        let _ = previous;
        self.apply(event)
    }
}

impl<K: Resource + Send + Sync, Key: Eq + std::hash::Hash + Clone + Send + Sync> EventSink<K>
    for Index<K, Key>
{
    fn apply(&self, event: &watcher::Event<K>) {
        Index::apply(self, event)
    }

    fn needs_previous(&self) -> bool {
        Index::needs_previous(self)
    }

    fn apply_after(&self, event: &watcher::Event<K>, previous: Option<&K>) {
        Index::apply_after(self, event, previous)
    }
}

// ---------------------------------------------------------------------------------------------
// Feeds: the shared trigger streams
// ---------------------------------------------------------------------------------------------

/// Fans the objects of one kind out to the controllers that subscribed to them.
pub struct Feed<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static> {
    /// Every object of the kind the store holds now.
    cached: Box<dyn Fn() -> Vec<Arc<K>> + Send + Sync>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Arc<K>>>>,
    /// Events applied so far (see [`Feed::changes`]).
    changes: std::sync::atomic::AtomicU64,
}

impl<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static> Feed<K> {
    fn new(cached: Box<dyn Fn() -> Vec<Arc<K>> + Send + Sync>) -> Self {
        Self {
            cached,
            subscribers: Mutex::new(Vec::new()),
            changes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many events of the kind were applied, counted once each has reached the store, its
    /// indexes and the raw sinks (the pod usage): a reader that sees the count unchanged since
    /// it last read the kind has missed no change (the scheduler's idle passes rest on it).
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Acquire)
    }

    fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// A stream of every object of the kind that changes from now on (deleted ones included),
    /// starting with every object already cached. It ends when the caches stop.
    pub fn subscribe(&self) -> impl Stream<Item = Arc<K>> + Send + 'static + use<K> {
        let (tx, rx) = mpsc::unbounded();
        let mut subscribers = lock(&self.subscribers);
        // Seed under the lock: a concurrent broadcast either reaches us through the channel or
        // is already in the store we copy, so nothing falls between the two (duplicates are
        // harmless to a controller).
        for obj in (self.cached)() {
            let _ = tx.unbounded_send(obj);
        }
        subscribers.push(tx);
        rx
    }

    fn broadcast(&self, obj: Arc<K>) {
        let mut subscribers = lock(&self.subscribers);
        subscribers.retain(|tx| tx.unbounded_send(obj.clone()).is_ok());
    }

    /// Number of live subscribers (closed ones are dropped at the next broadcast).
    pub fn subscriber_count(&self) -> usize {
        lock(&self.subscribers).len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section above completes its mutation; a poisoned lock still holds
    // consistent data.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Sink: writer + indexes + feed for one kind
// ---------------------------------------------------------------------------------------------

/// The store a [`Sink`] fills: kube's reflector store ([`Reflector`]) for every kind but jobs,
/// Barge's own [`JobStore`] for jobs. Both apply watcher events with kube's `Writer` semantics.
pub trait Backing<K>: Send + Sync + 'static {
    /// The cached version of the object `like` names (by namespace and name).
    fn get(&self, like: &K) -> Option<Arc<K>>;
    /// Every cached object.
    fn state(&self) -> Vec<Arc<K>>;
    /// Applies one watcher event.
    fn apply_watcher_event(&mut self, event: &watcher::Event<K>);
    /// A reader of every cached object, for the kind's [`Feed`].
    fn reader(&self) -> Box<dyn Fn() -> Vec<Arc<K>> + Send + Sync>;
}

/// kube's reflector store and its writer.
pub struct Reflector<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static> {
    writer: reflector::store::Writer<K>,
    store: Store<K>,
}

impl<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static> Backing<K> for Reflector<K> {
    fn get(&self, like: &K) -> Option<Arc<K>> {
        self.store.get(&ObjectRef::from_obj(like))
    }

    fn state(&self) -> Vec<Arc<K>> {
        self.store.state()
    }

    fn apply_watcher_event(&mut self, event: &watcher::Event<K>) {
        self.writer.apply_watcher_event(event)
    }

    fn reader(&self) -> Box<dyn Fn() -> Vec<Arc<K>> + Send + Sync> {
        let store = self.store.clone();
        Box::new(move || store.state())
    }
}

impl Backing<JobRecord> for JobStoreWriter {
    fn get(&self, like: &JobRecord) -> Option<Arc<JobRecord>> {
        self.store().get_id(like.id())
    }

    fn state(&self) -> Vec<Arc<JobRecord>> {
        self.store().state()
    }

    fn apply_watcher_event(&mut self, event: &watcher::Event<JobRecord>) {
        JobStoreWriter::apply_watcher_event(self, event)
    }

    fn reader(&self) -> Box<dyn Fn() -> Vec<Arc<JobRecord>> + Send + Sync> {
        let store = self.store();
        Box::new(move || store.state())
    }
}

/// The jobs' sink: Barge's own [`JobStore`].
pub type JobSink = Sink<JobRecord, JobStoreWriter>;

/// Applies the watcher events of one kind to its store, indexes and feed.
pub struct Sink<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static, B = Reflector<K>> {
    backing: B,
    indexes: Vec<Arc<dyn EventSink<K>>>,
    /// Sinks that see every object, before `keep` filters (the pod usage).
    raw_sinks: Vec<Arc<dyn EventSink<K>>>,
    feed: Arc<Feed<K>>,
    /// Objects that belong in the store; others are treated as absent.
    keep: fn(&K) -> bool,
    /// Drops what no Barge component reads, before anything sees the object.
    trim: fn(&mut K),
    /// Held for writing while one event goes into the raw sinks, the store and the indexes,
    /// so that a reader holding it for reading sees them agree (see [`Caches::pod_updates`]).
    guard: Option<Arc<RwLock<()>>>,
}

/// Client-side `kubectl apply` keeps the whole object it applied in this annotation (up to
/// 256 KiB): nothing in Barge reads it from the caches.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn strip_last_applied(meta: &mut kube::api::ObjectMeta) {
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

fn keep_all<K>(_: &K) -> bool {
    true
}

fn trim_nothing<K>(_: &mut K) {}

/// A node's image list (often hundreds of entries on real nodes) is of no use to Barge.
fn trim_node(node: &mut Node) {
    if let Some(status) = node.status.as_mut() {
        status.images = None;
    }
}

impl<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static> Sink<K> {
    fn new() -> Self {
        let (store, writer) = reflector::store();
        Self::with_backing(Reflector { writer, store })
    }

    pub fn store(&self) -> Store<K> {
        self.backing.store.clone()
    }
}

impl JobSink {
    fn jobs() -> Self {
        let (_, writer) = JobStore::new();
        Self::with_backing(writer)
    }

    pub fn store(&self) -> JobStore {
        self.backing.store()
    }
}

impl<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static, B: Backing<K>> Sink<K, B> {
    fn with_backing(backing: B) -> Self {
        let feed = Arc::new(Feed::new(backing.reader()));
        Self {
            backing,
            indexes: Vec::new(),
            raw_sinks: Vec::new(),
            feed,
            keep: keep_all,
            trim: trim_nothing,
            guard: None,
        }
    }

    fn guard(mut self, guard: Arc<RwLock<()>>) -> Self {
        self.guard = Some(guard);
        self
    }

    fn trim(mut self, trim: fn(&mut K)) -> Self {
        self.trim = trim;
        self
    }

    fn index(mut self, index: Arc<dyn EventSink<K>>) -> Self {
        self.indexes.push(index);
        self
    }

    fn raw(mut self, sink: Arc<dyn EventSink<K>>) -> Self {
        self.raw_sinks.push(sink);
        self
    }

    fn filter(mut self, keep: fn(&K) -> bool) -> Self {
        self.keep = keep;
        self
    }

    /// Applies one event everywhere (see the module docs for the order).
    pub fn apply(&mut self, mut event: watcher::Event<K>) {
        if let watcher::Event::Apply(obj)
        | watcher::Event::Delete(obj)
        | watcher::Event::InitApply(obj) = &mut event
        {
            obj.managed_fields_mut().clear();
            strip_last_applied(obj.meta_mut());
            (self.trim)(obj);
        }
        let guard = self.guard.clone();
        let applying = guard
            .as_ref()
            .map(|g| g.write().unwrap_or_else(|e| e.into_inner()));
        for sink in &self.raw_sinks {
            sink.apply(&event);
        }
        let Some(event) = self.filtered(event) else {
            drop(applying);
            self.feed.changed();
            return;
        };
        let vanished = match &event {
            // Objects cached now but absent from the fresh list were deleted while the watch
            // was down: tell the subscribers once the new list is in.
            watcher::Event::InitDone => Some(self.backing.state()),
            _ => None,
        };
        // The version the store (and so every index) holds before this event, for the indexes
        // that keep no keys of their own (`Index::from_previous`).
        let previous = match &event {
            watcher::Event::Apply(obj) | watcher::Event::Delete(obj)
                if self.indexes.iter().any(|i| i.needs_previous()) =>
            {
                self.backing.get(obj)
            }
            _ => None,
        };
        self.backing.apply_watcher_event(&event);
        for index in &self.indexes {
            index.apply_after(&event, previous.as_deref());
        }
        drop(applying);
        self.feed.changed();
        match event {
            watcher::Event::Apply(obj) => {
                let cached = self.backing.get(&obj);
                self.feed.broadcast(cached.unwrap_or_else(|| Arc::new(obj)));
            }
            watcher::Event::Delete(obj) => self.feed.broadcast(Arc::new(obj)),
            watcher::Event::InitDone => {
                let now = self.backing.state();
                // Stores key by namespace and name (kube's `ObjectRef` ignores uid and version).
                for obj in vanished.unwrap_or_default() {
                    if self.backing.get(&obj).is_none() {
                        self.feed.broadcast(obj);
                    }
                }
                for obj in now {
                    self.feed.broadcast(obj);
                }
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }

    /// The event as the store should see it: objects that do not belong are left out, and one
    /// that stops belonging is deleted.
    fn filtered(&self, event: watcher::Event<K>) -> Option<watcher::Event<K>> {
        match event {
            watcher::Event::Apply(obj) if !(self.keep)(&obj) => {
                let cached = self.backing.get(&obj).is_some();
                cached.then_some(watcher::Event::Delete(obj))
            }
            watcher::Event::InitApply(obj) if !(self.keep)(&obj) => None,
            watcher::Event::Delete(obj) if !(self.keep)(&obj) => {
                let cached = self.backing.get(&obj).is_some();
                cached.then_some(watcher::Event::Delete(obj))
            }
            other => Some(other),
        }
    }

    pub fn feed(&self) -> Arc<Feed<K>> {
        self.feed.clone()
    }
}

/// Runs the watch of one kind into its sink until the process stops. Watch errors are logged
/// and retried with kube's default backoff.
async fn run_watch<K>(api: Api<K>, config: watcher::Config, sink: Sink<K>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    run_converted_watch(api, config, sink, Some).await
}

/// Runs the watch of one kind decoded without what Barge never reads ([`decode::Pruned`]: a
/// pod's managedFields are not decoded only to be cleared by the sink), into its sink.
async fn run_pruned_watch<K>(client: Client, config: watcher::Config, sink: Sink<K>)
where
    K: Resource<DynamicType = ()>
        + Prunable
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    run_converted_watch(Api::<Pruned<K>>::all(client), config, sink, |event| {
        Some(unpruned(event))
    })
    .await
}

/// Runs a watch of `W` into the sink of `K`, each event converted (`None`: left out), until the
/// process stops. Watch errors are logged and retried with kube's default backoff.
async fn run_converted_watch<W, K>(
    api: Api<W>,
    config: watcher::Config,
    mut sink: Sink<K>,
    mut convert: impl FnMut(watcher::Event<W>) -> Option<watcher::Event<K>>,
) where
    W: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let kind = K::kind(&());
    let stream = watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                if let Some(event) = convert(event) {
                    sink.apply(event);
                }
            }
            Err(err) => warn!(%kind, error = %err, "watch failed; retrying"),
        }
    }
    debug!(%kind, "watch ended");
}

/// The event with the decoded object itself.
fn unpruned<K>(event: watcher::Event<Pruned<K>>) -> watcher::Event<K> {
    match event {
        watcher::Event::Apply(p) => watcher::Event::Apply(p.0),
        watcher::Event::Delete(p) => watcher::Event::Delete(p.0),
        watcher::Event::InitApply(p) => watcher::Event::InitApply(p.0),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// Runs the watch of one of Barge's own kinds through kube's `DeserializeGuard`: an object that
/// does not match Barge's API types (stored before a schema change, or by a client that
/// bypassed validation) is reported and left out instead of failing the whole list — one bad
/// object cannot stall every controller.
async fn run_guarded_watch<K>(api: Api<DeserializeGuard<K>>, config: watcher::Config, sink: Sink<K>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let kind = K::kind(&());
    run_converted_watch(api, config, sink, move |event| unguard(event, &kind)).await
}

/// The field selector of the jobs that are not finished: the Job CRD declares `.status.status`
/// a selectable field (Kubernetes ≥ 1.31); a job without a status yet selects as "".
pub const UNFINISHED_JOBS: &str = "status.status!=SUCCEEDED,status.status!=FAILED";

/// The watch of Barge Jobs, in two steps so that a restart with a long finished history
/// schedules before that history is listed and decoded:
/// 1. a paginated list of the unfinished jobs only ([`UNFINISHED_JOBS`]), fed to the sink as a
///    complete list — the jobs store becomes ready holding them;
/// 2. the list and watch of every job, as for every other kind: its list replaces the store's
///    content, after which `complete` turns true ([`Caches::all_jobs_listed`]).
///
/// Until then a job missing from the store may be a finished one: the job controller judges no
/// dependency on a missing job, and no pod is released as an orphan. Between the two lists the
/// store shows the first list's state (as during any relist of a watch). A cluster that refuses
/// the selector (Kubernetes before 1.31, or a Job CRD installed without the selectable field)
/// goes straight to step 2. Nothing is written to any job for this.
async fn run_jobs_watch(
    api: Api<DeserializeGuard<JobRecord>>,
    config: watcher::Config,
    mut sink: JobSink,
    complete: tokio::sync::watch::Sender<bool>,
) {
    let kind = Job::kind(&());
    let started = std::time::Instant::now();
    match list_unfinished_jobs(&api, config.page_size, &mut sink).await {
        Ok(n) => info!(
            jobs = n,
            seconds = started.elapsed().as_secs_f64(),
            "unfinished jobs listed; listing every job"
        ),
        Err(err) => {
            info!(error = %err, "the unfinished jobs could not be listed alone; listing every job")
        }
    }
    let stream = watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                let listed = matches!(event, watcher::Event::InitDone);
                if let Some(event) = unguard(event, &kind) {
                    sink.apply(event);
                }
                if listed && !*complete.borrow() {
                    info!(
                        seconds = started.elapsed().as_secs_f64(),
                        "every job listed"
                    );
                    complete.send_replace(true);
                }
            }
            Err(err) => warn!(%kind, error = %err, "watch failed; retrying"),
        }
    }
    debug!(%kind, "watch ended");
}

/// Step 1 of [`run_jobs_watch`]: lists the unfinished jobs page by page into `sink` as one
/// complete list (`Init`, `InitApply`…, `InitDone`); the number listed. On an error the
/// list is left unfinished in the sink (the next list starts with its own `Init`).
async fn list_unfinished_jobs(
    api: &Api<DeserializeGuard<JobRecord>>,
    page_size: Option<u32>,
    sink: &mut JobSink,
) -> Result<usize, kube::Error> {
    let kind = Job::kind(&());
    let mut params = ListParams::default().fields(UNFINISHED_JOBS);
    params.limit = page_size;
    let mut listed = 0;
    let mut started = false;
    loop {
        let page = api.list(&params).await?;
        if !started {
            sink.apply(watcher::Event::Init);
            started = true;
        }
        for job in page.items {
            if let Some(event) = unguard(watcher::Event::InitApply(job), &kind) {
                listed += 1;
                sink.apply(event);
            }
        }
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params.continue_token = Some(token),
            None => break,
        }
    }
    sink.apply(watcher::Event::InitDone);
    Ok(listed)
}

/// The event without its guard; `None` for an object that failed to deserialize (logged). A
/// malformed version of a cached object leaves the last good version in the cache.
fn unguard<K: Resource>(
    event: watcher::Event<DeserializeGuard<K>>,
    kind: &str,
) -> Option<watcher::Event<K>> {
    let take = |guard: DeserializeGuard<K>| match guard.0 {
        Ok(obj) => Some(obj),
        Err(invalid) => {
            let name = invalid.metadata.name.as_deref().unwrap_or_default();
            let namespace = invalid.metadata.namespace.as_deref().unwrap_or_default();
            warn!(%kind, %namespace, %name, error = %invalid.error, "ignoring an object that does not match Barge's API types");
            None
        }
    };
    match event {
        watcher::Event::Apply(g) => take(g).map(watcher::Event::Apply),
        watcher::Event::Delete(g) => take(g).map(watcher::Event::Delete),
        watcher::Event::InitApply(g) => take(g).map(watcher::Event::InitApply),
        watcher::Event::Init => Some(watcher::Event::Init),
        watcher::Event::InitDone => Some(watcher::Event::InitDone),
    }
}

// ---------------------------------------------------------------------------------------------
// Node usage: requests of every non-terminal pod bound to a node
// ---------------------------------------------------------------------------------------------

/// What one pod asks of its node (Kubernetes' effective pod request: the larger of the sum of
/// its containers and its largest init container, plus restartable init containers and the
/// pod overhead).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodRequests {
    pub milli_cpu: i64,
    pub memory_mib: i64,
    /// Extended resources (GPUs...) by resource name; usually empty.
    pub extended: Vec<(String, i64)>,
}

impl PodRequests {
    fn add(&mut self, other: &PodRequests) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory_mib = self.memory_mib.saturating_add(other.memory_mib);
        for (name, value) in &other.extended {
            match self.extended.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => *v = v.saturating_add(*value),
                None => self.extended.push((name.clone(), *value)),
            }
        }
    }

    fn max_with(&mut self, other: &PodRequests) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory_mib = self.memory_mib.max(other.memory_mib);
        for (name, value) in &other.extended {
            match self.extended.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => *v = (*v).max(*value),
                None => self.extended.push((name.clone(), *value)),
            }
        }
    }

    fn from_map(
        map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    ) -> PodRequests {
        let mut out = PodRequests::default();
        for (name, quantity) in map.into_iter().flatten() {
            let parsed = match name.as_str() {
                "cpu" => barge_core::quantity::cpu_millis(&quantity.0).map(|v| out.milli_cpu = v),
                "memory" => {
                    barge_core::quantity::memory_mib(&quantity.0).map(|v| out.memory_mib = v)
                }
                // Only extended resources (a domain-qualified name) are tracked besides cpu and
                // memory: ephemeral-storage and hugepages do not take part in placement.
                n if n.contains('/') => barge_core::quantity::count(&quantity.0)
                    .map(|v| out.extended.push((name.clone(), v))),
                _ => Ok(()),
            };
            if let Err(err) = parsed {
                debug!(resource = %name, error = %err, "unreadable quantity counted as zero");
            }
        }
        out
    }

    fn of_container(container: &Container) -> PodRequests {
        let resources = container.resources.as_ref();
        let requests = PodRequests::from_map(resources.and_then(|r| r.requests.as_ref()));
        // A limit without a request means request = limit (as API server defaulting does).
        let limits = PodRequests::from_map(resources.and_then(|r| r.limits.as_ref()));
        let mut out = requests.clone();
        if !has_request(resources, "cpu") {
            out.milli_cpu = limits.milli_cpu;
        }
        if !has_request(resources, "memory") {
            out.memory_mib = limits.memory_mib;
        }
        for (name, value) in limits.extended {
            if !out.extended.iter().any(|(n, _)| *n == name) {
                out.extended.push((name, value));
            }
        }
        out
    }

    /// The effective request of a pod.
    pub fn of_pod(pod: &Pod) -> PodRequests {
        let Some(spec) = pod.spec.as_ref() else {
            return PodRequests::default();
        };
        let mut containers = PodRequests::default();
        for container in &spec.containers {
            containers.add(&PodRequests::of_container(container));
        }
        let mut sidecars = PodRequests::default();
        let mut init_peak = PodRequests::default();
        for init in spec.init_containers.iter().flatten() {
            let request = PodRequests::of_container(init);
            if init.restart_policy.as_deref() == Some("Always") {
                sidecars.add(&request);
                init_peak.max_with(&sidecars);
            } else {
                let mut during = sidecars.clone();
                during.add(&request);
                init_peak.max_with(&during);
            }
        }
        containers.add(&sidecars);
        containers.max_with(&init_peak);
        if let Some(overhead) = spec.overhead.as_ref() {
            containers.add(&PodRequests::from_map(Some(overhead)));
        }
        containers
    }

    /// Amount of extended resource `name`.
    pub fn extended(&self, name: &str) -> i64 {
        self.extended
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    }
}

fn has_request(
    resources: Option<&k8s_openapi::api::core::v1::ResourceRequirements>,
    name: &str,
) -> bool {
    resources
        .and_then(|r| r.requests.as_ref())
        .is_some_and(|r| r.contains_key(name))
}

/// Whether a pod occupies its node: bound and not finished — or a finished Barge pod whose
/// result is not recorded yet (it still carries the result finalizer). Its room is held until
/// the job controller has recorded the attempt and published what comes next, so a retried job
/// or array child is first in line for the capacity its own attempt frees: nothing else can
/// take it in between.
fn occupies_node(pod: &Pod) -> Option<&str> {
    let node = pod
        .spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    match phase {
        Some("Succeeded") | Some("Failed") if !awaits_recording(pod) => None,
        _ => Some(node),
    }
}

/// The compute environment whose vCPU budget a Barge pod takes (`bindingMode:
/// KubeScheduler`): its `batch.barge.dev/compute-environment` label, bound or not, while it
/// occupies room as in [`occupies_node`] (unfinished, or its result not recorded yet).
fn occupies_environment(pod: &Pod) -> Option<&str> {
    if !is_barge_pod(pod) {
        return None;
    }
    let environment = pod
        .labels()
        .get(LABEL_COMPUTE_ENVIRONMENT)
        .map(String::as_str)
        .filter(|e| !e.is_empty())?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    match phase {
        Some("Succeeded") | Some("Failed") if !awaits_recording(pod) => None,
        _ => Some(environment),
    }
}

/// A Barge pod whose attempt result the job controller has not recorded yet.
fn awaits_recording(pod: &Pod) -> bool {
    is_barge_pod(pod)
        && pod
            .finalizers()
            .iter()
            .any(|f| f == FINALIZER_ATTEMPT_RESULT)
}

/// The Kubernetes nodes a multi-node job's main pod reserves for its gang (its
/// `batch.barge.dev/gang-nodes` annotation), while the main pod has not finished: the other
/// nodes' pods are created on them later, and no other Barge pod may take them in between.
/// The reservation lives in the pod, so it survives an operator restart.
fn reserved_nodes(pod: &Pod) -> Vec<String> {
    if !is_barge_pod(pod) || !pod.annotations().contains_key(ANNOTATION_GANG_NODES) {
        return Vec::new();
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded") | Some("Failed")) {
        return Vec::new();
    }
    let mut nodes = crate::pods::gang_nodes_of(pod).unwrap_or_default();
    nodes.retain(|n| !n.is_empty());
    nodes.sort();
    nodes.dedup();
    nodes
}

#[derive(Clone, Debug)]
struct PodUsage {
    /// The node it occupies (None: a Barge pod not bound yet).
    node: Option<String>,
    /// The compute environment whose budget it takes (Barge's pods only).
    environment: Option<String>,
    requests: PodRequests,
    barge: bool,
    /// A Barge pod of a node of a multi-node job (`batch.barge.dev/node-index`).
    gang_member: bool,
    /// The nodes it reserves for its gang (a multi-node job's main pod; see [`reserved_nodes`]).
    reserves: Vec<String>,
    /// (queue, share identifier) of a Barge pod whose job names a share: the fair-share usage
    /// it counts toward.
    share: Option<(String, String)>,
}

#[derive(Clone, Debug, Default)]
struct NodeTotals {
    requests: PodRequests,
    pods: i64,
    /// CPU requested by Barge's pods alone.
    barge_milli_cpu: i64,
    /// Barge's pods among `pods`.
    barge_pods: i64,
    /// Pods of multi-node jobs' nodes among `barge_pods`.
    gang_pods: i64,
    /// Unfinished main pods of multi-node jobs that reserve the node for their gang.
    reservations: i64,
}

impl NodeTotals {
    /// Whether nothing is counted on the node any more (its entry goes).
    fn is_empty(&self) -> bool {
        self.pods <= 0 && self.reservations <= 0
    }
}

#[derive(Default)]
struct UsageState {
    pods: HashMap<String, PodUsage>,
    nodes: HashMap<String, NodeTotals>,
    /// Millicpu requested by Barge's pods per compute environment, bound or not.
    environments: HashMap<String, i64>,
    /// Millicpu requested by Barge's pods per (queue, share identifier), bound or not: the
    /// running vCPUs of fair share.
    shares: HashMap<(String, String), i64>,
}

impl UsageState {
    fn remove(&mut self, id: &str) {
        let Some(usage) = self.pods.remove(id) else {
            return;
        };
        if let Some(share) = &usage.share {
            if let Some(total) = self.shares.get_mut(share) {
                *total -= usage.requests.milli_cpu;
                if *total <= 0 {
                    self.shares.remove(share);
                }
            }
        }
        if let Some(environment) = &usage.environment {
            if let Some(total) = self.environments.get_mut(environment) {
                *total -= usage.requests.milli_cpu;
                if *total <= 0 {
                    self.environments.remove(environment);
                }
            }
        }
        for node in &usage.reserves {
            if let Some(totals) = self.nodes.get_mut(node) {
                totals.reservations -= 1;
                if totals.is_empty() {
                    self.nodes.remove(node);
                }
            }
        }
        let Some(node) = &usage.node else {
            return;
        };
        if let Some(totals) = self.nodes.get_mut(node) {
            totals.pods -= 1;
            if usage.barge {
                totals.barge_milli_cpu -= usage.requests.milli_cpu;
                totals.barge_pods -= 1;
            }
            if usage.gang_member {
                totals.gang_pods -= 1;
            }
            totals.requests.milli_cpu -= usage.requests.milli_cpu;
            totals.requests.memory_mib -= usage.requests.memory_mib;
            for (name, value) in &usage.requests.extended {
                if let Some((_, v)) = totals.requests.extended.iter_mut().find(|(n, _)| n == name) {
                    *v -= value;
                }
            }
            if totals.is_empty() {
                self.nodes.remove(node);
            }
        }
    }

    fn upsert(&mut self, id: String, pod: &Pod) {
        self.remove(&id);
        let node = occupies_node(pod);
        let environment = occupies_environment(pod);
        let reserves = reserved_nodes(pod);
        if node.is_none() && environment.is_none() && reserves.is_empty() {
            return;
        }
        let requests = PodRequests::of_pod(pod);
        let barge = is_barge_pod(pod);
        let gang_member = barge && pod.labels().contains_key(LABEL_NODE_INDEX);
        let share = barge
            .then(|| {
                let queue = pod.labels().get(LABEL_JOB_QUEUE)?;
                let share = pod.annotations().get(ANNOTATION_SHARE_IDENTIFIER)?;
                Some((queue.clone(), share.clone()))
            })
            .flatten()
            .filter(|_| node.is_some() || environment.is_some());
        if let Some(key) = &share {
            *self.shares.entry(key.clone()).or_default() += requests.milli_cpu;
        }
        if let Some(environment) = environment {
            *self
                .environments
                .entry(environment.to_string())
                .or_default() += requests.milli_cpu;
        }
        if let Some(node) = node {
            let totals = self.nodes.entry(node.to_string()).or_default();
            totals.pods += 1;
            if barge {
                totals.barge_milli_cpu += requests.milli_cpu;
                totals.barge_pods += 1;
            }
            if gang_member {
                totals.gang_pods += 1;
            }
            totals.requests.add(&requests);
        }
        for reserved in &reserves {
            self.nodes.entry(reserved.clone()).or_default().reservations += 1;
        }
        self.pods.insert(
            id,
            PodUsage {
                node: node.map(str::to_string),
                environment: environment.map(str::to_string),
                requests,
                barge,
                gang_member,
                reserves,
                share,
            },
        );
    }
}

/// Who occupies a node among Barge's pods (what single tenancy of multi-node jobs needs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Occupancy {
    /// Barge pods bound to the node that have not finished (or whose result is not recorded
    /// yet: they hold their room as in the node's usage).
    pub barge_pods: u32,
    /// The node runs a node of a multi-node job, or a multi-node job's unfinished main pod
    /// reserves it for its gang: no other Barge pod goes there.
    pub exclusive: bool,
}

/// Per-node requested resources of every non-terminal pod bound to a node — Barge's or not —
/// and the CPU of Barge's pods per compute environment, bound or not (the vCPU budget of
/// `bindingMode: KubeScheduler`), and each node's [`Occupancy`] by Barge's pods (single tenancy
/// of multi-node jobs, reservations of their gangs included), kept compact (no pod objects), fed
/// by the cluster-wide pod watch.
#[derive(Default)]
pub struct NodeUsage {
    live: RwLock<UsageState>,
    buffer: Mutex<Option<UsageState>>,
}

impl NodeUsage {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// What the pods bound to `node` request, with `gpu_resource` counted as GPUs.
    pub fn used_on(&self, node: &str, gpu_resource: &str) -> Resources {
        let state = read(&self.live);
        match state.nodes.get(node) {
            None => Resources::ZERO,
            Some(t) => Resources::new(
                t.requests.milli_cpu,
                t.requests.memory_mib,
                t.requests.extended(gpu_resource),
                t.pods,
            ),
        }
    }

    /// Millicpu requested by Barge's pods bound to `node` (a compute environment's allocated
    /// vCPUs).
    pub fn barge_milli_cpu_on(&self, node: &str) -> i64 {
        read(&self.live)
            .nodes
            .get(node)
            .map(|t| t.barge_milli_cpu)
            .unwrap_or(0)
    }

    /// Who occupies `node` among Barge's pods, for the scheduling pass (see [`Occupancy`]).
    pub fn occupancy_on(&self, node: &str) -> Occupancy {
        read(&self.live)
            .nodes
            .get(node)
            .map(|t| Occupancy {
                barge_pods: u32::try_from(t.barge_pods.max(0)).unwrap_or(u32::MAX),
                exclusive: t.gang_pods > 0 || t.reservations > 0,
            })
            .unwrap_or_default()
    }

    /// Whether `node` must stay: a pod is bound to it (unfinished, or its result not recorded),
    /// or a multi-node job's main pod reserves it for a node of its gang.
    pub fn is_busy(&self, node: &str) -> bool {
        read(&self.live)
            .nodes
            .get(node)
            .is_some_and(|t| t.pods > 0 || t.reservations > 0)
    }

    /// Number of non-terminal pods bound to `node`.
    pub fn pods_on(&self, node: &str) -> i64 {
        read(&self.live)
            .nodes
            .get(node)
            .map(|t| t.pods)
            .unwrap_or(0)
    }

    /// Millicpu requested by Barge's pods of compute environment `environment` (its label),
    /// bound or not, unfinished or with their result not recorded yet: what they take of the
    /// environment's vCPU budget (`bindingMode: KubeScheduler`).
    pub fn barge_milli_cpu_in(&self, environment: &str) -> i64 {
        read(&self.live)
            .environments
            .get(environment)
            .copied()
            .unwrap_or(0)
    }

    /// Millicpu requested by the Barge pods of `queue`'s jobs per share identifier (bound and
    /// unfinished, or with their result not recorded yet; or unbound in a budget-mode
    /// environment): the vCPUs each share runs now.
    pub fn milli_cpu_by_share(&self, queue: &str) -> BTreeMap<String, i64> {
        read(&self.live)
            .shares
            .iter()
            .filter(|((q, _), _)| q == queue)
            .map(|((_, share), &milli)| (share.clone(), milli))
            .collect()
    }

    /// Whether the pod `namespace/name` is counted (bound and not finished, or a Barge pod of a
    /// compute environment, bound or not).
    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        read(&self.live)
            .pods
            .contains_key(&format!("{namespace}/{name}"))
    }
}

impl EventSink<CachedPod> for NodeUsage {
    fn apply(&self, event: &watcher::Event<CachedPod>) {
        match event {
            watcher::Event::Apply(pod) => {
                write(&self.live).upsert(crate::index::object_id(pod), pod)
            }
            watcher::Event::Delete(pod) => write(&self.live).remove(&crate::index::object_id(pod)),
            watcher::Event::Init => *lock(&self.buffer) = Some(UsageState::default()),
            watcher::Event::InitApply(pod) => lock(&self.buffer)
                .get_or_insert_with(UsageState::default)
                .upsert(crate::index::object_id(pod), pod),
            watcher::Event::InitDone => {
                if let Some(fresh) = lock(&self.buffer).take() {
                    *write(&self.live) = fresh;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The caches
// ---------------------------------------------------------------------------------------------

/// Key of an index on namespaced names: (namespace, name).
pub type NamespacedName = (String, String);

/// Whether a pod is one of Barge's.
pub fn is_barge_pod(pod: &Pod) -> bool {
    pod.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_BARGE)
}

fn is_cached_barge_pod(pod: &CachedPod) -> bool {
    is_barge_pod(pod)
}

/// The job state as recorded, SUBMITTED when the controller has not written one yet.
pub fn recorded_state(job: &Job) -> JobStatus {
    job.status
        .as_ref()
        .and_then(|s| s.status)
        .unwrap_or(JobStatus::Submitted)
}

/// A pair of interned names: (namespace, name), or (queue, shareIdentifier).
pub type SharedName = (Arc<str>, Arc<str>);

/// The id a job record carries (`namespace/name`), shared by the job indexes. They keep no keys
/// per job: the sink hands them the job's previous record (`Index::from_previous`).
fn record_id(job: &JobRecord) -> Arc<str> {
    job.id().clone()
}

/// The secondary indexes (each answers "which objects relate to X" without a scan).
pub struct Indexes {
    /// Barge pods by the `batch.barge.dev/job-uid` label.
    pub pods_by_job_uid: Arc<Index<CachedPod, String>>,
    /// Jobs by each (namespace, jobName) they depend on.
    pub jobs_by_dependency: Arc<Index<JobRecord, SharedName>>,
    /// Jobs by (queue, recorded state): queue job counts.
    pub jobs_by_queue_state: Arc<Index<JobRecord, (Arc<str>, JobStatus)>>,
    /// Unfinished jobs by queue: the queue's "in use" finalizer.
    pub active_jobs_by_queue: Arc<Index<JobRecord, Arc<str>>>,
    /// Unfinished jobs by (queue, shareIdentifier): the shares of fair share that are active.
    pub active_jobs_by_queue_share: Arc<Index<JobRecord, SharedName>>,
    /// Unfinished jobs by (namespace, job definition name): the definition's "in use" finalizer.
    pub active_jobs_by_definition: Arc<Index<JobRecord, SharedName>>,
    /// Queues by each compute environment of their `computeEnvironmentOrder`.
    pub queues_by_compute_environment: Arc<Index<JobQueue, String>>,
    /// Queues by scheduling policy.
    pub queues_by_scheduling_policy: Arc<Index<JobQueue, String>>,
    /// Nodes by their `batch.barge.dev/compute-environment` label.
    pub nodes_by_compute_environment: Arc<Index<Node, String>>,
    /// ControllerRevisions by the (namespace, job definition) of their label.
    pub revisions_by_definition: Arc<Index<ControllerRevision, NamespacedName>>,
}

impl Indexes {
    fn new() -> Self {
        Self {
            pods_by_job_uid: Index::new(|p: &CachedPod| {
                p.labels().get(LABEL_JOB_UID).cloned().into_iter().collect()
            }),
            jobs_by_dependency: Index::from_previous(
                |j: &JobRecord| {
                    if j.depends_on().is_empty() {
                        return Vec::new();
                    }
                    let ns = intern(j.meta().namespace.as_deref().unwrap_or_default());
                    j.depends_on()
                        .iter()
                        .map(|n| (ns.clone(), n.clone()))
                        .collect()
                },
                record_id,
            ),
            jobs_by_queue_state: Index::from_previous(
                |j: &JobRecord| vec![(j.queue().clone(), j.state())],
                record_id,
            ),
            active_jobs_by_queue: Index::from_previous(
                |j: &JobRecord| {
                    if j.state().is_finished() {
                        Vec::new()
                    } else {
                        vec![j.queue().clone()]
                    }
                },
                record_id,
            ),
            active_jobs_by_queue_share: Index::from_previous(
                |j: &JobRecord| match j.share_identifier() {
                    Some(share) if !j.state().is_finished() => {
                        vec![(j.queue().clone(), share.clone())]
                    }
                    _ => Vec::new(),
                },
                record_id,
            ),
            active_jobs_by_definition: Index::from_previous(
                |j: &JobRecord| match j.definition() {
                    Some(definition) if !j.state().is_finished() => {
                        let ns = intern(j.meta().namespace.as_deref().unwrap_or_default());
                        vec![(ns, definition.clone())]
                    }
                    _ => Vec::new(),
                },
                record_id,
            ),
            queues_by_compute_environment: Index::new(|q: &JobQueue| {
                q.spec
                    .compute_environment_order
                    .iter()
                    .map(|o| o.compute_environment.clone())
                    .collect()
            }),
            queues_by_scheduling_policy: Index::new(|q: &JobQueue| {
                q.spec.scheduling_policy_name.clone().into_iter().collect()
            }),
            nodes_by_compute_environment: Index::new(|n: &Node| {
                n.labels()
                    .get(LABEL_COMPUTE_ENVIRONMENT)
                    .cloned()
                    .into_iter()
                    .collect()
            }),
            revisions_by_definition: Index::new(|r: &ControllerRevision| {
                let ns = r.namespace().unwrap_or_default();
                r.labels()
                    .get(LABEL_JOB_DEFINITION)
                    .map(|jd| (ns, jd.clone()))
                    .into_iter()
                    .collect()
            }),
        }
    }
}

/// Every cache of the operator. Built once at start-up (before leadership, so a standby replica
/// is warm) and shared by all controllers and the scheduler through the
/// [`Context`](crate::context::Context).
pub struct Caches {
    /// Compact records of the jobs; [`JobRecord::job`] decodes one.
    pub jobs: JobStore,
    pub job_definitions: Store<JobDefinition>,
    pub revisions: Store<ControllerRevision>,
    pub queues: Store<JobQueue>,
    pub compute_environments: Store<ComputeEnvironment>,
    pub scheduling_policies: Store<SchedulingPolicy>,
    /// Barge's pods only.
    pub pods: Store<CachedPod>,
    pub nodes: Store<Node>,
    pub namespaces: Store<Namespace>,
    pub indexes: Indexes,
    /// Requests of all non-terminal bound pods, and Barge's occupancy, per node.
    pub usage: Arc<NodeUsage>,
    /// Held for writing while a pod event goes into [`Caches::usage`], the pod store and its
    /// index — in that order, which the scheduler relies on (a pod the store shows is counted
    /// by the usage). A reader that must see the usage and the index agree on every pod holds
    /// it for reading: the scaling decision, which counts room from the usage and demand from
    /// the index, would otherwise count a pod caught between the two as both used room and
    /// unmet demand, and ask for a node twice.
    pub pod_updates: Arc<RwLock<()>>,
    pub jobs_feed: Arc<Feed<JobRecord>>,
    pub job_definitions_feed: Arc<Feed<JobDefinition>>,
    pub revisions_feed: Arc<Feed<ControllerRevision>>,
    pub queues_feed: Arc<Feed<JobQueue>>,
    pub compute_environments_feed: Arc<Feed<ComputeEnvironment>>,
    pub scheduling_policies_feed: Arc<Feed<SchedulingPolicy>>,
    pub pods_feed: Arc<Feed<CachedPod>>,
    pub nodes_feed: Arc<Feed<Node>>,
    pub namespaces_feed: Arc<Feed<Namespace>>,
    /// Whether [`Caches::jobs`] holds every job: false from [`Caches::start`] until the list of
    /// every job is in (before that it may hold only the unfinished ones; see
    /// [`run_jobs_watch`]).
    jobs_complete: tokio::sync::watch::Sender<bool>,
}

/// The sinks of [`Caches::new`], to be driven by watches ([`Caches::start`]) or by a test.
pub struct Sinks {
    pub jobs: JobSink,
    pub job_definitions: Sink<JobDefinition>,
    pub revisions: Sink<ControllerRevision>,
    pub queues: Sink<JobQueue>,
    pub compute_environments: Sink<ComputeEnvironment>,
    pub scheduling_policies: Sink<SchedulingPolicy>,
    pub pods: Sink<CachedPod>,
    pub nodes: Sink<Node>,
    pub namespaces: Sink<Namespace>,
}

impl Caches {
    /// Empty caches and the sinks that fill them. Tests feed the sinks directly; the operator
    /// hands them to [`Caches::start`].
    pub fn new() -> (Arc<Caches>, Sinks) {
        let indexes = Indexes::new();
        let usage = NodeUsage::new();
        let pod_updates = Arc::new(RwLock::new(()));
        let sinks = Sinks {
            jobs: JobSink::jobs()
                .index(indexes.jobs_by_dependency.clone())
                .index(indexes.jobs_by_queue_state.clone())
                .index(indexes.active_jobs_by_queue.clone())
                .index(indexes.active_jobs_by_queue_share.clone())
                .index(indexes.active_jobs_by_definition.clone()),
            job_definitions: Sink::new(),
            revisions: Sink::new().index(indexes.revisions_by_definition.clone()),
            queues: Sink::new()
                .index(indexes.queues_by_compute_environment.clone())
                .index(indexes.queues_by_scheduling_policy.clone()),
            compute_environments: Sink::new(),
            scheduling_policies: Sink::new(),
            pods: Sink::new()
                .guard(pod_updates.clone())
                .raw(usage.clone())
                .filter(is_cached_barge_pod)
                .index(indexes.pods_by_job_uid.clone()),
            nodes: Sink::new()
                .trim(trim_node)
                .index(indexes.nodes_by_compute_environment.clone()),
            namespaces: Sink::new(),
        };
        let caches = Caches {
            jobs: sinks.jobs.store(),
            job_definitions: sinks.job_definitions.store(),
            revisions: sinks.revisions.store(),
            queues: sinks.queues.store(),
            compute_environments: sinks.compute_environments.store(),
            scheduling_policies: sinks.scheduling_policies.store(),
            pods: sinks.pods.store(),
            nodes: sinks.nodes.store(),
            namespaces: sinks.namespaces.store(),
            indexes,
            usage,
            pod_updates,
            jobs_feed: sinks.jobs.feed(),
            job_definitions_feed: sinks.job_definitions.feed(),
            revisions_feed: sinks.revisions.feed(),
            queues_feed: sinks.queues.feed(),
            compute_environments_feed: sinks.compute_environments.feed(),
            scheduling_policies_feed: sinks.scheduling_policies.feed(),
            pods_feed: sinks.pods.feed(),
            nodes_feed: sinks.nodes.feed(),
            namespaces_feed: sinks.namespaces.feed(),
            // Tests feed the sinks themselves: what they feed is all there is.
            jobs_complete: tokio::sync::watch::Sender::new(true),
        };
        (Arc::new(caches), sinks)
    }

    /// Starts one watch per kind. The tasks run until aborted (dropping the handles does not
    /// stop them).
    pub fn start(client: Client) -> (Arc<Caches>, Vec<tokio::task::JoinHandle<()>>) {
        let (caches, sinks) = Caches::new();
        let barge_label = format!("{LABEL_MANAGED_BY}={MANAGED_BY_BARGE}");
        // Paginated lists of 500 objects (kube's default, as client-go's reflector).
        let all = watcher::Config::default;
        caches.jobs_complete.send_replace(false);
        let tasks = vec![
            tokio::spawn(run_jobs_watch(
                Api::<DeserializeGuard<JobRecord>>::all(client.clone()),
                all(),
                sinks.jobs,
                caches.jobs_complete.clone(),
            )),
            tokio::spawn(run_guarded_watch(
                Api::<DeserializeGuard<JobDefinition>>::all(client.clone()),
                all(),
                sinks.job_definitions,
            )),
            tokio::spawn(run_watch(
                Api::<ControllerRevision>::all(client.clone()),
                all().labels(&barge_label),
                sinks.revisions,
            )),
            tokio::spawn(run_guarded_watch(
                Api::<DeserializeGuard<JobQueue>>::all(client.clone()),
                all(),
                sinks.queues,
            )),
            tokio::spawn(run_guarded_watch(
                Api::<DeserializeGuard<ComputeEnvironment>>::all(client.clone()),
                all(),
                sinks.compute_environments,
            )),
            tokio::spawn(run_guarded_watch(
                Api::<DeserializeGuard<SchedulingPolicy>>::all(client.clone()),
                all(),
                sinks.scheduling_policies,
            )),
            tokio::spawn(run_converted_watch(
                Api::<Pruned<Pod>>::all(client.clone()),
                all(),
                sinks.pods,
                |event| Some(shared(unpruned(event))),
            )),
            tokio::spawn(run_pruned_watch(client.clone(), all(), sinks.nodes)),
            tokio::spawn(run_watch(
                Api::<Namespace>::all(client),
                all(),
                sinks.namespaces,
            )),
        ];
        (caches, tasks)
    }

    /// Resolves once every store has seen its first complete list (the jobs store included
    /// every finished job).
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.wait_until_schedulable().await?;
        self.wait_until_all_jobs_listed().await;
        Ok(())
    }

    /// Whether the jobs store holds every job (see [`run_jobs_watch`]); until then a job
    /// missing from it may be a finished one not listed yet.
    pub fn all_jobs_listed(&self) -> bool {
        *self.jobs_complete.borrow()
    }

    /// Resolves once the jobs store holds every job.
    pub async fn wait_until_all_jobs_listed(&self) {
        let mut complete = self.jobs_complete.subscribe();
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = complete.wait_for(|listed| *listed).await;
    }

    /// Resolves once every store has seen its first list, the jobs store possibly with only
    /// the unfinished jobs ([`Caches::all_jobs_listed`] tells): enough to schedule and run jobs.
    pub async fn wait_until_schedulable(&self) -> Result<(), reflector::store::WriterDropped> {
        self.jobs.wait_until_ready().await;
        self.job_definitions.wait_until_ready().await?;
        self.revisions.wait_until_ready().await?;
        self.queues.wait_until_ready().await?;
        self.compute_environments.wait_until_ready().await?;
        self.scheduling_policies.wait_until_ready().await?;
        self.pods.wait_until_ready().await?;
        self.nodes.wait_until_ready().await?;
        self.namespaces.wait_until_ready().await?;
        Ok(())
    }

    /// Events applied so far to the kinds a scheduling pass reads (jobs, queues, compute
    /// environments, scheduling policies, pods and the pod usage, nodes, namespaces): a sum of
    /// counters that only grow, so it is unchanged only when none of them changed.
    pub fn scheduling_changes(&self) -> u64 {
        [
            self.jobs_feed.changes(),
            self.queues_feed.changes(),
            self.compute_environments_feed.changes(),
            self.scheduling_policies_feed.changes(),
            self.pods_feed.changes(),
            self.nodes_feed.changes(),
            self.namespaces_feed.changes(),
        ]
        .iter()
        .fold(0u64, |sum, n| sum.wrapping_add(*n))
    }

    // -- lookups used by the controllers -------------------------------------------------------

    /// The Barge pods of the job with `uid`, in name order.
    pub fn pods_of_job(&self, namespace: &str, uid: &str) -> Vec<Arc<Pod>> {
        self.indexes
            .pods_by_job_uid
            .get(&uid.to_string())
            .iter()
            .filter_map(|id| id.split_once('/').map(|(_, name)| name))
            .filter_map(|name| self.pods.get(&ObjectRef::new(name).within(namespace)))
            .map(|pod| pod.0.clone())
            .collect()
    }

    /// The jobs of `namespace` that name `job_name` in their `dependsOn`.
    pub fn dependents_of(&self, namespace: &str, job_name: &str) -> Vec<ObjectRef<JobRecord>> {
        namespaced_refs(
            self.indexes
                .jobs_by_dependency
                .get(&(Arc::from(namespace), Arc::from(job_name))),
        )
    }

    /// The unfinished jobs of `namespace` that name definition `name` (any revision).
    pub fn unfinished_jobs_of_definition(
        &self,
        namespace: &str,
        name: &str,
    ) -> Vec<ObjectRef<JobRecord>> {
        namespaced_refs(
            self.indexes
                .active_jobs_by_definition
                .get(&(Arc::from(namespace), Arc::from(name))),
        )
    }

    /// The unfinished jobs that name the definition whose revision `revision` is: a job that
    /// saw the definition's status name a revision before this ControllerRevision reached the
    /// cache (two watches, either order) waits for it.
    pub fn unfinished_jobs_of_revision(
        &self,
        revision: &ControllerRevision,
    ) -> Vec<ObjectRef<JobRecord>> {
        match (
            revision.namespace(),
            revision.labels().get(LABEL_JOB_DEFINITION),
        ) {
            (Some(namespace), Some(definition)) => {
                self.unfinished_jobs_of_definition(&namespace, definition)
            }
            _ => Vec::new(),
        }
    }

    /// The record of job `namespace/name`.
    pub fn job(&self, namespace: &str, name: &str) -> Option<Arc<JobRecord>> {
        self.jobs.get(namespace, name)
    }

    /// The job `namespace/name`, decoded from its record.
    pub fn job_object(&self, namespace: &str, name: &str) -> Option<Job> {
        self.job(namespace, name).map(|record| record.job())
    }

    /// Number of jobs of `queue` per recorded state.
    pub fn queue_job_counts(&self, queue: &str) -> barge_crds::job::JobStatusCounts {
        let queue: Arc<str> = Arc::from(queue);
        let mut counts = barge_crds::job::JobStatusCounts::default();
        for state in JobStatus::ALL {
            let n = self
                .indexes
                .jobs_by_queue_state
                .count(&(Arc::clone(&queue), state));
            *counts.get_mut(state) = i32::try_from(n).unwrap_or(i32::MAX);
        }
        counts
    }

    /// Whether unfinished jobs still use `queue`.
    /// Unfinished jobs of `queue` per share identifier (jobs that name one).
    pub fn live_jobs_by_share(&self, queue: &str) -> BTreeMap<String, u64> {
        self.indexes
            .active_jobs_by_queue_share
            .counts()
            .into_iter()
            .filter(|((q, _), _)| **q == *queue)
            .map(|((_, share), n)| (share.to_string(), n as u64))
            .collect()
    }

    pub fn queue_in_use(&self, queue: &str) -> bool {
        self.indexes.active_jobs_by_queue.count(&Arc::from(queue)) > 0
    }

    /// Whether unfinished jobs of `namespace` still reference the definition `name`.
    pub fn job_definition_in_use(&self, namespace: &str, name: &str) -> bool {
        self.indexes
            .active_jobs_by_definition
            .count(&(Arc::from(namespace), Arc::from(name)))
            > 0
    }

    /// The queues that list compute environment `ce`.
    pub fn queues_of_compute_environment(&self, ce: &str) -> Vec<Arc<JobQueue>> {
        self.indexes
            .queues_by_compute_environment
            .get(&ce.to_string())
            .iter()
            .filter_map(|name| self.queues.get(&ObjectRef::new(name)))
            .collect()
    }

    /// The queues that name scheduling policy `policy`.
    pub fn queues_of_scheduling_policy(&self, policy: &str) -> Vec<Arc<JobQueue>> {
        self.indexes
            .queues_by_scheduling_policy
            .get(&policy.to_string())
            .iter()
            .filter_map(|name| self.queues.get(&ObjectRef::new(name)))
            .collect()
    }

    /// The nodes labelled as belonging to compute environment `ce`.
    pub fn nodes_of_compute_environment(&self, ce: &str) -> Vec<Arc<Node>> {
        self.indexes
            .nodes_by_compute_environment
            .get(&ce.to_string())
            .iter()
            .filter_map(|name| self.nodes.get(&ObjectRef::new(name)))
            .collect()
    }

    /// The ControllerRevisions of job definition `namespace/name`.
    pub fn revisions_of_definition(
        &self,
        namespace: &str,
        name: &str,
    ) -> Vec<Arc<ControllerRevision>> {
        self.indexes
            .revisions_by_definition
            .get(&(namespace.to_string(), name.to_string()))
            .iter()
            .filter_map(|id| id.split_once('/').map(|(_, n)| n))
            .filter_map(|n| self.revisions.get(&ObjectRef::new(n).within(namespace)))
            .collect()
    }
}

/// References to namespaced objects from index ids (`namespace/name`).
pub fn namespaced_refs<K: Resource<DynamicType = ()>>(ids: Vec<String>) -> Vec<ObjectRef<K>> {
    ids.iter()
        .filter_map(|id| id.split_once('/'))
        .map(|(ns, name)| ObjectRef::new(name).within(ns))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use kube::api::ObjectMeta;

    fn quantities(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Quantity>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect(),
        )
    }

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: quantities(requests),
                limits: quantities(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(
        name: &str,
        node: Option<&str>,
        phase: &str,
        barge: bool,
        containers: Vec<Container>,
    ) -> Pod {
        let mut labels = BTreeMap::new();
        if barge {
            labels.insert(LABEL_MANAGED_BY.to_string(), MANAGED_BY_BARGE.to_string());
            labels.insert(LABEL_JOB_UID.to_string(), "uid-1".to_string());
        }
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                labels: Some(labels),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_string),
                containers,
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_revision_concerns_the_unfinished_jobs_of_its_definition() {
        let (caches, mut sinks) = Caches::new();
        let job = |name: &str, definition: &str, state: Option<&str>| {
            let mut job: Job = serde_json::from_value(serde_json::json!({
                "apiVersion": "batch.barge.dev/v1alpha1", "kind": "Job",
                "metadata": {"name": name, "namespace": "team"},
                "spec": {"jobQueue": "q", "jobDefinition": definition},
            }))
            .expect("job");
            if let Some(state) = state {
                job.status = Some(
                    serde_json::from_value(serde_json::json!({"status": state})).expect("status"),
                );
            }
            job
        };
        for j in [
            job("waits", "big", None),
            job("pinned", "big:1", Some("SUBMITTED")),
            job("done", "big", Some("SUCCEEDED")),
            job("other", "small", None),
        ] {
            sinks.jobs.apply(watcher::Event::Apply(j.into()));
        }
        // The job indexes hold each record's own id.
        let waits = caches.job("team", "waits").expect("cached");
        assert!(
            Arc::strong_count(waits.id()) > 2,
            "shared by the record and its indexes"
        );
        assert_eq!(caches.queue_job_counts("q").SUCCEEDED, 1);
        assert!(caches.queue_in_use("q") && caches.job_definition_in_use("team", "big"));
        // A revision as the JobDefinition controller labels it (definition_revisions builds
        // them; that module sits above the caches).
        let revision: ControllerRevision = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "big-1",
                "namespace": "team",
                "labels": {LABEL_JOB_DEFINITION: "big"},
            },
            "revision": 1,
        }))
        .expect("revision");
        let mut names: Vec<String> = caches
            .unfinished_jobs_of_revision(&revision)
            .into_iter()
            .map(|r| r.name)
            .collect();
        names.sort();
        assert_eq!(names, ["pinned", "waits"]);
        let mut unlabelled = revision.clone();
        unlabelled.metadata.labels = None;
        assert!(caches.unfinished_jobs_of_revision(&unlabelled).is_empty());
    }

    #[test]
    fn the_job_indexes_follow_a_job_through_states_deletion_and_relists() {
        let (caches, mut sinks) = Caches::new();
        let job = |name: &str, queue: &str, state: &str| -> JobRecord {
            serde_json::from_value::<Job>(serde_json::json!({
                "apiVersion": "batch.barge.dev/v1alpha1", "kind": "Job",
                "metadata": {"name": name, "namespace": "team", "uid": format!("uid-{name}")},
                "spec": {"jobQueue": queue, "jobDefinition": "d", "shareIdentifier": "blue"},
                "status": {"status": state},
            }))
            .expect("job")
            .into()
        };
        let counts = |queue: &str| {
            let c = caches.queue_job_counts(queue);
            (c.RUNNABLE, c.RUNNING, c.SUCCEEDED)
        };
        sinks
            .jobs
            .apply(watcher::Event::Apply(job("a", "q", "RUNNABLE")));
        sinks
            .jobs
            .apply(watcher::Event::Apply(job("b", "q", "RUNNABLE")));
        sinks
            .jobs
            .apply(watcher::Event::Apply(job("a", "q", "RUNNABLE")));
        assert_eq!(counts("q"), (2, 0, 0));
        assert_eq!(caches.live_jobs_by_share("q").get("blue"), Some(&2));
        sinks
            .jobs
            .apply(watcher::Event::Apply(job("a", "q", "RUNNING")));
        assert_eq!(counts("q"), (1, 1, 0));
        sinks
            .jobs
            .apply(watcher::Event::Apply(job("a", "q", "SUCCEEDED")));
        assert_eq!(counts("q"), (1, 0, 1));
        assert_eq!(caches.live_jobs_by_share("q").get("blue"), Some(&1));
        // Deleted with a state the cache never saw: the indexed state goes.
        sinks
            .jobs
            .apply(watcher::Event::Delete(job("b", "q", "RUNNING")));
        assert_eq!(counts("q"), (0, 0, 1));
        assert!(!caches.queue_in_use("q"));
        // A relist: what vanished goes, what is listed (in another queue now) comes.
        sinks.jobs.apply(watcher::Event::Init);
        sinks
            .jobs
            .apply(watcher::Event::InitApply(job("c", "r", "RUNNABLE")));
        sinks.jobs.apply(watcher::Event::InitDone);
        assert_eq!(counts("q"), (0, 0, 0));
        assert_eq!(counts("r"), (1, 0, 0));
        sinks
            .jobs
            .apply(watcher::Event::Apply(job("c", "r", "FAILED")));
        assert!(!caches.queue_in_use("r") && !caches.job_definition_in_use("team", "d"));
        sinks
            .jobs
            .apply(watcher::Event::Delete(job("c", "r", "FAILED")));
        assert!(caches.indexes.jobs_by_queue_state.counts().is_empty());
    }

    #[test]
    fn pod_request_is_the_larger_of_containers_and_init_containers() {
        let mut p = pod(
            "p",
            Some("n"),
            "Running",
            false,
            vec![
                container(&[("cpu", "500m"), ("memory", "1Gi")], &[]),
                container(&[], &[("cpu", "1"), ("nvidia.com/gpu", "1")]),
            ],
        );
        let spec = p.spec.as_mut().expect("spec");
        spec.init_containers = Some(vec![container(&[("cpu", "2"), ("memory", "512Mi")], &[])]);
        spec.overhead = quantities(&[("cpu", "100m")]);
        let r = PodRequests::of_pod(&p);
        // containers: 1500m / 1024 MiB; init: 2000m / 512 MiB → max each, plus 100m overhead.
        assert_eq!(
            (r.milli_cpu, r.memory_mib, r.extended("nvidia.com/gpu")),
            (2100, 1024, 1)
        );
    }

    #[test]
    fn sidecar_init_containers_add_to_the_running_containers() {
        let mut p = pod(
            "p",
            Some("n"),
            "Running",
            false,
            vec![container(&[("cpu", "1")], &[])],
        );
        let mut sidecar = container(&[("cpu", "250m")], &[]);
        sidecar.restart_policy = Some("Always".into());
        p.spec.as_mut().expect("spec").init_containers = Some(vec![sidecar]);
        assert_eq!(PodRequests::of_pod(&p).milli_cpu, 1250);
    }

    #[test]
    fn environment_usage_counts_barge_pods_bound_or_not_until_recorded() {
        let usage = NodeUsage::new();
        let c = || vec![container(&[("cpu", "1")], &[])];
        let in_ce = |name: &str, node: Option<&str>, phase: &str, barge: bool| {
            let mut p = pod(name, node, phase, barge, c());
            p.metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert(LABEL_COMPUTE_ENVIRONMENT.to_string(), "ce".to_string());
            p
        };
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(in_ce(
            "unbound", None, "Pending", true,
        ))));
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(in_ce(
            "bound",
            Some("n1"),
            "Running",
            true,
        ))));
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(in_ce(
            "foreign", None, "Pending", false,
        ))));
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(in_ce(
            "done",
            Some("n1"),
            "Succeeded",
            true,
        ))));
        assert_eq!(usage.barge_milli_cpu_in("ce"), 2000);
        assert!(usage.contains("ns", "unbound") && !usage.contains("ns", "foreign"));
        assert_eq!(
            usage.used_on("n1", "nvidia.com/gpu"),
            Resources::new(1000, 0, 0, 1),
            "the unbound pod takes no node's room"
        );
        // Bound later: still counted once.
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(in_ce(
            "unbound",
            Some("n2"),
            "Running",
            true,
        ))));
        assert_eq!(usage.barge_milli_cpu_in("ce"), 2000);
        // A finished pod whose result is recorded (no finalizer) frees the budget.
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(in_ce(
            "bound",
            Some("n1"),
            "Succeeded",
            true,
        ))));
        assert_eq!(usage.barge_milli_cpu_in("ce"), 1000);
        usage.apply(&watcher::Event::Delete(crate::cache::Shared::from(in_ce(
            "unbound",
            Some("n2"),
            "Running",
            true,
        ))));
        assert_eq!(usage.barge_milli_cpu_in("ce"), 0);
    }

    #[test]
    fn node_usage_counts_bound_unfinished_pods_and_follows_relists() {
        let usage = NodeUsage::new();
        let c = || vec![container(&[("cpu", "1"), ("memory", "100Mi")], &[])];
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(pod(
            "a",
            Some("n1"),
            "Running",
            false,
            c(),
        ))));
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(pod(
            "b",
            Some("n1"),
            "Pending",
            true,
            c(),
        ))));
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(pod(
            "unbound",
            None,
            "Pending",
            true,
            c(),
        ))));
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(pod(
            "done",
            Some("n1"),
            "Succeeded",
            true,
            c(),
        ))));
        assert_eq!(
            usage.used_on("n1", "nvidia.com/gpu"),
            Resources::new(2000, 200, 0, 2)
        );
        assert!(usage.contains("ns", "b") && !usage.contains("ns", "unbound"));
        assert_eq!(usage.barge_milli_cpu_on("n1"), 1000, "only b is Barge's");
        // b finishes: its requests are released.
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(pod(
            "b",
            Some("n1"),
            "Failed",
            true,
            c(),
        ))));
        assert_eq!(
            usage.used_on("n1", "nvidia.com/gpu"),
            Resources::new(1000, 100, 0, 1)
        );
        // A relist without `a` forgets it.
        usage.apply(&watcher::Event::Init);
        usage.apply(&watcher::Event::InitApply(crate::cache::Shared::from(pod(
            "c",
            Some("n2"),
            "Running",
            false,
            c(),
        ))));
        assert_eq!(
            usage.pods_on("n1"),
            1,
            "old state stays visible until InitDone"
        );
        usage.apply(&watcher::Event::InitDone);
        assert_eq!(usage.pods_on("n1"), 0);
        assert_eq!(usage.pods_on("n2"), 1);
    }

    #[test]
    fn a_finished_barge_pod_holds_its_room_until_its_result_is_recorded() {
        let usage = NodeUsage::new();
        let c = || vec![container(&[("cpu", "2")], &[])];
        let with_finalizer = |phase: &str| {
            let mut p = pod("attempt-1", Some("n1"), phase, true, c());
            p.metadata.finalizers = Some(vec![FINALIZER_ATTEMPT_RESULT.to_string()]);
            p
        };
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(
            with_finalizer("Running"),
        )));
        assert_eq!(usage.barge_milli_cpu_on("n1"), 2000);
        // The attempt failed; the job controller has not recorded it (nor published the retry).
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(
            with_finalizer("Failed"),
        )));
        assert_eq!(
            usage.barge_milli_cpu_on("n1"),
            2000,
            "the room stays held for the retried attempt"
        );
        // Recorded: the finalizer is released and the room is free.
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(pod(
            "attempt-1",
            Some("n1"),
            "Failed",
            true,
            c(),
        ))));
        assert_eq!(usage.barge_milli_cpu_on("n1"), 0);
        assert_eq!(usage.pods_on("n1"), 0);
    }

    /// A Barge pod of node `index` of a multi-node job; the main node's pod (`gang`) carries
    /// the nodes reserved for its gang.
    fn node_pod(name: &str, node: &str, phase: &str, index: u32, gang: Option<&str>) -> Pod {
        let mut p = pod(
            name,
            Some(node),
            phase,
            true,
            vec![container(&[("cpu", "1")], &[])],
        );
        p.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(LABEL_NODE_INDEX.to_string(), index.to_string());
        if let Some(nodes) = gang {
            p.metadata.annotations = Some(BTreeMap::from([(
                ANNOTATION_GANG_NODES.to_string(),
                nodes.to_string(),
            )]));
        }
        p
    }

    fn occupancy(barge_pods: u32, exclusive: bool) -> Occupancy {
        Occupancy {
            barge_pods,
            exclusive,
        }
    }

    #[test]
    fn occupancy_counts_barge_pods_and_marks_nodes_of_multi_node_jobs_exclusive() {
        let usage = NodeUsage::new();
        let c = || vec![container(&[("cpu", "1")], &[])];
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(pod(
            "single",
            Some("n1"),
            "Running",
            true,
            c(),
        ))));
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(pod(
            "foreign",
            Some("n1"),
            "Running",
            false,
            c(),
        ))));
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(pod(
            "unbound",
            None,
            "Pending",
            true,
            c(),
        ))));
        assert_eq!(
            usage.occupancy_on("n1"),
            occupancy(1, false),
            "only Barge's bound pods count"
        );
        assert_eq!(usage.occupancy_on("elsewhere"), occupancy(0, false));
        // A child node's pod (no reservation of its own) makes its node exclusive.
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(
            node_pod("mnp-1-node-1", "n2", "Running", 1, None),
        )));
        assert_eq!(usage.occupancy_on("n2"), occupancy(1, true));
        // It finishes and its result is recorded: the node is free again.
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(
            node_pod("mnp-1-node-1", "n2", "Succeeded", 1, None),
        )));
        assert_eq!(usage.occupancy_on("n2"), occupancy(0, false));
        // A finished child whose result is not recorded holds its node, as it holds its room.
        let mut unrecorded = node_pod("mnp-1-node-2", "n3", "Failed", 2, None);
        unrecorded.metadata.finalizers = Some(vec![FINALIZER_ATTEMPT_RESULT.to_string()]);
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(
            unrecorded,
        )));
        assert_eq!(usage.occupancy_on("n3"), occupancy(1, true));
    }

    #[test]
    fn a_main_pod_reserves_its_gang_nodes_until_it_finishes() {
        let usage = NodeUsage::new();
        // The gang of job mnp: main node 0 on n1, nodes 1 and 2 reserved on n2 and n3.
        let main = |phase: &str| node_pod("mnp-1-node-0", "n1", phase, 0, Some("n1,n2,n3"));
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(main(
            "Pending",
        ))));
        assert_eq!(usage.occupancy_on("n1"), occupancy(1, true));
        assert_eq!(
            usage.occupancy_on("n2"),
            occupancy(0, true),
            "reserved before its pod exists"
        );
        assert_eq!(usage.occupancy_on("n3"), occupancy(0, true));
        assert_eq!(
            usage.used_on("n2", "nvidia.com/gpu"),
            Resources::ZERO,
            "a reservation takes no room"
        );
        assert!(
            usage.is_busy("n2") && usage.pods_on("n2") == 0,
            "a reserved node is kept"
        );
        // The child of node 1 is created on n2: the reservation and the pod both hold it.
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(
            node_pod("mnp-1-node-1", "n2", "Running", 1, None),
        )));
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(main(
            "Running",
        ))));
        assert_eq!(usage.occupancy_on("n2"), occupancy(1, true));
        // The main pod finishes (its result recorded): its reservation ends; n3, whose pod
        // was never created, is free, while n2 stays exclusive as long as its pod runs.
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(main(
            "Succeeded",
        ))));
        assert_eq!(usage.occupancy_on("n1"), occupancy(0, false));
        assert_eq!(usage.occupancy_on("n3"), occupancy(0, false));
        assert!(!usage.is_busy("n3"));
        assert_eq!(usage.occupancy_on("n2"), occupancy(1, true));
        usage.apply(&watcher::Event::Delete(crate::cache::Shared::from(
            node_pod("mnp-1-node-1", "n2", "Running", 1, None),
        )));
        assert_eq!(usage.occupancy_on("n2"), occupancy(0, false));
    }

    #[test]
    fn reservations_follow_deletions_and_relists() {
        let usage = NodeUsage::new();
        let main = node_pod("mnp-1-node-0", "n1", "Running", 0, Some("n1,n2"));
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(
            main.clone(),
        )));
        assert!(usage.occupancy_on("n2").exclusive);
        usage.apply(&watcher::Event::Delete(crate::cache::Shared::from(
            main.clone(),
        )));
        assert_eq!(usage.occupancy_on("n1"), occupancy(0, false));
        assert_eq!(usage.occupancy_on("n2"), occupancy(0, false));
        // After a restart (a fresh list), the reservation is read back from the main pod.
        usage.apply(&watcher::Event::Init);
        usage.apply(&watcher::Event::InitApply(crate::cache::Shared::from(main)));
        usage.apply(&watcher::Event::InitDone);
        assert_eq!(usage.occupancy_on("n2"), occupancy(0, true));
        // A relist without it forgets it.
        usage.apply(&watcher::Event::Init);
        usage.apply(&watcher::Event::InitDone);
        assert_eq!(usage.occupancy_on("n2"), occupancy(0, false));
        // The annotation of a pod that is not Barge's reserves nothing.
        let mut foreign = node_pod("other", "n4", "Running", 0, Some("n4,n5"));
        foreign
            .metadata
            .labels
            .as_mut()
            .expect("labels")
            .remove(LABEL_MANAGED_BY);
        usage.apply(&watcher::Event::Apply(crate::cache::Shared::from(foreign)));
        assert_eq!(usage.occupancy_on("n5"), occupancy(0, false));
        assert_eq!(usage.occupancy_on("n4"), occupancy(0, false));
    }

    #[tokio::test]
    async fn pod_sink_keeps_only_barge_pods_and_feeds_subscribers() {
        let (caches, mut sinks) = Caches::new();
        let c = || vec![container(&[("cpu", "1")], &[])];
        sinks.pods.apply(watcher::Event::Init);
        sinks
            .pods
            .apply(watcher::Event::InitApply(crate::cache::Shared::from(pod(
                "mine",
                Some("n"),
                "Running",
                true,
                c(),
            ))));
        sinks
            .pods
            .apply(watcher::Event::InitApply(crate::cache::Shared::from(pod(
                "theirs",
                Some("n"),
                "Running",
                false,
                c(),
            ))));
        sinks.pods.apply(watcher::Event::InitDone);
        assert_eq!(caches.pods.state().len(), 1);
        assert_eq!(caches.usage.pods_on("n"), 2);
        assert_eq!(caches.pods_of_job("ns", "uid-1").len(), 1);

        // A late subscriber first gets what is cached, then changes — deletions included.
        let mut feed = caches.pods_feed.subscribe();
        let first = feed.next().await.expect("seeded");
        assert_eq!(first.name_any(), "mine");
        sinks
            .pods
            .apply(watcher::Event::Apply(crate::cache::Shared::from(pod(
                "theirs",
                Some("n"),
                "Failed",
                false,
                c(),
            ))));
        sinks
            .pods
            .apply(watcher::Event::Delete(crate::cache::Shared::from(pod(
                "mine",
                Some("n"),
                "Running",
                true,
                c(),
            ))));
        let deleted = feed.next().await.expect("deletion is broadcast");
        assert_eq!(deleted.name_any(), "mine");
        assert!(caches.pods.state().is_empty());
        assert!(caches.pods_of_job("ns", "uid-1").is_empty());
        assert_eq!(caches.usage.pods_on("n"), 0);
    }

    #[test]
    fn every_pod_event_counts_as_a_change_once_the_usage_and_the_store_have_it() {
        let (caches, mut sinks) = Caches::new();
        let c = || vec![container(&[("cpu", "1")], &[])];
        let before = caches.scheduling_changes();
        // Not Barge's: left out of the store, but its requests go into the usage.
        sinks
            .pods
            .apply(watcher::Event::Apply(crate::cache::Shared::from(pod(
                "theirs",
                Some("n"),
                "Running",
                false,
                c(),
            ))));
        let after_foreign = caches.scheduling_changes();
        assert!(after_foreign > before, "the usage changed");
        assert_eq!(caches.usage.pods_on("n"), 1);
        sinks
            .pods
            .apply(watcher::Event::Apply(crate::cache::Shared::from(pod(
                "mine",
                Some("n"),
                "Running",
                true,
                c(),
            ))));
        assert!(caches.scheduling_changes() > after_foreign);
        assert_eq!(caches.pods.state().len(), 1);
    }

    #[test]
    fn objects_that_do_not_deserialize_are_left_out() {
        let valid: DeserializeGuard<JobQueue> = serde_json::from_value(serde_json::json!({
            "apiVersion": "batch.barge.dev/v1alpha1", "kind": "JobQueue", "metadata": {"name": "ok"},
            "spec": {"priority": 1, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "ce"}]}
        }))
        .expect("guard");
        let invalid: DeserializeGuard<JobQueue> = serde_json::from_value(serde_json::json!({
            "apiVersion": "batch.barge.dev/v1alpha1", "kind": "JobQueue", "metadata": {"name": "bad"},
            "spec": {"priority": "high"}
        }))
        .expect("the guard itself deserializes");
        assert!(invalid.0.is_err());
        assert!(
            matches!(unguard(watcher::Event::Apply(valid), "JobQueue"), Some(watcher::Event::Apply(q)) if q.name_any() == "ok")
        );
        assert!(unguard(watcher::Event::InitApply(invalid), "JobQueue").is_none());
        assert!(matches!(
            unguard::<JobQueue>(watcher::Event::InitDone, "JobQueue"),
            Some(watcher::Event::InitDone)
        ));
    }

    #[test]
    fn cached_objects_carry_no_managed_fields_or_node_images() {
        let (caches, mut sinks) = Caches::new();
        let node = Node {
            metadata: ObjectMeta {
                name: Some("n".into()),
                managed_fields: Some(vec![Default::default()]),
                annotations: Some(
                    [
                        (LAST_APPLIED.to_string(), "{}".to_string()),
                        ("kept".to_string(), "yes".to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            status: Some(k8s_openapi::api::core::v1::NodeStatus {
                images: Some(vec![Default::default()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        sinks.nodes.apply(watcher::Event::Apply(node));
        let cached = caches.nodes.get(&ObjectRef::new("n")).expect("cached");
        assert!(cached
            .metadata
            .managed_fields
            .as_ref()
            .is_none_or(Vec::is_empty));
        assert!(cached
            .status
            .as_ref()
            .and_then(|s| s.images.as_ref())
            .is_none());
        let annotations: Vec<&String> = cached.annotations().keys().collect();
        assert_eq!(annotations, ["kept"]);
    }

    #[tokio::test]
    async fn a_relist_announces_objects_deleted_while_the_watch_was_down() {
        let (caches, mut sinks) = Caches::new();
        let node = |name: &str| Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([(LABEL_COMPUTE_ENVIRONMENT.to_string(), "ce".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        sinks.nodes.apply(watcher::Event::Apply(node("a")));
        sinks.nodes.apply(watcher::Event::Apply(node("gone")));
        assert_eq!(caches.nodes_of_compute_environment("ce").len(), 2);
        let mut feed = caches.nodes_feed.subscribe();
        let mut seen: Vec<String> = vec![
            feed.next().await.expect("a").name_any(),
            feed.next().await.expect("b").name_any(),
        ];
        seen.sort();
        assert_eq!(seen, ["a", "gone"]);
        sinks.nodes.apply(watcher::Event::Init);
        sinks.nodes.apply(watcher::Event::InitApply(node("a")));
        sinks.nodes.apply(watcher::Event::InitDone);
        assert_eq!(feed.next().await.expect("vanished").name_any(), "gone");
        assert_eq!(feed.next().await.expect("present").name_any(), "a");
        assert_eq!(caches.nodes_of_compute_environment("ce").len(), 1);
        drop(feed);
        sinks.nodes.apply(watcher::Event::Apply(node("b")));
        assert_eq!(
            caches.nodes_feed.subscriber_count(),
            0,
            "closed subscribers are dropped"
        );
    }
}
