//! kube-rs against the simulated API server: reflectors in sync through writes, dropped watches
//! and 410 Gone; storage semantics (resourceVersion, generation, optimistic concurrency, status
//! subresource, pagination, selectors, server-side apply); deletion (finalizers, graceful pod
//! deletion, garbage collection policies, namespaces, pod GC); faults and statistics; events
//! seen through both versions; pods/log and pods/binding.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use barge_sim::{Cluster, ClusterConfig, FaultConfig};
use common::eventually;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Client;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

async fn cluster() -> (Cluster, Client) {
    let c = Cluster::start(ClusterConfig {
        bookmark_interval: Some(Duration::from_millis(200)),
        ..Default::default()
    })
    .await
    .expect("cluster starts");
    let client = c.client().expect("client");
    (c, client)
}

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()},
        "data": {"k": "v"},
    }))
    .expect("configmap")
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }))
    .expect("pod")
}

/// (name → resourceVersion) of the live ConfigMaps.
async fn live_state(api: &Api<ConfigMap>) -> BTreeMap<String, String> {
    api.list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|c| {
            (
                c.metadata.name.unwrap_or_default(),
                c.metadata.resource_version.unwrap_or_default(),
            )
        })
        .collect()
}

fn cache_state(reader: &reflector::Store<ConfigMap>) -> BTreeMap<String, String> {
    reader
        .state()
        .iter()
        .map(|c| {
            (
                c.metadata.name.clone().unwrap_or_default(),
                c.metadata.resource_version.clone().unwrap_or_default(),
            )
        })
        .collect()
}

async fn converge(api: &Api<ConfigMap>, reader: &reflector::Store<ConfigMap>, what: &str) {
    eventually(what, WAIT, || async {
        let live = live_state(api).await;
        (cache_state(reader) == live).then_some(())
    })
    .await;
}

async fn churn(api: &Api<ConfigMap>, round: usize) {
    for i in 0..20 {
        api.create(
            &PostParams::default(),
            &cm(&format!("r{round}-{i}"), &[("round", &round.to_string())]),
        )
        .await
        .expect("create");
    }
    for i in 0..10 {
        let patch = json!({"data": {"updated": "yes"}});
        api.patch(
            &format!("r{round}-{i}"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("patch");
    }
    for i in 10..15 {
        api.delete(&format!("r{round}-{i}"), &DeleteParams::default())
            .await
            .expect("delete");
    }
}

#[tokio::test]
async fn reflector_stays_in_sync_through_writes_dropped_watches_and_410() {
    let (c, client) = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let (reader, writer) = reflector::store();
    let stream =
        reflector(writer, watcher(api.clone(), watcher::Config::default())).applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    reader.wait_until_ready().await.expect("reflector ready");

    churn(&api, 1).await;
    converge(&api, &reader, "reflector after plain writes").await;

    // Watches now end after 3 events: the watcher resumes from its last resourceVersion.
    c.faults().set(FaultConfig {
        drop_watches_after_events: Some(3),
        ..Default::default()
    });
    let watches_before = c.stats().count("watch", "configmaps");
    churn(&api, 2).await;
    converge(&api, &reader, "reflector through dropped watches").await;
    assert!(
        c.stats().count("watch", "configmaps") > watches_before + 2,
        "watches were re-opened after drops"
    );

    // History compacted while watches keep dropping: resuming answers 410, the watcher relists.
    let lists_before = c.stats().count("list", "configmaps");
    c.compact();
    churn(&api, 3).await;
    converge(&api, &reader, "reflector after 410 Gone").await;
    assert!(
        c.stats().count("list", "configmaps") > lists_before,
        "watcher relisted after 410"
    );
    c.faults().clear();
    task.abort();
    c.shutdown().await;
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_then_bookmark() {
    let (c, client) = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("s{i}"), &[]))
            .await
            .expect("create");
    }
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().streaming_lists()),
    )
    .applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    reader.wait_until_ready().await.expect("reflector ready");
    assert_eq!(reader.state().len(), 5);
    api.create(&PostParams::default(), &cm("s5", &[]))
        .await
        .expect("create");
    converge(&api, &reader, "streaming list reflector").await;
    assert_eq!(
        c.stats().count("list", "configmaps"),
        1,
        "only the test's own list: the watcher streamed"
    );
    task.abort();
    c.shutdown().await;
}

