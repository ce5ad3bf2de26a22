//! Client-side rate limiting of the Kubernetes API, by priority.
//!
//! client-go puts a token bucket (`QPS`, `Burst`) before every request of a client; kube-rs has
//! none, and a leader that finds thousands of jobs waiting reconciles them all at once: on a real
//! API server that flood came back as thousands of 429s from API Priority and Fairness (or 504s
//! for an exempt user), and the first job started after 33–60 s. This module is that bucket,
//! plus a cap on requests in flight (APF and `--max-requests-inflight` limit concurrency, not
//! rate), and both serve waiting requests by [`Priority`]: the writes that start and finish work
//! (pod creates, pod finalizer releases, terminal job statuses, the Lease) before job status
//! refreshes and reads, and those before Events and queue / compute-environment statuses.
//!
//! - [`classify`] (pure) gives each request its class from its method and path; a caller may
//!   raise or lower it for the requests of one future with [`with_priority`].
//! - [`Limiter`] (pure, takes `now`) is the bucket, the in-flight count and one FIFO per
//!   priority; a less urgent priority is served at least once every few grants while it waits
//!   ([`PASS_LIMIT`]), so Events are delayed, never starved.
//! - [`Throttle`] wraps a `Limiter` for async callers (one driver task hands out permits in
//!   order); [`ThrottleLayer`] puts it into the kube `Client`'s tower stack
//!   (`ClientBuilder::with_layer`). Watches are exempt (long-running, as the API server's
//!   in-flight limits exempt them too). A 429, 503 or 504 is retried after the server's
//!   `Retry-After` (else a short exponential backoff), through the throttle again, as client-go
//!   does; it replaces kube's default retry layer.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, Request, Response, StatusCode};
use kube::client::Body;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{oneshot, Notify};
use tower::buffer::Buffer;
use tower::{BoxError, Layer, Service, ServiceExt};

/// `--kube-api-qps` default: requests per second the bucket refills. High enough that it never
/// caps Barge's throughput targets (1,000 jobs/s at ≤ 5 writes each); what protects the API
/// server is the in-flight cap.
pub const DEFAULT_QPS: f64 = 5000.0;
/// `--kube-api-burst` default.
pub const DEFAULT_BURST: u32 = 10_000;
/// `--kube-api-max-in-flight` default: half of kube-apiserver's default
/// `--max-mutating-requests-inflight` (200), and well below the seats plus queue room API
/// Priority and Fairness gives one service account at the `workload-low` level, so one Barge
/// never sees a 429 from a default API server.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 100;
/// Retries of a request refused with 429, 503 or 504 (client-go's `maxRetries`).
pub const MAX_RETRIES: u32 = 10;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How urgent a request is: a less urgent one waits while a more urgent one is waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Pod creates, pod updates (the result finalizer's release), terminal job statuses, the
    /// Lease: what starts and finishes work.
    Critical,
    /// Job status refreshes, reads and every other write.
    Normal,
    /// Events and queue / compute environment / scheduling policy statuses.
    Low,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Critical, Priority::Normal, Priority::Low];

    fn index(self) -> usize {
        self as usize
    }

    /// Its label in the metrics.
    pub fn label(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

/// How many grants a waiting priority lets a more urgent one take before it is served once
/// (by index; the most urgent is never passed over).
pub const PASS_LIMIT: [u32; 3] = [u32::MAX, 4, 16];

/// How a request passes the throttle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestClass {
    /// Not throttled: watches (long-running).
    Exempt,
    Throttled(Priority),
}

tokio::task_local! {
    static PRIORITY: Priority;
}

/// Runs `fut` with every throttled request it makes at `priority` (watches stay exempt).
pub async fn with_priority<F: Future>(priority: Priority, fut: F) -> F::Output {
    PRIORITY.scope(priority, fut).await
}

