//! Multi-node parallel jobs (the AWS Batch guide's "Multi-node Parallel Jobs"): the node layout
//! of a job (which container each node runs, after the job's `nodeOverrides`), the gang the
//! scheduler places, the headless Service that names every node, and the gang reservation the
//! main node's pod records.
//!
//! - [`node_layout`]: `numNodes` is the job's `nodeOverrides.numNodes` or the definition's
//!   (1–1,000) and `mainNode` must be below it. A `targetNodes` is "n", "a:b", "a:" (to the last
//!   node) or ":b" (from node 0). Where ranges overlap, the narrower one decides a node, of two
//!   equally wide ones the later (AWS: with "0:10" and "4:5", "4:5" decides nodes 4 and 5). The
//!   definition's `nodeRangeProperties` must cover every node; the job's
//!   `nodePropertyOverrides` (same rule) change the containers of the nodes they name, exactly
//!   as a single job's `containerOverrides` change its container. Every refusal names the field.
//! - [`gang_of`]: what each node's pod asks for and the instance type it needs.
//! - [`node_service`] / [`service_name`]: the headless Service selecting the job's pods, so that
//!   node `n` is `node-<n>.<service>.<namespace>.svc` (pods set `hostname` and `subdomain`).
//! - [`gang_nodes_of`]: the Kubernetes nodes reserved for the gang, from the main node's pod.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;

use barge_core::index_set::IndexSet;
use barge_core::scheduler::{Constraints, Gang, GangMember};
use barge_crds::common::{is_dns_label, is_label_value};
use barge_crds::consts::{
    ANNOTATION_GANG_NODES, LABEL_JOB_NAME, LABEL_JOB_UID, LABEL_MANAGED_BY, MANAGED_BY_BARGE,
};
use barge_crds::job::NodePropertyOverride;
use barge_crds::job_definition::NodeProperties;
use barge_crds::resources::{ContainerProperties, MAX_NUM_NODES};
use barge_crds::{Job, JobDefinitionSpec};
use k8s_openapi::api::core::v1::{Pod, Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::container::with_overrides;
use super::request::container_request;
use super::{job_identity, job_owner_reference, RenderError};

/// A node pod's `hostname` is this prefix and the node index (`node-0`, `node-1`, ...).
pub const NODE_HOSTNAME_PREFIX: &str = "node-";
/// `spec.clusterIP` of a headless Service.
const CLUSTER_IP_NONE: &str = "None";
/// The Service of job `<job>` is `<job>-nodes` when that is a DNS-1035 label.
const SERVICE_SUFFIX: &str = "-nodes";
/// Otherwise (a job name starting with a digit, or too long): this prefix, as much of the job
/// name as fits, and a hash of the whole name.
const SERVICE_HASHED_PREFIX: &str = "bj-";
/// Longest DNS label.
const DNS_LABEL_MAX: usize = 63;

/// The nodes of a multi-node job after `nodeOverrides`: one container per node index.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeLayout {
    /// `numNodes` after `nodeOverrides.numNodes`.
    pub num_nodes: u32,
    pub main_node: u32,
    /// The definition's `nodeRangeProperties[].targetNodes` that decide some node, in the
    /// definition's order, as written, with the node indices each one decides (ascending).
    pub groups: Vec<(String, Vec<u32>)>,
    /// The effective container of each node (`containers[i]` is node `i`), with the job's
    /// `nodePropertyOverrides` applied.
    pub containers: Vec<ContainerProperties>,
}

impl NodeLayout {
    /// The main node's container.
    pub fn main_container(&self) -> &ContainerProperties {
        &self.containers[self.main_node as usize]
    }
}

/// Where a job's `numNodes` comes from (said in messages about coverage and the main node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumNodesFrom {
    /// The definition's `nodeProperties.numNodes`.
    Definition,
    /// The job's `nodeOverrides.numNodes`.
    NodeOverrides,
}

impl fmt::Display for NumNodesFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NumNodesFrom::Definition => "nodeProperties.numNodes",
            NumNodesFrom::NodeOverrides => "nodeOverrides.numNodes",
        })
    }
}

