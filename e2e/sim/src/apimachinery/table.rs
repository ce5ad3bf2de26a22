//! `meta.k8s.io/v1` `Table`s, as kube-apiserver answers `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`
//! (what `kubectl get` asks for).
//!
//! Custom resources use their CRD's `additionalPrinterColumns` (apiextensions' table convertor:
//! a `Name` column, then one column per definition; `Age` alone when the CRD defines none), with
//! JSONPath cells typed as the column says and `date` cells rendered as ages. Built-in kinds use
//! kube-apiserver's printers (Pods, Nodes, Namespaces, Events, Services, ConfigMaps, Secrets,
//! ServiceAccounts, Deployments, Leases, ControllerRevisions), printed wide (`priority: 1`
//! columns included; kubectl hides them without `-o wide`); other kinds get the default
//! convertor's `Name` and `Created At`. Each row carries the object as `PartialObjectMetadata`
//! (default), whole (`includeObject=Object`) or not at all (`None`). The server sets the table's
//! `metadata.resourceVersion`.

use crate::apimachinery::gofmt;
use jiff::Timestamp;
use serde_json::{json, Map, Value};

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATION_TIMESTAMP_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// What each row's `object` holds (`includeObject` table option).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter (empty means `Metadata`).
    pub fn parse(s: &str) -> Result<IncludeObject, String> {
        match s {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "None" => Ok(IncludeObject::None),
            "Object" => Ok(IncludeObject::Object),
            other => Err(format!(
                "unrecognized includeObject value: {}",
                gofmt::quote(other)
            )),
        }
    }
}

/// One `additionalPrinterColumns` entry of a CRD version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrinterColumn {
    pub name: String,
    /// `integer`, `number`, `string`, `boolean` or `date`.
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

impl PrinterColumn {
    /// Reads a CRD `additionalPrinterColumns` entry (`jsonPath`, `type`, ...).
    pub fn from_crd(v: &Value) -> Option<PrinterColumn> {
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let name = v.get("name")?.as_str()?.to_string();
        let json_path = v
            .get("jsonPath")
            .or_else(|| v.get("JSONPath"))?
            .as_str()?
            .to_string();
        Some(PrinterColumn {
            name,
            type_: s("type"),
            format: s("format"),
            description: s("description"),
            priority: v.get("priority").and_then(Value::as_i64).unwrap_or(0),
            json_path,
        })
    }

    /// The columns of a CRD version (`spec.versions[]`), or the default `Age` column when it
    /// defines none (`serveDefaultColumnsIfEmpty`).
    pub fn for_crd_version(version: &Value) -> Vec<PrinterColumn> {
        let cols: Vec<PrinterColumn> = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cs| cs.iter().filter_map(PrinterColumn::from_crd).collect())
            .unwrap_or_default();
        if cols.is_empty() {
            default_crd_columns()
        } else {
            cols
        }
    }
}

fn default_crd_columns() -> Vec<PrinterColumn> {
    vec![PrinterColumn {
        name: "Age".into(),
        type_: "date".into(),
        format: String::new(),
        description: CREATION_TIMESTAMP_DESCRIPTION.into(),
        priority: 0,
        json_path: ".metadata.creationTimestamp".into(),
    }]
}

fn column(name: &str, type_: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

fn name_column() -> Value {
    column("Name", "string", "name", NAME_DESCRIPTION, 0)
}

fn age_column() -> Value {
    column("Age", "string", "", CREATION_TIMESTAMP_DESCRIPTION, 0)
}

fn row_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    }
}

fn table(columns: Vec<Value>, rows: Vec<Value>) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn row(cells: Vec<Value>, obj: &Value, include: IncludeObject) -> Value {
    json!({"cells": cells, "object": row_object(obj, include)})
}

/// `duration.HumanDuration`: `45s`, `5m12s`, `3h`, `4d2h`, `2y`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// `translateTimestampSince`: the age of an RFC 3339 timestamp, `<unknown>` when unset.
fn age(ts: Option<&Value>, now: Timestamp) -> String {
    match ts.and_then(Value::as_str).filter(|s| !s.is_empty()) {
        None => "<unknown>".to_string(),
        Some(s) => match s.parse::<Timestamp>() {
            Ok(t) => human_duration(now.as_second() - t.as_second()),
            Err(_) => "<invalid>".to_string(),
        },
    }
}

