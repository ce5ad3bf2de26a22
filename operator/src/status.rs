//! Writing status: conditions merged so `lastTransitionTime` moves only when a condition flips,
//! and status written by server-side apply under the writer's field manager, skipped when
//! nothing changed.
//!
//! Data flow: a controller derives the whole desired status in one pure function (conditions as
//! [`DesiredCondition`]s, merged with the current ones by [`merge_conditions`]) and hands it to
//! [`apply_status`], which compares it with the cached object's status and, only when they
//! differ, sends `{apiVersion, kind, metadata: {name[, resourceVersion]}, status}` as an apply
//! patch to the `/status` subresource (forced: each status has exactly one writer). With
//! [`Precondition::ResourceVersion`] the API server refuses the write (409) when the object
//! changed since the cache saw it, so a stale cache can never move a record backwards.

use std::fmt::Debug;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use barge_crds::consts::{CONDITION_STALLED, REASON_INVALID_SPEC};
use barge_crds::{ComputeEnvironment, Job, JobDefinition, JobQueue, SchedulingPolicy};

use crate::metrics::Metrics;

/// `status` values of conditions.
pub const CONDITION_TRUE: &str = "True";
pub const CONDITION_FALSE: &str = "False";
/// Condition reason: the cluster does not serve an API the provider needs (Karpenter's
/// `karpenter.sh/v1` NodePool, or the kind `nodeClassRef` names).
pub const REASON_PROVIDER_NOT_SERVED: &str = "ProviderNotServed";
/// Condition reason: the environment names a provider this installation did not enable
/// (`barge operator --providers`; the chart's `providers.*.enabled`).
pub const REASON_PROVIDER_DISABLED: &str = "ProviderDisabled";
/// Condition reason: the Karpenter NodeClass `nodeClassRef` names does not exist.
pub const REASON_NODE_CLASS_NOT_FOUND: &str = "NodeClassNotFound";
/// Condition reason: a NodePool of the environment's name exists and is not Barge's.
pub const REASON_NODE_POOL_CONFLICT: &str = "NodePoolConflict";
/// Condition reason: the API server refused the NodePool Barge rendered.
pub const REASON_NODE_POOL_REFUSED: &str = "NodePoolRefused";

/// A condition as a controller wants it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCondition {
    pub type_: String,
    pub status: bool,
    /// CamelCase reason (a constant from `barge_crds::consts`).
    pub reason: String,
    pub message: String,
}

impl DesiredCondition {
    pub fn new(type_: &str, status: bool, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// The conditions to write: exactly `desired`, in that order, each keeping the
/// `lastTransitionTime` of the existing condition of its type when its status did not change
/// (reason and message may change without a transition), else `now`.
pub fn merge_conditions(
    existing: &[Condition],
    desired: &[DesiredCondition],
    observed_generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let status = if d.status {
                CONDITION_TRUE
            } else {
                CONDITION_FALSE
            };
            let last_transition_time = existing
                .iter()
                .find(|c| c.type_ == d.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: d.type_.clone(),
                status: status.to_string(),
                reason: d.reason.clone(),
                message: d.message.clone(),
                last_transition_time,
                observed_generation,
            }
        })
        .collect()
}

/// kstatus' `Stalled` condition for an object whose `Ready` condition is `ready`: True, with
/// Ready's reason and message, when Ready is False for one of `terminal_reasons` (reasons only a
/// change of the object's own spec clears); `None` otherwise, since Stalled is an abnormal-true
/// condition written only while True. Reasons another object can clear (a referenced object not
/// created yet, no Ready node) are never terminal: GitOps tools apply objects in any order.
pub fn stalled_condition(
    ready: &DesiredCondition,
    terminal_reasons: &[&str],
) -> Option<DesiredCondition> {
    (!ready.status && terminal_reasons.contains(&ready.reason.as_str())).then(|| {
        DesiredCondition::new(
            CONDITION_STALLED,
            true,
            &ready.reason,
            ready.message.clone(),
        )
    })
}

