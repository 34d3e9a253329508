//! The attribute types served: constructors that give each syntax its
//! usual matching rules, and the table in the order `cn=subschema`
//! publishes it.

use super::{AttributeType, Syntax, Usage};

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
pub(super) static ATTRIBUTE_TYPES: [AttributeType; 56] = [
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
