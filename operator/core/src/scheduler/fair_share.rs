//! Fair share (design §2 SchedulingPolicy, §3): the order of a queue that names a scheduling
//! policy, its compute reservation, and the usage ledger that survives passes.
//!
//! ## Usage and load
//! A share identifier's **usage** is the vCPU-seconds of its running and recently finished
//! jobs, decayed exponentially with time constant `shareDecaySeconds` (D): between two
//! observations `dt` apart, during which the share ran `r` vCPUs,
//! `usage' = usage·e^(−dt/D) + r·D·(1 − e^(−dt/D))` ([`UsageLedger::advance`]). A share that
//! runs `r` vCPUs for long has usage `r·D`, so `usage/D` is its recent average in vCPUs.
//!
//! `shareDecaySeconds: 0` (and unset): AWS's user guide says "only current usage is measured";
//! its API reference says 0 means "the default minimum time window (600 s)". Barge follows the
//! guide: with 0 there is no history, usage is 0 and only the vCPUs running now count. (Any
//! positive value is used as given, so a policy that wants AWS's API-reference behaviour writes
//! `shareDecaySeconds: 600`.)
//!
//! A share's **load** is `weightFactor × (running vCPUs + usage/D)` (without the usage term
//! when D is 0): current use plus recent history, both in vCPUs, scaled by the weight. Lower
//! load goes first, so a share with weight 0.25 runs 4× the vCPUs of one with 1.0 before their
//! loads meet.
//!
//! ## Order within a pass
//! The queue's workloads are grouped by share; within a share, retried work first (as in FIFO
//! queues: a retried job is first in line for the capacity its attempt frees), then higher
//! scheduling priority (`schedulingPriorityOverride`, else the definition's
//! `schedulingPriority`), then submission order. A placement adds `weightFactor × vCPUs` of
//! the unit (one pod; a whole gang) to its share's load, and the pass repeatedly tries the next
//! unit of the share whose load would be lowest at the middle of that unit —
//! `load + weightFactor × vCPUs / 2` (ties: share identifier). Shares interleave unit by unit,
//! so an array of 10,000 children cannot take a pass for itself. Counting half the unit
//! (Sainte-Laguë's rule; the load before the unit would favour the larger weight factor, the
//! load after it the smaller) splits slots without bias: from equal loads, 8 one-vCPU slots go
//! 6 : 2 to weights 0.25 : 1.0, and with the usage history the long-run split follows the
//! weights (about 80 % : 20 % on a saturated environment, where either bias would settle at
//! 75 % or 87.5 %). A unit that does not fit ends its workload's turn (best-effort: the share's
//! next workload is tried later, in load order); in a strict-FIFO queue the first unit that
//! does not fit stops the queue.
//!
//! ## Compute reservation
//! With `computeReservation: c` and `n` active shares, `(c/100)^n` of the queue's maximum vCPUs
//! (its usable environments' `maxvCpus`, or their nodes' allocatable CPU) is held back for
//! shares that are not active yet: the queue's running vCPUs plus those placed in the pass may
//! not exceed `max − reserve`. A share is **active** while it has jobs that are not finished
//! (SUBMITTED to RUNNING) or usage that has not decayed ([`DECAYED_VCPU_SECONDS`]).
//!
//! The reserve is held for **newcomers**: active shares that run nothing and have no usage yet
//! ([`ShareView::is_newcomer`]). A share becomes active with its first SUBMITTED job, before
//! that job is RUNNABLE, and counting it at once would shrink the reserve for the shares already
//! running, which would take the room its arrival freed before its job could: it would wait for
//! their jobs to end. So the shares that have run (the **established** ones, `e` of them) are
//! held to `max − (c/100)^e·max`, while a newcomer's first unit is held to
//! `max − (c/100)^n·max` with every active share counted: the room between the two is the
//! newcomers'. Once a newcomer has placed a unit it is established and held like the others
//! (`e` grows by one). With c = 50 and one share running, that share stays at half the maximum
//! until a second share's first job starts (in its first pass: its low load puts it first);
//! then both are held to three quarters. `status.fairShare.reservedVcpus` reports
//! (c/100)^n of the maximum, as AWS Batch defines it.

