//! `serve`: opens the store, bootstraps it, starts the LDAP listener and the
//! admin socket, and on SIGTERM or ctrl-c stops accepting, lets operations
//! in flight finish, and flushes the store.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, AdminContext};
use crate::auth::keys::ServerKey;
use crate::auth::password::Hasher;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::directory::{Directory, Dn};
use crate::ldap::handler::{Handler, Limits};
use crate::store::Store;

/// How long shutdown waits for connections to finish their operations.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the server until SIGTERM or ctrl-c.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let base = Dn::parse(&config.base_dn)
        .with_context(|| format!("base DN {:?} is not a valid DN", config.base_dn))?;
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "while creating the data directory {}",
            config.data_dir.display()
        )
    })?;
    let store = Store::open(&config.data_dir).with_context(|| {
        format!(
            "while opening the store in {} (is another portcullis running on it?)",
            config.data_dir.display()
        )
    })?;
    let hasher = Hasher::new(&config.auth).context("while setting up password hashing")?;
    let server_key = ServerKey::load_or_create(&config.data_dir).with_context(|| {
        format!(
            "while loading the server key {}",
            config.data_dir.join(crate::auth::keys::FILE_NAME).display()
        )
    })?;
    {
        let pw_path = config.initial_password_path();
        let (store, hasher, config) = (store.clone(), hasher.clone(), config.clone());
        let first = tokio::task::spawn_blocking(move || {
            admin::bootstrap::bootstrap(&store, &hasher, &config)
        })
        .await
        .context("bootstrap task failed")??;
        if let Some(password) = first {
            println!(
                "initial admin password: {password} (also written to {})",
                pw_path.display()
            );
        }
    }

    let directory = Directory::new(
        store.clone(),
        base,
        &config.ldap.admin_group,
        &config.ldap.search_group,
    );
    let handler = Arc::new(Handler::new(
        directory,
        Authenticator::configured(
            store.clone(),
            hasher.clone(),
            server_key.clone(),
            config.auth_settings(),
        ),
        Limits {
            size_limit: config.ldap.size_limit,
            time_limit: Some(Duration::from_secs(config.ldap.time_limit_secs))
                .filter(|d| !d.is_zero()),
        },
    ));

    let listener = TcpListener::bind(&config.ldap.addr)
        .await
        .with_context(|| format!("while binding the LDAP listener to {}", config.ldap.addr))?;
    let local = listener.local_addr()?;
    let admin_listener = admin::socket::bind_admin_socket(&config.data_dir)?;

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let admin_ctx = Arc::new(
        AdminContext::new(store.clone(), hasher.clone(), &config).with_server_key(server_key),
    );
    let admin_task = tokio::spawn(admin::socket::serve_admin(
        admin_listener,
        admin_ctx,
        shutdown.clone(),
    ));
    let ldap_task = tokio::spawn(crate::ldap::run(
        listener,
        handler,
        config.ldap.max_connections,
        shutdown.clone(),
        tracker.clone(),
    ));
    tracing::info!(addr = %local, base = %config.base_dn, "LDAP listening");
    // One line on stdout that scripts and tests wait for.
    println!("listening ldap://{local}");

    wait_for_signal().await;
    tracing::info!("shutting down: draining connections");
    shutdown.cancel();
    let _ = ldap_task.await;
    let _ = admin_task.await;
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still busy after {DRAIN_TIMEOUT:?}; closing them");
    }
    store.flush().context("while flushing the store")?;
    let _ = std::fs::remove_file(config.data_dir.join("admin.sock"));
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
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
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
