//! Which namespaces may submit jobs to a job queue: its `namespaceSelector` against the
//! namespace's labels. The job controller admits by it; the JobQueue controller reports an
//! unparsable selector (a queue that then admits nobody) in the queue's status.

use std::collections::BTreeMap;

use kube::core::{Selector, SelectorExt};

use barge_crds::JobQueue;

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
