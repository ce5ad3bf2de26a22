use super::*;
use crate::apimachinery::builtin::builtin_kind;
use crate::apimachinery::validation::CompiledSchema;
use serde_json::json;

const T0: &str = "2025-01-01T00:00:00Z";
const T1: &str = "2025-01-01T00:01:00Z";
const T2: &str = "2025-01-01T00:02:00Z";

fn deployment_kind() -> BuiltinKind {
    builtin_kind("apps", "Deployment").unwrap()
}

fn entries(obj: &Value) -> Vec<Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
        .unwrap_or_else(|| {
            panic!(
                "no {operation} entry for {manager} in {}",
                obj["metadata"]["managedFields"]
            )
        })
}

fn config_map(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns", "labels": {"app": "x"}}, "data": data})
}

#[test]
fn create_by_apply_records_the_applied_fields() {
    let cm = builtin_kind("", "ConfigMap").unwrap();
    let out = server_side_apply(
        None,
        &config_map(json!({"a": "1"})),
        "kubectl",
        false,
        &cm,
        T0,
        None,
    )
    .unwrap();
    assert_eq!(out["data"], json!({"a": "1"}));
    let e = entries(&out);
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0],
        json!({
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}
        })
    );
}

#[test]
fn reapplying_without_a_field_removes_it() {
    let cm = builtin_kind("", "ConfigMap").unwrap();
    let v1 = server_side_apply(
        None,
        &config_map(json!({"a": "1", "b": "2"})),
        "kubectl",
        false,
        &cm,
        T0,
        None,
    )
    .unwrap();
    let v2 = server_side_apply(
        Some(&v1),
        &config_map(json!({"a": "1"})),
        "kubectl",
        false,
        &cm,
        T1,
        None,
    )
    .unwrap();
    assert_eq!(v2["data"], json!({"a": "1"}));
    assert_eq!(
        entry(&v2, "kubectl", "Apply")["fieldsV1"]["f:data"],
        json!({"f:a": {}})
    );
    assert_eq!(entry(&v2, "kubectl", "Apply")["time"], T1);
    // A no-op apply keeps the entry's time.
    let v3 = server_side_apply(
        Some(&v2),
        &config_map(json!({"a": "1"})),
        "kubectl",
        false,
        &cm,
        T2,
        None,
    )
    .unwrap();
    assert_eq!(entry(&v3, "kubectl", "Apply")["time"], T1);
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}]}
            }
        }
    })
}

#[test]
fn another_managers_change_conflicts_unless_forced() {
    let k = deployment_kind();
    let applied = server_side_apply(
        None,
        &deployment(1, "nginx:1"),
        "kubectl",
        false,
        &k,
        T0,
        None,
    )
    .unwrap();
    // An autoscaler updates replicas with a plain update.
    let mut scaled = applied.clone();
    scaled["spec"]["replicas"] = json!(5);
    track_update(Some(&applied), &mut scaled, "autoscaler", T1, None, &k);
    assert_eq!(
        entry(&scaled, "autoscaler", "Update")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert!(
        entry(&scaled, "kubectl", "Apply")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none(),
        "kubectl lost replicas"
    );

    // kubectl applies a different replica count: conflict.
    let conflict = server_side_apply(
        Some(&scaled),
        &deployment(2, "nginx:1"),
        "kubectl",
        false,
        &k,
        T2,
        None,
    )
    .unwrap_err();
    assert_eq!(
        conflict.conflicts,
        vec![(
            "\"autoscaler\" using apps/v1".to_string(),
            ".spec.replicas".to_string()
        )]
    );
    assert_eq!(
        conflict.message(),
        "Apply failed with 1 conflict: conflict with \"autoscaler\" using apps/v1: .spec.replicas"
    );
    let status = conflict_status(&conflict, "apps", "Deployment", "web");
    assert_eq!(status["code"], 409);
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "FieldManagerConflict"
    );
    assert_eq!(status["details"]["causes"][0]["field"], ".spec.replicas");
    assert_eq!(
        status["details"]["causes"][0]["message"],
        "conflict with \"autoscaler\" using apps/v1"
    );

    // Forced, kubectl takes replicas over; the autoscaler's entry disappears (it owns nothing).
    let forced = server_side_apply(
        Some(&scaled),
        &deployment(2, "nginx:1"),
        "kubectl",
        true,
        &k,
        T2,
        None,
    )
    .unwrap();
    assert_eq!(forced["spec"]["replicas"], 2);
    assert!(entries(&forced)
        .iter()
        .all(|e| e["manager"] != "autoscaler"));
    assert!(entry(&forced, "kubectl", "Apply")["fieldsV1"]["f:spec"]
        .get("f:replicas")
        .is_some());
}

