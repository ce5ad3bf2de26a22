//! The resource kinds the server serves: built-in kinds and those of applied CRDs.
//!
//! A [`ResourceDef`] describes one served (group, version, resource): kind, scope, short names,
//! categories, subresources and where its objects are stored (`storage`). Several served
//! versions may share one storage (CRD versions; core/v1 and events.k8s.io/v1 Events), the
//! handlers convert on the way in and out. Discovery is rendered from this registry, so a CRD is
//! discoverable the moment its definition is stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::machinery::Schema;

/// The verbs of an ordinary resource.
pub const STANDARD_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// How objects of a served version are converted to/from their storage form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// Same shape; only `apiVersion` is rewritten.
    ApiVersionOnly,
    /// events.k8s.io/v1 Event ⟷ core/v1 Event (stored as core/v1).
    EventsV1,
}

/// One served group/version/resource.
#[derive(Clone, Debug)]
pub struct ResourceDef {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<String>,
    /// Subresources besides the main resource: "status", "binding", "log", "eviction", "scale", "finalize".
    pub subresources: Vec<String>,
    /// Storage id shared by all served versions of the same objects ("group/resource").
    pub storage: String,
    /// `apiVersion` objects are kept in inside the store.
    pub storage_api_version: String,
    pub conversion: Conversion,
    /// `metadata.generation` is maintained (kinds with a spec).
    pub has_generation: bool,
    /// Compiled CRD schema (None for built-ins).
    pub schema: Option<Arc<Schema>>,
    /// `additionalPrinterColumns` of a CRD version.
    pub printer_columns: Vec<Value>,
    /// Field labels of a CRD version's `selectableFields` (`.status.phase` → `status.phase`),
    /// accepted in field selectors besides `metadata.name` and `metadata.namespace`.
    pub selectable_fields: Vec<String>,
    /// A custom resource (strategic merge patch is refused, as kube-apiserver does).
    pub custom: bool,
    /// Only `create` (SelfSubjectAccessReview, ...): nothing is stored.
    pub create_only: bool,
    /// Paths of the scale subresource: (spec replicas, status replicas, label selector).
    pub scale: Option<ScalePaths>,
}

/// Where a kind keeps what its `scale` subresource shows (`.spec.replicas`-style paths).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

impl ScalePaths {
    /// The paths of built-in workloads.
    pub fn workload() -> Self {
        ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: Some(".spec.selector".into()),
        }
    }
}