fn creation_age(obj: &Value, now: Timestamp) -> String {
    age(obj.pointer("/metadata/creationTimestamp"), now)
}

fn name_of(obj: &Value) -> Value {
    obj.pointer("/metadata/name")
        .cloned()
        .unwrap_or_else(|| json!(""))
}

fn str_at<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s.to_string()
    }
}

// ---- custom resources ---------------------------------------------------------------------------

/// The table of custom resources with the CRD version's printer columns (empty: `Age` only).
pub fn crd_table(
    items: &[&Value],
    columns: &[PrinterColumn],
    now: Timestamp,
    include_object: IncludeObject,
) -> Value {
    let defaults;
    let columns = if columns.is_empty() {
        defaults = default_crd_columns();
        &defaults[..]
    } else {
        columns
    };
    let mut defs = vec![name_column()];
    for c in columns {
        let description = if c.description.is_empty() {
            format!(
                "Custom resource definition column (in JSONPath format): {}",
                c.json_path
            )
        } else {
            c.description.clone()
        };
        defs.push(column(
            &c.name,
            &c.type_,
            &c.format,
            &description,
            c.priority,
        ));
    }
    let rows = items
        .iter()
        .map(|obj| {
            let mut cells = vec![name_of(obj)];
            for c in columns {
                let found = jsonpath::first(obj, &c.json_path);
                cells.push(match found {
                    None => Value::Null,
                    Some(v) if c.type_ == "string" => Value::String(match v {
                        Value::String(s) => s.clone(),
                        Value::Null => "null".to_string(),
                        other => gofmt::plain_v(other),
                    }),
                    Some(v) => cell_for_json_value(&c.type_, v, now),
                });
            }
            row(cells, obj, include_object)
        })
        .collect();
    table(defs, rows)
}

/// `cellForJSONValue` of the apiextensions table convertor.
fn cell_for_json_value(type_: &str, v: &Value, now: Timestamp) -> Value {
    match (type_, v) {
        (_, Value::Null) => Value::Null,
        ("integer", Value::Number(n)) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_f64().map(|f| json!(f as i64)))
            .unwrap_or(Value::Null),
        ("number", Value::Number(n)) => n.as_f64().map(Value::from).unwrap_or(Value::Null),
        ("boolean", Value::Bool(b)) => json!(b),
        ("string", Value::String(s)) => json!(s),
        ("date", Value::String(s)) => match s.parse::<Timestamp>() {
            Ok(t) => json!(human_duration(now.as_second() - t.as_second())),
            Err(_) => json!("<invalid>"),
        },
        _ => Value::Null,
    }
}

/// The subset of kubectl/apiserver JSONPath printer columns use: `.a.b`, `['a.b']`, `[0]`, `[*]`
/// and filters `[?(@.type=="Ready")]` (`==`, `!=`, bare existence).
pub mod jsonpath {
    use serde_json::Value;

    #[derive(Debug, PartialEq)]
    enum Seg {
        Field(String),
        Index(i64),
        All,
        Filter {
            path: Vec<String>,
            op: Option<(bool, Value)>,
        },
    }