#[tokio::test]
async fn watch_from_a_compacted_revision_answers_410() {
    let (c, client) = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .expect("create");
    let rv = first.metadata.resource_version.expect("rv");
    api.create(&PostParams::default(), &cm("b", &[]))
        .await
        .expect("create");
    // Before compaction the watch replays what happened after `rv`.
    let mut s = api
        .watch(&WatchParams::default().timeout(2), &rv)
        .await
        .expect("watch")
        .boxed();
    match s.try_next().await.expect("event") {
        Some(WatchEvent::Added(o)) => assert_eq!(o.metadata.name.as_deref(), Some("b")),
        other => panic!("expected ADDED b, got {other:?}"),
    }
    c.compact();
    let mut s = api
        .watch(&WatchParams::default().timeout(2), &rv)
        .await
        .expect("watch")
        .boxed();
    match s.try_next().await.expect("event") {
        Some(WatchEvent::Error(e)) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    c.shutdown().await;
}

#[tokio::test]
async fn bookmarks_carry_the_current_revision() {
    let (c, client) = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm0 = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .expect("create");
    // A write to another resource moves the global revision; the bookmark reports it.
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let p = pods
        .create(&PostParams::default(), &pod("p"))
        .await
        .expect("pod");
    let mut s = api
        .watch(
            &WatchParams::default().timeout(5),
            &cm0.metadata.resource_version.unwrap(),
        )
        .await
        .expect("watch")
        .boxed();
    let bm = tokio::time::timeout(WAIT, async {
        loop {
            match s.try_next().await.expect("event") {
                Some(WatchEvent::Bookmark(b)) => return b,
                Some(_) => {}
                None => panic!("watch ended without a bookmark"),
            }
        }
    })
    .await
    .expect("bookmark in time");
    let bm_rv: u64 = bm.metadata.resource_version.parse().expect("numeric rv");
    let pod_rv: u64 = p
        .metadata
        .resource_version
        .unwrap()
        .parse()
        .expect("numeric rv");
    assert!(bm_rv >= pod_rv);
    c.shutdown().await;
}

fn widget_crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wg"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["size"], "properties": {
                        "size": {"type": "integer", "minimum": 1, "maximum": 10},
                        "color": {"type": "string", "enum": ["red", "blue"], "default": "red"}}},
                    "status": {"type": "object", "properties": {"phase": {"type": "string"}}}}}}}]}
    })
}

async fn install_widgets(client: &Client) -> Api<DynamicObject> {
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
    let crd = serde_json::from_value(widget_crd()).expect("crd");
    let created = crds
        .create(&PostParams::default(), &crd)
        .await
        .expect("crd create");
    let conds = created
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default();
    assert!(conds
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True"));
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    Api::namespaced_with(client.clone(), "default", &ar)
}

fn widget(name: &str, size: i64) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"size": size}})).expect("widget")
}

#[tokio::test]
async fn custom_resources_generation_status_and_concurrency() {
    let (c, client) = cluster().await;
    let api = install_widgets(&client).await;
    let w = api
        .create(&PostParams::default(), &widget("w", 3))
        .await
        .expect("create");
    assert_eq!(w.metadata.generation, Some(1));
    assert_eq!(w.data["spec"]["color"], "red", "schema default applied");
    assert!(w.metadata.uid.is_some() && w.metadata.creation_timestamp.is_some());

    // Status through the subresource does not bump generation; status on the main resource is ignored.
    let s = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}})),
        )
        .await
        .expect("status");
    assert_eq!(s.data["status"]["phase"], "Ready");
    assert_eq!(s.metadata.generation, Some(1));
    let m = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Hacked"}})),
        )
        .await
        .expect("patch");
    assert_eq!(m.data["status"]["phase"], "Ready");
    assert_eq!(m.metadata.generation, Some(1));
    let m = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 4}})),
        )
        .await
        .expect("patch");
    assert_eq!(m.metadata.generation, Some(2));
    assert!(m.metadata.resource_version != s.metadata.resource_version);

    // A write that changes nothing does not move the resourceVersion.
    let same = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 4}})),
        )
        .await
        .expect("patch");
    assert_eq!(same.metadata.resource_version, m.metadata.resource_version);

    // Optimistic concurrency: a stale resourceVersion is a 409 Conflict.
    let mut stale = w.clone();
    stale.data["spec"]["size"] = json!(5);
    match api.replace("w", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 409);
            assert!(
                e.message.contains("the object has been modified"),
                "{}",
                e.message
            );
        }
        other => panic!("expected 409, got {other:?}"),
    }
    // Schema validation: 422 naming the field.
    match api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 99}})),
        )
        .await
    {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422);
            assert!(e.message.contains("spec.size"), "{}", e.message);
        }
        other => panic!("expected 422, got {other:?}"),
    }
    // Creating an existing name is a 409 AlreadyExists.
    match api.create(&PostParams::default(), &widget("w", 3)).await {
        Err(kube::Error::Api(e)) => assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists")),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // Deleting the CRD deletes its objects and stops serving the kind.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .expect("crd delete");
    eventually("CRD gone", WAIT, || async {
        crds.get_opt("widgets.example.com")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;
    match api.list(&ListParams::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 404),
        other => panic!("expected 404 after CRD deletion, got {other:?}"),
    }
    c.shutdown().await;
}

/// kube-apiserver bumps `metadata.generation` when a DELETE sets deletionTimestamp on an object
/// its finalizers keep (`markAsDeleting` in the generic registry store); the MODIFIED event
/// carries it, and deleting again (already marked) bumps nothing.
#[tokio::test]
async fn deleting_an_object_with_finalizers_bumps_its_generation() {
    let (c, client) = cluster().await;
    let api = install_widgets(&client).await;
    let mut w = widget("held", 3);
    w.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    let created = api
        .create(&PostParams::default(), &w)
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    let rv = created.metadata.resource_version.clone().expect("rv");
    let mut events = api
        .watch(&WatchParams::default().fields("metadata.name=held"), &rv)
        .await
        .expect("watch")
        .boxed();
    let marked = api
        .delete("held", &DeleteParams::default())
        .await
        .expect("delete")
        .left()
        .expect("kept by its finalizer");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(0));
    assert_eq!(marked.metadata.generation, Some(2));
    match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
        Ok(Some(Ok(WatchEvent::Modified(o)))) => {
            assert_eq!(o.metadata.generation, Some(2));
            assert!(o.metadata.deletion_timestamp.is_some());
        }
        other => panic!("expected MODIFIED with the deletion mark, got {other:?}"),
    }
    let again = api
        .delete("held", &DeleteParams::default())
        .await
        .expect("delete again")
        .left()
        .expect("still kept");
    assert_eq!(again.metadata.generation, Some(2));
    // Without finalizers the object goes at once: no generation bump, no MODIFIED event.
    let plain = api
        .create(&PostParams::default(), &widget("plain", 3))
        .await
        .expect("create");
    assert_eq!(plain.metadata.generation, Some(1));
    let gone = api
        .delete("plain", &DeleteParams::default())
        .await
        .expect("delete")
        .left()
        .expect("the deleted object");
    assert_eq!(gone.metadata.generation, Some(1));
    assert!(api.get_opt("plain").await.expect("get").is_none());
    c.shutdown().await;
}

