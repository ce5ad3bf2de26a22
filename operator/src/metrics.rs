//! Prometheus metrics and the operator's HTTP endpoints (`/metrics`, `/healthz`, `/readyz`).
//!
//! One [`Metrics`] value is created at start-up and shared through the controllers' context; each
//! controller and the scheduler record into it. The HTTP server serves the text exposition format of
//! prometheus-client and the two probes: `/healthz` answers while the process runs, `/readyz` once
//! the caches are synced (a standby replica that waits for the lease is ready too: it can take over).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::throttle::ThrottleMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueStateLabels {
    pub queue: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerResultLabels {
    pub controller: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComputeEnvironmentLabels {
    pub compute_environment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShareLabels {
    pub queue: String,
    pub share: String,
}

/// Every metric Barge exports.
pub struct Metrics {
    registry: Registry,
    /// Jobs (array parents count once) by queue and AWS Batch state.
    pub jobs: Family<QueueStateLabels, Gauge>,
    /// State changes recorded, by queue and the state entered.
    pub transitions: Family<QueueStateLabels, Counter>,
    /// Reconciles by controller and outcome (`ok`, `error`).
    pub reconciles: Family<ControllerResultLabels, Counter>,
    pub reconcile_seconds: Family<ControllerLabels, Histogram>,
    /// Duration of one scheduling pass (snapshot, decide, apply).
    pub pass_seconds: Histogram,
    pub placements: Counter,
    /// Scheduling passes that found every input of the decision unchanged since a pass that
    /// placed nothing, and so decided nothing anew (counted in `pass_seconds` too).
    pub passes_unchanged: Counter,
    /// Of those, passes on which a queue-status round was due and that found every input of
    /// the round unchanged since a round whose writes all succeeded (nothing written again).
    pub queue_status_rounds_unchanged: Counter,
    pub pod_creations_failed: Counter,
    pub ce_desired_vcpus: Family<ComputeEnvironmentLabels, Gauge>,
    pub ce_allocated_vcpus: Family<ComputeEnvironmentLabels, Gauge>,
    /// Status writes issued, all kinds (the figure the status-coalescing work keeps low).
    pub status_writes: Counter,
    /// Status writes skipped because nothing changed.
    pub status_writes_skipped: Counter,
    /// Queue status writes of the scheduler (`status.fairShare`, `status.frontOfQueue`; also
    /// counted in `status_writes`).
    pub queue_status_writes: Counter,
    /// Kubernetes Events written, failed, and dropped because the queue was full.
    pub events_published: Counter,
    pub events_failed: Counter,
    pub events_dropped: Counter,
    /// Node objects the simulated provider created and deleted.
    pub nodes_created: Counter,
    pub nodes_deleted: Counter,
    /// The client-side throttle of Kubernetes API requests (`throttle`).
    pub kube_api: ThrottleMetrics,
}

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("barge");
        let jobs = Family::<QueueStateLabels, Gauge>::default();
        registry.register("jobs", "Jobs by queue and state", jobs.clone());
        let transitions = Family::<QueueStateLabels, Counter>::default();
        registry.register(
            "job_transitions",
            "Job state changes by queue and state entered",
            transitions.clone(),
        );
        let reconciles = Family::<ControllerResultLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by controller and result",
            reconciles.clone(),
        );
        let reconcile_seconds = Family::<ControllerLabels, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration by controller",
            reconcile_seconds.clone(),
        );
        let pass_seconds = seconds_histogram();
        registry.register(
            "scheduler_pass_duration_seconds",
            "Duration of a scheduling pass",
            pass_seconds.clone(),
        );
        let placements = Counter::default();
        registry.register(
            "scheduler_placements",
            "Units (jobs, array children) placed on nodes",
            placements.clone(),
        );
        let passes_unchanged = Counter::default();
        registry.register(
            "scheduler_passes_unchanged",
            "Scheduling passes whose inputs had not changed since a pass that placed nothing (not decided again)",
            passes_unchanged.clone(),
        );
        let queue_status_rounds_unchanged = Counter::default();
        registry.register(
            "scheduler_queue_status_rounds_unchanged",
            "Queue-status rounds whose inputs had not changed since a round whose writes all succeeded (not decided or written again)",
            queue_status_rounds_unchanged.clone(),
        );
        let pod_creations_failed = Counter::default();
        registry.register(
            "pod_creations_failed",
            "Pod creations that failed and were rolled back",
            pod_creations_failed.clone(),
        );
        let ce_desired_vcpus = Family::<ComputeEnvironmentLabels, Gauge>::default();
        registry.register(
            "compute_environment_desired_vcpus",
            "Desired vCPUs of a compute environment",
            ce_desired_vcpus.clone(),
        );
        let ce_allocated_vcpus = Family::<ComputeEnvironmentLabels, Gauge>::default();
        registry.register(
            "compute_environment_allocated_vcpus",
            "vCPUs of the nodes a compute environment has",
            ce_allocated_vcpus.clone(),
        );
        let status_writes = Counter::default();
        registry.register(
            "status_writes",
            "Status writes issued",
            status_writes.clone(),
        );
        let status_writes_skipped = Counter::default();
        registry.register(
            "status_writes_skipped",
            "Status writes skipped because nothing changed",
            status_writes_skipped.clone(),
        );
        let queue_status_writes = Counter::default();
        registry.register(
            "queue_status_writes",
            "Queue status writes of the scheduler (fairShare, frontOfQueue)",
            queue_status_writes.clone(),
        );
        let events_published = Counter::default();
        registry.register(
            "events_published",
            "Kubernetes Events written",
            events_published.clone(),
        );
        let events_failed = Counter::default();
        registry.register(
            "events_failed",
            "Kubernetes Events the API server refused",
            events_failed.clone(),
        );
        let events_dropped = Counter::default();
        registry.register(
            "events_dropped",
            "Kubernetes Events dropped because the queue was full",
            events_dropped.clone(),
        );
        let nodes_created = Counter::default();
        registry.register(
            "nodes_created",
            "Node objects created by the simulated provider",
            nodes_created.clone(),
        );
        let nodes_deleted = Counter::default();
        registry.register(
            "nodes_deleted",
            "Node objects deleted by the simulated provider",
            nodes_deleted.clone(),
        );
        let kube_api = ThrottleMetrics::default();
        kube_api.register(&mut registry);
        Self {
            registry,
            jobs,
            transitions,
            reconciles,
            reconcile_seconds,
            pass_seconds,
            placements,
            passes_unchanged,
            queue_status_rounds_unchanged,
            pod_creations_failed,
            ce_desired_vcpus,
            ce_allocated_vcpus,
            status_writes,
            status_writes_skipped,
            queue_status_writes,
            events_published,
            events_failed,
            events_dropped,
            nodes_created,
            nodes_deleted,
            kube_api,
        }
    }

    /// Records one reconcile of `controller` that took `elapsed`.
    pub fn reconciled(&self, controller: &str, ok: bool, elapsed: Duration) {
        let result = if ok { "ok" } else { "error" };
        self.reconciles
            .get_or_create(&ControllerResultLabels {
                controller: controller.into(),
                result: result.into(),
            })
            .inc();
        self.reconcile_seconds
            .get_or_create(&ControllerLabels {
                controller: controller.into(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Shared state of the HTTP endpoints.
#[derive(Clone)]
pub struct Endpoints {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
}

async fn serve_metrics(State(state): State<Endpoints>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn serve_healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok")
}

async fn serve_readyz(State(state): State<Endpoints>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

/// The router of the operator's HTTP endpoints.
pub fn router(endpoints: Endpoints) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(serve_healthz))
        .route("/readyz", get(serve_readyz))
        .with_state(endpoints)
}

/// Binds `addr` and serves the endpoints until `shutdown` resolves. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    endpoints: Endpoints,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(endpoints);
    let handle = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %err, "metrics server failed");
        }
    });
    Ok((bound, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_recorded_series() {
        let metrics = Metrics::new();
        metrics
            .jobs
            .get_or_create(&QueueStateLabels {
                queue: "high".into(),
                state: "RUNNABLE".into(),
            })
            .set(3);
        metrics.reconciled("job", true, Duration::from_millis(2));
        let text = metrics.render();
        assert!(
            text.contains(r#"barge_jobs{queue="high",state="RUNNABLE"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"barge_reconciles_total{controller="job",result="ok"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn readyz_follows_the_ready_flag() {
        let endpoints = Endpoints {
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(false)),
        };
        let (addr, handle) = serve(
            "127.0.0.1:0".parse().expect("addr"),
            endpoints.clone(),
            std::future::pending(),
        )
        .await
        .expect("bind");
        let probe = |path: &'static str| async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.expect("write");
            let mut response = String::new();
            stream.read_to_string(&mut response).await.expect("read");
            response
        };
        assert!(probe("/readyz").await.starts_with("HTTP/1.1 503"));
        endpoints.ready.store(true, Ordering::Relaxed);
        assert!(probe("/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(probe("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(probe("/metrics")
            .await
            .contains("barge_scheduler_pass_duration_seconds"));
        handle.abort();
    }
}
