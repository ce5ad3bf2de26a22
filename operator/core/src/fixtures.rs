//! Chainable builders for tests: barge-core's own and the operator's (feature `fixtures`).
//!
//! ```
//! use barge_core::fixtures::{job, pod, T0};
//! let view = job("render").array(3).retry(2).pod(pod("render-1-0").index(0).running(T0)).build();
//! let plan = barge_core::job::reconcile(&view, T0 + 1_000);
//! assert_eq!(plan.summary.map(|s| s.running), Some(1));
//! ```

use crate::deps::{
    Dependency, DependencyGraph, DependencyTarget, DependencyTargets,
    DEFAULT_MISSING_DEPENDENCY_GRACE_SECONDS,
};
use crate::index_set::IndexSet;
use crate::job::{
    Admission, Blocked, BlockedKind, JobRecord, JobSpec, JobView, NodesSpec, PodPhase, PodView,
    Terminate, TimeLimitAction,
};
use crate::pod_creation::CreationRefusal;
use crate::resources::Resources;
use crate::retry::{EvaluateOnExit, RetryStrategy};
use crate::scheduler::{
    Constraints, EnvironmentSpec, JobKey, NodeShape, NodeSnapshot, QueueSpec, Snapshot, Units,
    Workload,
};
use crate::state::JobState;

/// A fixed "now" for tests: 2023-11-14T22:13:20Z in unix milliseconds.
pub const T0: i64 = 1_700_000_000_000;

/// Seconds to milliseconds, for readable offsets from [`T0`].
pub const fn secs(s: i64) -> i64 {
    s * 1000
}

/// One `evaluateOnExit` entry as raw strings: (onExitCode, onReason, onStatusReason, action).
pub type RawRule<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, &'a str);

/// Starts a [`JobView`] for job `name`: freshly SUBMITTED at [`T0`], admitted, no pods.
pub fn job(name: &str) -> JobViewBuilder {
    JobViewBuilder {
        view: JobView {
            name: name.to_string(),
            spec: JobSpec::default(),
            record: JobRecord::submitted(T0),
            admission: Admission::Admitted,
            dependencies: DependencyTargets::new(),
            pods: Vec::new(),
            time_limit_actions: Vec::new(),
            blocked: None,
            dependency_graph: DependencyGraph::new(),
            missing_dependency_grace_ms: secs(DEFAULT_MISSING_DEPENDENCY_GRACE_SECONDS),
            all_jobs_listed: true,
            creation_refusal: None,
            finished_pod_retention_ms: None,
        },
    }
}

/// Builder for [`JobView`].
#[derive(Clone, Debug)]
pub struct JobViewBuilder {
    view: JobView,
}

