//! The Karpenter and Cluster API stand-ins and the Spot-reclaim fault, against the in-process
//! sim with the scripted kubelet and the upstream CRDs.

use std::time::Duration;

use barge_sim::kubelet::{Kubelet, KubeletConfig, KubeletHandle};
use barge_sim::standins::capi::machinedeployment_resource;
use barge_sim::standins::karpenter::nodepool_resource;
use barge_sim::{Cluster, ClusterConfig};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);
const CE_LABEL: &str = "batch.barge.dev/compute-environment";

struct Sim {
    cluster: Cluster,
    kubelet: KubeletHandle,
    client: Client,
}

impl Sim {
    async fn start(karpenter: bool, cluster_api: bool) -> Sim {
        let cluster = Cluster::start(ClusterConfig {
            karpenter,
            cluster_api,
            ..Default::default()
        })
        .await
        .expect("cluster");
        let client = cluster.client().expect("client");
        let kubelet = Kubelet::start(client.clone(), KubeletConfig::default())
            .await
            .expect("kubelet");
        Sim {
            cluster,
            kubelet,
            client,
        }
    }

    async fn install_crd(&self, file: &str) {
        let text = barge_fixtures::read(&barge_fixtures::crd(file));
        let crd: CustomResourceDefinition = serde_yaml::from_str(&text).expect("crd yaml");
        Api::<CustomResourceDefinition>::all(self.client.clone())
            .create(&PostParams::default(), &crd)
            .await
            .expect("create crd");
    }

    /// Creates a custom object, retrying while its CRD is not served yet.
    async fn create(&self, ar: &ApiResource, ns: Option<&str>, obj: Value) {
        let api: Api<DynamicObject> = match ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, ar),
            None => Api::all_with(self.client.clone(), ar),
        };
        let obj: DynamicObject = serde_json::from_value(obj).expect("object json");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match api.create(&PostParams::default(), &obj).await {
                Ok(_) => return,
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => panic!("creating {}: {e}", ar.kind),
            }
            assert!(tokio::time::Instant::now() < deadline, "CRD never served");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    async fn create_pod(&self, pod: Value) {
        let pod: Pod = serde_json::from_value(pod).expect("pod json");
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
    }

    async fn nodes_with(&self, selector: &str) -> Vec<Node> {
        self.nodes()
            .list(&kube::api::ListParams::default().labels(selector))
            .await
            .expect("list nodes")
            .items
    }

    /// Waits until `pred` holds of the nodes matching `selector`.
    async fn wait_nodes(
        &self,
        selector: &str,
        what: &str,
        pred: impl Fn(&[Node]) -> bool,
    ) -> Vec<Node> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let nodes = self.nodes_with(selector).await;
            if pred(&nodes) {
                return nodes;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for nodes {selector} to be {what}; have {:?}",
                nodes.iter().map(name).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_pod(
        &self,
        pod: &str,
        what: &str,
        pred: impl Fn(Option<&Pod>) -> bool,
    ) -> Option<Pod> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let p = self.pods().get_opt(pod).await.expect("get pod");
            if pred(p.as_ref()) {
                return p;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for pod {pod} to be {what}; last: {}",
                serde_json::to_string(&p).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.kubelet.shutdown().await;
        self.cluster.shutdown().await;
    }
}

fn name(n: &Node) -> String {
    n.metadata.name.clone().unwrap_or_default()
}

fn label<'a>(n: &'a Node, key: &str) -> Option<&'a str> {
    n.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

fn ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn phase(p: Option<&Pod>) -> Option<String> {
    p?.status.as_ref()?.phase.clone()
}

fn nodepool(
    name: &str,
    capacity_types: &[&str],
    cpu_limit: &str,
    consolidate_after: &str,
) -> Value {
    json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"labels": {CE_LABEL: name}},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                    "taints": [{"key": CE_LABEL, "value": name, "effect": "NoSchedule"}],
                    "requirements": [
                        {"key": "node.kubernetes.io/instance-type", "operator": "In",
                         "values": ["c5.xlarge", "m5.xlarge", "m5.2xlarge", "r5.xlarge"]},
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": capacity_types},
                    ],
                },
            },
            "limits": {"cpu": cpu_limit},
            "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": consolidate_after},
        },
    })
}

