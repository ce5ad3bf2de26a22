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
//! [`gated`]).
//!
//! Requeues (a reconcile's or the error policy's "again after a delay") come through the gate
//! too, so that kube-runtime's scheduler never holds more than the gate's limit: the gate keeps
//! them in one timer structure, one entry per object with a requeue pending (none once nothing
//! is pending), and merges them as kube-runtime's scheduler does — the earliest requeue of an
//! object wins, and a reconcile of the object that starts before it is due supersedes it (in
//! kube-runtime the later request merges into the earlier one: one reconcile, whose own result
//! asks for what comes next). A requeue that comes due goes ahead of the queued triggers (kube's
//! scheduler hands a due request to the runner without waiting behind the gate's burst), and
//! is dropped while a request for its object is yielded and not taken (that reconcile serves it).
//!
//! De-duplication follows kube-runtime's own: a trigger for an object already waiting (queued
//! here, or yielded and not taken) is dropped, since the waiting reconcile reads the caches
//! when it starts; a trigger for an object whose reconcile has started (running, or finished)
//! is queued again, and kube-runtime runs it once the running one is done.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use futures::{Future, Stream, StreamExt};
use tokio::time::Instant;

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
/// entries of each kind. Every element of `timers` has exactly one entry in `due_at` (its own
/// key, under the very `Arc` it holds) and the other way round.
pub struct Gate<T, P> {
    order: VecDeque<Arc<T>>,
    entries: HashMap<Arc<T>, Entry<P>>,
    queued: usize,
    yielded: usize,
    limit: usize,
    /// Pending requeues by when they are due (the sequence number orders equal times).
    timers: BTreeMap<(Instant, u64), (Arc<T>, P)>,
    /// Each object's pending requeue: its key in `timers`.
    due_at: HashMap<Arc<T>, (Instant, u64)>,
    sequence: u64,
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
            timers: BTreeMap::new(),
            due_at: HashMap::new(),
            sequence: 0,
        }
    }

    /// A requeue of `item` due `at`: kept unless a requeue of `item` due no later is pending
    /// (it replaces a later one).
    pub fn requeue(&mut self, item: T, at: Instant, payload: P) {
        if let Some(&(pending, sequence)) = self.due_at.get(&item) {
            if pending <= at {
                return;
            }
            self.timers.remove(&(pending, sequence));
        }
        self.sequence += 1;
        let item = Arc::new(item);
        self.timers
            .insert((at, self.sequence), (item.clone(), payload));
        // Replaces the key too: the entry holds the `Arc` its timer holds.
        self.due_at.remove(&*item);
        self.due_at.insert(item, (at, self.sequence));
    }

    /// When the earliest pending requeue is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.timers.first_key_value().map(|(&(at, _), _)| at)
    }

    /// Requeues pending (for tests and diagnostics).
    pub fn requeues(&self) -> usize {
        self.timers.len()
    }

    /// Moves the requeues due by `now` ahead of the queued triggers, earliest first: queued
    /// (an object queued already moves to the front, keeping its first payload), or dropped while
    /// the object is yielded and not taken.
    pub fn fire_due(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (item, payload) = entry.remove();
            self.due_at.remove(&*item);
            due.push((item, payload));
        }
        if due.is_empty() {
            return;
        }
        // Pushed to the front latest first: the earliest ends up first.
        for (item, payload) in due.into_iter().rev() {
            match self.entries.remove_entry(&*item) {
                Some((_, Entry::Yielded)) => {
                    self.entries.insert(item, Entry::Yielded);
                }
                Some((_, queued @ Entry::Queued(_))) => {
                    // Its old element in `order` goes stale (another `Arc`).
                    self.entries.insert(item.clone(), queued);
                    self.order.push_front(item);
                }
                None => {
                    self.entries.insert(item.clone(), Entry::Queued(payload));
                    self.order.push_front(item);
                    self.queued += 1;
                }
            }
        }
        shrink_when_sparse(&mut self.due_at);
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
    /// not hold (a trigger passed on while its object ran). A pending requeue of `item` is
    /// dropped too: the reconcile that starts serves it, and asks for its own.
    pub fn taken(&mut self, item: &T) {
        if let Some(key) = self.due_at.remove(item) {
            self.timers.remove(&key);
            shrink_when_sparse(&mut self.due_at);
        }
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

    /// See [`Gate::requeue`]: a requeue of `item` due `after` from now; wakes the stream (to
    /// set its timer).
    pub fn requeue(&self, item: T, after: std::time::Duration, payload: P) {
        let mut shared = self.lock();
        shared.gate.requeue(item, Instant::now() + after, payload);
        if let Some(waker) = shared.waker.take() {
            waker.wake();
        }
    }

    /// Requeues pending (for tests and diagnostics).
    pub fn requeues(&self) -> usize {
        self.lock().gate.requeues()
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
///
/// Requeues reported through the handle ([`GateHandle::requeue`]) come due on the stream's own
/// timer (tokio's clock) and go ahead of the queued triggers ([`Gate::fire_due`]). The stream ends
/// once `inputs` ended and nothing is queued; requeues still pending then are dropped, as
/// kube-runtime's applier drops its scheduler's when its queue ends.
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
    let mut timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    let stream = futures::stream::poll_fn(move |cx| loop {
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
        // A timer that went off counts as its deadline reached, whatever the clock reads.
        let now = match &timer {
            Some(timer) if timer.is_elapsed() => Instant::now().max(timer.deadline()),
            _ => Instant::now(),
        };
        let mut shared = gate.lock();
        shared.gate.fire_due(now);
        if let Some(request) = shared.gate.pop() {
            return Poll::Ready(Some(request));
        }
        if ended && shared.gate.queued() == 0 {
            return Poll::Ready(None);
        }
        shared.waker = Some(cx.waker().clone());
        let next = shared.gate.next_due();
        drop(shared);
        let Some(at) = next else {
            timer = None;
            return Poll::Pending;
        };
        let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if sleep.deadline() != at {
            sleep.as_mut().reset(at);
        }
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        // Due now: fire it (the next round reads the elapsed timer's deadline).
    });
    (handle, stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    /// (merged per object), reconciles that run for a while and may ask for a requeue (kept by
    /// the gate's timer); every interleaving of triggers, deliveries, starts, finishes,
    /// requeues, the clock and deletions. Checked: no object is ever running twice, the
    /// controller never holds more than the limit of requests not taken (requeues included),
    /// and every object triggered or requeued after its last start is started (or found gone)
    /// again once everything settles — no trigger or requeue is lost, no slot leaks.
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
            let mut deleted: HashSet<u32> = HashSet::new();
            let start = Instant::now();
            let mut clock = 0u64;
            // Objects triggered or requeued since their last start (or not-found).
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
                                let after = Duration::from_millis(rng.below(5));
                                gate.requeue(
                                    item,
                                    start + Duration::from_millis(clock) + after,
                                    (),
                                );
                                owed.insert(item);
                            }
                        }
                    }
                    // The clock moves on; requeues come due.
                    3 => {
                        clock += rng.below(3);
                        gate.fire_due(start + Duration::from_millis(clock));
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
                assert!(
                    due.len() <= LIMIT,
                    "the controller holds only the gate's requests"
                );
                assert!(running.len() <= CONCURRENCY);
            }
            // Settle: run everything that is due until nothing moves.
            for _ in 0..10_000 {
                clock += 1;
                gate.fire_due(start + Duration::from_millis(clock));
                if let Some((item, ())) = gate.pop() {
                    due.insert(item);
                }
                running.clear();
                if let Some(&item) = due.iter().next() {
                    due.remove(&item);
                    take(&mut gate, item, &mut owed);
                }
            }
            assert!(owed.is_empty(), "seed {seed}: lost triggers for {owed:?}");
            assert_eq!((gate.queued(), gate.yielded()), (0, 0), "seed {seed}");
            assert_eq!(gate.requeues(), 0, "seed {seed}");
        }
    }

    #[test]
    fn a_due_requeue_goes_ahead_of_the_queued_triggers() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut gate = Gate::new(8);
        gate.trigger(1, 0);
        gate.trigger(2, 0);
        gate.requeue(3, ms(20), 30);
        gate.requeue(4, ms(10), 40);
        gate.requeue(2, ms(10), 20);
        assert_eq!(gate.next_due(), Some(ms(10)));
        gate.fire_due(ms(9));
        assert_eq!(gate.requeues(), 3, "none due yet");
        gate.fire_due(ms(15));
        assert_eq!(gate.requeues(), 1);
        assert_eq!(gate.next_due(), Some(ms(20)));
        // 2 (queued already) moves to the front with its first payload; 4 is queued anew.
        assert_eq!(gate.pop(), Some((4, 40)));
        assert_eq!(gate.pop(), Some((2, 0)));
        assert_eq!(gate.pop(), Some((1, 0)));
        assert_eq!(gate.pop(), None);
        assert_eq!((gate.queued(), gate.yielded()), (0, 3));
        gate.fire_due(ms(20));
        assert_eq!(gate.pop(), Some((3, 30)));
        assert_eq!((gate.requeues(), gate.next_due()), (0, None));
    }

    #[test]
    fn the_earliest_requeue_wins_and_a_start_supersedes_it() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut gate = Gate::new(8);
        gate.requeue(1, ms(30), 1);
        gate.requeue(1, ms(50), 2);
        assert_eq!(
            gate.next_due(),
            Some(ms(30)),
            "a later requeue does not replace it"
        );
        gate.requeue(1, ms(10), 3);
        assert_eq!((gate.requeues(), gate.next_due()), (1, Some(ms(10))));
        gate.fire_due(ms(10));
        assert_eq!(gate.pop(), Some((1, 3)), "the earliest one's payload");
        // A reconcile of 2 starts (from a trigger) before its requeue is due.
        gate.requeue(2, ms(40), 0);
        gate.taken(&2);
        assert_eq!(gate.requeues(), 0, "the start superseded it");
        gate.fire_due(ms(100));
        assert_eq!(gate.pop(), None);
        // A requeue that comes due while its object is yielded, not taken: that run serves it.
        gate.requeue(1, ms(110), 0);
        gate.fire_due(ms(110));
        assert_eq!(gate.pop(), None);
        assert_eq!((gate.queued(), gate.yielded()), (0, 1));
        gate.taken(&1);
        assert_eq!((gate.queued(), gate.yielded(), gate.requeues()), (0, 0, 0));
    }

    #[test]
    fn a_requeue_waits_for_room_and_the_timers_give_a_burst_s_memory_back() {
        let t0 = Instant::now();
        let mut gate = Gate::new(2);
        for i in 0..100_000 {
            gate.requeue(i, t0 + Duration::from_millis(u64::from(i % 7)), 0);
        }
        assert!(gate.due_at.capacity() >= 100_000);
        gate.fire_due(t0 + Duration::from_millis(10));
        assert_eq!((gate.requeues(), gate.queued()), (0, 100_000));
        assert!(gate.due_at.capacity() < 1024, "{}", gate.due_at.capacity());
        let mut served = Vec::new();
        loop {
            let batch = drain(&mut gate);
            assert!(batch.len() <= 2, "within the limit");
            if batch.is_empty() {
                break;
            }
            for item in batch {
                gate.taken(&item);
                served.push(item);
            }
        }
        assert!(
            served.windows(2).all(|w| w[0] % 7 <= w[1] % 7),
            "earliest due first"
        );
        assert_eq!(served.len(), 100_000);
        let (order, entries) = gate.capacity();
        assert!(order < 1024 && entries < 1024, "{order} {entries}");
        // Superseded by starts: given back too.
        for i in 0..100_000 {
            gate.requeue(i, t0, 0);
        }
        for i in 0..100_000 {
            gate.taken(&i);
        }
        assert_eq!(gate.requeues(), 0);
        assert!(gate.due_at.capacity() < 1024, "{}", gate.due_at.capacity());
    }

    #[tokio::test]
    async fn the_stream_yields_a_requeue_once_it_is_due() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<(Vec<u32>, &'static str)>();
        let (handle, stream) = gated(rx, 2);
        let mut stream = Box::pin(stream);
        assert!(futures::poll!(stream.next()).is_pending());
        let asked = std::time::Instant::now();
        handle.requeue(1, Duration::from_millis(40), "retry");
        handle.requeue(2, Duration::from_millis(10), "retry");
        assert_eq!(handle.requeues(), 2);
        assert_eq!(stream.next().await, Some((2, "retry")));
        assert!(asked.elapsed() >= Duration::from_millis(10));
        assert_eq!(stream.next().await, Some((1, "retry")));
        assert!(asked.elapsed() >= Duration::from_millis(40));
        assert_eq!((handle.requeues(), handle.counts()), (0, (0, 2)));
        // A requeue superseded by a start never comes.
        handle.taken(&1);
        handle.taken(&2);
        handle.requeue(3, Duration::from_millis(20), "retry");
        handle.taken(&3);
        tx.unbounded_send((vec![4], "trigger")).expect("send");
        assert_eq!(stream.next().await, Some((4, "trigger")));
        handle.taken(&4);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(
            futures::poll!(stream.next()).is_pending(),
            "3 was superseded"
        );
        // Pending requeues do not keep the stream alive once its inputs ended.
        handle.requeue(5, Duration::from_secs(3600), "retry");
        drop(tx);
        assert_eq!(stream.next().await, None);
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
