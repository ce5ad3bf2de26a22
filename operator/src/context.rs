//! The [`Context`] every controller and the scheduler receive, and the operator's settings.
//!
//! A Context is built when this replica becomes leader (nothing in it is authoritative: a new
//! leader rebuilds everything from the caches) and holds
//! - the kube `Client` and the shared [`Caches`] (stores, indexes, node usage, feeds);
//! - the [`Metrics`] and the [`EventPublisher`];
//! - the [`OperatorConfig`] (from the command line);
//! - the [`SchedulerWakeup`] (a coalescing wake-up of the scheduler loop);
//! - the [`Verdicts`] slot, where the scheduler leaves "cannot place, because..." for the job
//!   controller (which turns them into a condition and status reason);
//! - the [`Triggers`]: channels that make a controller reconcile a given object now (fed into
//!   `Controller::reconcile_on`), e.g. the job controller waking the dependents of a finished
//!   job, or the scheduler asking for a job's verdict to be recorded.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::channel::mpsc;
use futures::Stream;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource};
use tokio::sync::Notify;

use barge_core::job::{Blocked, JobRecord, JobView, RunnableWork, StateChange};
use barge_core::resources::Resources;
use barge_core::scheduler::{Constraints, JobKey, SharedStr, Workload};
use barge_core::state::JobState;
use barge_crds::{ComputeEnvironment, JobDefinition, JobQueue, SchedulingPolicy};

use crate::cache::Caches;
use crate::definition_revisions::ResolvedDefinition;
use crate::events::{EventPublisher, JobEvents};
use crate::metrics::Metrics;
use crate::pod_refusals::PodRefusals;
use crate::status::StatusDeferrals;

/// `--array-pod-retention`: which pods of array children stay after their result is recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ArrayPodRetention {
    /// Keep the pods of failed children only (their logs explain the failure).
    #[default]
    Failed,
    /// Keep every child's pod until the job is deleted.
    All,
    /// Delete every child's pod once its result is recorded.
    None,
}

/// A node-pool provider of MANAGED compute environments (`computeResources.provider`), as
/// `--providers` names it. Each needs permissions of its own (charts/barge `providers.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Provider {
    /// Barge creates and deletes Node objects itself (a fake-node kubelet runs them).
    Simulated,
    /// Barge owns a Karpenter NodePool per environment.
    Karpenter,
    /// Barge scales Cluster API MachineDeployments.
    ClusterApi,
}

impl Provider {
    pub const ALL: [Provider; 3] = [
        Provider::Simulated,
        Provider::Karpenter,
        Provider::ClusterApi,
    ];

    /// Its name in `--providers`.
    pub fn flag_name(self) -> &'static str {
        match self {
            Provider::Simulated => "simulated",
            Provider::Karpenter => "karpenter",
            Provider::ClusterApi => "cluster-api",
        }
    }

    /// Its field under `computeResources.provider`.
    pub fn spec_field(self) -> &'static str {
        match self {
            Provider::Simulated => "simulated",
            Provider::Karpenter => "karpenter",
            Provider::ClusterApi => "clusterAPI",
        }
    }

    /// The Helm value that enables it (charts/barge/values.yaml).
    pub fn helm_value(self) -> &'static str {
        match self {
            Provider::Simulated => "providers.simulated.enabled",
            Provider::Karpenter => "providers.karpenter.enabled",
            Provider::ClusterApi => "providers.clusterAPI.enabled",
        }
    }
}

/// `--providers`: the providers this operator may use (the installation grants their
/// permissions); a compute environment naming another one is INVALID. `none` (or an empty list)
/// enables none: only UNMANAGED environments then work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnabledProviders(BTreeSet<Provider>);

impl EnabledProviders {
    /// Every provider (the default of `barge operator` without `--providers`).
    pub fn all() -> Self {
        Self(Provider::ALL.into_iter().collect())
    }

    pub fn none() -> Self {
        Self(BTreeSet::new())
    }

    pub fn only(providers: &[Provider]) -> Self {
        Self(providers.iter().copied().collect())
    }

    pub fn allows(&self, provider: Provider) -> bool {
        self.0.contains(&provider)
    }
}

impl Default for EnabledProviders {
    fn default() -> Self {
        Self::all()
    }
}

impl std::str::FromStr for EnabledProviders {
    type Err = String;

    fn from_str(list: &str) -> Result<Self, String> {
        let mut enabled = BTreeSet::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "none" {
                continue;
            }
            let provider = Provider::ALL
                .into_iter()
                .find(|p| p.flag_name() == name || p.spec_field() == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = Provider::ALL.iter().map(|p| p.flag_name()).collect();
                    format!(
                        "unknown provider {name:?}: expected a comma-separated list of {} (or none)",
                        known.join(", ")
                    )
                })?;
            enabled.insert(provider);
        }
        Ok(Self(enabled))
    }
}

impl std::fmt::Display for EnabledProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.0.iter().map(|p| p.flag_name()).collect();
        f.write_str(&names.join(","))
    }
}

/// `--finished-pod-retention-seconds` by default: ten minutes to read a finished job's pods
/// (logs, exit details) before they go; the job's record (status, attempts) stays until the
/// job itself is deleted.
pub const DEFAULT_FINISHED_POD_RETENTION_SECONDS: u64 = 600;

/// `--reconcile-concurrency` by default: reconciles each controller runs at once. Unbounded, a
/// burst of N changed jobs holds N reconcile futures (~7 KB each) at once, most of them waiting
/// for the API throttle, and kube-runtime polls every one of them each time its runner is woken
/// (its `FutureHashMap` is scanned: O(N) per finished reconcile); bounded, the waiting jobs are
/// only keys in its queue. Measured (bench `startup`, 3,000 jobs waiting, 50 ms writes): 256
/// admitted them 3.2 times slower than unbounded, 1,024 as fast (3.9 s) — a job's reconciles
/// wait behind the throttle's priorities, so the bound must be well above its in-flight cap
/// (`--kube-api-max-in-flight`, 100); 16 serialized reconciles on a real cluster.
pub const DEFAULT_RECONCILE_CONCURRENCY: u16 = 1024;

