//! CreateComputeEnvironment → ComputeEnvironment.

use std::collections::BTreeMap;

use barge_crds::common::{is_label_key, is_label_value, State};
use barge_crds::compute_environment::{
    AllocationStrategy, ClusterApiProvider, ComputeEnvironmentType, ComputeResourceType,
    ComputeResources, KarpenterProvider, NodeProvider, SimulatedProvider,
};
use barge_crds::consts::RESERVED_LABEL_PREFIX;
use barge_crds::{ComputeEnvironment, ComputeEnvironmentSpec};

use super::names::{convert_name, NameLimit};
use super::reader::ObjectReader;
use super::{metadata, note_resource_tags, BargeObject, ImportError, ImportOptions, Notes};

const NETWORK_NOTE: &str =
    "EC2 networking has no Kubernetes meaning: the cluster's nodes bring their own network";
const INSTANCE_NOTE: &str = "EC2 instance settings belong to the node provider (a Karpenter NodeClass or a Cluster API machine template)";
const ROLE_NOTE: &str =
    "AWS IAM roles have no meaning in Kubernetes; Barge acts with its service account's RBAC";

pub(crate) fn parse_state(reader: &ObjectReader<'_>) -> Result<State, ImportError> {
    match reader.string("state")?.as_deref() {
        None | Some("ENABLED") => Ok(State::Enabled),
        Some("DISABLED") => Ok(State::Disabled),
        Some(other) => Err(ImportError::field(
            reader.field_path("state"),
            format!("expected ENABLED or DISABLED, got {other:?}"),
        )),
    }
}

pub(crate) fn convert(
    reader: &ObjectReader<'_>,
    options: &ImportOptions,
    notes: &mut Notes,
) -> Result<BargeObject, ImportError> {
    let aws_name = reader.required_string("computeEnvironmentName")?;
    let name = convert_name(
        &aws_name,
        &reader.field_path("computeEnvironmentName"),
        NameLimit::Label,
        notes,
    )?;
    let r#type = match reader.required_string("type")?.as_str() {
        "MANAGED" => ComputeEnvironmentType::Managed,
        "UNMANAGED" => ComputeEnvironmentType::Unmanaged,
        other => {
            return Err(ImportError::field(
                reader.field_path("type"),
                format!("expected MANAGED or UNMANAGED, got {other:?}"),
            ))
        }
    };
    let state = parse_state(reader)?;
    let compute_resources = match reader.object("computeResources")? {
        Some(resources) => {
            let converted = compute_resources(&resources, options, notes)?;
            resources.finish(notes);
            Some(converted)
        }
        None => None,
    };
    if r#type == ComputeEnvironmentType::Unmanaged {
        notes.refuse(
            reader.field_path("type"),
            "an UNMANAGED compute environment in Barge picks its nodes by spec.nodeSelector, which no AWS field gives (the API server refuses one without it); write it as a Barge ComputeEnvironment with the labels of its nodes",
        );
    }
    reader.not_imported("serviceRole", ROLE_NOTE, notes);
    reader.not_imported(
        "unmanagedvCpus",
        "Barge counts the vCPUs of the nodes an UNMANAGED environment selects",
        notes,
    );
    reader.not_imported(
        "eksConfiguration",
        "Barge runs in the cluster it manages",
        notes,
    );
    reader.not_imported("context", "AWS-specific", notes);
    reader.not_imported(
        "updatePolicy",
        "node replacement belongs to the node provider",
        notes,
    );
    note_resource_tags(reader, notes);
    let spec = ComputeEnvironmentSpec {
        r#type,
        state,
        compute_resources,
        node_selector: None,
        gpu_resource_name: None,
        binding_mode: None,
    };
    let mut object = ComputeEnvironment::new(&name, spec);
    object.metadata = metadata(name, None);
    Ok(BargeObject::ComputeEnvironment(object))
}

