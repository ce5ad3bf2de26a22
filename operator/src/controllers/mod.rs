//! The kube-runtime controllers, one module per kind, and what they share.
//!
//! Every reconciler is a pipeline (Stackable style): **dereference** (read related objects from
//! the caches, never the API) → **validate** (pure) → **build** (pure: the desired children and
//! status) → **apply** (writes) → **update_status** (server-side apply, skipped when unchanged).
//! Each module has one `thiserror` enum whose variants name the failing step, and an
//! `error_policy` that tells permanent errors (wait for a change) from transient ones (requeue).
//!
//! `run` starts every controller (and the scheduler) on the leader; each is driven by the shared
//! feeds of the [`Caches`](crate::cache::Caches) and stops on the shutdown signal. A controller
//! never imports another: what two of them share lives in this module (controller machinery)
//! or one layer down (see `operator/ARCHITECTURE.md`).

pub mod compute_environment;
pub mod gate;
pub mod job;
pub mod job_definition;
pub mod job_queue;
pub mod runner;
pub mod scheduling_policy;

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::Resource;
use tracing::{debug, info, warn};

use crate::context::Context;

/// Condition reason: a deleted object waits for what still uses it.
pub const REASON_IN_USE: &str = "InUse";
/// Condition reason: the nodes of a compute environment do not match its plan yet.
pub const REASON_SCALING: &str = "Scaling";
/// Condition reason: a compute environment depends on something not valid yet.
pub const REASON_NOT_READY: &str = "NotReady";
/// Event action of everything a controller announces about configuration.
pub const ACTION_RECONCILE: &str = "Reconcile";

/// How long a transient failure waits before the next attempt.
pub const TRANSIENT_RETRY: Duration = Duration::from_secs(5);
/// How soon a reconcile that is only waiting (a newer object on its way, a deletion held by
/// what still uses the object) looks again, in case no watch event comes first.
pub const WAIT_RETRY: Duration = Duration::from_secs(1);

/// The kube controller settings for every Barge controller.
pub fn controller_config(ctx: &Context) -> controller::Config {
    controller::Config::default().concurrency(ctx.config.reconcile_concurrency)
}

/// Runs one reconcile and records its duration and outcome under `controller`.
pub async fn measured<T, E>(
    ctx: &Context,
    controller: &str,
    reconcile: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let result = reconcile.await;
    ctx.metrics
        .reconciled(controller, result.is_ok(), started.elapsed());
    result
}

/// A reconcile error that may only mean "waiting" (e.g. a deletion held by an in-use
/// finalizer): [`drain_classified`] logs those at info instead of warn.
pub trait ReconcileError: std::error::Error {
    fn is_waiting(&self) -> bool {
        false
    }
}

/// Whether a finalizer-wrapped error is a wait: the wrapped error is one, or the finalizer
/// patch met a newer object than the cache had (its `test` failed, 422, or a 409) — the watch
/// brings the new object and the reconcile runs again.
pub fn finalizer_error_is_waiting<E: ReconcileError>(
    err: &kube::runtime::finalizer::Error<E>,
) -> bool {
    use kube::runtime::finalizer::Error as F;
    match err {
        F::ApplyFailed(e) | F::CleanupFailed(e) => e.is_waiting(),
        F::AddFinalizer(kube::Error::Api(status))
        | F::RemoveFinalizer(kube::Error::Api(status)) => status.code == 409 || status.code == 422,
        _ => false,
    }
}

/// Consumes a controller's output until it ends, logging failed reconciles.
pub async fn drain<K, E>(
    controller: &'static str,
    stream: impl Stream<Item = Result<(ObjectRef<K>, Action), controller::Error<E, watcher::Error>>>,
) where
    K: Resource,
    K::DynamicType: std::fmt::Debug,
    E: std::error::Error + 'static,
{
    drain_classified(controller, stream, |_: &E| false).await
}

