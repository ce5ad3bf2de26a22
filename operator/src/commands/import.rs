//! `barge import aws FILE...`: reads AWS Batch JSON documents and prints Barge manifests.
//!
//! The manifests go to stdout as multi-document YAML (ready for `kubectl apply -f -`), each
//! validated against its CRD first; warnings about anything renamed or dropped (AWS metadata and
//! infrastructure only) go to stderr. On any error (unreadable file, invalid JSON, a malformed
//! field, a field Barge would not honour at run time, a manifest the API server would refuse)
//! nothing is printed on stdout, every error is reported on stderr naming the file and the
//! field, and the exit code is 1. Usage errors exit with 2.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::import_aws::{convert_inputs, ImportOptions};

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub source: ImportSource,
}

#[derive(Debug, Subcommand)]
pub enum ImportSource {
    /// Convert AWS Batch JSON (RegisterJobDefinition, CreateJobQueue, CreateComputeEnvironment,
    /// CreateSchedulingPolicy, SubmitJob; a document or a list of them per file) into Barge
    /// manifests.
    Aws(AwsArgs),
}

#[derive(Debug, Args)]
pub struct AwsArgs {
    /// AWS Batch JSON files ("-" reads standard input).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Namespace of the JobDefinitions and Jobs (default: none, so kubectl uses its current one).
    #[arg(long, short = 'n', value_parser = parse_namespace)]
    pub namespace: Option<String>,
    /// Give MANAGED compute environments the karpenter provider with this NodeClass,
    /// `<group>/<kind>/<name>` (e.g. `karpenter.k8s.aws/EC2NodeClass/default`); default: the
    /// simulated provider.
    #[arg(long, value_name = "GROUP/KIND/NAME", value_parser = parse_node_class)]
    pub karpenter_node_class: Option<barge_crds::compute_environment::NodeClassRef>,
    /// Give MANAGED compute environments the clusterAPI provider scaling this MachineDeployment,
    /// `<namespace>/<name>[=<instance-type>]` (repeatable; without an instance type Barge reads
    /// the deployment's `capacity.cluster-autoscaler.kubernetes.io/*` annotations).
    #[arg(
        long = "cluster-api-machine-deployment",
        value_name = "NAMESPACE/NAME[=INSTANCE-TYPE]",
        value_parser = parse_machine_deployment,
        conflicts_with = "karpenter_node_class"
    )]
    pub cluster_api_machine_deployments: Vec<barge_crds::compute_environment::MachineDeploymentRef>,
}

fn parse_machine_deployment(
    value: &str,
) -> Result<barge_crds::compute_environment::MachineDeploymentRef, String> {
    let (reference, instance_type) = match value.split_once('=') {
        Some((reference, t)) if !t.is_empty() => (reference, Some(t.to_string())),
        Some(_) => return Err(format!("{value:?}: the instance type after '=' is empty")),
        None => (value, None),
    };
    match reference.split_once('/') {
        Some((namespace, name))
            if barge_crds::common::is_dns_label(namespace)
                && !name.is_empty()
                && !name.contains('/') =>
        {
            Ok(barge_crds::compute_environment::MachineDeploymentRef {
                name: name.to_string(),
                namespace: namespace.to_string(),
                instance_type,
            })
        }
        _ => Err(format!(
            "{value:?} is not <namespace>/<name>[=<instance-type>], e.g. capi/workers-c5=c5.large"
        )),
    }
}

fn parse_node_class(value: &str) -> Result<barge_crds::compute_environment::NodeClassRef, String> {
    match value.split('/').collect::<Vec<_>>().as_slice() {
        [group, kind, name] if !group.is_empty() && !kind.is_empty() && !name.is_empty() => {
            Ok(barge_crds::compute_environment::NodeClassRef {
                group: group.to_string(),
                kind: kind.to_string(),
                name: name.to_string(),
            })
        }
        _ => Err(format!(
            "{value:?} is not <group>/<kind>/<name>, e.g. karpenter.k8s.aws/EC2NodeClass/default"
        )),
    }
}

fn parse_namespace(value: &str) -> Result<String, String> {
    if barge_crds::common::is_dns_label(value) {
        Ok(value.to_string())
    } else {
        Err(format!(
            "{value:?} is not a namespace name (lowercase letters, digits and '-', at most 63 characters)"
        ))
    }
}

/// The result of importing a set of inputs: YAML for stdout, notes, or errors.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportOutput {
    pub yaml: String,
    pub notes: Vec<String>,
    pub errors: Vec<String>,
}

