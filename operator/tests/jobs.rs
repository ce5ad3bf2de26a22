//! The job controller and the scheduler against an in-process simulated cluster (scripted
//! kubelet), with the operator running in-process: the quick tests of job semantics. The
//! end-to-end tests of the real binary live under e2e/tests.

mod support;

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::ResourceExt;

use barge_crds::consts::LABEL_JOB_NAME;
use barge_crds::{ComputeEnvironment, Job, JobDefinition, JobQueue, JobStatus};
use support::{from_yaml, wait_for, Env};

async fn setup(env: &Env, vcpus: i32) {
    let ce: ComputeEnvironment = from_yaml(&format!(
        r#"
apiVersion: batch.barge.dev/v1alpha1
kind: ComputeEnvironment
metadata: {{name: ce}}
spec:
  type: MANAGED
  computeResources:
    type: EC2
    minvCpus: 0
    maxvCpus: 64
    desiredvCpus: {vcpus}
    instanceTypes: [m5.xlarge]
    provider: {{simulated: {{}}}}
"#
    ));
    env.api::<ComputeEnvironment>()
        .create(&PostParams::default(), &ce)
        .await
        .expect("ce");
    let queue: JobQueue = from_yaml(
        "apiVersion: batch.barge.dev/v1alpha1\nkind: JobQueue\nmetadata: {name: q}\nspec: {priority: 1, computeEnvironmentOrder: [{order: 1, computeEnvironment: ce}]}\n",
    );
    env.api::<JobQueue>()
        .create(&PostParams::default(), &queue)
        .await
        .expect("queue");
    let jd: JobDefinition = from_yaml(
        r#"
apiVersion: batch.barge.dev/v1alpha1
kind: JobDefinition
metadata: {name: work, namespace: default}
spec:
  type: container
  propagateTags: true
  containerProperties:
    image: busybox
    command: [sh, -c, "exit 0"]
    resourceRequirements: [{type: VCPU, value: "1"}, {type: MEMORY, value: "512"}]
  retryStrategy:
    attempts: 3
    evaluateOnExit: [{onExitCode: "3", action: EXIT}]
"#,
    );
    env.namespaced::<JobDefinition>("default")
        .create(&PostParams::default(), &jd)
        .await
        .expect("jd");
}

/// A cluster with the operator running, a compute environment of `vcpus`, queue `q` and
/// definition `work`; the Job API of namespace `default`.
async fn started(vcpus: i32) -> (Env, support::Operator, kube::Api<Job>) {
    let env = Env::start().await;
    let operator = env.start_operator();
    setup(&env, vcpus).await;
    let jobs = env.namespaced::<Job>("default");
    (env, operator, jobs)
}

async fn stop(env: Env, operator: support::Operator) {
    operator.stop().await.expect("operator stops");
    env.stop().await;
}

fn job(name: &str, extra: &str) -> Job {
    from_yaml(&format!(
        "apiVersion: batch.barge.dev/v1alpha1\nkind: Job\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  jobQueue: q\n  jobDefinition: work\n{extra}"
    ))
}

fn status(job: &Job) -> Option<JobStatus> {
    job.status.as_ref().and_then(|s| s.status)
}

async fn finished(env: &Env, name: &str) -> Job {
    wait_for(&env.namespaced::<Job>("default"), name, "finished", |j| {
        status(j).is_some_and(JobStatus::is_finished)
    })
    .await
}

async fn pods_of(env: &Env, job: &str) -> Vec<Pod> {
    env.namespaced::<Pod>("default")
        .list(&ListParams::default().labels(&format!("{LABEL_JOB_NAME}={job}")))
        .await
        .expect("pods")
        .items
}

#[tokio::test]
async fn a_job_runs_to_success_and_records_its_attempt() {
    let (env, operator, jobs) = started(4).await;
    jobs.create(&PostParams::default(), &job("one", ""))
        .await
        .expect("job");
    let done = finished(&env, "one").await;
    let st = done.status.as_ref().expect("status");
    assert_eq!(st.status, Some(JobStatus::Succeeded), "{st:#?}");
    assert_eq!(st.attempts.len(), 1);
    assert_eq!(st.attempts[0].container.exit_code, Some(0));
    assert_eq!(st.compute_environment.as_deref(), Some("ce"));
    assert_eq!(
        st.resolved_job_definition.as_ref().map(|r| r.revision),
        Some(1)
    );
    let pods = pods_of(&env, "one").await;
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].name_any(), "one-1");
    stop(env, operator).await;
}

