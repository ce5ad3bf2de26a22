//! Small pieces every kind shares: the ENABLED/DISABLED state, name patterns, and schema helpers
//! that attach Kubernetes list semantics (`x-kubernetes-list-type`) and CEL rules to fields whose
//! Rust types come from k8s-openapi (which cannot carry `#[x_kube]` attributes themselves).
//!
//! The patterns are plain regular expressions; they are used both in OpenAPI `pattern`s and inside
//! CEL `matches()` calls, so they avoid backslashes (`[.]` instead of `\.`), which CEL string
//! literals would need escaped.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::core::{Message, Rule};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::consts::{RESERVED_ENV_PREFIX, RESERVED_LABEL_PREFIX, RESERVED_VOLUME_PREFIX};

/// DNS-1123 label: the shape of namespace names, volume names and Job names.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// DNS-1123 subdomain: the shape of most Kubernetes object names.
pub const DNS_SUBDOMAIN_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A Kubernetes label value (empty, or ≤63 characters, alphanumeric at both ends).
pub const LABEL_VALUE_PATTERN: &str = "^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$";
/// Longest label key: 253-character prefix, `/`, 63-character name.
pub const LABEL_KEY_MAX_LENGTH: usize = 317;
/// Longest Kubernetes object name (DNS-1123 subdomain).
pub const NAME_MAX_LENGTH: usize = 253;
/// Longest DNS-1123 label (and label value).
pub const LABEL_MAX_LENGTH: usize = 63;
/// Most entries a label-like map (node labels, selectors, tags) may hold.
pub const MAX_MAP_ENTRIES: usize = 50;

/// `state` of compute environments and job queues (AWS Batch `CEState` / `JQState`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum State {
    /// Accepts new work.
    #[default]
    #[serde(rename = "ENABLED")]
    Enabled,
    /// Accepts no new work; work already admitted continues.
    #[serde(rename = "DISABLED")]
    Disabled,
}

/// Schema of `status.conditions`: meta/v1 Conditions, a map list keyed by `type` (one condition
/// per type, merged per entry by server-side apply), as the Kubernetes API conventions ask.
pub fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), json!("map"));
    schema.insert("x-kubernetes-list-map-keys".into(), json!(["type"]));
    schema
}

/// CEL rule on a string-to-string map whose entries become Kubernetes labels (node labels, node
/// selectors): every value must be a label value, every key short and without spaces. `what`
/// names the field in the message.
///
/// Keys are not matched against a regular expression (see [`is_label_key`]): a schema cannot bound the length of map
/// keys, so the API server's static cost estimate of a regular expression on them (string length
/// × pattern length) would exceed its per-rule budget and the whole CRD would be refused. The
/// cheap checks here catch the usual mistake (AWS tag keys with spaces); the operator reports any
/// other invalid key in the compute environment's status.
pub fn label_map_rule(what: &str) -> Rule {
    Rule::new(format!(
        "self.all(k, k.size() <= {LABEL_KEY_MAX_LENGTH} && !k.contains(' ') && self[k].matches('{LABEL_VALUE_PATTERN}'))"
    ))
    .message(Message::Message(format!(
        "{what} become Kubernetes labels: each key must be a label key (an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.') and each value at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
    )))
}

/// CEL rule refusing label keys under Barge's own prefix.
pub fn reserved_label_prefix_rule(what: &str) -> Rule {
    Rule::new(format!("self.all(k, !k.startsWith('{RESERVED_LABEL_PREFIX}'))")).message(Message::Message(format!(
        "{what} may not use the {RESERVED_LABEL_PREFIX} prefix, which Barge reserves for its own labels"
    )))
}

/// CEL rule at the root of a kind whose name Barge writes into a label value (`label` names the
/// label): the API server would accept names up to 253 characters, which no label can hold, so
/// the object would be accepted and then stuck. `self.metadata.name` is one of the two metadata
/// fields (with `generateName`) a root rule may read.
pub fn name_fits_label_value_rule(kind: &str, label: &str) -> Rule {
    Rule::new(format!("self.metadata.name.size() <= {LABEL_MAX_LENGTH}")).message(Message::Message(format!(
        "metadata.name: a {kind} name must be at most {LABEL_MAX_LENGTH} characters: Barge puts it in the {label} label"
    )))
}

