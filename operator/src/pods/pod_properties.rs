//! The Kubernetes-shaped `podProperties` → the pod's spec: its containers as written, with
//! `Ref::` parameters substituted, overrides applied and the `AWS_BATCH_*` environment added.

use std::collections::BTreeMap;

use barge_crds::job_definition::PodProperties;
use barge_crds::resources::ContainerOverrides;
use k8s_openapi::api::core::v1::{EnvVar, PodSpec};

use super::environment::{append_batch_env, env_var, set_env, substitute_container_refs};
use super::RenderError;

/// The pod spec of a Kubernetes-shaped `podProperties`: its containers, init containers, volumes
/// and service account as they are, with `Ref::` parameters substituted in commands and
/// arguments, the job's command and environment overrides applied to the first container, and
/// the `AWS_BATCH_*` variables appended to every container.
pub(super) fn pod_properties_spec(
    props: &PodProperties,
    overrides: Option<&ContainerOverrides>,
    parameters: &BTreeMap<String, String>,
    batch_env: &[EnvVar],
) -> Result<PodSpec, RenderError> {
    let mut containers = props.containers.clone();
    let first = containers.first_mut().ok_or(RenderError::NoPodContainers)?;
    if let Some(overrides) = overrides {
        if let Some(command) = &overrides.command {
            first.command = Some(command.clone());
        }
        let mut env = first.env.take().unwrap_or_default();
        for var in &overrides.environment {
            set_env(&mut env, env_var(var));
        }
        first.env = (!env.is_empty()).then_some(env);
    }
    let mut init_containers = props.init_containers.clone();
    for container in containers.iter_mut().chain(init_containers.iter_mut()) {
        substitute_container_refs(container, parameters);
        append_batch_env(container, batch_env);
    }
    Ok(PodSpec {
        containers,
        init_containers: (!init_containers.is_empty()).then_some(init_containers),
        volumes: (!props.volumes.is_empty()).then(|| props.volumes.clone()),
        service_account_name: props.service_account_name.clone(),
        ..PodSpec::default()
    })
}

#[cfg(test)]
mod tests {
    use crate::pods::fixtures::*;
    use barge_crds::consts::{ENV_CE_NAME, ENV_JOB_ID};
    use serde_json::json;

    #[test]
    fn pod_properties_keep_their_containers_and_get_the_batch_environment() {
        let submitted = job(json!({
            "containerOverrides": {
                "command": ["run", "Ref::mode", "--verbose"],
                "environment": [{"name": "LEVEL", "value": "debug"}],
            },
            "parameters": {"mode": "slow"},
        }));
        let pod = Render::new(pod_properties_definition(), submitted).pod();
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.service_account_name.as_deref(), Some("renderer"));
        assert_eq!(spec.volumes.as_ref().map(Vec::len), Some(1));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        let app = &spec.containers[0];
        assert_eq!(app.name, "app");
        assert_eq!(
            app.command,
            Some(vec![
                "run".to_string(),
                "slow".to_string(),
                "--verbose".to_string()
            ])
        );
        assert_eq!(env_value(app, "LEVEL").as_deref(), Some("debug"));
        let init = &spec.init_containers.as_ref().expect("init containers")[0];
        for container in [app, &spec.containers[1], init] {
            let env = env_pairs(container);
            assert_eq!(
                env.last().map(|(n, _)| n.as_str()),
                Some(ENV_CE_NAME),
                "{}",
                container.name
            );
            assert_eq!(env_value(container, ENV_JOB_ID).as_deref(), Some(UID));
        }
        assert_eq!(
            env_value(&spec.containers[1], "LEVEL"),
            None,
            "overrides touch the first container only"
        );
    }
}
