//! The JobDefinition controller: revisions kept in ControllerRevisions, validation, and the
//! "in use" finalizer.
//!
//! Pipeline per definition:
//! 1. dereference: its ControllerRevisions from the cache (index by definition), plus a GET of
//!    the revision its status names when the cache has not seen it yet;
//! 2. validate (pure, [`validate`]): what the CRD's rules cannot check — unreadable resource
//!    values, node ranges that leave a node uncovered or name nodes beyond `numNodes` (the
//!    narrower of two overlapping ranges decides a node, as jobs lay their nodes out with
//!    [`pods::node_layout`](crate::pods::node_layout)), settings with no pod equivalent
//!    (`ulimits`: a warning);
//! 3. build (pure, [`plan_revision`]): is the spec the latest revision's, or does it need the
//!    next revision? Every spec change yields the next `status.revision` (AWS Batch registers a
//!    new revision for every change; reverting a spec is a new revision too), kept as the apps/v1
//!    ControllerRevision `<definition>-<revision>` (owner: the definition; labels managed-by
//!    and job-definition) — so `jobDefinition: name:N` resolves to a frozen spec;
//! 4. apply: create the ControllerRevision;
//! 5. update_status: `revision`, the Ready condition, `observedGeneration`; an Event for each
//!    new revision (a Warning one when the definition is invalid).
//!
//! Deletion: the kube finalizer helper keeps `batch.barge.dev/in-use` on the definition while
//! unfinished jobs reference it (their revisions must stay readable); the ControllerRevisions go
//! with the definition through their owner reference.
//!
//! The revisions' format (name, labels, reading one back for a job) is
//! [`definition_revisions`](crate::definition_revisions), one layer down, shared with the job
//! controller.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::api::PostParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};

use barge_crds::consts::{
    CONDITION_READY, FIELD_MANAGER_JOB_DEFINITION_CONTROLLER, FINALIZER_IN_USE,
    REASON_INVALID_SPEC, REASON_VALID,
};
use barge_crds::job_definition::{JobDefinitionType, NodeProperties};
use barge_crds::resources::{ContainerProperties, ResourceType, MAX_NODE_RANGES, MAX_NUM_NODES};
use barge_crds::{JobDefinition, JobDefinitionSpec, JobDefinitionStatus};

use super::{controller_config, measured, ACTION_RECONCILE, REASON_IN_USE, TRANSIENT_RETRY};
use crate::context::Context;
use crate::definition_revisions::{build_revision, revision_name};
use crate::events::EventSpec;
use crate::pods::{definition_ranges, parse_user, NumNodesFrom};
use crate::shutdown::Shutdown;
use crate::status::{
    apply_status, is_conflict, merge_conditions, ready_and_stalled, DesiredCondition, Precondition,
};

const CONTROLLER: &str = "job-definition";
/// Event reason: a new revision was recorded.
pub const EVENT_REVISION_CREATED: &str = "RevisionCreated";
/// Event reason: the definition is invalid.
pub const EVENT_INVALID: &str = "InvalidDefinition";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading revision {name} of job definition {definition}: {source}")]
    ReadRevision {
        definition: String,
        name: String,
        source: kube::Error,
    },
    #[error("creating revision {name} of job definition {definition}: {source}")]
    CreateRevision {
        definition: String,
        name: String,
        source: kube::Error,
    },
    #[error("revision {name} exists but belongs to another object or holds another spec; waiting for it to go")]
    RevisionTaken { name: String },
    #[error("encoding the spec of job definition {definition}: {source}")]
    EncodeSpec {
        definition: String,
        source: serde_json::Error,
    },
    #[error("writing the status of job definition {definition}: {source}")]
    UpdateStatus {
        definition: String,
        source: kube::Error,
    },
    #[error("job definition {definition} is still used by {jobs} unfinished job(s); it is deleted once they finish")]
    InUse { definition: String, jobs: usize },
    #[error("job definition {definition} has no namespace")]
    NoNamespace { definition: String },
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<Error>>),
}

