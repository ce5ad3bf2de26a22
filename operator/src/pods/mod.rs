//! Pods of job attempts: rendering one attempt of a job (of one array child, or of one node of a
//! multi-node job) into its Pod, what a job asks for, the nodes of a multi-node job, and reading
//! a Pod back into barge-core's [`PodView`](barge_core::job::PodView). Everything but
//! [`release_pod`] is pure: no client, no clock.
//!
//! - [`render_pod`] (here): the Pod of an attempt (design §2). The pod is named deterministically
//!   (`<job>-<attempt>[-<index>|-node-<n>]`), owned by the Job, carries Barge's labels and the
//!   attempt-result finalizer, tolerates and selects its compute environment, and runs either
//!   one container `main` built from the AWS-shaped `containerProperties` (`container`) or the
//!   containers of the Kubernetes-shaped `podProperties` (`pod_properties`), with the
//!   `AWS_BATCH_*` variables and `Ref::` parameters of `environment`. A node of a multi-node job
//!   runs its node's container ([`NodeLayout`]) with the node variables, `hostname: node-<n>` and
//!   `subdomain: <service>`; the main node's pod records the gang's reserved Kubernetes nodes.
//! - [`node_layout`], [`gang_of`], [`node_service`] (`nodes`): which container each node of a
//!   multi-node job runs after `nodeOverrides`, the gang the scheduler places, and the headless
//!   Service that names every node.
//! - [`job_request`] (`request`): what one pod of a job asks for (millicpu, MiB, GPUs, one pod
//!   slot; a multi-node job's main node), as the scheduler counts it and as Kubernetes computes a
//!   pod's requests.
//! - [`pod_view`] (`read`): labels and status of a pod as the job state machine reads them,
//!   including whether its node was lost (the simulated API server's pod GC and a real
//!   cluster's both set a `DisruptionTarget` condition), and stopping a pod at its deadline.
//! - [`release_pod`] (`finalizer`): removing the attempt-result finalizer.

mod container;
mod environment;
mod finalizer;
#[cfg(test)]
mod fixtures;
mod nodes;
mod pod_properties;
mod read;
mod request;
mod unread;

pub use container::parse_user;
pub use environment::substitute_refs;
pub use finalizer::{release_pod, ReleaseError};
pub(crate) use nodes::definition_ranges;
pub use nodes::{
    gang_nodes_of, gang_of, node_layout, node_service, service_name, target_node_range, NodeLayout,
    NumNodesFrom, NODE_HOSTNAME_PREFIX,
};
pub use read::{
    active_deadline_at_ms, pod_view, stop_now_patch, CONDITION_DISRUPTION_TARGET,
    POD_REASON_NODE_LOST, POD_REASON_NODE_SHUTDOWN,
};
pub use request::job_request;
pub use unread::{create_pod, patch_pod};

use std::collections::BTreeMap;

use barge_core::index_set::IndexSet;
use barge_core::naming::{attempt_pod_name, node_pod_name};
use barge_crds::common::{is_label_key, is_label_value};
use barge_crds::consts::{
    ANNOTATION_GANG_NODES, ANNOTATION_SHARE_IDENTIFIER, API_VERSION, FINALIZER_ATTEMPT_RESULT,
    KIND_JOB, LABEL_ARRAY_INDEX, LABEL_ATTEMPT, LABEL_COMPUTE_ENVIRONMENT, LABEL_INSTANCE_TYPE,
    LABEL_JOB_DEFINITION, LABEL_JOB_DEFINITION_REVISION, LABEL_JOB_NAME, LABEL_JOB_QUEUE,
    LABEL_JOB_UID, LABEL_MANAGED_BY, LABEL_NODE_INDEX, MANAGED_BY_BARGE, TAINT_COMPUTE_ENVIRONMENT,
    TERMINATION_GRACE_PERIOD_SECONDS,
};
use barge_crds::{ComputeEnvironment, Job, JobDefinitionSpec};
use k8s_openapi::api::core::v1::{Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use self::container::container_pod_spec;
use self::environment::{batch_environment, merged_parameters};
use self::nodes::{gang_nodes_annotation, nodes_phrase, NodePlan};
use self::pod_properties::pod_properties_spec;

/// Effect of a compute environment's taint (the simulated node pool taints its nodes with it;
/// attempt pods tolerate it).
pub const TAINT_EFFECT_NO_SCHEDULE: &str = "NoSchedule";

/// `spec.restartPolicy` of every attempt pod: a failed attempt is retried by Barge (as a new
/// pod), never restarted in place by the kubelet.
const RESTART_POLICY_NEVER: &str = "Never";
/// Toleration operator matching the taint's value exactly.
const TOLERATION_OPERATOR_EQUAL: &str = "Equal";
/// Karpenter's pod annotation that blocks voluntary disruption (consolidation, drift, expiry)
/// of the node the pod runs on, as AWS Batch never scales in under a running job. Put on the
/// pods of compute environments with the `karpenter` provider.
pub const ANNOTATION_KARPENTER_DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";

/// One attempt of a job (or of one array child) to render.
pub struct AttemptPod<'a> {
    /// The job; `metadata.name`, `namespace` and `uid` must be set.
    pub job: &'a Job,
    /// The JobDefinition the job resolved, and its revision.
    pub definition_name: &'a str,
    pub definition_revision: i32,
    /// The spec of that revision.
    pub definition: &'a JobDefinitionSpec,
    /// The queue the job was admitted to.
    pub queue: &'a str,
    /// The compute environment the attempt is placed on.
    pub compute_environment: &'a ComputeEnvironment,
    /// Some: Barge binds the pod (`spec.nodeName`); None: the kube-scheduler binds it.
    pub node_name: Option<&'a str>,
    /// 1-based.
    pub attempt: u32,
    /// The array child (array jobs only) and the array's size.
    pub array_index: Option<u32>,
    pub array_size: Option<u32>,
    /// Multi-node jobs: the node this pod runs (None for single jobs and array children).
    pub node: Option<NodePod<'a>>,
}

