//! Scheduled backups (`[backup]`): every `interval`, the complete JSON
//! backup with secrets (what `portcullis import --format json` restores),
//! streamed from one consistent snapshot of the store while LDAP keeps
//! serving (each user written as it is read, so memory stays bounded; on
//! sled, writes wait while the records are copied into a spool file in
//! `dir`, not while the backup is written, see `store/sled/snapshot.rs`),
//! written atomically into `dir`, and all but the `keep` newest removed.
//!
//! The snapshot and the writing run on the blocking pool, never on a
//! reactor. A failure is counted (`portcullis_backup_failures_total`) and
//! logged as a WARN line that names the directory and the error, never a
//! secret; a success sets `portcullis_backup_last_success_timestamp_seconds`.
//! At shutdown the loop stops; a backup being written is finished first
//! (the server awaits this task before it flushes the store).

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::account::{self, Actor};
use crate::admin::transfer::write_private_with;
use crate::auth::keys::ServerKey;
use crate::config::BackupConfig;
use crate::migrate::export::{self, Secrets};
use crate::store::{SnapshotSink, Store};

/// Backups are named `portcullis-backup-<UTC time to the millisecond>.json`, so the names sort
/// by age; only such files are ever removed.
pub const PREFIX: &str = "portcullis-backup-";
pub const SUFFIX: &str = ".json";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{what} {}: {err}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    #[error("taking the snapshot: {0}")]
    Snapshot(String),
    #[error("writing the backup: {0}")]
    Export(#[from] export::ExportError),
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |err| BackupError::Io { what, path, err }
}

/// Runs the schedule until `shutdown`; returns at once when `config.dir`
/// is unset.
pub async fn run(
    config: BackupConfig,
    store: Store,
    server_key: ServerKey,
    shutdown: CancellationToken,
) {
    let Some(dir) = config.dir.clone() else {
        return;
    };
    tracing::info!(dir = %dir.display(), every = ?config.interval, keep = config.keep, "scheduled backups on");
    let mut wait = first_wait(&dir, config.interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let (dir2, store2, key2, keep) =
            (dir.clone(), store.clone(), server_key.clone(), config.keep);
        let written =
            tokio::task::spawn_blocking(move || write_backup(&dir2, &store2, &key2, keep))
                .await
                .unwrap_or_else(|e| Err(BackupError::Snapshot(format!("the task failed: {e}"))));
        match written {
            Ok(path) => {
                crate::metrics::backup_written(crate::store::now());
                tracing::info!(file = %path.display(), "backup written");
            }
            Err(e) => {
                crate::metrics::backup_failed();
                tracing::warn!(dir = %dir.display(), error = %e, "scheduled backup failed");
            }
        }
        wait = config.interval;
    }
}

/// One interval after the newest backup in `dir`, or now when there is
/// none (or it is older than that): a server restarted more often than the
/// interval still backs up.
fn first_wait(dir: &Path, interval: Duration) -> Duration {
    let newest = backups(dir)
        .ok()
        .and_then(|names| names.last().cloned())
        .and_then(|name| std::fs::metadata(dir.join(name)).ok())
        .and_then(|m| m.modified().ok());
    match newest {
        Some(at) => {
            let age = SystemTime::now().duration_since(at).unwrap_or_default();
            interval.saturating_sub(age)
        }
        None => Duration::ZERO,
    }
}

