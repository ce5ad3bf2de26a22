//! What happens after an attempt ends: succeed, retry, or fail (AWS Batch `retryStrategy`).
//!
//! Input: the job's [`RetryStrategy`] (validated once from the spec), the number of the attempt
//! that ended (1-based) and its [`AttemptOutcome`]. Output: an [`AttemptDecision`].
//!
//! The rules, as in the AWS Batch User Guide ("Automated job retries"):
//! - exit code 0 of a container that ended on its own is success;
//! - timed-out, terminated/cancelled and rejected (invalid definition) attempts are never retried;
//! - when no attempts are left, the job fails;
//! - otherwise the `evaluateOnExit` entries are tried in order; an entry matches when every
//!   condition it specifies matches (AND); the first match decides (RETRY or EXIT);
//! - when no entry matches (or there are none), the job is retried.

use crate::error::{Error, Result};
use crate::glob::Glob;
use serde::{Deserialize, Serialize};

/// Fewest attempts AWS Batch accepts.
pub const MIN_ATTEMPTS: u32 = 1;
/// Most attempts AWS Batch accepts.
pub const MAX_ATTEMPTS: u32 = 10;
/// Most `evaluateOnExit` entries AWS Batch accepts.
pub const MAX_EVALUATE_ON_EXIT: usize = 5;

/// `evaluateOnExit[].action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RetryAction {
    Retry,
    Exit,
}

impl RetryAction {
    /// Parses `RETRY` / `EXIT`; like AWS, case does not matter.
    pub fn parse(text: &str) -> Result<RetryAction> {
        match text.to_ascii_uppercase().as_str() {
            "RETRY" => Ok(RetryAction::Retry),
            "EXIT" => Ok(RetryAction::Exit),
            _ => Err(Error::RetryStrategy(format!(
                "action {text:?} is not RETRY or EXIT"
            ))),
        }
    }
}

/// One `evaluateOnExit` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvaluateOnExit {
    pub on_exit_code: Option<Glob>,
    pub on_reason: Option<Glob>,
    pub on_status_reason: Option<Glob>,
    pub action: RetryAction,
}

impl EvaluateOnExit {
    /// Validates the raw strings of one entry.
    pub fn parse(
        on_exit_code: Option<&str>,
        on_reason: Option<&str>,
        on_status_reason: Option<&str>,
        action: &str,
    ) -> Result<EvaluateOnExit> {
        Ok(EvaluateOnExit {
            on_exit_code: on_exit_code.map(Glob::exit_code).transpose()?,
            on_reason: on_reason.map(Glob::text).transpose()?,
            on_status_reason: on_status_reason.map(Glob::text).transpose()?,
            action: RetryAction::parse(action)?,
        })
    }

    /// True when every condition this entry specifies matches the outcome. An entry with no
    /// conditions matches everything.
    pub fn matches(&self, outcome: &AttemptOutcome) -> bool {
        let exit_code = outcome.exit_code.map(|c| c.to_string());
        self.on_exit_code
            .as_ref()
            .is_none_or(|g| g.matches_opt(exit_code.as_deref()))
            && self
                .on_reason
                .as_ref()
                .is_none_or(|g| g.matches_opt(outcome.container_reason.as_deref()))
            && self
                .on_status_reason
                .as_ref()
                .is_none_or(|g| g.matches(&outcome.status_reason))
    }
}

/// A validated `retryStrategy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryStrategy {
    attempts: u32,
    evaluate_on_exit: Vec<EvaluateOnExit>,
}

impl Default for RetryStrategy {
    /// One attempt, no rules: AWS Batch's default.
    fn default() -> Self {
        RetryStrategy {
            attempts: MIN_ATTEMPTS,
            evaluate_on_exit: Vec::new(),
        }
    }
}

impl RetryStrategy {
    /// Checks AWS Batch's ranges: 1–10 attempts, at most 5 `evaluateOnExit` entries.
    pub fn new(attempts: u32, evaluate_on_exit: Vec<EvaluateOnExit>) -> Result<RetryStrategy> {
        if !(MIN_ATTEMPTS..=MAX_ATTEMPTS).contains(&attempts) {
            return Err(Error::RetryStrategy(format!(
                "attempts must be between {MIN_ATTEMPTS} and {MAX_ATTEMPTS}, got {attempts}"
            )));
        }
        if evaluate_on_exit.len() > MAX_EVALUATE_ON_EXIT {
            return Err(Error::RetryStrategy(format!(
                "evaluateOnExit holds {} entries; at most {MAX_EVALUATE_ON_EXIT} are allowed",
                evaluate_on_exit.len()
            )));
        }
        Ok(RetryStrategy {
            attempts,
            evaluate_on_exit,
        })
    }

