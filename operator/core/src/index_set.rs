//! Sets of array-child indices.
//!
//! [`IndexSet`] is the compact form kept in job status and specs: sorted, disjoint, merged
//! inclusive ranges written as `"0-41,43-9999"` (the empty set is `""`). It serialises as that
//! string. [`BitSet`] is the working form for bookkeeping over a whole array: one bit per child,
//! so that intersecting two arrays of 10,000 children costs 157 word operations, not 10,000².
//! Convert between them with [`IndexSet::to_bitset`] and [`IndexSet::from_bitset`].

use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A set of `u32` indices stored as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct IndexSet {
    ranges: Vec<(u32, u32)>,
}

impl IndexSet {
    /// The empty set.
    pub const fn new() -> Self {
        IndexSet { ranges: Vec::new() }
    }

    /// `start..end` (end exclusive); empty when `end <= start`.
    pub fn range(start: u32, end: u32) -> Self {
        if end <= start {
            IndexSet::new()
        } else {
            IndexSet {
                ranges: vec![(start, end - 1)],
            }
        }
    }

    /// `0..size`: every child of an array of `size`.
    pub fn all(size: u32) -> Self {
        IndexSet::range(0, size)
    }

    /// Parses `"0-41,43-99"`; `""` (or only whitespace) is the empty set. Items may come in any
    /// order and may overlap; the result is normalised.
    pub fn parse(input: &str) -> Result<Self> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Ok(IndexSet::new());
        }
        let mut pairs = Vec::new();
        for raw in trimmed.split(',') {
            let item = raw.trim();
            if item.is_empty() {
                return Err(Error::IndexSet {
                    item: input.to_string(),
                    problem: "empty item in list (two commas in a row, or a trailing comma)".into(),
                });
            }
            let (start, end) = match item.split_once('-') {
                Some((a, b)) => (parse_index(a.trim(), item)?, parse_index(b.trim(), item)?),
                None => {
                    let v = parse_index(item, item)?;
                    (v, v)
                }
            };
            if end < start {
                return Err(Error::IndexSet {
                    item: item.to_string(),
                    problem: "range end before start".into(),
                });
            }
            pairs.push((start, end));
        }
        Ok(IndexSet::from_ranges(pairs))
    }

    /// Builds a set from inclusive ranges in any order (overlaps allowed). Ranges whose end is
    /// before their start are ignored.
    pub fn from_ranges(mut pairs: Vec<(u32, u32)>) -> Self {
        pairs.retain(|(a, b)| a <= b);
        pairs.sort_unstable();
        let mut ranges: Vec<(u32, u32)> = Vec::with_capacity(pairs.len());
        for (a, b) in pairs {
            match ranges.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => {
                    if b > last.1 {
                        last.1 = b;
                    }
                }
                _ => ranges.push((a, b)),
            }
        }
        IndexSet { ranges }
    }

    /// True when the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of indices in the set.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|&(a, b)| u64::from(b - a) + 1).sum()
    }

    /// The inclusive ranges, ascending.
    pub fn ranges(&self) -> impl ExactSizeIterator<Item = (u32, u32)> + '_ {
        self.ranges.iter().copied()
    }

    /// Number of ranges (the cost of most operations).
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// Smallest index, if any.
    pub fn first(&self) -> Option<u32> {
        self.ranges.first().map(|r| r.0)
    }

    /// Largest index, if any.
    pub fn last(&self) -> Option<u32> {
        self.ranges.last().map(|r| r.1)
    }

    /// Binary search: is `index` in the set?
    pub fn contains(&self, index: u32) -> bool {
        self.position(index).is_ok()
    }

    /// `Ok(i)` when range `i` holds `index`; `Err(i)` with the insertion point otherwise.
    fn position(&self, index: u32) -> std::result::Result<usize, usize> {
        self.ranges.binary_search_by(|&(a, b)| {
            if b < index {
                std::cmp::Ordering::Less
            } else if a > index {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
    }

    /// Adds `index`; returns false when it was already present.
    pub fn insert(&mut self, index: u32) -> bool {
        let at = match self.position(index) {
            Ok(_) => return false,
            Err(at) => at,
        };
        let joins_prev = at > 0 && self.ranges[at - 1].1.checked_add(1) == Some(index);
        let joins_next = at < self.ranges.len() && index.checked_add(1) == Some(self.ranges[at].0);
        match (joins_prev, joins_next) {
            (true, true) => {
                self.ranges[at - 1].1 = self.ranges[at].1;
                self.ranges.remove(at);
            }
            (true, false) => self.ranges[at - 1].1 = index,
            (false, true) => self.ranges[at].0 = index,
            (false, false) => self.ranges.insert(at, (index, index)),
        }
        true
    }

    /// Removes `index`; returns false when it was absent.
    pub fn remove(&mut self, index: u32) -> bool {
        let at = match self.position(index) {
            Ok(at) => at,
            Err(_) => return false,
        };
        let (a, b) = self.ranges[at];
        if a == b {
            self.ranges.remove(at);
        } else if index == a {
            self.ranges[at].0 = a + 1;
        } else if index == b {
            self.ranges[at].1 = b - 1;
        } else {
            self.ranges[at].1 = index - 1;
            self.ranges.insert(at + 1, (index + 1, b));
        }
        true
    }

    /// Indices in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranges.iter().flat_map(|&(a, b)| a..=b)
    }

    /// `self ∪ other`, in O(ranges).
    pub fn union(&self, other: &IndexSet) -> IndexSet {
        let mut pairs = Vec::with_capacity(self.ranges.len() + other.ranges.len());
        // Merge two sorted lists, then coalesce.
        let (mut i, mut j) = (0, 0);
        while i < self.ranges.len() || j < other.ranges.len() {
            let take_self = j >= other.ranges.len()
                || (i < self.ranges.len() && self.ranges[i] <= other.ranges[j]);
            if take_self {
                pairs.push(self.ranges[i]);
                i += 1;
            } else {
                pairs.push(other.ranges[j]);
                j += 1;
            }
        }
        let mut ranges: Vec<(u32, u32)> = Vec::with_capacity(pairs.len());
        for (a, b) in pairs {
            match ranges.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => ranges.push((a, b)),
            }
        }
        IndexSet { ranges }
    }

    /// `self ∩ other`, in O(ranges).
    pub fn intersection(&self, other: &IndexSet) -> IndexSet {
        let mut ranges = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.ranges.len() && j < other.ranges.len() {
            let (a1, b1) = self.ranges[i];
            let (a2, b2) = other.ranges[j];
            let lo = a1.max(a2);
            let hi = b1.min(b2);
            if lo <= hi {
                ranges.push((lo, hi));
            }
            if b1 < b2 {
                i += 1;
            } else {
                j += 1;
            }
        }
        IndexSet { ranges }
    }

    /// `self \ other`, in O(ranges).
    pub fn difference(&self, other: &IndexSet) -> IndexSet {
        let mut ranges = Vec::new();
        let mut j = 0;
        for &(a, b) in &self.ranges {
            let mut start = a;
            let mut open = true;
            while j < other.ranges.len() && other.ranges[j].1 < start {
                j += 1;
            }
            let mut k = j;
            while k < other.ranges.len() && other.ranges[k].0 <= b {
                let (oa, ob) = other.ranges[k];
                if oa > start {
                    ranges.push((start, oa - 1));
                }
                if ob >= b {
                    open = false;
                    break;
                }
                start = ob + 1;
                k += 1;
            }
            if open {
                ranges.push((start, b));
            }
        }
        IndexSet { ranges }
    }

    /// True when every index of `self` is in `other`.
    pub fn is_subset(&self, other: &IndexSet) -> bool {
        self.difference(other).is_empty()
    }

    /// The set restricted to `0..size`.
    pub fn clipped(&self, size: u32) -> IndexSet {
        self.intersection(&IndexSet::all(size))
    }

    /// The first `n` indices (ascending).
    pub fn take_first(&self, n: u64) -> IndexSet {
        let mut left = n;
        let mut ranges = Vec::new();
        for &(a, b) in &self.ranges {
            if left == 0 {
                break;
            }
            let width = u64::from(b - a) + 1;
            if width <= left {
                ranges.push((a, b));
                left -= width;
            } else {
                // left < width <= u32::MAX + 1, so left - 1 fits in u32.
                let end = a + u32::try_from(left - 1).unwrap_or(u32::MAX);
                ranges.push((a, end));
                left = 0;
            }
        }
        IndexSet { ranges }
    }

    /// One bit per index in `0..size`; indices at or beyond `size` are dropped.
    pub fn to_bitset(&self, size: u32) -> BitSet {
        let mut bits = BitSet::new(size);
        for &(a, b) in &self.ranges {
            if a >= size {
                break;
            }
            bits.insert_range(a, b.min(size - 1));
        }
        bits
    }

    /// The ranges of set bits, in O(size / 64 + ranges).
    pub fn from_bitset(bits: &BitSet) -> IndexSet {
        let mut ranges = Vec::new();
        let mut from = 0;
        while let Some(start) = bits.next_set(from) {
            let end_exclusive = bits.next_clear(start).unwrap_or(bits.len());
            ranges.push((start, end_exclusive - 1));
            from = end_exclusive;
        }
        IndexSet { ranges }
    }
}