impl JobViewBuilder {
    pub fn array(mut self, size: u32) -> Self {
        self.view.spec.array_size = Some(size);
        self
    }
    pub fn depends_on(mut self, dep: Dependency) -> Self {
        self.view.spec.depends_on.push(dep);
        self
    }
    /// A multi-node parallel job of `num_nodes` nodes whose main node is `main_node`.
    pub fn nodes(mut self, num_nodes: u32, main_node: u32) -> Self {
        self.view.spec.nodes = Some(NodesSpec {
            num_nodes,
            main_node,
        });
        self
    }
    /// `retryStrategy.attempts` with no rules. Panics on an invalid count (test input).
    pub fn retry(mut self, attempts: u32) -> Self {
        self.view.spec.retry_strategy =
            RetryStrategy::attempts_only(attempts).expect("valid attempts in fixture");
        self
    }
    /// `retryStrategy` with `evaluateOnExit` rules given as (onExitCode, onReason, onStatusReason, action).
    pub fn retry_rules(mut self, attempts: u32, rules: &[RawRule<'_>]) -> Self {
        let rules = rules
            .iter()
            .map(|(c, r, s, a)| {
                EvaluateOnExit::parse(*c, *r, *s, a).expect("valid rule in fixture")
            })
            .collect();
        self.view.spec.retry_strategy =
            RetryStrategy::new(attempts, rules).expect("valid strategy in fixture");
        self
    }
    pub fn timeout(mut self, attempt_duration_seconds: i64) -> Self {
        self.view.spec.attempt_duration_seconds = Some(attempt_duration_seconds);
        self
    }
    pub fn terminate(mut self, reason: &str) -> Self {
        self.view.spec.terminate = Some(Terminate::job(reason));
        self
    }
    pub fn terminate_indices(mut self, indices: &str, reason: &str) -> Self {
        self.view.spec.terminate = Some(Terminate {
            reason: Some(reason.to_string()),
            array_indices: Some(IndexSet::parse(indices).expect("valid indices in fixture")),
        });
        self
    }
    pub fn ttl(mut self, seconds: i64) -> Self {
        self.view.spec.ttl_seconds_after_finished = Some(seconds);
        self
    }
    pub fn record(mut self, record: JobRecord) -> Self {
        self.view.record = record;
        self
    }
    /// Sets only the recorded state (RUNNABLE also sets `runnable_since_ms` to [`T0`]).
    pub fn state(mut self, state: JobState) -> Self {
        self.view.record.state = state;
        if state == JobState::Runnable {
            self.view.record.runnable_since_ms = Some(T0);
        }
        self
    }
    pub fn admission(mut self, admission: Admission) -> Self {
        self.view.admission = admission;
        self
    }
    pub fn dependency(mut self, name: &str, target: DependencyTarget) -> Self {
        self.view.dependencies.insert(name.to_string(), target);
        self
    }
    pub fn pod(mut self, pod: impl Into<PodView>) -> Self {
        self.view.pods.push(pod.into());
        self
    }
    pub fn time_limit(mut self, reason: &str, max_time_seconds: i64) -> Self {
        self.view
            .time_limit_actions
            .push(TimeLimitAction::cancel_runnable(reason, max_time_seconds));
        self
    }
    pub fn blocked(
        mut self,
        kind: BlockedKind,
        status_reason: Option<&str>,
        message: &str,
    ) -> Self {
        self.view.blocked = Some(Blocked {
            kind,
            status_reason: status_reason.map(str::to_string),
            message: message.to_string(),
        });
        self
    }
    /// Adds `name → depends_on` to the dependency graph around the job.
    pub fn graph_edge(mut self, name: &str, depends_on: &[&str]) -> Self {
        self.view.dependency_graph.insert(
            name.to_string(),
            depends_on.iter().map(|d| d.to_string()).collect(),
        );
        self
    }
    pub fn missing_dependency_grace(mut self, seconds: i64) -> Self {
        self.view.missing_dependency_grace_ms = secs(seconds);
        self
    }
    /// The view holds only the unfinished jobs (start-up, before the finished history).
    pub fn finished_jobs_unlisted(mut self) -> Self {
        self.view.all_jobs_listed = false;
        self
    }
    pub fn creation_refusal(mut self, refusal: CreationRefusal) -> Self {
        self.view.creation_refusal = Some(refusal);
        self
    }
    pub fn finished_pod_retention(mut self, seconds: i64) -> Self {
        self.view.finished_pod_retention_ms = Some(secs(seconds));
        self
    }
    pub fn build(self) -> JobView {
        self.view
    }
}

impl From<JobViewBuilder> for JobView {
    fn from(b: JobViewBuilder) -> JobView {
        b.build()
    }
}

/// Starts a [`PodView`] named `name`: attempt 1, Pending, with Barge's finalizer, on node `node-1`.
pub fn pod(name: &str) -> PodBuilder {
    PodBuilder {
        pod: PodView {
            name: name.to_string(),
            attempt: 1,
            array_index: None,
            node_index: None,
            pod_ip: None,
            phase: PodPhase::Pending,
            node_name: Some("node-1".to_string()),
            started_at_ms: None,
            finished_at_ms: None,
            exit_code: None,
            container_reason: None,
            pod_reason: None,
            pod_message: None,
            waiting_reason: None,
            waiting_message: None,
            deletion_timestamp_ms: None,
            active_deadline_at_ms: None,
            node_lost: false,
            has_finalizer: true,
        },
    }
}

/// The pod of `job`'s `attempt` (and array `index`), named as Barge names it.
pub fn attempt_pod(job: &str, attempt: u32, index: Option<u32>) -> PodBuilder {
    let mut b = pod(&crate::naming::attempt_pod_name(job, attempt, index));
    b.pod.attempt = attempt;
    b.pod.array_index = index;
    b
}

/// The pod of node `node_index` of a multi-node `job`'s `attempt`, named as Barge names it
/// (`<job>-<attempt>-node-<n>`), on Kubernetes node `node-<n>`.
pub fn node_pod(job: &str, attempt: u32, node_index: u32) -> PodBuilder {
    let mut b = pod(&crate::naming::node_pod_name(job, attempt, node_index));
    b.pod.attempt = attempt;
    b.pod.node_index = Some(node_index);
    b.pod.node_name = Some(format!("node-{node_index}"));
    b
}

/// Builder for [`PodView`].
#[derive(Clone, Debug)]
pub struct PodBuilder {
    pod: PodView,
}

impl PodBuilder {
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.pod.attempt = attempt;
        self
    }
    pub fn index(mut self, index: u32) -> Self {
        self.pod.array_index = Some(index);
        self
    }
    pub fn node(mut self, node: &str) -> Self {
        self.pod.node_name = Some(node.to_string());
        self
    }
    /// `status.podIP`.
    pub fn ip(mut self, pod_ip: &str) -> Self {
        self.pod.pod_ip = Some(pod_ip.to_string());
        self
    }
    pub fn pending(mut self) -> Self {
        self.pod.phase = PodPhase::Pending;
        self
    }
    /// Container running since `started_at_ms`.
    pub fn running(mut self, started_at_ms: i64) -> Self {
        self.pod.phase = PodPhase::Running;
        self.pod.started_at_ms = Some(started_at_ms);
        self
    }
    /// Ran from `started_at_ms` to `finished_at_ms` and exited 0.
    pub fn succeeded(mut self, started_at_ms: i64, finished_at_ms: i64) -> Self {
        self.pod.phase = PodPhase::Succeeded;
        self.pod.started_at_ms = Some(started_at_ms);
        self.pod.finished_at_ms = Some(finished_at_ms);
        self.pod.exit_code = Some(0);
        self
    }
    /// Ran from `started_at_ms` to `finished_at_ms` and exited with `exit_code`.
    pub fn failed(mut self, exit_code: i32, started_at_ms: i64, finished_at_ms: i64) -> Self {
        self.pod.phase = PodPhase::Failed;
        self.pod.started_at_ms = Some(started_at_ms);
        self.pod.finished_at_ms = Some(finished_at_ms);
        self.pod.exit_code = Some(exit_code);
        self
    }
    /// Failed without running a container (pod-level reason and message).
    pub fn rejected(mut self, pod_reason: &str, message: &str) -> Self {
        self.pod.phase = PodPhase::Failed;
        self.pod.pod_reason = Some(pod_reason.to_string());
        self.pod.pod_message = Some(message.to_string());
        self
    }
    pub fn container_reason(mut self, reason: &str) -> Self {
        self.pod.container_reason = Some(reason.to_string());
        self
    }
    /// The container is waiting with `reason` (e.g. `ImagePullBackOff`) and `message`.
    pub fn waiting(mut self, reason: &str, message: &str) -> Self {
        self.pod.phase = PodPhase::Pending;
        self.pod.waiting_reason = Some(reason.to_string());
        self.pod.waiting_message = Some(message.to_string());
        self
    }
    pub fn pod_reason(mut self, reason: &str) -> Self {
        self.pod.pod_reason = Some(reason.to_string());
        self
    }
    pub fn node_lost(mut self) -> Self {
        self.pod.node_lost = true;
        self
    }
    /// Stopped through its deadline: the kubelet stops it at `at_ms`.
    pub fn deadline(mut self, at_ms: i64) -> Self {
        self.pod.active_deadline_at_ms = Some(at_ms);
        self
    }
    /// Being deleted; SIGKILL due at `deletion_timestamp_ms`.
    pub fn deleting(mut self, deletion_timestamp_ms: i64) -> Self {
        self.pod.deletion_timestamp_ms = Some(deletion_timestamp_ms);
        self
    }
    /// Barge's finalizer already removed.
    pub fn released(mut self) -> Self {
        self.pod.has_finalizer = false;
        self
    }
    pub fn build(self) -> PodView {
        self.pod
    }
}

