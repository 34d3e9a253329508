//! Matching (RFC 4511 §4.5.1.7): three-valued evaluation of a filter
//! against an entry, and the normalisation and comparison of values by
//! syntax (RFC 4517) that conversion and evaluation share.

use super::{compatible, Filter, InChain, Key, Truth};
use crate::directory::dn::Dn;
use crate::directory::entry::Entry;
use crate::directory::schema::{self, AttributeType, Syntax};
use std::cmp::Ordering;

impl Truth {
    fn from_bool(b: bool) -> Truth {
        if b {
            Truth::True
        } else {
            Truth::False
        }
    }

    fn negate(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Undefined => Truth::Undefined,
        }
    }

    /// Three-valued OR.
    fn or(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::True, _) | (_, Truth::True) => Truth::True,
            (Truth::Undefined, _) | (_, Truth::Undefined) => Truth::Undefined,
            _ => Truth::False,
        }
    }
}

impl Filter {
    /// True when the filter is True for `entry`.
    pub fn matches(&self, entry: &Entry, chain: &dyn InChain) -> bool {
        self.evaluate(entry, chain) == Truth::True
    }

    /// The three-valued result for `entry`.
    pub fn evaluate(&self, entry: &Entry, chain: &dyn InChain) -> Truth {
        match self {
            Filter::And(items) => {
                let mut result = Truth::True;
                for f in items {
                    match f.evaluate(entry, chain) {
                        Truth::False => return Truth::False,
                        Truth::Undefined => result = Truth::Undefined,
                        Truth::True => {}
                    }
                }
                result
            }
            Filter::Or(items) => {
                let mut result = Truth::False;
                for f in items {
                    match f.evaluate(entry, chain) {
                        Truth::True => return Truth::True,
                        Truth::Undefined => result = Truth::Undefined,
                        Truth::False => {}
                    }
                }
                result
            }
            Filter::Not(f) => f.evaluate(entry, chain).negate(),
            Filter::Equality(ty, v) | Filter::Approx(ty, v) => {
                if let (Key::Dn(k), "entryDN") = (&v.key, ty.name) {
                    return Truth::from_bool(entry.dn.normalized_str() == k);
                }
                any_value(entry, ty, |s| {
                    // A stored DN spelled exactly as asserted needs no parse.
                    if ty.syntax == Syntax::Dn && s == v.raw {
                        Truth::True
                    } else {
                        equal(ty.syntax, s, &v.key)
                    }
                })
            }
            Filter::Substring {
                ty,
                initial,
                any,
                final_,
            } => any_value(entry, ty, |s| {
                let folded = fold_value(ty.syntax, s);
                Truth::from_bool(substring_match(
                    &folded,
                    initial.as_deref(),
                    any,
                    final_.as_deref(),
                ))
            }),
            Filter::GreaterOrEqual(ty, v) => any_value(entry, ty, |s| {
                order(ty.syntax, s, &v.key)
                    .map_or(Truth::Undefined, |o| Truth::from_bool(o.is_ge()))
            }),
            Filter::LessOrEqual(ty, v) => any_value(entry, ty, |s| {
                order(ty.syntax, s, &v.key)
                    .map_or(Truth::Undefined, |o| Truth::from_bool(o.is_le()))
            }),
            Filter::Present(ty) => {
                // Every entry has an objectClass and a DN.
                if ty.name == "objectClass" || ty.name == "entryDN" {
                    Truth::True
                } else {
                    Truth::from_bool(entry.attr_of(ty).is_some())
                }
            }
            Filter::Extensible {
                ty,
                rule,
                value,
                dn_attributes,
            } => extensible(entry, *ty, *rule, &value.key, *dn_attributes),
            Filter::InChain { attr, dn } => Truth::from_bool(if attr.name == "memberOf" {
                chain.member_of_in_chain(entry, dn)
            } else {
                chain.member_in_chain(entry, dn)
            }),
            Filter::Undefined => Truth::Undefined,
        }
    }
}

fn extensible(
    entry: &Entry,
    ty: Option<&'static AttributeType>,
    rule: Syntax,
    key: &Key,
    dn_attributes: bool,
) -> Truth {
    let mut result = match ty {
        Some(ty) => any_value(entry, ty, |s| equal(rule, s, key)),
        None => entry
            .attrs
            .iter()
            .filter(|a| compatible(rule, a.ty.syntax))
            .fold(Truth::False, |acc, a| {
                a.values
                    .iter()
                    .fold(acc, |acc, v| acc.or(equal(rule, v, key)))
            }),
    };
    if dn_attributes && result != Truth::True {
        for ava in entry.dn.rdns().iter().flat_map(|r| r.avas.iter()) {
            let applies = match (ty, schema::attribute(&ava.attr)) {
                (Some(want), Some(have)) => std::ptr::eq(want, have),
                (None, Some(have)) => compatible(rule, have.syntax),
                (_, None) => false,
            };
            if applies {
                result = result.or(equal(rule, &ava.value, key));
            }
        }
    }
    result
}