    /// `attempts` with no rules.
    pub fn attempts_only(attempts: u32) -> Result<RetryStrategy> {
        RetryStrategy::new(attempts, Vec::new())
    }

    /// How many attempts a job (or each array child) gets.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The `evaluateOnExit` entries, in order.
    pub fn evaluate_on_exit(&self) -> &[EvaluateOnExit] {
        &self.evaluate_on_exit
    }
}

/// Why an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttemptCause {
    /// The container exited on its own; `exit_code` says how.
    Completed,
    /// Barge stopped it after `attemptDurationSeconds` (never retried).
    TimedOut,
    /// `spec.terminate` or a queue time-limit action stopped or cancelled it (never retried).
    Terminated,
    /// Its node disappeared (retryable: `onStatusReason: "Host EC2*"`).
    HostLost,
    /// The pod failed without a container exit (evicted, deadline, admission error, vanished).
    PodFailed,
    /// The attempt could not be created because the job's definition is invalid (never retried).
    Rejected,
}

/// The observed result of one attempt, in the terms `evaluateOnExit` matches on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptOutcome {
    /// The container's exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The container-level reason (`onReason`), e.g. `OOMKilled`.
    pub container_reason: Option<String>,
    /// The AWS-style status reason (`onStatusReason`).
    pub status_reason: String,
    pub cause: AttemptCause,
}

impl AttemptOutcome {
    /// The container exited by itself with `exit_code`.
    pub fn exited(exit_code: i32, container_reason: Option<String>) -> AttemptOutcome {
        AttemptOutcome {
            exit_code: Some(exit_code),
            container_reason,
            status_reason: crate::reasons::ESSENTIAL_CONTAINER_EXITED.to_string(),
            cause: AttemptCause::Completed,
        }
    }

    /// Stopped for exceeding `attemptDurationSeconds`.
    pub fn timed_out(exit_code: Option<i32>) -> AttemptOutcome {
        AttemptOutcome {
            exit_code,
            container_reason: None,
            status_reason: crate::reasons::ATTEMPT_DURATION_EXCEEDED.to_string(),
            cause: AttemptCause::TimedOut,
        }
    }

    /// Stopped or cancelled by request, with the user's reason.
    pub fn terminated(reason: &str, exit_code: Option<i32>) -> AttemptOutcome {
        AttemptOutcome {
            exit_code,
            container_reason: None,
            status_reason: reason.to_string(),
            cause: AttemptCause::Terminated,
        }
    }

    /// Its node disappeared.
    pub fn host_lost(node_name: &str) -> AttemptOutcome {
        AttemptOutcome {
            exit_code: None,
            container_reason: None,
            status_reason: crate::reasons::host_terminated(node_name),
            cause: AttemptCause::HostLost,
        }
    }

    /// The pod failed without a container result.
    pub fn pod_failed(status_reason: String, container_reason: Option<String>) -> AttemptOutcome {
        AttemptOutcome {
            exit_code: None,
            container_reason,
            status_reason,
            cause: AttemptCause::PodFailed,
        }
    }

    /// The attempt was refused because the definition is invalid.
    pub fn rejected(status_reason: String) -> AttemptOutcome {
        AttemptOutcome {
            exit_code: None,
            container_reason: None,
            status_reason,
            cause: AttemptCause::Rejected,
        }
    }
}

/// What to do after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptDecision {
    /// The job (or child) SUCCEEDED.
    Succeed,
    /// Back to RUNNABLE for attempt `attempt + 1`.
    Retry,
    /// The job (or child) FAILED with this status reason.
    Fail { status_reason: String },
}

