//! The SchedulingPolicy controller: validates a fair-share policy and reports it in
//! `status.conditions` (Ready) and `status.observedGeneration`.
//!
//! Pipeline: validate (pure, [`validate`]) → build the status (pure, [`build_status`]) →
//! update_status. The CRD's schema and CEL rules refuse most bad policies at the API server;
//! `validate` checks the same rules again (objects stored before a rule existed, or written by a
//! client that bypassed validation) so that a bad policy is reported, never silently used.
//! Queues that name a policy are reconciled by the JobQueue controller when it changes.
//!
//! Fair-share ordering itself is a later issue: until then the queues of a policy are ordered
//! FIFO, and still require a `shareIdentifier` on their jobs (the Ready message says so).

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::Timestamp;
use kube::runtime::controller::{Action, Controller};
use kube::{Api, ResourceExt};

use barge_crds::consts::{
    CONDITION_READY, FIELD_MANAGER_SCHEDULING_POLICY_CONTROLLER, REASON_INVALID_SPEC, REASON_VALID,
};
use barge_crds::scheduling_policy::{
    FairsharePolicy, MAX_COMPUTE_RESERVATION, MAX_SHARE_DECAY_SECONDS, MAX_SHARE_DISTRIBUTION,
    MAX_WEIGHT_FACTOR, MIN_WEIGHT_FACTOR,
};
use barge_crds::{SchedulingPolicy, SchedulingPolicyStatus};

use super::{controller_config, measured, TRANSIENT_RETRY};
use crate::context::Context;
use crate::shutdown::Shutdown;
use crate::status::{
    apply_status, merge_conditions, ready_and_stalled, DesiredCondition, Precondition,
};

const CONTROLLER: &str = "scheduling-policy";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing the status of scheduling policy {name}: {source}")]
    UpdateStatus { name: String, source: kube::Error },
}

impl super::ReconcileError for Error {}

/// The problems of a fair-share policy, in the order of its fields (empty: valid).
pub fn validate(policy: &FairsharePolicy) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(decay) = policy.share_decay_seconds {
        if !(0..=MAX_SHARE_DECAY_SECONDS).contains(&decay) {
            problems.push(format!(
                "shareDecaySeconds {decay} is outside 0–{MAX_SHARE_DECAY_SECONDS}"
            ));
        }
    }
    if let Some(reservation) = policy.compute_reservation {
        if !(0..=MAX_COMPUTE_RESERVATION).contains(&reservation) {
            problems.push(format!(
                "computeReservation {reservation} is outside 0–{MAX_COMPUTE_RESERVATION}"
            ));
        }
    }
    if policy.share_distribution.len() > MAX_SHARE_DISTRIBUTION {
        problems.push(format!(
            "shareDistribution has {} entries; at most {MAX_SHARE_DISTRIBUTION} are allowed",
            policy.share_distribution.len()
        ));
    }
    let mut seen = BTreeSet::new();
    for share in &policy.share_distribution {
        let id = share.share_identifier.as_str();
        let body = id.strip_suffix('*').unwrap_or(id);
        let well_formed = !id.is_empty()
            && id.len() <= 256
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            problems.push(format!("shareIdentifier {id:?} may contain only letters, digits, '-' and '_', optionally ending with '*'"));
        }
        if !seen.insert(id) {
            problems.push(format!("shareIdentifier {id:?} appears more than once"));
        }
        if let Some(weight) = share.weight_factor {
            if !weight.is_finite() || !(MIN_WEIGHT_FACTOR..=MAX_WEIGHT_FACTOR).contains(&weight) {
                problems.push(format!("weightFactor {weight} of {id:?} is outside {MIN_WEIGHT_FACTOR}–{MAX_WEIGHT_FACTOR}"));
            }
        }
    }
    for prefix_entry in &policy.share_distribution {
        let Some(prefix) = prefix_entry.share_identifier.strip_suffix('*') else {
            continue;
        };
        for other in &policy.share_distribution {
            if other.share_identifier != prefix_entry.share_identifier
                && other.share_identifier.starts_with(prefix)
            {
                problems.push(format!(
                    "shareDistribution entries overlap: {:?} also matches {:?}",
                    prefix_entry.share_identifier, other.share_identifier
                ));
            }
        }
    }
    problems
}

