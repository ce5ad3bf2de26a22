//! Decoding of the Kubernetes protobuf request bodies some clients send for built-in kinds
//! (Helm's release storage writes Secrets / ConfigMaps through client-go's typed clientset, which
//! encodes as `application/vnd.kubernetes.protobuf`). The server answers in JSON, which client-go
//! accepts; only request bodies need decoding.
//!
//! Wire format: the 4-byte magic `k8s\0`, then a `runtime.Unknown` {typeMeta{apiVersion, kind},
//! raw, contentEncoding, contentType} whose `raw` holds the object's message. Messages are decoded
//! into JSON through field-number tables (from `k8s.io/api/core/v1/generated.proto` and
//! `k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto`) for the kinds clients send this way.

use base64::Engine;
use serde_json::{json, Map, Value};

/// The protobuf content type.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

#[derive(Clone, Copy)]
enum F {
    Str,
    Bytes,
    Int,
    Bool,
    Time,
    Msg(&'static [Field]),
    MapStrStr,
    MapStrBytes,
    RepStr,
    RepMsg(&'static [Field]),
    RawJson,
    /// `map<string, resource.Quantity>` (Quantity is `{string = 1}`).
    MapStrQuantity,
    /// `intstr.IntOrString` {type = 1, intVal = 2, strVal = 3}.
    IntOrString,
    /// `metav1.MicroTime` {seconds = 1, nanos = 2}.
    MicroTime,
    /// A non-pointer Go int (`omitempty`): 0 is not shown.
    IntOmitZero,
    /// A non-pointer Go bool (`omitempty`): false is not shown.
    BoolOmitFalse,
}

type Field = (u32, &'static str, F);

const OWNER_REF: &[Field] = &[
    (1, "kind", F::Str),
    (3, "name", F::Str),
    (4, "uid", F::Str),
    (5, "apiVersion", F::Str),
    (6, "controller", F::Bool),
    (7, "blockOwnerDeletion", F::Bool),
];
const FIELDS_V1: &[Field] = &[(1, "Raw", F::RawJson)];
const MANAGED_FIELDS: &[Field] = &[
    (1, "manager", F::Str),
    (2, "operation", F::Str),
    (3, "apiVersion", F::Str),
    (4, "time", F::Time),
    (6, "fieldsType", F::Str),
    (7, "fieldsV1", F::Msg(FIELDS_V1)),
    (8, "subresource", F::Str),
];
const OBJECT_META: &[Field] = &[
    (1, "name", F::Str),
    (2, "generateName", F::Str),
    (3, "namespace", F::Str),
    (5, "uid", F::Str),
    (6, "resourceVersion", F::Str),
    (7, "generation", F::Int),
    (8, "creationTimestamp", F::Time),
    (9, "deletionTimestamp", F::Time),
    (10, "deletionGracePeriodSeconds", F::Int),
    (11, "labels", F::MapStrStr),
    (12, "annotations", F::MapStrStr),
    (13, "ownerReferences", F::RepMsg(OWNER_REF)),
    (14, "finalizers", F::RepStr),
    (17, "managedFields", F::RepMsg(MANAGED_FIELDS)),
];
const SECRET: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "data", F::MapStrBytes),
    (3, "type", F::Str),
    (4, "stringData", F::MapStrStr),
    (5, "immutable", F::Bool),
];
const CONFIG_MAP: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "data", F::MapStrStr),
    (3, "binaryData", F::MapStrBytes),
    (4, "immutable", F::Bool),
];
const PRECONDITIONS: &[Field] = &[(1, "uid", F::Str), (2, "resourceVersion", F::Str)];
const DELETE_OPTIONS: &[Field] = &[
    (1, "gracePeriodSeconds", F::Int),
    (2, "preconditions", F::Msg(PRECONDITIONS)),
    (3, "orphanDependents", F::Bool),
    (4, "propagationPolicy", F::Str),
    (5, "dryRun", F::RepStr),
];
const NAMESPACE_SPEC: &[Field] = &[(1, "finalizers", F::RepStr)];
const NAMESPACE_STATUS: &[Field] = &[(1, "phase", F::Str)];
const NAMESPACE: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(NAMESPACE_SPEC)),
    (3, "status", F::Msg(NAMESPACE_STATUS)),
];
const OBJECT_REFERENCE: &[Field] = &[
    (1, "kind", F::Str),
    (2, "namespace", F::Str),
    (3, "name", F::Str),
    (4, "uid", F::Str),
    (5, "apiVersion", F::Str),
    (6, "resourceVersion", F::Str),
    (7, "fieldPath", F::Str),
];
const LOCAL_OBJECT_REFERENCE: &[Field] = &[(1, "name", F::Str)];
const SERVICE_ACCOUNT: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "secrets", F::RepMsg(OBJECT_REFERENCE)),
    (3, "imagePullSecrets", F::RepMsg(LOCAL_OBJECT_REFERENCE)),
    (4, "automountServiceAccountToken", F::Bool),
];
const SERVICE_PORT: &[Field] = &[
    (1, "name", F::Str),
    (2, "protocol", F::Str),
    (3, "port", F::Int),
    (4, "targetPort", F::IntOrString),
    (5, "nodePort", F::IntOmitZero),
    (6, "appProtocol", F::Str),
];
const SERVICE_SPEC: &[Field] = &[
    (1, "ports", F::RepMsg(SERVICE_PORT)),
    (2, "selector", F::MapStrStr),
    (3, "clusterIP", F::Str),
    (4, "type", F::Str),
    (5, "externalIPs", F::RepStr),
    (7, "sessionAffinity", F::Str),
    (8, "loadBalancerIP", F::Str),
    (9, "loadBalancerSourceRanges", F::RepStr),
    (10, "externalName", F::Str),
    (11, "externalTrafficPolicy", F::Str),
    (12, "healthCheckNodePort", F::IntOmitZero),
    (13, "publishNotReadyAddresses", F::BoolOmitFalse),
    (17, "ipFamilyPolicy", F::Str),
    (18, "clusterIPs", F::RepStr),
    (19, "ipFamilies", F::RepStr),
    (20, "allocateLoadBalancerNodePorts", F::Bool),
    (21, "loadBalancerClass", F::Str),
    (22, "internalTrafficPolicy", F::Str),
];
const SERVICE: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(SERVICE_SPEC)),
];
const RESOURCE_QUOTA_SPEC: &[Field] = &[(1, "hard", F::MapStrQuantity), (2, "scopes", F::RepStr)];
const RESOURCE_QUOTA: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(RESOURCE_QUOTA_SPEC)),
];
const CONTAINER_PORT: &[Field] = &[
    (1, "name", F::Str),
    (2, "hostPort", F::IntOmitZero),
    (3, "containerPort", F::Int),
    (4, "protocol", F::Str),
    (5, "hostIP", F::Str),
];
const ENV_VAR: &[Field] = &[(1, "name", F::Str), (2, "value", F::Str)];
const RESOURCES: &[Field] = &[
    (1, "limits", F::MapStrQuantity),
    (2, "requests", F::MapStrQuantity),
];
const CONTAINER: &[Field] = &[
    (1, "name", F::Str),
    (2, "image", F::Str),
    (3, "command", F::RepStr),
    (4, "args", F::RepStr),
    (5, "workingDir", F::Str),
    (6, "ports", F::RepMsg(CONTAINER_PORT)),
    (7, "env", F::RepMsg(ENV_VAR)),
    (8, "resources", F::Msg(RESOURCES)),
    (13, "terminationMessagePath", F::Str),
    (14, "imagePullPolicy", F::Str),
    (16, "stdin", F::BoolOmitFalse),
    (17, "stdinOnce", F::BoolOmitFalse),
    (18, "tty", F::BoolOmitFalse),
    (20, "terminationMessagePolicy", F::Str),
    (24, "restartPolicy", F::Str),
];
const TOLERATION: &[Field] = &[
    (1, "key", F::Str),
    (2, "operator", F::Str),
    (3, "value", F::Str),
    (4, "effect", F::Str),
    (5, "tolerationSeconds", F::Int),
];
const POD_SPEC: &[Field] = &[
    (2, "containers", F::RepMsg(CONTAINER)),
    (3, "restartPolicy", F::Str),
    (4, "terminationGracePeriodSeconds", F::Int),
    (5, "activeDeadlineSeconds", F::Int),
    (6, "dnsPolicy", F::Str),
    (7, "nodeSelector", F::MapStrStr),
    (8, "serviceAccountName", F::Str),
    (9, "serviceAccount", F::Str),
    (10, "nodeName", F::Str),
    (11, "hostNetwork", F::BoolOmitFalse),
    (15, "imagePullSecrets", F::RepMsg(LOCAL_OBJECT_REFERENCE)),
    (16, "hostname", F::Str),
    (17, "subdomain", F::Str),
    (19, "schedulerName", F::Str),
    (20, "initContainers", F::RepMsg(CONTAINER)),
    (21, "automountServiceAccountToken", F::Bool),
    (22, "tolerations", F::RepMsg(TOLERATION)),
    (24, "priorityClassName", F::Str),
    (25, "priority", F::Int),
    (29, "runtimeClassName", F::Str),
    (30, "enableServiceLinks", F::Bool),
    (31, "preemptionPolicy", F::Str),
];
const POD: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(POD_SPEC)),
];
const POD_TEMPLATE_SPEC: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(POD_SPEC)),
];
const LABEL_SELECTOR_REQUIREMENT: &[Field] = &[
    (1, "key", F::Str),
    (2, "operator", F::Str),
    (3, "values", F::RepStr),
];
const LABEL_SELECTOR: &[Field] = &[
    (1, "matchLabels", F::MapStrStr),
    (2, "matchExpressions", F::RepMsg(LABEL_SELECTOR_REQUIREMENT)),
];
const ROLLING_UPDATE: &[Field] = &[
    (1, "maxUnavailable", F::IntOrString),
    (2, "maxSurge", F::IntOrString),
];
const DEPLOYMENT_STRATEGY: &[Field] = &[
    (1, "type", F::Str),
    (2, "rollingUpdate", F::Msg(ROLLING_UPDATE)),
];
const DEPLOYMENT_SPEC: &[Field] = &[
    (1, "replicas", F::Int),
    (2, "selector", F::Msg(LABEL_SELECTOR)),
    (3, "template", F::Msg(POD_TEMPLATE_SPEC)),
    (4, "strategy", F::Msg(DEPLOYMENT_STRATEGY)),
    (5, "minReadySeconds", F::Int),
    (6, "revisionHistoryLimit", F::Int),
    (7, "paused", F::BoolOmitFalse),
    (9, "progressDeadlineSeconds", F::Int),
];
const DEPLOYMENT: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(DEPLOYMENT_SPEC)),
];
const JOB_SPEC: &[Field] = &[
    (1, "parallelism", F::Int),
    (2, "completions", F::Int),
    (3, "activeDeadlineSeconds", F::Int),
    (4, "selector", F::Msg(LABEL_SELECTOR)),
    (5, "manualSelector", F::Bool),
    (6, "template", F::Msg(POD_TEMPLATE_SPEC)),
    (7, "backoffLimit", F::Int),
    (8, "ttlSecondsAfterFinished", F::Int),
    (9, "completionMode", F::Str),
    (10, "suspend", F::Bool),
];
const JOB: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(JOB_SPEC)),
];
const JOB_TEMPLATE: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(JOB_SPEC)),
];
const CRON_JOB_SPEC: &[Field] = &[
    (1, "schedule", F::Str),
    (2, "startingDeadlineSeconds", F::Int),
    (3, "concurrencyPolicy", F::Str),
    (4, "suspend", F::Bool),
    (5, "jobTemplate", F::Msg(JOB_TEMPLATE)),
    (6, "successfulJobsHistoryLimit", F::Int),
    (7, "failedJobsHistoryLimit", F::Int),
    (8, "timeZone", F::Str),
];
const CRON_JOB: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(CRON_JOB_SPEC)),
];
const POLICY_RULE: &[Field] = &[
    (1, "verbs", F::RepStr),
    (2, "apiGroups", F::RepStr),
    (3, "resources", F::RepStr),
    (4, "resourceNames", F::RepStr),
    (5, "nonResourceURLs", F::RepStr),
];
const ROLE: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "rules", F::RepMsg(POLICY_RULE)),
];
const AGGREGATION_RULE: &[Field] = &[(1, "clusterRoleSelectors", F::RepMsg(LABEL_SELECTOR))];
const CLUSTER_ROLE: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "rules", F::RepMsg(POLICY_RULE)),
    (3, "aggregationRule", F::Msg(AGGREGATION_RULE)),
];
const SUBJECT: &[Field] = &[
    (1, "kind", F::Str),
    (2, "apiGroup", F::Str),
    (3, "name", F::Str),
    (4, "namespace", F::Str),
];
const ROLE_REF: &[Field] = &[
    (1, "apiGroup", F::Str),
    (2, "kind", F::Str),
    (3, "name", F::Str),
];
const ROLE_BINDING: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "subjects", F::RepMsg(SUBJECT)),
    (3, "roleRef", F::Msg(ROLE_REF)),
];
const PRIORITY_CLASS: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "value", F::Int),
    (3, "globalDefault", F::BoolOmitFalse),
    (4, "description", F::Str),
    (5, "preemptionPolicy", F::Str),
];
const PDB_SPEC: &[Field] = &[
    (1, "minAvailable", F::IntOrString),
    (2, "selector", F::Msg(LABEL_SELECTOR)),
    (3, "maxUnavailable", F::IntOrString),
    (4, "unhealthyPodEvictionPolicy", F::Str),
];
const PDB: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(PDB_SPEC)),
];
const LEASE_SPEC: &[Field] = &[
    (1, "holderIdentity", F::Str),
    (2, "leaseDurationSeconds", F::Int),
    (3, "acquireTime", F::MicroTime),
    (4, "renewTime", F::MicroTime),
    (5, "leaseTransitions", F::Int),
    (6, "strategy", F::Str),
    (7, "preferredHolder", F::Str),
];
const LEASE: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(LEASE_SPEC)),
];
// k8s.io/api/authorization/v1 and authentication/v1: the review kinds kubectl sends as
// protobuf (`auth can-i`, `auth whoami`). Selector attributes and `extra` are not decoded.
const RESOURCE_ATTRIBUTES: &[Field] = &[
    (1, "namespace", F::Str),
    (2, "verb", F::Str),
    (3, "group", F::Str),
    (4, "version", F::Str),
    (5, "resource", F::Str),
    (6, "subresource", F::Str),
    (7, "name", F::Str),
];
const NON_RESOURCE_ATTRIBUTES: &[Field] = &[(1, "path", F::Str), (2, "verb", F::Str)];
const SELF_SUBJECT_ACCESS_REVIEW_SPEC: &[Field] = &[
    (1, "resourceAttributes", F::Msg(RESOURCE_ATTRIBUTES)),
    (2, "nonResourceAttributes", F::Msg(NON_RESOURCE_ATTRIBUTES)),
];
const SUBJECT_ACCESS_REVIEW_SPEC: &[Field] = &[
    (1, "resourceAttributes", F::Msg(RESOURCE_ATTRIBUTES)),
    (2, "nonResourceAttributes", F::Msg(NON_RESOURCE_ATTRIBUTES)),
    (3, "user", F::Str),
    (4, "groups", F::RepStr),
    (6, "uid", F::Str),
];
const SELF_SUBJECT_ACCESS_REVIEW: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(SELF_SUBJECT_ACCESS_REVIEW_SPEC)),
];
const SUBJECT_ACCESS_REVIEW: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(SUBJECT_ACCESS_REVIEW_SPEC)),
];
const SELF_SUBJECT_RULES_REVIEW_SPEC: &[Field] = &[(1, "namespace", F::Str)];
const SELF_SUBJECT_RULES_REVIEW: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(SELF_SUBJECT_RULES_REVIEW_SPEC)),
];
const SELF_SUBJECT_REVIEW: &[Field] = &[(1, "metadata", F::Msg(OBJECT_META))];
const TYPE_META: &[Field] = &[(1, "apiVersion", F::Str), (2, "kind", F::Str)];
const UNKNOWN: &[Field] = &[
    (1, "typeMeta", F::Msg(TYPE_META)),
    (2, "raw", F::Bytes),
    (3, "contentEncoding", F::Str),
    (4, "contentType", F::Str),
];