/// Settings of a running operator (see `barge operator --help`).
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    pub array_pod_retention: ArrayPodRetention,
    /// Least time between two status writes of a busy array parent, and the window in which a
    /// job's non-terminal changes are written together (terminal transitions are written at
    /// once).
    pub status_coalesce_interval: Duration,
    /// Period of the scheduler's tick (it also runs on every wake-up).
    pub scheduler_interval: Duration,
    /// Pod creates the scheduler keeps in flight (its background creator).
    pub pod_create_concurrency: usize,
    /// Least time between two rounds of queue status writes by the scheduler
    /// (`status.fairShare`, `status.frontOfQueue`).
    pub queue_status_interval: Duration,
    /// Concurrent reconciles per controller (0: unbounded).
    pub reconcile_concurrency: u16,
    /// How often compute environment and queue statuses are refreshed without a trigger
    /// (allocated vCPUs and job counts follow pods and jobs, which do not trigger them).
    pub status_refresh_interval: Duration,
    /// Identity of this replica (POD_NAME or hostname-pid): the events' reporting instance.
    pub identity: String,
    /// How long a job named in `dependsOn` may be missing before the dependent job fails.
    pub missing_dependency_grace: Duration,
    /// How long after its first refused pod creation an attempt fails (`PodCreationRefused`).
    pub pod_create_give_up: Duration,
    /// The node-pool providers this operator may use (`--providers`).
    pub providers: EnabledProviders,
    /// Which job state changes are announced as Events (`--job-events`).
    pub job_events: JobEvents,
    /// How long a finished job's pods stay (`--finished-pod-retention-seconds`); None keeps
    /// them until the job is deleted.
    pub finished_pod_retention: Option<Duration>,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            array_pod_retention: ArrayPodRetention::default(),
            status_coalesce_interval: Duration::from_secs(1),
            scheduler_interval: Duration::from_secs(1),
            pod_create_concurrency: 32,
            queue_status_interval: Duration::from_secs(5),
            reconcile_concurrency: DEFAULT_RECONCILE_CONCURRENCY,
            status_refresh_interval: Duration::from_secs(10),
            identity: "barge".to_string(),
            missing_dependency_grace: Duration::from_secs(
                barge_core::deps::DEFAULT_MISSING_DEPENDENCY_GRACE_SECONDS.unsigned_abs(),
            ),
            pod_create_give_up: Duration::from_secs(
                barge_core::pod_creation::DEFAULT_GIVE_UP_SECONDS.unsigned_abs(),
            ),
            providers: EnabledProviders::all(),
            job_events: JobEvents::default(),
            finished_pod_retention: Some(Duration::from_secs(
                DEFAULT_FINISHED_POD_RETENTION_SECONDS,
            )),
        }
    }
}

/// Wakes the scheduler loop. Wake-ups coalesce: many `wake()` calls before the loop looks
/// again cause one pass.
#[derive(Clone, Default)]
pub struct SchedulerWakeup {
    notify: Arc<Notify>,
}

impl SchedulerWakeup {
    /// Asks for a scheduling pass soon.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Resolves at the next wake-up (at once if one is pending).
    pub async fn woken(&self) {
        self.notify.notified().await;
    }
}

/// The scheduler's latest verdict for each job it could not (fully) place, for the job
/// controller. Keyed by job (namespace/name) and tagged with the job's uid so that a re-created
/// job of the same name does not inherit a stale verdict.
///
/// At 100,000 queued jobs with nothing placeable every job holds one, mostly the same: equal
/// verdicts set one after another (a pass gives a whole queue the same one) share one
/// allocation, and the map shrinks once most of its jobs are gone. The key and the uid are the
/// runnable book's (the scheduler sets verdicts from the book's entries): shared, not copied.
#[derive(Default)]
pub struct Verdicts {
    inner: RwLock<VerdictMap>,
}

#[derive(Default)]
struct VerdictMap {
    by_job: HashMap<JobKey, (SharedStr, Arc<Blocked>)>,
    /// The verdict set last, which the next equal one shares.
    last: Option<Arc<Blocked>>,
}

/// Least capacity of a map before [`shrink_when_sparse`] gives memory back.
const SHRINK_FROM_CAPACITY: usize = 1024;

/// Gives a map's memory back once it holds less than a quarter of its capacity (a burst's
/// peak): amortized O(1) per removal, as each shrink follows at least as many removals as the
/// entries it moves.
pub fn shrink_when_sparse<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() >= SHRINK_FROM_CAPACITY && map.len() * 4 < map.capacity() {
        map.shrink_to(map.len() * 2);
    }
}

impl Verdicts {
    /// Records the verdict for `job`; returns whether it differs from the previous one (so the
    /// caller triggers the job controller only on change).
    pub fn set(&self, job: JobKey, uid: impl Into<SharedStr>, blocked: Blocked) -> bool {
        self.set_shared(job, uid, &Arc::new(blocked))
    }

    /// [`Verdicts::set`] with a verdict the caller may give many jobs (the scheduler's pass
    /// builds one per distinct verdict, not one per job).
    pub fn set_shared(
        &self,
        job: JobKey,
        uid: impl Into<SharedStr>,
        blocked: &Arc<Blocked>,
    ) -> bool {
        let uid = uid.into();
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some((u, b)) = map.by_job.get(&job) {
            if *u == uid && (Arc::ptr_eq(b, blocked) || **b == **blocked) {
                return false;
            }
        }
        let shared = match &map.last {
            Some(last) if Arc::ptr_eq(last, blocked) || **last == **blocked => last.clone(),
            _ => {
                map.last = Some(blocked.clone());
                blocked.clone()
            }
        };
        map.by_job.insert(job, (uid, shared));
        true
    }

    /// Forgets the verdict (the job was placed, finished or deleted); returns whether there was one.
    pub fn clear(&self, job: &JobKey) -> bool {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let had = map.by_job.remove(job).is_some();
        if had {
            shrink_when_sparse(&mut map.by_job);
        }
        had
    }

