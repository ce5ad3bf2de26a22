//! The configuration controllers (JobDefinition, ComputeEnvironment, JobQueue,
//! SchedulingPolicy) against an in-process simulated cluster with a scripted kubelet, each test
//! on a cluster of its own, with the operator running in-process.

mod support;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;

use barge_crds::compute_environment::CeStatus;
use barge_crds::consts::{
    CONDITION_READY, FINALIZER_IN_USE, LABEL_COMPUTE_ENVIRONMENT, LABEL_INSTANCE_TYPE,
    LABEL_JOB_DEFINITION, LABEL_MANAGED_BY, MANAGED_BY_BARGE, REASON_COMPUTE_ENVIRONMENT_NOT_FOUND,
    REASON_SCHEDULING_POLICY_NOT_FOUND, REASON_VALID,
};
use barge_crds::job_queue::JqStatus;
use barge_crds::{ComputeEnvironment, Job, JobDefinition, JobQueue, SchedulingPolicy};
use barge_operator::controllers::REASON_IN_USE;
use support::{eventually, from_yaml, wait_for, wait_gone, Env};

fn ready_condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions.iter().find(|c| c.type_ == CONDITION_READY)
}

fn simulated_ce(name: &str, types: &str, desired: i32) -> ComputeEnvironment {
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
    maxvCpus: 64
    desiredvCpus: {desired}
    instanceTypes: [{types}]
    tags: {{team: batch}}
    scaleDownDelaySeconds: 0
    provider: {{simulated: {{}}}}
"#
    ))
}

fn queue(name: &str, ces: &[&str], policy: Option<&str>) -> JobQueue {
    let order: Vec<String> = ces
        .iter()
        .enumerate()
        .map(|(i, ce)| format!("{{order: {}, computeEnvironment: {ce}}}", i + 1))
        .collect();
    let policy = policy
        .map(|p| format!("\n  schedulingPolicyName: {p}"))
        .unwrap_or_default();
    from_yaml(&format!(
        r#"
apiVersion: batch.barge.dev/v1alpha1
kind: JobQueue
metadata: {{name: {name}}}
spec:
  priority: 10
  computeEnvironmentOrder: [{}]{policy}
"#,
        order.join(", ")
    ))
}

