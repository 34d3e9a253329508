//! The streamed halves of [`super::copy`]: the source's snapshot read on
//! a thread of its own and handed over a short channel to the target's
//! streamed restore ([`copy_snapshot`]), and a snapshot tallied as it
//! goes by ([`Tally`]), for the comparison of both sides.
//!
//! A restore batch names members by name, and the head (which carries
//! the groups) comes before the users whose names it would need: so the
//! users, groups, settings, policies and allocators go in one streamed
//! batch, and the memberships and second factors (by user name, known by
//! then) in a second one.

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{CopyError, Counter, Counts};
use crate::account::{self, Actor};
use crate::migrate::export::{backup_group, backup_user, ExportError};
use crate::migrate::import::{second_factors, ImportError};
use crate::migrate::{BackupGroup, BackupUser};
use crate::store::import::{Batch, BatchGroup, BatchMember, BatchMode, BatchUser};
use crate::store::mfa::RawSecondFactors;
use crate::store::{
    Member, Result as StoreResult, SnapshotHead, SnapshotSink, SnapshotUser, Store, StoreError,
};

/// Users on their way from the source's reader to the target's writer.
const DEPTH: usize = 512;

/// One piece of the source's snapshot; `End` after the last user (a
/// channel that closes without it is a snapshot that stopped).
enum Piece {
    Head(SnapshotHead),
    User(SnapshotUser),
    End,
}

/// The source's side of the channel.
struct Pipe(SyncSender<Piece>);

impl Pipe {
    fn send(&self, piece: Piece) -> StoreResult<()> {
        self.0
            .send(piece)
            .map_err(|_| StoreError::Backend("the target stopped taking records".into()))
    }
}

impl SnapshotSink for Pipe {
    fn head(&mut self, head: SnapshotHead) -> StoreResult<()> {
        self.send(Piece::Head(head))
    }

    fn user(&mut self, user: SnapshotUser) -> StoreResult<()> {
        self.send(Piece::User(user))
    }
}

/// A snapshot as [`super::copy`] compares it: the counts, a digest of the
/// users as the backup writes them (in the snapshot's canonical order),
/// and the groups and settings whole (the head holds them anyway).
pub(super) struct Tally {
    counter: Counter,
    users: Sha256,
    counters: (u32, u32),
    pub groups: Vec<BackupGroup>,
    pub settings: Vec<(String, String)>,
    /// One user's JSON, reused.
    buf: Vec<u8>,
}

impl Tally {
    fn new(head: &SnapshotHead) -> Tally {
        Tally {
            counter: Counter::new(&head.groups, head.settings.len()),
            users: Sha256::new(),
            counters: head.counters,
            groups: head.groups.iter().cloned().map(backup_group).collect(),
            settings: head.settings.clone(),
            buf: Vec::new(),
        }
    }

    /// Counts `su` and adds it, as the backup writes it (with secrets),
    /// to the digest; answers that record.
    fn user(&mut self, su: SnapshotUser) -> Result<BackupUser, CopyError> {
        self.counter.user(&su);
        let u = backup_user(su, true);
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &u).map_err(|e| ExportError::Json(e.to_string()))?;
        // Length first: no two sequences of records digest alike.
        self.users.update((self.buf.len() as u64).to_be_bytes());
        self.users.update(&self.buf);
        Ok(u)
    }

    pub fn counts(&self, sessions: usize, epoch: u64) -> Counts {
        Counter(self.counter.0.clone()).finish(self.counters, sessions, epoch)
    }

    pub fn users_digest(&self) -> [u8; 32] {
        self.users.clone().finalize().into()
    }
}

/// Tallies a snapshot streamed into it (the target's, after the copy).
#[derive(Default)]
pub(super) struct Sink {
    tally: Option<Tally>,
    failed: Option<CopyError>,
}

impl Sink {
    pub fn finish(self) -> Result<Tally, CopyError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        self.tally
            .ok_or_else(|| StoreError::Backend("the target's snapshot had no head".into()).into())
    }
}

impl SnapshotSink for Sink {
    fn head(&mut self, head: SnapshotHead) -> StoreResult<()> {
        self.tally = Some(Tally::new(&head));
        Ok(())
    }

    fn user(&mut self, user: SnapshotUser) -> StoreResult<()> {
        let Some(tally) = self.tally.as_mut() else {
            return Err(StoreError::Backend(
                "a user before the snapshot's head".into(),
            ));
        };
        tally.user(user).map(|_| ()).map_err(|e| {
            let stopped = StoreError::Backend(format!("tallying the target: {e}"));
            self.failed = Some(e);
            stopped
        })
    }
}

