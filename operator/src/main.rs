//! barge: the Barge operator and command-line tool.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use barge_operator::run::{self, OperatorArgs};

/// Barge brings the AWS Batch model to Kubernetes.
#[derive(Parser)]
#[command(name = "barge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator: the controllers of Barge's kinds and the scheduler.
    Operator(OperatorArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Operator(args) => {
            run::init_tracing(&args.log_level, args.log_format);
            match run::run(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = %err, "the operator stopped");
                    eprintln!("barge operator: {err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
