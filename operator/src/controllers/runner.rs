//! The job controller's runner: runs the reconciles of the requests its [`gate`](super::gate)
//! hands on, in place of kube-runtime's applier (which needs kube's reflector store; the jobs
//! live in Barge's own [`JobStore`](crate::cache::JobStore)).
//!
//! It keeps kube-runtime's `Runner` contract:
//! - it starts nothing before `ready` resolves (the store has seen its first list); requests
//!   handed on meanwhile wait, in order;
//! - at most `limit` runs at once (0: no limit); while the limit is reached it takes no request
//!   from its input, which therefore stays in the gate;
//! - never two runs of one key at once: a request for a key that is running is held (one per
//!   key, the first payload kept, as kube-runtime's scheduler merges requests) and started
//!   once the running one has finished;
//! - the stream yields each run's output as it finishes and ends once its input has ended and
//!   every run started or held has finished (graceful shutdown: the input is cut, the runs in
//!   flight complete). When the input ends before `ready`, the requests waiting for it are
//!   dropped and the stream ends.
//!
//! What a run does — looking the object up, reporting to the gate that its request was taken,
//! requeues — is the `start` function's (see `job::run`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::stream::{FusedStream, FuturesUnordered};
use futures::{Future, FutureExt, Stream, StreamExt};

/// See the module docs.
pub struct Runner<T, P, S, F, O> {
    requests: futures::stream::Fuse<S>,
    /// Resolves once runs may start; None once it has.
    ready: Option<BoxFuture<'static, ()>>,
    start: F,
    /// Runs in flight, each yielding its key with its output.
    running: FuturesUnordered<BoxFuture<'static, (T, O)>>,
    /// The keys of `running`.
    busy: HashSet<T>,
    /// Requests for busy keys, started when their key's run finishes.
    held: HashMap<T, P>,
    /// Requests taken before `ready`, in order.
    early: VecDeque<(T, P)>,
    limit: usize,
}

