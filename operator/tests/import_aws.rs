//! `barge import aws` end to end: the real binary on every AWS document of the fixtures (e2e/fixtures/aws),
//! every output manifest validated against the CRDs (the same helper as barge-crds' rule tests),
//! and malformed input refused with the field named and a non-zero exit.

#[path = "../../crds/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::{json, Value};

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

/// The SubmitJob fixtures name definition revisions (`JobB-CPU-Intensive-Processing:1`) whose
/// definitions they do not carry: Barge cannot carry an AWS revision number, so they are refused.
fn refused_fixture(file: &Path) -> Option<&'static str> {
    let name = file.file_name()?.to_str()?;
    name.starts_with("submitjob-")
        .then_some(": jobDefinition: refused: AWS revision 1 of ")
}

#[test]
fn every_fixture_imports_and_validates_or_is_refused_by_field() {
    for file in fixtures() {
        let output = barge(&["import", "aws", path_str(&file)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if let Some(message) = refused_fixture(&file) {
            assert_eq!(
                output.status.code(),
                Some(1),
                "{}: {stderr}",
                file.display()
            );
            assert!(
                stderr.contains(&format!("error: {}{message}", file.display())),
                "{}: {stderr}",
                file.display()
            );
            assert!(output.stdout.is_empty(), "{}", file.display());
            continue;
        }
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
    let files: Vec<PathBuf> = fixtures()
        .into_iter()
        .filter(|f| refused_fixture(f).is_none())
        .collect();
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
fn aws_infrastructure_and_metadata_are_dropped_with_a_warning() {
    let dir = barge_fixtures::aws_dir();
    let managed = dir.join("computeenv-managed.json");
    let output = barge(&["import", "aws", path_str(&managed)]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for field in [
        "computeResources.subnets",
        "computeResources.securityGroupIds",
        "computeResources.ec2KeyPair",
        "computeResources.instanceRole",
        "serviceRole",
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("warning: ")
                    && l.contains(&format!(": {field}: not imported"))),
            "no warning for {field}:\n{stderr}"
        );
    }
    let fetch = dir.join("jobdef-fetch_and_run.json");
    let output = barge(&["import", "aws", path_str(&fetch)]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("containerProperties.jobRoleArn: not imported")
            && stderr.contains("serviceAccountName"),
        "{stderr}"
    );
}

/// Runs `barge import aws` on `documents` written to files in a temporary directory.
fn import(documents: &[(&str, Value)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = vec!["import".to_string(), "aws".to_string()];
    for (name, document) in documents {
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_string_pretty(document).expect("JSON"))
            .expect("write");
        args.push(path.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = barge(&args);
    let stderr =
        String::from_utf8_lossy(&output.stderr).replace(&format!("{}/", dir.path().display()), "");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr,
    )
}

/// Asserts a refusal: exit 1, nothing on stdout, and every `(field, text)` named on stderr.
fn assert_refused(result: &(Option<i32>, String, String), fields: &[(&str, &str)]) {
    let (code, stdout, stderr) = result;
    assert_eq!(*code, Some(1), "{stderr}");
    assert!(stdout.is_empty(), "nothing printed on a refusal: {stdout}");
    for (field, text) in fields {
        assert!(
            stderr.lines().any(|l| l.starts_with("error: ")
                && l.contains(&format!(": {field}: "))
                && l.contains(text)),
            "no error for {field} ({text}):\n{stderr}"
        );
    }
}

fn container_definition(container: Value) -> Value {
    json!({"jobDefinitionName": "crafted", "type": "container", "containerProperties": container})
}

#[test]
fn ulimits_are_refused_with_aws_unlimited_named() {
    let result = import(&[(
        "ulimits.json",
        container_definition(json!({"image": "busybox", "ulimits": [
            {"name": "nofile", "softLimit": 65536, "hardLimit": 65536},
            {"name": "memlock", "softLimit": -1, "hardLimit": -1}
        ]})),
    )]);
    assert_refused(
        &result,
        &[
            ("containerProperties.ulimits[0]", "refused: ulimit nofile (soft 65536, hard 65536): Kubernetes has no per-container ulimits"),
            ("containerProperties.ulimits[1].softLimit", "ulimit memlock -1 (unlimited)"),
            ("containerProperties.ulimits[1].hardLimit", "ulimit memlock -1 (unlimited)"),
        ],
    );
}

#[test]
fn tmpfs_imports_as_sized_memory_and_options_it_cannot_apply_are_refused() {
    let (code, stdout, stderr) = import(&[(
        "tmpfs.json",
        container_definition(json!({"image": "busybox", "linuxParameters": {
            "tmpfs": [{"containerPath": "/scratch", "size": 128, "mountOptions": ["rw", "exec"]}]
        }})),
    )]);
    assert_eq!(code, Some(0), "{stderr}");
    let docs = documents(stdout.as_bytes());
    assert_eq!(
        docs[0]["spec"]["containerProperties"]["linuxParameters"]["tmpfs"],
        json!([{"containerPath": "/scratch", "size": 128, "mountOptions": ["rw", "exec"]}])
    );
    let result = import(&[(
        "tmpfs.json",
        container_definition(json!({"image": "busybox", "linuxParameters": {
            "tmpfs": [{"containerPath": "/scratch", "size": 128, "mountOptions": ["noexec", "rw", "uid=1000"]}]
        }})),
    )]);
    assert_refused(
        &result,
        &[
            (
                "containerProperties.linuxParameters.tmpfs[0].mountOptions[0]",
                "cannot apply \"noexec\"",
            ),
            (
                "containerProperties.linuxParameters.tmpfs[0].mountOptions[2]",
                "cannot apply \"uid=1000\"",
            ),
        ],
    );
    assert!(!result.2.contains("mountOptions[1]"), "{}", result.2);
}

#[test]
fn ecs_properties_are_refused() {
    let result = import(&[(
        "ecs.json",
        json!({"jobDefinitionName": "ecs", "type": "container", "ecsProperties": {"taskProperties": [
            {"containers": [{"name": "a", "image": "busybox", "essential": true}]}
        ]}}),
    )]);
    assert_refused(
        &result,
        &[("ecsProperties", "Barge does not run ECS task properties")],
    );
}

#[test]
fn arn_revisions_are_carried_only_with_their_definition() {
    let definition = |revision: i32, status: &str| {
        json!({
            "jobDefinitionName": "render",
            "jobDefinitionArn": format!("arn:aws:batch:eu-west-1:012345678910:job-definition/render:{revision}"),
            "revision": revision, "status": status, "type": "container",
            "containerProperties": {"image": "busybox", "command": ["render", revision.to_string()]}
        })
    };
    let export = json!({"jobDefinitions": [definition(4, "INACTIVE"), definition(3, "ACTIVE"), definition(2, "ACTIVE")]});
    let job = |reference: &str| json!({"jobName": "render-1", "jobQueue": "arn:aws:batch:eu-west-1:012345678910:job-queue/prod", "jobDefinition": reference});
    // The revision imported with the job: carried as a reference by name.
    let (code, stdout, stderr) = import(&[
        ("export.json", export.clone()),
        (
            "job.json",
            job("arn:aws:batch:eu-west-1:012345678910:job-definition/render:3"),
        ),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let docs = documents(stdout.as_bytes());
    assert_eq!(docs.len(), 2, "one definition (revision 3) and the job");
    assert_eq!(
        docs[0]["spec"]["containerProperties"]["command"],
        json!(["render", "3"])
    );
    assert_eq!(docs[1]["spec"]["jobDefinition"], "render");
    for (field, text) in [
        (
            "jobDefinitions[0]",
            "revision 4 of render not imported: INACTIVE",
        ),
        (
            "jobDefinitions[2]",
            "revision 2 of render not imported: an older ACTIVE revision",
        ),
        (
            "jobDefinition",
            "revision 3 of render is the one imported with this job",
        ),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("warning: ") && l.contains(&format!(": {field}: {text}"))),
            "no warning for {field}:\n{stderr}"
        );
    }
    // Any other revision: refused.
    assert_refused(
        &import(&[("export.json", export), ("job.json", job("render:2"))]),
        &[(
            "jobDefinition",
            "refused: revision 2 of render cannot be carried: this run imports revision 3",
        )],
    );
    assert_refused(
        &import(&[(
            "job.json",
            job("arn:aws:batch:eu-west-1:012345678910:job-definition/render:7"),
        )]),
        &[(
            "jobDefinition",
            "refused: AWS revision 7 of render cannot be carried",
        )],
    );
}

#[test]
fn multinode_definitions_import_and_unsupported_range_fields_are_refused() {
    let (code, stdout, stderr) = import(&[(
        "mnp.json",
        json!({"jobDefinitionName": "mpi", "type": "multinode", "nodeProperties": {
        "numNodes": 4, "mainNode": 0, "nodeRangeProperties": [
            {"targetNodes": "0", "container": {"image": "busybox", "vcpus": 1, "memory": 64}},
            {"targetNodes": "1:", "instanceTypes": ["c5.large"], "container": {"image": "busybox", "vcpus": 1, "memory": 64}}
        ]}}),
    )]);
    assert_eq!(code, Some(0), "{stderr}");
    let docs = documents(stdout.as_bytes());
    assert_eq!(
        docs[0]["spec"]["nodeProperties"]["nodeRangeProperties"][1]["container"]["instanceType"],
        "c5.large"
    );
    let result = import(&[(
        "mnp.json",
        json!({"jobDefinitionName": "mpi", "type": "multinode", "nodeProperties": {
        "numNodes": 2, "mainNode": 0, "nodeRangeProperties": [
            {"targetNodes": "0:", "instanceTypes": ["c5.large", "m5.large"], "ecsProperties": {}, "container": {"image": "busybox"}}
        ]}}),
    )]);
    assert_refused(
        &result,
        &[
            (
                "nodeProperties.nodeRangeProperties[0].instanceTypes",
                "one instance type",
            ),
            ("nodeProperties.nodeRangeProperties[0].ecsProperties", "ECS"),
        ],
    );
}

#[test]
fn manifests_the_crd_would_refuse_are_never_printed() {
    let result = import(&[(
        "invalid.json",
        container_definition(
            json!({"image": "busybox", "resourceRequirements": [{"type": "MEMORY", "value": "1.5"}]}),
        ),
    )]);
    assert_refused(
        &result,
        &[(
            "document",
            "JobDefinition.batch.barge.dev \"crafted\" is invalid: spec.containerProperties.resourceRequirements[0]: Invalid value: ",
        )],
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