    /// The verdict for the job with this key and uid, if any.
    pub fn get(&self, job: &JobKey, uid: &str) -> Option<Blocked> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.by_job
            .get(job)
            .filter(|(u, _)| **u == *uid)
            .map(|(_, b)| Blocked::clone(b))
    }

    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_job
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the scheduler may place for one job, as the job controller last published it.
///
/// What only this job has (uid, FIFO position, work) is inline; the rest — what its pods ask
/// for and how it is ordered, the same for every job submitted from one template — is an
/// [`EntryShape`] the book shares between entries ([`RunnableBook::publish`]), read through
/// `Deref` (`entry.request`, `entry.queue`, …).
#[derive(Clone, Debug, PartialEq)]
pub struct RunnableEntry {
    /// The job's uid (a re-created job of the same name is another job); the verdicts share it.
    pub uid: SharedStr,
    /// The job's `createdAt` (FIFO order).
    pub submitted_at_ms: i64,
    /// The job's `status.submissionOrder` (FIFO order within one `createdAt` second).
    pub submission_order: i64,
    pub work: RunnableWork,
    pub shape: Arc<EntryShape>,
}

impl std::ops::Deref for RunnableEntry {
    type Target = EntryShape;

    fn deref(&self) -> &EntryShape {
        &self.shape
    }
}

/// Changing a field of the shape gives this entry its own copy (the shared one is unchanged).
impl std::ops::DerefMut for RunnableEntry {
    fn deref_mut(&mut self) -> &mut EntryShape {
        Arc::make_mut(&mut self.shape)
    }
}

/// The part of a [`RunnableEntry`] that jobs of one template have in common.
#[derive(Clone, Debug)]
pub struct EntryShape {
    /// Interned (`cache::intern`): one copy per queue, not per entry.
    pub queue: Arc<str>,
    /// What one pod of the job asks for.
    pub request: Resources,
    pub constraints: Constraints,
    /// The definition revision the pods run.
    pub definition: Arc<ResolvedDefinition>,
    pub array_size: Option<u32>,
    /// Multi-node jobs: the gang's nodes (what each asks for, where it may go); `request` and
    /// `constraints` are then the main node's.
    pub gang: Option<barge_core::scheduler::Gang>,
    /// The job's `shareIdentifier` (fair-share queues order by it), interned.
    pub share: Option<Arc<str>>,
    /// `schedulingPriorityOverride`, else the definition's `schedulingPriority`, else 0.
    pub priority: i32,
}

/// Equal shapes: the definition compared by identity first (a revision is one shared
/// allocation; comparing its spec for every publish would cost more than the sharing saves).
impl PartialEq for EntryShape {
    fn eq(&self, other: &Self) -> bool {
        self.queue == other.queue
            && self.request == other.request
            && self.constraints == other.constraints
            && (Arc::ptr_eq(&self.definition, &other.definition)
                || self.definition == other.definition)
            && self.array_size == other.array_size
            && self.gang == other.gang
            && self.share == other.share
            && self.priority == other.priority
    }
}

impl RunnableEntry {
    /// Its work as barge-core's workloads (one per attempt group), with its share and
    /// scheduling priority: what the scheduler places, the pools' demand counts and `barge why`
    /// explains.
    pub fn workloads(&self, key: &JobKey) -> Vec<Workload> {
        let mut workloads = Vec::new();
        self.push_workloads(key, &mut workloads);
        workloads
    }

    /// [`RunnableEntry::workloads`], appended to `out`.
    pub fn push_workloads(&self, key: &JobKey, out: &mut Vec<Workload>) {
        let from = out.len();
        Workload::push_runnable(
            out,
            key,
            &self.queue,
            self.submitted_at_ms,
            self.submission_order,
            self.request,
            &self.constraints,
            self.gang.as_ref(),
            &self.work,
        );
        for w in &mut out[from..] {
            w.share = self.share.as_ref().map(SharedStr::from);
            w.priority = self.priority;
        }
    }
}

/// The RUNNABLE work of every job, written by the job controller and read by the scheduler
/// (Kueue's queue manager: pending work kept apart from the cache of what runs).
///
/// Entries are shared (`Arc`): a map sized for a burst's peak (100,000 queued jobs) holds a key
/// and a pointer per slot, not a whole ~200-byte entry per slot, used or not; and a scheduling
/// pass reads the book by cloning the map ([`RunnableBook::shared_entries`]: a reference count
/// per key and entry, no copy of their contents). A key's namespace is interned (one copy per
/// namespace), and a republished entry of the same job keeps its uid's allocation, which the
/// verdicts share.
#[derive(Default)]
pub struct RunnableBook {
    inner: RwLock<HashMap<JobKey, Arc<RunnableEntry>>>,
    /// The shape published last, which the next equal one shares (see `share_shape`).
    last_shape: Mutex<Option<Arc<EntryShape>>>,
    /// Changes so far (see [`RunnableBook::changes`]).
    changes: std::sync::atomic::AtomicU64,
}

impl RunnableBook {
    /// Publishes `entry` for `job`, replacing what was there; returns whether its work changed.
    pub fn publish(&self, job: JobKey, mut entry: RunnableEntry) -> bool {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        self.share_shape(&mut entry, map.get(&job).map(|old| &old.shape));
        match map.get_mut(&job) {
            Some(old) => {
                let same_job = old.uid == entry.uid;
                let changed = !same_job || old.work != entry.work;
                let differs = **old != entry;
                if same_job {
                    entry.uid = old.uid.clone();
                }
                *old = Arc::new(entry);
                if differs {
                    self.changed();
                }
                changed
            }
            None => {
                let namespace = SharedStr::from(crate::cache::intern(&job.namespace));
                map.insert(JobKey::shared(namespace, job.name), Arc::new(entry));
                self.changed();
                true
            }
        }
    }

    /// Gives `entry` the shape its job's previous entry or the entry published last has, when
    /// equal (jobs of one template are published one after another): one shared allocation
    /// for a whole burst, not one per job. Called under the book's write lock.
    fn share_shape(&self, entry: &mut RunnableEntry, previous: Option<&Arc<EntryShape>>) {
        let mut last = self.last_shape.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = previous
            .into_iter()
            .chain(last.as_ref())
            .find(|s| Arc::ptr_eq(s, &entry.shape) || ***s == *entry.shape)
        {
            entry.shape = shared.clone();
        }
        *last = Some(entry.shape.clone());
    }

