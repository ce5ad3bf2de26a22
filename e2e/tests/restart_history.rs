//! End-to-end: an operator restart with a finished history.
//!
//! The restarted operator lists the unfinished jobs first and the finished ones after
//! (`Caches::start`, `run_jobs_watch`), so it schedules before a long history is in. A job named
//! in `dependsOn` that is missing meanwhile may be a finished job not listed yet: it must be
//! waited for, never failed — even when the dependent's dependency-not-found grace is long over.
//! Here the dependents are submitted while no operator runs, with a 1 s grace, and wait at least
//! that long before the new operator starts: a dependency judged missing would fail them at once.
//! Besides the jobs that ran, [`BULK`] jobs are recorded SUCCEEDED through `/status` while no
//! operator runs, so that the list of every job takes long enough (a debug build decodes them)
//! for the controllers to start, and judge the dependents, before it is in.

mod support;

use barge_crds::job::JobStatus;
use barge_crds::Job;
use futures::StreamExt;
use kube::api::{Patch, PatchParams, PostParams};
use kube::ResourceExt;
use support::{compute_environment, job, job_definition, job_queue, scripted_tags, E2e, Options};

/// Jobs run to the end before the restart (the finished history).
const HISTORY: usize = 40;

/// Jobs recorded finished while no operator runs (a long history, cheaply).
const BULK: usize = 3000;

#[tokio::test]
async fn dependencies_on_finished_jobs_resolve_after_a_restart() {
    let mut env = E2e::start_with(
        "rhist",
        Options::scripted().flag("--dependency-grace-seconds=1"),
    )
    .await;
    env.apply(&format!(
        "{}{}",
        compute_environment("ce", 8),
        job_queue("q", 10, &["ce"])
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", 4).await;
    env.apply(&job_definition("quick", "true", &[], "1", ""))
        .await;
    let ok = scripted_tags("0", 0);
    let bad = scripted_tags("0", 1);
    let mut history = String::new();
    for i in 0..HISTORY {
        history.push_str(&job(&format!("h-{i}"), "q", "quick", &ok));
    }
    history.push_str(&job("broke", "q", "quick", &bad));
    env.apply(&history).await;
    for i in 0..HISTORY {
        env.wait_job(&format!("h-{i}"), JobStatus::Succeeded).await;
    }
    env.wait_job("broke", JobStatus::Failed).await;

    env.kill_operator();
    let jobs = env.jobs();
    futures::stream::iter(0..BULK)
        .map(|i| {
            let jobs = jobs.clone();
            let manifest = env.render(&job(&format!("bulk-{i}"), "q", "quick", &ok));
            async move {
                let job: Job = serde_yaml::from_str(&manifest).expect("job manifest");
                jobs.create(&PostParams::default(), &job)
                    .await
                    .expect("create");
                let done = serde_json::json!({"status": {"status": "SUCCEEDED"}});
                jobs.patch_status(
                    &job.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(done),
                )
                .await
                .expect("record SUCCEEDED");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let deps = |names: &[&str]| {
        let list: Vec<String> = names.iter().map(|n| format!("{{jobName: {n}}}")).collect();
        format!("{ok}dependsOn: [{}]\n", list.join(", "))
    };
    let last = format!("h-{}", HISTORY - 1);
    env.apply(&format!(
        "{}{}{}{}{}",
        job("after-first", "q", "quick", &deps(&["h-0"])),
        job(
            "after-all",
            "q",
            "quick",
            &deps(&["h-0", &last, "after-first"])
        ),
        job(
            "after-bulk",
            "q",
            "quick",
            &deps(&[&format!("bulk-{}", BULK - 1)])
        ),
        job("after-broke", "q", "quick", &deps(&["broke"])),
        job("after-ghost", "q", "quick", &deps(&["ghost"])),
    ))
    .await;
    // Past the grace before any operator sees them.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    env.start_operator();

    env.wait_job("after-first", JobStatus::Succeeded).await;
    env.wait_job("after-all", JobStatus::Succeeded).await;
    env.wait_job("after-bulk", JobStatus::Succeeded).await;
    let failed = env.wait_job("after-broke", JobStatus::Failed).await;
    let reason = failed
        .status
        .and_then(|s| s.status_reason)
        .unwrap_or_default();
    assert!(
        reason.starts_with("Dependent Job failed"),
        "after-broke fails because its dependency failed, not for a missing one: {reason}"
    );
    // A job that truly does not exist still fails after the grace, once every job is listed.
    let ghost = env.wait_job("after-ghost", JobStatus::Failed).await;
    let reason = ghost
        .status
        .and_then(|s| s.status_reason)
        .unwrap_or_default();
    assert!(
        reason.starts_with("Dependency not found"),
        "after-ghost: {reason}"
    );
    for i in 0..HISTORY {
        env.wait_job(&format!("h-{i}"), JobStatus::Succeeded).await;
    }
    env.finish().await;
}
