//! Who administers the directory: one rule for every layer. An admin is
//! an **enabled** user who is a member of `ldap.admin_group`, directly or
//! through nested groups. Admins read the whole tree, write under
//! `ou=users`/`ou=groups` and set anyone's password.
//!
//! - [`admin_group_members`]: the membership half, the users in the admin
//!   group at any depth (what `ak-superuser` shows, in searches and in
//!   exports; a disabled member keeps the attribute as it keeps its groups).
//! - [`Directory::is_admin`]: the whole rule for one bound user.
//! - The account layer's last-admin guard (`account::admins`) evaluates the
//!   same rule on the memberships as they would be after a change.

use std::collections::HashSet;

use super::{Directory, Identity};
use crate::store::{Member, Store, StoreError, UserId};

/// The users in `admin_group` at any depth, enabled or not; empty when the
/// group does not exist.
pub fn admin_group_members(
    store: &Store,
    admin_group: &str,
) -> Result<HashSet<UserId>, StoreError> {
    Ok(match store.group_by_name(admin_group)? {
        Some(g) => store.transitive_user_members(g.id)?.into_iter().collect(),
        None => HashSet::new(),
    })
}

/// The rule of [`Directory::is_admin`] over a store and the name of the
/// admin group, for callers that hold no `Directory` (the account layer's
/// operator context). Blocking.
pub fn is_admin_in(store: &Store, admin_group: &str, who: &Identity) -> Result<bool, StoreError> {
    let Identity::User { id, .. } = who else {
        return Ok(false);
    };
    if !store.user_is_active(*id)? {
        return Ok(false);
    }
    let Some(admins) = store.group_by_name(admin_group)? else {
        return Ok(false);
    };
    Ok(store
        .transitive_groups_of(Member::User(*id))?
        .contains(&admins.id))
}

impl Directory {
    /// True when `who` is an admin: a bound user, enabled now (a user
    /// disabled since binding is no admin), in the admin group at any
    /// depth. Blocking (store reads).
    pub fn is_admin(&self, who: &Identity) -> Result<bool, StoreError> {
        is_admin_in(self.store(), self.group_names().0, who)
    }
}