/// What the pod of one node of a multi-node job needs beyond a single job's.
#[derive(Clone, Copy, Debug)]
pub struct NodePod<'a> {
    /// The node index (0-based).
    pub index: u32,
    /// The main node's pod IP (`AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS`); None for the
    /// main node itself.
    pub main_pod_ip: Option<&'a str>,
    /// The main node's pod only: the Kubernetes node reserved for each node of the gang, in
    /// node-index order (the `batch.barge.dev/gang-nodes` annotation).
    pub gang_nodes: Option<&'a [String]>,
}

/// Why a job's attempt cannot be turned into a Pod. Every variant is permanent: the job fails
/// with the message as its reason.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RenderError {
    /// A `targetNodes` (of `nodeProperties.nodeRangeProperties` or
    /// `nodeOverrides.nodePropertyOverrides`) that is not a range of the job's nodes.
    #[error("{field} {target:?} {problem}")]
    BadTargetNodes {
        field: String,
        target: String,
        problem: String,
    },
    /// Nodes no node range of the definition covers.
    #[error("{} not covered by any nodeProperties.nodeRangeProperties[].targetNodes (numNodes {num_nodes} from {from})", nodes_phrase(.nodes))]
    UncoveredNodes {
        nodes: IndexSet,
        num_nodes: u32,
        from: NumNodesFrom,
    },
    /// A `numNodes` outside 1–1,000.
    #[error("{from} {num_nodes} must be from 1 to 1000")]
    BadNumNodes { num_nodes: i64, from: NumNodesFrom },
    /// A main node that is not one of the job's nodes.
    #[error("nodeProperties.mainNode {main_node} must be a node index below numNodes {num_nodes} (from {from})")]
    BadMainNode {
        main_node: i64,
        num_nodes: u32,
        from: NumNodesFrom,
    },
    /// A job with `arrayProperties` of a multi-node definition.
    #[error(
        "a multi-node job definition cannot be submitted as an array job: remove arrayProperties"
    )]
    MultiNodeArray,
    /// A job-level `containerOverrides` on a multi-node job (AWS: use `nodeOverrides`).
    #[error("containerOverrides does not apply to a multi-node job: override the nodes' containers in nodeOverrides.nodePropertyOverrides[].containerOverrides")]
    MultiNodeContainerOverrides,
    /// `nodeOverrides` on a job whose definition is not multi-node.
    #[error("nodeOverrides applies only to multi-node jobs, and the job definition has no nodeProperties: remove nodeOverrides (use containerOverrides)")]
    NodeOverridesWithoutNodes,
    /// The nodes of a job whose definition is not multi-node.
    #[error("the job definition has no nodeProperties: the job has no nodes")]
    NotMultiNode,
    /// A pod of a multi-node job rendered without its node.
    #[error("the pod of a multi-node job must be rendered for one of its nodes")]
    NodeIndexMissing,
    /// A node index the job does not have.
    #[error("node {index} is not a node of the job (numNodes {num_nodes})")]
    NodeIndexOutOfRange { index: u32, num_nodes: u32 },
    /// A node other than the main one rendered without the main node's address.
    #[error("node {index} needs the main node's IP address (AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS): its pod is created once the main node runs")]
    MainNodeAddressMissing { index: u32 },
    /// The definition has neither `containerProperties` nor `podProperties`.
    #[error("the job definition has neither containerProperties nor podProperties")]
    NoContainer,
    /// `podProperties` lists no container.
    #[error("podProperties lists no containers")]
    NoPodContainers,
    /// The job object lacks a field the pod needs (name, namespace, uid).
    #[error("the job has no metadata.{0}")]
    MissingJobMetadata(&'static str),
    /// A resource amount that is not a quantity.
    #[error("{field} {value:?} is not a valid amount: {problem}")]
    BadQuantity {
        field: String,
        value: String,
        problem: String,
    },
    /// The compute environment object has no name.
    #[error("the compute environment has no metadata.name")]
    UnnamedComputeEnvironment,
    /// A `user` Kubernetes cannot run as.
    #[error("{0}")]
    BadUser(String),
    /// A secret whose `valueFrom` is not `<secret-name>:<key>`.
    #[error("secret {name}: valueFrom {value_from:?} must be <secret-name>:<key>, a key of a Secret in the job's namespace")]
    BadSecret { name: String, value_from: String },
    /// A name that must become a label value (at most 63 characters) is not one.
    #[error("{what} {value:?} cannot be a label value of the job's pods (at most 63 letters, digits, '-', '_' or '.')")]
    BadLabelValue { what: &'static str, value: String },
    /// A container volume uses a name Barge reserves for its own volumes.
    #[error("volume name {0:?} is reserved by Barge")]
    ReservedVolumeName(String),
}

/// The job's name, namespace and uid (a pod or Service of the job needs all three).
fn job_identity(job: &Job) -> Result<(&str, &str, &str), RenderError> {
    let name = job
        .metadata
        .name
        .as_deref()
        .ok_or(RenderError::MissingJobMetadata("name"))?;
    let namespace = job
        .metadata
        .namespace
        .as_deref()
        .ok_or(RenderError::MissingJobMetadata("namespace"))?;
    let uid = job
        .metadata
        .uid
        .as_deref()
        .ok_or(RenderError::MissingJobMetadata("uid"))?;
    Ok((name, namespace, uid))
}

/// The controller owner reference of the objects of a job (its pods, its Service): garbage
/// collected with the job, and blocking its foreground deletion.
fn job_owner_reference(job_name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: API_VERSION.to_string(),
        kind: KIND_JOB.to_string(),
        name: job_name.to_string(),
        uid: uid.to_string(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The Pod of one attempt. Deterministic: the same input gives the same Pod.
pub fn render_pod(input: &AttemptPod) -> Result<Pod, RenderError> {
    let job = input.job;
    let definition = input.definition;
    // A node of a multi-node job: its index, the plan of the job's nodes, its container.
    let node = match (&definition.node_properties, input.node) {
        (Some(_), Some(node)) => {
            let plan = NodePlan::new(job, definition)?;
            if node.index >= plan.num_nodes {
                return Err(RenderError::NodeIndexOutOfRange {
                    index: node.index,
                    num_nodes: plan.num_nodes,
                });
            }
            if node.index != plan.main_node && node.main_pod_ip.is_none() {
                return Err(RenderError::MainNodeAddressMissing { index: node.index });
            }
            let container = plan.container(node.index);
            Some((node, plan, container))
        }
        (Some(_), None) => return Err(RenderError::NodeIndexMissing),
        (None, Some(_)) => return Err(RenderError::NotMultiNode),
        (None, None) if job.spec.node_overrides.is_some() => {
            return Err(RenderError::NodeOverridesWithoutNodes)
        }
        (None, None) => None,
    };
    let (job_name, namespace, uid) = job_identity(job)?;
    let ce_name = input
        .compute_environment
        .metadata
        .name
        .as_deref()
        .filter(|name| !name.is_empty())
        .ok_or(RenderError::UnnamedComputeEnvironment)?;

    let batch_env = batch_environment(
        input,
        uid,
        ce_name,
        node.as_ref()
            .map(|(_, plan, _)| (plan.num_nodes, plan.main_node)),
    );
    let parameters = merged_parameters(definition, job);
    let overrides = job.spec.container_overrides.as_ref();
    let gpu_resource_name = input.compute_environment.spec.effective_gpu_resource_name();

    let mut spec = if let Some((node, _, container)) = &node {
        // The plan applied the node's overrides; a job-level containerOverrides is refused.
        let mut spec =
            container_pod_spec(container, None, &parameters, &batch_env, gpu_resource_name)?;
        spec.hostname = Some(format!("{NODE_HOSTNAME_PREFIX}{}", node.index));
        spec.subdomain = Some(service_name(job_name));
        spec
    } else if let Some(props) = &definition.container_properties {
        container_pod_spec(props, overrides, &parameters, &batch_env, gpu_resource_name)?
    } else if let Some(props) = &definition.pod_properties {
        pod_properties_spec(props, overrides, &parameters, &batch_env)?
    } else {
        return Err(RenderError::NoContainer);
    };

    spec.restart_policy = Some(RESTART_POLICY_NEVER.to_string());
    spec.node_name = input.node_name.map(str::to_string);
    spec.termination_grace_period_seconds = Some(TERMINATION_GRACE_PERIOD_SECONDS);
    spec.tolerations = Some(vec![Toleration {
        key: Some(TAINT_COMPUTE_ENVIRONMENT.to_string()),
        operator: Some(TOLERATION_OPERATOR_EQUAL.to_string()),
        value: Some(ce_name.to_string()),
        effect: Some(TAINT_EFFECT_NO_SCHEDULE.to_string()),
        toleration_seconds: None,
    }]);
    let mut node_selector =
        BTreeMap::from([(LABEL_COMPUTE_ENVIRONMENT.to_string(), ce_name.to_string())]);
    // Unbound (`bindingMode: KubeScheduler`): the kube-scheduler places the pod, so an
    // instance type the job asks for (a single job's `containerOverrides.instanceType`, a node
    // range's `instanceType`) is a selector too (Barge honours it itself when it binds).
    if input.node_name.is_none() {
        let instance_type = match &node {
            Some((_, _, container)) => container.instance_type.as_deref(),
            None => overrides.and_then(|o| o.instance_type.as_deref()),
        };
        if let Some(instance_type) = instance_type {
            node_selector.insert(LABEL_INSTANCE_TYPE.to_string(), instance_type.to_string());
        }
    }
    spec.node_selector = Some(node_selector);

    let name = match &node {
        Some((node, _, _)) => node_pod_name(job_name, input.attempt, node.index),
        None => attempt_pod_name(job_name, input.attempt, input.array_index),
    };
    let mut annotations = pod_annotations(input.compute_environment, definition, job);
    if let Some(gang_nodes) = node
        .as_ref()
        .filter(|(node, plan, _)| node.index == plan.main_node)
        .and_then(|(node, _, _)| node.gang_nodes)
    {
        annotations.get_or_insert_with(BTreeMap::new).insert(
            ANNOTATION_GANG_NODES.to_string(),
            gang_nodes_annotation(gang_nodes),
        );
    }
    let metadata = ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_string()),
        labels: Some(pod_labels(input, job_name, uid, ce_name)?),
        annotations,
        owner_references: Some(vec![job_owner_reference(job_name, uid)]),
        finalizers: Some(vec![FINALIZER_ATTEMPT_RESULT.to_string()]),
        ..ObjectMeta::default()
    };
    Ok(Pod {
        metadata,
        spec: Some(spec),
        status: None,
    })
}

/// The pod's labels; every value is checked, so that a long queue or compute environment name
/// fails the job with a reason instead of a refused pod creation.
fn pod_labels(
    input: &AttemptPod,
    job_name: &str,
    uid: &str,
    ce_name: &str,
) -> Result<BTreeMap<String, String>, RenderError> {
    let mut labels = BTreeMap::new();
    let mut put = |key: &str, what: &'static str, value: &str| {
        if !is_label_value(value) {
            return Err(RenderError::BadLabelValue {
                what,
                value: value.to_string(),
            });
        }
        labels.insert(key.to_string(), value.to_string());
        Ok(())
    };
    put(LABEL_MANAGED_BY, "managed-by", MANAGED_BY_BARGE)?;
    put(LABEL_JOB_NAME, "job name", job_name)?;
    put(LABEL_JOB_UID, "job uid", uid)?;
    put(LABEL_ATTEMPT, "attempt", &input.attempt.to_string())?;
    if let Some(index) = input.array_index {
        put(LABEL_ARRAY_INDEX, "array index", &index.to_string())?;
    }
    if let Some(node) = &input.node {
        put(LABEL_NODE_INDEX, "node index", &node.index.to_string())?;
    }
    put(LABEL_JOB_QUEUE, "job queue", input.queue)?;
    put(LABEL_COMPUTE_ENVIRONMENT, "compute environment", ce_name)?;
    put(
        LABEL_JOB_DEFINITION,
        "job definition",
        input.definition_name,
    )?;
    put(
        LABEL_JOB_DEFINITION_REVISION,
        "job definition revision",
        &input.definition_revision.to_string(),
    )?;
    Ok(labels)
}

