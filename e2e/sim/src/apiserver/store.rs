//! In-memory object storage with a cluster-wide resourceVersion and per-resource watch history.
//!
//! Objects are kept as serialised JSON bytes ([`Stored::json`]) plus the few fields the server
//! indexes (labels, nodeName, phase, owner references, finalizers), so 100,000 pods stay small and
//! lists / watch events are byte copies. Every write bumps the global revision, appends a
//! [`WatchEvent`] to its resource's bounded history and broadcasts it; watchers read from a
//! `tokio::sync::broadcast` channel, so a writer never waits for a slow watcher (a watcher that
//! falls behind the channel is closed, as kube-apiserver closes slow watchers).
//!
//! The store also keeps the indexes the controllers need: uid → object, and owner uid →
//! dependents (garbage collection).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::broadcast;

/// (namespace or "" for cluster-scoped objects, name).
pub type ObjKey = (String, String);

/// A reference to a stored object anywhere: (storage id, key).
pub type ObjRef = (String, ObjKey);

/// One owner reference, as much as the garbage collector needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub uid: String,
    pub block_owner_deletion: bool,
}

/// A stored object: its JSON bytes and indexed fields.
#[derive(Debug)]
pub struct Stored {
    pub json: Bytes,
    pub rv: u64,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub node_name: Option<String>,
    pub phase: Option<String>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
    pub owners: Vec<OwnerRef>,
    /// Where the digits of `metadata.resourceVersion` (`rv`) start in `json`, when the store
    /// spliced them in ([`Encoded::with_rv`]): the object at another revision is the same bytes
    /// with other digits there ([`Stored::at_rv`]).
    rv_at: Option<usize>,
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    field_at(v, ptr).and_then(Value::as_str)
}

/// `v.pointer(ptr)` for a pointer of plain object keys (no `~` escapes, no array indices), without
/// the per-segment allocations of `Value::pointer`: every write indexes its object through these.
fn field_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a Value> {
    ptr.split('/')
        .skip(1)
        .try_fold(v, |t, key| t.as_object()?.get(key))
}

impl Stored {
    /// Index an object (its metadata.resourceVersion must already be `rv`).
    pub fn new(v: &Value, rv: u64) -> Stored {
        Stored {
            json: Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
            ..Stored::new_indexed(v, rv)
        }
    }

