//! What the kubectl-style commands (`submit`, `get`, `list`, `describe`, `logs`, `terminate`,
//! `cancel`, `queues`) share: the cluster flags and the client they build (the kubeconfig, its
//! context and namespace, as kubectl picks them), errors printed as kubectl prints them, and
//! kubectl's printers — the table writer (Go's `text/tabwriter` as kubectl configures it), ages
//! (`duration.HumanDuration`), `-o yaml|json|name` and `List` documents.
//!
//! Everything here but [`connect`] and [`run`] is pure and unit-tested.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Serialize;
use serde_json::Value;

/// The flags every command has that talks to a cluster, named as kubectl's.
#[derive(Clone, Debug, Default, Args)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file (default: KUBECONFIG — several paths are merged as kubectl
    /// merges them — then ~/.kube/config, then the in-cluster service account).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace (default: the namespace of the context, else "default").
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

/// `-o`: how objects are printed (absent: a table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Yaml,
    Json,
    /// `<kind>.<group>/<name>` per object.
    Name,
    /// The table with more columns.
    Wide,
}

/// An error as kubectl reports it (see [`CliError`]'s `Display`).
#[derive(Debug)]
pub enum CliError {
    /// The API server answered with a failure Status.
    Api(Box<kube::core::Status>),
    /// Anything else (unreachable cluster, bad kubeconfig, a refused argument).
    Other(String),
    /// Errors already printed (e.g. `get a b` where one is missing): only the exit code is left.
    Reported,
}

impl CliError {
    pub fn other(message: impl Into<String>) -> Self {
        CliError::Other(message.into())
    }
}

impl From<kube::Error> for CliError {
    fn from(error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => CliError::Api(status),
            other => CliError::Other(other.to_string()),
        }
    }
}

impl std::fmt::Display for CliError {
    /// kubectl's `cmdutil.CheckErr`: `The Job "x" is invalid: <cause>` for Invalid (one cause
    /// per line when there are several), `Error from server (<Reason>): <message>` for other
    /// API errors, `error: <message>` otherwise.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Api(status) => f.write_str(&api_error_message(status)),
            CliError::Other(message) if message.starts_with("error: ") => f.write_str(message),
            CliError::Other(message) => write!(f, "error: {message}"),
            CliError::Reported => Ok(()),
        }
    }
}

/// The text kubectl prints for an API error Status.
pub fn api_error_message(status: &kube::core::Status) -> String {
    if status.reason == "Invalid" {
        if let Some(details) = &status.details {
            let what = if details.kind.is_empty() && details.name.is_empty() {
                "The request is invalid".to_string()
            } else {
                format!("The {} {:?} is invalid", details.kind, details.name)
            };
            let causes: Vec<String> = details
                .causes
                .iter()
                .map(|c| match (c.field.is_empty(), c.message.is_empty()) {
                    (false, false) => format!("{}: {}", c.field, c.message),
                    (true, _) => c.message.clone(),
                    (false, true) => c.field.clone(),
                })
                .collect();
            return match causes.as_slice() {
                [] => what,
                [one] => format!("{what}: {one}"),
                many => {
                    let lines: String = many.iter().map(|c| format!("* {c}\n")).collect();
                    format!("{what}: \n{}", lines.trim_end())
                }
            };
        }
    }
    if status.reason == "Unauthorized" {
        return format!(
            "error: You must be logged in to the server ({})",
            status.message
        );
    }
    if status.reason.is_empty() {
        format!("Error from server: {}", status.message)
    } else {
        format!("Error from server ({}): {}", status.reason, status.message)
    }
}

/// Runs a command's async body on a fresh runtime; prints its error as kubectl does (on
/// stderr) and exits 1 on failure.
pub fn run<F>(body: F) -> ExitCode
where
    F: Future<Output = Result<(), CliError>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(body) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Reported) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// A client and the namespace to use, chosen as kubectl chooses them: `--kubeconfig` (one
/// file) or KUBECONFIG (paths merged) or ~/.kube/config, else the in-cluster config;
/// `--context` or the current context; `-n`, else the context's namespace, else "default".
pub async fn connect(args: &ClusterArgs) -> Result<(Client, String), CliError> {
    let (config, namespace) = config_and_namespace(
        args.kubeconfig.as_deref(),
        args.context.as_deref(),
        args.namespace.as_deref(),
    )
    .await
    .map_err(|e| match e {
        ConfigError::Read(path, e) => CliError::other(format!("{}: {e}", path.display())),
        ConfigError::File(_, e) | ConfigError::Default(e) => CliError::other(e),
    })?;
    let client = Client::try_from(config).map_err(|e| CliError::other(e.to_string()))?;
    Ok((client, namespace))
}

