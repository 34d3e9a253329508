//! RFC 4515 filters: conversion from the wire form and matching by syntax.
//!
//! A search converts the client's `LdapFilter` once with
//! [`Filter::from_ldap`]: attribute types are resolved against the schema
//! and assertion values normalised for their syntax there, so matching an
//! entry never looks anything up again. Matching follows RFC 4511 §4.5.1.7:
//! every item is True, False or Undefined (unknown attribute, a value that
//! does not fit the syntax, a rule the server lacks), NOT Undefined is
//! Undefined, and an entry matches only when the whole filter is True.
//! Nested-group (in-chain) questions are answered by the caller through
//! [`InChain`]; nothing here touches the store.

use super::dn::Dn;
use super::entry::Entry;
use super::schema::{self, AttributeType, Syntax};
use ldap3_proto::proto::{LdapFilter, LdapMatchingRuleAssertion, LdapSubstringFilter};
use std::cmp::Ordering;

/// Filters nested deeper than this convert to [`Filter::Undefined`], so a
/// crafted filter cannot exhaust the stack in conversion or matching.
pub const MAX_DEPTH: usize = 64;

/// LDAP_MATCHING_RULE_IN_CHAIN (Active Directory): member/memberOf
/// through nested groups.
pub const IN_CHAIN_RULE: &str = "1.2.840.113556.1.4.1941";

/// The value of a filter item (RFC 4511 §4.5.1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Undefined,
}

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

/// Answers nested-membership questions for the in-chain matching rule.
/// The search planner implements it with the store.
pub trait InChain {
    /// Is `entry` a member of `group`, directly or through nested groups?
    fn member_of_in_chain(&self, entry: &Entry, group: &Dn) -> bool;
    /// Does `entry` (a group) contain `member`, directly or through nested
    /// groups?
    fn member_in_chain(&self, entry: &Entry, member: &Dn) -> bool;
}

/// An [`InChain`] that knows no memberships (for tests and for callers
/// without a store).
pub struct NoChain;

impl InChain for NoChain {
    fn member_of_in_chain(&self, _: &Entry, _: &Dn) -> bool {
        false
    }
    fn member_in_chain(&self, _: &Entry, _: &Dn) -> bool {
        false
    }
}

/// An assertion value: as the client sent it, and normalised for the
/// syntax it is compared under.
#[derive(Debug, Clone)]
pub struct Value {
    /// The value as sent (e.g. for an index lookup by the planner).
    pub raw: String,
    key: Key,
}

/// A value normalised for comparison.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    /// Folded text: spaces folded, lowercased unless case-exact; for OIDs
    /// the schema name of a known class or type.
    Text(String),
    Int(i128),
    /// A normalised DN.
    Dn(String),
    /// Nanoseconds since the epoch.
    Time(i128),
    Bool(bool),
}

impl Value {
    /// Normalises `raw` for `syntax`; `None` when it does not fit (the
    /// filter item is then Undefined).
    fn new(raw: &str, syntax: Syntax) -> Option<Value> {
        Some(Value {
            raw: raw.to_string(),
            key: key_of(syntax, raw)?,
        })
    }
}

