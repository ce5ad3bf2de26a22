//! Packaging: the Helm chart (charts/barge), the kustomize tree (config/) and the samples
//! (config/samples), rendered with the real tools and installed into a simulated cluster.
//! - The chart's ClusterRole rules grant exactly what config/rbac/role.yaml grants.
//! - Helm 4 (helm-python-sdk, driven by packaging_helm.py): strict lint, offline render (the
//!   Deployment runs `barge operator` with flags the binary accepts, the RBAC, the CRDs of
//!   config/crd/bases), install into a simulated cluster.
//! - `kubectl kustomize config/default` renders the same pieces; `kubectl apply -k config/default
//!   --server-side` installs them into a simulated cluster.
//! - Every manifest under config/samples is accepted by a cluster with the CRDs (a server-side
//!   dry run), except files named `invalid*`, which must be refused; the sample compute
//!   environment and queue become VALID under the operator.
//!
//! Tests that need kubectl or python3 with helm_python skip loudly when the tool is missing,
//! and fail instead under `BARGE_REQUIRE_TOOLS=1` (as in CI).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::ResourceExt;
use serde::Deserialize;
use serde_json::Value;

use barge_crds::compute_environment::CeStatus;
use barge_crds::consts::LABEL_COMPUTE_ENVIRONMENT;
use barge_crds::job_queue::JqStatus;
use barge_crds::{ComputeEnvironment, JobQueue, SchedulingPolicy};
use barge_operator::run::{self, LogFormat, OperatorArgs};
use barge_sim::{Cluster, ClusterConfig};
use support::{from_yaml, tool_available, wait_for, Env};

/// Release name and namespace of the Helm install, as in the README.
const RELEASE: &str = "barge";
const NAMESPACE: &str = "barge-system";
/// Selects what the chart and config/default install (both label everything with it).
const INSTALL_SELECTOR: &str = "app.kubernetes.io/name=barge";
/// Field manager of this test's dry-run creates.
const TEST_FIELD_MANAGER: &str = "barge-packaging-test";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ lies in the workspace")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(workspace_root().join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The non-empty YAML documents of `text`.
fn yaml_documents(what: &str, text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{what}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn only_of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind}, found {found:#?}"
    );
    found[0]
}

/// One permission a PolicyRule grants: (apiGroup, resource, verb, resourceName or "").
type Permission = (String, String, String, String);

/// The permissions a list of PolicyRules grants, rule by rule expanded, so that two lists that
/// group the same permissions differently compare equal.
fn permissions(what: &str, rules: &Value) -> BTreeSet<Permission> {
    let rules = rules
        .as_array()
        .unwrap_or_else(|| panic!("{what}: the rules are not a list: {rules}"));
    let mut granted = BTreeSet::new();
    for rule in rules {
        let list = |key: &str| -> Vec<String> {
            rule.get(key)
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .unwrap_or_else(|| panic!("{what}: {key} holds {v}"))
                                .to_string()
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        assert!(
            list("nonResourceURLs").is_empty(),
            "{what}: Barge's roles have no nonResourceURLs: {rule}"
        );
        let mut names = list("resourceNames");
        if names.is_empty() {
            names.push(String::new());
        }
        for group in list("apiGroups") {
            for resource in list("resources") {
                for verb in list("verbs") {
                    for name in &names {
                        granted.insert((
                            group.clone(),
                            resource.clone(),
                            verb.clone(),
                            name.clone(),
                        ));
                    }
                }
            }
        }
    }
    granted
}

fn assert_same_permissions(what: &str, got: &BTreeSet<Permission>, want: &BTreeSet<Permission>) {
    assert!(!want.is_empty(), "{what}: no permissions to compare");
    let missing: Vec<_> = want.difference(got).collect();
    let extra: Vec<_> = got.difference(want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}; extra {extra:?}"
    );
}

/// The chart's ClusterRole rules (charts/barge/files/cluster-role-rules.yaml).
fn chart_cluster_permissions() -> BTreeSet<Permission> {
    let rules: Value = serde_yaml::from_str(&read("charts/barge/files/cluster-role-rules.yaml"))
        .expect("cluster-role-rules.yaml is YAML");
    permissions("charts/barge/files/cluster-role-rules.yaml", &rules)
}

