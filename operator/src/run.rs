//! `barge operator`: start-up, leadership and shutdown.
//!
//! The recipe ([`run`]):
//! 1. connect (`--kubeconfig`, else `KUBECONFIG` / `~/.kube/config` / in-cluster);
//! 2. wait until Barge's CRDs are Established (logging what is missing while waiting);
//! 3. start the caches ([`Caches::start`]) and the HTTP endpoints (`/metrics`, `/healthz`,
//!    `/readyz`; the bound address is printed on stdout as `metrics listening on http://ADDR`),
//!    and mark the process ready once the caches are synced (the jobs possibly without their
//!    finished history, which comes in meanwhile: [`Caches::all_jobs_listed`]);
//! 4. campaign for the Lease (`--leader-election`), or lead at once without it;
//! 5. while leading: build a fresh [`Context`] and run the controllers and the scheduler
//!    ([`spawn_workers`]);
//! 6. SIGTERM/SIGINT → the controllers stop gracefully, the lease is released, exit 0. Losing
//!    the lease → stop and exit non-zero, so the replica restarts clean (as controller-runtime
//!    does): nothing in memory survives a change of leader.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, Resource};
use tokio::sync::watch;
use tracing::{info, warn};

use barge_crds::consts::GROUP;
use barge_crds::{ComputeEnvironment, Job, JobDefinition, JobQueue, SchedulingPolicy};

use crate::cache::Caches;
use crate::context::{ArrayPodRetention, Context, EnabledProviders, OperatorConfig};
use crate::controllers::{compute_environment, job, job_definition, job_queue, scheduling_policy};
use crate::events::{EventPublisher, JobEvents, DEFAULT_QUEUE_CAPACITY};
use crate::leader::{LeaderElector, LeaseTimings};
use crate::metrics::{self, Endpoints, Metrics};
use crate::scheduler;
use crate::shutdown::Shutdown;
use crate::throttle::{self, Limits, Throttle, ThrottleLayer};

