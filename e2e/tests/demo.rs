//! End-to-end: `barge demo` through the real binary — it starts its own simulated cluster and
//! operator, runs the sample workload, exits 0 and prints a summary with every job in the final
//! state it expects.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Final state and attempts of each demo job (config/samples/demo/04-jobs.yaml).
const EXPECTED: &[(&str, &str, Option<&str>)] = &[
    ("fetch", "SUCCEEDED", Some("1")),
    ("process", "SUCCEEDED", Some("1")),
    ("flaky", "SUCCEEDED", Some("2")),
    ("too-slow", "FAILED", Some("1")),
    ("render", "SUCCEEDED", None),
    ("mpi", "SUCCEEDED", Some("1")),
];

#[test]
fn barge_demo_runs_the_sample_workload_to_its_expected_end() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let kubeconfig = dir.path().join("demo-kubeconfig");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_barge"))
        .arg("demo")
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .args(["--timeout-seconds", "120"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn barge demo");
    // Kill it if it overruns (the demo gives up by itself after 120 s; this is the backstop).
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        let limit = Duration::from_secs(180);
        let begin = Instant::now();
        while begin.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(200));
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return;
            }
        }
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    });
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let err_reader =
        std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let out = std::io::read_to_string(stdout).unwrap_or_default();
    let status = child.wait().expect("wait for barge demo");
    let err = err_reader.join().unwrap_or_default();
    let _ = watchdog.join();
    let context = format!("stdout:\n{out}\nstderr:\n{err}");

    assert!(
        status.success(),
        "barge demo exits 0 ({status:?})\n{context}"
    );
    assert!(
        out.contains(&format!("kubeconfig: {}", kubeconfig.display())),
        "the kubeconfig path is printed\n{context}"
    );
    assert!(
        kubeconfig.exists(),
        "the kubeconfig was written where asked"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("fetch") && l.contains("→ RUNNING")),
        "progress lines follow the state changes\n{context}"
    );

    // The summary: a header, then one row per job.
    let header = out
        .lines()
        .position(|l| l.starts_with("JOB ") && l.contains("STATUS") && l.contains("ATTEMPTS"))
        .unwrap_or_else(|| panic!("a summary table\n{context}"));
    let rows: BTreeMap<String, Vec<String>> = out
        .lines()
        .skip(header + 1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let cells: Vec<String> = l.split_whitespace().map(str::to_string).collect();
            (cells[0].clone(), cells)
        })
        .collect();
    assert_eq!(rows.len(), EXPECTED.len(), "{context}");
    for (job, state, attempts) in EXPECTED {
        let row = rows
            .get(*job)
            .unwrap_or_else(|| panic!("{job} in the summary\n{context}"));
        assert_eq!(row[1], *state, "{job}'s final state\n{context}");
        if let Some(attempts) = attempts {
            assert_eq!(row[2], *attempts, "{job}'s attempts\n{context}");
        }
        assert!(
            row.contains(&"✓".to_string()),
            "{job} ended as expected\n{context}"
        );
    }
    eprintln!("barge demo finished in {:?}", started.elapsed());
}
