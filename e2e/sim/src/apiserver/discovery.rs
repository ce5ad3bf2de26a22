//! Discovery documents rendered from the registry: `/version`, `/api`, `/apis`, `/api/v1`,
//! `/apis/{group}`, `/apis/{group}/{version}` (legacy discovery, which kube-rs reads and kubectl
//! falls back to), and the aggregated `APIGroupDiscoveryList` (apidiscovery.k8s.io/v2) kubectl
//! asks for first.

use serde_json::{json, Value};

use super::registry::{Registry, ResourceDef};

/// The Kubernetes version the sim reports.
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "35";

pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR, "minor": KUBE_MINOR,
        "emulationMajor": KUBE_MAJOR, "emulationMinor": KUBE_MINOR,
        "minCompatibilityMajor": KUBE_MAJOR, "minCompatibilityMinor": "34",
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0-barge-sim"),
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0", "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub fn core_versions(addr: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]})
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

pub fn group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .map(|(g, v)| group_entry(g, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(reg: &Registry, name: &str) -> Option<Value> {
    let (g, v) = reg.groups().into_iter().find(|(g, _)| g == name)?;
    let mut e = group_entry(&g, &v);
    e["kind"] = json!("APIGroup");
    e["apiVersion"] = json!("v1");
    Some(e)
}

/// (kind, group, version, verbs) of a subresource of `d`.
fn subresource_info(
    d: &ResourceDef,
    sub: &str,
) -> Option<(String, String, String, Vec<&'static str>)> {
    let own = (d.kind.clone(), d.group.clone(), d.version.clone());
    Some(match sub {
        "status" => (own.0, own.1, own.2, vec!["get", "patch", "update"]),
        "binding" => ("Binding".into(), String::new(), "v1".into(), vec!["create"]),
        "eviction" => (
            "Eviction".into(),
            "policy".into(),
            "v1".into(),
            vec!["create"],
        ),
        "log" => ("Pod".into(), String::new(), "v1".into(), vec!["get"]),
        "scale" => (
            "Scale".into(),
            "autoscaling".into(),
            "v1".into(),
            vec!["get", "patch", "update"],
        ),
        "finalize" => (
            "Namespace".into(),
            String::new(),
            "v1".into(),
            vec!["update"],
        ),
        _ => return None,
    })
}

fn base_resource(d: &ResourceDef) -> Value {
    let mut r = json!({
        "name": d.resource, "singularName": d.singular, "namespaced": d.namespaced,
        "kind": d.kind, "verbs": d.verbs,
    });
    if !d.short_names.is_empty() {
        r["shortNames"] = json!(d.short_names);
    }
    if !d.categories.is_empty() {
        r["categories"] = json!(d.categories);
    }
    r
}

/// Legacy APIResourceList of one group/version.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let core_v1 = group.is_empty() && version == "v1";
    if !core_v1 && !reg.has_group_version(group, version) {
        return None;
    }
    let mut resources = Vec::new();
    for d in reg.resources_of(group, version) {
        resources.push(base_resource(&d));
        for sub in &d.subresources {
            if let Some((kind, g, v, verbs)) = subresource_info(&d, sub) {
                let mut r = json!({"name": format!("{}/{sub}", d.resource), "singularName": "", "namespaced": d.namespaced, "kind": kind, "verbs": verbs});
                if g != d.group || v != d.version {
                    r["group"] = json!(g);
                    r["version"] = json!(v);
                }
                resources.push(r);
            }
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// Aggregated discovery (apidiscovery.k8s.io/v2) for `/api` (core) or `/apis` (groups).
pub fn aggregated(reg: &Registry, core: bool, api_version: &str) -> Value {
    let groups: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".into()])]
    } else {
        reg.groups()
    };
    let items: Vec<Value> = groups
        .iter()
        .map(|(g, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = reg
                        .resources_of(g, v)
                        .iter()
                        .map(|d| {
                            let subs: Vec<Value> = d
                                .subresources
                                .iter()
                                .filter_map(|s| {
                                    let (kind, sg, sv, verbs) = subresource_info(d, s)?;
                                    Some(json!({"subresource": s, "responseKind": {"group": sg, "version": sv, "kind": kind}, "verbs": verbs}))
                                })
                                .collect();
                            let mut r = json!({
                                "resource": d.resource,
                                "responseKind": {"group": d.group, "version": d.version, "kind": d.kind},
                                "scope": if d.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": d.singular,
                                "verbs": d.verbs,
                            });
                            if !d.short_names.is_empty() {
                                r["shortNames"] = json!(d.short_names);
                            }
                            if !d.categories.is_empty() {
                                r["categories"] = json!(d.categories);
                            }
                            if !subs.is_empty() {
                                r["subresources"] = json!(subs);
                            }
                            r
                        })
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": vs})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items})
}

/// The aggregated discovery version a client's Accept header asks for, if any.
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    for part in accept.split(',') {
        if part.contains("as=APIGroupDiscoveryList") && part.contains("g=apidiscovery.k8s.io") {
            if part.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if part.contains("v=v2") {
                return Some("v2");
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_resources_with_subresources() {
        let reg = Registry::with_builtins();
        let l = resource_list(&reg, "", "v1").unwrap();
        let names: Vec<&str> = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        for n in [
            "pods",
            "pods/status",
            "pods/binding",
            "pods/log",
            "nodes",
            "namespaces",
            "events",
            "configmaps",
        ] {
            assert!(names.contains(&n), "{n} missing");
        }
        assert!(resource_list(&reg, "nope.io", "v1").is_none());
    }

    #[test]
    fn groups_and_aggregated() {
        let reg = Registry::with_builtins();
        let g = group_list(&reg);
        assert!(g["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "apps"));
        let a = aggregated(&reg, false, "apidiscovery.k8s.io/v2");
        assert!(a["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["metadata"]["name"] == "events.k8s.io"));
        assert_eq!(wants_aggregated("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"), Some("v2"));
        assert_eq!(wants_aggregated("application/json"), None);
    }
}
