//! Barge's own store of job records, in place of kube's reflector store for jobs.
//!
//! kube's reflector store keys every object by an `ObjectRef` (96 B inline, with its own copies
//! of the name, namespace, uid and resourceVersion strings): ~0.23 KB per queued job for the
//! map slot and those strings alone. [`JobStore`] keys a record by its id (`namespace/name`,
//! interned: the very `Arc<str>` the record and the job indexes already hold), one pointer per
//! slot besides the record's.
//!
//! Semantics are those of kube's reflector `Writer` and `Store`, event for event: `Apply`
//! inserts or replaces, `Delete` removes, and a (re)list — `Init`, `InitApply`…, `InitDone` —
//! fills a buffer that replaces the content at `InitDone` (so a job missing from the new list
//! is gone), which also makes the store ready ([`JobStore::wait_until_ready`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use kube::runtime::watcher;

use super::JobRecord;

type Records = HashMap<Arc<str>, Arc<JobRecord>>;

/// The readers' side of the job store: cheap to clone, all clones see one store.
#[derive(Clone)]
pub struct JobStore {
    records: Arc<RwLock<Records>>,
    ready: tokio::sync::watch::Sender<bool>,
}

impl JobStore {
    /// An empty store, not ready, and its writer.
    pub fn new() -> (JobStore, JobStoreWriter) {
        let store = JobStore {
            records: Arc::new(RwLock::new(HashMap::new())),
            ready: tokio::sync::watch::Sender::new(false),
        };
        let writer = JobStoreWriter {
            store: store.clone(),
            buffer: HashMap::new(),
        };
        (store, writer)
    }

    /// The record of job `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<JobRecord>> {
        let id = format!("{namespace}/{name}");
        self.get_id(&id)
    }

    /// The record with id `id` (`namespace/name`).
    pub fn get_id(&self, id: &str) -> Option<Arc<JobRecord>> {
        super::read(&self.records).get(id).cloned()
    }

    /// Every record, in no particular order.
    pub fn state(&self) -> Vec<Arc<JobRecord>> {
        super::read(&self.records).values().cloned().collect()
    }

    /// How many jobs the store holds.
    pub fn len(&self) -> usize {
        super::read(&self.records).len()
    }

    /// Whether the store holds no job.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the store has seen its first complete list.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Resolves once the store has seen its first complete list.
    pub async fn wait_until_ready(&self) {
        let mut ready = self.ready.subscribe();
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = ready.wait_for(|ready| *ready).await;
    }
}

/// The writer's side of the job store (one per store, driven by the jobs' watch).
pub struct JobStoreWriter {
    store: JobStore,
    /// The list in progress (between `Init` and `InitDone`).
    buffer: Records,
}

impl JobStoreWriter {
    /// The store this writer fills.
    pub fn store(&self) -> JobStore {
        self.store.clone()
    }

    /// Applies one watcher event as kube's reflector `Writer` does.
    pub fn apply_watcher_event(&mut self, event: &watcher::Event<JobRecord>) {
        match event {
            watcher::Event::Apply(record) => {
                let record = Arc::new(record.clone());
                super::write(&self.store.records).insert(record.id().clone(), record);
            }
            watcher::Event::Delete(record) => {
                super::write(&self.store.records).remove(&**record.id());
            }
            watcher::Event::Init => self.buffer = HashMap::new(),
            watcher::Event::InitApply(record) => {
                let record = Arc::new(record.clone());
                self.buffer.insert(record.id().clone(), record);
            }
            watcher::Event::InitDone => {
                let listed = std::mem::take(&mut self.buffer);
                let previous = std::mem::replace(&mut *super::write(&self.store.records), listed);
                // The old content goes outside the lock.
                drop(previous);
                self.store.ready.send_replace(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, version: &str) -> JobRecord {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "batch.barge.dev/v1alpha1", "kind": "Job",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                "resourceVersion": version},
            "spec": {"jobQueue": "q", "jobDefinition": "d:1"}
        }))
        .expect("a valid job")
    }

    fn version(store: &JobStore, name: &str) -> Option<String> {
        use kube::Resource;
        store
            .get("ns", name)
            .and_then(|r| r.meta().resource_version.clone())
    }

    #[test]
    fn applies_and_deletes_replace_and_remove_a_job() {
        let (store, mut writer) = JobStore::new();
        writer.apply_watcher_event(&watcher::Event::Apply(record("a", "1")));
        writer.apply_watcher_event(&watcher::Event::Apply(record("b", "2")));
        writer.apply_watcher_event(&watcher::Event::Apply(record("a", "3")));
        assert_eq!(store.len(), 2);
        assert_eq!(version(&store, "a").as_deref(), Some("3"));
        assert_eq!(
            store.get_id("ns/b").map(|r| r.id().clone()),
            Some("ns/b".into())
        );
        assert!(store.get("other", "a").is_none());
        writer.apply_watcher_event(&watcher::Event::Delete(record("a", "4")));
        assert!(store.get("ns", "a").is_none());
        assert_eq!(store.len(), 1);
        // Deleting what is not there changes nothing.
        writer.apply_watcher_event(&watcher::Event::Delete(record("zz", "5")));
        assert_eq!(store.len(), 1);
        // Apply events do not make the store ready: only a complete list does.
        assert!(!store.is_ready());
    }

    #[tokio::test]
    async fn a_relist_replaces_the_content_at_its_end_and_makes_the_store_ready() {
        let (store, mut writer) = JobStore::new();
        let waiting = {
            let store = store.clone();
            tokio::spawn(async move { store.wait_until_ready().await })
        };
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(record("a", "1")));
        writer.apply_watcher_event(&watcher::Event::InitApply(record("b", "1")));
        // Until the list is complete the store shows what it had (nothing).
        assert!(store.is_empty());
        assert!(!store.is_ready());
        writer.apply_watcher_event(&watcher::Event::InitDone);
        assert_eq!(store.len(), 2);
        assert!(store.is_ready());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("ready wakes the waiter")
            .expect("the waiter ran");

        // A relist: the old content stays visible until `InitDone`; then a job missing from
        // the new list is gone, and one that changed has its new version.
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(record("b", "7")));
        writer.apply_watcher_event(&watcher::Event::InitApply(record("c", "7")));
        assert_eq!(version(&store, "a").as_deref(), Some("1"));
        assert!(store.get("ns", "c").is_none());
        writer.apply_watcher_event(&watcher::Event::InitDone);
        assert!(store.get("ns", "a").is_none());
        assert_eq!(version(&store, "b").as_deref(), Some("7"));
        assert_eq!(version(&store, "c").as_deref(), Some("7"));
        let mut ids: Vec<_> = store.state().iter().map(|r| r.id().to_string()).collect();
        ids.sort();
        assert_eq!(ids, ["ns/b", "ns/c"]);
        assert!(store.is_ready());

        // An `Init` starts a fresh buffer: a list abandoned half-way leaves nothing behind.
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(record("d", "8")));
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(record("e", "9")));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let ids: Vec<_> = store.state().iter().map(|r| r.id().to_string()).collect();
        assert_eq!(ids, ["ns/e"]);
    }
}