/// `ready` and, when it calls for one, the `Stalled` condition ([`stalled_condition`]) of an
/// object whose spec alone can be invalid ([`REASON_INVALID_SPEC`]).
pub fn ready_and_stalled(ready: DesiredCondition) -> Vec<DesiredCondition> {
    let stalled = stalled_condition(&ready, &[REASON_INVALID_SPEC]);
    std::iter::once(ready).chain(stalled).collect()
}

/// The condition of `type_`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// A kind whose status Barge writes.
pub trait HasStatus:
    Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Serialize + Send + Sync + 'static
{
    type Status: Serialize + PartialEq + Clone + Debug + Send + Sync;
    fn status(&self) -> Option<&Self::Status>;
}

macro_rules! has_status {
    ($kind:ty, $status:ty) => {
        impl HasStatus for $kind {
            type Status = $status;
            fn status(&self) -> Option<&$status> {
                self.status.as_ref()
            }
        }
    };
}

has_status!(Job, barge_crds::JobStatusDetail);
has_status!(JobDefinition, barge_crds::JobDefinitionStatus);
has_status!(JobQueue, barge_crds::JobQueueStatus);
has_status!(ComputeEnvironment, barge_crds::ComputeEnvironmentStatus);
has_status!(SchedulingPolicy, barge_crds::SchedulingPolicyStatus);

/// Whether the write requires the object to be unchanged since it was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Last writer wins (fine for statuses derived entirely from the current state).
    None,
    /// The object's `resourceVersion` as read; a newer object makes the write fail with 409.
    ResourceVersion,
}

/// What [`apply_status`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusWrite {
    /// The status already was the desired one.
    Unchanged,
    /// Written; the resourceVersion of the object the API server returned (the rest of the
    /// answer is not decoded: the caches learn the object from the watch).
    Written { resource_version: Option<String> },
}

/// The only part of a write's answer [`apply_status`] reads: serde skips everything else
/// without building it (a whole decoded object, managedFields included, cost a job's status
/// write more CPU than the write's own encoding).
#[derive(serde::Deserialize)]
struct Answer {
    metadata: AnswerMetadata,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerMetadata {
    resource_version: Option<String>,
}

/// The resourceVersion in a write's answer (the API server's JSON object).
fn answered_resource_version(answer: &str) -> Result<Option<String>, serde_json::Error> {
    serde_json::from_str::<Answer>(answer).map(|a| a.metadata.resource_version)
}

/// The apply patch body for a status write (pure).
pub fn status_patch<K: HasStatus>(
    obj: &K,
    status: &K::Status,
    precondition: Precondition,
) -> serde_json::Value {
    let mut metadata = serde_json::json!({ "name": obj.name_any() });
    if precondition == Precondition::ResourceVersion {
        if let Some(rv) = obj.resource_version() {
            metadata["resourceVersion"] = serde_json::Value::String(rv);
        }
    }
    serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": metadata,
        "status": status,
    })
}

/// Writes `status` to `api` for `obj` by server-side apply as `field_manager`, unless `obj`
/// already has exactly that status.
pub async fn apply_status<K: HasStatus>(
    api: &Api<K>,
    obj: &K,
    status: &K::Status,
    field_manager: &str,
    precondition: Precondition,
    metrics: &Metrics,
) -> Result<StatusWrite, kube::Error> {
    if obj.status() == Some(status) {
        metrics.status_writes_skipped.inc();
        return Ok(StatusWrite::Unchanged);
    }
    let patch = status_patch(obj, status, precondition);
    let params = PatchParams::apply(field_manager).force();
    metrics.status_writes.inc();
    // `Api::patch_status` as it is, except that only the resourceVersion is decoded.
    let mut request = kube::core::Request::new(api.resource_url())
        .patch_subresource("status", &obj.name_any(), &params, &Patch::Apply(&patch))
        .map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert("patch_status");
    let answer = api.clone().into_client().request_text(request).await?;
    let resource_version = answered_resource_version(&answer).map_err(kube::Error::SerdeError)?;
    Ok(StatusWrite::Written { resource_version })
}