fn nodes_of(nodes: &[Node], ce: &str) -> Vec<Node> {
    nodes
        .iter()
        .filter(|n| {
            n.labels()
                .get(LABEL_COMPUTE_ENVIRONMENT)
                .map(String::as_str)
                == Some(ce)
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn job_definition_revisions_are_kept_in_controller_revisions() {
    let env = Env::start().await;
    let operator = env.start_operator();
    let definitions = env.namespaced::<JobDefinition>("default");
    let revisions = env.namespaced::<ControllerRevision>("default");
    let jd: JobDefinition = from_yaml(
        r#"
apiVersion: batch.barge.dev/v1alpha1
kind: JobDefinition
metadata: {name: render}
spec:
  type: container
  parameters: {frames: "10"}
  containerProperties:
    image: busybox
    command: [render, "Ref::frames"]
    resourceRequirements: [{type: VCPU, value: "1"}, {type: MEMORY, value: "512"}]
    ulimits: [{name: nofile, softLimit: 1024, hardLimit: 4096}]
"#,
    );
    definitions
        .create(&PostParams::default(), &jd)
        .await
        .expect("create");
    let first = wait_for(&definitions, "render", "at revision 1", |d| {
        d.status.as_ref().and_then(|s| s.revision) == Some(1)
    })
    .await;
    let ready = ready_condition(&first.status.as_ref().expect("status").conditions)
        .expect("Ready")
        .clone();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", REASON_VALID)
    );
    assert!(
        ready.message.contains("ulimits (nofile) are ignored"),
        "{}",
        ready.message
    );
    assert!(first.finalizers().iter().any(|f| f == FINALIZER_IN_USE));
    let r1 = revisions.get("render-1").await.expect("revision 1");
    assert_eq!(r1.labels()[LABEL_JOB_DEFINITION], "render");
    assert_eq!(r1.labels()[LABEL_MANAGED_BY], MANAGED_BY_BARGE);
    assert_eq!(r1.owner_references()[0].uid, first.uid().expect("uid"));
    assert_eq!(r1.data.0["containerProperties"]["command"][0], "render");

    // A spec change is revision 2; revision 1 keeps the old spec.
    let patch = serde_json::json!({"spec": {"containerProperties": {"command": ["render", "--fast", "Ref::frames"]}}});
    definitions
        .patch("render", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    wait_for(&definitions, "render", "at revision 2", |d| {
        d.status.as_ref().and_then(|s| s.revision) == Some(2)
    })
    .await;
    let r2 = revisions.get("render-2").await.expect("revision 2");
    assert_eq!(r2.data.0["containerProperties"]["command"][1], "--fast");
    assert_eq!(
        revisions.get("render-1").await.expect("kept").data.0["containerProperties"]["command"][1],
        "Ref::frames"
    );

    // A restart does not create a third revision for the same spec.
    operator.stop().await.expect("clean stop");
    let operator = env.start_operator();
    let labelled = ListParams::default().labels(&format!("{LABEL_JOB_DEFINITION}=render"));
    let after_restart = eventually("the restarted operator to settle", || async {
        let d = definitions.get("render").await.ok()?;
        (d.status.as_ref()?.observed_generation == d.metadata.generation).then_some(d)
    })
    .await;
    assert_eq!(after_restart.status.and_then(|s| s.revision), Some(2));
    assert_eq!(
        revisions.list(&labelled).await.expect("list").items.len(),
        2
    );

    // Deleting the definition takes its revisions with it.
    definitions
        .delete("render", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&definitions, "render").await;
    eventually("the revisions to be collected", || async {
        revisions
            .list(&labelled)
            .await
            .ok()
            .filter(|l| l.items.is_empty())
    })
    .await;
    operator.stop().await.expect("clean stop");
    env.stop().await;
}

#[tokio::test]
async fn a_definition_in_use_waits_for_its_jobs() {
    let env = Env::start().await;
    let operator = env.start_operator();
    let definitions = env.namespaced::<JobDefinition>("default");
    let jobs = env.namespaced::<Job>("default");
    let jd: JobDefinition = from_yaml(
        "apiVersion: batch.barge.dev/v1alpha1\nkind: JobDefinition\nmetadata: {name: hello}\nspec: {type: container, containerProperties: {image: busybox}}\n",
    );
    definitions
        .create(&PostParams::default(), &jd)
        .await
        .expect("create definition");
    wait_for(&definitions, "hello", "at revision 1", |d| {
        d.status.as_ref().and_then(|s| s.revision) == Some(1)
    })
    .await;
    let job: Job = from_yaml("apiVersion: batch.barge.dev/v1alpha1\nkind: Job\nmetadata: {name: j1}\nspec: {jobQueue: q, jobDefinition: \"hello:1\"}\n");
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create job");
    // Let the operator's caches see the job before the definition is deleted.
    eventually("the job to be cached", || async {
        jobs.get_opt("j1").await.ok().flatten()
    })
    .await;
    // The job was submitted before the deletion (a job submitted once the deletion began is
    // refused instead): wait until the API server's clock, to the second, has moved past the
    // job's creation.
    let created = jobs
        .get("j1")
        .await
        .expect("job")
        .metadata
        .creation_timestamp
        .expect("creation timestamp")
        .0;
    eventually("a new second", || async {
        (jiff::Timestamp::now().as_second() > created.as_second()).then_some(())
    })
    .await;
    definitions
        .delete("hello", &DeleteParams::default())
        .await
        .expect("delete");
    let held = wait_for(&definitions, "hello", "held by its job", |d| {
        d.status
            .as_ref()
            .and_then(|s| ready_condition(&s.conditions))
            .is_some_and(|c| c.reason == REASON_IN_USE)
    })
    .await;
    assert!(held.metadata.deletion_timestamp.is_some());
    jobs.delete("j1", &DeleteParams::default())
        .await
        .expect("delete job");
    wait_gone(&definitions, "hello").await;
    operator.stop().await.expect("clean stop");
    env.stop().await;
}

#[tokio::test]
async fn a_simulated_compute_environment_keeps_its_fixed_size() {
    let env = Env::start().await;
    let operator = env.start_operator();
    let ces = env.api::<ComputeEnvironment>();
    let nodes = env.api::<Node>();
    ces.create(&PostParams::default(), &simulated_ce("sim", "m5.xlarge", 8))
        .await
        .expect("create");

    let valid = wait_for(&ces, "sim", "VALID with 2 ready nodes", |ce| {
        let s = ce.status.clone().unwrap_or_default();
        s.status == Some(CeStatus::Valid)
            && ready_condition(&s.conditions).is_some_and(|c| c.message == "2/2 node(s) ready")
    })
    .await;
    let status = valid.status.expect("status");
    assert_eq!(status.desiredv_cpus, Some(8));
    assert_eq!(
        status.node_counts,
        BTreeMap::from([("m5.xlarge".to_string(), 2)])
    );
    assert_eq!(
        status.status_reason.as_deref(),
        Some("ComputeEnvironment Healthy")
    );
    let all = nodes
        .list(&ListParams::default())
        .await
        .expect("nodes")
        .items;
    let mine = nodes_of(&all, "sim");
    assert_eq!(
        mine.iter().map(|n| n.name_any()).collect::<Vec<_>>(),
        ["sim-m5-xlarge-0", "sim-m5-xlarge-1"]
    );
    for node in &mine {
        assert_eq!(node.labels()[LABEL_INSTANCE_TYPE], "m5.xlarge");
        assert_eq!(node.labels()["team"], "batch");
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        assert!(taints.iter().any(|t| t.key == LABEL_COMPUTE_ENVIRONMENT
            && t.value.as_deref() == Some("sim")
            && t.effect == "NoSchedule"));
        let allocatable = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.clone())
            .expect("kubelet reported allocatable");
        assert_eq!(allocatable["cpu"].0, "4");
    }

    // One scaling event was recorded for the two nodes, however often the CE reconciled.
    let events = env.namespaced::<Event>("default");
    let scaled_out = |list: Vec<Event>| -> Vec<String> {
        list.into_iter()
            .filter(|e| {
                e.reason.as_deref() == Some("ScaledOut")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("sim")
            })
            .filter_map(|e| e.note)
            .collect()
    };
    let notes = eventually("a ScaledOut event", || async {
        let notes = scaled_out(events.list(&ListParams::default()).await.ok()?.items);
        (!notes.is_empty()).then_some(notes)
    })
    .await;
    assert_eq!(
        notes,
        ["created 2 node(s) (sim-m5-xlarge-0 and sim-m5-xlarge-1) for 8 desired vCPUs"]
    );

    // DISABLED: the idle pool shrinks to minvCpus (0).
    ces.patch(
        "sim",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"state": "DISABLED"}})),
    )
    .await
    .expect("disable");
    eventually("the pool to be empty", || async {
        let all = nodes.list(&ListParams::default()).await.ok()?.items;
        nodes_of(&all, "sim").is_empty().then_some(())
    })
    .await;
    // (UPDATING for the pass that sees the new spec, then VALID.)
    let disabled = wait_for(&ces, "sim", "desired 0 and VALID", |ce| {
        ce.status
            .as_ref()
            .is_some_and(|s| s.desiredv_cpus == Some(0) && s.status == Some(CeStatus::Valid))
    })
    .await;
    assert_eq!(
        disabled.status.and_then(|s| s.status),
        Some(CeStatus::Valid)
    );

    // ENABLED again with a larger desired size: nodes come back.
    let patch =
        serde_json::json!({"spec": {"state": "ENABLED", "computeResources": {"desiredvCpus": 12}}});
    ces.patch("sim", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .expect("enable");
    wait_for(&ces, "sim", "3 ready nodes", |ce| {
        ce.status
            .as_ref()
            .and_then(|s| ready_condition(&s.conditions))
            .is_some_and(|c| c.message == "3/3 node(s) ready")
    })
    .await;

    // Deleting the environment deletes its nodes.
    ces.delete("sim", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&ces, "sim").await;
    eventually("the nodes to go", || async {
        let all = nodes.list(&ListParams::default()).await.ok()?.items;
        nodes_of(&all, "sim").is_empty().then_some(())
    })
    .await;
    operator.stop().await.expect("clean stop");
    env.stop().await;
}

