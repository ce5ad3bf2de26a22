//! The Job controller: walks every job through the AWS Batch states.
//!
//! Pipeline per reconcile:
//! 1. **dereference** — from the caches only: the job's definition revision (pinned in its
//!    status once resolved), its queue, the jobs it depends on, its pods, the scheduler's
//!    latest verdict;
//! 2. **validate** — [`admit`]: is the definition resolvable and runnable, the queue usable by
//!    this namespace? (`Admission::Waiting` keeps the job SUBMITTED with a reason,
//!    `Admission::Invalid` fails it);
//! 3. **build** — `barge_core::job::reconcile` decides (pure), [`translate::build_status`]
//!    renders the status;
//! 4. **update_status** — one server-side apply guarded by the resourceVersion the decision was
//!    based on (so a stale cache can never move a job backwards), coalesced for busy arrays;
//! 5. **publish** the RUNNABLE work of the recorded plan for the scheduler (which creates the
//!    pods) — before any pod action, so the scheduler never holds an offer older than a deletion;
//! 6. **apply** — only after the status holds the result: delete pods (timeouts, terminate),
//!    release the result finalizer of recorded pods, delete the job after its TTL.
//!
//! Events: Kubernetes Events on the state changes of the job that `--job-events` announces
//! (failures and retries by default; array parents only, never one per child).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{self, ReconcileReason};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::utils::CancelableJoinHandle;
use kube::{Resource, ResourceExt};
use tracing::{debug, instrument, warn, Instrument};

use barge_core::deps::{dependency_graph, DependencyGraph};
use barge_core::job::{
    reconcile as decide, Admission, DeleteReason, JobAction, JobPlan, JobView, RunnableWork,
};
use barge_core::naming;
use barge_core::pod_creation::Unit;
use barge_core::reasons::POD_CREATION_REFUSED;
use barge_core::scheduler::{Constraints, Gang, JobKey};
use barge_core::state::JobState;
use barge_crds::common::State as QueueState;
use barge_crds::consts::{
    ANNOTATION_GANG_NODES, FIELD_MANAGER_JOB_CONTROLLER, FINALIZER_ATTEMPT_RESULT,
    LABEL_ARRAY_INDEX, LABEL_COMPUTE_ENVIRONMENT, LABEL_DISPOSABLE, LABEL_JOB_NAME, LABEL_JOB_UID,
    REASON_INVALID_SPEC, REASON_JOB_QUEUE_NOT_FOUND, REASON_NAMESPACE_NOT_ALLOWED,
    REASON_SHARE_IDENTIFIER_REQUIRED,
};
use barge_crds::job::ResolvedJobDefinition;
use barge_crds::{Job, JobQueue};

use super::{measured, ReconcileError, TRANSIENT_RETRY};
use crate::cache::{namespaced_refs, CachedPod, JobRecord};
use crate::context::{ArrayPodRetention, Context, EntryShape, RunnableEntry, UnwrittenJobStatus};
use crate::definition_revisions::{resolve, resolve_pinned, ResolveError, ResolvedDefinition};
use crate::events::{counted, EventSpec, EventType, ACTION_CREATE_NODE_PODS, REASON_NODES_STARTED};
use crate::metrics::QueueStateLabels;
use crate::pod_refusals::refusal_message;
use crate::pods::{self, release_pod, AttemptPod, NodeLayout, NodePod};
use crate::queue_access::namespace_allowed;
use crate::shutdown::Shutdown;
use crate::status::{apply_status, is_conflict, is_not_found, Precondition, StatusWrite};
use crate::throttle::{with_priority, Priority};
use crate::translate::{self, StatusInputs};

const CONTROLLER: &str = "job";
/// Event action of job state changes.
pub const ACTION_STATE_CHANGE: &str = "StateChange";
/// Condition reason: a new job names a job queue that is being deleted.
pub const REASON_JOB_QUEUE_DELETING: &str = "JobQueueDeleting";
/// Condition reason: a new job names a job definition that is being deleted.
pub const REASON_JOB_DEFINITION_DELETING: &str = "JobDefinitionDeleting";
/// How soon a write refused for a stale resourceVersion is retried (the watch brings the newer
/// object first, usually).
const CONFLICT_RETRY: Duration = Duration::from_millis(200);
/// How soon a reconcile whose cache has not caught up with its own status write looks again
/// (the watch event of that write usually triggers it first).
const CACHE_LAG_RETRY: Duration = Duration::from_millis(50);
/// Pod deletions and finalizer releases of one reconcile in flight at once.
const POD_ACTION_CONCURRENCY: usize = 16;
/// Least time between two batched deletions of an array's released pods (see
/// [`disposal_due`]): with children finishing by the thousand per second, one DELETE of a
/// collection per second and array instead of one per child.
const DISPOSAL_INTERVAL: Duration = Duration::from_secs(1);

