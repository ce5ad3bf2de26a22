//! The simulated kubelet: a kube-rs client of any API server (the sim's or a real one) that
//! owns the Nodes labelled `sim.barge.dev/simulated=true` and runs the pods bound to them.
//!
//! Data flow: two kube-runtime watchers (Nodes by label, Pods) feed one [`manager`] task that
//! holds all state and decides; pure modules compute what it reports — [`podstate`] (pod
//! phase, conditions, container statuses), [`nodestatus`] (node status, Lease),
//! [`resources`] (admission), [`placement`] (binding of unscheduled pods), [`env`] (container
//! environment, Downward API); the runtimes act — [`scripted`] (timers in the manager's
//! deadline queue) and [`process`] (`/bin/sh` processes) — and [`logs`] serves container
//! output over HTTPS (a self-signed certificate, as a real kubelet makes when it has none) for
//! the API server's `pods/log`. Every change the manager wants is an API write, coalesced per
//! object and issued by a bounded pool; a deletion is confirmed with one grace-0 delete once
//! the containers have stopped, and only while the API server waits for it (a grace period
//! still running).
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), barge_sim::kubelet::KubeletError> {
//! use barge_sim::kubelet::{Kubelet, KubeletConfig};
//! let kubelet = Kubelet::start(client, KubeletConfig::default()).await?;
//! println!("logs on port {}", kubelet.log_port());
//! kubelet.shutdown().await;
//! # Ok(()) }
//! ```

pub mod consts;
pub mod env;
pub mod logs;
mod manager;
pub mod nodestatus;
pub mod placement;
pub mod podstate;
pub mod process;
pub mod quantity;
pub mod resources;
pub mod scripted;
mod watched;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use manager::{KubeletStats, StatsSnapshot};
pub use scripted::RuntimeKind;

use manager::{Input, Manager};
use nodestatus::Capacity;
use watched::WatchedPod;

/// How the kubelet behaves.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// Runtime of pods without a `sim.barge.dev/runtime` annotation.
    pub runtime: RuntimeKind,
    /// Time from a Node's appearance to Ready (annotation `sim.barge.dev/boot-delay-seconds`
    /// overrides it per node).
    pub boot_delay: Duration,
    /// Capacity of nodes without a `sim.barge.dev/capacity` annotation.
    pub default_capacity: BTreeMap<String, String>,
    /// Bind pods that name no node (schedulerName default-scheduler), first fit.
    pub bind_unscheduled: bool,
    /// Port of the log server on 127.0.0.1 (0 = a free port).
    pub log_port: u16,
    /// Label selector of the Nodes this kubelet owns.
    pub node_selector: String,
    /// Field selector for the pod watch (e.g. `spec.nodeName=n1` for a single node); `None`
    /// watches all pods (needed for binding).
    pub pod_field_selector: Option<String>,
    /// How often node Leases are renewed.
    pub lease_renew_interval: Duration,
    /// Base of the crash-loop back-off (10 s in a real kubelet).
    pub restart_backoff: Duration,
    /// API writes in flight at once.
    pub max_concurrent_writes: usize,
    /// Root of per-pod working directories of the process runtime (default: a fresh
    /// directory under the system temp dir, removed at shutdown).
    pub work_dir: Option<PathBuf>,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        Self {
            runtime: RuntimeKind::Scripted,
            boot_delay: Duration::ZERO,
            default_capacity: [
                ("cpu", "4"),
                ("memory", "16Gi"),
                ("pods", "110"),
                ("ephemeral-storage", "100Gi"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            bind_unscheduled: true,
            log_port: 0,
            node_selector: consts::DEFAULT_NODE_SELECTOR.to_string(),
            pod_field_selector: None,
            lease_renew_interval: Duration::from_secs(10),
            restart_backoff: Duration::from_secs(10),
            max_concurrent_writes: 64,
            work_dir: None,
        }
    }
}

/// Why the kubelet could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("invalid default capacity: {0}")]
    Capacity(String),
    #[error("binding the log server: {0}")]
    LogServer(#[source] std::io::Error),
    #[error("creating the work directory {path}: {source}")]
    WorkDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Entry point.
pub struct Kubelet;

/// A running kubelet.
pub struct KubeletHandle {
    stop: Option<oneshot::Sender<()>>,
    stop_logs: Option<oneshot::Sender<()>>,
    manager: JoinHandle<()>,
    watchers: Vec<JoinHandle<()>>,
    log_server: JoinHandle<()>,
    log_addr: std::net::SocketAddr,
    stats: Arc<KubeletStats>,
    inbox: mpsc::UnboundedSender<Input>,
    logs: Arc<logs::LogStore>,
}

impl Kubelet {
    /// Starts the kubelet: the log server, the watchers and the manager.
    pub async fn start(
        client: Client,
        config: KubeletConfig,
    ) -> Result<KubeletHandle, KubeletError> {
        let default_capacity =
            Capacity::new(config.default_capacity.clone()).map_err(KubeletError::Capacity)?;
        let work_dir = match &config.work_dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir().join(format!(
                "barge-sim-kubelet-{}-{}",
                std::process::id(),
                fastrand::u32(..)
            )),
        };
        tokio::fs::create_dir_all(&work_dir)
            .await
            .map_err(|source| KubeletError::WorkDir {
                path: work_dir.clone(),
                source,
            })?;
        let logs = Arc::new(logs::LogStore::default());
        let (stop_logs, logs_stopped) = oneshot::channel::<()>();
        let (log_addr, log_server) = logs::serve(logs.clone(), config.log_port, async {
            let _ = logs_stopped.await;
        })
        .await
        .map_err(KubeletError::LogServer)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(KubeletStats::default());
        let cfg = Arc::new(config);

        let mut node_cfg = watcher::Config::default().labels(&cfg.node_selector);
        node_cfg = node_cfg.any_semantic();
        let nodes = watcher(Api::<Node>::all(client.clone()), node_cfg).default_backoff();
        let mut pod_cfg = watcher::Config::default();
        if let Some(f) = &cfg.pod_field_selector {
            pod_cfg = pod_cfg.fields(f);
        }
        let pods = watcher(Api::<WatchedPod>::all(client.clone()), pod_cfg).default_backoff();
        let watchers = vec![
            forward(nodes, tx.clone(), |e| Input::Node(Box::new(e)), "nodes"),
            forward(
                pods,
                tx.clone(),
                |e| Input::Pod(Box::new(watched::into_pod_event(e))),
                "pods",
            ),
        ];

        let manager = Manager::new(
            cfg,
            client,
            logs.clone(),
            log_addr.port(),
            work_dir,
            stats.clone(),
            tx.clone(),
            default_capacity,
        );
        let (stop, stopped) = oneshot::channel();
        let manager = tokio::spawn(manager.run(rx, stopped));
        Ok(KubeletHandle {
            stop: Some(stop),
            stop_logs: Some(stop_logs),
            manager,
            watchers,
            log_server,
            log_addr,
            stats,
            inbox: tx,
            logs,
        })
    }
}

fn forward<K, S>(
    stream: S,
    tx: mpsc::UnboundedSender<Input>,
    wrap: fn(watcher::Event<K>) -> Input,
    what: &'static str,
) -> JoinHandle<()>
where
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    K: Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => {
                    if tx.send(wrap(ev)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(watch = what, error = %e, "kubelet watch error (retrying)")
                }
            }
        }
    })
}

