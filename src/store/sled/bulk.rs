//! Bulk import into a store nobody else uses (the offline `import`): the
//! batch's new users, groups and memberships are written in chunks of
//! plain inserts, each tree's in key order, not in one transaction, so
//! memory stays bounded whatever the size of the import (a sled
//! transaction buffers every write; a million users needed 23 GiB).
//!
//! All or nothing still holds, through an undo journal and one commit
//! marker:
//!
//! 1. `meta/import_pending` is set, and the counters the import moves are
//!    noted in the `import_journal` tree.
//! 2. Each chunk first notes in the journal every key it will create
//!    (all of them absent before: a key that exists is a merge, done in
//!    step 3), one journal entry per user, group or membership, and
//!    flushes the journal, then writes the chunk. So the journal always
//!    covers what is on disk.
//! 3. What touches records that existed before (merges of existing users
//!    and groups, memberships added to existing groups, settings) runs as
//!    the ordinary batch transaction, which also bumps the membership
//!    epoch and removes the marker: that commit makes the import whole.
//!
//! Into a store without users, groups or memberships (a first load),
//! nothing but the counters is journaled: the marker says the store was
//! empty, and an undo empties the trees.
//!
//! Any error before step 3 commits, and a crash (found by
//! [`SledStore::recover_import`] when the store opens), undoes the journal:
//! the created keys are removed and the counters restored. The journal is
//! emptied once the marker is gone.
//!
//! The steps (begin, head and groups, users, memberships and counters)
//! are also taken one call at a time by an import whose users come before
//! its head is known (`overlapped.rs`).
//!
//! Nothing else may read or write the store meanwhile: readers would see
//! the import's first chunks before it commits. The offline CLI holds sled's
//! file lock, so no server runs; the running server imports through
//! [`SledStore::apply_batch`] instead.

use super::{
    backend, email_key, encode, keys, name_key, GroupId, Member, Result, SledStore, StoreError,
    UserId, EMPTY, FIRST_GID_NUMBER, FIRST_UID_NUMBER, META_MEMBERSHIP_EPOCH, META_NEXT_GID,
    META_NEXT_UID,
};
use crate::domain::folded_name;
use crate::store::import::{Batch, BatchMember, BatchMode, BatchReport, BatchUser};
use std::collections::{HashMap, HashSet};

/// Set in `meta` from the first bulk write until the commit.
pub(super) const META_IMPORT_PENDING: &[u8] = b"import_pending";
/// Name of the undo journal's tree.
const JOURNAL_TREE: &str = "import_journal";
/// Keys per chunk (some 2,000 users). Measured at 100k users when chunks
/// were sled batches (sled's memory grows with the size of a batch):
/// chunks of 100,000 keys peaked at 870 MiB and took 15 s, chunks of
/// 10,000 keys 380 MiB and 9 s (2,000 and 5,000 were no better). Chunks
/// are plain inserts now; the size still bounds the journal's flushes and
/// the memory a chunk holds.
const CHUNK_KEYS: usize = 10_000;
/// The keys of a tree's chunk are written in runs of this many, the first
/// [`PACKED_FIRST`] of each run before the others (`insert_sorted`).
const PACKED_RUN: usize = 16;
const PACKED_FIRST: usize = 9;

/// Which tree a journal entry undoes (its key's first byte).
#[derive(Clone, Copy)]
enum Tag {
    Users = 1,
    Groups,
    Credentials,
    IdxUsername,
    IdxEmail,
    IdxUid,
    IdxGroupName,
    IdxGid,
    Members,
    MemberOf,
    Meta,
}

impl Tag {
    const ALL: [Tag; 11] = [
        Tag::Users,
        Tag::Groups,
        Tag::Credentials,
        Tag::IdxUsername,
        Tag::IdxEmail,
        Tag::IdxUid,
        Tag::IdxGroupName,
        Tag::IdxGid,
        Tag::Members,
        Tag::MemberOf,
        Tag::Meta,
    ];
}

/// Journal value of a key that did not exist before the import.
const ABSENT: &[u8] = &[0];
/// The marker's value when the store held no user, group or membership
/// before the import.
const WAS_EMPTY: &[u8] = b"empty";
/// First byte of the journal key of a created entity's keys (the others
/// start with the [`Tag`] of the one key they note).
const CREATED: u8 = 0xff;

/// The (key, value) pairs a chunk creates in one tree.
type Writes = Vec<(Vec<u8>, Vec<u8>)>;

/// One chunk of writes: the journal entries first, then per tree.
struct Chunk {
    /// False when the store held no user, group or membership before the
    /// import: an undo then empties the trees, and no entry is noted.
    journaled: bool,
    journal: sled::Batch,
    /// Per tree, the (key, value) pairs to create, in the order given;
    /// [`SledStore::write_chunk`] inserts each tree's in key order.
    writes: Vec<Writes>,
    /// The keys of the entity being written: (tag, length, key) each.
    entity: Vec<u8>,
    /// Number of the next journal entry (they never repeat in one import).
    seq: u64,
    len: usize,
}

impl Chunk {
    fn new(journaled: bool, seq: u64) -> Chunk {
        Chunk {
            journaled,
            journal: sled::Batch::default(),
            writes: Tag::ALL.iter().map(|_| Vec::new()).collect(),
            entity: Vec::new(),
            seq,
            len: 0,
        }
    }

    /// Creates `key` in the tree of `tag` (absent before), as part of the
    /// entity that [`Chunk::end_entity`] ends.
    fn create(&mut self, tag: Tag, key: &[u8], value: &[u8]) {
        self.writes[tag as usize - 1].push((key.to_vec(), value.to_vec()));
        self.len += 1;
        self.note(tag, key);
    }

    /// Notes `key` of the tree of `tag` in the current journal entry
    /// without writing it (the caller writes it after the chunk).
    fn note(&mut self, tag: Tag, key: &[u8]) {
        if !self.journaled {
            return;
        }
        self.entity.push(tag as u8);
        // Keys are ids, names and addresses: far below 64 KiB.
        self.entity
            .extend_from_slice(&u16::try_from(key.len()).unwrap_or(u16::MAX).to_be_bytes());
        self.entity.extend_from_slice(key);
    }

    /// Notes the keys of one user, group or membership as one journal
    /// entry.
    fn end_entity(&mut self) {
        if !self.journaled {
            return;
        }
        let mut jkey = [CREATED; 9];
        jkey[1..].copy_from_slice(&self.seq.to_be_bytes());
        self.seq += 1;
        self.journal.insert(&jkey, std::mem::take(&mut self.entity));
        self.len += 1;
    }
}

