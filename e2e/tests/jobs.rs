//! End-to-end: single jobs through the real `barge` binary (issue 4) — the AWS Batch
//! environment, parameters and overrides, dependencies, retries and `evaluateOnExit`, timeouts,
//! node loss, queue priority, compute environment order, and an operator killed mid-flight.

mod support;

use std::collections::BTreeMap;

use barge_crds::consts::{
    ENV_CE_NAME, ENV_JOB_ATTEMPT, ENV_JOB_ID, ENV_JQ_NAME, STATUS_REASON_DEPENDENT_JOB_FAILED,
    STATUS_REASON_HOST_TERMINATED_PREFIX, STATUS_REASON_TIMEOUT,
};
use barge_crds::job::JobStatus;
use kube::api::ListParams;
use kube::ResourceExt;

use support::{
    attempts, compute_environment, job, job_definition, job_queue, scripted_tags, status_of,
    status_reason, trace_spans, traced, traced_span, E2e, Options,
};

/// A 4-vCPU environment `ce` and a queue `q` over it.
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

/// `KEY=value` lines of a log.
fn env_lines(log: &str) -> BTreeMap<String, String> {
    log.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn a_job_succeeds_and_sees_the_aws_batch_environment() {
    let env = E2e::start("env").await;
    one_queue(&env, 4).await;
    env.apply(&job_definition(
        "printenv",
        "env | grep '^AWS_BATCH_' | sort",
        &[],
        "1",
        "",
    ))
    .await;
    env.apply(&job("hello", "q", "printenv", "")).await;

    let done = env.wait_job("hello", JobStatus::Succeeded).await;
    assert_eq!(attempts(&done), 1);
    let status = done.status.clone().expect("status");
    let pod = status.attempts[0]
        .container
        .pod_name
        .clone()
        .expect("the attempt names its pod");
    assert_eq!(pod, "hello-1");
    let log = env.wait_log(&pod, ENV_CE_NAME).await;
    let vars = env_lines(&log);
    assert_eq!(
        vars.get(ENV_JOB_ID),
        status.job_id.as_ref(),
        "AWS_BATCH_JOB_ID is the job id; log:\n{log}"
    );
    assert_eq!(vars.get(ENV_JOB_ID), done.metadata.uid.as_ref());
    assert_eq!(vars.get(ENV_JOB_ATTEMPT).map(String::as_str), Some("1"));
    assert_eq!(
        vars.get(ENV_JQ_NAME).cloned(),
        Some(format!("{}-q", env.ns)),
        "log:\n{log}"
    );
    assert_eq!(
        vars.get(ENV_CE_NAME).cloned(),
        Some(format!("{}-ce", env.ns)),
        "log:\n{log}"
    );
    assert_eq!(status.compute_environment, Some(format!("{}-ce", env.ns)));
    env.finish().await;
}

#[tokio::test]
async fn parameters_and_container_overrides_reach_the_command() {
    let env = E2e::start("params").await;
    one_queue(&env, 4).await;
    // Ref::word is the script's $0; GREETING comes from the environment.
    env.apply(&job_definition(
        "greet",
        "echo \"word=$0 greeting=${GREETING:-unset}\"",
        &["Ref::word"],
        "1",
        "parameters: {word: default-word}",
    ))
    .await;
    env.apply(&job("defaults", "q", "greet", "")).await;
    env.apply(&job(
        "overridden",
        "q",
        "greet",
        "parameters: {word: from-job}\ncontainerOverrides:\n  environment:\n    - {name: GREETING, value: from-override}\n",
    ))
    .await;
    env.apply(&job(
        "new-command",
        "q",
        "greet",
        "parameters: {word: replaced}\ncontainerOverrides:\n  command: [sh, -c, 'echo \"override-command $0\"', Ref::word]\n",
    ))
    .await;

    for name in ["defaults", "overridden", "new-command"] {
        env.wait_job(name, JobStatus::Succeeded).await;
    }
    let log = env.wait_log("defaults-1", "word=").await;
    assert!(
        log.contains("word=default-word greeting=unset"),
        "the definition's parameter default: {log}"
    );
    let log = env.wait_log("overridden-1", "word=").await;
    assert!(
        log.contains("word=from-job greeting=from-override"),
        "the job's parameter and environment override: {log}"
    );
    let log = env.wait_log("new-command-1", "override-command").await;
    assert!(
        log.contains("override-command replaced"),
        "the overridden command, with parameters substituted: {log}"
    );
    env.finish().await;
}

#[tokio::test]
async fn a_dependency_chain_runs_in_order() {
    let env = E2e::start("chain").await;
    one_queue(&env, 8).await;
    env.apply(&job_definition(
        "step",
        &traced("$0", "sleep 0.3"),
        &["Ref::label"],
        "1",
        "",
    ))
    .await;
    // Submitted in reverse, so that submission order cannot explain the run order.
    env.apply(&job(
        "third",
        "q",
        "step",
        "parameters: {label: third}\ndependsOn: [{jobName: second}]\n",
    ))
    .await;
    env.apply(&job(
        "second",
        "q",
        "step",
        "parameters: {label: second}\ndependsOn: [{jobName: first}]\n",
    ))
    .await;
    env.apply(&job("first", "q", "step", "parameters: {label: first}\n"))
        .await;
    let waiting = env
        .wait_for(&env.jobs(), "third", "PENDING", |j| {
            status_of(j) == Some(JobStatus::Pending)
                || status_of(j).is_some_and(|s| s.is_finished())
        })
        .await;
    assert_eq!(status_of(&waiting), Some(JobStatus::Pending));

    for name in ["first", "second", "third"] {
        env.wait_job(name, JobStatus::Succeeded).await;
    }
    let spans = trace_spans(&env.trace());
    let span = |name: &str| traced_span(&spans, name);
    let (first, second, third) = (span("first"), span("second"), span("third"));
    assert!(
        second.0 > first.1,
        "second started after first ended: {spans:?}"
    );
    assert!(
        third.0 > second.1,
        "third started after second ended: {spans:?}"
    );
    env.finish().await;
}

#[tokio::test]
async fn a_failed_dependency_fails_its_dependents() {
    let env = E2e::start("depfail").await;
    one_queue(&env, 4).await;
    env.apply(&job_definition("fail", "exit 1", &[], "1", ""))
        .await;
    env.apply(&job_definition("ok", "echo never", &[], "1", ""))
        .await;
    env.apply(&job("root", "q", "fail", "")).await;
    env.apply(&job("child", "q", "ok", "dependsOn: [{jobName: root}]\n"))
        .await;
    env.apply(&job(
        "grandchild",
        "q",
        "ok",
        "dependsOn: [{jobName: child}]\n",
    ))
    .await;

    let root = env.wait_job("root", JobStatus::Failed).await;
    assert_eq!(attempts(&root), 1);
    for name in ["child", "grandchild"] {
        let dependent = env.wait_job(name, JobStatus::Failed).await;
        assert!(
            status_reason(&dependent).contains(STATUS_REASON_DEPENDENT_JOB_FAILED),
            "{name}: {:?}",
            status_reason(&dependent)
        );
        assert_eq!(attempts(&dependent), 0, "{name} never ran");
        assert!(env.pods_of(name).await.is_empty(), "{name} has no pod");
    }
    env.finish().await;
}

#[tokio::test]
async fn evaluate_on_exit_exit_ends_after_one_attempt_while_other_codes_retry() {
    let env = E2e::start_with("exitcodes", Options::scripted()).await;
    one_queue(&env, 4).await;
    env.apply(&job_definition(
        "scripted",
        "exit 0",
        &[],
        "1",
        "retryStrategy:\n  attempts: 3\n  evaluateOnExit:\n    - {onExitCode: \"3\", action: EXIT}\n",
    ))
    .await;
    env.apply(&job("exit-three", "q", "scripted", &scripted_tags("0", 3)))
        .await;
    env.apply(&job("exit-one", "q", "scripted", &scripted_tags("0", 1)))
        .await;

    let three = env.wait_job("exit-three", JobStatus::Failed).await;
    assert_eq!(
        attempts(&three),
        1,
        "EXIT on code 3 stops after one attempt"
    );
    assert_eq!(
        three.status.as_ref().expect("status").attempts[0]
            .container
            .exit_code,
        Some(3)
    );
    let one = env.wait_job("exit-one", JobStatus::Failed).await;
    assert_eq!(
        attempts(&one),
        3,
        "no rule matches exit 1: retried up to attempts"
    );
    let mut pods: Vec<String> = env
        .pods_of("exit-one")
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    pods.sort();
    assert_eq!(pods, ["exit-one-1", "exit-one-2", "exit-one-3"]);
    env.finish().await;
}

#[tokio::test]
async fn a_job_that_outlives_its_timeout_is_killed_and_not_retried() {
    let env = E2e::start("timeout").await;
    one_queue(&env, 4).await;
    env.apply(&job_definition(
        "slow",
        "echo started; exec sleep 60",
        &[],
        "1",
        "retryStrategy: {attempts: 3}\ntimeout: {attemptDurationSeconds: 1}\n",
    ))
    .await;
    env.apply(&job("slow", "q", "slow", "")).await;
    let started = std::time::Instant::now();
    let done = env.wait_job("slow", JobStatus::Failed).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(40),
        "killed long before the command's 60 s"
    );
    assert_eq!(attempts(&done), 1, "a timed-out job is not retried");
    let attempt_reason = done.status.as_ref().expect("status").attempts[0]
        .status_reason
        .clone()
        .unwrap_or_default();
    assert!(
        status_reason(&done).contains(STATUS_REASON_TIMEOUT)
            || attempt_reason.contains(STATUS_REASON_TIMEOUT),
        "reason {:?} / attempt {:?}",
        status_reason(&done),
        attempt_reason
    );
    // The timed-out attempt keeps its pod and its log, as any failed attempt does.
    let pod = env
        .pods()
        .get("slow-1")
        .await
        .expect("the timed-out attempt's pod is kept");
    assert_eq!(
        pod.status.as_ref().and_then(|s| s.reason.as_deref()),
        Some("DeadlineExceeded"),
        "stopped by the kubelet at its deadline, not deleted"
    );
    env.wait_log("slow-1", "started").await;
    env.finish().await;
}

