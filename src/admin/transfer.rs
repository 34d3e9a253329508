//! `import` and `export` as admin requests: the same code runs in a
//! serving process (the request arrived on the admin socket) and in the
//! CLI's own process when no server runs.
//!
//! - **Export** streams one snapshot of the store
//!   ([`crate::store::Backend::snapshot_streamed`]) as the operator into
//!   the LDIF or the JSON backup, entry by entry (bounded memory), and
//!   writes it to a sink: the socket streams it to the CLI in chunks, so
//!   no message limit bounds the size of a directory. A server spools it
//!   in its data directory first ([`export`]).
//! - **Import** plans the whole input first (line-numbered problems, the
//!   dry-run report), then writes it as one all-or-nothing batch as the
//!   operator; the batch moves the membership epoch, so searches see it
//!   as soon as the answer leaves. Cleartext passwords are hashed on the
//!   calling thread, which is a blocking-pool thread in a server, never a
//!   reactor.
//!
//! The answers are rendered here ([`Imported`], [`Exported`]): the text
//! and the JSON document the CLI prints are the same wherever the work ran.

use std::io::{self, BufRead, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AdminContext, AdminError};
use crate::account::{self, Actor};
use crate::auth::keys::{self, ServerKey};
use crate::migrate::export::{self, ExportError, Secrets};
use crate::migrate::import::{self, ImportError, ImportOptions, Progress};
use crate::store::SnapshotSink;

/// Largest import the admin socket takes (bytes of the file as sent).
/// Bigger files are imported with the server stopped, or split.
pub const MAX_IMPORT_BYTES: u64 = 128 << 20;

/// The formats of `import` and `export`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// RFC 2849 LDIF.
    #[default]
    Ldif,
    /// Portcullis's JSON backup.
    Json,
}

/// An `import` or `export` on the admin socket, e.g.
/// `{"op":"export","format":"json","with_secrets":true}`. An import's
/// line is followed by exactly `length` bytes: the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransferRequest {
    Export(ExportRequest),
    Import(ImportRequest),
}

impl TransferRequest {
    /// The `op` name, for logs.
    pub fn op(&self) -> &'static str {
        match self {
            TransferRequest::Export(_) => "export",
            TransferRequest::Import(_) => "import",
        }
    }

    /// True for the `op` names of this type (the socket routes by them).
    pub fn is_transfer_op(op: &str) -> bool {
        matches!(op, "export" | "import")
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    #[serde(default)]
    pub format: DataFormat,
    /// LDIF: password hashes; JSON: second-factor secrets and the server
    /// key too.
    #[serde(default)]
    pub with_secrets: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    #[serde(default)]
    pub format: DataFormat,
    #[serde(default)]
    pub dry_run: bool,
    /// Import despite plan errors (leaving those entries out); restore a
    /// backup without the second factors it has no secrets for.
    #[serde(default)]
    pub force: bool,
    /// Bytes of the file that follow the request line.
    #[serde(default)]
    pub length: u64,
    /// A dry run's listing in this format, streamed back as `data` frames
    /// before the answer (whose `text` and `document` are then empty), so
    /// neither side holds it whole. Without it the answer carries both
    /// renderings, as it did for clients from before the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing: Option<import::Listing>,
}

/// Where a transfer runs, which decides what happens to the server key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Inside `serve`: the server's key is in use. A backup keyed with
    /// another key is refused (the running server could not verify what
    /// it restores).
    Serving,
    /// The CLI with the store opened itself: a restore installs the
    /// backup's key into the data directory; an export reads the key
    /// from it (and never creates one).
    Offline,
}

/// What transfers need besides the operator's context.
pub struct TransferContext<'a> {
    pub admin: &'a AdminContext,
    pub mode: Mode,
    pub data_dir: &'a Path,
    /// `import.keep_attributes`.
    pub import: ImportOptions,
}

/// What an export wrote, for the CLI's notes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exported {
    /// Entries of an LDIF export.
    #[serde(default)]
    pub entries: usize,
    /// MFA devices and app passwords of a JSON backup listed without their
    /// secrets (written without `--with-secrets`).
    #[serde(default)]
    pub devices_without_secrets: usize,
    #[serde(default)]
    pub app_passwords_without_secrets: usize,
}