/// The class of a request from its method, path and query (pure).
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> RequestClass {
    let watching = query.is_some_and(|q| {
        q.split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
    });
    if watching {
        return RequestClass::Exempt;
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // /api/v1/... or /apis/<group>/<version>/...
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return RequestClass::Throttled(Priority::Normal),
    };
    let (resource, subresource) = match rest {
        ["namespaces", _ns, resource, tail @ ..] => (*resource, tail.get(1).copied()),
        [resource, tail @ ..] => (*resource, tail.get(1).copied()),
        [] => return RequestClass::Throttled(Priority::Normal),
    };
    let mutating = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let priority = match (group, resource, subresource) {
        ("coordination.k8s.io", "leases", _) => Priority::Critical,
        ("", "pods", _) if mutating && *method != Method::DELETE => Priority::Critical,
        ("" | "events.k8s.io", "events", _) if mutating => Priority::Low,
        (
            barge_crds::consts::GROUP,
            "jobqueues" | "computeenvironments" | "schedulingpolicies",
            Some("status"),
        ) if mutating => Priority::Low,
        _ => Priority::Normal,
    };
    RequestClass::Throttled(priority)
}

/// The limits of a [`Limiter`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Tokens per second (0 or less: no rate limit).
    pub qps: f64,
    /// Tokens the bucket holds (at least 1).
    pub burst: u32,
    /// Requests in flight at once (0: no cap).
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            qps: DEFAULT_QPS,
            burst: DEFAULT_BURST,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// A place in a [`Limiter`]'s queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ticket(u64);

/// The token bucket, the in-flight count and the queues of waiting requests (pure: every
/// method that depends on time takes `now`).
#[derive(Debug)]
pub struct Limiter {
    limits: Limits,
    tokens: f64,
    refilled_at: Instant,
    in_flight: usize,
    waiting: [VecDeque<Ticket>; 3],
    /// Grants a waiting priority has seen go to a more urgent one since it was last served.
    passed_over: [u32; 3],
    next_ticket: u64,
}

/// What [`Limiter::admit_waiting`] decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Admitted {
    /// The tickets that may go now, in order.
    pub tickets: Vec<Ticket>,
    /// When to look again if requests still wait for a token (`None`: they wait for a request
    /// to finish, or nothing waits).
    pub retry_in: Option<Duration>,
}