/// Decides the fate of a job after `attempt` (1-based) ended with `outcome`.
pub fn decide_after_attempt(
    strategy: &RetryStrategy,
    attempt: u32,
    outcome: &AttemptOutcome,
) -> AttemptDecision {
    let fail = || AttemptDecision::Fail {
        status_reason: outcome.status_reason.clone(),
    };
    match outcome.cause {
        AttemptCause::Completed if outcome.exit_code == Some(0) => return AttemptDecision::Succeed,
        AttemptCause::TimedOut | AttemptCause::Terminated | AttemptCause::Rejected => {
            return fail()
        }
        _ => {}
    }
    if attempt >= strategy.attempts {
        return fail();
    }
    match strategy
        .evaluate_on_exit
        .iter()
        .find(|rule| rule.matches(outcome))
    {
        Some(rule) if rule.action == RetryAction::Exit => fail(),
        _ => AttemptDecision::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        code: Option<&str>,
        reason: Option<&str>,
        status: Option<&str>,
        action: &str,
    ) -> EvaluateOnExit {
        EvaluateOnExit::parse(code, reason, status, action).expect("valid rule")
    }

    fn fail_with(reason: &str) -> AttemptDecision {
        AttemptDecision::Fail {
            status_reason: reason.to_string(),
        }
    }

    const EXITED: &str = crate::reasons::ESSENTIAL_CONTAINER_EXITED;

    #[test]
    fn exit_zero_succeeds_even_with_exit_rules() {
        let s = RetryStrategy::new(3, vec![rule(None, Some("*"), None, "EXIT")]).expect("valid");
        assert_eq!(
            decide_after_attempt(&s, 1, &AttemptOutcome::exited(0, None)),
            AttemptDecision::Succeed
        );
    }

    #[test]
    fn default_strategy_never_retries() {
        let s = RetryStrategy::default();
        assert_eq!(s.attempts(), 1);
        assert_eq!(
            decide_after_attempt(&s, 1, &AttemptOutcome::exited(1, None)),
            fail_with(EXITED)
        );
    }

    #[test]
    fn no_rules_retries_until_attempts_run_out() {
        let s = RetryStrategy::attempts_only(3).expect("valid");
        let out = AttemptOutcome::exited(2, None);
        assert_eq!(decide_after_attempt(&s, 1, &out), AttemptDecision::Retry);
        assert_eq!(decide_after_attempt(&s, 2, &out), AttemptDecision::Retry);
        assert_eq!(decide_after_attempt(&s, 3, &out), fail_with(EXITED));
    }

    #[test]
    fn first_matching_rule_wins() {
        // The AWS guide's example: retry on AGENT, retry on "Task failed to start", exit otherwise.
        let s = RetryStrategy::new(
            3,
            vec![
                rule(None, Some("AGENT"), None, "RETRY"),
                rule(None, None, Some("Task failed to start"), "RETRY"),
                rule(None, Some("*"), None, "EXIT"),
            ],
        )
        .expect("valid");
        let agent = AttemptOutcome::exited(1, Some("AGENT".into()));
        assert_eq!(decide_after_attempt(&s, 1, &agent), AttemptDecision::Retry);
        let other = AttemptOutcome::exited(1, Some("OOMKilled".into()));
        assert_eq!(decide_after_attempt(&s, 1, &other), fail_with(EXITED));
        // No container reason at all: "*" still matches (missing = empty string).
        assert_eq!(
            decide_after_attempt(&s, 1, &AttemptOutcome::exited(1, None)),
            fail_with(EXITED)
        );
        let failed_start = AttemptOutcome::pod_failed("Task failed to start".into(), None);
        assert_eq!(
            decide_after_attempt(&s, 1, &failed_start),
            AttemptDecision::Retry
        );
    }

    #[test]
    fn all_specified_conditions_must_match() {
        let s = RetryStrategy::new(
            5,
            vec![
                rule(Some("137"), Some("OOM*"), None, "EXIT"),
                rule(Some("1*"), None, None, "RETRY"),
                rule(None, None, Some("*"), "EXIT"),
            ],
        )
        .expect("valid");
        // 137 + OOMKilled: both conditions of rule 1 match -> EXIT.
        let oom = AttemptOutcome::exited(137, Some("OOMKilled".into()));
        assert_eq!(decide_after_attempt(&s, 1, &oom), fail_with(EXITED));
        // 137 without OOM reason: rule 1 fails on the reason, rule 2 ("1*") matches -> RETRY.
        let killed = AttemptOutcome::exited(137, Some("Error".into()));
        assert_eq!(decide_after_attempt(&s, 1, &killed), AttemptDecision::Retry);
        // Exit code 2: rule 2 misses, rule 3 matches any status reason -> EXIT.
        assert_eq!(
            decide_after_attempt(&s, 1, &AttemptOutcome::exited(2, None)),
            fail_with(EXITED)
        );
    }

    #[test]
    fn no_match_means_retry() {
        let s = RetryStrategy::new(2, vec![rule(Some("3"), None, None, "EXIT")]).expect("valid");
        assert_eq!(
            decide_after_attempt(&s, 1, &AttemptOutcome::exited(4, None)),
            AttemptDecision::Retry
        );
        assert_eq!(
            decide_after_attempt(&s, 1, &AttemptOutcome::exited(3, None)),
            fail_with(EXITED)
        );
    }

    #[test]
    fn exit_code_rule_does_not_match_a_missing_exit_code() {
        let s = RetryStrategy::new(3, vec![rule(Some("1*"), None, None, "EXIT")]).expect("valid");
        let lost = AttemptOutcome::host_lost("n1");
        assert_eq!(decide_after_attempt(&s, 1, &lost), AttemptDecision::Retry);
    }

    #[test]
    fn spot_fixture_semantics_host_loss_retries_everything_else_exits() {
        // e2e/fixtures/aws/jobdef-spot-retry.json
        let s = RetryStrategy::new(
            5,
            vec![
                rule(None, None, Some("Host EC2*"), "RETRY"),
                rule(None, Some("*"), None, "EXIT"),
            ],
        )
        .expect("valid");
        let lost = AttemptOutcome::host_lost("spot-node-1");
        assert_eq!(decide_after_attempt(&s, 1, &lost), AttemptDecision::Retry);
        assert_eq!(decide_after_attempt(&s, 4, &lost), AttemptDecision::Retry);
        assert_eq!(
            decide_after_attempt(&s, 5, &lost),
            fail_with("Host EC2 (instance spot-node-1) terminated.")
        );
        assert_eq!(
            decide_after_attempt(&s, 1, &AttemptOutcome::exited(1, None)),
            fail_with(EXITED)
        );
    }

    #[test]
    fn timeouts_terminations_and_rejections_are_never_retried() {
        let s = RetryStrategy::new(10, vec![rule(None, None, Some("*"), "RETRY")]).expect("valid");
        assert_eq!(
            decide_after_attempt(&s, 1, &AttemptOutcome::timed_out(Some(143))),
            fail_with(crate::reasons::ATTEMPT_DURATION_EXCEEDED)
        );
        assert_eq!(
            decide_after_attempt(&s, 1, &AttemptOutcome::terminated("stop it", Some(0))),
            fail_with("stop it")
        );
        assert_eq!(
            decide_after_attempt(&s, 1, &AttemptOutcome::rejected("bad definition".into())),
            fail_with("bad definition")
        );
    }

    #[test]
    fn validation_follows_aws_ranges() {
        assert!(RetryStrategy::attempts_only(0)
            .unwrap_err()
            .to_string()
            .contains("between 1 and 10"));
        assert!(RetryStrategy::attempts_only(11).is_err());
        assert!(RetryStrategy::attempts_only(10).is_ok());
        let six = (0..6)
            .map(|_| rule(None, Some("*"), None, "EXIT"))
            .collect();
        assert!(RetryStrategy::new(2, six)
            .unwrap_err()
            .to_string()
            .contains("at most 5"));
        assert_eq!(
            RetryAction::parse("retry").expect("case-insensitive"),
            RetryAction::Retry
        );
        assert!(RetryAction::parse("AGAIN")
            .unwrap_err()
            .to_string()
            .contains("not RETRY or EXIT"));
        assert!(EvaluateOnExit::parse(Some("x"), None, None, "EXIT").is_err());
        assert!(EvaluateOnExit::parse(None, Some("a*b"), None, "EXIT").is_err());
    }

    #[test]
    fn empty_rule_matches_everything() {
        let s = RetryStrategy::new(3, vec![rule(None, None, None, "EXIT")]).expect("valid");
        assert_eq!(
            decide_after_attempt(&s, 1, &AttemptOutcome::exited(9, None)),
            fail_with(EXITED)
        );
    }
}
