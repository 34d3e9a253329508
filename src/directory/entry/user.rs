//! User records as entries: `cn=<username>,ou=users,<base>` with the
//! inetOrgPerson and posixAccount attributes (DESIGN.md section 3), built
//! whole or only with the attributes a search wants.

use super::{boolean, child_dn_string, generalized_time, push_operational, push_timestamps};
use super::{strings, Entry, Wanted};
use crate::directory::dn::Dn;
use crate::directory::{schema, tree};
use crate::store::model::{Group, User};

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
    if want("memberOf") && !member_of.is_empty() {
        e.push("memberOf", member_of.to_vec());
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