impl super::ReconcileError for Error {
    fn is_waiting(&self) -> bool {
        match self {
            Error::InUse { .. } => true,
            // The status write met a newer object (its resourceVersion precondition): the watch
            // brings it and the reconcile runs again.
            Error::UpdateStatus { source, .. } => is_conflict(source),
            Error::Finalizer(err) => super::finalizer_error_is_waiting(err),
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation (pure)
// ---------------------------------------------------------------------------------------------

/// The verdict on a definition: problems make it invalid, warnings do not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validation {
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

impl Validation {
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

fn validate_container(container: &ContainerProperties, at: &str, v: &mut Validation) {
    for requirement in &container.resource_requirements {
        let parsed = match requirement.r#type {
            ResourceType::Vcpu => {
                barge_core::quantity::aws_vcpus_millis(&requirement.value).map(|m| m > 0)
            }
            ResourceType::Memory => {
                barge_core::quantity::aws_memory_mib(&requirement.value).map(|m| m > 0)
            }
            ResourceType::Gpu => barge_core::quantity::count(&requirement.value).map(|n| n >= 0),
        };
        match parsed {
            Ok(true) => {}
            Ok(false) => v.problems.push(format!(
                "{at}resourceRequirements {:?} must be positive",
                requirement.value
            )),
            Err(err) => v.problems.push(format!("{at}resourceRequirements: {err}")),
        }
    }
    if let Some(user) = &container.user {
        if let Err(problem) = parse_user(user) {
            v.problems.push(format!("{at}{problem}"));
        }
    }
    for mount in &container.mount_points {
        if !container
            .volumes
            .iter()
            .any(|vol| vol.name == mount.source_volume)
        {
            v.problems.push(format!(
                "{at}mountPoints: sourceVolume {:?} is not one of the volumes",
                mount.source_volume
            ));
        }
    }
    for secret in &container.secrets {
        if secret
            .value_from
            .split_once(':')
            .is_none_or(|(name, key)| name.is_empty() || key.is_empty())
        {
            v.problems.push(format!(
                "{at}secrets: valueFrom {:?} must be <secret-name>:<key>",
                secret.value_from
            ));
        }
    }
    if !container.ulimits.is_empty() {
        let names: Vec<String> = container
            .ulimits
            .iter()
            .map(|u| format!("{:?}", u.name).to_lowercase())
            .collect();
        v.warnings.push(format!(
            "{at}ulimits ({}) are ignored: Kubernetes pods have no per-container ulimits (set them in the node's container runtime)",
            names.join(", ")
        ));
    }
}

fn validate_nodes(nodes: &NodeProperties, v: &mut Validation) {
    let num_nodes = match u32::try_from(nodes.num_nodes) {
        Ok(n) if (1..=MAX_NUM_NODES as u32).contains(&n) => n,
        _ => {
            v.problems.push(format!(
                "nodeProperties.numNodes {} must be from 1 to {MAX_NUM_NODES}",
                nodes.num_nodes
            ));
            return;
        }
    };
    if !u32::try_from(nodes.main_node).is_ok_and(|m| m < num_nodes) {
        v.problems.push(format!(
            "nodeProperties.mainNode {} must be a node index below numNodes {num_nodes}",
            nodes.main_node
        ));
    }
    if nodes.node_range_properties.len() > MAX_NODE_RANGES {
        v.problems.push(format!(
            "nodeProperties.nodeRangeProperties has {} ranges; at most {MAX_NODE_RANGES} are allowed",
            nodes.node_range_properties.len()
        ));
    }
    if let Err(errors) = definition_ranges(
        nodes
            .node_range_properties
            .iter()
            .map(|r| r.target_nodes.as_str()),
        num_nodes,
        NumNodesFrom::Definition,
    ) {
        v.problems.extend(errors.iter().map(ToString::to_string));
    }
    for (i, range) in nodes.node_range_properties.iter().enumerate() {
        validate_container(
            &range.container,
            &format!("nodeProperties.nodeRangeProperties[{i}].container: "),
            v,
        );
    }
}

/// Validates a definition spec (pure).
pub fn validate(spec: &JobDefinitionSpec) -> Validation {
    let mut v = Validation::default();
    match spec.r#type {
        JobDefinitionType::Container => match (&spec.container_properties, &spec.pod_properties) {
            (Some(container), None) => validate_container(container, "containerProperties: ", &mut v),
            (None, Some(pod)) => {
                let mut names = std::collections::BTreeSet::new();
                for c in pod.containers.iter().chain(&pod.init_containers) {
                    if !names.insert(c.name.as_str()) {
                        v.problems.push(format!("podProperties: container name {:?} is used twice", c.name));
                    }
                }
                if pod.containers.is_empty() {
                    v.problems.push("podProperties needs at least one container".into());
                }
            }
            _ => v.problems.push("a container job definition needs exactly one of containerProperties or podProperties".into()),
        },
        JobDefinitionType::Multinode => match &spec.node_properties {
            Some(nodes) => validate_nodes(nodes, &mut v),
            None => v.problems.push("a multinode job definition needs nodeProperties".into()),
        },
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Revisions (pure)
// ---------------------------------------------------------------------------------------------

/// A ControllerRevision of a definition, as the plan needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct RevisionView {
    pub name: String,
    pub revision: i64,
    pub data: Option<serde_json::Value>,
}

/// What to do about the definition's revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevisionPlan {
    /// The spec is that of the latest revision.
    Current { revision: i64 },
    /// The spec changed (or has no revision yet): record it as this revision.
    Create { revision: i64, name: String },
}

/// Decides whether the spec needs a new revision: compared with the latest revision's data; the
/// next number follows both the revisions seen and the recorded `status.revision`, so numbers
/// never repeat.
pub fn plan_revision(
    definition: &str,
    spec: &serde_json::Value,
    status_revision: Option<i32>,
    revisions: &[RevisionView],
) -> RevisionPlan {
    let latest = revisions.iter().max_by_key(|r| r.revision);
    if let Some(latest) = latest {
        if latest.data.as_ref() == Some(spec) {
            return RevisionPlan::Current {
                revision: latest.revision,
            };
        }
    }
    let next = latest
        .map(|r| r.revision)
        .unwrap_or(0)
        .max(i64::from(status_revision.unwrap_or(0)))
        + 1;
    RevisionPlan::Create {
        revision: next,
        name: revision_name(definition, next),
    }
}

fn view_of(revision: &ControllerRevision) -> RevisionView {
    let data = Some(&revision.data.0).filter(|d| !d.is_null()).cloned();
    RevisionView {
        name: revision.name_any(),
        revision: revision.revision.unwrap_or(0),
        data,
    }
}

fn owned_by(revision: &ControllerRevision, definition: &JobDefinition) -> bool {
    let uid = definition.uid();
    revision
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == uid.as_ref())
}

/// The status a definition should have (pure).
pub fn build_status(
    definition: &JobDefinition,
    revision: Option<i64>,
    validation: &Validation,
    in_use_while_deleting: Option<usize>,
    now: Timestamp,
) -> JobDefinitionStatus {
    let generation = definition.metadata.generation;
    let existing = definition
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let ready = if let Some(jobs) = in_use_while_deleting {
        DesiredCondition::new(
            CONDITION_READY,
            false,
            REASON_IN_USE,
            format!("being deleted; waiting for {jobs} unfinished job(s) that use it"),
        )
    } else if !validation.is_valid() {
        DesiredCondition::new(
            CONDITION_READY,
            false,
            REASON_INVALID_SPEC,
            validation.problems.join("; "),
        )
    } else {
        let mut message = match revision {
            Some(r) => format!("revision {r} is ready for jobs"),
            None => "the definition is valid".to_string(),
        };
        for warning in &validation.warnings {
            message.push_str("; warning: ");
            message.push_str(warning);
        }
        DesiredCondition::new(CONDITION_READY, true, REASON_VALID, message)
    };
    JobDefinitionStatus {
        revision: revision.and_then(|r| i32::try_from(r).ok()),
        conditions: merge_conditions(existing, &ready_and_stalled(ready), generation, now),
        observed_generation: generation,
    }
}

// ---------------------------------------------------------------------------------------------
// Reconcile (I/O)
// ---------------------------------------------------------------------------------------------

#[tracing::instrument(name = "reconcile", skip_all, fields(job_definition = %definition.name_any(), namespace = definition.metadata.namespace.as_deref().unwrap_or_default()))]
async fn reconcile(definition: Arc<JobDefinition>, ctx: Arc<Context>) -> Result<Action, Error> {
    measured(&ctx, CONTROLLER, async {
        let name = definition.name_any();
        let namespace = definition.namespace().ok_or_else(|| Error::NoNamespace {
            definition: name.clone(),
        })?;
        let api: Api<JobDefinition> = Api::namespaced(ctx.client.clone(), &namespace);
        finalizer(&api, FINALIZER_IN_USE, definition, |event| async {
            match event {
                FinalizerEvent::Apply(definition) => apply(&definition, &ctx).await,
                FinalizerEvent::Cleanup(definition) => cleanup(&definition, &ctx).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))
    })
    .await
}

/// Dereference the revisions of `definition`: those cached, plus the one its status names if
/// the cache has not seen it yet.
async fn dereference_revisions(
    definition: &JobDefinition,
    ctx: &Context,
) -> Result<Vec<RevisionView>, Error> {
    let name = definition.name_any();
    let namespace = definition.namespace().unwrap_or_default();
    let mut revisions: Vec<RevisionView> = ctx
        .caches
        .revisions_of_definition(&namespace, &name)
        .iter()
        .filter(|r| owned_by(r, definition))
        .map(|r| view_of(r))
        .collect();
    let recorded = definition
        .status
        .as_ref()
        .and_then(|s| s.revision)
        .map(i64::from);
    if let Some(recorded) = recorded {
        if revisions.iter().all(|r| r.revision < recorded) {
            let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &namespace);
            let revision_name = revision_name(&name, recorded);
            let fetched =
                api.get_opt(&revision_name)
                    .await
                    .map_err(|source| Error::ReadRevision {
                        definition: name.clone(),
                        name: revision_name,
                        source,
                    })?;
            revisions.extend(
                fetched
                    .filter(|r| owned_by(r, definition))
                    .map(|r| view_of(&r)),
            );
        }
    }
    Ok(revisions)
}

async fn apply(definition: &JobDefinition, ctx: &Context) -> Result<Action, Error> {
    let name = definition.name_any();
    let namespace = definition.namespace().unwrap_or_default();
    let validation = validate(&definition.spec);
    let spec = serde_json::to_value(&definition.spec).map_err(|source| Error::EncodeSpec {
        definition: name.clone(),
        source,
    })?;
    let revisions = dereference_revisions(definition, ctx).await?;
    let recorded = definition.status.as_ref().and_then(|s| s.revision);
    let revision = match plan_revision(&name, &spec, recorded, &revisions) {
        RevisionPlan::Current { revision } => revision,
        RevisionPlan::Create {
            revision,
            name: revision_name,
        } => {
            let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &namespace);
            let object = build_revision(definition, spec.clone(), revision);
            match api.create(&PostParams::default(), &object).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    // Created by an earlier reconcile whose status write did not land: adopt it
                    // if it is ours and holds this spec.
                    let existing = api.get_opt(&revision_name).await.map_err(|source| {
                        Error::ReadRevision {
                            definition: name.clone(),
                            name: revision_name.clone(),
                            source,
                        }
                    })?;
                    let adoptable = existing
                        .as_ref()
                        .is_some_and(|r| owned_by(r, definition) && r.data.0 == spec);
                    if !adoptable {
                        return Err(Error::RevisionTaken {
                            name: revision_name,
                        });
                    }
                }
                Err(source) => {
                    return Err(Error::CreateRevision {
                        definition: name.clone(),
                        name: revision_name,
                        source,
                    })
                }
            }
            let note = match validation.is_valid() {
                true => format!("recorded revision {revision}"),
                false => format!(
                    "recorded revision {revision}, which is invalid: {}",
                    validation.problems.join("; ")
                ),
            };
            ctx.events.publish(
                definition,
                EventSpec::normal(EVENT_REVISION_CREATED, ACTION_RECONCILE, note),
            );
            if !validation.warnings.is_empty() {
                ctx.events.publish(
                    definition,
                    EventSpec::warning(
                        EVENT_INVALID,
                        ACTION_RECONCILE,
                        validation.warnings.join("; "),
                    ),
                );
            }
            revision
        }
    };
    if !validation.is_valid()
        && definition
            .status
            .as_ref()
            .and_then(|s| s.observed_generation)
            != definition.metadata.generation
    {
        ctx.events.publish(
            definition,
            EventSpec::warning(
                EVENT_INVALID,
                ACTION_RECONCILE,
                validation.problems.join("; "),
            ),
        );
    }
    let status = build_status(
        definition,
        Some(revision),
        &validation,
        None,
        Timestamp::now(),
    );
    write_status(definition, &status, ctx).await?;
    Ok(Action::await_change())
}

