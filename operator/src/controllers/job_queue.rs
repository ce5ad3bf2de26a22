//! The JobQueue controller: validates a queue's references, reports VALID/INVALID with a
//! reason, counts its jobs per state, and keeps the "in use" finalizer while unfinished jobs
//! use it.
//!
//! Pipeline per queue:
//! 1. dereference: its compute environments and scheduling policy from the caches, its job
//!    counts from the (queue, state) index — never a scan of all jobs;
//! 2. validate (pure, [`validate`]): every compute environment exists and is VALID (not being
//!    deleted), the scheduling policy exists and is Ready, the namespace selector parses; a
//!    valid queue none of whose compute environments has a Ready node stays VALID but is not
//!    Ready (`NoReadyNodes`): it cannot run work now;
//! 3. build the status (pure, [`build_status`]): `status`, `statusReason`, `jobCounts`, the
//!    Ready condition, `observedGeneration`; and the `barge_jobs{queue,state}` gauges;
//! 4. update_status (skipped when unchanged).
//!
//! Triggers: the queue itself, its compute environments and policy (through the CE→queues and
//! policy→queues indexes), and its jobs — throttled to one reconcile per queue per
//! `--status-coalesce-ms`, with a periodic requeue while the queue has unfinished jobs so the
//! last change is never lost (kube's debounce would postpone a busy queue forever).
//!
//! The job controller's check of `namespaceSelector` is
//! [`namespace_allowed`](crate::queue_access::namespace_allowed), one layer down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::Selector;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use crate::cache::JobRecord;
use barge_crds::compute_environment::CeStatus;
use barge_crds::consts::{
    CONDITION_READY, FIELD_MANAGER_JOB_QUEUE_CONTROLLER, FINALIZER_IN_USE,
    REASON_COMPUTE_ENVIRONMENT_NOT_FOUND, REASON_INVALID_SPEC, REASON_NO_READY_NODES,
    REASON_SCHEDULING_POLICY_NOT_FOUND, REASON_VALID,
};
use barge_crds::job::{JobStatus, JobStatusCounts};
use barge_crds::job_queue::JqStatus;
use barge_crds::{ComputeEnvironment, JobQueue, JobQueueStatus, SchedulingPolicy};

use super::{
    controller_config, join_names, measured, ACTION_RECONCILE, REASON_IN_USE, REASON_NOT_READY,
    TRANSIENT_RETRY,
};
use crate::context::Context;
use crate::events::EventSpec;
use crate::metrics::QueueStateLabels;
use crate::shutdown::Shutdown;
use crate::status::{
    apply_status, find_condition, merge_conditions, ready_and_stalled, DesiredCondition,
    Precondition, CONDITION_TRUE,
};

const CONTROLLER: &str = "job-queue";
/// Event reason: the queue became INVALID (or its reason changed).
pub const EVENT_INVALID: &str = "InvalidJobQueue";
/// `statusReason` of a VALID queue with a compute environment that can run work (AWS Batch's
/// wording).
pub const STATUS_REASON_HEALTHY: &str = "JobQueue Healthy";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing the status of job queue {queue}: {source}")]
    UpdateStatus { queue: String, source: kube::Error },
    #[error("job queue {queue} is still used by {jobs} unfinished job(s); it is deleted once they finish")]
    InUse { queue: String, jobs: usize },
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<Error>>),
}

impl super::ReconcileError for Error {
    fn is_waiting(&self) -> bool {
        match self {
            Error::InUse { .. } => true,
            Error::Finalizer(err) => super::finalizer_error_is_waiting(err),
            _ => false,
        }
    }
}

/// A compute environment as the queue's validation sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvironmentState {
    Missing,
    Deleting,
    /// Exists; its `status.status`, `statusReason`, and whether its Ready condition is True
    /// (VALID with at least one Ready node).
    Reported {
        status: Option<CeStatus>,
        reason: Option<String>,
        ready: bool,
    },
}