fn parse_index(text: &str, item: &str) -> Result<u32> {
    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
        return Err(Error::IndexSet {
            item: item.to_string(),
            problem: format!("{text:?} is not a non-negative integer"),
        });
    }
    text.parse::<u32>().map_err(|_| Error::IndexSet {
        item: item.to_string(),
        problem: format!("{text} is too large (max {})", u32::MAX),
    })
}

impl FromIterator<u32> for IndexSet {
    fn from_iter<T: IntoIterator<Item = u32>>(iter: T) -> Self {
        IndexSet::from_ranges(iter.into_iter().map(|i| (i, i)).collect())
    }
}

impl fmt::Display for IndexSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, &(a, b)) in self.ranges.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for IndexSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IndexSet({:?})", self.to_string())
    }
}

impl FromStr for IndexSet {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        IndexSet::parse(s)
    }
}

impl Serialize for IndexSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IndexSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        IndexSet::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A fixed-size set of indices `0..len`, one bit each.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BitSet {
    words: Vec<u64>,
    len: u32,
}

impl BitSet {
    /// All clear, universe `0..len`.
    pub fn new(len: u32) -> Self {
        BitSet {
            words: vec![0; (len as usize).div_ceil(64)],
            len,
        }
    }

    /// All set, universe `0..len`.
    pub fn full(len: u32) -> Self {
        let mut bits = BitSet::new(len);
        if len > 0 {
            bits.insert_range(0, len - 1);
        }
        bits
    }

