//! What the kubelet reports about a Node it owns: capacity and allocatable (from the
//! `sim.barge.dev/capacity` annotation or the configured default), conditions, addresses, the
//! log server's port and nodeInfo, plus its heartbeat Lease. Pure: the manager decides when to
//! write, this module decides what.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use serde_json::{json, Value};

use super::consts::*;
use super::podstate::api_time;
use super::resources::{parse_resource_strings, Resources};

/// A node's declared capacity, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// As written (quantity strings), for status.capacity/allocatable.
    pub declared: BTreeMap<String, String>,
    /// Parsed, for admission and binding.
    pub parsed: Resources,
}

impl Capacity {
    pub fn new(declared: BTreeMap<String, String>) -> Result<Self, String> {
        let parsed = parse_resource_strings(&declared).map_err(|e| e.to_string())?;
        Ok(Self { declared, parsed })
    }
}

fn annotation<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// Capacity from the node's annotation, or `default` without one. A malformed annotation is
/// an error naming the annotation.
pub fn node_capacity(node: &Node, default: &Capacity) -> Result<Capacity, String> {
    let Some(raw) = annotation(node, ANNOTATION_CAPACITY) else {
        return Ok(default.clone());
    };
    let declared: BTreeMap<String, String> = serde_json::from_str(raw).map_err(|e| {
        format!("annotation {ANNOTATION_CAPACITY} is not a JSON object of quantity strings: {e}")
    })?;
    Capacity::new(declared).map_err(|e| format!("annotation {ANNOTATION_CAPACITY}: {e}"))
}

/// Boot delay from the node's annotation, or `default`.
pub fn boot_delay(node: &Node, default: Duration) -> Result<Duration, String> {
    match annotation(node, ANNOTATION_BOOT_DELAY) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| format!("annotation {ANNOTATION_BOOT_DELAY} is not a non-negative number of seconds: {raw:?}")),
    }
}

/// Whether the node-loss fault has killed this node.
pub fn is_killed(node: &Node) -> bool {
    annotation(node, ANNOTATION_NODE_KILLED).is_some_and(|v| v != "false")
}

/// Whether the node already reports Ready from this kubelet (e.g. after a kubelet restart), so
/// it need not boot again.
pub fn reports_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == COND_READY
                    && c.status == TRUE
                    && c.reason.as_deref() == Some(REASON_KUBELET_READY)
            })
        })
}

/// Inputs of a node status report.
#[derive(Debug, Clone)]
pub struct NodeReport<'a> {
    pub name: &'a str,
    pub capacity: &'a Capacity,
    pub ready: bool,
    /// When Ready last changed (lastTransitionTime); the pressure conditions use `booted_at`.
    pub ready_since: Timestamp,
    pub booted_at: Timestamp,
    pub now: Timestamp,
    pub log_port: u16,
    /// A problem with the node's annotations, reported in the Ready condition's message.
    pub config_error: Option<&'a str>,
}

/// The merge patch for nodes/status.
pub fn node_status_patch(r: &NodeReport<'_>) -> Value {
    let hb = api_time(r.now);
    let boot = api_time(r.booted_at);
    let pressure = |ty: &str, reason: &str, message: &str| json!({"type": ty, "status": FALSE, "reason": reason, "message": message, "lastHeartbeatTime": hb, "lastTransitionTime": boot});
    let (ready_status, ready_reason, ready_message) = match (r.ready, r.config_error) {
        (true, _) => (
            TRUE,
            REASON_KUBELET_READY,
            MESSAGE_KUBELET_READY.to_string(),
        ),
        (false, Some(e)) => (FALSE, REASON_KUBELET_NOT_READY, e.to_string()),
        (false, None) => (
            FALSE,
            REASON_KUBELET_NOT_READY,
            MESSAGE_KUBELET_NOT_READY.to_string(),
        ),
    };
    json!({"status": {
        "capacity": r.capacity.declared,
        "allocatable": r.capacity.declared,
        "conditions": [
            pressure(COND_MEMORY_PRESSURE, REASON_KUBELET_HAS_SUFFICIENT_MEMORY, "kubelet has sufficient memory available"),
            pressure(COND_DISK_PRESSURE, REASON_KUBELET_HAS_NO_DISK_PRESSURE, "kubelet has no disk pressure"),
            pressure(COND_PID_PRESSURE, REASON_KUBELET_HAS_SUFFICIENT_PID, "kubelet has sufficient PID available"),
            {"type": COND_READY, "status": ready_status, "reason": ready_reason, "message": ready_message,
             "lastHeartbeatTime": hb, "lastTransitionTime": api_time(r.ready_since)},
        ],
        "addresses": [
            {"type": "InternalIP", "address": NODE_IP},
            {"type": "Hostname", "address": r.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": r.log_port}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": "sim", "osImage": "barge-sim",
            "containerRuntimeVersion": "sim://1.0.0",
            "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": "amd64",
        },
    }})
}

/// A new node Lease, owned by its Node (so it goes when the Node goes), as kubelets create it.
pub fn new_lease(node_name: &str, node_uid: &str, now: Timestamp) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node_name,
            "namespace": NODE_LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}],
        },
        "spec": {
            "holderIdentity": node_name,
            "leaseDurationSeconds": NODE_LEASE_DURATION_SECONDS,
            "renewTime": lease_time(now),
        },
    })
}

