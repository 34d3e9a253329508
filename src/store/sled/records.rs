//! Decoded user and group records, each kept beside the stored bytes it
//! was decoded from.
//!
//! A search reads the bound user's record (is the account still enabled?)
//! and the record of every user it returns, a group read the group's
//! record; decoding the JSON was a fifth of the server's work on a search
//! by uid. A reader still reads the
//! stored bytes every time, and uses the kept record only when those bytes
//! are exactly the ones it was decoded from, so a change, a disabled
//! account or a delete is seen at once; nothing here is ever newer or
//! older than the store.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use sled::{IVec, Tree};

use super::{backend, decode, Result};
use crate::store::{GroupId, UserId};

/// An id whose last byte is random (version 4 UUIDs), to pick a shard.
pub(super) trait RecordId: Copy + Eq + Hash + Display {
    fn random_byte(&self) -> u8;
}

impl RecordId for UserId {
    fn random_byte(&self) -> u8 {
        self.0.as_bytes()[15]
    }
}

impl RecordId for GroupId {
    fn random_byte(&self) -> u8 {
        self.0.as_bytes()[15]
    }
}

/// Shards, so that threads reading different users rarely share a lock.
const SHARDS: usize = 16;

/// Beyond this many records a shard is emptied rather than grown: at most
/// 16 × 4096 = 65,536 records are kept (some 20 MiB at 300 bytes each,
/// bytes and record), whatever the size of the directory.
const MAX_PER_SHARD: usize = 4096;

type Shard<K, V> = HashMap<K, (IVec, Arc<V>)>;

pub(super) struct Records<K, V> {
    shards: [Mutex<Shard<K, V>>; SHARDS],
}

impl<K: RecordId, V> Records<K, V> {
    pub(super) fn new() -> Records<K, V> {
        Records {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }

    fn shard(&self, id: K) -> MutexGuard<'_, Shard<K, V>> {
        let i = usize::from(id.random_byte()) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of `id`, stored under `key` in `tree` (a `what` in
    /// errors), as it is stored now, decoded only when its bytes are not
    /// the ones kept.
    pub(super) fn read(&self, tree: &Tree, key: &[u8], id: K, what: &str) -> Result<Option<Arc<V>>>
    where
        V: DeserializeOwned,
    {
        let Some(stored) = tree.get(key).map_err(backend)? else {
            self.forget(id);
            return Ok(None);
        };
        if let Some(record) = self.get(id, &stored) {
            return Ok(Some(record));
        }
        let record = Arc::new(decode::<V>(format_args!("{what} {id}"), &stored)?);
        self.put(id, stored, record.clone());
        Ok(Some(record))
    }

    /// The record decoded from `stored`, if that is the version kept.
    fn get(&self, id: K, stored: &[u8]) -> Option<Arc<V>> {
        match self.shard(id).get(&id) {
            Some((bytes, record)) if bytes.as_ref() == stored => Some(record.clone()),
            _ => None,
        }
    }

    /// Keeps `user`, decoded from `stored`, replacing an older version.
    fn put(&self, id: K, stored: IVec, record: Arc<V>) {
        let mut shard = self.shard(id);
        if shard.len() >= MAX_PER_SHARD && !shard.contains_key(&id) {
            shard.clear();
        }
        shard.insert(id, (stored, record));
    }

    /// Drops the record of an id found gone.
    fn forget(&self, id: K) {
        self.shard(id).remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::User;
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
        let records = Records::<UserId, User>::new();
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
        let records = Records::<UserId, User>::new();
        for n in 0..3 * SHARDS * MAX_PER_SHARD {
            let (id, user) = record(&format!("u{n}"));
            records.put(id, IVec::from(&b"x"[..]), user);
        }
        let kept: usize = records.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(kept <= SHARDS * MAX_PER_SHARD, "{kept}");
        assert!(kept > 0);
    }
}
