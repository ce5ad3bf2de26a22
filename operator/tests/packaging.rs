//! Packaging: the Helm chart (charts/barge), the kustomize tree (config/) and the samples
//! (config/samples), rendered with the real tools and installed into a simulated cluster.
//! - The operator's ClusterRole and leader-election Role, found through the bindings of its
//!   service account, grant what config/rbac's grant (rendered, installed, kustomized).
//! - Helm 4 (helm-python-sdk, driven by packaging_helm.py): strict lint, offline render (the
//!   Deployment runs `barge operator` with flags the binary accepts; RBAC; the CRD templates are
//!   config/crd/bases plus `helm.sh/resource-policy: keep`; PodDisruptionBudget, topology spread,
//!   priority class, the metrics NetworkPolicy; NOTES.txt), install into a simulated cluster,
//!   `helm upgrade` to a chart whose CRD changed changes the CRD, `helm uninstall` keeps the CRDs.
//! - The chart's options (name and fullname overrides, image digest, extraArgs, env,
//!   ServiceMonitor, NetworkPolicy peers, crds.install) render as documented;
//!   values.schema.json refuses typos.
//! - As a subchart of a parent chart (a `file://` dependency with `condition:` and `global`
//!   values) it lints, renders and installs; typos inside `barge:` are refused.
//! - `kubectl kustomize config/default` renders the chart's default objects, object by object
//!   (Helm's bookkeeping labels aside); `kubectl apply -k config/default --server-side` installs
//!   them into a simulated cluster.
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
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition,
};
use kube::api::{Api, ListParams, PostParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::{CustomResourceExt, ResourceExt};
use serde::Deserialize;
use serde_json::Value;

use barge_crds::compute_environment::CeStatus;
use barge_crds::consts::LABEL_COMPUTE_ENVIRONMENT;
use barge_crds::crdgen::{crd_file_name, render_helm_crd_template, HELM_RESOURCE_POLICY};
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

/// The Role or ClusterRole (`role_kind`) that a binding of `binding_kind` among `docs` grants
/// to the service account `account` in the release namespace; exactly one binding must.
fn role_bound_to<'a>(
    what: &str,
    docs: &'a [Value],
    binding_kind: &str,
    role_kind: &str,
    account: &Value,
) -> &'a Value {
    let bindings: Vec<&Value> = of_kind(docs, binding_kind)
        .into_iter()
        .filter(|b| {
            b["subjects"].as_array().is_some_and(|subjects| {
                subjects.iter().any(|s| {
                    s["kind"] == "ServiceAccount"
                        && &s["name"] == account
                        && s["namespace"] == NAMESPACE
                })
            })
        })
        .collect();
    assert_eq!(
        bindings.len(),
        1,
        "{what}: one {binding_kind} binds the operator's service account: {bindings:#?}"
    );
    let binding = bindings[0];
    assert_eq!(binding["roleRef"]["kind"], role_kind, "{what}");
    of_kind(docs, role_kind)
        .into_iter()
        .find(|r| r["metadata"]["name"] == binding["roleRef"]["name"])
        .unwrap_or_else(|| panic!("{what}: the {role_kind} {binding} names is there"))
}