    /// The index fields of `v`, with empty JSON.
    fn new_indexed(v: &Value, rv: u64) -> Stored {
        let labels = field_at(v, "/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let owners = field_at(v, "/metadata/ownerReferences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|o| {
                        Some(OwnerRef {
                            uid: o.get("uid")?.as_str()?.to_string(),
                            block_owner_deletion: o
                                .get("blockOwnerDeletion")
                                .and_then(Value::as_bool)
                                .unwrap_or(false),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let finalizers = field_at(v, "/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        Stored {
            json: Bytes::new(),
            rv,
            namespace: str_at(v, "/metadata/namespace")
                .unwrap_or_default()
                .to_string(),
            name: str_at(v, "/metadata/name").unwrap_or_default().to_string(),
            uid: str_at(v, "/metadata/uid").unwrap_or_default().to_string(),
            labels,
            node_name: str_at(v, "/spec/nodeName")
                .filter(|s| !s.is_empty())
                .map(String::from),
            phase: str_at(v, "/status/phase").map(String::from),
            deleting: field_at(v, "/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()),
            finalizers,
            owners,
            rv_at: None,
        }
    }

    /// The index fields of `v` without its JSON (filled in by [`Encoded::with_rv`]).
    fn index_of(v: &Value) -> Stored {
        Stored {
            json: Bytes::new(),
            ..Stored::new_indexed(v, 0)
        }
    }

    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// This object with `metadata.resourceVersion` set to `rv` (its DELETED event's form): the
    /// stored bytes with the new digits spliced in where the store put the old ones — byte for
    /// byte what decoding, setting the field and encoding again gives (the JSON is serde_json's
    /// encoding of a `Value` either way) — or, for an object stored without that position,
    /// decoded and encoded again.
    fn at_rv(&self, rv: u64) -> Stored {
        let old_digits = self.rv.to_string();
        let spliceable = self.rv_at.filter(|&at| {
            self.json.get(at..at + old_digits.len()) == Some(old_digits.as_bytes())
                && self.json.get(at + old_digits.len()) == Some(&b'"')
        });
        let Some(at) = spliceable else {
            let mut last = self.value();
            if let Some(m) = last.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert("resourceVersion".into(), Value::String(rv.to_string()));
            }
            return Stored::new(&last, rv);
        };
        let digits = rv.to_string();
        let mut json = Vec::with_capacity(self.json.len() + digits.len());
        json.extend_from_slice(&self.json[..at]);
        json.extend_from_slice(digits.as_bytes());
        json.extend_from_slice(&self.json[at + old_digits.len()..]);
        Stored {
            json: Bytes::from(json),
            rv,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            labels: self.labels.clone(),
            node_name: self.node_name.clone(),
            phase: self.phase.clone(),
            deleting: self.deleting,
            finalizers: self.finalizers.clone(),
            owners: self.owners.clone(),
            rv_at: Some(at),
        }
    }

    pub fn key(&self) -> ObjKey {
        (self.namespace.clone(), self.name.clone())
    }

    /// Only the fields at `paths` (dotted), as a sparse object for a field selector: one pass
    /// over the JSON per path that skips everything else, instead of decoding the whole
    /// object (a field-selected list of 100,000 custom resources reads one field of each).
    pub fn fields_at(&self, paths: &[String]) -> Value {
        let mut out = Value::Object(Default::default());
        for path in paths {
            let segments: Vec<&str> = path.split('.').collect();
            let mut de = serde_json::Deserializer::from_slice(&self.json);
            let Ok(Some(found)) = serde::de::DeserializeSeed::deserialize(Pick(&segments), &mut de)
            else {
                continue;
            };
            let mut at = &mut out;
            for segment in &segments {
                at = &mut at[*segment];
            }
            *at = found;
        }
        out
    }

    /// The fields field selectors usually read, without parsing the whole object.
    pub fn indexed_fields(&self) -> Value {
        serde_json::json!({
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {"nodeName": self.node_name},
            "status": {"phase": self.phase},
        })
    }
}

/// Reads the value at a path of JSON object keys, skipping the rest (`None` if absent).
struct Pick<'a>(&'a [&'a str]);

impl<'de> serde::de::DeserializeSeed<'de> for Pick<'_> {
    type Value = Option<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        if self.0.is_empty() {
            return serde::Deserialize::deserialize(de).map(Some);
        }
        de.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Pick<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if found.is_none() && key == self.0[0] {
                found = map.next_value_seed(Pick(&self.0[1..]))?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Field paths answered by [`Stored::indexed_fields`].
pub const INDEXED_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "status.phase",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// An object encoded to JSON before its revision is known: the bytes around its
/// `metadata.resourceVersion`, which the store fills in when it commits the write, so that
/// encoding stays out of the store's critical section.
#[derive(Debug)]
pub struct Encoded {
    head: Vec<u8>,
    tail: Vec<u8>,
    index: Stored,
}

/// A resourceVersion no client can send: a NUL and this process's random nonce.
fn rv_placeholder() -> &'static str {
    static P: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    P.get_or_init(|| format!("\u{0}rv-{}", uuid::Uuid::new_v4().simple()))
}

impl Encoded {
    /// Encodes `obj` (which must have `metadata`) with a placeholder resourceVersion.
    pub fn new(obj: &mut Value) -> Encoded {
        let placeholder = rv_placeholder();
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), Value::String(placeholder.into()));
        }
        let mut json = serde_json::to_vec(obj).unwrap_or_default();
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        // serde_json escapes the NUL, so look for the placeholder as it is encoded.
        static NEEDLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let needle = NEEDLE.get_or_init(|| {
            serde_json::to_vec(&Value::String(placeholder.into())).unwrap_or_default()
        });
        // The placeholder opens with `"\u0000`: check its second byte before comparing the
        // whole window (a slice comparison per byte was ~6 % of the server's CPU on writes).
        let found = json
            .windows(needle.len())
            .position(|w| w[1] == needle[1] && w[..] == needle[..]);
        let (head, tail) = match found {
            Some(at) => {
                let tail = json.split_off(at + needle.len() - 1);
                json.truncate(at + 1);
                (json, tail)
            }
            // No metadata: nothing to stamp.
            None => (json, Vec::new()),
        };
        Encoded {
            head,
            tail,
            index: Stored::index_of(obj),
        }
    }

    /// The stored object at revision `rv`.
    fn with_rv(self, rv: u64) -> Stored {
        let digits = rv.to_string();
        let rv_at = (!self.tail.is_empty()).then_some(self.head.len());
        let json = if self.tail.is_empty() {
            self.head
        } else {
            let mut json = Vec::with_capacity(self.head.len() + digits.len() + self.tail.len());
            json.extend_from_slice(&self.head);
            json.extend_from_slice(digits.as_bytes());
            json.extend_from_slice(&self.tail);
            json
        };
        Stored {
            json: Bytes::from(json),
            rv,
            rv_at,
            ..self.index
        }
    }
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A watcher's end of a resource's event channel.
pub type EventReceiver = broadcast::Receiver<Arc<WatchEvent>>;

/// One change, as watchers receive it.
#[derive(Debug)]
pub struct WatchEvent {
    pub kind: EventType,
    pub rv: u64,
    pub obj: Arc<Stored>,
    /// The previous state (MODIFIED/DELETED), for selector transitions.
    pub prev: Option<Arc<Stored>>,
}

/// All objects of one storage and their recent history.
pub struct Table {
    pub objects: BTreeMap<ObjKey, Arc<Stored>>,
    history: VecDeque<Arc<WatchEvent>>,
    /// Events at or below this revision are no longer in `history`.
    compacted_rv: u64,
    /// Revision of the last write to this storage (0: none yet).
    last_rv: u64,
    tx: broadcast::Sender<Arc<WatchEvent>>,
}

/// Why a watch cannot start from a revision.
#[derive(Debug)]
pub struct TooOld {
    pub oldest: u64,
}

/// The whole store (guarded by one mutex in the server).
pub struct Store {
    pub rv: u64,
    tables: HashMap<String, Table>,
    history_limit: usize,
    watch_capacity: usize,
    uids: HashMap<String, ObjRef>,
    dependents: HashMap<String, BTreeSet<ObjRef>>,
    /// Objects carrying a deletionTimestamp (the controllers finish their deletion).
    pub deleting: BTreeSet<ObjRef>,
    /// Uids removed since the garbage collector last looked.
    pub removed_uids: Vec<String>,
    /// Node names removed since pod GC last looked.
    pub removed_nodes: Vec<String>,
    /// Total writes (creates, updates, deletes) committed.
    pub writes: u64,
}

impl Store {
    pub fn new(history_limit: usize, watch_capacity: usize) -> Self {
        Store {
            rv: 1,
            tables: HashMap::new(),
            history_limit: history_limit.max(1),
            watch_capacity: watch_capacity.max(16),
            uids: HashMap::new(),
            dependents: HashMap::new(),
            deleting: BTreeSet::new(),
            removed_uids: Vec::new(),
            removed_nodes: Vec::new(),
            writes: 0,
        }
    }

    /// Create a storage if missing; a new one starts its history at `since`.
    pub fn ensure_table(&mut self, storage: &str, since: u64) {
        if !self.tables.contains_key(storage) {
            let (tx, _) = broadcast::channel(self.watch_capacity);
            self.tables.insert(
                storage.to_string(),
                Table {
                    objects: BTreeMap::new(),
                    history: VecDeque::new(),
                    compacted_rv: since,
                    last_rv: 0,
                    tx,
                },
            );
        }
    }

    fn table_mut(&mut self, storage: &str) -> &mut Table {
        let since = self.rv;
        self.ensure_table(storage, since);
        self.tables.get_mut(storage).expect("table just ensured")
    }

    pub fn table(&self, storage: &str) -> Option<&Table> {
        self.tables.get(storage)
    }

    pub fn get(&self, storage: &str, key: &ObjKey) -> Option<Arc<Stored>> {
        self.tables.get(storage)?.objects.get(key).cloned()
    }

    /// Objects of a storage, optionally in one namespace, in key order, starting after `after`.
    pub fn list(
        &self,
        storage: &str,
        namespace: Option<&str>,
        after: Option<&ObjKey>,
    ) -> Vec<Arc<Stored>> {
        let Some(t) = self.tables.get(storage) else {
            return Vec::new();
        };
        use std::ops::Bound;
        let lower = match after {
            Some(k) => Bound::Excluded(k.clone()),
            None => match namespace {
                Some(ns) => Bound::Included((ns.to_string(), String::new())),
                None => Bound::Unbounded,
            },
        };
        t.objects
            .range((lower, Bound::Unbounded))
            .take_while(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// One chunk of a list: the objects after `after` (in key order, within `namespace` if
    /// set), at most `limit`, and whether more follow. Copies only the handles the chunk needs
    /// (a paginated list of n objects costs O(n), not O(n²)).
    pub fn list_page(
        &self,
        storage: &str,
        namespace: Option<&str>,
        after: Option<&ObjKey>,
        limit: Option<usize>,
    ) -> (Vec<Arc<Stored>>, bool) {
        let Some(t) = self.tables.get(storage) else {
            return (Vec::new(), false);
        };
        use std::ops::Bound;
        let lower = match after {
            Some(k) => Bound::Excluded(k.clone()),
            None => match namespace {
                Some(ns) => Bound::Included((ns.to_string(), String::new())),
                None => Bound::Unbounded,
            },
        };
        let mut page = Vec::new();
        let objects = t
            .objects
            .range((lower, Bound::Unbounded))
            .take_while(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v);
        for v in objects {
            if limit.is_some_and(|l| page.len() == l) {
                return (page, true);
            }
            page.push(v.clone());
        }
        (page, false)
    }

    /// How many objects follow `after` (within `namespace` if set).
    pub fn count_after(&self, storage: &str, namespace: Option<&str>, after: &ObjKey) -> usize {
        use std::ops::Bound;
        self.tables.get(storage).map_or(0, |t| {
            t.objects
                .range((Bound::Excluded(after.clone()), Bound::Unbounded))
                .take_while(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
                .count()
        })
    }

    pub fn count(&self, storage: &str) -> usize {
        self.tables.get(storage).map_or(0, |t| t.objects.len())
    }

    /// Locate an object by uid.
    pub fn by_uid(&self, uid: &str) -> Option<(ObjRef, Arc<Stored>)> {
        let r = self.uids.get(uid)?;
        let s = self.get(&r.0, &r.1)?;
        Some((r.clone(), s))
    }

    pub fn uid_exists(&self, uid: &str) -> bool {
        self.uids.contains_key(uid)
    }

    /// Objects whose ownerReferences name `uid`.
    pub fn dependents_of(&self, uid: &str) -> Vec<ObjRef> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Write an object (create or replace): bumps the revision, stamps `metadata.resourceVersion`,
    /// records and broadcasts the event.
    pub fn put(&mut self, storage: &str, obj: &mut Value) -> Arc<Stored> {
        let stored = self.put_encoded(storage, Encoded::new(obj));
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert(
                "resourceVersion".into(),
                Value::String(stored.rv.to_string()),
            );
        }
        stored
    }

    /// [`Store::put`] of an object encoded beforehand (outside the store lock): only the
    /// revision is allocated and spliced in here.
    pub fn put_encoded(&mut self, storage: &str, enc: Encoded) -> Arc<Stored> {
        let since = self.rv;
        self.ensure_table(storage, since);
        self.rv += 1;
        self.writes += 1;
        let rv = self.rv;
        let stored = Arc::new(enc.with_rv(rv));
        let key = stored.key();
        let table = self.table_mut(storage);
        let prev = table.objects.insert(key.clone(), stored.clone());
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.reindex(storage, &key, prev.as_deref(), Some(&stored));
        self.record(
            storage,
            WatchEvent {
                kind,
                rv,
                obj: stored.clone(),
                prev,
            },
        );
        stored
    }

    /// Remove an object; the DELETED event carries it at the deletion revision.
    pub fn remove(&mut self, storage: &str, key: &ObjKey) -> Option<Arc<Stored>> {
        let prev = self.tables.get_mut(storage)?.objects.remove(key)?;
        self.rv += 1;
        self.writes += 1;
        let rv = self.rv;
        let gone = Arc::new(prev.at_rv(rv));
        self.reindex(storage, key, Some(&prev), None);
        self.removed_uids.push(prev.uid.clone());
        if storage == NODES_STORAGE {
            self.removed_nodes.push(prev.name.clone());
        }
        self.record(
            storage,
            WatchEvent {
                kind: EventType::Deleted,
                rv,
                obj: gone.clone(),
                prev: Some(prev),
            },
        );
        Some(gone)
    }

    fn reindex(&mut self, storage: &str, key: &ObjKey, old: Option<&Stored>, new: Option<&Stored>) {
        let oref: ObjRef = (storage.to_string(), key.clone());
        if let Some(o) = old {
            self.uids.remove(&o.uid);
            self.deleting.remove(&oref);
            for owner in &o.owners {
                if let Some(set) = self.dependents.get_mut(&owner.uid) {
                    set.remove(&oref);
                    if set.is_empty() {
                        self.dependents.remove(&owner.uid);
                    }
                }
            }
        }
        if let Some(n) = new {
            self.uids.insert(n.uid.clone(), oref.clone());
            if n.deleting {
                self.deleting.insert(oref.clone());
            }
            for owner in &n.owners {
                self.dependents
                    .entry(owner.uid.clone())
                    .or_default()
                    .insert(oref.clone());
            }
        }
    }

    fn record(&mut self, storage: &str, ev: WatchEvent) {
        let limit = self.history_limit;
        let table = self.table_mut(storage);
        let ev = Arc::new(ev);
        table.last_rv = ev.rv;
        table.history.push_back(ev.clone());
        while table.history.len() > limit {
            if let Some(old) = table.history.pop_front() {
                table.compacted_rv = old.rv;
            }
        }
        // No receivers is fine: nobody watches this resource.
        let _ = table.tx.send(ev);
    }

    /// Subscribe to a storage from revision `from` (exclusive): the buffered events after it, and
    /// a receiver for what comes next. Called under the store lock, so nothing falls in between.
    pub fn watch_from(
        &mut self,
        storage: &str,
        from: u64,
    ) -> Result<(Vec<Arc<WatchEvent>>, EventReceiver), TooOld> {
        let table = self.table_mut(storage);
        if from < table.compacted_rv {
            return Err(TooOld {
                oldest: table.compacted_rv + 1,
            });
        }
        let start = table.history.partition_point(|e| e.rv <= from);
        let backlog = table.history.iter().skip(start).cloned().collect();
        Ok((backlog, table.tx.subscribe()))
    }

    /// Revision of the last write to a storage (0 when it was never written): a cheap way for
    /// caches of a storage's contents to tell whether they are current.
    pub fn last_write_rv(&self, storage: &str) -> u64 {
        self.tables.get(storage).map_or(0, |t| t.last_rv)
    }

    /// The oldest revision a `continue` token or watch may still refer to in a storage.
    pub fn compacted_rv(&self, storage: &str) -> u64 {
        self.tables.get(storage).map_or(0, |t| t.compacted_rv)
    }

    /// Drop all history (like an etcd compaction): older revisions now answer 410 Gone.
    pub fn compact(&mut self) {
        let rv = self.rv;
        for t in self.tables.values_mut() {
            t.history.clear();
            t.compacted_rv = rv;
        }
    }

    /// Forget a storage entirely (its CRD is gone).
    pub fn drop_table(&mut self, storage: &str) {
        if let Some(t) = self.tables.remove(storage) {
            for (k, s) in t.objects {
                let oref: ObjRef = (storage.to_string(), k);
                self.uids.remove(&s.uid);
                self.deleting.remove(&oref);
                for o in &s.owners {
                    if let Some(set) = self.dependents.get_mut(&o.uid) {
                        set.remove(&oref);
                    }
                }
            }
        }
    }

    /// Number of watch receivers on a storage.
    pub fn watchers(&self, storage: &str) -> usize {
        self.tables
            .get(storage)
            .map_or(0, |t| t.tx.receiver_count())
    }
}

/// Storage id of core/v1 nodes.
pub const NODES_STORAGE: &str = "/nodes";
/// Storage id of core/v1 pods.
pub const PODS_STORAGE: &str = "/pods";
/// Storage id of core/v1 namespaces.
pub const NAMESPACES_STORAGE: &str = "/namespaces";
/// Storage id of core/v1 events.
pub const EVENTS_STORAGE: &str = "/events";
/// Storage id of CRDs.
pub const CRDS_STORAGE: &str = "apiextensions.k8s.io/customresourcedefinitions";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(ns: &str, name: &str, uid: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name, "uid": uid, "labels": {"a": "b"}}})
    }

    #[test]
    fn encoding_before_the_revision_gives_the_same_bytes() {
        let mut o = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"namespace": "n", "name": "c", "uid": "u", "labels": {"a": "b"},
                         "annotations": {"resourceVersion": "x"}},
            "data": {"resourceVersion": "\u{0}rv-not-the-nonce"}});
        let enc = Encoded::new(&mut o);
        assert!(o.pointer("/metadata/resourceVersion").is_none());
        let stored = enc.with_rv(1234);
        let mut expected = o.clone();
        expected["metadata"]["resourceVersion"] = json!("1234");
        assert_eq!(stored.value(), expected);
        assert_eq!(stored.json, serde_json::to_vec(&expected).unwrap());
        assert_eq!(
            (stored.rv, stored.name.as_str(), stored.uid.as_str()),
            (1234, "c", "u")
        );
        assert_eq!(stored.labels.get("a").map(String::as_str), Some("b"));
        let bare = Encoded::new(&mut json!({"kind": "X"})).with_rv(7);
        assert_eq!(bare.value(), json!({"kind": "X"}));
    }

    /// The DELETED event's object (the stored bytes with the deletion's revision spliced in) is
    /// what decoding, setting the resourceVersion and encoding again gives, whatever the digit
    /// counts, for objects stored encoded beforehand and for objects stored from a value.
    #[test]
    fn removal_splices_the_deletion_revision_into_the_stored_bytes() {
        let reference = |s: &Stored, rv: u64| {
            let mut v = s.value();
            v["metadata"]["resourceVersion"] = json!(rv.to_string());
            serde_json::to_vec(&v).unwrap()
        };
        for (from, to) in [(9, 10), (99, 100), (1234, 1235), (5, 123_456)] {
            let mut o = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"namespace": "n", "name": "p", "uid": "u", "labels": {"a": "b"},
                             "annotations": {"x": "\"resourceVersion\":\"9\""},
                             "finalizers": ["f"], "ownerReferences": [{"uid": "o"}]},
                "spec": {"nodeName": "node-1"}, "status": {"phase": "Succeeded"}});
            let stored = Encoded::new(&mut o).with_rv(from);
            assert!(stored.rv_at.is_some());
            let gone = stored.at_rv(to);
            assert_eq!(gone.json, reference(&stored, to), "{from} -> {to}");
            assert_eq!(gone.rv, to);
            assert_eq!(
                gone.value()["metadata"]["resourceVersion"],
                json!(to.to_string())
            );
            let again = Stored::new_indexed(&gone.value(), to);
            assert_eq!(
                (&gone.namespace, &gone.name, &gone.uid, &gone.labels),
                (&again.namespace, &again.name, &again.uid, &again.labels)
            );
            assert_eq!(
                (
                    &gone.node_name,
                    &gone.phase,
                    gone.deleting,
                    &gone.finalizers
                ),
                (
                    &again.node_name,
                    &again.phase,
                    again.deleting,
                    &again.finalizers
                )
            );
            assert_eq!(gone.owners, again.owners);
            // Stored from a value (no splice position): decoded and encoded again.
            let plain = Stored::new(&stored.value(), from);
            assert_eq!(plain.rv_at, None);
            assert_eq!(plain.at_rv(to).json, reference(&stored, to));
        }
        let mut s = Store::new(10, 64);
        let a = s.put("x", &mut obj("n", "a", "u1"));
        let gone = s.remove("x", &a.key()).unwrap();
        assert_eq!(gone.json, reference(&a, gone.rv));
        assert!(gone.rv > a.rv);
    }

    #[test]
    fn revisions_are_global_and_events_recorded() {
        let mut s = Store::new(10, 64);
        let a = s.put("x", &mut obj("n", "a", "u1"));
        let b = s.put("y", &mut obj("n", "b", "u2"));
        assert!(b.rv > a.rv);
        assert_eq!(
            a.value()["metadata"]["resourceVersion"],
            json!(a.rv.to_string())
        );
        let (backlog, _) = s.watch_from("x", 1).unwrap();
        assert_eq!(backlog.len(), 1);
        assert_eq!(backlog[0].kind, EventType::Added);
        let gone = s.remove("x", &("n".into(), "a".into())).unwrap();
        assert_eq!(gone.rv, s.rv);
        assert_eq!(s.removed_uids, vec!["u1".to_string()]);
    }

    #[test]
    fn history_is_bounded_and_old_revisions_are_too_old() {
        let mut s = Store::new(2, 64);
        for i in 0..5 {
            s.put("x", &mut obj("n", &format!("o{i}"), &format!("u{i}")));
        }
        assert!(s.watch_from("x", 1).is_err());
        let (backlog, _) = s.watch_from("x", s.rv - 1).unwrap();
        assert_eq!(backlog.len(), 1);
        s.compact();
        assert!(s.watch_from("x", s.rv - 1).is_err());
        assert!(s.watch_from("x", s.rv).is_ok());
    }

    #[test]
    fn list_by_namespace_and_after_key() {
        let mut s = Store::new(10, 64);
        for (ns, n) in [("a", "1"), ("a", "2"), ("b", "1")] {
            s.put("x", &mut obj(ns, n, &format!("{ns}{n}")));
        }
        assert_eq!(s.list("x", Some("a"), None).len(), 2);
        assert_eq!(s.list("x", None, None).len(), 3);
        let after = ("a".to_string(), "1".to_string());
        assert_eq!(s.list("x", None, Some(&after)).len(), 2);
        assert_eq!(s.list("x", Some("a"), Some(&after)).len(), 1);
    }

    #[test]
    fn dependents_index_follows_owner_references() {
        let mut s = Store::new(10, 64);
        let mut child = obj("n", "c", "uc");
        child["metadata"]["ownerReferences"] = json!([{"uid": "up", "blockOwnerDeletion": true}]);
        s.put("x", &mut child);
        assert_eq!(s.dependents_of("up").len(), 1);
        s.remove("x", &("n".into(), "c".into()));
        assert!(s.dependents_of("up").is_empty());
    }
}
