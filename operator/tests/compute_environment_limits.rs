//! A compute environment that asks for a lot (issue 9, "a runaway compute environment"): a large
//! simulated pool grows in bounded steps with its progress in `statusReason`, SIGTERM and
//! `kubectl delete` take effect at once while it grows, and a pool beyond the per-environment
//! node cap is INVALID with a reason instead of being created. Against an in-process simulated
//! cluster with the operator running in-process.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use barge_crds::compute_environment::CeStatus;
use barge_crds::consts::LABEL_COMPUTE_ENVIRONMENT;
use barge_crds::ComputeEnvironment;
use support::{eventually, from_yaml, wait_for, wait_gone, Env};

/// A simulated pool of c5.large nodes (2 vCPUs each).
fn c5_pool(name: &str, desired_vcpus: i32) -> ComputeEnvironment {
    from_yaml(&format!(
        r#"
apiVersion: batch.barge.dev/v1alpha1
kind: ComputeEnvironment
metadata: {{name: {name}}}
spec:
  type: MANAGED
  computeResources:
    type: EC2
    minvCpus: 0
    maxvCpus: {desired_vcpus}
    desiredvCpus: {desired_vcpus}
    instanceTypes: [c5.large]
    provider: {{simulated: {{}}}}
"#
    ))
}

async fn node_count(nodes: &Api<Node>, ce: &str) -> usize {
    nodes
        .list(&ListParams::default().labels(&format!("{LABEL_COMPUTE_ENVIRONMENT}={ce}")))
        .await
        .expect("list nodes")
        .items
        .len()
}

fn status_reason(ce: &ComputeEnvironment) -> String {
    ce.status
        .as_ref()
        .and_then(|s| s.status_reason.clone())
        .unwrap_or_default()
}

/// 1000 vCPUs of c5.large is 500 nodes: the status says how far the pool got while it grows;
/// SIGTERM stops the operator within a step; a new operator carries on; deleting the
/// environment mid-growth removes it at once and its nodes follow.
#[tokio::test]
async fn a_large_pool_grows_in_steps_and_stops_on_sigterm_and_deletion() {
    let env = Env::start().await;
    let ces = env.api::<ComputeEnvironment>();
    let nodes = env.api::<Node>();
    let operator = env.start_operator();
    ces.create(&PostParams::default(), &c5_pool("big", 1000))
        .await
        .expect("create");

    let growing = wait_for(&ces, "big", "scaling out with its progress", |ce| {
        status_reason(ce).starts_with("scaling out: ") && status_reason(ce).contains(" of 500 ")
    })
    .await;
    let status = growing.status.clone().expect("status");
    assert_eq!(
        status.status,
        Some(CeStatus::Creating),
        "a new pool is CREATING until its first nodes are all there and Ready"
    );
    assert_eq!(status.desiredv_cpus, Some(1000));
    assert!(
        node_count(&nodes, "big").await < 500,
        "the status showed progress before the pool was complete: {:?}",
        status.status_reason
    );

    // SIGTERM while it grows: the operator exits within a step, and growth stops with it.
    let stopping = Instant::now();
    operator.stop().await.expect("clean stop");
    let stop_time = stopping.elapsed();
    eprintln!("operator stopped {stop_time:?} after SIGTERM while scaling out");
    assert!(stop_time < Duration::from_secs(2), "took {stop_time:?}");
    let after_stop = node_count(&nodes, "big").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        node_count(&nodes, "big").await,
        after_stop,
        "no node is created after the stop"
    );
    assert!(after_stop < 500, "stopped mid-growth, at {after_stop}");

    // A new operator carries on from what exists.
    let operator = env.start_operator();
    eventually("growth to resume", || async {
        (node_count(&nodes, "big").await > after_stop).then_some(())
    })
    .await;

    // Deleting it mid-growth: it goes at once (nothing lists it), and so do its nodes.
    let before_delete = node_count(&nodes, "big").await;
    assert!(
        before_delete < 500,
        "still growing when deleted ({before_delete})"
    );
    let deleting = Instant::now();
    ces.delete("big", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&ces, "big").await;
    let delete_time = deleting.elapsed();
    eprintln!("a growing compute environment was gone {delete_time:?} after its deletion");
    assert!(delete_time < Duration::from_secs(2), "took {delete_time:?}");
    eventually("its nodes to go", || async {
        (node_count(&nodes, "big").await == 0).then_some(())
    })
    .await;
    eprintln!(
        "its nodes were gone {:?} after its deletion",
        deleting.elapsed()
    );
    operator.stop().await.expect("clean stop");
    env.stop().await;
}

/// `desiredvCpus: 100000` (a typo for 100) of c5.large would be 50,000 nodes: the environment is
/// INVALID with a reason naming the cap, and no node is created.
#[tokio::test]
async fn a_pool_beyond_the_node_cap_is_invalid_and_creates_nothing() {
    let env = Env::start().await;
    let ces = env.api::<ComputeEnvironment>();
    let nodes = env.api::<Node>();
    let operator = env.start_operator();
    ces.create(&PostParams::default(), &c5_pool("typo", 100_000))
        .await
        .expect("create");
    let invalid = wait_for(&ces, "typo", "INVALID", |ce| {
        ce.status.as_ref().and_then(|s| s.status) == Some(CeStatus::Invalid)
    })
    .await;
    let reason = status_reason(&invalid);
    assert!(
        reason.contains("desiredvCpus 100000")
            && reason.contains("at most 1000 nodes")
            && reason.contains("c5.large"),
        "{reason}"
    );
    assert_eq!(node_count(&nodes, "typo").await, 0);

    // Fixed (100 vCPUs = 50 nodes): it becomes VALID and gets its nodes.
    let fixed = serde_json::json!({"spec": {"computeResources": {"desiredvCpus": 100}}});
    ces.patch(
        "typo",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(fixed),
    )
    .await
    .expect("fix");
    eventually("50 nodes", || async {
        (node_count(&nodes, "typo").await == 50).then_some(())
    })
    .await;
    wait_for(&ces, "typo", "VALID", |ce| {
        ce.status.as_ref().and_then(|s| s.status) == Some(CeStatus::Valid)
    })
    .await;
    operator.stop().await.expect("clean stop");
    env.stop().await;
}
