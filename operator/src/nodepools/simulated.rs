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
//!
//! Limits, so that a typo cannot run away: a pool needing more than
//! [`MAX_NODES_PER_COMPUTE_ENVIRONMENT`] nodes is invalid ([`beyond_node_cap`] before planning,
//! [`plan_nodes`] on the plan), and the controller carries out at most a fixed number of node
//! writes per reconcile ([`NodeActions::limit_writes`]), reporting the rest as
//! [`NodeActions::progress`].

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

use barge_core::pool::{
    diff_pool, node_name, plan_fixed_pool, ExistingNode, InstanceType, NODE_PODS,
};
use barge_core::scaling::ScalingDecision;
use barge_crds::consts::{
    ANNOTATION_SIM_CAPACITY, LABEL_COMPUTE_ENVIRONMENT, LABEL_INSTANCE_TYPE, LABEL_MANAGED_BY,
    LABEL_SIM_SIMULATED, MANAGED_BY_BARGE, SIM_TRUE, TAINT_COMPUTE_ENVIRONMENT,
};
use barge_crds::ComputeEnvironment;

use super::{PoolError, SimulatedPool};
use crate::pods::TAINT_EFFECT_NO_SCHEDULE;

/// Well-known node label with the node's name.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";

/// Most nodes one compute environment of the simulated provider may have. Barge creates these
/// Node objects itself, one API call each; a larger pool is almost always a typo
/// (`desiredvCpus: 100000` for 100) and would flood the API server, so the environment is
/// INVALID with the reason instead. (Kubernetes supports clusters of up to 5,000 nodes.)
pub const MAX_NODES_PER_COMPUTE_ENVIRONMENT: i64 = 1_000;

/// The field that sets the pool's size (or floor): `desiredvCpus` while ENABLED when set, else
/// `minvCpus`.
fn target_field(pool: &SimulatedPool, enabled: bool) -> &'static str {
    if enabled && pool.desired_vcpus.is_some() {
        "desiredvCpus"
    } else {
        "minvCpus"
    }
}

fn too_many_nodes(field: &str, target: i64, nodes: &str) -> String {
    format!(
        "{field} {target} needs {nodes}; a compute environment of the simulated provider may have at most {MAX_NODES_PER_COMPUTE_ENVIRONMENT} nodes: lower {field} or list larger instanceTypes"
    )
}

/// Why the size the pool keeps at least while ENABLED (`desiredvCpus`, default `minvCpus`: the
/// fixed size, or the floor of a pool that scales with demand) is beyond
/// [`MAX_NODES_PER_COMPUTE_ENVIRONMENT`] even with nodes of its largest instance type (pure and
/// cheap, so it runs before any plan; [`plan_nodes`] checks the plan's exact count, and
/// [`plan_scaled_nodes`] the count scaling to demand reaches).
pub fn beyond_node_cap(pool: &SimulatedPool) -> Option<String> {
    let target = pool.target_vcpus(true).max(pool.min_vcpus);
    let largest = pool
        .candidates()
        .into_iter()
        .filter(|t| t.vcpus > 0)
        .max_by(|a, b| a.vcpus.cmp(&b.vcpus).then_with(|| b.name.cmp(&a.name)))?;
    let nodes = (target + largest.vcpus - 1) / largest.vcpus;
    (nodes > MAX_NODES_PER_COMPUTE_ENVIRONMENT).then(|| {
        too_many_nodes(
            target_field(pool, true),
            target,
            &format!(
                "at least {nodes} nodes of {} ({} vCPUs, the largest of its instanceTypes)",
                largest.name, largest.vcpus
            ),
        )
    })
}

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
    /// Planned nodes that exist already (observed, not surplus).
    pub existing_planned: usize,
    /// Node writes (deletions, changes, creations) left for later passes by
    /// [`NodeActions::limit_writes`].
    pub deferred: usize,
    /// Of the deferred writes, the creations.
    pub deferred_creates: usize,
}

