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

/// The memory a kept record is counted for: its stored bytes, the decoded
/// record (its strings are about as long as the JSON) and the map's slot.
fn cost(stored: &IVec) -> usize {
    2 * stored.len() + 96
}

/// One shard's records and the memory they are counted for.
struct Shard<K, V> {
    map: HashMap<K, (IVec, Arc<V>)>,
    bytes: usize,
}

/// The decoded records of one tree, within a memory budget: the cache
/// grows with the records read until the budget
/// (`store.record_cache_mib`), so a small directory is kept whole and a
/// large one up to the budget. A shard over its share drops an eighth of
/// its records (arbitrary ones), not all of them, so a directory larger
/// than the budget keeps most of what it read.
pub(super) struct Records<K, V> {
    shards: [Mutex<Shard<K, V>>; SHARDS],
    /// Bytes each shard may hold; 0 keeps nothing.
    shard_budget: usize,
}

impl<K: RecordId, V> Records<K, V> {
    /// A cache of at most `budget` bytes (as [`cost`] counts them).
    pub(super) fn new(budget: usize) -> Records<K, V> {
        Records {
            shards: std::array::from_fn(|_| {
                Mutex::new(Shard {
                    map: HashMap::new(),
                    bytes: 0,
                })
            }),
            shard_budget: budget / SHARDS,
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

    /// [`Records::read`] that keeps nothing new: for a pass over every
    /// record (an export), which would otherwise fill the budget with
    /// records read once and push out the ones searches use.
    pub(super) fn peek(&self, tree: &Tree, key: &[u8], id: K, what: &str) -> Result<Option<Arc<V>>>
    where
        V: DeserializeOwned,
    {
        let Some(stored) = tree.get(key).map_err(backend)? else {
            return Ok(None);
        };
        if let Some(record) = self.get(id, &stored) {
            return Ok(Some(record));
        }
        Ok(Some(Arc::new(decode::<V>(
            format_args!("{what} {id}"),
            &stored,
        )?)))
    }

    /// The record decoded from `stored`, if that is the version kept.
    fn get(&self, id: K, stored: &[u8]) -> Option<Arc<V>> {
        match self.shard(id).map.get(&id) {
            Some((bytes, record)) if bytes.as_ref() == stored => Some(record.clone()),
            _ => None,
        }
    }

    /// Keeps `record`, decoded from `stored`, replacing an older version;
    /// makes room within the shard's budget first.
    fn put(&self, id: K, stored: IVec, record: Arc<V>) {
        let added = cost(&stored);
        if added > self.shard_budget {
            self.forget(id);
            return;
        }
        let mut shard = self.shard(id);
        if let Some((old, _)) = shard.map.remove(&id) {
            shard.bytes -= cost(&old);
        }
        if shard.bytes + added > self.shard_budget {
            let target = self.shard_budget - self.shard_budget / 8;
            let mut bytes = shard.bytes;
            shard.map.retain(|_, (b, _)| {
                if bytes + added <= target {
                    return true;
                }
                bytes -= cost(b);
                false
            });
            shard.bytes = bytes;
        }
        shard.bytes += added;
        shard.map.insert(id, (stored, record));
    }

    /// Drops the record of an id found gone.
    fn forget(&self, id: K) {
        let mut shard = self.shard(id);
        if let Some((old, _)) = shard.map.remove(&id) {
            shard.bytes -= cost(&old);
        }
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
        let records = Records::<UserId, User>::new(1 << 20);
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
    fn records_stay_within_the_budget_and_keep_most_of_it() {
        let budget = 1 << 20;
        let records = Records::<UserId, User>::new(budget);
        let stored = IVec::from(&[b'x'; 300][..]);
        let fits = budget / cost(&stored);
        for n in 0..3 * fits {
            let (id, user) = record(&format!("u{n}"));
            records.put(id, stored.clone(), user);
            // Written again: counted once.
            records.put(id, stored.clone(), record("again").1);
        }
        let (kept, bytes) = records.shards.iter().fold((0, 0), |(k, b), s| {
            let s = s.lock().unwrap();
            assert_eq!(s.bytes, s.map.len() * cost(&stored));
            (k + s.map.len(), b + s.bytes)
        });
        assert!(bytes <= budget, "{bytes}");
        assert!(kept > fits / 2, "{kept} of {fits}");
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let records = Records::<UserId, User>::new(0);
        let (id, alice) = record("alice");
        records.put(id, IVec::from(&b"v1"[..]), alice);
        assert!(records.get(id, b"v1").is_none());
    }
}
