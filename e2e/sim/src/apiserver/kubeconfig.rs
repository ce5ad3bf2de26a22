//! The kubeconfig written for a running sim: `http://127.0.0.1:PORT`, no authentication (the sim
//! accepts any or no credentials: the user is `system:admin`), context namespace `default`; and
//! kubeconfigs whose user impersonates another ([`kubeconfig_as_yaml`]).

use std::path::Path;

/// Name of the cluster, user and context in the kubeconfig.
pub const CONTEXT_NAME: &str = "barge-sim";

pub fn kubeconfig_yaml(server_url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {CONTEXT_NAME}\n  cluster:\n    server: {server_url}\ncontexts:\n- name: {CONTEXT_NAME}\n  context:\n    cluster: {CONTEXT_NAME}\n    user: {CONTEXT_NAME}\n    namespace: default\ncurrent-context: {CONTEXT_NAME}\nusers:\n- name: {CONTEXT_NAME}\n  user: {{}}\npreferences: {{}}\n"
    )
}

/// A kubeconfig for the same server whose user impersonates `user` with `groups` (the
/// kubeconfig fields `as:` and `as-groups:`, which kubectl and kube-rs turn into
/// `Impersonate-User` / `Impersonate-Group` headers). Names are written as JSON strings, which
/// are YAML too, so `system:serviceaccount:ns:name` needs no further quoting.
pub fn kubeconfig_as_yaml(server_url: &str, user: &str, groups: &[&str]) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut impersonation = format!("    as: {}\n", q(user));
    if !groups.is_empty() {
        impersonation.push_str("    as-groups:\n");
        for g in groups {
            impersonation.push_str(&format!("    - {}\n", q(g)));
        }
    }
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {CONTEXT_NAME}\n  cluster:\n    server: {server_url}\ncontexts:\n- name: {CONTEXT_NAME}\n  context:\n    cluster: {CONTEXT_NAME}\n    user: {CONTEXT_NAME}\n    namespace: default\ncurrent-context: {CONTEXT_NAME}\nusers:\n- name: {CONTEXT_NAME}\n  user:\n{impersonation}preferences: {{}}\n"
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

    #[test]
    fn impersonating_kubeconfig_parses_with_kube() {
        let y = kubeconfig_as_yaml(
            "http://127.0.0.1:1234",
            "system:serviceaccount:barge-system:barge",
            &["devs", "system:authenticated"],
        );
        let kc: kube::config::Kubeconfig = serde_yaml::from_str(&y).unwrap();
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(
            user.impersonate.as_deref(),
            Some("system:serviceaccount:barge-system:barge")
        );
        assert_eq!(
            user.impersonate_groups.as_deref(),
            Some(&["devs".to_string(), "system:authenticated".to_string()][..])
        );
        let y = kubeconfig_as_yaml("http://127.0.0.1:1234", "alice", &[]);
        let kc: kube::config::Kubeconfig = serde_yaml::from_str(&y).unwrap();
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(user.impersonate.as_deref(), Some("alice"));
        assert_eq!(user.impersonate_groups, None);
    }
}
