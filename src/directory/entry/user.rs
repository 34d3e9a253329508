//! User records as entries: `cn=<username>,ou=users,<base>` with the
//! inetOrgPerson and posixAccount attributes (DESIGN.md section 3), built
//! whole or only with the attributes a search wants.

use super::{boolean, child_dn_string, generalized_time, push_operational, push_timestamps};
use super::{strings, Entry, Wanted};
use crate::directory::dn::Dn;
use crate::directory::schema::{self, AttributeType};
use crate::directory::tree;
use crate::store::model::{Group, User};
use std::sync::LazyLock;

/// The attribute types a user entry is built from, resolved once: an
/// enumeration builds a million entries, each asking about all of them.
struct Types {
    object_class: &'static AttributeType,
    cn: &'static AttributeType,
    uid: &'static AttributeType,
    sn: &'static AttributeType,
    given_name: &'static AttributeType,
    display_name: &'static AttributeType,
    mail: &'static AttributeType,
    member_of: &'static AttributeType,
    uid_number: &'static AttributeType,
    gid_number: &'static AttributeType,
    home_directory: &'static AttributeType,
    login_shell: &'static AttributeType,
    active: &'static AttributeType,
    superuser: &'static AttributeType,
    entry_uuid: &'static AttributeType,
    create_timestamp: &'static AttributeType,
    modify_timestamp: &'static AttributeType,
    pwd_changed_time: &'static AttributeType,
}

static TYPES: LazyLock<Types> = LazyLock::new(|| {
    // The names below are the schema's own (a test builds every entry).
    let ty = |name: &str| schema::attribute(name).expect("a user entry's types are in the schema");
    Types {
        object_class: ty("objectClass"),
        cn: ty("cn"),
        uid: ty("uid"),
        sn: ty("sn"),
        given_name: ty("givenName"),
        display_name: ty("displayName"),
        mail: ty("mail"),
        member_of: ty("memberOf"),
        uid_number: ty("uidNumber"),
        gid_number: ty("gidNumber"),
        home_directory: ty("homeDirectory"),
        login_shell: ty("loginShell"),
        active: ty("ak-active"),
        superuser: ty("ak-superuser"),
        entry_uuid: ty("entryUUID"),
        create_timestamp: ty("createTimestamp"),
        modify_timestamp: ty("modifyTimestamp"),
        pwd_changed_time: ty("pwdChangedTime"),
    }
});

/// A value of `user.attrs` for the attribute `ty`, whichever of its names
/// or OID the key uses; blank values count as unset.
fn user_attr<'a>(user: &'a User, ty: &AttributeType) -> Option<&'a str> {
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
    let member_of = if wanted.wants_name("memberOf") {
        let groups_ou = tree::groups_ou(base).to_string();
        groups
            .iter()
            .map(|g| child_dn_string(&g.name, &groups_ou))
            .collect()
    } else {
        Vec::new()
    };
    user_entry_with(base, user, &member_of, superuser, wanted)
}

/// [`user_entry_for`] with memberOf given as the DNs it lists, in order
/// (a search shares them between the entries of the users it returns).
pub fn user_entry_with(
    base: &Dn,
    user: &User,
    member_of: &[String],
    superuser: bool,
    wanted: &Wanted,
) -> Entry {
    let t = &*TYPES;
    let want = |ty: &AttributeType| wanted.wants(ty);
    let name = user.username.as_str();
    let mut e = Entry::new(tree::user_dn(base, name));
    if want(t.object_class) {
        e.push_ty(
            t.object_class,
            strings(&[
                "top",
                "person",
                "organizationalPerson",
                "inetOrgPerson",
                "posixAccount",
            ]),
        );
    }
    if want(t.cn) {
        e.push_ty(t.cn, vec![name.to_string()]);
    }
    if want(t.uid) {
        e.push_ty(t.uid, vec![name.to_string()]);
    }
    let full_name = user.full_name.as_deref().filter(|n| !n.trim().is_empty());
    if want(t.sn) {
        let sn = user_attr(user, t.sn)
            .or_else(|| full_name.and_then(|n| n.split_whitespace().last()))
            .unwrap_or(name);
        e.push_ty(t.sn, vec![sn.to_string()]);
    }
    if want(t.given_name) {
        if let Some(given) = user_attr(user, t.given_name) {
            e.push_ty(t.given_name, vec![given.to_string()]);
        }
    }
    if want(t.display_name) {
        if let Some(full) = full_name {
            e.push_ty(t.display_name, vec![full.to_string()]);
        }
    }
    if want(t.mail) {
        if let Some(mail) = user.email.as_deref().filter(|m| !m.trim().is_empty()) {
            e.push_ty(t.mail, vec![mail.to_string()]);
        }
    }
    if want(t.member_of) && !member_of.is_empty() {
        e.push_ty(t.member_of, member_of.to_vec());
    }
    if want(t.uid_number) {
        e.push_ty(t.uid_number, vec![user.uid_number.to_string()]);
    }
    if want(t.gid_number) {
        e.push_ty(t.gid_number, vec![user.gid_number.to_string()]);
    }
    if want(t.home_directory) {
        let home = user_attr(user, t.home_directory)
            .map(str::to_string)
            .unwrap_or_else(|| format!("/home/{name}"));
        e.push_ty(t.home_directory, vec![home]);
    }
    if want(t.login_shell) {
        let shell = user_attr(user, t.login_shell).unwrap_or("/bin/bash");
        e.push_ty(t.login_shell, vec![shell.to_string()]);
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
        e.push_ty(ty, vec![value.clone()]);
    }
    if want(t.active) {
        e.push_ty(t.active, vec![boolean(!user.disabled).to_string()]);
    }
    if want(t.superuser) {
        e.push_ty(t.superuser, vec![boolean(superuser).to_string()]);
    }
    if want(t.entry_uuid) {
        e.push_ty(t.entry_uuid, vec![user.id.0.hyphenated().to_string()]);
    }
    if want(t.create_timestamp) || want(t.modify_timestamp) {
        push_timestamps(&mut e, user.created, user.modified);
    }
    if want(t.pwd_changed_time) {
        if let Some(time) = user.pwd_changed.and_then(generalized_time) {
            e.push_ty(t.pwd_changed_time, vec![time]);
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
