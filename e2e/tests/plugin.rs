//! End-to-end: `kubectl barge …` — the real kubectl running the `barge` binary as its plugin
//! (`kubectl-barge`, a link to it first on the PATH) against barge-sim with the operator running
//! (process runtime: the jobs' commands really run, so their logs are real).
//!
//! The kubeconfig the plugin gets has two contexts on the same cluster, in two namespaces, and
//! no command names a namespace: the current context's namespace is used, and `--context`
//! switches it, as kubectl does. One scenario covers the whole command set: `submit` from a
//! definition with overrides (named, generated, array, failing with a retry) and from AWS
//! SubmitJob JSON (the AWS User Guide's example, retargeted at this test's queue and
//! definition, on stdin; and the example as it is, which is refused with exit code 1 and no
//! job), `list`/`get` tables with array progress and attempts, `-o json|yaml|name` parsed,
//! kubectl's NotFound error, `describe` with both attempts and the job's Events, `logs` of an
//! attempt, of an array child and of a multi-node job's nodes, `logs -f` until `terminate`
//! stops the job, `cancel` (refused for a running job), `queues` counts against the jobs the
//! API server holds, and `import aws` through the plugin.
//!
//! Without kubectl the test is skipped loudly; under `BARGE_REQUIRE_TOOLS=1` (CI) it fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use barge_crds::job::JobStatus;
use barge_crds::{Job, JobDefinition};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use tokio::io::AsyncWriteExt;

use support::{
    compute_environment, job_definition, job_queue, kubectl_available, kubectl_plugin_dir,
    status_of, status_reason, E2e,
};

/// Prints who greets, which attempt and which array child runs, and exits `EXIT_CODE`.
const HELLO: &str = r#"echo "hello ${GREETING:-nobody} attempt ${AWS_BATCH_JOB_ATTEMPT} index ${AWS_BATCH_JOB_ARRAY_INDEX:-none}"
exit ${EXIT_CODE:-0}"#;

/// A two-node job definition (main node 1): each node prints its index; the main node ends
/// when the test creates `pair-release` in its files directory — after it has read node 0's
/// log: once the main node ends the job, Barge stops the other nodes, and a node whose exit
/// it has not seen yet (API latency) loses its pod, and with it its log.
const PAIR: &str = r#"
apiVersion: batch.barge.dev/v1alpha1
kind: JobDefinition
metadata: {name: pair}
spec:
  type: multinode
  nodeProperties:
    numNodes: 2
    mainNode: 1
    nodeRangeProperties:
      - targetNodes: "0:"
        container:
          image: busybox:1.36
          command:
            - sh
            - -c
            - |
              echo "node $AWS_BATCH_JOB_NODE_INDEX of $AWS_BATCH_JOB_NUM_NODES"
              if [ "$AWS_BATCH_JOB_NODE_INDEX" = 0 ]; then exit 0; fi
              while [ ! -e ${DIR}/pair-release ]; do sleep 0.05; done
          resourceRequirements:
            - {type: VCPU, value: "1"}
            - {type: MEMORY, value: "64"}
"#;

/// `kubectl barge` with `kubectl-barge` linked in a directory first on the PATH and a
/// kubeconfig of two contexts.
struct Plugin {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

/// The contexts of the plugin's kubeconfig.
const MAIN_CONTEXT: &str = "plugin-main";
const OTHER_CONTEXT: &str = "plugin-other";

impl Plugin {
    /// Links the plugin and writes a kubeconfig whose current context [`MAIN_CONTEXT`] is in
    /// `namespace` and whose [`OTHER_CONTEXT`] is in `other` (both on `cluster_kubeconfig`'s
    /// cluster and user).
    fn new(cluster_kubeconfig: &Path, namespace: &str, other: &str) -> Plugin {
        let dir = kubectl_plugin_dir();
        let text = std::fs::read_to_string(cluster_kubeconfig).expect("cluster kubeconfig");
        let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig yaml");
        let current = config["current-context"]
            .as_str()
            .expect("a current context")
            .to_string();
        let base = config["contexts"]
            .as_sequence()
            .and_then(|cs| cs.iter().find(|c| c["name"].as_str() == Some(&current)))
            .map(|c| c["context"].clone())
            .expect("the current context");
        let context = |name: &str, ns: &str| {
            let mut c = base.clone();
            c["namespace"] = ns.into();
            serde_yaml::to_value(serde_json::json!({"name": name}))
                .map(|mut v| {
                    v["context"] = c;
                    v
                })
                .expect("context")
        };
        config["contexts"] = serde_yaml::Value::Sequence(vec![
            context(MAIN_CONTEXT, namespace),
            context(OTHER_CONTEXT, other),
        ]);
        config["current-context"] = MAIN_CONTEXT.into();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, serde_yaml::to_string(&config).expect("yaml"))
            .expect("write kubeconfig");
        Plugin { dir, kubeconfig }
    }