#[test]
fn applying_the_same_value_shares_ownership() {
    let k = deployment_kind();
    let a = server_side_apply(
        None,
        &deployment(3, "nginx:1"),
        "kubectl",
        false,
        &k,
        T0,
        None,
    )
    .unwrap();
    let b = server_side_apply(Some(&a), &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}}), "helm", false, &k, T1, None).unwrap();
    assert_eq!(entries(&b).len(), 2);
    assert!(entry(&b, "helm", "Apply")["fieldsV1"]["f:spec"]
        .get("f:replicas")
        .is_some());
    assert!(entry(&b, "kubectl", "Apply")["fieldsV1"]["f:spec"]
        .get("f:replicas")
        .is_some());
    // kubectl stops applying replicas: helm still owns it, so it stays.
    let mut without = deployment(3, "nginx:1");
    without["spec"].as_object_mut().unwrap().remove("replicas");
    let c = server_side_apply(Some(&b), &without, "kubectl", false, &k, T2, None).unwrap();
    assert_eq!(c["spec"]["replicas"], 3);
    // helm stops too: now nobody owns it and it is removed.
    let d = server_side_apply(
        Some(&c),
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
        "helm",
        false,
        &k,
        T2,
        None,
    )
    .unwrap();
    assert!(d["spec"].get("replicas").is_none());
    assert!(
        entries(&d).iter().all(|e| e["manager"] != "helm"),
        "an empty apply entry is dropped"
    );
}

#[test]
fn list_map_items_are_owned_per_key() {
    let pod = builtin_kind("", "Pod").unwrap();
    let base = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    let mut a_cfg = base.clone();
    a_cfg["spec"] = json!({"containers": [{"name": "main", "image": "busybox"}]});
    let mut b_cfg = base.clone();
    b_cfg["spec"] = json!({"containers": [{"name": "sidecar", "image": "envoy"}]});
    let v1 = server_side_apply(None, &a_cfg, "a", false, &pod, T0, None).unwrap();
    let v2 = server_side_apply(Some(&v1), &b_cfg, "b", false, &pod, T1, None).unwrap();
    let names: Vec<&str> = v2["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["main", "sidecar"]);
    assert_eq!(
        entry(&v2, "a", "Apply")["fieldsV1"]["f:spec"]["f:containers"],
        json!({"k:{\"name\":\"main\"}": {".": {}, "f:image": {}, "f:name": {}}})
    );
    // a drops its container: only a's item goes.
    let mut a_empty = base.clone();
    a_empty["spec"] = json!({"containers": []});
    let v3 = server_side_apply(Some(&v2), &a_empty, "a", false, &pod, T2, None).unwrap();
    assert_eq!(
        v3["spec"]["containers"],
        json!([{"name": "sidecar", "image": "envoy"}])
    );
}

#[test]
fn ports_are_keyed_with_the_protocol_default() {
    let k = deployment_kind();
    let out = server_side_apply(
        None,
        &deployment(1, "nginx:1"),
        "kubectl",
        false,
        &k,
        T0,
        None,
    )
    .unwrap();
    let c = &entry(&out, "kubectl", "Apply")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]
        ["f:containers"]["k:{\"name\":\"web\"}"];
    assert!(
        c["f:ports"]
            .get("k:{\"containerPort\":80,\"protocol\":\"TCP\"}")
            .is_some(),
        "{c}"
    );
    // selector is an atomic map: owned as one leaf.
    assert_eq!(
        entry(&out, "kubectl", "Apply")["fieldsV1"]["f:spec"]["f:selector"],
        json!({"f:matchLabels": {}})
    );
}

#[test]
fn sets_and_atomic_lists() {
    let pod = builtin_kind("", "Pod").unwrap();
    let live = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a"]}, "spec": {"tolerations": [{"key": "x"}]}});
    let live =
        server_side_apply(Some(&live), &live.clone(), "creator", false, &pod, T0, None).unwrap();
    let cfg = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["b"]}, "spec": {"tolerations": [{"key": "y"}]}});
    let out = server_side_apply(Some(&live), &cfg, "other", true, &pod, T1, None).unwrap();
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["a", "b"]),
        "sets merge"
    );
    assert_eq!(
        out["spec"]["tolerations"],
        json!([{"key": "y"}]),
        "atomic lists are replaced"
    );
    assert!(
        entry(&out, "other", "Apply")["fieldsV1"]["f:metadata"]["f:finalizers"]
            .get("v:\"b\"")
            .is_some()
    );
    // The creator lost the tolerations to the forced apply but keeps its finalizer.
    let creator = &entry(&out, "creator", "Apply")["fieldsV1"];
    assert!(creator.get("f:spec").is_none());
    assert!(creator["f:metadata"]["f:finalizers"]
        .get("v:\"a\"")
        .is_some());
}

#[test]
fn objects_without_managed_fields_start_with_before_first_apply() {
    let cm = builtin_kind("", "ConfigMap").unwrap();
    let live = config_map(json!({"a": "1"}));
    let err = server_side_apply(
        Some(&live),
        &config_map(json!({"a": "2"})),
        "kubectl",
        false,
        &cm,
        T0,
        None,
    )
    .unwrap_err();
    assert_eq!(err.conflicts[0].0, "\"before-first-apply\" using v1");
    assert_eq!(err.conflicts[0].1, ".data.a");
}

