//! The end-to-end harness: the real `barge` binary as a child process against a cluster.
//!
//! By default every test gets its own simulated cluster (`barge_sim::Cluster`, in-process) with
//! Barge's CRDs and a simulated kubelet (process runtime unless the test asks for the scripted
//! one), a fresh namespace, and `barge operator` spawned as a child process with fast intervals
//! and its stderr captured to a file. The operator log is printed when a test fails and the child
//! is killed when the [`E2e`] is dropped, so a test never leaks a process.
//!
//! Real-cluster mode: when `BARGE_E2E_KUBECONFIG` names a kubeconfig, the tests use that cluster
//! instead (the CRDs must be installed; the simulated kubelet still runs in-process against it to
//! run the pods of simulated compute environments). Tests then run one at a time (a process-wide
//! lock), because each starts its own operator; tests that need sim-only faults skip themselves.
//!
//! Cluster-scoped objects (compute environments, queues) are named after the test's namespace:
//! manifests say `${NS}` and [`E2e::apply`] substitutes it (and `${TRACE}`, a file for the
//! process runtime's commands to append timestamps to, and `${GATE}`, see [`GATE`]). On a real
//! cluster the namespace and those objects are deleted when the test ends — by [`E2e::finish`],
//! or by the drop of the [`E2e`] when the test failed before (see [`cleanup_blocking`]).
//!
//! Latency: the simulated API server answers in microseconds, a real one's writes wait for etcd.
//! The `e2e_latency` target runs the scenarios of `e2e_jobs` and `e2e_arrays` again with
//! [`REALISTIC_WRITE_LATENCY`] on every write (see [`write_latency`]); `BARGE_E2E_WRITE_LATENCY_MS`
//! sets it for any target.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use barge_crds::compute_environment::CeStatus;
use barge_crds::consts::{LABEL_JOB_NAME, LABEL_SIM_SIMULATED};
use barge_crds::job::JobStatus;
use barge_crds::{ComputeEnvironment, Job, JobDefinition, JobQueue, SchedulingPolicy};
use barge_sim::kubelet::{Kubelet, KubeletConfig, KubeletHandle, RuntimeKind};
use barge_sim::{Cluster, ClusterConfig};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams, PostParams,
};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use serde::de::DeserializeOwned;

/// Longest wait for any state.
pub const WAIT: Duration = Duration::from_secs(90);
/// Interval of every poll.
pub const POLL: Duration = Duration::from_millis(100);
/// Environment variable naming a real cluster's kubeconfig.
pub const REAL_CLUSTER_ENV: &str = "BARGE_E2E_KUBECONFIG";
/// Field manager of the tests' server-side applies.
pub const FIELD_MANAGER: &str = "barge-e2e";
/// Lines of the operator log shown with a failure.
const LOG_TAIL_LINES: usize = 150;
/// Environment variable setting the simulated API server's write latency in milliseconds.
pub const WRITE_LATENCY_ENV: &str = "BARGE_E2E_WRITE_LATENCY_MS";
/// The test target whose scenarios run with [`REALISTIC_WRITE_LATENCY`].
pub const LATENCY_TARGET: &str = "e2e_latency";
/// What a write costs on a real cluster's API server (an etcd commit, give or take).
pub const REALISTIC_WRITE_LATENCY: Duration = Duration::from_millis(50);
/// Longest the clean-up of a failed test may take against a real cluster.
const CLEANUP_LIMIT: Duration = Duration::from_secs(30);

/// Tests against a real cluster run one at a time: each starts an operator of its own.
static REAL_CLUSTER_SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How to set up a test.
#[derive(Clone, Debug)]
pub struct Options {
    /// Runtime of pods without a `sim.barge.dev/runtime` annotation.
    pub runtime: RuntimeKind,
    /// Extra flags of `barge operator`.
    pub operator_flags: Vec<String>,
    /// The kubeconfig of an existing cluster to use; None: [`real_cluster`], else a simulated one.
    pub cluster: Option<PathBuf>,
    /// On the simulated cluster: run barge-sim's Karpenter stand-in (NodePools + pending pods →
    /// Nodes) with the upstream NodePool CRD installed.
    pub karpenter: bool,
    /// On the simulated cluster: run barge-sim's Cluster API stand-in (MachineDeployment
    /// replicas → Nodes) with the upstream MachineDeployment CRD installed.
    pub cluster_api: bool,
    /// The simulated kubelet's boot delay of nodes without the `sim.barge.dev/boot-delay-seconds`
    /// annotation (time from a Node's appearance to Ready).
    pub boot_delay: Duration,
    /// Whether [`E2e::start_with`] spawns `barge operator` (the test may run its own instead).
    pub operator: bool,
    /// On the simulated cluster: kube-apiserver's in-flight limits (off by default; requests of
    /// `system:masters`, such as the test's own, are never refused).
    pub max_in_flight: barge_sim::apiserver::inflight::MaxInFlight,
    /// On the simulated cluster: the write latency, in place of [`write_latency`].
    pub write_latency: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            runtime: RuntimeKind::Process,
            operator_flags: Vec::new(),
            cluster: None,
            karpenter: false,
            cluster_api: false,
            boot_delay: Duration::ZERO,
            operator: true,
            max_in_flight: Default::default(),
            write_latency: None,
        }
    }
}

impl Options {
    pub fn scripted() -> Self {
        Self {
            runtime: RuntimeKind::Scripted,
            ..Self::default()
        }
    }

    pub fn flag(mut self, flag: &str) -> Self {
        self.operator_flags.push(flag.to_string());
        self
    }

    /// Runs barge-sim's Karpenter stand-in (see [`Options::karpenter`]).
    pub fn with_karpenter(mut self) -> Self {
        self.karpenter = true;
        self
    }

    /// Runs barge-sim's Cluster API stand-in (see [`Options::cluster_api`]).
    pub fn with_cluster_api(mut self) -> Self {
        self.cluster_api = true;
        self
    }

