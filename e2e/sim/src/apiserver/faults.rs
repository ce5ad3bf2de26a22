//! Fault injection and request statistics.
//!
//! [`FaultConfig`] is set per test (Rust: `Cluster::faults()`, HTTP: `PUT /sim/v1/faults`). Each
//! resource request first asks [`Faults::injected`] whether it should fail (a share of requests,
//! optionally only some verbs/resources, answered with a mix of 500/429/409) and how long to wait;
//! watch streams read `dropWatchesAfterEvents`. [`Stats`] counts requests by verb and resource.

use std::collections::BTreeMap;
use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::status::ApiError;

/// Faults applied to resource requests (not to discovery or `/sim/v1`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultConfig {
    /// Share of matching requests answered with an error, 0.0..=1.0.
    pub error_rate: f64,
    /// Codes to pick from (uniformly); empty means [500, 429, 409].
    pub error_codes: Vec<u16>,
    /// Only these verbs (get, list, watch, create, update, patch, delete, deletecollection); empty = all.
    pub verbs: Vec<String>,
    /// Only these resources (plural, e.g. "pods", "jobs"; a resource also covers its
    /// subresources) or subresources ("pods/status" alone); empty = all.
    pub resources: Vec<String>,
    /// Added latency per resource request.
    pub latency_ms: u64,
    /// Close every watch after it has sent this many events.
    pub drop_watches_after_events: Option<u64>,
}

/// Codes used when `error_codes` is empty.
pub const DEFAULT_ERROR_CODES: &[u16] = &[500, 429, 409];

/// Whether a `resources` filter entry covers a request for `resource` (`pods`, or
/// `pods/status` for a subresource): the resource covers its subresources, a subresource only
/// itself.
fn resource_matches(filter: &str, resource: &str) -> bool {
    filter == resource
        || resource
            .split_once('/')
            .is_some_and(|(main, _)| main == filter)
}

/// Decide (purely) whether a request fails: `roll` in [0,1) and `pick` choose outcome and code.
/// `resource` is the plural, with `/subresource` for a subresource request.
pub fn injected_code(
    cfg: &FaultConfig,
    verb: &str,
    resource: &str,
    roll: f64,
    pick: usize,
) -> Option<u16> {
    if cfg.error_rate <= 0.0 || roll >= cfg.error_rate {
        return None;
    }
    if !cfg.verbs.is_empty() && !cfg.verbs.iter().any(|v| v == verb) {
        return None;
    }
    if !cfg.resources.is_empty() && !cfg.resources.iter().any(|r| resource_matches(r, resource)) {
        return None;
    }
    let codes = if cfg.error_codes.is_empty() {
        DEFAULT_ERROR_CODES
    } else {
        &cfg.error_codes[..]
    };
    Some(codes[pick % codes.len()])
}

/// The error body of an injected fault.
pub fn fault_error(code: u16, resource: &str) -> ApiError {
    match code {
        429 => ApiError::too_many_requests(),
        409 => ApiError::conflict(resource, "injected", "injected conflict (sim fault)"),
        c => {
            let mut e = ApiError::internal("injected server error (sim fault)");
            e.code = c;
            e.body["code"] = serde_json::json!(c);
            e
        }
    }
}

/// Shared fault state.
#[derive(Default)]
pub struct Faults {
    cfg: RwLock<FaultConfig>,
}

impl Faults {
    pub fn get(&self) -> FaultConfig {
        self.cfg.read().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn set(&self, cfg: FaultConfig) {
        if let Ok(mut c) = self.cfg.write() {
            *c = cfg;
        }
    }

    /// (error to answer, latency to add) for one request of `resource` (`pods`, or `pods/status`
    /// for a subresource).
    pub fn injected(&self, verb: &str, resource: &str) -> (Option<ApiError>, u64) {
        let cfg = self.get();
        let code = injected_code(
            &cfg,
            verb,
            resource,
            fastrand::f64(),
            fastrand::usize(..1024),
        );
        let main = resource.split_once('/').map_or(resource, |(main, _)| main);
        (code.map(|c| fault_error(c, main)), cfg.latency_ms)
    }

    pub fn drop_watches_after(&self) -> Option<u64> {
        self.get().drop_watches_after_events
    }
}

/// Request counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    /// verb → resource (with "/subresource") → count.
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    pub total: u64,
    /// Write requests received (create, update, patch, delete, deletecollection).
    pub writes: u64,
    /// Writes committed to storage (including those of the built-in controllers).
    pub committed_writes: u64,
    /// Injected faults answered.
    pub faults_injected: u64,
    /// Requests refused with 429 by the max-in-flight limit (see `inflight`), of which
    /// `throttled_mutating` were writes.
    #[serde(default)]
    pub throttled: u64,
    #[serde(default)]
    pub throttled_mutating: u64,
    /// Writes computed outside the store lock and committed under it, and the time the lock was
    /// held for their commits (revision, store, watch fan-out) in nanoseconds.
    #[serde(default)]
    pub commits: u64,
    #[serde(default)]
    pub commit_nanos: u64,
}

