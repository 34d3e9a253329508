//! Second factors and app passwords in the store: MFA devices, TOTP
//! secrets and last accepted steps, static token hashes, app passwords and
//! their keyed-hash index, and per-group bind policies.
//!
//! Records that are turned into output ([`Device`], [`AppPassword`],
//! [`GroupPolicy`]) carry no secret. TOTP secrets, static token hashes and
//! app password hashes live in trees of their own, reached only through the
//! narrow methods below. Consuming a code ([`SledStore::advance_totp_step`],
//! [`SledStore::consume_static_token`]) is atomic, so of two concurrent binds
//! with one code exactly one succeeds, and durable when it returns, so a
//! used code stays used across a crash.
//!
//! # Trees
//! | tree | key | value |
//! | --- | --- | --- |
//! | `mfa_devices` | user id ++ device id | [`Device`] as JSON |
//! | `mfa_totp_secrets` | user id ++ device id | raw TOTP secret |
//! | `mfa_totp_steps` | user id ++ device id | last accepted step (big-endian u64) |
//! | `mfa_static_tokens` | user id ++ device id ++ token hash (32) | empty |
//! | `app_passwords` | user id ++ app password id | [`AppPassword`] as JSON |
//! | `app_password_hashes` | user id ++ app password id | keyed hash (32) |
//! | `idx_app_password` | keyed hash (32) | user id ++ app password id |
//! | `group_policies` | group id | [`GroupPolicy`] as JSON |
//!
//! Every change to a user's devices or app passwords bumps the user's
//! `cred_generation` in the same transaction.
//!
//! Backups read the raw records ([`SledStore::raw_devices`],
//! [`SledStore::raw_app_passwords`]) and a restore writes them back inside the
//! import batch's transaction (`tx_restore_second_factors`), keeping
//! ids, secrets, last accepted steps and keyed hashes as they were. A used
//! static token is deleted when it is consumed, so it is in no backup and
//! stays used after a restore.

use sled::transaction::{Transactional, TransactionalTree};
use sled::Tree;
use std::collections::HashSet;
use uuid::Uuid;

use crate::store::mfa::*;

use super::keys::{self, pair_key, ID_LEN};
use super::{
    abort, backend, decode, encode, once, tx_put_user, tx_user, GroupId, Result, SledStore,
    StoreError, Timestamp, TxResult, UserId,
};

/// The trees of this module, opened with the rest in `SledStore::open`.
pub(super) struct MfaTrees {
    devices: Tree,
    totp_secrets: Tree,
    totp_steps: Tree,
    static_tokens: Tree,
    app_passwords: Tree,
    app_password_hashes: Tree,
    idx_app_password: Tree,
    group_policies: Tree,
}

impl MfaTrees {
    pub(super) fn open(db: &sled::Db) -> Result<MfaTrees> {
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        Ok(MfaTrees {
            devices: tree("mfa_devices")?,
            totp_secrets: tree("mfa_totp_secrets")?,
            totp_steps: tree("mfa_totp_steps")?,
            static_tokens: tree("mfa_static_tokens")?,
            app_passwords: tree("app_passwords")?,
            app_password_hashes: tree("app_password_hashes")?,
            idx_app_password: tree("idx_app_password")?,
            group_policies: tree("group_policies")?,
        })
    }
}

/// The trees a restore writes second factors and policies into, in the
/// order [`tx_restore_second_factors`] and [`tx_restore_group_policy`]
/// take their views.
pub(super) const MFA_TREE_COUNT: usize = 8;

