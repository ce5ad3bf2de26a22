//! `x-kubernetes-validations`: each node's rules were compiled once by kube-cel; here they are
//! evaluated node by node with kube-cel's compiled programs in a CEL context of our own (kube-cel's
//! functions, and a `matches()` that compiles each pattern once — [`cached_is_match`] — as cel-go's
//! constant-regex optimisation does upstream), with `oldSelf` correlated the way the API
//! server correlates it (object properties and map values by key, `x-kubernetes-list-type: map`
//! items by their key fields, other list items not at all), and failures turned into field
//! errors as `apiextensions-apiserver/pkg/apiserver/schema/cel` reports them.
//!
//! Validation ratcheting (`CRDValidationRatcheting`, GA in 1.33): on an update, a subtree that is
//! unchanged from its correlated old value is not re-validated — its rules, transition rules
//! included, already held (or were ratcheted) when it was written, and upstream's
//! `ratchetingValidator` treats errors on unchanged correlatable values as warnings that are
//! dropped. Rules on changed nodes run in full, with `oldSelf`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use super::errors::{FieldError, FieldErrorKind};
use super::schema::{Additional, FieldPath, Node, Trail};
use super::structural::{json_eq, map_list_keys_eq};
use super::ListType;
use kube::core::cel::cel::common::ast::{EntryExpr, Expr, IdedEntryExpr};
use kube::core::cel::cel::extractors::This;
use kube::core::cel::cel::objects::{Key, Map};
use kube::core::cel::cel::parser::Expression;
use kube::core::cel::cel::{Context, ExecutionError, FunctionContext, Value as CelValue};
use kube::core::cel::{
    CompilationError, CompilationResult, CompiledSchema, ErrorKind, KubeCelExt, SchemaFormat,
};
use serde_json::{json, Value};

/// A rule that did not pass, as kube-cel's validator reports it.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub rule: String,
    pub message: String,
    /// The rule's `fieldPath`, relative to its node ("" = the node).
    pub field_path: String,
    pub reason: Option<String>,
    pub kind: ErrorKind,
}

pub(crate) fn validate(
    node: &Node,
    value: &Value,
    old: Option<&Value>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let mut walk = Walk { errs };
    walk.node(node, value, None, old, None, &Trail::Root(path), true);
}

/// A value already converted to CEL by an ancestor's conversion, with the compiled schema it was
/// converted under: the object is converted once per request (at the highest node with rules,
/// and its old counterpart once), and descendants with rules read their part of it.
#[derive(Clone, Copy)]
struct Converted<'a> {
    value: &'a CelValue,
    schema: &'a CompiledSchema,
}

impl<'a> Converted<'a> {
    /// The converted value of property (or map entry) `key`, when the parent's conversion typed
    /// it under a schema (else the caller converts it itself).
    fn field(self, key: &str, resource_root: bool) -> Option<Converted<'a>> {
        // A resource's metadata was cut down to what CEL sees of it.
        if (resource_root || self.schema.embedded_resource) && key == "metadata" {
            return None;
        }
        let schema = self
            .schema
            .properties
            .get(key)
            .or(self.schema.additional_properties.as_deref())?;
        let CelValue::Map(map) = self.value else {
            return None;
        };
        let name = if self.schema.is_map {
            key.to_string()
        } else {
            escape_field_name(key)
        };
        let value = map.map.get(&Key::String(Arc::new(name)))?;
        Some(Converted { value, schema })
    }

    /// The converted value of list item `index`.
    fn item(self, index: usize) -> Option<Converted<'a>> {
        let schema = self.schema.items.as_deref()?;
        let CelValue::List(items) = self.value else {
            return None;
        };
        Some(Converted {
            value: items.get(index)?,
            schema,
        })
    }
}

struct Walk<'e> {
    errs: &'e mut Vec<FieldError>,
}