#[tokio::test]
async fn exit_codes_decide_retries() {
    let (env, operator, jobs) = started(4).await;
    let tags = |code: u8| {
        format!("  tags: {{sim.barge.dev/duration-seconds: \"0\", sim.barge.dev/exit-code: \"{code}\"}}\n")
    };
    jobs.create(&PostParams::default(), &job("exit3", &tags(3)))
        .await
        .expect("job");
    jobs.create(&PostParams::default(), &job("exit1", &tags(1)))
        .await
        .expect("job");
    jobs.create(&PostParams::default(), &job("exit0", &tags(0)))
        .await
        .expect("job");
    let exit3 = finished(&env, "exit3").await;
    let exit1 = finished(&env, "exit1").await;
    finished(&env, "exit0").await;
    let st3 = exit3.status.expect("status");
    assert_eq!(st3.status, Some(JobStatus::Failed));
    assert_eq!(st3.attempts.len(), 1, "EXIT on code 3: {st3:#?}");
    let st1 = exit1.status.expect("status");
    assert_eq!(st1.status, Some(JobStatus::Failed));
    assert_eq!(
        st1.attempts.len(),
        3,
        "no rule matches 1: retried: {st1:#?}"
    );
    let names: BTreeSet<String> = pods_of(&env, "exit1")
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert_eq!(
        names,
        ["exit1-1", "exit1-2", "exit1-3"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    // The default `--job-events failures`: a Warning per retry and per failed job, nothing
    // for normal transitions (the succeeded job has no Event at all).
    let events = env.namespaced::<k8s_openapi::api::events::v1::Event>("default");
    let of = |list: &[k8s_openapi::api::events::v1::Event], name: &str| -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = list
            .iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| {
                (
                    e.type_.clone().unwrap_or_default(),
                    e.reason.clone().unwrap_or_default(),
                )
            })
            .collect();
        found.sort();
        found
    };
    let warning = |reason: &str| ("Warning".to_string(), reason.to_string());
    let list = support::eventually("the failures' Events", || async {
        let list = events.list(&ListParams::default()).await.ok()?.items;
        (of(&list, "exit1").len() == 3 && of(&list, "exit3").len() == 1).then_some(list)
    })
    .await;
    assert_eq!(
        of(&list, "exit1"),
        vec![warning("Failed"), warning("Runnable"), warning("Runnable")],
        "two retries, then FAILED"
    );
    assert_eq!(of(&list, "exit3"), vec![warning("Failed")]);
    assert_eq!(
        of(&list, "exit0"),
        vec![],
        "no Event for a job that succeeded"
    );
    let retry = list
        .iter()
        .find(|e| e.reason.as_deref() == Some("Runnable"))
        .and_then(|e| e.note.clone())
        .unwrap_or_default();
    assert!(
        retry.contains("failed") && retry.contains("retrying"),
        "the retry names its failed attempt: {retry}"
    );
    stop(env, operator).await;
}

#[tokio::test]
async fn an_array_runs_every_child_and_a_dependent_waits_for_it() {
    let (env, operator, jobs) = started(8).await;
    jobs.create(
        &PostParams::default(),
        &job("arr", "  arrayProperties: {size: 20}\n"),
    )
    .await
    .expect("array");
    jobs.create(
        &PostParams::default(),
        &job("after", "  dependsOn: [{jobName: arr}]\n"),
    )
    .await
    .expect("dependent");
    let arr = finished(&env, "arr").await;
    let st = arr.status.as_ref().expect("status");
    assert_eq!(st.status, Some(JobStatus::Succeeded), "{st:#?}");
    let array = st.array_properties.as_ref().expect("array status");
    assert_eq!(array.succeeded_indices, "0-19");
    assert_eq!(array.progress.as_deref(), Some("20/20"));
    assert_eq!(array.status_summary.get(JobStatus::Succeeded), 20);
    let after = finished(&env, "after").await;
    assert_eq!(status(&after), Some(JobStatus::Succeeded));
    let after_start = after
        .status
        .as_ref()
        .and_then(|s| s.started_at.clone())
        .expect("started");
    let arr_stop = st.stopped_at.clone().expect("stopped");
    assert!(
        after_start.0 >= arr_stop.0,
        "the dependent started after the array ended"
    );
    stop(env, operator).await;
}