/// A pod for CE `ce` asking for `cpu` and `memory`, running `seconds` in the scripted runtime.
fn ce_pod(pod: &str, ce: &str, cpu: &str, memory: &str, seconds: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod, "annotations": {
            "sim.barge.dev/duration-seconds": seconds, "sim.barge.dev/exit-code": "0"}},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {CE_LABEL: ce},
            "tolerations": [{"key": CE_LABEL, "operator": "Equal", "value": ce, "effect": "NoSchedule"}],
            "containers": [{"name": "main", "image": "busybox",
                            "resources": {"requests": {"cpu": cpu, "memory": memory}}}],
        },
    })
}

#[tokio::test]
async fn karpenter_launches_a_fitting_node_runs_the_pod_and_consolidates_it() {
    let sim = Sim::start(true, false).await;
    sim.install_crd("karpenter.sh_nodepools.yaml").await;
    sim.create(
        &nodepool_resource(),
        None,
        nodepool("ce1", &["spot", "on-demand"], "16", "1s"),
    )
    .await;
    // 3 vCPUs and 20 GiB: c5.xlarge (8 GiB) is too small, m5.xlarge has 16 GiB; r5.xlarge fits.
    sim.create_pod(ce_pod("p1", "ce1", "3", "20Gi", "1")).await;
    let nodes = sim
        .wait_nodes("karpenter.sh/nodepool=ce1", "one Ready node", |n| {
            n.len() == 1 && ready(&n[0])
        })
        .await;
    let node = &nodes[0];
    assert_eq!(
        label(node, "node.kubernetes.io/instance-type"),
        Some("r5.xlarge")
    );
    assert_eq!(label(node, "karpenter.sh/capacity-type"), Some("spot"));
    assert_eq!(label(node, CE_LABEL), Some("ce1"));
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    assert!(taints
        .iter()
        .any(|t| t.key == CE_LABEL && t.effect == "NoSchedule"));
    assert!(node
        .spec
        .as_ref()
        .and_then(|s| s.provider_id.clone())
        .is_some_and(|p| p.starts_with("aws:///")));
    let pod = sim
        .wait_pod("p1", "Succeeded", |p| {
            phase(p).as_deref() == Some("Succeeded")
        })
        .await
        .expect("pod");
    assert_eq!(pod.spec.and_then(|s| s.node_name), Some(name(node)));
    // Empty for consolidateAfter (1 s): kept a while, then removed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sim
        .nodes()
        .get_opt(&name(node))
        .await
        .expect("get")
        .is_some());
    sim.wait_nodes("karpenter.sh/nodepool=ce1", "consolidated", |n| {
        n.is_empty()
    })
    .await;
    let np: Api<DynamicObject> = Api::all_with(sim.client.clone(), &nodepool_resource());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = np.get("ce1").await.expect("nodepool").data["status"].clone();
        if status["resources"]["nodes"] == "0" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "status: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.stop().await;
}