#[tokio::test]
async fn a_lost_node_is_retried_by_a_host_status_reason_rule() {
    if support::skip_on_real_cluster("a_lost_node_is_retried_by_a_host_status_reason_rule") {
        return;
    }
    let env = E2e::start("nodeloss").await;
    // Two 2-vCPU nodes; the job takes a whole node.
    one_queue(&env, 4).await;
    env.apply(&job_definition(
        "fragile",
        "if [ \"$AWS_BATCH_JOB_ATTEMPT\" = 1 ]; then exec sleep 60; fi\necho \"attempt $AWS_BATCH_JOB_ATTEMPT done\"",
        &[],
        "2",
        "retryStrategy:\n  attempts: 2\n  evaluateOnExit:\n    - {onStatusReason: \"Host*\", action: RETRY}\n    - {onReason: \"*\", action: EXIT}\n",
    ))
    .await;
    env.apply(&job("fragile", "q", "fragile", "")).await;
    env.wait_job_reached("fragile", JobStatus::Running).await;
    let pod = env
        .wait_for(&env.pods(), "fragile-1", "bound", |p| {
            p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
        })
        .await;
    let node = pod.spec.and_then(|s| s.node_name).expect("node");
    assert_eq!(env.lose_node(&node), 1, "the job's pod ran on {node}");

    let done = env.wait_job("fragile", JobStatus::Succeeded).await;
    let status = done.status.expect("status");
    assert_eq!(status.attempts.len(), 2, "{:#?}", status.attempts);
    let first_reason = status.attempts[0].status_reason.clone().unwrap_or_default();
    assert!(
        first_reason.starts_with(STATUS_REASON_HOST_TERMINATED_PREFIX),
        "the first attempt ended with the host: {first_reason:?}"
    );
    assert_eq!(
        status.attempts[0].container.node_name.as_deref(),
        Some(node.as_str())
    );
    assert_ne!(
        status.attempts[1].container.node_name.as_deref(),
        Some(node.as_str())
    );
    env.wait_log("fragile-2", "attempt 2 done").await;
    env.finish().await;
}

