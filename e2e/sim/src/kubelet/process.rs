//! The `process` runtime: one task per container run. It resolves the container's environment
//! (fetching the Secrets and ConfigMaps it names, retrying while one is missing, as a kubelet
//! does with CreateContainerConfigError), runs `command`+`args` through
//! `/bin/sh -c 'exec "$@"' sh ...` in a process group of its own, with a per-pod working
//! directory, streams stdout/stderr into the container's log, and reports start and exit to the
//! manager. A `Stop` sends SIGTERM to the main process (as a container runtime signals the
//! container's PID 1) and SIGKILL to its whole process group once the grace period is over;
//! when the main process exits, whatever it left behind in its group is killed too.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::{Api, Client};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::mpsc;

use super::consts::MESSAGE_NO_ENTRYPOINT;
use super::env::{build_env, expand, referenced_sources, PodFacts, SourceKind, Sources};
use super::logs::ContainerLog;
use super::podstate::ContainerRef;
use super::resources::Resources;

/// PATH of a typical container image.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How often a container whose environment cannot be built is retried.
const CONFIG_RETRY: Duration = Duration::from_secs(2);
/// Longest line kept as one log line; longer output is split.
const MAX_LINE: usize = 16 * 1024;
/// Exit code a runtime reports when the process could not be started.
pub const EXIT_START_ERROR: i32 = 128;
/// Reason a runtime reports when the process could not be started.
pub const REASON_START_ERROR: &str = "StartError";

/// What the manager tells a running container.
#[derive(Debug, Clone, Copy)]
pub enum Control {
    /// SIGTERM now, SIGKILL after `grace`.
    Stop { grace: Duration },
}

/// What a container run reports.
#[derive(Debug, Clone)]
pub enum RuntimeEvent {
    Started,
    /// The container cannot start yet (e.g. a missing Secret); the runtime keeps retrying.
    Waiting {
        reason: String,
        message: String,
    },
    Exited {
        exit_code: i32,
        reason: Option<String>,
        message: Option<String>,
    },
    /// Stopped before it ever started.
    NeverStarted,
}

/// Everything a container run needs.
pub struct ProcessRun {
    pub client: Client,
    pub pod: Arc<Pod>,
    pub cref: ContainerRef,
    pub pod_ip: String,
    pub host_ip: String,
    pub node_allocatable: Resources,
    pub pod_dir: PathBuf,
    pub log: Arc<ContainerLog>,
}

fn container(pod: &Pod, r: ContainerRef) -> Option<&k8s_openapi::api::core::v1::Container> {
    let spec = pod.spec.as_ref()?;
    if r.init {
        spec.init_containers.as_ref()?.get(r.index)
    } else {
        spec.containers.get(r.index)
    }
}

async fn fetch_sources(
    client: &Client,
    ns: &str,
    wanted: &[(SourceKind, String)],
) -> Result<Sources, String> {
    let mut out = Sources::new();
    for (kind, name) in wanted {
        let data = match kind {
            SourceKind::Secret => Api::<Secret>::namespaced(client.clone(), ns)
                .get_opt(name)
                .await
                .map_err(|e| format!("reading secret {ns}/{name}: {e}"))?
                .map(|s| {
                    let mut d: std::collections::BTreeMap<String, String> = s
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                        .collect();
                    d.extend(s.string_data.unwrap_or_default());
                    d
                }),
            SourceKind::ConfigMap => Api::<ConfigMap>::namespaced(client.clone(), ns)
                .get_opt(name)
                .await
                .map_err(|e| format!("reading configmap {ns}/{name}: {e}"))?
                .map(|c| c.data.unwrap_or_default()),
        };
        out.insert((kind.clone(), name.clone()), data);
    }
    Ok(out)
}

/// Exit code of a finished process, as a container runtime reports it (128+signal when killed).
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(EXIT_START_ERROR)
}

