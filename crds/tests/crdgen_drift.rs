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
