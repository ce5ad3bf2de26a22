//! CustomResourceDefinitions: checking a definition, its server-owned status (NamesAccepted,
//! Established at once), and serving its kind — a stored CRD turns into one [`ResourceDef`] per
//! served version, with its compiled schema, the moment it is written.

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::{json, Value};

use super::machinery::Schema;
use super::objects::{self, meta_str, CRD_CLEANUP_FINALIZER};
use super::registry::{
    storage_id, Conversion, ResourceDef, ScalePaths, APIEXTENSIONS_GROUP, STANDARD_VERBS,
};
use super::status::{ApiError, ApiResult};
use super::store::CRDS_STORAGE;
use super::State;

const CRD_KIND: &str = "CustomResourceDefinition";

fn invalid(name: &str, field: &str, msg: &str) -> ApiError {
    ApiError::invalid(APIEXTENSIONS_GROUP, CRD_KIND, name, field, msg)
}

/// Kubernetes version priority: GA > beta > alpha (higher numbers first), then the rest by name.
pub fn version_priority(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u32, u32, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u32 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((3, major, 0));
        }
        for (stage, rank) in [("beta", 2), ("alpha", 1)] {
            if let Some(n) = tail.strip_prefix(stage) {
                return Some((rank, major, n.parse().ok()?));
            }
        }
        None
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

