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
//!
//! Layout:
//! - this file: the [`Filter`] type, assertion values and [`Truth`].
//! - `convert`: the wire form → [`Filter`] ([`Filter::from_ldap`]).
//! - `matching`: evaluation against an entry ([`Filter::evaluate`]) and
//!   the per-syntax normalisation and comparison of values.

mod convert;
mod matching;

use super::dn::Dn;
use super::entry::Entry;
use super::schema::{AttributeType, Syntax};
use matching::key_of;

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

#[cfg(test)]
mod tests;
