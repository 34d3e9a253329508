//! The store interface: what every backend implements, and the contract
//! callers rely on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use super::import::{Batch, BatchMode, BatchReport, BatchUser};
use super::mfa::{
    AppPassword, AppPasswordId, CredentialKind, Device, DeviceId, GroupPolicy, KeyedHash,
    RawAppPassword, RawDevice, TotpSecret,
};
use super::{
    Group, GroupId, GroupSnapshot, Member, NewUser, PortalSession, Result, SessionHash, Snapshot,
    Timestamp, User, UserId,
};
use crate::domain::snapshot::SnapshotSink;

/// The store interface. `sled` (embedded, the default) implements it; a
/// networked backend implements the same methods and passes the same
/// conformance suite (`store::conformance`, run against every backend).
///
/// # Contract
/// - **Durable on `Ok`.** A write that returns `Ok` is durable: it
///   survives a crash or a restart the moment it returns, so no caller
///   ever flushes. ([`Backend::touch_app_password`] and
///   [`Backend::touch_session`] are the exceptions: bookkeeping that no
///   answer depends on.) Writes may wait for the disk
///   or the network: async callers run them on the blocking pool, and the
///   LDAP reactors never call them (debug builds check this,
///   `crate::blocking`).
/// - **Atomic change sets, checked against what was read.** A write that
///   touches several records (a user with its indexes, a group with its
///   members, an import batch) lands completely or not at all.
///   [`Backend::replace_user`] writes only if the record is still the one
///   the caller read, and [`Backend::replace_group`] only if the
///   memberships are still at the version of the caller's
///   [`GroupSnapshot`]; otherwise they answer `Ok(None)` and the caller
///   plans again from a fresh read.
/// - **Codes are consumed exactly once.** [`Backend::advance_totp_step`]
///   and [`Backend::consume_static_token`] are atomic: of any number of
///   concurrent calls with the same code (through any process that shares
///   the backend), exactly one answers `true`.
/// - **The membership epoch.** [`Backend::membership_epoch`] grows with
///   every committed change to memberships or names (adds, removes,
///   deletes, renames, imports) made through any process sharing the
///   backend. Read models cache what depends on memberships keyed on it,
///   reading it before the data it guards; a networked backend keeps it as
///   a row and tells other instances through a notification.
/// - **Reads** see every write that returned before them. They see each
///   record's latest committed value, not a snapshot across records.
/// - **One consistent snapshot.** [`Backend::snapshot`] answers every
///   record (users with credentials and second factors, groups with
///   members and policies, settings, counters) as of one instant: each
///   change set is in it completely or not at all, so every member names
///   a user or group of the same snapshot. Reads go on while it is taken;
///   writes may wait for it (sled) or not (a database's REPEATABLE READ
///   transaction), but never see it fail because of them. Portal sessions
///   are not part of a snapshot.
/// - **The domain's rules, enforced atomically.** The rules themselves live
///   above every backend, in `crate::domain`: names, emails and texts
///   (`validate`), number allocation, nesting without cycles and what a
///   merge import changes (`rules`). A backend calls them inside its
///   transaction, so the check and the write are one step for every
///   process that shares it; it adds no rule of its own.
/// - **Errors**: `NotFound`, `AlreadyExists` and `Invalid` describe the
///   request; `Backend` is a failure of the storage itself, whose detail
///   is for the log.
///
/// Nothing here assumes the backend runs in this process: the hot search
/// path may keep an in-process read model (`crate::directory`), fed by
/// these reads and invalidated by the epoch.
pub trait Backend: Send + Sync {
    /// Writes everything to disk before returning. Callers never need it
    /// for durability (every write returns only once durable); `serve`
    /// calls it once at shutdown for bookkeeping that is not flushed on
    /// its own (app passwords' last use).
    fn flush(&self) -> Result<()>;

    /// A counter that grows with every transaction that adds or removes a
    /// membership (including the deletes of users and groups, and imports).
    /// Readers that cache what depends on memberships (the directory's
    /// transitive groups, built group entries, …) key their cache on it;
    /// read it *before* the data it guards, so a cached value is never
    /// older than its epoch. Usernames and group names never change under an
    /// id; an operation that renames must bump this epoch too.
    ///
    /// It is kept in memory (it starts at 0 when the store opens) and moves
    /// when such a transaction commits, before the writer returns; a
    /// reader running alongside the write may see either value, as it may
    /// see either state of the data.
    fn membership_epoch(&self) -> Result<u64>;

