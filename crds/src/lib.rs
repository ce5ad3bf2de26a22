//! barge-crds: Barge's API — the five `batch.barge.dev/v1alpha1` kinds, their validation rules,
//! and the generation of their CustomResourceDefinitions.
//!
//! Data flow: the Rust types in the per-kind modules are the single source of the API. Their
//! schemars/kube derives produce each CRD's OpenAPI schema, including the bounds (minimum,
//! maxItems, enums, patterns) and the CEL rules (`x-kubernetes-validations`) the API server uses
//! to refuse bad input with a message a user understands. [`crdgen`] renders the CRDs to YAML
//! (`cargo run -p barge-crds --bin crdgen` writes `config/crd/bases/` and
//! `charts/barge/templates/crds/`), and a test fails when the committed YAML drifts from the types. The operator deserializes
//! objects into these types, and imports every shared name from [`consts`].
//!
//! | kind | scope | short names | module |
//! |---|---|---|---|
//! | ComputeEnvironment | cluster | ce | [`compute_environment`] |
//! | JobQueue | cluster | jq | [`job_queue`] |
//! | SchedulingPolicy | cluster | sp | [`scheduling_policy`] |
//! | JobDefinition | namespaced | jd | [`job_definition`] |
//! | Job | namespaced | bjob, bj | [`job`] |
//!
//! Shared pieces: [`resources`] (containers, resource requirements, retry strategy, timeout,
//! overrides) and [`common`] (ENABLED/DISABLED state, name patterns, schema helpers).
#![forbid(unsafe_code)]
// kube-derive's `printcolumn(...)`, `shortname` and `validation` arguments repeat by design; clippy
// mistakes the repeated `type_ = "string"` for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod common;
pub mod compute_environment;
pub mod consts;
pub mod crdgen;
pub mod job;
pub mod job_definition;
pub mod job_queue;
pub mod resources;
pub mod scheduling_policy;

pub use compute_environment::{
    ComputeEnvironment, ComputeEnvironmentSpec, ComputeEnvironmentStatus,
};
pub use crdgen::{all_crds, crd_file_name, render_crd, write_crds};
pub use job::{Job, JobSpec, JobStatus, JobStatusDetail};
pub use job_definition::{JobDefinition, JobDefinitionSpec, JobDefinitionStatus};
pub use job_queue::{JobQueue, JobQueueSpec, JobQueueStatus};
pub use scheduling_policy::{SchedulingPolicy, SchedulingPolicySpec, SchedulingPolicyStatus};
