use super::*;
use serde_json::{json, Value};

fn crd_schema(file: &str, version: &str) -> Value {
    let text = barge_fixtures::read(&barge_fixtures::crd(file));
    let crd: Value = serde_yaml::from_str(&text).expect("fixture CRD is YAML");
    crd["spec"]["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .find(|v| v["name"] == version)
        .unwrap_or_else(|| panic!("{file} has no version {version}"))["schema"]["openAPIV3Schema"]
        .clone()
}

fn compile(schema: Value) -> CompiledSchema {
    CompiledSchema::new(&schema).expect("schema compiles")
}

fn errors_of(s: &CompiledSchema, obj: &Value) -> Vec<FieldError> {
    s.validate(obj, None).expect_err("object must be refused")
}

fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

fn obj_schema(props: Value) -> Value {
    json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props}}})
}

// ---- upstream CRDs ----------------------------------------------------------------------------

fn nodepool() -> Value {
    json!({
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": "default"},
        "spec": {
            "template": {
                "metadata": {"labels": {"team": "batch"}},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                    "requirements": [
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]},
                        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m5.large"]}
                    ],
                    "taints": [{"key": "batch.barge.dev/compute-environment", "value": "ce1", "effect": "NoSchedule"}]
                }
            },
            "limits": {"cpu": "1000"},
            "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "1m"}
        }
    })
}

#[test]
fn karpenter_nodepool_compiles_and_accepts_a_valid_object() {
    let s = compile(crd_schema("karpenter.sh_nodepools.yaml", "v1"));
    assert!(
        s.cel_compile_errors().is_empty(),
        "{:?}",
        s.cel_compile_errors()
    );
    let mut obj = nodepool();
    s.apply_defaults(&mut obj);
    s.validate(&obj, None)
        .unwrap_or_else(|e| panic!("{:?}", messages(&e)));
    // Defaults of the CRD were applied.
    assert_eq!(obj["spec"]["template"]["spec"]["expireAfter"], "720h");
    assert_eq!(
        obj["spec"]["disruption"]["budgets"],
        json!([{"nodes": "10%"}])
    );
}

#[test]
fn karpenter_nodepool_refuses_a_bad_enum() {
    let s = compile(crd_schema("karpenter.sh_nodepools.yaml", "v1"));
    let mut obj = nodepool();
    obj["spec"]["template"]["spec"]["taints"][0]["effect"] = json!("Sometimes");
    let errs = errors_of(&s, &obj);
    assert_eq!(
        messages(&errs)[0],
        "spec.template.spec.taints[0].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""
    );
    assert_eq!(errs[0].kind, FieldErrorKind::NotSupported);
    // Enum errors block CEL evaluation, as in kube-apiserver.
    assert_eq!(
        errs.last().map(|e| e.message.as_str()),
        Some(CEL_SKIPPED_MESSAGE)
    );
}

#[test]
fn karpenter_nodepool_refuses_a_missing_required_field() {
    let s = compile(crd_schema("karpenter.sh_nodepools.yaml", "v1"));
    let mut obj = nodepool();
    obj["spec"]["template"]["spec"]["nodeClassRef"]
        .as_object_mut()
        .unwrap()
        .remove("kind");
    let errs = errors_of(&s, &obj);
    assert!(
        messages(&errs)
            .contains(&"spec.template.spec.nodeClassRef.kind: Required value".to_string()),
        "{:?}",
        messages(&errs)
    );
}

#[test]
fn karpenter_nodepool_cel_rules_are_enforced_with_their_field_paths() {
    let s = compile(crd_schema("karpenter.sh_nodepools.yaml", "v1"));
    // A restricted requirement key (rule on the items' `key` property).
    let mut obj = nodepool();
    obj["spec"]["template"]["spec"]["requirements"][1]["key"] = json!("kubernetes.io/hostname");
    let errs = errors_of(&s, &obj);
    assert_eq!(
        messages(&errs),
        vec!["spec.template.spec.requirements[1].key: Invalid value: \"kubernetes.io/hostname\": label \"kubernetes.io/hostname\" is restricted"]
    );
    // `In` with no values (rule on the list).
    let mut obj = nodepool();
    obj["spec"]["template"]["spec"]["requirements"][0]["values"] = json!([]);
    let errs = errors_of(&s, &obj);
    assert_eq!(errs.len(), 1, "{:?}", messages(&errs));
    assert_eq!(errs[0].field, "spec.template.spec.requirements");
    assert_eq!(errs[0].bad_value, None, "an array's value is not shown");
    // A restricted label in the template (rule on a map).
    let mut obj = nodepool();
    obj["spec"]["template"]["metadata"]["labels"] = json!({"karpenter.sh/nodepool": "x"});
    let errs = errors_of(&s, &obj);
    assert!(
        errs.iter()
            .all(|e| e.field == "spec.template.metadata.labels"),
        "{:?}",
        messages(&errs)
    );
    assert!(messages(&errs)
        .iter()
        .any(|m| m.ends_with("label \"karpenter.sh/nodepool\" is restricted")));
    // Weight on a static pool (rule with a custom message on spec).
    let mut obj = nodepool();
    obj["spec"]["replicas"] = json!(3);
    obj["spec"]["weight"] = json!(10);
    obj["spec"].as_object_mut().unwrap().remove("limits");
    let errs = errors_of(&s, &obj);
    assert_eq!(
        messages(&errs),
        vec!["spec: Invalid value: 'weight' is not supported on static NodePools"]
    );
}

