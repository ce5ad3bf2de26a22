//! Stand-ins for the node-provisioning controllers a real cluster runs — test infrastructure
//! only, never used by the operator, which talks to them through the same API shapes as to the
//! real ones:
//! - [`karpenter`]: `karpenter.sh/v1` NodePools + pending pods → Nodes of a fitting instance
//!   type within `spec.limits`; empty nodes removed after `spec.disruption.consolidateAfter`;
//! - [`capi`]: `cluster.x-k8s.io` MachineDeployments → `spec.replicas` Nodes, honouring the
//!   `cluster.x-k8s.io/delete-machine` annotation on scale-in; status replicas.
//!
//! Each is a small kube-rs client of the API server (like the simulated kubelet) that lists
//! what it needs every `interval` and acts; the Nodes it creates carry
//! `sim.barge.dev/simulated=true` and a `sim.barge.dev/capacity` of their instance type
//! ([`catalog`]), so the simulated kubelet makes them Ready and runs their pods (its binder
//! plays the kube-scheduler).

pub mod capi;
pub mod catalog;
pub mod karpenter;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::kubelet::consts::{ANNOTATION_CAPACITY, PHASE_FAILED, PHASE_SUCCEEDED};
use crate::kubelet::placement::Candidate;
use crate::kubelet::resources::{
    add_into, parse_resource_strings, parse_resources, pod_requests, sub_from, Resources,
};

/// A running stand-in controller.
pub struct StandinHandle {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl StandinHandle {
    pub(crate) fn new(stop: oneshot::Sender<()>, task: JoinHandle<()>) -> Self {
        Self {
            stop: Some(stop),
            task,
        }
    }

    /// Stops the controller and waits for its current pass to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        self.task.abort();
    }
}

impl Drop for StandinHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// Five lowercase alphanumerics, as in generated Kubernetes names.
pub(crate) fn suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| CHARS[fastrand::usize(..CHARS.len())] as char)
        .collect()
}

/// A fake EC2 instance id (`i-` + 17 hex digits).
pub(crate) fn instance_id() -> String {
    format!("i-{:017x}", fastrand::u64(..) & 0xfff_ffff_ffff_ffff)
}

/// A Go-style duration of Karpenter's `consolidateAfter` (`30s`, `1h5m`); `Never` → `None`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if s == "Never" {
        return None;
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next().unwrap_or('s'));
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
    }
    if !num.is_empty() {
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

pub(crate) fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some(PHASE_SUCCEEDED) | Some(PHASE_FAILED)
    )
}

pub(crate) fn is_daemonset_pod(pod: &Pod) -> bool {
    pod.metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|o| o.kind == "DaemonSet")
}

pub(crate) fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A node as the stand-ins see it.
#[derive(Debug, Clone)]
pub(crate) struct NodeView {
    pub node: Node,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ready: bool,
    pub deleting: bool,
    pub allocatable: Resources,
    pub used: Resources,
    /// Non-terminal pods bound to the node, DaemonSet pods excluded.
    pub workload_pods: usize,
    pub pods: usize,
}

impl NodeView {
    pub fn taints(&self) -> Vec<Taint> {
        self.node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
    }

    pub fn candidate(&self) -> Candidate {
        let mut free = self.allocatable.clone();
        sub_from(&mut free, &self.used);
        Candidate {
            name: self.name.clone(),
            labels: self.labels.clone(),
            taints: self.taints(),
            unschedulable: self
                .node
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false),
            free_pods: self.allocatable.get("pods").copied().unwrap_or(110_000) / 1000
                - self.pods as i128,
            free,
        }
    }
}

/// What a node offers: `status.allocatable` once reported, else its capacity annotation.
pub(crate) fn allocatable(node: &Node) -> Resources {
    if let Some(a) = node.status.as_ref().and_then(|s| s.allocatable.as_ref()) {
        if let Ok(r) = parse_resources(a) {
            return r;
        }
    }
    node.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_CAPACITY))
        .and_then(|raw| serde_json::from_str::<BTreeMap<String, String>>(raw).ok())
        .and_then(|m| parse_resource_strings(&m).ok())
        .unwrap_or_default()
}

pub(crate) fn node_views(nodes: &[Node], pods: &[Pod]) -> Vec<NodeView> {
    let mut views: BTreeMap<String, NodeView> = nodes
        .iter()
        .filter_map(|n| {
            let name = n.metadata.name.clone()?;
            Some((
                name.clone(),
                NodeView {
                    node: n.clone(),
                    name,
                    labels: n.metadata.labels.clone().unwrap_or_default(),
                    ready: is_ready(n),
                    deleting: n.metadata.deletion_timestamp.is_some(),
                    allocatable: allocatable(n),
                    used: Resources::new(),
                    workload_pods: 0,
                    pods: 0,
                },
            ))
        })
        .collect();
    for p in pods {
        let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.as_ref()) else {
            continue;
        };
        if is_terminal(p) {
            continue;
        }
        let Some(v) = views.get_mut(node) else {
            continue;
        };
        v.pods += 1;
        if !is_daemonset_pod(p) {
            v.workload_pods += 1;
        }
        if let Some(spec) = &p.spec {
            if let Ok(r) = pod_requests(spec) {
                add_into(&mut v.used, &r);
            }
        }
    }
    views.into_values().collect()
}

/// Pods waiting for a node: no `nodeName`, not terminal, not being deleted, scheduled by the
/// default scheduler. Oldest first.
pub(crate) fn pending_pods(pods: &[Pod]) -> Vec<&Pod> {
    let mut out: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            let spec = p.spec.as_ref();
            spec.is_some_and(|s| s.node_name.is_none())
                && !is_terminal(p)
                && p.metadata.deletion_timestamp.is_none()
                && spec
                    .and_then(|s| s.scheduler_name.as_deref())
                    .is_none_or(|s| s == crate::kubelet::consts::DEFAULT_SCHEDULER)
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.metadata.creation_timestamp, &a.metadata.name)
            .cmp(&(&b.metadata.creation_timestamp, &b.metadata.name))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h5m"), Some(Duration::from_secs(3900)));
        assert_eq!(parse_duration("Never"), None);
        assert_eq!(parse_duration("5x"), None);
    }
}