#[tokio::test]
async fn finished_jobs_lose_their_pods_after_the_retention_and_keep_their_record() {
    let env = Env::start().await;
    let operator = env.start_operator_with(barge_operator::run::OperatorArgs {
        finished_pod_retention_seconds: 1,
        ..env.operator_args()
    });
    setup(&env, 8).await;
    let jobs = env.namespaced::<Job>("default");
    for (name, extra) in [
        ("one", ""),
        ("bad", "  tags: {sim.barge.dev/exit-code: \"3\"}\n"),
        ("arr", "  arrayProperties: {size: 3}\n"),
    ] {
        jobs.create(&PostParams::default(), &job(name, extra))
            .await
            .expect("job");
    }
    for name in ["one", "bad", "arr"] {
        finished(&env, name).await;
    }
    for name in ["one", "bad", "arr"] {
        support::eventually(&format!("the pods of {name} to go"), || async {
            pods_of(&env, name).await.is_empty().then_some(())
        })
        .await;
    }
    // The record stays: attempts, exit codes, the array's results.
    let one = jobs.get("one").await.expect("one");
    let st = one.status.as_ref().expect("status");
    assert_eq!(st.status, Some(JobStatus::Succeeded));
    assert_eq!(st.attempts.len(), 1);
    assert_eq!(st.attempts[0].container.exit_code, Some(0));
    let bad = jobs.get("bad").await.expect("bad");
    let st = bad.status.as_ref().expect("status");
    assert_eq!(st.status, Some(JobStatus::Failed));
    assert_eq!(st.attempts[0].container.exit_code, Some(3));
    let arr = jobs.get("arr").await.expect("arr");
    let array = arr
        .status
        .as_ref()
        .and_then(|s| s.array_properties.as_ref())
        .expect("array status");
    assert_eq!(array.succeeded_indices, "0-2");
    // Dependencies on jobs whose pods are gone resolve from the record.
    for (name, extra) in [
        ("after-one", "  dependsOn: [{jobName: one}]\n"),
        ("after-bad", "  dependsOn: [{jobName: bad}]\n"),
        (
            "linked",
            "  arrayProperties: {size: 3}\n  dependsOn: [{jobName: arr, type: N_TO_N}]\n",
        ),
    ] {
        jobs.create(&PostParams::default(), &job(name, extra))
            .await
            .expect("dependent");
    }
    assert_eq!(
        status(&finished(&env, "after-one").await),
        Some(JobStatus::Succeeded)
    );
    let after_bad = finished(&env, "after-bad").await;
    assert_eq!(status(&after_bad), Some(JobStatus::Failed));
    assert_eq!(
        after_bad
            .status
            .as_ref()
            .and_then(|s| s.status_reason.as_deref()),
        Some("Dependent Job failed")
    );
    assert_eq!(
        status(&finished(&env, "linked").await),
        Some(JobStatus::Succeeded)
    );
    stop(env, operator).await;
}

#[tokio::test]
async fn a_failed_dependency_fails_the_dependent() {
    let (env, operator, jobs) = started(4).await;
    jobs.create(
        &PostParams::default(),
        &job("bad", "  tags: {sim.barge.dev/exit-code: \"3\"}\n"),
    )
    .await
    .expect("job");
    jobs.create(
        &PostParams::default(),
        &job("child", "  dependsOn: [{jobName: bad}]\n"),
    )
    .await
    .expect("job");
    let child = finished(&env, "child").await;
    let st = child.status.expect("status");
    assert_eq!(st.status, Some(JobStatus::Failed));
    assert_eq!(st.status_reason.as_deref(), Some("Dependent Job failed"));
    assert!(pods_of(&env, "child").await.is_empty());
    stop(env, operator).await;
}

