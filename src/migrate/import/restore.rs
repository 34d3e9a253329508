//! Restoring a JSON backup written by [`migrate::export::json`]: each
//! user turned into its batch record ([`Restoring`]), then everything
//! written in one store batch with every id, number, hash and second
//! factor the backup carries.
//!
//! Two ways in, one set of rules:
//! - [`read_backup`] then [`restore`]: the document held whole (bounded
//!   to [`MAX_JSON_BACKUP`]) and written in one transaction. The running
//!   server restores this way (its admin socket takes files up to
//!   128 MiB), as do library callers ([`json`]).
//! - [`read_backup_streamed`] then [`restore_streamed`]: the offline
//!   restore in bounded memory. The document is read as a stream
//!   (`document`), each user written to a spill file beside the store as
//!   its batch record (mode 0600, removed afterwards: it holds password
//!   hashes, as the store does); then the spill is read back as the user
//!   stream of [`crate::store::Backend::apply_batch_streamed`]. Memory
//!   holds the groups, the users' names by id (for the groups' members),
//!   the second factors (few users have any) and the report, never the
//!   document or its users. A document that fails to read, or is refused,
//!   writes nothing: the store is only written once it has been read.

use super::document;
use super::stream::Spill;
use super::{ImportError, MAX_JSON_BACKUP};
use crate::account::{self, Actor};
use crate::auth::keys::ServerKey;
use crate::auth::totp;
use crate::migrate;
use crate::store::import::{Batch, BatchGroup, BatchMember, BatchMode, BatchReport, BatchUser};
use crate::store::mfa::{RawAppPassword, RawDevice, RawSecondFactors};
use crate::store::{
    AppPassword, AppPasswordId, Device, DeviceId, DeviceKind, KeyedHash, Store, TotpSecret,
};
use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use uuid::Uuid;

/// What a JSON restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RestoreReport {
    #[serde(flatten)]
    pub batch: BatchReport,
    /// Devices and app passwords the backup lists without their secrets
    /// (written without `--with-secrets`), left out with `--force`.
    pub devices_skipped: usize,
    pub app_passwords_skipped: usize,
}

/// Reads a JSON backup written by [`migrate::export::json`] (any version up
/// to [`migrate::BACKUP_VERSION`]), bounded to [`MAX_JSON_BACKUP`] bytes.
pub fn read_backup(reader: impl Read) -> Result<migrate::Backup, ImportError> {
    let mut limited = reader.take(MAX_JSON_BACKUP + 1);
    let mut text = Vec::new();
    limited
        .read_to_end(&mut text)
        .map_err(|e| ImportError::Json(e.to_string()))?;
    if text.len() as u64 > MAX_JSON_BACKUP {
        return Err(ImportError::Json(format!(
            "the backup is larger than {MAX_JSON_BACKUP} bytes"
        )));
    }
    let backup: migrate::Backup =
        serde_json::from_slice(&text).map_err(|e| ImportError::Json(e.to_string()))?;
    document::check_header(&backup.format, backup.version)?;
    Ok(backup)
}

/// The server key a backup carries, if any.
pub fn backup_server_key(backup: &migrate::Backup) -> Result<Option<ServerKey>, ImportError> {
    backup
        .server_key
        .as_ref()
        .map(|k| {
            ServerKey::from_hex(&k.0)
                .map_err(|_| ImportError::Json("server_key is not 64 hex digits".into()))
        })
        .transpose()
}

/// True when restoring `backup` writes hashes keyed with its server key.
pub fn needs_server_key(backup: &migrate::Backup) -> bool {
    backup.users.iter().any(user_needs_server_key)
}

/// True when restoring `u` writes hashes keyed with the server key.
fn user_needs_server_key(u: &migrate::BackupUser) -> bool {
    u.app_passwords.iter().any(|a| a.hash.is_some())
        || u.mfa_devices.iter().any(|d| {
            matches!(&d.kind, migrate::BackupDeviceKind::Static { token_hashes: Some(h), .. } if !h.is_empty())
        })
}

fn keyed_hash(what: &str, text: &str) -> Result<KeyedHash, ImportError> {
    migrate::unhex(text)
        .and_then(|b| KeyedHash::try_from(b.as_slice()).ok())
        .ok_or_else(|| ImportError::Json(format!("{what}: not a 64-hex-digit hash")))
}