/// The backup file names in `dir`, oldest first.
fn backups(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(PREFIX) && name.ends_with(SUFFIX) {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// `20261203T104530.123Z`: fixed width, so names sort by time, and to the
/// millisecond, so two backups never share a name.
fn stamp(at: time::OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// Writes one backup into `dir` (created 0700 if missing) and removes all
/// but the `keep` newest: once the new one is complete on disk, the oldest
/// are removed down to `keep - 1`, then it takes its name, so never more
/// than `keep` backups are there. Blocking.
pub fn write_backup(
    dir: &Path,
    store: &Store,
    server_key: &ServerKey,
    keep: usize,
) -> Result<PathBuf, BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error("creating", dir))?;
    }
    // Named by the millisecond; a backup within the same millisecond as
    // the last takes the next free one, so it never replaces it and the
    // names still sort by age.
    let name = |at| dir.join(format!("{PREFIX}{}{SUFFIX}", stamp(at)));
    let mut at = time::OffsetDateTime::now_utc();
    while name(at).exists() {
        at += time::Duration::milliseconds(1);
    }
    let path = name(at);
    let mut failed = None;
    let mut pruned = None;
    write_private_with(
        &path,
        &mut |file| {
            let mut out = BufWriter::with_capacity(64 << 10, file);
            let read = |sink: &mut dyn SnapshotSink| {
                account::import::snapshot_streamed(store, &Actor::System, Some(dir), sink)
            };
            match export::json_from(read, Secrets::Include(Some(server_key)), &mut out) {
                Ok(_) => out.flush(),
                Err(e) => {
                    let message = e.to_string();
                    failed = Some(e);
                    Err(io::Error::other(message))
                }
            }
        },
        // The new backup is complete on disk: make room for it, so no
        // more than `keep` backups are ever there at once.
        &mut || {
            prune(dir, keep.saturating_sub(1)).map_err(|e| {
                let message = e.to_string();
                pruned = Some(e);
                io::Error::other(message)
            })
        },
    )
    .map_err(|err| match (failed.take(), pruned.take()) {
        (Some(e), _) => BackupError::Export(e),
        (None, Some(e)) => e,
        (None, None) => BackupError::Io {
            what: "writing",
            path: path.clone(),
            err,
        },
    })?;
    Ok(path)
}

/// Removes all but the `keep` newest backups.
fn prune(dir: &Path, keep: usize) -> Result<(), BackupError> {
    let names = backups(dir).map_err(io_error("listing", dir))?;
    let old = names.len().saturating_sub(keep);
    for name in names.iter().take(old) {
        let path = dir.join(name);
        std::fs::remove_file(&path).map_err(io_error("removing the old backup", &path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_private_files_and_keeps_the_newest() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("backups");
        let store = Store::temporary().expect("store");
        store
            .create_user(crate::store::NewUser {
                username: "alice".into(),
                ..Default::default()
            })
            .expect("user");
        let key = ServerKey::generate();
        let first = write_backup(&dir, &store, &key, 2).expect("backup");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&first), 0o600);
        let text = std::fs::read_to_string(&first).expect("read");
        let backup: crate::migrate::Backup = serde_json::from_str(&text).expect("json");
        assert!(backup.secrets);
        assert_eq!(backup.users.len(), 1);
        // Names sort by age; fake two older ones.
        for old in ["20000101T000000.000Z", "20000102T000000.000Z"] {
            std::fs::write(dir.join(format!("{PREFIX}{old}{SUFFIX}")), "{}").expect("write");
        }
        std::fs::write(dir.join("unrelated.json"), "{}").expect("write");
        write_backup(&dir, &store, &key, 2).expect("backup");
        let names = backups(&dir).expect("list");
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| !n.contains("2000")), "{names:?}");
        assert!(
            dir.join("unrelated.json").exists(),
            "only backups are pruned"
        );
        assert!(first_wait(&dir, Duration::from_secs(3600)) > Duration::from_secs(3500));
        assert_eq!(
            first_wait(&tmp.path().join("none"), Duration::from_secs(3600)),
            Duration::ZERO
        );
    }

    #[test]
    fn stamps_sort_by_time() {
        let a = stamp(time::OffsetDateTime::from_unix_timestamp(1_000_000_000).expect("t"));
        let b = stamp(time::OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("t"));
        assert_eq!(a, "20010909T014640.000Z");
        assert!(a < b);
    }
}
