use super::*;
use crate::apimachinery::builtin::builtin_kind;
use serde_json::json;

fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "j-1",
            "namespace": "ns",
            "labels": {"app": "batch", "batch.barge.dev/attempt": "1"},
            "finalizers": ["batch.barge.dev/attempt-result"],
            "ownerReferences": [{"apiVersion": "batch.barge.dev/v1alpha1", "kind": "Job", "name": "j", "uid": "u1"}]
        },
        "spec": {
            "containers": [
                {"name": "main", "image": "busybox", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                 "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                {"name": "sidecar", "image": "envoy"}
            ],
            "tolerations": [{"key": "a", "operator": "Exists"}],
            "volumes": [{"name": "data", "emptyDir": {}}]
        },
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}
    })
}

fn smp(original: &Value, patch: Value, group: &str, kind: &str) -> Value {
    let k = builtin_kind(group, kind).expect("built-in kind");
    strategic_merge_patch(original, &patch, &k).unwrap_or_else(|e| panic!("{e}"))
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

// ---- JSON merge patch --------------------------------------------------------------------------

#[test]
fn merge_patch_follows_rfc_7386() {
    let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
    merge_patch(
        &mut doc,
        &json!({"a": "z", "c": {"f": null}, "l": [3], "n": {"x": null, "y": 1}}),
    );
    assert_eq!(
        doc,
        json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": {"y": 1}})
    );
    let mut scalar = json!("x");
    merge_patch(&mut scalar, &json!({"a": 1}));
    assert_eq!(scalar, json!({"a": 1}));
    let mut obj = json!({"a": 1});
    merge_patch(&mut obj, &json!(["replaced"]));
    assert_eq!(obj, json!(["replaced"]));
}

#[test]
fn merge_patch_of_a_job_status_like_kube_rs_sends_it() {
    let mut job = json!({"spec": {"jobQueue": "q"}, "status": {"status": "RUNNABLE", "attempts": [{"n": 1}]}});
    merge_patch(
        &mut job,
        &json!({"status": {"status": "STARTING", "attempts": null}}),
    );
    assert_eq!(
        job,
        json!({"spec": {"jobQueue": "q"}, "status": {"status": "STARTING"}})
    );
}

// ---- JSON patch --------------------------------------------------------------------------------

#[test]
fn json_patch_applies_operations() {
    let mut doc = pod();
    json_patch(
        &mut doc,
        &json!([
            {"op": "test", "path": "/metadata/name", "value": "j-1"},
            {"op": "replace", "path": "/spec/containers/0/image", "value": "alpine"},
            {"op": "add", "path": "/metadata/labels/new", "value": "x"},
            {"op": "remove", "path": "/spec/tolerations"},
            {"op": "add", "path": "/metadata/finalizers/-", "value": "other"}
        ]),
    )
    .unwrap();
    assert_eq!(doc["spec"]["containers"][0]["image"], "alpine");
    assert_eq!(doc["metadata"]["labels"]["new"], "x");
    assert!(doc["spec"].get("tolerations").is_none());
    assert_eq!(
        doc["metadata"]["finalizers"],
        json!(["batch.barge.dev/attempt-result", "other"])
    );
}

#[test]
fn json_patch_is_atomic_and_reports_422_or_400() {
    let mut doc = pod();
    let before = doc.clone();
    let err = json_patch(
        &mut doc,
        &json!([
            {"op": "replace", "path": "/spec/containers/0/image", "value": "alpine"},
            {"op": "test", "path": "/metadata/name", "value": "other"}
        ]),
    )
    .unwrap_err();
    assert_eq!(err.status_code(), 422);
    assert_eq!(doc, before, "a failed patch leaves the object unchanged");
    let err = json_patch(
        &mut doc,
        &json!([{"op": "remove", "path": "/spec/missing"}]),
    )
    .unwrap_err();
    assert_eq!(err.kind, PatchErrorKind::Unprocessable);
    let err = json_patch(&mut doc, &json!({"op": "add"})).unwrap_err();
    assert_eq!(err.status_code(), 400);
    let err = json_patch(&mut doc, &json!([{"op": "frobnicate", "path": "/a"}])).unwrap_err();
    assert_eq!(err.kind, PatchErrorKind::BadRequest);
    assert_eq!(err.to_status()["reason"], "BadRequest");
}

#[test]
fn json_patch_test_of_null_passes_on_a_missing_member_as_in_kubernetes() {
    // kube-rs' finalizer helper adds the first finalizer this way.
    let mut doc = pod();
    doc["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("finalizers");
    json_patch(
        &mut doc,
        &json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["batch.barge.dev/in-use"]}
        ]),
    )
    .expect("test of null on a missing member passes");
    assert_eq!(
        doc["metadata"]["finalizers"],
        json!(["batch.barge.dev/in-use"])
    );
    // It fails once the member exists with another value.
    let err = json_patch(
        &mut doc,
        &json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]),
    )
    .unwrap_err();
    assert_eq!(err.status_code(), 422);
}

// ---- strategic merge patch ---------------------------------------------------------------------