/// The kustomize ClusterRole's and leader-election Role's permissions (config/rbac).
fn kustomize_rbac_permissions() -> (BTreeSet<Permission>, BTreeSet<Permission>) {
    let role = yaml_documents("config/rbac/role.yaml", &read("config/rbac/role.yaml"));
    let role = only_of_kind(&role, "ClusterRole");
    let leader = yaml_documents(
        "config/rbac/leader_election_role.yaml",
        &read("config/rbac/leader_election_role.yaml"),
    );
    let leader = only_of_kind(&leader, "Role");
    (
        permissions("config/rbac/role.yaml", &role["rules"]),
        permissions("config/rbac/leader_election_role.yaml", &leader["rules"]),
    )
}

/// The CRDs of config/crd/bases by name.
fn kustomize_crd_bases() -> BTreeMap<String, Value> {
    let dir = workspace_root().join("config/crd/bases");
    let mut crds = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("config/crd/bases exists") {
        let path = entry.expect("directory entry").path();
        let text = std::fs::read_to_string(&path).expect("CRD file is readable");
        for doc in yaml_documents(&path.display().to_string(), &text) {
            crds.insert(crd_name(&doc), doc);
        }
    }
    let expected: BTreeSet<String> = run::crd_names().into_iter().collect();
    assert_eq!(crds.keys().cloned().collect::<BTreeSet<_>>(), expected);
    crds
}

fn crd_name(doc: &Value) -> String {
    assert_eq!(doc["kind"], "CustomResourceDefinition", "{doc}");
    doc["metadata"]["name"]
        .as_str()
        .expect("a CRD has a name")
        .to_string()
}

fn crds_by_name(docs: &[Value]) -> BTreeMap<String, Value> {
    of_kind(docs, "CustomResourceDefinition")
        .into_iter()
        .map(|d| (crd_name(d), d.clone()))
        .collect()
}

/// Where two JSON values first differ, as `path: left != right` (None when equal).
fn first_difference(path: &str, left: &Value, right: &Value) -> Option<String> {
    match (left, right) {
        (Value::Object(l), Value::Object(r)) => l
            .keys()
            .chain(r.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .find_map(|k| {
                first_difference(
                    &format!("{path}.{k}"),
                    l.get(k).unwrap_or(&Value::Null),
                    r.get(k).unwrap_or(&Value::Null),
                )
            }),
        (Value::Array(l), Value::Array(r)) if l.len() == r.len() => l
            .iter()
            .zip(r)
            .enumerate()
            .find_map(|(i, (l, r))| first_difference(&format!("{path}[{i}]"), l, r)),
        // YAML tools may print 100 as 100.0: numbers compare by value.
        (Value::Number(l), Value::Number(r)) if l.as_f64() == r.as_f64() => None,
        _ if left == right => None,
        _ => Some(format!("{path}: {left} != {right}")),
    }
}

/// Asserts two sets of CRDs (by name) are equal, naming the first difference.
fn assert_same_crds(what: &str, got: &BTreeMap<String, Value>, want: &BTreeMap<String, Value>) {
    let got_value = serde_json::to_value(got).expect("serialize");
    let want_value = serde_json::to_value(want).expect("serialize");
    if let Some(difference) = first_difference("", &got_value, &want_value) {
        panic!("{what}: the CRDs differ from config/crd/bases at {difference}");
    }
}

/// The `barge` command line, as the binary parses it, for the Deployments' arguments.
#[derive(Debug, Parser)]
#[command(name = "barge")]
struct BargeCommandLine {
    #[command(subcommand)]
    command: BargeCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BargeCommand {
    Operator(OperatorArgs),
}

/// Checks a Deployment runs `barge operator` with flags the binary accepts, leader election
/// on, JSON logs, probes on the metrics port; returns the parsed flags.
fn check_operator_deployment(what: &str, deployment: &Value) -> OperatorArgs {
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "{what}: one container");
    let container = &containers[0];
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: the container has args"))
        .iter()
        .map(|a| a.as_str().expect("args are strings").to_string())
        .collect();
    assert_eq!(
        args.first().map(String::as_str),
        Some("operator"),
        "{what}: runs `barge operator`"
    );
    let parsed =
        BargeCommandLine::try_parse_from(std::iter::once("barge".to_string()).chain(args.clone()))
            .unwrap_or_else(|e| panic!("{what}: `barge {}` is refused:\n{e}", args.join(" ")));
    let BargeCommand::Operator(flags) = parsed.command;
    assert!(flags.leader_election, "{what}: leader election is on");
    assert_eq!(flags.log_format, LogFormat::Json, "{what}");
    let metrics_port = container["ports"]
        .as_array()
        .and_then(|ports| ports.iter().find(|p| p["name"] == "metrics"))
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("{what}: a metrics port"));
    assert_eq!(u64::from(flags.metrics_addr.port()), metrics_port, "{what}");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let env: BTreeSet<&str> = container["env"]
        .as_array()
        .map(|e| e.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        env.contains("POD_NAME") && env.contains("POD_NAMESPACE"),
        "{what}: the lease identity and namespace come from the downward API: {env:?}"
    );
    flags
}