#[test]
fn updates_track_what_they_change() {
    let k = deployment_kind();
    let mut created = deployment(1, "nginx:1");
    track_update(None, &mut created, "kubectl-create", T0, None, &k);
    let e = entry(&created, "kubectl-create", "Update");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["time"], T0);
    // Newly added containers get "." (the map itself was added).
    assert_eq!(
        e["fieldsV1"]["f:spec"]["f:template"]["f:metadata"]["f:labels"],
        json!({".": {}, "f:app": {}})
    );
    assert!(
        e["fieldsV1"].get("f:apiVersion").is_none()
            && e["fieldsV1"]["f:metadata"].get("f:name").is_none()
    );

    // A controller updates the image: it owns the image, kubectl-create loses it.
    let mut updated = created.clone();
    updated["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    track_update(Some(&created), &mut updated, "controller", T1, None, &k);
    let c = entry(&updated, "controller", "Update");
    assert_eq!(
        c["fieldsV1"],
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:image": {}}}}}}})
    );
    let creator = entry(&updated, "kubectl-create", "Update");
    assert!(
        creator["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
            ["k:{\"name\":\"web\"}"]
            .get("f:image")
            .is_none()
    );
    // A write that changes nothing leaves the managed fields alone.
    let mut same = updated.clone();
    track_update(Some(&updated), &mut same, "noop", T2, None, &k);
    assert_eq!(
        same["metadata"]["managedFields"],
        updated["metadata"]["managedFields"]
    );
    // Apply entries come first, then updates by time.
    let applied = server_side_apply(Some(&updated), &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"paused": true}}), "kubectl", false, &k, T2, None).unwrap();
    let ops: Vec<String> = entries(&applied)
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["operation"].as_str().unwrap(),
                e["manager"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        ops,
        vec![
            "Apply/kubectl",
            "Update/kubectl-create",
            "Update/controller"
        ]
    );
}

#[test]
fn status_subresource_writes_are_separate_entries() {
    let schema = CompiledSchema::new(&json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"jobQueue": {"type": "string"}}},
        "status": {"type": "object", "properties": {
            "status": {"type": "string"},
            "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                "items": {"type": "object", "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}}
        }}
    }}))
    .unwrap();
    let job = json!({"apiVersion": "batch.barge.dev/v1alpha1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"jobQueue": "q"}});
    let created = server_side_apply(None, &job, "kubectl", false, &schema, T0, None).unwrap();
    let status_cfg = json!({"apiVersion": "batch.barge.dev/v1alpha1", "kind": "Job", "metadata": {"name": "j"},
        "status": {"status": "RUNNABLE", "conditions": [{"type": "Ready", "status": "True"}]}});
    let opts = ApplyOptions::reset_fields(Some("status"), true);
    let with_status = server_side_apply_with(
        Some(&created),
        &status_cfg,
        "barge",
        true,
        &schema,
        T1,
        Some("status"),
        &opts,
    )
    .unwrap();
    let e = entry(&with_status, "barge", "Apply");
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:status": {"f:status": {}, "f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:type": {}, "f:status": {}}}}})
    );
    assert_eq!(with_status["spec"]["jobQueue"], "q");
    // On the main resource, `status` is a reset field: applying it claims nothing there.
    let main_opts = ApplyOptions::reset_fields(None, true);
    let mut with_bogus_status = job.clone();
    with_bogus_status["status"] = json!({"status": "SUCCEEDED"});
    let out = server_side_apply_with(
        Some(&with_status),
        &with_bogus_status,
        "kubectl",
        true,
        &schema,
        T2,
        None,
        &main_opts,
    )
    .unwrap();
    assert!(entry(&out, "kubectl", "Apply")["fieldsV1"]
        .get("f:status")
        .is_none());
}