    fn parse(path: &str) -> Option<Vec<Seg>> {
        let p = path.trim();
        let p = p
            .strip_prefix('{')
            .and_then(|x| x.strip_suffix('}'))
            .unwrap_or(p);
        let p = p.strip_prefix('$').unwrap_or(p);
        let chars: Vec<char> = p.chars().collect();
        let mut segs = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    let start = i;
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        i += 1;
                    }
                    let name: String = chars[start..i].iter().collect();
                    if !name.is_empty() {
                        segs.push(Seg::Field(name));
                    }
                }
                '[' => {
                    let mut depth = 0;
                    let start = i + 1;
                    let mut end = None;
                    let mut quote: Option<char> = None;
                    for (j, c) in chars.iter().enumerate().skip(i) {
                        match (quote, *c) {
                            (Some(q), c) if c == q => quote = None,
                            (Some(_), _) => {}
                            (None, '\'' | '"') => quote = Some(*c),
                            (None, '[') => depth += 1,
                            (None, ']') => {
                                depth -= 1;
                                if depth == 0 {
                                    end = Some(j);
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    let end = end?;
                    let inner: String = chars[start..end].iter().collect();
                    segs.push(parse_bracket(inner.trim())?);
                    i = end + 1;
                }
                _ => {
                    let start = i;
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        i += 1;
                    }
                    segs.push(Seg::Field(chars[start..i].iter().collect()));
                }
            }
        }
        Some(segs)
    }

    fn unquote(s: &str) -> Option<String> {
        let s = s.trim();
        if s.len() >= 2
            && ((s.starts_with('\'') && s.ends_with('\''))
                || (s.starts_with('"') && s.ends_with('"')))
        {
            Some(s[1..s.len() - 1].to_string())
        } else {
            None
        }
    }

    fn parse_bracket(inner: &str) -> Option<Seg> {
        if inner == "*" {
            return Some(Seg::All);
        }
        if let Some(name) = unquote(inner) {
            return Some(Seg::Field(name));
        }
        if let Ok(n) = inner.parse::<i64>() {
            return Some(Seg::Index(n));
        }
        let expr = inner
            .strip_prefix('?')?
            .trim()
            .strip_prefix('(')?
            .strip_suffix(')')?
            .trim();
        let (lhs, op) = if let Some((l, r)) = expr.split_once("==") {
            (l, Some((true, literal(r)?)))
        } else if let Some((l, r)) = expr.split_once("!=") {
            (l, Some((false, literal(r)?)))
        } else {
            (expr, None)
        };
        let lhs = lhs.trim().strip_prefix('@')?;
        let path = lhs
            .split('.')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Some(Seg::Filter { path, op })
    }

    fn literal(s: &str) -> Option<Value> {
        let s = s.trim();
        if let Some(q) = unquote(s) {
            return Some(Value::String(q));
        }
        serde_json::from_str(s).ok()
    }

    fn apply<'a>(segs: &[Seg], v: &'a Value, out: &mut Vec<&'a Value>) {
        let Some((first, rest)) = segs.split_first() else {
            out.push(v);
            return;
        };
        match first {
            Seg::Field(name) => {
                if let Some(c) = v.get(name.as_str()) {
                    apply(rest, c, out);
                }
            }
            Seg::Index(n) => {
                if let Some(items) = v.as_array() {
                    let idx = if *n < 0 { items.len() as i64 + n } else { *n };
                    if let Some(c) = usize::try_from(idx).ok().and_then(|i| items.get(i)) {
                        apply(rest, c, out);
                    }
                }
            }
            Seg::All => match v {
                Value::Array(items) => items.iter().for_each(|c| apply(rest, c, out)),
                Value::Object(m) => m.values().for_each(|c| apply(rest, c, out)),
                _ => {}
            },
            Seg::Filter { path, op } => {
                if let Some(items) = v.as_array() {
                    for item in items {
                        let mut cur = Some(item);
                        for p in path {
                            cur = cur.and_then(|c| c.get(p.as_str()));
                        }
                        let keep = match (cur, op) {
                            (None, _) => false,
                            (Some(_), None) => true,
                            (Some(x), Some((eq, lit))) => {
                                crate::apimachinery::structural_eq(x, lit) == *eq
                            }
                        };
                        if keep {
                            apply(rest, item, out);
                        }
                    }
                }
            }
        }
    }

    /// All values the path selects (missing keys select nothing).
    pub fn find<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
        let mut out = Vec::new();
        if let Some(segs) = parse(path) {
            apply(&segs, obj, &mut out);
        }
        out
    }

    /// The first value the path selects.
    pub fn first<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
        find(obj, path).into_iter().next()
    }
}

// ---- built-in kinds ---------------------------------------------------------------------------

/// Builds the cells of one row.
type CellsFn = fn(&Value, Timestamp) -> Vec<Value>;