#[tokio::test]
async fn a_job_that_can_never_run_says_why() {
    let (env, operator, jobs) = started(4).await;
    jobs.create(
        &PostParams::default(),
        &job(
            "huge",
            "  containerOverrides: {resourceRequirements: [{type: VCPU, value: \"64\"}]}\n",
        ),
    )
    .await
    .expect("job");
    let blocked = wait_for(&jobs, "huge", "explained", |j| {
        j.status
            .as_ref()
            .and_then(|s| s.status_reason.as_deref())
            .is_some_and(|r| r.starts_with("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"))
    })
    .await;
    let st = blocked.status.expect("status");
    assert_eq!(st.status, Some(JobStatus::Runnable));
    let schedulable = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Schedulable")
        .expect("Schedulable condition");
    assert_eq!(schedulable.status, "False");
    assert!(
        schedulable.message.contains("vCPU") || schedulable.message.contains("instance type"),
        "the message says why: {}",
        schedulable.message
    );
    assert!(pods_of(&env, "huge").await.is_empty());
    stop(env, operator).await;
}

#[tokio::test]
async fn terminate_cancels_a_queued_job_and_stops_a_running_one() {
    let (env, operator, jobs) = started(4).await;
    jobs.create(
        &PostParams::default(),
        &job("waiting", "  dependsOn: [{jobName: never-submitted}]\n"),
    )
    .await
    .expect("job");
    jobs.create(
        &PostParams::default(),
        &job(
            "long",
            "  tags: {sim.barge.dev/duration-seconds: \"600\"}\n",
        ),
    )
    .await
    .expect("job");
    wait_for(&jobs, "waiting", "PENDING", |j| {
        status(j) == Some(JobStatus::Pending)
    })
    .await;
    wait_for(&jobs, "long", "RUNNING", |j| {
        status(j) == Some(JobStatus::Running)
    })
    .await;
    let patch = serde_json::json!({"spec": {"terminate": {"reason": "no longer needed"}}});
    for name in ["waiting", "long"] {
        jobs.patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("terminate");
    }
    for name in ["waiting", "long"] {
        let done = finished(&env, name).await;
        let st = done.status.expect("status");
        assert_eq!(st.status, Some(JobStatus::Failed), "{name}: {st:#?}");
        assert_eq!(
            st.status_reason.as_deref(),
            Some("no longer needed"),
            "{name}"
        );
    }
    let long = jobs.get("long").await.expect("long");
    assert_eq!(
        long.status.expect("status").attempts.len(),
        1,
        "the terminated attempt is recorded, not retried"
    );
    stop(env, operator).await;
}

#[tokio::test]
async fn state_changes_are_events_and_ttl_deletes_a_finished_job() {
    // `--job-events all`: an Event per state change, as AWS EventBridge sends them.
    let env = Env::start().await;
    let operator = env.start_operator_with(barge_operator::run::OperatorArgs {
        job_events: barge_operator::events::JobEvents::All,
        ..env.operator_args()
    });
    setup(&env, 4).await;
    let jobs = env.namespaced::<Job>("default");
    jobs.create(
        &PostParams::default(),
        &job("short-lived", "  ttlSecondsAfterFinished: 1\n"),
    )
    .await
    .expect("job");
    support::wait_gone(&jobs, "short-lived").await;
    let events = env
        .namespaced::<k8s_openapi::api::events::v1::Event>("default")
        .list(&ListParams::default())
        .await
        .expect("events");
    let reasons: BTreeSet<String> = events
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("short-lived"))
        .filter_map(|e| e.reason.clone())
        .collect();
    for expected in ["Runnable", "Starting", "Succeeded"] {
        assert!(
            reasons.contains(expected),
            "event {expected} in {reasons:?}"
        );
    }
    stop(env, operator).await;
}