/// `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Flags of `barge operator`.
#[derive(clap::Args, Clone, Debug)]
pub struct OperatorArgs {
    /// Kubeconfig to use (default: KUBECONFIG, ~/.kube/config, or the in-cluster service account).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Address of /metrics, /healthz and /readyz (port 0 picks a free port; the bound address is
    /// printed on stdout).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Log filter: a level (info, debug...) or tracing directives (barge_operator=debug,kube=info).
    #[arg(long, default_value = "info")]
    pub log_level: String,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Which pods of array children are kept once their result is recorded.
    #[arg(long, value_enum, default_value_t = ArrayPodRetention::Failed)]
    pub array_pod_retention: ArrayPodRetention,
    /// Run the controllers only while holding a coordination.k8s.io Lease.
    #[arg(long)]
    pub leader_election: bool,
    #[arg(long, default_value = "barge-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (default: POD_NAMESPACE, else "default").
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    #[arg(long, default_value_t = 15)]
    pub lease_duration_seconds: u64,
    #[arg(long, default_value_t = 10)]
    pub lease_renew_deadline_seconds: u64,
    #[arg(long, default_value_t = 2)]
    pub lease_retry_period_seconds: u64,
    /// This replica's identity in the Lease and in Events (default: POD_NAME, else hostname-pid).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Least milliseconds between two status writes of a busy array job (sooner when 64
    /// children's results wait to be recorded; and between refreshes of queue counts), and how long a job's non-terminal changes (RUNNABLE → STARTING →
    /// RUNNING, a new scheduler verdict) wait to be written together; terminal transitions,
    /// retries and a job's first status are written at once.
    #[arg(long, default_value_t = 1000)]
    pub status_coalesce_ms: u64,
    /// Milliseconds between scheduling passes when nothing wakes the scheduler earlier.
    #[arg(long, default_value_t = 1000)]
    pub scheduler_interval_ms: u64,
    /// Pod creates the scheduler keeps in flight (continuously, in the background: a scheduling
    /// pass hands its placements over and does not wait for them).
    #[arg(long, default_value_t = 32)]
    pub pod_create_concurrency: usize,
    /// Least milliseconds between two rounds of queue status writes by the scheduler (a
    /// queue's `status.fairShare` and `status.frontOfQueue`, each written only when changed).
    #[arg(long, default_value_t = 5000)]
    pub queue_status_interval_ms: u64,
    /// Reconciles each controller runs at once (0: unbounded). Objects that change meanwhile
    /// wait as keys in the controller's queue. Keep it well above `--kube-api-max-in-flight`:
    /// reconciles wait for the throttle, and a low bound slows start-up admission.
    #[arg(long, default_value_t = crate::context::DEFAULT_RECONCILE_CONCURRENCY)]
    pub reconcile_concurrency: u16,
    /// Seconds between refreshes of compute environment and queue statuses without a trigger.
    #[arg(long, default_value_t = 10)]
    pub status_refresh_seconds: u64,
    /// Seconds a job named in `dependsOn` may be missing (GitOps tools apply in any order)
    /// before the dependent job fails with "Dependency not found: ...".
    #[arg(long, default_value_t = barge_core::deps::DEFAULT_MISSING_DEPENDENCY_GRACE_SECONDS.unsigned_abs())]
    pub dependency_grace_seconds: u64,
    /// Seconds after its first refused pod creation (403, 422, 404...) an attempt fails with
    /// "PodCreationRefused: <the API server's message>" (creates are retried with backoff meanwhile).
    #[arg(long, default_value_t = barge_core::pod_creation::DEFAULT_GIVE_UP_SECONDS.unsigned_abs())]
    pub pod_create_give_up_seconds: u64,
    /// Node-pool providers of MANAGED compute environments this operator may use, as its
    /// installation grants their permissions: a comma-separated list of simulated, karpenter
    /// and cluster-api, or none. An environment naming another provider is INVALID
    /// (ProviderDisabled), and the operator makes no API call for a disabled provider.
    #[arg(long, default_value_t = EnabledProviders::all())]
    pub providers: EnabledProviders,
    /// Kubernetes API requests per second this operator sends (client-go's `--kube-api-qps`;
    /// 0: no rate limit). Watches are not counted; waiting requests go by priority: pod creates,
    /// pod finalizer releases, terminal job statuses and the Lease first, Events and queue /
    /// compute environment statuses last.
    #[arg(long, default_value_t = throttle::DEFAULT_QPS)]
    pub kube_api_qps: f64,
    /// Requests the rate limit lets through at once after a quiet spell (client-go's
    /// `--kube-api-burst`).
    #[arg(long, default_value_t = throttle::DEFAULT_BURST)]
    pub kube_api_burst: u32,
    /// Kubernetes API requests in flight at once, watches aside (0: no cap). API Priority and
    /// Fairness and `--max-requests-inflight` limit concurrency: staying below them avoids 429s.
    #[arg(long, default_value_t = throttle::DEFAULT_MAX_IN_FLIGHT)]
    pub kube_api_max_in_flight: usize,
    /// Which job state changes are announced as Kubernetes Events: `failures` (Warning Events
    /// for a failed job and for a failed attempt that is retried: what someone must look at),
    /// `finished` (also one Normal Event per succeeded job), `all` (every state change, as AWS
    /// Batch's EventBridge job state change events: 4–5 Events per job) or `none`. Each Event is
    /// an API write and an object stored for an hour: at thousands of jobs a minute, one per
    /// transition costs more than the pods and statuses together. Every change is also in the
    /// job's status and in `barge_job_transitions_total`.
    #[arg(long, value_enum, default_value_t = JobEvents::default())]
    pub job_events: JobEvents,
    /// Seconds a finished job's pods are kept after the job stopped; then they are deleted
    /// (their results are in the job's status, which stays until the job is deleted or its
    /// `ttlSecondsAfterFinished` passes). Every pod kept costs the API server and the
    /// operator's pod cache (~10 KiB each): this bounds what finished jobs cost. 0 deletes
    /// them as soon as their results are recorded. Logs go with the pods: ship them elsewhere
    /// (as AWS Batch does to CloudWatch) to keep them longer, or raise this.
    #[arg(long, default_value_t = crate::context::DEFAULT_FINISHED_POD_RETENTION_SECONDS)]
    pub finished_pod_retention_seconds: u64,
}