#[test]
fn smp_merges_containers_and_env_by_name() {
    let out = smp(
        &pod(),
        json!({"spec": {"containers": [{"name": "main", "image": "busybox:1.36", "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}]}]}}),
        "",
        "Pod",
    );
    let main = &out["spec"]["containers"][0];
    assert_eq!(names(&out["spec"]["containers"]), vec!["main", "sidecar"]);
    assert_eq!(main["image"], "busybox:1.36");
    assert_eq!(
        main["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}]),
        "untouched fields stay"
    );
    // Patch items in patch order; server-only items before them when they came first live.
    assert_eq!(
        main["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "two"}, {"name": "C", "value": "3"}])
    );
}

#[test]
fn smp_places_new_items_like_the_api_server() {
    // Without $setElementOrder, a new item goes before the server-only ones.
    let out = smp(
        &pod(),
        json!({"spec": {"containers": [{"name": "debug", "image": "alpine"}]}}),
        "",
        "Pod",
    );
    assert_eq!(
        names(&out["spec"]["containers"]),
        vec!["debug", "main", "sidecar"]
    );
    // kubectl apply sends $setElementOrder with the full order.
    let out = smp(
        &pod(),
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "main"}, {"name": "sidecar"}, {"name": "debug"}],
            "containers": [{"name": "debug", "image": "alpine"}]
        }}),
        "",
        "Pod",
    );
    assert_eq!(
        names(&out["spec"]["containers"]),
        vec!["main", "sidecar", "debug"]
    );
    assert!(out["spec"].get("$setElementOrder/containers").is_none());
    // Reordering with the directive alone.
    let out = smp(
        &pod(),
        json!({"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "main"}]}}),
        "",
        "Pod",
    );
    assert_eq!(names(&out["spec"]["containers"]), vec!["sidecar", "main"]);
}

#[test]
fn smp_list_directives() {
    let out = smp(
        &pod(),
        json!({"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}),
        "",
        "Pod",
    );
    assert_eq!(names(&out["spec"]["containers"]), vec!["main"]);
    let out = smp(
        &pod(),
        json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]}}),
        "",
        "Pod",
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "only", "image": "x"}])
    );
    let k = builtin_kind("", "Pod").unwrap();
    let err = strategic_merge_patch(
        &pod(),
        &json!({"spec": {"containers": [{"name": "x", "$patch": "merge"}]}}),
        &k,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "merging lists cannot yet be specified in the patch"
    );
}

#[test]
fn smp_map_directives() {
    let out = smp(
        &pod(),
        json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}}),
        "",
        "Pod",
    );
    assert_eq!(out["metadata"]["labels"], json!({"only": "this"}));
    let out = smp(
        &pod(),
        json!({"spec": {"volumes": [{"name": "data", "emptyDir": {"$patch": "delete"}}]}}),
        "",
        "Pod",
    );
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name": "data", "emptyDir": {}}])
    );
    let k = builtin_kind("", "Pod").unwrap();
    let err = strategic_merge_patch(
        &pod(),
        &json!({"metadata": {"labels": {"$patch": "explode"}}}),
        &k,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "unknown patch type: explode in map: map[$patch:explode]"
    );
    assert_eq!(err.status_code(), 500);
}

#[test]
fn smp_primitive_lists_merge_as_sets_with_deletions() {
    let out = smp(
        &pod(),
        json!({"metadata": {"finalizers": ["other", "batch.barge.dev/attempt-result"]}}),
        "",
        "Pod",
    );
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["other", "batch.barge.dev/attempt-result"])
    );
    let out = smp(
        &pod(),
        json!({"metadata": {"finalizers": ["other"]}}),
        "",
        "Pod",
    );
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["other", "batch.barge.dev/attempt-result"])
    );
    let out = smp(
        &pod(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["batch.barge.dev/attempt-result"]}}),
        "",
        "Pod",
    );
    assert_eq!(out["metadata"]["finalizers"], json!([]));
    // Removing the finalizer the way kubectl edit / controllers do with $setElementOrder.
    let out = smp(
        &pod(),
        json!({"metadata": {"$setElementOrder/finalizers": [], "$deleteFromPrimitiveList/finalizers": ["batch.barge.dev/attempt-result"]}}),
        "",
        "Pod",
    );
    assert_eq!(out["metadata"]["finalizers"], json!([]));
}

#[test]
fn smp_replaces_lists_without_a_merge_strategy_and_deletes_nulls() {
    let out = smp(
        &pod(),
        json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}, "status": {"phase": null}}),
        "",
        "Pod",
    );
    assert_eq!(
        out["spec"]["tolerations"],
        json!([{"key": "b", "operator": "Exists"}])
    );
    assert!(out["status"].get("phase").is_none());
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "PodScheduled", "status": "True"}])
    );
}

