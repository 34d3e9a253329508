//! The guard that keeps someone who administers the directory (who that
//! is: `crate::directory::admins`). A change that would leave
//! `ldap.admin_group` without an enabled member (directly or through
//! nested groups) is refused, whether it comes from the CLI, the admin
//! socket or an LDAP write.

use std::collections::BTreeSet;

use super::AccountError;
use crate::store::{GroupId, Member, Store, UserId};

/// A change that may take administrators away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// The user is deleted or disabled.
    User(UserId),
    /// The member leaves the group.
    Edge(GroupId, Member),
    /// The group is deleted.
    Group(GroupId),
}

/// Refuses `removals` (made together, e.g. an LDAP modify that replaces a
/// member list) when they would leave the admin group without any enabled
/// user. A directory that already has no admin is not blocked by this.
/// Blocking (it walks the admin group).
pub fn ensure_admins_remain(
    store: &Store,
    admin_group: &str,
    removals: &[Removal],
) -> Result<(), AccountError> {
    if removals.is_empty() {
        return Ok(());
    }
    let before = effective_admins(store, admin_group, &[])?;
    if before.is_empty() {
        return Ok(());
    }
    let users_only = removals.iter().all(|r| matches!(r, Removal::User(_)));
    if users_only
        && !removals
            .iter()
            .any(|r| matches!(r, Removal::User(id) if before.contains(id)))
    {
        return Ok(());
    }
    if effective_admins(store, admin_group, removals)?.is_empty() {
        return Err(AccountError::Invalid(format!(
            "this would leave group {admin_group} without an enabled member; add another admin first"
        )));
    }
    Ok(())
}

/// The admins (`crate::directory::admins`: enabled users in the admin
/// group at any depth) as they would be after `removals`.
pub fn effective_admins(
    store: &Store,
    admin_group: &str,
    removals: &[Removal],
) -> Result<BTreeSet<UserId>, AccountError> {
    let mut admins = BTreeSet::new();
    let Some(root) = store.group_by_name(admin_group)? else {
        return Ok(admins);
    };
    if removals.contains(&Removal::Group(root.id)) {
        return Ok(admins);
    }
    let mut seen = BTreeSet::from([root.id]);
    let mut queue = vec![root.id];
    while let Some(group) = queue.pop() {
        for member in store.members(group)? {
            if removals.contains(&Removal::Edge(group, member)) {
                continue;
            }
            match member {
                Member::User(id) => {
                    if removals.contains(&Removal::User(id)) || admins.contains(&id) {
                        continue;
                    }
                    if store.user(id)?.is_some_and(|u| !u.disabled) {
                        admins.insert(id);
                    }
                }
                Member::Group(id) => {
                    if removals.contains(&Removal::Group(id)) {
                        continue;
                    }
                    if seen.insert(id) {
                        queue.push(id);
                    }
                }
            }
        }
    }
    Ok(admins)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{Directory, Dn, Identity};
    use crate::store::{NewUser, User};

    /// The guard and the read model agree on who is an admin: enabled
    /// users in the admin group at any depth, nobody else.
    #[test]
    fn one_rule_for_who_is_an_admin() {
        let store = Store::temporary().expect("store");
        let admins = store.create_group("admins", None).expect("group");
        let ops = store.create_group("ops", None).expect("group");
        store
            .add_member(admins.id, Member::Group(ops.id))
            .expect("nest");
        let user = |name: &str| {
            store
                .create_user(NewUser {
                    username: name.into(),
                    ..NewUser::default()
                })
                .expect("user")
        };
        let (direct, nested, disabled, outsider) = (
            user("direct"),
            user("nested"),
            user("disabled"),
            user("outsider"),
        );
        store
            .add_member(admins.id, Member::User(direct.id))
            .expect("member");
        for u in [&nested, &disabled] {
            store
                .add_member(ops.id, Member::User(u.id))
                .expect("member");
        }
        store
            .update_user(disabled.id, &|u: &mut User| {
                u.disabled = true;
                Ok(())
            })
            .expect("disable");
        let dir = Directory::new(
            store.clone(),
            Dn::parse("dc=example,dc=com").expect("dn"),
            "admins",
            "ldap-search",
        );
        let guard = effective_admins(&store, "admins", &[]).expect("admins");
        assert_eq!(guard, BTreeSet::from([direct.id, nested.id]));
        for u in [&direct, &nested, &disabled, &outsider] {
            let who = Identity::User {
                id: u.id,
                username: u.username.clone(),
            };
            assert_eq!(
                dir.is_admin(&who).expect("is_admin"),
                guard.contains(&u.id),
                "{}",
                u.username
            );
        }
        // Membership alone (ak-superuser) keeps the disabled member.
        let members =
            crate::directory::admins::admin_group_members(&store, "admins").expect("members");
        assert!(members.contains(&disabled.id) && !members.contains(&outsider.id));
    }
}
