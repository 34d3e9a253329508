//! A consistent snapshot of the sled store, and the lock that makes it so.
//!
//! sled has no read view across trees: a transaction cannot iterate, and
//! a plain iteration may see half of a transaction that commits while it
//! runs (a new membership without its group's touched record, a deleted
//! user whose memberships are still there). So the store has one lock of
//! its own, [`SledStore::writing`] / [`SledStore::snapshot`]:
//! - every write through the store interface holds it **shared** for the
//!   whole write (scan, transaction, flush); writes never wait for each
//!   other on it, and reads never take it. Portal sessions are the one
//!   exception: no snapshot holds them (a backup restores accounts, not
//!   sign-ins), so signing in never waits for a backup;
//! - a snapshot holds it **exclusively** from its first read until its
//!   sink has taken the last user ([`SledStore::snapshot_streamed`]), so
//!   no write is half done while it reads, and none starts.
//!
//! Searches and binds go on meanwhile; a bind that writes (a TOTP step, a
//! static token, an app password's last use) and every other write wait.
//! Exports and backups are streamed, so memory stays bounded:
//! - [`SledStore::snapshot_streamed`] hands each user to the sink as it is
//!   read, inside the lock, so writers wait for the sink's work too (the
//!   offline CLI's export, where nobody else writes);
//! - [`SledStore::snapshot_spooled`] (a serving process's exports and
//!   scheduled backups) copies each user's records as stored into a
//!   private file, releases the lock, and hands the users over from the
//!   file: writers wait for the copy only.
//!
//! Either way the sinks write to a local file (a backup file, the CLI's
//! output, a server's spool file), never to a client.
//! Measured at 1,000,000 users and 50 groups of 50,000 (release build, 2
//! cores shared with a build, `export --with-secrets` through a running
//! server's admin socket, a `group add` issued 1 s in): streamed, writes
//! were held 16.0–16.5 s for the LDIF export and 7.0 s for the JSON
//! backup (the group add answered after 15.0–15.5 s and 6.0 s); spooled,
//! 4.4–6.3 s for either (the group add after 3.4–4.6 s). Before exports
//! were streamed, every snapshot held writes for the copy into memory,
//! 13.1 s at the same size, and the server peaked at 3.0 GB resident (now
//! 0.9–1.1 GB, most of it sled's page cache). Users are decoded without
//! entering the decoded-record cache (`records.rs`), which would
//! otherwise fill with records read once. [`SledStore::snapshot`] is the
//! same pass collected into memory.

use std::collections::HashSet;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::users::password_hash_of;
use super::{backend, decode, encode, keys, SledStore, Trees};
use crate::domain::mfa::{RawAppPassword, RawDevice, RawSecondFactors};
use crate::domain::snapshot::{sort_groups_canonically, SnapshotHead, SnapshotSink};
use crate::store::spool;
use crate::store::{
    AppPassword, Device, KeyedHash, Result, Snapshot, SnapshotGroup, SnapshotUser, StoreError,
    TotpSecret, UserId,
};

/// [`SledStore::writing`]'s guard: the snapshot lock held shared, and the
/// count of finished writes advanced when the write is done.
pub(super) struct Writing<'a> {
    _shared: RwLockReadGuard<'a, ()>,
    trees: &'a Trees,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.trees.wrote();
    }
}

