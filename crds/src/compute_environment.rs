//! ComputeEnvironment (cluster-scoped, short name `ce`): a pool of nodes Barge may place jobs on —
//! the counterpart of AWS Batch CreateComputeEnvironment.
//!
//! A MANAGED environment describes the nodes Barge scales (`computeResources`: vCPU bounds,
//! instance types, allocation strategy, and exactly one node `provider`: `simulated`, `karpenter`
//! or `clusterAPI`); an UNMANAGED one picks existing nodes with a `nodeSelector`. The CE
//! controller and node-pool providers write `status`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::State;

/// Most instance types a compute environment may list.
pub const MAX_INSTANCE_TYPES: usize = 100;
/// Most catalog entries a simulated provider may declare.
pub const MAX_CATALOG_ENTRIES: usize = 100;
/// Default seconds an idle node waits before it is drained and removed.
pub const DEFAULT_SCALE_DOWN_DELAY_SECONDS: i32 = 300;
/// Most vCPUs `minvCpus`, `maxvCpus` and `desiredvCpus` may name: barge-core's pool planner
/// (`MAX_TARGET_VCPUS`) plans no more, and it is beyond what one Kubernetes cluster holds (at
/// most 5,000 nodes: under 500,000 vCPUs even at 96 vCPUs a node). A typo such as 100000000 is
/// refused by the API server instead of stalling the environment.
pub const MAX_VCPUS: i32 = 1_000_000;

/// `type` of a compute environment.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ComputeEnvironmentType {
    /// Barge scales the nodes through the provider.
    #[serde(rename = "MANAGED")]
    Managed,
    /// Existing nodes chosen by `nodeSelector`; Barge never scales them.
    #[serde(rename = "UNMANAGED")]
    Unmanaged,
}

/// `computeResources.type`: the capacity type. FARGATE kinds exist in AWS Batch but are refused.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ComputeResourceType {
    /// On-demand nodes.
    #[serde(rename = "EC2")]
    Ec2,
    /// Spot (interruptible) nodes.
    #[serde(rename = "SPOT")]
    Spot,
    /// Refused by the CRD: Kubernetes nodes are not Fargate tasks.
    #[serde(rename = "FARGATE")]
    Fargate,
    /// Refused by the CRD.
    #[serde(rename = "FARGATE_SPOT")]
    FargateSpot,
}

/// How instance types are chosen when scaling out (AWS Batch names).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum AllocationStrategy {
    /// The cheapest type that fits best; waits rather than using other types.
    #[serde(rename = "BEST_FIT")]
    BestFit,
    /// Best fit first, then other types.
    #[serde(rename = "BEST_FIT_PROGRESSIVE")]
    BestFitProgressive,
    /// Spot types least likely to be interrupted.
    #[serde(rename = "SPOT_CAPACITY_OPTIMIZED")]
    SpotCapacityOptimized,
    /// Spot types balancing price and interruption.
    #[serde(rename = "SPOT_PRICE_CAPACITY_OPTIMIZED")]
    SpotPriceCapacityOptimized,
}

/// Who binds a job's pods to nodes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum BindingMode {
    /// Barge places pods itself (`spec.nodeName`), bin-packing against free allocatable.
    Barge,
    /// Barge leaves pods to the kube-scheduler (required with Karpenter, which reacts to pending
    /// pods).
    KubeScheduler,
}

/// An instance type of the simulated provider's catalog.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceTypeSpec {
    /// Name, e.g. `c5.xlarge`; the part before the first `.` is its family.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = "^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
    )]
    pub name: String,
    /// vCPUs per node.
    #[schemars(range(min = 1))]
    pub v_cpus: i32,
    /// Memory per node in MiB.
    #[serde(rename = "memoryMiB")]
    #[schemars(range(min = 1))]
    pub memory_mib: i32,
    /// GPUs per node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub gpus: Option<i32>,
    /// Price per node-hour in US dollars, as a decimal string (e.g. "0.17").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+([.][0-9]+)?$')").message("price must be a decimal number of dollars per hour, e.g. \"0.17\""))]
    #[schemars(length(max = 32))]
    pub price: Option<String>,
}

/// Nodes Barge creates itself as Node objects, for the simulated kubelet or fake-node tools.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimulatedProvider {
    /// Instance types added to (or replacing, by name) the operator's built-in catalog.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_CATALOG_ENTRIES), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub catalog: Vec<InstanceTypeSpec>,
}

