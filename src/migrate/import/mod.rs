//! LDIF import: a pure planner, then one all-or-nothing store batch.
//!
//! [`plan`] classifies entries (users, groups, skipped), maps attributes
//! onto store records, resolves member references whatever the source
//! tree's DNs were, and collects every problem with the line it comes
//! from. It reads nothing but its input, so `--dry-run` is just
//! [`ImportPlan::report`]. [`apply`] hashes cleartext passwords, then hands
//! the whole plan to [`crate::store::Backend::apply_batch`], which writes it in one
//! transaction: either everything lands or nothing does, and a second run
//! of the same file finds everything in place and changes nothing.
//!
//! [`json`] restores a backup written by [`super::export::json`].
//!
//! Layout:
//! - this file: the plan's types (what an import will do, its problems,
//!   progress) and the dry-run report.
//! - `entry`: one LDIF entry → a planned user or group (attribute mapping,
//!   values checked against the store's rules).
//! - `plan`: the whole file → an [`ImportPlan`] (duplicates, member
//!   resolution, nested-group cycles).
//! - `apply`: an [`ImportPlan`] → one store batch (password hashing first).
//! - `restore`: a JSON backup → one store batch.
//! - `stream`: the offline import in bounded memory (users spilled to a
//!   file while planning, then streamed into
//!   [`crate::store::Backend::apply_batch_streamed`]).

mod apply;
mod entry;
mod plan;
mod restore;
mod stream;

pub use apply::{apply, apply_with_progress};
pub use plan::{plan, plan_ldif, read_and_plan};
pub(crate) use restore::second_factors;
pub use restore::{backup_server_key, json, needs_server_key, read_backup, restore, RestoreReport};
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
use std::fmt::Write as _;

/// How often progress is reported (entries or users).
pub const PROGRESS_EVERY: usize = 1000;
/// Largest JSON backup accepted (bytes).
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
        let mut s = String::new();
        let _ = writeln!(
            s,
            "import plan: {} users, {} groups, {} entries skipped, {} problems",
            self.users.len() + self.users_streamed,
            self.groups.len(),
            self.skipped.len(),
            self.problems.len()
        );
        if !self.users.is_empty() {
            let _ = writeln!(s, "\nusers:");
        }
        if self.users_streamed > 0 {
            let _ = writeln!(
                s,
                "\n{} users not listed (a streamed import; --dry-run lists them)",
                self.users_streamed
            );
        }
        for u in &self.users {
            let num = |n: Option<u32>| n.map_or_else(|| "new".to_string(), |n| n.to_string());
            let _ = writeln!(
                s,
                "  line {:>6}  {}  uidNumber {} gidNumber {}  password {}{}  ({})",
                u.line,
                u.username,
                num(u.uid_number),
                u.gid_number
                    .map_or_else(|| "= uidNumber".to_string(), |n| n.to_string()),
                u.password
                    .as_ref()
                    .map_or_else(|| "none".to_string(), StoredPassword::kind),
                if u.disabled { "  disabled" } else { "" },
                u.source_dn
            );
        }
        if !self.groups.is_empty() {
            let _ = writeln!(s, "\ngroups:");
        }
        for g in &self.groups {
            let members: Vec<String> = g
                .members
                .iter()
                .map(|m| match m {
                    BatchMember::User(u) => u.clone(),
                    BatchMember::Group(g) => format!("group {g}"),
                })
                .collect();
            let _ = writeln!(
                s,
                "  line {:>6}  {}  gidNumber {}  members: {}  ({})",
                g.line,
                g.name,
                g.gid_number
                    .map_or_else(|| "new".to_string(), |n| n.to_string()),
                if members.is_empty() {
                    "none".to_string()
                } else {
                    members.join(", ")
                },
                g.source_dn
            );
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(s, "\nskipped:");
        }
        for k in &self.skipped {
            let _ = writeln!(s, "  line {:>6}  {}: {}", k.line, k.dn, k.reason);
        }
        if !self.problems.is_empty() {
            let _ = writeln!(s, "\nproblems:");
        }
        for p in &self.problems {
            let sev = match p.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let _ = writeln!(s, "  line {:>6}  {sev:<7}  {}: {}", p.line, p.dn, p.message);
        }
        s
    }

    /// The plan as one JSON document (for `--dry-run --json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "users": self.users.iter().map(|u| serde_json::json!({
                "line": u.line, "dn": u.source_dn, "username": u.username,
                "full_name": u.full_name, "email": u.email,
                "uid_number": u.uid_number, "gid_number": u.gid_number,
                "disabled": u.disabled, "attrs": u.attrs,
                "password": u.password.as_ref().map(StoredPassword::kind),
            })).collect::<Vec<_>>(),
            "groups": self.groups.iter().map(|g| serde_json::json!({
                "line": g.line, "dn": g.source_dn, "name": g.name,
                "gid_number": g.gid_number, "description": g.description,
                "members": g.members.iter().map(|m| match m {
                    BatchMember::User(u) => serde_json::json!({"user": u}),
                    BatchMember::Group(g) => serde_json::json!({"group": g}),
                }).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "skipped": self.skipped,
            "problems": self.problems,
        })
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