/// The table of built-in objects of `(group, kind)`, as kube-apiserver's printers build it.
pub fn builtin_table(
    group: &str,
    kind: &str,
    items: &[&Value],
    now: Timestamp,
    include_object: IncludeObject,
) -> Value {
    let (columns, cells_of): (Vec<Value>, CellsFn) = match (group, kind) {
        ("", "Pod") => (pod_columns(), pod_cells),
        ("", "Node") => (node_columns(), node_cells),
        ("", "Namespace") => (
            vec![name_column(), column("Status", "string", "", "The status of the namespace", 0), age_column()],
            |o, now| vec![name_of(o), json!(str_at(o, "/status/phase")), json!(creation_age(o, now))],
        ),
        ("", "Event") => (event_columns(), event_cells),
        ("", "Service") => (service_columns(), service_cells),
        ("", "ConfigMap") => (
            vec![name_column(), column("Data", "string", "", "Data contains the configuration data.", 0), age_column()],
            |o, now| {
                let n = count_keys(o, "/data") + count_keys(o, "/binaryData");
                vec![name_of(o), json!(n), json!(creation_age(o, now))]
            },
        ),
        ("", "Secret") => (
            vec![
                name_column(),
                column("Type", "string", "", "Used to facilitate programmatic handling of secret data.", 0),
                column("Data", "string", "", "Data contains the secret data.", 0),
                age_column(),
            ],
            |o, now| {
                let n = count_keys(o, "/data");
                vec![name_of(o), json!(str_at(o, "/type")), json!(n), json!(creation_age(o, now))]
            },
        ),
        ("", "ServiceAccount") => (
            vec![
                name_column(),
                column("Secrets", "string", "", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.", 0),
                age_column(),
            ],
            |o, now| {
                let n = o.pointer("/secrets").and_then(Value::as_array).map_or(0, Vec::len) as i64;
                vec![name_of(o), json!(n), json!(creation_age(o, now))]
            },
        ),
        ("apps", "Deployment") => (deployment_columns(), deployment_cells),
        ("coordination.k8s.io", "Lease") => (
            vec![name_column(), column("Holder", "string", "", "HolderIdentity contains the identity of the holder of a current lease.", 0), age_column()],
            |o, now| vec![name_of(o), json!(str_at(o, "/spec/holderIdentity")), json!(creation_age(o, now))],
        ),
        ("apps", "ControllerRevision") => (
            vec![
                name_column(),
                column("Controller", "string", "", "Controller of the object", 0),
                column("Revision", "string", "", "Revision indicates the revision of the state represented by Data.", 0),
                age_column(),
            ],
            controller_revision_cells,
        ),
        _ => (
            vec![name_column(), column("Created At", "date", "", CREATION_TIMESTAMP_DESCRIPTION, 0)],
            |o, _| {
                let created = o
                    .pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<Timestamp>().ok())
                    .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
                vec![name_of(o), json!(created)]
            },
        ),
    };
    let rows = items
        .iter()
        .map(|o| {
            let mut r = row(cells_of(o, now), o, include_object);
            if let Some(conditions) = row_conditions(group, kind, o) {
                r["conditions"] = conditions;
            }
            r
        })
        .collect();
    table(columns, rows)
}

fn count_keys(o: &Value, ptr: &str) -> i64 {
    o.pointer(ptr)
        .and_then(Value::as_object)
        .map_or(0, Map::len) as i64
}

/// Pods that have completed carry a `Completed` row condition.
fn row_conditions(group: &str, kind: &str, o: &Value) -> Option<Value> {
    if (group, kind) != ("", "Pod") {
        return None;
    }
    match str_at(o, "/status/phase") {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
        ),
        _ => None,
    }
}

