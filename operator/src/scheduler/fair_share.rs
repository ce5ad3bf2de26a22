//! Fair share on the operator side: the usage ledgers the loop keeps per queue, what the pass
//! is told about each share, and the queue's `status.fairShare` and `status.frontOfQueue`.
//!
//! ## Ledgers
//! One [`UsageLedger`] per queue that names a scheduling policy (queues sharing a policy keep
//! separate usage: a share's usage is what its jobs ran in that queue), tagged with the policy
//! name it is kept for. [`Ledgers::advance`] runs on every pass (also when nothing is RUNNABLE:
//! usage decays and accrues whether or not anything waits). A queue seen for the first time —
//! every queue, on a new leader — is recovered from its `status.fairShare`: the usage written
//! at `updatedAt`, advanced to now with the vCPUs each share runs now (they ran through the
//! downtime; the status is written whenever the running vCPUs change, see below, so this is
//! what ran since `updatedAt` up to the last pass of the previous leader). Only the shares
//! listed there (the 100 most used) are recovered.
//!
//! A queue whose policy is **replaced** starts a new ledger (the status written for the old
//! policy is not read back: the usage is kept for one policy, as `schedulingPolicyName` says);
//! a queue whose policy is **removed** (it is FIFO from then on) drops its ledger and its
//! `status.fairShare`; a queue that is deleted drops its ledger.
//!
//! ## Status at a bounded rate
//! Every `--queue-status-interval` the loop computes, for each queue with a policy,
//! [`fair_share_status`] and, for each queue with RUNNABLE work (or whose written front was
//! not empty), [`front_of_queue`], and writes what changed with a JSON merge patch on the
//! status subresource (the JobQueue controller applies the rest of the status with server-side
//! apply and never sends these two fields, so neither writer erases the other's). Usage alone
//! does not make a write: between two writes it follows from the written usage and running
//! vCPUs ([`predicted_usage`]), so [`fair_share_changed`] asks for a write only when something
//! else changed (running vCPUs, RUNNABLE counts, the active shares, the reservation...) or the
//! usage drifted from that prediction by more than 1 % (pods that started and finished between
//! two looks). An idle cluster whose usage has decayed writes nothing.

use std::collections::{BTreeMap, HashMap};

use barge_core::scheduler::fair_share::{
    queue_front, queue_max_milli_cpu, reservation, share_views, FrontEntry, DECAYED_VCPU_SECONDS,
};
use barge_core::scheduler::{
    Placement, QueueSpec, ShareState, Snapshot, Units, UsageLedger, Workload,
};
use barge_crds::consts::FIELD_MANAGER_SCHEDULER;
use barge_crds::job_queue::{
    FairShareStatus, FrontOfQueue, FrontOfQueueJob, ShareUsageStatus, MAX_FRONT_OF_QUEUE,
    MAX_SHARES_IN_STATUS,
};
use barge_crds::JobQueue;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

use crate::cache::Caches;
use crate::context::Context;
use crate::queue_access::fair_share_policy;
use crate::status::is_not_found;

/// Millicpu per (queue, share identifier) that the caches do not count yet (pods the loop has
/// just created).
pub type AssumedShares = BTreeMap<(String, String), i64>;

/// A queue's ledger and the policy it is kept for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueLedger {
    pub policy: String,
    pub ledger: UsageLedger,
}

/// The usage ledgers of every queue with a scheduling policy, by queue name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ledgers {
    pub queues: BTreeMap<String, QueueLedger>,
}

impl Ledgers {
    /// The ledgers as a new leader (or `barge why`) finds them: each queue's `status.fairShare`
    /// advanced to `now_ms` with the vCPUs its shares run now.
    pub fn recovered(caches: &Caches, now_ms: i64) -> Ledgers {
        let mut ledgers = Ledgers::default();
        ledgers.advance(caches, now_ms);
        ledgers
    }

    /// Advances every queue's ledger to `now_ms` with what the caches count running.
    pub fn advance(&mut self, caches: &Caches, now_ms: i64) {
        self.advance_with(caches, &AssumedShares::new(), now_ms);
    }

    /// Advances every queue's ledger to `now_ms` with what runs now: what the caches count plus
    /// `assumed`. A queue without a ledger for its current policy is recovered from its status
    /// (see the module docs); ledgers of queues without a policy, or gone, are dropped.
    pub fn advance_with(&mut self, caches: &Caches, assumed: &AssumedShares, now_ms: i64) {
        let queues = caches.queues.state();
        let mut kept = BTreeMap::new();
        for queue in &queues {
            let Some(policy) = queue.spec.scheduling_policy_name.as_deref() else {
                continue;
            };
            let name = queue.name_any();
            let mut entry = match self.queues.remove(&name) {
                Some(entry) if entry.policy == policy => entry,
                // New to this loop, or its policy was replaced.
                previous => QueueLedger {
                    policy: policy.to_string(),
                    ledger: if previous.is_none() {
                        recover(
                            queue.status.as_ref().and_then(|s| s.fair_share.as_ref()),
                            policy,
                        )
                    } else {
                        UsageLedger::default()
                    },
                },
            };
            // A policy missing from the cache (deleted, or not seen yet) would read as "no
            // decay" and wipe the usage: the ledger waits for it unchanged.
            if caches
                .scheduling_policies
                .get(&ObjectRef::new(policy))
                .is_some()
            {
                let decay = fair_share_policy(caches, policy).share_decay_seconds;
                let running = running_by_share(caches, assumed, &name);
                entry.ledger.advance(now_ms, decay, &running);
            }
            kept.insert(name, entry);
        }
        self.queues = kept;
    }

    /// The ledger of `queue`.
    pub fn get(&self, queue: &str) -> Option<&QueueLedger> {
        self.queues.get(queue)
    }
}

/// The ledger a queue's `status.fairShare` records for `policy`, at its `updatedAt` (empty,
/// never advanced, when the status is missing or was written for another policy).
pub fn recover(status: Option<&FairShareStatus>, policy: &str) -> UsageLedger {
    let Some(status) = status else {
        return UsageLedger::default();
    };
    let (Some(updated_at), Some(written_for)) = (
        status.updated_at.as_ref(),
        status.scheduling_policy_name.as_deref(),
    ) else {
        return UsageLedger::default();
    };
    if written_for != policy {
        return UsageLedger::default();
    }
    UsageLedger {
        at_ms: Some(updated_at.0.as_millisecond()),
        usage: status
            .shares
            .iter()
            .filter(|s| s.usage_vcpu_seconds.is_finite() && s.usage_vcpu_seconds > 0.0)
            .map(|s| (s.share_identifier.clone(), s.usage_vcpu_seconds))
            .collect(),
    }
}

