//! Batch writes (imports and restores) in PostgreSQL: the whole batch in
//! one transaction, with the meaning `crate::store::import` gives it and
//! the same reports and refusals as the sled backend.
//!
//! The transaction takes the membership epoch's row and both allocators'
//! rows first (the lock order of the module documentation), so the cycle
//! check over existing and new nestings sees memberships nobody changes
//! until the commit.
//!
//! The users and memberships are written in chunks (`chunks`), which is
//! what lets a streamed import ([`PgStore::apply_batch_streamed`]) hold
//! one chunk of users at a time; groups, settings and second factors are
//! few and go one by one.

use std::collections::{HashMap, HashSet};

use tokio_postgres::Transaction;

use super::groups::{group_row, insert_group, update_group_row, GROUP_COLUMNS};
use super::users::{allocate, bump_epoch, lock_epoch, name_key, update_user_row};
use super::{from_u64, to_u32, unique_violation, PgStore, TxError, TxResult};
use crate::domain::mfa::{DeviceKind, GroupPolicy, MfaPolicy, RawSecondFactors};
use crate::domain::rules;
use crate::store::import::{Batch, BatchGroup, BatchMember, BatchMode, BatchReport, BatchUser};
use crate::store::{
    now, GroupId, Result, Store, StoreError, Timestamp, User, UserId, FIRST_GID_NUMBER,
    FIRST_UID_NUMBER,
};

pub(super) fn conflict(msg: String) -> TxError {
    TxError::Store(StoreError::AlreadyExists(format!("import conflict: {msg}")))
}

impl PgStore {
    pub(super) fn apply_batch(&self, batch: &Batch) -> Result<BatchReport> {
        Store::check_batch(batch)?;
        // Run again whole after a serialization failure: the users are
        // read again from the batch.
        self.write("importing", async |tx| {
            let mut users = batch.users.iter().cloned().map(Ok);
            BatchRun::new(tx, batch).run(&mut users).await
        })
    }

    /// [`PgStore::apply_batch`] with the users read from `users` as they
    /// are written, in chunks (`chunks`): still one transaction, so still
    /// all or nothing, but memory holds one chunk of users, not all of
    /// them. Not run again after a serialization failure (the stream is
    /// read once): the error is reported.
    pub(super) fn apply_batch_streamed(
        &self,
        batch: &Batch,
        users: &mut dyn Iterator<Item = Result<BatchUser>>,
    ) -> Result<BatchReport> {
        Store::check_batch(batch)?;
        self.write_once("importing", async move |tx| {
            BatchRun::new(tx, batch).run(users).await
        })
    }
}

/// One run of a batch transaction and what it learned so far.
pub(super) struct BatchRun<'a, 't> {
    pub(super) tx: &'a Transaction<'t>,
    pub(super) batch: &'a Batch,
    pub(super) at: Timestamp,
    pub(super) restore: bool,
    /// Users the batch created or merged: a name found again (stored by
    /// an earlier chunk, or before) is a conflict when its row is one of
    /// these. Ids rather than names: 16 bytes a user.
    pub(super) users_written: HashSet<UserId>,
    /// Lowercase names of the batch's groups (a name twice is a conflict).
    seen_groups: HashSet<String>,
    /// Groups that existed before the batch (their `modified` moves when
    /// they gain members, on an import).
    pub(super) existing_groups: HashSet<GroupId>,
    pub(super) report: BatchReport,
}

impl<'a, 't> BatchRun<'a, 't> {
    fn new(tx: &'a Transaction<'t>, batch: &'a Batch) -> BatchRun<'a, 't> {
        BatchRun {
            tx,
            batch,
            at: now(),
            restore: batch.mode == BatchMode::Restore,
            users_written: HashSet::new(),
            seen_groups: HashSet::new(),
            existing_groups: HashSet::new(),
            report: BatchReport::default(),
        }
    }

