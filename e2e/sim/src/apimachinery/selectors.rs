//! Label and field selectors, parsed once into matchers.
//!
//! [`parse_label_selector`] follows `k8s.io/apimachinery/pkg/labels.Parse` (same lexer, grammar,
//! key/value validation and error texts, e.g. `unable to parse requirement: ...` or
//! `found ',', expected: identifier after ','`); [`parse_field_selector`] follows
//! `fields.ParseSelector` (`key=value`, `key==value`, `key!=value`, `\`-escapes). A server
//! answers a parse error with 400 BadRequest carrying the returned message.
//! [`supported_field_labels`] lists the field labels kube-apiserver accepts per built-in kind
//! (anything else is refused with `field label not supported: <field>`).

use super::validation::{validate_label_key, validate_label_value, FieldError};
use crate::apimachinery::gofmt;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A label selector operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelOp {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

impl LabelOp {
    fn name(self) -> &'static str {
        match self {
            LabelOp::Equals => "=",
            LabelOp::DoubleEquals => "==",
            LabelOp::NotEquals => "!=",
            LabelOp::In => "in",
            LabelOp::NotIn => "notin",
            LabelOp::Exists => "exists",
            LabelOp::DoesNotExist => "!",
            LabelOp::GreaterThan => "gt",
            LabelOp::LessThan => "lt",
        }
    }
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: LabelOp,
    pub values: Vec<String>,
}

impl Requirement {
    /// `labels.NewRequirement`: validates the key, the value count for the operator and each value.
    pub fn new(key: &str, op: LabelOp, mut values: Vec<String>) -> Result<Requirement, String> {
        let mut errs = Vec::new();
        if let Err(m) = validate_label_key(key) {
            errs.push(FieldError::invalid("key", json!(key), m));
        }
        let values_json = json!(values);
        match op {
            LabelOp::In | LabelOp::NotIn if values.is_empty() => errs.push(FieldError::invalid(
                "values",
                values_json,
                "for 'in', 'notin' operators, values set can't be empty",
            )),
            LabelOp::Equals | LabelOp::DoubleEquals | LabelOp::NotEquals if values.len() != 1 => {
                errs.push(FieldError::invalid(
                    "values",
                    values_json,
                    "exact-match compatibility requires one single value",
                ))
            }
            LabelOp::Exists | LabelOp::DoesNotExist if !values.is_empty() => {
                errs.push(FieldError::invalid(
                    "values",
                    values_json,
                    "values set must be empty for exists and does not exist",
                ))
            }
            LabelOp::GreaterThan | LabelOp::LessThan => {
                if values.len() != 1 {
                    errs.push(FieldError::invalid(
                        "values",
                        values_json,
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(FieldError::invalid(
                            format!("values[{i}]"),
                            json!(v),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            if let Err(m) = validate_label_value(v) {
                errs.push(FieldError::invalid(
                    format!("values[{i}][{key}]"),
                    json!(v),
                    m,
                ));
            }
        }
        if !errs.is_empty() {
            return Err(super::validation::aggregate_message(&errs));
        }
        values.sort();
        values.dedup();
        Ok(Requirement {
            key: key.to_string(),
            op,
            values,
        })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.op {
            LabelOp::In | LabelOp::Equals | LabelOp::DoubleEquals => {
                value.is_some_and(|v| self.values.contains(v))
            }
            LabelOp::NotIn | LabelOp::NotEquals => value.is_none_or(|v| !self.values.contains(v)),
            LabelOp::Exists => value.is_some(),
            LabelOp::DoesNotExist => value.is_none(),
            LabelOp::GreaterThan | LabelOp::LessThan => {
                let (Some(Ok(have)), Some(Ok(want))) = (
                    value.map(|v| v.parse::<i64>()),
                    self.values.first().map(|v| v.parse::<i64>()),
                ) else {
                    return false;
                };
                if self.op == LabelOp::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let values = self.values.join(",");
        match self.op {
            LabelOp::Exists => write!(f, "{}", self.key),
            LabelOp::DoesNotExist => write!(f, "!{}", self.key),
            LabelOp::In => write!(f, "{} in ({values})", self.key),
            LabelOp::NotIn => write!(f, "{} notin ({values})", self.key),
            LabelOp::GreaterThan => write!(f, "{}>{values}", self.key),
            LabelOp::LessThan => write!(f, "{}<{values}", self.key),
            op => write!(f, "{}{}{values}", self.key, op.name()),
        }
    }
}

/// A parsed label selector: a conjunction of requirements (sorted by key, as Go sorts them).
/// The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
    /// A selector that matches nothing (`labels.Nothing()`, e.g. from a null `metav1.LabelSelector`).
    pub nothing: bool,
}

impl LabelSelector {
    /// The selector matching every object.
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty() && !self.nothing
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Matches the `metadata.labels` of an object.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(&labels_of(obj))
    }

    /// `metav1.LabelSelectorAsSelector` of a `{matchLabels, matchExpressions}` object; `null`
    /// selects nothing and `{}` everything.
    pub fn from_label_selector(sel: &Value) -> Result<LabelSelector, String> {
        let obj = match sel {
            Value::Null => {
                return Ok(LabelSelector {
                    requirements: Vec::new(),
                    nothing: true,
                })
            }
            Value::Object(o) => o,
            _ => return Err("a label selector must be an object".to_string()),
        };
        let mut reqs = Vec::new();
        if let Some(ml) = obj.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in ml {
                let v = v
                    .as_str()
                    .ok_or_else(|| format!("matchLabels[{k}] must be a string"))?;
                reqs.push(Requirement::new(k, LabelOp::Equals, vec![v.to_string()])?);
            }
        }
        if let Some(exprs) = obj.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|vs| {
                        vs.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let op = match e
                    .get("operator")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                {
                    "In" => LabelOp::In,
                    "NotIn" => LabelOp::NotIn,
                    "Exists" => LabelOp::Exists,
                    "DoesNotExist" => LabelOp::DoesNotExist,
                    other => {
                        return Err(format!(
                            "{} is not a valid label selector operator",
                            gofmt::quote(other)
                        ))
                    }
                };
                reqs.push(Requirement::new(key, op, values)?);
            }
        }
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements: reqs,
            nothing: false,
        })
    }
}

impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(ToString::to_string).collect();
        write!(f, "{}", parts.join(","))
    }
}

