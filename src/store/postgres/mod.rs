//! The PostgreSQL backend of the store interface (issue 14): several
//! Portcullis instances share one database. The only module that knows
//! PostgreSQL.
//!
//! Two layers:
//! - [`PgStore`], the database layer: every method of the interface as
//!   SQL, each read a round trip (`users`, `groups`, `mfa`, `sessions`,
//!   `snapshot`, `batch` with `chunks`; `trait_impl` makes it a
//!   `Backend`, which the conformance suite runs as `postgres`).
//! - [`PgInstance`], what a server (or the CLI) opens
//!   (`Store::connect_postgres`): the same interface answered from this
//!   instance's read model (`model`) for reads and by [`PgStore`] for
//!   writes, each followed by a catch-up, so the instance that wrote sees
//!   its write at once (`instance`; the suite runs it as
//!   `postgres_instance`). The change feed (`feed`, migration 4) keeps
//!   the model in step with what other instances write: triggers add a
//!   row to `changes` for every write and notify at commit; one listener
//!   connection per instance catches up on each notification, every
//!   250 ms and after each reconnect. A change is seen everywhere within
//!   a second (measured on a loopback database with
//!   `propagation_delay_between_two_instances`: p50 2 ms, p99 11 ms from
//!   the write's call; p99 2.3 ms after it returned).
//!
//! # What is never stale
//! Bind calls [`Backend::refresh`](super::Backend::refresh) first: a
//! catch-up, after which the record it reads (the disabled flag), the
//! password hash, devices, policies and settings are as current as the
//! database. TOTP secrets and steps, static tokens, app passwords and API
//! tokens (revocation, expiry) are read from the database at every bind,
//! and portal sessions at every request, so a session ended through one
//! instance is dead on every other at once. The bind cache keys on the
//! password hash and the credential generation, which the catch-up has
//! just read: a password changed or an account disabled elsewhere misses.
//!
//! # The database unreachable
//! A bind's catch-up gives up after a bound (2 s, 250 ms once the
//! listener lost the database) and the model answers as of its last
//! catch-up: searches go on, and so do plain password binds of users in
//! the model (the hash is in the model). What must read or write the
//! database (a code, an app password, a rehash, every write) fails with a
//! backend error, which LDAP answers `unavailable` (52). Statements are
//! bounded by `statement_timeout`, pool waits by [`POOL_WAIT`]. The
//! listener reconnects by itself (backoff up to 2 s) and then reads the
//! model whole: a failover to a replica may have lost the last commits,
//! and their change numbers are taken again.
//!
//! # LDAP connections of every instance
//! `board` publishes each instance's bound connections (`instances`,
//! `ldap_connections`), lists the others' and delivers a `session end`
//! to the instance holding the connection through the feed
//! ([`Backend::connection_board`](super::Backend::connection_board)).
//!
//! # Failure counters, TLS, health
//! Failure counters are shared (`counters`, migration 3), TLS to the
//! database follows `sslmode` in the URL (`tls`; the feed's listener
//! connects the same way as the pool), and
//! [`Backend::ping`](super::Backend::ping) answers `/healthz` within a
//! deadline.

