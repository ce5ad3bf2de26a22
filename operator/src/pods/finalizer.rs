//! Releasing Barge's attempt-result finalizer once a pod's result is recorded (the job
//! controller) or its job is gone (the scheduler's clean-up). The only I/O of the module.

use barge_crds::consts::{FINALIZER_ATTEMPT_RESULT, LABEL_DISPOSABLE};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch};

use super::patch_pod;

use crate::status::is_not_found;

/// Why [`release_pod`] failed.
#[derive(Debug, thiserror::Error)]
#[error("releasing the result finalizer of pod {pod}: {source}")]
pub struct ReleaseError {
    pub pod: String,
    #[source]
    pub source: kube::Error,
}

/// The JSON patch that removes Barge's result finalizer from a pod whose finalizers the caller
/// saw as `finalizers` — guarded by a `test` of that very entry, so a stale view cannot write
/// back a list that another controller has changed since (a merge patch of the whole list
/// would). With `disposable`, the same patch labels the pod for deletion in a batch
/// ([`LABEL_DISPOSABLE`]). None when the finalizer is not there.
pub fn release_patch(finalizers: &[String], disposable: bool) -> Option<json_patch::Patch> {
    let index = finalizers
        .iter()
        .position(|f| f == FINALIZER_ATTEMPT_RESULT)?;
    let path = format!("/metadata/finalizers/{index}");
    let mut ops = vec![
        serde_json::json!({"op": "test", "path": path, "value": FINALIZER_ATTEMPT_RESULT}),
        serde_json::json!({"op": "remove", "path": path}),
    ];
    if disposable {
        // Barge's pods always carry labels, so the map exists; `~1` escapes the key's `/`.
        let label = format!("/metadata/labels/{}", LABEL_DISPOSABLE.replace('/', "~1"));
        ops.push(serde_json::json!({"op": "add", "path": label, "value": "true"}));
    }
    serde_json::from_value(serde_json::Value::Array(ops)).ok()
}

/// Removes Barge's result finalizer from a pod (its result is recorded, or its job is gone);
/// `disposable` labels it for deletion in a batch in the same write (see [`release_patch`]).
/// When the pod's finalizers changed since the caller's view, the API server refuses the patch
/// (its `test` fails) and the caller tries again on a fresher view.
pub async fn release_pod(
    api: &Api<Pod>,
    pod: &str,
    finalizers: &[String],
    disposable: bool,
) -> Result<(), ReleaseError> {
    let Some(patch) = release_patch(finalizers, disposable) else {
        return Ok(());
    };
    match patch_pod(api, pod, &Patch::<()>::Json(patch)).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(source) => Err(ReleaseError {
            pod: pod.to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_patch_removes_only_the_entry_it_saw() {
        let seen = vec![
            "example.com/other".to_string(),
            FINALIZER_ATTEMPT_RESULT.to_string(),
            "example.com/last".to_string(),
        ];
        let patch =
            serde_json::to_value(release_patch(&seen, false).expect("a patch")).expect("json");
        assert_eq!(
            patch,
            serde_json::json!([
                {"op": "test", "path": "/metadata/finalizers/1", "value": FINALIZER_ATTEMPT_RESULT},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ])
        );
        assert!(
            release_patch(&seen[..1], true).is_none(),
            "nothing to release"
        );
    }

    #[test]
    fn a_disposable_pod_is_labelled_in_the_release_patch() {
        let seen = vec![FINALIZER_ATTEMPT_RESULT.to_string()];
        let patch = release_patch(&seen, true).expect("a patch");
        let mut pod = serde_json::json!({
            "metadata": {
                "name": "p",
                "labels": {"batch.barge.dev/job-uid": "u"},
                "finalizers": [FINALIZER_ATTEMPT_RESULT],
            }
        });
        json_patch::patch(&mut pod, &patch).expect("applies");
        assert_eq!(pod["metadata"]["finalizers"], serde_json::json!([]));
        assert_eq!(
            pod["metadata"]["labels"],
            serde_json::json!({"batch.barge.dev/job-uid": "u", LABEL_DISPOSABLE: "true"})
        );
    }
}
