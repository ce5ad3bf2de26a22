//! `kubectl barge logs NAME[:INDEX]`: the log of a job's attempt, read from its pod
//! (`pods/log`, as `kubectl logs`): the latest attempt unless `--attempt N`; an array child by
//! `NAME:INDEX` or `--index`; a multi-node job's main node unless `--node N`; `-f` follows,
//! `--tail N` starts from the last lines.
//!
//! The pod is found by the labels Barge puts on every attempt's pod (job name and uid, attempt,
//! array index, node index), so a pod of an earlier job of the same name is never picked.
//! [`pick_pod`] is pure; the log is streamed as the API server sends it.

use std::process::ExitCode;

use clap::Args;
use futures::io::AllowStdIo;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, ResourceExt};

use barge_crds::consts::{
    LABEL_ARRAY_INDEX, LABEL_ATTEMPT, LABEL_JOB_NAME, LABEL_JOB_UID, LABEL_NODE_INDEX,
    MAIN_CONTAINER_NAME,
};
use barge_crds::Job;

use super::kube_cli::{connect, run, CliError, ClusterArgs};

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The job, or `NAME:INDEX` for a child of an array job.
    #[arg(value_name = "NAME[:INDEX]")]
    pub job: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The attempt (1 is the first; default: the latest).
    #[arg(long, value_name = "N")]
    pub attempt: Option<u32>,
    /// The array child (as `NAME:INDEX`).
    #[arg(long, value_name = "N")]
    pub index: Option<u32>,
    /// The node of a multi-node job (default: its main node).
    #[arg(long, value_name = "N")]
    pub node: Option<u32>,
    /// The container (default: the job's main container).
    #[arg(long, short = 'c', value_name = "NAME")]
    pub container: Option<String>,
    /// Follow the log (as `kubectl logs -f`).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<i64>,
    /// Prefix each line with its timestamp.
    #[arg(long)]
    pub timestamps: bool,
}

/// Which attempt's pod to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogTarget {
    pub attempt: Option<u32>,
    pub index: Option<u32>,
    pub node: Option<u32>,
}

/// Splits `NAME:INDEX` (job names never contain ':'); an `--index` must agree with it.
pub fn parse_job_and_index(
    value: &str,
    index: Option<u32>,
) -> Result<(String, Option<u32>), String> {
    match value.split_once(':') {
        None => Ok((value.to_string(), index)),
        Some((name, child)) => {
            let child: u32 = child
                .parse()
                .map_err(|_| format!("{value:?}: the array index after ':' must be a number"))?;
            match index {
                Some(other) if other != child => Err(format!(
                    "{value:?} names child {child} but --index says {other}"
                )),
                _ => Ok((name.to_string(), Some(child))),
            }
        }
    }
}

fn label(pod: &Pod, key: &str) -> Option<u32> {
    pod.labels().get(key).and_then(|v| v.parse().ok())
}

/// The pod of the attempt `target` names, among `pods` (the pods labelled with the job's
/// name).
pub fn pick_pod<'a>(job: &Job, pods: &'a [Pod], target: &LogTarget) -> Result<&'a Pod, String> {
    let name = job.name_any();
    let uid = job.uid();
    let array_size = job.spec.array_properties.as_ref().map(|a| a.size);
    let nodes = job.status.as_ref().and_then(|s| s.node_properties.as_ref());
    let multi_node = nodes.is_some() || pods.iter().any(|p| label(p, LABEL_NODE_INDEX).is_some());
    let index = match (array_size, target.index) {
        (Some(size), None) => {
            return Err(format!(
                "job {name} is an array job of {size} children: name one as {name}:INDEX (or --index INDEX)"
            ))
        }
        (Some(size), Some(i)) if i64::from(i) >= i64::from(size) => {
            return Err(format!(
                "job {name} has children 0 to {}: there is no child {i}",
                size - 1
            ))
        }
        (None, Some(_)) => return Err(format!("job {name} is not an array job")),
        (_, index) => index,
    };
    let node = match (multi_node, target.node) {
        (true, None) => Some(nodes.map_or(0, |n| u32::try_from(n.main_node).unwrap_or(0))),
        (false, Some(_)) => return Err(format!("job {name} is not a multi-node job")),
        (_, node) => node,
    };
    let candidates: Vec<&Pod> = pods
        .iter()
        .filter(|p| uid.is_none() || p.labels().get(LABEL_JOB_UID) == uid.as_ref())
        .filter(|p| label(p, LABEL_ARRAY_INDEX) == index)
        .filter(|p| label(p, LABEL_NODE_INDEX) == node)
        .filter(|p| label(p, LABEL_ATTEMPT).is_some())
        .collect();
    let what = match (index, node) {
        (Some(i), _) => format!("child {i} of job {name}"),
        (_, Some(n)) => format!("node {n} of job {name}"),
        _ => format!("job {name}"),
    };
    let attempts: Vec<u32> = candidates
        .iter()
        .filter_map(|p| label(p, LABEL_ATTEMPT))
        .collect();
    match target.attempt {
        Some(attempt) => candidates
            .into_iter()
            .find(|p| label(p, LABEL_ATTEMPT) == Some(attempt))
            .ok_or_else(|| {
                let mut known = attempts.clone();
                known.sort_unstable();
                let known: Vec<String> = known.iter().map(u32::to_string).collect();
                format!(
                    "attempt {attempt} of {what} has no pod (pods of attempts: {}); a pod deleted after its attempt takes its log with it",
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                )
            }),
        None => candidates
            .into_iter()
            .max_by_key(|p| label(p, LABEL_ATTEMPT))
            .ok_or_else(|| {
                format!("{what} has no pod: it has not started yet, or its pods were deleted")
            }),
    }
}

