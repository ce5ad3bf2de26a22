//! Writes computed outside the store lock (kube-apiserver's `GuaranteedUpdate`): concurrent
//! patches of one object lose nothing, a stale resourceVersion is still refused with 409, an
//! apply racing a create ends as one object, watchers see revisions in order; and the
//! max-in-flight limit refuses writes beyond it with 429 for users outside `system:masters`.

use std::time::Duration;

use barge_sim::apiserver::inflight::MaxInFlight;
use barge_sim::{Cluster, ClusterConfig};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::Api;
use serde_json::json;

const WRITERS: usize = 8;
const PATCHES: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_lose_nothing_and_watchers_see_revisions_in_order() {
    let c = Cluster::start(ClusterConfig::default())
        .await
        .expect("cluster");
    let client = c.client().expect("client");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "shared"}})).unwrap();
    let created = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let from = created.metadata.resource_version.clone().unwrap();

    let watcher = {
        let cms = cms.clone();
        tokio::spawn(async move {
            let mut stream = cms
                .watch(&WatchParams::default().timeout(30), &from)
                .await
                .expect("watch")
                .boxed();
            let mut rvs: Vec<u64> = Vec::new();
            while rvs.len() < WRITERS * PATCHES {
                match stream.try_next().await {
                    Ok(Some(WatchEvent::Modified(cm))) => rvs.push(
                        cm.metadata
                            .resource_version
                            .and_then(|rv| rv.parse().ok())
                            .expect("rv"),
                    ),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            rvs
        })
    };

    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let cms = cms.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PATCHES {
                let patch = json!({"data": {format!("w{w}-{i}"): "x"}});
                cms.patch("shared", &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .expect("patch");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let cm = cms.get("shared").await.expect("get");
    assert_eq!(
        cm.data.unwrap_or_default().len(),
        WRITERS * PATCHES,
        "every concurrent patch is kept"
    );
    let rvs = tokio::time::timeout(Duration::from_secs(30), watcher)
        .await
        .expect("watcher done")
        .expect("watcher");
    assert_eq!(rvs.len(), WRITERS * PATCHES);
    assert!(
        rvs.windows(2).all(|w| w[0] < w[1]),
        "revisions in order: {rvs:?}"
    );

    // A replacement from a stale read is refused.
    let mut stale = created.clone();
    stale.data = Some([("k".to_string(), "v".to_string())].into());
    let err = cms
        .replace("shared", &PostParams::default(), &stale)
        .await
        .expect_err("stale resourceVersion");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err:?}"
    );

    // Concurrent applies of one new object: one creates it, the others update it.
    let mut applies = Vec::new();
    for w in 0..WRITERS {
        let cms = cms.clone();
        applies.push(tokio::spawn(async move {
            let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "applied"}, "data": {format!("w{w}"): "x"}});
            cms.patch(
                "applied",
                &PatchParams::apply(&format!("writer-{w}")),
                &Patch::Apply(&obj),
            )
            .await
            .expect("apply")
        }));
    }
    for a in applies {
        a.await.expect("apply task");
    }
    let applied = cms.get("applied").await.expect("get applied");
    assert_eq!(applied.data.unwrap_or_default().len(), WRITERS);
    c.shutdown().await;
}

/// A client impersonating `user` that does not retry: kube-rs retries 429s by default (honouring
/// Retry-After), so without this a refusal would not show.
async fn client_without_retries(c: &Cluster, user: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::from_yaml(&c.kubeconfig_as(user, &[])).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
    config.default_retry = false;
    kube::Client::try_from(config).expect("impersonating client")
}

