//! Barge's container image (issue 13): built as CI builds it, run as a cluster runs it.
//!
//! Without tools: the `Containerfile`'s final stage and what `hack/build-image.sh` assembles
//! cannot drift apart. The script reads USER, ENTRYPOINT, CMD and LABEL from the Containerfile,
//! stages the files with the function the Containerfile's builder stage runs and builds with the
//! same cargo command (checked here); the chart's default image (`image.repository`, tagged
//! with `appVersion`) is what the script tags, and `appVersion` is the workspace version.
//!
//! `e2e_image` end to end: builds the image with the script (or takes the OCI archive named by
//! `BARGE_IMAGE_ARCHIVE`), unpacks it (skopeo, umoci) and checks its contents and configuration
//! — no shell, every file owned by root and writable by nobody else, user 65532:65532, no
//! `barge demo`, the CA bundle. Then it runs the root filesystem as a kubelet would: in a private
//! mount namespace, the root filesystem read-only, the service-account token, CA and namespace
//! mounted read-only at /var/run/secrets/kubernetes.io/serviceaccount, `chroot
//! --userspec=65532:65532`, and KUBERNETES_SERVICE_HOST/PORT naming an HTTPS front of barge-sim
//! (barge-sim's API server speaks plain HTTP), so the operator uses its in-cluster configuration:
//! the CA file, the bearer token, TLS to an IP address. The operator takes the Lease, runs a Job
//! to SUCCEEDED without dying on its read-only root, and on SIGTERM releases the Lease and exits
//! 0. Needs root, skopeo, umoci, unshare, mount and chroot (and buildah to build): skipped loudly
//! without them, a failure under `BARGE_REQUIRE_TOOLS=1` (as in CI).

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use barge_crds::job::JobStatus;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use support::{compute_environment, job, job_definition, job_queue, scripted_tags, E2e, Options};

/// The image's user and group.
const NONROOT: &str = "65532:65532";
const NONROOT_UID: u32 = 65532;
/// Where a kubelet mounts a pod's service-account token, CA and namespace (no leading `/`).
const SERVICE_ACCOUNT_DIR: &str = "var/run/secrets/kubernetes.io/serviceaccount";
/// An OCI archive to test instead of building one.
const ARCHIVE_ENV: &str = "BARGE_IMAGE_ARCHIVE";
/// The files of the image besides the shared libraries `ldd` lists.
const FILES: [&str; 4] = [
    "barge",
    "etc/group",
    "etc/passwd",
    "etc/ssl/certs/ca-certificates.crt",
];
/// Messages of barge-sim's API server (file, text): in the developer build's binary (`barge demo`
/// runs the simulator), never in the image's.
const SIMULATOR_MARKERS: [(&str, &str); 3] = [
    (
        "e2e/sim/src/apiserver/faults.rs",
        "injected server error (sim fault)",
    ),
    (
        "e2e/sim/src/apiserver/handlers.rs",
        "PATCH /apply requires fieldManager",
    ),
    (
        "e2e/sim/src/apiserver/watch.rs",
        "watch history unavailable",
    ),
];
/// PATH of the host tools (unshare, mount, chroot) when the environment is otherwise cleared.
const HOST_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// The operator's Lease (its default `--lease-name`).
const LEASE: &str = "barge-operator";
/// Longest the operator may take to stop after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// The repository's root directory.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the operator crate is in the repository")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// One stage of a Containerfile: its `FROM` argument and its instructions (keyword upper-cased,
/// argument as written), continuation lines joined, comments and blank lines left out.
#[derive(Debug, PartialEq)]
struct Stage {
    from: String,
    instructions: Vec<(String, String)>,
}

