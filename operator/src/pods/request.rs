//! What one pod of a job asks for (millicpu, MiB, GPUs, one pod slot), as the scheduler
//! counts it and as Kubernetes computes a pod's requests (init containers, sidecars).

use barge_core::quantity;
use barge_core::resources::Resources;
use barge_crds::consts::DEFAULT_GPU_RESOURCE_NAME;
use barge_crds::resources::ContainerProperties;
use barge_crds::{Job, JobDefinitionSpec};
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::container::{aws_amounts, bad_quantity, with_overrides, RESOURCE_CPU, RESOURCE_MEMORY};
use super::nodes::NodePlan;
use super::RenderError;

/// Restart policy of an init container that is a sidecar (runs beside the main containers).
const SIDECAR_RESTART_POLICY: &str = "Always";

/// What one pod of this job asks for (after `containerOverrides`): millicpu, MiB, GPUs and one
/// pod slot; for a multi-node job, its main node's pod (each node's is in
/// [`gang_of`](super::gang_of)). For `containerProperties`, resource requirements win over the legacy
/// `vcpus`/`memory`, and the job's overrides over the definition. For `podProperties`, as
/// Kubernetes computes a pod's requests: the sum over containers of their requests (their limits
/// where a request is absent), at least the largest init container's; GPUs are the resources
/// named `nvidia.com/gpu` or `<vendor>/gpu`. (A job's `containerOverrides` change only the
/// command and environment of a `podProperties` pod, as [`render_pod`](super::render_pod)
/// applies them, not its resources.)
pub fn job_request(job: &Job, definition: &JobDefinitionSpec) -> Result<Resources, RenderError> {
    if definition.node_properties.is_some() {
        let plan = NodePlan::new(job, definition)?;
        return container_request(&plan.container(plan.main_node));
    }
    if job.spec.node_overrides.is_some() {
        return Err(RenderError::NodeOverridesWithoutNodes);
    }
    if let Some(props) = &definition.container_properties {
        return match &job.spec.container_overrides {
            Some(overrides) => container_request(&with_overrides(props, overrides)),
            None => container_request(props),
        };
    }
    let Some(props) = &definition.pod_properties else {
        return Err(RenderError::NoContainer);
    };
    if props.containers.is_empty() {
        return Err(RenderError::NoPodContainers);
    }
    let mut main = Resources::ZERO;
    for container in &props.containers {
        main = main.saturating_add(&kube_container_request(container)?);
    }
    // Init containers run one after the other, each beside the sidecars (restartable init
    // containers) started before it; sidecars keep running beside the main containers.
    let mut sidecars = Resources::ZERO;
    let mut init_peak = Resources::ZERO;
    for container in &props.init_containers {
        let request = kube_container_request(container)?;
        if container.restart_policy.as_deref() == Some(SIDECAR_RESTART_POLICY) {
            sidecars = sidecars.saturating_add(&request);
            init_peak = init_peak.max_each(&sidecars);
        } else {
            init_peak = init_peak.max_each(&sidecars.saturating_add(&request));
        }
    }
    let pod = main.saturating_add(&sidecars).max_each(&init_peak);
    Ok(Resources::request(pod.milli_cpu, pod.memory_mib, pod.gpus))
}

/// What one pod running an AWS-shaped container asks for (its overrides already applied).
pub(super) fn container_request(props: &ContainerProperties) -> Result<Resources, RenderError> {
    let amounts = aws_amounts(props)?;
    Ok(Resources::request(
        amounts.milli_cpu.unwrap_or(0),
        amounts.memory_mib.unwrap_or(0),
        amounts.gpus.unwrap_or(0),
    ))
}

fn is_gpu_resource(name: &str) -> bool {
    name == DEFAULT_GPU_RESOURCE_NAME || name.ends_with("/gpu")
}

/// One Kubernetes container's request (its limits where a request is absent); `pods` is zero.
fn kube_container_request(container: &Container) -> Result<Resources, RenderError> {
    let resources = container.resources.as_ref();
    let requests = resources.and_then(|r| r.requests.as_ref());
    let limits = resources.and_then(|r| r.limits.as_ref());
    let mut names: Vec<&String> = requests
        .into_iter()
        .chain(limits)
        .flat_map(|m| m.keys())
        .collect();
    names.sort();
    names.dedup();
    let mut total = Resources::ZERO;
    for name in names {
        let Some(Quantity(value)) = requests
            .and_then(|m| m.get(name))
            .or_else(|| limits.and_then(|m| m.get(name)))
        else {
            continue;
        };
        let field = || format!("podProperties container {} {name}", container.name);
        if name == RESOURCE_CPU {
            total.milli_cpu =
                quantity::cpu_millis(value).map_err(|e| bad_quantity(&field(), value, e))?;
        } else if name == RESOURCE_MEMORY {
            total.memory_mib =
                quantity::memory_mib(value).map_err(|e| bad_quantity(&field(), value, e))?;
        } else if is_gpu_resource(name) {
            let gpus = quantity::count(value).map_err(|e| bad_quantity(&field(), value, e))?;
            total.gpus = total.gpus.saturating_add(gpus);
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::fixtures::*;
    use crate::test_support::aws_job_definition;
    use serde_json::json;

    #[test]
    fn job_request_follows_kubernetes_pod_requests_for_pod_properties() {
        // Containers: 500m + 250m (limit as request) = 750m, 1024 + 256 MiB, 1 GPU; the init
        // container needs 2 CPUs alone, so the pod needs 2000m.
        assert_eq!(
            job_request(&job(json!({})), &pod_properties_definition()),
            Ok(Resources::request(2000, 1280, 1))
        );
        let with_sidecar = definition(json!({
            "type": "container",
            "podProperties": {
                "containers": [{"name": "app", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
                "initContainers": [
                    {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                    {"name": "migrate", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}},
                ],
            },
        }));
        // Main: 1000m + 100m sidecar; init peak: 100m + 1000m, 64 + 2048 MiB.
        assert_eq!(
            job_request(&job(json!({})), &with_sidecar),
            Ok(Resources::request(1100, 2112, 0))
        );
        let bad = definition(json!({
            "type": "container",
            "podProperties": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "lots"}}}]},
        }));
        assert!(matches!(
            job_request(&job(json!({})), &bad),
            Err(RenderError::BadQuantity { .. })
        ));
    }

    #[test]
    fn job_request_prefers_requirements_over_legacy_and_overrides_over_definition() {
        let legacy = aws_job_definition("jobdef-tensorflow_mnist_deep.json");
        assert_eq!(
            job_request(&job(json!({})), &legacy),
            Ok(Resources::request(8000, 32000, 0))
        );
        assert_eq!(
            job_request(
                &job(json!({"containerOverrides": {"vcpus": 4, "memory": 1024}})),
                &legacy
            ),
            Ok(Resources::request(4000, 1024, 0))
        );
        let mixed = definition(json!({
            "type": "container",
            "containerProperties": {
                "image": "busybox", "vcpus": 2,
                "resourceRequirements": [{"type": "MEMORY", "value": "4096"}],
            },
        }));
        assert_eq!(
            job_request(
                &job(
                    json!({"containerOverrides": {"resourceRequirements": [{"type": "VCPU", "value": "0.25"}], "memory": 100}})
                ),
                &mixed
            ),
            Ok(Resources::request(250, 100, 0)),
            "override requirements and override legacy fields beat the definition"
        );
        let spot = aws_job_definition("jobdef-spot-retry.json");
        assert_eq!(
            job_request(&job(json!({})), &spot),
            Ok(Resources::request(1000, 512, 0))
        );
    }
}
