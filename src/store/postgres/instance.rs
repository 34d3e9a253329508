//! The store as one instance serves it ([`PgInstance`]): reads from the
//! instance's read model (`model`, kept in step by `feed`), writes to the
//! database, then a catch-up, so a write is seen by this instance's next
//! read as soon as it returns.
//!
//! Answered from the read model: users (by id, name, email, uidNumber,
//! all of them), password hashes, groups, their attributes and policies,
//! memberships (direct and transitive, both directions), devices as bind
//! sees them (which, confirmed or not; never secrets), settings and the
//! membership epoch.
//!
//! Answered by the database, always: what a bind consumes or checks for
//! revocation (TOTP secrets and steps, static tokens, app passwords and
//! API tokens), portal sessions, group snapshots (the plan of a change
//! set is checked against the database anyway), the allocators, backup
//! reads and snapshots.
//!
//! Bind catches up first ([`Backend::bind_reads`], asked with the
//! account's failure counter and an app password's lookup in one round
//! trip): the password
//! hash, the disabled flag, devices and policies it then reads are as
//! current as the database. While the database cannot be reached, the
//! catch-up fails fast and the model answers as of its last catch-up:
//! searches and plain password binds go on; anything that must read the
//! database or write (a code, an app password, a write) fails with a
//! backend error, which LDAP answers as `unavailable` (52).

use crate::domain::snapshot::SnapshotSink;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::board::PgBoard;
use super::feed::{self, Feed};
use super::{pool_error, to_store, PgStore};
use crate::store::import::{Batch, BatchMode, BatchReport, BatchUser};
use crate::store::mfa::{
    AppPassword, AppPasswordId, CredentialKind, Device, DeviceId, GroupPolicy, KeyedHash,
    RawAppPassword, RawDevice, TotpSecret,
};
use crate::store::{
    Backend, BindReading, BindReads, ConnectionBoard, Group, GroupId, GroupSnapshot, Member,
    NewUser, PortalSession, Result, SessionHash, Snapshot, StartupLock, StoreError, Timestamp,
    User, UserId,
};

/// The longest a caller waits for a catch-up before it goes on with the
/// model as it is (the database is slow or unreachable).
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// The same while the listener has lost the database: a bind during an
/// outage should not wait long for an answer that is not coming.
const CATCH_UP_WAIT_OUTAGE: Duration = Duration::from_millis(250);

/// A [`PgStore`] with the read model of this instance and the listener
/// that feeds it. Cheap to clone; the listener stops with the last handle.
#[derive(Clone)]
pub struct PgInstance {
    inner: Arc<Inner>,
}

