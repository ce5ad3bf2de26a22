//! Watch streams: newline-delimited JSON events from a resourceVersion, with initial events,
//! bookmarks, `sendInitialEvents` streaming lists, 410 Gone past the history, timeouts and the
//! drop-after-N-events fault.
//!
//! A watch takes the store lock once to read its backlog and subscribe to the resource's
//! broadcast channel, then runs as its own task: it filters events (namespace, label and field
//! selectors, with selector transitions turned into ADDED/DELETED as kube-apiserver does) and
//! writes lines into the response body. A watcher that falls behind the channel is closed; the
//! client resumes from its last resourceVersion.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::handlers::{render, Selectors};
use super::paths::{Query, Target};
use super::registry::ResourceDef;
use super::status::{ApiError, ApiResult, JSON};
use super::store::{EventType, Stored, WatchEvent};
use super::ApiServer;

/// Annotation on the bookmark that ends a streaming list's initial events.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// How an event looks to a watcher with a namespace and selectors (None: not for it).
pub fn classify(ev: &WatchEvent, ns: Option<&str>, sel: &Selectors) -> Option<EventType> {
    let m = |s: &Stored| ns.is_none_or(|n| s.namespace == n) && sel.matches(s);
    match ev.kind {
        EventType::Added => m(&ev.obj).then_some(EventType::Added),
        EventType::Deleted => {
            (m(&ev.obj) || ev.prev.as_deref().is_some_and(m)).then_some(EventType::Deleted)
        }
        EventType::Modified => match (ev.prev.as_deref().is_some_and(m), m(&ev.obj)) {
            (true, true) => Some(EventType::Modified),
            (false, true) => Some(EventType::Added),
            (true, false) => Some(EventType::Deleted),
            (false, false) => None,
        },
    }
}

fn line(kind: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn bookmark(def: &ResourceDef, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({INITIAL_EVENTS_END: "true"});
    }
    let obj = json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta});
    line("BOOKMARK", &serde_json::to_vec(&obj).unwrap_or_default())
}

fn error_line(status: &Value) -> Bytes {
    line("ERROR", &serde_json::to_vec(status).unwrap_or_default())
}

fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, std::convert::Infallible>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(JSON),
    );
    resp
}

enum Start {
    /// Send the current objects as ADDED first (no/"0" resourceVersion, or sendInitialEvents).
    Initial(Vec<Arc<Stored>>),
    /// Resume after a resourceVersion.
    From(Vec<Arc<WatchEvent>>),
}

/// Serve a watch request.
pub fn watch(
    api: &Arc<ApiServer>,
    def: Arc<ResourceDef>,
    target: &Target,
    q: &Query,
    wants_table: bool,
) -> ApiResult<Response> {
    let sel = Selectors::parse(q, &def)?;
    let table = wants_table.then(|| q.get("includeObject").unwrap_or("Metadata").to_string());
    let ns = target.namespace.clone();
    let bookmarks = q.flag("allowWatchBookmarks");
    let send_initial = q.get("sendInitialEvents") == Some("true");
    let timeout = q
        .int("timeoutSeconds")
        .filter(|t| *t > 0)
        .map(|t| t as u64)
        .unwrap_or_else(|| 1800 + fastrand::u64(..1800));
    let rv_param = q.get("resourceVersion").filter(|rv| *rv != "0");
    let from = match rv_param {
        Some(rv) if !send_initial => Some(rv.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: \"{rv}\": must be a non-negative integer"
            ))
        })?),
        _ => None,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let (start, brx, start_rv) = {
        let mut st = api
            .state
            .lock()
            .map_err(|_| ApiError::internal("store poisoned"))?;
        let current = st.store.rv;
        match from {
            Some(n) => match st.store.watch_from(&def.storage, n) {
                Ok((backlog, brx)) => (Start::From(backlog), brx, n),
                Err(too_old) => {
                    drop(st);
                    let status = ApiError::expired(format!(
                        "too old resource version: {n} ({})",
                        too_old.oldest
                    ))
                    .body;
                    let _ = tx.try_send(error_line(&status));
                    return Ok(stream_response(rx));
                }
            },
            None => {
                let objs = st.store.list(&def.storage, ns.as_deref(), None);
                let (_, brx) = st
                    .store
                    .watch_from(&def.storage, current)
                    .map_err(|_| ApiError::internal("watch history unavailable"))?;
                (Start::Initial(objs), brx, current)
            }
        }
    };
    let api = api.clone();
    tokio::spawn(async move {
        let task = WatchTask {
            api: api.clone(),
            def,
            ns,
            sel,
            tx,
            sent: 0,
            last_rv: start_rv,
            table,
        };
        task.run(
            start,
            brx,
            bookmarks,
            send_initial,
            Duration::from_secs(timeout),
        )
        .await;
    });
    Ok(stream_response(rx))
}

struct WatchTask {
    api: Arc<ApiServer>,
    def: Arc<ResourceDef>,
    ns: Option<String>,
    sel: Selectors,
    tx: mpsc::Sender<Bytes>,
    sent: u64,
    last_rv: u64,
    /// `includeObject` of a watch whose events carry Tables (`kubectl get -w`), if asked.
    table: Option<String>,
}

