//! LDAP entries and the mapping from store records (DESIGN.md section 3).
//!
//! An [`Entry`] is what a search returns: a DN and attributes typed by the
//! schema. The functions here turn store records (users, groups) into
//! entries, build the fixed entries (base, OUs, root DSE, `cn=subschema`)
//! and pick the attributes a search asked for (RFC 4511 §4.5.1.8). Pure
//! functions: the caller fetches records; nothing here touches the store,
//! and no secret is ever an attribute.

use super::dn::Dn;
use super::schema::{self, AttributeType};
use super::tree;
use crate::store::model::{self, Group, Timestamp, User};
use std::sync::OnceLock;

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

/// The attribute types no entry may carry, whatever a caller pushes.
fn forbidden(ty: &AttributeType) -> bool {
    ty.name == "userPassword"
}

impl Entry {
    /// An entry with no attributes.
    pub fn new(dn: Dn) -> Entry {
        Entry {
            dn,
            attrs: Vec::new(),
        }
    }

    /// Adds values to the attribute `name` (name, alias or OID), merging
    /// with values already present (duplicates dropped). Names the schema
    /// does not know, `userPassword`, and empty value lists are skipped.
    pub fn push(&mut self, name: &str, values: Vec<String>) {
        if values.is_empty() {
            return;
        }
        let Some(ty) = schema::attribute(name) else {
            return;
        };
        if forbidden(ty) {
            return;
        }
        match self.attrs.iter_mut().find(|a| std::ptr::eq(a.ty, ty)) {
            Some(existing) => {
                for v in values {
                    if !existing.values.contains(&v) {
                        existing.values.push(v);
                    }
                }
            }
            None => self.attrs.push(Attribute { ty, values }),
        }
    }

    /// [`Entry::push`] for one value.
    pub fn push_one(&mut self, name: &str, value: impl Into<String>) {
        self.push(name, vec![value.into()]);
    }

    /// The attribute `name` (name, alias or OID, case-insensitive).
    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        let ty = schema::attribute(name)?;
        self.attr_of(ty)
    }

    /// The attribute of type `ty`.
    pub fn attr_of(&self, ty: &AttributeType) -> Option<&Attribute> {
        self.attrs.iter().find(|a| std::ptr::eq(a.ty, ty))
    }

    /// The values of `name` (name, alias or OID, case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[String]> {
        self.attr(name).map(|a| a.values.as_slice())
    }

    /// True when the entry's objectClass lists `class` (name or OID,
    /// case-insensitive).
    pub fn has_object_class(&self, class: &str) -> bool {
        let wanted = schema::object_class(class);
        self.get("objectClass").is_some_and(|values| {
            values
                .iter()
                .any(|v| match (wanted, schema::object_class(v)) {
                    (Some(a), Some(b)) => std::ptr::eq(a, b),
                    _ => v.eq_ignore_ascii_case(class),
                })
        })
    }

    /// The attributes a search returns for `requested` (RFC 4511 §4.5.1.8):
    /// an empty list or `*` gives every user attribute, `+` every
    /// operational one (the two combine); `1.1` alone gives none; other
    /// names (name, alias or OID, case-insensitive) give that attribute
    /// under its canonical name; `dn` and `entryDN` give the entry's DN;
    /// unknown names are ignored. With `types_only` the value lists are
    /// empty. Attributes come in the entry's order.
    pub fn select(&self, requested: &[String], types_only: bool) -> Vec<(String, Vec<String>)> {
        let sel = self.selection(requested);
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for (a, keep) in self.attrs.iter().zip(&sel.keep) {
            if *keep {
                let values = if types_only {
                    Vec::new()
                } else {
                    a.values.clone()
                };
                out.push((a.ty.name.to_string(), values));
            }
        }
        self.push_virtual(&sel, types_only, &mut out);
        out
    }

    /// [`Entry::select`] that moves the values out instead of copying them
    /// (a served entry is dropped after it is encoded).
    pub fn into_selected(
        self,
        requested: &[String],
        types_only: bool,
    ) -> Vec<(String, Vec<String>)> {
        self.into_selected_as(&Requested::parse(requested), types_only)
    }

    /// [`Entry::into_selected`] with the request's attribute list parsed
    /// once for all the entries of a search.
    pub fn into_selected_as(
        self,
        requested: &Requested,
        types_only: bool,
    ) -> Vec<(String, Vec<String>)> {
        let sel = self.selection_of(requested);
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        let mut virtual_ = Vec::new();
        self.push_virtual(&sel, types_only, &mut virtual_);
        for (a, keep) in self.attrs.into_iter().zip(sel.keep) {
            if keep {
                let values = if types_only { Vec::new() } else { a.values };
                out.push((a.ty.name.to_string(), values));
            }
        }
        out.extend(virtual_);
        out
    }

    fn selection(&self, requested: &[String]) -> Selection {
        self.selection_of(&Requested::parse(requested))
    }

    fn selection_of(&self, req: &Requested) -> Selection {
        let keep = self
            .attrs
            .iter()
            .map(|a| {
                let by_class = if a.ty.operational {
                    req.all_operational
                } else {
                    req.all_user
                };
                by_class || req.named.iter().any(|n| std::ptr::eq(*n, a.ty))
            })
            .collect();
        // entryDN is virtual (RFC 5020): every entry has one when asked by
        // name, stored or not.
        let entry_dn = req
            .entry_dn
            .filter(|entry_dn| self.attr_of(entry_dn).is_none());
        Selection {
            keep,
            entry_dn,
            dn: req.dn,
        }
    }

    fn push_virtual(
        &self,
        sel: &Selection,
        types_only: bool,
        out: &mut Vec<(String, Vec<String>)>,
    ) {
        let values = |v: String| if types_only { Vec::new() } else { vec![v] };
        if let Some(entry_dn) = sel.entry_dn {
            out.push((entry_dn.name.to_string(), values(self.dn.to_string())));
        }
        if sel.dn {
            out.push(("dn".to_string(), values(self.dn.to_string())));
        }
    }
}

