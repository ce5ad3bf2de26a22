//! The RBAC authorizer, as kube-apiserver's (plugin/pkg/auth/authorizer/rbac/rbac.go with the
//! rule resolver of pkg/registry/rbac/validation/rule.go and the matchers of
//! pkg/apis/rbac/v1/evaluation_helpers.go):
//!
//! - the rules of a user are those of the Roles / ClusterRoles referenced by every
//!   ClusterRoleBinding naming the user, then (for a namespaced request) every RoleBinding of the
//!   request's namespace naming it; subjects match by User name, Group membership, or
//!   ServiceAccount (`system:serviceaccount:NS:NAME`, NS defaulting to the binding's namespace);
//! - a rule allows a resource request when verb (`*` or equal), API group (`*` or equal),
//!   resource (`*`, `resource`, `resource/subresource`, or `*/subresource`) and resourceNames
//!   (empty = all) match; a non-resource request when verb and a nonResourceURL (`*`, equal, or a
//!   `prefix*`) match;
//! - the first allowing rule wins, with the reason `RBAC: allowed by ClusterRoleBinding "b" of
//!   ClusterRole "r" to User "u"`; otherwise there is no opinion (the request is forbidden), and
//!   the reason lists resolution errors (`clusterrole.rbac.authorization.k8s.io "x" not found`).
//!
//! Before RBAC, members of `system:masters` are allowed everything (kube-apiserver's privileged
//! group authorizer). The bindings and roles are read from a [`RbacSnapshot`] of the store,
//! rebuilt only when one of the four RBAC storages was written.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};

use super::requestinfo::RequestInfo;
use super::UserInfo;
use crate::apiserver::store::Store;

pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
pub const CLUSTER_ROLES_STORAGE: &str = "rbac.authorization.k8s.io/clusterroles";
pub const ROLES_STORAGE: &str = "rbac.authorization.k8s.io/roles";
pub const CLUSTER_ROLE_BINDINGS_STORAGE: &str = "rbac.authorization.k8s.io/clusterrolebindings";
pub const ROLE_BINDINGS_STORAGE: &str = "rbac.authorization.k8s.io/rolebindings";
/// The storages a [`RbacSnapshot`] is built from.
pub const RBAC_STORAGES: [&str; 4] = [
    CLUSTER_ROLES_STORAGE,
    ROLES_STORAGE,
    CLUSTER_ROLE_BINDINGS_STORAGE,
    ROLE_BINDINGS_STORAGE,
];
/// The group whose members are allowed everything.
pub const SYSTEM_PRIVILEGED_GROUP: &str = "system:masters";

/// One `rbac.authorization.k8s.io/v1` PolicyRule (a missing or null list is empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl PolicyRule {
    pub fn from_json(v: &Value) -> PolicyRule {
        PolicyRule {
            verbs: strings(v, "verbs"),
            api_groups: strings(v, "apiGroups"),
            resources: strings(v, "resources"),
            resource_names: strings(v, "resourceNames"),
            non_resource_urls: strings(v, "nonResourceURLs"),
        }
    }

    /// The rules of a Role / ClusterRole object (`rules: null` is none).
    pub fn rules_of(obj: &Value) -> Vec<PolicyRule> {
        obj.get("rules")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(PolicyRule::from_json).collect())
            .unwrap_or_default()
    }

    /// The JSON form, empty lists left out (as the API serialises them).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in [
            ("verbs", &self.verbs),
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ] {
            if !v.is_empty() || k == "verbs" {
                m.insert(k.into(), json!(v));
            }
        }
        Value::Object(m)
    }

    fn verb_matches(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == "*" || v == verb)
    }

    fn api_group_matches(&self, group: &str) -> bool {
        self.api_groups.iter().any(|g| g == "*" || g == group)
    }

    fn resource_matches(&self, combined: &str, subresource: &str) -> bool {
        self.resources.iter().any(|r| {
            r == "*"
                || r == combined
                || (!subresource.is_empty()
                    && r.len() == subresource.len() + 2
                    && r.starts_with("*/")
                    && r.ends_with(subresource))
        })
    }

    fn resource_name_matches(&self, name: &str) -> bool {
        self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name)
    }

    fn non_resource_url_matches(&self, path: &str) -> bool {
        self.non_resource_urls.iter().any(|u| {
            u == "*" || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*')))
        })
    }

    /// `RuleAllows`: whether this rule allows a request.
    pub fn allows(&self, a: &RequestInfo) -> bool {
        if a.is_resource_request {
            let combined = if a.subresource.is_empty() {
                a.resource.clone()
            } else {
                format!("{}/{}", a.resource, a.subresource)
            };
            return self.verb_matches(&a.verb)
                && self.api_group_matches(&a.api_group)
                && self.resource_matches(&combined, &a.subresource)
                && self.resource_name_matches(&a.name);
        }
        self.verb_matches(&a.verb) && self.non_resource_url_matches(&a.path)
    }
}

