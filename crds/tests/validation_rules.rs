//! Every validation rule of the CRDs, the accepted and the refused side, evaluated through the
//! generated schemas by the simulated API server's validator (structural validation + CEL) — the
//! rules are never re-implemented here.
//!
//! Each case starts from a small valid object of its kind, applies a JSON merge patch, and
//! expects acceptance or a refusal whose errors contain a given substring. Transition cases
//! (immutability) patch an `old` object first and then patch the update on top of it. A final
//! check makes sure that every CEL rule message of every CRD is produced by some refused case.

mod support;

use std::collections::BTreeSet;

use barge_crds::crdgen::crd_schema;
use serde_json::Value;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Ce,
    Jq,
    Sp,
    Jd,
    Job,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ce => "ComputeEnvironment",
            Kind::Jq => "JobQueue",
            Kind::Sp => "SchedulingPolicy",
            Kind::Jd => "JobDefinition",
            Kind::Job => "Job",
        }
    }

    fn base(self) -> &'static str {
        match self {
            Kind::Ce => {
                r#"{apiVersion: batch.barge.dev/v1alpha1, kind: ComputeEnvironment, metadata: {name: ce},
                    spec: {type: MANAGED, computeResources: {type: EC2, minvCpus: 0, maxvCpus: 128, provider: {simulated: {}}}}}"#
            }
            Kind::Jq => {
                r#"{apiVersion: batch.barge.dev/v1alpha1, kind: JobQueue, metadata: {name: q},
                    spec: {priority: 1, computeEnvironmentOrder: [{order: 1, computeEnvironment: ce}]}}"#
            }
            Kind::Sp => {
                r#"{apiVersion: batch.barge.dev/v1alpha1, kind: SchedulingPolicy, metadata: {name: sp},
                    spec: {fairsharePolicy: {shareDecaySeconds: 3600, computeReservation: 10,
                           shareDistribution: [{shareIdentifier: a, weightFactor: 1}]}}}"#
            }
            Kind::Jd => {
                r#"{apiVersion: batch.barge.dev/v1alpha1, kind: JobDefinition, metadata: {name: d, namespace: default},
                    spec: {type: container, containerProperties: {image: busybox,
                           resourceRequirements: [{type: VCPU, value: "1"}, {type: MEMORY, value: "512"}]}}}"#
            }
            Kind::Job => {
                r#"{apiVersion: batch.barge.dev/v1alpha1, kind: Job, metadata: {name: j, namespace: default},
                    spec: {jobQueue: q, jobDefinition: d}}"#
            }
        }
    }
}

#[derive(Debug)]
enum Expect {
    Accept,
    /// Refused with an error containing this text.
    Refuse(&'static str),
}
use Expect::{Accept, Refuse};

struct Case {
    name: String,
    kind: Kind,
    /// Merge patch applied to the base (or, with `old`, to the old object).
    patch: String,
    /// For updates: merge patch giving the old object from the base.
    old: Option<String>,
    expect: Expect,
}

fn case(name: &str, kind: Kind, patch: &str, expect: Expect) -> Case {
    Case {
        name: name.to_string(),
        kind,
        patch: patch.to_string(),
        old: None,
        expect,
    }
}

fn update(name: &str, kind: Kind, old: &str, patch: &str, expect: Expect) -> Case {
    Case {
        name: name.to_string(),
        kind,
        patch: patch.to_string(),
        old: Some(old.to_string()),
        expect,
    }
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("test YAML {text:?} does not parse: {e}"))
}

fn merged(base: &Value, patch: &str) -> Value {
    let mut doc = base.clone();
    json_patch::merge(&mut doc, &yaml(patch));
    doc
}

const ARRAY_JOB: &str = "arrayProperties: {size: 10}";