/// The (tag, key) pairs of a journal entry written by
/// [`Chunk::end_entity`].
fn entity_keys(mut v: &[u8]) -> Result<Vec<(Tag, &[u8])>> {
    let corrupt = || StoreError::Backend("corrupt import journal".into());
    let mut out = Vec::new();
    while let [tag, a, b, rest @ ..] = v {
        let len = usize::from(u16::from_be_bytes([*a, *b]));
        let tag = *Tag::ALL
            .iter()
            .find(|t| **t as u8 == *tag)
            .ok_or_else(corrupt)?;
        let key = rest.get(..len).ok_or_else(corrupt)?;
        out.push((tag, key));
        v = &rest[len..];
    }
    if !v.is_empty() {
        return Err(corrupt());
    }
    Ok(out)
}

/// What the bulk phase learned, for the transaction that finishes it.
pub(super) struct Created {
    /// The store held no user, group or membership when the import began:
    /// every key found in the trees is one this import wrote, so the checks
    /// below answer without a lookup in sled (a first load of a million
    /// users spent some 4 million reads finding nothing).
    fresh: bool,
    users: HashMap<Vec<u8>, UserId>,
    groups: HashMap<Vec<u8>, GroupId>,
    /// Ids and uidNumbers this import gave users (kept whole: 16 and 4
    /// bytes a user), and gidNumbers it gave groups. Allocation avoids
    /// both kinds of number, as the transaction does.
    ids: HashSet<UserId>,
    uids: HashSet<u32>,
    gids: HashSet<u32>,
    /// Hashes of the email keys this import wrote: a miss is exact; a hit
    /// is checked against `pending_emails`, `flight_emails` and the index.
    emails: HashSet<u64>,
    email_hasher: std::collections::hash_map::RandomState,
    /// Email keys of the current chunk (not yet in the index).
    pending_emails: HashSet<Vec<u8>>,
    /// Email keys of the chunk being written (maybe not yet in the index).
    flight_emails: HashSet<Vec<u8>>,
    report: BatchReport,
}

impl Created {
    /// The first number from `n` this import gave no user or group: in a
    /// [`Created::fresh`] store, the first that neither number index
    /// holds ([`SledStore::first_free`] without walking the indexes).
    fn first_unused(&self, mut n: u32) -> u32 {
        while n < u32::MAX && (self.uids.contains(&n) || self.gids.contains(&n)) {
            n += 1;
        }
        n
    }

    fn email_hash(&self, key: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.email_hasher.hash_one(key)
    }
}

/// A bulk import between its steps ([`SledStore::bulk_begin`],
/// [`SledStore::bulk_head`], [`SledStore::bulk_users`],
/// [`SledStore::bulk_end`]).
pub(super) struct Bulk {
    /// What touches records that existed before, for the transaction.
    rest: Batch,
    created: Created,
    /// The chunk being filled.
    chunk: Chunk,
    /// When the import began (a new password's change time).
    at: crate::store::Timestamp,
}

impl SledStore {
    fn tree_of(&self, tag: Tag) -> &sled::Tree {
        let t = &self.t;
        match tag {
            Tag::Users => &t.users,
            Tag::Groups => &t.groups,
            Tag::Credentials => &t.credentials,
            Tag::IdxUsername => &t.idx_username,
            Tag::IdxEmail => &t.idx_email,
            Tag::IdxUid => &t.idx_uid,
            Tag::IdxGroupName => &t.idx_group_name,
            Tag::IdxGid => &t.idx_gid,
            Tag::Members => &t.members,
            Tag::MemberOf => &t.member_of,
            Tag::Meta => &t.meta,
        }
    }

    pub(super) fn journal(&self) -> Result<sled::Tree> {
        self.t.db.open_tree(JOURNAL_TREE).map_err(backend)
    }

    /// Writes a chunk: journal, flush, then the records, each tree's in
    /// key order. Plain inserts, not a sled batch: a batch is a hash map
    /// (its keys land in random order, and it costs a copy of each), and
    /// the journal, not the batch, makes the import all or nothing.
    fn write_chunk(&self, chunk: &mut Chunk) -> Result<()> {
        if chunk.len == 0 {
            return Ok(());
        }
        let done = std::mem::replace(chunk, Chunk::new(chunk.journaled, chunk.seq));
        if done.journaled {
            self.journal()?.apply_batch(done.journal).map_err(backend)?;
            self.t.db.flush().map_err(backend)?;
        }
        // One writer: sled's inserts into different trees on two threads
        // cost more CPU than they saved time on two cores, where the
        // reader and the parser run beside the writer.
        let written = (|| -> Result<()> {
            for (tag, mut writes) in Tag::ALL.iter().copied().zip(done.writes) {
                // Of two writes of one key the later one wins: reversed,
                // the stable sort puts it first, and `dedup_by` keeps it.
                writes.reverse();
                writes.sort_by(|a, b| a.0.cmp(&b.0));
                writes.dedup_by(|later, kept| later.0 == kept.0);
                self.insert_sorted(tag, &writes, |(k, v)| (k, v))?;
            }
            Ok(())
        })();
        // Records kept before the chunk are checked again at their next
        // read, even by this import's own reads.
        self.t.wrote();
        written
    }

    /// Inserts `writes` (by `kv`, (key, value) pairs in ascending key
    /// order, no key twice) into the tree of `tag`, in the order that
    /// leaves sled's leaves full: 9 of every [`PACKED_RUN`] keys, then the
    /// other 7.
    ///
    /// sled 0.34 splits a leaf of more than 16 keys and keeps 9 in the
    /// left half; each split also copies and rewrites the parent index
    /// node (up to 256 children). Keys written in ascending order past a
    /// tree's last key (ids are time-ordered, uidNumbers mostly rise) so
    /// leave every leaf with 9 keys, a split every 9 inserts. The first
    /// pass leaves those leaves 9 keys each, spanning 16 of the chunk's
    /// keys; the second adds the 7 between them without a split. Measured
    /// in a model of sled's rule at 100k appended keys: 6,258 splits
    /// instead of 11,110, leaves of 16 keys instead of 9. Keys that land
    /// between stored ones split as often either way. The order never
    /// changes what is stored: every key is written once.
    fn insert_sorted<W>(
        &self,
        tag: Tag,
        writes: &[W],
        kv: impl Fn(&W) -> (&[u8], &[u8]),
    ) -> Result<()> {
        let tree = self.tree_of(tag);
        let first = |i: &usize| i % PACKED_RUN < PACKED_FIRST;
        let order = (0..writes.len())
            .filter(first)
            .chain((0..writes.len()).filter(|i| !first(i)));
        for i in order {
            let (k, v) = kv(&writes[i]);
            tree.insert(k, v).map_err(backend)?;
        }
        Ok(())
    }