/// A binding subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

impl Subject {
    /// `appliesToUser`.
    fn applies_to(&self, user: &UserInfo, namespace: &str) -> bool {
        match self.kind.as_str() {
            "User" => user.name == self.name,
            "Group" => user.groups.contains(&self.name),
            "ServiceAccount" => {
                let ns = if self.namespace.is_empty() {
                    namespace
                } else {
                    &self.namespace
                };
                !ns.is_empty()
                    && user.name
                        == format!(
                            "{}{ns}:{}",
                            super::impersonation::SERVICE_ACCOUNT_PREFIX,
                            self.name
                        )
            }
            _ => false,
        }
    }

    /// `describeSubject`.
    fn describe(&self, binding_namespace: &str) -> String {
        match self.kind.as_str() {
            "ServiceAccount" => {
                let ns = if self.namespace.is_empty() {
                    binding_namespace
                } else {
                    &self.namespace
                };
                format!("{} {:?}", self.kind, format!("{}/{ns}", self.name))
            }
            _ => format!("{} {:?}", self.kind, self.name),
        }
    }
}

/// A RoleBinding (namespace set) or ClusterRoleBinding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    pub name: String,
    pub namespace: String,
    pub role_kind: String,
    pub role_name: String,
    pub subjects: Vec<Subject>,
}

