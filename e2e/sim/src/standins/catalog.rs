//! The instance types the stand-ins launch: a copy of barge-core's `pool::CATALOG` (same
//! names, vCPUs, memory, GPUs and on-demand prices), kept here so that barge-sim does not
//! depend on the operator's crates. Spot prices are modelled as 30 % of on-demand.

/// One instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceType {
    pub name: &'static str,
    pub family: &'static str,
    pub vcpus: i64,
    /// Memory in quarter GiB (r4.large has 15.25 GiB).
    pub memory_gib_x4: i64,
    pub gpus: i64,
    /// On-demand price, micro-dollars per hour.
    pub price_micros: i64,
}

impl InstanceType {
    pub fn memory_mib(&self) -> i64 {
        self.memory_gib_x4 * 256
    }

    /// Price per hour for a capacity type (`spot` = 30 % of on-demand).
    pub fn price(&self, capacity_type: &str) -> i64 {
        if capacity_type == "spot" {
            self.price_micros * 3 / 10
        } else {
            self.price_micros
        }
    }

    /// The node capacity the simulated kubelet reports (`sim.barge.dev/capacity`).
    pub fn capacity(&self) -> serde_json::Value {
        let mut c = serde_json::json!({
            "cpu": self.vcpus.to_string(),
            "memory": format!("{}Mi", self.memory_mib()),
            "pods": "110",
            "ephemeral-storage": "100Gi",
        });
        if self.gpus > 0 {
            c["nvidia.com/gpu"] = serde_json::json!(self.gpus.to_string());
        }
        c
    }
}

const fn it(
    name: &'static str,
    family: &'static str,
    vcpus: i64,
    memory_gib_x4: i64,
    gpus: i64,
    price_micros: i64,
) -> InstanceType {
    InstanceType {
        name,
        family,
        vcpus,
        memory_gib_x4,
        gpus,
        price_micros,
    }
}

/// The catalog (barge-core's, in family then size order).
pub const CATALOG: &[InstanceType] = &[
    it("c4.large", "c4", 2, 15, 0, 100_000),
    it("c4.xlarge", "c4", 4, 30, 0, 199_000),
    it("c4.2xlarge", "c4", 8, 60, 0, 398_000),
    it("c4.4xlarge", "c4", 16, 120, 0, 796_000),
    it("c4.8xlarge", "c4", 36, 240, 0, 1_591_000),
    it("c5.large", "c5", 2, 16, 0, 85_000),
    it("c5.xlarge", "c5", 4, 32, 0, 170_000),
    it("c5.2xlarge", "c5", 8, 64, 0, 340_000),
    it("c5.4xlarge", "c5", 16, 128, 0, 680_000),
    it("c5.9xlarge", "c5", 36, 288, 0, 1_530_000),
    it("c5.12xlarge", "c5", 48, 384, 0, 2_040_000),
    it("c5.18xlarge", "c5", 72, 576, 0, 3_060_000),
    it("c5.24xlarge", "c5", 96, 768, 0, 4_080_000),
    it("m4.large", "m4", 2, 32, 0, 100_000),
    it("m4.xlarge", "m4", 4, 64, 0, 200_000),
    it("m4.2xlarge", "m4", 8, 128, 0, 400_000),
    it("m4.4xlarge", "m4", 16, 256, 0, 800_000),
    it("m4.10xlarge", "m4", 40, 640, 0, 2_000_000),
    it("m4.16xlarge", "m4", 64, 1024, 0, 3_200_000),
    it("m5.large", "m5", 2, 32, 0, 96_000),
    it("m5.xlarge", "m5", 4, 64, 0, 192_000),
    it("m5.2xlarge", "m5", 8, 128, 0, 384_000),
    it("m5.4xlarge", "m5", 16, 256, 0, 768_000),
    it("m5.8xlarge", "m5", 32, 512, 0, 1_536_000),
    it("m5.12xlarge", "m5", 48, 768, 0, 2_304_000),
    it("m5.16xlarge", "m5", 64, 1024, 0, 3_072_000),
    it("m5.24xlarge", "m5", 96, 1536, 0, 4_608_000),
    it("r4.large", "r4", 2, 61, 0, 133_000),
    it("r4.xlarge", "r4", 4, 122, 0, 266_000),
    it("r4.2xlarge", "r4", 8, 244, 0, 532_000),
    it("r4.4xlarge", "r4", 16, 488, 0, 1_064_000),
    it("r4.8xlarge", "r4", 32, 976, 0, 2_128_000),
    it("r4.16xlarge", "r4", 64, 1952, 0, 4_256_000),
    it("r5.large", "r5", 2, 64, 0, 126_000),
    it("r5.xlarge", "r5", 4, 128, 0, 252_000),
    it("r5.2xlarge", "r5", 8, 256, 0, 504_000),
    it("r5.4xlarge", "r5", 16, 512, 0, 1_008_000),
    it("r5.8xlarge", "r5", 32, 1024, 0, 2_016_000),
    it("r5.12xlarge", "r5", 48, 1536, 0, 3_024_000),
    it("r5.16xlarge", "r5", 64, 2048, 0, 4_032_000),
    it("r5.24xlarge", "r5", 96, 3072, 0, 6_048_000),
    it("p3.2xlarge", "p3", 8, 244, 1, 3_060_000),
    it("p3.8xlarge", "p3", 32, 976, 4, 12_240_000),
    it("p3.16xlarge", "p3", 64, 1952, 8, 24_480_000),
    it("g4dn.xlarge", "g4dn", 4, 64, 1, 526_000),
    it("g4dn.2xlarge", "g4dn", 8, 128, 1, 752_000),
    it("g4dn.4xlarge", "g4dn", 16, 256, 1, 1_204_000),
    it("g4dn.8xlarge", "g4dn", 32, 512, 1, 2_176_000),
    it("g4dn.12xlarge", "g4dn", 48, 768, 4, 3_912_000),
    it("g4dn.16xlarge", "g4dn", 64, 1024, 1, 4_352_000),
];

/// The entry named `name`.
pub fn lookup(name: &str) -> Option<&'static InstanceType> {
    CATALOG.iter().find(|t| t.name == name)
}