#[test]
fn karpenter_nodepool_transition_rules_see_the_old_object() {
    let s = compile(crd_schema("karpenter.sh_nodepools.yaml", "v1"));
    let old = nodepool();
    let mut new = nodepool();
    new["spec"]["template"]["spec"]["nodeClassRef"]["kind"] = json!("OtherNodeClass");
    // On create the transition rule does not apply.
    assert!(s.validate(&new, None).is_ok());
    let errs = s.validate(&new, Some(&old)).expect_err("kind is immutable");
    assert_eq!(
        messages(&errs),
        vec!["spec.template.spec.nodeClassRef: Invalid value: nodeClassRef.kind is immutable"]
    );
    // Switching between static and dynamic provisioning.
    let mut static_pool = nodepool();
    static_pool["spec"]["replicas"] = json!(2);
    static_pool["spec"]
        .as_object_mut()
        .unwrap()
        .remove("limits");
    let errs = s
        .validate(&static_pool, Some(&old))
        .expect_err("mode switch");
    assert_eq!(errs[0].field, "spec");
    assert!(errs[0]
        .message
        .starts_with("Cannot transition NodePool between static"));
}

fn machine_deployment() -> Value {
    json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2",
        "kind": "MachineDeployment",
        "metadata": {"name": "md-0", "namespace": "default"},
        "spec": {
            "clusterName": "c1",
            "replicas": 3,
            "selector": {"matchLabels": {"pool": "md-0"}},
            "template": {
                "metadata": {"labels": {"pool": "md-0"}},
                "spec": {
                    "clusterName": "c1",
                    "version": "v1.33.0",
                    "bootstrap": {"configRef": {"apiGroup": "bootstrap.cluster.x-k8s.io", "kind": "KubeadmConfigTemplate", "name": "md-0"}},
                    "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DockerMachineTemplate", "name": "md-0"}
                }
            }
        }
    })
}

