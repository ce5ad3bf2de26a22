//! Decoding watched objects without the parts no Barge component reads.
//!
//! The caches drop an object's `metadata.managedFields` (and a node's image list) before
//! anything sees it ([`super::Sink`]), but k8s-openapi decodes them first: managedFields into
//! `serde_json::Value` trees (a map per field path), most of a pod's size once a few writers
//! have touched it — 12 % of the operator's CPU during an array run went to decoding them only
//! to throw them away (docs/benchmarks.md, issue 14).
//!
//! [`Pruned<K>`] is `K` decoded by `K`'s own `Deserialize`, through a deserializer adapter that
//! skips the listed keys ([`Prune`]) while the JSON is read: their values are scanned with
//! serde's [`IgnoredAny`] (no allocation) and never reach `K`'s decoder. Everything else is
//! decoded exactly as `K` decodes it — the adapter only filters the keys of the maps on the
//! listed paths and hands every other value to `K`'s decoder untouched — so an object `K`
//! refuses is refused alike (a skipped value is only checked to be well-formed JSON).
//!
//! The watch decodes `Pruned<K>` and hands the `K` inside to the sink ([`super::Caches::start`]):
//! the stores, indexes and feeds keep holding `K`.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ObjectMeta;
use kube::Resource;
use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

/// A key of an object to leave out while decoding it, or to look into.
#[derive(Debug)]
pub struct Prune {
    /// The key (a JSON object's field name).
    pub key: &'static str,
    /// Keys to leave out within the key's value (an object); empty: the whole value is left
    /// out.
    pub within: &'static [Prune],
}

/// `metadata.managedFields`: server-side apply's field ownership, never read by Barge.
const MANAGED_FIELDS: Prune = Prune {
    key: "metadata",
    within: &[Prune {
        key: "managedFields",
        within: &[],
    }],
};

/// A kind the caches decode without some of its keys.
pub trait Prunable {
    /// The keys left out at the top of the object.
    const PRUNE: &'static [Prune];
}

impl Prunable for Pod {
    const PRUNE: &'static [Prune] = &[MANAGED_FIELDS];
}

/// A node's image list (often hundreds of entries on real nodes) is of no use to Barge either.
impl Prunable for Node {
    const PRUNE: &'static [Prune] = &[
        MANAGED_FIELDS,
        Prune {
            key: "status",
            within: &[Prune {
                key: "images",
                within: &[],
            }],
        },
    ];
}

/// `K` decoded without its [`Prunable::PRUNE`] keys (module docs). The Kubernetes resource is
/// `K`'s: `Api<Pruned<K>>` lists and watches `K`.
#[derive(Clone, Debug)]
pub struct Pruned<K>(pub K);

impl<'de, K: Deserialize<'de> + Prunable> Deserialize<'de> for Pruned<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        K::deserialize(Pruning {
            de: deserializer,
            prune: K::PRUNE,
        })
        .map(Pruned)
    }
}

/// The `Resource` items a wrapper of `K` in field `.0` takes from `K` unchanged (all but
/// `meta_mut`).
macro_rules! delegate_resource {
    () => {
        type DynamicType = K::DynamicType;
        type Scope = K::Scope;

        fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
            K::kind(dt)
        }

        fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
            K::group(dt)
        }

        fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
            K::version(dt)
        }

        fn api_version(dt: &Self::DynamicType) -> Cow<'_, str> {
            K::api_version(dt)
        }

        fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
            K::plural(dt)
        }

        fn url_path(dt: &Self::DynamicType, namespace: Option<&str>) -> String {
            K::url_path(dt, namespace)
        }

        fn meta(&self) -> &ObjectMeta {
            self.0.meta()
        }
    };
}

impl<K: Resource> Resource for Pruned<K> {
    delegate_resource!();

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.meta_mut()
    }
}

/// A cached object held behind an `Arc` of its own: kube's reflector store deep-copies every
/// object it is handed (`Writer::apply_watcher_event` clones the event's object into a new
/// `Arc`), which for pods was 5–6 % of the operator's CPU during an array (a whole pod copied
/// and the original dropped, per pod event). The store of `Shared<K>` copies the `Arc` only;
/// the sink, its indexes and the feed see the same `K`. Reads deref to `K`.
#[derive(Debug)]
pub struct Shared<K>(pub std::sync::Arc<K>);

impl<K> Clone for Shared<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

/// Decoded as `K` (kube's controller asks it of the objects it watches).
impl<'de, K: Deserialize<'de>> Deserialize<'de> for Shared<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        K::deserialize(deserializer).map(Shared::from)
    }
}

impl<K> From<K> for Shared<K> {
    fn from(obj: K) -> Self {
        Self(std::sync::Arc::new(obj))
    }
}

impl<K> std::ops::Deref for Shared<K> {
    type Target = K;

