//! Ordering: queues by priority, and the workloads within a queue.
//!
//! [`QueueOrder`] is the seam for fair share: a `SchedulingPolicy` will implement it (order by
//! share usage and weight, then `schedulingPriority`, then submission) and be passed to
//! `schedule_with`. [`Fifo`] is the default for queues without a policy.

use super::{QueueSpec, Workload};

/// Orders the workloads of one queue, in place. `members` are positions in `workloads`.
pub trait QueueOrder {
    fn order(&self, queue: &QueueSpec, workloads: &[Workload], members: &mut Vec<usize>);
}

/// FIFO with retried work first: (retried first, submission time, order of creation within the
/// same second, job, attempt).
#[derive(Clone, Copy, Debug, Default)]
pub struct Fifo;

impl QueueOrder for Fifo {
    fn order(&self, _queue: &QueueSpec, workloads: &[Workload], members: &mut Vec<usize>) {
        let key = |i: usize| {
            let w = &workloads[i];
            (
                !w.retried,
                w.submitted_at_ms,
                w.submission_order,
                &w.job,
                w.attempt,
                i,
            )
        };
        members.sort_by(|&a, &b| key(a).cmp(&key(b)));
    }
}

/// Positions of `queues` in the order they are served: higher priority first, then by name.
pub fn order_queues(queues: &[QueueSpec]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..queues.len()).collect();
    order.sort_by(|&a, &b| {
        queues[b]
            .priority
            .cmp(&queues[a].priority)
            .then_with(|| queues[a].name.cmp(&queues[b].name))
    });
    order
}
