//! The seam between the HTTP server and the object-semantics library (`crate::apimachinery`).
//!
//! Handlers call only these functions for schema validation / pruning / defaulting, selectors,
//! the three patch types, server-side apply and `kubectl get` tables, so that the library can be
//! swapped in or upgraded in one place.

use serde_json::{json, Value};

use crate::apimachinery::apply::{self, ApplyOptions, ListTypes, Untyped};
use crate::apimachinery::builtin::{builtin_kind, BuiltinKind};
use crate::apimachinery::patch;
use crate::apimachinery::selectors;
use crate::apimachinery::table::{self, IncludeObject, PrinterColumn};
use crate::apimachinery::validation::{invalid_status, CompiledSchema};

use super::status::{ApiError, ApiResult};

/// A compiled CRD version schema (and the raw one, served in /openapi).
#[derive(Debug)]
pub struct Schema {
    raw: Value,
    compiled: CompiledSchema,
}

impl Schema {
    pub fn compile(raw: &Value) -> Result<Schema, String> {
        let compiled = CompiledSchema::new(raw).map_err(|e| e.to_string())?;
        let cel = compiled.cel_compile_errors();
        if !cel.is_empty() {
            return Err(cel.join("; "));
        }
        Ok(Schema {
            raw: raw.clone(),
            compiled,
        })
    }

    /// The schema as given in the CRD.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Remove unknown fields; returns their paths.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        self.compiled.prune(obj)
    }

    pub fn apply_defaults(&self, obj: &mut Value) {
        self.compiled.apply_defaults(obj)
    }

    /// Structural + CEL validation; Err holds the 422 Status body.
    pub fn validate(
        &self,
        group: &str,
        kind: &str,
        name: &str,
        obj: &Value,
        old: Option<&Value>,
    ) -> Result<(), Value> {
        self.compiled
            .validate(obj, old)
            .map_err(|errs| invalid_status(group, kind, name, &errs))
    }
}

/// A parsed label selector.
pub struct LabelSelector(selectors::LabelSelector);

/// A parsed field selector.
pub struct FieldSelector {
    inner: selectors::FieldSelector,
    keys: Vec<String>,
}

impl LabelSelector {
    pub fn parse(s: &str) -> ApiResult<Self> {
        selectors::parse_label_selector(s)
            .map(LabelSelector)
            .map_err(ApiError::bad_request)
    }

    pub fn matches(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.0.matches(labels)
    }
}

impl FieldSelector {
    /// Parse and check the fields against those the kind supports (400 otherwise).
    /// A custom resource supports the metadata fields plus its version's `selectableFields`.
    pub fn parse(s: &str, group: &str, kind: &str, custom: Option<&[String]>) -> ApiResult<Self> {
        let inner = selectors::parse_field_selector(s).map_err(ApiError::bad_request)?;
        let custom_fields: Option<Vec<&str>> = custom.map(|selectable| {
            ["metadata.name", "metadata.namespace"]
                .into_iter()
                .chain(selectable.iter().map(String::as_str))
                .collect()
        });
        let supported: Option<&[&str]> = match &custom_fields {
            Some(fields) => Some(fields),
            None => selectors::supported_field_labels(group, kind),
        };
        if let Some(sup) = supported {
            inner.check_supported(sup).map_err(ApiError::bad_request)?;
        }
        let mut keys: Vec<String> = inner.terms.iter().map(|t| t.field.clone()).collect();
        keys.sort();
        keys.dedup();
        Ok(FieldSelector { inner, keys })
    }

    /// The field paths the selector reads (to decide whether indexed fields suffice).
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.inner.matches(obj)
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch_doc: &Value) {
    patch::merge_patch(target, patch_doc);
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &mut Value, patch_doc: &Value) -> ApiResult<()> {
    patch::json_patch(target, patch_doc).map_err(|e| ApiError::from_status(e.to_status()))
}

/// [`json_patch`] of a document the caller gives up (no copy kept for an error).
pub fn json_patch_owned(target: Value, patch_doc: &Value) -> ApiResult<Value> {
    patch::json_patch_owned(target, patch_doc).map_err(|e| ApiError::from_status(e.to_status()))
}

/// Merge metadata of a built-in kind; kinds without declared merge keys merge like ConfigMaps
/// (maps merged, lists replaced).
fn builtin_or_plain(group: &str, kind: &str) -> Option<BuiltinKind> {
    builtin_kind(group, kind).or_else(|| builtin_kind("", "ConfigMap"))
}

/// Strategic merge patch of a built-in kind.
pub fn strategic_merge_patch(
    original: &Value,
    patch_doc: &Value,
    group: &str,
    kind: &str,
) -> ApiResult<Value> {
    let bk = builtin_or_plain(group, kind).ok_or_else(|| {
        ApiError::from_status(patch::unsupported_media_type_status(
            "application/strategic-merge-patch+json",
        ))
    })?;
    patch::strategic_merge_patch(original, patch_doc, &bk)
        .map_err(|e| ApiError::from_status(e.to_status()))
}

fn with_list_types<R>(
    schema: Option<&Schema>,
    group: &str,
    kind: &str,
    f: impl FnOnce(&dyn ListTypes) -> R,
) -> R {
    if let Some(s) = schema {
        return f(&s.compiled);
    }
    match builtin_kind(group, kind) {
        Some(bk) => f(&bk),
        None => f(&Untyped),
    }
}

/// Server-side apply: the new object (with managedFields), or the 409 conflict Status.
#[allow(clippy::too_many_arguments)]
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    schema: Option<&Schema>,
    group: &str,
    kind: &str,
    now: &str,
    subresource: Option<&str>,
    has_status: bool,
) -> ApiResult<Value> {
    let opts = ApplyOptions::reset_fields(subresource, has_status);
    let name = applied
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    with_list_types(schema, group, kind, |lt| {
        apply::server_side_apply_with(live, applied, manager, force, lt, now, subresource, &opts)
    })
    .map_err(|c| ApiError::from_status(apply::conflict_status(&c, group, kind, &name)))
}

/// managedFields bookkeeping for create/update/patch.
#[allow(clippy::too_many_arguments)]
pub fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    now: &str,
    subresource: Option<&str>,
    schema: Option<&Schema>,
    group: &str,
    kind: &str,
    has_status: bool,
) {
    let opts = ApplyOptions::reset_fields(subresource, has_status);
    with_list_types(schema, group, kind, |lt| {
        apply::track_update_with(old, new, manager, now, subresource, lt, &opts)
    })
}

/// A `meta.k8s.io/v1` Table of objects (`kubectl get`): CRD printer columns for custom kinds,
/// kubectl's columns for built-ins.
pub fn table(
    items: &[Value],
    custom: bool,
    group: &str,
    kind: &str,
    columns: &[Value],
    now: jiff::Timestamp,
    include_object: &str,
) -> ApiResult<Value> {
    let include = IncludeObject::parse(include_object).map_err(ApiError::bad_request)?;
    let refs: Vec<&Value> = items.iter().collect();
    Ok(if custom {
        let cols = PrinterColumn::for_crd_version(&json!({"additionalPrinterColumns": columns}));
        table::crd_table(&refs, &cols, now, include)
    } else {
        table::builtin_table(group, kind, &refs, now, include)
    })
}
