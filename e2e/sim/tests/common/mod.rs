//! Helpers shared by the integration tests: waiting on conditions with timeouts, the
//! workspace root, and the external-tool policy (skip loudly when missing locally, fail when
//! `BARGE_REQUIRE_TOOLS=1`, as in CI).
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Poll `check` until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The workspace root (the directory holding the workspace Cargo.toml).
pub fn workspace_root() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let manifest = dir.join("Cargo.toml");
        if std::fs::read_to_string(&manifest).is_ok_and(|s| s.contains("[workspace]")) {
            return dir;
        }
        assert!(
            dir.pop(),
            "no workspace Cargo.toml above {}",
            env!("CARGO_MANIFEST_DIR")
        );
    }
}

/// Whether an external tool can be run; when it cannot, fail under BARGE_REQUIRE_TOOLS=1 and
/// otherwise print a loud skip message.
pub fn tool_available(tool: &str, probe: &[&str]) -> bool {
    let ok = std::process::Command::new(tool)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("BARGE_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("required tool `{tool}` is not available (BARGE_REQUIRE_TOOLS=1)");
        }
        eprintln!("\n!!!!!!!!!! SKIPPING: `{tool}` is not installed; set BARGE_REQUIRE_TOOLS=1 to make this a failure !!!!!!!!!!\n");
    }
    ok
}
