//! The offline LDIF import, streamed: memory does not grow with the
//! number of users (a million users held whole needed 23 GiB).
//!
//! The file is read one entry at a time; each admitted user is turned into
//! its batch record at once (a cleartext password hashed) and written to a
//! spill file beside the store (mode 0600, removed afterwards: it holds
//! password hashes, as the store does). Groups stay in memory until their
//! members are resolved. Only then, with the whole plan known, is the
//! import refused (errors without `--force`) or written: the spill is read
//! back as the user stream of [`crate::store::Backend::apply_batch_streamed`],
//! which writes in chunks and commits once. So the plan, its line-numbered
//! problems and the all-or-nothing result are those of the in-memory
//! import.

use super::apply::{add_groups, batch_user};
use super::plan::Planner;
use super::{
    ImportError, ImportOptions, ImportPlan, ImportReport, PlannedUser, Progress, PROGRESS_EVERY,
};
use crate::account::{self, Actor};
use crate::auth::password::Hasher;
use crate::ldif::{Reader, Record};
use crate::store::import::{Batch, BatchMode, BatchUser};
use crate::store::{now, Store, StoreError};
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
/// admitted user to `admitted` instead of keeping it: the reading half of
/// the streamed import and of the dry run.
pub(super) fn read_planned(
    input: impl BufRead,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(Progress),
    admitted: &mut dyn FnMut(PlannedUser) -> Result<(), ImportError>,
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
                    admitted(u)?;
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
    let at = now();
    let (spill, file) = Spill::create(spill_dir)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let planned = read_planned(input, opts, progress, &mut |u| {
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

    let mut batch = Batch {
        mode: BatchMode::Merge,
        next_uid: max_uid.map(|n| n.saturating_add(1)),
        ..Batch::default()
    };
    add_groups(&plan, &mut batch, at);
    progress(Progress {
        stage: "writing",
        done: 0,
        total: Some(users + batch.groups.len()),
    });
    let mut done = 0;
    let mut stream = spill.lines::<BatchUser>()?.inspect(|_| {
        done += 1;
        if done % (PROGRESS_EVERY * 10) == 0 {
            progress(Progress {
                stage: "writing",
                done,
                total: Some(users),
            });
        }
    });
    let report =
        account::import::write_batch_streamed(store, &Actor::Operator, &batch, &mut stream)?;
    drop(spill);
    Ok(Streamed::Done(ImportReport {
        batch: report,
        problems: plan.problems.len(),
        skipped: plan.skipped.len(),
    }))
}
