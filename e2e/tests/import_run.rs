//! End-to-end: what `barge import aws` prints runs as imported (issue 13, item 6). AWS documents
//! — a DescribeJobDefinitions export with two ACTIVE revisions and an INACTIVE one, a SubmitJob
//! naming the newest revision by ARN, tmpfs mounts with mount options, shared memory, tags that
//! propagate, and a multi-node definition whose node range picks its instance type with AWS's
//! `instanceTypes` — go through the real `barge` binary, its output is applied to barge-sim as
//! it is, and the jobs run with what the documents asked for: the newest revision's command,
//! memory-backed volumes of the AWS sizes at the AWS paths, the tags on the pods, the node
//! range on nodes of its instance type.

mod support;

use std::collections::BTreeMap;

use barge_crds::consts::{LABEL_INSTANCE_TYPE, LABEL_JOB_DEFINITION_REVISION};
use barge_crds::job::JobStatus;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use serde_json::{json, Value};

use support::{
    barge_import_aws, compute_environment_of, elastic_pool_and_queue, job_queue, E2e, Options,
    PodHistory,
};

/// Runs `barge import aws` on `documents` (file name, JSON); returns stdout, failing the test
/// on a non-zero exit.
fn import(env: &E2e, documents: &[(&str, Value)]) -> String {
    let dir = env.files_dir();
    let paths: Vec<String> = documents
        .iter()
        .map(|(name, document)| {
            let path = dir.join(name);
            std::fs::write(&path, serde_json::to_string_pretty(document).expect("JSON"))
                .expect("write the AWS document");
            path.display().to_string()
        })
        .collect();
    barge_import_aws(&paths)
}

/// The AWS tags that make barge-sim's scripted runtime run a pod for `seconds` and exit 0; with
/// `propagateTags` Barge puts them on the pods as annotations.
fn scripted_aws_tags(seconds: &str) -> Value {
    json!({
        "sim.barge.dev/runtime": "scripted",
        "sim.barge.dev/duration-seconds": seconds,
        "sim.barge.dev/exit-code": "0"
    })
}

/// The pods of `job` as the watch showed them (the last observation of each).
fn pods_of(history: &PodHistory, job: &str) -> Vec<Pod> {
    let mut last: BTreeMap<String, Pod> = BTreeMap::new();
    for observation in history.snapshot() {
        if observation
            .labels
            .get(barge_crds::consts::LABEL_JOB_NAME)
            .is_some_and(|j| j == job)
        {
            last.insert(observation.name.clone(), observation.pod);
        }
    }
    last.into_values().collect()
}

/// `(mount path, medium, size limit)` of the pod's main container's emptyDir mounts.
fn memory_mounts(pod: &Pod) -> BTreeMap<String, (Option<String>, Option<String>)> {
    let spec = pod.spec.as_ref().expect("spec");
    let volumes = spec.volumes.clone().unwrap_or_default();
    spec.containers[0]
        .volume_mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|mount| {
            let volume = volumes.iter().find(|v| v.name == mount.name)?;
            let empty_dir = volume.empty_dir.as_ref()?;
            Some((
                mount.mount_path,
                (
                    empty_dir.medium.clone(),
                    empty_dir.size_limit.as_ref().map(|q| q.0.clone()),
                ),
            ))
        })
        .collect()
}