    /// `kubectl barge <args>`, with the plugin first on the PATH and the two-context kubeconfig.
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.dir.path().to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        let mut command = tokio::process::Command::new("kubectl");
        command
            .arg("barge")
            .args(args)
            .env("PATH", std::env::join_paths(dirs).expect("PATH"))
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs `kubectl barge <args>` (stdin from `input`), returning its output.
    async fn run_with(&self, args: &[&str], input: Option<&str>) -> Output {
        // The simulated API server runs on this test's runtime: wait for the child asynchronously.
        let mut child = self.command(args).spawn().expect("run kubectl barge");
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(text) = input {
            stdin.write_all(text.as_bytes()).await.expect("write stdin");
        }
        drop(stdin);
        let out = child
            .wait_with_output()
            .await
            .expect("kubectl barge output");
        eprintln!(
            "$ kubectl barge {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs `kubectl barge submit --job-definition <definition> --job-queue <queue> <rest>`,
    /// which must succeed; returns its stdout.
    async fn submit(&self, definition: &str, queue: &str, rest: &[&str]) -> String {
        let mut args = vec![
            "submit",
            "--job-definition",
            definition,
            "--job-queue",
            queue,
        ];
        args.extend_from_slice(rest);
        self.ok(&args).await
    }

    /// Runs `kubectl barge <args>`, which must succeed; returns its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None).await
    }

    async fn ok_with(&self, args: &[&str], input: Option<&str>) -> String {
        let out = self.run_with(args, input).await;
        assert!(
            out.status.success(),
            "kubectl barge {} failed ({:?}): {}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs `kubectl barge logs …` until it prints `expected` (the simulated kubelet's log of
    /// a finished pod may lag its end); fails after [`support::WAIT`] with the last output.
    async fn log_is(&self, args: &[&str], expected: &str) {
        let deadline = tokio::time::Instant::now() + support::WAIT;
        loop {
            let out = self.ok(args).await;
            if out == expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "kubectl barge {} printed {out:?}, expected {expected:?}",
                args.join(" ")
            );
            tokio::time::sleep(support::POLL).await;
        }
    }

    /// Runs `kubectl barge <args>`, which must fail with exit code 1; returns its stderr.
    async fn fails(&self, args: &[&str], input: Option<&str>) -> String {
        let out = self.run_with(args, input).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "kubectl barge {} should fail with exit code 1; stdout: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(out.stdout.is_empty(), "a failure prints nothing on stdout");
        String::from_utf8(out.stderr).expect("utf-8 output")
    }
}

/// The rows of a table whose first cell is `name`, split at whitespace.
fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name))
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
}

/// Creates a namespaced object from YAML in `namespace` (the harness applies to its own only).
async fn create_definition(env: &E2e, namespace: &str, yaml: &str) {
    let definition: JobDefinition =
        serde_yaml::from_str(&env.render(yaml)).expect("a job definition");
    Api::<JobDefinition>::namespaced(env.client.clone(), namespace)
        .create(&PostParams::default(), &definition)
        .await
        .expect("create the definition");
}

