//! Matching: the syntaxes and matching rules published in `cn=subschema`,
//! the rules an extensible match may name (RFC 4517 §4.2), and the string
//! folding of the case-ignore and case-exact rules.

use super::{attribute_types, Syntax};
use Syntax::*;

/// RFC 4512 §4.1.5 LDAPSyntaxDescriptions of the syntaxes used above.
pub fn ldap_syntaxes() -> &'static [&'static str] {
    &[
        "( 1.3.6.1.4.1.1466.115.121.1.3 DESC 'Attribute Type Description' )",
        "( 1.3.6.1.4.1.1466.115.121.1.7 DESC 'Boolean' )",
        "( 1.3.6.1.4.1.1466.115.121.1.12 DESC 'Distinguished Name' )",
        "( 1.3.6.1.4.1.1466.115.121.1.15 DESC 'Directory String' )",
        "( 1.3.6.1.4.1.1466.115.121.1.24 DESC 'Generalized Time' )",
        "( 1.3.6.1.4.1.1466.115.121.1.26 DESC 'IA5 String' )",
        "( 1.3.6.1.4.1.1466.115.121.1.27 DESC 'INTEGER' )",
        "( 1.3.6.1.4.1.1466.115.121.1.30 DESC 'Matching Rule Description' )",
        "( 1.3.6.1.4.1.1466.115.121.1.31 DESC 'Matching Rule Use Description' )",
        "( 1.3.6.1.4.1.1466.115.121.1.34 DESC 'Name And Optional UID' )",
        "( 1.3.6.1.4.1.1466.115.121.1.37 DESC 'Object Class Description' )",
        "( 1.3.6.1.4.1.1466.115.121.1.38 DESC 'OID' )",
        "( 1.3.6.1.4.1.1466.115.121.1.40 DESC 'Octet String' )",
        "( 1.3.6.1.4.1.1466.115.121.1.50 DESC 'Telephone Number' )",
        "( 1.3.6.1.4.1.1466.115.121.1.54 DESC 'LDAP Syntax Description' )",
        "( 1.3.6.1.4.1.1466.115.121.1.58 DESC 'Substring Assertion' )",
        "( 1.3.6.1.1.16.1 DESC 'UUID' )",
    ]
}

/// RFC 4512 §4.1.3 MatchingRuleDescriptions of the rules used above.
pub fn matching_rules() -> &'static [&'static str] {
    &[
        "( 2.5.13.0 NAME 'objectIdentifierMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.38 )",
        "( 2.5.13.1 NAME 'distinguishedNameMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )",
        "( 2.5.13.2 NAME 'caseIgnoreMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )",
        "( 2.5.13.4 NAME 'caseIgnoreSubstringsMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.58 )",
        "( 2.5.13.5 NAME 'caseExactMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )",
        "( 2.5.13.7 NAME 'caseExactSubstringsMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.58 )",
        "( 2.5.13.13 NAME 'booleanMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.7 )",
        "( 2.5.13.14 NAME 'integerMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 )",
        "( 2.5.13.15 NAME 'integerOrderingMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 )",
        "( 2.5.13.17 NAME 'octetStringMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )",
        "( 2.5.13.20 NAME 'telephoneNumberMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.50 )",
        "( 2.5.13.21 NAME 'telephoneNumberSubstringsMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.58 )",
        "( 2.5.13.23 NAME 'uniqueMemberMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.34 )",
        "( 2.5.13.27 NAME 'generalizedTimeMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.24 )",
        "( 2.5.13.28 NAME 'generalizedTimeOrderingMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.24 )",
        "( 2.5.13.30 NAME 'objectIdentifierFirstComponentMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.38 )",
        "( 1.3.6.1.4.1.1466.109.114.1 NAME 'caseExactIA5Match' SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )",
        "( 1.3.6.1.4.1.1466.109.114.2 NAME 'caseIgnoreIA5Match' SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )",
        "( 1.3.6.1.4.1.1466.109.114.3 NAME 'caseIgnoreIA5SubstringsMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.58 )",
        "( 1.3.6.1.1.16.2 NAME 'uuidMatch' SYNTAX 1.3.6.1.1.16.1 )",
        "( 1.3.6.1.1.16.3 NAME 'uuidOrderingMatch' SYNTAX 1.3.6.1.1.16.1 )",
    ]
}

