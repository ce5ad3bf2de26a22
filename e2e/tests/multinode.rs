//! End-to-end: multi-node parallel jobs (issue 11) through the real `barge` binary — the node
//! environment and the main node's address, main node first, one Kubernetes node per job node,
//! the headless Service (gone with its job) and pod DNS names, node groups running different
//! commands, the main node deciding the outcome (children stopped, retried as a whole gang, a
//! child's failure ignored), two gangs that cannot both fit running one after the other with no
//! partial gang (from the pod history), GPU node groups, the operator killed while a gang is
//! half-created, the AWS multinode job definition imported and run, the SPOT refusal,
//! `terminate` and `timeout` stopping every node, a lost node under a child failing the attempt
//! with a "Host ..." reason, and dependencies on and of a multi-node job.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use barge_crds::consts::{
    ANNOTATION_GANG_NODES, CONDITION_SCHEDULABLE, ENV_JOB_ID, ENV_JOB_MAIN_NODE_INDEX,
    ENV_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS, ENV_JOB_NODE_INDEX, ENV_JOB_NUM_NODES,
    LABEL_INSTANCE_TYPE, LABEL_NODE_INDEX, REASON_MULTI_NODE_ON_SPOT,
    STATUS_REASON_HOST_TERMINATED_PREFIX, STATUS_REASON_TIMEOUT,
};
use barge_crds::job::{JobStatus, NodePropertiesStatus};
use barge_crds::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams};
use kube::ResourceExt;

use support::{
    attempts, barge_import_aws, compute_environment_of, elastic_pool_and_queue, indent, job,
    job_definition, job_queue, scripted_tags, status_of, status_reason, trace_spans, traced,
    traced_span, E2e, Options, PodHistory, PodObservation, GATE,
};

/// A node range of a multi-node definition: its `targetNodes`, the script its nodes run with
/// `sh -c`, and how many GPUs each of its nodes asks for.
struct Range<'a> {
    target: &'a str,
    script: &'a str,
    gpus: u32,
}

impl<'a> Range<'a> {
    fn new(target: &'a str, script: &'a str) -> Self {
        Self {
            target,
            script,
            gpus: 0,
        }
    }

    fn with_gpus(mut self, gpus: u32) -> Self {
        self.gpus = gpus;
        self
    }
}

