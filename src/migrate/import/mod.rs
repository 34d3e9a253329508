//! LDIF import: a pure planner, then one all-or-nothing store batch.
//!
//! [`plan`] classifies entries (users, groups, skipped), maps attributes
//! onto store records, resolves member references whatever the source
//! tree's DNs were, and collects every problem with the line it comes
//! from. It reads nothing but its input, so `--dry-run` is just its
//! listing ([`dry_run`], which holds no planned user). [`apply`] hashes
//! cleartext passwords, then hands the whole plan to
//! [`crate::store::Backend::apply_batch`], which writes it in one
//! transaction: either everything lands or nothing does, and a second run
//! of the same file finds everything in place and changes nothing.
//!
//! [`json`] restores a backup written by [`super::export::json`].
//!
//! Layout:
//! - this file: the plan's types (what an import will do, its problems,
//!   progress).
//! - `listing`: the dry run's listing, text or JSON, of a plan held whole
//!   or streamed (users spilled as they are planned).
//! - `entry`: one LDIF entry → a planned user or group (attribute mapping,
//!   values checked against the store's rules).
//! - `plan`: the whole file → an [`ImportPlan`] (duplicates, member
//!   resolution, nested-group cycles).
//! - `apply`: an [`ImportPlan`] → one store batch (password hashing first).
//! - `restore`: a JSON backup → one store batch, from a document held
//!   whole or (offline) streamed: users spilled to a file as they are
//!   read, then streamed into
//!   [`crate::store::Backend::apply_batch_streamed`].
//! - `document`: the JSON backup read as a stream (each user handed over
//!   as it is parsed, the rest kept).
//! - `stream`: the offline import in bounded memory (on sled, users
//!   written by another thread while the file is still planned,
//!   [`crate::store::Backend::bulk_import`]; otherwise spilled to a file
//!   while planning, then streamed into
//!   [`crate::store::Backend::apply_batch_streamed`]); its reading half
//!   also plans the dry run.

mod apply;
mod document;
mod entry;
mod listing;
mod plan;
mod restore;
mod stream;

pub use apply::{apply, apply_with_progress};
pub use document::MAX_BACKUP_USER;
pub use listing::{dry_run, Listing};
#[cfg(test)]
pub use plan::plan_ldif_on_two_threads;
pub use plan::{plan, plan_ldif, read_and_plan};
pub(crate) use restore::second_factors;
pub use restore::{
    backup_server_key, json, needs_server_key, read_backup, read_backup_streamed, restore,
    restore_streamed, RestoreReport, SpilledBackup,
};
pub use stream::{import_streamed, Streamed};

use crate::auth::legacy::StoredPassword;
use crate::auth::password::PasswordError;
use crate::directory::schema;
use crate::ldif::LdifError;
use crate::store::import::{BatchMember, BatchReport};
#[cfg(doc)]
use crate::store::Store;
use crate::store::{StoreError, Timestamp};
use std::collections::BTreeMap;

/// How often progress is reported (entries or users).
pub const PROGRESS_EVERY: usize = 1000;
/// Largest JSON backup read whole ([`read_backup`]), and largest part of
/// a streamed one ([`read_backup_streamed`]) outside its users (bytes).
pub const MAX_JSON_BACKUP: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading LDIF: {0}")]
    Ldif(#[from] LdifError),
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Refused by the account layer (the actor may not import).
    #[error("{0}")]
    Refused(String),
    #[error("hashing a cleartext password: {0}")]
    Hash(#[from] PasswordError),
    #[error("reading the JSON backup: {0}")]
    Json(String),
    /// Writing a dry run's listing to its output failed.
    #[error("writing the import plan: {0}")]
    Output(std::io::Error),
}

/// Settings of an import.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Attributes the server does not map (e.g. `employeeType`,
    /// `sshPublicKey`) to keep anyway in `user.attrs` (case-insensitive).
    /// Others are reported and dropped.
    pub keep_attributes: Vec<String>,
}

/// The names of `keep_attributes` that entries do not serve: the schema
/// does not know them (they are still stored and exported).
pub fn unserved_kept_attributes(opts: &ImportOptions) -> Vec<&str> {
    opts.keep_attributes
        .iter()
        .filter(|k| schema::attribute(k).is_none_or(|at| at.operational))
        .map(String::as_str)
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something in the source is not imported (an entry, a member).
    Error,
    /// Imported with a change (a value dropped, an attribute ignored).
    Warning,
}

/// One problem found while planning, with the line it starts on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub line: usize,
    pub dn: String,
    pub severity: Severity,
    pub message: String,
}

/// A user the import will create or update.
#[derive(Clone, Debug)]
pub struct PlannedUser {
    pub line: usize,
    pub source_dn: String,
    pub username: String,
    pub full_name: Option<String>,
    pub email: Option<String>,
    /// Kept from the source; `None` = allocate.
    pub uid_number: Option<u32>,
    /// Kept from the source; `None` = the uidNumber (private group).
    pub gid_number: Option<u32>,
    pub disabled: bool,
    /// From `createTimestamp`, when the source has it.
    pub created: Option<Timestamp>,
    /// `user.attrs`: canonical names of settable attributes, plus kept
    /// unknown ones.
    pub attrs: BTreeMap<String, String>,
    pub password: Option<StoredPassword>,
}

/// A group the import will create or update.
#[derive(Clone, Debug)]
pub struct PlannedGroup {
    pub line: usize,
    pub source_dn: String,
    pub name: String,
    pub gid_number: Option<u32>,
    pub description: Option<String>,
    /// Resolved members, by name.
    pub members: Vec<BatchMember>,
}

/// An entry that is neither user nor group (base, OUs, …) or a change
/// record that is not an add.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SkippedEntry {
    pub line: usize,
    pub dn: String,
    pub reason: String,
}

/// What an import would do; `Display`ed by `--dry-run`.
#[derive(Clone, Debug, Default)]
pub struct ImportPlan {
    pub users: Vec<PlannedUser>,
    pub groups: Vec<PlannedGroup>,
    pub skipped: Vec<SkippedEntry>,
    pub problems: Vec<Problem>,
    /// Users planned but not kept in `users` (a streamed import,
    /// [`import_streamed`], writes them away as it reads them).
    pub users_streamed: usize,
}

/// What [`apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    #[serde(flatten)]
    pub batch: BatchReport,
    /// Problems of the plan (already shown by the dry run).
    pub problems: usize,
    pub skipped: usize,
}

/// Progress of a long import, for the CLI to print on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// `reading`, `hashing` or `writing`.
    pub stage: &'static str,
    pub done: usize,
    /// `None` while reading (the total is not known yet).
    pub total: Option<usize>,
}

fn problem(
    problems: &mut Vec<Problem>,
    line: usize,
    dn: &str,
    severity: Severity,
    message: String,
) {
    problems.push(Problem {
        line,
        dn: dn.to_string(),
        severity,
        message,
    });
}

impl ImportPlan {
    /// True when some source data will not be imported.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    /// The printable dry-run report: what would be created and every
    /// problem with its line number. No secrets: passwords show their
    /// scheme only.
    pub fn report(&self) -> String {
        listing::report(self)
    }

    /// The plan as one JSON document (for `--dry-run --json`).
    pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        listing::to_json(self)
    }
}

impl From<crate::account::AccountError> for ImportError {
    fn from(e: crate::account::AccountError) -> ImportError {
        match e {
            crate::account::AccountError::Store(e) => ImportError::Store(e),
            e => ImportError::Refused(e.to_string()),
        }
    }
}