use super::{QueueSpec, Snapshot, Units, Workload};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// Weight factor of a share identifier the policy does not list.
pub const DEFAULT_WEIGHT_FACTOR: f64 = 1.0;
/// Usage under this many vCPU-seconds counts as decayed (the share stops being active once it
/// also has no unfinished jobs).
pub const DECAYED_VCPU_SECONDS: f64 = 1.0;

/// One `shareDistribution` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ShareWeight {
    /// An identifier, or a prefix when it ends with `*`.
    pub share_identifier: String,
    pub weight_factor: f64,
}

/// A scheduling policy's fair-share parameters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FairSharePolicy {
    /// `shareDecaySeconds` (0: only current usage counts).
    pub share_decay_seconds: u32,
    /// `computeReservation`, percent (0–99).
    pub compute_reservation: u32,
    pub weights: Vec<ShareWeight>,
}

impl FairSharePolicy {
    /// The weight factor of `share`: the exact entry, else the longest matching prefix entry
    /// (`team-*`), else [`DEFAULT_WEIGHT_FACTOR`] (which also replaces a weight that is not a
    /// positive number).
    pub fn weight_factor(&self, share: &str) -> f64 {
        let mut best: Option<(usize, f64)> = None;
        for entry in &self.weights {
            if entry.share_identifier == share {
                best = Some((usize::MAX, entry.weight_factor));
                break;
            }
            if let Some(prefix) = entry.share_identifier.strip_suffix('*') {
                if share.starts_with(prefix) && best.is_none_or(|(len, _)| prefix.len() > len) {
                    best = Some((prefix.len(), entry.weight_factor));
                }
            }
        }
        let weight = best.map_or(DEFAULT_WEIGHT_FACTOR, |(_, w)| w);
        if weight.is_finite() && weight > 0.0 {
            weight
        } else {
            DEFAULT_WEIGHT_FACTOR
        }
    }

    /// The fraction of the queue's maximum vCPUs held back with `active` active shares:
    /// (computeReservation/100)^active (0 without a reservation).
    pub fn reserved_fraction(&self, active: usize) -> f64 {
        if self.compute_reservation == 0 {
            return 0.0;
        }
        let c = f64::from(self.compute_reservation.min(99)) / 100.0;
        c.powi(i32::try_from(active).unwrap_or(i32::MAX))
    }

    /// The vCPU-equivalent of a decayed usage: usage/D (0 when only current usage counts).
    pub fn history_vcpus(&self, usage_vcpu_seconds: f64) -> f64 {
        if self.share_decay_seconds == 0 {
            0.0
        } else {
            usage_vcpu_seconds / f64::from(self.share_decay_seconds)
        }
    }
}

/// What the operator knows about one share of a queue, outside the RUNNABLE workloads.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShareState {
    pub share: String,
    /// Millicpu of its jobs' pods placed and not finished.
    pub running_milli_cpu: i64,
    /// Decayed usage, vCPU-seconds (from the [`UsageLedger`]).
    pub usage_vcpu_seconds: f64,
    /// Its jobs that are not finished (SUBMITTED to RUNNING).
    pub live_jobs: u64,
}

/// A queue's fair share as the pass sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueFairShare {
    pub policy: FairSharePolicy,
    /// Shares the operator knows about (running, usage, unfinished jobs); shares that only
    /// appear in the snapshot's workloads start from zero.
    pub shares: Vec<ShareState>,
}

/// Decayed vCPU-seconds per share of one queue, advanced as time passes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageLedger {
    /// When the usage was last advanced (ms since the epoch); None: never.
    pub at_ms: Option<i64>,
    pub usage: BTreeMap<String, f64>,
}

