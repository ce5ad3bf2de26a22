//! The compiled form of one `openAPIV3Schema` node: keywords parsed once, patterns compiled once,
//! and the node's `x-kubernetes-validations` compiled once by kube-cel.

use super::SchemaError;
use crate::apimachinery::validation::ListType;
use regex::Regex;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Vendor extensions and keywords, named once.
pub(crate) mod kw {
    pub const TYPE: &str = "type";
    pub const NULLABLE: &str = "nullable";
    pub const INT_OR_STRING: &str = "x-kubernetes-int-or-string";
    pub const PRESERVE_UNKNOWN: &str = "x-kubernetes-preserve-unknown-fields";
    pub const EMBEDDED_RESOURCE: &str = "x-kubernetes-embedded-resource";
    pub const LIST_TYPE: &str = "x-kubernetes-list-type";
    pub const LIST_MAP_KEYS: &str = "x-kubernetes-list-map-keys";
    pub const MAP_TYPE: &str = "x-kubernetes-map-type";
    pub const VALIDATIONS: &str = "x-kubernetes-validations";
    pub const PROPERTIES: &str = "properties";
    pub const ADDITIONAL_PROPERTIES: &str = "additionalProperties";
    pub const ITEMS: &str = "items";
}

/// What `additionalProperties` says about keys that are not declared properties.
#[derive(Debug)]
pub(crate) enum Additional {
    /// Not set: unknown keys are pruned (unless preserved) and not validated.
    Unset,
    /// `additionalProperties: false`.
    Forbidden,
    /// `additionalProperties: true`: any value.
    Any,
    /// `additionalProperties: {schema}`: a map whose values follow the schema.
    Schema(Box<Node>),
}

#[derive(Debug)]
pub(crate) struct Pattern {
    pub source: String,
    pub regex: Regex,
}

/// One schema node.
#[derive(Debug)]
pub(crate) struct Node {
    pub ty: Option<String>,
    pub nullable: bool,
    pub int_or_string: bool,
    pub preserve_unknown: bool,
    pub embedded: bool,
    pub format: Option<String>,
    pub enum_values: Option<Vec<Value>>,
    pub minimum: Option<f64>,
    pub exclusive_minimum: bool,
    pub maximum: Option<f64>,
    pub exclusive_maximum: bool,
    pub multiple_of: Option<f64>,
    pub min_length: Option<i64>,
    pub max_length: Option<i64>,
    pub pattern: Option<Pattern>,
    pub min_items: Option<i64>,
    pub max_items: Option<i64>,
    pub unique_items: bool,
    pub min_properties: Option<i64>,
    pub max_properties: Option<i64>,
    pub required: Vec<String>,
    pub properties: BTreeMap<String, Node>,
    pub additional: Additional,
    pub items: Option<Box<Node>>,
    pub all_of: Vec<Node>,
    pub any_of: Vec<Node>,
    pub one_of: Vec<Node>,
    pub not: Option<Box<Node>>,
    pub list_type: ListType,
    pub map_atomic: bool,
    pub default: Option<Value>,
    /// The node's own CEL rules, compiled by kube-cel over the node's schema with the rules of
    /// its descendants removed (those are evaluated at their own nodes).
    pub cel: Option<kube::core::cel::CompiledSchema>,
    /// What the node's rules read of `self` and `oldSelf` (on a create and on an update), worked
    /// out once from their compiled programs.
    pub cel_plan: super::cel::Plan,
    /// Whether this node or any descendant has CEL rules (lets the CEL walk skip subtrees).
    pub has_rules: bool,
    /// Whether this node or any descendant is a `set` or `map` list (lets the list-type walk
    /// skip subtrees).
    pub has_list_types: bool,
    /// Whether this node or any descendant is an embedded resource (lets that walk skip
    /// subtrees).
    pub has_embedded: bool,
    /// Whether any descendant declares a `default` (lets defaulting skip subtrees).
    pub has_defaults_below: bool,
}

fn get_bool(obj: &Map<String, Value>, key: &str) -> bool {
    obj.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn get_i64(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<i64>, SchemaError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| SchemaError::new(path, format!("{key} must be an integer"))),
    }
}

fn get_f64(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<f64>, SchemaError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| SchemaError::new(path, format!("{key} must be a number"))),
    }
}

fn child_path(path: &str, seg: &str) -> String {
    if path.is_empty() {
        seg.to_string()
    } else {
        format!("{path}.{seg}")
    }
}