#[test]
fn cluster_api_machine_deployment_compiles_and_validates() {
    let s = compile(crd_schema(
        "cluster.x-k8s.io_machinedeployments.yaml",
        "v1beta2",
    ));
    compile(crd_schema(
        "cluster.x-k8s.io_machinedeployments.yaml",
        "v1beta1",
    ));
    let obj = machine_deployment();
    s.validate(&obj, None)
        .unwrap_or_else(|e| panic!("{:?}", messages(&e)));

    let mut bad = machine_deployment();
    bad["spec"].as_object_mut().unwrap().remove("clusterName");
    bad["spec"]["rollout"] = json!({"strategy": {"type": "Recreate"}});
    bad["spec"]["replicas"] = json!("three");
    let msgs = messages(&errors_of(&s, &bad));
    assert!(
        msgs.contains(&"spec.clusterName: Required value".to_string()),
        "{msgs:?}"
    );
    assert!(msgs.contains(&"spec.rollout.strategy.type: Unsupported value: \"Recreate\": supported values: \"RollingUpdate\", \"OnDelete\"".to_string()), "{msgs:?}");
    assert!(msgs.contains(&"spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"".to_string()), "{msgs:?}");
}

#[test]
fn cluster_api_map_lists_refuse_duplicate_keys() {
    let s = compile(crd_schema(
        "cluster.x-k8s.io_machinedeployments.yaml",
        "v1beta2",
    ));
    let mut obj = machine_deployment();
    obj["spec"]["template"]["spec"]["taints"] = json!([
        {"key": "a", "effect": "NoSchedule", "propagation": "Always"},
        {"key": "a", "effect": "NoSchedule", "propagation": "Always"}
    ]);
    let errs = errors_of(&s, &obj);
    let dup: Vec<&FieldError> = errs
        .iter()
        .filter(|e| e.kind == FieldErrorKind::Duplicate)
        .collect();
    assert_eq!(dup.len(), 1, "{:?}", messages(&errs));
    assert_eq!(dup[0].field, "spec.template.spec.taints[1]");
    assert_eq!(
        s.list_type_at(&["spec", "template", "spec", "taints"]),
        ListType::Map {
            keys: vec!["key".into(), "effect".into()]
        }
    );
    assert_eq!(
        s.list_type_at(&["spec", "selector", "matchExpressions"]),
        ListType::Atomic
    );
    assert!(s.map_is_atomic_at(&["spec", "selector"]));
}

#[test]
fn pruning_the_upstream_crd_keeps_known_fields_and_reports_unknown_ones() {
    let s = compile(crd_schema("karpenter.sh_nodepools.yaml", "v1"));
    let mut obj = nodepool();
    obj["spec"]["bogus"] = json!(1);
    obj["spec"]["template"]["spec"]["requirements"][0]["extra"] = json!("x");
    obj["metadata"]["whatever"] = json!("kept: metadata is the server's business");
    let removed = s.prune(&mut obj);
    assert_eq!(
        removed,
        vec![
            "spec.bogus".to_string(),
            "spec.template.spec.requirements[0].extra".to_string()
        ]
    );
    assert!(obj["spec"].get("bogus").is_none());
    assert_eq!(
        obj["metadata"]["whatever"],
        "kept: metadata is the server's business"
    );
    assert_eq!(
        obj["spec"]["template"]["metadata"]["labels"]["team"],
        "batch"
    );
}

// ---- keywords ----------------------------------------------------------------------------------

#[test]
fn type_mismatches_and_nullable() {
    let s = compile(obj_schema(json!({
        "n": {"type": "integer"},
        "f": {"type": "number"},
        "b": {"type": "boolean"},
        "o": {"type": "object"},
        "a": {"type": "array", "items": {"type": "string"}},
        "z": {"type": "string", "nullable": true}
    })));
    let ok = json!({"spec": {"n": 2.0, "f": 3, "b": true, "o": {}, "a": ["x"], "z": null}});
    assert!(
        s.validate(&ok, None).is_ok(),
        "integral floats are integers, integers are numbers"
    );
    let bad = json!({"spec": {"n": 1.5, "b": "yes", "o": [], "a": "x"}});
    assert_eq!(
        messages(&errors_of(&s, &bad)),
        vec![
            "spec.a: Invalid value: \"string\": spec.a in body must be of type array: \"string\"",
            "spec.b: Invalid value: \"string\": spec.b in body must be of type boolean: \"string\"",
            "spec.n: Invalid value: \"number\": spec.n in body must be of type integer: \"number\"",
            "spec.o: Invalid value: \"array\": spec.o in body must be of type object: \"array\"",
        ]
    );
    let null = json!({"spec": {"n": null}});
    assert_eq!(
        messages(&errors_of(&s, &null)),
        vec!["spec.n: Invalid value: \"null\": spec.n in body must be of type integer: \"null\""]
    );
    assert!(errors_of(&s, &null)
        .iter()
        .all(|e| e.kind == FieldErrorKind::TypeInvalid));
}

#[test]
fn int_or_string() {
    let s = compile(obj_schema(
        json!({"port": {"x-kubernetes-int-or-string": true}}),
    ));
    assert!(s.validate(&json!({"spec": {"port": 80}}), None).is_ok());
    assert!(s.validate(&json!({"spec": {"port": "http"}}), None).is_ok());
    assert_eq!(
        messages(&errors_of(&s, &json!({"spec": {"port": true}}))),
        vec!["spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\""]
    );
}

#[test]
fn numeric_bounds() {
    let s = compile(obj_schema(json!({
        "size": {"type": "integer", "minimum": 2, "maximum": 10000},
        "pct": {"type": "integer", "minimum": 0, "maximum": 99, "exclusiveMaximum": true},
        "ratio": {"type": "number", "minimum": 0.5, "exclusiveMinimum": true},
        "step": {"type": "integer", "multipleOf": 5}
    })));
    assert!(s
        .validate(
            &json!({"spec": {"size": 2, "pct": 98, "ratio": 0.75, "step": 10}}),
            None
        )
        .is_ok());
    assert_eq!(
        messages(&errors_of(
            &s,
            &json!({"spec": {"size": 1, "pct": 99, "ratio": 0.5, "step": 7}})
        )),
        vec![
            "spec.pct: Invalid value: 99: spec.pct in body should be less than 99",
            "spec.ratio: Invalid value: 0.5: spec.ratio in body should be greater than 0.5",
            "spec.size: Invalid value: 1: spec.size in body should be greater than or equal to 2",
            "spec.step: Invalid value: 7: spec.step in body should be a multiple of 5",
        ]
    );
    assert_eq!(
        messages(&errors_of(&s, &json!({"spec": {"size": 10001}}))),
        vec!["spec.size: Invalid value: 10001: spec.size in body should be less than or equal to 10000"]
    );
}

#[test]
fn string_keywords_and_formats() {
    let s = compile(obj_schema(json!({
        "name": {"type": "string", "minLength": 1, "maxLength": 5, "pattern": "^[a-z]+$"},
        "at": {"type": "string", "format": "date-time"},
        "n32": {"type": "integer", "format": "int32"},
        "odd": {"type": "string", "format": "not-a-known-format"}
    })));
    assert!(s
        .validate(
            &json!({"spec": {"name": "abc", "at": "2024-01-02T03:04:05Z", "n32": 3, "odd": "?"}}),
            None
        )
        .is_ok());
    assert_eq!(
        messages(&errors_of(&s, &json!({"spec": {"name": ""}}))),
        vec![
            "spec.name: Invalid value: \"\": spec.name in body should be at least 1 chars long",
            "spec.name: Invalid value: \"\": spec.name in body should match '^[a-z]+$'",
        ]
    );
    let errs = errors_of(&s, &json!({"spec": {"name": "abcdef"}}));
    assert_eq!(
        messages(&errs),
        vec!["spec.name: Too long: may not be longer than 5"]
    );
    assert_eq!(errs[0].kind, FieldErrorKind::TooLong);
    assert_eq!(
        messages(&errors_of(&s, &json!({"spec": {"at": "tomorrow"}}))),
        vec!["spec.at: Invalid value: \"tomorrow\": spec.at in body must be of type date-time: \"tomorrow\""]
    );
}

#[test]
fn enum_values_are_quoted_and_numbers_marshalled() {
    let s = compile(obj_schema(json!({
        "state": {"type": "string", "enum": ["ENABLED", "DISABLED"]},
        "level": {"type": "integer", "enum": [1, 2]}
    })));
    assert!(s
        .validate(&json!({"spec": {"state": "ENABLED", "level": 2}}), None)
        .is_ok());
    assert_eq!(
        messages(&errors_of(
            &s,
            &json!({"spec": {"state": "ON", "level": 3}})
        )),
        vec![
            "spec.level: Unsupported value: 3: supported values: \"1\", \"2\"",
            "spec.state: Unsupported value: \"ON\": supported values: \"ENABLED\", \"DISABLED\"",
        ]
    );
}

#[test]
fn array_and_object_sizes() {
    let s = compile(obj_schema(json!({
        "deps": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
        "tags": {"type": "object", "minProperties": 1, "maxProperties": 2, "additionalProperties": {"type": "string", "maxLength": 3}}
    })));
    assert!(s
        .validate(&json!({"spec": {"deps": ["a"], "tags": {"k": "v"}}}), None)
        .is_ok());
    let errs = errors_of(
        &s,
        &json!({"spec": {"deps": ["a", "b", "c"], "tags": {"a": "1", "b": "2", "c": "3"}}}),
    );
    assert_eq!(
        messages(&errs),
        vec![
            "spec.deps: Too many: 3: must have at most 2 items",
            "spec.tags: Too many: 3: must have at most 2 items"
        ]
    );
    assert!(errs.iter().all(|e| e.kind == FieldErrorKind::TooMany));
    assert_eq!(
        messages(&errors_of(&s, &json!({"spec": {"deps": [], "tags": {}}}))),
        vec![
            "spec.deps: Invalid value: 0: spec.deps in body should have at least 1 items",
            "spec.tags: Invalid value: 0: spec.tags in body should have at least 1 properties",
        ]
    );
    assert_eq!(
        messages(&errors_of(&s, &json!({"spec": {"tags": {"k": "long"}}}))),
        vec!["spec.tags.k: Too long: may not be longer than 3"]
    );
}

#[test]
fn required_at_the_root_and_nested() {
    let s = compile(json!({
        "type": "object",
        "required": ["spec"],
        "properties": {"spec": {"type": "object", "required": ["jobQueue"], "properties": {"jobQueue": {"type": "string"}}}}
    }));
    assert_eq!(
        messages(&errors_of(&s, &json!({}))),
        vec!["spec: Required value"]
    );
    assert_eq!(
        messages(&errors_of(&s, &json!({"spec": {}}))),
        vec!["spec.jobQueue: Required value"]
    );
}

#[test]
fn junctors_report_at_the_root_like_the_api_server() {
    let s = compile(obj_schema(json!({
        "provider": {
            "type": "object",
            "properties": {"simulated": {"type": "object"}, "karpenter": {"type": "object"}},
            "oneOf": [{"required": ["simulated"]}, {"required": ["karpenter"]}]
        },
        "count": {"type": "integer", "anyOf": [{"minimum": 10}, {"maximum": 0}]},
        "mode": {"type": "string", "not": {"enum": ["FARGATE"]}},
        "both": {"type": "integer", "allOf": [{"minimum": 1}, {"maximum": 5}]}
    })));
    assert!(s.validate(&json!({"spec": {"provider": {"simulated": {}}, "count": 20, "mode": "EC2", "both": 3}}), None).is_ok());
    let msgs = messages(&errors_of(
        &s,
        &json!({"spec": {"provider": {"simulated": {}, "karpenter": {}}}}),
    ));
    assert_eq!(
        msgs,
        vec!["<nil>: Invalid value: \"\": \"spec.provider\" must validate one and only one schema (oneOf). Found 2 valid alternatives"]
    );
    let msgs = messages(&errors_of(&s, &json!({"spec": {"provider": {}}})));
    assert_eq!(msgs[0], "<nil>: Invalid value: \"\": \"spec.provider\" must validate one and only one schema (oneOf). Found none valid");
    assert!(
        msgs.contains(&"spec.provider.simulated: Required value".to_string()),
        "{msgs:?}"
    );
    let msgs = messages(&errors_of(&s, &json!({"spec": {"count": 5}})));
    assert_eq!(
        msgs[0],
        "<nil>: Invalid value: \"\": \"spec.count\" must validate at least one schema (anyOf)"
    );
    let msgs = messages(&errors_of(&s, &json!({"spec": {"mode": "FARGATE"}})));
    assert_eq!(
        msgs,
        vec!["<nil>: Invalid value: \"\": \"spec.mode\" must not validate the schema (not)"]
    );
    let msgs = messages(&errors_of(&s, &json!({"spec": {"both": 9}})));
    assert_eq!(
        msgs,
        vec![
            "spec.both: Invalid value: 9: spec.both in body should be less than or equal to 5",
            "<nil>: Invalid value: \"\": \"spec.both\" must validate all the schemas (allOf)",
        ]
    );
}

#[test]
fn set_lists_refuse_duplicates() {
    let s = compile(obj_schema(json!({
        "types": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
    })));
    assert!(s
        .validate(&json!({"spec": {"types": ["a", "b"]}}), None)
        .is_ok());
    let errs = errors_of(&s, &json!({"spec": {"types": ["a", "b", "a", "a"]}}));
    assert_eq!(
        messages(&errs),
        vec!["spec.types[2]: Duplicate value: \"a\""]
    );
    assert_eq!(s.list_type_at(&["spec", "types"]), ListType::Set);
    assert_eq!(s.list_type_at(&["spec", "missing"]), ListType::Atomic);
}

#[test]
fn map_lists_report_the_key_object() {
    let s = compile(obj_schema(json!({
        "env": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "string"}}}}
    })));
    let errs = errors_of(
        &s,
        &json!({"spec": {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}}),
    );
    assert_eq!(
        messages(&errs),
        vec!["spec.env[1]: Duplicate value: map[string]interface {}{\"name\":\"A\"}"]
    );
}

