//! The `scripted` runtime's parameters and the choice of runtime per pod. A scripted container
//! is only a timer in the manager's deadline queue (no process, no task), which is what makes
//! 100,000 pods cheap: it "runs" for `sim.barge.dev/duration-seconds` and exits with
//! `sim.barge.dev/exit-code` (or OOMKilled with `sim.barge.dev/oom-killed: "true"`); it dies
//! at once on SIGTERM (exit 143). Its log is one line saying what it does, so `kubectl logs`
//! works on scripted pods too.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::consts::{
    ANNOTATION_DURATION, ANNOTATION_EXIT_CODE, ANNOTATION_OOM_KILLED, ANNOTATION_RUNTIME,
    EXIT_SIGKILL,
};

/// A kubelet runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeKind {
    #[default]
    Scripted,
    Process,
}

impl FromStr for RuntimeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "scripted" => Ok(Self::Scripted),
            "process" => Ok(Self::Process),
            other => Err(format!(
                "unknown runtime {other:?} (expected scripted or process)"
            )),
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Scripted => "scripted",
            Self::Process => "process",
        })
    }
}

/// How each container of a scripted pod behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptedParams {
    pub duration: Duration,
    pub exit_code: i32,
    pub oom_killed: bool,
}

/// The runtime a pod runs under, or why its annotations are unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodRuntime {
    Scripted(ScriptedParams),
    Process,
    /// Every container fails to start with this message.
    Invalid(String),
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// Reads the pod's runtime annotations (the kubelet's default applies without one).
pub fn pod_runtime(pod: &Pod, default: RuntimeKind) -> PodRuntime {
    let kind = match annotation(pod, ANNOTATION_RUNTIME) {
        None => default,
        Some(v) => match v.parse() {
            Ok(k) => k,
            Err(e) => return PodRuntime::Invalid(format!("annotation {ANNOTATION_RUNTIME}: {e}")),
        },
    };
    match kind {
        RuntimeKind::Process => PodRuntime::Process,
        RuntimeKind::Scripted => match scripted_params(pod) {
            Ok(p) => PodRuntime::Scripted(p),
            Err(e) => PodRuntime::Invalid(e),
        },
    }
}

fn scripted_params(pod: &Pod) -> Result<ScriptedParams, String> {
    let duration = match annotation(pod, ANNOTATION_DURATION) {
        None => Duration::ZERO,
        Some(raw) => raw
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| format!("annotation {ANNOTATION_DURATION} must be a non-negative number of seconds, got {raw:?}"))?,
    };
    let oom_killed = annotation(pod, ANNOTATION_OOM_KILLED) == Some("true");
    let exit_code = match annotation(pod, ANNOTATION_EXIT_CODE) {
        None if oom_killed => EXIT_SIGKILL,
        None => 0,
        Some(raw) => raw.trim().parse::<i32>().map_err(|_| {
            format!("annotation {ANNOTATION_EXIT_CODE} must be an integer, got {raw:?}")
        })?,
    };
    Ok(ScriptedParams {
        duration,
        exit_code,
        oom_killed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(a: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                annotations: Some(
                    a.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn reads_duration_exit_code_and_runtime() {
        assert_eq!(
            pod_runtime(
                &pod(&[(ANNOTATION_DURATION, "1.5"), (ANNOTATION_EXIT_CODE, "3")]),
                RuntimeKind::Scripted
            ),
            PodRuntime::Scripted(ScriptedParams {
                duration: Duration::from_millis(1500),
                exit_code: 3,
                oom_killed: false
            })
        );
        assert_eq!(
            pod_runtime(&pod(&[]), RuntimeKind::Scripted),
            PodRuntime::Scripted(ScriptedParams {
                duration: Duration::ZERO,
                exit_code: 0,
                oom_killed: false
            })
        );
        assert_eq!(
            pod_runtime(&pod(&[]), RuntimeKind::Process),
            PodRuntime::Process
        );
        assert_eq!(
            pod_runtime(
                &pod(&[(ANNOTATION_RUNTIME, "process")]),
                RuntimeKind::Scripted
            ),
            PodRuntime::Process
        );
        assert_eq!(
            pod_runtime(
                &pod(&[(ANNOTATION_OOM_KILLED, "true")]),
                RuntimeKind::Scripted
            ),
            PodRuntime::Scripted(ScriptedParams {
                duration: Duration::ZERO,
                exit_code: 137,
                oom_killed: true
            })
        );
    }

    #[test]
    fn bad_annotations_name_the_annotation() {
        for (k, v) in [
            (ANNOTATION_DURATION, "-2"),
            (ANNOTATION_DURATION, "soon"),
            (ANNOTATION_EXIT_CODE, "x"),
            (ANNOTATION_RUNTIME, "vm"),
        ] {
            match pod_runtime(&pod(&[(k, v)]), RuntimeKind::Scripted) {
                PodRuntime::Invalid(msg) => assert!(msg.contains(k), "{msg}"),
                other => panic!("{k}={v} gave {other:?}"),
            }
        }
    }
}
