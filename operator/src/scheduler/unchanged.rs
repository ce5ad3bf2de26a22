//! When a scheduling pass would decide exactly what the previous one decided: the rule that lets
//! an idle loop (say 100,000 RUNNABLE jobs and nothing placeable) skip steps 1–5 instead of
//! re-deciding the same book on every tick.
//!
//! Steps 1–5 are a function of what the pass reads: the runnable book; the caches of jobs
//! (which entries are of live jobs; live jobs per fair-share share), queues, compute
//! environments, scheduling policies, nodes, pods and the pod usage (the snapshot), namespaces;
//! the loop's own assumed pods; the refused creates' backoffs (which jobs are held back); and
//! the fair-share usage ledgers. Each of the first ones counts its changes ([`Inputs`], read
//! before the pass reads anything, so a change made while a pass runs shows in the next
//! count). The other two change with time alone:
//! - a backoff ends: the pass that decided records when the first job it held back may be tried
//!   again, and from then on the pass runs;
//! - usage decays and accrues every pass: a fair-share queue whose usage decays
//!   (`shareDecaySeconds` > 0) and that has a share with usage, or one that runs something (and
//!   so accrues), makes the decision depend on the clock, and such a pass is never skipped.
//!   With no usage and nothing running, advancing the ledger keeps it empty; with no decay, only
//!   what runs now counts (the caches and the assumed pods, counted above).
//!
//! Only a pass that placed nothing (and failed to render nothing) is taken as the reference:
//! one that placed something changed the loop's assumptions, so the next pass decides anew
//! anyway. Its verdicts (step 5) are in place and no one else sets them; the job controller
//! clears a job's verdict only when it withdraws the job from the book, which is a change.
//! Nothing here rests on a timer: the loop's tick only decides when a pass runs, and every
//! pass that runs either finds every count unchanged or decides anew.
//!
//! ## Queue-status rounds
//! A round (every `--queue-status-interval-ms`) writes each queue's `status.fairShare` and
//! `status.frontOfQueue` from the pass's snapshot once the placed units are out, and only what
//! changed since the last write (`fair_share::plan_writes`). A due round is left out too
//! ([`Reported::reports_again`]) when its pass would be ([`Settled::decides_again`]) with the
//! counts of the last round that ran in full, that round's statuses did not depend on the clock
//! ([`depends_on_time`] over the snapshot it wrote from) and every write it planned succeeded.
//! Then a round run in full would write nothing: it would build the same snapshot (same
//! counts, no backoff ended, usage not moving with time: no decaying usage and nothing
//! accruing, so each fair-share queue's ledger holds no usage or keeps none); compute the same
//! fronts (same order; each entry's `earliestTimeAtPosition` is kept while it holds its
//! position) and the same `fairShare` but for `updatedAt` (the rest is the snapshot's, the
//! usage 0); and compare them with the same written statuses — those the last round wrote
//! (every write succeeded), or the queue's cached status (the caches are counted). A status
//! that was not written because it had not changed stays unchanged: time alone moves only
//! `updatedAt` and the predicted usage of an idle share, which only decays towards 0 (a
//! difference found small stays small). A write that failed leaves its status to write: the
//! next round runs in full, whatever the counts. The round's own writes come back through the
//! queues' watch and change the counts: the round after a round that wrote decides once more
//! (and writes nothing), then rounds settle.

/// Change counts of the inputs of a pass's decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inputs {
    /// [`crate::context::RunnableBook::changes`].
    pub book: u64,
    /// [`crate::cache::Caches::scheduling_changes`].
    pub caches: u64,
    /// [`crate::pod_refusals::PodRefusals::changes`].
    pub refusals: u64,
    /// Changes to the loop's assumed pods that a pass reads.
    pub assumed: u64,
}

/// A pass that placed nothing, as the next passes compare themselves with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settled {
    /// The counts read before it read anything.
    pub inputs: Inputs,
    /// The earliest moment (ms since the epoch) at which a job it held back after a refused
    /// create may be tried again (None: it held none back).
    pub next_retry_ms: Option<i64>,
    /// Its decision depended on the clock (fair-share usage that decays or accrues).
    pub timed: bool,
}

impl Settled {
    /// Whether a pass with inputs `now`, at `now_ms`, would decide exactly what this one did.
    pub fn decides_again(&self, now: &Inputs, now_ms: i64) -> bool {
        !self.timed && self.inputs == *now && self.next_retry_ms.is_none_or(|at| now_ms < at)
    }
}

/// The last queue-status round that ran in full, as the next due rounds compare themselves
/// with it (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reported {
    /// Its pass, which placed nothing.
    pub pass: Settled,
    /// The statuses it computed depended on the clock: [`depends_on_time`] over the snapshot
    /// it wrote from (which, with nothing RUNNABLE, its pass did not build).
    pub timed: bool,
    /// Every write it planned succeeded (true when it planned none).
    pub written: bool,
}

impl Reported {
    /// Whether a round with inputs `now`, at `now_ms`, would write nothing that this one did
    /// not write already.
    pub fn reports_again(&self, now: &Inputs, now_ms: i64) -> bool {
        self.written && !self.timed && self.pass.decides_again(now, now_ms)
    }
}