struct Inner {
    db: PgStore,
    feed: Arc<Feed>,
    stop: CancellationToken,
    /// Started by the first caller that asks (the server's connection
    /// registry; a CLI that lists sessions).
    board: std::sync::Mutex<Option<Arc<PgBoard>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl PgInstance {
    /// Loads the read model (the database must answer) and starts the
    /// listener on the store's runtime.
    pub fn start(db: PgStore) -> Result<PgInstance> {
        let instance = PgInstance::loaded(db)?;
        let (config, tls, feed, stop) = (
            instance.inner.db.inner.config.clone(),
            instance.inner.db.inner.tls.clone(),
            instance.inner.feed.clone(),
            instance.inner.stop.clone(),
        );
        instance
            .inner
            .db
            .runtime()?
            .spawn(feed::listen(config, tls, feed, stop));
        Ok(instance)
    }

    /// The database layer beneath (tests write around the model with it).
    #[cfg(test)]
    pub(super) fn db(&self) -> &PgStore {
        &self.inner.db
    }

    /// An instance whose model is loaded but followed by no listener:
    /// it moves only on its own writes and [`Backend::refresh`] (tests of
    /// the catch-up alone use it directly).
    pub(super) fn loaded(db: PgStore) -> Result<PgInstance> {
        let instance = PgInstance {
            inner: Arc::new(Inner {
                db,
                feed: Arc::new(Feed::new()),
                stop: CancellationToken::new(),
                board: std::sync::Mutex::new(None),
            }),
        };
        instance.catch_up(true)?;
        Ok(instance)
    }

    /// Whether the change feed's listener is connected.
    pub fn feed_connected(&self) -> bool {
        self.inner.feed.connected()
    }

    /// One catch-up on a pooled connection, run on the store's runtime.
    /// For a bind (`whole` false): each wait bounded by [`CATCH_UP_WAIT`]
    /// ([`CATCH_UP_WAIT_OUTAGE`] while the listener is disconnected), and
    /// never a full load. After a write, at start: a full load if one is
    /// due.
    fn catch_up(&self, whole: bool) -> Result<()> {
        let (pool, feed) = (self.inner.db.inner.pool.clone(), self.inner.feed.clone());
        let wait = self.catch_up_wait(whole);
        let task = self.inner.db.runtime()?.spawn(async move {
            let client = pooled(&pool, wait).await?;
            feed.catch_up(&**client, whole, wait)
                .await
                .map_err(to_store)
        });
        futures::executor::block_on(task)
            .map_err(|e| StoreError::Backend(format!("PostgreSQL catch-up task: {e}")))?
    }

    /// How long a catch-up waits for each of its steps (see
    /// [`PgInstance::catch_up`]).
    fn catch_up_wait(&self, whole: bool) -> Duration {
        if whole || self.inner.feed.connected() {
            CATCH_UP_WAIT
        } else {
            CATCH_UP_WAIT_OUTAGE
        }
    }

    /// After a write through this instance: the model takes it in before
    /// the write returns. The write is committed either way; a failed
    /// catch-up is logged and the listener brings the change shortly.
    fn wrote<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_ok() {
            if let Err(e) = self.catch_up(true) {
                tracing::warn!(error = %e, "could not read back a write into the read model");
            }
        }
        result
    }

    /// A change set refused because what it was planned from changed:
    /// catch up, so the caller's next plan reads the newer state.
    fn planned<T>(&self, result: Result<Option<T>>) -> Result<Option<T>> {
        match result {
            Ok(None) => {
                let _ = self.catch_up(true);
                Ok(None)
            }
            other => self.wrote(other),
        }
    }

    fn data(&self) -> std::sync::RwLockReadGuard<'_, super::model::Data> {
        self.inner.feed.data()
    }

    fn user_of(&self, id: Option<UserId>) -> Option<Arc<User>> {
        let d = self.data();
        id.and_then(|id| d.users.get(&id).cloned())
    }

    fn group_of(&self, id: Option<GroupId>) -> Option<Arc<Group>> {
        let d = self.data();
        id.and_then(|id| d.groups.get(&id).cloned())
    }
}

/// A pooled connection within `wait`, for a catch-up.
async fn pooled(
    pool: &deadpool_postgres::Pool,
    wait: Duration,
) -> Result<deadpool_postgres::Object> {
    tokio::time::timeout(wait, pool.get())
        .await
        .map_err(|_| StoreError::Backend("no PostgreSQL connection for a catch-up in time".into()))?
        .map_err(pool_error)
}

fn owned<T: Clone>(v: Option<Arc<T>>) -> Option<T> {
    v.map(|v| (*v).clone())
}

impl Backend for PgInstance {
    fn flush(&self) -> Result<()> {
        Backend::flush(&self.inner.db)
    }

    fn refresh(&self) -> Result<()> {
        self.catch_up(false)
    }

    fn has_read_model(&self) -> bool {
        true
    }

    fn reads_wait(&self) -> bool {
        true
    }