impl WatchTask {
    /// An event line for one object: the object itself, or a one-row Table of it.
    fn object_line(&self, kind: &str, s: &Stored) -> Bytes {
        if let Some(include) = &self.table {
            let v = super::handlers::served_value(&self.def, s);
            let t = super::machinery::table(
                &[v],
                self.def.custom,
                &self.def.group,
                &self.def.kind,
                &self.def.printer_columns,
                jiff::Timestamp::now(),
                include,
            );
            if let Ok(t) = t {
                return line(kind, &serde_json::to_vec(&t).unwrap_or_default());
            }
        }
        line(kind, &render(&self.def, s))
    }

    /// Send one event line; false when the watch must end (client gone or fault limit hit).
    async fn send(&mut self, b: Bytes) -> bool {
        if self.tx.send(b).await.is_err() {
            return false;
        }
        self.sent += 1;
        // Read per event, so a fault set while a watch is open applies to it too.
        self.api
            .faults
            .drop_watches_after()
            .is_none_or(|n| self.sent < n)
    }

    async fn event(&mut self, ev: &WatchEvent) -> bool {
        self.last_rv = self.last_rv.max(ev.rv);
        match classify(ev, self.ns.as_deref(), &self.sel) {
            Some(kind) => {
                let b = self.object_line(kind.as_str(), &ev.obj);
                self.send(b).await
            }
            None => true,
        }
    }

    async fn run(
        mut self,
        start: Start,
        mut brx: broadcast::Receiver<Arc<WatchEvent>>,
        bookmarks: bool,
        send_initial: bool,
        timeout: Duration,
    ) {
        let mut shutdown = self.api.shutdown.clone();
        match start {
            Start::Initial(objs) => {
                for s in objs {
                    if self.sel.matches(&s) {
                        let b = self.object_line("ADDED", &s);
                        if !self.send(b).await {
                            return;
                        }
                    }
                }
                if send_initial {
                    let b = bookmark(&self.def, self.last_rv, true);
                    if self.tx.send(b).await.is_err() {
                        return;
                    }
                }
            }
            Start::From(backlog) => {
                for ev in backlog {
                    if !self.event(&ev).await {
                        return;
                    }
                }
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(self.api.config.bookmark_interval);
        tick.tick().await;
        loop {
            tokio::select! {
                r = brx.recv() => match r {
                    Ok(ev) => if !self.event(&ev).await { return },
                    // Fell behind: close, as kube-apiserver does with slow watchers.
                    Err(_) => return,
                },
                _ = tick.tick(), if bookmarks => {
                    let rv = match self.api.state.lock() {
                        Ok(st) => if brx.is_empty() { st.store.rv } else { self.last_rv },
                        Err(_) => return,
                    };
                    self.last_rv = rv;
                    let b = bookmark(&self.def, rv, false);
                    if self.tx.send(b).await.is_err() { return }
                }
                _ = &mut deadline => return,
                _ = self.tx.closed() => return,
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::Registry;
    use serde_json::json;

    fn stored(ns: &str, label: &str) -> Arc<Stored> {
        Arc::new(Stored::new(
            &json!({"metadata": {"name": "o", "namespace": ns, "labels": {"tier": label}}}),
            1,
        ))
    }

    fn ev(kind: EventType, obj: Arc<Stored>, prev: Option<Arc<Stored>>) -> WatchEvent {
        WatchEvent {
            kind,
            rv: 2,
            obj,
            prev,
        }
    }

    #[test]
    fn selector_transitions_become_added_and_deleted() {
        let def = Registry::with_builtins()
            .get("", "v1", "configmaps")
            .unwrap();
        let sel = Selectors::parse(&Query::parse(Some("labelSelector=tier%3Dweb")), &def).unwrap();
        let web = stored("a", "web");
        let db = stored("a", "db");
        assert_eq!(
            classify(&ev(EventType::Added, web.clone(), None), None, &sel),
            Some(EventType::Added)
        );
        assert_eq!(
            classify(&ev(EventType::Added, db.clone(), None), None, &sel),
            None
        );
        assert_eq!(
            classify(
                &ev(EventType::Modified, web.clone(), Some(db.clone())),
                None,
                &sel
            ),
            Some(EventType::Added)
        );
        assert_eq!(
            classify(
                &ev(EventType::Modified, db.clone(), Some(web.clone())),
                None,
                &sel
            ),
            Some(EventType::Deleted)
        );
        assert_eq!(
            classify(
                &ev(EventType::Modified, web.clone(), Some(web.clone())),
                None,
                &sel
            ),
            Some(EventType::Modified)
        );
        assert_eq!(
            classify(
                &ev(EventType::Deleted, web.clone(), Some(web.clone())),
                None,
                &sel
            ),
            Some(EventType::Deleted)
        );
        assert_eq!(
            classify(&ev(EventType::Added, web, None), Some("b"), &sel),
            None,
            "other namespace"
        );
    }

    #[test]
    fn event_lines_and_bookmarks() {
        let def = Registry::with_builtins().get("", "v1", "pods").unwrap();
        let b = bookmark(&def, 42, true);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["type"], "BOOKMARK");
        assert_eq!(v["object"]["metadata"]["resourceVersion"], "42");
        assert_eq!(
            v["object"]["metadata"]["annotations"][INITIAL_EVENTS_END],
            "true"
        );
        assert_eq!(v["object"]["kind"], "Pod");
        assert!(b.ends_with(b"\n"));
        let l: serde_json::Value = serde_json::from_slice(&line("ADDED", b"{\"a\":1}")).unwrap();
        assert_eq!(l, json!({"type": "ADDED", "object": {"a": 1}}));
    }
}
