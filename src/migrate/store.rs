//! `migrate-store`: the whole directory copied from one store into another
//! (sled → PostgreSQL, PostgreSQL → sled, or between two of a kind),
//! credentials and all, then counted on both sides.
//!
//! The copy is the JSON backup with secrets restored into the target,
//! without a file in between and without holding either store: each user
//! of one source snapshot ([`Backend::snapshot_streamed`]) becomes its
//! backup record ([`super::export`]) and that record's restore
//! ([`super::import`]), written in chunks as it comes
//! ([`Backend::apply_batch_streamed`]; see `stream` for the two batches).
//! So `migrate-store` and a backup restore write the same records, and
//! what one carries the other does: users
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
//! as the backup writes it (the users by a digest of both snapshots read
//! in their canonical order), and any difference is an error.
//!
//! [`Backend::all_sessions`]: crate::store::Backend::all_sessions
//! [`Backend::snapshot_streamed`]: crate::store::Backend::snapshot_streamed
//! [`Backend::apply_batch_streamed`]: crate::store::Backend::apply_batch_streamed
//! [`Backend::raise_membership_epoch`]: crate::store::Backend::raise_membership_epoch

use std::collections::BTreeMap;

use super::export::ExportError;
use super::import::ImportError;
use crate::auth::keys::ServerKey;
use crate::store::{DeviceKind, Member, Snapshot, SnapshotGroup, SnapshotUser, Store, StoreError};

mod stream;

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
        let mut c = Counter::new(&snap.groups, snap.settings.len());
        for u in &snap.users {
            c.user(u);
        }
        c.finish(snap.counters, sessions, epoch)
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

