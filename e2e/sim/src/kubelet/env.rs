//! A container's environment as a kubelet builds it: `envFrom` sources first, then `env`
//! entries (later ones win), with `$(VAR)` references expanded against the variables defined
//! so far, values from the Downward API (`fieldRef`, `resourceFieldRef`) and from Secrets and
//! ConfigMaps. The Secrets and ConfigMaps are fetched by the caller (`referenced_sources` says
//! which) and passed in, so building the environment is pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::quantity::parse_milli;
use super::resources::{container_limits, container_requests, Resources};

/// Where a value comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SourceKind {
    Secret,
    ConfigMap,
}

impl SourceKind {
    fn lower(&self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::ConfigMap => "configmap",
        }
    }
    fn title(&self) -> &'static str {
        match self {
            Self::Secret => "Secret",
            Self::ConfigMap => "ConfigMap",
        }
    }
}

/// Fetched Secrets and ConfigMaps (data as strings); `None` = not found.
pub type Sources = BTreeMap<(SourceKind, String), Option<BTreeMap<String, String>>>;

/// The Secrets and ConfigMaps (in the pod's namespace) a container's environment reads.
pub fn referenced_sources(c: &Container) -> Vec<(SourceKind, String)> {
    let mut out = Vec::new();
    for from in c.env_from.iter().flatten() {
        if let Some(s) = &from.secret_ref {
            out.push((SourceKind::Secret, s.name.clone()));
        }
        if let Some(m) = &from.config_map_ref {
            out.push((SourceKind::ConfigMap, m.name.clone()));
        }
    }
    for e in c.env.iter().flatten() {
        if let Some(from) = &e.value_from {
            if let Some(s) = &from.secret_key_ref {
                out.push((SourceKind::Secret, s.name.clone()));
            }
            if let Some(m) = &from.config_map_key_ref {
                out.push((SourceKind::ConfigMap, m.name.clone()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Facts of the running pod the Downward API exposes beyond its object.
#[derive(Debug, Clone)]
pub struct PodFacts<'a> {
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
    pub node_allocatable: &'a Resources,
}

/// Expands `$(VAR)` references (`$$` escapes a `$`); unknown references stay as written.
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

fn source_data<'a>(
    sources: &'a Sources,
    kind: SourceKind,
    name: &str,
    optional: bool,
) -> Result<Option<&'a BTreeMap<String, String>>, String> {
    match sources.get(&(kind.clone(), name.to_string())) {
        Some(Some(data)) => Ok(Some(data)),
        _ if optional => Ok(None),
        _ => Err(format!("{} \"{name}\" not found", kind.lower())),
    }
}

/// Builds the environment of `container` (ordered as the kubelet orders it).
pub fn build_env(
    pod: &Pod,
    container: &Container,
    facts: &PodFacts<'_>,
    sources: &Sources,
) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut set = |vars: &mut BTreeMap<String, String>, k: String, v: String| {
        if vars.insert(k.clone(), v).is_none() {
            order.push(k);
        }
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let (kind, name, optional) = if let Some(s) = &from.secret_ref {
            (
                SourceKind::Secret,
                s.name.as_str(),
                s.optional.unwrap_or(false),
            )
        } else if let Some(m) = &from.config_map_ref {
            (
                SourceKind::ConfigMap,
                m.name.as_str(),
                m.optional.unwrap_or(false),
            )
        } else {
            continue;
        };
        if let Some(data) = source_data(sources, kind, name, optional)? {
            for (k, v) in data {
                let key = format!("{prefix}{k}");
                if valid_env_name(&key) {
                    set(&mut vars, key, v.clone());
                }
            }
        }
    }
    for e in container.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            expand(v, &vars)
        } else if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                field_value(pod, &f.field_path, facts)?
            } else if let Some(r) = &from.resource_field_ref {
                let target = match r.container_name.as_deref() {
                    Some(n) if !n.is_empty() => find_container(pod, n).ok_or_else(|| {
                        format!("resourceFieldRef: container {n:?} not found in pod")
                    })?,
                    _ => container,
                };
                let divisor = r.divisor.as_ref().map(|d| d.0.as_str()).unwrap_or("1");
                resource_value(target, &r.resource, divisor, facts.node_allocatable)?
            } else if let Some(s) = &from.secret_key_ref {
                match key_value(
                    sources,
                    SourceKind::Secret,
                    &s.name,
                    &s.key,
                    ns,
                    s.optional.unwrap_or(false),
                )? {
                    Some(v) => v,
                    None => continue,
                }
            } else if let Some(m) = &from.config_map_key_ref {
                match key_value(
                    sources,
                    SourceKind::ConfigMap,
                    &m.name,
                    &m.key,
                    ns,
                    m.optional.unwrap_or(false),
                )? {
                    Some(v) => v,
                    None => continue,
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut vars, e.name.clone(), value);
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = vars.get(&k).cloned().unwrap_or_default();
            (k, v)
        })
        .collect())
}

