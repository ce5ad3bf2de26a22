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
//! Events: one Kubernetes Event per state change of the job (array parents only, never one per
//! child).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use tracing::{debug, instrument};

use barge_core::deps::{dependency_graph, DependencyGraph};
use barge_core::job::{
    reconcile as decide, Admission, DeleteReason, JobAction, JobPlan, JobView, RunnableWork,
};
use barge_core::scheduler::{Constraints, JobKey};
use barge_core::state::JobState;
use barge_crds::common::State as QueueState;
use barge_crds::consts::{
    FIELD_MANAGER_JOB_CONTROLLER, LABEL_ARRAY_INDEX, LABEL_COMPUTE_ENVIRONMENT, LABEL_JOB_NAME,
    REASON_INVALID_SPEC, REASON_JOB_QUEUE_NOT_FOUND, REASON_NAMESPACE_NOT_ALLOWED,
};
use barge_crds::job::ResolvedJobDefinition;
use barge_crds::{Job, JobQueue};

use super::{controller_config, measured, ReconcileError, TRANSIENT_RETRY};
use crate::cache::namespaced_refs;
use crate::context::{ArrayPodRetention, Context, RunnableEntry};
use crate::definition_revisions::{resolve, resolve_pinned, ResolveError, ResolvedDefinition};
use crate::events::EventSpec;
use crate::metrics::QueueStateLabels;
use crate::pods::{self, release_pod};
use crate::queue_access::namespace_allowed;
use crate::shutdown::Shutdown;
use crate::status::{apply_status, is_conflict, is_not_found, Precondition, StatusWrite};
use crate::translate::{self, StatusInputs};

const CONTROLLER: &str = "job";
/// Event action of job state changes.
pub const ACTION_STATE_CHANGE: &str = "StateChange";
/// Condition reason: a new job names a job queue that is being deleted.
pub const REASON_JOB_QUEUE_DELETING: &str = "JobQueueDeleting";
/// Condition reason: a new job names a job definition that is being deleted.
pub const REASON_JOB_DEFINITION_DELETING: &str = "JobDefinitionDeleting";
/// Condition reason: the job's definition is a multi-node one, which this version cannot run.
pub const REASON_NOT_SUPPORTED: &str = "NotSupported";
/// How soon a write refused for a stale resourceVersion is retried (the watch brings the newer
/// object first, usually).
const CONFLICT_RETRY: Duration = Duration::from_millis(200);
/// How soon a reconcile whose cache has not caught up with its own status write looks again
/// (the watch event of that write usually triggers it first).
const CACHE_LAG_RETRY: Duration = Duration::from_millis(50);
/// Pod deletions and finalizer releases of one reconcile in flight at once.
const POD_ACTION_CONCURRENCY: usize = 16;

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
    /// The condition reason to show while waiting or invalid.
    pub reason: Option<&'static str>,
}

fn admitted(definition: Option<Arc<ResolvedDefinition>>) -> Admitted {
    Admitted {
        admission: Admission::Admitted,
        definition,
        reason: None,
    }
}

fn waiting(reason: &'static str, message: String) -> Admitted {
    Admitted {
        admission: Admission::Waiting { reason: message },
        definition: None,
        reason: Some(reason),
    }
}

