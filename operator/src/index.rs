//! Secondary indexes over a watched kind, kept in step with a kube reflector store.
//!
//! A reflector store answers "get by name"; Barge also needs "the pods of job X" and "the jobs that
//! depend on Y" without scanning every object in a hot path. An [`Index`] is fed the same watcher
//! events as the reflector (before the reflector applies them) and keeps `key → object refs`. It follows
//! the watcher protocol exactly as the reflector does: `Init` starts a fresh buffer, `InitApply` fills
//! it, `InitDone` swaps it in, so objects deleted while a watch was down disappear from the index too.
//!
//! To move an object between keys the index needs the keys it was filed under. By default it
//! keeps them (`keys_of`); an index built [`Index::from_previous`] keeps nothing per object
//! beyond its id in the key's set, and is handed the object's previous version (the reflector
//! store's, read before the event is applied: see `cache::Sink`) to compute them again — at
//! 100,000 jobs in four indexes, that is ~80 bytes per job and index less.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::{Arc, RwLock};

use kube::runtime::watcher;

/// The keys an object is indexed under (an object may have none, one or several).
pub type KeyFn<K, Key> = dyn Fn(&K) -> Vec<Key> + Send + Sync;

/// The ids are shared (`Arc<str>`) between the two maps: one allocation per indexed object,
/// not one per map — with 100,000 jobs in four indexes the difference is megabytes.
struct State<Key> {
    by_key: HashMap<Key, BTreeSet<Arc<str>>>,
    /// Empty in an index built [`Index::from_previous`].
    keys_of: HashMap<Arc<str>, Box<[Key]>>,
}

