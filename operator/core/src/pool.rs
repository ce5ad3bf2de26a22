//! Fixed-size node pools for the `simulated` provider.
//!
//! Data flow: a ComputeEnvironment's `instanceTypes` → [`expand_instance_types`] (exact names,
//! families such as `m4`, or `optimal`) → [`plan_fixed_pool`] (how many nodes of which type
//! reach the target vCPUs under the `allocationStrategy`) → [`diff_pool`] against the nodes
//! that exist → the Node objects to create and delete, with deterministic names
//! `<ce>-<type with '.' → '-'>-<n>`.
//!
//! A compute environment may add types of its own (or replace built-in ones by name):
//! [`catalog_with`] merges them, and the functions taking `catalog` work on any catalog.
//!
//! The [`CATALOG`] holds AWS-like instance types of the c4/c5/m4/m5/r4/r5/p3/g4dn families with
//! their real vCPU, memory and GPU sizes and approximate us-east-1 on-demand prices (in
//! micro-dollars per hour, to stay with integers). Demand-driven scaling is in [`crate::scaling`].

use crate::error::{Error, Result};
use crate::resources::Resources;
use crate::scheduler::NodeShape;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// Pod slots of a simulated node (the kubelet default).
pub const NODE_PODS: i64 = 110;

/// `instanceTypes: ["optimal"]` means these families (AWS Batch User Guide).
pub const OPTIMAL_FAMILIES: [&str; 6] = ["c4", "m4", "r4", "c5", "m5", "r5"];

/// The catalog keyword for [`OPTIMAL_FAMILIES`].
pub const OPTIMAL: &str = "optimal";

/// Largest target a fixed pool may ask for (guards the planner against absurd inputs).
pub const MAX_TARGET_VCPUS: i64 = 1_000_000;

/// One instance type of the catalog (ordered by name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceType {
    pub name: Cow<'static, str>,
    pub family: Cow<'static, str>,
    pub vcpus: i64,
    pub memory_mib: i64,
    pub gpus: i64,
    /// On-demand price, micro-dollars per hour.
    pub price_micros_per_hour: i64,
}

impl InstanceType {
    /// A type outside the built-in catalog; its family is the part of the name before the
    /// first `.` (the whole name when there is none).
    pub fn custom(
        name: &str,
        vcpus: i64,
        memory_mib: i64,
        gpus: i64,
        price_micros_per_hour: i64,
    ) -> InstanceType {
        let family = name.split('.').next().unwrap_or(name).to_string();
        InstanceType {
            name: Cow::Owned(name.to_string()),
            family: Cow::Owned(family),
            vcpus,
            memory_mib,
            gpus,
            price_micros_per_hour,
        }
    }

    /// What a node of this type offers: its vCPUs, memory, GPUs and [`NODE_PODS`] pod slots.
    pub fn capacity(&self) -> Resources {
        Resources::new(
            Resources::vcpus(self.vcpus),
            self.memory_mib,
            self.gpus,
            NODE_PODS,
        )
    }

    /// The scheduler's view of this type (for "can never run").
    pub fn shape(&self) -> NodeShape {
        NodeShape {
            instance_type: self.name.to_string(),
            allocatable: self.capacity(),
        }
    }

    /// Price per vCPU, micro-dollars per hour (rounded down).
    pub fn price_per_vcpu(&self) -> i64 {
        self.price_micros_per_hour / self.vcpus.max(1)
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
    // Memory is given in quarter GiB so that r4.large's 15.25 GiB stays an integer.
    InstanceType {
        name: Cow::Borrowed(name),
        family: Cow::Borrowed(family),
        vcpus,
        memory_mib: memory_gib_x4 * 256,
        gpus,
        price_micros_per_hour: price_micros,
    }
}

/// The built-in catalog, in family then size order.
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

/// The catalog entry named `name` (e.g. `m5.xlarge`).
pub fn lookup(name: &str) -> Option<&'static InstanceType> {
    CATALOG.iter().find(|t| t.name == name)
}