/// `matchingRuleUse` values (RFC 4512 §4.1.4): for each matching rule, the
/// attribute types served whose EQUALITY, ORDERING or SUBSTR rule it is.
/// Rules no attribute type uses are left out.
pub fn matching_rule_uses() -> Vec<String> {
    matching_rules()
        .iter()
        .filter_map(|rule| {
            // "( <oid> NAME '<name>' SYNTAX … )"
            let mut words = rule.split_whitespace().skip(1);
            let oid = words.next()?;
            let name = words.nth(1)?.trim_matches('\'');
            let applies: Vec<&str> = attribute_types()
                .iter()
                .filter(|t| {
                    t.equality == name || t.ordering == Some(name) || t.substr == Some(name)
                })
                .map(|t| t.name)
                .collect();
            match applies.as_slice() {
                [] => None,
                [one] => Some(format!("( {oid} NAME '{name}' APPLIES {one} )")),
                many => Some(format!(
                    "( {oid} NAME '{name}' APPLIES ( {} ) )",
                    many.join(" $ ")
                )),
            }
        })
        .collect()
}

/// How a matching rule named in an extensible match compares, by name or
/// OID (RFC 4517 §4.2). `None` for rules this server does not implement.
pub fn matching_rule_syntax(rule: &str) -> Option<Syntax> {
    let rule = rule.trim();
    let known: &[(&str, &str, Syntax)] = &[
        ("caseIgnoreMatch", "2.5.13.2", CaseIgnore),
        (
            "caseIgnoreIA5Match",
            "1.3.6.1.4.1.1466.109.114.2",
            CaseIgnore,
        ),
        ("telephoneNumberMatch", "2.5.13.20", CaseIgnore),
        ("uuidMatch", "1.3.6.1.1.16.2", CaseIgnore),
        ("caseExactMatch", "2.5.13.5", CaseExact),
        ("caseExactIA5Match", "1.3.6.1.4.1.1466.109.114.1", CaseExact),
        ("octetStringMatch", "2.5.13.17", CaseExact),
        ("integerMatch", "2.5.13.14", Integer),
        ("distinguishedNameMatch", "2.5.13.1", Dn),
        ("uniqueMemberMatch", "2.5.13.23", Dn),
        ("generalizedTimeMatch", "2.5.13.27", GeneralizedTime),
        ("booleanMatch", "2.5.13.13", Boolean),
        ("objectIdentifierMatch", "2.5.13.0", Oid),
    ];
    known
        .iter()
        .find(|(name, oid, _)| name.eq_ignore_ascii_case(rule) || *oid == rule)
        .map(|(_, _, syntax)| *syntax)
}

/// True when `s` is printable ASCII without spaces (a name, a uid, a mail
/// address, an object class): [`fold_case_ignore`] then yields its ASCII
/// lowercase, so it may be compared byte by byte.
pub fn folds_to_ascii_lowercase(s: &str) -> bool {
    s.bytes().all(|b| (0x21..0x7f).contains(&b))
}

/// Folds a string for case-ignore matching (RFC 4518 in spirit): leading
/// and trailing whitespace dropped, inner runs collapsed to one space,
/// lowercased. Yields chars so comparisons need not allocate.
pub fn fold_case_ignore(s: &str) -> impl Iterator<Item = char> + '_ {
    fold_spaces(s).flat_map(char::to_lowercase)
}

/// Like [`fold_case_ignore`] without lowercasing (caseExactMatch).
pub fn fold_spaces(s: &str) -> impl Iterator<Item = char> + '_ {
    let mut prev_space = false;
    s.trim().chars().filter_map(move |c| {
        if c.is_whitespace() {
            if prev_space {
                None
            } else {
                prev_space = true;
                Some(' ')
            }
        } else {
            prev_space = false;
            Some(c)
        }
    })
}

/// [`fold_case_ignore`] collected into a `String`: for the names, uids
/// and addresses filters carry ([`folds_to_ascii_lowercase`]) one copy
/// lowercased in place instead of a string grown char by char.
pub fn fold_case_ignore_string(s: &str) -> String {
    if folds_to_ascii_lowercase(s) {
        return s.to_ascii_lowercase();
    }
    fold_case_ignore(s).collect()
}