    /// An import whose users come from `users` (read once, in order); see
    /// the module documentation. `batch.users` must be empty (checked by
    /// [`crate::store::Store::apply_batch_streamed`]), and `batch.next_uid`
    /// past every fixed uidNumber of the stream.
    pub fn apply_batch_streamed(
        &self,
        batch: &Batch,
        users: &mut dyn Iterator<Item = Result<BatchUser>>,
    ) -> Result<BatchReport> {
        crate::store::Store::check_batch(batch)?;
        self.recover_import()?;
        self.check_batch_cycles(batch)?;
        let out = self
            .bulk(batch, users)
            .and_then(|(rest, created)| self.finish_bulk(&rest, created));
        self.end_import(out)
    }

    /// Ends a bulk import that began (the marker is set): committed, the
    /// journal is dropped; failed, the import is undone.
    pub(super) fn end_import(&self, out: Result<BatchReport>) -> Result<BatchReport> {
        match out {
            Ok(report) => {
                self.drop_journal()?;
                self.committed(Ok(report))
            }
            Err(e) => Err(self.undone(e)),
        }
    }

    /// Undoes a bulk import that failed with `e`, and returns `e` (noting
    /// an undo that failed too: the next open undoes it).
    pub(super) fn undone(&self, e: StoreError) -> StoreError {
        match self.undo_import() {
            Ok(()) => e,
            Err(undo) => StoreError::Backend(format!(
                "{e}; undoing the partial import failed too ({undo}); it is undone when the \
                 store is opened next"
            )),
        }
    }

    /// Undoes an import that did not commit (a crash during a bulk
    /// import), if any. Called when the store opens and before a bulk
    /// import.
    pub(super) fn recover_import(&self) -> Result<()> {
        if self
            .t
            .meta
            .get(META_IMPORT_PENDING)
            .map_err(backend)?
            .is_some()
        {
            tracing::warn!("undoing an import that did not finish");
            self.undo_import()?;
        } else if !self.journal()?.is_empty() {
            // Committed; only the journal's clean-up was cut short.
            self.drop_journal()?;
        }
        Ok(())
    }

    /// Removes the journal (faster than deleting its entries one by one).
    fn drop_journal(&self) -> Result<()> {
        self.t.db.drop_tree(JOURNAL_TREE).map_err(backend)?;
        Ok(())
    }

    /// Restores every journaled key, then drops the marker and the journal.
    pub(super) fn undo_import(&self) -> Result<()> {
        let was_empty = self
            .t
            .meta
            .get(META_IMPORT_PENDING)
            .map_err(backend)?
            .as_deref()
            == Some(WAS_EMPTY);
        if was_empty {
            for tag in Tag::ALL {
                if !matches!(tag, Tag::Meta) {
                    self.tree_of(tag).clear().map_err(backend)?;
                }
            }
        }
        let journal = self.journal()?;
        for entry in journal.iter() {
            let (k, old) = entry.map_err(backend)?;
            let Some((&tag, key)) = k.split_first() else {
                continue;
            };
            if tag == CREATED {
                for (tag, key) in entity_keys(&old)? {
                    self.tree_of(tag).remove(key).map_err(backend)?;
                }
                continue;
            }
            let Some(tag) = Tag::ALL.iter().find(|t| **t as u8 == tag) else {
                return Err(StoreError::Backend("corrupt import journal".into()));
            };
            let tree = self.tree_of(*tag);
            match old.split_first() {
                Some((1, before)) => tree.insert(key, before).map(|_| ()),
                _ => tree.remove(key).map(|_| ()),
            }
            .map_err(backend)?;
        }
        self.t.meta.remove(META_IMPORT_PENDING).map_err(backend)?;
        self.t.db.flush().map_err(backend)?;
        self.t.wrote();
        drop(journal);
        self.drop_journal()?;
        self.t.db.flush().map_err(backend)?;
        Ok(())
    }

    /// Notes the current values of the counters in the journal, sets the
    /// marker, and flushes both. Returns whether created keys must be
    /// journaled: not when the store holds no user, group or membership
    /// (the marker says so, and an undo empties the trees instead).
    fn begin_bulk(&self) -> Result<bool> {
        let t = &self.t;
        let empty = t.users.is_empty() && t.groups.is_empty() && t.members.is_empty();
        self.drop_journal()?;
        let journal = self.journal()?;
        for key in [META_NEXT_UID, META_NEXT_GID, META_MEMBERSHIP_EPOCH] {
            let old = self.t.meta.get(key).map_err(backend)?;
            let value = match old {
                Some(v) => [&[1u8][..], &v].concat(),
                None => ABSENT.to_vec(),
            };
            journal
                .insert([&[Tag::Meta as u8][..], key].concat(), value)
                .map_err(backend)?;
        }
        self.t.db.flush().map_err(backend)?;
        let marker = if empty { WAS_EMPTY } else { EMPTY };
        self.t
            .meta
            .insert(META_IMPORT_PENDING, marker)
            .map_err(backend)?;
        self.t.db.flush().map_err(backend)?;
        Ok(!empty)
    }

    fn counter(&self, key: &[u8], first: u32) -> Result<u32> {
        match self.t.meta.get(key).map_err(backend)? {
            Some(b) => keys::number(&b),
            None => Ok(first),
        }
    }

    /// The bulk phase: new groups, new users, memberships of new groups.
    /// Returns what touches existing records (for the transaction) and
    /// what was created.
    fn bulk(
        &self,
        batch: &Batch,
        users: &mut dyn Iterator<Item = Result<BatchUser>>,
    ) -> Result<(Batch, Created)> {
        let mut bulk = self.bulk_begin(batch.mode)?;
        let (mut next_uid, next_gid) = self.bulk_head(&mut bulk, batch)?;
        self.bulk_users(&mut bulk, users, Some(&mut next_uid))?;
        self.bulk_end(bulk, batch, next_uid, next_gid)
    }

