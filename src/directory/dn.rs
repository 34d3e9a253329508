//! Distinguished names per RFC 4514: parsing, normalising, escaping.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DN: {0}")]
pub struct DnError(pub String);

/// One attribute-value assertion of an RDN, e.g. `cn=alice`.
#[derive(Debug, Clone)]
pub struct Ava {
    /// Attribute type as written (descriptor or dotted OID).
    pub attr: String,
    /// Unescaped value.
    pub value: String,
}

/// A relative distinguished name: one or more AVAs joined by `+`.
#[derive(Debug, Clone)]
pub struct Rdn {
    pub avas: Vec<Ava>,
}

/// A parsed DN, leftmost (most specific) RDN first. Equality and hashing use
/// the normalised form: attribute types lowercased (and known aliases/OIDs
/// mapped to their primary name), values compared case-insensitively with
/// insignificant spaces removed.
#[derive(Debug, Clone)]
pub struct Dn {
    pub rdns: Vec<Rdn>,
}

#[allow(unused_variables, clippy::todo)]
impl Dn {
    /// Parses an RFC 4514 string. The empty string is the root DN.
    pub fn parse(s: &str) -> Result<Dn, DnError> {
        todo!()
    }
    /// The root DN (empty).
    pub fn root() -> Dn {
        Dn { rdns: Vec::new() }
    }
    pub fn is_root(&self) -> bool {
        self.rdns.is_empty()
    }
    /// `attr=value,<self>`.
    pub fn child(&self, attr: &str, value: &str) -> Dn {
        todo!()
    }
    /// The DN without its leftmost RDN; `None` for the root.
    pub fn parent(&self) -> Option<Dn> {
        todo!()
    }
    /// The value of the leftmost RDN if it is a single AVA of type `attr`
    /// (compared case-insensitively), e.g. `first_value("cn")` of
    /// `cn=alice,ou=users,…` is `alice`.
    pub fn first_value(&self, attr: &str) -> Option<&str> {
        todo!()
    }
    /// True when `self` equals `ancestor` or lies below it.
    pub fn ends_with(&self, ancestor: &Dn) -> bool {
        todo!()
    }
    /// Normalised string used for comparison and as a map key.
    pub fn normalized(&self) -> String {
        todo!()
    }
}

impl PartialEq for Dn {
    fn eq(&self, other: &Dn) -> bool {
        self.normalized() == other.normalized()
    }
}
impl Eq for Dn {}

impl std::hash::Hash for Dn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.normalized().hash(state)
    }
}

/// RFC 4514 string form, escaping values as section 2.4 requires.
impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = f;
        Ok(())
    }
}
