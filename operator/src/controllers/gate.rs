//! A gate in front of a kube-runtime controller: our own de-duplicating queue of reconcile
//! requests, handing the controller only a bounded number of requests it has not started yet.
//!
//! kube-runtime's controller scheduler drains its input streams eagerly: a burst of 100,000
//! triggers becomes 100,000 slots of its `DelayQueue`, its `scheduled` map and its pending set,
//! whose capacity it never gives back (~600 B per job of the largest burst, for the lifetime of
//! the process). The [`Gate`] keeps the burst instead — a queue that gives its memory back once
//! sparse — and yields a request to the controller only while fewer than its limit of the
//! requests it yielded have not been *taken* by the controller's runner (the reconcile started,
//! or the runner found the object gone from the store: the two ways a request ends, see
//! [`gated`]). Requeues (`Action::requeue`) stay in kube-runtime's scheduler.
//!
//! De-duplication follows kube-runtime's own: a trigger for an object already waiting (queued
//! here, or yielded and not taken) is dropped, since the waiting reconcile reads the caches
//! when it starts; a trigger for an object whose reconcile has started (running, or finished)
//! is queued again, and kube-runtime runs it once the running one is done.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use futures::{Stream, StreamExt};

use crate::context::shrink_when_sparse;

/// Least capacity of the queue before it gives memory back (as for the maps).
const SHRINK_FROM_CAPACITY: usize = 1024;

/// What the gate knows of one object.
enum Entry<P> {
    /// Waiting in the gate's queue, with the payload of its first trigger.
    Queued(P),
    /// Handed to the controller, not taken by its runner yet.
    Yielded,
}

/// The gate's queue and bookkeeping (pure: no I/O, no waking).
///
/// Invariants: every `Queued` entry has exactly one element in `order` that is the very `Arc`
/// of its key (other elements of `order` are stale: their object was taken, or queued again
/// under a new `Arc`, while they waited, and are skipped); `queued` and `yielded` count the
/// entries of each kind.
pub struct Gate<T, P> {
    order: VecDeque<Arc<T>>,
    entries: HashMap<Arc<T>, Entry<P>>,
    queued: usize,
    yielded: usize,
    limit: usize,
}

impl<T: Hash + Eq + Clone, P> Gate<T, P> {
    /// A gate that has at most `limit` (at least 1) requests yielded and not taken at once.
    pub fn new(limit: usize) -> Self {
        Self {
            order: VecDeque::new(),
            entries: HashMap::new(),
            queued: 0,
            yielded: 0,
            limit: limit.max(1),
        }
    }

    /// A request to reconcile `item`: queued (true), or dropped because `item` is waiting
    /// already (queued, or yielded and not taken).
    pub fn trigger(&mut self, item: T, payload: P) -> bool {
        if self.entries.contains_key(&item) {
            return false;
        }
        let item = Arc::new(item);
        self.entries.insert(item.clone(), Entry::Queued(payload));
        self.order.push_back(item);
        self.queued += 1;
        true
    }

    /// The next request for the controller, oldest first, unless `limit` requests are yielded
    /// and not taken.
    pub fn pop(&mut self) -> Option<(T, P)> {
        if self.yielded >= self.limit {
            return None;
        }
        while let Some(item) = self.order.pop_front() {
            let live = matches!(
                self.entries.get_key_value(&*item),
                Some((key, Entry::Queued(_))) if Arc::ptr_eq(key, &item)
            );
            if !live {
                continue;
            }
            if let Some(entry) = self.entries.get_mut(&*item) {
                if let Entry::Queued(payload) = std::mem::replace(entry, Entry::Yielded) {
                    self.queued -= 1;
                    self.yielded += 1;
                    self.shrink_order();
                    return Some(((*item).clone(), payload));
                }
            }
        }
        self.shrink_order();
        None
    }

    /// The controller's runner took a request for `item` (its reconcile started, or the object
    /// was not in the store): a yielded request for it is done, and a queued one is dropped (the
    /// runner read the store after that trigger came). Nothing to do for an `item` the gate does
    /// not hold (a requeue, or a trigger passed on while its object ran).
    pub fn taken(&mut self, item: &T) {
        match self.entries.remove(item) {
            Some(Entry::Yielded) => self.yielded -= 1,
            Some(Entry::Queued(_)) => {
                self.queued -= 1;
                // Its element in `order` is stale now; drop the stale ones once they are most
                // of the queue (each compaction follows at least as many takes as it drops).
                if self.order.len() >= 64 && self.order.len() > 2 * self.queued {
                    let entries = &self.entries;
                    self.order.retain(|item| {
                        matches!(
                            entries.get_key_value(&**item),
                            Some((key, Entry::Queued(_))) if Arc::ptr_eq(key, item)
                        )
                    });
                    self.shrink_order();
                }
            }
            None => return,
        }
        shrink_when_sparse(&mut self.entries);
    }

