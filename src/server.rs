//! `serve`: opens the store, bootstraps it, sets up TLS, starts the LDAP,
//! LDAPS and HTTP listeners and the admin socket, reloads the certificate on
//! SIGHUP, and on SIGTERM or ctrl-c stops accepting, lets operations in
//! flight finish, and flushes the store.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::account::AccountSettings;
use crate::admin::{self, AdminContext};
use crate::auth::keys::ServerKey;
use crate::auth::password::Hasher;
use crate::auth::Authenticator;
use crate::config::{Config, DatabaseUrl, StoreConfig};
use crate::directory::{Directory, DirectoryOptions};
use crate::ldap::accept::Listener;
use crate::ldap::conn::{ConnContext, ConnLimits, ListenerKind};
use crate::ldap::handler::{Confidentiality, Handler, Limits};
use crate::ldap::reactors::Reactors;
use crate::ldap::tls::Tls;
use crate::ldap::PagedBudget;
use crate::store::Store;

/// How long shutdown waits for connections to finish their operations.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the server until SIGTERM or ctrl-c.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // The ports first: a port in use stops the start before anything is
    // created (no store, no admin user, no initial password).
    let listener = TcpListener::bind(&config.ldap.addr)
        .await
        .and_then(Listener::new)
        .with_context(|| format!("while binding the LDAP listener to {}", config.ldap.addr))?;
    let local = listener.local_addr()?;
    let ldaps_listener = TcpListener::bind(&config.ldap.ldaps_addr)
        .await
        .and_then(Listener::new)
        .with_context(|| {
            format!(
                "while binding the LDAPS listener to {}",
                config.ldap.ldaps_addr
            )
        })?;
    let ldaps_local = ldaps_listener.local_addr()?;
    let http_listener = TcpListener::bind(&config.portal.addr)
        .await
        .with_context(|| format!("while binding the HTTP listener to {}", config.portal.addr))?;
    let http_local = http_listener.local_addr()?;

    let (store, hasher, server_key) = open_state(&config)?;
    // Other instances sharing the store wait here until this one checked
    // its key and bootstrapped (PostgreSQL; sled holds nothing).
    let startup = {
        let (store, key, config) = (store.clone(), server_key.clone(), config.clone());
        tokio::task::spawn_blocking(move || start_up(&store, &key, &config))
            .await
            .context("start-up task failed")??
    };
    first_start(&store, &hasher, &config).await?;
    drop(startup);
    let handler = Arc::new(ldap_handler(&config, &store, &hasher, &server_key, local));
    // The portal shares the LDAP handler's account service and
    // authenticator: one throttle, one set of codes.
    let portal = crate::portal::Portal::new(handler.accounts.clone(), handler.auth.clone());
    let tls = Tls::new(&config).context("while setting up TLS")?;
    let admin_listener = admin::socket::bind_admin_socket(&config.data_dir)?;

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut admin_ctx =
        AdminContext::new(store.clone(), hasher.clone(), &config).with_server_key(server_key);
    // `session list|end` see the LDAP listener's connections.
    admin_ctx.connections = handler.accounts.connections().clone();
    let admin_ctx = Arc::new(admin_ctx);
    let admin_task = tokio::spawn(admin::socket::serve_admin(
        admin_listener,
        admin_ctx.clone(),
        admin::socket::TransferSettings::of(&config),
        shutdown.clone(),
    ));
    let reactors = Arc::new(
        Reactors::start(config.ldap.reactor_threads)
            .context("while starting the LDAP reactor threads")?,
    );
    let ctx = Arc::new(ConnContext {
        handler,
        limits: conn_limits(&config),
        tls: Some(tls.clone()),
        permits: Arc::new(tokio::sync::Semaphore::new(config.ldap.max_connections)),
        max_connections: config.ldap.max_connections,
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
        reactors: Some(reactors.clone()),
    });
    let ldap_task = tokio::spawn(
        crate::ldap::listen(listener, ListenerKind::Plain, ctx.clone())
            .context("while setting up the LDAP listener")?,
    );
    let ldaps_task = tokio::spawn(
        crate::ldap::listen(ldaps_listener, ListenerKind::Ldaps, ctx.clone())
            .context("while setting up the LDAPS listener")?,
    );
    let http_task = tokio::spawn(crate::http::run(
        http_listener,
        crate::http::router(health(&config, &store)).merge(crate::portal::router(portal)),
        http_limits(&config),
        crate::http::Front {
            tls: config.portal.tls.then(|| tls.acceptor().clone()),
            trusted_proxies: config.portal.trusted_proxies.clone().into(),
        },
        shutdown.clone(),
    ));
    let reload_task = tokio::spawn(reload_on_sighup(tls.clone(), shutdown.clone()));
    // Finishes a backup in progress at shutdown, before the final flush.
    let backup_task = tokio::spawn(crate::backup::run(
        config.backup.clone(),
        store.clone(),
        admin_ctx.server_key.clone(),
        shutdown.clone(),
    ));
    tracing::info!(addr = %http_local, "HTTP listening (portal, /api/v1, /metrics, /healthz)");
    tracing::info!(addr = %ldaps_local, cert = %tls.cert_path().display(), "LDAPS listening");
    tracing::info!(addr = %local, base = %config.base_dn, "LDAP listening");
    // SIGTERM is handled from here on, before the lines below announce the
    // server: a stop sent as soon as they are read shuts down gracefully.
    let stop = wait_for_signal();
    // Lines on stdout that scripts and tests wait for; the ldap line last.
    println!("listening http://{http_local}");
    println!("listening ldaps://{ldaps_local}");
    println!("listening ldap://{local}");
    warm_caches(ctx.handler.directory.clone(), shutdown.clone());

    stop.await;
    tracing::info!("shutting down: draining connections");
    shutdown.cancel();
    let _ = ldap_task.await;
    let _ = ldaps_task.await;
    let _ = admin_task.await;
    let _ = reload_task.await;
    let _ = backup_task.await;
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still busy after {DRAIN_TIMEOUT:?}; closing them");
    }
    // Bounded: the HTTP listener drops what is left after portal.drain_secs.
    let _ = http_task.await;
    // The reactor threads go last: every connection has ended (or been
    // given up on) by now. Joining them blocks, so not on the runtime.
    drop(ctx);
    let _ = tokio::task::spawn_blocking(move || drop(reactors)).await;
    store.flush().context("while flushing the store")?;
    let _ = std::fs::remove_file(config.data_dir.join("admin.sock"));
    tracing::info!("stopped");
    Ok(())
}

