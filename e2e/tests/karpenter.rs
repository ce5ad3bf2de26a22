//! End-to-end: managed compute environments with the `karpenter` provider (issue 10) through the
//! real `barge` binary and barge-sim's Karpenter stand-in.
//!
//! Barge writes one `karpenter.sh/v1` NodePool per environment (read back here field by field and
//! accepted by the API server, which validates it against the upstream CRD), admits jobs within
//! `maxvCpus` as unbound pods, and the stand-in launches nodes for them and consolidates the
//! empty ones after `scaleDownDelaySeconds`. The NodeClass is `karpenter.kwok.sh/v1alpha1
//! KWOKNodeClass`, the kind of Karpenter's kwok provider; its CRD below is a minimal one written
//! for these tests (test infrastructure: the stand-in does not read NodeClasses).

mod support;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use barge_crds::compute_environment::CeStatus;
use barge_crds::consts::{LABEL_COMPUTE_ENVIRONMENT, LABEL_INSTANCE_TYPE, LABEL_JOB_NAME};
use barge_crds::job::JobStatus;
use barge_crds::ComputeEnvironment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, DynamicObject, ListParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use support::{
    barge_import_aws, create_node_class, install_node_class_crd, job, job_definition, job_queue,
    nodes_of, scripted_tags, vcpus_of, E2e, Options,
};

fn nodepools(env: &E2e) -> Api<DynamicObject> {
    Api::all_with(
        env.client.clone(),
        &barge_sim::standins::karpenter::nodepool_resource(),
    )
}

/// A MANAGED karpenter environment `${NS}-<name>` using KWOKNodeClass `default`.
fn karpenter_environment(name: &str, max_vcpus: i32, instance_types: &str, delay_s: i32) -> String {
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
    minvCpus: 0
    maxvCpus: {max_vcpus}
    instanceTypes: [{instance_types}]
    scaleDownDelaySeconds: {delay_s}
    tags: {{team: genomics}}
    provider:
      karpenter:
        nodeClassRef: {{group: karpenter.kwok.sh, kind: KWOKNodeClass, name: default}}
        requirements:
          - {{key: kubernetes.io/arch, operator: In, values: [amd64]}}
"#
    )
}

/// Waits until the environment has `status` and its Ready condition `reason`; returns it.
async fn wait_verdict(env: &E2e, ce: &str, status: CeStatus, reason: &str) -> ComputeEnvironment {
    env.wait_for(
        &env.compute_environments(),
        ce,
        &format!("{status:?} ({reason})"),
        |c| {
            c.status.as_ref().is_some_and(|s| {
                s.status == Some(status)
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.reason == reason)
            })
        },
    )
    .await
}