impl Stage {
    /// The arguments of every `keyword` instruction, in order.
    fn all(&self, keyword: &str) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, a)| a.as_str())
            .collect()
    }

    /// The argument of the last `keyword` instruction (the one that counts).
    fn last(&self, keyword: &str) -> Option<&str> {
        self.all(keyword).last().copied()
    }

    /// The default of `ARG name=default`.
    fn arg_default(&self, name: &str) -> Option<&str> {
        self.all("ARG")
            .into_iter()
            .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
    }

    /// The `LABEL key="value"` instructions (one label each, as hack/build-image.sh reads them),
    /// `${VERSION}` replaced by `version`.
    fn labels(&self, version: &str) -> BTreeMap<String, String> {
        self.all("LABEL")
            .into_iter()
            .map(|a| {
                let (key, value) = a
                    .split_once('=')
                    .unwrap_or_else(|| panic!("LABEL {a}: not key=\"value\""));
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or_else(|| panic!("LABEL {a}: the value is not in double quotes"));
                (key.to_string(), value.replace("${VERSION}", version))
            })
            .collect()
    }
}

/// The stages of a Containerfile (instructions before the first `FROM` are left out).
fn stages(text: &str) -> Vec<Stage> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(line);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        logical.push(current);
    }
    let mut out: Vec<Stage> = Vec::new();
    for instruction in logical {
        let (keyword, argument) = instruction
            .split_once(char::is_whitespace)
            .unwrap_or((instruction.as_str(), ""));
        let keyword = keyword.to_ascii_uppercase();
        let argument = argument.trim().to_string();
        if keyword == "FROM" {
            out.push(Stage {
                from: argument,
                instructions: Vec::new(),
            });
        } else if let Some(stage) = out.last_mut() {
            stage.instructions.push((keyword, argument));
        }
    }
    out
}

/// The repository's Containerfile: its builder stage (`AS build`) and its final stage.
fn containerfile() -> (Stage, Stage) {
    let mut stages = stages(&read("Containerfile"));
    assert_eq!(stages.len(), 2, "a builder stage and a final stage");
    let last = stages.pop().expect("final stage");
    let build = stages.pop().expect("builder stage");
    (build, last)
}

/// The value of `name=...` (a line of its own) in hack/build-image.sh.
fn script_assignment(name: &str) -> String {
    let script = read("hack/build-image.sh");
    script
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("hack/build-image.sh assigns no {name}"))
        .to_string()
}

#[test]
fn containerfile_stages_are_parsed_with_continuations_and_comments() {
    let text = "# comment\nARG X=1\nFROM a AS b\nRUN one \\\n    two\n\nfrom scratch\n# c\nUSER 1:2\nLABEL k=\"v ${VERSION}\"\n";
    let parsed = stages(text);
    assert_eq!(
        parsed,
        vec![
            Stage {
                from: "a AS b".into(),
                instructions: vec![("RUN".into(), "one two".into())],
            },
            Stage {
                from: "scratch".into(),
                instructions: vec![
                    ("USER".into(), "1:2".into()),
                    ("LABEL".into(), "k=\"v ${VERSION}\"".into()),
                ],
            },
        ]
    );
    assert_eq!(
        parsed[1].labels("9").get("k").map(String::as_str),
        Some("v 9")
    );
}