fn kind_fields(kind: &str) -> Option<&'static [Field]> {
    match kind {
        "Secret" => Some(SECRET),
        "ConfigMap" => Some(CONFIG_MAP),
        "DeleteOptions" => Some(DELETE_OPTIONS),
        "Namespace" => Some(NAMESPACE),
        "ServiceAccount" => Some(SERVICE_ACCOUNT),
        "Service" => Some(SERVICE),
        "ResourceQuota" => Some(RESOURCE_QUOTA),
        "Pod" => Some(POD),
        "Deployment" => Some(DEPLOYMENT),
        "Job" => Some(JOB),
        "CronJob" => Some(CRON_JOB),
        "Role" => Some(ROLE),
        "ClusterRole" => Some(CLUSTER_ROLE),
        "RoleBinding" | "ClusterRoleBinding" => Some(ROLE_BINDING),
        "PriorityClass" => Some(PRIORITY_CLASS),
        "PodDisruptionBudget" => Some(PDB),
        "Lease" => Some(LEASE),
        "SelfSubjectAccessReview" => Some(SELF_SUBJECT_ACCESS_REVIEW),
        "SubjectAccessReview" | "LocalSubjectAccessReview" => Some(SUBJECT_ACCESS_REVIEW),
        "SelfSubjectRulesReview" => Some(SELF_SUBJECT_RULES_REVIEW),
        "SelfSubjectReview" => Some(SELF_SUBJECT_REVIEW),
        _ => None,
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or("truncated field")?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn skip(&mut self, wire: u64) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            w => Err(format!("unsupported wire type {w}")),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), String> {
        if self.pos + n > self.buf.len() {
            return Err("truncated field".into());
        }
        self.pos += n;
        Ok(())
    }
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8 in string field".to_string())
}