#[tokio::test]
async fn a_busy_surplus_node_drains_before_it_goes() {
    let env = Env::start().await;
    let operator = env.start_operator();
    let ces = env.api::<ComputeEnvironment>();
    let nodes = env.api::<Node>();
    // A fixed-size pool (minvCpus = maxvCpus): shrinking its spec makes the node surplus at once.
    let mut fixed = simulated_ce("busy", "m5.xlarge", 4);
    if let Some(resources) = fixed.spec.compute_resources.as_mut() {
        (resources.minv_cpus, resources.maxv_cpus) = (4, 4);
    }
    ces.create(&PostParams::default(), &fixed)
        .await
        .expect("create");
    wait_for(&ces, "busy", "1 ready node", |ce| {
        ce.status
            .as_ref()
            .and_then(|s| ready_condition(&s.conditions))
            .is_some_and(|c| c.message == "1/1 node(s) ready")
    })
    .await;
    // A long-running pod occupies the node.
    let pod: k8s_openapi::api::core::v1::Pod = from_yaml(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: worker, annotations: {"sim.barge.dev/duration-seconds": "3600"}}
spec:
  nodeName: busy-m5-xlarge-0
  restartPolicy: Never
  tolerations: [{key: batch.barge.dev/compute-environment, operator: Exists}]
  containers: [{name: c, image: busybox, resources: {requests: {cpu: "1"}}}]
"#,
    );
    let pods = env.namespaced::<k8s_openapi::api::core::v1::Pod>("default");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod");
    wait_for(&pods, "worker", "running", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await;

    let shrink = serde_json::json!({"spec": {"computeResources": {"minvCpus": 0, "maxvCpus": 0, "desiredvCpus": 0}}});
    ces.patch("busy", &PatchParams::default(), &Patch::Merge(shrink))
        .await
        .expect("shrink");
    let cordoned = wait_for(&nodes, "busy-m5-xlarge-0", "cordoned", |n| {
        n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
    })
    .await;
    assert!(cordoned.metadata.deletion_timestamp.is_none());
    let draining = wait_for(&ces, "busy", "draining", |ce| {
        ce.status
            .as_ref()
            .and_then(|s| ready_condition(&s.conditions))
            .is_some_and(|c| c.message.contains("draining busy-m5-xlarge-0"))
    })
    .await;
    assert_eq!(
        draining.status.and_then(|s| s.allocatedv_cpus),
        Some(0),
        "a pod that is not Barge's is not allocated to jobs"
    );
    // The node stays while the pod runs; once it is gone, so is the node.
    assert!(nodes
        .get_opt("busy-m5-xlarge-0")
        .await
        .expect("get")
        .is_some());
    pods.delete(
        "worker",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .expect("delete pod");
    wait_gone(&nodes, "busy-m5-xlarge-0").await;
    operator.stop().await.expect("clean stop");
    env.stop().await;
}

#[tokio::test]
async fn unsupported_providers_are_invalid_with_a_reason() {
    let env = Env::start().await;
    let operator = env.start_operator();
    let ces = env.api::<ComputeEnvironment>();
    let karpenter: ComputeEnvironment = from_yaml(
        r#"
apiVersion: batch.barge.dev/v1alpha1
kind: ComputeEnvironment
metadata: {name: karp}
spec:
  type: MANAGED
  computeResources:
    type: SPOT
    maxvCpus: 256
    instanceTypes: [optimal]
    provider: {karpenter: {nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}}}
"#,
    );
    ces.create(&PostParams::default(), &karpenter)
        .await
        .expect("create");
    let invalid = wait_for(&ces, "karp", "INVALID", |ce| {
        ce.status.as_ref().and_then(|s| s.status) == Some(CeStatus::Invalid)
    })
    .await;
    let status = invalid.status.expect("status");
    assert!(
        status
            .status_reason
            .as_deref()
            .expect("reason")
            .contains("karpenter.sh/v1 NodePool API, which this cluster does not serve"),
        "{status:?}"
    );
    // Without Karpenter's CRDs the karpenter provider cannot work (e2e_karpenter runs it).
    assert_eq!(
        ready_condition(&status.conditions).expect("Ready").reason,
        barge_operator::status::REASON_PROVIDER_NOT_SERVED
    );
    operator.stop().await.expect("clean stop");
    env.stop().await;
}

