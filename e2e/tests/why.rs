//! End-to-end: `barge why <job>` (issue 12) through the real binary against barge-sim, with the
//! scripted runtime (jobs run as long as their tags say). It names the right blocker in four
//! set-ups — a dependency still running, a share over its target in a fair-share queue, no node
//! with enough free memory now in a pool that may still grow, a compute environment at
//! `maxvCpus` — and it writes nothing: the operator is stopped before each `barge why`, and the
//! simulated API server's write counters (but the kubelet's node heartbeats) do not move.
//! One scenario runs it as `kubectl barge why` (the binary linked as `kubectl-barge` on the
//! PATH); it fails without kubectl under `BARGE_REQUIRE_TOOLS=1` (as in CI) and is skipped
//! loudly otherwise.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use barge_crds::job::JobStatus;
use barge_sim::apiserver::faults::WRITE_VERBS;
use barge_sim::StatsSnapshot;

use support::{
    compute_environment, job, job_definition, job_queue, kubectl_available, kubectl_plugin_dir,
    scripted_tags, status_of, E2e, Options,
};

/// Runs long enough never to finish during a test.
const FOREVER: &str = "3600";

/// A scripted definition asking for `vcpus` vCPUs and `memory` MiB that runs [`FOREVER`].
fn long_definition(name: &str, vcpus: &str, memory: &str) -> String {
    job_definition(name, "true", &[], vcpus, &scripted_tags(FOREVER, 0)).replace(
        "{type: MEMORY, value: \"64\"}",
        &format!("{{type: MEMORY, value: \"{memory}\"}}"),
    )
}

/// Waits until `job` is in `state` exactly.
async fn wait_state(env: &E2e, job: &str, state: JobStatus) {
    env.wait_for(&env.jobs(), job, state.as_str(), |j| {
        status_of(j) == Some(state)
    })
    .await;
}

/// Writes recorded by the simulated API server, by "verb resource", leaving out the simulated
/// kubelet's heartbeats (Leases, node status), which go on while `barge why` runs.
fn writes(stats: &StatsSnapshot) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for verb in WRITE_VERBS {
        for (resource, count) in stats.requests.get(*verb).into_iter().flatten() {
            if resource.starts_with("leases") || resource.starts_with("nodes") {
                continue;
            }
            out.insert(format!("{verb} {resource}"), *count);
        }
    }
    out
}

/// How `barge why` is run.
enum Form {
    /// `barge why …`
    Barge,
    /// `kubectl barge why …`, with `kubectl-barge` linked to the binary in `dir` on the PATH.
    Kubectl { dir: tempfile::TempDir },
}