#[tokio::test]
async fn queue_priority_decides_which_queue_takes_a_contended_environment() {
    let env = E2e::start("priority").await;
    // One 2-vCPU node; every job takes all of it. The low-priority queue comes first by name,
    // by creation and by submission, so only priority can put the other queue's jobs first.
    env.apply(&format!(
        "{}{}{}",
        compute_environment("ce", 2),
        job_queue("a-low", 1, &["ce"]),
        job_queue("z-high", 100, &["ce"])
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", 1).await;
    env.apply(&job_definition(
        "hold",
        &traced("$0", support::GATE),
        &["Ref::label"],
        "2",
        "",
    ))
    .await;
    env.apply(&job_definition(
        "quick",
        &traced("$0", "sleep 0.2"),
        &["Ref::label"],
        "2",
        "",
    ))
    .await;
    env.apply(&job(
        "blocker",
        "a-low",
        "hold",
        "parameters: {label: blocker}\n",
    ))
    .await;
    env.wait_job_reached("blocker", JobStatus::Running).await;
    // The low queue's jobs are submitted first: FIFO alone would run them first.
    for name in ["low-1", "low-2"] {
        env.apply(&job(
            name,
            "a-low",
            "quick",
            &format!("parameters: {{label: {name}}}\n"),
        ))
        .await;
    }
    for name in ["high-1", "high-2"] {
        env.apply(&job(
            name,
            "z-high",
            "quick",
            &format!("parameters: {{label: {name}}}\n"),
        ))
        .await;
    }
    // Every job is queued behind the blocker; now let it finish.
    for name in ["low-1", "low-2", "high-1", "high-2"] {
        env.wait_job_reached(name, JobStatus::Runnable).await;
    }
    env.open_gate();
    for name in ["blocker", "low-1", "low-2", "high-1", "high-2"] {
        env.wait_job(name, JobStatus::Succeeded).await;
    }
    let spans = trace_spans(&env.trace());
    let start = |name: &str| {
        spans
            .get(name)
            .and_then(|s| s.0)
            .unwrap_or_else(|| panic!("{name} traced: {spans:?}"))
    };
    let last_high = start("high-1").max(start("high-2"));
    let first_low = start("low-1").min(start("low-2"));
    assert!(
        last_high < first_low,
        "both high-priority jobs started before either low-priority one: {spans:?}"
    );
    env.finish().await;
}

#[tokio::test]
async fn compute_environment_order_spills_work_to_the_second_environment() {
    let env = E2e::start("spill").await;
    env.apply(&format!(
        "{}{}{}",
        compute_environment("first", 2),
        compute_environment("second", 4),
        job_queue("q", 10, &["first", "second"])
    ))
    .await;
    env.wait_compute_environment("${NS}-first", 1).await;
    env.wait_compute_environment("${NS}-second", 2).await;
    // Each job runs until the test opens the gate, so all three hold their place at once.
    env.apply(&job_definition("work", support::GATE, &[], "1", ""))
        .await;
    // Three one-vCPU jobs: two fill the first environment, the third spills over (the second
    // environment, larger, would take all three if the order were not respected).
    let names = ["w1", "w2", "w3"];
    for name in names {
        env.apply(&job(name, "q", "work", "")).await;
    }
    for name in names {
        env.wait_job_reached(name, JobStatus::Running).await;
    }
    env.open_gate();
    let mut placed: BTreeMap<String, usize> = BTreeMap::new();
    for name in names {
        let done = env.wait_job(name, JobStatus::Succeeded).await;
        let ce = done
            .status
            .and_then(|s| s.compute_environment)
            .unwrap_or_else(|| panic!("{name} names its compute environment"));
        *placed.entry(ce).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = [
        (format!("{}-first", env.ns), 2),
        (format!("{}-second", env.ns), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        placed, expected,
        "the first environment takes what fits, the rest spills to the second"
    );
    env.finish().await;
}

#[tokio::test]
async fn killing_the_operator_amid_200_jobs_loses_and_duplicates_nothing() {
    const JOBS: usize = 200;
    let mut env = E2e::start_with("restart", Options::scripted()).await;
    // 16 jobs at a time (4 vCPUs, a quarter each), half a second each: some 13 waves. The
    // environment is DISABLED while the jobs are submitted (submitting 200 takes a while), so
    // that the work starts all at once when it is enabled.
    let environment = compute_environment("ce", 4);
    env.apply(&format!(
        "{}{}",
        environment.replace("state: ENABLED", "state: DISABLED"),
        job_queue("q", 10, &["ce"])
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", 2).await;
    let pod_uids = env.watch_pod_uids();
    env.apply(&job_definition("tiny", "exit 0", &[], "0.25", ""))
        .await;
    let mut manifests = String::new();
    for i in 0..JOBS {
        manifests.push_str(&job(
            &format!("j{i:03}"),
            "q",
            "tiny",
            &scripted_tags("0.5", 0),
        ));
    }
    env.apply(&manifests).await;
    env.wait_until("every job to be RUNNABLE", || async {
        let list = env.jobs().list(&ListParams::default()).await.ok()?;
        let runnable = list
            .items
            .iter()
            .filter(|j| status_of(j) == Some(JobStatus::Runnable))
            .count();
        (runnable == JOBS).then_some(())
    })
    .await;
    env.apply(&environment).await;

    let jobs = env.jobs();
    let count_succeeded = || {
        let jobs = jobs.clone();
        async move {
            let list = jobs.list(&ListParams::default()).await.ok()?;
            Some(
                list.items
                    .iter()
                    .filter(|j| status_of(j) == Some(JobStatus::Succeeded))
                    .count(),
            )
        }
    };
    let at_kill = env
        .wait_until("a tenth of the jobs to succeed", || async {
            count_succeeded().await.filter(|n| *n >= JOBS / 10)
        })
        .await;
    env.kill_operator();
    assert!(
        at_kill <= JOBS / 2,
        "the operator was killed in the middle of the work ({at_kill} of {JOBS} done)"
    );
    env.start_operator();
    env.wait_until(&format!("all {JOBS} jobs to succeed"), || async {
        count_succeeded().await.filter(|n| *n == JOBS)
    })
    .await;

    let all = jobs.list(&ListParams::default()).await.expect("jobs");
    assert_eq!(all.items.len(), JOBS);
    for j in &all.items {
        assert_eq!(attempts(j), 1, "{} ran once: {:#?}", j.name_any(), j.status);
    }
    // Let the watch catch up with the last pods, then: one pod per job, never re-created.
    let seen = env
        .wait_until("every job's pod to be seen", || async {
            let seen = pod_uids.snapshot();
            (seen.len() >= JOBS).then_some(seen)
        })
        .await;
    let expected: Vec<String> = (0..JOBS).map(|i| format!("j{i:03}-1")).collect();
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), expected);
    let recreated: Vec<&String> = seen
        .iter()
        .filter(|(_, uids)| uids.len() != 1)
        .map(|(name, _)| name)
        .collect();
    assert!(recreated.is_empty(), "pods created twice: {recreated:?}");
    eprintln!("killed the operator with {at_kill}/{JOBS} jobs done; all {JOBS} finished once");
    env.finish().await;
}

/// Status coalescing leaves a started job's STARTING / RUNNING unwritten for a window (here
/// ten minutes, so the window is open for the whole test). A pod deleted by hand in that window
/// (its result finalizer removed first, so it goes at once) is the loss of its attempt, as if
/// the start had been written: the attempt fails and the retry strategy runs attempt 2 (AWS
/// Batch when the host goes away) — never a second pod for attempt 1.
#[tokio::test]
async fn a_pod_deleted_by_hand_before_its_start_is_written_fails_its_attempt() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{DeleteParams, Patch, PatchParams};

    let env = E2e::start_with(
        "vanished",
        Options::scripted().flag("--status-coalesce-ms=600000"),
    )
    .await;
    one_queue(&env, 2).await;
    env.apply(&job_definition(
        "long",
        "exit 0",
        &[],
        "1",
        "retryStrategy:\n  attempts: 2\n",
    ))
    .await;
    let pod_uids = env.watch_pod_uids();
    env.apply(&job("lost", "q", "long", &scripted_tags("600", 0)))
        .await;
    let running = |p: &Pod| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    env.wait_for(&env.pods(), "lost-1", "Running", running)
        .await;
    let before = env.jobs().get("lost").await.expect("job");
    assert_eq!(
        (status_of(&before), attempts(&before)),
        (Some(JobStatus::Runnable), 0),
        "the start is not written yet (the window is open): {:#?}",
        before.status
    );

    let pods = env.pods();
    pods.patch(
        "lost-1",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("remove the result finalizer");
    pods.delete(
        "lost-1",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .expect("delete the pod");

    // Either outcome shows quickly: attempt 1 recorded, or its pod created again.
    let job = env
        .wait_until("attempt 1 recorded, or its pod created again", || async {
            let recreated = pod_uids.snapshot().get("lost-1").map_or(0, |u| u.len()) > 1;
            let job = env.jobs().get("lost").await.ok()?;
            (recreated || attempts(&job) >= 1).then_some(job)
        })
        .await;
    let status = job.status.clone().expect("status");
    assert_eq!(
        status.attempts.len(),
        1,
        "the lost pod's attempt is recorded: {status:#?}"
    );
    let reason = status.attempts[0].status_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("lost-1") && reason.contains("disappeared"),
        "the attempt failed for its vanished pod: {reason:?}"
    );
    assert_eq!(
        status_of(&job),
        Some(JobStatus::Runnable),
        "retried (2 attempts)"
    );
    env.wait_for(&env.pods(), "lost-2", "Running", running)
        .await;
    let seen = pod_uids.snapshot();
    assert_eq!(
        seen.get("lost-1").map(|u| u.len()),
        Some(1),
        "attempt 1's pod was never created again: {seen:?}"
    );
    env.finish().await;
}

/// The harness itself, without Barge's job controller: a pod bound by hand to a compute
/// environment's node runs with the process runtime, its log is readable, and its trace lines
/// land in the trace file (what the ordering checks above rely on).
#[tokio::test]
async fn the_harness_reads_logs_and_traces_of_process_pods() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::PostParams;

    let env = E2e::start("harness").await;
    one_queue(&env, 2).await;
    let node = env
        .nodes()
        .list(&ListParams::default().labels(&format!(
            "{}={}-ce",
            barge_crds::consts::LABEL_COMPUTE_ENVIRONMENT,
            env.ns
        )))
        .await
        .expect("nodes")
        .items
        .into_iter()
        .next()
        .expect("a node of the environment");
    let script = env.render(&traced("by-hand", "echo hello from the harness"));
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "by-hand"},
        "spec": {
            "nodeName": node.name_any(),
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}]
        }
    }))
    .expect("pod");
    env.pods()
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    env.wait_for(&env.pods(), "by-hand", "Succeeded", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
    })
    .await;
    let log = env.wait_log("by-hand", "hello from the harness").await;
    assert_eq!(log.trim(), "hello from the harness");
    let spans = trace_spans(&env.trace());
    let (start, end) = spans.get("by-hand").copied().unwrap_or_default();
    assert!(
        matches!((start, end), (Some(s), Some(e)) if s <= e),
        "trace: {spans:?}"
    );
    env.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Conditions and reasons (README, "Conditions and reasons")