/// The container to read: the one asked for, else Barge's main container, else the only one.
pub fn pick_container(pod: &Pod, requested: Option<&str>) -> Option<String> {
    if let Some(c) = requested {
        return Some(c.to_string());
    }
    let containers = &pod.spec.as_ref()?.containers;
    containers
        .iter()
        .find(|c| c.name == MAIN_CONTAINER_NAME)
        .or(containers.first())
        .map(|c| c.name.clone())
}

pub fn run_logs(args: LogsArgs) -> ExitCode {
    run(logs(args))
}

async fn logs(args: LogsArgs) -> Result<(), CliError> {
    let (name, index) = parse_job_and_index(&args.job, args.index).map_err(CliError::Other)?;
    let (client, namespace) = connect(&args.cluster).await?;
    let job = Api::<Job>::namespaced(client.clone(), &namespace)
        .get(&name)
        .await?;
    let pods_api: Api<Pod> = Api::namespaced(client, &namespace);
    let pods = pods_api
        .list(&ListParams::default().labels(&format!("{LABEL_JOB_NAME}={name}")))
        .await?
        .items;
    let target = LogTarget {
        attempt: args.attempt,
        index,
        node: args.node,
    };
    let pod = pick_pod(&job, &pods, &target).map_err(CliError::Other)?;
    let params = LogParams {
        container: pick_container(pod, args.container.as_deref()),
        follow: args.follow,
        tail_lines: args.tail,
        timestamps: args.timestamps,
        ..LogParams::default()
    };
    let stream = pods_api.log_stream(&pod.name_any(), &params).await?;
    let mut stdout = AllowStdIo::new(std::io::stdout());
    futures::io::copy_buf(stream, &mut stdout)
        .await
        .map_err(|e| CliError::other(format!("reading the log of pod {}: {e}", pod.name_any())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(yaml: &str) -> Job {
        serde_yaml::from_str(yaml).expect("a job")
    }

    fn pod(name: &str, labels: &[(&str, &str)]) -> Pod {
        let mut all: std::collections::BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.insert(LABEL_JOB_UID.into(), "u-1".into());
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": all},
            "spec": {"containers": [{"name": "sidecar"}, {"name": MAIN_CONTAINER_NAME}]},
        }))
        .expect("a pod")
    }

    const SINGLE: &str = "apiVersion: batch.barge.dev/v1alpha1\nkind: Job\nmetadata: {name: train, uid: u-1}\nspec: {jobQueue: q, jobDefinition: d}\n";
    const ARRAY: &str = "apiVersion: batch.barge.dev/v1alpha1\nkind: Job\nmetadata: {name: frames, uid: u-1}\nspec: {jobQueue: q, jobDefinition: d, arrayProperties: {size: 3}}\n";
    const MULTI: &str = "apiVersion: batch.barge.dev/v1alpha1\nkind: Job\nmetadata: {name: mpi, uid: u-1}\nspec: {jobQueue: q, jobDefinition: d}\nstatus: {nodeProperties: {numNodes: 2, mainNode: 1}}\n";

    #[test]
    fn the_latest_attempt_is_read_unless_one_is_named() {
        let pods = vec![
            pod("train-1", &[(LABEL_ATTEMPT, "1")]),
            pod("train-2", &[(LABEL_ATTEMPT, "2")]),
            // A pod of an earlier job of the same name.
            serde_json::from_value(serde_json::json!({"metadata": {"name": "train-3", "labels": {LABEL_ATTEMPT: "3", LABEL_JOB_UID: "old"}}})).expect("pod"),
        ];
        let j = job(SINGLE);
        let pick = |attempt| {
            pick_pod(
                &j,
                &pods,
                &LogTarget {
                    attempt,
                    ..LogTarget::default()
                },
            )
            .map(|p| p.name_any())
        };
        assert_eq!(pick(None).as_deref(), Ok("train-2"));
        assert_eq!(pick(Some(1)).as_deref(), Ok("train-1"));
        let missing = pick(Some(4)).unwrap_err();
        assert!(missing.contains("pods of attempts: 1, 2"), "{missing}");
        assert_eq!(
            pick_container(&pods[0], None).as_deref(),
            Some(MAIN_CONTAINER_NAME)
        );
    }

    #[test]
    fn an_array_child_is_chosen_by_index() {
        let pods = vec![
            pod(
                "frames-1-0",
                &[(LABEL_ATTEMPT, "1"), (LABEL_ARRAY_INDEX, "0")],
            ),
            pod(
                "frames-1-2",
                &[(LABEL_ATTEMPT, "1"), (LABEL_ARRAY_INDEX, "2")],
            ),
            pod(
                "frames-2-2",
                &[(LABEL_ATTEMPT, "2"), (LABEL_ARRAY_INDEX, "2")],
            ),
        ];
        let j = job(ARRAY);
        let pick = |index, attempt| {
            pick_pod(
                &j,
                &pods,
                &LogTarget {
                    attempt,
                    index,
                    node: None,
                },
            )
            .map(|p| p.name_any())
        };
        assert_eq!(pick(Some(2), None).as_deref(), Ok("frames-2-2"));
        assert_eq!(pick(Some(2), Some(1)).as_deref(), Ok("frames-1-2"));
        assert_eq!(pick(Some(0), None).as_deref(), Ok("frames-1-0"));
        assert!(pick(None, None).unwrap_err().contains("frames:INDEX"));
        assert!(pick(Some(3), None).unwrap_err().contains("no child 3"));
        assert!(pick(Some(1), None)
            .unwrap_err()
            .contains("child 1 of job frames has no pod"));
    }

    #[test]
    fn a_multi_node_job_reads_its_main_node_unless_told() {
        let pods = vec![
            pod(
                "mpi-1-node-0",
                &[(LABEL_ATTEMPT, "1"), (LABEL_NODE_INDEX, "0")],
            ),
            pod(
                "mpi-1-node-1",
                &[(LABEL_ATTEMPT, "1"), (LABEL_NODE_INDEX, "1")],
            ),
        ];
        let j = job(MULTI);
        let pick = |node| {
            pick_pod(
                &j,
                &pods,
                &LogTarget {
                    node,
                    ..LogTarget::default()
                },
            )
            .map(|p| p.name_any())
        };
        assert_eq!(pick(None).as_deref(), Ok("mpi-1-node-1"), "main node 1");
        assert_eq!(pick(Some(0)).as_deref(), Ok("mpi-1-node-0"));
        let single = job(SINGLE);
        let refused = pick_pod(
            &single,
            &[],
            &LogTarget {
                node: Some(0),
                ..LogTarget::default()
            },
        );
        assert!(refused.unwrap_err().contains("not a multi-node job"));
    }

    #[test]
    fn name_colon_index_names_a_child() {
        assert_eq!(
            parse_job_and_index("frames:7", None),
            Ok(("frames".into(), Some(7)))
        );
        assert_eq!(
            parse_job_and_index("frames", Some(2)),
            Ok(("frames".into(), Some(2)))
        );
        assert_eq!(
            parse_job_and_index("frames:7", Some(7)),
            Ok(("frames".into(), Some(7)))
        );
        assert!(parse_job_and_index("frames:7", Some(1)).is_err());
        assert!(parse_job_and_index("frames:x", None).is_err());
    }
}
