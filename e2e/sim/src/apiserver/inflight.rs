//! kube-apiserver's max-in-flight limit (`--max-requests-inflight`,
//! `--max-mutating-requests-inflight`; `WithMaxInFlightLimit` in
//! k8s.io/apiserver/pkg/server/filters/maxinflight.go).
//!
//! Two independent budgets: read-only requests (verbs get, list, watch) and mutating ones (every
//! other verb). Long-running requests (watches and the attach, exec, log, portforward and proxy
//! subresources) are not counted. A request arriving while its budget is spent is refused at once
//! with 429, `Retry-After: 1` and the plain-text body upstream writes ("Too many requests, please
//! try again later."), unless its user is in `system:masters` (every request that does not
//! impersonate someone, in the sim), which upstream always serves. A limit of 0 turns that budget
//! off; both 0 turn the filter off, as upstream.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode};

use super::auth::{rbac::SYSTEM_PRIVILEGED_GROUP, UserInfo};

/// kube-apiserver's default `--max-requests-inflight`.
pub const DEFAULT_MAX_REQUESTS_INFLIGHT: usize = 400;
/// kube-apiserver's default `--max-mutating-requests-inflight`.
pub const DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT: usize = 200;

/// The body of upstream's 429 (`http.Error` appends the newline).
pub const TOO_MANY_REQUESTS_BODY: &str = "Too many requests, please try again later.\n";

/// The two limits; 0 = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaxInFlight {
    /// Read-only requests (get, list; watches are long-running and never counted).
    pub requests: usize,
    /// Mutating requests (create, update, patch, delete, deletecollection, ...).
    pub mutating: usize,
}

impl MaxInFlight {
    /// kube-apiserver's defaults (400 read-only, 200 mutating).
    pub fn upstream_defaults() -> Self {
        MaxInFlight {
            requests: DEFAULT_MAX_REQUESTS_INFLIGHT,
            mutating: DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT,
        }
    }
}

/// What the filter makes of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Not counted (long-running, or the filter is off for its kind).
    Exempt,
    ReadOnly,
    Mutating,
}

/// Subresources upstream's `BasicLongRunningRequestCheck` treats as long-running.
const LONG_RUNNING_SUBRESOURCES: &[&str] = &["attach", "exec", "log", "portforward", "proxy"];

/// Classifies a request from its method, whether it asks to watch, and its subresource.
pub fn classify(method: &Method, watch: bool, subresource: Option<&str>) -> Class {
    let read_only = matches!(*method, Method::GET | Method::HEAD);
    if (read_only && watch) || subresource.is_some_and(|s| LONG_RUNNING_SUBRESOURCES.contains(&s)) {
        return Class::Exempt;
    }
    if read_only {
        Class::ReadOnly
    } else {
        Class::Mutating
    }
}

/// The in-flight counters of one server.
#[derive(Debug, Default)]
pub struct InFlight {
    limits: MaxInFlight,
    read_only: Arc<AtomicUsize>,
    mutating: Arc<AtomicUsize>,
}

/// A slot held while a request is served; released on drop.
#[derive(Debug)]
pub struct Slot(Option<Arc<AtomicUsize>>);

impl Slot {
    /// A request the filter does not count.
    pub fn none() -> Slot {
        Slot(None)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl InFlight {
    pub fn new(limits: MaxInFlight) -> Self {
        InFlight {
            limits,
            ..InFlight::default()
        }
    }

    pub fn limits(&self) -> MaxInFlight {
        self.limits
    }

    /// Takes a slot for a request of `class` by `user` (None: `system:admin`), or refuses it
    /// (`Err(mutating)`) when its budget is spent and the user is not in `system:masters`.
    pub fn admit(&self, class: Class, user: Option<&UserInfo>) -> Result<Slot, bool> {
        let (counter, limit, mutating) = match class {
            Class::Exempt => return Ok(Slot(None)),
            Class::ReadOnly => (&self.read_only, self.limits.requests, false),
            Class::Mutating => (&self.mutating, self.limits.mutating, true),
        };
        if limit == 0 {
            return Ok(Slot(None));
        }
        let admitted = counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok();
        if admitted {
            return Ok(Slot(Some(counter.clone())));
        }
        let privileged = user.is_none_or(|u| u.groups.iter().any(|g| g == SYSTEM_PRIVILEGED_GROUP));
        if privileged {
            Ok(Slot(None))
        } else {
            Err(mutating)
        }
    }
}

/// Upstream's `tooManyRequests`: 429, `Retry-After: 1`, a plain-text body.
pub fn too_many_requests() -> Response {
    let mut r = Response::new(Body::from(TOO_MANY_REQUESTS_BODY));
    *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let h = r.headers_mut();
    h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(groups: &[&str]) -> UserInfo {
        UserInfo {
            name: "u".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..UserInfo::default()
        }
    }

    #[test]
    fn classes_follow_upstream_verbs_and_long_running_checks() {
        assert_eq!(classify(&Method::GET, false, None), Class::ReadOnly);
        assert_eq!(classify(&Method::GET, true, None), Class::Exempt);
        assert_eq!(classify(&Method::GET, false, Some("log")), Class::Exempt);
        assert_eq!(classify(&Method::POST, false, Some("exec")), Class::Exempt);
        assert_eq!(
            classify(&Method::GET, false, Some("status")),
            Class::ReadOnly
        );
        assert_eq!(classify(&Method::POST, false, None), Class::Mutating);
        assert_eq!(
            classify(&Method::PATCH, false, Some("status")),
            Class::Mutating
        );
        assert_eq!(classify(&Method::DELETE, false, None), Class::Mutating);
    }

    #[test]
    fn budgets_refuse_beyond_the_limit_and_free_on_drop() {
        let f = InFlight::new(MaxInFlight {
            requests: 1,
            mutating: 2,
        });
        let sa = user(&["system:serviceaccounts", "system:authenticated"]);
        let a = f.admit(Class::Mutating, Some(&sa)).expect("first");
        let _b = f.admit(Class::Mutating, Some(&sa)).expect("second");
        assert_eq!(f.admit(Class::Mutating, Some(&sa)).err(), Some(true));
        // The read-only budget is separate.
        let r = f.admit(Class::ReadOnly, Some(&sa)).expect("read");
        assert_eq!(f.admit(Class::ReadOnly, Some(&sa)).err(), Some(false));
        drop(a);
        drop(r);
        f.admit(Class::Mutating, Some(&sa))
            .expect("a slot was freed");
        f.admit(Class::ReadOnly, Some(&sa))
            .expect("a slot was freed");
        // Long-running requests are never counted.
        f.admit(Class::Exempt, Some(&sa)).expect("exempt");
    }

    #[test]
    fn system_masters_are_always_served_and_zero_is_off() {
        let f = InFlight::new(MaxInFlight {
            requests: 0,
            mutating: 1,
        });
        let _held = f
            .admit(Class::Mutating, None)
            .expect("admin takes the slot");
        f.admit(Class::Mutating, None)
            .expect("admin is system:masters");
        f.admit(Class::Mutating, Some(&user(&["system:masters"])))
            .expect("system:masters");
        assert!(f.admit(Class::Mutating, Some(&user(&["devs"]))).is_err());
        for _ in 0..1000 {
            std::mem::forget(
                f.admit(Class::ReadOnly, Some(&user(&["devs"])))
                    .expect("no read-only limit"),
            );
        }
    }

    #[test]
    fn refusal_is_upstreams_429() {
        let r = too_many_requests();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[http::header::RETRY_AFTER], "1");
        assert_eq!(
            r.headers()[http::header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }
}
