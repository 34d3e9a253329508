//! Moving directories in and out: LDIF import from other servers, LDIF
//! export of the served entries, and a JSON backup a fresh server restores
//! completely.
//!
//! - `import`: the pure planner ([`import::plan`]) and the all-or-nothing
//!   apply ([`import::apply`]), plus the JSON restore ([`import::json`]).
//! - `export`: [`export::ldif`] (what `slapcat` would give for the served
//!   tree) and [`export::json`] (the backup).
//! - `store`: [`store::copy`], the whole store into another backend
//!   (`migrate-store`), as a backup restored without a file.
//!
//! Only the store's batch API writes: this module never touches sled, and
//! the LDIF layer ([`crate::ldif`]) never sees a store record.

pub mod export;
pub mod import;
pub mod store;

use crate::store::{CredentialKind, Group, GroupPolicy, User};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The `format` field of a backup document.
pub const BACKUP_FORMAT: &str = "portcullis-backup";
/// Version of the backup document. Readers refuse newer versions; fields
/// added later must default (serde `default`) so older backups still load.
///
/// - 1: users with password hashes, groups, memberships, settings,
///   counters.
/// - 2: adds per user `mfa_devices` and `app_passwords`, per group
///   `policy`, and `secrets` / `server_key` (second-factor secrets only in
///   a backup written with `--with-secrets`). Version 1 documents load
///   with these empty.
pub const BACKUP_VERSION: u32 = 2;

/// A complete JSON backup. Password hashes are always in it; with
/// `secrets` also TOTP secrets, static token and app password hashes and
/// the server key that keys those hashes: keep it as secret as the data
/// directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    pub format: String,
    pub version: u32,
    /// When it was written (seconds since the epoch).
    pub created: i64,
    /// True when second-factor secrets and the server key were written
    /// (`export --with-secrets`). Without them, devices and app passwords
    /// are listed without their secrets and a restore cannot recreate
    /// them.
    #[serde(default)]
    pub secrets: bool,
    /// `<data>/server.key` (64 hex digits), which keys the stored hashes
    /// of app passwords and static tokens. An HMAC cannot be re-keyed
    /// without the secret it hashes, so a restore installs this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_key: Option<Hidden>,
    pub users: Vec<BackupUser>,
    pub groups: Vec<BackupGroup>,
    pub settings: BTreeMap<String, String>,
    pub counters: BackupCounters,
    /// Unused extension point of version 1 (always written empty); kept so
    /// such documents still parse. Version 2 has explicit fields instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<serde_json::Value>,
}

/// A secret string in a backup (hex or base32). Serialized as is; its
/// `Debug` prints `********`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hidden(pub String);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("********")
    }
}

/// An MFA device of a backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupDevice {
    pub id: Uuid,
    pub label: String,
    pub created: i64,
    pub confirmed: bool,
    #[serde(flatten)]
    pub kind: BackupDeviceKind,
}

/// What kind of device, with its secret state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackupDeviceKind {
    /// RFC 6238.
    Totp {
        digits: u8,
        /// Seconds per step; this server uses 30.
        period: u64,
        /// HMAC algorithm; this server uses `SHA1`.
        algorithm: String,
        /// Base32 (RFC 4648, no padding), as authenticator apps take it;
        /// `None` in a backup without secrets.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<Hidden>,
        /// The last accepted step: codes up to it stay refused.
        #[serde(default)]
        last_step: Option<u64>,
    },
    /// Single-use tokens, stored as HMAC-SHA256 under the server key.
    Static {
        /// Tokens not used yet (a used token is not stored at all).
        tokens_left: usize,
        /// Hex keyed hashes of those tokens; `None` in a backup without
        /// secrets.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_hashes: Option<Vec<Hidden>>,
    },
}

/// An app password of a backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupAppPassword {
    pub id: Uuid,
    /// Omitted for app passwords (and absent from older backups).
    #[serde(default, skip_serializing_if = "CredentialKind::is_app_password")]
    pub kind: CredentialKind,
    pub name: String,
    pub created: i64,
    #[serde(default)]
    pub expires: Option<i64>,
    #[serde(default)]
    pub last_used: Option<i64>,
    #[serde(default)]
    pub last_used_from: Option<String>,
    /// Hex HMAC-SHA256 under the server key; `None` without secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Hidden>,
}

/// A user with its password hash (the stored string: `$argon2id$…` or a
/// scheme-tagged legacy hash).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupUser {
    #[serde(flatten)]
    pub user: User,
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mfa_devices: Vec<BackupDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_passwords: Vec<BackupAppPassword>,
}

impl std::fmt::Debug for BackupUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupUser")
            .field("user", &self.user)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "********"),
            )
            .field("mfa_devices", &self.mfa_devices)
            .field("app_passwords", &self.app_passwords)
            .finish()
    }
}

/// A group and its direct members.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupGroup {
    #[serde(flatten)]
    pub group: Group,
    pub members: Vec<BackupMember>,
    /// The group's explicit MFA and app-password policy (the global ones
    /// are settings).
    #[serde(default, skip_serializing_if = "GroupPolicy::is_empty")]
    pub policy: GroupPolicy,
    /// `group set-attr` values (absent in older backups).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, String>,
}

/// A direct member by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupMember {
    User(Uuid),
    Group(Uuid),
}

/// The allocators, so a restored server never reuses a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupCounters {
    pub next_uid: u32,
    pub next_gid: u32,
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of a hex string; `None` unless it is all hex digit pairs.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod restore_tests;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;
