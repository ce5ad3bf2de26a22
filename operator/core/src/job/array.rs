//! Array jobs: the parent record and the per-child state machine.
//!
//! Children are not objects. The parent's [`ArrayRecord`] keeps, compactly:
//! - `succeeded` and `failed` children as index ranges;
//! - `prior_attempts`: unfinished children that already used attempts, grouped by how many
//!   (at most 9 groups, since AWS allows 10 attempts), so a child's next attempt number is known
//!   without a per-child entry;
//! - the latest attempt of the most recent failed children (at most
//!   [`MAX_FAILED_CHILD_ATTEMPTS`], plus a count of those left out).
//!
//! Which children are STARTING or RUNNING is derived from live pods, never stored; PENDING and
//! RUNNABLE children are derived from dependencies. So the record of 10,000 children stays a few
//! KiB, and a child's record survives its pod's deletion.
//!
//! Each reconcile: classify the current pod of each child (its attempt is `prior + 1`) → record
//! results (the parent's retry strategy and timeout apply to every child) → cancel terminated
//! children → evaluate dependencies with bitsets (SEQUENTIAL, N_TO_N, plain) → derive the parent's
//! state (design §2: RUNNING once any child ran, SUCCEEDED when all succeeded, FAILED when all
//! are done and any failed; it never moves back) → list RUNNABLE children for the scheduler.

use super::pods::{self, Progress};
use super::single::{let_go, stop_pod, stop_running_pod, watch_deletion};
use super::{
    Admission, AttemptRecord, DeleteReason, Draft, JobView, PodView, RunnableGroup, RunnableWork,
};
use crate::deps::{self, DependencyVerdict};
use crate::error::{Error, Result};
use crate::index_set::{BitSet, IndexSet};
use crate::naming;
use crate::pod_creation::{CreationRefusal, GiveUp};
use crate::reasons;
use crate::retry::{decide_after_attempt, AttemptDecision, AttemptOutcome};
use crate::state::{JobState, StatusSummary};
use crate::timeout::{self, TimeoutDecision};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Smallest `arrayProperties.size` AWS Batch accepts.
pub const MIN_ARRAY_SIZE: u32 = 2;
/// Largest `arrayProperties.size` AWS Batch accepts.
pub const MAX_ARRAY_SIZE: u32 = 10_000;
/// How many failed children keep their latest attempt in the record.
pub const MAX_FAILED_CHILD_ATTEMPTS: usize = 20;

