//! End-to-end under realistic latency (issue 9): the scenarios of `e2e_jobs`, `e2e_arrays`,
//! `e2e_multinode` and `e2e_fair_share` once more, each against a simulated API server whose
//! every write takes [`support::REALISTIC_WRITE_LATENCY`] (50 ms, an etcd commit's worth) instead
//! of microseconds — races between the operator's own writes and its caches hid behind the fast
//! server. The harness picks the latency from this target's name (see `support::write_latency`),
//! so the scenario files are compiled here unchanged; these runs always use their own simulated
//! cluster, also when `BARGE_E2E_KUBECONFIG` is set.
//!
//! Also here: the harness's own guarantee that a failing test leaves nothing behind on a real
//! cluster.
// `jobs.rs`, `arrays.rs`, `multinode.rs` and `fair_share.rs` each declare `mod support;`, so the
// harness is compiled once per scenario file (and once for this file's own test): that is how
// they are reused unchanged.
#![allow(clippy::duplicate_mod)]

#[path = "arrays.rs"]
mod arrays;
#[path = "fair_share.rs"]
mod fair_share;
#[path = "jobs.rs"]
mod jobs;
#[path = "multinode.rs"]
mod multinode;
mod support;

use std::sync::{Arc, Mutex};

use barge_crds::{ComputeEnvironment, JobQueue};
use barge_sim::{Cluster, ClusterConfig};
use futures::FutureExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

use support::{compute_environment, job_queue, E2e, Options};

/// A test that panics against a real cluster still deletes its namespace and the cluster-scoped
/// objects named after it (from the drop of its `E2e`). A standalone simulated API server
/// stands in for the real cluster, without write latency; it runs on the runtime's worker
/// threads, as a real cluster runs elsewhere, since the drop blocks the test's own thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_test_leaves_nothing_behind_on_a_real_cluster() {
    let stand_in = Cluster::start(ClusterConfig::default())
        .await
        .expect("stand-in cluster");
    let client = stand_in.client().expect("client");
    support::install_crds(&client).await;
    let kubeconfig = stand_in.kubeconfig_path().to_path_buf();
    let ns = Arc::new(Mutex::new(String::new()));
    let seen = ns.clone();
    let failing = async move {
        let env = E2e::start_with("cleanup", Options::scripted().on_cluster(&kubeconfig)).await;
        *seen.lock().expect("lock") = env.ns.clone();
        env.apply(&format!(
            "{}{}",
            compute_environment("ce", 2),
            job_queue("q", 1, &["ce"])
        ))
        .await;
        panic!("this test fails on purpose");
    };
    let outcome = std::panic::AssertUnwindSafe(failing).catch_unwind().await;
    assert!(outcome.is_err(), "the test body must have failed");
    let ns = ns.lock().expect("lock").clone();
    assert!(!ns.is_empty(), "the test started");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let deleting = |deleted: Option<&kube::api::ObjectMeta>| {
        deleted.is_none_or(|m| m.deletion_timestamp.is_some())
    };
    let namespace = namespaces.get_opt(&ns).await.expect("get namespace");
    assert!(
        deleting(namespace.as_ref().map(|n| &n.metadata)),
        "namespace {ns} left behind"
    );
    let ces: Api<ComputeEnvironment> = Api::all(client.clone());
    let ce = ces.get_opt(&format!("{ns}-ce")).await.expect("get ce");
    assert!(
        deleting(ce.as_ref().map(|c| &c.metadata)),
        "compute environment {ns}-ce left behind"
    );
    let queues: Api<JobQueue> = Api::all(client.clone());
    let queue = queues.get_opt(&format!("{ns}-q")).await.expect("get queue");
    assert!(
        deleting(queue.as_ref().map(|q| &q.metadata)),
        "job queue {ns}-q left behind"
    );
    stand_in.shutdown().await;
}
