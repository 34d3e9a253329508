//! The attribute types and object classes Portcullis serves, with the
//! syntax that decides how each is matched (RFC 4517).

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
}

/// Looks up an attribute type by name, alias or OID, case-insensitively.
#[allow(unused_variables, clippy::todo)]
pub fn attribute(name: &str) -> Option<&'static AttributeType> {
    todo!()
}

/// The attribute type for `name` if `user set-attr` may set it (e.g. `sn`,
/// `givenName`, `loginShell`, `telephoneNumber`, plus `displayName` and
/// `mail`, which map onto the user's full name and email). `None` for
/// attributes the server computes (uidNumber, memberOf, entryUUID, …) or
/// does not know.
#[allow(unused_variables, clippy::todo)]
pub fn user_settable(name: &str) -> Option<&'static AttributeType> {
    todo!()
}