/// Why [`config_and_namespace`] found no config (the causes as text).
#[derive(Debug)]
pub enum ConfigError {
    /// Reading the `--kubeconfig` file.
    Read(PathBuf, String),
    /// Loading the config from the `--kubeconfig` file.
    File(PathBuf, String),
    /// Loading the config without `--kubeconfig` (KUBECONFIG, ~/.kube/config, in-cluster).
    Default(String),
}

/// The client config and the namespace, chosen as kubectl chooses them (see [`connect`]);
/// callers word the errors.
pub async fn config_and_namespace(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    namespace: Option<&str>,
) -> Result<(Config, String), ConfigError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| ConfigError::Read(path.to_path_buf(), e.to_string()))?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| ConfigError::File(path.to_path_buf(), e.to_string()))?
        }
        // A context names a kubeconfig entry: there is no in-cluster fallback then.
        None if context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| ConfigError::Default(e.to_string()))?,
        None => Config::infer()
            .await
            .map_err(|e| ConfigError::Default(e.to_string()))?,
    };
    let namespace = namespace
        .map(str::to_string)
        .unwrap_or_else(|| config.default_namespace.clone());
    Ok((config, namespace))
}

// ---------------------------------------------------------------------------------------------
// Printers
// ---------------------------------------------------------------------------------------------

/// kubectl's table writer: `tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)` (minimum cell width 6,
/// padding 3).
pub fn table(rows: &[Vec<String>]) -> String {
    let text: String = rows.iter().map(|r| format!("{}\n", r.join("\t"))).collect();
    tabwrite(&text, 6, 3)
}

/// Go's `text/tabwriter` (left-aligned, space padding, no flags): every tab-terminated cell is
/// padded to the width of its column block — the consecutive lines that have a cell in that
/// column — which is the widest cell plus `padding`, at least `min_width`. A line's last cell
/// (not tab-terminated) is not part of a column and is written as is.
pub fn tabwrite(text: &str, min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text
        .strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .map(|l| l.split('\t').collect())
        .collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format_block(
        &lines,
        0,
        lines.len(),
        &mut widths,
        min_width,
        padding,
        &mut out,
    );
    if text.ends_with('\n') || text.is_empty() {
        out
    } else {
        out.pop();
        out
    }
}

/// The recursion of Go's `tabwriter.format`: finds the column blocks of column `widths.len()`
/// in lines `start..end`, sizes each, and formats the columns to its right within it.
fn format_block(
    lines: &[Vec<&str>],
    start: usize,
    end: usize,
    widths: &mut Vec<usize>,
    min_width: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut written = start;
    let mut this = start;
    while this < end {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(&lines[written..this], widths, out);
        let block_start = this;
        let mut width = min_width;
        while this < end && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + padding);
            this += 1;
        }
        widths.push(width);
        format_block(lines, block_start, this, widths, min_width, padding, out);
        widths.pop();
        written = this;
    }
    write_lines(&lines[written..end], widths, out);
}

fn write_lines(lines: &[Vec<&str>], widths: &[usize], out: &mut String) {
    for line in lines {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < line.len() {
                let width = widths.get(j).copied().unwrap_or(0);
                let pad = width.saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
}

/// apimachinery's `duration.HumanDuration`, the AGE of `kubectl get`: "45s", "5m12s", "42m",
/// "3h20m", "20h", "2d4h", "30d", "2y100d".
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
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
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The age of something that happened at `then`, seen at `now` (`<unknown>` without a time, as
/// kubectl prints it).
pub fn age(then: Option<jiff::Timestamp>, now: jiff::Timestamp) -> String {
    match then {
        Some(then) => human_duration(now.as_second() - then.as_second()),
        None => "<unknown>".into(),
    }
}

/// An object as `-o yaml|json` prints it: without `metadata.managedFields` (kubectl hides them
/// unless `--show-managed-fields`).
pub fn printable<T: Serialize>(object: &T) -> Result<Value, CliError> {
    let mut value = serde_json::to_value(object).map_err(|e| CliError::other(e.to_string()))?;
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    Ok(value)
}

/// Objects as kubectl's `-o yaml|json` prints several: a `v1` `List`.
pub fn list_document(items: Vec<Value>) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    })
}

/// A document as kubectl's JSON printer writes it (4-space indent, a final newline).
pub fn to_json(value: &Value) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    // Serialising a `Value` into memory cannot fail.
    let _ = value.serialize(&mut serializer);
    let mut text = String::from_utf8(out).unwrap_or_default();
    text.push('\n');
    text
}