#[tokio::test]
async fn an_imported_describe_job_definitions_export_runs_its_newest_revision_with_tmpfs() {
    let env = E2e::start_with("import-tmpfs", Options::scripted()).await;
    let history = env.watch_pod_history();
    env.apply(&format!(
        "{}{}",
        compute_environment_of("ce", 4, "c5.large"),
        job_queue("q", 10, &["ce"])
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", 1).await;
    let revision = |revision: i32, status: &str, tmpfs_path: &str, options: Value| {
        json!({
            "jobDefinitionName": "scratch_render",
            "jobDefinitionArn": format!("arn:aws:batch:us-east-1:012345678910:job-definition/scratch_render:{revision}"),
            "revision": revision,
            "status": status,
            "type": "container",
            "containerOrchestrationType": "ECS",
            "containerProperties": {
                "image": "busybox:1.36",
                "command": ["render", format!("revision-{revision}")],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
                "linuxParameters": {
                    "sharedMemorySize": 64,
                    "tmpfs": [{"containerPath": tmpfs_path, "size": 128, "mountOptions": options}]
                }
            }
        })
    };
    let export = json!({"jobDefinitions": [
        revision(3, "INACTIVE", "/old", json!(["noexec"])),
        revision(2, "ACTIVE", "/scratch", json!(["rw", "exec"])),
        revision(1, "ACTIVE", "/first", json!([])),
    ]});
    let submit = json!({
        "jobName": "render_frames",
        "jobQueue": env.render("${NS}-q"),
        "jobDefinition": "arn:aws:batch:us-east-1:012345678910:job-definition/scratch_render:2",
        "propagateTags": true,
        "tags": scripted_aws_tags("1")
    });
    let manifests = import(&env, &[("export.json", export), ("submit.json", submit)]);
    env.apply(&manifests).await;

    let done = env.wait_job("render-frames", JobStatus::Succeeded).await;
    assert_eq!(done.spec.job_definition, "scratch-render");
    let pods = pods_of(&history, "render-frames");
    assert_eq!(pods.len(), 1, "one attempt");
    let pod = &pods[0];
    assert_eq!(
        pod.spec.as_ref().expect("spec").containers[0].command,
        Some(vec!["render".to_string(), "revision-2".to_string()]),
        "the newest ACTIVE revision runs"
    );
    assert_eq!(
        pod.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_JOB_DEFINITION_REVISION))
            .map(String::as_str),
        Some("1"),
        "as Barge's first revision of the definition"
    );
    let memory = Some("Memory".to_string());
    assert_eq!(
        memory_mounts(pod),
        BTreeMap::from([
            (
                "/scratch".to_string(),
                (memory.clone(), Some("128Mi".to_string()))
            ),
            ("/dev/shm".to_string(), (memory, Some("64Mi".to_string()))),
        ])
    );
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("sim.barge.dev/runtime").map(String::as_str),
        Some("scripted"),
        "the AWS tags propagated to the pod"
    );
    env.finish().await;
}

#[tokio::test]
async fn an_imported_multinode_definition_runs_its_ranges_on_their_instance_types() {
    let env = E2e::start_with("import-mnp", Options::scripted()).await;
    let history = env.watch_pod_history();
    env.apply(&elastic_pool_and_queue("c5.large, c5.xlarge"))
        .await;
    env.wait_compute_environment("${NS}-ce", 1).await;
    let definition = json!({
        "jobDefinitionName": "mpi_ranks",
        "type": "multinode",
        "nodeProperties": {
            "numNodes": 3,
            "mainNode": 0,
            "nodeRangeProperties": [
                {"targetNodes": "0", "instanceTypes": ["c5.large"], "container": {
                    "image": "busybox:1.36", "command": ["main"], "vcpus": 1, "memory": 256}},
                {"targetNodes": "1:", "instanceTypes": ["c5.xlarge"], "container": {
                    "image": "busybox:1.36", "command": ["worker"], "vcpus": 2, "memory": 256,
                    "linuxParameters": {"tmpfs": [{"containerPath": "/shards", "size": 32}]}}}
            ]
        },
        "retryStrategy": {"attempts": 1},
        "propagateTags": true,
        "tags": scripted_aws_tags("1")
    });
    let submit = json!({
        "jobName": "mpi",
        "jobQueue": env.render("${NS}-q"),
        "jobDefinition": "mpi_ranks"
    });
    let manifests = import(&env, &[("mpi.json", definition), ("submit.json", submit)]);
    env.apply(&manifests).await;
    env.wait_job("mpi", JobStatus::Succeeded).await;

    let nodes: Api<Node> = env.nodes();
    let pods = pods_of(&history, "mpi");
    assert_eq!(pods.len(), 3, "one pod per node");
    for pod in &pods {
        let spec = pod.spec.as_ref().expect("spec");
        let command = spec.containers[0].command.clone().unwrap_or_default();
        let node = nodes
            .get(spec.node_name.as_deref().expect("bound"))
            .await
            .expect("the pod's node");
        let instance_type = node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_INSTANCE_TYPE))
            .cloned();
        match command.first().map(String::as_str) {
            Some("main") => {
                assert_eq!(instance_type.as_deref(), Some("c5.large"));
                assert!(memory_mounts(pod).is_empty());
            }
            Some("worker") => {
                assert_eq!(instance_type.as_deref(), Some("c5.xlarge"));
                assert_eq!(
                    memory_mounts(pod).get("/shards"),
                    Some(&(Some("Memory".to_string()), Some("32Mi".to_string())))
                );
            }
            other => panic!("unexpected command {other:?}"),
        }
    }
    env.finish().await;
}
