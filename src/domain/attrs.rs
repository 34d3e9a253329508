//! A user's extra attributes: a small map kept as one sorted vector.
//!
//! A user has a handful of them (`sn`, `homeDirectory`, `loginShell`…).
//! A `BTreeMap` allocates a node with room for eleven pairs for the first
//! one (some 540 bytes of a record that is otherwise 200), and the record
//! cache keeps a million of these records at a million users. Sorted by
//! key, so iteration and the stored JSON are what the `BTreeMap` gave:
//! the same bytes for the same attributes (the record cache compares
//! digests of them).

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Attribute name to value, unique names in byte order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attrs(Vec<(String, String)>);

impl Attrs {
    pub fn new() -> Attrs {
        Attrs(Vec::new())
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.position(key).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Sets `key` to `value`; the value it had, if any.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.position(key).ok().map(|i| self.0.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut String) -> bool) {
        self.0.retain_mut(|(k, v)| keep(k, v));
    }

    /// Pairs in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&String, &String)> + ExactSizeIterator {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = (&String, &mut String)> + ExactSizeIterator {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.0.iter().map(|(_, v)| v)
    }

    /// Sorts by key, the last of equal keys winning (as inserting them
    /// one by one would), and gives back memory it does not use.
    fn settle(mut pairs: Vec<(String, String)>) -> Attrs {
        if !pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            // Stable: of equal keys the later stays later, and dedup keeps
            // the first of a run, so reverse the runs' order first.
            pairs.reverse();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            pairs.dedup_by(|later, earlier| later.0 == earlier.0);
        }
        pairs.shrink_to_fit();
        Attrs(pairs)
    }
}

impl fmt::Debug for Attrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(String, String)> for Attrs {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Attrs {
        Attrs::settle(iter.into_iter().collect())
    }
}

impl<const N: usize> From<[(String, String); N]> for Attrs {
    fn from(pairs: [(String, String); N]) -> Attrs {
        pairs.into_iter().collect()
    }
}

impl Extend<(String, String)> for Attrs {
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl IntoIterator for Attrs {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Attrs {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl Serialize for Attrs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Attrs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Attrs, D::Error> {
        struct Pairs;

        impl<'de> Visitor<'de> for Pairs {
            type Value = Attrs;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of attribute names to values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attrs, A::Error> {
                // Bounded: a size hint comes from the input.
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(Attrs::settle(pairs))
            }
        }

        d.deserialize_map(Pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn s(x: &str) -> String {
        x.to_string()
    }

    #[test]
    fn behaves_as_the_sorted_map_it_replaces() {
        let mut a = Attrs::new();
        let mut b = BTreeMap::new();
        for (k, v) in [
            ("sn", "x"),
            ("loginShell", "/bin/sh"),
            ("cn", "y"),
            ("sn", "z"),
        ] {
            assert_eq!(a.insert(s(k), s(v)), b.insert(s(k), s(v)));
        }
        assert_eq!(a.remove("cn"), b.remove("cn"));
        assert_eq!(a.remove("cn"), None);
        assert_eq!(a.get("sn"), b.get("sn"));
        assert!(a.contains_key("loginShell") && !a.contains_key("loginshell"));
        assert_eq!(a.len(), b.len());
        assert!(a.iter().eq(b.iter()));
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }

    #[test]
    fn reads_any_order_and_the_last_of_a_repeated_name_wins() {
        let a: Attrs =
            serde_json::from_str(r#"{"sn":"1","homeDirectory":"/h","sn":"2","cn":"c"}"#).unwrap();
        let b: BTreeMap<String, String> =
            serde_json::from_str(r#"{"sn":"1","homeDirectory":"/h","sn":"2","cn":"c"}"#).unwrap();
        assert!(a.iter().eq(b.iter()));
        assert_eq!(a.get("sn").map(String::as_str), Some("2"));
        let c: Attrs = [(s("b"), s("1")), (s("a"), s("2")), (s("b"), s("3"))]
            .into_iter()
            .collect();
        assert_eq!(
            c.iter().collect::<Vec<_>>(),
            [(&s("a"), &s("2")), (&s("b"), &s("3"))]
        );
        assert!(serde_json::from_str::<Attrs>(r#"{"sn":1}"#).is_err());
    }
}