fn str_at<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The field labels of a CRD version's `selectableFields` (Kubernetes ≥ 1.31): each `jsonPath`
/// without its leading dot. As kube-apiserver validates them: at most 8, each a simple path
/// (`.a.b`, no array notation) outside `metadata`, naming a string, integer or boolean field of
/// the version's schema, no path twice. An absent field selects as the empty string (see
/// `selectors::field_value`).
fn selectable_fields(name: &str, i: usize, version: &Value) -> ApiResult<Vec<String>> {
    const MAX: usize = 8;
    let Some(entries) = version.get("selectableFields").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let at = |j: usize| format!("spec.versions[{i}].selectableFields[{j}].jsonPath");
    if entries.len() > MAX {
        return Err(invalid(
            name,
            &format!("spec.versions[{i}].selectableFields"),
            &format!("Too many: {}: must have at most {MAX} items", entries.len()),
        ));
    }
    let schema = version.pointer("/schema/openAPIV3Schema");
    let mut fields: Vec<String> = Vec::new();
    for (j, entry) in entries.iter().enumerate() {
        let Some(path) = entry
            .get("jsonPath")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        else {
            return Err(invalid(name, &at(j), "Required value"));
        };
        let segments: Vec<&str> = path.strip_prefix('.').unwrap_or("").split('.').collect();
        if !path.starts_with('.') || path.contains('[') || segments.iter().any(|s| s.is_empty()) {
            return Err(invalid(
                name,
                &at(j),
                &format!("Invalid value: \"{path}\": is an invalid path"),
            ));
        }
        if segments[0] == "metadata" {
            return Err(invalid(
                name,
                &at(j),
                &format!("Invalid value: \"{path}\": must not point to fields in metadata"),
            ));
        }
        let leaf = segments.iter().try_fold(schema, |node, segment| {
            Some(node?.get("properties")?.get(*segment))
        });
        let kind = leaf
            .flatten()
            .and_then(|s| s.get("type"))
            .and_then(Value::as_str);
        if !matches!(kind, Some("string" | "integer" | "boolean")) {
            return Err(invalid(
                name,
                &at(j),
                &format!("Invalid value: \"{path}\": selectable field must be a string, integer or boolean field of the schema"),
            ));
        }
        let label = segments.join(".");
        if fields.contains(&label) {
            return Err(invalid(
                name,
                &at(j),
                &format!("Duplicate value: \"{path}\""),
            ));
        }
        fields.push(label);
    }
    Ok(fields)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Build the served resources of a CRD object (pure).
pub fn defs_from_crd(crd: &Value) -> ApiResult<Vec<ResourceDef>> {
    let name = meta_str(crd, "name").unwrap_or_default();
    let group =
        str_at(crd, "/spec/group").ok_or_else(|| invalid(name, "spec.group", "Required value"))?;
    let plural = str_at(crd, "/spec/names/plural")
        .ok_or_else(|| invalid(name, "spec.names.plural", "Required value"))?;
    let kind = str_at(crd, "/spec/names/kind")
        .ok_or_else(|| invalid(name, "spec.names.kind", "Required value"))?;
    if name != format!("{plural}.{group}") {
        return Err(invalid(
            name,
            "metadata.name",
            &format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let scope = str_at(crd, "/spec/scope").unwrap_or_default();
    let namespaced = match scope {
        "Namespaced" => true,
        "Cluster" => false,
        other => {
            return Err(invalid(
                name,
                "spec.scope",
                &format!(
                    "Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
                ),
            ))
        }
    };
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            invalid(
                name,
                "spec.versions",
                "Invalid value: []: must have exactly one version marked as storage version",
            )
        })?;
    let storage: Vec<&str> = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect();
    if storage.len() != 1 {
        return Err(invalid(
            name,
            "spec.versions",
            &format!(
                "Invalid value: {}: must have exactly one version marked as storage version",
                json!(storage)
            ),
        ));
    }
    let storage_version = storage[0];
    let singular = str_at(crd, "/spec/names/singular")
        .map(String::from)
        .unwrap_or_else(|| kind.to_lowercase());
    let short_names = strings(crd.pointer("/spec/names/shortNames"));
    let categories = strings(crd.pointer("/spec/names/categories"));
    let mut defs = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let vname = v
            .get("name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(name, &format!("spec.versions[{i}].name"), "Required value"))?;
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let schema = match v.pointer("/schema/openAPIV3Schema") {
            Some(raw) => Some(Arc::new(Schema::compile(raw).map_err(|e| {
                invalid(
                    name,
                    &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                    &format!("Invalid value: {e}"),
                )
            })?)),
            None => {
                return Err(invalid(
                    name,
                    &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                    "Required value: schemas are required",
                ))
            }
        };
        let mut subresources = Vec::new();
        if v.pointer("/subresources/status").is_some() {
            subresources.push("status".to_string());
        }
        if v.pointer("/subresources/scale").is_some() {
            subresources.push("scale".to_string());
        }
        defs.push(ResourceDef {
            group: group.into(),
            version: vname.into(),
            resource: plural.into(),
            singular: singular.clone(),
            kind: kind.into(),
            namespaced,
            short_names: short_names.clone(),
            categories: categories.clone(),
            verbs: STANDARD_VERBS.iter().map(|s| s.to_string()).collect(),
            subresources,
            storage: storage_id(group, plural),
            storage_api_version: format!("{group}/{storage_version}"),
            conversion: Conversion::ApiVersionOnly,
            has_generation: true,
            schema,
            printer_columns: v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            selectable_fields: selectable_fields(name, i, v)?,
            custom: true,
            create_only: false,
            scale: v.pointer("/subresources/scale").map(|sc| ScalePaths {
                spec_replicas: sc
                    .get("specReplicasPath")
                    .and_then(Value::as_str)
                    .unwrap_or(".spec.replicas")
                    .to_string(),
                status_replicas: sc
                    .get("statusReplicasPath")
                    .and_then(Value::as_str)
                    .unwrap_or(".status.replicas")
                    .to_string(),
                label_selector: sc
                    .get("labelSelectorPath")
                    .and_then(Value::as_str)
                    .map(String::from),
            }),
        });
    }
    Ok(defs)
}

/// Check a CRD being written and set its defaults and server-owned status.
pub fn prepare(state: &State, crd: &mut Value, old: Option<&Value>) -> ApiResult<()> {
    let defs = defs_from_crd(crd)?;
    let name = meta_str(crd, "name").unwrap_or_default().to_string();
    if let Some(d) = defs.first() {
        if let Some(existing) = state.registry.get(&d.group, &d.version, &d.resource) {
            if !existing.custom {
                return Err(invalid(
                    &name,
                    "spec.names.plural",
                    "Invalid value: the resource is served by a built-in API",
                ));
            }
        }
    }
    let spec = &mut crd["spec"];
    if spec["names"].get("singular").is_none() {
        spec["names"]["singular"] = json!(spec["names"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase());
    }
    if spec["names"].get("listKind").is_none() {
        spec["names"]["listKind"] = json!(format!(
            "{}List",
            spec["names"]["kind"].as_str().unwrap_or_default()
        ));
    }
    if spec.get("conversion").is_none() {
        spec["conversion"] = json!({"strategy": "None"});
    }
    let storage_version = spec["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["storage"] == json!(true)))
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default()
        .to_string();
    let now = objects::now_rfc3339();
    let since = |t: &str| {
        old.and_then(|o| o.pointer("/status/conditions"))
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or(json!(now))
    };
    let mut stored_versions = strings(old.and_then(|o| o.pointer("/status/storedVersions")));
    if !stored_versions.contains(&storage_version) {
        stored_versions.push(storage_version);
    }
    let mut conditions = vec![
        json!({"type": "NamesAccepted", "status": "True", "lastTransitionTime": since("NamesAccepted"), "reason": "NoConflicts", "message": "no conflicts found"}),
        json!({"type": "Established", "status": "True", "lastTransitionTime": since("Established"), "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}),
    ];
    if crd.pointer("/metadata/deletionTimestamp").is_some() {
        conditions.push(json!({"type": "Terminating", "status": "True", "lastTransitionTime": since("Terminating"), "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress"}));
    }
    let names = crd["spec"]["names"].clone();
    crd["status"] = json!({"conditions": conditions, "acceptedNames": names, "storedVersions": stored_versions});
    if old.is_none() {
        let mut f = objects::finalizers(crd);
        if !f.iter().any(|x| x == CRD_CLEANUP_FINALIZER) {
            f.push(CRD_CLEANUP_FINALIZER.into());
        }
        objects::set_finalizers(crd, &f);
    }
    Ok(())
}

/// Serve the resources of a stored CRD (replacing what it served before).
pub fn register(state: &mut State, crd: &Value) -> ApiResult<()> {
    let defs = defs_from_crd(crd)?;
    let Some(first) = defs.first() else {
        return Ok(());
    };
    let storage = first.storage.clone();
    let group = first.group.clone();
    state.registry.remove_storage(&storage);
    let mut versions: Vec<String> = Vec::new();
    for d in defs {
        versions.push(d.version.clone());
        state.registry.insert(d);
    }
    // Other CRDs of the same group keep their versions in the group's list.
    let mut all: Vec<String> = state
        .registry
        .groups()
        .into_iter()
        .find(|(g, _)| *g == group)
        .map(|(_, v)| v)
        .unwrap_or_default();
    for v in versions {
        if !all.contains(&v) {
            all.push(v);
        }
    }
    all.sort_by(|a, b| version_priority(a, b));
    state.registry.set_group_versions(&group, all);
    let rv = state.store.rv;
    state.store.ensure_table(&storage, rv);
    Ok(())
}

/// Stop serving a removed CRD and forget its objects.
pub fn unregister(state: &mut State, crd: &Value) {
    if let (Some(group), Some(plural)) = (
        str_at(crd, "/spec/group"),
        str_at(crd, "/spec/names/plural"),
    ) {
        let storage = storage_id(group, plural);
        state.registry.remove_storage(&storage);
        state.store.drop_table(&storage);
    }
}

/// Whether the CRD behind a custom storage is being deleted.
pub fn is_terminating(state: &State, storage: &str) -> bool {
    let Some((group, plural)) = storage.split_once('/') else {
        return false;
    };
    state
        .store
        .get(CRDS_STORAGE, &(String::new(), format!("{plural}.{group}")))
        .is_some_and(|s| s.deleting)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wg"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                     "schema": {"openAPIV3Schema": {"type": "object"}}}]}})
    }

    #[test]
    fn served_versions_become_resources() {
        let defs = defs_from_crd(&crd()).unwrap();
        assert_eq!(defs.len(), 2);
        assert!(defs.iter().all(
            |d| d.storage == "example.com/widgets" && d.storage_api_version == "example.com/v1"
        ));
        assert!(defs[1].has_status());
        assert!(!defs[0].has_status());
        assert_eq!(defs[0].singular, "widget");
    }

    #[test]
    fn bad_definitions_are_refused() {
        let mut c = crd();
        c["metadata"]["name"] = json!("x.example.com");
        assert_eq!(defs_from_crd(&c).unwrap_err().code, 422);
        let mut c = crd();
        c["spec"]["versions"][0]["storage"] = json!(true);
        assert_eq!(defs_from_crd(&c).unwrap_err().code, 422);
        let mut c = crd();
        c["spec"]["scope"] = json!("Galaxy");
        assert_eq!(defs_from_crd(&c).unwrap_err().code, 422);
    }

    #[test]
    fn selectable_fields_are_checked_and_become_field_labels() {
        let with = |fields: Value| {
            let mut c = crd();
            c["spec"]["versions"][1]["schema"]["openAPIV3Schema"] = json!({"type": "object",
                "properties": {"status": {"type": "object", "properties": {
                    "phase": {"type": "string"}, "count": {"type": "integer"},
                    "tags": {"type": "array", "items": {"type": "string"}}}}}});
            c["spec"]["versions"][1]["selectableFields"] = fields;
            defs_from_crd(&c)
        };
        let defs =
            with(json!([{"jsonPath": ".status.phase"}, {"jsonPath": ".status.count"}])).unwrap();
        assert!(defs[0].selectable_fields.is_empty());
        assert_eq!(defs[1].selectable_fields, ["status.phase", "status.count"]);
        for bad in [
            json!([{"jsonPath": "status.phase"}]),
            json!([{"jsonPath": ".status.tags"}]),
            json!([{"jsonPath": ".status.missing"}]),
            json!([{"jsonPath": ".metadata.name"}]),
            json!([{"jsonPath": ".status.phase"}, {"jsonPath": ".status.phase"}]),
            json!([{}]),
            json!(vec![json!({"jsonPath": ".status.phase"}); 9]),
        ] {
            assert_eq!(with(bad.clone()).unwrap_err().code, 422, "{bad}");
        }
    }

    #[test]
    fn version_ordering() {
        let mut v = vec!["v1alpha1", "v2", "foo", "v1", "v1beta2", "v1beta1"];
        v.sort_by(|a, b| version_priority(a, b));
        assert_eq!(v, vec!["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }
}