/// Millicpu each share of `queue` runs now: the caches' count plus `assumed`.
pub fn running_by_share(
    caches: &Caches,
    assumed: &AssumedShares,
    queue: &str,
) -> BTreeMap<String, i64> {
    let mut running = caches.usage.milli_cpu_by_share(queue);
    for ((q, share), milli) in assumed {
        if q == queue {
            *running.entry(share.clone()).or_default() += milli;
        }
    }
    running
}

/// Tells the pass about the shares of every fair-share queue of `snapshot` (what the caches
/// count running, their unfinished jobs, the ledger's usage).
pub fn fill_fair_share(caches: &Caches, ledgers: &Ledgers, snapshot: &mut Snapshot) {
    fill_fair_share_with(caches, ledgers, &AssumedShares::new(), snapshot);
}

/// [`fill_fair_share`], with `assumed` added to the running vCPUs.
pub fn fill_fair_share_with(
    caches: &Caches,
    ledgers: &Ledgers,
    assumed: &AssumedShares,
    snapshot: &mut Snapshot,
) {
    for queue in &mut snapshot.queues {
        let Some(fair) = queue.fair_share.as_mut() else {
            continue;
        };
        let empty = UsageLedger::default();
        let ledger = ledgers.get(&queue.name).map_or(&empty, |l| &l.ledger);
        fair.shares = share_states(
            &running_by_share(caches, assumed, &queue.name),
            &caches.live_jobs_by_share(&queue.name),
            ledger,
        );
    }
}

/// The shares of one queue as the pass takes them: every share that runs, has unfinished jobs
/// or has usage in `ledger`, by identifier.
pub fn share_states(
    running: &BTreeMap<String, i64>,
    live_jobs: &BTreeMap<String, u64>,
    ledger: &UsageLedger,
) -> Vec<ShareState> {
    let mut shares: BTreeMap<&str, ShareState> = BTreeMap::new();
    fn state<'a, 'm>(
        shares: &'m mut BTreeMap<&'a str, ShareState>,
        share: &'a str,
    ) -> &'m mut ShareState {
        shares.entry(share).or_insert_with(|| ShareState {
            share: share.to_string(),
            ..ShareState::default()
        })
    }
    for (share, &milli) in running {
        state(&mut shares, share).running_milli_cpu += milli.max(0);
    }
    for (share, &jobs) in live_jobs {
        state(&mut shares, share).live_jobs += jobs;
    }
    for (share, &usage) in &ledger.usage {
        state(&mut shares, share).usage_vcpu_seconds = usage;
    }
    shares.into_values().collect()
}