#[test]
fn helm_style_forced_apply_of_a_custom_resource_with_set_and_map_lists() {
    let schema = CompiledSchema::new(&json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "computeEnvironmentOrder": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["order"],
            "items": {"type": "object", "properties": {"order": {"type": "integer"}, "computeEnvironment": {"type": "string"}}}},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "instanceTypes": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
    }}}}))
    .unwrap();
    let cfg = json!({"apiVersion": "batch.barge.dev/v1alpha1", "kind": "JobQueue", "metadata": {"name": "q", "labels": {"app.kubernetes.io/managed-by": "Helm"}},
        "spec": {"computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "ce1"}], "tags": {"team": "a"}, "instanceTypes": ["m5.large"]}});
    let v1 = server_side_apply(None, &cfg, "helm", true, &schema, T0, None).unwrap();
    let f = &entry(&v1, "helm", "Apply")["fieldsV1"]["f:spec"];
    assert!(
        f["f:computeEnvironmentOrder"]
            .get("k:{\"order\":1}")
            .is_some(),
        "{f}"
    );
    assert_eq!(f["f:tags"], json!({"f:team": {}}));
    assert!(f["f:instanceTypes"].get("v:\"m5.large\"").is_some());
    // An upgrade that changes the order list and drops a tag.
    let mut cfg2 = cfg.clone();
    cfg2["spec"]["computeEnvironmentOrder"] = json!([{"order": 1, "computeEnvironment": "ce2"}, {"order": 2, "computeEnvironment": "ce3"}]);
    cfg2["spec"]["tags"] = json!({});
    let v2 = server_side_apply(Some(&v1), &cfg2, "helm", true, &schema, T1, None).unwrap();
    assert_eq!(
        v2["spec"]["computeEnvironmentOrder"],
        cfg2["spec"]["computeEnvironmentOrder"]
    );
    assert_eq!(v2["spec"]["tags"], json!({}));
}

#[test]
fn managed_fields_sent_by_a_client_are_the_starting_point() {
    let cm = builtin_kind("", "ConfigMap").unwrap();
    let v1 = server_side_apply(
        None,
        &config_map(json!({"a": "1"})),
        "kubectl",
        false,
        &cm,
        T0,
        None,
    )
    .unwrap();
    // A client clears the managed fields and changes data in the same update.
    let mut cleared = v1.clone();
    cleared["metadata"]["managedFields"] = json!([{}]);
    cleared["data"]["a"] = json!("2");
    track_update(Some(&v1), &mut cleared, "editor", T1, None, &cm);
    let e = entries(&cleared);
    assert_eq!(e.len(), 1, "[{{}}] clears the managed fields: {e:?}");
    assert_eq!(e[0]["manager"], "editor");
    // A client that sends no managed fields (kube-rs replace without them) keeps the live ones.
    let mut plain = v1.clone();
    plain["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    plain["data"]["b"] = json!("x");
    track_update(Some(&v1), &mut plain, "editor", T1, None, &cm);
    assert!(entries(&plain).iter().any(|x| x["manager"] == "kubectl"));
    assert_eq!(
        entry(&plain, "editor", "Update")["fieldsV1"],
        json!({"f:data": {"f:b": {}}})
    );
}

/// The bookkeeping of `track_update_with` as it was before entries were kept as stored: every
/// entry decoded, settled and encoded again. The reference the current one must match.
fn track_update_reference(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    now: &str,
    subresource: Option<&str>,
    schema: &dyn ListTypes,
    options: &ApplyOptions,
) {
    let subresource = subresource.unwrap_or_default();
    let sent_any = new
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let mut entries = if sent_any && subresource.is_empty() {
        decode_managed_fields(Some(new))
    } else {
        decode_managed_fields(old)
    };
    let empty = json!({});
    let api_version = api_version_of(new);
    let strip = strip_set();
    let ignored = options.ignored_set();
    let mut cmp = typed::compare(old.unwrap_or(&empty), new, schema);
    cmp.added = cmp.added.difference(strip).recursive_difference(&ignored);
    cmp.modified = cmp
        .modified
        .difference(strip)
        .recursive_difference(&ignored);
    cmp.removed = cmp.removed.difference(strip).recursive_difference(&ignored);
    let never = |_: &Entry| false;
    settle_other_managers(&mut entries, &never, &cmp, true).unwrap();
    let taken = cmp.modified.union(&cmp.added);
    if !taken.is_empty() {
        let is_me =
            |e: &Entry| e.same_identity(manager, OPERATION_UPDATE, &api_version, subresource);
        match entries.iter_mut().find(|e| is_me(e)) {
            Some(me) => {
                me.fields = me.fields.union(&taken);
                me.time = Some(now.to_string());
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: OPERATION_UPDATE.to_string(),
                api_version,
                time: Some(now.to_string()),
                subresource: subresource.to_string(),
                fields: taken,
            }),
        }
    }
    encode_managed_fields(new, entries);
}

/// Runs a write through the current and the reference bookkeeping; asserts they agree and
/// returns the current one's object.
fn tracked_both(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    now: &str,
    subresource: Option<&str>,
) -> Value {
    let pod = builtin_kind("", "Pod").unwrap();
    let opts = ApplyOptions::reset_fields(subresource, true);
    let mut current = new.clone();
    track_update_with(old, &mut current, manager, now, subresource, &pod, &opts);
    let mut reference = new.clone();
    track_update_reference(old, &mut reference, manager, now, subresource, &pod, &opts);
    assert_eq!(
        current["metadata"]["managedFields"], reference["metadata"]["managedFields"],
        "managedFields differ from the reference bookkeeping"
    );
    assert_eq!(current, reference);
    current
}

fn child_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "child-1", "namespace": "ns",
            "labels": {"batch.barge.dev/job-name": "a", "batch.barge.dev/array-index": "1"},
            "finalizers": ["batch.barge.dev/attempt-result"],
            "ownerReferences": [{"apiVersion": "batch.barge.dev/v1alpha1", "kind": "Job",
                                 "name": "a", "uid": "u-1", "controller": true}],
        },
        "spec": {
            "nodeName": "n1", "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox",
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "resources": {"requests": {"cpu": "1"}}}],
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    })
}