/// `metadata.labels` of an object as a map (non-string values are ignored).
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Error,
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "in" => Tok::In,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn lex(s: &str) -> Vec<(Tok, String)> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < b.len() && is_ws(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() {
            out.push((Tok::End, String::new()));
            return out;
        }
        if is_special(b[pos]) {
            let start = pos;
            let mut last: Option<(Tok, usize)> = None;
            while pos < b.len() && is_special(b[pos]) {
                let candidate = &s[start..=pos];
                if let Some(t) = keyword(candidate) {
                    last = Some((t, pos + 1));
                } else if last.is_some() {
                    break;
                }
                pos += 1;
            }
            match last {
                Some((t, end)) => {
                    out.push((t, s[start..end].to_string()));
                    pos = end;
                }
                None => {
                    out.push((
                        Tok::Error,
                        format!("error expected: keyword found '{}'", &s[start..pos]),
                    ));
                }
            }
        } else {
            let start = pos;
            while pos < b.len() && !is_special(b[pos]) && !is_ws(b[pos]) {
                pos += 1;
            }
            let lit = &s[start..pos];
            out.push((keyword(lit).unwrap_or(Tok::Identifier), lit.to_string()));
        }
    }
}

struct Parser {
    items: Vec<(Tok, String)>,
    pos: usize,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    /// In the values context `in`/`notin` are identifiers.
    fn lookahead(&self, values: bool) -> (Tok, String) {
        let (t, l) = self.items[self.pos.min(self.items.len() - 1)].clone();
        (
            if values && matches!(t, Tok::In | Tok::NotIn) {
                Tok::Identifier
            } else {
                t
            },
            l,
        )
    }

