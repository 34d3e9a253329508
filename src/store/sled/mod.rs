//! The sled backend of the store interface: the only module that knows
//! sled.
//!
//! Users, groups, memberships, password hashes and settings live in sled
//! trees; secondary indexes (username, email, uidNumber, group name,
//! gidNumber, membership in both directions) keep lookups off full scans.
//! Every change that touches more than one key runs in a sled transaction.
//! sled's types never appear in this interface, so a second backend can
//! implement the same operations later.
//!
//! # Trees
//! | tree | key | value |
//! | --- | --- | --- |
//! | `users` | user id | [`User`] as JSON |
//! | `groups` | group id | [`Group`] as JSON |
//! | `credentials` | user id | PHC string of the password hash |
//! | `idx_username` | lowercase username | user id |
//! | `idx_email` | lowercase email | user id |
//! | `idx_uid_number` | uidNumber (big-endian u32) | user id |
//! | `idx_group_name` | lowercase group name | group id |
//! | `idx_gid_number` | gidNumber (big-endian u32) | group id |
//! | `members` | group id ++ kind ++ member id | empty |
//! | `member_of` | kind ++ member id ++ group id | empty |
//! | `meta` | `schema_version`, `next_uid`, `next_gid`, `membership_epoch`, `setting/<key>` | |
//! | `mfa_*`, `app_password*`, `idx_app_password`, `group_policies` | see `mfa.rs` | |
//! | `group_attrs` | group id | the group's attributes (`group set-attr`) as a JSON map |
//! | `portal_sessions`, `idx_portal_session_user` | see `sessions.rs` | |
//!
//! Ids are the 16 bytes of their UUID; kind is `u` (user) or `g` (group).
//! See `keys.rs` for the encoders.
//!
//! # Durability
//! A write that returns `Ok` is on disk: every public write flushes before
//! it returns (through `committed`), so no caller flushes, and a crash after
//! an answer never loses what it reported. Writes wait for the disk, so
//! async callers run them on the blocking pool; debug builds panic when
//! one runs inside an LDAP operation on a reactor ([`crate::blocking`]).
//! The one exception is bookkeeping that no answer depends on
//! ([`crate::store::Backend::touch_app_password`]), written at once and flushed with
//! sled's next periodic flush.
//!
//! # Transactions
//! sled transactions cannot iterate, yet deleting an entity must remove
//! memberships found by a prefix scan, and adding a child group must walk
//! the group graph to refuse cycles. Those operations scan first and then
//! commit only if nothing changed memberships in between: every
//! transaction that adds or removes a membership increments the
//! `membership_epoch` counter in `meta`, and a transaction that relies on a
//! scan reads the epoch before the scan and aborts (and scans again) if it
//! differs inside the transaction. So a delete never leaves a dangling
//! membership behind and two concurrent `add_member` calls cannot build a
//! cycle between them. Reads outside transactions (`members`,
//! `transitive_*`, `users`, …) see each key's latest value, not a snapshot
//! across keys. Readers that key caches on the epoch read an in-memory
//! copy ([`crate::store::Backend::membership_epoch`]), advanced by `settle` after each
//! committed transaction that advanced the stored one.
//!
//! # Snapshots
//! Every write through the store interface holds a store-level lock
//! shared; a snapshot (backups, exports) holds it exclusively while it
//! reads the records and hands them to the export that writes them, so it
//! never sees half a transaction (`snapshot.rs`, with how long writes
//! wait at 1M users).
//!
//! # Decoded records
//! User and group records are decoded from JSON once per stored version
//! (`records.rs`), within a memory budget (`store.record_cache_mib`). A
//! kept record is used without reading sled while no write has finished
//! since it was last found current: every write advances a count of
//! writes when it is done ([`SledStore::writing`]'s guard, and [`settle`]
//! after each committed transaction).

mod backend;
mod bulk;
mod groups;
mod import;
mod keys;
mod mfa;
mod overlapped;
mod records;
mod sessions;
mod snapshot;
mod users;
mod write;

use super::validate;
use super::{
    now, Group, GroupId, Member, Result, StoreError, Timestamp, User, UserId, FIRST_GID_NUMBER,
    FIRST_UID_NUMBER,
};

use serde::{de::DeserializeOwned, Serialize};
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
    TransactionResult, TransactionalTree,
};
use sled::Tree;
use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Current on-disk schema version, kept under the `schema_version` key.
pub const SCHEMA_VERSION: u32 = 1;