impl Binding {
    pub fn from_json(v: &Value) -> Binding {
        let s = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Binding {
            name: s("/metadata/name"),
            namespace: s("/metadata/namespace"),
            role_kind: s("/roleRef/kind"),
            role_name: s("/roleRef/name"),
            subjects: v
                .get("subjects")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            let f = |k: &str| {
                                x.get(k)
                                    .and_then(Value::as_str)
                                    .unwrap_or_default()
                                    .to_string()
                            };
                            Subject {
                                kind: f("kind"),
                                name: f("name"),
                                namespace: f("namespace"),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The first subject naming the user (`appliesTo`).
    fn subject_for(&self, user: &UserInfo, namespace: &str) -> Option<&Subject> {
        self.subjects.iter().find(|s| s.applies_to(user, namespace))
    }

    /// How the `allowed by` reason names the binding (`clusterRoleBindingDescriber` /
    /// `roleBindingDescriber`).
    fn describe(&self, subject: &Subject) -> String {
        if self.namespace.is_empty() {
            format!(
                "ClusterRoleBinding {:?} of {} {:?} to {}",
                self.name,
                self.role_kind,
                self.role_name,
                subject.describe("")
            )
        } else {
            format!(
                "RoleBinding {:?} of {} {:?} to {}",
                format!("{}/{}", self.name, self.namespace),
                self.role_kind,
                self.role_name,
                subject.describe(&self.namespace)
            )
        }
    }
}

/// The RBAC objects of a store, parsed, at one set of storage revisions.
#[derive(Debug, Default)]
pub struct RbacSnapshot {
    /// Last-write revisions of [`RBAC_STORAGES`] it was built at.
    pub stamp: [u64; 4],
    pub cluster_roles: HashMap<String, Vec<PolicyRule>>,
    /// (namespace, name) → rules.
    pub roles: HashMap<(String, String), Vec<PolicyRule>>,
    /// In name order.
    pub cluster_role_bindings: Vec<Binding>,
    /// namespace → bindings in name order.
    pub role_bindings: BTreeMap<String, Vec<Binding>>,
}

/// The last-write revisions of the RBAC storages.
pub fn stamp_of(store: &Store) -> [u64; 4] {
    RBAC_STORAGES.map(|s| store.last_write_rv(s))
}

impl RbacSnapshot {
    /// Parse the RBAC objects of a store.
    pub fn build(store: &Store) -> RbacSnapshot {
        let mut snap = RbacSnapshot {
            stamp: stamp_of(store),
            ..RbacSnapshot::default()
        };
        for s in store.list(CLUSTER_ROLES_STORAGE, None, None) {
            snap.cluster_roles
                .insert(s.name.clone(), PolicyRule::rules_of(&s.value()));
        }
        for s in store.list(ROLES_STORAGE, None, None) {
            snap.roles.insert(s.key(), PolicyRule::rules_of(&s.value()));
        }
        for s in store.list(CLUSTER_ROLE_BINDINGS_STORAGE, None, None) {
            snap.cluster_role_bindings
                .push(Binding::from_json(&s.value()));
        }
        for s in store.list(ROLE_BINDINGS_STORAGE, None, None) {
            snap.role_bindings
                .entry(s.namespace.clone())
                .or_default()
                .push(Binding::from_json(&s.value()));
        }
        snap
    }

    /// `GetRoleReferenceRules`.
    fn role_rules(&self, b: &Binding) -> Result<&[PolicyRule], String> {
        match b.role_kind.as_str() {
            "ClusterRole" => self
                .cluster_roles
                .get(&b.role_name)
                .map(Vec::as_slice)
                .ok_or_else(|| format!("clusterrole.{RBAC_GROUP} {:?} not found", b.role_name)),
            "Role" => self
                .roles
                .get(&(b.namespace.clone(), b.role_name.clone()))
                .map(Vec::as_slice)
                .ok_or_else(|| format!("role.{RBAC_GROUP} {:?} not found", b.role_name)),
            other => Err(format!("unsupported role reference kind: {other:?}")),
        }
    }

    /// `VisitRulesFor`: calls `visit(source, rule)` for every rule of the user in the
    /// namespace (ClusterRoleBindings first) until it returns false; returns resolution errors.
    pub fn visit_rules_for(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(&dyn Fn() -> String, &PolicyRule) -> bool,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        let namespaced = self
            .role_bindings
            .get(namespace)
            .filter(|_| !namespace.is_empty())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let bindings = self
            .cluster_role_bindings
            .iter()
            .map(|b| (b, ""))
            .chain(namespaced.iter().map(|b| (b, namespace)));
        for (binding, ns) in bindings {
            let Some(subject) = binding.subject_for(user, ns) else {
                continue;
            };
            match self.role_rules(binding) {
                Err(e) => errors.push(e),
                Ok(rules) => {
                    let source = || binding.describe(subject);
                    for rule in rules {
                        if !visit(&source, rule) {
                            return errors;
                        }
                    }
                }
            }
        }
        errors
    }

    /// `RulesFor`: every rule of the user in the namespace, and resolution errors.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        let mut rules = Vec::new();
        let errors = self.visit_rules_for(user, namespace, |_, r| {
            rules.push(r.clone());
            true
        });
        (rules, errors)
    }
}

/// An authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, with the reason.
    Allow(String),
    /// No authorizer allowed it (the request is forbidden), with the reason (maybe empty).
    NoOpinion(String),
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow(r) | Decision::NoOpinion(r) => r,
        }
    }
}

/// The authorizer chain of the sim: privileged group, then RBAC.
pub fn authorize(snap: &RbacSnapshot, user: &UserInfo, a: &RequestInfo) -> Decision {
    if user.groups.iter().any(|g| g == SYSTEM_PRIVILEGED_GROUP) {
        return Decision::Allow(String::new());
    }
    let mut allowed_by = None;
    let errors = snap.visit_rules_for(user, &a.namespace, |source, rule| {
        if rule.allows(a) {
            allowed_by = Some(format!("RBAC: allowed by {}", source()));
            return false;
        }
        true
    });
    match allowed_by {
        Some(reason) => Decision::Allow(reason),
        None if errors.is_empty() => Decision::NoOpinion(String::new()),
        None => Decision::NoOpinion(format!("RBAC: {}", aggregate(&errors))),
    }
}

