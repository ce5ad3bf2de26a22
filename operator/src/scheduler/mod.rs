//! The scheduler loop: stores → snapshot → `barge_core::scheduler::schedule` → pods.
//!
//! One task on the leader (the only writer of placements). Each pass is a numbered recipe, each
//! step a function whose duration is logged (and the whole pass measured in
//! `barge_pass_seconds`):
//! 1. `collect_work`: the RUNNABLE work the job controller published in the
//!    [`RunnableBook`](crate::context::RunnableBook) (read once per pass by
//!    `current_entries`, which drops work of jobs that no longer exist), minus units whose
//!    pod was just created (assumed);
//! 2. `snapshot`: queues, compute environments and nodes from the caches; each node's usage
//!    counts every bound pod (Barge's or not) plus the assumed pods not yet in the cache, and
//!    its Barge pods and exclusivity (a node of a multi-node job runs or is reserved there)
//!    likewise; an
//!    environment with `bindingMode: KubeScheduler` gets a vCPU budget instead (`maxvCpus` —
//!    for an unmanaged one, its nodes' allocatable CPU — minus the CPU of its Barge pods,
//!    bound or not, and of the assumed pods not yet in the cache);
//! 3. decide: the pure pass (`barge_core::scheduler::schedule`);
//! 4. `bind`: assume each placement's resources until the pod cache shows its pod ("assume,
//!    then write") and hand its pod — bound to its node, or unbound, for the kube-scheduler to
//!    place, in budget mode — to the [`PodCreator`], which creates it in the background
//!    (`--pod-create-concurrency` in flight continuously; the pass does not wait: the next
//!    pass sees the assumed units as taken, and a refused create gives its unit back).
//!    Deterministic names: a placement repeated after a restart meets AlreadyExists, never a
//!    twin. A multi-node job's gang
//!    is placed whole: its headless Service, then only the main node's pod, which records the
//!    Kubernetes node reserved for every node (`batch.barge.dev/gang-nodes`); every node is
//!    assumed until the caches show the main pod, whose annotation then keeps the reservation
//!    (the job controller creates the other nodes' pods once the main node runs);
//! 5. `explain`: leave each unplaced job's verdict for the job controller (which turns it into
//!    a condition and, for "can never run" or "no room can appear soon", a status reason) and
//!    wake that job on change; waiting for capacity is no verdict (that is what RUNNABLE says);
//! 6. queue status (every `--queue-status-interval-ms`): each queue's `status.fairShare` and
//!    `status.frontOfQueue` from what is left of the snapshot once the placed units are out,
//!    written only when changed ([`fair_share`]). A due round whose inputs are unchanged since
//!    the last round that ran in full, whose statuses did not depend on the clock and whose
//!    writes all succeeded is left out with steps 1–5 ([`unchanged::Reported`]): it would
//!    write nothing.
//!
//! Fair share: before step 2 of every pass (also one with nothing RUNNABLE) the usage ledgers
//! of the fair-share queues are advanced with what each share runs now (the caches' count plus
//! the assumed pods), and the snapshot's fair-share queues get their shares (running vCPUs,
//! unfinished jobs, usage) before the pass decides. The loop recovers the ledgers from the
//! queues' status when it starts (see [`fair_share`]).
//!
//! Passes run on every wake-up (coalesced) and on a tick.

pub mod fair_share;
pub mod pod_creator;
pub mod unchanged;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use tracing::{debug, info, warn};

use barge_core::job::{Blocked, BlockedKind, RunnableWork};
use barge_core::pod_creation::Unit;
use barge_core::reasons::POD_CREATION_REFUSED;
use barge_core::resources::Resources;
use barge_core::scheduler::{
    schedule, JobKey, NodeSnapshot, PassResult, Placement, SharedStr, Snapshot, Units, Unplaced,
    Workload,
};
use barge_crds::compute_environment::{BindingMode, ComputeEnvironment};
use barge_crds::consts::{FINALIZER_ATTEMPT_RESULT, LABEL_COMPUTE_ENVIRONMENT, LABEL_JOB_UID};
use barge_crds::job::Job;

use crate::cache::{Caches, JobRecord};
use crate::context::{Context, RunnableEntry};
use crate::events::{counted, EventSpec, ACTION_PLACE_GANG, REASON_GANG_PLACED};
use crate::nodepools::{node_snapshot, scheduler_environment};
use crate::pod_refusals::refusal_message;
use crate::pods::{node_service, release_pod, render_pod, AttemptPod, NodePod};
use crate::queue_access::queue_specs;
use crate::shutdown::Shutdown;
use crate::status::is_conflict;
use fair_share::{
    fill_fair_share_with, remove_placed, write_queue_statuses, AssumedShares, Ledgers,
    QueueStatusState,
};
use pod_creator::{Answer, PodCreator, Withdrawn};
use unchanged::{depends_on_time, Inputs, Reported, Settled};

/// How long a created pod may stay unseen by the caches before the scheduler asks the API
/// server whether it still exists (a check, not an expiry: see `verify_unseen`).
const VERIFY_UNSEEN_AFTER: Duration = Duration::from_secs(30);
/// Unseen assumptions checked with a GET in one pass, at most (and how many at once).
const VERIFY_PER_PASS: usize = 64;
const VERIFY_CONCURRENCY: usize = 8;
/// Event action of a refused pod creation.
pub const ACTION_CREATE_POD: &str = "CreatePod";
/// Every how many passes pods of vanished jobs are released.
const SWEEP_EVERY: u64 = 10;

/// A pod created by the scheduler and not yet seen in the cache — or, for a gang, a node
/// reserved for a pod the job controller creates later.
struct Assumed {
    /// None: an unbound pod (budget mode).
    node: Option<String>,
    /// Its compute environment.
    environment: String,
    request: Resources,
    job: JobKey,
    attempt: u32,
    array_index: Option<u32>,
    /// The node index, for a node of a multi-node job's gang.
    node_index: Option<u32>,
    /// The scheduler created this pod. False for a gang's other nodes: only their Kubernetes
    /// nodes are reserved (the main pod's annotation records them); the job controller creates
    /// their pods once the main node runs. Such an assumption stands only as long as its main
    /// node's does, and its pod is never looked up.
    created: bool,
    /// When the pod was created, or last checked with a GET.
    at: Instant,
    /// The pod cache has shown the pod (or a GET found it): from then on its usage is the
    /// cache's to count.
    seen: bool,
    /// A GET found no such pod although the caches never showed it (see `verify_unseen`).
    lost: bool,
    /// (queue, share identifier) of a job that names a share: until the caches count the pod,
    /// its vCPUs run for that share (fair share).
    share: Option<(String, String)>,
    /// Its creation waits for the API server's answer (queued or in flight in the
    /// [`PodCreator`]); the flag withdraws it while it is not sent yet.
    in_flight: Option<Withdrawn>,
}

/// What the loop keeps between passes (nothing authoritative: a new leader starts empty).
#[derive(Default)]
pub struct LoopState {
    /// Keyed by (namespace, pod name).
    assumed: HashMap<(String, String), Assumed>,
    passes: u64,
    /// Fair-share usage ledgers and the queues' status written at a bounded rate.
    pub queue_status: QueueStatusState,
    /// Changes to `assumed` that a pass reads (see [`unchanged`]): an assumption made or
    /// dropped, a pod seen or found lost.
    assumed_changes: u64,
    /// The last pass, when it placed nothing: a pass whose inputs are unchanged since decides
    /// nothing anew ([`unchanged`]).
    settled: Option<Settled>,
    /// The last queue-status round that ran in full, when its pass placed nothing: a due round
    /// whose inputs are unchanged since writes nothing anew ([`unchanged`]).
    reported: Option<Reported>,
    /// The caches' change count when orphaned pods were last swept without a failure.
    swept_at: Option<u64>,
}

