//! A guard for the API server's static CEL cost estimate. A real API server refuses a whole CRD
//! when a rule's estimated cost exceeds its budget, and the estimate multiplies string lengths
//! and collection sizes: a regular expression on a string without `maxLength`, or a
//! comprehension over a list without `maxItems`, is estimated at megabytes of input. This test
//! finds, in every rule, the receivers of the expensive calls and checks that the schema bounds
//! them:
//! - `matches`, `split`, `replace`, `find`, `findAll` need a string with `maxLength`;
//! - `all`, `exists`, `exists_one`, `filter`, `map` need a list with `maxItems` or a map with
//!   `maxProperties`; map keys cannot be bounded, so the heavy string calls may not use them.

mod support;

use barge_crds::crdgen::crd_schema;
use serde_json::Value;

const STRING_CALLS: [&str; 5] = ["matches", "split", "replace", "find", "findAll"];
const COMPREHENSIONS: [&str; 5] = ["all", "exists", "exists_one", "filter", "map"];

/// What a name in a rule stands for.
#[derive(Clone)]
enum Bound<'a> {
    Schema(&'a Value),
    /// A key of a map being iterated (unbounded string).
    MapKey,
    /// A computed value (result of a call): not checked.
    Computed,
}

/// The receiver path just before position `end` (e.g. `self.a.b`, `r.x`, `self[k]`).
fn receiver_before(rule: &str, end: usize) -> &str {
    let bytes = rule.as_bytes();
    let mut start = end;
    while start > 0 {
        let c = bytes[start - 1] as char;
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '[' || c == ']' {
            start -= 1;
        } else {
            break;
        }
    }
    &rule[start..end]
}

fn resolve<'a>(path: &str, vars: &[(String, Bound<'a>)]) -> Bound<'a> {
    if path.is_empty() || path.ends_with(')') {
        return Bound::Computed;
    }
    let (head, rest) = match path.find(['.', '[']) {
        Some(i) => (&path[..i], &path[i..]),
        None => (path, ""),
    };
    let Some((_, mut bound)) = vars.iter().rev().find(|(name, _)| name == head).cloned() else {
        return Bound::Computed;
    };
    let mut rest = rest;
    while !rest.is_empty() {
        let Bound::Schema(node) = bound else {
            return bound;
        };
        if let Some(after) = rest.strip_prefix('[') {
            let close = after.find(']').map_or(after.len(), |i| i + 1);
            bound = match node
                .get("additionalProperties")
                .filter(|a| a.is_object())
                .or(node.get("items"))
            {
                Some(child) => Bound::Schema(child),
                None => Bound::Computed,
            };
            rest = &after[close.min(after.len())..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let field = &after[..end];
            bound = match node.get("properties").and_then(|p| p.get(field)) {
                Some(child) => Bound::Schema(child),
                None => Bound::Computed,
            };
            rest = &after[end..];
        } else {
            return Bound::Computed;
        }
    }
    bound
}

fn check_rule(rule: &str, node: &Value, path: &str, problems: &mut Vec<String>) {
    let mut vars: Vec<(String, Bound)> = vec![
        ("self".into(), Bound::Schema(node)),
        ("oldSelf".into(), Bound::Schema(node)),
    ];
    let mut i = 0;
    while let Some(offset) = rule[i..].find('.') {
        let dot = i + offset;
        let name_end = rule[dot + 1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(rule.len(), |e| dot + 1 + e);
        let call = &rule[dot + 1..name_end];
        i = dot + 1;
        if !rule[name_end..].starts_with('(') {
            continue;
        }
        let receiver = receiver_before(rule, dot);
        let bound = resolve(receiver, &vars);
        if STRING_CALLS.contains(&call) {
            match bound {
                Bound::MapKey => problems.push(format!(
                    "{path}: `{rule}` calls {call} on a map key, whose length no schema can bound"
                )),
                Bound::Schema(s) if s.get("maxLength").is_none() => problems.push(format!(
                    "{path}: `{rule}` calls {call} on {receiver}, which has no maxLength"
                )),
                _ => {}
            }
        }
        if COMPREHENSIONS.contains(&call) {
            let var = rule[name_end + 1..]
                .split(',')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            let element = match bound {
                Bound::Schema(s) if s.get("items").is_some() => {
                    if s.get("maxItems").is_none() {
                        problems.push(format!(
                            "{path}: `{rule}` iterates {receiver}, which has no maxItems"
                        ));
                    }
                    s.get("items").map_or(Bound::Computed, Bound::Schema)
                }
                Bound::Schema(s) if s.get("additionalProperties").is_some_and(Value::is_object) => {
                    if s.get("maxProperties").is_none() {
                        problems.push(format!(
                            "{path}: `{rule}` iterates {receiver}, which has no maxProperties"
                        ));
                    }
                    Bound::MapKey
                }
                _ => Bound::Computed,
            };
            vars.push((var, element));
        }
    }
}

fn walk(node: &Value, path: &str, problems: &mut Vec<String>, rules_seen: &mut usize) {
    if let Some(rules) = node
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in rules
            .iter()
            .filter_map(|r| r.get("rule").and_then(Value::as_str))
        {
            *rules_seen += 1;
            check_rule(rule, node, path, problems);
        }
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            walk(child, &format!("{path}.{name}"), problems, rules_seen);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = node.get(key).filter(|c| c.is_object()) {
            walk(child, &format!("{path}[]"), problems, rules_seen);
        }
    }
}

#[test]
fn expensive_cel_calls_only_touch_bounded_values() {
    let mut problems = Vec::new();
    let mut rules_seen = 0;
    for crd in support::crds() {
        let schema = crd_schema(crd).expect("every CRD has a schema");
        walk(
            &schema,
            &crd.spec.names.kind,
            &mut problems,
            &mut rules_seen,
        );
    }
    assert!(
        rules_seen > 50,
        "only {rules_seen} rules found: the walk is broken"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_guard_catches_unbounded_receivers() {
    let schema: Value = serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "short": {"type": "string", "maxLength": 10},
            "list": {"type": "array", "items": {"type": "object", "properties": {"s": {"type": "string"}}}},
            "labels": {"type": "object", "maxProperties": 5, "additionalProperties": {"type": "string", "maxLength": 63}}
        }
    });
    let mut problems = Vec::new();
    check_rule("self.short.matches('^a$')", &schema, "ok", &mut problems);
    check_rule(
        "self.labels.all(k, self.labels[k].matches('^a$'))",
        &schema,
        "ok",
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    check_rule(
        "self.name.matches('^a$')",
        &schema,
        "unbounded string",
        &mut problems,
    );
    check_rule(
        "self.list.all(x, x.s.size() > 0)",
        &schema,
        "unbounded list",
        &mut problems,
    );
    check_rule(
        "self.labels.all(k, k.matches('^a$'))",
        &schema,
        "map key",
        &mut problems,
    );
    assert_eq!(problems.len(), 3, "{problems:?}");
}