/// A cluster whose mutating in-flight budget is 1, each write taking `write_latency`, with the
/// user "writer" bound to cluster-admin; and its admin (system:masters) client.
async fn one_mutating_slot(write_latency: Duration) -> (Cluster, kube::Client) {
    let c = Cluster::start(ClusterConfig {
        max_in_flight: MaxInFlight {
            requests: 0,
            mutating: 1,
        },
        write_latency,
        ..ClusterConfig::default()
    })
    .await
    .expect("cluster");
    let admin = c.client().expect("client");
    let crb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "writer-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "name": "writer", "apiGroup": "rbac.authorization.k8s.io"}]});
    let crbs: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(admin.clone());
    crbs.create(
        &PostParams::default(),
        &serde_json::from_value(crb).unwrap(),
    )
    .await
    .expect("binding");
    (c, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_beyond_max_mutating_inflight_get_429_except_system_masters() {
    // Keeps each write in flight long enough for the others to find the budget spent.
    let (c, admin) = one_mutating_slot(Duration::from_millis(300)).await;
    let writer = client_without_retries(&c, "writer").await;
    c.reset_stats();

    let mut tasks = Vec::new();
    for i in 0..4 {
        let api: Api<ConfigMap> = Api::namespaced(writer.clone(), "default");
        tasks.push(tokio::spawn(async move {
            let cm: ConfigMap =
                serde_json::from_value(json!({"metadata": {"name": format!("t-{i}")}})).unwrap();
            api.create(&PostParams::default(), &cm).await
        }));
    }
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => {}
            Err(e) => {
                let text = format!("{e:?}");
                assert!(text.contains("429"), "{text}");
                refused += 1;
            }
        }
    }
    assert!(refused >= 1, "a write found the budget of 1 spent");
    let stats = c.stats();
    assert_eq!(stats.throttled, refused);
    assert_eq!(stats.throttled_mutating, refused);

    // The default kube-rs client retries after Retry-After: every write lands in the end.
    let retrying = c.client_as("writer", &[]).await.expect("retrying client");
    c.reset_stats();
    let mut tasks = Vec::new();
    for i in 0..4 {
        let api: Api<ConfigMap> = Api::namespaced(retrying.clone(), "default");
        tasks.push(tokio::spawn(async move {
            let cm: ConfigMap =
                serde_json::from_value(json!({"metadata": {"name": format!("r-{i}")}})).unwrap();
            api.create(&PostParams::default(), &cm).await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("retried after 429");
    }
    assert!(c.stats().throttled >= 1);

    // system:masters (every unimpersonated request) is always served.
    c.reset_stats();
    let mut tasks = Vec::new();
    for i in 0..4 {
        let api: Api<ConfigMap> = Api::namespaced(admin.clone(), "default");
        tasks.push(tokio::spawn(async move {
            let cm: ConfigMap =
                serde_json::from_value(json!({"metadata": {"name": format!("a-{i}")}})).unwrap();
            api.create(&PostParams::default(), &cm).await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("admin is never throttled");
    }
    assert_eq!(c.stats().throttled, 0);
    c.shutdown().await;
}

/// kube-apiserver's DefaultBuildHandlerChain admits a request through the max-in-flight filter
/// before it authorizes it: a user without any permission who writes while the budget is spent
/// gets 429, not 403; once the budget is free, the authorizer refuses it with 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_in_flight_refuses_before_authorization() {
    // Keeps the allowed write in flight while the unauthorized one arrives.
    let (c, _admin) = one_mutating_slot(Duration::from_millis(800)).await;
    let writer = client_without_retries(&c, "writer").await;
    let nobody = client_without_retries(&c, "nobody").await;
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    };
    c.clear_request_log();
    c.reset_stats();

    let holder = {
        let api: Api<ConfigMap> = Api::namespaced(writer, "default");
        let obj = cm("held");
        tokio::spawn(async move { api.create(&PostParams::default(), &obj).await })
    };
    // Wait until the writer holds the only mutating slot (its write is in its latency).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while c.stats().writes == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the held write never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let api: Api<ConfigMap> = Api::namespaced(nobody, "default");
    let err = api
        .create(&PostParams::default(), &cm("denied"))
        .await
        .expect_err("the budget is spent");
    assert!(format!("{err:?}").contains("429"), "{err:?}");
    assert_eq!(c.stats().throttled_mutating, 1);
    holder
        .await
        .expect("task")
        .expect("the allowed write lands");

    let err = api
        .create(&PostParams::default(), &cm("denied"))
        .await
        .expect_err("nobody may not create ConfigMaps");
    assert!(format!("{err:?}").contains("403"), "{err:?}");

    let log: Vec<(String, bool, u16)> = c
        .request_log()
        .into_iter()
        .filter(|r| r.user == "nobody")
        .map(|r| (r.verb, r.allowed, r.code))
        .collect();
    assert_eq!(
        log,
        vec![("create".into(), false, 429), ("create".into(), false, 403)]
    );
    c.shutdown().await;
}