#[tokio::test]
async fn an_unmanaged_environment_labels_the_nodes_it_selects() {
    let env = Env::start().await;
    let operator = env.start_operator();
    let nodes = env.api::<Node>();
    for (name, pool) in [
        ("worker-a", "batch"),
        ("worker-b", "batch"),
        ("web-a", "web"),
    ] {
        let node: Node = from_yaml(&format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: {name}, labels: {{pool: {pool}, sim.barge.dev/simulated: \"true\", {LABEL_INSTANCE_TYPE}: m5.large}}, annotations: {{sim.barge.dev/capacity: '{{\"cpu\":\"2\",\"memory\":\"8Gi\",\"pods\":\"110\"}}'}}}}\n"
        ));
        nodes
            .create(&PostParams::default(), &node)
            .await
            .expect("node");
    }
    let ces = env.api::<ComputeEnvironment>();
    let ce: ComputeEnvironment = from_yaml(
        "apiVersion: batch.barge.dev/v1alpha1\nkind: ComputeEnvironment\nmetadata: {name: onprem}\nspec: {type: UNMANAGED, nodeSelector: {pool: batch}}\n",
    );
    ces.create(&PostParams::default(), &ce)
        .await
        .expect("create");
    let valid = wait_for(&ces, "onprem", "VALID with its two nodes", |ce| {
        ce.status
            .as_ref()
            .is_some_and(|s| s.status == Some(CeStatus::Valid) && s.desiredv_cpus == Some(4))
    })
    .await;
    assert_eq!(
        valid.status.expect("status").node_counts,
        BTreeMap::from([("m5.large".to_string(), 2)])
    );
    let all = nodes
        .list(&ListParams::default())
        .await
        .expect("nodes")
        .items;
    let members: Vec<String> = nodes_of(&all, "onprem")
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert_eq!(members, ["worker-a", "worker-b"]);
    let web = all.iter().find(|n| n.name_any() == "web-a").expect("web-a");
    assert!(
        web.spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .is_empty(),
        "Barge never taints unmanaged nodes"
    );

    // A node that stops matching leaves the environment.
    nodes
        .patch(
            "worker-b",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {"pool": "web"}}})),
        )
        .await
        .expect("relabel");
    wait_for(&nodes, "worker-b", "released", |n| {
        !n.labels().contains_key(LABEL_COMPUTE_ENVIRONMENT)
    })
    .await;
    // Deleting the environment releases the rest and never deletes a node.
    ces.delete("onprem", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&ces, "onprem").await;
    wait_for(&nodes, "worker-a", "released", |n| {
        !n.labels().contains_key(LABEL_COMPUTE_ENVIRONMENT)
    })
    .await;
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .expect("nodes")
            .items
            .len(),
        3
    );
    operator.stop().await.expect("clean stop");
    env.stop().await;
}

