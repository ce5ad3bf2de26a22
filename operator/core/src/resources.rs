//! Resource amounts as plain integers: millicpu, MiB of memory, GPUs and pod slots.
//!
//! The operator converts Kubernetes quantities into [`Resources`] at the edge; everything
//! inside barge-core compares and adds these integers. Arithmetic saturates instead of
//! overflowing, so hostile or corrupt inputs cannot panic the scheduler.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};

/// An amount of node or job resources.
///
/// `pods` counts pod slots: a node's allocatable `pods`, and 1 for every unit of work Barge
/// places (see [`Resources::request`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory_mib: i64,
    pub gpus: i64,
    pub pods: i64,
}

impl Resources {
    /// Nothing at all.
    pub const ZERO: Resources = Resources {
        milli_cpu: 0,
        memory_mib: 0,
        gpus: 0,
        pods: 0,
    };

    /// An amount with every field given.
    pub const fn new(milli_cpu: i64, memory_mib: i64, gpus: i64, pods: i64) -> Self {
        Resources {
            milli_cpu,
            memory_mib,
            gpus,
            pods,
        }
    }

    /// What one unit of work (one pod) asks for: the given CPU, memory and GPUs plus one pod slot.
    pub const fn request(milli_cpu: i64, memory_mib: i64, gpus: i64) -> Self {
        Resources::new(milli_cpu, memory_mib, gpus, 1)
    }

    /// Whole vCPUs expressed in millicpu (`vcpus * 1000`), saturating.
    pub const fn vcpus(vcpus: i64) -> i64 {
        vcpus.saturating_mul(1000)
    }

    /// True when every field of `self` is at most the same field of `available`.
    pub fn fits_in(&self, available: &Resources) -> bool {
        self.milli_cpu <= available.milli_cpu
            && self.memory_mib <= available.memory_mib
            && self.gpus <= available.gpus
            && self.pods <= available.pods
    }

    /// Field-wise sum, saturating at the i64 bounds.
    pub fn saturating_add(&self, other: &Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.saturating_add(other.milli_cpu),
            memory_mib: self.memory_mib.saturating_add(other.memory_mib),
            gpus: self.gpus.saturating_add(other.gpus),
            pods: self.pods.saturating_add(other.pods),
        }
    }

    /// Field-wise difference, saturating at the i64 bounds (the result may be negative:
    /// an over-committed node has negative free capacity).
    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.saturating_sub(other.milli_cpu),
            memory_mib: self.memory_mib.saturating_sub(other.memory_mib),
            gpus: self.gpus.saturating_sub(other.gpus),
            pods: self.pods.saturating_sub(other.pods),
        }
    }

    /// Field-wise multiplication by `n`, saturating.
    pub fn saturating_mul(&self, n: i64) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.saturating_mul(n),
            memory_mib: self.memory_mib.saturating_mul(n),
            gpus: self.gpus.saturating_mul(n),
            pods: self.pods.saturating_mul(n),
        }
    }

    /// Field-wise maximum.
    pub fn max_each(&self, other: &Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.max(other.milli_cpu),
            memory_mib: self.memory_mib.max(other.memory_mib),
            gpus: self.gpus.max(other.gpus),
            pods: self.pods.max(other.pods),
        }
    }

    /// Field-wise minimum.
    pub fn min_each(&self, other: &Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.min(other.milli_cpu),
            memory_mib: self.memory_mib.min(other.memory_mib),
            gpus: self.gpus.min(other.gpus),
            pods: self.pods.min(other.pods),
        }
    }

    /// Every field clamped to be at least zero.
    pub fn clamp_non_negative(&self) -> Resources {
        self.max_each(&Resources::ZERO)
    }

    /// True when any field is negative.
    pub fn any_negative(&self) -> bool {
        self.milli_cpu < 0 || self.memory_mib < 0 || self.gpus < 0 || self.pods < 0
    }

    /// True when every field is zero.
    pub fn is_zero(&self) -> bool {
        *self == Resources::ZERO
    }

    /// CPU rounded up to whole vCPUs.
    pub fn vcpus_ceil(&self) -> i64 {
        if self.milli_cpu <= 0 {
            0
        } else {
            (self.milli_cpu.saturating_add(999)) / 1000
        }
    }
}

impl Add for Resources {
    type Output = Resources;
    fn add(self, rhs: Resources) -> Resources {
        self.saturating_add(&rhs)
    }
}

impl AddAssign for Resources {
    fn add_assign(&mut self, rhs: Resources) {
        *self = self.saturating_add(&rhs);
    }
}

impl Sub for Resources {
    type Output = Resources;
    fn sub(self, rhs: Resources) -> Resources {
        self.saturating_sub(&rhs)
    }
}

impl SubAssign for Resources {
    fn sub_assign(&mut self, rhs: Resources) {
        *self = self.saturating_sub(&rhs);
    }
}

/// Human form used in conditions and messages: `cpu=2500m memory=4096Mi gpu=1`
/// (GPUs and pods only when non-zero).
impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cpu={}m memory={}Mi", self.milli_cpu, self.memory_mib)?;
        if self.gpus != 0 {
            write!(f, " gpu={}", self.gpus)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_requires_every_field() {
        let free = Resources::new(4000, 8192, 1, 10);
        assert!(Resources::request(4000, 8192, 1).fits_in(&free));
        assert!(!Resources::request(4001, 1, 0).fits_in(&free));
        assert!(!Resources::request(1, 8193, 0).fits_in(&free));
        assert!(!Resources::request(1, 1, 2).fits_in(&free));
        assert!(!Resources::request(1, 1, 0).fits_in(&Resources::new(10, 10, 0, 0)));
    }

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let big = Resources::new(i64::MAX, i64::MAX, i64::MAX, i64::MAX);
        let sum = big + Resources::request(1, 1, 1);
        assert_eq!(sum.milli_cpu, i64::MAX);
        let low = Resources::new(i64::MIN, 0, 0, 0) - Resources::request(1, 0, 0);
        assert_eq!(low.milli_cpu, i64::MIN);
        assert_eq!(big.saturating_mul(2).gpus, i64::MAX);
    }

    #[test]
    fn sub_can_go_negative_for_overcommitted_nodes() {
        let free = Resources::new(1000, 1024, 0, 110) - Resources::request(1500, 0, 0);
        assert!(free.any_negative());
        assert_eq!(free.clamp_non_negative().milli_cpu, 0);
        let mut acc = Resources::ZERO;
        acc += Resources::request(500, 10, 0);
        acc -= Resources::request(200, 5, 0);
        assert_eq!(acc, Resources::new(300, 5, 0, 0));
    }

    #[test]
    fn max_min_and_vcpus() {
        let a = Resources::new(1000, 10, 1, 1);
        let b = Resources::new(500, 20, 0, 2);
        assert_eq!(a.max_each(&b), Resources::new(1000, 20, 1, 2));
        assert_eq!(a.min_each(&b), Resources::new(500, 10, 0, 1));
        assert_eq!(Resources::request(1001, 0, 0).vcpus_ceil(), 2);
        assert_eq!(Resources::request(0, 0, 0).vcpus_ceil(), 0);
        assert_eq!(Resources::vcpus(4), 4000);
        assert!(Resources::ZERO.is_zero());
    }

    #[test]
    fn display_is_human() {
        assert_eq!(
            Resources::request(2500, 4096, 0).to_string(),
            "cpu=2500m memory=4096Mi"
        );
        assert_eq!(
            Resources::request(1000, 1, 2).to_string(),
            "cpu=1000m memory=1Mi gpu=2"
        );
    }
}