impl UsageLedger {
    /// Advances to `now_ms`: each share's usage decays with time constant `decay_seconds` and
    /// accrues the vCPUs it ran since the last advance (taken as constant, `running_milli_cpu`
    /// being what runs now). With `decay_seconds` 0 nothing is kept. Shares whose usage decayed
    /// below [`DECAYED_VCPU_SECONDS`] and that run nothing are dropped. Going back in time (a
    /// clock step) changes nothing, the stamp included: usage accrues again once the clock
    /// passes the stamp, so no interval counts twice.
    pub fn advance(
        &mut self,
        now_ms: i64,
        decay_seconds: u32,
        running_milli_cpu: &BTreeMap<String, i64>,
    ) {
        let previous = self.at_ms;
        if previous.is_some_and(|at| now_ms < at) {
            return;
        }
        self.at_ms = Some(now_ms);
        if decay_seconds == 0 {
            self.usage.clear();
            return;
        }
        let dt = previous.map_or(0.0, |at| now_ms.saturating_sub(at) as f64 / 1000.0);
        let d = f64::from(decay_seconds);
        let keep = (-dt / d).exp();
        let accrue = d * (1.0 - keep);
        for (share, usage) in self.usage.iter_mut() {
            let running = running_milli_cpu.get(share).copied().unwrap_or(0);
            *usage = *usage * keep + (running.max(0) as f64 / 1000.0) * accrue;
        }
        for (share, &running) in running_milli_cpu {
            if running > 0 && !self.usage.contains_key(share) {
                self.usage
                    .insert(share.clone(), (running as f64 / 1000.0) * accrue);
            }
        }
        self.usage.retain(|share, usage| {
            *usage >= DECAYED_VCPU_SECONDS || running_milli_cpu.get(share).is_some_and(|&r| r > 0)
        });
    }

    /// The usage of `share`, vCPU-seconds.
    pub fn usage_of(&self, share: &str) -> f64 {
        self.usage.get(share).copied().unwrap_or(0.0)
    }
}

/// One share of a queue as the pass weighs it.
#[derive(Clone, Debug, PartialEq)]
pub struct ShareView {
    pub share: String,
    pub weight_factor: f64,
    pub running_milli_cpu: i64,
    pub usage_vcpu_seconds: f64,
    /// `weightFactor × (running vCPUs + usage/D)`, before the pass places anything.
    pub load: f64,
    pub active: bool,
    /// RUNNABLE units of the share in the snapshot.
    pub runnable_units: u64,
    /// (1/weight) / Σ over active shares (1/weight); 0 for a share that is not active.
    pub target_fraction: f64,
}

impl ShareView {
    /// Active, but running nothing and without usage yet: its first unit may start in the
    /// compute reservation (see the module docs).
    pub fn is_newcomer(&self) -> bool {
        self.active && self.running_milli_cpu <= 0 && self.usage_vcpu_seconds < DECAYED_VCPU_SECONDS
    }
}

/// A queue's compute reservation as the pass applies it (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reservation {
    /// The queue's maximum, millicpu.
    pub max_milli_cpu: i64,
    /// Held back for shares not active yet, millicpu: (c/100)^active of the maximum. A
    /// newcomer's first unit is held to what is left of the maximum.
    pub reserved_milli_cpu: i64,
    /// Held back from the shares that have run, millicpu: (c/100)^established of the maximum
    /// (the part beyond `reserved_milli_cpu` is held for the newcomers' first units).
    pub reserved_from_established_milli_cpu: i64,
    /// The queue's running millicpu (every share).
    pub running_milli_cpu: i64,
    pub active_shares: usize,
    /// Active shares that run something or have usage (not newcomers).
    pub established_shares: usize,
    /// `computeReservation`, percent.
    pub compute_reservation: u32,
}

impl Reservation {
    /// Millicpu the shares that have run may still take (None: no reservation, no limit).
    pub fn room_milli_cpu(&self) -> Option<i64> {
        self.room_for(false)
    }

    /// Millicpu still open to a newcomer's first unit (`newcomer`) or to any other unit (None:
    /// no reservation, no limit).
    pub fn room_for(&self, newcomer: bool) -> Option<i64> {
        (self.compute_reservation > 0).then(|| {
            let reserved = if newcomer {
                self.reserved_milli_cpu
            } else {
                self.reserved_from_established_milli_cpu
            };
            (self.max_milli_cpu - reserved - self.running_milli_cpu).max(0)
        })
    }

