//! Authentication by impersonation and RBAC authorization against the simulated API server:
//! bootstrap roles and their aggregation, a user bound to `edit` in one namespace creating and
//! deleting objects there and refused in another (kube-rs through [`Cluster::client_as`] /
//! `kubeconfig_as`, and kubectl `--as` and `auth can-i` when kubectl is installed), service
//! accounts, access reviews and the request log. kubectl tests skip loudly without kubectl
//! unless BARGE_REQUIRE_TOOLS=1.

mod common;

use std::process::Command;
use std::time::Duration;

use barge_sim::{Cluster, ClusterConfig, RequestRecord};
use common::{eventually, tool_available};
use k8s_openapi::api::authorization::v1::{
    SelfSubjectAccessReview, SelfSubjectAccessReviewSpec, SubjectAccessReview,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, RoleBinding};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use kube::{Api, Client};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);
const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";

/// A Barge-like `jobs.batch.barge.dev` kind (schema-less), so messages read as for real Jobs.
fn jobs_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "jobs.batch.barge.dev"},
        "spec": {"group": "batch.barge.dev", "scope": "Namespaced",
            "names": {"plural": "jobs", "singular": "job", "kind": "Job"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    })
}

/// A user role for Barge Jobs aggregated to `edit` (as the chart's `barge-batch-user`).
fn batch_user_role() -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "test-batch-user", "labels": {AGGREGATE_TO_EDIT: "true"}},
        "rules": [{"apiGroups": ["batch.barge.dev"], "resources": ["jobs"],
                   "verbs": ["create", "delete", "get", "list", "watch", "patch", "update"]}]
    })
}

fn job(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "batch.barge.dev/v1", "kind": "Job",
        "metadata": {"name": name}, "spec": {"jobQueue": "q"}
    }))
    .expect("job")
}

fn jobs_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("batch.barge.dev", "v1", "Job"),
        "jobs",
    );
    Api::namespaced_with(client.clone(), ns, &ar)
}

async fn create<K>(api: &Api<K>, v: Value) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize,
{
    let obj: K = serde_json::from_value(v).expect("object");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create")
}

/// A cluster with the Jobs CRD, namespaces team-a and team-b, the aggregated user role, and
/// alice bound to `edit` in team-a only.
async fn setup() -> (Cluster, Client) {
    let c = Cluster::start(ClusterConfig::default())
        .await
        .expect("start");
    let admin = c.client().expect("client");
    create(&Api::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>::all(admin.clone()), jobs_crd()).await;
    for ns in ["team-a", "team-b"] {
        create(
            &Api::<Namespace>::all(admin.clone()),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await;
    }
    create(&Api::<ClusterRole>::all(admin.clone()), batch_user_role()).await;
    create(
        &Api::<RoleBinding>::namespaced(admin.clone(), "team-a"),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "alice-edit", "namespace": "team-a"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]}),
    )
    .await;
    (c, admin)
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn rules_of(role: &ClusterRole) -> Vec<PolicyRule> {
    role.rules.clone().unwrap_or_default()
}