impl From<PodBuilder> for PodView {
    fn from(b: PodBuilder) -> PodView {
        b.build()
    }
}

// ----- scheduler -----

/// Starts an empty [`Snapshot`].
pub fn snapshot() -> SnapshotBuilder {
    SnapshotBuilder {
        snapshot: Snapshot::default(),
    }
}

/// Builder for [`Snapshot`].
#[derive(Clone, Debug)]
pub struct SnapshotBuilder {
    snapshot: Snapshot,
}

impl SnapshotBuilder {
    pub fn queue(mut self, queue: impl Into<QueueSpec>) -> Self {
        self.snapshot.queues.push(queue.into());
        self
    }
    pub fn environment(mut self, env: impl Into<EnvironmentSpec>) -> Self {
        self.snapshot.environments.push(env.into());
        self
    }
    pub fn node(mut self, node: impl Into<NodeSnapshot>) -> Self {
        self.snapshot.nodes.push(node.into());
        self
    }
    pub fn workload(mut self, workload: impl Into<Workload>) -> Self {
        self.snapshot.workloads.push(workload.into());
        self
    }
    pub fn build(self) -> Snapshot {
        self.snapshot
    }
}

/// An ENABLED queue of priority 1 using `environments` in that order.
pub fn queue(name: &str, environments: &[&str]) -> QueueBuilder {
    QueueBuilder {
        queue: QueueSpec {
            name: name.to_string(),
            priority: 1,
            enabled: true,
            environments: environments.iter().map(|e| e.to_string()).collect(),
            strict_fifo: false,
            fair_share: None,
        },
    }
}

