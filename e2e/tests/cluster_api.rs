//! End-to-end: managed compute environments with the `clusterAPI` provider (issue 10) through
//! the real `barge` binary and barge-sim's Cluster API stand-in.
//!
//! The MachineDeployments are valid objects of the upstream `cluster.x-k8s.io/v1beta2` CRD (the
//! API server validates them); the stand-in keeps `spec.replicas` Nodes for each, of the type in
//! its `sim.barge.dev/instance-type` annotation, and on scale-in removes first the nodes marked
//! with `cluster.x-k8s.io/delete-machine`. Barge scales the deployments through their `scale`
//! subresource and never touches the Nodes' existence.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use barge_crds::compute_environment::CeStatus;
use barge_crds::consts::{
    LABEL_CLUSTER_API_COMPUTE_ENVIRONMENT, LABEL_COMPUTE_ENVIRONMENT, LABEL_INSTANCE_TYPE,
};
use barge_crds::job::JobStatus;
use barge_crds::ComputeEnvironment;
use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, ResourceExt};
use serde_json::json;

use support::{
    attempts, barge_import_aws, create_machine_deployment, job, job_definition, job_queue,
    machine_deployments, scripted_tags, E2e, Options,
};

const DELETE_MACHINE: &str = "cluster.x-k8s.io/delete-machine";

async fn replicas(env: &E2e, name: &str) -> i64 {
    machine_deployments(env)
        .get(name)
        .await
        .ok()
        .and_then(|md| md.data["spec"]["replicas"].as_i64())
        .unwrap_or(-1)
}

/// A clusterAPI compute environment `${NS}-<name>` naming `deployments` (YAML flow items).
fn cluster_api_environment(name: &str, max_vcpus: i32, deployments: &[&str]) -> String {
    let items: String = deployments
        .iter()
        .map(|d| format!("          - {d}\n"))
        .collect();
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
    scaleDownDelaySeconds: 2
    provider:
      clusterAPI:
        machineDeployments:
{items}"#
    )
}

fn status_of(ce: &ComputeEnvironment) -> (Option<CeStatus>, String) {
    let status = ce.status.as_ref();
    (
        status.and_then(|s| s.status),
        status
            .and_then(|s| s.status_reason.clone())
            .unwrap_or_default(),
    )
}

/// What the node watch saw of an environment's nodes.
#[derive(Default)]
struct NodeLog {
    /// Live nodes (name → vCPUs).
    live: BTreeMap<String, i64>,
    most_vcpus: i64,
    seen: BTreeSet<String>,
    /// Deleted nodes, and whether each was cordoned and marked with delete-machine when it went.
    deleted: BTreeMap<String, bool>,
}

fn watch_nodes(env: &E2e, ce: &str) -> (Arc<Mutex<NodeLog>>, tokio::task::JoinHandle<()>) {
    let log = Arc::new(Mutex::new(NodeLog::default()));
    let (api, ce, shared) = (env.nodes(), ce.to_string(), log.clone());
    let task = tokio::spawn(async move {
        let mut events = watcher(
            api,
            watcher::Config::default()
                .labels(&format!("{LABEL_CLUSTER_API_COMPUTE_ENVIRONMENT}={ce}")),
        )
        .default_backoff()
        .boxed();
        while let Some(event) = events.next().await {
            let Ok(event) = event else { continue };
            let mut log = shared.lock().expect("log");
            match event {
                watcher::Event::Apply(node) | watcher::Event::InitApply(node) => {
                    let vcpus = node
                        .labels()
                        .get(LABEL_INSTANCE_TYPE)
                        .and_then(|t| barge_core::pool::lookup(t))
                        .map(|t| t.vcpus)
                        .unwrap_or(0);
                    log.seen.insert(node.name_any());
                    if node.metadata.deletion_timestamp.is_none() {
                        log.live.insert(node.name_any(), vcpus);
                    }
                    let total = log.live.values().sum();
                    log.most_vcpus = log.most_vcpus.max(total);
                }
                watcher::Event::Delete(node) => {
                    let marked = node.annotations().contains_key(DELETE_MACHINE)
                        && node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
                    log.live.remove(&node.name_any());
                    log.deleted.insert(node.name_any(), marked);
                }
                _ => {}
            }
        }
    });
    (log, task)
}

