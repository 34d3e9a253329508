//! The domain: the records every layer speaks (users, groups, members,
//! MFA devices, app passwords, bind policies, import batches, ids and
//! timestamps) and the data-model rules they obey (names, emails, texts).
//! It knows no backend and no protocol: `store` moves these records,
//! `directory` turns them into entries, `account` changes them.
//!
//! Layout:
//! - `model`: users, groups, members, ids, timestamps, group snapshots.
//! - `mfa`: devices, TOTP secrets, keyed hashes, app passwords, the raw
//!   second-factor records of a backup, MFA and group policies.
//! - `session`: portal sessions, keyed by the hash of their secret id.
//! - `batch`: import and restore batches and their report.
//! - `rules`: number allocation, nesting without cycles, merge imports:
//!   the rules every backend enforces inside its transactions.
//! - `snapshot`: a whole directory at one instant (backups, exports).
//! - `validate`: the rules for names, emails and free texts.
//! - `net`: address ranges (trusted proxies).

pub mod attrs;
pub mod batch;
pub mod footprint;
pub mod mfa;
pub mod model;
pub mod net;
pub mod rules;
pub mod session;
pub mod snapshot;
pub mod validate;

pub use mfa::{
    AppPassword, AppPasswordId, CredentialKind, Device, DeviceId, DeviceKind, GroupPolicy,
    KeyedHash, MfaPolicy, TotpSecret,
};
pub use model::{
    folded_name, now, Group, GroupId, GroupSnapshot, Member, NewUser, Timestamp, User, UserId,
};
pub use session::{PortalSession, SessionHash, SessionId};

/// First uidNumber handed out (DESIGN.md section 3).
pub const FIRST_UID_NUMBER: u32 = 2000;
/// First gidNumber handed out (DESIGN.md section 3).
pub const FIRST_GID_NUMBER: u32 = 4000;

/// Errors of the store and of the data-model rules, in terms callers can
/// act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The request breaks a rule of the data model (bad name, cycle, …).
    #[error("{0}")]
    Invalid(String),
    /// The database itself failed; the detail is for the log, not for clients.
    #[error("storage failure: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<crate::blocking::TaskFailed> for StoreError {
    fn from(e: crate::blocking::TaskFailed) -> StoreError {
        StoreError::Backend(e.to_string())
    }
}