/// The built-in catalog with `custom` types added; a custom type replaces the built-in one of
/// the same name. Built-in types keep their order; new ones follow, by name.
pub fn catalog_with(custom: &[InstanceType]) -> Vec<InstanceType> {
    let mut merged: Vec<InstanceType> = CATALOG
        .iter()
        .map(|t| {
            custom
                .iter()
                .find(|c| c.name == t.name)
                .unwrap_or(t)
                .clone()
        })
        .collect();
    let mut extra: Vec<&InstanceType> = custom
        .iter()
        .filter(|c| CATALOG.iter().all(|t| t.name != c.name))
        .collect();
    extra.sort_by(|a, b| a.name.cmp(&b.name));
    extra.dedup_by(|a, b| a.name == b.name);
    merged.extend(extra.into_iter().cloned());
    merged
}

fn families(catalog: &[InstanceType]) -> BTreeSet<&str> {
    catalog.iter().map(|t| t.family.as_ref()).collect()
}

/// Expands `instanceTypes` entries (exact names, families, `optimal`) into entries of the
/// built-in [`CATALOG`], without duplicates, in catalog order.
pub fn expand_instance_types<S: AsRef<str>>(entries: &[S]) -> Result<Vec<&'static InstanceType>> {
    expand_instance_types_in(CATALOG, entries)
}

/// Expands `instanceTypes` entries into entries of `catalog` (see [`expand_instance_types`]).
pub fn expand_instance_types_in<'a, S: AsRef<str>>(
    catalog: &'a [InstanceType],
    entries: &[S],
) -> Result<Vec<&'a InstanceType>> {
    if entries.is_empty() {
        return Err(Error::InstanceTypes("no instance types given".into()));
    }
    let mut chosen: BTreeSet<usize> = BTreeSet::new();
    for entry in entries {
        let entry = entry.as_ref().trim();
        let wanted: Vec<&str> = if entry == OPTIMAL {
            OPTIMAL_FAMILIES.to_vec()
        } else {
            vec![entry]
        };
        for name in wanted {
            let before = chosen.len();
            let mut matched = false;
            for (i, t) in catalog.iter().enumerate() {
                if t.name == name || t.family == name {
                    chosen.insert(i);
                    matched = true;
                }
            }
            if !matched && chosen.len() == before {
                let known = families(catalog).into_iter().collect::<Vec<_>>().join(", ");
                return Err(Error::InstanceTypes(format!(
                    "{name:?} is neither an instance type nor a family of the catalog (families: {known}; or \"{OPTIMAL}\")"
                )));
            }
        }
    }
    Ok(chosen.into_iter().filter_map(|i| catalog.get(i)).collect())
}

/// `computeResources.allocationStrategy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AllocationStrategy {
    /// Cheapest set of nodes that reaches the target.
    #[default]
    BestFit,
    /// As BEST_FIT; AWS would fall back to other types on capacity errors, which the
    /// simulated provider does not have.
    BestFitProgressive,
    /// Spread over as many instance types (capacity pools) as possible.
    SpotCapacityOptimized,
    /// Spread over the cheaper half (by price per vCPU) of the instance types.
    SpotPriceCapacityOptimized,
}

impl AllocationStrategy {
    /// Parses the AWS spelling (`BEST_FIT`, ...).
    pub fn parse(text: &str) -> Result<AllocationStrategy> {
        match text {
            "BEST_FIT" => Ok(AllocationStrategy::BestFit),
            "BEST_FIT_PROGRESSIVE" => Ok(AllocationStrategy::BestFitProgressive),
            "SPOT_CAPACITY_OPTIMIZED" => Ok(AllocationStrategy::SpotCapacityOptimized),
            "SPOT_PRICE_CAPACITY_OPTIMIZED" => Ok(AllocationStrategy::SpotPriceCapacityOptimized),
            other => Err(Error::PoolPlan(format!(
                "allocationStrategy {other:?} is not BEST_FIT, BEST_FIT_PROGRESSIVE, SPOT_CAPACITY_OPTIMIZED or SPOT_PRICE_CAPACITY_OPTIMIZED"
            ))),
        }
    }
}

