//! The simulated kubelet with the process runtime against the in-process sim API server: real
//! commands with the pod's environment (Downward API, Secrets, ConfigMaps), logs through
//! `pods/log`, exit codes, SIGTERM/SIGKILL on deletion, activeDeadlineSeconds, node loss.

mod kubelet_support;

use std::time::Duration;

use barge_sim::kubelet::RuntimeKind;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, LogParams, Patch, PatchParams, PostParams};
use kubelet_support::*;
use serde_json::json;

fn sh(name: &str, script: &str) -> serde_json::Value {
    json!({"name": name, "image": "busybox", "command": ["/bin/sh", "-c", script]})
}

fn hold(mut pod: serde_json::Value) -> serde_json::Value {
    pod["metadata"]["finalizers"] = json!(["test.barge.dev/hold"]);
    pod
}

async fn release(sim: &Sim, name: &str) {
    sim.pods("default")
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("drop finalizer");
}

#[tokio::test]
async fn runs_commands_with_downward_api_secrets_and_logs() {
    let sim = Sim::start(RuntimeKind::Process, |_| {}).await;
    sim.ready_node("n1", None).await;
    let secrets: Api<Secret> = Api::namespaced(sim.client.clone(), "default");
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "creds"}, "stringData": {"token": "s3cret"}}),
    )
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    let cms: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"MODE": "fast"}}))
            .expect("cm");
    cms.create(&PostParams::default(), &cm).await.expect("cm");

    let mut c = sh("main", "echo name=$POD_NAME ns=$POD_NS uid=$POD_UID attempt=$ATTEMPT node=$NODE ip=$POD_IP host=$HOST_IP token=$TOKEN mode=$MODE; echo to-stderr >&2; exit 4");
    c["env"] = json!([
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "ATTEMPT", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['batch.barge.dev/attempt']"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
    ]);
    c["envFrom"] = json!([{"configMapRef": {"name": "settings"}}]);
    let mut p = pod("env", Some("n1"), json!({}), c);
    p["metadata"]["labels"] = json!({"batch.barge.dev/attempt": "2"});
    let created = sim.create_pod("default", p).await;
    let uid = created.metadata.uid.clone().expect("uid");
    let p = sim
        .wait_pod("default", "env", "Failed", |p| phase(p) == "Failed")
        .await;
    let s = status(&p);
    assert_eq!(
        s["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        4
    );
    assert_eq!(
        s["containerStatuses"][0]["state"]["terminated"]["reason"],
        "Error"
    );
    let ip = s["podIP"].as_str().expect("pod ip").to_string();
    let logs = sim
        .pods("default")
        .logs("env", &LogParams::default())
        .await
        .expect("pods/log");
    assert_eq!(
        logs,
        format!("name=env ns=default uid={uid} attempt=2 node=n1 ip={ip} host=127.0.0.1 token=s3cret mode=fast\nto-stderr\n")
    );
    let tail = sim
        .pods("default")
        .logs(
            "env",
            &LogParams {
                tail_lines: Some(1),
                timestamps: true,
                ..Default::default()
            },
        )
        .await
        .expect("tail");
    assert!(
        tail.ends_with(" to-stderr\n") && tail.starts_with("20"),
        "{tail}"
    );
    sim.stop().await;
}

#[tokio::test]
async fn missing_secret_waits_with_create_container_config_error_then_starts() {
    let sim = Sim::start(RuntimeKind::Process, |_| {}).await;
    sim.ready_node("n1", None).await;
    let mut c = sh("main", "echo $TOKEN");
    c["env"] = json!([{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}]);
    sim.create_pod("default", pod("waits", Some("n1"), json!({}), c))
        .await;
    let p = sim
        .wait_pod("default", "waits", "config error", |p| {
            status(p)["containerStatuses"][0]["state"]["waiting"]["reason"]
                == "CreateContainerConfigError"
        })
        .await;
    assert_eq!(
        status(&p)["containerStatuses"][0]["state"]["waiting"]["message"],
        "secret \"later\" not found"
    );
    assert_eq!(phase(&p), "Pending");
    let secrets: Api<Secret> = Api::namespaced(sim.client.clone(), "default");
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "later"}, "stringData": {"token": "now"}}),
    )
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    sim.wait_pod("default", "waits", "Succeeded", |p| phase(p) == "Succeeded")
        .await;
    assert_eq!(
        sim.pods("default")
            .logs("waits", &LogParams::default())
            .await
            .expect("logs"),
        "now\n"
    );
    sim.stop().await;
}