fn compute_resources(
    reader: &ObjectReader<'_>,
    options: &ImportOptions,
    notes: &mut Notes,
) -> Result<ComputeResources, ImportError> {
    let r#type = match reader.required_string("type")?.as_str() {
        "EC2" => ComputeResourceType::Ec2,
        "SPOT" => ComputeResourceType::Spot,
        fargate @ ("FARGATE" | "FARGATE_SPOT") => {
            return Err(ImportError::field(
                reader.field_path("type"),
                format!("{fargate} compute environments cannot be imported: Barge runs jobs as pods on Kubernetes nodes (use EC2 or SPOT)"),
            ))
        }
        other => return Err(ImportError::field(reader.field_path("type"), format!("expected EC2 or SPOT, got {other:?}"))),
    };
    let minv_cpus = reader.int("minvCpus")?.unwrap_or(0);
    let maxv_cpus = reader.required_int("maxvCpus")?;
    let desiredv_cpus = reader.int("desiredvCpus")?;
    let instance_types = reader.string_list("instanceTypes")?;
    let allocation_strategy = match reader.string("allocationStrategy")?.as_deref() {
        None => None,
        Some("BEST_FIT") => Some(AllocationStrategy::BestFit),
        Some("BEST_FIT_PROGRESSIVE") => Some(AllocationStrategy::BestFitProgressive),
        Some("SPOT_CAPACITY_OPTIMIZED") => Some(AllocationStrategy::SpotCapacityOptimized),
        Some("SPOT_PRICE_CAPACITY_OPTIMIZED") => {
            Some(AllocationStrategy::SpotPriceCapacityOptimized)
        }
        Some(other) => {
            return Err(ImportError::field(
                reader.field_path("allocationStrategy"),
                format!("unknown allocation strategy {other:?}"),
            ))
        }
    };
    let bid_percentage = reader.int("bidPercentage")?;
    let tags = node_label_tags(reader, notes)?;
    for key in ["subnets", "securityGroupIds", "placementGroup"] {
        reader.not_imported(key, NETWORK_NOTE, notes);
    }
    for key in [
        "ec2KeyPair",
        "imageId",
        "launchTemplate",
        "ec2Configuration",
    ] {
        reader.not_imported(key, INSTANCE_NOTE, notes);
    }
    for key in ["instanceRole", "spotIamFleetRole"] {
        reader.not_imported(key, ROLE_NOTE, notes);
    }
    reader.not_imported("updateToLatestImageVersion", INSTANCE_NOTE, notes);
    let provider = match &options.karpenter_node_class {
        _ if !options.cluster_api_machine_deployments.is_empty() => {
            let names: Vec<String> = options
                .cluster_api_machine_deployments
                .iter()
                .map(|d| format!("{}/{}", d.namespace, d.name))
                .collect();
            notes.add(
                reader.field_path("provider"),
                format!("set to the clusterAPI provider: Barge sets replicas of MachineDeployment(s) {} (their machines' types are what it adds; instanceTypes and tags do not apply to them)", names.join(", ")),
            );
            NodeProvider {
                cluster_api: Some(ClusterApiProvider {
                    machine_deployments: options.cluster_api_machine_deployments.clone(),
                }),
                ..NodeProvider::default()
            }
        }
        Some(node_class) => {
            notes.add(
                reader.field_path("provider"),
                format!("set to the karpenter provider: Barge owns a karpenter.sh/v1 NodePool using {} {:?} (group {})", node_class.kind, node_class.name, node_class.group),
            );
            if minv_cpus > 0 || desiredv_cpus.is_some_and(|d| d > 0) {
                notes.add(
                    reader.path(),
                    "minvCpus and desiredvCpus are kept but Karpenter keeps no idle nodes: nodes are launched for pending jobs up to maxvCpus",
                );
            }
            NodeProvider {
                karpenter: Some(KarpenterProvider {
                    node_class_ref: node_class.clone(),
                    requirements: Vec::new(),
                }),
                ..NodeProvider::default()
            }
        }
        None => {
            notes.add(
                reader.field_path("provider"),
                "set to the simulated provider (Barge creates Node objects itself); for real nodes use provider.karpenter (a NodeClass) or provider.clusterAPI (MachineDeployments)",
            );
            NodeProvider {
                simulated: Some(SimulatedProvider::default()),
                karpenter: None,
                cluster_api: None,
            }
        }
    };
    Ok(ComputeResources {
        r#type,
        minv_cpus,
        maxv_cpus,
        desiredv_cpus,
        instance_types,
        allocation_strategy,
        bid_percentage,
        tags,
        provider,
        scale_down_delay_seconds: None,
    })
}

/// `computeResources.tags` become node labels: tags that are not valid labels are reported.
fn node_label_tags(
    reader: &ObjectReader<'_>,
    notes: &mut Notes,
) -> Result<BTreeMap<String, String>, ImportError> {
    let mut labels = BTreeMap::new();
    for (key, value) in reader.string_map("tags")? {
        let path = format!("{}.{key}", reader.field_path("tags"));
        if !is_label_key(&key) || key.starts_with(RESERVED_LABEL_PREFIX) {
            notes.add(path, format!("not imported: tags become node labels and {key:?} is not a label key Barge may use"));
        } else if !is_label_value(&value) {
            notes.add(
                path,
                format!("not imported ({value:?}): tags become node labels and a label value has at most 63 letters, digits, '-', '_' or '.'"),
            );
        } else {
            labels.insert(key, value);
        }
    }
    Ok(labels)
}