/// How many nodes of each type reach at least `target_vcpus` (deterministic; empty for 0).
pub fn plan_fixed_pool<'a>(
    target_vcpus: i64,
    candidates: &[&'a InstanceType],
    strategy: AllocationStrategy,
) -> Result<Vec<(&'a InstanceType, u32)>> {
    if target_vcpus <= 0 {
        return Ok(Vec::new());
    }
    if target_vcpus > MAX_TARGET_VCPUS {
        return Err(Error::PoolPlan(format!(
            "target of {target_vcpus} vCPUs is above the {MAX_TARGET_VCPUS} this planner accepts"
        )));
    }
    let mut types: Vec<&'a InstanceType> =
        candidates.iter().copied().filter(|t| t.vcpus > 0).collect();
    types.sort_by(|a, b| a.name.cmp(&b.name));
    types.dedup_by(|a, b| a.name == b.name);
    if types.is_empty() {
        return Err(Error::PoolPlan("no instance types to plan with".into()));
    }
    let counts = match strategy {
        AllocationStrategy::BestFit | AllocationStrategy::BestFitProgressive => {
            cheapest(target_vcpus, &types)
        }
        AllocationStrategy::SpotCapacityOptimized => spread(target_vcpus, &types),
        AllocationStrategy::SpotPriceCapacityOptimized => {
            let mut by_price = types.clone();
            by_price
                .sort_by(|a, b| (a.price_per_vcpu(), &a.name).cmp(&(b.price_per_vcpu(), &b.name)));
            let keep = by_price.len().div_ceil(2);
            by_price.truncate(keep);
            spread(target_vcpus, &by_price)
        }
    };
    Ok(counts.into_iter().filter(|(_, n)| *n > 0).collect())
}

/// Minimum total price reaching the target; ties: fewer nodes, then earlier types by name.
/// Unbounded knapsack over vCPUs: O(target × types).
fn cheapest<'a>(target: i64, types: &[&'a InstanceType]) -> BTreeMap<&'a InstanceType, u32> {
    let target = usize::try_from(target).unwrap_or(0);
    // best[v] = (price, nodes, type index of the last node) to get at least v vCPUs.
    let mut best: Vec<(i64, u32, usize)> = vec![(0, 0, usize::MAX); target + 1];
    for v in 1..=target {
        let mut choice = (i64::MAX, u32::MAX, usize::MAX);
        for (i, t) in types.iter().enumerate() {
            let rest = v.saturating_sub(usize::try_from(t.vcpus).unwrap_or(usize::MAX));
            let (price, nodes, _) = best[rest];
            let candidate = (
                price.saturating_add(t.price_micros_per_hour),
                nodes.saturating_add(1),
                i,
            );
            if candidate < choice {
                choice = candidate;
            }
        }
        best[v] = choice;
    }
    let mut counts = BTreeMap::new();
    let mut v = target;
    while v > 0 {
        let i = best[v].2;
        let Some(t) = types.get(i) else { break };
        *counts.entry(*t).or_insert(0) += 1;
        v = v.saturating_sub(usize::try_from(t.vcpus).unwrap_or(usize::MAX));
    }
    counts
}

/// Adds one node at a time to the type with the fewest vCPUs so far (ties: cheaper per vCPU,
/// then name), preferring types no larger than what is still missing.
fn spread<'a>(target: i64, types: &[&'a InstanceType]) -> BTreeMap<&'a InstanceType, u32> {
    let mut counts: BTreeMap<&'a InstanceType, u32> = BTreeMap::new();
    let mut allocated: BTreeMap<&'a str, i64> =
        types.iter().map(|t| (t.name.as_ref(), 0)).collect();
    let mut total = 0i64;
    while total < target {
        let missing = target - total;
        let fitting: Vec<&&'a InstanceType> = types.iter().filter(|t| t.vcpus <= missing).collect();
        let pick = if fitting.is_empty() {
            // Nothing small enough: the smallest type that covers the rest.
            types
                .iter()
                .min_by_key(|t| (t.vcpus, t.price_per_vcpu(), t.name.as_ref()))
        } else {
            fitting.into_iter().min_by_key(|t| {
                (
                    allocated.get(t.name.as_ref()).copied().unwrap_or(0),
                    t.price_per_vcpu(),
                    t.name.as_ref(),
                )
            })
        };
        let Some(t) = pick else { break };
        *counts.entry(*t).or_insert(0) += 1;
        *allocated.entry(t.name.as_ref()).or_insert(0) += t.vcpus;
        total += t.vcpus;
    }
    counts
}