    fn consume(&mut self, values: bool) -> (Tok, String) {
        let r = self.lookahead(values);
        if self.pos < self.items.len() - 1 {
            self.pos += 1;
        }
        r
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            let (t, lit) = self.lookahead(true);
            match t {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.consume(true);
                    match t {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(true);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(reqs),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut op = None;
        let (mut t, mut lit) = self.consume(true);
        if t == Tok::DoesNotExist {
            op = Some(LabelOp::DoesNotExist);
            (t, lit) = self.consume(true);
        }
        if t != Tok::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        if let Err(m) = validate_label_key(&lit) {
            return Err(FieldError::invalid("", json!(lit), m).to_string());
        }
        let key = lit;
        let (next, _) = self.lookahead(true);
        if matches!(next, Tok::End | Tok::Comma) {
            return Requirement::new(&key, op.unwrap_or(LabelOp::Exists), Vec::new());
        }
        if op == Some(LabelOp::DoesNotExist) {
            return Requirement::new(&key, LabelOp::DoesNotExist, Vec::new());
        }
        let (t, lit) = self.consume(false);
        let op = match t {
            Tok::In => LabelOp::In,
            Tok::Equals => LabelOp::Equals,
            Tok::DoubleEquals => LabelOp::DoubleEquals,
            Tok::GreaterThan => LabelOp::GreaterThan,
            Tok::LessThan => LabelOp::LessThan,
            Tok::NotIn => LabelOp::NotIn,
            Tok::NotEquals => LabelOp::NotEquals,
            _ => return Err(format!("found '{lit}', expected: {BINARY_OPERATORS}")),
        };
        let values = match op {
            LabelOp::In | LabelOp::NotIn => self.set_values()?,
            _ => self.exact_value()?,
        };
        Requirement::new(&key, op, values)
    }

    fn set_values(&mut self) -> Result<Vec<String>, String> {
        let (t, lit) = self.consume(true);
        if t != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (t, lit) = self.lookahead(true);
        match t {
            Tok::Identifier | Tok::Comma => {
                let values = self.identifiers()?;
                let (t, _) = self.consume(true);
                if t != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(values)
            }
            Tok::ClosedPar => {
                self.consume(true);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = Vec::new();
        loop {
            let (t, lit) = self.consume(true);
            match t {
                Tok::Identifier => {
                    out.push(lit);
                    let (t2, l2) = self.lookahead(true);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(out),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if out.is_empty() {
                        out.push(String::new());
                    }
                    let (t2, _) = self.lookahead(true);
                    if t2 == Tok::ClosedPar {
                        out.push(String::new());
                        return Ok(out);
                    }
                    if t2 == Tok::Comma {
                        out.push(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (t, _) = self.lookahead(true);
        if matches!(t, Tok::End | Tok::Comma) {
            return Ok(vec![String::new()]);
        }
        let (t, lit) = self.consume(true);
        if t == Tok::Identifier {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

/// Parses a label selector string (`a=b,c!=d,e in (x,y),!f`).
pub fn parse_label_selector(s: &str) -> Result<LabelSelector, String> {
    let items = lex(s);
    if let Some((_, msg)) = items.iter().find(|(t, _)| *t == Tok::Error) {
        // The Go parser reports the lexer's error token as what it found.
        let mut p = Parser {
            items: items.clone(),
            pos: 0,
        };
        return match p.parse() {
            Ok(_) => Err(msg.clone()),
            Err(e) => Err(e),
        };
    }
    let mut p = Parser { items, pos: 0 };
    let mut reqs = p.parse()?;
    reqs.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(LabelSelector {
        requirements: reqs,
        nothing: false,
    })
}

/// A field selector term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: String,
    pub value: String,
    /// `!=` rather than `=`/`==`.
    pub negated: bool,
}

/// A parsed field selector: a conjunction of terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub terms: Vec<FieldTerm>,
}

impl FieldSelector {
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Matches the object's fields: dotted paths into the object (`metadata.name`,
    /// `spec.nodeName`, `involvedObject.uid`); a missing field reads as `""`, booleans and
    /// numbers as their text.
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms
            .iter()
            .all(|t| (field_value(obj, &t.field) == t.value) != t.negated)
    }

    /// Refuses fields that are not in `supported`, as the API server does
    /// (`field label not supported: spec.foo`).
    pub fn check_supported(&self, supported: &[&str]) -> Result<(), String> {
        match self
            .terms
            .iter()
            .find(|t| !supported.contains(&t.field.as_str()))
        {
            Some(t) => Err(format!("field label not supported: {}", t.field)),
            None => Ok(()),
        }
    }

    /// The value an `=`/`==` term requires of `field`, if any.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && !t.negated)
            .map(|t| t.value.as_str())
    }
}

impl std::fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|t| {
                format!(
                    "{}{}{}",
                    t.field,
                    if t.negated { "!=" } else { "=" },
                    escape_value(&t.value)
                )
            })
            .collect();
        write!(f, "{}", parts.join(","))
    }
}

/// `fields.EscapeValue`.
pub fn escape_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

/// What the API server's selectable-field functions report for unset fields that are not
/// strings (Go zero values: `strconv.FormatBool(false)`, `strconv.Itoa(0)`).
const FIELD_ZERO_VALUES: &[(&str, &str)] = &[
    ("spec.unschedulable", "false"),
    ("spec.hostNetwork", "false"),
    ("status.replicas", "0"),
    ("status.successful", "0"),
];

/// The text of a field of `obj` addressed by a dotted path, as field selectors compare it.
pub fn field_value(obj: &Value, path: &str) -> String {
    let zero = || {
        FIELD_ZERO_VALUES
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, z)| z.to_string())
            .unwrap_or_default()
    };
    let mut cur = obj;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return zero(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => gofmt::number(n),
        Value::Null => zero(),
        other => other.to_string(),
    }
}

/// Splits on unescaped commas (`fields.splitTerms`).
fn split_terms(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// `fields.UnescapeValue`.
fn unescape_value(s: &str) -> Result<String, String> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('\\' | ',' | '=')) => out.push(n),
                Some(n) => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{n}"
                    ))
                }
                None => {
                    return Err("invalid field selector: invalid escape sequence: \\".to_string())
                }
            },
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ))
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Parses a field selector string (`metadata.name=x,status.phase!=Running`).
pub fn parse_field_selector(s: &str) -> Result<FieldSelector, String> {
    let mut parts = split_terms(s);
    parts.sort();
    let mut terms = Vec::new();
    for part in parts.iter().filter(|p| !p.is_empty()) {
        let (field, negated, rhs) = if let Some(i) = part.find("!=") {
            (&part[..i], true, &part[i + 2..])
        } else if let Some(i) = part.find("==") {
            (&part[..i], false, &part[i + 2..])
        } else if let Some(i) = part.find('=') {
            (&part[..i], false, &part[i + 1..])
        } else {
            return Err(format!(
                "invalid selector: '{s}'; can't understand '{part}'"
            ));
        };
        let value = unescape_value(rhs)?;
        terms.push(FieldTerm {
            field: field.trim().to_string(),
            value,
            negated,
        });
    }
    Ok(FieldSelector { terms })
}

