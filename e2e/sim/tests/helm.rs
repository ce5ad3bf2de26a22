//! Helm 4 (`pip install helm-python-sdk`) against the simulated API server: render a small chart
//! (a CRD in crds/, a ConfigMap, RBAC, a Service, a Deployment and a custom object), install it,
//! upgrade it with new values, uninstall it. Helm's release storage writes Secrets as protobuf
//! and applies resources with server-side apply; both must work. Skips loudly without python3 /
//! helm_python unless BARGE_REQUIRE_TOOLS=1.

mod common;

use std::path::PathBuf;
use std::process::Command;

use barge_sim::{Cluster, ClusterConfig};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, ListParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};

fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn helm(kubeconfig: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(tests_dir().join("helm_release.py"))
        .arg(kubeconfig)
        .arg(tests_dir().join("charts").join("sim-demo"))
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "helm_release.py {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("helm_release.py prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_renders_installs_upgrades_and_uninstalls_a_chart() {
    if !common::tool_available("python3", &["-c", "import helm_python"]) {
        return;
    }
    let c = Cluster::start(ClusterConfig::default())
        .await
        .expect("cluster");
    let client = c.client().expect("client");
    let kc = c.kubeconfig_path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || helm(&kc, &["demo"]))
        .await
        .expect("helm task");

    let rendered = out["rendered"]["sim-demo/templates/all.yaml"]
        .as_str()
        .expect("rendered manifest");
    assert!(
        rendered.contains("name: demo-config") && rendered.contains("greeting: \"hi\""),
        "{rendered}"
    );
    assert_eq!(out["installed"]["status"], "deployed");
    assert_eq!(out["upgraded"]["status"], "deployed");
    assert_eq!(out["upgraded"]["revision"], 2);
    assert_eq!(out["listed"][0]["name"], "demo");

    let ns = "default";
    let cm: ConfigMap = Api::namespaced(client.clone(), ns)
        .get("demo-config")
        .await
        .expect("configmap");
    assert_eq!(
        cm.data
            .unwrap_or_default()
            .get("greeting")
            .map(String::as_str),
        Some("hey"),
        "upgrade applied new values"
    );
    assert_eq!(
        cm.metadata
            .labels
            .unwrap_or_default()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("Helm")
    );
    let svc: Service = Api::namespaced(client.clone(), ns)
        .get("demo-svc")
        .await
        .expect("service");
    assert!(svc
        .spec
        .and_then(|s| s.cluster_ip)
        .is_some_and(|ip| ip.starts_with("10.96.")));
    let dep: Deployment = Api::namespaced(client.clone(), ns)
        .get("demo-web")
        .await
        .expect("deployment");
    assert_eq!(dep.spec.replicas, Some(2));
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Gadget"),
        "gadgets",
    );
    let gadgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    assert_eq!(
        gadgets.get("demo-gadget").await.expect("gadget").data["spec"]["size"],
        5
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let releases = secrets
        .list(&ListParams::default().labels("owner=helm,name=demo"))
        .await
        .expect("list");
    assert_eq!(releases.items.len(), 2, "one release secret per revision");

    let kc = c.kubeconfig_path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || helm(&kc, &["demo", "uninstall"]))
        .await
        .expect("helm task");
    assert_eq!(out["uninstalled"], "demo");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    assert!(cms.get_opt("demo-config").await.expect("get").is_none());
    assert!(gadgets.get_opt("demo-gadget").await.expect("get").is_none());
    assert!(secrets
        .list(&ListParams::default().labels("owner=helm,name=demo"))
        .await
        .expect("list")
        .items
        .is_empty());
    c.shutdown().await;
}
