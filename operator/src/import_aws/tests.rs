//! Unit tests of the AWS → Barge conversion (the binary and the CRD validation of its output are
//! tested in operator/tests/import_aws.rs).

use serde_json::{json, Value};

use super::*;

fn convert_ok(input: Value) -> (Vec<Value>, Vec<String>) {
    let conversion = convert(&input, &ImportOptions::default())
        .unwrap_or_else(|e| panic!("conversion failed: {e}"));
    let objects = conversion
        .objects
        .iter()
        .map(|o| o.to_value().expect("serializes"))
        .collect();
    let notes = conversion.notes.iter().map(ToString::to_string).collect();
    (objects, notes)
}

fn convert_err(input: Value) -> String {
    convert(&input, &ImportOptions::default())
        .map(|_| ())
        .expect_err("conversion should fail")
        .to_string()
}

fn has_note(notes: &[String], path: &str, text: &str) -> bool {
    notes
        .iter()
        .any(|n| n.starts_with(&format!("{path}: ")) && n.contains(text))
}

#[test]
fn documents_are_recognised_by_their_keys() {
    assert_eq!(
        detect(&json!({"jobDefinitionName": "a"})),
        Some(DocumentKind::RegisterJobDefinition)
    );
    assert_eq!(
        detect(&json!({"jobQueueName": "a"})),
        Some(DocumentKind::CreateJobQueue)
    );
    assert_eq!(
        detect(&json!({"computeEnvironmentName": "a"})),
        Some(DocumentKind::CreateComputeEnvironment)
    );
    assert_eq!(
        detect(&json!({"name": "a", "fairsharePolicy": {}})),
        Some(DocumentKind::CreateSchedulingPolicy)
    );
    assert_eq!(
        detect(&json!({"jobName": "a", "jobQueue": "q"})),
        Some(DocumentKind::SubmitJob)
    );
    assert_eq!(detect(&json!({"name": "a"})), None);
    assert!(convert_err(json!({"hello": "world"}))
        .starts_with("document: not an AWS Batch document Barge can import"));
    assert_eq!(
        convert_err(json!("text")),
        "document: expected an object, got \"text\""
    );
}

#[test]
fn job_definition_carries_aws_fields_over_and_reports_the_rest() {
    let (objects, notes) = convert_ok(json!({
        "jobDefinitionName": "fetch_and_run",
        "type": "container",
        "parameters": {"codec": "mp4"},
        "containerProperties": {
            "image": "busybox",
            "command": ["run", "Ref::codec"],
            "vcpus": 2,
            "memory": 2000,
            "environment": [{"name": "MODE", "value": "fast"}, {"name": "AWS_BATCH_JOB_ID", "value": "x"}],
            "jobRoleArn": "arn:aws:iam::1:role/r",
            "logConfiguration": {"logDriver": "awslogs"},
            "user": "nobody",
            "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}],
            "linuxParameters": {"sharedMemorySize": 64, "devices": [{"hostPath": "/dev/fuse"}]},
            "mysteryField": 1
        },
        "retryStrategy": {"attempts": 3, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "retry"}]},
        "timeout": {"attemptDurationSeconds": 600},
        "platformCapabilities": ["EC2"],
        "propagateTags": true,
        "tags": {"team": "a"}
    }));
    let jd = &objects[0];
    assert_eq!(jd["kind"], "JobDefinition");
    assert_eq!(jd["metadata"]["name"], "fetch-and-run");
    let spec = &jd["spec"];
    assert_eq!(spec["type"], "container");
    assert_eq!(spec["parameters"]["codec"], "mp4");
    assert_eq!(spec["containerProperties"]["vcpus"], 2);
    assert_eq!(
        spec["containerProperties"]["environment"],
        json!([{"name": "MODE", "value": "fast"}])
    );
    assert_eq!(spec["containerProperties"]["ulimits"][0]["name"], "nofile");
    assert_eq!(
        spec["containerProperties"]["linuxParameters"]["sharedMemorySize"],
        64
    );
    assert_eq!(
        spec["retryStrategy"]["evaluateOnExit"][0]["action"],
        "RETRY"
    );
    assert_eq!(spec["timeout"]["attemptDurationSeconds"], 600);
    assert_eq!(spec["tags"]["team"], "a");
    assert_eq!(spec["propagateTags"], true);
    assert!(has_note(
        &notes,
        "jobDefinitionName",
        "becomes the Kubernetes name \"fetch-and-run\""
    ));
    assert!(has_note(
        &notes,
        "containerProperties.environment[1]",
        "AWS_BATCH_JOB_ID starts with AWS_BATCH,"
    ));
    assert!(has_note(
        &notes,
        "containerProperties.jobRoleArn",
        "serviceAccountName"
    ));
    assert!(has_note(
        &notes,
        "containerProperties.logConfiguration",
        "not imported"
    ));
    assert!(has_note(
        &notes,
        "containerProperties.linuxParameters.devices",
        "device plugin"
    ));
    assert!(has_note(
        &notes,
        "containerProperties.mysteryField",
        "Barge has no counterpart"
    ));
    assert!(has_note(&notes, "platformCapabilities", "not imported"));
}

