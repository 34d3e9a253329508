//! Imports and restores land through here: one batch, all or nothing, as
//! the operator (the `import` command). The planner (`crate::migrate`)
//! has already applied the account layer's password policy to cleartext
//! passwords; the backend checks the domain's rules (names, numbers,
//! nesting, merges) inside the batch's transaction.

use super::{AccountError, Actor};
use crate::store::import::{Batch, BatchReport};
use crate::store::Store;

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