fn invalid(reason: &'static str, message: String) -> Admitted {
    Admitted {
        admission: Admission::Invalid { reason: message },
        definition: None,
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
        Ok(d) => Arc::new(d),
        Err(e @ (ResolveError::InvalidReference(_) | ResolveError::Unreadable { .. })) => {
            return invalid(e.condition_reason(), e.to_string())
        }
        Err(e) => return waiting(e.condition_reason(), e.to_string()),
    };
    if definition.spec.node_properties.is_some() {
        return invalid(
            REASON_NOT_SUPPORTED,
            format!(
                "job definition {}:{} is a multi-node parallel definition; this version of Barge does not run multi-node jobs",
                definition.name, definition.revision
            ),
        );
    }
    if let Err(e) = pods::job_request(job, &definition.spec) {
        return invalid(REASON_INVALID_SPEC, e.to_string());
    }
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
    if !namespace_allowed(&queue, ns.labels()) {
        return invalid(
            REASON_NAMESPACE_NOT_ALLOWED,
            format!(
                "job queue {:?} does not accept jobs from namespace {namespace:?} (its namespaceSelector)",
                job.spec.job_queue
            ),
        );
    }
    admitted(Some(definition))
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

#[instrument(skip_all, fields(job = %format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any())))]
async fn reconcile(job: Arc<Job>, ctx: Arc<Context>) -> Result<Action, Error> {
    measured(&ctx, CONTROLLER, reconcile_job(job, &ctx)).await
}

async fn reconcile_job(job: Arc<Job>, ctx: &Context) -> Result<Action, Error> {
    let namespace = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let uid = job.uid().unwrap_or_default();
    let key = JobKey::new(&namespace, &name);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);

    if job.metadata.deletion_timestamp.is_some() {
        withdraw(ctx, &key);
        for pod in ctx.caches.pods_of_job(&namespace, &uid) {
            release_once(ctx, &pods_api, &pod).await?;
        }
        return Ok(Action::await_change());
    }

    if cache_lags_own_write(ctx, &key, &job) {
        return Ok(Action::requeue(CACHE_LAG_RETRY));
    }

    // 1. Dereference and validate.
    let record = translate::record_from_status(&job);
    let record_state = record.state;
    let finished = record.state.is_terminal();
    let admitted = if finished {
        admitted(None)
    } else {
        admit(&job, ctx)
    };
    let mut admission = admitted.admission.clone();
    let mut waiting_reason = admitted.reason;
    let spec = match translate::core_spec(&job, admitted.definition.as_deref().map(|d| &d.spec)) {
        Ok(spec) => spec,
        Err(problem) => {
            admission = Admission::Invalid { reason: problem };
            waiting_reason = Some(REASON_INVALID_SPEC);
            translate::core_spec(&job, None).unwrap_or_default()
        }
    };
    let queue = ctx.caches.queues.get(&ObjectRef::new(&job.spec.job_queue));
    let dependencies = spec
        .depends_on
        .iter()
        .filter_map(|d| d.job_name.clone())
        .map(|dep| {
            let target = translate::dependency_target(ctx.caches.job(&namespace, &dep).as_deref());
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
        dependency_graph: dependency_graph_around(ctx, &job, record_state),
        missing_dependency_grace_ms: duration_ms(ctx.config.missing_dependency_grace),
        creation_refusal: ctx.pod_refusals.get(&key, &uid),
    };

    // 2. Decide.
    let now = now_ms();
    let plan = decide(&view, now);

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
    let status = translate::build_status(
        &job,
        &plan,
        StatusInputs {
            resolved,
            compute_environment,
            attempt_count,
            waiting_reason,
            now_ms: now,
        },
    );

    // 4. Update the status (coalesced for busy array jobs).
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let changed = job.status.as_ref() != Some(&status);
    if changed {
        if let Some(delay) = coalesce_delay(ctx, &key, &job, &plan) {
            publish(ctx, &key, &uid, &job, &admitted, &plan);
            return Ok(Action::requeue(delay));
        }
        match apply_status(
            &api,
            &*job,
            &status,
            FIELD_MANAGER_JOB_CONTROLLER,
            Precondition::ResourceVersion,
            &ctx.metrics,
        )
        .await
        {
            Ok(StatusWrite::Written(written)) => {
                if let Some(version) = numeric_version(&written) {
                    ctx.job_written_versions
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key.clone(), version);
                }
            }
            Ok(StatusWrite::Unchanged) => {}
            Err(e) if is_conflict(&e) => return Ok(Action::requeue(CONFLICT_RETRY)),
            Err(e) if is_not_found(&e) => {
                withdraw(ctx, &key);
                return Ok(Action::await_change());
            }
            Err(source) => return Err(Error::UpdateStatus { name, source }),
        }
        if plan.record.array.is_some() {
            ctx.job_status_writes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.clone(), Instant::now());
        }
        announce(ctx, &job, &plan);
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
        .filter(|a| !matches!(a, JobAction::DeleteJob))
        .cloned()
        .collect();
    for chunk in pod_actions.chunks(POD_ACTION_CONCURRENCY) {
        let mut pending = Vec::with_capacity(chunk.len());
        for action in chunk {
            pending.push(apply_pod_action(ctx, &pods_api, &pods, action));
        }
        for outcome in futures::future::join_all(pending).await {
            outcome?;
        }
    }
    if plan.actions.contains(&JobAction::DeleteJob) {
        if let Err(source) = api.delete(&name, &DeleteParams::background()).await {
            if !is_not_found(&source) {
                return Err(Error::DeleteJob { name, source });
            }
        }
        withdraw(ctx, &key);
        return Ok(Action::await_change());
    }
    Ok(match plan.requeue_at_ms {
        Some(at) => Action::requeue(Duration::from_millis(
            u64::try_from(at.saturating_sub(now_ms()))
                .unwrap_or(0)
                .max(50),
        )),
        None => Action::await_change(),
    })
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
                    release_once(ctx, pods_api, p).await?;
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
            if release_once(ctx, pods_api, p).await?
                && should_delete_released(ctx.config.array_pod_retention, p)
            {
                delete(pod.clone(), DeleteParams::default()).await?;
            }
        }
        JobAction::DeleteJob => {}
    }
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
    dependency_graph(&job.name_any(), |name| {
        let found = ctx.caches.job(&namespace, name)?;
        let names = found
            .spec
            .depends_on
            .iter()
            .filter_map(|d| d.job_name.clone())
            .collect();
        Some((translate::record_from_status(&found).state, names))
    })
}