impl<T, P, S, F, O> Runner<T, P, S, F, O>
where
    T: Clone + Eq + Hash + Send + 'static,
    S: Stream<Item = (T, P)> + Unpin,
    F: FnMut(&T, P) -> BoxFuture<'static, O>,
    O: Send + 'static,
{
    /// A runner of `requests` through `start`, at most `limit` at once (0: no limit), none
    /// before `ready`.
    pub fn new(
        requests: S,
        limit: usize,
        ready: impl Future<Output = ()> + Send + 'static,
        start: F,
    ) -> Self {
        Self {
            requests: requests.fuse(),
            ready: Some(ready.boxed()),
            start,
            running: FuturesUnordered::new(),
            busy: HashSet::new(),
            held: HashMap::new(),
            early: VecDeque::new(),
            limit,
        }
    }

    fn full(&self) -> bool {
        self.limit > 0 && self.running.len() >= self.limit
    }

    /// Starts `key`'s run now, or holds it while the key runs.
    fn launch(&mut self, key: T, payload: P) {
        if self.busy.contains(&key) {
            self.held.entry(key).or_insert(payload);
            return;
        }
        self.busy.insert(key.clone());
        let run = (self.start)(&key, payload);
        self.running
            .push(run.map(move |output| (key, output)).boxed());
    }

    /// How many runs are in flight.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// How many requests wait for their key's run to finish.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

impl<T, P, S, F, O> Stream for Runner<T, P, S, F, O>
where
    T: Clone + Eq + Hash + Send + Unpin + 'static,
    P: Unpin,
    S: Stream<Item = (T, P)> + Unpin,
    F: FnMut(&T, P) -> BoxFuture<'static, O> + Unpin,
    O: Send + 'static,
{
    type Item = O;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<O>> {
        let this = self.get_mut();
        loop {
            if let Poll::Ready(Some((key, output))) = this.running.poll_next_unpin(cx) {
                this.busy.remove(&key);
                if let Some(payload) = this.held.remove(&key) {
                    this.launch(key, payload);
                }
                return Poll::Ready(Some(output));
            }
            if let Some(ready) = this.ready.as_mut() {
                if ready.poll_unpin(cx).is_ready() {
                    this.ready = None;
                }
            }
            let mut launched = false;
            if this.ready.is_none() {
                while !this.full() {
                    let Some((key, payload)) = this.early.pop_front() else {
                        break;
                    };
                    this.launch(key, payload);
                    launched = true;
                }
            }
            while !this.full() && !this.requests.is_terminated() {
                match this.requests.poll_next_unpin(cx) {
                    Poll::Ready(Some((key, payload))) if this.ready.is_some() => {
                        this.early.push_back((key, payload));
                    }
                    Poll::Ready(Some((key, payload))) => {
                        this.launch(key, payload);
                        launched = true;
                    }
                    Poll::Ready(None) | Poll::Pending => break,
                }
            }
            if launched {
                // Poll the new runs (they may finish at once, and must register their wakers).
                continue;
            }
            let input_done = this.requests.is_terminated();
            if input_done && this.ready.is_some() {
                // Cut before the store was ready: nothing ran, nothing will.
                this.early.clear();
                return Poll::Ready(None);
            }
            if input_done
                && this.running.is_empty()
                && this.held.is_empty()
                && this.early.is_empty()
            {
                return Poll::Ready(None);
            }
            return Poll::Pending;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use futures::channel::mpsc;
    use tokio::sync::{oneshot, Notify};

    use super::*;

    /// What the test's runs did, in order: ("start" | "end", key).
    type Log = Arc<Mutex<Vec<(&'static str, u32)>>>;

    /// A runner whose runs log their start and end and finish when the test releases them
    /// (one `Notify` per key, `notify_one` releases the next run of that key).
    #[allow(clippy::type_complexity)]
    fn runner(
        limit: usize,
        ready: impl Future<Output = ()> + Send + 'static,
    ) -> (
        mpsc::UnboundedSender<(u32, &'static str)>,
        impl Stream<Item = (u32, &'static str)> + Unpin,
        Log,
        Arc<Mutex<HashMap<u32, Arc<Notify>>>>,
    ) {
        let (tx, rx) = mpsc::unbounded();
        let log: Log = Arc::default();
        let gates: Arc<Mutex<HashMap<u32, Arc<Notify>>>> = Arc::default();
        let (run_log, run_gates) = (log.clone(), gates.clone());
        let stream = Runner::new(rx, limit, ready, move |key: &u32, payload: &'static str| {
            let key = *key;
            let release = run_gates
                .lock()
                .unwrap()
                .entry(key)
                .or_insert_with(|| Arc::new(Notify::new()))
                .clone();
            let log = run_log.clone();
            log.lock().unwrap().push(("start", key));
            async move {
                release.notified().await;
                log.lock().unwrap().push(("end", key));
                (key, payload)
            }
            .boxed()
        });
        (tx, stream, log, gates)
    }

    /// Lets the running (or next) run of `key` finish.
    fn release(gates: &Arc<Mutex<HashMap<u32, Arc<Notify>>>>, key: u32) {
        gates
            .lock()
            .unwrap()
            .entry(key)
            .or_insert_with(|| Arc::new(Notify::new()))
            .notify_one();
    }

    async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
        tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("the runner yields within 5 s")
    }

    /// Whether the stream has nothing to yield right now.
    async fn quiet<S: Stream + Unpin>(stream: &mut S) -> bool
    where
        S::Item: std::fmt::Debug,
    {
        tokio::time::timeout(Duration::from_millis(50), stream.next())
            .await
            .is_err()
    }

    fn running(log: &Log) -> Vec<u32> {
        let mut open = Vec::new();
        for (what, key) in log.lock().unwrap().iter() {
            match *what {
                "start" => open.push(*key),
                _ => {
                    let at = open
                        .iter()
                        .position(|k| k == key)
                        .expect("ends a started run");
                    open.remove(at);
                }
            }
        }
        open.sort();
        open
    }

    #[tokio::test]
    async fn a_key_never_runs_twice_at_once_and_a_held_request_runs_after() {
        let (tx, mut stream, log, gates) = runner(4, futures::future::ready(()));
        tx.unbounded_send((1, "first")).unwrap();
        tx.unbounded_send((1, "second")).unwrap();
        tx.unbounded_send((1, "third")).unwrap();
        tx.unbounded_send((2, "other")).unwrap();
        assert!(quiet(&mut stream).await);
        // Key 1 runs once; its later requests are held as one (the first payload kept).
        assert_eq!(running(&log), [1, 2]);
        release(&gates, 1);
        assert_eq!(next(&mut stream).await, Some((1, "first")));
        assert!(quiet(&mut stream).await);
        assert_eq!(
            running(&log),
            [1, 2],
            "the held request started once the run ended"
        );
        release(&gates, 1);
        assert_eq!(next(&mut stream).await, Some((1, "second")));
        release(&gates, 2);
        assert_eq!(next(&mut stream).await, Some((2, "other")));
        assert!(quiet(&mut stream).await);
        assert!(
            running(&log).is_empty(),
            "the merged third request does not run again"
        );
        let starts = log
            .lock()
            .unwrap()
            .iter()
            .filter(|(w, _)| *w == "start")
            .count();
        assert_eq!(starts, 3);
    }

    #[tokio::test]
    async fn at_most_the_limit_runs_at_once_and_the_rest_stays_in_the_input() {
        let (tx, mut stream, log, gates) = runner(2, futures::future::ready(()));
        for key in 1..=5 {
            tx.unbounded_send((key, "go")).unwrap();
        }
        assert!(quiet(&mut stream).await);
        assert_eq!(running(&log), [1, 2]);
        release(&gates, 2);
        assert_eq!(next(&mut stream).await, Some((2, "go")));
        assert!(quiet(&mut stream).await);
        assert_eq!(running(&log), [1, 3]);
        for key in [1, 3, 4, 5] {
            release(&gates, key);
            assert_eq!(next(&mut stream).await, Some((key, "go")));
            assert!(running(&log).len() <= 2);
        }
        assert!(running(&log).is_empty());
        drop(tx);
        assert_eq!(next(&mut stream).await, None);
    }

    #[tokio::test]
    async fn nothing_starts_before_ready_and_then_in_order() {
        let (ready_tx, ready_rx) = oneshot::channel::<()>();
        let (tx, mut stream, log, gates) = runner(0, async move {
            let _ = ready_rx.await;
        });
        for key in [3, 1, 2] {
            tx.unbounded_send((key, "go")).unwrap();
        }
        assert!(quiet(&mut stream).await);
        assert!(log.lock().unwrap().is_empty());
        ready_tx.send(()).unwrap();
        assert!(quiet(&mut stream).await);
        let starts: Vec<u32> = log.lock().unwrap().iter().map(|(_, k)| *k).collect();
        assert_eq!(
            starts,
            [3, 1, 2],
            "no limit: all start, in the order they came"
        );
        for key in [1, 2, 3] {
            release(&gates, key);
            assert_eq!(next(&mut stream).await, Some((key, "go")));
        }
    }

    #[tokio::test]
    async fn the_stream_ends_once_the_input_ends_and_the_runs_in_flight_finish() {
        let (tx, mut stream, log, gates) = runner(4, futures::future::ready(()));
        tx.unbounded_send((1, "a")).unwrap();
        tx.unbounded_send((1, "b")).unwrap();
        tx.unbounded_send((2, "c")).unwrap();
        assert!(quiet(&mut stream).await);
        drop(tx);
        assert!(
            quiet(&mut stream).await,
            "runs in flight keep the stream open"
        );
        release(&gates, 2);
        assert_eq!(next(&mut stream).await, Some((2, "c")));
        release(&gates, 1);
        assert_eq!(next(&mut stream).await, Some((1, "a")));
        // The held request still runs (as kube-runtime's scheduler hands on what it holds).
        assert!(quiet(&mut stream).await);
        assert_eq!(running(&log), [1]);
        release(&gates, 1);
        assert_eq!(next(&mut stream).await, Some((1, "b")));
        assert_eq!(next(&mut stream).await, None);
    }

    #[tokio::test]
    async fn an_input_cut_before_ready_ends_the_stream_without_running_anything() {
        let (tx, mut stream, log, _gates) = runner(4, futures::future::pending());
        tx.unbounded_send((1, "a")).unwrap();
        assert!(quiet(&mut stream).await);
        drop(tx);
        assert_eq!(next(&mut stream).await, None);
        assert!(log.lock().unwrap().is_empty());
    }

    /// Random interleavings: requests for a few keys arrive while runs finish in random order;
    /// at no time do two runs of one key overlap or more than the limit run, and every request
    /// is served by a run that starts after it arrived.
    #[tokio::test]
    async fn random_interleavings_keep_the_bound_and_serve_every_request() {
        for seed in 0..40u64 {
            let mut state = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut rand = move |n: u64| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) % n
            };
            let limit = 1 + rand(3) as usize;
            let (tx, mut stream, log, gates) = runner(limit, futures::future::ready(()));
            // Per key: requests sent and not yet covered by a run that started after them.
            let mut uncovered: HashMap<u32, usize> = HashMap::new();
            let mut seen_starts = 0;
            for _ in 0..200 {
                if rand(2) == 0 {
                    let key = rand(5) as u32;
                    tx.unbounded_send((key, "r")).unwrap();
                    *uncovered.entry(key).or_default() += 1;
                } else {
                    let open = running(&log);
                    if let Some(&key) = open.get(rand(open.len().max(1) as u64) as usize) {
                        release(&gates, key);
                        next(&mut stream).await.expect("a run finished");
                    }
                }
                tokio::task::yield_now().await;
                let _ = futures::poll!(stream.next());
                let entries = log.lock().unwrap().clone();
                for (what, key) in &entries[seen_starts..] {
                    if *what == "start" {
                        uncovered.insert(*key, 0);
                    }
                }
                seen_starts = entries.len();
                let open = running(&log);
                assert!(open.len() <= limit, "seed {seed}: {open:?} over {limit}");
                let mut dedup = open.clone();
                dedup.dedup();
                assert_eq!(dedup, open, "seed {seed}: a key runs twice");
            }
            drop(tx);
            // Drain: release every run until the stream ends (a run may start while the
            // stream is polled: release again until it ends).
            let mut rounds = 0;
            loop {
                rounds += 1;
                assert!(rounds < 1000, "seed {seed}: the stream does not end");
                for key in running(&log) {
                    release(&gates, key);
                }
                let out = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
                for (what, key) in &log.lock().unwrap()[seen_starts..] {
                    if *what == "start" {
                        uncovered.insert(*key, 0);
                    }
                }
                seen_starts = log.lock().unwrap().len();
                if let Ok(None) = out {
                    break;
                }
            }
            assert!(
                uncovered.values().all(|n| *n == 0),
                "seed {seed}: a request was never served: {uncovered:?}"
            );
        }
    }
}
