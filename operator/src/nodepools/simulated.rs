//! The `simulated` provider: Barge creates the Node objects of a managed compute environment
//! itself, from an instance-type catalog, for the simulated kubelet (or any fake-node tool).
//!
//! Data flow: the [`SimulatedPool`] and the environment's existing nodes → barge-core's
//! `plan_fixed_pool` (how many nodes of which type reach the target vCPUs) and `diff_pool`
//! (which to create, which are surplus) → [`plan_nodes`] → [`NodeActions`]: the Node objects to
//! create or update (server-side apply of [`desired_node`]: labels, the compute environment's
//! NoSchedule taint, the `sim.barge.dev/capacity` annotation, an owner reference), and the
//! nodes to delete.
//!
//! Surplus nodes are never deleted under running pods: a surplus node is first cordoned
//! (`spec.unschedulable`, so no new placement lands on it), and deleted once the cache shows it
//! cordoned and no pod occupies it. A cordoned node that the plan wants again is uncordoned.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

use barge_core::pool::{diff_pool, plan_fixed_pool, ExistingNode, InstanceType, NODE_PODS};
use barge_crds::consts::{
    ANNOTATION_SIM_CAPACITY, LABEL_COMPUTE_ENVIRONMENT, LABEL_INSTANCE_TYPE, LABEL_MANAGED_BY,
    LABEL_SIM_SIMULATED, MANAGED_BY_BARGE, SIM_TRUE, TAINT_COMPUTE_ENVIRONMENT,
};
use barge_crds::ComputeEnvironment;

use super::{PoolError, SimulatedPool};

/// Well-known node label with the node's name.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// Effect of the compute environment's taint.
pub const TAINT_EFFECT_NO_SCHEDULE: &str = "NoSchedule";

/// A node of the pool as the cache shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedNode {
    pub node: Node,
    /// Some pod occupies it (bound and not finished).
    pub busy: bool,
}

/// What to change in the pool.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeActions {
    /// Target vCPUs of the plan.
    pub target_vcpus: i64,
    /// vCPUs of the planned nodes (at least the target).
    pub planned_vcpus: i64,
    /// Planned nodes per instance type.
    pub planned: BTreeMap<String, i32>,
    /// Nodes to create, or whose Barge-owned fields must change (cordon, uncordon, labels).
    pub apply: Vec<Node>,
    /// Nodes to create (names; a subset of `apply`).
    pub created: Vec<String>,
    /// Surplus nodes being cordoned now.
    pub cordoned: Vec<String>,
    /// Surplus nodes to delete: cordoned and idle.
    pub delete: Vec<String>,
    /// Surplus nodes waiting for their pods to finish.
    pub draining: Vec<String>,
}

/// The capacity annotation of a node of `instance_type`: resource name → quantity.
pub fn capacity_annotation(instance_type: &InstanceType, gpu_resource: &str) -> String {
    let mut capacity: BTreeMap<&str, String> = BTreeMap::new();
    capacity.insert("cpu", instance_type.vcpus.to_string());
    capacity.insert("memory", format!("{}Mi", instance_type.memory_mib));
    capacity.insert("pods", NODE_PODS.to_string());
    if instance_type.gpus > 0 {
        capacity.insert(gpu_resource, instance_type.gpus.to_string());
    }
    serde_json::to_string(&capacity).unwrap_or_default()
}

/// The Barge-owned content of node `name` of type `instance_type` in `ce` (what server-side
/// apply sends; the kubelet owns the status).
pub fn desired_node(
    ce: &ComputeEnvironment,
    pool: &SimulatedPool,
    name: &str,
    instance_type: &InstanceType,
    cordoned: bool,
) -> Node {
    let ce_name = ce.name_any();
    let mut labels: BTreeMap<String, String> = pool.tags.clone();
    labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY_BARGE.into());
    labels.insert(LABEL_COMPUTE_ENVIRONMENT.into(), ce_name.clone());
    labels.insert(LABEL_INSTANCE_TYPE.into(), instance_type.name.to_string());
    labels.insert(LABEL_SIM_SIMULATED.into(), SIM_TRUE.into());
    labels.insert(LABEL_HOSTNAME.into(), name.into());
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            annotations: Some(
                [(
                    ANNOTATION_SIM_CAPACITY.to_string(),
                    capacity_annotation(instance_type, &pool.gpu_resource_name),
                )]
                .into(),
            ),
            owner_references: ce.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: Some(vec![Taint {
                key: TAINT_COMPUTE_ENVIRONMENT.into(),
                value: Some(ce_name),
                effect: TAINT_EFFECT_NO_SCHEDULE.into(),
                time_added: None,
            }]),
            unschedulable: cordoned.then_some(true),
            ..Default::default()
        }),
        status: None,
    }
}