    /// Moves the membership epoch up to at least `at_least` (never down)
    /// and answers [`Backend::membership_epoch`] after the move: a store
    /// that takes over from another (`migrate-store`) continues its epoch,
    /// so nothing keyed on an epoch the old store handed out is taken for
    /// current. sled raises its stored epoch and its in-memory copy (which
    /// a later process starts at 0 again, as always).
    fn raise_membership_epoch(&self, at_least: u64) -> Result<u64>;

    /// Brings what this process reads up to every change committed,
    /// through any process sharing the backend, before the call. Bind
    /// calls it before it reads a user's record, password hash, devices
    /// and policies, so a password changed or an account disabled through
    /// another process is refused at the very next bind here. A backend
    /// whose reads always go to the shared storage (sled, the database
    /// layer of PostgreSQL) has nothing to do. An error means the shared
    /// storage did not answer in time: reads then answer as of the last
    /// catch-up, and the caller may go on with them.
    fn refresh(&self) -> Result<()>;

    /// Whether [`Backend::refresh`] has anything to do (a read model fed
    /// from a shared database): callers skip the hop to the blocking pool
    /// it would need otherwise. sled and the database layer: `false`.
    fn has_read_model(&self) -> bool;

    /// Whether a read of what the read model does not hold (secrets
    /// looked up by hash, TOTP steps) waits on another process over the
    /// network: callers then make it on the blocking pool, never on a
    /// reactor. sled (local): `false`.
    fn reads_wait(&self) -> bool {
        false
    }

    /// A bind's questions to a shared database, asked together: the
    /// failure counters' [`FailureCounters::locked_until`] of `counter`,
    /// the catch-up of [`Backend::refresh`] and, for a password that looks
    /// like an app password, [`Backend::app_password_by_hash`] of its
    /// keyed hash. They start at once on the store's own runtime and go
    /// out on one connection, so the database answers them in one round
    /// trip and no thread blocks on any. The future may be awaited on any
    /// runtime (a reactor's). `None` (the default, and wherever they are
    /// not one database's): the caller asks each itself.
    fn bind_reads(&self, counter: &[u8], app_password: Option<&KeyedHash>) -> Option<BindReading> {
        let _ = (counter, app_password);
        None
    }

    /// A count of the writes finished since the store opened, for caches
    /// of values derived from several records: a value computed after
    /// reading this count is current while the count has not moved,
    /// since every write moves it once it is done; all but the record of
    /// an app password's last use ([`Backend::touch_app_password`]),
    /// which no such value may derive from. `None` for a backend
    /// that keeps no such count (PostgreSQL, written by other instances
    /// too): its callers compute every time.
    fn finished_writes(&self) -> Option<u64> {
        None
    }

    /// Creates a user, allocating id, uidNumber (= gidNumber) and timestamps.
    ///
    /// The uidNumber comes from a counter that only goes up, and skips any
    /// number that a group already uses as its gidNumber, so a user's
    /// private gidNumber never names a real group.
    fn create_user(&self, new: NewUser) -> Result<User>;

    fn user(&self, id: UserId) -> Result<Option<User>>;

    /// The user's record as stored now, decoded once per stored version
    /// (see `records.rs`): the stored bytes are read on every call.
    fn user_shared(&self, id: UserId) -> Result<Option<Arc<User>>>;

    /// Whether the user exists and is enabled (the access check of every
    /// search asks this).
    fn user_is_active(&self, id: UserId) -> Result<bool>;

    /// The id of the user with this name (case-insensitive), from the index
    /// alone: for callers that need only the id (a search planning its
    /// candidates), which then read the record or find it gone.
    fn user_id_by_name(&self, username: &str) -> Result<Option<UserId>>;

    /// [`Backend::user_id_by_name`] by email address (case-insensitive).
    fn user_id_by_email(&self, email: &str) -> Result<Option<UserId>>;

    /// [`Backend::user_id_by_name`] by uidNumber.
    fn user_id_by_uid_number(&self, uid_number: u32) -> Result<Option<UserId>>;

    /// Case-insensitive.
    fn user_by_name(&self, username: &str) -> Result<Option<User>>;

    /// Case-insensitive.
    fn user_by_email(&self, email: &str) -> Result<Option<User>>;

