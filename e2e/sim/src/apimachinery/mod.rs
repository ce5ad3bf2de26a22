//! The object semantics of the simulated API server, as pure functions over `serde_json::Value`.
//!
//! The HTTP layer (routing, storage, watch) decodes a request body into a `Value` and then calls
//! into this module; nothing here does I/O, so every behaviour is unit-tested directly:
//!
//! - [`validation`]: CRD structural schemas compiled once per version: pruning of unknown fields,
//!   `default:` values, OpenAPI keyword validation and `x-kubernetes-validations` CEL rules (via
//!   kube-cel), reported as `field.Error`s and rendered into the 422 `Status` kube-apiserver sends.
//!   Also the name and label validators of `k8s.io/apimachinery/pkg/util/validation`.
//! - [`selectors`]: label and field selectors parsed once into matchers.
//! - [`patch`]: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch for
//!   built-in kinds, with the merge keys Kubernetes declares.
//! - [`apply`]: server-side apply and `metadata.managedFields` bookkeeping (structured-merge-diff
//!   semantics: field sets, ownership, conflicts, forced applies).
//! - [`table`]: `meta.k8s.io/v1` `Table` rendering for `kubectl get`.
//!
//! Data flows one way: request `Value` → (patch | apply) → prune → default → validate → store; and
//! stored `Value`s → selectors → table. Errors that reach a client are built here too
//! ([`validation::invalid_status`], [`apply::conflict_status`]) so their wording matches a real
//! API server.

pub mod apply;
pub mod builtin;
pub(crate) mod gofmt;
pub mod patch;
pub mod selectors;
pub mod table;
pub mod validation;

use serde_json::Value;

/// JSON equality with Go's numeric view of decoded JSON: `1` equals `1.0`.
pub(crate) fn structural_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| structural_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| structural_eq(v, w)))
        }
        _ => a == b,
    }
}