    /// Whether a unit of `milli_cpu` fits in what the reservation leaves.
    pub fn allows(&self, milli_cpu: i64, newcomer: bool) -> bool {
        self.room_for(newcomer).is_none_or(|room| milli_cpu <= room)
    }

    /// A unit of `milli_cpu` was placed; `newcomer`: it was its share's first, and that share
    /// now counts among the established ones.
    pub fn take(&mut self, milli_cpu: i64, newcomer: bool) {
        self.running_milli_cpu += milli_cpu;
        if newcomer {
            self.established_shares = (self.established_shares + 1).min(self.active_shares);
            self.reserved_from_established_milli_cpu = reserved_of(
                self.max_milli_cpu,
                self.compute_reservation,
                self.established_shares,
            );
        }
    }
}

/// (c/100)^n of `max_milli_cpu`, rounded.
fn reserved_of(max_milli_cpu: i64, compute_reservation: u32, n: usize) -> i64 {
    let policy = FairSharePolicy {
        compute_reservation,
        ..FairSharePolicy::default()
    };
    (max_milli_cpu as f64 * policy.reserved_fraction(n)).round() as i64
}

/// The share a workload counts under in a fair-share queue (a job without one: "").
pub fn share_of(workload: &Workload) -> &str {
    workload.share.as_deref().unwrap_or("")
}

/// The order of workloads within one share: retried first, then higher scheduling priority,
/// then submission (as FIFO).
pub fn within_share_order(workloads: &[Workload], members: &mut [usize]) {
    let key = |i: usize| {
        let w = &workloads[i];
        (
            !w.retried,
            Reverse(w.priority),
            w.submitted_at_ms,
            w.submission_order,
            &w.job,
            w.attempt,
            i,
        )
    };
    members.sort_by(|&a, &b| key(a).cmp(&key(b)));
}

/// [`within_share_order`] for workloads already in FIFO order (retried first, then
/// submission): a stable sort by (retried, priority) keeps submission order within each
/// priority. Costs one scan when the priorities are equal.
fn order_fifo_lane(workloads: &[Workload], members: &mut [usize]) {
    let mut keyed: Vec<(bool, Reverse<i32>, usize)> = members
        .iter()
        .map(|&m| (!workloads[m].retried, Reverse(workloads[m].priority), m))
        .collect();
    if keyed
        .windows(2)
        .all(|p| (p[0].0, p[0].1) <= (p[1].0, p[1].1))
    {
        return;
    }
    keyed.sort_by_key(|&(retried, priority, _)| (retried, priority));
    for (member, (_, _, m)) in members.iter_mut().zip(keyed) {
        *member = m;
    }
}

/// The millicpu a workload's next step takes: one pod, or a whole gang.
pub fn step_milli_cpu(workload: &Workload) -> i64 {
    match &workload.units {
        Units::Gang(gang) => gang.members.iter().map(|m| m.request.milli_cpu).sum(),
        _ => workload.request.milli_cpu,
    }
}

/// The shares of a fair-share queue, weighed (one per share known to the operator or present
/// among `members`, the queue's workloads), sorted by share identifier.
pub fn share_views(
    fair: &QueueFairShare,
    workloads: &[Workload],
    members: &[usize],
) -> Vec<ShareView> {
    weigh(fair, workloads, members).0
}

/// FxHash, for the share identifiers of one queue in one pass: a short string hashed per
/// workload, where SipHash would cost more than the rest of the fair-share step.
#[derive(Clone, Copy, Default)]
struct ShareHasher(u64);

impl ShareHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for ShareHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Positions by share identifier.
type ShareIndex<'a> = HashMap<&'a str, usize, BuildHasherDefault<ShareHasher>>;

