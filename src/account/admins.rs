//! Who administers the directory, and the guard that keeps someone who
//! can: a change that would leave `ldap.admin_group` without an enabled
//! member (directly or through nested groups) is refused, whether it comes
//! from the CLI, the admin socket or an LDAP write.

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

/// Enabled users who are members of the admin group, directly or through
/// nested groups, as they would be after `removals`.
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
