//! barge-sim: a simulated Kubernetes cluster for Barge's tests and demo.
//!
//! - [`apiserver`]: an in-memory API server over HTTP on 127.0.0.1 speaking the Kubernetes REST
//!   protocol (discovery, CRDs with schema validation, CRUD, patch, server-side apply, watch,
//!   finalizers, garbage collection, pods/log and pods/binding) plus fault injection and
//!   statistics under `/sim/v1`.
//! - [`Cluster`]: the handle tests use: start a server, get a `kube::Client` or a kubeconfig,
//!   inject faults, read request statistics, lose nodes, shut down.
//!
//! Authentication and authorization ([`apiserver::auth`]): the kubeconfig carries no
//! credentials and the server accepts any; such requests are `system:admin` in `system:masters`
//! and are allowed everything (no RBAC is evaluated for them). Requests that impersonate a user
//! (`Impersonate-User`, `Impersonate-Group`, ... — kubectl `--as`/`--as-group`, or a kubeconfig
//! user with `as:` / `as-groups:` such as [`Cluster::kubeconfig_as`] writes, which kube-rs honours
//! too) are authorized by RBAC as kube-apiserver does: Roles, ClusterRoles and their bindings in
//! the store, upstream's bootstrap roles (cluster-admin, admin, edit, view, system:aggregate-to-*,
//! system:discovery, system:basic-user, system:public-info-viewer), ClusterRole aggregation, 403
//! Status worded as upstream, and the access reviews (`kubectl auth can-i`). Tests read what
//! impersonated clients did from [`Cluster::request_log`] ([`RequestRecord`]: user, groups, verb,
//! group, resource, subresource, namespace, name, allowed, code) and empty it with
//! [`Cluster::clear_request_log`]; `GET /sim/v1/requests` serves the same log as JSON.
#![forbid(unsafe_code)]

pub mod apimachinery;
pub mod apiserver;
pub mod kubelet;
pub mod standins;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use apiserver::auth::reqlog::RequestRecord;
pub use apiserver::faults::{FaultConfig, StatsSnapshot};
use apiserver::{ApiServer, RunningServer, ServerConfig};

/// Errors of starting or driving a cluster.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("starting the API server: {0}")]
    Start(#[from] std::io::Error),
    #[error("writing the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("building a kube client: {0}")]
    Client(String),
    #[error("API error {code}: {message}")]
    Api { code: u16, message: String },
}

impl From<apiserver::status::ApiError> for SimError {
    fn from(e: apiserver::status::ApiError) -> Self {
        SimError::Api {
            code: e.code,
            message: e
                .body
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or_default()
                .to_string(),
        }
    }
}

/// Which simulated kubelet `barge-sim serve` starts beside the API server (in-process users
/// start a [`kubelet::Kubelet`] themselves, with the configuration they need).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KubeletMode {
    /// No kubelet: pods stay Pending unless something else runs them.
    #[default]
    None,
    /// Durations and exit codes from pod annotations.
    Scripted,
    /// Container commands run with /bin/sh on the host.
    Process,
}

/// How to start a [`Cluster`].
#[derive(Debug, Clone, Default)]
pub struct ClusterConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Where to write the kubeconfig; None = a temporary file removed at shutdown.
    pub kubeconfig: Option<PathBuf>,
    /// Watch history per resource (events); None = the default (20,000).
    pub watch_history: Option<usize>,
    /// Interval of watch bookmarks; None = 5 s.
    pub bookmark_interval: Option<Duration>,
    /// Events buffered per resource for live watchers before a lagging one is closed;
    /// None = the default (16,384).
    pub watch_buffer: Option<usize>,
    /// Latency added to every write request (zero by default). A real API server answers a
    /// write only after etcd has committed it — tens of milliseconds, not the sim's
    /// microseconds — and code that races its own writes hides behind a fast server.
    pub write_latency: Duration,
    /// kube-apiserver's max-in-flight limits ([`apiserver::inflight`]); the default is off
    /// (0 / 0), [`apiserver::inflight::MaxInFlight::upstream_defaults`] is kube-apiserver's.
    /// Requests that do not impersonate anyone are `system:masters` and never refused.
    pub max_in_flight: apiserver::inflight::MaxInFlight,
    /// Run the Karpenter stand-in ([`standins::karpenter`]): NodePools + pending pods → Nodes.
    pub karpenter: bool,
    /// Run the Cluster API stand-in ([`standins::capi`]): MachineDeployment replicas → Nodes.
    pub cluster_api: bool,
}

/// A running simulated cluster.
pub struct Cluster {
    server: RunningServer,
    kubeconfig_path: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    standins: Vec<standins::StandinHandle>,
}

/// Handle to change fault injection while a cluster runs.
#[derive(Clone)]
pub struct FaultsHandle(Arc<ApiServer>);

impl FaultsHandle {
    pub fn set(&self, cfg: FaultConfig) {
        self.0.faults.set(cfg);
    }

    pub fn get(&self) -> FaultConfig {
        self.0.faults.get()
    }

    pub fn clear(&self) {
        self.0.faults.set(FaultConfig::default());
    }
}