fn compute_environment_cases() -> Vec<Case> {
    use Kind::Ce;
    vec![
        case("managed CE accepted", Ce, "{}", Accept),
        case("63-character name accepted", Ce, &format!("metadata: {{name: {}}}", "a".repeat(63)), Accept),
        case("64-character name refused", Ce, &format!("metadata: {{name: {}}}", "a".repeat(64)), Refuse("a ComputeEnvironment name must be at most 63 characters")),
        case("managed CE needs computeResources", Ce, "spec: {computeResources: null}", Refuse("a MANAGED compute environment needs computeResources")),
        case("managed CE refuses nodeSelector", Ce, "spec: {nodeSelector: {pool: batch}}", Refuse("nodeSelector is for UNMANAGED compute environments")),
        case("unmanaged CE with nodeSelector accepted", Ce, "spec: {type: UNMANAGED, computeResources: null, nodeSelector: {pool: batch}}", Accept),
        case("unmanaged CE needs nodeSelector", Ce, "spec: {type: UNMANAGED, computeResources: null}", Refuse("an UNMANAGED compute environment needs a nodeSelector")),
        case("unmanaged CE refuses computeResources", Ce, "spec: {type: UNMANAGED, nodeSelector: {pool: batch}}", Refuse("computeResources is for MANAGED compute environments")),
        case("nodeSelector may not be empty", Ce, "spec: {type: UNMANAGED, computeResources: null, nodeSelector: {}}", Refuse("spec.nodeSelector in body should have at least 1 properties")),
        case("nodeSelector values must be label values", Ce, "spec: {type: UNMANAGED, computeResources: null, nodeSelector: {pool: 'big batch'}}", Refuse("nodeSelector entries become Kubernetes labels")),
        case("type must be MANAGED or UNMANAGED", Ce, "spec: {type: SOMETIMES}", Refuse("Unsupported value: \"SOMETIMES\"")),
        case("state must be ENABLED or DISABLED", Ce, "spec: {state: PAUSED}", Refuse("Unsupported value: \"PAUSED\"")),
        case("state DISABLED accepted", Ce, "spec: {state: DISABLED}", Accept),
        case("FARGATE refused", Ce, "spec: {computeResources: {type: FARGATE}}", Refuse("FARGATE and FARGATE_SPOT compute environments are not supported")),
        case("FARGATE_SPOT refused", Ce, "spec: {computeResources: {type: FARGATE_SPOT}}", Refuse("FARGATE and FARGATE_SPOT compute environments are not supported")),
        case("SPOT accepted", Ce, "spec: {computeResources: {type: SPOT}}", Accept),
        case("maxvCpus required", Ce, "spec: {computeResources: {maxvCpus: null}}", Refuse("spec.computeResources.maxvCpus: Required value")),
        case("minvCpus not negative", Ce, "spec: {computeResources: {minvCpus: -1}}", Refuse("spec.computeResources.minvCpus in body should be greater than or equal to 0")),
        case("minvCpus equal to maxvCpus accepted", Ce, "spec: {computeResources: {minvCpus: 128}}", Accept),
        case("minvCpus above maxvCpus refused", Ce, "spec: {computeResources: {minvCpus: 10, maxvCpus: 5}}", Refuse("minvCpus must not exceed maxvCpus")),
        case("desiredvCpus within bounds accepted", Ce, "spec: {computeResources: {minvCpus: 4, desiredvCpus: 48}}", Accept),
        case("desiredvCpus above maxvCpus refused", Ce, "spec: {computeResources: {desiredvCpus: 200}}", Refuse("desiredvCpus must lie between minvCpus and maxvCpus")),
        case("desiredvCpus below minvCpus refused", Ce, "spec: {computeResources: {minvCpus: 8, desiredvCpus: 4}}", Refuse("desiredvCpus must lie between minvCpus and maxvCpus")),
        case("vCPUs of 1,000,000 accepted", Ce, "spec: {computeResources: {minvCpus: 1000000, maxvCpus: 1000000, desiredvCpus: 1000000}}", Accept),
        case("maxvCpus above 1,000,000 refused", Ce, "spec: {computeResources: {maxvCpus: 1000001}}", Refuse("spec.computeResources.maxvCpus in body should be less than or equal to 1000000")),
        case("minvCpus above 1,000,000 refused", Ce, "spec: {computeResources: {minvCpus: 1000001, maxvCpus: 1000001}}", Refuse("spec.computeResources.minvCpus in body should be less than or equal to 1000000")),
        case("desiredvCpus above 1,000,000 refused", Ce, "spec: {computeResources: {maxvCpus: 1000001, desiredvCpus: 1000001}}", Refuse("spec.computeResources.desiredvCpus in body should be less than or equal to 1000000")),
        case("spot strategy on SPOT accepted", Ce, "spec: {computeResources: {type: SPOT, allocationStrategy: SPOT_PRICE_CAPACITY_OPTIMIZED}}", Accept),
        case("spot strategy on EC2 refused", Ce, "spec: {computeResources: {allocationStrategy: SPOT_CAPACITY_OPTIMIZED}}", Refuse("SPOT_CAPACITY_OPTIMIZED and SPOT_PRICE_CAPACITY_OPTIMIZED are for SPOT")),
        case("BEST_FIT on EC2 accepted", Ce, "spec: {computeResources: {allocationStrategy: BEST_FIT}}", Accept),
        case("unknown allocation strategy refused", Ce, "spec: {computeResources: {allocationStrategy: CHEAPEST}}", Refuse("Unsupported value: \"CHEAPEST\"")),
        case("bidPercentage on SPOT accepted", Ce, "spec: {computeResources: {type: SPOT, bidPercentage: 20}}", Accept),
        case("bidPercentage on EC2 refused", Ce, "spec: {computeResources: {bidPercentage: 20}}", Refuse("bidPercentage applies to SPOT compute resources only")),
        case("bidPercentage above 100 refused", Ce, "spec: {computeResources: {type: SPOT, bidPercentage: 101}}", Refuse("spec.computeResources.bidPercentage in body should be less than or equal to 100")),
        case("provider with none refused", Ce, "spec: {computeResources: {provider: {simulated: null}}}", Refuse("provider must name exactly one of simulated, karpenter or clusterAPI")),
        case("provider with two refused", Ce, "spec: {computeResources: {provider: {clusterAPI: {machineDeployments: [{name: md, namespace: capi}]}}}}", Refuse("provider must name exactly one of simulated, karpenter or clusterAPI")),
        case("clusterAPI provider accepted", Ce, "spec: {computeResources: {provider: {simulated: null, clusterAPI: {machineDeployments: [{name: md, namespace: capi, instanceType: m5.large}]}}}}", Accept),
        case("clusterAPI provider needs a machine deployment", Ce, "spec: {computeResources: {provider: {simulated: null, clusterAPI: {machineDeployments: []}}}}", Refuse("spec.computeResources.provider.clusterAPI.machineDeployments in body should have at least 1 items")),
        case("karpenter provider accepted", Ce, "spec: {computeResources: {provider: {simulated: null, karpenter: {nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}}}}}", Accept),
        case("karpenter with KubeScheduler binding accepted", Ce, "spec: {bindingMode: KubeScheduler, computeResources: {provider: {simulated: null, karpenter: {nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}}}}}", Accept),
        case("karpenter with Barge binding refused", Ce, "spec: {bindingMode: Barge, computeResources: {provider: {simulated: null, karpenter: {nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}}}}}", Refuse("the karpenter provider needs bindingMode KubeScheduler")),
        case("karpenter nodeClassRef needs a name", Ce, "spec: {computeResources: {provider: {simulated: null, karpenter: {nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass}}}}}", Refuse("spec.computeResources.provider.karpenter.nodeClassRef.name: Required value")),
        case("simulated catalog accepted", Ce, "spec: {computeResources: {provider: {simulated: {catalog: [{name: sim.large, vCpus: 2, memoryMiB: 8192, gpus: 1, price: '0.17'}]}}}}", Accept),
        case("simulated catalog price must be decimal", Ce, "spec: {computeResources: {provider: {simulated: {catalog: [{name: sim.large, vCpus: 2, memoryMiB: 8192, price: 'cheap'}]}}}}", Refuse("price must be a decimal number of dollars per hour")),
        case("simulated catalog vCpus positive", Ce, "spec: {computeResources: {provider: {simulated: {catalog: [{name: sim.large, vCpus: 0, memoryMiB: 8192}]}}}}", Refuse("vCpus in body should be greater than or equal to 1")),
        case("label tags accepted", Ce, "spec: {computeResources: {tags: {team: batch, example.com/tier: gold}}}", Accept),
        case("tag value with spaces refused", Ce, "spec: {computeResources: {tags: {Name: 'Batch Instance - C4OnDemand'}}}", Refuse("computeResources.tags become Kubernetes labels")),
        case("tag key with spaces refused", Ce, "spec: {computeResources: {tags: {'Cost Center': x}}}", Refuse("computeResources.tags become Kubernetes labels")),
        case("tag value longer than a label refused", Ce, &format!("spec: {{computeResources: {{tags: {{team: {}}}}}}}", "a".repeat(64)), Refuse("may not be longer than 63")),
        case("tags under Barge's prefix refused", Ce, "spec: {computeResources: {tags: {batch.barge.dev/job-name: x}}}", Refuse("computeResources.tags may not use the batch.barge.dev/ prefix")),
        case("bindingMode must be known", Ce, "spec: {bindingMode: Kubelet}", Refuse("Unsupported value: \"Kubelet\"")),
        update("type cannot change", Ce, "{}", "spec: {type: UNMANAGED, computeResources: null, nodeSelector: {pool: batch}}", Refuse("type cannot be changed")),
        update("maxvCpus may change", Ce, "{}", "spec: {computeResources: {maxvCpus: 256}}", Accept),
    ]
}