    /// Size of the universe.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True when the universe is empty (`len == 0`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of set bits.
    pub fn count(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    /// True when no bit is set.
    pub fn none(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Is bit `i` set? Out-of-range indices are not.
    pub fn contains(&self, i: u32) -> bool {
        i < self.len && self.words[(i / 64) as usize] & (1u64 << (i % 64)) != 0
    }

    /// Sets bit `i`; out-of-range indices are ignored.
    pub fn insert(&mut self, i: u32) {
        if i < self.len {
            self.words[(i / 64) as usize] |= 1u64 << (i % 64);
        }
    }

    /// Clears bit `i`.
    pub fn remove(&mut self, i: u32) {
        if i < self.len {
            self.words[(i / 64) as usize] &= !(1u64 << (i % 64));
        }
    }

    /// Sets bits `a..=b` (clipped to the universe), a word at a time.
    pub fn insert_range(&mut self, a: u32, b: u32) {
        if self.len == 0 || a > b || a >= self.len {
            return;
        }
        let b = b.min(self.len - 1);
        let (wa, wb) = ((a / 64) as usize, (b / 64) as usize);
        let lo_mask = u64::MAX << (a % 64);
        let hi_mask = u64::MAX >> (63 - (b % 64));
        if wa == wb {
            self.words[wa] |= lo_mask & hi_mask;
        } else {
            self.words[wa] |= lo_mask;
            for w in &mut self.words[wa + 1..wb] {
                *w = u64::MAX;
            }
            self.words[wb] |= hi_mask;
        }
    }

    /// Sets every index of `set` that lies in the universe.
    pub fn insert_set(&mut self, set: &IndexSet) {
        for (a, b) in set.ranges() {
            if a >= self.len {
                break;
            }
            self.insert_range(a, b);
        }
    }

    /// `self &= other` (universes must match; extra words are treated as clear).
    pub fn and_with(&mut self, other: &BitSet) {
        for (i, w) in self.words.iter_mut().enumerate() {
            *w &= other.words.get(i).copied().unwrap_or(0);
        }
    }

    /// `self |= other`.
    pub fn or_with(&mut self, other: &BitSet) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= *o;
        }
        self.trim();
    }