/// Fills what lookups keep ([`Directory::warm`]) on a thread of its own,
/// so that the first logins after a restart do not each walk the store's
/// pages, in the time requests leave: it pauses while operations keep
/// being answered ([`Pacer`]). Stops at shutdown; a failure costs only the
/// warmth.
fn warm_caches(directory: Directory, shutdown: CancellationToken) {
    let spawned = std::thread::Builder::new()
        .name("cache-warm".into())
        .spawn(move || {
            let began = std::time::Instant::now();
            let pacer = Pacer::new(&shutdown, crate::metrics::operations_answered);
            match directory.warm(&|| pacer.stop()) {
                Ok(w) if w.users + w.groups > 0 => tracing::info!(
                    users = w.users,
                    groups = w.groups,
                    complete = w.complete,
                    ms = began.elapsed().as_millis() as u64,
                    "lookup caches warmed"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "warming the lookup caches failed; lookups fill them")
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the cache-warming thread; lookups fill the caches");
    }
}

/// Users the warm passes between two looks at the server's activity.
const WARM_STRIDE: u32 = 64;
/// The first pause of a busy warm; it doubles up to [`WARM_PAUSE_MAX`]
/// while operations keep being answered.
const WARM_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);
const WARM_PAUSE_MAX: std::time::Duration = std::time::Duration::from_millis(64);

/// When the cache warm goes on: every [`WARM_STRIDE`] users it looks at
/// the count of operations answered (`answered`), and while that count
/// moved since its last look it sleeps and looks again. So the warm runs
/// in the time requests leave, at normal priority. Run at the lowest
/// priority instead it held the caches' locks when the scheduler took it
/// off the CPU, and with the cores busy it waited there: at 1M users,
/// searches that started with the server waited up to 230 ms for a lock
/// (9 ms without the warm). Paused, it holds none; running, it is back
/// on the CPU as soon as any thread.
struct Pacer<'a, A: Fn() -> u64> {
    shutdown: &'a CancellationToken,
    answered: A,
    seen: std::cell::Cell<u64>,
    calls: std::cell::Cell<u32>,
}

