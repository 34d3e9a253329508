//! Applying an [`ImportPlan`]: cleartext passwords hashed with argon2id
//! first, then everything written in one store batch.

use super::{ImportError, ImportPlan, ImportReport, PlannedUser, Progress, PROGRESS_EVERY};
use crate::account::{self, Actor};
use crate::auth::legacy::StoredPassword;
use crate::auth::password::Hasher;
use crate::store::import::{Batch, BatchGroup, BatchMode, BatchUser};
use crate::store::{now, Group, GroupId, Store, Timestamp, User, UserId};
use uuid::Uuid;

/// Applies a plan: hashes cleartext passwords with argon2id (before the
/// transaction), then writes everything in one store batch.
pub fn apply(
    store: &Store,
    plan: &ImportPlan,
    hasher: &Hasher,
) -> Result<ImportReport, ImportError> {
    apply_with_progress(store, plan, hasher, &mut |_| {})
}

/// [`apply`], reporting progress every [`PROGRESS_EVERY`] users hashed.
pub fn apply_with_progress(
    store: &Store,
    plan: &ImportPlan,
    hasher: &Hasher,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportReport, ImportError> {
    let at = now();
    let total = plan.users.len();
    let mut batch = Batch {
        mode: BatchMode::Merge,
        ..Batch::default()
    };
    for (i, u) in plan.users.iter().enumerate() {
        if (i + 1) % PROGRESS_EVERY == 0 {
            progress(Progress {
                stage: "hashing",
                done: i + 1,
                total: Some(total),
            });
        }
        batch.users.push(batch_user(store, hasher, u, at)?);
    }
    add_groups(plan, &mut batch, at);
    progress(Progress {
        stage: "writing",
        done: 0,
        total: Some(batch.users.len() + batch.groups.len()),
    });
    let report = account::import::write_batch(store, &Actor::Operator, &batch)?;
    Ok(ImportReport {
        batch: report,
        problems: plan.problems.len(),
        skipped: plan.skipped.len(),
    })
}

/// A planned user as a batch user: a cleartext password is hashed with
/// argon2id here, unless the user exists and keeps the password it has.
pub(super) fn batch_user(
    store: &Store,
    hasher: &Hasher,
    u: &PlannedUser,
    at: Timestamp,
) -> Result<BatchUser, ImportError> {
    let password_hash = match &u.password {
        None => None,
        Some(StoredPassword::Argon2Phc(s) | StoredPassword::Legacy(s)) => Some(s.clone()),
        Some(StoredPassword::Cleartext(secret)) => {
            // An existing user keeps its password: skip the hashing.
            let keeps = match store.user_by_name(&u.username)? {
                Some(ex) => store.password_hash(ex.id)?.is_some(),
                None => false,
            };
            if keeps {
                None
            } else {
                Some(hasher.hash_blocking(&secret.0)?)
            }
        }
    };
    Ok(BatchUser {
        user: User {
            id: UserId(import_id()),
            username: u.username.clone(),
            full_name: u.full_name.clone(),
            email: u.email.clone(),
            uid_number: u.uid_number.unwrap_or(0),
            gid_number: u.gid_number.unwrap_or(0),
            disabled: u.disabled,
            attrs: u.attrs.clone().into_iter().collect(),
            created: u.created.unwrap_or(at),
            modified: at,
            pwd_changed: None,
            cred_generation: 0,
        },
        allocate_uid: u.uid_number.is_none(),
        password_hash,
    })
}

/// The plan's groups and their memberships, into `batch`.
pub(super) fn add_groups(plan: &ImportPlan, batch: &mut Batch, at: Timestamp) {
    for g in &plan.groups {
        batch.groups.push(BatchGroup {
            group: Group {
                id: GroupId(import_id()),
                name: g.name.clone(),
                gid_number: g.gid_number.unwrap_or(0),
                description: g.description.clone(),
                created: at,
                modified: at,
            },
            allocate_gid: g.gid_number.is_none(),
        });
        for m in &g.members {
            batch.memberships.push((g.name.clone(), m.clone()));
        }
    }
}

/// The id of an imported user or group: time-ordered (UUID version 7), so
/// that a large import appends to the trees keyed by id instead of
/// rewriting pages all over them; its last bytes are random, as the
/// store's shards expect.
fn import_id() -> Uuid {
    Uuid::now_v7()
}
