//! Merge metadata of built-in kinds: for each field that is not merged the default way, the
//! strategic-merge-patch strategy and merge key (`patchStrategy`/`patchMergeKey` struct tags in
//! `k8s.io/api`) and the server-side-apply list type (`+listType`/`+listMapKey` markers, published
//! as `x-kubernetes-list-type`/`x-kubernetes-list-map-keys`).
//!
//! Paths are field names from the object root joined by `.`; list levels are passed through
//! (`spec.containers.env` is the `env` of every container).

use super::validation::ListType;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// How strategic merge patch treats a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchStrategy {
    /// Lists merged item by item (by merge key, or as a set of scalars); maps merged by key.
    Merge,
    /// Replaced whole.
    Replace,
}

/// Merge metadata of one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldInfo {
    pub patch_strategy: PatchStrategy,
    pub merge_key: Option<&'static str>,
    pub list_type: ListType,
    pub map_atomic: bool,
}

/// A built-in kind and its merge metadata (see [`builtin_kind`]).
#[derive(Clone, Debug)]
pub struct BuiltinKind {
    pub group: &'static str,
    pub kind: &'static str,
    fields: Arc<HashMap<String, FieldInfo>>,
}

impl BuiltinKind {
    /// Metadata of the field at `path` (field names from the root), if it is not the default
    /// (lists replaced/atomic, maps merged/granular).
    pub fn field(&self, path: &[String]) -> Option<&FieldInfo> {
        // Looked up for every node of every object walked (server-side apply, managedFields):
        // the key is joined into a reused buffer instead of a new `String` per look-up.
        thread_local! {
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        KEY.with(|key| {
            let mut key = key.borrow_mut();
            key.clear();
            for (i, name) in path.iter().enumerate() {
                if i > 0 {
                    key.push('.');
                }
                key.push_str(name);
            }
            self.fields.get(key.as_str())
        })
    }

    /// The strategic merge patch strategy and merge key of the field at `path`.
    pub fn patch_meta(&self, path: &[String]) -> (Option<PatchStrategy>, Option<&'static str>) {
        match self.field(path) {
            Some(f) => (Some(f.patch_strategy), f.merge_key),
            None => (None, None),
        }
    }
}

/// `(relative path, SMP strategy, SMP merge key, SSA list type)`.
type Rule = (&'static str, PatchStrategy, Option<&'static str>, Ssa);

#[derive(Clone, Copy)]
enum Ssa {
    Atomic,
    Set,
    Map(&'static [&'static str]),
    AtomicMap,
}

use PatchStrategy::{Merge, Replace};

const OBJECT_META: &[Rule] = &[
    ("finalizers", Merge, None, Ssa::Set),
    ("ownerReferences", Merge, Some("uid"), Ssa::Map(&["uid"])),
    ("managedFields", Replace, None, Ssa::Atomic),
];

const CONTAINER: &[Rule] = &[
    ("env", Merge, Some("name"), Ssa::Map(&["name"])),
    (
        "ports",
        Merge,
        Some("containerPort"),
        Ssa::Map(&["containerPort", "protocol"]),
    ),
    (
        "volumeMounts",
        Merge,
        Some("mountPath"),
        Ssa::Map(&["mountPath"]),
    ),
    (
        "volumeDevices",
        Merge,
        Some("devicePath"),
        Ssa::Map(&["devicePath"]),
    ),
    ("resources.claims", Replace, None, Ssa::Map(&["name"])),
];

const POD_SPEC: &[Rule] = &[
    ("containers", Merge, Some("name"), Ssa::Map(&["name"])),
    ("initContainers", Merge, Some("name"), Ssa::Map(&["name"])),
    (
        "ephemeralContainers",
        Merge,
        Some("name"),
        Ssa::Map(&["name"]),
    ),
    ("volumes", Merge, Some("name"), Ssa::Map(&["name"])),
    ("imagePullSecrets", Merge, Some("name"), Ssa::Map(&["name"])),
    ("hostAliases", Merge, Some("ip"), Ssa::Map(&["ip"])),
    (
        "topologySpreadConstraints",
        Merge,
        Some("topologyKey"),
        Ssa::Map(&["topologyKey", "whenUnsatisfiable"]),
    ),
    ("resourceClaims", Merge, Some("name"), Ssa::Map(&["name"])),
    ("schedulingGates", Merge, Some("name"), Ssa::Map(&["name"])),
    ("nodeSelector", Merge, None, Ssa::AtomicMap),
];

const POD_STATUS: &[Rule] = &[
    ("conditions", Merge, Some("type"), Ssa::Map(&["type"])),
    ("podIPs", Merge, Some("ip"), Ssa::Map(&["ip"])),
    ("hostIPs", Merge, Some("ip"), Ssa::Map(&["ip"])),
];