/// A search's attribute list, parsed ([`Entry::select`] says how).
pub struct Requested {
    all_user: bool,
    all_operational: bool,
    named: Vec<&'static AttributeType>,
    /// entryDN named.
    entry_dn: Option<&'static AttributeType>,
    /// The virtual `dn` named.
    dn: bool,
}

impl Requested {
    pub fn parse(requested: &[String]) -> Requested {
        let mut r = Requested {
            all_user: requested.is_empty(),
            all_operational: false,
            named: Vec::new(),
            entry_dn: None,
            dn: false,
        };
        for name in requested {
            match name.trim() {
                "*" => r.all_user = true,
                "+" => r.all_operational = true,
                // "1.1" means no attributes; beside other names it is ignored.
                "1.1" => {}
                n if n.eq_ignore_ascii_case("dn") => r.dn = true,
                n => {
                    if let Some(ty) = schema::attribute(n) {
                        r.named.push(ty);
                    }
                }
            }
        }
        r.entry_dn = schema::attribute("entryDN")
            .filter(|entry_dn| r.named.iter().any(|n| std::ptr::eq(*n, *entry_dn)));
        r
    }
}

/// Which attributes of an entry a search returns.
struct Selection {
    /// Per attribute of the entry, in order.
    keep: Vec<bool>,
    /// entryDN asked for by name and not stored.
    entry_dn: Option<&'static AttributeType>,
    /// The virtual `dn` asked for.
    dn: bool,
}

/// `TRUE` / `FALSE` (RFC 4517 §3.3.3).
fn boolean(b: bool) -> &'static str {
    if b {
        "TRUE"
    } else {
        "FALSE"
    }
}

/// Seconds since the epoch as GeneralizedTime `YYYYMMDDHHMMSSZ` (UTC);
/// `None` for instants outside years 0–9999.
pub fn generalized_time(ts: Timestamp) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(ts).ok()?;
    if !(0..=9999).contains(&t.year()) {
        return None;
    }
    Some(format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_string()).collect()
}

/// A value of `user.attrs` for the attribute `name`, whichever of its
/// names or OID the key uses; blank values count as unset.
fn user_attr<'a>(user: &'a User, name: &str) -> Option<&'a str> {
    let ty = schema::attribute(name)?;
    let exact = user.attrs.get(ty.name).map(String::as_str);
    let value = exact.or_else(|| {
        user.attrs
            .iter()
            .find(|(k, _)| ty.is_named(k))
            .map(|(_, v)| v.as_str())
    })?;
    (!value.trim().is_empty()).then_some(value)
}

/// Attributes of a user entry the server computes; `user.attrs` cannot
/// add to or override them.
const USER_COMPUTED: &[&str] = &[
    "objectClass",
    "cn",
    "uid",
    "sn",
    "givenName",
    "displayName",
    "mail",
    "memberOf",
    "member",
    "memberUid",
    "uniqueMember",
    "uidNumber",
    "gidNumber",
    "homeDirectory",
    "loginShell",
    "ak-active",
    "ak-superuser",
];

/// The operational attributes every entry below the base carries.
fn push_operational(e: &mut Entry, structural: Option<&str>, has_subordinates: bool) {
    e.push_one("entryDN", e.dn.to_string());
    if let Some(class) = structural {
        e.push_one("structuralObjectClass", class);
    }
    e.push_one("hasSubordinates", boolean(has_subordinates));
    e.push_one("subschemaSubentry", tree::subschema_dn().to_string());
}

fn push_timestamps(e: &mut Entry, created: Timestamp, modified: Timestamp) {
    if let Some(t) = generalized_time(created) {
        e.push_one("createTimestamp", t);
    }
    if let Some(t) = generalized_time(modified) {
        e.push_one("modifyTimestamp", t);
    }
}

