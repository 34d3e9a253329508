//! Decoded user and group records, each kept with a digest of the stored
//! bytes it was decoded from and the store's write count when it was last
//! found current.
//!
//! A search reads the bound user's record (is the account still enabled?)
//! and the record of every user it returns, a group read the group's
//! record; decoding the JSON was a fifth of the server's work on a search
//! by uid, and reading the stored bytes again to check a kept record most
//! of the rest at a million users. So a kept record is used without a
//! read while no write has finished since it was last found current
//! ([`Records::read`] with the store's write count, which every write
//! advances when it is done, after its commit); after a write, the next
//! read of each record fetches the stored bytes once and compares their
//! digest. A change, a disabled account or a delete is therefore seen by
//! every read that starts after the write returned; a read that overlaps
//! a write may see the record before it, as it may with sled alone.
//!
//! The digest is 128 bits of SipHash under keys drawn when the store
//! opens, so no record can be written to collide with another version.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use sled::{IVec, Tree};

use super::{backend, decode, Result};
use crate::domain::footprint::Footprint;
use crate::store::{GroupId, User, UserId};

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

/// What a kept record costs besides its own heap memory: the `Arc` it is
/// shared in, the digest, the write count and the map's slot (with the
/// map's spare room). With [`Footprint`] this matches what the server's
/// resident memory grew by for each user kept at 1,000,000 users of the
/// benchmark's dataset (enumerating them all with the cache at 0 and at
/// 4 GiB): 0.73 KB per user when a user took ten heap blocks, 0.48 KB
/// since its attributes take two (five in all); counted 0.76 and 0.53.
const KEPT_OVERHEAD: usize = 96;

fn cost<V: Footprint>(record: &V) -> usize {
    record.footprint() + KEPT_OVERHEAD
}

/// A digest of stored bytes; see the module documentation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Digest(u64, u64);

/// One kept record.
struct Kept<V> {
    digest: Digest,
    record: Arc<V>,
    /// The store's write count read before the stored bytes that last
    /// matched `digest`.
    checked: u64,
    cost: usize,
}

/// What [`Records::find`] found.
enum Found<V> {
    Kept(Arc<V>),
    /// Nothing is stored under the key.
    Gone,
    /// Bytes that no kept record was decoded from, and their digest when
    /// the record may be kept.
    Stored(IVec, Option<Digest>),
}

/// What [`Records::current`] found kept.
enum Lookup<V> {
    Current(Arc<V>),
    /// A record that is to be checked against the stored bytes.
    Stale,
    /// None; `room`: its shard is under its budget.
    Absent {
        room: bool,
    },
}

/// Whether a read keeps the record it decoded.
#[derive(Clone, Copy)]
enum Keep {
    /// Yes, dropping others to make room ([`Records::read`]).
    Always,
    /// Only in room the budget has left ([`Records::scan`]).
    IfRoom,
    /// No ([`Records::peek`]).
    Never,
}