impl SledStore {
    /// Held (shared) by every write for its whole duration; see the module
    /// documentation. Never held across a call that takes it again.
    /// When the guard is dropped, after the write, the count of finished
    /// writes advances ([`SledStore::writes`]).
    pub(super) fn writing(&self) -> Writing<'_> {
        // A writer that panicked left no half-written record behind in
        // sled (its transaction did not commit): the lock's state is fine.
        Writing {
            _shared: self
                .t
                .snapshot_lock
                .read()
                .unwrap_or_else(|e| e.into_inner()),
            trees: &self.t,
        }
    }

    /// For a write that nothing kept until the next write depends on (an
    /// app password's last use, recorded at every bind that uses it): the
    /// snapshot lock held shared, as by [`SledStore::writing`], but the
    /// count of finished writes left as it is, so the decoded records, the
    /// accounts binds keep and the user list stay current. Kept reads hold
    /// users, groups, their indexes, devices and policies, never app
    /// passwords.
    pub(super) fn bookkeeping(&self) -> RwLockReadGuard<'_, ()> {
        self.t
            .snapshot_lock
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The count of writes finished since the store opened. Read it before
    /// a record: the decoded-record cache uses a record found current at
    /// this count without reading sled (`records.rs`).
    pub(super) fn writes(&self) -> u64 {
        self.t.writes.load(Ordering::SeqCst)
    }

    fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.t
            .snapshot_lock
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Every record at one instant, in memory: [`SledStore::snapshot_streamed`]
    /// collected.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let mut snap = Snapshot::default();
        self.snapshot_streamed(&mut snap)?;
        Ok(snap)
    }

    /// The head of a snapshot: every group with its members, policy and
    /// attributes (in canonical order), the settings and the counters.
    /// Called with the lock held.
    fn snapshot_head(&self) -> Result<SnapshotHead> {
        let mut groups = Vec::new();
        for group in self.groups()? {
            groups.push(SnapshotGroup {
                members: self.members(group.id)?,
                policy: self.group_policy(group.id)?,
                attrs: self.group_attrs(group.id)?,
                group,
            });
        }
        sort_groups_canonically(&mut groups);
        Ok(SnapshotHead {
            groups,
            settings: self.settings()?,
            counters: self.counters()?,
        })
    }

    /// A user's second factors with their secrets, if `with_factors` (the
    /// users that have any) holds the user.
    fn snapshot_factors(
        &self,
        id: UserId,
        with_factors: &HashSet<UserId>,
    ) -> Result<RawSecondFactors> {
        if !with_factors.contains(&id) {
            return Ok(RawSecondFactors::default());
        }
        Ok(RawSecondFactors {
            devices: self.raw_devices(id)?,
            app_passwords: self.raw_app_passwords(id)?,
        })
    }

    /// Every record at one instant, handed to `sink` as it is read: writes
    /// are held off from the first read until `sink` has taken the last
    /// user (see the module documentation). The head (groups with their
    /// members, settings, counters) is read first; the users follow in
    /// the username index's order, which is the canonical one (lowercase
    /// name, bytewise).
    pub fn snapshot_streamed(&self, sink: &mut dyn SnapshotSink) -> Result<()> {
        crate::blocking::assert_may_block("a store snapshot");
        let waited = Instant::now();
        let _quiet = self.exclusive();
        // No write finishes while the lock is held.
        let written = self.writes();
        let started = Instant::now();
        let head = self.snapshot_head()?;
        let group_count = head.groups.len();
        sink.head(head)?;
        let with_factors = self.users_with_second_factors()?;
        let mut users = 0usize;
        for entry in self.t.idx_username.iter() {
            let (_, id) = entry.map_err(backend)?;
            let id = UserId(keys::uuid(&id)?);
            // Not kept in the decoded-record cache: read once, and the
            // searches' records stay.
            let Some(user) = self.t.user_records.peek(
                &self.t.users,
                &keys::user_key(id),
                id,
                "user",
                written,
            )?
            else {
                continue;
            };
            let mut su = SnapshotUser {
                user: Arc::unwrap_or_clone(user),
                password_hash: self.password_hash(id)?,
                second_factors: self.snapshot_factors(id, &with_factors)?,
            };
            su.sort_canonically();
            sink.user(su)?;
            users += 1;
        }
        tracing::info!(
            users,
            groups = group_count,
            waited_ms = started.duration_since(waited).as_millis() as u64,
            writes_held_ms = started.elapsed().as_millis() as u64,
            "store snapshot taken"
        );
        Ok(())
    }

    /// [`SledStore::snapshot_streamed`] for a server that goes on serving:
    /// the same records of the same instant, in the same order, but writes
    /// are held off only while they are read. Each user's records are
    /// copied as stored (its second factors as [`Spooled`] JSON) into an
    /// anonymous file in `dir` ([`spool::anonymous_file`]: 0600, unlinked
    /// at once); the lock is released, then the head and the users are
    /// handed to `sink`, decoded from the file. So the sink's formatting
    /// (most of an LDIF export's time) no longer holds writes. The file
    /// takes about the users' stored size on disk until it is read back;
    /// `dir` must be private (it holds password hashes and second-factor
    /// secrets).
    pub fn snapshot_spooled(&self, sink: &mut dyn SnapshotSink, dir: &Path) -> Result<()> {
        crate::blocking::assert_may_block("a store snapshot");
        let spool_error = |e: io::Error| {
            StoreError::Backend(format!("spooling a snapshot in {}: {e}", dir.display()))
        };
        let file = spool::anonymous_file(dir, "snapshot").map_err(spool_error)?;
        let mut out = BufWriter::with_capacity(SPOOL_BUFFER, file);
        let waited = Instant::now();
        let (head, users) = {
            let _quiet = self.exclusive();
            let started = Instant::now();
            let head = self.snapshot_head()?;
            let with_factors = self.users_with_second_factors()?;
            let mut users = 0usize;
            let mut frame = Vec::new();
            for entry in self.t.idx_username.iter() {
                let (_, id) = entry.map_err(backend)?;
                let id = UserId(keys::uuid(&id)?);
                let key = keys::user_key(id);
                // A name whose user is gone is left out, as a stream
                // leaves it.
                let Some(record) = self.t.users.get(key).map_err(backend)? else {
                    continue;
                };
                let hash = self.t.credentials.get(key).map_err(backend)?;
                let factors = match with_factors.contains(&id) {
                    true => Some(encode(
                        "second factors",
                        &Spooled::from(self.snapshot_factors(id, &with_factors)?),
                    )?),
                    false => None,
                };
                frame.clear();
                spool_frame(
                    &mut frame,
                    id,
                    [Some(&record), hash.as_deref(), factors.as_deref()],
                )
                .map_err(spool_error)?;
                out.write_all(&frame).map_err(spool_error)?;
                users += 1;
            }
            out.flush().map_err(spool_error)?;
            tracing::info!(
                users,
                groups = head.groups.len(),
                waited_ms = started.duration_since(waited).as_millis() as u64,
                writes_held_ms = started.elapsed().as_millis() as u64,
                "store snapshot taken (spooled)"
            );
            (head, users)
        };
        let mut file = out.into_inner().map_err(|e| spool_error(e.into_error()))?;
        file.rewind().map_err(spool_error)?;
        sink.head(head)?;
        let mut read = BufReader::with_capacity(SPOOL_BUFFER, file);
        let mut frame = Vec::new();
        for _ in 0..users {
            let (id, [record, hash, factors]) =
                unspool_frame(&mut read, &mut frame).map_err(spool_error)?;
            let mut su = SnapshotUser {
                user: decode(format_args!("user {id}"), record.unwrap_or_default())?,
                password_hash: hash.map(|h| password_hash_of(id, h)).transpose()?,
                second_factors: match factors {
                    Some(f) => decode::<Spooled>("spooled second factors", f)?.into(),
                    None => RawSecondFactors::default(),
                },
            };
            su.sort_canonically();
            sink.user(su)?;
        }
        Ok(())
    }
}

