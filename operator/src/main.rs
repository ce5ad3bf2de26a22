//! barge: the Barge command line — the operator, the AWS Batch importer and the demo; the
//! kubectl plugin joins as a further subcommand.
//!
//! `main` only parses the command line (clap) and dispatches to one module per subcommand under
//! [`commands`]; those do the I/O around pure logic (e.g. [`import_aws`], the conversion of AWS
//! Batch documents; the operator lives in the `barge_operator` library). To add a subcommand: a
//! variant of [`Command`], a module in `commands/`, one match arm.
#![forbid(unsafe_code)]

mod commands;
mod import_aws;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "barge",
    version,
    about = "Barge: the AWS Batch model on any Kubernetes cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the operator: the controllers of Barge's kinds and the scheduler.
    Operator(barge_operator::run::OperatorArgs),
    /// Convert documents of other batch systems into Barge manifests.
    Import(commands::import::ImportArgs),
    /// Start a simulated cluster, the operator and a sample workload; show the jobs' progress
    /// and a summary (with a kubeconfig for kubectl).
    Demo(commands::demo::DemoArgs),
}

fn main() -> ExitCode {
    // clap exits with status 2 on usage errors.
    let cli = Cli::parse();
    match cli.command {
        Command::Operator(args) => commands::operator::run(args),
        Command::Import(args) => commands::import::run(args),
        Command::Demo(args) => commands::demo::run(args),
    }
}
