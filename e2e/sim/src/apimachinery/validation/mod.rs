//! CRD structural schemas: pruning, defaulting, OpenAPI validation and CEL rules.
//!
//! A [`CompiledSchema`] is built once per CRD version from its `openAPIV3Schema` (patterns and
//! CEL rules compiled once) and reused for every request. The server calls, in the API server's
//! order: [`CompiledSchema::prune`] (unknown fields; the removed paths feed
//! `fieldValidation=Strict|Warn`), [`CompiledSchema::apply_defaults`], then
//! [`CompiledSchema::validate`] (OpenAPI keywords, list-type uniqueness, embedded resources, and
//! `x-kubernetes-validations` unless a blocking error was already found), and on failure answers
//! with [`invalid_status`]. [`CompiledSchema::list_type_at`] tells server-side apply how to merge
//! lists.

mod cel;
mod errors;
mod fast;
mod formats;
mod mutate;
mod names;
mod schema;
mod structural;

pub use errors::{
    aggregate_message, invalid_status, qualified_kind, FieldError, FieldErrorKind, ROOT_FIELD,
};
pub use names::{
    dns1123_subdomain_errors, validate_dns1035_label, validate_dns1123_label, validate_label_key,
    validate_label_value, validate_object_name, DNS1123_LABEL_MAX_LENGTH,
    DNS1123_SUBDOMAIN_MAX_LENGTH,
};

use schema::{Additional, FieldPath, Node, Trail};
use serde_json::Value;

/// How server-side apply merges a list (`x-kubernetes-list-type`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum ListType {
    /// Replaced as a whole (the default for CRD lists).
    #[default]
    Atomic,
    /// Scalars merged as a set.
    Set,
    /// Objects merged by the values of their key fields.
    Map { keys: Vec<String> },
}

/// A schema that cannot be compiled (the API server would refuse the CRD).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schema at {path}: {message}")]
pub struct SchemaError {
    pub path: String,
    pub message: String,
}

impl SchemaError {
    pub(crate) fn new(path: &str, message: impl Into<String>) -> Self {
        SchemaError {
            path: if path.is_empty() {
                "openAPIV3Schema".into()
            } else {
                path.to_string()
            },
            message: message.into(),
        }
    }
}

/// The message of the error added when CEL rules are skipped because of blocking errors.
pub const CEL_SKIPPED_MESSAGE: &str =
    "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

/// A CRD version's `openAPIV3Schema`, compiled once.
#[derive(Debug)]
pub struct CompiledSchema {
    root: Node,
}

impl CompiledSchema {
    /// Compiles the schema (keywords, regex patterns and `x-kubernetes-validations`).
    pub fn new(open_api_v3_schema: &Value) -> Result<Self, SchemaError> {
        Ok(CompiledSchema {
            root: Node::parse(open_api_v3_schema, "")?,
        })
    }