    fn user_by_uid_number(&self, uid_number: u32) -> Result<Option<User>>;

    /// All users, ordered by lowercase username.
    fn users(&self) -> Result<Vec<User>>;

    /// [`Backend::users`], each record shared ([`Backend::user_shared`]).
    fn users_shared(&self) -> Result<Vec<Arc<User>>>;

    /// Calls `each` with every user in [`Backend::users`]'s order until it
    /// returns false. A backend that can walks its records as it goes, so
    /// a search over every user never lists a million of them first.
    fn each_user_shared(&self, each: &mut dyn FnMut(&Arc<User>) -> Result<bool>) -> Result<()> {
        for user in self.users_shared()? {
            if !each(&user)? {
                break;
            }
        }
        Ok(())
    }

    /// Number of users. Walks the user tree: O(users), meant for reports,
    /// not for every request.
    fn user_count(&self) -> Result<usize>;

    /// Applies `change` to the user atomically, keeping the email index right
    /// and setting `modified`. `change` may run more than once (retries).
    ///
    /// `change` must not call into the store (it runs inside the
    /// transaction). It may not change `id`, `username`, `uid_number` or
    /// `cred_generation` (`Invalid` otherwise); the store bumps
    /// `cred_generation` itself when `disabled` changes. A changed email is
    /// validated and must stay unique.
    fn update_user(&self, id: UserId, change: &dyn Fn(&mut User) -> Result<()>) -> Result<User>;

    /// Removes the user, its credentials and its memberships.
    fn delete_user(&self, id: UserId) -> Result<()>;

    /// The PHC string of the user's password hash, if a password is set.
    fn password_hash(&self, id: UserId) -> Result<Option<String>>;

    /// Stores a new password hash; sets `pwd_changed`, bumps `cred_generation`.
    fn set_password_hash(&self, id: UserId, phc: &str) -> Result<()>;

    /// Creates a group, allocating id, gidNumber and timestamps.
    ///
    /// The gidNumber comes from a counter that only goes up, and skips any
    /// number that a user already holds as uidNumber (users' private group
    /// numbers), so the two ranges never collide.
    fn create_group(&self, name: &str, description: Option<String>) -> Result<Group>;

    fn group(&self, id: GroupId) -> Result<Option<Group>>;

    /// The group's record as stored now, decoded once per stored version
    /// (see `records.rs`).
    fn group_shared(&self, id: GroupId) -> Result<Option<Arc<Group>>>;

    /// The id of the group with this name (case-insensitive), from the
    /// index alone (see [`Backend::user_id_by_name`]).
    fn group_id_by_name(&self, name: &str) -> Result<Option<GroupId>>;

    /// [`Backend::group_id_by_name`] by gidNumber.
    fn group_id_by_gid_number(&self, gid_number: u32) -> Result<Option<GroupId>>;

    /// Case-insensitive.
    fn group_by_name(&self, name: &str) -> Result<Option<Group>>;

    fn group_by_gid_number(&self, gid_number: u32) -> Result<Option<Group>>;

    /// All groups, ordered by lowercase name.
    fn groups(&self) -> Result<Vec<Group>>;

    /// Removes the group, its attributes and every membership to and
    /// from it.
    fn delete_group(&self, id: GroupId) -> Result<()>;

    /// The group's attributes (keys such as
    /// `goauthentik.io/user/can-change-name`), empty when none is set.
    fn group_attrs(&self, id: GroupId) -> Result<BTreeMap<String, String>>;

    /// Sets (`Some`) or removes (`None`) one attribute of a group;
    /// `Ok(false)` when nothing changed, `NotFound` without the group.
    fn set_group_attr(&self, id: GroupId, key: &str, value: Option<&str>) -> Result<bool>;

    /// Adds a direct member. `Ok(false)` if it already was one. Refuses a
    /// child group that would create a cycle with `StoreError::Invalid`.
    fn add_member(&self, group: GroupId, member: Member) -> Result<bool>;

    /// `Ok(false)` if it was not a member.
    fn remove_member(&self, group: GroupId, member: Member) -> Result<bool>;

    /// Direct members of a group (users and child groups): child groups
    /// first, then users, each in id order.
    fn members(&self, group: GroupId) -> Result<Vec<Member>>;

