//! End-to-end: Barge's RBAC (issue 13) on barge-sim, which authorizes impersonated requests by
//! RBAC and logs each one.
//!
//! - The operator's ClusterRole grants only what the code calls: the real `barge` binary runs as
//!   its service account (`system:serviceaccount:barge-system:barge`, impersonated) with the
//!   ClusterRole of config/rbac plus every provider's rules (charts/barge/files/provider-*) and
//!   the leader election Role, and drives representative work: single jobs, an array, a
//!   dependency, a retry, a terminated job, a multi-node job, a job deleted after its TTL, a
//!   simulated pool that scales out and in, an UNMANAGED pool, a Karpenter pool switched to
//!   another provider, a Cluster API pool scaled by demand, and deletions. Then from the request
//!   log: no request of that user was denied, and every granted (group, resource, verb) was used
//!   or is listed in [`NOT_EXERCISED`] with the code path that needs it.
//! - The chart and config/rbac carry the same user roles.
//! - A user bound to the built-in `edit` ClusterRole in one namespace (a RoleBinding) submits
//!   and terminates jobs there with kubectl (the operator runs and stops them), reads the
//!   cluster-scoped queues, and is Forbidden in another namespace; a `view` user reads and cannot
//!   create.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use barge_crds::compute_environment::CeStatus;
use barge_crds::consts::{ANNOTATION_SIM_CAPACITY, LABEL_SIM_SIMULATED};
use barge_crds::job::JobStatus;
use barge_sim::RequestRecord;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{DeleteParams, DynamicObject, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};

use support::{
    compute_environment, create_machine_deployment, create_node_class, fixed_pool_and_queue,
    install_node_class_crd, job, job_definition, job_queue, kubectl_available, managed_environment,
    nodes_of, E2e, Options, GATE,
};

/// The operator's namespace and service account, as config/rbac installs them.
const OPERATOR_NAMESPACE: &str = "barge-system";
const OPERATOR_USER: &str = "system:serviceaccount:barge-system:barge";

/// One permission: (apiGroup, resource or resource/subresource, verb).
type Grant = (String, String, String);

/// Grants the run does not exercise, each with the code path that needs it and why the run
/// does not reach it. Every other grant must show up in the request log.
const NOT_EXERCISED: &[(&str, &str, &str, &str)] = &[
    (
        "batch.barge.dev",
        "jobs/finalizers",
        "update",
        "pods and the Service of a job carry a blockOwnerDeletion owner reference to it; the \
         OwnerReferencesPermissionEnforcement admission plugin checks this permission, which \
         barge-sim does not run (no request of its own)",
    ),
    (
        "batch.barge.dev",
        "jobdefinitions/finalizers",
        "update",
        "definition revisions (ControllerRevisions) are owned with blockOwnerDeletion: admission \
         only, as above",
    ),
    (
        "batch.barge.dev",
        "computeenvironments/finalizers",
        "update",
        "simulated Nodes and Karpenter NodePools are owned by their environment with \
         blockOwnerDeletion: admission only, as above",
    ),
    (
        "",
        "pods",
        "get",
        "scheduler/mod.rs verify_assumed: a pod the scheduler created but the cache has not \
         shown for a while is looked up; with barge-sim's watch latency the cache never lags \
         that long",
    ),
    (
        "",
        "pods",
        "delete",
        "controllers/job.rs apply_pod_action / stop_pod: a pod is deleted alone when a job is \
         terminated or times out, or a pod the kubelet never started is stopped; array \
         children's released pods go in batches (deletecollection)",
    ),
    (
        "apps",
        "controllerrevisions",
        "get",
        "job_definition.rs dereference_revisions / apply: a revision is fetched when the cache \
         lags the recorded revision or its create met AlreadyExists (a retried reconcile)",
    ),
    (
        "karpenter.sh",
        "nodepools",
        "create",
        "karpenter.rs ensure_nodepool creates the NodePool by server-side apply (a patch); \
         kube-apiserver authorizes an apply that creates its object as create as well \
         (api-concepts, \"Patch and apply\"), barge-sim as patch only",
    ),
    (
        "karpenter.k8s.aws",
        "ec2nodeclasses",
        "get",
        "karpenter.rs node_class_exists for a nodeClassRef of Karpenter's AWS provider; the run \
         uses the kwok provider's KWOKNodeClass (the other kind of the same rule)",
    ),
];

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

