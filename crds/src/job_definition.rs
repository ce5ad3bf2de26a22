//! JobDefinition (namespaced, short name `jd`): the blueprint of a job — the counterpart of AWS
//! Batch RegisterJobDefinition. A definition is a `container` job (AWS-shaped
//! `containerProperties`, or Kubernetes-shaped `podProperties`) or a `multinode` job
//! (`nodeProperties`), plus retry strategy, timeout, parameters and tags.
//!
//! Revisions: the definition controller bumps `status.revision` on every spec change and keeps
//! each revision's spec in an apps/v1 ControllerRevision, so `jobDefinition: name:N` in a Job
//! resolves to a frozen spec.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Volume as PodVolume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::resources::{
    ContainerProperties, JobTimeout, RetryStrategy, MAX_NODE_RANGES, MAX_NUM_NODES,
};

/// `schedulingPriority` bounds (AWS Batch: 0–9999).
pub const MAX_SCHEDULING_PRIORITY: i32 = 9999;

/// `type` of a job definition (AWS Batch spells these in lowercase).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum JobDefinitionType {
    /// A single container (or pod) per job or array child.
    #[serde(rename = "container")]
    Container,
    /// A multi-node parallel job.
    #[serde(rename = "multinode")]
    Multinode,
}

/// A Kubernetes-shaped alternative to `containerProperties`, for users who think in PodSpecs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodProperties {
    /// The pod's containers (1–10); `env` names starting with `AWS_BATCH` are reserved.
    #[schemars(schema_with = "crate::common::pod_containers_schema")]
    pub containers: Vec<Container>,
    /// Init containers (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::common::pod_init_containers_schema")]
    pub init_containers: Vec<Container>,
    /// Pod volumes (at most 64).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::common::pod_volumes_schema")]
    pub volumes: Vec<PodVolume>,
    /// The service account the pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub service_account_name: Option<String>,
}

/// A group of nodes of a multinode job and their container (AWS `NodeRangeProperty`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = crate::resources::target_nodes_order_rule())]
pub struct NodeRangeProperty {
    /// Node indices: "n", "a:b", "a:" (to the last node) or ":b" (from node 0).
    #[x_kube(validation = crate::resources::target_nodes_rule())]
    #[schemars(length(min = 1, max = 21))]
    pub target_nodes: String,
    /// The container the nodes of the range run.
    pub container: ContainerProperties,
}

/// The nodes of a multinode job (AWS `NodeProperties`). Where ranges overlap, the narrower one
/// decides a node (of two equally wide ranges, the later one); the ranges together must cover
/// nodes 0..numNodes-1 (checked by the operator).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mainNode < self.numNodes").message("mainNode must be a node index below numNodes"))]
#[x_kube(validation = crate::resources::target_nodes_within_rule("nodeRangeProperties", "nodeRangeProperties"))]
pub struct NodeProperties {
    /// Number of nodes (pods) of the job, 1–1,000.
    #[schemars(range(min = 1, max = MAX_NUM_NODES))]
    pub num_nodes: i32,
    /// Index of the main node, which starts first and decides the job's result.
    #[schemars(range(min = 0))]
    pub main_node: i32,
    /// 1–5 node groups.
    #[schemars(length(min = 1, max = MAX_NODE_RANGES))]
    pub node_range_properties: Vec<NodeRangeProperty>,
}

/// Spec of a JobDefinition (AWS RegisterJobDefinition; the name is `metadata.name`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "batch.barge.dev",
    version = "v1alpha1",
    kind = "JobDefinition",
    namespaced,
    shortname = "jd",
    category = "barge",
    status = "JobDefinitionStatus",
    derive = "PartialEq",
    doc = "The blueprint of Barge jobs (AWS Batch job definition).",
    validation = crate::common::name_fits_label_value_rule("JobDefinition", crate::consts::LABEL_JOB_DEFINITION),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "Revision", type_ = "integer", json_path = ".status.revision"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type != 'container' || (has(self.containerProperties) ? 1 : 0) + (has(self.podProperties) ? 1 : 0) == 1").message("a container job definition needs exactly one of containerProperties or podProperties"))]
#[x_kube(validation = Rule::new("self.type != 'container' || !has(self.nodeProperties)").message("nodeProperties is for multinode job definitions"))]
#[x_kube(validation = Rule::new("self.type != 'multinode' || has(self.nodeProperties)").message("a multinode job definition needs nodeProperties"))]
#[x_kube(validation = Rule::new("self.type != 'multinode' || (!has(self.containerProperties) && !has(self.podProperties))").message("a multinode job definition describes its containers in nodeProperties.nodeRangeProperties, not containerProperties or podProperties"))]
#[x_kube(validation = Rule::new("!has(self.containerProperties) || !has(self.containerProperties.instanceType)").message("containerProperties.instanceType applies only to the node ranges of multinode jobs"))]
pub struct JobDefinitionSpec {
    /// container or multinode.
    #[serde(rename = "type")]
    pub r#type: JobDefinitionType,
    /// Default values of `Ref::name` placeholders in the command.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::common::parameters_schema")]
    pub parameters: BTreeMap<String, String>,
    /// The container, AWS Batch shape (type container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_properties: Option<ContainerProperties>,
    /// The pod, Kubernetes shape (type container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_properties: Option<PodProperties>,
    /// The nodes (type multinode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_properties: Option<NodeProperties>,
    /// Retries of failed attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_strategy: Option<RetryStrategy>,
    /// Per-attempt time limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<JobTimeout>,
    /// Priority within a fair-share queue (higher first, 0–9999).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_SCHEDULING_PRIORITY))]
    pub scheduling_priority: Option<i32>,
    /// Copy the tags of the job and definition to its pods (as annotations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate_tags: Option<bool>,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::common::tags_schema")]
    pub tags: BTreeMap<String, String>,
}

/// Observed state of a job definition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobDefinitionStatus {
    /// The current revision (1 for the first spec, +1 for every spec change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i32>,
    /// Ready etc.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::common::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
