//! AWS Batch job states and the per-state summary of an array job.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The AWS Batch job states, in the order a job moves through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    Submitted,
    Pending,
    Runnable,
    Starting,
    Running,
    Succeeded,
    Failed,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 7] = [
        JobState::Submitted,
        JobState::Pending,
        JobState::Runnable,
        JobState::Starting,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
    ];

    /// The AWS spelling (`RUNNABLE`).
    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Submitted => "SUBMITTED",
            JobState::Pending => "PENDING",
            JobState::Runnable => "RUNNABLE",
            JobState::Starting => "STARTING",
            JobState::Running => "RUNNING",
            JobState::Succeeded => "SUCCEEDED",
            JobState::Failed => "FAILED",
        }
    }

    /// Parses the AWS spelling.
    pub fn parse(text: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// SUCCEEDED or FAILED.
    pub const fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed)
    }

    /// SUBMITTED, PENDING or RUNNABLE: nothing of the job has been placed yet.
    pub const fn is_queued(self) -> bool {
        matches!(
            self,
            JobState::Submitted | JobState::Pending | JobState::Runnable
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Count of array children per state (`arrayProperties.statusSummary`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct StatusSummary {
    pub submitted: u32,
    pub pending: u32,
    pub runnable: u32,
    pub starting: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
}

impl StatusSummary {
    /// The count for `state`.
    pub fn get(&self, state: JobState) -> u32 {
        match state {
            JobState::Submitted => self.submitted,
            JobState::Pending => self.pending,
            JobState::Runnable => self.runnable,
            JobState::Starting => self.starting,
            JobState::Running => self.running,
            JobState::Succeeded => self.succeeded,
            JobState::Failed => self.failed,
        }
    }

    /// Mutable count for `state`.
    pub fn get_mut(&mut self, state: JobState) -> &mut u32 {
        match state {
            JobState::Submitted => &mut self.submitted,
            JobState::Pending => &mut self.pending,
            JobState::Runnable => &mut self.runnable,
            JobState::Starting => &mut self.starting,
            JobState::Running => &mut self.running,
            JobState::Succeeded => &mut self.succeeded,
            JobState::Failed => &mut self.failed,
        }
    }

    /// Sum over all states.
    pub fn total(&self) -> u64 {
        JobState::ALL.iter().map(|&s| u64::from(self.get(s))).sum()
    }

    /// AWS's map form, `{"RUNNABLE": 3, ...}`, byte-stable.
    pub fn to_map(&self) -> BTreeMap<&'static str, u32> {
        JobState::ALL
            .iter()
            .map(|&s| (s.as_str(), self.get(s)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_order() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).expect("ser"),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!(JobState::Runnable < JobState::Starting);
        assert!(JobState::Failed.is_terminal() && !JobState::Running.is_terminal());
        assert!(JobState::Pending.is_queued() && !JobState::Starting.is_queued());
        assert_eq!(JobState::parse("runnable"), None);
    }

    #[test]
    fn summary_map_and_total() {
        let mut s = StatusSummary::default();
        *s.get_mut(JobState::Running) += 2;
        *s.get_mut(JobState::Failed) += 1;
        assert_eq!(s.total(), 3);
        assert_eq!(s.to_map()["RUNNING"], 2);
        let json = serde_json::to_value(s).expect("ser");
        assert_eq!(json["FAILED"], 1);
    }
}