/// The shares of a queue weighed ([`share_views`]) and `members` grouped by share (aligned with
/// the views, each group in the order of `members`): one look-up per workload.
fn weigh(
    fair: &QueueFairShare,
    workloads: &[Workload],
    members: &[usize],
) -> (Vec<ShareView>, Vec<Vec<usize>>) {
    struct Seen<'a> {
        share: &'a str,
        running_milli_cpu: i64,
        usage_vcpu_seconds: f64,
        active: bool,
        runnable_units: u64,
        members: Vec<usize>,
    }
    let mut index = ShareIndex::default();
    let mut seen: Vec<Seen> = Vec::new();
    let mut slot = |share| {
        *index.entry(share).or_insert_with(|| {
            seen.push(Seen {
                share,
                running_milli_cpu: 0,
                usage_vcpu_seconds: 0.0,
                active: false,
                runnable_units: 0,
                members: Vec::new(),
            });
            seen.len() - 1
        })
    };
    let known: Vec<usize> = fair.shares.iter().map(|s| slot(s.share.as_str())).collect();
    let placed: Vec<usize> = members
        .iter()
        .map(|&m| slot(share_of(&workloads[m])))
        .collect();
    for (state, &s) in fair.shares.iter().zip(&known) {
        let view = &mut seen[s];
        view.running_milli_cpu += state.running_milli_cpu.max(0);
        view.usage_vcpu_seconds += state.usage_vcpu_seconds.max(0.0);
        view.active |= state.live_jobs > 0
            || state.running_milli_cpu > 0
            || state.usage_vcpu_seconds >= DECAYED_VCPU_SECONDS;
    }
    for (&m, &s) in members.iter().zip(&placed) {
        let view = &mut seen[s];
        view.active = true;
        view.runnable_units += workloads[m].units.count();
        view.members.push(m);
    }
    seen.sort_by(|a, b| a.share.cmp(b.share));
    let inverse_sum: f64 = seen
        .iter()
        .filter(|v| v.active)
        .map(|v| 1.0 / fair.policy.weight_factor(v.share))
        .sum();
    seen.into_iter()
        .map(|v| {
            let weight_factor = fair.policy.weight_factor(v.share);
            let load = weight_factor
                * (v.running_milli_cpu as f64 / 1000.0
                    + fair.policy.history_vcpus(v.usage_vcpu_seconds));
            let target_fraction = if v.active && inverse_sum > 0.0 {
                (1.0 / weight_factor) / inverse_sum
            } else {
                0.0
            };
            let view = ShareView {
                share: v.share.to_string(),
                weight_factor,
                running_milli_cpu: v.running_milli_cpu,
                usage_vcpu_seconds: v.usage_vcpu_seconds,
                load,
                active: v.active,
                runnable_units: v.runnable_units,
                target_fraction,
            };
            (view, v.members)
        })
        .unzip()
}

/// The queue's reservation, from its shares and `max_milli_cpu` (see [`queue_max_milli_cpu`]).
pub fn reservation(fair: &QueueFairShare, views: &[ShareView], max_milli_cpu: i64) -> Reservation {
    let active_shares = views.iter().filter(|v| v.active).count();
    let established_shares = views
        .iter()
        .filter(|v| v.active && !v.is_newcomer())
        .count();
    let c = fair.policy.compute_reservation;
    Reservation {
        max_milli_cpu,
        reserved_milli_cpu: reserved_of(max_milli_cpu, c, active_shares),
        reserved_from_established_milli_cpu: reserved_of(max_milli_cpu, c, established_shares),
        running_milli_cpu: views.iter().map(|v| v.running_milli_cpu).sum(),
        active_shares,
        established_shares,
        compute_reservation: c,
    }
}

/// A queue's maximum millicpu: over its usable (enabled, valid) environments, `maxvCpus` where
/// known, else the allocatable CPU of the environment's nodes.
pub fn queue_max_milli_cpu(snapshot: &Snapshot, queue: &QueueSpec) -> i64 {
    queue
        .environments
        .iter()
        .filter_map(|name| snapshot.environments.iter().find(|e| &e.name == name))
        .filter(|e| e.enabled && e.valid)
        .map(|e| {
            e.max_milli_cpu.unwrap_or_else(|| {
                snapshot
                    .nodes
                    .iter()
                    .filter(|n| n.environment.as_deref() == Some(e.name.as_str()))
                    .map(|n| n.allocatable.milli_cpu)
                    .sum()
            })
        })
        .sum()
}