    /// `self &= !other`.
    pub fn and_not_with(&mut self, other: &BitSet) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w &= !*o;
        }
    }

    /// Clears any bits beyond `len` in the last word (kept as an invariant).
    fn trim(&mut self) {
        let rem = self.len % 64;
        if rem != 0 {
            if let Some(last) = self.words.last_mut() {
                *last &= u64::MAX >> (64 - rem);
            }
        }
    }

    /// First set bit at or after `from`.
    pub fn next_set(&self, from: u32) -> Option<u32> {
        if from >= self.len {
            return None;
        }
        let mut wi = (from / 64) as usize;
        let mut word = self.words[wi] & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                let i = (wi as u32) * 64 + word.trailing_zeros();
                return (i < self.len).then_some(i);
            }
            wi += 1;
            if wi >= self.words.len() {
                return None;
            }
            word = self.words[wi];
        }
    }

    /// First clear bit at or after `from` (within the universe).
    pub fn next_clear(&self, from: u32) -> Option<u32> {
        if from >= self.len {
            return None;
        }
        let mut wi = (from / 64) as usize;
        let mut word = !self.words[wi] & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                let i = (wi as u32) * 64 + word.trailing_zeros();
                return (i < self.len).then_some(i);
            }
            wi += 1;
            if wi >= self.words.len() {
                return None;
            }
            word = !self.words[wi];
        }
    }

    /// Set bits in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let mut next = self.next_set(0);
        std::iter::from_fn(move || {
            let current = next?;
            next = current.checked_add(1).and_then(|n| self.next_set(n));
            Some(current)
        })
    }
}