// ---------------------------------------------------------------------------------------------

/// The condition of `type_` on a job, as (status, reason, message).
fn job_condition(job: &barge_crds::Job, type_: &str) -> Option<(String, String, String)> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The status and reason of an object's Ready condition.
fn ready_condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<(String, String)> {
    conditions
        .iter()
        .find(|c| c.type_ == barge_crds::consts::CONDITION_READY)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn a_failed_job_says_it_failed_and_that_it_was_placed() {
    use barge_crds::consts::{
        CONDITION_FAILED, CONDITION_SCHEDULABLE, CONDITION_SUCCEEDED, REASON_JOB_FAILED,
        REASON_PLACED,
    };
    let env = E2e::start_with("failedconds", Options::scripted()).await;
    one_queue(&env, 2).await;
    env.apply(&job_definition("scripted", "exit 0", &[], "1", ""))
        .await;
    env.apply(&job("exits-one", "q", "scripted", &scripted_tags("0", 1)))
        .await;
    let failed = env.wait_job("exits-one", JobStatus::Failed).await;
    let reason = status_reason(&failed);
    let (status, why, message) =
        job_condition(&failed, CONDITION_SUCCEEDED).expect("Succeeded condition");
    assert_eq!(
        (status.as_str(), why.as_str()),
        ("False", REASON_JOB_FAILED),
        "a FAILED job is not waiting: {failed:?}"
    );
    assert_eq!(message, reason, "Succeeded says why the job failed");
    let (status, why, _) = job_condition(&failed, CONDITION_FAILED).expect("Failed condition");
    assert_eq!((status.as_str(), why.as_str()), ("True", REASON_JOB_FAILED));
    let (status, why, _) =
        job_condition(&failed, CONDITION_SCHEDULABLE).expect("Schedulable condition");
    assert_eq!(
        (status.as_str(), why.as_str()),
        ("True", REASON_PLACED),
        "its attempt had a pod"
    );
    env.finish().await;
}

#[tokio::test]
async fn a_job_cancelled_before_it_was_placed_never_shows_placed() {
    use barge_crds::consts::{
        CONDITION_SCHEDULABLE, CONDITION_SUCCEEDED, REASON_DEPENDENCIES_PENDING, REASON_JOB_FAILED,
        REASON_NEVER_PLACED,
    };
    let env = E2e::start("neverplaced").await;
    one_queue(&env, 2).await;
    env.apply(&job_definition("ok", "echo never", &[], "1", ""))
        .await;
    env.apply(&job(
        "waits",
        "q",
        "ok",
        "dependsOn: [{jobName: not-submitted-yet}]\n",
    ))
    .await;
    let pending = env
        .wait_for(&env.jobs(), "waits", "PENDING, saying so", |j| {
            status_of(j) == Some(JobStatus::Pending)
                && job_condition(j, CONDITION_SCHEDULABLE)
                    .is_some_and(|(s, r, _)| s == "False" && r == REASON_DEPENDENCIES_PENDING)
        })
        .await;
    assert_eq!(attempts(&pending), 0);
    env.terminate("waits", "no longer needed", None).await;
    let cancelled = env.wait_job("waits", JobStatus::Failed).await;
    assert_eq!(status_reason(&cancelled), "no longer needed");
    let (status, why, message) =
        job_condition(&cancelled, CONDITION_SCHEDULABLE).expect("Schedulable condition");
    assert_eq!(
        (status.as_str(), why.as_str()),
        ("False", REASON_NEVER_PLACED),
        "no pod was ever created: {cancelled:?}"
    );
    assert!(message.contains("no longer needed"), "{message}");
    let (_, why, _) = job_condition(&cancelled, CONDITION_SUCCEEDED).expect("Succeeded");
    assert_eq!(why, REASON_JOB_FAILED);
    assert!(env.pods_of("waits").await.is_empty());
    env.finish().await;
}

/// A compute environment whose nodes never come: the job says so, the environment and the
/// queue stop calling themselves healthy, and the job carries AWS Batch's
/// `CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY`, which the queue's `jobStateTimeLimitActions`
/// cancels. `maxTimeSeconds` is at least 600 (AWS's bound), so instead of waiting ten minutes
/// the test moves the job's recorded clock (the Schedulable condition's transition time) ten
/// minutes back — what an operator restarted ten minutes later would read.
#[tokio::test]
async fn a_job_on_an_environment_without_ready_nodes_gets_the_capacity_reason_and_is_cancelled() {
    use barge_crds::compute_environment::CeStatus;
    use barge_crds::consts::{
        CONDITION_SCHEDULABLE, REASON_NEVER_PLACED, REASON_NO_READY_NODES,
        STATUS_REASON_CANCELED_BY_TIME_LIMIT_PREFIX,
    };
    use barge_crds::job_queue::JqStatus;

    const CAPACITY: &str = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY";
    let env = E2e::start("nonodes").await;
    // An UNMANAGED environment whose selector matches no node: VALID, but nothing can run.
    env.apply(&format!(
        r#"---
apiVersion: batch.barge.dev/v1alpha1
kind: ComputeEnvironment
metadata: {{name: "${{NS}}-empty"}}
spec:
  type: UNMANAGED
  state: ENABLED
  nodeSelector: {{barge-e2e/no-such-pool: "${{NS}}"}}
---
apiVersion: batch.barge.dev/v1alpha1
kind: JobQueue
metadata: {{name: "${{NS}}-q"}}
spec:
  state: ENABLED
  priority: 1
  computeEnvironmentOrder: [{{order: 1, computeEnvironment: "${{NS}}-empty"}}]
  jobStateTimeLimitActions:
    - {{reason: "{CAPACITY}", state: RUNNABLE, maxTimeSeconds: 600, action: CANCEL}}
"#
    ))
    .await;
    env.apply(&job_definition("ok", "echo never", &[], "1", ""))
        .await;
    env.apply(&job("stuck", "q", "ok", "")).await;

    let stuck = env
        .wait_for(
            &env.jobs(),
            "stuck",
            "RUNNABLE with the capacity reason",
            |j| status_of(j) == Some(JobStatus::Runnable) && status_reason(j).starts_with(CAPACITY),
        )
        .await;
    assert!(
        status_reason(&stuck).starts_with(
            "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested for instance type"
        ),
        "AWS's wording: {}",
        status_reason(&stuck)
    );
    let (status, why, message) =
        job_condition(&stuck, CONDITION_SCHEDULABLE).expect("Schedulable condition");
    assert_eq!(
        (status.as_str(), why.as_str()),
        ("False", REASON_NO_READY_NODES),
        "{message}"
    );
    assert!(message.contains("has a Ready node"), "{message}");

    let ce_name = env.render("${NS}-empty");
    let ce = env
        .wait_for(&env.compute_environments(), &ce_name, "not Ready", |ce| {
            ce.status.as_ref().is_some_and(|s| {
                ready_condition(&s.conditions)
                    .is_some_and(|(st, r)| st == "False" && r == REASON_NO_READY_NODES)
            })
        })
        .await;
    let ce_status = ce.status.expect("status");
    assert_eq!(ce_status.status, Some(CeStatus::Valid), "its spec is fine");
    assert_ne!(
        ce_status.status_reason.as_deref(),
        Some("ComputeEnvironment Healthy")
    );
    let queue_name = env.render("${NS}-q");
    let queue = env
        .wait_for(&env.queues(), &queue_name, "not Ready", |q| {
            q.status.as_ref().is_some_and(|s| {
                ready_condition(&s.conditions)
                    .is_some_and(|(st, r)| st == "False" && r == REASON_NO_READY_NODES)
            })
        })
        .await;
    let queue_status = queue.status.expect("status");
    assert_eq!(queue_status.status, Some(JqStatus::Valid));
    assert_ne!(
        queue_status.status_reason.as_deref(),
        Some("JobQueue Healthy")
    );

    // Ten minutes later, as far as the recorded clock goes.
    env.backdate_schedulable(&stuck, 601).await;

    let cancelled = env.wait_job("stuck", JobStatus::Failed).await;
    assert_eq!(
        status_reason(&cancelled),
        format!("{STATUS_REASON_CANCELED_BY_TIME_LIMIT_PREFIX}{CAPACITY}")
    );
    let (status, why, _) =
        job_condition(&cancelled, CONDITION_SCHEDULABLE).expect("Schedulable condition");
    assert_eq!(
        (status.as_str(), why.as_str()),
        ("False", REASON_NEVER_PLACED)
    );
    assert!(env.pods_of("stuck").await.is_empty());
    env.finish().await;
}

// ---------------------------------------------------------------- hostile input (issue 9)

#[tokio::test]
async fn jobs_in_a_dependency_cycle_fail_naming_the_cycle() {
    let env = E2e::start("depcycle").await;
    one_queue(&env, 4).await;
    env.apply(&job_definition("ok", "echo never", &[], "1", ""))
        .await;
    // a → b → a, and c → d → e → c; `f` waits on a member of the second cycle.
    for (name, dep) in [
        ("a", "b"),
        ("b", "a"),
        ("c", "d"),
        ("d", "e"),
        ("e", "c"),
        ("f", "d"),
    ] {
        env.apply(&job(
            name,
            "q",
            "ok",
            &format!("dependsOn: [{{jobName: {dep}}}]\n"),
        ))
        .await;
    }
    for (name, cycle) in [
        ("a", "a → b → a"),
        ("b", "b → a → b"),
        ("c", "c → d → e → c"),
        ("d", "d → e → c → d"),
        ("e", "e → c → d → e"),
    ] {
        let failed = env.wait_job(name, JobStatus::Failed).await;
        assert_eq!(
            status_reason(&failed),
            format!("Dependency cycle: {cycle}"),
            "{name}"
        );
        assert!(env.pods_of(name).await.is_empty(), "{name} never ran");
    }
    let f = env.wait_job("f", JobStatus::Failed).await;
    assert_eq!(status_reason(&f), STATUS_REASON_DEPENDENT_JOB_FAILED);
    env.finish().await;
}

#[tokio::test]
async fn a_dependency_that_never_appears_fails_after_the_grace_period() {
    let env = E2e::start_with(
        "depmissing",
        Options::default().flag("--dependency-grace-seconds=4"),
    )
    .await;
    one_queue(&env, 4).await;
    env.apply(&job_definition("ok", "echo done", &[], "1", ""))
        .await;
    env.apply(&job("orphan", "q", "ok", "dependsOn: [{jobName: ghost}]\n"))
        .await;
    // Applied out of order, within the grace: waits, then runs.
    env.apply(&job("late", "q", "ok", "dependsOn: [{jobName: early}]\n"))
        .await;
    let waiting = env.wait_job_reached("orphan", JobStatus::Pending).await;
    assert!(
        status_reason(&waiting).contains("\"ghost\", which does not exist"),
        "{:?}",
        status_reason(&waiting)
    );
    env.apply(&job("early", "q", "ok", "")).await;
    env.wait_job("late", JobStatus::Succeeded).await;

    let orphan = env.wait_job("orphan", JobStatus::Failed).await;
    assert_eq!(
        status_reason(&orphan),
        "Dependency not found: job \"ghost\" does not exist (waited 4 s)"
    );
    assert!(env.pods_of("orphan").await.is_empty());
    env.finish().await;
}

#[tokio::test]
async fn refused_pod_creations_back_off_warn_and_fail_the_attempt() {
    if support::skip_on_real_cluster("refused_pod_creations_back_off_warn_and_fail_the_attempt") {
        return;
    }
    let env = E2e::start_with(
        "podrefused",
        Options::scripted().flag("--pod-create-give-up-seconds=3"),
    )
    .await;
    one_queue(&env, 4).await;
    let sim = env.sim_cluster().expect("simulated cluster");
    sim.reset_stats();
    // Every pod create is refused, as Pod Security admission or a ResourceQuota refuses it.
    sim.faults().set(barge_sim::apiserver::faults::FaultConfig {
        error_rate: 1.0,
        error_codes: vec![403],
        verbs: vec!["create".into()],
        resources: vec!["pods".into()],
        ..Default::default()
    });
    env.apply(&job_definition(
        "refused",
        "exit 0",
        &[],
        "1",
        "retryStrategy: {attempts: 2}\n",
    ))
    .await;
    env.apply(&job("refused", "q", "refused", &scripted_tags("0", 0)))
        .await;
    let started = std::time::Instant::now();
    let failed = env.wait_job("refused", JobStatus::Failed).await;
    let elapsed = started.elapsed();
    let creates = sim.stats().count("create", "pods");
    sim.faults().clear();

    let status = failed.status.as_ref().expect("status");
    assert_eq!(status.attempts.len(), 2, "two attempts, each given up");
    for attempt in &status.attempts {
        let reason = attempt.status_reason.clone().unwrap_or_default();
        assert!(
            reason.starts_with("PodCreationRefused: ") && !reason.contains("Status {"),
            "the API server's message, not a debug dump: {reason:?}"
        );
    }
    assert!(
        status_reason(&failed).starts_with("PodCreationRefused: "),
        "{:?}",
        status_reason(&failed)
    );
    assert!(
        elapsed >= std::time::Duration::from_secs(6),
        "each attempt tried for its 3 s: {elapsed:?}"
    );
    // Backoff: 1 s, 2 s, 4 s... per job; retrying every pass would be ~5 creates a second.
    assert!(
        creates <= 12,
        "{creates} pod creates in {elapsed:?}: refused creates must back off"
    );
    assert!(env.pods_of("refused").await.is_empty());

    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(env.client.clone(), &env.ns);
    let warning = env
        .wait_until("a PodCreationRefused Warning Event", || {
            let events = events.clone();
            async move {
                events
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .find(|e| e.reason.as_deref() == Some("PodCreationRefused"))
            }
        })
        .await;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    let note = warning.note.unwrap_or_default();
    assert!(
        note.contains("refused") && !note.contains("Status {"),
        "{note}"
    );
    env.finish().await;
}

#[tokio::test]
async fn a_new_job_on_a_queue_or_definition_being_deleted_is_refused() {
    let env = E2e::start_with("deleting", Options::scripted()).await;
    one_queue(&env, 4).await;
    env.apply(&job_definition("long", "exit 0", &[], "1", ""))
        .await;
    env.apply(&job_definition("other", "exit 0", &[], "1", ""))
        .await;
    env.apply(&job("old", "q", "long", &scripted_tags("8", 0)))
        .await;
    env.wait_job_reached("old", JobStatus::Running).await;

    // The queue is in use by `old`: deleting it leaves it terminating until `old` ends.
    let queue = env.render("${NS}-q");
    env.queues()
        .delete(&queue, &Default::default())
        .await
        .expect("delete queue");
    env.wait_for(&env.queues(), &queue, "being deleted", |q| {
        q.metadata.deletion_timestamp.is_some()
    })
    .await;
    env.apply(&job("new", "q", "other", &scripted_tags("0", 0)))
        .await;
    let refused = env.wait_job("new", JobStatus::Failed).await;
    assert_eq!(
        status_reason(&refused),
        format!("job queue {queue:?} is being deleted and accepts no new jobs")
    );
    assert!(
        env.pods_of("new").await.is_empty(),
        "refused before any pod"
    );

    // The same for a definition being deleted (in use by `old`, so it stays).
    env.definitions()
        .delete("long", &Default::default())
        .await
        .expect("delete definition");
    env.wait_for(&env.definitions(), "long", "being deleted", |d| {
        d.metadata.deletion_timestamp.is_some()
    })
    .await;
    env.apply(&job("newer", "q", "long", &scripted_tags("0", 0)))
        .await;
    let refused = env.wait_job("newer", JobStatus::Failed).await;
    assert_eq!(
        status_reason(&refused),
        "job definition \"long\" is being deleted and accepts no new jobs"
    );
    assert!(env.pods_of("newer").await.is_empty());

    // Admitted before the deletions: runs to the end.
    env.wait_job("old", JobStatus::Succeeded).await;
    env.finish().await;
}

/// A pod as a watch first saw it.
#[derive(Clone)]
struct FirstSeen {
    node: Option<String>,
    selector: BTreeMap<String, String>,
    toleration_keys: Vec<String>,
}

/// What a pod watch saw of Barge's pods in `bindingMode: KubeScheduler`.
#[derive(Default)]
struct UnboundPods {
    /// Per pod: how it was first seen.
    first_seen: BTreeMap<String, FirstSeen>,
    /// Pods neither finished nor gone.
    live: std::collections::BTreeSet<String>,
    /// The most pods live at once.
    most_live: usize,
}

#[tokio::test]
async fn kube_scheduler_binding_creates_unbound_pods_within_the_vcpu_budget() {
    use futures::StreamExt;
    use kube::runtime::{watcher, WatchStreamExt};

    let env = E2e::start("kubesched").await;
    // A fixed pool of 4 vCPUs (two c5.large nodes) whose pods the kube-scheduler binds (here
    // the simulated kubelet, standing in for it).
    let ce = compute_environment("ce", 4).replace(
        "spec:\n  type: MANAGED\n",
        "spec:\n  type: MANAGED\n  bindingMode: KubeScheduler\n",
    );
    assert!(ce.contains("bindingMode"), "{ce}");
    env.apply(&format!("{ce}{}", job_queue("q", 10, &["ce"])))
        .await;
    env.wait_compute_environment("${NS}-ce", 2).await;

    let seen = std::sync::Arc::new(std::sync::Mutex::new(UnboundPods::default()));
    let record = seen.clone();
    let (listed_tx, listed_rx) = tokio::sync::oneshot::channel::<()>();
    let api = env.pods();
    let watch = tokio::spawn(async move {
        let mut listed = Some(listed_tx);
        let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
        while let Some(event) = stream.next().await {
            let Ok(event) = event else { continue };
            let mut seen = record.lock().expect("lock");
            match event {
                watcher::Event::InitDone => {
                    if let Some(tx) = listed.take() {
                        let _ = tx.send(());
                    }
                }
                watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                    let name = pod.name_any();
                    let spec = pod.spec.clone().unwrap_or_default();
                    seen.first_seen
                        .entry(name.clone())
                        .or_insert_with(|| FirstSeen {
                            node: spec.node_name.clone(),
                            selector: spec.node_selector.clone().unwrap_or_default(),
                            toleration_keys: spec
                                .tolerations
                                .iter()
                                .flatten()
                                .filter_map(|t| t.key.clone())
                                .collect(),
                        });
                    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
                    let done = matches!(phase.as_deref(), Some("Succeeded") | Some("Failed"))
                        || pod.metadata.deletion_timestamp.is_some();
                    if done {
                        seen.live.remove(&name);
                    } else {
                        seen.live.insert(name);
                    }
                    seen.most_live = seen.most_live.max(seen.live.len());
                }
                watcher::Event::Delete(pod) => {
                    seen.live.remove(&pod.name_any());
                }
                watcher::Event::Init => {}
            }
        }
    });
    listed_rx.await.expect("the pod watch listed");

    // Eight one-vCPU jobs that hold until the gate opens: four fit the budget.
    env.apply(&job_definition("work", support::GATE, &[], "1", ""))
        .await;
    let names: Vec<String> = (1..=8).map(|i| format!("k{i}")).collect();
    for name in &names {
        env.apply(&job(name, "q", "work", "")).await;
    }
    let running = env
        .wait_until("four jobs running", || async {
            let list = env.jobs().list(&ListParams::default()).await.ok()?;
            let running = list
                .items
                .iter()
                .filter(|j| status_of(j) == Some(JobStatus::Running))
                .count();
            (running >= 4).then_some(running)
        })
        .await;
    assert_eq!(running, 4);
    // The budget is spent: the rest wait in RUNNABLE, with no pod.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let list = env.jobs().list(&ListParams::default()).await.expect("jobs");
    let runnable = list
        .items
        .iter()
        .filter(|j| status_of(j) == Some(JobStatus::Runnable))
        .count();
    assert_eq!(runnable, 4, "four jobs wait for the budget");
    let pods = env.pods().list(&ListParams::default()).await.expect("pods");
    assert_eq!(pods.items.len(), 4, "only admitted work has pods");

    env.open_gate();
    for name in &names {
        env.wait_job(name, JobStatus::Succeeded).await;
    }
    watch.abort();
    let (first_seen, most_live) = {
        let seen = seen.lock().expect("lock");
        (seen.first_seen.clone(), seen.most_live)
    };
    assert_eq!(first_seen.len(), 8, "one pod per job");
    let ce_name = format!("{}-ce", env.ns);
    for (pod, first) in &first_seen {
        assert_eq!(first.node, None, "{pod} was created unbound");
        assert_eq!(
            first
                .selector
                .get(barge_crds::consts::LABEL_COMPUTE_ENVIRONMENT),
            Some(&ce_name),
            "{pod} selects the environment's nodes"
        );
        assert!(
            first
                .toleration_keys
                .iter()
                .any(|k| k == barge_crds::consts::TAINT_COMPUTE_ENVIRONMENT),
            "{pod} tolerates the environment's taint"
        );
    }
    assert!(
        most_live <= 4,
        "never more than maxvCpus (4) of one-vCPU pods at once: {most_live}"
    );
    // The simulated kubelet bound every pod to a node of the environment.
    for name in &names {
        for pod in env.pods_of(name).await {
            let node = pod.spec.and_then(|s| s.node_name).expect("bound");
            let node = env.nodes().get(&node).await.expect("the pod's node");
            assert_eq!(
                node.labels()
                    .get(barge_crds::consts::LABEL_COMPUTE_ENVIRONMENT),
                Some(&ce_name),
                "{} is a node of {ce_name}",
                node.name_any()
            );
        }
    }
    env.finish().await;
}

