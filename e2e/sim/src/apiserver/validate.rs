//! Validation kube-apiserver applies to every object (metadata: label keys and values, owner
//! references) and to the built-in kinds whose mistakes a controller is most likely to make
//! (Pods: containers, names, images, restart policy). CRD objects are validated by their schema
//! (machinery.rs); these rules run for all kinds. Errors use apimachinery's `FieldError`s, so the
//! 422 reads as kube-apiserver's.

use serde_json::{json, Value};

use crate::apimachinery::validation::{
    invalid_status, validate_dns1035_label, validate_dns1123_label, validate_label_key,
    validate_label_value, FieldError,
};

use super::registry::ResourceDef;

/// Restart policies of a Pod.
const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];

fn metadata_errors(obj: &Value, errs: &mut Vec<FieldError>) {
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Err(m) = validate_label_key(k) {
                errs.push(FieldError::invalid("metadata.labels", json!(k), m));
            }
            match v.as_str() {
                Some(s) => {
                    if let Err(m) = validate_label_value(s) {
                        errs.push(FieldError::invalid(
                            format!("metadata.labels[{k}]"),
                            json!(s),
                            m,
                        ));
                    }
                }
                None => errs.push(FieldError::invalid(
                    format!("metadata.labels[{k}]"),
                    v.clone(),
                    "must be a string",
                )),
            }
        }
    }
    if let Some(refs) = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
    {
        for (i, r) in refs.iter().enumerate() {
            for field in ["apiVersion", "kind", "name", "uid"] {
                if r.get(field)
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    errs.push(FieldError::invalid(
                        format!("metadata.ownerReferences[{i}].{field}"),
                        json!(""),
                        format!("{field} must not be empty"),
                    ));
                }
            }
        }
        let controllers = refs
            .iter()
            .filter(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
            .count();
        if controllers > 1 {
            errs.push(FieldError::invalid(
                "metadata.ownerReferences",
                json!(refs),
                "Only one reference can have Controller set to true.",
            ));
        }
    }
}

fn containers_errors(
    spec: &Value,
    list: &str,
    required: bool,
    errs: &mut Vec<FieldError>,
    seen: &mut Vec<String>,
) {
    let path = format!("spec.{list}");
    let containers = spec.get(list).and_then(Value::as_array);
    if required && containers.is_none_or(Vec::is_empty) {
        errs.push(FieldError::required(path.clone(), ""));
        return;
    }
    for (i, c) in containers.into_iter().flatten().enumerate() {
        let p = format!("{path}[{i}]");
        match c
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            None => errs.push(FieldError::required(format!("{p}.name"), "")),
            Some(n) => {
                if let Err(m) = validate_dns1123_label(n) {
                    errs.push(FieldError::invalid(format!("{p}.name"), json!(n), m));
                }
                if seen.iter().any(|s| s == n) {
                    errs.push(FieldError::duplicate(format!("{p}.name"), json!(n)));
                }
                seen.push(n.to_string());
            }
        }
        if c.get("image")
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty())
        {
            errs.push(FieldError::required(format!("{p}.image"), ""));
        }
    }
}

fn pod_spec_errors(spec: &Value, errs: &mut Vec<FieldError>) {
    let mut seen = Vec::new();
    containers_errors(spec, "containers", true, errs, &mut seen);
    containers_errors(spec, "initContainers", false, errs, &mut seen);
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str) {
        if !RESTART_POLICIES.contains(&rp) {
            errs.push(FieldError::not_supported(
                "spec.restartPolicy",
                json!(rp),
                &RESTART_POLICIES
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            ));
        }
    }
    // The pod's own DNS name (`<hostname>.<subdomain>.<namespace>.svc`): both are DNS-1123
    // labels when set, as `ValidatePodSpec` checks them.
    for field in ["hostname", "subdomain"] {
        if let Some(value) = spec
            .get(field)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
        {
            if let Err(m) = validate_dns1123_label(value) {
                errs.push(FieldError::invalid(
                    format!("spec.{field}"),
                    json!(value),
                    m,
                ));
            }
        }
    }
}

/// Service rules of `ValidateService`: the name is a DNS-1035 label (it becomes a DNS name), and
/// a Service needs ports unless it is headless (`clusterIP: None`) or an ExternalName.
fn service_errors(obj: &Value, errs: &mut Vec<FieldError>) {
    if let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str) {
        if let Err(m) = validate_dns1035_label(name) {
            errs.push(FieldError::invalid("metadata.name", json!(name), m));
        }
    }
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None")
        || spec.pointer("/clusterIPs/0").and_then(Value::as_str) == Some("None");
    let external_name = spec.get("type").and_then(Value::as_str) == Some("ExternalName");
    let no_ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_ports && !headless && !external_name {
        errs.push(FieldError::required("spec.ports", ""));
    }
}

/// kube-apiserver's message for a forbidden Pod spec update.
pub const POD_SPEC_IMMUTABLE: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// The Pod spec without the fields an update may change.
fn pod_spec_fixed_part(spec: &Value) -> Value {
    let mut s = spec.clone();
    if let Some(o) = s.as_object_mut() {
        for f in [
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
            "schedulingGates",
        ] {
            o.remove(f);
        }
        for list in ["containers", "initContainers"] {
            if let Some(cs) = o.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                    c.remove("image");
                }
            }
        }
    }
    s
}