    /// Removes the job's work (nothing to place, or the job is gone); returns whether it had any.
    pub fn withdraw(&self, job: &JobKey) -> bool {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let had = map.remove(job).is_some();
        if had {
            self.changed();
            shrink_when_sparse(&mut map);
            if map.is_empty() {
                // Nothing left to share it with: let its definition revision go.
                *self.last_shape.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
        }
        had
    }

    /// How many times an entry was added, replaced by a different one or withdrawn (counted
    /// under the write lock, after the change): unchanged since a reader last read the book, the
    /// book is the same (the scheduler's idle passes rest on it).
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Acquire)
    }

    fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Every published entry (shared, not copied).
    pub fn entries(&self) -> Vec<(JobKey, Arc<RunnableEntry>)> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The book as it is now, by job: a clone of the map, whose keys and entries are shared
    /// with the book (the read lock is held for one copy of the table and a reference count
    /// per entry, not for copying the entries' contents).
    pub fn shared_entries(&self) -> HashMap<JobKey, Arc<RunnableEntry>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The job's published entry.
    pub fn get(&self, job: &JobKey) -> Option<Arc<RunnableEntry>> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.get(job).cloned()
    }

    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes done recently whose effect the caches may not show yet (e.g. a released finalizer),
/// so that a reconcile on a lagging cache does not repeat them. Keyed by object uid; entries
/// expire after `ttl`.
pub struct RecentWrites {
    ttl: Duration,
    /// The writes, and the size at which expired ones are swept next.
    inner: Mutex<(HashMap<String, std::time::Instant>, usize)>,
}

/// Least size of a [`RecentWrites`] before expired writes are swept.
const RECENT_WRITES_SWEEP_AT: usize = 1024;

impl Default for RecentWrites {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            inner: Mutex::new((HashMap::new(), RECENT_WRITES_SWEEP_AT)),
        }
    }
}

impl RecentWrites {
    /// Whether `uid` was written within the ttl.
    pub fn contains(&self, uid: &str) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.0.get(uid).is_some_and(|at| at.elapsed() < self.ttl)
    }

    /// Remembers a write of `uid` (and forgets expired ones). The sweep runs when the map has
    /// doubled since the last one (amortised O(1) per write: sweeping the thousands of writes
    /// of the last 30 s on every insert was 6 % of the operator's CPU in a burst of 10,000
    /// jobs, one clock read per entry).
    pub fn insert(&self, uid: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, sweep_at) = &mut *inner;
        let now = std::time::Instant::now();
        if map.len() >= *sweep_at {
            let ttl = self.ttl;
            map.retain(|_, at| now.saturating_duration_since(*at) < ttl);
            *sweep_at = (map.len() * 2).max(RECENT_WRITES_SWEEP_AT);
        }
        map.insert(uid.to_string(), now);
    }

    /// Writes remembered (expired ones included until the next sweep).
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A channel of "reconcile this object now" requests for one controller
/// (`Controller::reconcile_on(trigger.stream())`).
pub struct Trigger<K: Resource<DynamicType = ()> + 'static> {
    tx: mpsc::UnboundedSender<ObjectRef<K>>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<ObjectRef<K>>>>,
}

impl<K: Resource<DynamicType = ()> + 'static> Default for Trigger<K> {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded();
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl<K: Resource<DynamicType = ()> + 'static> Trigger<K> {
    /// Requests a reconcile of `obj` (dropped silently once the controller has stopped).
    pub fn fire(&self, obj: ObjectRef<K>) {
        let _ = self.tx.unbounded_send(obj);
    }

    /// The request stream, for the controller; `None` if it was taken already.
    pub fn stream(&self) -> Option<impl Stream<Item = ObjectRef<K>> + Send + 'static + use<K>> {
        self.rx.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Reconcile requests for each controller.
#[derive(Default)]
pub struct Triggers {
    pub jobs: Trigger<crate::cache::JobRecord>,
    pub job_definitions: Trigger<JobDefinition>,
    pub job_queues: Trigger<JobQueue>,
    pub compute_environments: Trigger<ComputeEnvironment>,
    pub scheduling_policies: Trigger<SchedulingPolicy>,
}

/// A node group of a provider-backed pool (a Cluster API MachineDeployment) as the
/// ComputeEnvironment controller last read it. The scaling decision, which sizes every pool at
/// once, counts its machines from here — also those asked for that are no Node yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeGroup {
    pub namespace: String,
    pub name: String,
    /// The type of its machines (named in the spec, or read from its capacity annotations).
    pub instance_type: barge_core::pool::InstanceType,
    /// `spec.replicas`: the machines asked for (as read, or as Barge last set it).
    pub replicas: i64,
    /// When the deployment was read (ms since the epoch).
    pub read_at_ms: i64,
}

/// A job's status change left unwritten by status coalescing (the job controller's
/// `job_status_deferrals`): the job's uid, the record the change holds, and the state changes
/// it made since the written record (the Events and metrics of a later write announce them).
#[derive(Clone, Debug, PartialEq)]
pub struct UnwrittenJobStatus {
    pub uid: String,
    pub record: JobRecord,
    pub events: Vec<StateChange>,
}

