//! `migrate-store`: the whole directory copied from one store into another
//! (sled → PostgreSQL, PostgreSQL → sled, or between two of a kind),
//! credentials and all, then counted on both sides.
//!
//! The copy is the JSON backup with secrets restored into the target,
//! without a file in between: [`super::export::backup_of`] of one source
//! snapshot, then [`super::import::restore`]. So `migrate-store` and a
//! backup restore are one path, and what one carries the other does: users
//! with password hashes and attributes, groups with attributes and
//! policies, memberships, settings, the allocators, devices with their
//! secrets, last accepted TOTP steps and unused static tokens (a used
//! code stays used), pending devices, app passwords and API tokens with
//! their keyed hashes. Two things no backup holds are copied after it:
//! portal sessions ([`Backend::all_sessions`], so nobody is signed out)
//! and the membership epoch ([`Backend::raise_membership_epoch`], never
//! backwards).
//!
//! The keyed hashes stay keyed with the source's server key: the caller
//! makes that key the target's (the sled target's `server.key`, the
//! PostgreSQL target's recorded fingerprint) before [`copy`].
//!
//! The target must be empty ([`ensure_empty`]); the copy ends with a count
//! per kind on both sides ([`Counts`]) and a comparison of every record
//! as the backup writes it, and any difference is an error.
//!
//! [`Backend::all_sessions`]: crate::store::Backend::all_sessions
//! [`Backend::raise_membership_epoch`]: crate::store::Backend::raise_membership_epoch

use std::collections::{BTreeMap, HashSet};

use super::export::{self, ExportError, Secrets};
use super::import::{self, ImportError};
use crate::auth::keys::ServerKey;
use crate::store::{DeviceKind, Member, Snapshot, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("reading the source: {0}")]
    Export(#[from] ExportError),
    #[error("writing the target: {0}")]
    Import(#[from] ImportError),
    #[error(
        "the target is not empty (it holds {0}); migrate-store copies into an empty store only"
    )]
    NotEmpty(String),
    #[error("the copy does not match the source: {0}")]
    Mismatch(String),
}

/// How many records of each kind a store holds, by kind name (the keys of
/// `migrate-store --json`), plus the allocators and the membership epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Counts(pub BTreeMap<&'static str, u64>);

/// The kinds compared after a copy; `next_uid`, `next_gid` and
/// `membership_epoch` are reported too but are no counts.
pub const KINDS: &[&str] = &[
    "users",
    "password_hashes",
    "user_attributes",
    "groups",
    "group_attributes",
    "group_policies",
    "user_memberships",
    "group_memberships",
    "settings",
    "totp_devices",
    "totp_used_steps",
    "static_devices",
    "static_tokens_left",
    "pending_devices",
    "app_passwords",
    "api_tokens",
    "portal_sessions",
];

impl Counts {
    /// The counts of `snap` with `sessions` portal sessions.
    pub fn of(snap: &Snapshot, sessions: usize, epoch: u64) -> Counts {
        let mut c: BTreeMap<&'static str, u64> = KINDS.iter().map(|k| (*k, 0)).collect();
        let mut add = |kind: &'static str, n: usize| *c.entry(kind).or_default() += n as u64;
        add("users", snap.users.len());
        add("groups", snap.groups.len());
        add("settings", snap.settings.len());
        add("portal_sessions", sessions);
        for u in &snap.users {
            add("password_hashes", usize::from(u.password_hash.is_some()));
            add("user_attributes", u.user.attrs.len());
            for d in &u.second_factors.devices {
                if !d.device.confirmed {
                    add("pending_devices", 1);
                }
                match d.device.kind {
                    DeviceKind::Totp { .. } => {
                        add("totp_devices", 1);
                        add("totp_used_steps", usize::from(d.totp_last_step.is_some()));
                    }
                    DeviceKind::Static => {
                        add("static_devices", 1);
                        add("static_tokens_left", d.static_tokens.len());
                    }
                }
            }
            for a in &u.second_factors.app_passwords {
                let api = a.record.kind == crate::store::CredentialKind::ApiToken;
                add(if api { "api_tokens" } else { "app_passwords" }, 1);
            }
        }
        for g in &snap.groups {
            add("group_attributes", g.attrs.len());
            add("group_policies", usize::from(!g.policy.is_empty()));
            for m in &g.members {
                match m {
                    Member::User(_) => add("user_memberships", 1),
                    Member::Group(_) => add("group_memberships", 1),
                }
            }
        }
        c.insert("next_uid", u64::from(snap.counters.0));
        c.insert("next_gid", u64::from(snap.counters.1));
        c.insert("membership_epoch", epoch);
        Counts(c)
    }