/// Checks `arrayProperties.size`.
pub fn validate_size(size: u32) -> Result<()> {
    if (MIN_ARRAY_SIZE..=MAX_ARRAY_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(Error::Array(format!(
            "size must be between {MIN_ARRAY_SIZE} and {MAX_ARRAY_SIZE}, got {size}"
        )))
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The compact bookkeeping of an array job's children.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArrayRecord {
    pub size: u32,
    #[serde(default)]
    pub succeeded: IndexSet,
    #[serde(default)]
    pub failed: IndexSet,
    /// Failed children that `spec.terminate` stopped or cancelled (a subset of `failed`).
    #[serde(default, skip_serializing_if = "IndexSet::is_empty")]
    pub terminated: IndexSet,
    /// Unfinished children that already used attempts, keyed by the number of attempts used.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prior_attempts: BTreeMap<u32, IndexSet>,
    /// Latest attempt of the most recently failed children (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_attempts: Vec<AttemptRecord>,
    /// Failed children whose attempt was dropped from `failed_attempts`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_attempts_omitted: u32,
}

impl ArrayRecord {
    /// A new array of `size` children, none started.
    pub fn new(size: u32) -> ArrayRecord {
        ArrayRecord {
            size,
            ..ArrayRecord::default()
        }
    }

    /// Attempts child `index` has used so far (0 for a fresh child; finished children report 0
    /// here, their history is in `failed_attempts` or their pods).
    pub fn attempts_made(&self, index: u32) -> u32 {
        self.prior_attempts
            .iter()
            .find(|(_, set)| set.contains(index))
            .map_or(0, |(k, _)| *k)
    }

    /// The attempt number child `index` runs next.
    pub fn next_attempt(&self, index: u32) -> u32 {
        self.attempts_made(index).saturating_add(1)
    }

    /// True when child `index` succeeded or failed.
    pub fn is_done(&self, index: u32) -> bool {
        self.succeeded.contains(index) || self.failed.contains(index)
    }

    /// Number of finished children.
    pub fn done_count(&self) -> u64 {
        self.succeeded.len() + self.failed.len()
    }

    /// The kept latest attempt of failed child `index`, if it was kept.
    pub fn failed_attempt(&self, index: u32) -> Option<&AttemptRecord> {
        self.failed_attempts
            .iter()
            .rev()
            .find(|a| a.array_index == Some(index))
    }

    fn forget_prior(&mut self, index: u32) {
        for set in self.prior_attempts.values_mut() {
            if set.remove(index) {
                break;
            }
        }
        self.prior_attempts.retain(|_, set| !set.is_empty());
    }

    fn mark_succeeded(&mut self, index: u32) {
        self.forget_prior(index);
        self.succeeded.insert(index);
    }

    fn mark_retry(&mut self, index: u32, attempts_used: u32) {
        self.forget_prior(index);
        self.prior_attempts
            .entry(attempts_used)
            .or_default()
            .insert(index);
    }

    pub(crate) fn mark_failed(&mut self, index: u32, attempt: AttemptRecord) {
        self.forget_prior(index);
        self.failed.insert(index);
        self.failed_attempts.push(attempt);
        if self.failed_attempts.len() > MAX_FAILED_CHILD_ATTEMPTS {
            let excess = self.failed_attempts.len() - MAX_FAILED_CHILD_ATTEMPTS;
            self.failed_attempts.drain(..excess);
            self.failed_attempts_omitted = self
                .failed_attempts_omitted
                .saturating_add(u32::try_from(excess).unwrap_or(u32::MAX));
        }
    }

    /// Fails many children that have no attempt to record (cancelled, dependency failed).
    fn mark_failed_without_attempt(&mut self, children: &IndexSet) {
        if children.is_empty() {
            return;
        }
        self.failed = self.failed.union(children);
        for set in self.prior_attempts.values_mut() {
            *set = set.difference(children);
        }
        self.prior_attempts.retain(|_, set| !set.is_empty());
    }

    /// Every child not yet finished.
    fn unfinished(&self) -> BitSet {
        let mut bits = BitSet::full(self.size);
        bits.and_not_with(&self.succeeded.to_bitset(self.size));
        bits.and_not_with(&self.failed.to_bitset(self.size));
        bits
    }
}

/// What one reconcile saw of the children.
/// Which children are in which state, derived by one reconcile (`JobPlan::children`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildStates {
    pub submitted: IndexSet,
    pub pending: IndexSet,
    pub runnable: IndexSet,
    pub starting: IndexSet,
    pub running: IndexSet,
    pub succeeded: IndexSet,
    pub failed: IndexSet,
}

impl ChildStates {
    /// The state of child `index` (None when out of range).
    pub fn state_of(&self, index: u32) -> Option<JobState> {
        [
            (JobState::Submitted, &self.submitted),
            (JobState::Pending, &self.pending),
            (JobState::Runnable, &self.runnable),
            (JobState::Starting, &self.starting),
            (JobState::Running, &self.running),
            (JobState::Succeeded, &self.succeeded),
            (JobState::Failed, &self.failed),
        ]
        .into_iter()
        .find(|(_, set)| set.contains(index))
        .map(|(state, _)| state)
    }

    /// `arrayProperties.statusSummary`.
    pub fn summary(&self) -> StatusSummary {
        let n = |s: &IndexSet| u32::try_from(s.len()).unwrap_or(u32::MAX);
        StatusSummary {
            submitted: n(&self.submitted),
            pending: n(&self.pending),
            runnable: n(&self.runnable),
            starting: n(&self.starting),
            running: n(&self.running),
            succeeded: n(&self.succeeded),
            failed: n(&self.failed),
        }
    }
}

/// Children with a live pod, as seen by one reconcile.
struct Live {
    starting: BitSet,
    running: BitSet,
    first_start_ms: Option<i64>,
}

impl Live {
    fn new(size: u32) -> Live {
        Live {
            starting: BitSet::new(size),
            running: BitSet::new(size),
            first_start_ms: None,
        }
    }

    fn any(&self) -> BitSet {
        let mut all = self.starting.clone();
        all.or_with(&self.running);
        all
    }
}

