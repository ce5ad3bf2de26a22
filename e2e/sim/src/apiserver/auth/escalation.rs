//! RBAC's privilege-escalation prevention, as kube-apiserver's RBAC storage does it
//! (pkg/registry/rbac/{role,clusterrole,rolebinding,clusterrolebinding}/policybased and
//! pkg/registry/rbac/validation/policy_comparator.go), for writes by impersonated users:
//!
//! - a Role / ClusterRole may only carry rules the writer holds (in the role's namespace; for a
//!   ClusterRole, cluster-wide), unless the writer may `escalate` it; a ClusterRole with an
//!   `aggregationRule` needs cluster-admin's full authority;
//! - a RoleBinding / ClusterRoleBinding may only bind a role whose rules the writer holds
//!   (where the binding applies), unless the writer may `bind` that role;
//! - `system:masters` may do anything; an update changing only finalizers or owner references
//!   is not checked.
//!
//! Refusals are 403s: `roles.rbac.authorization.k8s.io "x" is forbidden: user "alice"
//! (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently
//! held:\n{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`.

use std::collections::BTreeSet;

use serde_json::Value;

use super::rbac::{authorize, PolicyRule, RbacSnapshot, RBAC_GROUP, SYSTEM_PRIVILEGED_GROUP};
use super::requestinfo::RequestInfo;
use super::UserInfo;
use crate::apiserver::registry::ResourceDef;
use crate::apiserver::status::{ApiError, ApiResult};

/// `BreakdownRule`: one rule per (group, resource, verb[, name]) and per (url, verb).
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |s: &String| vec![s.clone()];
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    api_groups: one(group),
                    resources: one(resource),
                    verbs: one(verb),
                    ..PolicyRule::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    for name in &rule.resource_names {
                        out.push(PolicyRule {
                            resource_names: one(name),
                            ..base.clone()
                        });
                    }
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                non_resource_urls: one(url),
                verbs: one(verb),
                ..PolicyRule::default()
            });
        }
    }
    out
}

fn has(set: &[String], s: &str) -> bool {
    set.iter().any(|x| x == s)
}

fn has_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| has(set, w))
}

fn resource_covers_all(set: &[String], covers: &[String]) -> bool {
    if has(set, "*") || has_all(set, covers) {
        return true;
    }
    covers.iter().all(|path| {
        has(set, path)
            || path
                .split_once('/')
                .is_some_and(|(_, sub)| has(set, &format!("*/{sub}")))
    })
}

fn non_resource_url_covers(owner: &str, sub: &str) -> bool {
    owner == sub || (owner.ends_with('*') && sub.starts_with(owner.trim_end_matches('*')))
}

/// `ruleCovers`.
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, "*") || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, "*") || has_all(&owner.api_groups, &sub.api_groups);
    let resources = resource_covers_all(&owner.resources, &sub.resources);
    let urls = sub.non_resource_urls.iter().all(|p| {
        owner
            .non_resource_urls
            .iter()
            .any(|o| non_resource_url_covers(o, p))
    });
    let names = if sub.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty() || has_all(&owner.resource_names, &sub.resource_names)
    };
    verbs && groups && resources && names && urls
}

/// `Covers`: whether `owner` holds every piece of `servant`; the pieces it lacks.
pub fn covers(owner: &[PolicyRule], servant: &[PolicyRule]) -> (bool, Vec<PolicyRule>) {
    let missing: Vec<PolicyRule> = servant
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect();
    (missing.is_empty(), missing)
}

