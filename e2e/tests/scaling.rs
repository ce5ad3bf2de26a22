//! End-to-end: managed compute environments that scale with demand (issue 10) through the real
//! `barge` binary — from zero nodes up to `maxvCpus` and back to zero after
//! `scaleDownDelaySeconds`; BEST_FIT choosing the cheapest catalog type that fits a job; a GPU
//! job scaling a GPU type only while a CPU job alongside gets a type without GPUs;
//! `desiredvCpus` as a floor and DISABLED scaling in to `minvCpus` without new placements; a
//! running job's node never removed; and a Spot reclaim retried on a replacement node.

mod support;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use barge_crds::compute_environment::CeStatus;
use barge_crds::consts::{LABEL_COMPUTE_ENVIRONMENT, LABEL_INSTANCE_TYPE};
use barge_crds::job::JobStatus;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::ResourceExt;

use support::{
    job, job_definition, job_queue, nodes_of, scaling_environment, scripted_tags, status_of,
    vcpus_of, E2e, Options,
};

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

/// A MANAGED simulated environment `${NS}-<name>` with every scaling field spelled out.
struct Environment<'a> {
    name: &'a str,
    capacity: &'a str,
    strategy: &'a str,
    min: i32,
    desired: Option<i32>,
    max: i32,
    instance_types: &'a str,
    delay_s: i32,
}

impl Environment<'_> {
    fn yaml(&self) -> String {
        let desired = self
            .desired
            .map(|d| format!("    desiredvCpus: {d}\n"))
            .unwrap_or_default();
        format!(
            r#"---
apiVersion: batch.barge.dev/v1alpha1
kind: ComputeEnvironment
metadata: {{name: "${{NS}}-{name}"}}
spec:
  type: MANAGED
  state: ENABLED
  computeResources:
    type: {capacity}
    allocationStrategy: {strategy}
    minvCpus: {min}
    maxvCpus: {max}
{desired}    instanceTypes: [{types}]
    scaleDownDelaySeconds: {delay}
    provider: {{simulated: {{}}}}
"#,
            name = self.name,
            capacity = self.capacity,
            strategy = self.strategy,
            min = self.min,
            max = self.max,
            types = self.instance_types,
            delay = self.delay_s,
        )
    }
}

fn types_of(nodes: &[Node]) -> Vec<String> {
    let mut types: Vec<String> = nodes
        .iter()
        .filter_map(|n| n.labels().get(LABEL_INSTANCE_TYPE).cloned())
        .collect();
    types.sort();
    types
}

/// Waits until the environment's nodes number `count` and returns them.
async fn wait_nodes(env: &E2e, ce: &str, count: usize) -> Vec<Node> {
    let nodes_api = env.nodes();
    env.wait_until(&format!("{count} node(s) of {ce}"), || {
        let (nodes_api, ce) = (nodes_api.clone(), ce.to_string());
        async move {
            let nodes = nodes_of(&nodes_api, &ce).await;
            (nodes.len() == count).then_some(nodes)
        }
    })
    .await
}

/// Waits until the environment is VALID.
async fn wait_valid(env: &E2e, ce: &str) {
    env.wait_for(&env.compute_environments(), ce, "VALID", |ce| {
        ce.status.as_ref().and_then(|s| s.status) == Some(CeStatus::Valid)
    })
    .await;
}

/// The node the pod of a job's attempt is bound to.
async fn node_of_attempt(env: &E2e, pod: &str) -> String {
    env.wait_for(&env.pods(), pod, "bound", |p| {
        p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
    })
    .await
    .spec
    .and_then(|s| s.node_name)
    .expect("bound")
}

/// Records every `status.status` the environment shows, in order (consecutive repeats once),
/// from a watch, until aborted.
fn record_statuses(
    env: &E2e,
    ce: &str,
) -> (
    Arc<std::sync::Mutex<Vec<CeStatus>>>,
    tokio::task::JoinHandle<()>,
) {
    use futures::StreamExt;
    use kube::runtime::{watcher, WatchStreamExt};
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let api = env.compute_environments();
    let config = watcher::Config::default().fields(&format!("metadata.name={ce}"));
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher(api, config).default_backoff());
        while let Some(event) = stream.next().await {
            let (Ok(watcher::Event::Apply(ce)) | Ok(watcher::Event::InitApply(ce))) = event else {
                continue;
            };
            let Some(status) = ce.status.and_then(|s| s.status) else {
                continue;
            };
            if let Ok(mut seen) = record.lock() {
                if seen.last() != Some(&status) {
                    seen.push(status);
                }
            }
        }
    });
    (seen, task)
}