/// One shard's records and the memory they are counted for.
struct Shard<K, V> {
    map: HashMap<K, Kept<V>>,
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
    /// The two keyed hashes of [`Digest`].
    keys: (std::hash::RandomState, std::hash::RandomState),
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
            keys: (std::hash::RandomState::new(), std::hash::RandomState::new()),
        }
    }

    fn shard(&self, id: K) -> MutexGuard<'_, Shard<K, V>> {
        let i = usize::from(id.random_byte()) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn digest(&self, stored: &[u8]) -> Digest {
        Digest(self.keys.0.hash_one(stored), self.keys.1.hash_one(stored))
    }

    /// The record of `id`, stored under `key` in `tree` (a `what` in
    /// errors), as it is stored now. `written` is the store's write count,
    /// read by the caller before this call: a record found current at that
    /// count is used without reading the store, any other is checked
    /// against the stored bytes (and decoded only when they changed).
    pub(super) fn read(
        &self,
        tree: &Tree,
        key: &[u8],
        id: K,
        what: &str,
        written: u64,
    ) -> Result<Option<Arc<V>>>
    where
        V: DeserializeOwned + Footprint,
    {
        Ok(self
            .get(tree, key, id, what, written, Keep::Always)?
            .map(|(record, _)| record))
    }

    /// [`Records::read`] for a pass over every record (a search over all
    /// users): a record decoded on the way is kept only in room the budget
    /// still has, never in place of another. A directory larger than the
    /// budget would otherwise have each pass replace the records lookups
    /// use with records read once per pass, paying an insert and an
    /// eviction for every entry; a small one is still kept whole by its
    /// first pass. With the record, whether the cache holds it now.
    pub(super) fn scan(
        &self,
        tree: &Tree,
        key: &[u8],
        id: K,
        what: &str,
        written: u64,
    ) -> Result<Option<(Arc<V>, bool)>>
    where
        V: DeserializeOwned + Footprint,
    {
        self.get(tree, key, id, what, written, Keep::IfRoom)
    }

    /// [`Records::read`] that keeps nothing new: for a pass over every
    /// record (an export), which would otherwise fill the budget with
    /// records read once and push out the ones searches use.
    pub(super) fn peek(
        &self,
        tree: &Tree,
        key: &[u8],
        id: K,
        what: &str,
        written: u64,
    ) -> Result<Option<Arc<V>>>
    where
        V: DeserializeOwned + Footprint,
    {
        Ok(self
            .get(tree, key, id, what, written, Keep::Never)?
            .map(|(record, _)| record))
    }

    /// The record as [`Records::read`], [`Records::scan`] and
    /// [`Records::peek`] read it (`keep`), and whether the cache holds it
    /// now.
    fn get(
        &self,
        tree: &Tree,
        key: &[u8],
        id: K,
        what: &str,
        written: u64,
        keep: Keep,
    ) -> Result<Option<(Arc<V>, bool)>>
    where
        V: DeserializeOwned + Footprint,
    {
        match self.find(tree, key, id, written, keep)? {
            Found::Kept(record) => Ok(Some((record, true))),
            Found::Gone => {
                if !matches!(keep, Keep::Never) {
                    self.forget(id);
                }
                Ok(None)
            }
            Found::Stored(stored, digest) => {
                let record = Arc::new(decode::<V>(format_args!("{what} {id}"), &stored)?);
                let kept = match digest {
                    Some(digest) => {
                        let added = cost(&*record);
                        self.put(id, digest, added, record.clone(), written, keep)
                    }
                    None => false,
                };
                Ok(Some((record, kept)))
            }
        }
    }

    /// The kept record if it is current at `written` or matches the
    /// stored bytes, else what is stored, with its digest when the record
    /// may be kept (`keep`) or another version of it is kept: a record
    /// neither kept nor to be kept is decoded without hashing its bytes.
    fn find(&self, tree: &Tree, key: &[u8], id: K, written: u64, keep: Keep) -> Result<Found<V>> {
        let kept = match self.current(id, written) {
            Lookup::Current(record) => return Ok(Found::Kept(record)),
            Lookup::Stale => true,
            Lookup::Absent { room } => {
                let keeps = match keep {
                    Keep::Always => true,
                    Keep::IfRoom => room,
                    Keep::Never => false,
                };
                if !keeps {
                    let Some(stored) = tree.get(key).map_err(backend)? else {
                        return Ok(Found::Gone);
                    };
                    return Ok(Found::Stored(stored, None));
                }
                false
            }
        };
        let Some(stored) = tree.get(key).map_err(backend)? else {
            return Ok(Found::Gone);
        };
        let digest = self.digest(&stored);
        if kept {
            if let Some(record) = self.matching(id, digest, written) {
                return Ok(Found::Kept(record));
            }
        }
        Ok(Found::Stored(stored, Some(digest)))
    }

    /// Whether the kept record of `id` was found current at write count
    /// `written` (no write has finished since).
    fn current(&self, id: K, written: u64) -> Lookup<V> {
        let shard = self.shard(id);
        match shard.map.get(&id) {
            Some(kept) if kept.checked == written => Lookup::Current(kept.record.clone()),
            Some(_) => Lookup::Stale,
            None => Lookup::Absent {
                room: shard.bytes < self.shard_budget,
            },
        }
    }

    /// The kept record of `id` if it was decoded from bytes of `digest`;
    /// it is then current at `written`.
    fn matching(&self, id: K, digest: Digest, written: u64) -> Option<Arc<V>> {
        let mut shard = self.shard(id);
        let kept = shard.map.get_mut(&id)?;
        if kept.digest != digest {
            return None;
        }
        kept.checked = kept.checked.max(written);
        Some(kept.record.clone())
    }

    /// Keeps `record`, decoded from bytes of `digest` read after write
    /// count `written`, replacing an older version; makes room within the
    /// shard's budget first, or with [`Keep::IfRoom`] keeps it only if it
    /// fits (the older version is dropped either way: it is not current).
    /// Whether it was kept.
    fn put(
        &self,
        id: K,
        digest: Digest,
        added: usize,
        record: Arc<V>,
        written: u64,
        keep: Keep,
    ) -> bool {
        if added > self.shard_budget || matches!(keep, Keep::Never) {
            self.forget(id);
            return false;
        }
        let mut shard = self.shard(id);
        if let Some(old) = shard.map.remove(&id) {
            shard.bytes -= old.cost;
        }
        if shard.bytes + added > self.shard_budget {
            if matches!(keep, Keep::IfRoom) {
                return false;
            }
            let target = self.shard_budget - self.shard_budget / 8;
            let mut bytes = shard.bytes;
            shard.map.retain(|_, kept| {
                if bytes + added <= target {
                    return true;
                }
                bytes -= kept.cost;
                false
            });
            shard.bytes = bytes;
        }
        shard.bytes += added;
        shard.map.insert(
            id,
            Kept {
                digest,
                record,
                checked: written,
                cost: added,
            },
        );
        true
    }

    /// Drops the record of an id found gone.
    fn forget(&self, id: K) {
        let mut shard = self.shard(id);
        if let Some(old) = shard.map.remove(&id) {
            shard.bytes -= old.cost;
        }
    }
}