/// Runs the loop until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) {
    let mut state = LoopState::default();
    let mut creator = PodCreator::start(ctx.client.clone(), ctx.config.pod_create_concurrency);
    // Usage is recovered from the queues' status before anything is written (the caches are
    // synced before the workers start).
    state.queue_status.ledgers =
        Ledgers::recovered(&ctx.caches, jiff::Timestamp::now().as_millisecond());
    let mut tick = tokio::time::interval(ctx.config.scheduler_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = shutdown.clone().wait();
    tokio::pin!(stop);
    let mut not_before = Instant::now();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            answer = creator.answer() => {
                take_answer(&ctx, &mut state, answer);
                continue;
            }
            _ = ctx.scheduler.woken() => {}
            _ = tick.tick() => {}
        }
        // Wake-ups that come while a pass waits out its pace are one pass (the notification is
        // kept); answers to creates are taken at the start of the pass.
        if let Some(wait) = not_before.checked_duration_since(Instant::now()) {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let started = Instant::now();
        pass(&ctx, &mut state, &mut creator).await;
        not_before = next_pass_not_before(started, Instant::now());
    }
    debug!("scheduler stopped");
}

/// When the pass after one that ran from `started` to `ended` may start at the earliest: as
/// long after it as it took. A pass over a small book takes milliseconds and this changes
/// nothing; over 100,000 RUNNABLE jobs it takes a good part of a second, and without a pace the
/// wake-ups of a submission burst (every admitted job wakes the scheduler) ran passes back to
/// back, one core busy re-deciding the same book while admission and the API server waited for
/// CPU. Paced, the loop uses at most half of one core's time. Latency only: nothing waits on a
/// pass for correctness.
fn next_pass_not_before(started: Instant, ended: Instant) -> Instant {
    ended + ended.saturating_duration_since(started)
}

/// One scheduling pass; its pods are created by `creator`, in the background.
pub async fn pass(ctx: &Context, state: &mut LoopState, creator: &mut PodCreator) {
    let started = Instant::now();
    // What the API server answered to earlier passes' creates.
    while let Some(answer) = creator.try_answer() {
        take_answer(ctx, state, answer);
    }
    // Before the book is read: a GET for each pod created long ago and never seen.
    verify_unseen(ctx, state).await;
    // What the decision reads, counted before any of it is read: a change made from now on
    // shows in the next pass's counts.
    let inputs = Inputs {
        book: ctx.runnable.changes(),
        caches: ctx.caches.scheduling_changes(),
        refusals: ctx.pod_refusals.changes(),
        assumed: state.assumed_changes,
    };
    let decided_ms = jiff::Timestamp::now().as_millisecond();
    let status_due = state
        .queue_status
        .round_due(ctx.config.queue_status_interval, Instant::now());
    // Steps 1–5 would decide what the last pass decided: nothing to place, the verdicts in
    // place. The usage ledgers still advance (the queue status reads them). A due queue-status
    // round is left out likewise only when it would write nothing: its inputs unchanged since
    // a round that wrote all it planned, and its statuses not moving with the clock.
    let unchanged = if status_due {
        state
            .reported
            .is_some_and(|r| r.reports_again(&inputs, decided_ms))
    } else {
        state
            .settled
            .is_some_and(|s| s.decides_again(&inputs, decided_ms))
    };
    if unchanged {
        let assumed = assumed_shares(&ctx.caches, state);
        state
            .queue_status
            .ledgers
            .advance_with(&ctx.caches, &assumed, decided_ms);
        ctx.metrics.passes_unchanged.inc();
        if status_due {
            ctx.metrics.queue_status_rounds_unchanged.inc();
        }
        finish(ctx, state, started).await;
        return;
    }
    state.settled = None;
    // The book is read once per pass; every step works on this copy (of the map: the entries
    // are shared with the book, not copied).
    let entries = current_entries(ctx);
    forget_seen(ctx, state, &entries);
    // 1.
    let workloads = collect_work(state, &entries);
    // Jobs whose pod creations were refused wait out their backoff.
    let workloads = hold_back_refused(ctx, workloads, decided_ms);
    let t_collect = started.elapsed();
    // Usage decays and accrues on every pass, whether or not anything waits.
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let assumed = assumed_shares(&ctx.caches, state);
    state
        .queue_status
        .ledgers
        .advance_with(&ctx.caches, &assumed, now_ms);
    let mut left = None;
    // What this pass decided on, if it places nothing (and so may be taken again).
    let mut settled = Some(Settled {
        inputs,
        next_retry_ms: ctx.pod_refusals.next_retry_ms(decided_ms),
        timed: false,
    });
    if !workloads.is_empty() {
        // 2.
        let mut snap = snapshot(&ctx.caches, state, workloads);
        fill_fair_share_with(
            &ctx.caches,
            &state.queue_status.ledgers,
            &assumed,
            &mut snap,
        );
        let t_snapshot = started.elapsed();
        // 3.
        let result = schedule(&snap);
        let t_decide = started.elapsed();
        // 4.
        let failures = bind(ctx, state, creator, &result, &entries);
        let t_bind = started.elapsed();
        // 5.
        explain(ctx, &snap, &result, &entries, &failures);
        ctx.metrics.placements.inc_by(result.stats.units_placed);
        debug!(
            workloads = snap.workloads.len(),
            placed = result.stats.units_placed,
            collect_ms = t_collect.as_secs_f64() * 1e3,
            snapshot_ms = (t_snapshot - t_collect).as_secs_f64() * 1e3,
            decide_ms = (t_decide - t_snapshot).as_secs_f64() * 1e3,
            bind_ms = (t_bind - t_decide).as_secs_f64() * 1e3,
            "scheduling pass"
        );
        if result.placements.is_empty() && failures.is_empty() {
            if let Some(settled) = settled.as_mut() {
                settled.timed = depends_on_time(&snap);
            }
        } else {
            settled = None;
        }
        if status_due {
            remove_placed(&mut snap, &result.placements);
            left = Some(snap);
        }
    }
    state.settled = settled;
    // 6.
    if status_due {
        let mut snap = left.unwrap_or_else(|| snapshot(&ctx.caches, state, Vec::new()));
        // The pods just created run for their shares.
        let assumed = assumed_shares(&ctx.caches, state);
        fill_fair_share_with(
            &ctx.caches,
            &state.queue_status.ledgers,
            &assumed,
            &mut snap,
        );
        let written = write_queue_statuses(ctx, &mut state.queue_status, &snap, now_ms).await;
        state.reported = settled.map(|pass| Reported {
            pass,
            timed: depends_on_time(&snap),
            written,
        });
    }
    finish(ctx, state, started).await;
}

/// The end of every pass, decided or not: orphaned pods swept every [`SWEEP_EVERY`] passes
/// (when the caches changed since the last sweep that released everything it found), and the
/// pass counted.
async fn finish(ctx: &Context, state: &mut LoopState, started: Instant) {
    state.passes += 1;
    // Until every job is listed (start-up), a pod's job missing from the cache may be a
    // finished one not listed yet: no pod is taken for an orphan before that.
    if state.passes.is_multiple_of(SWEEP_EVERY) && ctx.caches.all_jobs_listed() {
        // Counted before the caches are read, like a pass's inputs.
        let caches = ctx.caches.scheduling_changes();
        if state.swept_at != Some(caches) {
            let released_all = sweep_orphans(ctx).await;
            state.swept_at = released_all.then_some(caches);
        }
    }
    ctx.metrics
        .pass_seconds
        .observe(started.elapsed().as_secs_f64());
}