/// Reference to a Karpenter NodeClass (`karpenter.sh/v1` NodePool `nodeClassRef`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeClassRef {
    /// API group, e.g. `karpenter.k8s.aws`.
    #[schemars(length(min = 1, max = 253))]
    pub group: String,
    /// Kind, e.g. `EC2NodeClass`.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// Name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Barge owns one `karpenter.sh/v1` NodePool per compute environment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KarpenterProvider {
    /// The NodeClass the NodePool's nodes use.
    pub node_class_ref: NodeClassRef,
    /// Extra NodePool requirements (added to those Barge derives from instance types and the
    /// capacity type).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 30))]
    pub requirements: Vec<k8s_openapi::api::core::v1::NodeSelectorRequirement>,
}

/// A Cluster API MachineDeployment whose `replicas` Barge sets.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineDeploymentRef {
    /// The MachineDeployment's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Its namespace.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Instance type of its machines (a catalog name), used to size the deployment; when absent
    /// Barge reads the deployment's `capacity.cluster-autoscaler.kubernetes.io/*` annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub instance_type: Option<String>,
}

/// Barge scales Cluster API MachineDeployments.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterApiProvider {
    /// The MachineDeployments of this compute environment.
    #[schemars(length(min = 1, max = 20))]
    pub machine_deployments: Vec<MachineDeploymentRef>,
}

/// Where a managed compute environment's nodes come from: exactly one provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.simulated) ? 1 : 0) + (has(self.karpenter) ? 1 : 0) + (has(self.clusterAPI) ? 1 : 0) == 1").message("provider must name exactly one of simulated, karpenter or clusterAPI"))]
pub struct NodeProvider {
    /// Barge creates Node objects itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated: Option<SimulatedProvider>,
    /// Barge drives a Karpenter NodePool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub karpenter: Option<KarpenterProvider>,
    /// Barge scales Cluster API MachineDeployments.
    #[serde(
        default,
        rename = "clusterAPI",
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_api: Option<ClusterApiProvider>,
}

/// The nodes of a MANAGED compute environment (AWS `ComputeResource`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type != 'FARGATE' && self.type != 'FARGATE_SPOT'").message("FARGATE and FARGATE_SPOT compute environments are not supported: Barge runs jobs as pods on nodes; use EC2 (on-demand) or SPOT"))]
#[x_kube(validation = Rule::new("self.minvCpus <= self.maxvCpus").message("minvCpus must not exceed maxvCpus"))]
#[x_kube(validation = Rule::new("!has(self.desiredvCpus) || (self.minvCpus <= self.desiredvCpus && self.desiredvCpus <= self.maxvCpus)").message("desiredvCpus must lie between minvCpus and maxvCpus"))]
#[x_kube(validation = Rule::new("!has(self.allocationStrategy) || !self.allocationStrategy.startsWith('SPOT_') || self.type == 'SPOT'").message("SPOT_CAPACITY_OPTIMIZED and SPOT_PRICE_CAPACITY_OPTIMIZED are for SPOT compute resources"))]
#[x_kube(validation = Rule::new("!has(self.bidPercentage) || self.type == 'SPOT'").message("bidPercentage applies to SPOT compute resources only"))]
pub struct ComputeResources {
    /// EC2 (on-demand) or SPOT.
    #[serde(rename = "type")]
    pub r#type: ComputeResourceType,
    /// vCPUs kept even when idle (at most 1,000,000).
    #[serde(default)]
    #[schemars(range(min = 0, max = MAX_VCPUS))]
    pub minv_cpus: i32,
    /// Most vCPUs the environment may scale to (at most 1,000,000).
    #[schemars(range(min = 0, max = MAX_VCPUS))]
    pub maxv_cpus: i32,
    /// A floor Barge scales to now (between minvCpus and maxvCpus); Barge then manages it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_VCPUS))]
    pub desiredv_cpus: Option<i32>,
    /// Instance types: catalog names (`c5.xlarge`), families (`c5`), or `optimal` (the default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_INSTANCE_TYPES), inner(length(min = 1, max = 128)))]
    pub instance_types: Vec<String>,
    /// How instance types are chosen (default BEST_FIT; SPOT_CAPACITY_OPTIMIZED for SPOT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_strategy: Option<AllocationStrategy>,
    /// Highest spot price as a percentage of the on-demand price (SPOT only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub bid_percentage: Option<i32>,
    /// Labels put on the environment's nodes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = crate::common::label_map_rule("computeResources.tags"))]
    #[x_kube(validation = crate::common::reserved_label_prefix_rule("computeResources.tags"))]
    #[schemars(schema_with = "crate::common::label_map_schema")]
    pub tags: BTreeMap<String, String>,
    /// Where the nodes come from: exactly one of simulated, karpenter, clusterAPI.
    pub provider: NodeProvider,
    /// Seconds an idle node above minvCpus waits before it is cordoned, drained and removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub scale_down_delay_seconds: Option<i32>,
}

