//! The change feed: how an instance's read model ([`model::Data`]) follows
//! the database.
//!
//! Triggers (migration 4) add a row to `changes` for every write to the
//! tables the model holds, in the writing transaction, and notify the
//! channel `portcullis_changes` at commit. [`Feed::catch_up`] reads the
//! rows past the instance's position and reads again the records they
//! name. It runs:
//! - on the listener's own connection ([`listen`], one per instance, out
//!   of the pool) on every notification, on a short poll
//!   ([`POLL`]: a notification lost costs at most that) and after every
//!   reconnect;
//! - on a pooled connection after every write made through this instance
//!   (read-your-writes) and before every bind (credentials are decided on
//!   a model that is current), by the store layer (`served`).
//!
//! # Positions and holes
//! `seq` numbers are taken when a transaction writes its row, not when it
//! commits, so a later number may become visible first. The position is
//! the highest number applied plus the lower numbers not seen yet
//! (holes), which every catch-up asks for again until they appear or
//! [`HOLE_TTL`] passes (a rolled back transaction leaves a hole forever).
//! Catch-ups are serialized, and one that began after a caller asked
//! serves it ([`Feed::catch_up`]); concurrent callers share a round trip.
//!
//! # Full loads
//! At start, after more than [`FULL_LOAD_AFTER`] changes at once (an
//! import), when the listener connects again after losing the database
//! (a failover to a replica that lacks the last commits takes numbers
//! again; rows may have been pruned meanwhile), and when no catch-up
//! succeeded for [`PRUNE_AGE`]/2, the model is read whole in one `REPEATABLE
//! READ` transaction together with the feed's position, and swapped in:
//! readers keep the old model meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_postgres::types::Type;
use tokio_postgres::{AsyncMessage, GenericClient};
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;

use super::model::{Data, Loaded, Wanted};
use super::TxResult;
use crate::store::BoardEvent;

/// The channel the triggers notify.
pub(super) const CHANNEL: &str = "portcullis_changes";

/// The fallback poll: a lost notification is seen this late at most.
pub(super) const POLL: Duration = Duration::from_millis(250);

/// How long a number not seen yet is asked for again.
const HOLE_TTL: Duration = Duration::from_secs(600);

/// How far below the position a full load looks for holes.
const HOLE_WINDOW: i64 = 1000;

/// More changes than this in one catch-up: read everything instead.
const FULL_LOAD_AFTER: i64 = 5000;

/// Change rows older than this are pruned (by any instance's listener).
const PRUNE_AGE: Duration = Duration::from_secs(900);

/// How often the listener prunes.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Longest wait for one incremental catch-up on the listener's
/// connection before it is dropped and made again (a silent network).
const LISTENER_WAIT: Duration = Duration::from_secs(5);

/// Longest wait for a full load.
const FULL_LOAD_WAIT: Duration = Duration::from_secs(600);

/// The feed's rows after a position and in its holes: what a catch-up
/// reads on every bind. Sent with its parameters' types in one round trip
/// (text alone is prepared first: a second one), and planned for the
/// values each time: a prepared statement's generic plan walks the whole
/// feed's index for `seq > $1` (3.5 ms against 0.06 at 12,000 rows).
const CHANGES_AFTER: &str = "SELECT seq, kind, key FROM changes \
     WHERE seq > $1 OR seq = ANY($2) ORDER BY seq LIMIT $3";

/// A catch-up that did not finish in time (the model stays as it was).
fn late(what: &str) -> super::TxError {
    super::TxError::Store(crate::store::StoreError::Backend(format!(
        "PostgreSQL change feed: {what} took too long"
    )))
}

/// The longest the listener waits between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The read model of one instance and its position in the feed.
pub(super) struct Feed {
    data: RwLock<Data>,
    pos: Mutex<Position>,
    /// One catch-up at a time, so an older read of a record never
    /// replaces a newer one.
    serial: tokio::sync::Mutex<()>,
    /// Catch-ups asked for, and the highest request served by one that
    /// began after it was made.
    requested: AtomicU64,
    served: AtomicU64,
    /// Whether the listener is connected and caught up.
    connected: AtomicBool,
    /// Told of connections to end and users disabled or gone
    /// (`board`).
    subscribers: Mutex<Vec<Subscriber>>,
}

type Subscriber = Arc<dyn Fn(BoardEvent) + Send + Sync>;

struct Position {
    /// The highest number applied; `None` before the first full load.
    last: Option<i64>,
    /// Numbers below `last` not seen yet, with when they were first missed.
    holes: BTreeMap<i64, Instant>,
    /// When a catch-up last succeeded.
    succeeded: Instant,
}