/// CEL rule on a volume name refusing the prefix of the volumes Barge adds to pods.
pub fn reserved_volume_name_rule() -> Rule {
    Rule::new(format!("!self.startsWith('{RESERVED_VOLUME_PREFIX}')")).message(Message::Message(format!(
        "volume names starting with {RESERVED_VOLUME_PREFIX} are reserved: Barge names the volumes of linuxParameters (sharedMemorySize, tmpfs) with it"
    )))
}

/// CEL rule on an environment variable name refusing the `AWS_BATCH` prefix.
pub fn reserved_env_name_rule() -> Rule {
    Rule::new(format!("!self.startsWith('{RESERVED_ENV_PREFIX}')")).message(Message::Message(format!(
        "environment variable names starting with {RESERVED_ENV_PREFIX} are reserved: Barge sets them in every container"
    )))
}

/// CEL rule on a string that must be a DNS-1123 subdomain (an object name); `what` names it.
pub fn object_name_rule(what: &str) -> Rule {
    Rule::new(format!("self.matches('{DNS_SUBDOMAIN_PATTERN}')")).message(Message::Message(format!(
        "{what} must be the name of a Kubernetes object: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
    )))
}

/// Most characters of a tag value (AWS Batch: 256).
pub const MAX_TAG_VALUE_LENGTH: usize = 256;
/// Most characters of a parameter value.
pub const MAX_PARAMETER_VALUE_LENGTH: usize = 4096;
/// Most parameters of a definition or job.
pub const MAX_PARAMETERS: usize = 100;

/// Schema of a string-to-string map with bounded size and value length (schemars cannot put
/// `maxLength` on map values by attribute).
fn string_map_schema(
    max_properties: usize,
    max_value_length: usize,
    min_properties: usize,
) -> Schema {
    let mut schema = schemars::json_schema!({
        "type": "object",
        "additionalProperties": {"type": "string", "maxLength": max_value_length},
        "maxProperties": max_properties,
    });
    if min_properties > 0 {
        schema.insert("minProperties".into(), json!(min_properties));
    }
    schema
}

/// Schema of a map whose entries become labels (`computeResources.tags`).
pub fn label_map_schema(_: &mut SchemaGenerator) -> Schema {
    string_map_schema(MAX_MAP_ENTRIES, LABEL_MAX_LENGTH, 0)
}

/// Schema of an UNMANAGED compute environment's `nodeSelector`: like [`label_map_schema`], and
/// not empty.
pub fn node_selector_schema(_: &mut SchemaGenerator) -> Schema {
    string_map_schema(MAX_MAP_ENTRIES, LABEL_MAX_LENGTH, 1)
}

/// Schema of AWS resource `tags` of definitions and jobs.
pub fn tags_schema(_: &mut SchemaGenerator) -> Schema {
    string_map_schema(MAX_MAP_ENTRIES, MAX_TAG_VALUE_LENGTH, 0)
}

/// Schema of `parameters` of definitions and jobs.
pub fn parameters_schema(_: &mut SchemaGenerator) -> Schema {
    string_map_schema(MAX_PARAMETERS, MAX_PARAMETER_VALUE_LENGTH, 0)
}

/// Whether `value` is a Kubernetes label value: empty, or at most 63 letters, digits, `-`, `_`
/// and `.`, starting and ending with a letter or digit.
pub fn is_label_value(value: &str) -> bool {
    value.is_empty() || is_qualified_name_part(value)
}

/// Whether `key` is a Kubernetes label key: an optional DNS-1123 subdomain prefix and `/`, then
/// a name as in [`is_label_value`] (not empty).
pub fn is_label_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(key),
    }
}

/// Whether `name` is a DNS-1123 subdomain (at most 253 characters of dot-separated labels).
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= NAME_MAX_LENGTH && name.split('.').all(is_dns_label)
}

/// Whether `name` is a DNS-1123 label (at most 63 lowercase letters, digits and `-`, starting
/// and ending with a letter or digit).
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= LABEL_MAX_LENGTH
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|b| edge(b) || *b == b'-')
}

fn is_qualified_name_part(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: &u8| b.is_ascii_alphanumeric();
    !bytes.is_empty()
        && bytes.len() <= LABEL_MAX_LENGTH
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes
            .iter()
            .all(|b| edge(b) || matches!(b, b'-' | b'_' | b'.'))
}

/// Most containers (or init containers) a `podProperties` may list.
pub const MAX_POD_CONTAINERS: usize = 10;
/// Most environment variables a container may set.
pub const MAX_ENV_VARS: usize = 256;

