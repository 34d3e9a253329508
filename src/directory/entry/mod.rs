//! LDAP entries and the mapping from store records (DESIGN.md section 3).
//!
//! An [`Entry`] is what a search returns: a DN and attributes typed by the
//! schema. The functions here turn store records (users, groups) into
//! entries, build the fixed entries (base, OUs, root DSE, `cn=subschema`)
//! and pick the attributes a search asked for (RFC 4511 §4.5.1.8). Pure
//! functions: the caller fetches records; nothing here touches the store,
//! and no secret is ever an attribute.
//!
//! Layout:
//! - this file: the `Entry` type, attribute selection ([`Requested`],
//!   [`Wanted`]) and the helpers every entry builder uses.
//! - `user`: user records → `cn=<username>,ou=users,<base>` entries.
//! - `group`: group records → `cn=<name>,ou=groups,<base>` entries.
//! - `fixed`: the entries no record backs: the base, the OUs, the root
//!   DSE and `cn=subschema`.

mod fixed;
mod group;
mod user;

pub use fixed::{base_entry, groups_ou_entry, root_dse, subschema_entry, users_ou_entry};
pub use group::{group_entry, group_entry_named};
pub use user::{push_user_attrs, user_entry, user_entry_for, user_entry_with, user_name_entry};

use super::dn::Dn;
use super::schema::{self, AttributeType};
use super::tree;
use crate::store::model::Timestamp;

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