fn is_cordoned(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

/// Whether the cached node lacks something `desired` sets (labels, annotations, the taint,
/// the cordon state) — only then is an apply needed.
pub fn needs_apply(existing: &Node, desired: &Node) -> bool {
    let subset = |want: &Option<BTreeMap<String, String>>,
                  have: &Option<BTreeMap<String, String>>| {
        want.iter()
            .flatten()
            .all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
    };
    let want_taints = desired.spec.as_ref().and_then(|s| s.taints.as_ref());
    let have_taints = existing.spec.as_ref().and_then(|s| s.taints.as_ref());
    let taints_present = want_taints.into_iter().flatten().all(|t| {
        have_taints.is_some_and(|h| {
            h.iter()
                .any(|x| x.key == t.key && x.value == t.value && x.effect == t.effect)
        })
    });
    !subset(&desired.metadata.labels, &existing.metadata.labels)
        || !subset(
            &desired.metadata.annotations,
            &existing.metadata.annotations,
        )
        || !taints_present
        || is_cordoned(existing) != is_cordoned(desired)
}

/// Plans the pool's nodes (pure): what to apply and delete so that the nodes match the fixed
/// plan for `enabled` (see [`SimulatedPool::target_vcpus`]).
pub fn plan_nodes(
    ce: &ComputeEnvironment,
    pool: &SimulatedPool,
    enabled: bool,
    observed: &[ObservedNode],
) -> Result<NodeActions, PoolError> {
    let target = pool.target_vcpus(enabled);
    let candidates = pool.candidates();
    let plan = plan_fixed_pool(target, &candidates, pool.strategy)
        .map_err(|e| PoolError::invalid(e.to_string()))?;
    let existing: Vec<ExistingNode> = observed
        .iter()
        .map(|o| ExistingNode {
            name: o.node.name_any(),
            instance_type: o
                .node
                .labels()
                .get(LABEL_INSTANCE_TYPE)
                .cloned()
                .unwrap_or_default(),
            busy: o.busy,
        })
        .collect();
    let diff = diff_pool(&ce.name_any(), &plan, &existing);
    let mut actions = NodeActions {
        target_vcpus: target,
        planned_vcpus: plan.iter().map(|(t, n)| t.vcpus * i64::from(*n)).sum(),
        planned: plan
            .iter()
            .map(|(t, n)| (t.name.to_string(), i32::try_from(*n).unwrap_or(i32::MAX)))
            .collect(),
        ..Default::default()
    };
    for create in &diff.create {
        actions.apply.push(desired_node(
            ce,
            pool,
            &create.name,
            create.instance_type,
            false,
        ));
        actions.created.push(create.name.clone());
    }
    for o in observed {
        let name = o.node.name_any();
        let surplus = diff.delete.contains(&name);
        if surplus && is_cordoned(&o.node) && !o.busy {
            actions.delete.push(name);
            continue;
        }
        let type_name = o
            .node
            .labels()
            .get(LABEL_INSTANCE_TYPE)
            .cloned()
            .unwrap_or_default();
        // A node of a type no longer in the catalog only needs cordoning: its labels stay.
        let desired = match pool.catalog.iter().find(|t| t.name == type_name) {
            Some(t) => desired_node(ce, pool, &name, t, surplus),
            None => {
                let mut cordon = o.node.clone();
                cordon
                    .spec
                    .get_or_insert_with(Default::default)
                    .unschedulable = Some(true);
                cordon.status = None;
                cordon
            }
        };
        if surplus && !is_cordoned(&o.node) {
            actions.cordoned.push(name.clone());
        } else if surplus {
            actions.draining.push(name.clone());
        }
        if needs_apply(&o.node, &desired) {
            actions.apply.push(desired);
        }
    }
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodepools::tests::{aws_managed_ce, simulated_ce};
    use crate::nodepools::{pool_of, Pool};

    fn pool(ce: &ComputeEnvironment) -> SimulatedPool {
        match pool_of(ce).expect("valid") {
            Pool::Simulated(p) => p,
            other => panic!("not simulated: {other:?}"),
        }
    }

    fn observe(nodes: &[Node], busy: &[&str]) -> Vec<ObservedNode> {
        nodes
            .iter()
            .map(|n| ObservedNode {
                node: n.clone(),
                busy: busy.contains(&n.name_any().as_str()),
            })
            .collect()
    }

    fn names(nodes: &[Node]) -> Vec<String> {
        nodes.iter().map(|n| n.name_any()).collect()
    }

    #[test]
    fn an_empty_pool_creates_the_planned_nodes() {
        let mut ce = aws_managed_ce();
        ce.metadata.uid = Some("ce-uid".into());
        let p = pool(&ce);
        let actions = plan_nodes(&ce, &p, true, &[]).expect("plan");
        assert_eq!(actions.target_vcpus, 48);
        assert!(actions.planned_vcpus >= 48);
        assert_eq!(actions.apply.len(), actions.created.len());
        assert_eq!(
            actions.planned.values().sum::<i32>() as usize,
            actions.created.len()
        );
        let node = &actions.apply[0];
        let labels = node.metadata.labels.clone().expect("labels");
        assert_eq!(labels[LABEL_COMPUTE_ENVIRONMENT], "c4ondemand");
        assert_eq!(labels[LABEL_SIM_SIMULATED], SIM_TRUE);
        assert_eq!(labels[LABEL_MANAGED_BY], MANAGED_BY_BARGE);
        assert_eq!(labels["Name"], "C4OnDemand", "tags become labels");
        assert!(labels[LABEL_INSTANCE_TYPE].starts_with("c4."));
        let taint = &node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .expect("taint")[0];
        assert_eq!(
            (
                taint.key.as_str(),
                taint.value.as_deref(),
                taint.effect.as_str()
            ),
            (TAINT_COMPUTE_ENVIRONMENT, Some("c4ondemand"), "NoSchedule")
        );
        let owner = &node.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("ComputeEnvironment", "ce-uid")
        );
        let capacity: serde_json::Value = serde_json::from_str(
            &node.metadata.annotations.as_ref().expect("annotations")[ANNOTATION_SIM_CAPACITY],
        )
        .expect("json");
        assert_eq!(capacity["pods"], "110");
        assert!(capacity["memory"].as_str().expect("memory").ends_with("Mi"));
    }

    #[test]
    fn gpu_capacity_uses_the_environments_resource_name() {
        let g4 = barge_core::pool::lookup("g4dn.xlarge").expect("g4dn");
        let text = capacity_annotation(g4, "example.com/gpu");
        assert_eq!(
            text,
            r#"{"cpu":"4","example.com/gpu":"1","memory":"16384Mi","pods":"110"}"#
        );
        let m5 = barge_core::pool::lookup("m5.large").expect("m5");
        assert!(!capacity_annotation(m5, "nvidia.com/gpu").contains("gpu"));
    }

    #[test]
    fn a_matching_pool_needs_no_write() {
        let ce = simulated_ce("ce", &["m5.xlarge"], 0, Some(8), 16);
        let p = pool(&ce);
        let first = plan_nodes(&ce, &p, true, &[]).expect("plan");
        assert_eq!(names(&first.apply), ["ce-m5-xlarge-0", "ce-m5-xlarge-1"]);
        let second = plan_nodes(&ce, &p, true, &observe(&first.apply, &[])).expect("plan");
        assert!(
            second.apply.is_empty() && second.delete.is_empty(),
            "{second:?}"
        );
    }

    #[test]
    fn surplus_nodes_are_cordoned_then_deleted_once_idle() {
        let ce = simulated_ce("ce", &["m5.xlarge"], 0, Some(8), 16);
        let p = pool(&ce);
        let nodes = plan_nodes(&ce, &p, true, &[]).expect("plan").apply;
        // DISABLED: the pool shrinks to minvCpus (0). Node 0 runs a pod.
        let step1 =
            plan_nodes(&ce, &p, false, &observe(&nodes, &["ce-m5-xlarge-0"])).expect("plan");
        assert_eq!(step1.target_vcpus, 0);
        assert!(
            step1.delete.is_empty(),
            "nothing is deleted before it is cordoned"
        );
        assert_eq!(step1.cordoned, ["ce-m5-xlarge-0", "ce-m5-xlarge-1"]);
        assert!(step1
            .apply
            .iter()
            .all(|n| n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)));
        // The cache now shows both cordoned; the idle one goes, the busy one drains.
        let step2 =
            plan_nodes(&ce, &p, false, &observe(&step1.apply, &["ce-m5-xlarge-0"])).expect("plan");
        assert_eq!(step2.delete, ["ce-m5-xlarge-1"]);
        assert_eq!(step2.draining, ["ce-m5-xlarge-0"]);
        assert!(step2.apply.is_empty());
        // Enabled again: the cordoned node is wanted and uncordoned, the deleted one re-created.
        let remaining: Vec<Node> = step1
            .apply
            .iter()
            .filter(|n| n.name_any() == "ce-m5-xlarge-0")
            .cloned()
            .collect();
        let step3 =
            plan_nodes(&ce, &p, true, &observe(&remaining, &["ce-m5-xlarge-0"])).expect("plan");
        assert_eq!(step3.created, ["ce-m5-xlarge-1"]);
        let uncordon = step3
            .apply
            .iter()
            .find(|n| n.name_any() == "ce-m5-xlarge-0")
            .expect("uncordon");
        assert_eq!(uncordon.spec.as_ref().and_then(|s| s.unschedulable), None);
    }

    #[test]
    fn a_node_missing_barge_fields_is_reapplied() {
        let ce = simulated_ce("ce", &["m5.xlarge"], 0, Some(4), 16);
        let p = pool(&ce);
        let mut node = plan_nodes(&ce, &p, true, &[])
            .expect("plan")
            .apply
            .remove(0);
        node.spec.as_mut().expect("spec").taints = None;
        let actions = plan_nodes(&ce, &p, true, &observe(&[node], &[])).expect("plan");
        assert_eq!(names(&actions.apply), ["ce-m5-xlarge-0"]);
        assert!(actions.created.is_empty());
    }
}