/// A backup user's devices and app passwords as store records; those
/// listed without secrets are counted in `skipped` and left out.
pub(crate) fn second_factors(
    u: &migrate::BackupUser,
    skipped: &mut (usize, usize),
) -> Result<RawSecondFactors, ImportError> {
    let who = &u.user.username;
    let mut out = RawSecondFactors::default();
    for d in &u.mfa_devices {
        let (kind, totp_secret, totp_last_step, static_tokens) = match &d.kind {
            migrate::BackupDeviceKind::Totp {
                digits,
                period,
                algorithm,
                secret,
                last_step,
            } => {
                if *period != totp::PERIOD || !algorithm.eq_ignore_ascii_case("SHA1") {
                    return Err(ImportError::Json(format!(
                        "user {who}: TOTP device {} uses {algorithm} with {period}-second steps; \
                         this server supports SHA1 with {}-second steps",
                        d.id,
                        totp::PERIOD
                    )));
                }
                let Some(secret) = secret else {
                    skipped.0 += 1;
                    continue;
                };
                let bytes = totp_rs::Secret::Encoded(secret.0.clone())
                    .to_bytes()
                    .map_err(|_| {
                        ImportError::Json(format!(
                            "user {who}: the secret of TOTP device {} is not base32",
                            d.id
                        ))
                    })?;
                (
                    DeviceKind::Totp { digits: *digits },
                    Some(TotpSecret(bytes)),
                    *last_step,
                    Vec::new(),
                )
            }
            migrate::BackupDeviceKind::Static { token_hashes, .. } => {
                let Some(hashes) = token_hashes else {
                    skipped.0 += 1;
                    continue;
                };
                let hashes = hashes
                    .iter()
                    .map(|h| keyed_hash(&format!("user {who}: static token"), &h.0))
                    .collect::<Result<Vec<_>, _>>()?;
                (DeviceKind::Static, None, None, hashes)
            }
        };
        out.devices.push(RawDevice {
            device: Device {
                id: DeviceId(d.id),
                kind,
                label: d.label.clone(),
                created: d.created,
                confirmed: d.confirmed,
            },
            totp_secret,
            totp_last_step,
            static_tokens,
        });
    }
    for a in &u.app_passwords {
        let Some(hash) = &a.hash else {
            skipped.1 += 1;
            continue;
        };
        out.app_passwords.push(RawAppPassword {
            record: AppPassword {
                id: AppPasswordId(a.id),
                kind: a.kind,
                name: a.name.clone(),
                created: a.created,
                expires: a.expires,
                last_used: a.last_used,
                last_used_from: a.last_used_from.clone(),
            },
            hash: keyed_hash(&format!("user {who}: app password {}", a.id), &hash.0)?,
        });
    }
    Ok(out)
}

/// A restore's batch as it is put together, one user at a time: what
/// the users leave besides their own records.
#[derive(Default)]
struct Restoring {
    /// User names by id, for the groups' members.
    names: HashMap<Uuid, String>,
    /// Second factors by user name (few users have any).
    second_factors: Vec<(String, RawSecondFactors)>,
    /// Devices and app passwords listed without their secrets.
    skipped: (usize, usize),
    /// Some user has hashes keyed with the backup's server key.
    needs_key: bool,
}

impl Restoring {
    /// One backup user as its batch record.
    fn user(&mut self, u: migrate::BackupUser) -> Result<BatchUser, ImportError> {
        let factors = second_factors(&u, &mut self.skipped)?;
        if factors != RawSecondFactors::default() {
            self.second_factors.push((u.user.username.clone(), factors));
        }
        self.needs_key |= user_needs_server_key(&u);
        self.names.insert(u.user.id.0, u.user.username.clone());
        Ok(BatchUser {
            user: u.user,
            allocate_uid: false,
            password_hash: u.password_hash,
        })
    }

    /// The batch of every user seen, without the users, with the groups,
    /// memberships, policies, settings and allocators of `backup`; and the
    /// second factors left out. Refuses second factors without secrets
    /// unless `skip_without_secrets`.
    fn batch(
        self,
        backup: &migrate::Backup,
        skip_without_secrets: bool,
    ) -> Result<(Batch, (usize, usize)), ImportError> {
        let skipped = self.skipped;
        if skipped != (0, 0) && !skip_without_secrets {
            return Err(ImportError::Json(format!(
                "the backup lists {} MFA devices and {} app passwords without their secrets \
                 (it was written without --with-secrets), so they cannot be restored; pass --force \
                 to restore without them (their users then bind without those factors)",
                skipped.0, skipped.1
            )));
        }
        let group_names: HashMap<Uuid, String> = backup
            .groups
            .iter()
            .map(|g| (g.group.id.0, g.group.name.clone()))
            .collect();
        let mut batch = Batch {
            mode: BatchMode::Restore,
            next_uid: Some(backup.counters.next_uid),
            next_gid: Some(backup.counters.next_gid),
            settings: backup.settings.clone().into_iter().collect(),
            second_factors: self.second_factors,
            ..Batch::default()
        };
        for g in &backup.groups {
            for m in &g.members {
                let member = match m {
                    migrate::BackupMember::User(id) => {
                        self.names.get(id).cloned().map(BatchMember::User)
                    }
                    migrate::BackupMember::Group(id) => {
                        group_names.get(id).cloned().map(BatchMember::Group)
                    }
                };
                let member = member.ok_or_else(|| {
                    ImportError::Json(format!(
                        "group {} lists a member that is not in the backup",
                        g.group.name
                    ))
                })?;
                batch.memberships.push((g.group.name.clone(), member));
            }
            if !g.policy.is_empty() {
                batch.group_policies.push((g.group.name.clone(), g.policy));
            }
            batch.groups.push(BatchGroup {
                group: g.group.clone(),
                allocate_gid: false,
            });
        }
        Ok((batch, skipped))
    }
}

