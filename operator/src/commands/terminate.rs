//! `kubectl barge terminate NAME --reason TEXT` (AWS TerminateJob) and `kubectl barge cancel
//! NAME --reason TEXT` (AWS CancelJob). Barge stops a job through its one mutable spec field,
//! `spec.terminate` (`reason`, and for an array job optionally `arrayIndices`): the job
//! controller cancels what has not started, stops what runs (SIGTERM, SIGKILL after the grace
//! period) and ends the job FAILED with the reason. The API server refuses withdrawing or
//! narrowing an earlier terminate.
//!
//! `cancel` is TerminateJob restricted as AWS restricts CancelJob: only a job that has not
//! started (SUBMITTED, PENDING, RUNNABLE) is cancelled; for a STARTING, RUNNING or finished job
//! it changes nothing and says so (exit code 1). The check and the write are one: the patch
//! carries the resourceVersion it was decided on, and is decided again on a conflict.

use std::process::ExitCode;

use clap::Args;
use kube::api::{Patch, PatchParams};
use kube::Api;

use barge_crds::consts::FIELD_MANAGER_CLI;
use barge_crds::job::JobStatus;
use barge_crds::Job;
use barge_operator::cache::recorded_state;

use super::kube_cli::{connect, resource_name, run, CliError, ClusterArgs};

/// Conflicting writes `cancel` re-decides before giving up.
const CANCEL_CONFLICT_RETRIES: usize = 5;

#[derive(Debug, Args)]
pub struct TerminateArgs {
    /// The job's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Why (recorded as the job's status reason).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Array jobs: only these children, e.g. "0-3,7".
    #[arg(long, value_name = "INDICES")]
    pub array_indices: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// The merge patch that sets `spec.terminate`, with a resourceVersion precondition if given.
pub fn terminate_patch(
    reason: &str,
    array_indices: Option<&str>,
    resource_version: Option<&str>,
) -> serde_json::Value {
    let mut terminate = serde_json::json!({"reason": reason});
    if let Some(indices) = array_indices {
        terminate["arrayIndices"] = serde_json::json!(indices);
    }
    let mut patch = serde_json::json!({"spec": {"terminate": terminate}});
    if let Some(rv) = resource_version {
        patch["metadata"] = serde_json::json!({"resourceVersion": rv});
    }
    patch
}

/// Why `cancel` leaves a job alone (None: it may be cancelled).
pub fn cancel_refusal(name: &str, state: JobStatus) -> Option<String> {
    match state {
        JobStatus::Submitted | JobStatus::Pending | JobStatus::Runnable => None,
        JobStatus::Starting | JobStatus::Running => Some(format!(
            "job {name} is {state}: only SUBMITTED, PENDING and RUNNABLE jobs are cancelled (as AWS CancelJob); use `terminate` to stop it"
        )),
        JobStatus::Succeeded | JobStatus::Failed => {
            Some(format!("job {name} is {state}: it has already finished"))
        }
    }
}

pub fn run_terminate(args: TerminateArgs) -> ExitCode {
    run(stop(args, false))
}

pub fn run_cancel(args: TerminateArgs) -> ExitCode {
    run(stop(args, true))
}

async fn stop(args: TerminateArgs, cancel_only: bool) -> Result<(), CliError> {
    let (client, namespace) = connect(&args.cluster).await?;
    let api: Api<Job> = Api::namespaced(client, &namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER_CLI.to_string()),
        ..PatchParams::default()
    };
    let indices = args.array_indices.as_deref();
    if !cancel_only {
        api.patch(
            &args.name,
            &params,
            &Patch::Merge(terminate_patch(&args.reason, indices, None)),
        )
        .await?;
        println!("{} terminated", resource_name::<Job>(&args.name));
        return Ok(());
    }
    let mut conflicts = 0;
    loop {
        let job = api.get(&args.name).await?;
        if let Some(refusal) = cancel_refusal(&args.name, recorded_state(&job)) {
            return Err(CliError::Other(refusal));
        }
        let rv = job.metadata.resource_version.as_deref();
        match api
            .patch(
                &args.name,
                &params,
                &Patch::Merge(terminate_patch(&args.reason, indices, rv)),
            )
            .await
        {
            Ok(_) => {
                println!("{} cancelled", resource_name::<Job>(&args.name));
                return Ok(());
            }
            Err(kube::Error::Api(status))
                if status.code == 409 && conflicts < CANCEL_CONFLICT_RETRIES =>
            {
                conflicts += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_sets_terminate_and_guards_by_resource_version() {
        assert_eq!(
            terminate_patch("stop", None, None),
            serde_json::json!({"spec": {"terminate": {"reason": "stop"}}})
        );
        assert_eq!(
            terminate_patch("stop", Some("0-3"), Some("42")),
            serde_json::json!({
                "spec": {"terminate": {"reason": "stop", "arrayIndices": "0-3"}},
                "metadata": {"resourceVersion": "42"},
            })
        );
    }

    #[test]
    fn cancel_leaves_started_and_finished_jobs_alone() {
        for state in [
            JobStatus::Submitted,
            JobStatus::Pending,
            JobStatus::Runnable,
        ] {
            assert_eq!(cancel_refusal("j", state), None);
        }
        assert!(cancel_refusal("j", JobStatus::Running)
            .expect("refused")
            .contains("use `terminate`"));
        assert!(cancel_refusal("j", JobStatus::Succeeded)
            .expect("refused")
            .contains("already finished"));
    }
}
