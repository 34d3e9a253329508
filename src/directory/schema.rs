//! The attribute types and object classes Portcullis serves, with the
//! syntax that decides how each is matched (RFC 4517).
//!
//! This is a static table: the server has a fixed schema, published in
//! `cn=subschema` (RFC 4512 §4.2) from the same definitions the filter
//! matcher uses, so what clients read is what the server does. It knows
//! nothing of entries or of the store.

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

// LDAP syntax OIDs (RFC 4517 §3.3, RFC 4530 for UUID).
const S_ATTR_TYPE_DESC: &str = "1.3.6.1.4.1.1466.115.121.1.3";
const S_BOOLEAN: &str = "1.3.6.1.4.1.1466.115.121.1.7";
const S_DN: &str = "1.3.6.1.4.1.1466.115.121.1.12";
const S_DIRECTORY_STRING: &str = "1.3.6.1.4.1.1466.115.121.1.15";
const S_GENERALIZED_TIME: &str = "1.3.6.1.4.1.1466.115.121.1.24";
const S_IA5_STRING: &str = "1.3.6.1.4.1.1466.115.121.1.26";
const S_INTEGER: &str = "1.3.6.1.4.1.1466.115.121.1.27";
const S_MATCHING_RULE_DESC: &str = "1.3.6.1.4.1.1466.115.121.1.30";
const S_MATCHING_RULE_USE_DESC: &str = "1.3.6.1.4.1.1466.115.121.1.31";
const S_NAME_AND_OPTIONAL_UID: &str = "1.3.6.1.4.1.1466.115.121.1.34";
const S_OBJECT_CLASS_DESC: &str = "1.3.6.1.4.1.1466.115.121.1.37";
const S_OID: &str = "1.3.6.1.4.1.1466.115.121.1.38";
const S_OCTET_STRING: &str = "1.3.6.1.4.1.1466.115.121.1.40";
const S_TELEPHONE_NUMBER: &str = "1.3.6.1.4.1.1466.115.121.1.50";
const S_LDAP_SYNTAX_DESC: &str = "1.3.6.1.4.1.1466.115.121.1.54";
const S_UUID: &str = "1.3.6.1.1.16.1";

/// A user attribute with the usual rules for its syntax.
const fn user(
    name: &'static str,
    aliases: &'static [&'static str],
    oid: &'static str,
    syntax: Syntax,
) -> AttributeType {
    let (equality, ordering, substr, syntax_oid) = match syntax {
        Syntax::CaseIgnore => (
            "caseIgnoreMatch",
            None,
            Some("caseIgnoreSubstringsMatch"),
            S_DIRECTORY_STRING,
        ),
        Syntax::CaseExact => (
            "caseExactMatch",
            None,
            Some("caseExactSubstringsMatch"),
            S_DIRECTORY_STRING,
        ),
        Syntax::Integer => (
            "integerMatch",
            Some("integerOrderingMatch"),
            None,
            S_INTEGER,
        ),
        Syntax::Dn => ("distinguishedNameMatch", None, None, S_DN),
        Syntax::GeneralizedTime => (
            "generalizedTimeMatch",
            Some("generalizedTimeOrderingMatch"),
            None,
            S_GENERALIZED_TIME,
        ),
        Syntax::Boolean => ("booleanMatch", None, None, S_BOOLEAN),
        Syntax::Oid => ("objectIdentifierMatch", None, None, S_OID),
    };
    AttributeType {
        name,
        aliases,
        oid,
        syntax,
        single_value: false,
        operational: false,
        usage: Usage::UserApplications,
        no_user_modification: false,
        equality,
        ordering,
        substr,
        syntax_oid,
    }
}

/// An IA5 string compared without case (mail, dc, the RFC 2307 strings).
const fn ia5(
    name: &'static str,
    aliases: &'static [&'static str],
    oid: &'static str,
) -> AttributeType {
    AttributeType {
        equality: "caseIgnoreIA5Match",
        substr: Some("caseIgnoreIA5SubstringsMatch"),
        syntax_oid: S_IA5_STRING,
        ..user(name, aliases, oid, Syntax::CaseIgnore)
    }
}

/// A telephone number. Matched as a case-ignore string (spaces folded);
/// published with the RFC 4519 rules.
const fn phone(
    name: &'static str,
    aliases: &'static [&'static str],
    oid: &'static str,
) -> AttributeType {
    AttributeType {
        equality: "telephoneNumberMatch",
        substr: Some("telephoneNumberSubstringsMatch"),
        syntax_oid: S_TELEPHONE_NUMBER,
        ..user(name, aliases, oid, Syntax::CaseIgnore)
    }
}

/// Marks an attribute single-valued.
const fn single(at: AttributeType) -> AttributeType {
    AttributeType {
        single_value: true,
        ..at
    }
}