/// Errors of one reconcile, named after the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing the status of job {name}: {source}")]
    UpdateStatus {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting pod {pod}: {source}")]
    DeletePod {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting the released pods {selector}: {source}")]
    DisposePods {
        selector: String,
        #[source]
        source: kube::Error,
    },
    #[error("stopping pod {pod} at its deadline: {source}")]
    StopPod {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("releasing the result finalizer of pod {pod}: {source}")]
    ReleasePod {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating pod {pod} of a multi-node job's node: {source}")]
    CreateNodePod {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting job {name} after its TTL: {source}")]
    DeleteJob {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl ReconcileError for Error {
    fn is_waiting(&self) -> bool {
        match self {
            Error::UpdateStatus { source, .. } => is_conflict(source),
            _ => false,
        }
    }
}

/// The outcome of [`admit`]: the job's admission and, when resolved, its definition.
pub struct Admitted {
    pub admission: Admission,
    pub definition: Option<Arc<ResolvedDefinition>>,
    /// Multi-node jobs: the job's nodes, and the gang the scheduler places.
    pub nodes: Option<(NodeLayout, Gang)>,
    /// The condition reason to show while waiting or invalid.
    pub reason: Option<&'static str>,
}

impl Admitted {
    /// Multi-node jobs: the gang the scheduler places.
    pub fn gang(&self) -> Option<&Gang> {
        self.nodes.as_ref().map(|(_, gang)| gang)
    }
}

fn admitted(
    definition: Option<Arc<ResolvedDefinition>>,
    nodes: Option<(NodeLayout, Gang)>,
) -> Admitted {
    Admitted {
        admission: Admission::Admitted,
        definition,
        nodes,
        reason: None,
    }
}

fn waiting(reason: &'static str, message: String) -> Admitted {
    Admitted {
        admission: Admission::Waiting { reason: message },
        definition: None,
        nodes: None,
        reason: Some(reason),
    }
}

fn invalid(reason: &'static str, message: String) -> Admitted {
    Admitted {
        admission: Admission::Invalid { reason: message },
        definition: None,
        nodes: None,
        reason: Some(reason),
    }
}

/// Whether `job` was created once the deletion of an object it names had begun (both times are
/// the API server's, to the second; a job of the deletion's own second counts as new).
fn submitted_since_deletion(
    job: &Job,
    deletion: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> bool {
    match (deletion, job.metadata.creation_timestamp.as_ref()) {
        (Some(deleted), Some(created)) => created.0 >= deleted.0,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Validates a job's references (from the caches): its definition revision — the pinned one
/// once recorded — and its queue.
pub fn admit(job: &Job, ctx: &Context) -> Admitted {
    let caches = &ctx.caches;
    let namespace = job.namespace().unwrap_or_default();
    let pinned = job
        .status
        .as_ref()
        .and_then(|s| s.resolved_job_definition.as_ref());
    let resolved = match pinned {
        Some(p) => resolve_pinned(caches, &namespace, &p.name, p.revision),
        None => resolve(caches, &namespace, &job.spec.job_definition),
    };
    let definition = match resolved {
        Ok(d) => d,
        Err(e @ (ResolveError::InvalidReference(_) | ResolveError::Unreadable { .. })) => {
            return invalid(e.condition_reason(), e.to_string())
        }
        Err(e) => return waiting(e.condition_reason(), e.to_string()),
    };
    // A multi-node job's nodes (ranges, overrides, main node) must add up; its gang is what
    // the scheduler places.
    let nodes = if definition.spec.node_properties.is_some() {
        let layout = pods::node_layout(job, &definition.spec);
        match layout.and_then(|layout| Ok((pods::gang_of(&layout)?, layout))) {
            Ok((gang, layout)) => Some((layout, gang)),
            Err(e) => return invalid(REASON_INVALID_SPEC, e.to_string()),
        }
    } else {
        if let Err(e) = pods::job_request(job, &definition.spec) {
            return invalid(REASON_INVALID_SPEC, e.to_string());
        }
        None
    };
    // A job submitted after its definition or queue began to be deleted may not keep it alive
    // (a GitOps prune would wait for ever); jobs admitted or submitted before the deletion run
    // on (a job waiting for its queue still holds its definition).
    let first_admission = pinned.is_none();
    let definition_deleting = caches
        .job_definitions
        .get(&ObjectRef::new(&definition.name).within(&namespace))
        .is_some_and(|d| submitted_since_deletion(job, d.metadata.deletion_timestamp.as_ref()));
    if first_admission && definition_deleting {
        return invalid(
            REASON_JOB_DEFINITION_DELETING,
            format!(
                "job definition {:?} is being deleted and accepts no new jobs",
                definition.name
            ),
        );
    }
    let Some(queue) = caches.queues.get(&ObjectRef::new(&job.spec.job_queue)) else {
        return waiting(
            REASON_JOB_QUEUE_NOT_FOUND,
            format!("job queue {:?} does not exist", job.spec.job_queue),
        );
    };
    if first_admission && submitted_since_deletion(job, queue.metadata.deletion_timestamp.as_ref())
    {
        return invalid(
            REASON_JOB_QUEUE_DELETING,
            format!(
                "job queue {:?} is being deleted and accepts no new jobs",
                job.spec.job_queue
            ),
        );
    }
    // The namespace watch may lag behind the job's: judge the selector only on a namespace
    // the cache has seen (a wait, never a wrong refusal).
    let Some(ns) = caches.namespaces.get(&ObjectRef::new(&namespace)) else {
        return waiting(
            REASON_NAMESPACE_NOT_ALLOWED,
            format!("namespace {namespace:?} is not in the operator's cache yet"),
        );
    };
    // AWS Batch refuses a job without a shareIdentifier on a fair-share queue (and ignores one
    // on a FIFO queue).
    if first_admission && job.spec.share_identifier.is_none() {
        if let Some(policy) = &queue.spec.scheduling_policy_name {
            return invalid(
                REASON_SHARE_IDENTIFIER_REQUIRED,
                format!(
                    "job queue {:?} has scheduling policy {policy:?} (fair share): the job must set shareIdentifier",
                    job.spec.job_queue
                ),
            );
        }
    }
    if !namespace_allowed(&queue, ns.labels()) {
        return invalid(
            REASON_NAMESPACE_NOT_ALLOWED,
            format!(
                "job queue {:?} does not accept jobs from namespace {namespace:?} (its namespaceSelector)",
                job.spec.job_queue
            ),
        );
    }
    admitted(Some(definition), nodes)
}

/// The node layout of a finished multi-node job, from the definition revision pinned in its
/// status (None for other jobs, or when that revision is no longer in the caches).
fn finished_node_layout(ctx: &Context, job: &Job) -> Option<NodeLayout> {
    let status = job.status.as_ref()?;
    status.node_properties.as_ref()?;
    let pinned = status.resolved_job_definition.as_ref()?;
    let namespace = job.namespace().unwrap_or_default();
    let definition = resolve_pinned(&ctx.caches, &namespace, &pinned.name, pinned.revision).ok()?;
    pods::node_layout(job, &definition.spec).ok()
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn state_reason(state: JobState) -> &'static str {
    match state {
        JobState::Submitted => "Submitted",
        JobState::Pending => "Pending",
        JobState::Runnable => "Runnable",
        JobState::Starting => "Starting",
        JobState::Running => "Running",
        JobState::Succeeded => "Succeeded",
        JobState::Failed => "Failed",
    }
}

#[instrument(skip_all, fields(job = %format!("{}/{}", record.namespace().unwrap_or_default(), record.name_any())))]
async fn reconcile(record: Arc<JobRecord>, ctx: Arc<Context>) -> Result<Action, Error> {
    // The cache keeps a compact record; the reconcile acts on the whole job.
    let job = Arc::new(record.job());
    drop(record);
    measured(&ctx, CONTROLLER, reconcile_job(job, &ctx)).await
}

/// What the job controller decides on (step 1 of a reconcile): the job's admission, the view
/// barge-core's state machine takes, the condition reason while waiting or invalid, a finished
/// multi-node job's layout, and the job's pods. Reads the caches only.
struct Observed {
    admitted: Admitted,
    view: JobView,
    waiting_reason: Option<&'static str>,
    finished_layout: Option<NodeLayout>,
    pods: Vec<Arc<Pod>>,
}

fn observe(job: &Job, ctx: &Context) -> Observed {
    let namespace = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let uid = job.uid().unwrap_or_default();
    let key = JobKey::new(&namespace, &name);
    let record = translate::record_from_status(job);
    let record_state = record.state;
    let finished = record.state.is_terminal();
    let admitted = if finished {
        admitted(None, None)
    } else {
        admit(job, ctx)
    };
    // A finished multi-node job still reports its nodes as they stop (the other nodes are
    // stopped after the main node's result is recorded): its layout comes from the pinned
    // definition, which is not re-admitted.
    let finished_layout = if finished {
        finished_node_layout(ctx, job)
    } else {
        None
    };
    let mut admission = admitted.admission.clone();
    let mut waiting_reason = admitted.reason;
    let spec = match translate::core_spec(job, admitted.definition.as_deref().map(|d| &d.spec)) {
        Ok(spec) => spec,
        Err(problem) => {
            admission = Admission::Invalid { reason: problem };
            waiting_reason = Some(REASON_INVALID_SPEC);
            translate::core_spec(job, None).unwrap_or_default()
        }
    };
    let queue = ctx.caches.queues.get(&ObjectRef::new(&job.spec.job_queue));
    let dependencies = spec
        .depends_on
        .iter()
        .filter_map(|d| d.job_name.clone())
        .map(|dep| {
            let target =
                translate::dependency_target(ctx.caches.job_object(&namespace, &dep).as_ref());
            (dep, target)
        })
        .collect();
    let pods = ctx.caches.pods_of_job(&namespace, &uid);
    let pod_views = pods
        .iter()
        .filter_map(|p| {
            let node_exists = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_none_or(|n| ctx.caches.nodes.get(&ObjectRef::new(n)).is_some());
            pods::pod_view(p, node_exists)
        })
        .collect();
    let view = JobView {
        name: name.clone(),
        spec,
        record,
        admission,
        dependencies,
        pods: pod_views,
        time_limit_actions: queue
            .as_deref()
            .map(translate::time_limit_actions)
            .unwrap_or_default(),
        blocked: ctx.verdicts.get(&key, &uid),
        dependency_graph: dependency_graph_around(ctx, job, record_state),
        missing_dependency_grace_ms: duration_ms(ctx.config.missing_dependency_grace),
        all_jobs_listed: ctx.caches.all_jobs_listed(),
        finished_pod_retention_ms: ctx.config.finished_pod_retention.map(duration_ms),
        // A multi-node job's refused other-node pods (recorded under its attempt, once the
        // main pod exists) count like its refused main pod: the attempt fails at the bound.
        creation_refusal: ctx
            .node_pod_refusals
            .get(&key, &uid)
            .or_else(|| ctx.pod_refusals.get(&key, &uid)),
    };

    Observed {
        admitted,
        view,
        waiting_reason,
        finished_layout,
        pods,
    }
}

/// The job's plan and the RUNNABLE work the job controller would publish for it now (None when
/// the plan offers the scheduler nothing), computed as a reconcile does but without acting:
/// no status write, no pod, nothing published (`barge why`).
pub fn runnable_entry(job: &Job, ctx: &Context, now_ms: i64) -> (JobPlan, Option<RunnableEntry>) {
    let observed = observe(job, ctx);
    let plan = decide(&observed.view, now_ms);
    let entry = entry_of(
        &job.uid().unwrap_or_default(),
        job,
        &observed.admitted,
        &plan,
    );
    (plan, entry)
}

async fn reconcile_job(job: Arc<Job>, ctx: &Context) -> Result<Action, Error> {
    let namespace = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let uid = job.uid().unwrap_or_default();
    let key = JobKey::new(&namespace, &name);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);

    if job.metadata.deletion_timestamp.is_some() {
        gone(ctx, &key);
        for pod in ctx.caches.pods_of_job(&namespace, &uid) {
            release_once(ctx, &pods_api, &pod, false).await?;
        }
        return Ok(Action::await_change());
    }

    if cache_lags_own_write(ctx, &key, &job) {
        return Ok(Action::requeue(CACHE_LAG_RETRY));
    }

    // 1. Dereference and validate.
    let Observed {
        admitted,
        mut view,
        waiting_reason,
        finished_layout,
        pods,
    } = observe(&job, ctx);
    // A start left unwritten (status coalescing) whose pod is gone since: judged against the
    // unwritten record, so the attempt fails instead of being placed again.
    let unwritten = ctx
        .job_status_deferrals
        .pending(&key, |u| u.judges(&uid, &view).then(|| u.clone()))
        .flatten();
    if let Some(unwritten) = &unwritten {
        view.record = unwritten.record.clone();
    }

    // 2. Decide.
    let now = now_ms();
    let mut plan = decide(&view, now);
    if let Some(unwritten) = unwritten {
        // The unwritten changes are announced with the ones that follow them.
        plan.events.splice(0..0, unwritten.events);
    }

    // 3. Build the status.
    let resolved = admitted.definition.as_ref().map(|d| ResolvedJobDefinition {
        name: d.name.clone(),
        revision: d.revision,
    });
    let latest_pod = pods
        .iter()
        .max_by_key(|p| p.creation_timestamp().map(|t| t.0));
    let compute_environment =
        latest_pod.and_then(|p| p.labels().get(LABEL_COMPUTE_ENVIRONMENT).cloned());
    let attempt_count = if plan.record.array.is_some() {
        None
    } else {
        let live = view.pods.iter().map(|p| p.attempt).max().unwrap_or(0);
        let recorded = u32::try_from(plan.record.attempts.len()).unwrap_or(u32::MAX);
        i32::try_from(live.max(recorded)).ok().filter(|n| *n > 0)
    };
    let status = translate::build_status_with_nodes(
        &job,
        &plan,
        StatusInputs {
            resolved,
            compute_environment,
            attempt_count,
            waiting_reason,
            now_ms: now,
        },
        admitted
            .nodes
            .as_ref()
            .map(|(layout, _)| layout)
            .or(finished_layout.as_ref()),
    );

    // 4. Update the status (coalesced for busy array jobs).
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let changed = job.status.as_ref() != Some(&status);
    if changed {
        if let Some(delay) = coalesce_delay(ctx, &key, &job, &view.record, &plan) {
            publish(ctx, &key, &uid, &job, &admitted, &plan);
            return Ok(Action::requeue(delay));
        }
        if may_defer_status(&view.record, &plan) {
            let unwritten = UnwrittenJobStatus {
                uid: uid.clone(),
                record: plan.record.clone(),
                events: plan.events.clone(),
            };
            // An entry stays until written, or until its job is gone.
            let alive = |key: &JobKey, u: &UnwrittenJobStatus| {
                ctx.caches
                    .job(&key.namespace, &key.name)
                    .is_some_and(|j| j.meta().uid.as_deref() == Some(u.uid.as_str()))
            };
            if let Some(delay) = ctx.job_status_deferrals.wait(
                &key,
                unwritten,
                Instant::now(),
                ctx.config.status_coalesce_interval,
                alive,
            ) {
                publish(ctx, &key, &uid, &job, &admitted, &plan);
                return Ok(Action::requeue(delay));
            }
        }
        // A terminal status goes with the pod writes, before status refreshes (`throttle`).
        let priority = if status
            .status
            .is_some_and(barge_crds::job::JobStatus::is_finished)
        {
            Priority::Critical
        } else {
            Priority::Normal
        };
        let write = apply_status(
            &api,
            &*job,
            &status,
            FIELD_MANAGER_JOB_CONTROLLER,
            Precondition::ResourceVersion,
            &ctx.metrics,
        );
        match with_priority(priority, write).await {
            Ok(StatusWrite::Written { resource_version }) => {
                ctx.job_status_deferrals.written(&key);
                if let Some(version) = resource_version.and_then(|v| v.parse().ok()) {
                    ctx.job_written_versions
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key.clone(), version);
                }
            }
            Ok(StatusWrite::Unchanged) => {}
            Err(e) if is_conflict(&e) => return Ok(Action::requeue(CONFLICT_RETRY)),
            Err(e) if is_not_found(&e) => {
                gone(ctx, &key);
                return Ok(Action::await_change());
            }
            Err(source) => return Err(Error::UpdateStatus { name, source }),
        }
        if plan.record.array.is_some() {
            let mut writes = ctx
                .job_status_writes
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // A finished array writes no more coalesced status: its entry goes.
            if plan.record.state.is_terminal() {
                writes.remove(&key);
            } else {
                writes.insert(key.clone(), Instant::now());
            }
        }
        announce(ctx, &job, &plan);
    } else {
        // The written status is the job's status again: nothing waits to be written.
        ctx.job_status_deferrals.written(&key);
    }

    // The scheduler's book follows the recorded plan before any pod goes: a pod is deleted (or
    // its result finalizer released) only after the book has stopped offering its unit, so a
    // slow run of pod actions can never leave a stale offer of a finished child behind.
    publish(ctx, &key, &uid, &job, &admitted, &plan);

    // 5. Apply what the recorded plan asks for: pod actions concurrently (an array may finish
    //    hundreds of children in one reconcile), then the job's own deletion.
    let pod_actions: Vec<JobAction> = plan
        .actions
        .iter()
        .filter(|a| !matches!(a, JobAction::DeleteJob | JobAction::CreateNodePods { .. }))
        .cloned()
        .collect();
    // Continuously POD_ACTION_CONCURRENCY in flight (not in rounds that each wait for their
    // slowest write); every action is tried, the first error fails the reconcile.
    let pending: Vec<_> = pod_actions
        .iter()
        .map(|action| apply_pod_action(ctx, &pods_api, &pods, action))
        .collect();
    let outcomes: Vec<Result<(), Error>> = futures::stream::iter(pending)
        .buffer_unordered(POD_ACTION_CONCURRENCY)
        .collect()
        .await;
    outcomes.into_iter().collect::<Result<(), Error>>()?;
    // Array children's pods released for deletion go in batches.
    let disposal_in = dispose_released_pods(ctx, &key, &uid, &pods_api, &pods).await?;
    // Multi-node jobs: the other nodes' pods, once the main node runs.
    let mut retry_node_pods_at = None;
    let mut creating_node_pods = false;
    for action in &plan.actions {
        if let JobAction::CreateNodePods {
            attempt,
            main_pod_ip,
            indices,
        } = action
        {
            creating_node_pods = true;
            let start = NodeStart {
                main_node: view.spec.nodes.map(|n| n.main_node).unwrap_or_default(),
                attempt: *attempt,
                main_pod_ip,
                indices,
            };
            let definition = admitted.definition.as_deref();
            retry_node_pods_at =
                create_node_pods(ctx, &job, &pods_api, &pods, definition, start).await?;
        }
    }
    if !creating_node_pods {
        ctx.node_pod_refusals.forget(&key);
    }
    if plan.actions.contains(&JobAction::DeleteJob) {
        if let Err(source) = api.delete(&name, &DeleteParams::background()).await {
            if !is_not_found(&source) {
                return Err(Error::DeleteJob { name, source });
            }
        }
        gone(ctx, &key);
        return Ok(Action::await_change());
    }
    let dispose_at = disposal_in.map(|d| now_ms().saturating_add(duration_ms(d)));
    let requeue_at = [plan.requeue_at_ms, retry_node_pods_at, dispose_at]
        .into_iter()
        .flatten()
        .min();
    Ok(match requeue_at {
        Some(at) => Action::requeue(Duration::from_millis(
            u64::try_from(at.saturating_sub(now_ms()))
                .unwrap_or(0)
                .max(50),
        )),
        None => Action::await_change(),
    })
}

/// What [`JobAction::CreateNodePods`] asks for: the nodes `indices` of `attempt` of a
/// multi-node job whose main node (`main_node`) runs at `main_pod_ip`.
struct NodeStart<'a> {
    main_node: u32,
    attempt: u32,
    main_pod_ip: &'a str,
    indices: &'a [u32],
}

/// Creates the pods of a multi-node job's other nodes, each bound to the Kubernetes node the
/// main pod reserved for it when the gang was placed (its `batch.barge.dev/gang-nodes`
/// annotation), a few at a time. Names are deterministic: a pod created before (by a replica
/// killed half way, or seen late by the cache) answers AlreadyExists and is never twinned.
///
/// A create the API server refuses, or a pod that cannot be rendered, gets a Warning Event
/// (once per message) and is tried again after a backoff (returned: when to look again) until
/// the state machine fails the attempt at the bound (`--pod-create-give-up-seconds`, from
/// `JobView::creation_refusal`); a
/// transient error fails the reconcile (retried). One Normal Event says when the last missing
/// pods were created.
async fn create_node_pods(
    ctx: &Context,
    job: &Job,
    pods_api: &Api<Pod>,
    pods: &[Arc<Pod>],
    definition: Option<&ResolvedDefinition>,
    start: NodeStart<'_>,
) -> Result<Option<i64>, Error> {
    let key = JobKey::new(&job.namespace().unwrap_or_default(), &job.name_any());
    let uid = job.uid().unwrap_or_default();
    let now = now_ms();
    if let Some(refusal) = ctx.node_pod_refusals.get(&key, &uid) {
        if refusal.backing_off(now) {
            return Ok(Some(refusal.retry_at_ms()));
        }
    }
    // Pods this replica created moments ago that the cache does not show yet are not asked
    // for again (each would only answer AlreadyExists).
    let job_name = job.name_any();
    let recent = |index: u32| {
        let pod = naming::node_pod_name(&job_name, start.attempt, index);
        format!("{uid}/{pod}")
    };
    let missing: Vec<u32> = start
        .indices
        .iter()
        .copied()
        .filter(|&index| !ctx.created_node_pods.contains(&recent(index)))
        .collect();
    if missing.is_empty() {
        return Ok(None);
    }
    let start = NodeStart {
        indices: &missing,
        ..start
    };
    let (rendered, others) = match render_node_pods(ctx, job, pods, definition, &start) {
        Ok(rendered) => rendered,
        Err(problem) => {
            return Ok(Some(node_pods_refused(
                ctx, job, &key, &uid, &start, &problem,
            )))
        }
    };
    let concurrency = ctx.config.pod_create_concurrency.max(1);
    let outcomes: Vec<(String, Result<Pod, kube::Error>)> = futures::stream::iter(rendered)
        .map(|pod| async move {
            let name = pod.name_any();
            (name, pods_api.create(&PostParams::default(), &pod).await)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut created = 0;
    let mut refused = None;
    let mut transient = None;
    for (pod, outcome) in outcomes {
        match outcome {
            Ok(_) => {
                ctx.created_node_pods.insert(&format!("{uid}/{pod}"));
                created += 1;
            }
            // Created before: by this replica on a lagging cache, or before a restart.
            Err(e) if is_conflict(&e) => debug!(pod = %pod, "node pod exists already"),
            Err(e) => {
                ctx.metrics.pod_creations_failed.inc();
                match refusal_message(&e) {
                    Some(message) => {
                        refused = Some(format!("creating pod {pod} was refused: {message}"))
                    }
                    None => transient = Some(Error::CreateNodePod { pod, source: e }),
                }
            }
        }
    }
    if let Some(problem) = refused {
        return Ok(Some(node_pods_refused(
            ctx, job, &key, &uid, &start, &problem,
        )));
    }
    if let Some(error) = transient {
        return Err(error);
    }
    ctx.node_pod_refusals.created(&key, node_unit(&start));
    if created > 0 {
        ctx.events.publish(
            job,
            EventSpec::normal(
                REASON_NODES_STARTED,
                ACTION_CREATE_NODE_PODS,
                format!(
                    "started {} of attempt {} (main node {} at {})",
                    counted(others, "other node"),
                    start.attempt,
                    start.main_node,
                    start.main_pod_ip
                ),
            ),
        );
    }
    Ok(None)
}

/// The unit under which a job's refused node pods are recorded (the attempt).
fn node_unit(start: &NodeStart<'_>) -> Unit {
    Unit {
        attempt: start.attempt,
        array_index: None,
    }
}

/// Records that the other nodes' pods could not be created (`problem`), with a Warning Event
/// when the message is new; returns when to try again.
fn node_pods_refused(
    ctx: &Context,
    job: &Job,
    key: &JobKey,
    uid: &str,
    start: &NodeStart<'_>,
    problem: &str,
) -> i64 {
    let now = now_ms();
    let give_up_ms = duration_ms(ctx.config.pod_create_give_up);
    warn!(job = %key, %problem, "creating the other nodes' pods failed");
    if ctx
        .node_pod_refusals
        .refused(key, uid, node_unit(start), problem, now, give_up_ms)
    {
        ctx.events.publish(
            job,
            EventSpec::warning(
                POD_CREATION_REFUSED,
                ACTION_CREATE_NODE_PODS,
                format!(
                    "the other nodes of attempt {} cannot be started: {problem} (retrying with backoff; the attempt fails after {} s)",
                    start.attempt,
                    give_up_ms / 1000
                ),
            ),
        );
    }
    ctx.node_pod_refusals
        .get(key, uid)
        .map_or(now, |r| r.retry_at_ms())
}

/// The pods of the nodes `start.indices`, rendered as the scheduler renders the main node's
/// (the same definition revision, queue and compute environment), with the main pod's IP, each
/// bound to the node reserved for it; and how many other nodes the gang has. Err: why they
/// cannot be.
fn render_node_pods(
    ctx: &Context,
    job: &Job,
    pods: &[Arc<Pod>],
    definition: Option<&ResolvedDefinition>,
    start: &NodeStart<'_>,
) -> Result<(Vec<Pod>, usize), String> {
    let main_name = naming::node_pod_name(&job.name_any(), start.attempt, start.main_node);
    let main = pods
        .iter()
        .find(|p| p.name_any() == main_name)
        .ok_or_else(|| format!("the main node's pod {main_name} is not in the cache"))?;
    let nodes = pods::gang_nodes_of(main).ok_or_else(|| {
        format!("the main node's pod {main_name} names no reserved nodes ({ANNOTATION_GANG_NODES})")
    })?;
    let ce_name = main
        .labels()
        .get(LABEL_COMPUTE_ENVIRONMENT)
        .ok_or_else(|| {
            format!("the main node's pod {main_name} has no {LABEL_COMPUTE_ENVIRONMENT} label")
        })?;
    let ce = ctx
        .caches
        .compute_environments
        .get(&ObjectRef::new(ce_name))
        .ok_or_else(|| format!("compute environment {ce_name} does not exist"))?;
    let definition =
        definition.ok_or_else(|| "the job's definition is not resolved".to_string())?;
    let mut rendered = Vec::with_capacity(start.indices.len());
    for &index in start.indices {
        let node = nodes.get(index as usize).ok_or_else(|| {
            format!(
                "node {index} has no reserved Kubernetes node (the gang has {} nodes)",
                nodes.len()
            )
        })?;
        let pod = pods::render_pod(&AttemptPod {
            job,
            definition_name: &definition.name,
            definition_revision: definition.revision,
            definition: &definition.spec,
            queue: &job.spec.job_queue,
            compute_environment: &ce,
            node_name: Some(node),
            attempt: start.attempt,
            array_index: None,
            array_size: None,
            node: Some(NodePod {
                index,
                main_pod_ip: Some(start.main_pod_ip),
                gang_nodes: None,
            }),
        })
        .map_err(|e| format!("the pod of node {index} cannot be rendered: {e}"))?;
        rendered.push(pod);
    }
    Ok((rendered, nodes.len().saturating_sub(1)))
}

/// Deletes a pod or releases its result finalizer (and, for array children, deletes it as
/// `--array-pod-retention` says).
async fn apply_pod_action(
    ctx: &Context,
    pods_api: &Api<Pod>,
    pods: &[Arc<Pod>],
    action: &JobAction,
) -> Result<(), Error> {
    let delete = |pod: String, params: DeleteParams| async move {
        match pods_api.delete(&pod, &params).await {
            Err(source) if !is_not_found(&source) => Err(Error::DeletePod { pod, source }),
            _ => Ok(()),
        }
    };
    match action {
        JobAction::DeletePod {
            name: pod,
            grace_seconds,
            reason,
        } => {
            debug!(pod = %pod, ?reason, "deleting pod");
            let params = DeleteParams {
                grace_period_seconds: u32::try_from(*grace_seconds).ok(),
                ..DeleteParams::default()
            };
            delete(pod.clone(), params).await?;
            if *reason == DeleteReason::ForceDelete {
                if let Some(p) = pods.iter().find(|p| p.name_any() == *pod) {
                    release_once(ctx, pods_api, p, false).await?;
                }
            }
        }
        JobAction::StopPod { name: pod, reason } => {
            let Some(p) = pods.iter().find(|p| p.name_any() == *pod) else {
                return Ok(());
            };
            stop_pod(ctx, pods_api, p, *reason).await?;
        }
        JobAction::ReleasePod { name: pod } => {
            let Some(p) = pods.iter().find(|p| p.name_any() == *pod) else {
                return Ok(());
            };
            let disposable = should_delete_released(ctx.config.array_pod_retention, p);
            let held = p.finalizers().iter().any(|f| f == FINALIZER_ATTEMPT_RESULT);
            if held || !disposable {
                // A disposable pod is labelled in the same patch and goes with the next
                // batch (`dispose_released_pods`).
                release_once(ctx, pods_api, p, disposable).await?;
            } else if p.labels().get(LABEL_DISPOSABLE).map(String::as_str) != Some("true") {
                // Released without the label (by the clean-up of a vanished job's pods, or
                // an earlier version): it goes on its own.
                delete(pod.clone(), DeleteParams::default()).await?;
            }
        }
        // Applied by `reconcile_job` itself (the job's deletion last, the nodes' pods after
        // the pod actions).
        JobAction::DeleteJob | JobAction::CreateNodePods { .. } => {}
    }
    Ok(())
}

/// When to delete the pods an array's reconciles released for deletion
/// ([`LABEL_DISPOSABLE`]), in one batch.
#[derive(Debug, PartialEq, Eq)]
enum Disposal {
    /// No pod waits.
    Nothing,
    /// Now.
    Now,
    /// After this long (the last batch went less than the interval ago).
    After(Duration),
}

/// Pure: `waiting` released pods wait; the last batch of the job went at `last` (None: none
/// went, or none was needed since). At most one batch per `interval`, so that children that
/// finish together go together; a single pod waits at most `interval`.
fn disposal_due(
    waiting: usize,
    last: Option<Instant>,
    now: Instant,
    interval: Duration,
) -> Disposal {
    if waiting == 0 {
        return Disposal::Nothing;
    }
    match last.map(|at| now.saturating_duration_since(at)) {
        Some(since) if since < interval => Disposal::After(interval - since),
        _ => Disposal::Now,
    }
}

/// Deletes, in one DELETE of the collection, the job's pods whose result finalizer was released
/// with the [`LABEL_DISPOSABLE`] label (array children that `--array-pod-retention` lets go),
/// when [`disposal_due`] says so; returns when to look again, if pods wait. The API server
/// deletes each matching pod as if one by one; the label is set only by the patch that
/// releases the finalizer, so no pod whose result is not recorded can match.
async fn dispose_released_pods(
    ctx: &Context,
    key: &JobKey,
    uid: &str,
    pods_api: &Api<Pod>,
    pods: &[Arc<Pod>],
) -> Result<Option<Duration>, Error> {
    let waiting = pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.labels().get(LABEL_DISPOSABLE).map(String::as_str) == Some("true")
        })
        .count();
    let now = Instant::now();
    let last = {
        let mut last = ctx.pod_disposals.lock().unwrap_or_else(|p| p.into_inner());
        if waiting == 0 {
            last.remove(key);
        }
        last.get(key).copied()
    };
    match disposal_due(waiting, last, now, DISPOSAL_INTERVAL) {
        Disposal::Nothing => Ok(None),
        Disposal::After(wait) => Ok(Some(wait)),
        Disposal::Now => {
            let selector = format!("{LABEL_JOB_UID}={uid},{LABEL_DISPOSABLE}=true");
            debug!(job = %key, %selector, waiting, "deleting released pods");
            let params = ListParams::default().labels(&selector);
            match delete_pods_unread(pods_api, &params).await {
                Err(source) if !is_not_found(&source) => {
                    return Err(Error::DisposePods { selector, source })
                }
                _ => {}
            }
            ctx.pod_disposals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.clone(), now);
            // The pods' deletions wake the job again; nothing to look at before.
            Ok(None)
        }
    }
}

/// `deletecollection` of the pods `params` selects, with the answer read and dropped, never
/// decoded. The API server answers with every deleted pod in full (managed fields included):
/// `Api::delete_collection` decodes that list at once only for the caller to drop it, which
/// made a batch of an array's released pods the operator's peak memory (42 of the 92 MB heap
/// peak for an array of 10,000). The watch tells the caches about the deletions.
async fn delete_pods_unread(pods_api: &Api<Pod>, params: &ListParams) -> Result<(), kube::Error> {
    let request = kube::core::Request::new(pods_api.resource_url())
        .delete_collection(&DeleteParams::default(), params)
        .map_err(kube::Error::BuildRequest)?;
    let answer = pods_api
        .clone()
        .into_client()
        .request_stream(request)
        .await?;
    futures::io::copy(answer, &mut futures::io::sink())
        .await
        .map_err(kube::Error::ReadEvents)?;
    Ok(())
}

/// Stops a running pod's containers without deleting the pod (its record and log stay): sets
/// an `activeDeadlineSeconds` that has passed already, so that the kubelet stops it now and
/// marks it Failed (`DeadlineExceeded`). Once per pod (the cache may lag behind the patch); a
/// pod the kubelet never started has no log to keep and is deleted.
async fn stop_pod(
    ctx: &Context,
    pods_api: &Api<Pod>,
    pod: &Pod,
    reason: DeleteReason,
) -> Result<(), Error> {
    let uid = pod.uid().unwrap_or_default();
    if ctx.stopped_pods.contains(&uid) {
        return Ok(());
    }
    let name = pod.name_any();
    let Some(patch) = pods::stop_now_patch(pod, now_ms()) else {
        debug!(pod = %name, ?reason, "deleting a pod the kubelet never started");
        return match pods_api.delete(&name, &DeleteParams::default()).await {
            Err(source) if !is_not_found(&source) => Err(Error::DeletePod { pod: name, source }),
            _ => Ok(()),
        };
    };
    debug!(pod = %name, ?reason, %patch, "stopping pod at its deadline");
    match pods_api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            ctx.stopped_pods.insert(&uid);
            Ok(())
        }
        // Gone, or a smaller deadline is set already (the API refuses to raise one).
        Err(e) if is_not_found(&e) || is_invalid(&e) => Ok(()),
        Err(source) => Err(Error::StopPod { pod: name, source }),
    }
}

fn is_invalid(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 422)
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The `dependsOn` graph around a job that waits for its dependencies, from the cache (for
/// barge-core's cycle detection); empty once the job is past waiting.
fn dependency_graph_around(ctx: &Context, job: &Job, state: JobState) -> DependencyGraph {
    if !matches!(state, JobState::Submitted | JobState::Pending) || job.spec.depends_on.is_empty() {
        return DependencyGraph::new();
    }
    let namespace = job.namespace().unwrap_or_default();
    // The record's decoded fields are enough: no job of the graph is decoded in full.
    dependency_graph(&job.name_any(), |name| {
        let found = ctx.caches.job(&namespace, name)?;
        let names = found.depends_on().iter().map(|d| d.to_string()).collect();
        Some((translate::job_state(found.state()), names))
    })
}

/// A resourceVersion as a number (etcd's are; an API server whose are not skips the check).
fn numeric_version(job: &impl Resource) -> Option<u64> {
    job.meta().resource_version.as_deref()?.parse().ok()
}

/// Whether a job's watch event (`seen`, its resourceVersion) is the echo of this replica's own
/// last status write of it (`written`): the very object that write returned.
fn own_echo(written: Option<u64>, seen: Option<u64>) -> bool {
    matches!((written, seen), (Some(w), Some(s)) if w == s)
}

/// Whether the cached job predates this replica's last status write of it (once the cache has
/// caught up, the write is forgotten, so the map holds only writes in flight).
fn cache_lags_own_write(ctx: &Context, key: &JobKey, job: &Job) -> bool {
    let mut written = ctx
        .job_written_versions
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let Some(&w) = written.get(key) else {
        return false;
    };
    match numeric_version(job) {
        Some(seen) if seen < w => true,
        _ => {
            written.remove(key);
            false
        }
    }
}

/// For an array job whose status was written less than the coalescing interval ago and whose
/// own state does not change: how long to wait before writing again (see
/// [`array_write_wait`]; `written`: the record its status holds).
fn coalesce_delay(
    ctx: &Context,
    key: &JobKey,
    job: &Job,
    written: &barge_core::job::JobRecord,
    plan: &JobPlan,
) -> Option<Duration> {
    if plan.record.array.is_none() || !plan.events.is_empty() || job.status.is_none() {
        return None;
    }
    let writes = ctx
        .job_status_writes
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let last = writes.get(key)?;
    array_write_wait(
        last.elapsed(),
        ctx.config.status_coalesce_interval,
        unwritten_results(written, plan),
    )
}

/// Finished children of an array whose results wait for its next status write at which that
/// write goes at once, whatever the coalescing interval says. Until the write records them,
/// their pods keep their result finalizer and hold their capacity (see the usage cache), so
/// with only the interval a busy array's children/s were capped near (capacity / interval):
/// 400 vCPUs and 1 s gave ~400 children/s however fast the rest was. With this bound the
/// write comes as soon as that many results wait: an array finishing 2,000 children a second
/// writes its status ~30 times a second (0.016 writes per child), one finishing fewer than
/// that many per interval still writes once per interval.
const ARRAY_RESULTS_PER_WRITE: u64 = 64;

/// Children whose results `plan` records and the written record (`written`) does not.
fn unwritten_results(written: &barge_core::job::JobRecord, plan: &JobPlan) -> u64 {
    let finished = |r: &barge_core::job::JobRecord| {
        r.array
            .as_ref()
            .map_or(0, |a| a.succeeded.len() + a.failed.len())
    };
    finished(&plan.record).saturating_sub(finished(written))
}

/// How much longer a busy array's status write may wait, `since_last` after its last write,
/// with `unwritten` results waiting for it: none once the coalescing `interval` has passed or
/// [`ARRAY_RESULTS_PER_WRITE`] results wait.
fn array_write_wait(since_last: Duration, interval: Duration, unwritten: u64) -> Option<Duration> {
    if unwritten >= ARRAY_RESULTS_PER_WRITE {
        return None;
    }
    (since_last < interval).then(|| interval - since_last)
}

/// Whether the status write of `plan` may wait for the coalescing window (`written`: the
/// record the job's status holds): a single or multi-node job already written as RUNNABLE,
/// STARTING or RUNNING that stays in one of those states (RUNNABLE → STARTING → RUNNING, a new
/// scheduler verdict...), with no attempt to record and nothing to do once written. Terminal
/// states, retries (a new attempt record), the first write (which pins the definition
/// revision) and every plan with pod actions are written at once; array parents have their
/// own coalescing.
///
/// Why this is safe: the pod of an attempt is named after it and kept by its result
/// finalizer until the status records its result, so a replica that restarts before a
/// deferred write finds the pod and derives the same state and attempt from it (never a
/// second pod for the attempt); the written record only lags by at most one window.
fn may_defer_status(written: &barge_core::job::JobRecord, plan: &JobPlan) -> bool {
    let in_flight = |state: JobState| {
        matches!(
            state,
            JobState::Runnable | JobState::Starting | JobState::Running
        )
    };
    written.array.is_none()
        && plan.record.array.is_none()
        && in_flight(written.state)
        && in_flight(plan.record.state)
        && plan.record.attempts.len() == written.attempts.len()
        && plan.actions.is_empty()
}

/// Events (as `--job-events` asks) and metrics (always) for the state changes of a written plan.
fn announce(ctx: &Context, job: &Job, plan: &JobPlan) {
    for change in &plan.events {
        if let Some(type_) = ctx.config.job_events.announce(change.from, change.to) {
            let note = state_change_note(change, plan.record.attempts.last());
            let spec = match type_ {
                EventType::Warning => {
                    EventSpec::warning(state_reason(change.to), ACTION_STATE_CHANGE, note)
                }
                EventType::Normal => {
                    EventSpec::normal(state_reason(change.to), ACTION_STATE_CHANGE, note)
                }
            };
            ctx.events.publish(job, spec);
        }
        ctx.metrics
            .transitions
            .get_or_create(&QueueStateLabels {
                queue: job.spec.job_queue.clone(),
                state: change.to.to_string(),
            })
            .inc();
    }
}

/// The note of a state change's Event: the change and its reason; a retry (back to RUNNABLE
/// from a started attempt) names the attempt that failed (`last_attempt`, just recorded) and why.
fn state_change_note(
    change: &barge_core::job::StateChange,
    last_attempt: Option<&barge_core::job::AttemptRecord>,
) -> String {
    let retried = change.to == JobState::Runnable
        && matches!(change.from, JobState::Starting | JobState::Running);
    match (&change.reason, last_attempt) {
        (Some(reason), _) => format!("{} → {}: {reason}", change.from, change.to),
        (None, Some(attempt)) if retried => format!(
            "{} → {}: attempt {} failed ({}), retrying",
            change.from, change.to, attempt.attempt, attempt.status_reason
        ),
        (None, _) => format!("{} → {}", change.from, change.to),
    }
}

/// Publishes (or withdraws) the job's RUNNABLE work for the scheduler, waking it on change.
/// A multi-node job publishes its gang, with the main node's request and constraints as the
/// entry's own.
fn publish(ctx: &Context, key: &JobKey, uid: &str, job: &Job, admitted: &Admitted, plan: &JobPlan) {
    match entry_of(uid, job, admitted, plan) {
        Some(entry) => {
            if ctx.runnable.publish(key.clone(), entry) {
                ctx.scheduler.wake();
            }
        }
        None => withdraw(ctx, key),
    }
}

/// The job's RUNNABLE work as the scheduler's book holds it (None: nothing to place).
fn entry_of(uid: &str, job: &Job, admitted: &Admitted, plan: &JobPlan) -> Option<RunnableEntry> {
    let (
        RunnableWork::Single { .. } | RunnableWork::Array { .. } | RunnableWork::Gang { .. },
        Some(definition),
    ) = (&plan.runnable, &admitted.definition)
    else {
        return None;
    };
    let main_node = admitted
        .gang()
        .map(|gang| gang.members.get(gang.main_node as usize));
    let (request, constraints) = match main_node {
        Some(Some(main)) => (main.request, main.constraints.clone()),
        // A gang without its main node: nothing the scheduler could place.
        Some(None) => return None,
        None => {
            let Ok(request) = pods::job_request(job, &definition.spec) else {
                return None;
            };
            let constraints = Constraints {
                instance_type: job
                    .spec
                    .container_overrides
                    .as_ref()
                    .and_then(|o| o.instance_type.clone()),
            };
            (request, constraints)
        }
    };
    Some(RunnableEntry {
        uid: uid.into(),
        submitted_at_ms: plan.record.created_at_ms,
        submission_order: translate::submission_order(job),
        work: plan.runnable.clone(),
        // The book shares it with the equal shapes of other jobs (`RunnableBook::publish`).
        shape: Arc::new(EntryShape {
            queue: crate::cache::intern(&job.spec.job_queue),
            request,
            constraints,
            definition: definition.clone(),
            array_size: plan.record.array.as_ref().map(|a| a.size),
            gang: admitted.gang().cloned(),
            share: job
                .spec
                .share_identifier
                .as_deref()
                .map(crate::cache::intern),
            priority: scheduling_priority(job, &definition.spec),
        }),
    })
}

/// The job's scheduling priority within its share: `schedulingPriorityOverride`, else the
/// definition's `schedulingPriority`, else 0.
pub fn scheduling_priority(job: &Job, definition: &barge_crds::JobDefinitionSpec) -> i32 {
    job.spec
        .scheduling_priority_override
        .or(definition.scheduling_priority)
        .unwrap_or(0)
}

/// The job is gone (deleted, or being deleted): [`withdraw`] and forget its status-write times.
fn gone(ctx: &Context, key: &JobKey) {
    withdraw(ctx, key);
    ctx.job_status_writes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(key);
}

fn withdraw(ctx: &Context, key: &JobKey) {
    ctx.runnable.withdraw(key);
    ctx.pod_refusals.forget(key);
    ctx.verdicts.clear(key);
}

/// [`release_pod`] (`disposable`: labelled for deletion in a batch), unless this replica
/// released the pod moments ago (the cache lags behind the patch). Returns whether it
/// released it now.
async fn release_once(
    ctx: &Context,
    api: &Api<Pod>,
    pod: &Pod,
    disposable: bool,
) -> Result<bool, Error> {
    let uid = pod.uid().unwrap_or_default();
    if ctx.released_pods.contains(&uid) {
        return Ok(false);
    }
    release_pod(api, &pod.name_any(), pod.finalizers(), disposable)
        .await
        .map_err(|pods::ReleaseError { pod, source }| Error::ReleasePod { pod, source })?;
    ctx.released_pods.insert(&uid);
    Ok(true)
}

/// Whether an array child's pod goes once its result is recorded (`--array-pod-retention`).
fn should_delete_released(retention: ArrayPodRetention, pod: &Pod) -> bool {
    if !pod.labels().contains_key(LABEL_ARRAY_INDEX) {
        return false;
    }
    let succeeded = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded");
    match retention {
        ArrayPodRetention::All => false,
        ArrayPodRetention::None => true,
        ArrayPodRetention::Failed => succeeded,
    }
}

/// What a reconcile asks for next: kube-runtime's `Action`, whose delay kube-runtime does not
/// expose — the job controller's requeues go through its [`gate`](super::gate) instead of
/// kube-runtime's scheduler (see [`run`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Action {
    requeue_after: Option<Duration>,
}

impl Action {
    /// Reconcile again after `after` unless something triggers a reconcile earlier.
    const fn requeue(after: Duration) -> Self {
        Self {
            requeue_after: Some(after),
        }
    }

    /// Reconcile again when something triggers it.
    const fn await_change() -> Self {
        Self {
            requeue_after: None,
        }
    }
}

/// The delay before a job whose reconcile failed with `error` is reconciled again.
fn error_policy(error: &Error) -> Action {
    if error.is_waiting() {
        Action::requeue(CONFLICT_RETRY)
    } else {
        Action::requeue(TRANSIENT_RETRY)
    }
}

/// How many requests the job controller's [`gate`](super::gate) hands kube-runtime that have
/// not started yet, per reconcile that may run at once: enough that the runner always finds
/// the next one waiting, few enough that a burst of jobs waits in the gate (which gives its
/// memory back) rather than in kube-runtime's scheduler (which does not).
const GATE_PER_CONCURRENT_RECONCILE: usize = 2;

/// The job controller's key for a job: its namespace and name (without the `extra` of a
/// reference made from the object, which kube-runtime ignores when comparing).
fn job_ref(namespace: Option<&str>, name: &str) -> ObjectRef<JobRecord> {
    let reference = ObjectRef::new(name);
    match namespace {
        Some(namespace) => reference.within(namespace),
        None => reference,
    }
}

/// The requests a watched kind's changes make, through `mapper`, as kube-runtime's
/// `watches_shared_stream` makes them (reason: the related object updated; one reason shared
/// by the batch).
fn related<O, I>(
    feed: impl Stream<Item = Arc<O>> + Send + 'static,
    mapper: impl Fn(Arc<O>) -> I + Send + 'static,
) -> BoxStream<'static, (Vec<ObjectRef<JobRecord>>, Arc<ReconcileReason>)>
where
    O: Resource + Send + Sync + 'static,
    O::DynamicType: Default,
    I: IntoIterator<Item = ObjectRef<JobRecord>>,
{
    feed.filter_map(move |object| {
        let refs: Vec<_> = mapper(object.clone()).into_iter().collect();
        let batch = (!refs.is_empty()).then(|| {
            let obj_ref = Box::new(ObjectRef::from_obj(&*object).erase());
            (
                refs,
                Arc::new(ReconcileReason::RelatedObjectUpdated { obj_ref }),
            )
        });
        futures::future::ready(batch)
    })
    .boxed()
}

/// What one run of the job controller's runner yields (as kube-runtime's applier would).
type RunOutcome = Result<
    (ObjectRef<JobRecord>, controller::Action),
    controller::Error<Error, std::convert::Infallible>,
>;

/// Runs the controller until `shutdown`.
///
/// Every trigger — the job feed (without this replica's own status echoes), the watched
/// kinds' mappers and `ctx.triggers.jobs` — goes through a [`gate`](super::gate) that hands
/// the job controller's [`runner`](super::runner) at most [`GATE_PER_CONCURRENT_RECONCILE`] ×
/// `--reconcile-concurrency` requests not started yet, with the reason kube-runtime's
/// `Controller` would give them. The runner does what kube-runtime's applier did (which needs
/// kube's reflector store; the jobs live in Barge's own [`JobStore`](crate::cache::JobStore)):
/// nothing starts before the job store is ready, at most `--reconcile-concurrency` reconciles
/// run at once (0: no limit), never two of one job, each spawned as a cancel-on-drop task in a
/// `reconciling object` span, a job gone from the store ends its request as "object not
/// found", and the shutdown cuts the input and lets the reconciles in flight finish. Requeues —
/// a reconcile's [`Action::requeue`] and the error policy's — go to the gate's timer (with the
/// reasons kube-runtime gives them), reported before the reconcile's slot is freed.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) {
    let caches = ctx.caches.clone();
    let (for_deps, for_defs, for_revisions, for_queues) = (
        caches.clone(),
        caches.clone(),
        caches.clone(),
        caches.clone(),
    );
    let queue_filter = super::ChangeFilter::default();
    // The watch event of this replica's own status write carries nothing its reconcile did not
    // know already (that reconcile went on from the written status): no reconcile for it.
    let echoes = ctx.clone();
    let updated = Arc::new(ReconcileReason::ObjectUpdated);
    let jobs = caches
        .jobs_feed
        .subscribe()
        .filter(move |job| {
            let key = JobKey::new(&job.namespace().unwrap_or_default(), &job.name_any());
            let seen = numeric_version(&**job);
            let written = crate::context::forget_caught_up_write(
                &mut echoes
                    .job_written_versions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
                &key,
                seen,
            );
            futures::future::ready(!own_echo(written, seen))
        })
        .map(move |job| {
            let reference = job_ref(job.meta().namespace.as_deref(), &job.name_any());
            (vec![reference], updated.clone())
        })
        .boxed();
    let mut triggers = vec![
        jobs,
        // A pod's change concerns its job.
        related(caches.pods_feed.subscribe(), |pod: Arc<CachedPod>| {
            let namespace = pod.namespace()?;
            let job = pod.labels().get(LABEL_JOB_NAME)?;
            Some(ObjectRef::<JobRecord>::new(job).within(&namespace))
        }),
        // A job's change concerns the jobs that depend on it.
        related(caches.jobs_feed.subscribe(), move |job: Arc<JobRecord>| {
            for_deps.dependents_of(&job.namespace().unwrap_or_default(), &job.name_any())
        }),
        // A new definition revision concerns the unfinished jobs that name it.
        related(
            caches.job_definitions_feed.subscribe(),
            move |jd: Arc<barge_crds::JobDefinition>| {
                for_defs.unfinished_jobs_of_definition(
                    &jd.namespace().unwrap_or_default(),
                    &jd.name_any(),
                )
            },
        ),
        // So does the ControllerRevision holding it, which comes through another watch than
        // the definition's status naming it, in either order.
        related(
            caches.revisions_feed.subscribe(),
            move |revision: Arc<ControllerRevision>| {
                for_revisions.unfinished_jobs_of_revision(&revision)
            },
        ),
        // A queue's appearance, state or rules concern its unfinished jobs.
        related(
            caches.queues_feed.subscribe(),
            move |queue: Arc<JobQueue>| {
                let name = queue.name_any();
                let facts = (
                    queue.metadata.deletion_timestamp.is_some(),
                    queue.spec.state == QueueState::Enabled,
                    super::digest(&queue.spec.job_state_time_limit_actions),
                    super::digest(&queue.spec.namespace_selector),
                );
                match queue_filter.update(&name, facts) {
                    None => Vec::new(),
                    Some(_) => namespaced_refs::<JobRecord>(
                        for_queues
                            .indexes
                            .active_jobs_by_queue
                            .get(&Arc::from(name)),
                    ),
                }
            },
        ),
    ];
    if let Some(requests) = ctx.triggers.jobs.stream() {
        let requested = Arc::new(ReconcileReason::Unknown);
        triggers.push(
            requests
                .map(move |reference| (vec![reference], requested.clone()))
                .boxed(),
        );
    }
    let concurrency = match ctx.config.reconcile_concurrency {
        0 => crate::context::DEFAULT_RECONCILE_CONCURRENCY,
        n => n,
    };
    let (gate, requests) = super::gate::gated(
        futures::stream::select_all(triggers),
        GATE_PER_CONCURRENT_RECONCILE * usize::from(concurrency),
    );
    let requests = requests.take_until(shutdown.wait()).boxed();
    let retry = Arc::new(ReconcileReason::ReconcilerRequestedRetry);
    let error_retry = Arc::new(ReconcileReason::ErrorPolicyRequestedRetry);
    let store = caches.jobs.clone();
    let ready = {
        let store = store.clone();
        async move { store.wait_until_ready().await }
    };
    let limit = usize::from(ctx.config.reconcile_concurrency);
    let start = move |obj_ref: &ObjectRef<JobRecord>,
                      reason: Arc<ReconcileReason>|
          -> BoxFuture<'static, RunOutcome> {
        let obj_ref = obj_ref.clone();
        // The runner took the request: the gate's slot is free (and a requeue pending for the
        // job is superseded by this run, found or not).
        gate.taken(&obj_ref);
        let found = store.get(
            obj_ref.namespace.as_deref().unwrap_or_default(),
            &obj_ref.name,
        );
        let Some(record) = found else {
            let gone = controller::Error::ObjectNotFound(Box::new(obj_ref.erase()));
            return futures::future::ready(Err(gone)).boxed();
        };
        let span = tracing::info_span!(
            "reconciling object",
            "object.ref" = %obj_ref,
            object.reason = %reason
        );
        let (requeues, retry, failed, error_retry) = (
            gate.clone(),
            retry.clone(),
            gate.clone(),
            error_retry.clone(),
        );
        let key = obj_ref.clone();
        let ctx = ctx.clone();
        let reconciled = async move {
            let action = reconcile(record, ctx).await?;
            // Reported before the runner frees the job's slot: a trigger held meanwhile
            // starts a reconcile that supersedes it.
            if let Some(after) = action.requeue_after {
                requeues.requeue(key, after, retry);
            }
            Ok::<_, Error>(controller::Action::await_change())
        };
        let task = span.in_scope(|| {
            CancelableJoinHandle::spawn(
                reconciled.in_current_span(),
                &tokio::runtime::Handle::current(),
            )
        });
        async move {
            match task.await {
                Ok(action) => Ok((obj_ref, action)),
                Err(error) => {
                    if let Some(after) = error_policy(&error).requeue_after {
                        failed.requeue(obj_ref.clone(), after, error_retry);
                    }
                    Err(controller::Error::ReconcilerFailed(
                        error,
                        Box::new(obj_ref.erase()),
                    ))
                }
            }
        }
        .instrument(span)
        .boxed()
    };
    let stream = super::runner::Runner::new(requests, limit, ready, start);
    super::drain_classified(CONTROLLER, stream, ReconcileError::is_waiting).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan that changed `record` and asks for `actions`, nothing else.
    fn changed_plan(record: barge_core::job::JobRecord, actions: Vec<JobAction>) -> JobPlan {
        JobPlan {
            record,
            changed: true,
            events: Vec::new(),
            actions,
            requeue_at_ms: None,
            runnable: RunnableWork::Nothing,
            summary: None,
            children: None,
            nodes: None,
            waiting: None,
            blocked: None,
        }
    }
    use k8s_openapi::api::core::v1::PodStatus;
    use kube::api::ObjectMeta;

    fn pod(labels: &[(&str, &str)], phase: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_busy_arrays_status_waits_for_its_interval_or_enough_results() {
        let interval = Duration::from_secs(1);
        let after = Duration::from_millis(300);
        assert_eq!(
            array_write_wait(after, interval, 0),
            Some(Duration::from_millis(700))
        );
        assert_eq!(
            array_write_wait(after, interval, ARRAY_RESULTS_PER_WRITE - 1),
            Some(Duration::from_millis(700))
        );
        assert_eq!(
            array_write_wait(after, interval, ARRAY_RESULTS_PER_WRITE),
            None
        );
        assert_eq!(array_write_wait(interval, interval, 1), None);
    }

    #[test]
    fn unwritten_results_are_the_finished_children_the_written_record_lacks() {
        use barge_core::job::{ArrayRecord, JobRecord};
        let array = |succeeded: &[u32], failed: &[u32]| {
            let mut a = ArrayRecord::new(10);
            for &i in succeeded {
                a.succeeded.insert(i);
            }
            for &i in failed {
                a.failed.insert(i);
            }
            JobRecord {
                array: Some(a),
                ..JobRecord::submitted(0)
            }
        };
        let written = array(&[0, 1], &[]);
        let plan = changed_plan(array(&[0, 1, 2, 3], &[7]), Vec::new());
        assert_eq!(unwritten_results(&written, &plan), 3);
        assert_eq!(unwritten_results(&plan.record, &plan), 0);
        assert_eq!(unwritten_results(&array(&[], &[]), &plan), 5);
    }

    #[test]
    fn released_pods_go_in_batches_at_most_one_per_interval() {
        let interval = Duration::from_secs(1);
        let now = Instant::now();
        assert_eq!(disposal_due(0, None, now, interval), Disposal::Nothing);
        assert_eq!(disposal_due(0, Some(now), now, interval), Disposal::Nothing);
        // The first batch of a job goes at once.
        assert_eq!(disposal_due(3, None, now, interval), Disposal::Now);
        // The next waits out the interval since the last one, however many pods wait.
        let last = now - Duration::from_millis(300);
        assert_eq!(
            disposal_due(5000, Some(last), now, interval),
            Disposal::After(Duration::from_millis(700))
        );
        assert_eq!(
            disposal_due(1, Some(now - interval), now, interval),
            Disposal::Now
        );
    }

    #[test]
    fn released_pods_of_array_children_go_by_the_retention_setting() {
        let child_ok = pod(&[(LABEL_ARRAY_INDEX, "3")], "Succeeded");
        let child_failed = pod(&[(LABEL_ARRAY_INDEX, "4")], "Failed");
        let single = pod(&[], "Succeeded");
        assert!(should_delete_released(ArrayPodRetention::Failed, &child_ok));
        assert!(!should_delete_released(
            ArrayPodRetention::Failed,
            &child_failed
        ));
        assert!(should_delete_released(
            ArrayPodRetention::None,
            &child_failed
        ));
        assert!(!should_delete_released(ArrayPodRetention::All, &child_ok));
        assert!(
            !should_delete_released(ArrayPodRetention::None, &single),
            "a single job keeps its pod (its logs) until the job goes"
        );
    }

    #[test]
    fn only_non_terminal_changes_without_results_or_actions_wait() {
        use barge_core::job::{AttemptRecord, JobRecord};
        let record = |state| JobRecord {
            state,
            ..JobRecord::submitted(0)
        };
        let plan = changed_plan;
        let attempt = AttemptRecord {
            attempt: 1,
            array_index: None,
            pod_name: "j-1".into(),
            node_name: None,
            exit_code: Some(1),
            reason: None,
            started_at_ms: None,
            stopped_at_ms: 0,
            status_reason: "failed".into(),
        };
        use JobState::*;
        for (from, to) in [
            (Runnable, Starting),
            (Runnable, Running),
            (Starting, Running),
            (Runnable, Runnable),
        ] {
            assert!(
                may_defer_status(&record(from), &plan(record(to), vec![])),
                "{from} → {to} waits"
            );
        }
        for (from, to) in [
            (Submitted, Runnable),
            (Pending, Runnable),
            (Running, Succeeded),
            (Running, Failed),
            (Starting, Succeeded),
        ] {
            assert!(
                !may_defer_status(&record(from), &plan(record(to), vec![])),
                "{from} → {to} is written at once"
            );
        }
        // A retry records the failed attempt: written at once (and its pod released after).
        let mut retried = record(Runnable);
        retried.attempts.push(attempt);
        assert!(!may_defer_status(&record(Running), &plan(retried, vec![])));
        // Pod actions follow the write: no waiting.
        let stop = JobAction::StopPod {
            name: "j-1".into(),
            reason: DeleteReason::Timeout,
        };
        assert!(!may_defer_status(
            &record(Running),
            &plan(record(Running), vec![stop])
        ));
        // Array parents coalesce by their own rule.
        let mut parent = record(Running);
        parent.array = Some(Default::default());
        assert!(!may_defer_status(&parent, &plan(parent.clone(), vec![])));
    }

    #[test]
    fn only_the_echo_of_the_own_last_write_is_ignored() {
        assert!(own_echo(Some(42), Some(42)));
        assert!(
            !own_echo(Some(42), Some(43)),
            "a newer change by someone else"
        );
        assert!(!own_echo(Some(42), Some(41)), "an older object");
        assert!(!own_echo(None, Some(42)), "no write of ours in flight");
        assert!(!own_echo(Some(42), None), "a version that is not a number");
    }

    #[test]
    fn a_retry_event_names_the_failed_attempt() {
        use barge_core::job::{AttemptRecord, StateChange};
        let change = |from, to, reason: Option<&str>| StateChange {
            from,
            to,
            reason: reason.map(str::to_string),
        };
        let attempt = AttemptRecord {
            attempt: 2,
            array_index: None,
            pod_name: "j-2".into(),
            node_name: None,
            exit_code: Some(3),
            reason: None,
            started_at_ms: None,
            stopped_at_ms: 0,
            status_reason: "Essential container in task exited".into(),
        };
        assert_eq!(
            state_change_note(
                &change(JobState::Running, JobState::Runnable, None),
                Some(&attempt)
            ),
            "RUNNING → RUNNABLE: attempt 2 failed (Essential container in task exited), retrying"
        );
        assert_eq!(
            state_change_note(
                &change(JobState::Submitted, JobState::Runnable, None),
                Some(&attempt)
            ),
            "SUBMITTED → RUNNABLE",
            "not a retry"
        );
        assert_eq!(
            state_change_note(
                &change(JobState::Running, JobState::Failed, Some("out of attempts")),
                Some(&attempt)
            ),
            "RUNNING → FAILED: out of attempts"
        );
    }
}
