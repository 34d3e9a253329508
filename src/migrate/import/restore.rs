//! Restoring a JSON backup written by [`migrate::export::json`]:
//! read and checked, then written in one store batch with every id,
//! number, hash and second factor it carries.

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
use std::io::Read;
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
    if backup.format != migrate::BACKUP_FORMAT {
        return Err(ImportError::Json(format!(
            "not a portcullis backup (format {:?})",
            backup.format
        )));
    }
    if backup.version > migrate::BACKUP_VERSION {
        return Err(ImportError::Json(format!(
            "backup version {} is newer than the {} this build reads",
            backup.version,
            migrate::BACKUP_VERSION
        )));
    }
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
    backup.users.iter().any(|u| {
        u.app_passwords.iter().any(|a| a.hash.is_some())
            || u.mfa_devices.iter().any(|d| {
                matches!(&d.kind, migrate::BackupDeviceKind::Static { token_hashes: Some(h), .. } if !h.is_empty())
            })
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
    let names: HashMap<Uuid, String> = backup
        .users
        .iter()
        .map(|u| (u.user.id.0, u.user.username.clone()))
        .collect();
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
        ..Batch::default()
    };
    let mut skipped = (0, 0);
    for u in &backup.users {
        let factors = second_factors(u, &mut skipped)?;
        if factors != RawSecondFactors::default() {
            batch
                .second_factors
                .push((u.user.username.clone(), factors));
        }
        batch.users.push(BatchUser {
            user: u.user.clone(),
            allocate_uid: false,
            password_hash: u.password_hash.clone(),
        });
    }
    if skipped != (0, 0) && !skip_without_secrets {
        return Err(ImportError::Json(format!(
            "the backup lists {} MFA devices and {} app passwords without their secrets \
             (it was written without --with-secrets), so they cannot be restored; pass --force \
             to restore without them (their users then bind without those factors)",
            skipped.0, skipped.1
        )));
    }
    for g in &backup.groups {
        for m in &g.members {
            let member = match m {
                migrate::BackupMember::User(id) => names.get(id).cloned().map(BatchMember::User),
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
    let report = account::import::write_batch(store, &Actor::Operator, &batch)?;
    // Group attributes after the batch, which does not carry them: a
    // restore that stops in between is completed by running it again.
    for g in backup.groups.iter().filter(|g| !g.attrs.is_empty()) {
        for (key, value) in &g.attrs {
            store.set_group_attr(g.group.id, key, Some(value))?;
        }
    }
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