/// Status writes that wait for their coalescing window, per object (by key): since when, and
/// what the unwritten status holds (`V`, the caller's summary of it).
///
/// A write that may wait (a job's non-terminal transitions, see the job controller) opens a
/// window at the first change left unwritten; every change within the window is left
/// unwritten too, and the first reconcile at or after the window's end writes the latest
/// status, so that a job going RUNNABLE → STARTING → RUNNING within the window costs one
/// write (none when it finishes within the window: terminal states are written at once).
/// Nothing rests on the window's timing for correctness: the written record only lags, and
/// what it lags behind is kept here ([`pending`](Self::pending)) until it is written, so a
/// reconcile can judge what happened since against the unwritten status (a pod that vanished
/// after its start was seen but not yet written).
pub struct StatusDeferrals<K, V = ()> {
    pending: std::sync::Mutex<Pending<K, V>>,
}

/// The unwritten statuses, and the size at which they are swept next.
struct Pending<K, V> {
    by_key: std::collections::HashMap<K, Deferral<V>>,
    sweep_at: usize,
}

/// One object's unwritten status: since when it waits, and what it holds.
struct Deferral<V> {
    since: std::time::Instant,
    status: V,
}

impl<K, V> Default for StatusDeferrals<K, V> {
    fn default() -> Self {
        Self {
            pending: std::sync::Mutex::new(Pending {
                by_key: std::collections::HashMap::new(),
                sweep_at: DEFERRAL_SWEEP_AT,
            }),
        }
    }
}

/// Entries whose object is gone are swept when the map first holds this many, then each time
/// it has doubled since the last sweep (amortized: a sweep asks `alive` of every entry).
const DEFERRAL_SWEEP_AT: usize = 1024;

impl<K: std::hash::Hash + Eq + Clone, V> StatusDeferrals<K, V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending<K, V>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How much longer the write of `key`'s changed status (`status`, replacing any unwritten
    /// one before it) may wait at `now` for a window of `window` (the first call opens the
    /// window); None: write now. The status stays [`pending`](Self::pending) until
    /// [`written`](Self::written). When the map has grown enough ([`DEFERRAL_SWEEP_AT`]),
    /// entries whose object is gone (`alive` says no) are swept; no entry goes for its age.
    pub fn wait(
        &self,
        key: &K,
        status: V,
        now: std::time::Instant,
        window: std::time::Duration,
        alive: impl Fn(&K, &V) -> bool,
    ) -> Option<std::time::Duration> {
        let mut pending = self.lock();
        let opened = match pending.by_key.get_mut(key) {
            Some(deferral) => {
                deferral.status = status;
                deferral.since
            }
            None => {
                pending
                    .by_key
                    .insert(key.clone(), Deferral { since: now, status });
                if pending.by_key.len() >= pending.sweep_at {
                    pending
                        .by_key
                        .retain(|k, d| k == key || alive(k, &d.status));
                    pending.sweep_at = (2 * pending.by_key.len()).max(DEFERRAL_SWEEP_AT);
                }
                now
            }
        };
        let elapsed = now.saturating_duration_since(opened);
        (elapsed < window).then(|| window - elapsed)
    }

    /// What `read` makes of `key`'s unwritten status, if one waits.
    pub fn pending<R>(&self, key: &K, read: impl FnOnce(&V) -> R) -> Option<R> {
        self.lock().by_key.get(key).map(|d| read(&d.status))
    }

    /// The status of `key` was written (or needs no write any more): its window closes.
    pub fn written(&self, key: &K) {
        let mut pending = self.lock();
        if pending.by_key.remove(key).is_some() {
            // A burst's deferrals fill the map; once they are written its capacity goes back
            // (amortized O(1): each shrink follows at least as many removals as it moves).
            let (len, capacity) = (pending.by_key.len(), pending.by_key.capacity());
            if capacity >= DEFERRAL_SWEEP_AT && len * 4 < capacity {
                pending.by_key.shrink_to(len * 2);
            }
        }
    }

    /// Objects with an open (or expired, unwritten) window.
    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a kube error is a 409 Conflict (a stale resourceVersion, or a concurrent writer).
pub fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}