#[tokio::test]
async fn queues_validate_their_references_and_hold_what_they_use() {
    let env = Env::start().await;
    let operator = env.start_operator();
    let queues = env.api::<JobQueue>();
    let ces = env.api::<ComputeEnvironment>();
    let policies = env.api::<SchedulingPolicy>();
    let jobs = env.namespaced::<Job>("default");

    queues
        .create(
            &PostParams::default(),
            &queue("high", &["first", "second"], None),
        )
        .await
        .expect("queue");
    let missing = wait_for(&queues, "high", "INVALID", |q| {
        q.status.as_ref().and_then(|s| s.status) == Some(JqStatus::Invalid)
    })
    .await;
    let status = missing.status.expect("status");
    assert_eq!(
        status.status_reason.as_deref(),
        Some("compute environments first and second do not exist")
    );
    assert_eq!(
        ready_condition(&status.conditions).expect("Ready").reason,
        REASON_COMPUTE_ENVIRONMENT_NOT_FOUND
    );

    let events = env.namespaced::<Event>("default");
    eventually("an InvalidJobQueue event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("InvalidJobQueue")
                && e.note.as_deref() == Some("compute environments first and second do not exist")
        })
    })
    .await;

    for name in ["first", "second"] {
        ces.create(&PostParams::default(), &simulated_ce(name, "m5.large", 0))
            .await
            .expect("ce");
    }
    let valid = wait_for(&queues, "high", "VALID", |q| {
        q.status.as_ref().and_then(|s| s.status) == Some(JqStatus::Valid)
    })
    .await;
    // Valid, but its (empty) environments cannot run work: it does not call itself healthy.
    let valid = valid.status.expect("status");
    assert_eq!(
        valid.status_reason.as_deref(),
        Some("no compute environment of the queue (first, second) has a Ready node: it cannot run jobs now")
    );
    assert_eq!(
        ready_condition(&valid.conditions).map(|c| (c.status.as_str(), c.reason.as_str())),
        Some(("False", barge_crds::consts::REASON_NO_READY_NODES))
    );

    // A policy that does not exist invalidates the queue; creating it heals it.
    queues
        .patch(
            "high",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"schedulingPolicyName": "fair"}})),
        )
        .await
        .expect("patch");
    let no_policy = wait_for(&queues, "high", "INVALID for its policy", |q| {
        q.status
            .as_ref()
            .and_then(|s| ready_condition(&s.conditions))
            .is_some_and(|c| c.reason == REASON_SCHEDULING_POLICY_NOT_FOUND)
    })
    .await;
    assert_eq!(
        no_policy.status.and_then(|s| s.status),
        Some(JqStatus::Invalid)
    );
    let policy: SchedulingPolicy = from_yaml(
        "apiVersion: batch.barge.dev/v1alpha1\nkind: SchedulingPolicy\nmetadata: {name: fair}\nspec: {fairsharePolicy: {shareDecaySeconds: 3600, shareDistribution: [{shareIdentifier: blue, weightFactor: 0.5}]}}\n",
    );
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");
    wait_for(&policies, "fair", "Ready", |p| {
        p.status
            .as_ref()
            .and_then(|s| ready_condition(&s.conditions))
            .is_some_and(|c| c.status == "True")
    })
    .await;
    wait_for(&queues, "high", "VALID again", |q| {
        q.status.as_ref().and_then(|s| s.status) == Some(JqStatus::Valid)
    })
    .await;

    // Job counts follow the jobs of the queue.
    let job: Job = from_yaml("apiVersion: batch.barge.dev/v1alpha1\nkind: Job\nmetadata: {name: j1}\nspec: {jobQueue: high, jobDefinition: hello, shareIdentifier: blue}\n");
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("job");
    wait_for(&queues, "high", "counting the job", |q| {
        q.status
            .as_ref()
            .and_then(|s| s.job_counts.as_ref())
            .is_some_and(|c| c.total() == 1)
    })
    .await;

    // A CE listed by a queue is not deleted: it shows DELETING and waits.
    ces.delete("second", &DeleteParams::default())
        .await
        .expect("delete ce");
    let deleting = wait_for(&ces, "second", "DELETING", |ce| {
        ce.status.as_ref().and_then(|s| s.status) == Some(CeStatus::Deleting)
    })
    .await;
    assert_eq!(
        deleting.status.and_then(|s| s.status_reason).as_deref(),
        Some("being deleted; still listed by job queue(s) high")
    );
    wait_for(&queues, "high", "INVALID while its CE is deleted", |q| {
        q.status
            .as_ref()
            .and_then(|s| s.status_reason.as_deref())
            .is_some_and(|r| r.contains("compute environment second is being deleted"))
    })
    .await;

    // The queue's deletion waits for its unfinished job; then the CE can go too.
    queues
        .delete("high", &DeleteParams::default())
        .await
        .expect("delete queue");
    wait_for(&queues, "high", "held by its job", |q| {
        q.status
            .as_ref()
            .and_then(|s| ready_condition(&s.conditions))
            .is_some_and(|c| c.reason == REASON_IN_USE)
    })
    .await;
    jobs.delete("j1", &DeleteParams::default())
        .await
        .expect("delete job");
    wait_gone(&queues, "high").await;
    wait_gone(&ces, "second").await;
    assert!(ces.get_opt("first").await.expect("get").is_some());
    operator.stop().await.expect("clean stop");
    env.stop().await;
}