/// Drops assumptions the job controller has caught up with: it no longer offers the unit (it
/// saw the pod, which may already have run and gone). Until then the unit is not placed again,
/// however long that takes: no timer decides it. Its resources count as used until the usage
/// cache counts the pod itself (see `snapshot`).
///
/// Why that is enough for "a child that has SUCCEEDED never runs again": the job controller
/// publishes the book from the plan it has just recorded before it deletes a pod or releases
/// its result finalizer, and a pod cannot go while it holds that finalizer. So once a unit's
/// pod is gone, the book no longer offers the unit, and the assumption is dropped only when
/// the book stops offering it.
///
/// A gang's reserved nodes go with its main pod: when the main pod's assumption goes, so do
/// theirs (by then the main pod's annotation holds the reservation in the node usage — or the
/// pod is gone and the gang may be placed again).
fn forget_seen(ctx: &Context, state: &mut LoopState, entries: &Entries) {
    let mut changed = false;
    state.assumed.retain(|(namespace, name), a| {
        let seen = a.seen
            || ctx.caches.usage.contains(namespace, name)
            || ctx
                .caches
                .pods
                .get(&ObjectRef::new(name).within(namespace))
                .is_some();
        changed |= seen != a.seen;
        a.seen = seen;
        let kept = a.kept(entries.get(&a.job).map(Arc::as_ref));
        if !kept {
            a.withdraw();
        }
        changed |= !kept;
        kept
    });
    let before = state.assumed.len();
    forget_orphaned_reservations(&mut state.assumed);
    if changed || state.assumed.len() != before {
        state.assumed_changes += 1;
    }
}

/// Millicpu per (queue, share) of the pods this loop created that the caches do not count yet.
fn assumed_shares(caches: &Caches, state: &LoopState) -> AssumedShares {
    let mut shares = AssumedShares::new();
    for ((namespace, name), a) in &state.assumed {
        let Some(share) = &a.share else { continue };
        if a.seen || caches.usage.contains(namespace, name) {
            continue;
        }
        *shares.entry(share.clone()).or_default() += a.request.milli_cpu;
    }
    shares
}

/// Drops the reserved nodes of gangs whose main pod is no longer assumed.
fn forget_orphaned_reservations(assumed: &mut HashMap<(String, String), Assumed>) {
    let mains: HashSet<(JobKey, u32)> = assumed
        .values()
        .filter(|a| a.node_index.is_some() && a.created)
        .map(|a| (a.job.clone(), a.attempt))
        .collect();
    assumed.retain(|_, a| {
        let kept = a.created || mains.contains(&(a.job.clone(), a.attempt));
        if !kept {
            a.withdraw();
        }
        kept
    });
}

impl Assumed {
    /// Whether the assumption still stands, given the job's current entry in the book: while
    /// the book offers its unit, however old it is — unless a GET found its pod gone.
    fn kept(&self, entry: Option<&RunnableEntry>) -> bool {
        !self.lost
            && entry
                .is_some_and(|e| offers(&e.work, self.attempt, self.array_index, self.node_index))
    }

    /// Whether its pod is due for a GET: created (the API server answered its create), and
    /// never shown by the caches for `VERIFY_UNSEEN_AFTER` since.
    fn due_for_check(&self, now: Instant) -> bool {
        self.created
            && self.in_flight.is_none()
            && !self.seen
            && !self.lost
            && now.duration_since(self.at) >= VERIFY_UNSEEN_AFTER
    }