/// [`drain`], with errors for which `is_waiting` holds logged at info (they are waits, not
/// failures).
pub async fn drain_classified<K, E, Q>(
    controller: &'static str,
    stream: impl Stream<Item = Result<(ObjectRef<K>, Action), controller::Error<E, Q>>>,
    is_waiting: impl Fn(&E) -> bool,
) where
    K: Resource,
    K::DynamicType: std::fmt::Debug,
    E: std::error::Error + 'static,
    Q: std::error::Error + 'static,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(result) = stream.next().await {
        match result {
            Ok((obj, _)) => debug!(%controller, object = %obj, "reconciled"),
            Err(controller::Error::ReconcilerFailed(err, obj)) if is_waiting(&err) => {
                info!(%controller, object = %obj, reason = %err, "waiting")
            }
            Err(controller::Error::ReconcilerFailed(err, obj)) => {
                warn!(%controller, object = %obj, error = %err, "reconcile failed")
            }
            Err(controller::Error::ObjectNotFound(obj)) => {
                debug!(%controller, object = %obj, "object gone before its reconcile")
            }
            Err(err) => warn!(%controller, error = %err, "controller error"),
        }
    }
    debug!(%controller, "controller stopped");
}

/// Remembers, per object, the facts a mapper cares about, so that a watch event that changes
/// none of them (a status write, a node heartbeat) triggers no reconcile.
pub struct ChangeFilter<T> {
    seen: std::sync::Mutex<std::collections::HashMap<String, T>>,
}

impl<T: PartialEq + Clone> Default for ChangeFilter<T> {
    fn default() -> Self {
        Self {
            seen: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl<T: PartialEq + Clone> ChangeFilter<T> {
    /// Records `facts` for `key`: `Some(previous facts)` when they changed (or were unknown:
    /// `Some(None)`), `None` when they are the same as last time.
    pub fn update(&self, key: &str, facts: T) -> Option<Option<T>> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(key) {
            Some(previous) if *previous == facts => None,
            _ => Some(seen.insert(key.to_string(), facts)),
        }
    }
}

/// A stable digest of a serialisable value (to compare facts without keeping them).
pub fn digest<T: serde::Serialize>(value: &T) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(value)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// A list of names for messages: `a, b and c`.
pub fn join_names<S: Display>(names: &[S]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!(
            "{} and {last}",
            init.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("in use")]
    struct InUse;
    impl ReconcileError for InUse {
        fn is_waiting(&self) -> bool {
            true
        }
    }

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            ..Default::default()
        }))
    }

    #[test]
    fn stale_finalizer_patches_and_in_use_cleanups_are_waits() {
        use kube::runtime::finalizer::Error as F;
        assert!(finalizer_error_is_waiting::<InUse>(&F::CleanupFailed(
            InUse
        )));
        assert!(finalizer_error_is_waiting::<InUse>(&F::AddFinalizer(
            api_error(422)
        )));
        assert!(finalizer_error_is_waiting::<InUse>(&F::RemoveFinalizer(
            api_error(409)
        )));
        assert!(!finalizer_error_is_waiting::<InUse>(&F::AddFinalizer(
            api_error(403)
        )));
    }

    #[test]
    fn change_filter_reports_only_changes() {
        let filter = ChangeFilter::default();
        assert_eq!(filter.update("a", 1), Some(None));
        assert_eq!(filter.update("a", 1), None);
        assert_eq!(filter.update("a", 2), Some(Some(1)));
        assert_eq!(filter.update("b", 2), Some(None));
        assert_eq!(digest(&("x", 1)), digest(&("x", 1)));
        assert_ne!(digest(&("x", 1)), digest(&("x", 2)));
    }

    #[test]
    fn names_join_like_a_sentence() {
        assert_eq!(join_names::<&str>(&[]), "");
        assert_eq!(join_names(&["a"]), "a");
        assert_eq!(join_names(&["a", "b", "c"]), "a, b and c");
    }
}
