//! Helpers of the controller tests: an in-process simulated cluster (API server + scripted
//! kubelet) with Barge's CRDs installed, the operator running in-process on it, and waiting on
//! conditions with timeouts.
#![allow(dead_code)]

use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::Duration;

use barge_operator::run::{self, LogFormat, OperatorArgs};
use barge_operator::shutdown::{Shutdown, ShutdownTrigger};
use barge_sim::kubelet::{Kubelet, KubeletConfig, KubeletHandle, RuntimeKind};
use barge_sim::{Cluster, ClusterConfig};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

/// Longest wait for a condition.
pub const WAIT: Duration = Duration::from_secs(30);

/// A simulated cluster with Barge's CRDs and a scripted kubelet.
pub struct Env {
    pub cluster: Cluster,
    pub kubelet: KubeletHandle,
    pub client: Client,
}

/// An operator running in-process.
pub struct Operator {
    trigger: ShutdownTrigger,
    pub task: tokio::task::JoinHandle<Result<(), run::RunError>>,
}

impl Operator {
    /// Stops it like SIGTERM does and waits for it to exit.
    pub async fn stop(self) -> Result<(), run::RunError> {
        self.trigger.trigger();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("operator stops in time")
            .expect("operator task")
    }
}

/// Logs of the operator under test: `BARGE_TEST_LOG=debug` (default warn).
pub fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        run::init_tracing(
            &std::env::var("BARGE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            LogFormat::Text,
        )
    });
}

impl Env {
    /// A cluster without CRDs.
    pub async fn bare() -> Env {
        init_logs();
        let cluster = Cluster::start(ClusterConfig::default())
            .await
            .expect("cluster");
        let client = cluster.client().expect("client");
        let config = KubeletConfig {
            runtime: RuntimeKind::Scripted,
            lease_renew_interval: Duration::from_secs(2),
            ..Default::default()
        };
        let kubelet = Kubelet::start(client.clone(), config)
            .await
            .expect("kubelet");
        Env {
            cluster,
            kubelet,
            client,
        }
    }

    /// A cluster with Barge's CRDs established.
    pub async fn start() -> Env {
        let env = Env::bare().await;
        env.install_crds().await;
        env
    }

    pub async fn install_crds(&self) {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for crd in barge_crds::all_crds() {
            api.create(&PostParams::default(), &crd)
                .await
                .expect("create CRD");
        }
        for name in run::crd_names() {
            wait_for(
                &api,
                &name,
                "Established",
                |crd: &CustomResourceDefinition| {
                    crd.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| {
                            c.iter()
                                .any(|c| c.type_ == "Established" && c.status == "True")
                        })
                },
            )
            .await;
        }
    }

    /// Flags for an operator on this cluster (metrics on a free port, fast intervals).
    pub fn operator_args(&self) -> OperatorArgs {
        OperatorArgs {
            kubeconfig: Some(self.cluster.kubeconfig_path().to_path_buf()),
            metrics_addr: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
            log_level: "warn".into(),
            log_format: LogFormat::Text,
            array_pod_retention: Default::default(),
            leader_election: false,
            lease_name: "barge-operator".into(),
            lease_namespace: Some("default".into()),
            lease_duration_seconds: 2,
            lease_renew_deadline_seconds: 1,
            lease_retry_period_seconds: 1,
            identity: None,
            status_coalesce_ms: 200,
            scheduler_interval_ms: 200,
            pod_create_concurrency: 8,
            queue_status_interval_ms: 1000,
            reconcile_concurrency: 0,
            status_refresh_seconds: 1,
            dependency_grace_seconds: 300,
            pod_create_give_up_seconds: 300,
            providers: Default::default(),
            job_events: Default::default(),
            finished_pod_retention_seconds:
                barge_operator::context::DEFAULT_FINISHED_POD_RETENTION_SECONDS,
            kube_api_qps: barge_operator::throttle::DEFAULT_QPS,
            kube_api_burst: barge_operator::throttle::DEFAULT_BURST,
            kube_api_max_in_flight: barge_operator::throttle::DEFAULT_MAX_IN_FLIGHT,
        }
    }

    pub fn start_operator_with(&self, args: OperatorArgs) -> Operator {
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn(run::run_until(args, shutdown));
        Operator { trigger, task }
    }

    pub fn start_operator(&self) -> Operator {
        self.start_operator_with(self.operator_args())
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>,
    {
        Api::all(self.client.clone())
    }

    pub fn namespaced<K>(&self, namespace: &str) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    pub async fn stop(self) {
        self.kubelet.shutdown().await;
        self.cluster.shutdown().await;
    }
}

/// Polls `api.get(name)` until `pred` holds, failing with the last object seen after [`WAIT`].
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, pred: impl Fn(&K) -> bool) -> K
where
    K: Clone + DeserializeOwned + Debug,
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
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {name} to be {what}; last seen: {last:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until `name` no longer exists.
pub async fn wait_gone<K>(api: &Api<K>, name: &str)
where
    K: Clone + DeserializeOwned + Debug,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let current = api.get_opt(name).await.expect("get");
        match current {
            None => return,
            Some(obj) => assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {name} to be deleted; last seen: {obj:#?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `probe` until it returns `Some`, failing after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An object from YAML.
pub fn from_yaml<K: DeserializeOwned>(text: &str) -> K {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("test manifest: {e}\n{text}"))
}

/// Whether an external tool (kubectl, python3 with helm_python) can be run; when it cannot, fail
/// under `BARGE_REQUIRE_TOOLS=1` (as in CI) and otherwise print a loud skip message.
pub fn tool_available(tool: &str, probe: &[&str]) -> bool {
    let ok = std::process::Command::new(tool)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("BARGE_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("required tool `{tool}` is not available (BARGE_REQUIRE_TOOLS=1)");
        }
        eprintln!("\n!!!!!!!!!! SKIPPING: `{tool}` is not installed; set BARGE_REQUIRE_TOOLS=1 to make this a failure !!!!!!!!!!\n");
    }
    ok
}