    /// One task on the store's runtime, one pooled connection: the
    /// counter's read, the catch-up's read of the feed and the app
    /// password's lookup go out together (tokio-postgres pipelines the
    /// requests of one connection), each bounded as when asked alone.
    /// Every wait is the catch-up's for a bind (shorter while the
    /// listener has lost the database); a counter that is not read in
    /// time is an error, which the throttle answers with this instance's
    /// own count, and an app password not looked up in time is an error,
    /// which refuses the bind as `unavailable`.
    fn bind_reads(&self, counter: &[u8], app_password: Option<&KeyedHash>) -> Option<BindReading> {
        let (pool, feed) = (self.inner.db.inner.pool.clone(), self.inner.feed.clone());
        let wait = self.catch_up_wait(false);
        let (key, hash) = (counter.to_vec(), app_password.copied());
        let app_password_asked = hash.is_some();
        let task = self.inner.db.runtime().ok()?.spawn(async move {
            let client = match pooled(&pool, wait).await {
                Ok(client) => client,
                Err(e) => {
                    let again = || StoreError::Backend(e.to_string());
                    return BindReads {
                        locked_until: Err(again()),
                        caught_up: Err(again()),
                        app_password: hash.map(|_| Err(again())),
                    };
                }
            };
            let late = |what: &str| StoreError::Backend(format!("PostgreSQL: no {what} in time"));
            let read = async {
                tokio::time::timeout(
                    super::counters::DEADLINE.min(wait),
                    super::counters::locked_until_on(&client, &key),
                )
                .await
                .map_err(|_| late("failure counter"))?
                .map_err(|e| super::db_error(&e))
            };
            let caught_up = async {
                feed.catch_up(&**client, false, wait)
                    .await
                    .map_err(to_store)
            };
            let looked_up = async {
                let hash = hash?;
                let found =
                    tokio::time::timeout(wait, super::mfa::app_password_by_hash_on(&client, &hash))
                        .await
                        .map_err(|_| late("app password"))
                        .and_then(|found| found.map_err(to_store));
                Some(found)
            };
            let (locked_until, caught_up, app_password) = tokio::join!(read, caught_up, looked_up);
            BindReads {
                locked_until,
                caught_up,
                app_password,
            }
        });
        Some(Box::pin(async move {
            task.await.unwrap_or_else(|e| {
                let lost = || StoreError::Backend(format!("PostgreSQL bind task: {e}"));
                BindReads {
                    locked_until: Err(lost()),
                    caught_up: Err(lost()),
                    app_password: app_password_asked.then(|| Err(lost())),
                }
            })
        }))
    }

    fn membership_epoch(&self) -> Result<u64> {
        Ok(self.data().epoch)
    }

    fn raise_membership_epoch(&self, at_least: u64) -> Result<u64> {
        self.wrote(self.inner.db.raise_membership_epoch(at_least))
    }

    fn create_user(&self, new: NewUser) -> Result<User> {
        self.wrote(self.inner.db.create_user(new))
    }

    fn user(&self, id: UserId) -> Result<Option<User>> {
        Ok(owned(self.user_of(Some(id))))
    }

    fn user_shared(&self, id: UserId) -> Result<Option<Arc<User>>> {
        Ok(self.user_of(Some(id)))
    }

    fn user_is_active(&self, id: UserId) -> Result<bool> {
        Ok(self.user_of(Some(id)).is_some_and(|u| !u.disabled))
    }

    fn user_id_by_name(&self, username: &str) -> Result<Option<UserId>> {
        let key = super::users::name_key(username);
        Ok(self.data().user_by_name.get(&key).copied())
    }

    fn user_id_by_email(&self, email: &str) -> Result<Option<UserId>> {
        let key = super::users::email_key(email);
        Ok(self.data().user_by_email.get(&key).copied())
    }

    fn user_id_by_uid_number(&self, uid_number: u32) -> Result<Option<UserId>> {
        Ok(self.data().user_by_uid.get(&uid_number).copied())
    }

    fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        Ok(owned(self.user_of(self.user_id_by_name(username)?)))
    }

    fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        Ok(owned(self.user_of(self.user_id_by_email(email)?)))
    }

    fn user_by_uid_number(&self, uid_number: u32) -> Result<Option<User>> {
        Ok(owned(self.user_of(self.user_id_by_uid_number(uid_number)?)))
    }

    fn users(&self) -> Result<Vec<User>> {
        Ok(self
            .users_shared()?
            .into_iter()
            .map(|u| (*u).clone())
            .collect())
    }

    fn users_shared(&self) -> Result<Vec<Arc<User>>> {
        let d = self.data();
        Ok(d.user_by_name
            .values()
            .filter_map(|id| d.users.get(id).cloned())
            .collect())
    }

    fn user_count(&self) -> Result<usize> {
        Ok(self.data().users.len())
    }

    fn update_user(&self, id: UserId, change: &dyn Fn(&mut User) -> Result<()>) -> Result<User> {
        self.wrote(self.inner.db.update_user(id, change))
    }

    fn delete_user(&self, id: UserId) -> Result<()> {
        self.wrote(self.inner.db.delete_user(id))
    }

    fn password_hash(&self, id: UserId) -> Result<Option<String>> {
        Ok(self.data().hashes.get(&id).cloned())
    }

    fn set_password_hash(&self, id: UserId, phc: &str) -> Result<()> {
        self.wrote(self.inner.db.set_password_hash(id, phc))
    }

    fn create_group(&self, name: &str, description: Option<String>) -> Result<Group> {
        self.wrote(self.inner.db.create_group(name, description))
    }

    fn group(&self, id: GroupId) -> Result<Option<Group>> {
        Ok(owned(self.group_of(Some(id))))
    }

    fn group_shared(&self, id: GroupId) -> Result<Option<Arc<Group>>> {
        Ok(self.group_of(Some(id)))
    }

    fn group_id_by_name(&self, name: &str) -> Result<Option<GroupId>> {
        let key = super::users::name_key(name);
        Ok(self.data().group_by_name.get(&key).copied())
    }

    fn group_id_by_gid_number(&self, gid_number: u32) -> Result<Option<GroupId>> {
        Ok(self.data().group_by_gid.get(&gid_number).copied())
    }

    fn group_by_name(&self, name: &str) -> Result<Option<Group>> {
        Ok(owned(self.group_of(self.group_id_by_name(name)?)))
    }

    fn group_by_gid_number(&self, gid_number: u32) -> Result<Option<Group>> {
        Ok(owned(
            self.group_of(self.group_id_by_gid_number(gid_number)?),
        ))
    }

    fn groups(&self) -> Result<Vec<Group>> {
        let d = self.data();
        Ok(d.group_by_name
            .values()
            .filter_map(|id| d.groups.get(id).map(|g| (**g).clone()))
            .collect())
    }

    fn delete_group(&self, id: GroupId) -> Result<()> {
        self.wrote(self.inner.db.delete_group(id))
    }

    fn group_attrs(&self, id: GroupId) -> Result<BTreeMap<String, String>> {
        Ok(self.data().attrs.get(&id).cloned().unwrap_or_default())
    }

    fn set_group_attr(&self, id: GroupId, key: &str, value: Option<&str>) -> Result<bool> {
        self.wrote(self.inner.db.set_group_attr(id, key, value))
    }

    fn add_member(&self, group: GroupId, member: Member) -> Result<bool> {
        self.wrote(self.inner.db.add_member(group, member))
    }

    fn remove_member(&self, group: GroupId, member: Member) -> Result<bool> {
        self.wrote(self.inner.db.remove_member(group, member))
    }

    fn members(&self, group: GroupId) -> Result<Vec<Member>> {
        Ok(self.data().members_of(group))
    }

    fn groups_of(&self, member: Member) -> Result<Vec<GroupId>> {
        Ok(self.data().groups_of(member))
    }

    fn transitive_groups_of(&self, member: Member) -> Result<Vec<GroupId>> {
        Ok(self.data().transitive_groups_of(member))
    }

    fn transitive_user_members(&self, group: GroupId) -> Result<Vec<UserId>> {
        Ok(self.data().transitive_user_members(group))
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self.data().settings.get(key).cloned())
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.wrote(self.inner.db.set_setting(key, value))
    }

    fn remove_setting(&self, key: &str) -> Result<bool> {
        self.wrote(self.inner.db.remove_setting(key))
    }

    fn replace_user(
        &self,
        before: &User,
        after: &User,
        password_hash: Option<&str>,
    ) -> Result<Option<User>> {
        self.planned(self.inner.db.replace_user(before, after, password_hash))
    }

    fn rename_user(&self, id: UserId, new_name: &str) -> Result<User> {
        self.wrote(self.inner.db.rename_user(id, new_name))
    }

    fn rename_group(&self, id: GroupId, new_name: &str) -> Result<Group> {
        self.wrote(self.inner.db.rename_group(id, new_name))
    }

    fn group_snapshot(&self, id: GroupId) -> Result<Option<GroupSnapshot>> {
        self.inner.db.group_snapshot(id)
    }

    fn replace_group(
        &self,
        snapshot: &GroupSnapshot,
        after: &Group,
        members: &BTreeSet<Member>,
    ) -> Result<Option<Group>> {
        self.planned(self.inner.db.replace_group(snapshot, after, members))
    }

    fn raw_devices(&self, user: UserId) -> Result<Vec<RawDevice>> {
        self.inner.db.raw_devices(user)
    }

    fn raw_app_passwords(&self, user: UserId) -> Result<Vec<RawAppPassword>> {
        self.inner.db.raw_app_passwords(user)
    }

    fn has_keyed_hashes(&self) -> Result<bool> {
        self.inner.db.has_keyed_hashes()
    }

    fn devices(&self, user: UserId) -> Result<Vec<Device>> {
        Ok(self.data().devices.get(&user).cloned().unwrap_or_default())
    }

    fn static_tokens_left(&self, user: UserId, device: DeviceId) -> Result<usize> {
        self.inner.db.static_tokens_left(user, device)
    }

    fn add_totp_device(
        &self,
        user: UserId,
        device_label: &str,
        digits: u8,
        secret: &TotpSecret,
    ) -> Result<Device> {
        self.wrote(
            self.inner
                .db
                .add_totp(user, device_label, digits, secret, true),
        )
    }

    fn add_pending_totp_device(
        &self,
        user: UserId,
        device_label: &str,
        digits: u8,
        secret: &TotpSecret,
    ) -> Result<Device> {
        self.wrote(
            self.inner
                .db
                .add_totp(user, device_label, digits, secret, false),
        )
    }

    fn confirm_device(&self, user: UserId, device: DeviceId) -> Result<bool> {
        self.wrote(self.inner.db.confirm_device(user, device))
    }

    fn add_static_device(
        &self,
        user: UserId,
        device_label: &str,
        token_hashes: &[KeyedHash],
    ) -> Result<Device> {
        self.wrote(
            self.inner
                .db
                .add_static_device(user, device_label, token_hashes),
        )
    }

    fn rename_device(&self, user: UserId, device: DeviceId, label: &str) -> Result<bool> {
        self.wrote(self.inner.db.rename_device(user, device, label))
    }

    fn remove_device(&self, user: UserId, device: DeviceId) -> Result<bool> {
        self.wrote(self.inner.db.remove_device(user, device))
    }

    fn totp_secret(&self, user: UserId, device: DeviceId) -> Result<Option<TotpSecret>> {
        self.inner.db.totp_secret(user, device)
    }

    fn totp_last_step(&self, user: UserId, device: DeviceId) -> Result<Option<u64>> {
        self.inner.db.totp_last_step(user, device)
    }

    fn advance_totp_step(&self, user: UserId, device: DeviceId, step: u64) -> Result<bool> {
        self.inner.db.advance_totp_step(user, device, step)
    }

    fn consume_static_token(
        &self,
        user: UserId,
        device: DeviceId,
        token_hash: &KeyedHash,
    ) -> Result<bool> {
        self.inner.db.consume_static_token(user, device, token_hash)
    }

    fn add_app_password(
        &self,
        user: UserId,
        kind: CredentialKind,
        name: &str,
        expires: Option<Timestamp>,
        hash: &KeyedHash,
    ) -> Result<AppPassword> {
        // App passwords are read from the database, but adding one bumps
        // the user's credential generation, which the model holds.
        self.wrote(
            self.inner
                .db
                .add_app_password(user, kind, name, expires, hash),
        )
    }

    fn app_passwords(&self, user: UserId) -> Result<Vec<AppPassword>> {
        self.inner.db.app_passwords(user)
    }

    fn app_password_by_hash(&self, hash: &KeyedHash) -> Result<Option<(UserId, AppPassword)>> {
        self.inner.db.app_password_by_hash(hash)
    }

    fn revoke_app_password(&self, user: UserId, id: AppPasswordId) -> Result<bool> {
        self.wrote(self.inner.db.revoke_app_password(user, id))
    }

    fn purge_expired_app_passwords(&self, user: UserId, now: Timestamp) -> Result<usize> {
        self.wrote(self.inner.db.purge_expired_app_passwords(user, now))
    }

    fn touch_app_password(
        &self,
        user: UserId,
        id: AppPasswordId,
        at: Timestamp,
        from: &str,
    ) -> Result<()> {
        self.inner.db.touch_app_password(user, id, at, from)
    }

    fn group_policy(&self, group: GroupId) -> Result<GroupPolicy> {
        Ok(self
            .data()
            .policies
            .get(&group)
            .copied()
            .unwrap_or_default())
    }

    fn group_policies(&self) -> Result<Vec<(GroupId, GroupPolicy)>> {
        Ok(self.data().policies.iter().map(|(g, p)| (*g, *p)).collect())
    }

    fn set_group_policy(&self, group: GroupId, policy: GroupPolicy) -> Result<()> {
        self.wrote(self.inner.db.set_group_policy(group, policy))
    }

    fn create_session(&self, hash: &SessionHash, session: &PortalSession) -> Result<()> {
        self.inner.db.create_session(hash, session)
    }

    fn session(&self, hash: &SessionHash) -> Result<Option<PortalSession>> {
        self.inner.db.session(hash)
    }

    fn touch_session(&self, hash: &SessionHash, at: Timestamp) -> Result<bool> {
        self.inner.db.touch_session(hash, at)
    }

    fn delete_session(&self, hash: &SessionHash) -> Result<bool> {
        self.inner.db.delete_session(hash)
    }

    fn sessions_of(&self, user: UserId) -> Result<Vec<(SessionHash, PortalSession)>> {
        self.inner.db.sessions_of(user)
    }

    fn delete_sessions_of(&self, user: UserId, keep: Option<&SessionHash>) -> Result<usize> {
        self.inner.db.delete_sessions_of(user, keep)
    }

    fn all_sessions(&self) -> Result<Vec<(SessionHash, PortalSession)>> {
        self.inner.db.all_sessions()
    }

    fn settings(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .data()
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn counters(&self) -> Result<(u32, u32)> {
        self.inner.db.counters()
    }

    fn rehash_password(&self, id: UserId, old: &str, new: &str) -> Result<bool> {
        self.wrote(self.inner.db.rehash_password(id, old, new))
    }

    fn snapshot(&self) -> Result<Snapshot> {
        self.inner.db.snapshot()
    }

    /// From the database, never from the read model: one transaction.
    fn snapshot_streamed(&self, sink: &mut dyn SnapshotSink) -> Result<()> {
        self.inner.db.snapshot_streamed(sink)
    }

    fn apply_batch(&self, batch: &Batch) -> Result<BatchReport> {
        self.wrote(self.inner.db.apply_batch(batch))
    }

    fn apply_batch_streamed(
        &self,
        batch: &Batch,
        users: &mut dyn Iterator<Item = Result<BatchUser>>,
    ) -> Result<BatchReport> {
        self.wrote(self.inner.db.apply_batch_streamed(batch, users))
    }

    /// A PostgreSQL import is written once it is whole
    /// ([`Backend::apply_batch_streamed`]).
    fn bulk_import(
        &self,
        _mode: BatchMode,
    ) -> Result<Option<Box<dyn crate::store::BulkImport + '_>>> {
        Ok(None)
    }

    fn startup_lock(&self) -> Result<StartupLock> {
        self.inner.db.startup_lock()
    }

    fn check_key_fingerprint(&self, fingerprint: &str) -> Result<()> {
        self.inner.db.check_key_fingerprint(fingerprint)
    }

    /// The database's counters: failures through every instance add up.
    fn failure_counters(&self) -> Option<Arc<dyn crate::store::FailureCounters>> {
        self.inner.db.failure_counters()
    }

    /// The database answers (bounded), whatever the read model holds.
    fn ping(&self) -> Result<()> {
        Backend::ping(&self.inner.db)
    }

    fn connection_board(&self) -> Option<Arc<dyn ConnectionBoard>> {
        let mut board = self.inner.board.lock().unwrap_or_else(|e| e.into_inner());
        if board.is_none() {
            match PgBoard::start(
                self.inner.db.clone(),
                self.inner.feed.clone(),
                self.inner.stop.clone(),
            ) {
                Ok(started) => *board = Some(Arc::new(started)),
                Err(e) => tracing::warn!(error = %e, "could not start the connection board"),
            }
        }
        board.clone().map(|b| b as Arc<dyn ConnectionBoard>)
    }
}