#[tokio::test]
async fn kubectl_barge_submits_lists_describes_reads_logs_stops_and_counts() {
    if !kubectl_available() {
        return;
    }
    let env = E2e::start("plugin").await;
    let ns = env.ns.clone();
    let other = format!("{ns}-b");
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}
    }))
    .expect("namespace");
    Api::<Namespace>::all(env.client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create the second namespace");
    env.apply(&format!(
        "{}{}{}{}{}",
        compute_environment("ce", 4),
        job_queue("q", 10, &["ce"]),
        job_definition("hello", HELLO, &[], "1", ""),
        job_definition(
            "notify",
            "echo \"notify $0 about $1\"",
            &["Ref::Recipient", "Ref::SourceBucket"],
            "1",
            ""
        ),
        job_definition("long", "echo started; sleep 600", &[], "1", ""),
    ))
    .await;
    create_definition(&env, &other, &job_definition("hello", HELLO, &[], "1", "")).await;
    env.wait_compute_environment("${NS}-ce", 2).await;
    let plugin = Plugin::new(env.kubeconfig(), &ns, &other);
    let queue = format!("{ns}-q");
    let q = queue.as_str();

    // submit from a definition, with overrides.
    let created = plugin
        .submit("hello", q, &["--name", "single", "--env", "GREETING=world"])
        .await;
    assert_eq!(created, "job.batch.barge.dev/single created\n");
    let array: serde_json::Value = serde_json::from_str(
        &plugin
            .submit(
                "hello:1",
                q,
                &["--name", "frames", "--array-size", "3", "-o", "json"],
            )
            .await,
    )
    .expect("submit -o json parses");
    assert_eq!(array["kind"], "Job");
    assert_eq!(
        array["metadata"]["namespace"],
        ns.as_str(),
        "the context's namespace"
    );
    assert_eq!(array["spec"]["arrayProperties"]["size"], 3);
    plugin
        .submit(
            "hello",
            q,
            &[
                "--name",
                "failing",
                "--env",
                "EXIT_CODE=3",
                "--retry-attempts",
                "2",
            ],
        )
        .await;
    let generated = plugin
        .submit("hello", q, &["--", "sh", "-c", "echo generated"])
        .await;
    let generated = generated
        .strip_prefix("job.batch.barge.dev/")
        .and_then(|s| s.strip_suffix(" created\n"))
        .expect("a created line")
        .to_string();
    assert!(
        generated.starts_with("hello-") && generated.len() == "hello-".len() + 5,
        "{generated}"
    );

    // submit from AWS SubmitJob JSON: the User Guide's example, retargeted at this test's queue
    // and definition; its dependency (`jobId` JobD_job_ID) becomes the job `jobd-job-id`.
    let example = barge_fixtures::read(&barge_fixtures::aws("submitjob-parameters.json"));
    let mut document: serde_json::Value = serde_json::from_str(&example).expect("the example");
    document["jobQueue"] = format!("arn:aws:batch:us-east-1:123456789012:job-queue/{queue}").into();
    document["jobDefinition"] = "notify".into();
    plugin.submit("hello", q, &["--name", "jobd-job-id"]).await;
    let from_aws = plugin
        .ok_with(&["submit", "--from-aws", "-"], Some(&document.to_string()))
        .await;
    assert_eq!(from_aws, "job.batch.barge.dev/jobe created\n");
    // The example as it is names AWS revision 1 of its definition: refused, nothing created.
    let refused = plugin
        .fails(
            &[
                "submit",
                "--from-aws",
                &barge_fixtures::aws("submitjob-parameters.json")
                    .display()
                    .to_string(),
            ],
            None,
        )
        .await;
    assert!(
        refused.contains("jobDefinition"),
        "the refusal names the field: {refused}"
    );

    // Every job ends as expected.
    for (job, expected) in [
        ("single", JobStatus::Succeeded),
        ("frames", JobStatus::Succeeded),
        ("failing", JobStatus::Failed),
        (generated.as_str(), JobStatus::Succeeded),
        ("jobd-job-id", JobStatus::Succeeded),
        ("jobe", JobStatus::Succeeded),
    ] {
        env.wait_job(job, expected).await;
    }

    // list / get: kubectl's table, array progress, attempts.
    let table = plugin.ok(&["list"]).await;
    assert_eq!(
        table
            .lines()
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["NAME", "QUEUE", "STATUS", "ARRAY", "ATTEMPTS", "AGE"])
    );
    assert_eq!(
        &row(&table, "frames")[..5],
        &["frames", q, "SUCCEEDED", "3/3", "-"][..]
    );
    assert_eq!(
        &row(&table, "failing")[..5],
        &["failing", q, "FAILED", "-", "2"][..]
    );
    assert_eq!(
        &row(&table, "single")[..5],
        &["single", q, "SUCCEEDED", "-", "1"][..]
    );
    assert_eq!(table.lines().count(), 7, "a header and six jobs:\n{table}");
    let wide = plugin.ok(&["get", "frames", "-o", "wide"]).await;
    assert!(wide.starts_with("NAME") && wide.contains("RUNNING") && wide.contains("DEFINITION"));
    assert_eq!(row(&wide, "frames")[7], "0", "no child failed:\n{wide}");
    assert_eq!(row(&wide, "frames")[9], "hello:1");
    assert_eq!(
        plugin.ok(&["ls", "--status", "failed", "-o", "name"]).await,
        "job.batch.barge.dev/failing\n"
    );
    let listed: serde_yaml::Value = serde_yaml::from_str(&plugin.ok(&["list", "-o", "yaml"]).await)
        .expect("list -o yaml parses");
    assert_eq!(listed["kind"], "List");
    assert_eq!(listed["items"].as_sequence().map(Vec::len), Some(6));
    let single: serde_json::Value =
        serde_json::from_str(&plugin.ok(&["get", "single", "-o", "json"]).await).expect("json");
    assert_eq!(single["status"]["status"], "SUCCEEDED");
    assert!(
        single["metadata"].get("managedFields").is_none(),
        "hidden as kubectl hides them"
    );
    let missing = plugin.fails(&["get", "nope"], None).await;
    assert_eq!(
        missing,
        "Error from server (NotFound): jobs.batch.barge.dev \"nope\" not found\n"
    );

    // describe: both attempts with their exit codes and pods, and the job's Events.
    let described = env
        .wait_until("describe failing to show its Failed event", || {
            let plugin = &plugin;
            async move {
                let text = plugin.ok(&["describe", "failing"]).await;
                text.lines()
                    .any(|l| l.trim_start().starts_with("Warning") && l.contains("Failed"))
                    .then_some(text)
            }
        })
        .await;
    for needle in [
        "Name:                 failing\n",
        &format!("Namespace:            {ns}\n"),
        "Status:               FAILED\n",
        "Attempts:\n  #1:\n",
        "  #2:\n",
        "    Exit Code:      3\n",
        "    Pod:            failing-1\n",
        "    Pod:            failing-2\n",
        "Events:\n  Type     Reason",
    ] {
        assert!(
            described.contains(needle),
            "describe lacks {needle:?}:\n{described}"
        );
    }
    assert_eq!(described.matches("    Exit Code:      3\n").count(), 2);

    // logs: of the latest and of a named attempt, of an array child, with the parameters the
    // AWS document gave.
    for (args, expected) in [
        (
            &["logs", "single"][..],
            "hello world attempt 1 index none\n",
        ),
        (
            &["logs", "failing"][..],
            "hello nobody attempt 2 index none\n",
        ),
        (
            &["logs", "failing", "--attempt", "1"][..],
            "hello nobody attempt 1 index none\n",
        ),
        (
            &["logs", "frames:2"][..],
            "hello nobody attempt 1 index 2\n",
        ),
        (
            &["logs", "frames", "--index", "0", "--tail", "1"][..],
            "hello nobody attempt 1 index 0\n",
        ),
        (
            &["logs", "jobe"][..],
            "notify pipeline-notifications@mycompany.com about s3://JobD-Output-Bucket\n",
        ),
    ] {
        plugin.log_is(args, expected).await;
    }
    let no_child = plugin.fails(&["logs", "frames"], None).await;
    assert!(
        no_child.starts_with("error: job frames is an array job"),
        "{no_child}"
    );

    // cancel and terminate: a running job is not cancelled but terminated; a job waiting for
    // it is cancelled.
    plugin.submit("long", q, &["--name", "sleeper"]).await;
    plugin
        .submit("hello", q, &["--name", "waiter", "--depends-on", "sleeper"])
        .await;
    env.wait_for(&env.jobs(), "sleeper", "RUNNING", |j| {
        status_of(j) == Some(JobStatus::Running)
    })
    .await;
    env.wait_log("sleeper-1", "started").await;
    let not_cancelled = plugin
        .fails(&["cancel", "sleeper", "--reason", "x"], None)
        .await;
    assert!(not_cancelled.contains("use `terminate`"), "{not_cancelled}");
    env.wait_for(&env.jobs(), "waiter", "PENDING", |j| {
        status_of(j) == Some(JobStatus::Pending)
    })
    .await;
    assert_eq!(
        plugin
            .ok(&["cancel", "waiter", "--reason", "not needed"])
            .await,
        "job.batch.barge.dev/waiter cancelled\n"
    );
    // `logs -f` follows the running attempt until terminate stops it.
    let follower = plugin
        .command(&["logs", "sleeper", "-f"])
        .spawn()
        .expect("kubectl barge logs -f");
    assert_eq!(
        plugin
            .ok(&["terminate", "sleeper", "--reason", "taking too long"])
            .await,
        "job.batch.barge.dev/sleeper terminated\n"
    );
    let followed = tokio::time::timeout(support::WAIT, follower.wait_with_output())
        .await
        .expect("logs -f ends with the attempt")
        .expect("logs -f output");
    assert!(followed.status.success(), "{followed:?}");
    assert_eq!(String::from_utf8_lossy(&followed.stdout), "started\n");
    let sleeper = env.wait_job("sleeper", JobStatus::Failed).await;
    assert!(
        status_reason(&sleeper).contains("taking too long"),
        "{}",
        status_reason(&sleeper)
    );
    let waiter = env.wait_job("waiter", JobStatus::Failed).await;
    assert!(
        status_reason(&waiter).contains("not needed"),
        "{}",
        status_reason(&waiter)
    );

    // Contexts: the other context's namespace, without -n.
    assert_eq!(
        plugin
            .ok(&[
                "submit",
                "--context",
                OTHER_CONTEXT,
                "--job-definition",
                "hello",
                "--job-queue",
                q,
                "--name",
                "elsewhere"
            ])
            .await,
        "job.batch.barge.dev/elsewhere created\n"
    );
    let theirs = plugin.ok(&["list", "--context", OTHER_CONTEXT]).await;
    assert_eq!(
        theirs.lines().count(),
        2,
        "only the other namespace's job:\n{theirs}"
    );
    row(&theirs, "elsewhere");
    let ours = plugin.ok(&["list"]).await;
    assert!(!ours.contains("elsewhere"), "{ours}");
    assert!(plugin
        .ok(&["list", "-n", &other, "-o", "name"])
        .await
        .contains("elsewhere"));
    env.wait_for(
        &Api::<Job>::namespaced(env.client.clone(), &other),
        "elsewhere",
        "SUCCEEDED",
        |j| status_of(j) == Some(JobStatus::Succeeded),
    )
    .await;
    let everywhere = plugin.ok(&["list", "-A"]).await;
    assert_eq!(row(&everywhere, &other)[1], "elsewhere");
    assert!(everywhere.starts_with("NAMESPACE"));

    // queues: the counts by state are those of the jobs the API server holds.
    let jobs = Api::<Job>::all(env.client.clone())
        .list(&ListParams::default())
        .await
        .expect("list jobs")
        .items;
    let count = |state: JobStatus| {
        jobs.iter()
            .filter(|j| j.spec.job_queue == queue && status_of(j) == Some(state))
            .count()
            .to_string()
    };
    assert_eq!(count(JobStatus::Succeeded), "6");
    assert_eq!(count(JobStatus::Failed), "3");
    let queues = plugin.ok(&["queues"]).await;
    let expected: Vec<String> = [q, "10", "ENABLED", "VALID", &format!("{ns}-ce")]
        .iter()
        .map(|s| s.to_string())
        .chain(JobStatus::ALL.iter().map(|s| count(*s)))
        .collect();
    assert_eq!(row(&queues, q), expected);
    assert!(queues.starts_with("NAME"));
    let only_other: serde_json::Value =
        serde_json::from_str(&plugin.ok(&["queues", "-n", &other, "-o", "json"]).await)
            .expect("json");
    let entry = only_other["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|e| e["name"] == q))
        .expect("the queue");
    assert_eq!(
        entry["jobCounts"]["SUCCEEDED"], 1,
        "-n counts one namespace only"
    );
    assert_eq!(
        entry["computeEnvironments"],
        serde_json::json!([format!("{ns}-ce")])
    );

    // import aws, through the plugin.
    let register = plugin.dir.path().join("register.json");
    std::fs::write(
        &register,
        r#"{"jobDefinitionName": "copy", "type": "container", "containerProperties": {"image": "busybox", "command": ["true"], "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]}}"#,
    )
    .expect("write the document");
    let imported = plugin
        .ok(&["import", "aws", &register.display().to_string()])
        .await;
    assert!(
        imported.contains("kind: JobDefinition") && imported.contains("name: copy"),
        "{imported}"
    );

    // A multi-node job: another node's log with --node (read while the job runs: node 0's pod
    // may exist only once it starts), then the main node's by default once it has ended.
    env.apply(PAIR).await;
    plugin.submit("pair", q, &["--name", "pair"]).await;
    let deadline = tokio::time::Instant::now() + support::WAIT;
    loop {
        let out = plugin
            .run_with(&["logs", "pair", "--node", "0"], None)
            .await;
        if out.status.success() && out.stdout == b"node 0 of 2\n" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "kubectl barge logs pair --node 0: {:?} {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(support::POLL).await;
    }
    std::fs::write(env.files_dir().join("pair-release"), b"").expect("release the main node");
    env.wait_job("pair", JobStatus::Succeeded).await;
    plugin.log_is(&["logs", "pair"], "node 1 of 2\n").await;
    let pair = plugin.ok(&["get", "pair", "-o", "wide"]).await;
    assert!(pair.contains(" nodes "), "the NODES column: {pair}");

    let names: Vec<String> = env
        .jobs()
        .list(&ListParams::default())
        .await
        .expect("jobs")
        .items
        .iter()
        .map(|j| j.name_any())
        .collect();
    assert_eq!(
        names.len(),
        9,
        "no job was created by the refused document: {names:?}"
    );
    env.finish().await;
}