    /// The assumption is dropped: a creation not sent yet is no longer wanted.
    fn withdraw(&self) {
        if let Some(flag) = &self.in_flight {
            flag.store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// The API server answered its creation (created, or it existed already): from `now` the
    /// caches have `VERIFY_UNSEEN_AFTER` to show the pod.
    fn answered(&mut self, now: Instant) {
        self.in_flight = None;
        self.at = now;
    }

    /// Takes in what a GET of its pod answered (`Some(found)`, or None when the GET failed).
    fn checked(&mut self, found: Option<bool>, now: Instant) {
        match found {
            Some(true) => self.seen = true,
            Some(false) => self.lost = true,
            // Checked again after another interval.
            None => self.at = now,
        }
    }
}

/// A pod (namespace, name) and what a GET of it answered.
type PodLookup = ((String, String), Result<Option<Pod>, kube::Error>);

/// Asks the API server about pods created long ago that the caches never showed: one found is
/// seen; one that does not exist (someone removed its finalizer and deleted it before the watch
/// showed it) is lost, and its unit may be placed again if the book — read after this GET —
/// still offers it. (A pod whose result was recorded is deleted only after the book stopped
/// offering its unit, so a book read after the GET cannot offer a finished unit.)
async fn verify_unseen(ctx: &Context, state: &mut LoopState) {
    let now = Instant::now();
    let due: Vec<(String, String)> = state
        .assumed
        .iter()
        .filter(|(_, a)| a.due_for_check(now))
        .map(|(key, _)| key.clone())
        .take(VERIFY_PER_PASS)
        .collect();
    if due.is_empty() {
        return;
    }
    let client = ctx.client.clone();
    let answers: Vec<PodLookup> = futures::stream::iter(due)
        .map(|(namespace, name)| {
            let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
            async move {
                let found = api.get_opt(&name).await;
                ((namespace, name), found)
            }
        })
        .buffer_unordered(VERIFY_CONCURRENCY)
        .collect()
        .await;
    for (key, answer) in answers {
        let Some(a) = state.assumed.get_mut(&key) else {
            continue;
        };
        let found = match answer {
            Ok(pod) => {
                if pod.is_none() {
                    warn!(pod = %key.1, namespace = %key.0, "a created pod is gone before the caches showed it");
                }
                Some(pod.is_some())
            }
            Err(e) => {
                debug!(pod = %key.1, error = %e, "checking an unseen pod failed; checking again later");
                None
            }
        };
        a.checked(found, Instant::now());
        if found.is_some() {
            state.assumed_changes += 1;
        }
    }
}

/// Whether `work` still offers the unit (attempt, array index or node index) to the
/// scheduler. A node of a gang is offered while the gang's attempt is.
fn offers(
    work: &RunnableWork,
    attempt: u32,
    array_index: Option<u32>,
    node_index: Option<u32>,
) -> bool {
    match (work, array_index, node_index) {
        (RunnableWork::Single { attempt: a, .. }, None, None) => *a == attempt,
        (RunnableWork::Array { groups }, Some(index), None) => groups
            .iter()
            .any(|g| g.attempt == attempt && g.indices.contains(index)),
        (RunnableWork::Gang { attempt: a, .. }, None, Some(_)) => *a == attempt,
        _ => false,
    }
}

/// The runnable book as one pass reads it: each job's published entry, shared with the book.
type Entries = HashMap<JobKey, Arc<RunnableEntry>>;

/// The published work of jobs that still exist (work of a deleted or re-created job is
/// withdrawn from the book). A copy of the book's map, not of its entries: a pass over
/// 100,000 jobs copied every entry (its strings, array groups and gang) before.
fn current_entries(ctx: &Context) -> Entries {
    let mut entries = ctx.runnable.shared_entries();
    entries.retain(|key, entry| {
        let current = ctx.caches.job(&key.namespace, &key.name);
        let alive = current
            .is_some_and(|j| kube::Resource::meta(&*j).uid.as_deref() == Some(entry.uid.as_str()));
        if !alive {
            ctx.runnable.withdraw(key);
        }
        alive
    });
    entries
}

/// Step 1: the published work as workloads, minus the units whose pods were just created (a
/// gang is not offered while any of its nodes is assumed).
fn collect_work(state: &LoopState, entries: &Entries) -> Vec<Workload> {
    let mut in_flight: HashMap<(&JobKey, u32), Vec<Option<u32>>> = HashMap::new();
    for a in state.assumed.values() {
        in_flight
            .entry((&a.job, a.attempt))
            .or_default()
            .push(a.array_index);
    }
    let mut workloads = Vec::with_capacity(entries.len());
    // One entry's workloads (one per attempt group), reused for every entry.
    let mut of_entry = Vec::new();
    for (key, entry) in entries {
        entry.push_workloads(key, &mut of_entry);
        for mut workload in of_entry.drain(..) {
            if let Some(indices) = in_flight.get(&(key, workload.attempt)) {
                match &mut workload.units {
                    Units::Single | Units::Gang(_) => continue,
                    Units::Array(set) => {
                        for index in indices.iter().flatten() {
                            set.remove(*index);
                        }
                        if set.is_empty() {
                            continue;
                        }
                    }
                }
            }
            workloads.push(workload);
        }
    }
    workloads
}

/// Step 2: the snapshot the pass decides on, from the caches and the pods this loop assumed
/// (`barge why` builds one with a fresh [`LoopState`]: no assumptions).
pub fn snapshot(caches: &Caches, state: &LoopState, workloads: Vec<Workload>) -> Snapshot {
    let queues = queue_specs(caches);
    let ces = caches.compute_environments.state();
    let gpu_names: HashMap<String, String> = ces
        .iter()
        .map(|ce| {
            (
                ce.name_any(),
                ce.spec.effective_gpu_resource_name().to_string(),
            )
        })
        .collect();
    let mut environments: Vec<_> = ces
        .iter()
        .map(|ce| scheduler_environment(ce, caches))
        .collect();
    let mut assumed_by_node: HashMap<&str, AssumedOnNode> = HashMap::new();
    let mut assumed_cpu_by_environment: HashMap<&str, i64> = HashMap::new();
    // A pod the usage cache already counts is not counted twice.
    for ((namespace, name), a) in &state.assumed {
        if a.seen || caches.usage.contains(namespace, name) {
            continue;
        }
        *assumed_cpu_by_environment
            .entry(a.environment.as_str())
            .or_default() += a.request.milli_cpu;
        if let Some(node) = a.node.as_deref() {
            assumed_by_node.entry(node).or_default().add(a);
        }
    }
    let nodes: Vec<NodeSnapshot> = caches
        .nodes
        .state()
        .iter()
        .filter_map(|node| {
            let ce = node.labels().get(LABEL_COMPUTE_ENVIRONMENT)?;
            let gpu = gpu_names
                .get(ce)
                .map(String::as_str)
                .unwrap_or(barge_crds::consts::DEFAULT_GPU_RESOURCE_NAME);
            let mut snap = node_snapshot(node, &caches.usage, gpu);
            if let Some(extra) = assumed_by_node.get(snap.name.as_str()) {
                extra.apply_to(&mut snap);
            }
            Some(snap)
        })
        .collect();
    for (ce, env) in ces.iter().zip(environments.iter_mut()) {
        if ce.spec.effective_binding_mode() == BindingMode::KubeScheduler {
            env.budget_milli_cpu = Some(vcpu_budget(
                ce,
                &nodes,
                caches.usage.barge_milli_cpu_in(&env.name),
                assumed_cpu_by_environment
                    .get(env.name.as_str())
                    .copied()
                    .unwrap_or(0),
            ));
        }
    }
    Snapshot {
        queues,
        environments,
        nodes,
        workloads,
    }
}

/// What the assumed pods and reservations not in the caches yet add to one node.
#[derive(Default)]
struct AssumedOnNode {
    used: Resources,
    /// Pods of single jobs and array children.
    barge_pods: u32,
    /// A node of a gang is assumed there.
    exclusive: bool,
}

impl AssumedOnNode {
    fn add(&mut self, a: &Assumed) {
        self.used = self.used.saturating_add(&a.request);
        if a.node_index.is_some() {
            self.exclusive = true;
        } else {
            self.barge_pods = self.barge_pods.saturating_add(1);
        }
    }

    fn apply_to(&self, snap: &mut NodeSnapshot) {
        snap.used = snap.used.saturating_add(&self.used);
        snap.barge_pods = snap.barge_pods.saturating_add(self.barge_pods);
        snap.exclusive |= self.exclusive;
    }
}

/// What is left of the vCPU budget of a compute environment in `bindingMode: KubeScheduler`
/// (millicpu): `maxvCpus` (an unmanaged environment has none: its schedulable nodes'
/// allocatable CPU), minus the CPU of its Barge pods the usage cache counts (bound or not) and
/// of the pods just created that it does not count yet. Memory and GPUs are not budgeted.
fn vcpu_budget(ce: &ComputeEnvironment, nodes: &[NodeSnapshot], counted: i64, assumed: i64) -> i64 {
    let name = ce.name_any();
    let total = match &ce.spec.compute_resources {
        Some(resources) => Resources::vcpus(i64::from(resources.maxv_cpus)),
        None => nodes
            .iter()
            .filter(|n| n.schedulable && n.environment.as_deref() == Some(name.as_str()))
            .map(|n| n.allocatable.milli_cpu)
            .sum(),
    };
    (total - counted - assumed).max(0)
}

/// Step 4: assumes the placed units and hands their pods to `creator` (created in the
/// background: see [`take_answer`] for what happens then); returns the jobs whose pod could
/// not even be rendered, with why.
///
/// A gang (its placements come together, one per node) becomes the job's headless Service and
/// the main node's pod alone, bound to its node and naming the Kubernetes node reserved for
/// every node of the gang (`batch.barge.dev/gang-nodes`). Every node is assumed, so that the
/// next passes see the reserved nodes as taken until the caches show the main pod (whose
/// annotation then holds them); the job controller creates the other nodes' pods once the main
/// node runs. A main pod that cannot be created places nothing.
fn bind(
    ctx: &Context,
    state: &mut LoopState,
    creator: &mut PodCreator,
    result: &PassResult,
    entries: &Entries,
) -> HashMap<JobKey, String> {
    let mut failures = HashMap::new();
    let mut jobs = DecodedJobs::default();
    if !result.placements.is_empty() {
        state.assumed_changes += 1;
    }
    for group in placement_groups(&result.placements) {
        let first = &group[0];
        let Some(entry) = entries.get(&first.job) else {
            continue;
        };
        let creation = match first.node_index {
            None => render(ctx, &mut jobs, first, entry, None).map(|pod| Creation {
                placement: first.clone(),
                uid: entry.uid.clone(),
                pod,
                service: None,
                assume: vec![(first.clone(), entry.request)],
            }),
            Some(_) => gang_creation(ctx, &mut jobs, group, entry),
        };
        let creation = match creation {
            Ok(creation) => creation,
            Err(problem) => {
                failures.insert(first.job.clone(), problem);
                continue;
            }
        };
        // Assume, then write: the units are taken before their create is sent.
        let pod_name = creation.pod.name_any();
        let share = entry
            .share
            .as_ref()
            .map(|share| (entry.queue.to_string(), share.to_string()));
        let assume: Vec<(Placement, Resources)> = creation.assume.clone();
        let withdrawn = creator.submit(creation);
        for (unit, request) in assume {
            let created = unit.pod_name() == pod_name;
            state.assumed.insert(
                (unit.job.namespace.to_string(), unit.pod_name()),
                Assumed {
                    node: unit.node.clone(),
                    environment: unit.environment.clone(),
                    request,
                    job: unit.job.clone(),
                    attempt: unit.attempt,
                    array_index: unit.array_index,
                    node_index: unit.node_index,
                    created,
                    at: Instant::now(),
                    seen: false,
                    lost: false,
                    share: share.clone(),
                    in_flight: Some(withdrawn.clone()),
                },
            );
        }
    }
    failures
}

/// Takes in what the API server answered to a creation handed to the [`PodCreator`]: a pod
/// created (or existing already) is waited for in the caches and its job woken; a create that
/// failed gives its units back — they may be placed again, after the backoff of a refusal —
/// and leaves its job the verdict `PodCreationFailed` (the next pass that offers the job
/// again replaces it).
fn take_answer(ctx: &Context, state: &mut LoopState, answer: Answer) {
    // Whether the job is woken here: a pod just created wakes it through the pod watch (its
    // ADDED event), so a wake-up now would only be one more reconcile, mostly before the cache
    // shows the pod (a second reconcile per single job that decided nothing).
    let (creation, wake_job) = match answer {
        Answer::Sent(creation, Ok(())) => {
            let placement = &creation.placement;
            ctx.pod_refusals.created(&placement.job, unit_of(placement));
            if creation.service.is_some() {
                announce_gang(ctx, &creation);
            }
            (creation, false)
        }
        // Deterministic names: the pod of this attempt exists already (a restart, a
        // lagging cache): it may bring no watch event, so the job is woken.
        Answer::Sent(creation, Err(e)) if e.pod_exists() => {
            debug!(pod = %creation.pod.name_any(), "pod exists already");
            (creation, true)
        }
        Answer::Sent(creation, Err(CreateError { object, source })) => {
            let placement = &creation.placement;
            ctx.metrics.pod_creations_failed.inc();
            warn!(job = %placement.job, %object, error = %source, "creating a placed pod (or its gang's Service) failed");
            let problem = match refusal_message(&source) {
                Some(message) => record_refusal(ctx, placement, &creation.uid, &object, &message),
                None => format!("creating {object} failed: {source}"),
            };
            for (unit, _) in &creation.assume {
                state
                    .assumed
                    .remove(&(unit.job.namespace.to_string(), unit.pod_name()));
            }
            state.assumed_changes += 1;
            let verdict = Blocked {
                kind: BlockedKind::PodCreationFailed,
                status_reason: None,
                message: problem,
            };
            if ctx
                .verdicts
                .set(placement.job.clone(), &creation.uid, verdict)
            {
                ctx.triggers
                    .jobs
                    .fire(ObjectRef::new(&placement.job.name).within(&placement.job.namespace));
            }
            ctx.scheduler.wake();
            return;
        }
        // Its assumption went before it was sent.
        Answer::Withdrawn => return,
    };
    let now = Instant::now();
    for (unit, _) in &creation.assume {
        if let Some(a) = state
            .assumed
            .get_mut(&(unit.job.namespace.to_string(), unit.pod_name()))
        {
            a.answered(now);
        }
    }
    // The job moves to STARTING once it sees its pod; wake it without waiting for
    // unrelated events when no watch event of the pod's creation will.
    if wake_job {
        let job = &creation.placement.job;
        ctx.triggers
            .jobs
            .fire(ObjectRef::new(&job.name).within(&job.namespace));
    }
}

/// The placements of one pass, one group per pod to create: a single job's or array child's
/// placement alone, a gang's placements (consecutive, same job and attempt) together.
fn placement_groups(placements: &[Placement]) -> Vec<&[Placement]> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < placements.len() {
        let first = &placements[start];
        let mut end = start + 1;
        if first.node_index.is_some() {
            while placements.get(end).is_some_and(|p| {
                p.node_index.is_some() && p.job == first.job && p.attempt == first.attempt
            }) {
                end += 1;
            }
        }
        groups.push(&placements[start..end]);
        start = end;
    }
    groups
}

/// What one group of placements asks the API server to create.
struct Creation {
    /// The placement of the pod (a gang's main node).
    placement: Placement,
    /// Its job's uid.
    uid: SharedStr,
    pod: Pod,
    /// A gang's headless Service, created before its main pod.
    service: Option<Service>,
    /// What to assume once the pod exists: its own placement, or every node of the gang.
    assume: Vec<(Placement, Resources)>,
}

/// The Kubernetes node of each node of a gang, in node-index order, from its placements;
/// an error says what does not add up (the pass places a gang whole, every node bound).
fn gang_nodes(group: &[Placement], members: usize) -> Result<Vec<String>, String> {
    let mut nodes: Vec<Option<String>> = vec![None; members];
    for placement in group {
        let slot = placement
            .node_index
            .and_then(|i| nodes.get_mut(usize::try_from(i).ok()?));
        match slot {
            Some(slot @ None) => *slot = placement.node.clone(),
            _ => {
                return Err(format!(
                "the gang's placement names node index {:?} twice or beyond its {members} nodes",
                placement.node_index
            ))
            }
        }
    }
    nodes.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| {
        format!(
            "{} of the gang's {members} nodes were placed, or some on no Kubernetes node; a multi-node job needs every node bound",
            group.len()
        )
    })
}