fn kubelet_status(phase: &str, ready: &str, since: &str) -> Value {
    json!({
        "phase": phase, "qosClass": "Burstable", "hostIP": "10.0.0.1", "podIP": "10.1.0.1",
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": T0},
            {"type": "Ready", "status": ready, "lastTransitionTime": since},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": T0},
        ],
        "containerStatuses": [{"name": "main", "image": "busybox", "ready": ready == "True",
                               "state": {"running": {"startedAt": T0}}}],
    })
}

fn with_status(obj: &Value, status: Value) -> Value {
    let mut out = obj.clone();
    out["status"] = status;
    out
}

#[test]
fn untouched_entries_are_kept_as_the_reference_bookkeeping_writes_them() {
    // A child pod's life: the operator's create, the kubelet's status patches, the operator's
    // finalizer release with a label, the same status patch again (a no-op).
    let created = tracked_both(None, &child_pod(), "barge", T0, None);
    let running = tracked_both(
        Some(&created),
        &with_status(&created, kubelet_status("Running", "True", T0)),
        "barge-sim-kubelet",
        T1,
        Some("status"),
    );
    assert_eq!(
        entry(&running, "barge", "Update"),
        entry(&created, "barge", "Update"),
        "the creator's entry is untouched by a status patch"
    );
    let succeeded = tracked_both(
        Some(&running),
        &with_status(&running, kubelet_status("Succeeded", "False", T2)),
        "barge-sim-kubelet",
        T2,
        Some("status"),
    );
    let again = tracked_both(
        Some(&succeeded),
        &succeeded,
        "barge-sim-kubelet",
        "2025-01-01T00:03:00Z",
        Some("status"),
    );
    assert_eq!(
        again["metadata"]["managedFields"], succeeded["metadata"]["managedFields"],
        "a status patch identical to the live status changes no managed field, nor a time"
    );
    let mut released = succeeded.clone();
    released["metadata"]["finalizers"] = json!([]);
    released["metadata"]["labels"]["batch.barge.dev/disposable"] = json!("true");
    let released = tracked_both(Some(&succeeded), &released, "barge", T2, None);
    let operator = entry(&released, "barge", "Update");
    assert!(operator["fieldsV1"]["f:metadata"]["f:labels"]
        .get("f:batch.barge.dev/disposable")
        .is_some());
    assert!(operator["fieldsV1"]["f:metadata"]["f:finalizers"]
        .get("v:\"batch.barge.dev/attempt-result\"")
        .is_none());
    assert_eq!(
        entry(&released, "barge-sim-kubelet", "Update"),
        entry(&succeeded, "barge-sim-kubelet", "Update"),
        "the kubelet's entry is untouched by the release"
    );
    // Another manager takes a field the creator owned: the creator's entry loses it.
    let mut relabelled = released.clone();
    relabelled["metadata"]["labels"]["batch.barge.dev/array-index"] = json!("2");
    let relabelled = tracked_both(Some(&released), &relabelled, "kubectl", T2, None);
    assert!(
        entry(&relabelled, "barge", "Update")["fieldsV1"]["f:metadata"]["f:labels"]
            .get("f:batch.barge.dev/array-index")
            .is_none()
    );
}

#[test]
fn entries_not_in_stored_form_are_decoded_as_before() {
    let created = tracked_both(None, &child_pod(), "barge", T0, None);
    // A client rewrites managedFields: extra keys, a redundant `.` marker, an empty entry.
    let mut sent = created.clone();
    sent["metadata"]["managedFields"] = json!([
        {"manager": "barge", "operation": "Update", "apiVersion": "v1", "time": T0,
         "fieldsType": "FieldsV1", "extra": 1,
         "fieldsV1": {"f:spec": {"f:nodeName": {".": {}}}}},
        {"manager": "other", "operation": "Update", "apiVersion": "v1",
         "fieldsType": "FieldsV1", "fieldsV1": {}},
        {"manager": "third", "operation": "Update", "apiVersion": "v1", "time": T1,
         "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:batch.barge.dev/job-name": {}}}}},
    ]);
    sent["metadata"]["labels"]["x"] = json!("y");
    let out = tracked_both(Some(&created), &sent, "barge", T1, None);
    assert!(entries(&out).iter().all(|e| e.get("extra").is_none()));
    // `[{}]` clears them; on a subresource what is sent is ignored.
    let mut cleared = created.clone();
    cleared["metadata"]["managedFields"] = json!([{}]);
    tracked_both(Some(&created), &cleared, "barge", T1, None);
    tracked_both(Some(&created), &cleared, "barge", T1, Some("status"));
    let mut none = created.clone();
    none["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    tracked_both(Some(&created), &none, "barge", T1, None);
}