//! # Driver, pool and the synchronous interface
//! [`Backend`](super::Backend) is synchronous: writes run on the blocking
//! pool; reads are made from the LDAP reactors too, and [`PgInstance`]
//! answers those from memory (bind's catch-up runs on the blocking pool). The driver is tokio-postgres, pooled by
//! deadpool-postgres. The store owns a small runtime of its own
//! ([`Inner::rt`]) on which every connection task runs and every
//! connection is made; a call waits for its queries with
//! `futures::executor::block_on` on the caller's thread, whatever that
//! thread is. The sync `postgres` crate was not taken: it blocks on a
//! private runtime per connection with `Runtime::block_on`, which panics
//! on a thread that already drives a runtime (an LDAP reactor, an async
//! test), and it leaves no task running between calls for the LISTEN/NOTIFY
//! change feed that comes next. sqlx was not taken: heavier, and its pool
//! needs the runtime context for every acquire.
//!
//! # Schema and migrations
//! `migrations/NNNN_*.sql`, applied in order at start-up ([`migrate`])
//! under a session advisory lock, each in one transaction with its row in
//! `portcullis_schema`: two instances starting together migrate once.
//!
//! # Transactions
//! Every write of several statements is one READ COMMITTED transaction
//! ([`PgStore::write`]), retried whole on a serialization failure or a
//! deadlock; a write that is one statement runs alone ([`PgStore::read`]). Atomic steps are
//! decided by the database, so they hold across instances:
//! - Consuming a static token is one `DELETE … RETURNING`; advancing a
//!   TOTP step one `UPDATE … WHERE last_step < $1`.
//! - Number allocation locks the `next_gid` and `next_uid` rows of
//!   `counters` (both, in that order: a uidNumber must not be a gidNumber
//!   either) and applies `domain::rules::allocate_number`.
//! - Every change to memberships or names locks the `membership_epoch`
//!   row first and bumps it on commit. So membership writers are
//!   serialized, the cycle walk (`domain::rules::walk`) inside such a
//!   transaction sees memberships no one else can change until it
//!   commits, and `replace_group` compares the snapshot's epoch with the
//!   locked row.
//! - `replace_user` and `update_user` lock the user's row
//!   (`FOR NO KEY UPDATE`) and compare with what the caller read.
//! - Lock order, where a transaction takes several counter rows:
//!   `membership_epoch`, `next_gid`, `next_uid`.
//!
//! [`PgStore`] reads the membership epoch from its row on every call;
//! [`PgInstance`] keeps a copy in its model, which moves with the row's
//! change (a trigger on `counters`).
//!
//! # Snapshots
//! One `REPEATABLE READ, READ ONLY` transaction: consistent, and it holds
//! off no writer.
//!
//! # Order
//! Names and setting keys are listed `COLLATE "C"` (bytewise, as sled's
//! keys), whatever collation the database was created with: the
//! interface's "ordered by lowercase name" does not depend on the locale.

mod batch;
mod board;
mod chunks;
mod counters;
mod feed;
mod groups;
mod instance;
mod mfa;
mod model;
mod sessions;
mod snapshot;
#[cfg(test)]
mod tests;
mod tls;
mod trait_impl;
mod users;
mod uses;

/// The throw-away cluster of the tests; the integration tests reach it
/// through the `test-cluster` feature (the crate's self dev-dependency).
#[cfg(any(test, feature = "test-cluster"))]
#[doc(hidden)]
pub mod testing;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::IsolationLevel;

pub use instance::PgInstance;

use super::{Result, StoreError};

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_server_key.sql")),
    (3, include_str!("migrations/0003_failure_counters.sql")),
    (4, include_str!("migrations/0004_changes.sql")),
];

/// The key of the session advisory lock migrations (and, later, bootstrap)
/// run under: "portcull" in ASCII.
const MIGRATION_LOCK: i64 = 0x706f_7274_6375_6c6c;

/// How often a transaction is run again after a serialization failure or
/// a deadlock before the error is reported.
const MAX_ATTEMPTS: usize = 16;

/// How long `ping` (for `/healthz`) waits for an answer; below
/// `http::PROBE_DEADLINE`, so the probe's own error is what is reported.
const PING_DEADLINE: Duration = Duration::from_millis(1500);

/// How long a call waits for a free connection (or a new one).
const POOL_WAIT: Duration = Duration::from_secs(10);

/// The PostgreSQL backend. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Drives the connections (their tasks run here) and makes new ones.
    /// `None` only while dropping.
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// What every connection is made from (the change feed's listener
    /// makes its own). Never printed: it holds the password.
    config: tokio_postgres::Config,
    /// How every connection is made, the listener's too: `sslmode`.
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// App password uses waiting to be written (`uses`).
    uses: Arc<uses::Uses>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle may go away on a reactor thread, where dropping
        // a runtime (which waits for its threads) would panic.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Why a transaction body stopped: a refusal for the caller, or a
