//! Batch writes in sled: the whole batch in one transaction (see
//! `crate::store::import` for what a batch means).

use super::mfa::{tx_restore_group_policy, tx_restore_second_factors, MFA_TREE_COUNT};
use super::{
    abort, email_key, keys, name_key, retrying, setting_key, settle, tx_allocate,
    tx_check_and_bump_epoch, tx_counter, tx_group, tx_put_group, tx_put_user, tx_reindex_email,
    tx_user, GroupId, Member, Result, SledStore, StoreError, User, UserId, EMPTY, FIRST_GID_NUMBER,
    FIRST_UID_NUMBER, META_NEXT_GID, META_NEXT_UID, SETTING_PREFIX,
};
use super::{backend, now, TxResult};
use sled::transaction::{Transactional, TransactionalTree};
use sled::Tree;

use crate::store::import::{Batch, BatchGroup, BatchMember, BatchMode, BatchReport, BatchUser};
use crate::store::Timestamp;
use std::collections::{BTreeMap, HashMap, HashSet};

fn conflict(msg: String) -> sled::transaction::ConflictableTransactionError<super::TxAbort> {
    abort(StoreError::AlreadyExists(format!("import conflict: {msg}")))
}

impl SledStore {
    /// Every setting, ordered by key.
    pub fn settings(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for entry in self.t.meta.scan_prefix(SETTING_PREFIX.as_bytes()) {
            let (k, v) = entry.map_err(backend)?;
            let key = String::from_utf8(k[SETTING_PREFIX.len()..].to_vec())
                .map_err(|_| StoreError::Backend("corrupt setting key".into()))?;
            let value = String::from_utf8(v.to_vec())
                .map_err(|_| StoreError::Backend(format!("corrupt setting {key:?}")))?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// The allocators: (next uidNumber, next gidNumber).
    pub fn counters(&self) -> Result<(u32, u32)> {
        let get = |key: &[u8], default: u32| -> Result<u32> {
            match self.t.meta.get(key).map_err(backend)? {
                Some(b) => keys::number(&b),
                None => Ok(default),
            }
        };
        Ok((
            get(META_NEXT_UID, FIRST_UID_NUMBER)?,
            get(META_NEXT_GID, FIRST_GID_NUMBER)?,
        ))
    }

    /// Replaces the password hash `old` with `new` if it is still `old`,
    /// without touching `pwd_changed` or `cred_generation`: the password
    /// is the same, only its hash is upgraded (legacy → argon2id after a
    /// successful bind). `Ok(false)` if the hash changed meanwhile.
    pub fn rehash_password(&self, id: UserId, old: &str, new: &str) -> Result<bool> {
        self.committed(self.rehash_password_uncommitted(id, old, new))
    }

    fn rehash_password_uncommitted(&self, id: UserId, old: &str, new: &str) -> Result<bool> {
        if new.is_empty() {
            return Err(StoreError::Invalid("the password hash is empty".into()));
        }
        let swapped = self
            .t
            .credentials
            .compare_and_swap(
                keys::user_key(id),
                Some(old.as_bytes()),
                Some(new.as_bytes()),
            )
            .map_err(backend)?;
        Ok(swapped.is_ok())
    }

    /// Group → child-group edges by lowercase name, existing ones plus
    /// those the batch adds; refuses a batch that would close a cycle.
    pub(super) fn check_batch_cycles(&self, batch: &Batch) -> Result<()> {
        let mut edges: HashMap<String, HashSet<String>> = HashMap::new();
        let mut names: HashMap<GroupId, String> = HashMap::new();
        for g in self.groups()? {
            names.insert(g.id, g.name.to_ascii_lowercase());
        }
        for entry in self.t.members.iter() {
            let (key, _) = entry.map_err(backend)?;
            if let Member::Group(child) = keys::parse_members_key(&key)? {
                let parent = GroupId(keys::uuid(&key[..16])?);
                if let (Some(p), Some(c)) = (names.get(&parent), names.get(&child)) {
                    edges.entry(p.clone()).or_default().insert(c.clone());
                }
            }
        }
        for (group, member) in &batch.memberships {
            if let BatchMember::Group(child) = member {
                edges
                    .entry(group.to_ascii_lowercase())
                    .or_default()
                    .insert(child.to_ascii_lowercase());
            }
        }
        match crate::domain::rules::nesting_cycle(&edges) {
            Some((node, c)) => Err(StoreError::Invalid(format!(
                "import conflict: adding group {c} under {node} would create a cycle of nested \
                 groups"
            ))),
            None => Ok(()),
        }
    }

    /// Writes a whole batch in one transaction over every tree involved.
    /// Either all of it lands or, on any conflict or failure, none of it.
    pub fn apply_batch(&self, batch: &Batch) -> Result<BatchReport> {
        self.committed(self.apply_batch_uncommitted(batch))
    }

    fn apply_batch_uncommitted(&self, batch: &Batch) -> Result<BatchReport> {
        self.batch_transaction(batch, false)
    }

    /// The transaction that finishes a bulk import (`bulk.rs`): the
    /// batch's merges, and the removal of the import's marker.
    pub(super) fn apply_batch_committing_import(&self, batch: &Batch) -> Result<BatchReport> {
        self.batch_transaction(batch, true)
    }

    fn batch_transaction(&self, batch: &Batch, commits_import: bool) -> Result<BatchReport> {
        crate::store::Store::check_batch(batch)?;
        let t = &self.t;
        let mut trees: Vec<&Tree> = vec![
            &t.users,
            &t.groups,
            &t.credentials,
            &t.idx_username,
            &t.idx_email,
            &t.idx_uid,
            &t.idx_group_name,
            &t.idx_gid,
            &t.members,
            &t.member_of,
            &t.meta,
        ];
        // The MFA trees join only a batch that writes to them (a restore),
        // so imports and LDAP adds do not contend with binds for them.
        let with_mfa = !batch.second_factors.is_empty() || !batch.group_policies.is_empty();
        if with_mfa {
            trees.extend(self.mfa_trees());
        }
        retrying("importing", || {
            let seen = self.stored_epoch()?;
            // A bulk import checked the whole batch before it wrote
            // anything, and nobody else writes meanwhile.
            if !commits_import {
                self.check_batch_cycles(batch)?;
            }
            settle(
                &self.t,
                trees[..].transaction(|views: &Vec<TransactionalTree>| {
                    let report = self.tx_batch(batch, seen, views)?;
                    if commits_import {
                        // views[10] is `meta` (the order of `trees` above).
                        views[10].remove(super::bulk::META_IMPORT_PENDING)?;
                    }
                    Ok(report)
                }),
            )
        })
    }

    fn tx_batch(
        &self,
        batch: &Batch,
        seen: u64,
        views: &[TransactionalTree],
    ) -> TxResult<BatchReport> {
        let mut tx = BatchTx::new(batch, views)?;
        tx.advance_counters()?;
        tx.write_groups()?;
        tx.write_users()?;
        tx.write_memberships()?;
        // Aborts as stale if memberships changed since the cycle check.
        tx_check_and_bump_epoch(tx.v.meta, Some(seen))?;
        tx.write_settings()?;
        tx.write_second_factors()?;
        Ok(tx.report)
    }
}

/// The views of one batch transaction, by tree.
struct BatchViews<'a> {
    users: &'a TransactionalTree,
    groups: &'a TransactionalTree,
    credentials: &'a TransactionalTree,
    idx_username: &'a TransactionalTree,
    idx_email: &'a TransactionalTree,
    idx_uid: &'a TransactionalTree,
    idx_group_name: &'a TransactionalTree,
    idx_gid: &'a TransactionalTree,
    members: &'a TransactionalTree,
    member_of: &'a TransactionalTree,
    meta: &'a TransactionalTree,
    /// The MFA trees, in the order of `SledStore::mfa_trees` (empty when
    /// the batch writes no second factor or policy).
    mfa: &'a [TransactionalTree],
}

/// One run of a batch transaction: the views, the batch, and what the run
/// learned so far (the ids of the names it wrote, the report). Built anew
/// each time sled runs the transaction closure.
struct BatchTx<'a> {
    batch: &'a Batch,
    v: BatchViews<'a>,
    at: Timestamp,
    restore: bool,
    user_ids: BTreeMap<Vec<u8>, UserId>,
    group_ids: BTreeMap<Vec<u8>, GroupId>,
    /// Groups that existed before the batch (their `modified` moves when
    /// they gain members).
    existing_groups: HashSet<GroupId>,
    report: BatchReport,
}

