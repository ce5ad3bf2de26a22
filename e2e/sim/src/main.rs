//! `barge-sim serve`: run a simulated cluster until Ctrl-C and print how to use it with kubectl.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use barge_sim::kubelet::{Kubelet, KubeletConfig, RuntimeKind};
use barge_sim::{Cluster, ClusterConfig, KubeletMode};
use clap::{Parser, Subcommand};

/// The allocator: the API server's writes are allocation-bound (JSON values parsed, copied and
/// dropped per request; glibc's malloc/free were ~30 % of its CPU on pod writes); with mimalloc
/// the same code used 0.84× the CPU per pod write (issue 14, third round).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "barge-sim",
    about = "A simulated Kubernetes cluster (API server + simulated kubelet)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the API server on 127.0.0.1 and serve until Ctrl-C.
    Serve {
        /// Port (0 = a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Where to write the kubeconfig (default: <tmp>/barge-sim/kubeconfig).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Simulated kubelet runtime.
        #[arg(long, value_enum, default_value_t = KubeletMode::None)]
        kubelet: KubeletMode,
        /// Milliseconds added to every write request (create, update, patch, delete), as a real
        /// API server's writes wait for etcd; 0 = answer at once.
        #[arg(long, default_value_t = 0)]
        write_latency_ms: u64,
        /// kube-apiserver's --max-requests-inflight: read-only requests (get, list; not watches)
        /// served at once by users outside system:masters before more are refused with 429 and
        /// Retry-After: 1; 0 = no limit.
        #[arg(long, default_value_t = barge_sim::apiserver::inflight::DEFAULT_MAX_REQUESTS_INFLIGHT)]
        max_requests_inflight: usize,
        /// kube-apiserver's --max-mutating-requests-inflight: the same limit for writes (create,
        /// update, patch, delete); 0 = no limit.
        #[arg(long, default_value_t = barge_sim::apiserver::inflight::DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT)]
        max_mutating_requests_inflight: usize,
        /// Run the Karpenter stand-in (karpenter.sh/v1 NodePools + pending pods → Nodes).
        #[arg(long)]
        karpenter: bool,
        /// Run the Cluster API stand-in (MachineDeployment replicas → Nodes).
        #[arg(long)]
        cluster_api: bool,
        #[command(flatten)]
        kubelet_opts: KubeletOpts,
    },
    /// Run only the simulated kubelet against any API server (the sim's or a real one).
    Kubelet {
        /// Kubeconfig of the API server (default: $KUBECONFIG, then ~/.kube/config).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Runtime of pods without a `sim.barge.dev/runtime` annotation.
        #[arg(long, default_value_t = RuntimeKind::Scripted)]
        runtime: RuntimeKind,
        #[command(flatten)]
        opts: KubeletOpts,
    },
}

/// Options of the simulated kubelet.
#[derive(clap::Args)]
struct KubeletOpts {
    /// Seconds from a Node's appearance to Ready.
    #[arg(long, default_value_t = 0.0)]
    boot_delay_seconds: f64,
    /// Capacity of nodes without a `sim.barge.dev/capacity` annotation (JSON object).
    #[arg(long)]
    default_capacity: Option<String>,
    /// Do not bind pods that name no node.
    #[arg(long)]
    no_bind: bool,
    /// Port of the container log server on 127.0.0.1 (0 = a free one).
    #[arg(long, default_value_t = 0)]
    log_port: u16,
    /// Label selector of the Nodes the kubelet owns.
    #[arg(long, default_value = barge_sim::kubelet::consts::DEFAULT_NODE_SELECTOR)]
    node_selector: String,
}

impl KubeletOpts {
    fn config(&self, runtime: RuntimeKind) -> Result<KubeletConfig, Box<dyn std::error::Error>> {
        let mut cfg = KubeletConfig {
            runtime,
            boot_delay: std::time::Duration::try_from_secs_f64(self.boot_delay_seconds)
                .map_err(|e| format!("--boot-delay-seconds: {e}"))?,
            bind_unscheduled: !self.no_bind,
            log_port: self.log_port,
            node_selector: self.node_selector.clone(),
            ..KubeletConfig::default()
        };
        if let Some(raw) = &self.default_capacity {
            cfg.default_capacity = serde_json::from_str(raw).map_err(|e| {
                format!("--default-capacity must be a JSON object of quantities: {e}")
            })?;
        }
        Ok(cfg)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            port,
            kubeconfig,
            kubelet,
            write_latency_ms,
            max_requests_inflight,
            max_mutating_requests_inflight,
            karpenter,
            cluster_api,
            kubelet_opts,
        } => {
            let path = kubeconfig
                .unwrap_or_else(|| std::env::temp_dir().join("barge-sim").join("kubeconfig"));
            let cluster = Cluster::start(ClusterConfig {
                port,
                kubeconfig: Some(path),
                write_latency: std::time::Duration::from_millis(write_latency_ms),
                max_in_flight: barge_sim::apiserver::inflight::MaxInFlight {
                    requests: max_requests_inflight,
                    mutating: max_mutating_requests_inflight,
                },
                karpenter,
                cluster_api,
                ..Default::default()
            })
            .await?;
            println!("barge-sim API server listening on {}", cluster.url());
            println!("kubeconfig: {}", cluster.kubeconfig_path().display());
            println!("export KUBECONFIG={}", cluster.kubeconfig_path().display());
            if karpenter {
                println!("Karpenter stand-in running (karpenter.sh/v1 NodePools)");
            }
            if cluster_api {
                println!("Cluster API stand-in running (cluster.x-k8s.io MachineDeployments)");
            }
            let runtime = match kubelet {
                KubeletMode::None => None,
                KubeletMode::Scripted => Some(RuntimeKind::Scripted),
                KubeletMode::Process => Some(RuntimeKind::Process),
            };
            let kubelet = match runtime {
                Some(runtime) => {
                    let cfg = kubelet_opts.config(runtime)?;
                    let k = Kubelet::start(cluster.client()?, cfg).await?;
                    println!(
                        "simulated kubelet ({runtime}) running nodes matching {}; logs on port {}",
                        kubelet_opts.node_selector,
                        k.log_port()
                    );
                    Some(k)
                }
                None => None,
            };
            tokio::signal::ctrl_c().await?;
            if let Some(k) = kubelet {
                k.shutdown().await;
            }
            cluster.shutdown().await;
        }
        Command::Kubelet {
            kubeconfig,
            runtime,
            opts,
        } => {
            let config = match kubeconfig {
                Some(path) => {
                    let kc = kube::config::Kubeconfig::read_from(&path)?;
                    kube::Config::from_custom_kubeconfig(
                        kc,
                        &kube::config::KubeConfigOptions::default(),
                    )
                    .await?
                }
                None => kube::Config::infer().await?,
            };
            let client = kube::Client::try_from(config)?;
            let cfg = opts.config(runtime)?;
            let k = Kubelet::start(client, cfg).await?;
            println!(
                "simulated kubelet ({}) running nodes matching {}; logs on 127.0.0.1:{}",
                runtime,
                opts.node_selector,
                k.log_port()
            );
            tokio::signal::ctrl_c().await?;
            k.shutdown().await;
        }
    }
    Ok(())
}