fn grants(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        r.api_groups
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|g| g == group)
            && r.resources
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|x| x == resource)
            && r.verbs.iter().any(|v| v == verb)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_roles_exist_and_are_aggregated() {
    let c = Cluster::start(ClusterConfig::default())
        .await
        .expect("start");
    let roles: Api<ClusterRole> = Api::all(c.client().unwrap());
    let defaults = roles
        .list(&ListParams::default().labels("kubernetes.io/bootstrapping=rbac-defaults"))
        .await
        .unwrap();
    let names: Vec<String> = defaults
        .items
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .collect();
    for want in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:discovery",
        "system:basic-user",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let edit = roles.get("edit").await.unwrap();
    let view = roles.get("view").await.unwrap();
    let admin = roles.get("admin").await.unwrap();
    // edit = aggregate-to-edit + view (view is labelled aggregate-to-edit); admin adds RBAC.
    assert!(grants(&rules_of(&edit), "batch", "jobs", "create"));
    assert!(grants(&rules_of(&edit), "", "pods", "list"));
    assert!(!grants(&rules_of(&view), "batch", "jobs", "create"));
    assert!(grants(&rules_of(&view), "batch", "jobs", "watch"));
    assert!(grants(
        &rules_of(&admin),
        "rbac.authorization.k8s.io",
        "rolebindings",
        "create"
    ));
    assert!(grants(&rules_of(&admin), "batch", "jobs", "delete"));
    assert!(!grants(
        &rules_of(&edit),
        "rbac.authorization.k8s.io",
        "rolebindings",
        "create"
    ));
    // The managed fields name the aggregation controller.
    assert!(edit
        .metadata
        .managed_fields
        .unwrap_or_default()
        .iter()
        .any(|m| m.manager.as_deref() == Some("clusterrole-aggregation-controller")));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregation_follows_labelled_cluster_roles() {
    let c = Cluster::start(ClusterConfig::default())
        .await
        .expect("start");
    let roles: Api<ClusterRole> = Api::all(c.client().unwrap());
    let before = roles.get("edit").await.unwrap();
    assert!(!grants(
        &rules_of(&before),
        "batch.barge.dev",
        "jobs",
        "create"
    ));
    create(&roles, batch_user_role()).await;
    // edit picks it up, and admin through edit (edit is labelled aggregate-to-admin).
    for name in ["edit", "admin"] {
        eventually(&format!("{name} aggregates the new role"), WAIT, || {
            let roles = roles.clone();
            async move {
                let r = roles.get(name).await.ok()?;
                grants(&rules_of(&r), "batch.barge.dev", "jobs", "create").then_some(())
            }
        })
        .await;
    }
    let after = roles.get("edit").await.unwrap();
    assert_ne!(
        before.metadata.resource_version,
        after.metadata.resource_version
    );
    // view does not select aggregate-to-edit roles.
    assert!(!grants(
        &rules_of(&roles.get("view").await.unwrap()),
        "batch.barge.dev",
        "jobs",
        "create"
    ));
    // A change of the labelled role's rules is carried over.
    let mut changed = roles.get("test-batch-user").await.unwrap();
    changed.rules = Some(vec![PolicyRule {
        api_groups: Some(vec!["batch.barge.dev".into()]),
        resources: Some(vec!["jobqueues".into()]),
        verbs: vec!["get".into()],
        ..PolicyRule::default()
    }]);
    roles
        .replace("test-batch-user", &PostParams::default(), &changed)
        .await
        .unwrap();
    eventually("edit follows the changed rules", WAIT, || {
        let roles = roles.clone();
        async move {
            let r = rules_of(&roles.get("edit").await.ok()?);
            (grants(&r, "batch.barge.dev", "jobqueues", "get")
                && !grants(&r, "batch.barge.dev", "jobs", "create"))
            .then_some(())
        }
    })
    .await;
    // Deleting it takes its rules away again.
    roles
        .delete("test-batch-user", &DeleteParams::default())
        .await
        .unwrap();
    eventually("edit drops the deleted role's rules", WAIT, || {
        let roles = roles.clone();
        async move {
            let r = rules_of(&roles.get("edit").await.ok()?);
            (!grants(&r, "batch.barge.dev", "jobqueues", "get")).then_some(())
        }
    })
    .await;
    assert_eq!(
        rules_of(&roles.get("edit").await.unwrap()),
        rules_of(&before)
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_user_works_in_its_namespace_only() {
    let (c, admin) = setup().await;
    // Unimpersonated requests are system:admin: allowed, and not logged.
    jobs_api(&admin, "team-b")
        .create(&PostParams::default(), &job("admins-job"))
        .await
        .expect("admin creates in team-b");
    assert_eq!(c.request_log(), Vec::<RequestRecord>::new());

    let alice = c.client_as("alice", &[]).await.expect("client as alice");
    let mine = jobs_api(&alice, "team-a");
    let created = mine
        .create(&PostParams::default(), &job("j1"))
        .await
        .expect("alice creates a Job in team-a");
    assert_eq!(created.metadata.name.as_deref(), Some("j1"));
    assert_eq!(
        mine.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    mine.get("j1").await.expect("get");
    mine.delete("j1", &DeleteParams::default())
        .await
        .expect("alice terminates (deletes) her Job");

    let theirs = jobs_api(&alice, "team-b");
    let e = api_error(
        theirs
            .create(&PostParams::default(), &job("j2"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 403);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        "jobs.batch.barge.dev is forbidden: User \"alice\" cannot create resource \"jobs\" in API group \"batch.barge.dev\" in the namespace \"team-b\""
    );
    let e = api_error(
        theirs
            .delete("admins-job", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        e.message,
        "jobs.batch.barge.dev \"admins-job\" is forbidden: User \"alice\" cannot delete resource \"jobs\" in API group \"batch.barge.dev\" in the namespace \"team-b\""
    );
    let details = e.details.expect("details");
    assert_eq!(details.name, "admins-job");
    assert_eq!(details.group, "batch.barge.dev");
    assert_eq!(details.kind, "jobs");
    let all: Api<DynamicObject> = Api::all_with(
        alice.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("batch.barge.dev", "v1", "Job"),
            "jobs",
        ),
    );
    let e = api_error(all.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        e.message,
        "jobs.batch.barge.dev is forbidden: User \"alice\" cannot list resource \"jobs\" in API group \"batch.barge.dev\" at the cluster scope"
    );
    // Status is not in edit: /status writes are refused even in team-a.
    let status_patch = kube::api::Patch::Merge(json!({"status": {"x": 1}}));
    mine.create(&PostParams::default(), &job("j3"))
        .await
        .unwrap();
    let e = api_error(
        mine.patch_status("j3", &kube::api::PatchParams::default(), &status_patch)
            .await
            .unwrap_err(),
    );
    assert!(
        e.message.contains("cannot patch resource \"jobs/status\""),
        "{}",
        e.message
    );

    // The log holds every impersonated request with its attributes and outcome.
    let log = c.request_log();
    assert!(log
        .iter()
        .all(|r| r.user == "alice" && r.groups == vec!["system:authenticated".to_string()]));
    let find = |verb: &str, ns: &str, name: &str| -> RequestRecord {
        log.iter()
            .find(|r| r.verb == verb && r.namespace == ns && r.name == name && r.resource == "jobs")
            .unwrap_or_else(|| panic!("{verb} {ns}/{name} in {log:#?}"))
            .clone()
    };
    let r = find("create", "team-a", "");
    assert!(r.allowed);
    assert_eq!((r.api_group.as_str(), r.code), ("batch.barge.dev", 201));
    assert!(find("delete", "team-a", "j1").allowed);
    let r = find("create", "team-b", "");
    assert_eq!((r.allowed, r.code), (false, 403));
    let r = find("delete", "team-b", "admins-job");
    assert_eq!((r.allowed, r.code), (false, 403));
    let r = find("patch", "team-a", "j3");
    assert_eq!((r.subresource.as_str(), r.allowed), ("status", false));
    assert_eq!(find("list", "", "").code, 403);
    c.clear_request_log();
    assert!(c.request_log().is_empty());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_accounts_groups_and_reviews() {
    let (c, admin) = setup().await;
    // A RoleBinding naming a service account without namespace means the binding's namespace.
    create(
        &Api::<RoleBinding>::namespaced(admin.clone(), "team-b"),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "robot-view", "namespace": "team-b"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
               "subjects": [{"kind": "ServiceAccount", "name": "robot"},
                            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "auditors"}]}),
    )
    .await;
    let robot = c
        .client_as("system:serviceaccount:team-b:robot", &[])
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(robot.clone(), "team-b");
    cms.list(&ListParams::default())
        .await
        .expect("view lists configmaps");
    let e = api_error(
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap(),
        )
        .await
        .unwrap_err(),
    );
    assert!(e.message.starts_with(
        "configmaps is forbidden: User \"system:serviceaccount:team-b:robot\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"team-b\""
    ));
    let log = c.request_log();
    assert_eq!(
        log[0].groups,
        vec![
            "system:serviceaccounts",
            "system:serviceaccounts:team-b",
            "system:authenticated"
        ]
    );
    // Group membership given with the user.
    let carol = c.client_as("carol", &["auditors"]).await.unwrap();
    Api::<ConfigMap>::namespaced(carol.clone(), "team-b")
        .list(&ListParams::default())
        .await
        .expect("auditors view team-b");
    Api::<ConfigMap>::namespaced(carol, "team-a")
        .list(&ListParams::default())
        .await
        .expect_err("but not team-a");

    // SelfSubjectAccessReview as alice.
    let alice = c.client_as("alice", &[]).await.unwrap();
    let ssar = |ns: &str| -> SelfSubjectAccessReview {
        serde_json::from_value(json!({"spec": {"resourceAttributes": {
            "namespace": ns, "verb": "create", "group": "batch.barge.dev", "resource": "jobs"}}}))
        .unwrap()
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(alice);
    let yes = reviews
        .create(&PostParams::default(), &ssar("team-a"))
        .await
        .unwrap();
    let status = yes.status.expect("status");
    assert!(status.allowed);
    assert_eq!(
        status.reason.as_deref(),
        Some("RBAC: allowed by RoleBinding \"alice-edit/team-a\" of ClusterRole \"edit\" to User \"alice\"")
    );
    let no = reviews
        .create(&PostParams::default(), &ssar("team-b"))
        .await
        .unwrap();
    assert!(!no.status.expect("status").allowed);
    // The admin asks about others with SubjectAccessReview.
    let sars: Api<SubjectAccessReview> = Api::all(admin.clone());
    let sar = |user: &str, ns: &str| -> SubjectAccessReview {
        serde_json::from_value(json!({"spec": {"user": user, "resourceAttributes": {
            "namespace": ns, "verb": "delete", "group": "batch.barge.dev", "resource": "jobs", "name": "j"}}}))
        .unwrap()
    };
    let allowed = |r: SubjectAccessReview| r.status.expect("status").allowed;
    assert!(allowed(
        sars.create(&PostParams::default(), &sar("alice", "team-a"))
            .await
            .unwrap()
    ));
    assert!(!allowed(
        sars.create(&PostParams::default(), &sar("alice", "team-b"))
            .await
            .unwrap()
    ));
    assert!(!allowed(
        sars.create(&PostParams::default(), &sar("bob", "team-a"))
            .await
            .unwrap()
    ));
    // Unimpersonated: system:admin may do anything.
    let admin_reviews: Api<SelfSubjectAccessReview> = Api::all(admin);
    let me = admin_reviews
        .create(
            &PostParams::default(),
            &SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    non_resource_attributes: Some(
                        k8s_openapi::api::authorization::v1::NonResourceAttributes {
                            path: Some("/metrics".into()),
                            verb: Some("get".into()),
                        },
                    ),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(me.status.unwrap().allowed);
    c.shutdown().await;
}

/// kubectl with `--as`, `auth can-i`, `auth whoami` and a kubeconfig from `kubeconfig_as`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_as_a_user() {
    if !tool_available("kubectl", &["version", "--client"]) {
        return;
    }
    let (c, _admin) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let admin_kc = c.kubeconfig_path().to_path_buf();
    let alice_kc = dir.path().join("alice.kubeconfig");
    std::fs::write(&alice_kc, c.kubeconfig_as("alice", &[])).unwrap();
    let kubectl = |kc: &std::path::Path, args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", kc)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let o = child.wait_with_output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let can_i = |args: &[&str]| {
        let mut a = vec!["auth", "can-i"];
        a.extend_from_slice(args);
        kubectl(&admin_kc, &a, None)
    };
    let (code, out, err) = can_i(&[
        "--as",
        "alice",
        "create",
        "jobs.batch.barge.dev",
        "-n",
        "team-a",
    ]);
    assert_eq!((code, out.trim()), (Some(0), "yes"), "{err}");
    let (code, out, _) = can_i(&[
        "--as",
        "alice",
        "create",
        "jobs.batch.barge.dev",
        "-n",
        "team-b",
    ]);
    assert_eq!((code, out.trim()), (Some(1), "no"));
    let (code, out, _) = can_i(&["--as", "alice", "create", "rolebindings", "-n", "team-a"]);
    assert_eq!((code, out.trim()), (Some(1), "no"));
    let (code, out, _) = can_i(&[
        "--as",
        "bob",
        "--as-group",
        "system:masters",
        "delete",
        "nodes",
    ]);
    assert_eq!((code, out.trim()), (Some(0), "yes"));
    let (code, out, err) = can_i(&["--as", "alice", "--list", "-n", "team-a"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("jobs.batch.barge.dev"), "{out}");

    let job =
        "apiVersion: batch.barge.dev/v1\nkind: Job\nmetadata:\n  name: k1\nspec:\n  jobQueue: q\n";
    let (code, out, err) = kubectl(&alice_kc, &["create", "-n", "team-a", "-f", "-"], Some(job));
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = kubectl(
        &alice_kc,
        &["get", "jobs.batch.barge.dev", "-n", "team-a", "-o", "name"],
        None,
    );
    assert_eq!(
        (code, out.trim()),
        (Some(0), "job.batch.barge.dev/k1"),
        "{err}"
    );
    let (code, _, err) = kubectl(&alice_kc, &["create", "-n", "team-b", "-f", "-"], Some(job));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("Error from server (Forbidden): error when creating \"STDIN\": jobs.batch.barge.dev is forbidden: User \"alice\" cannot create resource \"jobs\" in API group \"batch.barge.dev\" in the namespace \"team-b\""),
        "{err}"
    );
    let (code, _, err) = kubectl(
        &admin_kc,
        &[
            "--as",
            "alice",
            "delete",
            "jobs.batch.barge.dev",
            "k1",
            "-n",
            "team-a",
        ],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = kubectl(&admin_kc, &["--as", "alice", "get", "namespaces"], None);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("namespaces is forbidden: User \"alice\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"),
        "{err}"
    );
    let (code, out, err) = kubectl(
        &admin_kc,
        &[
            "auth",
            "whoami",
            "--as",
            "alice",
            "--as-group",
            "devs",
            "-o",
            "json",
        ],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    let who: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "alice");
    assert_eq!(
        who["status"]["userInfo"]["groups"],
        json!(["devs", "system:authenticated"])
    );
    let (code, out, _) = kubectl(
        &admin_kc,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        None,
    );
    assert_eq!((code, out.as_str()), (Some(0), "system:admin"));
    // kubectl's discovery as alice went through system:discovery.
    assert!(c
        .request_log()
        .iter()
        .any(|r| !r.resource_request && r.path == "/api" && r.allowed));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_cannot_grant_more_than_they_hold() {
    let (c, admin) = setup().await;
    let bind = |name: &str, role_kind: &str, role: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": name, "namespace": "team-a"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ann"}]})
    };
    create(
        &Api::<RoleBinding>::namespaced(admin.clone(), "team-a"),
        bind("ann-admin", "ClusterRole", "admin"),
    )
    .await;
    let ann = c.client_as("ann", &[]).await.unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(ann.clone(), "team-a");
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(ann.clone(), "team-a");
    // admin holds everything edit grants, and secrets: these pass.
    bindings
        .create(
            &PostParams::default(),
            &from(bind("ann-edit", "ClusterRole", "edit")),
        )
        .await
        .expect("admin may bind edit");
    roles
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "secret-reader"},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]})),
        )
        .await
        .expect("admin may grant what it has");
    // Not cluster-admin, nor nodes.
    let e = api_error(
        bindings
            .create(
                &PostParams::default(),
                &from(bind("ann-root", "ClusterRole", "cluster-admin")),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        "rolebindings.rbac.authorization.k8s.io \"ann-root\" is forbidden: user \"ann\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}\n{NonResourceURLs:[\"*\"], Verbs:[\"*\"]}"
    );
    let e = api_error(
        roles
            .create(
                &PostParams::default(),
                &from(json!({"metadata": {"name": "node-reader"},
                    "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "get"]}]})),
            )
            .await
            .unwrap_err(),
    );
    assert!(
        e.message.ends_with("not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"list\" \"get\"]}"),
        "{}",
        e.message
    );
    // Widening a role by patch is refused too.
    let widen = kube::api::Patch::Merge(
        json!({"rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]}),
    );
    api_error(
        roles
            .patch("secret-reader", &kube::api::PatchParams::default(), &widen)
            .await
            .unwrap_err(),
    );
    // The `bind` verb on a role lets one bind it without holding it.
    create(
        &Api::<ClusterRole>::all(admin.clone()),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "bind-cluster-admin"},
               "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                          "verbs": ["bind"], "resourceNames": ["cluster-admin"]}]}),
    )
    .await;
    create(
        &Api::<RoleBinding>::namespaced(admin.clone(), "team-a"),
        bind("ann-binder", "ClusterRole", "bind-cluster-admin"),
    )
    .await;
    bindings
        .create(
            &PostParams::default(),
            &from(bind("ann-root", "ClusterRole", "cluster-admin")),
        )
        .await
        .expect("bind allows it");
    c.shutdown().await;
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("object")
}
