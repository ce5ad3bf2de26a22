//! The upstream CRDs in e2e/fixtures/crds (Karpenter NodePool, Cluster API
//! MachineDeployment) apply cleanly to the simulated API server, serve their kinds at once, accept
//! a valid object and refuse objects breaking their schemas (structural and CEL rules) with 422
//! naming the field, as kube-apiserver does.

mod common;

use barge_sim::{Cluster, ClusterConfig};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::Client;
use serde_json::json;

async fn apply_fixture(client: &Client, file: &str) -> CustomResourceDefinition {
    let text = barge_fixtures::read(&barge_fixtures::crd(file));
    let crd: CustomResourceDefinition = serde_yaml::from_str(&text).expect("CRD YAML");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().expect("name");
    let applied = api
        .patch(
            &name,
            &PatchParams::apply("upstream-crds-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("CRD applies");
    let conds = applied
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True"),
        "{name} established"
    );
    applied
}

fn dynamic(
    client: &Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    ns: Option<&str>,
) -> Api<DynamicObject> {
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

async fn refused(api: &Api<DynamicObject>, obj: serde_json::Value, field: &str) -> String {
    let o: DynamicObject = serde_json::from_value(obj).expect("object");
    match api.create(&PostParams::default(), &o).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422, "{}", e.message);
            assert_eq!(e.reason, "Invalid");
            assert!(
                e.message.contains(field),
                "message names {field}: {}",
                e.message
            );
            e.message
        }
        other => panic!("expected a 422 for {field}, got {other:?}"),
    }
}

fn nodepool(name: &str, requirements: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name},
        "spec": {"template": {"spec": {
            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
            "requirements": requirements}}}})
}

#[tokio::test]
async fn karpenter_nodepool_crd_applies_and_validates() {
    let c = Cluster::start(ClusterConfig::default())
        .await
        .expect("cluster");
    let client = c.client().expect("client");
    apply_fixture(&client, "karpenter.sh_nodepools.yaml").await;
    let api = dynamic(&client, "karpenter.sh", "v1", "NodePool", "nodepools", None);
    let good = nodepool(
        "general",
        json!([{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]}]),
    );
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(good).unwrap(),
        )
        .await
        .expect("valid NodePool");
    // Defaults from the schema are applied (disruption policy).
    assert!(
        created.data["spec"]["disruption"].is_object(),
        "defaults applied: {}",
        created.data["spec"]
    );
    // Structural: a bad enum value.
    refused(
        &api,
        nodepool(
            "bad-op",
            json!([{"key": "kubernetes.io/arch", "operator": "Maybe", "values": ["amd64"]}]),
        ),
        "operator",
    )
    .await;
    // Structural: a required field missing.
    let mut missing = nodepool("no-ref", json!([]));
    missing["spec"]["template"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("nodeClassRef");
    refused(&api, missing, "spec.template.spec.nodeClassRef").await;
    // CEL: operator In needs values.
    let msg = refused(
        &api,
        nodepool(
            "no-values",
            json!([{"key": "kubernetes.io/arch", "operator": "In", "values": []}]),
        ),
        "spec.template.spec.requirements",
    )
    .await;
    assert!(
        msg.contains("requirements with operator 'In' must have a value defined"),
        "{msg}"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn cluster_api_machinedeployment_crd_applies_and_validates() {
    let c = Cluster::start(ClusterConfig::default())
        .await
        .expect("cluster");
    let client = c.client().expect("client");
    let crd = apply_fixture(&client, "cluster.x-k8s.io_machinedeployments.yaml").await;
    let storage = crd
        .spec
        .versions
        .iter()
        .find(|v| v.storage)
        .expect("storage version")
        .name
        .clone();
    let api = dynamic(
        &client,
        "cluster.x-k8s.io",
        &storage,
        "MachineDeployment",
        "machinedeployments",
        Some("default"),
    );
    let md = |name: &str, cluster: &str| {
        json!({"apiVersion": format!("cluster.x-k8s.io/{storage}"), "kind": "MachineDeployment", "metadata": {"name": name},
            "spec": {"clusterName": cluster, "replicas": 2,
                "selector": {"matchLabels": {"pool": "a"}},
                "template": {"metadata": {"labels": {"pool": "a"}}, "spec": {"clusterName": cluster,
                    "bootstrap": {"dataSecretName": "boot"},
                    "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DockerMachineTemplate", "name": "tmpl"}}}}})
    };
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(md("md-a", "c1")).unwrap(),
        )
        .await;
    let created = match created {
        Ok(o) => o,
        Err(e) => panic!("a valid MachineDeployment must be accepted: {e}"),
    };
    assert_eq!(created.data["spec"]["replicas"], 2);
    let mut bad = md("md-b", "c1");
    bad["spec"].as_object_mut().unwrap().remove("clusterName");
    refused(&api, bad, "spec.clusterName").await;
    c.shutdown().await;
}