/// A search filter with attribute types resolved.
#[derive(Debug, Clone)]
pub enum Filter {
    /// True when every element is (true for none: RFC 4526).
    And(Vec<Filter>),
    /// True when some element is (false for none).
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Equality(&'static AttributeType, Value),
    /// Substring pieces, already folded like the attribute's values
    /// (lowercased for case-ignore types). Only string syntaxes convert
    /// to this variant.
    Substring {
        ty: &'static AttributeType,
        initial: Option<String>,
        any: Vec<String>,
        final_: Option<String>,
    },
    /// Only ordered syntaxes (integers, times) convert to this variant.
    GreaterOrEqual(&'static AttributeType, Value),
    /// Only ordered syntaxes (integers, times) convert to this variant.
    LessOrEqual(&'static AttributeType, Value),
    Present(&'static AttributeType),
    /// Approximate match, evaluated as equality.
    Approx(&'static AttributeType, Value),
    /// Extensible match (RFC 4511 §4.5.1.7.7) with the rule's comparison
    /// given as the syntax it implements. Without `ty` the rule applies to
    /// every attribute of a compatible syntax; with `dn_attributes` also to
    /// the AVAs of the entry's DN.
    Extensible {
        ty: Option<&'static AttributeType>,
        rule: Syntax,
        value: Value,
        dn_attributes: bool,
    },
    /// `member` or `memberOf` with the in-chain rule: nested membership.
    InChain {
        attr: &'static AttributeType,
        dn: Dn,
    },
    /// Always Undefined: unknown attribute or rule, a value that does not
    /// fit the syntax, an assertion the syntax has no rule for, or nesting
    /// beyond [`MAX_DEPTH`].
    Undefined,
}

impl Filter {
    /// Converts the wire form. Never fails: what cannot be evaluated
    /// becomes [`Filter::Undefined`].
    pub fn from_ldap(f: &LdapFilter) -> Filter {
        convert(f, 0)
    }

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

fn convert(f: &LdapFilter, depth: usize) -> Filter {
    if depth >= MAX_DEPTH {
        return Filter::Undefined;
    }
    let known = |name: &str| schema::attribute(name);
    match f {
        LdapFilter::And(items) => {
            Filter::And(items.iter().map(|i| convert(i, depth + 1)).collect())
        }
        LdapFilter::Or(items) => Filter::Or(items.iter().map(|i| convert(i, depth + 1)).collect()),
        LdapFilter::Not(inner) => Filter::Not(Box::new(convert(inner, depth + 1))),
        LdapFilter::Equality(a, v) => with_value(a, v, Filter::Equality),
        LdapFilter::Approx(a, v) => with_value(a, v, Filter::Approx),
        LdapFilter::GreaterOrEqual(a, v) => match known(a) {
            Some(ty) if ordered(ty.syntax) => with_value(a, v, Filter::GreaterOrEqual),
            _ => Filter::Undefined,
        },
        LdapFilter::LessOrEqual(a, v) => match known(a) {
            Some(ty) if ordered(ty.syntax) => with_value(a, v, Filter::LessOrEqual),
            _ => Filter::Undefined,
        },
        LdapFilter::Present(a) => known(a).map_or(Filter::Undefined, Filter::Present),
        LdapFilter::Substring(a, sub) => match known(a) {
            Some(ty) if stringy(ty.syntax) => substring(ty, sub),
            _ => Filter::Undefined,
        },
        LdapFilter::Extensible(m) => convert_extensible(m),
    }
}

/// Builds an item on a known attribute with a value that fits its syntax.
fn with_value(
    attr: &str,
    raw: &str,
    build: impl FnOnce(&'static AttributeType, Value) -> Filter,
) -> Filter {
    let Some(ty) = schema::attribute(attr) else {
        return Filter::Undefined;
    };
    match Value::new(raw, ty.syntax) {
        Some(v) => build(ty, v),
        None => Filter::Undefined,
    }
}

/// Syntaxes with an ordering rule.
fn ordered(s: Syntax) -> bool {
    matches!(s, Syntax::Integer | Syntax::GeneralizedTime)
}

/// Syntaxes with a substrings rule.
fn stringy(s: Syntax) -> bool {
    matches!(s, Syntax::CaseIgnore | Syntax::CaseExact)
}

/// Can a rule of syntax `rule` be applied to values of syntax `attr`?
fn compatible(rule: Syntax, attr: Syntax) -> bool {
    let text = |s| matches!(s, Syntax::CaseIgnore | Syntax::CaseExact | Syntax::Oid);
    rule == attr || (stringy(rule) && text(attr))
}

fn substring(ty: &'static AttributeType, sub: &LdapSubstringFilter) -> Filter {
    let lower = ty.syntax == Syntax::CaseIgnore;
    let initial = sub
        .initial
        .as_deref()
        .map(|s| fold_piece(s.trim_start(), lower))
        .filter(|s| !s.is_empty());
    let final_ = sub
        .final_
        .as_deref()
        .map(|s| fold_piece(s.trim_end(), lower))
        .filter(|s| !s.is_empty());
    let any = sub
        .any
        .iter()
        .map(|s| fold_piece(s, lower))
        .filter(|s| !s.is_empty())
        .collect();
    Filter::Substring {
        ty,
        initial,
        any,
        final_,
    }
}

fn convert_extensible(m: &LdapMatchingRuleAssertion) -> Filter {
    let ty = match m.type_.as_deref() {
        Some(name) => match schema::attribute(name) {
            Some(ty) => Some(ty),
            None => return Filter::Undefined,
        },
        None => None,
    };
    let rule = match m.matching_rule.as_deref().map(str::trim) {
        Some(IN_CHAIN_RULE) => {
            return match (ty, Dn::parse(&m.match_value)) {
                (Some(attr), Ok(dn)) if attr.name == "member" || attr.name == "memberOf" => {
                    Filter::InChain { attr, dn }
                }
                _ => Filter::Undefined,
            };
        }
        Some(rule) => match schema::matching_rule_syntax(rule) {
            Some(syntax) => syntax,
            None => return Filter::Undefined,
        },
        // Without a rule the type's equality rule applies; without either
        // the filter is malformed.
        None => match ty {
            Some(ty) => ty.syntax,
            None => return Filter::Undefined,
        },
    };
    if ty.is_some_and(|ty| !compatible(rule, ty.syntax)) {
        return Filter::Undefined;
    }
    match Value::new(&m.match_value, rule) {
        Some(value) => Filter::Extensible {
            ty,
            rule,
            value,
            dn_attributes: m.dn_attributes,
        },
        None => Filter::Undefined,
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
fn key_of(syntax: Syntax, raw: &str) -> Option<Key> {
    Some(match syntax {
        Syntax::CaseIgnore => Key::Text(schema::fold_case_ignore_string(raw)),
        Syntax::CaseExact => Key::Text(schema::fold_spaces(raw).collect()),
        Syntax::Oid => Key::Text(schema::fold_case_ignore_string(oid_canonical(raw))),
        Syntax::Integer => Key::Int(parse_integer(raw)?),
        Syntax::Dn => Key::Dn(Dn::parse(raw).ok()?.normalized()),
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
        (Syntax::CaseIgnore, Key::Text(k)) => text_eq(&mut schema::fold_case_ignore(stored), k),
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

/// A substring piece: whitespace runs collapsed, lowercased for
/// case-ignore types; not trimmed (spaces inside `*john smith*` matter).
fn fold_piece(s: &str, lower: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            if !prev_space {
                out.push(' ');
            }
            prev_space = true;
            continue;
        }
        prev_space = false;
        if lower {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
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
fn parse_generalized_time(s: &str) -> Option<i128> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::entry::{group_entry, user_entry};
    use crate::store::model::{Group, GroupId, User, UserId};
    use ldap3_proto::parse_ldap_filter_str;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    fn base() -> Dn {
        Dn::parse("dc=example,dc=com").unwrap()
    }

    fn user(name: &str, uid: u32) -> User {
        User {
            id: UserId(Uuid::from_u128(u128::from(uid))),
            username: name.into(),
            full_name: Some(format!("{name} Van  Berg")),
            email: Some(format!("{name}@Example.com")),
            uid_number: uid,
            gid_number: 4000,
            disabled: uid % 2 == 1,
            attrs: BTreeMap::new(),
            created: 1_700_000_000,
            modified: 1_700_000_100,
            pwd_changed: None,
            cred_generation: 0,
        }
    }

    fn group(name: &str) -> Group {
        Group {
            id: GroupId(Uuid::from_u128(7)),
            name: name.into(),
            gid_number: 4000,
            description: None,
            created: 0,
            modified: 0,
        }
    }

    fn alice() -> Entry {
        user_entry(&base(), &user("alice", 2000), &[group("Admins")], false)
    }

    fn parse(s: &str) -> Filter {
        Filter::from_ldap(&parse_ldap_filter_str(s).unwrap_or_else(|e| panic!("{s}: {e:?}")))
    }

    fn eval(s: &str, e: &Entry) -> Truth {
        parse(s).evaluate(e, &NoChain)
    }

    fn is(s: &str, e: &Entry) -> bool {
        parse(s).matches(e, &NoChain)
    }

    #[test]
    fn case_insensitive_strings() {
        let e = alice();
        assert!(is("(cn=alice)", &e));
        assert!(is("(CN=ALICE)", &e));
        assert!(is("(commonName=Alice)", &e));
        assert!(is("(uid= alice )", &e));
        assert!(is("(mail=ALICE@example.COM)", &e));
        assert!(is("(displayName=\"alice van berg\")", &e));
        assert!(is("(displayName=\"ALICE   VAN BERG\")", &e));
        assert!(!is("(cn=bob)", &e));
        assert!(is("(cn~=ALICE)", &e));
        assert!(is("(objectClass=inetorgperson)", &e));
        assert!(is("(objectClass=2.16.840.1.113730.3.2.2)", &e));
        assert!(is("(objectclass=POSIXACCOUNT)", &e));
        assert!(!is("(objectClass=groupOfNames)", &e));
    }

    #[test]
    fn integers_compare_numerically() {
        let entries: Vec<Entry> = [999, 2000, 2005, 10000]
            .iter()
            .map(|n| user_entry(&base(), &user(&format!("u{n}"), *n), &[], false))
            .collect();
        let count = |f: &str| entries.iter().filter(|e| is(f, e)).count();
        // Lexically "999" > "2005" and "10000" < "2005"; numerically not.
        assert_eq!(count("(uidNumber>=2005)"), 2);
        assert_eq!(count("(uidNumber<=2000)"), 2);
        assert_eq!(count("(uidNumber<=999)"), 1);
        assert_eq!(count("(uidNumber>=1000)"), 3);
        assert_eq!(count("(uidNumber=02005)"), 1);
        assert_eq!(count("(uidNumber=2005)"), 1);
        assert_eq!(count("(&(uidNumber>=1000)(uidNumber<=9999))"), 2);
        assert_eq!(count("(gidNumber=4000)"), 4);
        // A non-numeric assertion is Undefined, and so is its negation.
        assert_eq!(eval("(uidNumber>=abc)", &entries[0]), Truth::Undefined);
        assert_eq!(eval("(uidNumber=12a)", &entries[0]), Truth::Undefined);
        assert_eq!(count("(!(uidNumber=abc))"), 0);
        // No ordering rule for strings.
        assert_eq!(eval("(cn>=a)", &entries[0]), Truth::Undefined);
        // Substring on an integer is Undefined.
        assert_eq!(eval("(uidNumber=20*)", &entries[1]), Truth::Undefined);
    }

    #[test]
    fn dns_compare_normalised() {
        let e = alice();
        assert!(is(
            "(memberOf=\"cn=admins,ou=groups,dc=example,dc=com\")",
            &e
        ));
        assert!(is(
            "(memberOf=\"CN=Admins, OU=Groups, DC=Example, DC=Com\")",
            &e
        ));
        assert!(is(
            "(memberOf=\"2.5.4.3=admins,ou=groups,dc=example,dc=com\")",
            &e
        ));
        assert!(!is(
            "(memberOf=\"cn=users,ou=groups,dc=example,dc=com\")",
            &e
        ));
        assert_eq!(eval("(memberOf=\"not a dn\")", &e), Truth::Undefined);
        assert!(is("(entryDN=\"CN=alice,ou=users,dc=example,dc=com\")", &e));
        let g = group_entry(&base(), &group("devs"), &[user("Alice", 2000)], &[], &[]);
        assert!(is("(member=\"cn=ALICE,ou=users,dc=example,dc=com\")", &g));
        assert!(is("(memberUid=alice)", &g));
    }

    #[test]
    fn substrings() {
        let e = alice();
        assert!(is("(cn=ali*)", &e));
        assert!(is("(cn=*LIC*)", &e));
        assert!(is("(cn=*ce)", &e));
        assert!(is("(cn=a*i*e)", &e));
        assert!(is("(cn=a*l*i*c*e)", &e));
        assert!(!is("(cn=a*e*l)", &e));
        // initial and final must not overlap.
        assert!(!is("(cn=alic*ice)", &e));
        assert!(is("(displayName=\"alice van*\")", &e));
        assert!(is("(displayName=\"*van   berg\")", &e));
        assert!(is("(mail=*@EXAMPLE.com)", &e));
        assert!(!is("(mail=*@example.org)", &e));
        assert_eq!(eval("(memberOf=\"cn=*\")", &e), Truth::Undefined);
        assert_eq!(eval("(nosuch=a*)", &e), Truth::Undefined);
    }

    #[test]
    fn presence_and_unknowns() {
        let e = alice();
        assert!(is("(objectClass=*)", &e));
        assert!(is("(mail=*)", &e));
        assert!(is("(entryDN=*)", &e));
        assert!(!is("(givenName=*)", &e));
        assert!(!is("(userPassword=*)", &e));
        // Unknown attributes are Undefined: neither they nor their
        // negation match.
        assert_eq!(eval("(nosuch=*)", &e), Truth::Undefined);
        assert!(!is("(nosuch=x)", &e));
        assert!(!is("(!(nosuch=x))", &e));
        assert!(is("(!(cn=bob))", &e));
        assert!(!is("(!(cn=alice))", &e));
    }

    #[test]
    fn and_or_three_valued() {
        let e = alice();
        assert_eq!(eval("(|(nosuch=x)(cn=alice))", &e), Truth::True);
        assert_eq!(eval("(|(nosuch=x)(cn=bob))", &e), Truth::Undefined);
        assert_eq!(eval("(!(|(nosuch=x)(cn=bob)))", &e), Truth::Undefined);
        assert_eq!(eval("(&(nosuch=x)(cn=alice))", &e), Truth::Undefined);
        assert_eq!(eval("(&(nosuch=x)(cn=bob))", &e), Truth::False);
        assert!(is("(!(&(nosuch=x)(cn=bob)))", &e));
        assert!(is("(&(objectClass=person)(|(uid=alice)(mail=bob@x)))", &e));
        assert!(!is("(&(cn=alice)(cn=bob))", &e));
        assert_eq!(Filter::And(vec![]).evaluate(&e, &NoChain), Truth::True);
        assert_eq!(Filter::Or(vec![]).evaluate(&e, &NoChain), Truth::False);
    }

    #[test]
    fn booleans() {
        let e = alice(); // uid 2000 is even: active
        assert!(is("(ak-active=true)", &e));
        assert!(is("(ak-active=TRUE)", &e));
        assert!(is("(ak-superuser=FALSE)", &e));
        assert!(!is("(ak-superuser=TRUE)", &e));
        assert_eq!(eval("(ak-active=yes)", &e), Truth::Undefined);
        let disabled = user_entry(&base(), &user("bob", 2001), &[], true);
        assert!(is("(ak-active=false)", &disabled));
        assert!(is("(ak-superuser=true)", &disabled));
    }

    #[test]
    fn times() {
        // createTimestamp is 20231114221320Z.
        let e = alice();
        assert!(is("(createTimestamp=20231114221320Z)", &e));
        assert!(is("(createTimestamp>=20230101000000Z)", &e));
        assert!(is("(createTimestamp<=20231114221320Z)", &e));
        assert!(!is("(createTimestamp>=20231114221321Z)", &e));
        assert!(is("(createTimestamp=20231114231320+0100)", &e));
        assert!(is("(createTimestamp=20231114211320-01)", &e));
        assert!(is("(createTimestamp=20231114221320.000Z)", &e));
        assert!(is("(createTimestamp<=20231114221320.5Z)", &e));
        assert!(!is("(createTimestamp>=20231114221320,5Z)", &e));
        assert!(is("(createTimestamp>=2023111422Z)", &e));
        assert!(is("(createTimestamp<=2023111422.25Z)", &e)); // 22:15
        assert!(!is("(createTimestamp<=2023111422.2Z)", &e)); // 22:12
        assert!(is("(modifyTimestamp>=202311142214Z)", &e));
        assert_eq!(eval("(createTimestamp>=2023)", &e), Truth::Undefined);
        assert_eq!(
            eval("(createTimestamp>=20231340000000Z)", &e),
            Truth::Undefined
        );
        assert_eq!(
            eval("(createTimestamp>=20230230000000Z)", &e),
            Truth::Undefined
        );
        assert_eq!(parse_generalized_time("19700101000000Z"), Some(0));
        assert_eq!(
            parse_generalized_time("19700101000001.5Z"),
            Some(1_500_000_000)
        );
        assert_eq!(parse_generalized_time("19691231230000-0100"), Some(0));
        assert_eq!(parse_generalized_time("1970010100Zjunk"), None);
    }

    #[test]
    fn extensible_match() {
        let e = alice();
        assert!(is("(cn:caseExactMatch:=alice)", &e));
        assert!(!is("(cn:caseExactMatch:=Alice)", &e));
        assert!(is("(cn:2.5.13.2:=ALICE)", &e));
        assert!(is("(cn:=ALICE)", &e));
        assert!(is("(uidNumber:integerMatch:=02000)", &e));
        assert!(is(
            "(memberOf:distinguishedNameMatch:=\"CN=admins,OU=groups,DC=example,DC=com\")",
            &e
        ));
        assert!(is("(ak-active:booleanMatch:=true)", &e));
        // dnAttributes: the AVAs of the entry's DN count too.
        assert!(!is("(ou:=users)", &e));
        assert!(is("(ou:dn:=users)", &e));
        assert!(is("(ou:dn:caseIgnoreMatch:=USERS)", &e));
        assert!(is("(:dn:2.5.13.2:=users)", &e));
        assert!(!is("(:2.5.13.2:=users)", &e));
        assert!(is("(:caseIgnoreMatch:=\"alice van berg\")", &e));
        // Unknown rule, unknown type, incompatible rule: Undefined.
        assert_eq!(eval("(cn:1.2.3.4:=alice)", &e), Truth::Undefined);
        assert_eq!(eval("(nosuch:=alice)", &e), Truth::Undefined);
        assert_eq!(
            eval("(uidNumber:caseIgnoreMatch:=2000)", &e),
            Truth::Undefined
        );
    }

    struct Chain;
    impl InChain for Chain {
        fn member_of_in_chain(&self, entry: &Entry, group: &Dn) -> bool {
            entry.dn.first_value("cn") == Some("alice")
                && group == &Dn::parse("cn=staff,ou=groups,dc=example,dc=com").unwrap()
        }
        fn member_in_chain(&self, entry: &Entry, member: &Dn) -> bool {
            entry.dn.first_value("cn") == Some("staff") && member.first_value("cn") == Some("alice")
        }
    }

    #[test]
    fn in_chain() {
        let f =
            parse("(memberOf:1.2.840.113556.1.4.1941:=\"CN=Staff,ou=groups,dc=example,dc=com\")");
        assert!(matches!(&f, Filter::InChain { attr, .. } if attr.name == "memberOf"));
        let e = alice();
        assert!(!f.matches(&e, &NoChain));
        assert!(f.matches(&e, &Chain));
        let staff = group_entry(&base(), &group("staff"), &[], &[], &[]);
        let m = parse("(member:1.2.840.113556.1.4.1941:=\"cn=alice,ou=users,dc=example,dc=com\")");
        assert!(m.matches(&staff, &Chain));
        assert!(!m.matches(&e, &Chain));
        // Only member/memberOf, and only with a DN.
        assert!(matches!(
            parse("(cn:1.2.840.113556.1.4.1941:=x)"),
            Filter::Undefined
        ));
        assert!(matches!(
            parse("(memberOf:1.2.840.113556.1.4.1941:=\"not a dn\")"),
            Filter::Undefined
        ));
    }

    #[test]
    fn depth_is_bounded() {
        let leaf = LdapFilter::Equality("cn".into(), "alice".into());
        let nest = |n: usize| {
            let mut f = leaf.clone();
            for _ in 0..n {
                f = LdapFilter::Not(Box::new(f));
            }
            f
        };
        let e = alice();
        // 62 NOTs: within the bound, evaluates normally.
        assert!(Filter::from_ldap(&nest(62)).matches(&e, &NoChain));
        // Far beyond it: Undefined, never a match, even negated an even
        // number of times.
        for n in [64, 65, 1000] {
            let f = Filter::from_ldap(&nest(n));
            assert_eq!(f.evaluate(&e, &NoChain), Truth::Undefined, "{n}");
        }
    }

    #[test]
    fn conversion_resolves_types() {
        match parse("(CommonName=X)") {
            Filter::Equality(ty, v) => {
                assert_eq!(ty.name, "cn");
                assert_eq!(v.raw, "X");
            }
            other => panic!("{other:?}"),
        }
        let tagged = LdapFilter::Equality("cn;lang-en".into(), "x".into());
        assert!(matches!(Filter::from_ldap(&tagged), Filter::Undefined));
        assert!(matches!(parse("(nosuch=x)"), Filter::Undefined));
        match parse("(cn=\" Jo  HN*Sm ith*x \")") {
            Filter::Substring {
                initial,
                any,
                final_,
                ..
            } => {
                assert_eq!(initial.as_deref(), Some("jo hn"));
                assert_eq!(any, ["sm ith"]);
                assert_eq!(final_.as_deref(), Some("x"));
            }
            other => panic!("{other:?}"),
        }
    }
}