/// A gang's Service and main pod, rendered.
fn gang_creation(
    ctx: &Context,
    jobs: &mut DecodedJobs,
    group: &[Placement],
    entry: &RunnableEntry,
) -> Result<Creation, String> {
    let first = &group[0];
    let gang = entry
        .gang
        .as_ref()
        .ok_or_else(|| format!("job {} published no gang", first.job))?;
    let nodes = gang_nodes(group, gang.members.len())?;
    let main = group
        .iter()
        .find(|p| p.node_index == Some(gang.main_node))
        .ok_or_else(|| format!("the gang's main node {} was not placed", gang.main_node))?;
    let pod = render(
        ctx,
        jobs,
        main,
        entry,
        Some(NodePod {
            index: gang.main_node,
            main_pod_ip: None,
            gang_nodes: Some(&nodes),
        }),
    )?;
    let job = jobs
        .get(&ctx.caches, &first.job)
        .ok_or_else(|| format!("job {} vanished", first.job))?;
    let service =
        node_service(&job).map_err(|e| format!("the job's Service cannot be rendered: {e}"))?;
    let assume = group
        .iter()
        .map(|p| {
            let member = p.node_index.and_then(|i| gang.members.get(i as usize));
            (p.clone(), member.map_or(entry.request, |m| m.request))
        })
        .collect();
    Ok(Creation {
        placement: main.clone(),
        uid: entry.uid.clone(),
        pod,
        service: Some(service),
        assume,
    })
}

/// The Event of a placed gang.
fn announce_gang(ctx: &Context, creation: &Creation) {
    let placement = &creation.placement;
    let Some(job) = ctx
        .caches
        .job(&placement.job.namespace, &placement.job.name)
    else {
        return;
    };
    let note = format!(
        "gang of {} placed on compute environment {} (attempt {}; main node {} on {})",
        counted(creation.assume.len(), "node"),
        placement.environment,
        placement.attempt,
        placement.node_index.unwrap_or_default(),
        placement.node.as_deref().unwrap_or("-"),
    );
    ctx.events.publish(
        &*job,
        EventSpec::normal(REASON_GANG_PLACED, ACTION_PLACE_GANG, note),
    );
}

/// The unit of a placement, as pod refusals key it.
fn unit_of(placement: &Placement) -> Unit {
    Unit {
        attempt: placement.attempt,
        array_index: placement.array_index,
    }
}

/// Records a refused pod create (the job backs off; a Warning Event carries the API server's
/// message when it is new); returns the message for the job's condition.
fn record_refusal(
    ctx: &Context,
    placement: &Placement,
    uid: &str,
    object: &str,
    message: &str,
) -> String {
    let job = &placement.job;
    let now = jiff::Timestamp::now().as_millisecond();
    let give_up_ms = i64::try_from(ctx.config.pod_create_give_up.as_millis()).unwrap_or(i64::MAX);
    let unit = unit_of(placement);
    if ctx
        .pod_refusals
        .refused(job, uid, unit, message, now, give_up_ms)
    {
        if let Some(job_object) = ctx.caches.job(&job.namespace, &job.name) {
            let note = format!(
                "creating {object} was refused: {message} (retrying with backoff; the attempt fails after {} s)",
                give_up_ms / 1000
            );
            ctx.events.publish(
                &*job_object,
                EventSpec::warning(POD_CREATION_REFUSED, ACTION_CREATE_POD, note),
            );
        }
    }
    match ctx.pod_refusals.get(job, uid) {
        Some(refusal) => refusal.explain(now),
        None => format!("creating {object} was refused: {message}"),
    }
}

/// Drops the workloads of jobs that back off at `now_ms` after refused pod creations.
fn hold_back_refused(ctx: &Context, workloads: Vec<Workload>, now_ms: i64) -> Vec<Workload> {
    if ctx.pod_refusals.is_empty() {
        return workloads;
    }
    workloads
        .into_iter()
        .filter(|w| !ctx.pod_refusals.backing_off(&w.job, now_ms))
        .collect()
}

