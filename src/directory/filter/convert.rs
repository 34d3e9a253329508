//! Conversion of the wire form: attribute types resolved against the
//! schema, assertion values normalised for their syntax, and what cannot
//! be evaluated turned into [`Filter::Undefined`], once per search.

use super::{compatible, ordered, stringy, Filter, Value, IN_CHAIN_RULE, MAX_DEPTH};
use crate::directory::dn::Dn;
use crate::directory::schema::{self, AttributeType, Syntax};
use ldap3_proto::proto::{LdapFilter, LdapMatchingRuleAssertion, LdapSubstringFilter};

impl Filter {
    /// Converts the wire form. Never fails: what cannot be evaluated
    /// becomes [`Filter::Undefined`].
    pub fn from_ldap(f: &LdapFilter) -> Filter {
        convert(f, 0)
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
