//! Container logs: a bounded in-memory buffer per container run (the last `LOG_LIMIT_BYTES`,
//! each line stamped with its arrival time), and the kubelet's read-only HTTPS endpoint
//! `/containerLogs/{namespace}/{pod}/{container}` with `follow`, `tailLines`, `timestamps`,
//! `limitBytes`, `sinceSeconds`, `sinceTime` and `previous`, which the API server's
//! `pods/log` proxies to. The process runtime writes lines; the HTTP handlers read them.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use jiff::Timestamp;
use serde::Deserialize;
use tokio::sync::watch;

/// How much of each container run's output is kept.
pub const LOG_LIMIT_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
struct Line {
    at: Timestamp,
    /// The text, ending with '\n'.
    text: String,
}

#[derive(Debug, Default)]
struct Buffer {
    lines: VecDeque<Line>,
    bytes: usize,
    /// Sequence number of `lines[0]`.
    first_seq: u64,
    finished: bool,
}

impl Buffer {
    fn push(&mut self, line: Line) {
        self.bytes += line.text.len();
        self.lines.push_back(line);
        while self.bytes > LOG_LIMIT_BYTES {
            match self.lines.pop_front() {
                Some(old) => {
                    self.bytes -= old.text.len();
                    self.first_seq += 1;
                }
                None => break,
            }
        }
    }
    fn end_seq(&self) -> u64 {
        self.first_seq + self.lines.len() as u64
    }
}

#[derive(Debug, Default)]
struct Runs {
    current: Buffer,
    previous: Option<Buffer>,
}

/// The log of one container (its current and previous run).
#[derive(Debug)]
pub struct ContainerLog {
    pod_uid: String,
    runs: Mutex<Runs>,
    version: watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ContainerLog {
    fn new(pod_uid: &str) -> Self {
        Self {
            pod_uid: pod_uid.to_string(),
            runs: Mutex::new(Runs::default()),
            version: watch::Sender::new(0),
        }
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Starts a new run (a restart keeps the last one as `previous`).
    pub fn begin_run(&self) {
        {
            let mut runs = lock(&self.runs);
            if !runs.current.lines.is_empty() || runs.current.finished {
                let done = std::mem::take(&mut runs.current);
                runs.previous = Some(done);
            }
        }
        self.bump();
    }

    /// Appends text (one line; a missing trailing newline is added).
    pub fn append(&self, text: &str) {
        let mut text = text.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        lock(&self.runs).current.push(Line {
            at: Timestamp::now(),
            text,
        });
        self.bump();
    }

    /// Marks the current run finished (followers stop).
    pub fn finish(&self) {
        lock(&self.runs).current.finished = true;
        self.bump();
    }

    /// The current run's text (for tests and diagnostics).
    pub fn text(&self) -> String {
        lock(&self.runs)
            .current
            .lines
            .iter()
            .map(|l| l.text.as_str())
            .collect()
    }
}

/// All container logs of this kubelet, by namespace/pod/container.
#[derive(Debug, Default)]
pub struct LogStore {
    /// By (namespace, pod, container): a pod's containers are neighbours, so forgetting a pod
    /// reads only its own entries (a scan of every log per pod was O(n²) over an array).
    logs: Mutex<BTreeMap<(String, String, String), Arc<ContainerLog>>>,
}

impl LogStore {
    /// The log of a container of the pod with `uid`, created (or replaced, for a new pod of the
    /// same name) on first use.
    pub fn container(&self, ns: &str, pod: &str, uid: &str, container: &str) -> Arc<ContainerLog> {
        let mut logs = lock(&self.logs);
        let key = (ns.to_string(), pod.to_string(), container.to_string());
        match logs.get(&key) {
            Some(l) if l.pod_uid == uid => l.clone(),
            _ => {
                let l = Arc::new(ContainerLog::new(uid));
                logs.insert(key, l.clone());
                l
            }
        }
    }

    fn get(&self, ns: &str, pod: &str, container: &str) -> Option<Arc<ContainerLog>> {
        lock(&self.logs)
            .get(&(ns.to_string(), pod.to_string(), container.to_string()))
            .cloned()
    }

    /// Forgets the logs of a pod that is gone.
    pub fn remove_pod(&self, ns: &str, pod: &str, uid: &str) {
        let mut logs = lock(&self.logs);
        let from = (ns.to_string(), pod.to_string(), String::new());
        let gone: Vec<_> = logs
            .range(from..)
            .take_while(|((n, p, _), _)| n == ns && p == pod)
            .filter(|(_, l)| l.pod_uid == uid)
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            logs.remove(&k);
        }
        drop(logs);
    }
}

/// Query parameters of `/containerLogs` (the kubelet's names).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    #[serde(default)]
    pub follow: Option<String>,
    #[serde(default)]
    pub previous: Option<String>,
    #[serde(default)]
    pub timestamps: Option<String>,
    #[serde(default)]
    pub tail_lines: Option<i64>,
    #[serde(default)]
    pub limit_bytes: Option<i64>,
    #[serde(default)]
    pub since_seconds: Option<i64>,
    #[serde(default)]
    pub since_time: Option<String>,
}