/// Writes one user's second factors inside a transaction over the trees
/// of [`SledStore::mfa_trees`] (`views`, in that order). Records keep their
/// ids; a record already stored with the same values is left alone, so a
/// second restore of one backup changes nothing. A TOTP step never moves
/// back. Returns how many devices and app passwords were written.
pub(super) fn tx_restore_second_factors(
    views: &[TransactionalTree],
    user: UserId,
    factors: &RawSecondFactors,
) -> TxResult<(usize, usize)> {
    let [devices, totp_secrets, totp_steps, static_tokens, app_passwords, app_password_hashes, idx_app_password, _] =
        views
    else {
        return Err(abort(StoreError::Backend(
            "restore: wrong number of MFA trees".into(),
        )));
    };
    let (mut devices_written, mut app_passwords_written) = (0, 0);
    for d in &factors.devices {
        let key = pair_key(user.0, d.device.id.0);
        let bytes = encode("device", &d.device).map_err(abort)?;
        let mut changed = false;
        if devices.get(&key[..])?.as_deref() != Some(bytes.as_slice()) {
            devices.insert(&key[..], bytes.as_slice())?;
            changed = true;
        }
        if let Some(secret) = &d.totp_secret {
            if totp_secrets.get(&key[..])?.as_deref() != Some(secret.0.as_slice()) {
                totp_secrets.insert(&key[..], secret.0.as_slice())?;
                changed = true;
            }
        }
        if let Some(step) = d.totp_last_step {
            let current = match totp_steps.get(&key[..])? {
                Some(b) => Some(keys::number64(&b).map_err(abort)?),
                None => None,
            };
            if current.is_none_or(|c| c < step) {
                totp_steps.insert(&key[..], &step.to_be_bytes())?;
                changed = true;
            }
        }
        for h in &d.static_tokens {
            let mut k = key.to_vec();
            k.extend_from_slice(h);
            if static_tokens.get(&k)?.is_none() {
                static_tokens.insert(k, super::EMPTY)?;
                changed = true;
            }
        }
        if changed {
            devices_written += 1;
        }
    }
    for a in &factors.app_passwords {
        let key = pair_key(user.0, a.record.id.0);
        if let Some(owner) = idx_app_password.get(&a.hash[..])? {
            if *owner != key[..] {
                return Err(abort(StoreError::AlreadyExists(format!(
                    "import conflict: app password {} has the hash of another app password",
                    a.record.id
                ))));
            }
        }
        let bytes = encode("app password", &a.record).map_err(abort)?;
        let mut changed = false;
        if app_passwords.get(&key[..])?.as_deref() != Some(bytes.as_slice()) {
            app_passwords.insert(&key[..], bytes.as_slice())?;
            changed = true;
        }
        if app_password_hashes.get(&key[..])?.as_deref() != Some(&a.hash[..]) {
            if let Some(old) = app_password_hashes.insert(&key[..], &a.hash[..])? {
                idx_app_password.remove(old)?;
            }
            idx_app_password.insert(&a.hash[..], &key[..])?;
            changed = true;
        }
        if changed {
            app_passwords_written += 1;
        }
    }
    Ok((devices_written, app_passwords_written))
}

/// Writes a group's policy inside the restore transaction (`views` as in
/// [`tx_restore_second_factors`]); `Ok(true)` if it changed.
pub(super) fn tx_restore_group_policy(
    views: &[TransactionalTree],
    group: GroupId,
    policy: &GroupPolicy,
) -> TxResult<bool> {
    let Some(policies) = views.get(MFA_TREE_COUNT - 1) else {
        return Err(abort(StoreError::Backend(
            "restore: wrong number of MFA trees".into(),
        )));
    };
    let key = keys::group_key(group);
    let current = policies.get(&key[..])?;
    if policy.is_empty() {
        return Ok(policies.remove(&key[..])?.is_some());
    }
    let bytes = encode("group policy", policy).map_err(abort)?;
    if current.as_deref() == Some(bytes.as_slice()) {
        return Ok(false);
    }
    policies.insert(&key[..], bytes.as_slice())?;
    Ok(true)
}

/// Bumps the user's credential generation inside a transaction; aborts
/// with NotFound when the user is gone.
fn tx_bump_generation(users: &sled::transaction::TransactionalTree, user: UserId) -> TxResult<()> {
    let mut u =
        tx_user(users, user)?.ok_or_else(|| abort(StoreError::NotFound(format!("user {user}"))))?;
    u.cred_generation = u.cred_generation.wrapping_add(1);
    tx_put_user(users, &u)
}

impl SledStore {
    fn mfa(&self) -> &MfaTrees {
        &self.t.mfa
    }

    /// The trees of this module in the order the restore helpers take
    /// their transaction views.
    pub(super) fn mfa_trees(&self) -> [&Tree; MFA_TREE_COUNT] {
        let m = self.mfa();
        [
            &m.devices,
            &m.totp_secrets,
            &m.totp_steps,
            &m.static_tokens,
            &m.app_passwords,
            &m.app_password_hashes,
            &m.idx_app_password,
            &m.group_policies,
        ]
    }

