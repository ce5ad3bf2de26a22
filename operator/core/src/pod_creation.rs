//! Pod creations the API server refuses: how long to back off, and when an attempt gives up.
//!
//! A create answered 4xx (other than 409 AlreadyExists and 429 TooManyRequests) — a Pod
//! Security or ResourceQuota admission refusal (403), a missing ServiceAccount (403), an invalid
//! pod (422), a missing namespace (404) — is refused by policy, not by accident: retrying it
//! every pass would hammer the API server and hide the problem. The scheduler records each
//! refusal of a job in a [`CreationRefusal`]; this module decides, purely:
//! - when the job's pods may be tried again ([`CreationRefusal::retry_at_ms`]: exponential
//!   backoff per job, 1 s doubling up to [`MAX_BACKOFF_MS`]);
//! - when a refused unit (an attempt of the job, or of one array child) gives up
//!   ([`CreationRefusal::give_up`]): `give_up_after_ms` after its first refusal the attempt
//!   fails with status reason `PodCreationRefused: <the API server's message>`, and the retry
//!   strategy decides what follows, as for any failed attempt.
//!
//! Nothing here reads a clock: the operator passes `now_ms`, and requeues the job at the
//! give-up time it gets back.

use crate::reasons;
use std::collections::BTreeMap;

/// Default of `barge operator --pod-create-give-up-seconds`.
pub const DEFAULT_GIVE_UP_SECONDS: i64 = 300;
/// First backoff after a refusal.
pub const FIRST_BACKOFF_MS: i64 = 1_000;
/// Longest backoff between two tries of a job's pods.
pub const MAX_BACKOFF_MS: i64 = 60_000;

/// Whether an HTTP status of a pod create is a refusal (as opposed to success, a pod that
/// exists already, throttling, or a server error, which are retried on the next pass).
pub fn is_refusal(code: u16) -> bool {
    (400..500).contains(&code) && code != 409 && code != 429
}

/// The backoff after the `refusals`-th refusal in a row: 1 s, 2 s, 4 s ... up to 60 s.
pub fn backoff_ms(refusals: u32) -> i64 {
    let doublings = refusals.saturating_sub(1).min(16);
    FIRST_BACKOFF_MS
        .saturating_mul(1_i64 << doublings)
        .min(MAX_BACKOFF_MS)
}

/// One pod of a job: an attempt, of the job or of an array child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Unit {
    pub attempt: u32,
    pub array_index: Option<u32>,
}

/// The refusals of one job's pod creations since its last successful create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreationRefusal {
    /// Refusals in a row (the backoff grows with them).
    pub refusals: u32,
    pub last_refused_at_ms: i64,
    /// The API server's latest message (its Status `message`).
    pub message: String,
    /// Each refused unit and when it was first refused.
    pub units: BTreeMap<Unit, i64>,
    /// How long after its first refusal a unit gives up.
    pub give_up_after_ms: i64,
}

/// What to do about a refused unit now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GiveUp {
    /// Keep trying (with backoff); the attempt fails at `at_ms` unless a create succeeds.
    NotYet { at_ms: i64 },
    /// Fail the attempt with this status reason.
    Now { status_reason: String },
}

impl CreationRefusal {
    /// A first refusal of `unit` at `now_ms`.
    pub fn new(unit: Unit, message: &str, now_ms: i64, give_up_after_ms: i64) -> CreationRefusal {
        CreationRefusal {
            refusals: 1,
            last_refused_at_ms: now_ms,
            message: message.to_string(),
            units: BTreeMap::from([(unit, now_ms)]),
            give_up_after_ms,
        }
    }

    /// Records another refusal; returns whether its message is new (worth a Warning Event).
    pub fn refused_again(&mut self, unit: Unit, message: &str, now_ms: i64) -> bool {
        self.refusals = self.refusals.saturating_add(1);
        self.last_refused_at_ms = now_ms;
        self.units.entry(unit).or_insert(now_ms);
        if self.message == message {
            false
        } else {
            self.message = message.to_string();
            true
        }
    }

    /// When the job's pods may be tried again.
    pub fn retry_at_ms(&self) -> i64 {
        self.last_refused_at_ms
            .saturating_add(backoff_ms(self.refusals))
    }

    /// Whether the job is backing off at `now_ms`.
    pub fn backing_off(&self, now_ms: i64) -> bool {
        now_ms < self.retry_at_ms()
    }

    /// Where a unit stands: never refused (`None`), still trying, or giving up.
    pub fn give_up(&self, unit: Unit, now_ms: i64) -> Option<GiveUp> {
        let first = *self.units.get(&unit)?;
        let at_ms = first.saturating_add(self.give_up_after_ms);
        Some(if now_ms >= at_ms {
            GiveUp::Now {
                status_reason: reasons::pod_creation_refused(&self.message),
            }
        } else {
            GiveUp::NotYet { at_ms }
        })
    }

    /// The condition message while the job's pods are refused.
    pub fn explain(&self, now_ms: i64) -> String {
        let retry_s = (self.retry_at_ms().saturating_sub(now_ms).max(0) + 999) / 1000;
        format!(
            "the API server refused to create the job's pod: {} (refused {} time(s); next try in {retry_s} s; the attempt fails {} s after the first refusal)",
            self.message,
            self.refusals,
            self.give_up_after_ms / 1000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;
    const FIRST: Unit = Unit {
        attempt: 1,
        array_index: None,
    };

    #[test]
    fn only_policy_refusals_count() {
        for code in [400, 403, 404, 422] {
            assert!(is_refusal(code), "{code}");
        }
        for code in [200, 201, 409, 429, 500, 503] {
            assert!(!is_refusal(code), "{code}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let seen: Vec<i64> = (1..=9).map(backoff_ms).collect();
        assert_eq!(
            seen,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]
        );
        assert_eq!(backoff_ms(0), 1_000);
        assert_eq!(backoff_ms(u32::MAX), 60_000);
    }

    #[test]
    fn a_refused_job_backs_off_then_gives_up_after_the_bound() {
        let mut r = CreationRefusal::new(FIRST, "forbidden: quota", T0, 300_000);
        assert!(r.backing_off(T0 + 999));
        assert!(!r.backing_off(T0 + 1_000));
        assert!(!r.refused_again(FIRST, "forbidden: quota", T0 + 1_000));
        assert_eq!(r.retry_at_ms(), T0 + 3_000, "second refusal: 2 s");
        assert!(r.refused_again(FIRST, "forbidden: other", T0 + 3_000));
        assert_eq!(
            r.give_up(FIRST, T0 + 299_999),
            Some(GiveUp::NotYet {
                at_ms: T0 + 300_000
            }),
            "the bound counts from the first refusal"
        );
        assert_eq!(
            r.give_up(FIRST, T0 + 300_000),
            Some(GiveUp::Now {
                status_reason: "PodCreationRefused: forbidden: other".into()
            })
        );
        let next = Unit {
            attempt: 2,
            array_index: None,
        };
        assert_eq!(r.give_up(next, T0 + 400_000), None, "never refused");
        r.refused_again(next, "forbidden: other", T0 + 400_000);
        assert_eq!(
            r.give_up(next, T0 + 400_000),
            Some(GiveUp::NotYet {
                at_ms: T0 + 700_000
            }),
            "a new attempt gets its own bound"
        );
        assert!(r.explain(T0 + 400_000).contains("forbidden: other"));
    }
}