/// A load as a heap key (lowest first; ties by share position, which is identifier order).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Load(f64);

impl Eq for Load {}

impl PartialOrd for Load {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Load {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// One share's place in the merge.
struct Lane {
    weight_factor: f64,
    load: f64,
    /// A newcomer that has placed nothing in this pass yet: its next unit may use the reserve.
    newcomer: bool,
    members: Vec<usize>,
    /// `weightFactor × vCPUs` of each member's step, aligned with `members`.
    costs: Vec<f64>,
    next: usize,
}

impl Lane {
    /// Its place in the merge: its load at the middle of its next step (None: no member left).
    fn key(&self) -> Option<Load> {
        self.costs
            .get(self.next)
            .map(|cost| Load(self.load + cost * 0.5))
    }
}

/// The merge of a fair-share queue's shares: which workload to try next (see the module docs).
/// The caller reports each placement ([`ShareMerge::placed`]) and each workload whose turn
/// ended ([`ShareMerge::done`]).
pub struct ShareMerge {
    lanes: Vec<Lane>,
    heap: BinaryHeap<Reverse<(Load, usize)>>,
    current: Option<usize>,
}

impl ShareMerge {
    /// The merge over `members` (the queue's workloads, in FIFO order: [`super::fifo_order`]),
    /// from the shares' loads in `views`. Members whose share has no view are left out.
    pub fn new(views: &[ShareView], workloads: &[Workload], members: &[usize]) -> ShareMerge {
        let position: ShareIndex = views
            .iter()
            .enumerate()
            .map(|(i, v)| (v.share.as_str(), i))
            .collect();
        let mut groups = vec![Vec::new(); views.len()];
        for &m in members {
            if let Some(&lane) = position.get(share_of(&workloads[m])) {
                groups[lane].push(m);
            }
        }
        ShareMerge::from_groups(views, workloads, groups)
    }

    /// The shares of a queue weighed ([`share_views`]) and their merge over `members` (in FIFO
    /// order: [`super::fifo_order`]), with one look-up per workload.
    pub fn weighed(
        fair: &QueueFairShare,
        workloads: &[Workload],
        members: &[usize],
    ) -> (Vec<ShareView>, ShareMerge) {
        let (views, groups) = weigh(fair, workloads, members);
        let merge = ShareMerge::from_groups(&views, workloads, groups);
        (views, merge)
    }

    /// `groups[i]`: the FIFO-ordered workloads of `views[i]`'s share.
    fn from_groups(views: &[ShareView], workloads: &[Workload], groups: Vec<Vec<usize>>) -> Self {
        let mut lanes = Vec::with_capacity(views.len());
        let mut heap = BinaryHeap::with_capacity(views.len());
        for (i, (view, mut members)) in views.iter().zip(groups).enumerate() {
            order_fifo_lane(workloads, &mut members);
            let cost = |m: usize| step_milli_cpu(&workloads[m]).max(0) as f64 / 1000.0;
            let costs = members
                .iter()
                .map(|&m| view.weight_factor * cost(m))
                .collect();
            let lane = Lane {
                weight_factor: view.weight_factor,
                load: view.load,
                newcomer: view.is_newcomer(),
                members,
                costs,
                next: 0,
            };
            if let Some(key) = lane.key() {
                heap.push(Reverse((key, i)));
            }
            lanes.push(lane);
        }
        ShareMerge {
            lanes,
            heap,
            current: None,
        }
    }

    /// The workload to try next (its share's load at the middle of its step is lowest), or None
    /// when every share's workloads had their turn. The share stays out of the merge until
    /// `placed` or `done`.
    pub fn next_workload(&mut self) -> Option<usize> {
        debug_assert!(
            self.current.is_none(),
            "placed or done must follow next_workload"
        );
        let Reverse((_, lane)) = self.heap.pop()?;
        self.current = Some(lane);
        let l = &self.lanes[lane];
        Some(l.members[l.next])
    }