/// With `propagateTags` (the job's, else the definition's), the definition's tags overridden by
/// the job's, as pod annotations. Tags whose keys are not valid annotation keys (AWS allows
/// spaces, Kubernetes does not) are left out rather than failing the job.
/// The pod's annotations: propagated tags, the job's `shareIdentifier`
/// ([`ANNOTATION_SHARE_IDENTIFIER`], fair-share usage is counted from it), and on a Karpenter
/// compute environment [`ANNOTATION_KARPENTER_DO_NOT_DISRUPT`].
fn pod_annotations(
    ce: &ComputeEnvironment,
    definition: &JobDefinitionSpec,
    job: &Job,
) -> Option<BTreeMap<String, String>> {
    let mut annotations = propagated_tags(definition, job).unwrap_or_default();
    if let Some(share) = &job.spec.share_identifier {
        annotations.insert(ANNOTATION_SHARE_IDENTIFIER.to_string(), share.clone());
    }
    let karpenter = ce
        .spec
        .compute_resources
        .as_ref()
        .is_some_and(|r| r.provider.karpenter.is_some());
    if karpenter {
        annotations.insert(
            ANNOTATION_KARPENTER_DO_NOT_DISRUPT.to_string(),
            "true".to_string(),
        );
    }
    (!annotations.is_empty()).then_some(annotations)
}