fn signal_group(pgid: Option<u32>, sig: Signal) {
    if let Some(pid) = pgid.and_then(|p| i32::try_from(p).ok()) {
        // ESRCH (group already gone) is expected and harmless.
        let _ = killpg(Pid::from_raw(pid), sig);
    }
}

async fn pump(reader: impl AsyncRead + Unpin, log: Arc<ContainerLog>) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => log.append(&String::from_utf8_lossy(&buf)),
        }
    }
}

/// Runs one container; `report` receives its events, the last being `Exited` or
/// `NeverStarted`.
pub async fn run_container(
    run: ProcessRun,
    mut control: mpsc::Receiver<Control>,
    report: impl Fn(RuntimeEvent),
) {
    let Some(c) = container(&run.pod, run.cref).cloned() else {
        report(RuntimeEvent::Exited {
            exit_code: EXIT_START_ERROR,
            reason: Some(REASON_START_ERROR.into()),
            message: Some("container not found in pod spec".into()),
        });
        return;
    };
    let ns = run
        .pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let wanted = referenced_sources(&c);
    let facts = PodFacts {
        pod_ip: &run.pod_ip,
        host_ip: &run.host_ip,
        node_allocatable: &run.node_allocatable,
    };
    // 1. Environment (retried while a source is missing).
    let env = loop {
        let attempt = match fetch_sources(&run.client, &ns, &wanted).await {
            Ok(sources) => build_env(&run.pod, &c, &facts, &sources),
            Err(e) => Err(e),
        };
        match attempt {
            Ok(env) => break env,
            Err(message) => {
                report(RuntimeEvent::Waiting {
                    reason: super::consts::REASON_CONFIG_ERROR.into(),
                    message,
                });
                tokio::select! {
                    _ = tokio::time::sleep(CONFIG_RETRY) => {}
                    _ = control.recv() => { report(RuntimeEvent::NeverStarted); return; }
                }
            }
        }
    };
    let vars: std::collections::BTreeMap<String, String> = env.iter().cloned().collect();
    let argv: Vec<String> = c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .map(|a| expand(a, &vars))
        .collect();
    run.log.begin_run();
    // 2. No command: the image's entrypoint is not simulated.
    if argv.is_empty() {
        report(RuntimeEvent::Started);
        run.log.append(MESSAGE_NO_ENTRYPOINT);
        run.log.finish();
        report(RuntimeEvent::Exited {
            exit_code: 0,
            reason: None,
            message: None,
        });
        return;
    }
    // 3. Spawn in a process group of its own.
    let empty_dirs = run
        .pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter(|v| v.empty_dir.is_some());
    let dirs: Vec<PathBuf> = std::iter::once(run.pod_dir.clone())
        .chain(empty_dirs.map(|v| run.pod_dir.join("volumes").join(&v.name)))
        .collect();
    for dir in dirs {
        if let Err(e) = tokio::fs::create_dir_all(&dir).await {
            run.log.finish();
            report(RuntimeEvent::Exited {
                exit_code: EXIT_START_ERROR,
                reason: Some(REASON_START_ERROR.into()),
                message: Some(format!("creating {}: {e}", dir.display())),
            });
            return;
        }
    }
    let hostname = pod_hostname(&run.pod);
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(r#"exec "$@""#)
        .arg("sh")
        .args(&argv)
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .env("HOSTNAME", &hostname)
        .env("HOME", &run.pod_dir)
        .envs(env)
        .current_dir(&run.pod_dir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            run.log.finish();
            report(RuntimeEvent::Exited {
                exit_code: EXIT_START_ERROR,
                reason: Some(REASON_START_ERROR.into()),
                message: Some(format!("starting /bin/sh: {e}")),
            });
            return;
        }
    };
    let pgid = child.id();
    report(RuntimeEvent::Started);
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(out, run.log.clone())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(err, run.log.clone())));
    }
    // 4. Wait for the exit or a stop.
    let status = tokio::select! {
        s = child.wait() => s,
        ctl = control.recv() => {
            let grace = match ctl {
                Some(Control::Stop { grace }) => grace,
                None => Duration::ZERO,
            };
            // Like a container runtime: SIGTERM to the main process (the container's PID 1)
            // only; SIGKILL, later, to everything (the whole group, as a cgroup kill).
            if let Some(pid) = pgid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            match tokio::time::timeout(grace, child.wait()).await {
                Ok(s) => s,
                Err(_) => {
                    signal_group(pgid, Signal::SIGKILL);
                    child.wait().await
                }
            }
        }
    };
    // The container is gone: so is everything it started.
    signal_group(pgid, Signal::SIGKILL);
    for p in pumps {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    run.log.finish();
    match status {
        Ok(s) => report(RuntimeEvent::Exited {
            exit_code: exit_code(s),
            reason: None,
            message: None,
        }),
        Err(e) => report(RuntimeEvent::Exited {
            exit_code: EXIT_START_ERROR,
            reason: Some(REASON_START_ERROR.into()),
            message: Some(format!("waiting for the process: {e}")),
        }),
    }
}

