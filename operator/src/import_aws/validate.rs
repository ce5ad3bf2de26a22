//! Every converted object checked against its CRD before anything is printed, exactly as the
//! API server (and barge-sim, which implements its validation) checks it on `kubectl apply`:
//! unknown fields refused (kubectl's strict field validation), defaults applied, the structural
//! schema and the CEL `x-kubernetes-validations`. A violation is reported with the API server's
//! message, so output `kubectl apply` would refuse is never printed.

use std::collections::BTreeMap;

use barge_crds::crdgen::{crd_for_kind, crd_schema};
use barge_sim::apimachinery::validation::{invalid_status, CompiledSchema};
use serde_json::Value;

use super::BargeObject;

/// The CRD schemas, compiled on first use per kind.
#[derive(Default)]
pub(crate) struct Validator {
    schemas: BTreeMap<&'static str, CompiledSchema>,
}

impl Validator {
    fn schema(&mut self, kind: &'static str) -> Result<&CompiledSchema, String> {
        if !self.schemas.contains_key(kind) {
            let crd = crd_for_kind(kind).ok_or_else(|| format!("{kind} is not a Barge kind"))?;
            let schema = crd_schema(&crd).ok_or_else(|| format!("the {kind} CRD has no schema"))?;
            let compiled = CompiledSchema::new(&schema)
                .map_err(|e| format!("the {kind} CRD's schema does not compile: {e}"))?;
            let cel_errors = compiled.cel_compile_errors();
            if !cel_errors.is_empty() {
                return Err(format!(
                    "the {kind} CRD's validation rules do not compile: {}",
                    cel_errors.join("; ")
                ));
            }
            self.schemas.insert(kind, compiled);
        }
        Ok(&self.schemas[kind])
    }

    /// Checks `object` as the API server would create it; the error is the API server's message
    /// (`JobDefinition.batch.barge.dev "x" is invalid: spec...: Invalid value: ...`).
    pub(crate) fn check(&mut self, object: &BargeObject) -> Result<(), String> {
        let value = object
            .to_value()
            .map_err(|e| format!("cannot render the manifest: {e}"))?;
        self.check_value(object.kind(), &object.name(), value)
    }

    pub(crate) fn check_value(
        &mut self,
        kind: &'static str,
        name: &str,
        mut value: Value,
    ) -> Result<(), String> {
        let schema = self.schema(kind)?;
        let unknown = schema.prune(&mut value);
        if !unknown.is_empty() {
            let fields: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field {f:?}"))
                .collect();
            return Err(format!(
                "{kind}.{} {name:?} is invalid: strict decoding error: {}",
                barge_crds::consts::GROUP,
                fields.join(", ")
            ));
        }
        schema.apply_defaults(&mut value);
        schema.validate(&value, None).map_err(|errors| {
            invalid_status(barge_crds::consts::GROUP, kind, name, &errors)["message"]
                .as_str()
                .unwrap_or("invalid")
                .to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definition(spec: Value) -> Value {
        json!({
            "apiVersion": "batch.barge.dev/v1alpha1", "kind": "JobDefinition",
            "metadata": {"name": "d"}, "spec": spec
        })
    }

    #[test]
    fn schema_and_cel_violations_are_reported_as_the_api_server_words_them() {
        let mut validator = Validator::default();
        validator
            .check_value(
                "JobDefinition",
                "d",
                definition(
                    json!({"type": "container", "containerProperties": {"image": "busybox"}}),
                ),
            )
            .expect("valid");
        let err = validator
            .check_value(
                "JobDefinition",
                "d",
                definition(
                    json!({"type": "container", "containerProperties": {"image": "busybox",
                    "resourceRequirements": [{"type": "VCPU", "value": "lots"}]}}),
                ),
            )
            .expect_err("CEL rule");
        assert!(
            err.starts_with("JobDefinition.batch.barge.dev \"d\" is invalid: spec.containerProperties.resourceRequirements[0]: Invalid value: ")
                && err.contains("a VCPU value must be a positive number of vCPUs"),
            "{err}"
        );
        let err = validator
            .check_value(
                "JobDefinition",
                "d",
                definition(json!({"type": "container", "containerProperties": {"image": "busybox"}, "bogus": 1})),
            )
            .expect_err("unknown field");
        assert_eq!(
            err,
            "JobDefinition.batch.barge.dev \"d\" is invalid: strict decoding error: unknown field \"spec.bogus\""
        );
        let err = validator
            .check_value(
                "JobDefinition",
                "d",
                definition(json!({"type": "container", "containerProperties": {"image": "busybox"}, "schedulingPriority": 10000})),
            )
            .expect_err("schema bound");
        assert!(
            err.contains("spec.schedulingPriority: Invalid value: 10000: spec.schedulingPriority in body should be less than or equal to 9999"),
            "{err}"
        );
    }
}
