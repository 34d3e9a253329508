//! The attribute types and object classes Portcullis serves, with the
//! syntax that decides how each is matched (RFC 4517).
//!
//! This is a static table: the server has a fixed schema, published in
//! `cn=subschema` (RFC 4512 §4.2) from the same definitions the filter
//! matcher uses, so what clients read is what the server does. It knows
//! nothing of entries or of the store.
//!
//! Layout:
//! - this file: the attribute type model ([`Syntax`], [`Usage`],
//!   [`AttributeType`]) and the lookups by name, alias or OID.
//! - `attributes`: the table of attribute types served.
//! - `classes`: the object classes served.
//! - `matching`: syntaxes and matching rules as published, the rules an
//!   extensible match may name, and the string folding they use.

mod attributes;
mod classes;
mod matching;

pub use classes::{object_class, object_classes, ClassKind, ObjectClass};
pub use matching::{
    fold_case_ignore, fold_case_ignore_string, fold_spaces, folds_to_ascii_lowercase,
    ldap_syntaxes, matching_rule_syntax, matching_rule_uses, matching_rules,
};

use attributes::ATTRIBUTE_TYPES;
use std::collections::HashMap;
use std::sync::OnceLock;

/// How values of an attribute compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// Directory string, IA5 string: case-insensitive, insignificant spaces
    /// folded (caseIgnoreMatch / caseIgnoreIA5Match).
    CaseIgnore,
    /// Compared exactly (e.g. entryUUID is case-insensitive hex, handled as
    /// CaseIgnore; this is for values that must not fold).
    CaseExact,
    /// Integers (uidNumber, gidNumber): numeric equality and ordering.
    Integer,
    /// Distinguished names (member, memberOf): compared after RFC 4514
    /// normalisation.
    Dn,
    /// GeneralizedTime (createTimestamp …): chronological ordering.
    GeneralizedTime,
    /// `TRUE` / `FALSE`.
    Boolean,
    /// Object identifiers and descriptors (objectClass): case-insensitive.
    Oid,
}

/// RFC 4512 §4.1.2 AttributeUsage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    UserApplications,
    DirectoryOperation,
    DsaOperation,
}

/// One attribute type of the schema.
#[derive(Debug)]
pub struct AttributeType {
    /// Canonical name, as sent to clients (e.g. `memberOf`).
    pub name: &'static str,
    /// Other names it answers to (lowercase not required), e.g. `uid` ↔ none,
    /// `cn` ↔ `commonName`.
    pub aliases: &'static [&'static str],
    pub oid: &'static str,
    pub syntax: Syntax,
    pub single_value: bool,
    /// Operational attributes are returned only when asked for by name or `+`.
    pub operational: bool,
    /// RFC 4512 usage, published in `cn=subschema`; anything but
    /// `UserApplications` makes the attribute operational.
    pub usage: Usage,
    /// The server computes it; clients cannot change it (published as
    /// NO-USER-MODIFICATION).
    pub no_user_modification: bool,
    /// Published EQUALITY rule (name).
    pub equality: &'static str,
    /// Published ORDERING rule, when values have an order.
    pub ordering: Option<&'static str>,
    /// Published SUBSTR rule, when substring assertions apply.
    pub substr: Option<&'static str>,
    /// Published LDAP syntax OID (RFC 4517 §3.3).
    pub syntax_oid: &'static str,
}

/// All attribute types served, in the order `cn=subschema` lists them.
pub fn attribute_types() -> &'static [AttributeType] {
    &ATTRIBUTE_TYPES
}

/// Longest name or OID in the table is well under this; longer inputs are
/// not looked up at all.
const MAX_NAME: usize = 64;

/// Lowercases an ASCII name into `buf` without allocating.
fn lower_key<'a>(name: &str, buf: &'a mut [u8; MAX_NAME]) -> Option<&'a str> {
    let bytes = name.as_bytes();
    if bytes.len() > MAX_NAME || !name.is_ascii() {
        return None;
    }
    let out = buf.get_mut(..bytes.len())?;
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = b.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}

/// FNV-1a: the name indexes are looked up several times per entry built,
/// with short keys from a fixed set, where SipHash's flood resistance buys
/// nothing and costs most of the lookup.
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type NameIndex = HashMap<String, &'static AttributeType, std::hash::BuildHasherDefault<Fnv>>;

fn attribute_index() -> &'static NameIndex {
    static INDEX: OnceLock<NameIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut map = NameIndex::default();
        for at in ATTRIBUTE_TYPES.iter() {
            map.insert(at.name.to_ascii_lowercase(), at);
            map.insert(at.oid.to_string(), at);
            for alias in at.aliases {
                map.insert(alias.to_ascii_lowercase(), at);
            }
        }
        map
    })
}

/// Looks up an attribute type by name, alias or OID, case-insensitively.
/// Attribute descriptions with options (`cn;lang-en`) are not known.
pub fn attribute(name: &str) -> Option<&'static AttributeType> {
    let mut buf = [0u8; MAX_NAME];
    let key = lower_key(name.trim(), &mut buf)?;
    attribute_index().get(key).copied()
}

/// Names `user set-attr` accepts (canonical names; aliases resolve to them).
const USER_SETTABLE: &[&str] = &[
    "sn",
    "givenName",
    "displayName",
    "mail",
    "loginShell",
    "homeDirectory",
    "gecos",
    "telephoneNumber",
    "mobile",
    "title",
    "employeeNumber",
    "departmentNumber",
    "l",
    "o",
    "description",
];

/// The attribute type for `name` if `user set-attr` may set it (e.g. `sn`,
/// `givenName`, `loginShell`, `telephoneNumber`, plus `displayName` and
/// `mail`, which map onto the user's full name and email). `None` for
/// attributes the server computes (uidNumber, memberOf, entryUUID, …) or
/// does not know.
pub fn user_settable(name: &str) -> Option<&'static AttributeType> {
    let at = attribute(name)?;
    USER_SETTABLE.contains(&at.name).then_some(at)
}

impl AttributeType {
    /// True when `name` is this type's name, an alias or its OID
    /// (case-insensitive).
    pub fn is_named(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
            || self.oid == name
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }

    /// RFC 4512 §4.1.2 AttributeTypeDescription, as listed in
    /// `attributeTypes` of `cn=subschema`.
    pub fn description(&self) -> String {
        let mut s = format!("( {} NAME ", self.oid);
        if self.aliases.is_empty() {
            s.push_str(&format!("'{}'", self.name));
        } else {
            s.push_str(&format!("( '{}'", self.name));
            for a in self.aliases {
                s.push_str(&format!(" '{a}'"));
            }
            s.push_str(" )");
        }
        s.push_str(&format!(" EQUALITY {}", self.equality));
        if let Some(o) = self.ordering {
            s.push_str(&format!(" ORDERING {o}"));
        }
        if let Some(sub) = self.substr {
            s.push_str(&format!(" SUBSTR {sub}"));
        }
        s.push_str(&format!(" SYNTAX {}", self.syntax_oid));
        if self.single_value {
            s.push_str(" SINGLE-VALUE");
        }
        if self.no_user_modification {
            s.push_str(" NO-USER-MODIFICATION");
        }
        match self.usage {
            Usage::UserApplications => {}
            Usage::DirectoryOperation => s.push_str(" USAGE directoryOperation"),
            Usage::DsaOperation => s.push_str(" USAGE dSAOperation"),
        }
        s.push_str(" )");
        s
    }
}

#[cfg(test)]
mod tests;