#[tokio::test]
async fn pagination_and_selectors() {
    let (c, client) = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..7 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        api.create(
            &PostParams::default(),
            &cm(&format!("c{i}"), &[("tier", tier)]),
        )
        .await
        .expect("create");
    }
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(3);
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await.expect("list");
        pages += 1;
        assert!(page.items.len() <= 3);
        names.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        match page.metadata.continue_ {
            Some(cont) if !cont.is_empty() => lp = lp.continue_token(&cont),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    // A continue token from before a compaction is too old: 410 Expired.
    let first = api
        .list(&ListParams::default().limit(2))
        .await
        .expect("list");
    let token = first.metadata.continue_.clone().expect("continue token");
    api.create(&PostParams::default(), &cm("after-compaction", &[]))
        .await
        .expect("create");
    c.compact();
    match api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
    {
        Err(kube::Error::Api(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410 for an expired continue token, got {other:?}"),
    }
    api.delete("after-compaction", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(names.len(), 7);
    let even = api
        .list(&ListParams::default().labels("tier=even"))
        .await
        .expect("list");
    assert_eq!(even.items.len(), 4);
    let set = api
        .list(&ListParams::default().labels("tier in (odd),tier!=even"))
        .await
        .expect("list");
    assert_eq!(set.items.len(), 3);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=c3"))
        .await
        .expect("list");
    assert_eq!(by_name.items.len(), 1);
    match api.list(&ListParams::default().fields("data.k=v")).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 400),
        other => panic!("unsupported field label must be refused, got {other:?}"),
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("a"))
        .await
        .expect("pod");
    pods.create(&PostParams::default(), &pod("b"))
        .await
        .expect("pod");
    pods.create_subresource::<serde_json::Value, serde_json::Value>("binding", "b", &PostParams::default(), &json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "b"}, "target": {"kind": "Node", "name": "n1"}})).await.expect("bind");
    let on_n1 = pods
        .list(&ListParams::default().fields("spec.nodeName=n1"))
        .await
        .expect("list");
    assert_eq!(
        on_n1
            .items
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect::<Vec<_>>(),
        vec!["b"]
    );
    let pending = pods
        .list(&ListParams::default().fields("status.phase=Pending,spec.nodeName="))
        .await
        .expect("list");
    assert_eq!(pending.items.len(), 1);
    let all_pods: Api<Pod> = Api::all(client);
    assert_eq!(
        all_pods
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        2
    );
    c.shutdown().await;
}

#[tokio::test]
async fn server_side_apply_owns_fields_and_reports_conflicts() {
    let (c, client) = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1", "shared": "x"}});
    let created = api
        .patch("ssa", &PatchParams::apply("alice"), &Patch::Apply(&a))
        .await
        .expect("apply creates");
    let mf = created.metadata.managed_fields.clone().unwrap_or_default();
    assert!(mf
        .iter()
        .any(|m| m.manager.as_deref() == Some("alice") && m.operation.as_deref() == Some("Apply")));
    let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"shared": "y"}});
    match api
        .patch("ssa", &PatchParams::apply("bob"), &Patch::Apply(&b))
        .await
    {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 409);
            assert!(e.message.contains("alice"), "{}", e.message);
        }
        other => panic!("expected an apply conflict, got {other:?}"),
    }
    let forced = api
        .patch("ssa", &PatchParams::apply("bob").force(), &Patch::Apply(&b))
        .await
        .expect("forced apply");
    assert_eq!(forced.data.as_ref().unwrap()["shared"], "y");
    // alice stops applying `a`: it is removed as nobody else owns it.
    let a2 =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {}});
    let after = api
        .patch("ssa", &PatchParams::apply("alice"), &Patch::Apply(&a2))
        .await
        .expect("apply");
    let data = after.data.unwrap_or_default();
    assert!(!data.contains_key("a"));
    assert_eq!(data.get("shared").map(String::as_str), Some("y"));
    c.shutdown().await;
}