/// The field labels kube-apiserver supports in field selectors for a built-in kind (besides
/// `metadata.name` and `metadata.namespace`, which every kind supports). `None` for kinds it
/// does not know; custom resources support only the metadata fields plus their `selectableFields`.
pub fn supported_field_labels(group: &str, kind: &str) -> Option<&'static [&'static str]> {
    const META: &[&str] = &["metadata.name", "metadata.namespace"];
    Some(match (group, kind) {
        ("", "Pod") => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        ("", "Node") => &["metadata.name", "spec.unschedulable"],
        ("", "Namespace") => &["metadata.name", "status.phase"],
        ("", "Secret") => &["metadata.name", "metadata.namespace", "type"],
        ("", "Event") | ("events.k8s.io", "Event") => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "ReplicationController") => {
            &["metadata.name", "metadata.namespace", "status.replicas"]
        }
        ("apps", "ReplicaSet") => &["metadata.name", "metadata.namespace", "status.replicas"],
        ("batch", "Job") => &["metadata.name", "metadata.namespace", "status.successful"],
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            &["metadata.name", "spec.signerName"]
        }
        ("", "ConfigMap")
        | ("", "Service")
        | ("", "ServiceAccount")
        | ("", "Endpoints")
        | ("", "PersistentVolumeClaim")
        | ("", "PersistentVolume")
        | ("apps", "Deployment")
        | ("apps", "StatefulSet")
        | ("apps", "DaemonSet")
        | ("apps", "ControllerRevision")
        | ("batch", "CronJob")
        | ("coordination.k8s.io", "Lease")
        | ("apiextensions.k8s.io", "CustomResourceDefinition")
        | ("rbac.authorization.k8s.io", _)
        | ("policy", "PodDisruptionBudget")
        | ("scheduling.k8s.io", "PriorityClass")
        | ("discovery.k8s.io", "EndpointSlice") => META,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_and_inequality() {
        let s = parse_label_selector("app=web,tier!=db").unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe")])));
        assert!(
            s.matches(&labels(&[("app", "web")])),
            "!= matches a missing key"
        );
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "db")])));
        assert!(!s.matches(&labels(&[("app", "api")])));
        assert!(parse_label_selector("app==web")
            .unwrap()
            .matches(&labels(&[("app", "web")])));
    }

    #[test]
    fn set_based_and_existence() {
        let s = parse_label_selector(
            "env in (prod, staging), tier notin (db), batch.barge.dev/job-name, !legacy",
        )
        .unwrap();
        let ok = labels(&[("env", "prod"), ("batch.barge.dev/job-name", "j")]);
        assert!(s.matches(&ok));
        assert!(!s.matches(&labels(&[
            ("env", "dev"),
            ("batch.barge.dev/job-name", "j")
        ])));
        assert!(
            !s.matches(&labels(&[("env", "prod")])),
            "exists requires the key"
        );
        let mut with_legacy = ok.clone();
        with_legacy.insert("legacy".into(), "true".into());
        assert!(!s.matches(&with_legacy));
        assert_eq!(s.requirements.len(), 4);
        assert_eq!(s.requirements[0].key, "batch.barge.dev/job-name");
    }

    #[test]
    fn requirements_are_sorted_and_render_like_go() {
        let s = parse_label_selector("z=1,a in (y,x),!m").unwrap();
        assert_eq!(s.to_string(), "a in (x,y),!m,z=1");
        let keys: Vec<&str> = s.requirements.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, vec!["a", "m", "z"]);
    }

    #[test]
    fn numeric_comparisons() {
        let s = parse_label_selector("batch.barge.dev/attempt>1").unwrap();
        assert!(s.matches(&labels(&[("batch.barge.dev/attempt", "2")])));
        assert!(!s.matches(&labels(&[("batch.barge.dev/attempt", "1")])));
        assert!(!s.matches(&labels(&[("batch.barge.dev/attempt", "x")])));
        assert!(parse_label_selector("n<3")
            .unwrap()
            .matches(&labels(&[("n", "2")])));
        assert_eq!(
            parse_label_selector("n>x").unwrap_err(),
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
    }

    #[test]
    fn empty_values_and_empty_selector() {
        assert!(parse_label_selector("").unwrap().is_empty());
        assert!(parse_label_selector("  ").unwrap().matches(&labels(&[])));
        let s = parse_label_selector("a=").unwrap();
        assert!(s.matches(&labels(&[("a", "")])));
        let s = parse_label_selector("a in (x,)").unwrap();
        assert_eq!(
            s.requirements[0].values,
            vec!["".to_string(), "x".to_string()]
        );
        // `in` is an identifier in a value position.
        let s = parse_label_selector("a in (in,notin)").unwrap();
        assert_eq!(
            s.requirements[0].values,
            vec!["in".to_string(), "notin".to_string()]
        );
    }

    #[test]
    fn parse_errors_match_the_api_server() {
        assert_eq!(
            parse_label_selector("a=b,").unwrap_err(),
            "found '', expected: identifier after ','"
        );
        assert_eq!(
            parse_label_selector("a=b c").unwrap_err(),
            "found 'c', expected: ',' or 'end of string'"
        );
        assert_eq!(
            parse_label_selector(",a").unwrap_err(),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            parse_label_selector("a in b").unwrap_err(),
            "unable to parse requirement: found 'b' expected: '('"
        );
        assert_eq!(
            parse_label_selector("a (b)").unwrap_err(),
            "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            parse_label_selector("a in (b").unwrap_err(),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        let err = parse_label_selector("Bad Key=1").unwrap_err();
        assert_eq!(
            err,
            "unable to parse requirement: found 'Key', expected: in, notin, =, ==, !=, gt, lt"
        );
        let err = parse_label_selector("-bad=1").unwrap_err();
        assert!(err.starts_with("unable to parse requirement: <nil>: Invalid value: \"-bad\": name part must consist of"), "{err}");
        let err = parse_label_selector("a=-x").unwrap_err();
        assert!(
            err.starts_with("unable to parse requirement: values[0][a]: Invalid value: \"-x\": a valid label must be an empty string"),
            "{err}"
        );
    }

    #[test]
    fn label_selector_objects() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]});
        let s = LabelSelector::from_label_selector(&sel).unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "db")])));
        assert!(LabelSelector::from_label_selector(&json!({}))
            .unwrap()
            .matches(&labels(&[])));
        assert!(!LabelSelector::from_label_selector(&Value::Null)
            .unwrap()
            .matches(&labels(&[])));
        assert!(LabelSelector::from_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "Near"}]})
        )
        .is_err());
        let pod = json!({"metadata": {"labels": {"app": "web", "tier": "be"}}});
        assert!(s.matches_object(&pod));
    }

    #[test]
    fn field_selectors_match_dotted_paths() {
        let pod = json!({
            "metadata": {"name": "p1", "namespace": "ns"},
            "spec": {"nodeName": "n1", "hostNetwork": false},
            "status": {"phase": "Running"}
        });
        assert!(
            parse_field_selector("metadata.name=p1,metadata.namespace==ns")
                .unwrap()
                .matches(&pod)
        );
        assert!(parse_field_selector("spec.nodeName=n1")
            .unwrap()
            .matches(&pod));
        assert!(!parse_field_selector("status.phase!=Running")
            .unwrap()
            .matches(&pod));
        assert!(parse_field_selector("status.phase!=Succeeded")
            .unwrap()
            .matches(&pod));
        assert!(parse_field_selector("spec.hostNetwork=false")
            .unwrap()
            .matches(&pod));
        let unscheduled = json!({"metadata": {"name": "p2"}, "spec": {}});
        assert!(
            parse_field_selector("spec.nodeName=")
                .unwrap()
                .matches(&unscheduled),
            "missing reads as empty"
        );
        let node = json!({"metadata": {"name": "n1"}, "spec": {}});
        assert!(
            parse_field_selector("spec.unschedulable=false")
                .unwrap()
                .matches(&node),
            "unset booleans read as false"
        );
        assert!(!parse_field_selector("spec.unschedulable=true")
            .unwrap()
            .matches(&node));
        let event = json!({"involvedObject": {"kind": "Job", "name": "j", "uid": "u-1"}, "reason": "Started"});
        assert!(
            parse_field_selector("involvedObject.uid=u-1,involvedObject.kind=Job")
                .unwrap()
                .matches(&event)
        );
        assert!(parse_field_selector("").unwrap().matches(&event));
    }

    #[test]
    fn field_selector_escapes_and_errors() {
        let s = parse_field_selector(r"metadata.name=a\,b\=c\\d").unwrap();
        assert_eq!(s.terms[0].value, r"a,b=c\d");
        assert_eq!(s.to_string(), r"metadata.name=a\,b\=c\\d");
        assert_eq!(
            parse_field_selector("metadata.name").unwrap_err(),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            parse_field_selector(r"a=b\x").unwrap_err(),
            "invalid field selector: invalid escape sequence: \\x"
        );
        assert_eq!(
            parse_field_selector("a=b=c").unwrap_err(),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(s.requires_exact_match("metadata.name"), Some(r"a,b=c\d"));
    }

    #[test]
    fn supported_field_labels_per_kind() {
        let pods = supported_field_labels("", "Pod").unwrap();
        let s = parse_field_selector("spec.nodeName=n1,status.phase=Running").unwrap();
        assert!(s.check_supported(pods).is_ok());
        let bad = parse_field_selector("spec.containers=x").unwrap();
        assert_eq!(
            bad.check_supported(pods).unwrap_err(),
            "field label not supported: spec.containers"
        );
        assert!(supported_field_labels("", "Event")
            .unwrap()
            .contains(&"involvedObject.uid"));
        assert!(supported_field_labels("batch.barge.dev", "Job").is_none());
    }
}