/// Which attributes of an entry to build: what a search selects
/// (RFC 4511 §4.5.1.8) plus what its filter reads. An entry built for a
/// `Wanted` holds at least those attributes, so [`Entry::select`] and the
/// filter give the same answers as on the full entry; building only them
/// saves most of the work of a lookup that asks for three attributes.
#[derive(Debug, Clone)]
pub struct Wanted {
    all_user: bool,
    all_operational: bool,
    named: Vec<&'static AttributeType>,
}

impl Wanted {
    /// Every attribute.
    pub fn everything() -> Wanted {
        Wanted {
            all_user: true,
            all_operational: true,
            named: Vec::new(),
        }
    }

    /// The attributes [`Entry::select`] returns for `requested`.
    pub fn selected(requested: &[String]) -> Wanted {
        let mut w = Wanted {
            all_user: requested.is_empty(),
            all_operational: false,
            named: Vec::new(),
        };
        for r in requested {
            match r.trim() {
                "*" => w.all_user = true,
                "+" => w.all_operational = true,
                // `1.1`, `dn` and unknown names need no stored attribute.
                r => {
                    if let Some(ty) = schema::attribute(r) {
                        w.add(ty);
                    }
                }
            }
        }
        w
    }

    /// Adds every attribute.
    pub fn add_everything(&mut self) {
        self.all_user = true;
        self.all_operational = true;
    }

    pub fn add(&mut self, ty: &'static AttributeType) {
        if !self.named.iter().any(|n| std::ptr::eq(*n, ty)) {
            self.named.push(ty);
        }
    }

    pub fn wants(&self, ty: &AttributeType) -> bool {
        let by_class = if ty.operational {
            self.all_operational
        } else {
            self.all_user
        };
        by_class || self.named.iter().any(|n| std::ptr::eq(*n, ty))
    }

    /// True when nothing but cn and uid (both the username) is wanted.
    pub fn only_names(&self) -> bool {
        !self.all_user
            && !self.all_operational
            && self.named.iter().all(|t| t.name == "cn" || t.name == "uid")
    }

    /// [`Wanted::wants`] by name, alias or OID; false for unknown names.
    pub fn wants_name(&self, name: &str) -> bool {
        if !self.all_user && !self.all_operational {
            // Only the named types: comparing with their few names costs
            // less than resolving `name` (an entry builder asks about
            // every attribute it could build, and a lookup by key wants
            // two or three of them).
            let name = name.trim();
            return self.named.iter().any(|t| {
                t.name.eq_ignore_ascii_case(name)
                    || t.oid == name
                    || t.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
            });
        }
        schema::attribute(name).is_some_and(|ty| self.wants(ty))
    }
}

/// A user as `cn=<username>,ou=users,<base>` (DESIGN.md section 3).
/// `groups` are the groups served as memberOf (the direct ones unless the
/// directory serves transitive memberOf); `superuser` is served as
/// `ak-superuser`.
pub fn user_entry(base: &Dn, user: &User, groups: &[Group], superuser: bool) -> Entry {
    user_entry_for(base, user, groups, superuser, &Wanted::everything())
}

/// [`user_entry`] with only the attributes in `wanted` (`groups` and
/// `superuser` are read only when memberOf and ak-superuser are wanted).
pub fn user_entry_for(
    base: &Dn,
    user: &User,
    groups: &[Group],
    superuser: bool,
    wanted: &Wanted,
) -> Entry {
    let want = |name: &str| wanted.wants_name(name);
    let name = user.username.as_str();
    let mut e = Entry::new(tree::user_dn(base, name));
    if want("objectClass") {
        e.push(
            "objectClass",
            strings(&[
                "top",
                "person",
                "organizationalPerson",
                "inetOrgPerson",
                "posixAccount",
            ]),
        );
    }
    if want("cn") {
        e.push_one("cn", name);
    }
    if want("uid") {
        e.push_one("uid", name);
    }
    let full_name = user.full_name.as_deref().filter(|n| !n.trim().is_empty());
    if want("sn") {
        let sn = user_attr(user, "sn")
            .or_else(|| full_name.and_then(|n| n.split_whitespace().last()))
            .unwrap_or(name);
        e.push_one("sn", sn);
    }
    if want("givenName") {
        if let Some(given) = user_attr(user, "givenName") {
            e.push_one("givenName", given);
        }
    }
    if want("displayName") {
        if let Some(full) = full_name {
            e.push_one("displayName", full);
        }
    }
    if want("mail") {
        if let Some(mail) = user.email.as_deref().filter(|m| !m.trim().is_empty()) {
            e.push_one("mail", mail);
        }
    }
    if want("memberOf") && !groups.is_empty() {
        let groups_ou = tree::groups_ou(base).to_string();
        e.push(
            "memberOf",
            groups
                .iter()
                .map(|g| child_dn_string(&g.name, &groups_ou))
                .collect(),
        );
    }
    if want("uidNumber") {
        e.push_one("uidNumber", user.uid_number.to_string());
    }
    if want("gidNumber") {
        e.push_one("gidNumber", user.gid_number.to_string());
    }
    if want("homeDirectory") {
        let home = user_attr(user, "homeDirectory")
            .map(str::to_string)
            .unwrap_or_else(|| format!("/home/{name}"));
        e.push_one("homeDirectory", home);
    }
    if want("loginShell") {
        e.push_one(
            "loginShell",
            user_attr(user, "loginShell").unwrap_or("/bin/bash"),
        );
    }
    for (key, value) in &user.attrs {
        let Some(ty) = schema::attribute(key) else {
            continue;
        };
        if ty.operational
            || USER_COMPUTED.contains(&ty.name)
            || value.trim().is_empty()
            || !wanted.wants(ty)
        {
            continue;
        }
        e.push_one(ty.name, value.as_str());
    }
    if want("ak-active") {
        e.push_one("ak-active", boolean(!user.disabled));
    }
    if want("ak-superuser") {
        e.push_one("ak-superuser", boolean(superuser));
    }
    if want("entryUUID") {
        e.push_one("entryUUID", user.id.0.hyphenated().to_string());
    }
    if want("createTimestamp") || want("modifyTimestamp") {
        push_timestamps(&mut e, user.created, user.modified);
    }
    if want("pwdChangedTime") {
        if let Some(t) = user.pwd_changed.and_then(generalized_time) {
            e.push_one("pwdChangedTime", t);
        }
    }
    if wanted.all_operational || wanted.named.iter().any(|t| t.operational) {
        push_operational(&mut e, Some("inetOrgPerson"), false);
    }
    e
}

