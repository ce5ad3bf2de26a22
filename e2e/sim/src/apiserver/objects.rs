//! Object-level rules of the API server that are not schema-driven: timestamps, generated names,
//! defaults kube-apiserver applies to built-in kinds (Pods, Namespaces, Services, Secrets, ...),
//! and conversion between a served version and the storage form.
//!
//! All functions here are pure over `serde_json::Value` and unit-tested below.

use base64::Engine;
use serde_json::{json, Map, Value};

use super::events;
use super::registry::{Conversion, ResourceDef};

/// Namespace finalizer held until a namespace's content is deleted.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";
/// Metadata finalizer of foreground cascading deletion.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// Metadata finalizer of orphaning deletion.
pub const ORPHAN_FINALIZER: &str = "orphan";
/// Finalizer of CRDs while their objects are deleted.
pub const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
/// Label set on every namespace.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// RFC 3339 seconds-precision UTC time, as metav1.Time serialises.
pub fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn now_rfc3339() -> String {
    rfc3339(jiff::Timestamp::now())
}

/// metav1.MicroTime.
pub fn now_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// The 5-character suffix of `generateName` (the alphabet of k8s.io/apiserver's names.go).
pub fn generated_suffix() -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHANUMS[fastrand::usize(..ALPHANUMS.len())] as char)
        .collect()
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let o = obj.as_object_mut().expect("object ensured");
    let m = o.entry("metadata").or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    m.as_object_mut().expect("metadata object ensured")
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn set_finalizers(obj: &mut Value, f: &[String]) {
    let m = meta_mut(obj);
    if f.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(f));
    }
}

/// DNS-1123 subdomain check with Kubernetes' message.
pub fn check_subdomain(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && part.as_bytes()[0].is_ascii_alphanumeric()
                && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric()
        });
    if ok {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into())
    }
}

/// DNS-1123 label check (namespaces).
pub fn check_label_name(name: &str) -> Result<(), String> {
    if name.len() <= 63 && !name.contains('.') && check_subdomain(name).is_ok() {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into())
    }
}

fn set_default(m: &mut Map<String, Value>, key: &str, v: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), v);
    }
}

fn obj_at<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let o = v.as_object_mut().expect("caller passes an object");
    let e = o.entry(key).or_insert_with(|| json!({}));
    if !e.is_object() {
        *e = json!({});
    }
    e.as_object_mut().expect("object ensured")
}

/// Defaults of a PodSpec (also applied to workload templates).
pub fn default_pod_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "terminationMessagePolicy", json!("File"));
                let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
                let tag_latest = match image.rsplit_once(':') {
                    Some((_, tag)) => tag == "latest" || tag.contains('/'),
                    None => !image.contains('@'),
                };
                set_default(
                    c,
                    "imagePullPolicy",
                    json!(if tag_latest { "Always" } else { "IfNotPresent" }),
                );
                set_default(c, "resources", json!({}));
                if let Some(res) = c.get_mut("resources").and_then(Value::as_object_mut) {
                    if let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() {
                        let req = res.entry("requests").or_insert_with(|| json!({}));
                        if let Some(req) = req.as_object_mut() {
                            for (k, v) in limits {
                                req.entry(k).or_insert(v);
                            }
                        }
                    }
                }
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        set_default(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

/// The QoS class kube-apiserver computes for a pod.
pub fn qos_class(spec: &Value) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|l| spec.get(*l).and_then(Value::as_array))
        .flatten();
    for c in containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|r| !r.is_empty()) || lim.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let l = lim.and_then(|l| l.get(r));
            let q = req.and_then(|q| q.get(r)).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn default_tolerations(spec: &mut Map<String, Value>) {
    let tol = spec.entry("tolerations").or_insert_with(|| json!([]));
    let Some(list) = tol.as_array_mut() else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let present = list.iter().any(|t| {
            t.get("key").and_then(Value::as_str) == Some(key)
                && t.get("effect")
                    .and_then(Value::as_str)
                    .is_none_or(|e| e == "NoExecute")
        });
        if !present {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
}

/// Defaults and create-time status of built-in kinds (`create` is false on updates).
pub fn default_builtin(def: &ResourceDef, obj: &mut Value, create: bool) {
    if def.custom || !obj.is_object() {
        return;
    }
    match (def.group.as_str(), def.kind.as_str()) {
        ("", "Pod") => {
            let spec = obj_at(obj, "spec");
            default_pod_spec(spec);
            set_default(spec, "enableServiceLinks", json!(true));
            set_default(spec, "serviceAccountName", json!("default"));
            let sa = spec
                .get("serviceAccountName")
                .cloned()
                .unwrap_or(json!("default"));
            set_default(spec, "serviceAccount", sa);
            set_default(spec, "priority", json!(0));
            set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
            if create {
                default_tolerations(spec);
                let qos = qos_class(&obj["spec"]);
                obj["status"] = json!({"phase": "Pending", "qosClass": qos});
            }
        }
        ("", "Namespace") => {
            let name = meta_str(obj, "name").unwrap_or_default().to_string();
            let labels = meta_mut(obj).entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert(NAMESPACE_NAME_LABEL.into(), json!(name));
            }
            if create {
                set_default(
                    obj_at(obj, "spec"),
                    "finalizers",
                    json!([NAMESPACE_FINALIZER]),
                );
                obj["status"] = json!({"phase": "Active"});
            }
        }
        ("", "Service") => {
            let spec = obj_at(obj, "spec");
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            set_default(spec, "ipFamilies", json!(["IPv4"]));
            set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
            set_default(spec, "internalTrafficPolicy", json!("Cluster"));
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    set_default(p, "protocol", json!("TCP"));
                    if let Some(port) = p.get("port").cloned() {
                        set_default(p, "targetPort", port);
                    }
                }
            }
            if create {
                set_default(obj_at(obj, "status"), "loadBalancer", json!({}));
            }
        }
        ("", "Secret") => {
            set_default(
                obj.as_object_mut().expect("object checked"),
                "type",
                json!("Opaque"),
            );
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                let data = obj_at(obj, "data");
                for (k, v) in sd {
                    let s = v.as_str().unwrap_or_default();
                    data.insert(
                        k,
                        json!(base64::engine::general_purpose::STANDARD.encode(s)),
                    );
                }
            }
        }
        ("apps", "Deployment") => {
            let spec = obj_at(obj, "spec");
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            set_default(
                spec,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
            );
            default_template(spec);
        }
        ("apps", "StatefulSet")
        | ("apps", "DaemonSet")
        | ("apps", "ReplicaSet")
        | ("batch", "Job") => {
            let spec = obj_at(obj, "spec");
            if def.kind != "DaemonSet" && def.kind != "Job" {
                set_default(spec, "replicas", json!(1));
            }
            default_template(spec);
        }
        _ => {}
    }
}

