//! SchedulingPolicy (cluster-scoped, short name `sp`): a fair-share policy a JobQueue may name —
//! the counterpart of AWS Batch CreateSchedulingPolicy. Share identifiers get compute in inverse
//! proportion to their weight factor; usage decays over `shareDecaySeconds`; `computeReservation`
//! holds capacity back for identifiers that are not active yet.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most `shareDistribution` entries. AWS Batch allows 500; Barge keeps 100 so that the
/// non-overlap rule (quadratic in the entries) stays within the API server's CEL cost budget.
pub const MAX_SHARE_DISTRIBUTION: usize = 100;
/// `shareDecaySeconds` bounds (AWS Batch: up to one week).
pub const MAX_SHARE_DECAY_SECONDS: i32 = 604_800;
/// `computeReservation` bounds (AWS Batch: 0–99).
pub const MAX_COMPUTE_RESERVATION: i32 = 99;
/// `weightFactor` bounds (AWS Batch: 0.0001–999.9999).
pub const MIN_WEIGHT_FACTOR: f64 = 0.0001;
pub const MAX_WEIGHT_FACTOR: f64 = 999.9999;
/// Default weight factor of a share identifier the policy does not list.
pub const DEFAULT_WEIGHT_FACTOR: f64 = 1.0;

/// The weight of a share identifier or prefix (AWS `ShareAttributes`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShareAttributes {
    /// A share identifier, or a prefix when it ends with `*` (`*` alone matches every identifier).
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_-]*[*]?$')").message("shareIdentifier may contain only letters, digits, '-' and '_', optionally ending with '*' to match a prefix"))]
    #[schemars(length(min = 1, max = 256))]
    pub share_identifier: String,
    /// Lower gets more: 0.125 gets 8× the compute of 1.0 (0.0001–999.9999, default 1).
    ///
    /// The CEL rule repeats the bounds because the API server compares an integer value (`0`,
    /// `1000`) with float bounds truncated to integers, so `minimum: 0.0001` alone lets `0` in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(format!("self >= {MIN_WEIGHT_FACTOR} && self <= {MAX_WEIGHT_FACTOR}")).message(Message::Message(format!("weightFactor must be between {MIN_WEIGHT_FACTOR} and {MAX_WEIGHT_FACTOR}"))))]
    #[schemars(range(min = MIN_WEIGHT_FACTOR, max = MAX_WEIGHT_FACTOR))]
    pub weight_factor: Option<f64>,
}

/// The fair-share parameters (AWS `FairsharePolicy`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FairsharePolicy {
    /// Seconds over which past usage decays (0 = only current usage counts; at most a week).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_SHARE_DECAY_SECONDS))]
    pub share_decay_seconds: Option<i32>,
    /// Percentage 0–99: (computeReservation/100)^activeShares of the capacity is held back for
    /// share identifiers that are not active yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_COMPUTE_RESERVATION))]
    pub compute_reservation: Option<i32>,
    /// Weights per share identifier or prefix; identifiers and prefixes may not overlap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(a, self.filter(b, b.shareIdentifier == a.shareIdentifier).size() == 1)").message("each shareIdentifier may appear only once in shareDistribution"))]
    #[x_kube(validation = Rule::new("self.all(a, !a.shareIdentifier.endsWith('*') || self.all(b, b.shareIdentifier == a.shareIdentifier || !b.shareIdentifier.startsWith(a.shareIdentifier.substring(0, a.shareIdentifier.size() - 1))))").message("shareDistribution entries may not overlap: a prefix entry (ending with '*') may not also match another entry's identifier"))]
    #[schemars(length(max = MAX_SHARE_DISTRIBUTION))]
    pub share_distribution: Vec<ShareAttributes>,
}

/// Spec of a SchedulingPolicy (AWS CreateSchedulingPolicy; the name is `metadata.name`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "batch.barge.dev",
    version = "v1alpha1",
    kind = "SchedulingPolicy",
    plural = "schedulingpolicies",
    shortname = "sp",
    category = "barge",
    status = "SchedulingPolicyStatus",
    derive = "PartialEq",
    doc = "A fair-share scheduling policy for job queues (AWS Batch scheduling policy).",
    printcolumn(
        name = "Decay",
        type_ = "integer",
        json_path = ".spec.fairsharePolicy.shareDecaySeconds"
    ),
    printcolumn(
        name = "Reservation",
        type_ = "integer",
        json_path = ".spec.fairsharePolicy.computeReservation"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingPolicySpec {
    /// The fair-share parameters.
    #[serde(default)]
    pub fairshare_policy: FairsharePolicy,
}

/// Observed state of a scheduling policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingPolicyStatus {
    /// Ready etc.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::common::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl FairsharePolicy {
    /// The weight factor of `share_identifier`: the exact entry, else the longest matching prefix
    /// entry, else [`DEFAULT_WEIGHT_FACTOR`].
    pub fn weight_factor_for(&self, share_identifier: &str) -> f64 {
        let mut best: Option<(usize, f64)> = None;
        for entry in &self.share_distribution {
            let weight = entry.weight_factor.unwrap_or(DEFAULT_WEIGHT_FACTOR);
            if entry.share_identifier == share_identifier {
                return weight;
            }
            if let Some(prefix) = entry.share_identifier.strip_suffix('*') {
                if share_identifier.starts_with(prefix)
                    && best.is_none_or(|(len, _)| prefix.len() > len)
                {
                    best = Some((prefix.len(), weight));
                }
            }
        }
        best.map_or(DEFAULT_WEIGHT_FACTOR, |(_, weight)| weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(id: &str, weight: f64) -> ShareAttributes {
        ShareAttributes {
            share_identifier: id.to_string(),
            weight_factor: Some(weight),
        }
    }

    #[test]
    fn weight_factor_prefers_exact_then_longest_prefix_then_default() {
        let policy = FairsharePolicy {
            share_distribution: vec![
                share("team*", 0.5),
                share("teamblue*", 0.25),
                share("ops", 2.0),
            ],
            ..Default::default()
        };
        assert_eq!(policy.weight_factor_for("ops"), 2.0);
        assert_eq!(policy.weight_factor_for("teamblue-1"), 0.25);
        assert_eq!(policy.weight_factor_for("teamred"), 0.5);
        assert_eq!(policy.weight_factor_for("other"), DEFAULT_WEIGHT_FACTOR);
    }
}
