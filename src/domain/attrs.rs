//! A user's extra attributes: a small map kept as one block of text.
//!
//! A user has a handful of them (`sn`, `homeDirectory`, `loginShell`…),
//! and the record cache keeps a million of these records at a million
//! users. A `BTreeMap` allocated a node with room for eleven pairs for the
//! first one (some 540 bytes of a record that is otherwise 200); a vector
//! of string pairs still took a block for the vector and one for every
//! name and value (some 250 bytes for the benchmark's three attributes).
//! So the names and values are kept one after another in one string, with
//! the end of each in a second block: two blocks whatever the count, and
//! decoding a record allocates two blocks instead of one per string.
//!
//! Sorted by name, so iteration and the stored JSON are what the
//! `BTreeMap` gave: the same bytes for the same attributes (the record
//! cache compares digests of them).

use std::borrow::Cow;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Attribute name to value, unique names in byte order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    /// Every name and value, one after another: name 0, value 0, name 1…
    text: Box<str>,
    /// For each pair, where its name ends and where its value ends in
    /// `text` (byte offsets).
    ends: Box<[(u32, u32)]>,
}

impl Attrs {
    pub fn new() -> Attrs {
        Attrs::default()
    }

    /// The name and value of pair `i`.
    fn pair(&self, i: usize) -> (&str, &str) {
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1].1 as usize,
        };
        let (key_end, value_end) = self.ends[i];
        (
            &self.text[start..key_end as usize],
            &self.text[key_end as usize..value_end as usize],
        )
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        // Over the indexes, as `binary_search_by` over a slice of pairs.
        let (mut low, mut high) = (0, self.ends.len());
        while low < high {
            let mid = low + (high - low) / 2;
            match self.pair(mid).0.cmp(key) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).ok().map(|i| self.pair(i).1)
    }

    /// The name under which `name` is held, whatever its case, and its
    /// value.
    pub fn pair_like(&self, name: &str) -> Option<(&str, &str)> {
        self.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Sets `key` to `value`; the value it had, if any.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        let mut pairs: Vec<(&str, &str)> = self.iter().collect();
        let old = match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut pairs[i].1, &value).to_string()),
            Err(i) => {
                pairs.insert(i, (&key, &value));
                None
            }
        };
        *self = Attrs::pack(&pairs);
        old
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.position(key).ok()?;
        let mut pairs: Vec<(&str, &str)> = self.iter().collect();
        let old = pairs.remove(i).1.to_string();
        *self = Attrs::pack(&pairs);
        Some(old)
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn clear(&mut self) {
        *self = Attrs::default();
    }

    /// Pairs in name order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            attrs: self,
            front: 0,
            back: self.ends.len(),
        }
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.iter().map(|(_, v)| v)
    }

    /// The bytes its two blocks hold (names and values, and their ends),
    /// for the record cache's count.
    pub fn heap_bytes(&self) -> (usize, usize) {
        (self.text.len(), std::mem::size_of_val(&*self.ends))
    }

    fn owned(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Pairs in name order, names unique, as one text and its ends.
    fn pack<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Attrs {
        let len = pairs
            .iter()
            .map(|(k, v)| k.as_ref().len() + v.as_ref().len())
            .sum();
        let mut text = String::with_capacity(len);
        let mut ends = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            text.push_str(k.as_ref());
            let key_end = offset(text.len());
            text.push_str(v.as_ref());
            ends.push((key_end, offset(text.len())));
        }
        Attrs {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    /// Sorts by name, the last of equal names winning (as inserting them
    /// one by one would), and packs them.
    fn settle<K: AsRef<str>, V: AsRef<str>>(mut pairs: Vec<(K, V)>) -> Attrs {
        if !pairs.windows(2).all(|w| w[0].0.as_ref() < w[1].0.as_ref()) {
            // Stable: of equal names the later stays later, and dedup keeps
            // the first of a run, so reverse the runs' order first.
            pairs.reverse();
            pairs.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
            pairs.dedup_by(|later, earlier| later.0.as_ref() == earlier.0.as_ref());
        }
        Attrs::pack(&pairs)
    }
}

/// An offset into the text. Names and values are bounded far below 4 GiB
/// (a stored record is read whole, and every input that sets one is
/// bounded), so this cannot fail but on a broken invariant.
fn offset(len: usize) -> u32 {
    u32::try_from(len).expect("user attributes under 4 GiB")
}

/// The pairs of an [`Attrs`] in name order.
#[derive(Clone)]
pub struct Iter<'a> {
    attrs: &'a Attrs,
    front: usize,
    back: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        if self.front == self.back {
            return None;
        }
        self.front += 1;
        Some(self.attrs.pair(self.front - 1))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        self.back -= 1;
        Some(self.attrs.pair(self.back))
    }
}