fn default_template(spec: &mut Map<String, Value>) {
    if let Some(ps) = spec
        .get_mut("template")
        .and_then(|t| t.get_mut("spec"))
        .and_then(Value::as_object_mut)
    {
        default_pod_spec(ps);
    }
}

/// Allocate a cluster IP for a Service being created (unless headless or already set).
pub fn allocate_cluster_ip(obj: &mut Value, next: u32) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let wants = spec.get("type").and_then(Value::as_str) != Some("ExternalName");
    let current = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !wants || current == "None" {
        if current == "None" {
            spec.insert("clusterIPs".into(), json!(["None"]));
        }
        return;
    }
    let ip = if current.is_empty() {
        format!("10.96.{}.{}", (next >> 8) & 0xff, next & 0xff)
    } else {
        current
    };
    spec.insert("clusterIP".into(), json!(ip));
    spec.insert("clusterIPs".into(), json!([ip]));
}

/// Convert an object from a served version to its storage form.
pub fn to_storage(def: &ResourceDef, mut obj: Value) -> Value {
    match def.conversion {
        Conversion::EventsV1 => events::events_v1_to_core(&obj),
        Conversion::ApiVersionOnly => {
            obj["apiVersion"] = json!(def.storage_api_version);
            obj
        }
    }
}

/// Whether objects of `def` need conversion when read from storage.
pub fn needs_conversion(def: &ResourceDef) -> bool {
    def.conversion != Conversion::ApiVersionOnly || def.api_version() != def.storage_api_version
}

/// Convert a stored object to the served version of `def`.
pub fn from_storage(def: &ResourceDef, mut obj: Value) -> Value {
    match def.conversion {
        Conversion::EventsV1 => events::core_to_events_v1(&obj),
        Conversion::ApiVersionOnly => {
            if obj.is_object() {
                obj["apiVersion"] = json!(def.api_version());
            }
            obj
        }
    }
}

/// Whether anything but metadata (and status, when status is a subresource) differs between two
/// objects: what bumps generation. Compares in place, without copying either object.
pub fn spec_changed(old: &Value, new: &Value, has_status: bool) -> bool {
    let counted = |k: &String| match k.as_str() {
        "metadata" | "apiVersion" | "kind" => false,
        "status" => !has_status,
        _ => true,
    };
    let empty = serde_json::Map::new();
    let o = old.as_object().unwrap_or(&empty);
    let n = new.as_object().unwrap_or(&empty);
    o.iter()
        .filter(|(k, _)| counted(k))
        .any(|(k, v)| n.get(k) != Some(v))
        || n.iter()
            .filter(|(k, _)| counted(k))
            .any(|(k, _)| !o.contains_key(k))
}