/// The kustomize operator ClusterRole's and leader-election Role's permissions (config/rbac),
/// found as the chart's are: through the bindings of the operator's service account.
fn kustomize_rbac_permissions() -> (BTreeSet<Permission>, BTreeSet<Permission>) {
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(workspace_root().join("config/rbac")).expect("config/rbac") {
        let path = entry.expect("directory entry").path();
        if path.file_name().is_some_and(|n| n != "kustomization.yaml") {
            let text = std::fs::read_to_string(&path).expect("readable RBAC file");
            docs.extend(yaml_documents(&path.display().to_string(), &text));
        }
    }
    let account = &only_of_kind(&docs, "ServiceAccount")["metadata"]["name"];
    let cluster_role = role_bound_to(
        "config/rbac",
        &docs,
        "ClusterRoleBinding",
        "ClusterRole",
        account,
    );
    let role = role_bound_to("config/rbac", &docs, "RoleBinding", "Role", account);
    (
        permissions("config/rbac operator ClusterRole", &cluster_role["rules"]),
        permissions("config/rbac leader-election Role", &role["rules"]),
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
    let deployment = only_of_kind(docs, "Deployment");
    assert_eq!(deployment["metadata"]["namespace"], NAMESPACE, "{what}");
    check_operator_deployment(what, deployment);
    let account = &deployment["spec"]["template"]["spec"]["serviceAccountName"];
    let sa = only_of_kind(docs, "ServiceAccount");
    assert_eq!(&sa["metadata"]["name"], account, "{what}");
    assert_eq!(sa["metadata"]["namespace"], NAMESPACE, "{what}");
    let (cluster_wide, leader) = kustomize_rbac_permissions();
    let cluster_role = role_bound_to(what, docs, "ClusterRoleBinding", "ClusterRole", account);
    assert_same_permissions(
        &format!("{what} operator ClusterRole"),
        &permissions(what, &cluster_role["rules"]),
        &cluster_wide,
    );
    let role = role_bound_to(what, docs, "RoleBinding", "Role", account);
    assert_eq!(role["metadata"]["namespace"], NAMESPACE, "{what}");
    assert_same_permissions(
        &format!("{what} leader-election Role"),
        &permissions(what, &role["rules"]),
        &leader,
    );
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

/// Exit status of packaging_helm.py when Helm refused (its JSON names the error).
const HELM_REFUSED: i32 = 3;

/// One chart, release and namespace driven through packaging_helm.py (Helm 4's Go SDK).
#[derive(Clone, Debug)]
struct Helm {
    chart: PathBuf,
    release: String,
    namespace: String,
}

impl Helm {
    /// charts/barge as release `release` in barge-system.
    fn barge(release: &str) -> Helm {
        Helm::chart(
            workspace_root().join("charts").join("barge"),
            release,
            NAMESPACE,
        )
    }

    fn chart(chart: PathBuf, release: &str, namespace: &str) -> Helm {
        Helm {
            chart,
            release: release.into(),
            namespace: namespace.into(),
        }
    }

    /// `packaging_helm.py STEP CHART RELEASE NAMESPACE [--values] [--kubeconfig]`: its JSON
    /// output, or Helm's error message when Helm refused.
    fn run(
        &self,
        step: &str,
        values: Option<&Value>,
        kubeconfig: Option<&Path>,
    ) -> Result<Value, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("packaging_helm.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg(step)
            .arg(&self.chart)
            .args([&self.release, &self.namespace]);
        if let Some(values) = values {
            cmd.arg("--values").arg(values.to_string());
        }
        if let Some(kubeconfig) = kubeconfig {
            cmd.arg("--kubeconfig").arg(kubeconfig);
        }
        let out = cmd.output().expect("python3 runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let parsed = || -> Value {
            serde_json::from_str(&stdout).unwrap_or_else(|e| {
                panic!(
                    "packaging_helm.py {step} printed no JSON ({e}):\n{stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
        };
        match out.status.code() {
            Some(0) => Ok(parsed()),
            Some(HELM_REFUSED) => Err(parsed()["error"]["message"]
                .as_str()
                .expect("an error message")
                .to_string()),
            _ => panic!(
                "packaging_helm.py {step} failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    /// Lints (strict, subcharts included) and renders with `values`; requires a clean lint and
    /// returns the rendered objects (NOTES.txt aside) and the NOTES.
    fn render(&self, values: Option<&Value>) -> Rendered {
        let out = self
            .run("render", values, None)
            .unwrap_or_else(|e| panic!("{self:?} does not render with {values:?}: {e}"));
        let lint = &out["lint"];
        assert_eq!(lint["errors"], serde_json::json!([]), "helm lint: {lint}");
        let findings: Vec<&Value> = lint["messages"]
            .as_array()
            .expect("lint messages")
            .iter()
            .filter(|m| m["severity"].as_u64().unwrap_or(3) >= 2)
            .collect();
        assert!(findings.is_empty(), "helm lint --strict: {findings:#?}");
        assert_eq!(
            out["crds"],
            serde_json::json!([]),
            "the CRDs are templates, nothing lies in a crds/ directory"
        );
        let mut rendered = Rendered::default();
        for (template, manifest) in out["rendered"].as_object().expect("rendered templates") {
            let manifest = manifest.as_str().expect("a manifest");
            if template.ends_with("NOTES.txt") {
                rendered.notes.push_str(manifest);
            } else {
                rendered.docs.extend(yaml_documents(template, manifest));
            }
        }
        rendered
    }

    /// Helm's refusal of `values` (a render must fail), as its message.
    fn refusal(&self, values: &Value) -> String {
        match self.run("render", Some(values), None) {
            Ok(_) => panic!("{self:?} renders with {values}, which it should refuse"),
            Err(message) => message,
        }
    }

    /// Runs a cluster step (install, upgrade, uninstall) off the async runtime; it must succeed.
    async fn in_cluster(&self, step: &str, values: Option<Value>, kubeconfig: &Path) -> Value {
        let (helm, step, kubeconfig) = (self.clone(), step.to_string(), kubeconfig.to_path_buf());
        tokio::task::spawn_blocking(move || {
            helm.run(&step, values.as_ref(), Some(&kubeconfig))
                .unwrap_or_else(|e| panic!("helm {step} of {helm:?}: {e}"))
        })
        .await
        .expect("helm task")
    }
}

/// What a chart renders: its objects and its NOTES.txt.
#[derive(Debug, Default)]
struct Rendered {
    docs: Vec<Value>,
    notes: String,
}

/// Whether every label of `selector` (a label map) is among `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| &labels[k] == v))
}

/// Checks what keeps the two replicas available and their metrics closed: a PodDisruptionBudget
/// allowing one replica down, topology spread over nodes (required) and zones, the critical
/// priority class, and a NetworkPolicy admitting only the metrics port.
fn check_availability_and_metrics_policy(what: &str, docs: &[Value]) {
    let deployment = only_of_kind(docs, "Deployment");
    let pod = &deployment["spec"]["template"];
    let pod_labels = &pod["metadata"]["labels"];
    assert_eq!(
        pod["spec"]["priorityClassName"], "system-cluster-critical",
        "{what}"
    );
    let spread = pod["spec"]["topologySpreadConstraints"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: topology spread constraints"));
    let by_key: BTreeMap<&str, &Value> = spread
        .iter()
        .map(|c| (c["topologyKey"].as_str().expect("a topologyKey"), c))
        .collect();
    assert_eq!(
        by_key["kubernetes.io/hostname"]["whenUnsatisfiable"], "DoNotSchedule",
        "{what}: never both replicas on one node while another can take one"
    );
    assert_eq!(
        by_key["topology.kubernetes.io/zone"]["whenUnsatisfiable"], "ScheduleAnyway",
        "{what}: zones when the cluster has them"
    );
    for constraint in spread {
        assert!(
            selects(&constraint["labelSelector"]["matchLabels"], pod_labels),
            "{what}: {constraint} counts the operator's pods"
        );
    }
    let pdb = only_of_kind(docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1, "{what}");
    assert!(
        selects(&pdb["spec"]["selector"]["matchLabels"], pod_labels),
        "{what}: the PodDisruptionBudget covers the operator's pods"
    );
    let policy = only_of_kind(docs, "NetworkPolicy");
    assert!(
        selects(&policy["spec"]["podSelector"]["matchLabels"], pod_labels),
        "{what}: the NetworkPolicy applies to the operator's pods"
    );
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress"]),
        "{what}"
    );
    let ingress = policy["spec"]["ingress"].as_array().expect("ingress rules");
    assert_eq!(ingress.len(), 1, "{what}: one rule, for the metrics port");
    assert_eq!(
        ingress[0]["ports"],
        serde_json::json!([{"port": "metrics", "protocol": "TCP"}]),
        "{what}"
    );
    assert!(
        ingress[0]["from"]
            .as_array()
            .is_some_and(|peers| !peers.is_empty()),
        "{what}: an ingress rule without peers would admit every pod: {policy}"
    );
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
    docs.extend(all::<PodDisruptionBudget>(Api::namespaced(client.clone(), NAMESPACE)).await);
    docs.extend(all::<NetworkPolicy>(Api::namespaced(client.clone(), NAMESPACE)).await);
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

/// The CRDs among rendered documents, each checked to carry `helm.sh/resource-policy: keep`,
/// which is then removed so they compare with config/crd/bases.
fn kept_crds(what: &str, docs: &[Value]) -> BTreeMap<String, Value> {
    let mut crds = crds_by_name(docs);
    for (name, crd) in &mut crds {
        let annotations = crd["metadata"]["annotations"]
            .as_object_mut()
            .unwrap_or_else(|| panic!("{what}: {name} has annotations"));
        assert_eq!(
            annotations.remove(HELM_RESOURCE_POLICY),
            Some(Value::String("keep".into())),
            "{what}: helm uninstall must leave {name} (and every object of its kind)"
        );
        if annotations.is_empty() {
            crd["metadata"]
                .as_object_mut()
                .expect("metadata")
                .remove("annotations");
        }
    }
    crds
}

/// Copies a directory tree (a chart) to `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy's directory");
    for entry in std::fs::read_dir(from).expect("readable chart directory") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a chart file");
        }
    }
}

/// The printer column the upgrade test adds to the JobQueue CRD of a copy of the chart.
const UPGRADE_PRINTER_COLUMN: &str = "UpgradedBy";

/// A copy of charts/barge whose JobQueue CRD template (written by crdgen's own renderer) has one
/// more printer column.
fn chart_with_a_changed_crd(dir: &Path) -> PathBuf {
    let chart = dir.join("barge");
    copy_tree(&workspace_root().join("charts").join("barge"), &chart);
    let mut crd = JobQueue::crd();
    crd.spec.versions[0]
        .additional_printer_columns
        .get_or_insert_with(Vec::new)
        .push(CustomResourceColumnDefinition {
            name: UPGRADE_PRINTER_COLUMN.into(),
            type_: "string".into(),
            json_path: ".metadata.name".into(),
            ..Default::default()
        });
    let template = render_helm_crd_template(&crd).expect("render the changed CRD");
    let path = chart
        .join("templates")
        .join("crds")
        .join(crd_file_name(&crd));
    assert!(
        path.exists(),
        "{} is where crdgen writes it",
        path.display()
    );
    std::fs::write(&path, template).expect("write the changed CRD");
    chart
}

/// The printer columns of the installed JobQueue CRD.
async fn job_queue_printer_columns(client: &kube::Client) -> Vec<String> {
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get(JobQueue::crd_name())
        .await
        .expect("the JobQueue CRD is installed");
    crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_helm_chart_lints_renders_installs_upgrades_its_crds_and_uninstalls() {
    if !tool_available("python3", &["-c", "import helm_python"]) {
        return;
    }
    let helm = Helm::barge(RELEASE);
    let rendered = tokio::task::spawn_blocking({
        let helm = helm.clone();
        move || helm.render(None)
    })
    .await
    .expect("helm task");
    let docs = &rendered.docs;
    assert_same_crds(
        "the chart",
        &kept_crds("the chart", docs),
        &kustomize_crd_bases(),
    );
    check_install("helm template", docs);
    check_availability_and_metrics_policy("helm template", docs);
    let deployment = only_of_kind(docs, "Deployment");
    assert_eq!(deployment["metadata"]["name"], RELEASE);
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert!(
        of_kind(docs, "ServiceMonitor").is_empty(),
        "no ServiceMonitor unless serviceMonitor.enabled"
    );
    for needed in [
        "rollout status deployment/barge",
        "kubectl apply -k config/samples",
        "barge-metrics.barge-system.svc:8080",
        "metrics=enabled",
    ] {
        assert!(
            rendered.notes.contains(needed),
            "NOTES.txt tells `{needed}`:\n{}",
            rendered.notes
        );
    }

    // Install into a simulated cluster: Helm creates the namespace, the CRDs, then the rest.
    let cluster = Cluster::start(ClusterConfig::default())
        .await
        .expect("cluster");
    let client = cluster.client().expect("client");
    let kubeconfig = cluster.kubeconfig_path().to_path_buf();
    let out = helm.in_cluster("install", None, &kubeconfig).await;
    assert_eq!(out["release"]["status"], "deployed", "{out}");
    wait_for_barge_crds(&client).await;
    Api::<Namespace>::all(client.clone())
        .get(NAMESPACE)
        .await
        .expect("the release namespace was created");
    let installed = installed_objects(&client, RELEASE).await;
    check_install("helm install", &installed);
    check_availability_and_metrics_policy("helm install", &installed);
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

    // `helm upgrade` to a chart whose CRD changed changes the CRD in the cluster (Helm never
    // upgrades a chart's crds/ directory; templates it does).
    assert!(!job_queue_printer_columns(&client)
        .await
        .contains(&UPGRADE_PRINTER_COLUMN.to_string()));
    let dir = tempfile::tempdir().expect("temporary directory");
    let changed = Helm::chart(chart_with_a_changed_crd(dir.path()), RELEASE, NAMESPACE);
    let out = changed.in_cluster("upgrade", None, &kubeconfig).await;
    assert_eq!(out["release"]["status"], "deployed", "{out}");
    assert_eq!(out["release"]["revision"], 2, "a second revision: {out}");
    assert!(
        job_queue_printer_columns(&client)
            .await
            .contains(&UPGRADE_PRINTER_COLUMN.to_string()),
        "helm upgrade changed the JobQueue CRD"
    );

    // `helm uninstall` removes the operator but keeps the CRDs (helm.sh/resource-policy: keep),
    // so the users' Jobs and queues survive a reinstall.
    helm.in_cluster("uninstall", None, &kubeconfig).await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), NAMESPACE);
    assert!(
        deployments.get_opt(RELEASE).await.expect("get").is_none(),
        "helm uninstall removed the operator"
    );
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    for name in run::crd_names() {
        assert!(
            crds.get_opt(&name).await.expect("get").is_some(),
            "helm uninstall kept {name}"
        );
    }
    cluster.shutdown().await;
}

/// Release and namespace of the parent chart in the subchart test.
const PARENT_RELEASE: &str = "platform";
const PARENT_NAMESPACE: &str = "platform-system";

/// A parent chart in `dir` depending on charts/barge through a `file://` repository, enabled by
/// `condition: barge.enabled`, with a template of its own reading `global`; its dependency is
/// resolved into charts/ by Helm (`helm dependency update`).
fn parent_chart(dir: &Path) -> PathBuf {
    let parent = dir.join("platform");
    std::fs::create_dir_all(parent.join("templates")).expect("create the parent chart");
    let barge = workspace_root().join("charts").join("barge");
    let version = yaml_documents("Chart.yaml", &read("charts/barge/Chart.yaml"))[0]["version"]
        .as_str()
        .expect("the chart has a version")
        .to_string();
    let chart_yaml = format!(
        "apiVersion: v2
name: platform
version: 1.0.0
dependencies:
  - name: barge
    version: \"{version}\"
    repository: \"file://{}\"
    condition: barge.enabled
",
        barge.display()
    );
    let values_yaml = "global:
  team: batch-platform
barge:
  enabled: true
";
    let configmap_yaml = "apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-platform
  namespace: {{ .Release.Namespace }}
data:
  team: {{ .Values.global.team | quote }}
";
    let files = [
        ("Chart.yaml", chart_yaml.as_str()),
        ("values.yaml", values_yaml),
        ("templates/configmap.yaml", configmap_yaml),
    ];
    for (name, text) in files {
        std::fs::write(parent.join(name), text).expect("write a parent chart file");
    }
    let out = Helm::chart(parent.clone(), PARENT_RELEASE, PARENT_NAMESPACE)
        .run("dependency-update", None, None)
        .unwrap_or_else(|e| panic!("helm dependency update: {e}"));
    assert_eq!(out["dependencies"][0]["status"], "ok", "{out}");
    parent
}

/// Values a platform team gives its parent chart: shared `global` values and Barge overrides.
fn parent_values() -> Value {
    serde_json::json!({
        "global": {"imageRegistry": "registry.example", "team": "batch-platform"},
        "barge": {
            "enabled": true,
            "replicaCount": 1,
            "logging": {"level": "debug"},
            "leaderElection": {"leaseName": "platform-barge"},
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_works_as_a_subchart_with_global_values_and_refuses_typos() {
    if !tool_available("python3", &["-c", "import helm_python"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let parent = Helm::chart(
        tokio::task::spawn_blocking({
            let dir = dir.path().to_path_buf();
            move || parent_chart(&dir)
        })
        .await
        .expect("helm task"),
        PARENT_RELEASE,
        PARENT_NAMESPACE,
    );
    let values = parent_values();
    let (rendered, typo, typo_top, disabled) = tokio::task::spawn_blocking({
        let parent = parent.clone();
        let values = values.clone();
        move || {
            let rendered = parent.render(Some(&values));
            let mut typo = values.clone();
            typo["barge"]["logging"]["levle"] = "debug".into();
            let mut typo_top = values.clone();
            typo_top["barge"]["replicaCont"] = 3.into();
            let disabled = parent.render(Some(&serde_json::json!({"barge": {"enabled": false}})));
            (
                rendered,
                parent.refusal(&typo),
                parent.refusal(&typo_top),
                disabled,
            )
        }
    })
    .await
    .expect("helm task");

    // Rendered with the parent's overrides, under the subchart's names.
    let docs = &rendered.docs;
    let deployment = only_of_kind(docs, "Deployment");
    assert_eq!(deployment["metadata"]["name"], "platform-barge");
    assert_eq!(deployment["metadata"]["namespace"], PARENT_NAMESPACE);
    assert_eq!(deployment["spec"]["replicas"], 1);
    let flags = check_operator_deployment("the subchart", deployment);
    assert_eq!(flags.log_level, "debug");
    assert_eq!(flags.lease_name, "platform-barge");
    assert!(
        of_kind(docs, "PodDisruptionBudget").is_empty(),
        "one replica: no PodDisruptionBudget (it would block every drain)"
    );
    assert_eq!(
        only_of_kind(docs, "ConfigMap")["data"]["team"],
        "batch-platform"
    );
    assert_eq!(
        crds_by_name(docs).keys().cloned().collect::<BTreeSet<_>>(),
        run::crd_names().into_iter().collect::<BTreeSet<_>>()
    );

    // The schema still refuses typos inside Barge's sections, and unknown top-level keys that
    // are not boolean condition flags, naming the key.
    assert!(
        typo.contains("levle") && typo.contains("barge"),
        "names the typo: {typo}"
    );
    assert!(
        typo_top.contains("replicaCont"),
        "names the typo: {typo_top}"
    );

    // condition: barge.enabled turns the whole subchart off.
    assert!(
        disabled.docs.iter().all(|d| d["kind"] == "ConfigMap"),
        "barge.enabled=false renders only the parent's own objects: {:#?}",
        disabled.docs
    );

    // Installed into a simulated cluster as one release.
    let cluster = Cluster::start(ClusterConfig::default())
        .await
        .expect("cluster");
    let client = cluster.client().expect("client");
    let kubeconfig = cluster.kubeconfig_path().to_path_buf();
    let out = parent
        .in_cluster("install", Some(values), &kubeconfig)
        .await;
    assert_eq!(out["release"]["status"], "deployed", "{out}");
    wait_for_barge_crds(&client).await;
    let installed = Api::<Deployment>::namespaced(client.clone(), PARENT_NAMESPACE)
        .get("platform-barge")
        .await
        .expect("the subchart's Deployment is installed");
    let installed = serde_json::to_value(installed).expect("serialize");
    check_operator_deployment("the installed subchart", &installed);
    Api::<ClusterRole>::all(client.clone())
        .get("platform-barge")
        .await
        .expect("the subchart's ClusterRole is installed");
    cluster.shutdown().await;
}

/// Values turning on every option the defaults leave off.
fn optional_values() -> Value {
    serde_json::json!({
        "global": {"imageRegistry": "registry.example"},
        "nameOverride": "batch",
        "fullnameOverride": "batch-operator",
        "crds": {"install": false},
        "image": {"digest": format!("sha256:{}", "a".repeat(64)), "tag": "ignored"},
        "extraArgs": ["--scheduler-interval-ms=500"],
        "env": [{"name": "RUST_BACKTRACE", "value": "1"}],
        "priorityClassName": "",
        "replicaCount": 1,
        "serviceMonitor": {"enabled": true, "additionalLabels": {"release": "prometheus"}},
        "metrics": {"networkPolicy": {"from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
             "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
        ]}},
        "topologySpreadConstraints": [{
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app": "mine"}},
        }],
    })
}

#[test]
fn the_chart_renders_its_options_and_its_schema_refuses_typos() {
    if !tool_available("python3", &["-c", "import helm_python"]) {
        return;
    }
    let helm = Helm::barge(RELEASE);
    let rendered = helm.render(Some(&optional_values()));
    let docs = &rendered.docs;
    assert!(
        crds_by_name(docs).is_empty(),
        "crds.install=false renders no CRD"
    );
    assert!(
        of_kind(docs, "PodDisruptionBudget").is_empty(),
        "one replica: no PodDisruptionBudget"
    );
    let deployment = only_of_kind(docs, "Deployment");
    assert_eq!(deployment["metadata"]["name"], "batch-operator");
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "batch"
    );
    let pod = &deployment["spec"]["template"]["spec"];
    assert!(
        pod.get("priorityClassName").is_none(),
        "priorityClassName \"\" leaves the field out"
    );
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        format!("ghcr.io/barge-dev/barge@sha256:{}", "a".repeat(64)),
        "a digest replaces the tag"
    );
    let flags = check_operator_deployment("with options", deployment);
    assert_eq!(
        flags.scheduler_interval_ms, 500,
        "extraArgs reach the operator"
    );
    assert!(container["env"]
        .as_array()
        .expect("env")
        .contains(&serde_json::json!({"name": "RUST_BACKTRACE", "value": "1"})));
    assert_eq!(
        pod["topologySpreadConstraints"][0]["labelSelector"],
        serde_json::json!({"matchLabels": {"app": "mine"}}),
        "a constraint's own labelSelector is kept"
    );
    let account = &pod["serviceAccountName"];
    let operator_objects = [
        only_of_kind(docs, "ServiceAccount"),
        role_bound_to(
            "with options",
            docs,
            "ClusterRoleBinding",
            "ClusterRole",
            account,
        ),
        role_bound_to("with options", docs, "RoleBinding", "Role", account),
        only_of_kind(docs, "Service"),
        only_of_kind(docs, "NetworkPolicy"),
    ];
    for object in operator_objects {
        let name = object["metadata"]["name"].as_str().expect("a name");
        assert!(
            name.starts_with("batch-operator"),
            "{} {name} follows fullnameOverride",
            object["kind"]
        );
    }
    let policy = only_of_kind(docs, "NetworkPolicy");
    assert_eq!(
        policy["spec"]["ingress"][0]["from"],
        optional_values()["metrics"]["networkPolicy"]["from"]
    );
    let monitor = only_of_kind(docs, "ServiceMonitor");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let service = only_of_kind(docs, "Service");
    assert!(
        selects(
            &monitor["spec"]["selector"]["matchLabels"],
            &service["metadata"]["labels"]
        ),
        "the ServiceMonitor selects the metrics Service"
    );
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );

    // The ServiceMonitor of the defaults is config/prometheus's.
    let with_monitor = Helm::barge(KUSTOMIZE_EQUIVALENT_RELEASE).render(Some(
        &serde_json::json!({"serviceMonitor": {"enabled": true}}),
    ));
    let monitor = without_helm_bookkeeping(only_of_kind(&with_monitor.docs, "ServiceMonitor"));
    let kustomized = yaml_documents(
        "config/prometheus/monitor.yaml",
        &read("config/prometheus/monitor.yaml"),
    );
    let mut kustomized = without_helm_bookkeeping(only_of_kind(&kustomized, "ServiceMonitor"));
    kustomized["metadata"]["namespace"] = NAMESPACE.into();
    if let Some(difference) = first_difference("", &monitor, &kustomized) {
        panic!("the chart's ServiceMonitor differs from config/prometheus at {difference}");
    }

    // Typos inside Barge's sections are refused, naming the key; so are values of the wrong shape.
    for (bad, named) in [
        (serde_json::json!({"image": {"tagg": "1"}}), "tagg"),
        (
            serde_json::json!({"metrics": {"networkPolicy": {"form": []}}}),
            "form",
        ),
        (
            serde_json::json!({"serviceMonitor": {"enable": true}}),
            "enable",
        ),
        (
            serde_json::json!({"podDisruptionBudget": {"minAvailable": 1}}),
            "minAvailable",
        ),
        (serde_json::json!({"crds": {"instal": true}}), "instal"),
        (serde_json::json!({"replicaCont": 3}), "replicaCont"),
        (serde_json::json!({"image": {"digest": "latest"}}), "digest"),
        (
            serde_json::json!({"extraArgs": ["scheduler-interval-ms=5"]}),
            "extraArgs",
        ),
    ] {
        let message = helm.refusal(&bad);
        assert!(message.contains(named), "{bad}: names {named}: {message}");
    }
    // Helm's `global` and a boolean condition flag are accepted at the top level.
    helm.render(Some(
        &serde_json::json!({"global": {"any": {"thing": 1}}, "enabled": true}),
    ));
}

/// Release name under which the chart renders the objects config/default holds: the README's
/// `helm install barge`.
const KUSTOMIZE_EQUIVALENT_RELEASE: &str = RELEASE;

/// Labels only Helm sets (the chart, its version, the release, the tool), normalised away when
/// the chart's objects are compared with kustomize's.
const HELM_BOOKKEEPING_LABELS: [&str; 4] = [
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
];

/// `doc` without Helm's bookkeeping: its labels wherever labels are listed or matched
/// (`labels`, `matchLabels`, a Service's `selector`), and `helm.sh/` annotations.
fn without_helm_bookkeeping(doc: &Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map.iter_mut() {
                    let label_map = matches!(key.as_str(), "labels" | "matchLabels" | "selector")
                        && inner
                            .as_object()
                            .is_some_and(|m| m.values().all(Value::is_string));
                    if label_map {
                        if let Some(labels) = inner.as_object_mut() {
                            labels.retain(|k, _| !HELM_BOOKKEEPING_LABELS.contains(&k.as_str()));
                        }
                    } else if key == "annotations" {
                        if let Some(annotations) = inner.as_object_mut() {
                            annotations.retain(|k, _| !k.starts_with("helm.sh/"));
                        }
                    } else {
                        strip(inner);
                    }
                }
                map.retain(|key, inner| {
                    !(matches!(key.as_str(), "labels" | "annotations")
                        && inner.as_object().is_some_and(|m| m.is_empty()))
                });
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut doc = doc.clone();
    strip(&mut doc);
    doc
}

/// Objects by (kind, namespace, name), normalised.
fn objects_by_identity(docs: &[Value]) -> BTreeMap<String, Value> {
    let mut objects = BTreeMap::new();
    for doc in docs {
        let key = format!(
            "{} {}/{}",
            doc["kind"].as_str().unwrap_or_default(),
            doc["metadata"]["namespace"].as_str().unwrap_or_default(),
            doc["metadata"]["name"].as_str().unwrap_or_default()
        );
        let previous = objects.insert(key.clone(), without_helm_bookkeeping(doc));
        assert!(previous.is_none(), "{key} appears twice");
    }
    objects
}

#[test]
fn the_chart_and_config_default_render_the_same_objects() {
    if !tool_available("python3", &["-c", "import helm_python"])
        || !tool_available("kubectl", &["version", "--client"])
    {
        return;
    }
    let chart = objects_by_identity(&Helm::barge(KUSTOMIZE_EQUIVALENT_RELEASE).render(None).docs);
    let kustomize = objects_by_identity(&yaml_documents(
        "kubectl kustomize config/default",
        &Kubectl::new(None).ok(&["kustomize", "config/default"]),
    ));
    // Helm creates the namespace (--create-namespace); kustomize carries it.
    let namespace = format!("Namespace /{NAMESPACE}");
    let only_kustomize: Vec<&String> = kustomize
        .keys()
        .filter(|k| !chart.contains_key(*k))
        .collect();
    let only_chart: Vec<&String> = chart
        .keys()
        .filter(|k| !kustomize.contains_key(*k))
        .collect();
    assert!(
        only_chart.is_empty() && only_kustomize == [&namespace],
        "objects only the chart renders: {only_chart:?}; only config/default: {only_kustomize:?}"
    );
    let differences: Vec<String> = chart
        .iter()
        .filter_map(|(key, object)| {
            first_difference(key, object, &kustomize[key])
                .map(|d| format!("{d} (chart != config/default)"))
        })
        .collect();
    assert!(
        differences.is_empty(),
        "the chart's defaults and config/default differ:\n  {}",
        differences.join("\n  ")
    );
    assert!(
        chart.len() >= 14,
        "every kind is compared: {:?}",
        chart.keys()
    );
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
        RELEASE,
        "named as `helm install barge` names it"
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
    let installed = installed_objects(&client, RELEASE).await;
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