impl<Key: Eq + Hash + Clone> State<Key> {
    fn new() -> Self {
        Self {
            by_key: HashMap::new(),
            keys_of: HashMap::new(),
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some(keys) = self.keys_of.remove(id) {
            for key in keys.iter() {
                if let Some(ids) = self.by_key.get_mut(key) {
                    ids.remove(id);
                    if ids.is_empty() {
                        self.by_key.remove(key);
                    }
                }
            }
        }
    }

    fn insert(&mut self, id: Arc<str>, keys: Vec<Key>) {
        // Most updates (a job's status write) leave the keys as they were: nothing to move.
        if self.keys_of.get(&*id).is_some_and(|old| **old == *keys) {
            return;
        }
        self.remove(&id);
        if keys.is_empty() {
            return;
        }
        for key in &keys {
            self.by_key
                .entry(key.clone())
                .or_default()
                .insert(id.clone());
        }
        self.keys_of.insert(id, keys.into_boxed_slice());
    }

    /// Files `id` under `keys`, without remembering them.
    fn file(&mut self, id: &Arc<str>, keys: &[Key]) {
        for key in keys {
            self.by_key
                .entry(key.clone())
                .or_default()
                .insert(id.clone());
        }
    }

    /// Takes `id` out of `keys`' sets.
    fn unfile(&mut self, id: &str, keys: &[Key]) {
        for key in keys {
            if let Some(ids) = self.by_key.get_mut(key) {
                ids.remove(id);
                if ids.is_empty() {
                    self.by_key.remove(key);
                }
            }
        }
    }
}

/// An index from `Key` to the `namespace/name` of the objects that carry it.
pub struct Index<K, Key> {
    key_fn: Box<KeyFn<K, Key>>,
    /// The object's id ([`object_id`], or one the object shares: a job record's).
    id_fn: fn(&K) -> Arc<str>,
    live: RwLock<State<Key>>,
    buffer: RwLock<Option<State<Key>>>,
    /// Built [`Index::from_previous`]: no `keys_of`; [`Index::apply_after`] gets the previous
    /// version of the object instead.
    from_previous: bool,
}

/// The identity an index stores: `namespace/name`, or `name` for cluster-scoped objects.
pub fn object_id<K: kube::Resource>(obj: &K) -> String {
    let meta = obj.meta();
    let name = meta.name.as_deref().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// [`object_id`], allocated for the index.
fn new_id<K: kube::Resource>(obj: &K) -> Arc<str> {
    object_id(obj).into()
}

impl<K: kube::Resource, Key: Eq + Hash + Clone> Index<K, Key> {
    pub fn new(key_fn: impl Fn(&K) -> Vec<Key> + Send + Sync + 'static) -> Arc<Self> {
        Self::with_ids(key_fn, new_id::<K>)
    }

    /// An index whose objects carry their id ([`object_id`]'s text) already allocated: the
    /// indexes hold that one copy instead of one each.
    pub fn with_ids(
        key_fn: impl Fn(&K) -> Vec<Key> + Send + Sync + 'static,
        id_fn: fn(&K) -> Arc<str>,
    ) -> Arc<Self> {
        Self::build(key_fn, id_fn, false)
    }

    /// Like [`Index::with_ids`], but keeping no keys per object: every event must come through
    /// [`Index::apply_after`] with the version of the object the index saw last (None when it
    /// saw none), and `key_fn` must give the same keys for the same version every time.
    pub fn from_previous(
        key_fn: impl Fn(&K) -> Vec<Key> + Send + Sync + 'static,
        id_fn: fn(&K) -> Arc<str>,
    ) -> Arc<Self> {
        Self::build(key_fn, id_fn, true)
    }

    fn build(
        key_fn: impl Fn(&K) -> Vec<Key> + Send + Sync + 'static,
        id_fn: fn(&K) -> Arc<str>,
        from_previous: bool,
    ) -> Arc<Self> {
        Arc::new(Self {
            key_fn: Box::new(key_fn),
            id_fn,
            live: RwLock::new(State::new()),
            buffer: RwLock::new(None),
            from_previous,
        })
    }

    /// Whether [`Index::apply_after`] needs the previous version of each object.
    pub fn needs_previous(&self) -> bool {
        self.from_previous
    }

    /// Applies one watcher event, given the version of its object the index saw last (`None`:
    /// not indexed); an index that keeps its keys ignores `previous`.
    pub fn apply_after(&self, event: &watcher::Event<K>, previous: Option<&K>) {
        if !self.from_previous {
            return self.apply(event);
        }
        match event {
            watcher::Event::Apply(obj) => {
                let keys = (self.key_fn)(obj);
                let old = previous.map(|p| (self.key_fn)(p)).unwrap_or_default();
                if old == keys {
                    return;
                }
                let id = (self.id_fn)(obj);
                let mut live = write(&self.live);
                live.unfile(&id, &old);
                live.file(&id, &keys);
            }
            watcher::Event::Delete(obj) => {
                // The deleted object's last state may be newer than the one indexed.
                let keys = (self.key_fn)(previous.unwrap_or(obj));
                write(&self.live).unfile(&(self.id_fn)(obj), &keys);
            }
            watcher::Event::InitApply(obj) => {
                let keys = (self.key_fn)(obj);
                write(&self.buffer)
                    .get_or_insert_with(State::new)
                    .file(&(self.id_fn)(obj), &keys);
            }
            watcher::Event::Init | watcher::Event::InitDone => self.apply(event),
        }
    }

    /// Applies one watcher event; call it for every event, before or after the reflector. An
    /// index built [`Index::from_previous`] takes its events through [`Index::apply_after`].
    pub fn apply(&self, event: &watcher::Event<K>) {
        debug_assert!(
            !self.from_previous || matches!(event, watcher::Event::Init | watcher::Event::InitDone),
            "an index built from_previous takes its objects through apply_after"
        );
        match event {
            watcher::Event::Apply(obj) => {
                let keys = (self.key_fn)(obj);
                write(&self.live).insert((self.id_fn)(obj), keys);
            }
            watcher::Event::Delete(obj) => write(&self.live).remove(&(self.id_fn)(obj)),
            watcher::Event::Init => *write(&self.buffer) = Some(State::new()),
            watcher::Event::InitApply(obj) => {
                let keys = (self.key_fn)(obj);
                write(&self.buffer)
                    .get_or_insert_with(State::new)
                    .insert((self.id_fn)(obj), keys);
            }
            watcher::Event::InitDone => {
                if let Some(fresh) = write(&self.buffer).take() {
                    *write(&self.live) = fresh;
                }
            }
        }
    }

    /// The ids (`namespace/name`) of the objects indexed under `key`, in name order.
    pub fn get(&self, key: &Key) -> Vec<String> {
        read(&self.live)
            .by_key
            .get(key)
            .map(|ids| ids.iter().map(|id| id.to_string()).collect())
            .unwrap_or_default()
    }

    /// Every key with how many objects are indexed under it.
    pub fn counts(&self) -> Vec<(Key, usize)> {
        read(&self.live)
            .by_key
            .iter()
            .map(|(key, ids)| (key.clone(), ids.len()))
            .collect()
    }

    /// How many objects are indexed under `key`.
    pub fn count(&self, key: &Key) -> usize {
        read(&self.live)
            .by_key
            .get(key)
            .map(BTreeSet::len)
            .unwrap_or(0)
    }
}

// A poisoned lock means a panic elsewhere already; the index data itself stays consistent because
// every mutation above is completed under one guard, so recovering the guard is sound.
fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn cm(name: &str, group: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                labels: Some([("group".to_string(), group.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn group_of(c: &ConfigMap) -> Vec<String> {
        c.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("group").cloned())
            .into_iter()
            .collect()
    }

    fn by_group() -> Arc<Index<ConfigMap, String>> {
        Index::new(group_of)
    }

    #[test]
    fn apply_moves_an_object_between_keys_and_delete_removes_it() {
        let index = by_group();
        index.apply(&watcher::Event::Apply(cm("a", "x")));
        index.apply(&watcher::Event::Apply(cm("b", "x")));
        assert_eq!(index.get(&"x".to_string()), vec!["ns/a", "ns/b"]);
        index.apply(&watcher::Event::Apply(cm("a", "y")));
        assert_eq!(index.get(&"x".to_string()), vec!["ns/b"]);
        assert_eq!(index.get(&"y".to_string()), vec!["ns/a"]);
        index.apply(&watcher::Event::Delete(cm("b", "x")));
        assert_eq!(index.count(&"x".to_string()), 0);
    }

    #[test]
    fn an_update_with_the_same_keys_keeps_the_object_where_it_is() {
        let index = by_group();
        index.apply(&watcher::Event::Apply(cm("a", "x")));
        index.apply(&watcher::Event::Apply(cm("a", "x")));
        assert_eq!(index.get(&"x".to_string()), vec!["ns/a"]);
        index.apply(&watcher::Event::Delete(cm("a", "x")));
        assert_eq!(index.count(&"x".to_string()), 0);
        assert!(index.counts().is_empty());
    }

    #[test]
    fn an_object_under_one_key_twice_is_removed_cleanly() {
        let index =
            Index::new(|c: &ConfigMap| vec![c.metadata.name.clone().unwrap_or_default(); 2]);
        index.apply(&watcher::Event::Apply(cm("a", "x")));
        assert_eq!(index.get(&"a".to_string()), vec!["ns/a"]);
        index.apply(&watcher::Event::Delete(cm("a", "x")));
        assert!(index.counts().is_empty());
    }

    /// Feeds `index` as `cache::Sink` does: each event with the version seen before it.
    struct Fed {
        index: Arc<Index<ConfigMap, String>>,
        seen: HashMap<String, ConfigMap>,
        buffer: HashMap<String, ConfigMap>,
    }

    impl Fed {
        fn new() -> Self {
            Self {
                index: Index::from_previous(group_of, |c: &ConfigMap| object_id(c).into()),
                seen: HashMap::new(),
                buffer: HashMap::new(),
            }
        }

        fn feed(&mut self, event: watcher::Event<ConfigMap>) {
            let previous = match &event {
                watcher::Event::Apply(o) | watcher::Event::Delete(o) => {
                    self.seen.get(&object_id(o)).cloned()
                }
                _ => None,
            };
            self.index.apply_after(&event, previous.as_ref());
            match event {
                watcher::Event::Apply(o) => {
                    self.seen.insert(object_id(&o), o);
                }
                watcher::Event::Delete(o) => {
                    self.seen.remove(&object_id(&o));
                }
                watcher::Event::Init => self.buffer.clear(),
                watcher::Event::InitApply(o) => {
                    self.buffer.insert(object_id(&o), o);
                }
                watcher::Event::InitDone => self.seen = std::mem::take(&mut self.buffer),
            }
        }
    }

    #[test]
    fn an_index_from_previous_versions_moves_and_forgets_objects_as_one_that_keeps_keys() {
        let mut fed = Fed::new();
        assert!(fed.index.needs_previous());
        let x = "x".to_string();
        let y = "y".to_string();
        fed.feed(watcher::Event::Apply(cm("a", "x")));
        fed.feed(watcher::Event::Apply(cm("b", "x")));
        fed.feed(watcher::Event::Apply(cm("b", "x")));
        assert_eq!(fed.index.get(&x), vec!["ns/a", "ns/b"]);
        fed.feed(watcher::Event::Apply(cm("a", "y")));
        assert_eq!(fed.index.get(&x), vec!["ns/b"]);
        assert_eq!(fed.index.get(&y), vec!["ns/a"]);
        // A deletion carrying a newer state than the one indexed removes the indexed one.
        fed.feed(watcher::Event::Delete(cm("a", "z")));
        assert_eq!(fed.index.count(&y), 0);
        // A relist forgets what vanished and files what it lists.
        fed.feed(watcher::Event::Init);
        fed.feed(watcher::Event::InitApply(cm("c", "y")));
        assert_eq!(fed.index.get(&x), vec!["ns/b"]);
        fed.feed(watcher::Event::InitDone);
        assert_eq!(fed.index.count(&x), 0);
        assert_eq!(fed.index.get(&y), vec!["ns/c"]);
        fed.feed(watcher::Event::Apply(cm("c", "x")));
        fed.feed(watcher::Event::Delete(cm("c", "x")));
        assert!(fed.index.counts().is_empty());
        assert!(read(&fed.index.live).keys_of.is_empty());
    }

    #[test]
    fn a_relist_forgets_objects_deleted_while_the_watch_was_down() {
        let index = by_group();
        index.apply(&watcher::Event::Apply(cm("a", "x")));
        index.apply(&watcher::Event::Apply(cm("gone", "x")));
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(cm("a", "x")));
        // Until InitDone, readers still see the old state.
        assert_eq!(index.count(&"x".to_string()), 2);
        index.apply(&watcher::Event::InitDone);
        assert_eq!(index.get(&"x".to_string()), vec!["ns/a"]);
    }
}
