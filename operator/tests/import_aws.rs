//! `barge import aws` end to end: the real binary on every AWS document of the fixtures (e2e/fixtures/aws),
//! every output manifest validated against the CRDs (the same helper as barge-crds' rule tests),
//! and malformed input refused with the field named and a non-zero exit.

#[path = "../../crds/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value;

fn barge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_barge"))
        .args(args)
        .output()
        .expect("the barge binary runs")
}

fn fixtures() -> Vec<PathBuf> {
    let dir = barge_fixtures::aws_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{} is readable: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no AWS fixtures in {}", dir.display());
    files
}

fn documents(stdout: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(stdout);
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("stdout is YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("fixture paths are UTF-8")
}

#[test]
fn every_fixture_imports_and_validates() {
    for file in fixtures() {
        let output = barge(&["import", "aws", path_str(&file)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{} failed: {stderr}",
            file.display()
        );
        assert!(!stderr.contains("error:"), "{}: {stderr}", file.display());
        let docs = documents(&output.stdout);
        assert_eq!(docs.len(), 1, "{} gives one manifest", file.display());
        for doc in &docs {
            if let Err(errors) = support::validate_manifest(doc) {
                panic!(
                    "{} imports to a manifest the CRD refuses:\n  {}\n{doc:#}",
                    file.display(),
                    errors.join("\n  ")
                );
            }
        }
    }
}

#[test]
fn all_fixtures_at_once_with_a_namespace() {
    let files = fixtures();
    let mut args = vec!["import", "aws", "--namespace", "batch-jobs"];
    args.extend(files.iter().map(|f| path_str(f)));
    let output = barge(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let docs = documents(&output.stdout);
    assert_eq!(docs.len(), files.len());
    for doc in &docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        let namespace = doc["metadata"].get("namespace").and_then(Value::as_str);
        match kind {
            "JobDefinition" | "Job" => assert_eq!(namespace, Some("batch-jobs"), "{kind}"),
            _ => assert_eq!(namespace, None, "{kind} is cluster-scoped"),
        }
        if let Err(errors) = support::validate_manifest(doc) {
            panic!("refused: {errors:?}\n{doc:#}");
        }
    }
}

#[test]
fn fields_without_kubernetes_meaning_are_reported() {
    let dir = barge_fixtures::aws_dir();
    let managed = dir.join("computeenv-managed.json");
    let output = barge(&["import", "aws", path_str(&managed)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for field in [
        "computeResources.subnets",
        "computeResources.securityGroupIds",
        "computeResources.ec2KeyPair",
        "computeResources.instanceRole",
        "serviceRole",
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with("note: ") && l.contains(&format!(": {field}: not imported"))),
            "no note for {field}:\n{stderr}"
        );
    }
    let fetch = dir.join("jobdef-fetch_and_run.json");
    let output = barge(&["import", "aws", path_str(&fetch)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("containerProperties.jobRoleArn: not imported")
            && stderr.contains("serviceAccountName"),
        "{stderr}"
    );
}

#[test]
fn malformed_document_names_the_field_and_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"jobDefinitionName": "x", "type": "container", "containerProperties": {"image": "busybox", "vcpus": "two"}}"#,
    )
    .expect("write");
    let good = barge_fixtures::aws("jobdef-gpu.json");
    let output = barge(&["import", "aws", path_str(&good), path_str(&bad)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: {}: containerProperties.vcpus: expected a number, got \"two\"",
            bad.display()
        )),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "no partial output on error");

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"jobName\": ").expect("write");
    let output = barge(&["import", "aws", path_str(&broken)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("broken.json: not valid JSON"));

    let missing = dir.path().join("missing.json");
    let output = barge(&["import", "aws", path_str(&missing)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.json"));
}

#[test]
fn usage_errors_exit_with_2() {
    assert_eq!(barge(&["import", "aws"]).status.code(), Some(2), "no files");
    assert_eq!(
        barge(&["import", "gcp", "x.json"]).status.code(),
        Some(2),
        "unknown source"
    );
    let fixture = fixtures().remove(0);
    assert_eq!(
        barge(&[
            "import",
            "aws",
            "--namespace",
            "Not_A_Namespace",
            path_str(&fixture)
        ])
        .status
        .code(),
        Some(2),
        "invalid namespace"
    );
}