async fn cleanup(definition: &JobDefinition, ctx: &Context) -> Result<Action, Error> {
    let name = definition.name_any();
    let namespace = definition.namespace().unwrap_or_default();
    if !ctx.caches.job_definition_in_use(&namespace, &name) {
        return Ok(Action::await_change());
    }
    let jobs = ctx
        .caches
        .indexes
        .active_jobs_by_definition
        .count(&(namespace.as_str().into(), name.as_str().into()));
    let validation = validate(&definition.spec);
    let revision = definition
        .status
        .as_ref()
        .and_then(|s| s.revision)
        .map(i64::from);
    let status = build_status(
        definition,
        revision,
        &validation,
        Some(jobs),
        Timestamp::now(),
    );
    write_status(definition, &status, ctx).await?;
    Err(Error::InUse {
        definition: name,
        jobs,
    })
}

async fn write_status(
    definition: &JobDefinition,
    status: &JobDefinitionStatus,
    ctx: &Context,
) -> Result<(), Error> {
    let api: Api<JobDefinition> = Api::namespaced(
        ctx.client.clone(),
        &definition.namespace().unwrap_or_default(),
    );
    // The revision number must not go back: write against the resourceVersion we read.
    match apply_status(
        &api,
        definition,
        status,
        FIELD_MANAGER_JOB_DEFINITION_CONTROLLER,
        Precondition::ResourceVersion,
        &ctx.metrics,
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(source) => Err(Error::UpdateStatus {
            definition: definition.name_any(),
            source,
        }),
    }
}