impl NodeActions {
    /// Keeps at most `max_writes` node writes for this pass and counts the rest as deferred:
    /// deletions first (they remove what is no longer wanted), then changes to existing nodes
    /// (cordon, uncordon, Barge's labels), then creations in plan order. The next pass plans
    /// again from what then exists, so a deletion or spec change in between takes effect at once.
    pub fn limit_writes(&mut self, max_writes: usize) {
        let mut budget = max_writes;
        let deletes = self.delete.len().min(budget);
        let deferred_deletes = self.delete.len() - deletes;
        self.delete.truncate(deletes);
        budget -= deletes;
        let creating: BTreeSet<String> = self.created.iter().cloned().collect();
        let (creates, updates): (Vec<Node>, Vec<Node>) = std::mem::take(&mut self.apply)
            .into_iter()
            .partition(|n| creating.contains(&n.name_any()));
        let updates_now = updates.len().min(budget);
        budget -= updates_now;
        let creates_now = creates.len().min(budget);
        self.deferred_creates = creates.len() - creates_now;
        self.deferred = deferred_deletes + (updates.len() - updates_now) + self.deferred_creates;
        self.apply = updates
            .into_iter()
            .take(updates_now)
            .chain(creates.into_iter().take(creates_now))
            .collect();
        let kept: BTreeSet<String> = self.apply.iter().map(|n| n.name_any()).collect();
        self.created.retain(|n| kept.contains(n));
        self.cordoned.retain(|n| kept.contains(n));
    }

    /// Planned nodes in all.
    pub fn planned_nodes(&self) -> i64 {
        self.planned.values().map(|n| i64::from(*n)).sum()
    }

    /// What the environment's `statusReason` says while writes wait for later passes (`None`
    /// when this pass does them all); `max_writes` is the limit of a pass.
    pub fn progress(&self, max_writes: usize) -> Option<String> {
        if self.deferred == 0 {
            None
        } else if self.deferred_creates > 0 {
            Some(format!(
                "scaling out: {} of {} node(s) created, at most {max_writes} node writes per pass",
                self.existing_planned + self.created.len(),
                self.planned_nodes()
            ))
        } else {
            Some(format!(
                "scaling: {} node change(s) left, at most {max_writes} node writes per pass",
                self.deferred
            ))
        }
    }
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
/// plan for `enabled` (see [`SimulatedPool::target_vcpus`]). A plan of more than
/// [`MAX_NODES_PER_COMPUTE_ENVIRONMENT`] nodes is an error ([`pool_of`](super::pool_of) has
/// already refused pools that need more even of their largest type, before any planning).
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
    let planned_nodes: i64 = plan.iter().map(|(_, n)| i64::from(*n)).sum();
    if planned_nodes > MAX_NODES_PER_COMPUTE_ENVIRONMENT {
        let types: Vec<String> = plan
            .iter()
            .map(|(t, n)| format!("{n} {}", t.name))
            .collect();
        return Err(PoolError::invalid(too_many_nodes(
            target_field(pool, enabled),
            target,
            &format!("{planned_nodes} nodes ({})", types.join(", ")),
        )));
    }
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
        } else {
            actions.existing_planned += 1;
        }
        if needs_apply(&o.node, &desired) {
            actions.apply.push(desired);
        }
    }
    Ok(actions)
}

