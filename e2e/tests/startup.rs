//! End-to-end: the operator starts with 3,000 jobs waiting, on an API server that refuses what
//! it cannot take.
//!
//! barge-sim runs with kube-apiserver's default in-flight limits (400 read-only, 200 mutating
//! requests; over them a request gets 429 with `Retry-After: 1`) and a realistic write latency
//! (50 ms), and the operator runs as its service account (only `system:masters` is never
//! refused). Before the client-side throttle (`barge_operator::throttle`), a leader that found
//! thousands of jobs reconciled them all at once: on a real API server, thousands of status
//! writes came back 429 and the first job started after 33–60 s. Now the operator keeps at most
//! `--kube-api-max-in-flight` (100) requests in flight, pod creates first.
//!
//! The bound on 429s is zero: the operator's cap (100) is half the mutating budget (200), and
//! the only other clients — the test and the simulated kubelet — are `system:masters`, whose
//! requests the limit never refuses and which this scenario keeps to a handful in flight. Any
//! 429 therefore means the operator went over the server's budget.

mod support;

use std::time::{Duration, Instant};

use barge_crds::job::JobStatus;
use barge_crds::Job;
use barge_sim::apiserver::inflight::MaxInFlight;
use futures::StreamExt;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{ListParams, PostParams};
use kube::Api;

use support::{
    compute_environment, job, job_definition, job_queue, scripted_tags, skip_on_real_cluster, E2e,
    Options, REALISTIC_WRITE_LATENCY,
};

/// Jobs waiting when the operator starts.
const JOBS: usize = 3000;
/// Concurrent submitters (the test is `system:masters`: never refused).
const SUBMITTERS: usize = 64;
/// The operator's user (config/rbac's service account), bound to `cluster-admin` here: this
/// test is about load, `e2e_rbac` about least privilege.
const OPERATOR_USER: &str = "system:serviceaccount:barge-system:barge";
/// The target: start-up with 3,000+ jobs waiting → first pod.
const FIRST_POD_WITHIN: Duration = Duration::from_secs(10);

#[tokio::test]
async fn starting_amid_3000_waiting_jobs_creates_a_pod_within_10_s_without_429s() {
    if skip_on_real_cluster("startup") {
        return;
    }
    let mut env = E2e::start_with(
        "startup",
        Options {
            max_in_flight: MaxInFlight::upstream_defaults(),
            write_latency: Some(REALISTIC_WRITE_LATENCY),
            ..Options::scripted()
        },
    )
    .await;
    // The environment's nodes come up with a first operator; then it goes away and the jobs
    // pile up.
    env.apply(&format!(
        "{}{}{}",
        compute_environment("ce", 4),
        job_queue("q", 1, &["ce"]),
        job_definition("tiny", "exit 0", &[], "0.25", "")
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", 2).await;
    env.kill_operator();
    bind_cluster_admin(&env).await;

    let jobs = env.jobs();
    let submitted = Instant::now();
    futures::stream::iter(0..JOBS)
        .map(|i| {
            let jobs = jobs.clone();
            let manifest = env.render(&job(
                &format!("j{i:04}"),
                "q",
                "tiny",
                &scripted_tags("0", 0),
            ));
            async move {
                let job: Job = serde_yaml::from_str(&manifest).expect("job manifest");
                jobs.create(&PostParams::default(), &job)
                    .await
                    .expect("submit");
            }
        })
        .buffer_unordered(SUBMITTERS)
        .collect::<Vec<()>>()
        .await;
    eprintln!("submitted {JOBS} jobs in {:?}", submitted.elapsed());

    env.cluster().reset_stats();
    let started = Instant::now();
    let kubeconfig = env.cluster().kubeconfig_as(OPERATOR_USER, &[]);
    env.run_operator_with(&kubeconfig);
    let pods = env.pods();
    let first_pod = env
        .wait_until("the first pod", || async {
            let list = pods.list(&ListParams::default().limit(1)).await.ok()?;
            (!list.items.is_empty()).then(|| started.elapsed())
        })
        .await;
    // The start-up flood: every job admitted (its first status written).
    let admitted = env
        .wait_until(&format!("all {JOBS} jobs to be admitted"), || async {
            // Listing 3,000 jobs costs the sim and this test CPU the operator needs: not often.
            tokio::time::sleep(Duration::from_millis(900)).await;
            let list = jobs.list(&ListParams::default()).await.ok()?;
            let admitted = list
                .items
                .iter()
                .filter(|j| {
                    j.status
                        .as_ref()
                        .and_then(|s| s.status)
                        .is_some_and(|s| s != JobStatus::Submitted)
                })
                .count();
            (admitted == JOBS).then(|| started.elapsed())
        })
        .await;
    let stats = env.cluster().stats();
    eprintln!(
        "start-up with {JOBS} jobs waiting: first pod after {first_pod:?}, all admitted after \
         {admitted:?}; 429s {} ({} writes), job status writes {}, pod creates {}",
        stats.throttled,
        stats.throttled_mutating,
        stats.count("patch", "jobs/status"),
        stats.count("create", "pods"),
    );
    assert!(
        first_pod <= FIRST_POD_WITHIN,
        "first pod after {first_pod:?} (target {FIRST_POD_WITHIN:?})"
    );
    assert_eq!(
        stats.throttled, 0,
        "the API server refused {} requests with 429 ({} writes)",
        stats.throttled, stats.throttled_mutating
    );
    env.finish().await;
}

/// Binds `cluster-admin` to [`OPERATOR_USER`].
async fn bind_cluster_admin(env: &E2e) {
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": format!("{}-operator", env.ns)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": OPERATOR_USER}],
    }))
    .expect("binding");
    Api::<ClusterRoleBinding>::all(env.client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind cluster-admin to the operator's user");
}