/// `ms` (since the epoch) as a status time, whole seconds (what the API keeps of a `Time`).
pub fn status_time(ms: i64) -> Time {
    Time(Timestamp::from_second(ms.div_euclid(1000)).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// `value` rounded to `decimals` places (status figures: stable when nothing changed).
fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// Usage `dt_seconds` after it was `usage` while the share ran `running_vcpus` throughout
/// (what [`UsageLedger::advance`] computes in one step).
pub fn predicted_usage(usage: f64, running_vcpus: f64, decay_seconds: u32, dt_seconds: f64) -> f64 {
    if decay_seconds == 0 {
        return 0.0;
    }
    let d = f64::from(decay_seconds);
    let keep = (-dt_seconds.max(0.0) / d).exp();
    usage * keep + running_vcpus.max(0.0) * d * (1.0 - keep)
}

/// Usage `dt_seconds` before it is `usage`, the share running `running_vcpus` throughout: the
/// inverse of [`predicted_usage`] (never below 0).
pub fn rewound_usage(usage: f64, running_vcpus: f64, decay_seconds: u32, dt_seconds: f64) -> f64 {
    if decay_seconds == 0 {
        return 0.0;
    }
    let d = f64::from(decay_seconds);
    let keep = (-dt_seconds.max(0.0) / d).exp();
    ((usage - running_vcpus.max(0.0) * d * (1.0 - keep)) / keep).max(0.0)
}

/// The workloads of `queue` in `snapshot` (positions).
pub fn queue_members(snapshot: &Snapshot, queue: &str) -> Vec<usize> {
    snapshot
        .workloads
        .iter()
        .enumerate()
        .filter(|(_, w)| w.queue == queue)
        .map(|(i, _)| i)
        .collect()
}

/// `status.fairShare` of a fair-share queue (None for a FIFO queue), from the pass's view of
/// its shares in `snapshot` (filled by [`fill_fair_share`]) at `at_ms`, the time of the
/// ledger's usage. `updatedAt` is `at_ms` in whole seconds and the usage is taken back to it
/// ([`rewound_usage`]), so that recovery ([`recover`] then advancing to now) is exact. Lists the
/// active shares, the most used first (then the most running, then by identifier), at most
/// [`MAX_SHARES_IN_STATUS`].
pub fn fair_share_status(
    policy_name: &str,
    queue: &QueueSpec,
    snapshot: &Snapshot,
    at_ms: i64,
) -> Option<FairShareStatus> {
    let fair = queue.fair_share.as_ref()?;
    let members = queue_members(snapshot, &queue.name);
    let views = share_views(fair, &snapshot.workloads, &members);
    let max = queue_max_milli_cpu(snapshot, queue);
    let reserved = reservation(fair, &views, max);
    let stamp = status_time(at_ms);
    let back_seconds = (at_ms - stamp.0.as_millisecond()) as f64 / 1000.0;
    let decay = fair.policy.share_decay_seconds;
    let mut shares: Vec<ShareUsageStatus> = views
        .iter()
        .filter(|v| v.active)
        .map(|v| {
            let running = v.running_milli_cpu as f64 / 1000.0;
            ShareUsageStatus {
                share_identifier: v.share.clone(),
                weight_factor: v.weight_factor,
                running_vcpus: round_to(running, 3),
                usage_vcpu_seconds: round_to(
                    rewound_usage(v.usage_vcpu_seconds, running, decay, back_seconds),
                    3,
                ),
                target_fraction: round_to(v.target_fraction, 4),
                runnable: i64::try_from(v.runnable_units).unwrap_or(i64::MAX),
            }
        })
        .collect();
    shares.sort_by(|a, b| {
        b.usage_vcpu_seconds
            .total_cmp(&a.usage_vcpu_seconds)
            .then(b.running_vcpus.total_cmp(&a.running_vcpus))
            .then_with(|| a.share_identifier.cmp(&b.share_identifier))
    });
    shares.truncate(MAX_SHARES_IN_STATUS);
    Some(FairShareStatus {
        updated_at: Some(stamp),
        scheduling_policy_name: Some(policy_name.to_string()),
        active_shares: i32::try_from(reserved.active_shares).unwrap_or(i32::MAX),
        reserved_vcpus: round_to(reserved.reserved_milli_cpu as f64 / 1000.0, 3),
        max_vcpus: round_to(reserved.max_milli_cpu as f64 / 1000.0, 3),
        shares,
    })
}

/// Whether `next` says more than `previous` (the status last written) already implies: a
/// change in anything but the time and the usage, or usage that drifted from what `previous`
/// predicts for `next`'s time (by more than 1 % and more than [`DECAYED_VCPU_SECONDS`]).
pub fn fair_share_changed(
    previous: Option<&FairShareStatus>,
    next: &FairShareStatus,
    decay_seconds: u32,
) -> bool {
    let Some(previous) = previous else {
        return true;
    };
    if previous.scheduling_policy_name != next.scheduling_policy_name
        || previous.active_shares != next.active_shares
        || previous.reserved_vcpus != next.reserved_vcpus
        || previous.max_vcpus != next.max_vcpus
        || previous.shares.len() != next.shares.len()
    {
        return true;
    }
    let dt_seconds = match (&previous.updated_at, &next.updated_at) {
        (Some(a), Some(b)) => (b.0.as_millisecond() - a.0.as_millisecond()) as f64 / 1000.0,
        _ => return true,
    };
    previous.shares.iter().zip(&next.shares).any(|(p, n)| {
        let predicted = predicted_usage(
            p.usage_vcpu_seconds,
            p.running_vcpus,
            decay_seconds,
            dt_seconds,
        );
        p.share_identifier != n.share_identifier
            || p.weight_factor != n.weight_factor
            || p.running_vcpus != n.running_vcpus
            || p.target_fraction != n.target_fraction
            || p.runnable != n.runnable
            || (n.usage_vcpu_seconds - predicted).abs()
                > (0.01 * predicted).max(DECAYED_VCPU_SECONDS)
    })
}

/// An entry of a queue's front: (namespace, job name, array index).
pub type FrontKey = (String, String, Option<u32>);

/// When each entry of one queue's front reached its position (AWS's
/// `earliestTimeAtPosition`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PositionTracker {
    /// Entry → (position, since when, ms).
    positions: HashMap<FrontKey, (usize, i64)>,
}

impl PositionTracker {
    /// Takes in the front `keys` (first first) seen at `now_ms`; returns, per entry, since when
    /// it holds its position: kept for an entry at the same position as last seen, `now_ms`
    /// for one that moved or is new. Entries no longer at the front are forgotten.
    pub fn observe(&mut self, keys: &[FrontKey], now_ms: i64) -> Vec<i64> {
        let mut next = HashMap::with_capacity(keys.len());
        let since = keys
            .iter()
            .enumerate()
            .map(|(position, key)| {
                let since = match self.positions.get(key) {
                    Some(&(p, since)) if p == position => since,
                    _ => now_ms,
                };
                next.insert(key.clone(), (position, since));
                since
            })
            .collect();
        self.positions = next;
        since
    }
}

/// The key of a front entry of `snapshot`.
fn front_key(snapshot: &Snapshot, entry: &FrontEntry) -> FrontKey {
    let w = &snapshot.workloads[entry.workload];
    (
        w.job.namespace.to_string(),
        w.job.name.to_string(),
        entry.array_index,
    )
}

/// `status.frontOfQueue` of `queue` at `now_ms`: the next [`MAX_FRONT_OF_QUEUE`] units in the
/// order the pass tries them (`barge_core`'s `queue_front`), each with since when it holds its
/// position (`tracker`). The share identifier is listed in fair-share queues only.
pub fn front_of_queue(
    snapshot: &Snapshot,
    queue: &QueueSpec,
    tracker: &mut PositionTracker,
    now_ms: i64,
) -> FrontOfQueue {
    let front = queue_front(snapshot, queue, MAX_FRONT_OF_QUEUE);
    let keys: Vec<FrontKey> = front.iter().map(|e| front_key(snapshot, e)).collect();
    let since = tracker.observe(&keys, now_ms);
    let jobs = front
        .iter()
        .zip(keys)
        .zip(since)
        .map(|((entry, (namespace, name, array_index)), since)| {
            let w: &Workload = &snapshot.workloads[entry.workload];
            FrontOfQueueJob {
                namespace,
                name,
                array_index,
                share_identifier: queue
                    .fair_share
                    .as_ref()
                    .and(w.share.as_ref().map(|s| s.to_string())),
                scheduling_priority: w.priority,
                earliest_time_at_position: Some(status_time(since)),
            }
        })
        .collect();
    FrontOfQueue {
        last_updated_at: Some(status_time(now_ms)),
        jobs,
    }
}

/// Whether `next` lists other jobs (or the same at other times) than `previous`; an empty
/// front where none was written is no change.
pub fn front_changed(previous: Option<&FrontOfQueue>, next: &FrontOfQueue) -> bool {
    match previous {
        Some(previous) => previous.jobs != next.jobs,
        None => !next.jobs.is_empty(),
    }
}

/// Takes the units placed in a pass out of its snapshot: what is left waits (the front and
/// RUNNABLE counts written after the pass).
pub fn remove_placed(snapshot: &mut Snapshot, placements: &[Placement]) {
    let mut whole = vec![false; snapshot.workloads.len()];
    for p in placements {
        let Some(w) = snapshot.workloads.get_mut(p.workload) else {
            continue;
        };
        match (&mut w.units, p.array_index) {
            (Units::Array(indices), Some(index)) => {
                indices.remove(index);
                if indices.is_empty() {
                    whole[p.workload] = true;
                }
            }
            _ => whole[p.workload] = true,
        }
    }
    let mut i = 0;
    snapshot.workloads.retain(|_| {
        let keep = !whole[i];
        i += 1;
        keep
    });
}

/// The merge-patch body of a queue's status write: `fairShare` when `fair_share` is Some (its
/// value, or null to remove it), `frontOfQueue` when `front` is Some.
pub fn status_patch(
    fair_share: Option<Option<&FairShareStatus>>,
    front: Option<&FrontOfQueue>,
) -> serde_json::Value {
    let mut status = serde_json::Map::new();
    if let Some(fair) = fair_share {
        status.insert(
            "fairShare".into(),
            serde_json::to_value(fair).unwrap_or(serde_json::Value::Null),
        );
    }
    if let Some(front) = front {
        status.insert(
            "frontOfQueue".into(),
            serde_json::to_value(front).unwrap_or(serde_json::Value::Null),
        );
    }
    serde_json::json!({ "status": status })
}

/// Queue status writes sent at once.
const STATUS_WRITE_CONCURRENCY: usize = 8;

/// What the loop keeps for fair share and the queues' status (nothing authoritative: a new
/// leader recovers the ledgers from the queues' status and starts the rest empty).
#[derive(Debug, Default)]
pub struct QueueStatusState {
    pub ledgers: Ledgers,
    /// When statuses were last computed (None: never, so the first pass does).
    last_round: Option<Instant>,
    /// `status.fairShare` last written (or read back) per queue.
    written_fair: HashMap<String, FairShareStatus>,
    /// `status.frontOfQueue` last written per queue.
    written_front: HashMap<String, FrontOfQueue>,
    positions: HashMap<String, PositionTracker>,
}

impl QueueStatusState {
    /// Whether a round of status writes is due at `now` (and if so, starts it).
    pub fn round_due(&mut self, interval: Duration, now: Instant) -> bool {
        let due = self
            .last_round
            .is_none_or(|last| now.duration_since(last) >= interval);
        if due {
            self.last_round = Some(now);
        }
        due
    }
}

/// One queue's status write: what to send and what it records.
struct QueueWrite {
    queue: String,
    /// Some(None): remove `status.fairShare`.
    fair_share: Option<Option<FairShareStatus>>,
    front: Option<FrontOfQueue>,
}

/// The writes a round makes (pure but for the trackers it updates): for each queue of
/// `snapshot` (after the pass, filled with [`fill_fair_share`]) its `status.fairShare` when it
/// has a policy and the status changed ([`fair_share_changed`]; removed when the policy is),
/// and its `status.frontOfQueue` when it has RUNNABLE work or had a front, and that changed.
/// `cached` gives a queue's status as the caches show it (read when nothing was written yet).
fn plan_writes<'a>(
    state: &mut QueueStatusState,
    snapshot: &Snapshot,
    cached: impl Fn(&str) -> Option<&'a barge_crds::job_queue::JobQueueStatus>,
    now_ms: i64,
) -> Vec<QueueWrite> {
    let names: std::collections::HashSet<&str> =
        snapshot.queues.iter().map(|q| q.name.as_str()).collect();
    state.written_fair.retain(|q, _| names.contains(q.as_str()));
    state
        .written_front
        .retain(|q, _| names.contains(q.as_str()));
    state.positions.retain(|q, _| names.contains(q.as_str()));
    let with_work: std::collections::HashSet<&str> = snapshot
        .workloads
        .iter()
        .map(|w| w.queue.as_str())
        .collect();
    let mut writes = Vec::new();
    for queue in &snapshot.queues {
        let status = cached(&queue.name);
        let fair_share = match (queue.fair_share.as_ref(), state.ledgers.get(&queue.name)) {
            (Some(fair), Some(ledger)) => {
                let at = ledger.ledger.at_ms.unwrap_or(now_ms);
                fair_share_status(&ledger.policy, queue, snapshot, at).and_then(|next| {
                    let previous = state
                        .written_fair
                        .get(&queue.name)
                        .or_else(|| status.and_then(|s| s.fair_share.as_ref()));
                    fair_share_changed(previous, &next, fair.policy.share_decay_seconds)
                        .then_some(Some(next))
                })
            }
            // A policy without a ledger yet (the queue appeared since this pass began):
            // written next round.
            (Some(_), None) => None,
            (None, _) => (state.written_fair.contains_key(&queue.name)
                || status.is_some_and(|s| s.fair_share.is_some()))
            .then_some(None),
        };
        let previous_front = state
            .written_front
            .get(&queue.name)
            .or_else(|| status.and_then(|s| s.front_of_queue.as_ref()));
        let has_work = with_work.contains(queue.name.as_str());
        let front = if has_work || previous_front.is_some_and(|f| !f.jobs.is_empty()) {
            let tracker = state.positions.entry(queue.name.clone()).or_default();
            let next = front_of_queue(snapshot, queue, tracker, now_ms);
            front_changed(previous_front, &next).then_some(next)
        } else {
            state.positions.remove(&queue.name);
            None
        };
        if fair_share.is_some() || front.is_some() {
            writes.push(QueueWrite {
                queue: queue.name.clone(),
                fair_share,
                front,
            });
        }
    }
    writes
}