/// Spec of a ComputeEnvironment (AWS CreateComputeEnvironment; the name is `metadata.name`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "batch.barge.dev",
    version = "v1alpha1",
    kind = "ComputeEnvironment",
    shortname = "ce",
    category = "barge",
    status = "ComputeEnvironmentStatus",
    derive = "PartialEq",
    doc = "A pool of nodes Barge places jobs on (AWS Batch compute environment).",
    validation = crate::common::name_fits_label_value_rule("ComputeEnvironment", crate::consts::LABEL_COMPUTE_ENVIRONMENT),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "State", type_ = "string", json_path = ".spec.state"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.status"),
    printcolumn(
        name = "Desired vCPUs",
        type_ = "integer",
        json_path = ".status.desiredvCpus"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.statusReason",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type != 'MANAGED' || has(self.computeResources)").message("a MANAGED compute environment needs computeResources"))]
#[x_kube(validation = Rule::new("self.type != 'MANAGED' || !has(self.nodeSelector)").message("nodeSelector is for UNMANAGED compute environments; a MANAGED one labels its own nodes"))]
#[x_kube(validation = Rule::new("self.type != 'UNMANAGED' || has(self.nodeSelector)").message("an UNMANAGED compute environment needs a nodeSelector to pick its nodes"))]
#[x_kube(validation = Rule::new("self.type != 'UNMANAGED' || !has(self.computeResources)").message("computeResources is for MANAGED compute environments; an UNMANAGED one uses existing nodes chosen by nodeSelector"))]
#[x_kube(validation = Rule::new("!has(self.computeResources) || !has(self.computeResources.provider.karpenter) || !has(self.bindingMode) || self.bindingMode == 'KubeScheduler'").message("the karpenter provider needs bindingMode KubeScheduler: Karpenter provisions nodes for pods the kube-scheduler cannot place"))]
pub struct ComputeEnvironmentSpec {
    /// MANAGED or UNMANAGED; cannot change.
    #[serde(rename = "type")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("type cannot be changed"))]
    pub r#type: ComputeEnvironmentType,
    /// ENABLED (default) or DISABLED: a disabled environment takes no new placements; running
    /// jobs continue and a managed pool scales in to minvCpus once idle.
    #[serde(default)]
    pub state: State,
    /// The nodes of a MANAGED environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_resources: Option<ComputeResources>,
    /// Labels choosing the existing nodes of an UNMANAGED environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = crate::common::label_map_rule("nodeSelector entries"))]
    #[schemars(schema_with = "crate::common::node_selector_schema")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Extended resource name of the nodes' GPUs (default `nvidia.com/gpu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 317))]
    pub gpu_resource_name: Option<String>,
    /// Who binds pods to nodes: Barge (default) or KubeScheduler (the default, and the only
    /// choice, with the karpenter provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding_mode: Option<BindingMode>,
}

/// `status.status` of a compute environment (AWS `CEStatus`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum CeStatus {
    #[serde(rename = "CREATING")]
    Creating,
    #[serde(rename = "UPDATING")]
    Updating,
    #[serde(rename = "DELETING")]
    Deleting,
    #[serde(rename = "VALID")]
    Valid,
    #[serde(rename = "INVALID")]
    Invalid,
}

/// Most entries of `status.instanceTypes`: beyond it the types are left out (by name order).
pub const MAX_STATUS_INSTANCE_TYPES: usize = 256;

