//! Job definition revisions as Barge stores them: the apps/v1 ControllerRevision
//! `<definition>-<revision>` (owned by the definition, labelled with it) whose `data` is the
//! definition's spec at that revision.
//!
//! The JobDefinition controller writes them ([`build_revision`]); the job controller reads a
//! job's definition back from the caches ([`resolve`] for `name` / `name:N`, [`resolve_pinned`]
//! for the revision a job already pinned) and hands the [`ResolvedDefinition`] to the scheduler
//! through the runnable book.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::ObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use barge_crds::consts::{
    LABEL_JOB_DEFINITION, LABEL_MANAGED_BY, MANAGED_BY_BARGE, REASON_INVALID_SPEC,
    REASON_JOB_DEFINITION_NOT_FOUND,
};
use barge_crds::job::parse_job_definition_reference;
use barge_crds::{JobDefinition, JobDefinitionSpec};

use crate::cache::Caches;

/// The ControllerRevision name of revision `revision` of definition `definition`.
pub fn revision_name(definition: &str, revision: i64) -> String {
    format!("{definition}-{revision}")
}

/// The ControllerRevision holding `spec` as `revision` of `definition`.
pub fn build_revision(
    definition: &JobDefinition,
    spec: serde_json::Value,
    revision: i64,
) -> ControllerRevision {
    let name = definition.name_any();
    let labels: BTreeMap<String, String> = [
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY_BARGE.to_string()),
        (LABEL_JOB_DEFINITION.to_string(), name.clone()),
    ]
    .into();
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&name, revision)),
            namespace: definition.namespace(),
            labels: Some(labels),
            owner_references: definition.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        data: RawExtension(spec),
        revision: Some(revision),
    }
}

/// A definition revision a job runs.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedDefinition {
    pub name: String,
    pub revision: i32,
    pub spec: JobDefinitionSpec,
}

/// Why a reference cannot be resolved now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The reference is not `name` or `name:N`.
    #[error("{0}")]
    InvalidReference(String),
    /// No such definition in the namespace.
    #[error("job definition {name:?} does not exist in namespace {namespace:?}")]
    NotFound { namespace: String, name: String },
    /// The definition exists but its controller has not recorded a revision yet.
    #[error("job definition {name:?} has no revision yet")]
    NoRevisionYet { name: String },
    /// The revision does not exist (or is not cached yet).
    #[error("job definition {name:?} has no revision {revision}")]
    NoSuchRevision { name: String, revision: i32 },
    /// The revision's stored spec cannot be read.
    #[error("revision {revision} of job definition {name:?} cannot be read: {problem}")]
    Unreadable {
        name: String,
        revision: i32,
        problem: String,
    },
}

impl ResolveError {
    /// The condition reason of the job that cannot resolve its definition.
    pub fn condition_reason(&self) -> &'static str {
        match self {
            ResolveError::InvalidReference(_) | ResolveError::Unreadable { .. } => {
                REASON_INVALID_SPEC
            }
            _ => REASON_JOB_DEFINITION_NOT_FOUND,
        }
    }
}

/// Resolves `reference` (`name` = the latest recorded revision, or `name:N`) in `namespace`.
pub fn resolve(
    caches: &Caches,
    namespace: &str,
    reference: &str,
) -> Result<ResolvedDefinition, ResolveError> {
    let parsed = parse_job_definition_reference(reference)
        .map_err(|e| ResolveError::InvalidReference(e.to_string()))?;
    let definition = caches
        .job_definitions
        .get(&ObjectRef::new(parsed.name).within(namespace))
        .ok_or_else(|| ResolveError::NotFound {
            namespace: namespace.into(),
            name: parsed.name.into(),
        })?;
    let revision = match parsed.revision {
        Some(revision) => revision,
        None => definition
            .status
            .as_ref()
            .and_then(|s| s.revision)
            .ok_or_else(|| ResolveError::NoRevisionYet {
                name: parsed.name.into(),
            })?,
    };
    resolve_pinned(caches, namespace, parsed.name, revision)
}

/// The spec of revision `revision` of definition `name` (a job's pinned revision).
pub fn resolve_pinned(
    caches: &Caches,
    namespace: &str,
    name: &str,
    revision: i32,
) -> Result<ResolvedDefinition, ResolveError> {
    let not_found = || ResolveError::NoSuchRevision {
        name: name.into(),
        revision,
    };
    let stored = caches
        .revisions
        .get(&ObjectRef::new(&revision_name(name, i64::from(revision))).within(namespace))
        .ok_or_else(not_found)?;
    if stored
        .labels()
        .get(LABEL_JOB_DEFINITION)
        .map(String::as_str)
        != Some(name)
        || stored.revision != Some(i64::from(revision))
    {
        return Err(not_found());
    }
    if stored.data.0.is_null() {
        return Err(ResolveError::Unreadable {
            name: name.into(),
            revision,
            problem: "it holds no data".into(),
        });
    }
    let spec: JobDefinitionSpec =
        serde_json::from_value(stored.data.0.clone()).map_err(|e| ResolveError::Unreadable {
            name: name.into(),
            revision,
            problem: e.to_string(),
        })?;
    Ok(ResolvedDefinition {
        name: name.into(),
        revision,
        spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::aws_job_definition;
    use barge_crds::JobDefinitionStatus;

    fn spec_json(spec: &JobDefinitionSpec) -> serde_json::Value {
        serde_json::to_value(spec).expect("spec encodes")
    }

    #[test]
    fn references_resolve_from_the_caches() {
        use kube::runtime::watcher::Event;
        let (caches, mut sinks) = Caches::new();
        let mut jd = JobDefinition::new("fr", aws_job_definition("jobdef-fetch_and_run.json"));
        jd.metadata.namespace = Some("team".into());
        jd.metadata.uid = Some("uid-1".into());
        let err = resolve(&caches, "team", "fr").unwrap_err();
        assert!(matches!(err, ResolveError::NotFound { .. }), "{err}");
        sinks.job_definitions.apply(Event::Apply(jd.clone()));
        assert!(matches!(
            resolve(&caches, "team", "fr"),
            Err(ResolveError::NoRevisionYet { .. })
        ));
        jd.status = Some(JobDefinitionStatus {
            revision: Some(2),
            ..Default::default()
        });
        sinks.job_definitions.apply(Event::Apply(jd.clone()));
        let mut old = jd.spec.clone();
        old.container_properties.as_mut().expect("c").command = vec!["old.sh".into()];
        sinks
            .revisions
            .apply(Event::Apply(build_revision(&jd, spec_json(&old), 1)));
        sinks
            .revisions
            .apply(Event::Apply(build_revision(&jd, spec_json(&jd.spec), 2)));
        let latest = resolve(&caches, "team", "fr").expect("latest");
        assert_eq!((latest.revision, latest.spec.clone()), (2, jd.spec.clone()));
        let pinned = resolve(&caches, "team", "fr:1").expect("pinned");
        assert_eq!(
            pinned.spec.container_properties.expect("c").command,
            ["old.sh"]
        );
        assert_eq!(
            resolve(&caches, "team", "fr:7").unwrap_err(),
            ResolveError::NoSuchRevision {
                name: "fr".into(),
                revision: 7
            }
        );
        assert!(matches!(
            resolve(&caches, "team", "fr:x"),
            Err(ResolveError::InvalidReference(_))
        ));
        assert_eq!(
            resolve(&caches, "other", "fr:1")
                .unwrap_err()
                .condition_reason(),
            REASON_JOB_DEFINITION_NOT_FOUND
        );
    }
}