    fn deref(&self) -> &K {
        &self.0
    }
}

impl<K: Resource + Clone> Resource for Shared<K> {
    delegate_resource!();

    /// Copies the object first if another holder shares it (the sink trims an object fresh
    /// from the decoder, which nothing shares yet).
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        std::sync::Arc::make_mut(&mut self.0).meta_mut()
    }
}

/// The event with its object shared ([`Shared`]).
pub fn shared<K>(
    event: kube::runtime::watcher::Event<K>,
) -> kube::runtime::watcher::Event<Shared<K>> {
    use kube::runtime::watcher::Event;
    match event {
        Event::Apply(obj) => Event::Apply(obj.into()),
        Event::Delete(obj) => Event::Delete(obj.into()),
        Event::InitApply(obj) => Event::InitApply(obj.into()),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    }
}

/// A deserializer that leaves out `prune`'s keys of the map it is asked for (directly, or
/// inside an `Option` or a newtype); any other value goes to `de` as asked.
struct Pruning<D> {
    de: D,
    prune: &'static [Prune],
}

/// Forwards `deserialize_*` methods to the inner deserializer unchanged.
macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                self.de.$method($($arg,)* visitor)
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Pruning<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let prune = self.prune;
        self.de.deserialize_any(PruningVisitor { visitor, prune })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let prune = self.prune;
        self.de
            .deserialize_option(PruningVisitor { visitor, prune })
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let prune = self.prune;
        self.de
            .deserialize_newtype_struct(name, PruningVisitor { visitor, prune })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let prune = self.prune;
        self.de.deserialize_map(PruningVisitor { visitor, prune })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let prune = self.prune;
        self.de
            .deserialize_struct(name, fields, PruningVisitor { visitor, prune })
    }

    forward_deserialize! {
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// `visitor`, with the maps it visits (and the values of `Some` and newtypes) pruned.
struct PruningVisitor<V> {
    visitor: V,
    prune: &'static [Prune],
}

/// Forwards `visit_*` methods of one argument to the inner visitor unchanged.
macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.visitor.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for PruningVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(PruningMap {
            map,
            prune: self.prune,
            within: None,
        })
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        self.visitor.visit_some(Pruning {
            de,
            prune: self.prune,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        self.visitor.visit_newtype_struct(Pruning {
            de,
            prune: self.prune,
        })
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_seq(seq)
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_enum(data)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }
}

/// A map without `prune`'s keys; the value of a key with keys of its own to leave out is
/// pruned in turn.
struct PruningMap<A> {
    map: A,
    prune: &'static [Prune],
    /// What to leave out of the value of the key just read.
    within: Option<&'static [Prune]>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for PruningMap<A> {
    type Error = A::Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        loop {
            let Some(key) = self.map.next_key::<Key<'de>>()? else {
                return Ok(None);
            };
            let rule = self.prune.iter().find(|p| p.key == key.as_str());
            if rule.is_some_and(|p| p.within.is_empty()) {
                self.map.next_value::<IgnoredAny>()?;
                continue;
            }
            self.within = rule.map(|p| p.within);
            return match key {
                Key::Borrowed(k) => seed.deserialize(BorrowedStrDeserializer::new(k)),
                Key::Owned(k) => seed.deserialize(StringDeserializer::new(k)),
            }
            .map(Some);
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        match self.within.take() {
            Some(prune) => self.map.next_value_seed(PruningSeed { seed, prune }),
            None => self.map.next_value_seed(seed),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// `seed`, given a pruning deserializer.
struct PruningSeed<S> {
    seed: S,
    prune: &'static [Prune],
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for PruningSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Pruning {
            de,
            prune: self.prune,
        })
    }
}

/// A map key, borrowed from the input when the input allows (JSON without escapes).
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(k) => k,
            Key::Owned(k) => k,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_string()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::{ObjectList, WatchEvent};
    use kube::ResourceExt;
    use serde_json::json;

    /// A pod as barge-sim or kube-apiserver sends it once Barge, the scheduler and the kubelet
    /// wrote it: managedFields of three managers, labels, annotations, a finalizer, an owner,
    /// a spec with resources and a status with conditions and a container status.
    fn pod_json() -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "array-7-1",
                "namespace": "team",
                "uid": "9b1f0c1e-1111-2222-3333-444455556666",
                "resourceVersion": "4711",
                "generation": 1,
                "creationTimestamp": "2026-12-07T08:00:00Z",
                "labels": {
                    "app.kubernetes.io/managed-by": "barge",
                    "batch.barge.dev/job-uid": "u-1",
                    "batch.barge.dev/array-index": "7"
                },
                "annotations": {"batch.barge.dev/share-identifier": "a"},
                "finalizers": ["batch.barge.dev/attempt-result"],
                "ownerReferences": [{
                    "apiVersion": "batch.barge.dev/v1alpha1", "kind": "Job", "name": "array",
                    "uid": "u-1", "controller": true, "blockOwnerDeletion": true
                }],
                "managedFields": [
                    {"manager": "barge", "operation": "Update", "apiVersion": "v1",
                     "time": "2026-12-07T08:00:00Z", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app.kubernetes.io/managed-by": {}}},
                                  "f:spec": {"f:containers": {"k:{\"name\":\"main\"}": {".": {}, "f:image": {}}}}}},
                    {"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
                     "time": "2026-12-07T08:00:01Z", "fieldsType": "FieldsV1", "subresource": "status",
                     "fieldsV1": {"f:status": {"f:phase": {}, "f:conditions": {}}}},
                    {"manager": "barge", "operation": "Update", "apiVersion": "v1",
                     "time": "2026-12-07T08:00:02Z", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:metadata": {"f:finalizers": {}}}}
                ]
            },
            "spec": {
                "nodeName": "node-3",
                "restartPolicy": "Never",
                "containers": [{
                    "name": "main",
                    "image": "busybox",
                    "command": ["true"],
                    "env": [{"name": "AWS_BATCH_JOB_ARRAY_INDEX", "value": "7"}],
                    "resources": {"requests": {"cpu": "1", "memory": "256Mi"},
                                  "limits": {"memory": "256Mi"}}
                }],
                "tolerations": [{"key": "batch.barge.dev/compute-environment", "operator": "Exists"}]
            },
            "status": {
                "phase": "Succeeded",
                "podIP": "10.0.0.7",
                "startTime": "2026-12-07T08:00:01Z",
                "conditions": [{"type": "Ready", "status": "False",
                                "lastTransitionTime": "2026-12-07T08:00:02Z", "reason": "PodCompleted"}],
                "containerStatuses": [{
                    "name": "main", "image": "busybox", "imageID": "", "ready": false,
                    "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                             "startedAt": "2026-12-07T08:00:01Z",
                                             "finishedAt": "2026-12-07T08:00:02Z"}}
                }]
            }
        })
    }

    /// The pod as k8s-openapi decodes it, managedFields left out.
    fn expected(json: &str) -> Pod {
        let mut pod: Pod = serde_json::from_str(json).expect("pod");
        pod.metadata.managed_fields = None;
        pod
    }

    #[test]
    fn a_pruned_pod_is_the_pod_without_its_managed_fields() {
        let text = pod_json().to_string();
        let pruned: Pruned<Pod> = serde_json::from_str(&text).expect("pruned");
        assert_eq!(pruned.0, expected(&text));
        assert!(pruned.0.metadata.managed_fields.is_none());
        assert_eq!(pruned.0.metadata.labels.as_ref().map(|l| l.len()), Some(3));
        // And the full decode does read them (the test would prove nothing otherwise).
        let full: Pod = serde_json::from_str(&text).expect("pod");
        assert_eq!(full.metadata.managed_fields.map(|m| m.len()), Some(3));
    }

    #[test]
    fn every_other_part_decodes_as_the_pod_does() {
        // Minimal, empty and null parts; unknown fields at every level; keys in another order
        // (metadata last); an escaped key.
        let cases = [
            json!({"apiVersion": "v1", "kind": "Pod"}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": null, "spec": null}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"managedFields": null}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"managedFields": []}}),
            json!({"status": {"phase": "Running", "future": 1}, "spec": {"containers": []},
                   "extra": {"a": [1, 2]}, "kind": "Pod", "apiVersion": "v1", "we\"ird": 1,
                   "metadata": {"name": "p", "future": {"x": 1}, "managedFields": [{"manager": "m"}],
                                "we\"ird": {"managedFields": 1},
                                "labels": {"a\"b": "c"}}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p\u{e9}\"q"}}),
        ];
        for case in cases {
            let text = case.to_string();
            let pruned: Pruned<Pod> = serde_json::from_str(&text).expect(&text);
            assert_eq!(pruned.0, expected(&text), "{text}");
        }
        // Only top-level `metadata.managedFields` goes: a key of that name elsewhere stays.
        let text = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"annotations": {"managedFields": "kept"}}})
        .to_string();
        let pruned: Pruned<Pod> = serde_json::from_str(&text).expect("pruned");
        assert_eq!(
            pruned.0.metadata.annotations.expect("annotations")["managedFields"],
            "kept"
        );
    }

    #[test]
    fn a_malformed_pod_is_refused_as_the_pod_decode_refuses_it() {
        let cases = [
            json!({"apiVersion": "v2", "kind": "Pod"}),
            json!({"apiVersion": "v1", "kind": "Node"}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": "x"}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": ["a"]}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": 3}}),
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": "main"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "status": {"startTime": "yesterday"}}),
            json!(["v1", "Pod"]),
            json!("pod"),
            json!(null),
        ];
        for case in cases {
            let text = case.to_string();
            let full = serde_json::from_str::<Pod>(&text).expect_err(&text);
            let pruned = serde_json::from_str::<Pruned<Pod>>(&text).expect_err(&text);
            assert_eq!(pruned.to_string(), full.to_string(), "{text}");
        }
        // Text that is not JSON, also inside the skipped part.
        for text in [
            r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"managedFields": [}}"#,
            r#"{"apiVersion": "v1", "kind": "Pod""#,
        ] {
            assert!(serde_json::from_str::<Pod>(text).is_err());
            assert!(serde_json::from_str::<Pruned<Pod>>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn malformed_managed_fields_are_not_read() {
        // The one difference: what is skipped is not decoded, so a managedFields entry that
        // does not match its type (no API server sends one) no longer fails the pod.
        let text = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "managedFields": "not a list"}})
        .to_string();
        assert!(serde_json::from_str::<Pod>(&text).is_err());
        let pruned: Pruned<Pod> = serde_json::from_str(&text).expect("pruned");
        assert_eq!(pruned.0.metadata.name.as_deref(), Some("p"));
    }

    #[test]
    fn lists_and_watch_events_decode_pruned_pods() {
        let pod = pod_json();
        let text = pod.to_string();
        let list = json!({"apiVersion": "v1", "kind": "PodList",
            "metadata": {"resourceVersion": "9"}, "items": [pod.clone(), pod.clone()]})
        .to_string();
        let decoded: ObjectList<Pruned<Pod>> = serde_json::from_str(&list).expect("list");
        assert_eq!(decoded.items.len(), 2);
        assert!(decoded.items.iter().all(|p| p.0 == expected(&text)));
        // The type first (as API servers send it: decoded as it is read), and last (the event
        // is buffered before the pod is decoded).
        for event in [
            json!({"type": "MODIFIED", "object": pod.clone()}),
            json!({"object": pod.clone(), "type": "MODIFIED"}),
        ] {
            let event = event.to_string();
            match serde_json::from_str::<WatchEvent<Pruned<Pod>>>(&event).expect("event") {
                WatchEvent::Modified(p) => assert_eq!(p.0, expected(&text)),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn a_pruned_node_has_neither_managed_fields_nor_images() {
        let text = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n", "labels": {"a": "b"},
                         "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}]},
            "spec": {"unschedulable": true},
            "status": {"images": [{"names": ["busybox"], "sizeBytes": 1}],
                       "allocatable": {"cpu": "4"}, "capacity": {"cpu": "4"}}})
        .to_string();
        let mut node: Node = serde_json::from_str(&text).expect("node");
        assert!(node.metadata.managed_fields.is_some());
        node.metadata.managed_fields = None;
        node.status.as_mut().expect("status").images = None;
        let pruned: Pruned<Node> = serde_json::from_str(&text).expect("pruned");
        assert_eq!(pruned.0, node);
        assert_eq!(pruned.meta().name.as_deref(), Some("n"));
    }

    #[test]
    fn the_resource_is_the_pruned_kind() {
        assert_eq!(Pruned::<Pod>::kind(&()), "Pod");
        assert_eq!(Pruned::<Pod>::plural(&()), "pods");
        assert_eq!(
            Pruned::<Node>::url_path(&(), None),
            Node::url_path(&(), None)
        );
        assert_eq!(
            Pruned::<Pod>::url_path(&(), Some("ns")),
            Pod::url_path(&(), Some("ns"))
        );
    }

    #[test]
    fn a_shared_object_is_copied_only_when_changed_while_shared() {
        let pod: Pod = serde_json::from_value(pod_json()).expect("pod");
        let mut shared = Shared::from(pod);
        // What the reflector store does with the event's object: a copy of the Arc.
        let stored = shared.clone();
        assert!(std::sync::Arc::ptr_eq(&shared.0, &stored.0));
        assert_eq!(stored.labels().len(), 3, "reads go to the pod");
        // Changed while shared: the changer gets its own copy, the stored one is untouched.
        shared.meta_mut().labels = None;
        assert!(!std::sync::Arc::ptr_eq(&shared.0, &stored.0));
        assert_eq!(stored.labels().len(), 3);
        // Changed while nothing else holds it (the sink trimming a decoded object): no copy.
        let before = std::sync::Arc::as_ptr(&shared.0);
        shared.meta_mut().annotations = None;
        assert_eq!(std::sync::Arc::as_ptr(&shared.0), before);
        // The kind is the pod's, and it decodes as a pod does.
        assert_eq!(Shared::<Pod>::plural(&()), Pod::plural(&()));
        let decoded: Shared<Pod> = serde_json::from_value(pod_json()).expect("pod");
        assert_eq!(decoded.name_any(), "array-7-1");
    }
}