/// What an import did, rendered as the CLI prints it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Imported {
    /// Notes and warnings for standard error, in order.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Set when nothing was written because the plan has errors (and no
    /// `--force`): the plan report, with every problem and its line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The document `--json` prints.
    #[serde(default)]
    pub document: Value,
    /// The text printed without `--json`.
    #[serde(default)]
    pub text: String,
}

/// The message of a refused import (the report goes before it).
pub const PLAN_HAS_ERRORS: &str = "the import has errors (listed above); nothing was written. \
     Fix them, or pass --force to leave those entries out";

fn export_error(e: ExportError) -> AdminError {
    match e {
        ExportError::Store(e) => AdminError::from(e),
        ExportError::Account(e) => AdminError::from(e),
        ExportError::MissingKey => AdminError::Invalid(e.to_string()),
        ExportError::Io(e) => AdminError::Internal(format!("writing the export: {e}")),
        ExportError::Json(e) => AdminError::Internal(format!("encoding the backup: {e}")),
    }
}

fn import_error(e: ImportError) -> AdminError {
    match e {
        ImportError::Store(e) => AdminError::from(e),
        ImportError::Ldif(_) | ImportError::Json(_) | ImportError::Refused(_) => {
            AdminError::Invalid(e.to_string())
        }
        ImportError::Hash(_) | ImportError::Output(_) => AdminError::Internal(e.to_string()),
    }
}

/// Writes the export to `out`, streamed from one snapshot of the store
/// taken as the operator. Blocking.
///
/// A serving process takes the snapshot spooled
/// ([`crate::store::Backend::snapshot_spooled`]: on sled, writes wait
/// only while the records are copied), writes the export to a spool file
/// in the data directory (mode 0600, unlinked at once) and sends that, so
/// the snapshot (a PostgreSQL transaction, sled's spool) is done at the
/// speed of the local disk, never at that of a client reading the socket.
/// Offline, it goes straight to `out`: nobody else writes.
pub fn export(
    cx: &TransferContext<'_>,
    req: &ExportRequest,
    out: &mut dyn Write,
) -> Result<Exported, AdminError> {
    if cx.mode == Mode::Offline {
        return export_to(cx, req, out);
    }
    let spool_error = |e: io::Error| {
        AdminError::Internal(format!(
            "while spooling the export in {}: {e}",
            cx.data_dir.display()
        ))
    };
    let mut spool =
        crate::store::spool::anonymous_file(cx.data_dir, "export").map_err(spool_error)?;
    let done = export_to(cx, req, &mut spool)?;
    spool.rewind().map_err(spool_error)?;
    io::copy(&mut spool, out)
        .map_err(|e| AdminError::Internal(format!("writing the export: {e}")))?;
    Ok(done)
}

/// [`export`] written straight to `out`.
fn export_to(
    cx: &TransferContext<'_>,
    req: &ExportRequest,
    out: &mut dyn Write,
) -> Result<Exported, AdminError> {
    let ctx = cx.admin;
    // A server goes on serving: writes wait only while the records are
    // copied, not while they are formatted.
    let spool = (cx.mode == Mode::Serving).then_some(cx.data_dir);
    let read = |sink: &mut dyn SnapshotSink| {
        account::import::snapshot_streamed(&ctx.store, &Actor::Operator, spool, sink)
    };
    let mut out = io::BufWriter::with_capacity(64 << 10, out);
    let mut done = Exported::default();
    match req.format {
        DataFormat::Ldif => {
            let base = crate::directory::Dn::parse(&ctx.base_dn)
                .map_err(|e| AdminError::Internal(format!("the base DN: {e}")))?;
            done.entries =
                export::ldif_from(read, &base, &ctx.admin_group, req.with_secrets, &mut out)
                    .map_err(export_error)?;
        }
        DataFormat::Json => {
            let key = if !req.with_secrets {
                None
            } else {
                match cx.mode {
                    Mode::Serving => Some(ctx.server_key.clone()),
                    Mode::Offline => read_server_key(cx.data_dir)?,
                }
            };
            let secrets = if req.with_secrets {
                Secrets::Include(key.as_ref())
            } else {
                Secrets::Omit
            };
            // Refused before a byte is written (the output may be a pipe).
            if req.with_secrets && key.is_none() && ctx.store.has_keyed_hashes()? {
                return Err(export_error(ExportError::MissingKey));
            }
            let left_out = export::json_from(read, secrets, &mut out).map_err(export_error)?;
            done.devices_without_secrets = left_out.devices;
            done.app_passwords_without_secrets = left_out.app_passwords;
        }
    }
    out.flush()
        .map_err(|e| AdminError::Internal(format!("writing the export: {e}")))?;
    Ok(done)
}

