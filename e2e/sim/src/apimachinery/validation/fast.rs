//! A short cut for rules that pass: a few CEL forms (`has()`, field selection, `!`, `&&`, `||`,
//! `==`/`!=`, ordering, `size()`, `matches()`, `contains()`, `startsWith()`, `endsWith()`,
//! `double()`) evaluated straight on the JSON value, as the cel crate would evaluate them on its
//! conversion of it — without converting or binding anything.
//!
//! It only ever answers "this rule evaluates to `true`": anything it does not model exactly
//! (another function, a macro, `oldSelf`, a missing field read, a type it does not know, an error)
//! gives up, and so does any answer other than `true`. A node whose rules all pass here reports
//! nothing, as the full evaluation would; any other node is evaluated in full by the cel crate,
//! so every failure, message and error is the cel crate's own.
//!
//! The forms follow the cel crate's interpreter (0.13): `a || b` is `true` when `a` is, or when
//! `a` is `false` and `b` is `true`; `a && b` is `true` when both are; `has(x.f)` and `x.f` on a
//! map look the key up (a missing key is an error: give up); `size()` of a string is its length
//! in bytes; `double()` of a string is Rust's `f64` parse; ordering compares ints with ints and
//! doubles with doubles or ints (a NaN comparison is an error: give up).

use super::cel::{cached_is_match, property_named};
use kube::core::cel::cel::common::ast::{operators, Expr, LiteralValue};
use kube::core::cel::cel::parser::Expression;
use kube::core::cel::{CompilationResult, CompiledSchema, SchemaFormat};
use serde_json::Value;
use std::cmp::Ordering;

/// A value as the short cut sees it.
#[derive(Clone, Copy)]
enum Fast<'a> {
    /// A JSON value as CEL sees it under `schema` (None: converted without a schema).
    Json {
        value: &'a Value,
        schema: Option<&'a CompiledSchema>,
        /// An object that is a resource (the root or an embedded one): its `metadata` is seen
        /// cut down to `name` and `generateName`.
        resource: bool,
        /// A resource's `metadata`: only `name` and `generateName` are seen.
        meta: bool,
    },
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl<'a> Fast<'a> {
    fn json(value: &'a Value, schema: Option<&'a CompiledSchema>) -> Fast<'a> {
        Fast::Json {
            value,
            schema,
            resource: schema.is_some_and(|s| s.embedded_resource),
            meta: false,
        }
    }

    /// The scalar a JSON value converts to (strings only when their format keeps them strings).
    fn scalar(self) -> Option<Fast<'a>> {
        match self {
            Fast::Json { value, schema, .. } => match value {
                Value::Bool(b) => Some(Fast::Bool(*b)),
                Value::Number(n) => n.as_i64().map(Fast::Int),
                Value::String(s)
                    if schema.is_none_or(|c| {
                        !matches!(
                            c.format,
                            SchemaFormat::DateTime | SchemaFormat::Duration | SchemaFormat::Bytes
                        )
                    }) =>
                {
                    Some(Fast::Str(s))
                }
                _ => None,
            },
            other => Some(other),
        }
    }

    fn str(self) -> Option<&'a str> {
        match self.scalar()? {
            Fast::Str(s) => Some(s),
            _ => None,
        }
    }

    fn bool(self) -> Option<bool> {
        match self.scalar()? {
            Fast::Bool(b) => Some(b),
            _ => None,
        }
    }
}

/// Whether every rule of the node that runs on this write surely evaluates to `true` (transition
/// rules are not evaluated on a create). `resource_root`: `value` is the resource itself.
pub(crate) fn all_pass(
    compiled: &CompiledSchema,
    value: &Value,
    resource_root: bool,
    has_old: bool,
) -> bool {
    let this = Fast::Json {
        value,
        schema: Some(compiled),
        resource: resource_root || compiled.embedded_resource,
        meta: false,
    };
    compiled.validations.iter().all(|r| match r {
        Ok(cr) => passes(cr, this, has_old),
        // Reported by the full evaluation.
        Err(_) => false,
    })
}

