//! The LDAP connections of every instance ([`ConnectionBoard`]) in
//! PostgreSQL: `instances` (one row per running instance, refreshed every
//! [`HEARTBEAT`]) and `ldap_connections` (migration 4).
//!
//! An instance publishes its own bound connections in the background (a
//! task on the store's runtime writes what `mine` holds, so a bind never
//! waits for the database) and, after an outage, writes them all again.
//! A publication is written once it has [`SETTLE`]d: a connection that
//! binds, searches and closes within that time (a web application's
//! login, the commonest LDAP connection there is) never touches the
//! database, and one that lives on is listed everywhere within
//! [`SETTLE`] plus a write.
//! Instances not seen for [`GONE_AFTER_SECS`] (killed) are removed with their
//! connections by any other. Ending a connection held elsewhere is a
//! change row of kind `end`, which the holder's feed turns into
//! [`BoardEvent::End`]; a user disabled or deleted anywhere reaches every
//! instance's feed as [`BoardEvent::UserGone`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::feed::{Feed, CHANNEL};
use super::{pool_error, PgStore, TxResult};
use crate::store::{BoardEntry, BoardEvent, ConnectionBoard, Result, UserId};

/// How long a publication waits before it is written (what `mine` holds
/// then is written, or nothing if the connection came and went).
const SETTLE: Duration = Duration::from_millis(300);

/// How often an instance says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// An instance not seen for this long is not listed.
const LIVE_WITHIN_SECS: f64 = 30.0;

/// An instance not seen for this long is removed, with its connections.
const GONE_AFTER_SECS: f64 = 120.0;

/// Publications waiting for the writer; more mark everything to be
/// written again.
const QUEUE: usize = 4096;

pub(super) struct PgBoard {
    instance: Uuid,
    db: PgStore,
    feed: Arc<Feed>,
    mine: Arc<Mutex<HashMap<Uuid, BoardEntry>>>,
    queue: tokio::sync::mpsc::Sender<Uuid>,
    /// A publication was lost (queue full, database away): write all.
    dirty: Arc<AtomicBool>,
}

type Mine = Arc<Mutex<HashMap<Uuid, BoardEntry>>>;

fn lock(mine: &Mine) -> std::sync::MutexGuard<'_, HashMap<Uuid, BoardEntry>> {
    mine.lock().unwrap_or_else(|e| e.into_inner())
}

impl PgBoard {
    /// Starts this instance's writer on the store's runtime.
    pub fn start(db: PgStore, feed: Arc<Feed>, stop: CancellationToken) -> Result<PgBoard> {
        let (queue, rx) = tokio::sync::mpsc::channel(QUEUE);
        let board = PgBoard {
            instance: Uuid::new_v4(),
            db,
            feed,
            mine: Arc::default(),
            queue,
            dirty: Arc::new(AtomicBool::new(true)),
        };
        let writer = Writer {
            instance: board.instance,
            pool: board.db.inner.pool.clone(),
            mine: board.mine.clone(),
            dirty: board.dirty.clone(),
            written: Mutex::default(),
        };
        board.db.runtime()?.spawn(writer.run(rx, stop));
        Ok(board)
    }
}

fn entry_row(row: &tokio_postgres::Row) -> TxResult<BoardEntry> {
    Ok(BoardEntry {
        id: row.try_get("id")?,
        user: UserId(row.try_get("user_id")?),
        username: row.try_get("username")?,
        address: row.try_get("address")?,
        bound_at: row.try_get("bound_at")?,
        last_op: row.try_get("last_op")?,
    })
}

impl ConnectionBoard for PgBoard {
    fn publish(&self, id: Uuid, bound: Option<BoardEntry>) {
        {
            let mut mine = lock(&self.mine);
            match bound {
                Some(entry) => mine.insert(id, entry),
                None => mine.remove(&id),
            };
        }
        if self.queue.try_send(id).is_err() {
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    fn others(&self, user: Option<UserId>) -> Result<Vec<BoardEntry>> {
        let user = user.map(|u| u.0);
        self.db.read(async |c| {
            c.query(
                "SELECT c.id, c.user_id, c.username, c.address, c.bound_at, c.last_op \
                 FROM ldap_connections c JOIN instances i ON i.id = c.instance \
                 WHERE c.instance <> $1 \
                   AND i.seen > now() - make_interval(secs => $2) \
                   AND ($3::uuid IS NULL OR c.user_id = $3) \
                 ORDER BY c.bound_at, c.id",
                &[&self.instance, &LIVE_WITHIN_SECS, &user],
            )
            .await?
            .iter()
            .map(entry_row)
            .collect()
        })
    }

    fn end(&self, id: Uuid, user: Option<UserId>) -> Result<bool> {
        crate::blocking::assert_may_block("ending a connection of another instance");
        let user = user.map(|u| u.0);
        self.db.write("ending a connection", async |tx| {
            let held = tx
                .query_opt(
                    "SELECT 1 FROM ldap_connections c JOIN instances i ON i.id = c.instance \
                     WHERE c.id = $1 AND c.instance <> $2 \
                       AND i.seen > now() - make_interval(secs => $3) \
                       AND ($4::uuid IS NULL OR c.user_id = $4)",
                    &[&id, &self.instance, &LIVE_WITHIN_SECS, &user],
                )
                .await?;
            if held.is_none() {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO changes (kind, key) VALUES ('end', $1)",
                &[&id.to_string()],
            )
            .await?;
            tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL]).await?;
            Ok(true)
        })
    }

