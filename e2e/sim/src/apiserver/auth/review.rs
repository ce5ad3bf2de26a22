//! The review kinds, answered by the same authorizer as requests (pkg/registry/authorization
//! and pkg/registry/authentication of kube-apiserver):
//! - `SelfSubjectAccessReview`: may the requester do `spec.resourceAttributes` /
//!   `spec.nonResourceAttributes`? (`kubectl auth can-i`);
//! - `SubjectAccessReview`: may `spec.user` with exactly `spec.groups` do it? (no groups are
//!   added: a user without groups is asked about as such);
//! - `LocalSubjectAccessReview`: the same in the URL's namespace (resource attributes only);
//! - `SelfSubjectRulesReview`: the requester's rules in `spec.namespace`
//!   (`kubectl auth can-i --list`);
//! - `SelfSubjectReview`: who the requester is (`kubectl auth whoami`).
//!
//! Status: `allowed`, `reason` (`RBAC: allowed by ...`), `evaluationError` (roles that could not
//! be resolved), as upstream.

use serde_json::{json, Map, Value};

use super::rbac::{authorize, PolicyRule, RbacSnapshot, SYSTEM_PRIVILEGED_GROUP};
use super::requestinfo::RequestInfo;
use super::UserInfo;
use crate::apiserver::status::{ApiError, ApiResult};

const AUTHORIZATION_GROUP: &str = "authorization.k8s.io";

fn s(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `ResourceAttributesFrom` / `NonResourceAttributesFrom`.
fn attributes(spec: &Value) -> RequestInfo {
    if let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
        return RequestInfo {
            is_resource_request: true,
            verb: s(r, "verb"),
            namespace: s(r, "namespace"),
            api_group: s(r, "group"),
            api_version: match s(r, "version") {
                v if v.is_empty() => "*".into(),
                v => v,
            },
            resource: s(r, "resource"),
            subresource: s(r, "subresource"),
            name: s(r, "name"),
            ..RequestInfo::default()
        };
    }
    let n = spec
        .get("nonResourceAttributes")
        .cloned()
        .unwrap_or_default();
    RequestInfo {
        is_resource_request: false,
        verb: s(&n, "verb"),
        path: s(&n, "path"),
        ..RequestInfo::default()
    }
}

fn invalid(kind: &str, field: &str, message: &str) -> ApiError {
    ApiError::invalid(AUTHORIZATION_GROUP, kind, "", field, message)
}

/// `ValidateSubjectAccessReviewSpec` / `ValidateSelfSubjectAccessReviewSpec`: exactly one of
/// the attribute kinds.
fn validate_attributes(kind: &str, spec: &Value) -> ApiResult<()> {
    let has = |k: &str| spec.get(k).is_some_and(Value::is_object);
    match (has("resourceAttributes"), has("nonResourceAttributes")) {
        (true, true) => Err(invalid(
            kind,
            "spec.nonResourceAttributes",
            "cannot be specified in combination with resourceAttributes",
        )),
        (false, false) => Err(invalid(
            kind,
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
        _ => Ok(()),
    }
}

/// The user a SubjectAccessReview asks about (`AuthorizationAttributesFrom`).
fn spec_user(spec: &Value) -> UserInfo {
    let extra = spec
        .get("extra")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let vals = v
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    (k.clone(), vals)
                })
                .collect()
        })
        .unwrap_or_default();
    UserInfo {
        name: s(spec, "user"),
        uid: s(spec, "uid"),
        groups: spec
            .get("groups")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        extra,
    }
}

fn access_status(snap: &RbacSnapshot, user: &UserInfo, attrs: &RequestInfo) -> Value {
    let decision = authorize(snap, user, attrs);
    let mut status = Map::new();
    status.insert("allowed".into(), json!(decision.allowed()));
    if !decision.reason().is_empty() {
        // Resolution errors travel in the reason (as RBAC reports them); upstream's
        // evaluationError is the authorizer's error, which RBAC never returns.
        status.insert("reason".into(), json!(decision.reason()));
    }
    Value::Object(status)
}

