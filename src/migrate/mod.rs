//! Moving directories in and out: LDIF import from other servers, LDIF
//! export of the served entries, and a JSON backup a fresh server restores
//! completely.
//!
//! - `import`: the pure planner ([`import::plan`]) and the all-or-nothing
//!   apply ([`import::apply`]), plus the JSON restore ([`import::json`]).
//! - `export`: [`export::ldif`] (what `slapcat` would give for the served
//!   tree) and [`export::json`] (the backup).
//!
//! Only the store's batch API writes: this module never touches sled, and
//! the LDIF layer ([`crate::ldif`]) never sees a store record.

pub mod export;
pub mod import;

use crate::store::{Group, User};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The `format` field of a backup document.
pub const BACKUP_FORMAT: &str = "portcullis-backup";
/// Version of the backup document. Readers refuse newer versions; fields
/// added later must default (serde `default`) so older backups still load.
pub const BACKUP_VERSION: u32 = 1;

/// A complete JSON backup. Password hashes are in it: keep it as secret as
/// the data directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    pub format: String,
    pub version: u32,
    /// When it was written (seconds since the epoch).
    pub created: i64,
    pub users: Vec<BackupUser>,
    pub groups: Vec<BackupGroup>,
    pub settings: BTreeMap<String, String>,
    pub counters: BackupCounters,
    /// Extension point for data that other parts of the server add (MFA
    /// devices and app passwords of issue 3): each element is an object
    /// with a `"kind"` field (e.g. `"mfa_device"`, `"app_password"`) and
    /// the owner's user id. Today's export writes it empty and today's
    /// restore ignores it; the MFA work fills it in `export::backup` and
    /// restores it after `import::json`'s batch (same ids are kept).
    #[serde(default)]
    pub extra: Vec<serde_json::Value>,
}

/// A user with its password hash (the stored string: `$argon2id$…` or a
/// scheme-tagged legacy hash).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupUser {
    #[serde(flatten)]
    pub user: User,
    #[serde(default)]
    pub password_hash: Option<String>,
}

impl std::fmt::Debug for BackupUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupUser")
            .field("user", &self.user)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "********"),
            )
            .finish()
    }
}

/// A group and its direct members.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupGroup {
    #[serde(flatten)]
    pub group: Group,
    pub members: Vec<BackupMember>,
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

#[cfg(test)]
mod tests;