    /// Groups of which `member` is a direct member.
    fn groups_of(&self, member: Member) -> Result<Vec<GroupId>>;

    /// Every group `member` belongs to, directly or through nested groups,
    /// each once, nearest first. Safe against cycles (which the store
    /// refuses to create anyway).
    fn transitive_groups_of(&self, member: Member) -> Result<Vec<GroupId>>;

    /// Every user in `group` or in any group nested in it, each once.
    fn transitive_user_members(&self, group: GroupId) -> Result<Vec<UserId>>;

    fn setting(&self, key: &str) -> Result<Option<String>>;

    fn set_setting(&self, key: &str, value: &str) -> Result<()>;

    /// Removes a setting; `Ok(false)` if it was not set.
    fn remove_setting(&self, key: &str) -> Result<bool>;

    // --- Whole-record change sets (LDAP modify and modrdn) ---

    /// Replaces the user record `before` with `after` (same id, username
    /// and uidNumber) and, with `password_hash`, stores a new password
    /// hash, in one transaction. `Ok(None)` when the stored record is no
    /// longer `before`: plan again. Sets `modified`; a new password sets
    /// `pwd_changed` and, like a change of `disabled`, bumps
    /// `cred_generation` so caches keyed on it drop the old state.
    fn replace_user(
        &self,
        before: &User,
        after: &User,
        password_hash: Option<&str>,
    ) -> Result<Option<User>>;

    /// Renames a user, keeping every index and membership (they are keyed
    /// by id). Bumps `cred_generation`: the bind name changed.
    fn rename_user(&self, id: UserId, new_name: &str) -> Result<User>;

    /// Renames a group, keeping every index and membership.
    fn rename_group(&self, id: GroupId, new_name: &str) -> Result<Group>;

    /// The group and its direct members at one membership epoch.
    fn group_snapshot(&self, id: GroupId) -> Result<Option<GroupSnapshot>>;

    /// Writes the group `after` (same id and gidNumber as the snapshot's;
    /// the description may change) with exactly `members` as its direct
    /// members, in one transaction. `Ok(None)` when the group or any
    /// membership changed since the snapshot: plan again. A member that
    /// does not exist is `NotFound`; a child group that would close a
    /// cycle is `Invalid`.
    fn replace_group(
        &self,
        snapshot: &GroupSnapshot,
        after: &Group,
        members: &BTreeSet<Member>,
    ) -> Result<Option<Group>>;

    // --- Second factors, app passwords and group policies ---

    /// The user's devices with their secrets, last accepted steps and
    /// unused static token hashes, for a backup.
    fn raw_devices(&self, user: UserId) -> Result<Vec<RawDevice>>;

    /// The user's app passwords with their keyed hashes, for a backup.
    fn raw_app_passwords(&self, user: UserId) -> Result<Vec<RawAppPassword>>;

    /// True when some app password or unused static token is stored: its
    /// hash is keyed with the server key, so the key must not change.
    fn has_keyed_hashes(&self) -> Result<bool>;

    /// The user's devices, oldest first.
    fn devices(&self, user: UserId) -> Result<Vec<Device>>;

    /// Number of unused tokens of a static device.
    fn static_tokens_left(&self, user: UserId, device: DeviceId) -> Result<usize>;

    /// Adds a confirmed TOTP device with its secret.
    fn add_totp_device(
        &self,
        user: UserId,
        device_label: &str,
        digits: u8,
        secret: &TotpSecret,
    ) -> Result<Device>;
    /// Adds a TOTP device that counts for nothing (no bind needs or
    /// accepts its codes) until [`Backend::confirm_device`]: the first step
    /// of a self-service enrolment. It counts against the device limit.
    fn add_pending_totp_device(
        &self,
        user: UserId,
        device_label: &str,
        digits: u8,
        secret: &TotpSecret,
    ) -> Result<Device>;

    /// Confirms a pending device; from then on it counts for bind. Bumps
    /// the user's credential generation. `Ok(false)` when it was confirmed
    /// already; `NotFound` when the user has no such device.
    fn confirm_device(&self, user: UserId, device: DeviceId) -> Result<bool>;

    /// Adds a confirmed static token device holding the given token hashes.
    fn add_static_device(
        &self,
        user: UserId,
        device_label: &str,
        token_hashes: &[KeyedHash],
    ) -> Result<Device>;

