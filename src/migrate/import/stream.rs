//! The offline LDIF import, streamed: memory does not grow with the
//! number of users (a million users held whole needed 23 GiB).
//!
//! The file is read one entry at a time; each admitted user is turned into
//! its batch record at once (a cleartext password hashed). Groups stay in
//! memory until their members are resolved. On sled the users are written
//! while the file is still read ([`crate::store::BulkImport`]: another
//! thread writes them in chunks behind the bulk writer's undo journal);
//! those whose uidNumber is allocated, and every user after the first of
//! them, wait in a spill file beside the store (mode 0600, removed
//! afterwards: it holds password hashes, as the store does) until the
//! highest kept number is known. Only with the whole plan known is the
//! import refused (errors without `--force`: what was written is undone)
//! or committed (the groups, the users held back, the memberships, and
//! the one commit). PostgreSQL spills every user and writes them once the
//! plan is whole ([`crate::store::Backend::apply_batch_streamed`]). So the
//! plan, its line-numbered problems and the all-or-nothing result are
//! those of the in-memory import.

use super::apply::{add_groups, batch_user};
use super::plan::Planner;
use super::{
    ImportError, ImportOptions, ImportPlan, ImportReport, PlannedUser, Progress, PROGRESS_EVERY,
};
use crate::account::{self, Actor};
use crate::auth::password::Hasher;
use crate::handoff::Batches;
use crate::ldif::{Reader, Record};
use crate::store::import::{Batch, BatchMode, BatchReport, BatchUser};
use crate::store::{now, BulkImport, Store, StoreError, Timestamp};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// What a streamed import did.
#[derive(Debug)]
pub enum Streamed {
    /// The plan has errors and `force` was not given: nothing written.
    /// The plan's users are not listed (they were not kept).
    Refused(ImportPlan),
    Done(ImportReport),
}

/// The spill file, removed when dropped.
pub(super) struct Spill {
    path: PathBuf,
}

impl Spill {
    pub(super) fn create(dir: &Path) -> Result<(Spill, File), ImportError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = dir.join(format!(".import-{}-{nanos}.spill", std::process::id()));
        let mut open = std::fs::OpenOptions::new();
        open.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            open.mode(0o600);
        }
        let file = open.open(&path).map_err(|e| io_error(&path, e))?;
        Ok((Spill { path }, file))
    }
}

impl Spill {
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// An I/O error on the spill, naming it.
    pub(super) fn error(&self, e: std::io::Error) -> ImportError {
        io_error(&self.path, e)
    }

    /// Writes `value` to `out` (the spill's file) as one line of JSON.
    pub(super) fn write_line(
        &self,
        out: &mut impl Write,
        value: &impl serde::Serialize,
    ) -> Result<(), ImportError> {
        serde_json::to_writer(&mut *out, value).map_err(|e| self.error(e.into()))?;
        out.write_all(b"\n").map_err(|e| self.error(e))
    }