#[test]
fn the_containerfile_final_stage_is_what_the_script_assembles() {
    let (build, last) = containerfile();
    assert!(
        build.from.ends_with(" AS build"),
        "builder stage: {}",
        build.from
    );
    assert_eq!(last.from, "scratch", "the final stage starts from scratch");
    // The script applies USER, ENTRYPOINT, CMD and LABEL and copies the staged root filesystem:
    // any other instruction in the final stage would be missing from its image.
    for (keyword, argument) in &last.instructions {
        assert!(
            ["ARG", "COPY", "USER", "ENTRYPOINT", "CMD", "LABEL"].contains(&keyword.as_str()),
            "the final stage's {keyword} {argument} is not applied by hack/build-image.sh"
        );
    }
    assert_eq!(last.all("COPY"), vec!["--from=build /rootfs/ /"]);
    assert_eq!(last.last("USER"), Some(NONROOT));
    assert_eq!(
        script_assignment("nonroot_uid"),
        NONROOT_UID.to_string(),
        "the user the script writes into /etc/passwd"
    );
    assert_eq!(last.last("ENTRYPOINT"), Some(r#"["/barge"]"#));
    assert_eq!(last.last("CMD"), Some(r#"["operator"]"#));
    // The builder stage builds the binary as the script does and stages it with the script.
    let cargo_args = script_assignment("cargo_args");
    let cargo_args = cargo_args
        .strip_prefix('(')
        .and_then(|a| a.strip_suffix(')'))
        .expect("cargo_args=(...)");
    let run = build.all("RUN").join(" && ");
    assert!(
        run.contains(&format!("cargo {cargo_args} ")),
        "the builder stage runs `cargo {cargo_args}`: {run}"
    );
    assert!(
        run.contains("hack/build-image.sh stage target/image/barge /rootfs"),
        "the builder stage stages /rootfs with the script: {run}"
    );
    assert!(
        cargo_args.contains("--no-default-features") && cargo_args.contains("--profile image"),
        "the image's binary has no `demo` (simulator) and uses the image profile: {cargo_args}"
    );
}

#[test]
fn the_chart_default_image_is_what_the_script_tags() {
    let version = env!("CARGO_PKG_VERSION");
    let values: serde_yaml::Value =
        serde_yaml::from_str(&read("charts/barge/values.yaml")).expect("charts/barge/values.yaml");
    let chart: serde_yaml::Value =
        serde_yaml::from_str(&read("charts/barge/Chart.yaml")).expect("charts/barge/Chart.yaml");
    let repository = values["image"]["repository"]
        .as_str()
        .expect("image.repository");
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(version),
        "the chart's appVersion is the workspace version"
    );
    let tag = values["image"]["tag"].as_str().unwrap_or_default();
    assert!(
        tag.is_empty() || tag == version,
        "image.tag {tag:?}: empty (the appVersion) or the workspace version"
    );
    let output = Command::new("bash")
        .arg(repo_root().join("hack/build-image.sh"))
        .arg("reference")
        .output()
        .expect("run hack/build-image.sh reference");
    assert!(
        output.status.success(),
        "hack/build-image.sh reference: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("{repository}:{version}"),
        "the script tags the chart's default image"
    );
    let (_, last) = containerfile();
    assert_eq!(
        last.arg_default("VERSION"),
        Some(version),
        "the Containerfile's ARG VERSION is the workspace version"
    );
    let labels = last.labels(version);
    assert_eq!(
        labels
            .get("org.opencontainers.image.version")
            .map(String::as_str),
        Some(version)
    );
    assert_eq!(
        labels
            .get("org.opencontainers.image.source")
            .map(String::as_str),
        chart["home"].as_str(),
        "the image's source is the chart's home"
    );
    assert_eq!(
        labels
            .get("org.opencontainers.image.licenses")
            .map(String::as_str),
        Some(env!("CARGO_PKG_LICENSE"))
    );
}

// ----- end to end -------------------------------------------------------------------------------

/// Whether this process runs as root (mount namespaces, chroot, files owned by root).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn tool_available(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the end-to-end test can run; fails under `BARGE_REQUIRE_TOOLS=1` when it cannot,
/// otherwise skips loudly.
fn prerequisites() -> bool {
    let mut missing: Vec<&str> = Vec::new();
    if !is_root() {
        missing.push("root");
    }
    let mut tools = vec!["skopeo", "umoci", "unshare", "mount", "chroot"];
    if std::env::var_os(ARCHIVE_ENV).is_none_or(|v| v.is_empty()) {
        tools.push("buildah");
    }
    missing.extend(tools.into_iter().filter(|t| !tool_available(t)));
    if missing.is_empty() {
        return true;
    }
    if std::env::var("BARGE_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!(
            "e2e_image needs {} (BARGE_REQUIRE_TOOLS=1)",
            missing.join(", ")
        );
    }
    eprintln!(
        "\n!!!!!!!!!! SKIPPING e2e_image: needs {} (Debian: apt-get install buildah skopeo umoci); set BARGE_REQUIRE_TOOLS=1 to make this a failure !!!!!!!!!!\n",
        missing.join(", ")
    );
    false
}

/// Runs `program args`, panicking with its output when it fails; returns its stdout.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The OCI archive: `BARGE_IMAGE_ARCHIVE`, else built by hack/build-image.sh.
fn image_archive() -> PathBuf {
    if let Some(path) = std::env::var_os(ARCHIVE_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(path);
    }
    let started = Instant::now();
    let script = repo_root().join("hack/build-image.sh");
    let status = Command::new("bash")
        .arg(&script)
        .env_remove("BARGE_IMAGE_OUT")
        .stdin(Stdio::null())
        .status()
        .expect("run hack/build-image.sh");
    assert!(status.success(), "hack/build-image.sh: {status}");
    eprintln!(
        "e2e_image: hack/build-image.sh took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    repo_root()
        .join("target/image")
        .join(format!("barge-{}.oci.tar", env!("CARGO_PKG_VERSION")))
}

/// An unpacked image: its root filesystem, its configuration and its layers' number.
struct Unpacked {
    rootfs: PathBuf,
    config: serde_json::Value,
    layers: usize,
}

fn blob(layout: &Path, digest: &str) -> serde_json::Value {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let text = std::fs::read(layout.join("blobs/sha256").join(hex)).expect("blob");
    serde_json::from_slice(&text).expect("JSON blob")
}

/// Copies the archive into an OCI layout (skopeo) and unpacks it (umoci, as root: owners kept).
fn unpack(archive: &Path, dir: &Path) -> Unpacked {
    let layout = dir.join("layout");
    let bundle = dir.join("bundle");
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--quiet",
            &format!("oci-archive:{}", archive.display()),
            &format!("oci:{}:barge", layout.display()),
        ],
    );
    run(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:barge", layout.display()),
            &bundle.display().to_string(),
        ],
    );
    let index = blob_file(&layout.join("index.json"));
    let manifest = blob(
        &layout,
        index["manifests"][0]["digest"].as_str().expect("manifest"),
    );
    let config = blob(
        &layout,
        manifest["config"]["digest"].as_str().expect("config"),
    );
    Unpacked {
        rootfs: bundle.join("rootfs"),
        config,
        layers: manifest["layers"].as_array().map_or(0, Vec::len),
    }
}