/// Whether a pass's decision over `snapshot` (its fair-share queues filled) depends on the
/// clock through the usage ledgers (see the module docs).
pub fn depends_on_time(snapshot: &barge_core::scheduler::Snapshot) -> bool {
    snapshot.queues.iter().any(|queue| {
        queue.fair_share.as_ref().is_some_and(|fair| {
            fair.policy.share_decay_seconds > 0
                && fair
                    .shares
                    .iter()
                    .any(|s| s.usage_vcpu_seconds != 0.0 || s.running_milli_cpu > 0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use barge_core::scheduler::{FairSharePolicy, QueueFairShare, QueueSpec, ShareState, Snapshot};

    fn inputs() -> Inputs {
        Inputs {
            book: 3,
            caches: 40,
            refusals: 1,
            assumed: 7,
        }
    }

    fn settled() -> Settled {
        Settled {
            inputs: inputs(),
            next_retry_ms: None,
            timed: false,
        }
    }

    #[test]
    fn a_pass_with_every_input_unchanged_decides_again_what_the_last_one_did() {
        assert!(settled().decides_again(&inputs(), 1_000));
        assert!(settled().decides_again(&inputs(), i64::MAX), "however late");
    }

    /// Each input's change, one at a time.
    const CHANGES: [fn(&mut Inputs); 4] = [
        |i| i.book += 1,
        |i| i.caches += 1,
        |i| i.refusals += 1,
        |i| i.assumed += 1,
    ];

    #[test]
    fn any_changed_input_makes_the_pass_decide_anew() {
        for change in CHANGES {
            let mut now = inputs();
            change(&mut now);
            assert!(!settled().decides_again(&now, 1_000), "{now:?}");
        }
    }

    #[test]
    fn a_held_back_job_is_tried_again_once_its_backoff_ends() {
        let held = Settled {
            next_retry_ms: Some(5_000),
            ..settled()
        };
        assert!(held.decides_again(&inputs(), 4_999));
        assert!(!held.decides_again(&inputs(), 5_000));
        assert!(!held.decides_again(&inputs(), 9_000));
    }

    #[test]
    fn a_decision_that_depends_on_the_clock_is_never_taken_again() {
        let timed = Settled {
            timed: true,
            ..settled()
        };
        assert!(!timed.decides_again(&inputs(), 1_000));
    }

    fn reported() -> Reported {
        Reported {
            pass: settled(),
            timed: false,
            written: true,
        }
    }

    #[test]
    fn a_round_with_every_input_unchanged_since_a_round_that_wrote_all_is_left_out() {
        assert!(reported().reports_again(&inputs(), 1_000));
        assert!(
            reported().reports_again(&inputs(), i64::MAX),
            "however late"
        );
    }

    #[test]
    fn any_changed_input_makes_a_due_round_run_in_full() {
        for change in CHANGES {
            let mut now = inputs();
            change(&mut now);
            assert!(!reported().reports_again(&now, 1_000), "{now:?}");
        }
    }

    #[test]
    fn a_round_whose_write_failed_is_run_again_with_nothing_changed() {
        let failed = Reported {
            written: false,
            ..reported()
        };
        assert!(!failed.reports_again(&inputs(), 1_000));
    }

    #[test]
    fn statuses_that_depend_on_the_clock_are_computed_again_each_round() {
        let timed = Reported {
            timed: true,
            ..reported()
        };
        assert!(!timed.reports_again(&inputs(), 1_000));
        // The pass's decision was timed (its snapshot had decaying usage), the statuses not.
        let timed_pass = Reported {
            pass: Settled {
                timed: true,
                ..settled()
            },
            ..reported()
        };
        assert!(!timed_pass.reports_again(&inputs(), 1_000));
    }

    #[test]
    fn a_round_after_a_held_back_jobs_backoff_ended_runs_in_full() {
        let held = Reported {
            pass: Settled {
                next_retry_ms: Some(5_000),
                ..settled()
            },
            ..reported()
        };
        assert!(held.reports_again(&inputs(), 4_999));
        assert!(!held.reports_again(&inputs(), 5_000));
    }

    fn snapshot(decay: u32, shares: Vec<ShareState>) -> Snapshot {
        Snapshot {
            queues: vec![
                QueueSpec {
                    name: "fifo".into(),
                    priority: 1,
                    enabled: true,
                    environments: vec!["ce".into()],
                    strict_fifo: false,
                    fair_share: None,
                },
                QueueSpec {
                    name: "fair".into(),
                    priority: 1,
                    enabled: true,
                    environments: vec!["ce".into()],
                    strict_fifo: false,
                    fair_share: Some(QueueFairShare {
                        policy: FairSharePolicy {
                            share_decay_seconds: decay,
                            compute_reservation: 0,
                            weights: Vec::new(),
                        },
                        shares,
                    }),
                },
            ],
            environments: Vec::new(),
            nodes: Vec::new(),
            workloads: Vec::new(),
        }
    }

    fn share(usage: f64, running_milli_cpu: i64) -> ShareState {
        ShareState {
            share: "a".into(),
            running_milli_cpu,
            usage_vcpu_seconds: usage,
            live_jobs: 3,
        }
    }

    #[test]
    fn only_decaying_or_accruing_fair_share_usage_ties_the_decision_to_the_clock() {
        assert!(!depends_on_time(&snapshot(3600, Vec::new())));
        assert!(
            !depends_on_time(&snapshot(3600, vec![share(0.0, 0)])),
            "no usage and nothing running: the ledger stays empty"
        );
        assert!(
            depends_on_time(&snapshot(3600, vec![share(12.5, 0)])),
            "usage decays"
        );
        assert!(
            depends_on_time(&snapshot(3600, vec![share(0.0, 500)])),
            "usage accrues"
        );
        assert!(
            !depends_on_time(&snapshot(0, vec![share(0.0, 500)])),
            "without decay only what runs now counts"
        );
    }
}