impl StatsSnapshot {
    /// Requests of one verb on one resource.
    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.requests
            .get(verb)
            .and_then(|m| m.get(resource))
            .copied()
            .unwrap_or(0)
    }
}

/// Verbs that write.
pub const WRITE_VERBS: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

#[derive(Default)]
pub struct Stats {
    inner: Mutex<StatsSnapshot>,
}

impl Stats {
    pub fn record(&self, verb: &str, resource: &str) {
        if let Ok(mut s) = self.inner.lock() {
            // Counters are looked up before they are created: no key copies on the hot path.
            if !s.requests.contains_key(verb) {
                s.requests.insert(verb.to_string(), BTreeMap::new());
            }
            let Some(by_resource) = s.requests.get_mut(verb) else {
                return;
            };
            match by_resource.get_mut(resource) {
                Some(n) => *n += 1,
                None => {
                    by_resource.insert(resource.to_string(), 1);
                }
            }
            s.total += 1;
            if WRITE_VERBS.contains(&verb) {
                s.writes += 1;
            }
        }
    }

    pub fn record_fault(&self) {
        if let Ok(mut s) = self.inner.lock() {
            s.faults_injected += 1;
        }
    }

    /// The critical section of one write committed under the store lock.
    pub fn record_commit(&self, held: std::time::Duration) {
        if let Ok(mut s) = self.inner.lock() {
            s.commits += 1;
            s.commit_nanos += held.as_nanos() as u64;
        }
    }

    /// A request refused by the max-in-flight limit.
    pub fn record_throttled(&self, mutating: bool) {
        if let Ok(mut s) = self.inner.lock() {
            s.throttled += 1;
            if mutating {
                s.throttled_mutating += 1;
            }
        }
    }

    pub fn snapshot(&self, committed: u64) -> StatsSnapshot {
        let mut s = self.inner.lock().map(|s| s.clone()).unwrap_or_default();
        s.committed_writes = committed;
        s
    }

    pub fn reset(&self) {
        if let Ok(mut s) = self.inner.lock() {
            *s = StatsSnapshot::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rate_and_filters() {
        let cfg = FaultConfig {
            error_rate: 0.5,
            verbs: vec!["create".into()],
            ..Default::default()
        };
        assert_eq!(injected_code(&cfg, "create", "pods", 0.1, 0), Some(500));
        assert_eq!(injected_code(&cfg, "create", "pods", 0.1, 1), Some(429));
        assert_eq!(injected_code(&cfg, "create", "pods", 0.6, 0), None);
        assert_eq!(injected_code(&cfg, "get", "pods", 0.1, 0), None);
        let cfg = FaultConfig {
            error_rate: 1.0,
            resources: vec!["jobs".into()],
            error_codes: vec![503],
            ..Default::default()
        };
        assert_eq!(injected_code(&cfg, "get", "jobs", 0.99, 7), Some(503));
        assert_eq!(injected_code(&cfg, "get", "pods", 0.0, 7), None);
        assert_eq!(
            injected_code(&cfg, "patch", "jobs/status", 0.0, 7),
            Some(503)
        );
        let status_only = FaultConfig {
            error_rate: 1.0,
            resources: vec!["pods/status".into()],
            ..Default::default()
        };
        assert_eq!(
            injected_code(&status_only, "patch", "pods/status", 0.0, 0),
            Some(500)
        );
        assert_eq!(injected_code(&status_only, "patch", "pods", 0.0, 0), None);
        assert_eq!(
            injected_code(&status_only, "create", "pods/binding", 0.0, 0),
            None
        );
        assert_eq!(
            injected_code(&FaultConfig::default(), "get", "pods", 0.0, 0),
            None
        );
    }

    #[test]
    fn stats_count_writes() {
        let s = Stats::default();
        s.record("create", "pods");
        s.record("create", "pods");
        s.record("list", "pods");
        let snap = s.snapshot(5);
        assert_eq!(snap.count("create", "pods"), 2);
        assert_eq!(snap.writes, 2);
        assert_eq!(snap.total, 3);
        assert_eq!(snap.committed_writes, 5);
        assert_eq!(fault_error(429, "pods").code, 429);
        assert_eq!(fault_error(503, "pods").code, 503);
    }
}
