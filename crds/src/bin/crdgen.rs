//! crdgen: writes Barge's CustomResourceDefinitions as YAML under the workspace root
//! (`config/crd/bases/`, `config/crd/kustomization.yaml`, `charts/barge/templates/crds/`).
//!
//! `crdgen` writes the files; `crdgen --check` only compares and exits 1 on drift (for CI).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use barge_crds::crdgen::{check_crds, find_workspace_root, write_crds};

fn workspace_root() -> Option<PathBuf> {
    find_workspace_root(Path::new(env!("CARGO_MANIFEST_DIR")))
}

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!("crdgen: unknown argument {other:?}; usage: crdgen [--check]");
            return ExitCode::from(2);
        }
    };
    let Some(root) = workspace_root() else {
        eprintln!(
            "crdgen: cannot find the workspace root above {}",
            env!("CARGO_MANIFEST_DIR")
        );
        return ExitCode::FAILURE;
    };
    if check {
        match check_crds(&root) {
            Ok(problems) if problems.is_empty() => ExitCode::SUCCESS,
            Ok(problems) => {
                for problem in problems {
                    eprintln!("crdgen: {problem}");
                }
                eprintln!(
                    "crdgen: run `cargo run -p barge-crds --bin crdgen` and commit the result"
                );
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("crdgen: {e}");
                ExitCode::FAILURE
            }
        }
    } else {
        match write_crds(&root) {
            Ok(written) => {
                for path in written {
                    println!(
                        "wrote {}",
                        path.strip_prefix(&root).unwrap_or(&path).display()
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("crdgen: {e}");
                ExitCode::FAILURE
            }
        }
    }
}
