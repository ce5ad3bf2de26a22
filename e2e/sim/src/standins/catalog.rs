//! The instance types the stand-ins launch: barge-core's catalog (`pool::CATALOG`: names,
//! vCPUs, memory, GPUs and on-demand prices — the same one the operator plans with), plus what
//! only the stand-ins need: a Spot price (modelled as 30 % of on-demand) and the node capacity
//! the simulated kubelet reports.

pub use barge_core::pool::{lookup, InstanceType, CATALOG};

/// Price per hour of `it` for a capacity type (`spot` = 30 % of on-demand), micro-dollars.
pub fn price(it: &InstanceType, capacity_type: &str) -> i64 {
    if capacity_type == "spot" {
        it.price_micros_per_hour * 3 / 10
    } else {
        it.price_micros_per_hour
    }
}

/// The node capacity the simulated kubelet reports for `it` (`sim.barge.dev/capacity`).
pub fn node_capacity(it: &InstanceType) -> serde_json::Value {
    let mut c = serde_json::json!({
        "cpu": it.vcpus.to_string(),
        "memory": format!("{}Mi", it.memory_mib),
        "pods": "110",
        "ephemeral-storage": "100Gi",
    });
    if it.gpus > 0 {
        c["nvidia.com/gpu"] = serde_json::json!(it.gpus.to_string());
    }
    c
}