impl Walk<'_> {
    /// Validates one node's rules and its descendants'. `cel` / `old_cel`: this node's value (and
    /// old value) as converted by an ancestor, if one did.
    #[allow(clippy::too_many_arguments)]
    fn node(
        &mut self,
        node: &Node,
        value: &Value,
        cel: Option<Converted<'_>>,
        old: Option<&Value>,
        old_cel: Option<Converted<'_>>,
        path: &Trail<'_>,
        resource_root: bool,
    ) {
        if !node.has_rules {
            return;
        }
        // Ratcheting: an unchanged subtree keeps the verdict it was stored with.
        if old.is_some_and(|o| json_eq(o, value)) {
            return;
        }
        let own;
        let own_old;
        let (cel, old_cel) = match &node.cel {
            // Rules that do not run on this write (transition rules on a create) bind nothing:
            // descendants read the ancestor's conversion, if there was one, or convert their own.
            // Rules that surely pass (the common case) need nothing converted or bound.
            Some(compiled)
                if node.cel_plan.binding(old.is_some()).runs
                    && !super::fast::all_pass(compiled, value, resource_root, old.is_some()) =>
            {
                let binding = node.cel_plan.binding(old.is_some());
                // What is bound of `self`: projected from the ancestor's conversion if there was
                // one; else converted whole here (and handed to descendants) when the rules read
                // it whole; else only the fields the rules read are converted, straight from the
                // JSON ([`project_to_cel`]), and descendants convert their own parts.
                let (bound, cel) = match cel {
                    Some(c) => (binding.self_.project(c.value), Some(c)),
                    None if binding.self_ == Reads::Whole => {
                        own = to_cel_resource(value, compiled, resource_root);
                        (
                            Some(own.clone()),
                            Some(Converted {
                                value: &own,
                                schema: compiled,
                            }),
                        )
                    }
                    None => (
                        project_to_cel(value, compiled, &binding.self_, resource_root),
                        None,
                    ),
                };
                // `oldSelf` is bound only for the rules that read it (transition rules), as
                // upstream binds it lazily: the cel crate copies every bound value into its own
                // representation, so an unread `oldSelf` would cost a second object's worth.
                let (old_bound, old_cel) =
                    match (old.filter(|_| binding.old_self != Reads::Nothing), old_cel) {
                        (None, c) => (None, c),
                        (Some(_), Some(c)) => (binding.old_self.project(c.value), Some(c)),
                        (Some(o), None) if binding.old_self == Reads::Whole => {
                            own_old = to_cel_resource(o, compiled, resource_root);
                            (
                                Some(own_old.clone()),
                                Some(Converted {
                                    value: &own_old,
                                    schema: compiled,
                                }),
                            )
                        }
                        (Some(o), None) => (
                            project_to_cel(o, compiled, &binding.old_self, resource_root),
                            None,
                        ),
                    };
                for f in evaluate_bound(compiled, bound, old_bound, old.is_some()) {
                    self.errs
                        .push(to_field_error(node, &path.path(), value, &f));
                }
                (cel, old_cel)
            }
            _ => (cel, old_cel),
        };
        match value {
            Value::Object(map) => {
                for (k, prop) in &node.properties {
                    if !prop.has_rules {
                        continue;
                    }
                    if let Some(v) = map.get(k) {
                        self.node(
                            prop,
                            v,
                            cel.and_then(|c| c.field(k, resource_root)),
                            old.and_then(|o| o.get(k)),
                            old_cel.and_then(|c| c.field(k, resource_root)),
                            &Trail::Child(path, k),
                            false,
                        );
                    }
                }
                if let Additional::Schema(add) = &node.additional {
                    if add.has_rules && !node.preserve_unknown {
                        for (k, v) in map
                            .iter()
                            .filter(|(k, _)| !node.properties.contains_key(*k))
                        {
                            self.node(
                                add,
                                v,
                                cel.and_then(|c| c.field(k, resource_root)),
                                old.and_then(|o| o.get(k)),
                                old_cel.and_then(|c| c.field(k, resource_root)),
                                &Trail::Key(path, k),
                                false,
                            );
                        }
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = node.items.as_deref().filter(|i| i.has_rules) {
                    for (i, item) in items.iter().enumerate() {
                        let old_item = correlate_item(&node.list_type, item, old);
                        self.node(
                            item_schema,
                            item,
                            cel.and_then(|c| c.item(i)),
                            old_item.map(|(_, o)| o),
                            old_item.and_then(|(j, _)| old_cel.and_then(|c| c.item(j))),
                            &Trail::Index(path, i),
                            false,
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

/// Most patterns kept compiled per thread; the map starts over when full.
const REGEX_CACHE_SIZE: usize = 512;

thread_local! {
    static REGEXES: RefCell<HashMap<String, regex::Regex>> = RefCell::new(HashMap::new());
    /// kube-cel's functions plus the caching `matches()`, built once per thread.
    static CONTEXT: Context<'static> = {
        let mut ctx = Context::default();
        ctx.register_all();
        ctx.add_function("matches", matches);
        ctx
    };
}

/// Whether `text` matches `pattern`, compiled once per thread: the regex stays in the cache and is
/// used in place (a clone of a `Regex` starts with an empty matching cache, so cloning it out
/// would rebuild its lazy DFA on every call).
pub(crate) fn cached_is_match(pattern: &str, text: &str) -> Result<bool, regex::Error> {
    REGEXES.with(|cache| {
        if let Some(re) = cache.borrow().get(pattern) {
            return Ok(re.is_match(text));
        }
        let re = regex::Regex::new(pattern)?;
        let matched = re.is_match(text);
        let mut cache = cache.borrow_mut();
        if cache.len() >= REGEX_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(pattern.to_string(), re);
        Ok(matched)
    })
}

/// CEL's `string.matches(pattern)` (RE2 semantics through the regex crate, as the cel crate's own),
/// with the compiled pattern cached.
fn matches(
    ftx: &FunctionContext,
    This(this): This<Arc<String>>,
    pattern: Arc<String>,
) -> Result<bool, ExecutionError> {
    cached_is_match(&pattern, &this)
        .map_err(|err| ftx.error(format!("'{pattern}' not a valid regex:\n{err}")))
}

/// Runs the node's own compiled rules on `value` (and `old` for transition rules), as kube-cel's
/// `Validator::validate_compiled` does for a node without descendant rules.
#[cfg(test)]
pub(crate) fn evaluate(
    compiled: &CompiledSchema,
    value: &Value,
    old: Option<&Value>,
) -> Vec<Failure> {
    let cel_old = old.map(|o| to_cel(o, compiled));
    let plan = Plan::of(compiled);
    evaluate_converted(
        compiled,
        plan.binding(old.is_some()),
        &to_cel(value, compiled),
        cel_old.as_ref(),
        old.is_some(),
    )
}

/// The node's rules run by the cel crate with `self` bound whole (no `oldSelf`: a create).
#[cfg(test)]
pub(crate) fn evaluate_whole(compiled: &CompiledSchema, value: CelValue) -> Vec<Failure> {
    evaluate_bound(compiled, Some(value), None, false)
}

/// [`to_cel_resource`], for other modules' tests.
#[cfg(test)]
pub(crate) fn to_cel_resource_for_tests(
    value: &Value,
    compiled: &CompiledSchema,
    resource_root: bool,
) -> CelValue {
    to_cel_resource(value, compiled, resource_root)
}

/// Whether any of the node's rules reads `oldSelf` (a transition rule, or one with
/// `optionalOldSelf`).
fn reads_old_self(compiled: &CompiledSchema) -> bool {
    compiled.validations.iter().any(|r| {
        r.as_ref()
            .is_ok_and(|cr| cr.is_transition_rule || cr.rule.optional_old_self == Some(true))
    })
}

/// What the rules of a node read of a bound variable (`self` or `oldSelf`), from their compiled
/// expressions. The cel crate copies a bound value into its own representation, and copies a
/// selected field again every time a rule selects it (`self.spec.x` copies `spec`), so a node
/// binds only what its rules can reach: where a value is only ever read through field selections
/// (`self.spec.x`, `has(self.spec.y)`) it is bound holding those fields alone, and a field only
/// tested for presence (`has(self.f)`) is bound as `null`. Such a rule evaluates exactly as on
/// the whole value: the fields it selects are there (or absent) as they are in the value, and it
/// has no way to see the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Reads {
    /// Not read: not bound.
    #[default]
    Nothing,
    /// Only tested for presence (`has(self.f)`): any value will do.
    Presence,
    /// Only these fields are selected (CEL names, as keys of the converted map), each read so.
    Fields(Vec<(Key, Reads)>),
    /// Read as a whole (passed to a function, compared, iterated, shadowed by a macro variable).
    Whole,
}

/// The field names of `expr` if it is `var.f1.f2…` (plain selections, no `has`), outermost last.
fn select_chain<'a>(expr: &'a Expression, var: &str) -> Option<Vec<&'a str>> {
    match &expr.expr {
        Expr::Ident(name) if name == var => Some(Vec::new()),
        Expr::Select(select) if !select.test => {
            let mut path = select_chain(&select.operand, var)?;
            path.push(&select.field);
            Some(path)
        }
        _ => None,
    }
}

impl Reads {
    /// Adds a read of `path` under this value, the last field read as `leaf`.
    fn add_path(&mut self, path: &[&str], leaf: Reads) {
        let Some((first, rest)) = path.split_first() else {
            self.merge(&leaf);
            return;
        };
        match self {
            Reads::Whole => {}
            Reads::Nothing | Reads::Presence => {
                *self = Reads::Fields(Vec::new());
                self.add_path(path, leaf);
            }
            Reads::Fields(fields) => {
                let i = match fields
                    .iter()
                    .position(|(k, _)| matches!(k, Key::String(s) if s.as_str() == *first))
                {
                    Some(i) => i,
                    None => {
                        fields.push((Key::String(Arc::new(first.to_string())), Reads::Nothing));
                        fields.len() - 1
                    }
                };
                fields[i].1.add_path(rest, leaf);
            }
        }
    }

    fn merge(&mut self, other: &Reads) {
        match (&mut *self, other) {
            (_, Reads::Nothing) | (Reads::Whole, _) => {}
            (_, Reads::Whole) => *self = Reads::Whole,
            (Reads::Nothing, Reads::Presence) => *self = Reads::Presence,
            (_, Reads::Presence) => {}
            (_, Reads::Fields(fields)) => {
                for (k, sub) in fields {
                    if let Key::String(name) = k {
                        self.add_path(&[name.as_str()], sub.clone());
                    }
                }
            }
        }
    }

    /// What `expr` reads of variable `var`, added to `self`.
    fn collect(&mut self, expr: &Expression, var: &str) {
        match &expr.expr {
            Expr::Ident(name) => {
                if name == var {
                    *self = Reads::Whole;
                }
            }
            Expr::Select(select) => match select_chain(&select.operand, var) {
                Some(mut path) => {
                    path.push(&select.field);
                    let leaf = if select.test {
                        Reads::Presence
                    } else {
                        Reads::Whole
                    };
                    self.add_path(&path, leaf);
                }
                None => self.collect(&select.operand, var),
            },
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    self.collect(target, var);
                }
                call.args.iter().for_each(|a| self.collect(a, var));
            }
            Expr::Comprehension(c) => {
                // A macro variable of the same name hides the bound one: bind it whole.
                if c.iter_var == var || c.accu_var == var || c.iter_var2.as_deref() == Some(var) {
                    *self = Reads::Whole;
                }
                for e in [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ] {
                    self.collect(e, var);
                }
            }
            Expr::List(list) => list.elements.iter().for_each(|e| self.collect(e, var)),
            Expr::Map(map) => map.entries.iter().for_each(|e| self.collect_entry(e, var)),
            Expr::Struct(st) => st.entries.iter().for_each(|e| self.collect_entry(e, var)),
            Expr::Literal(_) | Expr::Unspecified => {}
        }
    }

    fn collect_entry(&mut self, entry: &IdedEntryExpr, var: &str) {
        match &entry.expr {
            EntryExpr::MapEntry(e) => {
                self.collect(&e.key, var);
                self.collect(&e.value, var);
            }
            EntryExpr::StructField(f) => self.collect(&f.value, var),
        }
    }

    /// The value to bind for a variable read this way (None: not bound).
    fn project(&self, value: &CelValue) -> Option<CelValue> {
        match (self, value) {
            (Reads::Nothing, _) => None,
            (Reads::Presence, _) => Some(CelValue::Null),
            (Reads::Fields(fields), CelValue::Map(m)) => {
                let map: HashMap<Key, CelValue> = fields
                    .iter()
                    .filter_map(|(k, sub)| {
                        let v = m.map.get(k)?;
                        Some((k.clone(), sub.project(v).unwrap_or_else(|| v.clone())))
                    })
                    .collect();
                Some(CelValue::Map(Map { map: Arc::new(map) }))
            }
            _ => Some(value.clone()),
        }
    }
}

/// What a node's rules need on one kind of write.
#[derive(Debug, Default)]
pub(crate) struct Binding {
    /// Whether anything is evaluated (or a compilation failure reported) at all.
    pub runs: bool,
    pub self_: Reads,
    pub old_self: Reads,
}

/// A node's [`Binding`]s on a create (no old value) and on an update, worked out once per CRD
/// version from its compiled rules.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    create: Binding,
    update: Binding,
}

impl Plan {
    pub(crate) fn of(compiled: &CompiledSchema) -> Plan {
        let old_bound = reads_old_self(compiled);
        let mut plan = Plan::default();
        for result in &compiled.validations {
            let Ok(cr) = result else {
                // Reported on every write.
                plan.create.runs = true;
                plan.update.runs = true;
                continue;
            };
            let mut self_ = Reads::Nothing;
            let mut old_self = Reads::Nothing;
            for program in std::iter::once(&cr.program).chain(cr.message_program.as_ref()) {
                self_.collect(program.expression(), "self");
                old_self.collect(program.expression(), "oldSelf");
            }
            // Skipped on a create, as `evaluate_rule` skips it.
            let on_create = !cr.is_transition_rule || cr.rule.optional_old_self == Some(true);
            if on_create {
                plan.create.runs = true;
                plan.create.self_.merge(&self_);
            }
            plan.update.runs = true;
            plan.update.self_.merge(&self_);
            if old_bound {
                plan.update.old_self.merge(&old_self);
            }
        }
        plan
    }

    pub(crate) fn binding(&self, has_old: bool) -> &Binding {
        if has_old {
            &self.update
        } else {
            &self.create
        }
    }
}

/// [`evaluate`] over values already converted to CEL. `has_old`: the write is an update (the old
/// value exists), whether or not `old` was bound (it is only for rules that read it).
#[cfg(test)]
fn evaluate_converted(
    compiled: &CompiledSchema,
    binding: &Binding,
    value: &CelValue,
    old: Option<&CelValue>,
    has_old: bool,
) -> Vec<Failure> {
    evaluate_bound(
        compiled,
        binding.self_.project(value),
        old.and_then(|o| binding.old_self.project(o)),
        has_old,
    )
}

/// Runs the node's compiled rules with `self` and `oldSelf` bound to these values (None: not
/// bound; the rules do not read it). `has_old`: the write is an update.
fn evaluate_bound(
    compiled: &CompiledSchema,
    self_: Option<CelValue>,
    old_self: Option<CelValue>,
    has_old: bool,
) -> Vec<Failure> {
    let mut out = Vec::new();
    CONTEXT.with(|base| {
        let mut node_ctx = base.new_inner_scope();
        if let Some(v) = self_ {
            node_ctx.add_variable_from_value("self", v);
        }
        if let Some(o) = old_self {
            node_ctx.add_variable_from_value("oldSelf", o);
        }
        for result in &compiled.validations {
            match result {
                Ok(cr) => evaluate_rule(cr, &node_ctx, has_old, &mut out),
                Err(e) => out.push(compile_failure(e)),
            }
        }
    });
    out
}

fn evaluate_rule(
    cr: &CompilationResult,
    node_ctx: &Context<'_>,
    has_old: bool,
    out: &mut Vec<Failure>,
) {
    let optional_old = cr.rule.optional_old_self == Some(true);
    // A transition rule is not evaluated without an old value (unless optionalOldSelf).
    if cr.is_transition_rule && !has_old && !optional_old {
        return;
    }
    let null_scope;
    let ctx: &Context<'_> = if !has_old && optional_old {
        null_scope = {
            let mut s = node_ctx.new_inner_scope();
            s.add_variable_from_value("oldSelf", CelValue::Null);
            s
        };
        &null_scope
    } else {
        node_ctx
    };
    // Built only when the rule fails.
    let failure = |message: String, reason: Option<String>, kind: ErrorKind| Failure {
        rule: cr.rule.rule.clone(),
        message,
        field_path: cr.rule.field_path.clone().unwrap_or_default(),
        reason,
        kind,
    };
    match cr.program.execute(ctx) {
        Ok(CelValue::Bool(true)) => {}
        Ok(CelValue::Bool(false)) => {
            let message = match cr.message_program.as_ref().map(|p| p.execute(ctx)) {
                Some(Ok(CelValue::String(s))) => (*s).clone(),
                _ => cr
                    .rule
                    .message
                    .clone()
                    .unwrap_or_else(|| format!("failed rule: {}", cr.rule.rule)),
            };
            out.push(failure(message, cr.rule.reason.clone(), ErrorKind::ValidationFailure));
        }
        Ok(_) => out.push(failure(
            format!("rule \"{}\" did not evaluate to bool", cr.rule.rule),
            None,
            ErrorKind::InvalidResult,
        )),
        Err(ExecutionError::UndeclaredReference(name)) => out.push(failure(
            format!("rule references '{name}', which this kube-cel build does not support (an unsupported CEL macro, or a feature disabled at compile time); it cannot be evaluated client-side"),
            None,
            ErrorKind::UnsupportedReference,
        )),
        Err(e) => out.push(failure(
            format!("rule evaluation error: {e}"),
            None,
            ErrorKind::EvaluationError,
        )),
    }
}