#[test]
fn volumes_secrets_and_users_are_translated_or_reported() {
    let (objects, notes) = convert_ok(json!({
        "jobDefinitionName": "vols",
        "type": "container",
        "containerProperties": {
            "image": "busybox",
            "resourceRequirements": [{"type": "VCPU", "value": "1"}],
            "vcpus": 4,
            "volumes": [
                {"name": "Scratch_Space", "host": {}},
                {"name": "shared", "efsVolumeConfiguration": {"fileSystemId": "fs-12345678", "rootDirectory": "/data"}}
            ],
            "mountPoints": [{"containerPath": "/scratch", "sourceVolume": "Scratch_Space"}, {"containerPath": "/shared", "sourceVolume": "shared", "readOnly": true}],
            "secrets": [
                {"name": "TOKEN", "valueFrom": "api-token:token"},
                {"name": "DB", "valueFrom": "arn:aws:secretsmanager:us-east-1:1:secret:db"}
            ],
            "user": "batchuser"
        }
    }));
    let container = &objects[0]["spec"]["containerProperties"];
    assert_eq!(container["volumes"][0]["name"], "scratch-space");
    assert_eq!(container["mountPoints"][0]["sourceVolume"], "scratch-space");
    assert_eq!(
        container["volumes"][1]["persistentVolumeClaim"]["claimName"],
        "fs-12345678"
    );
    assert_eq!(
        container["secrets"],
        json!([{"name": "TOKEN", "valueFrom": "api-token:token"}])
    );
    assert!(
        container.get("vcpus").is_none(),
        "vcpus dropped in favour of the VCPU requirement"
    );
    assert!(container.get("user").is_none());
    assert!(has_note(
        &notes,
        "containerProperties.vcpus",
        "resourceRequirements already sets this amount"
    ));
    assert!(has_note(
        &notes,
        "containerProperties.volumes[1].efsVolumeConfiguration",
        "PersistentVolumeClaim \"fs-12345678\""
    ));
    assert!(has_note(
        &notes,
        "containerProperties.volumes[1].efsVolumeConfiguration.rootDirectory",
        "not imported"
    ));
    assert!(has_note(
        &notes,
        "containerProperties.secrets[1]",
        "create a Kubernetes Secret"
    ));
    assert!(has_note(&notes, "containerProperties.user", "numeric uid"));
}