#[tokio::test]
async fn finalizers_and_garbage_collection_policies() {
    let (c, client) = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let owned = |name: &str, owner: &ConfigMap, block: bool| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name, "uid": owner.metadata.uid, "blockOwnerDeletion": block}]}}))
        .expect("dependent")
    };
    // Finalizers keep an object (with deletionTimestamp) until removed.
    let mut f = cm("fin", &[]);
    f.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    api.create(&PostParams::default(), &f)
        .await
        .expect("create");
    let pending = api
        .delete("fin", &DeleteParams::default())
        .await
        .expect("delete");
    let marked = pending.left().expect("object still there");
    assert!(marked.metadata.deletion_timestamp.is_some());
    match api
        .patch(
            "fin",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["example.com/keep", "example.com/new"]}}),
            ),
        )
        .await
    {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 422),
        other => panic!("new finalizers on a deleting object must be refused, got {other:?}"),
    }
    api.patch(
        "fin",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("unfinalize");
    assert!(api.get_opt("fin").await.expect("get").is_none());

    // Background: dependents go once the owner is gone.
    let o1 = api
        .create(&PostParams::default(), &cm("owner1", &[]))
        .await
        .expect("owner");
    api.create(&PostParams::default(), &owned("dep1", &o1, false))
        .await
        .expect("dep");
    api.delete("owner1", &DeleteParams::background())
        .await
        .expect("delete");
    eventually("background GC", WAIT, || async {
        api.get_opt("dep1")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;

    // Foreground: the owner waits (foregroundDeletion finalizer) until blocking dependents are gone.
    let o2 = api
        .create(&PostParams::default(), &cm("owner2", &[]))
        .await
        .expect("owner");
    let mut d2 = owned("dep2", &o2, true);
    d2.metadata.finalizers = Some(vec!["example.com/slow".into()]);
    api.create(&PostParams::default(), &d2).await.expect("dep");
    let r = api
        .delete("owner2", &DeleteParams::foreground())
        .await
        .expect("delete")
        .left()
        .expect("owner pending");
    assert!(r
        .metadata
        .finalizers
        .unwrap_or_default()
        .contains(&"foregroundDeletion".to_string()));
    eventually("dependent marked for deletion", WAIT, || async {
        api.get("dep2")
            .await
            .expect("get")
            .metadata
            .deletion_timestamp
            .map(|_| ())
    })
    .await;
    assert!(
        api.get_opt("owner2").await.expect("get").is_some(),
        "owner waits for its blocking dependent"
    );
    api.patch(
        "dep2",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release dependent");
    eventually("foreground owner gone", WAIT, || async {
        api.get_opt("owner2")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;

    // Orphan: dependents stay, without the owner reference.
    let o3 = api
        .create(&PostParams::default(), &cm("owner3", &[]))
        .await
        .expect("owner");
    api.create(&PostParams::default(), &owned("dep3", &o3, false))
        .await
        .expect("dep");
    api.delete("owner3", &DeleteParams::orphan())
        .await
        .expect("delete");
    eventually("orphaning done", WAIT, || async {
        api.get_opt("owner3")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;
    let d3 = api.get("dep3").await.expect("orphan survives");
    assert!(d3.metadata.owner_references.unwrap_or_default().is_empty());
    c.shutdown().await;
}

#[tokio::test]
async fn namespace_deletion_removes_content() {
    let (c, client) = cluster().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            nss.get_opt(ns).await.expect("get").is_some(),
            "{ns} exists at start"
        );
    }
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap(),
    )
    .await
    .expect("ns");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    api.create(&PostParams::default(), &cm("x", &[]))
        .await
        .expect("create");
    let ghost: Api<ConfigMap> = Api::namespaced(client.clone(), "ghost");
    match ghost.create(&PostParams::default(), &cm("x", &[])).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 404),
        other => panic!("create in a missing namespace must be 404, got {other:?}"),
    }
    let marked = nss
        .delete("team", &DeleteParams::default())
        .await
        .expect("delete")
        .left()
        .expect("namespace pending");
    assert_eq!(
        marked.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    eventually("namespace gone", WAIT, || async {
        nss.get_opt("team")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(api
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .is_empty());
    c.shutdown().await;
}

fn node(name: &str, kubelet_port: u16) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"sim.barge.dev/simulated": "true"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}}},
    }))
    .expect("node")
}