#[test]
fn cel_rules_use_message_expression_reason_and_field_path() {
    let s = compile(json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "!(has(self.containerProperties) && has(self.nodeProperties))",
                 "message": "containerProperties and nodeProperties are mutually exclusive",
                 "reason": "FieldValueForbidden", "fieldPath": ".nodeProperties"},
                {"rule": "self.attempts <= 10", "messageExpression": "'attempts must be at most 10, got ' + string(self.attempts)"},
                {"rule": "self.attempts >= 1"}
            ],
            "properties": {
                "attempts": {"type": "integer"},
                "containerProperties": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "nodeProperties": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "tags": {"type": "object", "additionalProperties": {"type": "string", "x-kubernetes-validations": [
                    {"rule": "!self.startsWith('AWS_BATCH_')", "message": "reserved prefix"}
                ]}}
            }
        }}
    }));
    let ok = json!({"spec": {"attempts": 3, "containerProperties": {}, "tags": {"a": "b"}}});
    assert!(s.validate(&ok, None).is_ok());
    let bad = json!({"spec": {"attempts": 11, "containerProperties": {}, "nodeProperties": {}, "tags": {"k.x": "AWS_BATCH_X"}}});
    assert_eq!(
        messages(&errors_of(&s, &bad)),
        vec![
            "spec.nodeProperties: Forbidden: containerProperties and nodeProperties are mutually exclusive",
            "spec: Invalid value: attempts must be at most 10, got 11",
            "spec.tags[k.x]: Invalid value: \"AWS_BATCH_X\": reserved prefix",
        ]
    );
    assert_eq!(
        messages(&errors_of(&s, &json!({"spec": {"attempts": 0}}))),
        vec!["spec: Invalid value: failed rule: self.attempts >= 1"]
    );
}