/// `CompactRules`: simple rules (one group, one resource, no names) of the same group and
/// resource merged into one with all their verbs.
fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut out: Vec<PolicyRule> = Vec::new();
    for r in rules {
        let simple = r.api_groups.len() == 1
            && r.resources.len() == 1
            && r.resource_names.is_empty()
            && r.non_resource_urls.is_empty();
        if simple {
            if let Some(existing) = out.iter_mut().find(|o| {
                o.api_groups == r.api_groups
                    && o.resources == r.resources
                    && o.resource_names.is_empty()
                    && o.non_resource_urls.is_empty()
            }) {
                existing.verbs.extend(r.verbs);
                continue;
            }
        }
        out.push(r);
    }
    out
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted(list: &[String]) -> String {
    let items: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// `rbacv1helpers.CompactString`.
fn compact_string(r: &PolicyRule) -> String {
    let mut parts = Vec::new();
    for (label, list) in [
        ("APIGroups", &r.api_groups),
        ("Resources", &r.resources),
        ("NonResourceURLs", &r.non_resource_urls),
        ("ResourceNames", &r.resource_names),
        ("Verbs", &r.verbs),
    ] {
        if !list.is_empty() {
            parts.push(format!("{label}:{}", go_quoted(list)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// `ConfirmNoEscalation`: the user's rules in `namespace` must cover `rules`.
fn confirm_no_escalation(
    snap: &RbacSnapshot,
    user: &UserInfo,
    namespace: &str,
    rules: &[PolicyRule],
) -> Result<(), String> {
    let (owner, errors) = snap.rules_for(user, namespace);
    let (ok, missing) = covers(&owner, rules);
    if ok {
        return Ok(());
    }
    let described: BTreeSet<String> = compact(missing).iter().map(compact_string).collect();
    let mut msg = format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        go_quoted(&user.groups),
        described.into_iter().collect::<Vec<_>>().join("\n")
    );
    if !errors.is_empty() {
        msg.push_str(&format!("; resolution errors: [{}]", errors.join(" ")));
    }
    Err(msg)
}

/// Whether the user may `verb` the role `resource`/`name` (the `escalate` and `bind` verbs).
fn may(
    snap: &RbacSnapshot,
    user: &UserInfo,
    verb: &str,
    resource: &str,
    ns: &str,
    name: &str,
) -> bool {
    authorize(
        snap,
        user,
        &RequestInfo {
            is_resource_request: true,
            verb: verb.into(),
            api_group: RBAC_GROUP.into(),
            resource: resource.into(),
            namespace: ns.into(),
            name: name.into(),
            ..RequestInfo::default()
        },
    )
    .allowed()
}

/// `IsOnlyMutatingGCFields`: old and new differ at most in finalizers and owner references
/// (and the bookkeeping the server rewrites).
fn only_gc_fields(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "finalizers",
                "ownerReferences",
                "resourceVersion",
                "managedFields",
                "generation",
                "creationTimestamp",
                "uid",
            ] {
                m.remove(k);
            }
        }
        v
    };
    strip(old) == strip(new)
}

/// Check a write of an RBAC object by `user` (`old`: the live object of an update).
pub fn check(
    snap: &RbacSnapshot,
    def: &ResourceDef,
    obj: &Value,
    old: Option<&Value>,
    user: &UserInfo,
) -> ApiResult<()> {
    if def.group != RBAC_GROUP || user.groups.iter().any(|g| g == SYSTEM_PRIVILEGED_GROUP) {
        return Ok(());
    }
    if old.is_some_and(|o| only_gc_fields(o, obj)) {
        return Ok(());
    }
    let meta = |k: &str| {
        obj.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (name, ns) = (meta("name"), meta("namespace"));
    let refuse = |why: String| ApiError::forbidden(&def.qualified(), &name, &why);
    match def.resource.as_str() {
        "roles" | "clusterroles" => {
            if may(snap, user, "escalate", &def.resource, &ns, &name) {
                return Ok(());
            }
            if def.resource == "clusterroles"
                && obj.get("aggregationRule").is_some_and(|a| !a.is_null())
            {
                let full = [
                    PolicyRule::from_json(
                        &serde_json::json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
                    ),
                    PolicyRule::from_json(
                        &serde_json::json!({"verbs": ["*"], "nonResourceURLs": ["*"]}),
                    ),
                ];
                if confirm_no_escalation(snap, user, "", &full).is_err() {
                    return Err(refuse(
                        "must have cluster-admin privileges to use the aggregationRule".into(),
                    ));
                }
                return Ok(());
            }
            confirm_no_escalation(snap, user, &ns, &PolicyRule::rules_of(obj)).map_err(refuse)
        }
        "rolebindings" | "clusterrolebindings" => {
            let role_kind = obj
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let role_name = obj
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let role_resource = if role_kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            if may(snap, user, "bind", role_resource, &ns, role_name) {
                return Ok(());
            }
            let rules = match role_kind {
                "Role" => snap.roles.get(&(ns.clone(), role_name.to_string())),
                _ => snap.cluster_roles.get(role_name),
            };
            let Some(rules) = rules else {
                return Err(refuse(format!(
                    "{}.{RBAC_GROUP} {role_name:?} not found",
                    role_kind.to_lowercase()
                )));
            };
            confirm_no_escalation(snap, user, &ns, rules).map_err(refuse)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: Value) -> PolicyRule {
        PolicyRule::from_json(&v)
    }

    #[test]
    fn covers_as_policy_comparator() {
        let owner = vec![
            rule(
                json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "*/status"]}),
            ),
            rule(
                json!({"verbs": ["*"], "apiGroups": ["batch.barge.dev"], "resources": ["jobs"], "resourceNames": ["a"]}),
            ),
            rule(json!({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]})),
        ];
        let ok = |servant: Value| covers(&owner, &[rule(servant)]).0;
        assert!(ok(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]})
        ));
        assert!(ok(
            json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods/status", "services/status"]})
        ));
        assert!(!ok(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]})
        ));
        assert!(!ok(
            json!({"verbs": ["create"], "apiGroups": [""], "resources": ["pods"]})
        ));
        assert!(ok(
            json!({"verbs": ["delete"], "apiGroups": ["batch.barge.dev"], "resources": ["jobs"], "resourceNames": ["a"]})
        ));
        assert!(!ok(
            json!({"verbs": ["delete"], "apiGroups": ["batch.barge.dev"], "resources": ["jobs"]})
        ));
        assert!(ok(
            json!({"verbs": ["get"], "nonResourceURLs": ["/apis/batch.barge.dev"]})
        ));
        assert!(!ok(
            json!({"verbs": ["get"], "nonResourceURLs": ["/metrics"]})
        ));
        let (_, missing) = covers(
            &owner,
            &[rule(
                json!({"verbs": ["create", "delete", "get"], "apiGroups": [""], "resources": ["pods", "secrets"]}),
            )],
        );
        let text: Vec<String> = compact(missing).iter().map(compact_string).collect();
        assert_eq!(
            text,
            vec![
                "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"create\" \"delete\"]}",
                "{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"create\" \"delete\" \"get\"]}",
            ]
        );
    }
}