#[tokio::test]
async fn pods_defaults_binding_graceful_deletion_and_pod_gc() {
    let (c, client) = cluster().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(&PostParams::default(), &node("n1", 1))
        .await
        .expect("node");
    let p = pods
        .create(&PostParams::default(), &pod("p"))
        .await
        .expect("pod");
    let spec = p.spec.clone().expect("spec");
    assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
    assert_eq!(spec.termination_grace_period_seconds, Some(30));
    assert_eq!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    assert_eq!(
        p.status.as_ref().and_then(|s| s.qos_class.as_deref()),
        Some("BestEffort")
    );

    // Built-in validation: label values are at most 63 characters, containers need an image.
    let mut bad = pod("bad");
    bad.metadata.labels = Some([("batch.barge.dev/job-name".to_string(), "j".repeat(64))].into());
    bad.spec.as_mut().unwrap().containers[0].image = None;
    match pods.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422);
            assert!(
                e.message
                    .contains("metadata.labels[batch.barge.dev/job-name]"),
                "{}",
                e.message
            );
            assert!(
                e.message
                    .contains("spec.containers[0].image: Required value"),
                "{}",
                e.message
            );
        }
        other => panic!("an invalid pod must be refused, got {other:?}"),
    }
    // An unbound pod is removed at once.
    pods.create(&PostParams::default(), &pod("unbound"))
        .await
        .expect("pod");
    let gone = pods
        .delete("unbound", &DeleteParams::default())
        .await
        .expect("delete")
        .left()
        .expect("pods answer with the object");
    assert!(gone.metadata.deletion_timestamp.is_none());
    assert!(pods.get_opt("unbound").await.expect("get").is_none());

    let bind = |name: &str| json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name}, "target": {"kind": "Node", "name": "n1"}});
    pods.create_subresource::<serde_json::Value, serde_json::Value>(
        "binding",
        "p",
        &PostParams::default(),
        &bind("p"),
    )
    .await
    .expect("bind");
    let bound = pods.get("p").await.expect("get");
    assert_eq!(bound.spec.and_then(|s| s.node_name).as_deref(), Some("n1"));
    assert!(bound
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.status == "True"));
    match pods
        .create_subresource::<serde_json::Value, serde_json::Value>(
            "binding",
            "p",
            &PostParams::default(),
            &bind("p"),
        )
        .await
    {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 409),
        other => panic!("binding twice must be a conflict, got {other:?}"),
    }
    // A bound pod is deleted gracefully: it stays until the kubelet deletes it with grace 0.
    let marked = pods
        .delete("p", &DeleteParams::default())
        .await
        .expect("delete")
        .left()
        .expect("pending");
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    assert!(pods.get_opt("p").await.expect("get").is_some());
    pods.delete(
        "p",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .expect("delete");
    assert!(pods.get_opt("p").await.expect("get").is_none());

    // Pod GC: a pod on a lost node is failed with DisruptionTarget and deleted (finalizer keeps it).
    let mut q = pod("q");
    q.metadata.finalizers = Some(vec!["batch.barge.dev/attempt-result".into()]);
    pods.create(&PostParams::default(), &q).await.expect("pod");
    pods.create_subresource::<serde_json::Value, serde_json::Value>(
        "binding",
        "q",
        &PostParams::default(),
        &bind("q"),
    )
    .await
    .expect("bind");
    assert_eq!(c.lose_node("n1").expect("lose"), 1);
    let failed = eventually("pod GC", WAIT, || async {
        let p = pods.get("q").await.expect("get");
        p.metadata.deletion_timestamp.is_some().then_some(p)
    })
    .await;
    let status = failed.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    assert!(status
        .conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "DisruptionTarget" && c.reason.as_deref() == Some("DeletionByPodGC")));
    pods.patch(
        "q",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    assert!(pods.get_opt("q").await.expect("get").is_none());
    assert!(nodes.get_opt("n1").await.expect("get").is_none());
    c.shutdown().await;
}

/// A pending graceful deletion changes only for a shorter grace period given explicitly
/// (`rest.BeforeDelete`): its deadline then moves by the difference; a delete without one
/// changes nothing, and grace 0 removes the pod.
#[tokio::test]
async fn a_pending_graceful_deletion_only_shortens_on_an_explicit_grace() {
    let (c, client) = cluster().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut p = pod("slow");
    p.spec.as_mut().unwrap().node_name = Some("n1".into());
    pods.create(&PostParams::default(), &p).await.expect("pod");
    let grace = |secs: u32| DeleteParams {
        grace_period_seconds: Some(secs),
        ..Default::default()
    };
    let first = pods
        .delete("slow", &grace(60))
        .await
        .expect("delete")
        .left()
        .expect("pending");
    assert_eq!(first.metadata.deletion_grace_period_seconds, Some(60));
    let deadline = |p: &Pod| {
        p.metadata
            .deletion_timestamp
            .clone()
            .expect("deletionTimestamp")
            .0
    };
    let unchanged = pods
        .delete("slow", &DeleteParams::default())
        .await
        .expect("delete")
        .left()
        .expect("pending");
    assert_eq!(unchanged.metadata.deletion_grace_period_seconds, Some(60));
    assert_eq!(deadline(&unchanged), deadline(&first));
    let longer = pods
        .delete("slow", &grace(90))
        .await
        .expect("delete")
        .left()
        .expect("pending");
    assert_eq!(longer.metadata.deletion_grace_period_seconds, Some(60));
    let shorter = pods
        .delete("slow", &grace(20))
        .await
        .expect("delete")
        .left()
        .expect("pending");
    assert_eq!(shorter.metadata.deletion_grace_period_seconds, Some(20));
    assert_eq!(
        deadline(&first).duration_since(deadline(&shorter)),
        jiff::SignedDuration::from_secs(40)
    );
    pods.delete("slow", &grace(0)).await.expect("force delete");
    assert!(pods.get_opt("slow").await.expect("get").is_none());
    c.shutdown().await;
}