fn blob_file(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("JSON")
}

/// Every entry under `dir` (relative paths) with its metadata; symbolic links not followed.
fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<PathBuf, std::fs::Metadata>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        if meta.is_dir() {
            walk(&path, base, out);
        }
        out.insert(
            path.strip_prefix(base).expect("under base").to_path_buf(),
            meta,
        );
    }
}

/// The contents: the binary, its libraries, the CA bundle, passwd and group; all owned by root
/// and writable by nobody else; no shell, no symbolic link.
fn check_contents(image: &Unpacked) {
    let mut entries = BTreeMap::new();
    walk(&image.rootfs, &image.rootfs, &mut entries);
    let mut libraries = Vec::new();
    let mut size = 0;
    for (path, meta) in &entries {
        let shown = path.display();
        assert!(
            !meta.file_type().is_symlink(),
            "/{shown} is a symbolic link"
        );
        assert_eq!(
            (meta.uid(), meta.gid()),
            (0, 0),
            "/{shown} is owned by root"
        );
        assert_eq!(
            meta.mode() & 0o022,
            0,
            "/{shown} is writable by group or others (mode {:o})",
            meta.mode()
        );
        if meta.is_dir() {
            continue;
        }
        size += meta.len();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(
            !["sh", "bash", "dash", "ash", "busybox"].contains(&name),
            "/{shown}: the image has no shell"
        );
        if FILES.iter().any(|f| Path::new(f) == path) {
            continue;
        }
        let in_lib_dir = path.starts_with("lib")
            || path.starts_with("lib64")
            || path.starts_with("usr/lib")
            || path.starts_with("usr/lib64");
        assert!(
            in_lib_dir && name.contains(".so"),
            "/{shown} is neither one of {FILES:?} nor a shared library"
        );
        libraries.push(format!("/{shown}"));
    }
    for file in FILES {
        assert!(
            entries.get(Path::new(file)).is_some_and(|m| m.is_file()),
            "the image has /{file}"
        );
    }
    assert!(!image.rootfs.join("bin/sh").exists(), "no /bin/sh");
    assert!(
        libraries.iter().any(|l| l.contains("ld-linux")),
        "the dynamic loader is in the image: {libraries:?}"
    );
    let binary = &entries[Path::new("barge")];
    assert_ne!(binary.mode() & 0o111, 0, "/barge is executable");
    // The simulator's server code is not linked in (only its schema validation is, for
    // `barge import aws`): none of its messages is in the binary.
    let bytes = std::fs::read(image.rootfs.join("barge")).expect("/barge");
    for (file, marker) in SIMULATOR_MARKERS {
        assert!(
            read(file).contains(marker),
            "{file} no longer says {marker:?}: pick another message of the simulator"
        );
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "/barge contains the simulator ({marker:?} of {file})"
        );
    }
    let passwd = std::fs::read_to_string(image.rootfs.join("etc/passwd")).expect("passwd");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with(&format!("nonroot:x:{NONROOT_UID}:{NONROOT_UID}:"))),
        "/etc/passwd names user {NONROOT_UID}: {passwd}"
    );
    let bundle = std::fs::read_to_string(image.rootfs.join("etc/ssl/certs/ca-certificates.crt"))
        .expect("CA bundle");
    let certificates = bundle.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(
        certificates >= 10,
        "the CA bundle holds {certificates} certificates"
    );
    eprintln!(
        "e2e_image: {} files, {:.1} MB unpacked (/barge {:.1} MB), libraries {libraries:?}, {certificates} CA certificates",
        entries.values().filter(|m| m.is_file()).count(),
        size as f64 / 1e6,
        binary.len() as f64 / 1e6
    );
}