fn key_value(
    sources: &Sources,
    kind: SourceKind,
    name: &str,
    key: &str,
    ns: &str,
    optional: bool,
) -> Result<Option<String>, String> {
    let title = kind.title();
    match source_data(sources, kind, name, optional)? {
        None => Ok(None),
        Some(data) => match data.get(key) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(format!("couldn't find key {key} in {title} {ns}/{name}")),
        },
    }
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// The value of a Downward API `fieldRef`.
pub fn field_value(pod: &Pod, path: &str, facts: &PodFacts<'_>) -> Result<String, String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let subscript = |prefix: &str| -> Option<String> {
        let rest = path
            .strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")?;
        Some(rest.to_string())
    };
    let v = match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => facts.pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.to_string(),
        _ => {
            if let Some(k) = subscript("metadata.labels") {
                m.labels
                    .as_ref()
                    .and_then(|l| l.get(&k).cloned())
                    .unwrap_or_default()
            } else if let Some(k) = subscript("metadata.annotations") {
                m.annotations
                    .as_ref()
                    .and_then(|a| a.get(&k).cloned())
                    .unwrap_or_default()
            } else {
                return Err(format!("unsupported fieldRef fieldPath {path:?}"));
            }
        }
    };
    Ok(v)
}

/// The value of a Downward API `resourceFieldRef` (limits default to the node's allocatable).
pub fn resource_value(
    c: &Container,
    resource: &str,
    divisor: &str,
    allocatable: &Resources,
) -> Result<String, String> {
    let divisor = parse_milli(divisor).map_err(|e| e.to_string())?;
    if divisor <= 0 {
        return Err(format!(
            "resourceFieldRef divisor must be positive, got {divisor}m"
        ));
    }
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported resourceFieldRef resource {resource:?}"))?;
    let list = match kind {
        "limits" => container_limits(c),
        "requests" => container_requests(c),
        _ => {
            return Err(format!(
                "unsupported resourceFieldRef resource {resource:?}"
            ))
        }
    }
    .map_err(|e| e.to_string())?;
    let value = match list.get(name) {
        Some(v) => *v,
        None if kind == "limits" => allocatable.get(name).copied().unwrap_or(0),
        None => 0,
    };
    Ok(((value + divisor - 1).div_euclid(divisor)).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("job-1".into()),
                namespace: Some("team".into()),
                uid: Some("u-1".into()),
                labels: Some([("batch.barge.dev/attempt".to_string(), "2".to_string())].into()),
                annotations: Some([("a".to_string(), "b".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                service_account_name: Some("sa".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn plain(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    #[test]
    fn expands_references_like_the_kubelet() {
        let vars: BTreeMap<String, String> = [("A".to_string(), "1".to_string())].into();
        assert_eq!(expand("x$(A)y", &vars), "x1y");
        assert_eq!(expand("$(B)", &vars), "$(B)");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("cost $5 $(A", &vars), "cost $5 $(A");
    }

    #[test]
    fn downward_api_values() {
        let c = Container {
            name: "main".into(),
            env: Some(vec![
                field("NAME", "metadata.name"),
                field("NS", "metadata.namespace"),
                field("UID", "metadata.uid"),
                field("ATTEMPT", "metadata.labels['batch.barge.dev/attempt']"),
                field("ANN", "metadata.annotations['a']"),
                field("NODE", "spec.nodeName"),
                field("SA", "spec.serviceAccountName"),
                field("IP", "status.podIP"),
                field("HOST", "status.hostIP"),
                plain("MSG", "$(NAME) on $(NODE)"),
            ]),
            ..Default::default()
        };
        let alloc = Resources::new();
        let facts = PodFacts {
            pod_ip: "10.1.0.7",
            host_ip: "127.0.0.1",
            node_allocatable: &alloc,
        };
        let env: BTreeMap<_, _> = build_env(&pod(), &c, &facts, &Sources::new())
            .expect("env")
            .into_iter()
            .collect();
        assert_eq!(env["NAME"], "job-1");
        assert_eq!(env["NS"], "team");
        assert_eq!(env["UID"], "u-1");
        assert_eq!(env["ATTEMPT"], "2");
        assert_eq!(env["ANN"], "b");
        assert_eq!(env["NODE"], "n1");
        assert_eq!(env["SA"], "sa");
        assert_eq!(env["IP"], "10.1.0.7");
        assert_eq!(env["HOST"], "127.0.0.1");
        assert_eq!(env["MSG"], "job-1 on n1");
        let bad = Container {
            env: Some(vec![field("X", "status.phase")]),
            ..Default::default()
        };
        assert!(build_env(&pod(), &bad, &facts, &Sources::new()).is_err());
    }

    #[test]
    fn secrets_and_config_maps_with_kubelet_errors() {
        let c = Container {
            name: "main".into(),
            env_from: Some(vec![EnvFromSource {
                prefix: Some("CM_".into()),
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "cm".into(),
                    optional: None,
                }),
                ..Default::default()
            }]),
            env: Some(vec![EnvVar {
                name: "PASSWORD".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "s".into(),
                        key: "pw".into(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(
            referenced_sources(&c),
            vec![
                (SourceKind::Secret, "s".into()),
                (SourceKind::ConfigMap, "cm".into())
            ]
        );
        let alloc = Resources::new();
        let facts = PodFacts {
            pod_ip: "",
            host_ip: "",
            node_allocatable: &alloc,
        };
        let mut sources = Sources::new();
        sources.insert(
            (SourceKind::ConfigMap, "cm".into()),
            Some([("k".to_string(), "v".to_string())].into()),
        );
        sources.insert((SourceKind::Secret, "s".into()), None);
        assert_eq!(
            build_env(&pod(), &c, &facts, &sources).expect_err("missing"),
            "secret \"s\" not found"
        );
        sources.insert((SourceKind::Secret, "s".into()), Some(BTreeMap::new()));
        assert_eq!(
            build_env(&pod(), &c, &facts, &sources).expect_err("no key"),
            "couldn't find key pw in Secret team/s"
        );
        sources.insert(
            (SourceKind::Secret, "s".into()),
            Some([("pw".to_string(), "hunter2".to_string())].into()),
        );
        let env = build_env(&pod(), &c, &facts, &sources).expect("env");
        assert_eq!(
            env,
            vec![
                ("CM_k".to_string(), "v".to_string()),
                ("PASSWORD".to_string(), "hunter2".to_string())
            ]
        );
    }

    #[test]
    fn resource_field_refs_round_up_and_default_limits_to_allocatable() {
        let c = Container {
            resources: Some(ResourceRequirements {
                requests: Some([("cpu".to_string(), Quantity("250m".into()))].into()),
                limits: Some([("memory".to_string(), Quantity("1Gi".into()))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let alloc: Resources = [("cpu".to_string(), 4000)].into();
        assert_eq!(
            resource_value(&c, "requests.cpu", "1", &alloc),
            Ok("1".into())
        );
        assert_eq!(
            resource_value(&c, "requests.cpu", "1m", &alloc),
            Ok("250".into())
        );
        assert_eq!(
            resource_value(&c, "limits.memory", "1Mi", &alloc),
            Ok("1024".into())
        );
        assert_eq!(
            resource_value(&c, "limits.cpu", "1", &alloc),
            Ok("4".into())
        );
        assert!(resource_value(&c, "bogus", "1", &alloc).is_err());
        assert!(resource_value(&c, "limits.cpu", "0", &alloc).is_err());
    }
}
