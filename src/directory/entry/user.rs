//! User records as entries: `cn=<username>,ou=users,<base>` with the
//! inetOrgPerson and posixAccount attributes (DESIGN.md section 3), built
//! whole or only with the attributes a search wants.

use super::{boolean, child_dn_string, generalized_time, push_operational_to, push_timestamps};
use super::{AttrSink, Entry, Wanted};
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
    /// [`USER_COMPUTED`], resolved.
    computed: Vec<&'static AttributeType>,
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
        computed: USER_COMPUTED.iter().map(|name| ty(name)).collect(),
    }
});

/// True when a user's extra attributes (`user.attrs`) may give an entry a
/// value of `ty`: a user attribute the server does not compute.
pub(super) fn is_user_extra(ty: &AttributeType) -> bool {
    !ty.operational && !TYPES.computed.iter().any(|c| std::ptr::eq(*c, ty))
}

/// A value of `user.attrs` for the attribute `ty`, whichever of its names
/// or OID the key uses; blank values count as unset.
fn user_attr<'a>(user: &'a User, ty: &AttributeType) -> Option<&'a str> {
    let exact = user.attrs.get(ty.name);
    let value = exact.or_else(|| {
        user.attrs
            .iter()
            .find(|(k, _)| ty.is_named(k))
            .map(|(_, v)| v)
    })?;
    (!value.trim_start().is_empty()).then_some(value)
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
    member_of: &[impl AsRef<str>],
    superuser: bool,
    wanted: &Wanted,
) -> Entry {
    let mut e = Entry::new(tree::user_dn(base, &user.username));
    let dn = if wants_operational(wanted) {
        e.dn.to_string()
    } else {
        String::new()
    };
    push_user_attrs(&mut e, &dn, user, member_of, superuser, wanted);
    e
}

fn wants_operational(wanted: &Wanted) -> bool {
    wanted.all_operational || wanted.named.iter().any(|t| t.operational)
}

/// The attributes of [`user_entry_with`]'s entry, in its order, pushed into
/// `sink`; `dn` is the entry's DN as a string (read only when operational
/// attributes are wanted).
pub fn push_user_attrs(
    sink: &mut dyn AttrSink,
    dn: &str,
    user: &User,
    member_of: &[impl AsRef<str>],
    superuser: bool,
    wanted: &Wanted,
) {
    let t = &*TYPES;
    let want = |ty: &AttributeType| wanted.wants(ty);
    let name = user.username.as_str();
    if want(t.object_class) {
        sink.push(
            t.object_class,
            &[
                "top",
                "person",
                "organizationalPerson",
                "inetOrgPerson",
                "posixAccount",
            ],
        );
    }
    if want(t.cn) {
        sink.push(t.cn, &[name]);
    }
    if want(t.uid) {
        sink.push(t.uid, &[name]);
    }
    let full_name = user
        .full_name
        .as_deref()
        .filter(|n| !n.trim_start().is_empty());
    if want(t.sn) {
        let sn = user_attr(user, t.sn)
            .or_else(|| full_name.and_then(|n| n.split_whitespace().last()))
            .unwrap_or(name);
        sink.push(t.sn, &[sn]);
    }
    if want(t.given_name) {
        if let Some(given) = user_attr(user, t.given_name) {
            sink.push(t.given_name, &[given]);
        }
    }
    if want(t.display_name) {
        if let Some(full) = full_name {
            sink.push(t.display_name, &[full]);
        }
    }
    if want(t.mail) {
        if let Some(mail) = user.email.as_deref().filter(|m| !m.trim_start().is_empty()) {
            sink.push(t.mail, &[mail]);
        }
    }
    if want(t.member_of) && !member_of.is_empty() {
        let dns: Vec<&str> = member_of.iter().map(AsRef::as_ref).collect();
        sink.push(t.member_of, &dns);
    }
    if want(t.uid_number) {
        sink.push_owned(t.uid_number, user.uid_number.to_string());
    }
    if want(t.gid_number) {
        sink.push_owned(t.gid_number, user.gid_number.to_string());
    }
    if want(t.home_directory) {
        match user_attr(user, t.home_directory) {
            Some(home) => sink.push(t.home_directory, &[home]),
            None => sink.push_owned(t.home_directory, format!("/home/{name}")),
        }
    }
    if want(t.login_shell) {
        let shell = user_attr(user, t.login_shell).unwrap_or("/bin/bash");
        sink.push(t.login_shell, &[shell]);
    }
    // Most searches name no type an extra attribute may hold (an NSS
    // lookup names only computed ones): then none is looked at.
    if wanted.all_user || wanted.user_extra {
        for (key, value) in &user.attrs {
            let Some(ty) = schema::attribute(key) else {
                continue;
            };
            // Cheapest first: most extra attributes are not wanted.
            if !wanted.wants(ty) || !is_user_extra(ty) || value.trim_start().is_empty() {
                continue;
            }
            sink.push(ty, &[value]);
        }
    }
    if want(t.active) {
        sink.push(t.active, &[boolean(!user.disabled)]);
    }
    if want(t.superuser) {
        sink.push(t.superuser, &[boolean(superuser)]);
    }
    if want(t.entry_uuid) {
        sink.push_owned(t.entry_uuid, user.id.0.hyphenated().to_string());
    }
    if want(t.create_timestamp) || want(t.modify_timestamp) {
        push_timestamps(sink, user.created, user.modified);
    }
    if want(t.pwd_changed_time) {
        if let Some(time) = user.pwd_changed.and_then(generalized_time) {
            sink.push_owned(t.pwd_changed_time, time);
        }
    }
    if wants_operational(wanted) {
        push_operational_to(sink, dn, Some("inetOrgPerson"), false);
    }
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
