use super::*;
use serde_json::json;

fn now() -> Timestamp {
    "2025-01-01T12:00:00Z".parse().unwrap()
}

fn cells(t: &Value, row: usize) -> Vec<Value> {
    t["rows"][row]["cells"].as_array().unwrap().clone()
}

fn column_names(t: &Value) -> Vec<String> {
    t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn human_durations_match_apimachinery() {
    assert_eq!(human_duration(-5), "<invalid>");
    assert_eq!(human_duration(-1), "0s");
    assert_eq!(human_duration(45), "45s");
    assert_eq!(human_duration(119), "119s");
    assert_eq!(human_duration(5 * 60 + 12), "5m12s");
    assert_eq!(human_duration(5 * 60), "5m");
    assert_eq!(human_duration(42 * 60), "42m");
    assert_eq!(human_duration(3 * 3600 + 20 * 60), "3h20m");
    assert_eq!(human_duration(20 * 3600), "20h");
    assert_eq!(human_duration(4 * 86400 + 2 * 3600), "4d2h");
    assert_eq!(human_duration(30 * 86400), "30d");
    assert_eq!(human_duration(3 * 365 * 86400 + 10 * 86400), "3y10d");
    assert_eq!(human_duration(10 * 365 * 86400), "10y");
}

fn job(name: &str, status: Option<&str>, size: Option<i64>) -> Value {
    let mut j = json!({
        "apiVersion": "batch.barge.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": "2025-01-01T11:55:00Z", "uid": "u"},
        "spec": {"jobQueue": "q"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Failed", "status": "False"}]}
    });
    if let Some(s) = status {
        j["status"]["status"] = json!(s);
    }
    if let Some(n) = size {
        j["spec"]["arrayProperties"] = json!({"size": n});
    }
    j
}

fn job_columns() -> Vec<PrinterColumn> {
    let crd_version = json!({"name": "v1alpha1", "additionalPrinterColumns": [
        {"name": "Queue", "type": "string", "jsonPath": ".spec.jobQueue"},
        {"name": "Status", "type": "string", "jsonPath": ".status.status"},
        {"name": "Size", "type": "integer", "jsonPath": ".spec.arrayProperties.size", "priority": 1},
        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]});
    PrinterColumn::for_crd_version(&crd_version)
}

#[test]
fn crd_tables_follow_the_printer_columns() {
    let a = job("a", Some("RUNNING"), Some(10));
    let b = job("b", None, None);
    let t = crd_table(&[&a, &b], &job_columns(), now(), IncludeObject::Metadata);
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        column_names(&t),
        vec!["Name", "Queue", "Status", "Size", "Ready", "Age"]
    );
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
    assert_eq!(t["columnDefinitions"][3]["priority"], 1);
    assert_eq!(t["columnDefinitions"][5]["type"], "date");
    assert_eq!(
        t["columnDefinitions"][1]["description"],
        "Custom resource definition column (in JSONPath format): .spec.jobQueue"
    );
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("a"),
            json!("q"),
            json!("RUNNING"),
            json!(10),
            json!("True"),
            json!("5m")
        ]
    );
    assert_eq!(
        cells(&t, 1),
        vec![
            json!("b"),
            json!("q"),
            Value::Null,
            Value::Null,
            json!("True"),
            json!("5m")
        ]
    );
    let obj = &t["rows"][0]["object"];
    assert_eq!(obj["kind"], "PartialObjectMetadata");
    assert_eq!(obj["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(obj["metadata"]["name"], "a");
    assert!(obj.get("spec").is_none());
}

#[test]
fn crd_without_columns_shows_name_and_age() {
    let a = job("a", None, None);
    let t = crd_table(&[&a], &[], now(), IncludeObject::None);
    assert_eq!(column_names(&t), vec!["Name", "Age"]);
    assert_eq!(cells(&t, 0), vec![json!("a"), json!("5m")]);
    assert!(t["rows"][0]["object"].is_null());
    let t = crd_table(
        &[&a],
        &PrinterColumn::for_crd_version(&json!({"name": "v1"})),
        now(),
        IncludeObject::Object,
    );
    assert_eq!(column_names(&t), vec!["Name", "Age"]);
    assert_eq!(t["rows"][0]["object"]["spec"]["jobQueue"], "q");
}

#[test]
fn cell_types_convert_like_the_apiserver() {
    let obj = json!({"metadata": {"name": "x"}, "spec": {"n": 2.7, "i": 3, "flag": true, "labels": {"a": "b"}, "list": ["p", "q"], "when": "bad-date"}});
    let col = |name: &str, t: &str, path: &str| PrinterColumn {
        name: name.into(),
        type_: t.into(),
        format: String::new(),
        description: String::new(),
        priority: 0,
        json_path: path.into(),
    };
    let cols = vec![
        col("N", "integer", ".spec.n"),
        col("I", "number", ".spec.i"),
        col("F", "boolean", ".spec.flag"),
        col("FS", "boolean", ".spec.i"),
        col("M", "string", ".spec.labels"),
        col("L", "string", ".spec.list"),
        col("First", "string", ".spec.list[0]"),
        col("D", "date", ".spec.when"),
        col("Missing", "string", ".spec.nope.deeper"),
    ];
    let t = crd_table(&[&obj], &cols, now(), IncludeObject::Metadata);
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("x"),
            json!(2),
            json!(3.0),
            json!(true),
            Value::Null,
            json!("map[a:b]"),
            json!("[p q]"),
            json!("p"),
            json!("<invalid>"),
            Value::Null
        ]
    );
}