impl Limiter {
    /// A limiter with a full bucket.
    pub fn new(limits: Limits, now: Instant) -> Self {
        let limits = Limits {
            burst: limits.burst.max(1),
            ..limits
        };
        Self {
            limits,
            tokens: f64::from(limits.burst),
            refilled_at: now,
            in_flight: 0,
            waiting: Default::default(),
            passed_over: [0; 3],
            next_ticket: 0,
        }
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Requests waiting.
    pub fn waiting(&self) -> usize {
        self.waiting.iter().map(VecDeque::len).sum()
    }

    fn rate_limited(&self) -> bool {
        self.limits.qps > 0.0
    }

    fn refill(&mut self, now: Instant) {
        if self.rate_limited() {
            let elapsed = now
                .saturating_duration_since(self.refilled_at)
                .as_secs_f64();
            self.tokens =
                (self.tokens + elapsed * self.limits.qps).min(f64::from(self.limits.burst));
        }
        self.refilled_at = self.refilled_at.max(now);
    }

    fn has_capacity(&self) -> bool {
        let token = !self.rate_limited() || self.tokens >= 1.0;
        let slot = self.limits.max_in_flight == 0 || self.in_flight < self.limits.max_in_flight;
        token && slot
    }

    fn take(&mut self, priority: Priority) {
        if self.rate_limited() {
            self.tokens -= 1.0;
        }
        self.in_flight += 1;
        self.passed_over[priority.index()] = 0;
        for less in Priority::ALL.iter().skip(priority.index() + 1) {
            if !self.waiting[less.index()].is_empty() {
                self.passed_over[less.index()] = self.passed_over[less.index()].saturating_add(1);
            }
        }
    }

    /// The priority served next among those waiting: a less urgent one that has been passed
    /// over [`PASS_LIMIT`] times, else the most urgent.
    fn next_priority(&self) -> Option<Priority> {
        let starved = Priority::ALL.iter().rev().find(|p| {
            !self.waiting[p.index()].is_empty()
                && self.passed_over[p.index()] >= PASS_LIMIT[p.index()]
        });
        starved
            .or_else(|| {
                Priority::ALL
                    .iter()
                    .find(|p| !self.waiting[p.index()].is_empty())
            })
            .copied()
    }

    /// Lets a request of `priority` go at once if nothing as urgent waits, no starved priority
    /// is due, and a token and a slot are free; `false`: it must [`enqueue`](Self::enqueue).
    pub fn try_admit(&mut self, priority: Priority, now: Instant) -> bool {
        let queued_ahead = Priority::ALL[..=priority.index()]
            .iter()
            .any(|p| !self.waiting[p.index()].is_empty());
        let starved_due = Priority::ALL[priority.index() + 1..].iter().any(|p| {
            !self.waiting[p.index()].is_empty()
                && self.passed_over[p.index()] >= PASS_LIMIT[p.index()]
        });
        if queued_ahead || starved_due {
            return false;
        }
        self.refill(now);
        if !self.has_capacity() {
            return false;
        }
        self.take(priority);
        true
    }

    /// Queues a request of `priority`.
    pub fn enqueue(&mut self, priority: Priority) -> Ticket {
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        self.waiting[priority.index()].push_back(ticket);
        ticket
    }

    /// Removes a waiting request that gave up; `false` if it is not waiting (it was admitted).
    pub fn cancel(&mut self, ticket: Ticket) -> bool {
        for queue in &mut self.waiting {
            if let Some(at) = queue.iter().position(|t| *t == ticket) {
                queue.remove(at);
                return true;
            }
        }
        false
    }

    /// An admitted request finished: its slot is free.
    pub fn finish(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Admits waiting requests in priority order while tokens and slots last.
    pub fn admit_waiting(&mut self, now: Instant) -> Admitted {
        self.refill(now);
        let mut admitted = Admitted::default();
        while let Some(priority) = self.next_priority() {
            if !self.has_capacity() {
                if self.rate_limited() && self.tokens < 1.0 {
                    let missing = (1.0 - self.tokens) / self.limits.qps;
                    admitted.retry_in = Some(Duration::from_secs_f64(missing));
                }
                break;
            }
            let ticket = self.waiting[priority.index()]
                .pop_front()
                .expect("next_priority names a non-empty queue");
            self.take(priority);
            admitted.tickets.push(ticket);
        }
        admitted
    }
}

/// How long to wait before retrying a response, or `None` if it is not retried (pure): 429,
/// 503 and 504 are, after `Retry-After` (seconds, at most a minute) or else 50 ms doubling per
/// attempt up to 5 s.
pub fn retry_delay(status: StatusCode, headers: &HeaderMap, attempt: u32) -> Option<Duration> {
    if !matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    ) {
        return None;
    }
    let server = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|secs| *secs > 0)
        .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    let backoff = Duration::from_millis(50)
        .saturating_mul(1u32 << attempt.min(16))
        .min(Duration::from_secs(5));
    Some(server.unwrap_or(backoff))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PriorityLabels {
    pub priority: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub code: String,
}

/// What the throttle records (registered by [`crate::metrics::Metrics`]).
#[derive(Clone, Default)]
pub struct ThrottleMetrics {
    /// Requests throttled, by priority.
    pub requests: Family<PriorityLabels, Counter>,
    /// Seconds requests waited for a token or a slot, by priority.
    pub wait_seconds: Family<PriorityLabels, Counter<f64, AtomicU64>>,
    /// Requests waiting now.
    pub waiting: Gauge,
    /// Responses retried (429, 503, 504), by status code.
    pub retried: Family<CodeLabels, Counter>,
}

impl ThrottleMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kube_api_requests",
            "Kubernetes API requests through the client-side throttle, by priority",
            self.requests.clone(),
        );
        registry.register(
            "kube_api_throttle_wait_seconds",
            "Seconds Kubernetes API requests waited in the client-side throttle, by priority",
            self.wait_seconds.clone(),
        );
        registry.register(
            "kube_api_throttle_waiting",
            "Kubernetes API requests waiting in the client-side throttle",
            self.waiting.clone(),
        );
        registry.register(
            "kube_api_retries",
            "Kubernetes API responses retried (429 Too Many Requests, 503, 504), by status code",
            self.retried.clone(),
        );
    }

    fn priority(priority: Priority) -> PriorityLabels {
        PriorityLabels {
            priority: priority.label().to_string(),
        }
    }
}