#[test]
fn multinode_definition_keeps_instance_types_in_node_ranges_only() {
    let (objects, notes) = convert_ok(json!({
        "jobDefinitionName": "mpi",
        "type": "multinode",
        "nodeProperties": {"numNodes": 3, "mainNode": 0, "nodeRangeProperties": [
            {"targetNodes": "0:", "container": {"image": "mpi", "instanceType": "c5.large"}}
        ]}
    }));
    let range = &objects[0]["spec"]["nodeProperties"]["nodeRangeProperties"][0];
    assert_eq!(range["container"]["instanceType"], "c5.large");
    assert!(notes.iter().all(|n| !n.contains("instanceType")));
    let (objects, notes) = convert_ok(json!({
        "jobDefinitionName": "single", "type": "container",
        "containerProperties": {"image": "busybox", "instanceType": "c5.large"}
    }));
    assert!(objects[0]["spec"]["containerProperties"]
        .get("instanceType")
        .is_none());
    assert!(has_note(
        &notes,
        "containerProperties.instanceType",
        "multinode"
    ));
}

#[test]
fn eks_pod_properties_become_pod_properties() {
    let (objects, notes) = convert_ok(json!({
        "jobDefinitionName": "eks", "type": "container",
        "eksProperties": {"podProperties": {
            "serviceAccountName": "runner",
            "hostNetwork": true,
            "containers": [{"name": "main", "image": "busybox", "command": ["true"], "resources": {"limits": {"cpu": "1"}}}],
            "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory"}}]
        }}
    }));
    let pod = &objects[0]["spec"]["podProperties"];
    assert_eq!(pod["containers"][0]["name"], "main");
    assert_eq!(pod["containers"][0]["resources"]["limits"]["cpu"], "1");
    assert_eq!(pod["volumes"][0]["emptyDir"]["medium"], "Memory");
    assert_eq!(pod["serviceAccountName"], "runner");
    assert!(has_note(
        &notes,
        "eksProperties.podProperties.hostNetwork",
        "not imported"
    ));
}

#[test]
fn compute_environment_drops_aws_infrastructure_with_notes() {
    let (objects, notes) = convert_ok(json!({
        "computeEnvironmentName": "C4OnDemand",
        "type": "MANAGED",
        "state": "ENABLED",
        "computeResources": {
            "type": "EC2", "minvCpus": 0, "maxvCpus": 128, "desiredvCpus": 48,
            "instanceTypes": ["c4.large"],
            "subnets": ["subnet-1"], "securityGroupIds": ["sg-1"], "ec2KeyPair": "id_rsa",
            "instanceRole": "ecsInstanceRole", "launchTemplate": {"launchTemplateName": "lt"},
            "tags": {"Name": "Batch Instance - C4OnDemand", "team": "batch", "Cost Center": "x"}
        },
        "serviceRole": "arn:aws:iam::1:role/AWSBatchServiceRole",
        "tags": {"owner": "me"}
    }));
    let ce = &objects[0];
    assert_eq!(ce["metadata"]["name"], "c4ondemand");
    let resources = &ce["spec"]["computeResources"];
    assert_eq!(resources["maxvCpus"], 128);
    assert_eq!(resources["desiredvCpus"], 48);
    assert_eq!(resources["tags"], json!({"team": "batch"}));
    assert_eq!(resources["provider"], json!({"simulated": {}}));
    for path in [
        "computeResources.subnets",
        "computeResources.securityGroupIds",
        "computeResources.ec2KeyPair",
        "computeResources.instanceRole",
        "computeResources.launchTemplate",
        "computeResources.tags.Name",
        "computeResources.tags.Cost Center",
        "serviceRole",
        "tags",
    ] {
        assert!(
            has_note(&notes, path, "not imported"),
            "no note for {path}: {notes:#?}"
        );
    }
    assert!(has_note(
        &notes,
        "computeResources.provider",
        "simulated provider"
    ));
}

#[test]
fn fargate_compute_environments_are_refused() {
    let err = convert_err(json!({
        "computeEnvironmentName": "f", "type": "MANAGED",
        "computeResources": {"type": "FARGATE", "maxvCpus": 4, "subnets": ["s"]}
    }));
    assert!(
        err.starts_with("computeResources.type: FARGATE compute environments cannot be imported"),
        "{err}"
    );
}