/// Takes in a write the API server accepted: the next rounds compare with what it wrote.
fn record_written(state: &mut QueueStatusState, write: QueueWrite) {
    match write.fair_share {
        Some(Some(fair)) => {
            state.written_fair.insert(write.queue.clone(), fair);
        }
        Some(None) => {
            state.written_fair.remove(&write.queue);
        }
        None => {}
    }
    if let Some(front) = write.front {
        state.written_front.insert(write.queue, front);
    }
}

/// A round of queue status writes (see the module docs): each queue whose `status.fairShare`
/// or `status.frontOfQueue` changed gets one JSON merge patch of its status subresource with
/// just those fields. Returns whether every write it planned succeeded (true when it planned
/// none); a queue found gone counts as a write not made.
pub async fn write_queue_statuses(
    ctx: &Context,
    state: &mut QueueStatusState,
    snapshot: &Snapshot,
    now_ms: i64,
) -> bool {
    let queues: HashMap<String, std::sync::Arc<JobQueue>> = snapshot
        .queues
        .iter()
        .filter_map(|q| {
            let cached = ctx.caches.queues.get(&ObjectRef::new(&q.name))?;
            Some((q.name.clone(), cached))
        })
        .collect();
    let writes = plan_writes(
        state,
        snapshot,
        |name| queues.get(name).and_then(|q| q.status.as_ref()),
        now_ms,
    );
    if writes.is_empty() {
        return true;
    }
    let api: Api<JobQueue> = Api::all(ctx.client.clone());
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER_SCHEDULER.to_string()),
        ..PatchParams::default()
    };
    let results: Vec<(QueueWrite, Result<(), kube::Error>)> = futures::stream::iter(writes)
        .map(|write| {
            let api = api.clone();
            let params = params.clone();
            async move {
                let body = status_patch(
                    write.fair_share.as_ref().map(Option::as_ref),
                    write.front.as_ref(),
                );
                let result = api
                    .patch_status(&write.queue, &params, &Patch::Merge(&body))
                    .await
                    .map(|_| ());
                (write, result)
            }
        })
        .buffer_unordered(STATUS_WRITE_CONCURRENCY)
        .collect()
        .await;
    let mut all_written = true;
    for (write, result) in results {
        ctx.metrics.status_writes.inc();
        ctx.metrics.queue_status_writes.inc();
        match result {
            Ok(()) => record_written(state, write),
            Err(e) if is_not_found(&e) => {
                all_written = false;
                debug!(queue = %write.queue, "the queue is gone; its status is not written");
            }
            Err(e) => {
                all_written = false;
                warn!(queue = %write.queue, error = %e, "writing the queue's fairShare/frontOfQueue failed; retried next round")
            }
        }
    }
    all_written
}

