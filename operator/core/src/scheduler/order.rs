//! Ordering: queues by priority, and the workloads within a queue.
//!
//! [`QueueOrder`] orders a queue without a scheduling policy ([`Fifo`] by default); a queue with
//! one is ordered by fair share, unit by unit as the pass places them (see `fair_share`).

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
        fifo_order(workloads, members);
    }
}

/// Sorts `members` (positions in `workloads`) FIFO, retried first.
pub fn fifo_order(workloads: &[Workload], members: &mut [usize]) {
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