impl ExactSizeIterator for Iter<'_> {}

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
        let more: Vec<(String, String)> = iter.into_iter().collect();
        let mut pairs: Vec<(&str, &str)> = self.iter().collect();
        pairs.extend(more.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        *self = Attrs::settle(pairs);
    }
}

impl IntoIterator for Attrs {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.owned().into_iter()
    }
}

impl<'a> IntoIterator for &'a Attrs {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl Serialize for Attrs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// A string read from the input, borrowed when the input allows (a
/// stored record without escapes): decoding allocates no block per name
/// or value.
struct Text<'de>(Cow<'de, str>);

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text<'de>, D::Error> {
        struct Str;

        impl<'de> Visitor<'de> for Str {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }

            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }

        d.deserialize_str(Str)
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
                while let Some(pair) = map.next_entry::<Text<'de>, Text<'de>>()? {
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
        assert_eq!(a.get("sn"), b.get("sn").map(String::as_str));
        assert!(a.contains_key("loginShell") && !a.contains_key("loginshell"));
        assert_eq!(a.len(), b.len());
        assert!(a.iter().eq(b.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        assert!(a
            .iter()
            .rev()
            .eq(b.iter().rev().map(|(k, v)| (k.as_str(), v.as_str()))));
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
        assert!(a.iter().eq(b.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        assert_eq!(a.get("sn"), Some("2"));
        let c: Attrs = [(s("b"), s("1")), (s("a"), s("2")), (s("b"), s("3"))]
            .into_iter()
            .collect();
        assert_eq!(c.iter().collect::<Vec<_>>(), [("a", "2"), ("b", "3")]);
        assert!(serde_json::from_str::<Attrs>(r#"{"sn":1}"#).is_err());
        // Escaped text is decoded, not borrowed as written.
        let d: Attrs = serde_json::from_str(r#"{"description":"a \"b\"\n"}"#).unwrap();
        assert_eq!(d.get("description"), Some("a \"b\"\n"));
    }

    #[test]
    fn names_and_values_stay_apart_whatever_their_length() {
        let mut a = Attrs::new();
        assert_eq!(a.get(""), None);
        a.insert(s(""), s("empty name"));
        a.insert(s("x"), s(""));
        a.insert(s("xy"), s("z"));
        a.extend([(s("a"), s("1")), (s("x"), s("2"))]);
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            [("", "empty name"), ("a", "1"), ("x", "2"), ("xy", "z")]
        );
        assert_eq!(a.remove("x"), Some(s("2")));
        assert_eq!(a.remove("x"), None);
        assert_eq!(a.pair_like("XY"), Some(("xy", "z")));
        assert_eq!(a.keys().collect::<Vec<_>>(), ["", "a", "xy"]);
        assert_eq!(
            a.values().rev().collect::<Vec<_>>(),
            ["z", "1", "empty name"]
        );
        let back: Attrs = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        assert_eq!(
            a.clone().into_iter().collect::<Vec<_>>(),
            [
                (s(""), s("empty name")),
                (s("a"), s("1")),
                (s("xy"), s("z"))
            ]
        );
        a.clear();
        assert!(a.is_empty() && a.iter().next().is_none());
    }
}
