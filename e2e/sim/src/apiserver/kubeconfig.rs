//! The kubeconfig written for a running sim: `http://127.0.0.1:PORT`, no authentication (the sim
//! accepts any or no credentials), context namespace `default`.

use std::path::Path;

/// Name of the cluster, user and context in the kubeconfig.
pub const CONTEXT_NAME: &str = "barge-sim";

pub fn kubeconfig_yaml(server_url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {CONTEXT_NAME}\n  cluster:\n    server: {server_url}\ncontexts:\n- name: {CONTEXT_NAME}\n  context:\n    cluster: {CONTEXT_NAME}\n    user: {CONTEXT_NAME}\n    namespace: default\ncurrent-context: {CONTEXT_NAME}\nusers:\n- name: {CONTEXT_NAME}\n  user: {{}}\npreferences: {{}}\n"
    )
}

pub fn write_kubeconfig(path: &Path, server_url: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, kubeconfig_yaml(server_url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_parses_with_kube() {
        let y = kubeconfig_yaml("http://127.0.0.1:1234");
        let kc: kube::config::Kubeconfig = serde_yaml::from_str(&y).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some(CONTEXT_NAME));
        assert_eq!(
            kc.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("http://127.0.0.1:1234")
        );
    }
}