/// Plans and (unless a dry run) writes the import read from `input`, as
/// the operator. Blocking: it may hash cleartext passwords.
pub fn import(
    cx: &TransferContext<'_>,
    req: &ImportRequest,
    input: &mut dyn BufRead,
    progress: &mut dyn FnMut(Progress),
) -> Result<Imported, AdminError> {
    match req.format {
        DataFormat::Json => restore(cx, req, input),
        DataFormat::Ldif => import_ldif(cx, req, input, progress),
    }
}

fn import_ldif(
    cx: &TransferContext<'_>,
    req: &ImportRequest,
    input: &mut dyn BufRead,
    progress: &mut dyn FnMut(Progress),
) -> Result<Imported, AdminError> {
    let mut done = Imported {
        notes: import_notes(&cx.import),
        ..Imported::default()
    };
    if cx.mode == Mode::Offline && !req.dry_run {
        // Nobody else uses the store: the bounded-memory import.
        let streamed = import::import_streamed(
            &cx.admin.store,
            input,
            &cx.import,
            &cx.admin.hasher,
            cx.data_dir,
            req.force,
            progress,
        )
        .map_err(import_error)?;
        return match streamed {
            import::Streamed::Refused(plan) => {
                done.refused = Some(plan.report());
                Ok(done)
            }
            import::Streamed::Done(report) => imported(done, &report),
        };
    }
    let plan = import::read_and_plan(input, &cx.import, progress).map_err(import_error)?;
    if req.dry_run {
        done.document = plan
            .to_json()
            .map_err(|e| AdminError::Internal(format!("cannot write the plan as JSON: {e}")))?;
        done.text = plan.report();
        return Ok(done);
    }
    if plan.has_errors() && !req.force {
        done.refused = Some(plan.report());
        return Ok(done);
    }
    let report = import::apply_with_progress(&cx.admin.store, &plan, &cx.admin.hasher, progress)
        .map_err(import_error)?;
    imported(done, &report)
}

/// The notes an LDIF import with these settings prints first.
pub fn import_notes(opts: &ImportOptions) -> Vec<String> {
    import::unserved_kept_attributes(opts)
        .into_iter()
        .map(|name| {
            format!(
                "note: kept attribute {name} is stored and exported but not served over LDAP \
                 (the server's schema does not know it)"
            )
        })
        .collect()
}

/// A dry run of the LDIF import read from `input`: the listing
/// (`listing`'s format only) goes to `out` as it is made, so memory holds
/// neither the plan of every user nor its rendering (see
/// [`import::dry_run`]; its spill goes to the data directory). Writes
/// nothing to the store. The answer has the notes only.
pub fn dry_run(
    cx: &TransferContext<'_>,
    input: &mut dyn BufRead,
    listing: import::Listing,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(Progress),
) -> Result<Imported, AdminError> {
    import::dry_run(input, &cx.import, listing, cx.data_dir, out, progress)
        .map_err(import_error)?;
    Ok(Imported {
        notes: import_notes(&cx.import),
        ..Imported::default()
    })
}

/// The answer of an import that was written.
fn imported(mut done: Imported, report: &import::ImportReport) -> Result<Imported, AdminError> {
    let b = &report.batch;
    done.text = format!(
        "users: {} created, {} updated, {} unchanged; groups: {} created, {} updated, {} unchanged; {} memberships added\n",
        b.users_created.len(),
        b.users_updated.len(),
        b.users_unchanged.len(),
        b.groups_created.len(),
        b.groups_updated.len(),
        b.groups_unchanged.len(),
        b.memberships_added
    );
    done.document = to_document(report)?;
    Ok(done)
}