/// `SelfSubjectRulesReview` status: the privileged group's `*` rules, then RBAC's.
fn rules_status(snap: &RbacSnapshot, user: &UserInfo, namespace: &str) -> Value {
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    if user.groups.iter().any(|g| g == SYSTEM_PRIVILEGED_GROUP) {
        resource_rules.push(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
        non_resource_rules.push(json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
    }
    let (rules, errors) = snap.rules_for(user, namespace);
    for r in rules {
        if !r.resources.is_empty() {
            resource_rules.push(rule_info(&r, false));
        }
        if !r.non_resource_urls.is_empty() {
            non_resource_rules.push(rule_info(&r, true));
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
    });
    if !errors.is_empty() {
        status["evaluationError"] = json!(errors.join(", "));
    }
    status
}

fn rule_info(r: &PolicyRule, non_resource: bool) -> Value {
    let mut m = Map::new();
    m.insert("verbs".into(), json!(r.verbs));
    if non_resource {
        m.insert("nonResourceURLs".into(), json!(r.non_resource_urls));
    } else {
        m.insert("apiGroups".into(), json!(r.api_groups));
        m.insert("resources".into(), json!(r.resources));
        if !r.resource_names.is_empty() {
            m.insert("resourceNames".into(), json!(r.resource_names));
        }
    }
    Value::Object(m)
}

/// Answer a review object of `kind` posted by `requester` (to the namespace `url_ns` for the
/// namespaced LocalSubjectAccessReview): the object with its `status`.
pub fn answer(
    kind: &str,
    mut review: Value,
    requester: &UserInfo,
    url_ns: Option<&str>,
    snap: &RbacSnapshot,
) -> ApiResult<Value> {
    let spec = review.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = match kind {
        "SelfSubjectAccessReview" => {
            validate_attributes(kind, &spec)?;
            access_status(snap, requester, &attributes(&spec))
        }
        "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            validate_attributes(kind, &spec)?;
            let user = spec_user(&spec);
            if user.name.is_empty() && user.groups.is_empty() {
                return Err(invalid(
                    kind,
                    "spec.user",
                    "at least one of user or group must be specified",
                ));
            }
            let mut attrs = attributes(&spec);
            if kind == "LocalSubjectAccessReview" {
                let ns = url_ns.unwrap_or_default();
                if !attrs.is_resource_request {
                    return Err(invalid(
                        kind,
                        "spec.nonResourceAttributes",
                        "disallowed on this kind of request",
                    ));
                }
                if attrs.namespace.is_empty() {
                    attrs.namespace = ns.to_string();
                    review["spec"]["resourceAttributes"]["namespace"] = json!(ns);
                } else if attrs.namespace != ns {
                    return Err(ApiError::bad_request(format!(
                        "spec.resourceAttributes.namespace must match namespace: {ns}"
                    )));
                }
            }
            access_status(snap, &user, &attrs)
        }
        "SelfSubjectRulesReview" => {
            let ns = s(&spec, "namespace");
            if ns.is_empty() {
                return Err(ApiError::bad_request("no namespace on request"));
            }
            rules_status(snap, requester, &ns)
        }
        "SelfSubjectReview" => json!({"userInfo": requester.to_json()}),
        other => {
            return Err(ApiError::bad_request(format!(
                "{other} is not a review kind"
            )))
        }
    };
    review["status"] = status;
    if review.get("metadata").is_none_or(Value::is_null) {
        review["metadata"] = json!({});
    }
    Ok(review)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::auth::rbac::Binding;

    fn snap() -> RbacSnapshot {
        let mut s = RbacSnapshot::default();
        s.cluster_roles.insert(
            "edit-jobs".into(),
            vec![PolicyRule::from_json(&json!({"verbs": ["create"], "apiGroups": ["batch.barge.dev"], "resources": ["jobs"]}))],
        );
        s.role_bindings.insert(
            "team-a".into(),
            vec![Binding::from_json(
                &json!({"metadata": {"name": "b", "namespace": "team-a"},
                "roleRef": {"kind": "ClusterRole", "name": "edit-jobs"},
                "subjects": [{"kind": "User", "name": "alice"}]}),
            )],
        );
        s
    }

    fn alice() -> UserInfo {
        UserInfo {
            name: "alice".into(),
            groups: vec!["system:authenticated".into()],
            ..UserInfo::default()
        }
    }

    fn ssar(ns: &str) -> Value {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
               "spec": {"resourceAttributes": {"namespace": ns, "verb": "create", "group": "batch.barge.dev", "resource": "jobs"}}})
    }

    #[test]
    fn self_subject_access_review_asks_about_the_requester() {
        let out = answer(
            "SelfSubjectAccessReview",
            ssar("team-a"),
            &alice(),
            None,
            &snap(),
        )
        .unwrap();
        assert_eq!(out["status"]["allowed"], true);
        assert!(out["status"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("RBAC: allowed by RoleBinding"));
        let out = answer(
            "SelfSubjectAccessReview",
            ssar("team-b"),
            &alice(),
            None,
            &snap(),
        )
        .unwrap();
        assert_eq!(out["status"], json!({"allowed": false}));
        let both = json!({"spec": {"resourceAttributes": {}, "nonResourceAttributes": {}}});
        assert_eq!(
            answer("SelfSubjectAccessReview", both, &alice(), None, &snap())
                .unwrap_err()
                .code,
            422
        );
    }

    #[test]
    fn subject_access_review_uses_exactly_the_spec_user() {
        let sar = |user: &str, groups: Value| {
            json!({"spec": {"user": user, "groups": groups,
            "resourceAttributes": {"namespace": "team-a", "verb": "create", "group": "batch.barge.dev", "resource": "jobs"}}})
        };
        let admin = UserInfo::admin();
        assert_eq!(
            answer(
                "SubjectAccessReview",
                sar("alice", json!([])),
                &admin,
                None,
                &snap()
            )
            .unwrap()["status"]["allowed"],
            true
        );
        assert_eq!(
            answer(
                "SubjectAccessReview",
                sar("bob", json!(["x"])),
                &admin,
                None,
                &snap()
            )
            .unwrap()["status"]["allowed"],
            false
        );
        assert_eq!(
            answer(
                "SubjectAccessReview",
                sar("", json!([])),
                &admin,
                None,
                &snap()
            )
            .unwrap_err()
            .code,
            422
        );
        // Local: the namespace defaults to the URL's and must match it.
        let mut local = sar("alice", json!([]));
        local["spec"]["resourceAttributes"]["namespace"] = json!("");
        let out = answer(
            "LocalSubjectAccessReview",
            local.clone(),
            &admin,
            Some("team-a"),
            &snap(),
        )
        .unwrap();
        assert_eq!(out["status"]["allowed"], true);
        assert_eq!(out["spec"]["resourceAttributes"]["namespace"], "team-a");
        assert_eq!(
            answer(
                "LocalSubjectAccessReview",
                sar("alice", json!([])),
                &admin,
                Some("team-b"),
                &snap()
            )
            .unwrap_err()
            .code,
            400
        );
    }

    #[test]
    fn rules_review_and_whoami() {
        let out = answer(
            "SelfSubjectRulesReview",
            json!({"spec": {"namespace": "team-a"}}),
            &alice(),
            None,
            &snap(),
        )
        .unwrap();
        assert_eq!(
            out["status"]["resourceRules"],
            json!([{"verbs": ["create"], "apiGroups": ["batch.barge.dev"], "resources": ["jobs"]}])
        );
        assert_eq!(out["status"]["incomplete"], false);
        let out = answer("SelfSubjectReview", json!({}), &alice(), None, &snap()).unwrap();
        assert_eq!(out["status"]["userInfo"]["username"], "alice");
        assert_eq!(
            out["status"]["userInfo"]["groups"],
            json!(["system:authenticated"])
        );
    }
}