#[tokio::test]
async fn an_n_to_n_dependency_on_an_array_of_another_size_fails_with_a_clear_reason() {
    let (env, operator, jobs) = started(4).await;
    jobs.create(
        &PostParams::default(),
        &job("four", "  arrayProperties: {size: 4}\n"),
    )
    .await
    .expect("job");
    jobs.create(
        &PostParams::default(),
        &job(
            "three",
            "  arrayProperties: {size: 3}\n  dependsOn: [{jobName: four, type: N_TO_N}]\n",
        ),
    )
    .await
    .expect("job");
    let three = finished(&env, "three").await;
    let st = three.status.expect("status");
    assert_eq!(st.status, Some(JobStatus::Failed));
    let reason = st.status_reason.unwrap_or_default();
    assert!(
        reason.contains("N_TO_N") && reason.contains('4') && reason.contains('3'),
        "the reason names the sizes: {reason}"
    );
    assert!(pods_of(&env, "three").await.is_empty());
    stop(env, operator).await;
}

#[tokio::test]
async fn a_job_runs_the_definition_revision_it_resolved_even_after_an_edit() {
    let (env, operator, jobs) = started(4).await;
    jobs.create(
        &PostParams::default(),
        &job("pinned", "  dependsOn: [{jobName: gate}]\n"),
    )
    .await
    .expect("job");
    wait_for(&jobs, "pinned", "PENDING with revision 1 pinned", |j| {
        j.status
            .as_ref()
            .and_then(|s| s.resolved_job_definition.as_ref())
            .is_some_and(|r| r.name == "work" && r.revision == 1)
            && status(j) == Some(JobStatus::Pending)
    })
    .await;
    // Revision 2 fails with exit code 3 (EXIT): a job on it would fail.
    let definitions = env.namespaced::<JobDefinition>("default");
    let edit = serde_json::json!({"spec": {"tags": {"sim.barge.dev/exit-code": "3"}}});
    definitions
        .patch(
            "work",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&edit),
        )
        .await
        .expect("edit");
    wait_for(&definitions, "work", "revision 2", |d| {
        d.status.as_ref().and_then(|s| s.revision) == Some(2)
    })
    .await;
    jobs.create(&PostParams::default(), &job("gate", ""))
        .await
        .expect("gate");
    let gate = finished(&env, "gate").await;
    assert_eq!(
        status(&gate),
        Some(JobStatus::Failed),
        "the latest revision exits 3"
    );
    // `pinned` waits for `gate`, which failed: it fails as a dependent, never having run.
    let pinned = finished(&env, "pinned").await;
    assert_eq!(
        pinned
            .status
            .as_ref()
            .and_then(|s| s.status_reason.as_deref()),
        Some("Dependent Job failed")
    );
    assert_eq!(
        pinned
            .status
            .as_ref()
            .and_then(|s| s.resolved_job_definition.as_ref())
            .map(|r| r.revision),
        Some(1),
        "the pin survives the edit"
    );
    let explicit: Job = from_yaml(
        "apiVersion: batch.barge.dev/v1alpha1\nkind: Job\nmetadata: {name: old-rev, namespace: default}\nspec: {jobQueue: q, jobDefinition: \"work:1\"}\n",
    );
    jobs.create(&PostParams::default(), &explicit)
        .await
        .expect("work:1");
    let old = finished(&env, "old-rev").await;
    assert_eq!(
        status(&old),
        Some(JobStatus::Succeeded),
        "work:1 still exits 0"
    );
    let pods = pods_of(&env, "old-rev").await;
    assert_eq!(
        pods[0]
            .labels()
            .get(barge_crds::consts::LABEL_JOB_DEFINITION_REVISION)
            .map(String::as_str),
        Some("1")
    );
    stop(env, operator).await;
}