/// Builder for [`QueueSpec`].
#[derive(Clone, Debug)]
pub struct QueueBuilder {
    queue: QueueSpec,
}

impl QueueBuilder {
    pub fn priority(mut self, priority: i32) -> Self {
        self.queue.priority = priority;
        self
    }
    pub fn disabled(mut self) -> Self {
        self.queue.enabled = false;
        self
    }
    pub fn strict_fifo(mut self) -> Self {
        self.queue.strict_fifo = true;
        self
    }
    /// Fair share under `policy` (a [`FairSharePolicy`](crate::scheduler::FairSharePolicy) or
    /// a [`fair_policy`] builder), with what is known of the shares.
    pub fn fair_share(
        mut self,
        policy: impl Into<crate::scheduler::FairSharePolicy>,
        shares: Vec<crate::scheduler::ShareState>,
    ) -> Self {
        self.queue.fair_share = Some(crate::scheduler::QueueFairShare {
            policy: policy.into(),
            shares,
        });
        self
    }
    pub fn build(self) -> QueueSpec {
        self.queue
    }
}

impl From<QueueBuilder> for QueueSpec {
    fn from(b: QueueBuilder) -> QueueSpec {
        b.build()
    }
}

/// An ENABLED, VALID compute environment with unknown possible shapes.
pub fn environment(name: &str) -> EnvironmentBuilder {
    EnvironmentBuilder {
        env: EnvironmentSpec {
            name: name.to_string(),
            enabled: true,
            valid: true,
            shapes: None,
            max_milli_cpu: None,
            starting_nodes: 0,
            budget_milli_cpu: None,
            spot: false,
        },
    }
}

/// Builder for [`EnvironmentSpec`].
#[derive(Clone, Debug)]
pub struct EnvironmentBuilder {
    env: EnvironmentSpec,
}

impl EnvironmentBuilder {
    pub fn disabled(mut self) -> Self {
        self.env.enabled = false;
        self
    }
    pub fn invalid(mut self) -> Self {
        self.env.valid = false;
        self
    }
    /// A node shape this environment has or could have.
    pub fn shape(mut self, instance_type: &str, allocatable: Resources) -> Self {
        self.env
            .shapes
            .get_or_insert_with(Vec::new)
            .push(NodeShape {
                instance_type: instance_type.to_string(),
                allocatable,
            });
        self
    }
    pub fn max_vcpus(mut self, vcpus: i64) -> Self {
        self.env.max_milli_cpu = Some(Resources::vcpus(vcpus));
        self
    }
    /// Nodes that are not Ready yet but will be (booting, or still to be created).
    pub fn starting_nodes(mut self, nodes: u32) -> Self {
        self.env.starting_nodes = nodes;
        self
    }
    /// `bindingMode: KubeScheduler`: admit against `vcpus` left of the budget, bind to no node.
    pub fn budget_vcpus(mut self, vcpus: i64) -> Self {
        self.env.budget_milli_cpu = Some(Resources::vcpus(vcpus));
        self
    }
    pub fn build(self) -> EnvironmentSpec {
        self.env
    }
}

impl From<EnvironmentBuilder> for EnvironmentSpec {
    fn from(b: EnvironmentBuilder) -> EnvironmentSpec {
        b.build()
    }
}

/// A ready node of `environment` with `allocatable` (nothing used), instance type `m5.xlarge`.
pub fn node(name: &str, environment: &str, allocatable: Resources) -> NodeBuilder {
    NodeBuilder {
        node: NodeSnapshot {
            name: name.to_string(),
            environment: Some(environment.to_string()),
            allocatable,
            used: Resources::ZERO,
            schedulable: true,
            instance_type: Some("m5.xlarge".to_string()),
            barge_pods: 0,
            exclusive: false,
        },
    }
}