/// A scheduling policy as the queue's validation sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyState {
    Missing,
    /// Exists; whether its Ready condition is True, and its message.
    Reported {
        ready: bool,
        message: String,
    },
}

/// The verdict on a queue's configuration and readiness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueVerdict {
    /// `status: VALID` (the configuration is usable).
    pub valid: bool,
    /// The Ready condition: valid, and some compute environment can run work now.
    pub ready: bool,
    /// CamelCase condition reason.
    pub reason: &'static str,
    pub message: String,
}

/// Validates a queue against what it references (pure). `environments` follows
/// `computeEnvironmentOrder`.
pub fn validate(
    environments: &[(String, EnvironmentState)],
    policy: Option<(&str, PolicyState)>,
    namespace_selector: Option<&LabelSelector>,
) -> QueueVerdict {
    let invalid = |reason, message: String| QueueVerdict {
        valid: false,
        ready: false,
        reason,
        message,
    };
    let missing: Vec<&str> = environments
        .iter()
        .filter(|(_, s)| *s == EnvironmentState::Missing)
        .map(|(n, _)| n.as_str())
        .collect();
    if !missing.is_empty() {
        let noun = if missing.len() == 1 {
            "compute environment"
        } else {
            "compute environments"
        };
        let verb = if missing.len() == 1 { "does" } else { "do" };
        return invalid(
            REASON_COMPUTE_ENVIRONMENT_NOT_FOUND,
            format!("{noun} {} {verb} not exist", join_names(&missing)),
        );
    }
    let mut problems = Vec::new();
    for (name, state) in environments {
        match state {
            EnvironmentState::Deleting => {
                problems.push(format!("compute environment {name} is being deleted"))
            }
            EnvironmentState::Reported {
                status: Some(CeStatus::Valid | CeStatus::Updating),
                ..
            } => {}
            EnvironmentState::Reported {
                status: Some(CeStatus::Invalid),
                reason,
                ..
            } => problems.push(format!(
                "compute environment {name} is INVALID: {}",
                reason.as_deref().unwrap_or("no reason given")
            )),
            EnvironmentState::Reported { status, .. } => {
                let shown = status.map(|s| {
                    serde_json::to_value(s)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                });
                problems.push(format!(
                    "compute environment {name} is not VALID yet ({})",
                    shown.unwrap_or_else(|| "no status".into())
                ))
            }
            EnvironmentState::Missing => {}
        }
    }
    if !problems.is_empty() {
        return invalid(REASON_NOT_READY, problems.join("; "));
    }
    match policy {
        Some((name, PolicyState::Missing)) => {
            return invalid(
                REASON_SCHEDULING_POLICY_NOT_FOUND,
                format!("scheduling policy {name} does not exist"),
            )
        }
        Some((
            name,
            PolicyState::Reported {
                ready: false,
                message,
            },
        )) => {
            return invalid(
                REASON_NOT_READY,
                format!("scheduling policy {name} is not valid: {message}"),
            )
        }
        _ => {}
    }
    if let Some(selector) = namespace_selector {
        if let Err(err) = Selector::try_from(selector.clone()) {
            return invalid(
                REASON_INVALID_SPEC,
                format!("namespaceSelector is invalid: {err}"),
            );
        }
    }
    if !environments.iter().any(|(_, state)| {
        matches!(
            state,
            EnvironmentState::Reported {
                status: Some(CeStatus::Valid | CeStatus::Updating),
                ready: true,
                ..
            }
        )
    }) {
        let names: Vec<&str> = environments.iter().map(|(n, _)| n.as_str()).collect();
        return QueueVerdict {
            valid: true,
            ready: false,
            reason: REASON_NO_READY_NODES,
            message: format!(
                "no compute environment of the queue ({}) has a Ready node: it cannot run jobs now",
                names.join(", ")
            ),
        };
    }
    QueueVerdict {
        valid: true,
        ready: true,
        reason: REASON_VALID,
        message: STATUS_REASON_HEALTHY.to_string(),
    }
}