/// Restores a JSON backup. Offline (the CLI owns the store), the document
/// is streamed: its users go to a spill file in the data directory as they
/// are read, then into the store's streamed batch
/// ([`import::read_backup_streamed`], [`import::restore_streamed`]), so no
/// size of backup bounds the memory. A running server reads the document
/// whole ([`import::read_backup`], [`import::restore`]) and writes it in
/// one transaction: its admin socket takes at most [`MAX_IMPORT_BYTES`],
/// and nothing else may write alongside a streamed batch. Either way the
/// server key is checked (and offline installed) once the document has
/// been read, before the store is written.
fn restore(
    cx: &TransferContext<'_>,
    req: &ImportRequest,
    input: &mut dyn BufRead,
) -> Result<Imported, AdminError> {
    if req.dry_run {
        return Err(AdminError::Invalid("--dry-run is for LDIF imports".into()));
    }
    let mut done = Imported::default();
    let store = &cx.admin.store;
    let report = match cx.mode {
        Mode::Serving => {
            let backup = import::read_backup(input).map_err(import_error)?;
            let needs_key = import::needs_server_key(&backup);
            take_server_key(cx, &backup, needs_key, &mut done)?;
            import::restore(store, &backup, req.force)
        }
        Mode::Offline => {
            // A PostgreSQL store lives elsewhere: nothing else may have
            // made the data directory, which holds the spill.
            private_dir(cx.data_dir)?;
            let backup = import::read_backup_streamed(input, cx.data_dir).map_err(import_error)?;
            let needs_key = backup.needs_server_key();
            take_server_key(cx, backup.head(), needs_key, &mut done)?;
            import::restore_streamed(store, backup, req.force)
        }
    }
    .map_err(import_error)?;
    if report.devices_skipped + report.app_passwords_skipped > 0 {
        done.notes.push(format!(
            "warning: {} MFA devices and {} app passwords were not restored: the backup has \
             no secrets for them",
            report.devices_skipped, report.app_passwords_skipped
        ));
    }
    let b = &report.batch;
    done.text = format!(
        "restored {} users, {} groups, {} MFA devices, {} app passwords\n",
        b.users_created.len() + b.users_updated.len(),
        b.groups_created.len() + b.groups_updated.len(),
        b.devices_restored,
        b.app_passwords_restored
    );
    done.document = to_document(&report)?;
    Ok(done)
}

/// Checks the server key of `backup` (the document, its users aside)
/// when the restore writes hashes keyed with it (`needs_key`): serving,
/// it must be the server's own; offline, it is installed into the data
/// directory (a note in `done` says so). Before the store is written.
fn take_server_key(
    cx: &TransferContext<'_>,
    backup: &crate::migrate::Backup,
    needs_key: bool,
    done: &mut Imported,
) -> Result<(), AdminError> {
    let key = import::backup_server_key(backup).map_err(import_error)?;
    if !needs_key {
        return Ok(());
    }
    let Some(key) = &key else {
        return Err(AdminError::Invalid(
            "the backup holds app password or static token hashes but no server_key".into(),
        ));
    };
    match cx.mode {
        Mode::Serving if *key != cx.admin.server_key => Err(AdminError::Invalid(
            "the backup's app passwords and static tokens are keyed with another server \
             key than the running server's; restore it with the server stopped, into a \
             fresh data directory"
                .into(),
        )),
        Mode::Serving => Ok(()),
        Mode::Offline => {
            // A shared store (PostgreSQL) records the key its hashes
            // are made with: one that has another is refused here,
            // before anything is written, not at the next start.
            cx.admin
                .store
                .check_key_fingerprint(&key.fingerprint())
                .map_err(|e| AdminError::Invalid(format!("the backup's server key: {e}")))?;
            if let Some(note) = install_server_key(cx.data_dir, cx.admin, key)? {
                done.notes.push(note);
            }
            Ok(())
        }
    }
}