/// A copy of `schema` whose descendants carry no `x-kubernetes-validations`.
fn strip_descendant_rules(schema: &Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove(kw::VALIDATIONS);
                for (k, child) in map.iter_mut() {
                    if k == "default" || k == "enum" || k == "example" {
                        continue;
                    }
                    strip(child);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut copy = schema.clone();
    if let Value::Object(map) = &mut copy {
        for (k, child) in map.iter_mut() {
            if k == kw::VALIDATIONS || k == "default" || k == "enum" || k == "example" {
                continue;
            }
            strip(child);
        }
    }
    copy
}

impl Node {
    pub(crate) fn parse(schema: &Value, path: &str) -> Result<Node, SchemaError> {
        let obj = schema
            .as_object()
            .ok_or_else(|| SchemaError::new(path, "a schema must be a JSON object"))?;
        let ty = match obj.get(kw::TYPE) {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if t.is_empty() => None,
            Some(Value::String(t)) => match t.as_str() {
                "object" | "array" | "string" | "integer" | "number" | "boolean" => Some(t.clone()),
                other => {
                    return Err(SchemaError::new(
                        path,
                        format!("type: Unsupported value: \"{other}\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\""),
                    ))
                }
            },
            Some(_) => return Err(SchemaError::new(path, "type must be a string")),
        };
        let pattern = match obj.get("pattern").and_then(Value::as_str) {
            Some(p) => Some(Pattern {
                source: p.to_string(),
                regex: Regex::new(p).map_err(|e| {
                    SchemaError::new(
                        path,
                        format!("pattern {p:?} is not a valid regular expression: {e}"),
                    )
                })?,
            }),
            None => None,
        };
        let mut properties = BTreeMap::new();
        if let Some(props) = obj.get(kw::PROPERTIES) {
            let props = props
                .as_object()
                .ok_or_else(|| SchemaError::new(path, "properties must be an object"))?;
            for (k, v) in props {
                properties.insert(
                    k.clone(),
                    Node::parse(v, &child_path(path, &format!("properties[{k}]")))?,
                );
            }
        }
        let additional = match obj.get(kw::ADDITIONAL_PROPERTIES) {
            None | Some(Value::Null) => Additional::Unset,
            Some(Value::Bool(false)) => Additional::Forbidden,
            Some(Value::Bool(true)) => Additional::Any,
            Some(v) => Additional::Schema(Box::new(Node::parse(
                v,
                &child_path(path, "additionalProperties"),
            )?)),
        };
        let items = match obj.get(kw::ITEMS) {
            None | Some(Value::Null) => None,
            Some(Value::Array(_)) => {
                return Err(SchemaError::new(
                    path,
                    "items must be a schema object (tuple validation is not supported)",
                ))
            }
            Some(v) => Some(Box::new(Node::parse(v, &child_path(path, "items"))?)),
        };
        let parse_list = |key: &str| -> Result<Vec<Node>, SchemaError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(branches)) => branches
                    .iter()
                    .enumerate()
                    .map(|(i, b)| Node::parse(b, &child_path(path, &format!("{key}[{i}]"))))
                    .collect(),
                Some(_) => Err(SchemaError::new(path, format!("{key} must be an array"))),
            }
        };
        let all_of = parse_list("allOf")?;
        let any_of = parse_list("anyOf")?;
        let one_of = parse_list("oneOf")?;
        let not = match obj.get("not") {
            None | Some(Value::Null) => None,
            Some(v) => Some(Box::new(Node::parse(v, &child_path(path, "not"))?)),
        };
        let list_type = match obj.get(kw::LIST_TYPE).and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => {
                let keys: Vec<String> = obj
                    .get(kw::LIST_MAP_KEYS)
                    .and_then(Value::as_array)
                    .map(|ks| ks.iter().filter_map(|k| k.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                if keys.is_empty() {
                    return Err(SchemaError::new(
                        path,
                        "x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map",
                    ));
                }
                ListType::Map { keys }
            }
            Some("atomic") | None => ListType::Atomic,
            Some(other) => {
                return Err(SchemaError::new(
                    path,
                    format!("x-kubernetes-list-type: Unsupported value: \"{other}\": supported values: \"atomic\", \"map\", \"set\""),
                ))
            }
        };
        let rules = obj
            .get(kw::VALIDATIONS)
            .and_then(Value::as_array)
            .filter(|r| !r.is_empty());
        let cel = rules.map(|_| kube::core::cel::compile_schema(&strip_descendant_rules(schema)));
        let has_rules = cel.is_some()
            || properties.values().any(|p| p.has_rules)
            || matches!(&additional, Additional::Schema(a) if a.has_rules)
            || items.as_ref().is_some_and(|i| i.has_rules);
        let any_below = |flag: fn(&Node) -> bool| {
            properties.values().any(flag)
                || matches!(&additional, Additional::Schema(a) if flag(a))
                || items.as_deref().is_some_and(flag)
        };
        let has_list_types = matches!(list_type, ListType::Set | ListType::Map { .. })
            || any_below(|n| n.has_list_types);
        let embedded = get_bool(obj, kw::EMBEDDED_RESOURCE);
        let has_embedded = embedded || any_below(|n| n.has_embedded);
        let has_defaults_below = any_below(|n| n.default.is_some() || n.has_defaults_below);
        Ok(Node {
            ty,
            nullable: get_bool(obj, kw::NULLABLE),
            int_or_string: get_bool(obj, kw::INT_OR_STRING),
            preserve_unknown: get_bool(obj, kw::PRESERVE_UNKNOWN),
            embedded,
            format: obj
                .get("format")
                .and_then(Value::as_str)
                .filter(|f| !f.is_empty())
                .map(str::to_string),
            enum_values: obj.get("enum").and_then(Value::as_array).cloned(),
            minimum: get_f64(obj, "minimum", path)?,
            exclusive_minimum: get_bool(obj, "exclusiveMinimum"),
            maximum: get_f64(obj, "maximum", path)?,
            exclusive_maximum: get_bool(obj, "exclusiveMaximum"),
            multiple_of: get_f64(obj, "multipleOf", path)?,
            min_length: get_i64(obj, "minLength", path)?,
            max_length: get_i64(obj, "maxLength", path)?,
            pattern,
            min_items: get_i64(obj, "minItems", path)?,
            max_items: get_i64(obj, "maxItems", path)?,
            unique_items: get_bool(obj, "uniqueItems"),
            min_properties: get_i64(obj, "minProperties", path)?,
            max_properties: get_i64(obj, "maxProperties", path)?,
            required: obj
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            properties,
            additional,
            items,
            all_of,
            any_of,
            one_of,
            not,
            list_type,
            map_atomic: obj.get(kw::MAP_TYPE).and_then(Value::as_str) == Some("atomic"),
            default: obj.get("default").cloned(),
            cel_plan: cel.as_ref().map(super::cel::Plan::of).unwrap_or_default(),
            cel,
            has_rules,
            has_list_types,
            has_embedded,
            has_defaults_below,
        })
    }

    /// The schema of a map value or an object property named `key`.
    pub(crate) fn child(&self, key: &str) -> Option<&Node> {
        self.properties.get(key).or(match &self.additional {
            Additional::Schema(s) => Some(s),
            _ => None,
        })
    }

    /// Whether `key` is a map key (rendered `[key]` in field paths) rather than a property.
    pub(crate) fn is_map_key(&self, key: &str) -> bool {
        !self.properties.contains_key(key) && matches!(self.additional, Additional::Schema(_))
    }

    /// The type name used in messages (`sts.Type`), empty for untyped nodes.
    pub(crate) fn type_name(&self) -> &str {
        self.ty.as_deref().unwrap_or("")
    }
}

/// Where a walk is, rendered as a [`FieldPath`] only when an error (or a pruned field) needs it:
/// most writes report nothing, so no path string is built per node.
#[derive(Clone, Copy)]
pub(crate) enum Trail<'a> {
    Root(&'a FieldPath),
    Child(&'a Trail<'a>, &'a str),
    Key(&'a Trail<'a>, &'a str),
    Index(&'a Trail<'a>, usize),
}

impl Trail<'_> {
    pub(crate) fn path(&self) -> FieldPath {
        match self {
            Trail::Root(p) => (*p).clone(),
            Trail::Child(t, name) => t.path().child(name),
            Trail::Key(t, key) => t.path().key(key),
            Trail::Index(t, i) => t.path().index(*i),
        }
    }
}

/// A `field.Path` being built: `spec.containers[0].env[name]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(String);

impl FieldPath {
    pub(crate) fn root() -> Self {
        FieldPath(String::new())
    }

    pub(crate) fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        FieldPath(format!("{}[{key}]", self.0))
    }

    pub(crate) fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{i}]", self.0))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}