/// Checks the pieces of an install (rendered, or read back from a cluster): a ClusterRole with
/// the chart's rules bound to the Deployment's service account, the leader election Role, the
/// Deployment running `barge operator` and the metrics Service selecting its pods.
fn check_install(what: &str, docs: &[Value]) {
    let cluster_role = only_of_kind(docs, "ClusterRole");
    assert_same_permissions(
        &format!("{what} ClusterRole"),
        &permissions(what, &cluster_role["rules"]),
        &chart_cluster_permissions(),
    );
    let (_, leader) = kustomize_rbac_permissions();
    let role = only_of_kind(docs, "Role");
    assert_same_permissions(
        &format!("{what} leader-election Role"),
        &permissions(what, &role["rules"]),
        &leader,
    );
    let deployment = only_of_kind(docs, "Deployment");
    assert_eq!(deployment["metadata"]["namespace"], NAMESPACE, "{what}");
    check_operator_deployment(what, deployment);
    let account = &deployment["spec"]["template"]["spec"]["serviceAccountName"];
    let sa = only_of_kind(docs, "ServiceAccount");
    assert_eq!(&sa["metadata"]["name"], account, "{what}");
    assert_eq!(sa["metadata"]["namespace"], NAMESPACE, "{what}");
    for (binding_kind, role_kind, role_name) in [
        (
            "ClusterRoleBinding",
            "ClusterRole",
            &cluster_role["metadata"]["name"],
        ),
        ("RoleBinding", "Role", &role["metadata"]["name"]),
    ] {
        let binding = only_of_kind(docs, binding_kind);
        assert_eq!(binding["roleRef"]["kind"], role_kind, "{what}");
        assert_eq!(&binding["roleRef"]["name"], role_name, "{what}");
        let subject = &binding["subjects"][0];
        assert_eq!(subject["kind"], "ServiceAccount", "{what} {binding_kind}");
        assert_eq!(&subject["name"], account, "{what} {binding_kind}");
        assert_eq!(subject["namespace"], NAMESPACE, "{what} {binding_kind}");
    }
    let service = only_of_kind(docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    let selector = service["spec"]["selector"].as_object().expect("selector");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in selector {
        assert_eq!(
            &pod_labels[k], v,
            "{what}: the metrics Service selects the operator"
        );
    }
}

#[test]
fn the_chart_and_kustomize_grant_the_same_cluster_permissions() {
    let chart = chart_cluster_permissions();
    let (kustomize, _) = kustomize_rbac_permissions();
    assert_same_permissions(
        "config/rbac/role.yaml against the chart",
        &kustomize,
        &chart,
    );
    // Both cover every kind the operator watches and writes the status of.
    for crd in barge_crds::all_crds() {
        let group = crd.spec.group.clone();
        let plural = crd.spec.names.plural.clone();
        for (resource, verb) in [
            (plural.clone(), "watch"),
            (plural.clone(), "patch"),
            (format!("{plural}/status"), "patch"),
        ] {
            assert!(
                chart.contains(&(group.clone(), resource.clone(), verb.into(), String::new())),
                "the operator may {verb} {resource}.{group}"
            );
        }
    }
}

/// `python3 packaging_helm.py CHART RELEASE NAMESPACE args...`: its JSON output.
fn helm(args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("packaging_helm.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(workspace_root().join("charts").join("barge"))
        .args([RELEASE, NAMESPACE])
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "packaging_helm.py {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("packaging_helm.py prints JSON")
}

/// Waits until every Barge CRD is Established.
async fn wait_for_barge_crds(client: &kube::Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in run::crd_names() {
        wait_for(&api, &name, "Established", |crd| {
            crd.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
        })
        .await;
    }
}

/// The objects of an install (labelled `app.kubernetes.io/name=barge`), read back from the
/// cluster, as JSON documents.
async fn installed_objects(client: &kube::Client, deployment: &str) -> Vec<Value> {
    async fn all<K>(api: Api<K>) -> Vec<Value>
    where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + serde::Serialize,
    {
        api.list(&ListParams::default().labels(INSTALL_SELECTOR))
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|o| {
                let mut v = serde_json::to_value(&o).expect("serialize");
                // List items carry no kind; the checks look objects up by kind.
                v["kind"] = Value::String(K::kind(&()).into_owned());
                v
            })
            .collect()
    }
    let mut docs = Vec::new();
    docs.extend(all::<ClusterRole>(Api::all(client.clone())).await);
    docs.extend(all::<ClusterRoleBinding>(Api::all(client.clone())).await);
    docs.extend(all::<Role>(Api::namespaced(client.clone(), NAMESPACE)).await);
    docs.extend(all::<RoleBinding>(Api::namespaced(client.clone(), NAMESPACE)).await);
    docs.extend(all::<Deployment>(Api::namespaced(client.clone(), NAMESPACE)).await);
    docs.extend(all::<ServiceAccount>(Api::namespaced(client.clone(), NAMESPACE)).await);
    docs.extend(all::<Service>(Api::namespaced(client.clone(), NAMESPACE)).await);
    assert!(
        of_kind(&docs, "Deployment")
            .iter()
            .any(|d| d["metadata"]["name"] == deployment),
        "Deployment {deployment} is installed: {docs:#?}"
    );
    docs
}

/// The installed CRDs, compared on what the manifests set (the server adds status and
/// metadata of its own).
async fn installed_crds(client: &kube::Client) -> BTreeMap<String, Value> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut crds = BTreeMap::new();
    for name in run::crd_names() {
        let crd = api.get(&name).await.expect("CRD installed");
        let mut spec = serde_json::to_value(&crd.spec).expect("serialize");
        // The server defaults conversion; the manifests leave it out.
        if let Some(o) = spec.as_object_mut() {
            o.remove("conversion");
        }
        crds.insert(name, spec);
    }
    crds
}

