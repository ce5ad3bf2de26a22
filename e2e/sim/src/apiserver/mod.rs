//! The simulated Kubernetes API server.
//!
//! Requests enter [`dispatch`]; those impersonating a user are authenticated and authorized by
//! RBAC first ([`auth`]), the others are `system:admin` and go straight on. Then `/sim/v1/...`
//! goes to the admin endpoints, discovery and OpenAPI
//! paths are rendered from the [`registry::Registry`], and resource URLs are parsed into a
//! [`paths::Target`], counted in the stats, passed through fault injection and handed to
//! handlers.rs (CRUD), watch.rs or logs.rs. All state lives in [`State`] (store + registry) behind
//! one mutex; writes follow write.rs / deletion.rs; the built-in controllers (GC, namespaces,
//! CRD cleanup, pod GC, ClusterRole aggregation) run as one background task.

pub mod admin;
pub mod auth;
pub mod crd;
pub mod deletion;
pub mod discovery;
pub mod events;
pub mod faults;
pub mod handlers;
pub mod inflight;
pub mod kubeconfig;
pub mod logs;
pub mod machinery;
pub mod objects;
pub mod openapi;
pub mod paths;
pub mod protobuf;
pub mod registry;
pub mod scale;
pub mod status;
pub mod store;
pub mod validate;
pub mod watch;
pub mod write;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::json;
use tokio::sync::{watch as tokio_watch, Notify};

use faults::{Faults, Stats, StatsSnapshot};
use handlers::Req;
use paths::{parse_target, Query};
use registry::Registry;
use status::{json_bytes, json_response, ApiError, JSON};
use store::Store;
use write::WriteOpts;

/// Namespaces present in a fresh cluster.
pub const INITIAL_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Server tuning.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Port on 127.0.0.1 (0 = a free one).
    pub port: u16,
    /// Watch events kept per resource for watches resuming from an older resourceVersion.
    pub watch_history: usize,
    /// Events buffered per resource for live watchers before a lagging watcher is closed.
    pub watch_buffer: usize,
    /// Interval of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Added to every write request (create, update, patch, delete, deletecollection) before
    /// it is carried out, like the round trip to etcd a real API server's writes wait for.
    pub write_latency: Duration,
    /// kube-apiserver's `--max-requests-inflight` / `--max-mutating-requests-inflight`
    /// ([`inflight`]): requests beyond them are refused with 429 (0 = no limit; the default
    /// here is off, `barge-sim serve` uses upstream's 400 / 200).
    pub max_in_flight: inflight::MaxInFlight,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: 0,
            watch_history: 20_000,
            watch_buffer: 16_384,
            bookmark_interval: Duration::from_secs(5),
            write_latency: Duration::ZERO,
            max_in_flight: inflight::MaxInFlight::default(),
        }
    }
}

/// Everything behind the store lock.
pub struct State {
    pub store: Store,
    pub registry: Registry,
    next_ip: u32,
    /// Parsed RBAC objects for authorizing impersonated requests (see [`ApiServer::rbac_snapshot`]).
    pub rbac: Option<Arc<auth::rbac::RbacSnapshot>>,
    /// ClusterRoles revision the aggregation controller last settled ([`auth::aggregation`]).
    pub aggregation_seen_rv: u64,
}

impl State {
    /// The next ClusterIP host number for Services.
    pub fn next_service_ip(&mut self) -> u32 {
        self.next_ip += 1;
        self.next_ip
    }
}

/// The server's shared state.
pub struct ApiServer {
    pub state: Mutex<State>,
    pub faults: Faults,
    pub stats: Stats,
    /// The max-in-flight budgets ([`inflight`]).
    pub inflight: inflight::InFlight,
    pub wake_controllers: Notify,
    /// Impersonated requests, for tests ([`auth::reqlog`]).
    pub request_log: auth::reqlog::RequestLog,
    pub config: ServerConfig,
    pub shutdown: tokio_watch::Receiver<bool>,
    addr: Mutex<String>,
}

impl ApiServer {
    /// A cluster with the built-in kinds and initial namespaces.
    pub fn new(config: ServerConfig) -> (Arc<ApiServer>, tokio_watch::Sender<bool>) {
        let mut store = Store::new(config.watch_history, config.watch_buffer);
        let registry = Registry::with_builtins();
        for d in registry.all_storages() {
            store.ensure_table(&d.storage, 0);
        }
        let mut state = State {
            store,
            registry,
            next_ip: 0,
            rbac: None,
            aggregation_seen_rv: 0,
        };
        if let Some(ns_def) = state.registry.get("", "v1", "namespaces") {
            for ns in INITIAL_NAMESPACES {
                let obj =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                if let Err(e) = write::create(
                    &mut state,
                    &ns_def,
                    obj,
                    None,
                    &mut WriteOpts::controller("kube-apiserver"),
                ) {
                    tracing::error!(namespace = ns, error = ?e.body, "creating initial namespace failed");
                }
            }
        }
        auth::bootstrap::install(&mut state);
        let (tx, rx) = tokio_watch::channel(false);
        let api = ApiServer {
            state: Mutex::new(state),
            faults: Faults::default(),
            stats: Stats::default(),
            inflight: inflight::InFlight::new(config.max_in_flight),
            wake_controllers: Notify::new(),
            request_log: auth::reqlog::RequestLog::default(),
            config,
            shutdown: rx,
            addr: Mutex::new(String::new()),
        };
        (Arc::new(api), tx)
    }