/// How a map entry's value is encoded.
#[derive(Clone, Copy)]
enum MapValue {
    Str,
    Bytes,
    Quantity,
}

fn map_entry(b: &[u8], value_kind: MapValue) -> Result<(String, Value), String> {
    let mut r = Reader { buf: b, pos: 0 };
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    while r.pos < b.len() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => k = text(r.bytes()?)?,
            (2, 2) => {
                let raw = r.bytes()?;
                v = match value_kind {
                    MapValue::Bytes => json!(base64::engine::general_purpose::STANDARD.encode(raw)),
                    MapValue::Str => json!(text(raw)?),
                    MapValue::Quantity => quantity(raw)?,
                };
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok((k, v))
}

/// metav1.Time (seconds) or metav1.MicroTime (with microseconds).
fn time(b: &[u8], micro: bool) -> Result<Value, String> {
    let mut r = Reader { buf: b, pos: 0 };
    let (mut secs, mut nanos): (i64, i64) = (0, 0);
    while r.pos < b.len() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 0) => secs = r.varint()? as i64,
            (2, 0) => nanos = r.varint()? as i64,
            (_, w) => r.skip(w)?,
        }
    }
    let t = jiff::Timestamp::new(
        secs,
        if micro {
            (nanos / 1000 * 1000) as i32
        } else {
            0
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(json!(if micro {
        t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    } else {
        super::objects::rfc3339(t)
    }))
}

/// resource.Quantity: `{string = 1}`.
fn quantity(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader { buf: b, pos: 0 };
    let mut s = String::new();
    while r.pos < b.len() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => s = text(r.bytes()?)?,
            (_, w) => r.skip(w)?,
        }
    }
    Ok(json!(s))
}

