//! The API surface the design fixes: names, scopes, short names, category, printer columns,
//! status subresource and the status fields every kind shares.
mod support;

use barge_crds::consts::{
    API_VERSION, CATEGORY, GROUP, KIND_COMPUTE_ENVIRONMENT, KIND_JOB, KIND_JOB_DEFINITION,
    KIND_JOB_QUEUE, KIND_SCHEDULING_POLICY, VERSION,
};
use barge_crds::crdgen::crd_schema;

struct Expected {
    kind: &'static str,
    plural: &'static str,
    scope: &'static str,
    short_names: &'static [&'static str],
    columns: &'static [&'static str],
    wide_columns: &'static [&'static str],
}

const EXPECTED: [Expected; 5] = [
    Expected {
        kind: "ComputeEnvironment",
        plural: "computeenvironments",
        scope: "Cluster",
        short_names: &["ce"],
        columns: &["Type", "State", "Status", "Desired vCPUs", "Age"],
        wide_columns: &["Reason"],
    },
    Expected {
        kind: "JobQueue",
        plural: "jobqueues",
        scope: "Cluster",
        short_names: &["jq"],
        columns: &["State", "Priority", "Status", "Age"],
        wide_columns: &["Policy", "Reason"],
    },
    Expected {
        kind: "SchedulingPolicy",
        plural: "schedulingpolicies",
        scope: "Cluster",
        short_names: &["sp"],
        columns: &["Decay", "Reservation", "Age"],
        wide_columns: &[],
    },
    Expected {
        kind: "JobDefinition",
        plural: "jobdefinitions",
        scope: "Namespaced",
        short_names: &["jd"],
        columns: &["Type", "Revision", "Age"],
        wide_columns: &[],
    },
    Expected {
        kind: "Job",
        plural: "jobs",
        scope: "Namespaced",
        short_names: &["bjob", "bj"],
        columns: &["Queue", "Status", "Attempts", "Progress", "Nodes", "Age"],
        wide_columns: &["Reason", "Definition"],
    },
];

#[test]
fn names_scopes_and_printer_columns_are_as_designed() {
    let crds = support::crds();
    assert_eq!(crds.len(), EXPECTED.len());
    for expected in &EXPECTED {
        let crd = support::crd(expected.kind);
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.names.plural, expected.plural);
        assert_eq!(crd.spec.scope, expected.scope, "{}", expected.kind);
        assert_eq!(
            crd.spec.names.short_names.clone().unwrap_or_default(),
            expected
                .short_names
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            crd.spec.names.categories.clone().unwrap_or_default(),
            vec![CATEGORY.to_string()]
        );
        assert_eq!(crd.spec.versions.len(), 1);
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, VERSION);
        assert!(version.served && version.storage);
        assert!(
            version
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some()),
            "{} has a status subresource",
            expected.kind
        );
        let columns = version
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        let default: Vec<&str> = columns
            .iter()
            .filter(|c| c.priority.unwrap_or(0) == 0)
            .map(|c| c.name.as_str())
            .collect();
        let wide: Vec<&str> = columns
            .iter()
            .filter(|c| c.priority.unwrap_or(0) > 0)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(default, expected.columns, "{} columns", expected.kind);
        assert_eq!(
            wide, expected.wide_columns,
            "{} wide columns",
            expected.kind
        );
    }
}

#[test]
fn the_kind_constants_name_the_crds() {
    let kinds: Vec<String> = support::crds()
        .iter()
        .map(|c| c.spec.names.kind.clone())
        .collect();
    assert_eq!(
        kinds,
        vec![
            KIND_COMPUTE_ENVIRONMENT,
            KIND_JOB_QUEUE,
            KIND_SCHEDULING_POLICY,
            KIND_JOB_DEFINITION,
            KIND_JOB
        ]
    );
    assert_eq!(API_VERSION, format!("{GROUP}/{VERSION}"));
}

#[test]
fn every_status_has_map_list_conditions_and_observed_generation() {
    for crd in support::crds() {
        let schema = crd_schema(crd).expect("schema");
        let status = &schema["properties"]["status"]["properties"];
        let conditions = &status["conditions"];
        assert_eq!(
            conditions["x-kubernetes-list-type"], "map",
            "{}",
            crd.spec.names.kind
        );
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"])
        );
        assert_eq!(
            conditions["items"]["required"],
            serde_json::json!(["lastTransitionTime", "message", "reason", "status", "type"])
        );
        assert_eq!(
            status["observedGeneration"]["type"], "integer",
            "{}",
            crd.spec.names.kind
        );
    }
}

#[test]
fn printer_column_paths_exist_in_the_schema() {
    for crd in support::crds() {
        let schema = crd_schema(crd).expect("schema");
        for column in crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
        {
            if column.json_path.starts_with(".metadata.") {
                continue;
            }
            let mut node = &schema;
            for segment in column.json_path.trim_start_matches('.').split('.') {
                node = &node["properties"][segment];
            }
            assert!(
                node.is_object(),
                "{} column {} points at {}, which the schema lacks",
                crd.spec.names.kind,
                column.name,
                column.json_path
            );
        }
    }
}
