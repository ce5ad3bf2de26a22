//! Authentication by impersonation and RBAC authorization, as kube-apiserver does them.
//!
//! The sim has no credentials: a request without impersonation headers is `system:admin` in
//! `system:masters` and is allowed everything without evaluating RBAC (the fast path every test
//! runs on). A request with `Impersonate-User` (+ `Impersonate-Group`, `Impersonate-Uid`,
//! `Impersonate-Extra-*`, as kubectl `--as`/`--as-group` and a kubeconfig user's `as:` /
//! `as-groups:` send them — kube-rs included) is authenticated as that user
//! ([`impersonation`]), its attributes are computed as kube-apiserver's requestinfo does
//! ([`requestinfo`]), and it is authorized by the privileged-group and RBAC authorizers
//! ([`rbac`]) against the Roles, ClusterRoles and bindings in the store. A refused request gets
//! kube-apiserver's 403 Status ([`forbidden`]); every impersonated request is recorded in the
//! request log ([`reqlog`]).
//!
//! A fresh cluster has upstream's bootstrap ClusterRoles and bindings ([`bootstrap`]: cluster-admin,
//! admin/edit/view with their aggregation rules, system:aggregate-to-*, discovery and
//! self-review roles for `system:authenticated`), kept aggregated by the ClusterRole aggregation
//! controller ([`aggregation`]). Impersonated users cannot write Roles or bindings granting more
//! than they hold ([`escalation`]). The access reviews (`kubectl auth can-i`, `whoami`) are
//! answered by the same authorizer ([`review`]).

pub mod aggregation;
pub mod bootstrap;
pub mod escalation;
pub mod impersonation;
pub mod rbac;
pub mod reqlog;
pub mod requestinfo;
pub mod review;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use rbac::{Decision, RbacSnapshot};
use reqlog::RequestRecord;
use requestinfo::RequestInfo;

use super::status::ApiError;
use super::{ApiServer, State};

/// The user a request is authenticated as (`user.Info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The user of requests without impersonation.
pub const ADMIN_USER: &str = "system:admin";

impl UserInfo {
    /// `system:admin` in `system:masters`: every unimpersonated request.
    pub fn admin() -> UserInfo {
        UserInfo {
            name: ADMIN_USER.into(),
            groups: vec![
                rbac::SYSTEM_PRIVILEGED_GROUP.into(),
                impersonation::ALL_AUTHENTICATED.into(),
            ],
            ..UserInfo::default()
        }
    }

    /// `authentication.k8s.io/v1` UserInfo.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("username".into(), json!(self.name));
        if !self.uid.is_empty() {
            m.insert("uid".into(), json!(self.uid));
        }
        m.insert("groups".into(), json!(self.groups));
        if !self.extra.is_empty() {
            m.insert("extra".into(), json!(self.extra));
        }
        Value::Object(m)
    }
}