/// A user entry carrying only what [`Wanted::only_names`] allows: cn and
/// uid, which are the username.
pub fn user_name_entry(base: &Dn, username: &str, wanted: &Wanted) -> Entry {
    let mut e = Entry::new(tree::user_dn(base, username));
    for name in ["cn", "uid"] {
        if wanted.wants_name(name) {
            e.push_one(name, username);
        }
    }
    e
}

/// A group as `cn=<name>,ou=groups,<base>` (DESIGN.md section 3). `users`
/// and `child_groups` are its direct members; `parents` the groups it is a
/// direct member of.
pub fn group_entry(
    base: &Dn,
    group: &Group,
    users: &[User],
    child_groups: &[Group],
    parents: &[Group],
) -> Entry {
    let names: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
    group_entry_named(base, group, &names, child_groups, parents)
}

/// `cn=<value>,<parent>` in the RFC 4514 string form that
/// `parent.child("cn", value).to_string()` gives, without building the DN.
fn child_dn_string(value: &str, parent: &str) -> String {
    let rdn = super::dn::Ava::new("cn", value).to_string();
    if parent.is_empty() {
        rdn
    } else {
        let mut s = String::with_capacity(rdn.len() + 1 + parent.len());
        s.push_str(&rdn);
        s.push(',');
        s.push_str(parent);
        s
    }
}

/// [`group_entry`] with its member users given by username only (what the
/// entry shows of them), in the order they are served.
pub fn group_entry_named(
    base: &Dn,
    group: &Group,
    usernames: &[&str],
    child_groups: &[Group],
    parents: &[Group],
) -> Entry {
    let mut e = Entry::new(tree::group_dn(base, &group.name));
    e.push(
        "objectClass",
        strings(&["top", "groupOfNames", "posixGroup"]),
    );
    e.push_one("cn", group.name.as_str());
    let users_ou = tree::users_ou(base).to_string();
    let groups_ou = tree::groups_ou(base).to_string();
    let members = usernames
        .iter()
        .map(|u| child_dn_string(u, &users_ou))
        .chain(
            child_groups
                .iter()
                .map(|g| child_dn_string(&g.name, &groups_ou)),
        )
        .collect();
    e.push("member", members);
    e.push(
        "memberUid",
        usernames.iter().map(|u| (*u).to_string()).collect(),
    );
    e.push_one("gidNumber", group.gid_number.to_string());
    e.push(
        "memberOf",
        parents
            .iter()
            .map(|g| child_dn_string(&g.name, &groups_ou))
            .collect(),
    );
    if let Some(d) = group
        .description
        .as_deref()
        .filter(|d| !d.trim().is_empty())
    {
        e.push_one("description", d);
    }
    e.push_one("entryUUID", group.id.0.hyphenated().to_string());
    push_timestamps(&mut e, group.created, group.modified);
    push_operational(&mut e, Some("groupOfNames"), false);
    e
}