fn job_queue_cases() -> Vec<Case> {
    use Kind::Jq;
    vec![
        case("queue accepted", Jq, "{}", Accept),
        case("63-character name accepted", Jq, &format!("metadata: {{name: {}}}", "a".repeat(63)), Accept),
        case("64-character name refused", Jq, &format!("metadata: {{name: {}}}", "a".repeat(64)), Refuse("a JobQueue name must be at most 63 characters")),
        case("queue needs a compute environment", Jq, "spec: {computeEnvironmentOrder: []}", Refuse("spec.computeEnvironmentOrder in body should have at least 1 items")),
        case("queue with three compute environments accepted", Jq, "spec: {computeEnvironmentOrder: [{order: 1, computeEnvironment: a}, {order: 2, computeEnvironment: b}, {order: 3, computeEnvironment: c}]}", Accept),
        case("queue with four compute environments refused", Jq, "spec: {computeEnvironmentOrder: [{order: 1, computeEnvironment: a}, {order: 2, computeEnvironment: b}, {order: 3, computeEnvironment: c}, {order: 4, computeEnvironment: d}]}", Refuse("spec.computeEnvironmentOrder: Too many: 4: must have at most 3 items")),
        case("duplicate orders refused", Jq, "spec: {computeEnvironmentOrder: [{order: 1, computeEnvironment: a}, {order: 1, computeEnvironment: b}]}", Refuse("computeEnvironmentOrder entries must have distinct order values")),
        case("duplicate compute environments refused", Jq, "spec: {computeEnvironmentOrder: [{order: 1, computeEnvironment: a}, {order: 2, computeEnvironment: a}]}", Refuse("a compute environment may appear only once in computeEnvironmentOrder")),
        case("compute environment ARN refused", Jq, "spec: {computeEnvironmentOrder: [{order: 1, computeEnvironment: 'arn:aws:batch:us-east-1:012345678910:compute-environment/C4OnDemand'}]}", Refuse("computeEnvironment must be the name of a Kubernetes object")),
        case("order not negative", Jq, "spec: {computeEnvironmentOrder: [{order: -1, computeEnvironment: a}]}", Refuse("order in body should be greater than or equal to 0")),
        case("priority 1000 accepted", Jq, "spec: {priority: 1000}", Accept),
        case("priority above 1000 refused", Jq, "spec: {priority: 1001}", Refuse("spec.priority in body should be less than or equal to 1000")),
        case("negative priority refused", Jq, "spec: {priority: -1}", Refuse("spec.priority in body should be greater than or equal to 0")),
        case("priority required", Jq, "spec: {priority: null}", Refuse("spec.priority: Required value")),
        case("scheduling policy name accepted", Jq, "spec: {schedulingPolicyName: fair-share}", Accept),
        case("scheduling policy ARN refused", Jq, "spec: {schedulingPolicyName: 'arn:aws:batch:us-east-1:012345678910:scheduling-policy/Fair'}", Refuse("schedulingPolicyName must be the name of a Kubernetes object")),
        case("time limit action accepted", Jq, "spec: {jobStateTimeLimitActions: [{reason: 'CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY', state: RUNNABLE, maxTimeSeconds: 600, action: CANCEL}]}", Accept),
        case("time limit of 24 hours accepted", Jq, "spec: {jobStateTimeLimitActions: [{reason: r, state: RUNNABLE, maxTimeSeconds: 86400, action: CANCEL}]}", Accept),
        case("time limit under 10 minutes refused", Jq, "spec: {jobStateTimeLimitActions: [{reason: r, state: RUNNABLE, maxTimeSeconds: 599, action: CANCEL}]}", Refuse("maxTimeSeconds in body should be greater than or equal to 600")),
        case("time limit over 24 hours refused", Jq, "spec: {jobStateTimeLimitActions: [{reason: r, state: RUNNABLE, maxTimeSeconds: 86401, action: CANCEL}]}", Refuse("maxTimeSeconds in body should be less than or equal to 86400")),
        case("time limit only for RUNNABLE", Jq, "spec: {jobStateTimeLimitActions: [{reason: r, state: RUNNING, maxTimeSeconds: 600, action: CANCEL}]}", Refuse("Unsupported value: \"RUNNING\"")),
        case("time limit action only CANCEL", Jq, "spec: {jobStateTimeLimitActions: [{reason: r, state: RUNNABLE, maxTimeSeconds: 600, action: TERMINATE}]}", Refuse("Unsupported value: \"TERMINATE\"")),
        case("queueing strategy StrictFIFO accepted", Jq, "spec: {queueingStrategy: StrictFIFO}", Accept),
        case("unknown queueing strategy refused", Jq, "spec: {queueingStrategy: LIFO}", Refuse("Unsupported value: \"LIFO\"")),
        case("namespace selector accepted", Jq, "spec: {namespaceSelector: {matchLabels: {team: a}}}", Accept),
    ]
}

fn scheduling_policy_cases() -> Vec<Case> {
    use Kind::Sp;
    vec![
        case("policy accepted", Sp, "{}", Accept),
        case("computeReservation 99 accepted", Sp, "spec: {fairsharePolicy: {computeReservation: 99}}", Accept),
        case("computeReservation 100 refused", Sp, "spec: {fairsharePolicy: {computeReservation: 100}}", Refuse("spec.fairsharePolicy.computeReservation in body should be less than or equal to 99")),
        case("negative computeReservation refused", Sp, "spec: {fairsharePolicy: {computeReservation: -1}}", Refuse("spec.fairsharePolicy.computeReservation in body should be greater than or equal to 0")),
        case("shareDecaySeconds of a week accepted", Sp, "spec: {fairsharePolicy: {shareDecaySeconds: 604800}}", Accept),
        case("shareDecaySeconds over a week refused", Sp, "spec: {fairsharePolicy: {shareDecaySeconds: 604801}}", Refuse("spec.fairsharePolicy.shareDecaySeconds in body should be less than or equal to 604800")),
        case("negative shareDecaySeconds refused", Sp, "spec: {fairsharePolicy: {shareDecaySeconds: -1}}", Refuse("spec.fairsharePolicy.shareDecaySeconds in body should be greater than or equal to 0")),
        case("weightFactor 0.125 accepted", Sp, "spec: {fairsharePolicy: {shareDistribution: [{shareIdentifier: a, weightFactor: 0.125}]}}", Accept),
        case("weightFactor at the bounds accepted", Sp, "spec: {fairsharePolicy: {shareDistribution: [{shareIdentifier: a, weightFactor: 0.0001}, {shareIdentifier: b, weightFactor: 999.9999}]}}", Accept),
        // An integer value is compared with the float bounds truncated (kube-openapi's
        // MinimumNativeType), so 0 passes `minimum: 0.0001` structurally: the CEL rule refuses it.
        case("weightFactor 0 refused", Sp, "spec: {fairsharePolicy: {shareDistribution: [{shareIdentifier: a, weightFactor: 0}]}}", Refuse("weightFactor must be between 0.0001 and 999.9999")),
        case("weightFactor 0.00001 refused", Sp, "spec: {fairsharePolicy: {shareDistribution: [{shareIdentifier: a, weightFactor: 0.00001}]}}", Refuse("weightFactor in body should be greater than or equal to 0.0001")),
        case("weightFactor 1000 refused", Sp, "spec: {fairsharePolicy: {shareDistribution: [{shareIdentifier: a, weightFactor: 1000}]}}", Refuse("weightFactor must be between 0.0001 and 999.9999")),
        case("weightFactor 999.99995 refused", Sp, "spec: {fairsharePolicy: {shareDistribution: [{shareIdentifier: a, weightFactor: 999.99995}]}}", Refuse("weightFactor in body should be less than or equal to 999.9999")),
        case("integer weightFactor accepted", Sp, "spec: {fairsharePolicy: {shareDistribution: [{shareIdentifier: a, weightFactor: 2}]}}", Accept),
        case("prefix identifier accepted", Sp, "spec: {fairsharePolicy: {shareDistribution: [{shareIdentifier: 'teamA*'}, {shareIdentifier: teamB_1}]}}", Accept),
        case("identifier with a space refused", Sp, "spec: {fairsharePolicy: {shareDistribution: [{shareIdentifier: 'team a'}]}}", Refuse("shareIdentifier may contain only letters, digits, '-' and '_', optionally ending with '*'")),
        case("identifier with an inner star refused", Sp, "spec: {fairsharePolicy: {shareDistribution: [{shareIdentifier: 'a*b'}]}}", Refuse("shareIdentifier may contain only letters, digits, '-' and '_', optionally ending with '*'")),
        case("duplicate identifiers refused", Sp, "spec: {fairsharePolicy: {shareDistribution: [{shareIdentifier: a}, {shareIdentifier: a, weightFactor: 2}]}}", Refuse("each shareIdentifier may appear only once in shareDistribution")),
        case("overlapping prefix refused", Sp, "spec: {fairsharePolicy: {shareDistribution: [{shareIdentifier: 'UserA*'}, {shareIdentifier: UserA-1}]}}", Refuse("shareDistribution entries may not overlap")),
        case("overlapping prefixes refused", Sp, "spec: {fairsharePolicy: {shareDistribution: [{shareIdentifier: 'User*'}, {shareIdentifier: 'UserA*'}]}}", Refuse("shareDistribution entries may not overlap")),
        case("distinct prefixes accepted", Sp, "spec: {fairsharePolicy: {shareDistribution: [{shareIdentifier: 'UserA*'}, {shareIdentifier: 'UserB*'}, {shareIdentifier: Ops}]}}", Accept),
        case("at most 100 share entries", Sp, &format!("spec: {{fairsharePolicy: {{shareDistribution: [{}]}}}}", (0..101).map(|i| format!("{{shareIdentifier: s{i}}}")).collect::<Vec<_>>().join(", ")), Refuse("spec.fairsharePolicy.shareDistribution: Too many: 101: must have at most 100 items")),
    ]
}

