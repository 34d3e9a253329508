//! What the directory remembers between searches.
//!
//! Everything here depends only on memberships and on names, so it is kept
//! for one value of the store's membership epoch ([`Store::membership_epoch`])
//! and dropped as soon as the epoch moves. Usernames and group names never
//! change under an id (a rename must bump the epoch), and a user's or a
//! group's deletion bumps the epoch, so a cached name is never stale.
//! Records themselves (a user's mail, a group's description, …) are not
//! cached here, except a built group entry, which is kept together with
//! the group record it was built from and used only while the store still
//! holds that same record.
//!
//! Callers read the epoch *before* the data they cache, so a value stored
//! under an epoch is never older than it; a value computed under an older
//! epoch than the cache's is simply not stored.
//!
//! [`Store::membership_epoch`]: crate::store::Store::membership_epoch

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::entry::Entry;
use crate::store::{Group, GroupId, UserId};

/// Beyond this many items a map is emptied rather than grown: the cache
/// stays bounded whatever the size of the directory or the number of
/// distinct users that bind.
const MAX_ITEMS: usize = 200_000;

/// Beyond this many users the memberOf map is emptied rather than grown.
/// Larger than [`MAX_ITEMS`]: a lookup that lists memberOf needs a user's
/// groups, which otherwise cost a read of the membership index, and at
/// 1,000,000 users a map emptied every 200,000 held a tenth of them. Some
/// 90 bytes per user with one or two groups (a directory of this many
/// users keeps about 180 MB here).
const MAX_MEMBER_OF: usize = 2_000_000;

/// Beyond this many keys a group's [`Derived`] is emptied rather than
/// grown: clients read a group with one or two attribute selections, and
/// each key may hold as many bytes as the entry itself.
const MAX_DERIVED: usize = 4;

/// Bytes all [`Derived`] of one cache may hold together: a group's encoded
/// body is as large as its entry (some 3 MB for 50,000 members), and an
/// enumeration of groups derives one for each. Beyond it bodies are not
/// kept (the caller encodes them each time, as without a cache).
const MAX_DERIVED_BYTES: usize = 64 << 20;

/// Bytes a caller derived from one cached group entry (the LDAP layer keeps
/// the encoded response per attribute selection here), opaque to the
/// directory. They live exactly as long as the entry: a new epoch or a
/// changed group record drops them with it.
#[derive(Default)]
pub struct Derived {
    map: Mutex<HashMap<String, Bytes>>,
    /// Bytes held by every `Derived` of the cache ([`MAX_DERIVED_BYTES`]).
    held: Arc<AtomicUsize>,
}