/// "node 6 is" / "nodes 6-7 are" (for [`RenderError::UncoveredNodes`]).
pub(super) fn nodes_phrase(nodes: &IndexSet) -> String {
    if nodes.len() == 1 {
        format!("node {nodes} is")
    } else {
        format!("nodes {nodes} are")
    }
}

/// The node indices a `targetNodes` names among `num_nodes` nodes: "n", "a:b", "a:" (from `a`
/// to the last node), ":b" (from node 0 to `b`), ":" (every node). Err: what is wrong with it,
/// for a message that names the field first.
pub fn target_node_range(target: &str, num_nodes: u32) -> Result<RangeInclusive<u32>, String> {
    let syntax = || "is not a node index or range (\"n\", \"a:b\", \"a:\" or \":b\")".to_string();
    let number = |text: &str| -> Result<u64, String> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        // Longer than any u64: beyond every numNodes anyway.
        Ok(text.parse::<u64>().unwrap_or(u64::MAX))
    };
    let last = u64::from(num_nodes) - 1;
    let (from, to) = match target.split_once(':') {
        None => {
            let n = number(target)?;
            (n, n)
        }
        Some((a, b)) => (
            if a.is_empty() { 0 } else { number(a)? },
            if b.is_empty() { last } else { number(b)? },
        ),
    };
    // An open range must start at a node ("a:" with a >= numNodes names none: AWS refuses a
    // numNodes override that leaves a range's lower boundary behind).
    let beyond = || format!("names nodes beyond numNodes {num_nodes}");
    if num_nodes == 0 || from > last {
        return Err(beyond());
    }
    if from > to {
        return Err("starts after it ends".to_string());
    }
    if to > last {
        return Err(beyond());
    }
    // Both are at most `last`, a u32.
    Ok(from as u32..=to as u32)
}

/// For each of `num_nodes` nodes, the range that decides it: of the ranges that cover it, the
/// narrowest; of equally narrow ones, the later. None: no range covers the node.
fn deciding_ranges(ranges: &[Option<RangeInclusive<u32>>], num_nodes: u32) -> Vec<Option<usize>> {
    let width = |r: &RangeInclusive<u32>| r.end() - r.start();
    let mut owners: Vec<Option<usize>> = vec![None; num_nodes as usize];
    for (i, range) in ranges.iter().enumerate() {
        let Some(range) = range else { continue };
        for node in range.clone() {
            let owner = &mut owners[node as usize];
            let narrower = match owner {
                Some(j) => ranges[*j].as_ref().is_none_or(|r| width(range) <= width(r)),
                None => true,
            };
            if narrower {
                *owner = Some(i);
            }
        }
    }
    owners
}

/// Parses every `targetNodes` of a list (the field of entry `i` is `{field}[i].targetNodes`):
/// the ranges that parse, and the error of the first one that does not.
fn parse_ranges<'t>(
    targets: impl Iterator<Item = &'t str>,
    field: &str,
    num_nodes: u32,
) -> (Vec<Option<RangeInclusive<u32>>>, Vec<RenderError>) {
    let mut ranges = Vec::new();
    let mut errors = Vec::new();
    for (i, target) in targets.enumerate() {
        match target_node_range(target, num_nodes) {
            Ok(range) => ranges.push(Some(range)),
            Err(problem) => {
                ranges.push(None);
                errors.push(RenderError::BadTargetNodes {
                    field: format!("{field}[{i}].targetNodes"),
                    target: target.to_string(),
                    problem,
                });
            }
        }
    }
    (ranges, errors)
}

