//! The PostgreSQL store as a [`Backend`]: each method is the one of the
//! same name on [`PgStore`], or (listed in the module documentation of
//! `postgres`) not implemented yet.

use crate::domain::snapshot::SnapshotSink;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::PgStore;
use crate::store::import::{Batch, BatchMode, BatchReport, BatchUser};
use crate::store::mfa::{
    AppPassword, AppPasswordId, CredentialKind, Device, DeviceId, GroupPolicy, KeyedHash,
    RawAppPassword, RawDevice, TotpSecret,
};
use crate::store::{
    Backend, FailureCounters, Group, GroupId, GroupSnapshot, Member, NewUser, PortalSession,
    Result, SessionHash, Snapshot, StartupLock, Timestamp, User, UserId,
};

impl Backend for PgStore {
    /// Every write commits before it returns; what is left are the uses
    /// of app passwords noted and not yet written (`uses`): written now.
    fn flush(&self) -> Result<()> {
        self.write_uses()
    }

    /// Every read goes to the database: always current.
    fn refresh(&self) -> Result<()> {
        Ok(())
    }

    fn has_read_model(&self) -> bool {
        false
    }

    fn reads_wait(&self) -> bool {
        true
    }

    fn membership_epoch(&self) -> Result<u64> {
        PgStore::membership_epoch(self)
    }

    fn raise_membership_epoch(&self, at_least: u64) -> Result<u64> {
        PgStore::raise_membership_epoch(self, at_least)
    }

    fn create_user(&self, new: NewUser) -> Result<User> {
        PgStore::create_user(self, new)
    }

    fn user(&self, id: UserId) -> Result<Option<User>> {
        PgStore::user(self, id)
    }

    fn user_shared(&self, id: UserId) -> Result<Option<Arc<User>>> {
        Ok(PgStore::user(self, id)?.map(Arc::new))
    }

    fn user_is_active(&self, id: UserId) -> Result<bool> {
        Ok(PgStore::user(self, id)?.is_some_and(|u| !u.disabled))
    }

    fn user_id_by_name(&self, username: &str) -> Result<Option<UserId>> {
        PgStore::user_id_by_name(self, username)
    }

    fn user_id_by_email(&self, email: &str) -> Result<Option<UserId>> {
        PgStore::user_id_by_email(self, email)
    }

    fn user_id_by_uid_number(&self, uid_number: u32) -> Result<Option<UserId>> {
        PgStore::user_id_by_uid_number(self, uid_number)
    }

    fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        PgStore::user_by_name(self, username)
    }

    fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        PgStore::user_by_email(self, email)
    }

    fn user_by_uid_number(&self, uid_number: u32) -> Result<Option<User>> {
        PgStore::user_by_uid_number(self, uid_number)
    }

    fn users(&self) -> Result<Vec<User>> {
        PgStore::users(self)
    }

    fn users_shared(&self) -> Result<Vec<Arc<User>>> {
        Ok(PgStore::users(self)?.into_iter().map(Arc::new).collect())
    }

    fn user_count(&self) -> Result<usize> {
        PgStore::user_count(self)
    }

    fn update_user(&self, id: UserId, change: &dyn Fn(&mut User) -> Result<()>) -> Result<User> {
        PgStore::update_user(self, id, change)
    }

    fn delete_user(&self, id: UserId) -> Result<()> {
        PgStore::delete_user(self, id)
    }

    fn password_hash(&self, id: UserId) -> Result<Option<String>> {
        PgStore::password_hash(self, id)
    }

    fn set_password_hash(&self, id: UserId, phc: &str) -> Result<()> {
        PgStore::set_password_hash(self, id, phc)
    }

    fn create_group(&self, name: &str, description: Option<String>) -> Result<Group> {
        PgStore::create_group(self, name, description)
    }

    fn group(&self, id: GroupId) -> Result<Option<Group>> {
        PgStore::group(self, id)
    }

    fn group_shared(&self, id: GroupId) -> Result<Option<Arc<Group>>> {
        Ok(PgStore::group(self, id)?.map(Arc::new))
    }

    fn group_id_by_name(&self, name: &str) -> Result<Option<GroupId>> {
        PgStore::group_id_by_name(self, name)
    }

    fn group_id_by_gid_number(&self, gid_number: u32) -> Result<Option<GroupId>> {
        PgStore::group_id_by_gid_number(self, gid_number)
    }

    fn group_by_name(&self, name: &str) -> Result<Option<Group>> {
        PgStore::group_by_name(self, name)
    }

    fn group_by_gid_number(&self, gid_number: u32) -> Result<Option<Group>> {
        PgStore::group_by_gid_number(self, gid_number)
    }

    fn groups(&self) -> Result<Vec<Group>> {
        PgStore::groups(self)
    }

    fn delete_group(&self, id: GroupId) -> Result<()> {
        PgStore::delete_group(self, id)
    }

    fn group_attrs(&self, id: GroupId) -> Result<BTreeMap<String, String>> {
        PgStore::group_attrs(self, id)
    }

    fn set_group_attr(&self, id: GroupId, key: &str, value: Option<&str>) -> Result<bool> {
        PgStore::set_group_attr(self, id, key, value)
    }

    fn add_member(&self, group: GroupId, member: Member) -> Result<bool> {
        PgStore::add_member(self, group, member)
    }

    fn remove_member(&self, group: GroupId, member: Member) -> Result<bool> {
        PgStore::remove_member(self, group, member)
    }

    fn members(&self, group: GroupId) -> Result<Vec<Member>> {
        PgStore::members(self, group)
    }

    fn groups_of(&self, member: Member) -> Result<Vec<GroupId>> {
        PgStore::groups_of(self, member)
    }

    fn transitive_groups_of(&self, member: Member) -> Result<Vec<GroupId>> {
        PgStore::transitive_groups_of(self, member)
    }

    fn transitive_user_members(&self, group: GroupId) -> Result<Vec<UserId>> {
        PgStore::transitive_user_members(self, group)
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        PgStore::setting(self, key)
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        PgStore::set_setting(self, key, value)
    }

    fn remove_setting(&self, key: &str) -> Result<bool> {
        PgStore::remove_setting(self, key)
    }

    fn replace_user(
        &self,
        before: &User,
        after: &User,
        password_hash: Option<&str>,
    ) -> Result<Option<User>> {
        PgStore::replace_user(self, before, after, password_hash)
    }

    fn rename_user(&self, id: UserId, new_name: &str) -> Result<User> {
        PgStore::rename_user(self, id, new_name)
    }

    fn rename_group(&self, id: GroupId, new_name: &str) -> Result<Group> {
        PgStore::rename_group(self, id, new_name)
    }

    fn group_snapshot(&self, id: GroupId) -> Result<Option<GroupSnapshot>> {
        PgStore::group_snapshot(self, id)
    }

    fn replace_group(
        &self,
        snapshot: &GroupSnapshot,
        after: &Group,
        members: &BTreeSet<Member>,
    ) -> Result<Option<Group>> {
        PgStore::replace_group(self, snapshot, after, members)
    }

    fn raw_devices(&self, user: UserId) -> Result<Vec<RawDevice>> {
        PgStore::raw_devices(self, user)
    }

    fn raw_app_passwords(&self, user: UserId) -> Result<Vec<RawAppPassword>> {
        PgStore::raw_app_passwords(self, user)
    }

    fn has_keyed_hashes(&self) -> Result<bool> {
        PgStore::has_keyed_hashes(self)
    }

    fn devices(&self, user: UserId) -> Result<Vec<Device>> {
        PgStore::devices(self, user)
    }

    fn static_tokens_left(&self, user: UserId, device: DeviceId) -> Result<usize> {
        PgStore::static_tokens_left(self, user, device)
    }

    fn add_totp_device(
        &self,
        user: UserId,
        device_label: &str,
        digits: u8,
        secret: &TotpSecret,
    ) -> Result<Device> {
        PgStore::add_totp(self, user, device_label, digits, secret, true)
    }

    fn add_pending_totp_device(
        &self,
        user: UserId,
        device_label: &str,
        digits: u8,
        secret: &TotpSecret,
    ) -> Result<Device> {
        PgStore::add_totp(self, user, device_label, digits, secret, false)
    }

    fn confirm_device(&self, user: UserId, device: DeviceId) -> Result<bool> {
        PgStore::confirm_device(self, user, device)
    }

    fn rename_device(&self, user: UserId, device: DeviceId, label: &str) -> Result<bool> {
        PgStore::rename_device(self, user, device, label)
    }

    fn add_static_device(
        &self,
        user: UserId,
        device_label: &str,
        token_hashes: &[KeyedHash],
    ) -> Result<Device> {
        PgStore::add_static_device(self, user, device_label, token_hashes)
    }

    fn remove_device(&self, user: UserId, device: DeviceId) -> Result<bool> {
        PgStore::remove_device(self, user, device)
    }

    fn totp_secret(&self, user: UserId, device: DeviceId) -> Result<Option<TotpSecret>> {
        PgStore::totp_secret(self, user, device)
    }

    fn totp_last_step(&self, user: UserId, device: DeviceId) -> Result<Option<u64>> {
        PgStore::totp_last_step(self, user, device)
    }

    fn advance_totp_step(&self, user: UserId, device: DeviceId, step: u64) -> Result<bool> {
        PgStore::advance_totp_step(self, user, device, step)
    }

    fn consume_static_token(
        &self,
        user: UserId,
        device: DeviceId,
        token_hash: &KeyedHash,
    ) -> Result<bool> {
        PgStore::consume_static_token(self, user, device, token_hash)
    }

    fn add_app_password(
        &self,
        user: UserId,
        kind: CredentialKind,
        name: &str,
        expires: Option<Timestamp>,
        hash: &KeyedHash,
    ) -> Result<AppPassword> {
        PgStore::add_app_password(self, user, kind, name, expires, hash)
    }

    fn app_passwords(&self, user: UserId) -> Result<Vec<AppPassword>> {
        PgStore::app_passwords(self, user)
    }

    fn app_password_by_hash(&self, hash: &KeyedHash) -> Result<Option<(UserId, AppPassword)>> {
        PgStore::app_password_by_hash(self, hash)
    }

    fn revoke_app_password(&self, user: UserId, id: AppPasswordId) -> Result<bool> {
        PgStore::revoke_app_password(self, user, id)
    }

    fn purge_expired_app_passwords(&self, user: UserId, now: Timestamp) -> Result<usize> {
        PgStore::purge_expired_app_passwords(self, user, now)
    }

    fn touch_app_password(
        &self,
        user: UserId,
        id: AppPasswordId,
        at: Timestamp,
        from: &str,
    ) -> Result<()> {
        PgStore::touch_app_password(self, user, id, at, from)
    }

    fn group_policy(&self, group: GroupId) -> Result<GroupPolicy> {
        PgStore::group_policy(self, group)
    }

    fn group_policies(&self) -> Result<Vec<(GroupId, GroupPolicy)>> {
        PgStore::group_policies(self)
    }

    fn set_group_policy(&self, group: GroupId, policy: GroupPolicy) -> Result<()> {
        PgStore::set_group_policy(self, group, policy)
    }

    fn create_session(&self, hash: &SessionHash, session: &PortalSession) -> Result<()> {
        PgStore::create_session(self, hash, session)
    }

    fn session(&self, hash: &SessionHash) -> Result<Option<PortalSession>> {
        PgStore::session(self, hash)
    }

    fn touch_session(&self, hash: &SessionHash, at: Timestamp) -> Result<bool> {
        PgStore::touch_session(self, hash, at)
    }

    fn delete_session(&self, hash: &SessionHash) -> Result<bool> {
        PgStore::delete_session(self, hash)
    }

    fn sessions_of(&self, user: UserId) -> Result<Vec<(SessionHash, PortalSession)>> {
        PgStore::sessions_of(self, user)
    }

    fn delete_sessions_of(&self, user: UserId, keep: Option<&SessionHash>) -> Result<usize> {
        PgStore::delete_sessions_of(self, user, keep)
    }

    fn all_sessions(&self) -> Result<Vec<(SessionHash, PortalSession)>> {
        PgStore::all_sessions(self)
    }

    fn settings(&self) -> Result<Vec<(String, String)>> {
        PgStore::settings(self)
    }

    fn counters(&self) -> Result<(u32, u32)> {
        PgStore::counters(self)
    }

    fn rehash_password(&self, id: UserId, old: &str, new: &str) -> Result<bool> {
        PgStore::rehash_password(self, id, old, new)
    }

    fn snapshot(&self) -> Result<Snapshot> {
        PgStore::snapshot(self)
    }

    fn snapshot_streamed(&self, sink: &mut dyn SnapshotSink) -> Result<()> {
        PgStore::snapshot_streamed(self, sink)
    }

    fn apply_batch(&self, batch: &Batch) -> Result<BatchReport> {
        PgStore::apply_batch(self, batch)
    }

    fn apply_batch_streamed(
        &self,
        batch: &Batch,
        users: &mut dyn Iterator<Item = Result<BatchUser>>,
    ) -> Result<BatchReport> {
        PgStore::apply_batch_streamed(self, batch, users)
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
        PgStore::startup_lock(self)
    }

    fn check_key_fingerprint(&self, fingerprint: &str) -> Result<()> {
        PgStore::check_key_fingerprint(self, fingerprint)
    }

    /// The `failure_counters` table (`counters.rs`).
    fn failure_counters(&self) -> Option<Arc<dyn FailureCounters>> {
        Some(Arc::new(self.clone()))
    }

    /// `SELECT 1`, within `PING_DEADLINE`.
    fn ping(&self) -> Result<()> {
        PgStore::ping(self, super::PING_DEADLINE)
    }

    /// The database layer alone is not an instance: no board (see
    /// [`super::PgInstance`]).
    fn connection_board(&self) -> Option<Arc<dyn crate::store::ConnectionBoard>> {
        None
    }
}
