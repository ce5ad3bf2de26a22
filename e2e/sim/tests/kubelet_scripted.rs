//! The simulated kubelet with the scripted runtime against the in-process sim API server:
//! node boot, capacity, lease; pod lifecycle and statuses; admission; binding; restarts; node
//! loss.

mod kubelet_support;

use std::time::Duration;

use barge_sim::kubelet::RuntimeKind;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kubelet_support::*;
use serde_json::json;

fn scripted(duration: &str, exit: &str) -> serde_json::Value {
    json!({"sim.barge.dev/duration-seconds": duration, "sim.barge.dev/exit-code": exit})
}

fn busybox() -> serde_json::Value {
    json!({"name": "main", "image": "busybox"})
}

#[tokio::test]
async fn node_boots_after_the_delay_with_capacity_endpoint_and_lease() {
    let sim = Sim::start(RuntimeKind::Scripted, |c| {
        c.boot_delay = Duration::from_millis(300)
    })
    .await;
    let begun = tokio::time::Instant::now();
    sim.create_node(
        "n1",
        Some(json!({"cpu": "8", "memory": "32Gi", "pods": "20", "nvidia.com/gpu": "2"})),
        json!({}),
        json!([]),
    )
    .await;
    let not_ready = sim
        .wait_node("n1", "reported", |n| {
            n.status.as_ref().is_some_and(|s| s.capacity.is_some())
        })
        .await;
    assert!(!is_ready(&not_ready), "Ready before the boot delay");
    let node = sim.wait_node("n1", "Ready", is_ready).await;
    assert!(begun.elapsed() >= Duration::from_millis(300));
    let s = json!(node.status);
    assert_eq!(s["capacity"]["nvidia.com/gpu"], "2");
    assert_eq!(s["allocatable"]["memory"], "32Gi");
    assert_eq!(
        condition(&s, "Ready").expect("ready")["reason"],
        "KubeletReady"
    );
    assert_eq!(
        condition(&s, "MemoryPressure").expect("mp")["status"],
        "False"
    );
    assert_eq!(
        s["daemonEndpoints"]["kubeletEndpoint"]["Port"],
        sim.kubelet.log_port()
    );
    assert_eq!(
        s["addresses"][0],
        json!({"type": "InternalIP", "address": "127.0.0.1"})
    );
    assert_eq!(s["nodeInfo"]["kubeletVersion"], "v1.35.0-sim");
    let leases: Api<Lease> = Api::namespaced(sim.client.clone(), "kube-node-lease");
    let deadline = tokio::time::Instant::now() + WAIT;
    let lease = loop {
        if let Some(l) = leases.get_opt("n1").await.expect("get lease") {
            break l;
        }
        assert!(tokio::time::Instant::now() < deadline, "no lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        lease.spec.expect("spec").holder_identity.as_deref(),
        Some("n1")
    );
    sim.stop().await;
}

#[tokio::test]
async fn scripted_pods_go_pending_running_succeeded_or_failed() {
    let sim = Sim::start(RuntimeKind::Scripted, |_| {}).await;
    sim.ready_node("n1", None).await;
    sim.create_pod(
        "default",
        pod("ok", Some("n1"), scripted("0.5", "0"), busybox()),
    )
    .await;
    sim.create_pod(
        "default",
        pod("bad", Some("n1"), scripted("0", "3"), busybox()),
    )
    .await;
    let running = sim
        .wait_pod("default", "ok", "Running", |p| phase(p) == "Running")
        .await;
    let s = status(&running);
    assert!(s["startTime"].is_string());
    assert!(s["podIP"].as_str().is_some_and(|ip| ip.starts_with("10.")));
    assert_eq!(s["hostIP"], "127.0.0.1");
    assert_eq!(condition(&s, "Ready").expect("ready")["status"], "True");
    assert!(s["containerStatuses"][0]["state"]["running"]["startedAt"].is_string());
    let done = sim
        .wait_pod("default", "ok", "Succeeded", |p| phase(p) == "Succeeded")
        .await;
    let s = status(&done);
    let term = &s["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["exitCode"], 0);
    assert_eq!(term["reason"], "Completed");
    assert!(term["containerID"]
        .as_str()
        .is_some_and(|id| id.starts_with("sim://")));
    assert_eq!(
        condition(&s, "Ready").expect("ready")["reason"],
        "PodCompleted"
    );
    let failed = sim
        .wait_pod("default", "bad", "Failed", |p| phase(p) == "Failed")
        .await;
    let term = status(&failed)["containerStatuses"][0]["state"]["terminated"].clone();
    assert_eq!(term["exitCode"], 3);
    assert_eq!(term["reason"], "Error");
    let logs = sim
        .pods("default")
        .logs("ok", &kube::api::LogParams::default())
        .await
        .expect("pods/log of a scripted pod");
    assert_eq!(
        logs,
        "barge-sim scripted container: runs 0.5s, then exits 0\n"
    );
    // Distinct pod IPs.
    assert_ne!(status(&failed)["podIP"], status(&done)["podIP"]);
    sim.stop().await;
}

#[tokio::test]
async fn init_containers_run_first_and_on_failure_restarts() {
    let sim = Sim::start(RuntimeKind::Scripted, |_| {}).await;
    sim.ready_node("n1", None).await;
    let mut p = pod("init", Some("n1"), scripted("0.1", "0"), busybox());
    p["spec"]["initContainers"] = json!([{"name": "setup", "image": "busybox"}]);
    sim.create_pod("default", p).await;
    let done = sim
        .wait_pod("default", "init", "Succeeded", |p| phase(p) == "Succeeded")
        .await;
    let s = status(&done);
    let init = &s["initContainerStatuses"][0]["state"]["terminated"];
    let main = &s["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(init["reason"], "Completed");
    assert!(init["finishedAt"].as_str() <= main["startedAt"].as_str());

    let mut p = pod("crashy", Some("n1"), scripted("0", "1"), busybox());
    p["spec"]["restartPolicy"] = json!("OnFailure");
    sim.create_pod("default", p).await;
    let p = sim
        .wait_pod("default", "crashy", "restarted twice", |p| {
            status(p)["containerStatuses"][0]["restartCount"]
                .as_i64()
                .unwrap_or(0)
                >= 2
        })
        .await;
    assert_ne!(
        phase(&p),
        "Failed",
        "OnFailure pods are restarted, not failed"
    );
    assert_eq!(
        status(&p)["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        1
    );
    sim.stop().await;
}

#[tokio::test]
async fn admission_refuses_pods_that_do_not_fit() {
    let sim = Sim::start(RuntimeKind::Scripted, |_| {}).await;
    sim.ready_node(
        "small",
        Some(json!({"cpu": "1", "memory": "1Gi", "pods": "10"})),
    )
    .await;
    let hog = json!({"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "2"}}});
    sim.create_pod(
        "default",
        pod("hog", Some("small"), scripted("0", "0"), hog),
    )
    .await;
    let p = sim
        .wait_pod("default", "hog", "Failed", |p| phase(p) == "Failed")
        .await;
    let s = status(&p);
    assert_eq!(s["reason"], "OutOfcpu");
    assert_eq!(s["message"], "Pod was rejected: Node didn't have enough resource: cpu, requested: 2000, used: 0, capacity: 1000");
    let gpu = json!({"name": "main", "image": "busybox", "resources": {"limits": {"nvidia.com/gpu": "1"}}});
    sim.create_pod(
        "default",
        pod("gpu", Some("small"), scripted("0", "0"), gpu),
    )
    .await;
    let p = sim
        .wait_pod("default", "gpu", "Failed", |p| phase(p) == "Failed")
        .await;
    assert_eq!(status(&p)["reason"], "OutOfnvidia.com/gpu");
    // Running pods hold their requests: a second 600m pod does not fit next to the first.
    let half =
        json!({"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "600m"}}});
    sim.create_pod(
        "default",
        pod("first", Some("small"), scripted("30", "0"), half.clone()),
    )
    .await;
    sim.wait_pod("default", "first", "Running", |p| phase(p) == "Running")
        .await;
    sim.create_pod(
        "default",
        pod("second", Some("small"), scripted("0", "0"), half),
    )
    .await;
    let p = sim
        .wait_pod("default", "second", "Failed", |p| phase(p) == "Failed")
        .await;
    assert_eq!(status(&p)["message"], "Pod was rejected: Node didn't have enough resource: cpu, requested: 600, used: 600, capacity: 1000");
    sim.stop().await;
}

#[tokio::test]
async fn unbound_pods_are_bound_first_fit_honouring_taints_and_selectors() {
    let sim = Sim::start(RuntimeKind::Scripted, |_| {}).await;
    sim.create_node("tainted", None, json!({"zone": "a"}), json!([{"key": "batch.barge.dev/compute-environment", "value": "ce1", "effect": "NoSchedule"}])).await;
    sim.create_node("plain", None, json!({"zone": "b"}), json!([]))
        .await;
    sim.wait_node("tainted", "Ready", is_ready).await;
    sim.wait_node("plain", "Ready", is_ready).await;
    sim.create_pod("default", pod("free", None, scripted("0", "0"), busybox()))
        .await;
    let p = sim
        .wait_pod("default", "free", "Succeeded", |p| phase(p) == "Succeeded")
        .await;
    assert_eq!(
        p.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("plain")
    );

    let mut tolerant = pod("tolerant", None, scripted("0", "0"), busybox());
    tolerant["spec"]["nodeSelector"] = json!({"zone": "a"});
    tolerant["spec"]["tolerations"] = json!([{"key": "batch.barge.dev/compute-environment", "operator": "Equal", "value": "ce1", "effect": "NoSchedule"}]);
    sim.create_pod("default", tolerant).await;
    let p = sim
        .wait_pod("default", "tolerant", "Succeeded", |p| {
            phase(p) == "Succeeded"
        })
        .await;
    assert_eq!(
        p.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("tainted")
    );

    let mut nowhere = pod("nowhere", None, scripted("0", "0"), busybox());
    nowhere["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["c"]}]}]}}});
    sim.create_pod("default", nowhere).await;
    let p = sim
        .wait_pod("default", "nowhere", "unschedulable", |p| {
            condition(&status(p), "PodScheduled").is_some_and(|c| c["reason"] == "Unschedulable")
        })
        .await;
    let c = condition(&status(&p), "PodScheduled").expect("cond");
    assert_eq!(c["message"], "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {batch.barge.dev/compute-environment: ce1}.");
    assert!(p.spec.as_ref().and_then(|s| s.node_name.clone()).is_none());
    sim.stop().await;
}

#[tokio::test]
async fn deletion_and_deadline_stop_scripted_pods() {
    let sim = Sim::start(RuntimeKind::Scripted, |_| {}).await;
    sim.ready_node("n1", None).await;
    // A finalizer keeps the pod so the final status can be read after the kubelet deletes it.
    let mut p = pod("long", Some("n1"), scripted("300", "0"), busybox());
    p["metadata"]["finalizers"] = json!(["test.barge.dev/hold"]);
    sim.create_pod("default", p).await;
    sim.wait_pod("default", "long", "Running", |p| phase(p) == "Running")
        .await;
    sim.pods("default")
        .delete("long", &DeleteParams::default())
        .await
        .expect("delete");
    let p = sim
        .wait_pod("default", "long", "Failed", |p| phase(p) == "Failed")
        .await;
    assert_eq!(
        status(&p)["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        143
    );
    sim.pods("default")
        .patch(
            "long",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("drop finalizer");
    sim.wait_pod_gone("default", "long").await;

    let mut p = pod("deadline", Some("n1"), scripted("300", "0"), busybox());
    p["spec"]["activeDeadlineSeconds"] = json!(1);
    sim.create_pod("default", p).await;
    let p = sim
        .wait_pod("default", "deadline", "Failed", |p| phase(p) == "Failed")
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

/// A graceful deletion shows as MODIFIED (deletionTimestamp, deletionGracePeriodSeconds) while
/// the pod stops, and the kubelet confirms it with one grace-0 delete; pods that finished before
/// they were deleted (grace 0 at once, held only by a finalizer, as Barge's result finalizer holds
/// them) get no delete from the kubelet at all.
#[tokio::test]
async fn the_kubelet_confirms_graceful_deletions_once_and_leaves_finished_pods_alone() {
    use futures::StreamExt;
    use kube::api::WatchParams;
    use kube::core::WatchEvent;
    const FINISHED: usize = 20;
    let sim = Sim::start(RuntimeKind::Scripted, |_| {}).await;
    sim.ready_node(
        "n1",
        Some(json!({"cpu": "64", "memory": "64Gi", "pods": "100"})),
    )
    .await;
    let pods = sim.pods("default");
    let hold = json!(["test.barge.dev/hold"]);
    for i in 0..FINISHED {
        let mut p = pod(
            &format!("done-{i}"),
            Some("n1"),
            scripted("0", "0"),
            busybox(),
        );
        p["metadata"]["finalizers"] = hold.clone();
        sim.create_pod("default", p).await;
    }
    for i in 0..FINISHED {
        sim.wait_pod("default", &format!("done-{i}"), "Succeeded", |p| {
            phase(p) == "Succeeded"
        })
        .await;
    }
    let mut p = pod("long", Some("n1"), scripted("300", "0"), busybox());
    p["metadata"]["finalizers"] = hold.clone();
    p["spec"]["terminationGracePeriodSeconds"] = json!(5);
    sim.create_pod("default", p).await;
    let running = sim
        .wait_pod("default", "long", "Running", |p| phase(p) == "Running")
        .await;
    let before = sim.kubelet.stats().pod_deletes;

    let wp = WatchParams::default().fields("metadata.name=long");
    let rv = running.metadata.resource_version.clone().expect("rv");
    let mut events = pods.watch(&wp, &rv).await.expect("watch").boxed();
    for i in 0..FINISHED {
        let marked = pods
            .delete(&format!("done-{i}"), &DeleteParams::default())
            .await
            .expect("delete")
            .left()
            .expect("held by its finalizer");
        assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(0));
    }
    let marked = pods
        .delete("long", &DeleteParams::default())
        .await
        .expect("delete")
        .left()
        .expect("pending");
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(5));
    // The kubelet stops the container and confirms: the grace period drops to 0.
    let confirmed = sim
        .wait_pod("default", "long", "confirmed", |p| {
            phase(p) == "Failed" && p.metadata.deletion_grace_period_seconds == Some(0)
        })
        .await;
    assert!(confirmed.metadata.deletion_timestamp.is_some());
    for name in
        std::iter::once("long".to_string()).chain((0..FINISHED).map(|i| format!("done-{i}")))
    {
        pods.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("drop finalizer");
        sim.wait_pod_gone("default", &name).await;
    }
    // What a watcher saw of "long": MODIFIED with the deletion mark (grace 5) before the DELETED.
    let mut seen = Vec::new();
    loop {
        let ev = tokio::time::timeout(WAIT, events.next())
            .await
            .expect("watch event")
            .expect("stream open")
            .expect("event");
        match ev {
            WatchEvent::Modified(p) => seen.push((
                "MODIFIED",
                p.metadata.deletion_timestamp.is_some(),
                p.metadata.deletion_grace_period_seconds,
            )),
            WatchEvent::Deleted(_) => {
                seen.push(("DELETED", true, None));
                break;
            }
            _ => {}
        }
    }
    let first_marked = seen
        .iter()
        .position(|e| e.1)
        .expect("a MODIFIED event with deletionTimestamp");
    assert_eq!(seen[first_marked], ("MODIFIED", true, Some(5)), "{seen:?}");
    assert_eq!(seen.last().map(|e| e.0), Some("DELETED"), "{seen:?}");
    // Twenty finished pods and one graceful deletion: exactly one delete from the kubelet.
    assert_eq!(sim.kubelet.stats().pod_deletes - before, 1);
    sim.stop().await;
}

#[tokio::test]
async fn node_loss_fails_the_pods_and_stops_the_node() {
    let sim = Sim::start(RuntimeKind::Scripted, |_| {}).await;
    sim.ready_node("doomed", None).await;
    let mut p = pod("victim", Some("doomed"), scripted("300", "0"), busybox());
    p["metadata"]["finalizers"] = json!(["test.barge.dev/hold"]);
    sim.create_pod("default", p).await;
    sim.wait_pod("default", "victim", "Running", |p| phase(p) == "Running")
        .await;
    sim.cluster.lose_node("doomed").expect("lose node");
    let p = sim
        .wait_pod("default", "victim", "Failed", |p| phase(p) == "Failed")
        .await;
    let s = status(&p);
    assert_eq!(
        condition(&s, "DisruptionTarget").expect("disruption")["reason"],
        "DeletionByPodGC"
    );
    // The kubelet no longer writes for the lost node's pod.
    let writes = sim.kubelet.stats().pod_status_patches;
    sim.pods("default")
        .patch(
            "victim",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"poke": "1"}}})),
        )
        .await
        .expect("poke");
    let p = sim
        .wait_pod("default", "victim", "poked", |p| {
            p.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key("poke"))
        })
        .await;
    assert_eq!(phase(&p), "Failed");
    assert_eq!(sim.kubelet.stats().pod_status_patches, writes);
    sim.stop().await;
}

#[tokio::test]
async fn survives_failed_writes_and_dropped_watches() {
    let sim = Sim::start(RuntimeKind::Scripted, |_| {}).await;
    sim.ready_node("n1", None).await;
    sim.cluster.faults().set(barge_sim::FaultConfig {
        error_rate: 0.3,
        verbs: vec!["patch".into(), "create".into(), "delete".into()],
        resources: vec!["pods".into()],
        drop_watches_after_events: Some(7),
        ..Default::default()
    });
    for i in 0..12 {
        let node = if i % 2 == 0 { Some("n1") } else { None };
        let mut p = pod(&format!("p{i}"), node, scripted("0.2", "0"), busybox());
        p["metadata"]["finalizers"] = json!(["test.barge.dev/hold"]);
        // Creation itself may be refused by the injected faults: retry it.
        let deadline = tokio::time::Instant::now() + WAIT;
        while sim
            .pods("default")
            .create(
                &Default::default(),
                &serde_json::from_value(p.clone()).expect("pod"),
            )
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "could not create p{i}"
            );
        }
    }
    for i in 0..12 {
        sim.wait_pod("default", &format!("p{i}"), "Succeeded", |p| {
            phase(p) == "Succeeded"
        })
        .await;
    }
    // Deletion goes through too: the kubelet keeps asking until the API accepts.
    for i in 0..12 {
        let name = format!("p{i}");
        let deadline = tokio::time::Instant::now() + WAIT;
        while sim
            .pods("default")
            .delete(&name, &DeleteParams::default())
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "could not delete {name}"
            );
        }
    }
    sim.cluster.faults().clear();
    for i in 0..12 {
        let name = format!("p{i}");
        sim.pods("default")
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await
            .expect("drop finalizer");
        sim.wait_pod_gone("default", &name).await;
    }
    assert!(
        sim.kubelet.stats().write_errors > 0,
        "no fault was injected into the kubelet's writes"
    );
    sim.stop().await;
}