/// Converts named inputs (file name, content) together; pure, so it is unit-tested without
/// files. Any error (invalid JSON, a malformed or refused field, a manifest the CRD would refuse)
/// leaves the YAML empty.
pub fn import_inputs(inputs: &[(String, String)], options: &ImportOptions) -> ImportOutput {
    let mut output = ImportOutput::default();
    let mut values = Vec::new();
    for (name, content) in inputs {
        match serde_json::from_str::<serde_json::Value>(content) {
            Ok(value) => values.push((name.clone(), value)),
            Err(e) => output.errors.push(format!("{name}: not valid JSON: {e}")),
        }
    }
    let conversion = match convert_inputs(&values, options) {
        Ok(conversion) => conversion,
        Err(errors) => {
            output
                .errors
                .extend(errors.0.iter().map(ToString::to_string));
            return output;
        }
    };
    output.notes = conversion.notes.iter().map(ToString::to_string).collect();
    if !output.errors.is_empty() {
        return output;
    }
    for (object, source) in conversion.objects.iter().zip(&conversion.sources) {
        match object
            .to_value()
            .and_then(|v| serde_yaml::to_string(&v).map_err(serde::ser::Error::custom))
        {
            Ok(yaml) => output
                .yaml
                .push_str(&format!("---\n# Imported from {source}\n{yaml}")),
            Err(e) => output.errors.push(format!(
                "{} {}: cannot render the manifest: {e}",
                object.kind(),
                object.name()
            )),
        }
    }
    if !output.errors.is_empty() {
        output.yaml.clear();
    }
    output
}

fn read_input(path: &PathBuf) -> Result<(String, String), String> {
    let name = path.display().to_string();
    let content = if name == "-" {
        let mut content = String::new();
        std::io::stdin()
            .read_to_string(&mut content)
            .map_err(|e| format!("standard input: {e}"))?;
        content
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?
    };
    Ok((name, content))
}

pub fn run(args: ImportArgs) -> ExitCode {
    match args.source {
        ImportSource::Aws(aws) => run_aws(aws),
    }
}

fn run_aws(args: AwsArgs) -> ExitCode {
    let mut inputs = Vec::new();
    let mut read_errors = Vec::new();
    for path in &args.files {
        match read_input(path) {
            Ok(input) => inputs.push(input),
            Err(e) => read_errors.push(e),
        }
    }
    let options = ImportOptions {
        namespace: args.namespace,
        karpenter_node_class: args.karpenter_node_class,
        cluster_api_machine_deployments: args.cluster_api_machine_deployments,
    };
    let mut output = import_inputs(&inputs, &options);
    if !read_errors.is_empty() {
        output.errors.splice(0..0, read_errors);
        output.yaml.clear();
    }
    for note in &output.notes {
        eprintln!("warning: {note}");
    }
    for error in &output.errors {
        eprintln!("error: {error}");
    }
    if !output.errors.is_empty() {
        return ExitCode::FAILURE;
    }
    print!("{}", output.yaml);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_deployment_options_name_a_namespace_a_name_and_maybe_a_type() {
        let md = parse_machine_deployment("capi/workers-c5=c5.large").expect("valid");
        assert_eq!(
            (
                md.namespace.as_str(),
                md.name.as_str(),
                md.instance_type.as_deref()
            ),
            ("capi", "workers-c5", Some("c5.large"))
        );
        let md = parse_machine_deployment("capi/gpu").expect("valid");
        assert_eq!(md.instance_type, None);
        for bad in ["workers", "capi/", "Capi/x", "capi/x=", "a/b/c"] {
            assert!(parse_machine_deployment(bad).is_err(), "{bad}");
        }
    }

    fn input(name: &str, content: &str) -> (String, String) {
        (name.to_string(), content.to_string())
    }

    #[test]
    fn documents_become_yaml_with_notes() {
        let output = import_inputs(
            &[input(
                "q.json",
                r#"{"jobQueueName": "High_Priority", "priority": 1, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "ce"}]}"#,
            )],
            &ImportOptions::default(),
        );
        assert!(output.errors.is_empty(), "{:?}", output.errors);
        assert!(output.yaml.starts_with("---\n# Imported from q.json\n"));
        assert!(output.yaml.contains("kind: JobQueue"));
        assert!(output.yaml.contains("name: high-priority"));
        assert!(output
            .notes
            .iter()
            .any(|n| n.starts_with("q.json: jobQueueName: ")));
    }

    #[test]
    fn errors_name_file_and_field_and_suppress_output() {
        let output = import_inputs(
            &[
                input("good.json", r#"{"name": "p", "fairsharePolicy": {}}"#),
                input(
                    "bad.json",
                    r#"{"jobDefinitionName": "x", "type": "container", "containerProperties": {"image": "i", "vcpus": "two"}}"#,
                ),
                input("broken.json", "{"),
            ],
            &ImportOptions::default(),
        );
        assert_eq!(output.yaml, "");
        assert_eq!(output.errors.len(), 2, "{:?}", output.errors);
        assert!(output.errors[0].starts_with("broken.json: not valid JSON: "));
        assert_eq!(
            output.errors[1],
            "bad.json: containerProperties.vcpus: expected a number, got \"two\""
        );
    }

    #[test]
    fn namespace_must_be_a_dns_label() {
        assert!(parse_namespace("team-a").is_ok());
        assert!(parse_namespace("Team_A").is_err());
    }
}