/// `utilerrors.NewAggregate(...).Error()`: one error as it is, several as `[a, b]`.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        PolicyRule {
            verbs: v(verbs),
            api_groups: v(groups),
            resources: v(resources),
            resource_names: v(names),
            non_resource_urls: vec![],
        }
    }

    fn res(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> RequestInfo {
        RequestInfo {
            is_resource_request: true,
            verb: verb.into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            namespace: "team-a".into(),
            ..RequestInfo::default()
        }
    }

    fn path(verb: &str, p: &str) -> RequestInfo {
        RequestInfo {
            verb: verb.into(),
            path: p.into(),
            ..RequestInfo::default()
        }
    }

    #[test]
    fn rule_matching_as_evaluation_helpers() {
        let jobs = rule(&["create", "delete"], &["batch.barge.dev"], &["jobs"], &[]);
        assert!(jobs.allows(&res("create", "batch.barge.dev", "jobs", "", "")));
        assert!(!jobs.allows(&res("get", "batch.barge.dev", "jobs", "", "x")));
        assert!(!jobs.allows(&res("create", "batch", "jobs", "", "")));
        assert!(!jobs.allows(&res("create", "batch.barge.dev", "jobs", "status", "")));

        let star = rule(&["*"], &["*"], &["*"], &[]);
        assert!(star.allows(&res("deletecollection", "x", "y", "z", "n")));

        let status = rule(&["update"], &[""], &["pods/status"], &[]);
        assert!(status.allows(&res("update", "", "pods", "status", "p")));
        assert!(!status.allows(&res("update", "", "pods", "", "p")));

        let any_scale = rule(&["get"], &["apps"], &["*/scale"], &[]);
        assert!(any_scale.allows(&res("get", "apps", "deployments", "scale", "d")));
        assert!(!any_scale.allows(&res("get", "apps", "deployments", "", "d")));
        assert!(!any_scale.allows(&res("get", "apps", "deployments", "status", "d")));
        // */scale is exactly "*/" + the subresource.
        let odd = rule(&["get"], &["apps"], &["*/xscale"], &[]);
        assert!(!odd.allows(&res("get", "apps", "deployments", "scale", "d")));

        let named = rule(
            &["get", "update"],
            &["coordination.k8s.io"],
            &["leases"],
            &["barge"],
        );
        assert!(named.allows(&res("get", "coordination.k8s.io", "leases", "", "barge")));
        assert!(!named.allows(&res("get", "coordination.k8s.io", "leases", "", "other")));
        assert!(!named.allows(&res("list", "coordination.k8s.io", "leases", "", "")));

        let urls = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/api".into(), "/apis/*".into(), "/version".into()],
            ..PolicyRule::default()
        };
        assert!(urls.allows(&path("get", "/api")));
        assert!(urls.allows(&path("get", "/apis/batch.barge.dev/v1")));
        assert!(urls.allows(&path("get", "/apis/")));
        assert!(!urls.allows(&path("get", "/apis")));
        assert!(!urls.allows(&path("post", "/version")));
        assert!(!urls.allows(&path("get", "/healthz")));
        // A resource rule never matches a path, nor a URL rule a resource.
        assert!(!star.allows(&path("get", "/api")));
        assert!(!urls.allows(&res("get", "", "api", "", "")));
    }

    fn snapshot(objs: &[Value]) -> RbacSnapshot {
        let mut snap = RbacSnapshot::default();
        for o in objs {
            let name = o["metadata"]["name"].as_str().unwrap().to_string();
            let ns = o["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match o["kind"].as_str().unwrap() {
                "ClusterRole" => {
                    snap.cluster_roles.insert(name, PolicyRule::rules_of(o));
                }
                "Role" => {
                    snap.roles.insert((ns, name), PolicyRule::rules_of(o));
                }
                "ClusterRoleBinding" => snap.cluster_role_bindings.push(Binding::from_json(o)),
                _ => snap
                    .role_bindings
                    .entry(ns)
                    .or_default()
                    .push(Binding::from_json(o)),
            }
        }
        snap
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            ..UserInfo::default()
        }
    }

    #[test]
    fn bindings_grant_in_their_namespace_only() {
        let snap = snapshot(&[
            json!({"kind": "ClusterRole", "metadata": {"name": "jobs-edit"},
                   "rules": [{"verbs": ["create", "delete", "get"], "apiGroups": ["batch.barge.dev"], "resources": ["jobs"]}]}),
            json!({"kind": "Role", "metadata": {"name": "reader", "namespace": "team-b"},
                   "rules": [{"verbs": ["get"], "apiGroups": ["batch.barge.dev"], "resources": ["jobs"]}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "alice-edit", "namespace": "team-a"},
                   "roleRef": {"kind": "ClusterRole", "name": "jobs-edit"},
                   "subjects": [{"kind": "User", "name": "alice"}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "devs-read", "namespace": "team-b"},
                   "roleRef": {"kind": "Role", "name": "reader"},
                   "subjects": [{"kind": "Group", "name": "devs"}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "sa", "namespace": "team-b"},
                   "roleRef": {"kind": "Role", "name": "reader"},
                   "subjects": [{"kind": "ServiceAccount", "name": "robot"}]}),
        ]);
        let alice = user("alice", &["system:authenticated"]);
        let mut a = res("create", "batch.barge.dev", "jobs", "", "");
        assert_eq!(
            authorize(&snap, &alice, &a),
            Decision::Allow(
                "RBAC: allowed by RoleBinding \"alice-edit/team-a\" of ClusterRole \"jobs-edit\" to User \"alice\"".into()
            )
        );
        a.namespace = "team-b".into();
        assert_eq!(
            authorize(&snap, &alice, &a),
            Decision::NoOpinion(String::new())
        );
        a.namespace = String::new();
        assert!(!authorize(&snap, &alice, &a).allowed());

        let dev = user("dave", &["devs", "system:authenticated"]);
        let mut get = res("get", "batch.barge.dev", "jobs", "", "j");
        get.namespace = "team-b".into();
        assert!(authorize(&snap, &dev, &get).allowed());
        let robot = user("system:serviceaccount:team-b:robot", &[]);
        assert_eq!(
            authorize(&snap, &robot, &get).reason(),
            "RBAC: allowed by RoleBinding \"sa/team-b\" of Role \"reader\" to ServiceAccount \"robot/team-b\""
        );
        let other_robot = user("system:serviceaccount:team-a:robot", &[]);
        assert!(!authorize(&snap, &other_robot, &get).allowed());
        let admin = user("system:admin", &["system:masters"]);
        assert_eq!(
            authorize(&snap, &admin, &get),
            Decision::Allow(String::new())
        );
    }

    #[test]
    fn missing_roles_are_reported() {
        let snap = snapshot(&[
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "b"},
            "roleRef": {"kind": "ClusterRole", "name": "gone"},
            "subjects": [{"kind": "Group", "name": "system:authenticated"}]}),
        ]);
        let u = user("u", &["system:authenticated"]);
        assert_eq!(
            authorize(&snap, &u, &res("get", "", "pods", "", "")),
            Decision::NoOpinion(
                "RBAC: clusterrole.rbac.authorization.k8s.io \"gone\" not found".into()
            )
        );
        let (rules, errors) = snap.rules_for(&u, "team-a");
        assert!(rules.is_empty());
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn rules_round_trip_json() {
        let r = rule(&["get"], &[""], &["pods"], &[]);
        assert_eq!(
            r.to_json(),
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]})
        );
        assert_eq!(PolicyRule::from_json(&r.to_json()), r);
        assert!(PolicyRule::rules_of(&json!({"rules": null})).is_empty());
    }
}