/// `sanitizer.Replace` of responsewriters: HTML-escape the message.
fn sanitize(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The 403 of a refused request, worded as `responsewriters.Forbidden` + `NewForbidden` word it:
/// `jobs.batch.barge.dev "x" is forbidden: User "alice" cannot create resource "jobs" in API
/// group "batch.barge.dev" in the namespace "team-b"` (`at the cluster scope` without a
/// namespace; `forbidden: User "alice" cannot get path "/x"` for a non-resource path), then
/// `: REASON` when the authorizer gave one.
pub fn forbidden(info: &RequestInfo, user: &UserInfo, reason: &str) -> ApiError {
    let what = if !info.is_resource_request {
        format!(
            "User {:?} cannot {} path {:?}",
            user.name, info.verb, info.path
        )
    } else {
        let resource = if info.subresource.is_empty() {
            info.resource.clone()
        } else {
            format!("{}/{}", info.resource, info.subresource)
        };
        if info.namespace.is_empty() {
            format!(
                "User {:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
                user.name, info.verb, info.api_group
            )
        } else {
            format!(
                "User {:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
                user.name, info.verb, info.api_group, info.namespace
            )
        }
    };
    let mut err = sanitize(&what);
    if !reason.is_empty() {
        err = format!("{err}: {reason}");
    }
    // NewForbidden(GroupResource{group, resource}, name, err).
    let qualified = match (info.api_group.as_str(), info.resource.as_str()) {
        ("", r) => r.to_string(),
        (g, r) => format!("{r}.{g}"),
    };
    let message = if info.resource.is_empty() && info.api_group.is_empty() {
        format!("forbidden: {err}")
    } else if info.name.is_empty() {
        format!("{qualified} is forbidden: {err}")
    } else {
        format!("{qualified} {:?} is forbidden: {err}", info.name)
    };
    let mut details = Map::new();
    for (k, v) in [
        ("name", &info.name),
        ("group", &info.api_group),
        ("kind", &info.resource),
    ] {
        if !v.is_empty() {
            details.insert(k.into(), json!(v));
        }
    }
    ApiError::new(403, "Forbidden", message, Some(Value::Object(details)))
}

/// `responsewriters.InternalError`: a plain-text 500.
fn internal_error(uri: &http::Uri, err: &str) -> Response {
    let text = sanitize(&format!(
        "Internal Server Error: {:?}: {err}",
        uri.to_string()
    ));
    let mut r = (http::StatusCode::INTERNAL_SERVER_ERROR, text).into_response();
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The RBAC objects of a state as of now (rebuilt only when an RBAC storage was written since
/// the cached snapshot was made).
pub fn snapshot(st: &mut State) -> Arc<RbacSnapshot> {
    let stamp = rbac::stamp_of(&st.store);
    match &st.rbac {
        Some(s) if s.stamp == stamp => s.clone(),
        _ => {
            let s = Arc::new(RbacSnapshot::build(&st.store));
            st.rbac = Some(s.clone());
            s
        }
    }
}

impl ApiServer {
    /// The RBAC objects as of now (see [`snapshot`]).
    pub fn rbac_snapshot(&self) -> Arc<RbacSnapshot> {
        match self.state.lock() {
            Ok(mut st) => snapshot(&mut st),
            Err(_) => Arc::new(RbacSnapshot::default()),
        }
    }

    /// Authorize `user` for a request: privileged group first (no snapshot needed), then RBAC.
    pub fn authorize(&self, user: &UserInfo, info: &RequestInfo) -> Decision {
        if user
            .groups
            .iter()
            .any(|g| g == rbac::SYSTEM_PRIVILEGED_GROUP)
        {
            return Decision::Allow(String::new());
        }
        rbac::authorize(&self.rbac_snapshot(), user, info)
    }

    /// The records of impersonated requests so far.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.request_log.snapshot()
    }
}

/// Serve a request carrying impersonation headers: authenticate, authorize, then hand it to
/// the ordinary request path as that user; record it in the request log.
pub async fn serve_impersonated(
    api: Arc<ApiServer>,
    parts: http::request::Parts,
    body: Body,
) -> Response {
    let user = match impersonation::impersonated_user(&parts.headers) {
        Ok(Some(u)) => u,
        Ok(None) => return super::serve(&api, parts, body, None, None).await,
        Err(e) => return internal_error(&parts.uri, &e),
    };
    let info =
        match requestinfo::request_info(parts.method.as_str(), parts.uri.path(), parts.uri.query())
        {
            Ok(i) => i,
            Err(e) => return internal_error(&parts.uri, &e.0),
        };
    // DefaultBuildHandlerChain runs impersonation, then max-in-flight (or APF), then
    // authorization: a request beyond the budget gets its 429 without being authorized.
    let Some(slot) = super::admit_in_flight(&api, &parts, Some(&user)) else {
        let refused = super::inflight::too_many_requests();
        api.request_log.record(RequestRecord::new(
            &user,
            &info,
            false,
            refused.status().as_u16(),
        ));
        return refused;
    };
    let decision = api.authorize(&user, &info);
    let allowed = decision.allowed();
    let user = Arc::new(user);
    let response = if allowed {
        super::serve(&api, parts, body, Some(user.clone()), Some(slot)).await
    } else {
        forbidden(&info, &user, decision.reason()).into_response()
    };
    api.request_log.record(RequestRecord::new(
        &user,
        &info,
        allowed,
        response.status().as_u16(),
    ));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ri(method: &str, path: &str) -> RequestInfo {
        requestinfo::request_info(method, path, None).unwrap()
    }

    fn alice() -> UserInfo {
        UserInfo {
            name: "alice".into(),
            groups: vec!["system:authenticated".into()],
            ..UserInfo::default()
        }
    }

    #[test]
    fn forbidden_messages_as_upstream() {
        let e = forbidden(
            &ri("POST", "/apis/batch.barge.dev/v1/namespaces/team-b/jobs"),
            &alice(),
            "",
        );
        assert_eq!(e.code, 403);
        assert_eq!(e.body["reason"], "Forbidden");
        assert_eq!(
            e.body["message"],
            "jobs.batch.barge.dev is forbidden: User \"alice\" cannot create resource \"jobs\" in API group \"batch.barge.dev\" in the namespace \"team-b\""
        );
        assert_eq!(
            e.body["details"],
            json!({"group": "batch.barge.dev", "kind": "jobs"})
        );

        let e = forbidden(
            &ri(
                "DELETE",
                "/apis/batch.barge.dev/v1/namespaces/team-b/jobs/x",
            ),
            &alice(),
            "",
        );
        assert_eq!(
            e.body["message"],
            "jobs.batch.barge.dev \"x\" is forbidden: User \"alice\" cannot delete resource \"jobs\" in API group \"batch.barge.dev\" in the namespace \"team-b\""
        );
        assert_eq!(e.body["details"]["name"], "x");

        let e = forbidden(&ri("GET", "/api/v1/nodes"), &alice(), "");
        assert_eq!(
            e.body["message"],
            "nodes is forbidden: User \"alice\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        );
        assert_eq!(e.body["details"], json!({"kind": "nodes"}));

        let e = forbidden(
            &ri("PUT", "/api/v1/namespaces/d/pods/p/status"),
            &alice(),
            "RBAC: x",
        );
        assert_eq!(
            e.body["message"],
            "pods \"p\" is forbidden: User \"alice\" cannot update resource \"pods/status\" in API group \"\" in the namespace \"d\": RBAC: x"
        );

        let e = forbidden(&ri("GET", "/metrics"), &alice(), "");
        assert_eq!(
            e.body["message"],
            "forbidden: User \"alice\" cannot get path \"/metrics\""
        );
        assert_eq!(e.body["details"], json!({}));
    }
}