// Keys of the `meta` tree.
const META_SCHEMA_VERSION: &[u8] = b"schema_version";
const META_NEXT_UID: &[u8] = b"next_uid";
const META_NEXT_GID: &[u8] = b"next_gid";
/// Incremented by every transaction that changes memberships; see the
/// module documentation.
const META_MEMBERSHIP_EPOCH: &[u8] = b"membership_epoch";
const SETTING_PREFIX: &str = "setting/";
/// Value of the membership index entries: the key says it all.
const EMPTY: &[u8] = &[];

/// How often a scan-then-commit operation starts over because memberships
/// changed under it before it gives up. Each attempt is a few prefix scans,
/// so this is only reached under pathological churn.
const MAX_ATTEMPTS: usize = 64;

/// The sled backend: one embedded database, owned by one process. Cheap
/// to clone, shared by all tasks.
#[derive(Clone)]
pub struct SledStore {
    t: Arc<Trees>,
}

struct Trees {
    db: sled::Db,
    users: Tree,
    groups: Tree,
    credentials: Tree,
    idx_username: Tree,
    idx_email: Tree,
    idx_uid: Tree,
    idx_group_name: Tree,
    idx_gid: Tree,
    members: Tree,
    member_of: Tree,
    meta: Tree,
    /// Attributes of groups that steer the portal (`group set-attr`).
    group_attrs: Tree,
    /// Second factors, app passwords and group policies (`mfa.rs`).
    mfa: mfa::MfaTrees,
    /// Portal sessions (`sessions.rs`).
    sessions: sessions::SessionTrees,
    /// What [`SledStore::membership_epoch`] answers: advanced after every
    /// committed transaction that advanced the stored epoch (see
    /// [`settle`]), so readers get it without a database read.
    epoch: AtomicU64,
    /// Writes finished since the store opened: advanced after every write
    /// (see [`SledStore::writes`]).
    writes: AtomicU64,
    /// Decoded user and group records (`records.rs`).
    user_records: records::Records<UserId, User>,
    /// Every user's record, while no write has finished since a walk
    /// found them (`records.rs`).
    user_list: records::UserList,
    group_records: records::Records<GroupId, Group>,
    /// Writes hold it shared, a snapshot exclusively (`snapshot.rs`).
    snapshot_lock: std::sync::RwLock<()>,
}

impl Trees {
    /// A write finished: advances the count of finished writes
    /// ([`SledStore::writes`]) and drops the user list it made stale.
    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.user_list.clear();
    }
}

thread_local! {
    /// Set by [`tx_check_and_bump_epoch`] on the thread that runs the
    /// transaction, taken by [`settle`] when the transaction returns.
    static EPOCH_BUMPED: Cell<bool> = const { Cell::new(false) };
}

/// Why a transaction closure gave up.
#[derive(Debug)]
enum TxAbort {
    /// The request was refused; the caller gets this error.
    Refused(StoreError),
    /// Memberships changed since the scan this transaction relies on; scan
    /// again and retry.
    Stale,
}

type TxResult<T> = ConflictableTransactionResult<T, TxAbort>;

fn abort(e: StoreError) -> ConflictableTransactionError<TxAbort> {
    ConflictableTransactionError::Abort(TxAbort::Refused(e))
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The outcome of one attempt: `Ok(None)` means stale, try again.
///
/// Every transaction ends here (directly or through [`once`]): when it
/// committed and advanced the stored membership epoch, the in-memory epoch
/// advances too, before the caller can answer anyone. A flag left over from
/// an attempt that sled retried only advances it once more than needed,
/// which costs the caches a refill, never a stale answer.
fn settle<T>(t: &Trees, r: TransactionResult<T, TxAbort>) -> Result<Option<T>> {
    if EPOCH_BUMPED.replace(false) && r.is_ok() {
        t.epoch.fetch_add(1, Ordering::AcqRel);
    }
    if r.is_ok() {
        t.wrote();
    }
    match r {
        Ok(v) => Ok(Some(v)),
        Err(TransactionError::Abort(TxAbort::Stale)) => Ok(None),
        Err(TransactionError::Abort(TxAbort::Refused(e))) => Err(e),
        Err(TransactionError::Storage(e)) => Err(backend(e)),
    }
}

/// The outcome of a transaction that never reports [`TxAbort::Stale`].
fn once<T>(t: &Trees, r: TransactionResult<T, TxAbort>) -> Result<T> {
    settle(t, r)?.ok_or_else(|| StoreError::Backend("unexpected stale transaction".into()))
}

/// Runs `attempt` until it is not stale, at most [`MAX_ATTEMPTS`] times.
fn retrying<T>(what: &str, mut attempt: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    for _ in 0..MAX_ATTEMPTS {
        if let Some(v) = attempt()? {
            return Ok(v);
        }
    }
    Err(StoreError::Backend(format!(
        "{what}: memberships kept changing during {MAX_ATTEMPTS} attempts"
    )))
}

fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("encoding {what}: {e}")))
}