impl<'a, A: Fn() -> u64> Pacer<'a, A> {
    fn new(shutdown: &'a CancellationToken, answered: A) -> Self {
        let seen = std::cell::Cell::new(answered());
        Pacer {
            shutdown,
            answered,
            seen,
            calls: std::cell::Cell::new(0),
        }
    }

    /// Asked after each user: true to stop (shutdown). Sleeps while the
    /// server is answering operations.
    fn stop(&self) -> bool {
        let calls = self.calls.get().wrapping_add(1);
        self.calls.set(calls);
        if !calls.is_multiple_of(WARM_STRIDE) {
            return self.shutdown.is_cancelled();
        }
        let mut pause = WARM_PAUSE;
        loop {
            if self.shutdown.is_cancelled() {
                return true;
            }
            let now = (self.answered)();
            if now == self.seen.replace(now) {
                return false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(WARM_PAUSE_MAX);
        }
    }
}

/// What `/healthz` reports of the store: its backend, and for
/// PostgreSQL whether the database answers a bounded probe.
fn health(config: &Config, store: &Store) -> crate::http::Health {
    match &config.store {
        StoreConfig::Sled(_) => crate::http::Health::embedded("sled"),
        StoreConfig::Postgres(_) => {
            let store = store.clone();
            crate::http::Health::with_database("postgres", move || match store.ping() {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "/healthz: the database does not answer");
                    false
                }
            })
        }
    }
}

/// The store, the password hasher and the server key of the data
/// directory (created on first start).
fn open_state(config: &Config) -> anyhow::Result<(Store, Hasher, ServerKey)> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "while creating the data directory {}",
            config.data_dir.display()
        )
    })?;
    // A store held by another process says so itself; other failures get
    // no guess about why.
    let store = open_store(config).with_context(|| match &config.store {
        StoreConfig::Sled(_) => format!("while opening the store in {}", config.data_dir.display()),
        StoreConfig::Postgres(_) => "while opening the PostgreSQL store".to_string(),
    })?;
    let hasher = Hasher::new(&config.auth)
        .context("while setting up password hashing")?
        .with_queue_limit(config.ldap.max_queued_binds);
    let server_key = ServerKey::load_or_create(&config.data_dir).with_context(|| {
        format!(
            "while loading the server key {}",
            config.data_dir.join(crate::auth::keys::FILE_NAME).display()
        )
    })?;
    Ok((store, hasher, server_key))
}

/// What the process that opens the store does with it, which decides how
/// much it keeps in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// `serve`: sled with its configured caches; PostgreSQL with this
    /// instance's read model, fed by the change feed.
    Serving,
    /// The CLI with the server stopped: sled with a smaller page cache
    /// ([`Store::open_sled_offline`]); PostgreSQL as for `serve` (a command
    /// may read many users, which the model answers without a round trip
    /// each).
    Offline,
    /// The CLI moving the whole directory in or out with the server
    /// stopped (`import`, `export`, the source of `migrate-store`): as
    /// [`Opening::Offline`], but PostgreSQL without a read model
    /// ([`Store::connect_postgres_direct`]). These commands read the
    /// directory once (a streamed snapshot) or write it in one batch
    /// (an LDIF import's streamed, a restore's); a model would only be
    /// read whole at the start and again after the commit (some 1.8 GiB
    /// at a million users).
    Transfer,
}

