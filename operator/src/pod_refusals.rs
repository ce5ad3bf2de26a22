//! Pod creations the API server refused, per job.
//!
//! Written by the scheduler when a create is refused (403 from Pod Security or ResourceQuota
//! admission or a missing ServiceAccount, 422 invalid, 404 namespace...; see
//! [`barge_core::pod_creation::is_refusal`]) or succeeds; read by the scheduler, which holds a
//! job's work back while it backs off, and by the job controller, which hands the refusal to
//! `barge_core::job::reconcile` (the attempt fails with `PodCreationRefused: <message>` once
//! the bound has passed). The decisions are barge-core's ([`CreationRefusal`]); this is only
//! the shared, in-memory record (a new leader starts empty, and the bound starts over).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use barge_core::pod_creation::{is_refusal, CreationRefusal, Unit};
use barge_core::scheduler::JobKey;

/// The refusals of each job, tagged with the job's uid (a re-created job starts clean).
#[derive(Default)]
pub struct PodRefusals {
    inner: Mutex<HashMap<JobKey, (String, CreationRefusal)>>,
    /// Changes so far (see [`PodRefusals::changes`]).
    changes: AtomicU64,
}

impl PodRefusals {
    /// Records a refused create of `unit`; returns whether it deserves a Warning Event (the
    /// job's first refusal, or a message that differs from the last one).
    pub fn refused(
        &self,
        job: &JobKey,
        uid: &str,
        unit: Unit,
        message: &str,
        now_ms: i64,
        give_up_after_ms: i64,
    ) -> bool {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        self.changes.fetch_add(1, Ordering::AcqRel);
        match map.get_mut(job) {
            Some((u, refusal)) if u == uid => refusal.refused_again(unit, message, now_ms),
            _ => {
                let refusal = CreationRefusal::new(unit, message, now_ms, give_up_after_ms);
                map.insert(job.clone(), (uid.to_string(), refusal));
                true
            }
        }
    }

    /// A pod of the job was created: that unit is no longer refused, and the backoff starts over.
    pub fn created(&self, job: &JobKey, unit: Unit) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some((_, refusal)) = map.get_mut(job) else {
            return;
        };
        self.changes.fetch_add(1, Ordering::AcqRel);
        refusal.units.remove(&unit);
        refusal.refusals = 0;
        if refusal.units.is_empty() {
            map.remove(job);
        }
    }

    /// The refusals of the job with this key and uid, if any.
    pub fn get(&self, job: &JobKey, uid: &str) -> Option<CreationRefusal> {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.get(job)
            .filter(|(u, _)| u == uid)
            .map(|(_, r)| r.clone())
    }

    /// Whether the job's pods wait out a backoff at `now_ms`.
    pub fn backing_off(&self, job: &JobKey, now_ms: i64) -> bool {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.get(job).is_some_and(|(_, r)| r.backing_off(now_ms))
    }

    /// Forgets the job (it has nothing left to place, or it is gone).
    pub fn forget(&self, job: &JobKey) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if map.remove(job).is_some() {
            self.changes.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// How many times a refusal was recorded, eased by a created pod or forgotten: unchanged,
    /// which jobs back off changes only with time, at [`PodRefusals::next_retry_ms`].
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// The earliest moment after `now_ms` at which a job backing off at `now_ms` may be tried
    /// again (None: none backs off).
    pub fn next_retry_ms(&self, now_ms: i64) -> Option<i64> {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.values()
            .filter(|(_, r)| r.backing_off(now_ms))
            .map(|(_, r)| r.retry_at_ms())
            .min()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The API server's message when `err` refuses a pod create for good (its Status `message`,
/// not a debug dump of the error), else `None` (a transient error, retried on the next pass).
pub fn refusal_message(err: &kube::Error) -> Option<String> {
    match err {
        kube::Error::Api(status) if is_refusal(status.code) => Some(if status.message.is_empty() {
            format!("{} (HTTP {})", status.reason, status.code)
        } else {
            status.message.clone()
        }),
        _ => None,
    }
}

/// A kube error for a condition or an Event: the API server's Status message with its reason
/// and code, never the `Debug` dump kube's `Display` appends.
pub fn error_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!(
            "{} ({}, HTTP {})",
            status.message, status.reason, status.code
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn unit(attempt: u32) -> Unit {
        Unit {
            attempt,
            array_index: None,
        }
    }

    #[test]
    fn refusals_are_kept_per_job_and_uid_and_reset_by_a_create() {
        let refusals = PodRefusals::default();
        let job = JobKey::new("ns", "j");
        assert!(refusals.refused(&job, "u1", unit(1), "forbidden", T0, 60_000));
        assert!(
            !refusals.refused(&job, "u1", unit(1), "forbidden", T0 + 1_000, 60_000),
            "same message: no second Event"
        );
        assert!(refusals.backing_off(&job, T0 + 2_999));
        assert!(!refusals.backing_off(&job, T0 + 3_000));
        assert_eq!(
            refusals.get(&job, "u2"),
            None,
            "another job of the same name"
        );
        assert!(
            refusals.refused(&job, "u2", unit(1), "forbidden", T0, 60_000),
            "a re-created job starts over"
        );
        refusals.created(&job, unit(1));
        assert!(refusals.is_empty());
    }

    #[test]
    fn every_change_is_counted_and_the_next_retry_is_the_earliest_backoff_end() {
        let refusals = PodRefusals::default();
        let (a, b) = (JobKey::new("ns", "a"), JobKey::new("ns", "b"));
        assert_eq!(refusals.next_retry_ms(T0), None);
        let before = refusals.changes();
        refusals.refused(&a, "u", unit(1), "forbidden", T0, 60_000);
        assert!(refusals.changes() > before, "a refusal");
        // Refused again: the backoff doubles to 2 s.
        refusals.refused(&a, "u", unit(1), "forbidden", T0 + 1_000, 60_000);
        refusals.refused(&b, "u", unit(1), "forbidden", T0 + 1_500, 60_000);
        assert_eq!(refusals.next_retry_ms(T0 + 1_500), Some(T0 + 2_500));
        // b's backoff is over: only a's is ahead.
        assert_eq!(refusals.next_retry_ms(T0 + 2_500), Some(T0 + 3_000));
        assert_eq!(refusals.next_retry_ms(T0 + 3_000), None);

        let before = refusals.changes();
        refusals.created(&JobKey::new("ns", "never-refused"), unit(1));
        refusals.forget(&JobKey::new("ns", "never-refused"));
        assert_eq!(refusals.changes(), before, "nothing changed");
        refusals.created(&a, unit(1));
        assert!(refusals.changes() > before, "a create eases a refusal");
        let before = refusals.changes();
        refusals.forget(&b);
        assert!(refusals.changes() > before, "a forgotten job");
    }

    #[test]
    fn only_policy_refusals_carry_the_api_message() {
        let status = |code: u16, message: &str| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                message: message.into(),
                reason: "Forbidden".into(),
                ..kube::core::Status::default()
            }))
        };
        assert_eq!(
            refusal_message(&status(403, "pods \"j-1\" is forbidden: exceeded quota")).as_deref(),
            Some("pods \"j-1\" is forbidden: exceeded quota")
        );
        assert_eq!(
            refusal_message(&status(403, "")).as_deref(),
            Some("Forbidden (HTTP 403)")
        );
        assert_eq!(refusal_message(&status(500, "etcd")), None);
        assert_eq!(
            error_message(&status(500, "etcd timed out")),
            "etcd timed out (Forbidden, HTTP 500)"
        );
        assert_eq!(refusal_message(&status(409, "exists")), None);
    }
}
