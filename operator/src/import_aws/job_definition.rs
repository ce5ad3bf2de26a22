//! RegisterJobDefinition → JobDefinition.

use barge_crds::job_definition::{
    JobDefinitionType, NodeProperties, NodeRangeProperty, PodProperties,
};
use barge_crds::{JobDefinition, JobDefinitionSpec};
use k8s_openapi::api::core::v1::{Container, Volume as PodVolume};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::container::{container_properties, retry_strategy, single_instance_type, timeout};
use super::names::{convert_name, NameLimit};
use super::reader::ObjectReader;
use super::{metadata, BargeObject, ImportError, ImportOptions, Notes};

pub(crate) fn convert(
    reader: &ObjectReader<'_>,
    options: &ImportOptions,
    notes: &mut Notes,
) -> Result<BargeObject, ImportError> {
    let aws_name = reader.required_string("jobDefinitionName")?;
    let name = convert_name(
        &aws_name,
        &reader.field_path("jobDefinitionName"),
        NameLimit::Label,
        notes,
    )?;
    let r#type = match reader
        .required_string("type")?
        .to_ascii_lowercase()
        .as_str()
    {
        "container" => JobDefinitionType::Container,
        "multinode" => JobDefinitionType::Multinode,
        other => {
            return Err(ImportError::field(
                reader.field_path("type"),
                format!("expected container or multinode, got {other:?}"),
            ))
        }
    };
    let parameters = reader.string_map("parameters")?;
    let container_properties = match reader.object("containerProperties")? {
        Some(container) => {
            let properties = container_properties(&container, false, notes)?;
            container.finish(notes);
            Some(properties)
        }
        None => None,
    };
    let node_properties = reader
        .object("nodeProperties")?
        .map(|nodes| node_properties(nodes, notes))
        .transpose()?;
    let pod_properties = match reader.object("eksProperties")? {
        Some(eks) => {
            let pod = match eks.object("podProperties")? {
                Some(pod) => Some(pod_properties(pod, notes)?),
                None => None,
            };
            eks.finish(notes);
            pod
        }
        None => None,
    };
    let retry_strategy = retry_strategy(reader, notes)?;
    let timeout = timeout(reader, notes)?;
    let scheduling_priority = reader.int("schedulingPriority")?;
    let propagate_tags = reader.bool("propagateTags")?;
    let tags = reader.string_map("tags")?;
    check_propagated_tags(reader, &tags, propagate_tags, notes);
    if let Some(capabilities) = reader.value("platformCapabilities") {
        let fargate = capabilities
            .as_array()
            .is_some_and(|c| c.iter().any(|v| v.as_str() == Some("FARGATE")));
        let message = if fargate {
            "not imported: Barge has no Fargate; the job runs as pods on the compute environment's nodes"
        } else {
            "not imported: Barge jobs always run as pods on Kubernetes nodes (the EC2 platform)"
        };
        notes.add(reader.field_path("platformCapabilities"), message);
    }
    // DescribeJobDefinitions output: the revision and status chose this document
    // (`revisions`); the ARN and orchestration type are AWS's bookkeeping.
    reader.value("revision");
    reader.value("status");
    reader.not_imported(
        "jobDefinitionArn",
        "AWS's identifier of this revision; Barge names the definition by metadata.name",
        notes,
    );
    reader.not_imported(
        "containerOrchestrationType",
        "Barge jobs always run as Kubernetes pods",
        notes,
    );
    reader.refuse(
        "ecsProperties",
        "Barge does not run ECS task properties (several containers with essential flags, dependsOn conditions, firelens, ...); rewrite the job as containerProperties or eksProperties.podProperties",
        notes,
    );
    reader.refuse(
        "consumableResourceProperties",
        "Barge has no consumable resources: the job would run without waiting for them",
        notes,
    );
    let spec = JobDefinitionSpec {
        r#type,
        parameters,
        container_properties,
        pod_properties,
        node_properties,
        retry_strategy,
        timeout,
        scheduling_priority,
        propagate_tags,
        tags,
    };
    let mut object = JobDefinition::new(&name, spec);
    object.metadata = metadata(name, options.namespace.as_deref());
    Ok(BargeObject::JobDefinition(Box::new(object)))
}