/// [`Counts`] added up record by record, as a snapshot streams by.
struct Counter(BTreeMap<&'static str, u64>);

impl Counter {
    /// The counts of a snapshot's head: its groups and settings.
    fn new(groups: &[SnapshotGroup], settings: usize) -> Counter {
        let mut c = Counter(KINDS.iter().map(|k| (*k, 0)).collect());
        c.add("groups", groups.len());
        c.add("settings", settings);
        for g in groups {
            c.add("group_attributes", g.attrs.len());
            c.add("group_policies", usize::from(!g.policy.is_empty()));
            for m in &g.members {
                match m {
                    Member::User(_) => c.add("user_memberships", 1),
                    Member::Group(_) => c.add("group_memberships", 1),
                }
            }
        }
        c
    }

    fn add(&mut self, kind: &'static str, n: usize) {
        *self.0.entry(kind).or_default() += n as u64;
    }

    fn user(&mut self, u: &SnapshotUser) {
        self.add("users", 1);
        self.add("password_hashes", usize::from(u.password_hash.is_some()));
        self.add("user_attributes", u.user.attrs.len());
        for d in &u.second_factors.devices {
            if !d.device.confirmed {
                self.add("pending_devices", 1);
            }
            match d.device.kind {
                DeviceKind::Totp { .. } => {
                    self.add("totp_devices", 1);
                    self.add("totp_used_steps", usize::from(d.totp_last_step.is_some()));
                }
                DeviceKind::Static => {
                    self.add("static_devices", 1);
                    self.add("static_tokens_left", d.static_tokens.len());
                }
            }
        }
        for a in &u.second_factors.app_passwords {
            let api = a.record.kind == crate::store::CredentialKind::ApiToken;
            self.add(if api { "api_tokens" } else { "app_passwords" }, 1);
        }
    }

    fn finish(mut self, counters: (u32, u32), sessions: usize, epoch: u64) -> Counts {
        self.add("portal_sessions", sessions);
        self.0.insert("next_uid", u64::from(counters.0));
        self.0.insert("next_gid", u64::from(counters.1));
        self.0.insert("membership_epoch", epoch);
        Counts(self.0)
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
/// module documentation); the server key the source's keyed hashes were
/// made with must already be the target's (the hashes are copied as they
/// are; the key is taken so no caller forgets that). Blocking. Streamed: the
/// source's snapshot is read on a thread of its own and its users written
/// as they come ([`write_streamed`]), then the target's snapshot is read
/// the same way and compared with the source's count by count and record
/// by record (a digest of the users as the backup writes them), so memory
/// holds the groups, one chunk of users and a name per user, never a
/// whole snapshot. A failure part way leaves the target partly written:
/// it is then not empty, and the caller says how to empty it.
pub fn copy(source: &Store, target: &Store, _key: &ServerKey) -> Result<Copied, CopyError> {
    ensure_empty(target)?;
    // Read before the data it guards (the epoch's contract).
    let epoch = source.membership_epoch()?;
    let from = stream::copy_snapshot(source, target)?;
    // Sessions are no part of a snapshot: one whose user was deleted since
    // (a PostgreSQL source that instances still serve) goes with its user,
    // and the target holds exactly the snapshot's users.
    let mut sessions = Vec::new();
    for (hash, session) in source.all_sessions()? {
        if target.user(session.user)?.is_some() {
            sessions.push((hash, session));
        }
    }
    let source_counts = from.counts(sessions.len(), epoch);
    for (hash, session) in &sessions {
        target.create_session(hash, session)?;
    }
    target.raise_membership_epoch(epoch)?;

    let target_epoch = target.membership_epoch()?;
    let mut to = stream::Sink::default();
    target.snapshot_streamed(&mut to)?;
    let to = to.finish()?;
    let target_counts = to.counts(target.all_sessions()?.len(), target_epoch);
    let mut differences = source_counts.differences(&target_counts);
    // Beyond the counts, every record as the backup writes it.
    for (what, same) in [
        ("user records", from.users_digest() == to.users_digest()),
        ("group records", from.groups == to.groups),
        ("settings", from.settings == to.settings),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Dn;
    use crate::migrate::export::{self, Secrets};
    use crate::store::conformance::{Harness, SledHarness};
    use crate::store::mfa::{GroupPolicy, MfaPolicy, TotpSecret};
    use crate::store::postgres::testing::PgHarness;
    use crate::store::{CredentialKind, NewUser, PortalSession, SessionId};

    /// A directory with one record of every kind `migrate-store` copies.
    fn fill(s: &Store) {
        let new = |name: &str| NewUser {
            username: name.into(),
            full_name: Some(format!("{name} Example")),
            email: Some(format!("{name}@example.com")),
        };
        // Names whose order differs between collations (`_` sorts before
        // digits in some, after them bytewise).
        let alice = s.create_user(new("a_lice")).expect("user");
        let bob = s.create_user(new("a1bob")).expect("user");
        s.create_user(new("Carol")).expect("user");
        s.set_password_hash(
            alice.id,
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
        )
        .expect("hash");
        s.update_user(alice.id, &|u| {
            u.attrs.insert("loginShell".into(), "/bin/zsh".into());
            Ok(())
        })
        .expect("attrs");
        let staff = s
            .create_group("staff", Some("Staff".into()))
            .expect("group");
        let ops = s.create_group("ops", None).expect("group");
        s.add_member(staff.id, Member::User(alice.id))
            .expect("member");
        s.add_member(staff.id, Member::Group(ops.id))
            .expect("child");
        s.add_member(ops.id, Member::User(bob.id)).expect("member");
        s.set_group_attr(
            staff.id,
            "goauthentik.io/user/can-change-name",
            Some("false"),
        )
        .expect("group attr");
        s.set_group_policy(
            staff.id,
            GroupPolicy {
                mfa: Some(MfaPolicy::Required),
                app_passwords: Some(false),
            },
        )
        .expect("policy");
        s.set_setting("mfa_policy", "if-enrolled").expect("setting");
        let totp = s
            .add_totp_device(alice.id, "phone", 6, &TotpSecret(vec![7; 20]))
            .expect("totp");
        assert!(s.advance_totp_step(alice.id, totp.id, 12345).expect("step"));
        s.add_pending_totp_device(bob.id, "new phone", 6, &TotpSecret(vec![8; 20]))
            .expect("pending");
        let tokens = s
            .add_static_device(alice.id, "paper", &[[1; 32], [2; 32], [3; 32]])
            .expect("static");
        assert!(s
            .consume_static_token(alice.id, tokens.id, &[2; 32])
            .expect("used"));
        s.add_app_password(
            alice.id,
            CredentialKind::AppPassword,
            "mail",
            None,
            &[4; 32],
        )
        .expect("app password");
        s.add_app_password(
            bob.id,
            CredentialKind::ApiToken,
            "ci",
            Some(i64::MAX / 2),
            &[5; 32],
        )
        .expect("token");
        s.create_session(
            &[6; 32],
            &PortalSession {
                id: SessionId(uuid::Uuid::new_v4()),
                user: alice.id,
                created: 100,
                last_seen: 200,
                address: "192.0.2.1".into(),
                user_agent: "Test/1.0".into(),
                csrf: "t".into(),
                pending_code: false,
            },
        )
        .expect("session");
    }

    fn ldif(s: &Store) -> Vec<u8> {
        let mut out = Vec::new();
        let base = Dn::parse("dc=example,dc=com").expect("base");
        export::ldif(s, &base, true, &mut out).expect("export");
        out
    }

    /// sled → PostgreSQL → sled: every kind counted and equal on each
    /// side, the used TOTP step and the used static token still used, the
    /// sessions and the epoch carried, and the LDIF byte-identical.
    #[test]
    fn round_trip_through_postgres_keeps_everything() {
        let key = ServerKey::generate();
        let (mut sled_a, mut pg, mut sled_b) = (
            SledHarness::default(),
            PgHarness::default(),
            SledHarness::default(),
        );
        let source = sled_a.fresh();
        fill(&source);
        source.raise_membership_epoch(77).expect("epoch");
        let middle = pg.fresh();
        let first = copy(&source, &middle, &key).expect("sled → PostgreSQL");
        assert_eq!(first.source, first.target);
        let c = &first.target.0;
        for (kind, n) in [
            ("users", 3),
            ("password_hashes", 1),
            ("user_attributes", 1),
            ("groups", 2),
            ("group_attributes", 1),
            ("group_policies", 1),
            ("user_memberships", 2),
            ("group_memberships", 1),
            ("settings", 1),
            ("totp_devices", 2),
            ("totp_used_steps", 1),
            ("static_devices", 1),
            ("static_tokens_left", 2),
            ("pending_devices", 1),
            ("app_passwords", 1),
            ("api_tokens", 1),
            ("portal_sessions", 1),
        ] {
            assert_eq!(c.get(kind), Some(&n), "{kind}");
        }
        assert!(
            middle.membership_epoch().expect("epoch") >= 77,
            "never backwards"
        );

        let last = sled_b.fresh();
        let second = copy(&middle, &last, &key).expect("PostgreSQL → sled");
        assert_eq!(second.target.0.get("portal_sessions"), Some(&1));
        assert_eq!(ldif(&source), ldif(&middle));
        assert_eq!(ldif(&source), ldif(&last));

        let alice = last.user_by_name("a_lice").expect("read").expect("alice");
        let devices = last.raw_devices(alice.id).expect("devices");
        let totp = devices
            .iter()
            .find(|d| d.device.label == "phone")
            .expect("totp");
        assert!(!last
            .advance_totp_step(alice.id, totp.device.id, 12345)
            .expect("replay"));
        let paper = devices
            .iter()
            .find(|d| d.device.label == "paper")
            .expect("static");
        assert!(!last
            .consume_static_token(alice.id, paper.device.id, &[2; 32])
            .expect("used"));
        assert!(last
            .consume_static_token(alice.id, paper.device.id, &[3; 32])
            .expect("unused"));
    }

    /// Exports do not depend on the order a backend reads records in:
    /// every list of a snapshot reversed gives the same LDIF and backup.
    #[test]
    fn exports_are_in_one_order_whatever_the_backend_read() {
        let key = ServerKey::generate();
        let s = SledHarness::default().fresh();
        fill(&s);
        let snap = s.snapshot().expect("snapshot");
        let mut reversed = snap.clone();
        reversed.users.reverse();
        reversed.groups.reverse();
        reversed.settings.reverse();
        for u in &mut reversed.users {
            u.second_factors.devices.reverse();
            u.second_factors.app_passwords.reverse();
        }
        for g in &mut reversed.groups {
            g.members.reverse();
        }
        let base = Dn::parse("dc=example,dc=com").expect("base");
        let ldif_of = |snap: Snapshot| {
            let mut out = Vec::new();
            export::ldif_of(snap, &base, "admins", true, &mut out).expect("ldif");
            String::from_utf8(out).expect("utf-8")
        };
        assert_eq!(ldif_of(snap.clone()), ldif_of(reversed.clone()));
        let backup_of = |snap: Snapshot| {
            let mut b = export::backup_of(snap, Secrets::Include(Some(&key))).expect("backup");
            b.created = 0;
            b
        };
        assert_eq!(backup_of(snap), backup_of(reversed));
    }

    #[test]
    fn a_target_that_holds_anything_is_refused_and_left_alone() {
        let key = ServerKey::generate();
        let (mut a, mut b) = (SledHarness::default(), PgHarness::default());
        let source = a.fresh();
        fill(&source);
        let target = b.fresh();
        target.set_setting("mfa_policy", "off").expect("setting");
        let e = copy(&source, &target, &key).expect_err("not empty");
        assert!(
            matches!(e, CopyError::NotEmpty(ref what) if what == "1 settings"),
            "{e}"
        );
        assert_eq!(target.user_count().expect("count"), 0);
        assert_eq!(target.settings().expect("settings").len(), 1);
    }

    /// A copy of more users than the target's batches write per chunk
    /// arrives whole, memberships included, and compares equal.
    #[test]
    fn a_copy_of_many_users_arrives_whole() {
        const MANY: usize = 4500;
        let key = ServerKey::generate();
        let (mut a, mut b) = (SledHarness::default(), PgHarness::default());
        let source = a.fresh();
        fill(&source);
        let all = source.create_group("all", None).expect("group");
        let at = crate::store::now();
        let batch = crate::store::import::Batch {
            users: (0..MANY)
                .map(|i| crate::store::import::BatchUser {
                    user: crate::store::User {
                        id: crate::store::UserId(uuid::Uuid::new_v4()),
                        username: format!("many{i:05}"),
                        full_name: None,
                        email: Some(format!("many{i}@example.com")),
                        uid_number: 0,
                        gid_number: 0,
                        disabled: false,
                        attrs: Default::default(),
                        created: at,
                        modified: at,
                        pwd_changed: None,
                        cred_generation: 0,
                    },
                    allocate_uid: true,
                    password_hash: Some("{SSHA}aGFzaGhhc2g=".into()),
                })
                .collect(),
            memberships: (0..MANY)
                .map(|i| {
                    (
                        "all".to_string(),
                        crate::store::import::BatchMember::User(format!("many{i:05}")),
                    )
                })
                .collect(),
            ..Default::default()
        };
        source.apply_batch(&batch).expect("users");
        let target = b.fresh();
        let copied = copy(&source, &target, &key).expect("copy");
        assert_eq!(copied.source, copied.target);
        assert_eq!(copied.target.0.get("users"), Some(&(MANY as u64 + 3)));
        assert_eq!(
            copied.target.0.get("user_memberships"),
            Some(&(MANY as u64 + 2))
        );
        assert_eq!(target.members(all.id).expect("members").len(), MANY);
        assert_eq!(ldif(&source), ldif(&target));
    }

    /// The comparison sees one field of one user changed: the digests of
    /// two snapshots differ exactly when a user record does.
    #[test]
    fn a_changed_user_record_changes_the_digest() {
        let s = SledHarness::default().fresh();
        fill(&s);
        let tally = |snap: Snapshot| {
            let mut sink = stream::Sink::default();
            snap.feed(&mut sink).expect("feed");
            sink.finish().expect("tally").users_digest()
        };
        let snap = s.snapshot().expect("snapshot");
        let mut changed = snap.clone();
        changed.users[1].user.full_name = Some("Someone Else".into());
        assert_eq!(tally(snap.clone()), tally(snap.clone()));
        assert_ne!(tally(snap), tally(changed));
    }
}