fn flag(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true") | Some("1") | Some(""))
}

/// What a log request selects, decided once from the query.
struct Selection {
    timestamps: bool,
    tail: Option<usize>,
    since: Option<Timestamp>,
}

impl Selection {
    fn from_query(q: &LogQuery, now: Timestamp) -> Result<Self, String> {
        let since = match (&q.since_time, q.since_seconds) {
            (Some(t), _) => Some(
                t.parse::<Timestamp>()
                    .map_err(|e| format!("invalid sinceTime {t:?}: {e}"))?,
            ),
            (None, Some(s)) if s > 0 => Some(
                now.checked_sub(jiff::SignedDuration::from_secs(s))
                    .map_err(|e| e.to_string())?,
            ),
            (None, Some(s)) => return Err(format!("sinceSeconds must be positive, got {s}")),
            (None, None) => None,
        };
        if let Some(n) = q.limit_bytes {
            if n < 1 {
                return Err(format!("limitBytes must be positive, got {n}"));
            }
        }
        Ok(Self {
            timestamps: flag(&q.timestamps),
            tail: q.tail_lines.map(|n| n.max(0) as usize),
            since,
        })
    }

    fn render(&self, line: &Line) -> String {
        if self.timestamps {
            // RFC 3339 with nanoseconds, as the kubelet prints them.
            format!("{} {}", line.at, line.text)
        } else {
            line.text.clone()
        }
    }
}

/// The text of a finished read and the sequence number to follow from.
fn initial_chunk(buf: &Buffer, sel: &Selection) -> (String, u64) {
    let eligible: Vec<&Line> = buf
        .lines
        .iter()
        .filter(|l| sel.since.is_none_or(|s| l.at >= s))
        .collect();
    let skip = sel
        .tail
        .map(|t| eligible.len().saturating_sub(t))
        .unwrap_or(0);
    let text = eligible[skip..].iter().map(|l| sel.render(l)).collect();
    (text, buf.end_seq())
}