#[test]
fn the_stored_form_check_accepts_only_what_encoding_writes() {
    let canonical = |fields: Value| {
        canonical_entry(
            &json!({"manager": "m", "operation": "Update", "apiVersion": "v1",
                                "fieldsType": "FieldsV1", "fieldsV1": fields}),
        )
    };
    assert!(canonical(
        json!({"f:a": {}, "f:b": {".": {}, "f:c": {}}, "f:d": {"f:e": {}}})
    ));
    assert!(
        !canonical(json!({"f:a": {".": {}}})),
        "a marker without children"
    );
    assert!(
        !canonical(json!({".": {}, "f:a": {}})),
        "a marker at the root"
    );
    assert!(
        !canonical(json!({"f:a": {".": 1, "f:b": {}}})),
        "a marker that is not {{}}"
    );
    assert!(!canonical(json!({"f:a": true})), "a leaf that is not {{}}");
    assert!(
        !canonical_entry(
            &json!({"manager": "m", "operation": "Update", "apiVersion": "v1",
        "fieldsType": "FieldsV1", "fieldsV1": {}, "subresource": ""})
        ),
        "an empty subresource"
    );
    assert!(
        !canonical_entry(&json!({"operation": "Update", "apiVersion": "v1",
        "fieldsType": "FieldsV1", "fieldsV1": {}})),
        "no manager"
    );
    // Every entry encoding writes is in stored form.
    let mut set = FieldSet::new();
    set.insert(&["f:a".to_string()]);
    set.insert(&["f:a".to_string(), "f:b".to_string()]);
    set.insert(&[
        "f:c".to_string(),
        "k:{\"name\":\"x\"}".to_string(),
        "f:d".to_string(),
    ]);
    let e = Entry {
        manager: "m".into(),
        operation: OPERATION_UPDATE.into(),
        api_version: "v1".into(),
        time: Some(T0.into()),
        subresource: "status".into(),
        fields: set.clone(),
    };
    assert!(canonical_entry(&e.to_json()));
    // The intersection read in place agrees with the decoded sets'.
    let raw = set.to_fields_v1();
    for path in [
        &["f:a"][..],
        &["f:a", "f:b"],
        &["f:c"],
        &["f:c", "k:{\"name\":\"x\"}", "f:d"],
        &["f:z"],
    ] {
        let mut probe = FieldSet::new();
        probe.insert(&path.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            fields_v1_intersects(raw.as_object().unwrap(), &probe),
            !set.intersection(&probe).is_empty(),
            "{path:?}"
        );
    }
}

/// Runs a write with the short cuts and the general way ([`track_update_impl`]) and through the
/// reference bookkeeping; asserts all three write the same object and returns it.
fn tracked_all(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    now: &str,
    subresource: Option<&str>,
    schema: &dyn ListTypes,
    opts: &ApplyOptions,
) -> Value {
    let mut short = new.clone();
    track_update_impl(
        old,
        &mut short,
        manager,
        now,
        subresource,
        schema,
        opts,
        true,
    );
    let mut general = new.clone();
    track_update_impl(
        old,
        &mut general,
        manager,
        now,
        subresource,
        schema,
        opts,
        false,
    );
    let mut reference = new.clone();
    track_update_reference(old, &mut reference, manager, now, subresource, schema, opts);
    assert_eq!(
        short["metadata"]["managedFields"], general["metadata"]["managedFields"],
        "short cuts vs the general way, {manager} {subresource:?}"
    );
    assert_eq!(short, general);
    assert_eq!(short, reference, "vs the reference bookkeeping");
    // Byte for byte, too (what the store keeps).
    assert_eq!(
        serde_json::to_vec(&short).unwrap(),
        serde_json::to_vec(&general).unwrap()
    );
    short
}