struct State {
    limiter: Limiter,
    senders: HashMap<Ticket, oneshot::Sender<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the driver (a request waits, or a slot is free).
    driver: Arc<Notify>,
    metrics: ThrottleMetrics,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The driver sees the throttle is gone and stops.
        self.driver.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A [`Limiter`] shared by async callers (cheap to clone).
#[derive(Clone)]
pub struct Throttle {
    shared: Arc<Shared>,
}

/// The right to have one request in flight; the slot frees when it drops.
pub struct Permit {
    shared: Arc<Shared>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.shared.lock();
            state.limiter.finish();
            state.limiter.waiting() > 0
        };
        if waiting {
            self.shared.driver.notify_one();
        }
    }
}

/// A queued request; leaves the queue (or frees the slot it was given) if dropped early.
struct Waiter {
    shared: Arc<Shared>,
    ticket: Ticket,
    admitted: bool,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.shared.metrics.waiting.dec();
        if self.admitted {
            return;
        }
        let mut state = self.shared.lock();
        state.senders.remove(&self.ticket);
        if !state.limiter.cancel(self.ticket) {
            // Admitted while it gave up: its slot goes to the next one.
            state.limiter.finish();
            drop(state);
            self.shared.driver.notify_one();
        }
    }
}

impl Throttle {
    /// A throttle with `limits`, and its driver task (which stops once every clone is dropped).
    pub fn start(limits: Limits, metrics: ThrottleMetrics) -> Self {
        let driver = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                limiter: Limiter::new(limits, Instant::now()),
                senders: HashMap::new(),
            }),
            driver: driver.clone(),
            metrics,
        });
        tokio::spawn(drive(Arc::downgrade(&shared), driver));
        Self { shared }
    }

    /// Waits for a token and a slot for one request of `priority`.
    pub async fn acquire(&self, priority: Priority) -> Permit {
        let metrics = &self.shared.metrics;
        metrics
            .requests
            .get_or_create(&ThrottleMetrics::priority(priority))
            .inc();
        let started = Instant::now();
        let (ticket, admission) = {
            let mut state = self.shared.lock();
            if state.limiter.try_admit(priority, started) {
                return Permit {
                    shared: self.shared.clone(),
                };
            }
            let ticket = state.limiter.enqueue(priority);
            let (tx, rx) = oneshot::channel();
            state.senders.insert(ticket, tx);
            (ticket, rx)
        };
        metrics.waiting.inc();
        self.shared.driver.notify_one();
        let mut waiter = Waiter {
            shared: self.shared.clone(),
            ticket,
            admitted: false,
        };
        // The sender lives in the state until it sends; the state outlives this borrow.
        let _ = admission.await;
        waiter.admitted = true;
        drop(waiter);
        metrics
            .wait_seconds
            .get_or_create(&ThrottleMetrics::priority(priority))
            .inc_by(started.elapsed().as_secs_f64());
        Permit {
            shared: self.shared.clone(),
        }
    }

    /// Sends `request` through `inner` once it has a permit, retrying 429, 503 and 504.
    async fn send<S, B>(
        &self,
        mut inner: S,
        mut request: Request<Body>,
    ) -> Result<Response<B>, BoxError>
    where
        S: Service<Request<Body>, Response = Response<B>>,
        S::Error: Into<BoxError>,
    {
        let class = match classify(
            request.method(),
            request.uri().path(),
            request.uri().query(),
        ) {
            RequestClass::Exempt => RequestClass::Exempt,
            RequestClass::Throttled(by_path) => {
                RequestClass::Throttled(PRIORITY.try_with(|p| *p).unwrap_or(by_path))
            }
        };
        let mut attempt = 0;
        loop {
            let again = (attempt < MAX_RETRIES)
                .then(|| clone_request(&request))
                .flatten();
            let permit = match class {
                RequestClass::Throttled(priority) => Some(self.acquire(priority).await),
                RequestClass::Exempt => None,
            };
            let response = inner
                .ready()
                .await
                .map_err(Into::into)?
                .call(request)
                .await
                .map_err(Into::into)?;
            drop(permit);
            let delay = retry_delay(response.status(), response.headers(), attempt);
            match (delay, again) {
                (Some(delay), Some(next)) => {
                    self.shared
                        .metrics
                        .retried
                        .get_or_create(&CodeLabels {
                            code: response.status().as_u16().to_string(),
                        })
                        .inc();
                    drop(response);
                    tokio::time::sleep(delay).await;
                    request = next;
                    attempt += 1;
                }
                _ => return Ok(response),
            }
        }
    }
}