impl Feed {
    pub fn new() -> Feed {
        Feed {
            data: RwLock::new(Data::default()),
            pos: Mutex::new(Position {
                last: None,
                holes: BTreeMap::new(),
                succeeded: Instant::now(),
            }),
            serial: tokio::sync::Mutex::new(()),
            requested: AtomicU64::new(0),
            served: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            subscribers: Mutex::new(Vec::new()),
        }
    }

    /// Calls `on` with every event the feed brings from now on.
    pub fn subscribe(&self, on: Subscriber) {
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(on);
    }

    /// Tells the subscribers, outside every lock of the model.
    fn emit(&self, events: Vec<BoardEvent>) {
        if events.is_empty() {
            return;
        }
        let subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for event in events {
            for on in &subscribers {
                on(event);
            }
        }
    }

    /// The model, for reading. Held only for the copy a read makes.
    pub fn data(&self) -> RwLockReadGuard<'_, Data> {
        // Every change to `Data` is applied whole under the write lock;
        // a panic in between is a bug, and the model stays readable.
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    fn pos(&self) -> std::sync::MutexGuard<'_, Position> {
        self.pos.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the listener is connected (the model follows within
    /// [`POLL`]).
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Brings the model up to every change committed before the call.
    /// `wait` bounds the wait for another catch-up in progress and an
    /// incremental one; a full load (only when `whole`: a bind never
    /// waits for one, it goes on with the model as it is) is bounded by
    /// [`FULL_LOAD_WAIT`].
    pub async fn catch_up(
        &self,
        c: &impl GenericClient,
        whole: bool,
        wait: Duration,
    ) -> TxResult<()> {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _one = tokio::time::timeout(wait, self.serial.lock())
            .await
            .map_err(|_| late("another catch-up is still running"))?;
        if self.served.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        // Every request up to here was made before the reads below begin.
        let covering = self.requested.load(Ordering::SeqCst);
        self.catch_up_alone(c, whole, wait).await?;
        self.served.store(covering, Ordering::SeqCst);
        Ok(())
    }

    async fn catch_up_alone(
        &self,
        c: &impl GenericClient,
        whole: bool,
        wait: Duration,
    ) -> TxResult<()> {
        let (last, holes, stale) = {
            let mut p = self.pos();
            let now = Instant::now();
            p.holes
                .retain(|_, since| now.duration_since(*since) < HOLE_TTL);
            (
                p.last,
                p.holes.keys().copied().collect::<Vec<i64>>(),
                p.succeeded.elapsed() > PRUNE_AGE / 2,
            )
        };
        let full = async || {
            if !whole {
                return Err(late("the read model is being loaded whole"));
            }
            match tokio::time::timeout(FULL_LOAD_WAIT, self.full_load(c)).await {
                Ok(done) => done,
                Err(_) => {
                    // Dropped inside its transaction: end it.
                    let _ = c.batch_execute("ROLLBACK").await;
                    Err(late("loading the read model whole"))
                }
            }
        };
        let Some(last) = last.filter(|_| !stale) else {
            return full().await;
        };
        let rows = tokio::time::timeout(
            wait,
            c.query_typed(
                CHANGES_AFTER,
                &[
                    (&last, Type::INT8),
                    (&holes, Type::INT8_ARRAY),
                    (&(FULL_LOAD_AFTER + 1), Type::INT8),
                ],
            ),
        )
        .await
        .map_err(|_| late("reading the change feed"))??;
        if rows.len() as i64 > FULL_LOAD_AFTER {
            return full().await;
        }
        let mut wanted = Wanted::default();
        let mut seen = BTreeSet::new();
        let mut events = Vec::new();
        for row in &rows {
            let kind: &str = row.try_get("kind")?;
            let key: &str = row.try_get("key")?;
            if kind == "end" {
                events.extend(uuid::Uuid::parse_str(key).ok().map(BoardEvent::End));
            }
            wanted.note(kind, key);
            seen.insert(row.try_get::<_, i64>("seq")?);
        }
        let loaded = if wanted.is_empty() {
            None
        } else {
            Some(
                tokio::time::timeout(wait, Loaded::read(c, &wanted))
                    .await
                    .map_err(|_| late("reading changed records"))??,
            )
        };
        let mut data = self.data.write().unwrap_or_else(|e| e.into_inner());
        if let Some(loaded) = loaded {
            events.extend(data.apply(loaded).into_iter().map(BoardEvent::UserGone));
        }
        drop(data);
        self.emit(events);
        let mut p = self.pos();
        let now = Instant::now();
        let mut top = p.last.unwrap_or(last);
        for &seq in &seen {
            p.holes.remove(&seq);
            if seq > top {
                for missing in (top + 1)..seq {
                    p.holes.insert(missing, now);
                }
                top = seq;
            }
        }
        p.last = Some(top);
        p.succeeded = now;
        Ok(())
    }

    /// Reads the whole model and the feed's position at one instant.
    async fn full_load(&self, c: &impl GenericClient) -> TxResult<()> {
        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let read = async {
            let top: i64 = c
                .query_one("SELECT coalesce(max(seq), 0) FROM changes", &[])
                .await?
                .try_get(0)?;
            let present: BTreeSet<i64> = c
                .query(
                    "SELECT seq FROM changes WHERE seq > $1",
                    &[&(top - HOLE_WINDOW)],
                )
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            Ok::<_, super::TxError>((top, present, Data::load(c).await?))
        }
        .await;
        let end = if read.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = c.batch_execute(end).await;
        let (top, present, data) = read?;
        ended?;
        let now = Instant::now();
        let gone = {
            let mut held = self.data.write().unwrap_or_else(|e| e.into_inner());
            let gone = held.gone_in(&data);
            *held = data;
            gone
        };
        self.emit(gone.into_iter().map(BoardEvent::UserGone).collect());
        let mut p = self.pos();
        p.holes = ((top - HOLE_WINDOW).max(0) + 1..=top)
            .filter(|s| !present.contains(s))
            .map(|s| (s, now))
            .collect();
        p.last = Some(top);
        p.succeeded = now;
        tracing::debug!(position = top, "read model loaded");
        Ok(())
    }
}

/// The listener of one instance: its own connection, `LISTEN`, a
/// catch-up on every notification, every [`POLL`] and after every
/// reconnect; reconnects by itself with a backoff. Runs until `stop`.
pub(super) async fn listen(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    feed: Arc<Feed>,
    stop: CancellationToken,
) {
    const FIRST_BACKOFF: Duration = Duration::from_millis(50);
    let mut backoff = FIRST_BACKOFF;
    let mut failing = false;
    loop {
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            r = session(&config, &tls, &feed, &stop, &mut failing) => r,
        };
        // A connection that worked starts the backoff over.
        if feed.connected.swap(false, Ordering::Relaxed) {
            backoff = FIRST_BACKOFF;
        }
        match outcome {
            Ok(()) => return,
            Err(e) => {
                // Said once per outage, not on every attempt.
                if !failing {
                    tracing::warn!(error = %e, "lost the PostgreSQL change feed; reconnecting");
                    failing = true;
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: `Ok` when stopped, `Err` when it failed.
async fn session(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    feed: &Feed,
    stop: &CancellationToken,
    failing: &mut bool,
) -> Result<(), String> {
    let text = |e: tokio_postgres::Error| format!("PostgreSQL: {e}");
    let (client, mut connection) = config.connect(tls.clone()).await.map_err(text)?;
    let (tx, mut notified) = tokio::sync::mpsc::channel::<()>(1);
    // Drives the connection and passes notifications on (one pending is
    // enough: a catch-up reads everything up to now). Ends, closing the
    // channel, when the connection does.
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let AsyncMessage::Notification(_) = m {
                let _ = tx.try_send(());
            }
        }
    });
    let step = async || -> Result<(), String> {
        feed.catch_up(&client, true, LISTENER_WAIT)
            .await
            .map_err(|e| super::to_store(e).to_string())
    };
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(text)?;
    if *failing {
        // Back after an outage: the database may be another one now (a
        // replica promoted without the last commits, so numbers taken
        // again) or have pruned rows this instance never read. Read it
        // whole rather than trust the position.
        feed.pos().last = None;
    }
    step().await?;
    feed.connected.store(true, Ordering::Relaxed);
    if *failing {
        tracing::info!("PostgreSQL change feed connected again");
        *failing = false;
    }
    let mut pruned = Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            got = notified.recv() => if got.is_none() {
                return Err("the listener's connection closed".into());
            },
            () = tokio::time::sleep(POLL) => {}
        }
        step().await?;
        if pruned.elapsed() > PRUNE_EVERY {
            pruned = Instant::now();
            client
                .execute(
                    "DELETE FROM changes WHERE at < clock_timestamp() - make_interval(secs => $1)",
                    &[&(PRUNE_AGE.as_secs_f64())],
                )
                .await
                .map_err(text)?;
        }
    }
}
