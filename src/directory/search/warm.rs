//! Warming what lookups keep, once the server has started.
//!
//! A lookup by `uid`, `mail` or `uidNumber` keeps the id it found
//! ([`KeptIds`](super::super::cache::KeptIds)), the user's decoded record
//! and, when it lists memberOf, the user's groups; until a user was looked
//! up once, each of those is a walk of the store's pages. After a restart
//! of a server with a million users every login met them cold, for
//! minutes: the first matrix rows cost up to 1.4 times the CPU of the same
//! rows a minute later. [`Directory::warm`] fills them in one pass over the
//! users instead, the way a search over every user does: records only in
//! room the record cache still has, ids and groups only in room their maps
//! still have, so a directory larger than the caches keeps what lookups
//! use, not a prefix of it.
//!
//! Nothing warmed is trusted more than what a lookup keeps: a kept id is
//! used only after its record was read and found to carry the key, a
//! record only while no write has finished since it was found current, and
//! the groups only at the membership epoch they were read at.

use std::sync::Arc;

use super::Directory;
use crate::store::{GroupId, StoreError};

/// What [`Directory::warm`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Warmed {
    /// Users and groups passed over.
    pub users: usize,
    pub groups: usize,
    /// False when `stop` ended the pass early, or the backend keeps no
    /// count of finished writes (PostgreSQL: nothing was done).
    pub complete: bool,
}

impl Directory {
    /// Fills the ids by name, email and number, the records and (when
    /// memberOf lists direct groups) the users' groups that lookups keep,
    /// from one pass over every group and user; `stop` is asked after each
    /// user. Only for a backend with a count of finished writes (sled): a
    /// store that other instances write (PostgreSQL) checks each kept id
    /// against a record it reads from the database anyway, so a pass would
    /// only load the database at every start.
    pub fn warm(&self, stop: &dyn Fn() -> bool) -> Result<Warmed, StoreError> {
        let store = self.store();
        let mut warmed = Warmed::default();
        if store.finished_writes().is_none() {
            return Ok(warmed);
        }
        let inner = &self.inner;
        for group in store.groups()? {
            inner
                .group_ids
                .insert_if_room(inner.group_ids.name_key(&group.name), group.id);
            inner
                .group_numbers
                .insert_if_room(inner.group_numbers.number_key(group.gid_number), group.id);
            warmed.groups += 1;
        }
        let epoch = store.membership_epoch()?;
        // Read from the groups' member lists in one pass (`None` when
        // memberOf lists groups through nesting: those are computed per
        // user, as a lookup computes them).
        let groups_of = self.all_direct_member_of(epoch)?;
        let mut stopped = false;
        store.each_user_shared(&mut |user| {
            let id = user.id;
            inner
                .user_ids
                .insert_if_room(inner.user_ids.name_key(&user.username), id);
            if let Some(email) = &user.email {
                inner
                    .user_emails
                    .insert_if_room(inner.user_emails.email_key(email), id);
            }
            inner
                .user_numbers
                .insert_if_room(inner.user_numbers.number_key(user.uid_number), id);
            if let Some(all) = &groups_of {
                let groups: Arc<[GroupId]> = match all.get(&id) {
                    Some(groups) => groups.clone(),
                    None => Arc::from(Vec::new()),
                };
                inner.cache.set_member_of_if_room(epoch, id, groups);
            }
            warmed.users += 1;
            stopped = stop();
            Ok(!stopped)
        })?;
        warmed.complete = !stopped;
        Ok(warmed)
    }
}
