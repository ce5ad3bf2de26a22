//! End-to-end: what GitOps tools see of Barge's objects (issue 13, docs/gitops.md).
//!
//! One run of the real `barge` binary against barge-sim produces a SUCCEEDED, a FAILED, a
//! RUNNING and two RUNNABLE jobs (one blocked, one waiting for room), a VALID and two INVALID queues and compute environments (one
//! INVALID for its own spec, one for a missing reference), a definition and a scheduling policy,
//! and then a queue and an environment whose new generation the operator has not observed yet
//! (the operator is stopped while their specs change). Each object is read back as raw JSON and
//! judged twice:
//! - by the Argo CD health checks Barge ships (config/argocd/…/health.lua), evaluated in Lua 5.1
//!   (Argo CD's gopher-lua is a Lua 5.1) with only the libraries Argo CD opens;
//! - by [`kstatus`], a port of the generic rules of kstatus (what Flux's `wait` and health
//!   checks apply to custom resources).
//!
//! Every object of every kind must carry a `Ready` condition and `status.observedGeneration`
//! for the generation it describes.

mod support;

use std::path::PathBuf;

use barge_crds::consts::{CONDITION_READY, CONDITION_STALLED, REASON_INVALID_SPEC};
use barge_crds::job::JobStatus;
use barge_crds::{ComputeEnvironment, Job, JobDefinition, JobQueue, SchedulingPolicy};
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Api, Resource};
use mlua::{Lua, LuaOptions, LuaSerdeExt, SerializeOptions, StdLib};
use serde_json::Value;

use support::{compute_environment, job, job_definition, job_queue, scripted_tags, E2e, Options};

/// API group of Barge's kinds: the directory of their health checks.
const GROUP: &str = "batch.barge.dev";

/// `config/argocd` in the repository.
fn argocd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/argocd")
}

/// The health check Barge ships for `kind`, as Argo CD's resource_customizations lay it out.
fn health_script(kind: &str) -> String {
    let path = argocd_dir().join(format!("resource_customizations/{GROUP}/{kind}/health.lua"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Argo CD's verdict on `object` by the health check of `kind`: (hs.status, hs.message).
///
/// As in Argo CD: `obj` is the object as the API server returns it (JSON `null`s are absent
/// fields, so they become `nil`), the script's return value is the health, and only the base,
/// table, string and math libraries are open (no `io`, no `os`).
fn argo_health(kind: &str, object: &Value) -> (String, String) {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::default(),
    )
    .expect("a Lua 5.1 state");
    let options = SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    let obj = lua.to_value_with(object, options).expect("object to Lua");
    lua.globals().set("obj", obj).expect("set obj");
    let hs: mlua::Table = lua
        .load(health_script(kind))
        .set_name(format!("{GROUP}/{kind}/health.lua"))
        .eval()
        .unwrap_or_else(|e| panic!("{kind} health.lua on {object}: {e}"));
    let status: String = hs.get("status").expect("hs.status is a string");
    let message: String = hs.get("message").expect("hs.message is a string");
    (status, message)
}

/// kstatus' verdict (sigs.k8s.io/cli-utils pkg/kstatus/status `Compute`) on a custom resource
/// of a kind it has no built-in rules for — Barge's kinds: deletion → Terminating; an
/// `observedGeneration` other than the generation → InProgress; `Reconciling=True` →
/// InProgress; `Stalled=True` → Failed; then `Ready`: True → Current, False or Unknown →
/// InProgress; no Ready condition → Current.
fn kstatus(object: &Value) -> &'static str {
    if object["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating";
    }
    let observed = &object["status"]["observedGeneration"];
    if !observed.is_null() && observed != &object["metadata"]["generation"] {
        return "InProgress";
    }
    let conditions = object["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let is = |c: &Value, type_: &str, status: &str| c["type"] == type_ && c["status"] == status;
    for c in &conditions {
        if is(c, "Reconciling", "True") {
            return "InProgress";
        }
        if is(c, "Stalled", "True") {
            return "Failed";
        }
    }
    match conditions.iter().find(|c| c["type"] == "Ready") {
        Some(c) if c["status"] == "True" => "Current",
        Some(c) if c["status"] == "False" || c["status"] == "Unknown" => "InProgress",
        _ => "Current",
    }
}

/// The object `name` of kind `K` as raw JSON (every field the API server returns, not only
/// those Barge's types know); `namespaced`: a Job or JobDefinition, in the test's namespace.
async fn raw<K>(env: &E2e, name: &str, namespaced: bool) -> Value
where
    K: Resource<DynamicType = ()>,
{
    let resource = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = if namespaced {
        Api::namespaced_with(env.client.clone(), &env.ns, &resource)
    } else {
        Api::all_with(env.client.clone(), &resource)
    };
    let object = api
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("get {} {name}: {e}", K::kind(&())));
    serde_json::to_value(object).expect("object to JSON")
}

/// The condition of `type_` of a raw object.
fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Asserts the GitOps contract every kind keeps: `status.observedGeneration` is the generation,
/// and so is the `observedGeneration` of every condition, among which is `Ready`. Returns the
/// Ready condition's status.
fn assert_observed(object: &Value) -> String {
    let name = format!("{} {}", object["kind"], object["metadata"]["name"]);
    let generation = &object["metadata"]["generation"];
    assert!(generation.is_i64(), "{name} has a generation: {object}");
    assert_eq!(
        &object["status"]["observedGeneration"], generation,
        "{name}: status.observedGeneration is the generation: {object}"
    );
    let ready =
        condition(object, CONDITION_READY).unwrap_or_else(|| panic!("{name} has Ready: {object}"));
    for c in object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        assert_eq!(
            &c["observedGeneration"], generation,
            "{name}: condition {} carries the generation",
            c["type"]
        );
    }
    ready["status"].as_str().unwrap_or_default().to_string()
}