    /// The whole batch, in the lock order of the module documentation:
    /// the epoch's row, then both allocators' rows.
    async fn run(
        mut self,
        users: &mut dyn Iterator<Item = Result<BatchUser>>,
    ) -> TxResult<BatchReport> {
        lock_epoch(self.tx).await?;
        self.check_cycles().await?;
        self.advance_counters().await?;
        self.write_groups().await?;
        self.write_users(users).await?;
        self.write_memberships().await?;
        bump_epoch(self.tx).await?;
        self.write_settings().await?;
        self.write_second_factors().await?;
        Ok(self.report)
    }
}

impl BatchRun<'_, '_> {
    /// Group → child-group edges by lowercase name, stored ones plus the
    /// batch's; refuses a batch that would close a cycle.
    async fn check_cycles(&self) -> TxResult<()> {
        let mut edges: HashMap<String, HashSet<String>> = HashMap::new();
        for row in self
            .tx
            .query(
                "SELECT p.name_key AS parent, c.name_key AS child FROM group_members m \
                 JOIN groups p ON p.id = m.group_id JOIN groups c ON c.id = m.child_id",
                &[],
            )
            .await?
        {
            edges
                .entry(row.try_get("parent")?)
                .or_default()
                .insert(row.try_get("child")?);
        }
        for (group, member) in &self.batch.memberships {
            if let BatchMember::Group(child) = member {
                edges
                    .entry(group.to_ascii_lowercase())
                    .or_default()
                    .insert(child.to_ascii_lowercase());
            }
        }
        match rules::nesting_cycle(&edges) {
            Some((node, c)) => Err(TxError::Store(StoreError::Invalid(format!(
                "import conflict: adding group {c} under {node} would create a cycle of nested \
                 groups"
            )))),
            None => Ok(()),
        }
    }

    /// Moves the counters past every imported number first, so allocation
    /// never hands out a number the batch also uses.
    async fn advance_counters(&self) -> TxResult<()> {
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
        let rows = self
            .tx
            .query(
                "SELECT name, value FROM counters WHERE name IN ('next_gid', 'next_uid') \
                 ORDER BY name FOR UPDATE",
                &[],
            )
            .await?;
        for (key, first, max, at_least) in [
            ("next_uid", FIRST_UID_NUMBER, max_uid, batch.next_uid),
            ("next_gid", FIRST_GID_NUMBER, max_gid, batch.next_gid),
        ] {
            let mut next = first;
            for row in &rows {
                if row.try_get::<_, &str>("name")? == key {
                    next = to_u32(row.try_get("value")?, key)?;
                }
            }
            if let Some(m) = max {
                next = next.max(m.saturating_add(1));
            }
            if let Some(n) = at_least {
                next = next.max(n);
            }
            self.tx
                .execute(
                    "UPDATE counters SET value = $2 WHERE name = $1",
                    &[&key, &i64::from(next)],
                )
                .await?;
        }
        Ok(())
    }

    async fn group_by_name(&self, name: &str) -> TxResult<Option<crate::store::Group>> {
        let row = self
            .tx
            .query_opt(
                &format!(
                    "SELECT {GROUP_COLUMNS} FROM groups WHERE name_key = $1 FOR NO KEY UPDATE"
                ),
                &[&name_key(name)],
            )
            .await?;
        row.as_ref().map(group_row).transpose()
    }

    /// Groups first: their numbers bound user allocation too.
    async fn write_groups(&mut self) -> TxResult<()> {
        let mut pending = Vec::new();
        for bg in &self.batch.groups {
            if !self.seen_groups.insert(name_key(&bg.group.name)) {
                return Err(conflict(format!("group {} appears twice", bg.group.name)));
            }
            match self.group_by_name(&bg.group.name).await? {
                Some(existing) => {
                    self.existing_groups.insert(existing.id);
                    self.merge_group(bg, existing).await?;
                }
                None => {
                    self.check_new_group(bg).await?;
                    pending.push(bg);
                }
            }
        }
        for bg in pending {
            let mut g = bg.group.clone();
            if bg.allocate_gid {
                g.gid_number = allocate(self.tx, "next_gid", FIRST_GID_NUMBER, "gid").await?;
            }
            insert_group(self.tx, &g).await?;
            self.report.groups_created.push(g.name.clone());
        }
        Ok(())
    }