const MULTINODE: &str = "spec: {type: multinode, containerProperties: null, nodeProperties: {numNodes: 6, mainNode: 0, nodeRangeProperties: [{targetNodes: '0:', container: {image: mpi}}]}}";

fn multinode(node_properties: &str) -> String {
    format!(
        "spec: {{type: multinode, containerProperties: null, nodeProperties: {node_properties}}}"
    )
}

fn container(properties: &str) -> String {
    format!("spec: {{containerProperties: {properties}}}")
}

fn retry(strategy: &str) -> String {
    format!("spec: {{retryStrategy: {strategy}}}")
}

fn job_definition_cases() -> Vec<Case> {
    use Kind::Jd;
    vec![
        case("container definition accepted", Jd, "{}", Accept),
        case("63-character name accepted", Jd, &format!("metadata: {{name: {}}}", "a".repeat(63)), Accept),
        case("64-character name refused", Jd, &format!("metadata: {{name: {}}}", "a".repeat(64)), Refuse("a JobDefinition name must be at most 63 characters")),
        case("container definition needs a container", Jd, "spec: {containerProperties: null}", Refuse("a container job definition needs exactly one of containerProperties or podProperties")),
        case("podProperties definition accepted", Jd, "spec: {containerProperties: null, podProperties: {containers: [{name: main, image: busybox, env: [{name: GREETING, value: hi}]}]}}", Accept),
        case("containerProperties and podProperties refused together", Jd, "spec: {podProperties: {containers: [{name: main, image: busybox}]}}", Refuse("a container job definition needs exactly one of containerProperties or podProperties")),
        case("podProperties needs a container", Jd, "spec: {containerProperties: null, podProperties: {containers: []}}", Refuse("spec.podProperties.containers in body should have at least 1 items")),
        case("podProperties env AWS_BATCH_ refused", Jd, "spec: {containerProperties: null, podProperties: {containers: [{name: main, image: busybox, env: [{name: AWS_BATCH_JOB_ID, value: x}]}]}}", Refuse("environment variable names starting with AWS_BATCH are reserved")),
        case("podProperties init container env AWS_BATCH_ refused", Jd, "spec: {containerProperties: null, podProperties: {containers: [{name: main, image: busybox}], initContainers: [{name: init, image: busybox, env: [{name: AWS_BATCH_CE_NAME}]}]}}", Refuse("environment variable names starting with AWS_BATCH are reserved")),
        case("container definition refuses nodeProperties", Jd, "spec: {nodeProperties: {numNodes: 2, mainNode: 0, nodeRangeProperties: [{targetNodes: '0:', container: {image: mpi}}]}}", Refuse("nodeProperties is for multinode job definitions")),
        case("type must be container or multinode", Jd, "spec: {type: array}", Refuse("Unsupported value: \"array\"")),
        case("multinode definition accepted", Jd, MULTINODE, Accept),
        case("multinode definition needs nodeProperties", Jd, "spec: {type: multinode, containerProperties: null}", Refuse("a multinode job definition needs nodeProperties")),
        case("multinode definition refuses containerProperties", Jd, "spec: {type: multinode, nodeProperties: {numNodes: 2, mainNode: 0, nodeRangeProperties: [{targetNodes: '0:', container: {image: mpi}}]}}", Refuse("a multinode job definition describes its containers in nodeProperties.nodeRangeProperties")),
        case("mainNode below numNodes accepted", Jd, &multinode("{numNodes: 6, mainNode: 5, nodeRangeProperties: [{targetNodes: '0:', container: {image: mpi}}]}"), Accept),
        case("mainNode equal to numNodes refused", Jd, &multinode("{numNodes: 6, mainNode: 6, nodeRangeProperties: [{targetNodes: '0:', container: {image: mpi}}]}"), Refuse("mainNode must be a node index below numNodes")),
        case("numNodes at least 1", Jd, &multinode("{numNodes: 0, mainNode: 0, nodeRangeProperties: [{targetNodes: '0:', container: {image: mpi}}]}"), Refuse("spec.nodeProperties.numNodes in body should be greater than or equal to 1")),
        case("numNodes of 1000 accepted", Jd, &multinode("{numNodes: 1000, mainNode: 999, nodeRangeProperties: [{targetNodes: '0:', container: {image: mpi}}]}"), Accept),
        case("numNodes at most 1000", Jd, &multinode("{numNodes: 1001, mainNode: 0, nodeRangeProperties: [{targetNodes: '0:', container: {image: mpi}}]}"), Refuse("spec.nodeProperties.numNodes in body should be less than or equal to 1000")),
        case("five node ranges accepted", Jd, &multinode(&format!("{{numNodes: 6, mainNode: 0, nodeRangeProperties: [{}]}}", (0..5).map(|i| format!("{{targetNodes: '{i}', container: {{image: mpi}}}}")).collect::<Vec<_>>().join(", "))), Accept),
        case("six node ranges refused", Jd, &multinode(&format!("{{numNodes: 6, mainNode: 0, nodeRangeProperties: [{}]}}", (0..6).map(|i| format!("{{targetNodes: '{i}', container: {{image: mpi}}}}")).collect::<Vec<_>>().join(", "))), Refuse("spec.nodeProperties.nodeRangeProperties: Too many: 6: must have at most 5 items")),
        case("node range forms accepted", Jd, &multinode("{numNodes: 6, mainNode: 0, nodeRangeProperties: [{targetNodes: '0', container: {image: m}}, {targetNodes: '1:3', container: {image: w}}, {targetNodes: '4:', container: {image: w}}, {targetNodes: ':5', container: {image: w}}]}"), Accept),
        case("node range with a dash refused", Jd, &multinode("{numNodes: 6, mainNode: 0, nodeRangeProperties: [{targetNodes: '0-3', container: {image: mpi}}]}"), Refuse("targetNodes must be a node index or range")),
        case("node range beyond numNodes refused", Jd, &multinode("{numNodes: 6, mainNode: 0, nodeRangeProperties: [{targetNodes: '0:9', container: {image: mpi}}]}"), Refuse("nodeRangeProperties[].targetNodes may only name node indices below numNodes")),
        case("node range a:b with a > b refused", Jd, &multinode("{numNodes: 6, mainNode: 0, nodeRangeProperties: [{targetNodes: '4:2', container: {image: mpi}}]}"), Refuse("a targetNodes range a:b must have a <= b")),
        case("node range container instanceType accepted", Jd, &multinode("{numNodes: 2, mainNode: 0, nodeRangeProperties: [{targetNodes: '0:', container: {image: mpi, instanceType: c4.xlarge}}]}"), Accept),
        case("node range container env AWS_BATCH_ refused", Jd, &multinode("{numNodes: 2, mainNode: 0, nodeRangeProperties: [{targetNodes: '0:', container: {image: mpi, environment: [{name: AWS_BATCH_JOB_NUM_NODES, value: '3'}]}}]}"), Refuse("environment variable names starting with AWS_BATCH are reserved")),
        case("instanceType refused on a single-node container", Jd, &container("{image: busybox, instanceType: c4.xlarge}"), Refuse("containerProperties.instanceType applies only to the node ranges of multinode jobs")),
        case("image required", Jd, &container("{image: null, command: [echo]}"), Refuse("spec.containerProperties.image: Required value")),
        case("environment accepted", Jd, &container("{image: busybox, environment: [{name: BATCH_FILE_TYPE, value: script}]}"), Accept),
        case("environment AWS_BATCH_ refused", Jd, &container("{image: busybox, environment: [{name: AWS_BATCH_JOB_ATTEMPT, value: '9'}]}"), Refuse("environment variable names starting with AWS_BATCH are reserved")),
        case("environment AWS_BATCH without underscore refused", Jd, &container("{image: busybox, environment: [{name: AWS_BATCHMODE, value: '9'}]}"), Refuse("environment variable names starting with AWS_BATCH are reserved")),
        case("environment with AWS_BATCH inside accepted", Jd, &container("{image: busybox, environment: [{name: MY_AWS_BATCH_JOB, value: '9'}, {name: AWS_BATC, value: '1'}]}"), Accept),
        case("podProperties env AWS_BATCH without underscore refused", Jd, "spec: {containerProperties: null, podProperties: {containers: [{name: main, image: busybox, env: [{name: AWS_BATCHY, value: x}]}]}}", Refuse("environment variable names starting with AWS_BATCH are reserved")),
        case("duplicate environment names refused", Jd, &container("{image: busybox, environment: [{name: A, value: '1'}, {name: A, value: '2'}]}"), Refuse("Duplicate value")),
        case("secret accepted", Jd, &container("{image: busybox, secrets: [{name: DB_PASSWORD, valueFrom: 'db-creds:password'}]}"), Accept),
        case("secret AWS_BATCH_ name refused", Jd, &container("{image: busybox, secrets: [{name: AWS_BATCH_SECRET, valueFrom: 'db-creds:password'}]}"), Refuse("environment variable names starting with AWS_BATCH are reserved")),
        case("secret ARN refused", Jd, &container("{image: busybox, secrets: [{name: DB_PASSWORD, valueFrom: 'arn:aws:secretsmanager:us-east-1:012345678910:secret:db'}]}"), Refuse("valueFrom must be <secret-name>:<key>")),
        case("resource requirements accepted", Jd, &container("{image: busybox, resourceRequirements: [{type: VCPU, value: '0.5'}, {type: MEMORY, value: '2048'}, {type: GPU, value: '1'}]}"), Accept),
        case("zero VCPU refused", Jd, &container("{image: busybox, resourceRequirements: [{type: VCPU, value: '0'}]}"), Refuse("a VCPU value must be a positive number of vCPUs")),
        case("VCPU that is not a number refused", Jd, &container("{image: busybox, resourceRequirements: [{type: VCPU, value: 'two'}]}"), Refuse("a VCPU value must be a positive number of vCPUs")),
        case("fractional MEMORY refused", Jd, &container("{image: busybox, resourceRequirements: [{type: MEMORY, value: '1.5'}]}"), Refuse("a MEMORY value must be a whole, positive number of MiB")),
        case("negative GPU refused", Jd, &container("{image: busybox, resourceRequirements: [{type: GPU, value: '-1'}]}"), Refuse("a GPU value must be a whole number of GPUs")),
        case("unknown resource type refused", Jd, &container("{image: busybox, resourceRequirements: [{type: DISK, value: '1'}]}"), Refuse("Unsupported value: \"DISK\"")),
        case("duplicate resource types refused", Jd, &container("{image: busybox, resourceRequirements: [{type: VCPU, value: '1'}, {type: VCPU, value: '2'}]}"), Refuse("Duplicate value")),
        case("legacy vcpus and memory accepted", Jd, &container("{image: busybox, resourceRequirements: null, vcpus: 2, memory: 2000}"), Accept),
        case("vcpus with a VCPU requirement refused", Jd, &container("{image: busybox, vcpus: 2, resourceRequirements: [{type: VCPU, value: '1'}, {type: MEMORY, value: '512'}]}"), Refuse("set vCPUs either with vcpus (deprecated) or with a VCPU entry of resourceRequirements, not both")),
        case("memory with a MEMORY requirement refused", Jd, &container("{image: busybox, memory: 2000, resourceRequirements: [{type: MEMORY, value: '512'}]}"), Refuse("set memory either with memory (deprecated) or with a MEMORY entry of resourceRequirements, not both")),
        case("memory below 4 MiB refused", Jd, &container("{image: busybox, memory: 3}"), Refuse("spec.containerProperties.memory in body should be greater than or equal to 4")),
        case("volumes and mount points accepted", Jd, &container("{image: busybox, volumes: [{name: scratch}, {name: data, host: {sourcePath: /data}}, {name: claim, persistentVolumeClaim: {claimName: results}}], mountPoints: [{containerPath: /scratch, sourceVolume: scratch}, {containerPath: /data, sourceVolume: data, readOnly: true}]}"), Accept),
        case("mount point of an unknown volume refused", Jd, &container("{image: busybox, volumes: [{name: scratch}], mountPoints: [{containerPath: /data, sourceVolume: data}]}"), Refuse("every mountPoints[].sourceVolume must name one of the container's volumes")),
        case("mount point without volumes refused", Jd, &container("{image: busybox, mountPoints: [{containerPath: /data, sourceVolume: data}]}"), Refuse("every mountPoints[].sourceVolume must name one of the container's volumes")),
        case("volume with two sources refused", Jd, &container("{image: busybox, volumes: [{name: data, host: {sourcePath: /data}, emptyDir: {}}]}"), Refuse("a volume has at most one source")),
        case("volume name must be a DNS label", Jd, &container("{image: busybox, volumes: [{name: My_Volume}]}"), Refuse("spec.containerProperties.volumes[0].name in body should match")),
        case("volume named like Barge's tmpfs volumes refused", Jd, &container("{image: busybox, volumes: [{name: barge-tmpfs-0}], mountPoints: [{containerPath: /scratch, sourceVolume: barge-tmpfs-0}]}"), Refuse("volume names starting with barge- are reserved")),
        case("volume named like Barge's /dev/shm volume refused", Jd, &container("{image: busybox, volumes: [{name: barge-dev-shm}]}"), Refuse("volume names starting with barge- are reserved")),
        case("node range volume with Barge's prefix refused", Jd, &multinode("{numNodes: 2, mainNode: 0, nodeRangeProperties: [{targetNodes: '0:', container: {image: mpi, volumes: [{name: barge-x}]}}]}"), Refuse("volume names starting with barge- are reserved")),
        case("volume named barge without the dash accepted", Jd, &container("{image: busybox, volumes: [{name: barge}, {name: bargetmp}]}"), Accept),
        case("user nobody accepted", Jd, &container("{image: busybox, user: nobody}"), Accept),
        case("numeric user and group accepted", Jd, &container("{image: busybox, user: '1000:1000'}"), Accept),
        case("user name refused", Jd, &container("{image: busybox, user: batchuser}"), Refuse("user must be a numeric uid (optionally uid:gid), root or nobody")),
        case("serviceAccountName must be a name", Jd, &container("{image: busybox, serviceAccountName: 'arn:aws:iam::012345678910:role/x'}"), Refuse("serviceAccountName must be the name of a Kubernetes object")),
        case("ulimits accepted", Jd, &container("{image: busybox, ulimits: [{name: nofile, softLimit: 1024, hardLimit: 4096}]}"), Accept),
        case("ulimit soft above hard refused", Jd, &container("{image: busybox, ulimits: [{name: nofile, softLimit: 8192, hardLimit: 4096}]}"), Refuse("a ulimit's softLimit must not exceed its hardLimit")),
        case("unknown ulimit refused", Jd, &container("{image: busybox, ulimits: [{name: files, softLimit: 1, hardLimit: 1}]}"), Refuse("Unsupported value: \"files\"")),
        case("linux parameters accepted", Jd, &container("{image: busybox, linuxParameters: {sharedMemorySize: 64, tmpfs: [{containerPath: /tmp, size: 128}]}}"), Accept),
        case("attempts 1 accepted", Jd, &retry("{attempts: 1}"), Accept),
        case("attempts 10 accepted", Jd, &retry("{attempts: 10}"), Accept),
        case("attempts 0 refused", Jd, &retry("{attempts: 0}"), Refuse("spec.retryStrategy.attempts in body should be greater than or equal to 1")),
        case("attempts 11 refused", Jd, &retry("{attempts: 11}"), Refuse("spec.retryStrategy.attempts in body should be less than or equal to 10")),
        case("five evaluateOnExit entries accepted", Jd, &retry(&format!("{{attempts: 3, evaluateOnExit: [{}]}}", (0..5).map(|i| format!("{{onExitCode: '{i}', action: RETRY}}")).collect::<Vec<_>>().join(", "))), Accept),
        case("six evaluateOnExit entries refused", Jd, &retry(&format!("{{attempts: 3, evaluateOnExit: [{}]}}", (0..6).map(|i| format!("{{onExitCode: '{i}', action: RETRY}}")).collect::<Vec<_>>().join(", "))), Refuse("spec.retryStrategy.evaluateOnExit: Too many: 6: must have at most 5 items")),
        case("globs accepted", Jd, &retry("{attempts: 5, evaluateOnExit: [{onStatusReason: 'Host EC2*', action: RETRY}, {onReason: 'CannotPullContainerError:*', action: EXIT}, {onExitCode: '13*', onReason: 'Out of memory.', action: EXIT}, {onReason: '*', action: EXIT}]}"), Accept),
        case("onStatusReason with a star inside refused", Jd, &retry("{evaluateOnExit: [{onStatusReason: 'Host*EC2', action: RETRY}]}"), Refuse("onStatusReason may contain only letters, digits, '.', ':', spaces and tabs")),
        case("onStatusReason with parentheses refused", Jd, &retry("{evaluateOnExit: [{onStatusReason: 'Host EC2 (instance i-1) terminated.', action: RETRY}]}"), Refuse("onStatusReason may contain only letters, digits, '.', ':', spaces and tabs")),
        case("onReason ending with two stars refused", Jd, &retry("{evaluateOnExit: [{onReason: 'OutOfMemory**', action: EXIT}]}"), Refuse("onReason may contain only letters, digits, '.', ':', spaces and tabs")),
        case("onExitCode with letters refused", Jd, &retry("{evaluateOnExit: [{onExitCode: 'abc', action: EXIT}]}"), Refuse("onExitCode may contain only digits, optionally ending with a single '*'")),
        case("empty onExitCode refused", Jd, &retry("{evaluateOnExit: [{onExitCode: '', action: EXIT}]}"), Refuse("onExitCode may contain only digits, optionally ending with a single '*'")),
        case("onExitCode longer than 512 refused", Jd, &retry(&format!("{{evaluateOnExit: [{{onExitCode: '{}', action: EXIT}}]}}", "1".repeat(513))), Refuse("may not be longer than 512")),
        case("action must be RETRY or EXIT", Jd, &retry("{evaluateOnExit: [{onExitCode: '1', action: IGNORE}]}"), Refuse("Unsupported value: \"IGNORE\"")),
        case("action required", Jd, &retry("{evaluateOnExit: [{onExitCode: '1'}]}"), Refuse("spec.retryStrategy.evaluateOnExit[0].action: Required value")),
        case("timeout accepted", Jd, "spec: {timeout: {attemptDurationSeconds: 1800}}", Accept),
        case("timeout of 0 refused", Jd, "spec: {timeout: {attemptDurationSeconds: 0}}", Refuse("spec.timeout.attemptDurationSeconds in body should be greater than or equal to 1")),
        case("schedulingPriority 9999 accepted", Jd, "spec: {schedulingPriority: 9999}", Accept),
        case("schedulingPriority 10000 refused", Jd, "spec: {schedulingPriority: 10000}", Refuse("spec.schedulingPriority in body should be less than or equal to 9999")),
        case("parameters and tags accepted", Jd, "spec: {parameters: {codec: mp4}, tags: {Name: 'Batch Job - any text'}, propagateTags: true}", Accept),
    ]
}

