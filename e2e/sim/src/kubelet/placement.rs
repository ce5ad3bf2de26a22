//! First-fit binding of pods that name no node (what the kube-scheduler would do, so a cluster
//! without Barge's own binding still runs pods). Pure: it takes the pod's spec, its effective
//! request and a snapshot of candidate nodes with their free resources, and returns the node to
//! bind to or the scheduler-style reason why none fits.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, PodSpec, Taint, Toleration};

use super::resources::Resources;

/// A Ready node as the binder sees it.
#[derive(Debug, Clone, Default)]
pub struct Candidate {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    /// Allocatable minus the requests of non-terminal (and assumed) pods.
    pub free: Resources,
    /// Pod slots left.
    pub free_pods: i128,
}

const REASON_SELECTOR: &str = "node(s) didn't match Pod's node affinity/selector";
const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
const REASON_TOO_MANY_PODS: &str = "Too many pods";

/// Picks the first candidate (in the given order) the pod fits on. `Err` carries the message
/// the kube-scheduler would put in the PodScheduled=False condition.
pub fn first_fit<'a>(
    spec: &PodSpec,
    request: &Resources,
    candidates: &'a [Candidate],
) -> Result<&'a Candidate, String> {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for node in candidates {
        match node_misfits(spec, request, node) {
            None => return Ok(node),
            Some(why) => {
                for r in why {
                    *reasons.entry(r).or_insert(0) += 1;
                }
            }
        }
    }
    let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    Err(format!(
        "0/{} nodes are available: {}.",
        candidates.len(),
        parts.join(", ")
    ))
}

/// Why `node` cannot take the pod (`None` when it can), checked in the order of the
/// kube-scheduler's default filter plugins: NodeUnschedulable, TaintToleration, NodeAffinity,
/// NodeResourcesFit.
fn node_misfits(spec: &PodSpec, request: &Resources, node: &Candidate) -> Option<Vec<String>> {
    if node.unschedulable {
        return Some(vec![REASON_UNSCHEDULABLE.to_string()]);
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    if let Some(t) = node.taints.iter().find(|t| {
        (t.effect == "NoSchedule" || t.effect == "NoExecute")
            && !tolerations.iter().any(|tol| tolerates(tol, t))
    }) {
        return Some(vec![format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.key,
            t.value.as_deref().unwrap_or_default()
        )]);
    }
    if !matches_node_selector(spec, node) {
        return Some(vec![REASON_SELECTOR.to_string()]);
    }
    let mut why = Vec::new();
    if node.free_pods < 1 {
        why.push(REASON_TOO_MANY_PODS.to_string());
    }
    for (name, want) in request {
        if *want > 0 && *want > node.free.get(name).copied().unwrap_or(0) {
            why.push(format!("Insufficient {name}"));
        }
    }
    (!why.is_empty()).then_some(why)
}

fn matches_node_selector(spec: &PodSpec, node: &Candidate) -> bool {
    if let Some(sel) = &spec.node_selector {
        if !sel.iter().all(|(k, v)| node.labels.get(k) == Some(v)) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let Some(required) = required else {
        return true;
    };
    // Terms are ORed; the expressions (and fields) of a term are ANDed; an empty term matches
    // nothing.
    required.node_selector_terms.iter().any(|term| {
        let exprs = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        if exprs.is_empty() && fields.is_empty() {
            return false;
        }
        exprs
            .iter()
            .all(|e| requirement_matches(e, node.labels.get(&e.key)))
            && fields.iter().all(|f| {
                let v = (f.key == "metadata.name").then_some(&node.name);
                requirement_matches(f, v)
            })
    })
}

pub fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let as_int = |s: &str| s.parse::<i64>().ok();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| as_int(v)),
                values.first().and_then(|b| as_int(b)),
            ) else {
                return false;
            };
            if req.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Kubernetes' `Toleration.ToleratesTaint`.