/// kube-apiserver (apiextensions-apiserver `validateExpressions`) shows the value a failed rule
/// was evaluated on, not its schema type: omitted for objects and arrays, Go-formatted for
/// scalars, with any `reason`; the detail is trimmed.
#[test]
fn cel_failures_show_the_rules_value_not_its_type() {
    let s = compile(obj_schema(json!({
        "price": {"type": "string", "nullable": true, "x-kubernetes-validations": [
            {"rule": "self.matches('^[0-9]+$')", "message": "  price must be a number  "}]},
        "ratio": {"type": "number", "x-kubernetes-validations": [
            {"rule": "self < 1.0", "messageExpression": "'ratio ' + string(self) + ' is too big'"}]},
        "on": {"type": "boolean", "x-kubernetes-validations": [
            {"rule": "self", "reason": "FieldValueDuplicate"}]},
        "names": {"type": "array", "items": {"type": "string"}, "x-kubernetes-validations": [
            {"rule": "self.size() < 2", "reason": "FieldValueDuplicate"},
            {"rule": "self.size() < 3", "message": "at most two names"}]},
        "limits": {"type": "object", "additionalProperties": {"type": "integer"}, "x-kubernetes-validations": [
            {"rule": "self.all(k, self[k] < 10)", "reason": "FieldValueRequired", "message": "small limits"}]}
    })));
    let bad = json!({"spec": {"price": "x1", "ratio": 1.5, "on": false, "names": ["a", "b", "c"], "limits": {"a": 11}}});
    let mut got = messages(&errors_of(&s, &bad));
    got.sort();
    assert_eq!(
        got,
        vec![
            "spec.limits: Required value: small limits",
            "spec.names: Duplicate value",
            "spec.names: Invalid value: at most two names",
            "spec.on: Duplicate value: false",
            "spec.price: Invalid value: \"x1\": price must be a number",
            "spec.ratio: Invalid value: 1.5: ratio 1.5 is too big",
        ]
    );
}