fn to_document(report: &impl Serialize) -> Result<Value, AdminError> {
    serde_json::to_value(report)
        .map_err(|e| AdminError::Internal(format!("cannot write the report as JSON: {e}")))
}

/// `<data>/server.key` if it exists (an export never creates one).
pub fn read_server_key(data_dir: &Path) -> Result<Option<ServerKey>, AdminError> {
    let path = data_dir.join(keys::FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => ServerKey::from_hex(&text).map(Some).map_err(|e| {
            AdminError::Internal(format!(
                "while reading the server key {}: {e}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AdminError::Internal(format!(
            "while reading {}: {e}",
            path.display()
        ))),
    }
}

/// Makes `key` the data directory's server key, which the restored app
/// password and static token hashes are keyed with. Refuses when the
/// directory already has another key and hashes keyed with it; replaces a
/// key that keys nothing yet. Written (0600) to a temporary file, then
/// renamed into place, before the store batch: if the batch then fails,
/// the key keys nothing and is harmless. Answers the note to print.
fn install_server_key(
    data_dir: &Path,
    ctx: &AdminContext,
    key: &ServerKey,
) -> Result<Option<String>, AdminError> {
    if let Some(current) = read_server_key(data_dir)? {
        if current == *key {
            return Ok(None);
        }
        if ctx.store.has_keyed_hashes()? {
            return Err(AdminError::Invalid(format!(
                "{} has its own server key and app passwords or static tokens keyed with it; \
                 restore into a fresh data directory",
                data_dir.display()
            )));
        }
    }
    let path = data_dir.join(keys::FILE_NAME);
    let mut text = key.to_hex();
    text.push('\n');
    // A PostgreSQL store lives elsewhere: nothing else has made the data
    // directory yet. It holds the key only its owner may read.
    private_dir(data_dir)?;
    write_private_atomically(&path, text.as_bytes()).map_err(|e| {
        AdminError::Internal(format!(
            "while writing the server key {}: {e}",
            path.display()
        ))
    })?;
    Ok(Some(format!(
        "installed the backup's server key as {}",
        path.display()
    )))
}

/// Creates `dir` (mode 0700) unless it exists.
fn private_dir(dir: &Path) -> Result<(), AdminError> {
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)
        .map_err(|e| AdminError::Internal(format!("while creating {}: {e}", dir.display())))
}

/// Writes `bytes` to `path` atomically: a temporary file (mode 0600) in
/// the same directory, synced, renamed over `path`, and the directory
/// synced, so a crash leaves the old file or the new one, never half of
/// one.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_private_with(path, &mut |f| f.write_all(bytes), &mut || Ok(()))
}