async fn set_state(env: &E2e, ce: &str, state: &str) {
    env.compute_environments()
        .patch(
            ce,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"state": state}})),
        )
        .await
        .unwrap_or_else(|e| panic!("set {ce} {state}: {e}"));
}

#[tokio::test]
async fn a_gpu_job_scales_a_gpu_type_and_a_cpu_job_alongside_a_type_without_gpus() {
    let env = E2e::start_with("scale-gpu", Options::scripted()).await;
    env.apply(&format!(
        "{}{}",
        Environment {
            name: "ce",
            capacity: "EC2",
            strategy: "BEST_FIT",
            min: 0,
            desired: None,
            max: 32,
            instance_types: "m5.large, p3.2xlarge",
            delay_s: 1,
        }
        .yaml(),
        job_queue("q", 10, &["ce"])
    ))
    .await;
    let ce = env.render("${NS}-ce");
    wait_valid(&env, &ce).await;
    let gpu = "containerOverrides:\n  resourceRequirements:\n    - {type: GPU, value: \"1\"}\n";
    env.apply(&job_definition("one", "true", &[], "1", ""))
        .await;
    // The GPU job alone: one p3.2xlarge, nothing else.
    env.apply(&job(
        "gpu",
        "q",
        "one",
        &format!("{gpu}{}", scripted_tags("3", 0)),
    ))
    .await;
    env.wait_job_reached("gpu", JobStatus::Running).await;
    let node = node_of_attempt(&env, "gpu-1").await;
    let nodes = nodes_of(&env.nodes(), &ce).await;
    assert_eq!(types_of(&nodes), ["p3.2xlarge"], "one GPU node, no other");
    assert!(
        node.contains("p3-2xlarge"),
        "the GPU job runs on the p3: {node}"
    );
    env.wait_job("gpu", JobStatus::Succeeded).await;
    wait_nodes(&env, &ce, 0).await;

    // A GPU job and a CPU job together, from zero: the CPU job gets an m5.large of its own, not
    // the room left on the p3 (nor a p3 of its own).
    let seen = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let watcher = {
        let (seen, nodes_api, ce) = (seen.clone(), env.nodes(), ce.clone());
        tokio::spawn(async move {
            loop {
                for node in nodes_of(&nodes_api, &ce).await {
                    if let Ok(mut seen) = seen.lock() {
                        seen.insert(node.name_any());
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    env.apply(&format!(
        "{}{}",
        job(
            "gpu2",
            "q",
            "one",
            &format!("{gpu}{}", scripted_tags("3", 0))
        ),
        job("cpu", "q", "one", &scripted_tags("3", 0))
    ))
    .await;
    let node_of = |job: barge_crds::Job| {
        job.status.expect("status").attempts[0]
            .container
            .node_name
            .clone()
            .expect("node")
    };
    let gpu_node = node_of(env.wait_job("gpu2", JobStatus::Succeeded).await);
    let cpu_node = node_of(env.wait_job("cpu", JobStatus::Succeeded).await);
    watcher.abort();
    assert!(gpu_node.contains("-p3-2xlarge-"), "{gpu_node}");
    assert!(
        cpu_node.contains("-m5-large-"),
        "the CPU job ran on a type without GPUs: {cpu_node}"
    );
    let seen: Vec<String> = seen.lock().expect("seen").iter().cloned().collect();
    assert_eq!(seen, [cpu_node, gpu_node], "one node of each type");
    env.finish().await;
}

#[tokio::test]
async fn desired_vcpus_is_a_floor_and_disabled_scales_in_to_min_vcpus_without_placing() {
    let env = E2e::start_with("scale-disabled", Options::scripted()).await;
    let ce = env.render("${NS}-ce");
    let (statuses, recorder) = record_statuses(&env, &ce);
    // The watch is established before the environment exists.
    tokio::time::sleep(Duration::from_millis(200)).await;
    env.apply(&format!(
        "{}{}",
        Environment {
            name: "ce",
            capacity: "EC2",
            strategy: "BEST_FIT",
            min: 2,
            desired: Some(6),
            max: 8,
            instance_types: "c5.large",
            delay_s: 1,
        }
        .yaml(),
        job_queue("q", 10, &["ce"])
    ))
    .await;
    // desiredvCpus 6: three c5.large nodes from the start.
    env.wait_compute_environment(&ce, 3).await;
    let status = env
        .compute_environments()
        .get(&ce)
        .await
        .expect("ce")
        .status
        .expect("status");
    assert_eq!(status.desiredv_cpus, Some(6));
    assert_eq!(
        status.instance_types.len(),
        1,
        "{:?}",
        status.instance_types
    );
    assert_eq!(
        (
            status.instance_types[0].name.as_str(),
            status.instance_types[0].ready
        ),
        ("c5.large", 3)
    );
    // Demand above the floor: a fourth node, gone again after the delay, down to the floor.
    env.apply(&job_definition("two", "true", &[], "2", ""))
        .await;
    let mut jobs = String::new();
    for i in 0..4 {
        jobs.push_str(&job(&format!("j{i}"), "q", "two", &scripted_tags("3", 0)));
    }
    env.apply(&jobs).await;
    wait_nodes(&env, &ce, 4).await;
    for i in 0..4 {
        env.wait_job(&format!("j{i}"), JobStatus::Succeeded).await;
    }
    wait_nodes(&env, &ce, 3).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        nodes_of(&env.nodes(), &ce).await.len(),
        3,
        "idle, the pool stays at desiredvCpus 6"
    );

    // DISABLED: no new placement, and the idle pool shrinks to minvCpus 2 (one node).
    set_state(&env, &ce, "DISABLED").await;
    env.apply(&job("late", "q", "two", &scripted_tags("1", 0)))
        .await;
    wait_nodes(&env, &ce, 1).await;
    wait_valid(&env, &ce).await;
    recorder.abort();
    // CREATING until its first three nodes were Ready; UPDATING for the new spec (DISABLED).
    assert_eq!(
        *statuses.lock().expect("statuses"),
        [
            CeStatus::Creating,
            CeStatus::Valid,
            CeStatus::Updating,
            CeStatus::Valid
        ]
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let late = env.jobs().get("late").await.expect("late");
    assert_eq!(status_of(&late), Some(JobStatus::Runnable), "no placement");
    assert!(env.pods_of("late").await.is_empty(), "no pod");
    assert_eq!(nodes_of(&env.nodes(), &ce).await.len(), 1);
    // ENABLED again: the floor comes back and the job runs.
    set_state(&env, &ce, "ENABLED").await;
    env.wait_job("late", JobStatus::Succeeded).await;
    wait_nodes(&env, &ce, 3).await;
    env.finish().await;
}

#[tokio::test]
async fn a_running_jobs_node_is_never_removed() {
    let env = E2e::start_with("scale-busy", Options::scripted()).await;
    env.apply(&format!(
        "{}{}",
        scaling_environment("ce", 8, "c5.large", 1),
        job_queue("q", 10, &["ce"])
    ))
    .await;
    let ce = env.render("${NS}-ce");
    wait_valid(&env, &ce).await;
    env.apply(&job_definition("two", "true", &[], "2", ""))
        .await;
    // Each job takes a whole c5.large: four nodes; one job runs 15 s, the others 1 s.
    let mut jobs = job("long", "q", "two", &scripted_tags("15", 0));
    for i in 0..3 {
        jobs.push_str(&job(
            &format!("short{i}"),
            "q",
            "two",
            &scripted_tags("1", 0),
        ));
    }
    env.apply(&jobs).await;
    env.wait_job_reached("long", JobStatus::Running).await;
    let busy = node_of_attempt(&env, "long-1").await;
    for i in 0..3 {
        env.wait_job(&format!("short{i}"), JobStatus::Succeeded)
            .await;
    }
    // The idle nodes go after 1 s; the busy one stays while its job runs.
    let left = wait_nodes(&env, &ce, 1).await;
    assert_eq!(left[0].name_any(), busy);
    let long = env.jobs().get("long").await.expect("long");
    assert_eq!(status_of(&long), Some(JobStatus::Running), "still running");
    let done = env.wait_job("long", JobStatus::Succeeded).await;
    assert_eq!(
        done.status.expect("status").attempts.len(),
        1,
        "never disturbed"
    );
    wait_nodes(&env, &ce, 0).await;
    env.finish().await;
}

#[tokio::test]
async fn a_spot_reclaim_is_retried_on_a_replacement_node() {
    if support::skip_on_real_cluster("a_spot_reclaim_is_retried_on_a_replacement_node") {
        return;
    }
    let env = E2e::start_with("scale-spot", Options::scripted()).await;
    env.apply(&format!(
        "{}{}",
        Environment {
            name: "ce",
            capacity: "SPOT",
            strategy: "SPOT_CAPACITY_OPTIMIZED",
            min: 0,
            desired: None,
            max: 8,
            instance_types: "c5.large",
            delay_s: 30,
        }
        .yaml(),
        job_queue("q", 10, &["ce"])
    ))
    .await;
    let ce = env.render("${NS}-ce");
    wait_valid(&env, &ce).await;
    // The AWS document as `barge import aws` converts it: retry on "Host EC2*".
    let imported = std::process::Command::new(env!("CARGO_BIN_EXE_barge"))
        .args(["import", "aws"])
        .arg(barge_fixtures::aws("jobdef-spot-retry.json"))
        .output()
        .expect("barge import aws");
    assert!(imported.status.success(), "{imported:?}");
    env.apply(&String::from_utf8(imported.stdout).expect("utf-8"))
        .await;
    env.apply(&job("spot", "q", "spot-tolerant", &scripted_tags("4", 0)))
        .await;
    env.wait_job_reached("spot", JobStatus::Running).await;
    let node = node_of_attempt(&env, "spot-1").await;
    let old_uid = env.nodes().get(&node).await.expect("node").uid();
    let reclaimed = env
        .sim_cluster()
        .expect("simulated cluster")
        .reclaim_spot_node(&node)
        .unwrap_or_else(|e| panic!("reclaim {node}: {e}"));
    assert_eq!(reclaimed, 1, "the job's pod ran on {node}");

    let done = env.wait_job("spot", JobStatus::Succeeded).await;
    let status = done.status.expect("status");
    assert_eq!(status.attempts.len(), 2, "{:#?}", status.attempts);
    assert_eq!(
        status.attempts[0].status_reason.as_deref(),
        Some(format!("Host EC2 (instance {node}) terminated.").as_str())
    );
    let second = status.attempts[1]
        .container
        .node_name
        .clone()
        .expect("node of attempt 2");
    let replacement = env.nodes().get(&second).await.expect("replacement node");
    assert_ne!(
        replacement.uid(),
        old_uid,
        "a new node, not the reclaimed one"
    );
    assert_eq!(
        replacement.labels().get(LABEL_COMPUTE_ENVIRONMENT),
        Some(&ce),
        "the environment created it"
    );
    env.finish().await;
}

#[tokio::test]
async fn deleting_an_environment_waits_for_the_jobs_running_on_it() {
    let env = E2e::start_with("scale-delete-busy", Options::scripted()).await;
    env.apply(&format!(
        "{}{}{}",
        scaling_environment("ce", 8, "c5.large", 1),
        scaling_environment("other", 8, "c5.large", 1),
        job_queue("q", 10, &["ce"])
    ))
    .await;
    let ce = env.render("${NS}-ce");
    wait_valid(&env, &ce).await;
    env.apply(&job_definition("two", "true", &[], "2", ""))
        .await;
    env.apply(&job("long", "q", "two", &scripted_tags("12", 0)))
        .await;
    env.wait_job_reached("long", JobStatus::Running).await;
    // No queue lists the environment any more, but a job still runs on it.
    env.apply(&job_queue("q", 10, &["other"])).await;
    env.wait_until("the queue no longer listing the environment", || {
        let queues = env.queues();
        let name = env.render("${NS}-q");
        async move {
            let q = queues.get(&name).await.ok()?;
            let order = &q.spec.compute_environment_order;
            (order.len() == 1 && order[0].compute_environment.ends_with("-other")).then_some(())
        }
    })
    .await;
    env.compute_environments()
        .delete(&ce, &Default::default())
        .await
        .expect("delete the environment");
    let reason = env
        .wait_until("the environment waiting for its running job", || {
            let api = env.compute_environments();
            let ce = ce.clone();
            async move {
                let status = api.get(&ce).await.ok()?.status?;
                (status.status == Some(CeStatus::Deleting)).then_some(status.status_reason?)
            }
        })
        .await;
    assert!(
        reason.contains("running jobs end") && reason.contains("long-1"),
        "{reason}"
    );
    let long = env.jobs().get("long").await.expect("long");
    assert_eq!(status_of(&long), Some(JobStatus::Running), "undisturbed");
    let done = env.wait_job("long", JobStatus::Succeeded).await;
    assert_eq!(done.status.expect("status").attempts.len(), 1);
    env.wait_until("the environment gone once its job ended", || {
        let api = env.compute_environments();
        let ce = ce.clone();
        async move { api.get_opt(&ce).await.ok()?.is_none().then_some(()) }
    })
    .await;
    env.finish().await;
}
