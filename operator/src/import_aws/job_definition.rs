//! RegisterJobDefinition → JobDefinition.

use barge_crds::job_definition::{
    JobDefinitionType, NodeProperties, NodeRangeProperty, PodProperties,
};
use barge_crds::{JobDefinition, JobDefinitionSpec};
use k8s_openapi::api::core::v1::{Container, Volume as PodVolume};
use serde::de::DeserializeOwned;

use super::container::{container_properties, retry_strategy, timeout};
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
    reader.not_imported(
        "containerOrchestrationType",
        "Barge jobs always run as Kubernetes pods",
        notes,
    );
    reader.not_imported(
        "ecsProperties",
        "ECS task properties have no Barge counterpart; use containerProperties or podProperties",
        notes,
    );
    reader.not_imported(
        "consumableResourceProperties",
        "consumable resources are not supported yet",
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
        let properties = container_properties(&container, true, notes)?;
        container.finish(notes);
        range.not_imported(
            "instanceTypes",
            "set one instanceType in the range's container",
            notes,
        );
        range.not_imported(
            "eksProperties",
            "node ranges take a container in the AWS shape",
            notes,
        );
        range.not_imported(
            "ecsProperties",
            "node ranges take a container in the AWS shape",
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
/// Kubernetes field names).
fn kubernetes_list<T: DeserializeOwned>(
    reader: &ObjectReader<'_>,
    key: &str,
) -> Result<Vec<T>, ImportError> {
    reader
        .list(key)?
        .into_iter()
        .map(|(path, item)| {
            serde_json::from_value(item.clone()).map_err(|e| {
                ImportError::field(
                    path,
                    format!("not a Kubernetes object of the expected shape: {e}"),
                )
            })
        })
        .collect()
}

/// `eksProperties.podProperties` (AWS Batch on EKS) → `podProperties`.
fn pod_properties(
    reader: ObjectReader<'_>,
    notes: &mut Notes,
) -> Result<PodProperties, ImportError> {
    let containers: Vec<Container> = kubernetes_list(&reader, "containers")?;
    let init_containers: Vec<Container> = kubernetes_list(&reader, "initContainers")?;
    let volumes: Vec<PodVolume> = kubernetes_list(&reader, "volumes")?;
    let service_account_name = reader.string("serviceAccountName")?;
    reader.finish(notes);
    Ok(PodProperties {
        containers,
        init_containers,
        volumes,
        service_account_name,
    })
}