/// Every user's record in name order, as one complete walk of the
/// username index found them while no write finished
/// ([`super::SledStore::each_user_shared`]), with the store's write count
/// then. Used only at that same count: any write that finishes makes it
/// stale, and it is dropped then. Kept only when the record cache held
/// every record the walk read, so it holds no record the cache does not
/// (one pointer per user besides).
#[derive(Default)]
pub(super) struct UserList(Mutex<Option<(u64, Users)>>);

/// The records of a [`UserList`], shared with the walks that use them.
pub(super) type Users = Arc<[Arc<User>]>;

impl UserList {
    /// The list, if it was found at write count `written`.
    pub(super) fn current(&self, written: u64) -> Option<Users> {
        let list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &*list {
            Some((at, users)) if *at == written => Some(users.clone()),
            _ => None,
        }
    }

    /// Keeps `users`, found by a walk that began at write count `began`
    /// and ended at `ended`: only if no write finished meanwhile.
    pub(super) fn keep(&self, began: u64, ended: u64, users: Vec<Arc<User>>) {
        if began == ended {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((began, users.into()));
        }
    }

    /// Drops the list (a write finished: it is stale).
    pub(super) fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Group, User};
    use uuid::Uuid;

    fn user(name: &str) -> User {
        User::named(name)
    }

    fn tree() -> Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree("users").unwrap()
    }

    fn store(tree: &Tree, user: &User) {
        tree.insert(user.id.0.as_bytes(), serde_json::to_vec(user).unwrap())
            .unwrap();
    }

    fn read(
        records: &Records<UserId, User>,
        tree: &Tree,
        id: UserId,
        written: u64,
    ) -> Option<User> {
        records
            .read(tree, id.0.as_bytes(), id, "user", written)
            .unwrap()
            .map(Arc::unwrap_or_clone)
    }

    impl<K: RecordId, V> Records<K, V> {
        fn is_kept(&self, id: K) -> bool {
            self.shard(id).map.contains_key(&id)
        }

        fn kept_bytes(&self) -> usize {
            self.shards.iter().map(|s| s.lock().unwrap().bytes).sum()
        }
    }

    fn scan(
        records: &Records<UserId, User>,
        tree: &Tree,
        id: UserId,
        written: u64,
    ) -> Option<User> {
        let (user, kept) = records
            .scan(tree, id.0.as_bytes(), id, "user", written)
            .unwrap()?;
        // What the scan says of the record is what the cache holds.
        assert_eq!(kept, records.is_kept(id), "{}", user.username);
        Some(Arc::unwrap_or_clone(user))
    }

    #[test]
    fn a_scan_larger_than_the_budget_keeps_the_records_lookups_read() {
        let budget = 64 << 10;
        let records = Records::<UserId, User>::new(budget);
        let tree = tree();
        let users: Vec<User> = (0..2000).map(|n| user(&format!("u{n:04}"))).collect();
        users.iter().for_each(|u| store(&tree, u));
        // Lookups fill the budget (and evict as they go).
        let (looked_up, scanned) = users.split_at(1000);
        for u in looked_up {
            read(&records, &tree, u.id, 0).unwrap();
        }
        let hot: Vec<UserId> = looked_up
            .iter()
            .map(|u| u.id)
            .filter(|id| records.is_kept(*id))
            .collect();
        assert!(hot.len() > 50 && hot.len() < 1000, "{}", hot.len());

        // A pass over every user, twice: each entry right, nothing that
        // lookups kept is dropped, the budget holds.
        for _ in 0..2 {
            for u in looked_up.iter().chain(scanned) {
                assert_eq!(scan(&records, &tree, u.id, 0).unwrap().username, u.username);
            }
        }
        assert!(hot.iter().all(|id| records.is_kept(*id)));
        assert!(records.kept_bytes() <= budget, "{}", records.kept_bytes());
    }

    #[test]
    fn a_scan_keeps_a_directory_that_fits() {
        let records = Records::<UserId, User>::new(1 << 20);
        let tree = tree();
        let users: Vec<User> = (0..100).map(|n| user(&format!("u{n}"))).collect();
        users.iter().for_each(|u| store(&tree, u));
        for u in &users {
            scan(&records, &tree, u.id, 0).unwrap();
        }
        assert!(users.iter().all(|u| records.is_kept(u.id)));
    }

    #[test]
    fn a_scan_sees_a_write_that_finished() {
        for budget in [0, 1 << 20] {
            let records = Records::<UserId, User>::new(budget);
            let tree = tree();
            let mut alice = user("alice");
            store(&tree, &alice);
            assert_eq!(
                scan(&records, &tree, alice.id, 0).unwrap().username,
                "alice"
            );
            alice.username = "alicia".into();
            store(&tree, &alice);
            assert_eq!(
                scan(&records, &tree, alice.id, 1).unwrap().username,
                "alicia"
            );
            // The lookup after it reads the same version.
            assert_eq!(
                read(&records, &tree, alice.id, 1).unwrap().username,
                "alicia"
            );
            tree.remove(alice.id.0.as_bytes()).unwrap();
            assert_eq!(scan(&records, &tree, alice.id, 2), None);
            assert!(!records.is_kept(alice.id));
        }
    }

    #[test]
    fn a_write_that_finished_is_seen_by_the_next_read() {
        let records = Records::<UserId, User>::new(1 << 20);
        let tree = tree();
        let mut alice = user("alice");
        store(&tree, &alice);
        assert_eq!(
            read(&records, &tree, alice.id, 0).unwrap().username,
            "alice"
        );

        // A write: stored, then the write count advances.
        alice.disabled = true;
        store(&tree, &alice);
        assert!(read(&records, &tree, alice.id, 1).unwrap().disabled);
        // Kept under its new version, unchanged by reads at the same count.
        assert!(read(&records, &tree, alice.id, 1).unwrap().disabled);

        tree.remove(alice.id.0.as_bytes()).unwrap();
        assert_eq!(read(&records, &tree, alice.id, 2), None);
        assert_eq!(read(&records, &tree, alice.id, 2), None, "forgotten");
    }

    #[test]
    fn a_record_found_current_is_used_without_reading_the_store() {
        let records = Records::<UserId, User>::new(1 << 20);
        let tree = tree();
        let alice = user("alice");
        store(&tree, &alice);
        read(&records, &tree, alice.id, 7).unwrap();
        // Bytes changed under the cache without a finished write (a write
        // still under way): the kept record answers until the count moves.
        let mut renamed = alice.clone();
        renamed.username = "alicia".into();
        store(&tree, &renamed);
        assert_eq!(
            read(&records, &tree, alice.id, 7).unwrap().username,
            "alice"
        );
        assert_eq!(
            read(&records, &tree, alice.id, 8).unwrap().username,
            "alicia"
        );
    }

    #[test]
    fn a_record_read_before_a_write_is_not_current_after_it() {
        // A slow reader that read the old bytes at count 3 keeps its record
        // after a faster one kept the new version at count 4: at count 4 the
        // store is read again and the new version wins.
        let records = Records::<UserId, User>::new(1 << 20);
        let tree = tree();
        let old = user("alice");
        let mut new = old.clone();
        new.disabled = true;
        let digest_of = |u: &User| records.digest(&serde_json::to_vec(u).unwrap());
        records.put(
            old.id,
            digest_of(&new),
            300,
            Arc::new(new.clone()),
            4,
            Keep::Always,
        );
        records.put(
            old.id,
            digest_of(&old),
            300,
            Arc::new(old.clone()),
            3,
            Keep::Always,
        );
        store(&tree, &new);
        assert!(read(&records, &tree, old.id, 4).unwrap().disabled);
    }

    #[test]
    fn a_record_is_counted_for_its_strings_and_attributes() {
        let plain = user("user00001");
        let mut rich = plain.clone();
        rich.full_name = Some("Bench user00001".into());
        rich.email = Some("user00001@example.com".into());
        for i in 0..30 {
            rich.attrs
                .insert(format!("attribute{i:02}"), "v".repeat(40));
        }
        // Each attribute: its name and value in the attributes' text, and
        // their two ends; the name and the address each a block.
        let per_attribute = "attribute00".len() + 40 + 2 * 4;
        assert!(
            rich.footprint() >= plain.footprint() + 30 * per_attribute + 16 + 32,
            "{} against {}",
            rich.footprint(),
            plain.footprint()
        );
        assert!(plain.footprint() >= std::mem::size_of::<User>() + 16);
        let group = Group {
            id: GroupId(Uuid::new_v4()),
            name: "staff".into(),
            gid_number: 4000,
            description: Some("x".repeat(100)),
            created: 0,
            modified: 0,
        };
        assert!(group.footprint() >= std::mem::size_of::<Group>() + 16 + 112);
    }

    #[test]
    fn the_digest_tells_versions_apart() {
        let records = Records::<UserId, User>::new(1 << 20);
        assert_eq!(records.digest(b"v1"), records.digest(b"v1"));
        assert_ne!(records.digest(b"v1"), records.digest(b"v2"));
        assert_ne!(records.digest(b"v1"), records.digest(b"v"));
        // Keyed per cache: another cache's digests are other numbers.
        assert_ne!(
            records.digest(b"v1"),
            Records::<UserId, User>::new(0).digest(b"v1")
        );
    }

    #[test]
    fn records_stay_within_the_budget_and_keep_most_of_it() {
        let budget = 1 << 20;
        let records = Records::<UserId, User>::new(budget);
        let added = cost(&user("u0"));
        let fits = budget / added;
        for n in 0..3 * fits {
            let u = user(&format!("u{n}"));
            let digest = records.digest(u.username.as_bytes());
            records.put(u.id, digest, added, Arc::new(u.clone()), 0, Keep::Always);
            // Written again: counted once.
            records.put(
                u.id,
                digest,
                added,
                Arc::new(user("again")),
                0,
                Keep::Always,
            );
        }
        let (kept, bytes) = records.shards.iter().fold((0, 0), |(k, b), s| {
            let s = s.lock().unwrap();
            assert_eq!(s.bytes, s.map.len() * added);
            (k + s.map.len(), b + s.bytes)
        });
        assert!(bytes <= budget, "{bytes}");
        assert!(kept > fits / 2, "{kept} of {fits}");
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let records = Records::<UserId, User>::new(0);
        let tree = tree();
        let alice = user("alice");
        store(&tree, &alice);
        read(&records, &tree, alice.id, 0).unwrap();
        assert!(!records.is_kept(alice.id));
    }
}