    /// The first step of a bulk import: the marker set, the counters
    /// journaled.
    pub(super) fn bulk_begin(&self, mode: BatchMode) -> Result<Bulk> {
        let journaled = self.begin_bulk()?;
        Ok(Bulk {
            rest: Batch {
                mode,
                ..Batch::default()
            },
            created: Created {
                fresh: !journaled,
                users: HashMap::new(),
                groups: HashMap::new(),
                ids: HashSet::new(),
                uids: HashSet::new(),
                gids: HashSet::new(),
                emails: HashSet::new(),
                email_hasher: Default::default(),
                pending_emails: HashSet::new(),
                flight_emails: HashSet::new(),
                report: BatchReport::default(),
            },
            chunk: Chunk::new(journaled, 0),
            at: crate::store::now(),
        })
    }

    /// The batch's head: the counters, the new groups (written), and what
    /// the transaction takes from the batch besides users and groups.
    /// Returns the next uidNumber and gidNumber to allocate.
    pub(super) fn bulk_head(&self, bulk: &mut Bulk, batch: &Batch) -> Result<(u32, u32)> {
        let t = &self.t;
        let Bulk {
            rest,
            created,
            chunk,
            ..
        } = bulk;
        if batch.mode != rest.mode {
            return Err(StoreError::Invalid(
                "the import's batch is not of the mode it began with".into(),
            ));
        }
        rest.settings = batch.settings.clone();
        rest.next_uid = batch.next_uid;
        rest.next_gid = batch.next_gid;
        rest.second_factors = batch.second_factors.clone();
        rest.group_policies = batch.group_policies.clone();
        // Counters past every fixed number, as the transaction does.
        let max_gid = batch
            .groups
            .iter()
            .filter(|g| !g.allocate_gid)
            .map(|g| g.group.gid_number.saturating_add(1))
            .max();
        let next_uid = self
            .counter(META_NEXT_UID, FIRST_UID_NUMBER)?
            .max(batch.next_uid.unwrap_or(0));
        let mut next_gid = self
            .counter(META_NEXT_GID, FIRST_GID_NUMBER)?
            .max(batch.next_gid.unwrap_or(0))
            .max(max_gid.unwrap_or(0));

        for bg in &batch.groups {
            let key = name_key(&bg.group.name);
            if created.groups.contains_key(&key) {
                return Err(conflict(format!("group {} appears twice", bg.group.name)));
            }
            if t.idx_group_name.contains_key(&key).map_err(backend)? {
                rest.groups.push(bg.clone());
                continue;
            }
            let mut g = bg.group.clone();
            if t.groups
                .contains_key(keys::group_key(g.id))
                .map_err(backend)?
            {
                return Err(conflict(format!(
                    "group id {} of {} is already used by another group",
                    g.id, g.name
                )));
            }
            if bg.allocate_gid {
                let (gids, uids) = (&created.gids, &created.uids);
                // Users written before the head (an overlapped import)
                // do not hold numbers back from groups: imported after
                // the groups, as they are otherwise, they would not.
                g.gid_number = self.allocate(
                    &mut next_gid,
                    FIRST_GID_NUMBER,
                    "gid",
                    created.fresh,
                    |n| gids.contains(&n),
                    |n| uids.contains(&n),
                )?;
            } else if created.gids.contains(&g.gid_number)
                || t.idx_gid
                    .contains_key(keys::number_key(g.gid_number))
                    .map_err(backend)?
            {
                return Err(conflict(format!(
                    "gidNumber {} of group {} already belongs to another group",
                    g.gid_number, g.name
                )));
            }
            created.gids.insert(g.gid_number);
            let id = keys::group_key(g.id);
            chunk.create(Tag::Groups, &id, &encode("group", &g)?);
            chunk.create(Tag::IdxGroupName, &key, &id);
            chunk.create(Tag::IdxGid, &keys::number_key(g.gid_number), &id);
            chunk.end_entity();
            created.groups.insert(key, g.id);
            created.report.groups_created.push(g.name.clone());
        }
        self.write_chunk(chunk)?;
        Ok((next_uid, next_gid))
    }