fn pod_columns() -> Vec<Value> {
    vec![
        name_column(),
        column("Ready", "string", "", "The aggregate readiness state of this pod for accepting traffic.", 0),
        column("Status", "string", "", "The aggregate status of the containers in this pod.", 0),
        column(
            "Restarts",
            "string",
            "",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            0,
        ),
        age_column(),
        column("IP", "string", "", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", 1),
        column("Node", "string", "", "NodeName indicates in which node this pod is scheduled.", 1),
        column("Nominated Node", "string", "", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.", 1),
        column("Readiness Gates", "string", "", "If specified, all readiness gates will be evaluated for pod readiness.", 1),
    ]
}

fn ts_seconds(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_str)
        .and_then(|s| s.parse::<Timestamp>().ok())
        .map(|t| t.as_second())
}

fn is_restartable_init(container: Option<&Value>) -> bool {
    container
        .and_then(|c| c.get("restartPolicy"))
        .and_then(Value::as_str)
        == Some("Always")
}

/// `printPod`: Ready, Status (with kubectl's reason rules), Restarts, Age, IP, Node, Nominated
/// Node, Readiness Gates.
fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let arr = |ptr: &str| {
        pod.pointer(ptr)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let containers = arr("/spec/containers");
    let init_specs = arr("/spec/initContainers");
    let init_statuses = arr("/status/initContainerStatuses");
    let statuses = arr("/status/containerStatuses");
    let conditions = arr("/status/conditions");
    let phase = str_at(pod, "/status/phase");
    let mut reason = phase.to_string();
    if !str_at(pod, "/status/reason").is_empty() {
        reason = str_at(pod, "/status/reason").to_string();
    }
    if conditions
        .iter()
        .any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }
    let init_by_name = |name: &Value| init_specs.iter().find(|c| c.get("name") == Some(name));
    let total = containers.len()
        + init_specs
            .iter()
            .filter(|c| is_restartable_init(Some(c)))
            .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<i64> = None;
    let mut last_sidecar_restart: Option<i64> = None;
    let mut initializing = false;
    for (i, c) in init_statuses.iter().enumerate() {
        let count = c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        restarts += count;
        let finished = ts_seconds(c.pointer("/lastState/terminated/finishedAt"));
        if finished > last_restart {
            last_restart = finished;
        }
        let spec = c.get("name").and_then(&init_by_name);
        let restartable = is_restartable_init(spec);
        if restartable {
            sidecar_restarts += count;
            if finished > last_sidecar_restart {
                last_sidecar_restart = finished;
            }
        }
        let terminated = c.pointer("/state/terminated");
        let waiting_reason = c
            .pointer("/state/waiting/reason")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if terminated.is_some_and(|t| t.get("exitCode").and_then(Value::as_i64) == Some(0)) {
            continue;
        }
        if restartable && c.get("started").and_then(Value::as_bool) == Some(true) {
            if c.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            let r = t.get("reason").and_then(Value::as_str).unwrap_or_default();
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else if let Some(sig) = t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                format!("Init:Signal:{sig}")
            } else {
                format!(
                    "Init:ExitCode:{}",
                    t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                )
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    let initialized = conditions
        .iter()
        .any(|c| c["type"] == "Initialized" && c["status"] == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in statuses.iter().rev() {
            restarts += c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
            let finished = ts_seconds(c.pointer("/lastState/terminated/finishedAt"));
            if finished > last_restart {
                last_restart = finished;
            }
            let waiting = c
                .pointer("/state/waiting/reason")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let terminated = c.pointer("/state/terminated");
            let term_reason = terminated
                .and_then(|t| t.get("reason"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if !term_reason.is_empty() {
                reason = term_reason.to_string();
            } else if let Some(t) = terminated {
                reason = match t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                    Some(sig) => format!("Signal:{sig}"),
                    None => format!(
                        "ExitCode:{}",
                        t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                    ),
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }
    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    if deleting && str_at(pod, "/status/reason") == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }
    let restarts_str = match last_restart {
        Some(t) if restarts != 0 => {
            format!("{restarts} ({} ago)", human_duration(now.as_second() - t))
        }
        _ => restarts.to_string(),
    };
    let pod_ip = arr("/status/podIPs")
        .first()
        .and_then(|p| p.get("ip"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| str_at(pod, "/status/podIP").to_string());
    let gates = arr("/spec/readinessGates");
    let gates_str = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_count = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .any(|c| c.get("type") == g.get("conditionType") && c["status"] == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        name_of(pod),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_str),
        json!(creation_age(pod, now)),
        json!(or_none(&pod_ip)),
        json!(or_none(str_at(pod, "/spec/nodeName"))),
        json!(or_none(str_at(pod, "/status/nominatedNodeName"))),
        json!(gates_str),
    ]
}

fn node_columns() -> Vec<Value> {
    vec![
        name_column(),
        column("Status", "string", "", "The status of the node", 0),
        column("Roles", "string", "", "The roles of the node", 0),
        age_column(),
        column("Version", "string", "", "Kubelet Version reported by the node.", 0),
        column("Internal-IP", "string", "", "List of addresses reachable to the node.", 1),
        column("External-IP", "string", "", "List of addresses reachable to the node.", 1),
        column("OS-Image", "string", "", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", 1),
        column("Kernel-Version", "string", "", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
        column("Container-Runtime", "string", "", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).", 1),
    ]
}

/// `printNode`: Ready/NotReady/Unknown (+SchedulingDisabled), roles from
/// `node-role.kubernetes.io/<role>` and `kubernetes.io/role` labels.
fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    let conditions = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut status: Vec<String> = Vec::new();
    if let Some(c) = conditions.iter().find(|c| c["type"] == "Ready") {
        status.push(if c["status"] == "True" {
            "Ready".into()
        } else {
            "NotReady".into()
        });
    }
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles: Vec<String> = crate::apimachinery::selectors::labels_of(node)
        .into_iter()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) if !role.is_empty() => Some(role.to_string()),
            Some(_) => None,
            None if k == "kubernetes.io/role" && !v.is_empty() => Some(v),
            None => None,
        })
        .collect();
    roles.sort();
    roles.dedup();
    let address = |t: &str| {
        node.pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| x["type"] == t))
            .and_then(|x| x.get("address"))
            .and_then(Value::as_str)
            .unwrap_or("<none>")
            .to_string()
    };
    let info = |f: &str| {
        let s = str_at(node, &format!("/status/nodeInfo/{f}"));
        if s.is_empty() {
            "<unknown>".to_string()
        } else {
            s.to_string()
        }
    };
    vec![
        name_of(node),
        json!(status.join(",")),
        json!(or_none(&roles.join(","))),
        json!(creation_age(node, now)),
        json!(str_at(node, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

fn event_columns() -> Vec<Value> {
    vec![
        column("Last Seen", "string", "", "The time at which the most recent occurrence of this event was recorded.", 0),
        column("Type", "string", "", "Type of this event (Normal, Warning), new types could be added in the future", 0),
        column("Reason", "string", "", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.", 0),
        column("Object", "string", "", "The object that this event is about.", 0),
        column("Subobject", "string", "", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].", 1),
        column("Source", "string", "", "The component reporting this event. Should be a short machine understandable string.", 1),
        column("Message", "string", "", "A human-readable description of the status of this operation.", 0),
        column("First Seen", "string", "", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)", 1),
        column("Count", "string", "", "The number of times this event has occurred.", 1),
        column("Name", "string", "name", NAME_DESCRIPTION, 1),
    ]
}

/// `printEvent` (wide).
fn event_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    let set = |ptr: &str| {
        ev.pointer(ptr)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    let first = if set("/firstTimestamp") {
        age(ev.pointer("/firstTimestamp"), now)
    } else {
        age(ev.pointer("/eventTime"), now)
    };
    let mut last = if set("/lastTimestamp") {
        age(ev.pointer("/lastTimestamp"), now)
    } else {
        first.clone()
    };
    let mut count = ev.get("count").and_then(Value::as_i64).unwrap_or(0);
    if let Some(series) = ev.get("series").filter(|s| s.is_object()) {
        last = age(series.get("lastObservedTime"), now);
        count = series.get("count").and_then(Value::as_i64).unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let kind = str_at(ev, "/involvedObject/kind").to_lowercase();
    let name = str_at(ev, "/involvedObject/name");
    let target = if name.is_empty() {
        kind
    } else {
        format!("{kind}/{name}")
    };
    let component = [
        str_at(ev, "/source/component"),
        str_at(ev, "/reportingComponent"),
    ]
    .into_iter()
    .find(|s| !s.is_empty())
    .unwrap_or_default();
    let instance = [str_at(ev, "/source/host"), str_at(ev, "/reportingInstance")]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(str_at(ev, "/type")),
        json!(str_at(ev, "/reason")),
        json!(target),
        json!(str_at(ev, "/involvedObject/fieldPath")),
        json!(source),
        json!(str_at(ev, "/message").trim()),
        json!(first),
        json!(count),
        name_of(ev),
    ]
}

fn service_columns() -> Vec<Value> {
    vec![
        name_column(),
        column("Type", "string", "", "type determines how the Service is exposed. Defaults to ClusterIP.", 0),
        column("Cluster-IP", "string", "", "clusterIP is the IP address of the service and is usually assigned randomly.", 0),
        column("External-IP", "string", "", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.", 0),
        column("Port(s)", "string", "", "The list of ports that are exposed by this service.", 0),
        age_column(),
        column("Selector", "string", "", "Route service traffic to pods with label keys and values matching this selector.", 1),
    ]
}

/// `printService` (wide).
fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    let svc_type = str_at(svc, "/spec/type");
    let cluster_ip = svc
        .pointer("/spec/clusterIPs/0")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| or_none(str_at(svc, "/spec/clusterIP")));
    let external_ips: Vec<String> = svc
        .pointer("/spec/externalIPs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let external = match svc_type {
        "ClusterIP" | "NodePort" | "" if !external_ips.is_empty() => external_ips.join(","),
        "ClusterIP" | "NodePort" => "<none>".to_string(),
        "LoadBalancer" => {
            let mut ips: Vec<String> = svc
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|i| {
                            i.get("ip")
                                .or_else(|| i.get("hostname"))
                                .and_then(Value::as_str)
                                .map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default();
            ips.extend(external_ips);
            if ips.is_empty() {
                "<pending>".to_string()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => str_at(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                    let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    match p.get("nodePort").and_then(Value::as_i64).filter(|n| *n > 0) {
                        Some(np) => format!("{port}:{np}/{proto}"),
                        None => format!("{port}/{proto}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let selector: Vec<String> = svc
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .map(|m| {
            let mut v: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    vec![
        name_of(svc),
        json!(svc_type),
        json!(cluster_ip),
        json!(external),
        json!(or_none(&ports.join(","))),
        json!(creation_age(svc, now)),
        json!(or_none(&selector.join(","))),
    ]
}

fn deployment_columns() -> Vec<Value> {
    vec![
        name_column(),
        column("Ready", "string", "", "Number of the pod with ready state", 0),
        column("Up-to-date", "string", "", "Total number of non-terminating pods targeted by this deployment that have the desired template spec.", 0),
        column("Available", "string", "", "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.", 0),
        age_column(),
        column("Containers", "string", "", "Names of each container in the template.", 1),
        column("Images", "string", "", "Images referenced by each container in the template.", 1),
        column("Selector", "string", "", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.", 1),
    ]
}

fn deployment_cells(d: &Value, now: Timestamp) -> Vec<Value> {
    let int = |ptr: &str| d.pointer(ptr).and_then(Value::as_i64).unwrap_or(0);
    let containers = d
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let images: Vec<&str> = containers
        .iter()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .collect();
    let selector = d
        .pointer("/spec/selector")
        .map(
            |s| match crate::apimachinery::selectors::LabelSelector::from_label_selector(s) {
                Ok(sel) if sel.is_empty() => "<none>".to_string(),
                Ok(sel) => sel.to_string(),
                Err(e) => e,
            },
        )
        .unwrap_or_else(|| "<none>".to_string());
    vec![
        name_of(d),
        json!(format!(
            "{}/{}",
            int("/status/readyReplicas"),
            int("/spec/replicas")
        )),
        json!(int("/status/updatedReplicas")),
        json!(int("/status/availableReplicas")),
        json!(creation_age(d, now)),
        json!(names.join(",")),
        json!(images.join(",")),
        json!(selector),
    ]
}

fn controller_revision_cells(cr: &Value, now: Timestamp) -> Vec<Value> {
    let controller = cr
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| {
            refs.iter()
                .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        })
        .map(|r| {
            let kind = r.get("kind").and_then(Value::as_str).unwrap_or_default();
            let group = r
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .rsplit_once('/')
                .map(|(g, _)| g)
                .unwrap_or("");
            let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
            let gk = if group.is_empty() {
                kind.to_string()
            } else {
                format!("{kind}.{group}")
            };
            format!("{}/{name}", gk.to_lowercase())
        })
        .unwrap_or_else(|| "<none>".to_string());
    vec![
        name_of(cr),
        json!(controller),
        json!(cr.get("revision").and_then(Value::as_i64).unwrap_or(0)),
        json!(creation_age(cr, now)),
    ]
}

#[cfg(test)]
mod tests;