fn crd_specs(crds: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    crds.iter()
        .map(|(name, crd)| {
            let spec: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionSpec =
                serde_json::from_value(crd["spec"].clone()).expect("a CRD spec");
            let mut spec = serde_json::to_value(spec).expect("serialize");
            if let Some(o) = spec.as_object_mut() {
                o.remove("conversion");
            }
            // The API server defaults listKind to `<kind>List`.
            if spec["names"]["listKind"].is_null() {
                let list_kind = format!("{}List", spec["names"]["kind"].as_str().unwrap_or_default());
                spec["names"]["listKind"] = Value::String(list_kind);
            }
            (name.clone(), spec)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_helm_chart_lints_renders_and_installs() {
    if !tool_available("python3", &["-c", "import helm_python"]) {
        return;
    }
    let out = tokio::task::spawn_blocking(|| helm(&["render"]))
        .await
        .expect("helm task");

    let lint = &out["lint"];
    assert_eq!(lint["errors"], serde_json::json!([]), "helm lint: {lint}");
    let findings: Vec<&Value> = lint["messages"]
        .as_array()
        .expect("lint messages")
        .iter()
        .filter(|m| m["severity"].as_u64().unwrap_or(3) >= 2)
        .collect();
    assert!(findings.is_empty(), "helm lint --strict: {findings:#?}");

    let mut docs = Vec::new();
    for (template, manifest) in out["rendered"].as_object().expect("rendered templates") {
        docs.extend(yaml_documents(
            template,
            manifest.as_str().expect("a manifest"),
        ));
    }
    let mut chart_crds = Vec::new();
    for crd in out["crds"].as_array().expect("chart CRDs") {
        chart_crds.extend(yaml_documents(
            crd["filename"].as_str().unwrap_or("crd"),
            crd["data"].as_str().expect("CRD text"),
        ));
    }
    assert_same_crds(
        "the chart",
        &crds_by_name(&chart_crds),
        &kustomize_crd_bases(),
    );
    check_install("helm template", &docs);
    let deployment = only_of_kind(&docs, "Deployment");
    assert_eq!(deployment["metadata"]["name"], RELEASE);
    assert_eq!(deployment["spec"]["replicas"], 2);

    // Install into a simulated cluster: Helm creates the namespace, the CRDs, then the rest.
    let cluster = Cluster::start(ClusterConfig::default())
        .await
        .expect("cluster");
    let client = cluster.client().expect("client");
    let kubeconfig = cluster.kubeconfig_path().display().to_string();
    let out = tokio::task::spawn_blocking(move || helm(&["install", &kubeconfig]))
        .await
        .expect("helm task");
    assert_eq!(out["installed"]["status"], "deployed", "{out}");
    wait_for_barge_crds(&client).await;
    Api::<Namespace>::all(client.clone())
        .get(NAMESPACE)
        .await
        .expect("the release namespace was created");
    let installed = installed_objects(&client, RELEASE).await;
    check_install("helm install", &installed);
    assert_same_crds(
        "helm install",
        &installed_crds(&client).await,
        &crd_specs(&kustomize_crd_bases()),
    );
    let releases = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default().labels("owner=helm,name=barge"))
        .await
        .expect("list release secrets");
    assert_eq!(releases.items.len(), 1, "Helm recorded the release");
    cluster.shutdown().await;
}

/// kubectl with the simulated cluster's kubeconfig (when given) and a private cache directory.
struct Kubectl {
    kubeconfig: Option<PathBuf>,
    cache: tempfile::TempDir,
}

impl Kubectl {
    fn new(kubeconfig: Option<&Path>) -> Kubectl {
        Kubectl {
            kubeconfig: kubeconfig.map(Path::to_path_buf),
            cache: tempfile::tempdir().expect("kubectl cache dir"),
        }
    }

    /// Runs `kubectl args...` in the workspace root; requires success and returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("kubectl");
        if let Some(kubeconfig) = &self.kubeconfig {
            cmd.env("KUBECONFIG", kubeconfig);
        }
        let out = cmd
            .current_dir(workspace_root())
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .output()
            .expect("kubectl runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kustomize_renders_and_applies_config_default() {
    if !tool_available("kubectl", &["version", "--client"]) {
        return;
    }
    let rendered = Kubectl::new(None).ok(&["kustomize", "config/default"]);
    let docs = yaml_documents("kubectl kustomize config/default", &rendered);
    assert_same_crds(
        "kubectl kustomize config/default",
        &crds_by_name(&docs),
        &kustomize_crd_bases(),
    );
    assert_eq!(
        only_of_kind(&docs, "Namespace")["metadata"]["name"],
        NAMESPACE
    );
    check_install("kubectl kustomize config/default", &docs);
    assert_eq!(
        only_of_kind(&docs, "Deployment")["metadata"]["name"],
        "barge-operator"
    );

    let cluster = Cluster::start(ClusterConfig::default())
        .await
        .expect("cluster");
    let client = cluster.client().expect("client");
    let kubeconfig = cluster.kubeconfig_path().to_path_buf();
    let applied = tokio::task::spawn_blocking(move || {
        Kubectl::new(Some(&kubeconfig)).ok(&["apply", "-k", "config/default", "--server-side"])
    })
    .await
    .expect("kubectl task");
    let lines: Vec<&str> = applied.lines().collect();
    assert_eq!(
        lines.len(),
        docs.len(),
        "one line per object applied:\n{applied}"
    );
    assert!(
        lines.iter().all(|l| l.ends_with("serverside-applied")),
        "{applied}"
    );
    wait_for_barge_crds(&client).await;
    Api::<Namespace>::all(client.clone())
        .get(NAMESPACE)
        .await
        .expect("the namespace was created");
    let installed = installed_objects(&client, "barge-operator").await;
    check_install("kubectl apply -k config/default", &installed);
    assert_same_crds(
        "kubectl apply -k",
        &installed_crds(&client).await,
        &crd_specs(&kustomize_crd_bases()),
    );
    cluster.shutdown().await;
}

/// Every YAML file under config/samples (recursively) but kustomization files, sorted.
fn sample_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable samples directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml")
                && !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("kustomization."))
            {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&workspace_root().join("config").join("samples"), &mut files);
    files.sort();
    files
}

/// A sample meant to be refused: its file name, or a directory it lies in under
/// config/samples, starts with `invalid`.
fn meant_to_fail(path: &Path) -> bool {
    let samples = workspace_root().join("config").join("samples");
    path.strip_prefix(&samples)
        .unwrap_or(path)
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with("invalid"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_is_accepted_by_a_cluster_with_the_crds() {
    let env = Env::start().await;
    let dry_run = PostParams {
        dry_run: true,
        field_manager: Some(TEST_FIELD_MANAGER.into()),
    };
    let (mut accepted, mut refused) = (0, 0);
    for path in sample_files() {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).expect("sample is readable");
        for doc in yaml_documents(&shown, &text) {
            let obj: DynamicObject = serde_json::from_value(doc.clone())
                .unwrap_or_else(|e| panic!("{shown}: not a Kubernetes object: {e}"));
            let types = obj
                .types
                .clone()
                .unwrap_or_else(|| panic!("{shown}: apiVersion and kind"));
            let gvk = GroupVersionKind::try_from(&types).expect("apiVersion");
            let (resource, caps) = kube::discovery::pinned_kind(&env.client, &gvk)
                .await
                .unwrap_or_else(|e| panic!("{shown}: the cluster serves no {gvk:?}: {e}"));
            let api: Api<DynamicObject> = match caps.scope {
                kube::discovery::Scope::Namespaced => Api::namespaced_with(
                    env.client.clone(),
                    obj.metadata.namespace.as_deref().unwrap_or("default"),
                    &resource,
                ),
                kube::discovery::Scope::Cluster => Api::all_with(env.client.clone(), &resource),
            };
            let result = api.create(&dry_run, &obj).await;
            if meant_to_fail(&path) {
                assert!(
                    result.is_err(),
                    "{shown}: should be refused but was accepted"
                );
                refused += 1;
                continue;
            }
            if let Err(e) = result {
                panic!("{shown}: {} {} is refused: {e}", types.kind, obj.name_any());
            }
            assert!(
                api.get_opt(&obj.name_any()).await.expect("get").is_none(),
                "{shown}: a dry run stores nothing"
            );
            accepted += 1;
        }
    }
    eprintln!("samples: {accepted} accepted, {refused} refused as meant");
    assert!(accepted >= 5, "one sample per kind at least");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_environment_and_queue_become_valid_under_the_operator() {
    let env = Env::start().await;
    let operator = env.start_operator();
    let ce: ComputeEnvironment = from_yaml(&read(
        "config/samples/batch_v1alpha1_computeenvironment.yaml",
    ));
    let desired = ce
        .spec
        .compute_resources
        .as_ref()
        .and_then(|r| r.desiredv_cpus)
        .unwrap_or(0);
    assert!(
        desired > 0,
        "the sample's fixed-size pool needs desiredvCpus > 0 to get nodes"
    );
    let policy: SchedulingPolicy =
        from_yaml(&read("config/samples/batch_v1alpha1_schedulingpolicy.yaml"));
    let queue: JobQueue = from_yaml(&read("config/samples/batch_v1alpha1_jobqueue.yaml"));
    let pp = PostParams::default();
    let ces = env.api::<ComputeEnvironment>();
    ces.create(&pp, &ce).await.expect("create the sample CE");
    env.api::<SchedulingPolicy>()
        .create(&pp, &policy)
        .await
        .expect("create the sample policy");
    let queues = env.api::<JobQueue>();
    queues
        .create(&pp, &queue)
        .await
        .expect("create the sample queue");

    let name = ce.name_any();
    let valid = wait_for(&ces, &name, "VALID with nodes", |ce| {
        ce.status.as_ref().is_some_and(|s| {
            s.status == Some(CeStatus::Valid) && s.node_counts.values().sum::<i32>() > 0
        })
    })
    .await;
    let status = valid.status.expect("status");
    assert!(status.desiredv_cpus.unwrap_or(0) >= desired, "{status:?}");
    let nodes = env
        .api::<Node>()
        .list(&ListParams::default().labels(&format!("{LABEL_COMPUTE_ENVIRONMENT}={name}")))
        .await
        .expect("nodes")
        .items;
    assert_eq!(
        i32::try_from(nodes.len()).expect("few nodes"),
        status.node_counts.values().sum::<i32>(),
        "the pool's nodes exist"
    );
    wait_for(&queues, &queue.name_any(), "VALID", |q| {
        q.status
            .as_ref()
            .is_some_and(|s| s.status == Some(JqStatus::Valid))
    })
    .await;
    operator.stop().await.expect("operator stops cleanly");
    env.stop().await;
}

#[test]
fn ci_runs_the_test_command_the_readme_gives() {
    let readme = read("README.md");
    let quick_start = readme
        .split("## Quick start")
        .nth(1)
        .and_then(|rest| rest.split("```sh").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("README.md has a Quick start with a sh block");
    let commands: Vec<&str> = quick_start
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        commands,
        [
            "cargo run -p barge-operator -- demo",
            "cargo test --workspace"
        ],
        "the Quick start is exactly two commands"
    );
    let ci = read(".ci/run");
    let ci_tests: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cargo test"))
        .collect();
    assert_eq!(
        ci_tests,
        [commands[1]],
        ".ci/run runs the README's test command"
    );
}