/// Sets `metadata.generation`-bumping spec fields by merge patch.
async fn patch_spec<K>(api: &Api<K>, name: &str, spec: Value)
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "spec": spec })),
    )
    .await
    .unwrap_or_else(|e| panic!("patch {name}: {e}"));
}

#[tokio::test]
async fn argo_cd_and_kstatus_read_every_kind_from_a_real_run() {
    let mut env = E2e::start_with("gitops", Options::scripted()).await;
    let ns = env.ns.clone();
    // A tag key the CRD's cheap CEL rule lets through and the operator refuses: INVALID for
    // its own spec, so Stalled.
    let bad_ce = format!(
        "{}    tags: {{\"Example.com/team\": \"x\"}}\n",
        compute_environment("bad", 2)
    );
    let policy = r#"---
apiVersion: batch.barge.dev/v1alpha1
kind: SchedulingPolicy
metadata: {name: "${NS}-fair"}
spec:
  fairsharePolicy:
    shareDecaySeconds: 0
    computeReservation: 0
    shareDistribution: [{shareIdentifier: "a", weightFactor: 1}]
"#;
    env.apply(&format!(
        "{}{}{}{}{policy}",
        compute_environment("ce", 4),
        bad_ce,
        job_queue("q", 10, &["ce"]),
        // A queue over an environment that does not exist: INVALID, but not Stalled (the
        // environment may come with the next sync).
        job_queue("orphan", 5, &["missing"]),
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", 2).await;
    env.apply(&format!(
        "{}{}{}",
        job_definition("work", "true", &[], "1", ""),
        // A whole 2-vCPU node.
        job_definition("pair", "true", &[], "2", ""),
        job_definition("big", "true", &[], "64", ""),
    ))
    .await;
    env.apply(&format!(
        "{}{}",
        job("ok", "q", "work", &scripted_tags("0", 0)),
        job("broken", "q", "work", &scripted_tags("0", 3)),
    ))
    .await;
    env.wait_job("ok", JobStatus::Succeeded).await;
    env.wait_job("broken", JobStatus::Failed).await;
    // Two hour-long jobs fill both nodes ...
    env.apply(&format!(
        "{}{}",
        job("long", "q", "pair", &scripted_tags("3600", 0)),
        job("long2", "q", "pair", &scripted_tags("3600", 0)),
    ))
    .await;
    env.wait_job_reached("long", JobStatus::Running).await;
    env.wait_job_reached("long2", JobStatus::Running).await;
    env.apply(&format!(
        "{}{}",
        // ... so this one waits for room, without a statusReason (room will come) ...
        job("next", "q", "pair", &scripted_tags("0", 0)),
        // ... and this one never fits (64 vCPUs): blocked, with AWS's status reason.
        job("huge", "q", "big", &scripted_tags("0", 0)),
    ))
    .await;
    let jobs = env.jobs();
    env.wait_for(&jobs, "next", "RUNNABLE, waiting for room", |j| {
        j.status.as_ref().is_some_and(|s| {
            s.status == Some(JobStatus::Runnable)
                && s.conditions.iter().any(|c| {
                    c.type_ == "Schedulable"
                        && c.reason == barge_crds::consts::REASON_WAITING_FOR_CAPACITY
                })
        })
    })
    .await;
    // Blocked = the scheduler's verdict recorded: AWS's status reason, which follows the
    // RUNNABLE state by a pass (later under API latency).
    env.wait_for(&jobs, "huge", "RUNNABLE and blocked", |j| {
        j.status.as_ref().is_some_and(|s| {
            s.status == Some(JobStatus::Runnable)
                && s.status_reason.is_some()
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Schedulable" && c.status == "False")
        })
    })
    .await;
    let policies = env.policies();
    env.wait_for(&policies, &format!("{ns}-fair"), "evaluated", |p| {
        p.status.as_ref().is_some_and(|s| !s.conditions.is_empty())
    })
    .await;
    let definitions = env.definitions();
    for name in ["work", "pair", "big"] {
        env.wait_for(&definitions, name, "evaluated", |d| {
            d.status.as_ref().is_some_and(|s| !s.conditions.is_empty())
        })
        .await;
    }
    let ces = env.compute_environments();
    env.wait_for(&ces, &format!("{ns}-bad"), "INVALID", |ce| {
        ce.status.as_ref().and_then(|s| s.status)
            == Some(barge_crds::compute_environment::CeStatus::Invalid)
    })
    .await;
    let queues = env.queues();
    for name in ["q", "orphan"] {
        env.wait_for(&queues, &format!("{ns}-{name}"), "validated", |q| {
            q.status.as_ref().is_some_and(|s| s.status.is_some())
        })
        .await;
    }

    // ---- Jobs: Healthy once SUCCEEDED, Degraded once FAILED, Progressing before.
    let ok = raw::<Job>(&env, "ok", true).await;
    let (health, message) = argo_health("Job", &ok);
    assert_eq!(health, "Healthy", "{message}");
    assert!(message.starts_with("SUCCEEDED"), "{message}");
    assert_eq!(assert_observed(&ok), "True");
    assert_eq!(kstatus(&ok), "Current");

    let broken = raw::<Job>(&env, "broken", true).await;
    let reason = broken["status"]["statusReason"]
        .as_str()
        .expect("a FAILED job has a statusReason")
        .to_string();
    assert_eq!(
        argo_health("Job", &broken),
        ("Degraded".to_string(), format!("FAILED: {reason}"))
    );
    assert_eq!(assert_observed(&broken), "False");
    let stalled = condition(&broken, CONDITION_STALLED).expect("a FAILED job is Stalled");
    assert_eq!(
        (&stalled["status"], &stalled["message"]),
        (&"True".into(), &reason.clone().into())
    );
    assert_eq!(
        kstatus(&broken),
        "Failed",
        "Flux stops waiting for a FAILED job"
    );

    let long = raw::<Job>(&env, "long", true).await;
    let (health, message) = argo_health("Job", &long);
    assert_eq!(health, "Progressing");
    assert!(message.starts_with("RUNNING"), "{message}");
    assert_eq!(assert_observed(&long), "False");
    assert!(condition(&long, CONDITION_STALLED).is_none());
    assert_eq!(kstatus(&long), "InProgress", "Flux waits for a running job");

    // Blocked: its statusReason is AWS's code (what jobStateTimeLimitActions match).
    let huge = raw::<Job>(&env, "huge", true).await;
    let reason = huge["status"]["statusReason"]
        .as_str()
        .expect("a blocked RUNNABLE job has a statusReason")
        .to_string();
    assert_eq!(
        argo_health("Job", &huge),
        ("Progressing".to_string(), format!("RUNNABLE: {reason}"))
    );
    assert_eq!(assert_observed(&huge), "False");
    assert_eq!(kstatus(&huge), "InProgress");

    // Waiting without a statusReason: the message says why, from its Schedulable condition.
    let next = raw::<Job>(&env, "next", true).await;
    assert!(next["status"]["statusReason"].is_null(), "{next}");
    let schedulable = condition(&next, "Schedulable")
        .and_then(|c| c["message"].as_str())
        .expect("a waiting job says why")
        .to_string();
    assert_eq!(
        argo_health("Job", &next),
        (
            "Progressing".to_string(),
            format!("RUNNABLE: {schedulable}")
        )
    );
    assert_eq!(assert_observed(&next), "False");
    assert_eq!(kstatus(&next), "InProgress");

    // ---- Compute environments: Healthy when VALID, Degraded when INVALID.
    let ce = raw::<ComputeEnvironment>(&env, &format!("{ns}-ce"), false).await;
    let (health, message) = argo_health("ComputeEnvironment", &ce);
    assert_eq!(health, "Healthy", "{message}");
    assert!(message.starts_with("VALID, ENABLED"), "{message}");
    assert_eq!(assert_observed(&ce), "True");
    assert_eq!(kstatus(&ce), "Current");

    let bad = raw::<ComputeEnvironment>(&env, &format!("{ns}-bad"), false).await;
    let (health, message) = argo_health("ComputeEnvironment", &bad);
    assert_eq!(health, "Degraded");
    assert!(
        message.starts_with("INVALID: ") && message.contains("Example.com/team"),
        "{message}"
    );
    assert_eq!(assert_observed(&bad), "False");
    let stalled = condition(&bad, CONDITION_STALLED).expect("an invalid spec is Stalled");
    assert_eq!(stalled["reason"], REASON_INVALID_SPEC);
    assert_eq!(kstatus(&bad), "Failed");

    // ---- Queues: Healthy when VALID, Degraded when INVALID.
    let q = raw::<JobQueue>(&env, &format!("{ns}-q"), false).await;
    let (health, message) = argo_health("JobQueue", &q);
    assert_eq!(health, "Healthy", "{message}");
    assert!(message.starts_with("VALID, ENABLED"), "{message}");
    assert_eq!(assert_observed(&q), "True");
    assert_eq!(kstatus(&q), "Current");

    let orphan = raw::<JobQueue>(&env, &format!("{ns}-orphan"), false).await;
    let (health, message) = argo_health("JobQueue", &orphan);
    assert_eq!(health, "Degraded");
    assert!(
        message.starts_with("INVALID: ") && message.contains("missing"),
        "{message}"
    );
    assert_eq!(assert_observed(&orphan), "False");
    assert!(
        condition(&orphan, CONDITION_STALLED).is_none(),
        "a missing environment may yet come: not Stalled"
    );
    assert_eq!(kstatus(&orphan), "InProgress");

    // ---- Definitions and policies: Ready, generation observed.
    for name in ["work", "pair", "big"] {
        let definition = raw::<JobDefinition>(&env, name, true).await;
        assert_eq!(assert_observed(&definition), "True", "{definition}");
        assert_eq!(kstatus(&definition), "Current");
    }
    let policy = raw::<SchedulingPolicy>(&env, &format!("{ns}-fair"), false).await;
    assert_eq!(assert_observed(&policy), "True", "{policy}");
    assert_eq!(kstatus(&policy), "Current");

    // ---- A new generation not observed yet: with the operator stopped, nothing can observe
    // the changed specs, so both tools must call them in progress.
    env.kill_operator();
    patch_spec(
        &queues,
        &format!("{ns}-q"),
        serde_json::json!({"priority": 20}),
    )
    .await;
    patch_spec(
        &ces,
        &format!("{ns}-ce"),
        serde_json::json!({"computeResources": {"tags": {"team": "gitops"}}}),
    )
    .await;
    let q = raw::<JobQueue>(&env, &format!("{ns}-q"), false).await;
    assert_eq!(q["metadata"]["generation"], 2);
    assert_eq!(
        argo_health("JobQueue", &q),
        (
            "Progressing".to_string(),
            "Waiting for Barge to validate generation 2 (the status describes generation 1)"
                .to_string()
        )
    );
    assert_eq!(kstatus(&q), "InProgress");
    let ce = raw::<ComputeEnvironment>(&env, &format!("{ns}-ce"), false).await;
    assert_eq!(ce["metadata"]["generation"], 2);
    let (health, message) = argo_health("ComputeEnvironment", &ce);
    assert_eq!(health, "Progressing");
    assert!(message.contains("generation 2"), "{message}");
    assert_eq!(kstatus(&ce), "InProgress");

    // Once the operator is back, both observe generation 2 and are healthy again.
    env.start_operator();
    env.wait_for(&queues, &format!("{ns}-q"), "at generation 2", |q| {
        q.status.as_ref().and_then(|s| s.observed_generation) == Some(2)
    })
    .await;
    let q = raw::<JobQueue>(&env, &format!("{ns}-q"), false).await;
    assert_eq!(argo_health("JobQueue", &q).0, "Healthy");
    assert_eq!(assert_observed(&q), "True");
    assert_eq!(kstatus(&q), "Current");
    env.wait_for(&ces, &format!("{ns}-ce"), "VALID at generation 2", |ce| {
        ce.status.as_ref().is_some_and(|s| {
            s.observed_generation == Some(2)
                && s.status == Some(barge_crds::compute_environment::CeStatus::Valid)
        })
    })
    .await;
    let ce = raw::<ComputeEnvironment>(&env, &format!("{ns}-ce"), false).await;
    assert_eq!(argo_health("ComputeEnvironment", &ce).0, "Healthy");
    assert_eq!(assert_observed(&ce), "True");

    env.finish().await;
}

/// The argocd-cm snippet users apply carries each health check verbatim under Argo CD's key
/// `resource.customizations.health.<group>_<kind>`.
#[test]
fn the_argocd_cm_snippet_carries_each_health_check() {
    let path = argocd_dir().join("argocd-cm.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cm: serde_yaml::Value = serde_yaml::from_str(&text).expect("argocd-cm.yaml is YAML");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    for kind in ["Job", "JobQueue", "ComputeEnvironment"] {
        let key = format!("resource.customizations.health.{GROUP}_{kind}");
        assert_eq!(
            cm["data"][key.as_str()].as_str(),
            Some(health_script(kind).as_str()),
            "{key} in {} is not config/argocd/resource_customizations/{GROUP}/{kind}/health.lua",
            path.display()
        );
    }
}
