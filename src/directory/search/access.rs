//! Access rules (DESIGN.md section 5): anonymous reads nothing here; a
//! bound user reads its own entry and its groups; members of the search
//! group and admins read everything. A user deleted or disabled since
//! binding reads nothing.

use super::{Directory, Identity};
use crate::directory::cache::AccessInfo;
use crate::store::{GroupId, Member, StoreError, UserId};
use std::collections::HashSet;
use std::sync::Arc;

/// What one identity may read.
pub(super) enum Access {
    None,
    All,
    Own { user: UserId, info: Arc<AccessInfo> },
}

impl Directory {
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
