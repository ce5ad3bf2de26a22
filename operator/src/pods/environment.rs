//! The container environment of an attempt: the `AWS_BATCH_*` variables (set last, so a job
//! cannot override them), the definition's and job's `environment` (secrets by
//! `secretKeyRef`), and `Ref::name` parameter substitution in commands and arguments (job
//! parameters win over the definition's).

use std::collections::BTreeMap;

use barge_crds::consts::{
    ENV_CE_NAME, ENV_JOB_ARRAY_INDEX, ENV_JOB_ARRAY_SIZE, ENV_JOB_ATTEMPT, ENV_JOB_ID,
    ENV_JOB_MAIN_NODE_INDEX, ENV_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS, ENV_JOB_NODE_INDEX,
    ENV_JOB_NUM_NODES, ENV_JQ_NAME,
};
use barge_crds::resources::EnvironmentVariable;
use barge_crds::{Job, JobDefinitionSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar};

use super::AttemptPod;

/// The definition's parameters overridden by the job's.
pub(super) fn merged_parameters(
    definition: &JobDefinitionSpec,
    job: &Job,
) -> BTreeMap<String, String> {
    let mut parameters = definition.parameters.clone();
    parameters.extend(
        job.spec
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    parameters
}

/// The `AWS_BATCH_*` variables of the attempt, in a fixed order. As in AWS Batch, the job id of
/// an array child is `<job id>:<index>` and that of a node of a multi-node job
/// `<job id>#<node index>`; every node gets its index, the number of nodes and the main node's
/// index, and every node but the main one the main node's IP address.
/// `nodes`: a multi-node job's `numNodes` and `mainNode`.
pub(super) fn batch_environment(
    input: &AttemptPod,
    uid: &str,
    ce_name: &str,
    nodes: Option<(u32, u32)>,
) -> Vec<EnvVar> {
    let job_id = match (input.array_index, &input.node) {
        (Some(index), _) => format!("{uid}:{index}"),
        (None, Some(node)) => format!("{uid}#{}", node.index),
        (None, None) => uid.to_string(),
    };
    let mut vars = vec![
        (ENV_JOB_ID, job_id),
        (ENV_JOB_ATTEMPT, input.attempt.to_string()),
        (ENV_JQ_NAME, input.queue.to_string()),
        (ENV_CE_NAME, ce_name.to_string()),
    ];
    if let Some(index) = input.array_index {
        vars.push((ENV_JOB_ARRAY_INDEX, index.to_string()));
    }
    if let Some(size) = input.array_size {
        vars.push((ENV_JOB_ARRAY_SIZE, size.to_string()));
    }
    if let (Some(node), Some((num_nodes, main_node))) = (&input.node, nodes) {
        vars.push((ENV_JOB_NODE_INDEX, node.index.to_string()));
        vars.push((ENV_JOB_NUM_NODES, num_nodes.to_string()));
        vars.push((ENV_JOB_MAIN_NODE_INDEX, main_node.to_string()));
        if node.index != main_node {
            if let Some(ip) = node.main_pod_ip {
                vars.push((ENV_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS, ip.to_string()));
            }
        }
    }
    vars.into_iter()
        .map(|(name, value)| EnvVar {
            name: name.to_string(),
            value: Some(value),
            value_from: None,
        })
        .collect()
}

/// Appends the `AWS_BATCH_*` variables to a container's environment (dropping any earlier entry
/// of the same name, so each is set once and last).
pub(super) fn append_batch_env(container: &mut Container, batch_env: &[EnvVar]) {
    let mut env = container.env.take().unwrap_or_default();
    env.retain(|var| !batch_env.iter().any(|b| b.name == var.name));
    env.extend(batch_env.iter().cloned());
    container.env = Some(env);
}

/// Sets `var` in `env`: replaces the entry of the same name in place, or appends it.
pub(super) fn set_env(env: &mut Vec<EnvVar>, var: EnvVar) {
    match env.iter_mut().find(|existing| existing.name == var.name) {
        Some(existing) => *existing = var,
        None => env.push(var),
    }
}

/// Whether `key` can be a key of a Secret's data (letters, digits, `-`, `_`, `.`).
pub(super) fn is_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub(super) fn env_var(var: &EnvironmentVariable) -> EnvVar {
    EnvVar {
        name: var.name.clone(),
        value: var.value.clone(),
        value_from: None,
    }
}

/// Replaces `Ref::name` in `text` by the value of parameter `name`, as AWS Batch does: the
/// longest parameter name that follows `Ref::` and ends at a word boundary (the next character
/// is not a letter, digit or `_`) is replaced; a reference to an unknown parameter stays as
/// written. Values are inserted as they are (not substituted again).
pub fn substitute_refs(text: &str, parameters: &BTreeMap<String, String>) -> String {
    const MARKER: &str = "Ref::";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(MARKER) {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + MARKER.len()..];
        let known = parameters
            .iter()
            .filter(|(name, _)| {
                !name.is_empty()
                    && after.starts_with(name.as_str())
                    && !after[name.len()..]
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
            .max_by_key(|(name, _)| name.len());
        match known {
            Some((name, value)) => {
                out.push_str(value);
                rest = &after[name.len()..];
            }
            None => {
                out.push_str(MARKER);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

pub(super) fn substitute_all(
    words: &[String],
    parameters: &BTreeMap<String, String>,
) -> Vec<String> {
    words
        .iter()
        .map(|word| substitute_refs(word, parameters))
        .collect()
}

pub(super) fn substitute_container_refs(
    container: &mut Container,
    parameters: &BTreeMap<String, String>,
) {
    if let Some(command) = &container.command {
        container.command = Some(substitute_all(command, parameters));
    }
    if let Some(args) = &container.args {
        container.args = Some(substitute_all(args, parameters));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::fixtures::*;
    use crate::test_support::aws_job_definition;
    use barge_crds::consts::LABEL_ARRAY_INDEX;
    use serde_json::json;

    #[test]
    fn ref_parameters_are_substituted_with_job_values_winning() {
        let def = aws_job_definition("jobdef-ffmpeg_parameters.json");
        let submitted = job(json!({
            "parameters": {"inputfile": "s3://in/a.mov", "outputfile": "s3://out/a.mp4", "codec": "h264"},
        }));
        let pod = Render::new(def.clone(), submitted).pod();
        assert_eq!(
            main_container(&pod).command.as_deref(),
            Some(
                &[
                    "ffmpeg",
                    "-i",
                    "s3://in/a.mov",
                    "-c",
                    "h264",
                    "-o",
                    "s3://out/a.mp4"
                ]
                .map(String::from)[..]
            )
        );
        // Without job parameters: the definition's default for codec, unknown refs left alone.
        let pod = Render::new(def, job(json!({}))).pod();
        assert_eq!(
            main_container(&pod).command.as_deref(),
            Some(
                &[
                    "ffmpeg",
                    "-i",
                    "Ref::inputfile",
                    "-c",
                    "mp4",
                    "-o",
                    "Ref::outputfile"
                ]
                .map(String::from)[..]
            )
        );
    }

    #[test]
    fn ref_tokens_inside_words_respect_word_boundaries() {
        let params = BTreeMap::from([
            ("in".to_string(), "X".to_string()),
            ("input".to_string(), "Y".to_string()),
            ("codec".to_string(), "Ref::in".to_string()),
        ]);
        assert_eq!(
            substitute_refs("--file=Ref::input.mov", &params),
            "--file=Y.mov"
        );
        assert_eq!(substitute_refs("Ref::in-Ref::input", &params), "X-Y");
        assert_eq!(substitute_refs("Ref::inputs", &params), "Ref::inputs");
        assert_eq!(
            substitute_refs("Ref::codec", &params),
            "Ref::in",
            "values are not re-substituted"
        );
        assert_eq!(substitute_refs("Ref::", &params), "Ref::");
        assert_eq!(substitute_refs("no refs", &params), "no refs");
    }

    #[test]
    fn aws_batch_variables_come_last_and_describe_the_attempt() {
        let def = aws_job_definition("jobdef-fetch_and_run.json");
        let pod = Render::new(def.clone(), job(json!({}))).attempt(2).pod();
        let env = env_pairs(main_container(&pod));
        let tail: Vec<(String, Option<String>)> = env[env.len() - 4..].to_vec();
        assert_eq!(
            tail,
            vec![
                (ENV_JOB_ID.to_string(), Some(UID.to_string())),
                (ENV_JOB_ATTEMPT.to_string(), Some("2".to_string())),
                (ENV_JQ_NAME.to_string(), Some("high-priority".to_string())),
                (ENV_CE_NAME.to_string(), Some("c4ondemand".to_string())),
            ]
        );
        assert!(!env.iter().any(|(n, _)| n == ENV_JOB_ARRAY_INDEX));

        let pod = Render::new(def, job(json!({"arrayProperties": {"size": 100}})))
            .array_child(41, 100)
            .pod();
        let env = env_pairs(main_container(&pod));
        let tail: Vec<(String, Option<String>)> = env[env.len() - 6..].to_vec();
        assert_eq!(tail[0], (ENV_JOB_ID.to_string(), Some(format!("{UID}:41"))));
        assert_eq!(
            tail[4],
            (ENV_JOB_ARRAY_INDEX.to_string(), Some("41".to_string()))
        );
        assert_eq!(
            tail[5],
            (ENV_JOB_ARRAY_SIZE.to_string(), Some("100".to_string()))
        );
        assert_eq!(pod.metadata.name.as_deref(), Some("render-1-41"));
        assert_eq!(
            pod.metadata
                .labels
                .as_ref()
                .expect("labels")
                .get(LABEL_ARRAY_INDEX),
            Some(&"41".to_string())
        );
    }
}