/// Which node range of the definition decides each node, for `num_nodes` nodes: every problem
/// (ranges that are not ranges of the nodes, nodes no range covers), or one range index per node.
pub(crate) fn definition_ranges<'t>(
    targets: impl Iterator<Item = &'t str>,
    num_nodes: u32,
    from: NumNodesFrom,
) -> Result<Vec<usize>, Vec<RenderError>> {
    let (ranges, mut errors) =
        parse_ranges(targets, "nodeProperties.nodeRangeProperties", num_nodes);
    let owners = deciding_ranges(&ranges, num_nodes);
    let mut uncovered = IndexSet::default();
    for (node, owner) in owners.iter().enumerate() {
        if owner.is_none() {
            uncovered.insert(node as u32);
        }
    }
    // A range that failed to parse may be what was meant to cover the nodes: say so once.
    if !uncovered.is_empty() && errors.is_empty() {
        errors.push(RenderError::UncoveredNodes {
            nodes: uncovered,
            num_nodes,
            from,
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(owners.into_iter().flatten().collect())
}

/// Which node range and which node property override decide each node of a job: the layout
/// without its containers (cheap to compute for one node's pod).
pub(super) struct NodePlan<'d> {
    pub(super) num_nodes: u32,
    pub(super) main_node: u32,
    definition: &'d NodeProperties,
    overrides: &'d [NodePropertyOverride],
    /// The deciding `nodeRangeProperties` entry of each node.
    range_of: Vec<usize>,
    /// The deciding `nodePropertyOverrides` entry of each node, if any.
    override_of: Vec<Option<usize>>,
}

impl<'d> NodePlan<'d> {
    /// The plan of `job`'s nodes; an error names the field (a range beyond numNodes, nodes no
    /// range covers, a main node beyond numNodes, an array job of a multi-node definition, a
    /// job-level `containerOverrides`).
    pub(super) fn new(
        job: &'d Job,
        definition: &'d JobDefinitionSpec,
    ) -> Result<Self, RenderError> {
        let Some(properties) = &definition.node_properties else {
            return Err(RenderError::NotMultiNode);
        };
        if job.spec.array_properties.is_some() {
            return Err(RenderError::MultiNodeArray);
        }
        if job.spec.container_overrides.is_some() {
            return Err(RenderError::MultiNodeContainerOverrides);
        }
        let node_overrides = job.spec.node_overrides.as_ref();
        let (num_nodes, from) = match node_overrides.and_then(|o| o.num_nodes) {
            Some(n) => (n, NumNodesFrom::NodeOverrides),
            None => (properties.num_nodes, NumNodesFrom::Definition),
        };
        let num_nodes = u32::try_from(num_nodes)
            .ok()
            .filter(|n| (1..=MAX_NUM_NODES as u32).contains(n))
            .ok_or(RenderError::BadNumNodes {
                num_nodes: i64::from(num_nodes),
                from,
            })?;
        let main_node = u32::try_from(properties.main_node)
            .ok()
            .filter(|m| *m < num_nodes)
            .ok_or(RenderError::BadMainNode {
                main_node: i64::from(properties.main_node),
                num_nodes,
                from,
            })?;
        let range_of = definition_ranges(
            properties
                .node_range_properties
                .iter()
                .map(|r| r.target_nodes.as_str()),
            num_nodes,
            from,
        )
        .map_err(|mut errors| errors.swap_remove(0))?;
        let overrides = node_overrides
            .map(|o| o.node_property_overrides.as_slice())
            .unwrap_or_default();
        let (override_ranges, errors) = parse_ranges(
            overrides.iter().map(|o| o.target_nodes.as_str()),
            "nodeOverrides.nodePropertyOverrides",
            num_nodes,
        );
        if let Some(error) = errors.into_iter().next() {
            return Err(error);
        }
        Ok(NodePlan {
            num_nodes,
            main_node,
            definition: properties,
            overrides,
            range_of,
            override_of: deciding_ranges(&override_ranges, num_nodes),
        })
    }

    /// The container of node `index` (below `num_nodes`) and what decides it.
    fn key(&self, index: u32) -> (usize, Option<usize>) {
        (
            self.range_of[index as usize],
            self.override_of[index as usize],
        )
    }

    fn container_for(&self, (range, over): (usize, Option<usize>)) -> ContainerProperties {
        let base = &self.definition.node_range_properties[range].container;
        match over.and_then(|o| self.overrides[o].container_overrides.as_ref()) {
            Some(overrides) => with_overrides(base, overrides),
            None => base.clone(),
        }
    }

    /// The effective container of node `index` (below `num_nodes`).
    pub(super) fn container(&self, index: u32) -> ContainerProperties {
        self.container_for(self.key(index))
    }

    /// The whole layout.
    fn layout(&self) -> NodeLayout {
        // At most 5 ranges × 6 override choices: build each distinct container once.
        let mut distinct: BTreeMap<(usize, Option<usize>), ContainerProperties> = BTreeMap::new();
        let mut containers = Vec::with_capacity(self.num_nodes as usize);
        let mut groups: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
        for node in 0..self.num_nodes {
            let key = self.key(node);
            let container = distinct
                .entry(key)
                .or_insert_with(|| self.container_for(key));
            containers.push(container.clone());
            groups.entry(key.0).or_default().push(node);
        }
        NodeLayout {
            num_nodes: self.num_nodes,
            main_node: self.main_node,
            groups: groups
                .into_iter()
                .map(|(range, nodes)| {
                    (
                        self.definition.node_range_properties[range]
                            .target_nodes
                            .clone(),
                        nodes,
                    )
                })
                .collect(),
            containers,
        }
    }
}

/// The layout of `job`'s nodes; an error names the field (a range beyond numNodes, nodes no
/// range covers, a main node beyond numNodes, an array job of a multi-node definition, a
/// job-level `containerOverrides`).
pub fn node_layout(job: &Job, definition: &JobDefinitionSpec) -> Result<NodeLayout, RenderError> {
    NodePlan::new(job, definition).map(|plan| plan.layout())
}

/// The gang the scheduler places: what each node's pod asks for (vCPUs, memory, GPUs of its
/// container, and one pod slot) and its container's `instanceType`.
pub fn gang_of(layout: &NodeLayout) -> Result<Gang, RenderError> {
    let members = layout
        .containers
        .iter()
        .map(|container| {
            Ok(GangMember {
                request: container_request(container)?,
                constraints: Constraints {
                    instance_type: container.instance_type.clone(),
                },
            })
        })
        .collect::<Result<Vec<_>, RenderError>>()?;
    Ok(Gang {
        main_node: layout.main_node,
        members,
    })
}

/// The headless Service of a multi-node job (named [`service_name`], owned by the job): no
/// cluster IP and no ports (the API server requires ports only of Services with a cluster IP),
/// selecting the job's pods by its uid and publishing them before they are ready, so that
/// every node resolves as `node-<n>.<service>.<namespace>.svc` as soon as its pod has an IP.
pub fn node_service(job: &Job) -> Result<Service, RenderError> {
    let (job_name, namespace, uid) = job_identity(job)?;
    let mut labels = BTreeMap::new();
    for (key, what, value) in [
        (LABEL_MANAGED_BY, "managed-by", MANAGED_BY_BARGE),
        (LABEL_JOB_NAME, "job name", job_name),
        (LABEL_JOB_UID, "job uid", uid),
    ] {
        if !is_label_value(value) {
            return Err(RenderError::BadLabelValue {
                what,
                value: value.to_string(),
            });
        }
        labels.insert(key.to_string(), value.to_string());
    }
    Ok(Service {
        metadata: ObjectMeta {
            name: Some(service_name(job_name)),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            owner_references: Some(vec![job_owner_reference(job_name, uid)]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(CLUSTER_IP_NONE.to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(BTreeMap::from([(
                LABEL_JOB_UID.to_string(),
                uid.to_string(),
            )])),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

/// Whether `name` is a DNS-1035 label (a DNS-1123 label that starts with a letter), as a
/// Service name must be.
fn is_dns_1035_label(name: &str) -> bool {
    is_dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase())
}

/// FNV-1a, 32 bits: a stable hash (std's hashers may change between releases).
fn fnv1a32(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// The name of a multi-node job's headless Service: a DNS-1035 label of at most 63
/// characters, the same for the same job name. `<job>-nodes` when that is one; otherwise (a
/// job name that starts with a digit, or is too long) `bj-<as much of the name as fits>-<hash
/// of the name>`. The two forms never meet (one ends in "-nodes", the other in eight hex
/// digits), so two jobs of a namespace never share a Service.
pub fn service_name(job_name: &str) -> String {
    let plain = format!("{job_name}{SERVICE_SUFFIX}");
    if is_dns_1035_label(&plain) {
        return plain;
    }
    let hash = format!("{:08x}", fnv1a32(job_name));
    let room = DNS_LABEL_MAX - SERVICE_HASHED_PREFIX.len() - 1 - hash.len();
    let kept: String = job_name
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(room)
        .collect();
    format!("{SERVICE_HASHED_PREFIX}{kept}-{hash}")
}

/// The value of [`ANNOTATION_GANG_NODES`]: the Kubernetes nodes, comma-separated.
pub(super) fn gang_nodes_annotation(nodes: &[String]) -> String {
    nodes.join(",")
}

/// The gang's reserved Kubernetes nodes from the main node's pod (its
/// `batch.barge.dev/gang-nodes` annotation), in node-index order. None when the annotation is
/// absent or is not a comma-separated list of node names.
pub fn gang_nodes_of(main_pod: &Pod) -> Option<Vec<String>> {
    let value = main_pod
        .metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_GANG_NODES)?;
    let nodes: Vec<String> = value.split(',').map(str::to_string).collect();
    nodes
        .iter()
        .all(|n| barge_crds::common::is_dns_subdomain(n))
        .then_some(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::fixtures::*;
    use crate::pods::job_request;
    use barge_core::resources::Resources;
    use serde_json::json;

    /// A multi-node definition of `num_nodes` nodes whose ranges run images named after their
    /// `targetNodes` ("img-0:10").
    fn ranges_definition(num_nodes: i32, targets: &[&str]) -> JobDefinitionSpec {
        let ranges: Vec<serde_json::Value> = targets
            .iter()
            .map(|t| json!({"targetNodes": t, "container": {"image": format!("img-{t}"), "vcpus": 1, "memory": 512}}))
            .collect();
        definition(json!({
            "type": "multinode",
            "nodeProperties": {"numNodes": num_nodes, "mainNode": 0, "nodeRangeProperties": ranges},
        }))
    }

    fn images(layout: &NodeLayout) -> Vec<&str> {
        layout.containers.iter().map(|c| c.image.as_str()).collect()
    }

    fn error(job_spec: serde_json::Value, definition: &JobDefinitionSpec) -> String {
        node_layout(&job(job_spec), definition)
            .expect_err("the layout is refused")
            .to_string()
    }

    #[test]
    fn target_nodes_name_an_index_or_a_range_within_num_nodes() {
        assert_eq!(target_node_range("3", 6), Ok(3..=3));
        assert_eq!(target_node_range("1:3", 6), Ok(1..=3));
        assert_eq!(target_node_range("1:", 6), Ok(1..=5));
        assert_eq!(target_node_range(":2", 6), Ok(0..=2));
        assert_eq!(target_node_range(":", 6), Ok(0..=5));
        assert_eq!(target_node_range("0:0", 1), Ok(0..=0));
        for bad in ["", "x", "1-3", "+1", "1:2:3", " 1", "-1"] {
            assert_eq!(
                target_node_range(bad, 6),
                Err("is not a node index or range (\"n\", \"a:b\", \"a:\" or \":b\")".into()),
                "{bad:?}"
            );
        }
        assert_eq!(
            target_node_range("4:2", 6),
            Err("starts after it ends".into())
        );
        for beyond in ["6", "3:9", "6:", "99999999999999999999999"] {
            assert_eq!(
                target_node_range(beyond, 6),
                Err("names nodes beyond numNodes 6".into()),
                "{beyond:?}"
            );
        }
    }

    #[test]
    fn the_aws_fixture_lays_out_a_main_node_and_five_workers() {
        let layout = node_layout(&job(json!({})), &multinode_definition()).expect("layout");
        assert_eq!((layout.num_nodes, layout.main_node), (6, 0));
        assert_eq!(
            layout.groups,
            vec![
                ("0".to_string(), vec![0]),
                ("1:".to_string(), vec![1, 2, 3, 4, 5])
            ]
        );
        assert_eq!(
            images(&layout),
            ["my_repo/mpi-main"]
                .into_iter()
                .chain(["my_repo/mpi-worker"; 5])
                .collect::<Vec<_>>()
        );
        assert_eq!(layout.main_container().command, vec!["/opt/run-main.sh"]);
        assert_eq!(layout.containers[4].command, vec!["/opt/run-worker.sh"]);
        assert_eq!(
            layout.containers[4].instance_type.as_deref(),
            Some("c4.xlarge")
        );
    }

    #[test]
    fn the_narrower_of_nested_ranges_decides_and_the_later_of_equal_ones() {
        // AWS: with "0:10" and "4:5", "4:5" overrides for nodes 4 and 5.
        let layout =
            node_layout(&job(json!({})), &ranges_definition(11, &["0:10", "4:5"])).expect("layout");
        assert_eq!(
            layout.groups,
            vec![
                ("0:10".to_string(), vec![0, 1, 2, 3, 6, 7, 8, 9, 10]),
                ("4:5".to_string(), vec![4, 5]),
            ]
        );
        // Narrower and earlier still wins; equal widths: the later one.
        let layout = node_layout(
            &job(json!({})),
            &ranges_definition(4, &["2", "0:", "0:1", "1:2"]),
        )
        .expect("layout");
        assert_eq!(images(&layout), ["img-0:1", "img-1:2", "img-2", "img-0:"]);
        // A range that decides no node is not a group.
        let layout =
            node_layout(&job(json!({})), &ranges_definition(2, &[":", "0", "1"])).expect("layout");
        assert_eq!(
            layout.groups,
            vec![("0".to_string(), vec![0]), ("1".to_string(), vec![1])]
        );
    }

    #[test]
    fn gaps_and_ranges_beyond_num_nodes_are_refused_naming_the_range() {
        assert_eq!(
            error(json!({}), &ranges_definition(6, &["0", "4:9"])),
            "nodeProperties.nodeRangeProperties[1].targetNodes \"4:9\" names nodes beyond numNodes 6"
        );
        assert_eq!(
            error(json!({}), &ranges_definition(6, &["0", "2:3", "5"])),
            "nodes 1,4 are not covered by any nodeProperties.nodeRangeProperties[].targetNodes (numNodes 6 from nodeProperties.numNodes)"
        );
        assert_eq!(
            error(json!({}), &ranges_definition(6, &["0:4"])),
            "node 5 is not covered by any nodeProperties.nodeRangeProperties[].targetNodes (numNodes 6 from nodeProperties.numNodes)"
        );
    }

    #[test]
    fn num_nodes_overrides_grow_open_ranges_and_may_uncover_nodes() {
        let def = multinode_definition();
        let layout =
            node_layout(&job(json!({"nodeOverrides": {"numNodes": 10}})), &def).expect("layout");
        assert_eq!(layout.num_nodes, 10);
        assert_eq!(layout.groups[1], ("1:".to_string(), (1..10).collect()));
        let layout =
            node_layout(&job(json!({"nodeOverrides": {"numNodes": 2}})), &def).expect("layout");
        assert_eq!(layout.groups[1], ("1:".to_string(), vec![1]));
        assert_eq!(layout.containers.len(), 2);
        // AWS: a range's lower boundary must stay below an overridden numNodes.
        assert_eq!(
            error(json!({"nodeOverrides": {"numNodes": 1}}), &def),
            "nodeProperties.nodeRangeProperties[1].targetNodes \"1:\" names nodes beyond numNodes 1"
        );

        let closed = ranges_definition(6, &["0", "1:5"]);
        assert_eq!(
            error(json!({"nodeOverrides": {"numNodes": 8}}), &closed),
            "nodes 6-7 are not covered by any nodeProperties.nodeRangeProperties[].targetNodes (numNodes 8 from nodeOverrides.numNodes)"
        );
        assert_eq!(
            error(json!({"nodeOverrides": {"numNodes": 4}}), &closed),
            "nodeProperties.nodeRangeProperties[1].targetNodes \"1:5\" names nodes beyond numNodes 4"
        );
        let mut late_main = multinode_definition();
        late_main.node_properties.as_mut().expect("nodes").main_node = 5;
        assert_eq!(
            error(json!({"nodeOverrides": {"numNodes": 3}}), &late_main),
            "nodeProperties.mainNode 5 must be a node index below numNodes 3 (from nodeOverrides.numNodes)"
        );
        assert_eq!(
            error(json!({"nodeOverrides": {"numNodes": 1001}}), &def),
            "nodeOverrides.numNodes 1001 must be from 1 to 1000"
        );
        assert_eq!(
            error(json!({"nodeOverrides": {"numNodes": 0}}), &def),
            "nodeOverrides.numNodes 0 must be from 1 to 1000"
        );
    }

    #[test]
    fn node_property_overrides_change_the_nodes_they_name_narrowest_first() {
        let submitted = job(json!({"nodeOverrides": {"nodePropertyOverrides": [
            {"targetNodes": "1:", "containerOverrides": {"command": ["/opt/other-worker.sh"]}},
            {"targetNodes": "3", "containerOverrides": {
                "environment": [{"name": "ROLE", "value": "parameter-server"}],
                "resourceRequirements": [{"type": "VCPU", "value": "8"}, {"type": "GPU", "value": "1"}],
                "instanceType": "p3.2xlarge",
            }},
        ]}}));
        let layout = node_layout(&submitted, &multinode_definition()).expect("layout");
        let commands: Vec<&str> = layout
            .containers
            .iter()
            .map(|c| c.command[0].as_str())
            .collect();
        assert_eq!(
            commands,
            [
                "/opt/run-main.sh",
                "/opt/other-worker.sh",
                "/opt/other-worker.sh",
                // Node 3 takes the narrower override only.
                "/opt/run-worker.sh",
                "/opt/other-worker.sh",
                "/opt/other-worker.sh",
            ]
        );
        let node3 = &layout.containers[3];
        assert_eq!(node3.environment[0].name, "ROLE");
        assert_eq!(node3.instance_type.as_deref(), Some("p3.2xlarge"));
        // The groups are the definition's ranges, overrides or not.
        assert_eq!(layout.groups[1].1, vec![1, 2, 3, 4, 5]);

        let gang = gang_of(&layout).expect("gang");
        assert_eq!(gang.main_node, 0);
        assert_eq!(gang.members.len(), 6);
        assert_eq!(gang.members[0].request, Resources::request(4000, 7000, 0));
        assert_eq!(
            gang.members[0].constraints.instance_type.as_deref(),
            Some("c4.xlarge")
        );
        assert_eq!(gang.members[3].request, Resources::request(8000, 7000, 1));
        assert_eq!(
            gang.members[3].constraints.instance_type.as_deref(),
            Some("p3.2xlarge")
        );

        assert_eq!(
            error(
                json!({"nodeOverrides": {"nodePropertyOverrides": [{"targetNodes": "2"}, {"targetNodes": "7"}]}}),
                &multinode_definition()
            ),
            "nodeOverrides.nodePropertyOverrides[1].targetNodes \"7\" names nodes beyond numNodes 6"
        );
    }

    #[test]
    fn the_job_request_of_a_multi_node_job_is_its_main_nodes() {
        let def = multinode_definition();
        assert_eq!(
            job_request(&job(json!({})), &def),
            Ok(Resources::request(4000, 7000, 0))
        );
        let bigger_main = job(json!({"nodeOverrides": {"nodePropertyOverrides": [
            {"targetNodes": "0", "containerOverrides": {"memory": 16000}},
        ]}}));
        assert_eq!(
            job_request(&bigger_main, &def),
            Ok(Resources::request(4000, 16000, 0))
        );
    }

    #[test]
    fn multi_node_misuse_is_refused_naming_the_field() {
        let def = multinode_definition();
        assert_eq!(
            error(json!({"arrayProperties": {"size": 10}}), &def),
            "a multi-node job definition cannot be submitted as an array job: remove arrayProperties"
        );
        assert_eq!(
            error(json!({"containerOverrides": {"command": ["x"]}}), &def),
            "containerOverrides does not apply to a multi-node job: override the nodes' containers in nodeOverrides.nodePropertyOverrides[].containerOverrides"
        );
        let container = crate::test_support::aws_job_definition("jobdef-fetch_and_run.json");
        assert_eq!(
            node_layout(&job(json!({})), &container),
            Err(RenderError::NotMultiNode)
        );
        let with_nodes = job(json!({"nodeOverrides": {"numNodes": 2}}));
        assert_eq!(
            job_request(&with_nodes, &container),
            Err(RenderError::NodeOverridesWithoutNodes)
        );
        assert_eq!(
            Render::new(container, with_nodes).render(),
            Err(RenderError::NodeOverridesWithoutNodes)
        );
    }

    #[test]
    fn the_headless_service_selects_the_jobs_pods_and_is_owned_by_the_job() {
        let service = node_service(&job(json!({}))).expect("service");
        assert_eq!(service.metadata.name.as_deref(), Some("render-nodes"));
        assert_eq!(service.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(
            service.metadata.labels,
            Some(BTreeMap::from([
                (LABEL_MANAGED_BY.to_string(), MANAGED_BY_BARGE.to_string()),
                (LABEL_JOB_NAME.to_string(), "render".to_string()),
                (LABEL_JOB_UID.to_string(), UID.to_string()),
            ]))
        );
        let owner = &service.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Job", "render", UID)
        );
        assert_eq!(owner.controller, Some(true));
        let spec = service.spec.expect("spec");
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(spec.ports, None, "a headless Service needs no ports");
        assert_eq!(
            spec.selector,
            Some(BTreeMap::from([(
                LABEL_JOB_UID.to_string(),
                UID.to_string()
            )]))
        );
        let mut nameless = job(json!({}));
        nameless.metadata.uid = None;
        assert_eq!(
            node_service(&nameless),
            Err(RenderError::MissingJobMetadata("uid"))
        );
    }

    #[test]
    fn service_names_are_dns_1035_labels_unique_per_job_name() {
        assert_eq!(service_name("mpi"), "mpi-nodes");
        let long = "a".repeat(63);
        let names = [
            service_name("3d-render"),
            service_name("j-3d-render"),
            service_name(&long),
            service_name(&format!("{}b", "a".repeat(62))),
            service_name(&"a".repeat(57)),
            service_name(&"a".repeat(58)),
            service_name("0"),
        ];
        for name in &names {
            assert!(is_dns_1035_label(name), "{name}");
        }
        assert!(names[0].starts_with("bj-3d-render-"), "{}", names[0]);
        assert_eq!(names[1], "j-3d-render-nodes");
        assert_eq!(names[4], format!("{}-nodes", "a".repeat(57)));
        assert!(names[5].starts_with("bj-aaaa"), "{}", names[5]);
        let unique: std::collections::BTreeSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert_eq!(service_name("3d-render"), names[0], "deterministic");
    }

    #[test]
    fn gang_nodes_read_back_from_the_main_pod() {
        let nodes = ["ip-1", "ip-7", "ip-3", "ip-2", "ip-9", "ip-4"];
        let pod = Render::new(multinode_definition(), job(json!({})))
            .node(0, None)
            .gang_nodes(&nodes)
            .pod();
        assert_eq!(
            gang_nodes_of(&pod),
            Some(nodes.iter().map(|n| n.to_string()).collect())
        );
        let plain = Render::new(multinode_definition(), job(json!({})))
            .node(0, None)
            .pod();
        assert_eq!(gang_nodes_of(&plain), None);
        let mut malformed = pod.clone();
        malformed
            .metadata
            .annotations
            .as_mut()
            .expect("annotations")
            .insert(ANNOTATION_GANG_NODES.to_string(), "ip-1,,ip-3".to_string());
        assert_eq!(gang_nodes_of(&malformed), None);
    }
}
