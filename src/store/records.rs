//! Decoded user records, each kept beside the stored bytes it was decoded
//! from.
//!
//! A search reads the bound user's record (is the account still enabled?)
//! and the record of every user it returns; decoding the JSON was a fifth
//! of the server's work on a search by uid. A reader still reads the
//! stored bytes every time, and uses the kept record only when those bytes
//! are exactly the ones it was decoded from, so a change, a disabled
//! account or a delete is seen at once; nothing here is ever newer or
//! older than the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use sled::IVec;

use super::model::{User, UserId};

/// Shards, so that threads reading different users rarely share a lock.
const SHARDS: usize = 16;

/// Beyond this many records a shard is emptied rather than grown: at most
/// 16 × 4096 = 65,536 records are kept (some 20 MiB at 300 bytes each,
/// bytes and record), whatever the size of the directory.
const MAX_PER_SHARD: usize = 4096;

type Shard = HashMap<UserId, (IVec, Arc<User>)>;

pub(super) struct UserRecords {
    shards: [Mutex<Shard>; SHARDS],
}

impl UserRecords {
    pub(super) fn new() -> UserRecords {
        UserRecords {
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }

    fn shard(&self, id: UserId) -> MutexGuard<'_, Shard> {
        // Version 4 UUIDs: the last byte is random.
        let i = usize::from(id.0.as_bytes()[15]) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record decoded from `stored`, if that is the version kept.
    pub(super) fn get(&self, id: UserId, stored: &[u8]) -> Option<Arc<User>> {
        match self.shard(id).get(&id) {
            Some((bytes, user)) if bytes.as_ref() == stored => Some(user.clone()),
            _ => None,
        }
    }

    /// Keeps `user`, decoded from `stored`, replacing an older version.
    pub(super) fn put(&self, id: UserId, stored: IVec, user: Arc<User>) {
        let mut shard = self.shard(id);
        if shard.len() >= MAX_PER_SHARD && !shard.contains_key(&id) {
            shard.clear();
        }
        shard.insert(id, (stored, user));
    }

    /// Drops the record of a user found gone.
    pub(super) fn forget(&self, id: UserId) {
        self.shard(id).remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn record(name: &str) -> (UserId, Arc<User>) {
        let id = UserId(Uuid::new_v4());
        let user = User {
            id,
            username: name.into(),
            full_name: None,
            email: None,
            uid_number: 2000,
            gid_number: 2000,
            disabled: false,
            attrs: Default::default(),
            created: 0,
            modified: 0,
            pwd_changed: None,
            cred_generation: 0,
        };
        (id, Arc::new(user))
    }

    #[test]
    fn a_record_is_used_only_with_the_bytes_it_came_from() {
        let records = UserRecords::new();
        let (id, alice) = record("alice");
        assert!(records.get(id, b"v1").is_none());
        records.put(id, IVec::from(&b"v1"[..]), alice.clone());
        assert_eq!(records.get(id, b"v1").as_deref(), Some(&*alice));
        assert!(records.get(id, b"v2").is_none(), "changed bytes");
        assert!(records.get(id, b"v").is_none(), "a prefix");
        assert!(
            records.get(UserId(Uuid::new_v4()), b"v1").is_none(),
            "another id"
        );
        records.forget(id);
        assert!(records.get(id, b"v1").is_none());
    }

    #[test]
    fn records_stay_bounded() {
        let records = UserRecords::new();
        for n in 0..3 * SHARDS * MAX_PER_SHARD {
            let (id, user) = record(&format!("u{n}"));
            records.put(id, IVec::from(&b"x"[..]), user);
        }
        let kept: usize = records.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(kept <= SHARDS * MAX_PER_SHARD, "{kept}");
        assert!(kept > 0);
    }
}