    /// Gives a device a new label (checked like a new one); `Ok(false)`
    /// when the user has no such device. Not a credential change: the
    /// generation stays.
    fn rename_device(&self, user: UserId, device: DeviceId, label: &str) -> Result<bool>;

    /// Removes a device and its secrets; `Ok(false)` if it did not exist.
    fn remove_device(&self, user: UserId, device: DeviceId) -> Result<bool>;

    /// The secret of a TOTP device, if it exists.
    fn totp_secret(&self, user: UserId, device: DeviceId) -> Result<Option<TotpSecret>>;

    /// The last TOTP step accepted for the device, if any.
    fn totp_last_step(&self, user: UserId, device: DeviceId) -> Result<Option<u64>>;

    /// Records `step` as the device's last accepted step if it is later
    /// than the one recorded (compare-and-swap in a transaction).
    /// `Ok(false)`: the step was not later (a replay), or the device is
    /// gone. Of concurrent calls with the same step, exactly one succeeds.
    /// Not flushed: the caller flushes before it reports success.
    fn advance_totp_step(&self, user: UserId, device: DeviceId, step: u64) -> Result<bool>;

    /// Marks a static token used. `Ok(true)` exactly once per token; a
    /// token of a removed device is refused. Not flushed (see
    /// [`Backend::advance_totp_step`]).
    fn consume_static_token(
        &self,
        user: UserId,
        device: DeviceId,
        token_hash: &KeyedHash,
    ) -> Result<bool>;

    /// Stores a new app password or API token given as its keyed hash.
    /// At most [`crate::domain::mfa::MAX_APP_PASSWORDS`] of both kinds per
    /// user.
    fn add_app_password(
        &self,
        user: UserId,
        kind: CredentialKind,
        name: &str,
        expires: Option<Timestamp>,
        hash: &KeyedHash,
    ) -> Result<AppPassword>;

    /// The user's app passwords and API tokens, oldest first.
    fn app_passwords(&self, user: UserId) -> Result<Vec<AppPassword>>;

    /// The app password with this keyed hash: one index lookup, no scan.
    fn app_password_by_hash(&self, hash: &KeyedHash) -> Result<Option<(UserId, AppPassword)>>;

    /// Revokes an app password; `Ok(false)` if it did not exist.
    fn revoke_app_password(&self, user: UserId, id: AppPasswordId) -> Result<bool>;

    /// Removes the user's app passwords that expired by `now`; returns how
    /// many.
    fn purge_expired_app_passwords(&self, user: UserId, now: Timestamp) -> Result<usize>;

    /// Records a bind with the app password. Not flushed and not part of
    /// the user's credentials (no generation bump): bookkeeping only. A
    /// later listing through the same store ([`Backend::app_passwords`])
    /// shows it; PostgreSQL writes uses in batches, within a second, so
    /// another instance lists it within a second. It never waits for the
    /// database: a bind whose lookup came with [`Backend::bind_reads`]
    /// records the use on the reactor.
    fn touch_app_password(
        &self,
        user: UserId,
        id: AppPasswordId,
        at: Timestamp,
        from: &str,
    ) -> Result<()>;

    /// The explicit policies of a group (empty when none is set).
    fn group_policy(&self, group: GroupId) -> Result<GroupPolicy>;

    /// Every group with an explicit policy, as stored (a deleted group's
    /// entry is removed with it).
    fn group_policies(&self) -> Result<Vec<(GroupId, GroupPolicy)>>;

    /// Sets a group's policies; an empty policy removes the entry.
    fn set_group_policy(&self, group: GroupId, policy: GroupPolicy) -> Result<()>;

    // --- Portal sessions ---

    /// Stores a new portal session under `hash`, the hash of its secret
    /// id (the id itself is never stored). `AlreadyExists` if the hash is
    /// taken.
    fn create_session(&self, hash: &SessionHash, session: &PortalSession) -> Result<()>;

    /// The session stored under `hash`, if any (expired ones too: expiry
    /// is the caller's rule).
    fn session(&self, hash: &SessionHash) -> Result<Option<PortalSession>>;

    /// Records a request made with the session. Not flushed (bookkeeping,
    /// like [`Backend::touch_app_password`]); `Ok(false)` if it is gone.
    fn touch_session(&self, hash: &SessionHash, at: Timestamp) -> Result<bool>;