const CONDITIONS_BY_TYPE: &[Rule] = &[("conditions", Merge, Some("type"), Ssa::Map(&["type"]))];

struct Builder(HashMap<String, FieldInfo>);

impl Builder {
    fn new() -> Self {
        let mut b = Builder(HashMap::new());
        b.add("metadata", OBJECT_META);
        b
    }

    fn add(&mut self, prefix: &str, rules: &[Rule]) -> &mut Self {
        for (path, strategy, key, ssa) in rules {
            let full = if prefix.is_empty() {
                path.to_string()
            } else {
                format!("{prefix}.{path}")
            };
            let (list_type, map_atomic) = match ssa {
                Ssa::Atomic => (ListType::Atomic, false),
                Ssa::Set => (ListType::Set, false),
                Ssa::Map(keys) => (
                    ListType::Map {
                        keys: keys.iter().map(|k| k.to_string()).collect(),
                    },
                    false,
                ),
                Ssa::AtomicMap => (ListType::Atomic, true),
            };
            self.0.insert(
                full,
                FieldInfo {
                    patch_strategy: *strategy,
                    merge_key: *key,
                    list_type,
                    map_atomic,
                },
            );
        }
        self
    }

    /// A `PodTemplateSpec` at `prefix`: its metadata and pod spec.
    fn pod_template(&mut self, prefix: &str) -> &mut Self {
        self.add(&format!("{prefix}.metadata"), OBJECT_META);
        self.pod_spec(&format!("{prefix}.spec"))
    }

    fn pod_spec(&mut self, prefix: &str) -> &mut Self {
        self.add(prefix, POD_SPEC);
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            self.add(&format!("{prefix}.{list}"), CONTAINER);
        }
        self
    }

    fn build(&mut self, group: &'static str, kind: &'static str) -> BuiltinKind {
        BuiltinKind {
            group,
            kind,
            fields: Arc::new(std::mem::take(&mut self.0)),
        }
    }
}

fn table() -> &'static HashMap<(&'static str, &'static str), BuiltinKind> {
    static TABLE: OnceLock<HashMap<(&'static str, &'static str), BuiltinKind>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut kinds = Vec::new();
        kinds.push(
            Builder::new()
                .pod_spec("spec")
                .add("status", POD_STATUS)
                .build("", "Pod"),
        );
        kinds.push(
            Builder::new()
                .pod_template("template")
                .build("", "PodTemplate"),
        );
        kinds.push(
            Builder::new()
                .pod_template("spec.template")
                .build("", "ReplicationController"),
        );
        for kind in ["Deployment", "ReplicaSet", "DaemonSet"] {
            kinds.push(
                Builder::new()
                    .pod_template("spec.template")
                    .add("status", CONDITIONS_BY_TYPE)
                    .add(
                        "spec.selector",
                        &[("matchLabels", Merge, None, Ssa::AtomicMap)],
                    )
                    .build("apps", kind),
            );
        }
        kinds.push(
            Builder::new()
                .pod_template("spec.template")
                .add("status", CONDITIONS_BY_TYPE)
                .build("apps", "StatefulSet"),
        );
        kinds.push(
            Builder::new()
                .pod_template("spec.template")
                .add(
                    "status",
                    &[("conditions", Merge, Some("type"), Ssa::Atomic)],
                )
                .build("batch", "Job"),
        );
        kinds.push(
            Builder::new()
                .pod_template("spec.jobTemplate.spec.template")
                .build("batch", "CronJob"),
        );
        kinds.push(
            Builder::new()
                .add(
                    "spec",
                    &[(
                        "ports",
                        Merge,
                        Some("port"),
                        Ssa::Map(&["port", "protocol"]),
                    )],
                )
                .add("status", CONDITIONS_BY_TYPE)
                .build("", "Service"),
        );
        kinds.push(
            Builder::new()
                .add("spec", &[("podCIDRs", Merge, None, Ssa::Set)])
                .add(
                    "status",
                    &[
                        ("conditions", Merge, Some("type"), Ssa::Map(&["type"])),
                        ("addresses", Merge, Some("type"), Ssa::Map(&["type"])),
                    ],
                )
                .build("", "Node"),
        );
        kinds.push(
            Builder::new()
                .add("status", CONDITIONS_BY_TYPE)
                .build("", "Namespace"),
        );
        kinds.push(
            Builder::new()
                .add("", &[("secrets", Merge, Some("name"), Ssa::Map(&["name"]))])
                .build("", "ServiceAccount"),
        );
        kinds.push(
            Builder::new()
                .add(
                    "status",
                    &[("conditions", Merge, Some("type"), Ssa::Map(&["type"]))],
                )
                .build("policy", "PodDisruptionBudget"),
        );
        kinds.push(
            Builder::new()
                .add(
                    "status",
                    &[("conditions", Replace, None, Ssa::Map(&["type"]))],
                )
                .build("apiextensions.k8s.io", "CustomResourceDefinition"),
        );
        for (group, kind) in [
            ("", "ConfigMap"),
            ("", "Secret"),
            ("", "Event"),
            ("", "Endpoints"),
            ("", "PersistentVolumeClaim"),
            ("", "PersistentVolume"),
            ("", "LimitRange"),
            ("", "ResourceQuota"),
            ("events.k8s.io", "Event"),
            ("apps", "ControllerRevision"),
            ("coordination.k8s.io", "Lease"),
            ("rbac.authorization.k8s.io", "Role"),
            ("rbac.authorization.k8s.io", "ClusterRole"),
            ("rbac.authorization.k8s.io", "RoleBinding"),
            ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
            ("scheduling.k8s.io", "PriorityClass"),
            ("discovery.k8s.io", "EndpointSlice"),
            ("storage.k8s.io", "StorageClass"),
            ("networking.k8s.io", "Ingress"),
            ("networking.k8s.io", "NetworkPolicy"),
            (
                "admissionregistration.k8s.io",
                "ValidatingWebhookConfiguration",
            ),
            (
                "admissionregistration.k8s.io",
                "MutatingWebhookConfiguration",
            ),
            ("apiregistration.k8s.io", "APIService"),
        ] {
            kinds.push(Builder::new().build(group, kind));
        }
        kinds.into_iter().map(|k| ((k.group, k.kind), k)).collect()
    })
}

