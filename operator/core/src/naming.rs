//! Deterministic names of the objects Barge creates for a job, so that a re-created pod is
//! AlreadyExists rather than a twin (design §5).

/// `<job>-<attempt>` for a single job, `<job>-<attempt>-<index>` for an array child.
pub fn attempt_pod_name(job_name: &str, attempt: u32, array_index: Option<u32>) -> String {
    match array_index {
        Some(index) => format!("{job_name}-{attempt}-{index}"),
        None => format!("{job_name}-{attempt}"),
    }
}

/// `<job>-<attempt>-node-<n>` for node `n` of a multi-node job.
pub fn node_pod_name(job_name: &str, attempt: u32, node_index: u32) -> String {
    format!("{job_name}-{attempt}-node-{node_index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_design() {
        assert_eq!(attempt_pod_name("render", 1, None), "render-1");
        assert_eq!(attempt_pod_name("render", 2, Some(417)), "render-2-417");
        assert_eq!(node_pod_name("mpi", 1, 3), "mpi-1-node-3");
    }
}