/// database error (retried when it is a serialization failure).
pub(super) enum TxError {
    Store(StoreError),
    Db(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for TxError {
    fn from(e: tokio_postgres::Error) -> TxError {
        TxError::Db(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> TxError {
        TxError::Store(e)
    }
}

pub(super) type TxResult<T> = std::result::Result<T, TxError>;

/// A database error for the log: tokio-postgres' text names the failed
/// statement's error, never the connection's password.
pub(super) fn db_error(e: &tokio_postgres::Error) -> StoreError {
    // The server's own message (a DbError) is only in the source chain.
    match e.as_db_error() {
        Some(db) => StoreError::Backend(format!(
            "PostgreSQL: {} {}: {}",
            db.severity(),
            db.code().code(),
            db.message()
        )),
        None => {
            // The cause (a refused connection, a certificate the TLS
            // check refused) is in the source chain too.
            let mut text = format!("PostgreSQL: {e}");
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            StoreError::Backend(text)
        }
    }
}

/// A failure to get a pooled connection.
pub(super) fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error(&e),
        e => StoreError::Backend(format!("PostgreSQL pool: {e}")),
    }
}

pub(super) fn to_store(e: TxError) -> StoreError {
    match e {
        TxError::Store(e) => e,
        TxError::Db(e) => db_error(&e),
    }
}

fn retryable(e: &TxError) -> bool {
    matches!(e, TxError::Db(e) if e.code().is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    }))
}

/// The constraint a unique violation names, if `e` is one.
pub(super) fn unique_violation(e: &TxError) -> Option<&str> {
    match e {
        TxError::Db(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            e.as_db_error().and_then(|d| d.constraint())
        }
        _ => None,
    }
}

/// Whether `e` is a foreign key violation (a referenced row is gone).
pub(super) fn foreign_key_violation(e: &TxError) -> bool {
    matches!(e, TxError::Db(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION))
}

/// A stored bigint as a u32 (uidNumber, gidNumber).
pub(super) fn to_u32(v: i64, what: &str) -> TxResult<u32> {
    u32::try_from(v)
        .map_err(|_| TxError::Store(StoreError::Backend(format!("corrupt {what}: {v}"))))
}

/// A stored bigint as a u64 (steps, generations).
pub(super) fn to_u64(v: i64, what: &str) -> TxResult<u64> {
    u64::try_from(v)
        .map_err(|_| TxError::Store(StoreError::Backend(format!("corrupt {what}: {v}"))))
}

/// A u64 as a bigint; larger values are refused rather than wrapped.
pub(super) fn from_u64(v: u64, what: &str) -> TxResult<i64> {
    i64::try_from(v)
        .map_err(|_| TxError::Store(StoreError::Invalid(format!("{what} {v} is too large"))))
}