/// A document as YAML.
pub fn to_yaml(value: &Value) -> Result<String, CliError> {
    serde_yaml::to_string(value).map_err(|e| CliError::other(e.to_string()))
}

/// A document printed as `-o yaml` or `-o json` (other formats are the caller's).
pub fn document_text(value: &Value, format: OutputFormat) -> Result<String, CliError> {
    match format {
        OutputFormat::Json => Ok(to_json(value)),
        _ => to_yaml(value),
    }
}

/// `kubectl get -o name`: `<kind>.<group>/<name>`, e.g. `job.batch.barge.dev/train`.
pub fn resource_name<K: kube::Resource<DynamicType = ()>>(name: &str) -> String {
    format!("{}.{}/{name}", K::kind(&()).to_lowercase(), K::group(&()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use barge_crds::Job;
    use kube::core::response::{StatusCause, StatusDetails};
    use kube::core::Status;

    #[test]
    fn tables_are_padded_as_kubectl_pads_them() {
        let rows = vec![
            vec!["NAME".into(), "STATUS".into(), "AGE".into()],
            vec!["a".into(), "RUNNING".into(), "5s".into()],
            vec!["longer-name".into(), "SUCCEEDED".into(), "3m".into()],
        ];
        assert_eq!(
            table(&rows),
            "NAME          STATUS      AGE\n\
             a             RUNNING     5s\n\
             longer-name   SUCCEEDED   3m\n"
        );
        // Short columns are at least 6 wide, padding included.
        let rows = vec![vec!["A".into(), "B".into()], vec!["x".into(), "y".into()]];
        assert_eq!(table(&rows), "A     B\nx     y\n");
    }

    #[test]
    fn tabwrite_aligns_column_blocks_separately() {
        // Describe output: lines without a tab end a block; the indented block aligns alone.
        let text = "Name:\tx\nNamespace:\tml\nAttempts:\n  #1:\n    Exit Code:\t1\n    Pod:\tx-1\n";
        assert_eq!(
            tabwrite(text, 0, 2),
            "Name:       x\nNamespace:  ml\nAttempts:\n  #1:\n    Exit Code:  1\n    Pod:        x-1\n"
        );
        // A trailing tab makes an empty last cell: the column is still padded.
        assert_eq!(tabwrite("a\tb\t\nccc\td\t\n", 0, 1), "a   b \nccc d \n");
    }

    #[test]
    fn human_durations_match_apimachinery() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (5 * 60 + 12, "5m12s"),
            (42 * 60, "42m"),
            (179 * 60, "179m"),
            (3 * 3600 + 20 * 60, "3h20m"),
            (5 * 3600, "5h"),
            (20 * 3600, "20h"),
            (2 * 86400 + 4 * 3600, "2d4h"),
            (3 * 86400, "3d"),
            (30 * 86400, "30d"),
            (2 * 365 * 86400 + 100 * 86400, "2y100d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(human_duration(seconds), expected, "{seconds}s");
        }
    }

    #[test]
    fn api_errors_read_as_kubectls() {
        let not_found = Status::failure(r#"jobs.batch.barge.dev "x" not found"#, "NotFound");
        assert_eq!(
            CliError::Api(Box::new(not_found)).to_string(),
            r#"Error from server (NotFound): jobs.batch.barge.dev "x" not found"#
        );
        let mut invalid = Status::failure("ignored", "Invalid");
        invalid.details = Some(StatusDetails {
            name: "x".into(),
            kind: "Job".into(),
            causes: vec![StatusCause {
                field: "spec.arrayProperties.size".into(),
                message: "Invalid value: 1: should be at least 2".into(),
                reason: "FieldValueInvalid".into(),
            }],
            group: "batch.barge.dev".into(),
            uid: String::new(),
            retry_after_seconds: 0,
        });
        assert_eq!(
            api_error_message(&invalid),
            r#"The Job "x" is invalid: spec.arrayProperties.size: Invalid value: 1: should be at least 2"#
        );
        assert_eq!(
            CliError::other("no pod").to_string(),
            "error: no pod",
            "other errors get kubectl's prefix"
        );
    }

    #[test]
    fn names_and_lists_follow_kubectl() {
        assert_eq!(resource_name::<Job>("train"), "job.batch.barge.dev/train");
        let list = list_document(vec![serde_json::json!({"kind": "Job"})]);
        assert_eq!(
            to_json(&list),
            "{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n        {\n            \"kind\": \"Job\"\n        }\n    ],\n    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n"
        );
    }
}