    fn get(&self, kind: &str) -> u64 {
        self.0.get(kind).copied().unwrap_or(0)
    }

    /// Where `target` (the copy) differs from `self` (the source): every
    /// count and both allocators must be equal; the epoch may only have
    /// grown.
    pub fn differences(&self, target: &Counts) -> Vec<String> {
        let mut out: Vec<String> = KINDS
            .iter()
            .chain(&["next_uid", "next_gid"])
            .filter(|k| self.get(k) != target.get(k))
            .map(|k| {
                format!(
                    "{k}: {} in the source, {} in the target",
                    self.get(k),
                    target.get(k)
                )
            })
            .collect();
        if target.get("membership_epoch") < self.get("membership_epoch") {
            out.push(format!(
                "membership_epoch: {} in the source, only {} in the target",
                self.get("membership_epoch"),
                target.get("membership_epoch")
            ));
        }
        out
    }
}

/// Refuses a target that holds any user, group, setting or portal
/// session, naming what it holds. Reads only.
pub fn ensure_empty(target: &Store) -> Result<(), CopyError> {
    let users = target.user_count()?;
    let groups = target.groups()?.len();
    let settings = target.settings()?.len();
    let sessions = target.all_sessions()?.len();
    if users + groups + settings + sessions == 0 {
        return Ok(());
    }
    let held: Vec<String> = [
        (users, "users"),
        (groups, "groups"),
        (settings, "settings"),
        (sessions, "portal sessions"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    Err(CopyError::NotEmpty(held.join(", ")))
}

/// What a copy counted on each side (equal, or [`copy`] fails).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copied {
    pub source: Counts,
    pub target: Counts,
}

/// Copies every record of `source` into the empty `target` (see the
/// module documentation); `key` is the server key the source's keyed
/// hashes were made with, already the target's. Blocking, O(records) in
/// memory. A failure part way leaves the target partly written: it is
/// then not empty, and the caller says how to empty it.
pub fn copy(source: &Store, target: &Store, key: &ServerKey) -> Result<Copied, CopyError> {
    ensure_empty(target)?;
    // Read before the data it guards (the epoch's contract).
    let epoch = source.membership_epoch()?;
    let snap = source.snapshot()?;
    let users: HashSet<_> = snap.users.iter().map(|u| u.user.id).collect();
    // Sessions are no part of a snapshot: one whose user was deleted since
    // (a PostgreSQL source that instances still serve) goes with its user.
    let sessions: Vec<_> = source
        .all_sessions()?
        .into_iter()
        .filter(|(_, s)| users.contains(&s.user))
        .collect();
    let source_counts = Counts::of(&snap, sessions.len(), epoch);

    let backup = export::backup_of(snap, Secrets::Include(Some(key)))?;
    import::restore(target, &backup, false)?;
    for (hash, session) in &sessions {
        target.create_session(hash, session)?;
    }
    target.raise_membership_epoch(epoch)?;

    let target_epoch = target.membership_epoch()?;
    let target_snap = target.snapshot()?;
    let target_counts = Counts::of(&target_snap, target.all_sessions()?.len(), target_epoch);
    let mut differences = source_counts.differences(&target_counts);
    // Beyond the counts, every record as the backup writes it.
    let written = export::backup_of(target_snap, Secrets::Include(Some(key)))?;
    for (what, same) in [
        ("user records", written.users == backup.users),
        ("group records", written.groups == backup.groups),
        ("settings", written.settings == backup.settings),
    ] {
        if !same {
            differences.push(format!("the {what} differ"));
        }
    }
    if !differences.is_empty() {
        return Err(CopyError::Mismatch(differences.join("; ")));
    }
    Ok(Copied {
        source: source_counts,
        target: target_counts,
    })
}