/// The configured store: sled in the data directory, or PostgreSQL with
/// the URL from `store.url` or `store.url_file`. No error names the URL.
pub fn open_store(config: &Config) -> crate::store::Result<Store> {
    open_store_as(config, Opening::Serving)
}

/// [`open_store`] for what `opening` does with it.
pub fn open_store_as(config: &Config, opening: Opening) -> crate::store::Result<Store> {
    match &config.store {
        StoreConfig::Sled(sled) if opening == Opening::Serving => Store::open_sled(
            &config.data_dir,
            sled.record_cache_bytes(),
            sled.page_cache_bytes(),
        ),
        StoreConfig::Sled(sled) => {
            Store::open_sled_offline(&config.data_dir, sled.record_cache_bytes())
        }
        StoreConfig::Postgres(pg) => {
            let url = match &pg.url {
                DatabaseUrl::Text(url) => url.clone(),
                DatabaseUrl::File(path) => std::fs::read_to_string(path)
                    .map_err(|e| {
                        crate::store::StoreError::Backend(format!(
                            "reading store.url_file {}: {e}",
                            path.display()
                        ))
                    })?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            };
            if opening == Opening::Transfer {
                Store::connect_postgres_direct(&url, pg.pool_size, pg.statement_timeout)
            } else {
                Store::connect_postgres(&url, pg.pool_size, pg.statement_timeout)
            }
        }
    }
}

/// The start-up steps every process that opens the store runs before it
/// bootstraps: it waits for the store's start-up lock (other instances on
/// the same PostgreSQL database go on once it is dropped; sled holds
/// nothing) and checks that its server key is the one the store's keyed
/// hashes were made with. Blocking: run it off the reactor.
pub fn start_up(
    store: &Store,
    key: &ServerKey,
    config: &Config,
) -> anyhow::Result<crate::store::StartupLock> {
    let lock = store
        .startup_lock()
        .context("while waiting for the store's start-up lock")?;
    store
        .check_key_fingerprint(&key.fingerprint())
        .with_context(|| {
            format!(
                "the server key {} does not fit the store",
                config.data_dir.join(crate::auth::keys::FILE_NAME).display()
            )
        })?;
    Ok(lock)
}

/// Bootstrap on the blocking pool; prints the initial admin password the
/// first time.
async fn first_start(store: &Store, hasher: &Hasher, config: &Config) -> anyhow::Result<()> {
    let pw_path = config.initial_password_path();
    let (store, hasher, config) = (store.clone(), hasher.clone(), config.clone());
    let first =
        tokio::task::spawn_blocking(move || admin::bootstrap::bootstrap(&store, &hasher, &config))
            .await
            .context("bootstrap task failed")??;
    if let Some(password) = first {
        println!(
            "initial admin password: {password} (also written to {})",
            pw_path.display()
        );
    }
    Ok(())
}

/// The LDAP operation handler: the read model, the bind decisions and the
/// limits, for a plain listener on `local`.
fn ldap_handler(
    config: &Config,
    store: &Store,
    hasher: &Hasher,
    server_key: &ServerKey,
    local: std::net::SocketAddr,
) -> Handler {
    let directory = Directory::with_options(
        store.clone(),
        config.base_dn.clone(),
        &config.ldap.admin_group,
        &config.ldap.search_group,
        DirectoryOptions {
            transitive_member_of: config.ldap.transitive_member_of,
        },
    );
    let mut handler = Handler::new(
        directory,
        Authenticator::configured(
            store.clone(),
            hasher.clone(),
            server_key.clone(),
            config.auth_settings(),
        ),
        Limits {
            size_limit: config.ldap.size_limit,
            time_limit: config.ldap.time_limit,
        },
    );
    handler.paged = PagedBudget::new(
        config.ldap.paged_results_max_bytes,
        config.ldap.paged_results_idle,
    );
    handler.confidentiality = Confidentiality {
        policy: config.ldap.require_tls_for_bind,
        plain_listener: local.ip(),
    };
    handler.accounts = handler
        .accounts
        .clone()
        .with_initial_password_file(config.initial_password_path())
        .with_settings(AccountSettings::from_config(config))
        .with_session_settings(crate::account::sessions::SessionSettings {
            idle: config.portal.session_idle,
            absolute: config.portal.session_max,
        })
        .with_profile_defaults(config.portal.can_change)
        .with_portal_rules(
            &config.bind.totp_issuer,
            config.portal.token_lifetimes,
            config.portal.end_sessions_on_password_change,
        );
    handler
}