/// `what` names the record in the error; it is formatted only then (a
/// user read formatted its UUID on every call).
fn decode<T: DeserializeOwned>(what: impl std::fmt::Display, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Backend(format!("corrupt {what}: {e}")))
}

/// Case-folded key of a user or group name (names are ASCII by rule).
fn name_key(name: &str) -> Vec<u8> {
    name.to_ascii_lowercase().into_bytes()
}

/// Case-folded key of an email address (which may be internationalised).
fn email_key(email: &str) -> Vec<u8> {
    email.to_lowercase().into_bytes()
}

/// Moves the email index entry of a user whose email changed; `taken`
/// makes the refusal when another user holds the new address.
fn tx_reindex_email(
    idx_email: &TransactionalTree,
    before: &User,
    after: &User,
    taken: impl FnOnce(&User) -> ConflictableTransactionError<TxAbort>,
) -> TxResult<()> {
    let old_key = before.email.as_deref().map(email_key);
    let new_key = after.email.as_deref().map(email_key);
    if old_key == new_key {
        return Ok(());
    }
    let id_bytes = keys::user_key(before.id);
    if let Some(new_key) = &new_key {
        if idx_email
            .get(&**new_key)?
            .is_some_and(|owner| *owner != id_bytes)
        {
            return Err(taken(after));
        }
    }
    if let Some(old_key) = &old_key {
        if idx_email
            .get(&**old_key)?
            .is_some_and(|owner| *owner == id_bytes)
        {
            idx_email.remove(&**old_key)?;
        }
    }
    if let Some(new_key) = new_key {
        idx_email.insert(new_key, &id_bytes)?;
    }
    Ok(())
}

/// The refusal of an email address another user holds.
fn email_taken(after: &User) -> ConflictableTransactionError<TxAbort> {
    abort(StoreError::AlreadyExists(format!(
        "email {}",
        after.email.as_deref().unwrap_or_default()
    )))
}

fn setting_key(key: &str) -> Vec<u8> {
    format!("{SETTING_PREFIX}{key}").into_bytes()
}

fn member_label(member: Member) -> String {
    match member {
        Member::User(u) => format!("user {u}"),
        Member::Group(g) => format!("group {g}"),
    }
}

// --- helpers inside transactions ---

fn tx_user(users: &TransactionalTree, id: UserId) -> TxResult<Option<User>> {
    match users.get(keys::user_key(id))? {
        Some(b) => Ok(Some(decode(format_args!("user {id}"), &b).map_err(abort)?)),
        None => Ok(None),
    }
}

fn tx_group(groups: &TransactionalTree, id: GroupId) -> TxResult<Option<Group>> {
    match groups.get(keys::group_key(id))? {
        Some(b) => Ok(Some(decode(format_args!("group {id}"), &b).map_err(abort)?)),
        None => Ok(None),
    }
}

fn tx_put_user(users: &TransactionalTree, user: &User) -> TxResult<()> {
    let bytes = encode("user", user).map_err(abort)?;
    users.insert(&keys::user_key(user.id), bytes)?;
    Ok(())
}

fn tx_put_group(groups: &TransactionalTree, group: &Group) -> TxResult<()> {
    let bytes = encode("group", group).map_err(abort)?;
    groups.insert(&keys::group_key(group.id), bytes)?;
    Ok(())
}

/// Sets `modified` of a group whose member list changed, if it still exists.
fn tx_touch_group(groups: &TransactionalTree, id: GroupId, at: Timestamp) -> TxResult<()> {
    if let Some(mut g) = tx_group(groups, id)? {
        g.modified = at;
        tx_put_group(groups, &g)?;
    }
    Ok(())
}

