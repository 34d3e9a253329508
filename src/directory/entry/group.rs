//! Group records as entries: `cn=<name>,ou=groups,<base>` with their
//! members as DNs and as memberUid (DESIGN.md section 3).

use super::{child_dn_string, push_operational, push_timestamps, strings, Entry};
use crate::directory::dn::Dn;
use crate::directory::tree;
use crate::store::model::{Group, User};

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
        .filter(|d| !d.trim_start().is_empty())
    {
        e.push_one("description", d);
    }
    e.push_one("entryUUID", group.id.0.hyphenated().to_string());
    push_timestamps(&mut e, group.created, group.modified);
    push_operational(&mut e, Some("groupOfNames"), false);
    e
}
