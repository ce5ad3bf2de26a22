//! `barge-sim serve`: run a simulated cluster until Ctrl-C and print how to use it with kubectl.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use barge_sim::{Cluster, ClusterConfig, KubeletMode};
use clap::{Parser, Subcommand};

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
    },
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
        } => {
            let path = kubeconfig
                .unwrap_or_else(|| std::env::temp_dir().join("barge-sim").join("kubeconfig"));
            let cluster = Cluster::start(ClusterConfig {
                port,
                kubeconfig: Some(path),
                kubelet,
                ..Default::default()
            })
            .await?;
            println!("barge-sim API server listening on {}", cluster.url());
            println!("kubeconfig: {}", cluster.kubeconfig_path().display());
            println!("export KUBECONFIG={}", cluster.kubeconfig_path().display());
            tokio::signal::ctrl_c().await?;
            cluster.shutdown().await;
        }
    }
    Ok(())
}