/// Applies `test` to every value of `ty` in `entry` (RFC 4511 §4.5.1.7:
/// True if any value is, else Undefined if any value is, else False;
/// False when the attribute is absent). entryDN is virtual: the entry's DN.
fn any_value(entry: &Entry, ty: &AttributeType, mut test: impl FnMut(&str) -> Truth) -> Truth {
    if ty.name == "entryDN" {
        return test(&entry.dn.to_string());
    }
    let Some(attr) = entry.attr_of(ty) else {
        return Truth::False;
    };
    let mut result = Truth::False;
    for v in &attr.values {
        match test(v) {
            Truth::True => return Truth::True,
            Truth::Undefined => result = Truth::Undefined,
            Truth::False => {}
        }
    }
    result
}

/// The schema name of a known object class or attribute type, else the
/// trimmed input: so `objectClass=2.5.6.6` and `objectClass=person` agree.
fn oid_canonical(s: &str) -> &str {
    let t = s.trim();
    if let Some(oc) = schema::object_class(t) {
        oc.name
    } else if let Some(at) = schema::attribute(t) {
        at.name
    } else {
        t
    }
}

/// Normalises a value for `syntax`; `None` when it does not fit.
pub(super) fn key_of(syntax: Syntax, raw: &str) -> Option<Key> {
    Some(match syntax {
        Syntax::CaseIgnore => Key::Text(schema::fold_case_ignore_string(raw)),
        Syntax::CaseExact => Key::Text(schema::fold_spaces(raw).collect()),
        Syntax::Oid => Key::Text(schema::fold_case_ignore_string(oid_canonical(raw))),
        Syntax::Integer => Key::Int(parse_integer(raw)?),
        Syntax::Dn => Key::Dn(Dn::parse(raw).ok()?.into_normalized()),
        Syntax::GeneralizedTime => Key::Time(parse_generalized_time(raw)?),
        Syntax::Boolean => Key::Bool(parse_boolean(raw)?),
    })
}

/// Equality of a stored value with an assertion key under `syntax`'s rule.
/// A stored value that does not fit the syntax compares Undefined.
fn equal(syntax: Syntax, stored: &str, key: &Key) -> Truth {
    let text_eq =
        |folded: &mut dyn Iterator<Item = char>, k: &str| Truth::from_bool(folded.eq(k.chars()));
    match (syntax, key) {
        (Syntax::CaseIgnore, Key::Text(k)) => match plain_ascii_eq(stored, k) {
            Some(eq) => Truth::from_bool(eq),
            None => text_eq(&mut schema::fold_case_ignore(stored), k),
        },
        (Syntax::CaseExact, Key::Text(k)) => text_eq(&mut schema::fold_spaces(stored), k),
        (Syntax::Oid, Key::Text(k)) => {
            text_eq(&mut schema::fold_case_ignore(oid_canonical(stored)), k)
        }
        (Syntax::Dn, Key::Dn(k)) => match Dn::parse(stored) {
            Ok(dn) => Truth::from_bool(dn.normalized_str() == k),
            Err(_) => Truth::Undefined,
        },
        (Syntax::Integer, Key::Int(_))
        | (Syntax::GeneralizedTime, Key::Time(_))
        | (Syntax::Boolean, Key::Bool(_)) => match key_of(syntax, stored) {
            Some(k) => Truth::from_bool(&k == key),
            None => Truth::Undefined,
        },
        _ => Truth::Undefined,
    }
}

/// Whether `stored`, folded for caseIgnoreMatch, is `folded`, when
/// [`schema::folds_to_ascii_lowercase`] holds for `stored`: compared byte
/// by byte without the general folding's char iterators. `None` for any
/// other value.
fn plain_ascii_eq(stored: &str, folded: &str) -> Option<bool> {
    let bytes = stored.as_bytes();
    if !schema::folds_to_ascii_lowercase(stored) {
        return None;
    }
    Some(
        bytes.len() == folded.len()
            && bytes
                .iter()
                .zip(folded.as_bytes())
                .all(|(b, f)| b.to_ascii_lowercase() == *f),
    )
}

/// Order of a stored value relative to the assertion, for ordered
/// syntaxes; `None` when either side does not fit.
fn order(syntax: Syntax, stored: &str, key: &Key) -> Option<Ordering> {
    match (syntax, key) {
        (Syntax::Integer, Key::Int(k)) => Some(parse_integer(stored)?.cmp(k)),
        (Syntax::GeneralizedTime, Key::Time(k)) => Some(parse_generalized_time(stored)?.cmp(k)),
        _ => None,
    }
}

/// A stored value folded like the substring pieces of its syntax.
fn fold_value(syntax: Syntax, s: &str) -> String {
    match syntax {
        Syntax::CaseIgnore => schema::fold_case_ignore_string(s),
        _ => schema::fold_spaces(s).collect(),
    }
}