impl KubeletHandle {
    /// Port of the log server (published in each node's daemonEndpoints).
    pub fn log_port(&self) -> u16 {
        self.log_addr.port()
    }

    /// Address of the log server.
    pub fn log_addr(&self) -> std::net::SocketAddr {
        self.log_addr
    }

    /// What the kubelet has done so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The current log text of a container (for tests; HTTP clients use the log server).
    pub fn container_log(&self, namespace: &str, pod: &str, uid: &str, container: &str) -> String {
        self.logs.container(namespace, pod, uid, container).text()
    }

    /// Simulates the loss of a node's machine: its heartbeats stop and its pods stop running
    /// (the same as the `sim.barge.dev/killed` annotation).
    pub fn kill_node(&self, name: &str) {
        let _ = self.inbox.send(Input::KillNode(name.to_string()));
    }

    /// Stops watching, kills every container and stops the log server.
    pub async fn shutdown(mut self) {
        for w in &self.watchers {
            w.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.manager).await;
        if let Some(stop) = self.stop_logs.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.log_server).await;
        self.log_server.abort();
    }
}

impl Drop for KubeletHandle {
    fn drop(&mut self) {
        for w in &self.watchers {
            w.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(stop) = self.stop_logs.take() {
            let _ = stop.send(());
        }
    }
}