    /// Sets the simulated kubelet's default node boot delay (see [`Options::boot_delay`]).
    pub fn with_boot_delay(mut self, delay: Duration) -> Self {
        self.boot_delay = delay;
        self
    }

    /// Starts no operator (see [`Options::operator`]): the test runs its own.
    pub fn without_operator(mut self) -> Self {
        self.operator = false;
        self
    }

    /// Runs against the cluster of `kubeconfig` as against a real one.
    pub fn on_cluster(mut self, kubeconfig: &Path) -> Self {
        self.cluster = Some(kubeconfig.to_path_buf());
        self
    }
}

/// The in-process simulated cluster of a test.
struct Sim {
    cluster: Cluster,
}

/// `barge operator` running as a child process.
struct OperatorProcess {
    child: Child,
}

impl OperatorProcess {
    fn kill(&mut self) {
        // SIGKILL; the child may have exited already.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One end-to-end test's world: cluster, namespace, operator.
pub struct E2e {
    pub ns: String,
    pub client: Client,
    sim: Option<Sim>,
    kubelet: Option<KubeletHandle>,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
    options: Options,
    /// The kubeconfig `barge operator` runs with, when not the cluster's ([`E2e::run_operator_with`]).
    operator_kubeconfig: Option<PathBuf>,
    operator: Option<OperatorProcess>,
    operator_runs: u32,
    /// Whether [`E2e::finish`] ran (else the drop cleans up a real cluster).
    finished: bool,
    _serial: Option<tokio::sync::MutexGuard<'static, ()>>,
}

/// The kubeconfig of the real cluster, if the tests run against one. Never with a write
/// latency: latency is the simulated cluster's, so those runs always start their own.
pub fn real_cluster() -> Option<PathBuf> {
    if !write_latency().is_zero() {
        return None;
    }
    std::env::var_os(REAL_CLUSTER_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The write latency of the simulated API server: `BARGE_E2E_WRITE_LATENCY_MS` if set, else
/// [`REALISTIC_WRITE_LATENCY`] in the [`LATENCY_TARGET`] (cargo compiles this module into each
/// target, so the target's crate name tells them apart) and none in the others.
pub fn write_latency() -> Duration {
    if let Some(ms) = std::env::var(WRITE_LATENCY_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Duration::from_millis(ms);
    }
    if env!("CARGO_CRATE_NAME") == LATENCY_TARGET {
        REALISTIC_WRITE_LATENCY
    } else {
        Duration::ZERO
    }
}

/// Skips (returns true) a test that needs the simulated cluster's faults, in real-cluster mode.
pub fn skip_on_real_cluster(test: &str) -> bool {
    if real_cluster().is_some() {
        eprintln!("{test}: skipped against a real cluster (needs the simulated cluster's faults)");
        return true;
    }
    false
}

fn unique_suffix() -> String {
    format!("{:06x}", fastrand_u32() & 0xff_ffff)
}

fn fastrand_u32() -> u32 {
    // Good enough for unique names without a dependency: time and pid mixed.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

impl E2e {
    /// A cluster, a namespace `e2e-<test>-<suffix>` and a running operator.
    pub async fn start(test: &str) -> E2e {
        E2e::start_with(test, Options::default()).await
    }

    pub async fn start_with(test: &str, options: Options) -> E2e {
        let dir = tempfile::Builder::new()
            .prefix("barge-e2e-")
            .tempdir()
            .expect("temporary directory");
        let (sim, client, kubeconfig, serial) = match options.cluster.clone().or_else(real_cluster)
        {
            Some(path) => {
                let guard = REAL_CLUSTER_SERIAL.lock().await;
                let client = barge_operator::run::client(Some(&path))
                    .await
                    .expect("client of the real cluster");
                (None, client, path, Some(guard))
            }
            None => {
                let cluster = Cluster::start(ClusterConfig {
                    kubeconfig: Some(dir.path().join("kubeconfig")),
                    write_latency: options.write_latency.unwrap_or_else(write_latency),
                    max_in_flight: options.max_in_flight,
                    karpenter: options.karpenter,
                    cluster_api: options.cluster_api,
                    ..Default::default()
                })
                .await
                .expect("simulated cluster");
                let client = cluster.client().expect("client");
                let path = cluster.kubeconfig_path().to_path_buf();
                (Some(Sim { cluster }), client, path, None)
            }
        };
        let kubelet = Kubelet::start(
            client.clone(),
            KubeletConfig {
                runtime: options.runtime,
                boot_delay: options.boot_delay,
                lease_renew_interval: Duration::from_secs(2),
                work_dir: Some(dir.path().join("kubelet")),
                ..Default::default()
            },
        )
        .await
        .expect("simulated kubelet");
        let ns = format!("e2e-{}-{}", test.replace('_', "-"), unique_suffix());
        let ns: String = ns.chars().take(50).collect();
        let ns = ns.trim_end_matches('-').to_string();
        let mut env = E2e {
            ns,
            client,
            sim,
            kubelet: Some(kubelet),
            kubeconfig,
            dir,
            options,
            operator_kubeconfig: None,
            operator: None,
            operator_runs: 0,
            finished: false,
            _serial: serial,
        };
        if env.sim.is_some() {
            install_crds(&env.client).await;
            if env.options.karpenter {
                install_upstream_crd(&env.client, "karpenter.sh_nodepools.yaml").await;
            }
            if env.options.cluster_api {
                install_upstream_crd(&env.client, "cluster.x-k8s.io_machinedeployments.yaml").await;
            }
        }
        let namespaces: Api<Namespace> = Api::all(env.client.clone());
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": env.ns}
        }))
        .expect("namespace");
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create the test namespace");
        if env.options.operator {
            env.start_operator();
        }
        env
    }

    /// The simulated cluster (panics in real-cluster mode: guard with [`skip_on_real_cluster`]).
    pub fn cluster(&self) -> &Cluster {
        &self
            .sim
            .as_ref()
            .expect("this test needs the simulated cluster")
            .cluster
    }

    /// The simulated cluster, or None in real-cluster mode.
    pub fn sim_cluster(&self) -> Option<&Cluster> {
        self.sim.as_ref().map(|s| &s.cluster)
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A file the process runtime's commands may append to (`${TRACE}` in manifests).
    pub fn trace_path(&self) -> PathBuf {
        self.dir.path().join("trace")
    }

    /// Opens the gate that [`GATE`] scripts wait for.
    pub fn open_gate(&self) {
        std::fs::write(self.gate_path(), b"open").expect("open the gate");
    }

    fn gate_path(&self) -> PathBuf {
        self.dir.path().join("gate")
    }

    /// The lines of the trace file so far.
    pub fn trace(&self) -> Vec<String> {
        std::fs::read_to_string(self.trace_path())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn operator_log_path(&self, run: u32) -> PathBuf {
        self.dir.path().join(format!("operator-{run}.log"))
    }

    /// Spawns `barge operator` (a new log file per run).
    pub fn start_operator(&mut self) {
        assert!(self.operator.is_none(), "the operator is already running");
        self.operator_runs += 1;
        let log = std::fs::File::create(self.operator_log_path(self.operator_runs))
            .expect("operator log file");
        // Fast intervals, and every child's pod and log kept readable; a test's own
        // `--flag=value` replaces the default of the same flag.
        let identity = format!("e2e-{}", self.ns);
        let defaults = [
            ("--metrics-addr", "127.0.0.1:0"),
            ("--log-level", "info,kube=warn"),
            ("--status-coalesce-ms", "100"),
            ("--scheduler-interval-ms", "100"),
            ("--status-refresh-seconds", "1"),
            ("--array-pod-retention", "all"),
            ("--identity", identity.as_str()),
        ];
        let own = &self.options.operator_flags;
        let defaults = defaults
            .iter()
            .filter(|(flag, _)| {
                !own.iter()
                    .any(|f| f == flag || f.starts_with(&format!("{flag}=")))
            })
            .map(|(flag, value)| format!("{flag}={value}"));
        let child = Command::new(env!("CARGO_BIN_EXE_barge"))
            .arg("operator")
            .arg("--kubeconfig")
            .arg(
                self.operator_kubeconfig
                    .as_ref()
                    .unwrap_or(&self.kubeconfig),
            )
            .args(defaults)
            .args(own)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn barge operator");
        self.operator = Some(OperatorProcess { child });
    }

    /// Runs `barge operator` (from now on, restarts included) with `kubeconfig`, e.g. one that
    /// impersonates its service account ([`Cluster::kubeconfig_as`]), written to the test's
    /// directory; starts it unless it is running.
    pub fn run_operator_with(&mut self, kubeconfig: &str) {
        let path = self.dir.path().join("operator-kubeconfig");
        std::fs::write(&path, kubeconfig).expect("write the operator's kubeconfig");
        self.operator_kubeconfig = Some(path);
        if self.operator.is_none() {
            self.start_operator();
        }
    }

    /// SIGKILLs the operator (no graceful shutdown) and waits for it to be gone.
    pub fn kill_operator(&mut self) {
        if let Some(mut operator) = self.operator.take() {
            operator.kill();
        }
    }

    pub fn restart_operator(&mut self) {
        self.kill_operator();
        self.start_operator();
    }

    /// The last lines of every operator run's log.
    pub fn operator_log(&self) -> String {
        let mut out = String::new();
        for run in 1..=self.operator_runs {
            let text = std::fs::read_to_string(self.operator_log_path(run)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
            out.push_str(&format!(
                "----- operator run {run} ({} lines, last {}) -----\n",
                lines.len(),
                lines.len() - skip
            ));
            for line in &lines[skip..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Substitutes `${NS}`, `${TRACE}`, `${GATE}` and `${DIR}` (see [`E2e::files_dir`]).
    pub fn render(&self, manifest: &str) -> String {
        manifest
            .replace("${NS}", &self.ns)
            .replace("${TRACE}", &self.trace_path().display().to_string())
            .replace("${GATE}", &self.gate_path().display().to_string())
            .replace("${DIR}", &self.files_dir().display().to_string())
    }

    /// A directory of the test's where process-runtime commands may write files (`${DIR}` in
    /// manifests), e.g. one per multi-node job node; created on first use.
    pub fn files_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("files");
        std::fs::create_dir_all(&dir).expect("files directory");
        dir
    }

    /// Server-side applies every document of `manifests` (Barge kinds; namespaced ones go to
    /// the test's namespace).
    pub async fn apply(&self, manifests: &str) {
        let text = self.render(manifests);
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value: serde_json::Value = serde::Deserialize::deserialize(document)
                .unwrap_or_else(|e| panic!("test manifest: {e}\n{text}"));
            if value.is_null() {
                continue;
            }
            let object: DynamicObject = serde_json::from_value(value)
                .unwrap_or_else(|e| panic!("test manifest: {e}\n{text}"));
            let kind = object
                .types
                .as_ref()
                .map(|t| t.kind.clone())
                .unwrap_or_default();
            let (resource, namespaced) = api_resource(&kind)
                .unwrap_or_else(|| panic!("the harness does not apply kind {kind:?}"));
            let api: Api<DynamicObject> = if namespaced {
                Api::namespaced_with(self.client.clone(), &self.ns, &resource)
            } else {
                Api::all_with(self.client.clone(), &resource)
            };
            let name = object.name_any();
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}\n{text}"));
        }
    }

    pub fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Moves back by `seconds` the clock of a RUNNABLE job's `jobStateTimeLimitActions`: the
    /// `lastTransitionTime` of its Schedulable condition in `job` (as read), patched into its
    /// status — what an operator restarted that much later would read. `maxTimeSeconds` is at
    /// least 600 (AWS's bound), so tests move the clock instead of waiting.
    pub async fn backdate_schedulable(&self, job: &Job, seconds: i64) {
        let mut conditions = job.status.clone().expect("status").conditions;
        let schedulable = conditions
            .iter_mut()
            .find(|c| c.type_ == barge_crds::consts::CONDITION_SCHEDULABLE)
            .expect("Schedulable condition");
        let earlier = schedulable.last_transition_time.0 - jiff::SignedDuration::from_secs(seconds);
        schedulable.last_transition_time =
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(earlier);
        self.jobs()
            .patch_status(
                &job.name_any(),
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({"status": {"conditions": conditions}})),
            )
            .await
            .expect("move the clock back");
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn definitions(&self) -> Api<JobDefinition> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn compute_environments(&self) -> Api<ComputeEnvironment> {
        Api::all(self.client.clone())
    }

    pub fn queues(&self) -> Api<JobQueue> {
        Api::all(self.client.clone())
    }

    pub fn policies(&self) -> Api<SchedulingPolicy> {
        Api::all(self.client.clone())
    }

    pub fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    /// Polls `probe` every [`POLL`] until it returns `Some`; fails after [`WAIT`] with the
    /// operator log.
    pub async fn wait_until<T, F, Fut>(&self, what: &str, probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        self.wait_until_for(what, WAIT, probe).await
    }

    pub async fn wait_until_for<T, F, Fut>(&self, what: &str, limit: Duration, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(value) = probe().await {
                return value;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "timed out after {limit:?} waiting for {what}\n{}",
                    self.operator_log()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls a namespaced object until `pred` holds; fails with the last object seen.
    pub async fn wait_for<K>(
        &self,
        api: &Api<K>,
        name: &str,
        what: &str,
        pred: impl Fn(&K) -> bool,
    ) -> K
    where
        K: Clone + DeserializeOwned + Debug + serde::Serialize,
    {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut last = None;
        loop {
            if let Ok(Some(obj)) = api.get_opt(name).await {
                if pred(&obj) {
                    return obj;
                }
                last = Some(obj);
            }
            if tokio::time::Instant::now() >= deadline {
                let last = last
                    .map(|o| serde_yaml::to_string(&o).unwrap_or_default())
                    .unwrap_or_else(|| "(never seen)".into());
                panic!(
                    "timed out after {WAIT:?} waiting for {name} to be {what}; last seen:\n{last}\n{}",
                    self.operator_log()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the job is SUCCEEDED or FAILED and returns it.
    pub async fn wait_finished(&self, job: &str) -> Job {
        self.wait_for(&self.jobs(), job, "finished", |j| {
            status_of(j).is_some_and(JobStatus::is_finished)
        })
        .await
    }

    /// Waits until the job is finished and asserts its final status.
    pub async fn wait_job(&self, job: &str, expected: JobStatus) -> Job {
        let found = self.wait_finished(job).await;
        if status_of(&found) != Some(expected) {
            panic!(
                "job {job} ended {:?}, expected {expected}:\n{}\n{}",
                status_of(&found),
                serde_yaml::to_string(&found).unwrap_or_default(),
                self.operator_log()
            );
        }
        found
    }

    /// Waits until the job has reached `state` (or a later one).
    pub async fn wait_job_reached(&self, job: &str, state: JobStatus) -> Job {
        self.wait_for(&self.jobs(), job, state.as_str(), |j| {
            status_of(j).is_some_and(|s| s >= state)
        })
        .await
    }

    /// Waits until a compute environment is VALID with `nodes` Ready nodes.
    pub async fn wait_compute_environment(&self, name: &str, nodes: usize) {
        let name = self.render(name);
        self.wait_for(&self.compute_environments(), &name, "VALID", |ce| {
            ce.status
                .as_ref()
                .and_then(|s| s.status)
                .is_some_and(|s| s == CeStatus::Valid)
        })
        .await;
        let selector = format!("{}={name}", barge_crds::consts::LABEL_COMPUTE_ENVIRONMENT);
        let nodes_api = self.nodes();
        self.wait_until(&format!("{nodes} Ready nodes of {name}"), || {
            let nodes_api = nodes_api.clone();
            let selector = selector.clone();
            async move {
                let list = nodes_api
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .ok()?;
                let ready = list.items.iter().filter(|n| node_is_ready(n)).count();
                (ready >= nodes).then_some(())
            }
        })
        .await;
    }

    /// Pods of a job (every attempt, every child).
    pub async fn pods_of(&self, job: &str) -> Vec<Pod> {
        self.pods()
            .list(&ListParams::default().labels(&format!("{LABEL_JOB_NAME}={job}")))
            .await
            .expect("list pods")
            .items
    }

    /// The log of a pod's (first) container.
    pub async fn log(&self, pod: &str) -> String {
        self.pods()
            .logs(pod, &LogParams::default())
            .await
            .unwrap_or_else(|e| panic!("logs of {pod}: {e}"))
    }

    /// Waits until a pod's log contains `needle` (the log server may lag the pod's end).
    pub async fn wait_log(&self, pod: &str, needle: &str) -> String {
        let pods = self.pods();
        self.wait_until(&format!("log of {pod} to contain {needle:?}"), || {
            let pods = pods.clone();
            async move {
                let text = pods.logs(pod, &LogParams::default()).await.ok()?;
                text.contains(needle).then_some(text)
            }
        })
        .await
    }

    /// Patches `spec.terminate` of a job.
    pub async fn terminate(&self, job: &str, reason: &str, array_indices: Option<&str>) {
        let mut terminate = serde_json::json!({"reason": reason});
        if let Some(indices) = array_indices {
            terminate["arrayIndices"] = serde_json::json!(indices);
        }
        self.jobs()
            .patch(
                job,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"terminate": terminate}})),
            )
            .await
            .unwrap_or_else(|e| panic!("terminate {job}: {e}"));
    }

    /// Node loss (sim only): the Node is deleted and its pods fail.
    pub fn lose_node(&self, node: &str) -> usize {
        self.cluster()
            .lose_node(node)
            .unwrap_or_else(|e| panic!("lose node {node}: {e}"))
    }

    /// Records every pod uid ever seen per pod name in the test namespace, until dropped.
    pub fn watch_pod_uids(&self) -> PodUidRecorder {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(
            BTreeMap::<String, BTreeSet<String>>::new(),
        ));
        let record = seen.clone();
        let api = self.pods();
        let task = tokio::spawn(async move {
            let mut stream =
                std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
            while let Some(event) = stream.next().await {
                let pods: Vec<Pod> = match event {
                    Ok(watcher::Event::Apply(pod)) | Ok(watcher::Event::InitApply(pod)) => {
                        vec![pod]
                    }
                    _ => continue,
                };
                if let Ok(mut seen) = record.lock() {
                    for pod in pods {
                        if let Some(uid) = pod.metadata.uid.clone() {
                            seen.entry(pod.name_any()).or_default().insert(uid);
                        }
                    }
                }
            }
        });
        PodUidRecorder { seen, task }
    }

    /// Records every state of every pod of the test namespace the watch shows, in the API
    /// server's order, until dropped (see [`PodHistory`]).
    pub fn watch_pod_history(&self) -> PodHistory {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<PodObservation>::new()));
        let record = seen.clone();
        let api = self.pods();
        let started = std::time::Instant::now();
        let task = tokio::spawn(async move {
            let mut stream =
                std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
            while let Some(event) = stream.next().await {
                let (pod, deleted) = match event {
                    Ok(watcher::Event::Apply(pod)) | Ok(watcher::Event::InitApply(pod)) => {
                        (pod, false)
                    }
                    Ok(watcher::Event::Delete(pod)) => (pod, true),
                    _ => continue,
                };
                if let Ok(mut seen) = record.lock() {
                    let seq = seen.len();
                    seen.push(PodObservation::of(&pod, seq, started.elapsed(), deleted));
                }
            }
        });
        PodHistory { seen, task }
    }

    /// Stops the operator, the kubelet and the cluster; deletes the namespace of a real cluster.
    pub async fn finish(mut self) {
        self.finished = true;
        if self.sim.is_none() {
            // A real cluster outlives the test: delete what it created (best effort) while the
            // operator still runs to release its finalizers.
            delete_created_objects(&self.client, &self.ns).await;
        }
        self.kill_operator();
        if let Some(kubelet) = self.kubelet.take() {
            kubelet.shutdown().await;
        }
        if let Some(sim) = self.sim.take() {
            sim.cluster.shutdown().await;
        }
    }
}

impl Drop for E2e {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("namespace {}\n{}", self.ns, self.operator_log());
        }
        if self.sim.is_none() && !self.finished {
            // The test failed (or returned) before `finish`: a real cluster must not keep its
            // namespace and cluster-scoped objects. The operator still runs meanwhile, to
            // release its finalizers.
            cleanup_blocking(&self.kubeconfig, &self.ns);
        }
        self.kill_operator();
    }
}

/// Installs Barge's CRDs and waits until they are established.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in barge_crds::all_crds() {
        api.create(&PostParams::default(), &crd)
            .await
            .expect("create CRD");
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    for name in barge_operator::run::crd_names() {
        loop {
            let crd = api.get_opt(&name).await.ok().flatten();
            let established = crd
                .as_ref()
                .and_then(|c| c.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {WAIT:?} waiting for CRD {name} to be established"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The nodes labelled as members of compute environment `ce` (none when the list fails).
pub async fn nodes_of(nodes: &Api<Node>, ce: &str) -> Vec<Node> {
    nodes
        .list(&ListParams::default().labels(&format!(
            "{}={ce}",
            barge_crds::consts::LABEL_COMPUTE_ENVIRONMENT
        )))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// The vCPUs of `nodes`, by their instance-type label and barge-core's catalog.
pub fn vcpus_of(nodes: &[Node]) -> i64 {
    nodes
        .iter()
        .filter_map(|n| n.labels().get(barge_crds::consts::LABEL_INSTANCE_TYPE))
        .filter_map(|t| barge_core::pool::lookup(t))
        .map(|t| t.vcpus)
        .sum()
}

/// Installs an upstream CRD of `e2e/fixtures/crds` (as its project publishes it) and waits until
/// the API server serves it.
pub async fn install_upstream_crd(client: &Client, file: &str) {
    let text = barge_fixtures::read(&barge_fixtures::crd(file));
    let crd: CustomResourceDefinition =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parsing {file}: {e}"));
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.name_any();
    api.create(&PostParams::default(), &crd)
        .await
        .unwrap_or_else(|e| panic!("creating CRD {name}: {e}"));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let established = api
            .get_opt(&name)
            .await
            .ok()
            .flatten()
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        if established {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for CRD {name} to be established"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Deletes (best effort) a test's namespace and the cluster-scoped objects named after it
/// (`<namespace>-...`: queues, then compute environments).
async fn delete_created_objects(client: &Client, ns: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(ns, &DeleteParams::default()).await;
    let prefix = format!("{ns}-");
    let queues: Api<JobQueue> = Api::all(client.clone());
    if let Ok(list) = queues.list(&ListParams::default()).await {
        for queue in list
            .items
            .iter()
            .filter(|q| q.name_any().starts_with(&prefix))
        {
            let _ = queues
                .delete(&queue.name_any(), &DeleteParams::default())
                .await;
        }
    }
    let ces: Api<ComputeEnvironment> = Api::all(client.clone());
    if let Ok(list) = ces.list(&ListParams::default()).await {
        for ce in list
            .items
            .iter()
            .filter(|c| c.name_any().starts_with(&prefix))
        {
            let _ = ces.delete(&ce.name_any(), &DeleteParams::default()).await;
        }
    }
}

/// [`delete_created_objects`] from a synchronous context (a `Drop`, maybe during a panic, on a
/// thread whose runtime is busy unwinding): on a thread of its own, with its own runtime and a
/// client of its own, waited for at most [`CLEANUP_LIMIT`].
pub fn cleanup_blocking(kubeconfig: &Path, ns: &str) {
    let kubeconfig = kubeconfig.to_path_buf();
    let ns = ns.to_string();
    let worker = std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => return Err(format!("runtime: {e}")),
        };
        runtime.block_on(async {
            let client = barge_operator::run::client(Some(&kubeconfig))
                .await
                .map_err(|e| format!("client: {e}"))?;
            tokio::time::timeout(CLEANUP_LIMIT, delete_created_objects(&client, &ns))
                .await
                .map_err(|_| format!("not done after {CLEANUP_LIMIT:?}"))
        })
    });
    match worker.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("clean-up of the test's objects failed: {e}"),
        Err(_) => eprintln!("clean-up of the test's objects panicked"),
    }
}

/// Pod uids seen per pod name (see [`E2e::watch_pod_uids`]).
pub struct PodUidRecorder {
    seen: std::sync::Arc<std::sync::Mutex<BTreeMap<String, BTreeSet<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PodUidRecorder {
    pub fn snapshot(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for PodUidRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One state of a pod as a watch showed it (see [`E2e::watch_pod_history`]).
#[derive(Clone, Debug)]
pub struct PodObservation {
    /// Position in the history: observations are in the API server's order.
    pub seq: usize,
    /// When the test saw it, from the start of the recording.
    pub at: Duration,
    pub name: String,
    pub uid: String,
    pub node: Option<String>,
    pub phase: Option<String>,
    /// The watch's DELETED event (the pod's last state).
    pub deleted: bool,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The whole object as the watch showed it.
    pub pod: Pod,
}

impl PodObservation {
    fn of(pod: &Pod, seq: usize, at: Duration, deleted: bool) -> Self {
        Self {
            seq,
            at,
            name: pod.name_any(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            phase: pod.status.as_ref().and_then(|s| s.phase.clone()),
            deleted,
            labels: pod.labels().clone(),
            annotations: pod.annotations().clone(),
            pod: pod.clone(),
        }
    }

    /// Whether the pod no longer runs: deleted, Succeeded or Failed.
    pub fn ended(&self) -> bool {
        self.deleted || matches!(self.phase.as_deref(), Some("Succeeded") | Some("Failed"))
    }
}

/// Every observed state of the test namespace's pods (see [`E2e::watch_pod_history`]).
pub struct PodHistory {
    seen: std::sync::Arc<std::sync::Mutex<Vec<PodObservation>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PodHistory {
    pub fn snapshot(&self) -> Vec<PodObservation> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Every uid seen per pod name (a name with two uids was created twice).
    pub fn uids(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut uids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for o in self.snapshot() {
            uids.entry(o.name).or_default().insert(o.uid);
        }
        uids
    }

    /// The first state seen of each of `names` (in that order), once all have been seen: what
    /// a pod was created as, even if it is gone since.
    pub fn first_seen(&self, names: &[String]) -> Option<Vec<Pod>> {
        let snapshot = self.snapshot();
        names
            .iter()
            .map(|name| {
                snapshot
                    .iter()
                    .find(|o| &o.name == name)
                    .map(|o| o.pod.clone())
            })
            .collect()
    }
}

impl Drop for PodHistory {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// (resource, namespaced) of the kinds the harness applies.
fn api_resource(kind: &str) -> Option<(ApiResource, bool)> {
    Some(match kind {
        "ComputeEnvironment" => (ApiResource::erase::<ComputeEnvironment>(&()), false),
        "JobQueue" => (ApiResource::erase::<JobQueue>(&()), false),
        "SchedulingPolicy" => (ApiResource::erase::<SchedulingPolicy>(&()), false),
        "JobDefinition" => (ApiResource::erase::<JobDefinition>(&()), true),
        "Job" => (ApiResource::erase::<Job>(&()), true),
        _ => return None,
    })
}

pub fn status_of(job: &Job) -> Option<JobStatus> {
    job.status.as_ref().and_then(|s| s.status)
}

pub fn status_reason(job: &Job) -> String {
    job.status
        .as_ref()
        .and_then(|s| s.status_reason.clone())
        .unwrap_or_default()
}

pub fn attempts(job: &Job) -> usize {
    job.status.as_ref().map(|s| s.attempts.len()).unwrap_or(0)
}

pub fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether a Node belongs to the simulated kubelet.
pub fn is_simulated(node: &Node) -> bool {
    node.labels().contains_key(LABEL_SIM_SIMULATED)
}

/// Parses trace lines `<label> <start|end> <nanos>` into label → (start, end).
pub fn trace_spans(lines: &[String]) -> BTreeMap<String, (Option<u128>, Option<u128>)> {
    let mut spans: BTreeMap<String, (Option<u128>, Option<u128>)> = BTreeMap::new();
    for line in lines {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [label, edge, nanos] = parts.as_slice() {
            let Ok(nanos) = nanos.parse::<u128>() else {
                continue;
            };
            let span = spans.entry(label.to_string()).or_default();
            match *edge {
                "start" => span.0 = Some(nanos),
                "end" => span.1 = Some(nanos),
                _ => {}
            }
        }
    }
    spans
}

/// The (start, end) of `label` in `spans` (from [`trace_spans`]); panics, naming the label,
/// when either edge was not traced.
pub fn traced_span(
    spans: &BTreeMap<String, (Option<u128>, Option<u128>)>,
    label: &str,
) -> (u128, u128) {
    let (start, end) = spans.get(label).copied().unwrap_or_default();
    (
        start.unwrap_or_else(|| panic!("{label} start traced: {spans:?}")),
        end.unwrap_or_else(|| panic!("{label} end traced: {spans:?}")),
    )
}

/// A shell snippet that waits until the test calls [`E2e::open_gate`]: holds a job RUNNING for
/// exactly as long as the test needs, instead of guessing a duration.
pub const GATE: &str = "while [ ! -e ${GATE} ]; do sleep 0.05; done";

/// A shell snippet for process-runtime commands: appends `<label> start <ns>`, runs `body`,
/// appends `<label> end <ns>` (only when `body` succeeded). `label` may use shell variables.
pub fn traced(label: &str, body: &str) -> String {
    format!(
        "echo \"{label} start $(date +%s%N)\" >> ${{TRACE}} && {{ {body} ; }} && echo \"{label} end $(date +%s%N)\" >> ${{TRACE}}"
    )
}

// ---------------------------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------------------------

/// Indents every line of `text` by `spaces`.
pub fn indent(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A MANAGED simulated compute environment `${NS}-<name>` of exactly `vcpus` vCPUs of 2-vCPU
/// nodes (c5.large), so `vcpus / 2` nodes.
pub fn compute_environment(name: &str, vcpus: i32) -> String {
    compute_environment_of(name, usize::try_from(vcpus).unwrap_or(0), "c5.large")
}

/// A MANAGED simulated compute environment `${NS}-<name>` of exactly `vcpus` vCPUs of
/// `instance_type` nodes.
pub fn compute_environment_of(name: &str, vcpus: usize, instance_type: &str) -> String {
    format!(
        r#"---
apiVersion: batch.barge.dev/v1alpha1
kind: ComputeEnvironment
metadata: {{name: "${{NS}}-{name}"}}
spec:
  type: MANAGED
  state: ENABLED
  computeResources:
    type: EC2
    minvCpus: {vcpus}
    maxvCpus: {vcpus}
    desiredvCpus: {vcpus}
    instanceTypes: [{instance_type}]
    provider: {{simulated: {{}}}}
"#
    )
}

/// A queue `${NS}-<name>` over the given environments (by short name), in order.
pub fn job_queue(name: &str, priority: i32, environments: &[&str]) -> String {
    let order: Vec<String> = environments
        .iter()
        .enumerate()
        .map(|(i, ce)| format!("{{order: {}, computeEnvironment: \"${{NS}}-{ce}\"}}", i + 1))
        .collect();
    format!(
        r#"---
apiVersion: batch.barge.dev/v1alpha1
kind: JobQueue
metadata: {{name: "${{NS}}-{name}"}}
spec:
  state: ENABLED
  priority: {priority}
  computeEnvironmentOrder: [{}]
"#,
        order.join(", ")
    )
}

/// A container job definition running `script` with `sh -c` (extra words after the script are
/// its `$0`, `$1`...), asking for `vcpus` vCPUs and 64 MiB; `extra` is spec-level YAML.
pub fn job_definition(name: &str, script: &str, args: &[&str], vcpus: &str, extra: &str) -> String {
    let args: String = args.iter().map(|a| format!("      - \"{a}\"\n")).collect();
    format!(
        r#"---
apiVersion: batch.barge.dev/v1alpha1
kind: JobDefinition
metadata: {{name: {name}}}
spec:
  type: container
  containerProperties:
    image: busybox:1.36
    command:
      - sh
      - -c
      - |
{script}
{args}    resourceRequirements:
      - {{type: VCPU, value: "{vcpus}"}}
      - {{type: MEMORY, value: "64"}}
{extra}
"#,
        script = indent(script, 8),
        extra = indent(extra, 2),
    )
}

/// A job of `definition` on queue `${NS}-<queue>`; `extra` is spec-level YAML.
pub fn job(name: &str, queue: &str, definition: &str, extra: &str) -> String {
    format!(
        r#"---
apiVersion: batch.barge.dev/v1alpha1
kind: Job
metadata: {{name: {name}}}
spec:
  jobQueue: "${{NS}}-{queue}"
  jobDefinition: {definition}
{extra}
"#,
        extra = indent(extra, 2),
    )
}

/// Spec-level YAML for the scripted runtime: tags that become pod annotations.
pub fn scripted_tags(duration_seconds: &str, exit_code: i32) -> String {
    format!(
        "propagateTags: true\ntags:\n  sim.barge.dev/runtime: scripted\n  sim.barge.dev/duration-seconds: \"{duration_seconds}\"\n  sim.barge.dev/exit-code: \"{exit_code}\"\n"
    )
}

/// A minimal CRD for the Karpenter kwok provider's NodeClass kind (test infrastructure: the
/// karpenter provider's environments refer to a `KWOKNodeClass`).
pub const NODE_CLASS_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: kwoknodeclasses.karpenter.kwok.sh}
spec:
  group: karpenter.kwok.sh
  names: {kind: KWOKNodeClass, listKind: KWOKNodeClassList, plural: kwoknodeclasses, singular: kwoknodeclass}
  scope: Cluster
  versions:
    - name: v1alpha1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#;

/// The `KWOKNodeClass` kind of [`NODE_CLASS_CRD`].
pub fn node_class_resource() -> ApiResource {
    ApiResource {
        group: "karpenter.kwok.sh".into(),
        version: "v1alpha1".into(),
        api_version: "karpenter.kwok.sh/v1alpha1".into(),
        kind: "KWOKNodeClass".into(),
        plural: "kwoknodeclasses".into(),
    }
}

/// Creates [`NODE_CLASS_CRD`] and waits until it is established.
pub async fn install_node_class_crd(env: &E2e) {
    let crd: CustomResourceDefinition = serde_yaml::from_str(NODE_CLASS_CRD).expect("CRD YAML");
    let api: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    api.create(&PostParams::default(), &crd)
        .await
        .expect("create the KWOKNodeClass CRD");
    env.wait_until("the KWOKNodeClass CRD established", || {
        let api = api.clone();
        async move {
            let crd = api
                .get_opt("kwoknodeclasses.karpenter.kwok.sh")
                .await
                .ok()
                .flatten()?;
            crd.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        }
    })
    .await;
}

/// Creates the `KWOKNodeClass` `name` (the CRD must be installed, see [`install_node_class_crd`]).
pub async fn create_node_class(env: &E2e, name: &str) {
    let api: Api<DynamicObject> = Api::all_with(env.client.clone(), &node_class_resource());
    let object: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "karpenter.kwok.sh/v1alpha1",
        "kind": "KWOKNodeClass",
        "metadata": {"name": name},
    }))
    .expect("object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("create the KWOKNodeClass");
}

/// The Cluster API MachineDeployments of the test's namespace.
pub fn machine_deployments(env: &E2e) -> Api<DynamicObject> {
    Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &ApiResource {
            group: "cluster.x-k8s.io".into(),
            version: "v1beta2".into(),
            api_version: "cluster.x-k8s.io/v1beta2".into(),
            kind: "MachineDeployment".into(),
            plural: "machinedeployments".into(),
        },
    )
}

/// Creates a MachineDeployment with `replicas` whose machines are of `sim_type` (the
/// stand-in's stand-in for the infrastructure template), with extra `annotations`.
pub async fn create_machine_deployment(
    env: &E2e,
    name: &str,
    replicas: i64,
    sim_type: &str,
    annotations: &[(&str, &str)],
) {
    let mut metadata_annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    metadata_annotations.insert("sim.barge.dev/instance-type", sim_type);
    let md: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2",
        "kind": "MachineDeployment",
        "metadata": {"name": name, "namespace": env.ns, "annotations": metadata_annotations},
        "spec": {
            "clusterName": "sim",
            "replicas": replicas,
            "selector": {"matchLabels": {"cluster.x-k8s.io/deployment-name": name}},
            "template": {
                "metadata": {"labels": {"cluster.x-k8s.io/deployment-name": name}},
                "spec": {
                    "clusterName": "sim",
                    "version": "v1.31.0",
                    "bootstrap": {"dataSecretName": format!("{name}-bootstrap")},
                    "infrastructureRef": {
                        "apiGroup": "infrastructure.cluster.x-k8s.io",
                        "kind": "AWSMachineTemplate",
                        "name": name,
                    },
                },
            },
        },
    }))
    .expect("MachineDeployment");
    machine_deployments(env)
        .patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(&md))
        .await
        .unwrap_or_else(|e| panic!("creating MachineDeployment {name}: {e}"));
}

/// A MANAGED environment `${NS}-<name>` in `state` that scales with demand between `min_vcpus`
/// and `max_vcpus` of `instance_types` nodes (a YAML list's items), scaling in after `delay_s`,
/// with the given `provider` YAML (a flow mapping).
pub fn managed_environment(
    name: &str,
    state: &str,
    min_vcpus: i32,
    max_vcpus: i32,
    instance_types: &str,
    delay_s: i32,
    provider: &str,
) -> String {
    format!(
        r#"---
apiVersion: batch.barge.dev/v1alpha1
kind: ComputeEnvironment
metadata: {{name: "${{NS}}-{name}"}}
spec:
  type: MANAGED
  state: {state}
  computeResources:
    type: EC2
    allocationStrategy: BEST_FIT
    minvCpus: {min_vcpus}
    maxvCpus: {max_vcpus}
    instanceTypes: [{instance_types}]
    scaleDownDelaySeconds: {delay_s}
    provider: {provider}
"#
    )
}

/// An ENABLED [`managed_environment`] with the simulated provider.
pub fn scaling_environment(
    name: &str,
    max_vcpus: i32,
    instance_types: &str,
    delay_s: i32,
) -> String {
    managed_environment(
        name,
        "ENABLED",
        0,
        max_vcpus,
        instance_types,
        delay_s,
        "{simulated: {}}",
    )
}

/// Runs `barge import aws` with `args`; returns its stdout, failing the test on a non-zero exit.
pub fn barge_import_aws<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let output = Command::new(env!("CARGO_BIN_EXE_barge"))
        .args(["import", "aws"])
        .args(args)
        .output()
        .expect("run barge import aws");
    assert!(
        output.status.success(),
        "barge import aws failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Whether kubectl runs; when it does not, false (skipped loudly) or a panic under
/// `BARGE_REQUIRE_TOOLS=1`.
pub fn kubectl_available() -> bool {
    let ok = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("BARGE_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("required tool `kubectl` is not available (BARGE_REQUIRE_TOOLS=1)");
        }
        eprintln!("\n!!!!!!!!!! SKIPPING: `kubectl` is not installed; set BARGE_REQUIRE_TOOLS=1 to make this a failure !!!!!!!!!!\n");
    }
    ok
}

/// A fresh directory holding `kubectl-barge`, the `barge` binary linked under the kubectl
/// plugin's name (put it first on the PATH to run `kubectl barge`).
pub fn kubectl_plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    link_kubectl_plugin(
        Path::new(env!("CARGO_BIN_EXE_barge")),
        &dir.path().join("kubectl-barge"),
    );
    dir
}

#[cfg(unix)]
fn link_kubectl_plugin(target: &Path, at: &Path) {
    std::os::unix::fs::symlink(target, at).expect("link kubectl-barge");
}

#[cfg(not(unix))]
fn link_kubectl_plugin(target: &Path, at: &Path) {
    std::fs::copy(target, at.with_extension("exe")).expect("copy kubectl-barge");
}

/// A simulated [`managed_environment`] `${NS}-ce` of 4 to 32 vCPUs of `instance_types` (scale-in
/// after 30 s) and the queue `${NS}-q` over it: a pool that keeps a node or two up and adds
/// nodes of the type a job asks for.
pub fn elastic_pool_and_queue(instance_types: &str) -> String {
    format!(
        "{}{}",
        managed_environment(
            "ce",
            "ENABLED",
            4,
            32,
            instance_types,
            30,
            "{simulated: {}}"
        ),
        job_queue("q", 10, &["ce"])
    )
}

/// Applies the fixed [`compute_environment`] `${NS}-ce` of `vcpus` vCPUs and the queue `${NS}-q`
/// over it, and waits for the environment's `vcpus / 2` nodes.
pub async fn fixed_pool_and_queue(env: &E2e, vcpus: i32) {
    env.apply(&format!(
        "{}{}",
        compute_environment("ce", vcpus),
        job_queue("q", 10, &["ce"])
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", usize::try_from(vcpus / 2).unwrap_or(0))
        .await;
}