fn status_reason(ce: &ComputeEnvironment) -> String {
    ce.status
        .as_ref()
        .and_then(|s| s.status_reason.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn karpenter_launches_nodes_for_pending_jobs_and_consolidates_them() {
    if support::skip_on_real_cluster("karpenter") {
        return;
    }
    let started = Instant::now();
    let env = E2e::start_with(
        "karpenter",
        Options::scripted()
            .with_karpenter()
            .with_boot_delay(Duration::from_millis(500)),
    )
    .await;
    install_node_class_crd(&env).await;
    create_node_class(&env, "default").await;
    env.apply(&format!(
        "{}{}",
        karpenter_environment("ce", 8, "c5.large", 5),
        job_queue("q", 10, &["ce"])
    ))
    .await;
    let ce_name = env.render("${NS}-ce");
    let ce = wait_verdict(&env, &ce_name, CeStatus::Valid, "NoReadyNodes").await;

    // The NodePool Barge wrote, field by field.
    let nodepool = env
        .wait_until("the NodePool", || {
            let (api, name) = (nodepools(&env), ce_name.clone());
            async move { api.get_opt(&name).await.ok().flatten() }
        })
        .await;
    let np = serde_json::to_value(&nodepool).expect("json");
    assert_eq!(
        np["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "barge"
    );
    assert_eq!(np["metadata"]["labels"][LABEL_COMPUTE_ENVIRONMENT], ce_name);
    let owner = &np["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "ComputeEnvironment");
    assert_eq!(owner["name"], ce_name.as_str());
    assert_eq!(owner["uid"], ce.metadata.uid.clone().expect("uid"));
    assert_eq!(owner["controller"], true);
    let template = &np["spec"]["template"];
    assert_eq!(
        template["metadata"]["labels"],
        json!({LABEL_COMPUTE_ENVIRONMENT: ce_name, "team": "genomics"})
    );
    assert_eq!(
        template["spec"]["taints"],
        json!([{"key": LABEL_COMPUTE_ENVIRONMENT, "value": ce_name, "effect": "NoSchedule"}])
    );
    assert_eq!(
        template["spec"]["nodeClassRef"],
        json!({"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"})
    );
    assert_eq!(
        template["spec"]["requirements"],
        json!([
            {"key": LABEL_INSTANCE_TYPE, "operator": "In", "values": ["c5.large"]},
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        ])
    );
    assert_eq!(np["spec"]["limits"]["cpu"], "8");
    assert_eq!(np["spec"]["disruption"]["consolidationPolicy"], "WhenEmpty");
    assert_eq!(np["spec"]["disruption"]["consolidateAfter"], "5s");

    // Watch the nodes and the pods the whole time.
    let most = Arc::new(AtomicI64::new(0));
    let saw_pending = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (most, saw_pending, nodes_api, ce) = (
            most.clone(),
            saw_pending.clone(),
            env.nodes(),
            ce_name.clone(),
        );
        let pods: Api<Pod> = env.pods();
        tokio::spawn(async move {
            loop {
                most.fetch_max(vcpus_of(&nodes_of(&nodes_api, &ce).await), Ordering::SeqCst);
                if let Ok(list) = pods
                    .list(&ListParams::default().labels(LABEL_JOB_NAME))
                    .await
                {
                    if list
                        .items
                        .iter()
                        .any(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_none()))
                    {
                        saw_pending.store(true, Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    env.apply(&job_definition("one", "true", &[], "1", ""))
        .await;
    let mut jobs = String::new();
    for i in 0..10 {
        jobs.push_str(&job(&format!("j{i}"), "q", "one", &scripted_tags("2", 0)));
    }
    env.apply(&jobs).await;
    for i in 0..10 {
        env.wait_job(&format!("j{i}"), JobStatus::Succeeded).await;
    }
    let peak = most.load(Ordering::SeqCst);
    assert!(peak > 0, "Karpenter launched nodes");
    assert!(peak <= 8, "never more than maxvCpus 8 of nodes, saw {peak}");
    assert!(
        saw_pending.load(Ordering::SeqCst),
        "Barge left its pods to the kube-scheduler (unbound)"
    );
    // Every pod ran on a node of the NodePool.
    for pod in env
        .pods()
        .list(&ListParams::default().labels(LABEL_JOB_NAME))
        .await
        .expect("pods")
        .items
    {
        assert_eq!(
            pod.annotations()
                .get("karpenter.sh/do-not-disrupt")
                .map(String::as_str),
            Some("true"),
            "Karpenter must not disrupt a node under a running job"
        );
        let node = pod.spec.and_then(|s| s.node_name).expect("bound");
        assert!(node.starts_with(&format!("{ce_name}-")), "{node}");
    }

    // Empty nodes go after consolidateAfter; the status follows.
    let nodes_api = env.nodes();
    env.wait_until("Karpenter consolidating the empty nodes", || {
        let (nodes_api, ce) = (nodes_api.clone(), ce_name.clone());
        async move { nodes_of(&nodes_api, &ce).await.is_empty().then_some(()) }
    })
    .await;
    watcher.abort();
    assert!(most.load(Ordering::SeqCst) <= 8);
    env.wait_for(
        &env.compute_environments(),
        &ce_name,
        "back to 0 nodes",
        |c| {
            c.status
                .as_ref()
                .is_some_and(|s| s.node_counts.is_empty() && s.desiredv_cpus == Some(0))
        },
    )
    .await;

    // The controller reconciled every second or two meanwhile, but wrote the unchanged NodePool
    // and looked up the NodeClass only once (cached; re-checked after a minute).
    if let Some(cluster) = env.sim_cluster() {
        let stats = cluster.stats();
        eprintln!(
            "nodepool requests: {:?}",
            stats
                .requests
                .iter()
                .map(|(verb, m)| (verb, m.get("nodepools"), m.get("kwoknodeclasses")))
                .collect::<Vec<_>>()
        );
        assert_eq!(stats.count("patch", "nodepools"), 1, "one NodePool apply");
        assert!(
            stats.count("get", "kwoknodeclasses") <= 2,
            "NodeClass GETs: {}",
            stats.count("get", "kwoknodeclasses")
        );
    }

    // Deleting the environment (after its queue) deletes the NodePool.
    env.queues()
        .delete(&env.render("${NS}-q"), &DeleteParams::default())
        .await
        .expect("delete queue");
    env.compute_environments()
        .delete(&ce_name, &DeleteParams::default())
        .await
        .expect("delete CE");
    env.wait_until("the NodePool deleted with its environment", || {
        let (api, name) = (nodepools(&env), ce_name.clone());
        async move { api.get_opt(&name).await.ok()?.is_none().then_some(()) }
    })
    .await;
    eprintln!("karpenter end to end: {:?}", started.elapsed());
    env.finish().await;
}

#[tokio::test]
async fn a_missing_node_class_kind_or_object_makes_the_environment_invalid_until_it_appears() {
    if support::skip_on_real_cluster("karpenter-node-class") {
        return;
    }
    let env = E2e::start_with("karpenter-class", Options::scripted().with_karpenter()).await;
    env.apply(&karpenter_environment("ce", 8, "m5", 5)).await;
    let name = env.render("${NS}-ce");
    let ce = wait_verdict(&env, &name, CeStatus::Invalid, "ProviderNotServed").await;
    assert!(
        status_reason(&ce).contains("KWOKNodeClass of group karpenter.kwok.sh"),
        "{}",
        status_reason(&ce)
    );
    install_node_class_crd(&env).await;
    let ce = wait_verdict(&env, &name, CeStatus::Invalid, "NodeClassNotFound").await;
    assert!(
        status_reason(&ce).contains("KWOKNodeClass \"default\""),
        "{}",
        status_reason(&ce)
    );
    assert!(
        nodepools(&env).get_opt(&name).await.expect("get").is_none(),
        "no NodePool while the environment is INVALID"
    );
    create_node_class(&env, "default").await;
    wait_verdict(&env, &name, CeStatus::Valid, "NoReadyNodes").await;
    let np = nodepools(&env)
        .get_opt(&name)
        .await
        .expect("get")
        .expect("NodePool");
    assert_eq!(
        np.data["spec"]["template"]["spec"]["requirements"][0],
        json!({"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["m5"]})
    );
    // Switching to another provider retires the NodePool.
    let simulated = karpenter_environment("ce", 8, "m5", 5).replace(
        "    provider:\n      karpenter:\n        nodeClassRef: {group: karpenter.kwok.sh, kind: KWOKNodeClass, name: default}\n        requirements:\n          - {key: kubernetes.io/arch, operator: In, values: [amd64]}\n",
        "    provider: {simulated: {}}\n",
    );
    assert!(simulated.contains("simulated") && !simulated.contains("karpenter"));
    env.apply(&simulated).await;
    env.wait_until("the NodePool retired after a switch to simulated", || {
        let (api, name) = (nodepools(&env), name.clone());
        async move { api.get_opt(&name).await.ok()?.is_none().then_some(()) }
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn without_karpenter_the_environment_is_invalid_naming_the_nodepool_api() {
    if support::skip_on_real_cluster("karpenter-missing") {
        return;
    }
    let env = E2e::start_with("karpenter-missing", Options::scripted()).await;
    env.apply(&karpenter_environment("ce", 8, "m5", 5)).await;
    let name = env.render("${NS}-ce");
    let ce = wait_verdict(&env, &name, CeStatus::Invalid, "ProviderNotServed").await;
    assert!(
        status_reason(&ce).contains("karpenter.sh/v1 NodePool"),
        "{}",
        status_reason(&ce)
    );
    env.finish().await;
}

#[tokio::test]
async fn aws_compute_environments_import_with_the_karpenter_provider_and_become_valid() {
    if support::skip_on_real_cluster("karpenter-import") {
        return;
    }
    let env = E2e::start_with("karpenter-import", Options::scripted().with_karpenter()).await;
    install_node_class_crd(&env).await;
    create_node_class(&env, "default").await;
    for (file, name, capacity_type) in [
        ("computeenv-managed.json", "c4ondemand", "on-demand"),
        ("computeenv-spot.json", "m4spot", "spot"),
    ] {
        let yaml = barge_import_aws([
            "--karpenter-node-class".into(),
            "karpenter.kwok.sh/KWOKNodeClass/default".into(),
            barge_fixtures::aws(file).into_os_string(),
        ]);
        // Cluster-scoped names carry the test's namespace (the harness convention).
        let yaml = yaml.replace(
            &format!("name: {name}\n"),
            &format!("name: ${{NS}}-{name}\n"),
        );
        env.apply(&yaml).await;
        let ce_name = env.render(&format!("${{NS}}-{name}"));
        let ce = wait_verdict(&env, &ce_name, CeStatus::Valid, "NoReadyNodes").await;
        let ready = ce
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.message.clone())
            .unwrap_or_default();
        if file == "computeenv-managed.json" {
            assert!(
                ready.contains("desiredvCpus 48 not kept warm"),
                "the imported desiredvCpus is explained: {ready}"
            );
        }
        let np = nodepools(&env)
            .get_opt(&ce_name)
            .await
            .expect("get")
            .expect("NodePool");
        assert_eq!(
            np.data["spec"]["template"]["spec"]["requirements"][1]["values"],
            json!([capacity_type])
        );
        assert_eq!(np.data["spec"]["limits"]["cpu"], "128");
    }
    env.finish().await;
}