#[test]
fn job_queue_turns_arns_into_names() {
    let (objects, notes) = convert_ok(json!({
        "jobQueueName": "HighPriority",
        "priority": 10,
        "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "arn:aws:batch:us-east-1:1:compute-environment/C4OnDemand"}],
        "schedulingPolicyArn": "arn:aws:batch:us-east-1:1:scheduling-policy/Fair_Share",
        "jobStateTimeLimitActions": [{"reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", "state": "RUNNABLE", "maxTimeSeconds": 600, "action": "CANCEL"}]
    }));
    let spec = &objects[0]["spec"];
    assert_eq!(
        spec["computeEnvironmentOrder"][0]["computeEnvironment"],
        "c4ondemand"
    );
    assert_eq!(spec["schedulingPolicyName"], "fair-share");
    assert_eq!(spec["jobStateTimeLimitActions"][0]["maxTimeSeconds"], 600);
    assert!(has_note(&notes, "schedulingPolicyArn", "the ARN"));
    let err = convert_err(json!({
        "jobQueueName": "q", "priority": 1,
        "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "arn:aws:batch:us-east-1:1:job-queue/Other"}]
    }));
    assert!(
        err.contains("computeEnvironmentOrder[0].computeEnvironment: ")
            && err.contains("is an ARN of a job-queue"),
        "{err}"
    );
}

#[test]
fn scheduling_policy_converts() {
    let (objects, _) = convert_ok(json!({
        "name": "Fair", "fairsharePolicy": {"shareDecaySeconds": 3600, "computeReservation": 10,
        "shareDistribution": [{"shareIdentifier": "A*", "weightFactor": 0.5}]}
    }));
    assert_eq!(objects[0]["kind"], "SchedulingPolicy");
    assert_eq!(
        objects[0]["spec"]["fairsharePolicy"]["shareDistribution"][0]["weightFactor"],
        0.5
    );
}

#[test]
fn submit_job_converts_dependencies_and_definition_references() {
    let options = ImportOptions {
        namespace: Some("team-a".into()),
        ..Default::default()
    };
    let input = json!([
        {
            "jobName": "JobB", "jobQueue": "arn:aws:batch:us-east-1:1:job-queue/ProdQueue",
            "jobDefinition": "arn:aws:batch:us-east-1:1:job-definition/JobB-CPU:3",
            "arrayProperties": {"size": 10},
            "dependsOn": [{"jobId": "JobA_job_ID", "type": "N_TO_N"}, {"type": "SEQUENTIAL"}],
            "containerOverrides": {"command": ["run"], "vcpus": 2},
            "shareIdentifier": "teamA", "schedulingPriorityOverride": 5
        },
        {"jobName": "JobC", "jobQueue": "q", "jobDefinition": "plain"}
    ]);
    let conversion = convert(&input, &options).expect("converts");
    let job = conversion.objects[0].to_value().expect("serializes");
    assert_eq!(job["metadata"]["namespace"], "team-a");
    assert_eq!(job["spec"]["jobQueue"], "prodqueue");
    assert_eq!(job["spec"]["jobDefinition"], "jobb-cpu:3");
    assert_eq!(
        job["spec"]["dependsOn"],
        json!([{"jobName": "joba-job-id", "type": "N_TO_N"}, {"type": "SEQUENTIAL"}])
    );
    assert_eq!(
        job["spec"]["containerOverrides"],
        json!({"command": ["run"], "vcpus": 2})
    );
    let second = conversion.objects[1].to_value().expect("serializes");
    assert_eq!(second["spec"]["jobDefinition"], "plain");
    let notes: Vec<String> = conversion.notes.iter().map(ToString::to_string).collect();
    assert!(has_note(
        &notes,
        "[0].dependsOn[0].jobId",
        "AWS job ids have no meaning"
    ));
    assert!(has_note(&notes, "[0].jobDefinition", "the ARN"));
}