fn tx_counter(meta: &TransactionalTree, key: &[u8], default: u32) -> TxResult<u32> {
    match meta.get(key)? {
        Some(b) => Ok(keys::number(&b).map_err(abort)?),
        None => Ok(default),
    }
}

fn tx_epoch(meta: &TransactionalTree) -> TxResult<u64> {
    match meta.get(META_MEMBERSHIP_EPOCH)? {
        Some(b) => Ok(keys::number64(&b).map_err(abort)?),
        None => Ok(0),
    }
}

/// Aborts as stale unless the stored epoch is still `seen` (from
/// [`SledStore::stored_epoch`]); then advances it. The transaction must be
/// finished through [`settle`] or [`once`], which advance the in-memory
/// epoch readers see.
fn tx_check_and_bump_epoch(meta: &TransactionalTree, seen: Option<u64>) -> TxResult<()> {
    let current = tx_epoch(meta)?;
    if seen.is_some_and(|seen| seen != current) {
        return Err(ConflictableTransactionError::Abort(TxAbort::Stale));
    }
    meta.insert(
        META_MEMBERSHIP_EPOCH,
        &current.wrapping_add(1).to_be_bytes(),
    )?;
    EPOCH_BUMPED.set(true);
    Ok(())
}

/// Hands out the next number by the domain's rule
/// ([`crate::domain::rules::allocate_number`]) from the counter at
/// `counter`, with `taken_a` and `taken_b` saying what is used, and
/// advances the counter past it, inside the caller's transaction.
fn tx_allocate(
    meta: &TransactionalTree,
    counter: &[u8],
    first: u32,
    taken_a: &TransactionalTree,
    taken_b: &TransactionalTree,
    what: &str,
    hint: u32,
) -> TxResult<u32> {
    // From the hint when it is ahead: the numbers between the counter and
    // it were all taken when [`SledStore::first_free`] walked them, and
    // skipping one freed since is allowed (numbers only go up). Without
    // it, a counter lying below a long run of used numbers (a million
    // imported users numbered across the gid counter) is walked here one
    // transactional read per number.
    let current = tx_counter(meta, counter, first)?.max(hint);
    let (n, next) = crate::domain::rules::allocate_number(
        current,
        first,
        |n| {
            let key = keys::number_key(n);
            Ok(taken_a.get(key)?.is_some() || taken_b.get(key)?.is_some())
        },
        || abort(StoreError::Invalid(format!("{what} numbers are exhausted"))),
    )?;
    meta.insert(counter, &keys::number_key(next))?;
    Ok(n)
}

impl SledStore {
    /// The first number from `n` that neither number index holds (where
    /// an allocation from `n` lands), found by walking both indexes in
    /// order rather than by a lookup per number. Outside a transaction:
    /// a hint for [`tx_allocate`].
    pub(super) fn first_free(&self, mut n: u32) -> Result<u32> {
        let t = &self.t;
        let mut uids = t.idx_uid.range(keys::number_key(n)..);
        let mut gids = t.idx_gid.range(keys::number_key(n)..);
        let next = |it: &mut sled::Iter| -> Result<Option<u32>> {
            match it.next() {
                Some(kv) => Ok(Some(keys::number(&kv.map_err(backend)?.0)?)),
                None => Ok(None),
            }
        };
        let (mut u, mut g) = (next(&mut uids)?, next(&mut gids)?);
        loop {
            while u.is_some_and(|u| u < n) {
                u = next(&mut uids)?;
            }
            while g.is_some_and(|g| g < n) {
                g = next(&mut gids)?;
            }
            if (u != Some(n) && g != Some(n)) || n == u32::MAX {
                return Ok(n);
            }
            n += 1;
        }
    }

    /// Where [`tx_allocate`] of `counter` may start: the first number
    /// neither index holds from the counter's stored value.
    pub(super) fn allocation_hint(&self, counter: &[u8], first: u32) -> Result<u32> {
        let current = match self.t.meta.get(counter).map_err(backend)? {
            Some(b) => keys::number(&b)?,
            None => first,
        };
        self.first_free(current.max(first))
    }
}

impl SledStore {
    /// Opens (creating if needed) the database in `dir`, with the default
    /// record cache.
    pub fn open(dir: &Path) -> Result<SledStore> {
        SledStore::open_with_cache(dir, crate::store::DEFAULT_RECORD_CACHE_MIB << 20)
    }