/// Reads `source`'s snapshot on a thread of its own and restores it into
/// `target` as it comes (see the module documentation); answers the
/// source's tally.
pub(super) fn copy_snapshot(source: &Store, target: &Store) -> Result<Tally, CopyError> {
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel(DEPTH);
        let reader = scope.spawn(move || {
            let mut pipe = Pipe(tx);
            source.snapshot_streamed(&mut pipe)?;
            pipe.send(Piece::End)
        });
        let mut cut_short = false;
        let written = restore(target, &rx, &mut cut_short);
        // The reader stops at its next record once nobody takes them.
        drop(rx);
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(StoreError::Backend("the source's reader panicked".into())));
        match (written, read) {
            // The source's own error says why its stream ended early.
            (Err(_), Err(e)) if cut_short => Err(e.into()),
            (Ok(_), Err(e)) => Err(e.into()),
            (written, _) => written,
        }
    })
}

/// The target's side: the first batch streamed from `rx`, then the
/// memberships and second factors, then the groups' attributes (as a
/// backup restore writes them). `cut_short` tells that the source's
/// stream ended before its end.
fn restore(target: &Store, rx: &Receiver<Piece>, cut_short: &mut bool) -> Result<Tally, CopyError> {
    let stopped = || StoreError::Backend("the source's snapshot stopped".into());
    let Ok(Piece::Head(head)) = rx.recv() else {
        *cut_short = true;
        return Err(stopped().into());
    };
    let mut tally = Tally::new(&head);
    let first = Batch {
        mode: BatchMode::Restore,
        next_uid: Some(head.counters.0),
        next_gid: Some(head.counters.1),
        settings: head.settings.clone(),
        groups: head
            .groups
            .iter()
            .map(|g| BatchGroup {
                group: g.group.clone(),
                allocate_gid: false,
            })
            .collect(),
        group_policies: head
            .groups
            .iter()
            .filter(|g| !g.policy.is_empty())
            .map(|g| (g.group.name.clone(), g.policy))
            .collect(),
        ..Batch::default()
    };
    let mut names: HashMap<Uuid, String> = HashMap::new();
    let mut factors = Vec::new();
    let mut failed = None;
    let mut done = false;
    let mut users = std::iter::from_fn(|| {
        if done {
            return None;
        }
        let piece = rx.recv();
        match piece {
            Ok(Piece::User(su)) => {
                let restored = restored_user(su, &mut tally, &mut names, &mut factors);
                Some(restored.map_err(|e| {
                    let stopped = StoreError::Backend(format!("reading the source: {e}"));
                    failed = Some(e);
                    stopped
                }))
            }
            Ok(Piece::End) => {
                done = true;
                None
            }
            Ok(Piece::Head(_)) | Err(_) => {
                done = true;
                *cut_short = true;
                Some(Err(stopped()))
            }
        }
    });
    let written =
        account::import::write_batch_streamed(target, &Actor::Operator, &first, &mut users);
    if let Some(e) = failed {
        return Err(e);
    }
    written.map_err(ImportError::from)?;

    let mut rest = Batch {
        mode: BatchMode::Restore,
        second_factors: factors,
        ..Batch::default()
    };
    let group_names: HashMap<Uuid, &str> = head
        .groups
        .iter()
        .map(|g| (g.group.id.0, g.group.name.as_str()))
        .collect();
    for g in &head.groups {
        for m in &g.members {
            let member = match m {
                Member::User(id) => names.get(&id.0).cloned().map(BatchMember::User),
                Member::Group(id) => group_names
                    .get(&id.0)
                    .map(|n| BatchMember::Group((*n).to_owned())),
            };
            let member = member.ok_or_else(|| {
                ImportError::Json(format!(
                    "group {} lists a member that is not in the snapshot",
                    g.group.name
                ))
            })?;
            rest.memberships.push((g.group.name.clone(), member));
        }
    }
    drop(names);
    account::import::write_batch(target, &Actor::Operator, &rest).map_err(ImportError::from)?;
    for g in head.groups.iter().filter(|g| !g.attrs.is_empty()) {
        for (key, value) in &g.attrs {
            target.set_group_attr(g.group.id, key, Some(value))?;
        }
    }
    Ok(tally)
}

/// One source user: tallied, then as the restore of its backup record
/// writes it (its second factors kept aside, by name, for the second
/// batch).
fn restored_user(
    su: SnapshotUser,
    tally: &mut Tally,
    names: &mut HashMap<Uuid, String>,
    factors: &mut Vec<(String, RawSecondFactors)>,
) -> Result<BatchUser, CopyError> {
    let u = tally.user(su)?;
    let mut skipped = (0, 0);
    let f = second_factors(&u, &mut skipped)?;
    if skipped != (0, 0) {
        return Err(ImportError::Json(format!(
            "user {}: a device or app password has no secret to copy",
            u.user.username
        ))
        .into());
    }
    if f != RawSecondFactors::default() {
        factors.push((u.user.username.clone(), f));
    }
    names.insert(u.user.id.0, u.user.username.clone());
    Ok(BatchUser {
        user: u.user,
        allocate_uid: false,
        password_hash: u.password_hash,
    })
}