/// A resourceVersion as a number (etcd's are; an API server whose are not skips the check).
fn numeric_version(job: &Job) -> Option<u64> {
    job.metadata.resource_version.as_deref()?.parse().ok()
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
/// own state does not change: how long to wait before writing again.
fn coalesce_delay(ctx: &Context, key: &JobKey, job: &Job, plan: &JobPlan) -> Option<Duration> {
    if plan.record.array.is_none() || !plan.events.is_empty() || job.status.is_none() {
        return None;
    }
    let writes = ctx
        .job_status_writes
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let last = writes.get(key)?;
    let interval = ctx.config.status_coalesce_interval;
    let elapsed = last.elapsed();
    (elapsed < interval).then(|| interval - elapsed)
}

/// Events and metrics for the state changes of a written plan.
fn announce(ctx: &Context, job: &Job, plan: &JobPlan) {
    for change in &plan.events {
        let note = match &change.reason {
            Some(reason) => format!("{} → {}: {reason}", change.from, change.to),
            None => format!("{} → {}", change.from, change.to),
        };
        let spec = if change.to == JobState::Failed {
            EventSpec::warning(state_reason(change.to), ACTION_STATE_CHANGE, note)
        } else {
            EventSpec::normal(state_reason(change.to), ACTION_STATE_CHANGE, note)
        };
        ctx.events.publish(job, spec);
        ctx.metrics
            .transitions
            .get_or_create(&QueueStateLabels {
                queue: job.spec.job_queue.clone(),
                state: change.to.to_string(),
            })
            .inc();
    }
}

/// Publishes (or withdraws) the job's RUNNABLE work for the scheduler, waking it on change.
fn publish(ctx: &Context, key: &JobKey, uid: &str, job: &Job, admitted: &Admitted, plan: &JobPlan) {
    let (RunnableWork::Single { .. } | RunnableWork::Array { .. }, Some(definition)) =
        (&plan.runnable, &admitted.definition)
    else {
        withdraw(ctx, key);
        return;
    };
    let Ok(request) = pods::job_request(job, &definition.spec) else {
        withdraw(ctx, key);
        return;
    };
    let entry = RunnableEntry {
        uid: uid.to_string(),
        queue: job.spec.job_queue.clone(),
        submitted_at_ms: plan.record.created_at_ms,
        submission_order: translate::submission_order(job),
        request,
        constraints: Constraints {
            instance_type: job
                .spec
                .container_overrides
                .as_ref()
                .and_then(|o| o.instance_type.clone()),
        },
        work: plan.runnable.clone(),
        definition: definition.clone(),
        array_size: plan.record.array.as_ref().map(|a| a.size),
    };
    if ctx.runnable.publish(key.clone(), entry) {
        ctx.scheduler.wake();
    }
}

fn withdraw(ctx: &Context, key: &JobKey) {
    ctx.runnable.withdraw(key);
    ctx.pod_refusals.forget(key);
    ctx.verdicts.clear(key);
}

/// [`release_pod`], unless this replica released the pod moments ago (the cache lags behind
/// the patch). Returns whether it released it now.
async fn release_once(ctx: &Context, api: &Api<Pod>, pod: &Pod) -> Result<bool, Error> {
    let uid = pod.uid().unwrap_or_default();
    if ctx.released_pods.contains(&uid) {
        return Ok(false);
    }
    release_pod(api, &pod.name_any(), pod.finalizers())
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

fn error_policy(_: Arc<Job>, error: &Error, _: Arc<Context>) -> Action {
    if error.is_waiting() {
        Action::requeue(CONFLICT_RETRY)
    } else {
        Action::requeue(TRANSIENT_RETRY)
    }
}

/// Runs the controller until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) {
    let caches = ctx.caches.clone();
    let (for_deps, for_defs, for_queues) = (caches.clone(), caches.clone(), caches.clone());
    let queue_filter = super::ChangeFilter::default();
    let mut controller =
        Controller::for_shared_stream(caches.jobs_feed.subscribe(), caches.jobs.clone())
            // A pod's change concerns its job.
            .watches_shared_stream(caches.pods_feed.subscribe(), |pod: Arc<Pod>| {
                let namespace = pod.namespace()?;
                let job = pod.labels().get(LABEL_JOB_NAME)?;
                Some(ObjectRef::<Job>::new(job).within(&namespace))
            })
            // A job's change concerns the jobs that depend on it.
            .watches_shared_stream(caches.jobs_feed.subscribe(), move |job: Arc<Job>| {
                for_deps.dependents_of(&job.namespace().unwrap_or_default(), &job.name_any())
            })
            // A new definition revision concerns the unfinished jobs that name it.
            .watches_shared_stream(
                caches.job_definitions_feed.subscribe(),
                move |jd: Arc<barge_crds::JobDefinition>| {
                    let namespace = jd.namespace().unwrap_or_default();
                    namespaced_refs::<Job>(
                        for_defs
                            .indexes
                            .active_jobs_by_definition
                            .get(&(namespace, jd.name_any())),
                    )
                },
            )
            // A queue's appearance, state or rules concern its unfinished jobs.
            .watches_shared_stream(
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
                        Some(_) => namespaced_refs::<Job>(
                            for_queues.indexes.active_jobs_by_queue.get(&name),
                        ),
                    }
                },
            )
            .with_config(controller_config(&ctx))
            .graceful_shutdown_on(shutdown.wait());
    if let Some(requests) = ctx.triggers.jobs.stream() {
        controller = controller.reconcile_on(requests);
    }
    let stream = controller.run(reconcile, error_policy, ctx).boxed();
    super::drain_classified(CONTROLLER, stream, ReconcileError::is_waiting).await;
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
