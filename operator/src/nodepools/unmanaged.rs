//! UNMANAGED compute environments: existing nodes picked by `nodeSelector`. Barge never
//! creates, scales or deletes them; it labels its members with
//! `batch.barge.dev/compute-environment=<name>` (so that placement and the indexes treat all
//! environments alike) and removes the label when a node stops matching.
//!
//! Barge does not taint these nodes: they are the administrator's, and may run other
//! workloads; Barge's pods would tolerate the taint anyway. A node that already belongs to
//! another compute environment is left alone and reported.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;

use barge_crds::consts::LABEL_COMPUTE_ENVIRONMENT;

/// What to change in the membership of an unmanaged environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// Nodes that match and carry the label: the environment's nodes.
    pub members: Vec<String>,
    /// Matching nodes to label.
    pub label: Vec<String>,
    /// Labelled nodes that no longer match.
    pub unlabel: Vec<String>,
    /// Matching nodes that belong to another environment: (node, other environment).
    pub conflicts: Vec<(String, String)>,
}

impl Membership {
    /// Keeps at most `max_writes` label changes for this pass, releases first, and returns how
    /// many wait for a later pass.
    pub fn limit_writes(&mut self, max_writes: usize) -> usize {
        let unlabel = self.unlabel.len().min(max_writes);
        let label = self.label.len().min(max_writes - unlabel);
        let deferred = self.unlabel.len() - unlabel + self.label.len() - label;
        self.unlabel.truncate(unlabel);
        self.label.truncate(label);
        deferred
    }
}

/// Whether `labels` contain every entry of `selector`.
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Decides the membership of environment `ce` over `nodes` (pure). With `deleting`, every
/// member is released.
pub fn plan_membership(
    ce: &str,
    selector: &BTreeMap<String, String>,
    nodes: &[Arc<Node>],
    deleting: bool,
) -> Membership {
    let mut m = Membership::default();
    for node in nodes {
        let name = node.name_any();
        let labels = node.labels();
        let owner = labels.get(LABEL_COMPUTE_ENVIRONMENT).map(String::as_str);
        let matches =
            !deleting && node.metadata.deletion_timestamp.is_none() && selects(selector, labels);
        match (matches, owner) {
            (true, Some(o)) if o == ce => m.members.push(name),
            (true, Some(other)) => m.conflicts.push((name, other.to_string())),
            (true, None) => m.label.push(name),
            (false, Some(o)) if o == ce => m.unlabel.push(name),
            (false, _) => {}
        }
    }
    m
}

/// The merge patch adding (`Some`) or removing (`None`) the membership label.
pub fn membership_patch(ce: Option<&str>) -> serde_json::Value {
    serde_json::json!({ "metadata": { "labels": { LABEL_COMPUTE_ENVIRONMENT: ce } } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn node(name: &str, labels: &[(&str, &str)]) -> Arc<Node> {
        Arc::new(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    #[test]
    fn a_large_selection_is_labelled_a_pass_at_a_time() {
        let selector: BTreeMap<String, String> = [("pool".to_string(), "batch".to_string())].into();
        let mut nodes: Vec<Arc<Node>> = (0..50)
            .map(|i| node(&format!("n{i:02}"), &[("pool", "batch")]))
            .collect();
        nodes.push(node(
            "left",
            &[("pool", "web"), (LABEL_COMPUTE_ENVIRONMENT, "u")],
        ));
        let mut m = plan_membership("u", &selector, &nodes, false);
        assert_eq!(m.limit_writes(20), 31);
        assert_eq!(m.unlabel, ["left"], "releases first");
        assert_eq!(m.label.len(), 19);
        assert_eq!(m.label[0], "n00");
        let mut all = plan_membership("u", &selector, &nodes, false);
        assert_eq!(all.limit_writes(100), 0);
        assert_eq!((all.label.len(), all.unlabel.len()), (50, 1));
    }

    #[test]
    fn membership_follows_the_selector() {
        let selector: BTreeMap<String, String> = [("pool".to_string(), "batch".to_string())].into();
        let nodes = [
            node("new", &[("pool", "batch")]),
            node(
                "member",
                &[("pool", "batch"), (LABEL_COMPUTE_ENVIRONMENT, "u")],
            ),
            node("left", &[("pool", "web"), (LABEL_COMPUTE_ENVIRONMENT, "u")]),
            node(
                "taken",
                &[("pool", "batch"), (LABEL_COMPUTE_ENVIRONMENT, "other")],
            ),
            node("stranger", &[("pool", "web")]),
        ];
        let m = plan_membership("u", &selector, &nodes, false);
        assert_eq!(m.members, ["member"]);
        assert_eq!(m.label, ["new"]);
        assert_eq!(m.unlabel, ["left"]);
        assert_eq!(m.conflicts, [("taken".to_string(), "other".to_string())]);
        let released = plan_membership("u", &selector, &nodes, true);
        assert_eq!(released.unlabel, ["member", "left"]);
        assert!(released.label.is_empty() && released.members.is_empty());
    }

    #[test]
    fn patches_add_and_remove_the_label() {
        assert_eq!(
            membership_patch(Some("u")),
            serde_json::json!({"metadata": {"labels": {LABEL_COMPUTE_ENVIRONMENT: "u"}}})
        );
        assert_eq!(
            membership_patch(None),
            serde_json::json!({"metadata": {"labels": {LABEL_COMPUTE_ENVIRONMENT: null}}})
        );
    }
}
