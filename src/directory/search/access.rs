//! Access rules (DESIGN.md section 5): anonymous reads nothing here; a
//! bound user reads its own entry and its groups; members of the search
//! group and admins read everything. A user deleted or disabled since
//! binding reads nothing.
//!
//! # No disclosure
//! An entry an identity may not read does not exist for it, as in slapd
//! without `disclose` access: every answer about such an entry (search
//! at any scope based there, compare, modify, delete, modify DN, an add
//! below it) is the one a missing entry at the same place gets,
//! byte for byte: noSuchObject (32), "no such object", and no matchedDN.
//! matchedDN names only entries the identity may read: an ordinary user
//! reads no container, so their noSuchObject answers carry no matchedDN
//! at all (missing entries included); admins and the search group read
//! everything and keep the deepest existing ancestor.
//!
//! The containers (the base entry, `ou=users`, `ou=groups`) are the
//! announced shape of the tree (namingContexts), no secret: a bound user
//! may search from them (and finds what it may read), and a write there
//! is insufficientAccessRights (50), as is a write to an entry the user
//! reads but may not change (its own entry beyond self-service, its
//! groups). Anonymous clients read nothing here: every search or write
//! is insufficientAccessRights (50), whether its target exists or not, so
//! they learn nothing either.
//!
//! The checks run only where an answer could tell: on the not-found and
//! not-readable paths, and for identities that do not read everything; a
//! search by an admin or the search group pays nothing for them.

use super::{Directory, DirectoryError, Identity};
use crate::directory::cache::AccessInfo;
use crate::directory::dn::Dn;
use crate::directory::tree::{self, Target};
use crate::store::{GroupId, Member, StoreError, UserId};
use std::collections::HashSet;
use std::sync::Arc;

/// What one identity may read.
pub(super) enum Access {
    None,
    All,
    Own { user: UserId, info: Arc<AccessInfo> },
}

impl Access {
    /// Whether this identity reads the entry of the user or group `m`.
    pub(super) fn reads(&self, m: Member) -> bool {
        match (self, m) {
            (Access::All, _) => true,
            (Access::Own { user, .. }, Member::User(id)) => *user == id,
            (Access::Own { info, .. }, Member::Group(id)) => info.groups.contains(&id),
            (Access::None, _) => false,
        }
    }

    /// `err` as this identity may see it: a noSuchObject names a matched
    /// entry only for identities that read everything (see the module
    /// docs). Called on the error path only.
    pub(super) fn hide(&self, err: DirectoryError) -> DirectoryError {
        match err {
            DirectoryError::NoSuchObject { .. } if !matches!(self, Access::All) => {
                DirectoryError::NoSuchObject { matched: None }
            }
            e => e,
        }
    }
}

impl Directory {
    /// Whether `who` may learn that `dn` exists (or that it does not),
    /// by the rule in the module docs: true for every DN when `who` reads
    /// everything; otherwise for the root DSE and subschema, and for a
    /// bound user the containers, its own entry and its groups. Writes
    /// ask this before they answer anything that depends on `dn`.
    pub fn discloses(&self, who: &Identity, dn: &Dn) -> Result<bool, StoreError> {
        // Read before any membership or name (see `cache`).
        let epoch = self.store().membership_epoch()?;
        let access = self.access_at(who, epoch)?;
        if matches!(access, Access::All) {
            return Ok(true);
        }
        Ok(match tree::classify(dn, self.base()) {
            Target::RootDse | Target::Subschema => true,
            Target::Base | Target::UsersOu | Target::GroupsOu => {
                matches!(access, Access::Own { .. })
            }
            Target::User(name) => self
                .user_id_by_name(&name)?
                .is_some_and(|id| access.reads(Member::User(id))),
            Target::Group(name) => self
                .group_id_by_name(&name)?
                .is_some_and(|id| access.reads(Member::Group(id))),
            Target::Missing | Target::Outside => false,
        })
    }

    /// What `who` may read. `epoch` is the membership epoch, read by the
    /// caller before anything this guards (see `cache`).
    pub(super) fn access_at(&self, who: &Identity, epoch: u64) -> Result<Access, StoreError> {
        let Identity::User { id, .. } = who else {
            return Ok(Access::None);
        };
        // A user deleted or disabled since binding reads nothing. Not
        // cached: disabling a user does not move the epoch.
        if !self.store().user_is_active(*id)? {
            return Ok(Access::None);
        }
        let info = match self.inner.cache.access(epoch, *id) {
            Some(info) => info,
            None => {
                let groups: HashSet<GroupId> = self
                    .store()
                    .transitive_groups_of(Member::User(*id))?
                    .into_iter()
                    .collect();
                let mut all = false;
                for name in [&self.inner.admin_group, &self.inner.search_group] {
                    if let Some(g) = self.store().group_by_name(name)? {
                        all |= groups.contains(&g.id);
                    }
                }
                let info = Arc::new(AccessInfo { all, groups });
                self.inner.cache.set_access(epoch, *id, info.clone());
                info
            }
        };
        Ok(if info.all {
            Access::All
        } else {
            Access::Own { user: *id, info }
        })
    }
}
