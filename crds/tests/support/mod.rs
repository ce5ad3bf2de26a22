//! The one validation helper of Barge's schema tests (shared with the operator's import tests,
//! which include this file): an object is checked against the generated CRD exactly as the
//! simulated cluster's API server checks it — unknown fields refused (kubectl's
//! `fieldValidation=Strict`), defaults applied, then structural validation and the CEL rules
//! (transition rules see `old`) — through `barge_sim::apimachinery::validation::CompiledSchema`.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use barge_crds::crdgen::{all_crds, crd_schema};
use barge_sim::apimachinery::validation::CompiledSchema;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

thread_local! {
    /// Compiled schemas per CRD name: compiling the JobDefinition schema is not free.
    static COMPILED: RefCell<BTreeMap<String, std::rc::Rc<CompiledSchema>>> = const { RefCell::new(BTreeMap::new()) };
}

fn compiled_schema(
    crd: &CustomResourceDefinition,
) -> Result<std::rc::Rc<CompiledSchema>, Vec<String>> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    if let Some(found) = COMPILED.with(|c| c.borrow().get(&name).cloned()) {
        return Ok(found);
    }
    let schema =
        crd_schema(crd).ok_or_else(|| vec![format!("CRD {name} has no openAPIV3Schema")])?;
    let compiled = CompiledSchema::new(&schema).map_err(|e| vec![e.to_string()])?;
    let compile_errors = compiled.cel_compile_errors();
    if !compile_errors.is_empty() {
        return Err(compile_errors);
    }
    let compiled = std::rc::Rc::new(compiled);
    COMPILED.with(|c| c.borrow_mut().insert(name, compiled.clone()));
    Ok(compiled)
}

/// Validates `obj` (and, for an update, the transition from `old`) against `crd`'s schema.
/// Returns every error as the API server words it (`spec.x: Invalid value: ...`).
pub fn validate(
    crd: &CustomResourceDefinition,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), Vec<String>> {
    let compiled = compiled_schema(crd)?;
    let mut obj = obj.clone();
    let unknown = compiled.prune(&mut obj);
    if !unknown.is_empty() {
        return Err(unknown
            .iter()
            .map(|path| format!("unknown field \"{path}\""))
            .collect());
    }
    compiled.apply_defaults(&mut obj);
    let old = old.map(|old| {
        let mut old = old.clone();
        compiled.prune(&mut old);
        compiled.apply_defaults(&mut old);
        old
    });
    compiled
        .validate(&obj, old.as_ref())
        .map_err(|errors| errors.iter().map(|e| e.to_string()).collect())
}

/// All Barge CRDs, generated once per test binary (generating them is not free).
pub fn crds() -> &'static [CustomResourceDefinition] {
    static CRDS: OnceLock<Vec<CustomResourceDefinition>> = OnceLock::new();
    CRDS.get_or_init(all_crds)
}

/// The CRD of `kind`.
pub fn crd(kind: &str) -> &'static CustomResourceDefinition {
    crds()
        .iter()
        .find(|crd| crd.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("{kind} is not a Barge kind"))
}

/// The CRD of a Barge manifest, chosen by its `apiVersion` and `kind`.
pub fn crd_of(obj: &Value) -> Result<&'static CustomResourceDefinition, String> {
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    crds()
        .iter()
        .find(|crd| {
            crd.spec.names.kind == kind
                && crd
                    .spec
                    .versions
                    .iter()
                    .any(|v| format!("{}/{}", crd.spec.group, v.name) == api_version)
        })
        .ok_or_else(|| format!("no Barge CRD serves {api_version} {kind}"))
}

/// Validates a manifest against the CRD of its kind (a creation).
pub fn validate_manifest(obj: &Value) -> Result<(), Vec<String>> {
    let crd = crd_of(obj).map_err(|e| vec![e])?;
    validate(crd, obj, None)
}

/// The workspace root (the directory holding the workspace Cargo.toml).
pub fn workspace_root() -> std::path::PathBuf {
    barge_crds::crdgen::find_workspace_root(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("the tests run inside the Barge workspace")
}