#[tokio::test]
async fn karpenter_with_consolidate_after_zero_still_runs_the_pod_first() {
    let sim = Sim::start(true, false).await;
    sim.install_crd("karpenter.sh_nodepools.yaml").await;
    let mut np = nodepool("ce0", &["on-demand"], "8", "0s");
    np["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("disruption"); // the CRD default: 0s
    sim.create(&nodepool_resource(), None, np).await;
    for i in 0..3 {
        sim.create_pod(ce_pod(&format!("z{i}"), "ce0", "500m", "1Gi", "0.5"))
            .await;
    }
    for i in 0..3 {
        sim.wait_pod(&format!("z{i}"), "Succeeded", |p| {
            phase(p).as_deref() == Some("Succeeded")
        })
        .await;
    }
    sim.wait_nodes("karpenter.sh/nodepool=ce0", "consolidated", |n| {
        n.is_empty()
    })
    .await;
    sim.stop().await;
}

#[tokio::test]
async fn karpenter_respects_the_nodepool_cpu_limit() {
    let sim = Sim::start(true, false).await;
    sim.install_crd("karpenter.sh_nodepools.yaml").await;
    sim.create(
        &nodepool_resource(),
        None,
        nodepool("ce2", &["on-demand"], "8", "Never"),
    )
    .await;
    for i in 0..3 {
        sim.create_pod(ce_pod(&format!("q{i}"), "ce2", "3", "1Gi", "60"))
            .await;
    }
    // Each pod needs a 4-vCPU c5.xlarge of its own; the limit of 8 vCPUs allows two.
    let nodes = sim
        .wait_nodes("karpenter.sh/nodepool=ce2", "two Ready nodes", |n| {
            n.len() == 2 && n.iter().all(ready)
        })
        .await;
    for n in &nodes {
        assert_eq!(
            label(n, "node.kubernetes.io/instance-type"),
            Some("c5.xlarge")
        );
        assert_eq!(label(n, "karpenter.sh/capacity-type"), Some("on-demand"));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sim.nodes_with("karpenter.sh/nodepool=ce2").await.len(), 2);
    let mut running = 0;
    for i in 0..3 {
        let p = sim.pods().get(&format!("q{i}")).await.expect("pod");
        if p.spec.and_then(|s| s.node_name).is_some() {
            running += 1;
        }
    }
    assert_eq!(running, 2, "one pod must stay pending beyond the limit");
    sim.stop().await;
}

#[tokio::test]
async fn spot_reclaim_removes_the_node_and_its_pods() {
    let sim = Sim::start(true, false).await;
    sim.install_crd("karpenter.sh_nodepools.yaml").await;
    sim.create(
        &nodepool_resource(),
        None,
        nodepool("spot", &["spot"], "100", "Never"),
    )
    .await;
    sim.create(
        &nodepool_resource(),
        None,
        nodepool("od", &["on-demand"], "100", "Never"),
    )
    .await;
    sim.create_pod(ce_pod("s1", "spot", "1", "1Gi", "600"))
        .await;
    sim.create_pod(ce_pod("o1", "od", "1", "1Gi", "600")).await;
    sim.wait_pod("s1", "Running", |p| phase(p).as_deref() == Some("Running"))
        .await;
    sim.wait_pod("o1", "Running", |p| phase(p).as_deref() == Some("Running"))
        .await;
    let spot = name(&sim.nodes_with("karpenter.sh/nodepool=spot").await[0]);
    let od = name(&sim.nodes_with("karpenter.sh/nodepool=od").await[0]);

    // An on-demand node cannot be reclaimed.
    let err = sim.cluster.reclaim_spot_node(&od).expect_err("on-demand");
    assert!(err.to_string().contains("not a Spot node"), "{err}");
    assert_eq!(
        sim.cluster
            .reclaim_spot_node("nope")
            .map_err(|e| e.to_string())
            .ok(),
        None
    );

    // Over the admin API.
    let req = http::Request::post(format!("/sim/v1/nodes/{spot}/reclaim-spot"))
        .body(Vec::new())
        .expect("request");
    let answer: Value =
        serde_json::from_str(&sim.client.request_text(req).await.expect("reclaim")).expect("json");
    assert_eq!(answer["reclaimed"], true);
    assert_eq!(answer["pods"], 1);
    assert!(sim.nodes().get_opt(&spot).await.expect("get").is_none());
    sim.wait_pod("s1", "gone", |p| p.is_none()).await;
    assert_eq!(
        phase(sim.pods().get_opt("o1").await.expect("get").as_ref()).as_deref(),
        Some("Running")
    );

    // In Rust, with the pod's replacement: the stand-in launches a new Spot node.
    sim.create_pod(ce_pod("s2", "spot", "1", "1Gi", "600"))
        .await;
    sim.wait_pod("s2", "Running", |p| phase(p).as_deref() == Some("Running"))
        .await;
    let spot2 = name(&sim.nodes_with("karpenter.sh/nodepool=spot").await[0]);
    assert_ne!(spot2, spot);
    assert_eq!(sim.cluster.reclaim_spot_node(&spot2).expect("reclaim"), 1);
    sim.wait_pod("s2", "gone", |p| p.is_none()).await;
    sim.stop().await;
}

fn machine_deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachineDeployment",
        "metadata": {"name": name, "namespace": "default",
                     "annotations": {"sim.barge.dev/instance-type": "c5.2xlarge"}},
        "spec": {
            "clusterName": "c1",
            "replicas": replicas,
            "selector": {"matchLabels": {"cluster.x-k8s.io/deployment-name": name}},
            "template": {
                "metadata": {"labels": {
                    "cluster.x-k8s.io/deployment-name": name,
                    "node.cluster.x-k8s.io/ce": "ce3",
                    "not-propagated": "x",
                }},
                "spec": {
                    "clusterName": "c1",
                    "bootstrap": {"dataSecretName": "none"},
                    "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io",
                                          "kind": "AWSMachineTemplate", "name": name},
                    "taints": [{"key": CE_LABEL, "value": "ce3", "effect": "NoSchedule",
                                "propagation": "Always"}],
                },
            },
        },
    })
}