impl UnwrittenJobStatus {
    /// Whether the job of `uid`, as `view` shows it (its written record, its pods now), is to be
    /// judged against this unwritten record instead of the written one (pure): the unwritten
    /// record saw the current attempt start (STARTING or RUNNING) where the written one still
    /// says RUNNABLE or STARTING, for the same attempt, and the pod of that attempt (a
    /// multi-node job's main node) is gone. Judged against the written record, the job would be
    /// RUNNABLE without a pod and the same attempt placed again; against the unwritten one,
    /// the pod vanished without a result and the attempt fails (the retry strategy decides),
    /// as if the start had been written — which is what the job would have done without
    /// coalescing. Nothing here waits for time: the unwritten record is kept until written.
    pub fn judges(&self, uid: &str, view: &JobView) -> bool {
        let written = &view.record;
        let started = |state: JobState| matches!(state, JobState::Starting | JobState::Running);
        let attempt = u32::try_from(written.attempts.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let main_node = view.spec.nodes.map(|n| n.main_node);
        let pod_present = view
            .pods
            .iter()
            .any(|p| p.attempt == attempt && p.array_index.is_none() && p.node_index == main_node);
        self.uid == uid
            && written.array.is_none()
            && self.record.array.is_none()
            && matches!(written.state, JobState::Runnable | JobState::Starting)
            && started(self.record.state)
            && self.record.attempts.len() == written.attempts.len()
            && !pod_present
    }
}

/// The job controller's feed filter over `written` (each job's last status write by this
/// replica, its resourceVersion; [`Context::job_written_versions`]) for a watch event of `key`
/// at resourceVersion `seen`: returns the write remembered before the event, and forgets it
/// once the cache holds that version or a newer one (a feed broadcasts an object after the
/// store holds it, so no reconcile can then find the cache behind that write). The map then
/// holds only writes whose echo is on its way, not one entry per job ever written: a queued
/// job's last event is usually the echo of its own write, which no reconcile follows (the
/// echo is filtered out) to forget it.
pub fn forget_caught_up_write(
    written: &mut HashMap<JobKey, u64>,
    key: &JobKey,
    seen: Option<u64>,
) -> Option<u64> {
    let last = written.get(key).copied();
    if let (Some(w), Some(s)) = (last, seen) {
        if s >= w {
            written.remove(key);
            // A burst's writes fill the map; its capacity goes once their echoes are in.
            shrink_when_sparse(written);
        }
    }
    last
}

/// What every controller and the scheduler receive.
pub struct Context {
    pub client: Client,
    pub caches: Arc<Caches>,
    pub metrics: Arc<Metrics>,
    pub events: EventPublisher,
    pub config: OperatorConfig,
    pub scheduler: SchedulerWakeup,
    pub verdicts: Verdicts,
    pub triggers: Triggers,
    /// RUNNABLE work published by the job controller for the scheduler.
    pub runnable: RunnableBook,
    /// Pods whose result finalizer this replica released recently.
    pub released_pods: RecentWrites,
    /// When each busy array job's status was last written (status coalescing).
    pub job_status_writes: Mutex<HashMap<JobKey, std::time::Instant>>,
    /// When the released pods of each array job with pods waiting to go were last deleted in a
    /// batch (the job controller; an entry goes once none waits).
    pub pod_disposals: Mutex<HashMap<JobKey, std::time::Instant>>,
    /// Jobs whose non-terminal status changes wait for the coalescing window: since when, and
    /// the record left unwritten.
    pub job_status_deferrals: StatusDeferrals<JobKey, UnwrittenJobStatus>,
    /// The resourceVersion of each job's last status write by this replica: a reconcile whose
    /// cached job is older waits for the cache instead of deciding on a record it already
    /// replaced (which could offer finished array children to the scheduler again).
    pub job_written_versions: Mutex<HashMap<JobKey, u64>>,
    /// Pod creations the API server refused, per job (written by the scheduler).
    pub pod_refusals: PodRefusals,
    /// Creations of the other nodes' pods of multi-node jobs that failed for good (refused, or
    /// not renderable), per job: the job controller backs off and warns once per message
    /// (written and read by the job controller only).
    pub node_pod_refusals: PodRefusals,
    /// Since when (ms) each node of a demand-scaled pool has had no pod (the
    /// ComputeEnvironment controller's scale-in clock; in memory, restarts with the operator).
    pub node_idle_since: Mutex<HashMap<String, i64>>,
    /// The node groups of each provider-backed compute environment (Cluster API), as its last
    /// reconcile read them (in memory; a restart reads them again before it scales).
    pub node_groups: Mutex<HashMap<String, Vec<NodeGroup>>>,
    /// Pods this replica stopped recently through their `activeDeadlineSeconds`.
    pub stopped_pods: RecentWrites,
    /// The other nodes' pods of multi-node jobs this replica created recently (keyed
    /// `<job uid>/<pod name>`): not created again while the cache lags behind.
    pub created_node_pods: RecentWrites,
}

impl Context {
    pub fn new(
        client: Client,
        caches: Arc<Caches>,
        metrics: Arc<Metrics>,
        events: EventPublisher,
        config: OperatorConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            caches,
            metrics,
            events,
            config,
            scheduler: SchedulerWakeup::default(),
            verdicts: Verdicts::default(),
            triggers: Triggers::default(),
            runnable: RunnableBook::default(),
            released_pods: RecentWrites::default(),
            job_status_writes: Mutex::new(HashMap::new()),
            pod_disposals: Mutex::new(HashMap::new()),
            job_status_deferrals: StatusDeferrals::default(),
            job_written_versions: Mutex::new(HashMap::new()),
            pod_refusals: PodRefusals::default(),
            node_pod_refusals: PodRefusals::default(),
            node_idle_since: Mutex::new(HashMap::new()),
            node_groups: Mutex::new(HashMap::new()),
            stopped_pods: RecentWrites::default(),
            created_node_pods: RecentWrites::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod unwritten_job_status {
        use super::*;
        use barge_core::fixtures::{attempt_pod, job, node_pod, secs, T0};
        use barge_core::job::{reconcile, JobRecord};

        /// The record the job controller holds back: attempt 1 STARTING (or RUNNING), over a
        /// written RUNNABLE record.
        fn unwritten(state: JobState, started_at_ms: Option<i64>) -> UnwrittenJobStatus {
            let mut record = JobRecord::submitted(T0);
            record.state = state;
            record.started_at_ms = started_at_ms;
            let mut events = vec![StateChange {
                from: JobState::Runnable,
                to: JobState::Starting,
                reason: None,
            }];
            if state == JobState::Running {
                events.push(StateChange {
                    from: JobState::Starting,
                    to: JobState::Running,
                    reason: None,
                });
            }
            UnwrittenJobStatus {
                uid: "uid-1".into(),
                record,
                events,
            }
        }

        #[test]
        fn a_start_left_unwritten_judges_the_job_once_its_pod_is_gone() {
            let running = unwritten(JobState::Running, Some(T0 + secs(1)));
            let gone = job("j").retry(2).state(JobState::Runnable).build();
            assert!(running.judges("uid-1", &gone));
            assert!(unwritten(JobState::Starting, None).judges("uid-1", &gone));
            // Judged against the unwritten record, the attempt fails and is retried: attempt
            // 2 is placed, not attempt 1 again.
            let mut judged = gone.clone();
            judged.record = running.record.clone();
            let plan = reconcile(&judged, T0 + secs(5));
            assert_eq!(plan.record.attempts.len(), 1, "{plan:#?}");
            assert!(plan.record.attempts[0].status_reason.contains("j-1"));
            assert_eq!(plan.record.state, JobState::Runnable);
            assert_eq!(
                plan.runnable,
                RunnableWork::Single {
                    attempt: 2,
                    retried: true
                }
            );
            // Against the written record it would have placed attempt 1 a second time.
            let unjudged = reconcile(&gone, T0 + secs(5));
            assert!(unjudged.record.attempts.is_empty());
            assert!(matches!(
                unjudged.runnable,
                RunnableWork::Single { attempt: 1, .. }
            ));
            // Out of attempts: the job fails.
            let mut last = job("j").state(JobState::Runnable).build();
            last.record = running.record.clone();
            assert_eq!(
                reconcile(&last, T0 + secs(5)).record.state,
                JobState::Failed
            );
        }

        #[test]
        fn the_written_record_decides_while_the_pod_is_there_or_nothing_started_unwritten() {
            let starting = unwritten(JobState::Starting, None);
            let with_pod = job("j")
                .state(JobState::Runnable)
                .pod(attempt_pod("j", 1, None).running(T0))
                .build();
            assert!(!starting.judges("uid-1", &with_pod), "the pod is there");
            let gone = job("j").state(JobState::Runnable).build();
            assert!(!starting.judges("uid-2", &gone), "another job of that name");
            let mut retried = gone.clone();
            retried.record.attempts = plan_attempts();
            assert!(
                !starting.judges("uid-1", &retried),
                "the written record is at another attempt"
            );
            let runnable = UnwrittenJobStatus {
                record: JobRecord {
                    state: JobState::Runnable,
                    ..starting.record.clone()
                },
                ..starting.clone()
            };
            assert!(
                !runnable.judges("uid-1", &gone),
                "a RUNNABLE change (a verdict) saw no start"
            );
            let finished = job("j").state(JobState::Succeeded).build();
            assert!(!starting.judges("uid-1", &finished), "written terminal");
            // A pod of another attempt does not stand for the current one.
            let older = job("j")
                .state(JobState::Runnable)
                .pod(attempt_pod("j", 2, None).running(T0))
                .build();
            assert!(starting.judges("uid-1", &older));
        }

        #[test]
        fn a_multi_node_job_is_judged_by_its_main_node() {
            let starting = unwritten(JobState::Starting, None);
            let main_gone = job("g")
                .nodes(3, 0)
                .state(JobState::Runnable)
                .pod(node_pod("g", 1, 1).running(T0))
                .build();
            assert!(
                starting.judges("uid-1", &main_gone),
                "another node's pod does not stand for the main node's"
            );
            let main_there = job("g")
                .nodes(3, 0)
                .state(JobState::Runnable)
                .pod(node_pod("g", 1, 0).running(T0))
                .build();
            assert!(!starting.judges("uid-1", &main_there));
        }

        /// One finished attempt, as a retried job's record holds it.
        fn plan_attempts() -> Vec<barge_core::job::AttemptRecord> {
            let failed = job("j")
                .retry(2)
                .state(JobState::Running)
                .pod(attempt_pod("j", 1, None).failed(1, T0, T0 + secs(1)))
                .build();
            reconcile(&failed, T0 + secs(2)).record.attempts
        }
    }

    #[test]
    fn a_written_version_is_forgotten_once_the_cache_has_caught_up() {
        let mut written = HashMap::new();
        let key = JobKey::new("ns", "a");
        assert_eq!(forget_caught_up_write(&mut written, &key, Some(5)), None);
        written.insert(key.clone(), 42);
        assert_eq!(
            forget_caught_up_write(&mut written, &key, Some(41)),
            Some(42),
            "an older event: the write is still on its way"
        );
        assert_eq!(
            forget_caught_up_write(&mut written, &key, None),
            Some(42),
            "a version that is not a number proves nothing"
        );
        assert!(written.contains_key(&key));
        assert_eq!(
            forget_caught_up_write(&mut written, &key, Some(42)),
            Some(42),
            "the echo"
        );
        assert!(written.is_empty(), "forgotten at its echo");
        written.insert(key.clone(), 42);
        assert_eq!(
            forget_caught_up_write(&mut written, &key, Some(50)),
            Some(42)
        );
        assert!(
            written.is_empty(),
            "a newer version (another write, a deletion)"
        );
    }

    #[test]
    fn recent_writes_sweep_expired_ones_only_when_the_map_has_grown() {
        let recent = RecentWrites::default();
        for i in 0..RECENT_WRITES_SWEEP_AT {
            recent.insert(&i.to_string());
        }
        recent.insert("one more");
        assert_eq!(
            recent.len(),
            RECENT_WRITES_SWEEP_AT + 1,
            "nothing expired: nothing swept"
        );
        assert!(recent.contains("7") && !recent.contains("never written"));
        let expired = RecentWrites {
            ttl: Duration::ZERO,
            ..RecentWrites::default()
        };
        for i in 0..RECENT_WRITES_SWEEP_AT {
            expired.insert(&i.to_string());
        }
        assert_eq!(
            expired.len(),
            RECENT_WRITES_SWEEP_AT,
            "no sweep below the mark"
        );
        expired.insert("last");
        assert_eq!(
            expired.len(),
            1,
            "the sweep at the mark forgot the expired ones"
        );
        assert!(!expired.contains("last"), "a zero ttl remembers nothing");
    }
    use futures::StreamExt;

    fn blocked(message: &str) -> Blocked {
        Blocked {
            kind: barge_core::job::BlockedKind::PodCreationFailed,
            status_reason: None,
            message: message.into(),
        }
    }

    #[test]
    fn providers_parse_from_the_flag_and_print_back() {
        let parsed: EnabledProviders = "karpenter, cluster-api".parse().expect("valid");
        assert!(parsed.allows(Provider::Karpenter) && parsed.allows(Provider::ClusterApi));
        assert!(!parsed.allows(Provider::Simulated));
        assert_eq!(parsed.to_string(), "karpenter,cluster-api");
        // The spec's field name is accepted too.
        assert_eq!(
            "clusterAPI".parse::<EnabledProviders>(),
            Ok(EnabledProviders::only(&[Provider::ClusterApi]))
        );
        for none in ["none", ""] {
            let parsed: EnabledProviders = none.parse().expect("valid");
            assert_eq!(parsed, EnabledProviders::none());
            assert_eq!(parsed.to_string(), "none");
        }
        assert_eq!(
            EnabledProviders::all().to_string(),
            "simulated,karpenter,cluster-api"
        );
        let err = "karpenter,fargate".parse::<EnabledProviders>().unwrap_err();
        assert!(
            err.contains("\"fargate\"") && err.contains("cluster-api"),
            "{err}"
        );
    }

    #[test]
    fn equal_verdicts_share_one_allocation_and_the_map_shrinks_after_a_burst() {
        let verdicts = Verdicts::default();
        for i in 0..4096 {
            assert!(verdicts.set(JobKey::new("ns", &format!("j{i}")), "u", blocked("no room")));
        }
        {
            let map = verdicts.inner.read().unwrap();
            let first = &map.by_job[&JobKey::new("ns", "j0")].1;
            let last = &map.by_job[&JobKey::new("ns", "j4095")].1;
            assert!(Arc::ptr_eq(first, last), "one verdict for the whole queue");
            assert!(map.by_job.capacity() >= 4096);
        }
        assert!(verdicts.set(JobKey::new("ns", "j1"), "u", blocked("other")));
        assert!(!verdicts.set(JobKey::new("ns", "j2"), "u", blocked("no room")));
        assert_eq!(
            verdicts.get(&JobKey::new("ns", "j1"), "u"),
            Some(blocked("other"))
        );
        assert_eq!(
            verdicts.get(&JobKey::new("ns", "j2"), "u"),
            Some(blocked("no room"))
        );
        for i in 0..4000 {
            verdicts.clear(&JobKey::new("ns", &format!("j{i}")));
        }
        let map = verdicts.inner.read().unwrap();
        assert_eq!(map.by_job.len(), 96);
        assert!(
            map.by_job.capacity() < 1024,
            "capacity {} after the burst",
            map.by_job.capacity()
        );
    }

    fn runnable(uid: &str, work: RunnableWork) -> RunnableEntry {
        RunnableEntry {
            uid: uid.into(),
            submitted_at_ms: 0,
            submission_order: 0,
            work,
            shape: Arc::new(EntryShape {
                queue: crate::cache::intern("q"),
                request: Resources::default(),
                constraints: Constraints::default(),
                definition: Arc::new(ResolvedDefinition {
                    name: "d".into(),
                    revision: 1,
                    spec: serde_json::from_value(serde_json::json!({
                        "type": "container", "containerProperties": {"image": "busybox"}
                    }))
                    .expect("spec"),
                }),
                array_size: None,
                gang: None,
                share: None,
                priority: 0,
            }),
        }
    }

    #[test]
    fn the_runnable_book_counts_every_change_a_scheduling_pass_could_see() {
        let book = RunnableBook::default();
        let single = RunnableWork::Single {
            attempt: 1,
            retried: false,
        };
        let key = JobKey::new("ns", "a");
        let counted = |change: &dyn Fn()| {
            let before = book.changes();
            change();
            book.changes() - before
        };
        assert_eq!(
            counted(&|| {
                book.publish(key.clone(), runnable("u", single.clone()));
            }),
            1,
            "new"
        );
        assert_eq!(
            counted(&|| {
                book.publish(key.clone(), runnable("u", single.clone()));
            }),
            0,
            "the same entry again (a reconcile that changed nothing)"
        );
        let mut higher = runnable("u", single.clone());
        higher.priority = 5;
        assert_eq!(
            counted(&|| {
                book.publish(key.clone(), higher.clone());
            }),
            1,
            "the same work with another priority: no wake-up, but the pass orders by it"
        );
        assert_eq!(
            counted(&|| {
                book.withdraw(&key);
            }),
            1,
            "withdrawn"
        );
        assert_eq!(
            counted(&|| {
                book.withdraw(&key);
            }),
            0,
            "nothing to withdraw"
        );
    }

    #[test]
    fn entries_of_one_template_share_one_shape_and_a_changed_one_gets_its_own() {
        let book = RunnableBook::default();
        let single = RunnableWork::Single {
            attempt: 1,
            retried: false,
        };
        for name in ["a", "b", "c"] {
            assert!(book.publish(
                JobKey::new("ns", name),
                runnable(&format!("u-{name}"), single.clone())
            ));
        }
        let shape = |name: &str| {
            book.get(&JobKey::new("ns", name))
                .expect("published")
                .shape
                .clone()
        };
        assert!(Arc::ptr_eq(&shape("a"), &shape("b")) && Arc::ptr_eq(&shape("b"), &shape("c")));
        assert_eq!(shape("a").request, Resources::default());
        // Another priority is another shape: b's changes, a's and c's stay shared.
        let mut higher = runnable("u-b", single.clone());
        higher.priority = 5;
        book.publish(JobKey::new("ns", "b"), higher);
        assert_eq!(book.get(&JobKey::new("ns", "b")).unwrap().priority, 5);
        assert_eq!(book.get(&JobKey::new("ns", "a")).unwrap().priority, 0);
        assert!(!Arc::ptr_eq(&shape("a"), &shape("b")));
        assert!(Arc::ptr_eq(&shape("a"), &shape("c")));
        // A job republished unchanged keeps the shape it had, even after another was published.
        book.publish(JobKey::new("ns", "a"), runnable("u-a", single.clone()));
        assert!(Arc::ptr_eq(&shape("a"), &shape("c")));
        // Changing a field through an entry copies its shape; the shared one is unchanged.
        let mut copy = (*book.get(&JobKey::new("ns", "c")).unwrap()).clone();
        copy.share = Some(crate::cache::intern("blue"));
        assert!(shape("c").share.is_none());
        assert!(!Arc::ptr_eq(&copy.shape, &shape("c")));
        for name in ["a", "b", "c"] {
            book.withdraw(&JobKey::new("ns", name));
        }
        assert!(
            book.last_shape.lock().unwrap().is_none(),
            "an empty book holds no shape (nor its definition revision)"
        );
    }

    #[test]
    fn the_runnable_book_shares_its_keys_uids_and_entries_with_a_pass() {
        let book = RunnableBook::default();
        let single = |attempt| RunnableWork::Single {
            attempt,
            retried: false,
        };
        assert!(book.publish(JobKey::new("ns", "a"), runnable("u-a", single(1))));
        assert!(book.publish(JobKey::new("ns", "b"), runnable("u-b", single(1))));
        assert!(
            !book.publish(JobKey::new("ns", "a"), runnable("u-a", single(1))),
            "the same work again is no change"
        );
        let first = book.get(&JobKey::new("ns", "a")).expect("published");
        assert!(book.publish(JobKey::new("ns", "a"), runnable("u-a", single(2))));
        let second = book.get(&JobKey::new("ns", "a")).expect("published");
        assert_eq!(second.work, single(2));
        assert!(
            SharedStr::ptr_eq(&first.uid, &second.uid),
            "a republished entry of the same job keeps its uid's allocation"
        );
        assert!(
            book.publish(JobKey::new("ns", "a"), runnable("u-a2", single(2))),
            "a re-created job (another uid) is a change"
        );

        // A pass's copy: the book's keys and entries, shared.
        let pass = book.shared_entries();
        assert_eq!(pass.len(), 2);
        let (key_a, entry_a) = pass.get_key_value(&JobKey::new("ns", "a")).expect("a");
        let (key_b, _) = pass.get_key_value(&JobKey::new("ns", "b")).expect("b");
        assert!(
            SharedStr::ptr_eq(&key_a.namespace, &key_b.namespace),
            "one namespace allocation for the namespace's jobs"
        );
        assert!(Arc::ptr_eq(
            entry_a,
            &book.get(&JobKey::new("ns", "a")).expect("a")
        ));
        let (listed_key, listed) = book
            .entries()
            .into_iter()
            .find(|(k, _)| k.name == "a")
            .expect("listed");
        assert!(SharedStr::ptr_eq(&listed_key.name, &key_a.name));
        assert!(Arc::ptr_eq(&listed, entry_a));

        // A verdict set from the pass's entry holds the book's key and uid, not copies.
        let verdicts = Verdicts::default();
        let verdict = Arc::new(blocked("no room"));
        assert!(verdicts.set_shared(key_a.clone(), &entry_a.uid, &verdict));
        assert!(
            !verdicts.set_shared(key_a.clone(), &entry_a.uid, &verdict),
            "the same verdict is no change"
        );
        {
            let map = verdicts.inner.read().unwrap();
            let (key, (uid, held)) = map.by_job.get_key_value(key_a).expect("set");
            assert!(SharedStr::ptr_eq(&key.name, &key_a.name));
            assert!(SharedStr::ptr_eq(uid, &entry_a.uid));
            assert!(Arc::ptr_eq(held, &verdict));
        }
        assert_eq!(verdicts.get(key_a, "u-a2"), Some(blocked("no room")));

        assert!(book.withdraw(&JobKey::new("ns", "a")));
        assert!(!book.withdraw(&JobKey::new("ns", "a")));
        assert_eq!(pass.len(), 2, "a pass's copy is its own");
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn verdicts_report_changes_and_ignore_other_uids() {
        let verdicts = Verdicts::default();
        let key = JobKey::new("ns", "a");
        assert!(verdicts.set(key.clone(), "u1", blocked("no room")));
        assert!(
            !verdicts.set(key.clone(), "u1", blocked("no room")),
            "same verdict is no change"
        );
        assert!(verdicts.set(key.clone(), "u1", blocked("other")));
        assert_eq!(verdicts.get(&key, "u1"), Some(blocked("other")));
        assert_eq!(
            verdicts.get(&key, "u2"),
            None,
            "a re-created job does not inherit it"
        );
        assert!(verdicts.clear(&key));
        assert!(!verdicts.clear(&key));
        assert!(verdicts.is_empty());
    }

    #[test]
    fn recent_writes_are_remembered_until_they_expire() {
        let recent = RecentWrites {
            ttl: Duration::from_millis(30),
            ..RecentWrites::default()
        };
        recent.insert("u1");
        assert!(recent.contains("u1"));
        assert!(!recent.contains("u2"));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!recent.contains("u1"), "expired");
    }

    #[tokio::test]
    async fn scheduler_wakeups_coalesce() {
        let wakeup = SchedulerWakeup::default();
        wakeup.wake();
        wakeup.wake();
        tokio::time::timeout(Duration::from_secs(1), wakeup.woken())
            .await
            .expect("pending wake-up");
        let second = tokio::time::timeout(Duration::from_millis(20), wakeup.woken()).await;
        assert!(second.is_err(), "two wake-ups before a look are one pass");
    }

    #[tokio::test]
    async fn a_trigger_stream_is_handed_out_once() {
        let trigger: Trigger<crate::cache::JobRecord> = Trigger::default();
        let mut stream = trigger.stream().expect("first take");
        assert!(trigger.stream().is_none());
        trigger.fire(ObjectRef::new("j").within("ns"));
        assert_eq!(stream.next().await.expect("fired").name, "j");
    }
}