    /// [`SledStore::open`] keeping at most `record_cache` bytes of decoded
    /// records (`records.rs`): seven eighths for users, the rest for
    /// groups.
    pub fn open_with_cache(dir: &Path, record_cache: usize) -> Result<SledStore> {
        SledStore::open_with(dir, record_cache, None)
    }

    /// [`SledStore::open_with_cache`] with sled's page cache at most
    /// `page_cache` bytes (`None`: sled's default, 1 GiB).
    pub fn open_with(
        dir: &Path,
        record_cache: usize,
        page_cache: Option<u64>,
    ) -> Result<SledStore> {
        let path = dir.join("db");
        std::fs::create_dir_all(&path)
            .map_err(|e| StoreError::Backend(format!("creating {}: {e}", path.display())))?;
        // The database holds password hashes: only the owner may look in.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| StoreError::Backend(format!("securing {}: {e}", path.display())))?;
        }
        let db = open_waiting_for_lock(&path, page_cache)?;
        SledStore::from_db(db, record_cache)
    }

    /// A throw-away in-memory database, for tests and fuzzing.
    pub fn temporary() -> Result<SledStore> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(backend)?;
        SledStore::from_db(db, crate::store::DEFAULT_RECORD_CACHE_MIB << 20)
    }

    fn from_db(db: sled::Db, record_cache: usize) -> Result<SledStore> {
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let t = Trees {
            users: tree("users")?,
            groups: tree("groups")?,
            credentials: tree("credentials")?,
            idx_username: tree("idx_username")?,
            idx_email: tree("idx_email")?,
            idx_uid: tree("idx_uid_number")?,
            idx_group_name: tree("idx_group_name")?,
            idx_gid: tree("idx_gid_number")?,
            members: tree("members")?,
            member_of: tree("member_of")?,
            meta: tree("meta")?,
            group_attrs: tree("group_attrs")?,
            mfa: mfa::MfaTrees::open(&db)?,
            sessions: sessions::SessionTrees::open(&db)?,
            epoch: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            user_records: records::Records::new(record_cache - record_cache / 8),
            user_list: records::UserList::default(),
            group_records: records::Records::new(record_cache / 8),
            snapshot_lock: std::sync::RwLock::new(()),
            db,
        };
        let store = SledStore { t: Arc::new(t) };
        store.check_schema()?;
        // A bulk import cut short by a crash is undone before anyone reads.
        store.recover_import()?;
        // The epoch never goes back across a restart (the interface's
        // contract): the in-memory copy starts where the stored one is.
        store
            .t
            .epoch
            .store(store.stored_epoch()?, Ordering::Release);
        Ok(store)
    }

    /// Stamps a new database with [`SCHEMA_VERSION`] and its counters, or
    /// checks that an existing one is a version this build understands.
    fn check_schema(&self) -> Result<()> {
        let t = &self.t;
        if let Some(b) = t.meta.get(META_SCHEMA_VERSION).map_err(backend)? {
            let version = keys::number(&b)?;
            return match version {
                SCHEMA_VERSION => Ok(()),
                v if v > SCHEMA_VERSION => Err(StoreError::Invalid(format!(
                    "the database has schema version {v}, newer than the {SCHEMA_VERSION} this \
                     build of portcullis understands; run a newer portcullis"
                ))),
                v => Err(StoreError::Invalid(format!(
                    "the database has unknown schema version {v} (this build uses {SCHEMA_VERSION})"
                ))),
            };
        }
        let has_data = [&t.users, &t.groups, &t.credentials, &t.meta]
            .iter()
            .any(|tree| !tree.is_empty());
        if has_data {
            return Err(StoreError::Invalid(
                "the database holds data but no schema version; refusing to open it".into(),
            ));
        }
        once(
            &self.t,
            t.meta.transaction(|meta| {
                meta.insert(META_SCHEMA_VERSION, &keys::number_key(SCHEMA_VERSION))?;
                meta.insert(META_NEXT_UID, &keys::number_key(FIRST_UID_NUMBER))?;
                meta.insert(META_NEXT_GID, &keys::number_key(FIRST_GID_NUMBER))?;
                Ok(())
            }),
        )
    }

    /// Writes everything to disk before returning. Callers never need it
    /// for durability (every write returns only once durable); `serve`
    /// calls it once at shutdown for bookkeeping that is not flushed on
    /// its own (app passwords' last use).
    pub fn flush(&self) -> Result<()> {
        crate::blocking::assert_may_block("a store flush");
        self.t.db.flush().map(|_| ()).map_err(backend)
    }

    /// Makes a write that just committed durable: every public write ends
    /// here before it returns `Ok`. Blocking (an fsync).
    fn committed<T>(&self, written: Result<T>) -> Result<T> {
        let out = written?;
        crate::blocking::assert_may_block("a durable store write");
        self.t.db.flush().map_err(backend)?;
        Ok(out)
    }

    /// A counter that grows with every transaction that adds or removes a
    /// membership (including the deletes of users and groups, and imports).
    /// Readers that cache what depends on memberships (the directory's
    /// transitive groups, built group entries, …) key their cache on it;
    /// read it *before* the data it guards, so a cached value is never
    /// older than its epoch. Usernames and group names never change under an
    /// id; an operation that renames must bump this epoch too.
    ///
    /// It is kept in memory (it starts at the stored value when the store
    /// opens) and moves
    /// when such a transaction commits, before the writer returns; a
    /// reader running alongside the write may see either value, as it may
    /// see either state of the data.
    pub fn membership_epoch(&self) -> Result<u64> {
        Ok(self.t.epoch.load(Ordering::Acquire))
    }

    /// Raises the stored epoch (in a transaction on `meta`, so it
    /// conflicts with every membership transaction) and the in-memory copy.
    pub fn raise_membership_epoch(&self, at_least: u64) -> Result<u64> {
        let raised = self.t.meta.transaction(|meta| {
            if tx_epoch(meta)? < at_least {
                meta.insert(META_MEMBERSHIP_EPOCH, &at_least.to_be_bytes())?;
            }
            Ok(())
        });
        self.committed(once(&self.t, raised))?;
        let before = self.t.epoch.fetch_max(at_least, Ordering::AcqRel);
        Ok(before.max(at_least))
    }

    /// The epoch as stored, for transactions that abort when it moved
    /// since their scan ([`tx_check_and_bump_epoch`]).
    fn stored_epoch(&self) -> Result<u64> {
        match self.t.meta.get(META_MEMBERSHIP_EPOCH).map_err(backend)? {
            Some(b) => keys::number64(&b),
            None => Ok(0),
        }
    }

    // --- settings ---
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        match self.t.meta.get(setting_key(key)).map_err(backend)? {
            Some(b) => String::from_utf8(b.to_vec())
                .map(Some)
                .map_err(|_| StoreError::Backend(format!("corrupt setting {key:?}"))),
            None => Ok(None),
        }
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.committed(self.set_setting_uncommitted(key, value))
    }

    fn set_setting_uncommitted(&self, key: &str, value: &str) -> Result<()> {
        self.t
            .meta
            .insert(setting_key(key), value.as_bytes())
            .map(|_| ())
            .map_err(backend)
    }

    /// Removes a setting; `Ok(false)` if it was not set.
    pub fn remove_setting(&self, key: &str) -> Result<bool> {
        self.committed(self.remove_setting_uncommitted(key))
    }

    fn remove_setting_uncommitted(&self, key: &str) -> Result<bool> {
        self.t
            .meta
            .remove(setting_key(key))
            .map(|old| old.is_some())
            .map_err(backend)
    }
}

/// How long [`SledStore::open`] waits for a lock that a just-closed handle in
/// this process has not yet released.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Opens the sled database at `path`, waiting up to [`LOCK_WAIT`] for its
/// file lock.
///
/// sled 0.34 releases the lock from a background thread some time after
/// the last handle is dropped (spacejam/sled#1289), so closing a store and
/// opening it again at once (a restart in-process, the CLI right after the
/// server stopped) can find it still held. sled reports that only as an
/// `Other` I/O error with a fixed message, hence the text match.
fn open_waiting_for_lock(path: &Path, page_cache: Option<u64>) -> Result<sled::Db> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        let mut cfg = sled::Config::new().path(path);
        if let Some(bytes) = page_cache {
            cfg = cfg.cache_capacity(bytes);
        }
        match cfg.open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= deadline {
                    return Err(StoreError::Backend(format!(
                        "opening {}: the database is in use by another process \
                         (is `portcullis serve` running?): {e}",
                        path.display()
                    )));
                }
                std::thread::sleep(LOCK_POLL);
            }
            Err(e) => {
                return Err(StoreError::Backend(format!(
                    "opening {}: {e}",
                    path.display()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests;