#[test]
fn jsonpath_subset() {
    let obj = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]},
                     "metadata": {"labels": {"app.kubernetes.io/name": "barge"}}});
    assert_eq!(
        jsonpath::first(&obj, ".status.conditions[?(@.type==\"Ready\")].status"),
        Some(&json!("True"))
    );
    assert_eq!(
        jsonpath::first(&obj, "{.status.conditions[?(@.type=='A')].status}"),
        Some(&json!("False"))
    );
    assert_eq!(
        jsonpath::first(&obj, ".status.conditions[?(@.type!=\"A\")].type"),
        Some(&json!("Ready"))
    );
    assert_eq!(
        jsonpath::first(&obj, ".status.conditions[-1].type"),
        Some(&json!("Ready"))
    );
    assert_eq!(jsonpath::find(&obj, ".status.conditions[*].type").len(), 2);
    assert_eq!(
        jsonpath::first(&obj, ".metadata.labels['app.kubernetes.io/name']"),
        Some(&json!("barge"))
    );
    assert_eq!(jsonpath::first(&obj, ".status.missing"), None);
}

fn pod(phase: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "j-1", "namespace": "ns", "creationTimestamp": "2025-01-01T11:00:00Z"},
        "spec": {"nodeName": "n1", "containers": [{"name": "main"}, {"name": "side"}]},
        "status": {"phase": phase, "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}], "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

#[test]
fn pods_print_ready_status_restarts_age_and_wide_columns() {
    let mut p = pod("Running");
    p["status"]["containerStatuses"] = json!([
        {"name": "main", "ready": true, "restartCount": 2, "state": {"running": {}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-01-01T11:58:00Z"}}},
        {"name": "side", "ready": true, "restartCount": 0, "state": {"running": {}}}
    ]);
    let t = builtin_table("", "Pod", &[&p], now(), IncludeObject::Metadata);
    assert_eq!(
        column_names(&t),
        vec![
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("j-1"),
            json!("2/2"),
            json!("Running"),
            json!("2 (2m ago)"),
            json!("60m"),
            json!("10.0.0.5"),
            json!("n1"),
            json!("<none>"),
            json!("<none>")
        ]
    );
    assert_eq!(t["columnDefinitions"][5]["priority"], 1);
}

#[test]
fn pod_status_reasons_follow_kubectl_rules() {
    let status_of = |p: &Value| {
        cells(
            &builtin_table("", "Pod", &[p], now(), IncludeObject::None),
            0,
        )[2]
        .clone()
    };
    // Waiting container reason.
    let mut p = pod("Pending");
    p["status"]["containerStatuses"] = json!([{"name": "main", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]);
    assert_eq!(status_of(&p), "ContainerCreating");
    // Terminated without reason: exit code.
    p["status"]["containerStatuses"] = json!([{"name": "main", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 3}}}]);
    assert_eq!(status_of(&p), "ExitCode:3");
    // Completed.
    let mut done = pod("Succeeded");
    done["status"]["containerStatuses"] = json!([{"name": "main", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]);
    let t = builtin_table("", "Pod", &[&done], now(), IncludeObject::None);
    assert_eq!(cells(&t, 0)[2], "Completed");
    assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Succeeded");
    // Init containers.
    let mut init = pod("Pending");
    init["spec"]["initContainers"] = json!([{"name": "setup"}, {"name": "setup2"}]);
    init["status"]["initContainerStatuses"] = json!([
        {"name": "setup", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
        {"name": "setup2", "restartCount": 0, "state": {"running": {}}}
    ]);
    assert_eq!(status_of(&init), "Init:1/2");
    init["status"]["initContainerStatuses"][1]["state"] =
        json!({"terminated": {"exitCode": 2, "reason": "Error"}});
    assert_eq!(status_of(&init), "Init:Error");
    // Terminating and the pod-level reason.
    let mut deleting = pod("Running");
    deleting["metadata"]["deletionTimestamp"] = json!("2025-01-01T11:59:00Z");
    assert_eq!(status_of(&deleting), "Terminating");
    let mut evicted = pod("Failed");
    evicted["status"]["reason"] = json!("DeadlineExceeded");
    assert_eq!(status_of(&evicted), "DeadlineExceeded");
    // Readiness gates.
    let mut gated = pod("Running");
    gated["spec"]["readinessGates"] =
        json!([{"conditionType": "Ready"}, {"conditionType": "www.example.com/x"}]);
    assert_eq!(
        cells(
            &builtin_table("", "Pod", &[&gated], now(), IncludeObject::None),
            0
        )[8],
        "1/2"
    );
}

#[test]
fn nodes_print_status_roles_and_version() {
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "sim-1", "creationTimestamp": "2025-01-01T09:00:00Z",
                     "labels": {"node-role.kubernetes.io/worker": "", "kubernetes.io/role": "batch", "sim.barge.dev/simulated": "true"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                   "nodeInfo": {"kubeletVersion": "v1.33.0-sim"}}
    });
    let t = builtin_table("", "Node", &[&node], now(), IncludeObject::Metadata);
    assert_eq!(
        column_names(&t),
        vec![
            "Name",
            "Status",
            "Roles",
            "Age",
            "Version",
            "Internal-IP",
            "External-IP",
            "OS-Image",
            "Kernel-Version",
            "Container-Runtime"
        ]
    );
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("sim-1"),
            json!("Ready,SchedulingDisabled"),
            json!("batch,worker"),
            json!("3h"),
            json!("v1.33.0-sim"),
            json!("127.0.0.1"),
            json!("<none>"),
            json!("<unknown>"),
            json!("<unknown>"),
            json!("<unknown>")
        ]
    );
    let bare = json!({"metadata": {"name": "n"}});
    assert_eq!(
        cells(
            &builtin_table("", "Node", &[&bare], now(), IncludeObject::None),
            0
        )[1],
        "Unknown"
    );
    assert_eq!(
        cells(
            &builtin_table("", "Node", &[&bare], now(), IncludeObject::None),
            0
        )[3],
        "<unknown>"
    );
}

