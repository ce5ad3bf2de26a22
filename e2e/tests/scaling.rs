//! End-to-end: managed compute environments that scale with demand (issue 10) through the real
//! `barge` binary — from zero nodes up to `maxvCpus` and back to zero after
//! `scaleDownDelaySeconds`, and BEST_FIT choosing the cheapest catalog type that fits a job.

mod support;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use barge_crds::consts::{LABEL_COMPUTE_ENVIRONMENT, LABEL_INSTANCE_TYPE};
use barge_crds::job::JobStatus;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::ResourceExt;

use support::{job, job_definition, job_queue, scripted_tags, E2e, Options};

/// A MANAGED simulated environment `${NS}-<name>` that scales with demand.
fn scaling_environment(name: &str, max_vcpus: i32, instance_types: &str, delay_s: i32) -> String {
    format!(
        r#"---
apiVersion: batch.barge.dev/v1alpha1
kind: ComputeEnvironment
metadata: {{name: "${{NS}}-{name}"}}
spec:
  type: MANAGED
  state: ENABLED
  computeResources:
    type: EC2
    allocationStrategy: BEST_FIT
    minvCpus: 0
    maxvCpus: {max_vcpus}
    instanceTypes: [{instance_types}]
    scaleDownDelaySeconds: {delay_s}
    provider: {{simulated: {{}}}}
"#
    )
}

async fn nodes_of(nodes: &Api<Node>, ce: &str) -> Vec<Node> {
    nodes
        .list(&ListParams::default().labels(&format!("{LABEL_COMPUTE_ENVIRONMENT}={ce}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

fn vcpus_of(nodes: &[Node]) -> i64 {
    nodes
        .iter()
        .filter_map(|n| n.labels().get(LABEL_INSTANCE_TYPE))
        .filter_map(|t| barge_core::pool::lookup(t))
        .map(|t| t.vcpus)
        .sum()
}

#[tokio::test]
async fn from_zero_nodes_appear_within_max_vcpus_and_go_after_the_delay() {
    let env = E2e::start_with("scale-zero", Options::scripted()).await;
    env.apply(&format!(
        "{}{}",
        scaling_environment("ce", 8, "c5.large", 3),
        job_queue("q", 10, &["ce"])
    ))
    .await;
    let ce = env.render("${NS}-ce");
    let nodes_api = env.nodes();
    assert!(nodes_of(&nodes_api, &ce).await.is_empty());

    // Watch the pool size the whole time.
    let most = Arc::new(AtomicI64::new(0));
    let watcher = {
        let (most, nodes_api, ce) = (most.clone(), nodes_api.clone(), ce.clone());
        tokio::spawn(async move {
            loop {
                let vcpus = vcpus_of(&nodes_of(&nodes_api, &ce).await);
                most.fetch_max(vcpus, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    env.apply(&job_definition("one", "true", &[], "1", ""))
        .await;
    let mut jobs = String::new();
    for i in 0..20 {
        jobs.push_str(&job(&format!("j{i}"), "q", "one", &scripted_tags("2", 0)));
    }
    env.apply(&jobs).await;
    let limited = env
        .wait_for(&env.compute_environments(), &ce, "ScalingLimited", |ce| {
            ce.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "ScalingLimited" && c.status == "True")
            })
        })
        .await;
    let message = limited
        .status
        .and_then(|s| {
            s.conditions
                .into_iter()
                .find(|c| c.type_ == "ScalingLimited")
        })
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(message.contains("more than maxvCpus 8"), "{message}");
    for i in 0..20 {
        env.wait_job(&format!("j{i}"), JobStatus::Succeeded).await;
    }
    let peak = most.load(Ordering::SeqCst);
    assert!(peak > 0, "nodes appeared");
    assert!(peak <= 8, "never more than maxvCpus 8 of nodes, saw {peak}");

    env.wait_until("the pool back to 0 nodes", || {
        let (nodes_api, ce) = (nodes_api.clone(), ce.clone());
        async move { nodes_of(&nodes_api, &ce).await.is_empty().then_some(()) }
    })
    .await;
    watcher.abort();
    assert!(most.load(Ordering::SeqCst) <= 8);
    env.finish().await;
}

#[tokio::test]
async fn best_fit_picks_the_cheapest_catalog_type_with_16_gib() {
    let env = E2e::start_with("scale-bestfit", Options::scripted()).await;
    env.apply(&format!(
        "{}{}",
        scaling_environment("ce", 64, "optimal", 300),
        job_queue("q", 10, &["ce"])
    ))
    .await;
    env.apply(&format!(
        "{}{}",
        job_definition("big", "true", &[], "1", ""),
        job(
            "big",
            "q",
            "big",
            &format!(
                "containerOverrides:\n  resourceRequirements:\n    - {{type: MEMORY, value: \"16384\"}}\n{}",
                scripted_tags("1", 0)
            )
        )
    ))
    .await;
    env.wait_job("big", JobStatus::Succeeded).await;
    let ce = env.render("${NS}-ce");
    let nodes = nodes_of(&env.nodes(), &ce).await;
    let types: Vec<String> = nodes
        .iter()
        .filter_map(|n| n.labels().get(LABEL_INSTANCE_TYPE).cloned())
        .collect();
    // r5.large (2 vCPUs, 16 GiB) is the cheapest optimal type with 16 GiB (r4.large has 15.25).
    assert_eq!(types, vec!["r5.large".to_string()]);
    env.finish().await;
}