impl ResourceDef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `jobs.batch.barge.dev`: how error messages name the resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s == "status")
    }

    pub fn has_sub(&self, s: &str) -> bool {
        self.subresources.iter().any(|x| x == s)
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// Registry key: (group, version, resource).
pub type Gvr = (String, String, String);

/// All served resources.
#[derive(Default, Clone)]
pub struct Registry {
    served: BTreeMap<Gvr, Arc<ResourceDef>>,
    /// Group → preferred version, in registration order for `/apis`.
    groups: Vec<(String, Vec<String>)>,
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
    has_generation: bool,
}

#[allow(clippy::too_many_arguments)]
const fn b(
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
    has_generation: bool,
) -> Builtin {
    Builtin {
        group,
        version,
        resource,
        kind,
        namespaced,
        short,
        categories,
        subresources,
        has_generation,
    }
}

/// API group of CustomResourceDefinitions.
pub const APIEXTENSIONS_GROUP: &str = "apiextensions.k8s.io";
/// The events.k8s.io group (Events seen through a second version).
pub const EVENTS_GROUP: &str = "events.k8s.io";

const ALL: &[&str] = &["all"];

const BUILTINS: &[Builtin] = &[
    b(
        "",
        "v1",
        "namespaces",
        "Namespace",
        false,
        &["ns"],
        &[],
        &["status", "finalize"],
        false,
    ),
    b(
        "",
        "v1",
        "nodes",
        "Node",
        false,
        &["no"],
        &[],
        &["status", "proxy"],
        false,
    ),
    b(
        "",
        "v1",
        "pods",
        "Pod",
        true,
        &["po"],
        ALL,
        &["status", "binding", "log", "eviction"],
        true,
    ),
    b(
        "",
        "v1",
        "services",
        "Service",
        true,
        &["svc"],
        ALL,
        &["status"],
        false,
    ),
    b(
        "",
        "v1",
        "endpoints",
        "Endpoints",
        true,
        &["ep"],
        &[],
        &[],
        false,
    ),
    b("", "v1", "events", "Event", true, &["ev"], &[], &[], false),
    b(
        "",
        "v1",
        "configmaps",
        "ConfigMap",
        true,
        &["cm"],
        &[],
        &[],
        false,
    ),
    b("", "v1", "secrets", "Secret", true, &[], &[], &[], false),
    b(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        &["sa"],
        &[],
        &[],
        false,
    ),
    b(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        &[],
        &["status"],
        false,
    ),
    b(
        "",
        "v1",
        "persistentvolumes",
        "PersistentVolume",
        false,
        &["pv"],
        &[],
        &["status"],
        false,
    ),
    b(
        "",
        "v1",
        "resourcequotas",
        "ResourceQuota",
        true,
        &["quota"],
        &[],
        &["status"],
        false,
    ),
    b(
        "",
        "v1",
        "limitranges",
        "LimitRange",
        true,
        &["limits"],
        &[],
        &[],
        false,
    ),
    b(
        "",
        "v1",
        "replicationcontrollers",
        "ReplicationController",
        true,
        &["rc"],
        ALL,
        &["status", "scale"],
        true,
    ),
    b(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        true,
        &["deploy"],
        ALL,
        &["status", "scale"],
        true,
    ),
    b(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        true,
        &["sts"],
        ALL,
        &["status", "scale"],
        true,
    ),
    b(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        true,
        &["ds"],
        ALL,
        &["status"],
        true,
    ),
    b(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        true,
        &["rs"],
        ALL,
        &["status", "scale"],
        true,
    ),
    b(
        "apps",
        "v1",
        "controllerrevisions",
        "ControllerRevision",
        true,
        &[],
        &[],
        &[],
        false,
    ),
    b(
        "batch",
        "v1",
        "jobs",
        "Job",
        true,
        &[],
        ALL,
        &["status"],
        true,
    ),
    b(
        "batch",
        "v1",
        "cronjobs",
        "CronJob",
        true,
        &["cj"],
        ALL,
        &["status"],
        true,
    ),
    b(
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        true,
        &[],
        &[],
        &[],
        false,
    ),
    b(
        EVENTS_GROUP,
        "v1",
        "events",
        "Event",
        true,
        &["ev"],
        &[],
        &[],
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        &[],
        &[],
        &[],
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        &[],
        &[],
        &[],
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
        &[],
        &[],
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
        &[],
        &[],
        false,
    ),
    b(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        &[],
        &["status"],
        true,
    ),
    b(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "PriorityClass",
        false,
        &["pc"],
        &[],
        &[],
        false,
    ),
    b(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        true,
        &["ing"],
        &[],
        &["status"],
        true,
    ),
    b(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        &["netpol"],
        &[],
        &[],
        true,
    ),
    b(
        APIEXTENSIONS_GROUP,
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        &["api-extensions"],
        &["status"],
        true,
    ),
];

/// Kinds that are only created (reviews): answered, never stored.
const CREATE_ONLY: &[(&str, &str, &str, &str, bool)] = &[
    (
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        false,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        false,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "SubjectAccessReview",
        false,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        true,
    ),
    (
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        false,
    ),
];

/// The storage id for (group, resource).
pub fn storage_id(group: &str, resource: &str) -> String {
    format!("{group}/{resource}")
}

impl Registry {
    /// The built-in kinds of a fresh cluster.
    pub fn with_builtins() -> Self {
        let mut r = Registry::default();
        for bi in BUILTINS {
            let (storage, storage_api_version, conversion) = if bi.group == EVENTS_GROUP {
                (
                    storage_id("", "events"),
                    "v1".to_string(),
                    Conversion::EventsV1,
                )
            } else {
                let av = if bi.group.is_empty() {
                    bi.version.to_string()
                } else {
                    format!("{}/{}", bi.group, bi.version)
                };
                (
                    storage_id(bi.group, bi.resource),
                    av,
                    Conversion::ApiVersionOnly,
                )
            };
            r.insert(ResourceDef {
                group: bi.group.into(),
                version: bi.version.into(),
                resource: bi.resource.into(),
                singular: bi.kind.to_lowercase(),
                kind: bi.kind.into(),
                namespaced: bi.namespaced,
                short_names: bi.short.iter().map(|s| s.to_string()).collect(),
                categories: bi.categories.iter().map(|s| s.to_string()).collect(),
                verbs: STANDARD_VERBS.iter().map(|s| s.to_string()).collect(),
                subresources: bi.subresources.iter().map(|s| s.to_string()).collect(),
                storage,
                storage_api_version,
                conversion,
                has_generation: bi.has_generation,
                schema: None,
                printer_columns: Vec::new(),
                selectable_fields: Vec::new(),
                custom: false,
                create_only: false,
                scale: bi
                    .subresources
                    .contains(&"scale")
                    .then(ScalePaths::workload),
            });
        }
        for (group, version, resource, kind, namespaced) in CREATE_ONLY {
            r.insert(ResourceDef {
                group: group.to_string(),
                version: version.to_string(),
                resource: resource.to_string(),
                singular: kind.to_lowercase(),
                kind: kind.to_string(),
                namespaced: *namespaced,
                short_names: vec![],
                categories: vec![],
                verbs: vec!["create".into()],
                subresources: vec![],
                storage: storage_id(group, resource),
                storage_api_version: format!("{group}/{version}"),
                conversion: Conversion::ApiVersionOnly,
                has_generation: false,
                schema: None,
                printer_columns: vec![],
                selectable_fields: vec![],
                custom: false,
                create_only: true,
                scale: None,
            });
        }
        r
    }

    pub fn insert(&mut self, def: ResourceDef) {
        match self.groups.iter_mut().find(|(g, _)| *g == def.group) {
            Some((_, versions)) => {
                if !versions.contains(&def.version) {
                    versions.push(def.version.clone());
                }
            }
            None => self
                .groups
                .push((def.group.clone(), vec![def.version.clone()])),
        }
        self.served.insert(
            (def.group.clone(), def.version.clone(), def.resource.clone()),
            Arc::new(def),
        );
    }

    /// Set the version order of a group (CRDs: by Kubernetes version priority).
    pub fn set_group_versions(&mut self, group: &str, versions: Vec<String>) {
        match self.groups.iter_mut().find(|(g, _)| g == group) {
            Some((_, v)) => *v = versions,
            None => self.groups.push((group.to_string(), versions)),
        }
    }

    /// Remove every served version of a storage (CRD deleted); drops empty groups.
    pub fn remove_storage(&mut self, storage: &str) {
        self.served.retain(|_, d| d.storage != storage);
        let served = &self.served;
        self.groups.retain_mut(|(g, versions)| {
            versions.retain(|v| served.keys().any(|(sg, sv, _)| sg == g && sv == v));
            !versions.is_empty()
        });
    }

    pub fn get(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceDef>> {
        self.served
            .get(&(group.to_string(), version.to_string(), resource.to_string()))
            .cloned()
    }

    /// Whether a group/version is served at all.
    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.groups
            .iter()
            .any(|(g, v)| g == group && v.iter().any(|x| x == version))
    }

    /// Resources of one group/version, sorted by resource name.
    pub fn resources_of(&self, group: &str, version: &str) -> Vec<Arc<ResourceDef>> {
        self.served
            .values()
            .filter(|d| d.group == group && d.version == version)
            .cloned()
            .collect()
    }

    /// Groups (excluding the legacy core group) with their versions, preferred first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        self.groups
            .iter()
            .filter(|(g, _)| !g.is_empty())
            .cloned()
            .collect()
    }

    /// The served definition holding a storage in its preferred version.
    pub fn preferred_for_storage(&self, storage: &str) -> Option<Arc<ResourceDef>> {
        let candidates: Vec<_> = self
            .served
            .values()
            .filter(|d| d.storage == storage && d.conversion == Conversion::ApiVersionOnly)
            .collect();
        let group = candidates.first()?.group.clone();
        let versions = self
            .groups
            .iter()
            .find(|(g, _)| *g == group)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        for v in versions {
            if let Some(d) = candidates.iter().find(|d| d.version == v) {
                return Some((*d).clone());
            }
        }
        candidates.first().map(|d| (*d).clone())
    }

    /// All storages that hold namespaced objects (namespace deletion walks them).
    pub fn namespaced_storages(&self) -> Vec<Arc<ResourceDef>> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for d in self.served.values() {
            if d.namespaced
                && !d.create_only
                && d.conversion == Conversion::ApiVersionOnly
                && seen.insert(d.storage.clone())
            {
                out.push(d.clone());
            }
        }
        out
    }

    /// Every storage (GC walks them).
    pub fn all_storages(&self) -> Vec<Arc<ResourceDef>> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for d in self.served.values() {
            if !d.create_only
                && d.conversion == Conversion::ApiVersionOnly
                && seen.insert(d.storage.clone())
            {
                out.push(d.clone());
            }
        }
        out
    }

    /// Find the served definition of a kind in an apiVersion (`apps/v1`, `Deployment`).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceDef>> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        self.served
            .values()
            .find(|d| d.group == group && d.version == version && d.kind == kind)
            .cloned()
    }
}