/// Old and new values of every Job spec field that may not change after creation.
fn immutable_field_changes() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("jobQueue", "q", "other-queue"),
        ("jobDefinition", "d", "d:2"),
        ("arrayProperties", "{size: 10}", "{size: 20}"),
        ("dependsOn", "[{jobName: a}]", "[{jobName: b}]"),
        ("parameters", "{a: '1'}", "{a: '2'}"),
        (
            "containerOverrides",
            "{command: [echo, a]}",
            "{command: [echo, b]}",
        ),
        ("nodeOverrides", "{numNodes: 2}", "{numNodes: 3}"),
        ("retryStrategy", "{attempts: 2}", "{attempts: 3}"),
        (
            "timeout",
            "{attemptDurationSeconds: 60}",
            "{attemptDurationSeconds: 120}",
        ),
        ("shareIdentifier", "teamA", "teamB"),
        ("schedulingPriorityOverride", "1", "2"),
        ("tags", "{a: b}", "{a: c}"),
        ("propagateTags", "true", "false"),
        ("ttlSecondsAfterFinished", "60", "120"),
    ]
}

fn job_cases() -> Vec<Case> {
    use Kind::Job;
    let mut cases = vec![
        case("job accepted", Job, "{}", Accept),
        case("63-character name accepted", Job, &format!("metadata: {{name: {}}}", "a".repeat(63)), Accept),
        case("64-character name refused", Job, &format!("metadata: {{name: {}}}", "a".repeat(64)), Refuse("a Job name must be at most 63 characters")),
        case("name with a dot refused", Job, "metadata: {name: render.v2}", Refuse("a Job name may not contain '.'")),
        case("jobQueue required", Job, "spec: {jobQueue: null}", Refuse("spec.jobQueue: Required value")),
        case("jobQueue ARN refused", Job, "spec: {jobQueue: 'arn:aws:batch:us-east-1:012345678910:job-queue/ProdQueue'}", Refuse("jobQueue must be the name of a Kubernetes object")),
        case("jobDefinition name:revision accepted", Job, "spec: {jobDefinition: 'render:3'}", Accept),
        case("jobDefinition revision 0 refused", Job, "spec: {jobDefinition: 'render:0'}", Refuse("jobDefinition must be the name of a JobDefinition in the job's namespace, optionally followed by :revision")),
        case("jobDefinition with uppercase refused", Job, "spec: {jobDefinition: 'JobB-CPU:1'}", Refuse("jobDefinition must be the name of a JobDefinition")),
        case("jobDefinition ARN refused", Job, "spec: {jobDefinition: 'arn:aws:batch:us-east-1:012345678910:job-definition/render:1'}", Refuse("jobDefinition must be the name of a JobDefinition")),
        case("jobDefinition with two revisions refused", Job, "spec: {jobDefinition: 'render:1:2'}", Refuse("jobDefinition must be the name of a JobDefinition")),
        case("array size 2 accepted", Job, "spec: {arrayProperties: {size: 2}}", Accept),
        case("array size 10000 accepted", Job, "spec: {arrayProperties: {size: 10000}}", Accept),
        case("array size 1 refused", Job, "spec: {arrayProperties: {size: 1}}", Refuse("spec.arrayProperties.size in body should be greater than or equal to 2")),
        case("array size 10001 refused", Job, "spec: {arrayProperties: {size: 10001}}", Refuse("spec.arrayProperties.size in body should be less than or equal to 10000")),
        case("20 dependencies accepted", Job, &format!("spec: {{dependsOn: [{}]}}", (0..20).map(|i| format!("{{jobName: dep{i}}}")).collect::<Vec<_>>().join(", ")), Accept),
        case("21 dependencies refused", Job, &format!("spec: {{dependsOn: [{}]}}", (0..21).map(|i| format!("{{jobName: dep{i}}}")).collect::<Vec<_>>().join(", ")), Refuse("spec.dependsOn: Too many: 21: must have at most 20 items")),
        case("dependency without jobName refused", Job, "spec: {dependsOn: [{type: N_TO_N}], arrayProperties: {size: 10}}", Refuse("a dependsOn entry needs a jobName")),
        case("SEQUENTIAL dependency accepted", Job, "spec: {dependsOn: [{type: SEQUENTIAL}], arrayProperties: {size: 10}}", Accept),
        case("N_TO_N dependency accepted", Job, "spec: {dependsOn: [{jobName: prep, type: N_TO_N}], arrayProperties: {size: 10}}", Accept),
        case("SEQUENTIAL dependency with jobName refused", Job, "spec: {dependsOn: [{jobName: prep, type: SEQUENTIAL}], arrayProperties: {size: 10}}", Refuse("a SEQUENTIAL dependency chains the children of this array job in index order and takes no jobName")),
        case("N_TO_N dependency of a plain job refused", Job, "spec: {dependsOn: [{jobName: prep, type: N_TO_N}]}", Refuse("N_TO_N and SEQUENTIAL dependencies are for array jobs")),
        case("unknown dependency type refused", Job, "spec: {dependsOn: [{jobName: prep, type: ONE_TO_ONE}]}", Refuse("Unsupported value: \"ONE_TO_ONE\"")),
        case("dependency jobName must be a Job name", Job, "spec: {dependsOn: [{jobName: JobA_job_ID}]}", Refuse("dependsOn[].jobName must be the name of a Job")),
        case("self dependency refused", Job, "spec: {dependsOn: [{jobName: j}]}", Refuse("a job cannot depend on itself")),
        case("multinode overrides accepted", Job, "spec: {nodeOverrides: {numNodes: 4, nodePropertyOverrides: [{targetNodes: '1:', containerOverrides: {command: [run]}}]}}", Accept),
        case("multinode override range syntax", Job, "spec: {nodeOverrides: {nodePropertyOverrides: [{targetNodes: 'all'}]}}", Refuse("targetNodes must be a node index or range")),
        case("multinode array job refused", Job, "spec: {nodeOverrides: {numNodes: 4}, arrayProperties: {size: 10}}", Refuse("a multi-node job (nodeOverrides) cannot be an array job")),
        case("multinode numNodes override of 1000 accepted", Job, "spec: {nodeOverrides: {numNodes: 1000}}", Accept),
        case("multinode numNodes override above 1000 refused", Job, "spec: {nodeOverrides: {numNodes: 1001}}", Refuse("spec.nodeOverrides.numNodes in body should be less than or equal to 1000")),
        case("multinode numNodes override of 0 refused", Job, "spec: {nodeOverrides: {numNodes: 0}}", Refuse("spec.nodeOverrides.numNodes in body should be greater than or equal to 1")),
        case("multinode job-level containerOverrides refused", Job, "spec: {nodeOverrides: {numNodes: 4}, containerOverrides: {command: [run]}}", Refuse("a multi-node job (nodeOverrides) overrides its nodes' containers in nodeOverrides.nodePropertyOverrides[].containerOverrides")),
        case("multinode override range within numNodes accepted", Job, "spec: {nodeOverrides: {numNodes: 4, nodePropertyOverrides: [{targetNodes: '3'}, {targetNodes: ':3'}, {targetNodes: '1:2'}]}}", Accept),
        case("multinode override range beyond numNodes refused", Job, "spec: {nodeOverrides: {numNodes: 4, nodePropertyOverrides: [{targetNodes: '2:4'}]}}", Refuse("nodeOverrides.nodePropertyOverrides[].targetNodes may only name node indices below numNodes")),
        case("multinode override range without numNodes left to the operator", Job, "spec: {nodeOverrides: {nodePropertyOverrides: [{targetNodes: '9:12'}]}}", Accept),
        case("multinode override range a:b with a > b refused", Job, "spec: {nodeOverrides: {nodePropertyOverrides: [{targetNodes: '3:1'}]}}", Refuse("a targetNodes range a:b must have a <= b")),
        case("container overrides accepted", Job, "spec: {containerOverrides: {command: [echo, hi], environment: [{name: MODE, value: fast}], resourceRequirements: [{type: GPU, value: '1'}]}}", Accept),
        case("container override env AWS_BATCH_ refused", Job, "spec: {containerOverrides: {environment: [{name: AWS_BATCH_JOB_ARRAY_INDEX, value: '3'}]}}", Refuse("environment variable names starting with AWS_BATCH are reserved")),
        case("container override env AWS_BATCH without underscore refused", Job, "spec: {containerOverrides: {environment: [{name: AWS_BATCHJOB, value: '3'}]}}", Refuse("environment variable names starting with AWS_BATCH are reserved")),
        case("container override vcpus with VCPU refused", Job, "spec: {containerOverrides: {vcpus: 2, resourceRequirements: [{type: VCPU, value: '2'}]}}", Refuse("set vCPUs either with vcpus (deprecated)")),
        case("container override memory with MEMORY refused", Job, "spec: {containerOverrides: {memory: 64, resourceRequirements: [{type: MEMORY, value: '64'}]}}", Refuse("set memory either with memory (deprecated)")),
        case("job retry attempts 11 refused", Job, "spec: {retryStrategy: {attempts: 11}}", Refuse("spec.retryStrategy.attempts in body should be less than or equal to 10")),
        case("shareIdentifier accepted", Job, "spec: {shareIdentifier: teamA-1}", Accept),
        case("shareIdentifier with a star refused", Job, "spec: {shareIdentifier: 'teamA*'}", Refuse("shareIdentifier may contain only letters, digits, '-' and '_'")),
        case("schedulingPriorityOverride negative refused", Job, "spec: {schedulingPriorityOverride: -1}", Refuse("spec.schedulingPriorityOverride in body should be greater than or equal to 0")),
        case("ttlSecondsAfterFinished negative refused", Job, "spec: {ttlSecondsAfterFinished: -1}", Refuse("spec.ttlSecondsAfterFinished in body should be greater than or equal to 0")),
        case("terminate at creation accepted", Job, "spec: {terminate: {reason: not needed}}", Accept),
        case("terminate needs a reason", Job, "spec: {terminate: {reason: ''}}", Refuse("spec.terminate.reason in body should be at least 1 chars long")),
        case("terminate arrayIndices accepted", Job, "spec: {arrayProperties: {size: 10}, terminate: {reason: bad inputs, arrayIndices: '0-3,7'}}", Accept),
        case("terminate arrayIndices up to the last child accepted", Job, "spec: {arrayProperties: {size: 10}, terminate: {reason: bad inputs, arrayIndices: '0,5-9'}}", Accept),
        case("terminate arrayIndices beyond the array refused", Job, "spec: {arrayProperties: {size: 10}, terminate: {reason: bad inputs, arrayIndices: '3,10'}}", Refuse("terminate.arrayIndices may only name children below arrayProperties.size")),
        case("terminate arrayIndices range past the array refused", Job, "spec: {arrayProperties: {size: 10}, terminate: {reason: bad inputs, arrayIndices: '5-12'}}", Refuse("terminate.arrayIndices may only name children below arrayProperties.size")),
        case("terminate arrayIndices syntax", Job, "spec: {arrayProperties: {size: 10}, terminate: {reason: bad inputs, arrayIndices: '0..3'}}", Refuse("arrayIndices must be a comma-separated list of indices and ranges")),
        case("terminate arrayIndices of a plain job refused", Job, "spec: {terminate: {reason: bad inputs, arrayIndices: '0'}}", Refuse("terminate.arrayIndices applies to array jobs only")),
        update("setting terminate accepted", Job, "{}", "spec: {terminate: {reason: cancelled by user}}", Accept),
        update("changing the terminate reason accepted", Job, "spec: {terminate: {reason: first}}", "spec: {terminate: {reason: second}}", Accept),
        update("withdrawing terminate refused", Job, "spec: {terminate: {reason: first}}", "spec: {terminate: null}", Refuse("terminate cannot be withdrawn once set")),
        update("widening terminate to the whole array accepted", Job, &format!("spec: {{{ARRAY_JOB}, terminate: {{reason: r, arrayIndices: '1'}}}}"), "spec: {terminate: {arrayIndices: null}}", Accept),
        update("narrowing terminate to arrayIndices refused", Job, &format!("spec: {{{ARRAY_JOB}, terminate: {{reason: r}}}}"), "spec: {terminate: {arrayIndices: '1'}}", Refuse("a terminate of the whole job cannot be narrowed to arrayIndices")),
        update("changing arrayIndices accepted", Job, &format!("spec: {{{ARRAY_JOB}, terminate: {{reason: r, arrayIndices: '1'}}}}"), "spec: {terminate: {arrayIndices: '1-3'}}", Accept),
        update("changing arrayIndices to beyond the array refused", Job, &format!("spec: {{{ARRAY_JOB}, terminate: {{reason: r, arrayIndices: '1'}}}}"), "spec: {terminate: {arrayIndices: '1-30'}}", Refuse("terminate.arrayIndices may only name children below arrayProperties.size")),
        update("status changes accepted", Job, "{status: {status: RUNNABLE}}", "{status: {status: RUNNING, attemptCount: 1}}", Accept),
        update("unchanged spec accepted", Job, "spec: {parameters: {a: '1'}, tags: {t: v}}", "metadata: {labels: {x: y}}", Accept),
    ];
    for (field, old, new) in immutable_field_changes() {
        let old_doc = format!("spec: {{{field}: {old}, {ARRAY_JOB}}}");
        let old_doc = if field == "arrayProperties" || field == "nodeOverrides" {
            format!("spec: {{{field}: {old}}}")
        } else {
            old_doc
        };
        let message: &'static str =
            Box::leak(format!("{field} cannot change after the job is created").into_boxed_str());
        cases.push(update(
            &format!("changing {field} refused"),
            Job,
            &old_doc,
            &format!("spec: {{{field}: {new}}}"),
            Refuse(message),
        ));
        if field == "jobQueue" || field == "jobDefinition" {
            // Required: removing it is refused before the rules run.
            let required: &'static str =
                Box::leak(format!("spec.{field}: Required value").into_boxed_str());
            cases.push(update(
                &format!("removing {field} refused"),
                Job,
                &old_doc,
                &format!("spec: {{{field}: null}}"),
                Refuse(required),
            ));
        } else {
            cases.push(update(
                &format!("removing {field} refused"),
                Job,
                &old_doc,
                &format!("spec: {{{field}: null}}"),
                Refuse(message),
            ));
            cases.push(update(
                &format!("adding {field} refused"),
                Job,
                "{}",
                &format!("spec: {{{field}: {new}}}"),
                Refuse(message),
            ));
        }
    }
    cases
}