    /// Removes a session; `Ok(false)` if it did not exist.
    fn delete_session(&self, hash: &SessionHash) -> Result<bool>;

    /// The user's sessions, oldest first, with the hashes they are kept
    /// under.
    fn sessions_of(&self, user: UserId) -> Result<Vec<(SessionHash, PortalSession)>>;

    /// Removes every session of the user but `keep`; returns how many.
    fn delete_sessions_of(&self, user: UserId, keep: Option<&SessionHash>) -> Result<usize>;

    /// Every portal session with the hash it is kept under, ordered by
    /// hash: what `migrate-store` copies (sessions are not part of a
    /// [`Backend::snapshot`]). O(sessions).
    fn all_sessions(&self) -> Result<Vec<(SessionHash, PortalSession)>>;

    // --- Batches (import and restore), settings listing, counters ---

    /// Every setting, ordered by key.
    fn settings(&self) -> Result<Vec<(String, String)>>;

    /// The allocators: (next uidNumber, next gidNumber).
    fn counters(&self) -> Result<(u32, u32)>;

    /// Replaces the password hash `old` with `new` if it is still `old`,
    /// without touching `pwd_changed` or `cred_generation`: the password
    /// is the same, only its hash is upgraded (legacy → argon2id after a
    /// successful bind). `Ok(false)` if the hash changed meanwhile.
    fn rehash_password(&self, id: UserId, old: &str, new: &str) -> Result<bool>;

    /// Every record as of one instant, copied into memory (see the
    /// contract above): what backups and exports are written from, so a
    /// backup of a live server restores to a directory that existed.
    ///
    /// sled holds off writes while it copies (a store-level lock that
    /// every write holds shared and the snapshot exclusively); a SQL
    /// backend reads everything in one `REPEATABLE READ` (read only)
    /// transaction and holds off nobody. Blocking and O(records): callers
    /// run it on the blocking pool, never per request.
    fn snapshot(&self) -> Result<Snapshot>;

    /// [`Backend::snapshot`] handed to `sink` as it is read rather than
    /// copied into memory first (see [`SnapshotSink`] for the order): what
    /// exports and backups are written from, so a million users never sit
    /// in memory at once. The same promise of one instant.
    ///
    /// sled holds off writes until `sink` has taken the last user, so the
    /// sink's own time counts: callers write to a local file, never to a
    /// client that may read slowly. PostgreSQL reads in one `REPEATABLE
    /// READ` transaction, the users through a cursor, and holds off
    /// nobody. [`Backend::snapshot`] is this, collected.
    fn snapshot_streamed(&self, sink: &mut dyn SnapshotSink) -> Result<()>;

    /// [`Backend::snapshot_streamed`] for a server that goes on serving
    /// writes: the same records of one instant, in the same order. sled
    /// copies the users' records as stored into an anonymous file in
    /// `spool_dir` while writes are held off, and hands them to `sink`
    /// after it lets writes go on, so they wait for the reading only,
    /// not for the sink. `spool_dir` must be private to the server's user
    /// (the data directory): the file holds password hashes and
    /// second-factor secrets until it is read back. A backend that holds
    /// off nobody reads as [`Backend::snapshot_streamed`].
    fn snapshot_spooled(&self, sink: &mut dyn SnapshotSink, spool_dir: &Path) -> Result<()> {
        let _ = spool_dir;
        self.snapshot_streamed(sink)
    }

    /// Writes a whole batch in one transaction over every tree involved.
    /// Either all of it lands or, on any conflict or failure, none of it.
    fn apply_batch(&self, batch: &Batch) -> Result<BatchReport>;

    /// [`Backend::apply_batch`] for an import too large to hold in memory
    /// (the offline `import`): the users come from `users`, read once, in
    /// order; `batch.users` must be empty (callers go through
    /// [`super::Store::apply_batch_streamed`], which refuses a batch with
    /// users of its own) and `batch.next_uid` past every fixed uidNumber
    /// of the stream. All or nothing as `apply_batch`.
    ///
    /// sled writes the new records in chunks behind an undo journal and
    /// one commit marker (`store/sled/bulk.rs`), so only a store that
    /// nobody else reads or writes meanwhile may be given to it: the
    /// offline CLI, which holds sled's file lock. PostgreSQL writes the
    /// users in chunks as they come, inside one transaction (so readers
    /// see nothing until it commits); a serialization failure is reported
    /// rather than retried, since the stream is read once.
    fn apply_batch_streamed(
        &self,
        batch: &Batch,
        users: &mut dyn Iterator<Item = Result<BatchUser>>,
    ) -> Result<BatchReport>;