    /// Whether [`pop`](Self::pop) would yield a request now.
    pub fn ready(&self) -> bool {
        self.queued > 0 && self.yielded < self.limit
    }

    /// Requests waiting in the gate.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Requests yielded and not taken.
    pub fn yielded(&self) -> usize {
        self.yielded
    }

    /// Memory the gate's queue and map hold (their capacities, in slots).
    pub fn capacity(&self) -> (usize, usize) {
        (self.order.capacity(), self.entries.capacity())
    }

    fn shrink_order(&mut self) {
        if self.order.capacity() >= SHRINK_FROM_CAPACITY
            && self.order.len() * 4 < self.order.capacity()
        {
            self.order.shrink_to(self.order.len() * 2);
        }
        shrink_when_sparse(&mut self.entries);
    }
}

/// The gate shared by its stream and whoever reports the controller's takes.
struct Shared<T, P> {
    gate: Gate<T, P>,
    /// The stream's task, waiting for room.
    waker: Option<Waker>,
}

/// The handle to report takes to a [`gated`] stream.
pub struct GateHandle<T, P> {
    shared: Arc<Mutex<Shared<T, P>>>,
}

impl<T, P> Clone for GateHandle<T, P> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T: Hash + Eq + Clone, P> GateHandle<T, P> {
    fn lock(&self) -> MutexGuard<'_, Shared<T, P>> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// See [`Gate::taken`]; wakes the stream when that made room.
    pub fn taken(&self, item: &T) {
        let mut shared = self.lock();
        shared.gate.taken(item);
        if shared.gate.ready() {
            if let Some(waker) = shared.waker.take() {
                waker.wake();
            }
        }
    }

    /// Requests waiting in the gate and yielded not taken (for tests and diagnostics).
    pub fn counts(&self) -> (usize, usize) {
        let shared = self.lock();
        (shared.gate.queued(), shared.gate.yielded())
    }
}