fn propagated_tags(definition: &JobDefinitionSpec, job: &Job) -> Option<BTreeMap<String, String>> {
    let propagate = job
        .spec
        .propagate_tags
        .or(definition.propagate_tags)
        .unwrap_or(false);
    if !propagate {
        return None;
    }
    let tags: BTreeMap<String, String> = definition
        .tags
        .iter()
        .chain(&job.spec.tags)
        .filter(|(key, _)| is_label_key(key))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!tags.is_empty()).then_some(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::fixtures::*;
    use crate::test_support::aws_job_definition;
    use barge_core::job::PodPhase;
    use barge_crds::consts::{
        DEFAULT_GPU_RESOURCE_NAME, ENV_CE_NAME, ENV_JOB_ATTEMPT, ENV_JOB_ID,
        ENV_JOB_MAIN_NODE_INDEX, ENV_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS, ENV_JOB_NODE_INDEX,
        ENV_JOB_NUM_NODES, ENV_JQ_NAME, MAIN_CONTAINER_NAME,
    };
    use serde_json::json;

    #[test]
    fn every_aws_fixture_renders() {
        for file in crate::test_support::CONTAINER_JOB_DEFINITION_FIXTURES {
            let def = aws_job_definition(file);
            let pod = Render::new(def.clone(), job(json!({})))
                .render()
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            let container = main_container(&pod);
            assert_eq!(container.name, MAIN_CONTAINER_NAME, "{file}");
            assert_eq!(
                container.image.as_deref(),
                def.container_properties.as_ref().map(|c| c.image.as_str()),
                "{file}"
            );
            // The pod serializes (what the API server receives).
            serde_json::to_value(&pod).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        // The multi-node fixture renders one pod per node.
        let multinode = aws_job_definition("jobdef-multinode.json");
        for index in 0..6 {
            let ip = (index > 0).then_some("10.0.0.7");
            let pod = Render::new(multinode.clone(), job(json!({})))
                .node(index, ip)
                .pod();
            assert_eq!(
                pod.metadata.name,
                Some(format!("render-1-node-{index}")),
                "node {index}"
            );
            serde_json::to_value(&pod).expect("the pod serializes");
        }
    }

    /// The pod of node `index` of the AWS multi-node fixture (6 nodes, main node 0).
    fn node_pod(index: u32) -> Pod {
        let ip = (index != 0).then_some("10.0.0.7");
        Render::new(multinode_definition(), job(json!({})))
            .node(index, ip)
            .gang_nodes(&["n0", "n1", "n2", "n3", "n4", "n5"])
            .pod()
    }

    #[test]
    fn node_pods_run_their_nodes_container_with_the_node_variables() {
        let main = node_pod(0);
        let container = main_container(&main);
        assert_eq!(container.image.as_deref(), Some("my_repo/mpi-main"));
        assert_eq!(
            container.command,
            Some(vec!["/opt/run-main.sh".to_string()])
        );
        let env = env_pairs(container);
        let tail: Vec<(String, Option<String>)> = env[env.len() - 7..].to_vec();
        let var = |name: &str, value: &str| (name.to_string(), Some(value.to_string()));
        assert_eq!(
            tail,
            vec![
                var(ENV_JOB_ID, &format!("{UID}#0")),
                var(ENV_JOB_ATTEMPT, "1"),
                var(ENV_JQ_NAME, "high-priority"),
                var(ENV_CE_NAME, "c4ondemand"),
                var(ENV_JOB_NODE_INDEX, "0"),
                var(ENV_JOB_NUM_NODES, "6"),
                var(ENV_JOB_MAIN_NODE_INDEX, "0"),
            ]
        );
        assert!(
            env_value(container, ENV_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS).is_none(),
            "the main node has no main node address"
        );

        let child = node_pod(4);
        let container = main_container(&child);
        assert_eq!(container.image.as_deref(), Some("my_repo/mpi-worker"));
        assert_eq!(env_value(container, ENV_JOB_ID), Some(format!("{UID}#4")));
        assert_eq!(
            env_value(container, ENV_JOB_NODE_INDEX).as_deref(),
            Some("4")
        );
        assert_eq!(
            env_value(container, ENV_JOB_MAIN_NODE_INDEX).as_deref(),
            Some("0")
        );
        assert_eq!(
            env_value(container, ENV_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS).as_deref(),
            Some("10.0.0.7")
        );
    }

    #[test]
    fn node_pods_are_named_labelled_and_addressable_by_dns() {
        for (index, pod) in [(0, node_pod(0)), (3, node_pod(3))] {
            assert_eq!(pod.metadata.name, Some(format!("render-1-node-{index}")));
            let labels = pod.metadata.labels.as_ref().expect("labels");
            assert_eq!(labels.get(LABEL_NODE_INDEX), Some(&index.to_string()));
            assert_eq!(labels.get(LABEL_JOB_UID).map(String::as_str), Some(UID));
            let spec = pod.spec.as_ref().expect("spec");
            assert_eq!(spec.hostname, Some(format!("node-{index}")));
            assert_eq!(spec.subdomain.as_deref(), Some("render-nodes"));
            let view = pod_view(&pod, true).expect("a Barge pod");
            assert_eq!((view.attempt, view.node_index), (1, Some(index)));
        }
        // Only the main node's pod records the gang's reserved nodes.
        assert_eq!(
            node_pod(0)
                .metadata
                .annotations
                .expect("annotations")
                .get(ANNOTATION_GANG_NODES)
                .map(String::as_str),
            Some("n0,n1,n2,n3,n4,n5")
        );
        assert_eq!(node_pod(3).metadata.annotations, None);
        // Single jobs have neither.
        let single =
            Render::new(aws_job_definition("jobdef-spot-retry.json"), job(json!({}))).pod();
        let spec = single.spec.expect("spec");
        assert_eq!((spec.hostname, spec.subdomain), (None, None));
    }

    #[test]
    fn node_pods_take_their_gpus_and_instance_type_from_their_node_range() {
        let def = definition(json!({
            "type": "multinode",
            "nodeProperties": {"numNodes": 3, "mainNode": 0, "nodeRangeProperties": [
                {"targetNodes": "0", "container": {"image": "main", "vcpus": 2, "memory": 1024}},
                {"targetNodes": "1:", "container": {"image": "trainer", "instanceType": "p3.8xlarge",
                    "resourceRequirements": [{"type": "VCPU", "value": "8"}, {"type": "MEMORY", "value": "4096"}, {"type": "GPU", "value": "4"}]}},
            ]},
        }));
        let trainer = Render::new(def.clone(), job(json!({})))
            .ce(compute_environment(Some("amd.com/gpu")))
            .node(2, Some("10.0.0.7"))
            .pod();
        for which in ["requests", "limits"] {
            assert_eq!(
                quantities(&trainer, which),
                BTreeMap::from([
                    ("amd.com/gpu".to_string(), "4".to_string()),
                    ("cpu".to_string(), "8".to_string()),
                    ("memory".to_string(), "4096Mi".to_string()),
                ]),
                "{which}"
            );
        }
        let main = Render::new(def.clone(), job(json!({}))).node(0, None).pod();
        assert!(!quantities(&main, "limits").contains_key("amd.com/gpu"));
        assert!(!quantities(&main, "limits").contains_key(DEFAULT_GPU_RESOURCE_NAME));
        // Left to the kube-scheduler, the range's instance type becomes a node selector.
        let unbound = Render::new(def.clone(), job(json!({})))
            .node(1, Some("10.0.0.7"))
            .unbound()
            .pod();
        assert_eq!(
            unbound
                .spec
                .expect("spec")
                .node_selector
                .expect("selector")
                .get(LABEL_INSTANCE_TYPE)
                .map(String::as_str),
            Some("p3.8xlarge")
        );
        let bound = Render::new(def, job(json!({})))
            .node(1, Some("10.0.0.7"))
            .pod();
        assert_eq!(
            bound
                .spec
                .expect("spec")
                .node_selector
                .expect("selector")
                .len(),
            1
        );
    }

    #[test]
    fn node_pods_need_a_node_of_the_job_and_the_main_nodes_address() {
        let def = multinode_definition();
        assert_eq!(
            Render::new(def.clone(), job(json!({}))).render(),
            Err(RenderError::NodeIndexMissing)
        );
        assert_eq!(
            Render::new(def.clone(), job(json!({})))
                .node(6, Some("10.0.0.7"))
                .render(),
            Err(RenderError::NodeIndexOutOfRange {
                index: 6,
                num_nodes: 6
            })
        );
        assert_eq!(
            Render::new(def.clone(), job(json!({})))
                .node(2, None)
                .render(),
            Err(RenderError::MainNodeAddressMissing { index: 2 })
        );
        assert_eq!(
            Render::new(aws_job_definition("jobdef-spot-retry.json"), job(json!({})))
                .node(0, None)
                .render(),
            Err(RenderError::NotMultiNode)
        );
        // A layout error is the render's error.
        assert_eq!(
            Render::new(def, job(json!({"nodeOverrides": {"numNodes": 0}})))
                .node(0, None)
                .render(),
            Err(RenderError::BadNumNodes {
                num_nodes: 0,
                from: NumNodesFrom::NodeOverrides
            })
        );
    }

    #[test]
    fn karpenter_pods_ask_karpenter_not_to_disrupt_their_node() {
        let def = definition(json!({
            "type": "container",
            "containerProperties": {"image": "busybox"},
        }));
        let mut ce = compute_environment(None);
        let resources = ce.spec.compute_resources.as_mut().expect("managed");
        resources.provider = serde_json::from_value(json!({"karpenter": {
            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"}
        }}))
        .expect("provider");
        let pod = Render::new(def.clone(), job(json!({})))
            .ce(ce)
            .unbound()
            .pod();
        assert_eq!(
            pod.metadata.annotations,
            Some(BTreeMap::from([(
                ANNOTATION_KARPENTER_DO_NOT_DISRUPT.to_string(),
                "true".to_string()
            )]))
        );
        // Other providers' pods carry no such annotation.
        assert_eq!(
            Render::new(def, job(json!({}))).pod().metadata.annotations,
            None
        );
    }

    #[test]
    fn propagated_tags_become_annotations_job_tags_winning() {
        let def = definition(json!({
            "type": "container",
            "propagateTags": true,
            "tags": {"team": "render", "sim.barge.dev/duration-seconds": "5", "Cost Center": "42"},
            "containerProperties": {"image": "busybox"},
        }));
        let pod = Render::new(
            def.clone(),
            job(json!({"tags": {"team": "vfx", "sim.barge.dev/exit-code": "3"}})),
        )
        .pod();
        let annotations = pod.metadata.annotations.expect("annotations");
        assert_eq!(
            annotations,
            BTreeMap::from([
                (
                    "sim.barge.dev/duration-seconds".to_string(),
                    "5".to_string()
                ),
                ("sim.barge.dev/exit-code".to_string(), "3".to_string()),
                ("team".to_string(), "vfx".to_string()),
            ]),
            "job tags win; keys that are not annotation keys are left out"
        );
        // The job's propagateTags: false wins over the definition's true.
        let pod = Render::new(
            def,
            job(json!({"propagateTags": false, "tags": {"a": "b"}})),
        )
        .pod();
        assert_eq!(pod.metadata.annotations, None);
    }

    #[test]
    fn metadata_names_labels_owner_finalizer_and_placement() {
        let def = aws_job_definition("jobdef-spot-retry.json");
        let render = Render::new(def, job(json!({}))).attempt(3);
        let pod = render.pod();
        assert_eq!(pod, render.pod(), "deterministic");
        assert_eq!(
            serde_json::to_string(&pod).expect("json"),
            serde_json::to_string(&render.pod()).expect("json")
        );
        assert_eq!(pod.metadata.name.as_deref(), Some("render-3"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("team-a"));
        let labels = pod.metadata.labels.clone().expect("labels");
        assert_eq!(
            labels,
            BTreeMap::from([
                (LABEL_MANAGED_BY.to_string(), MANAGED_BY_BARGE.to_string()),
                (LABEL_JOB_NAME.to_string(), "render".to_string()),
                (LABEL_JOB_UID.to_string(), UID.to_string()),
                (LABEL_ATTEMPT.to_string(), "3".to_string()),
                (LABEL_JOB_QUEUE.to_string(), "high-priority".to_string()),
                (
                    LABEL_COMPUTE_ENVIRONMENT.to_string(),
                    "c4ondemand".to_string()
                ),
                (LABEL_JOB_DEFINITION.to_string(), "render".to_string()),
                (LABEL_JOB_DEFINITION_REVISION.to_string(), "3".to_string()),
            ])
        );
        let owner = &pod.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.kind.as_str(),
                owner.name.as_str(),
                owner.uid.as_str()
            ),
            (API_VERSION, KIND_JOB, "render", UID)
        );
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
        assert_eq!(
            pod.metadata.finalizers,
            Some(vec![FINALIZER_ATTEMPT_RESULT.to_string()])
        );
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(
            spec.tolerations,
            Some(vec![Toleration {
                key: Some(TAINT_COMPUTE_ENVIRONMENT.to_string()),
                operator: Some("Equal".to_string()),
                value: Some("c4ondemand".to_string()),
                effect: Some("NoSchedule".to_string()),
                toleration_seconds: None,
            }])
        );
        assert_eq!(
            spec.node_selector,
            Some(BTreeMap::from([(
                LABEL_COMPUTE_ENVIRONMENT.to_string(),
                "c4ondemand".to_string()
            )]))
        );
        assert_eq!(spec.automount_service_account_token, None);
        let unbound = Render::new(aws_job_definition("jobdef-spot-retry.json"), job(json!({})))
            .unbound()
            .pod();
        assert_eq!(unbound.spec.expect("spec").node_name, None);
    }

    #[test]
    fn an_unbound_pod_selects_and_tolerates_its_environment_and_any_instance_type_asked() {
        let spec = |overrides: serde_json::Value, bound: bool| {
            let render = Render::new(
                aws_job_definition("jobdef-spot-retry.json"),
                job(json!({"containerOverrides": overrides})),
            );
            let render = if bound { render } else { render.unbound() };
            render.pod().spec.expect("spec")
        };
        let unbound = spec(json!({}), false);
        assert_eq!(unbound.node_name, None);
        assert_eq!(
            unbound.node_selector,
            Some(BTreeMap::from([(
                LABEL_COMPUTE_ENVIRONMENT.to_string(),
                "c4ondemand".to_string()
            )]))
        );
        let toleration = &unbound.tolerations.expect("tolerations")[0];
        assert_eq!(
            (toleration.key.as_deref(), toleration.value.as_deref()),
            (Some(TAINT_COMPUTE_ENVIRONMENT), Some("c4ondemand"))
        );
        let typed = spec(json!({"instanceType": "c5.xlarge"}), false);
        assert_eq!(
            typed
                .node_selector
                .expect("selector")
                .get(LABEL_INSTANCE_TYPE)
                .map(String::as_str),
            Some("c5.xlarge")
        );
        // Bound by Barge: the node was chosen by type already; no extra selector.
        let bound = spec(json!({"instanceType": "c5.xlarge"}), true);
        assert_eq!(bound.node_selector.expect("selector").len(), 1);
    }

    #[test]
    fn names_that_cannot_be_label_values_fail_the_render() {
        let long = "q".repeat(70);
        let result = Render::new(aws_job_definition("jobdef-spot-retry.json"), job(json!({})))
            .queue(&long)
            .render();
        assert_eq!(
            result,
            Err(RenderError::BadLabelValue {
                what: "job queue",
                value: long
            })
        );
        let mut unnamed = compute_environment(None);
        unnamed.metadata.name = None;
        assert_eq!(
            Render::new(aws_job_definition("jobdef-spot-retry.json"), job(json!({})))
                .ce(unnamed)
                .render(),
            Err(RenderError::UnnamedComputeEnvironment)
        );
        let mut nameless = job(json!({}));
        nameless.metadata.uid = None;
        assert_eq!(
            Render::new(aws_job_definition("jobdef-spot-retry.json"), nameless).render(),
            Err(RenderError::MissingJobMetadata("uid"))
        );
    }

    #[test]
    fn rendered_pods_read_back_as_their_attempt() {
        let pod = Render::new(
            aws_job_definition("jobdef-spot-retry.json"),
            job(json!({"arrayProperties": {"size": 10}})),
        )
        .attempt(4)
        .array_child(9, 10)
        .pod();
        let view = pod_view(&pod, true).expect("a Barge pod");
        assert_eq!((view.attempt, view.array_index), (4, Some(9)));
        assert_eq!(view.name, "render-4-9");
        assert_eq!(view.phase, PodPhase::Pending);
        assert!(view.has_finalizer);
        assert!(!view.node_lost);
    }
}