/// Builder for [`NodeSnapshot`].
#[derive(Clone, Debug)]
pub struct NodeBuilder {
    node: NodeSnapshot,
}

impl NodeBuilder {
    pub fn used(mut self, used: Resources) -> Self {
        self.node.used = used;
        self
    }
    pub fn unschedulable(mut self) -> Self {
        self.node.schedulable = false;
        self
    }
    pub fn instance_type(mut self, instance_type: &str) -> Self {
        self.node.instance_type = Some(instance_type.to_string());
        self
    }
    pub fn build(self) -> NodeSnapshot {
        self.node
    }
}

impl From<NodeBuilder> for NodeSnapshot {
    fn from(b: NodeBuilder) -> NodeSnapshot {
        b.build()
    }
}

/// A single-job workload `default/<name>` in `queue`, submitted at `submitted_at_ms`, attempt 1.
pub fn workload(
    name: &str,
    queue: &str,
    request: Resources,
    submitted_at_ms: i64,
) -> WorkloadBuilder {
    WorkloadBuilder {
        workload: Workload {
            job: JobKey::new("default", name),
            queue: queue.into(),
            retried: false,
            submitted_at_ms,
            submission_order: 0,
            attempt: 1,
            request,
            constraints: Constraints::default(),
            units: Units::Single,
            share: None,
            priority: 0,
        },
    }
}

/// Builder for [`Workload`].
#[derive(Clone, Debug)]
pub struct WorkloadBuilder {
    workload: Workload,
}

impl WorkloadBuilder {
    pub fn retried(mut self, attempt: u32) -> Self {
        self.workload.retried = true;
        self.workload.attempt = attempt;
        self
    }
    /// Array children `indices` (e.g. `"0-99"`).
    /// Its place in submission order within its `submitted_at_ms` (see `Workload`).
    pub fn submission_order(mut self, order: i64) -> Self {
        self.workload.submission_order = order;
        self
    }

    pub fn children(mut self, indices: &str) -> Self {
        self.workload.units =
            Units::Array(IndexSet::parse(indices).expect("valid indices in fixture"));
        self
    }
    pub fn instance_type(mut self, instance_type: &str) -> Self {
        self.workload.constraints.instance_type = Some(instance_type.to_string());
        self
    }
    /// Its `shareIdentifier` and scheduling priority.
    pub fn share(mut self, share: &str, priority: i32) -> Self {
        self.workload.share = Some(share.into());
        self.workload.priority = priority;
        self
    }
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.workload.job.namespace = namespace.into();
        self
    }
    pub fn build(self) -> Workload {
        self.workload
    }
}

impl From<WorkloadBuilder> for Workload {
    fn from(b: WorkloadBuilder) -> Workload {
        b.build()
    }
}

/// `cpu` vCPUs (may be fractional via millicpu), `mem` MiB, `gpus`: one unit's request.
pub const fn req(milli_cpu: i64, memory_mib: i64, gpus: i64) -> Resources {
    Resources::request(milli_cpu, memory_mib, gpus)
}

/// Node allocatable of `vcpus`, `memory_mib`, `gpus` and 110 pods.
pub const fn alloc(vcpus: i64, memory_mib: i64, gpus: i64) -> Resources {
    Resources::new(vcpus * 1000, memory_mib, gpus, 110)
}

/// A dependency target that is a finished array (convenience for dependency tests).
pub fn array_target(state: JobState, size: u32, succeeded: &str, failed: &str) -> DependencyTarget {
    DependencyTarget::array(
        state,
        size,
        IndexSet::parse(succeeded).expect("valid indices in fixture"),
        IndexSet::parse(failed).expect("valid indices in fixture"),
    )
}

// Multi-node (gang) scheduling builders.

impl EnvironmentBuilder {
    /// `type: SPOT`: no multi-node job runs on it.
    pub fn spot(mut self) -> Self {
        self.env.spot = true;
        self
    }
}

impl NodeBuilder {
    /// `pods` Barge pods run on it (a gang member does not go there).
    pub fn barge_pods(mut self, pods: u32) -> Self {
        self.node.barge_pods = pods;
        self
    }
    /// It runs (or is reserved for) a node of a multi-node job.
    pub fn exclusive(mut self) -> Self {
        self.node.exclusive = true;
        self
    }
}