/// Compare two objects ignoring resourceVersion and managedFields timestamps: a write that
/// changes nothing is not stored (no new revision, no watch event). Compares in place.
pub fn same_object(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let same_except = |a: &serde_json::Map<String, Value>,
                       b: &serde_json::Map<String, Value>,
                       skip: &dyn Fn(&str) -> bool| {
        a.iter().filter(|(k, _)| !skip(k)).count() == b.iter().filter(|(k, _)| !skip(k)).count()
            && a.iter()
                .filter(|(k, _)| !skip(k))
                .all(|(k, v)| b.get(k) == Some(v))
    };
    if !same_except(a, b, &|k| k == "metadata") {
        return false;
    }
    match (a.get("metadata"), b.get("metadata")) {
        (Some(Value::Object(ma)), Some(Value::Object(mb))) => {
            same_except(ma, mb, &|k| k == "resourceVersion" || k == "managedFields")
                && same_managed_fields(ma.get("managedFields"), mb.get("managedFields"))
        }
        (ma, mb) => ma == mb,
    }
}

/// managedFields entries equal but for their `time`.
fn same_managed_fields(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| match (x, y) {
                    (Value::Object(x), Value::Object(y)) => {
                        x.iter().filter(|(k, _)| *k != "time").count()
                            == y.iter().filter(|(k, _)| *k != "time").count()
                            && x.iter()
                                .filter(|(k, _)| *k != "time")
                                .all(|(k, v)| y.get(k) == Some(v))
                    }
                    _ => x == y,
                })
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::Registry;

    fn def(group: &str, resource: &str) -> std::sync::Arc<ResourceDef> {
        Registry::with_builtins()
            .get(group, "v1", resource)
            .expect("builtin")
    }

    #[test]
    fn pod_defaults_match_kube_apiserver() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": "busybox", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        default_builtin(&def("", "pods"), &mut pod, true);
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["spec"]["schedulerName"], "default-scheduler");
        assert_eq!(pod["spec"]["enableServiceLinks"], true);
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "1"
        );
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(pod["status"]["qosClass"], "Guaranteed");
        assert_eq!(pod["spec"]["tolerations"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn qos_classes() {
        assert_eq!(
            qos_class(&json!({"containers": [{"name": "c"}]})),
            "BestEffort"
        );
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})),
            "Burstable"
        );
    }

    #[test]
    fn secret_string_data_is_encoded() {
        let mut s = json!({"metadata": {"name": "s"}, "stringData": {"k": "hello"}});
        default_builtin(&def("", "secrets"), &mut s, true);
        assert_eq!(s["data"]["k"], "aGVsbG8=");
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
    }

    #[test]
    fn namespace_defaults() {
        let mut ns = json!({"metadata": {"name": "x"}});
        default_builtin(&def("", "namespaces"), &mut ns, true);
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(ns["metadata"]["labels"][NAMESPACE_NAME_LABEL], "x");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_subdomain("a-b.c").is_ok());
        assert!(check_subdomain("A").is_err());
        assert!(check_subdomain("-a").is_err());
        assert!(check_label_name("a.b").is_err());
        assert_eq!(generated_suffix().len(), 5);
    }

    #[test]
    fn same_object_ignores_revision() {
        let a = json!({"metadata": {"name": "a", "resourceVersion": "1"}, "spec": {"x": 1}});
        let b = json!({"metadata": {"name": "a", "resourceVersion": "2"}, "spec": {"x": 1}});
        assert!(same_object(&a, &b));
        let c = json!({"metadata": {"name": "a"}, "spec": {"x": 2}});
        assert!(!same_object(&a, &c));
        // managedFields timestamps do not count; anything else in them or in metadata does.
        let mf = |time: &str, manager: &str| {
            json!({"metadata": {"name": "a", "resourceVersion": "3", "managedFields": [
                {"manager": manager, "operation": "Update", "time": time, "fieldsV1": {"f:spec": {}}}]},
                "spec": {"x": 1}})
        };
        assert!(same_object(&mf("t1", "m"), &mf("t2", "m")));
        assert!(!same_object(&mf("t1", "m"), &mf("t1", "other")));
        assert!(!same_object(&a, &mf("t1", "m")));
        let labelled = json!({"metadata": {"name": "a", "labels": {"k": "v"}}, "spec": {"x": 1}});
        assert!(!same_object(&a, &labelled));
        assert!(!same_object(&a, &json!({"spec": {"x": 1}})));
        assert!(!same_object(
            &a,
            &json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {}})
        ));
    }

    #[test]
    fn spec_changes_ignore_metadata_type_meta_and_a_status_subresource() {
        let a = json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"x": 1}, "status": {"s": 1}});
        let mut b = a.clone();
        b["metadata"]["labels"] = json!({"k": "v"});
        b["apiVersion"] = json!("v2");
        b["status"]["s"] = json!(2);
        assert!(!spec_changed(&a, &b, true));
        assert!(
            spec_changed(&a, &b, false),
            "status is spec without the subresource"
        );
        let mut c = a.clone();
        c["spec"]["x"] = json!(2);
        assert!(spec_changed(&a, &c, true));
        let mut d = a.clone();
        d["data"] = json!({"k": "v"});
        assert!(spec_changed(&a, &d, true), "a new top-level field");
        assert!(spec_changed(&d, &a, true), "a removed top-level field");
    }
}