/// The configuration is the Containerfile's final stage's, and the archive names the chart's
/// default image.
fn check_config(image: &Unpacked, archive: &Path) {
    let (_, last) = containerfile();
    let version = env!("CARGO_PKG_VERSION");
    let config = &image.config["config"];
    assert_eq!(config["User"].as_str(), Some(NONROOT));
    assert_eq!(
        config["User"].as_str(),
        last.last("USER"),
        "USER as in the Containerfile"
    );
    let json = |s: Option<&str>| -> serde_json::Value {
        serde_json::from_str(s.expect("instruction")).expect("JSON form")
    };
    assert_eq!(config["Entrypoint"], json(last.last("ENTRYPOINT")));
    assert_eq!(config["Cmd"], json(last.last("CMD")));
    for (key, value) in last.labels(version) {
        assert_eq!(
            config["Labels"][&key].as_str(),
            Some(value.as_str()),
            "label {key} as in the Containerfile"
        );
    }
    assert!(
        config["Env"].as_array().is_none_or(Vec::is_empty),
        "no environment (the Containerfile sets none): {}",
        config["Env"]
    );
    assert_eq!(image.layers, 1, "one layer: the staged root filesystem");
    // The name `kind load image-archive` and `ctr import` give the image.
    let index: serde_json::Value = serde_json::from_str(&run(
        "tar",
        &["-xOf", &archive.display().to_string(), "index.json"],
    ))
    .expect("index.json");
    let reference = run(
        "bash",
        &[
            &repo_root()
                .join("hack/build-image.sh")
                .display()
                .to_string(),
            "reference",
        ],
    );
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"].as_str(),
        Some(reference.trim()),
        "the archive names the chart's default image"
    );
}

/// `chroot --userspec=65532:65532 ROOTFS ARGS...` (the image's binary, as its user).
fn in_image(rootfs: &Path, args: &[&str]) -> std::process::Output {
    Command::new("chroot")
        .arg(format!("--userspec={NONROOT}"))
        .arg(rootfs)
        .args(args)
        .env_clear()
        .env("PATH", HOST_PATH)
        .stdin(Stdio::null())
        .output()
        .expect("chroot")
}