impl WorkloadBuilder {
    /// A multi-node job of `nodes` nodes, each asking for the workload's request and instance
    /// type, main node 0.
    pub fn gang(mut self, nodes: usize) -> Self {
        let member = crate::scheduler::GangMember {
            request: self.workload.request,
            constraints: self.workload.constraints.clone(),
        };
        self.workload.units = Units::Gang(crate::scheduler::Gang {
            main_node: 0,
            members: vec![member; nodes],
        });
        self
    }
    /// Its main node (after [`WorkloadBuilder::gang`]); the workload's request and constraints
    /// become that node's.
    pub fn main_node(mut self, main: u32) -> Self {
        if let Units::Gang(gang) = &mut self.workload.units {
            gang.main_node = main;
            if let Some(member) = gang.members.get(main as usize) {
                self.workload.request = member.request;
                self.workload.constraints = member.constraints.clone();
            }
        }
        self
    }
    /// Node `index` (after [`WorkloadBuilder::gang`]) asks for `request`, on `instance_type`
    /// when given.
    pub fn node_request(
        mut self,
        index: usize,
        request: Resources,
        instance_type: Option<&str>,
    ) -> Self {
        if let Units::Gang(gang) = &mut self.workload.units {
            let constraints = Constraints {
                instance_type: instance_type.map(str::to_string),
            };
            if index == gang.main_node as usize {
                self.workload.request = request;
                self.workload.constraints = constraints.clone();
            }
            gang.members[index] = crate::scheduler::GangMember {
                request,
                constraints,
            };
        }
        self
    }
}

// Fair-share builders.

/// A fair-share policy with `shareDecaySeconds` and `computeReservation` (percent), no
/// `shareDistribution` (every share weighs 1.0).
pub fn fair_policy(share_decay_seconds: u32, compute_reservation: u32) -> FairPolicyBuilder {
    FairPolicyBuilder {
        policy: crate::scheduler::FairSharePolicy {
            share_decay_seconds,
            compute_reservation,
            weights: Vec::new(),
        },
    }
}

/// Builder for [`FairSharePolicy`](crate::scheduler::FairSharePolicy).
#[derive(Clone, Debug)]
pub struct FairPolicyBuilder {
    policy: crate::scheduler::FairSharePolicy,
}

impl FairPolicyBuilder {
    /// A `shareDistribution` entry (`share` may end with `*`).
    pub fn weight(mut self, share: &str, weight_factor: f64) -> Self {
        self.policy.weights.push(crate::scheduler::ShareWeight {
            share_identifier: share.to_string(),
            weight_factor,
        });
        self
    }
    pub fn build(self) -> crate::scheduler::FairSharePolicy {
        self.policy
    }
}

impl From<FairPolicyBuilder> for crate::scheduler::FairSharePolicy {
    fn from(b: FairPolicyBuilder) -> crate::scheduler::FairSharePolicy {
        b.build()
    }
}

/// What the operator knows of `share` in a queue: nothing running, no usage, no unfinished job.
pub fn share_state(share: &str) -> ShareStateBuilder {
    ShareStateBuilder {
        state: crate::scheduler::ShareState {
            share: share.to_string(),
            ..Default::default()
        },
    }
}

/// Builder for [`ShareState`](crate::scheduler::ShareState).
#[derive(Clone, Debug)]
pub struct ShareStateBuilder {
    state: crate::scheduler::ShareState,
}

impl ShareStateBuilder {
    /// Millicpu of its pods placed and not finished.
    pub fn running(mut self, milli_cpu: i64) -> Self {
        self.state.running_milli_cpu = milli_cpu;
        self
    }
    /// Decayed usage, vCPU-seconds.
    pub fn usage(mut self, vcpu_seconds: f64) -> Self {
        self.state.usage_vcpu_seconds = vcpu_seconds;
        self
    }
    /// Its jobs that are not finished.
    pub fn live_jobs(mut self, jobs: u64) -> Self {
        self.state.live_jobs = jobs;
        self
    }
    pub fn build(self) -> crate::scheduler::ShareState {
        self.state
    }
}

impl From<ShareStateBuilder> for crate::scheduler::ShareState {
    fn from(b: ShareStateBuilder) -> crate::scheduler::ShareState {
        b.build()
    }
}

impl WorkloadBuilder {
    /// Its `schedulingPriority` (override), without a share.
    pub fn priority(mut self, priority: i32) -> Self {
        self.workload.priority = priority;
        self
    }
}