#[test]
fn namespaces_events_services_and_others() {
    let ns = json!({"metadata": {"name": "default", "creationTimestamp": "2025-01-01T11:59:30Z"}, "status": {"phase": "Active"}});
    let t = builtin_table("", "Namespace", &[&ns], now(), IncludeObject::Metadata);
    assert_eq!(
        cells(&t, 0),
        vec![json!("default"), json!("Active"), json!("30s")]
    );

    let ev = json!({
        "metadata": {"name": "j.123", "namespace": "ns"},
        "involvedObject": {"kind": "Job", "name": "j", "fieldPath": ""},
        "reason": "StatusChanged", "type": "Normal", "message": " RUNNABLE -> STARTING ",
        "source": {"component": "barge"}, "firstTimestamp": "2025-01-01T11:50:00Z", "lastTimestamp": "2025-01-01T11:59:00Z", "count": 3
    });
    let t = builtin_table("", "Event", &[&ev], now(), IncludeObject::Metadata);
    assert_eq!(column_names(&t)[0], "Last Seen");
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("60s"),
            json!("Normal"),
            json!("StatusChanged"),
            json!("job/j"),
            json!(""),
            json!("barge"),
            json!("RUNNABLE -> STARTING"),
            json!("10m"),
            json!(3),
            json!("j.123")
        ]
    );

    let svc = json!({"metadata": {"name": "j-nodes", "creationTimestamp": "2025-01-01T11:00:00Z"},
        "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80, "protocol": "TCP"}, {"port": 9000, "nodePort": 30000, "protocol": "UDP"}], "selector": {"job": "j"}}});
    let t = builtin_table("", "Service", &[&svc], now(), IncludeObject::Metadata);
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("j-nodes"),
            json!("ClusterIP"),
            json!("None"),
            json!("<none>"),
            json!("80/TCP,9000:30000/UDP"),
            json!("60m"),
            json!("job=j")
        ]
    );

    let cm = json!({"metadata": {"name": "cfg", "creationTimestamp": "2025-01-01T11:00:00Z"}, "data": {"a": "1", "b": "2"}});
    assert_eq!(
        cells(
            &builtin_table("", "ConfigMap", &[&cm], now(), IncludeObject::None),
            0
        ),
        vec![json!("cfg"), json!(2), json!("60m")]
    );

    let lease = json!({"metadata": {"name": "barge-leader", "creationTimestamp": "2025-01-01T11:00:00Z"}, "spec": {"holderIdentity": "pod-a"}});
    assert_eq!(
        cells(
            &builtin_table(
                "coordination.k8s.io",
                "Lease",
                &[&lease],
                now(),
                IncludeObject::None
            ),
            0
        )[1],
        "pod-a"
    );

    let rev = json!({"metadata": {"name": "jd-1", "creationTimestamp": "2025-01-01T11:00:00Z",
        "ownerReferences": [{"apiVersion": "batch.barge.dev/v1alpha1", "kind": "JobDefinition", "name": "jd", "uid": "u", "controller": true}]}, "revision": 4});
    assert_eq!(
        cells(
            &builtin_table(
                "apps",
                "ControllerRevision",
                &[&rev],
                now(),
                IncludeObject::None
            ),
            0
        ),
        vec![
            json!("jd-1"),
            json!("jobdefinition.batch.barge.dev/jd"),
            json!(4),
            json!("60m")
        ]
    );

    let crd = json!({"metadata": {"name": "jobs.batch.barge.dev", "creationTimestamp": "2025-01-01T11:00:00+00:00"}});
    let t = builtin_table(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        &[&crd],
        now(),
        IncludeObject::Metadata,
    );
    assert_eq!(column_names(&t), vec!["Name", "Created At"]);
    assert_eq!(
        cells(&t, 0),
        vec![json!("jobs.batch.barge.dev"), json!("2025-01-01T11:00:00Z")]
    );
}

#[test]
fn deployments_print_replica_counts() {
    let d = json!({"metadata": {"name": "barge", "creationTimestamp": "2025-01-01T11:00:00Z"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "barge"}}, "template": {"spec": {"containers": [{"name": "op", "image": "barge:dev"}]}}},
        "status": {"readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1}});
    let t = builtin_table("apps", "Deployment", &[&d], now(), IncludeObject::None);
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("barge"),
            json!("1/2"),
            json!(2),
            json!(1),
            json!("60m"),
            json!("op"),
            json!("barge:dev"),
            json!("app=barge")
        ]
    );
}

#[test]
fn include_object_parsing() {
    assert_eq!(IncludeObject::parse("").unwrap(), IncludeObject::Metadata);
    assert_eq!(
        IncludeObject::parse("Object").unwrap(),
        IncludeObject::Object
    );
    assert_eq!(IncludeObject::parse("None").unwrap(), IncludeObject::None);
    assert_eq!(
        IncludeObject::parse("All").unwrap_err(),
        "unrecognized includeObject value: \"All\""
    );
}
