//! Helpers for the unit tests: the AWS fixture documents (located by `barge_fixtures`) and
//! small object builders.

use barge_crds::JobDefinitionSpec;

/// The container (not multi-node) job definitions among the AWS fixtures.
pub const CONTAINER_JOB_DEFINITION_FIXTURES: [&str; 5] = [
    "jobdef-fetch_and_run.json",
    "jobdef-ffmpeg_parameters.json",
    "jobdef-gpu.json",
    "jobdef-spot-retry.json",
    "jobdef-tensorflow_mnist_deep.json",
];

/// An AWS Batch document from `e2e/fixtures/aws/`.
pub fn aws_document(file: &str) -> serde_json::Value {
    let path = barge_fixtures::aws(file);
    let text = barge_fixtures::read(&path);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// A RegisterJobDefinition document as a JobDefinition spec (AWS names are Barge's, so the
/// document deserializes as it is; fields without a Kubernetes meaning are ignored).
pub fn aws_job_definition(file: &str) -> JobDefinitionSpec {
    serde_json::from_value(aws_document(file))
        .unwrap_or_else(|e| panic!("{file} as a JobDefinitionSpec: {e}"))
}