/// Whether a kube error is a 404 Not Found.
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_resource_version_of_a_write_answer_is_read() {
        let answer = r#"{"apiVersion":"batch.barge.dev/v1alpha1","kind":"Job","metadata":{"name":"j","managedFields":[{"manager":"m","fieldsV1":{"f:status":{}}}],"resourceVersion":"42"},"status":{"status":"RUNNABLE"}}"#;
        assert_eq!(
            answered_resource_version(answer).expect("decodes"),
            Some("42".to_string())
        );
        assert_eq!(
            answered_resource_version(r#"{"metadata":{"name":"j"}}"#).expect("decodes"),
            None
        );
        assert!(answered_resource_version(r#"{"kind":"Status"}"#).is_err());
    }

    #[test]
    fn a_deferral_window_opens_at_the_first_change_and_closes_on_write() {
        use std::time::{Duration, Instant};
        let deferrals = StatusDeferrals::<String, &str>::default();
        let window = Duration::from_millis(1000);
        let t0 = Instant::now();
        let key = "ns/j".to_string();
        let alive = |_: &String, _: &&str| true;
        assert_eq!(deferrals.pending(&key, |s| *s), None);
        assert_eq!(
            deferrals.wait(&key, "STARTING", t0, window, alive),
            Some(window)
        );
        assert_eq!(deferrals.pending(&key, |s| *s), Some("STARTING"));
        // A later change in the window waits for the same end, not a new window, and replaces
        // the unwritten status.
        assert_eq!(
            deferrals.wait(
                &key,
                "RUNNING",
                t0 + Duration::from_millis(300),
                window,
                alive
            ),
            Some(Duration::from_millis(700))
        );
        assert_eq!(deferrals.pending(&key, |s| *s), Some("RUNNING"));
        assert_eq!(
            deferrals.wait(&key, "RUNNING", t0 + window, window, alive),
            None,
            "at the window's end: write"
        );
        assert_eq!(
            deferrals.wait(&key, "RUNNING", t0 + 3 * window, window, alive),
            None,
            "an unwritten, expired window stays expired"
        );
        assert_eq!(
            deferrals.pending(&key, |s| *s),
            Some("RUNNING"),
            "unwritten until written, however long ago"
        );
        deferrals.written(&key);
        assert!(deferrals.is_empty());
        assert_eq!(deferrals.pending(&key, |s| *s), None);
        let t1 = t0 + 5 * window;
        assert_eq!(
            deferrals.wait(&key, "STARTING", t1, window, alive),
            Some(window),
            "a new window after a write"
        );
        assert_eq!(
            deferrals.wait(&key, "STARTING", t1, Duration::ZERO, alive),
            None,
            "no window: write now"
        );
    }

    #[test]
    fn deferrals_of_objects_gone_are_swept_never_those_of_live_ones() {
        use std::time::{Duration, Instant};
        let deferrals = StatusDeferrals::<u32, bool>::default();
        let window = Duration::from_millis(100);
        let t0 = Instant::now();
        // Odd keys' objects are gone (`false`).
        let alive = |_: &u32, live: &bool| *live;
        for k in 0..1023 {
            deferrals.wait(&k, k % 2 == 0, t0, window, alive);
        }
        assert_eq!(deferrals.len(), 1023);
        // The 1024th sweeps the gone ones, however recent; the live ones stay, however old.
        deferrals.wait(&5001, false, t0 + 10 * window, window, alive);
        assert_eq!(deferrals.len(), 512 + 1);
        assert_eq!(deferrals.pending(&0, |live| *live), Some(true));
        assert_eq!(deferrals.pending(&1, |live| *live), None);
        assert_eq!(deferrals.pending(&5001, |live| *live), Some(false));
        // The next sweep waits until the map has doubled (1,026 entries).
        for k in 6000..6512 {
            deferrals.wait(&k, false, t0, window, alive);
        }
        assert_eq!(deferrals.len(), 1025, "not swept again yet");
        deferrals.wait(&7000, true, t0, window, alive);
        assert_eq!(
            deferrals.len(),
            512 + 1,
            "the live even keys and the newest"
        );
    }

    #[test]
    fn written_deferrals_give_a_burst_s_capacity_back() {
        use std::time::{Duration, Instant};
        let deferrals = StatusDeferrals::<u32, bool>::default();
        let (t0, window) = (Instant::now(), Duration::from_millis(100));
        for k in 0..10_000 {
            deferrals.wait(&k, true, t0, window, |_, live| *live);
        }
        for k in 0..9_990 {
            deferrals.written(&k);
        }
        assert_eq!(deferrals.len(), 10);
        assert!(deferrals.lock().by_key.capacity() < 1024 * 2);
        assert_eq!(deferrals.pending(&9_995, |live| *live), Some(true));
    }
    use barge_crds::consts::{CONDITION_READY, REASON_VALID};
    use barge_crds::job_queue::{JobQueueSpec, JobQueueStatus, JqStatus};

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("ts")
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let first = merge_conditions(
            &[],
            &[DesiredCondition::new(
                CONDITION_READY,
                true,
                REASON_VALID,
                "ok",
            )],
            Some(1),
            ts(100),
        );
        assert_eq!(first[0].last_transition_time, Time(ts(100)));
        assert_eq!(first[0].status, CONDITION_TRUE);
        // Same status, new message and generation: the time stays.
        let same = merge_conditions(
            &first,
            &[DesiredCondition::new(
                CONDITION_READY,
                true,
                REASON_VALID,
                "still ok",
            )],
            Some(2),
            ts(200),
        );
        assert_eq!(same[0].last_transition_time, Time(ts(100)));
        assert_eq!(
            (same[0].message.as_str(), same[0].observed_generation),
            ("still ok", Some(2))
        );
        // A flip moves it.
        let flipped = merge_conditions(
            &same,
            &[DesiredCondition::new(
                CONDITION_READY,
                false,
                REASON_INVALID_SPEC,
                "bad",
            )],
            Some(2),
            ts(300),
        );
        assert_eq!(flipped[0].last_transition_time, Time(ts(300)));
        assert_eq!(flipped[0].status, CONDITION_FALSE);
        // Conditions no longer desired are dropped.
        assert!(merge_conditions(&flipped, &[], None, ts(400)).is_empty());
        assert!(find_condition(&flipped, CONDITION_READY).is_some());
    }

    #[test]
    fn stalled_is_written_only_for_a_terminal_reason() {
        let invalid = DesiredCondition::new(CONDITION_READY, false, REASON_INVALID_SPEC, "bad");
        let both = ready_and_stalled(invalid.clone());
        assert_eq!(both.len(), 2);
        assert_eq!(
            (
                both[1].type_.as_str(),
                both[1].status,
                both[1].reason.as_str()
            ),
            (CONDITION_STALLED, true, REASON_INVALID_SPEC)
        );
        assert_eq!(both[1].message, "bad");
        // Not ready for a reason another object can clear: progressing, not stalled.
        let waiting = DesiredCondition::new(CONDITION_READY, false, "NoReadyNodes", "none");
        assert_eq!(ready_and_stalled(waiting.clone()), vec![waiting]);
        let ready = DesiredCondition::new(CONDITION_READY, true, REASON_INVALID_SPEC, "odd");
        assert!(stalled_condition(&ready, &[REASON_INVALID_SPEC]).is_none());
        assert!(stalled_condition(&invalid, &[]).is_none());
    }

    #[test]
    fn status_patch_carries_identity_status_and_optional_precondition() {
        let mut q = JobQueue::new(
            "high",
            JobQueueSpec {
                state: Default::default(),
                priority: 1,
                compute_environment_order: vec![],
                scheduling_policy_name: None,
                job_state_time_limit_actions: vec![],
                namespace_selector: None,
                queueing_strategy: Default::default(),
            },
        );
        q.metadata.resource_version = Some("42".into());
        let status = JobQueueStatus {
            status: Some(JqStatus::Valid),
            ..Default::default()
        };
        let patch = status_patch(&q, &status, Precondition::None);
        assert_eq!(patch["apiVersion"], "batch.barge.dev/v1alpha1");
        assert_eq!(patch["kind"], "JobQueue");
        assert_eq!(patch["metadata"], serde_json::json!({"name": "high"}));
        assert_eq!(patch["status"]["status"], "VALID");
        assert!(
            patch.get("spec").is_none(),
            "a status write carries no spec"
        );
        let guarded = status_patch(&q, &status, Precondition::ResourceVersion);
        assert_eq!(guarded["metadata"]["resourceVersion"], "42");
    }
}