fn all_cases() -> Vec<Case> {
    let mut cases = compute_environment_cases();
    cases.extend(job_queue_cases());
    cases.extend(scheduling_policy_cases());
    cases.extend(job_definition_cases());
    cases.extend(job_cases());
    cases
}

/// Runs one case; returns the errors of the new object (empty when accepted), or a failure.
fn run(case: &Case) -> Result<Vec<String>, String> {
    let crd = support::crd(case.kind.name());
    let base = yaml(case.kind.base());
    let (old, new) = match &case.old {
        Some(old_patch) => {
            let old = merged(&base, old_patch);
            let new = merged(&old, &case.patch);
            (Some(old), new)
        }
        None => (None, merged(&base, &case.patch)),
    };
    if let Some(old) = &old {
        if let Err(errors) = support::validate(crd, old, None) {
            return Err(format!("its old object is itself refused: {errors:?}"));
        }
    }
    let result = support::validate(crd, &new, old.as_ref());
    match (&case.expect, result) {
        (Accept, Ok(())) => Ok(vec![]),
        (Accept, Err(errors)) => Err(format!("expected acceptance, got {errors:#?}")),
        (Refuse(text), Err(errors)) if errors.iter().any(|e| e.contains(text)) => Ok(errors),
        (Refuse(text), Err(errors)) => Err(format!(
            "expected an error containing {text:?}, got {errors:#?}"
        )),
        (Refuse(text), Ok(())) => Err(format!(
            "expected refusal with {text:?}, but it was accepted"
        )),
    }
}

