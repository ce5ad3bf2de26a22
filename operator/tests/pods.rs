//! Rendered attempt pods run on the simulated cluster, and `pod_view` reads back exactly what the
//! simulated kubelet and API server write: success, a failing exit code, OOMKilled, deletion and
//! node loss.

mod support;

use barge_core::job::{PodPhase, PodView};
use barge_crds::consts::{
    ANNOTATION_SIM_DURATION_SECONDS, ANNOTATION_SIM_EXIT_CODE, LABEL_COMPUTE_ENVIRONMENT,
    LABEL_SIM_SIMULATED, SIM_TRUE, TAINT_COMPUTE_ENVIRONMENT,
};
use barge_crds::{ComputeEnvironment, Job, JobDefinitionSpec};
use barge_operator::pods::{pod_view, render_pod, AttemptPod};
use barge_sim::kubelet::consts::ANNOTATION_OOM_KILLED;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use support::{wait_for, Env};

const CE: &str = "c4ondemand";
const NODE: &str = "sim-node-1";

fn compute_environment() -> ComputeEnvironment {
    serde_json::from_value(json!({
        "apiVersion": "batch.barge.dev/v1alpha1", "kind": "ComputeEnvironment",
        "metadata": {"name": CE},
        "spec": {"type": "MANAGED", "computeResources": {
            "type": "EC2", "minvCpus": 0, "maxvCpus": 16, "provider": {"simulated": {}}}},
    }))
    .expect("compute environment")
}

fn definition() -> JobDefinitionSpec {
    serde_json::from_value(json!({
        "type": "container",
        "propagateTags": true,
        "containerProperties": {
            "image": "busybox",
            "command": ["sh", "-c", "exit 0"],
            "resourceRequirements": [{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "256"}],
        },
    }))
    .expect("definition")
}

/// Creates a Job whose tags script the simulated kubelet's run of its pods.
async fn create_job(env: &Env, name: &str, tags: serde_json::Value) -> Job {
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch.barge.dev/v1alpha1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"jobQueue": "q", "jobDefinition": "render", "tags": tags},
    }))
    .expect("job");
    env.namespaced::<Job>("default")
        .create(&PostParams::default(), &job)
        .await
        .expect("create job")
}

async fn run_attempt(env: &Env, job: &Job, definition: &JobDefinitionSpec) -> Pod {
    let ce = compute_environment();
    let pod = render_pod(&AttemptPod {
        job,
        definition_name: "render",
        definition_revision: 1,
        definition,
        queue: "q",
        compute_environment: &ce,
        node_name: Some(NODE),
        attempt: 1,
        array_index: None,
        array_size: None,
        node: None,
    })
    .expect("render");
    env.namespaced::<Pod>("default")
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod")
}

async fn wait_view(
    env: &Env,
    name: &str,
    what: &str,
    node_exists: bool,
    pred: impl Fn(&PodView) -> bool,
) -> PodView {
    let pods = env.namespaced::<Pod>("default");
    let pod = wait_for(&pods, name, what, |pod: &Pod| {
        pod_view(pod, node_exists).is_some_and(|v| pred(&v))
    })
    .await;
    pod_view(&pod, node_exists).expect("a Barge pod")
}

#[tokio::test]
async fn pod_view_reads_what_the_simulated_cluster_writes() {
    let env = Env::start().await;
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": NODE,
            "labels": {LABEL_SIM_SIMULATED: SIM_TRUE, LABEL_COMPUTE_ENVIRONMENT: CE},
            "annotations": {"sim.barge.dev/capacity": json!({"cpu": "4", "memory": "8Gi", "pods": "20"}).to_string()},
        },
        "spec": {"taints": [{"key": TAINT_COMPUTE_ENVIRONMENT, "value": CE, "effect": "NoSchedule"}]},
    }))
    .expect("node");
    env.api::<Node>()
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    let def = definition();

    let ok = create_job(&env, "ok", json!({ANNOTATION_SIM_DURATION_SECONDS: "0.2"})).await;
    let fails = create_job(
        &env,
        "fails",
        json!({ANNOTATION_SIM_DURATION_SECONDS: "0.2", ANNOTATION_SIM_EXIT_CODE: "3"}),
    )
    .await;
    let oom = create_job(
        &env,
        "oom",
        json!({ANNOTATION_SIM_DURATION_SECONDS: "0.2", ANNOTATION_OOM_KILLED: "true"}),
    )
    .await;
    let long = create_job(
        &env,
        "long",
        json!({ANNOTATION_SIM_DURATION_SECONDS: "600"}),
    )
    .await;
    let lost = create_job(
        &env,
        "lost",
        json!({ANNOTATION_SIM_DURATION_SECONDS: "600"}),
    )
    .await;
    for job in [&ok, &fails, &oom, &long, &lost] {
        run_attempt(&env, job, &def).await;
    }

    let view = wait_view(&env, "ok-1", "Succeeded", true, |v| {
        v.phase == PodPhase::Succeeded
    })
    .await;
    assert_eq!((view.attempt, view.array_index), (1, None));
    assert_eq!(view.exit_code, Some(0));
    assert_eq!(view.container_reason.as_deref(), Some("Completed"));
    assert_eq!(view.node_name.as_deref(), Some(NODE));
    let (started, finished) = (
        view.started_at_ms.expect("started"),
        view.finished_at_ms.expect("finished"),
    );
    assert!(started <= finished);
    assert!(view.has_finalizer);
    assert!(!view.node_lost);

    let view = wait_view(&env, "fails-1", "Failed", true, |v| {
        v.phase == PodPhase::Failed
    })
    .await;
    assert_eq!(
        (view.exit_code, view.container_reason.as_deref()),
        (Some(3), Some("Error"))
    );

    let view = wait_view(&env, "oom-1", "Failed", true, |v| {
        v.phase == PodPhase::Failed
    })
    .await;
    assert_eq!(
        (view.exit_code, view.container_reason.as_deref()),
        (Some(137), Some("OOMKilled"))
    );

    // Deleting a running pod: the finalizer holds it with a deletionTimestamp.
    let view = wait_view(&env, "long-1", "Running", true, |v| {
        v.started_at_ms.is_some()
    })
    .await;
    assert_eq!(view.phase, PodPhase::Running);
    wait_view(&env, "lost-1", "Running", true, |v| {
        v.started_at_ms.is_some()
    })
    .await;
    env.namespaced::<Pod>("default")
        .delete("long-1", &DeleteParams::default())
        .await
        .expect("delete");
    let view = wait_view(&env, "long-1", "deleting", true, |v| {
        v.deletion_timestamp_ms.is_some()
    })
    .await;
    assert!(view.has_finalizer);
    assert!(!view.node_lost);

    // Node loss: the node object goes, pod GC fails the pod with DisruptionTarget.
    env.cluster.lose_node(NODE).expect("lose node");
    let view = wait_view(&env, "lost-1", "failed by pod GC", false, |v| {
        v.phase == PodPhase::Failed
    })
    .await;
    assert!(view.node_lost);
    assert_eq!(view.node_name.as_deref(), Some(NODE));
    // Pods that had finished before the node went are not lost attempts.
    let pods = env.namespaced::<Pod>("default");
    let finished = pods.get("fails-1").await.expect("get");
    let view = pod_view(&finished, false).expect("a Barge pod");
    assert!(!view.node_lost);
    assert_eq!(view.exit_code, Some(3));

    env.stop().await;
}