#[test]
fn malformed_fields_are_named() {
    let cases = [
        (json!({"jobDefinitionName": "x", "type": "container", "containerProperties": {"image": "i", "vcpus": "two"}}),
         "containerProperties.vcpus: expected a number, got \"two\""),
        (json!({"jobDefinitionName": "x", "type": "container", "containerProperties": {"vcpus": 1}}),
         "containerProperties.image: required"),
        (json!({"jobDefinitionName": "x", "type": "batch"}), "type: expected container or multinode, got \"batch\""),
        (json!({"jobDefinitionName": "x", "type": "container", "containerProperties": {"image": "i", "resourceRequirements": [{"type": "DISK", "value": "1"}]}}),
         "containerProperties.resourceRequirements[0].type: expected VCPU, MEMORY or GPU, got \"DISK\""),
        (json!({"jobDefinitionName": "x", "type": "container", "retryStrategy": {"evaluateOnExit": [{"action": "MAYBE"}]}}),
         "retryStrategy.evaluateOnExit[0].action: expected RETRY or EXIT, got \"MAYBE\""),
        (json!({"jobName": "j", "jobQueue": "q", "jobDefinition": "d:zero"}), "jobDefinition: \"d:zero\": the revision after ':' must be a number from 1"),
        (json!({"jobName": "j", "jobQueue": "q", "jobDefinition": "d", "dependsOn": [{"type": "N_TO_N"}]}),
         "dependsOn[0].jobId: required (only a SEQUENTIAL dependency names no job)"),
        (json!({"jobName": "j", "jobQueue": "q", "jobDefinition": "d", "arrayProperties": {"size": 2.5}}),
         "arrayProperties.size: expected a whole number, got 2.5"),
        (json!({"jobName": "___", "jobQueue": "q", "jobDefinition": "d"}), "jobName: \"___\" has no letters or digits"),
        (json!({"computeEnvironmentName": "c", "type": "MANAGED", "computeResources": {"type": "EC2", "maxvCpus": 4, "tags": {"a": 1}}}),
         "computeResources.tags.a: expected a string, got 1"),
        (json!([{"name": "p", "fairsharePolicy": {}}, {"jobQueueName": "q", "priority": "high"}]), "[1].priority: expected a number, got \"high\""),
    ];
    for (input, expected) in cases {
        let err = convert_err(input.clone());
        assert!(
            err.starts_with(expected),
            "for {input}: expected {expected:?}, got {err:?}"
        );
    }
}

#[test]
fn long_aws_names_become_names_that_fit_a_label_value_everywhere_they_are_named() {
    // AWS allows 128 characters; Barge puts these names in label values (at most 63).
    let long = format!("nightly_{}", "x".repeat(110));
    let (definition, notes) = convert_ok(json!({
        "jobDefinitionName": long, "type": "container",
        "containerProperties": {"image": "busybox"}
    }));
    let name = definition[0]["metadata"]["name"].as_str().expect("name");
    assert_eq!(name.len(), 63);
    assert!(name.starts_with("nightly-xxx"));
    assert!(has_note(&notes, "jobDefinitionName", "nightly-"));
    let (job, _) = convert_ok(json!({
        "jobName": "j", "jobQueue": format!("queue_{}", "q".repeat(100)),
        "jobDefinition": format!("{long}:3")
    }));
    assert_eq!(job[0]["spec"]["jobDefinition"], format!("{name}:3"));
    assert_eq!(job[0]["spec"]["jobQueue"].as_str().map(str::len), Some(63));
    let (queue, _) = convert_ok(json!({
        "jobQueueName": format!("queue_{}", "q".repeat(100)), "priority": 1,
        "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": format!("ce_{}", "c".repeat(100))}]
    }));
    assert_eq!(queue[0]["metadata"]["name"], job[0]["spec"]["jobQueue"]);
    let (ce, _) = convert_ok(json!({
        "computeEnvironmentName": format!("ce_{}", "c".repeat(100)), "type": "UNMANAGED"
    }));
    assert_eq!(
        ce[0]["metadata"]["name"],
        queue[0]["spec"]["computeEnvironmentOrder"][0]["computeEnvironment"]
    );
}

