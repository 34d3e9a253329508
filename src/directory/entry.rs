//! LDAP entries and the mapping from store records (DESIGN.md section 3).

use super::dn::Dn;
use super::schema::AttributeType;

/// One attribute of an entry with its values.
#[derive(Debug, Clone)]
pub struct Attribute {
    pub ty: &'static AttributeType,
    pub values: Vec<String>,
}

/// A directory entry as served.
#[derive(Debug, Clone)]
pub struct Entry {
    pub dn: Dn,
    pub attrs: Vec<Attribute>,
}