    /// Users, written in chunks. `next_uid` is `None` before the batch's
    /// head is known: a user that needs a uidNumber allocated is refused
    /// then (its number must be past every fixed one of the import).
    pub(super) fn bulk_users(
        &self,
        bulk: &mut Bulk,
        users: &mut dyn Iterator<Item = Result<BatchUser>>,
        mut next_uid: Option<&mut u32>,
    ) -> Result<()> {
        let Bulk {
            rest,
            created,
            chunk,
            at,
        } = bulk;
        let restore = rest.mode == BatchMode::Restore;
        // A full chunk is written by another thread while this one reads
        // and checks the next users: the reading was a third of the
        // writing's time, spent with the writer idle. One thread writes
        // every chunk (a thread per chunk started with fresh allocator
        // pages each time), one at a time and in order, so the journal
        // still covers what is on disk. The hand-off is a rendezvous: a
        // chunk is taken only once the one before it is written, so at
        // most one is in flight (`flight_emails`). An error returns only
        // once the writer has stopped (the scope joins it), before the
        // undo.
        std::thread::scope(|s| -> Result<()> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(0);
            let writer = s.spawn(move || -> Result<()> {
                for mut full in rx {
                    self.write_chunk(&mut full)?;
                }
                Ok(())
            });
            let read = (|| -> Result<()> {
                for bu in users {
                    self.bulk_user(
                        bu?,
                        chunk,
                        created,
                        rest,
                        next_uid.as_deref_mut(),
                        *at,
                        restore,
                    )?;
                    if chunk.len >= CHUNK_KEYS {
                        let next = Chunk::new(chunk.journaled, chunk.seq);
                        let full = std::mem::replace(chunk, next);
                        if tx.send(full).is_err() {
                            // The writer stopped at an error: its result
                            // says which.
                            return Ok(());
                        }
                        created.flight_emails = std::mem::take(&mut created.pending_emails);
                    }
                }
                Ok(())
            })();
            drop(tx);
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(StoreError::Backend("an import writer panicked".into())));
            written.and(read)
        })?;
        self.write_chunk(chunk)?;
        created.flight_emails.clear();
        created.pending_emails.clear();
        Ok(())
    }

    /// The last step before the transaction: the memberships of the new
    /// groups and the counters.
    pub(super) fn bulk_end(
        &self,
        mut bulk: Bulk,
        batch: &Batch,
        next_uid: u32,
        next_gid: u32,
    ) -> Result<(Batch, Created)> {
        self.bulk_memberships(batch, &mut bulk.created, &mut bulk.rest, &mut bulk.chunk)?;
        // Past the numbers now in use: an import often fills a range the
        // other counter will walk (users numbered 2002.. up to a million,
        // groups counted from 4000), and the next create_group would walk
        // it inside a transaction (8 s on the first start after a
        // million-user import, in the bootstrap).
        // A fresh store's numbers are all in `created` (a million-user
        // import's uidNumbers took 0.6 s to walk in the index).
        for (key, n) in [(META_NEXT_UID, next_uid), (META_NEXT_GID, next_gid)] {
            let n = if bulk.created.fresh {
                bulk.created.first_unused(n)
            } else {
                self.first_free(n)?
            };
            self.t
                .meta
                .insert(key, &keys::number_key(n))
                .map_err(backend)?;
        }
        Ok((bulk.rest, bulk.created))
    }

    /// The next free number from `next` (not in either number index, nor
    /// `pending`), advancing `next` past it. `fresh`: the indexes hold
    /// only numbers `pending` knows (see [`Created::fresh`]). `ours`: a
    /// uidNumber this import wrote that does not count as taken.
    fn allocate(
        &self,
        next: &mut u32,
        first: u32,
        what: &str,
        fresh: bool,
        pending: impl Fn(u32) -> bool,
        ours: impl Fn(u32) -> bool,
    ) -> Result<u32> {
        let t = &self.t;
        let (n, after) = crate::domain::rules::allocate_number(
            *next,
            first,
            |n| {
                if pending(n) {
                    return Ok(true);
                }
                if fresh {
                    return Ok(false);
                }
                let key = keys::number_key(n);
                Ok((t.idx_uid.contains_key(key).map_err(backend)? && !ours(n))
                    || t.idx_gid.contains_key(key).map_err(backend)?)
            },
            || StoreError::Invalid(format!("{what} numbers are exhausted")),
        )?;
        *next = after;
        Ok(n)
    }

    /// One streamed user: created in `chunk`, or (it exists) left to the
    /// transaction in `rest`.
    #[allow(clippy::too_many_arguments)]
    fn bulk_user(
        &self,
        bu: BatchUser,
        chunk: &mut Chunk,
        created: &mut Created,
        rest: &mut Batch,
        next_uid: Option<&mut u32>,
        at: crate::store::Timestamp,
        restore: bool,
    ) -> Result<()> {
        let t = &self.t;
        let u = &bu.user;
        let mut unused = 0;
        let next_uid = match next_uid {
            Some(n) => n,
            None if bu.allocate_uid => {
                return Err(StoreError::Invalid(format!(
                    "user {} needs a uidNumber, which is allocated only once the import's \
                     head is known",
                    u.username
                )))
            }
            None => &mut unused,
        };
        crate::store::validate::name("user", &u.username)?;
        if let Some(e) = &u.email {
            crate::store::validate::email(e)?;
        }
        if let Some(n) = &u.full_name {
            crate::store::validate::full_name(n)?;
        }
        if bu.password_hash.as_deref() == Some("") {
            return Err(StoreError::Invalid(format!(
                "the password hash of {} is empty",
                u.username
            )));
        }
        let key = name_key(&u.username);
        if created.users.contains_key(&key) {
            return Err(conflict(format!("user {} appears twice", u.username)));
        }
        if !created.fresh && t.idx_username.contains_key(&key).map_err(backend)? {
            rest.users.push(bu);
            return Ok(());
        }
        let mut u = bu.user;
        if created.ids.contains(&u.id)
            || (!created.fresh
                && t.users
                    .contains_key(keys::user_key(u.id))
                    .map_err(backend)?)
        {
            return Err(conflict(format!(
                "user id {} of {} is already used by another user",
                u.id, u.username
            )));
        }
        if bu.allocate_uid {
            let (uids, gids) = (&created.uids, &created.gids);
            u.uid_number = self.allocate(
                next_uid,
                FIRST_UID_NUMBER,
                "uid",
                created.fresh,
                |n| uids.contains(&n) || gids.contains(&n),
                |_| false,
            )?;
            if u.gid_number == 0 {
                u.gid_number = u.uid_number;
            }
        } else if created.uids.contains(&u.uid_number)
            || (!created.fresh
                && t.idx_uid
                    .contains_key(keys::number_key(u.uid_number))
                    .map_err(backend)?)
        {
            return Err(conflict(format!(
                "uidNumber {} of user {} already belongs to another user",
                u.uid_number, u.username
            )));
        }
        let email = u.email.as_deref().map(email_key);
        let email_hash = email.as_deref().map(|ek| created.email_hash(ek));
        if let (Some(ek), Some(h)) = (&email, email_hash) {
            // Only a hash this import gave before, or a store that held
            // users, needs the exact check.
            let check = !created.fresh || created.emails.contains(&h);
            if check
                && (created.pending_emails.contains(ek)
                    || created.flight_emails.contains(ek)
                    || t.idx_email.contains_key(ek).map_err(backend)?)
            {
                return Err(conflict(format!(
                    "email {} of user {} already belongs to another user",
                    u.email.as_deref().unwrap_or_default(),
                    u.username
                )));
            }
        }
        let id = keys::user_key(u.id);
        if let Some(hash) = &bu.password_hash {
            chunk.create(Tag::Credentials, &id, hash.as_bytes());
            if !restore {
                u.pwd_changed = Some(u.pwd_changed.unwrap_or(at));
            }
            created.report.passwords_set.push(u.username.clone());
        }
        chunk.create(Tag::Users, &id, &encode("user", &u)?);
        chunk.create(Tag::IdxUsername, &key, &id);
        if let (Some(ek), Some(h)) = (email, email_hash) {
            chunk.create(Tag::IdxEmail, &ek, &id);
            created.emails.insert(h);
            created.pending_emails.insert(ek);
        }
        chunk.create(Tag::IdxUid, &keys::number_key(u.uid_number), &id);
        chunk.end_entity();
        created.uids.insert(u.uid_number);
        created.ids.insert(u.id);
        created.users.insert(key, u.id);
        created.report.users_created.push(u.username);
        Ok(())
    }

    /// The memberships of the new groups, collected, sorted and written
    /// tree by tree in key order: both membership trees are then built by
    /// appending (in batch order, `member_of` took one pass over the users
    /// per group). A new group has no stored members, so the sort also
    /// drops the memberships the batch repeats, without a lookup. Those of
    /// existing groups go to `rest`. Memory: 33 bytes a membership, twice.
    fn bulk_memberships(
        &self,
        batch: &Batch,
        created: &mut Created,
        rest: &mut Batch,
        chunk: &mut Chunk,
    ) -> Result<()> {
        let mut members = Vec::new();
        // A group's memberships come one after another: its id is looked
        // up once for them.
        let mut last: Option<(&str, Option<GroupId>)> = None;
        for (group, member) in &batch.memberships {
            let gid = match last {
                Some((name, gid)) if name == group.as_str() => gid,
                _ => {
                    let gid = created.groups.get(folded_name(group).as_bytes()).copied();
                    last = Some((group, gid));
                    gid
                }
            };
            let Some(gid) = gid else {
                rest.memberships.push((group.clone(), member.clone()));
                continue;
            };
            let m = self.bulk_member(member, created)?;
            if m == Member::Group(gid) {
                return Err(StoreError::Invalid(format!(
                    "import conflict: group {group} cannot contain itself"
                )));
            }
            members.push(keys::membership(gid, m));
        }
        members.sort_unstable();
        members.dedup();
        created.report.memberships_added += members.len();
        // The journal first: it covers what is on disk.
        if chunk.journaled {
            for key in &members {
                chunk.note(Tag::Members, key);
                chunk.note(Tag::MemberOf, &keys::reversed(key));
                chunk.end_entity();
                if chunk.len >= CHUNK_KEYS {
                    self.write_chunk(chunk)?;
                }
            }
            self.write_chunk(chunk)?;
        }
        // The two trees side by side: nothing else runs now (the users
        // are written), and each tree's inserts keep one core busy.
        std::thread::scope(|s| {
            let other = s.spawn(|| self.insert_sorted(Tag::Members, &members, |k| (k, EMPTY)));
            let mut member_of: Vec<_> = members.iter().map(keys::reversed).collect();
            member_of.sort_unstable();
            let mine = self.insert_sorted(Tag::MemberOf, &member_of, |k| (k, EMPTY));
            let theirs = other
                .join()
                .unwrap_or_else(|_| Err(StoreError::Backend("an import writer panicked".into())));
            mine.and(theirs)
        })
    }

    /// A member of a new group: one the import created, or one stored.
    fn bulk_member(&self, member: &BatchMember, created: &Created) -> Result<Member> {
        let t = &self.t;
        let (name, by_name, index) = match member {
            BatchMember::User(n) => (n, None, &t.idx_username),
            BatchMember::Group(n) => (n, Some(()), &t.idx_group_name),
        };
        let key = folded_name(name);
        let key = key.as_bytes();
        let made = match by_name {
            None => created.users.get(key).map(|id| Member::User(*id)),
            Some(()) => created.groups.get(key).map(|id| Member::Group(*id)),
        };
        if let Some(m) = made {
            return Ok(m);
        }
        let Some(id) = index.get(key).map_err(backend)? else {
            let what = if by_name.is_none() { "user" } else { "group" };
            return Err(StoreError::NotFound(format!("{what} {name}")));
        };
        let id = keys::uuid(&id)?;
        Ok(match by_name {
            None => Member::User(UserId(id)),
            Some(()) => Member::Group(GroupId(id)),
        })
    }

    /// The transaction over what existed before; it removes the marker,
    /// so its commit is the import's.
    pub(super) fn finish_bulk(&self, rest: &Batch, created: Created) -> Result<BatchReport> {
        let mut report = self.apply_batch_committing_import(rest)?;
        let mut c = created.report;
        c.users_created.append(&mut report.users_created);
        c.users_updated.append(&mut report.users_updated);
        c.users_unchanged.append(&mut report.users_unchanged);
        c.groups_created.append(&mut report.groups_created);
        c.groups_updated.append(&mut report.groups_updated);
        c.groups_unchanged.append(&mut report.groups_unchanged);
        c.memberships_added += report.memberships_added;
        c.passwords_set.append(&mut report.passwords_set);
        c.passwords_kept.append(&mut report.passwords_kept);
        c.settings_set += report.settings_set;
        c.devices_restored += report.devices_restored;
        c.app_passwords_restored += report.app_passwords_restored;
        c.group_policies_set += report.group_policies_set;
        Ok(c)
    }
}