/// The binary runs from the image alone (its libraries are there), as 65532, without `demo`.
fn check_commands(rootfs: &Path) {
    let help = in_image(rootfs, &["/barge", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.status.success(),
        "/barge --help: {}",
        String::from_utf8_lossy(&help.stderr)
    );
    let commands: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(commands.contains(&"operator"), "commands: {commands:?}");
    assert!(
        !commands.contains(&"demo"),
        "the image's binary has no `barge demo` (no simulator): {commands:?}"
    );
    let demo = in_image(rootfs, &["/barge", "demo"]);
    assert_eq!(demo.status.code(), Some(2), "`barge demo` is a usage error");
    assert!(
        String::from_utf8_lossy(&demo.stderr).contains("unrecognized subcommand 'demo'"),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
}

/// PEM of a DER certificate.
fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// An HTTPS front of barge-sim's plain-HTTP API server, as a cluster's API server is reached
/// from a pod: a certificate for 127.0.0.1 issued by a CA of its own (the pod's `ca.crt`). It
/// counts the connections whose first request carries `Authorization: Bearer <token>`, and those
/// whose first request does not.
struct TlsFront {
    addr: SocketAddr,
    ca_pem: String,
    with_token: Arc<AtomicUsize>,
    without_token: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsFront {
    async fn start(backend: SocketAddr, token: &str) -> TlsFront {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "barge e2e_image CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("server key");
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("server");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kubernetes");
        let cert = params.signed_by(&key, &issuer).expect("server certificate");
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("TLS configuration");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let with_token = Arc::new(AtomicUsize::new(0));
        let without_token = Arc::new(AtomicUsize::new(0));
        let bearer = format!("authorization: bearer {}\r\n", token.to_ascii_lowercase());
        let (w, wo) = (with_token.clone(), without_token.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, bearer, w, wo) =
                    (acceptor.clone(), bearer.clone(), w.clone(), wo.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    // The first request's head, to see its credentials.
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    if String::from_utf8_lossy(&head)
                        .to_ascii_lowercase()
                        .contains(&bearer)
                    {
                        w.fetch_add(1, Ordering::SeqCst);
                    } else {
                        wo.fetch_add(1, Ordering::SeqCst);
                    }
                    let Ok(mut upstream) = TcpStream::connect(backend).await else {
                        return;
                    };
                    if upstream.write_all(&head).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                });
            }
        });
        TlsFront {
            addr,
            ca_pem: pem(ca_cert.der()),
            with_token,
            without_token,
            task,
        }
    }
}

/// The operator of the image, running in its own mount namespace; killed (SIGKILL) when
/// dropped if it still runs, its log printed when the test fails.
struct ImageOperator {
    child: Child,
    log: PathBuf,
}

impl ImageOperator {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics (with the log) if the operator has exited.
    fn assert_running(&mut self, when: &str) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "the image's operator exited ({status}) {when}\n{}",
                self.log()
            );
        }
    }
}

impl Drop for ImageOperator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- the image's operator -----\n{}", self.log());
        }
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Mounts the root filesystem read-only and the service account in a private mount namespace,
/// then becomes (exec) the image's entry point as 65532:65532; the mounts go with the process.
const RUN_IN_IMAGE: &str = r#"set -eu
root="$1"; sa="$2"; shift 2
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount --bind "$sa" "$root/var/run/secrets/kubernetes.io/serviceaccount"
mount -o remount,bind,ro "$root/var/run/secrets/kubernetes.io/serviceaccount"
exec chroot --userspec=65532:65532 "$root" "$@"
"#;

