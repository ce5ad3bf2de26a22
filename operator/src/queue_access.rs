//! Job queues as the workers see them: which namespaces may submit to a queue (its
//! `namespaceSelector` against the namespace's labels — the job controller admits by it; the
//! JobQueue controller reports an unparsable selector, a queue that then admits nobody, in the
//! queue's status), and the queues as barge-core's scheduling and scaling decisions take them.

use std::collections::BTreeMap;

use kube::core::{Selector, SelectorExt};
use kube::ResourceExt;

use barge_core::scheduler::{FairSharePolicy, QueueFairShare, QueueSpec, ShareWeight};
use barge_crds::common::State as QueueState;
use barge_crds::job_queue::QueueingStrategy;
use barge_crds::JobQueue;
use kube::runtime::reflector::ObjectRef;

use crate::cache::Caches;

/// Every cached queue as barge-core takes it: priority, state, compute environments in
/// ascending `order`, strict FIFO or not.
pub fn queue_specs(caches: &Caches) -> Vec<QueueSpec> {
    caches
        .queues
        .state()
        .iter()
        .map(|q| {
            let mut order = q.spec.compute_environment_order.clone();
            order.sort_by_key(|o| o.order);
            QueueSpec {
                name: q.name_any(),
                priority: q.spec.priority,
                enabled: q.spec.state == QueueState::Enabled,
                environments: order.into_iter().map(|o| o.compute_environment).collect(),
                strict_fifo: q.spec.queueing_strategy == QueueingStrategy::StrictFIFO,
                fair_share: q
                    .spec
                    .scheduling_policy_name
                    .as_deref()
                    .map(|name| QueueFairShare {
                        policy: fair_share_policy(caches, name),
                        shares: Vec::new(),
                    }),
            }
        })
        .collect()
}

/// The fair-share parameters of scheduling policy `name` as barge-core takes them (a policy
/// not in the cache weighs every share 1.0, without decay or reservation, until it appears).
pub fn fair_share_policy(caches: &Caches, name: &str) -> FairSharePolicy {
    let Some(policy) = caches.scheduling_policies.get(&ObjectRef::new(name)) else {
        return FairSharePolicy::default();
    };
    let fair = &policy.spec.fairshare_policy;
    FairSharePolicy {
        share_decay_seconds: u32::try_from(fair.share_decay_seconds.unwrap_or(0)).unwrap_or(0),
        compute_reservation: u32::try_from(fair.compute_reservation.unwrap_or(0)).unwrap_or(0),
        weights: fair
            .share_distribution
            .iter()
            .map(|entry| ShareWeight {
                share_identifier: entry.share_identifier.clone(),
                weight_factor: entry
                    .weight_factor
                    .unwrap_or(barge_crds::scheduling_policy::DEFAULT_WEIGHT_FACTOR),
            })
            .collect(),
    }
}

/// Whether jobs of a namespace with `namespace_labels` may use `queue` (no selector: all).
/// An unparsable selector admits nobody (the queue is INVALID and says why).
pub fn namespace_allowed(queue: &JobQueue, namespace_labels: &BTreeMap<String, String>) -> bool {
    match &queue.spec.namespace_selector {
        None => true,
        Some(selector) => {
            Selector::try_from(selector.clone()).is_ok_and(|s| s.matches(namespace_labels))
        }
    }
}