    /// Begins an import in `mode` whose first users are written while its
    /// source is still being read ([`BulkImport`]), for a store nobody
    /// else reads or writes meanwhile (the offline CLI), as
    /// [`Backend::apply_batch_streamed`]. `None` from a backend that
    /// writes an import only once it is whole: callers then use
    /// [`Backend::apply_batch_streamed`]. sled: the bulk writer's first
    /// steps (`store/sled/bulk.rs`, undo journal and commit marker);
    /// PostgreSQL: `None`.
    fn bulk_import(&self, mode: BatchMode) -> Result<Option<Box<dyn BulkImport + '_>>>;

    // --- Start-up of one of several processes sharing the backend ---

    /// Holds off every other process sharing the backend from its own
    /// start-up steps (the key check, bootstrap) until the answered guard
    /// is dropped; waits for one that holds it. sled: no other process can
    /// open the store, so the guard holds nothing.
    fn startup_lock(&self) -> Result<StartupLock>;

    /// Records `fingerprint` (of the server key that keys app password,
    /// token and static token hashes) the first time, and from then on
    /// refuses another with `Invalid`: every process sharing the backend
    /// must hash with the same key. sled keeps no fingerprint (one process
    /// with its own data directory): always `Ok`.
    fn check_key_fingerprint(&self, fingerprint: &str) -> Result<()>;

    /// The LDAP connections of every process sharing the backend, when
    /// several can ([`ConnectionBoard`]); `None` for a backend only one
    /// process opens (sled), whose connections are all in that process.
    fn connection_board(&self) -> Option<Arc<dyn ConnectionBoard>>;

    /// The per-account failure counters every process sharing the
    /// backend counts on (`auth::throttle`), or `None` when one process
    /// owns the backend (sled): then the throttle's memory is the whole
    /// truth. Not a write itself: nothing to hold for sled.
    fn failure_counters(&self) -> Option<Arc<dyn FailureCounters>>;

    /// Whether the backend answers: for a networked one, a round trip
    /// bounded by a short deadline (it fails rather than hangs), for
    /// `/healthz`. sled: always `Ok` (it is this process).
    fn ping(&self) -> Result<()>;
}

/// The softlock rule a failure is counted under: `auth::throttle`'s rule,
/// handed to a backend that applies it in one atomic step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftlockRule {
    /// Failures before the lock.
    pub threshold: u32,
    /// The lock after the `threshold`-th failure, doubled with each
    /// further failure, in ms.
    pub first_ms: u64,
    /// The longest lock, in ms; also the quiet period that forgets.
    pub cap_ms: u64,
    /// Forgotten only `cap_ms` after the lock has ended (an account's
    /// second factor), rather than `cap_ms` after the last failure once
    /// the lock is over (an account).
    pub forget_after_lock: bool,
}

/// What [`Backend::bind_reads`] answers.
#[derive(Debug)]
pub struct BindReads {
    /// The counter's [`FailureCounters::locked_until`].
    pub locked_until: Result<Option<u64>>,
    /// Whether the read model caught up ([`Backend::refresh`]).
    pub caught_up: Result<()>,
    /// [`Backend::app_password_by_hash`], when it was asked.
    pub app_password: Option<Result<Option<(UserId, AppPassword)>>>,
}

/// [`Backend::bind_reads`] under way.
pub type BindReading = futures::future::BoxFuture<'static, BindReads>;

/// Failure counters shared by every process on one backend, keyed by the
/// throttle's account keys (opaque bytes). Each call is one atomic step
/// in the backend, so failures counted through any process add up.
/// Blocking (callers run it on the blocking pool), on the path of every
/// bind: an implementation bounds its own wait (and fails rather than
/// hangs).
pub trait FailureCounters: Send + Sync {
    /// Until when `key` is locked (ms since the epoch; 0 if it is not),
    /// `None` if no failure of `key` is counted (never, or reset since).
    fn locked_until(&self, key: &[u8]) -> Result<Option<u64>>;

    /// Counts a failure at `now_ms` under `rule`: (failures counted,
    /// locked until in ms). A count that `rule` forgets starts over.
    fn count_failure(&self, key: &[u8], now_ms: u64, rule: &SoftlockRule) -> Result<(u32, u64)>;

