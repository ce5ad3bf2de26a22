//! AWS Batch documents nobody here wrote (e2e/fixtures/aws), read as they are and fed
//! through barge-core's decisions: retry strategies, instance types, allocation strategies,
//! queue ordering and array sizes behave as an AWS Batch user expects.

use barge_core::deps::{self, Dependency, DependencyTarget, DependencyTargets, DependencyVerdict};
use barge_core::fixtures::{attempt_pod, job, T0};
use barge_core::job;
use barge_core::pool::{self, AllocationStrategy};
use barge_core::retry::{
    decide_after_attempt, AttemptDecision, AttemptOutcome, EvaluateOnExit, RetryStrategy,
};
use barge_core::scheduler::{order_queues, QueueSpec};
use barge_core::state::JobState;
use serde_json::Value;

fn document(name: &str) -> Value {
    let path = barge_fixtures::aws(name);
    let text = barge_fixtures::read(&path);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn retry_strategy(doc: &Value) -> RetryStrategy {
    let strategy = &doc["retryStrategy"];
    let attempts = strategy["attempts"]
        .as_u64()
        .map_or(1, |a| u32::try_from(a).expect("small"));
    let rules = strategy["evaluateOnExit"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| {
                    EvaluateOnExit::parse(
                        r["onExitCode"].as_str(),
                        r["onReason"].as_str(),
                        r["onStatusReason"].as_str(),
                        r["action"].as_str().expect("action"),
                    )
                    .expect("valid AWS rule")
                })
                .collect()
        })
        .unwrap_or_default();
    RetryStrategy::new(attempts, rules).expect("valid AWS retry strategy")
}

#[test]
fn spot_retry_definition_retries_lost_hosts_and_exits_on_anything_else() {
    let doc = document("jobdef-spot-retry.json");
    let strategy = retry_strategy(&doc);
    assert_eq!(strategy.attempts(), 5);
    let lost = AttemptOutcome::host_lost("spot-node-12");
    assert_eq!(
        decide_after_attempt(&strategy, 1, &lost),
        AttemptDecision::Retry
    );
    assert!(matches!(
        decide_after_attempt(&strategy, 1, &AttemptOutcome::exited(1, None)),
        AttemptDecision::Fail { .. }
    ));

    // Through the state machine: a spot interruption, then a clean exit.
    let timeout = doc["timeout"]["attemptDurationSeconds"].as_i64();
    assert_eq!(timeout, Some(1800));
    let mut view = job("spot").state(JobState::Running).build();
    view.spec.retry_strategy = strategy;
    view.spec.attempt_duration_seconds = timeout;
    view.pods = vec![attempt_pod("spot", 1, None)
        .node("spot-node-12")
        .running(T0)
        .node_lost()
        .build()];
    let plan = job::reconcile(&view, T0 + 1_000);
    assert_eq!(plan.record.state, JobState::Runnable);
    assert_eq!(
        plan.record.attempts[0].status_reason,
        "Host EC2 (instance spot-node-12) terminated."
    );
}

#[test]
fn multinode_definition_retry_strategy_is_valid() {
    let doc = document("jobdef-multinode.json");
    assert_eq!(retry_strategy(&doc).attempts(), 2);
}

#[test]
fn definitions_without_retry_strategy_get_one_attempt() {
    for name in [
        "jobdef-fetch_and_run.json",
        "jobdef-gpu.json",
        "jobdef-tensorflow_mnist_deep.json",
    ] {
        assert_eq!(retry_strategy(&document(name)).attempts(), 1, "{name}");
    }
}

#[test]
fn managed_compute_environment_plans_its_desired_vcpus() {
    let doc = document("computeenv-managed.json");
    let resources = &doc["computeResources"];
    let entries: Vec<&str> = resources["instanceTypes"]
        .as_array()
        .expect("instanceTypes")
        .iter()
        .map(|v| v.as_str().expect("string"))
        .collect();
    let types = pool::expand_instance_types(&entries).expect("known c4 sizes");
    assert_eq!(types.len(), 5);
    let desired = resources["desiredvCpus"].as_i64().expect("desiredvCpus");
    let plan = pool::plan_fixed_pool(desired, &types, AllocationStrategy::default()).expect("plan");
    let total: i64 = plan.iter().map(|(t, n)| t.vcpus * i64::from(*n)).sum();
    assert!(total >= desired && total <= resources["maxvCpus"].as_i64().expect("maxvCpus"));
    let name = doc["computeEnvironmentName"]
        .as_str()
        .expect("name")
        .to_lowercase();
    let diff = pool::diff_pool(&name, &plan, &[]);
    assert_eq!(
        diff.create.len() as u32,
        plan.iter().map(|(_, n)| n).sum::<u32>()
    );
    assert!(diff
        .create
        .iter()
        .all(|c| c.name.starts_with("c4ondemand-c4-")));
}