fn compile_failure(e: &CompilationError) -> Failure {
    let (rule, message, kind) = match e {
        CompilationError::Parse { rule, source } => (
            rule.clone(),
            format!("failed to compile rule \"{rule}\": {source}"),
            ErrorKind::CompilationFailure,
        ),
        CompilationError::MessageExpressionParse {
            rule,
            message_expression,
            source,
        } => (
            rule.clone(),
            format!("failed to compile messageExpression \"{message_expression}\" for rule \"{rule}\": {source}"),
            ErrorKind::CompilationFailure,
        ),
        CompilationError::InvalidRule(e) => (
            String::new(),
            format!("invalid rule definition: {e}"),
            ErrorKind::InvalidRule,
        ),
        other => (String::new(), other.to_string(), ErrorKind::CompilationFailure),
    };
    Failure {
        rule,
        message,
        field_path: String::new(),
        reason: None,
        kind,
    }
}

/// CEL reserved words, escaped as `__word__` in field names (apiserver/schema/cel/model).
const CEL_RESERVED_WORDS: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// A property name as CEL sees it (`_` → `__`, `.` → `__dot__`, `-` → `__dash__`, `/` →
/// `__slash__`, reserved words → `__word__`).
fn escape_field_name(name: &str) -> String {
    if CEL_RESERVED_WORDS.contains(&name) {
        return format!("__{name}__");
    }
    if !name.contains(['_', '.', '-', '/']) {
        return name.to_string();
    }
    let mut out = String::with_capacity(name.len() * 2);
    for ch in name.chars() {
        match ch {
            '_' => out.push_str("__"),
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c => out.push(c),
        }
    }
    out
}

