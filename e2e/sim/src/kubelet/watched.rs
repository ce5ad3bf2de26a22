//! The kubelet's pod watch decodes pods without their `metadata.managedFields`.
//!
//! No part of the kubelet reads managedFields (a real kubelet does not either: field ownership
//! is the API server's bookkeeping), but k8s-openapi's `Pod` decodes every entry into
//! `serde_json::Value` trees — a map per field path, most of a pod's size once the operator and
//! the kubelet have both written it. Each pod of an array reaches the kubelet five times (added,
//! running, succeeded, released, deleted): decoding those entries was ~7 % of barge-sim's CPU
//! (API server and kubelet together) during an array of 10,000 (docs/benchmarks.md, issue 14).
//!
//! [`WatchedPod`] decodes `spec` and `status` with k8s-openapi's own code and the metadata
//! field by field, leaving `managedFields` out (serde skips unknown keys without building
//! them); `Api<WatchedPod>` lists and watches pods.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::ObjectMeta;
use kube::runtime::watcher;
use kube::Resource;
use serde::Deserialize;

/// A pod as the kubelet's watch decodes it: everything but `metadata.managedFields`.
#[derive(Clone, Debug)]
pub(crate) struct WatchedPod(pub Pod);

/// `ObjectMeta` without `managedFields` (any key not named here is skipped unread).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Meta {
    annotations: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
    resource_version: Option<String>,
    self_link: Option<String>,
    uid: Option<String>,
}

#[derive(Deserialize)]
struct Shape {
    kind: Option<String>,
    metadata: Option<Meta>,
    spec: Option<PodSpec>,
    status: Option<PodStatus>,
}

impl<'de> Deserialize<'de> for WatchedPod {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let shape = Shape::deserialize(deserializer)?;
        if let Some(kind) = shape.kind.as_deref().filter(|k| *k != "Pod") {
            return Err(serde::de::Error::invalid_value(
                serde::de::Unexpected::Str(kind),
                &"Pod",
            ));
        }
        let m = shape.metadata.unwrap_or_default();
        Ok(WatchedPod(Pod {
            metadata: ObjectMeta {
                annotations: m.annotations,
                creation_timestamp: m.creation_timestamp,
                deletion_grace_period_seconds: m.deletion_grace_period_seconds,
                deletion_timestamp: m.deletion_timestamp,
                finalizers: m.finalizers,
                generate_name: m.generate_name,
                generation: m.generation,
                labels: m.labels,
                managed_fields: None,
                name: m.name,
                namespace: m.namespace,
                owner_references: m.owner_references,
                resource_version: m.resource_version,
                self_link: m.self_link,
                uid: m.uid,
            },
            spec: shape.spec,
            status: shape.status,
        }))
    }
}

/// The watch's event with the `Pod` inside.
pub(crate) fn into_pod_event(e: watcher::Event<WatchedPod>) -> watcher::Event<Pod> {
    match e {
        watcher::Event::Apply(p) => watcher::Event::Apply(p.0),
        watcher::Event::Delete(p) => watcher::Event::Delete(p.0),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(p) => watcher::Event::InitApply(p.0),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

impl Resource for WatchedPod {
    type DynamicType = ();
    type Scope = <Pod as Resource>::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        Pod::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        Pod::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        Pod::version(dt)
    }

    fn api_version(dt: &()) -> Cow<'_, str> {
        Pod::api_version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        Pod::plural(dt)
    }

    fn url_path(dt: &(), namespace: Option<&str>) -> String {
        Pod::url_path(dt, namespace)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.0.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A pod as the API server serves it decodes to k8s-openapi's `Pod` minus managedFields,
    /// every other field alike; another kind is refused.
    #[test]
    fn decodes_what_pod_decodes_but_managed_fields() {
        let served = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "p", "namespace": "n", "uid": "u", "resourceVersion": "12",
                "generateName": "p-", "generation": 1, "selfLink": "/x",
                "creationTimestamp": "2026-12-07T10:00:00Z",
                "deletionTimestamp": "2026-12-07T10:00:30Z", "deletionGracePeriodSeconds": 30,
                "labels": {"a": "b"}, "annotations": {"c": "d"}, "finalizers": ["f"],
                "ownerReferences": [{"apiVersion": "batch.barge.dev/v1", "kind": "Job",
                    "name": "j", "uid": "o", "controller": true}],
                "managedFields": [{"manager": "barge", "operation": "Update",
                    "apiVersion": "v1", "time": "2026-12-07T10:00:00Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {"f:a": {}}}}}],
            },
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        });
        let mut expected: Pod = serde_json::from_value(served.clone()).unwrap();
        assert!(expected.metadata.managed_fields.is_some());
        expected.metadata.managed_fields = None;
        let got: WatchedPod = serde_json::from_value(served).unwrap();
        assert_eq!(got.0, expected);
        let bare: WatchedPod = serde_json::from_value(json!({"metadata": null})).unwrap();
        assert_eq!(bare.0, Pod::default());
        assert!(serde_json::from_value::<WatchedPod>(json!({"kind": "Node"})).is_err());
    }
}