/// An operational attribute the server maintains (RFC 4512 §3.4).
const fn operational(at: AttributeType, usage: Usage) -> AttributeType {
    AttributeType {
        operational: true,
        usage,
        no_user_modification: true,
        ..at
    }
}

/// A directoryOperation attribute.
const fn dir_op(at: AttributeType) -> AttributeType {
    operational(at, Usage::DirectoryOperation)
}

/// A dSAOperation attribute (root DSE).
const fn dsa_op(at: AttributeType) -> AttributeType {
    operational(at, Usage::DsaOperation)
}

/// A schema-description attribute of `cn=subschema` (RFC 4512 §4.2).
const fn schema_desc(
    name: &'static str,
    oid: &'static str,
    syntax_oid: &'static str,
) -> AttributeType {
    AttributeType {
        equality: "objectIdentifierFirstComponentMatch",
        substr: None,
        syntax_oid,
        ..dir_op(user(name, &[], oid, Syntax::CaseIgnore))
    }
}

use Syntax::*;

/// Every attribute type the server knows. Order is the order published in
/// `cn=subschema`.
static ATTRIBUTE_TYPES: [AttributeType; 56] = [
    // RFC 4512 §3.3
    user("objectClass", &[], "2.5.4.0", Oid),
    // RFC 4519
    user("cn", &["commonName"], "2.5.4.3", CaseIgnore),
    user("sn", &["surname"], "2.5.4.4", CaseIgnore),
    user("givenName", &["gn"], "2.5.4.42", CaseIgnore),
    user("uid", &["userid"], "0.9.2342.19200300.100.1.1", CaseIgnore),
    // RFC 2798
    single(user(
        "displayName",
        &[],
        "2.16.840.1.113730.3.1.241",
        CaseIgnore,
    )),
    // RFC 4524
    ia5("mail", &["rfc822Mailbox"], "0.9.2342.19200300.100.1.3"),
    // Active Directory's memberOf, served as a user attribute the way lldap
    // and authentik do, so `*` returns it.
    user("memberOf", &[], "1.2.840.113556.1.2.102", Dn),
    // RFC 4519
    user("member", &[], "2.5.4.31", Dn),
    // RFC 2307. memberUid, homeDirectory and loginShell are caseExactIA5Match
    // there; usernames are unique case-insensitively here, so they match and
    // are published without case.
    ia5("memberUid", &[], "1.3.6.1.1.1.1.12"),
    // RFC 4519; compared as a DN (the optional UID part is not used here).
    AttributeType {
        equality: "uniqueMemberMatch",
        syntax_oid: S_NAME_AND_OPTIONAL_UID,
        ..user("uniqueMember", &[], "2.5.4.50", Dn)
    },
    // RFC 2307
    single(user("uidNumber", &[], "1.3.6.1.1.1.1.0", Integer)),
    single(user("gidNumber", &[], "1.3.6.1.1.1.1.1", Integer)),
    single(ia5("homeDirectory", &[], "1.3.6.1.1.1.1.3")),
    single(ia5("loginShell", &[], "1.3.6.1.1.1.1.4")),
    single(ia5("gecos", &[], "1.3.6.1.1.1.1.2")),
    // RFC 4519
    user("description", &[], "2.5.4.13", CaseIgnore),
    user("ou", &["organizationalUnitName"], "2.5.4.11", CaseIgnore),
    single(ia5(
        "dc",
        &["domainComponent"],
        "0.9.2342.19200300.100.1.25",
    )),
    user("o", &["organizationName"], "2.5.4.10", CaseIgnore),
    phone("telephoneNumber", &[], "2.5.4.20"),
    // RFC 4524
    phone(
        "mobile",
        &["mobileTelephoneNumber"],
        "0.9.2342.19200300.100.1.41",
    ),
    // RFC 4519
    user("title", &[], "2.5.4.12", CaseIgnore),
    // RFC 2798
    single(user(
        "employeeNumber",
        &[],
        "2.16.840.1.113730.3.1.3",
        CaseIgnore,
    )),
    user(
        "departmentNumber",
        &[],
        "2.16.840.1.113730.3.1.2",
        CaseIgnore,
    ),
    // RFC 4519
    user("l", &["localityName"], "2.5.4.7", CaseIgnore),
    // RFC 2798 / RFC 4519 / RFC 4524: served only when an import keeps them
    // (`import.keep_attributes`); `user set-attr` does not set them.
    user("employeeType", &[], "2.16.840.1.113730.3.1.4", CaseIgnore),
    user("roomNumber", &[], "0.9.2342.19200300.100.1.6", CaseIgnore),
    user("carLicense", &[], "2.16.840.1.113730.3.1.1", CaseIgnore),
    user("initials", &[], "2.5.4.43", CaseIgnore),
    phone(
        "homePhone",
        &["homeTelephoneNumber"],
        "0.9.2342.19200300.100.1.20",
    ),
    single(user(
        "preferredLanguage",
        &[],
        "2.16.840.1.113730.3.1.39",
        CaseIgnore,
    )),
    // RFC 4519. Known so that filters and attribute lists naming it are
    // understood; it never appears in an entry (`Entry::push` refuses it).
    AttributeType {
        equality: "octetStringMatch",
        substr: None,
        syntax_oid: S_OCTET_STRING,
        ..user("userPassword", &[], "2.5.4.35", CaseExact)
    },
    // RFC 4530
    dir_op(single(AttributeType {
        equality: "uuidMatch",
        ordering: Some("uuidOrderingMatch"),
        substr: None,
        syntax_oid: S_UUID,
        ..user("entryUUID", &[], "1.3.6.1.1.16.4", CaseIgnore)
    })),
    // RFC 5020
    dir_op(single(user("entryDN", &[], "1.3.6.1.1.20", Dn))),
    // RFC 4512 §3.4
    dir_op(single(user(
        "createTimestamp",
        &[],
        "2.5.18.1",
        GeneralizedTime,
    ))),
    dir_op(single(user(
        "modifyTimestamp",
        &[],
        "2.5.18.2",
        GeneralizedTime,
    ))),
    // draft-behera-ldap-password-policy
    dir_op(single(user(
        "pwdChangedTime",
        &[],
        "1.3.6.1.4.1.42.2.27.8.1.16",
        GeneralizedTime,
    ))),
    // X.501 / RFC 4512 §3.4
    dir_op(single(user("structuralObjectClass", &[], "2.5.21.9", Oid))),
    dir_op(single(user("hasSubordinates", &[], "2.5.18.9", Boolean))),
    dir_op(single(user("subschemaSubentry", &[], "2.5.18.10", Dn))),
    // RFC 4512 §5.1 (root DSE)
    dsa_op(user(
        "namingContexts",
        &[],
        "1.3.6.1.4.1.1466.101.120.5",
        Dn,
    )),
    // Not standardised by an RFC (Active Directory and OpenLDAP serve it);
    // published under Portcullis's private arc, see `ak-active`.
    dsa_op(single(user(
        "defaultNamingContext",
        &[],
        "1.3.6.1.4.1.99999.1.3",
        Dn,
    ))),
    dsa_op(user(
        "supportedLDAPVersion",
        &[],
        "1.3.6.1.4.1.1466.101.120.15",
        Integer,
    )),
    dsa_op(user(
        "supportedControl",
        &[],
        "1.3.6.1.4.1.1466.101.120.13",
        Oid,
    )),
    dsa_op(user(
        "supportedExtension",
        &[],
        "1.3.6.1.4.1.1466.101.120.7",
        Oid,
    )),
    // RFC 4512 §5.1, feature OIDs of RFC 3674
    dsa_op(user(
        "supportedFeatures",
        &[],
        "1.3.6.1.4.1.4203.1.3.5",
        Oid,
    )),
    // RFC 3045
    dsa_op(single(AttributeType {
        equality: "caseExactIA5Match",
        substr: None,
        ..user("vendorName", &[], "1.3.6.1.1.4", CaseExact)
    })),
    dsa_op(single(AttributeType {
        equality: "caseExactIA5Match",
        substr: None,
        ..user("vendorVersion", &[], "1.3.6.1.1.5", CaseExact)
    })),
    // RFC 4512 §4.2 (subschema)
    schema_desc("attributeTypes", "2.5.21.5", S_ATTR_TYPE_DESC),
    schema_desc("objectClasses", "2.5.21.6", S_OBJECT_CLASS_DESC),
    schema_desc(
        "ldapSyntaxes",
        "1.3.6.1.4.1.1466.101.120.16",
        S_LDAP_SYNTAX_DESC,
    ),
    schema_desc("matchingRules", "2.5.21.4", S_MATCHING_RULE_DESC),
    schema_desc("matchingRuleUse", "2.5.21.8", S_MATCHING_RULE_USE_DESC),
    // authentik's flags, for clients configured against it. The OIDs are on
    // a private arc (1.3.6.1.4.1.99999 is not a registered enterprise
    // number); authentik itself publishes no OIDs for them.
    single(user("ak-active", &[], "1.3.6.1.4.1.99999.1.1", Boolean)),
    single(user("ak-superuser", &[], "1.3.6.1.4.1.99999.1.2", Boolean)),
];

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

