//! Helpers shared by the kubelet's cluster tests: an in-process sim cluster with a kubelet,
//! object builders, and waiting on conditions with timeouts.
#![allow(dead_code)]

use std::time::Duration;

use barge_sim::kubelet::{Kubelet, KubeletConfig, KubeletHandle, RuntimeKind};
use barge_sim::{Cluster, ClusterConfig};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::{json, Value};

pub const WAIT: Duration = Duration::from_secs(20);

pub struct Sim {
    pub cluster: Cluster,
    pub kubelet: KubeletHandle,
    pub client: Client,
}

impl Sim {
    pub async fn start(runtime: RuntimeKind, tweak: impl FnOnce(&mut KubeletConfig)) -> Sim {
        let cluster = Cluster::start(ClusterConfig::default())
            .await
            .expect("cluster");
        let client = cluster.client().expect("client");
        let mut cfg = KubeletConfig {
            runtime,
            restart_backoff: Duration::from_millis(200),
            ..Default::default()
        };
        tweak(&mut cfg);
        let kubelet = Kubelet::start(client.clone(), cfg).await.expect("kubelet");
        Sim {
            cluster,
            kubelet,
            client,
        }
    }

    pub fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    /// Creates a simulated node (optionally with a capacity annotation) and waits until Ready.
    pub async fn ready_node(&self, name: &str, capacity: Option<Value>) -> Node {
        self.create_node(name, capacity, json!({}), json!([])).await;
        self.wait_node(name, "Ready", is_ready).await
    }

    pub async fn create_node(
        &self,
        name: &str,
        capacity: Option<Value>,
        labels: Value,
        taints: Value,
    ) {
        let mut annotations = json!({});
        if let Some(c) = capacity {
            annotations["sim.barge.dev/capacity"] = json!(c.to_string());
        }
        let mut labels = labels;
        labels["sim.barge.dev/simulated"] = json!("true");
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "spec": {"taints": taints},
        }))
        .expect("node json");
        self.nodes()
            .create(&PostParams::default(), &node)
            .await
            .expect("create node");
    }

    pub async fn create_pod(&self, ns: &str, pod: Value) -> Pod {
        let pod: Pod = serde_json::from_value(pod).expect("pod json");
        self.pods(ns)
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod")
    }

    pub async fn wait_pod(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        pred: impl Fn(&Pod) -> bool,
    ) -> Pod {
        let api = self.pods(ns);
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut last = None;
        loop {
            if let Ok(Some(p)) = api.get_opt(name).await {
                if pred(&p) {
                    return p;
                }
                last = Some(p);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for pod {ns}/{name} to be {what}; last seen: {}",
                serde_json::to_string_pretty(&last).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_pod_gone(&self, ns: &str, name: &str) {
        let api = self.pods(ns);
        let deadline = tokio::time::Instant::now() + WAIT;
        while api.get_opt(name).await.expect("get").is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for pod {ns}/{name} to be deleted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_node(&self, name: &str, what: &str, pred: impl Fn(&Node) -> bool) -> Node {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(Some(n)) = self.nodes().get_opt(name).await {
                if pred(&n) {
                    return n;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for node {name} to be {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(self) {
        self.kubelet.shutdown().await;
        self.cluster.shutdown().await;
    }
}

pub fn is_ready(n: &Node) -> bool {
    condition(&json!(n.status), "Ready").is_some_and(|c| c["status"] == "True")
}

pub fn phase(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

pub fn status(p: &Pod) -> Value {
    serde_json::to_value(&p.status).expect("status json")
}

pub fn condition(status: &Value, ty: &str) -> Option<Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
        .cloned()
}

/// A pod bound to `node` (or unbound with `node` = None) with one container.
pub fn pod(name: &str, node: Option<&str>, annotations: Value, container: Value) -> Value {
    let mut spec = json!({"restartPolicy": "Never", "containers": [container]});
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "annotations": annotations}, "spec": spec})
}
