//! Imports and restores land through here: one batch, all or nothing, as
//! the operator (the `import` command); exports and scheduled backups read
//! one snapshot through here, as the operator or the server. The planner (`crate::migrate`)
//! has already applied the account layer's password policy to cleartext
//! passwords; the backend checks the domain's rules (names, numbers,
//! nesting, merges) inside the batch's transaction.

use std::path::Path;

use super::{AccountError, Actor};
use crate::store::import::{Batch, BatchMode, BatchReport, BatchUser};
use crate::store::{BulkImport, SnapshotSink, Store};

/// Writes an import or restore batch as `actor` (the operator or the
/// server). Durable when it returns.
pub fn write_batch(
    store: &Store,
    actor: &Actor,
    batch: &Batch,
) -> Result<BatchReport, AccountError> {
    actor.require_operator()?;
    Ok(store.apply_batch(batch)?)
}

/// [`write_batch`] of an import whose users come from `users` (read once,
/// in order), for a store only this process uses (the offline import);
/// see [`crate::store::Backend::apply_batch_streamed`].
pub fn write_batch_streamed(
    store: &Store,
    actor: &Actor,
    batch: &Batch,
    users: &mut dyn Iterator<Item = crate::store::Result<BatchUser>>,
) -> Result<BatchReport, AccountError> {
    actor.require_operator()?;
    Ok(store.apply_batch_streamed(batch, users)?)
}

/// Begins, as `actor`, an import whose first users are written while its
/// source is still read, for a store only this process uses (the offline
/// import); `None` when the backend has no such import (PostgreSQL: use
/// [`write_batch_streamed`]). See [`crate::store::Backend::bulk_import`].
pub fn begin_bulk_import<'s>(
    store: &'s Store,
    actor: &Actor,
    mode: BatchMode,
) -> Result<Option<Box<dyn BulkImport + 's>>, AccountError> {
    actor.require_operator()?;
    Ok(store.bulk_import(mode)?)
}

/// Every record at one instant, for an export or a backup, as `actor`
/// (the operator or the server), handed to `sink` as it is read
/// ([`crate::store::Backend::snapshot_streamed`]), so exports and backups
/// hold no whole directory in memory. It holds password hashes and
/// second-factor secrets. Blocking. On sled, writes wait until `sink` is
/// done, or, with `spool_dir` (a serving process: a private directory),
/// only until the records are copied into a file there
/// ([`crate::store::Backend::snapshot_spooled`]).
pub fn snapshot_streamed(
    store: &Store,
    actor: &Actor,
    spool_dir: Option<&Path>,
    sink: &mut dyn SnapshotSink,
) -> Result<(), AccountError> {
    actor.require_operator()?;
    match spool_dir {
        Some(dir) => store.snapshot_spooled(sink, dir)?,
        None => store.snapshot_streamed(sink)?,
    }
    Ok(())
}