#[tokio::test]
async fn a_restarted_kubelet_resumes_scripted_pods() {
    let Sim {
        cluster,
        kubelet,
        client,
    } = Sim::start(RuntimeKind::Scripted, |_| {}).await;
    let sim = Sim {
        cluster,
        kubelet,
        client,
    };
    sim.ready_node("n1", None).await;
    sim.create_pod(
        "default",
        pod("survivor", Some("n1"), scripted("1.5", "0"), busybox()),
    )
    .await;
    let running = sim
        .wait_pod("default", "survivor", "Running", |p| phase(p) == "Running")
        .await;
    let Sim {
        cluster,
        kubelet,
        client,
    } = sim;
    kubelet.shutdown().await;
    let kubelet = barge_sim::kubelet::Kubelet::start(
        client.clone(),
        barge_sim::kubelet::KubeletConfig::default(),
    )
    .await
    .expect("restart");
    let sim = Sim {
        cluster,
        kubelet,
        client,
    };
    let done = sim
        .wait_pod("default", "survivor", "Succeeded", |p| {
            phase(p) == "Succeeded"
        })
        .await;
    let (before, after) = (status(&running), status(&done));
    assert_eq!(before["podIP"], after["podIP"]);
    assert_eq!(before["startTime"], after["startTime"]);
    assert_eq!(
        before["containerStatuses"][0]["state"]["running"]["startedAt"],
        after["containerStatuses"][0]["state"]["terminated"]["startedAt"]
    );
    assert_eq!(
        sim.kubelet.stats().pods_admitted,
        0,
        "resumed, not admitted again"
    );
    sim.stop().await;
}

#[tokio::test]
async fn a_bad_capacity_annotation_keeps_the_node_not_ready_until_fixed() {
    let sim = Sim::start(RuntimeKind::Scripted, |_| {}).await;
    sim.create_node("odd", Some(json!({"cpu": "lots"})), json!({}), json!([]))
        .await;
    let n = sim
        .wait_node("odd", "explained", |n| {
            condition(&json!(n.status), "Ready").is_some_and(|c| {
                c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("sim.barge.dev/capacity"))
            })
        })
        .await;
    assert!(!is_ready(&n));
    sim.nodes()
        .patch("odd", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {"sim.barge.dev/capacity": "{\"cpu\": \"2\", \"pods\": \"5\"}"}}})))
        .await
        .expect("fix");
    let n = sim.wait_node("odd", "Ready", is_ready).await;
    assert_eq!(json!(n.status)["allocatable"]["cpu"], "2");
    sim.stop().await;
}