/// The catalog's Spot capacity score of a type, 0 to 100 (how deep its capacity pool is;
/// deterministic, for SPOT_CAPACITY_OPTIMIZED and SPOT_PRICE_CAPACITY_OPTIMIZED): smaller sizes
/// have deeper pools — 100 for 2 vCPUs, minus 10 for every doubling of vCPUs, at least 10 —
/// and previous generations (c4, m4, r4, p3) 10 more, up to 100.
pub fn capacity_score(instance_type: &InstanceType) -> i64 {
    let mut doublings = 0i64;
    let mut v = instance_type.vcpus.max(1);
    while v > 2 {
        v = (v + 1) / 2;
        doublings += 1;
    }
    let older = matches!(instance_type.family.as_ref(), "c4" | "m4" | "r4" | "p3");
    (100 - 10 * doublings + if older { 10 } else { 0 }).clamp(10, 100)
}

/// The node name of instance `n` of `instance_type` in compute environment `ce`.
pub fn node_name(ce: &str, instance_type: &str, n: u32) -> String {
    format!("{ce}-{}-{n}", instance_type.replace('.', "-"))
}

/// A node of the pool as it exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingNode {
    pub name: String,
    pub instance_type: String,
    /// Runs pods (deleted last).
    pub busy: bool,
}

/// A node to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeToCreate<'a> {
    pub name: String,
    pub instance_type: &'a InstanceType,
}

/// What to change so that the pool matches the plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolDiff<'a> {
    pub create: Vec<NodeToCreate<'a>>,
    /// Names of nodes to remove: idle ones first, then the highest numbers.
    pub delete: Vec<String>,
}