/// Plans the nodes of a pool that scales with demand (pure): creates what `decision` adds
/// (lowest free node numbers per type), cordons the idle nodes it removes and deletes them once
/// the cache shows them cordoned and without pods. Nodes it keeps are left as they are.
pub fn plan_scaled_nodes(
    ce: &ComputeEnvironment,
    pool: &SimulatedPool,
    observed: &[ObservedNode],
    decision: &ScalingDecision,
) -> Result<NodeActions, PoolError> {
    let ce_name = ce.name_any();
    let names: BTreeSet<String> = observed.iter().map(|o| o.node.name_any()).collect();
    let removing: BTreeSet<&str> = decision.remove.iter().map(String::as_str).collect();
    let mut actions = NodeActions {
        target_vcpus: decision.desired_vcpus,
        ..Default::default()
    };
    for o in observed {
        let name = o.node.name_any();
        let type_name = o
            .node
            .labels()
            .get(LABEL_INSTANCE_TYPE)
            .cloned()
            .unwrap_or_default();
        if !removing.contains(name.as_str()) {
            actions.existing_planned += 1;
            *actions.planned.entry(type_name.clone()).or_insert(0) += 1;
            actions.planned_vcpus += pool
                .catalog
                .iter()
                .find(|t| t.name == type_name)
                .map_or(0, |t| t.vcpus);
            continue;
        }
        if o.busy {
            continue;
        }
        if is_cordoned(&o.node) {
            actions.delete.push(name);
            continue;
        }
        let mut cordon = match pool.catalog.iter().find(|t| t.name == type_name) {
            Some(t) => desired_node(ce, pool, &name, t, true),
            None => {
                let mut cordon = o.node.clone();
                cordon.status = None;
                cordon
            }
        };
        cordon
            .spec
            .get_or_insert_with(Default::default)
            .unschedulable = Some(true);
        actions.cordoned.push(name);
        actions.apply.push(cordon);
    }
    let existing = i64::try_from(observed.len()).unwrap_or(i64::MAX);
    let adding: i64 = decision.add.iter().map(|a| i64::from(a.count)).sum();
    if existing + adding > MAX_NODES_PER_COMPUTE_ENVIRONMENT {
        return Err(PoolError::invalid(format!(
            "scaling to demand needs {} nodes; a compute environment of the simulated provider may have at most {MAX_NODES_PER_COMPUTE_ENVIRONMENT} nodes: lower maxvCpus or list larger instanceTypes",
            existing + adding
        )));
    }
    for add in &decision.add {
        let Some(t) = pool.catalog.iter().find(|t| t.name == add.instance_type) else {
            continue;
        };
        let mut n = 0u32;
        for _ in 0..add.count {
            while names.contains(&node_name(&ce_name, &t.name, n))
                || actions.created.contains(&node_name(&ce_name, &t.name, n))
            {
                n += 1;
            }
            let name = node_name(&ce_name, &t.name, n);
            actions.apply.push(desired_node(ce, pool, &name, t, false));
            actions.created.push(name);
            *actions.planned.entry(t.name.to_string()).or_insert(0) += 1;
            actions.planned_vcpus += t.vcpus;
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
    fn a_scaling_decision_creates_then_cordons_then_deletes() {
        use barge_core::scaling::{NodesToAdd, ScalingDecision};
        let ce = simulated_ce("ce", &["c5.large"], 0, None, 8);
        let p = pool(&ce);
        let grow = ScalingDecision {
            environment: "ce".into(),
            desired_vcpus: 4,
            add: vec![NodesToAdd {
                instance_type: "c5.large".into(),
                count: 2,
            }],
            ..Default::default()
        };
        let step1 = plan_scaled_nodes(&ce, &p, &[], &grow).expect("plan");
        assert_eq!(step1.created, ["ce-c5-large-0", "ce-c5-large-1"]);
        assert_eq!(step1.target_vcpus, 4);
        // The same decision before the cache shows the nodes asks for the same names again
        // (an idempotent apply), never for more.
        let again = plan_scaled_nodes(&ce, &p, &[], &grow).expect("plan");
        assert_eq!(again.created, step1.created);
        // One more node while both exist: the next free number.
        let step2 = plan_scaled_nodes(
            &ce,
            &p,
            &observe(&step1.apply, &[]),
            &ScalingDecision {
                add: vec![NodesToAdd {
                    instance_type: "c5.large".into(),
                    count: 1,
                }],
                ..grow.clone()
            },
        )
        .expect("plan");
        assert_eq!(step2.created, ["ce-c5-large-2"]);
        // Scale-in: node 0 is removed (cordoned first); a busy node is never touched.
        let shrink = ScalingDecision {
            add: vec![],
            remove: vec!["ce-c5-large-0".into(), "ce-c5-large-1".into()],
            ..grow.clone()
        };
        let step3 = plan_scaled_nodes(&ce, &p, &observe(&step1.apply, &["ce-c5-large-1"]), &shrink)
            .expect("plan");
        assert_eq!(step3.cordoned, ["ce-c5-large-0"]);
        assert!(step3.delete.is_empty());
        let step4 = plan_scaled_nodes(&ce, &p, &observe(&step3.apply, &[]), &shrink).expect("plan");
        assert_eq!(step4.delete, ["ce-c5-large-0"]);
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
    fn a_pool_beyond_the_node_cap_is_invalid_before_any_plan() {
        // desiredvCpus 100000 (a typo for 100) of c5.large (2 vCPUs) would be 50,000 nodes.
        let typo = simulated_ce("ce", &["c5.large"], 0, Some(100_000), 100_000);
        let err = pool_of(&typo).expect_err("too many nodes");
        assert_eq!(
            err.message,
            "desiredvCpus 100000 needs at least 50000 nodes of c5.large (2 vCPUs, the largest of its instanceTypes); a compute environment of the simulated provider may have at most 1000 nodes: lower desiredvCpus or list larger instanceTypes"
        );
        // Without desiredvCpus, minvCpus sizes the pool.
        let floor = simulated_ce("ce", &["c5.large"], 2_002, None, 4_000);
        assert!(pool_of(&floor)
            .expect_err("too many nodes")
            .message
            .starts_with("minvCpus 2002 needs at least 1001 nodes"));
        // Exactly at the cap: valid, and planned in full.
        let at_cap = simulated_ce("ce", &["c5.large"], 0, Some(2_000), 2_000);
        let actions = plan_nodes(&at_cap, &pool(&at_cap), true, &[]).expect("plan");
        assert_eq!(actions.planned_nodes(), MAX_NODES_PER_COMPUTE_ENVIRONMENT);
    }

    #[test]
    fn a_plan_beyond_the_node_cap_is_invalid() {
        // Its largest type could hold 2000 vCPUs in 20 nodes, but the cheapest plan takes 2000
        // nodes of the small one.
        let mut ce = simulated_ce("ce", &["small.x1", "big.x100"], 0, Some(2_000), 2_000);
        let catalog = &mut ce
            .spec
            .compute_resources
            .as_mut()
            .expect("resources")
            .provider
            .simulated
            .as_mut()
            .expect("simulated")
            .catalog;
        for (name, vcpus, price) in [("small.x1", 1, "0.01"), ("big.x100", 100, "5.0")] {
            catalog.push(barge_crds::compute_environment::InstanceTypeSpec {
                name: name.into(),
                v_cpus: vcpus,
                memory_mib: 1024,
                gpus: None,
                price: Some(price.into()),
            });
        }
        let err = plan_nodes(&ce, &pool(&ce), true, &[]).expect_err("too many nodes");
        assert!(
            err.message
                .starts_with("desiredvCpus 2000 needs 2000 nodes (2000 small.x1); a compute environment of the simulated provider may have at most 1000 nodes"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_large_pool_is_created_a_pass_at_a_time() {
        let ce = simulated_ce("ce", &["c5.large"], 0, Some(1_000), 1_000);
        let p = pool(&ce);
        let mut first = plan_nodes(&ce, &p, true, &[]).expect("plan");
        assert_eq!(first.created.len(), 500);
        first.limit_writes(20);
        assert_eq!((first.apply.len(), first.created.len()), (20, 20));
        assert_eq!((first.deferred, first.deferred_creates), (480, 480));
        assert_eq!(
            first.progress(20).as_deref(),
            Some("scaling out: 20 of 500 node(s) created, at most 20 node writes per pass")
        );
        // The next pass starts from what exists and creates the next 20.
        let mut second = plan_nodes(&ce, &p, true, &observe(&first.apply, &[])).expect("plan");
        second.limit_writes(20);
        assert_eq!(second.existing_planned, 20);
        assert!(second.created.iter().all(|n| !first.created.contains(n)));
        assert_eq!(
            second.progress(20).as_deref(),
            Some("scaling out: 40 of 500 node(s) created, at most 20 node writes per pass")
        );
        // A pass that can do everything reports no progress.
        let mut small = plan_nodes(&ce, &p, true, &observe(&first.apply, &[])).expect("plan");
        small.limit_writes(usize::MAX);
        assert_eq!((small.deferred, small.progress(20)), (0, None));
    }

    #[test]
    fn deletions_and_changes_go_before_creations() {
        // Two idle m5.xlarge nodes, cordoned; the environment now wants c5.large instead.
        let m5 = simulated_ce("ce", &["m5.xlarge"], 0, Some(8), 16);
        let mut nodes = plan_nodes(&m5, &pool(&m5), true, &[]).expect("plan").apply;
        for node in &mut nodes {
            node.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
        }
        let c5 = simulated_ce("ce", &["c5.large"], 0, Some(8), 16);
        let mut actions = plan_nodes(&c5, &pool(&c5), true, &observe(&nodes, &[])).expect("plan");
        assert_eq!((actions.delete.len(), actions.created.len()), (2, 4));
        actions.limit_writes(3);
        assert_eq!(actions.delete, ["ce-m5-xlarge-0", "ce-m5-xlarge-1"]);
        assert_eq!(actions.created, ["ce-c5-large-0"]);
        assert_eq!((actions.deferred, actions.deferred_creates), (3, 3));
        // A pass of one write: a deletion, everything else waits.
        let mut one = plan_nodes(&c5, &pool(&c5), true, &observe(&nodes, &[])).expect("plan");
        one.limit_writes(1);
        assert_eq!((one.delete.len(), one.apply.len(), one.deferred), (1, 0, 5));
        assert_eq!(
            one.progress(1).as_deref(),
            Some("scaling out: 0 of 4 node(s) created, at most 1 node writes per pass")
        );
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