/// Hands out permits to waiting requests as tokens and slots allow.
async fn drive(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let retry_in = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let mut state = shared.lock();
            let admitted = state.limiter.admit_waiting(Instant::now());
            for ticket in admitted.tickets {
                let sent = state
                    .senders
                    .remove(&ticket)
                    .is_some_and(|tx| tx.send(()).is_ok());
                if !sent {
                    state.limiter.finish();
                }
            }
            admitted.retry_in
        };
        match retry_in {
            Some(delay) => {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

/// A copy of a request with a buffered body (`None` for a streamed body, which is not retried).
fn clone_request(request: &Request<Body>) -> Option<Request<Body>> {
    let body = request.body().try_clone()?;
    let mut copy = Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}

/// The tower layer that puts a [`Throttle`] before the kube client's service.
#[derive(Clone)]
pub struct ThrottleLayer {
    throttle: Throttle,
}

impl ThrottleLayer {
    pub fn new(throttle: Throttle) -> Self {
        Self { throttle }
    }
}

impl<S> Layer<S> for ThrottleLayer
where
    S: Service<Request<Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + Sync + 'static,
{
    type Service = Throttled<Buffer<Request<Body>, S::Future>>;

    fn layer(&self, inner: S) -> Self::Service {
        Throttled {
            // A retry calls the inner service again: a buffer makes it cloneable.
            inner: Buffer::new(inner, 1024),
            throttle: self.throttle.clone(),
        }
    }
}

/// A service whose requests pass a [`Throttle`] first.
#[derive(Clone)]
pub struct Throttled<S> {
    inner: S,
    throttle: Throttle,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<Body>> for Throttled<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Response<B>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> Poll<Result<(), BoxError>> {
        // The inner service's readiness is awaited once the request has its permit, so a
        // request waiting for a token holds no buffer slot.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let throttle = self.throttle.clone();
        // The future runs in the caller's task (kube's client buffer hands it back), so the
        // priority of `with_priority` is visible there.
        Box::pin(async move { throttle.send(inner, request).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(qps: f64, burst: u32, max_in_flight: usize) -> Limits {
        Limits {
            qps,
            burst,
            max_in_flight,
        }
    }

    fn class(method: Method, path: &str) -> RequestClass {
        let (path, query) = path
            .split_once('?')
            .map_or((path, None), |(p, q)| (p, Some(q)));
        classify(&method, path, query)
    }

    #[test]
    fn requests_are_classed_by_what_they_write() {
        use Priority::*;
        use RequestClass::*;
        let t = Throttled;
        assert_eq!(
            class(Method::POST, "/api/v1/namespaces/a/pods"),
            t(Critical)
        );
        assert_eq!(
            class(Method::PATCH, "/api/v1/namespaces/a/pods/p"),
            t(Critical)
        );
        assert_eq!(
            class(Method::DELETE, "/api/v1/namespaces/a/pods/p"),
            t(Normal)
        );
        assert_eq!(class(Method::GET, "/api/v1/pods?limit=500"), t(Normal));
        assert_eq!(
            class(
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/a/leases/l"
            ),
            t(Critical)
        );
        assert_eq!(class(Method::POST, "/api/v1/namespaces/a/events"), t(Low));
        assert_eq!(
            class(Method::POST, "/apis/events.k8s.io/v1/namespaces/a/events"),
            t(Low)
        );
        assert_eq!(
            class(Method::PATCH, "/apis/batch.barge.dev/v1/jobqueues/q/status"),
            t(Low)
        );
        assert_eq!(
            class(
                Method::PATCH,
                "/apis/batch.barge.dev/v1/computeenvironments/c/status"
            ),
            t(Low)
        );
        assert_eq!(
            class(Method::PATCH, "/apis/batch.barge.dev/v1/jobqueues/q"),
            t(Normal),
            "a queue's own finalizer is no status refresh"
        );
        assert_eq!(
            class(
                Method::PATCH,
                "/apis/batch.barge.dev/v1/namespaces/a/jobs/j/status"
            ),
            t(Normal)
        );
        assert_eq!(
            class(
                Method::GET,
                "/api/v1/namespaces/a/pods?watch=true&resourceVersion=5"
            ),
            Exempt
        );
        assert_eq!(class(Method::GET, "/version"), t(Normal));
    }

    #[test]
    fn the_bucket_admits_a_burst_then_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(limits(10.0, 3, 0), t0);
        for _ in 0..3 {
            assert!(limiter.try_admit(Priority::Normal, t0));
        }
        assert!(
            !limiter.try_admit(Priority::Normal, t0),
            "the burst is spent"
        );
        assert!(
            !limiter.try_admit(Priority::Normal, t0 + Duration::from_millis(50)),
            "half a token"
        );
        assert!(limiter.try_admit(Priority::Normal, t0 + Duration::from_millis(100)));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.try_admit(Priority::Normal, later));
        }
        assert!(!limiter.try_admit(Priority::Normal, later));
    }

    #[test]
    fn waiting_requests_go_by_priority_and_learn_when_the_next_token_comes() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(limits(10.0, 1, 0), t0);
        assert!(limiter.try_admit(Priority::Low, t0));
        let event = limiter.enqueue(Priority::Low);
        let status = limiter.enqueue(Priority::Normal);
        let pod = limiter.enqueue(Priority::Critical);
        let none = limiter.admit_waiting(t0);
        assert!(none.tickets.is_empty());
        assert_eq!(none.retry_in, Some(Duration::from_millis(100)));
        assert_eq!(
            limiter
                .admit_waiting(t0 + Duration::from_millis(100))
                .tickets,
            [pod]
        );
        assert_eq!(
            limiter
                .admit_waiting(t0 + Duration::from_millis(200))
                .tickets,
            [status]
        );
        assert_eq!(
            limiter
                .admit_waiting(t0 + Duration::from_millis(300))
                .tickets,
            [event]
        );
        let idle = limiter.admit_waiting(t0 + Duration::from_millis(400));
        assert_eq!(idle, Admitted::default());
    }

    #[test]
    fn a_request_does_not_overtake_one_as_urgent_but_does_overtake_less_urgent_ones() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(limits(0.0, 1, 1), t0);
        assert!(limiter.try_admit(Priority::Normal, t0));
        let status = limiter.enqueue(Priority::Normal);
        limiter.finish();
        assert!(
            !limiter.try_admit(Priority::Normal, t0),
            "FIFO within a priority"
        );
        assert!(
            limiter.try_admit(Priority::Critical, t0),
            "a pod create goes before the waiting status write"
        );
        limiter.finish();
        assert_eq!(limiter.admit_waiting(t0).tickets, [status]);
    }

    #[test]
    fn the_in_flight_cap_holds_until_a_request_finishes() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(limits(0.0, 1, 2), t0);
        assert!(limiter.try_admit(Priority::Critical, t0));
        assert!(limiter.try_admit(Priority::Critical, t0));
        assert!(!limiter.try_admit(Priority::Critical, t0));
        let third = limiter.enqueue(Priority::Critical);
        assert_eq!(
            limiter.admit_waiting(t0),
            Admitted::default(),
            "no timer: wait for a finish"
        );
        limiter.finish();
        assert_eq!(limiter.admit_waiting(t0).tickets, [third]);
        assert_eq!(limiter.in_flight(), 2);
    }

    #[test]
    fn less_urgent_requests_are_delayed_but_never_starved() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(limits(0.0, 1, 1), t0);
        assert!(limiter.try_admit(Priority::Critical, t0));
        let events: Vec<Ticket> = (0..2).map(|_| limiter.enqueue(Priority::Low)).collect();
        let pods: Vec<Ticket> = (0..40)
            .map(|_| limiter.enqueue(Priority::Critical))
            .collect();
        let mut order = Vec::new();
        for _ in 0..42 {
            limiter.finish();
            order.extend(limiter.admit_waiting(t0).tickets);
        }
        let position = |t: &Ticket| order.iter().position(|o| o == t).expect("admitted");
        let low_limit = PASS_LIMIT[Priority::Low.index()] as usize;
        assert_eq!(position(&events[0]), low_limit, "after 16 pod creates");
        assert_eq!(position(&events[1]), 2 * low_limit + 1);
        assert_eq!(order.len(), 42);
        assert!(pods.iter().all(|p| order.contains(p)));
        // A fast-path request cannot skip a starved priority either.
        let mut limiter = Limiter::new(limits(0.0, 1, 0), t0);
        let event = limiter.enqueue(Priority::Low);
        limiter.passed_over[Priority::Low.index()] = PASS_LIMIT[Priority::Low.index()];
        assert!(!limiter.try_admit(Priority::Critical, t0));
        assert_eq!(limiter.admit_waiting(t0).tickets, [event]);
    }

    #[test]
    fn a_cancelled_ticket_leaves_the_queue() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(limits(0.0, 1, 1), t0);
        assert!(limiter.try_admit(Priority::Normal, t0));
        let gone = limiter.enqueue(Priority::Normal);
        let stays = limiter.enqueue(Priority::Normal);
        assert!(limiter.cancel(gone));
        assert!(!limiter.cancel(gone));
        limiter.finish();
        assert_eq!(limiter.admit_waiting(t0).tickets, [stays]);
        assert_eq!(limiter.waiting(), 0);
    }

    #[test]
    fn retries_honour_retry_after_else_back_off() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_delay(StatusCode::OK, &headers, 0), None);
        assert_eq!(retry_delay(StatusCode::CONFLICT, &headers, 0), None);
        assert_eq!(
            retry_delay(StatusCode::TOO_MANY_REQUESTS, &headers, 0),
            Some(Duration::from_millis(50))
        );
        assert_eq!(
            retry_delay(StatusCode::GATEWAY_TIMEOUT, &headers, 3),
            Some(Duration::from_millis(400))
        );
        assert_eq!(
            retry_delay(StatusCode::SERVICE_UNAVAILABLE, &headers, 9),
            Some(Duration::from_secs(5))
        );
        headers.insert(http::header::RETRY_AFTER, "2".parse().expect("header"));
        assert_eq!(
            retry_delay(StatusCode::TOO_MANY_REQUESTS, &headers, 0),
            Some(Duration::from_secs(2))
        );
        headers.insert(http::header::RETRY_AFTER, "3600".parse().expect("header"));
        assert_eq!(
            retry_delay(StatusCode::TOO_MANY_REQUESTS, &headers, 0),
            Some(MAX_RETRY_AFTER)
        );
    }

    /// A kube client over a fake API server that refuses the first `refusals` requests with
    /// 429 and answers the rest with an empty list; the calls it saw.
    fn client_over_fake_server(
        throttle: Throttle,
        refusals: usize,
    ) -> (kube::Client, Arc<Mutex<Vec<StatusCode>>>) {
        let answered = Arc::new(Mutex::new(Vec::new()));
        let seen = answered.clone();
        let server = tower::service_fn(move |_request: Request<Body>| {
            let seen = seen.clone();
            async move {
                let mut seen = seen.lock().expect("lock");
                let status = if seen.len() < refusals {
                    StatusCode::TOO_MANY_REQUESTS
                } else {
                    StatusCode::OK
                };
                seen.push(status);
                let body =
                    br#"{"apiVersion":"v1","kind":"ConfigMapList","metadata":{},"items":[]}"#;
                Response::builder()
                    .status(status)
                    .header(http::header::RETRY_AFTER, "0")
                    .body(Body::from(body.to_vec()))
                    .map_err(BoxError::from)
            }
        });
        let service = ThrottleLayer::new(throttle).layer(server);
        (kube::Client::new(service, "default"), answered)
    }

    #[tokio::test]
    async fn the_client_retries_a_429_through_the_throttle_at_the_callers_priority() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let metrics = ThrottleMetrics::default();
        let throttle = Throttle::start(limits(0.0, 1, 4), metrics.clone());
        let (client, answered) = client_over_fake_server(throttle, 2);
        let api: kube::Api<ConfigMap> = kube::Api::default_namespaced(client);
        let listed = with_priority(Priority::Critical, api.list(&Default::default()))
            .await
            .expect("listed after two refusals");
        assert!(listed.items.is_empty());
        assert_eq!(
            *answered.lock().expect("lock"),
            [
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::OK
            ]
        );
        let count = |priority: Priority| {
            metrics
                .requests
                .get_or_create(&ThrottleMetrics::priority(priority))
                .get()
        };
        assert_eq!(
            count(Priority::Critical),
            3,
            "the caller's priority, each try"
        );
        assert_eq!(count(Priority::Normal), 0);
        let retried = metrics
            .retried
            .get_or_create(&CodeLabels { code: "429".into() })
            .get();
        assert_eq!(retried, 2);
        // Without a priority of its own, a list is Normal.
        api.list(&Default::default()).await.expect("listed");
        assert_eq!(count(Priority::Normal), 1);
    }

    #[tokio::test]
    async fn the_throttle_hands_out_permits_in_priority_order() {
        let metrics = ThrottleMetrics::default();
        let throttle = Throttle::start(limits(0.0, 1, 1), metrics.clone());
        let first = throttle.acquire(Priority::Normal).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for priority in [Priority::Low, Priority::Normal, Priority::Critical] {
            let throttle = throttle.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = throttle.acquire(priority).await;
                order.lock().expect("lock").push(priority);
            }));
            // Each is queued before the next arrives.
            while metrics.waiting.get() < tasks.len() as i64 {
                tokio::task::yield_now().await;
            }
        }
        drop(first);
        for task in tasks {
            task.await.expect("joined");
        }
        assert_eq!(
            *order.lock().expect("lock"),
            [Priority::Critical, Priority::Normal, Priority::Low]
        );
        assert_eq!(metrics.waiting.get(), 0);
        // A waiter that gives up frees its place.
        let held = throttle.acquire(Priority::Normal).await;
        let gave_up = tokio::time::timeout(
            Duration::from_millis(20),
            throttle.acquire(Priority::Normal),
        )
        .await;
        assert!(gave_up.is_err());
        drop(held);
        tokio::time::timeout(Duration::from_secs(1), throttle.acquire(Priority::Normal))
            .await
            .expect("the slot is free again");
    }
}