/// The job controller hands kube-runtime at most 2 × `--reconcile-concurrency` requests that
/// have not started (its gate; `controllers/gate.rs`). With a concurrency of 1 that is two: a
/// burst of jobs, some deleted while their requests wait (the runner then finds them gone from
/// the store), must still all run — a request the gate lost track of would hold one of its two
/// places for ever and, after two, stop every job.
#[tokio::test]
async fn a_burst_through_a_gate_of_two_requests_runs_every_job() {
    use kube::api::DeleteParams;
    const JOBS: usize = 120;
    const DELETED: usize = 30;
    let env = E2e::start_with(
        "gate",
        Options::scripted().flag("--reconcile-concurrency=1"),
    )
    .await;
    one_queue(&env, 4).await;
    env.apply(&job_definition("tiny", "exit 0", &[], "0.25", ""))
        .await;
    let mut manifests = String::new();
    for i in 0..JOBS {
        manifests.push_str(&job(
            &format!("g{i:03}"),
            "q",
            "tiny",
            &scripted_tags("0.1", 0),
        ));
    }
    env.apply(&manifests).await;
    let jobs = env.jobs();
    for i in (0..JOBS).step_by(JOBS / DELETED) {
        jobs.delete(&format!("g{i:03}"), &DeleteParams::default())
            .await
            .expect("delete a job");
    }
    env.wait_until(
        &format!("the {} jobs left to succeed", JOBS - DELETED),
        || async {
            let list = jobs.list(&ListParams::default()).await.ok()?;
            let succeeded = list
                .items
                .iter()
                .filter(|j| status_of(j) == Some(JobStatus::Succeeded))
                .count();
            (list.items.len() == JOBS - DELETED && succeeded == JOBS - DELETED).then_some(())
        },
    )
    .await;
    for j in &jobs.list(&ListParams::default()).await.expect("jobs").items {
        assert_eq!(attempts(j), 1, "{} ran once: {:#?}", j.name_any(), j.status);
    }
    env.finish().await;
}

