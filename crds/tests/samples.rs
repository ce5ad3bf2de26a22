//! Every manifest in config/samples/ passes the CRD validation, and there is one per kind.
mod support;

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

fn sample_documents() -> Vec<(String, Value)> {
    let dir = support::workspace_root().join("config").join("samples");
    let mut docs = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("config/samples exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml")
        })
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).expect("sample is readable");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).expect("sample is YAML");
            docs.push((path.display().to_string(), value));
        }
    }
    docs
}

#[test]
fn every_sample_passes_validation() {
    let docs = sample_documents();
    assert!(!docs.is_empty());
    for (path, doc) in &docs {
        if let Err(errors) = support::validate_manifest(doc) {
            panic!("{path} is refused:\n  {}", errors.join("\n  "));
        }
    }
}

#[test]
fn there_is_one_sample_per_kind_and_the_kustomization_lists_them_all() {
    let docs = sample_documents();
    let kinds: BTreeSet<String> = docs
        .iter()
        .filter_map(|(_, d)| d.get("kind").and_then(Value::as_str).map(str::to_string))
        .collect();
    let expected: BTreeSet<String> = barge_crds::all_crds()
        .into_iter()
        .map(|c| c.spec.names.kind)
        .collect();
    assert_eq!(kinds, expected);

    let dir = support::workspace_root().join("config").join("samples");
    let kustomization: Value = serde_yaml::from_str(
        &std::fs::read_to_string(dir.join("kustomization.yaml")).expect("kustomization exists"),
    )
    .expect("kustomization is YAML");
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .expect("resources list")
        .iter()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    let files: BTreeSet<String> = docs
        .iter()
        .map(|(p, _)| {
            std::path::Path::new(p)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(listed, files);
}

#[test]
fn samples_deserialize_into_the_rust_types() {
    for (path, doc) in sample_documents() {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let result = match kind.as_str() {
            "ComputeEnvironment" => {
                serde_json::from_value::<barge_crds::ComputeEnvironment>(doc).map(|_| ())
            }
            "JobQueue" => serde_json::from_value::<barge_crds::JobQueue>(doc).map(|_| ()),
            "SchedulingPolicy" => {
                serde_json::from_value::<barge_crds::SchedulingPolicy>(doc).map(|_| ())
            }
            "JobDefinition" => serde_json::from_value::<barge_crds::JobDefinition>(doc).map(|_| ()),
            "Job" => serde_json::from_value::<barge_crds::Job>(doc).map(|_| ()),
            other => panic!("{path}: unexpected kind {other}"),
        };
        if let Err(e) = result {
            panic!("{path} does not deserialize: {e}");
        }
    }
}