impl PgStore {
    /// Connects to the database at `url` (a `postgres://…` URL or a
    /// key=value connection string) with at most `pool_size` connections,
    /// each cancelling statements that run longer than `statement_timeout`,
    /// and brings its schema up to date. No error repeats the URL.
    pub fn connect(
        url: &str,
        pool_size: usize,
        statement_timeout: Option<Duration>,
    ) -> Result<PgStore> {
        // tokio-postgres' parse errors do not repeat the URL, nor do ours.
        let (url, tls) = tls::split(url)?;
        let mut config = tokio_postgres::Config::from_str(&url)
            .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL: {e}")))?;
        if let Some(timeout) = statement_timeout {
            let options = format!(
                "{} -c statement_timeout={}",
                config.get_options().unwrap_or_default(),
                timeout.as_millis()
            );
            config.options(options.trim());
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("portcullis-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("starting the PostgreSQL runtime: {e}")))?;
        let connector = tls::connector(&tls)?;
        let manager = Manager::from_config(
            config.clone(),
            connector.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| StoreError::Backend(format!("PostgreSQL pool: {e}")))?;
        let store = PgStore {
            inner: Arc::new(Inner {
                rt: Some(rt),
                pool,
                config,
                tls: connector,
                uses: Arc::default(),
            }),
        };
        let mut client = store.client()?;
        futures::executor::block_on(migrate(&mut client))?;
        Ok(store)
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime> {
        self.inner
            .rt
            .as_ref()
            .ok_or_else(|| StoreError::Backend("the PostgreSQL runtime is gone".into()))
    }

    /// A connection from the pool; made (and its task started) on the
    /// store's runtime, so any thread may ask.
    fn client(&self) -> Result<deadpool_postgres::Object> {
        let pool = self.inner.pool.clone();
        let got =
            futures::executor::block_on(self.runtime()?.spawn(async move { pool.get().await }))
                .map_err(|e| StoreError::Backend(format!("PostgreSQL connection task: {e}")))?;
        got.map_err(pool_error)
    }

    /// Runs `body` as one READ COMMITTED transaction and commits it;
    /// again from the start after a serialization failure or a deadlock.
    /// A body that returns an error is rolled back.
    pub(super) fn write<T>(
        &self,
        what: &str,
        body: impl AsyncFn(&tokio_postgres::Transaction<'_>) -> TxResult<T>,
    ) -> Result<T> {
        crate::blocking::assert_may_block(what);
        self.transaction(IsolationLevel::ReadCommitted, false, body)
    }

    /// [`PgStore::write`] for a body that can run only once (it reads a
    /// stream): a serialization failure or a deadlock is reported, not
    /// run again.
    pub(super) fn write_once<T>(
        &self,
        what: &str,
        body: impl AsyncFnOnce(&tokio_postgres::Transaction<'_>) -> TxResult<T>,
    ) -> Result<T> {
        crate::blocking::assert_may_block(what);
        let mut client = self.client()?;
        futures::executor::block_on(async {
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::ReadCommitted)
                .start()
                .await
                .map_err(|e| db_error(&e))?;
            match body(&tx).await {
                Ok(v) => tx.commit().await.map(|()| v).map_err(|e| db_error(&e)),
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(to_store(e))
                }
            }
        })
    }

    /// Runs `body` as one transaction of `isolation`; see [`PgStore::write`].
    pub(super) fn transaction<T>(
        &self,
        isolation: IsolationLevel,
        read_only: bool,
        body: impl AsyncFn(&tokio_postgres::Transaction<'_>) -> TxResult<T>,
    ) -> Result<T> {
        let mut client = self.client()?;
        futures::executor::block_on(async {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let tx = client
                    .build_transaction()
                    .isolation_level(isolation)
                    .read_only(read_only)
                    .start()
                    .await
                    .map_err(|e| db_error(&e))?;
                let outcome = match body(&tx).await {
                    Ok(v) => tx.commit().await.map(|()| v).map_err(TxError::Db),
                    Err(e) => {
                        // A failed rollback leaves the connection broken;
                        // the pool drops it on its next recycle.
                        let _ = tx.rollback().await;
                        Err(e)
                    }
                };
                match outcome {
                    Err(e) if retryable(&e) && attempt < MAX_ATTEMPTS => continue,
                    other => return other.map_err(to_store),
                }
            }
        })
    }

    /// Runs `query` with a pooled connection on the store's runtime,
    /// within `deadline` (waiting for the connection included): for
    /// callers that must not hang (the reactors, `/healthz`).
    pub(super) fn bounded<T, F>(
        &self,
        deadline: Duration,
        query: impl FnOnce(deadpool_postgres::Object) -> F + Send + 'static,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = std::result::Result<T, tokio_postgres::Error>> + Send,
    {
        let pool = self.inner.pool.clone();
        let task = self.runtime()?.spawn(async move {
            tokio::time::timeout(deadline, async move {
                let client = pool.get().await.map_err(|e| match e {
                    deadpool_postgres::PoolError::Backend(e) => db_error(&e),
                    e => StoreError::Backend(format!("PostgreSQL pool: {e}")),
                })?;
                query(client).await.map_err(|e| db_error(&e))
            })
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Backend(format!(
                    "PostgreSQL: no answer within {} ms",
                    deadline.as_millis()
                )))
            })
        });
        futures::executor::block_on(task)
            .map_err(|e| StoreError::Backend(format!("PostgreSQL task: {e}")))?
    }

    /// Whether the database answers `SELECT 1` within `deadline`.
    pub(super) fn ping(&self, deadline: Duration) -> Result<()> {
        self.bounded(deadline, async |c| {
            c.execute("SELECT 1", &[]).await.map(|_| ())
        })
    }

    /// Runs `body` (reads, or a single statement that is atomic by
    /// itself) on a connection outside an explicit transaction.
    pub(super) fn read<T>(
        &self,
        body: impl AsyncFnOnce(&tokio_postgres::Client) -> TxResult<T>,
    ) -> Result<T> {
        let client = self.client()?;
        futures::executor::block_on(body(&client)).map_err(to_store)
    }

    /// [`PgStore::read`] of one statement, `sql`, prepared once per pooled
    /// connection (`prepare_cached`): one round trip where text takes two
    /// (prepared, then run). Only for statements whose generic plan is
    /// the one their values would get (lookups by key): after five runs
    /// PostgreSQL may keep a prepared statement's generic plan.
    pub(super) fn read_prepared<T>(
        &self,
        sql: &str,
        body: impl AsyncFnOnce(&tokio_postgres::Client, &tokio_postgres::Statement) -> TxResult<T>,
    ) -> Result<T> {
        let client = self.client()?;
        futures::executor::block_on(async {
            let statement = client.prepare_cached(sql).await?;
            body(&client, &statement).await
        })
        .map_err(to_store)
    }
}

impl PgStore {
    /// A connection of its own (out of the pool: it closes when the
    /// guard is dropped, which ends its session and so its lock) holding
    /// the session advisory lock migrations run under.
    pub(super) fn startup_lock(&self) -> Result<super::StartupLock> {
        crate::blocking::assert_may_block("waiting for the start-up lock");
        let client = self.client()?;
        futures::executor::block_on(
            client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]),
        )
        .map_err(|e| db_error(&e))?;
        Ok(super::StartupLock::holding(
            deadpool_postgres::Object::take(client),
        ))
    }

    /// The fingerprint of the first key is kept in `server_key`; a later
    /// different one is refused.
    pub(super) fn check_key_fingerprint(&self, fingerprint: &str) -> Result<()> {
        let recorded = self.read(async |c| {
            c.execute(
                "INSERT INTO server_key (fingerprint, recorded) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
                &[&fingerprint, &crate::domain::now()],
            )
            .await?;
            let row = c
                .query_one("SELECT fingerprint FROM server_key", &[])
                .await?;
            Ok(row.try_get::<_, String>("fingerprint")?)
        })?;
        if recorded != fingerprint {
            return Err(StoreError::Invalid(format!(
                "this server key (fingerprint {fingerprint}) is not the one the database's app \
                 passwords, API tokens and static tokens are hashed with (fingerprint \
                 {recorded}): copy server.key from an instance that uses this database"
            )));
        }
        Ok(())
    }
}