/// A create the API server did not accept: of a gang's Service, or of the pod.
struct CreateError {
    /// What was created: "pod <name>" or "Service <name>".
    object: String,
    source: kube::Error,
}

impl CreateError {
    /// The pod exists already (a Service that exists already is no error at all).
    fn pod_exists(&self) -> bool {
        self.object.starts_with("pod ") && is_conflict(&self.source)
    }
}

/// The jobs one bind decoded from their cached records: an array's children placed in one pass
/// share their job's decode (it was decoded once per child: the whole spec's JSON each time).
/// A job is decoded again when the cache holds another version of it than the one decoded.
#[derive(Default)]
struct DecodedJobs(HashMap<JobKey, (Arc<JobRecord>, Arc<Job>)>);

impl DecodedJobs {
    /// The job as the cache holds it now, decoded (None: not cached).
    fn get(&mut self, caches: &Caches, key: &JobKey) -> Option<Arc<Job>> {
        let record = caches.job(&key.namespace, &key.name)?;
        if let Some((decoded_from, job)) = self.0.get(key) {
            if same_version(
                kube::Resource::meta(&**decoded_from),
                kube::Resource::meta(&*record),
            ) {
                return Some(job.clone());
            }
        }
        let job = Arc::new(record.job());
        self.0.insert(key.clone(), (record, job.clone()));
        Some(job)
    }
}

/// Whether two versions of an object are one: the same uid and resourceVersion (an object
/// without a resourceVersion is never taken for another).
fn same_version(a: &kube::api::ObjectMeta, b: &kube::api::ObjectMeta) -> bool {
    a.uid == b.uid && a.resource_version.is_some() && a.resource_version == b.resource_version
}

/// The pod of a placement (`node`: the node of a gang's pod).
fn render(
    ctx: &Context,
    jobs: &mut DecodedJobs,
    placement: &Placement,
    entry: &RunnableEntry,
    node: Option<NodePod<'_>>,
) -> Result<Pod, String> {
    let job = jobs
        .get(&ctx.caches, &placement.job)
        .ok_or_else(|| format!("job {} vanished", placement.job))?;
    let ce: Arc<ComputeEnvironment> = ctx
        .caches
        .compute_environments
        .get(&ObjectRef::new(&placement.environment))
        .ok_or_else(|| format!("compute environment {} vanished", placement.environment))?;
    render_pod(&AttemptPod {
        job: &job,
        definition_name: &entry.definition.name,
        definition_revision: entry.definition.revision,
        definition: &entry.definition.spec,
        queue: &entry.queue,
        compute_environment: &ce,
        node_name: placement.node.as_deref(),
        attempt: placement.attempt,
        array_index: placement.array_index,
        array_size: entry.array_size,
        node,
    })
    .map_err(|e| format!("the job's pod cannot be rendered: {e}"))
}

/// Step 5: verdicts for the job controller.
fn explain(
    ctx: &Context,
    snap: &Snapshot,
    result: &PassResult,
    entries: &Entries,
    failures: &HashMap<JobKey, String>,
) {
    for (job, verdict) in job_verdicts(snap, result, failures) {
        let Some(uid) = entries.get(job).map(|e| &e.uid) else {
            continue;
        };
        let changed = match verdict {
            Some(verdict) => ctx.verdicts.set_shared(job.clone(), uid, &verdict),
            None => ctx.verdicts.clear(job),
        };
        if changed {
            ctx.triggers
                .jobs
                .fire(ObjectRef::new(&job.name).within(&job.namespace));
        }
    }
}

/// Each job of the pass with its verdict (None: waiting for room, which is no verdict), pure.
/// A job's first verdict stands, unless creating its pod failed (`failures`). Equal verdicts
/// one after another (the workloads of a queue mostly get the same one) are one allocation:
/// built once per pass, not once per job.
fn job_verdicts<'a>(
    snap: &'a Snapshot,
    result: &'a PassResult,
    failures: &HashMap<JobKey, String>,
) -> HashMap<&'a JobKey, Option<Arc<Blocked>>> {
    let mut blocked: HashMap<&JobKey, Option<Arc<Blocked>>> =
        HashMap::with_capacity(snap.workloads.len());
    // The verdict built last and what it was built from.
    let mut last: Option<(&Unplaced, &str, Arc<Blocked>)> = None;
    for (workload, verdict) in snap.workloads.iter().zip(&result.verdicts) {
        let slot = blocked.entry(&workload.job).or_insert(None);
        // Waiting for room is what RUNNABLE means: no verdict (and no status write) for it.
        // Everything else — a disabled queue, invalid environments, a strict-FIFO head, a
        // job that can never run, no room that could appear soon — is explained on the job
        // (written only when the verdict changes).
        if slot.is_some() {
            continue;
        }
        let Some(unplaced) = verdict.unplaced.as_ref() else {
            continue;
        };
        if let Some((u, queue, shared)) = &last {
            if *u == unplaced && *queue == workload.queue.as_str() {
                *slot = Some(shared.clone());
                continue;
            }
        }
        if let Some(verdict) = unplaced.to_blocked(&workload.queue) {
            let shared = Arc::new(verdict);
            last = Some((unplaced, workload.queue.as_str(), shared.clone()));
            *slot = Some(shared);
        }
    }
    for (job, problem) in failures {
        if let Some(slot) = blocked.get_mut(job) {
            *slot = Some(Arc::new(Blocked {
                kind: BlockedKind::PodCreationFailed,
                status_reason: None,
                message: problem.clone(),
            }));
        }
    }
    blocked
}

/// Releases the result finalizer of Barge pods whose job no longer exists (deleted jobs: the
/// garbage collector deletes their pods, which must not hang on the finalizer); returns whether
/// every release succeeded.
async fn sweep_orphans(ctx: &Context) -> bool {
    let mut released_all = true;
    let live: HashSet<String> = ctx
        .caches
        .jobs
        .state()
        .iter()
        .filter_map(|j| j.uid())
        .collect();
    for pod in ctx.caches.pods.state() {
        if !pod
            .finalizers()
            .iter()
            .any(|f| f == FINALIZER_ATTEMPT_RESULT)
        {
            continue;
        }
        let Some(uid) = pod.labels().get(LABEL_JOB_UID) else {
            continue;
        };
        if live.contains(uid) {
            continue;
        }
        let namespace = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
        match release_pod(&api, &pod.name_any(), pod.finalizers(), false).await {
            Ok(()) => info!(pod = %pod.name_any(), %namespace, "released the pod of a deleted job"),
            Err(e) => {
                released_all = false;
                warn!(error = %e, "releasing the pod of a deleted job");
            }
        }
    }
    released_all
}

#[cfg(test)]
mod tests {
    use super::*;

    use barge_core::index_set::IndexSet;
    use barge_core::job::RunnableGroup;
    use barge_core::scheduler::{Gang, GangMember};

    #[test]
    fn a_decoded_job_is_reused_only_for_the_same_uid_and_resource_version() {
        let meta = |uid: &str, rv: Option<&str>| kube::api::ObjectMeta {
            uid: Some(uid.to_string()),
            resource_version: rv.map(str::to_string),
            ..Default::default()
        };
        assert!(same_version(&meta("a", Some("7")), &meta("a", Some("7"))));
        assert!(!same_version(&meta("a", Some("7")), &meta("a", Some("8"))));
        assert!(
            !same_version(&meta("a", Some("7")), &meta("b", Some("7"))),
            "recreated"
        );
        assert!(!same_version(&meta("a", None), &meta("a", None)));
    }