    /// Rules that kube-cel could not compile, as `(rule, error)`; objects are refused while any
    /// remain (the API server would have refused the CRD itself).
    pub fn cel_compile_errors(&self) -> Vec<String> {
        fn walk(node: &Node, out: &mut Vec<String>) {
            if let Some(c) = &node.cel {
                out.extend(c.compilation_errors().iter().map(|e| e.to_string()));
            }
            node.properties.values().for_each(|p| walk(p, out));
            if let Additional::Schema(a) = &node.additional {
                walk(a, out);
            }
            if let Some(i) = &node.items {
                walk(i, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }

    /// Structural validation plus `x-kubernetes-validations` (transition rules see `old`).
    ///
    /// Errors come in the API server's order: OpenAPI keyword errors, list-type duplicates,
    /// embedded-resource errors, then CEL rule failures, which are not evaluated (replaced by one
    /// root error) when a type, enum, required, too-long or too-many error was found first.
    ///
    /// On an update (`old` given) validation ratchets as kube-apiserver's does
    /// (`CRDValidationRatcheting`, GA in 1.33): values unchanged from their correlated old values
    /// are not re-validated, by the OpenAPI keywords or by CEL rules (transition rules included),
    /// and list-type uniqueness is checked only when the old object satisfied it — so an invalid
    /// value already stored does not block other writes (a `/status` write, for one), while every
    /// new invalid value is still refused.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        structural::validate(&self.root, obj, old, &structural::Name::Root, &mut errs);
        let mut list_errs = Vec::new();
        structural::validate_list_types(
            &self.root,
            obj,
            &Trail::Root(&FieldPath::root()),
            &mut list_errs,
        );
        if !list_errs.is_empty()
            && old.is_none_or(|o| {
                let mut old_errs = Vec::new();
                structural::validate_list_types(
                    &self.root,
                    o,
                    &Trail::Root(&FieldPath::root()),
                    &mut old_errs,
                );
                old_errs.is_empty()
            })
        {
            errs.extend(list_errs);
        }
        structural::validate_embedded(&self.root, obj, &Trail::Root(&FieldPath::root()), &mut errs);
        if self.root.has_rules {
            let blocking = errs.iter().any(|e| {
                matches!(
                    e.kind,
                    FieldErrorKind::NotSupported
                        | FieldErrorKind::Required
                        | FieldErrorKind::TooLong
                        | FieldErrorKind::TooMany
                        | FieldErrorKind::TypeInvalid
                )
            });
            if blocking {
                errs.push(FieldError::invalid(
                    ROOT_FIELD,
                    Value::Null,
                    CEL_SKIPPED_MESSAGE,
                ));
            } else {
                cel::validate(&self.root, obj, old, &FieldPath::root(), &mut errs);
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    /// Removes fields the schema does not know (honouring `x-kubernetes-preserve-unknown-fields`
    /// and `x-kubernetes-embedded-resource`, never touching `apiVersion`/`kind`/`metadata` at the
    /// root) and returns their paths (`spec.foo`, `spec.items[0].bar`).
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut removed = Vec::new();
        mutate::prune(
            Some(&self.root),
            obj,
            &FieldPath::root(),
            true,
            &mut removed,
        );
        removed
    }

    /// Applies `default:` values (and drops `null`s of non-nullable fields without a default).
    pub fn apply_defaults(&self, obj: &mut Value) {
        mutate::apply_defaults(&self.root, obj);
    }

    /// The list type of the field at `path` (field names from the root; list levels are passed
    /// through, map levels take the key as a segment). Atomic when unknown.
    pub fn list_type_at(&self, path: &[&str]) -> ListType {
        self.node_at(path.iter().copied())
            .map(|n| n.list_type.clone())
            .unwrap_or_default()
    }

    /// Whether the object at `path` is declared `x-kubernetes-map-type: atomic`.
    pub fn map_is_atomic_at(&self, path: &[&str]) -> bool {
        self.node_at(path.iter().copied())
            .is_some_and(|n| n.map_atomic)
    }

    /// Whether the object at `path` is a map (`additionalProperties`) rather than a struct.
    pub fn is_map_at(&self, path: &[&str]) -> bool {
        self.node_at(path.iter().copied()).is_some_and(|n| {
            n.properties.is_empty()
                && matches!(n.additional, Additional::Schema(_) | Additional::Any)
        })
    }

    /// [`Self::list_type_at`], [`Self::map_is_atomic_at`] and [`Self::is_map_at`] of a path of
    /// owned names (server-side apply's walks), without collecting it first.
    pub fn list_type_of(&self, path: &[String]) -> ListType {
        self.node_at(path.iter().map(String::as_str))
            .map(|n| n.list_type.clone())
            .unwrap_or_default()
    }

    pub fn map_is_atomic_of(&self, path: &[String]) -> bool {
        self.node_at(path.iter().map(String::as_str))
            .is_some_and(|n| n.map_atomic)
    }

    pub fn is_map_of(&self, path: &[String]) -> bool {
        self.node_at(path.iter().map(String::as_str))
            .is_some_and(|n| {
                n.properties.is_empty()
                    && matches!(n.additional, Additional::Schema(_) | Additional::Any)
            })
    }

    fn node_at<'a>(&self, path: impl Iterator<Item = &'a str>) -> Option<&Node> {
        let mut node = &self.root;
        for seg in path {
            while node.ty.as_deref() == Some("array") {
                node = node.items.as_deref()?;
            }
            node = node.child(seg)?;
        }
        Some(node)
    }
}

#[cfg(test)]
mod tests;