/// The status a policy should have (pure).
pub fn build_status(
    policy: &SchedulingPolicy,
    problems: &[String],
    now: Timestamp,
) -> SchedulingPolicyStatus {
    let generation = policy.metadata.generation;
    let existing = policy
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let ready = if problems.is_empty() {
        DesiredCondition::new(
            CONDITION_READY,
            true,
            REASON_VALID,
            "the fair-share policy is valid; queues that name it require a shareIdentifier on their jobs (jobs are ordered FIFO until fair-share ordering is implemented)",
        )
    } else {
        DesiredCondition::new(
            CONDITION_READY,
            false,
            REASON_INVALID_SPEC,
            problems.join("; "),
        )
    };
    SchedulingPolicyStatus {
        conditions: merge_conditions(existing, &ready_and_stalled(ready), generation, now),
        observed_generation: generation,
    }
}

#[tracing::instrument(name = "reconcile", skip_all, fields(scheduling_policy = %policy.name_any()))]
async fn reconcile(policy: Arc<SchedulingPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    measured(&ctx, CONTROLLER, async {
        let problems = validate(&policy.spec.fairshare_policy);
        let status = build_status(&policy, &problems, Timestamp::now());
        let api: Api<SchedulingPolicy> = Api::all(ctx.client.clone());
        apply_status(
            &api,
            &*policy,
            &status,
            FIELD_MANAGER_SCHEDULING_POLICY_CONTROLLER,
            Precondition::None,
            &ctx.metrics,
        )
        .await
        .map_err(|source| Error::UpdateStatus {
            name: policy.name_any(),
            source,
        })?;
        Ok(Action::await_change())
    })
    .await
}

fn error_policy(_: Arc<SchedulingPolicy>, _: &Error, _: Arc<Context>) -> Action {
    Action::requeue(TRANSIENT_RETRY)
}

/// Runs the controller until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) {
    let caches = ctx.caches.clone();
    let mut controller = Controller::for_shared_stream(
        caches.scheduling_policies_feed.subscribe(),
        caches.scheduling_policies.clone(),
    )
    .with_config(controller_config(&ctx))
    .graceful_shutdown_on(shutdown.wait());
    if let Some(requests) = ctx.triggers.scheduling_policies.stream() {
        controller = controller.reconcile_on(requests);
    }
    super::drain_classified(
        CONTROLLER,
        controller.run(reconcile, error_policy, ctx),
        super::ReconcileError::is_waiting,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use barge_crds::scheduling_policy::{SchedulingPolicySpec, ShareAttributes};

    fn share(id: &str, weight: Option<f64>) -> ShareAttributes {
        ShareAttributes {
            share_identifier: id.into(),
            weight_factor: weight,
        }
    }

    fn policy(shares: Vec<ShareAttributes>) -> FairsharePolicy {
        FairsharePolicy {
            share_decay_seconds: Some(3600),
            compute_reservation: Some(10),
            share_distribution: shares,
        }
    }

    #[test]
    fn a_well_formed_policy_is_valid() {
        assert!(validate(&policy(vec![
            share("teamA*", Some(0.5)),
            share("ops", None),
            share("teamB", Some(2.0))
        ]))
        .is_empty());
        assert!(validate(&FairsharePolicy::default()).is_empty());
    }

    #[test]
    fn every_problem_is_named() {
        let bad = FairsharePolicy {
            share_decay_seconds: Some(-1),
            compute_reservation: Some(100),
            share_distribution: vec![
                share("team*", Some(0.0)),
                share("teamblue", None),
                share("a b", None),
                share("ops", None),
                share("ops", None),
            ],
        };
        let problems = validate(&bad).join("\n");
        for expected in [
            "shareDecaySeconds -1",
            "computeReservation 100",
            "weightFactor 0 of \"team*\"",
            "\"team*\" also matches \"teamblue\"",
            "shareIdentifier \"a b\" may contain only",
            "\"ops\" appears more than once",
        ] {
            assert!(
                problems.contains(expected),
                "missing {expected:?} in\n{problems}"
            );
        }
    }

    #[test]
    fn status_reports_validity_with_the_generation() {
        let mut sp = SchedulingPolicy::new("fair", SchedulingPolicySpec::default());
        sp.metadata.generation = Some(3);
        let now = Timestamp::from_second(1000).expect("ts");
        let status = build_status(&sp, &[], now);
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.conditions[0].status, "True");
        assert!(status.conditions[0]
            .message
            .contains("require a shareIdentifier"));
        let invalid = build_status(&sp, &["shareDecaySeconds -1 is outside".to_string()], now);
        assert_eq!(
            (
                invalid.conditions[0].status.as_str(),
                invalid.conditions[0].reason.as_str()
            ),
            ("False", REASON_INVALID_SPEC)
        );
    }
}
