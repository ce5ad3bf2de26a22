//! barge: the Barge command line — the operator and the AWS Batch importer today; the kubectl
//! plugin and the demo join as further subcommands.
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
}

fn main() -> ExitCode {
    // clap exits with status 2 on usage errors.
    let cli = Cli::parse();
    match cli.command {
        Command::Operator(args) => commands::operator::run(args),
        Command::Import(args) => commands::import::run(args),
    }
}