/// The status a queue should have (pure). `deleting_with_jobs`: the queue is being deleted and
/// this many unfinished jobs still use it.
pub fn build_status(
    queue: &JobQueue,
    verdict: &QueueVerdict,
    counts: JobStatusCounts,
    deleting_with_jobs: Option<usize>,
    now: Timestamp,
) -> JobQueueStatus {
    let generation = queue.metadata.generation;
    let existing = queue
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let ready = match deleting_with_jobs {
        Some(jobs) => DesiredCondition::new(
            CONDITION_READY,
            false,
            REASON_IN_USE,
            format!("being deleted; waiting for {jobs} unfinished job(s)"),
        ),
        None => DesiredCondition::new(
            CONDITION_READY,
            verdict.valid && verdict.ready,
            verdict.reason,
            verdict.message.clone(),
        ),
    };
    JobQueueStatus {
        status: Some(if verdict.valid {
            JqStatus::Valid
        } else {
            JqStatus::Invalid
        }),
        status_reason: Some(verdict.message.clone()),
        job_counts: Some(counts),
        conditions: merge_conditions(existing, &ready_and_stalled(ready), generation, now),
        observed_generation: generation,
        // The scheduler's to write (at a bounded rate, by JSON merge patch): never sent in
        // this controller's apply, so neither writer erases the other's fields.
        fair_share: None,
        front_of_queue: None,
    }
}

/// `queue` as this controller compares its status: without the fields the scheduler writes
/// (`fairShare`, `frontOfQueue`), which [`build_status`] never sets — otherwise every queue with
/// a policy or RUNNABLE work would look changed and be written on every reconcile.
pub fn without_scheduler_fields(queue: &JobQueue) -> std::borrow::Cow<'_, JobQueue> {
    match &queue.status {
        Some(s) if s.fair_share.is_some() || s.front_of_queue.is_some() => {
            let mut owned = queue.clone();
            if let Some(s) = owned.status.as_mut() {
                s.fair_share = None;
                s.front_of_queue = None;
            }
            std::borrow::Cow::Owned(owned)
        }
        _ => std::borrow::Cow::Borrowed(queue),
    }
}

fn dereference_environments(queue: &JobQueue, ctx: &Context) -> Vec<(String, EnvironmentState)> {
    queue
        .spec
        .ordered_compute_environments()
        .into_iter()
        .map(|name| {
            let state = match ctx
                .caches
                .compute_environments
                .get(&ObjectRef::<ComputeEnvironment>::new(name))
            {
                None => EnvironmentState::Missing,
                Some(ce) if ce.metadata.deletion_timestamp.is_some() => EnvironmentState::Deleting,
                Some(ce) => EnvironmentState::Reported {
                    status: ce.status.as_ref().and_then(|s| s.status),
                    reason: ce.status.as_ref().and_then(|s| s.status_reason.clone()),
                    ready: ce
                        .status
                        .as_ref()
                        .and_then(|s| find_condition(&s.conditions, CONDITION_READY))
                        .is_some_and(|c| c.status == CONDITION_TRUE),
                },
            };
            (name.to_string(), state)
        })
        .collect()
}

fn dereference_policy<'a>(queue: &'a JobQueue, ctx: &Context) -> Option<(&'a str, PolicyState)> {
    let name = queue.spec.scheduling_policy_name.as_deref()?;
    let state = match ctx
        .caches
        .scheduling_policies
        .get(&ObjectRef::<SchedulingPolicy>::new(name))
    {
        None => PolicyState::Missing,
        Some(policy) => {
            let conditions = policy
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default();
            match find_condition(conditions, CONDITION_READY) {
                // Not evaluated yet: its controller will report, and that reconciles this queue.
                None => PolicyState::Reported {
                    ready: true,
                    message: String::new(),
                },
                Some(c) => PolicyState::Reported {
                    ready: c.status == CONDITION_TRUE,
                    message: c.message.clone(),
                },
            }
        }
    };
    Some((name, state))
}