#[cfg(test)]
impl SledStore {
    /// Every key and value of the trees an import writes (with `meta`),
    /// for tests that an undone import left them byte for byte as they
    /// were.
    pub(super) fn import_trees(&self) -> Vec<(u8, sled::IVec, sled::IVec)> {
        Tag::ALL
            .iter()
            .flat_map(|&tag| {
                self.tree_of(tag)
                    .iter()
                    .map(move |kv| kv.map(|(k, v)| (tag as u8, k, v)))
            })
            .collect::<std::result::Result<_, _>>()
            .expect("sled")
    }
}

fn conflict(msg: String) -> StoreError {
    StoreError::AlreadyExists(format!("import conflict: {msg}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{batch_group, bulk_name, bulk_user};
    use crate::store::import::BatchMode;
    use crate::store::{Group, NewUser, User};

    /// More users than two chunks hold (five keys each).
    const MANY: usize = 2 * CHUNK_KEYS / 5 + 500;

    /// A store holding user `old` (in group `staff`).
    fn seeded(s: &SledStore) -> (User, Group) {
        let old = s
            .create_user(NewUser {
                username: "old".into(),
                ..NewUser::default()
            })
            .unwrap();
        let staff = s.create_group("staff", None).unwrap();
        s.add_member(staff.id, Member::User(old.id)).unwrap();
        (old, staff)
    }

    fn nothing_pending(s: &SledStore) {
        assert!(s.t.meta.get(META_IMPORT_PENDING).unwrap().is_none());
        assert!(s.journal().unwrap().is_empty());
    }

    #[test]
    fn a_chunk_writes_every_key_once_and_the_later_of_two_writes_wins() {
        // Lengths around the packed runs, appended after a first chunk
        // and written between its keys.
        for n in [0, 1, 8, 9, 15, 16, 17, 25, 32, 33, 1_000] {
            let s = SledStore::temporary().unwrap();
            let key = |i: usize| format!("chunk-test/{i:06}").into_bytes();
            let mut first = Chunk::new(false, 0);
            for i in (0..2 * n).step_by(2) {
                first.create(Tag::Meta, &key(i), b"first");
            }
            s.write_chunk(&mut first).unwrap();
            let mut chunk = Chunk::new(false, 0);
            for i in (1..2 * n).step_by(2).chain(2 * n..3 * n) {
                chunk.create(Tag::Meta, &key(i), b"old");
                chunk.create(Tag::Meta, &key(i), format!("v{i}").as_bytes());
            }
            s.write_chunk(&mut chunk).unwrap();
            let got: Vec<(Vec<u8>, Vec<u8>)> =
                s.t.meta
                    .scan_prefix(b"chunk-test/")
                    .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
                    .collect();
            let want: Vec<(Vec<u8>, Vec<u8>)> = (0..3 * n)
                .map(|i| {
                    let v = if i < 2 * n && i % 2 == 0 {
                        "first".to_string()
                    } else {
                        format!("v{i}")
                    };
                    (key(i), v.into_bytes())
                })
                .collect();
            assert!(got == want, "{n} keys a chunk");
        }
    }

    #[test]
    fn a_streamed_import_writes_new_records_in_chunks_and_merges_the_rest() {
        let s = SledStore::temporary().unwrap();
        let (old, staff) = seeded(&s);
        let epoch = s.stored_epoch().unwrap();
        let batch = Batch {
            mode: BatchMode::Merge,
            groups: vec![batch_group("big"), batch_group("staff")],
            memberships: vec![
                ("big".into(), BatchMember::User("old".into())),
                ("big".into(), BatchMember::User(bulk_name(1))),
                ("big".into(), BatchMember::User(bulk_name(MANY))),
                ("big".into(), BatchMember::Group("staff".into())),
                ("staff".into(), BatchMember::User(bulk_name(2))),
            ],
            ..Batch::default()
        };
        let mut users = (1..=MANY)
            .map(|i| Ok(bulk_user(i, None)))
            .chain(std::iter::once(Ok(BatchUser {
                user: User {
                    username: "OLD".into(),
                    ..bulk_user(0, None).user
                },
                ..bulk_user(0, None)
            })));
        let report = s.apply_batch_streamed(&batch, &mut users).unwrap();
        assert_eq!(report.users_created.len(), MANY);
        assert_eq!(report.users_unchanged.len() + report.users_updated.len(), 1);
        assert_eq!(report.groups_created, vec!["big".to_string()]);
        assert_eq!(report.memberships_added, 5);
        nothing_pending(&s);
        assert!(s.stored_epoch().unwrap() > epoch);

        assert_eq!(s.users().unwrap().len(), MANY + 1);
        let last = s.user_by_name(&bulk_name(MANY)).unwrap().unwrap();
        let big = s.group_by_name("big").unwrap().unwrap();
        assert_eq!(s.groups_of(Member::User(last.id)).unwrap(), vec![big.id]);
        assert_eq!(s.members(big.id).unwrap().len(), 4);
        let two = s.user_by_name(&bulk_name(2)).unwrap().unwrap();
        assert_eq!(s.groups_of(Member::User(two.id)).unwrap(), vec![staff.id]);
        assert_eq!(s.user_by_name("old").unwrap().unwrap().id, old.id);
        // Allocated numbers are distinct and the counter moved past them.
        let numbers: HashSet<u32> = s.users().unwrap().iter().map(|u| u.uid_number).collect();
        assert_eq!(numbers.len(), MANY + 1);
        let (next_uid, _) = s.counters().unwrap();
        assert!(numbers.iter().all(|n| *n < next_uid));
        assert!(s.password_hash(last.id).unwrap().is_some());
    }

    #[test]
    fn the_counters_end_past_the_numbers_the_import_filled() {
        let s = SledStore::temporary().unwrap();
        // The group takes the first gidNumber; the users the next 100.
        let last = FIRST_GID_NUMBER + 100;
        let batch = Batch {
            groups: vec![batch_group("big")],
            next_uid: Some(last + 1),
            ..Batch::default()
        };
        let mut users = (1..=100).map(|i| Ok(bulk_user(i, Some(FIRST_GID_NUMBER + i as u32))));
        s.apply_batch_streamed(&batch, &mut users).unwrap();
        assert_eq!(
            s.group_by_name("big").unwrap().unwrap().gid_number,
            FIRST_GID_NUMBER
        );
        assert_eq!(s.counters().unwrap(), (last + 1, last + 1));
        let after = s.create_group("after", None).unwrap();
        assert_eq!(after.gid_number, last + 1);
        // A counter left below the run (a store written before this fix):
        // create_group starts from the first free number all the same.
        s.t.meta
            .insert(META_NEXT_GID, &keys::number_key(FIRST_GID_NUMBER))
            .unwrap();
        let later = s.create_group("later", None).unwrap();
        assert_eq!(later.gid_number, last + 2);
        assert_eq!(s.counters().unwrap().1, last + 3);
    }

    #[test]
    fn the_counters_end_past_the_numbers_an_import_into_a_used_store_filled() {
        let s = SledStore::temporary().unwrap();
        seeded(&s);
        let (next_uid, next_gid) = s.counters().unwrap();
        // The users fill a run from the gid counter on: the counter
        // walks the index past them (the store was not empty).
        let first = next_uid.max(next_gid);
        let batch = Batch {
            next_uid: Some(first + 100),
            ..Batch::default()
        };
        let mut users = (1..=100).map(|i| Ok(bulk_user(i, Some(first + i as u32 - 1))));
        s.apply_batch_streamed(&batch, &mut users).unwrap();
        assert_eq!(s.counters().unwrap(), (first + 100, first + 100));
        assert_eq!(
            s.create_group("after", None).unwrap().gid_number,
            first + 100
        );
    }

    #[test]
    fn a_conflict_after_chunks_were_written_leaves_the_store_as_it_was() {
        let s = SledStore::temporary().unwrap();
        let (old, _) = seeded(&s);
        let counters = s.counters().unwrap();
        let epoch = s.stored_epoch().unwrap();
        let batch = Batch {
            groups: vec![batch_group("big")],
            memberships: vec![("big".into(), BatchMember::User(bulk_name(1)))],
            next_uid: Some(100_000),
            ..Batch::default()
        };
        // The last user takes old's uidNumber.
        let mut users = (1..=MANY).map(|i| {
            let uid = if i == MANY {
                old.uid_number
            } else {
                20_000 + i as u32
            };
            Ok(bulk_user(i, Some(uid)))
        });
        let err = s.apply_batch_streamed(&batch, &mut users).unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
        nothing_pending(&s);
        assert_eq!(s.users().unwrap().len(), 1);
        assert!(s.user_by_name(&bulk_name(1)).unwrap().is_none());
        assert!(s.group_by_name("big").unwrap().is_none());
        assert!(s.t.idx_uid.get(keys::number_key(20_001)).unwrap().is_none());
        assert_eq!(s.t.idx_email.len(), 0);
        assert_eq!(s.counters().unwrap(), counters);
        assert_eq!(s.stored_epoch().unwrap(), epoch);
    }

    #[test]
    fn a_first_load_finds_duplicates_of_earlier_chunks_without_the_indexes() {
        // Into an empty store the checks use the import's own sets: a
        // repeated email, uidNumber or id chunks apart is still refused,
        // and the store is left empty.
        let clash: [fn(&mut BatchUser, &BatchUser); 3] = [
            |u, first| u.user.email = first.user.email.clone(),
            |u, first| u.user.uid_number = first.user.uid_number,
            |u, first| u.user.id = first.user.id,
        ];
        for (n, clash) in clash.into_iter().enumerate() {
            let s = SledStore::temporary().unwrap();
            let first = bulk_user(1, Some(30_000));
            let mut users = (1..=MANY).map(|i| {
                let mut u = bulk_user(i, Some(30_000 + i as u32));
                if i == 1 {
                    u = first.clone();
                }
                if i == MANY {
                    clash(&mut u, &first);
                }
                Ok(u)
            });
            let batch = Batch {
                next_uid: Some(40_000),
                ..Batch::default()
            };
            let err = s.apply_batch_streamed(&batch, &mut users).unwrap_err();
            assert!(
                matches!(err, StoreError::AlreadyExists(_)),
                "case {n}: {err}"
            );
            nothing_pending(&s);
            assert!(s.users().unwrap().is_empty(), "case {n}");
            assert_eq!(s.t.idx_email.len(), 0, "case {n}");
        }
    }

    #[test]
    fn a_user_clashing_with_the_chunk_being_written_is_refused() {
        // The chunk before is written while the next users are checked:
        // a user right after a chunk's end that repeats the last user's
        // email or name is refused all the same, into an empty store and
        // into one that held users, and nothing is left behind.
        let clash: [fn(&mut BatchUser, &BatchUser); 2] = [
            |u, before| u.user.email = before.user.email.clone(),
            |u, before| u.user.username = before.user.username.to_uppercase(),
        ];
        // Each user is 4 to 6 keys of a chunk: the chunk ends somewhere
        // among these users.
        let ends: Vec<usize> = [4, 5, 6]
            .iter()
            .flat_map(|keys| (0..3).map(move |d| CHUNK_KEYS / keys + d))
            .collect();
        for seed in [false, true] {
            for (n, clash) in clash.iter().enumerate() {
                for &q in &ends {
                    let s = SledStore::temporary().unwrap();
                    if seed {
                        seeded(&s);
                    }
                    let before = s.users().unwrap();
                    let mut last: Option<BatchUser> = None;
                    let mut users = (1..=q).map(|i| {
                        let mut u = bulk_user(i, Some(30_000 + i as u32));
                        u.user.email = Some(format!("bulk{i}@example.com"));
                        if i == q {
                            clash(&mut u, last.as_ref().unwrap());
                        }
                        last = Some(u.clone());
                        Ok(u)
                    });
                    let batch = Batch {
                        next_uid: Some(40_000),
                        ..Batch::default()
                    };
                    let err = s.apply_batch_streamed(&batch, &mut users).unwrap_err();
                    assert!(
                        matches!(err, StoreError::AlreadyExists(_)),
                        "seeded {seed}, case {n}, user {q}: {err}"
                    );
                    nothing_pending(&s);
                    assert_eq!(s.users().unwrap(), before, "seeded {seed}, case {n}");
                    assert_eq!(s.t.idx_email.len(), 0, "seeded {seed}, case {n}");
                }
            }
        }
    }

    #[test]
    fn an_import_cut_short_is_undone_when_the_store_opens() {
        let dir = tempfile::tempdir().unwrap();
        let counters = {
            let s = SledStore::open(dir.path()).unwrap();
            seeded(&s);
            let counters = s.counters().unwrap();
            let batch = Batch {
                groups: vec![batch_group("big")],
                memberships: vec![("big".into(), BatchMember::User(bulk_name(1)))],
                ..Batch::default()
            };
            let mut users = (1..=MANY).map(|i| Ok(bulk_user(i, None)));
            // The bulk phase without the commit: as if the process died.
            s.bulk(&batch, &mut users).unwrap();
            assert_eq!(s.users().unwrap().len(), MANY + 1);
            s.flush().unwrap();
            counters
        };
        let s = SledStore::open(dir.path()).unwrap();
        nothing_pending(&s);
        assert_eq!(s.users().unwrap().len(), 1);
        assert_eq!(s.groups().unwrap().len(), 1);
        assert!(s.group_by_name("big").unwrap().is_none());
        assert_eq!(s.t.members.len(), 1);
        assert_eq!(s.t.member_of.len(), 1);
        assert_eq!(s.t.credentials.len(), 0);
        assert_eq!(s.counters().unwrap(), counters);
    }

    #[test]
    fn a_first_load_journals_nothing_and_is_undone_by_emptying_the_trees() {
        let dir = tempfile::tempdir().unwrap();
        let counters = {
            let s = SledStore::open(dir.path()).unwrap();
            let counters = s.counters().unwrap();
            let batch = Batch {
                groups: vec![batch_group("big")],
                memberships: vec![("big".into(), BatchMember::User(bulk_name(1)))],
                ..Batch::default()
            };
            let mut users = (1..=MANY).map(|i| Ok(bulk_user(i, None)));
            s.bulk(&batch, &mut users).unwrap();
            assert_eq!(s.journal().unwrap().len(), 3, "the counters only");
            assert_eq!(s.users().unwrap().len(), MANY);
            s.flush().unwrap();
            counters
        };
        let s = SledStore::open(dir.path()).unwrap();
        nothing_pending(&s);
        assert!(s.users().unwrap().is_empty());
        assert!(s.groups().unwrap().is_empty());
        for tag in Tag::ALL {
            if !matches!(tag, Tag::Meta) {
                assert!(s.tree_of(tag).is_empty());
            }
        }
        assert_eq!(s.counters().unwrap(), counters);

        // And a first load that commits.
        let batch = Batch {
            groups: vec![batch_group("big")],
            memberships: vec![("big".into(), BatchMember::User(bulk_name(1)))],
            ..Batch::default()
        };
        let mut users = (1..=MANY).map(|i| Ok(bulk_user(i, None)));
        let report = s.apply_batch_streamed(&batch, &mut users).unwrap();
        assert_eq!(
            (report.users_created.len(), report.memberships_added),
            (MANY, 1)
        );
        nothing_pending(&s);
        assert_eq!(s.users().unwrap().len(), MANY);
    }
}