#[test]
fn smp_status_conditions_and_owner_references() {
    let out = smp(
        &pod(),
        json!({
            "metadata": {"ownerReferences": [{"uid": "u1", "controller": true}]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True", "reason": "Bound"}]}
        }),
        "",
        "Pod",
    );
    assert_eq!(out["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(out["metadata"]["ownerReferences"][0]["name"], "j");
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True", "reason": "Bound"}])
    );
}

#[test]
fn smp_retain_keys_clears_unlisted_fields() {
    let deploy = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}, "replicas": 2}});
    let out = smp(
        &deploy,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        "apps",
        "Deployment",
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    let k = builtin_kind("apps", "Deployment").unwrap();
    let err = strategic_merge_patch(
        &deploy,
        &json!({"spec": {"strategy": {"$retainKeys": ["type"], "other": 1}}}),
        &k,
    )
    .unwrap_err();
    assert_eq!(err.status_code(), 400);
    assert_eq!(err.message, "invalid patch format of retainKeys");
}

#[test]
fn smp_on_templates_nodes_services_and_config_maps() {
    let deploy = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "env": [{"name": "X", "value": "1"}]}]}}}});
    let out = smp(
        &deploy,
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "env": [{"name": "Y", "value": "2"}]}]}}}}),
        "apps",
        "Deployment",
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let node = json!({"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}], "conditions": [{"type": "Ready", "status": "False"}]}});
    let out = smp(
        &node,
        json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}], "conditions": [{"type": "Ready", "status": "True"}]}}),
        "",
        "Node",
    );
    assert_eq!(out["status"]["addresses"].as_array().unwrap().len(), 2);
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}])
    );

    let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
    let out = smp(
        &svc,
        json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
        "",
        "Service",
    );
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
    );

    let cm = json!({"data": {"a": "1", "b": "2"}});
    let out = smp(&cm, json!({"data": {"b": null, "c": "3"}}), "", "ConfigMap");
    assert_eq!(out["data"], json!({"a": "1", "c": "3"}));
}

#[test]
fn smp_new_values_carry_no_directives() {
    let bare = json!({"metadata": {"name": "p"}});
    let out = smp(
        &bare,
        json!({"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "a", "image": "x"}]}}),
        "",
        "Pod",
    );
    assert_eq!(
        out["spec"],
        json!({"containers": [{"name": "a", "image": "x"}]})
    );
}

#[test]
fn smp_errors() {
    let k = builtin_kind("", "Pod").unwrap();
    let err = strategic_merge_patch(&pod(), &json!([1]), &k).unwrap_err();
    assert_eq!(err.status_code(), 400);
    assert_eq!(
        err.message,
        "json: cannot unmarshal array into Go value of type map[string]interface {}"
    );
    let err = strategic_merge_patch(
        &pod(),
        &json!({"spec": {"containers": [{"image": "no-name"}]}}),
        &k,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "map: map[image:no-name] does not contain declared merge key: name"
    );
    let err =
        strategic_merge_patch(&pod(), &json!({"spec": {"containers": ["x"]}}), &k).unwrap_err();
    assert_eq!(err.message, "list element types are not identical");
    let err = strategic_merge_patch(
        &pod(),
        &json!({"spec": {"$setElementOrder/containers": [{"name": "main"}], "containers": [{"name": "sidecar", "image": "y"}]}}),
        &k,
    )
    .unwrap_err();
    assert!(
        err.message.starts_with("The order in patch list:"),
        "{}",
        err.message
    );
}

#[test]
fn unsupported_media_type_for_custom_resources() {
    let st = unsupported_media_type_status(STRATEGIC_MERGE_PATCH_CONTENT_TYPE);
    assert_eq!(st["code"], 415);
    assert_eq!(st["reason"], "UnsupportedMediaType");
    assert!(st["message"]
        .as_str()
        .unwrap()
        .contains(APPLY_PATCH_CONTENT_TYPE));
}

#[test]
fn json_patch_of_a_given_up_document_equals_the_atomic_one() {
    let patches = [
        json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": "batch.barge.dev/attempt-result"},
            {"op": "remove", "path": "/metadata/finalizers/0"},
            {"op": "add", "path": "/metadata/labels/batch.barge.dev~1disposable", "value": "true"}
        ]),
        json!([
            {"op": "test", "path": "/metadata/missing", "value": null},
            {"op": "add", "path": "/metadata/missing", "value": ["x"]},
            {"op": "test", "path": "/metadata/missing", "value": null}
        ]),
        json!([
            {"op": "replace", "path": "/spec/containers/0/image", "value": "alpine"},
            {"op": "test", "path": "/metadata/name", "value": "other"}
        ]),
        json!([{"op": "remove", "path": "/spec/missing"}]),
        json!([{"op": "move", "from": "/spec/tolerations", "path": "/spec/t2"},
               {"op": "copy", "from": "/spec/t2", "path": "/spec/t3"}]),
        json!({"op": "add"}),
        json!([{"op": "frobnicate", "path": "/a"}]),
        json!([]),
    ];
    for p in patches {
        let mut atomic = pod();
        let a = json_patch(&mut atomic, &p).map(|()| atomic);
        let owned = json_patch_owned(pod(), &p);
        match (a, owned) {
            (Ok(a), Ok(o)) => assert_eq!(a, o, "{p}"),
            (Err(a), Err(o)) => {
                assert_eq!(a.to_status(), o.to_status(), "{p}");
            }
            (a, o) => panic!("{p}: {a:?} vs {o:?}"),
        }
    }
}