pub fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = tol.effect.as_deref() {
        if !effect.is_empty() && effect != taint.effect {
            return false;
        }
    }
    let key = tol.key.as_deref().unwrap_or_default();
    let op = tol.operator.as_deref().unwrap_or("Equal");
    if key.is_empty() {
        // An empty key with Exists tolerates everything.
        return op == "Exists";
    }
    if key != taint.key {
        return false;
    }
    match op {
        "Exists" => true,
        "Equal" | "" => {
            tol.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Affinity, NodeAffinity, NodeSelector, NodeSelectorTerm};

    fn node(name: &str, labels: &[(&str, &str)], cpu: i128) -> Candidate {
        Candidate {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            free: [("cpu".to_string(), cpu)].into(),
            free_pods: 10,
            ..Default::default()
        }
    }

    fn cpu(m: i128) -> Resources {
        [("cpu".to_string(), m)].into()
    }

    fn affinity(key: &str, op: &str, values: &[&str]) -> Option<Affinity> {
        Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: key.into(),
                            operator: op.into(),
                            values: Some(values.iter().map(|v| v.to_string()).collect()),
                        }]),
                        match_fields: None,
                    }],
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn picks_the_first_node_with_room() {
        let nodes = [
            node("a", &[], 500),
            node("b", &[], 4000),
            node("c", &[], 4000),
        ];
        let got = first_fit(&PodSpec::default(), &cpu(1000), &nodes).expect("fits");
        assert_eq!(got.name, "b");
    }

    #[test]
    fn honours_node_selector_and_affinity_operators() {
        let nodes = [
            node("a", &[("zone", "x")], 4000),
            node("b", &[("zone", "y"), ("gpu", "1")], 4000),
        ];
        let spec = PodSpec {
            node_selector: Some([("zone".to_string(), "y".to_string())].into()),
            ..Default::default()
        };
        assert_eq!(first_fit(&spec, &cpu(1), &nodes).expect("fits").name, "b");
        for (op, values, want) in [
            ("In", vec!["y"], Some("b")),
            ("NotIn", vec!["x"], Some("b")),
            ("In", vec!["z"], None),
        ] {
            let spec = PodSpec {
                affinity: affinity("zone", op, &values),
                ..Default::default()
            };
            assert_eq!(
                first_fit(&spec, &cpu(1), &nodes)
                    .ok()
                    .map(|n| n.name.as_str()),
                want,
                "{op}"
            );
        }
        let spec = PodSpec {
            affinity: affinity("gpu", "Exists", &[]),
            ..Default::default()
        };
        assert_eq!(first_fit(&spec, &cpu(1), &nodes).expect("fits").name, "b");
        let spec = PodSpec {
            affinity: affinity("gpu", "DoesNotExist", &[]),
            ..Default::default()
        };
        assert_eq!(first_fit(&spec, &cpu(1), &nodes).expect("fits").name, "a");
    }

    #[test]
    fn respects_taints_unless_tolerated() {
        let mut tainted = node("a", &[], 4000);
        tainted.taints = vec![Taint {
            key: "batch.barge.dev/compute-environment".into(),
            value: Some("ce1".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        }];
        let nodes = [tainted];
        let err = first_fit(&PodSpec::default(), &cpu(1), &nodes).expect_err("tainted");
        assert_eq!(
            err,
            "0/1 nodes are available: 1 node(s) had untolerated taint {batch.barge.dev/compute-environment: ce1}."
        );
        let spec = PodSpec {
            tolerations: Some(vec![Toleration {
                key: Some("batch.barge.dev/compute-environment".into()),
                operator: Some("Equal".into()),
                value: Some("ce1".into()),
                effect: Some("NoSchedule".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert!(first_fit(&spec, &cpu(1), &nodes).is_ok());
        let wildcard = PodSpec {
            tolerations: Some(vec![Toleration {
                operator: Some("Exists".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert!(first_fit(&wildcard, &cpu(1), &nodes).is_ok());
    }

    #[test]
    fn explains_insufficient_resources_like_the_scheduler() {
        let mut full = node("b", &[], 4000);
        full.free_pods = 0;
        let nodes = [node("a", &[], 500), full];
        let err = first_fit(&PodSpec::default(), &cpu(1000), &nodes).expect_err("no room");
        assert_eq!(
            err,
            "0/2 nodes are available: 1 Insufficient cpu, 1 Too many pods."
        );
    }
}