#[test]
fn aws_compute_environments_import_with_the_karpenter_provider_into_valid_environments() {
    use barge_operator::nodepools::{pool_of, Pool};
    let options = ImportOptions {
        karpenter_node_class: Some(barge_crds::compute_environment::NodeClassRef {
            group: "karpenter.k8s.aws".into(),
            kind: "EC2NodeClass".into(),
            name: "default".into(),
        }),
        ..Default::default()
    };
    for (file, capacity_type) in [
        ("computeenv-managed.json", "on-demand"),
        ("computeenv-spot.json", "spot"),
    ] {
        let text = barge_fixtures::read(&barge_fixtures::aws(file));
        let document: Value = serde_json::from_str(&text).expect("fixture JSON");
        let conversion = convert(&document, &options).unwrap_or_else(|e| panic!("{file}: {e}"));
        let notes: Vec<String> = conversion.notes.iter().map(ToString::to_string).collect();
        assert!(
            has_note(
                &notes,
                "computeResources.provider",
                "set to the karpenter provider"
            ),
            "{notes:?}"
        );
        let BargeObject::ComputeEnvironment(ce) = &conversion.objects[0] else {
            panic!("{file}: a compute environment")
        };
        let provider = &ce.spec.compute_resources.as_ref().expect("cr").provider;
        assert!(provider.simulated.is_none() && provider.karpenter.is_some());
        let Ok(Pool::Karpenter(pool)) = pool_of(ce) else {
            panic!("{file}: a valid karpenter pool: {:?}", pool_of(ce))
        };
        assert_eq!(pool.capacity_type, capacity_type, "{file}");
        assert_eq!(pool.max_vcpus, 128);
    }
}

#[test]
fn aws_compute_environments_import_with_the_cluster_api_provider_into_valid_environments() {
    use barge_crds::compute_environment::MachineDeploymentRef;
    use barge_operator::nodepools::{pool_of, Pool};
    let options = ImportOptions {
        cluster_api_machine_deployments: vec![
            MachineDeploymentRef {
                name: "workers-c5".into(),
                namespace: "capi".into(),
                instance_type: Some("c5.large".into()),
            },
            MachineDeploymentRef {
                name: "workers-gpu".into(),
                namespace: "capi".into(),
                instance_type: None,
            },
        ],
        ..Default::default()
    };
    for file in ["computeenv-managed.json", "computeenv-spot.json"] {
        let text = barge_fixtures::read(&barge_fixtures::aws(file));
        let document: Value = serde_json::from_str(&text).expect("fixture JSON");
        let conversion = convert(&document, &options).unwrap_or_else(|e| panic!("{file}: {e}"));
        let notes: Vec<String> = conversion.notes.iter().map(ToString::to_string).collect();
        assert!(
            has_note(
                &notes,
                "computeResources.provider",
                "set to the clusterAPI provider: Barge sets replicas of MachineDeployment(s) capi/workers-c5, capi/workers-gpu"
            ),
            "{notes:?}"
        );
        let BargeObject::ComputeEnvironment(ce) = &conversion.objects[0] else {
            panic!("{file}: a compute environment")
        };
        let provider = &ce.spec.compute_resources.as_ref().expect("cr").provider;
        assert!(provider.simulated.is_none() && provider.karpenter.is_none());
        let Ok(Pool::ClusterApi(pool)) = pool_of(ce) else {
            panic!("{file}: a valid clusterAPI pool: {:?}", pool_of(ce))
        };
        assert_eq!(pool.deployments.len(), 2, "{file}");
        assert_eq!(pool.max_vcpus, 128, "{file}");
    }
}