/// RFC 4517 §4.2.39-style substring match of folded strings.
fn substring_match(
    value: &str,
    initial: Option<&str>,
    any: &[String],
    final_: Option<&str>,
) -> bool {
    let mut rest = value;
    if let Some(i) = initial {
        match rest.strip_prefix(i) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    if let Some(f) = final_ {
        match rest.strip_suffix(f) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    for piece in any {
        match rest.find(piece.as_str()) {
            Some(at) => rest = rest.get(at + piece.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    true
}

/// RFC 4517 §3.3.16 INTEGER (leading zeros tolerated, spaces trimmed).
fn parse_integer(s: &str) -> Option<i128> {
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// RFC 4517 §3.3.3 Boolean, case-insensitively.
fn parse_boolean(s: &str) -> Option<bool> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("TRUE") {
        Some(true)
    } else if t.eq_ignore_ascii_case("FALSE") {
        Some(false)
    } else {
        None
    }
}

/// RFC 4517 §3.3.13 GeneralizedTime to nanoseconds since the epoch (UTC):
/// `YYYYMMDDHH[MM[SS]][(.|,)fraction](Z|±HH[MM])`; a missing zone is
/// taken as UTC.
pub(super) fn parse_generalized_time(s: &str) -> Option<i128> {
    let b = s.trim().as_bytes();
    let num = |at: usize, len: usize| -> Option<i64> {
        let digits = b.get(at..at + len)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let is_digit = |at: usize| b.get(at).is_some_and(u8::is_ascii_digit);
    let (year, month, day, hour) = (num(0, 4)?, num(4, 2)?, num(6, 2)?, num(8, 2)?);
    let mut pos = 10;
    let (mut minute, mut second) = (0, 0);
    // The unit a fraction is a fraction of, in nanoseconds.
    let mut unit: i128 = 3_600_000_000_000;
    if is_digit(pos) {
        minute = num(pos, 2)?;
        pos += 2;
        unit = 60_000_000_000;
        if is_digit(pos) {
            second = num(pos, 2)?;
            pos += 2;
            unit = 1_000_000_000;
        }
    }
    let mut fraction: i128 = 0;
    if matches!(b.get(pos), Some(b'.' | b',')) {
        pos += 1;
        let start = pos;
        let (mut numerator, mut scale): (i128, i128) = (0, 1);
        while is_digit(pos) {
            // Digits beyond nanosecond precision do not change the result.
            if pos - start < 18 {
                numerator = numerator * 10 + i128::from(b.get(pos).copied().unwrap_or(b'0') - b'0');
                scale *= 10;
            }
            pos += 1;
        }
        if pos == start {
            return None;
        }
        fraction = numerator * unit / scale;
    }
    let offset_seconds = match b.get(pos) {
        None => 0,
        Some(b'Z') => {
            pos += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            let sign = if *sign == b'-' { -1 } else { 1 };
            let hh = num(pos + 1, 2)?;
            pos += 3;
            let mm = if is_digit(pos) {
                pos += 2;
                num(pos - 2, 2)?
            } else {
                0
            };
            if hh > 23 || mm > 59 {
                return None;
            }
            sign * (hh * 3600 + mm * 60)
        }
        Some(_) => return None,
    };
    if pos != b.len() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?)
            .ok()?;
    let days =
        i64::from(date.to_julian_day() - time::OffsetDateTime::UNIX_EPOCH.date().to_julian_day());
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_seconds;
    Some(i128::from(seconds) * 1_000_000_000 + fraction)
}

impl super::Value {
    /// True when a stored `value` of `syntax` equals this assertion (what
    /// an equality item says of one value), for callers that know which
    /// values an entry holds without building it (the search planner).
    pub fn equals_stored(&self, syntax: Syntax, value: &str) -> bool {
        equal(syntax, value, &self.key) == Truth::True
    }

    /// True when the DN `dn` equals this assertion of a DN-syntax value.
    pub fn equals_dn(&self, dn: &Dn) -> bool {
        matches!(&self.key, Key::Dn(k) if dn.normalized_str() == k)
    }
}

#[cfg(test)]
mod plain_ascii_tests {
    use super::*;

    /// The shortcut answers as the general folding does wherever it
    /// answers at all, and leaves spaces, controls and non-ASCII to it.
    #[test]
    fn plain_ascii_equality_is_case_ignore_equality() {
        let values = [
            "alice",
            "Alice",
            "ALICE",
            "alice ",
            " alice",
            "al ice",
            "al  ice",
            "al\tice",
            "alice@example.com",
            "Alice@Example.COM",
            "inetOrgPerson",
            "inetorgperson",
            "posixAccount",
            "",
            "~!{}",
            "Ålice",
            "ålice",
            "straße",
            "STRASSE",
            "a\u{b}b",
            "a\u{7f}b",
            "user00042",
        ];
        let mut answered = 0;
        for stored in values {
            for asserted in values {
                let folded = schema::fold_case_ignore_string(asserted);
                let general = schema::fold_case_ignore(stored).eq(folded.chars());
                match plain_ascii_eq(stored, &folded) {
                    Some(eq) => {
                        assert_eq!(eq, general, "{stored:?} = {asserted:?}");
                        answered += 1;
                    }
                    None => assert!(
                        stored.bytes().any(|b| !(0x21..0x7f).contains(&b)),
                        "{stored:?} left to the general folding"
                    ),
                }
            }
        }
        assert!(answered > 200, "{answered}");
    }
}
