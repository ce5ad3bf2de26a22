//! The committed CRD YAML must be what the types generate.
use barge_crds::crdgen::{check_crds, find_workspace_root};

#[test]
fn committed_crds_match_the_types() {
    let root = find_workspace_root(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("the tests run inside the Barge workspace");
    let problems = check_crds(&root).expect("the CRD files can be read");
    assert!(
        problems.is_empty(),
        "the committed CRDs differ from the Rust types:\n  {}\nrun `cargo run -p barge-crds --bin crdgen` and commit the result",
        problems.join("\n  ")
    );
}

/// Helm installs whatever lies in a chart's `crds/` before its templates and never upgrades it;
/// the CRDs are templates now, so that directory must hold nothing (a leftover CRD there would be
/// created first and make the template's create fail).
#[test]
fn the_chart_has_no_crds_directory_beside_its_crd_templates() {
    let root = find_workspace_root(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("the tests run inside the Barge workspace");
    let retired = root.join(barge_crds::crdgen::RETIRED_HELM_CRDS_DIR);
    let leftovers: Vec<String> = match std::fs::read_dir(&retired) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", retired.display()),
    };
    assert!(
        leftovers.is_empty(),
        "{} still holds {leftovers:?}",
        retired.display()
    );
}