/// The spool's buffers.
const SPOOL_BUFFER: usize = 1 << 20;

/// Puts one user's frame in `frame`: its length (32 bits, little-endian),
/// the user's id, then each field as its length and its bytes, `u32::MAX`
/// for a field absent.
fn spool_frame(frame: &mut Vec<u8>, id: UserId, fields: [Option<&[u8]>; 3]) -> io::Result<()> {
    let too_large = || io::Error::other("a user's records are larger than 4 GiB");
    let len = |n: usize| u32::try_from(n).ok().filter(|n| *n != u32::MAX);
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(id.0.as_bytes());
    for field in fields {
        match field {
            Some(bytes) => {
                frame.extend_from_slice(&len(bytes.len()).ok_or_else(too_large)?.to_le_bytes());
                frame.extend_from_slice(bytes);
            }
            None => frame.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
    }
    let total = len(frame.len() - 4).ok_or_else(too_large)?;
    frame[..4].copy_from_slice(&total.to_le_bytes());
    Ok(())
}

/// Reads the next frame [`spool_frame`] wrote into `frame` (reused from
/// user to user) and returns its id and fields.
fn unspool_frame<'f>(
    read: &mut impl Read,
    frame: &'f mut Vec<u8>,
) -> io::Result<(UserId, [Option<&'f [u8]>; 3])> {
    let corrupt = || io::Error::other("a spooled user is cut short");
    let mut len = [0u8; 4];
    read.read_exact(&mut len)?;
    frame.resize(u32::from_le_bytes(len) as usize, 0);
    read.read_exact(frame)?;
    let (id, mut rest) = frame.split_first_chunk::<16>().ok_or_else(corrupt)?;
    let mut fields = [None; 3];
    for field in &mut fields {
        let (len, after) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
        let len = u32::from_le_bytes(*len);
        rest = after;
        if len != u32::MAX {
            let (bytes, after) = rest.split_at_checked(len as usize).ok_or_else(corrupt)?;
            *field = Some(bytes);
            rest = after;
        }
    }
    Ok((UserId(uuid::Uuid::from_bytes(*id)), fields))
}

/// A user's second factors in the spool, secrets included (the spool is
/// private and gone with its handle).
#[derive(Serialize, Deserialize)]
struct Spooled {
    devices: Vec<SpooledDevice>,
    app_passwords: Vec<(AppPassword, KeyedHash)>,
}

#[derive(Serialize, Deserialize)]
struct SpooledDevice {
    device: Device,
    totp_secret: Option<Vec<u8>>,
    totp_last_step: Option<u64>,
    static_tokens: Vec<KeyedHash>,
}

impl From<RawSecondFactors> for Spooled {
    fn from(f: RawSecondFactors) -> Self {
        Spooled {
            devices: f
                .devices
                .into_iter()
                .map(|d| SpooledDevice {
                    device: d.device,
                    totp_secret: d.totp_secret.map(|s| s.0),
                    totp_last_step: d.totp_last_step,
                    static_tokens: d.static_tokens,
                })
                .collect(),
            app_passwords: f
                .app_passwords
                .into_iter()
                .map(|a| (a.record, a.hash))
                .collect(),
        }
    }
}

impl From<Spooled> for RawSecondFactors {
    fn from(s: Spooled) -> Self {
        RawSecondFactors {
            devices: s
                .devices
                .into_iter()
                .map(|d| RawDevice {
                    device: d.device,
                    totp_secret: d.totp_secret.map(TotpSecret),
                    totp_last_step: d.totp_last_step,
                    static_tokens: d.static_tokens,
                })
                .collect(),
            app_passwords: s
                .app_passwords
                .into_iter()
                .map(|(record, hash)| RawAppPassword { record, hash })
                .collect(),
        }
    }
}