/// A `type: multinode` JobDefinition of `num_nodes` nodes, main node `main`, whose ranges ask
/// for 1 vCPU and 64 MiB per node (plus their GPUs); `extra` is spec-level YAML.
fn multinode_definition(
    name: &str,
    num_nodes: u32,
    main: u32,
    ranges: &[Range<'_>],
    extra: &str,
) -> String {
    let ranges: String = ranges
        .iter()
        .map(|r| {
            let gpus = if r.gpus > 0 {
                format!("\n            - {{type: GPU, value: \"{}\"}}", r.gpus)
            } else {
                String::new()
            };
            format!(
                r#"      - targetNodes: "{target}"
        container:
          image: busybox:1.36
          command:
            - sh
            - -c
            - |
{script}
          resourceRequirements:
            - {{type: VCPU, value: "1"}}
            - {{type: MEMORY, value: "64"}}{gpus}
"#,
                target = r.target,
                script = indent(r.script, 14),
            )
        })
        .collect();
    format!(
        r#"---
apiVersion: batch.barge.dev/v1alpha1
kind: JobDefinition
metadata: {{name: {name}}}
spec:
  type: multinode
  nodeProperties:
    numNodes: {num_nodes}
    mainNode: {main}
    nodeRangeProperties:
{ranges}{extra}
"#,
        extra = indent(extra, 2),
    )
}

/// An environment `ce` of `nodes` c5.large nodes (2 vCPUs each) and a queue `q` over it, ready.
async fn nodes_and_queue(env: &E2e, nodes: usize) {
    env.apply(&format!(
        "{}{}",
        compute_environment_of("ce", nodes * 2, "c5.large"),
        job_queue("q", 10, &["ce"])
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", nodes).await;
}

/// The pod name of node `node` of attempt `attempt` of `job`.
fn node_pod(job: &str, attempt: u32, node: u32) -> String {
    format!("{job}-{attempt}-node-{node}")
}

/// Shell: writes the node's AWS_BATCH_* environment and hostname to `${DIR}/<tag>-<index>`
/// (atomically, so that a reader never sees half a file).
fn record_env(tag: &str) -> String {
    format!(
        "f=${{DIR}}/{tag}-$AWS_BATCH_JOB_NODE_INDEX; {{ env | grep '^AWS_BATCH_' | sort; echo HOSTNAME=$HOSTNAME; }} > $f.tmp && mv $f.tmp $f"
    )
}

/// Shell: waits until the files `${DIR}/<tag>-<i>` exist for every listed node index.
fn wait_for_files(tag: &str, nodes: &[u32]) -> String {
    let tests: Vec<String> = nodes
        .iter()
        .map(|n| format!("[ -e ${{DIR}}/{tag}-{n} ]"))
        .collect();
    format!("until {}; do sleep 0.05; done", tests.join(" && "))
}

/// `KEY=value` lines of a file written by [`record_env`].
fn read_env(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn node_properties(job: &Job) -> NodePropertiesStatus {
    job.status
        .as_ref()
        .and_then(|s| s.node_properties.clone())
        .unwrap_or_else(|| {
            panic!(
                "status.nodeProperties of {}: {:#?}",
                job.name_any(),
                job.status
            )
        })
}

fn progress(job: &Job) -> Option<String> {
    job.status
        .as_ref()
        .and_then(|s| s.node_properties.as_ref())
        .and_then(|n| n.progress.clone())
}

fn node_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_else(|| panic!("pod {} is bound", pod.name_any()))
}

fn phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

/// The Kubernetes nodes the main pod's `batch.barge.dev/gang-nodes` annotation reserves.
fn gang_nodes(annotations: &BTreeMap<String, String>) -> Option<Vec<String>> {
    annotations
        .get(ANNOTATION_GANG_NODES)
        .map(|v| v.split(',').map(str::to_string).collect())
}

/// Waits until the pods of `job`'s attempt `attempt` are all there, and returns them by index.
async fn wait_node_pods(env: &E2e, job: &str, attempt: u32, nodes: u32) -> Vec<Pod> {
    let names: Vec<String> = (0..nodes).map(|n| node_pod(job, attempt, n)).collect();
    env.wait_until(&format!("the pods {names:?}"), || async {
        let pods = env.pods_of(job).await;
        names
            .iter()
            .map(|name| pods.iter().find(|p| &p.name_any() == name).cloned())
            .collect::<Option<Vec<Pod>>>()
    })
    .await
}

/// The pods of `job`'s attempt `attempt` as they were created (from the watch history: the
/// pods of nodes stopped before the kubelet reported them started are deleted), by index.
async fn created_node_pods(
    env: &E2e,
    history: &PodHistory,
    job: &str,
    attempt: u32,
    nodes: u32,
) -> Vec<Pod> {
    let names: Vec<String> = (0..nodes).map(|n| node_pod(job, attempt, n)).collect();
    env.wait_until(&format!("the pods {names:?} in the watch"), || async {
        history.first_seen(&names)
    })
    .await
}

/// `kubectl get bjob <job>` against the test's cluster, or None (with a message) without
/// kubectl. Run asynchronously: the simulated API server shares the test's runtime.
async fn kubectl_get_job(env: &E2e, job: &str) -> Option<String> {
    let out = match tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(env.kubeconfig())
        .args(["get", "bjob", job, "-n", &env.ns])
        .output()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("kubectl is not available ({e}): the printer column is not checked");
            return None;
        }
    };
    assert!(out.status.success(), "kubectl get bjob: {out:?}");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn four_nodes_see_their_environment_and_the_main_node_starts_first() {
    let env = E2e::start("mnp-env").await;
    nodes_and_queue(&env, 4).await;
    let script = format!(
        "echo \"node-$AWS_BATCH_JOB_NODE_INDEX start $(date +%s%N)\" >> ${{TRACE}}\n{}\n{GATE}",
        record_env("env")
    );
    env.apply(&multinode_definition(
        "mpi",
        4,
        0,
        &[Range::new("0:", &script)],
        "",
    ))
    .await;
    env.apply(&job("ring", "q", "mpi", "")).await;

    // All four nodes run (held by the gate): the status and `kubectl get bjob` say so.
    let running = env
        .wait_for(&env.jobs(), "ring", "running on 4/4 nodes", |j| {
            progress(j).as_deref() == Some("4/4 nodes")
        })
        .await;
    assert_eq!(status_of(&running), Some(JobStatus::Running));
    if let Some(table) = kubectl_get_job(&env, "ring").await {
        let header = table.lines().next().unwrap_or_default();
        assert!(
            header.contains("NODES"),
            "the Nodes printer column:\n{table}"
        );
        assert!(table.contains("4/4 nodes"), "{table}");
    }
    let pods = wait_node_pods(&env, "ring", 1, 4).await;
    let main_ip = env
        .wait_until("the main pod's IP", || async {
            env.pods()
                .get(&node_pod("ring", 1, 0))
                .await
                .ok()
                .and_then(|p| p.status?.pod_ip)
        })
        .await;
    let nodes: BTreeSet<String> = pods.iter().map(node_of).collect();
    assert_eq!(
        nodes.len(),
        4,
        "one Kubernetes node per job node: {nodes:?}"
    );
    let reserved = gang_nodes(pods[0].annotations()).expect("the main pod's gang-nodes annotation");
    assert_eq!(
        reserved,
        pods.iter().map(node_of).collect::<Vec<_>>(),
        "the main pod reserves, in index order, the nodes the pods run on"
    );

    // The headless Service and the pods' DNS names.
    let status = node_properties(&running);
    let service_name = status
        .service_name
        .clone()
        .expect("status.nodeProperties.serviceName");
    let services: Api<Service> = Api::namespaced(env.client.clone(), &env.ns);
    let service = services
        .get(&service_name)
        .await
        .unwrap_or_else(|e| panic!("Service {service_name}: {e}"));
    let spec = service.spec.clone().expect("service spec");
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"), "headless");
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    let selector = spec.selector.clone().unwrap_or_default();
    assert!(!selector.is_empty(), "the Service selects the job's pods");
    assert!(
        service
            .owner_references()
            .iter()
            .any(|o| o.kind == "Job" && Some(&o.uid) == running.metadata.uid.as_ref()),
        "the job owns its Service: {:?}",
        service.owner_references()
    );
    for (n, pod) in pods.iter().enumerate() {
        let pod_spec = pod.spec.clone().expect("pod spec");
        assert_eq!(pod_spec.hostname, Some(format!("node-{n}")));
        assert_eq!(pod_spec.subdomain.as_deref(), Some(service_name.as_str()));
        assert_eq!(
            pod.labels().get(LABEL_NODE_INDEX),
            Some(&n.to_string()),
            "node-index label"
        );
        for (k, v) in &selector {
            assert_eq!(
                pod.labels().get(k),
                Some(v),
                "the Service selects {}",
                pod.name_any()
            );
        }
    }

    // status.nodeProperties while all nodes run.
    assert_eq!((status.num_nodes, status.main_node), (4, 0));
    assert_eq!(status.main_node_pod_name, Some(node_pod("ring", 1, 0)));
    assert_eq!(status.main_node_private_ipv4_address, Some(main_ip.clone()));
    assert_eq!(status.node_groups.len(), 1, "{:?}", status.node_groups);
    assert_eq!(status.node_groups[0].target_nodes, "0:");
    assert_eq!(status.node_groups[0].status_summary.RUNNING, 4);

    // Every node's environment.
    let dir = env.files_dir();
    for n in 0..4u32 {
        let vars = env
            .wait_until(&format!("node {n}'s environment file"), || async {
                let path = dir.join(format!("env-{n}"));
                path.exists().then(|| read_env(&path))
            })
            .await;
        assert_eq!(
            vars.get(ENV_JOB_NODE_INDEX),
            Some(&n.to_string()),
            "{vars:?}"
        );
        assert_eq!(vars.get(ENV_JOB_NUM_NODES).map(String::as_str), Some("4"));
        assert_eq!(
            vars.get(ENV_JOB_ID),
            Some(&format!("{}#{n}", running.uid().unwrap_or_default())),
            "a node's job id is the job's, '#', its index (as AWS Batch's node jobs)"
        );
        assert_eq!(
            vars.get(ENV_JOB_MAIN_NODE_INDEX).map(String::as_str),
            Some("0")
        );
        assert_eq!(vars.get("HOSTNAME"), Some(&format!("node-{n}")));
        if n == 0 {
            assert_eq!(
                vars.get(ENV_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS),
                None,
                "the main node is not told its own address"
            );
        } else {
            assert_eq!(
                vars.get(ENV_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS),
                Some(&main_ip),
                "node {n} gets the main pod's status.podIP"
            );
        }
    }

    env.open_gate();
    let done = env.wait_job("ring", JobStatus::Succeeded).await;
    assert_eq!(attempts(&done), 1);
    let spans = trace_spans(&env.trace());
    let start = |n: u32| {
        spans
            .get(&format!("node-{n}"))
            .and_then(|s| s.0)
            .unwrap_or_else(|| panic!("node {n} traced its start: {spans:?}"))
    };
    for n in 1..4 {
        assert!(
            start(0) < start(n),
            "the main node's command started before node {n}'s: {spans:?}"
        );
    }
    // The Service goes with its job (owner reference).
    env.jobs()
        .delete("ring", &DeleteParams::default())
        .await
        .expect("delete the job");
    env.wait_until("the job's Service to be garbage-collected", || async {
        services
            .get_opt(&service_name)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn two_node_groups_run_different_commands() {
    let env = E2e::start("mnp-groups").await;
    nodes_and_queue(&env, 3).await;
    let main = format!(
        "echo \"main $AWS_BATCH_JOB_NODE_INDEX\" > ${{DIR}}/role-$AWS_BATCH_JOB_NODE_INDEX\n{}",
        wait_for_files("role", &[1, 2])
    );
    let worker =
        "echo \"worker $AWS_BATCH_JOB_NODE_INDEX\" > ${DIR}/role-$AWS_BATCH_JOB_NODE_INDEX";
    env.apply(&multinode_definition(
        "mainworker",
        3,
        0,
        &[Range::new("0", &main), Range::new("1:", worker)],
        "",
    ))
    .await;
    env.apply(&job("groups", "q", "mainworker", "")).await;
    let done = env.wait_job("groups", JobStatus::Succeeded).await;
    let dir = env.files_dir();
    let role = |n: u32| {
        std::fs::read_to_string(dir.join(format!("role-{n}")))
            .unwrap_or_else(|e| panic!("node {n}'s role file: {e}"))
            .trim()
            .to_string()
    };
    assert_eq!(role(0), "main 0");
    assert_eq!(role(1), "worker 1");
    assert_eq!(role(2), "worker 2");
    let groups = node_properties(&done).node_groups;
    let targets: Vec<&str> = groups.iter().map(|g| g.target_nodes.as_str()).collect();
    assert_eq!(targets, ["0", "1:"], "{groups:?}");
    let total = |g: &barge_crds::job::NodeGroupStatus| {
        let s = &g.status_summary;
        s.SUBMITTED + s.PENDING + s.RUNNABLE + s.STARTING + s.RUNNING + s.SUCCEEDED + s.FAILED
    };
    assert_eq!((total(&groups[0]), total(&groups[1])), (1, 2), "{groups:?}");
    assert_eq!(groups[0].status_summary.SUCCEEDED, 1, "{groups:?}");
    env.finish().await;
}

#[tokio::test]
async fn the_main_node_ending_ends_the_job_and_stops_the_other_nodes() {
    let env = E2e::start("mnp-main-ends").await;
    nodes_and_queue(&env, 3).await;
    // The children note their shell's pid and would run for ten minutes.
    let script = "if [ \"$AWS_BATCH_JOB_NODE_INDEX\" = \"$AWS_BATCH_JOB_MAIN_NODE_INDEX\" ]; then\n  until [ -e ${DIR}/pid-1 ] && [ -e ${DIR}/pid-2 ]; do sleep 0.05; done\n  exit 0\nfi\necho $$ > ${DIR}/pid-$AWS_BATCH_JOB_NODE_INDEX.tmp && mv ${DIR}/pid-$AWS_BATCH_JOB_NODE_INDEX.tmp ${DIR}/pid-$AWS_BATCH_JOB_NODE_INDEX\nsleep 600";
    env.apply(&multinode_definition(
        "longchildren",
        3,
        0,
        &[Range::new("0:", script)],
        "",
    ))
    .await;
    env.apply(&job("ends", "q", "longchildren", "")).await;
    let started = std::time::Instant::now();
    let done = env.wait_job("ends", JobStatus::Succeeded).await;
    assert_eq!(attempts(&done), 1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the job ended with its main node, not with the children"
    );
    let dir = env.files_dir();
    for n in [1u32, 2] {
        let name = node_pod("ends", 1, n);
        env.wait_until(&format!("{name} to be stopped"), || async {
            match env.pods().get_opt(&name).await.ok()? {
                None => Some(()),
                Some(p) => matches!(phase(&p).as_str(), "Failed" | "Succeeded").then_some(()),
            }
        })
        .await;
        let pid = std::fs::read_to_string(dir.join(format!("pid-{n}")))
            .unwrap_or_else(|e| panic!("node {n}'s pid: {e}"));
        let proc_dir = format!("/proc/{}", pid.trim());
        env.wait_until(
            &format!("node {n}'s process ({proc_dir}) to be gone"),
            || async { (!Path::new(&proc_dir).exists()).then_some(()) },
        )
        .await;
    }
    // Once the nodes are stopped, the finished job's status counts none of them as running.
    env.wait_for(&env.jobs(), "ends", "counting no running node", |j| {
        j.status
            .as_ref()
            .and_then(|s| s.node_properties.as_ref())
            .is_some_and(|n| {
                n.progress.as_deref() == Some("0/3 nodes")
                    && n.node_groups
                        .iter()
                        .all(|g| g.status_summary.RUNNING == 0 && g.status_summary.STARTING == 0)
            })
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn a_failed_main_node_retries_the_whole_gang_with_new_pods() {
    let env = E2e::start("mnp-retry").await;
    nodes_and_queue(&env, 3).await;
    let uids = env.watch_pod_uids();
    // Attempt 1: the main node fails once both children run; attempt 2 succeeds.
    let script = format!(
        "{record}\nif [ \"$AWS_BATCH_JOB_NODE_INDEX\" = 0 ]; then\n  {wait}\n  [ \"$AWS_BATCH_JOB_ATTEMPT\" = 2 ] && exit 0\n  exit 1\nfi\n[ \"$AWS_BATCH_JOB_ATTEMPT\" = 2 ] || sleep 600",
        record = record_env("a$AWS_BATCH_JOB_ATTEMPT"),
        wait = wait_for_files("a$AWS_BATCH_JOB_ATTEMPT", &[1, 2]),
    );
    env.apply(&multinode_definition(
        "flaky",
        3,
        0,
        &[Range::new("0:", &script)],
        "retryStrategy: {attempts: 2}",
    ))
    .await;
    env.apply(&job("retried", "q", "flaky", "")).await;
    let done = env.wait_job("retried", JobStatus::Succeeded).await;
    assert_eq!(attempts(&done), 2, "{:#?}", done.status);
    let status = done.status.clone().expect("status");
    assert_eq!(
        status.attempts[0].container.exit_code,
        Some(1),
        "attempt 1 is the main node's exit: {:#?}",
        status.attempts
    );
    assert_eq!(
        status.attempts[1].container.pod_name,
        Some(node_pod("retried", 2, 0)),
        "{:#?}",
        status.attempts
    );
    let dir = env.files_dir();
    for attempt in [1u32, 2] {
        for n in 0..3u32 {
            let vars = read_env(&dir.join(format!("a{attempt}-{n}")));
            assert_eq!(
                vars.get("AWS_BATCH_JOB_ATTEMPT"),
                Some(&attempt.to_string()),
                "{vars:?}"
            );
        }
    }
    let seen = env
        .wait_until("all six pods in the watch", || async {
            let seen = uids.snapshot();
            (seen.len() >= 6).then_some(seen)
        })
        .await;
    let expected: Vec<String> = [1u32, 2]
        .iter()
        .flat_map(|a| (0..3).map(move |n| node_pod("retried", *a, n)))
        .collect();
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), expected);
    let all: BTreeSet<&String> = seen.values().flatten().collect();
    assert_eq!(
        all.len(),
        6,
        "six distinct pods, none created twice: {seen:?}"
    );
    assert_eq!(
        node_properties(&done).main_node_pod_name,
        Some(node_pod("retried", 2, 0))
    );
    env.finish().await;
}

#[tokio::test]
async fn a_failed_child_node_changes_nothing() {
    let env = E2e::start("mnp-child-fails").await;
    nodes_and_queue(&env, 3).await;
    // Main node 1 (not 0); node 2 fails at once, node 0 and the main wait for the gate.
    let script = format!("[ \"$AWS_BATCH_JOB_NODE_INDEX\" = 2 ] && exit 1\n{GATE}");
    env.apply(&multinode_definition(
        "childfails",
        3,
        1,
        &[Range::new("0:", &script)],
        "retryStrategy: {attempts: 2}",
    ))
    .await;
    env.apply(&job("child", "q", "childfails", "")).await;
    let failed_child = node_pod("child", 1, 2);
    env.wait_for(&env.pods(), &failed_child, "Failed", |p| {
        phase(p) == "Failed"
    })
    .await;
    // The operator has seen it once the node group counts it.
    let seen = env
        .wait_for(&env.jobs(), "child", "counting the failed node", |j| {
            j.status
                .as_ref()
                .and_then(|s| s.node_properties.as_ref())
                .is_some_and(|n| n.node_groups.iter().any(|g| g.status_summary.FAILED == 1))
        })
        .await;
    assert_eq!(
        status_of(&seen),
        Some(JobStatus::Running),
        "{:#?}",
        seen.status
    );
    assert_eq!(
        attempts(&seen),
        0,
        "no attempt has ended: {:#?}",
        seen.status
    );
    for n in [0u32, 1] {
        let pod = env.pods().get(&node_pod("child", 1, n)).await.expect("pod");
        assert_eq!(phase(&pod), "Running", "{} still runs", pod.name_any());
    }
    env.open_gate();
    let done = env.wait_job("child", JobStatus::Succeeded).await;
    assert_eq!(attempts(&done), 1, "{:#?}", done.status);
    assert_eq!(
        done.status.as_ref().expect("status").attempts[0]
            .container
            .pod_name,
        Some(node_pod("child", 1, 1)),
        "the attempt is the main node's"
    );
    let names: Vec<String> = env
        .pods_of("child")
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert!(
        names.iter().all(|n| n.starts_with("child-1-")),
        "no second attempt: {names:?}"
    );
    env.finish().await;
}

/// Each gang's pods in the history: name → its observations in order.
fn pods_by_name(history: &[PodObservation]) -> BTreeMap<String, Vec<&PodObservation>> {
    let mut by_name: BTreeMap<String, Vec<&PodObservation>> = BTreeMap::new();
    for o in history {
        by_name.entry(o.name.clone()).or_default().push(o);
    }
    by_name
}

/// (created, ended) positions of a pod in the history; `ended` is None while it runs.
fn lifetime(observations: &[&PodObservation]) -> (usize, Option<usize>) {
    let created = observations.first().map(|o| o.seq).unwrap_or(usize::MAX);
    let ended = observations.iter().find(|o| o.ended()).map(|o| o.seq);
    (created, ended)
}

#[tokio::test]
async fn two_gangs_that_cannot_both_fit_run_one_after_the_other_never_partly_placed() {
    let env = E2e::start_with("mnp-gangs", Options::scripted()).await;
    let history = env.watch_pod_history();
    nodes_and_queue(&env, 4).await;
    env.apply(&multinode_definition(
        "three",
        3,
        0,
        &[Range::new("0:", "true")],
        "",
    ))
    .await;
    env.apply(&job_definition("single", "true", &[], "1", ""))
        .await;
    // Two gangs of 3 on 4 nodes, and two single jobs that could squeeze in beside a gang.
    env.apply(&format!(
        "{}{}{}{}",
        job("gang-a", "q", "three", &scripted_tags("2", 0)),
        job("gang-b", "q", "three", &scripted_tags("2", 0)),
        job("solo-a", "q", "single", &scripted_tags("1", 0)),
        job("solo-b", "q", "single", &scripted_tags("1", 0)),
    ))
    .await;
    for name in ["gang-a", "gang-b", "solo-a", "solo-b"] {
        env.wait_job(name, JobStatus::Succeeded).await;
    }
    let history = env
        .wait_until("every pod's end in the watch", || async {
            let snapshot = history.snapshot();
            let by_name = pods_by_name(&snapshot);
            let complete =
                by_name.len() >= 8 && by_name.values().all(|o| o.iter().any(|o| o.ended()));
            complete.then_some(snapshot)
        })
        .await;
    let by_name = pods_by_name(&history);
    let dump = || {
        history
            .iter()
            .map(|o| {
                format!(
                    "{:>4} {:?} {} node={:?} phase={:?} deleted={}",
                    o.seq, o.at, o.name, o.node, o.phase, o.deleted
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };

    // Each gang: its main reserves 3 distinct nodes and each node's pod runs on its own.
    let mut reserved: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for gang in ["gang-a", "gang-b"] {
        let main = &by_name[&node_pod(gang, 1, 0)];
        let nodes = main
            .iter()
            .find_map(|o| gang_nodes(&o.annotations))
            .unwrap_or_else(|| {
                panic!(
                    "{gang}'s main pod has its gang-nodes annotation\n{}",
                    dump()
                )
            });
        assert_eq!(
            nodes.iter().collect::<BTreeSet<_>>().len(),
            3,
            "{gang}: {nodes:?}"
        );
        for (n, node) in nodes.iter().enumerate() {
            let pod = &by_name[&node_pod(gang, 1, n as u32)];
            assert_eq!(
                pod[0].node.as_ref(),
                Some(node),
                "{gang} node {n} runs where reserved"
            );
        }
        reserved.insert(gang, nodes);
    }

    // While a gang holds a node (its main's creation to the end of its pod there), no other
    // Barge pod runs on it.
    for gang in ["gang-a", "gang-b"] {
        let (gang_start, _) = lifetime(&by_name[&node_pod(gang, 1, 0)]);
        for (n, node) in reserved[gang].iter().enumerate() {
            let (_, held_until) = lifetime(&by_name[&node_pod(gang, 1, n as u32)]);
            let held_until = held_until.expect("ended");
            for (name, observations) in &by_name {
                if name.starts_with(&format!("{gang}-"))
                    || observations[0].node.as_ref() != Some(node)
                {
                    continue;
                }
                let (created, ended) = lifetime(observations);
                let ended = ended.expect("ended");
                assert!(
                    ended < gang_start || created > held_until,
                    "{name} ran on {node} while {gang} held it (gang from #{gang_start} to #{held_until}, {name} from #{created} to #{ended})\n{}",
                    dump()
                );
            }
        }
    }

    // The gangs ran one after the other: the later one's main was created only after the
    // earlier one's pods ended on every node they share.
    let (a_start, _) = lifetime(&by_name[&node_pod("gang-a", 1, 0)]);
    let (b_start, _) = lifetime(&by_name[&node_pod("gang-b", 1, 0)]);
    let (first, second, second_start) = if a_start < b_start {
        ("gang-a", "gang-b", b_start)
    } else {
        ("gang-b", "gang-a", a_start)
    };
    let mut shared = 0;
    for (n, node) in reserved[first].iter().enumerate() {
        if reserved[second].contains(node) {
            shared += 1;
            let (_, ended) = lifetime(&by_name[&node_pod(first, 1, n as u32)]);
            assert!(
                ended.expect("ended") < second_start,
                "{second} was placed on {node} before {first}'s node {n} ended\n{}",
                dump()
            );
        }
    }
    assert!(shared >= 2, "two gangs of 3 on 4 nodes share nodes");
    eprintln!(
        "{first} on {:?} from #{}, {second} on {:?} from #{second_start}, {shared} nodes shared; history:\n{}",
        reserved[first],
        a_start.min(b_start),
        reserved[second],
        dump()
    );
    env.finish().await;
}

#[tokio::test]
async fn a_gpu_node_group_lands_only_on_gpu_nodes_with_the_gpu_limit() {
    let env = E2e::start_with("mnp-gpu", Options::scripted()).await;
    let history = env.watch_pod_history();
    env.apply(&elastic_pool_and_queue("c5.large, g4dn.xlarge"))
        .await;
    env.wait_compute_environment("${NS}-ce", 2).await;
    env.apply(&multinode_definition(
        "gpugang",
        3,
        0,
        &[
            Range::new("0", "true"),
            Range::new("1:", "true").with_gpus(1),
        ],
        "",
    ))
    .await;
    env.apply(&job("train", "q", "gpugang", &scripted_tags("1", 0)))
        .await;
    env.wait_job("train", JobStatus::Succeeded).await;
    let pods = created_node_pods(&env, &history, "train", 1, 3).await;
    for (n, pod) in pods.iter().enumerate() {
        let node = env.nodes().get(&node_of(pod)).await.expect("node");
        let node_gpus = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get("nvidia.com/gpu"))
            .map(|q| q.0.clone());
        let limit = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers[0].resources.as_ref())
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("nvidia.com/gpu"))
            .map(|q| q.0.clone());
        let instance_type = node.labels().get(LABEL_INSTANCE_TYPE).cloned();
        if n == 0 {
            assert_eq!(limit, None, "the main node asks for no GPU");
        } else {
            assert_eq!(limit.as_deref(), Some("1"), "node {n}'s GPU limit");
            assert_eq!(
                node_gpus.as_deref(),
                Some("1"),
                "node {n} runs on a node with a GPU ({instance_type:?})"
            );
            assert_eq!(instance_type.as_deref(), Some("g4dn.xlarge"));
        }
        eprintln!("node {n}: {} on {instance_type:?}", pod.name_any());
    }
    env.finish().await;
}

#[tokio::test]
async fn killing_the_operator_while_a_gang_is_half_created_creates_no_pod_twice() {
    if support::skip_on_real_cluster(
        "killing_the_operator_while_a_gang_is_half_created_creates_no_pod_twice",
    ) {
        return;
    }
    let mut env = E2e::start("mnp-kill").await;
    nodes_and_queue(&env, 3).await;
    let history = env.watch_pod_history();
    let faults = env.cluster().faults();
    // The kubelet cannot report pod status: the main pod never shows Running, so the other
    // nodes' pods cannot be created yet. The gang is placed, its main pod exists, the rest not.
    let status_blocked = barge_sim::apiserver::faults::FaultConfig {
        error_rate: 1.0,
        error_codes: vec![500],
        verbs: vec!["patch".into(), "update".into()],
        resources: vec!["pods/status".into()],
        ..Default::default()
    };
    faults.set(status_blocked.clone());
    let script = format!(
        "{}\nif [ \"$AWS_BATCH_JOB_NODE_INDEX\" = 0 ]; then {}; fi",
        record_env("k-${AWS_BATCH_JOB_ID%#*}"),
        wait_for_files("k-${AWS_BATCH_JOB_ID%#*}", &[1, 2])
    );
    env.apply(&multinode_definition(
        "killed",
        3,
        0,
        &[Range::new("0:", &script)],
        "",
    ))
    .await;
    env.apply(&job("half", "q", "killed", "")).await;
    let main = node_pod("half", 1, 0);
    let main_pod = env.wait_for(&env.pods(), &main, "created", |_| true).await;
    assert!(
        gang_nodes(main_pod.annotations()).is_some(),
        "the main pod carries the gang's reservation"
    );
    env.kill_operator();
    let names: Vec<String> = env
        .pods_of("half")
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert_eq!(
        names,
        std::slice::from_ref(&main),
        "killed with only the main pod created"
    );
    faults.clear();
    env.start_operator();

    let done = env.wait_job("half", JobStatus::Succeeded).await;
    assert_eq!(attempts(&done), 1, "{:#?}", done.status);
    let seen = env
        .wait_until("the gang's three pods in the watch", || async {
            let seen = history.uids();
            (seen.len() >= 3).then_some(seen)
        })
        .await;
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        (0..3).map(|n| node_pod("half", 1, n)).collect::<Vec<_>>()
    );
    let twice: Vec<&String> = seen
        .iter()
        .filter(|(_, u)| u.len() != 1)
        .map(|(n, _)| n)
        .collect();
    assert!(twice.is_empty(), "pods created twice: {seen:?}");
    let pods = created_node_pods(&env, &history, "half", 1, 3).await;
    let reserved = gang_nodes(main_pod.annotations()).expect("reservation");
    assert_eq!(
        pods.iter().map(node_of).collect::<Vec<_>>(),
        reserved,
        "the restarted operator put the nodes where the gang was reserved"
    );

    // Killed again with the gang partly created. The main pod is held as before; then pod
    // status flows again but most pod creates are refused (403, as by an admission policy),
    // which the operator retries with a backoff, so the children usually appear one at a
    // time; the operator is killed as soon as one of them exists.
    faults.set(status_blocked.clone());
    env.apply(&job("half2", "q", "killed", "")).await;
    env.wait_for(&env.pods(), &node_pod("half2", 1, 0), "created", |_| true)
        .await;
    faults.set(barge_sim::apiserver::faults::FaultConfig {
        error_rate: 0.6,
        error_codes: vec![403],
        verbs: vec!["create".into()],
        resources: vec!["pods".into()],
        ..Default::default()
    });
    env.wait_until("a child pod of half2", || async {
        let pods = env.pods_of("half2").await;
        (pods.len() >= 2).then_some(())
    })
    .await;
    env.kill_operator();
    faults.clear();
    let at_kill = env.pods_of("half2").await.len();
    env.start_operator();
    env.wait_job("half2", JobStatus::Succeeded).await;
    let seen = env
        .wait_until("half2's three pods in the watch", || async {
            let seen = history.uids();
            (seen.keys().filter(|k| k.starts_with("half2-")).count() >= 3).then_some(seen)
        })
        .await;
    let twice: Vec<&String> = seen
        .iter()
        .filter(|(_, u)| u.len() != 1)
        .map(|(n, _)| n)
        .collect();
    assert!(twice.is_empty(), "pods created twice: {seen:?}");
    eprintln!("second kill with {at_kill} of 3 pods of half2 created");
    env.finish().await;
}

#[tokio::test]
async fn the_aws_multinode_job_definition_imports_and_runs() {
    let env = E2e::start_with("mnp-import", Options::scripted()).await;
    let history = env.watch_pod_history();
    env.apply(&format!(
        "{}{}",
        compute_environment_of("ce", 24, "c4.xlarge"),
        job_queue("q", 10, &["ce"])
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", 6).await;
    env.apply(&barge_import_aws([barge_fixtures::aws(
        "jobdef-multinode.json",
    )]))
    .await;
    env.apply(&job("mpi", "q", "mpi-six-nodes", &scripted_tags("1", 0)))
        .await;
    let done = env.wait_job("mpi", JobStatus::Succeeded).await;
    assert_eq!(attempts(&done), 1);
    let status = node_properties(&done);
    assert_eq!((status.num_nodes, status.main_node), (6, 0));
    let pods = created_node_pods(&env, &history, "mpi", 1, 6).await;
    let nodes: BTreeSet<String> = pods.iter().map(node_of).collect();
    assert_eq!(nodes.len(), 6, "six nodes: {nodes:?}");
    for (n, pod) in pods.iter().enumerate() {
        let command = pod.spec.as_ref().expect("spec").containers[0]
            .command
            .clone()
            .unwrap_or_default();
        let expected = if n == 0 {
            "/opt/run-main.sh"
        } else {
            "/opt/run-worker.sh"
        };
        assert_eq!(command, [expected], "node {n}");
    }
    env.finish().await;
}

#[tokio::test]
async fn a_multinode_job_on_spot_only_environments_can_never_run() {
    let env = E2e::start_with("mnp-spot", Options::scripted()).await;
    env.apply(&format!(
        r#"---
apiVersion: batch.barge.dev/v1alpha1
kind: ComputeEnvironment
metadata: {{name: "${{NS}}-spot"}}
spec:
  type: MANAGED
  state: ENABLED
  computeResources:
    type: SPOT
    allocationStrategy: SPOT_CAPACITY_OPTIMIZED
    minvCpus: 8
    maxvCpus: 8
    instanceTypes: [c5.large]
    provider: {{simulated: {{}}}}
{}"#,
        job_queue("q", 10, &["spot"])
    ))
    .await;
    env.wait_compute_environment("${NS}-spot", 4).await;
    env.apply(&multinode_definition(
        "pair",
        2,
        0,
        &[Range::new("0:", "true")],
        "",
    ))
    .await;
    env.apply(&job("nospot", "q", "pair", &scripted_tags("1", 0)))
        .await;
    let blocked = env
        .wait_for(&env.jobs(), "nospot", "blocked for good", |j| {
            j.status.as_ref().map(|s| &s.conditions).is_some_and(|c| {
                c.iter().any(|c| {
                    c.type_ == CONDITION_SCHEDULABLE
                        && c.status == "False"
                        && c.reason == REASON_MULTI_NODE_ON_SPOT
                })
            })
        })
        .await;
    assert_eq!(
        status_of(&blocked),
        Some(JobStatus::Runnable),
        "{:#?}",
        blocked.status
    );
    assert!(
        status_reason(&blocked).starts_with("MISCONFIGURATION"),
        "statusReason {:?}",
        status_reason(&blocked)
    );
    assert!(env.pods_of("nospot").await.is_empty(), "no pod on SPOT");
    // A single job on the same queue runs: only the multi-node job is refused.
    env.apply(&job_definition("single", "true", &[], "1", ""))
        .await;
    env.apply(&job("solo", "q", "single", &scripted_tags("0", 0)))
        .await;
    env.wait_job("solo", JobStatus::Succeeded).await;
    env.finish().await;
}

/// Shell: notes the node's shell pid in `${DIR}/<tag>-<index>` (to check later that the
/// process is gone).
fn record_pid(tag: &str) -> String {
    format!("f=${{DIR}}/{tag}-$AWS_BATCH_JOB_NODE_INDEX; echo $$ > $f.tmp && mv $f.tmp $f")
}

/// Waits until the processes whose pids `${DIR}/<tag>-<n>` hold are gone, for every node `n`.
async fn wait_processes_gone(env: &E2e, tag: &str, nodes: u32) {
    let dir = env.files_dir();
    for n in 0..nodes {
        let pid = std::fs::read_to_string(dir.join(format!("{tag}-{n}")))
            .unwrap_or_else(|e| panic!("node {n}'s pid: {e}"));
        let proc_dir = format!("/proc/{}", pid.trim());
        env.wait_until(
            &format!("node {n}'s process ({proc_dir}) to be gone"),
            || async { (!Path::new(&proc_dir).exists()).then_some(()) },
        )
        .await;
    }
}

/// Waits until every node has written `${DIR}/<tag>-<n>`.
async fn wait_files(env: &E2e, tag: &str, nodes: u32) {
    let dir = env.files_dir();
    env.wait_until(&format!("the {nodes} nodes' {tag} files"), || async {
        (0..nodes)
            .all(|n| dir.join(format!("{tag}-{n}")).exists())
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn terminating_a_running_gang_stops_every_node() {
    let env = E2e::start("mnp-terminate").await;
    nodes_and_queue(&env, 3).await;
    let script = format!("{}\nsleep 600", record_pid("pid"));
    env.apply(&multinode_definition(
        "forever",
        3,
        0,
        &[Range::new("0:", &script)],
        "retryStrategy: {attempts: 2}",
    ))
    .await;
    env.apply(&job("stopme", "q", "forever", "")).await;
    wait_files(&env, "pid", 3).await;
    env.terminate("stopme", "stopped by the test", None).await;
    let done = env.wait_job("stopme", JobStatus::Failed).await;
    assert_eq!(status_reason(&done), "stopped by the test");
    assert_eq!(
        attempts(&done),
        1,
        "terminated, not retried: {:#?}",
        done.status
    );
    wait_processes_gone(&env, "pid", 3).await;
    env.finish().await;
}

#[tokio::test]
async fn the_timeout_covers_the_whole_attempt() {
    let env = E2e::start("mnp-timeout").await;
    nodes_and_queue(&env, 3).await;
    let script = format!("{}\nsleep 600", record_pid("pid"));
    env.apply(&multinode_definition(
        "slowgang",
        3,
        0,
        &[Range::new("0:", &script)],
        "retryStrategy: {attempts: 2}\ntimeout: {attemptDurationSeconds: 2}",
    ))
    .await;
    env.apply(&job("slow", "q", "slowgang", "")).await;
    let started = std::time::Instant::now();
    let done = env.wait_job("slow", JobStatus::Failed).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(45),
        "stopped at the timeout, long before the commands' 600 s"
    );
    assert_eq!(attempts(&done), 1, "a timed-out job is not retried");
    let attempt_reason = done.status.as_ref().expect("status").attempts[0]
        .status_reason
        .clone()
        .unwrap_or_default();
    assert!(
        status_reason(&done).contains(STATUS_REASON_TIMEOUT)
            || attempt_reason.contains(STATUS_REASON_TIMEOUT),
        "reason {:?} / attempt {attempt_reason:?}",
        status_reason(&done)
    );
    wait_processes_gone(&env, "pid", 3).await;
    env.finish().await;
}

#[tokio::test]
async fn a_lost_node_under_a_child_fails_the_attempt_with_a_host_reason() {
    if support::skip_on_real_cluster(
        "a_lost_node_under_a_child_fails_the_attempt_with_a_host_reason",
    ) {
        return;
    }
    let env = E2e::start("mnp-nodeloss").await;
    nodes_and_queue(&env, 4).await;
    // Attempt 1 runs until the test takes a child's node away; attempt 2 ends at once.
    let script = format!(
        "[ \"$AWS_BATCH_JOB_ATTEMPT\" = 2 ] && exit 0\n{}\nsleep 600",
        record_pid("pid")
    );
    env.apply(&multinode_definition(
        "fragilegang",
        3,
        0,
        &[Range::new("0:", &script)],
        "retryStrategy:\n  attempts: 2\n  evaluateOnExit:\n    - {onStatusReason: \"Host*\", action: RETRY}\n    - {onReason: \"*\", action: EXIT}",
    ))
    .await;
    env.apply(&job("fragile", "q", "fragilegang", "")).await;
    wait_files(&env, "pid", 3).await;
    let child = env
        .pods()
        .get(&node_pod("fragile", 1, 2))
        .await
        .expect("node 2's pod");
    let node = node_of(&child);
    assert_eq!(env.lose_node(&node), 1, "node 2's pod alone ran on {node}");

    let done = env.wait_job("fragile", JobStatus::Succeeded).await;
    let status = done.status.clone().expect("status");
    assert_eq!(status.attempts.len(), 2, "{:#?}", status.attempts);
    let first_reason = status.attempts[0].status_reason.clone().unwrap_or_default();
    assert!(
        first_reason.starts_with(STATUS_REASON_HOST_TERMINATED_PREFIX),
        "the first attempt ended with the child's host: {first_reason:?}"
    );
    // The first attempt's other nodes were stopped.
    wait_processes_gone(&env, "pid", 2).await;
    env.finish().await;
}

#[tokio::test]
async fn multinode_jobs_take_and_satisfy_dependencies() {
    let env = E2e::start("mnp-deps").await;
    nodes_and_queue(&env, 3).await;
    env.apply(&job_definition(
        "step",
        &traced("$0", "sleep 0.2"),
        &["Ref::label"],
        "1",
        "",
    ))
    .await;
    let main = traced("gang", &wait_for_files("dep", &[1, 2]));
    let child = "f=${DIR}/dep-$AWS_BATCH_JOB_NODE_INDEX; touch $f";
    env.apply(&multinode_definition(
        "gang",
        3,
        0,
        &[Range::new("0", &main), Range::new("1:", child)],
        "",
    ))
    .await;
    // Submitted last-first, so that submission order cannot explain the run order.
    env.apply(&job(
        "after",
        "q",
        "step",
        "parameters: {label: after}\ndependsOn: [{jobName: gang}]\n",
    ))
    .await;
    env.apply(&job(
        "gang",
        "q",
        "gang",
        "dependsOn: [{jobName: before}]\n",
    ))
    .await;
    env.apply(&job("before", "q", "step", "parameters: {label: before}\n"))
        .await;
    for name in ["before", "gang", "after"] {
        env.wait_job(name, JobStatus::Succeeded).await;
    }
    let spans = trace_spans(&env.trace());
    let span = |name: &str| traced_span(&spans, name);
    let (before, gang, after) = (span("before"), span("gang"), span("after"));
    assert!(
        gang.0 > before.1,
        "the gang started after its dependency: {spans:?}"
    );
    assert!(
        after.0 > gang.1,
        "the dependent started after the gang: {spans:?}"
    );
    env.finish().await;
}