    pub fn stats_snapshot(&self) -> StatsSnapshot {
        let committed = self.state.lock().map(|s| s.store.writes).unwrap_or(0);
        self.stats.snapshot(committed)
    }

    fn addr_string(&self) -> String {
        self.addr.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

/// A server listening on loopback.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub api: Arc<ApiServer>,
    shutdown: tokio_watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    controllers: tokio::task::JoinHandle<()>,
}

/// Bind 127.0.0.1:port and serve.
pub async fn start(config: ServerConfig) -> std::io::Result<RunningServer> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
    let addr = listener.local_addr()?;
    let (api, shutdown) = ApiServer::new(config);
    if let Ok(mut a) = api.addr.lock() {
        *a = addr.to_string();
    }
    let app = Router::new().fallback(dispatch).with_state(api.clone());
    let mut stop = api.shutdown.clone();
    let server = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "API server stopped with an error");
        }
    });
    let controllers = tokio::spawn(deletion::controller_loop(api.clone()));
    Ok(RunningServer {
        addr,
        api,
        shutdown,
        server,
        controllers,
    })
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop serving: watches end, connections close (bounded wait).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.controllers).await;
    }
}

fn verb_of(method: &Method, name: bool, watch: bool) -> &'static str {
    match *method {
        Method::GET if watch => "watch",
        Method::GET if name => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if name => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

fn content_type(headers: &http::HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(JSON)
        .to_string()
}

/// The single entry point of every request. Requests with impersonation headers are
/// authenticated, admitted by the max-in-flight filter and authorized first, in kube-apiserver's
/// filter order ([`auth::serve_impersonated`]); the others are
/// `system:admin` and go straight to [`serve`].
pub async fn dispatch(AxState(api): AxState<Arc<ApiServer>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if auth::impersonation::requested(&parts.headers) {
        return auth::serve_impersonated(api, parts, body).await;
    }
    serve(&api, parts, body, None, None).await
}

/// kube-apiserver's max-in-flight filter (`WithMaxInFlightLimit`, [`inflight`]) for one request
/// by `user` (None: `system:admin`): the slot it holds while it is served, or None when it is
/// refused (counted in the stats; the caller answers [`inflight::too_many_requests`]). The sim's
/// own `/sim/v1` endpoints are never counted.
pub fn admit_in_flight(
    api: &ApiServer,
    parts: &http::request::Parts,
    user: Option<&auth::UserInfo>,
) -> Option<inflight::Slot> {
    let path = parts.uri.path();
    if path.starts_with("/sim/v1") {
        return Some(inflight::Slot::none());
    }
    let class = inflight::classify(
        &parts.method,
        Query::parse(parts.uri.query()).flag("watch"),
        parse_target(path)
            .as_ref()
            .and_then(|t| t.subresource.as_deref()),
    );
    match api.inflight.admit(class, user) {
        Ok(slot) => Some(slot),
        Err(mutating) => {
            api.stats.record_throttled(mutating);
            None
        }
    }
}

/// Serve an authorized request; `user` is the impersonated user (None: `system:admin`), `slot`
/// its max-in-flight slot when it was already admitted (impersonated requests are, before
/// authorization, as in kube-apiserver's filter chain); None admits it here.
pub async fn serve(
    api: &Arc<ApiServer>,
    parts: http::request::Parts,
    body: Body,
    user: Option<Arc<auth::UserInfo>>,
    slot: Option<inflight::Slot>,
) -> Response {
    let path = parts.uri.path().to_string();
    let query = Query::parse(parts.uri.query());
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("request body too large or unreadable: {e}"),
                None,
            )
            .into_response()
        }
    };
    if path.starts_with("/sim/v1") {
        return admin::handle(api, &parts.method, &path, &body)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    // kube-apiserver's max-in-flight filter runs before the request is routed; the slot is held
    // until the response is built. Impersonated requests took theirs before authorization.
    let _slot = match slot {
        Some(slot) => slot,
        None => match admit_in_flight(api, &parts, user.as_deref()) {
            Some(slot) => slot,
            None => return inflight::too_many_requests(),
        },
    };
    let accept = parts
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let ok = |v: serde_json::Value| json_response(200, json_bytes(&v));
    match path.trim_end_matches('/') {
        "/version" => return ok(discovery::version()),
        "/healthz" | "/livez" | "/readyz" => {
            let mut r = Response::new(Body::from("ok"));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            );
            return r;
        }
        "/api" | "/apis" => {
            let core = path.trim_end_matches('/') == "/api";
            let reg = match api.state.lock() {
                Ok(s) => s.registry.clone(),
                Err(_) => return ApiError::internal("store poisoned").into_response(),
            };
            if let Some(v) = discovery::wants_aggregated(&accept) {
                let body = discovery::aggregated(&reg, core, &format!("apidiscovery.k8s.io/{v}"));
                let mut r = json_response(200, json_bytes(&body));
                let ct = format!(
                    "application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"
                );
                if let Ok(h) = HeaderValue::from_str(&ct) {
                    r.headers_mut().insert(http::header::CONTENT_TYPE, h);
                }
                return r;
            }
            return ok(if core {
                discovery::core_versions(&api.addr_string())
            } else {
                discovery::group_list(&reg)
            });
        }
        p if p.starts_with("/openapi/") => {
            let reg = match api.state.lock() {
                Ok(s) => s.registry.clone(),
                Err(_) => return ApiError::internal("store poisoned").into_response(),
            };
            return openapi::serve(&reg, p).unwrap_or_else(IntoResponse::into_response);
        }
        _ => {}
    }
    let Some(target) = parse_target(&path) else {
        // Discovery of one group or group/version.
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let reg = match api.state.lock() {
            Ok(s) => s.registry.clone(),
            Err(_) => return ApiError::internal("store poisoned").into_response(),
        };
        let doc = match segs.as_slice() {
            ["api", v] => discovery::resource_list(&reg, "", v),
            ["apis", g] => discovery::group(&reg, g),
            ["apis", g, v] => discovery::resource_list(&reg, g, v),
            _ => None,
        };
        return match doc {
            Some(d) => ok(d),
            None => ApiError::no_route(&path).into_response(),
        };
    };
    resource_request(api, parts, &body, target, query, user)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn resource_request(
    api: &Arc<ApiServer>,
    parts: http::request::Parts,
    body: &[u8],
    target: paths::Target,
    query: Query,
    user: Option<Arc<auth::UserInfo>>,
) -> Result<Response, ApiError> {
    let def = {
        let st = api
            .state
            .lock()
            .map_err(|_| ApiError::internal("store poisoned"))?;
        st.registry
            .get(&target.group, &target.version, &target.resource)
    };
    let Some(def) = def else {
        return Err(ApiError::no_route(parts.uri.path()));
    };
    let watch = query.flag("watch");
    let verb = verb_of(&parts.method, target.name.is_some(), watch);
    let resource_label = match &target.subresource {
        Some(s) => format!("{}/{s}", def.resource),
        None => def.resource.clone(),
    };
    api.stats.record(verb, &resource_label);
    let (fault, latency) = api.faults.injected(verb, &resource_label);
    let mut delay = Duration::from_millis(latency);
    if faults::WRITE_VERBS.contains(&verb) {
        delay += api.config.write_latency;
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(e) = fault {
        api.stats.record_fault();
        return Err(e);
    }
    if let Some(sub) = &target.subresource {
        if !def.has_sub(sub) {
            return Err(ApiError::no_route(parts.uri.path()));
        }
    }
    if def.create_only && parts.method != Method::POST {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            def.resource
        )));
    }
    if def.namespaced && target.namespace.is_none() && target.name.is_some() {
        return Err(ApiError::no_route(parts.uri.path()));
    }
    let ct = content_type(&parts.headers);
    let req = Req {
        api,
        def: def.clone(),
        target: target.clone(),
        query: query.clone(),
        headers: parts.headers,
        user,
    };
    let sub = target.subresource.as_deref();
    match (&parts.method, target.name.is_some(), sub) {
        (&Method::GET, false, None) if watch => {
            watch::watch(api, def, &target, &query, req.wants_table())
        }
        (&Method::GET, false, None) => handlers::list(&req),
        (&Method::GET, true, Some("log")) => logs::logs(api, &target, &query).await,
        (&Method::GET | &Method::PUT | &Method::PATCH, true, Some("scale")) => {
            scale::handle(&req, &parts.method, body, &ct)
        }
        (&Method::GET, true, None | Some("status")) => handlers::get(&req),
        (&Method::POST, false, None) => handlers::create(&req, body, &ct),
        (&Method::POST, true, Some("binding")) => handlers::bind(&req, body, &ct),
        (&Method::POST, true, Some("eviction")) => handlers::evict(&req, body, &ct),
        (&Method::PUT, true, None | Some("status") | Some("finalize")) => {
            handlers::update(&req, body, &ct)
        }
        (&Method::PATCH, true, None | Some("status")) => handlers::patch(&req, body, &ct),
        (&Method::DELETE, true, None) => handlers::delete(&req, body),
        (&Method::DELETE, false, None) => handlers::delete_collection(&req, body),
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            def.resource
        ))),
    }
}