/// [`fold_case_ignore`] collected into a `String`.
pub fn fold_case_ignore_string(s: &str) -> String {
    fold_case_ignore(s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_name_alias_oid_any_case() {
        let cn = attribute("cn").unwrap();
        assert!(std::ptr::eq(cn, attribute("CommonName").unwrap()));
        assert!(std::ptr::eq(cn, attribute("2.5.4.3").unwrap()));
        assert!(std::ptr::eq(cn, attribute(" CN ").unwrap()));
        assert_eq!(attribute("USERID").unwrap().name, "uid");
        assert_eq!(attribute("rfc822mailbox").unwrap().name, "mail");
        assert_eq!(attribute("memberof").unwrap().name, "memberOf");
        assert_eq!(attribute("AK-ACTIVE").unwrap().name, "ak-active");
        assert!(attribute("cn;lang-en").is_none());
        assert!(attribute("nosuchattr").is_none());
        assert!(attribute("").is_none());
        assert!(attribute(&"x".repeat(500)).is_none());
        assert!(attribute("ćn").is_none());
    }

    #[test]
    fn names_and_oids_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for at in attribute_types() {
            assert!(seen.insert(at.name.to_ascii_lowercase()), "{}", at.name);
            assert!(seen.insert(at.oid.to_string()), "{}", at.oid);
            for a in at.aliases {
                assert!(seen.insert(a.to_ascii_lowercase()), "{a}");
            }
            assert_eq!(at.operational, at.usage != Usage::UserApplications);
        }
        for oc in object_classes() {
            for name in oc.must.iter().chain(oc.may) {
                assert!(attribute(name).is_some(), "{} uses {name}", oc.name);
            }
            if let Some(sup) = oc.sup {
                assert!(object_class(sup).is_some());
            }
        }
    }

    #[test]
    fn syntaxes_and_flags() {
        assert_eq!(attribute("uidNumber").unwrap().syntax, Syntax::Integer);
        assert_eq!(attribute("gidNumber").unwrap().syntax, Syntax::Integer);
        assert_eq!(attribute("member").unwrap().syntax, Syntax::Dn);
        assert_eq!(attribute("memberOf").unwrap().syntax, Syntax::Dn);
        assert_eq!(attribute("uniqueMember").unwrap().syntax, Syntax::Dn);
        assert_eq!(
            attribute("modifyTimestamp").unwrap().syntax,
            Syntax::GeneralizedTime
        );
        assert_eq!(attribute("ak-superuser").unwrap().syntax, Syntax::Boolean);
        assert_eq!(attribute("objectClass").unwrap().syntax, Syntax::Oid);
        assert!(!attribute("memberOf").unwrap().operational);
        assert!(attribute("entryUUID").unwrap().operational);
        assert!(attribute("namingContexts").unwrap().operational);
        assert!(!attribute("objectClass").unwrap().operational);
    }

    #[test]
    fn settable() {
        assert_eq!(user_settable("surname").unwrap().name, "sn");
        assert_eq!(user_settable("loginshell").unwrap().name, "loginShell");
        assert_eq!(user_settable("mail").unwrap().name, "mail");
        for name in [
            "uidNumber",
            "memberOf",
            "entryUUID",
            "cn",
            "uid",
            "userPassword",
            "ak-active",
            "x",
        ] {
            assert!(user_settable(name).is_none(), "{name}");
        }
    }

    #[test]
    fn descriptions() {
        assert_eq!(
            attribute("cn").unwrap().description(),
            "( 2.5.4.3 NAME ( 'cn' 'commonName' ) EQUALITY caseIgnoreMatch \
             SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )"
        );
        assert_eq!(
            attribute("entryUUID").unwrap().description(),
            "( 1.3.6.1.1.16.4 NAME 'entryUUID' EQUALITY uuidMatch ORDERING uuidOrderingMatch \
             SYNTAX 1.3.6.1.1.16.1 SINGLE-VALUE NO-USER-MODIFICATION USAGE directoryOperation )"
        );
        assert_eq!(
            object_class("posixaccount").unwrap().description(),
            "( 1.3.6.1.1.1.2.0 NAME 'posixAccount' SUP top AUXILIARY MUST ( cn $ uid $ \
             uidNumber $ gidNumber $ homeDirectory ) MAY ( userPassword $ loginShell $ gecos $ \
             description ) )"
        );
        assert_eq!(
            object_class("2.5.6.0").unwrap().description(),
            "( 2.5.6.0 NAME 'top' ABSTRACT MUST objectClass )"
        );
    }

    #[test]
    fn folding() {
        assert_eq!(fold_case_ignore_string("  Foo   BAR\tbaz "), "foo bar baz");
        assert_eq!(fold_spaces(" A  B ").collect::<String>(), "A B");
        assert_eq!(matching_rule_syntax("2.5.13.14"), Some(Syntax::Integer));
        assert_eq!(
            matching_rule_syntax("CASEEXACTMATCH"),
            Some(Syntax::CaseExact)
        );
        assert_eq!(matching_rule_syntax("1.2.3"), None);
    }
}