#[tokio::test]
async fn a_queue_takes_jobs_only_from_the_namespaces_its_selector_picks() {
    let (env, operator, _) = started(4).await;
    let guarded: JobQueue = from_yaml(
        "apiVersion: batch.barge.dev/v1alpha1\nkind: JobQueue\nmetadata: {name: guarded}\nspec:\n  priority: 1\n  computeEnvironmentOrder: [{order: 1, computeEnvironment: ce}]\n  namespaceSelector: {matchLabels: {team: a}}\n",
    );
    env.api::<JobQueue>()
        .create(&PostParams::default(), &guarded)
        .await
        .expect("queue");
    let team_a: k8s_openapi::api::core::v1::Namespace =
        from_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a, labels: {team: a}}\n");
    env.api::<k8s_openapi::api::core::v1::Namespace>()
        .create(&PostParams::default(), &team_a)
        .await
        .expect("namespace");
    let jd: JobDefinition = from_yaml(
        "apiVersion: batch.barge.dev/v1alpha1\nkind: JobDefinition\nmetadata: {name: work, namespace: team-a}\nspec: {type: container, containerProperties: {image: busybox, command: [\"true\"]}}\n",
    );
    env.namespaced::<JobDefinition>("team-a")
        .create(&PostParams::default(), &jd)
        .await
        .expect("jd");
    let submit = |ns: &str| -> Job {
        from_yaml(&format!(
            "apiVersion: batch.barge.dev/v1alpha1\nkind: Job\nmetadata: {{name: guarded-job, namespace: {ns}}}\nspec: {{jobQueue: guarded, jobDefinition: work}}\n"
        ))
    };
    env.namespaced::<Job>("default")
        .create(&PostParams::default(), &submit("default"))
        .await
        .expect("job in default");
    env.namespaced::<Job>("team-a")
        .create(&PostParams::default(), &submit("team-a"))
        .await
        .expect("job in team-a");
    let refused = finished(&env, "guarded-job").await;
    let st = refused.status.expect("status");
    assert_eq!(st.status, Some(JobStatus::Failed));
    assert!(
        st.status_reason
            .as_deref()
            .is_some_and(|r| r.contains("does not accept jobs from namespace \"default\"")),
        "{st:#?}"
    );
    let accepted = wait_for(
        &env.namespaced::<Job>("team-a"),
        "guarded-job",
        "finished",
        |j| status(j).is_some_and(JobStatus::is_finished),
    )
    .await;
    assert_eq!(status(&accepted), Some(JobStatus::Succeeded));
    stop(env, operator).await;
}

/// kubectl against the in-process cluster (asynchronously: the API server runs on this
/// test's runtime); its stdout.
async fn kubectl_get(env: &Env, args: &[&str]) -> String {
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(env.cluster.kubeconfig_path())
        .args(args)
        .output()
        .await
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn kubectl_get_bjob_shows_queue_status_attempts_and_array_progress() {
    if !support::tool_available("kubectl", &["version", "--client"]) {
        return;
    }
    let (env, operator, jobs) = started(4).await;
    jobs.create(
        &PostParams::default(),
        &job("sweep", "  arrayProperties: {size: 6}\n"),
    )
    .await
    .expect("array");
    jobs.create(&PostParams::default(), &job("single", ""))
        .await
        .expect("single");
    finished(&env, "sweep").await;
    finished(&env, "single").await;
    let table = kubectl_get(&env, &["get", "bjob", "-n", "default"]).await;
    let header = table.lines().next().expect("header");
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "QUEUE", "STATUS", "ATTEMPTS", "PROGRESS", "NODES", "AGE"],
        "{table}"
    );
    // Cells by the header's column positions (kubectl leaves an empty cell blank).
    let starts: Vec<usize> = ["QUEUE", "STATUS", "ATTEMPTS", "PROGRESS", "NODES", "AGE"]
        .iter()
        .map(|c| header.find(c).expect("column"))
        .collect();
    let row = |name: &str| -> Vec<String> {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {table}"));
        starts
            .windows(2)
            .map(|w| line.get(w[0]..w[1]).unwrap_or("").trim().to_string())
            .collect()
    };
    assert_eq!(row("sweep"), ["q", "SUCCEEDED", "", "6/6", ""], "{table}");
    assert_eq!(row("single"), ["q", "SUCCEEDED", "1", "", ""], "{table}");
    let everything = kubectl_get(&env, &["get", "barge", "-A"]).await;
    for kind in ["computeenvironment", "jobqueue", "jobdefinition", "job"] {
        assert!(
            everything.contains(&format!("{kind}.batch.barge.dev/")),
            "`kubectl get barge -A` lists {kind}: {everything}"
        );
    }
    stop(env, operator).await;
}