pub(crate) fn reconcile_array(view: &JobView, d: &mut Draft) {
    let size = d
        .record
        .array
        .as_ref()
        .map(|a| a.size)
        .or(view.spec.array_size)
        .unwrap_or(0);
    let mut rec = d
        .record
        .array
        .take()
        .unwrap_or_else(|| ArrayRecord::new(size));
    run(view, d, &mut rec);
    d.record.array = Some(rec);
}

fn run(view: &JobView, d: &mut Draft, rec: &mut ArrayRecord) {
    let size = rec.size;
    let child_pods: Vec<&PodView> = view
        .pods
        .iter()
        .filter(|p| p.array_index.is_some() && p.node_index.is_none())
        .collect();
    if let Err(e) = validate_size(size) {
        for pod in &child_pods {
            let_go(d, pod);
        }
        if !d.record.state.is_terminal() {
            d.fail(e.to_string());
        }
        d.apply_ttl(view);
        return;
    }

    if d.record.state.is_terminal() {
        // Every pod of a finished array lets go (recorded, or placed while it was ending).
        for pod in &child_pods {
            let_go(d, pod);
        }
        finish_children(d, rec, &Live::new(size), &BitSet::new(size));
        d.apply_ttl(view);
        return;
    }

    // The current pod of each child: attempt = attempts used + 1. Older pods let go.
    let mut current: BTreeMap<u32, &PodView> = BTreeMap::new();
    for pod in child_pods {
        let index = pod.array_index.unwrap_or(u32::MAX);
        if index >= size || rec.is_done(index) || pod.attempt <= rec.attempts_made(index) {
            let_go(d, pod);
        } else if pod.attempt == rec.next_attempt(index) {
            current.insert(index, pod);
        }
    }

    let terminate = view.spec.terminate.as_ref();
    match &view.admission {
        Admission::Waiting { reason }
            if d.record.state == JobState::Submitted && terminate.is_none() =>
        {
            d.record.status_reason = Some(reason.clone());
            d.waiting = Some(reason.clone());
            finish_children(d, rec, &Live::new(size), &BitSet::new(size));
            return;
        }
        Admission::Invalid { reason } if current.is_empty() && d.record.state.is_queued() => {
            rec.mark_failed_without_attempt(&IndexSet::from_bitset(&rec.unfinished()));
            d.fail(reason.clone());
            finish_children(d, rec, &Live::new(size), &BitSet::new(size));
            return;
        }
        _ => {}
    }

    let terminated: IndexSet = match terminate {
        Some(t) => t
            .array_indices
            .as_ref()
            .map_or_else(|| IndexSet::all(size), |s| s.clipped(size)),
        None => IndexSet::new(),
    };
    let terminate_reason = terminate.map(|t| t.reason().to_string());
    let whole_job_terminated = terminate.is_some_and(|t| t.array_indices.is_none());

    // 1. Live children: record results, enforce timeouts and terminations.
    let mut live = Live::new(size);
    for (&index, &pod) in &current {
        let stop_reason = terminate_reason
            .as_deref()
            .filter(|_| terminated.contains(index));
        let progress = pods::progress(
            pod,
            view.spec.attempt_duration_seconds,
            stop_reason,
            d.now_ms,
        );
        if let Some(started) = progress.started_at() {
            live.first_start_ms = Some(live.first_start_ms.map_or(started, |s| s.min(started)));
        }
        match progress {
            Progress::Finished(finished) => {
                match decide_after_attempt(
                    &view.spec.retry_strategy,
                    pod.attempt,
                    &finished.outcome,
                ) {
                    AttemptDecision::Succeed => rec.mark_succeeded(index),
                    AttemptDecision::Retry => rec.mark_retry(index, pod.attempt),
                    AttemptDecision::Fail { .. } => {
                        rec.mark_failed(index, pods::attempt_record(pod, &finished));
                        if stop_reason.is_some() {
                            rec.terminated.insert(index);
                        }
                    }
                }
                let_go(d, pod);
            }
            Progress::Waiting => {
                live.starting.insert(index);
                if stop_reason.is_some() {
                    stop_pod(d, pod, 0, DeleteReason::Terminate);
                } else {
                    watch_deletion(d, pod);
                }
            }
            Progress::Running { started_at_ms } => {
                live.running.insert(index);
                if stop_reason.is_some() {
                    stop_running_pod(d, pod, DeleteReason::Terminate);
                } else {
                    enforce_child_timeout(d, view, pod, started_at_ms);
                }
            }
        }
    }

    // 2. Children without a live pod: cancel the terminated ones.
    let mut idle = rec.unfinished();
    idle.and_not_with(&live.any());
    if let Some(reason) = &terminate_reason {
        let mut cancel = idle.clone();
        cancel.and_with(&terminated.to_bitset(size));
        if !cancel.none() {
            let cancelled = IndexSet::from_bitset(&cancel);
            rec.mark_failed_without_attempt(&cancelled);
            rec.terminated = rec.terminated.union(&cancelled);
            idle.and_not_with(&cancel);
        }
        if !(live.any().none() && cancel.none()) {
            d.waiting = Some(format!("terminating: {reason}"));
        }
    }

    // 3. Dependencies decide which idle children are RUNNABLE, PENDING or must fail.
    let readiness = deps::evaluate_array(
        &view.name,
        size,
        &view.spec.depends_on,
        &view.dependencies,
        &rec.succeeded,
        &rec.failed,
    );
    let settled = super::surroundings(view).settle(readiness.gate.clone(), d.now_ms);
    if let Some(at) = settled.recheck_at_ms {
        d.wake_at(at);
    }
    let mut runnable = BitSet::new(size);
    let mut gate_failure: Option<String> = None;
    let mut gate_waiting: Option<String> = None;
    match &settled.verdict {
        DependencyVerdict::Failed { status_reason } => {
            rec.mark_failed_without_attempt(&IndexSet::from_bitset(&idle));
            gate_failure = Some(status_reason.clone());
        }
        DependencyVerdict::Waiting { reason } => gate_waiting = Some(reason.clone()),
        DependencyVerdict::Met => {
            let mut doomed = readiness.doomed.clone();
            doomed.and_with(&idle);
            if !doomed.none() {
                rec.mark_failed_without_attempt(&IndexSet::from_bitset(&doomed));
                idle.and_not_with(&doomed);
            }
            runnable = readiness.ready.clone();
            runnable.and_with(&idle);
        }
    }

    // 3b. Children whose pod the API server kept refusing: their attempt fails at the bound.
    if let Some(refusal) = &view.creation_refusal {
        give_up_refused_children(view, d, rec, refusal, &mut runnable);
    }

    // 4. The parent's state (never backwards before it ends).
    if d.record.started_at_ms.is_none() {
        d.record.started_at_ms = live.first_start_ms;
    }
    if rec.done_count() < u64::from(size) {
        let derived = if !live.running.none() || d.record.started_at_ms.is_some() {
            JobState::Running
        } else if !live.starting.none() {
            JobState::Starting
        } else if !runnable.none() {
            JobState::Runnable
        } else {
            JobState::Pending
        };
        let target = derived.max(d.record.state);
        match (&gate_waiting, target) {
            (Some(reason), JobState::Pending) => {
                if d.record.state != target || d.record.status_reason.as_ref() != Some(reason) {
                    d.transition(target, Some(reason.clone()));
                }
                d.waiting = Some(reason.clone());
            }
            _ if d.record.state != target => d.transition(target, None),
            _ => {}
        }
        if d.record.state == JobState::Runnable && !runnable.none() && d.apply_blocked(view) {
            let reason = Draft::time_limit_reason(
                view,
                d.record.status_reason.as_deref().unwrap_or_default(),
            );
            rec.mark_failed_without_attempt(&IndexSet::from_bitset(&runnable));
            runnable = BitSet::new(size);
            if rec.done_count() >= u64::from(size) {
                d.fail(reason);
            } else {
                d.waiting = Some(reason);
            }
        }
    }
    if rec.done_count() >= u64::from(size) && !d.record.state.is_terminal() {
        if rec.failed.is_empty() {
            d.transition(JobState::Succeeded, None);
        } else {
            let reason = match (whole_job_terminated, &terminate_reason, gate_failure) {
                (true, Some(reason), _) => reason.clone(),
                (_, _, Some(gate)) => gate,
                _ => reasons::array_children_failed(rec.failed.len(), size),
            };
            d.fail(reason);
        }
    }

    // 5. What the scheduler may place, and where every child stands.
    if !runnable.none() && !d.record.state.is_terminal() {
        d.runnable = runnable_work(rec, &IndexSet::from_bitset(&runnable));
    }
    finish_children(d, rec, &live, &runnable);
}