#[tokio::test]
async fn deletion_sends_sigterm_then_sigkill_after_the_grace_period() {
    let sim = Sim::start(RuntimeKind::Process, |_| {}).await;
    sim.ready_node("n1", None).await;
    // Exits cleanly on SIGTERM.
    let polite = sh(
        "main",
        "trap 'echo got SIGTERM; exit 0' TERM; echo started; while true; do sleep 0.05; done",
    );
    sim.create_pod(
        "default",
        hold(pod("polite", Some("n1"), json!({}), polite)),
    )
    .await;
    // Ignores SIGTERM: killed when its 1 s grace period is over.
    let stubborn = sh(
        "main",
        "trap '' TERM; echo started; while true; do sleep 0.05; done",
    );
    let mut p = hold(pod("stubborn", Some("n1"), json!({}), stubborn));
    p["spec"]["terminationGracePeriodSeconds"] = json!(1);
    sim.create_pod("default", p).await;
    for name in ["polite", "stubborn"] {
        sim.wait_pod("default", name, "Running", |p| phase(p) == "Running")
            .await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while sim
            .pods("default")
            .logs(name, &LogParams::default())
            .await
            .unwrap_or_default()
            != "started\n"
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let begun = tokio::time::Instant::now();
    sim.pods("default")
        .delete("polite", &DeleteParams::default())
        .await
        .expect("delete");
    sim.pods("default")
        .delete("stubborn", &DeleteParams::default())
        .await
        .expect("delete");
    let p = sim
        .wait_pod("default", "polite", "Succeeded", |p| {
            phase(p) == "Succeeded"
        })
        .await;
    assert_eq!(
        status(&p)["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    assert_eq!(
        sim.pods("default")
            .logs("polite", &LogParams::default())
            .await
            .expect("logs"),
        "started\ngot SIGTERM\n"
    );
    let p = sim
        .wait_pod("default", "stubborn", "Failed", |p| phase(p) == "Failed")
        .await;
    assert!(
        begun.elapsed() >= Duration::from_secs(1),
        "killed before the grace period"
    );
    assert_eq!(
        status(&p)["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        137
    );
    // The kubelet has asked for the final deletion; only the test's finalizer keeps them.
    release(&sim, "polite").await;
    release(&sim, "stubborn").await;
    sim.wait_pod_gone("default", "polite").await;
    sim.wait_pod_gone("default", "stubborn").await;
    sim.stop().await;
}

#[tokio::test]
async fn active_deadline_kills_with_deadline_exceeded() {
    let sim = Sim::start(RuntimeKind::Process, |_| {}).await;
    sim.ready_node("n1", None).await;
    let mut p = pod("slow", Some("n1"), json!({}), sh("main", "sleep 30"));
    p["spec"]["activeDeadlineSeconds"] = json!(1);
    sim.create_pod("default", p).await;
    let p = sim
        .wait_pod("default", "slow", "Failed", |p| phase(p) == "Failed")
        .await;
    let s = status(&p);
    assert_eq!(s["reason"], "DeadlineExceeded");
    assert_eq!(
        s["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    assert_eq!(
        s["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        143
    );
    sim.stop().await;
}

#[tokio::test]
async fn node_loss_stops_the_processes_at_once() {
    let work = tempfile::tempdir().expect("tempdir");
    let root = work.path().to_path_buf();
    let sim = Sim::start(RuntimeKind::Process, move |c| c.work_dir = Some(root)).await;
    sim.ready_node("doomed", None).await;
    let created = sim
        .create_pod(
            "default",
            hold(pod(
                "ticker",
                Some("doomed"),
                json!({}),
                sh(
                    "main",
                    "while true; do date +%s%N > $HOME/alive; sleep 0.02; done",
                ),
            )),
        )
        .await;
    let alive = work
        .path()
        .join(created.metadata.uid.expect("uid"))
        .join("alive");
    sim.wait_pod("default", "ticker", "Running", |p| phase(p) == "Running")
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !alive.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "process never wrote {}",
            alive.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sim.cluster.lose_node("doomed").expect("lose node");
    sim.wait_pod("default", "ticker", "Failed", |p| phase(p) == "Failed")
        .await;
    // Give a still-running loop time to write again, then check it did not.
    let stamp = std::fs::read_to_string(&alive).expect("read");
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stamp_later = std::fs::read_to_string(&alive).expect("read");
    assert_eq!(
        stamp, stamp_later,
        "the process kept running after its node was lost"
    );
    release(&sim, "ticker").await;
    sim.stop().await;
}

/// What a multi-node job's pods rely on: `spec.hostname` is the container's `HOSTNAME`, every
/// running pod gets an IP of its own, and a node whose capacity names GPUs advertises them.
#[tokio::test]
async fn pods_get_their_hostname_and_distinct_ips_and_gpus_are_advertised() {
    let sim = Sim::start(RuntimeKind::Process, |_| {}).await;
    let gpu = sim
        .ready_node(
            "gpu1",
            Some(json!({"cpu": "8", "memory": "61Gi", "pods": "110", "nvidia.com/gpu": "1"})),
        )
        .await;
    let node_status = gpu.status.clone().expect("node status");
    for field in [&node_status.capacity, &node_status.allocatable] {
        assert_eq!(
            field
                .as_ref()
                .and_then(|c| c.get("nvidia.com/gpu"))
                .map(|q| q.0.as_str()),
            Some("1"),
            "{node_status:?}"
        );
    }
    let mut names = Vec::new();
    for n in 0..3 {
        let name = format!("j-1-node-{n}");
        let mut p = pod(
            &name,
            Some("gpu1"),
            json!({}),
            sh("main", "echo host=$HOSTNAME ip=$IP"),
        );
        p["spec"]["hostname"] = json!(format!("node-{n}"));
        p["spec"]["subdomain"] = json!("j-nodes");
        p["spec"]["containers"][0]["env"] =
            json!([{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]);
        sim.create_pod("default", p).await;
        names.push(name);
    }
    let mut ips = std::collections::BTreeSet::new();
    for (n, name) in names.iter().enumerate() {
        let done = sim
            .wait_pod("default", name, "Succeeded", |p| phase(p) == "Succeeded")
            .await;
        let ip = status(&done)["podIP"].as_str().expect("pod ip").to_string();
        let log = sim
            .pods("default")
            .logs(name, &LogParams::default())
            .await
            .expect("pods/log");
        assert_eq!(log, format!("host=node-{n} ip={ip}\n"));
        ips.insert(ip);
    }
    assert_eq!(ips.len(), 3, "one IP per pod: {ips:?}");
    sim.stop().await;
}