fn record_metrics(ctx: &Context, queue: &str, counts: &JobStatusCounts) {
    for state in JobStatus::ALL {
        ctx.metrics
            .jobs
            .get_or_create(&QueueStateLabels {
                queue: queue.to_string(),
                state: state.as_str().to_string(),
            })
            .set(i64::from(counts.get(state)));
    }
}

fn forget_metrics(ctx: &Context, queue: &str) {
    for state in JobStatus::ALL {
        ctx.metrics.jobs.remove(&QueueStateLabels {
            queue: queue.to_string(),
            state: state.as_str().to_string(),
        });
    }
}

#[tracing::instrument(name = "reconcile", skip_all, fields(job_queue = %queue.name_any()))]
async fn reconcile(queue: Arc<JobQueue>, ctx: Arc<Context>) -> Result<Action, Error> {
    measured(&ctx, CONTROLLER, async {
        let api: Api<JobQueue> = Api::all(ctx.client.clone());
        finalizer(&api, FINALIZER_IN_USE, queue, |event| async {
            match event {
                FinalizerEvent::Apply(queue) => apply(&queue, &ctx, None).await,
                FinalizerEvent::Cleanup(queue) => {
                    let name = queue.name_any();
                    let jobs = ctx
                        .caches
                        .indexes
                        .active_jobs_by_queue
                        .count(&Arc::from(name.as_str()));
                    if jobs == 0 {
                        forget_metrics(&ctx, &name);
                        return Ok(Action::await_change());
                    }
                    apply(&queue, &ctx, Some(jobs)).await?;
                    Err(Error::InUse { queue: name, jobs })
                }
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))
    })
    .await
}

async fn apply(
    queue: &JobQueue,
    ctx: &Context,
    deleting_with_jobs: Option<usize>,
) -> Result<Action, Error> {
    let name = queue.name_any();
    let environments = dereference_environments(queue, ctx);
    let policy = dereference_policy(queue, ctx);
    let verdict = validate(
        &environments,
        policy,
        queue.spec.namespace_selector.as_ref(),
    );
    let counts = ctx.caches.queue_job_counts(&name);
    record_metrics(ctx, &name, &counts);
    let active = ctx.caches.queue_in_use(&name);
    let status = build_status(
        queue,
        &verdict,
        counts,
        deleting_with_jobs,
        Timestamp::now(),
    );
    let api: Api<JobQueue> = Api::all(ctx.client.clone());
    let before = queue.status.as_ref().and_then(|s| s.status);
    let before_reason = queue.status.as_ref().and_then(|s| s.status_reason.clone());
    apply_status(
        &api,
        &*without_scheduler_fields(queue),
        &status,
        FIELD_MANAGER_JOB_QUEUE_CONTROLLER,
        Precondition::None,
        &ctx.metrics,
    )
    .await
    .map_err(|source| Error::UpdateStatus {
        queue: name.clone(),
        source,
    })?;
    if before != status.status {
        // A queue that becomes usable (or stops being usable) changes what the scheduler may do.
        ctx.scheduler.wake();
    }
    if !verdict.valid && (before != status.status || before_reason != status.status_reason) {
        ctx.events.publish(
            queue,
            EventSpec::warning(EVENT_INVALID, ACTION_RECONCILE, verdict.message.clone()),
        );
    }
    // While jobs move, keep the counts fresh even if their events were throttled.
    Ok(if active {
        Action::requeue(
            ctx.config
                .status_coalesce_interval
                .max(Duration::from_millis(200)),
        )
    } else {
        Action::await_change()
    })
}

fn error_policy(_: Arc<JobQueue>, error: &Error, _: Arc<Context>) -> Action {
    use super::ReconcileError;
    Action::requeue(if error.is_waiting() {
        super::WAIT_RETRY
    } else {
        TRANSIENT_RETRY
    })
}

/// Lets through at most one trigger per key per interval.
pub struct Throttle {
    interval: Duration,
    last: Mutex<HashMap<String, Instant>>,
}

impl Throttle {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a trigger for `key` at `now` passes.
    pub fn pass(&self, key: &str, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match last.get(key) {
            Some(at) if now.duration_since(*at) < self.interval => false,
            _ => {
                last.insert(key.to_string(), now);
                true
            }
        }
    }
}

/// Runs the controller until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) {
    let caches = ctx.caches.clone();
    let (by_ce, by_policy) = (caches.clone(), caches.clone());
    let throttle = Throttle::new(ctx.config.status_coalesce_interval);
    let ce_filter = super::ChangeFilter::default();
    let policy_filter = super::ChangeFilter::default();
    let mut controller =
        Controller::for_shared_stream(caches.queues_feed.subscribe(), caches.queues.clone())
            // Queues care whether their CEs exist and are VALID, not about node counts or
            // allocated vCPUs: CE status writes that change neither trigger nothing.
            .watches_shared_stream(
                caches.compute_environments_feed.subscribe(),
                move |ce: Arc<ComputeEnvironment>| {
                    let name = ce.name_any();
                    let present = by_ce
                        .compute_environments
                        .get(&ObjectRef::from_obj(&*ce))
                        .is_some();
                    let status = ce.status.as_ref();
                    let facts = (
                        present,
                        ce.metadata.deletion_timestamp.is_some(),
                        status.and_then(|s| s.status),
                        status.and_then(|s| s.status_reason.clone()),
                        status
                            .and_then(|s| find_condition(&s.conditions, CONDITION_READY))
                            .map(|c| c.status.clone()),
                    );
                    match ce_filter.update(&name, facts) {
                        None => Vec::new(),
                        Some(_) => by_ce
                            .queues_of_compute_environment(&name)
                            .iter()
                            .map(|q| ObjectRef::from_obj(&**q))
                            .collect::<Vec<_>>(),
                    }
                },
            )
            .watches_shared_stream(
                caches.scheduling_policies_feed.subscribe(),
                move |sp: Arc<SchedulingPolicy>| {
                    let name = sp.name_any();
                    let present = by_policy
                        .scheduling_policies
                        .get(&ObjectRef::from_obj(&*sp))
                        .is_some();
                    let ready = sp
                        .status
                        .as_ref()
                        .and_then(|s| find_condition(&s.conditions, CONDITION_READY))
                        .map(|c| (c.status.clone(), c.message.clone()));
                    match policy_filter.update(&name, (present, ready)) {
                        None => Vec::new(),
                        Some(_) => by_policy
                            .queues_of_scheduling_policy(&name)
                            .iter()
                            .map(|q| ObjectRef::from_obj(&**q))
                            .collect::<Vec<_>>(),
                    }
                },
            )
            .watches_shared_stream(caches.jobs_feed.subscribe(), move |job: Arc<JobRecord>| {
                let queue = &**job.queue();
                throttle
                    .pass(queue, Instant::now())
                    .then(|| ObjectRef::<JobQueue>::new(queue))
            })
            .with_config(controller_config(&ctx))
            .graceful_shutdown_on(shutdown.wait());
    if let Some(requests) = ctx.triggers.job_queues.stream() {
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
    use crate::queue_access::namespace_allowed;
    use barge_crds::job_queue::{ComputeEnvironmentOrder, JobQueueSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use std::collections::BTreeMap;

    fn reported(status: CeStatus) -> EnvironmentState {
        EnvironmentState::Reported {
            status: Some(status),
            reason: Some("bad instance type".into()),
            ready: status == CeStatus::Valid,
        }
    }

    fn envs(states: &[(&str, EnvironmentState)]) -> Vec<(String, EnvironmentState)> {
        states
            .iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect()
    }

    #[test]
    fn a_queue_over_valid_environments_is_healthy() {
        let v = validate(
            &envs(&[
                ("a", reported(CeStatus::Valid)),
                ("b", reported(CeStatus::Valid)),
            ]),
            None,
            None,
        );
        assert_eq!(
            v,
            QueueVerdict {
                valid: true,
                ready: true,
                reason: REASON_VALID,
                message: STATUS_REASON_HEALTHY.into()
            }
        );
    }

    #[test]
    fn a_valid_queue_without_a_ready_node_is_not_ready() {
        let no_nodes = EnvironmentState::Reported {
            status: Some(CeStatus::Valid),
            reason: Some("ComputeEnvironment has no Ready node".into()),
            ready: false,
        };
        let v = validate(
            &envs(&[("a", no_nodes.clone()), ("b", no_nodes.clone())]),
            None,
            None,
        );
        assert_eq!(
            (v.valid, v.ready, v.reason),
            (true, false, REASON_NO_READY_NODES)
        );
        assert_eq!(
            v.message,
            "no compute environment of the queue (a, b) has a Ready node: it cannot run jobs now"
        );
        let status = build_status(
            &queue(None),
            &v,
            JobStatusCounts::default(),
            None,
            Timestamp::from_second(5).expect("ts"),
        );
        assert_eq!(
            status.status,
            Some(JqStatus::Valid),
            "the configuration is fine"
        );
        assert_eq!(status.status_reason.as_deref(), Some(v.message.as_str()));
        assert_eq!(
            (
                status.conditions[0].status.as_str(),
                status.conditions[0].reason.as_str()
            ),
            ("False", REASON_NO_READY_NODES)
        );
        let one_ready = validate(
            &envs(&[("a", no_nodes), ("b", reported(CeStatus::Valid))]),
            None,
            None,
        );
        assert!(one_ready.valid && one_ready.ready, "{one_ready:?}");
    }

    #[test]
    fn missing_or_unusable_references_make_it_invalid_with_a_reason() {
        let v = validate(
            &envs(&[
                ("a", EnvironmentState::Missing),
                ("b", EnvironmentState::Missing),
            ]),
            None,
            None,
        );
        assert_eq!(
            (v.valid, v.reason),
            (false, REASON_COMPUTE_ENVIRONMENT_NOT_FOUND)
        );
        assert_eq!(v.message, "compute environments a and b do not exist");
        let v = validate(&envs(&[("a", reported(CeStatus::Invalid))]), None, None);
        assert_eq!(
            v.message,
            "compute environment a is INVALID: bad instance type"
        );
        let v = validate(
            &envs(&[(
                "a",
                EnvironmentState::Reported {
                    status: None,
                    reason: None,
                    ready: false,
                },
            )]),
            None,
            None,
        );
        assert_eq!(
            v.message,
            "compute environment a is not VALID yet (no status)"
        );
        let v = validate(&envs(&[("a", reported(CeStatus::Creating))]), None, None);
        assert!(
            v.message.contains("not VALID yet (CREATING)"),
            "{}",
            v.message
        );
        // An environment being updated keeps serving its queues (as in AWS Batch).
        let updating = EnvironmentState::Reported {
            status: Some(CeStatus::Updating),
            reason: Some("updating: 2/2 node(s) ready".into()),
            ready: true,
        };
        let v = validate(&envs(&[("a", updating)]), None, None);
        assert!(v.valid && v.ready, "{v:?}");
        let v = validate(&envs(&[("a", EnvironmentState::Deleting)]), None, None);
        assert!(v.message.contains("being deleted"));
        let ok = envs(&[("a", reported(CeStatus::Valid))]);
        let v = validate(&ok, Some(("fair", PolicyState::Missing)), None);
        assert_eq!(
            (v.reason, v.message.as_str()),
            (
                REASON_SCHEDULING_POLICY_NOT_FOUND,
                "scheduling policy fair does not exist"
            )
        );
        let v = validate(
            &ok,
            Some((
                "fair",
                PolicyState::Reported {
                    ready: false,
                    message: "weightFactor 0".into(),
                },
            )),
            None,
        );
        assert!(!v.valid && v.message.contains("weightFactor 0"));
        let bad_selector = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "team".into(),
                operator: "Near".into(),
                values: None,
            }]),
            ..Default::default()
        };
        let v = validate(&ok, None, Some(&bad_selector));
        assert_eq!(v.reason, REASON_INVALID_SPEC);
    }

    fn queue(selector: Option<LabelSelector>) -> JobQueue {
        let mut q = JobQueue::new(
            "high",
            JobQueueSpec {
                state: Default::default(),
                priority: 10,
                compute_environment_order: vec![ComputeEnvironmentOrder {
                    order: 1,
                    compute_environment: "a".into(),
                }],
                scheduling_policy_name: None,
                job_state_time_limit_actions: vec![],
                namespace_selector: selector,
                queueing_strategy: Default::default(),
            },
        );
        q.metadata.generation = Some(4);
        q
    }

    #[test]
    fn namespace_selector_decides_who_may_submit() {
        let team: BTreeMap<String, String> = [("team".to_string(), "blue".to_string())].into();
        assert!(namespace_allowed(&queue(None), &BTreeMap::new()));
        let selector = LabelSelector {
            match_labels: Some(team.clone()),
            ..Default::default()
        };
        assert!(namespace_allowed(&queue(Some(selector.clone())), &team));
        assert!(!namespace_allowed(&queue(Some(selector)), &BTreeMap::new()));
    }

    #[test]
    fn status_carries_counts_verdict_and_deletion() {
        let q = queue(None);
        let counts = JobStatusCounts {
            RUNNABLE: 3,
            RUNNING: 1,
            ..Default::default()
        };
        let now = Timestamp::from_second(5).expect("ts");
        let ok = validate(&envs(&[("a", reported(CeStatus::Valid))]), None, None);
        let status = build_status(&q, &ok, counts.clone(), None, now);
        assert_eq!(status.status, Some(JqStatus::Valid));
        assert_eq!(status.status_reason.as_deref(), Some(STATUS_REASON_HEALTHY));
        assert_eq!(status.job_counts.as_ref().map(|c| c.RUNNABLE), Some(3));
        assert_eq!(status.observed_generation, Some(4));
        let deleting = build_status(&q, &ok, counts, Some(4), now);
        assert_eq!(deleting.conditions[0].reason, REASON_IN_USE);
    }

    #[test]
    fn throttle_passes_one_trigger_per_interval_per_key() {
        let t = Throttle::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(t.pass("q", t0));
        assert!(!t.pass("q", t0 + Duration::from_millis(500)));
        assert!(t.pass("other", t0 + Duration::from_millis(500)));
        assert!(t.pass("q", t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn the_scheduler_fields_neither_count_as_a_change_nor_are_sent() {
        let v = validate(&envs(&[("a", reported(CeStatus::Valid))]), None, None);
        let now = Timestamp::from_second(5).expect("ts");
        let mut q = queue(None);
        let status = build_status(&q, &v, JobStatusCounts::default(), None, now);
        let mut stored = status.clone();
        stored.fair_share = Some(barge_crds::job_queue::FairShareStatus {
            scheduling_policy_name: Some("p".into()),
            ..Default::default()
        });
        stored.front_of_queue = Some(Default::default());
        q.status = Some(stored);
        // The status this controller compares: as if the scheduler's fields were not there.
        assert_eq!(
            without_scheduler_fields(&q).status.as_ref(),
            Some(&status),
            "nothing to write"
        );
        assert!(q.status.as_ref().is_some_and(|s| s.fair_share.is_some()));
        // Its apply never names them, so server-side apply leaves the scheduler's values.
        let patch = crate::status::status_patch(&q, &status, Precondition::None);
        assert!(patch["status"].get("fairShare").is_none());
        assert!(patch["status"].get("frontOfQueue").is_none());
    }
}