    /// A batch group whose name exists: merged (import) or overwritten
    /// (restore, same id only).
    async fn merge_group(&mut self, bg: &BatchGroup, ex: crate::store::Group) -> TxResult<()> {
        let g = &bg.group;
        let merged =
            crate::domain::rules::merged_group(&ex, g, bg.allocate_gid, self.restore, self.at)?;
        if let Some(after) = merged {
            update_group_row(self.tx, &after).await?;
            self.report.groups_updated.push(g.name.clone());
        } else {
            self.report.groups_unchanged.push(g.name.clone());
        }
        Ok(())
    }

    /// A new batch group must not reuse an id or a gidNumber.
    async fn check_new_group(&self, bg: &BatchGroup) -> TxResult<()> {
        let g = &bg.group;
        if self
            .tx
            .query_opt("SELECT 1 FROM groups WHERE id = $1", &[&g.id.0])
            .await?
            .is_some()
        {
            return Err(conflict(format!(
                "group id {} of {} is already used by another group",
                g.id, g.name
            )));
        }
        if !bg.allocate_gid {
            if let Some(row) = self
                .tx
                .query_opt(
                    "SELECT name FROM groups WHERE gid_number = $1",
                    &[&i64::from(g.gid_number)],
                )
                .await?
            {
                let owner: String = row.try_get("name")?;
                return Err(conflict(format!(
                    "gidNumber {} of group {} already belongs to group {owner}",
                    g.gid_number, g.name
                )));
            }
        }
        Ok(())
    }