fn cel_number(n: &serde_json::Number) -> CelValue {
    if let Some(i) = n.as_i64() {
        CelValue::Int(i)
    } else if let Some(u) = n.as_u64() {
        CelValue::UInt(u)
    } else {
        CelValue::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

fn cel_string(s: &str, format: &SchemaFormat) -> CelValue {
    use base64::Engine;
    match format {
        SchemaFormat::DateTime => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => CelValue::Timestamp(t),
            Err(_) => CelValue::String(Arc::new(s.to_string())),
        },
        SchemaFormat::Duration => match go_duration_nanos(s) {
            Some(n) => CelValue::Duration(chrono::Duration::nanoseconds(n)),
            None => CelValue::String(Arc::new(s.to_string())),
        },
        SchemaFormat::Bytes => match base64::engine::general_purpose::STANDARD.decode(s) {
            Ok(b) => CelValue::Bytes(Arc::new(b)),
            Err(_) => CelValue::String(Arc::new(s.to_string())),
        },
        _ => CelValue::String(Arc::new(s.to_string())),
    }
}

/// A Go duration (`1h30m`, `-1.5s`, `0`) in nanoseconds, as kube-cel binds `format: duration`
/// strings (units h, m, s, ms, us, ns); None when it is not one.
fn go_duration_nanos(input: &str) -> Option<i64> {
    let (mut rest, negative) = match input.strip_prefix('-') {
        Some(r) => (r, true),
        None => (input, false),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total: i64 = 0;
    let mut any = false;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        if end == 0 {
            return None;
        }
        let n: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let (unit, len) = [
            ("ms", 1_000_000i64),
            ("us", 1_000),
            ("ns", 1),
            ("h", 3_600_000_000_000),
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
        ]
        .iter()
        .find(|(u, _)| rest.starts_with(u))
        .map(|(u, f)| (*f, u.len()))?;
        rest = &rest[len..];
        total += (n * unit as f64).trunc() as i64;
        any = true;
    }
    any.then_some(if negative { -total } else { total })
}

/// A JSON value without schema as CEL sees it.
fn untyped_to_cel(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => cel_number(n),
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(a) => CelValue::List(Arc::new(a.iter().map(untyped_to_cel).collect())),
        Value::Object(o) => {
            let map = o
                .iter()
                .map(|(k, v)| {
                    (
                        Key::String(Arc::new(escape_field_name(k))),
                        untyped_to_cel(v),
                    )
                })
                .collect();
            CelValue::Map(Map { map: Arc::new(map) })
        }
    }
}

/// [`to_cel`] of a value that may be the resource itself (`resource_root`): its `metadata`, as for
/// embedded resources, is what CEL sees of an `ObjectMeta` ([`object_meta_to_cel`]).
fn to_cel_resource(value: &Value, compiled: &CompiledSchema, resource_root: bool) -> CelValue {
    match value {
        Value::Object(o) if resource_root => object_to_cel(o, compiled, true),
        _ => to_cel(value, compiled),
    }
}

/// `reads.project(&to_cel_resource(value, compiled, resource_root))` — what a node binds of a
/// value its rules read this way — built straight from the JSON: only the fields the rules select
/// are converted (the Job root reads `metadata.name` and `spec.dependsOn` of the whole object).
/// None when the value is not read.
fn project_to_cel(
    value: &Value,
    compiled: &CompiledSchema,
    reads: &Reads,
    resource_root: bool,
) -> Option<CelValue> {
    match (reads, value) {
        (Reads::Nothing, _) => None,
        (Reads::Presence, _) => Some(CelValue::Null),
        (Reads::Fields(fields), Value::Object(o)) => Some(project_object_to_cel(
            o,
            compiled,
            fields,
            resource_root || compiled.embedded_resource,
        )),
        _ => Some(to_cel_resource(value, compiled, resource_root)),
    }
}

/// [`project_to_cel`] of an object: [`object_to_cel`]'s map cut down to `fields`, each projected.
fn project_object_to_cel(
    o: &serde_json::Map<String, Value>,
    compiled: &CompiledSchema,
    fields: &[(Key, Reads)],
    resource: bool,
) -> CelValue {
    let mut map: HashMap<Key, CelValue> = HashMap::with_capacity(fields.len());
    for (key, sub) in fields {
        let Key::String(name) = key else { continue };
        let found = property_named(o, name, compiled.is_map);
        let child = match found {
            Some((k, v)) if resource && k == "metadata" => {
                let meta = object_meta_to_cel(v);
                sub.project(&meta).unwrap_or(meta)
            }
            Some((k, v)) => match compiled
                .properties
                .get(k)
                .or(compiled.additional_properties.as_deref())
            {
                Some(c) => match project_to_cel(v, c, sub, false) {
                    Some(p) => p,
                    None => to_cel(v, c),
                },
                None => {
                    let whole = untyped_to_cel(v);
                    sub.project(&whole).unwrap_or(whole)
                }
            },
            None if compiled.embedded_resource => {
                let default = match name.as_str() {
                    "apiVersion" | "kind" => CelValue::String(Arc::new(String::new())),
                    "metadata" => CelValue::Map(Map {
                        map: Arc::new(HashMap::new()),
                    }),
                    _ => continue,
                };
                sub.project(&default).unwrap_or(default)
            }
            None => continue,
        };
        map.insert(key.clone(), child);
    }
    CelValue::Map(Map { map: Arc::new(map) })
}