/// Puts `inputs` (batches of items with the payload they share) through a [`Gate`] of `limit`:
/// the stream reads `inputs` eagerly (the shared feeds behind it must never wait for the
/// controller) and yields the gate's requests. The stream ends once `inputs` ended and nothing
/// is queued.
///
/// The controller's runner must report every request it takes through the handle, or the gate
/// fills and stops: in kube-runtime 5 (`controller::applier`, `controller/runner.rs`,
/// `scheduler.rs`) a request the controller received ends in exactly one of two ways, both in
/// the runner's `run_msg` for its object: the store has the object and the reconciler function
/// is called (report it there, before the reconcile's future is made), or it has not and the
/// output stream carries `Error::ObjectNotFound` for it (report it from the output). Every
/// other fate joins it to one of those: the scheduler merges a request with the one it holds
/// for the same object (the earlier time wins), drops it while one for the object is pending
/// (held because the object's reconcile runs or the runner is full: it runs later), and keeps
/// it pending while the store is not ready. Only a shutdown ends requests unreported.
pub fn gated<T, P, S>(
    inputs: S,
    limit: usize,
) -> (
    GateHandle<T, P>,
    impl Stream<Item = (T, P)> + Send + 'static,
)
where
    T: Hash + Eq + Clone + Send + Sync + 'static,
    P: Clone + Send + 'static,
    S: Stream<Item = (Vec<T>, P)> + Send + Unpin + 'static,
{
    let handle = GateHandle {
        shared: Arc::new(Mutex::new(Shared {
            gate: Gate::new(limit),
            waker: None,
        })),
    };
    let mut inputs = inputs.fuse();
    let mut ended = false;
    let gate = handle.clone();
    let stream = futures::stream::poll_fn(move |cx| {
        while !ended {
            match inputs.poll_next_unpin(cx) {
                Poll::Ready(Some((items, payload))) => {
                    let mut shared = gate.lock();
                    for item in items {
                        shared.gate.trigger(item, payload.clone());
                    }
                }
                Poll::Ready(None) => ended = true,
                Poll::Pending => break,
            }
        }
        let mut shared = gate.lock();
        if let Some(request) = shared.gate.pop() {
            return Poll::Ready(Some(request));
        }
        if ended && shared.gate.queued() == 0 {
            return Poll::Ready(None);
        }
        shared.waker = Some(cx.waker().clone());
        Poll::Pending
    });
    (handle, stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(gate: &mut Gate<u32, u32>) -> Vec<u32> {
        std::iter::from_fn(|| gate.pop().map(|(item, _)| item)).collect()
    }

    #[test]
    fn a_trigger_for_a_waiting_object_is_dropped() {
        let mut gate = Gate::new(4);
        assert!(gate.trigger(1, 10));
        assert!(!gate.trigger(1, 11), "queued: dropped");
        assert_eq!(gate.pop(), Some((1, 10)), "the first trigger's payload");
        assert!(!gate.trigger(1, 12), "yielded, not started: dropped");
        assert_eq!(gate.pop(), None);
        assert_eq!((gate.queued(), gate.yielded()), (0, 1));
    }

    #[test]
    fn a_trigger_for_a_running_object_is_passed_on() {
        let mut gate = Gate::new(4);
        gate.trigger(1, 0);
        assert_eq!(drain(&mut gate), [1]);
        gate.taken(&1); // its reconcile started
        assert!(gate.trigger(1, 0), "running: queued again");
        assert_eq!(drain(&mut gate), [1]);
        gate.taken(&1);
        assert_eq!((gate.queued(), gate.yielded()), (0, 0));
    }

    #[test]
    fn the_gate_yields_up_to_its_limit_and_each_take_makes_room() {
        let mut gate = Gate::new(2);
        for i in 0..5 {
            gate.trigger(i, 0);
        }
        assert_eq!(drain(&mut gate), [0, 1], "oldest first, two at a time");
        assert!(!gate.ready());
        gate.taken(&1); // started
        assert!(gate.ready());
        assert_eq!(drain(&mut gate), [2]);
        gate.taken(&0); // not found in the store
        gate.taken(&7); // a requeue's start: not the gate's
        assert_eq!(drain(&mut gate), [3]);
        gate.taken(&2);
        gate.taken(&3);
        assert_eq!(drain(&mut gate), [4]);
        gate.taken(&4);
        assert_eq!((gate.queued(), gate.yielded()), (0, 0));
    }

    #[test]
    fn a_take_drops_a_queued_trigger_that_came_before_it() {
        let mut gate = Gate::new(1);
        gate.trigger(1, 0);
        gate.trigger(2, 0);
        assert_eq!(drain(&mut gate), [1]);
        gate.taken(&2); // 2 started from a requeue: its queued trigger is served
        gate.taken(&1);
        assert_eq!(drain(&mut gate), Vec::<u32>::new());
        assert!(gate.trigger(2, 0), "a trigger after that start is queued");
        assert_eq!(drain(&mut gate), [2]);
    }

    #[test]
    fn the_gate_gives_a_burst_s_memory_back() {
        let mut gate = Gate::new(8);
        for i in 0..100_000 {
            gate.trigger(i, 0);
        }
        let (order, entries) = gate.capacity();
        assert!(order >= 100_000 && entries >= 100_000);
        while let Some((item, _)) = gate.pop() {
            gate.taken(&item);
        }
        let (order, entries) = gate.capacity();
        assert!(order < 1024 && entries < 1024, "{order} {entries}");
        // Also when the burst ends by takes of queued objects (stale queue elements).
        for i in 0..100_000 {
            gate.trigger(i, 0);
        }
        for i in 0..100_000 {
            gate.taken(&i);
        }
        let (order, entries) = gate.capacity();
        assert!(order < 1024 && entries < 1024, "{order} {entries}");
        assert_eq!(gate.pop(), None);
    }

    /// A small deterministic generator (no dependency for one test).
    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// A model of kube-runtime's scheduler and runner behind the gate: requests it received
    /// (merged per object), requeues, reconciles that run for a while; every interleaving of
    /// triggers, deliveries, starts, finishes, requeues and deletions. Checked: no object is
    /// ever running twice, the controller never holds more than the limit of the gate's
    /// requests not taken, and every object triggered after its last start is started (or
    /// found gone) again once everything settles — no trigger is lost, no slot leaks.
    #[test]
    fn no_trigger_is_lost_in_any_interleaving() {
        use std::collections::HashSet;
        const OBJECTS: u32 = 12;
        const LIMIT: usize = 3;
        const CONCURRENCY: usize = 2;
        for seed in 0..400u64 {
            let mut rng = Lcg(seed);
            let mut gate: Gate<u32, ()> = Gate::new(LIMIT);
            // kube-runtime's side: objects with a request due (scheduled or pending; merged).
            let mut due: HashSet<u32> = HashSet::new();
            let mut running: HashSet<u32> = HashSet::new();
            let mut requeues: HashSet<u32> = HashSet::new();
            let mut deleted: HashSet<u32> = HashSet::new();
            // Objects triggered since their last start (or not-found).
            let mut owed: HashSet<u32> = HashSet::new();
            let take = |gate: &mut Gate<u32, ()>, item: u32, owed: &mut HashSet<u32>| {
                gate.taken(&item);
                owed.remove(&item);
            };
            for step in 0..3_000 {
                let settle = step >= 2_000;
                match rng.below(if settle { 4 } else { 7 }) {
                    // The controller polls the gate's stream.
                    0 => {
                        if let Some((item, ())) = gate.pop() {
                            due.insert(item);
                        }
                    }
                    // The runner takes a due request whose object is not running.
                    1 => {
                        let free: Vec<u32> = due.difference(&running).copied().collect();
                        if running.len() < CONCURRENCY && !free.is_empty() {
                            let item = free[rng.below(free.len() as u64) as usize];
                            due.remove(&item);
                            take(&mut gate, item, &mut owed);
                            if !deleted.contains(&item) {
                                running.insert(item);
                            }
                        }
                    }
                    // A running reconcile finishes, sometimes asking for a requeue.
                    2 => {
                        if let Some(&item) = running.iter().next() {
                            running.remove(&item);
                            if !settle && rng.below(3) == 0 {
                                requeues.insert(item);
                            }
                        }
                    }
                    // A requeue comes due (merged with a request held for the object).
                    3 => {
                        if let Some(&item) = requeues.iter().next() {
                            requeues.remove(&item);
                            due.insert(item);
                        }
                    }
                    // A trigger (a watch event, a mapper, a verdict change).
                    4 | 5 => {
                        let item = rng.below(u64::from(OBJECTS)) as u32;
                        owed.insert(item);
                        deleted.remove(&item);
                        gate.trigger(item, ());
                    }
                    // An object is deleted (its next take is a not-found).
                    _ => {
                        deleted.insert(rng.below(u64::from(OBJECTS)) as u32);
                    }
                }
                assert!(gate.yielded() <= LIMIT);
                assert!(running.len() <= CONCURRENCY);
            }
            // Settle: run everything that is due until nothing moves.
            for _ in 0..10_000 {
                if let Some((item, ())) = gate.pop() {
                    due.insert(item);
                }
                running.clear();
                if let Some(&item) = due.iter().next() {
                    due.remove(&item);
                    take(&mut gate, item, &mut owed);
                }
                if let Some(&item) = requeues.iter().next() {
                    requeues.remove(&item);
                    due.insert(item);
                }
            }
            assert!(owed.is_empty(), "seed {seed}: lost triggers for {owed:?}");
            assert_eq!((gate.queued(), gate.yielded()), (0, 0), "seed {seed}");
        }
    }

    #[tokio::test]
    async fn the_stream_reads_its_inputs_eagerly_and_yields_within_the_limit() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<(Vec<u32>, &'static str)>();
        let (handle, stream) = gated(rx, 2);
        let mut stream = Box::pin(stream);
        tx.unbounded_send(((0..10).collect(), "burst"))
            .expect("send");
        assert_eq!(stream.next().await, Some((0, "burst")));
        assert_eq!(stream.next().await, Some((1, "burst")));
        assert_eq!(handle.counts(), (8, 2), "the whole burst read, two yielded");
        let waiting = futures::poll!(stream.next());
        assert!(waiting.is_pending(), "full");
        handle.taken(&0);
        assert_eq!(stream.next().await, Some((2, "burst")));
        drop(tx);
        let mut rest = Vec::new();
        handle.taken(&1);
        handle.taken(&2);
        while let Some((item, _)) = stream.next().await {
            handle.taken(&item);
            rest.push(item);
        }
        assert_eq!(
            rest,
            (3..10).collect::<Vec<_>>(),
            "ends once its inputs ended"
        );
        assert_eq!(handle.counts(), (0, 0));
    }
}