/// Why the operator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("configuring the Kubernetes client: {0}")]
    ClientConfig(String),
    #[error("creating the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("serving metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("installing the signal handler: {0}")]
    Signal(#[source] std::io::Error),
    #[error("the caches stopped before they were synced")]
    Caches,
    #[error(
        "lost the leader lease {0}; exiting so that the next leader starts from a clean state"
    )]
    LostLeadership(String),
}

/// Starts every worker — the controllers and the scheduler loop — on the leader; the handles
/// finish after `shutdown`.
pub fn spawn_workers(ctx: Arc<Context>, shutdown: Shutdown) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(job::run(ctx.clone(), shutdown.clone())),
        tokio::spawn(scheduler::run(ctx.clone(), shutdown.clone())),
        tokio::spawn(scheduling_policy::run(ctx.clone(), shutdown.clone())),
        tokio::spawn(job_queue::run(ctx.clone(), shutdown.clone())),
        tokio::spawn(compute_environment::run(ctx.clone(), shutdown.clone())),
        tokio::spawn(job_definition::run(ctx, shutdown)),
    ]
}

/// Sets up tracing to stderr with the given filter and format.
pub fn init_tracing(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|err| {
        eprintln!("invalid --log-level {filter:?} ({err}); using info");
        tracing_subscriber::EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(err) = result {
        eprintln!("tracing already initialised: {err}");
    }
}

/// This replica's identity: `--identity`/POD_NAME, else `<hostname>-<pid>`.
pub fn identity(explicit: Option<&str>) -> String {
    if let Some(id) = explicit.filter(|id| !id.is_empty()) {
        return id.to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "barge".to_string());
    format!("{host}-{}", std::process::id())
}

/// A client from `--kubeconfig`, or from the environment.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, RunError> {
    Client::try_from(client_config(kubeconfig).await?).map_err(RunError::Client)
}

/// A client like [`client`] whose requests pass `throttle` (which also retries 429, 503 and
/// 504 in place of kube's default retry).
pub async fn throttled_client(
    kubeconfig: Option<&Path>,
    throttle: Throttle,
) -> Result<Client, RunError> {
    let mut config = client_config(kubeconfig).await?;
    config.default_retry = false;
    let builder = kube::client::ClientBuilder::try_from(config).map_err(RunError::Client)?;
    Ok(builder.with_layer(&ThrottleLayer::new(throttle)).build())
}

/// The throttle's limits from the flags.
pub fn kube_api_limits(args: &OperatorArgs) -> Limits {
    Limits {
        qps: args.kube_api_qps,
        burst: args.kube_api_burst,
        max_in_flight: args.kube_api_max_in_flight,
    }
}

async fn client_config(kubeconfig: Option<&Path>) -> Result<Config, RunError> {
    Ok(match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|source| RunError::Kubeconfig {
                path: path.to_path_buf(),
                source,
            })?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| RunError::ClientConfig(e.to_string()))?
        }
        None => Config::infer()
            .await
            .map_err(|e| RunError::ClientConfig(e.to_string()))?,
    })
}

/// The names of Barge's CRDs (`<plural>.<group>`).
pub fn crd_names() -> Vec<String> {
    vec![
        format!("{}.{GROUP}", ComputeEnvironment::plural(&())),
        format!("{}.{GROUP}", JobQueue::plural(&())),
        format!("{}.{GROUP}", SchedulingPolicy::plural(&())),
        format!("{}.{GROUP}", JobDefinition::plural(&())),
        format!("{}.{GROUP}", Job::plural(&())),
    ]
}

fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| {
            conds
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// Waits until every Barge CRD is Established; `false` if shutdown came first.
pub async fn wait_for_crds(client: &Client, shutdown: &Shutdown) -> bool {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let names = crd_names();
    let mut last_report: Option<Vec<String>> = None;
    loop {
        let mut missing = Vec::new();
        for name in &names {
            match api.get_opt(name).await {
                Ok(Some(crd)) if is_established(&crd) => {}
                Ok(_) => missing.push(name.clone()),
                Err(err) => missing.push(format!("{name} ({err})")),
            }
        }
        if missing.is_empty() {
            info!("Barge's CRDs are established");
            return true;
        }
        if last_report.as_ref() != Some(&missing) {
            info!(missing = %missing.join(", "), "waiting for Barge's CRDs to be established (install them with the Helm chart or `kubectl apply -k config/crd`)");
            last_report = Some(missing);
        }
        tokio::select! {
            _ = shutdown.clone().wait() => return false,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// The operator settings from the flags.
pub fn operator_config(args: &OperatorArgs, identity: &str) -> OperatorConfig {
    OperatorConfig {
        array_pod_retention: args.array_pod_retention,
        status_coalesce_interval: Duration::from_millis(args.status_coalesce_ms),
        scheduler_interval: Duration::from_millis(args.scheduler_interval_ms.max(1)),
        pod_create_concurrency: args.pod_create_concurrency.max(1),
        queue_status_interval: Duration::from_millis(args.queue_status_interval_ms.max(1)),
        reconcile_concurrency: args.reconcile_concurrency,
        status_refresh_interval: Duration::from_secs(args.status_refresh_seconds.max(1)),
        identity: identity.to_string(),
        missing_dependency_grace: Duration::from_secs(args.dependency_grace_seconds),
        pod_create_give_up: Duration::from_secs(args.pod_create_give_up_seconds),
        providers: args.providers.clone(),
        job_events: args.job_events,
        finished_pod_retention: Some(Duration::from_secs(args.finished_pod_retention_seconds)),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn termination_signal() -> Result<impl std::future::Future<Output = ()>, RunError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(RunError::Signal)?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(RunError::Signal)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received; shutting down"),
            _ = int.recv() => info!("SIGINT received; shutting down"),
        }
    })
}

/// Runs `barge operator` until a signal stops it.
pub async fn run(args: OperatorArgs) -> Result<(), RunError> {
    let (trigger, shutdown) = Shutdown::new();
    let signal = termination_signal().await?;
    tokio::spawn(async move {
        signal.await;
        trigger.trigger();
    });
    run_until(args, shutdown).await
}

/// Runs the operator until `shutdown` (what [`run`] does after installing signal handlers; tests
/// call it directly).
pub async fn run_until(args: OperatorArgs, shutdown: Shutdown) -> Result<(), RunError> {
    let identity = identity(args.identity.as_deref());
    let metrics = Arc::new(Metrics::new());
    let throttle = Throttle::start(kube_api_limits(&args), metrics.kube_api.clone());
    let client = throttled_client(args.kubeconfig.as_deref(), throttle).await?;
    info!(%identity, providers = %args.providers, "starting the Barge operator");

    // HTTP endpoints first, so liveness answers while we wait for CRDs.
    let ready = Arc::new(AtomicBool::new(false));
    let endpoints = Endpoints {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let (bound, http) = metrics::serve(args.metrics_addr, endpoints, shutdown.clone().wait())
        .await
        .map_err(|source| RunError::Bind {
            addr: args.metrics_addr,
            source,
        })?;
    println!("metrics listening on http://{bound}");
    info!(addr = %bound, "serving /metrics, /healthz and /readyz");

    if !wait_for_crds(&client, &shutdown).await {
        return Ok(());
    }

    let (caches, cache_tasks) = Caches::start(client.clone());
    // Ready (and leading, and scheduling) once every kind is listed, the jobs possibly without
    // their finished history, which is listed meanwhile (see `Caches::all_jobs_listed`).
    tokio::select! {
        synced = caches.wait_until_schedulable() => synced.map_err(|_| RunError::Caches)?,
        _ = shutdown.clone().wait() => {
            cache_tasks.iter().for_each(|t| t.abort());
            return Ok(());
        }
    }
    ready.store(true, Ordering::Relaxed);
    info!("caches synced");

    // Leadership.
    let lease_namespace = args
        .lease_namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let (_always_leading, mut leading, elector) = if args.leader_election {
        let timings = LeaseTimings {
            lease_duration: Duration::from_secs(args.lease_duration_seconds.max(1)),
            renew_deadline: Duration::from_secs(args.lease_renew_deadline_seconds.max(1)),
            retry_period: Duration::from_secs(args.lease_retry_period_seconds.max(1)),
        };
        info!(lease = %args.lease_name, namespace = %lease_namespace, "campaigning for leadership");
        let (rx, task) = LeaderElector::new(
            client.clone(),
            &lease_namespace,
            &args.lease_name,
            &identity,
            timings,
        )
        .spawn();
        (None, rx, Some(task))
    } else {
        let (tx, rx) = watch::channel(true);
        (Some(tx), rx, None)
    };
    tokio::select! {
        led = async { leading.wait_for(|l| *l).await.is_ok() } => if !led { return Err(RunError::LostLeadership(args.lease_name.clone())) },
        _ = shutdown.clone().wait() => {
            stop_background(elector, cache_tasks, http).await;
            return Ok(());
        }
    }

    let (events, events_task) = EventPublisher::start(
        client.clone(),
        &identity,
        metrics.clone(),
        DEFAULT_QUEUE_CAPACITY,
    );
    let ctx = Context::new(
        client.clone(),
        caches.clone(),
        metrics.clone(),
        events,
        operator_config(&args, &identity),
    );
    let tasks = spawn_workers(ctx.clone(), shutdown.clone());
    info!(
        controllers = tasks.len(),
        "leading: controllers and scheduler started"
    );

    let outcome = tokio::select! {
        _ = shutdown.clone().wait() => Ok(()),
        _ = async { leading.wait_for(|l| !*l).await.map(|_| ()) } => Err(RunError::LostLeadership(args.lease_name.clone())),
    };
    if outcome.is_err() {
        warn!("lost leadership; stopping the controllers");
        tasks.iter().for_each(|t| t.abort());
    } else {
        // Controllers stop on the shutdown signal; give in-flight reconciles time to finish.
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(Duration::from_secs(20), all)
            .await
            .is_err()
        {
            warn!("controllers did not stop within 20 s");
        }
    }
    drop(ctx);
    events_task.abort();
    stop_background(elector, cache_tasks, http).await;
    if args.leader_election && outcome.is_ok() {
        match LeaderElector::release(client, &lease_namespace, &args.lease_name, &identity).await {
            Ok(()) => info!(lease = %args.lease_name, "released the lease"),
            Err(err) => warn!(error = %err, "could not release the lease"),
        }
    }
    outcome
}

async fn stop_background(
    elector: Option<tokio::task::JoinHandle<()>>,
    caches: Vec<tokio::task::JoinHandle<()>>,
    http: tokio::task::JoinHandle<()>,
) {
    if let Some(task) = elector {
        task.abort();
    }
    caches.iter().for_each(|t| t.abort());
    let _ = tokio::time::timeout(Duration::from_secs(5), http).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: OperatorArgs,
    }

    #[test]
    fn the_deployment_flags_parse() {
        // The flags of charts/barge/templates/deployment.yaml and config/manager/deployment.yaml.
        let cli = Cli::try_parse_from([
            "barge",
            "--metrics-addr=0.0.0.0:8080",
            "--log-level=info",
            "--log-format=json",
            "--array-pod-retention=all",
            "--leader-election",
            "--lease-name=barge-operator",
        ])
        .expect("deployment flags parse");
        assert!(cli.args.leader_election);
        assert_eq!(cli.args.log_format, LogFormat::Json);
        assert_eq!(cli.args.array_pod_retention, ArrayPodRetention::All);
        let config = operator_config(&cli.args, "me");
        assert_eq!(config.status_coalesce_interval, Duration::from_secs(1));
        assert_eq!(config.identity, "me");
    }

    #[test]
    fn identity_prefers_the_explicit_name() {
        assert_eq!(identity(Some("barge-0")), "barge-0");
        let generated = identity(None);
        assert!(
            generated.ends_with(&format!("-{}", std::process::id())),
            "{generated}"
        );
    }

    #[test]
    fn crd_names_are_plural_dot_group() {
        assert_eq!(
            crd_names(),
            [
                "computeenvironments.batch.barge.dev",
                "jobqueues.batch.barge.dev",
                "schedulingpolicies.batch.barge.dev",
                "jobdefinitions.batch.barge.dev",
                "jobs.batch.barge.dev",
            ]
        );
    }

    #[tokio::test]
    async fn shutdown_resolves_waiters() {
        let (trigger, shutdown) = Shutdown::new();
        assert!(!shutdown.is_requested());
        let waiter = tokio::spawn(shutdown.clone().wait());
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("resolved")
            .expect("joined");
        assert!(shutdown.is_requested());
    }
}