fn passes(cr: &CompilationResult, this: Fast<'_>, has_old: bool) -> bool {
    if cr.rule.optional_old_self == Some(true) {
        return false;
    }
    if cr.is_transition_rule {
        // Not evaluated without an old value; with one, `oldSelf` is not modelled.
        return !has_old;
    }
    matches!(eval(cr.program.expression(), this), Some(Fast::Bool(true)))
}

fn eval<'a>(expr: &'a Expression, this: Fast<'a>) -> Option<Fast<'a>> {
    match &expr.expr {
        Expr::Literal(LiteralValue::Boolean(b)) => Some(Fast::Bool(*b.inner())),
        Expr::Literal(LiteralValue::Int(i)) => Some(Fast::Int(*i.inner())),
        Expr::Literal(LiteralValue::Double(d)) => Some(Fast::Float(*d.inner())),
        Expr::Literal(LiteralValue::String(s)) => Some(Fast::Str(s.inner())),
        Expr::Ident(name) if name == "self" => Some(this),
        Expr::Select(select) => {
            let operand = eval(&select.operand, this)?;
            let found = field(operand, &select.field)?;
            if select.test {
                Some(Fast::Bool(found.is_some()))
            } else {
                found
            }
        }
        Expr::Call(call) => {
            let arg = |i: usize| call.args.get(i).and_then(|a| eval(a, this));
            match (
                call.func_name.as_str(),
                call.target.as_deref(),
                call.args.len(),
            ) {
                (operators::LOGICAL_NOT, None, 1) => Some(Fast::Bool(!arg(0)?.bool()?)),
                (operators::LOGICAL_OR, None, 2) => match arg(0)?.bool()? {
                    true => Some(Fast::Bool(true)),
                    false => Some(Fast::Bool(arg(1)?.bool()?)),
                },
                (operators::LOGICAL_AND, None, 2) => match arg(0)?.bool()? {
                    true => Some(Fast::Bool(arg(1)?.bool()?)),
                    // `false && x` is false, which is not a pass: give up either way.
                    false => None,
                },
                (operators::EQUALS, None, 2) => Some(Fast::Bool(equal(arg(0)?, arg(1)?)?)),
                (operators::NOT_EQUALS, None, 2) => Some(Fast::Bool(!equal(arg(0)?, arg(1)?)?)),
                (operators::LESS, None, 2) => {
                    Some(Fast::Bool(compare(arg(0)?, arg(1)?)? == Ordering::Less))
                }
                (operators::LESS_EQUALS, None, 2) => {
                    Some(Fast::Bool(compare(arg(0)?, arg(1)?)? != Ordering::Greater))
                }
                (operators::GREATER, None, 2) => {
                    Some(Fast::Bool(compare(arg(0)?, arg(1)?)? == Ordering::Greater))
                }
                (operators::GREATER_EQUALS, None, 2) => {
                    Some(Fast::Bool(compare(arg(0)?, arg(1)?)? != Ordering::Less))
                }
                ("size", Some(target), 0) => size(eval(target, this)?),
                ("size", None, 1) => size(arg(0)?),
                ("double", Some(target), 0) => double(eval(target, this)?),
                ("double", None, 1) => double(arg(0)?),
                (name @ ("matches" | "contains" | "startsWith" | "endsWith"), Some(target), 1) => {
                    let text = eval(target, this)?.str()?;
                    let Expr::Literal(LiteralValue::String(lit)) = &call.args[0].expr else {
                        return None;
                    };
                    let lit = lit.inner();
                    Some(Fast::Bool(match name {
                        "matches" => cached_is_match(lit, text).ok()?,
                        "contains" => text.contains(lit),
                        "startsWith" => text.starts_with(lit),
                        _ => text.ends_with(lit),
                    }))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Field `name` (a CEL name) of a map: Some(None) when the key is absent, None when the short
/// cut cannot tell (not a JSON object, or a value it does not model).
fn field<'a>(operand: Fast<'a>, name: &str) -> Option<Option<Fast<'a>>> {
    let Fast::Json {
        value: Value::Object(o),
        schema,
        resource,
        meta,
    } = operand
    else {
        return None;
    };
    if meta {
        // What CEL sees of ObjectMeta: name and generateName, converted without a schema.
        return Some(
            ["name", "generateName"]
                .contains(&name)
                .then(|| o.get(name))
                .flatten()
                .map(|v| Fast::json(v, None)),
        );
    }
    let found = property_named(o, name, schema.is_some_and(|s| s.is_map));
    match found {
        Some((k, v)) if resource && k == "metadata" => Some(Some(Fast::Json {
            value: v,
            schema: None,
            resource: false,
            meta: true,
        })),
        Some((k, v)) => {
            let child =
                schema.and_then(|s| s.properties.get(k).or(s.additional_properties.as_deref()));
            Some(Some(Fast::json(v, child)))
        }
        // An embedded resource's type meta is there even when the JSON lacks it.
        None if schema.is_some_and(|s| s.embedded_resource) => match name {
            "apiVersion" | "kind" => Some(Some(Fast::Str(""))),
            _ => None,
        },
        None => Some(None),
    }
}

fn equal(a: Fast<'_>, b: Fast<'_>) -> Option<bool> {
    match (a.scalar()?, b.scalar()?) {
        (Fast::Str(x), Fast::Str(y)) => Some(x == y),
        (Fast::Bool(x), Fast::Bool(y)) => Some(x == y),
        (Fast::Int(x), Fast::Int(y)) => Some(x == y),
        _ => None,
    }
}

fn compare(a: Fast<'_>, b: Fast<'_>) -> Option<Ordering> {
    match (a.scalar()?, b.scalar()?) {
        (Fast::Int(x), Fast::Int(y)) => Some(x.cmp(&y)),
        (Fast::Float(x), Fast::Float(y)) => x.partial_cmp(&y),
        (Fast::Float(x), Fast::Int(y)) => x.partial_cmp(&(y as f64)),
        _ => None,
    }
}

fn size(v: Fast<'_>) -> Option<Fast<'_>> {
    Some(Fast::Int(v.str()?.len() as i64))
}

fn double(v: Fast<'_>) -> Option<Fast<'_>> {
    match v.scalar()? {
        Fast::Str(s) => s.parse::<f64>().ok().map(Fast::Float),
        Fast::Float(f) => Some(Fast::Float(f)),
        Fast::Int(i) => Some(Fast::Float(i as f64)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::cel::{evaluate_whole, to_cel_resource_for_tests};
    use super::super::schema::{Additional, Node};
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pass_here_is_a_pass_of_the_cel_crate() {
        // Every rule the short cut passes, the cel crate passes too (and the short cut does
        // pass most of them: it is used).
        let rules = [
            "self.s.matches('^[a-z]+$')",
            "self.s.matches('(')",
            "self.s.size() <= 3",
            "size(self.s) == 3",
            "self.s.contains('b')",
            "self.s.startsWith('a')",
            "self.s.endsWith('c')",
            "!has(self.s) || self.s != 'x'",
            "has(self.o) && has(self.o.p)",
            "self.o.p == 'q'",
            "self.n > 1",
            "self.n >= 1",
            "self.n < 5",
            "self.n <= 5",
            "self.n == 3",
            "self.n != 3",
            "double(self.s) > 0.0",
            "double(self.d) > 0.0 && double(self.d) <= 2",
            "self.f > 0.5",
            "self.b",
            "!self.b",
            "self.b == true",
            "self.t == 'x'",
            "self.m.k == 'v'",
            "has(self.m.k)",
            "self.x__dash__y == 'z'",
            "self.metadata.name.size() < 10",
            "has(self.metadata.labels)",
            "has(self.metadata.name)",
            "self.e.kind == ''",
            "has(self.e.apiVersion)",
            "self.l.size() > 0",
            "self.s == 1",
            "self.missing == 'a' || true",
            "true || self.missing",
            "false && self.s == 'a'",
            "self.n.size() > 0",
            "self.s.matches('^' + 'a')",
            "self.s == oldSelf.s",
            "self.s.matches('^[a-z]+$') && self.n > 0 && (!has(self.o) || self.o.p != '')",
        ];
        let schema_for = |rule: &str| {
            json!({"type": "object",
                "properties": {"s": {"type": "string"}, "d": {"type": "string"},
                    "n": {"type": "integer"}, "f": {"type": "number"},
                    "b": {"type": "boolean"}, "t": {"type": "string", "format": "date-time"},
                    "m": {"type": "object", "additionalProperties": {"type": "string"}},
                    "o": {"type": "object", "properties": {"p": {"type": "string"}}},
                    "e": {"type": "object", "x-kubernetes-embedded-resource": true,
                        "x-kubernetes-preserve-unknown-fields": true},
                    "x-y": {"type": "string"},
                    "l": {"type": "array", "items": {"type": "string"}}},
                "x-kubernetes-validations": [{"rule": rule, "message": "m"}]})
        };
        let objects = [
            json!({"metadata": {"name": "abc", "labels": {"a": "b"}}, "s": "abc", "d": "1.5",
                "n": 3, "f": 1.5, "b": true, "t": "2020-01-01T00:00:00Z", "m": {"k": "v"},
                "o": {"p": "q"}, "e": {"spec": {}}, "x-y": "z", "l": ["a"]}),
            json!({"metadata": {"name": "a.very.long.name"}, "s": "x", "d": "0", "n": 7,
                "f": 0.25, "b": false, "m": {"k": "w", "x.y": "v"}, "o": {}, "e": {"kind": "K"},
                "x-y": "no", "l": []}),
            json!({"s": "NaN", "d": "inf", "n": 1.0, "f": 1, "t": "x", "m": {}}),
            json!({"s": "", "n": -1, "d": "2", "o": {"p": 1}}),
            json!({}),
        ];
        let mut fast_passes = 0;
        for rule in rules {
            let compiled = kube::core::cel::compile_schema(&schema_for(rule));
            for obj in &objects {
                for resource_root in [true, false] {
                    let fast = all_pass(&compiled, obj, resource_root, false);
                    let cel = evaluate_whole(
                        &compiled,
                        to_cel_resource_for_tests(obj, &compiled, resource_root),
                    );
                    if fast {
                        fast_passes += 1;
                        assert!(cel.is_empty(), "{rule} on {obj}: {cel:?}");
                    }
                }
            }
        }
        assert!(fast_passes >= 100, "{fast_passes}");
    }

    #[test]
    fn the_job_crd_rules_pass_here_for_a_valid_job() {
        // Every node of a valid Job (the bench's) passes without the cel crate, on a create.
        let crd: Value = serde_yaml::from_str(include_str!(
            "../../../../../config/crd/bases/batch.barge.dev_jobs.yaml"
        ))
        .expect("Job CRD");
        let root = Node::parse(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], "")
            .expect("Job schema compiles");
        let job = json!({"apiVersion": "batch.barge.dev/v1alpha1", "kind": "Job",
            "metadata": {"name": "job-1", "namespace": "default", "labels": {"bench": "jobs"}},
            "spec": {"jobQueue": "bench-queue", "jobDefinition": "bench-def:1",
                "shareIdentifier": "teamA", "parameters": {"seconds": "0"},
                "containerOverrides": {"resourceRequirements": [
                    {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]},
                "retryStrategy": {"attempts": 2}, "timeout": {"attemptDurationSeconds": 600}}});
        fn walk(node: &Node, value: &Value, root: bool, checked: &mut Vec<bool>) {
            if let Some(c) = &node.cel {
                checked.push(all_pass(c, value, root, false));
            }
            match value {
                Value::Object(map) => {
                    for (k, v) in map {
                        if let Some(p) = node.properties.get(k) {
                            walk(p, v, false, checked);
                        } else if let Additional::Schema(a) = &node.additional {
                            walk(a, v, false, checked);
                        }
                    }
                }
                Value::Array(items) => {
                    if let Some(i) = node.items.as_deref() {
                        items.iter().for_each(|v| walk(i, v, false, checked));
                    }
                }
                _ => {}
            }
        }
        let mut checked = Vec::new();
        walk(&root, &job, true, &mut checked);
        assert_eq!(checked.len(), 8, "{checked:?}");
        assert!(checked.iter().all(|p| *p), "{checked:?}");
        // A bad value is left to the cel crate.
        let mut bad = job.clone();
        bad["spec"]["jobQueue"] = json!("Bad Queue");
        let mut checked = Vec::new();
        walk(&root, &bad, true, &mut checked);
        assert_eq!(checked.iter().filter(|p| !**p).count(), 1, "{checked:?}");
    }
}