#[test]
fn cel_transition_rules_correlate_map_list_items_by_key() {
    let s = compile(obj_schema(json!({
        "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "size": {"type": "integer",
                "x-kubernetes-validations": [{"rule": "self >= oldSelf", "message": "may not shrink"}]}}}},
        "plain": {"type": "array",
            "items": {"type": "object", "properties": {"size": {"type": "integer",
                "x-kubernetes-validations": [{"rule": "self >= oldSelf", "message": "may not shrink"}]}}}}
    })));
    let old = json!({"spec": {"items": [{"name": "a", "size": 5}, {"name": "b", "size": 1}], "plain": [{"size": 9}]}});
    // Reordered but not shrunk: fine, because items are matched by name and not by index.
    let reordered = json!({"spec": {"items": [{"name": "b", "size": 1}, {"name": "a", "size": 5}], "plain": [{"size": 1}]}});
    assert!(
        s.validate(&reordered, Some(&old)).is_ok(),
        "atomic list items are not correlated"
    );
    let shrunk = json!({"spec": {"items": [{"name": "b", "size": 1}, {"name": "a", "size": 4}], "plain": [{"size": 1}]}});
    assert_eq!(
        messages(&s.validate(&shrunk, Some(&old)).unwrap_err()),
        vec!["spec.items[1].size: Invalid value: 4: may not shrink"]
    );
}

#[test]
fn type_errors_skip_cel_rules() {
    let s = compile(obj_schema(json!({
        "n": {"type": "integer", "x-kubernetes-validations": [{"rule": "self > 100", "message": "too small"}]}
    })));
    let errs = errors_of(&s, &json!({"spec": {"n": "x"}}));
    assert_eq!(errs.len(), 2);
    assert_eq!(
        errs[1].to_string(),
        format!("<nil>: Invalid value: null: {CEL_SKIPPED_MESSAGE}")
    );
    let errs = errors_of(&s, &json!({"spec": {"n": 1}}));
    assert_eq!(messages(&errs), vec!["spec.n: Invalid value: 1: too small"]);
}

#[test]
fn pruning_honours_preserve_unknown_fields_and_embedded_resources() {
    let s = compile(json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                         "properties": {"typed": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                             "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "list": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}}
            }}
        }
    }));
    let mut obj = json!({
        "apiVersion": "batch.barge.dev/v1alpha1", "kind": "Job", "metadata": {"name": "j"},
        "status": {"gone": true},
        "spec": {
            "free": {"anything": {"nested": 1}, "typed": {"a": "x", "b": "pruned"}},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": "y", "z": "pruned"}, "other": 1},
            "labels": {"any": "kept"},
            "list": [{"k": "v", "extra": 1}]
        }
    });
    let mut removed = s.prune(&mut obj);
    removed.sort();
    assert_eq!(
        removed,
        vec![
            "spec.free.typed.b",
            "spec.list[0].extra",
            "spec.template.other",
            "spec.template.spec.z",
            "status",
        ]
    );
    assert_eq!(obj["spec"]["free"]["anything"]["nested"], 1);
    assert_eq!(obj["spec"]["template"]["kind"], "Pod");
    assert_eq!(obj["spec"]["labels"]["any"], "kept");
    assert_eq!(obj["apiVersion"], "batch.barge.dev/v1alpha1");
}

#[test]
fn embedded_resources_need_type_meta() {
    let s = compile(obj_schema(json!({
        "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}
    })));
    assert!(s
        .validate(
            &json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod"}}}),
            None
        )
        .is_ok());
    assert_eq!(
        messages(&errors_of(
            &s,
            &json!({"spec": {"template": {"kind": "Pod"}}})
        )),
        vec!["spec.template.apiVersion: Required value: must not be empty"]
    );
}

#[test]
fn defaults_fill_missing_and_null_fields_and_drop_other_nulls() {
    let s = compile(obj_schema(json!({
        "state": {"type": "string", "default": "ENABLED"},
        "retry": {"type": "object", "default": {}, "properties": {"attempts": {"type": "integer", "default": 1}}},
        "note": {"type": "string"},
        "maybe": {"type": "string", "nullable": true},
        "list": {"type": "array", "items": {"type": "object", "properties": {"w": {"type": "number", "default": 1.0}}}},
        "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"on": {"type": "boolean", "default": true}}}}
    })));
    let mut obj = json!({"spec": {"state": null, "note": null, "maybe": null, "list": [{}, {"w": 2}], "map": {"a": {}}}});
    s.apply_defaults(&mut obj);
    assert_eq!(
        obj,
        json!({"spec": {
            "state": "ENABLED",
            "retry": {"attempts": 1},
            "maybe": null,
            "list": [{"w": 1.0}, {"w": 2}],
            "map": {"a": {"on": true}}
        }})
    );
}