/// One line of /proc/PID/status (`Uid:`, `Gid:`...), its fields.
fn proc_status(pid: u32, field: &str) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|rest| rest.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_the_operator_as_65532_on_a_read_only_root_with_in_cluster_config() {
    if support::skip_on_real_cluster("e2e_image") || !prerequisites() {
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("barge-image-")
        .tempdir()
        .expect("temporary directory");
    let archive = image_archive();
    eprintln!(
        "e2e_image: {} ({:.1} MB)",
        archive.display(),
        std::fs::metadata(&archive).expect("the archive").len() as f64 / 1e6
    );
    let image = unpack(&archive, work.path());
    check_contents(&image);
    check_config(&image, &archive);
    check_commands(&image.rootfs);

    // The cluster: barge-sim with its scripted kubelet, no operator but the image's.
    let env = E2e::start_with("image", Options::scripted().without_operator()).await;
    let token = format!("e2e-image-token-{}", env.ns);
    let front = TlsFront::start(env.cluster().addr(), &token).await;
    // The pod's service account, as a kubelet projects it: world-readable files, read-only.
    let sa = work.path().join("serviceaccount");
    std::fs::create_dir(&sa).expect("service account directory");
    std::fs::write(sa.join("token"), &token).expect("token");
    std::fs::write(sa.join("ca.crt"), &front.ca_pem).expect("ca.crt");
    std::fs::write(sa.join("namespace"), &env.ns).expect("namespace");
    run("chmod", &["-R", "a+rX", &sa.display().to_string()]);
    // The mount point, made in the unpacked copy before it is mounted read-only.
    std::fs::create_dir_all(image.rootfs.join(SERVICE_ACCOUNT_DIR)).expect("mount point");

    let identity = format!("barge-image-{}", env.ns);
    let log = work.path().join("operator.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let child = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            RUN_IN_IMAGE,
            "sh",
        ])
        .arg(&image.rootfs)
        .arg(&sa)
        .args([
            "/barge",
            "operator",
            "--leader-election",
            "--metrics-addr=127.0.0.1:0",
            "--log-level=info,kube=warn",
            "--status-coalesce-ms=100",
            "--scheduler-interval-ms=100",
            "--status-refresh-seconds=1",
        ])
        // What the chart's Deployment gives the container: the API server's address (a
        // kubelet sets it) and the pod's namespace and name (downward API).
        .env_clear()
        .env("PATH", HOST_PATH)
        .env("KUBERNETES_SERVICE_HOST", front.addr.ip().to_string())
        .env("KUBERNETES_SERVICE_PORT", front.addr.port().to_string())
        .env("POD_NAMESPACE", &env.ns)
        .env("POD_NAME", &identity)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file)
        .spawn()
        .expect("spawn unshare");
    let mut operator = ImageOperator { child, log };
    let pid = operator.child.id();

    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.ns);
    env.wait_until("the image's operator holds the Lease", || async {
        leases
            .get_opt(LEASE)
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| *h == identity)
    })
    .await;
    operator.assert_running("after taking the Lease");
    // The process is the image's binary, running as 65532:65532 (chroot and sh exec'd it).
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert!(
        cmdline.starts_with(b"/barge\0operator\0"),
        "{}",
        String::from_utf8_lossy(&cmdline)
    );
    let ids = |field| proc_status(pid, field);
    assert_eq!(ids("Uid:"), vec![NONROOT_UID.to_string(); 4], "uids");
    assert_eq!(ids("Gid:"), vec![NONROOT_UID.to_string(); 4], "gids");

    env.apply(&compute_environment("ce", 4)).await;
    env.apply(&job_queue("q", 1, &["ce"])).await;
    env.apply(&job_definition("scripted", "exit 0", &[], "1", ""))
        .await;
    env.apply(&job("hello", "q", "scripted", &scripted_tags("1", 0)))
        .await;
    env.wait_job("hello", JobStatus::Succeeded).await;
    operator.assert_running("after the job succeeded (its root filesystem is read-only)");
    let connections = front.with_token.load(Ordering::SeqCst);
    assert!(
        connections > 0,
        "the operator reached the API server over TLS with its token"
    );
    assert_eq!(
        front.without_token.load(Ordering::SeqCst),
        0,
        "every connection's first request carries the service-account token"
    );

    // SIGTERM, as a kubelet stops a container: the operator releases the Lease and exits 0.
    run("kill", &["-TERM", &pid.to_string()]);
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = operator.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            stopping.elapsed() < STOP_LIMIT,
            "the operator did not stop within {STOP_LIMIT:?} of SIGTERM\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = operator.log();
    assert!(status.success(), "the operator exited {status}\n{log}");
    let lease = leases.get(LEASE).await.expect("the Lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity),
        None,
        "the operator released the Lease at shutdown"
    );
    assert!(
        !log.contains("Read-only file system"),
        "the operator tried to write its root filesystem\n{log}"
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "no process is left"
    );
    eprintln!(
        "e2e_image: the image's operator ran a job over {connections} TLS connections and stopped in {:.1} s",
        stopping.elapsed().as_secs_f64()
    );
    env.finish().await;
}