/// [`write_private_atomically`] with the content written by `fill`;
/// `before_rename` runs once the content is on disk, just before it takes
/// its name (an error there leaves `path` as it was).
pub fn write_private_with(
    path: &Path,
    fill: &mut dyn FnMut(&mut std::fs::File) -> io::Result<()>,
    before_rename: &mut dyn FnMut() -> io::Result<()>,
) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // `backup.json` has the parent `""`, which is the current directory.
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        before_rename()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn atomic_writes_replace_whole_files_and_keep_them_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("b.json");
        std::fs::write(&path, "old").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        // A failure while writing leaves the old file and no temporary one.
        let failed = write_private_with(
            &path,
            &mut |f| {
                f.write_all(b"half")?;
                Err(io::Error::other("disk full"))
            },
            &mut || Ok(()),
        );
        assert!(failed.is_err());
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "old");
        assert_eq!(std::fs::read_dir(tmp.path()).expect("dir").count(), 1);
        write_private_atomically(&path, b"new").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A bare file name is in the current directory.
        let cwd = std::env::current_dir().expect("cwd");
        let name = format!("portcullis-atomic-test-{}.json", std::process::id());
        write_private_atomically(Path::new(&name), b"x").expect("relative path");
        std::fs::remove_file(cwd.join(&name)).expect("written where asked");
    }

    #[test]
    fn wire_format() {
        let req = TransferRequest::Import(ImportRequest {
            format: DataFormat::Json,
            dry_run: false,
            force: true,
            length: 12,
            listing: None,
        });
        assert_eq!(
            serde_json::to_value(&req).expect("json"),
            json!({"op": "import", "format": "json", "dry_run": false, "force": true, "length": 12})
        );
        let dry: TransferRequest =
            serde_json::from_str(r#"{"op":"import","dry_run":true,"listing":"json","length":3}"#)
                .expect("parse");
        assert_eq!(
            dry,
            TransferRequest::Import(ImportRequest {
                dry_run: true,
                length: 3,
                listing: Some(import::Listing::Json),
                ..ImportRequest::default()
            })
        );
        let back: TransferRequest =
            serde_json::from_str(r#"{"op":"export","with_secrets":true}"#).expect("parse");
        assert_eq!(
            back,
            TransferRequest::Export(ExportRequest {
                format: DataFormat::Ldif,
                with_secrets: true
            })
        );
        for bad in [
            r#"{"op":"export","secrets":true}"#,
            r#"{"op":"import","length":-1}"#,
            r#"{"op":"import","format":"xml"}"#,
            r#"{"op":"import","dry_run":true,"listing":"yaml"}"#,
        ] {
            assert!(
                serde_json::from_str::<TransferRequest>(bad).is_err(),
                "{bad}"
            );
        }
        assert!(TransferRequest::is_transfer_op("import"));
        assert!(!TransferRequest::is_transfer_op("user_list"));
    }

    fn context(store: crate::store::Store) -> AdminContext {
        let config = crate::config::Config::default();
        let hasher =
            crate::auth::password::Hasher::new(&crate::auth::password::HashConfig::default())
                .expect("hasher");
        AdminContext::new(store, hasher, &config)
    }

    #[test]
    fn import_is_planned_refused_or_written_whole() {
        let store = crate::store::Store::temporary().expect("store");
        let ctx = context(store.clone());
        let dir = tempfile::tempdir().expect("tmp");
        let cx = TransferContext {
            admin: &ctx,
            mode: Mode::Serving,
            data_dir: dir.path(),
            import: ImportOptions::default(),
        };
        let ldif = "dn: uid=ann,ou=people,dc=x\nobjectClass: inetOrgPerson\nuid: ann\ncn: Ann\nsn: A\n\n\
                    dn: uid=b d,ou=people,dc=x\nobjectClass: inetOrgPerson\nuid: b d\ncn: B\nsn: D\n";
        let mut progress = |_: Progress| {};
        let dry = ImportRequest {
            dry_run: true,
            ..ImportRequest::default()
        };
        let done = import(&cx, &dry, &mut ldif.as_bytes(), &mut progress).expect("plan");
        assert!(done.text.contains("ann") && done.refused.is_none());
        let real = ImportRequest::default();
        let done = import(&cx, &real, &mut ldif.as_bytes(), &mut progress).expect("refusal");
        let report = done.refused.expect("refused");
        assert!(report.contains("line      9  error"), "{report}");
        assert!(store.user_by_name("ann").expect("read").is_none());
        let forced = ImportRequest {
            force: true,
            ..ImportRequest::default()
        };
        let done = import(&cx, &forced, &mut ldif.as_bytes(), &mut progress).expect("import");
        assert_eq!(done.document["users_created"], json!(["ann"]));
        assert!(store.user_by_name("ann").expect("read").is_some());

        // The export of what is there, in both formats.
        let mut out = Vec::new();
        let sent = export(&cx, &ExportRequest::default(), &mut out).expect("ldif");
        assert_eq!(sent.entries, 4, "base, two OUs, ann");
        assert!(String::from_utf8_lossy(&out).contains("dn: cn=ann,ou=users,"));
        let mut out = Vec::new();
        let json_req = ExportRequest {
            format: DataFormat::Json,
            with_secrets: true,
        };
        export(&cx, &json_req, &mut out).expect("json");
        let backup: crate::migrate::Backup = serde_json::from_slice(&out).expect("backup");
        assert_eq!(
            backup.server_key.map(|k| k.0),
            Some(ctx.server_key.to_hex()),
            "a serving export carries the server's own key"
        );
    }
}