    /// The workload `next_workload` returned placed a unit of `milli_cpu`; it has more units to
    /// offer when `more`.
    pub fn placed(&mut self, milli_cpu: i64, more: bool) {
        if let Some(lane) = self.current.take() {
            let l = &mut self.lanes[lane];
            l.load += l.weight_factor * milli_cpu.max(0) as f64 / 1000.0;
            l.newcomer = false;
            if !more {
                l.next += 1;
            }
            if let Some(key) = l.key() {
                self.heap.push(Reverse((key, lane)));
            }
        }
    }

    /// Whether the workload `next_workload` returned belongs to a newcomer that has placed
    /// nothing in this pass: its unit may use the compute reservation (see the module docs).
    pub fn current_is_newcomer(&self) -> bool {
        self.current.is_some_and(|lane| self.lanes[lane].newcomer)
    }

    /// The workload `next_workload` returned gets nothing more in this pass.
    pub fn done(&mut self) {
        if let Some(lane) = self.current.take() {
            let l = &mut self.lanes[lane];
            l.next += 1;
            if let Some(key) = l.key() {
                self.heap.push(Reverse((key, lane)));
            }
        }
    }

    /// The workloads no `next_workload` reached yet (for a strict-FIFO stop), in no particular
    /// order.
    pub fn remaining(&self) -> impl Iterator<Item = usize> + '_ {
        let current = self.current;
        self.lanes.iter().enumerate().flat_map(move |(i, l)| {
            let from = if Some(i) == current {
                l.next + 1
            } else {
                l.next
            };
            l.members.get(from..).unwrap_or(&[]).iter().copied()
        })
    }
}

/// One unit at the front of a queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontEntry {
    /// Position of the workload in `Snapshot::workloads`.
    pub workload: usize,
    pub array_index: Option<u32>,
}

/// The next `limit` units of `queue` in the order the pass tries them, as if each were placed
/// (AWS Batch's front of queue): FIFO order, or the fair-share merge with every unit adding to
/// its share's load. Capacity and the reservation are not consulted: this is the order in which
/// the queue's work gets room as room appears, given the usage now.
pub fn queue_front(snapshot: &Snapshot, queue: &QueueSpec, limit: usize) -> Vec<FrontEntry> {
    let members: Vec<usize> = snapshot
        .workloads
        .iter()
        .enumerate()
        .filter(|(_, w)| w.queue == queue.name)
        .map(|(i, _)| i)
        .collect();
    let mut front = Vec::new();
    let push_units = |front: &mut Vec<FrontEntry>, w: usize, max: usize| {
        let workload = &snapshot.workloads[w];
        match &workload.units {
            Units::Array(indices) => {
                for index in indices.iter().take(max) {
                    front.push(FrontEntry {
                        workload: w,
                        array_index: Some(index),
                    });
                }
            }
            _ => front.push(FrontEntry {
                workload: w,
                array_index: None,
            }),
        }
    };
    match &queue.fair_share {
        None => {
            let mut list = members;
            super::order::fifo_order(&snapshot.workloads, &mut list);
            for w in list {
                if front.len() >= limit {
                    break;
                }
                let room = limit - front.len();
                push_units(&mut front, w, room);
            }
        }
        Some(fair) => {
            let mut members = members;
            super::order::fifo_order(&snapshot.workloads, &mut members);
            let (_, mut merge) = ShareMerge::weighed(fair, &snapshot.workloads, &members);
            let mut offered: HashMap<usize, u64> = HashMap::new();
            while front.len() < limit {
                let Some(w) = merge.next_workload() else {
                    break;
                };
                let workload = &snapshot.workloads[w];
                let taken = offered.entry(w).or_default();
                let index = match &workload.units {
                    Units::Array(indices) => indices.iter().nth(*taken as usize),
                    _ => None,
                };
                *taken += 1;
                front.push(FrontEntry {
                    workload: w,
                    array_index: index,
                });
                let more = *taken < workload.units.count();
                merge.placed(step_milli_cpu(workload), more);
            }
        }
    }
    front.truncate(limit);
    front
}