#[test]
fn bad_schemas_are_refused() {
    assert!(CompiledSchema::new(
        &json!({"type": "object", "properties": {"a": {"type": "strnig"}}})
    )
    .is_err());
    assert!(CompiledSchema::new(&json!({"type": "string", "pattern": "("})).is_err());
    assert!(CompiledSchema::new(
        &json!({"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}})
    )
    .is_err());
    assert!(CompiledSchema::new(&json!("not a schema")).is_err());
}

#[test]
fn invalid_status_renders_validation_errors() {
    let s = compile(obj_schema(
        json!({"size": {"type": "integer", "minimum": 2}}),
    ));
    let errs = errors_of(&s, &json!({"spec": {"size": 1}}));
    let st = invalid_status("batch.barge.dev", "Job", "x", &errs);
    assert_eq!(
        st["message"],
        "Job.batch.barge.dev \"x\" is invalid: spec.size: Invalid value: 1: spec.size in body should be greater than or equal to 2"
    );
    assert_eq!(st["details"]["causes"][0]["field"], "spec.size");
}

#[test]
fn compiled_schemas_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledSchema>();
}

// ---- validation ratcheting (CRDValidationRatcheting) -------------------------------------------

fn ratcheting_schema() -> CompiledSchema {
    compile(json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "queue": {"type": "string", "pattern": "^[a-z-]+$"},
            "share": {"type": "string", "x-kubernetes-validations": [
                {"rule": "self.matches('^[A-Za-z0-9_-]+$')", "message": "bad share"}]},
            "size": {"type": "integer", "x-kubernetes-validations": [
                {"rule": "self >= oldSelf", "message": "size may only grow"}]},
            "tags": {"type": "array", "x-kubernetes-list-type": "set",
                     "items": {"type": "string"}}}},
        "status": {"type": "object", "properties": {
            "phase": {"type": "string", "enum": ["Pending", "Running"]}}}}}))
}

#[test]
fn an_invalid_spec_already_stored_does_not_block_a_status_write() {
    let s = ratcheting_schema();
    // Stored before the rules tightened: every spec value breaks a rule.
    let old = json!({"spec": {"queue": "Bad Queue", "share": "no spaces!", "size": 3,
                              "tags": ["a", "a"]},
                     "status": {"phase": "Pending"}});
    assert_eq!(errors_of(&s, &old).len(), 3, "{:?}", errors_of(&s, &old));
    let mut status_write = old.clone();
    status_write["status"]["phase"] = json!("Running");
    s.validate(&status_write, Some(&old))
        .expect("unchanged spec values are not re-validated");
    // A new invalid value is refused, in spec or in status, beside the ratcheted ones.
    let mut bad_status = old.clone();
    bad_status["status"]["phase"] = json!("Sleeping");
    let errs = s
        .validate(&bad_status, Some(&old))
        .expect_err("new status value");
    // An unsupported value blocks the CEL rules, as upstream's hasBlockingErr.
    assert_eq!(errs.len(), 2, "{}", messages(&errs).join("; "));
    assert_eq!(errs[0].field, "status.phase");
    assert_eq!(errs[1].message, CEL_SKIPPED_MESSAGE);
    let mut bad_spec = old.clone();
    bad_spec["spec"]["share"] = json!("still bad!");
    let errs = s.validate(&bad_spec, Some(&old)).expect_err("new share");
    assert_eq!(
        messages(&errs),
        vec!["spec.share: Invalid value: \"still bad!\": bad share"]
    );
    bad_spec["spec"]["queue"] = json!("Other Bad");
    let errs = s.validate(&bad_spec, Some(&old)).expect_err("new queue");
    assert_eq!(errs.len(), 2, "{}", messages(&errs).join("; "));
}

#[test]
fn ratcheting_keeps_transition_rules_and_list_types_for_changed_values() {
    let s = ratcheting_schema();
    let old = json!({"spec": {"queue": "q", "share": "a", "size": 3, "tags": ["a", "b"]}});
    let mut shrink = old.clone();
    shrink["spec"]["size"] = json!(2);
    let errs = s
        .validate(&shrink, Some(&old))
        .expect_err("oldSelf still applies");
    assert_eq!(
        messages(&errs),
        vec!["spec.size: Invalid value: 2: size may only grow"]
    );
    let mut grow = old.clone();
    grow["spec"]["size"] = json!(4);
    s.validate(&grow, Some(&old)).expect("growing is allowed");
    // Duplicates in a set are refused when the old object had none…
    let mut dup = old.clone();
    dup["spec"]["tags"] = json!(["a", "a"]);
    assert!(s.validate(&dup, Some(&old)).is_err());
    // …and tolerated when the stored object already had them (upstream's list-type ratchet).
    let mut more = dup.clone();
    more["spec"]["size"] = json!(5);
    s.validate(&more, Some(&dup))
        .expect("stored duplicates do not block other changes");
}