/// Stops the operator (so that only `barge why` could write), runs `barge why <job> [extra]`
/// and checks that nothing was written; returns its standard output.
async fn why(env: &mut E2e, form: &Form, job: &str, extra: &[&str]) -> String {
    env.kill_operator();
    // Whatever the operator had in flight has landed before the counters are read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = writes(&env.cluster().stats());
    let kubeconfig = env.kubeconfig().display().to_string();
    let mut args: Vec<&str> = vec!["why", job, "-n", &env.ns, "--kubeconfig", &kubeconfig];
    args.extend_from_slice(extra);
    let mut command = match form {
        Form::Barge => tokio::process::Command::new(env!("CARGO_BIN_EXE_barge")),
        Form::Kubectl { dir } => {
            let mut c = tokio::process::Command::new("kubectl");
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut dirs = vec![dir.path().to_path_buf()];
            dirs.extend(std::env::split_paths(&path));
            c.env("PATH", std::env::join_paths(dirs).expect("PATH"));
            c.arg("barge");
            c
        }
    };
    // The simulated API server runs on this test's runtime: wait for the child asynchronously.
    let out = command
        .args(&args)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .await
        .expect("run barge why");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("$ barge {}\n{stdout}", args.join(" "));
    assert!(
        out.status.success(),
        "barge why {job} failed: {}\nstdout:\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = writes(&env.cluster().stats());
    assert_eq!(before, after, "barge why wrote to the cluster");
    stdout
}

/// `kubectl-barge` linked to the binary in a fresh directory, or None (skipped loudly, or a
/// failure under `BARGE_REQUIRE_TOOLS=1`) without kubectl.
fn kubectl_plugin() -> Option<Form> {
    if !kubectl_available() {
        return None;
    }
    Some(Form::Kubectl {
        dir: kubectl_plugin_dir(),
    })
}

#[tokio::test]
async fn a_pending_job_names_the_dependency_it_waits_for_and_its_state() {
    let mut env = E2e::start_with("why-dep", Options::scripted()).await;
    env.apply(&format!(
        "{}{}{}",
        compute_environment("ce", 4),
        job_queue("q", 10, &["ce"]),
        long_definition("long", "1", "64"),
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", 2).await;
    env.apply(&job("first", "q", "long", "")).await;
    env.apply(&job("second", "q", "long", "dependsOn: [{jobName: first}]"))
        .await;
    wait_state(&env, "first", JobStatus::Running).await;
    wait_state(&env, "second", JobStatus::Pending).await;

    let text = why(&mut env, &Form::Barge, "second", &[]).await;
    assert!(text.contains(": PENDING"), "{text}");
    assert!(
        text.contains(
            "depends on first (whole job): waits for job \"first\" to succeed; it is RUNNING"
        ),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&why(&mut env, &Form::Barge, "second", &["-o", "json"]).await)
            .expect("JSON");
    assert_eq!(json["state"], "PENDING");
    assert_eq!(json["dependencies"][0]["jobName"], "first");
    assert_eq!(json["dependencies"][0]["state"], "RUNNING");
    assert_eq!(json["scheduling"], serde_json::json!([]));
    // The running job waits for nothing and says where it runs.
    let text = why(&mut env, &Form::Barge, "first", &[]).await;
    assert!(text.contains("it waits for nothing, it runs on"), "{text}");
    env.finish().await;
}

#[tokio::test]
async fn a_share_over_its_target_is_named_with_its_usage_and_target() {
    let mut env = E2e::start_with("why-share", Options::scripted()).await;
    // Share b weighs 0.25: against a (1.0) its target is 80 %.
    let queue = format!(
        "{}  schedulingPolicyName: \"${{NS}}-fair\"\n",
        job_queue("q", 10, &["ce"])
    );
    env.apply(&format!(
        "{}{}{queue}{}",
        compute_environment("ce", 4),
        r#"---
apiVersion: batch.barge.dev/v1alpha1
kind: SchedulingPolicy
metadata: {name: "${NS}-fair"}
spec:
  fairsharePolicy:
    shareDecaySeconds: 0
    computeReservation: 0
    shareDistribution: [{shareIdentifier: "b", weightFactor: 0.25}]
"#,
        long_definition("long", "1", "64"),
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", 2).await;
    // Share a takes the whole environment.
    for i in 0..4 {
        env.apply(&job(&format!("a-{i}"), "q", "long", "shareIdentifier: a"))
            .await;
    }
    for i in 0..4 {
        wait_state(&env, &format!("a-{i}"), JobStatus::Running).await;
    }
    env.apply(&job("a-4", "q", "long", "shareIdentifier: a"))
        .await;
    env.apply(&job("b-0", "q", "long", "shareIdentifier: b"))
        .await;
    wait_state(&env, "a-4", JobStatus::Runnable).await;
    wait_state(&env, "b-0", JobStatus::Runnable).await;

    let text = why(&mut env, &Form::Barge, "a-4", &[]).await;
    assert!(text.contains(": RUNNABLE"), "{text}");
    // a runs all 4 vCPUs against a target of 1/(1 + 4) = 20 %; b (weight 0.25) goes first.
    assert!(
        text.contains(
            "share \"a\": weight 1, running 4 vCPUs (100% of the queue's running vCPUs), usage 0 vCPU-seconds, target 20% — over its target"
        ),
        "{text}"
    );
    assert!(
        text.contains("shares with a lower load go first: b"),
        "{text}"
    );
    assert!(
        text.contains("position: 1 unit of 1 other job ahead"),
        "{text}"
    );
    assert!(
        text.contains("blocker: share \"a\" is over its target"),
        "{text}"
    );
    let text = why(&mut env, &Form::Barge, "b-0", &[]).await;
    assert!(
        text.contains("share \"b\": weight 0.25, running 0 vCPUs (0% of the queue's running vCPUs), usage 0 vCPU-seconds, target 80%\n"),
        "{text}"
    );
    assert!(text.contains("position: first in line"), "{text}");
    assert!(text.contains("not enough free cpu on 2 nodes"), "{text}");
    env.finish().await;
}

#[tokio::test]
async fn no_node_with_enough_free_memory_now_in_a_pool_that_may_grow() {
    // Nodes boot slowly: the node the pool adds for the waiting job is still starting when
    // `barge why` looks.
    let mut env = E2e::start_with(
        "why-mem",
        Options::scripted().with_boot_delay(Duration::from_secs(20)),
    )
    .await;
    env.apply(&format!(
        "{}{}{}{}",
        r#"---
apiVersion: batch.barge.dev/v1alpha1
kind: ComputeEnvironment
metadata: {name: "${NS}-ce"}
spec:
  type: MANAGED
  state: ENABLED
  computeResources:
    type: EC2
    minvCpus: 2
    maxvCpus: 8
    instanceTypes: [c5.large]
    provider: {simulated: {}}
"#,
        job_queue("q", 10, &["ce"]),
        long_definition("big", "1", "3072"),
        long_definition("bigger", "1", "2048"),
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", 1).await;
    env.apply(&job("first", "q", "big", "")).await;
    wait_state(&env, "first", JobStatus::Running).await;
    env.apply(&job("second", "q", "bigger", "")).await;
    wait_state(&env, "second", JobStatus::Runnable).await;
    // The pool adds a node for it (booting).
    let ce = env.render("${NS}-ce");
    env.wait_until("a second node for the waiting job", || {
        let nodes = env.nodes();
        let ce = ce.clone();
        async move {
            let n = support::nodes_of(&nodes, &ce).await;
            (n.len() == 2 && n.iter().any(|n| !support::node_is_ready(n))).then_some(())
        }
    })
    .await;

    let text = why(&mut env, &Form::Barge, "second", &[]).await;
    let line = text
        .lines()
        .find(|l| l.contains(&format!("compute environment {ce}:")))
        .unwrap_or_else(|| panic!("a line for {ce}:\n{text}"));
    assert!(line.contains("not enough free memory on 1 node"), "{text}");
    assert!(!line.contains("not enough free cpu"), "{text}");
    assert!(line.contains("1 node starting"), "{text}");
    assert!(
        line.contains("below maxvCpus (4 of 8 vCPUs allocated)"),
        "{text}"
    );
    let yaml: serde_json::Value =
        serde_yaml::from_str(&why(&mut env, &Form::Barge, "second", &["-o", "yaml"]).await)
            .expect("YAML");
    let nodes = &yaml["scheduling"][0]["environments"][0]["blocker"];
    assert_eq!(nodes["kind"], "nodes");
    assert_eq!(nodes["shortOfMemory"], 1);
    assert_eq!(nodes["mostFree"]["memoryMib"], 1024);
    env.finish().await;
}

#[tokio::test]
async fn a_compute_environment_at_max_vcpus_through_kubectl_barge() {
    let mut env = E2e::start_with("why-max", Options::scripted()).await;
    env.apply(&format!(
        "{}{}{}{}",
        compute_environment("ce", 2),
        job_queue("q", 10, &["ce"]),
        long_definition("two", "2", "64"),
        long_definition("one", "1", "64"),
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", 1).await;
    env.apply(&job("first", "q", "two", "")).await;
    wait_state(&env, "first", JobStatus::Running).await;
    env.apply(&job("second", "q", "one", "")).await;
    wait_state(&env, "second", JobStatus::Runnable).await;

    let ce = env.render("${NS}-ce");
    let expected = format!(
        "compute environment {ce}: 1 node: not enough free cpu on 1 node (most free: cpu=0m memory=4032Mi); at maxvCpus: 2 of 2 vCPUs allocated"
    );
    let text = why(&mut env, &Form::Barge, "second", &[]).await;
    assert!(
        text.contains(&expected),
        "expected {expected:?} in:\n{text}"
    );
    assert!(text.contains("position: first in line"), "{text}");
    assert!(
        text.contains(&format!("blocker: no compute environment of its queue has room for it now ({ce}: short of cpu, at maxvCpus)")),
        "{text}"
    );
    if let Some(plugin) = kubectl_plugin() {
        let text = why(&mut env, &plugin, "second", &[]).await;
        assert!(
            text.contains(&expected),
            "kubectl barge why: expected {expected:?} in:\n{text}"
        );
    }
    env.finish().await;
}