/// Compares the planned pool of `ce` with its existing nodes. New nodes take the lowest free
/// numbers; surplus nodes go idle-first, highest number first.
pub fn diff_pool<'a>(
    ce: &str,
    planned: &[(&'a InstanceType, u32)],
    existing: &[ExistingNode],
) -> PoolDiff<'a> {
    let mut diff = PoolDiff::default();
    let mut by_type: BTreeMap<&str, Vec<&ExistingNode>> = BTreeMap::new();
    for node in existing {
        by_type
            .entry(node.instance_type.as_str())
            .or_default()
            .push(node);
    }
    let wanted: BTreeMap<&str, (&'a InstanceType, u32)> =
        planned.iter().fold(BTreeMap::new(), |mut acc, (t, n)| {
            acc.entry(t.name.as_ref()).or_insert((*t, 0)).1 += n;
            acc
        });
    // The number at the end of a node named `<ce>-<type>-<n>` (None for other names).
    let number_of = |node: &ExistingNode, instance_type: &str| -> Option<u32> {
        let prefix = format!("{ce}-{}-", instance_type.replace('.', "-"));
        node.name.strip_prefix(&prefix).and_then(|n| n.parse().ok())
    };
    for (type_name, nodes) in &by_type {
        let want = wanted.get(type_name).map_or(0, |(_, n)| *n) as usize;
        if nodes.len() > want {
            let mut surplus: Vec<&&ExistingNode> = nodes.iter().collect();
            surplus.sort_by_key(|n| {
                (
                    n.busy,
                    std::cmp::Reverse(number_of(n, type_name).unwrap_or(u32::MAX)),
                    n.name.clone(),
                )
            });
            diff.delete.extend(
                surplus
                    .into_iter()
                    .take(nodes.len() - want)
                    .map(|n| n.name.clone()),
            );
        }
    }
    for (type_name, (t, want)) in &wanted {
        let have: Vec<&ExistingNode> = by_type.get(type_name).cloned().unwrap_or_default();
        let mut missing = (*want as usize).saturating_sub(have.len());
        let taken: BTreeSet<u32> = have
            .iter()
            .filter_map(|n| number_of(n, type_name))
            .collect();
        let mut n = 0u32;
        while missing > 0 {
            if !taken.contains(&n) {
                diff.create.push(NodeToCreate {
                    name: node_name(ce, type_name, n),
                    instance_type: t,
                });
                missing -= 1;
            }
            n += 1;
        }
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(types: &[&InstanceType]) -> Vec<String> {
        types.iter().map(|t| t.name.to_string()).collect()
    }

    /// The `&'static` name of a built-in type.
    fn static_name(t: &InstanceType) -> &'static str {
        match lookup(&t.name).map(|c| &c.name) {
            Some(Cow::Borrowed(name)) => name,
            _ => panic!("{} is not built in", t.name),
        }
    }

    fn plan(
        target: i64,
        entries: &[&str],
        strategy: AllocationStrategy,
    ) -> Vec<(&'static str, u32)> {
        let types = expand_instance_types(entries).expect("valid types");
        plan_fixed_pool(target, &types, strategy)
            .expect("plan")
            .into_iter()
            .map(|(t, n)| (static_name(t), n))
            .collect()
    }

    #[test]
    fn catalog_has_real_sizes() {
        let r4 = lookup("r4.large").expect("r4.large");
        assert_eq!((r4.vcpus, r4.memory_mib), (2, 15_616));
        let c4 = lookup("c4.large").expect("c4.large");
        assert_eq!(c4.memory_mib, 3_840);
        let p3 = lookup("p3.8xlarge").expect("p3.8xlarge");
        assert_eq!((p3.vcpus, p3.gpus), (32, 4));
        assert_eq!(
            lookup("m5.xlarge").expect("m5").capacity(),
            Resources::new(4000, 16_384, 0, 110)
        );
        assert_eq!(
            lookup("g4dn.xlarge")
                .expect("g4dn")
                .shape()
                .allocatable
                .gpus,
            1
        );
        let mut seen = BTreeSet::new();
        assert!(
            CATALOG.iter().all(|t| seen.insert(t.name.as_ref())),
            "names are unique"
        );
        assert!(CATALOG
            .iter()
            .all(|t| t.name.starts_with(t.family.as_ref())));
    }

    #[test]
    fn expansion_of_names_families_and_optimal() {
        let fixture = [
            "c4.large",
            "c4.xlarge",
            "c4.2xlarge",
            "c4.4xlarge",
            "c4.8xlarge",
        ];
        assert_eq!(
            names(&expand_instance_types(&fixture).expect("ok")),
            fixture.to_vec()
        );
        let m4 = expand_instance_types(&["m4"]).expect("family");
        assert_eq!(m4.len(), 6);
        assert!(m4.iter().all(|t| t.family == "m4"));
        let optimal = expand_instance_types(&["optimal"]).expect("optimal");
        let fams: BTreeSet<&str> = optimal.iter().map(|t| t.family.as_ref()).collect();
        assert_eq!(fams, OPTIMAL_FAMILIES.into_iter().collect());
        assert_eq!(
            expand_instance_types(&["m4", "m4.large"])
                .expect("dedup")
                .len(),
            6
        );
        let e = expand_instance_types(&["x1e.huge"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"x1e.huge\" is neither an instance type nor a family"),
            "{e}"
        );
        assert!(expand_instance_types::<&str>(&[]).is_err());
    }

    #[test]
    fn best_fit_reaches_the_target_at_the_lowest_price() {
        // The AWS fixture: desiredvCpus 48 over c4 sizes.
        let p = plan(
            48,
            &[
                "c4.large",
                "c4.xlarge",
                "c4.2xlarge",
                "c4.4xlarge",
                "c4.8xlarge",
            ],
            AllocationStrategy::BestFit,
        );
        let vcpus: i64 = p
            .iter()
            .map(|(t, n)| lookup(t).expect("t").vcpus * i64::from(*n))
            .sum();
        assert!(vcpus >= 48);
        let price: i64 = p
            .iter()
            .map(|(t, n)| lookup(t).expect("t").price_micros_per_hour * i64::from(*n))
            .sum();
        // 36 + 8 + 4 = 48 vCPUs for 1.591 + 0.398 + 0.199 = $2.188/h is the cheapest exact cover.
        assert_eq!(price, 2_188_000, "{p:?}");
        assert_eq!(
            plan(3, &["m5"], AllocationStrategy::BestFit),
            vec![("m5.xlarge", 1)]
        );
        assert_eq!(
            plan(4, &["m5.large"], AllocationStrategy::BestFitProgressive),
            vec![("m5.large", 2)]
        );
        assert!(plan(0, &["m5"], AllocationStrategy::BestFit).is_empty());
    }

    #[test]
    fn capacity_optimized_spreads_over_types() {
        let p = plan(
            16,
            &["m4.large", "m5.large", "c5.large", "r5.large"],
            AllocationStrategy::SpotCapacityOptimized,
        );
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p.iter().all(|(_, n)| *n == 2), "{p:?}");
        // Price-capacity keeps the cheaper half: c5.large and m5.large.
        let p = plan(
            16,
            &["m4.large", "m5.large", "c5.large", "r5.large"],
            AllocationStrategy::SpotPriceCapacityOptimized,
        );
        assert_eq!(p, vec![("c5.large", 4), ("m5.large", 4)]);
        // Nothing small enough: the smallest type that covers the rest.
        assert_eq!(
            plan(
                1,
                &["m5.4xlarge", "m5.xlarge"],
                AllocationStrategy::SpotCapacityOptimized
            ),
            vec![("m5.xlarge", 1)]
        );
    }

    #[test]
    fn plan_errors_are_clear() {
        assert!(plan_fixed_pool(4, &[], AllocationStrategy::BestFit)
            .unwrap_err()
            .to_string()
            .contains("no instance types"));
        assert!(plan_fixed_pool(
            MAX_TARGET_VCPUS + 1,
            &[&CATALOG[0]],
            AllocationStrategy::BestFit
        )
        .is_err());
        assert_eq!(
            AllocationStrategy::parse("BEST_FIT").expect("ok"),
            AllocationStrategy::BestFit
        );
        assert!(AllocationStrategy::parse("CHEAPEST")
            .unwrap_err()
            .to_string()
            .contains("BEST_FIT_PROGRESSIVE"));
    }

    fn existing(name: &str, t: &str, busy: bool) -> ExistingNode {
        ExistingNode {
            name: name.to_string(),
            instance_type: t.to_string(),
            busy,
        }
    }

    #[test]
    fn diff_creates_missing_nodes_with_deterministic_names() {
        let m5 = lookup("m5.xlarge").expect("m5");
        let d = diff_pool(
            "ce",
            &[(m5, 3)],
            &[existing("ce-m5-xlarge-1", "m5.xlarge", false)],
        );
        let created: Vec<&str> = d.create.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(created, vec!["ce-m5-xlarge-0", "ce-m5-xlarge-2"]);
        assert!(d.delete.is_empty());
        assert_eq!(node_name("batch", "g4dn.xlarge", 7), "batch-g4dn-xlarge-7");
    }

    #[test]
    fn diff_deletes_idle_then_highest_numbers_and_unplanned_types() {
        let m5 = lookup("m5.xlarge").expect("m5");
        let d = diff_pool(
            "ce",
            &[(m5, 1)],
            &[
                existing("ce-m5-xlarge-0", "m5.xlarge", true),
                existing("ce-m5-xlarge-1", "m5.xlarge", true),
                existing("ce-m5-xlarge-2", "m5.xlarge", false),
                existing("ce-c5-large-0", "c5.large", false),
            ],
        );
        assert!(d.create.is_empty());
        assert_eq!(
            d.delete,
            vec!["ce-c5-large-0", "ce-m5-xlarge-2", "ce-m5-xlarge-1"]
        );
        let same = diff_pool(
            "ce",
            &[(m5, 1)],
            &[existing("ce-m5-xlarge-0", "m5.xlarge", false)],
        );
        assert_eq!(same, PoolDiff::default());
    }

    #[test]
    fn custom_types_join_or_replace_the_catalog() {
        let custom = [
            InstanceType::custom("sim.tiny", 1, 1024, 0, 10_000),
            InstanceType::custom("m5.xlarge", 4, 8192, 0, 1),
        ];
        let catalog = catalog_with(&custom);
        assert_eq!(catalog.len(), CATALOG.len() + 1);
        let m5 = catalog
            .iter()
            .find(|t| t.name == "m5.xlarge")
            .expect("m5.xlarge");
        assert_eq!((m5.memory_mib, m5.price_micros_per_hour), (8192, 1));
        let sim = expand_instance_types_in(&catalog, &["sim"]).expect("custom family");
        assert_eq!(names(&sim), vec!["sim.tiny"]);
        let p = plan_fixed_pool(3, &sim, AllocationStrategy::BestFit).expect("plan");
        assert_eq!(
            p.iter()
                .map(|(t, n)| (t.name.to_string(), *n))
                .collect::<Vec<_>>(),
            vec![("sim.tiny".to_string(), 3)]
        );
        let d = diff_pool("ce", &p, &[]);
        assert_eq!(
            d.create.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["ce-sim-tiny-0", "ce-sim-tiny-1", "ce-sim-tiny-2"]
        );
        let err = expand_instance_types_in(&catalog, &["x9"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sim"),
            "the error lists the custom family too: {err}"
        );
    }
}
