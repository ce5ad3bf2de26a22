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

/// Whether `errors` (one per line) refuse the field at `path` with a message containing `text`.
fn has_refusal(errors: &str, path: &str, text: &str) -> bool {
    errors
        .lines()
        .any(|l| l.starts_with(&format!("{path}: refused: ")) && l.contains(text))
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
fn job_definition_carries_aws_fields_over_and_warns_about_aws_metadata() {
    let (objects, notes) = convert_ok(json!({
        "jobDefinitionName": "fetch_and_run",
        "type": "container",
        "parameters": {"codec": "mp4"},
        "containerProperties": {
            "image": "busybox",
            "command": ["run", "Ref::codec"],
            "vcpus": 2,
            "memory": 2000,
            "environment": [{"name": "MODE", "value": "fast"}],
            "jobRoleArn": "arn:aws:iam::1:role/r",
            "executionRoleArn": "arn:aws:iam::1:role/e",
            "logConfiguration": {"logDriver": "awslogs"},
            "user": "nobody",
            "privileged": false,
            "readonlyRootFilesystem": true,
            "linuxParameters": {"sharedMemorySize": 64, "initProcessEnabled": true}
        },
        "retryStrategy": {"attempts": 3, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "retry"}]},
        "timeout": {"attemptDurationSeconds": 600},
        "schedulingPriority": 5,
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
    let container = &spec["containerProperties"];
    assert_eq!(container["vcpus"], 2);
    assert_eq!(container["memory"], 2000);
    assert_eq!(container["user"], "nobody");
    assert_eq!(container["readonlyRootFilesystem"], true);
    assert_eq!(
        container["environment"],
        json!([{"name": "MODE", "value": "fast"}])
    );
    assert_eq!(
        container["linuxParameters"],
        json!({"sharedMemorySize": 64, "initProcessEnabled": true})
    );
    assert_eq!(
        spec["retryStrategy"]["evaluateOnExit"][0]["action"],
        "RETRY"
    );
    assert_eq!(spec["timeout"]["attemptDurationSeconds"], 600);
    assert_eq!(spec["schedulingPriority"], 5);
    assert_eq!(spec["tags"]["team"], "a");
    assert_eq!(spec["propagateTags"], true);
    assert!(has_note(
        &notes,
        "jobDefinitionName",
        "becomes the Kubernetes name \"fetch-and-run\""
    ));
    for (path, text) in [
        ("containerProperties.jobRoleArn", "serviceAccountName"),
        ("containerProperties.executionRoleArn", "not imported"),
        ("containerProperties.logConfiguration", "not imported"),
        ("platformCapabilities", "not imported"),
    ] {
        assert!(has_note(&notes, path, text), "{path}: {notes:#?}");
    }
}

#[test]
fn fields_barge_would_not_honour_are_refused_by_name() {
    let err = convert_err(json!({
        "jobDefinitionName": "everything",
        "type": "container",
        "containerProperties": {
            "image": "busybox",
            "resourceRequirements": [{"type": "VCPU", "value": "1"}],
            "vcpus": 4,
            "environment": [{"name": "AWS_BATCH_JOB_ID", "value": "x"}],
            "secrets": [{"name": "DB", "valueFrom": "arn:aws:secretsmanager:us-east-1:1:secret:db"}],
            "user": "batchuser",
            "instanceType": "c5.large",
            "linuxParameters": {"devices": [{"hostPath": "/dev/fuse"}], "maxSwap": 0, "swappiness": 60},
            "runtimePlatform": {"cpuArchitecture": "ARM64"},
            "ephemeralStorage": {"sizeInGiB": 50},
            "mysteryField": 1
        },
        "ecsProperties": {"taskProperties": []},
        "consumableResourceProperties": {"consumableResourceList": []}
    }));
    for (path, text) in [
        (
            "containerProperties.vcpus",
            "differs from the Vcpu of resourceRequirements",
        ),
        (
            "containerProperties.environment[0]",
            "AWS_BATCH_JOB_ID starts with AWS_BATCH",
        ),
        (
            "containerProperties.secrets[0].valueFrom",
            "AWS Secrets Manager or SSM reference",
        ),
        ("containerProperties.user", "is a user name"),
        (
            "containerProperties.instanceType",
            "node ranges of multinode jobs only",
        ),
        (
            "containerProperties.linuxParameters.devices",
            "device plugin",
        ),
        (
            "containerProperties.linuxParameters.maxSwap",
            "swap per node",
        ),
        (
            "containerProperties.linuxParameters.swappiness",
            "swap per node",
        ),
        ("containerProperties.runtimePlatform", "architecture"),
        ("containerProperties.ephemeralStorage", "ephemeral storage"),
        (
            "containerProperties.mysteryField",
            "not a field Barge knows",
        ),
        ("ecsProperties", "Barge does not run ECS task properties"),
        ("consumableResourceProperties", "no consumable resources"),
    ] {
        assert!(has_refusal(&err, path, text), "{path}: {err}");
    }
}

#[test]
fn ulimits_are_refused_naming_aws_unlimited_by_its_field() {
    let err = convert_err(json!({
        "jobDefinitionName": "limits", "type": "container",
        "containerProperties": {"image": "busybox", "ulimits": [
            {"name": "nofile", "softLimit": 1024, "hardLimit": 4096},
            {"name": "memlock", "softLimit": -1, "hardLimit": -1},
            {"name": "stack", "softLimit": 8192, "hardLimit": -1}
        ]}
    }));
    assert!(
        has_refusal(
            &err,
            "containerProperties.ulimits[0]",
            "ulimit nofile (soft 1024, hard 4096): Kubernetes has no per-container ulimits"
        ),
        "{err}"
    );
    for path in [
        "containerProperties.ulimits[1].softLimit",
        "containerProperties.ulimits[1].hardLimit",
        "containerProperties.ulimits[2].hardLimit",
    ] {
        assert!(has_refusal(&err, path, "-1 (unlimited)"), "{path}: {err}");
    }
    assert!(!err.contains("ulimits[2].softLimit"), "{err}");
    // A malformed ulimit is still named as malformed.
    let err = convert_err(json!({
        "jobDefinitionName": "limits", "type": "container",
        "containerProperties": {"image": "busybox", "ulimits": [{"name": "nofile", "softLimit": 1}]}
    }));
    assert_eq!(err, "containerProperties.ulimits[0].hardLimit: required");
}

#[test]
fn tmpfs_becomes_a_sized_memory_volume_and_options_it_cannot_apply_are_refused() {
    let (objects, _) = convert_ok(json!({
        "jobDefinitionName": "scratch", "type": "container",
        "containerProperties": {"image": "busybox", "linuxParameters": {"tmpfs": [
            {"containerPath": "/scratch", "size": 256, "mountOptions": ["rw", "exec"]},
            {"containerPath": "/cache", "size": 64}
        ]}}
    }));
    assert_eq!(
        objects[0]["spec"]["containerProperties"]["linuxParameters"]["tmpfs"],
        json!([
            {"containerPath": "/scratch", "size": 256, "mountOptions": ["rw", "exec"]},
            {"containerPath": "/cache", "size": 64}
        ])
    );
    let err = convert_err(json!({
        "jobDefinitionName": "scratch", "type": "container",
        "containerProperties": {"image": "busybox", "linuxParameters": {"tmpfs": [
            {"containerPath": "/scratch", "size": 256, "mountOptions": ["rw", "noexec", "nosuid", "size=1g", "mode=1777"]}
        ]}}
    }));
    let path = "containerProperties.linuxParameters.tmpfs[0].mountOptions";
    for (i, option) in [
        (1, "noexec"),
        (2, "nosuid"),
        (3, "size=1g"),
        (4, "mode=1777"),
    ] {
        assert!(
            has_refusal(
                &err,
                &format!("{path}[{i}]"),
                &format!("memory-backed emptyDir (sizeLimit 256Mi), which the kubelet mounts with its own options: it cannot apply {option:?}")
            ),
            "{option}: {err}"
        );
    }
    assert!(
        !err.contains(&format!("{path}[0]")),
        "rw is honoured: {err}"
    );
}

#[test]
fn volumes_secrets_and_amounts_carry_over() {
    let (objects, notes) = convert_ok(json!({
        "jobDefinitionName": "vols",
        "type": "container",
        "containerProperties": {
            "image": "busybox",
            "resourceRequirements": [{"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "2048"}],
            "vcpus": 4,
            "volumes": [
                {"name": "Scratch_Space", "host": {}},
                {"name": "data", "host": {"sourcePath": "/data"}},
                {"name": "shared", "efsVolumeConfiguration": {"fileSystemId": "fs-12345678", "rootDirectory": "/data",
                    "transitEncryption": "ENABLED", "authorizationConfig": {"accessPointId": "fsap-1", "iam": "ENABLED"}}}
            ],
            "mountPoints": [{"containerPath": "/scratch", "sourceVolume": "Scratch_Space"}, {"containerPath": "/shared", "sourceVolume": "shared", "readOnly": true}],
            "secrets": [{"name": "TOKEN", "valueFrom": "api-token:token"}],
            "user": "1000:1000"
        }
    }));
    let container = &objects[0]["spec"]["containerProperties"];
    assert_eq!(container["volumes"][0]["name"], "scratch-space");
    assert_eq!(container["volumes"][1]["host"]["sourcePath"], "/data");
    assert_eq!(container["mountPoints"][0]["sourceVolume"], "scratch-space");
    assert_eq!(container["mountPoints"][1]["readOnly"], true);
    assert_eq!(
        container["volumes"][2]["persistentVolumeClaim"]["claimName"],
        "fs-12345678"
    );
    assert_eq!(
        container["secrets"],
        json!([{"name": "TOKEN", "valueFrom": "api-token:token"}])
    );
    assert_eq!(container["user"], "1000:1000");
    assert!(
        container.get("vcpus").is_none(),
        "vcpus dropped: the VCPU requirement says the same"
    );
    assert!(has_note(
        &notes,
        "containerProperties.vcpus",
        "resourceRequirements sets the same amount"
    ));
    assert!(has_note(
        &notes,
        "containerProperties.volumes[2].efsVolumeConfiguration",
        "PersistentVolumeClaim \"fs-12345678\"; create it in the job's namespace, bound to a PersistentVolume of the EFS CSI driver with volumeHandle \"fs-12345678:/data:fsap-1\" and mountOptions [tls, iam]"
    ));
    let err = convert_err(json!({
        "jobDefinitionName": "vols", "type": "container",
        "containerProperties": {"image": "busybox", "volumes": [
            {"name": "shared", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "transitEncryptionPort": 2049}}
        ]}
    }));
    assert!(
        has_refusal(
            &err,
            "containerProperties.volumes[0].efsVolumeConfiguration.transitEncryptionPort",
            "TLS tunnel"
        ),
        "{err}"
    );
}

#[test]
fn propagated_tags_must_be_annotation_keys() {
    let err = convert_err(json!({
        "jobDefinitionName": "t", "type": "container", "containerProperties": {"image": "busybox"},
        "propagateTags": true, "tags": {"Cost Center": "42", "team": "a"}
    }));
    assert!(
        has_refusal(&err, "tags.Cost Center", "not an annotation key"),
        "{err}"
    );
    assert!(!err.contains("tags.team"), "{err}");
    let (objects, _) = convert_ok(json!({
        "jobDefinitionName": "t", "type": "container", "containerProperties": {"image": "busybox"},
        "tags": {"Cost Center": "42"}
    }));
    assert_eq!(objects[0]["spec"]["tags"]["Cost Center"], "42");
    let err = convert_err(json!({
        "jobName": "j", "jobQueue": "q", "jobDefinition": "d",
        "propagateTags": true, "tags": {"a b": "c"}
    }));
    assert!(
        has_refusal(&err, "tags.a b", "not an annotation key"),
        "{err}"
    );
}

#[test]
fn multinode_definitions_import_node_ranges_and_their_instance_types() {
    let (objects, notes) = convert_ok(json!({
        "jobDefinitionName": "mpi",
        "type": "multinode",
        "nodeProperties": {"numNodes": 3, "mainNode": 0, "nodeRangeProperties": [
            {"targetNodes": "0", "container": {"image": "mpi", "instanceType": "c5.large"}},
            {"targetNodes": "1:", "instanceTypes": ["c5.xlarge"], "container": {"image": "mpi",
                "linuxParameters": {"tmpfs": [{"containerPath": "/scratch", "size": 64}]}}}
        ]},
        "retryStrategy": {"attempts": 2}
    }));
    let nodes = &objects[0]["spec"]["nodeProperties"];
    assert_eq!(
        (nodes["numNodes"].as_i64(), nodes["mainNode"].as_i64()),
        (Some(3), Some(0))
    );
    let ranges = &nodes["nodeRangeProperties"];
    assert_eq!(ranges[0]["container"]["instanceType"], "c5.large");
    assert_eq!(ranges[1]["targetNodes"], "1:");
    assert_eq!(ranges[1]["container"]["instanceType"], "c5.xlarge");
    assert_eq!(
        ranges[1]["container"]["linuxParameters"]["tmpfs"][0]["size"],
        64
    );
    assert!(
        notes.iter().all(|n| !n.contains("instanceType")),
        "{notes:?}"
    );
    let err = convert_err(json!({
        "jobDefinitionName": "mpi",
        "type": "multinode",
        "nodeProperties": {"numNodes": 2, "mainNode": 0, "nodeRangeProperties": [
            {"targetNodes": "0", "instanceTypes": ["c5.large", "c5.xlarge"], "container": {"image": "mpi"}},
            {"targetNodes": "1", "instanceTypes": ["c5.large"], "container": {"image": "mpi", "instanceType": "m5.large"}},
            {"targetNodes": "0:1", "ecsProperties": {}, "eksProperties": {}, "consumableResourceProperties": {}, "container": {"image": "mpi", "ulimits": [{"name": "nofile", "softLimit": 1, "hardLimit": -1}]}}
        ]}
    }));
    for (path, text) in [
        (
            "nodeProperties.nodeRangeProperties[0].instanceTypes",
            "Barge runs a node range on one instance type",
        ),
        (
            "nodeProperties.nodeRangeProperties[1].instanceTypes",
            "differs from the container's instanceType \"m5.large\"",
        ),
        ("nodeProperties.nodeRangeProperties[2].ecsProperties", "ECS"),
        (
            "nodeProperties.nodeRangeProperties[2].eksProperties",
            "AWS-shaped containers",
        ),
        (
            "nodeProperties.nodeRangeProperties[2].consumableResourceProperties",
            "consumable",
        ),
        (
            "nodeProperties.nodeRangeProperties[2].container.ulimits[0].hardLimit",
            "-1 (unlimited)",
        ),
    ] {
        assert!(has_refusal(&err, path, text), "{path}: {err}");
    }
}

#[test]
fn eks_pod_properties_import_only_what_the_pod_carries() {
    let (objects, _) = convert_ok(json!({
        "jobDefinitionName": "eks", "type": "container",
        "eksProperties": {"podProperties": {
            "serviceAccountName": "runner",
            "containers": [{"name": "main", "image": "busybox", "command": ["true"], "resources": {"limits": {"cpu": "1"}}}],
            "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory"}}]
        }}
    }));
    let pod = &objects[0]["spec"]["podProperties"];
    assert_eq!(pod["containers"][0]["name"], "main");
    assert_eq!(pod["containers"][0]["resources"]["limits"]["cpu"], "1");
    assert_eq!(pod["volumes"][0]["emptyDir"]["medium"], "Memory");
    assert_eq!(pod["serviceAccountName"], "runner");
    let err = convert_err(json!({
        "jobDefinitionName": "eks", "type": "container",
        "eksProperties": {"podProperties": {
            "hostNetwork": true,
            "metadata": {"labels": {"a": "b"}},
            "containers": [{"name": "main", "image": "busybox", "securityContext": {"runAsUser": 1, "madeUp": true}}]
        }}
    }));
    for path in [
        "eksProperties.podProperties.hostNetwork",
        "eksProperties.podProperties.metadata",
        "eksProperties.podProperties.containers[0].securityContext.madeUp",
    ] {
        assert!(has_refusal(&err, path, ""), "{path}: {err}");
    }
}

