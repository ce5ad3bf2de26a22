//! End-to-end: array jobs through the real `barge` binary (issue 5) — every child sees its
//! index, the AWS Batch guide's pipeline (N_TO_N, SEQUENTIAL, plain dependencies on arrays),
//! per-child retries, a child failing for good, terminating chosen children, and progress.

mod support;

use std::collections::BTreeMap;

use barge_crds::job::{ArrayStatus, JobStatus};
use barge_crds::Job;
use kube::ResourceExt;

use support::{
    compute_environment, job, job_definition, job_queue, status_of, trace_spans, traced, E2e,
};

/// An environment of `vcpus` and a queue `q` over it.
async fn one_queue(env: &E2e, vcpus: i32) {
    env.apply(&format!(
        "{}{}",
        compute_environment("ce", vcpus),
        job_queue("q", 10, &["ce"])
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", (vcpus / 2) as usize)
        .await;
}

fn array_status(job: &Job) -> ArrayStatus {
    job.status
        .as_ref()
        .and_then(|s| s.array_properties.clone())
        .unwrap_or_else(|| panic!("{} has array status: {:#?}", job.name_any(), job.status))
}

#[tokio::test]
async fn every_child_of_an_array_of_100_sees_its_own_index() {
    const SIZE: usize = 100;
    let env = E2e::start("array100").await;
    one_queue(&env, 8).await;
    env.apply(&job_definition(
        "index",
        "echo \"index=$AWS_BATCH_JOB_ARRAY_INDEX size=$AWS_BATCH_JOB_ARRAY_SIZE\"",
        &[],
        "0.25",
        "",
    ))
    .await;
    env.apply(&job(
        "hundred",
        "q",
        "index",
        &format!("arrayProperties: {{size: {SIZE}}}\n"),
    ))
    .await;

    let done = env.wait_finished("hundred").await;
    assert_eq!(
        status_of(&done),
        Some(JobStatus::Succeeded),
        "{:#?}",
        done.status
    );
    let array = array_status(&done);
    assert_eq!(array.size, SIZE as i32);
    assert_eq!(array.status_summary.SUCCEEDED, SIZE as i32);
    assert_eq!(array.succeeded_indices, format!("0-{}", SIZE - 1));
    assert_eq!(array.failed_indices, "");
    assert_eq!(array.progress, Some(format!("{SIZE}/{SIZE}")));

    for index in 0..SIZE {
        let pod = format!("hundred-1-{index}");
        let log = env.wait_log(&pod, "index=").await;
        assert_eq!(
            log.trim(),
            format!("index={index} size={SIZE}"),
            "child {index} saw its own index"
        );
    }
    env.finish().await;
}

#[tokio::test]
async fn array_progress_counts_finished_children() {
    let env = E2e::start("progress").await;
    one_queue(&env, 2).await;
    // Eight children of one vCPU on two vCPUs: at most two run at a time.
    env.apply(&job_definition("nap", "sleep 0.5", &[], "1", ""))
        .await;
    env.apply(&job("napping", "q", "nap", "arrayProperties: {size: 8}\n"))
        .await;
    let midway = env
        .wait_for(&env.jobs(), "napping", "partly done", |j| {
            j.status
                .as_ref()
                .and_then(|s| s.array_properties.as_ref())
                .and_then(|a| a.progress.as_deref())
                .and_then(|p| p.split_once('/'))
                .and_then(|(done, _)| done.parse::<i32>().ok())
                .is_some_and(|done| (1..8).contains(&done))
        })
        .await;
    let array = array_status(&midway);
    let progress = array.progress.clone().expect("progress");
    let (finished, size) = progress.split_once('/').expect("n/size");
    assert_eq!(size, "8");
    let summary = &array.status_summary;
    assert_eq!(
        finished.parse::<i32>().expect("n"),
        summary.SUCCEEDED + summary.FAILED,
        "progress counts finished children: {array:#?}"
    );
    let done = env.wait_job("napping", JobStatus::Succeeded).await;
    assert_eq!(array_status(&done).progress.as_deref(), Some("8/8"));
    env.finish().await;
}

/// The AWS Batch User Guide's array pipeline, in small: A; B (array) after A; C (array) N_TO_N
/// on B; D (array) SEQUENTIAL, after C; E after D.
#[tokio::test]
async fn the_aws_guide_pipeline_runs_every_step_after_what_it_depends_on() {
    const WIDE: usize = 50;
    const SEQ: usize = 5;
    let env = E2e::start("pipeline").await;
    one_queue(&env, 8).await;
    env.apply(&job_definition(
        "step",
        &traced("$0-${AWS_BATCH_JOB_ARRAY_INDEX:-x}", "sleep 0.05"),
        &["Ref::label"],
        "0.25",
        "",
    ))
    .await;
    // Submitted last-first, so that submission order cannot explain the run order.
    env.apply(&job(
        "e",
        "q",
        "step",
        "parameters: {label: e}\ndependsOn: [{jobName: d}]\n",
    ))
    .await;
    env.apply(&job(
        "d",
        "q",
        "step",
        &format!("parameters: {{label: d}}\narrayProperties: {{size: {SEQ}}}\ndependsOn: [{{jobName: c}}, {{type: SEQUENTIAL}}]\n"),
    ))
    .await;
    env.apply(&job(
        "c",
        "q",
        "step",
        &format!("parameters: {{label: c}}\narrayProperties: {{size: {WIDE}}}\ndependsOn: [{{jobName: b, type: N_TO_N}}]\n"),
    ))
    .await;
    env.apply(&job(
        "b",
        "q",
        "step",
        &format!("parameters: {{label: b}}\narrayProperties: {{size: {WIDE}}}\ndependsOn: [{{jobName: a}}]\n"),
    ))
    .await;
    env.apply(&job("a", "q", "step", "parameters: {label: a}\n"))
        .await;

    for name in ["a", "b", "c", "d", "e"] {
        env.wait_job(name, JobStatus::Succeeded).await;
    }
    let spans = trace_spans(&env.trace());
    let span = |label: String| -> (u128, u128) {
        let (start, end) = spans.get(&label).copied().unwrap_or_default();
        match (start, end) {
            (Some(s), Some(e)) => (s, e),
            _ => panic!("{label} traced start and end; trace:\n{:#?}", env.trace()),
        }
    };
    let a = span("a-x".into());
    let b: Vec<_> = (0..WIDE).map(|i| span(format!("b-{i}"))).collect();
    let c: Vec<_> = (0..WIDE).map(|i| span(format!("c-{i}"))).collect();
    let d: Vec<_> = (0..SEQ).map(|i| span(format!("d-{i}"))).collect();
    let e = span("e-x".into());
    assert_eq!(
        spans.len(),
        1 + WIDE + WIDE + SEQ + 1,
        "each child ran once"
    );

    for (i, bi) in b.iter().enumerate() {
        assert!(bi.0 > a.1, "b-{i} started after a ended");
    }
    for i in 0..WIDE {
        assert!(c[i].0 > b[i].1, "c-{i} started after b-{i} ended (N_TO_N)");
    }
    let c_end = c.iter().map(|s| s.1).max().expect("c");
    assert!(d[0].0 > c_end, "d-0 started after every child of c ended");
    for i in 1..SEQ {
        assert!(
            d[i].0 > d[i - 1].1,
            "d-{i} started after d-{} ended (SEQUENTIAL)",
            i - 1
        );
    }
    let d_end = d.iter().map(|s| s.1).max().expect("d");
    assert!(e.0 > d_end, "e started after every child of d ended");
    let latest_other_end = [a.1, b.iter().map(|s| s.1).max().unwrap_or(0), c_end, d_end]
        .into_iter()
        .max()
        .unwrap_or(0);
    assert!(e.0 > latest_other_end, "e runs last");
    // N_TO_N really overlaps: some c child started before the last b child ended (otherwise
    // a plain dependency would have produced the same trace).
    let b_end = b.iter().map(|s| s.1).max().expect("b");
    let c_first_start = c.iter().map(|s| s.0).min().expect("c");
    eprintln!(
        "pipeline: first c child started {} ms before the last b child ended",
        (b_end as i128 - c_first_start as i128) / 1_000_000
    );
    env.finish().await;
}

#[tokio::test]
async fn a_failing_child_with_retries_left_is_retried_alone() {
    let env = E2e::start("childretry").await;
    one_queue(&env, 4).await;
    env.apply(&job_definition(
        "flaky",
        "if [ \"$AWS_BATCH_JOB_ARRAY_INDEX\" = 2 ] && [ \"$AWS_BATCH_JOB_ATTEMPT\" = 1 ]; then exit 1; fi\necho \"ok $AWS_BATCH_JOB_ARRAY_INDEX attempt $AWS_BATCH_JOB_ATTEMPT\"",
        &[],
        "0.5",
        "retryStrategy: {attempts: 2}\n",
    ))
    .await;
    env.apply(&job("flaky", "q", "flaky", "arrayProperties: {size: 4}\n"))
        .await;
    let done = env.wait_job("flaky", JobStatus::Succeeded).await;
    let array = array_status(&done);
    assert_eq!(array.succeeded_indices, "0-3");
    let mut pods: Vec<String> = env
        .pods_of("flaky")
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    pods.sort();
    assert_eq!(
        pods,
        [
            "flaky-1-0",
            "flaky-1-1",
            "flaky-1-2",
            "flaky-1-3",
            "flaky-2-2"
        ],
        "only child 2 got a second attempt"
    );
    env.wait_log("flaky-2-2", "ok 2 attempt 2").await;
    env.finish().await;
}

#[tokio::test]
async fn a_child_failing_for_good_fails_the_parent_and_its_n_to_n_dependent_only() {
    let env = E2e::start("childfail").await;
    one_queue(&env, 4).await;
    // Child 1 fails at once; the others take a little longer, so the parent can only end
    // after them.
    env.apply(&job_definition(
        "mostly",
        "if [ \"$AWS_BATCH_JOB_ARRAY_INDEX\" = 1 ]; then exit 1; fi\nsleep 1",
        &[],
        "0.5",
        "",
    ))
    .await;
    env.apply(&job_definition(
        "after",
        "echo after $AWS_BATCH_JOB_ARRAY_INDEX",
        &[],
        "0.5",
        "",
    ))
    .await;
    env.apply(&job(
        "mostly",
        "q",
        "mostly",
        "arrayProperties: {size: 4}\n",
    ))
    .await;
    env.apply(&job(
        "next",
        "q",
        "after",
        "arrayProperties: {size: 4}\ndependsOn: [{jobName: mostly, type: N_TO_N}]\n",
    ))
    .await;

    let parent = env.wait_job("mostly", JobStatus::Failed).await;
    let array = array_status(&parent);
    assert_eq!(array.status_summary.SUCCEEDED, 3, "{array:#?}");
    assert_eq!(array.status_summary.FAILED, 1, "{array:#?}");
    assert_eq!(array.failed_indices, "1");
    assert_eq!(array.succeeded_indices, "0,2-3");

    let dependent = env.wait_job("next", JobStatus::Failed).await;
    let array = array_status(&dependent);
    assert_eq!(array.failed_indices, "1", "{array:#?}");
    assert_eq!(array.succeeded_indices, "0,2-3", "the others proceed");
    let pods: Vec<String> = env
        .pods_of("next")
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert!(
        !pods.contains(&"next-1-1".to_string()),
        "the dependent of the failed child never ran: {pods:?}"
    );
    env.finish().await;
}

#[tokio::test]
async fn terminating_chosen_children_fails_just_those() {
    let env = E2e::start("terminate").await;
    one_queue(&env, 4).await;
    env.apply(&job_definition(
        "sleepy",
        "if [ \"$AWS_BATCH_JOB_ARRAY_INDEX\" = 1 ] || [ \"$AWS_BATCH_JOB_ARRAY_INDEX\" = 3 ]; then exec sleep 60; fi\nsleep 1",
        &[],
        "0.5",
        "",
    ))
    .await;
    env.apply(&job(
        "sleepy",
        "q",
        "sleepy",
        "arrayProperties: {size: 6}\n",
    ))
    .await;
    // Wait until the two long children run, then stop them.
    for pod in ["sleepy-1-1", "sleepy-1-3"] {
        env.wait_for(&env.pods(), pod, "running", |p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .await;
    }
    env.terminate("sleepy", "stopped by the test", Some("1,3"))
        .await;
    let started = std::time::Instant::now();
    let done = env.wait_job("sleepy", JobStatus::Failed).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(45),
        "terminated children do not run out their 60 s"
    );
    let array = array_status(&done);
    assert_eq!(array.failed_indices, "1,3", "{array:#?}");
    assert_eq!(array.terminated_indices, "1,3", "{array:#?}");
    assert_eq!(array.succeeded_indices, "0,2,4-5", "{array:#?}");
    let reasons: BTreeMap<i32, String> = array
        .failed_attempts
        .iter()
        .map(|c| (c.index, c.attempt.status_reason.clone().unwrap_or_default()))
        .collect();
    for index in [1, 3] {
        assert!(
            reasons
                .get(&index)
                .is_some_and(|r| r.contains("stopped by the test")),
            "child {index} carries the terminate reason: {reasons:?}"
        );
    }
    env.finish().await;
}
