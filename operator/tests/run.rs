//! `barge operator` start-up and leadership against an in-process simulated cluster: probes
//! while waiting for the CRDs, metrics, leader election with hand-over on shutdown.

mod support;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::PostParams;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use barge_crds::SchedulingPolicy;
use support::{eventually, from_yaml, wait_for, Env};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `GET path` on 127.0.0.1:port: (status code, body), or None when nothing listens.
async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

#[tokio::test]
async fn probes_follow_start_up_and_metrics_are_served() {
    let env = Env::bare().await;
    let port = free_port();
    let mut args = env.operator_args();
    args.metrics_addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let operator = env.start_operator_with(args);

    // Alive but not ready while Barge's CRDs are missing.
    eventually("/healthz", || async {
        http_get(port, "/healthz")
            .await
            .filter(|(code, _)| *code == 200)
    })
    .await;
    let (code, body) = http_get(port, "/readyz").await.expect("readyz answers");
    assert_eq!((code, body.as_str()), (503, "caches not synced"));

    env.install_crds().await;
    eventually("/readyz to turn 200", || async {
        http_get(port, "/readyz")
            .await
            .filter(|(code, _)| *code == 200)
    })
    .await;

    // The controllers run: a policy gets its status, and the metrics show the work.
    let policies = env.api::<SchedulingPolicy>();
    let policy: SchedulingPolicy = from_yaml("apiVersion: batch.barge.dev/v1alpha1\nkind: SchedulingPolicy\nmetadata: {name: fair}\nspec: {}\n");
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");
    wait_for(&policies, "fair", "reported", |p| {
        p.status.as_ref().is_some_and(|s| !s.conditions.is_empty())
    })
    .await;
    let metrics = eventually("reconcile metrics", || async {
        let (_, body) = http_get(port, "/metrics").await?;
        body.contains(r#"barge_reconciles_total{controller="scheduling-policy",result="ok"}"#)
            .then_some(body)
    })
    .await;
    assert!(metrics.contains("barge_status_writes_total"), "{metrics}");

    operator.stop().await.expect("graceful stop");
    assert!(
        http_get(port, "/healthz").await.is_none(),
        "the endpoints stop with the operator"
    );
    env.stop().await;
}

#[tokio::test]
async fn one_replica_leads_and_hands_over_on_shutdown() {
    let env = Env::start().await;
    let leases = env.namespaced::<Lease>("default");
    let replica = |identity: &str| {
        let mut args = env.operator_args();
        args.leader_election = true;
        args.lease_name = "barge-test".into();
        args.identity = Some(identity.into());
        env.start_operator_with(args)
    };
    let first = replica("replica-a");
    let lease = wait_for(&leases, "barge-test", "held by replica-a", |l| {
        l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some("replica-a")
    })
    .await;
    let transitions = lease
        .spec
        .as_ref()
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0);

    // A second replica waits while the first renews: over two more renewals (each a retry
    // period of the standby too), the holder stays replica-a.
    let second = replica("replica-b");
    let renewed = |l: &Lease| {
        l.spec
            .as_ref()
            .and_then(|s| s.renew_time.clone())
            .map(|t| t.0)
    };
    let since = renewed(&lease).expect("renewTime");
    let later = wait_for(&leases, "barge-test", "renewed twice more", |l| {
        renewed(l).is_some_and(|t| t.duration_since(since) >= jiff::SignedDuration::from_secs(2))
    })
    .await;
    assert_eq!(
        later
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref()),
        Some("replica-a"),
        "a live lease is respected"
    );

    // The leader stops gracefully and releases the lease; the standby takes over.
    first.stop().await.expect("graceful stop");
    let taken = wait_for(&leases, "barge-test", "held by replica-b", |l| {
        l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some("replica-b")
    })
    .await;
    assert!(taken.spec.and_then(|s| s.lease_transitions).unwrap_or(0) > transitions);

    // The new leader runs the controllers.
    let policies = env.api::<SchedulingPolicy>();
    let policy: SchedulingPolicy = from_yaml("apiVersion: batch.barge.dev/v1alpha1\nkind: SchedulingPolicy\nmetadata: {name: after}\nspec: {}\n");
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");
    wait_for(&policies, "after", "reported by the new leader", |p| {
        p.status.as_ref().is_some_and(|s| !s.conditions.is_empty())
    })
    .await;
    second.stop().await.expect("graceful stop");
    env.stop().await;
}

/// The real binary: prints its metrics address, leads, and on SIGTERM stops with exit code 0
/// after releasing its lease.
#[tokio::test]
async fn the_binary_stops_gracefully_on_sigterm() {
    use std::process::Stdio;
    use tokio::io::AsyncBufReadExt;

    let env = Env::start().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_barge"))
        .args([
            "operator",
            "--metrics-addr",
            "127.0.0.1:0",
            "--leader-election",
            "--lease-name",
            "barge-bin",
            "--lease-namespace",
            "default",
        ])
        .args(["--identity", "bin-replica", "--log-level", "warn"])
        .arg("--kubeconfig")
        .arg(env.cluster.kubeconfig_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn barge");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(support::WAIT, lines.next_line())
        .await
        .expect("a line in time")
        .expect("read")
        .expect("a line");
    let port: u16 = first
        .strip_prefix("metrics listening on http://127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    eventually("/readyz", || async {
        http_get(port, "/readyz")
            .await
            .filter(|(code, _)| *code == 200)
    })
    .await;
    let leases = env.namespaced::<Lease>("default");
    wait_for(&leases, "barge-bin", "held", |l| {
        l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some("bin-replica")
    })
    .await;

    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(support::WAIT, child.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    assert!(status.success(), "exit status {status:?}");
    let lease = leases.get("barge-bin").await.expect("lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity),
        None,
        "the lease was released"
    );
    env.stop().await;
}

/// A leader that finds its lease taken stops with an error (so its pod restarts clean).
#[tokio::test]
async fn a_leader_that_loses_its_lease_exits_with_an_error() {
    let env = Env::start().await;
    let leases = env.namespaced::<Lease>("default");
    let mut args = env.operator_args();
    args.leader_election = true;
    args.lease_name = "barge-lost".into();
    args.identity = Some("replica-a".into());
    args.lease_duration_seconds = 30;
    let operator = env.start_operator_with(args);
    let mut lease = wait_for(&leases, "barge-lost", "held", |l| {
        l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some("replica-a")
    })
    .await;
    // Another candidate takes it over (as after a network partition).
    let spec = lease.spec.get_or_insert_with(Default::default);
    spec.holder_identity = Some("intruder".into());
    spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        jiff::Timestamp::now(),
    ));
    leases
        .replace("barge-lost", &PostParams::default(), &lease)
        .await
        .expect("take over");
    let result = tokio::time::timeout(support::WAIT, operator.task)
        .await
        .expect("stops in time")
        .expect("joined");
    assert!(
        matches!(
            result,
            Err(barge_operator::run::RunError::LostLeadership(_))
        ),
        "{result:?}"
    );
    let after = leases.get("barge-lost").await.expect("lease");
    assert_eq!(
        after.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("intruder"),
        "a deposed leader does not release another's lease"
    );
    env.stop().await;
}
