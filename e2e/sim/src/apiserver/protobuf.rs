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

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), String> {
    let mut r = Reader { buf: b, pos: 0 };
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    while r.pos < b.len() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => k = text(r.bytes()?)?,
            (2, 2) => {
                let raw = r.bytes()?;
                v = if bytes_value {
                    json!(base64::engine::general_purpose::STANDARD.encode(raw))
                } else {
                    json!(text(raw)?)
                };
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok((k, v))
}

fn time(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader { buf: b, pos: 0 };
    let mut secs: i64 = 0;
    while r.pos < b.len() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 0) => secs = r.varint()? as i64,
            (_, w) => r.skip(w)?,
        }
    }
    let t = jiff::Timestamp::from_second(secs).map_err(|e| e.to_string())?;
    Ok(json!(super::objects::rfc3339(t)))
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
                out.insert(name, json!(text(r.bytes()?)?));
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
                out.insert(name, time(r.bytes()?)?);
            }
            (F::Msg(sub), 2) => {
                out.insert(name, message(r.bytes()?, sub)?);
            }
            (F::MapStrStr | F::MapStrBytes, 2) => {
                let (k, v) = map_entry(r.bytes()?, matches!(kind, F::MapStrBytes))?;
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
}
