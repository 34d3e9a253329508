//! Batch writes for imports and restores: a whole set of users, groups,
//! memberships and settings written in one sled transaction, so an import
//! lands completely or not at all.
//!
//! The batch names members by user or group name, not by id, so one batch
//! can create a group and its members together. Indexes (username, email,
//! uidNumber, group name, gidNumber, both membership trees) and the `meta`
//! counters are kept exactly as the single-item operations keep them; the
//! uid/gid allocators move past every imported number.
//!
//! Two modes:
//! - [`BatchMode::Merge`] (LDIF import): a user or group that already
//!   exists under the same name is updated, never duplicated; its password
//!   is kept if it has one; memberships are only added. Running the same
//!   batch twice changes nothing the second time.
//! - [`BatchMode::Restore`] (JSON backup): records keep their ids; a name
//!   already held by a record with another id is a conflict; records with
//!   the same id are overwritten with the backup's values.
//!
//! A restore batch also carries each user's MFA devices and app passwords
//! ([`super::mfa::RawSecondFactors`]) and the groups' policies, written in
//! the same transaction (the MFA trees join it), so a backup lands with
//! its credentials or not at all.
//!
//! A conflict (a name that exists with another uidNumber, a uidNumber or
//! email held by someone else, a membership cycle with existing groups)
//! refuses the whole batch; nothing is written.

use super::mfa::{GroupPolicy, RawSecondFactors};
use super::{Group, User};

/// A user to write. In [`BatchMode::Merge`] only `username`, `full_name`,
/// `email`, `gid_number`, `disabled` and `attrs` of an existing user are
/// looked at; a new user is written as given (its `id`, timestamps…).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchUser {
    pub user: User,
    /// Allocate `uid_number` from the counter instead of using the given
    /// one; `gid_number` then follows it unless it is non-zero.
    pub allocate_uid: bool,
    /// A stored-form password hash (`$argon2id$…` or a scheme-tagged legacy
    /// hash); never a cleartext password.
    pub password_hash: Option<String>,
}

/// A group to write; see [`BatchUser`].
#[derive(Clone, Debug, PartialEq)]
pub struct BatchGroup {
    pub group: Group,
    /// Allocate `gid_number` from the counter.
    pub allocate_gid: bool,
}

/// A member named by user or group name (case-insensitive).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BatchMember {
    User(String),
    Group(String),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BatchMode {
    #[default]
    Merge,
    Restore,
}

/// Everything one import writes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    pub mode: BatchMode,
    pub users: Vec<BatchUser>,
    pub groups: Vec<BatchGroup>,
    /// (group name, member).
    pub memberships: Vec<(String, BatchMember)>,
    /// Settings (`Store::setting` keys) to set.
    pub settings: Vec<(String, String)>,
    /// Lower bounds for the allocators (a restore passes the backup's
    /// counters, so numbers of deleted records are not handed out again).
    pub next_uid: Option<u32>,
    pub next_gid: Option<u32>,
    /// MFA devices and app passwords by user name, written with their ids,
    /// secrets and keyed hashes (a restore).
    pub second_factors: Vec<(String, RawSecondFactors)>,
    /// Explicit group policies by group name.
    pub group_policies: Vec<(String, GroupPolicy)>,
}

/// What a batch did, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchReport {
    pub users_created: Vec<String>,
    pub users_updated: Vec<String>,
    pub users_unchanged: Vec<String>,
    pub groups_created: Vec<String>,
    pub groups_updated: Vec<String>,
    pub groups_unchanged: Vec<String>,
    pub memberships_added: usize,
    pub passwords_set: Vec<String>,
    /// Existing users whose password the import left alone.
    pub passwords_kept: Vec<String>,
    pub settings_set: usize,
    /// MFA devices written (a second restore of one backup writes none).
    pub devices_restored: usize,
    pub app_passwords_restored: usize,
    pub group_policies_set: usize,
}