    /// A batch user whose name exists: merged (import: the password only
    /// where none is set) or overwritten (restore, same id only).
    pub(super) async fn merge_user(&mut self, bu: &BatchUser, ex: User) -> TxResult<()> {
        let u = &bu.user;
        if self.restore && ex.id != u.id {
            return Err(conflict(format!(
                "user {} already exists with another id; restore into a fresh data directory",
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
            rules::merged_user(&ex, u)
        };
        self.merge_password(bu, ex.id, &mut after).await?;
        if after != ex {
            if !self.restore {
                after.modified = self.at;
            }
            update_user_row(self.tx, &after)
                .await
                .map_err(|e| email_conflict(e, &after))?;
            self.report.users_updated.push(u.username.clone());
        } else {
            self.report.users_unchanged.push(u.username.clone());
        }
        Ok(())
    }

    /// The password of an existing user: a restore writes the backup's (or
    /// removes one the backup has not); an import sets one only where the
    /// user has none.
    async fn merge_password(
        &mut self,
        bu: &BatchUser,
        id: UserId,
        after: &mut User,
    ) -> TxResult<()> {
        let current: Option<String> = self
            .tx
            .query_opt("SELECT phc FROM credentials WHERE user_id = $1", &[&id.0])
            .await?
            .map(|r| r.try_get("phc"))
            .transpose()?;
        let Some(hash) = &bu.password_hash else {
            if self.restore && current.is_some() {
                self.tx
                    .execute("DELETE FROM credentials WHERE user_id = $1", &[&id.0])
                    .await?;
            }
            return Ok(());
        };
        if current.as_deref() == Some(hash.as_str()) {
            return Ok(());
        }
        if self.restore || current.is_none() {
            self.tx
                .execute(
                    "INSERT INTO credentials (user_id, phc) VALUES ($1, $2) \
                     ON CONFLICT (user_id) DO UPDATE SET phc = EXCLUDED.phc",
                    &[&id.0, hash],
                )
                .await?;
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

    async fn lookup_user(&self, name: &str) -> TxResult<Option<UserId>> {
        let row = self
            .tx
            .query_opt(
                "SELECT id FROM users WHERE username_key = $1",
                &[&name_key(name)],
            )
            .await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?.map(UserId))
    }

    async fn lookup_group(&self, name: &str) -> TxResult<Option<GroupId>> {
        let row = self
            .tx
            .query_opt(
                "SELECT id FROM groups WHERE name_key = $1",
                &[&name_key(name)],
            )
            .await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?.map(GroupId))
    }

    async fn write_settings(&mut self) -> TxResult<()> {
        for (k, v) in &self.batch.settings {
            self.tx
                .execute(
                    "INSERT INTO settings (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    &[k, v],
                )
                .await?;
            self.report.settings_set += 1;
        }
        Ok(())
    }

    /// Second factors and group policies (a restore).
    async fn write_second_factors(&mut self) -> TxResult<()> {
        for (name, factors) in &self.batch.second_factors {
            let user = self
                .lookup_user(name)
                .await?
                .ok_or_else(|| TxError::Store(StoreError::NotFound(format!("user {name}"))))?;
            let (d, a) = self.restore_second_factors(user, factors).await?;
            self.report.devices_restored += d;
            self.report.app_passwords_restored += a;
        }
        for (name, policy) in &self.batch.group_policies {
            let group = self
                .lookup_group(name)
                .await?
                .ok_or_else(|| TxError::Store(StoreError::NotFound(format!("group {name}"))))?;
            if self.restore_group_policy(group, policy).await? {
                self.report.group_policies_set += 1;
            }
        }
        Ok(())
    }

    /// One user's devices and app passwords with their ids, secrets, last
    /// steps and keyed hashes; a record stored with the same values is
    /// left alone (a second restore changes nothing), a TOTP step never
    /// moves back. Answers how many devices and app passwords it wrote.
    async fn restore_second_factors(
        &self,
        user: UserId,
        factors: &RawSecondFactors,
    ) -> TxResult<(usize, usize)> {
        let tx = self.tx;
        let (mut devices, mut app_passwords) = (0, 0);
        for d in &factors.devices {
            let dev = &d.device;
            let (kind, digits) = match dev.kind {
                DeviceKind::Totp { digits } => ("totp", Some(i16::from(digits))),
                DeviceKind::Static => ("static", None),
            };
            let secret = d.totp_secret.as_ref().map(|s| s.0.as_slice());
            let mut changed = tx
                .execute(
                    "INSERT INTO mfa_devices (user_id, id, kind, digits, label, created, \
                     confirmed, totp_secret) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (user_id, id) DO UPDATE SET kind = EXCLUDED.kind, \
                     digits = EXCLUDED.digits, label = EXCLUDED.label, \
                     created = EXCLUDED.created, confirmed = EXCLUDED.confirmed, \
                     totp_secret = coalesce(EXCLUDED.totp_secret, mfa_devices.totp_secret) \
                     WHERE (mfa_devices.kind, mfa_devices.digits, mfa_devices.label, \
                     mfa_devices.created, mfa_devices.confirmed) IS DISTINCT FROM \
                     (EXCLUDED.kind, EXCLUDED.digits, EXCLUDED.label, EXCLUDED.created, \
                     EXCLUDED.confirmed) OR (EXCLUDED.totp_secret IS NOT NULL AND \
                     mfa_devices.totp_secret IS DISTINCT FROM EXCLUDED.totp_secret)",
                    &[
                        &user.0,
                        &dev.id.0,
                        &kind,
                        &digits,
                        &dev.label,
                        &dev.created,
                        &dev.confirmed,
                        &secret,
                    ],
                )
                .await?
                == 1;
            if let Some(step) = d.totp_last_step {
                changed |= tx
                    .execute(
                        "UPDATE mfa_devices SET last_step = $3 WHERE user_id = $1 AND id = $2 \
                         AND (last_step IS NULL OR last_step < $3)",
                        &[&user.0, &dev.id.0, &from_u64(step, "TOTP step")?],
                    )
                    .await?
                    == 1;
            }
            for h in &d.static_tokens {
                changed |= tx
                    .execute(
                        "INSERT INTO mfa_static_tokens (user_id, device_id, hash) \
                         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        &[&user.0, &dev.id.0, &&h[..]],
                    )
                    .await?
                    == 1;
            }
            if changed {
                devices += 1;
            }
        }
        for a in &factors.app_passwords {
            let r = &a.record;
            if let Some(row) = tx
                .query_opt(
                    "SELECT user_id, id FROM app_passwords WHERE hash = $1",
                    &[&&a.hash[..]],
                )
                .await?
            {
                let owner = (
                    row.try_get::<_, uuid::Uuid>("user_id")?,
                    row.try_get::<_, uuid::Uuid>("id")?,
                );
                if owner != (user.0, r.id.0) {
                    return Err(TxError::Store(StoreError::AlreadyExists(format!(
                        "import conflict: app password {} has the hash of another app password",
                        r.id
                    ))));
                }
            }
            let kind = match r.kind {
                crate::domain::CredentialKind::AppPassword => "app_password",
                crate::domain::CredentialKind::ApiToken => "api_token",
            };
            let n = tx
                .execute(
                    "INSERT INTO app_passwords (user_id, id, kind, name, created, expires, \
                     last_used, last_used_from, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (user_id, id) DO UPDATE SET kind = EXCLUDED.kind, \
                     name = EXCLUDED.name, created = EXCLUDED.created, expires = EXCLUDED.expires, \
                     last_used = EXCLUDED.last_used, last_used_from = EXCLUDED.last_used_from, \
                     hash = EXCLUDED.hash \
                     WHERE (app_passwords.kind, app_passwords.name, app_passwords.created, \
                     app_passwords.expires, app_passwords.last_used, app_passwords.last_used_from, \
                     app_passwords.hash) IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.name, \
                     EXCLUDED.created, EXCLUDED.expires, EXCLUDED.last_used, \
                     EXCLUDED.last_used_from, EXCLUDED.hash)",
                    &[
                        &user.0,
                        &r.id.0,
                        &kind,
                        &r.name,
                        &r.created,
                        &r.expires,
                        &r.last_used,
                        &r.last_used_from,
                        &&a.hash[..],
                    ],
                )
                .await?;
            if n == 1 {
                app_passwords += 1;
            }
        }
        Ok((devices, app_passwords))
    }

    /// Writes a group's policy; `Ok(true)` if it changed.
    async fn restore_group_policy(&self, group: GroupId, policy: &GroupPolicy) -> TxResult<bool> {
        if policy.is_empty() {
            return Ok(self
                .tx
                .execute(
                    "DELETE FROM group_policies WHERE group_id = $1",
                    &[&group.0],
                )
                .await?
                == 1);
        }
        let n = self
            .tx
            .execute(
                "INSERT INTO group_policies (group_id, mfa, app_passwords) VALUES ($1, $2, $3) \
                 ON CONFLICT (group_id) DO UPDATE SET mfa = EXCLUDED.mfa, \
                 app_passwords = EXCLUDED.app_passwords \
                 WHERE (group_policies.mfa, group_policies.app_passwords) IS DISTINCT FROM \
                 (EXCLUDED.mfa, EXCLUDED.app_passwords)",
                &[
                    &group.0,
                    &policy.mfa.map(MfaPolicy::as_str),
                    &policy.app_passwords,
                ],
            )
            .await?;
        Ok(n == 1)
    }
}

/// The refusal of an email another user holds, in an import's words.
fn email_conflict(e: TxError, u: &User) -> TxError {
    if unique_violation(&e) == Some("users_email_key_key") {
        conflict(format!(
            "email {} of user {} already belongs to another user",
            u.email.as_deref().unwrap_or_default(),
            u.username
        ))
    } else {
        e
    }
}