/// How long a test leaves the operator idle: many scheduler ticks (100 ms here), so that the
/// loop has long settled on passes that find nothing changed and decide nothing anew
/// (`scheduler/unchanged.rs`).
const IDLE: std::time::Duration = std::time::Duration::from_secs(3);

/// Placed "promptly" after what held a job back changed: a few passes, not a timer's period.
const PROMPTLY: std::time::Duration = std::time::Duration::from_secs(10);

/// A pass that writes the queues' status decides in full (every 5 s by default): without
/// them, only the inputs a test changes make a pass decide.
const NO_QUEUE_STATUS_ROUNDS: &str = "--queue-status-interval-ms=600000";

/// Waits until `name` is RUNNABLE with a Schedulable=False condition whose message has `says`.
async fn wait_blocked(env: &E2e, name: &str, says: &str) {
    env.wait_for(&env.jobs(), name, says, |j| {
        j.status.as_ref().is_some_and(|s| {
            s.status == Some(JobStatus::Runnable)
                && s.conditions.iter().any(|c| {
                    c.type_ == "Schedulable" && c.status == "False" && c.message.contains(says)
                })
        })
    })
    .await;
}

/// The scheduler leaves a pass out when nothing it reads changed since one that placed
/// nothing: a job blocked by its DISABLED queue on an idle operator runs as soon as the queue
/// is enabled (a queue change is one of the pass's inputs).
#[tokio::test]
async fn an_idle_operator_places_a_blocked_job_as_soon_as_its_queue_is_enabled() {
    let env = E2e::start_with(
        "idle-queue",
        Options::scripted().flag(NO_QUEUE_STATUS_ROUNDS),
    )
    .await;
    // The environment is DISABLED until the job is RUNNABLE (a DISABLED queue takes no new job).
    let environment = compute_environment("ce", 4);
    let queue = job_queue("q", 10, &["ce"]);
    env.apply(&format!(
        "{}{queue}",
        environment.replace("state: ENABLED", "state: DISABLED"),
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", 2).await;
    env.apply(&job_definition("tiny", "exit 0", &[], "1", ""))
        .await;
    env.apply(&job("waits", "q", "tiny", &scripted_tags("0", 0)))
        .await;
    wait_blocked(&env, "waits", "DISABLED").await;
    env.apply(&queue.replace("state: ENABLED", "state: DISABLED"))
        .await;
    env.apply(&environment).await;
    wait_blocked(&env, "waits", "queue").await;
    tokio::time::sleep(IDLE).await;
    assert_eq!(
        status_of(&env.jobs().get("waits").await.expect("job")),
        Some(JobStatus::Runnable),
        "nothing places a job of a DISABLED queue"
    );

    env.apply(&queue).await;
    runs_promptly(env, "waits", "its queue was enabled").await;
}

/// A job whose pod creates were refused backs off; once the API server accepts pods again its
/// next try comes when its backoff ends, although nothing else changes: the end of a backoff is
/// one of the scheduler's inputs (the job controller would only look again when the attempt is
/// given up, minutes later here).
#[tokio::test]
async fn an_idle_operator_tries_a_refused_create_again_when_its_backoff_ends() {
    if support::skip_on_real_cluster(
        "an_idle_operator_tries_a_refused_create_again_when_its_backoff_ends",
    ) {
        return;
    }
    let env = E2e::start_with(
        "idle-refused",
        Options::scripted()
            .flag("--pod-create-give-up-seconds=600")
            .flag(NO_QUEUE_STATUS_ROUNDS),
    )
    .await;
    one_queue(&env, 4).await;
    let sim = env.sim_cluster().expect("simulated cluster");
    sim.faults().set(barge_sim::apiserver::faults::FaultConfig {
        error_rate: 1.0,
        error_codes: vec![403],
        verbs: vec!["create".into()],
        resources: vec!["pods".into()],
        ..Default::default()
    });
    env.apply(&job_definition("tiny", "exit 0", &[], "1", ""))
        .await;
    env.apply(&job("refused", "q", "tiny", &scripted_tags("0", 0)))
        .await;
    // The backoff doubles from 1 s with each refusal: after the third, the next try is 4 s
    // away, and nothing else happens meanwhile.
    wait_blocked(&env, "refused", "refused 3 time(s)").await;
    sim.faults().clear();
    runs_promptly(env, "refused", "pods were accepted again").await;
}

/// `job` reaches STARTING within [`PROMPTLY`] of the change just made (`change`), then succeeds.
async fn runs_promptly(env: E2e, job: &str, change: &str) {
    let changed = std::time::Instant::now();
    env.wait_job_reached(job, JobStatus::Starting).await;
    assert!(
        changed.elapsed() < PROMPTLY,
        "{job} started {:?} after {change}",
        changed.elapsed()
    );
    env.wait_job(job, JobStatus::Succeeded).await;
    env.finish().await;
}