    // --- backups ---

    /// The users that have a device or an app password: one pass over
    /// two trees' keys, so a snapshot reads second factors only for them.
    pub(super) fn users_with_second_factors(&self) -> Result<HashSet<UserId>> {
        let m = self.mfa();
        let mut out = HashSet::new();
        for key in m.devices.iter().keys().chain(m.app_passwords.iter().keys()) {
            let key = key.map_err(backend)?;
            out.insert(UserId(keys::uuid(key.get(..16).unwrap_or_default())?));
        }
        Ok(out)
    }

    /// The user's devices with their secrets, last accepted steps and
    /// unused static token hashes, for a backup.
    pub fn raw_devices(&self, user: UserId) -> Result<Vec<RawDevice>> {
        let m = self.mfa();
        let mut out = Vec::new();
        for device in self.devices(user)? {
            let key = pair_key(user.0, device.id.0);
            let mut static_tokens = Vec::new();
            for k in m.static_tokens.scan_prefix(key).keys() {
                let k = k.map_err(backend)?;
                let hash: KeyedHash = k
                    .get(key.len()..)
                    .and_then(|h| h.try_into().ok())
                    .ok_or_else(|| StoreError::Backend("corrupt static token key".into()))?;
                static_tokens.push(hash);
            }
            out.push(RawDevice {
                totp_secret: self.totp_secret(user, device.id)?,
                totp_last_step: self.totp_last_step(user, device.id)?,
                static_tokens,
                device,
            });
        }
        Ok(out)
    }

    /// The user's app passwords with their keyed hashes, for a backup.
    pub fn raw_app_passwords(&self, user: UserId) -> Result<Vec<RawAppPassword>> {
        let m = self.mfa();
        let mut out = Vec::new();
        for record in self.app_passwords(user)? {
            let key = pair_key(user.0, record.id.0);
            let hash: KeyedHash = m
                .app_password_hashes
                .get(key)
                .map_err(backend)?
                .and_then(|h| h.as_ref().try_into().ok())
                .ok_or_else(|| {
                    StoreError::Backend(format!("app password {} has no hash", record.id))
                })?;
            out.push(RawAppPassword { record, hash });
        }
        Ok(out)
    }

    /// True when some app password or unused static token is stored: its
    /// hash is keyed with the server key, so the key must not change.
    pub fn has_keyed_hashes(&self) -> Result<bool> {
        let m = self.mfa();
        Ok(!m.static_tokens.is_empty() || !m.app_password_hashes.is_empty())
    }

    // --- devices ---