#[tokio::test]
async fn faults_and_statistics() {
    let (c, client) = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    c.faults().set(FaultConfig {
        error_rate: 1.0,
        error_codes: vec![500],
        verbs: vec!["create".into()],
        ..Default::default()
    });
    match api.create(&PostParams::default(), &cm("x", &[])).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 500),
        other => panic!("expected the injected 500, got {other:?}"),
    }
    api.list(&ListParams::default())
        .await
        .expect("lists are not faulted");
    // 500 and 409 are not retried by kube-rs (429 is), so every failure reaches the test.
    c.faults().set(FaultConfig {
        error_rate: 0.5,
        error_codes: vec![500, 409],
        verbs: vec!["create".into()],
        ..Default::default()
    });
    let mut failures = 0;
    for i in 0..60 {
        if api
            .create(&PostParams::default(), &cm(&format!("y{i}"), &[]))
            .await
            .is_err()
        {
            failures += 1;
        }
    }
    assert!(
        (10..=50).contains(&failures),
        "about half of 60 creates fail, got {failures}"
    );
    c.faults().set(FaultConfig {
        latency_ms: 150,
        ..Default::default()
    });
    let t = std::time::Instant::now();
    api.list(&ListParams::default()).await.expect("list");
    assert!(t.elapsed() >= Duration::from_millis(150));
    c.faults().clear();
    let s = c.stats();
    assert_eq!(s.count("create", "configmaps"), 61);
    assert!(s.count("list", "configmaps") >= 2);
    assert!(s.writes >= 61);
    assert!(s.faults_injected >= 11);
    c.shutdown().await;
}

/// `ClusterConfig::write_latency` slows every write (as etcd's commit does) and no read.
#[tokio::test]
async fn write_latency_delays_every_write_and_no_read() {
    const LATENCY: Duration = Duration::from_millis(120);
    let c = Cluster::start(ClusterConfig {
        write_latency: LATENCY,
        ..Default::default()
    })
    .await
    .expect("cluster starts");
    let api: Api<ConfigMap> = Api::namespaced(c.client().expect("client"), "default");
    let timed = std::time::Instant::now;
    let t = timed();
    api.create(&PostParams::default(), &cm("slow", &[]))
        .await
        .expect("create");
    assert!(t.elapsed() >= LATENCY, "create took {:?}", t.elapsed());
    let t = timed();
    api.patch(
        "slow",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "w"}})),
    )
    .await
    .expect("patch");
    assert!(t.elapsed() >= LATENCY, "patch took {:?}", t.elapsed());
    let t = timed();
    api.delete("slow", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(t.elapsed() >= LATENCY, "delete took {:?}", t.elapsed());
    let t = timed();
    for _ in 0..5 {
        api.list(&ListParams::default()).await.expect("list");
        assert!(api.get_opt("slow").await.expect("get").is_none());
    }
    assert!(
        t.elapsed() < LATENCY,
        "ten reads took {:?}: reads must not wait",
        t.elapsed()
    );
    c.shutdown().await;
}

#[tokio::test]
async fn events_are_seen_through_both_versions() {
    let (c, client) = cluster().await;
    let v1: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
    let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "barge", "reportingInstance": "barge-0",
        "action": "Submit", "reason": "Submitted", "note": "job submitted", "type": "Normal",
        "regarding": {"apiVersion": "batch.barge.dev/v1alpha1", "kind": "Job", "name": "j1", "namespace": "default", "uid": "u-1"}});
    v1.create(&PostParams::default(), &serde_json::from_value(ev).unwrap())
        .await
        .expect("create events.k8s.io/v1");
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client, "default");
    let found = core
        .list(&ListParams::default().fields("involvedObject.name=j1,involvedObject.kind=Job"))
        .await
        .expect("list");
    assert_eq!(found.items.len(), 1);
    let e = &found.items[0];
    assert_eq!(e.message.as_deref(), Some("job submitted"));
    assert_eq!(e.reporting_component.as_deref(), Some("barge"));
    assert_eq!(e.involved_object.uid.as_deref(), Some("u-1"));
    let back = v1.get("e1").await.expect("get");
    assert_eq!(back.note.as_deref(), Some("job submitted"));
    c.shutdown().await;
}