#[test]
fn nested_rules_read_the_object_converted_once_at_the_root() {
    // Rules at the root, on spec and on list items: the object and the old one are converted to
    // CEL once, at the root, and the nested rules read their part of that conversion (map-list
    // items through their old counterpart's index, escaped names, date-time as timestamps).
    let s = compile(json!({"type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.metadata.name.startsWith('job-')", "message": "bad name"},
            // A resource's metadata is what CEL sees of ObjectMeta: name and generateName only.
            {"rule": "self.metadata.size() <= 2", "message": "metadata seen whole"}],
        "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": "self.items.size() <= 3", "message": "too many"}],
            "properties": {"items": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object",
                    "x-kubernetes-validations": [{"rule": "self.max__size >= 1", "message": "max_size"}],
                    "properties": {"name": {"type": "string"},
                        "max_size": {"type": "integer"},
                        "at": {"type": "string", "format": "date-time",
                            "x-kubernetes-validations": [{"rule": "self < timestamp('2030-01-01T00:00:00Z')", "message": "too late"}]},
                        "size": {"type": "integer",
                            "x-kubernetes-validations": [{"rule": "self >= oldSelf", "message": "may not shrink"}]}}}}}}}}));
    let meta = json!({"name": "job-1", "namespace": "default", "labels": {"a": "b"},
        "managedFields": [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {}}]});
    let old = json!({"metadata": meta, "spec": {"items": [
        {"name": "a", "size": 5, "max_size": 9, "at": "2029-01-01T00:00:00Z"},
        {"name": "b", "size": 1, "max_size": 9}]}});
    assert!(
        s.validate(&old, None).is_ok(),
        "{:?}",
        s.validate(&old, None)
    );
    let shrunk = json!({"metadata": meta, "spec": {"items": [
        {"name": "b", "size": 1, "max_size": 9},
        {"name": "a", "size": 4, "max_size": 0, "at": "2031-01-01T00:00:00Z"}]}});
    assert_eq!(
        messages(&s.validate(&shrunk, Some(&old)).unwrap_err()),
        vec![
            "spec.items[1]: Invalid value: max_size",
            "spec.items[1].at: Invalid value: \"2031-01-01T00:00:00Z\": too late",
            "spec.items[1].size: Invalid value: 4: may not shrink",
        ]
    );
    let renamed = json!({"metadata": {"name": "other"}, "spec": {"items": []}});
    assert_eq!(
        messages(&s.validate(&renamed, Some(&old)).unwrap_err()),
        vec!["<nil>: Invalid value: bad name"]
    );
}

#[test]
fn map_list_keys_compare_in_place_as_their_key_objects() {
    let keys = vec!["type".to_string(), "name".to_string()];
    let items = [
        json!({"type": "VCPU", "name": "a", "value": "1"}),
        json!({"type": "VCPU", "name": "a", "value": "2"}),
        json!({"type": "VCPU"}),
        json!({"type": "VCPU", "name": null}),
        json!({"type": 1, "name": "a"}),
        json!({"type": 1.0, "name": "a"}),
        json!({}),
        json!(null),
        json!("scalar"),
    ];
    for a in &items {
        for b in &items {
            assert_eq!(
                structural::map_list_keys_eq(a, b, &keys),
                structural::json_eq(
                    &structural::map_list_key(a, &keys),
                    &structural::map_list_key(b, &keys)
                ),
                "{a} {b}"
            );
        }
    }
}

#[test]
fn rules_on_nested_list_items_fire_under_a_transition_only_parent() {
    // The parent's rules are all transition rules, so a create binds nothing there; the rules of
    // the map-list items below still run (converting their own values), with their messages,
    // and on an update the parent's transition rule sees the old value.
    let s = compile(
        json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.reqs == oldSelf.reqs", "message": "reqs are immutable", "fieldPath": ".reqs"}],
        "properties": {"reqs": {"type": "array", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
            "items": {"type": "object",
                "x-kubernetes-validations": [
                    {"rule": "self.type != 'VCPU' || self.value.matches('^[0-9]+$')", "message": "VCPU must be an integer"}],
                "properties": {"type": {"type": "string"}, "value": {"type": "string"}}}}}}}}),
    );
    let good = json!({"spec": {"reqs": [{"type": "MEMORY", "value": "2048"}, {"type": "VCPU", "value": "1"}]}});
    assert!(s.validate(&good, None).is_ok());
    let bad = json!({"spec": {"reqs": [{"type": "MEMORY", "value": "2048"}, {"type": "VCPU", "value": "x"}]}});
    assert_eq!(
        messages(&s.validate(&bad, None).unwrap_err()),
        vec!["spec.reqs[1]: Invalid value: VCPU must be an integer"]
    );
    let changed = json!({"spec": {"reqs": [{"type": "MEMORY", "value": "4096"}, {"type": "VCPU", "value": "1"}]}});
    assert_eq!(
        messages(&s.validate(&changed, Some(&good)).unwrap_err()),
        vec!["spec.reqs: Invalid value: reqs are immutable"]
    );
    // Unchanged: ratcheted, nothing evaluated.
    assert!(s.validate(&good, Some(&good)).is_ok());
}