    /// Forgets `key`'s failures (a success).
    fn reset(&self, key: &[u8]) -> Result<()>;
}

/// The LDAP connections bound on every process sharing a backend: each
/// process publishes its own, lists the others', and asks the process
/// that holds one to close it (`session list|end`, the portal's sessions
/// page). Closing is done by the holder's own registry
/// (`account::connections`), told through [`ConnectionBoard::subscribe`].
pub trait ConnectionBoard: Send + Sync {
    /// This process's connection `id` is now bound as shown, or not bound
    /// any more (`None`: closed, or anonymous again). Never blocks (an
    /// LDAP reactor calls it): it is written in the background.
    fn publish(&self, id: uuid::Uuid, bound: Option<BoardEntry>);

    /// The connections bound on the other live processes (as `user`,
    /// when given).
    fn others(&self, user: Option<UserId>) -> Result<Vec<BoardEntry>>;

    /// Asks the process holding connection `id` (bound as `user`, when
    /// given) to close it; `Ok(false)` when no other process holds such a
    /// connection. It closes within a moment (the change feed's delay).
    fn end(&self, id: uuid::Uuid, user: Option<UserId>) -> Result<bool>;

    /// Calls `on` for every event of the other processes that must close
    /// connections here.
    fn subscribe(&self, on: Box<dyn Fn(BoardEvent) + Send + Sync>);
}

/// One bound connection on a [`ConnectionBoard`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoardEntry {
    pub id: uuid::Uuid,
    pub user: UserId,
    pub username: String,
    /// The client's IP address.
    pub address: String,
    pub bound_at: Timestamp,
    /// The last request as of the publication (other processes' entries
    /// are not republished on every request).
    pub last_op: Timestamp,
}

/// What a [`ConnectionBoard`] tells its subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoardEvent {
    /// Close this connection (asked through another process).
    End(uuid::Uuid),
    /// This user was disabled or deleted (through any process): close
    /// every connection bound as the user.
    UserGone(UserId),
}

/// Held while a process runs its start-up steps
/// ([`Backend::startup_lock`]); dropping it lets the next process go on.
pub struct StartupLock(#[allow(dead_code)] Option<Box<dyn std::any::Any + Send>>);

impl StartupLock {
    /// A guard that holds nothing (a backend only one process opens).
    pub fn none() -> StartupLock {
        StartupLock(None)
    }

    /// A guard that keeps `held` (a connection holding a lock) until it
    /// is dropped.
    pub fn holding(held: impl std::any::Any + Send) -> StartupLock {
        StartupLock(Some(Box::new(held)))
    }
}

/// An import whose users are written while its source is still being read
/// ([`Backend::bulk_import`]): first users with a fixed uidNumber, as they
/// are planned ([`BulkImport::users`]); then, once the whole source is
/// known, the batch (groups, memberships, counters) and the users held
/// back, and the commit ([`BulkImport::commit`]). All or nothing as
/// [`Backend::apply_batch_streamed`]: until `commit` returns `Ok` nothing
/// of it counts, and an error, [`BulkImport::abandon`], dropping the
/// handle or a crash (undone when the store opens next) leaves the store
/// as it was.
pub trait BulkImport: Send {
    /// Writes `users` (read once, in order), each with a fixed uidNumber:
    /// one to allocate is refused (`Invalid`), since allocated numbers go
    /// past every fixed one of the import, known only at the end. May be
    /// called more than once. An error undoes the import: it is over.
    fn users(&mut self, users: &mut dyn Iterator<Item = Result<BatchUser>>) -> Result<()>;

    /// Writes `batch` (no users of its own, `next_uid` past every fixed
    /// uidNumber given to either call, the mode the import began with)
    /// and `users` (read once, in order; any kind), then commits. The
    /// result is [`Backend::apply_batch_streamed`]'s of the batch with
    /// every user of both calls, in order. An error undoes the import.
    fn commit(
        self: Box<Self>,
        batch: &Batch,
        users: &mut dyn Iterator<Item = Result<BatchUser>>,
    ) -> Result<BatchReport>;

    /// Undoes what was written (nothing to do after an error). Durable
    /// when it returns.
    fn abandon(self: Box<Self>) -> Result<()>;
}