/// Runnable children whose current attempt's pod creation was refused for longer than the
/// bound: the attempt fails with `PodCreationRefused: <message>`; the retry strategy decides
/// whether the child runs again (a new attempt, with a bound of its own) or fails.
fn give_up_refused_children(
    view: &JobView,
    d: &mut Draft,
    rec: &mut ArrayRecord,
    refusal: &CreationRefusal,
    runnable: &mut BitSet,
) {
    for &unit in refusal.units.keys() {
        let Some(index) = unit.array_index else {
            continue;
        };
        if index >= rec.size || !runnable.contains(index) || unit.attempt != rec.next_attempt(index)
        {
            continue;
        }
        let status_reason = match refusal.give_up(unit, d.now_ms) {
            None => continue,
            Some(GiveUp::NotYet { at_ms }) => {
                d.wake_at(at_ms);
                continue;
            }
            Some(GiveUp::Now { status_reason }) => status_reason,
        };
        let outcome = AttemptOutcome::pod_failed(status_reason, None);
        match decide_after_attempt(&view.spec.retry_strategy, unit.attempt, &outcome) {
            AttemptDecision::Retry => rec.mark_retry(index, unit.attempt),
            AttemptDecision::Succeed | AttemptDecision::Fail { .. } => {
                let finished = pods::Finished {
                    outcome,
                    started_at_ms: None,
                    stopped_at_ms: d.now_ms,
                };
                let pod_name = naming::attempt_pod_name(&view.name, unit.attempt, Some(index));
                let absent = pods::absent_pod(pod_name, unit.attempt, Some(index), None);
                rec.mark_failed(index, pods::attempt_record(&absent, &finished));
                runnable.remove(index);
            }
        }
    }
}