/// Longest hostname the kubelet gives a pod (a DNS-1123 label).
const HOSTNAME_MAX_LENGTH: usize = 63;

/// The hostname a pod's containers see (`HOSTNAME`), as the kubelet's
/// `GeneratePodHostNameAndDomain` decides it: `spec.hostname` when set, else the pod's name,
/// cut to 63 characters without a trailing `-` or `.`.
pub fn pod_hostname(pod: &Pod) -> String {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let chosen = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
        .unwrap_or(name);
    if chosen.len() <= HOSTNAME_MAX_LENGTH {
        return chosen.to_string();
    }
    chosen[..HOSTNAME_MAX_LENGTH]
        .trim_end_matches(['-', '.'])
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::sync::Mutex;

    /// A client that is never called (the containers below read no Secret or ConfigMap).
    fn offline_client() -> Client {
        let url = "http://127.0.0.1:9".parse().expect("url");
        Client::try_from(kube::Config::new(url)).expect("client")
    }

    fn pod(command: &[&str], args: &[&str]) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some("p1".into()),
                namespace: Some("ns".into()),
                uid: Some("uid-1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "main".into(),
                    command: (!command.is_empty())
                        .then(|| command.iter().map(|s| s.to_string()).collect()),
                    args: (!args.is_empty()).then(|| args.iter().map(|s| s.to_string()).collect()),
                    env: Some(vec![
                        EnvVar {
                            name: "GREETING".into(),
                            value: Some("hello".into()),
                            ..Default::default()
                        },
                        EnvVar {
                            name: "POD".into(),
                            value_from: Some(EnvVarSource {
                                field_ref: Some(ObjectFieldSelector {
                                    field_path: "metadata.name".into(),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    struct Outcome {
        events: Arc<Mutex<Vec<RuntimeEvent>>>,
        log: Arc<ContainerLog>,
        control: mpsc::Sender<Control>,
        task: tokio::task::JoinHandle<()>,
        _dir: tempfile::TempDir,
    }

    fn start(pod: Arc<Pod>) -> Outcome {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = super::super::logs::LogStore::default();
        let log = store.container("ns", "p1", "uid-1", "main");
        let events = Arc::new(Mutex::new(Vec::new()));
        let (control, rx) = mpsc::channel(1);
        let run = ProcessRun {
            client: offline_client(),
            pod,
            cref: ContainerRef {
                init: false,
                index: 0,
            },
            pod_ip: "10.1.0.9".into(),
            host_ip: "127.0.0.1".into(),
            node_allocatable: Resources::new(),
            pod_dir: dir.path().join("pod"),
            log: log.clone(),
        };
        let sink = events.clone();
        let task = tokio::spawn(run_container(run, rx, move |e| {
            sink.lock().expect("events").push(e)
        }));
        Outcome {
            events,
            log,
            control,
            task,
            _dir: dir,
        }
    }

    fn exit_of(events: &[RuntimeEvent]) -> Option<i32> {
        events.iter().find_map(|e| match e {
            RuntimeEvent::Exited { exit_code, .. } => Some(*exit_code),
            _ => None,
        })
    }

    async fn wait_for(o: &Outcome, what: &str, pred: impl Fn(&[RuntimeEvent], &str) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if pred(&o.events.lock().expect("events"), &o.log.text()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; log: {:?}",
                o.log.text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn the_hostname_is_spec_hostname_else_the_pod_name_cut_to_a_label() {
        let mut p = (*pod(&["true"], &[])).clone();
        assert_eq!(pod_hostname(&p), "p1");
        if let Some(spec) = p.spec.as_mut() {
            spec.hostname = Some("node-0".into());
            spec.subdomain = Some("j-nodes".into());
        }
        assert_eq!(pod_hostname(&p), "node-0");
        let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        p.metadata.name = Some(long);
        if let Some(spec) = p.spec.as_mut() {
            spec.hostname = None;
        }
        assert_eq!(
            pod_hostname(&p),
            "a".repeat(62),
            "cut to 63, trailing '-' dropped"
        );
    }

    #[tokio::test]
    async fn runs_the_command_with_env_logs_and_exit_code() {
        let o = start(pod(
            &["/bin/sh", "-c"],
            &["echo $GREETING from $(POD) in $PWD; echo oops >&2; exit 7"],
        ));
        tokio::time::timeout(Duration::from_secs(10), o.task)
            .await
            .expect("finished")
            .expect("join");
        let events = o.events.lock().expect("events").clone();
        assert!(matches!(events[0], RuntimeEvent::Started), "{events:?}");
        assert_eq!(exit_of(&events), Some(7));
        let text = o.log.text();
        assert!(text.starts_with("hello from p1 in "), "{text}");
        assert!(text.contains("/pod\n"), "{text}");
        assert!(text.contains("oops\n"), "{text}");
    }

    #[tokio::test]
    async fn sigterm_on_stop_gives_143() {
        let o = start(pod(&["sleep"], &["30"]));
        wait_for(&o, "start", |e, _| {
            e.iter().any(|e| matches!(e, RuntimeEvent::Started))
        })
        .await;
        o.control
            .send(Control::Stop {
                grace: Duration::from_secs(10),
            })
            .await
            .expect("send");
        tokio::time::timeout(Duration::from_secs(5), o.task)
            .await
            .expect("stopped quickly")
            .expect("join");
        assert_eq!(exit_of(&o.events.lock().expect("events")), Some(143));
    }

    #[tokio::test]
    async fn sigkill_after_the_grace_period_when_sigterm_is_ignored() {
        let o = start(pod(
            &["/bin/sh", "-c"],
            &["trap 'echo got TERM' TERM; echo ready; while true; do sleep 0.05; done"],
        ));
        wait_for(&o, "ready", |_, log| log.contains("ready")).await;
        let begun = tokio::time::Instant::now();
        o.control
            .send(Control::Stop {
                grace: Duration::from_millis(300),
            })
            .await
            .expect("send");
        tokio::time::timeout(Duration::from_secs(5), o.task)
            .await
            .expect("killed")
            .expect("join");
        assert!(begun.elapsed() >= Duration::from_millis(300));
        assert_eq!(exit_of(&o.events.lock().expect("events")), Some(137));
        assert!(o.log.text().contains("got TERM"), "{}", o.log.text());
    }

    #[tokio::test]
    async fn no_command_exits_zero_with_a_note() {
        let o = start(pod(&[], &[]));
        tokio::time::timeout(Duration::from_secs(5), o.task)
            .await
            .expect("finished")
            .expect("join");
        assert_eq!(exit_of(&o.events.lock().expect("events")), Some(0));
        assert!(o.log.text().contains("entrypoint is not simulated"));
    }
}