fn job_crd_schema() -> CompiledSchema {
    let crd: Value = serde_yaml::from_str(include_str!(
        "../../../../../config/crd/bases/batch.barge.dev_jobs.yaml"
    ))
    .expect("Job CRD");
    CompiledSchema::new(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
        .expect("Job schema")
}

/// Objects whose shapes exercise every rule of the create short cut: empty objects and lists,
/// nulls, associative lists (map lists with defaulted keys, sets, duplicates), atomic lists,
/// `map[string]X` maps, server-owned metadata, managedFields sent along, type meta only.
fn shapes() -> Vec<Value> {
    let mut pod = child_pod();
    pod["spec"]["containers"][0]["ports"] = json!([
        {"containerPort": 80}, {"containerPort": 80, "protocol": "UDP"}, {"containerPort": 80}]);
    pod["spec"]["containers"][0]["command"] = json!(["sh", "-c", "true"]);
    pod["spec"]["tolerations"] =
        json!([{"key": "a", "operator": "Exists"}, {"key": "a", "operator": "Exists"}]);
    pod["spec"]["nodeSelector"] = json!({});
    pod["spec"]["volumes"] = json!([]);
    pod["spec"]["affinity"] = Value::Null;
    pod["spec"]["securityContext"] = json!({});
    pod["metadata"]["finalizers"] = json!(["a", "b", "a"]);
    pod["metadata"]["uid"] = json!("u");
    pod["metadata"]["resourceVersion"] = json!("7");
    pod["metadata"]["creationTimestamp"] = json!(T0);
    pod["metadata"]["generation"] = json!(1);
    pod["metadata"]["annotations"] = json!({"x": "y", "empty": ""});
    let mut with_sent = child_pod();
    with_sent["metadata"]["managedFields"] = json!([]);
    let job = json!({"apiVersion": "batch.barge.dev/v1alpha1", "kind": "Job",
        "metadata": {"name": "j", "namespace": "default", "labels": {"bench": "jobs"}},
        "spec": {"jobQueue": "q", "jobDefinition": "d:1", "shareIdentifier": "teamA",
            "parameters": {"seconds": "0"},
            "containerOverrides": {"resourceRequirements": [
                {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
                "environment": [{"name": "A", "value": "1"}]},
            "retryStrategy": {"attempts": 2, "evaluateOnExit": [{"action": "RETRY", "onExitCode": "1*"}]},
            "timeout": {"attemptDurationSeconds": 600},
            "dependsOn": [{"jobName": "other"}, {"jobName": "other"}],
            "tags": {"team": "a"}},
        "status": {"status": "SUBMITTED", "statusReason": "x"}});
    vec![
        child_pod(),
        pod,
        with_sent,
        job,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap"}),
        json!({}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {}},
            "data": {"a": "1", "b": ""}, "binaryData": {}, "immutable": false}),
        json!({"metadata": {"name": "n", "namespace": "ns", "selfLink": "x", "clusterName": "c"},
            "a": {"b": {"c": [1, 2, {"d": null}]}}, "e": [[1], []], "f": null}),
    ]
}

#[test]
fn a_create_writes_the_fields_the_general_way_writes() {
    let pod = builtin_kind("", "Pod").unwrap();
    let cm = builtin_kind("", "ConfigMap").unwrap();
    let job = job_crd_schema();
    let schemas: [&dyn ListTypes; 5] = [&pod, &cm, &deployment_kind(), &job, &Untyped];
    let mut entries_written = 0;
    for obj in shapes() {
        for schema in schemas {
            for sub in [None, Some("status")] {
                for has_status in [true, false] {
                    let opts = ApplyOptions::reset_fields(sub, has_status);
                    let out = tracked_all(None, &obj, "barge", T0, sub, schema, &opts);
                    entries_written += entries(&out).len();
                }
            }
            let none = ApplyOptions::default();
            tracked_all(None, &obj, "barge", T0, None, schema, &none);
        }
    }
    assert!(entries_written > 100, "{entries_written}");
    // An object with nothing to own gets no entry.
    let out = tracked_all(
        None,
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
        "m",
        T0,
        None,
        &cm,
        &ApplyOptions::default(),
    );
    assert!(out["metadata"].get("managedFields").is_none());
}

#[test]
fn touched_entries_edited_in_place_equal_decoded_ones() {
    let pod = builtin_kind("", "Pod").unwrap();
    let main = ApplyOptions::reset_fields(None, true);
    let status = ApplyOptions::reset_fields(Some("status"), true);
    // A child pod's life with a second manager owning some of the operator's fields.
    let created = tracked_all(None, &child_pod(), "barge", T0, None, &pod, &main);
    let running = tracked_all(
        Some(&created),
        &with_status(&created, kubelet_status("Running", "True", T0)),
        "barge-sim-kubelet",
        T1,
        Some("status"),
        &pod,
        &status,
    );
    let succeeded = tracked_all(
        Some(&running),
        &with_status(&running, kubelet_status("Succeeded", "False", T2)),
        "barge-sim-kubelet",
        T2,
        Some("status"),
        &pod,
        &status,
    );
    // The kubelet drops a condition and the pod IP: its entry loses them (in place).
    let mut fewer = kubelet_status("Succeeded", "False", T2);
    fewer.as_object_mut().unwrap().remove("podIP");
    fewer["conditions"].as_array_mut().unwrap().remove(0);
    let fewer = tracked_all(
        Some(&succeeded),
        &with_status(&succeeded, fewer),
        "barge-sim-kubelet",
        T2,
        Some("status"),
        &pod,
        &status,
    );
    // The operator's release: its own entry loses the finalizer, gains a label.
    let mut released = fewer.clone();
    released["metadata"]["finalizers"] = json!([]);
    released["metadata"]["labels"]["batch.barge.dev/disposable"] = json!("true");
    let released = tracked_all(Some(&fewer), &released, "barge", T2, None, &pod, &main);
    // Another manager changes the operator's fields: they leave its entry (in place), a field
    // whose removal empties a node of it removes the node.
    let mut edited = released.clone();
    edited["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("batch.barge.dev/job-name");
    edited["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "9"}]);
    edited["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("resources");
    let edited = tracked_all(Some(&released), &edited, "kubectl", T2, None, &pod, &main);
    // The operator writes every field back: it takes them again, kubectl keeps the rest.
    let mut back = edited.clone();
    back["metadata"]["labels"]["batch.barge.dev/job-name"] = json!("a");
    back["spec"]["containers"][0]["env"] = child_pod()["spec"]["containers"][0]["env"].clone();
    back["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "1"}});
    let back = tracked_all(Some(&edited), &back, "barge", T2, None, &pod, &main);
    // Everything removed: every entry owning only those fields goes.
    let mut bare = back.clone();
    bare["spec"] = json!({});
    bare["metadata"].as_object_mut().unwrap().remove("labels");
    tracked_all(Some(&back), &bare, "kubectl", T2, None, &pod, &main);
    // A Job: the operator's status writes and a spec edit, with the CRD's list types.
    let job = job_crd_schema();
    let mut j = shapes()[3].clone();
    j.as_object_mut().unwrap().remove("status");
    let j1 = tracked_all(None, &j, "barge", T0, None, &job, &main);
    let mut s = j1.clone();
    s["status"] =
        json!({"status": "RUNNABLE", "statusReason": "r", "attempts": [{"startedAt": 1}]});
    let j2 = tracked_all(Some(&j1), &s, "barge", T1, Some("status"), &job, &status);
    let mut s2 = j2.clone();
    s2["status"] = json!({"status": "RUNNING", "attempts": [{"startedAt": 1}, {"startedAt": 2}]});
    let j3 = tracked_all(Some(&j2), &s2, "barge", T2, Some("status"), &job, &status);
    let mut spec = j3.clone();
    spec["spec"]["dependsOn"] = json!([{"jobName": "third"}]);
    spec["spec"]["containerOverrides"]["resourceRequirements"][0]["value"] = json!("2");
    let j4 = tracked_all(Some(&j3), &spec, "editor", T2, None, &job, &main);
    tracked_all(Some(&j4), &j3, "barge", T2, None, &job, &main);
}

/// A small deterministic generator of field sets over a few path elements.
fn random_set(rng: &mut fastrand::Rng, depth: usize) -> FieldSet {
    let pes = ["f:a", "f:b", "f:c", "k:{\"name\":\"x\"}", "v:\"y\"", "i:0"];
    let mut set = FieldSet::new();
    for _ in 0..rng.usize(0..8) {
        let len = rng.usize(1..=depth);
        let path: Vec<String> = (0..len)
            .map(|_| pes[rng.usize(..pes.len())].to_string())
            .collect();
        set.insert(&path);
    }
    set
}

#[test]
fn fields_v1_edited_in_place_equal_the_set_operations() {
    let mut rng = fastrand::Rng::with_seed(14);
    let mut changed = 0;
    for _ in 0..3000 {
        let stored = random_set(&mut rng, 4);
        let other = random_set(&mut rng, 4);
        let raw = stored.to_fields_v1();
        assert!(
            canonical_entry(
                &json!({"manager": "m", "operation": "Update", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": raw})
            ),
            "{raw}"
        );
        let mut diff = raw.as_object().unwrap().clone();
        fields_v1_difference(&mut diff, &other);
        assert_eq!(
            Value::Object(diff),
            stored.difference(&other).to_fields_v1(),
            "{raw} - {}",
            other.to_fields_v1()
        );
        let mut union = raw.as_object().unwrap().clone();
        fields_v1_union(&mut union, &other);
        assert_eq!(
            Value::Object(union),
            stored.union(&other).to_fields_v1(),
            "{raw} + {}",
            other.to_fields_v1()
        );
        if stored.difference(&other) != stored {
            changed += 1;
        }
    }
    assert!(changed > 200, "{changed}");
}

#[test]
fn one_sided_subtrees_compare_as_leaf_by_leaf() {
    let pod = builtin_kind("", "Pod").unwrap();
    let job = job_crd_schema();
    let schemas: [&dyn ListTypes; 4] = [&pod, &deployment_kind(), &job, &Untyped];
    let mut objects = shapes();
    objects.push(with_status(
        &child_pod(),
        kubelet_status("Running", "True", T0),
    ));
    objects.push(with_status(
        &child_pod(),
        kubelet_status("Succeeded", "False", T1),
    ));
    let mut members = 0;
    for lhs in &objects {
        for rhs in &objects {
            for schema in schemas {
                let fast = typed::compare_with(lhs, rhs, schema, true);
                let reference = typed::compare_with(lhs, rhs, schema, false);
                assert_eq!(fast.added, reference.added, "added {lhs} -> {rhs}");
                assert_eq!(fast.modified, reference.modified, "modified {lhs} -> {rhs}");
                assert_eq!(fast.removed, reference.removed, "removed {lhs} -> {rhs}");
                members += fast.added.paths().len() + fast.removed.paths().len();
            }
        }
    }
    assert!(members > 1000, "{members}");
}
