//! barge: the Barge command line — the operator, the AWS Batch importer, the demo, `why` (why a
//! job waits), and the job commands a user runs as the kubectl plugin (`submit`, `get`, `list`,
//! `describe`, `logs`, `terminate`, `cancel`, `queues`; shared flags and kubectl's printers in
//! `commands/kube_cli`).
//!
//! `main` only parses the command line (clap) and dispatches to one module per subcommand under
//! [`commands`]; those do the I/O around pure logic (e.g. [`import_aws`], the conversion of AWS
//! Batch documents; the operator lives in the `barge_operator` library). Invoked as
//! `kubectl-barge` (a link on the PATH), it is the kubectl plugin: `kubectl barge list`. To
//! add a subcommand: a variant of [`Command`], a module in `commands/`, one match arm.
#![forbid(unsafe_code)]

mod commands;
mod import_aws;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// The allocator: mimalloc hands freed pages back to the kernel, where glibc's malloc kept most of
/// a submission burst's memory for ever (see `mimalloc` in Cargo.toml). The feature
/// `system-allocator` leaves it out, for heap profilers that see only malloc (heaptrack).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The name kubectl shows for the plugin: it runs `kubectl-barge` found on the PATH.
const KUBECTL_PLUGIN_NAME: &str = "kubectl barge";
/// The file name of the plugin (a link to, or copy of, `barge`).
const KUBECTL_PLUGIN_FILE: &str = "kubectl-barge";

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
    #[cfg(feature = "demo")]
    Demo(commands::demo::DemoArgs),
    /// Explain why a job waits: its dependencies, its place in its queue, its share's usage
    /// against its target, and why it fits in no compute environment now. Reads only.
    Why(commands::why::WhyArgs),
    /// Submit a job (AWS SubmitJob): from a JobDefinition with overrides, or AWS SubmitJob JSON.
    Submit(commands::submit::SubmitArgs),
    /// Show jobs by name as a table (array progress, attempts, age) or -o yaml|json|name.
    Get(commands::get::GetArgs),
    /// List jobs (filter by --status, -l; every namespace with -A).
    #[command(visible_alias = "ls")]
    List(commands::get::ListArgs),
    /// Describe a job: status, array children, dependencies, attempts, conditions, Events.
    Describe(commands::describe::DescribeArgs),
    /// Print the log of a job's attempt, an array child (NAME:INDEX) or a node; -f follows.
    Logs(commands::logs::LogsArgs),
    /// Stop a job (AWS TerminateJob): it ends FAILED with the reason.
    Terminate(commands::terminate::TerminateArgs),
    /// Cancel a job that has not started (AWS CancelJob); started jobs are left alone.
    Cancel(commands::terminate::TerminateArgs),
    /// Job queues: priority, state, compute environments, and their jobs counted by state.
    Queues(commands::queues::QueuesArgs),
}

fn main() -> ExitCode {
    // clap exits with status 2 on usage errors.
    let cli = if invoked_as_kubectl_plugin(std::env::args_os().next()) {
        // `kubectl barge ...` runs `kubectl-barge ...` (a link to this binary) with the same
        // arguments: the same commands, with usage and help naming the plugin form.
        let matches = Cli::command().bin_name(KUBECTL_PLUGIN_NAME).get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    } else {
        Cli::parse()
    };
    match cli.command {
        Command::Operator(args) => commands::operator::run(args),
        Command::Import(args) => commands::import::run(args),
        #[cfg(feature = "demo")]
        Command::Demo(args) => commands::demo::run(args),
        Command::Why(args) => commands::why::run(args),
        Command::Submit(args) => commands::submit::run_submit(args),
        Command::Get(args) => commands::get::run_get(args),
        Command::List(args) => commands::get::run_list(args),
        Command::Describe(args) => commands::describe::run_describe(args),
        Command::Logs(args) => commands::logs::run_logs(args),
        Command::Terminate(args) => commands::terminate::run_terminate(args),
        Command::Cancel(args) => commands::terminate::run_cancel(args),
        Command::Queues(args) => commands::queues::run_queues(args),
    }
}

/// Whether the binary runs as the kubectl plugin: its `argv[0]` is `kubectl-barge` (any
/// directory; `.exe` on Windows).
fn invoked_as_kubectl_plugin(argv0: Option<std::ffi::OsString>) -> bool {
    argv0
        .as_deref()
        .map(std::path::Path::new)
        .and_then(|p| p.file_stem())
        .is_some_and(|stem| stem == KUBECTL_PLUGIN_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_name_is_recognised_from_argv0() {
        let yes = |s: &str| invoked_as_kubectl_plugin(Some(s.into()));
        assert!(yes("kubectl-barge"));
        assert!(yes("/usr/local/bin/kubectl-barge"));
        assert!(yes("kubectl-barge.exe"));
        assert!(!yes("barge"));
        assert!(!yes("/opt/kubectl-barge-old/barge"));
        assert!(!invoked_as_kubectl_plugin(None));
    }

    #[test]
    fn the_plugin_form_parses_the_same_commands() {
        let matches = Cli::command()
            .bin_name(KUBECTL_PLUGIN_NAME)
            .try_get_matches_from(["kubectl-barge", "why", "train", "-n", "ml", "-o", "json"])
            .expect("parses");
        let cli = Cli::from_arg_matches(&matches).expect("a command");
        match cli.command {
            Command::Why(args) => {
                assert_eq!(args.job, "train");
                assert_eq!(args.namespace.as_deref(), Some("ml"));
                assert_eq!(args.output, commands::why::Output::Json);
            }
            other => panic!("expected why, got {other:?}"),
        }
    }

    #[test]
    fn the_job_commands_take_kubectls_flags() {
        Cli::command().debug_assert();
        let parse = |args: &[&str]| {
            let matches = Cli::command()
                .bin_name(KUBECTL_PLUGIN_NAME)
                .try_get_matches_from(args)
                .expect("parses");
            Cli::from_arg_matches(&matches).expect("a command").command
        };
        match parse(&[
            "kubectl-barge",
            "ls",
            "-A",
            "--status",
            "RUNNING,runnable",
            "-l",
            "team=ml",
            "-o",
            "wide",
        ]) {
            Command::List(args) => {
                assert!(args.all_namespaces);
                assert_eq!(args.status.len(), 2);
                assert_eq!(args.selector.as_deref(), Some("team=ml"));
                assert_eq!(args.output, Some(commands::kube_cli::OutputFormat::Wide));
            }
            other => panic!("expected list, got {other:?}"),
        }
        match parse(&[
            "kubectl-barge",
            "logs",
            "frames:3",
            "-f",
            "--tail",
            "10",
            "--context",
            "prod",
            "-n",
            "ml",
        ]) {
            Command::Logs(args) => {
                assert_eq!(args.job, "frames:3");
                assert!(args.follow);
                assert_eq!(args.tail, Some(10));
                assert_eq!(args.cluster.context.as_deref(), Some("prod"));
                assert_eq!(args.cluster.namespace.as_deref(), Some("ml"));
            }
            other => panic!("expected logs, got {other:?}"),
        }
    }
}