/// The merge metadata of a built-in `(group, kind)`; `None` for custom resources (which do not
/// support strategic merge patch) and kinds this server does not know.
pub fn builtin_kind(group: &str, kind: &str) -> Option<BuiltinKind> {
    table().get(&(group, kind)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn pod_fields_carry_the_kubernetes_merge_keys() {
        let pod = builtin_kind("", "Pod").unwrap();
        assert_eq!(
            pod.patch_meta(&p("spec.containers")),
            (Some(Merge), Some("name"))
        );
        assert_eq!(
            pod.patch_meta(&p("spec.containers.env")),
            (Some(Merge), Some("name"))
        );
        assert_eq!(
            pod.patch_meta(&p("spec.containers.ports")),
            (Some(Merge), Some("containerPort"))
        );
        assert_eq!(
            pod.patch_meta(&p("spec.initContainers.volumeMounts")),
            (Some(Merge), Some("mountPath"))
        );
        assert_eq!(
            pod.patch_meta(&p("spec.volumes")),
            (Some(Merge), Some("name"))
        );
        assert_eq!(
            pod.patch_meta(&p("metadata.finalizers")),
            (Some(Merge), None)
        );
        assert_eq!(
            pod.patch_meta(&p("metadata.ownerReferences")),
            (Some(Merge), Some("uid"))
        );
        assert_eq!(
            pod.patch_meta(&p("status.conditions")),
            (Some(Merge), Some("type"))
        );
        assert_eq!(pod.patch_meta(&p("spec.tolerations")), (None, None));
        assert_eq!(
            pod.field(&p("spec.containers.ports")).unwrap().list_type,
            ListType::Map {
                keys: vec!["containerPort".into(), "protocol".into()]
            }
        );
        assert_eq!(
            pod.field(&p("metadata.finalizers")).unwrap().list_type,
            ListType::Set
        );
    }

    #[test]
    fn templates_embed_the_pod_spec() {
        let d = builtin_kind("apps", "Deployment").unwrap();
        assert_eq!(
            d.patch_meta(&p("spec.template.spec.containers.env")),
            (Some(Merge), Some("name"))
        );
        let cj = builtin_kind("batch", "CronJob").unwrap();
        assert_eq!(
            cj.patch_meta(&p("spec.jobTemplate.spec.template.spec.containers")),
            (Some(Merge), Some("name"))
        );
        let node = builtin_kind("", "Node").unwrap();
        assert_eq!(
            node.patch_meta(&p("status.addresses")),
            (Some(Merge), Some("type"))
        );
        let svc = builtin_kind("", "Service").unwrap();
        assert_eq!(
            svc.patch_meta(&p("spec.ports")),
            (Some(Merge), Some("port"))
        );
        assert!(builtin_kind("", "ConfigMap").is_some());
        assert!(builtin_kind("batch.barge.dev", "Job").is_none());
    }
}