#[tokio::test]
async fn machine_deployments_follow_demand_within_max_vcpus_and_scale_in_idle_nodes() {
    if support::skip_on_real_cluster("capi-scale") {
        return;
    }
    let started = std::time::Instant::now();
    let env = E2e::start_with("capi-scale", Options::scripted().with_cluster_api()).await;
    create_machine_deployment(&env, "small", 0, "c5.large", &[]).await;
    // Sized by the cluster-autoscaler's annotations instead of an instanceType.
    create_machine_deployment(
        &env,
        "big",
        0,
        "c5.xlarge",
        &[
            ("capacity.cluster-autoscaler.kubernetes.io/cpu", "4"),
            ("capacity.cluster-autoscaler.kubernetes.io/memory", "8Gi"),
        ],
    )
    .await;
    let ns = env.ns.clone();
    env.apply(&format!(
        "{}{}{}",
        cluster_api_environment(
            "ce",
            8,
            &[
                &format!("{{name: small, namespace: {ns}, instanceType: c5.large}}"),
                &format!("{{name: big, namespace: {ns}}}"),
            ]
        ),
        cluster_api_environment("missing", 8, &[&format!("{{name: nope, namespace: {ns}}}")]),
        job_queue("q", 10, &["ce"])
    ))
    .await;
    let ce = env.render("${NS}-ce");
    env.wait_for(&env.compute_environments(), &ce, "VALID", |ce| {
        status_of(ce).0 == Some(CeStatus::Valid)
    })
    .await;
    // A deployment that does not exist: INVALID, naming it.
    let missing = env
        .wait_for(
            &env.compute_environments(),
            &env.render("${NS}-missing"),
            "INVALID",
            |ce| status_of(ce).0 == Some(CeStatus::Invalid),
        )
        .await;
    let reason = status_of(&missing).1;
    assert!(
        reason.contains(&format!("MachineDeployment(s) {ns}/nope do not exist")),
        "{reason}"
    );
    // Barge labels the templates (in place: no other field of the deployment changes).
    let small = machine_deployments(&env).get("small").await.expect("small");
    assert_eq!(
        small.data["spec"]["template"]["metadata"]["labels"][LABEL_CLUSTER_API_COMPUTE_ENVIRONMENT],
        json!(ce)
    );
    assert_eq!(replicas(&env, "small").await, 0, "no demand, no machines");

    let (log, watch) = watch_nodes(&env, &ce);
    let most_replicas = Arc::new(Mutex::new(0i64));
    let poller = {
        let (most, client, ns) = (most_replicas.clone(), env.client.clone(), ns.clone());
        tokio::spawn(async move {
            let api: Api<DynamicObject> = Api::namespaced_with(
                client,
                &ns,
                &ApiResource {
                    group: "cluster.x-k8s.io".into(),
                    version: "v1beta2".into(),
                    api_version: "cluster.x-k8s.io/v1beta2".into(),
                    kind: "MachineDeployment".into(),
                    plural: "machinedeployments".into(),
                },
            );
            loop {
                if let Ok(md) = api.get("small").await {
                    let r = md.data["spec"]["replicas"].as_i64().unwrap_or(0);
                    let mut most = most.lock().expect("most");
                    *most = (*most).max(r);
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
    // 10 vCPUs of demand, maxvCpus 8: limited, and says so.
    env.wait_for(&env.compute_environments(), &ce, "ScalingLimited", |ce| {
        ce.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "ScalingLimited" && c.status == "True")
        })
    })
    .await;
    for i in 0..10 {
        let done = env.wait_job(&format!("j{i}"), JobStatus::Succeeded).await;
        assert_eq!(attempts(&done), 1, "j{i} ran once: no busy node went away");
    }
    let peak_replicas = *most_replicas.lock().expect("most");
    assert!(
        (1..=4).contains(&peak_replicas),
        "replicas of small rose within maxvCpus 8 (4 × c5.large), saw {peak_replicas}"
    );
    assert_eq!(
        replicas(&env, "big").await,
        0,
        "BEST_FIT: c5.large is cheaper"
    );

    // Back to 0 after scaleDownDelaySeconds, removing only idle, marked nodes.
    env.wait_until("small back to 0 replicas and no nodes", || {
        let (env, log) = (&env, log.clone());
        async move {
            let zero = replicas(env, "small").await == 0;
            let gone = log.lock().expect("log").live.is_empty();
            (zero && gone).then_some(())
        }
    })
    .await;
    watch.abort();
    poller.abort();
    {
        let log = log.lock().expect("log");
        assert!(
            log.most_vcpus > 0 && log.most_vcpus <= 8,
            "nodes within maxvCpus 8, saw {}",
            log.most_vcpus
        );
        assert_eq!(
            log.deleted.keys().collect::<Vec<_>>(),
            log.seen.iter().collect::<Vec<_>>(),
            "every node went"
        );
        assert!(
            log.deleted.values().all(|marked| *marked),
            "every removed node was cordoned and marked with {DELETE_MACHINE} first: {:?}",
            log.deleted
        );
        eprintln!(
            "capi-scale: at most {peak_replicas} replicas, {} vCPUs of nodes; removed {:?}",
            log.most_vcpus, log.deleted
        );
    }
    let status = env
        .compute_environments()
        .get(&ce)
        .await
        .expect("ce")
        .status
        .expect("status");
    assert_eq!(status.desiredv_cpus, Some(0));
    // Events name the deployment and its replicas.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(env.client.clone(), "default");
    env.wait_until("ScaledOut and ScaledIn Events of the environment", || {
        let (events, ce, ns) = (events.clone(), ce.clone(), ns.clone());
        async move {
            let list = events.list(&Default::default()).await.ok()?;
            let notes = |reason: &str| -> Vec<String> {
                list.items
                    .iter()
                    .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(&ce))
                    .filter(|e| e.reason.as_deref() == Some(reason))
                    .filter_map(|e| e.note.clone())
                    .collect()
            };
            let deployment = format!("scaled MachineDeployment {ns}/small from");
            let out = notes("ScaledOut").iter().any(|n| n.contains(&deployment));
            let scaled_in = notes("ScaledIn")
                .iter()
                .any(|n| n.contains(&deployment) && n.contains("to 0 replicas"));
            (out && scaled_in).then_some(())
        }
    })
    .await;
    eprintln!("capi-scale took {:?}", started.elapsed());
    env.finish().await;
}

#[tokio::test]
async fn with_binding_mode_kube_scheduler_unbound_pods_are_the_demand() {
    if support::skip_on_real_cluster("capi-kube") {
        return;
    }
    let mut env = E2e::start_with("capi-kube", Options::scripted().with_cluster_api()).await;
    create_machine_deployment(&env, "kube", 0, "c5.large", &[]).await;
    let ns = env.ns.clone();
    let ce_yaml = cluster_api_environment(
        "ce",
        8,
        &[&format!(
            "{{name: kube, namespace: {ns}, instanceType: c5.large}}"
        )],
    )
    .replace(
        "spec:\n  type: MANAGED",
        "spec:\n  bindingMode: KubeScheduler\n  type: MANAGED",
    );
    assert!(ce_yaml.contains("bindingMode: KubeScheduler"));
    env.apply(&format!("{ce_yaml}{}", job_queue("q", 10, &["ce"])))
        .await;
    let ce = env.render("${NS}-ce");
    let (log, watch) = watch_nodes(&env, &ce);
    env.apply(&job_definition("one", "true", &[], "1", ""))
        .await;
    let mut jobs = String::new();
    for i in 0..4 {
        jobs.push_str(&job(&format!("k{i}"), "q", "one", &scripted_tags("2", 0)));
    }
    env.apply(&jobs).await;
    // SIGKILL mid scale-out: the new operator counts the machines asked for (spec.replicas)
    // and does not ask for them twice.
    env.wait_until("kube scaling out", || {
        let env = &env;
        async move { (replicas(env, "kube").await > 0).then_some(()) }
    })
    .await;
    env.restart_operator();
    for i in 0..4 {
        env.wait_job(&format!("k{i}"), JobStatus::Succeeded).await;
    }
    env.wait_until("kube back to 0 replicas and no nodes", || {
        let (env, log) = (&env, log.clone());
        async move {
            let zero = replicas(env, "kube").await == 0;
            let gone = log.lock().expect("log").live.is_empty();
            (zero && gone).then_some(())
        }
    })
    .await;
    watch.abort();
    {
        let log = log.lock().expect("log");
        assert!(
            log.most_vcpus > 0 && log.most_vcpus <= 4,
            "4 vCPUs of demand asked for once, across the restart (maxvCpus 8 would allow 8), saw {}",
            log.most_vcpus
        );
        assert!(
            log.deleted.values().all(|marked| *marked),
            "{:?}",
            log.deleted
        );
    }
    env.finish().await;
}

#[tokio::test]
async fn aws_compute_environment_imports_into_a_valid_cluster_api_environment() {
    if support::skip_on_real_cluster("capi-import") {
        return;
    }
    let env = E2e::start_with("capi-import", Options::scripted().with_cluster_api()).await;
    // The fixture's desiredvCpus 48 is a floor: one m5.12xlarge (48 vCPUs), which exists
    // before the environment: Barge adopts its node (the template label reaches it in place)
    // rather than asking for another.
    create_machine_deployment(&env, "large", 1, "m5.12xlarge", &[]).await;
    let nodes = env.nodes();
    let before = env
        .wait_until("the deployment's node", || {
            let nodes = nodes.clone();
            async move {
                let list = nodes
                    .list(&ListParams::default().labels("cluster.x-k8s.io/deployment-name=large"))
                    .await
                    .ok()?;
                (list.items.len() == 1).then(|| list.items[0].name_any())
            }
        })
        .await;
    let yaml = barge_import_aws([
        "--cluster-api-machine-deployment".into(),
        format!("{}/large=m5.12xlarge", env.ns).into(),
        barge_fixtures::aws("computeenv-managed.json").into_os_string(),
    ]);
    // Cluster-scoped names carry the test's namespace (the harness convention).
    let yaml = yaml.replace("name: c4ondemand\n", "name: ${NS}-c4ondemand\n");
    env.apply(&yaml).await;
    let name = env.render("${NS}-c4ondemand");
    env.wait_for(&env.compute_environments(), &name, "VALID", |ce| {
        status_of(ce).0 == Some(CeStatus::Valid)
    })
    .await;
    env.wait_compute_environment(&name, 1).await;
    let members = nodes
        .list(&ListParams::default().labels(&format!("{LABEL_COMPUTE_ENVIRONMENT}={name}")))
        .await
        .expect("nodes");
    assert_eq!(
        members
            .items
            .iter()
            .map(|n| n.name_any())
            .collect::<Vec<_>>(),
        [before],
        "the existing node joined"
    );
    assert_eq!(replicas(&env, "large").await, 1, "not asked twice");
    let ce = env.compute_environments().get(&name).await.expect("ce");
    assert_eq!(ce.status.and_then(|s| s.desiredv_cpus), Some(48));

    // Deleting the environment releases the node and the template; replicas stay.
    env.compute_environments()
        .delete(&name, &Default::default())
        .await
        .expect("delete");
    env.wait_until("the environment gone and its node released", || {
        let (env, nodes, name) = (&env, nodes.clone(), name.clone());
        async move {
            let gone = env
                .compute_environments()
                .get_opt(&name)
                .await
                .ok()?
                .is_none();
            let members = nodes
                .list(&ListParams::default().labels(&format!("{LABEL_COMPUTE_ENVIRONMENT}={name}")))
                .await
                .ok()?;
            let md = machine_deployments(env).get("large").await.ok()?;
            let labelled = md.data["spec"]["template"]["metadata"]["labels"]
                .get(LABEL_CLUSTER_API_COMPUTE_ENVIRONMENT)
                .is_some();
            (gone && members.items.is_empty() && !labelled).then_some(())
        }
    })
    .await;
    assert_eq!(replicas(&env, "large").await, 1);
    env.finish().await;
}

#[tokio::test]
async fn without_cluster_api_the_environment_is_invalid() {
    if support::skip_on_real_cluster("capi-absent") {
        return;
    }
    let env = E2e::start_with("capi-absent", Options::scripted()).await;
    let ns = env.ns.clone();
    env.apply(&cluster_api_environment(
        "ce",
        8,
        &[&format!(
            "{{name: small, namespace: {ns}, instanceType: c5.large}}"
        )],
    ))
    .await;
    let ce = env
        .wait_for(
            &env.compute_environments(),
            &env.render("${NS}-ce"),
            "INVALID",
            |ce| status_of(ce).0 == Some(CeStatus::Invalid),
        )
        .await;
    let reason = status_of(&ce).1;
    assert!(
        reason.contains("does not serve Cluster API MachineDeployments"),
        "{reason}"
    );
    env.finish().await;
}