/// intstr.IntOrString: `{type = 1 (0 int, 1 string), intVal = 2, strVal = 3}`.
fn int_or_string(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader { buf: b, pos: 0 };
    let (mut ty, mut i, mut s) = (0u64, 0i64, String::new());
    while r.pos < b.len() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 0) => ty = r.varint()?,
            (2, 0) => i = r.varint()? as i32 as i64,
            (3, 2) => s = text(r.bytes()?)?,
            (_, w) => r.skip(w)?,
        }
    }
    Ok(if ty == 1 { json!(s) } else { json!(i) })
}

fn message(b: &[u8], fields: &'static [Field]) -> Result<Value, String> {
    let mut r = Reader { buf: b, pos: 0 };
    let mut out = Map::new();
    while r.pos < b.len() {
        let tag = r.varint()?;
        let (num, wire) = (tag >> 3, tag & 7);
        let Some((_, name, kind)) = fields.iter().find(|(n, _, _)| u64::from(*n) == num) else {
            r.skip(wire)?;
            continue;
        };
        let name = name.to_string();
        match (*kind, wire) {
            (F::Int, 0) => {
                out.insert(name, json!(r.varint()? as i64));
            }
            (F::Bool, 0) => {
                out.insert(name, json!(r.varint()? != 0));
            }
            (F::Str, 2) => {
                // Go strings are `omitempty`: the empty value gogo-proto always writes is not shown.
                let t = text(r.bytes()?)?;
                if !t.is_empty() {
                    out.insert(name, json!(t));
                }
            }
            (F::IntOmitZero, 0) => {
                let v = r.varint()? as i64;
                if v != 0 {
                    out.insert(name, json!(v));
                }
            }
            (F::BoolOmitFalse, 0) => {
                if r.varint()? != 0 {
                    out.insert(name, json!(true));
                }
            }
            (F::Bytes, 2) => {
                out.insert(
                    name,
                    json!(base64::engine::general_purpose::STANDARD.encode(r.bytes()?)),
                );
            }
            (F::RawJson, 2) => {
                let raw = r.bytes()?;
                out.insert(name, serde_json::from_slice(raw).unwrap_or(Value::Null));
            }
            (F::Time, 2) => {
                out.insert(name, time(r.bytes()?, false)?);
            }
            (F::MicroTime, 2) => {
                out.insert(name, time(r.bytes()?, true)?);
            }
            (F::IntOrString, 2) => {
                out.insert(name, int_or_string(r.bytes()?)?);
            }
            (F::MapStrQuantity, 2) => {
                let (k, v) = map_entry(r.bytes()?, MapValue::Quantity)?;
                if let Some(m) = out.entry(name).or_insert_with(|| json!({})).as_object_mut() {
                    m.insert(k, v);
                }
            }
            (F::Msg(sub), 2) => {
                out.insert(name, message(r.bytes()?, sub)?);
            }
            (F::MapStrStr | F::MapStrBytes, 2) => {
                let mv = if matches!(kind, F::MapStrBytes) {
                    MapValue::Bytes
                } else {
                    MapValue::Str
                };
                let (k, v) = map_entry(r.bytes()?, mv)?;
                if let Some(m) = out.entry(name).or_insert_with(|| json!({})).as_object_mut() {
                    m.insert(k, v);
                }
            }
            (F::RepStr, 2) => {
                let s = text(r.bytes()?)?;
                if let Some(a) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
                    a.push(json!(s));
                }
            }
            (F::RepMsg(sub), 2) => {
                let m = message(r.bytes()?, sub)?;
                if let Some(a) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
                    a.push(m);
                }
            }
            (_, w) => r.skip(w)?,
        }
    }
    // FieldsV1 is `{"Raw": <json>}` on the wire and the JSON itself in the API.
    if fields.as_ptr() == FIELDS_V1.as_ptr() {
        return Ok(out.remove("Raw").unwrap_or(json!({})));
    }
    Ok(Value::Object(out))
}