    #[test]
    fn a_pass_is_paced_by_its_own_duration() {
        let t0 = Instant::now();
        // A quick pass leaves the next one free to start (almost) at once.
        let quick_end = t0 + Duration::from_millis(2);
        assert_eq!(
            next_pass_not_before(t0, quick_end),
            quick_end + Duration::from_millis(2)
        );
        // A 600 ms pass (100,000 RUNNABLE jobs) keeps the loop idle as long again.
        let slow_end = t0 + Duration::from_millis(600);
        assert_eq!(
            next_pass_not_before(t0, slow_end) - slow_end,
            Duration::from_millis(600)
        );
        // A clock that did not move asks for no wait.
        assert_eq!(next_pass_not_before(t0, t0), t0);
    }

    #[test]
    fn an_assumed_unit_is_offered_only_while_the_work_still_lists_it() {
        let single = RunnableWork::Single {
            attempt: 2,
            retried: true,
        };
        assert!(offers(&single, 2, None, None));
        assert!(!offers(&single, 1, None, None), "another attempt");
        assert!(!offers(&RunnableWork::Nothing, 2, None, None));
        let array = RunnableWork::Array {
            groups: vec![RunnableGroup {
                attempt: 1,
                retried: false,
                indices: IndexSet::parse("3-5").expect("set"),
            }],
        };
        assert!(offers(&array, 1, Some(4), None));
        assert!(!offers(&array, 1, Some(6), None));
        assert!(!offers(&array, 2, Some(4), None));
        assert!(!offers(&array, 1, None, None));
        // A node of a gang, while the gang's attempt is offered.
        let gang = RunnableWork::Gang {
            attempt: 2,
            retried: false,
        };
        assert!(offers(&gang, 2, None, Some(0)));
        assert!(offers(&gang, 2, None, Some(3)));
        assert!(!offers(&gang, 1, None, Some(0)), "another attempt");
        assert!(!offers(&gang, 2, None, None), "not a node");
        assert!(!offers(&single, 2, None, Some(0)));
    }

    fn entry(work: RunnableWork) -> RunnableEntry {
        RunnableEntry {
            uid: "u".into(),
            submitted_at_ms: 0,
            submission_order: 0,
            work,
            shape: Arc::new(crate::context::EntryShape {
                queue: "q".into(),
                request: Resources::default(),
                constraints: Default::default(),
                definition: Arc::new(crate::definition_revisions::ResolvedDefinition {
                    name: "d".into(),
                    revision: 1,
                    spec: serde_json::from_value(serde_json::json!({
                        "type": "container", "containerProperties": {"image": "busybox"}
                    }))
                    .expect("spec"),
                }),
                array_size: Some(10),
                gang: None,
                share: None,
                priority: 0,
            }),
        }
    }

    #[test]
    fn an_assumption_stands_while_offered_however_old_and_goes_on_evidence_only() {
        let created = Instant::now();
        let later = created + VERIFY_UNSEEN_AFTER * 100;
        let mut a = Assumed {
            node: Some("n".into()),
            environment: "ce".into(),
            request: Resources::default(),
            job: JobKey::new("ns", "arr"),
            attempt: 1,
            array_index: Some(4),
            node_index: None,
            created: true,
            at: created,
            seen: true,
            lost: false,
            share: None,
            in_flight: None,
        };
        let offering = entry(RunnableWork::Array {
            groups: vec![RunnableGroup {
                attempt: 1,
                retried: false,
                indices: IndexSet::parse("0-9").expect("set"),
            }],
        });
        let done = entry(RunnableWork::Array {
            groups: vec![RunnableGroup {
                attempt: 1,
                retried: false,
                indices: IndexSet::parse("0-3,5-9").expect("set"),
            }],
        });
        // No timer ends it: a stale book that still offers the unit keeps it assumed.
        assert!(a.kept(Some(&offering)));
        assert!(!a.due_for_check(later), "seen pods are not looked up");
        // The book stopped offering it (the job controller saw the pod), or the job is gone.
        assert!(!a.kept(Some(&done)));
        assert!(!a.kept(None));

        // Never seen by the caches: looked up after VERIFY_UNSEEN_AFTER, not dropped.
        a.seen = false;
        assert!(!a.due_for_check(created));
        assert!(a.due_for_check(later));
        a.checked(None, later);
        assert!(a.kept(Some(&offering)), "a failed GET changes nothing");
        assert!(
            !a.due_for_check(later),
            "checked again after another interval"
        );
        a.checked(Some(true), later);
        assert!(a.seen && a.kept(Some(&offering)));
        a.seen = false;
        a.checked(Some(false), later);
        assert!(
            !a.kept(Some(&offering)),
            "a pod the API server does not have may be placed again"
        );
    }

    fn gang(nodes: u32, main_node: u32) -> Gang {
        Gang {
            main_node,
            members: (0..nodes)
                .map(|i| GangMember {
                    request: Resources::new(1000 * i64::from(i + 1), 1024, 0, 1),
                    constraints: Default::default(),
                })
                .collect(),
        }
    }

    fn gang_entry(attempt: u32, nodes: u32) -> RunnableEntry {
        let mut entry = entry(RunnableWork::Gang {
            attempt,
            retried: false,
        });
        entry.gang = Some(gang(nodes, 0));
        entry.array_size = None;
        entry
    }

    fn placement(job: &str, attempt: u32, node_index: Option<u32>, node: &str) -> Placement {
        Placement {
            workload: 0,
            job: JobKey::new("ns", job),
            array_index: None,
            node_index,
            attempt,
            environment: "ce".into(),
            node: Some(node.into()),
        }
    }

    fn assumed(placement: &Placement, created: bool) -> ((String, String), Assumed) {
        (
            ("ns".to_string(), placement.pod_name()),
            Assumed {
                node: placement.node.clone(),
                environment: placement.environment.clone(),
                request: Resources::new(1000, 1024, 0, 1),
                job: placement.job.clone(),
                attempt: placement.attempt,
                array_index: placement.array_index,
                node_index: placement.node_index,
                created,
                at: Instant::now(),
                seen: false,
                lost: false,
                share: None,
                in_flight: None,
            },
        )
    }

    #[test]
    fn a_pod_whose_create_is_unanswered_is_not_looked_up_and_its_wait_starts_at_the_answer() {
        let p = placement("arr", 1, None, "n1");
        let (_, mut a) = assumed(&p, true);
        let sent = Instant::now();
        a.at = sent;
        a.in_flight = Some(Withdrawn::default());
        // However long the create waits in the creator's queue, no GET can call it lost.
        assert!(!a.due_for_check(sent + VERIFY_UNSEEN_AFTER * 10));
        let answered_at = sent + VERIFY_UNSEEN_AFTER * 10;
        a.answered(answered_at);
        assert!(a.in_flight.is_none());
        assert!(!a.due_for_check(answered_at + VERIFY_UNSEEN_AFTER / 2));
        assert!(a.due_for_check(answered_at + VERIFY_UNSEEN_AFTER));
    }

    #[test]
    fn a_dropped_assumption_withdraws_its_unsent_creation() {
        use std::sync::atomic::Ordering;
        let main = placement("gang", 1, Some(0), "n1");
        let other = placement("gang", 1, Some(1), "n2");
        let (_, mut main_assumed) = assumed(&main, true);
        let (other_key, mut other_assumed) = assumed(&other, false);
        let (main_flag, other_flag) = (Withdrawn::default(), Withdrawn::default());
        main_assumed.in_flight = Some(main_flag.clone());
        other_assumed.in_flight = Some(other_flag.clone());
        let mut state = HashMap::from([(other_key, other_assumed)]);
        // The main pod's assumption went (its job stopped offering the gang): its reserved
        // node goes with it, and both withdraw the creation they wait for.
        main_assumed.withdraw();
        assert!(main_flag.load(Ordering::Acquire));
        assert!(!other_flag.load(Ordering::Acquire));
        forget_orphaned_reservations(&mut state);
        assert!(state.is_empty());
        assert!(other_flag.load(Ordering::Acquire));
    }

