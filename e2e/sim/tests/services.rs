//! Services as multi-node jobs use them: a headless Service (`clusterIP: None`, no ports,
//! `publishNotReadyAddresses`) is created, read, listed by label, deleted, and garbage-collected
//! with its owner; kube-apiserver's Service and pod DNS-name rules refuse what a real cluster
//! refuses.

mod common;

use std::time::Duration;

use barge_sim::{Cluster, ClusterConfig};
use common::eventually;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::ResourceExt;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn headless(name: &str, owner: Option<&ConfigMap>) -> Service {
    let mut svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "labels": {"batch.barge.dev/job-name": "j"}},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": true,
            "selector": {"batch.barge.dev/job-name": "j"},
        },
    });
    if let Some(o) = owner {
        svc["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "v1", "kind": "ConfigMap", "name": o.name_any(),
            "uid": o.metadata.uid.clone().expect("uid"), "controller": true,
            "blockOwnerDeletion": true,
        }]);
    }
    serde_json::from_value(svc).expect("service json")
}

#[tokio::test]
async fn headless_services_are_served_and_collected_with_their_owner() {
    let cluster = Cluster::start(ClusterConfig::default())
        .await
        .expect("cluster");
    let client = cluster.client().expect("client");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let owner: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "owner"}})).expect("configmap json");
    let owner = configmaps
        .create(&PostParams::default(), &owner)
        .await
        .expect("owner");

    let created = services
        .create(&PostParams::default(), &headless("j-nodes", Some(&owner)))
        .await
        .expect("a headless Service without ports is valid");
    let spec = created.spec.clone().expect("spec");
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.cluster_ips, Some(vec!["None".to_string()]));
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    assert!(spec.ports.is_none());

    let got = services.get("j-nodes").await.expect("get");
    assert_eq!(got.metadata.uid, created.metadata.uid);
    let listed = services
        .list(&ListParams::default().labels("batch.barge.dev/job-name=j"))
        .await
        .expect("list");
    assert_eq!(
        listed
            .items
            .iter()
            .map(|s| s.name_any())
            .collect::<Vec<_>>(),
        ["j-nodes"]
    );

    // A second Service is deleted by hand; the owned one goes with its owner.
    services
        .create(&PostParams::default(), &headless("k-nodes", None))
        .await
        .expect("second");
    services
        .delete("k-nodes", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(services.get_opt("k-nodes").await.expect("get").is_none());
    configmaps
        .delete("owner", &DeleteParams::default())
        .await
        .expect("delete owner");
    eventually("the owned Service to be garbage-collected", WAIT, || {
        let services = services.clone();
        async move {
            services
                .get_opt("j-nodes")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn service_and_pod_dns_names_are_validated() {
    let cluster = Cluster::start(ClusterConfig::default())
        .await
        .expect("cluster");
    let client = cluster.client().expect("client");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let refused = |e: kube::Error| match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("not an API error: {other}"),
    };

    let mut portless = headless("plain", None);
    if let Some(spec) = portless.spec.as_mut() {
        spec.cluster_ip = None;
    }
    let (code, message) = refused(
        services
            .create(&PostParams::default(), &portless)
            .await
            .expect_err("a ClusterIP Service needs ports"),
    );
    assert_eq!(code, 422);
    assert!(message.contains("spec.ports: Required value"), "{message}");

    let (code, message) = refused(
        services
            .create(&PostParams::default(), &headless("9-nodes", None))
            .await
            .expect_err("a Service name starting with a digit"),
    );
    assert_eq!(code, 422);
    assert!(message.contains("a DNS-1035 label"), "{message}");

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = |subdomain: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "j-1-node-0"},
            "spec": {"hostname": "node-0", "subdomain": subdomain,
                     "containers": [{"name": "main", "image": "busybox"}]},
        }))
        .expect("pod json")
    };
    let long = "x".repeat(64);
    let (code, message) = refused(
        pods.create(&PostParams::default(), &pod(&long))
            .await
            .expect_err("a subdomain longer than a DNS label"),
    );
    assert_eq!(code, 422);
    assert!(
        message.contains("spec.subdomain: Invalid value")
            && message.contains("must be no more than 63 characters"),
        "{message}"
    );
    pods.create(&PostParams::default(), &pod("j-nodes"))
        .await
        .expect("hostname and subdomain are accepted");
    cluster.shutdown().await;
}
