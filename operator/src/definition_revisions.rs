//! Job definition revisions as Barge stores them: the apps/v1 ControllerRevision
//! `<definition>-<revision>` (owned by the definition, labelled with it) whose `data` is the
//! definition's spec at that revision.
//!
//! The JobDefinition controller writes them ([`build_revision`]); the job controller reads a
//! job's definition back from the caches ([`resolve`] for `name` / `name:N`, [`resolve_pinned`]
//! for the revision a job already pinned) and hands the [`ResolvedDefinition`] to the scheduler
//! through the runnable book.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex, Weak};

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
) -> Result<Arc<ResolvedDefinition>, ResolveError> {
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

/// The spec of revision `revision` of definition `name` (a job's pinned revision). Every job
/// that runs one revision shares one decoded copy ([`shared`]).
pub fn resolve_pinned(
    caches: &Caches,
    namespace: &str,
    name: &str,
    revision: i32,
) -> Result<Arc<ResolvedDefinition>, ResolveError> {
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
    let identity = revision_identity(&stored);
    if let Some(resolved) = identity.as_ref().and_then(shared) {
        return Ok(resolved);
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
    let resolved = Arc::new(ResolvedDefinition {
        name: name.into(),
        revision,
        spec,
    });
    if let Some(identity) = identity {
        share(identity, &resolved);
    }
    Ok(resolved)
}

/// A stored revision: its uid and resourceVersion (a ControllerRevision's data is immutable,
/// and a re-created one has another uid). None for an object that has neither (built, not
/// read from the API server).
type RevisionIdentity = (String, String);

fn revision_identity(stored: &ControllerRevision) -> Option<RevisionIdentity> {
    Some((stored.uid()?, stored.resource_version()?))
}

/// The decoded revisions jobs hold, by identity: the runnable book keeps one entry per RUNNABLE
/// job, and 100,000 jobs of one definition would otherwise hold 100,000 decoded copies of its
/// spec (~1.3 KiB each) and decode it on every reconcile. Entries are weak: a revision no job
/// holds any more is freed, and its entry is dropped when the memo is pruned.
static RESOLVED: LazyLock<Mutex<HashMap<RevisionIdentity, Weak<ResolvedDefinition>>>> =
    LazyLock::new(Mutex::default);

/// The memo's entries are pruned of dead ones when it grows past this many (and then past
/// twice the live ones).
const MEMO_PRUNE_AT: usize = 64;

fn shared(identity: &RevisionIdentity) -> Option<Arc<ResolvedDefinition>> {
    memo().get(identity).and_then(Weak::upgrade)
}

fn share(identity: RevisionIdentity, resolved: &Arc<ResolvedDefinition>) {
    let mut memo = memo();
    if memo.len() >= MEMO_PRUNE_AT && memo.len().is_power_of_two() {
        memo.retain(|_, weak| weak.strong_count() > 0);
    }
    memo.insert(identity, Arc::downgrade(resolved));
}

fn memo() -> std::sync::MutexGuard<'static, HashMap<RevisionIdentity, Weak<ResolvedDefinition>>> {
    // Every critical section completes its mutation: a poisoned lock holds consistent data.
    RESOLVED.lock().unwrap_or_else(|p| p.into_inner())
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
            pinned
                .spec
                .container_properties
                .as_ref()
                .expect("c")
                .command,
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

    #[test]
    fn jobs_of_one_stored_revision_share_one_decoded_spec() {
        use kube::runtime::watcher::Event;
        let (caches, mut sinks) = Caches::new();
        let mut jd = JobDefinition::new("shared", aws_job_definition("jobdef-fetch_and_run.json"));
        jd.metadata.namespace = Some("team".into());
        jd.metadata.uid = Some("uid-jd".into());
        sinks.job_definitions.apply(Event::Apply(jd.clone()));
        let stored = |uid: &str, rv: &str, command: &str| {
            let mut spec = jd.spec.clone();
            spec.container_properties.as_mut().expect("c").command = vec![command.into()];
            let mut revision = build_revision(&jd, spec_json(&spec), 1);
            revision.metadata.uid = Some(uid.into());
            revision.metadata.resource_version = Some(rv.into());
            revision
        };
        let command = |d: &ResolvedDefinition| {
            d.spec
                .container_properties
                .as_ref()
                .expect("c")
                .command
                .clone()
        };
        sinks
            .revisions
            .apply(Event::Apply(stored("rev-uid-1", "10", "a.sh")));
        let first = resolve(&caches, "team", "shared:1").expect("resolves");
        let second = resolve(&caches, "team", "shared:1").expect("resolves");
        assert!(Arc::ptr_eq(&first, &second));
        // Another object under the same name (deleted and re-created) is decoded afresh.
        sinks
            .revisions
            .apply(Event::Apply(stored("rev-uid-2", "11", "b.sh")));
        let third = resolve(&caches, "team", "shared:1").expect("resolves");
        assert!(!Arc::ptr_eq(&first, &third));
        assert_eq!(
            (command(&first), command(&third)),
            (vec!["a.sh".to_string()], vec!["b.sh".to_string()])
        );
        // Once no job holds a decoded revision, it is freed.
        let weak = Arc::downgrade(&third);
        drop(third);
        assert!(weak.upgrade().is_none());
    }
}