#[tokio::test]
async fn pod_logs_are_proxied_to_the_nodes_kubelet() {
    use axum::extract::{Path, Query};
    let (c, client) = cluster().await;
    // A stand-in kubelet log endpoint.
    let app = axum::Router::new().route(
        "/containerLogs/{ns}/{pod}/{container}",
        axum::routing::get(
            |Path((ns, pod, container)): Path<(String, String, String)>,
             Query(q): Query<BTreeMap<String, String>>| async move {
                format!(
                    "log of {ns}/{pod}/{container} tail={}\n",
                    q.get("tailLines").cloned().unwrap_or_default()
                )
            },
        ),
    );
    // Served over HTTPS with a self-signed certificate, as a real kubelet's port is.
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = tcp.local_addr().expect("addr").port();
    let tls = barge_sim::tls::self_signed_server(&["127.0.0.1"]).expect("certificate");
    let listener = barge_sim::tls::HttpsListener::new(tcp, tls).expect("listener");
    let https_app = app.clone();
    tokio::spawn(async move { axum::serve(listener, https_app).await });
    // A kubelet port that answers plain HTTP: kube-apiserver cannot read logs from it.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let plain_port = plain.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(plain, app).await });
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(&PostParams::default(), &node("n1", port))
        .await
        .expect("node");
    nodes
        .create(&PostParams::default(), &node("plain", plain_port))
        .await
        .expect("node");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut p = pod("p");
    p.spec.as_mut().unwrap().node_name = Some("n1".into());
    pods.create(&PostParams::default(), &p).await.expect("pod");
    let text = pods
        .logs(
            "p",
            &kube::api::LogParams {
                tail_lines: Some(5),
                ..Default::default()
            },
        )
        .await
        .expect("logs");
    assert_eq!(text, "log of default/p/main tail=5\n");
    let mut on_plain = pod("on-plain");
    on_plain.spec.as_mut().unwrap().node_name = Some("plain".into());
    pods.create(&PostParams::default(), &on_plain)
        .await
        .expect("pod");
    match pods.logs("on-plain", &Default::default()).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 500);
            assert!(
                e.message.starts_with(&format!(
                    "Get \"https://127.0.0.1:{plain_port}/containerLogs/default/on-plain/main\": "
                )),
                "{}",
                e.message
            );
        }
        other => panic!("a plain-HTTP kubelet must not serve logs, got {other:?}"),
    }
    let mut two: Pod = serde_json::from_value(json!({"metadata": {"name": "two"}, "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]}})).unwrap();
    two.metadata.namespace = None;
    pods.create(&PostParams::default(), &two)
        .await
        .expect("pod");
    match pods.logs("two", &Default::default()).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 400);
            assert!(
                e.message.contains(
                    "a container name must be specified for pod two, choose one of: [a b]"
                ),
                "{}",
                e.message
            );
        }
        other => panic!("expected a container-name error, got {other:?}"),
    }
    match pods.logs("nope", &Default::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
    c.shutdown().await;
}

#[tokio::test]
async fn kube_runtime_recorder_events_show_in_core_v1() {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let (c, client) = cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let target = cms
        .create(&PostParams::default(), &cm("target", &[]))
        .await
        .expect("create");
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "barge".into(),
            instance: Some("barge-0".into()),
        },
    );
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: target.metadata.name.clone(),
        namespace: Some("default".into()),
        uid: target.metadata.uid.clone(),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Normal,
        reason: "Synced".into(),
        note: Some("synced once".into()),
        action: "Sync".into(),
        secondary: None,
    };
    recorder
        .publish(&ev, &reference)
        .await
        .expect("first publish creates");
    recorder
        .publish(&ev, &reference)
        .await
        .expect("second publish patches the series");
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client, "default");
    let uid = target.metadata.uid.clone().unwrap_or_default();
    let found = core
        .list(&ListParams::default().fields(&format!(
            "involvedObject.uid={uid},involvedObject.kind=ConfigMap"
        )))
        .await
        .expect("list");
    assert_eq!(found.items.len(), 1, "one event, with a series");
    let e = &found.items[0];
    assert_eq!(e.reason.as_deref(), Some("Synced"));
    assert_eq!(e.series.as_ref().and_then(|s| s.count), Some(2));
    c.shutdown().await;
}

