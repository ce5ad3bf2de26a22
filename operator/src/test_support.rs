//! Helpers for the unit tests: the shared fixture documents and small object builders.

use std::path::PathBuf;

use barge_crds::JobDefinitionSpec;

/// The shared directory: `$BARGE_SHARED_DIR`, else `<workspace root>/../shared`.
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BARGE_SHARED_DIR") {
        return PathBuf::from(dir);
    }
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("Cargo.toml").is_file() || !is_workspace_root(&dir) {
        if !dir.pop() {
            panic!(
                "no workspace Cargo.toml above {}",
                env!("CARGO_MANIFEST_DIR")
            );
        }
    }
    dir.join("..").join("shared")
}

fn is_workspace_root(dir: &std::path::Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|text| text.contains("[workspace]"))
}

/// The container (not multi-node) job definitions among the AWS fixtures.
pub const CONTAINER_JOB_DEFINITION_FIXTURES: [&str; 5] = [
    "jobdef-fetch_and_run.json",
    "jobdef-ffmpeg_parameters.json",
    "jobdef-gpu.json",
    "jobdef-spot-retry.json",
    "jobdef-tensorflow_mnist_deep.json",
];

/// An AWS Batch document from `fixtures/aws/`.
pub fn aws_document(file: &str) -> serde_json::Value {
    let path = shared_dir().join("fixtures").join("aws").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// A RegisterJobDefinition document as a JobDefinition spec (AWS names are Barge's, so the
/// document deserializes as it is; fields without a Kubernetes meaning are ignored).
pub fn aws_job_definition(file: &str) -> JobDefinitionSpec {
    serde_json::from_value(aws_document(file))
        .unwrap_or_else(|e| panic!("{file} as a JobDefinitionSpec: {e}"))
}