/// The non-empty YAML documents of a file.
fn documents(relative: &str) -> Vec<Value> {
    let text = read(relative);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            <Value as serde::Deserialize>::deserialize(d)
                .unwrap_or_else(|e| panic!("{relative}: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The rules of a chart rules file (a YAML list of PolicyRules).
fn rules_file(relative: &str) -> Value {
    serde_yaml::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The permissions a list of PolicyRules grants, expanded one by one (Barge's roles use neither
/// resourceNames nor nonResourceURLs nor wildcards).
fn grants(what: &str, rules: &Value) -> BTreeSet<Grant> {
    let list = |rule: &Value, key: &str| -> Vec<String> {
        rule[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for rule in rules.as_array().unwrap_or_else(|| panic!("{what}: rules")) {
        assert!(
            list(rule, "resourceNames").is_empty() && list(rule, "nonResourceURLs").is_empty(),
            "{what}: {rule}"
        );
        for group in list(rule, "apiGroups") {
            for resource in list(rule, "resources") {
                for verb in list(rule, "verbs") {
                    assert!(
                        group != "*" && resource != "*" && verb != "*",
                        "{what}: no wildcards: {rule}"
                    );
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

/// The provider rules files of the chart.
const PROVIDER_RULES: [&str; 3] = [
    "charts/barge/files/provider-simulated-rules.yaml",
    "charts/barge/files/provider-karpenter-rules.yaml",
    "charts/barge/files/provider-cluster-api-rules.yaml",
];

/// The operator's ClusterRole of config/rbac with the rules of `providers` (chart files) added,
/// and the rest of config/rbac's operator objects (binding, leader election Role and binding).
fn operator_rbac(providers: &[&str]) -> (ClusterRole, ClusterRoleBinding, Role, RoleBinding) {
    let mut role = documents("config/rbac/role.yaml").remove(0);
    let rules = role["rules"].as_array_mut().expect("rules");
    for file in providers {
        rules.extend(
            rules_file(file)
                .as_array()
                .expect("a rules list")
                .iter()
                .cloned(),
        );
    }
    (
        parse(role),
        parse(documents("config/rbac/role_binding.yaml").remove(0)),
        parse(documents("config/rbac/leader_election_role.yaml").remove(0)),
        parse(documents("config/rbac/leader_election_role_binding.yaml").remove(0)),
    )
}

fn parse<K: serde::de::DeserializeOwned>(object: Value) -> K {
    serde_json::from_value(object).expect("an RBAC object")
}

async fn create<K>(api: Api<K>, object: &K)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize,
{
    api.create(&PostParams::default(), object)
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", object.name_any()));
}

async fn create_namespace(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    create(Api::<Namespace>::all(client.clone()), &ns).await;
}

/// A (group, resource[/subresource], verb) of a logged request.
fn grant_of(r: &RequestRecord) -> Grant {
    let resource = if r.subresource.is_empty() {
        r.resource.clone()
    } else {
        format!("{}/{}", r.resource, r.subresource)
    };
    (r.api_group.clone(), resource, r.verb.clone())
}

#[test]
fn the_chart_and_config_rbac_carry_the_same_roles() {
    let same = |what: &str, chart: &str, kustomize: &Value| {
        assert_eq!(
            grants(chart, &rules_file(chart)),
            grants(what, &kustomize["rules"]),
            "{what} against {chart}"
        );
    };
    same(
        "config/rbac/role.yaml",
        "charts/barge/files/cluster-role-rules.yaml",
        &documents("config/rbac/role.yaml")[0],
    );
    same(
        "config/rbac/leader_election_role.yaml",
        "charts/barge/files/leader-election-rules.yaml",
        &documents("config/rbac/leader_election_role.yaml")[0],
    );
    let users: BTreeMap<String, Value> = documents("config/rbac/user_roles.yaml")
        .into_iter()
        .map(|d| (d["metadata"]["name"].as_str().expect("name").to_string(), d))
        .collect();
    for (name, file, aggregate_to) in [
        (
            "barge-batch-user",
            "user-role-user-rules.yaml",
            &["edit", "admin"][..],
        ),
        (
            "barge-batch-viewer",
            "user-role-viewer-rules.yaml",
            &["view"][..],
        ),
        ("barge-batch-admin", "user-role-admin-rules.yaml", &[][..]),
        (
            "barge-batch-queue-reader",
            "user-role-queue-reader-rules.yaml",
            &[][..],
        ),
    ] {
        let role = &users[name];
        same(name, &format!("charts/barge/files/{file}"), role);
        let labels: BTreeSet<String> = role["metadata"]["labels"]
            .as_object()
            .map(|l| {
                l.iter()
                    .filter(|(_, v)| *v == "true")
                    .filter_map(|(k, _)| k.strip_prefix("rbac.authorization.k8s.io/aggregate-to-"))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let want: BTreeSet<String> = aggregate_to.iter().map(|s| s.to_string()).collect();
        assert_eq!(labels, want, "{name} aggregates into {want:?}");
    }
    // Users write no status and no finalizer; only the admin writes cluster-scoped kinds.
    for (name, role) in &users {
        for (_, resource, verb) in grants(name, &role["rules"]) {
            assert!(
                !resource.contains('/') || ["get", "list", "watch"].contains(&verb.as_str()),
                "{name} may only read subresources: {verb} {resource}"
            );
        }
    }
    // Each provider's rules are in no other file: disabling a provider removes them.
    let base = grants(
        "base",
        &rules_file("charts/barge/files/cluster-role-rules.yaml"),
    );
    for file in PROVIDER_RULES {
        let provider = grants(file, &rules_file(file));
        assert!(!provider.is_empty(), "{file}");
        let shared: Vec<&Grant> = provider.intersection(&base).collect();
        assert!(shared.is_empty(), "{file} repeats base grants {shared:?}");
    }
}

/// A MANAGED environment `${NS}-<name>` that scales with demand, with the given provider YAML.
fn scaling_environment(name: &str, max_vcpus: i32, provider: &str) -> String {
    managed_environment(name, "ENABLED", 0, max_vcpus, "c5.large", 1, provider)
}

/// Whether the test can run: it needs barge-sim's request log (else it skips, saying so).
fn request_log_available(env: &E2e) -> bool {
    let available = env.sim_cluster().is_some();
    if !available {
        eprintln!("rbac: skipped against a real cluster (needs barge-sim's request log)");
    }
    available
}

/// As the cluster admin: the operator's RBAC with the rules of `providers` (see
/// [`install_operator_rbac`]; returns its grants), and the objects the providers' environments
/// refer to: the `KWOKNodeClass` `default` (and its CRD) and the MachineDeployment `md` of
/// c5.large machines.
async fn install_rbac_and_provider_objects(env: &E2e, providers: &[&str]) -> BTreeSet<Grant> {
    let granted = install_operator_rbac(&env.client, providers).await;
    install_node_class_crd(env).await;
    create_node_class(env, "default").await;
    create_machine_deployment(env, "md", 0, "c5.large", &[]).await;
    granted
}

/// Clears the request log and starts the operator as [`OPERATOR_USER`].
fn run_operator_as_operator_user(env: &mut E2e) {
    let cluster = env.cluster();
    cluster.clear_request_log();
    let kubeconfig = cluster.kubeconfig_as(OPERATOR_USER, &[]);
    env.run_operator_with(&kubeconfig);
}

/// The `clusterAPI` provider over MachineDeployment `md` of namespace `ns` (c5.large machines).
fn cluster_api_provider(ns: &str) -> String {
    format!("{{clusterAPI: {{machineDeployments: [{{name: md, namespace: {ns}, instanceType: c5.large}}]}}}}")
}

/// An UNMANAGED environment `${NS}-unmanaged` of the nodes labelled `rbac-test: <ns>`.
fn unmanaged_environment(ns: &str) -> String {
    format!(
        "---\napiVersion: batch.barge.dev/v1alpha1\nkind: ComputeEnvironment\nmetadata: {{name: \"${{NS}}-unmanaged\"}}\nspec:\n  type: UNMANAGED\n  state: ENABLED\n  nodeSelector: {{rbac-test: \"{ns}\"}}\n"
    )
}

const KARPENTER_PROVIDER: &str = "{karpenter: {nodeClassRef: {group: karpenter.kwok.sh, kind: KWOKNodeClass, name: default}, requirements: [{key: kubernetes.io/arch, operator: In, values: [amd64]}]}}";

async fn wait_ce_status(env: &E2e, name: &str, status: CeStatus) {
    let name = env.render(name);
    env.wait_for(
        &env.compute_environments(),
        &name,
        &format!("{status:?}"),
        |ce| ce.status.as_ref().and_then(|s| s.status) == Some(status),
    )
    .await;
}

async fn wait_no_nodes(env: &E2e, ce: &str) {
    let ce = env.render(ce);
    let nodes = env.nodes();
    env.wait_until_for(
        &format!("the nodes of {ce} to go"),
        Duration::from_secs(60),
        || {
            let (nodes, ce) = (nodes.clone(), ce.clone());
            async move { nodes_of(&nodes, &ce).await.is_empty().then_some(()) }
        },
    )
    .await;
}

/// Installs config/rbac's operator objects (the ClusterRole with the rules of `providers`) and
/// the operator's namespace; returns what they grant.
async fn install_operator_rbac(client: &Client, providers: &[&str]) -> BTreeSet<Grant> {
    create_namespace(client, OPERATOR_NAMESPACE).await;
    let (role, binding, leader, leader_binding) = operator_rbac(providers);
    let rules = |what: &str, rules: &Option<Vec<k8s_openapi::api::rbac::v1::PolicyRule>>| {
        grants(what, &serde_json::to_value(rules).expect("rules"))
    };
    let granted = rules("ClusterRole", &role.rules)
        .union(&rules("Role", &leader.rules))
        .cloned()
        .collect();
    create(Api::all(client.clone()), &role).await;
    create(Api::all(client.clone()), &binding).await;
    create(Api::namespaced(client.clone(), OPERATOR_NAMESPACE), &leader).await;
    create(
        Api::namespaced(client.clone(), OPERATOR_NAMESPACE),
        &leader_binding,
    )
    .await;
    granted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_needs_every_permission_it_is_granted_and_no_other() {
    let mut env = E2e::start_with(
        "rbac-operator",
        Options::default()
            .with_karpenter()
            .with_cluster_api()
            .without_operator()
            .flag("--leader-election")
            .flag("--lease-namespace=barge-system")
            .flag("--providers=simulated,karpenter,cluster-api")
            // Array children's pods go once their result is recorded (pods delete).
            .flag("--array-pod-retention=none"),
    )
    .await;
    if !request_log_available(&env) {
        return;
    }
    let client = env.client.clone();
    let granted = install_rbac_and_provider_objects(&env, &PROVIDER_RULES).await;
    // An existing node for the UNMANAGED environment (created as the cluster admin).
    let unmanaged_node = env.render("${NS}-existing");
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": unmanaged_node, "labels": {"rbac-test": env.ns}},
    }))
    .expect("node");
    create(Api::<Node>::all(client.clone()), &node).await;

    run_operator_as_operator_user(&mut env);

    // Environments of every provider, and queues over them.
    let ns = env.ns.clone();
    env.apply(&format!(
        "{}{}{}{}{}{}{}{}{}",
        compute_environment("fixed", 4),
        scaling_environment("scaled", 8, "{simulated: {}}"),
        scaling_environment("karp", 4, KARPENTER_PROVIDER),
        scaling_environment("capi", 4, &cluster_api_provider(&ns)),
        unmanaged_environment(&ns),
        job_queue("q", 10, &["fixed"]),
        "---\napiVersion: batch.barge.dev/v1alpha1\nkind: SchedulingPolicy\nmetadata: {name: \"${NS}-fair\"}\nspec:\n  fairsharePolicy: {shareDistribution: [{shareIdentifier: a, weightFactor: 1}]}\n",
        job_queue("scaled", 10, &["scaled"]),
        job_queue("capi", 10, &["capi"]),
    ))
    .await;
    env.wait_compute_environment("${NS}-fixed", 2).await;
    wait_ce_status(&env, "${NS}-karp", CeStatus::Valid).await;
    wait_ce_status(&env, "${NS}-capi", CeStatus::Valid).await;
    wait_ce_status(&env, "${NS}-unmanaged", CeStatus::Valid).await;

    env.apply(&format!(
        "{}{}{}{}",
        job_definition("ok", "exit 0", &[], "1", ""),
        job_definition("fail", "exit 1", &[], "1", "retryStrategy: {attempts: 2}\n"),
        job_definition("wait", GATE, &[], "1", ""),
        multinode_definition(),
    ))
    .await;
    env.apply(&format!(
        "{}{}{}{}{}{}{}{}",
        job("single", "q", "ok", ""),
        job("array", "q", "ok", "arrayProperties: {size: 3}\n"),
        job("after", "q", "ok", "dependsOn: [{jobName: single}]\n"),
        job("retried", "q", "fail", ""),
        job("stopped", "q", "wait", ""),
        job("gang", "q", "gang", ""),
        job("short-lived", "q", "ok", "ttlSecondsAfterFinished: 1\n"),
        job("scaled-out", "scaled", "ok", ""),
    ))
    .await;
    // Terminated while it runs (a multi-node job takes whole nodes: the gang waits for this).
    env.wait_job_reached("stopped", JobStatus::Running).await;
    env.terminate("stopped", "stopped by the rbac test", None)
        .await;
    env.wait_job("stopped", JobStatus::Failed).await;
    env.apply(&job("on-capi", "capi", "ok", "")).await;
    for name in ["single", "array", "after", "gang", "scaled-out", "on-capi"] {
        env.wait_job(name, JobStatus::Succeeded).await;
    }
    env.wait_job("retried", JobStatus::Failed).await;
    // The TTL deletes the finished job.
    let jobs = env.jobs();
    env.wait_until("short-lived deleted after its TTL", || {
        let jobs = jobs.clone();
        async move {
            jobs.get_opt("short-lived")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    // Idle scaled pools shrink: the simulated pool deletes its nodes, Cluster API scales in.
    wait_no_nodes(&env, "${NS}-scaled").await;
    wait_no_nodes(&env, "${NS}-capi").await;

    // A Karpenter environment switched to another provider loses its NodePool.
    let nodepools: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &barge_sim::standins::karpenter::nodepool_resource(),
    );
    let nodepool = env.render("${NS}-karp");
    assert!(
        nodepools.get_opt(&nodepool).await.expect("get").is_some(),
        "the karpenter environment has its NodePool"
    );
    env.apply(&scaling_environment("karp", 4, "{simulated: {}}"))
        .await;
    env.wait_until("the NodePool of the switched environment deleted", || {
        let (nodepools, name) = (nodepools.clone(), nodepool.clone());
        async move { nodepools.get_opt(&name).await.ok()?.is_none().then_some(()) }
    })
    .await;

    // Deletions release the "in use" finalizers.
    let ces = env.compute_environments();
    let queues = env.queues();
    for queue in ["scaled", "capi"] {
        queues
            .delete(
                &env.render(&format!("${{NS}}-{queue}")),
                &DeleteParams::default(),
            )
            .await
            .expect("delete queue");
    }
    for ce in ["scaled", "unmanaged"] {
        ces.delete(
            &env.render(&format!("${{NS}}-{ce}")),
            &DeleteParams::default(),
        )
        .await
        .expect("delete environment");
    }
    env.definitions()
        .delete("fail", &DeleteParams::default())
        .await
        .expect("delete definition");
    for ce in ["scaled", "unmanaged"] {
        let (ces, name) = (ces.clone(), env.render(&format!("${{NS}}-{ce}")));
        env.wait_until(&format!("{name} gone"), || {
            let (ces, name) = (ces.clone(), name.clone());
            async move { ces.get_opt(&name).await.ok()?.is_none().then_some(()) }
        })
        .await;
    }
    // Lease renewals happen every retry period; make sure at least one did.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let log: Vec<RequestRecord> = env
        .cluster()
        .request_log()
        .into_iter()
        .filter(|r| r.user == OPERATOR_USER)
        .collect();
    assert!(!log.is_empty(), "the operator's requests are logged");
    let denied: Vec<String> = log
        .iter()
        .filter(|r| !r.allowed)
        .map(|r| format!("{} {} ({:?})", r.verb, r.path, grant_of(r)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(
        denied.is_empty(),
        "requests of the operator were denied: {denied:#?}"
    );
    let used: BTreeSet<Grant> = log
        .iter()
        .filter(|r| r.resource_request)
        .map(grant_of)
        .collect();
    let listed: BTreeSet<Grant> = NOT_EXERCISED
        .iter()
        .map(|(g, r, v, _)| (g.to_string(), r.to_string(), v.to_string()))
        .collect();
    for entry in &listed {
        assert!(
            granted.contains(entry),
            "NOT_EXERCISED lists {entry:?}, which is not granted"
        );
    }
    let unused: Vec<&Grant> = granted
        .iter()
        .filter(|g| !used.contains(*g) && !listed.contains(*g))
        .collect();
    let exercised_anyway: Vec<&Grant> = listed.intersection(&used).collect();
    eprintln!(
        "rbac: {} requests by {OPERATOR_USER}; {} grants, {} used, {} listed as not exercised (of which used this run: {exercised_anyway:?})",
        log.len(),
        granted.len(),
        granted.intersection(&used).count(),
        listed.len(),
    );
    assert!(
        unused.is_empty(),
        "granted but never used (remove them, or list them in NOT_EXERCISED with the code path): {unused:#?}"
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_provider_enabled_provider_environments_are_invalid_and_nothing_is_denied() {
    // The default install: config/rbac (no provider rules) and `--providers=none`.
    let mut env = E2e::start_with(
        "rbac-default",
        Options::default()
            .with_karpenter()
            .with_cluster_api()
            .without_operator()
            .flag("--providers=none"),
    )
    .await;
    if !request_log_available(&env) {
        return;
    }
    let client = env.client.clone();
    install_rbac_and_provider_objects(&env, &[]).await;
    // An existing node (a fake kubelet runs it) for an UNMANAGED environment.
    let node: Node = serde_json::from_value(json!({
        "metadata": {
            "name": env.render("${NS}-existing"),
            "labels": {"rbac-test": env.ns, LABEL_SIM_SIMULATED: "true"},
            "annotations": {ANNOTATION_SIM_CAPACITY: r#"{"cpu":"2","memory":"4096Mi","pods":"110"}"#},
        },
    }))
    .expect("node");
    create(Api::<Node>::all(client.clone()), &node).await;
    run_operator_as_operator_user(&mut env);

    let ns = env.ns.clone();
    env.apply(&format!(
        "{}{}{}{}{}{}",
        compute_environment("sim", 2),
        scaling_environment("karp", 4, KARPENTER_PROVIDER),
        scaling_environment("capi", 4, &cluster_api_provider(&ns)),
        unmanaged_environment(&ns),
        job_queue("q", 10, &["unmanaged"]),
        job_definition("ok", "exit 0", &[], "1", ""),
    ))
    .await;
    for (ce, provider) in [
        ("sim", "simulated"),
        ("karp", "karpenter"),
        ("capi", "clusterAPI"),
    ] {
        let name = env.render(&format!("${{NS}}-{ce}"));
        let invalid = env
            .wait_for(
                &env.compute_environments(),
                &name,
                "INVALID (ProviderDisabled)",
                |c| {
                    c.status.as_ref().is_some_and(|s| {
                        s.status == Some(CeStatus::Invalid)
                            && s.conditions
                                .iter()
                                .any(|c| c.type_ == "Ready" && c.reason == "ProviderDisabled")
                    })
                },
            )
            .await;
        let reason = invalid
            .status
            .and_then(|s| s.status_reason)
            .unwrap_or_default();
        assert!(
            reason.contains(&format!("the {provider} provider is not enabled"))
                && reason.contains(&format!("providers.{provider}.enabled=true")),
            "{reason}"
        );
    }
    // UNMANAGED environments need no provider: a job runs on the existing node.
    env.apply(&job("runs", "q", "ok", "")).await;
    env.wait_job("runs", JobStatus::Succeeded).await;
    // Settled: no retries while the environments stay INVALID.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log: Vec<RequestRecord> = env
        .cluster()
        .request_log()
        .into_iter()
        .filter(|r| r.user == OPERATOR_USER)
        .collect();
    let denied: Vec<Grant> = log.iter().filter(|r| !r.allowed).map(grant_of).collect();
    assert!(denied.is_empty(), "denied: {denied:#?}");
    let provider_calls: Vec<String> = log
        .iter()
        .filter(|r| {
            r.path.contains("karpenter")
                || r.path.contains("cluster.x-k8s.io")
                || (r.resource == "nodes" && ["create", "delete"].contains(&r.verb.as_str()))
        })
        .map(|r| format!("{} {}", r.verb, r.path))
        .collect();
    assert!(
        provider_calls.is_empty(),
        "no call for a disabled provider: {provider_calls:#?}"
    );
    assert!(
        nodes_of(&env.nodes(), &env.render("${NS}-sim"))
            .await
            .is_empty(),
        "the disabled simulated provider made no nodes"
    );
    env.finish().await;
}

/// A two-node multi-node definition `gang` (1 vCPU per node): the main node waits for the other.
fn multinode_definition() -> String {
    r#"---
apiVersion: batch.barge.dev/v1alpha1
kind: JobDefinition
metadata: {name: gang}
spec:
  type: multinode
  nodeProperties:
    numNodes: 2
    mainNode: 0
    nodeRangeProperties:
      - targetNodes: "0:"
        container:
          image: busybox:1.36
          command: [sh, -c, "exit 0"]
          resourceRequirements:
            - {type: VCPU, value: "1"}
            - {type: MEMORY, value: "64"}
"#
    .to_string()
}

/// kubectl as `user` (`--as`) against the test's cluster: (success, stdout, stderr).
fn kubectl_as(env: &E2e, user: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let cache = tempfile::tempdir().expect("kubectl cache dir");
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", env.kubeconfig())
        .arg("--cache-dir")
        .arg(cache.path())
        .arg(format!("--as={user}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    let out = child.wait_with_output().expect("kubectl output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn must(env: &E2e, user: &str, args: &[&str], stdin: Option<&str>) -> String {
    let (ok, out, err) = kubectl_as(env, user, args, stdin);
    assert!(ok, "kubectl --as={user} {args:?} failed:\n{out}\n{err}");
    out
}

fn forbidden(env: &E2e, user: &str, args: &[&str], stdin: Option<&str>) {
    let (ok, out, err) = kubectl_as(env, user, args, stdin);
    assert!(
        !ok && err.contains("forbidden") && err.contains(user),
        "kubectl --as={user} {args:?} should be Forbidden:\n{out}\n{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_bound_to_edit_submits_and_terminates_jobs_in_that_namespace_only() {
    if !kubectl_available() {
        return;
    }
    let env = E2e::start("rbac-edit").await;
    if env.sim_cluster().is_none() {
        eprintln!("rbac: skipped against a real cluster (needs barge-sim's impersonation)");
        return;
    }
    let client = env.client.clone();
    // Barge's user roles and the queue readers' binding, as config/rbac installs them.
    for doc in documents("config/rbac/user_roles.yaml") {
        let role: ClusterRole = serde_json::from_value(doc).expect("ClusterRole");
        create(Api::all(client.clone()), &role).await;
    }
    let readers: ClusterRoleBinding =
        serde_json::from_value(documents("config/rbac/queue_reader_binding.yaml").remove(0))
            .expect("binding");
    create(Api::all(client.clone()), &readers).await;
    let team_a = env.ns.clone();
    let team_b = format!("{team_a}-b");
    create_namespace(&client, &team_b).await;
    for (user, role) in [("alice", "edit"), ("victor", "view")] {
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": format!("{user}-{role}"), "namespace": team_a},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }))
        .expect("RoleBinding");
        create(Api::namespaced(client.clone(), &team_a), &binding).await;
    }
    // The aggregation controller copies Barge's rules into `edit` and `view`.
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    for (role, verb) in [("edit", "create"), ("view", "list"), ("admin", "delete")] {
        env.wait_until(&format!("{role} aggregates Barge's jobs ({verb})"), || {
            let cluster_roles = cluster_roles.clone();
            async move {
                let found = cluster_roles.get(role).await.ok()?;
                found
                    .rules?
                    .iter()
                    .any(|r| {
                        r.api_groups
                            .iter()
                            .flatten()
                            .any(|g| g == "batch.barge.dev")
                            && r.resources.iter().flatten().any(|x| x == "jobs")
                            && r.verbs.iter().any(|v| v == verb)
                    })
                    .then_some(())
            }
        })
        .await;
    }
    // The platform team (the cluster admin here) sets up an environment and a queue.
    fixed_pool_and_queue(&env, 2).await;

    // alice registers a definition and submits jobs in team-a with kubectl.
    let definitions = env.render(&format!(
        "{}{}",
        job_definition("ok", "exit 0", &[], "1", ""),
        job_definition("wait", GATE, &[], "1", "")
    ));
    must(
        &env,
        "alice",
        &["apply", "-n", &team_a, "-f", "-"],
        Some(&definitions),
    );
    let jobs = env.render(&format!(
        "{}{}",
        job("by-alice", "q", "ok", ""),
        job("long", "q", "wait", "")
    ));
    must(
        &env,
        "alice",
        &["create", "-n", &team_a, "-f", "-"],
        Some(&jobs),
    );
    env.wait_job("by-alice", JobStatus::Succeeded).await;
    env.wait_job_reached("long", JobStatus::Running).await;
    // She terminates hers (spec.terminate, as `kubectl barge terminate` sets it).
    must(
        &env,
        "alice",
        &[
            "patch",
            "-n",
            &team_a,
            "jobs.batch.barge.dev",
            "long",
            "--type=merge",
            "-p",
            r#"{"spec":{"terminate":{"reason":"terminated by alice"}}}"#,
        ],
        None,
    );
    let stopped = env.wait_job("long", JobStatus::Failed).await;
    let reason = stopped
        .status
        .as_ref()
        .and_then(|s| s.status_reason.clone())
        .unwrap_or_default();
    assert!(reason.contains("terminated by alice"), "{reason}");
    // She reads the jobs with their status, and the cluster-scoped queues.
    let listed = must(
        &env,
        "alice",
        &["get", "-n", &team_a, "jobs.batch.barge.dev"],
        None,
    );
    assert!(
        listed.contains("by-alice") && listed.contains("long"),
        "{listed}"
    );
    let queues = must(&env, "alice", &["get", "jobqueues"], None);
    assert!(queues.contains(&env.render("${NS}-q")), "{queues}");
    // Not in team-b, and not the cluster-scoped kinds' writes.
    forbidden(
        &env,
        "alice",
        &["create", "-n", &team_b, "-f", "-"],
        Some(&env.render(&job("elsewhere", "q", "ok", ""))),
    );
    forbidden(
        &env,
        "alice",
        &["get", "-n", &team_b, "jobs.batch.barge.dev"],
        None,
    );
    forbidden(
        &env,
        "alice",
        &["create", "-f", "-"],
        Some(&env.render(&job_queue("mine", 1, &["ce"]))),
    );
    // victor (view) reads in team-a and cannot create, terminate or delete.
    let seen = must(
        &env,
        "victor",
        &[
            "get",
            "-n",
            &team_a,
            "jobs.batch.barge.dev",
            "by-alice",
            "-o",
            "yaml",
        ],
        None,
    );
    assert!(seen.contains("SUCCEEDED"), "{seen}");
    forbidden(
        &env,
        "victor",
        &["create", "-n", &team_a, "-f", "-"],
        Some(&env.render(&job("by-victor", "q", "ok", ""))),
    );
    forbidden(
        &env,
        "victor",
        &[
            "patch",
            "-n",
            &team_a,
            "jobs.batch.barge.dev",
            "by-alice",
            "--type=merge",
            "-p",
            r#"{"spec":{"terminate":{"reason":"no"}}}"#,
        ],
        None,
    );
    forbidden(
        &env,
        "victor",
        &["delete", "-n", &team_a, "jobs.batch.barge.dev", "by-alice"],
        None,
    );
    // The API server logged the refusals as RBAC's.
    let refused: Vec<RequestRecord> = env
        .cluster()
        .request_log()
        .into_iter()
        .filter(|r| r.user == "alice" && r.namespace == team_b)
        .collect();
    assert!(
        !refused.is_empty() && refused.iter().all(|r| !r.allowed && r.code == 403),
        "{refused:#?}"
    );
    env.finish().await;
}