/// Group attributes after the batch, which does not carry them: a
/// restore that stops in between is completed by running it again.
fn restore_group_attrs(store: &Store, backup: &migrate::Backup) -> Result<(), ImportError> {
    for g in backup.groups.iter().filter(|g| !g.attrs.is_empty()) {
        for (key, value) in &g.attrs {
            store.set_group_attr(g.group.id, key, Some(value))?;
        }
    }
    Ok(())
}

/// Restores a backup into `store` in one transaction: users with their
/// ids, numbers, attributes, flags, timestamps and password hashes;
/// groups with their policies; memberships; settings (global policies
/// included); the allocators; MFA devices (secrets, last accepted steps,
/// unused static tokens) and app passwords. Meant for a fresh data
/// directory; restoring the same backup twice changes nothing the second
/// time, and a store holding other records under the same names refuses
/// it.
///
/// Devices and app passwords listed without secrets cannot be restored:
/// the restore refuses the backup unless `skip_without_secrets`, and then
/// leaves them out (counted in the report). The caller installs the
/// backup's server key (see [`backup_server_key`]) before it runs this.
pub fn restore(
    store: &Store,
    backup: &migrate::Backup,
    skip_without_secrets: bool,
) -> Result<RestoreReport, ImportError> {
    let mut restoring = Restoring::default();
    let users = backup
        .users
        .iter()
        .map(|u| restoring.user(u.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let (mut batch, skipped) = restoring.batch(backup, skip_without_secrets)?;
    batch.users = users;
    let report = account::import::write_batch(store, &Actor::Operator, &batch)?;
    restore_group_attrs(store, backup)?;
    Ok(RestoreReport {
        batch: report,
        devices_skipped: skipped.0,
        app_passwords_skipped: skipped.1,
    })
}

/// A backup read by [`read_backup_streamed`]: the document without its
/// users, which wait in the spill file as batch records.
pub struct SpilledBackup {
    /// The document; `users` is empty.
    head: migrate::Backup,
    restoring: Restoring,
    spill: Spill,
}

impl SpilledBackup {
    /// The document without its users (for [`backup_server_key`]).
    pub fn head(&self) -> &migrate::Backup {
        &self.head
    }

    /// [`needs_server_key`] of the whole backup.
    pub fn needs_server_key(&self) -> bool {
        self.restoring.needs_key
    }
}

/// Reads a JSON backup as a stream (any version up to
/// [`migrate::BACKUP_VERSION`], its fields in any order), writing each
/// user as its batch record to a spill file in `spill_dir`, which must be
/// private to the server's user (the data directory). No bound on the
/// size of the document; each user may take
/// [`document::MAX_BACKUP_USER`] bytes of it, the rest
/// [`MAX_JSON_BACKUP`]. Writes nothing to the store. Blocking.
pub fn read_backup_streamed(
    reader: impl Read,
    spill_dir: &Path,
) -> Result<SpilledBackup, ImportError> {
    let (spill, file) = Spill::create(spill_dir)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut restoring = Restoring::default();
    let head = document::read(reader, &mut |u| {
        let user = restoring.user(u)?;
        spill.write_line(&mut out, &user)
    })?;
    out.flush().map_err(|e| spill.error(e))?;
    drop(out);
    Ok(SpilledBackup {
        head,
        restoring,
        spill,
    })
}

/// [`restore`] of a backup read by [`read_backup_streamed`], for a store
/// only this process uses (the offline CLI): the users are read back from
/// the spill as the store writes them
/// ([`crate::store::Backend::apply_batch_streamed`]), still all or
/// nothing. The same records and the same report as [`restore`]; the
/// spill is removed, whatever the outcome.
pub fn restore_streamed(
    store: &Store,
    backup: SpilledBackup,
    skip_without_secrets: bool,
) -> Result<RestoreReport, ImportError> {
    let SpilledBackup {
        head,
        restoring,
        spill,
    } = backup;
    let (batch, skipped) = restoring.batch(&head, skip_without_secrets)?;
    let mut users = spill.lines::<BatchUser>()?;
    let report =
        account::import::write_batch_streamed(store, &Actor::Operator, &batch, &mut users)?;
    drop(users);
    drop(spill);
    restore_group_attrs(store, &head)?;
    Ok(RestoreReport {
        batch: report,
        devices_skipped: skipped.0,
        app_passwords_skipped: skipped.1,
    })
}

/// [`read_backup`] then [`restore`], refusing second factors without
/// secrets. The server key is not handled here: a library caller that
/// restores keyed hashes installs the backup's key itself.
pub fn json(store: &Store, reader: impl Read) -> Result<RestoreReport, ImportError> {
    restore(store, &read_backup(reader)?, false)
}