/// The nodes of one instance type of a compute environment, by lifecycle.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceTypeNodes {
    /// The instance type (the node's `node.kubernetes.io/instance-type` label; `unknown` for a
    /// node without one).
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// Ready and not draining: can run jobs now.
    #[schemars(range(min = 0))]
    pub ready: i32,
    /// Not Ready yet, not cordoned and not being deleted.
    #[schemars(range(min = 0))]
    pub booting: i32,
    /// Cordoned or being deleted (scaling in, or taken out of service).
    #[schemars(range(min = 0))]
    pub draining: i32,
}

/// Observed state of a compute environment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComputeEnvironmentStatus {
    /// CREATING, UPDATING, DELETING, VALID or INVALID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CeStatus>,
    /// Why the environment is in its status (e.g. what is invalid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// vCPUs the environment is scaled to now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desiredv_cpus: Option<i32>,
    /// vCPUs requested by the jobs placed on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocatedv_cpus: Option<i32>,
    /// Number of nodes per instance type, whatever their state (kept for compatibility; see
    /// `instanceTypes` for ready / booting / draining).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_counts: BTreeMap<String, i32>,
    /// Nodes per instance type by state: ready, booting, draining (by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_STATUS_INSTANCE_TYPES), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub instance_types: Vec<InstanceTypeNodes>,
    /// Ready etc.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::common::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl ComputeEnvironmentSpec {
    /// Who binds pods: explicit `bindingMode`, else KubeScheduler with Karpenter and Barge otherwise.
    pub fn effective_binding_mode(&self) -> BindingMode {
        match self.binding_mode {
            Some(mode) => mode,
            None if self
                .compute_resources
                .as_ref()
                .is_some_and(|cr| cr.provider.karpenter.is_some()) =>
            {
                BindingMode::KubeScheduler
            }
            None => BindingMode::Barge,
        }
    }

    /// The extended resource name of GPUs on this environment's nodes.
    pub fn effective_gpu_resource_name(&self) -> &str {
        self.gpu_resource_name
            .as_deref()
            .unwrap_or(crate::consts::DEFAULT_GPU_RESOURCE_NAME)
    }
}

impl ComputeResources {
    /// Seconds an idle node waits before removal.
    pub fn effective_scale_down_delay_seconds(&self) -> i32 {
        self.scale_down_delay_seconds
            .unwrap_or(DEFAULT_SCALE_DOWN_DELAY_SECONDS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(provider: NodeProvider, binding_mode: Option<BindingMode>) -> ComputeEnvironmentSpec {
        ComputeEnvironmentSpec {
            r#type: ComputeEnvironmentType::Managed,
            state: State::Enabled,
            compute_resources: Some(ComputeResources {
                r#type: ComputeResourceType::Ec2,
                minv_cpus: 0,
                maxv_cpus: 8,
                desiredv_cpus: None,
                instance_types: vec![],
                allocation_strategy: None,
                bid_percentage: None,
                tags: BTreeMap::new(),
                provider,
                scale_down_delay_seconds: None,
            }),
            node_selector: None,
            gpu_resource_name: None,
            binding_mode,
        }
    }

    #[test]
    fn binding_mode_defaults_to_the_kube_scheduler_with_karpenter_only() {
        let karpenter = NodeProvider {
            karpenter: Some(KarpenterProvider {
                node_class_ref: NodeClassRef {
                    group: "karpenter.k8s.aws".into(),
                    kind: "EC2NodeClass".into(),
                    name: "default".into(),
                },
                requirements: vec![],
            }),
            ..NodeProvider::default()
        };
        let simulated = NodeProvider {
            simulated: Some(SimulatedProvider::default()),
            ..NodeProvider::default()
        };
        assert_eq!(
            spec(karpenter, None).effective_binding_mode(),
            BindingMode::KubeScheduler
        );
        assert_eq!(
            spec(simulated.clone(), None).effective_binding_mode(),
            BindingMode::Barge
        );
        assert_eq!(
            spec(simulated.clone(), Some(BindingMode::KubeScheduler)).effective_binding_mode(),
            BindingMode::KubeScheduler
        );
        let ce = spec(simulated, None);
        assert_eq!(ce.effective_gpu_resource_name(), "nvidia.com/gpu");
        let resources = ce.compute_resources.as_ref().expect("managed");
        assert_eq!(
            resources.effective_scale_down_delay_seconds(),
            DEFAULT_SCALE_DOWN_DELAY_SECONDS
        );
    }
}