impl<'a> BatchTx<'a> {
    fn new(batch: &'a Batch, views: &'a [TransactionalTree]) -> TxResult<BatchTx<'a>> {
        let [users, groups, credentials, idx_username, idx_email, idx_uid, idx_group_name, idx_gid, members, member_of, meta, mfa @ ..] =
            views
        else {
            return Err(abort(StoreError::Backend(
                "import: wrong number of trees".into(),
            )));
        };
        let with_mfa = !batch.second_factors.is_empty() || !batch.group_policies.is_empty();
        if with_mfa && mfa.len() != MFA_TREE_COUNT {
            return Err(abort(StoreError::Backend(
                "import: wrong number of MFA trees".into(),
            )));
        }
        Ok(BatchTx {
            batch,
            v: BatchViews {
                users,
                groups,
                credentials,
                idx_username,
                idx_email,
                idx_uid,
                idx_group_name,
                idx_gid,
                members,
                member_of,
                meta,
                mfa,
            },
            at: now(),
            restore: batch.mode == BatchMode::Restore,
            user_ids: BTreeMap::new(),
            group_ids: BTreeMap::new(),
            existing_groups: HashSet::new(),
            report: BatchReport::default(),
        })
    }

    /// Moves the counters past every imported number first, so allocation
    /// never hands out a number the batch also uses.
    fn advance_counters(&mut self) -> TxResult<()> {
        let batch = self.batch;
        let max_uid = batch
            .users
            .iter()
            .filter(|u| !u.allocate_uid)
            .map(|u| u.user.uid_number)
            .max();
        let max_gid = batch
            .groups
            .iter()
            .filter(|g| !g.allocate_gid)
            .map(|g| g.group.gid_number)
            .max();
        let meta = self.v.meta;
        for (key, first, max, at_least) in [
            (META_NEXT_UID, FIRST_UID_NUMBER, max_uid, batch.next_uid),
            (META_NEXT_GID, FIRST_GID_NUMBER, max_gid, batch.next_gid),
        ] {
            let mut next = tx_counter(meta, key, first)?;
            if let Some(m) = max {
                next = next.max(m.saturating_add(1));
            }
            if let Some(n) = at_least {
                next = next.max(n);
            }
            meta.insert(key, &keys::number_key(next))?;
        }
        Ok(())
    }

    /// Groups first: their numbers bound user allocation too.
    fn write_groups(&mut self) -> TxResult<()> {
        let mut pending = Vec::new();
        for bg in &self.batch.groups {
            let key = name_key(&bg.group.name);
            if self.group_ids.contains_key(&key) {
                return Err(conflict(format!("group {} appears twice", bg.group.name)));
            }
            match self.v.idx_group_name.get(&*key)? {
                Some(id_bytes) => {
                    let id = GroupId(keys::uuid(&id_bytes).map_err(abort)?);
                    self.merge_group(bg, id)?;
                    self.existing_groups.insert(id);
                    self.group_ids.insert(key, id);
                }
                None => {
                    self.check_new_group(bg)?;
                    self.group_ids.insert(key, bg.group.id);
                    pending.push(bg);
                }
            }
        }
        for bg in pending {
            self.create_group(bg)?;
        }
        Ok(())
    }

    /// A batch group whose name exists: merged (import) or overwritten
    /// (restore, same id only).
    fn merge_group(&mut self, bg: &BatchGroup, id: GroupId) -> TxResult<()> {
        let g = &bg.group;
        let ex = tx_group(self.v.groups, id)?.ok_or_else(|| {
            abort(StoreError::Backend(format!(
                "group index names missing {id}"
            )))
        })?;
        let merged =
            crate::domain::rules::merged_group(&ex, g, bg.allocate_gid, self.restore, self.at)
                .map_err(abort)?;
        if let Some(after) = merged {
            tx_put_group(self.v.groups, &after)?;
            self.report.groups_updated.push(g.name.clone());
        } else {
            self.report.groups_unchanged.push(g.name.clone());
        }
        Ok(())
    }

    /// A new batch group must not reuse an id or a gidNumber.
    fn check_new_group(&self, bg: &BatchGroup) -> TxResult<()> {
        let g = &bg.group;
        if self.v.groups.get(keys::group_key(g.id))?.is_some() {
            return Err(conflict(format!(
                "group id {} of {} is already used by another group",
                g.id, g.name
            )));
        }
        if !bg.allocate_gid {
            if let Some(owner) = self.v.idx_gid.get(keys::number_key(g.gid_number))? {
                let owner = GroupId(keys::uuid(&owner).map_err(abort)?);
                let owner = tx_group(self.v.groups, owner)?.map_or_else(String::new, |o| o.name);
                return Err(conflict(format!(
                    "gidNumber {} of group {} already belongs to group {owner}",
                    g.gid_number, g.name
                )));
            }
        }
        Ok(())
    }

    fn create_group(&mut self, bg: &BatchGroup) -> TxResult<()> {
        let v = &self.v;
        let mut g = bg.group.clone();
        if bg.allocate_gid {
            g.gid_number = tx_allocate(
                v.meta,
                META_NEXT_GID,
                FIRST_GID_NUMBER,
                v.idx_gid,
                v.idx_uid,
                "gid",
                0,
            )?;
        }
        tx_put_group(v.groups, &g)?;
        let id_bytes = keys::group_key(g.id);
        v.idx_group_name.insert(name_key(&g.name), &id_bytes)?;
        v.idx_gid
            .insert(&keys::number_key(g.gid_number), &id_bytes)?;
        self.report.groups_created.push(g.name.clone());
        Ok(())
    }

    fn write_users(&mut self) -> TxResult<()> {
        let mut pending = Vec::new();
        for bu in &self.batch.users {
            let key = name_key(&bu.user.username);
            if self.user_ids.contains_key(&key) {
                return Err(conflict(format!("user {} appears twice", bu.user.username)));
            }
            match self.v.idx_username.get(&*key)? {
                Some(id_bytes) => {
                    let id = UserId(keys::uuid(&id_bytes).map_err(abort)?);
                    self.merge_user(bu, id)?;
                    self.user_ids.insert(key, id);
                }
                None => {
                    self.check_new_user(bu)?;
                    self.user_ids.insert(key, bu.user.id);
                    pending.push(bu);
                }
            }
        }
        for bu in pending {
            self.create_user(bu)?;
        }
        Ok(())
    }

    /// A batch user whose name exists: merged (import: the password only
    /// where none is set) or overwritten (restore, same id only).
    fn merge_user(&mut self, bu: &BatchUser, id: UserId) -> TxResult<()> {
        let (u, v) = (&bu.user, &self.v);
        let ex = tx_user(v.users, id)?.ok_or_else(|| {
            abort(StoreError::Backend(format!(
                "user index names missing {id}"
            )))
        })?;
        if self.restore && ex.id != u.id {
            return Err(conflict(format!(
                "user {} already exists with another id; restore into a fresh data \
                 directory",
                u.username
            )));
        }
        if !bu.allocate_uid && ex.uid_number != u.uid_number {
            return Err(conflict(format!(
                "user {} exists with uidNumber {}, the import has {}",
                u.username, ex.uid_number, u.uid_number
            )));
        }
        let mut after = if self.restore {
            u.clone()
        } else {
            crate::domain::rules::merged_user(&ex, u)
        };
        tx_reindex_email(v.idx_email, &ex, &after, |after| {
            conflict(format!(
                "email {} of user {} already belongs to another user",
                after.email.as_deref().unwrap_or_default(),
                after.username
            ))
        })?;
        self.merge_password(bu, id, &mut after)?;
        if after != ex {
            if !self.restore {
                after.modified = self.at;
            }
            tx_put_user(self.v.users, &after)?;
            self.report.users_updated.push(u.username.clone());
        } else {
            self.report.users_unchanged.push(u.username.clone());
        }
        Ok(())
    }

    /// The password of an existing user: a restore writes the backup's (or
    /// removes one the backup has not); an import sets one only where the
    /// user has none.
    fn merge_password(&mut self, bu: &BatchUser, id: UserId, after: &mut User) -> TxResult<()> {
        let credentials = self.v.credentials;
        let current = credentials.get(keys::user_key(id))?;
        let Some(hash) = &bu.password_hash else {
            if self.restore && current.is_some() {
                credentials.remove(&keys::user_key(id))?;
            }
            return Ok(());
        };
        if current.as_deref() == Some(hash.as_bytes()) {
            return Ok(());
        }
        if self.restore || current.is_none() {
            credentials.insert(&keys::user_key(id), hash.as_bytes())?;
            if !self.restore {
                after.pwd_changed = Some(self.at);
                after.cred_generation = after.cred_generation.wrapping_add(1);
            }
            self.report.passwords_set.push(bu.user.username.clone());
        } else {
            self.report.passwords_kept.push(bu.user.username.clone());
        }
        Ok(())
    }

    /// A new batch user must not reuse an id, a uidNumber or an email.
    fn check_new_user(&self, bu: &BatchUser) -> TxResult<()> {
        let (u, v) = (&bu.user, &self.v);
        if v.users.get(keys::user_key(u.id))?.is_some() {
            return Err(conflict(format!(
                "user id {} of {} is already used by another user",
                u.id, u.username
            )));
        }
        if !bu.allocate_uid {
            if let Some(owner) = v.idx_uid.get(keys::number_key(u.uid_number))? {
                let owner = UserId(keys::uuid(&owner).map_err(abort)?);
                let owner = tx_user(v.users, owner)?.map_or_else(String::new, |o| o.username);
                return Err(conflict(format!(
                    "uidNumber {} of user {} already belongs to user {owner}",
                    u.uid_number, u.username
                )));
            }
        }
        if let Some(email) = &u.email {
            if v.idx_email.get(email_key(email))?.is_some() {
                return Err(conflict(format!(
                    "email {email} of user {} already belongs to another user",
                    u.username
                )));
            }
        }
        Ok(())
    }

    fn create_user(&mut self, bu: &BatchUser) -> TxResult<()> {
        let v = &self.v;
        let mut u = bu.user.clone();
        if bu.allocate_uid {
            u.uid_number = tx_allocate(
                v.meta,
                META_NEXT_UID,
                FIRST_UID_NUMBER,
                v.idx_uid,
                v.idx_gid,
                "uid",
                0,
            )?;
            if u.gid_number == 0 {
                u.gid_number = u.uid_number;
            }
        }
        let id_bytes = keys::user_key(u.id);
        if let Some(hash) = &bu.password_hash {
            v.credentials.insert(&id_bytes, hash.as_bytes())?;
            if !self.restore {
                u.pwd_changed = Some(u.pwd_changed.unwrap_or(self.at));
            }
            self.report.passwords_set.push(u.username.clone());
        }
        tx_put_user(v.users, &u)?;
        v.idx_username.insert(name_key(&u.username), &id_bytes)?;
        if let Some(email) = &u.email {
            v.idx_email.insert(email_key(email), &id_bytes)?;
        }
        v.idx_uid
            .insert(&keys::number_key(u.uid_number), &id_bytes)?;
        self.report.users_created.push(u.username.clone());
        Ok(())
    }

    /// A user named by the batch: one it wrote, or one already stored.
    fn lookup_user(&self, name: &str) -> TxResult<Option<UserId>> {
        let key = name_key(name);
        if let Some(id) = self.user_ids.get(&key) {
            return Ok(Some(*id));
        }
        match self.v.idx_username.get(&*key)? {
            Some(b) => Ok(Some(UserId(keys::uuid(&b).map_err(abort)?))),
            None => Ok(None),
        }
    }

    /// A group named by the batch: one it wrote, or one already stored.
    fn lookup_group(&self, name: &str) -> TxResult<Option<GroupId>> {
        let key = name_key(name);
        if let Some(id) = self.group_ids.get(&key) {
            return Ok(Some(*id));
        }
        match self.v.idx_group_name.get(&*key)? {
            Some(b) => Ok(Some(GroupId(keys::uuid(&b).map_err(abort)?))),
            None => Ok(None),
        }
    }

    fn member(&self, member: &BatchMember) -> TxResult<Member> {
        Ok(match member {
            BatchMember::User(n) => Member::User(
                self.lookup_user(n)?
                    .ok_or_else(|| abort(StoreError::NotFound(format!("user {n}"))))?,
            ),
            BatchMember::Group(n) => Member::Group(
                self.lookup_group(n)?
                    .ok_or_else(|| abort(StoreError::NotFound(format!("group {n}"))))?,
            ),
        })
    }

    /// Memberships are only added; an existing group that gains members
    /// gets a new `modified` (import only).
    fn write_memberships(&mut self) -> TxResult<()> {
        let mut touched: HashSet<GroupId> = HashSet::new();
        for (group, member) in &self.batch.memberships {
            let gid = self.lookup_group(group)?.ok_or_else(|| {
                abort(StoreError::NotFound(format!("group {group} (member list)")))
            })?;
            let m = self.member(member)?;
            if m == Member::Group(gid) {
                return Err(conflict(format!("group {group} cannot contain itself")));
            }
            let key = keys::members_key(gid, m);
            if self.v.members.get(&key)?.is_some() {
                continue;
            }
            self.v.members.insert(key, EMPTY)?;
            self.v
                .member_of
                .insert(keys::member_of_key(m, gid), EMPTY)?;
            self.report.memberships_added += 1;
            if self.existing_groups.contains(&gid) {
                touched.insert(gid);
            }
        }
        if !self.restore {
            for gid in touched {
                if let Some(mut g) = tx_group(self.v.groups, gid)? {
                    g.modified = self.at;
                    tx_put_group(self.v.groups, &g)?;
                }
            }
        }
        Ok(())
    }

    fn write_settings(&mut self) -> TxResult<()> {
        for (k, v) in &self.batch.settings {
            self.v.meta.insert(setting_key(k), v.as_bytes())?;
            self.report.settings_set += 1;
        }
        Ok(())
    }

    /// Second factors and group policies (a restore).
    fn write_second_factors(&mut self) -> TxResult<()> {
        for (name, factors) in &self.batch.second_factors {
            let user = self
                .lookup_user(name)?
                .ok_or_else(|| abort(StoreError::NotFound(format!("user {name}"))))?;
            let (d, a) = tx_restore_second_factors(self.v.mfa, user, factors)?;
            self.report.devices_restored += d;
            self.report.app_passwords_restored += a;
        }
        for (name, policy) in &self.batch.group_policies {
            let group = self
                .lookup_group(name)?
                .ok_or_else(|| abort(StoreError::NotFound(format!("group {name}"))))?;
            if tx_restore_group_policy(self.v.mfa, group, policy)? {
                self.report.group_policies_set += 1;
            }
        }
        Ok(())
    }
}
