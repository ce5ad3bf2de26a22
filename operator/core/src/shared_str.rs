//! [`SharedStr`]: an immutable string shared by reference count.
//!
//! The names many records hold — a job's namespace and name ([`JobKey`]), its uid, its queue and
//! share identifier — are copied into the runnable book, the verdicts and every scheduling
//! pass's workloads. As `String`s each copy was an allocation (100,000 queued jobs: ~200,000
//! per pass); as `SharedStr`s a copy is a reference count, and equal names interned by the
//! caller (a namespace, a queue) are one allocation for every job.
//!
//! It compares, orders and hashes as the text it holds (a `HashMap<SharedStr, _>` is looked up
//! with a `&str`), and compares equal to `str`, `&str` and `String`.
//!
//! [`JobKey`]: crate::scheduler::JobKey

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// An immutable, cheaply cloned string (see the module docs).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SharedStr(Arc<str>);

impl SharedStr {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether both hold the same allocation (not only equal text).
    pub fn ptr_eq(a: &SharedStr, b: &SharedStr) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl Deref for SharedStr {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

/// As the text (`"name"`), the way a `String` prints.
impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> Self {
        SharedStr(Arc::from(s))
    }
}

impl From<&String> for SharedStr {
    fn from(s: &String) -> Self {
        SharedStr(Arc::from(s.as_str()))
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        SharedStr(Arc::from(s))
    }
}

impl From<Arc<str>> for SharedStr {
    fn from(s: Arc<str>) -> Self {
        SharedStr(s)
    }
}

impl From<&Arc<str>> for SharedStr {
    fn from(s: &Arc<str>) -> Self {
        SharedStr(Arc::clone(s))
    }
}

impl From<&SharedStr> for SharedStr {
    fn from(s: &SharedStr) -> Self {
        s.clone()
    }
}

impl From<SharedStr> for Arc<str> {
    fn from(s: SharedStr) -> Self {
        s.0
    }
}

impl From<SharedStr> for String {
    fn from(s: SharedStr) -> Self {
        s.0.to_string()
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        self == &*other.0
    }
}

impl PartialEq<SharedStr> for &str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<SharedStr> for String {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    #[test]
    fn it_behaves_as_its_text() {
        let a = SharedStr::from("ns");
        let b = SharedStr::from(String::from("ns"));
        assert_eq!(a, b);
        assert!(!SharedStr::ptr_eq(&a, &b), "two allocations of equal text");
        let c = a.clone();
        assert!(SharedStr::ptr_eq(&a, &c), "a clone shares the allocation");
        let owned = String::from("ns");
        assert!(a == "ns" && a == *"ns" && a == owned);
        assert!("ns" == a && owned == a);
        assert_eq!(format!("{a}/{:?}", a), "ns/\"ns\"");
        assert_eq!(a.len(), 2, "derefs to str");
        let mut map = HashMap::new();
        map.insert(a, 1);
        assert_eq!(map.get("ns"), Some(&1), "looked up by &str");
        let sorted: BTreeSet<SharedStr> =
            ["b", "a", "c"].into_iter().map(SharedStr::from).collect();
        let sorted: Vec<&str> = sorted.iter().map(SharedStr::as_str).collect();
        assert_eq!(sorted, ["a", "b", "c"], "ordered as text");
        assert_eq!(SharedStr::default(), "");
    }
}