impl Cluster {
    /// Start an API server on loopback and write its kubeconfig.
    pub async fn start(config: ClusterConfig) -> Result<Cluster, SimError> {
        let mut sc = ServerConfig {
            port: config.port,
            write_latency: config.write_latency,
            max_in_flight: config.max_in_flight,
            ..ServerConfig::default()
        };
        if let Some(h) = config.watch_history {
            sc.watch_history = h;
        }
        if let Some(b) = config.bookmark_interval {
            sc.bookmark_interval = b;
        }
        if let Some(b) = config.watch_buffer {
            sc.watch_buffer = b;
        }
        let server = apiserver::start(sc).await?;
        let (path, tempdir) = match config.kubeconfig {
            Some(p) => (p, None),
            None => {
                let dir = tempfile::Builder::new().prefix("barge-sim-").tempdir()?;
                (dir.path().join("kubeconfig"), Some(dir))
            }
        };
        apiserver::kubeconfig::write_kubeconfig(&path, &server.url()).map_err(|source| {
            SimError::Kubeconfig {
                path: path.clone(),
                source,
            }
        })?;
        let mut cluster = Cluster {
            server,
            kubeconfig_path: path,
            _tempdir: tempdir,
            standins: Vec::new(),
        };
        if config.karpenter {
            let k = standins::karpenter::Karpenter::start(
                cluster.client()?,
                standins::karpenter::KarpenterConfig::default(),
            );
            cluster.standins.push(k);
        }
        if config.cluster_api {
            let c = standins::capi::ClusterApi::start(
                cluster.client()?,
                standins::capi::ClusterApiConfig::default(),
            );
            cluster.standins.push(c);
        }
        Ok(cluster)
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// A kubeconfig (YAML) for this cluster whose user impersonates `user` with `groups` (no
    /// groups: only those the server adds — `system:authenticated`, and a service account's
    /// `system:serviceaccounts` + `system:serviceaccounts:NS`). kubectl and kube-rs both send the
    /// impersonation headers from it, so their requests are authorized by RBAC as that user.
    pub fn kubeconfig_as(&self, user: &str, groups: &[&str]) -> String {
        apiserver::kubeconfig::kubeconfig_as_yaml(&self.url(), user, groups)
    }

    /// A kube client impersonating `user` with `groups` (built from [`Cluster::kubeconfig_as`]).
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> Result<kube::Client, SimError> {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_as(user, groups))
            .map_err(|e| SimError::Client(e.to_string()))?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| SimError::Client(e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| SimError::Client(e.to_string()))
    }

    /// Every impersonated request so far (oldest first; bounded to the last 100,000), with the
    /// attributes it was authorized on and whether it was allowed. Unimpersonated requests are
    /// not recorded.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.server.api.request_log()
    }

    /// Empty the request log.
    pub fn clear_request_log(&self) {
        self.server.api.request_log.clear();
    }

    /// A kube client for this cluster (default namespace `default`). Needs a tokio runtime.
    pub fn client(&self) -> Result<kube::Client, SimError> {
        let uri: http::Uri = self
            .url()
            .parse()
            .map_err(|e: http::uri::InvalidUri| SimError::Client(e.to_string()))?;
        let config = kube::Config::new(uri);
        kube::Client::try_from(config).map_err(|e| SimError::Client(e.to_string()))
    }

    pub fn faults(&self) -> FaultsHandle {
        FaultsHandle(self.server.api.clone())
    }

    /// Request counts so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.server.api.stats_snapshot()
    }

    pub fn reset_stats(&self) {
        self.server.api.stats.reset();
    }

    /// Node loss: mark the Node lost and delete it; pod GC fails its pods. Returns their number.
    pub fn lose_node(&self, name: &str) -> Result<usize, SimError> {
        self.node_fault(name, apiserver::admin::lose_node)
    }

    /// Spot interruption: the Node is annotated `sim.barge.dev/spot-reclaimed`, then lost as in
    /// [`Cluster::lose_node`] (its pods fail by pod GC). Refused (400) for a node labelled
    /// `karpenter.sh/capacity-type: on-demand`. Returns the number of its pods.
    pub fn reclaim_spot_node(&self, name: &str) -> Result<usize, SimError> {
        self.node_fault(name, apiserver::admin::reclaim_spot_node)
    }

    /// Applies a node fault under the store lock, then wakes the built-in controllers (pod GC).
    fn node_fault(
        &self,
        name: &str,
        fault: fn(&mut apiserver::State, &str) -> apiserver::status::ApiResult<usize>,
    ) -> Result<usize, SimError> {
        let n = {
            let mut st = self
                .server
                .api
                .state
                .lock()
                .map_err(|_| SimError::Client("store poisoned".into()))?;
            fault(&mut st, name)?
        };
        self.server.api.wake_controllers.notify_one();
        Ok(n)
    }

    /// Drop all watch history, so watches resuming from older revisions get 410 Gone.
    pub fn compact(&self) {
        if let Ok(mut st) = self.server.api.state.lock() {
            st.store.compact();
        }
    }

    /// The server state, for in-process tools (kubelet wiring, benchmarks).
    pub fn api(&self) -> &Arc<ApiServer> {
        &self.server.api
    }

    pub async fn shutdown(mut self) {
        for s in std::mem::take(&mut self.standins) {
            s.shutdown().await;
        }
        self.server.shutdown().await;
    }
}
