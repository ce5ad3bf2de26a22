//! The ClusterRole aggregation controller, as kube-controller-manager's
//! (pkg/controller/clusterroleaggregation): a ClusterRole with an `aggregationRule` gets as its
//! `rules` the rules of every other ClusterRole matching one of its `clusterRoleSelectors`
//! (selectors in order, matching roles by name, each rule once), written when they differ from
//! what it has. It runs with the sim's other controllers after any ClusterRole write, until the
//! roles are stable (so chains such as `view` → `edit` → `admin` settle in one call).
//!
//! Upstream writes with a forced server-side apply of `rules` (field manager
//! `clusterrole-aggregation-controller`); the sim replaces `rules` with an update under the same
//! field manager. Either way it is an ordinary write: watchers see a MODIFIED event.

use std::sync::Arc;

use serde_json::{json, Value};

use super::rbac::{PolicyRule, CLUSTER_ROLES_STORAGE};
use crate::apiserver::machinery::LabelSelector;
use crate::apiserver::store::Stored;
use crate::apiserver::write::{self, WriteOpts};
use crate::apiserver::State;

/// Field manager of the controller's writes.
pub const AGGREGATION_MANAGER: &str = "clusterrole-aggregation-controller";

/// Passes over the roles before giving up on a chain that does not settle.
const MAX_PASSES: usize = 16;

/// Convert a metav1.LabelSelector (matchLabels + matchExpressions) into the selector syntax.
fn selector_string(sel: &Value) -> String {
    let mut terms = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            terms.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            terms.push(match e["operator"].as_str().unwrap_or_default() {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                _ => format!("!{key}"),
            });
        }
    }
    terms.join(",")
}

/// The rules an aggregated role should have, given every ClusterRole (sorted by name); None
/// for a role without aggregationRule or with a selector that does not parse.
pub fn aggregated_rules(role: &Value, all: &[Arc<Stored>]) -> Option<Vec<PolicyRule>> {
    let selectors = role
        .pointer("/aggregationRule/clusterRoleSelectors")?
        .as_array()?;
    let name = role.pointer("/metadata/name").and_then(Value::as_str)?;
    let mut rules: Vec<PolicyRule> = Vec::new();
    for sel in selectors {
        let parsed = LabelSelector::parse(&selector_string(sel)).ok()?;
        for other in all
            .iter()
            .filter(|o| o.name != name && parsed.matches(&o.labels))
        {
            for r in PolicyRule::rules_of(&other.value()) {
                if !rules.contains(&r) {
                    rules.push(r);
                }
            }
        }
    }
    Some(rules)
}

/// One run of the controller if ClusterRoles changed since the last; true if it wrote.
pub fn run(state: &mut State) -> bool {
    let last = state.store.last_write_rv(CLUSTER_ROLES_STORAGE);
    if last == state.aggregation_seen_rv {
        return false;
    }
    let Some(def) = state.registry.preferred_for_storage(CLUSTER_ROLES_STORAGE) else {
        return false;
    };
    let mut wrote = false;
    for _ in 0..MAX_PASSES {
        let all = state.store.list(CLUSTER_ROLES_STORAGE, None, None);
        let mut changed = false;
        for role in &all {
            let value = role.value();
            let Some(want) = aggregated_rules(&value, &all) else {
                continue;
            };
            if PolicyRule::rules_of(&value) == want {
                continue;
            }
            let mut new = value.clone();
            new["rules"] = json!(want.iter().map(PolicyRule::to_json).collect::<Vec<_>>());
            let mut opts = WriteOpts::controller(AGGREGATION_MANAGER);
            match write::commit_update(state, &def, &value, new, &mut opts) {
                Ok(_) => changed = true,
                Err(e) => {
                    tracing::warn!(role = %role.name, error = ?e.body, "aggregating a ClusterRole failed")
                }
            }
        }
        wrote |= changed;
        if !changed {
            break;
        }
    }
    state.aggregation_seen_rv = state.store.last_write_rv(CLUSTER_ROLES_STORAGE);
    wrote
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(v: Value) -> Arc<Stored> {
        Arc::new(Stored::new(&v, 1))
    }

    #[test]
    fn union_of_matching_roles_in_name_order() {
        let agg = json!({"metadata": {"name": "edit"},
            "aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}}]},
            "rules": null});
        let r = |verb: &str| json!({"verbs": [verb], "apiGroups": ["x"], "resources": ["y"]});
        let all = vec![
            stored(
                json!({"metadata": {"name": "a-user", "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
                          "rules": [r("create"), r("get")]}),
            ),
            stored(agg.clone()),
            stored(
                json!({"metadata": {"name": "b-user", "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
                          "rules": [r("get"), r("delete")]}),
            ),
            stored(
                json!({"metadata": {"name": "c-other", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                          "rules": [r("list")]}),
            ),
        ];
        let got: Vec<String> = aggregated_rules(&agg, &all)
            .unwrap()
            .iter()
            .map(|r| r.verbs[0].clone())
            .collect();
        assert_eq!(got, vec!["create", "get", "delete"]);
        assert_eq!(aggregated_rules(&all[0].value(), &all), None);
    }

    #[test]
    fn match_expressions_select_too() {
        let sel = json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}],
                         "matchLabels": {"x": "1"}});
        assert_eq!(selector_string(&sel), "x=1,tier in (a,b)");
    }
}