#[cfg(test)]
mod tests {
    use super::*;
    use barge_core::index_set::IndexSet;
    use barge_core::resources::Resources;
    use barge_core::scheduler::{
        EnvironmentSpec, FairSharePolicy, JobKey, QueueFairShare, ShareWeight,
    };
    use barge_crds::job_queue::JobQueueStatus;

    const T0: i64 = 1_700_000_000_000;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * b.abs().max(1.0)
    }

    fn share_status(share: &str, usage: f64, running: f64) -> ShareUsageStatus {
        ShareUsageStatus {
            share_identifier: share.into(),
            weight_factor: 1.0,
            running_vcpus: running,
            usage_vcpu_seconds: usage,
            target_fraction: 0.5,
            runnable: 0,
        }
    }

    fn written(policy: &str, at_ms: i64, shares: Vec<ShareUsageStatus>) -> FairShareStatus {
        FairShareStatus {
            updated_at: Some(status_time(at_ms)),
            scheduling_policy_name: Some(policy.into()),
            active_shares: 2,
            reserved_vcpus: 0.0,
            max_vcpus: 8.0,
            shares,
        }
    }

    #[test]
    fn recovery_decays_the_written_usage_and_accrues_what_runs_since() {
        let status = written(
            "fair",
            T0,
            vec![share_status("a", 600.0, 2.0), share_status("b", 50.0, 0.0)],
        );
        let mut ledger = recover(Some(&status), "fair");
        assert_eq!(ledger.at_ms, Some(T0));
        // Ten minutes of downtime, D = 600 s; a still runs 2 vCPUs, c started 1 vCPU.
        let running = BTreeMap::from([("a".to_string(), 2000), ("c".to_string(), 1000)]);
        ledger.advance(T0 + 600_000, 600, &running);
        let keep = (-1.0f64).exp();
        assert!(close(
            ledger.usage_of("a"),
            600.0 * keep + 2.0 * 600.0 * (1.0 - keep)
        ));
        assert!(close(ledger.usage_of("b"), 50.0 * keep));
        assert!(close(ledger.usage_of("c"), 600.0 * (1.0 - keep)));
        assert_eq!(ledger.at_ms, Some(T0 + 600_000));

        // Written for another policy, or never stamped: nothing to recover.
        assert_eq!(recover(Some(&status), "other"), UsageLedger::default());
        let unstamped = FairShareStatus {
            updated_at: None,
            ..status.clone()
        };
        assert_eq!(recover(Some(&unstamped), "fair"), UsageLedger::default());
        assert_eq!(recover(None, "fair"), UsageLedger::default());
    }

    #[test]
    fn prediction_and_rewind_are_inverse_and_match_the_ledger() {
        let mut ledger = UsageLedger {
            at_ms: Some(T0),
            usage: BTreeMap::from([("a".to_string(), 300.0)]),
        };
        let running = BTreeMap::from([("a".to_string(), 3000)]);
        ledger.advance(T0 + 42_500, 900, &running);
        let predicted = predicted_usage(300.0, 3.0, 900, 42.5);
        assert!(close(ledger.usage_of("a"), predicted));
        assert!(close(rewound_usage(predicted, 3.0, 900, 42.5), 300.0));
        assert_eq!(predicted_usage(300.0, 3.0, 0, 42.5), 0.0, "no history");
        assert_eq!(rewound_usage(1.0, 100.0, 900, 60.0), 0.0, "never negative");
    }

    fn workload(
        job: &str,
        queue: &str,
        share: Option<&str>,
        priority: i32,
        units: Units,
    ) -> Workload {
        Workload {
            job: JobKey::new("ns", job),
            queue: queue.into(),
            retried: false,
            submitted_at_ms: T0,
            submission_order: 0,
            attempt: 1,
            request: Resources::new(1000, 1024, 0, 1),
            constraints: Default::default(),
            units,
            share: share.map(Into::into),
            priority,
        }
    }

    fn environment(name: &str, max_vcpus: i64) -> EnvironmentSpec {
        EnvironmentSpec {
            name: name.into(),
            enabled: true,
            valid: true,
            shapes: None,
            max_milli_cpu: Some(max_vcpus * 1000),
            starting_nodes: 0,
            budget_milli_cpu: None,
            spot: false,
        }
    }

    fn fair_queue(name: &str, reservation: u32, shares: Vec<ShareState>) -> QueueSpec {
        QueueSpec {
            name: name.into(),
            priority: 1,
            enabled: true,
            environments: vec!["ce".into()],
            strict_fifo: false,
            fair_share: Some(QueueFairShare {
                policy: FairSharePolicy {
                    share_decay_seconds: 600,
                    compute_reservation: reservation,
                    weights: vec![ShareWeight {
                        share_identifier: "b".into(),
                        weight_factor: 0.25,
                    }],
                },
                shares,
            }),
        }
    }

    fn state(share: &str, running_milli_cpu: i64, usage: f64, live_jobs: u64) -> ShareState {
        ShareState {
            share: share.into(),
            running_milli_cpu,
            usage_vcpu_seconds: usage,
            live_jobs,
        }
    }

    #[test]
    fn the_status_lists_active_shares_most_used_first_with_targets_and_runnable_counts() {
        let queue = fair_queue(
            "q",
            50,
            vec![
                state("a", 2000, 100.0, 3),
                state("b", 6000, 900.0, 8),
                // Decayed, nothing unfinished: not active, not listed.
                state("old", 0, 0.5, 0),
            ],
        );
        let snapshot = Snapshot {
            queues: vec![queue.clone()],
            environments: vec![environment("ce", 16)],
            nodes: Vec::new(),
            workloads: vec![
                workload("a1", "q", Some("a"), 0, Units::Single),
                workload(
                    "b1",
                    "q",
                    Some("b"),
                    0,
                    Units::Array(IndexSet::parse("0-4").expect("set")),
                ),
                workload("other", "elsewhere", Some("a"), 0, Units::Single),
            ],
        };
        let status =
            fair_share_status("fair", &queue, &snapshot, T0 + 700).expect("a fair-share queue");
        assert_eq!(status.updated_at, Some(status_time(T0)), "whole seconds");
        assert_eq!(status.scheduling_policy_name.as_deref(), Some("fair"));
        assert_eq!(status.active_shares, 2);
        assert_eq!(status.max_vcpus, 16.0);
        assert_eq!(status.reserved_vcpus, 16.0 * 0.25, "(50/100)^2 of 16");
        let listed: Vec<(&str, f64, f64, i64)> = status
            .shares
            .iter()
            .map(|s| {
                (
                    s.share_identifier.as_str(),
                    s.running_vcpus,
                    s.target_fraction,
                    s.runnable,
                )
            })
            .collect();
        assert_eq!(listed, [("b", 6.0, 0.8, 5), ("a", 2.0, 0.2, 1)]);
        assert_eq!(status.shares[0].weight_factor, 0.25);
        // The usage is taken back 0.7 s, to updatedAt: recovering it gives the ledger's again.
        let mut ledger = recover(Some(&status), "fair");
        ledger.advance(
            T0 + 700,
            600,
            &BTreeMap::from([("a".into(), 2000), ("b".into(), 6000)]),
        );
        assert!((ledger.usage_of("b") - 900.0).abs() < 1e-3);
        assert!((ledger.usage_of("a") - 100.0).abs() < 1e-3);

        let mut fifo = queue.clone();
        fifo.fair_share = None;
        assert_eq!(fair_share_status("fair", &fifo, &snapshot, T0), None);
    }

    #[test]
    fn the_status_lists_at_most_a_hundred_shares() {
        let shares: Vec<ShareState> = (0..150)
            .map(|i| state(&format!("s{i:03}"), 0, 10.0 + f64::from(i), 1))
            .collect();
        let queue = fair_queue("q", 0, shares);
        let snapshot = Snapshot {
            queues: vec![queue.clone()],
            environments: vec![environment("ce", 8)],
            ..Snapshot::default()
        };
        let status = fair_share_status("fair", &queue, &snapshot, T0).expect("status");
        assert_eq!(status.active_shares, 150);
        assert_eq!(status.shares.len(), MAX_SHARES_IN_STATUS);
        assert_eq!(
            status.shares[0].share_identifier, "s149",
            "the most used first"
        );
        assert_eq!(status.shares[99].share_identifier, "s050");
    }

    #[test]
    fn usage_that_follows_from_the_last_write_is_no_change() {
        let before = written("fair", T0, vec![share_status("a", 600.0, 2.0)]);
        let later = |usage: f64, running: f64| {
            written("fair", T0 + 60_000, vec![share_status("a", usage, running)])
        };
        let predicted = predicted_usage(600.0, 2.0, 600, 60.0);
        assert!(!fair_share_changed(
            Some(&before),
            &later(predicted, 2.0),
            600
        ));
        assert!(!fair_share_changed(
            Some(&before),
            &later(predicted * 1.005, 2.0),
            600
        ));
        assert!(
            fair_share_changed(Some(&before), &later(predicted * 1.05, 2.0), 600),
            "drifted"
        );
        assert!(
            fair_share_changed(Some(&before), &later(predicted, 3.0), 600),
            "runs more"
        );
        let mut fewer = later(predicted, 2.0);
        fewer.active_shares = 1;
        assert!(fair_share_changed(Some(&before), &fewer, 600));
        assert!(fair_share_changed(None, &later(predicted, 2.0), 600));
    }

    #[test]
    fn an_entry_keeps_its_time_while_it_keeps_its_position() {
        let key = |name: &str| ("ns".to_string(), name.to_string(), None);
        let mut tracker = PositionTracker::default();
        assert_eq!(tracker.observe(&[key("a"), key("b")], 1000), [1000, 1000]);
        assert_eq!(
            tracker.observe(&[key("a"), key("b"), key("c")], 2000),
            [1000, 1000, 2000]
        );
        // a started: b and c move up.
        assert_eq!(tracker.observe(&[key("b"), key("c")], 3000), [3000, 3000]);
        // a comes back at the front (retried): it is new there, and the rest moved.
        assert_eq!(
            tracker.observe(&[key("a"), key("b"), key("c")], 4000),
            [4000, 4000, 4000]
        );
        assert_eq!(
            tracker.observe(&[key("a"), key("b"), key("c")], 5000),
            [4000, 4000, 4000]
        );
    }

    #[test]
    fn the_front_follows_the_merge_and_names_shares_in_fair_share_queues_only() {
        let queue = fair_queue("q", 0, vec![state("a", 4000, 0.0, 1)]);
        let snapshot = Snapshot {
            queues: vec![queue.clone()],
            environments: vec![environment("ce", 8)],
            nodes: Vec::new(),
            workloads: vec![
                workload("a1", "q", Some("a"), 0, Units::Single),
                workload(
                    "b-array",
                    "q",
                    Some("b"),
                    5,
                    Units::Array(IndexSet::parse("0-199").expect("set")),
                ),
            ],
        };
        let mut tracker = PositionTracker::default();
        let front = front_of_queue(&snapshot, &queue, &mut tracker, T0);
        assert_eq!(front.jobs.len(), MAX_FRONT_OF_QUEUE);
        assert_eq!(front.last_updated_at, Some(status_time(T0)));
        let first = &front.jobs[0];
        assert_eq!(
            (
                first.name.as_str(),
                first.array_index,
                first.share_identifier.as_deref()
            ),
            ("b-array", Some(0), Some("b")),
            "a runs 4 vCPUs: b (load 0) goes first"
        );
        assert_eq!(first.scheduling_priority, 5);
        assert_eq!(first.earliest_time_at_position, Some(status_time(T0)));
        let a_at = front
            .jobs
            .iter()
            .position(|j| j.name == "a1")
            .expect("a1 in the front");
        // a already runs 4 vCPUs: b, weighing 0.25, takes at least 16 one-vCPU children
        // before a's next job (the merge's exact tie rule is barge-core's).
        assert!((16..=20).contains(&a_at), "a1 at {a_at}");
        assert!(front.jobs[..a_at].iter().all(|j| j.name == "b-array"));

        let mut fifo = queue.clone();
        fifo.fair_share = None;
        let front = front_of_queue(&snapshot, &fifo, &mut PositionTracker::default(), T0);
        assert!(front.jobs.iter().all(|j| j.share_identifier.is_none()));
        assert!(!front_changed(None, &FrontOfQueue::default()));
        assert!(front_changed(None, &front));
        assert!(!front_changed(Some(&front), &front.clone()));
    }

    #[test]
    fn placed_units_leave_the_snapshot() {
        let mut snapshot = Snapshot {
            workloads: vec![
                workload("single", "q", None, 0, Units::Single),
                workload(
                    "array",
                    "q",
                    None,
                    0,
                    Units::Array(IndexSet::parse("0-2").expect("set")),
                ),
                workload(
                    "small",
                    "q",
                    None,
                    0,
                    Units::Array(IndexSet::parse("7").expect("set")),
                ),
                workload("waiting", "q", None, 0, Units::Single),
            ],
            ..Snapshot::default()
        };
        let placed = |workload: usize, job: &str, array_index: Option<u32>| Placement {
            workload,
            job: JobKey::new("ns", job),
            array_index,
            node_index: None,
            attempt: 1,
            environment: "ce".into(),
            node: Some("n".into()),
        };
        remove_placed(
            &mut snapshot,
            &[
                placed(0, "single", None),
                placed(1, "array", Some(1)),
                placed(2, "small", Some(7)),
            ],
        );
        let left: Vec<(&str, u64)> = snapshot
            .workloads
            .iter()
            .map(|w| (w.job.name.as_str(), w.units.count()))
            .collect();
        assert_eq!(left, [("array", 2), ("waiting", 1)]);
    }

    #[test]
    fn the_patch_carries_empty_lists_and_removals() {
        let fair = FairShareStatus {
            updated_at: Some(status_time(T0)),
            scheduling_policy_name: Some("fair".into()),
            ..FairShareStatus::default()
        };
        let front = FrontOfQueue {
            last_updated_at: Some(status_time(T0)),
            jobs: Vec::new(),
        };
        let patch = status_patch(Some(Some(&fair)), Some(&front));
        assert_eq!(
            patch["status"]["fairShare"]["shares"],
            serde_json::json!([])
        );
        assert_eq!(
            patch["status"]["frontOfQueue"]["jobs"],
            serde_json::json!([])
        );
        let removal = status_patch(Some(None), None);
        assert_eq!(
            removal,
            serde_json::json!({"status": {"fairShare": null}}),
            "no frontOfQueue key: left as it is"
        );
    }

    #[test]
    fn shares_are_the_union_of_running_unfinished_and_usage() {
        let ledger = UsageLedger {
            at_ms: Some(T0),
            usage: BTreeMap::from([("a".to_string(), 50.0), ("c".to_string(), 5.0)]),
        };
        let shares = share_states(
            &BTreeMap::from([("a".to_string(), 1500)]),
            &BTreeMap::from([("a".to_string(), 2), ("b".to_string(), 4)]),
            &ledger,
        );
        assert_eq!(
            shares,
            [
                state("a", 1500, 50.0, 2),
                state("b", 0, 0.0, 4),
                state("c", 0, 5.0, 0)
            ]
        );
    }

    fn ledgers_for(queue: &str, policy: &str) -> Ledgers {
        Ledgers {
            queues: BTreeMap::from([(
                queue.to_string(),
                QueueLedger {
                    policy: policy.into(),
                    ledger: UsageLedger {
                        at_ms: Some(T0),
                        usage: BTreeMap::new(),
                    },
                },
            )]),
        }
    }

    #[test]
    fn an_idle_queue_writes_once_then_nothing_and_a_removed_policy_clears_its_usage() {
        let queue = fair_queue("q", 0, vec![state("a", 1000, 0.0, 1)]);
        let mut snapshot = Snapshot {
            queues: vec![queue.clone()],
            environments: vec![environment("ce", 8)],
            nodes: Vec::new(),
            workloads: vec![workload("a1", "q", Some("a"), 0, Units::Single)],
        };
        let mut state = QueueStatusState {
            ledgers: ledgers_for("q", "fair"),
            ..QueueStatusState::default()
        };
        let none = |_: &str| -> Option<&JobQueueStatus> { None };
        let writes = plan_writes(&mut state, &snapshot, none, T0);
        assert_eq!(writes.len(), 1);
        assert!(matches!(writes[0].fair_share, Some(Some(_))));
        assert_eq!(writes[0].front.as_ref().map(|f| f.jobs.len()), Some(1));
        let write = &writes[0];
        state.written_fair.insert(
            "q".into(),
            write.fair_share.clone().flatten().expect("fair"),
        );
        state
            .written_front
            .insert("q".into(), write.front.clone().expect("front"));
        // Nothing changed but the time.
        assert!(plan_writes(&mut state, &snapshot, none, T0 + 5000).is_empty());

        // The job started: its front empties once, then the queue is idle.
        snapshot.workloads.clear();
        let writes = plan_writes(&mut state, &snapshot, none, T0 + 10_000);
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].front.as_ref().map(|f| f.jobs.len()), Some(0));
        state
            .written_front
            .insert("q".into(), writes[0].front.clone().expect("front"));
        // (its RUNNABLE count changed: fairShare is rewritten too)
        state.written_fair.insert(
            "q".into(),
            writes[0].fair_share.clone().flatten().expect("fair"),
        );
        assert!(plan_writes(&mut state, &snapshot, none, T0 + 15_000).is_empty());

        // The policy is removed: fairShare goes, once.
        snapshot.queues[0].fair_share = None;
        state.ledgers = Ledgers::default();
        let writes = plan_writes(&mut state, &snapshot, none, T0 + 20_000);
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].fair_share, Some(None));
        assert!(writes[0].front.is_none());
        state.written_fair.remove("q");
        assert!(plan_writes(&mut state, &snapshot, none, T0 + 25_000).is_empty());
    }

    /// One round at `now_ms` over `snapshot` as the loop runs it: queue `q`'s ledger advanced
    /// with `running`, its shares filled in, the writes planned; those planned are taken as
    /// written when `accepted`.
    fn round(
        state: &mut QueueStatusState,
        snapshot: &mut Snapshot,
        running: &BTreeMap<String, i64>,
        live_jobs: &BTreeMap<String, u64>,
        now_ms: i64,
        accepted: bool,
    ) -> usize {
        let fair = snapshot
            .queues
            .iter_mut()
            .find(|q| q.name == "q")
            .and_then(|q| q.fair_share.as_mut())
            .expect("fair-share queue q");
        let ledger = &mut state.ledgers.queues.get_mut("q").expect("ledger").ledger;
        ledger.advance(now_ms, fair.policy.share_decay_seconds, running);
        fair.shares = share_states(running, live_jobs, ledger);
        let none = |_: &str| -> Option<&JobQueueStatus> { None };
        let writes = plan_writes(state, snapshot, none, now_ms);
        let planned = writes.len();
        if accepted {
            for write in writes {
                record_written(state, write);
            }
        }
        planned
    }

    /// The premise of leaving out a queue-status round whose inputs are unchanged
    /// (`unchanged::Reported`): once a round's writes all succeeded, a round over the same
    /// snapshot writes nothing however much later it comes, as long as the usage does not move
    /// with the clock; a failed write is planned again; decaying usage makes later writes.
    #[test]
    fn a_round_over_an_unchanged_snapshot_writes_nothing_unless_a_write_failed_or_usage_moves() {
        use crate::scheduler::unchanged::depends_on_time;
        let later = [T0 + 5_000, T0 + 600_000, T0 + 86_400_000];
        // (decay, what runs, unfinished jobs per share, usage at T0, RUNNABLE work in q)
        type Case = (
            u32,
            Vec<(&'static str, i64)>,
            Vec<(&'static str, u64)>,
            f64,
            bool,
        );
        let steady: [Case; 3] = [
            // No decay: only what runs counts (no usage is ever kept).
            (0, vec![("a", 2000)], vec![("a", 3), ("b", 1)], 0.0, true),
            // Decay, but no usage and nothing running: the ledger stays empty.
            (600, Vec::new(), vec![("a", 2), ("b", 1)], 0.0, true),
            (600, Vec::new(), Vec::new(), 0.0, false),
        ];
        for (decay, running, live, usage, work) in steady {
            let running: BTreeMap<String, i64> =
                running.iter().map(|(s, m)| (s.to_string(), *m)).collect();
            let live: BTreeMap<String, u64> =
                live.iter().map(|(s, n)| (s.to_string(), *n)).collect();
            let mut queue = fair_queue("q", 0, Vec::new());
            if let Some(fair) = queue.fair_share.as_mut() {
                fair.policy.share_decay_seconds = decay;
            }
            let mut fifo = queue.clone();
            fifo.name = "f".into();
            fifo.fair_share = None;
            let mut workloads = vec![workload("f1", "f", None, 0, Units::Single)];
            if work {
                workloads.push(workload("a1", "q", Some("a"), 0, Units::Single));
                workloads.push(workload("b1", "q", Some("b"), 5, Units::Single));
            }
            let mut snapshot = Snapshot {
                queues: vec![fifo, queue],
                environments: vec![environment("ce", 8)],
                nodes: Vec::new(),
                workloads,
            };
            let mut state = QueueStatusState {
                ledgers: ledgers_for("q", "fair"),
                ..QueueStatusState::default()
            };
            if let Some(l) = state.ledgers.queues.get_mut("q") {
                l.ledger.usage = BTreeMap::from([("a".to_string(), usage)]);
                l.ledger.usage.retain(|_, u| *u > 0.0);
            }
            let case = format!("decay {decay}, running {running:?}, live {live:?}, work {work}");
            // A first round whose writes failed: the next round plans them again.
            let first = round(&mut state, &mut snapshot, &running, &live, T0, false);
            assert!(first > 0, "{case}");
            assert!(!depends_on_time(&snapshot), "{case}");
            let again = round(&mut state, &mut snapshot, &running, &live, T0 + 1000, true);
            assert_eq!(again, first, "a failed write is planned again: {case}");
            for at in later {
                assert_eq!(
                    round(&mut state, &mut snapshot, &running, &live, at, true),
                    0,
                    "nothing changed but the time ({at}): {case}"
                );
                assert!(!depends_on_time(&snapshot), "{case}");
            }
        }

        // Usage that decays: the share is active while its usage lasts, then it is not, and
        // a round written in full says so — such a snapshot is timed, and rounds run in full.
        let mut queue = fair_queue("q", 0, Vec::new());
        if let Some(fair) = queue.fair_share.as_mut() {
            fair.policy.share_decay_seconds = 600;
        }
        let mut snapshot = Snapshot {
            queues: vec![queue],
            environments: vec![environment("ce", 8)],
            ..Snapshot::default()
        };
        let mut state = QueueStatusState {
            ledgers: ledgers_for("q", "fair"),
            ..QueueStatusState::default()
        };
        if let Some(l) = state.ledgers.queues.get_mut("q") {
            l.ledger.usage = BTreeMap::from([("a".to_string(), 30.0)]);
        }
        let (running, live) = (BTreeMap::new(), BTreeMap::new());
        assert_eq!(
            round(&mut state, &mut snapshot, &running, &live, T0, true),
            1
        );
        assert!(depends_on_time(&snapshot));
        assert_eq!(
            round(
                &mut state,
                &mut snapshot,
                &running,
                &live,
                T0 + 3_600_000,
                true
            ),
            1,
            "the decayed share is no longer active"
        );
    }

    #[test]
    fn a_new_leader_compares_with_the_status_it_finds() {
        let queue = fair_queue("q", 0, vec![state("a", 1000, 0.0, 1)]);
        let snapshot = Snapshot {
            queues: vec![queue.clone()],
            environments: vec![environment("ce", 8)],
            ..Snapshot::default()
        };
        let mut old = QueueStatusState {
            ledgers: ledgers_for("q", "fair"),
            ..QueueStatusState::default()
        };
        let none = |_: &str| -> Option<&JobQueueStatus> { None };
        let writes = plan_writes(&mut old, &snapshot, none, T0);
        let found = JobQueueStatus {
            fair_share: writes[0].fair_share.clone().flatten(),
            ..JobQueueStatus::default()
        };
        let mut new = QueueStatusState {
            ledgers: ledgers_for("q", "fair"),
            ..QueueStatusState::default()
        };
        assert!(plan_writes(&mut new, &snapshot, |_| Some(&found), T0).is_empty());
    }
}