fn conn_limits(config: &Config) -> ConnLimits {
    ConnLimits {
        max_message_bytes: config.ldap.max_message_bytes,
        max_ber_depth: config.ldap.max_ber_depth,
        max_ops: config.ldap.max_ops_per_connection,
        tls_handshake_timeout: config.ldap.tls_handshake_timeout,
        first_message_timeout: config.ldap.first_message_timeout,
        idle_timeout: config.ldap.idle_timeout,
    }
}

fn http_limits(config: &Config) -> crate::http::HttpLimits {
    let portal = &config.portal;
    crate::http::HttpLimits {
        max_connections: portal.max_connections,
        header_timeout: portal.header_timeout,
        idle_timeout: portal.idle_timeout,
        max_body_bytes: portal.max_body_bytes,
        drain: portal.drain,
    }
}

/// Reads the certificate files again on each SIGHUP; connections stay up
/// and new handshakes get the new certificate. A bad file keeps the old one.
async fn reload_on_sighup(tls: Tls, shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; no certificate reload");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                got = hup.recv() => if got.is_none() { return },
            }
            match tls.reload() {
                Ok(fingerprint) => {
                    tracing::info!(cert = %tls.cert_path().display(), sha256 = %fingerprint, "TLS certificate reloaded")
                }
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate reload failed; keeping the old one")
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (tls, shutdown);
    }
}

/// Completes on SIGTERM or ctrl-c. The SIGTERM handler is installed when
/// this is called, not when the future is first polled.
fn wait_for_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        #[cfg(unix)]
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; ctrl-c only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// The warm goes on while nothing is answered, sleeps until the count
    /// of operations answered stops moving, and stops at shutdown even
    /// while it waits.
    #[test]
    fn the_warm_pauses_while_operations_are_answered() {
        let shutdown = CancellationToken::new();
        let reads = Cell::new(0usize);
        // The count at each read: quiet for the first look, then answers
        // between the second look and the sleep after it, then quiet.
        let counts = [10u64, 10, 15, 21, 21, 21];
        let answered = || {
            let i = reads.get();
            reads.set(i + 1);
            counts[i.min(counts.len() - 1)]
        };
        let pacer = Pacer::new(&shutdown, answered);
        for _ in 0..WARM_STRIDE {
            assert!(!pacer.stop());
        }
        assert_eq!(reads.get(), 2, "one look per stride, none between");
        let began = std::time::Instant::now();
        for _ in 0..WARM_STRIDE {
            assert!(!pacer.stop());
        }
        assert_eq!(reads.get(), 5, "moved, moved, still: three more looks");
        assert!(began.elapsed() >= WARM_PAUSE * 3, "slept 2 ms, then 4");
        for _ in 0..WARM_STRIDE {
            assert!(!pacer.stop());
        }
        assert_eq!(reads.get(), 6, "quiet again: on at once");

        // Busy for good: the warm waits until the shutdown.
        let moving = std::sync::atomic::AtomicU64::new(0);
        let busy = Pacer::new(&shutdown, || {
            moving.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        });
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(30));
                shutdown.cancel();
            });
            let stopped = (0..WARM_STRIDE).any(|_| busy.stop());
            assert!(stopped, "the shutdown ends the wait");
        });
        assert!(pacer.stop(), "and every later question");
    }
}