fn truncate(text: &mut String, remaining: &mut Option<usize>) {
    if let Some(left) = remaining {
        if text.len() > *left {
            let mut cut = *left;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        *left -= text.len();
    }
}

async fn container_logs(
    State(store): State<Arc<LogStore>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let Some(log) = store.get(&ns, &pod, &container) else {
        return (StatusCode::NOT_FOUND, format!("container {container:?} in pod {pod:?} (namespace {ns:?}) is not available on this node\n")).into_response();
    };
    let sel = match Selection::from_query(&q, Timestamp::now()) {
        Ok(s) => s,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let mut remaining = q.limit_bytes.map(|n| n as usize);
    let plain = [(header::CONTENT_TYPE, "text/plain")];
    if flag(&q.previous) {
        let runs = lock(&log.runs);
        let Some(prev) = &runs.previous else {
            return (
                StatusCode::BAD_REQUEST,
                format!("previous terminated container {container:?} in pod {pod:?} not found\n"),
            )
                .into_response();
        };
        let (mut text, _) = initial_chunk(prev, &sel);
        truncate(&mut text, &mut remaining);
        return (plain, text).into_response();
    }
    let (mut first, next) = initial_chunk(&lock(&log.runs).current, &sel);
    truncate(&mut first, &mut remaining);
    if !flag(&q.follow) {
        return (plain, first).into_response();
    }
    let rx = log.version.subscribe();
    struct Follow {
        log: Arc<ContainerLog>,
        rx: watch::Receiver<u64>,
        next: u64,
        remaining: Option<usize>,
        sel: Selection,
        first: Option<String>,
    }
    let state = Follow {
        log,
        rx,
        next,
        remaining,
        sel,
        first: Some(first),
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        if let Some(first) = st.first.take() {
            return Some((Ok::<_, std::io::Error>(first), st));
        }
        loop {
            if st.remaining == Some(0) {
                return None;
            }
            let (chunk, finished) = {
                let runs = lock(&st.log.runs);
                let buf = &runs.current;
                let from = st.next.max(buf.first_seq);
                let start = (from - buf.first_seq) as usize;
                let text: String = buf
                    .lines
                    .iter()
                    .skip(start)
                    .map(|l| st.sel.render(l))
                    .collect();
                st.next = buf.end_seq();
                (text, buf.finished)
            };
            if !chunk.is_empty() {
                let mut chunk = chunk;
                truncate(&mut chunk, &mut st.remaining);
                return Some((Ok(chunk), st));
            }
            if finished || st.rx.changed().await.is_err() {
                return None;
            }
        }
    });
    (plain, Body::from_stream(stream)).into_response()
}

/// Serves the log endpoint over HTTPS, with a self-signed certificate made at start as a real
/// kubelet does, on the node address at `port` (0 = a free port); returns the bound address.
pub async fn serve(
    store: Arc<LogStore>,
    port: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let tcp = tokio::net::TcpListener::bind((super::consts::NODE_IP, port)).await?;
    let addr = tcp.local_addr()?;
    let config = crate::tls::self_signed_server(&[super::consts::NODE_IP, "localhost"])
        .map_err(std::io::Error::other)?;
    let listener = crate::tls::HttpsListener::new(tcp, config)?;
    let app = Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .with_state(store);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "kubelet log server stopped");
        }
    });
    Ok((addr, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GET over HTTPS, as the API server's `pods/log` proxy does it.
    async fn get_text(addr: SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = crate::tls::connect_kubelet(
            &crate::tls::kubelet_client(),
            &addr.ip().to_string(),
            addr.port(),
        )
        .await
        .expect("TLS handshake with the kubelet");
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.expect("read");
        let text = String::from_utf8_lossy(&out).to_string();
        let code = text[9..12].parse().expect("status code");
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (code, body)
    }

    /// Decodes a chunked body.
    fn dechunk(body: &str) -> String {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        out
    }

    #[tokio::test]
    async fn serves_tail_limit_timestamps_previous_and_follow() {
        let store = Arc::new(LogStore::default());
        let log = store.container("ns", "p", "uid1", "c");
        log.begin_run();
        for i in 1..=5 {
            log.append(&format!("line {i}"));
        }
        let (addr, _task) = serve(store.clone(), 0, std::future::pending())
            .await
            .expect("serve");
        let (code, body) = get_text(addr, "/containerLogs/ns/p/c").await;
        assert_eq!(code, 200);
        assert_eq!(body, "line 1\nline 2\nline 3\nline 4\nline 5\n");
        let (_, body) = get_text(addr, "/containerLogs/ns/p/c?tailLines=2").await;
        assert_eq!(body, "line 4\nline 5\n");
        let (_, body) = get_text(addr, "/containerLogs/ns/p/c?limitBytes=9").await;
        assert_eq!(body, "line 1\nli");
        let (_, body) = get_text(addr, "/containerLogs/ns/p/c?timestamps=true&tailLines=1").await;
        let (ts, rest) = body.split_once(' ').expect("timestamp");
        assert!(ts.parse::<Timestamp>().is_ok(), "{ts}");
        assert_eq!(rest, "line 5\n");
        let (code, _) = get_text(addr, "/containerLogs/ns/p/other").await;
        assert_eq!(code, 404);
        let (code, _) = get_text(addr, "/containerLogs/ns/p/c?previous=true").await;
        assert_eq!(code, 400);

        // follow: existing lines, then new ones, until the run finishes.
        let follower = tokio::spawn(async move {
            get_text(addr, "/containerLogs/ns/p/c?follow=true&tailLines=1").await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        log.append("line 6");
        log.finish();
        let (_, body) = tokio::time::timeout(std::time::Duration::from_secs(5), follower)
            .await
            .expect("follow ended")
            .expect("join");
        assert_eq!(dechunk(&body), "line 5\nline 6\n");

        log.begin_run();
        log.append("second run");
        let (_, body) = get_text(addr, "/containerLogs/ns/p/c?previous=true&tailLines=1").await;
        assert_eq!(body, "line 6\n");
        let (_, body) = get_text(addr, "/containerLogs/ns/p/c").await;
        assert_eq!(body, "second run\n");
        store.remove_pod("ns", "p", "uid1");
        assert_eq!(get_text(addr, "/containerLogs/ns/p/c").await.0, 404);
    }

    /// Forgetting a pod forgets its containers' logs, only if they are that pod's (its uid), and
    /// no other pod's: not a namesake in another namespace, not a pod whose name it prefixes.
    #[test]
    fn removing_a_pod_forgets_only_its_own_logs() {
        let store = LogStore::default();
        for (ns, pod, uid, c) in [
            ("ns", "p", "u1", "a"),
            ("ns", "p", "u1", "b"),
            ("ns", "p2", "u2", "a"),
            ("ns", "o", "u3", "a"),
            ("other", "p", "u4", "a"),
        ] {
            store.container(ns, pod, uid, c).append("x");
        }
        store.remove_pod("ns", "p", "someone-else");
        assert!(store.get("ns", "p", "a").is_some());
        store.remove_pod("ns", "p", "u1");
        assert!(store.get("ns", "p", "a").is_none());
        assert!(store.get("ns", "p", "b").is_none());
        for (ns, pod) in [("ns", "p2"), ("ns", "o"), ("other", "p")] {
            assert!(store.get(ns, pod, "a").is_some(), "{ns}/{pod}");
        }
    }

    #[test]
    fn buffer_keeps_only_the_last_mebibyte() {
        let log = ContainerLog::new("u");
        let big = "x".repeat(1023);
        for _ in 0..2048 {
            log.append(&big);
        }
        let runs = lock(&log.runs);
        assert!(runs.current.bytes <= LOG_LIMIT_BYTES);
        assert_eq!(runs.current.lines.len(), 1024);
        assert_eq!(runs.current.first_seq, 1024);
    }
}