fn enforce_child_timeout(d: &mut Draft, view: &JobView, pod: &PodView, started_at_ms: i64) {
    match timeout::decide_timeout(
        view.spec.attempt_duration_seconds,
        Some(started_at_ms),
        pod.deletion_timestamp_ms,
        pod.active_deadline_at_ms,
        d.now_ms,
    ) {
        TimeoutDecision::NotYet { deadline_ms } => {
            d.wake_at(deadline_ms);
            watch_deletion(d, pod);
        }
        TimeoutDecision::Stop(_) => stop_running_pod(d, pod, DeleteReason::Timeout),
        TimeoutDecision::NoTimeout | TimeoutDecision::Stopping(_) => watch_deletion(d, pod),
    }
}

/// Groups runnable children by the attempt they run next; retried groups first.
fn runnable_work(rec: &ArrayRecord, runnable: &IndexSet) -> RunnableWork {
    let mut groups = Vec::new();
    let mut fresh = runnable.clone();
    for (&used, set) in &rec.prior_attempts {
        let indices = runnable.intersection(set);
        if !indices.is_empty() {
            fresh = fresh.difference(&indices);
            groups.push(RunnableGroup {
                attempt: used.saturating_add(1),
                retried: true,
                indices,
            });
        }
    }
    if !fresh.is_empty() {
        groups.push(RunnableGroup {
            attempt: 1,
            retried: false,
            indices: fresh,
        });
    }
    RunnableWork::Array { groups }
}

/// Derives every child's state into the plan (children still live after the job ended, e.g.
/// stray pods being removed, are not counted: the record decides).
fn finish_children(d: &mut Draft, rec: &ArrayRecord, live: &Live, runnable: &BitSet) {
    let mut rest = rec.unfinished();
    let mut starting = live.starting.clone();
    let mut running = live.running.clone();
    starting.and_with(&rest);
    running.and_with(&rest);
    rest.and_not_with(&starting);
    rest.and_not_with(&running);
    rest.and_not_with(runnable);
    let rest = IndexSet::from_bitset(&rest);
    let (submitted, pending) = if d.record.state == JobState::Submitted {
        (rest, IndexSet::new())
    } else {
        (IndexSet::new(), rest)
    };
    let children = ChildStates {
        submitted,
        pending,
        runnable: IndexSet::from_bitset(runnable),
        starting: IndexSet::from_bitset(&starting),
        running: IndexSet::from_bitset(&running),
        succeeded: rec.succeeded.clone(),
        failed: rec.failed.clone(),
    };
    d.summary = Some(children.summary());
    d.children = Some(children);
}
