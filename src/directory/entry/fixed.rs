//! The entries no store record backs: the suffix entry, `ou=users` and
//! `ou=groups`, the root DSE (RFC 4512 §5.1) and `cn=subschema`
//! (RFC 4512 §4.2).

use super::{push_operational, push_timestamps, strings, Entry};
use crate::directory::dn::{self, Dn};
use crate::directory::schema::{self, AttributeType};
use crate::directory::tree;
use crate::store::model;
use std::sync::OnceLock;

/// The suffix entry. Its object classes follow the type of its RDN:
/// `dc` → domain + dcObject, `o` → organization, `ou` →
/// organizationalUnit, anything else → extensibleObject.
pub fn base_entry(base: &Dn) -> Entry {
    let mut e = Entry::new(base.clone());
    let rdn_type = base
        .rdn()
        .and_then(|r| r.avas.first())
        .map(|a| dn::normalized_type(&a.attr));
    let (classes, structural): (&[&str], Option<&str>) = match rdn_type.as_deref() {
        Some("dc") => (&["top", "domain", "dcObject"], Some("domain")),
        Some("o") => (&["top", "organization"], Some("organization")),
        Some("ou") => (&["top", "organizationalUnit"], Some("organizationalUnit")),
        _ => (&["top", "extensibleObject"], None),
    };
    e.push("objectClass", strings(classes));
    // The naming attributes are present in the entry (RFC 4512 §2.3).
    if let Some(rdn) = base.rdn() {
        for ava in &rdn.avas {
            e.push_one(&ava.attr, ava.value.as_str());
        }
    }
    push_operational(&mut e, structural, true);
    e
}

fn ou_entry(dn: Dn, ou: &str) -> Entry {
    let mut e = Entry::new(dn);
    e.push("objectClass", strings(&["top", "organizationalUnit"]));
    e.push_one("ou", ou);
    push_operational(&mut e, Some("organizationalUnit"), true);
    e
}

/// `ou=users,<base>`.
pub fn users_ou_entry(base: &Dn) -> Entry {
    ou_entry(tree::users_ou(base), "users")
}

/// `ou=groups,<base>`.
pub fn groups_ou_entry(base: &Dn) -> Entry {
    ou_entry(tree::groups_ou(base), "groups")
}

/// RFC 4512 §5.1 feature: all operational attributes with `+` (RFC 3673).
const FEATURE_ALL_OPERATIONAL: &str = "1.3.6.1.4.1.4203.1.5.1";

/// The root DSE (RFC 4512 §5.1). Apart from objectClass its attributes are
/// operational, so a search with no attribute list shows objectClass only,
/// as OpenLDAP does; `+` or naming them shows them.
pub fn root_dse(base: &Dn, controls: &[&str], extensions: &[&str], vendor_version: &str) -> Entry {
    let mut e = Entry::new(Dn::root());
    e.push_one("objectClass", "top");
    e.push_one("namingContexts", base.to_string());
    e.push_one("defaultNamingContext", base.to_string());
    e.push_one("supportedLDAPVersion", "3");
    e.push("supportedControl", strings(controls));
    e.push("supportedExtension", strings(extensions));
    e.push_one("supportedFeatures", FEATURE_ALL_OPERATIONAL);
    e.push_one("subschemaSubentry", tree::subschema_dn().to_string());
    e.push_one("vendorName", "Portcullis");
    e.push_one("vendorVersion", vendor_version);
    e
}

/// `cn=subschema` (RFC 4512 §4.2): the attribute types, object classes,
/// syntaxes and matching rules served. Built once.
pub fn subschema_entry() -> Entry {
    static ENTRY: OnceLock<Entry> = OnceLock::new();
    ENTRY
        .get_or_init(|| {
            let mut e = Entry::new(tree::subschema_dn());
            e.push("objectClass", strings(&["top", "subentry", "subschema"]));
            e.push_one("cn", "subschema");
            e.push(
                "attributeTypes",
                schema::attribute_types()
                    .iter()
                    .map(AttributeType::description)
                    .collect(),
            );
            e.push(
                "objectClasses",
                schema::object_classes()
                    .map(schema::ObjectClass::description)
                    .collect(),
            );
            e.push("ldapSyntaxes", strings(schema::ldap_syntaxes()));
            e.push("matchingRules", strings(schema::matching_rules()));
            e.push("matchingRuleUse", schema::matching_rule_uses());
            // The schema is compiled in: it came into being with this
            // process. Directory Studio compares these to its cached copy.
            push_timestamps(&mut e, model::now(), model::now());
            push_operational(&mut e, Some("subentry"), false);
            e
        })
        .clone()
}
