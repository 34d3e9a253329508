//! `migrate-store --to TARGET`: the configured store copied whole into a
//! new, empty one of either backend (`crate::migrate::store` does the
//! copy and the count check; this module opens both sides and prints).
//!
//! - The source is the configured store. A sled store must be stopped:
//!   a server that answers on the admin socket is refused at once, and
//!   sled's own lock refuses any other process holding it. A PostgreSQL
//!   source may be serving: the copy is one consistent snapshot.
//! - `postgres://…` (or `postgresql://…`): the database is migrated to the
//!   current schema, must hold nothing, and records the fingerprint of the
//!   source's `server.key` before anything is written; the copy runs under
//!   the database's start-up lock, so an instance started meanwhile cannot
//!   bootstrap into it. The URL (and so its password) is never printed.
//! - `sled:PATH`: PATH becomes a data directory: its store must be new or
//!   empty, and it gets the source's `server.key` (a different key there is
//!   refused). A copy that fails removes the store it created.
//!
//! Keyed hashes (app passwords, API tokens, static tokens) are copied as
//! they are, so every instance of the target must use the source's key:
//! the output says so.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;

use super::{looks_locked, UsageError};
use crate::admin::socket::AdminClient;
use crate::admin::transfer::{read_server_key, write_private_atomically};
use crate::auth::keys::{self, ServerKey};
use crate::config::{Config, StoreConfig};
use crate::migrate::store::{self as copier, Copied, CopyError, KINDS};
use crate::store::Store;

#[derive(Debug, Args, PartialEq)]
pub struct MigrateStoreArgs {
    /// Where to copy the store: `postgres://USER:PASSWORD@HOST:PORT/DB`
    /// (an empty database) or `sled:PATH` (a new data directory).
    #[arg(long, value_name = "TARGET")]
    pub to: TargetText,
}

/// `--to` as typed. Its `Debug` hides it: a PostgreSQL URL holds a password.
#[derive(Clone, PartialEq)]
pub struct TargetText(pub String);

impl std::fmt::Debug for TargetText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TargetText(********)")
    }
}

impl From<String> for TargetText {
    fn from(s: String) -> TargetText {
        TargetText(s)
    }
}

/// A parsed `--to`.
enum Target {
    Postgres(String),
    Sled(PathBuf),
}

impl Target {
    /// The refusal never repeats the text: it may be a URL with a password.
    fn parse(text: &str) -> Result<Target, UsageError> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Target::Postgres(text.to_string()));
        }
        if let Some(path) = text.strip_prefix("sled:") {
            if path.is_empty() {
                return Err(UsageError("--to sled:PATH needs a path".into()));
            }
            return Ok(Target::Sled(PathBuf::from(path)));
        }
        Err(UsageError(
            "--to must be postgres://USER:PASSWORD@HOST:PORT/DB or sled:PATH".into(),
        ))
    }
}

pub fn run(config: &Config, args: MigrateStoreArgs, json: bool) -> anyhow::Result<()> {
    let target = Target::parse(&args.to.0)?;
    let source = open_source(config)?;
    let key = source_key(config, &source)?;
    // The keyed hashes are copied as they are: they must be this key's.
    source
        .check_key_fingerprint(&key.fingerprint())
        .with_context(|| {
            format!(
                "the server key {} does not fit the source store",
                config.data_dir.join(keys::FILE_NAME).display()
            )
        })?;
    let (copied, landed) = match &target {
        Target::Postgres(url) => (to_postgres(&source, url, &key)?, "the PostgreSQL database"),
        Target::Sled(path) => (to_sled(config, &source, path, &key)?, "the sled store"),
    };
    let key_path = config.data_dir.join(keys::FILE_NAME);
    let note = match &target {
        Target::Postgres(_) => format!(
            "copy {} to the data directory of every instance that uses the database: its \
             fingerprint is recorded there, and an instance with another key refuses to start",
            key_path.display()
        ),
        Target::Sled(path) => format!(
            "{} holds the source's server key; serve it with --data-dir {}",
            path.join(keys::FILE_NAME).display(),
            path.display()
        ),
    };
    let mut out = io::stdout().lock();
    if json {
        let mut text = serde_json::to_string_pretty(&copied.target)?;
        text.push('\n');
        out.write_all(text.as_bytes())?;
        eprintln!("{note}");
    } else {
        out.write_all(report(&copied, landed, &note).as_bytes())?;
    }
    out.flush().context("while writing to standard output")
}

/// The data directory's server key. Made when missing only if the source
/// holds no hash keyed with one: a new key would not fit those hashes.
fn source_key(config: &Config, source: &Store) -> anyhow::Result<ServerKey> {
    if let Some(key) = read_server_key(&config.data_dir).map_err(|e| anyhow::anyhow!(e))? {
        return Ok(key);
    }
    if source.has_keyed_hashes()? {
        bail!(
            "the source holds app passwords, API tokens or static tokens but {} has no {},              which keys their hashes; put the key back first",
            config.data_dir.display(),
            keys::FILE_NAME
        );
    }
    ServerKey::load_or_create(&config.data_dir).with_context(|| {
        format!(
            "while creating the server key in {}",
            config.data_dir.display()
        )
    })
}