#[tokio::test]
async fn a_multi_node_job_places_its_gang_main_node_first() {
    use barge_crds::consts::ANNOTATION_GANG_NODES;
    use barge_operator::events::{REASON_GANG_PLACED, REASON_NODES_STARTED};
    use k8s_openapi::api::core::v1::Service;

    // Two m5.xlarge nodes: one for each node of the gang.
    let (env, operator, jobs) = started(8).await;
    let jd: JobDefinition = from_yaml(
        r#"
apiVersion: batch.barge.dev/v1alpha1
kind: JobDefinition
metadata: {name: mnp, namespace: default}
spec:
  type: multinode
  propagateTags: true
  nodeProperties:
    numNodes: 2
    mainNode: 0
    nodeRangeProperties:
      - targetNodes: "0:"
        container:
          image: busybox
          command: [sh, -c, "exit 0"]
          resourceRequirements: [{type: VCPU, value: "1"}, {type: MEMORY, value: "512"}]
"#,
    );
    env.namespaced::<JobDefinition>("default")
        .create(&PostParams::default(), &jd)
        .await
        .expect("jd");
    let gang: Job = from_yaml(
        "apiVersion: batch.barge.dev/v1alpha1\nkind: Job\nmetadata: {name: gang, namespace: default}\nspec:\n  jobQueue: q\n  jobDefinition: mnp\n  tags: {sim.barge.dev/duration-seconds: \"3\"}\n",
    );
    jobs.create(&PostParams::default(), &gang)
        .await
        .expect("job");
    let done = finished(&env, "gang").await;
    let st = done.status.as_ref().expect("status");
    assert_eq!(st.status, Some(JobStatus::Succeeded), "{st:#?}");
    assert_eq!(st.attempts.len(), 1, "{st:#?}");

    // One pod per node, main first; the child on the node its main pod reserved for it, with
    // the main pod's IP.
    let pods = pods_of(&env, "gang").await;
    let by_name = |name: &str| {
        pods.iter()
            .find(|p| p.name_any() == name)
            .unwrap_or_else(|| {
                panic!(
                    "pod {name} in {:?}",
                    pods.iter().map(|p| p.name_any()).collect::<Vec<_>>()
                )
            })
    };
    assert_eq!(pods.len(), 2);
    let main = by_name("gang-1-node-0");
    let child = by_name("gang-1-node-1");
    let node_of = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .expect("bound")
    };
    let reserved: Vec<&str> = main.annotations()[ANNOTATION_GANG_NODES]
        .split(',')
        .collect();
    assert_eq!(reserved, [node_of(main), node_of(child)]);
    assert_ne!(
        node_of(main),
        node_of(child),
        "one Kubernetes node per node"
    );
    let main_ip = main
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("main pod IP");
    let child_env = &child.spec.as_ref().expect("spec").containers[0].env;
    let main_address = child_env
        .iter()
        .flatten()
        .find(|e| e.name == "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS")
        .and_then(|e| e.value.clone());
    assert_eq!(main_address, Some(main_ip));

    // The headless Service that names the nodes, and the gang's Events.
    let service = barge_operator::pods::service_name("gang");
    env.namespaced::<Service>("default")
        .get(&service)
        .await
        .expect("the job's Service");
    let nodes = st.node_properties.as_ref().expect("nodeProperties");
    assert_eq!(nodes.service_name.as_deref(), Some(service.as_str()));
    let events = env
        .namespaced::<k8s_openapi::api::events::v1::Event>("default")
        .list(&ListParams::default())
        .await
        .expect("events");
    let notes: Vec<(String, String)> = events
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("gang"))
        .filter_map(|e| Some((e.reason.clone()?, e.note.clone().unwrap_or_default())))
        .collect();
    for (reason, note) in [
        (
            REASON_GANG_PLACED,
            "gang of 2 nodes placed on compute environment ce",
        ),
        (REASON_NODES_STARTED, "started 1 other node of attempt 1"),
    ] {
        assert!(
            notes
                .iter()
                .any(|(r, n)| r == reason && n.starts_with(note)),
            "event {reason} {note:?} in {notes:#?}"
        );
    }
    stop(env, operator).await;
}