/// The suffix entry. Its object classes follow the type of its RDN:
/// `dc` → domain + dcObject, `o` → organization, `ou` →
/// organizationalUnit, anything else → extensibleObject.
pub fn base_entry(base: &Dn) -> Entry {
    let mut e = Entry::new(base.clone());
    let rdn_type = base
        .rdn()
        .and_then(|r| r.avas.first())
        .map(|a| super::dn::normalized_type(&a.attr));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::{GroupId, UserId};
    use std::collections::BTreeMap;
    use uuid::Uuid;

    fn base() -> Dn {
        Dn::parse("dc=example,dc=com").unwrap()
    }

    pub(crate) fn alice() -> User {
        User {
            id: UserId(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)),
            username: "alice".into(),
            full_name: Some("Alice Van Der Berg".into()),
            email: Some("alice@example.com".into()),
            uid_number: 2001,
            gid_number: 4000,
            disabled: false,
            attrs: BTreeMap::new(),
            created: 1_700_000_000,
            modified: 1_700_000_100,
            pwd_changed: Some(1_700_000_050),
            cred_generation: 3,
        }
    }

    fn group(name: &str, gid: u32) -> Group {
        Group {
            id: GroupId(Uuid::from_u128(u128::from(gid))),
            name: name.into(),
            gid_number: gid,
            description: None,
            created: 0,
            modified: 86_400,
        }
    }

    #[test]
    fn wants_name_agrees_with_the_schema_for_every_spelling() {
        let lists: [&[&str]; 4] = [
            &["uid", "MAIL", " cn "],
            &["2.5.4.3", "memberof", "surname"],
            &["*"],
            &["+", "uid"],
        ];
        for list in lists {
            let requested: Vec<String> = list.iter().map(|s| s.to_string()).collect();
            let wanted = Wanted::selected(&requested);
            for ty in schema::attribute_types() {
                let mut spellings = vec![
                    ty.name.to_string(),
                    ty.name.to_ascii_uppercase(),
                    format!(" {} ", ty.name),
                    ty.oid.to_string(),
                ];
                spellings.extend(ty.aliases.iter().map(|a| a.to_ascii_lowercase()));
                for name in spellings {
                    assert_eq!(
                        wanted.wants_name(&name),
                        wanted.wants(ty),
                        "{name:?} for {list:?}"
                    );
                }
            }
            assert!(!wanted.wants_name("noSuchAttribute"));
        }
    }

    #[test]
    fn a_partly_built_entry_selects_like_the_full_one() {
        let mut u = alice();
        u.attrs.insert("telephoneNumber".into(), "+1 555".into());
        u.attrs.insert("givenName".into(), "Alice".into());
        let groups = [group("admins", 4000), group("staff", 4001)];
        let full = user_entry(&base(), &u, &groups, true);
        let requests: &[&[&str]] = &[
            &[],
            &["*"],
            &["+"],
            &["*", "+"],
            &["1.1"],
            &["cn", "mail", "uidNumber"],
            &["memberOf", "ak-superuser"],
            &["CN", "2.5.4.20", "entryDN", "dn"],
            &["createTimestamp", "pwdChangedTime", "entryUUID"],
            &["objectClass", "homeDirectory", "loginShell", "sn"],
            &["nosuchattribute"],
        ];
        for req in requests {
            let req: Vec<String> = req.iter().map(|s| s.to_string()).collect();
            let wanted = Wanted::selected(&req);
            let part = user_entry_for(&base(), &u, &groups, true, &wanted);
            for types_only in [false, true] {
                assert_eq!(
                    part.select(&req, types_only),
                    full.select(&req, types_only),
                    "{req:?}"
                );
                assert_eq!(
                    part.clone().into_selected(&req, types_only),
                    full.select(&req, types_only),
                    "{req:?}"
                );
            }
        }
    }

    #[test]
    fn a_names_only_entry_selects_like_the_full_one() {
        let u = alice();
        let full = user_entry(&base(), &u, &[], false);
        for req in [
            &["cn"][..],
            &["uid", "dn"],
            &["1.1"],
            &["CN", "2.5.4.3", "uid"],
        ] {
            let req: Vec<String> = req.iter().map(|s| s.to_string()).collect();
            let wanted = Wanted::selected(&req);
            assert!(wanted.only_names(), "{req:?}");
            let names = user_name_entry(&base(), &u.username, &wanted);
            assert_eq!(names.select(&req, false), full.select(&req, false));
        }
        for req in [
            &[][..],
            &["*"],
            &["cn", "mail"],
            &["+"],
            &["cn", "ak-active"],
            &["cn", "entryDN"],
        ] {
            let req: Vec<String> = req.iter().map(|s| s.to_string()).collect();
            assert!(!Wanted::selected(&req).only_names(), "{req:?}");
        }
    }

    #[test]
    fn member_dns_are_spelled_as_the_dn_type_spells_them() {
        let names = [
            "alice",
            "Bob Smith",
            "a,b",
            "a+b",
            " lead",
            "trail ",
            "#hash",
            "q\"uote",
            "semi;colon",
            "<angle>",
            "équipe",
        ];
        let users_ou = tree::users_ou(&base()).to_string();
        for n in names {
            assert_eq!(
                child_dn_string(n, &users_ou),
                tree::user_dn(&base(), n).to_string(),
                "{n}"
            );
        }
        assert_eq!(child_dn_string("x", ""), "cn=x");
    }

    fn one(e: &Entry, name: &str) -> String {
        match e.get(name) {
            Some([v]) => v.clone(),
            other => panic!("{name}: {other:?}"),
        }
    }

    fn sel(e: &Entry, req: &[&str], types_only: bool) -> Vec<(String, Vec<String>)> {
        let req: Vec<String> = req.iter().map(|s| s.to_string()).collect();
        e.select(&req, types_only)
    }

    fn names(v: &[(String, Vec<String>)]) -> Vec<&str> {
        v.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn user_mapping() {
        let groups = [group("admins", 4000), group("ldap-search", 4001)];
        let e = user_entry(&base(), &alice(), &groups, true);
        assert_eq!(e.dn.to_string(), "cn=alice,ou=users,dc=example,dc=com");
        assert_eq!(
            e.get("objectClass").unwrap(),
            [
                "top",
                "person",
                "organizationalPerson",
                "inetOrgPerson",
                "posixAccount"
            ]
        );
        assert!(e.has_object_class("inetorgperson"));
        assert!(e.has_object_class("1.3.6.1.1.1.2.0"));
        assert!(!e.has_object_class("groupOfNames"));
        assert_eq!(one(&e, "cn"), "alice");
        assert_eq!(one(&e, "uid"), "alice");
        assert_eq!(one(&e, "sn"), "Berg");
        assert_eq!(one(&e, "displayName"), "Alice Van Der Berg");
        assert_eq!(one(&e, "mail"), "alice@example.com");
        assert_eq!(
            e.get("memberOf").unwrap(),
            [
                "cn=admins,ou=groups,dc=example,dc=com",
                "cn=ldap-search,ou=groups,dc=example,dc=com"
            ]
        );
        assert_eq!(one(&e, "uidNumber"), "2001");
        assert_eq!(one(&e, "gidNumber"), "4000");
        assert_eq!(one(&e, "homeDirectory"), "/home/alice");
        assert_eq!(one(&e, "loginShell"), "/bin/bash");
        assert_eq!(one(&e, "ak-active"), "TRUE");
        assert_eq!(one(&e, "ak-superuser"), "TRUE");
        assert_eq!(one(&e, "entryUUID"), "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(one(&e, "createTimestamp"), "20231114221320Z");
        assert_eq!(one(&e, "modifyTimestamp"), "20231114221500Z");
        assert_eq!(one(&e, "pwdChangedTime"), "20231114221410Z");
        assert_eq!(one(&e, "entryDN"), "cn=alice,ou=users,dc=example,dc=com");
        assert_eq!(one(&e, "structuralObjectClass"), "inetOrgPerson");
        assert_eq!(one(&e, "hasSubordinates"), "FALSE");
        assert_eq!(one(&e, "subschemaSubentry"), "cn=subschema");
        assert!(e.get("givenName").is_none());
        assert!(e.get("userPassword").is_none());
    }

    #[test]
    fn user_mapping_fallbacks_and_attrs() {
        let mut u = alice();
        u.full_name = None;
        u.email = None;
        u.disabled = true;
        u.pwd_changed = None;
        let e = user_entry(&base(), &u, &[], false);
        assert_eq!(one(&e, "sn"), "alice");
        assert!(e.get("displayName").is_none());
        assert!(e.get("mail").is_none());
        assert!(e.get("memberOf").is_none());
        assert!(e.get("pwdChangedTime").is_none());
        assert_eq!(one(&e, "ak-active"), "FALSE");
        assert_eq!(one(&e, "ak-superuser"), "FALSE");

        let mut u = alice();
        for (k, v) in [
            ("sn", "Smith"),
            ("givenName", "Al"),
            ("loginShell", "/bin/zsh"),
            ("homeDirectory", "/srv/alice"),
            ("telephoneNumber", "+1 555 0100"),
            ("title", "Engineer"),
            ("gecos", "Alice,,,"),
            // Not allowed to override computed or operational values, and
            // never a password.
            ("uidNumber", "0"),
            ("ak-superuser", "TRUE"),
            ("memberOf", "cn=admins,ou=groups,dc=example,dc=com"),
            ("entryUUID", "x"),
            ("userPassword", "secret"),
            ("unknownAttr", "x"),
        ] {
            u.attrs.insert(k.into(), v.into());
        }
        let e = user_entry(&base(), &u, &[], false);
        assert_eq!(one(&e, "sn"), "Smith");
        assert_eq!(one(&e, "givenName"), "Al");
        assert_eq!(one(&e, "loginShell"), "/bin/zsh");
        assert_eq!(one(&e, "homeDirectory"), "/srv/alice");
        assert_eq!(one(&e, "telephoneNumber"), "+1 555 0100");
        assert_eq!(one(&e, "title"), "Engineer");
        assert_eq!(one(&e, "gecos"), "Alice,,,");
        assert_eq!(one(&e, "uidNumber"), "2001");
        assert_eq!(one(&e, "ak-superuser"), "FALSE");
        assert!(e.get("memberOf").is_none());
        assert_eq!(one(&e, "entryUUID"), "01234567-89ab-cdef-0123-456789abcdef");
        assert!(e.get("userPassword").is_none());
        for a in &e.attrs {
            assert!(
                !a.values.iter().any(|v| v.contains("secret")),
                "{}",
                a.ty.name
            );
        }
        // Alias keys resolve too.
        let mut u = alice();
        u.attrs.insert("surname".into(), "Jones".into());
        assert_eq!(one(&user_entry(&base(), &u, &[], false), "sn"), "Jones");
    }

    #[test]
    fn group_mapping() {
        let mut g = group("devs", 4002);
        g.description = Some("Developers".into());
        let mut bob = alice();
        bob.username = "bob".into();
        let e = group_entry(
            &base(),
            &g,
            &[alice(), bob],
            &[group("interns", 4003)],
            &[group("staff", 4004)],
        );
        assert_eq!(e.dn.to_string(), "cn=devs,ou=groups,dc=example,dc=com");
        assert_eq!(
            e.get("objectClass").unwrap(),
            ["top", "groupOfNames", "posixGroup"]
        );
        assert_eq!(one(&e, "cn"), "devs");
        assert_eq!(
            e.get("member").unwrap(),
            [
                "cn=alice,ou=users,dc=example,dc=com",
                "cn=bob,ou=users,dc=example,dc=com",
                "cn=interns,ou=groups,dc=example,dc=com"
            ]
        );
        assert_eq!(e.get("memberUid").unwrap(), ["alice", "bob"]);
        assert_eq!(one(&e, "gidNumber"), "4002");
        assert_eq!(
            e.get("memberOf").unwrap(),
            ["cn=staff,ou=groups,dc=example,dc=com"]
        );
        assert_eq!(one(&e, "description"), "Developers");
        assert_eq!(one(&e, "createTimestamp"), "19700101000000Z");
        assert_eq!(one(&e, "modifyTimestamp"), "19700102000000Z");
        assert_eq!(one(&e, "structuralObjectClass"), "groupOfNames");
        assert_eq!(one(&e, "entryUUID"), "00000000-0000-0000-0000-000000000fa2");

        let empty = group_entry(&base(), &group("empty", 4005), &[], &[], &[]);
        assert!(empty.get("member").is_none());
        assert!(empty.get("memberUid").is_none());
        assert!(empty.get("description").is_none());
    }

    #[test]
    fn containers() {
        let b = base_entry(&base());
        assert_eq!(b.get("objectClass").unwrap(), ["top", "domain", "dcObject"]);
        assert_eq!(one(&b, "dc"), "example");
        assert_eq!(one(&b, "hasSubordinates"), "TRUE");
        assert_eq!(one(&b, "structuralObjectClass"), "domain");
        let o = base_entry(&Dn::parse("o=Acme").unwrap());
        assert_eq!(o.get("objectClass").unwrap(), ["top", "organization"]);
        assert_eq!(one(&o, "o"), "Acme");
        let ou = base_entry(&Dn::parse("ou=Dir,o=Acme").unwrap());
        assert_eq!(
            ou.get("objectClass").unwrap(),
            ["top", "organizationalUnit"]
        );
        let other = base_entry(&Dn::parse("cn=dir").unwrap());
        assert_eq!(
            other.get("objectClass").unwrap(),
            ["top", "extensibleObject"]
        );
        assert_eq!(one(&other, "cn"), "dir");
        assert!(other.get("structuralObjectClass").is_none());

        let u = users_ou_entry(&base());
        assert_eq!(u.dn.to_string(), "ou=users,dc=example,dc=com");
        assert_eq!(one(&u, "ou"), "users");
        assert_eq!(u.get("objectClass").unwrap(), ["top", "organizationalUnit"]);
        assert_eq!(one(&u, "hasSubordinates"), "TRUE");
        let g = groups_ou_entry(&base());
        assert_eq!(g.dn.to_string(), "ou=groups,dc=example,dc=com");
        assert_eq!(one(&g, "ou"), "groups");
    }

    #[test]
    fn root_dse_selection() {
        let e = root_dse(
            &base(),
            &["1.2.840.113556.1.4.319"],
            &["1.3.6.1.4.1.4203.1.11.3"],
            "0.1.0",
        );
        assert!(e.dn.is_root());
        // No attribute list: only objectClass, as OpenLDAP does.
        assert_eq!(names(&sel(&e, &[], false)), ["objectClass"]);
        let plus = sel(&e, &["+"], false);
        assert_eq!(
            names(&plus),
            [
                "namingContexts",
                "defaultNamingContext",
                "supportedLDAPVersion",
                "supportedControl",
                "supportedExtension",
                "supportedFeatures",
                "subschemaSubentry",
                "vendorName",
                "vendorVersion"
            ]
        );
        assert_eq!(plus[0].1, ["dc=example,dc=com"]);
        assert_eq!(plus[2].1, ["3"]);
        assert_eq!(plus[7].1, ["Portcullis"]);
        assert_eq!(plus[8].1, ["0.1.0"]);
        let named = sel(&e, &["namingcontexts", "supportedLDAPVersion"], false);
        assert_eq!(names(&named), ["namingContexts", "supportedLDAPVersion"]);
        // No controls: the attribute is absent rather than empty.
        let bare = root_dse(&base(), &[], &[], "0");
        assert!(bare.get("supportedControl").is_none());
    }

    #[test]
    fn subschema() {
        let e = subschema_entry();
        assert_eq!(e.dn.to_string(), "cn=subschema");
        assert_eq!(names(&sel(&e, &[], false)), ["objectClass", "cn"]);
        let types = e.get("attributeTypes").unwrap();
        assert_eq!(types.len(), schema::attribute_types().len());
        assert!(types
            .iter()
            .any(|t| t.starts_with("( 2.5.4.3 NAME ( 'cn' 'commonName' )")));
        assert!(types
            .iter()
            .any(|t| t.contains("NAME 'memberOf'") && !t.contains("USAGE")));
        assert!(types
            .iter()
            .any(|t| t.contains("NAME 'namingContexts'") && t.contains("USAGE dSAOperation")));
        let classes = e.get("objectClasses").unwrap();
        for c in [
            "top",
            "person",
            "organizationalPerson",
            "inetOrgPerson",
            "posixAccount",
            "groupOfNames",
            "posixGroup",
            "organizationalUnit",
            "domain",
            "dcObject",
            "organization",
            "subschema",
            "subentry",
            "extensibleObject",
        ] {
            let needle = format!("NAME '{c}'");
            assert!(classes.iter().any(|d| d.contains(&needle)), "{c}");
        }
        assert!(e.get("ldapSyntaxes").is_some());
        assert!(e.get("matchingRules").is_some());
        // Directory Studio reads these three as well.
        let uses = e.get("matchingRuleUse").expect("matchingRuleUse");
        assert!(uses.iter().any(
            |u| u.starts_with("( 2.5.13.2 NAME 'caseIgnoreMatch' APPLIES (")
                && u.contains(" $ uid ")
        ));
        assert!(e.get("createTimestamp").is_some());
        assert!(e.get("modifyTimestamp").is_some());
    }

    #[test]
    fn select_rules() {
        let e = user_entry(&base(), &alice(), &[group("admins", 4000)], false);
        let all = names(&sel(&e, &[], false)).join(",");
        assert_eq!(
            all,
            "objectClass,cn,uid,sn,displayName,mail,memberOf,uidNumber,gidNumber,\
             homeDirectory,loginShell,ak-active,ak-superuser"
        );
        assert_eq!(names(&sel(&e, &["*"], false)).join(","), all);
        let ops = names(&sel(&e, &["+"], false)).join(",");
        assert_eq!(
            ops,
            "entryUUID,createTimestamp,modifyTimestamp,pwdChangedTime,entryDN,\
             structuralObjectClass,hasSubordinates,subschemaSubentry"
        );
        assert_eq!(sel(&e, &["*", "+"], false).len(), e.attrs.len());
        assert!(sel(&e, &["1.1"], false).is_empty());
        assert_eq!(names(&sel(&e, &["1.1", "cn"], false)), ["cn"]);
        // Names, aliases, OIDs and case; canonical names back; entry order.
        assert_eq!(
            names(&sel(
                &e,
                &["MAIL", "commonName", "2.5.4.4", "nosuch", "cn;x"],
                false
            )),
            ["cn", "sn", "mail"]
        );
        assert_eq!(names(&sel(&e, &["surname", "sn"], false)), ["sn"]);
        assert_eq!(names(&sel(&e, &["*", "entryUUID"], false)).len(), 14);
        let dn = sel(&e, &["dn", "entryDN"], false);
        assert_eq!(
            dn,
            [
                (
                    "entryDN".to_string(),
                    vec!["cn=alice,ou=users,dc=example,dc=com".to_string()]
                ),
                (
                    "dn".to_string(),
                    vec!["cn=alice,ou=users,dc=example,dc=com".to_string()]
                ),
            ]
        );
        // entryDN is virtual even where not stored.
        let mut bare = Entry::new(Dn::parse("cn=x").unwrap());
        bare.push_one("cn", "x");
        assert_eq!(sel(&bare, &["entrydn"], false)[0].1, ["cn=x"]);
        // typesOnly.
        let t = sel(&e, &["cn", "memberOf"], true);
        assert_eq!(
            t,
            [("cn".to_string(), vec![]), ("memberOf".to_string(), vec![])]
        );
    }

    #[test]
    fn push_rules() {
        let mut e = Entry::new(Dn::root());
        e.push("commonName", vec!["a".into()]);
        e.push("CN", vec!["b".into(), "a".into()]);
        e.push("nosuch", vec!["x".into()]);
        e.push("userPassword", vec!["secret".into()]);
        e.push("sn", vec![]);
        assert_eq!(e.attrs.len(), 1);
        assert_eq!(e.get("2.5.4.3").unwrap(), ["a", "b"]);
    }

    #[test]
    fn time_format() {
        assert_eq!(generalized_time(0).unwrap(), "19700101000000Z");
        assert_eq!(generalized_time(951_782_400).unwrap(), "20000229000000Z");
        assert!(generalized_time(i64::MAX).is_none());
    }
}