/// Errors of an update of the main resource (not subresources) from `old` to `new`.
pub fn validate_update(def: &ResourceDef, old: &Value, new: &Value) -> Result<(), Value> {
    let mut errs = Vec::new();
    if !def.custom && def.group.is_empty() && def.kind == "Pod" {
        let null = Value::Null;
        let (old_spec, new_spec) = (
            old.get("spec").unwrap_or(&null),
            new.get("spec").unwrap_or(&null),
        );
        // An unchanged spec (a metadata or status write) needs no copies to be compared.
        if old_spec != new_spec && pod_spec_fixed_part(old_spec) != pod_spec_fixed_part(new_spec) {
            errs.push(FieldError::forbidden("spec", POD_SPEC_IMMUTABLE));
        }
    }
    if errs.is_empty() {
        return Ok(());
    }
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Err(invalid_status(&def.group, &def.kind, name, &errs))
}

/// All errors of an object about to be stored (served form), as the 422 Status if any.
pub fn validate(def: &ResourceDef, obj: &Value) -> Result<(), Value> {
    let mut errs = Vec::new();
    metadata_errors(obj, &mut errs);
    if !def.custom && def.group.is_empty() && def.kind == "Pod" {
        pod_spec_errors(obj.get("spec").unwrap_or(&Value::Null), &mut errs);
    }
    if !def.custom && def.group.is_empty() && def.kind == "Service" {
        service_errors(obj, &mut errs);
    }
    if errs.is_empty() {
        return Ok(());
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Err(invalid_status(&def.group, &def.kind, name, &errs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::Registry;

    #[test]
    fn labels_and_pods_are_checked() {
        let reg = Registry::with_builtins();
        let pods = reg.get("", "v1", "pods").unwrap();
        let ok = json!({"metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
        assert!(validate(&pods, &ok).is_ok());
        let long = "x".repeat(64);
        let bad =
            json!({"metadata": {"name": "p", "labels": {"a": long}}, "spec": {"containers": []}});
        let status = validate(&pods, &bad).unwrap_err();
        assert_eq!(status["code"], 422);
        let msg = status["message"].as_str().unwrap();
        assert!(
            msg.contains("metadata.labels[a]")
                && msg.contains("must be no more than 63 characters"),
            "{msg}"
        );
        assert!(msg.contains("spec.containers: Required value"), "{msg}");
        let dup = json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": "Sometimes", "containers": [{"name": "c", "image": "x"}, {"name": "c"}]}});
        let msg = validate(&pods, &dup).unwrap_err()["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            msg.contains("spec.containers[1].name: Duplicate value: \"c\""),
            "{msg}"
        );
        assert!(
            msg.contains("spec.containers[1].image: Required value"),
            "{msg}"
        );
        assert!(
            msg.contains("spec.restartPolicy: Unsupported value: \"Sometimes\""),
            "{msg}"
        );
        let cms = reg.get("", "v1", "configmaps").unwrap();
        let owners = json!({"metadata": {"name": "c", "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "n"}]}});
        assert!(validate(&cms, &owners).unwrap_err()["message"]
            .as_str()
            .unwrap()
            .contains("metadata.ownerReferences[0].uid"));
    }

    #[test]
    fn pod_dns_names_and_services_are_checked() {
        let reg = Registry::with_builtins();
        let pods = reg.get("", "v1", "pods").unwrap();
        let named = json!({"metadata": {"name": "j-1-node-0"}, "spec": {"hostname": "node-0", "subdomain": "j-nodes", "containers": [{"name": "c", "image": "x"}]}});
        assert!(validate(&pods, &named).is_ok());
        let mut bad = named.clone();
        bad["spec"]["subdomain"] = json!("j.nodes");
        bad["spec"]["hostname"] = json!("Node_0");
        let msg = validate(&pods, &bad).unwrap_err()["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            msg.contains("spec.hostname: Invalid value: \"Node_0\": a lowercase RFC 1123 label"),
            "{msg}"
        );
        assert!(
            msg.contains("spec.subdomain: Invalid value: \"j.nodes\""),
            "{msg}"
        );

        let services = reg.get("", "v1", "services").unwrap();
        let headless = json!({"metadata": {"name": "j-nodes"}, "spec": {"clusterIP": "None", "publishNotReadyAddresses": true}});
        assert!(validate(&services, &headless).is_ok());
        let portless = json!({"metadata": {"name": "j-nodes"}, "spec": {"type": "ClusterIP"}});
        let msg = validate(&services, &portless).unwrap_err()["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(msg.contains("spec.ports: Required value"), "{msg}");
        let digit = json!({"metadata": {"name": "1-nodes"}, "spec": {"clusterIP": "None"}});
        let msg = validate(&services, &digit).unwrap_err()["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            msg.contains("metadata.name: Invalid value: \"1-nodes\": a DNS-1035 label"),
            "{msg}"
        );
    }

    #[test]
    fn pod_spec_updates_are_limited() {
        let pods = Registry::with_builtins().get("", "v1", "pods").unwrap();
        let old = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "a"}]}});
        let mut image = old.clone();
        image["spec"]["containers"][0]["image"] = json!("b");
        image["spec"]["activeDeadlineSeconds"] = json!(5);
        assert!(validate_update(&pods, &old, &image).is_ok());
        let mut node = old.clone();
        node["spec"]["nodeName"] = json!("n2");
        let msg = validate_update(&pods, &old, &node).unwrap_err()["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            msg.contains("spec: Forbidden: pod updates may not change fields other than"),
            "{msg}"
        );
    }
}