impl Derived {
    pub fn get(&self, key: &str) -> Option<Bytes> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).cloned()
    }

    /// Keeps `bytes` under `key`, unless the cache's bodies already hold
    /// [`MAX_DERIVED_BYTES`] with them.
    pub fn insert(&self, key: String, bytes: Bytes) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_DERIVED {
            let freed = map.drain().map(|(_, b)| b.len()).sum();
            self.held.fetch_sub(freed, Ordering::Relaxed);
        }
        let len = bytes.len();
        let reserved = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held + len <= MAX_DERIVED_BYTES).then_some(held + len)
            });
        if reserved.is_ok() {
            if let Some(old) = map.insert(key, bytes) {
                self.held.fetch_sub(old.len(), Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Derived {
    fn drop(&mut self) {
        let map = self.map.get_mut().unwrap_or_else(|e| e.into_inner());
        let freed = map.values().map(Bytes::len).sum();
        self.held.fetch_sub(freed, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Derived").finish_non_exhaustive()
    }
}

/// Who reads everything, for one bound user.
#[derive(Debug)]
pub(super) struct AccessInfo {
    /// Member (transitively) of the admin or the search group.
    pub all: bool,
    /// Every group the user is in, directly or through nesting.
    pub groups: HashSet<GroupId>,
}

#[derive(Default)]
struct State {
    epoch: u64,
    /// Users in the admin group at any depth (`ak-superuser`).
    admins: Option<Arc<HashSet<UserId>>>,
    access: HashMap<UserId, Arc<AccessInfo>>,
    /// How many users a group's `(memberOf=G)` returns.
    users_in: HashMap<GroupId, usize>,
    usernames: HashMap<UserId, Arc<str>>,
    /// A group's built entry, the record it was built from and what
    /// callers derived from the entry.
    group_entries: HashMap<GroupId, (Group, Arc<Entry>, Arc<Derived>)>,
    /// Lowercased names of the groups in `group_entries`.
    group_names: HashSet<String>,
    /// What memberOf lists of a group: its lowercased name (the order of
    /// memberOf) and its DN; `None`: the group is gone.
    listed_groups: HashMap<GroupId, Option<Arc<ListedGroup>>>,
}

/// A group as a user's memberOf lists it: its lowercased name, which
/// orders memberOf, and its DN.
pub(super) type ListedGroup = (String, String);

/// One shard of the memberOf map, for one epoch. Hashed with FxHash: the
/// keys are user ids the store made (random or time-ordered UUIDs), which
/// no client chooses, and an enumeration looks up every user's.
#[derive(Default)]
struct MemberOf {
    epoch: u64,
    map: HashMap<UserId, Arc<[GroupId]>, rustc_hash::FxBuildHasher>,
}

/// Shards of the maps lookups fill as they go (memberOf, kept ids): a map
/// of a million keys grows by rehashing every key under its lock, tens of
/// milliseconds in which every lookup that needs the map waits (at
/// 1,000,000 users the slowest lookups while the caches filled). A shard
/// holds a sixteenth of the keys, and its growth stops only the lookups
/// whose keys fall in it.
const SHARDS: usize = 16;

/// The shard of `key` (FxHash: the maps themselves hash with SipHash's
/// random keys, so a client choosing keys can at worst fill one shard).
fn shard_of<Q: std::hash::Hash + ?Sized>(key: &Q) -> usize {
    use std::hash::BuildHasher;
    (rustc_hash::FxBuildHasher.hash_one(key) >> 32) as usize % SHARDS
}

/// Every user's direct groups at one epoch; a user in no group is absent.
/// Built from the groups' member lists for passes over every user
/// (`Directory::all_direct_member_of`), where looking each user up in the
/// memberOf map cost a fifth of an enumeration with memberOf at 100,000
/// users.
pub(super) type AllMemberOf = HashMap<UserId, Arc<[GroupId]>, rustc_hash::FxBuildHasher>;

/// The cache; one per [`super::Directory`].
#[derive(Default)]
pub(super) struct EpochCache {
    state: Mutex<State>,
    /// The newest epoch any part of the cache was asked for.
    latest: AtomicU64,
    /// The groups a user's memberOf lists: direct ones, or every one
    /// through nesting when the directory serves transitive memberOf. In
    /// shards, each for one epoch (see [`SHARDS`]).
    member_of: [Mutex<MemberOf>; SHARDS],
    /// Bytes held by the [`Derived`] of the group entries.
    derived_held: Arc<AtomicUsize>,
    /// [`AllMemberOf`] and its epoch.
    all_member_of: Mutex<Option<(u64, Arc<AllMemberOf>)>>,
}

fn bounded_insert<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, k: K, v: V) {
    if map.len() >= MAX_ITEMS {
        map.clear();
    }
    map.insert(k, v);
}

impl EpochCache {
    /// The state for `epoch`, emptied first when the epoch moved on;
    /// `None` when the cache already holds a newer epoch (the caller's
    /// reads may be older than what is cached: it must not store them).
    fn at(&self, epoch: u64) -> Option<MutexGuard<'_, State>> {
        // A panic while holding the lock cannot leave a half-written value
        // that is wrong: every write is one insert.
        let latest = self.latest.load(Ordering::Acquire);
        if epoch < latest {
            return None;
        }
        if epoch > latest {
            self.latest.fetch_max(epoch, Ordering::AcqRel);
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.epoch < epoch {
            *s = State {
                epoch,
                ..State::default()
            };
        }
        (s.epoch == epoch).then_some(s)
    }

    pub fn admins(&self, epoch: u64) -> Option<Arc<HashSet<UserId>>> {
        self.at(epoch)?.admins.clone()
    }

    pub fn set_admins(&self, epoch: u64, admins: Arc<HashSet<UserId>>) {
        if let Some(mut s) = self.at(epoch) {
            s.admins = Some(admins);
        }
    }

    pub fn access(&self, epoch: u64, user: UserId) -> Option<Arc<AccessInfo>> {
        self.at(epoch)?.access.get(&user).cloned()
    }

    pub fn set_access(&self, epoch: u64, user: UserId, info: Arc<AccessInfo>) {
        if let Some(mut s) = self.at(epoch) {
            bounded_insert(&mut s.access, user, info);
        }
    }

    /// The memberOf shard of `user` for `epoch`, as [`EpochCache::at`]:
    /// emptied when the epoch moved on, `None` when any part of the cache
    /// was asked for a newer epoch.
    fn member_of_at(&self, epoch: u64, user: UserId) -> Option<MutexGuard<'_, MemberOf>> {
        let latest = self.latest.load(Ordering::Acquire);
        if epoch < latest {
            return None;
        }
        if epoch > latest {
            self.latest.fetch_max(epoch, Ordering::AcqRel);
        }
        let mut s = self.member_of[shard_of(&user)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if s.epoch < epoch {
            *s = MemberOf {
                epoch,
                map: HashMap::default(),
            };
        }
        (s.epoch == epoch).then_some(s)
    }

    pub fn member_of(&self, epoch: u64, user: UserId) -> Option<Arc<[GroupId]>> {
        self.member_of_at(epoch, user)?.map.get(&user).cloned()
    }

    /// Every user's direct groups at `epoch`, if kept.
    pub fn all_member_of(&self, epoch: u64) -> Option<Arc<AllMemberOf>> {
        let kept = self.all_member_of.lock().unwrap_or_else(|e| e.into_inner());
        match &*kept {
            Some((at, all)) if *at == epoch => Some(all.clone()),
            _ => None,
        }
    }

    /// Keeps `all`, read after `epoch` was: unless a newer epoch was asked
    /// for meanwhile, or it lists more users than the memberOf map keeps
    /// ([`MAX_MEMBER_OF`]).
    pub fn set_all_member_of(&self, epoch: u64, all: Arc<AllMemberOf>) {
        if all.len() > MAX_MEMBER_OF || epoch < self.latest.load(Ordering::Acquire) {
            return;
        }
        let mut kept = self.all_member_of.lock().unwrap_or_else(|e| e.into_inner());
        if kept.as_ref().is_none_or(|(at, _)| *at <= epoch) {
            *kept = Some((epoch, all));
        }
    }

    pub fn set_member_of(&self, epoch: u64, user: UserId, groups: Arc<[GroupId]>) {
        if let Some(mut s) = self.member_of_at(epoch, user) {
            if s.map.len() >= MAX_MEMBER_OF / SHARDS {
                s.map.clear();
            }
            s.map.insert(user, groups);
        }
    }

    /// [`EpochCache::set_member_of`] only while the map has room: for a
    /// search over every user, which would otherwise empty the map once
    /// every [`MAX_MEMBER_OF`] users of a large directory, and with it what
    /// lookups keep.
    pub fn set_member_of_if_room(&self, epoch: u64, user: UserId, groups: Arc<[GroupId]>) {
        if let Some(mut s) = self.member_of_at(epoch, user) {
            if s.map.len() < MAX_MEMBER_OF / SHARDS {
                s.map.insert(user, groups);
            }
        }
    }

    pub fn users_in(&self, epoch: u64, group: GroupId) -> Option<usize> {
        self.at(epoch)?.users_in.get(&group).copied()
    }

    pub fn set_users_in(&self, epoch: u64, group: GroupId, users: usize) {
        if let Some(mut s) = self.at(epoch) {
            bounded_insert(&mut s.users_in, group, users);
        }
    }

    /// The cached usernames of `ids` (`None` where unknown), under one lock.
    pub fn usernames(&self, epoch: u64, ids: &[UserId]) -> Vec<Option<Arc<str>>> {
        match self.at(epoch) {
            Some(s) => ids.iter().map(|id| s.usernames.get(id).cloned()).collect(),
            None => vec![None; ids.len()],
        }
    }

    pub fn set_usernames(&self, epoch: u64, names: impl IntoIterator<Item = (UserId, Arc<str>)>) {
        if let Some(mut s) = self.at(epoch) {
            for (id, name) in names {
                bounded_insert(&mut s.usernames, id, name);
            }
        }
    }

    /// For each of `ids`, the group as memberOf lists it, if kept
    /// (`Some(None)`: the group is gone).
    pub fn listed_groups(
        &self,
        epoch: u64,
        ids: &[GroupId],
    ) -> Vec<Option<Option<Arc<ListedGroup>>>> {
        match self.at(epoch) {
            Some(s) => ids
                .iter()
                .map(|id| s.listed_groups.get(id).cloned())
                .collect(),
            None => vec![None; ids.len()],
        }
    }

    pub fn set_listed_groups(
        &self,
        epoch: u64,
        groups: impl IntoIterator<Item = (GroupId, Option<Arc<ListedGroup>>)>,
    ) {
        if let Some(mut s) = self.at(epoch) {
            for (id, listed) in groups {
                bounded_insert(&mut s.listed_groups, id, listed);
            }
        }
    }

    /// The entry built from exactly `group` under `epoch`, if kept.
    pub fn group_entry(&self, epoch: u64, group: &Group) -> Option<Arc<Entry>> {
        self.group_entry_derived(epoch, group).map(|(e, _)| e)
    }

    /// [`EpochCache::group_entry`] with the bytes derived from it.
    pub fn group_entry_derived(
        &self,
        epoch: u64,
        group: &Group,
    ) -> Option<(Arc<Entry>, Arc<Derived>)> {
        let s = self.at(epoch)?;
        match s.group_entries.get(&group.id) {
            Some((built_from, entry, derived)) if built_from == group => {
                Some((entry.clone(), derived.clone()))
            }
            _ => None,
        }
    }

    /// Keeps `entry` as the one built from `group` under `epoch`; the
    /// (empty) place for what callers derive from it, unless the epoch has
    /// moved on (then nothing is kept).
    pub fn set_group_entry(
        &self,
        epoch: u64,
        group: &Group,
        entry: Arc<Entry>,
    ) -> Option<Arc<Derived>> {
        let mut s = self.at(epoch)?;
        if s.group_entries.len() >= MAX_ITEMS {
            s.group_entries.clear();
            s.group_names.clear();
        }
        let derived = Arc::new(Derived {
            map: Mutex::default(),
            held: self.derived_held.clone(),
        });
        s.group_entries
            .insert(group.id, (group.clone(), entry, derived.clone()));
        s.group_names.insert(group.name.to_lowercase());
        Some(derived)
    }

    /// True when an entry of the group `id` was built under `epoch` (see
    /// [`EpochCache::has_group_entry_named`]).
    pub fn has_group_entry(&self, epoch: u64, id: GroupId) -> bool {
        self.at(epoch)
            .is_some_and(|s| s.group_entries.contains_key(&id))
    }

    /// True when an entry of the group `name` was built under `epoch`
    /// (whether the record it was built from is still current is checked
    /// by [`EpochCache::group_entry`] when it is used).
    pub fn has_group_entry_named(&self, epoch: u64, name: &str) -> bool {
        self.at(epoch)
            .is_some_and(|s| s.group_names.contains(&name.to_lowercase()))
    }
}

/// Beyond this many keys a [`KeptIds`] is emptied rather than grown (some
/// 20 bytes each).
const MAX_KEPT_IDS: usize = 2_000_000;

/// The ids of users (or groups) found through one of the store's indexes
/// (name, email, uid or gid number): a lookup by `uid`, `cn`, `mail`,
/// `uidNumber`, `gidNumber` or an entry's DN asks one for every request,
/// which at 1,000,000 users was a sixth of a lookup's CPU (sled's page
/// cache and binary searches). Not tied to the membership epoch: the
/// caller uses an id from here only after reading the record it names and
/// finding the key still on it ([`super::Directory::user_id_by_name`] and
/// its siblings), so a rename, a new email or number, a delete or a key
/// another entry took over is never answered from here. A key the index
/// does not know is not kept here (it may be created next): see
/// [`KeptMisses`], which keeps it only until the next write.
///
/// Keys are kept as 64-bit SipHash values under this map's random keys,
/// not as strings: that check makes a collision harmless (the id kept for
/// one name fails the other's check, which then asks the index), and a
/// lookup neither allocates the lowercased name nor reads a key string
/// from memory to compare (at 100,000 users and beyond, that string was a
/// cache miss per lookup). A client cannot choose names that collide or
/// fill one shard without knowing the random keys.
pub(super) struct KeptIds<K> {
    hashing: std::collections::hash_map::RandomState,
    /// In shards (see [`SHARDS`]), chosen by the key's top bits; the key
    /// is already a keyed hash, so the map hashes it with FxHash.
    shards: [Mutex<HashMap<u64, K, rustc_hash::FxBuildHasher>>; SHARDS],
}

impl<K> Default for KeptIds<K> {
    fn default() -> Self {
        KeptIds {
            hashing: std::collections::hash_map::RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::default())),
        }
    }
}

impl<K: Copy> KeptIds<K> {
    /// The key of a name as the name index compares them: its ASCII
    /// lowercase (no allocation).
    pub fn name_key(&self, name: &str) -> u64 {
        self.folded_key(name.as_bytes())
    }

    /// The key of an email address as the email index compares them:
    /// lowercased (Unicode; the same bytes as ASCII folding when the
    /// address is ASCII, without allocating then).
    pub fn email_key(&self, email: &str) -> u64 {
        if email.is_ascii() {
            self.folded_key(email.as_bytes())
        } else {
            self.folded_key(email.to_lowercase().as_bytes())
        }
    }

    pub fn number_key(&self, n: u32) -> u64 {
        use std::hash::BuildHasher;
        self.hashing.hash_one(n)
    }

    fn folded_key(&self, bytes: &[u8]) -> u64 {
        folded_hash(&self.hashing, bytes)
    }

    fn shard(&self, key: u64) -> MutexGuard<'_, HashMap<u64, K, rustc_hash::FxBuildHasher>> {
        // Every write is one insert or a clear: nothing half-written.
        let index = usize::try_from(key >> 60).unwrap_or(0) % SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The id kept for `key`.
    pub fn get(&self, key: u64) -> Option<K> {
        self.shard(key).get(&key).copied()
    }

    pub fn insert(&self, key: u64, id: K) {
        let mut map = self.shard(key);
        if map.len() >= MAX_KEPT_IDS / SHARDS {
            map.clear();
        }
        map.insert(key, id);
    }

    /// [`KeptIds::insert`] only while the key's shard has room: for a pass
    /// over every user ([`super::Directory::warm`]), which in a directory
    /// larger than [`MAX_KEPT_IDS`] would otherwise empty each shard again
    /// and again.
    pub fn insert_if_room(&self, key: u64, id: K) {
        let mut map = self.shard(key);
        if map.len() < MAX_KEPT_IDS / SHARDS {
            map.insert(key, id);
        }
    }
}

/// SipHash of `bytes` in ASCII lowercase under `hashing`'s keys, fed in
/// chunks folded on the stack.
fn folded_hash(hashing: &std::collections::hash_map::RandomState, bytes: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = hashing.build_hasher();
    fold_into(&mut hasher, bytes);
    hasher.finish()
}

/// Feeds `bytes` in ASCII lowercase, and their length, to `hasher`.
fn fold_into(hasher: &mut impl std::hash::Hasher, bytes: &[u8]) {
    let mut buf = [0u8; 64];
    for chunk in bytes.chunks(buf.len()) {
        let folded = &mut buf[..chunk.len()];
        folded.copy_from_slice(chunk);
        folded.make_ascii_lowercase();
        hasher.write(folded);
    }
    hasher.write_usize(bytes.len());
}

/// Beyond this many kept misses a shard of [`KeptMisses`] forgets them.
const MAX_KEPT_MISSES: usize = 65_536;

/// A shard of [`KeptMisses`]: key → (check, finished writes when the
/// index missed).
type MissMap = HashMap<u64, (u64, u64), rustc_hash::FxBuildHasher>;

/// What a [`KeptMisses`] entry is checked against besides its key: the
/// looked-up value, hashed under the misses' own random keys.
#[derive(Clone, Copy)]
pub(super) enum Missed<'a> {
    UserName(&'a str),
    Email(&'a str),
    UidNumber(u32),
    GroupName(&'a str),
    GidNumber(u32),
}

/// Lookups by name, email or number that the store's index answered with
/// nothing, kept with the store's count of finished writes read before
/// the index was asked ([`Backend::finished_writes`]) and used only while
/// that count has not moved: Grafana's `(cn=X)` from the base DN asks for
/// a group named like every user who logs in, and each such miss walked
/// sled's pages. Any write (a user or group created or renamed, an email
/// or number set) moves the count once it is done, so the next lookup
/// asks the index again; a backend without such a count (PostgreSQL,
/// written by other instances) keeps nothing.
///
/// An entry is found by the [`KeptIds`] key of the value and checked
/// against a second hash of it under other random keys, so a different
/// value with the same key is not taken for a miss (both hashes would
/// have to collide). At most [`MAX_KEPT_MISSES`] are kept; a full shard
/// forgets what is stale, then everything.
///
/// [`Backend::finished_writes`]: crate::store::Backend::finished_writes
pub(super) struct KeptMisses {
    hashing: std::collections::hash_map::RandomState,
    shards: [Mutex<MissMap>; SHARDS],
}

impl Default for KeptMisses {
    fn default() -> Self {
        KeptMisses {
            hashing: std::collections::hash_map::RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::default())),
        }
    }
}

impl KeptMisses {
    fn check(&self, missed: Missed<'_>) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        // The kind goes into the check: the maps of names and of numbers
        // hand out keys that may meet in this one.
        let (kind, text) = match missed {
            Missed::UserName(name) => (0u8, name),
            Missed::Email(email) => (1, email),
            Missed::GroupName(name) => (3, name),
            Missed::UidNumber(n) => return self.hashing.hash_one((2u8, n)),
            Missed::GidNumber(n) => return self.hashing.hash_one((4u8, n)),
        };
        // Emails compare lowercased (Unicode), names ASCII-folded.
        if kind == 1 && !text.is_ascii() {
            return self.hashing.hash_one((kind, text.to_lowercase()));
        }
        // One pass: the kind, then the folded text.
        let mut hasher = self.hashing.build_hasher();
        hasher.write_u8(kind);
        fold_into(&mut hasher, text.as_bytes());
        hasher.finish()
    }

    fn shard(&self, key: u64) -> MutexGuard<'_, MissMap> {
        let index = usize::try_from(key >> 60).unwrap_or(0) % SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when the index found nothing for `missed` (kept under `key`)
    /// and no write has finished since: `writes` is the count now.
    pub fn is_missing(&self, key: u64, missed: Missed<'_>, writes: u64) -> bool {
        let kept = self.shard(key).get(&key).copied();
        kept.is_some_and(|(check, at)| at == writes && check == self.check(missed))
    }

    /// The index found nothing for `missed` with `writes` writes finished
    /// before it was asked.
    pub fn insert(&self, key: u64, missed: Missed<'_>, writes: u64) {
        let check = self.check(missed);
        let mut map = self.shard(key);
        if map.len() >= MAX_KEPT_MISSES / SHARDS {
            map.retain(|_, (_, at)| *at == writes);
            if map.len() >= MAX_KEPT_MISSES / SHARDS {
                map.clear();
            }
        }
        map.insert(key, (check, writes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(n: u128) -> UserId {
        UserId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn a_new_epoch_forgets_everything_and_an_old_one_stores_nothing() {
        let c = EpochCache::default();
        c.set_usernames(1, [(uid(1), Arc::from("alice"))]);
        assert_eq!(c.usernames(1, &[uid(1)])[0].as_deref(), Some("alice"));
        // The epoch moved: nothing cached under 1 is served.
        assert_eq!(c.usernames(2, &[uid(1)])[0], None);
        // A reader still at epoch 1 neither reads nor stores.
        c.set_usernames(1, [(uid(1), Arc::from("stale"))]);
        assert_eq!(c.usernames(1, &[uid(1)])[0], None);
        assert_eq!(c.usernames(2, &[uid(1)])[0], None);
    }

    fn group(id: u128, name: &str, description: Option<&str>) -> Group {
        Group {
            id: GroupId(uuid::Uuid::from_u128(id)),
            name: name.into(),
            gid_number: 4000 + u32::try_from(id).expect("small id"),
            description: description.map(Into::into),
            created: 0,
            modified: 0,
        }
    }

    #[test]
    fn a_group_entry_is_known_by_name_for_its_epoch_only() {
        use crate::directory::Dn;
        let c = EpochCache::default();
        let g = group(7, "Devs", None);
        let dn = Dn::parse("cn=Devs,ou=groups,dc=example,dc=com").expect("dn");
        assert!(!c.has_group_entry_named(3, "devs"));
        c.set_group_entry(3, &g, Arc::new(Entry::new(dn)));
        assert!(c.has_group_entry_named(3, "devs"));
        assert!(c.has_group_entry_named(3, "DEVS"));
        assert!(!c.has_group_entry_named(3, "ops"));
        // A membership change or a rename moves the epoch: forgotten.
        assert!(!c.has_group_entry_named(4, "devs"));
        assert!(!c.has_group_entry_named(3, "devs"));
    }

    #[test]
    fn a_scan_keeps_memberships_only_in_room_left() {
        let c = EpochCache::default();
        let groups: Arc<[GroupId]> = Arc::new([GroupId(uuid::Uuid::from_u128(1))]);
        // Users whose memberships share one shard, and one of another.
        let shard = shard_of(&uid(0));
        let mut same = (0..).map(uid).filter(|u| shard_of(u) == shard);
        let other = (0..).map(uid).find(|u| shard_of(u) != shard).expect("one");
        let first = same.next().expect("one");
        c.set_member_of(1, first, groups.clone());
        for u in same.by_ref().take(MAX_MEMBER_OF / SHARDS - 1) {
            c.set_member_of(1, u, groups.clone());
        }
        // Full: a scan stores nothing more there and drops nothing.
        let (a, b, d) = (
            same.next().expect("one"),
            same.next().expect("one"),
            same.next().expect("one"),
        );
        c.set_member_of_if_room(1, a, groups.clone());
        assert!(c.member_of(1, a).is_none());
        assert!(c.member_of(1, first).is_some());
        // Other shards still have room.
        c.set_member_of_if_room(1, other, groups.clone());
        assert!(c.member_of(1, other).is_some());
        // A lookup still makes room, as before.
        c.set_member_of(1, b, groups.clone());
        assert!(c.member_of(1, b).is_some());
        assert!(c.member_of(1, first).is_none());
        assert!(c.member_of(1, other).is_some());
        // With room, a scan stores.
        c.set_member_of_if_room(1, d, groups);
        assert!(c.member_of(1, d).is_some());
    }

    #[test]
    fn memberships_follow_the_epoch_in_every_shard() {
        let c = EpochCache::default();
        let groups: Arc<[GroupId]> = Arc::new([GroupId(uuid::Uuid::from_u128(1))]);
        let users: Vec<UserId> = (0..64).map(uid).collect();
        for u in &users {
            c.set_member_of(1, *u, groups.clone());
        }
        assert!(users.iter().all(|u| c.member_of(1, *u).is_some()));
        // One shard asked for epoch 2: a reader still at 1 gets nothing
        // from any shard, and stores nothing.
        assert!(c.member_of(2, users[0]).is_none());
        assert!(users.iter().all(|u| c.member_of(1, *u).is_none()));
        c.set_member_of(1, users[1], groups.clone());
        assert!(c.member_of(1, users[1]).is_none());
        // Epoch 2 starts empty in every shard, whatever epoch 1 kept.
        assert!(users.iter().all(|u| c.member_of(2, *u).is_none()));
        // Another part of the cache moving on counts too, both ways.
        c.set_member_of(2, users[2], groups.clone());
        c.set_usernames(2, [(users[3], Arc::from("carol"))]);
        c.set_usernames(3, [(users[3], Arc::from("carol"))]);
        assert!(c.member_of(2, users[2]).is_none());
        c.set_member_of(4, users[2], groups.clone());
        assert_eq!(c.usernames(3, &[users[3]])[0], None);
    }

    /// A full shard of misses forgets the stale ones first, then all: a
    /// client sending names that do not exist cannot grow it.
    #[test]
    fn kept_misses_stay_bounded() {
        let m = KeptMisses::default();
        let cap = MAX_KEPT_MISSES / SHARDS;
        let len = |m: &KeptMisses| m.shard(0).len();
        let key = |i: usize| u64::try_from(i).expect("small");
        for i in 0..cap {
            m.insert(key(i), Missed::UidNumber(7), 1);
        }
        assert_eq!(len(&m), cap);
        assert!(m.is_missing(key(3), Missed::UidNumber(7), 1));
        assert!(!m.is_missing(key(3), Missed::UidNumber(7), 2));
        assert!(!m.is_missing(key(3), Missed::GidNumber(7), 1));
        m.insert(key(cap), Missed::UidNumber(7), 2);
        assert_eq!(len(&m), 1, "the stale misses went");
        for i in 0..2 * cap {
            m.insert(key(i), Missed::UidNumber(7), 2);
        }
        assert!(len(&m) <= cap);
    }

    /// A miss is the one its key was kept for: the same value as the
    /// index compares it (names ASCII-folded, emails lowercased), and the
    /// same kind of lookup.
    #[test]
    fn a_kept_miss_is_checked_by_kind_and_folded_value() {
        let m = KeptMisses::default();
        m.insert(1, Missed::GroupName("Alice"), 5);
        assert!(m.is_missing(1, Missed::GroupName("alice"), 5));
        assert!(m.is_missing(1, Missed::GroupName("ALICE"), 5));
        assert!(!m.is_missing(1, Missed::GroupName("alicf"), 5));
        assert!(!m.is_missing(1, Missed::GroupName("alice "), 5));
        assert!(!m.is_missing(1, Missed::UserName("alice"), 5));
        assert!(!m.is_missing(1, Missed::Email("alice"), 5));
        m.insert(2, Missed::Email("Ünï@example.com"), 5);
        assert!(m.is_missing(2, Missed::Email("ünï@EXAMPLE.com"), 5));
        assert!(!m.is_missing(2, Missed::UserName("Ünï@example.com"), 5));
    }

    #[test]
    fn kept_ids_are_found_by_folded_keys_in_their_shards() {
        let kept: KeptIds<UserId> = KeptIds::default();
        for i in 0..1000u32 {
            kept.insert(kept.name_key(&format!("user{i}")), uid(u128::from(i)));
        }
        for i in 0..1000u32 {
            assert_eq!(
                kept.get(kept.name_key(&format!("USER{i}"))),
                Some(uid(u128::from(i)))
            );
        }
        assert_eq!(kept.get(kept.name_key("nobody")), None);
        // Names fold in ASCII only, longer ones across the chunks too.
        let long = "A".repeat(200);
        assert_eq!(kept.name_key(&long), kept.name_key(&long.to_lowercase()));
        assert_ne!(kept.name_key(&long), kept.name_key(&"a".repeat(199)));
        assert_ne!(kept.name_key("ÄBC"), kept.name_key("äbc"));
        // Emails fold as the index does (Unicode lowercase).
        assert_eq!(
            kept.email_key("ÄB@Example.org"),
            kept.email_key("äb@example.org")
        );
        assert_eq!(kept.email_key("A@B.C"), kept.name_key("a@b.c"));
        // Another map hashes with other keys.
        let other: KeptIds<UserId> = KeptIds::default();
        assert_ne!(kept.name_key("user1"), other.name_key("user1"));
        // A full shard is emptied, the others keep theirs.
        let shard = |k: u64| (k >> 60) as usize % SHARDS;
        let first = kept.name_key("user0");
        let same_shard = (1..).map(|i: u64| (first & (0xf << 60)) | i);
        for key in same_shard
            .filter(|&k| k != first)
            .take(MAX_KEPT_IDS / SHARDS)
        {
            kept.insert(key, uid(0));
        }
        assert_eq!(kept.get(first), None);
        let other = (1..1000u32)
            .find(|i| shard(kept.name_key(&format!("user{i}"))) != shard(first))
            .expect("one");
        assert_eq!(
            kept.get(kept.name_key(&format!("user{other}"))),
            Some(uid(u128::from(other)))
        );
    }

    /// A pass over every user keeps ids only while a shard has room: a
    /// full shard keeps what it holds, where an insert would empty it.
    #[test]
    fn a_full_shard_keeps_its_ids_when_inserted_into_if_room() {
        let kept: KeptIds<UserId> = KeptIds::default();
        // Keys below 2^60 all fall into the first shard.
        let per_shard = MAX_KEPT_IDS / SHARDS;
        for key in 0..per_shard as u64 {
            kept.insert_if_room(key, uid(1));
        }
        kept.insert_if_room(per_shard as u64, uid(2));
        assert_eq!(kept.get(per_shard as u64), None);
        assert_eq!(kept.get(0), Some(uid(1)));
        assert_eq!(kept.get(per_shard as u64 - 1), Some(uid(1)));
        // Another shard still takes its keys.
        kept.insert_if_room(1 << 60, uid(3));
        assert_eq!(kept.get(1 << 60), Some(uid(3)));
        // A lookup's insert empties the full shard instead.
        kept.insert(per_shard as u64, uid(2));
        assert_eq!(kept.get(per_shard as u64), Some(uid(2)));
        assert_eq!(kept.get(0), None);
    }

    #[test]
    fn derived_bytes_go_with_the_record_and_the_epoch() {
        use crate::directory::Dn;
        let c = EpochCache::default();
        let g = group(8, "devs", Some("one"));
        let dn = Dn::parse("cn=devs,ou=groups,dc=example,dc=com").expect("dn");
        c.set_group_entry(5, &g, Arc::new(Entry::new(dn.clone())));
        let (_, derived) = c.group_entry_derived(5, &g).expect("cached");
        derived.insert("k".into(), Bytes::from_static(b"body"));
        let (_, again) = c.group_entry_derived(5, &g).expect("cached");
        assert_eq!(again.get("k").as_deref(), Some(&b"body"[..]));
        // Another record of the group (a new description): not served.
        let changed = Group {
            description: Some("two".into()),
            ..g.clone()
        };
        assert!(c.group_entry_derived(5, &changed).is_none());
        // Built again from it: nothing derived from the old entry is left.
        c.set_group_entry(5, &changed, Arc::new(Entry::new(dn)));
        let (_, fresh) = c.group_entry_derived(5, &changed).expect("cached");
        assert_eq!(fresh.get("k"), None);
        // A new epoch forgets it all.
        assert!(c.group_entry_derived(6, &changed).is_none());
    }

    #[test]
    fn derived_bytes_stay_within_the_cache_budget() {
        use crate::directory::Dn;
        let c = EpochCache::default();
        let body = Bytes::from(vec![0u8; MAX_DERIVED_BYTES / 2 + 1]);
        let dn = |n: &str| Dn::parse(&format!("cn={n},ou=groups,dc=example,dc=com")).expect("dn");
        let (a, b) = (group(1, "a", None), group(2, "b", None));
        // Both groups' entries kept at `epoch`; their derived bodies.
        let kept = |epoch| {
            let keep = |g, name| {
                c.set_group_entry(epoch, g, Arc::new(Entry::new(dn(name))))
                    .expect("kept")
            };
            (keep(&a, "a"), keep(&b, "b"))
        };
        let (da, db) = kept(1);
        da.insert("k".into(), body.clone());
        assert!(da.get("k").is_some());
        // Two such bodies are more than the cache keeps: the second is not.
        db.insert("k".into(), body.clone());
        assert!(db.get("k").is_none());
        // A small one still fits.
        db.insert("small".into(), Bytes::from_static(b"body"));
        assert!(db.get("small").is_some());
        // The group's entry gone (a new epoch) gives its bytes back.
        drop((da, db));
        let (da, db) = kept(2);
        db.insert("k".into(), body.clone());
        assert!(db.get("k").is_some());
        // Replacing a body under its key counts it once.
        db.insert("k".into(), body.clone());
        da.insert(
            "k".into(),
            Bytes::from(vec![0u8; MAX_DERIVED_BYTES / 2 - 8]),
        );
        assert!(da.get("k").is_some());
    }
}