fn node_properties(
    reader: ObjectReader<'_>,
    notes: &mut Notes,
) -> Result<NodeProperties, ImportError> {
    let num_nodes = reader.required_int("numNodes")?;
    let main_node = reader.required_int("mainNode")?;
    let mut node_range_properties = Vec::new();
    for (path, item) in reader.list("nodeRangeProperties")? {
        let range = ObjectReader::new(item, &path)?;
        let target_nodes = range.required_string("targetNodes")?;
        let container = range.object("container")?.ok_or_else(|| {
            ImportError::field(
                range.field_path("container"),
                "required: Barge node ranges describe their container",
            )
        })?;
        let mut properties = container_properties(&container, true, notes)?;
        container.finish(notes);
        if let Some(instance_type) =
            single_instance_type(&range, properties.instance_type.as_deref(), notes)?
        {
            properties.instance_type = Some(instance_type);
        }
        range.refuse(
            "eksProperties",
            "Barge's node ranges run AWS-shaped containers (container)",
            notes,
        );
        range.refuse(
            "ecsProperties",
            "Barge does not run ECS task properties; describe the range's container in container",
            notes,
        );
        range.refuse(
            "consumableResourceProperties",
            "Barge has no consumable resources: the job would run without waiting for them",
            notes,
        );
        range.finish(notes);
        node_range_properties.push(NodeRangeProperty {
            target_nodes,
            container: properties,
        });
    }
    reader.finish(notes);
    Ok(NodeProperties {
        num_nodes,
        main_node,
        node_range_properties,
    })
}

/// A Kubernetes object embedded in an AWS document (EKS containers and volumes use the
/// Kubernetes field names). A field the Kubernetes type does not have — which deserializing
/// would drop — is refused by its path.
fn kubernetes_list<T: DeserializeOwned + Serialize>(
    reader: &ObjectReader<'_>,
    key: &str,
    notes: &mut Notes,
) -> Result<Vec<T>, ImportError> {
    let mut out = Vec::new();
    for (path, item) in reader.list(key)? {
        let object: T = serde_json::from_value(item.clone()).map_err(|e| {
            ImportError::field(
                &path,
                format!("not a Kubernetes object of the expected shape: {e}"),
            )
        })?;
        let kept = serde_json::to_value(&object)
            .map_err(|e| ImportError::field(&path, format!("cannot be represented: {e}")))?;
        for dropped in dropped_fields(item, &kept, &path) {
            notes.refuse(
                dropped,
                "not a field of the Kubernetes object Barge runs, so it cannot honour it",
            );
        }
        out.push(object);
    }
    Ok(out)
}

/// Paths of the fields of `input` that `kept` (its round trip through a Kubernetes type) lost.
fn dropped_fields(input: &Value, kept: &Value, path: &str) -> Vec<String> {
    match (input, kept) {
        (Value::Object(input), Value::Object(kept)) => input
            .iter()
            .filter(|(_, v)| !v.is_null())
            .flat_map(|(key, value)| {
                let child = super::reader::join(path, key);
                match kept.get(key) {
                    Some(kept_value) => dropped_fields(value, kept_value, &child),
                    None => vec![child],
                }
            })
            .collect(),
        (Value::Array(input), Value::Array(kept)) => input
            .iter()
            .zip(kept)
            .enumerate()
            .flat_map(|(i, (v, k))| dropped_fields(v, k, &format!("{path}[{i}]")))
            .collect(),
        _ => Vec::new(),
    }
}

/// `eksProperties.podProperties` (AWS Batch on EKS) → `podProperties`. Pod-level settings Barge
/// does not carry (hostNetwork, dnsPolicy, imagePullSecrets, metadata, shareProcessNamespace)
/// are refused by the reader.
fn pod_properties(
    reader: ObjectReader<'_>,
    notes: &mut Notes,
) -> Result<PodProperties, ImportError> {
    let containers: Vec<Container> = kubernetes_list(&reader, "containers", notes)?;
    let init_containers: Vec<Container> = kubernetes_list(&reader, "initContainers", notes)?;
    let volumes: Vec<PodVolume> = kubernetes_list(&reader, "volumes", notes)?;
    let service_account_name = reader.string("serviceAccountName")?;
    reader.finish(notes);
    Ok(PodProperties {
        containers,
        init_containers,
        volumes,
        service_account_name,
    })
}

/// With `propagateTags`, Barge copies tags to the job's pods as annotations and leaves out
/// keys that are not annotation keys: such a key is refused rather than lost at run time.
pub(crate) fn check_propagated_tags(
    reader: &ObjectReader<'_>,
    tags: &std::collections::BTreeMap<String, String>,
    propagate: Option<bool>,
    notes: &mut Notes,
) {
    if propagate != Some(true) {
        return;
    }
    for key in tags.keys() {
        if !barge_crds::common::is_label_key(key) {
            notes.refuse(
                format!("{}.{key}", reader.field_path("tags")),
                format!("propagateTags copies tags to the pods as annotations, and {key:?} is not an annotation key (letters, digits, '-', '_', '.', an optional DNS prefix and '/'), so Barge would leave it out"),
            );
        }
    }
}