    /// The lines [`Spill::write_line`] wrote, read back in order.
    pub(super) fn lines<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Result<impl Iterator<Item = Result<T, StoreError>> + use<T>, ImportError> {
        let read = File::open(&self.path).map_err(|e| self.error(e))?;
        let reading = |e: String| StoreError::Backend(format!("reading the import spill: {e}"));
        Ok(BufReader::with_capacity(1 << 20, read)
            .lines()
            .map(move |line| {
                line.map_err(|e| reading(e.to_string()))
                    .and_then(|l| serde_json::from_str(&l).map_err(|e| reading(e.to_string())))
            }))
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn io_error(path: &Path, e: std::io::Error) -> ImportError {
    ImportError::Store(StoreError::Backend(format!(
        "import spill file {}: {e}",
        path.display()
    )))
}

/// What [`read_planned`] planned, the users aside.
pub(super) struct Planned {
    /// Groups, skipped entries and problems (in line order); no users.
    pub plan: ImportPlan,
    /// Users admitted (each handed to the caller).
    pub users: usize,
    /// The highest uidNumber kept from the source.
    pub max_uid: Option<u32>,
}

/// Reads an LDIF stream one entry at a time and plans it, handing each
/// admitted user to `admitted` instead of keeping it, with whether the
/// plan has an error so far: the reading half of the streamed import and
/// of the dry run.
pub(super) fn read_planned(
    input: impl BufRead,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(Progress),
    admitted: &mut dyn FnMut(PlannedUser, bool) -> Result<(), ImportError>,
) -> Result<Planned, ImportError> {
    let mut planner = Planner::new(opts);
    let mut reader = Reader::new(input);
    let mut entries = 0;
    while let Some(record) = reader.next_record()? {
        match record {
            Record::Entry(e) => {
                entries += 1;
                if entries % PROGRESS_EVERY == 0 {
                    progress(Progress {
                        stage: "reading",
                        done: entries,
                        total: None,
                    });
                }
                if let Some(u) = planner.entry(&e) {
                    admitted(u, planner.has_errors())?;
                }
            }
            Record::Skipped(s) => planner.skipped_record(&s),
        }
    }
    let users = planner.users();
    let max_uid = planner.max_uid();
    let mut plan = planner.finish();
    plan.problems.sort_by_key(|p| p.line);
    Ok(Planned {
        plan,
        users,
        max_uid,
    })
}

/// Reads, plans and (unless refused) writes an LDIF import as the
/// operator, holding in memory only the groups and what member references
/// and duplicate checks need. `spill_dir` must be private to the server's
/// user (the data directory). Blocking.
///
/// On a backend that writes an import while it is read
/// ([`crate::store::Backend::bulk_import`], sled), users are written as
/// they are planned ([`import_overlapped`]); otherwise (PostgreSQL) they
/// are spilled and written once the plan is whole ([`import_spilled`]).
pub fn import_streamed(
    store: &Store,
    input: impl BufRead,
    opts: &ImportOptions,
    hasher: &Hasher,
    spill_dir: &Path,
    force: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Streamed, ImportError> {
    Actor::Operator.require_operator()?;
    match account::import::begin_bulk_import(store, &Actor::Operator, BatchMode::Merge)? {
        Some(bulk) => {
            import_overlapped(store, bulk, input, opts, hasher, spill_dir, force, progress)
        }
        None => import_spilled(store, input, opts, hasher, spill_dir, force, progress),
    }
}

/// Users handed from the reading thread to the writing one at a time.
const HANDOFF: usize = 512;
/// Hand-offs waiting for the writer, at most (so the reading runs at most
/// some 4,000 users ahead of the writing).
const HANDOFFS_QUEUED: usize = 8;

/// The reading thread's end of the hand-off to the writer.
struct Handoff {
    /// `None` once closed, or once the writer stopped (an error, which
    /// undid what it wrote): later users are dropped, the plan goes on.
    tx: Option<Batches<BatchUser>>,
}

impl Handoff {
    fn push(&mut self, u: BatchUser) {
        if let Some(tx) = &mut self.tx {
            if tx.push(u).is_err() {
                self.tx = None;
            }
        }
    }

    /// Hands over what is left and ends the writer's stream.
    fn close(&mut self) {
        if let Some(mut tx) = self.tx.take() {
            // A writer gone has stopped on an error of its own.
            let _ = tx.flush();
        }
    }
}

/// The import of [`import_streamed`] on a backend with a [`BulkImport`]:
/// this thread reads and plans the file while another writes the users
/// it admits (the reading took a quarter of the import, with one of two
/// cores idle). Users are handed over in file order as long as they keep
/// their uidNumber; from the first one whose number is allocated on, the
/// rest are spilled (mode 0600, removed afterwards) and written after the
/// groups, once the highest kept number is known. So the store is given
/// the users in file order, as [`import_spilled`] gives them.
///
/// All or nothing as before: a plan refused at the end (errors without
/// `force`), a store conflict (found while reading or after), or a
/// reading error abandons the import, which undoes whatever was written.
/// A conflict found while reading stops the writing but not the plan, so
/// a plan with errors is still reported as refused. Once the plan has an
/// error (without `force`) no more users are written: the import will be
/// refused.
#[allow(clippy::too_many_arguments)]
fn import_overlapped<'s>(
    store: &'s Store,
    bulk: Box<dyn BulkImport + 's>,
    input: impl BufRead,
    opts: &ImportOptions,
    hasher: &Hasher,
    spill_dir: &Path,
    force: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Streamed, ImportError> {
    let at = now();
    let (spill, file) = match Spill::create(spill_dir) {
        Ok(created) => created,
        Err(e) => return Err(abandoned(bulk, e)),
    };
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<BatchUser>>(HANDOFFS_QUEUED);
    let (read, joined) = std::thread::scope(|s| {
        let writer = s.spawn(move || {
            let mut bulk = bulk;
            let written = bulk.users(&mut rx.into_iter().flatten().map(Ok));
            (bulk, written)
        });
        let mut handoff = Handoff {
            tx: Some(Batches::new(tx, HANDOFF)),
        };
        let mut held_back = false;
        let read = read_planned(input, opts, progress, &mut |u, errors| {
            let bu = batch_user(store, hasher, &u, at)?;
            if errors && !force {
                // The import will be refused: nothing more is written.
                handoff.close();
                return Ok(());
            }
            if bu.allocate_uid && !held_back {
                held_back = true;
                handoff.close();
            }
            if held_back {
                spill.write_line(&mut out, &bu)
            } else {
                handoff.push(bu);
                Ok(())
            }
        });
        // Before the join: the writer's stream ends here.
        handoff.close();
        (read, writer.join())
    });
    let Ok((bulk, written)) = joined else {
        // Unwinding dropped the handle, which undid the import.
        return Err(ImportError::Store(StoreError::Backend(
            "the import's writer panicked".into(),
        )));
    };
    let planned = match read.and_then(|p| out.flush().map(|()| p).map_err(|e| spill.error(e))) {
        Ok(planned) => planned,
        Err(e) => return Err(abandoned(bulk, e)),
    };
    drop(out);
    let Planned {
        mut plan,
        users,
        max_uid,
    } = planned;
    plan.users_streamed = users;
    if plan.has_errors() && !force {
        bulk.abandon()?;
        return Ok(Streamed::Refused(plan));
    }
    // The writer's error undid the import already.
    written?;

    let batch = head(&plan, max_uid, at);
    let lines = match spill.lines::<BatchUser>() {
        Ok(lines) => lines,
        Err(e) => return Err(abandoned(bulk, e)),
    };
    let mut stream = writing(lines, users, batch.groups.len(), progress);
    let report = bulk.commit(&batch, &mut stream)?;
    drop(spill);
    Ok(done(&plan, report))
}

/// `e`, after undoing what `bulk` wrote (noting an undo that failed too:
/// the store undoes it when opened next).
fn abandoned(bulk: Box<dyn BulkImport + '_>, e: ImportError) -> ImportError {
    match bulk.abandon() {
        Ok(()) => e,
        Err(undo) => ImportError::Store(StoreError::Backend(format!(
            "{e}; undoing the partial import failed too ({undo}); it is undone when the store \
             is opened next"
        ))),
    }
}

/// The batch of a plan whose users are streamed: its groups and
/// memberships, and uidNumbers allocated past the highest kept one.
fn head(plan: &ImportPlan, max_uid: Option<u32>, at: Timestamp) -> Batch {
    let mut batch = Batch {
        mode: BatchMode::Merge,
        next_uid: max_uid.map(|n| n.saturating_add(1)),
        ..Batch::default()
    };
    add_groups(plan, &mut batch, at);
    batch
}

/// The import of [`import_streamed`] on a backend that writes an import
/// only once it is whole: every admitted user is spilled while the file
/// is read, then the spill is the user stream of
/// [`crate::store::Backend::apply_batch_streamed`].
fn import_spilled(
    store: &Store,
    input: impl BufRead,
    opts: &ImportOptions,
    hasher: &Hasher,
    spill_dir: &Path,
    force: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Streamed, ImportError> {
    let at = now();
    let (spill, file) = Spill::create(spill_dir)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let planned = read_planned(input, opts, progress, &mut |u, _| {
        let bu = batch_user(store, hasher, &u, at)?;
        spill.write_line(&mut out, &bu)
    })?;
    out.flush().map_err(|e| spill.error(e))?;
    drop(out);
    let Planned {
        mut plan,
        users,
        max_uid,
    } = planned;
    plan.users_streamed = users;
    if plan.has_errors() && !force {
        return Ok(Streamed::Refused(plan));
    }

    let batch = head(&plan, max_uid, at);
    let mut stream = writing(
        spill.lines::<BatchUser>()?,
        users,
        batch.groups.len(),
        progress,
    );
    let report =
        account::import::write_batch_streamed(store, &Actor::Operator, &batch, &mut stream)?;
    drop(spill);
    Ok(done(&plan, report))
}

/// Reports that the writing starts (`users` users and `groups` groups),
/// then counts the users of `stream` as they are written.
fn writing<'p, T>(
    stream: impl Iterator<Item = T> + 'p,
    users: usize,
    groups: usize,
    progress: &'p mut dyn FnMut(Progress),
) -> impl Iterator<Item = T> + 'p {
    progress(Progress {
        stage: "writing",
        done: 0,
        total: Some(users + groups),
    });
    let mut done = 0;
    stream.inspect(move |_| {
        done += 1;
        if done % (PROGRESS_EVERY * 10) == 0 {
            progress(Progress {
                stage: "writing",
                done,
                total: Some(users),
            });
        }
    })
}

/// The report of a written import of `plan`.
fn done(plan: &ImportPlan, batch: BatchReport) -> Streamed {
    Streamed::Done(ImportReport {
        batch,
        problems: plan.problems.len(),
        skipped: plan.skipped.len(),
    })
}