    /// The user's devices, oldest first.
    pub fn devices(&self, user: UserId) -> Result<Vec<Device>> {
        let mut out: Vec<Device> = Vec::new();
        for entry in self.mfa().devices.scan_prefix(keys::user_key(user)) {
            let (_, v) = entry.map_err(backend)?;
            out.push(decode("device", &v)?);
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Number of unused tokens of a static device.
    pub fn static_tokens_left(&self, user: UserId, device: DeviceId) -> Result<usize> {
        Ok(self
            .mfa()
            .static_tokens
            .scan_prefix(pair_key(user.0, device.0))
            .count())
    }

    fn check_device_room(&self, user: UserId) -> Result<()> {
        let n = self.mfa().devices.scan_prefix(keys::user_key(user)).count();
        if n >= MAX_DEVICES {
            return Err(StoreError::Invalid(format!(
                "a user may have at most {MAX_DEVICES} MFA devices; remove one first"
            )));
        }
        Ok(())
    }

    /// Adds a confirmed TOTP device with its secret.
    pub fn add_totp_device(
        &self,
        user: UserId,
        device_label: &str,
        digits: u8,
        secret: &TotpSecret,
    ) -> Result<Device> {
        self.committed(self.add_totp_device_uncommitted(user, device_label, digits, secret))
    }

    fn add_totp_device_uncommitted(
        &self,
        user: UserId,
        device_label: &str,
        digits: u8,
        secret: &TotpSecret,
    ) -> Result<Device> {
        self.add_totp(user, device_label, digits, secret, true)
    }

    /// Adds a TOTP device that counts for nothing until
    /// [`SledStore::confirm_device`] (a self-service enrolment's first step).
    pub fn add_pending_totp_device(
        &self,
        user: UserId,
        device_label: &str,
        digits: u8,
        secret: &TotpSecret,
    ) -> Result<Device> {
        self.committed(self.add_totp(user, device_label, digits, secret, false))
    }

    /// Confirms a pending device: from now on it counts for bind. `Ok(false)`
    /// when it was confirmed already.
    pub fn confirm_device(&self, user: UserId, device: DeviceId) -> Result<bool> {
        self.committed(self.confirm_device_uncommitted(user, device))
    }

    fn confirm_device_uncommitted(&self, user: UserId, device: DeviceId) -> Result<bool> {
        let m = self.mfa();
        let key = pair_key(user.0, device.0);
        once(
            &self.t,
            (&self.t.users, &m.devices).transaction(|(users, devices)| {
                let bytes = devices
                    .get(&key[..])?
                    .ok_or_else(|| abort(StoreError::NotFound(format!("device {device}"))))?;
                let mut d: Device = decode("device", &bytes).map_err(abort)?;
                if d.confirmed {
                    return Ok(false);
                }
                d.confirmed = true;
                let bytes = encode("device", &d).map_err(abort)?;
                devices.insert(&key[..], bytes)?;
                tx_bump_generation(users, user)?;
                Ok(true)
            }),
        )
    }

    /// Gives a device a new label. `Ok(false)` when the user has no such
    /// device.
    pub fn rename_device(&self, user: UserId, device: DeviceId, new_label: &str) -> Result<bool> {
        let new_label = crate::domain::mfa::label("device label", new_label)?;
        let m = self.mfa();
        let key = pair_key(user.0, device.0);
        self.committed(once(
            &self.t,
            m.devices.transaction(|devices| {
                let Some(bytes) = devices.get(&key[..])? else {
                    return Ok(false);
                };
                let mut d: Device = decode("device", &bytes).map_err(abort)?;
                d.label = new_label.clone();
                let bytes = encode("device", &d).map_err(abort)?;
                devices.insert(&key[..], bytes)?;
                Ok(true)
            }),
        ))
    }

    fn add_totp(
        &self,
        user: UserId,
        device_label: &str,
        digits: u8,
        secret: &TotpSecret,
        confirmed: bool,
    ) -> Result<Device> {
        if !matches!(digits, 6 | 8) {
            return Err(StoreError::Invalid("TOTP codes have 6 or 8 digits".into()));
        }
        if secret.0.len() < 16 {
            return Err(StoreError::Invalid(
                "a TOTP secret has at least 128 bits".into(),
            ));
        }
        self.check_device_room(user)?;
        let mut device = new_device(DeviceKind::Totp { digits }, device_label)?;
        device.confirmed = confirmed;
        let m = self.mfa();
        let key = pair_key(user.0, device.id.0);
        let bytes = encode("device", &device)?;
        once(
            &self.t,
            (&self.t.users, &m.devices, &m.totp_secrets).transaction(
                |(users, devices, secrets)| {
                    tx_bump_generation(users, user)?;
                    devices.insert(&key[..], bytes.as_slice())?;
                    secrets.insert(&key[..], secret.0.as_slice())?;
                    Ok(())
                },
            ),
        )?;
        Ok(device)
    }

    /// Adds a confirmed static token device holding the given token hashes.
    pub fn add_static_device(
        &self,
        user: UserId,
        device_label: &str,
        token_hashes: &[KeyedHash],
    ) -> Result<Device> {
        self.committed(self.add_static_device_uncommitted(user, device_label, token_hashes))
    }

    fn add_static_device_uncommitted(
        &self,
        user: UserId,
        device_label: &str,
        token_hashes: &[KeyedHash],
    ) -> Result<Device> {
        if token_hashes.is_empty() || token_hashes.len() > MAX_STATIC_TOKENS {
            return Err(StoreError::Invalid(format!(
                "a static device holds 1 to {MAX_STATIC_TOKENS} tokens"
            )));
        }
        self.check_device_room(user)?;
        let device = new_device(DeviceKind::Static, device_label)?;
        let m = self.mfa();
        let key = pair_key(user.0, device.id.0);
        let bytes = encode("device", &device)?;
        once(
            &self.t,
            (&self.t.users, &m.devices, &m.static_tokens).transaction(
                |(users, devices, tokens)| {
                    tx_bump_generation(users, user)?;
                    devices.insert(&key[..], bytes.as_slice())?;
                    for h in token_hashes {
                        let mut k = key.to_vec();
                        k.extend_from_slice(h);
                        tokens.insert(k, super::EMPTY)?;
                    }
                    Ok(())
                },
            ),
        )?;
        Ok(device)
    }

    /// Removes a device and its secrets; `Ok(false)` if it did not exist.
    pub fn remove_device(&self, user: UserId, device: DeviceId) -> Result<bool> {
        self.committed(self.remove_device_uncommitted(user, device))
    }

    fn remove_device_uncommitted(&self, user: UserId, device: DeviceId) -> Result<bool> {
        let m = self.mfa();
        let key = pair_key(user.0, device.0);
        // Token keys are found by a scan first; a token added later to this
        // device is impossible (devices are created with all their tokens).
        let token_keys: Vec<sled::IVec> = m
            .static_tokens
            .scan_prefix(key)
            .keys()
            .collect::<std::result::Result<_, _>>()
            .map_err(backend)?;
        once(
            &self.t,
            (
                &self.t.users,
                &m.devices,
                &m.totp_secrets,
                &m.totp_steps,
                &m.static_tokens,
            )
                .transaction(|(users, devices, secrets, steps, tokens)| {
                    if devices.remove(&key[..])?.is_none() {
                        return Ok(false);
                    }
                    secrets.remove(&key[..])?;
                    steps.remove(&key[..])?;
                    for k in &token_keys {
                        tokens.remove(k)?;
                    }
                    tx_bump_generation(users, user)?;
                    Ok(true)
                }),
        )
    }

    /// The secret of a TOTP device, if it exists.
    pub fn totp_secret(&self, user: UserId, device: DeviceId) -> Result<Option<TotpSecret>> {
        Ok(self
            .mfa()
            .totp_secrets
            .get(pair_key(user.0, device.0))
            .map_err(backend)?
            .map(|v| TotpSecret(v.to_vec())))
    }

    /// The last TOTP step accepted for the device, if any.
    pub fn totp_last_step(&self, user: UserId, device: DeviceId) -> Result<Option<u64>> {
        match self
            .mfa()
            .totp_steps
            .get(pair_key(user.0, device.0))
            .map_err(backend)?
        {
            Some(b) => Ok(Some(keys::number64(&b)?)),
            None => Ok(None),
        }
    }

    /// Records `step` as the device's last accepted step if it is later
    /// than the one recorded (compare-and-swap in a transaction).
    /// `Ok(false)`: the step was not later (a replay), or the device is
    /// gone. Of concurrent calls with the same step, exactly one succeeds.
    /// Not flushed: the caller flushes before it reports success.
    pub fn advance_totp_step(&self, user: UserId, device: DeviceId, step: u64) -> Result<bool> {
        self.committed(self.advance_totp_step_uncommitted(user, device, step))
    }

    fn advance_totp_step_uncommitted(
        &self,
        user: UserId,
        device: DeviceId,
        step: u64,
    ) -> Result<bool> {
        let m = self.mfa();
        let key = pair_key(user.0, device.0);
        once(
            &self.t,
            (&m.devices, &m.totp_steps).transaction(|(devices, steps)| {
                if devices.get(&key[..])?.is_none() {
                    return Ok(false);
                }
                if let Some(last) = steps.get(&key[..])? {
                    let last = keys::number64(&last).map_err(abort)?;
                    if step <= last {
                        return Ok(false);
                    }
                }
                steps.insert(&key[..], &step.to_be_bytes())?;
                Ok(true)
            }),
        )
    }

    /// Marks a static token used. `Ok(true)` exactly once per token; a
    /// token of a removed device is refused. Not flushed (see
    /// [`SledStore::advance_totp_step`]).
    pub fn consume_static_token(
        &self,
        user: UserId,
        device: DeviceId,
        token_hash: &KeyedHash,
    ) -> Result<bool> {
        self.committed(self.consume_static_token_uncommitted(user, device, token_hash))
    }

    fn consume_static_token_uncommitted(
        &self,
        user: UserId,
        device: DeviceId,
        token_hash: &KeyedHash,
    ) -> Result<bool> {
        let m = self.mfa();
        let mut key = pair_key(user.0, device.0).to_vec();
        key.extend_from_slice(token_hash);
        Ok(m.static_tokens.remove(key).map_err(backend)?.is_some())
    }

    // --- app passwords ---

    /// Stores a new app password given as its keyed hash.
    pub fn add_app_password(
        &self,
        user: UserId,
        kind: CredentialKind,
        name: &str,
        expires: Option<Timestamp>,
        hash: &KeyedHash,
    ) -> Result<AppPassword> {
        self.committed(self.add_app_password_uncommitted(user, kind, name, expires, hash))
    }

    fn add_app_password_uncommitted(
        &self,
        user: UserId,
        kind: CredentialKind,
        name: &str,
        expires: Option<Timestamp>,
        hash: &KeyedHash,
    ) -> Result<AppPassword> {
        let n = self
            .mfa()
            .app_passwords
            .scan_prefix(keys::user_key(user))
            .count();
        if n >= MAX_APP_PASSWORDS {
            return Err(StoreError::Invalid(format!(
                "a user may have at most {MAX_APP_PASSWORDS} app passwords and API tokens; \
                 revoke one first"
            )));
        }
        let record = AppPassword {
            id: AppPasswordId(Uuid::new_v4()),
            kind,
            name: label(&format!("{} name", kind.noun()), name)?,
            created: super::now(),
            expires,
            last_used: None,
            last_used_from: None,
        };
        let m = self.mfa();
        let key = pair_key(user.0, record.id.0);
        let bytes = encode("app password", &record)?;
        once(
            &self.t,
            (
                &self.t.users,
                &m.app_passwords,
                &m.app_password_hashes,
                &m.idx_app_password,
            )
                .transaction(|(users, records, hashes, idx)| {
                    if idx.get(&hash[..])?.is_some() {
                        return Err(abort(StoreError::Backend(
                            "app password hash collides".into(),
                        )));
                    }
                    tx_bump_generation(users, user)?;
                    records.insert(&key[..], bytes.as_slice())?;
                    hashes.insert(&key[..], &hash[..])?;
                    idx.insert(&hash[..], &key[..])?;
                    Ok(())
                }),
        )?;
        Ok(record)
    }

    /// The user's app passwords, oldest first.
    pub fn app_passwords(&self, user: UserId) -> Result<Vec<AppPassword>> {
        let mut out: Vec<AppPassword> = Vec::new();
        for entry in self.mfa().app_passwords.scan_prefix(keys::user_key(user)) {
            let (_, v) = entry.map_err(backend)?;
            out.push(decode("app password", &v)?);
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// The app password with this keyed hash: one index lookup, no scan.
    pub fn app_password_by_hash(&self, hash: &KeyedHash) -> Result<Option<(UserId, AppPassword)>> {
        let m = self.mfa();
        let Some(key) = m.idx_app_password.get(&hash[..]).map_err(backend)? else {
            return Ok(None);
        };
        if key.len() != 2 * ID_LEN {
            return Err(StoreError::Backend("corrupt app password index".into()));
        }
        let user = UserId(keys::uuid(&key[..ID_LEN])?);
        match m.app_passwords.get(&key).map_err(backend)? {
            Some(v) => Ok(Some((user, decode("app password", &v)?))),
            None => Ok(None),
        }
    }

    /// Revokes an app password; `Ok(false)` if it did not exist.
    pub fn revoke_app_password(&self, user: UserId, id: AppPasswordId) -> Result<bool> {
        self.committed(self.revoke_app_password_uncommitted(user, id))
    }

    fn revoke_app_password_uncommitted(&self, user: UserId, id: AppPasswordId) -> Result<bool> {
        let m = self.mfa();
        let key = pair_key(user.0, id.0);
        once(
            &self.t,
            (
                &self.t.users,
                &m.app_passwords,
                &m.app_password_hashes,
                &m.idx_app_password,
            )
                .transaction(|(users, records, hashes, idx)| {
                    if records.remove(&key[..])?.is_none() {
                        return Ok(false);
                    }
                    if let Some(h) = hashes.remove(&key[..])? {
                        idx.remove(h)?;
                    }
                    // The user may be gone already (cleanup after delete).
                    if tx_user(users, user)?.is_some() {
                        tx_bump_generation(users, user)?;
                    }
                    Ok(true)
                }),
        )
    }

    /// Removes the user's app passwords that expired by `now`; returns how
    /// many.
    pub fn purge_expired_app_passwords(&self, user: UserId, now: Timestamp) -> Result<usize> {
        self.committed(self.purge_expired_app_passwords_uncommitted(user, now))
    }

    fn purge_expired_app_passwords_uncommitted(
        &self,
        user: UserId,
        now: Timestamp,
    ) -> Result<usize> {
        let mut n = 0;
        for ap in self.app_passwords(user)? {
            if ap.expired(now) && self.revoke_app_password(user, ap.id)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Records a bind with the app password. Not flushed and not part of
    /// the user's credentials (no generation bump): bookkeeping only.
    pub fn touch_app_password(
        &self,
        user: UserId,
        id: AppPasswordId,
        at: Timestamp,
        from: &str,
    ) -> Result<()> {
        let m = self.mfa();
        let key = pair_key(user.0, id.0);
        let from = from.chars().take(64).collect::<String>();
        m.app_passwords
            .fetch_and_update(key, |old| {
                let old = old?;
                let mut record: AppPassword = decode("app password", old).ok()?;
                record.last_used = Some(at);
                record.last_used_from = Some(from.clone());
                encode("app password", &record).ok()
            })
            .map(|_| ())
            .map_err(backend)
    }

    /// Removes every device, secret and app password of a user (after the
    /// user is deleted).
    pub(super) fn forget_second_factors(&self, user: UserId) -> Result<()> {
        for d in self.devices(user)? {
            let m = self.mfa();
            let key = pair_key(user.0, d.id.0);
            for k in m.static_tokens.scan_prefix(key).keys() {
                m.static_tokens
                    .remove(k.map_err(backend)?)
                    .map_err(backend)?;
            }
            m.devices.remove(key).map_err(backend)?;
            m.totp_secrets.remove(key).map_err(backend)?;
            m.totp_steps.remove(key).map_err(backend)?;
        }
        for ap in self.app_passwords(user)? {
            self.revoke_app_password(user, ap.id)?;
        }
        Ok(())
    }

    // --- policies ---

    /// The explicit policies of a group (empty when none is set).
    pub fn group_policy(&self, group: GroupId) -> Result<GroupPolicy> {
        match self
            .mfa()
            .group_policies
            .get(keys::group_key(group))
            .map_err(backend)?
        {
            Some(v) => decode("group policy", &v),
            None => Ok(GroupPolicy::default()),
        }
    }

    /// Every group with an explicit policy, as stored (a deleted group's
    /// entry is removed with it).
    pub fn group_policies(&self) -> Result<Vec<(GroupId, GroupPolicy)>> {
        let mut out = Vec::new();
        for entry in self.mfa().group_policies.iter() {
            let (k, v) = entry.map_err(backend)?;
            out.push((GroupId(keys::uuid(&k)?), decode("group policy", &v)?));
        }
        Ok(out)
    }

    /// Sets a group's policies; an empty policy removes the entry.
    pub fn set_group_policy(&self, group: GroupId, policy: GroupPolicy) -> Result<()> {
        self.committed(self.set_group_policy_uncommitted(group, policy))
    }

    fn set_group_policy_uncommitted(&self, group: GroupId, policy: GroupPolicy) -> Result<()> {
        let m = self.mfa();
        let key = keys::group_key(group);
        let bytes = encode("group policy", &policy)?;
        once(
            &self.t,
            (&self.t.groups, &m.group_policies).transaction(|(groups, policies)| {
                if groups.get(key)?.is_none() {
                    return Err(abort(StoreError::NotFound(format!("group {group}"))));
                }
                if policy.is_empty() {
                    policies.remove(&key[..])?;
                } else {
                    policies.insert(&key[..], bytes.as_slice())?;
                }
                Ok(())
            }),
        )
    }

    pub(super) fn forget_group_policy(&self, group: GroupId) -> Result<()> {
        self.mfa()
            .group_policies
            .remove(keys::group_key(group))
            .map(|_| ())
            .map_err(backend)
    }
}