/// Applies the migrations this binary knows and the database has not
/// seen, under the migration advisory lock.
async fn migrate(client: &mut tokio_postgres::Client) -> Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| db_error(&e))?;
    let applied = apply_migrations(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| db_error(&e));
    applied.map_err(to_store)?;
    unlocked.map(|_| ())
}

async fn apply_migrations(client: &mut tokio_postgres::Client) -> TxResult<()> {
    // Under the lock, so no one creates it between the check and the
    // create (IF NOT EXISTS would log a NOTICE on every later start).
    let exists: bool = client
        .query_one("SELECT to_regclass('portcullis_schema') IS NOT NULL", &[])
        .await?
        .try_get(0)?;
    if !exists {
        client
            .batch_execute(
                "CREATE TABLE portcullis_schema (
                     version integer PRIMARY KEY,
                     applied bigint NOT NULL
                 )",
            )
            .await?;
    }
    let current: Option<i32> = client
        .query_one("SELECT max(version) FROM portcullis_schema", &[])
        .await?
        .try_get(0)?;
    let current = current.unwrap_or(0);
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if current > known {
        return Err(TxError::Store(StoreError::Backend(format!(
            "the database's schema is at version {current}, newer than this Portcullis knows \
             ({known}): upgrade Portcullis"
        ))));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO portcullis_schema (version, applied) VALUES ($1, $2)",
            &[version, &crate::domain::now()],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version, "PostgreSQL schema migrated");
    }
    Ok(())
}