#[test]
fn every_rule_accepts_and_refuses_as_specified() {
    let mut failures = Vec::new();
    for case in all_cases() {
        if let Err(problem) = run(&case) {
            failures.push(format!("{:?} {}: {problem}", case.kind, case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every CEL rule message of every CRD, with the path of the schema node carrying it.
fn cel_rule_messages() -> Vec<(String, String)> {
    fn walk(node: &Value, path: &str, out: &mut Vec<(String, String)>) {
        if let Some(rules) = node
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        {
            for rule in rules {
                let message = rule
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                out.push((path.to_string(), message.to_string()));
            }
        }
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                walk(child, &format!("{path}.{name}"), out);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = node.get(key).filter(|c| c.is_object()) {
                walk(child, &format!("{path}[]"), out);
            }
        }
    }
    let mut out = Vec::new();
    for crd in support::crds() {
        let schema = crd_schema(crd).expect("every CRD has a schema");
        walk(&schema, &crd.spec.names.kind, &mut out);
    }
    out
}

#[test]
fn every_cel_rule_is_exercised_by_a_refused_case() {
    let mut produced = BTreeSet::new();
    for case in all_cases() {
        if let Ok(errors) = run(&case) {
            produced.extend(errors);
        }
    }
    let unexercised: Vec<String> = cel_rule_messages()
        .into_iter()
        .filter(|(_, message)| !produced.iter().any(|e| e.contains(message.as_str())))
        .map(|(path, message)| format!("{path}: {message}"))
        .collect();
    assert!(
        unexercised.is_empty(),
        "CEL rules no refused case triggers:\n{}",
        unexercised.join("\n")
    );
}

#[test]
fn every_cel_rule_has_a_message() {
    let silent: Vec<String> = cel_rule_messages()
        .into_iter()
        .filter(|(_, message)| message.is_empty())
        .map(|(path, _)| path)
        .collect();
    assert!(silent.is_empty(), "rules without a message: {silent:?}");
}