    #[test]
    fn each_job_gets_its_first_verdict_and_equal_verdicts_share_one_allocation() {
        use barge_core::fixtures::{req, workload, T0};
        use barge_core::scheduler::WorkloadVerdict;
        let w = |name: &str, queue: &str| workload(name, queue, req(1000, 1024, 0), T0).build();
        let unplaced = |u: Option<Unplaced>| WorkloadVerdict {
            placed: 0,
            unplaced: u,
        };
        let disabled = || unplaced(Some(Unplaced::QueueDisabled));
        let snap = Snapshot {
            workloads: vec![
                w("a", "q"),
                w("b", "q"),
                w("arr", "q"),
                w("arr", "q"),
                w("waits", "q"),
                w("elsewhere", "q2"),
                w("refused", "q"),
            ],
            ..Snapshot::default()
        };
        let result = PassResult {
            verdicts: vec![
                disabled(),
                disabled(),
                // An array's first attempt group waits for room, its second is blocked.
                unplaced(Some(Unplaced::NoCapacity)),
                disabled(),
                unplaced(Some(Unplaced::NoCapacity)),
                disabled(),
                WorkloadVerdict {
                    placed: 1,
                    unplaced: None,
                },
            ],
            ..PassResult::default()
        };
        let failures = HashMap::from([
            (JobKey::new("default", "refused"), "refused".to_string()),
            (JobKey::new("default", "not-in-the-pass"), "x".to_string()),
        ]);
        let verdicts = job_verdicts(&snap, &result, &failures);
        assert_eq!(verdicts.len(), 6, "one per job of the pass: {verdicts:?}");
        let of = |name: &str| verdicts[&JobKey::new("default", name)].clone();
        let a = of("a").expect("a verdict");
        assert_eq!(Some(&*a), Unplaced::QueueDisabled.to_blocked("q").as_ref());
        let (b, arr) = (of("b").expect("b"), of("arr").expect("arr"));
        assert!(
            Arc::ptr_eq(&a, &b) && Arc::ptr_eq(&a, &arr),
            "one allocation for the queue's equal verdicts"
        );
        assert_eq!(of("waits"), None, "waiting for room is no verdict");
        let elsewhere = of("elsewhere").expect("a verdict");
        assert!(elsewhere.message.contains("\"q2\""), "{elsewhere:?}");
        let refused = of("refused").expect("a verdict");
        assert_eq!(refused.kind, BlockedKind::PodCreationFailed);
        assert_eq!(refused.message, "refused");
    }

    #[test]
    fn a_gang_is_not_offered_again_while_any_of_its_nodes_is_assumed() {
        let mnp = JobKey::new("ns", "mnp");
        let entries = HashMap::from([(mnp.clone(), Arc::new(gang_entry(1, 3)))]);
        let mut state = LoopState::default();
        let offered = collect_work(&state, &entries);
        assert_eq!(offered.len(), 1);
        assert_eq!(offered[0].units, Units::Gang(gang(3, 0)));
        assert_eq!(offered[0].request, Resources::default(), "the entry's own");

        // Only a reserved node of the gang is still assumed: the gang stays taken.
        let (key, a) = assumed(&placement("mnp", 1, Some(2), "n3"), false);
        state.assumed.insert(key, a);
        assert!(collect_work(&state, &entries).is_empty());

        // An assumption of another attempt does not hold the next one back.
        let next = HashMap::from([(mnp, Arc::new(gang_entry(2, 3)))]);
        assert_eq!(collect_work(&state, &next).len(), 1);
    }

    #[test]
    fn reserved_nodes_of_a_gang_go_with_its_main_pod() {
        let mut map = HashMap::new();
        for p in [
            placement("mnp", 1, Some(0), "n1"),
            placement("mnp", 1, Some(1), "n2"),
            placement("mnp", 1, Some(2), "n3"),
        ] {
            let (key, a) = assumed(&p, p.node_index == Some(0));
            map.insert(key, a);
        }
        let (key, a) = assumed(&placement("other", 1, Some(1), "n4"), false);
        map.insert(key, a);
        let (key, a) = assumed(&placement("single", 1, None, "n5"), true);
        map.insert(key, a);
        forget_orphaned_reservations(&mut map);
        let mut left: Vec<&str> = map.keys().map(|(_, name)| name.as_str()).collect();
        left.sort();
        assert_eq!(
            left,
            ["mnp-1-node-0", "mnp-1-node-1", "mnp-1-node-2", "single-1"],
            "a reserved node whose main pod is not assumed goes"
        );
        // The main pod's assumption goes (its create failed, or the book moved on).
        map.remove(&("ns".to_string(), "mnp-1-node-0".to_string()));
        forget_orphaned_reservations(&mut map);
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn only_created_pods_are_looked_up() {
        let later = Instant::now() + VERIFY_UNSEEN_AFTER * 2;
        let (_, main) = assumed(&placement("mnp", 1, Some(0), "n1"), true);
        let (_, reserved) = assumed(&placement("mnp", 1, Some(1), "n2"), false);
        assert!(main.due_for_check(later));
        assert!(
            !reserved.due_for_check(later),
            "its pod is the job controller's to create"
        );
        let gang = gang_entry(1, 2);
        assert!(main.kept(Some(&gang)) && reserved.kept(Some(&gang)));
        let moved_on = entry(RunnableWork::Nothing);
        assert!(!main.kept(Some(&moved_on)) && !reserved.kept(Some(&moved_on)));
    }

    #[test]
    fn a_gangs_placements_are_grouped_and_its_nodes_listed_in_index_order() {
        let placements = vec![
            placement("a", 1, None, "n1"),
            placement("mnp", 1, Some(1), "n3"),
            placement("mnp", 1, Some(0), "n2"),
            placement("mnp", 1, Some(2), "n4"),
            placement("mnp2", 1, Some(0), "n5"),
            placement("mnp2", 1, Some(1), "n6"),
            placement("b", 1, None, "n1"),
        ];
        let groups = placement_groups(&placements);
        let sizes: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        assert_eq!(sizes, [1, 3, 2, 1]);
        assert_eq!(
            gang_nodes(groups[1], 3).expect("whole"),
            ["n2", "n3", "n4"],
            "node-index order, whatever the placement order"
        );
        assert!(gang_nodes(groups[2], 3)
            .expect_err("a node missing")
            .contains("2 of the gang's 3 nodes"));
        let twice = [
            placement("mnp", 1, Some(0), "n1"),
            placement("mnp", 1, Some(0), "n2"),
        ];
        assert!(gang_nodes(&twice, 2).is_err());
        let beyond = [placement("mnp", 1, Some(5), "n1")];
        assert!(gang_nodes(&beyond, 1).is_err());
        let mut unbound = placement("mnp", 1, Some(0), "n1");
        unbound.node = None;
        assert!(gang_nodes(&[unbound], 1).is_err());
    }

    #[test]
    fn assumed_pods_add_to_a_nodes_occupancy() {
        let mut snap = NodeSnapshot {
            name: "n1".into(),
            environment: Some("ce".into()),
            allocatable: Resources::new(8000, 8192, 0, 110),
            used: Resources::new(1000, 0, 0, 1),
            schedulable: true,
            instance_type: None,
            barge_pods: 1,
            exclusive: false,
        };
        let mut extra = AssumedOnNode::default();
        extra.add(&assumed(&placement("single", 1, None, "n1"), true).1);
        extra.apply_to(&mut snap);
        assert_eq!((snap.barge_pods, snap.exclusive), (2, false));
        assert_eq!(snap.used, Resources::new(2000, 1024, 0, 2));
        let mut gang_member = AssumedOnNode::default();
        gang_member.add(&assumed(&placement("mnp", 1, Some(1), "n1"), false).1);
        gang_member.apply_to(&mut snap);
        assert_eq!(
            (snap.barge_pods, snap.exclusive),
            (2, true),
            "a gang's node is exclusive"
        );
    }
}
