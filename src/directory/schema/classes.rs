//! The object classes served (RFC 4512 §4.1.1, RFC 4519, RFC 2307,
//! RFC 2798), their lookup and their published descriptions.

use super::{lower_key, MAX_NAME};
use std::collections::HashMap;
use std::sync::OnceLock;

/// RFC 4512 §4.1.1 ObjectClassKind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassKind {
    Abstract,
    Structural,
    Auxiliary,
}

/// One object class of the schema.
#[derive(Debug)]
pub struct ObjectClass {
    pub name: &'static str,
    pub oid: &'static str,
    pub sup: Option<&'static str>,
    pub kind: ClassKind,
    /// Required attributes (canonical names of served types).
    pub must: &'static [&'static str],
    /// Allowed attributes (canonical names of served types).
    pub may: &'static [&'static str],
}

const fn class(
    name: &'static str,
    oid: &'static str,
    sup: Option<&'static str>,
    kind: ClassKind,
    must: &'static [&'static str],
    may: &'static [&'static str],
) -> ObjectClass {
    ObjectClass {
        name,
        oid,
        sup,
        kind,
        must,
        may,
    }
}

use ClassKind::*;

/// The object classes served. MUST/MAY lists name only attribute types
/// this server defines, so the published schema is self-contained; the
/// standard classes list more optional types than shown here.
static OBJECT_CLASSES: [ObjectClass; 13] = [
    // RFC 4512 §2.4.1
    class("top", "2.5.6.0", None, Abstract, &["objectClass"], &[]),
    // RFC 4519
    class(
        "person",
        "2.5.6.6",
        Some("top"),
        Structural,
        &["sn", "cn"],
        &["userPassword", "telephoneNumber", "description"],
    ),
    class(
        "organizationalPerson",
        "2.5.6.7",
        Some("person"),
        Structural,
        &[],
        &["title", "telephoneNumber", "ou", "l", "description"],
    ),
    // RFC 2798
    class(
        "inetOrgPerson",
        "2.16.840.1.113730.3.2.2",
        Some("organizationalPerson"),
        Structural,
        &[],
        &[
            "carLicense",
            "departmentNumber",
            "displayName",
            "employeeNumber",
            "employeeType",
            "givenName",
            "homePhone",
            "initials",
            "mail",
            "mobile",
            "o",
            "preferredLanguage",
            "roomNumber",
            "uid",
        ],
    ),
    // RFC 2307
    class(
        "posixAccount",
        "1.3.6.1.1.1.2.0",
        Some("top"),
        Auxiliary,
        &["cn", "uid", "uidNumber", "gidNumber", "homeDirectory"],
        &["userPassword", "loginShell", "gecos", "description"],
    ),
    // RFC 4519. member is MUST there; empty groups are served without it,
    // as most directories do.
    class(
        "groupOfNames",
        "2.5.6.9",
        Some("top"),
        Structural,
        &["member", "cn"],
        &["ou", "o", "description"],
    ),
    // RFC 2307 makes posixGroup STRUCTURAL; it is published AUXILIARY here
    // (as in RFC 2307bis) because groups combine it with groupOfNames.
    class(
        "posixGroup",
        "1.3.6.1.1.1.2.2",
        Some("top"),
        Auxiliary,
        &["cn", "gidNumber"],
        &["userPassword", "memberUid", "description"],
    ),
    // RFC 4519
    class(
        "organizationalUnit",
        "2.5.6.5",
        Some("top"),
        Structural,
        &["ou"],
        &["description", "l", "telephoneNumber"],
    ),
    // RFC 4524
    class(
        "domain",
        "0.9.2342.19200300.100.4.13",
        Some("top"),
        Structural,
        &["dc"],
        &["description", "l", "o", "telephoneNumber"],
    ),
    // RFC 4519
    class(
        "dcObject",
        "1.3.6.1.4.1.1466.344",
        Some("top"),
        Auxiliary,
        &["dc"],
        &[],
    ),
    class(
        "organization",
        "2.5.6.4",
        Some("top"),
        Structural,
        &["o"],
        &["description", "l", "telephoneNumber"],
    ),
    // RFC 4512 §4.2. RFC 3672's subentry also requires
    // subtreeSpecification, which this server does not serve.
    class(
        "subschema",
        "2.5.20.1",
        None,
        Auxiliary,
        &[],
        &[
            "objectClasses",
            "attributeTypes",
            "matchingRules",
            "ldapSyntaxes",
        ],
    ),
    // RFC 4512 §4.3
    class(
        "extensibleObject",
        "1.3.6.1.4.1.1466.101.120.111",
        Some("top"),
        Auxiliary,
        &[],
        &[],
    ),
];

/// `subentry` (RFC 3672), the structural class of `cn=subschema`.
static SUBENTRY: ObjectClass = class(
    "subentry",
    "2.5.17.0",
    Some("top"),
    Structural,
    &["cn"],
    &[],
);

/// All object classes served, in the order `cn=subschema` lists them.
pub fn object_classes() -> impl Iterator<Item = &'static ObjectClass> {
    OBJECT_CLASSES.iter().chain(std::iter::once(&SUBENTRY))
}

fn class_index() -> &'static HashMap<String, &'static ObjectClass> {
    static INDEX: OnceLock<HashMap<String, &'static ObjectClass>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut map = HashMap::new();
        for oc in object_classes() {
            map.insert(oc.name.to_ascii_lowercase(), oc);
            map.insert(oc.oid.to_string(), oc);
        }
        map
    })
}

/// Looks up an object class by name or OID, case-insensitively.
pub fn object_class(name: &str) -> Option<&'static ObjectClass> {
    let mut buf = [0u8; MAX_NAME];
    let key = lower_key(name.trim(), &mut buf)?;
    class_index().get(key).copied()
}

fn oid_list(names: &[&str]) -> String {
    if let [one] = names {
        (*one).to_string()
    } else {
        format!("( {} )", names.join(" $ "))
    }
}

impl ObjectClass {
    /// RFC 4512 §4.1.1 ObjectClassDescription, as listed in
    /// `objectClasses` of `cn=subschema`.
    pub fn description(&self) -> String {
        let mut s = format!("( {} NAME '{}'", self.oid, self.name);
        if let Some(sup) = self.sup {
            s.push_str(&format!(" SUP {sup}"));
        }
        s.push_str(match self.kind {
            Abstract => " ABSTRACT",
            Structural => " STRUCTURAL",
            Auxiliary => " AUXILIARY",
        });
        if !self.must.is_empty() {
            s.push_str(&format!(" MUST {}", oid_list(self.must)));
        }
        if !self.may.is_empty() {
            s.push_str(&format!(" MAY {}", oid_list(self.may)));
        }
        s.push_str(" )");
        s
    }
}
