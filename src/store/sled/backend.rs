//! The sled store as a [`Backend`]: each method is the one of the same
//! name on [`SledStore`]. Every write holds the snapshot lock shared
//! (`SledStore::writing`, see `snapshot.rs`) for its whole duration.

use crate::domain::snapshot::SnapshotSink;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use super::SledStore;
use crate::store::import::{Batch, BatchMode, BatchReport, BatchUser};
use crate::store::mfa::{
    AppPassword, AppPasswordId, CredentialKind, Device, DeviceId, GroupPolicy, KeyedHash,
    RawAppPassword, RawDevice, TotpSecret,
};
use crate::store::{
    Backend, FailureCounters, Group, GroupId, GroupSnapshot, Member, NewUser, PortalSession,
    Result, SessionHash, Snapshot, StartupLock, Timestamp, User, UserId,
};

impl Backend for SledStore {
    fn flush(&self) -> Result<()> {
        SledStore::flush(self)
    }

    /// One process owns the store: every read is current.
    fn refresh(&self) -> Result<()> {
        Ok(())
    }

    fn has_read_model(&self) -> bool {
        false
    }

    fn finished_writes(&self) -> Option<u64> {
        Some(self.writes())
    }

    fn membership_epoch(&self) -> Result<u64> {
        SledStore::membership_epoch(self)
    }

    fn raise_membership_epoch(&self, at_least: u64) -> Result<u64> {
        let _w = self.writing();
        SledStore::raise_membership_epoch(self, at_least)
    }

    fn create_user(&self, new: NewUser) -> Result<User> {
        let _w = self.writing();
        SledStore::create_user(self, new)
    }

    fn user(&self, id: UserId) -> Result<Option<User>> {
        SledStore::user(self, id)
    }

    fn user_shared(&self, id: UserId) -> Result<Option<Arc<User>>> {
        SledStore::user_shared(self, id)
    }

    fn user_is_active(&self, id: UserId) -> Result<bool> {
        SledStore::user_is_active(self, id)
    }

    fn user_id_by_name(&self, username: &str) -> Result<Option<UserId>> {
        SledStore::user_id_by_name(self, username)
    }

    fn user_id_by_email(&self, email: &str) -> Result<Option<UserId>> {
        SledStore::user_id_by_email(self, email)
    }

    fn user_id_by_uid_number(&self, uid_number: u32) -> Result<Option<UserId>> {
        SledStore::user_id_by_uid_number(self, uid_number)
    }

    fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        SledStore::user_by_name(self, username)
    }

    fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        SledStore::user_by_email(self, email)
    }

    fn user_by_uid_number(&self, uid_number: u32) -> Result<Option<User>> {
        SledStore::user_by_uid_number(self, uid_number)
    }

    fn users(&self) -> Result<Vec<User>> {
        SledStore::users(self)
    }

    fn users_shared(&self) -> Result<Vec<Arc<User>>> {
        SledStore::users_shared(self)
    }

    fn each_user_shared(&self, each: &mut dyn FnMut(&Arc<User>) -> Result<bool>) -> Result<()> {
        SledStore::each_user_shared(self, each)
    }

    fn user_count(&self) -> Result<usize> {
        SledStore::user_count(self)
    }

    fn update_user(&self, id: UserId, change: &dyn Fn(&mut User) -> Result<()>) -> Result<User> {
        let _w = self.writing();
        SledStore::update_user(self, id, change)
    }

    fn delete_user(&self, id: UserId) -> Result<()> {
        let _w = self.writing();
        SledStore::delete_user(self, id)
    }

    fn password_hash(&self, id: UserId) -> Result<Option<String>> {
        SledStore::password_hash(self, id)
    }

    fn set_password_hash(&self, id: UserId, phc: &str) -> Result<()> {
        let _w = self.writing();
        SledStore::set_password_hash(self, id, phc)
    }

    fn create_group(&self, name: &str, description: Option<String>) -> Result<Group> {
        let _w = self.writing();
        SledStore::create_group(self, name, description)
    }

    fn group(&self, id: GroupId) -> Result<Option<Group>> {
        SledStore::group(self, id)
    }

    fn group_shared(&self, id: GroupId) -> Result<Option<Arc<Group>>> {
        SledStore::group_shared(self, id)
    }

    fn group_id_by_name(&self, name: &str) -> Result<Option<GroupId>> {
        SledStore::group_id_by_name(self, name)
    }

    fn group_id_by_gid_number(&self, gid_number: u32) -> Result<Option<GroupId>> {
        SledStore::group_id_by_gid_number(self, gid_number)
    }

    fn group_by_name(&self, name: &str) -> Result<Option<Group>> {
        SledStore::group_by_name(self, name)
    }

    fn group_by_gid_number(&self, gid_number: u32) -> Result<Option<Group>> {
        SledStore::group_by_gid_number(self, gid_number)
    }

    fn groups(&self) -> Result<Vec<Group>> {
        SledStore::groups(self)
    }

    fn delete_group(&self, id: GroupId) -> Result<()> {
        let _w = self.writing();
        SledStore::delete_group(self, id)
    }

    fn add_member(&self, group: GroupId, member: Member) -> Result<bool> {
        let _w = self.writing();
        SledStore::add_member(self, group, member)
    }

    fn remove_member(&self, group: GroupId, member: Member) -> Result<bool> {
        let _w = self.writing();
        SledStore::remove_member(self, group, member)
    }

    fn members(&self, group: GroupId) -> Result<Vec<Member>> {
        SledStore::members(self, group)
    }

    fn groups_of(&self, member: Member) -> Result<Vec<GroupId>> {
        SledStore::groups_of(self, member)
    }

    fn transitive_groups_of(&self, member: Member) -> Result<Vec<GroupId>> {
        SledStore::transitive_groups_of(self, member)
    }

    fn transitive_user_members(&self, group: GroupId) -> Result<Vec<UserId>> {
        SledStore::transitive_user_members(self, group)
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        SledStore::setting(self, key)
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        let _w = self.writing();
        SledStore::set_setting(self, key, value)
    }

    fn remove_setting(&self, key: &str) -> Result<bool> {
        let _w = self.writing();
        SledStore::remove_setting(self, key)
    }

    fn replace_user(
        &self,
        before: &User,
        after: &User,
        password_hash: Option<&str>,
    ) -> Result<Option<User>> {
        let _w = self.writing();
        SledStore::replace_user(self, before, after, password_hash)
    }

    fn rename_user(&self, id: UserId, new_name: &str) -> Result<User> {
        let _w = self.writing();
        SledStore::rename_user(self, id, new_name)
    }

    fn rename_group(&self, id: GroupId, new_name: &str) -> Result<Group> {
        let _w = self.writing();
        SledStore::rename_group(self, id, new_name)
    }

    fn group_snapshot(&self, id: GroupId) -> Result<Option<GroupSnapshot>> {
        SledStore::group_snapshot(self, id)
    }

    fn replace_group(
        &self,
        snapshot: &GroupSnapshot,
        after: &Group,
        members: &BTreeSet<Member>,
    ) -> Result<Option<Group>> {
        let _w = self.writing();
        SledStore::replace_group(self, snapshot, after, members)
    }

    fn raw_devices(&self, user: UserId) -> Result<Vec<RawDevice>> {
        SledStore::raw_devices(self, user)
    }

    fn raw_app_passwords(&self, user: UserId) -> Result<Vec<RawAppPassword>> {
        SledStore::raw_app_passwords(self, user)
    }

    fn has_keyed_hashes(&self) -> Result<bool> {
        SledStore::has_keyed_hashes(self)
    }

    fn devices(&self, user: UserId) -> Result<Vec<Device>> {
        SledStore::devices(self, user)
    }

    fn static_tokens_left(&self, user: UserId, device: DeviceId) -> Result<usize> {
        SledStore::static_tokens_left(self, user, device)
    }

    fn add_totp_device(
        &self,
        user: UserId,
        device_label: &str,
        digits: u8,
        secret: &TotpSecret,
    ) -> Result<Device> {
        let _w = self.writing();
        SledStore::add_totp_device(self, user, device_label, digits, secret)
    }

    fn add_pending_totp_device(
        &self,
        user: UserId,
        device_label: &str,
        digits: u8,
        secret: &TotpSecret,
    ) -> Result<Device> {
        let _w = self.writing();
        SledStore::add_pending_totp_device(self, user, device_label, digits, secret)
    }

    fn confirm_device(&self, user: UserId, device: DeviceId) -> Result<bool> {
        let _w = self.writing();
        SledStore::confirm_device(self, user, device)
    }

    fn add_static_device(
        &self,
        user: UserId,
        device_label: &str,
        token_hashes: &[KeyedHash],
    ) -> Result<Device> {
        let _w = self.writing();
        SledStore::add_static_device(self, user, device_label, token_hashes)
    }

    fn rename_device(&self, user: UserId, device: DeviceId, label: &str) -> Result<bool> {
        let _w = self.writing();
        SledStore::rename_device(self, user, device, label)
    }

    fn remove_device(&self, user: UserId, device: DeviceId) -> Result<bool> {
        let _w = self.writing();
        SledStore::remove_device(self, user, device)
    }

    fn totp_secret(&self, user: UserId, device: DeviceId) -> Result<Option<TotpSecret>> {
        SledStore::totp_secret(self, user, device)
    }

    fn totp_last_step(&self, user: UserId, device: DeviceId) -> Result<Option<u64>> {
        SledStore::totp_last_step(self, user, device)
    }

    fn advance_totp_step(&self, user: UserId, device: DeviceId, step: u64) -> Result<bool> {
        let _w = self.writing();
        SledStore::advance_totp_step(self, user, device, step)
    }

    fn consume_static_token(
        &self,
        user: UserId,
        device: DeviceId,
        token_hash: &KeyedHash,
    ) -> Result<bool> {
        let _w = self.writing();
        SledStore::consume_static_token(self, user, device, token_hash)
    }

    fn add_app_password(
        &self,
        user: UserId,
        kind: CredentialKind,
        name: &str,
        expires: Option<Timestamp>,
        hash: &KeyedHash,
    ) -> Result<AppPassword> {
        let _w = self.writing();
        SledStore::add_app_password(self, user, kind, name, expires, hash)
    }

    fn app_passwords(&self, user: UserId) -> Result<Vec<AppPassword>> {
        SledStore::app_passwords(self, user)
    }

    fn app_password_by_hash(&self, hash: &KeyedHash) -> Result<Option<(UserId, AppPassword)>> {
        SledStore::app_password_by_hash(self, hash)
    }

    fn revoke_app_password(&self, user: UserId, id: AppPasswordId) -> Result<bool> {
        let _w = self.writing();
        SledStore::revoke_app_password(self, user, id)
    }

    fn purge_expired_app_passwords(&self, user: UserId, now: Timestamp) -> Result<usize> {
        let _w = self.writing();
        SledStore::purge_expired_app_passwords(self, user, now)
    }

    fn touch_app_password(
        &self,
        user: UserId,
        id: AppPasswordId,
        at: Timestamp,
        from: &str,
    ) -> Result<()> {
        let _w = self.bookkeeping();
        SledStore::touch_app_password(self, user, id, at, from)
    }

    fn group_policy(&self, group: GroupId) -> Result<GroupPolicy> {
        SledStore::group_policy(self, group)
    }

    fn group_policies(&self) -> Result<Vec<(GroupId, GroupPolicy)>> {
        SledStore::group_policies(self)
    }

    fn set_group_policy(&self, group: GroupId, policy: GroupPolicy) -> Result<()> {
        let _w = self.writing();
        SledStore::set_group_policy(self, group, policy)
    }

    fn settings(&self) -> Result<Vec<(String, String)>> {
        SledStore::settings(self)
    }

    fn counters(&self) -> Result<(u32, u32)> {
        SledStore::counters(self)
    }

    fn rehash_password(&self, id: UserId, old: &str, new: &str) -> Result<bool> {
        let _w = self.writing();
        SledStore::rehash_password(self, id, old, new)
    }

    fn snapshot(&self) -> Result<Snapshot> {
        SledStore::snapshot(self)
    }

    fn snapshot_streamed(&self, sink: &mut dyn SnapshotSink) -> Result<()> {
        SledStore::snapshot_streamed(self, sink)
    }

    fn snapshot_spooled(&self, sink: &mut dyn SnapshotSink, spool_dir: &Path) -> Result<()> {
        SledStore::snapshot_spooled(self, sink, spool_dir)
    }

    fn apply_batch(&self, batch: &Batch) -> Result<BatchReport> {
        let _w = self.writing();
        SledStore::apply_batch(self, batch)
    }

    fn apply_batch_streamed(
        &self,
        batch: &Batch,
        users: &mut dyn Iterator<Item = Result<BatchUser>>,
    ) -> Result<BatchReport> {
        let _w = self.writing();
        SledStore::apply_batch_streamed(self, batch, users)
    }

    fn bulk_import(
        &self,
        mode: BatchMode,
    ) -> Result<Option<Box<dyn crate::store::BulkImport + '_>>> {
        let _w = self.writing();
        Ok(Some(Box::new(SledStore::bulk_import(self, mode)?)))
    }

    fn create_session(&self, hash: &SessionHash, session: &PortalSession) -> Result<()> {
        SledStore::create_session(self, hash, session)
    }

    fn session(&self, hash: &SessionHash) -> Result<Option<PortalSession>> {
        SledStore::session(self, hash)
    }

    fn touch_session(&self, hash: &SessionHash, at: Timestamp) -> Result<bool> {
        SledStore::touch_session(self, hash, at)
    }

    fn delete_session(&self, hash: &SessionHash) -> Result<bool> {
        SledStore::delete_session(self, hash)
    }

    fn sessions_of(&self, user: UserId) -> Result<Vec<(SessionHash, PortalSession)>> {
        SledStore::sessions_of(self, user)
    }

    fn delete_sessions_of(&self, user: UserId, keep: Option<&SessionHash>) -> Result<usize> {
        SledStore::delete_sessions_of(self, user, keep)
    }

    fn all_sessions(&self) -> Result<Vec<(SessionHash, PortalSession)>> {
        SledStore::all_sessions(self)
    }

    fn group_attrs(&self, id: GroupId) -> Result<BTreeMap<String, String>> {
        SledStore::group_attrs(self, id)
    }

    fn set_group_attr(&self, id: GroupId, key: &str, value: Option<&str>) -> Result<bool> {
        let _w = self.writing();
        SledStore::set_group_attr(self, id, key, value)
    }

    /// One process owns the database (sled's file lock): nothing to hold.
    fn startup_lock(&self) -> Result<StartupLock> {
        Ok(StartupLock::none())
    }

    /// The key lives beside the database in the data directory.
    fn check_key_fingerprint(&self, _fingerprint: &str) -> Result<()> {
        Ok(())
    }

    /// One process owns the database: the throttle counts in memory.
    fn failure_counters(&self) -> Option<Arc<dyn FailureCounters>> {
        None
    }

    /// The database is this process.
    fn ping(&self) -> Result<()> {
        Ok(())
    }

    /// One process opens the store: its registry holds every connection.
    fn connection_board(&self) -> Option<std::sync::Arc<dyn crate::store::ConnectionBoard>> {
        None
    }
}
