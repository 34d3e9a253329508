//! The store: users, groups, memberships, credentials, second factors and
//! settings, behind one interface ([`Backend`]) that every backend
//! implements, with the rules that hold for all of them.
//!
//! Layout:
//! - `backend`: the [`Backend`] trait and its contract (durable on `Ok`,
//!   atomic change sets checked against what was read, codes consumed
//!   exactly once, the membership epoch).
//! - The records the interface speaks (users, groups, members, devices,
//!   app passwords, policies, import batches) and the data-model rules
//!   live in `crate::domain`, which knows no backend; they are re-exported
//!   here (`store::model`, `store::mfa`, `store::import`) for callers.
//! - `sled`: the embedded backend, the default; the only module that knows
//!   sled.
//! - `postgres`: the PostgreSQL backend (`[store] backend = "postgres"`,
//!   issue 14, in progress); the only module that knows PostgreSQL.
//! - `conformance` (tests): the suite every backend passes.
//!
//! Callers hold a [`Store`], a cheap handle on one backend that derefs to
//! the interface: `store.user_by_name(..)` is [`Backend::user_by_name`].

mod backend;
#[cfg(test)]
pub(crate) mod conformance;
pub mod postgres;
pub mod sled;
pub mod spool;

pub use crate::domain::batch as import;
pub use crate::domain::snapshot::{
    Snapshot, SnapshotGroup, SnapshotHead, SnapshotSink, SnapshotUser,
};
pub use crate::domain::{mfa, model, validate};
pub use crate::domain::{
    now, AppPassword, AppPasswordId, CredentialKind, Device, DeviceId, DeviceKind, Group, GroupId,
    GroupPolicy, GroupSnapshot, KeyedHash, Member, MfaPolicy, NewUser, PortalSession, Result,
    SessionHash, SessionId, StoreError, Timestamp, TotpSecret, User, UserId, FIRST_GID_NUMBER,
    FIRST_UID_NUMBER,
};
pub use backend::{
    Backend, BindReading, BindReads, BoardEntry, BoardEvent, BulkImport, ConnectionBoard,
    FailureCounters, SoftlockRule, StartupLock,
};

use std::path::Path;
use std::sync::Arc;

use self::import::{Batch, BatchUser};

/// The default of `store.record_cache_mib`: the most memory (MiB) sled's
/// decoded user and group records take. Some 1,000,000 users of the
/// benchmark's size (0.73 KiB each kept); a directory that fits is kept
/// whole, and a lookup then reads sled only for the index.
pub const DEFAULT_RECORD_CACHE_MIB: usize = 768;

/// The default of `store.page_cache_mib`: the most memory (MiB) sled's own
/// cache of database pages takes in the server. Kept records are used
/// without reading sled (`sled/records.rs`), so the pages serve the
/// indexes and the records not kept. At 1,000,000 users with every record
/// kept, 128 MiB instead of 256 saved some 280 MiB of resident memory for
/// some 8% more CPU per lookup; both spent less than 256 MiB of pages with
/// half the users kept (sled's default is 1 GiB).
pub const DEFAULT_PAGE_CACHE_MIB: usize = 128;

/// sled's page cache (bytes) in the offline CLI; see
/// [`Store::open_sled_offline`].
pub const OFFLINE_PAGE_CACHE: u64 = 256 << 20;

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
    /// Opens (creating if needed) the embedded sled database in `dir`, with
    /// the default record cache.
    pub fn open(dir: &Path) -> Result<Store> {
        Store::open_sled(
            dir,
            DEFAULT_RECORD_CACHE_MIB << 20,
            (DEFAULT_PAGE_CACHE_MIB as u64) << 20,
        )
    }

    /// [`Store::open`] with a record cache of at most `record_cache`
    /// bytes (`store.record_cache_mib`) and sled's page cache at most
    /// `page_cache` bytes (`store.page_cache_mib`).
    pub fn open_sled(dir: &Path, record_cache: usize, page_cache: u64) -> Result<Store> {
        Ok(Store::with_backend(Arc::new(
            self::sled::SledStore::open_with(dir, record_cache, Some(page_cache))?,
        )))
    }

    /// [`Store::open_sled`] for the CLI with the server stopped: sled's page
    /// cache is held to [`OFFLINE_PAGE_CACHE`], which bounds a large
    /// import's memory (measured at 1M users: 1.9 GiB peak with sled's
    /// default 1 GiB, 1.2 GiB with 256 MiB, for some 15% more time).
    pub fn open_sled_offline(dir: &Path, record_cache: usize) -> Result<Store> {
        Ok(Store::with_backend(Arc::new(
            self::sled::SledStore::open_with(dir, record_cache, Some(OFFLINE_PAGE_CACHE))?,
        )))
    }

    /// Connects to a PostgreSQL database (see [`postgres::PgStore::connect`])
    /// and serves reads from this instance's read model, fed by the
    /// database's change feed ([`postgres::PgInstance`]).
    pub fn connect_postgres(
        url: &str,
        pool_size: usize,
        statement_timeout: Option<std::time::Duration>,
    ) -> Result<Store> {
        let db = self::postgres::PgStore::connect(url, pool_size, statement_timeout)?;
        Ok(Store::with_backend(Arc::new(
            self::postgres::PgInstance::start(db)?,
        )))
    }

    /// [`Store::connect_postgres`] without a read model ([`postgres::PgStore`]
    /// alone): every read is a round trip. For a CLI that writes a
    /// database or reads it once, streamed (`migrate-store`, the offline
    /// `import` and `export`), which a model only costs: a million users'
    /// model is some 1.8 GiB, read whole at the start and again after
    /// each large write.
    pub fn connect_postgres_direct(
        url: &str,
        pool_size: usize,
        statement_timeout: Option<std::time::Duration>,
    ) -> Result<Store> {
        let db = self::postgres::PgStore::connect(url, pool_size, statement_timeout)?;
        Ok(Store::with_backend(Arc::new(db)))
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

    /// [`Backend::apply_batch_streamed`] behind the rule of its contract
    /// that holds for every backend, checked here once: the users come
    /// from the stream, so a batch with users of its own is refused (they
    /// would be lost) before the backend starts. Callers holding a
    /// [`Store`] reach the backend through this method, which takes
    /// precedence over the trait's of the same name.
    pub fn apply_batch_streamed(
        &self,
        batch: &Batch,
        users: &mut dyn Iterator<Item = Result<BatchUser>>,
    ) -> Result<import::BatchReport> {
        if !batch.users.is_empty() {
            return Err(StoreError::Invalid(
                "a streamed batch takes its users from the stream".into(),
            ));
        }
        self.0.apply_batch_streamed(batch, users)
    }

    /// Checks a batch against the data-model rules every record obeys
    /// (names, emails, full names, descriptions), without writing.
    pub fn check_batch(batch: &Batch) -> Result<()> {
        for u in &batch.users {
            Store::check_batch_user(u)?;
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

    /// The rules of [`Store::check_batch`] for one user, for a backend
    /// that reads a batch's users from a stream.
    pub fn check_batch_user(u: &BatchUser) -> Result<()> {
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