/// The JSON property of `o` whose CEL name is `cel_name` (map keys are not escaped: `is_map`); the
/// last one, as [`object_to_cel`]'s map keeps it. A plain name (no `_`, `.`, `-`, `/`, not a
/// reserved word) is its own escape and every other name's escape has a `_`: looked up directly.
pub(crate) fn property_named<'a>(
    o: &'a serde_json::Map<String, Value>,
    cel_name: &str,
    is_map: bool,
) -> Option<(&'a String, &'a Value)> {
    if is_map
        || (!cel_name.contains(['_', '.', '-', '/']) && !CEL_RESERVED_WORDS.contains(&cel_name))
    {
        return o.get_key_value(cel_name);
    }
    o.iter().rev().find(|(k, _)| cel_name_is(k, cel_name))
}

/// Whether property `name` is called `cel_name` in CEL ([`escape_field_name`], without building
/// the escaped name for a plain one).
pub(crate) fn cel_name_is(name: &str, cel_name: &str) -> bool {
    if !name.contains(['_', '.', '-', '/']) && !CEL_RESERVED_WORDS.contains(&name) {
        name == cel_name
    } else {
        escape_field_name(name) == cel_name
    }
}

/// The `metadata` of a resource (the object root, or an embedded resource) as CEL rules see it:
/// only `name` and `generateName` are declared (apiextensions-apiserver's
/// `WithTypeAndObjectMeta`), so labels, annotations and managedFields are never converted.
fn object_meta_to_cel(meta: &Value) -> CelValue {
    let mut map: HashMap<Key, CelValue> = HashMap::new();
    if let Value::Object(m) = meta {
        for k in ["name", "generateName"] {
            if let Some(v) = m.get(k) {
                map.insert(Key::String(Arc::new(k.to_string())), untyped_to_cel(v));
            }
        }
    }
    CelValue::Map(Map { map: Arc::new(map) })
}

/// An object under its schema; `resource`: it is a resource (root or embedded), whose metadata
/// CEL sees cut down.
fn object_to_cel(
    o: &serde_json::Map<String, Value>,
    compiled: &CompiledSchema,
    resource: bool,
) -> CelValue {
    let mut map: HashMap<Key, CelValue> = HashMap::with_capacity(o.len());
    for (k, v) in o {
        let child = if resource && k == "metadata" {
            object_meta_to_cel(v)
        } else {
            match compiled
                .properties
                .get(k)
                .or(compiled.additional_properties.as_deref())
            {
                Some(c) => to_cel(v, c),
                None => untyped_to_cel(v),
            }
        };
        let key = if compiled.is_map {
            k.clone()
        } else {
            escape_field_name(k)
        };
        map.insert(Key::String(Arc::new(key)), child);
    }
    if compiled.embedded_resource {
        for k in ["apiVersion", "kind"] {
            map.entry(Key::String(Arc::new(k.into())))
                .or_insert_with(|| CelValue::String(Arc::new(String::new())));
        }
        map.entry(Key::String(Arc::new("metadata".into())))
            .or_insert_with(|| {
                CelValue::Map(Map {
                    map: Arc::new(HashMap::new()),
                })
            });
    }
    CelValue::Map(Map { map: Arc::new(map) })
}

/// A JSON value as CEL sees it under its schema: formatted strings as timestamps, durations and
/// bytes, property names escaped (map keys are data and are not), embedded resources with their
/// `apiVersion`, `kind` and `metadata`.
fn to_cel(value: &Value, compiled: &CompiledSchema) -> CelValue {
    match value {
        Value::String(s) => cel_string(s, &compiled.format),
        Value::Array(a) => CelValue::List(Arc::new(
            a.iter()
                .map(|item| match &compiled.items {
                    Some(items) => to_cel(item, items),
                    None => untyped_to_cel(item),
                })
                .collect(),
        )),
        Value::Object(o) => object_to_cel(o, compiled, compiled.embedded_resource),
        other => untyped_to_cel(other),
    }
}

/// The old counterpart of a list item and its index: only `map` lists correlate (by their key
/// fields).
fn correlate_item<'a>(
    list_type: &ListType,
    item: &Value,
    old: Option<&'a Value>,
) -> Option<(usize, &'a Value)> {
    let ListType::Map { keys } = list_type else {
        return None;
    };
    old?.as_array()?
        .iter()
        .enumerate()
        .find(|(_, o)| map_list_keys_eq(o, item, keys))
}

/// The field error of a failed rule, as `validateExpressions` and `fieldErrorForReason` build
/// it: a rule that evaluated to false shows the value it was evaluated on — omitted for objects
/// and arrays (`spec: Invalid value: <message>`), printed for scalars (`spec.size: Invalid value:
/// 11: <message>`, `spec.name: Invalid value: "x": <message>`) — whether the detail comes from
/// `message`, `messageExpression` or the default `failed rule: <rule>`; `reason` picks the error
/// type (`Forbidden` and `Required` print no value); `fieldPath` moves the error to that field but
/// the value stays the rule's own. A rule that could not be evaluated (a runtime error) shows the
/// schema type instead (`Invalid value: "object": ... evaluating rule: ...`).
fn to_field_error(node: &Node, base: &FieldPath, value: &Value, f: &Failure) -> FieldError {
    let path = resolve_field_path(node, base, &f.field_path);
    // kube-apiserver trims the detail, and an empty one falls back to the default.
    let detail = match f.message.trim() {
        "" => format!("failed rule: {}", f.rule.trim()),
        d => d.to_string(),
    };
    let shown = match node.type_name() {
        "object" | "array" => None,
        _ => Some(value.clone()),
    };
    match f.kind {
        ErrorKind::ValidationFailure => match f.reason.as_deref() {
            Some("FieldValueForbidden") => FieldError::forbidden(path.as_str(), detail),
            Some("FieldValueRequired") => FieldError::required(path.as_str(), detail),
            Some("FieldValueDuplicate") => {
                FieldError::new(path.as_str(), FieldErrorKind::Duplicate, shown, "")
            }
            _ => FieldError::new(path.as_str(), FieldErrorKind::Invalid, shown, detail),
        },
        _ => FieldError::invalid(path.as_str(), json!(node.type_name()), f.message.clone()),
    }
}