    fn subscribe(&self, on: Box<dyn Fn(BoardEvent) + Send + Sync>) {
        self.feed.subscribe(Arc::from(on));
    }
}

/// The background task that writes this instance's rows.
struct Writer {
    instance: Uuid,
    pool: deadpool_postgres::Pool,
    mine: Mine,
    dirty: Arc<AtomicBool>,
    /// The connections whose row is in the database (so a closed one
    /// that was never written costs no DELETE).
    written: Mutex<HashSet<Uuid>>,
}

impl Writer {
    async fn run(self, mut rx: tokio::sync::mpsc::Receiver<Uuid>, stop: CancellationToken) {
        let mut beat = tokio::time::interval(HEARTBEAT);
        // Publications waiting to settle, oldest first (one entry per
        // connection: a later publication is read when the first is due).
        let mut settling: VecDeque<(tokio::time::Instant, Uuid)> = VecDeque::new();
        let mut queued: HashSet<Uuid> = HashSet::new();
        loop {
            let due = settling.front().map(|(at, _)| *at);
            tokio::select! {
                () = stop.cancelled() => break,
                _ = beat.tick() => self.heartbeat().await,
                () = async { tokio::time::sleep_until(due.expect("guarded")).await }, if due.is_some() => {
                    if let Some((_, id)) = settling.pop_front() {
                        queued.remove(&id);
                        self.write(id).await;
                    }
                }
                got = rx.recv() => match got {
                    Some(id) => {
                        if queued.insert(id) {
                            settling.push_back((tokio::time::Instant::now() + SETTLE, id));
                        }
                    }
                    None => break,
                },
            }
        }
        // Stopped (the store closes): the rows go now rather than when
        // another instance notices this one is gone.
        if let Ok(c) = self.pool.get().await {
            let _ = c
                .execute("DELETE FROM instances WHERE id = $1", &[&self.instance])
                .await;
        }
    }

    fn written(&self) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn client(&self) -> Option<deadpool_postgres::Object> {
        match self.pool.get().await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!(error = %pool_error(e), "connection board: no connection");
                self.dirty.store(true, Ordering::Relaxed);
                None
            }
        }
    }

    /// Writes the row of connection `id` as `mine` holds it now.
    async fn write(&self, id: Uuid) {
        if self.dirty.load(Ordering::Relaxed) {
            return; // the next heartbeat writes everything
        }
        let entry = lock(&self.mine).get(&id).cloned();
        let was_written = self.written().contains(&id);
        if entry.is_none() && !was_written {
            // Came and went before it settled: nothing to write or remove,
            // and no connection needed.
            return;
        }
        let Some(c) = self.client().await else {
            return;
        };
        let done = match entry {
            Some(e) => upsert(&c, self.instance, &e).await.map(|()| {
                self.written().insert(id);
            }),
            None => c
                .execute("DELETE FROM ldap_connections WHERE id = $1", &[&id])
                .await
                .map(|_| {
                    self.written().remove(&id);
                }),
        };
        if let Err(e) = done {
            tracing::debug!(error = %e, "connection board: a write failed");
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// Says this instance is alive, removes instances gone, and after a
    /// lost write, writes every row of this instance again.
    async fn heartbeat(&self) {
        let Some(c) = self.client().await else {
            return;
        };
        let beat = async {
            c.execute(
                "INSERT INTO instances (id, seen) VALUES ($1, now()) \
                 ON CONFLICT (id) DO UPDATE SET seen = now()",
                &[&self.instance],
            )
            .await?;
            c.execute(
                "DELETE FROM instances WHERE seen < now() - make_interval(secs => $1)",
                &[&GONE_AFTER_SECS],
            )
            .await?;
            if self.dirty.swap(false, Ordering::Relaxed) {
                let all: Vec<BoardEntry> = lock(&self.mine).values().cloned().collect();
                let ids: Vec<Uuid> = all.iter().map(|e| e.id).collect();
                c.execute(
                    "DELETE FROM ldap_connections WHERE instance = $1 AND id <> ALL($2)",
                    &[&self.instance, &ids],
                )
                .await?;
                for e in &all {
                    upsert(&c, self.instance, e).await?;
                }
                *self.written() = ids.into_iter().collect();
            }
            Ok::<_, tokio_postgres::Error>(())
        };
        if let Err(e) = beat.await {
            tracing::debug!(error = %e, "connection board: heartbeat failed");
            self.dirty.store(true, Ordering::Relaxed);
        }
    }
}

async fn upsert(
    c: &deadpool_postgres::Object,
    instance: Uuid,
    e: &BoardEntry,
) -> std::result::Result<(), tokio_postgres::Error> {
    c.execute(
        "INSERT INTO ldap_connections (id, instance, user_id, username, address, bound_at, last_op) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id, \
           username = EXCLUDED.username, bound_at = EXCLUDED.bound_at, \
           last_op = EXCLUDED.last_op",
        &[
            &e.id,
            &instance,
            &e.user.0,
            &e.username,
            &e.address,
            &e.bound_at,
            &e.last_op,
        ],
    )
    .await
    .map(|_| ())
}