/// Decode a protobuf request body (`k8s\0` + runtime.Unknown) into the object's JSON form.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("protobuf body without the k8s magic prefix")?;
    let unknown = message(rest, UNKNOWN)?;
    let api_version = unknown
        .pointer("/typeMeta/apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = unknown
        .pointer("/typeMeta/kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let fields = kind_fields(&kind).ok_or_else(|| {
        format!("protobuf encoding of {kind} is not supported by barge-sim; send JSON")
    })?;
    let raw = unknown
        .get("raw")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|e| e.to_string())?;
    let mut obj = message(&raw, fields)?;
    if let Some(o) = obj.as_object_mut() {
        if !api_version.is_empty() {
            o.insert("apiVersion".into(), json!(api_version));
        }
        o.insert("kind".into(), json!(kind));
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn ld(num: u32, payload: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(num) << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    #[test]
    fn decodes_a_helm_release_secret() {
        let mut label = Vec::new();
        ld(1, b"owner", &mut label);
        ld(2, b"helm", &mut label);
        let mut meta = Vec::new();
        ld(1, b"sh.helm.release.v1.demo.v1", &mut meta);
        ld(3, b"default", &mut meta);
        ld(11, &label, &mut meta);
        ld(14, b"x/y", &mut meta);
        let mut data = Vec::new();
        ld(1, b"release", &mut data);
        ld(2, b"\x01\x02", &mut data);
        let mut secret = Vec::new();
        ld(1, &meta, &mut secret);
        ld(2, &data, &mut secret);
        ld(3, b"helm.sh/release.v1", &mut secret);
        let mut tm = Vec::new();
        ld(1, b"v1", &mut tm);
        ld(2, b"Secret", &mut tm);
        let mut unknown = Vec::new();
        ld(1, &tm, &mut unknown);
        ld(2, &secret, &mut unknown);
        let mut body = MAGIC.to_vec();
        body.extend(unknown);
        let v = decode(&body).unwrap();
        assert_eq!(v["kind"], "Secret");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["metadata"]["name"], "sh.helm.release.v1.demo.v1");
        assert_eq!(v["metadata"]["labels"]["owner"], "helm");
        assert_eq!(v["metadata"]["finalizers"], json!(["x/y"]));
        assert_eq!(v["data"]["release"], "AQI=");
        assert_eq!(v["type"], "helm.sh/release.v1");
        assert!(decode(b"nope").is_err());
        assert!(decode(&[b'k', b'8', b's', 0, 0x0a, 0x05]).is_err());
    }

    #[test]
    fn decodes_a_service_with_int_or_string_and_omits_go_zero_values() {
        let mut target = Vec::new();
        varint(1 << 3, &mut target);
        varint(0, &mut target);
        varint(2 << 3, &mut target);
        varint(8080, &mut target);
        let mut port = Vec::new();
        ld(1, b"web", &mut port);
        ld(2, b"TCP", &mut port);
        varint(3 << 3, &mut port);
        varint(80, &mut port);
        ld(4, &target, &mut port);
        varint(5 << 3, &mut port);
        varint(0, &mut port);
        let mut spec = Vec::new();
        ld(1, &port, &mut spec);
        ld(4, b"", &mut spec);
        let mut meta = Vec::new();
        ld(1, b"svc", &mut meta);
        let mut svc = Vec::new();
        ld(1, &meta, &mut svc);
        ld(2, &spec, &mut svc);
        let mut tm = Vec::new();
        ld(1, b"v1", &mut tm);
        ld(2, b"Service", &mut tm);
        let mut unknown = Vec::new();
        ld(1, &tm, &mut unknown);
        ld(2, &svc, &mut unknown);
        let mut body = MAGIC.to_vec();
        body.extend(unknown);
        let v = decode(&body).unwrap();
        assert_eq!(
            v["spec"]["ports"],
            json!([{"name": "web", "protocol": "TCP", "port": 80, "targetPort": 8080}])
        );
        assert!(v["spec"].get("type").is_none(), "empty strings are omitted");
    }
}