/// Turns a rule's relative `fieldPath` (`.spec.x`, `.labels['a.b']`) into a field path under
/// `base`, rendering map keys as `[key]` the way the API server does.
fn resolve_field_path(node: &Node, base: &FieldPath, rel: &str) -> FieldPath {
    let mut path = base.clone();
    let mut current = Some(node);
    for seg in parse_segments(rel) {
        match seg {
            Segment::Name(name) => {
                let is_key = current.is_some_and(|n| n.is_map_key(&name));
                path = if is_key {
                    path.key(&name)
                } else {
                    path.child(&name)
                };
                current = current.and_then(|n| n.child(&name));
            }
            Segment::Index(i) => {
                path = path.index(i);
                current = current.and_then(|n| n.items.as_deref());
            }
        }
    }
    path
}

enum Segment {
    Name(String),
    Index(usize),
}

fn parse_segments(rel: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let chars: Vec<char> = rel.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => i += 1,
            '[' => {
                let end = chars[i..]
                    .iter()
                    .position(|c| *c == ']')
                    .map(|p| p + i)
                    .unwrap_or(chars.len());
                let inner: String = chars[i + 1..end].iter().collect();
                let trimmed = inner.trim_matches(|c| c == '\'' || c == '"');
                match (
                    inner.starts_with('\'') || inner.starts_with('"'),
                    trimmed.parse::<usize>(),
                ) {
                    (false, Ok(n)) => out.push(Segment::Index(n)),
                    _ => out.push(Segment::Name(trimmed.to_string())),
                }
                i = end + 1;
            }
            _ => {
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                out.push(Segment::Name(chars[start..i].iter().collect()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_compiles_each_pattern_once_per_thread() {
        let pattern = Arc::new("^cached-[0-9]+$".to_string());
        REGEXES.with(|c| c.borrow_mut().clear());
        assert_eq!(cached_is_match(&pattern, "cached-42").ok(), Some(true));
        REGEXES.with(|c| assert_eq!(c.borrow().len(), 1));
        assert_eq!(cached_is_match(&pattern, "other").ok(), Some(false));
        REGEXES.with(|c| assert_eq!(c.borrow().len(), 1));
        assert!(cached_is_match(&Arc::new("(".to_string()), "x").is_err());
        REGEXES.with(|c| assert_eq!(c.borrow().len(), 1));
    }

    #[test]
    fn rules_use_the_caching_matches() {
        let schema = json!({"type": "string", "x-kubernetes-validations": [
            {"rule": "self.matches('^[a-z]+$')", "message": "lowercase only"}]});
        let compiled = kube::core::cel::compile_schema(&schema);
        REGEXES.with(|c| c.borrow_mut().clear());
        assert!(evaluate(&compiled, &json!("abc"), None).is_empty());
        let f = evaluate(&compiled, &json!("ABC"), None);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].message, "lowercase only");
        // Both evaluations went through the one cached regex.
        REGEXES.with(|c| assert!(c.borrow().contains_key(&"^[a-z]+$".to_string())));
        let bad = kube::core::cel::compile_schema(&json!({"type": "string",
            "x-kubernetes-validations": [{"rule": "self.matches('(')"}]}));
        let f = evaluate(&bad, &json!("x"), None);
        assert_eq!(f.len(), 1);
        assert!(matches!(f[0].kind, ErrorKind::EvaluationError), "{f:?}");
    }

    fn plan_of(rules: Value) -> Plan {
        let compiled = kube::core::cel::compile_schema(&json!({"type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
            "x-kubernetes-validations": rules}));
        Plan::of(&compiled)
    }

    fn names(reads: &Reads) -> Option<Vec<String>> {
        match reads {
            Reads::Nothing => Some(vec![]),
            Reads::Presence => Some(vec!["?".into()]),
            Reads::Whole => None,
            Reads::Fields(fields) => Some(
                fields
                    .iter()
                    .map(|(k, sub)| {
                        let name = match k {
                            Key::String(s) => s.to_string(),
                            other => format!("{other:?}"),
                        };
                        match names(sub) {
                            None => name,
                            Some(inner) => format!("{name}{{{}}}", inner.join(",")),
                        }
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn plans_bind_only_the_fields_rules_read() {
        let p = plan_of(json!([
            {"rule": "self.a > 0 && has(self.b)"},
            {"rule": "self.a < 10", "messageExpression": "'c is ' + string(self.c)"}]));
        assert!(p.create.runs && p.update.runs);
        // `b` is only tested for presence.
        assert_eq!(
            names(&p.create.self_),
            Some(vec!["a".into(), "b{?}".into(), "c".into()])
        );
        // Nested selections bind nested projections (the Job CRD's root rules).
        let p = plan_of(json!([
            {"rule": "self.metadata.name.size() <= 63"},
            {"rule": "!has(self.spec.dependsOn) || self.spec.dependsOn.all(d, d.jobName != self.metadata.name)"},
            {"rule": "!has(self.spec.t) || !has(self.spec.t.x) || has(self.spec.a)"}]));
        assert_eq!(
            names(&p.create.self_),
            Some(vec![
                "metadata{name}".into(),
                "spec{dependsOn,t{x{?}},a{?}}".into()
            ])
        );
        // Presence then a value read: the value is bound.
        let p = plan_of(json!([{"rule": "!has(self.a) || self.a > 0"}]));
        assert_eq!(names(&p.create.self_), Some(vec!["a".into()]));
        assert_eq!(names(&p.update.old_self), Some(vec![]));
        // Read whole: passed to a function, iterated, compared.
        for rule in [
            "size(self) > 0",
            "self.all(k, k != 'x')",
            "self == self",
            "self.a == 1 || self.size() > 1",
        ] {
            assert_eq!(
                names(&plan_of(json!([{"rule": rule}])).create.self_),
                None,
                "{rule}"
            );
        }
        // A macro variable named like the bound one hides it: bound whole.
        let p = plan_of(json!([{"rule": "[1].all(self, self > 0) && self.a > 0"}]));
        assert_eq!(names(&p.create.self_), None);
        // Transition rules do not run on a create; their oldSelf reads are bound on an update.
        let p = plan_of(json!([{"rule": "self.a >= oldSelf.a"}]));
        assert!(!p.create.runs);
        assert_eq!(names(&p.update.self_), Some(vec!["a".into()]));
        assert_eq!(names(&p.update.old_self), Some(vec!["a".into()]));
        let p = plan_of(json!([{"rule": "self == oldSelf", "optionalOldSelf": true}]));
        assert!(p.create.runs);
        assert_eq!(names(&p.update.old_self), None);
    }

    #[test]
    fn projected_bindings_evaluate_as_the_whole_object() {
        // Every rule gives the same result (and message) with the projected `self` and
        // `oldSelf` as with the whole values bound, failures and runtime errors included.
        let schema = json!({"type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "string"},
                "c": {"type": "array", "items": {"type": "integer"}},
                "m": {"type": "object", "additionalProperties": {"type": "string"}},
                "x-y": {"type": "string"},
                "o": {"type": "object", "properties": {"p": {"type": "integer"}, "q": {"type": "string"},
                    "r": {"type": "object", "properties": {"s": {"type": "string"}}}}}},
            "x-kubernetes-validations": [
                {"rule": "self.a > 0", "message": "a positive"},
                {"rule": "has(self.b) && self.b.startsWith('ok')", "messageExpression": "'b was ' + self.b"},
                {"rule": "self.missing == 1"},
                {"rule": "self.c.all(i, i < self.a)", "message": "c under a"},
                {"rule": "!has(self.m) || self.m.size() < 2", "fieldPath": ".m"},
                {"rule": "self.x__dash__y != 'no'", "message": "escaped"},
                {"rule": "!has(self.o) || self.o.p > 0", "message": "o.p positive"},
                {"rule": "!has(self.o.q) || self.o.q != 'bad'", "message": "o.q bad"},
                {"rule": "has(self.o.r) == has(self.m)", "message": "o.r with m"},
                {"rule": "!has(self.o) || !has(self.o.r) || self.o.r.s == oldSelf.o.r.s", "message": "o.r.s fixed"},
                {"rule": "self.a >= oldSelf.a", "message": "a may not shrink"},
                {"rule": "!has(oldSelf.b) || self.b == oldSelf.b", "message": "b fixed"}]});
        let compiled = kube::core::cel::compile_schema(&schema);
        let plan = Plan::of(&compiled);
        let whole = |update: bool| Binding {
            runs: true,
            self_: Reads::Whole,
            old_self: if update { Reads::Whole } else { Reads::Nothing },
        };
        let old = json!({"a": 5, "b": "ok-old", "c": [1], "m": {"k": "v"}, "x-y": "yes",
            "o": {"p": 1, "r": {"s": "old"}}});
        for obj in [
            json!({"a": 5, "b": "ok-old", "c": [1, 2], "m": {"k": "v"}, "x-y": "yes"}),
            json!({"a": 1, "b": "bad", "c": [1, 2], "m": {"k": "v", "l": "w"}, "x-y": "no"}),
            json!({"a": 0}),
            json!({"a": 1, "o": {"p": 0, "q": "bad", "r": {"s": "new"}}, "m": {}}),
            json!({"a": 1, "o": {"p": 2, "q": "fine"}}),
            json!({"a": 1, "o": {"r": null}}),
            json!({}),
        ] {
            for old in [None, Some(&old)] {
                let v = to_cel(&obj, &compiled);
                let o = old.map(|o| to_cel(o, &compiled));
                let got = evaluate_converted(
                    &compiled,
                    plan.binding(old.is_some()),
                    &v,
                    o.as_ref(),
                    old.is_some(),
                );
                let want = evaluate_converted(
                    &compiled,
                    &whole(old.is_some()),
                    &v,
                    o.as_ref(),
                    old.is_some(),
                );
                assert_eq!(format!("{got:?}"), format!("{want:?}"), "{obj} old {old:?}");
            }
        }
        // The failures are the ones expected (messages unchanged).
        let v = to_cel(&json!({"a": 1, "b": "bad", "c": [1, 2]}), &compiled);
        let o = to_cel(&old, &compiled);
        let msgs: Vec<String> =
            evaluate_converted(&compiled, plan.binding(true), &v, Some(&o), true)
                .into_iter()
                .map(|f| f.message)
                .collect();
        assert_eq!(
            msgs,
            vec![
                "b was bad".to_string(),
                "rule evaluation error: No such key: missing".to_string(),
                "c under a".to_string(),
                "rule evaluation error: No such key: x__dash__y".to_string(),
                "rule evaluation error: No such key: o".to_string(),
                "rule evaluation error: No such key: o".to_string(),
                "a may not shrink".to_string(),
                "b fixed".to_string(),
            ]
        );
    }

    #[test]
    fn projected_conversion_is_the_projection_of_the_whole_conversion() {
        // What a node binds, converted straight from the JSON, equals the whole conversion cut
        // down by the plan: nested fields, presence tests, escaped and reserved names, map keys,
        // a resource's metadata, an embedded resource's defaulted type meta, absent fields.
        let schema = json!({"type": "object",
            "properties": {"a": {"type": "integer"}, "x-y": {"type": "string"},
                "true": {"type": "string"}, "a_b": {"type": "string"},
                "t": {"type": "string", "format": "date-time"},
                "m": {"type": "object", "additionalProperties": {"type": "object",
                    "properties": {"v": {"type": "string"}, "w": {"type": "string"}}}},
                "e": {"type": "object", "x-kubernetes-embedded-resource": true,
                    "x-kubernetes-preserve-unknown-fields": true},
                "o": {"type": "object", "properties": {"p": {"type": "integer"},
                    "q": {"type": "array", "items": {"type": "string"}}}}},
            "x-kubernetes-validations": [
                {"rule": "self.a > 0 && self.x__dash__y != '' && self.__true__ != '' && self.a__b != ''"},
                {"rule": "has(self.o.p) && self.o.q.size() > 0 && self.t > timestamp('2020-01-01T00:00:00Z')"},
                {"rule": "self.m.k.v == 'x' && has(self.m.l)"},
                {"rule": "self.metadata.name != '' && self.e.kind == '' && self.e.metadata.name == ''"},
                {"rule": "self.e.apiVersion == oldSelf.e.apiVersion && oldSelf.o.p == self.a"}]});
        let compiled = kube::core::cel::compile_schema(&schema);
        let plan = Plan::of(&compiled);
        assert!(
            matches!(plan.update.self_, Reads::Fields(_)),
            "{:?}",
            plan.update.self_
        );
        let objects = [
            json!({"metadata": {"name": "n", "labels": {"a": "b"}}, "a": 1, "x-y": "s",
                "true": "t", "a_b": "u", "t": "2021-01-01T00:00:00Z",
                "m": {"k": {"v": "x", "w": "y"}, "l": {"v": "z"}, "n": {}},
                "e": {"apiVersion": "v1", "kind": "K", "metadata": {"name": "e"}, "spec": {}},
                "o": {"p": 1, "q": ["a"]}}),
            json!({"a": 1, "m": {"k": "not an object"}, "e": {}, "o": {"q": []}, "t": "bad"}),
            json!({"metadata": {}, "e": {"spec": 1}}),
            json!({}),
            json!("not an object"),
        ];
        for obj in &objects {
            for reads in [
                &plan.create.self_,
                &plan.update.self_,
                &plan.update.old_self,
                &Reads::Whole,
                &Reads::Presence,
            ] {
                for resource_root in [true, false] {
                    let whole = to_cel_resource(obj, &compiled, resource_root);
                    let want = reads.project(&whole);
                    let got = project_to_cel(obj, &compiled, reads, resource_root);
                    assert_eq!(
                        format!("{got:?}").len(),
                        format!("{want:?}").len(),
                        "{obj} {reads:?}"
                    );
                    assert!(got == want, "{obj} {reads:?}: {got:?} != {want:?}");
                }
            }
        }
    }

    /// The reference the walk is measured against: every node with rules binds its whole value
    /// and whole old value (converted at that node), as kube-cel's validator does.
    fn reference_walk(
        node: &Node,
        value: &Value,
        old: Option<&Value>,
        path: &FieldPath,
        resource_root: bool,
        errs: &mut Vec<FieldError>,
    ) {
        if !node.has_rules || old.is_some_and(|o| json_eq(o, value)) {
            return;
        }
        if let Some(compiled) = &node.cel {
            let v = to_cel_resource(value, compiled, resource_root);
            let o = old.map(|o| to_cel_resource(o, compiled, resource_root));
            for f in evaluate_bound(compiled, Some(v), o, old.is_some()) {
                errs.push(to_field_error(node, path, value, &f));
            }
        }
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let (child, child_path) = match node.properties.get(k) {
                        Some(p) => (p, path.child(k)),
                        None => match &node.additional {
                            Additional::Schema(a) if !node.preserve_unknown => (&**a, path.key(k)),
                            _ => continue,
                        },
                    };
                    reference_walk(
                        child,
                        v,
                        old.and_then(|o| o.get(k)),
                        &child_path,
                        false,
                        errs,
                    );
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = node.items.as_deref() {
                    for (i, item) in items.iter().enumerate() {
                        let old_item = correlate_item(&node.list_type, item, old).map(|(_, o)| o);
                        reference_walk(item_schema, item, old_item, &path.index(i), false, errs);
                    }
                }
            }
            _ => {}
        }
    }

    #[test]
    fn the_job_crd_walk_equals_whole_bindings() {
        // Barge's Job CRD (rules at the root, on spec — transition rules among them —, on nested
        // objects, list items and strings): the walk's projected, per-node bindings give the same
        // errors, messages and order as binding every node's whole value, on creates, updates and
        // status-only updates.
        let crd: Value = serde_yaml::from_str(include_str!(
            "../../../../../config/crd/bases/batch.barge.dev_jobs.yaml"
        ))
        .expect("Job CRD");
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let root = Node::parse(schema, "").expect("Job schema compiles");
        let job = |name: &str, spec: Value| {
            json!({"apiVersion": "batch.barge.dev/v1alpha1", "kind": "Job",
                "metadata": {"name": name, "namespace": "default", "labels": {"a": "b"},
                    "managedFields": [{"manager": "m", "operation": "Update"}]},
                "spec": spec, "status": {"status": "SUBMITTED"}})
        };
        let good = json!({"jobQueue": "q", "jobDefinition": "d:1", "shareIdentifier": "teamA",
            "parameters": {"seconds": "0"},
            "containerOverrides": {"resourceRequirements": [
                {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]},
            "retryStrategy": {"attempts": 2, "evaluateOnExit": [
                {"action": "RETRY", "onExitCode": "1*", "onReason": "Out*"}]},
            "timeout": {"attemptDurationSeconds": 600},
            "dependsOn": [{"jobName": "other"}]});
        let mut objects = vec![
            job("good", good.clone()),
            job(
                "bad.name",
                json!({"jobQueue": "Q!", "jobDefinition": "d:0", "shareIdentifier": "a b",
                "dependsOn": [{"jobName": "bad.name"}, {"type": "N_TO_N"}, {}],
                "containerOverrides": {"vcpus": 2, "memory": 5, "resourceRequirements": [
                    {"type": "VCPU", "value": "0"}, {"type": "MEMORY", "value": "01"},
                    {"type": "GPU", "value": "x"}],
                    "environment": [{"name": "AWS_BATCH_X", "value": "1"}]},
                "nodeOverrides": {"numNodes": 2, "nodePropertyOverrides": [
                    {"targetNodes": "3:1"}, {"targetNodes": "0:5"}]},
                "terminate": {"arrayIndices": "1-3"},
                "retryStrategy": {"evaluateOnExit": [{"action": "EXIT", "onExitCode": ""}]}}),
            ),
            job(
                "arr",
                json!({"jobQueue": "q", "jobDefinition": "d", "arrayProperties": {"size": 3},
                "terminate": {"arrayIndices": "1,5"}, "dependsOn": [{"type": "SEQUENTIAL"}]}),
            ),
            job("empty", json!({})),
        ];
        let mut changed = job("good", good.clone());
        changed["spec"]["jobQueue"] = json!("other-q");
        changed["spec"]["containerOverrides"]["resourceRequirements"][0]["value"] = json!("2");
        changed["spec"]["terminate"] = json!({"arrayIndices": "1"});
        objects.push(changed);
        let mut status_only = job("good", good.clone());
        status_only["status"] = json!({"status": "RUNNABLE", "statusReason": "x"});
        objects.push(status_only);
        let mut dropped = job("good", good);
        dropped["spec"]
            .as_object_mut()
            .unwrap()
            .remove("parameters");
        objects.push(dropped);
        let olds: Vec<Option<&Value>> = std::iter::once(None)
            .chain(objects.iter().map(Some))
            .collect();
        let mut compared = 0;
        for obj in &objects {
            for old in &olds {
                let mut got = Vec::new();
                validate(&root, obj, *old, &FieldPath::root(), &mut got);
                let mut want = Vec::new();
                reference_walk(&root, obj, *old, &FieldPath::root(), true, &mut want);
                assert_eq!(format!("{got:?}"), format!("{want:?}"), "{obj} old {old:?}");
                compared += usize::from(!want.is_empty());
            }
        }
        // The objects do fail (the comparison is not of empty lists only).
        assert!(compared > 10, "{compared}");
    }

    #[test]
    fn properties_are_found_by_their_cel_names() {
        // The direct look-up of plain names finds what the scan over every escaped key finds.
        let o = json!({"true": 1, "__true__": 2, "a_b": 3, "a__b": 4, "x-y": 5,
            "x__dash__y": 6, "in": 7, "plain": 8, "x.y": 9, "a/b": 10});
        let o = o.as_object().unwrap();
        for name in [
            "true",
            "__true__",
            "____true____",
            "a_b",
            "a__b",
            "a____b",
            "x-y",
            "x__dash__y",
            "x____dash____y",
            "in",
            "__in__",
            "plain",
            "x__dot__y",
            "a__slash__b",
            "missing",
        ] {
            let scan = o.iter().rev().find(|(k, _)| cel_name_is(k, name));
            assert_eq!(property_named(o, name, false), scan, "{name}");
            assert_eq!(
                property_named(o, name, true),
                o.get_key_value(name),
                "{name}"
            );
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_nanos("1h30m"), Some(5_400_000_000_000));
        assert_eq!(go_duration_nanos("-1.5s"), Some(-1_500_000_000));
        assert_eq!(go_duration_nanos("250ms"), Some(250_000_000));
        assert_eq!(go_duration_nanos("0"), Some(0));
        assert_eq!(go_duration_nanos("3 days"), None);
        assert_eq!(go_duration_nanos(""), None);
    }

    #[test]
    fn field_paths_parse_names_keys_and_indices() {
        let segs = parse_segments(".spec.labels['a.b'][2]");
        let rendered: Vec<String> = segs
            .into_iter()
            .map(|s| match s {
                Segment::Name(n) => format!("N:{n}"),
                Segment::Index(i) => format!("I:{i}"),
            })
            .collect();
        assert_eq!(rendered, vec!["N:spec", "N:labels", "N:a.b", "I:2"]);
    }
}