#[test]
fn describe_job_definitions_output_imports_the_newest_active_revision() {
    let definition = |revision: i32, status: &str, command: &str| {
        json!({
            "jobDefinitionName": "render",
            "jobDefinitionArn": format!("arn:aws:batch:us-east-1:012345678910:job-definition/render:{revision}"),
            "revision": revision, "status": status, "type": "container",
            "containerProperties": {"image": "busybox", "command": [command]},
            "containerOrchestrationType": "ECS"
        })
    };
    let export = json!({"jobDefinitions": [
        definition(1, "ACTIVE", "one"), definition(2, "ACTIVE", "two"), definition(3, "INACTIVE", "three")
    ], "nextToken": "abc"});
    let job =
        |reference: &str| json!({"jobName": "j", "jobQueue": "q", "jobDefinition": reference});
    let conversion = convert_inputs(
        &[
            ("defs.json".to_string(), export.clone()),
            (
                "job.json".to_string(),
                job("arn:aws:batch:us-east-1:012345678910:job-definition/render:2"),
            ),
        ],
        &ImportOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(conversion.objects.len(), 2);
    let jd = conversion.objects[0].to_value().expect("serializes");
    assert_eq!(jd["metadata"]["name"], "render");
    assert_eq!(jd["spec"]["containerProperties"]["command"], json!(["two"]));
    let submitted = conversion.objects[1].to_value().expect("serializes");
    assert_eq!(submitted["spec"]["jobDefinition"], "render");
    assert_eq!(
        conversion.sources,
        ["defs.json: jobDefinitions[1]", "job.json"]
    );
    let notes: Vec<String> = conversion.notes.iter().map(ToString::to_string).collect();
    for (path, text) in [
        (
            "defs.json: jobDefinitions[0]",
            "revision 1 of render not imported: an older ACTIVE revision",
        ),
        (
            "defs.json: jobDefinitions[2]",
            "revision 3 of render not imported: INACTIVE",
        ),
        (
            "defs.json: nextToken",
            "one page of DescribeJobDefinitions output",
        ),
        (
            "defs.json: jobDefinitions[1].jobDefinitionArn",
            "not imported",
        ),
        (
            "job.json: jobDefinition",
            "revision 2 of render is the one imported with this job",
        ),
    ] {
        assert!(has_note(&notes, path, text), "{path}: {notes:#?}");
    }
    // Another revision than the imported one, or one whose definition is not imported: refused.
    let err = convert_inputs(
        &[
            ("defs.json".to_string(), export),
            ("job.json".to_string(), job("render:1")),
        ],
        &ImportOptions::default(),
    )
    .map(|_| ())
    .expect_err("revision 1 is not imported")
    .to_string();
    assert!(
        err.contains("job.json: jobDefinition: refused: revision 1 of render cannot be carried: this run imports revision 2"),
        "{err}"
    );
    let err = convert_err(job("render:1"));
    assert!(
        has_refusal(&err, "jobDefinition", "AWS revision 1 of render cannot be carried: Barge numbers a definition's revisions itself"),
        "{err}"
    );
    let (objects, _) = convert_ok(job(
        "arn:aws:batch:us-east-1:012345678910:job-definition/render",
    ));
    assert_eq!(objects[0]["spec"]["jobDefinition"], "render");
}

#[test]
fn objects_imported_twice_and_manifests_the_crd_refuses_are_errors() {
    let err = convert_err(json!([
        {"jobDefinitionName": "a", "type": "container", "containerProperties": {"image": "busybox"}},
        {"jobDefinitionName": "A", "type": "container", "containerProperties": {"image": "other"}}
    ]));
    assert!(
        err.starts_with("[1]: refused: JobDefinition \"a\" is also imported from [0]"),
        "{err}"
    );
    let err = convert_err(json!({
        "jobDefinitionName": "a", "type": "container", "containerProperties": {"image": "busybox"},
        "schedulingPriority": 10000, "retryStrategy": {"attempts": 11}
    }));
    assert!(
        err.starts_with("document: JobDefinition.batch.barge.dev \"a\" is invalid: [")
            && err.contains("spec.schedulingPriority")
            && err.contains("spec.retryStrategy.attempts"),
        "{err}"
    );
    let err = convert_err(json!({
        "jobDefinitionName": "a", "type": "container",
        "containerProperties": {"image": "busybox", "resourceRequirements": [{"type": "VCPU", "value": "lots"}]}
    }));
    assert!(
        err.contains(
            "is invalid: spec.containerProperties.resourceRequirements[0]: Invalid value: "
        ) && err.contains("a VCPU value must be a positive number of vCPUs"),
        "{err}"
    );
}

#[test]
fn submit_job_refuses_overrides_barge_cannot_apply() {
    let err = convert_err(json!({
        "jobName": "j", "jobQueue": "q", "jobDefinition": "d",
        "eksPropertiesOverride": {}, "ecsPropertiesOverride": {}, "consumableResourcePropertiesOverride": {},
        "nodeOverrides": {"nodePropertyOverrides": [{"targetNodes": "0", "instanceTypes": ["a", "b"], "ecsPropertiesOverride": {}}]},
        "containerOverrides": {"command": ["x"], "logConfiguration": {}}
    }));
    for path in [
        "eksPropertiesOverride",
        "ecsPropertiesOverride",
        "consumableResourcePropertiesOverride",
        "nodeOverrides.nodePropertyOverrides[0].instanceTypes",
        "nodeOverrides.nodePropertyOverrides[0].ecsPropertiesOverride",
        "containerOverrides.logConfiguration",
    ] {
        assert!(has_refusal(&err, path, ""), "{path}: {err}");
    }
    let (objects, _) = convert_ok(json!({
        "jobName": "j", "jobQueue": "q", "jobDefinition": "d",
        "nodeOverrides": {"numNodes": 4, "nodePropertyOverrides": [{"targetNodes": "1:", "instanceTypes": ["c5.large"],
            "containerOverrides": {"environment": [{"name": "A", "value": "1"}]}}]}
    }));
    assert_eq!(
        objects[0]["spec"]["nodeOverrides"],
        json!({"numNodes": 4, "nodePropertyOverrides": [{"targetNodes": "1:",
            "containerOverrides": {"environment": [{"name": "A", "value": "1"}], "instanceType": "c5.large"}}]})
    );
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
fn unmanaged_compute_environments_are_refused() {
    let err = convert_err(
        json!({"computeEnvironmentName": "u", "type": "UNMANAGED", "unmanagedvCpus": 4}),
    );
    assert!(has_refusal(&err, "type", "spec.nodeSelector"), "{err}");
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
fn sagemaker_queues_are_refused() {
    let err = convert_err(json!({
        "jobQueueName": "sm", "priority": 1, "jobQueueType": "SAGEMAKER_TRAINING",
        "serviceEnvironmentOrder": [{"order": 1, "serviceEnvironment": "se"}]
    }));
    assert!(has_refusal(&err, "jobQueueType", "SageMaker"), "{err}");
    assert!(
        has_refusal(&err, "serviceEnvironmentOrder", "service environments"),
        "{err}"
    );
    let (_, notes) = convert_ok(json!({
        "jobQueueName": "q", "priority": 1, "jobQueueType": "ECS",
        "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "ce"}]
    }));
    assert!(
        has_note(&notes, "jobQueueType", "not imported"),
        "{notes:?}"
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
            "jobDefinition": "arn:aws:batch:us-east-1:1:job-definition/JobB-CPU",
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
    assert_eq!(job["spec"]["jobDefinition"], "jobb-cpu");
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
        "jobDefinition": long
    }));
    assert_eq!(job[0]["spec"]["jobDefinition"], name);
    assert_eq!(job[0]["spec"]["jobQueue"].as_str().map(str::len), Some(63));
    let (queue, _) = convert_ok(json!({
        "jobQueueName": format!("queue_{}", "q".repeat(100)), "priority": 1,
        "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": format!("ce_{}", "c".repeat(100))}]
    }));
    assert_eq!(queue[0]["metadata"]["name"], job[0]["spec"]["jobQueue"]);
    let (ce, _) = convert_ok(json!({
        "computeEnvironmentName": format!("ce_{}", "c".repeat(100)), "type": "MANAGED",
        "computeResources": {"type": "EC2", "maxvCpus": 4}
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