#[test]
fn spot_compute_environment_expands_a_family_and_spreads() {
    let doc = document("computeenv-spot.json");
    let resources = &doc["computeResources"];
    let entries: Vec<&str> = resources["instanceTypes"]
        .as_array()
        .expect("instanceTypes")
        .iter()
        .map(|v| v.as_str().expect("string"))
        .collect();
    assert_eq!(entries, vec!["m4"]);
    let types = pool::expand_instance_types(&entries).expect("m4 family");
    assert!(types.iter().all(|t| t.family == "m4") && types.len() > 1);
    let strategy =
        AllocationStrategy::parse(resources["allocationStrategy"].as_str().expect("strategy"))
            .expect("known");
    assert_eq!(strategy, AllocationStrategy::SpotCapacityOptimized);
    let plan = pool::plan_fixed_pool(16, &types, strategy).expect("plan");
    assert!(
        plan.len() > 1,
        "capacity-optimized spreads over several m4 sizes: {plan:?}"
    );
    assert_eq!(resources["desiredvCpus"].as_i64(), Some(0));
    assert!(pool::plan_fixed_pool(0, &types, strategy)
        .expect("plan")
        .is_empty());
}

#[test]
fn job_queue_template_orders_environments_and_outranks_lower_priorities() {
    let doc = document("jobqueue-template.json");
    let mut order: Vec<(i64, String)> = doc["computeEnvironmentOrder"]
        .as_array()
        .expect("order")
        .iter()
        .map(|e| {
            let arn = e["computeEnvironment"].as_str().expect("arn");
            (
                e["order"].as_i64().expect("order"),
                arn.rsplit('/').next().expect("name").to_string(),
            )
        })
        .collect();
    order.sort();
    let high = QueueSpec {
        name: doc["jobQueueName"].as_str().expect("name").to_string(),
        priority: i32::try_from(doc["priority"].as_i64().expect("priority")).expect("small"),
        enabled: doc["state"] == "ENABLED",
        environments: order.into_iter().map(|(_, name)| name).collect(),
        strict_fifo: false,
        fair_share: None,
    };
    assert_eq!(high.environments, vec!["C4OnDemand", "M4Spot"]);
    let low = QueueSpec {
        name: "AaaLowPriority".to_string(),
        priority: 1,
        ..high.clone()
    };
    let queues = vec![low, high];
    assert_eq!(
        order_queues(&queues),
        vec![1, 0],
        "priority 10 is served before priority 1"
    );
}

#[test]
fn array_submission_of_ten_thousand_is_accepted_and_waits_for_its_dependency() {
    let doc = document("submitjob-array-with-dependency.json");
    let size =
        u32::try_from(doc["arrayProperties"]["size"].as_u64().expect("size")).expect("small");
    assert_eq!(size, 10_000);
    barge_core::job::array::validate_size(size).expect("AWS maximum is accepted");
    // `dependsOn: [{jobId}]` (no type) is a plain dependency on the whole job.
    let dep_name = doc["dependsOn"][0]["jobId"].as_str().expect("jobId");
    let deps_list = [Dependency::standard(dep_name)];
    let mut targets = DependencyTargets::new();
    targets.insert(
        dep_name.to_string(),
        DependencyTarget::job(JobState::Running),
    );
    let readiness = deps::evaluate_array(
        "JobB",
        size,
        &deps_list,
        &targets,
        &Default::default(),
        &Default::default(),
    );
    assert!(matches!(readiness.gate, DependencyVerdict::Waiting { .. }));
    let vcpus = doc["containerOverrides"]["vcpus"].as_i64().expect("vcpus");
    assert_eq!(
        barge_core::quantity::aws_vcpus_millis(&vcpus.to_string()).expect("vcpus"),
        32_000
    );
}