fn error_policy(_: Arc<JobDefinition>, error: &Error, _: Arc<Context>) -> Action {
    use super::ReconcileError;
    Action::requeue(if error.is_waiting() {
        super::WAIT_RETRY
    } else {
        TRANSIENT_RETRY
    })
}

/// Runs the controller until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) {
    let caches = ctx.caches.clone();
    let definitions = caches.clone();
    let mut controller = Controller::for_shared_stream(
        caches.job_definitions_feed.subscribe(),
        caches.job_definitions.clone(),
    )
    .owns_shared_stream(caches.revisions_feed.subscribe())
    // Jobs matter to a definition only while it waits to be deleted.
    .watches_shared_stream(
        caches.jobs_feed.subscribe(),
        move |job: Arc<crate::cache::JobRecord>| {
            let namespace = job.namespace().unwrap_or_default();
            let name = job.definition().map(|d| d.to_string());
            name.map(|n| ObjectRef::<JobDefinition>::new(&n).within(&namespace))
                .filter(|r| {
                    definitions
                        .job_definitions
                        .get(r)
                        .is_some_and(|d| d.meta().deletion_timestamp.is_some())
                })
        },
    )
    .with_config(controller_config(&ctx))
    .graceful_shutdown_on(shutdown.wait());
    if let Some(requests) = ctx.triggers.job_definitions.stream() {
        controller = controller.reconcile_on(requests);
    }
    super::drain_classified(
        CONTROLLER,
        controller.run(reconcile, error_policy, ctx),
        super::ReconcileError::is_waiting,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::aws_job_definition;
    use barge_crds::consts::{LABEL_JOB_DEFINITION, LABEL_MANAGED_BY, MANAGED_BY_BARGE};

    fn spec_json(spec: &JobDefinitionSpec) -> serde_json::Value {
        serde_json::to_value(spec).expect("spec encodes")
    }

    #[test]
    fn the_aws_fixtures_are_valid_container_definitions() {
        for file in crate::test_support::CONTAINER_JOB_DEFINITION_FIXTURES {
            let spec = aws_job_definition(file);
            let v = validate(&spec);
            assert!(v.is_valid(), "{file}: {:?}", v.problems);
        }
    }

    #[test]
    fn the_multinode_fixture_is_valid_and_ready() {
        let spec = aws_job_definition("jobdef-multinode.json");
        let v = validate(&spec);
        assert_eq!(v, Validation::default());
        let jd = JobDefinition::new("mpi", spec);
        let status = build_status(
            &jd,
            Some(1),
            &v,
            None,
            Timestamp::from_second(10).expect("ts"),
        );
        assert_eq!(
            (
                status.conditions[0].status.as_str(),
                status.conditions[0].reason.as_str()
            ),
            ("True", REASON_VALID)
        );
    }

    fn multinode_problems(num_nodes: i32, main_node: i32, targets: &[&str]) -> Vec<String> {
        let mut spec = aws_job_definition("jobdef-multinode.json");
        let nodes = spec.node_properties.as_mut().expect("nodes");
        let container = nodes.node_range_properties[0].container.clone();
        nodes.num_nodes = num_nodes;
        nodes.main_node = main_node;
        nodes.node_range_properties = targets
            .iter()
            .map(|t| barge_crds::job_definition::NodeRangeProperty {
                target_nodes: t.to_string(),
                container: container.clone(),
            })
            .collect();
        validate(&spec).problems
    }

    #[test]
    fn node_ranges_must_cover_every_node_and_name_only_its_nodes() {
        assert_eq!(
            multinode_problems(6, 0, &["0", "1:3"]),
            vec!["nodes 4-5 are not covered by any nodeProperties.nodeRangeProperties[].targetNodes (numNodes 6 from nodeProperties.numNodes)"]
        );
        assert_eq!(
            multinode_problems(6, 0, &["0:", "2"]),
            Vec::<String>::new(),
            "nested ranges: the narrower decides"
        );
        assert_eq!(
            multinode_problems(6, 0, &["0", "4:9", "1:3"]),
            vec!["nodeProperties.nodeRangeProperties[1].targetNodes \"4:9\" names nodes beyond numNodes 6"]
        );
        assert_eq!(
            multinode_problems(6, 0, &["4:2", "0:"]),
            vec!["nodeProperties.nodeRangeProperties[0].targetNodes \"4:2\" starts after it ends"]
        );
        assert_eq!(
            multinode_problems(6, 6, &["0:"]),
            vec!["nodeProperties.mainNode 6 must be a node index below numNodes 6"]
        );
        assert_eq!(
            multinode_problems(1001, 0, &["0:"]),
            vec!["nodeProperties.numNodes 1001 must be from 1 to 1000"]
        );
        assert_eq!(
            multinode_problems(6, 0, &["0", "1", "2", "3", "4", "5:"]),
            vec!["nodeProperties.nodeRangeProperties has 6 ranges; at most 5 are allowed"]
        );
        assert_eq!(
            multinode_problems(1, 0, &[]),
            vec!["node 0 is not covered by any nodeProperties.nodeRangeProperties[].targetNodes (numNodes 1 from nodeProperties.numNodes)"]
        );
    }

    #[test]
    fn users_map_to_numeric_ids_and_names_are_refused() {
        assert_eq!(parse_user("nobody"), Ok((65534, None)));
        assert_eq!(parse_user("root"), Ok((0, None)));
        assert_eq!(parse_user("1000:2000"), Ok((1000, Some(2000))));
        assert!(parse_user("ec2-user").unwrap_err().contains("numeric uid"));
        assert!(parse_user("1:x").is_err());
        let mut spec = aws_job_definition("jobdef-fetch_and_run.json");
        spec.container_properties.as_mut().expect("container").user = Some("ec2-user".into());
        assert!(!validate(&spec).is_valid());
    }

    #[test]
    fn ulimits_warn_without_invalidating() {
        let mut spec = aws_job_definition("jobdef-fetch_and_run.json");
        spec.container_properties
            .as_mut()
            .expect("container")
            .ulimits = vec![barge_crds::resources::Ulimit {
            name: barge_crds::resources::UlimitName::Nofile,
            soft_limit: 1024,
            hard_limit: 4096,
        }];
        let v = validate(&spec);
        assert!(v.is_valid());
        assert!(
            v.warnings[0].contains("ulimits (nofile) are ignored"),
            "{:?}",
            v.warnings
        );
    }

    #[test]
    fn every_spec_change_is_the_next_revision() {
        let spec_a = spec_json(&aws_job_definition("jobdef-fetch_and_run.json"));
        let mut changed = aws_job_definition("jobdef-fetch_and_run.json");
        changed.container_properties.as_mut().expect("c").command = vec!["other.sh".into()];
        let spec_b = spec_json(&changed);
        assert_eq!(
            plan_revision("fr", &spec_a, None, &[]),
            RevisionPlan::Create {
                revision: 1,
                name: "fr-1".into()
            }
        );
        let r1 = RevisionView {
            name: "fr-1".into(),
            revision: 1,
            data: Some(spec_a.clone()),
        };
        assert_eq!(
            plan_revision("fr", &spec_a, Some(1), std::slice::from_ref(&r1)),
            RevisionPlan::Current { revision: 1 }
        );
        assert_eq!(
            plan_revision("fr", &spec_b, Some(1), std::slice::from_ref(&r1)),
            RevisionPlan::Create {
                revision: 2,
                name: "fr-2".into()
            }
        );
        // Going back to an older spec is a new revision, as in AWS Batch.
        let r2 = RevisionView {
            name: "fr-2".into(),
            revision: 2,
            data: Some(spec_b),
        };
        assert_eq!(
            plan_revision("fr", &spec_a, Some(2), &[r1.clone(), r2]),
            RevisionPlan::Create {
                revision: 3,
                name: "fr-3".into()
            }
        );
        // A recorded revision the cache has not seen still counts: numbers never repeat.
        assert_eq!(
            plan_revision("fr", &spec_a, Some(5), &[]),
            RevisionPlan::Create {
                revision: 6,
                name: "fr-6".into()
            }
        );
    }

    #[test]
    fn revisions_carry_labels_owner_and_spec() {
        let mut jd = JobDefinition::new("fr", aws_job_definition("jobdef-fetch_and_run.json"));
        jd.metadata.namespace = Some("team".into());
        jd.metadata.uid = Some("uid-1".into());
        let spec = spec_json(&jd.spec);
        let cr = build_revision(&jd, spec.clone(), 4);
        assert_eq!(cr.metadata.name.as_deref(), Some("fr-4"));
        assert_eq!(cr.metadata.namespace.as_deref(), Some("team"));
        let labels = cr.metadata.labels.clone().expect("labels");
        assert_eq!(labels[LABEL_MANAGED_BY], MANAGED_BY_BARGE);
        assert_eq!(labels[LABEL_JOB_DEFINITION], "fr");
        let owner = &cr.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.uid.as_str(), owner.kind.as_str(), owner.controller),
            ("uid-1", "JobDefinition", Some(true))
        );
        assert_eq!(cr.data.0, spec);
        assert!(owned_by(
            &build_revision(&jd, serde_json::Value::Null, 1),
            &jd
        ));
    }

    #[test]
    fn status_says_why_a_definition_is_not_ready() {
        let mut jd = JobDefinition::new("fr", aws_job_definition("jobdef-fetch_and_run.json"));
        jd.metadata.generation = Some(2);
        let now = Timestamp::from_second(10).expect("ts");
        let ok = build_status(&jd, Some(3), &Validation::default(), None, now);
        assert_eq!((ok.revision, ok.observed_generation), (Some(3), Some(2)));
        assert_eq!(ok.conditions[0].reason, REASON_VALID);
        let invalid = Validation {
            problems: vec!["user \"x\" cannot be used".into()],
            ..Default::default()
        };
        let bad = build_status(&jd, Some(3), &invalid, None, now);
        assert_eq!(
            (
                bad.conditions[0].status.as_str(),
                bad.conditions[0].reason.as_str()
            ),
            ("False", REASON_INVALID_SPEC)
        );
        let deleting = build_status(&jd, Some(3), &Validation::default(), Some(4), now);
        assert_eq!(deleting.conditions[0].reason, REASON_IN_USE);
        assert!(deleting.conditions[0]
            .message
            .contains("4 unfinished job(s)"));
    }

    #[test]
    fn stale_writes_and_in_use_deletions_are_waits() {
        use super::super::ReconcileError;
        let conflict = kube::Error::Api(Box::new(kube::core::Status {
            code: 409,
            ..Default::default()
        }));
        assert!(Error::UpdateStatus {
            definition: "d".into(),
            source: conflict
        }
        .is_waiting());
        assert!(Error::InUse {
            definition: "d".into(),
            jobs: 1
        }
        .is_waiting());
        let forbidden = kube::Error::Api(Box::new(kube::core::Status {
            code: 403,
            ..Default::default()
        }));
        assert!(!Error::UpdateStatus {
            definition: "d".into(),
            source: forbidden
        }
        .is_waiting());
    }
}
