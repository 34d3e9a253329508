//! The store: users, groups, memberships, credentials, second factors and
//! settings, behind one interface ([`Backend`]) that every backend
//! implements, with the rules that hold for all of them.
//!
//! Layout:
//! - `backend`: the [`Backend`] trait and its contract (durable on `Ok`,
//!   atomic change sets checked against what was read, codes consumed
//!   exactly once, the membership epoch).
//! - `model`, `mfa`, `import`: the records the interface speaks (users,
//!   groups, members, devices, app passwords, policies, import batches).
//!   They know no backend.
//! - `validate`: the data-model rules (names, emails, texts) every backend
//!   checks before it writes.
//! - `sled`: the embedded backend, the default; the only module that knows
//!   sled.
//! - `conformance` (tests): the suite every backend passes.
//!
//! Callers hold a [`Store`], a cheap handle on one backend that derefs to
//! the interface: `store.user_by_name(..)` is [`Backend::user_by_name`].

mod backend;
#[cfg(test)]
mod conformance;
pub mod import;
pub mod mfa;
pub mod model;
pub mod sled;
mod validate;

pub use backend::Backend;
pub use mfa::{
    AppPassword, AppPasswordId, Device, DeviceId, DeviceKind, GroupPolicy, KeyedHash, MfaPolicy,
    TotpSecret,
};
pub use model::{now, Group, GroupId, GroupSnapshot, Member, NewUser, Timestamp, User, UserId};

use std::path::Path;
use std::sync::Arc;

use self::import::Batch;

/// First uidNumber handed out (DESIGN.md section 3).
pub const FIRST_UID_NUMBER: u32 = 2000;
/// First gidNumber handed out (DESIGN.md section 3).
pub const FIRST_GID_NUMBER: u32 = 4000;

/// Errors of the store, in terms its callers can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The request breaks a rule of the data model (bad name, cycle, …).
    #[error("{0}")]
    Invalid(String),
    /// The database itself failed; the detail is for the log, not for clients.
    #[error("storage failure: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<crate::blocking::TaskFailed> for StoreError {
    fn from(e: crate::blocking::TaskFailed) -> StoreError {
        StoreError::Backend(e.to_string())
    }
}

/// A handle on one backend; cheap to clone, shared by all tasks. Derefs to
/// [`Backend`], so every operation of the interface is a method call on it.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &(dyn Backend + 'static) {
        &*self.0
    }
}

impl Store {
    /// Opens (creating if needed) the embedded sled database in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        Ok(Store::with_backend(Arc::new(self::sled::SledStore::open(
            dir,
        )?)))
    }

    /// A throw-away in-memory database, for tests and fuzzing.
    pub fn temporary() -> Result<Store> {
        Ok(Store::with_backend(Arc::new(
            self::sled::SledStore::temporary()?,
        )))
    }

    /// A handle on any backend.
    pub fn with_backend(backend: Arc<dyn Backend>) -> Store {
        Store(backend)
    }

    /// Checks a batch against the data-model rules every record obeys
    /// (names, emails, full names, descriptions), without writing.
    pub fn check_batch(batch: &Batch) -> Result<()> {
        for u in &batch.users {
            validate::name("user", &u.user.username)?;
            if let Some(e) = &u.user.email {
                validate::email(e)?;
            }
            if let Some(n) = &u.user.full_name {
                validate::full_name(n)?;
            }
            if u.password_hash.as_deref() == Some("") {
                return Err(StoreError::Invalid(format!(
                    "the password hash of {} is empty",
                    u.user.username
                )));
            }
        }
        for g in &batch.groups {
            validate::name("group", &g.group.name)?;
            if let Some(d) = &g.group.description {
                validate::description(d)?;
            }
        }
        for (name, factors) in &batch.second_factors {
            factors
                .check()
                .map_err(|e| StoreError::Invalid(format!("user {name}: {e}")))?;
        }
        Ok(())
    }

    /// The rule of [`Backend::create_user`] for user names, for planners
    /// that check before they build a batch.
    pub fn check_user_name(name: &str) -> Result<()> {
        validate::name("user", name)
    }

    /// The rule of [`Backend::create_group`] for group names.
    pub fn check_group_name(name: &str) -> Result<()> {
        validate::name("group", name)
    }

    /// The rule for emails ([`Backend::update_user`]).
    pub fn check_email(email: &str) -> Result<()> {
        validate::email(email)
    }

    /// The rule for full names (displayName).
    pub fn check_full_name(name: &str) -> Result<()> {
        validate::full_name(name)
    }

    /// The rule for group descriptions.
    pub fn check_description(text: &str) -> Result<()> {
        validate::description(text)
    }
}