impl fmt::Debug for BitSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BitSet(len={}, {:?})",
            self.len,
            IndexSet::from_bitset(self).to_string()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> IndexSet {
        IndexSet::parse(s).expect("valid set")
    }

    #[test]
    fn parse_and_format_round_trip() {
        for text in ["", "0", "0-41,43-99", "5,7,9-10", "0-9999"] {
            assert_eq!(set(text).to_string(), text);
        }
        assert_eq!(set(" 3 , 1-2 ").to_string(), "1-3");
        assert_eq!(set("5-9,0-6").to_string(), "0-9");
        assert_eq!(set("1,2,3,5").to_string(), "1-3,5");
    }

    #[test]
    fn parse_errors_are_clear() {
        let e = IndexSet::parse("0-4,3-1").unwrap_err();
        assert_eq!(e.to_string(), "\"3-1\": range end before start");
        let e = IndexSet::parse("1,x").unwrap_err();
        assert_eq!(e.to_string(), "\"x\": \"x\" is not a non-negative integer");
        let e = IndexSet::parse("-3").unwrap_err();
        assert!(
            e.to_string().contains("is not a non-negative integer"),
            "{e}"
        );
        let e = IndexSet::parse("1,,2").unwrap_err();
        assert!(e.to_string().contains("empty item"), "{e}");
        let e = IndexSet::parse("99999999999").unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }

    #[test]
    fn insert_and_remove_keep_ranges_merged() {
        let mut s = IndexSet::new();
        assert!(s.insert(3));
        assert!(s.insert(5));
        assert!(!s.insert(5));
        assert_eq!(s.to_string(), "3,5");
        assert!(s.insert(4));
        assert_eq!(s.to_string(), "3-5");
        assert_eq!(s.range_count(), 1);
        assert!(s.insert(2));
        assert!(s.insert(6));
        assert_eq!(s.to_string(), "2-6");
        assert!(s.remove(4));
        assert_eq!(s.to_string(), "2-3,5-6");
        assert!(!s.remove(4));
        assert!(s.remove(2));
        assert!(s.remove(6));
        assert_eq!(s.to_string(), "3,5");
        assert!(s.remove(3));
        assert!(s.remove(5));
        assert!(s.is_empty());
        let mut edge = IndexSet::new();
        assert!(edge.insert(u32::MAX));
        assert!(edge.insert(u32::MAX - 1));
        assert_eq!(edge.len(), 2);
    }

    #[test]
    fn contains_len_first_last() {
        let s = set("0-41,43-99");
        assert!(s.contains(0) && s.contains(41) && !s.contains(42) && s.contains(99));
        assert!(!s.contains(100));
        assert_eq!(s.len(), 99);
        assert_eq!(s.first(), Some(0));
        assert_eq!(s.last(), Some(99));
        assert_eq!(IndexSet::all(10_000).len(), 10_000);
        assert_eq!(IndexSet::range(5, 5).len(), 0);
    }

    #[test]
    fn set_algebra() {
        let a = set("0-9,20-29");
        let b = set("5-24,40");
        assert_eq!(a.union(&b).to_string(), "0-29,40");
        assert_eq!(a.intersection(&b).to_string(), "5-9,20-24");
        assert_eq!(a.difference(&b).to_string(), "0-4,25-29");
        assert_eq!(b.difference(&a).to_string(), "10-19,40");
        assert_eq!(a.difference(&IndexSet::new()), a);
        assert!(a.difference(&a).is_empty());
        assert!(set("1-3").is_subset(&a));
        assert!(!b.is_subset(&a));
        assert_eq!(set("0-9").union(&set("10-12")).to_string(), "0-12");
        assert_eq!(
            set("0-100").difference(&set("1,3,5-98")).to_string(),
            "0,2,4,99-100"
        );
        assert_eq!(a.clipped(25).to_string(), "0-9,20-24");
    }

    #[test]
    fn algebra_matches_naive_model() {
        // Deterministic pseudo-random sets checked against BTreeSet.
        use std::collections::BTreeSet;
        let mut seed = 0x2545_f491_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 300) as u32
        };
        for _ in 0..50 {
            let xs: Vec<u32> = (0..80).map(|_| next()).collect();
            let ys: Vec<u32> = (0..80).map(|_| next()).collect();
            let (a, b): (IndexSet, IndexSet) =
                (xs.iter().copied().collect(), ys.iter().copied().collect());
            let (na, nb): (BTreeSet<u32>, BTreeSet<u32>) =
                (xs.into_iter().collect(), ys.into_iter().collect());
            let to_vec = |s: &IndexSet| s.iter().collect::<Vec<_>>();
            assert_eq!(
                to_vec(&a.union(&b)),
                na.union(&nb).copied().collect::<Vec<_>>()
            );
            assert_eq!(
                to_vec(&a.intersection(&b)),
                na.intersection(&nb).copied().collect::<Vec<_>>()
            );
            assert_eq!(
                to_vec(&a.difference(&b)),
                na.difference(&nb).copied().collect::<Vec<_>>()
            );
            assert_eq!(a.len(), na.len() as u64);
            let bits = a.to_bitset(300);
            assert_eq!(IndexSet::from_bitset(&bits), a);
            assert_eq!(
                bits.iter().collect::<Vec<_>>(),
                na.iter().copied().collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn take_first_counts_across_ranges() {
        let s = set("0-2,10-19,30");
        assert_eq!(s.take_first(0).to_string(), "");
        assert_eq!(s.take_first(2).to_string(), "0-1");
        assert_eq!(s.take_first(5).to_string(), "0-2,10-11");
        assert_eq!(s.take_first(100), s);
    }

    #[test]
    fn serde_as_compact_string() {
        let s = set("0-41,43-99");
        let json = serde_json::to_string(&s).expect("serialise");
        assert_eq!(json, "\"0-41,43-99\"");
        let back: IndexSet = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, s);
        let bad: std::result::Result<IndexSet, _> = serde_json::from_str("\"9-1\"");
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("range end before start"));
    }

    #[test]
    fn bitset_basics() {
        let mut b = BitSet::new(130);
        assert!(b.none());
        b.insert(0);
        b.insert(64);
        b.insert(129);
        b.insert(130); // ignored
        assert_eq!(b.count(), 3);
        assert!(b.contains(64) && !b.contains(65) && !b.contains(130));
        b.remove(64);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![0, 129]);
        let full = BitSet::full(130);
        assert_eq!(full.count(), 130);
        assert_eq!(full.next_clear(0), None);
        let mut x = BitSet::new(130);
        x.insert_range(60, 70);
        assert_eq!(x.count(), 11);
        assert_eq!(x.next_set(0), Some(60));
        assert_eq!(x.next_clear(60), Some(71));
        let mut y = full.clone();
        y.and_not_with(&x);
        assert_eq!(y.count(), 119);
        y.or_with(&x);
        assert_eq!(y, full);
        y.and_with(&x);
        assert_eq!(y, x);
        assert_eq!(IndexSet::from_bitset(&x).to_string(), "60-70");
        assert!(BitSet::new(0).is_empty());
        assert_eq!(BitSet::full(0).count(), 0);
        assert_eq!(set("5-500").to_bitset(64).count(), 59);
    }
}