#[tokio::test]
async fn status_by_server_side_apply_on_the_status_subresource() {
    let (c, client) = cluster().await;
    let api = install_widgets(&client).await;
    api.create(&PostParams::default(), &widget("w", 3))
        .await
        .expect("create");
    let status = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "status": {"phase": "Running"}});
    let applied = api
        .patch_status(
            "w",
            &PatchParams::apply("barge-status").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("status apply");
    assert_eq!(applied.data["status"]["phase"], "Running");
    assert_eq!(
        applied.data["spec"]["size"], 3,
        "spec untouched by a status apply"
    );
    let mf = applied.metadata.managed_fields.unwrap_or_default();
    assert!(mf
        .iter()
        .any(|m| m.manager.as_deref() == Some("barge-status")
            && m.subresource.as_deref() == Some("status")));
    // Applying the same status again writes nothing.
    let again = api
        .patch_status(
            "w",
            &PatchParams::apply("barge-status").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("status apply");
    assert_eq!(
        again.metadata.resource_version,
        applied.metadata.resource_version
    );
    c.shutdown().await;
}

#[tokio::test]
async fn admin_endpoints_over_http() {
    let (c, client) = cluster().await;
    let send = |method: &str, path: &str, body: Option<serde_json::Value>| {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("Content-Type", "application/json")
            .body(
                body.map(|b| serde_json::to_vec(&b).unwrap())
                    .unwrap_or_default(),
            )
            .expect("request");
        let client = client.clone();
        async move {
            serde_json::from_str::<serde_json::Value>(
                &client.request_text(req).await.expect("admin request"),
            )
            .expect("JSON")
        }
    };
    let set = send("PUT", "/sim/v1/faults", Some(json!({"errorRate": 1.0, "errorCodes": [500], "resources": ["secrets"], "latencyMs": 0}))).await;
    assert_eq!(set["errorRate"], 1.0);
    assert_eq!(c.faults().get().resources, vec!["secrets".to_string()]);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "default");
    assert!(secrets.list(&ListParams::default()).await.is_err());
    send("DELETE", "/sim/v1/faults", None).await;
    secrets
        .list(&ListParams::default())
        .await
        .expect("faults cleared");
    let stats = send("GET", "/sim/v1/stats", None).await;
    assert_eq!(stats["requests"]["list"]["secrets"], 2);
    assert_eq!(stats["faultsInjected"], 1);
    send("POST", "/sim/v1/stats/reset", None).await;
    assert_eq!(c.stats().total, 0);
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(&PostParams::default(), &node("n9", 1))
        .await
        .expect("node");
    let lost = send("POST", "/sim/v1/nodes/n9/lose", None).await;
    assert_eq!(lost["lost"], true);
    assert!(nodes.get_opt("n9").await.expect("get").is_none());
    let compacted = send("POST", "/sim/v1/compact", None).await;
    assert!(compacted["compactedTo"].as_str().is_some());
    c.shutdown().await;
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let (c, client) = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let out = api
        .create(&dry, &cm("dry", &[]))
        .await
        .expect("dry-run create");
    assert_eq!(out.metadata.name.as_deref(), Some("dry"));
    assert!(api.get_opt("dry").await.expect("get").is_none());
    let real = api
        .create(&PostParams::default(), &cm("real", &[]))
        .await
        .expect("create");
    let pp = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    api.patch(
        "real",
        &pp,
        &Patch::Merge(json!({"data": {"k": "changed"}})),
    )
    .await
    .expect("dry-run patch");
    let now = api.get("real").await.expect("get");
    assert_eq!(
        now.data.unwrap_or_default().get("k").map(String::as_str),
        Some("v")
    );
    assert_eq!(
        now.metadata.resource_version,
        real.metadata.resource_version
    );
    let dp = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    api.delete("real", &dp).await.expect("dry-run delete");
    assert!(api.get_opt("real").await.expect("get").is_some());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_watcher_never_blocks_writers_and_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = Cluster::start(ClusterConfig {
        watch_buffer: Some(16),
        ..Default::default()
    })
    .await
    .expect("cluster");
    let client = c.client().expect("client");
    // A watcher that sends its request and then reads nothing.
    let mut sock = tokio::net::TcpStream::connect(c.addr())
        .await
        .expect("connect");
    let req = format!(
        "GET /api/v1/namespaces/default/configmaps?watch=true HTTP/1.1\r\nHost: {}\r\n\r\n",
        c.addr()
    );
    sock.write_all(req.as_bytes()).await.expect("send watch");
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let payload = "x".repeat(16384);
    let started = std::time::Instant::now();
    for i in 0..1000 {
        let mut o = cm(&format!("big-{i}"), &[]);
        o.data = Some([("payload".to_string(), payload.clone())].into());
        api.create(&PostParams::default(), &o)
            .await
            .expect("create");
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "writes were not held up by the stuck watcher"
    );
    // The server ended the lagging watch: reading now reaches the end of its chunked body.
    let mut buf = Vec::new();
    let ended = tokio::time::timeout(WAIT, async {
        let mut chunk = [0u8; 65536];
        loop {
            let n = sock.read(&mut chunk).await.expect("read");
            buf.extend_from_slice(&chunk[..n]);
            if n == 0 || buf.ends_with(b"\r\n0\r\n\r\n") {
                return;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the lagging watch was ended by the server");
    let events = String::from_utf8_lossy(&buf)
        .matches("\"type\":\"ADDED\"")
        .count();
    assert!(
        events < 3000,
        "the watcher was cut off before the end ({events} events)"
    );
    c.shutdown().await;
}