/// The text report: one line per kind, then the note about the key.
fn report(copied: &Copied, landed: &str, note: &str) -> String {
    let mut text = format!("copied the store into {landed}; every count matches the source:\n");
    for kind in KINDS
        .iter()
        .chain(&["next_uid", "next_gid", "membership_epoch"])
    {
        let n = copied.target.0.get(kind).copied().unwrap_or(0);
        text.push_str(&format!("  {kind:<20} {n}\n"));
    }
    text.push_str(note);
    text.push('\n');
    text
}

/// The configured store, refused while a server runs on a sled one.
fn open_source(config: &Config) -> anyhow::Result<Store> {
    if matches!(config.store, StoreConfig::Sled(_)) {
        let socket = config.admin_socket_path();
        if AdminClient::connect(&socket).is_ok() {
            bail!(
                "a server is running on {} (its admin socket answers): stop it first; \
                 migrate-store copies a stopped sled store",
                config.data_dir.display()
            );
        }
        let db = config.data_dir.join("db");
        if !db.is_dir() {
            bail!(
                "there is no store in {} (no {})",
                config.data_dir.display(),
                db.display()
            );
        }
    }
    // Read once, streamed: sled's page cache held to the offline CLI's,
    // a PostgreSQL source without a read model.
    match crate::server::open_store_as(config, crate::server::Opening::Transfer) {
        Ok(store) => Ok(store),
        Err(e) if looks_locked(&e) => bail!(
            "the store in {} is in use by another process (is `portcullis serve` running?): stop \
             it first; migrate-store copies a stopped sled store",
            config.data_dir.display()
        ),
        Err(e) => Err(e).context("while opening the source store"),
    }
}

fn to_postgres(source: &Store, url: &str, key: &ServerKey) -> anyhow::Result<Copied> {
    // The store's errors never repeat the URL.
    // No read model: this process writes the database and reads it back
    // once, and a model would be read whole after each batch.
    let target = Store::connect_postgres_direct(url, 4, None)
        .context("while connecting to the target database")?;
    // Held until the copy is done: an instance starting against the
    // database meanwhile waits, then finds it filled (no bootstrap).
    let _startup = target
        .startup_lock()
        .context("while waiting for the target database's start-up lock")?;
    copier::ensure_empty(&target)?;
    target
        .check_key_fingerprint(&key.fingerprint())
        .context("the target database belongs to another server key")?;
    copier::copy(source, &target, key).map_err(|e| match e {
        CopyError::NotEmpty(_) => anyhow::Error::from(e),
        e => anyhow::Error::from(e).context(
            "the copy stopped part way and the target database holds part of it: drop and \
             create the database again before another try",
        ),
    })
}

fn to_sled(
    config: &Config,
    source: &Store,
    path: &Path,
    key: &ServerKey,
) -> anyhow::Result<Copied> {
    if matches!(config.store, StoreConfig::Sled(_)) && same_dir(path, &config.data_dir) {
        bail!(
            "the target {} is the source's own data directory",
            path.display()
        );
    }
    match read_server_key(path).map_err(|e| anyhow::anyhow!(e))? {
        Some(existing) if existing != *key => bail!(
            "{} holds another server key than the source's; copy into a new directory",
            path.join(keys::FILE_NAME).display()
        ),
        _ => {}
    }
    let db = path.join("db");
    let created = !db.exists();
    if !path.exists() {
        // A data directory: the store and the key are for its owner only.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(path)
            .with_context(|| format!("while creating {}", path.display()))?;
    }
    let target = Store::open(path).map_err(|e| {
        if looks_locked(&e) {
            anyhow::anyhow!(
                "the target store in {} is in use by another process",
                path.display()
            )
        } else {
            anyhow::Error::from(e).context("while opening the target store")
        }
    })?;
    copier::ensure_empty(&target)?;
    let key_path = path.join(keys::FILE_NAME);
    let new_key = !key_path.exists();
    let copied = write_key(&key_path, key).and_then(|()| Ok(copier::copy(source, &target, key)?));
    if copied.is_err() && created {
        // Nothing but this copy was in it: leave the directory as it was.
        drop(target);
        let _ = std::fs::remove_dir_all(&db);
        if new_key {
            let _ = std::fs::remove_file(&key_path);
        }
    }
    copied
}

/// `<PATH>/server.key` as the source's (mode 0600), unless it is there
/// already (checked to be the same by the caller).
fn write_key(path: &Path, key: &ServerKey) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut text = key.to_hex();
    text.push('\n');
    write_private_atomically(path, text.as_bytes())
        .with_context(|| format!("while writing the server key {}", path.display()))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