/// Schema of `podProperties.containers`: at least one container (see [`bounded_containers_schema`]).
pub fn pod_containers_schema(generator: &mut SchemaGenerator) -> Schema {
    bounded_containers_schema(generator, 1)
}

/// Schema of `podProperties.initContainers` (see [`bounded_containers_schema`]).
pub fn pod_init_containers_schema(generator: &mut SchemaGenerator) -> Schema {
    bounded_containers_schema(generator, 0)
}

/// Most pod volumes a `podProperties` may list.
pub const MAX_POD_VOLUMES: usize = 64;

/// Schema of `podProperties.volumes`: core/v1 Volumes, bounded, without the upstream field
/// descriptions (see [`strip_descriptions`]).
pub fn pod_volumes_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<k8s_openapi::api::core::v1::Volume>>();
    schema.insert("maxItems".into(), json!(MAX_POD_VOLUMES));
    if let Some(items) = schema.get_mut("items") {
        strip_descriptions(items);
    }
    schema
}

/// Removes the `description`s of a schema subtree. Used on the core/v1 types embedded in
/// `podProperties`: their upstream documentation would make the JobDefinition CRD larger than
/// the 256 KiB that client-side `kubectl apply` can store in its last-applied annotation (the
/// same trade controller-gen's `maxDescLen=0` makes). A *property* named "description" has an
/// object schema as its value and is kept.
pub fn strip_descriptions(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            map.retain(|key, value| !(key == "description" && value.is_string()));
            map.values_mut().for_each(strip_descriptions);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}

/// Schema of a list of core/v1 Containers in `podProperties`: k8s-openapi's Container schema
/// (without upstream descriptions) with the list bounded, and each `env[].name` refusing the
/// reserved `AWS_BATCH` prefix (bounded too, so that the API server's CEL cost estimate stays
/// small).
fn bounded_containers_schema(generator: &mut SchemaGenerator, min_items: usize) -> Schema {
    let mut schema = generator.subschema_for::<Vec<k8s_openapi::api::core::v1::Container>>();
    if let Some(items) = schema.get_mut("items") {
        strip_descriptions(items);
    }
    if min_items > 0 {
        schema.insert("minItems".into(), json!(min_items));
    }
    schema.insert("maxItems".into(), json!(MAX_POD_CONTAINERS));
    let rule = serde_json::to_value(reserved_env_name_rule()).unwrap_or(Value::Null);
    if let Some(env) = schema
        .get_mut("items")
        .and_then(|items| items.get_mut("properties"))
        .and_then(|props| props.get_mut("env"))
        .and_then(Value::as_object_mut)
    {
        env.insert("maxItems".into(), json!(MAX_ENV_VARS));
        if let Some(name) = env
            .get_mut("items")
            .and_then(|item| item.get_mut("properties"))
            .and_then(|props| props.get_mut("name"))
            .and_then(Value::as_object_mut)
        {
            name.insert("x-kubernetes-validations".into(), json!([rule]));
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_and_values_follow_kubernetes_syntax() {
        assert!(is_label_key("team"));
        assert!(is_label_key("example.com/team_a.b-c"));
        assert!(!is_label_key("Cost Center"));
        assert!(!is_label_key("Example.com/team"));
        assert!(!is_label_key("/team"));
        assert!(!is_label_key(&"a".repeat(64)));
        assert!(is_label_value(""));
        assert!(is_label_value("C4OnDemand"));
        assert!(!is_label_value("Batch Instance - C4OnDemand"));
        assert!(!is_label_value("-x"));
        assert!(is_dns_label("my-ce-1"));
        assert!(!is_dns_label("My_CE"));
        assert!(is_dns_subdomain("a.b-c.d"));
        assert!(!is_dns_subdomain("a..b"));
    }

    #[test]
    fn pod_containers_schema_carries_the_env_rule() {
        let mut generator = schemars::generate::SchemaSettings::openapi3()
            .with(|s| s.inline_subschemas = true)
            .into_generator();
        let schema = pod_containers_schema(&mut generator);
        let value = serde_json::to_value(&schema).expect("schema serializes");
        let rules = &value["items"]["properties"]["env"]["items"]["properties"]["name"]
            ["x-kubernetes-validations"];
        assert_eq!(rules[0]["rule"], "!self.startsWith('AWS_BATCH')");
        assert_eq!(
            value["items"]["properties"]["env"]["maxItems"],
            MAX_ENV_VARS
        );
    }
}