/// The merge patch that renews a Lease.
pub fn lease_renewal(now: Timestamp) -> Value {
    json!({"spec": {"renewTime": lease_time(now)}})
}

/// Leases carry MicroTime (microsecond precision).
fn lease_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(annotations: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn default_cap() -> Capacity {
        Capacity::new(
            [
                ("cpu".to_string(), "4".to_string()),
                ("pods".to_string(), "110".to_string()),
            ]
            .into(),
        )
        .expect("valid")
    }

    #[test]
    fn capacity_comes_from_the_annotation_or_the_default() {
        let n = node(&[(
            ANNOTATION_CAPACITY,
            r#"{"cpu":"8","memory":"16Gi","nvidia.com/gpu":"1"}"#,
        )]);
        let c = node_capacity(&n, &default_cap()).expect("valid");
        assert_eq!(c.declared["memory"], "16Gi");
        assert_eq!(c.parsed["cpu"], 8000);
        assert_eq!(c.parsed["nvidia.com/gpu"], 1000);
        assert_eq!(
            node_capacity(&node(&[]), &default_cap()).expect("default"),
            default_cap()
        );
    }

    #[test]
    fn bad_annotations_are_clear_errors() {
        let e = node_capacity(&node(&[(ANNOTATION_CAPACITY, "[1]")]), &default_cap())
            .expect_err("bad json");
        assert!(e.contains(ANNOTATION_CAPACITY), "{e}");
        let e = node_capacity(
            &node(&[(ANNOTATION_CAPACITY, r#"{"cpu":"four"}"#)]),
            &default_cap(),
        )
        .expect_err("bad qty");
        assert!(e.contains("four"), "{e}");
        assert!(boot_delay(&node(&[(ANNOTATION_BOOT_DELAY, "-1")]), Duration::ZERO).is_err());
        assert_eq!(
            boot_delay(&node(&[(ANNOTATION_BOOT_DELAY, "1.5")]), Duration::ZERO),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(
            boot_delay(&node(&[]), Duration::from_secs(2)),
            Ok(Duration::from_secs(2))
        );
    }

    #[test]
    fn killed_annotation() {
        assert!(is_killed(&node(&[(ANNOTATION_NODE_KILLED, "true")])));
        assert!(!is_killed(&node(&[(ANNOTATION_NODE_KILLED, "false")])));
        assert!(!is_killed(&node(&[])));
    }

    #[test]
    fn status_patch_reports_ready_addresses_port_and_info() {
        let cap = default_cap();
        let now = Timestamp::from_second(1_700_000_000).expect("time");
        let p = node_status_patch(&NodeReport {
            name: "n1",
            capacity: &cap,
            ready: true,
            ready_since: now,
            booted_at: now,
            now,
            log_port: 10250,
            config_error: None,
        });
        let s = &p["status"];
        assert_eq!(s["allocatable"]["cpu"], "4");
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(s["addresses"][0]["address"], "127.0.0.1");
        assert_eq!(s["addresses"][1]["address"], "n1");
        assert_eq!(s["nodeInfo"]["kubeletVersion"], KUBELET_VERSION);
        let ready = s["conditions"]
            .as_array()
            .expect("conds")
            .iter()
            .find(|c| c["type"] == "Ready")
            .expect("ready")
            .clone();
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["reason"], "KubeletReady");
        let p = node_status_patch(&NodeReport {
            name: "n1",
            capacity: &cap,
            ready: false,
            ready_since: now,
            booted_at: now,
            now,
            log_port: 1,
            config_error: Some("bad capacity"),
        });
        assert_eq!(p["status"]["conditions"][3]["message"], "bad capacity");
        assert_eq!(
            new_lease("n1", "u1", now)["spec"]["renewTime"],
            "2023-11-14T22:13:20.000000Z"
        );
    }
}