/// The attribute types no entry may carry, whatever a caller pushes (an
/// [`AttrSink`] that is not an [`Entry`] drops them too).
pub fn forbidden(ty: &AttributeType) -> bool {
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
        if let Some(ty) = schema::attribute(name) {
            self.push_ty(ty, values);
        }
    }

    /// [`Entry::push`] of a type already resolved (entry builders resolve
    /// theirs once, not for every entry).
    pub fn push_ty(&mut self, ty: &'static AttributeType, values: Vec<String>) {
        if values.is_empty() || forbidden(ty) {
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
    /// under its canonical name; `entryDN` gives the entry's DN (RFC
    /// 5020); unknown names are ignored, `dn` among them: the DN is the
    /// entry's name, not an attribute, and an attribute called `dn` would
    /// make LDIF output invalid (RFC 2849: `dn:` only opens a record). With `types_only` the value lists are
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

    /// [`Entry::into_selected_as`] borrowed: the selected attributes in
    /// the same order, each as its canonical name and values (for an
    /// encoder that writes them straight from the entry), and the name of
    /// entryDN when it is virtual, whose value is the entry's DN.
    pub fn selected_as(
        &self,
        requested: &Requested,
    ) -> (Vec<(&'static str, &[String])>, Option<&'static str>) {
        let sel = self.selection_of(requested);
        let kept = self
            .attrs
            .iter()
            .zip(sel.keep)
            .filter(|(_, keep)| *keep)
            .map(|(a, _)| (a.ty.name, a.values.as_slice()))
            .collect();
        (kept, sel.entry_dn.map(|t| t.name))
    }

    fn selection(&self, requested: &[String]) -> Selection {
        self.selection_of(&Requested::parse(requested))
    }

    fn selection_of(&self, req: &Requested) -> Selection {
        let keep = self.attrs.iter().map(|a| req.keeps(a.ty)).collect();
        // entryDN is virtual (RFC 5020): every entry has one when asked by
        // name, stored or not.
        let entry_dn = req
            .entry_dn
            .filter(|entry_dn| self.attr_of(entry_dn).is_none());
        Selection { keep, entry_dn }
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
    }
}

/// A search's attribute list, parsed ([`Entry::select`] says how).
#[derive(Clone)]
pub struct Requested {
    all_user: bool,
    all_operational: bool,
    named: Vec<&'static AttributeType>,
    /// entryDN named.
    entry_dn: Option<&'static AttributeType>,
}

impl Requested {
    /// True when an attribute of type `ty` an entry holds is returned.
    pub fn keeps(&self, ty: &AttributeType) -> bool {
        let by_class = if ty.operational {
            self.all_operational
        } else {
            self.all_user
        };
        by_class || self.named.iter().any(|n| std::ptr::eq(*n, ty))
    }

    /// The entryDN type when it is asked for by name: an entry that does
    /// not hold it returns it anyway, last, with the entry's DN as its
    /// value (RFC 5020).
    pub fn entry_dn(&self) -> Option<&'static AttributeType> {
        self.entry_dn
    }

    pub fn parse(requested: &[String]) -> Requested {
        let mut r = Requested {
            all_user: requested.is_empty(),
            all_operational: false,
            named: Vec::new(),
            entry_dn: None,
        };
        for name in requested {
            match name.trim() {
                "*" => r.all_user = true,
                "+" => r.all_operational = true,
                // "1.1" means no attributes; beside other names it is ignored.
                "1.1" => {}
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

    /// The attributes an entry is built with for this list (`1.1`, `dn`
    /// and unknown names need no stored attribute), to which a search
    /// adds what its filter reads.
    pub fn wanted(&self) -> Wanted {
        let mut w = Wanted {
            all_user: self.all_user,
            all_operational: self.all_operational,
            named: Vec::with_capacity(self.named.len()),
            user_extra: false,
        };
        for ty in &self.named {
            w.add(ty);
        }
        w
    }
}

/// Which attributes of an entry a search returns.
struct Selection {
    /// Per attribute of the entry, in order.
    keep: Vec<bool>,
    /// entryDN asked for by name and not stored.
    entry_dn: Option<&'static AttributeType>,
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

/// `cn=<value>,<parent>` in the RFC 4514 string form that
/// `parent.child("cn", value).to_string()` gives, without building the DN.
pub(crate) fn child_dn_string(value: &str, parent: &str) -> String {
    let mut s = String::with_capacity(value.len() + 4 + parent.len());
    push_child_dn(&mut s, value, parent);
    s
}

/// Appends [`child_dn_string`] to `out`.
pub(crate) fn push_child_dn(out: &mut String, value: &str, parent: &str) {
    use std::fmt::Write;
    // Writing to a String cannot fail.
    let _ = write!(out, "{}", super::dn::Ava::new("cn", value));
    if !parent.is_empty() {
        out.push(',');
        out.push_str(parent);
    }
}

/// Where an entry's attributes go as they are made: an [`Entry`], or an
/// encoder that writes a served entry out without building one (a search
/// over every user builds a million entries only to encode and drop them).
pub trait AttrSink {
    /// Adds `values` of `ty`, as [`Entry::push_ty`] does.
    fn push(&mut self, ty: &'static AttributeType, values: &[&str]);

    /// [`AttrSink::push`] of one value made for the entry (an entry takes
    /// it as it is, instead of a copy).
    fn push_owned(&mut self, ty: &'static AttributeType, value: String) {
        self.push(ty, &[&value]);
    }
}

/// The types a sink that writes an entry from its parts (without building
/// it) has taken, so it takes what the built entry would
/// ([`Entry::push_ty`]): no empty or forbidden attribute, and a type pushed
/// twice, which the built entry merges, marks the entry `repeated` (its
/// writer then builds it instead).
#[derive(Default)]
pub struct Pushed {
    types: Vec<&'static AttributeType>,
    repeated: bool,
}

impl Pushed {
    /// Starts the next entry.
    pub fn clear(&mut self) {
        self.types.clear();
        self.repeated = false;
    }

    /// Whether `values` of `ty` are the entry's to write: not empty, not
    /// forbidden, and the first push of `ty`.
    pub fn first(&mut self, ty: &'static AttributeType, values: &[&str]) -> bool {
        if values.is_empty() || forbidden(ty) {
            return false;
        }
        if self.has(ty) {
            self.repeated = true;
            return false;
        }
        self.types.push(ty);
        true
    }

    /// Whether `ty` was pushed.
    pub fn has(&self, ty: &AttributeType) -> bool {
        self.types.iter().any(|t| std::ptr::eq(*t, ty))
    }

    /// A type was pushed twice: build the entry.
    pub fn repeated(&self) -> bool {
        self.repeated
    }
}

impl AttrSink for Entry {
    fn push(&mut self, ty: &'static AttributeType, values: &[&str]) {
        self.push_ty(ty, values.iter().map(|v| (*v).to_string()).collect());
    }

    fn push_owned(&mut self, ty: &'static AttributeType, value: String) {
        self.push_ty(ty, vec![value]);
    }
}

/// The operational types every entry below the base carries, resolved
/// once (an export pushes them for each of a million users).
struct Operational {
    entry_dn: &'static AttributeType,
    structural_object_class: &'static AttributeType,
    has_subordinates: &'static AttributeType,
    subschema_subentry: &'static AttributeType,
    create_timestamp: &'static AttributeType,
    modify_timestamp: &'static AttributeType,
    /// [`tree::subschema_dn`], as a string.
    subschema_dn: String,
}

static OPERATIONAL: std::sync::LazyLock<Operational> = std::sync::LazyLock::new(|| {
    let ty = |name: &str| schema::attribute(name).expect("operational types are in the schema");
    Operational {
        entry_dn: ty("entryDN"),
        structural_object_class: ty("structuralObjectClass"),
        has_subordinates: ty("hasSubordinates"),
        subschema_subentry: ty("subschemaSubentry"),
        create_timestamp: ty("createTimestamp"),
        modify_timestamp: ty("modifyTimestamp"),
        subschema_dn: tree::subschema_dn().to_string(),
    }
});

/// The operational attributes every entry below the base carries.
fn push_operational(e: &mut Entry, structural: Option<&str>, has_subordinates: bool) {
    let dn = e.dn.to_string();
    push_operational_to(e, &dn, structural, has_subordinates);
}

/// [`push_operational`] of the entry named `dn`, into any sink.
fn push_operational_to(
    sink: &mut dyn AttrSink,
    dn: &str,
    structural: Option<&str>,
    has_subordinates: bool,
) {
    let o = &*OPERATIONAL;
    sink.push(o.entry_dn, &[dn]);
    if let Some(class) = structural {
        sink.push(o.structural_object_class, &[class]);
    }
    sink.push(o.has_subordinates, &[boolean(has_subordinates)]);
    sink.push(o.subschema_subentry, &[&o.subschema_dn]);
}

fn push_timestamps(sink: &mut dyn AttrSink, created: Timestamp, modified: Timestamp) {
    let o = &*OPERATIONAL;
    if let Some(t) = generalized_time(created) {
        sink.push_owned(o.create_timestamp, t);
    }
    if let Some(t) = generalized_time(modified) {
        sink.push_owned(o.modify_timestamp, t);
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
    /// Some named type is one a user's extra attributes may hold
    /// ([`user::is_user_extra`]): without it a user entry's extra
    /// attributes are not looked at.
    user_extra: bool,
}

impl Wanted {
    /// Every attribute.
    pub fn everything() -> Wanted {
        Wanted {
            all_user: true,
            all_operational: true,
            named: Vec::new(),
            user_extra: false,
        }
    }

    /// The attributes [`Entry::select`] returns for `requested`.
    pub fn selected(requested: &[String]) -> Wanted {
        Requested::parse(requested).wanted()
    }

    /// Adds every attribute.
    pub fn add_everything(&mut self) {
        self.all_user = true;
        self.all_operational = true;
    }

    pub fn add(&mut self, ty: &'static AttributeType) {
        if !self.named.iter().any(|n| std::ptr::eq(*n, ty)) {
            self.named.push(ty);
            self.user_extra |= user::is_user_extra(ty);
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

#[cfg(test)]
mod tests;
