//! Test fixtures of pod rendering: jobs, definitions and compute environments from JSON, and
//! the chainable [`Render`] builder of render inputs.

use std::collections::BTreeMap;

use barge_crds::consts::{API_VERSION, KIND_JOB};
use barge_crds::{ComputeEnvironment, Job, JobDefinitionSpec};
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::json;

use crate::pods::{render_pod, AttemptPod, NodePod, RenderError};

pub(super) const UID: &str = "5f0c7a2e-1111-4a4a-9b9b-000000000001";

pub(super) fn job(spec: serde_json::Value) -> Job {
    let mut spec = spec;
    let object = spec.as_object_mut().expect("job spec is an object");
    object
        .entry("jobQueue")
        .or_insert_with(|| json!("high-priority"));
    object
        .entry("jobDefinition")
        .or_insert_with(|| json!("render"));
    serde_json::from_value(json!({
        "apiVersion": API_VERSION,
        "kind": KIND_JOB,
        "metadata": {"name": "render", "namespace": "team-a", "uid": UID},
        "spec": spec,
    }))
    .expect("a valid Job")
}

pub(super) fn compute_environment(gpu_resource_name: Option<&str>) -> ComputeEnvironment {
    let mut spec = json!({
        "type": "MANAGED",
        "computeResources": {
            "type": "EC2", "minvCpus": 0, "maxvCpus": 64,
            "provider": {"simulated": {}},
        },
    });
    if let Some(name) = gpu_resource_name {
        spec["gpuResourceName"] = json!(name);
    }
    serde_json::from_value(json!({
        "apiVersion": API_VERSION,
        "kind": "ComputeEnvironment",
        "metadata": {"name": "c4ondemand"},
        "spec": spec,
    }))
    .expect("a valid ComputeEnvironment")
}

pub(super) fn definition(spec: serde_json::Value) -> JobDefinitionSpec {
    serde_json::from_value(spec).expect("a valid JobDefinitionSpec")
}

/// Builder of render inputs: attempt 1 of a single job, bound to node-1.
pub(super) struct Render {
    pub(super) job: Job,
    pub(super) definition: JobDefinitionSpec,
    pub(super) ce: ComputeEnvironment,
    pub(super) queue: String,
    pub(super) node_name: Option<&'static str>,
    pub(super) attempt: u32,
    pub(super) array: Option<(u32, u32)>,
    /// A node of a multi-node job: its index, the main node's IP, the gang's nodes.
    pub(super) node: Option<(u32, Option<String>, Option<Vec<String>>)>,
}

impl Render {
    pub(super) fn new(definition: JobDefinitionSpec, job: Job) -> Self {
        Render {
            job,
            definition,
            ce: compute_environment(None),
            queue: "high-priority".into(),
            node_name: Some("node-1"),
            attempt: 1,
            array: None,
            node: None,
        }
    }

    /// Node `index` of a multi-node job (`main_pod_ip`: for the other nodes than the main one).
    pub(super) fn node(mut self, index: u32, main_pod_ip: Option<&str>) -> Self {
        self.node = Some((index, main_pod_ip.map(str::to_string), None));
        self
    }

    /// The main node's pod with the gang's reserved Kubernetes nodes.
    pub(super) fn gang_nodes(mut self, nodes: &[&str]) -> Self {
        let node = self.node.get_or_insert((0, None, None));
        node.2 = Some(nodes.iter().map(|n| n.to_string()).collect());
        self
    }

    pub(super) fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    pub(super) fn array_child(mut self, index: u32, size: u32) -> Self {
        self.array = Some((index, size));
        self
    }

    pub(super) fn unbound(mut self) -> Self {
        self.node_name = None;
        self
    }

    pub(super) fn ce(mut self, ce: ComputeEnvironment) -> Self {
        self.ce = ce;
        self
    }

    pub(super) fn queue(mut self, queue: &str) -> Self {
        self.queue = queue.into();
        self
    }

    pub(super) fn render(&self) -> Result<Pod, RenderError> {
        render_pod(&AttemptPod {
            job: &self.job,
            definition_name: "render",
            definition_revision: 3,
            definition: &self.definition,
            queue: &self.queue,
            compute_environment: &self.ce,
            node_name: self.node_name,
            attempt: self.attempt,
            array_index: self.array.map(|(i, _)| i),
            array_size: self.array.map(|(_, n)| n),
            node: self.node.as_ref().map(|(index, ip, gang)| NodePod {
                index: *index,
                main_pod_ip: ip.as_deref(),
                gang_nodes: gang.as_deref(),
            }),
        })
    }

    pub(super) fn pod(&self) -> Pod {
        self.render().expect("the attempt renders")
    }
}

/// The AWS multi-node fixture (6 nodes, main 0, "0" and "1:"), as a JobDefinitionSpec.
pub(super) fn multinode_definition() -> JobDefinitionSpec {
    crate::test_support::aws_job_definition("jobdef-multinode.json")
}

pub(super) fn main_container(pod: &Pod) -> &Container {
    &pod.spec.as_ref().expect("spec").containers[0]
}

pub(super) fn env_pairs(container: &Container) -> Vec<(String, Option<String>)> {
    container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

pub(super) fn env_value(container: &Container, name: &str) -> Option<String> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

pub(super) fn quantities(pod: &Pod, which: &str) -> BTreeMap<String, String> {
    let resources = main_container(pod).resources.as_ref().expect("resources");
    let map = if which == "requests" {
        resources.requests.as_ref()
    } else {
        resources.limits.as_ref()
    };
    map.expect(which)
        .iter()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

pub(super) fn pod_properties_definition() -> JobDefinitionSpec {
    definition(json!({
        "type": "container",
        "parameters": {"mode": "fast"},
        "podProperties": {
            "serviceAccountName": "renderer",
            "containers": [
                {"name": "app", "image": "app:1", "command": ["run", "Ref::mode"],
                 "env": [{"name": "LEVEL", "value": "info"}],
                 "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": "1"}}},
                {"name": "side", "image": "side:1",
                 "resources": {"limits": {"cpu": "250m", "memory": "256Mi"}}},
            ],
            "initContainers": [
                {"name": "fetch", "image": "fetch:1",
                 "resources": {"requests": {"cpu": "2", "memory": "128Mi"}}},
            ],
            "volumes": [{"name": "work", "emptyDir": {}}],
        },
    }))
}