#[tokio::test]
async fn cluster_api_scales_machine_deployments_and_removes_marked_nodes_first() {
    let sim = Sim::start(false, true).await;
    sim.install_crd("cluster.x-k8s.io_machinedeployments.yaml")
        .await;
    let ar = machinedeployment_resource();
    sim.create(&ar, Some("default"), machine_deployment("md1", 0))
        .await;
    let mds: Api<DynamicObject> = Api::namespaced_with(sim.client.clone(), "default", &ar);
    let sel = "cluster.x-k8s.io/deployment-name=md1";
    let wait_status = |want: i64, ready: i64| {
        let mds = mds.clone();
        async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let st = mds.get("md1").await.expect("md").data["status"].clone();
                if st["replicas"] == want && st["readyReplicas"] == ready {
                    return st;
                }
                assert!(tokio::time::Instant::now() < deadline, "status {st}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let st = wait_status(0, 0).await;
    assert_eq!(st["selector"], sel);
    assert!(sim.nodes_with(sel).await.is_empty());

    // 0 → 3 through the scale subresource.
    mds.patch_scale(
        "md1",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 3}})),
    )
    .await
    .expect("scale up");
    let nodes = sim
        .wait_nodes(sel, "three Ready nodes", |n| {
            n.len() == 3 && n.iter().all(ready)
        })
        .await;
    wait_status(3, 3).await;
    let scale = mds.get_scale("md1").await.expect("scale");
    assert_eq!(scale.status.expect("status").replicas, 3);
    for n in &nodes {
        assert_eq!(
            label(n, "node.kubernetes.io/instance-type"),
            Some("c5.2xlarge")
        );
        assert_eq!(label(n, "node.cluster.x-k8s.io/ce"), Some("ce3"));
        assert_eq!(label(n, "not-propagated"), None);
        let ann = n.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            ann.get("cluster.x-k8s.io/cluster-name").map(String::as_str),
            Some("c1")
        );
        assert_eq!(
            ann.get("cluster.x-k8s.io/owner-kind").map(String::as_str),
            Some("MachineSet")
        );
        let cpu = n
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get("cpu"))
            .map(|q| q.0.clone());
        assert_eq!(cpu.as_deref(), Some("8"));
        let taints = n
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        assert!(taints.iter().any(|t| t.key == CE_LABEL));
    }

    // Mark the oldest node (the default order would remove the newest ones) and scale to 1.
    let mut sorted = nodes.clone();
    sorted.sort_by_key(|n| (n.metadata.creation_timestamp.clone(), name(n)));
    let marked = name(&sorted[0]);
    sim.nodes()
        .patch(
            &marked,
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"metadata": {"annotations": {"cluster.x-k8s.io/delete-machine": "yes"}}}),
            ),
        )
        .await
        .expect("annotate");
    mds.patch_scale(
        "md1",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 1}})),
    )
    .await
    .expect("scale in");
    let left = sim.wait_nodes(sel, "one node", |n| n.len() == 1).await;
    assert_ne!(name(&left[0]), marked, "the marked node must go first");
    assert!(sim.nodes().get_opt(&marked).await.expect("get").is_none());
    wait_status(1, 1).await;
    sim.stop().await;
}
