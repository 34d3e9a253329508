//! `import` and `export`: moving a directory in and out (LDIF, JSON backup).
//!
//! Like every other command, both go through the admin socket while the
//! server runs (the import's file travels with the request, the export
//! streams back) and open the store themselves when it does not; the work
//! is `crate::admin::transfer` either way. An export is one consistent
//! snapshot; an import is one all-or-nothing change. Opened here, a
//! PostgreSQL store has no read model ([`Opening::Transfer`]): the
//! export streams from one snapshot and the import writes one streamed
//! batch, so memory does not hold the directory.

use std::fs::File;
use std::io::{self, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use clap::{Args, ValueEnum};

use super::{reach, Reach};
use crate::admin::transfer::{
    self, DataFormat, ExportRequest, Exported, ImportRequest, Imported, Mode, TransferContext,
    TransferRequest, MAX_IMPORT_BYTES, PLAN_HAS_ERRORS,
};
use crate::admin::AdminContext;
use crate::auth::password::Hasher;
use crate::config::Config;
use crate::migrate::import::{ImportOptions, Listing, PROGRESS_EVERY};
use crate::server::Opening;
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// RFC 2849 LDIF, e.g. `slapcat` output.
    #[default]
    Ldif,
    /// Portcullis's JSON backup (complete: ids, hashes, settings).
    Json,
}

impl From<Format> for DataFormat {
    fn from(f: Format) -> DataFormat {
        match f {
            Format::Ldif => DataFormat::Ldif,
            Format::Json => DataFormat::Json,
        }
    }
}

#[derive(Debug, Args, PartialEq)]
pub struct ImportArgs {
    /// The file to read (`-` for standard input).
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Ldif)]
    pub format: Format,
    /// Print what would be created and every problem found, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Import even when the plan has errors (the entries with errors are
    /// left out); for a JSON backup written without --with-secrets, restore
    /// without the MFA devices and app passwords it has no secrets for.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args, PartialEq)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value_t = Format::Ldif)]
    pub format: Format,
    /// LDIF: include password hashes (`userPassword: {ARGON2}…`). JSON (which
    /// always holds password hashes): include TOTP secrets, static token and
    /// app password hashes and the server key, so MFA devices and app
    /// passwords restore too; the output is then a secret file.
    #[arg(long)]
    pub with_secrets: bool,
    /// Write to this file (mode 0600; written beside it and renamed into
    /// place, so a failed export leaves the old file) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write --with-secrets output to standard output even when it is a
    /// terminal or a file that others can read.
    #[arg(long)]
    pub force: bool,
}

/// The context of a transfer run in this process (no server runs). No
/// bootstrap: a restore goes into a fresh data directory as it is, and an
/// export changes nothing. The server key is the data directory's, if it
/// has one (a restore installs the backup's).
fn offline(config: &Config, store: Store) -> anyhow::Result<AdminContext> {
    let hasher = Hasher::new(&config.auth).context("while setting up password hashing")?;
    let ctx = AdminContext::new(store, hasher, config);
    Ok(
        match transfer::read_server_key(&config.data_dir).map_err(|e| anyhow!(e))? {
            Some(key) => ctx.with_server_key(key),
            None => ctx,
        },
    )
}

fn import_options(config: &Config) -> ImportOptions {
    ImportOptions {
        keep_attributes: config.import.keep_attributes.clone(),
    }
}

/// Progress on stderr, every [`PROGRESS_EVERY`] items and at the end.
fn print_progress(stage: &str, done: usize, total: Option<usize>) {
    if done.is_multiple_of(PROGRESS_EVERY) || Some(done) == total {
        match total {
            Some(total) => eprintln!("{stage}: {done}/{total}"),
            None => eprintln!("{stage}: {done}"),
        }
    }
}

fn open_input(file: &Path) -> anyhow::Result<Box<dyn io::BufRead>> {
    Ok(if file == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(BufReader::new(
            File::open(file).with_context(|| format!("while opening {}", file.display()))?,
        ))
    })
}

/// The whole input, for the admin socket, refused beyond what it takes.
fn read_for_socket(file: &Path) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    open_input(file)?
        .take(MAX_IMPORT_BYTES + 1)
        .read_to_end(&mut body)
        .with_context(|| format!("while reading {}", file.display()))?;
    if body.len() as u64 > MAX_IMPORT_BYTES {
        bail!(
            "{} is larger than the {} bytes ({} MiB) the running server takes over its admin \
             socket; split it, or stop the server and import it then",
            file.display(),
            MAX_IMPORT_BYTES,
            MAX_IMPORT_BYTES >> 20
        );
    }
    Ok(body)
}

pub fn run_import(config: &Config, args: ImportArgs, json: bool) -> anyhow::Result<()> {
    let mut req = ImportRequest {
        format: args.format.into(),
        dry_run: args.dry_run,
        force: args.force,
        length: 0,
        listing: None,
    };
    if req.format == DataFormat::Json && req.dry_run {
        bail!("--dry-run is for LDIF imports");
    }
    if req.dry_run {
        return dry_run(config, &args.file, req, json);
    }
    let done: Imported = match reach(config, Opening::Transfer)? {
        Reach::Server(mut client) => {
            let body = read_for_socket(&args.file)?;
            req.length = body.len() as u64;
            let req = TransferRequest::Import(req);
            let mut sink = io::sink();
            over_socket(
                config,
                &mut client,
                &req,
                &body,
                &mut sink,
                &mut print_progress,
            )?
        }
        Reach::Store(store) => {
            let mut input = open_input(&args.file)?;
            let done = on_store(config, store, |cx| {
                transfer::import(cx, &req, &mut input, &mut |p| {
                    print_progress(p.stage, p.done, p.total)
                })
            })?;
            if !req.dry_run && done.refused.is_none() {
                checkpoint(config)?;
            }
            done
        }
    };
    for note in &done.notes {
        eprintln!("{note}");
    }
    if let Some(report) = &done.refused {
        eprint!("{report}");
        bail!("{PLAN_HAS_ERRORS}");
    }
    print(json, &done.document, || done.text.clone())
}

/// A dry run, through the running server or on the store: the listing
/// goes to standard output as it is made (streamed back by the server),
/// so neither process holds it whole (see
/// [`crate::migrate::import::dry_run`]); the notes follow on stderr.
fn dry_run(config: &Config, file: &Path, mut req: ImportRequest, json: bool) -> anyhow::Result<()> {
    let listing = if json { Listing::Json } else { Listing::Text };
    let mut out = io::BufWriter::with_capacity(64 << 10, io::stdout().lock());
    let done: Imported = match reach(config, Opening::Transfer)? {
        Reach::Server(mut client) => {
            let body = read_for_socket(file)?;
            req.length = body.len() as u64;
            req.listing = Some(listing);
            let req = TransferRequest::Import(req);
            over_socket(
                config,
                &mut client,
                &req,
                &body,
                &mut out,
                &mut print_progress,
            )?
        }
        Reach::Store(store) => {
            let mut input = open_input(file)?;
            on_store(config, store, |cx| {
                transfer::dry_run(cx, &mut input, listing, &mut out, &mut |p| {
                    print_progress(p.stage, p.done, p.total)
                })
            })?
        }
    };
    out.flush().context("while writing to standard output")?;
    for note in &done.notes {
        eprintln!("{note}");
    }
    Ok(())
}

/// Opens the sled store once more after an offline import (the import's
/// handle is closed by then), so that the log recovery a large import
/// leaves behind (sled 0.34 writes its snapshot only when it opens) is paid
/// here and not by the next `serve`: 2.2 s of a start after a
/// million-user import. Nothing to do for PostgreSQL.
fn checkpoint(config: &Config) -> anyhow::Result<()> {
    if matches!(config.store, crate::config::StoreConfig::Sled(_)) {
        drop(
            crate::server::open_store_as(config, Opening::Offline)
                .context("while reopening the store")?,
        );
    }
    Ok(())
}

pub fn run_export(config: &Config, args: ExportArgs) -> anyhow::Result<()> {
    if args.with_secrets && args.output.is_none() && !args.force {
        refuse_unsafe_stdout()?;
    }
    let req = ExportRequest {
        format: args.format.into(),
        with_secrets: args.with_secrets,
    };
    // The server or the store first: an output file is touched only once
    // the export can run.
    let mut reached = Some(reach(config, Opening::Transfer)?);
    if args.with_secrets && args.format == Format::Json {
        eprintln!(
            "warning: the backup holds TOTP secrets, token and app password hashes and \
             the server key: keep it as secret as the data directory"
        );
    }
    let mut export_to = |out: &mut dyn Write| -> anyhow::Result<Exported> {
        let reached = reached
            .take()
            .ok_or_else(|| anyhow!("the export ran already"))?;
        export_with(config, reached, &req, out)
    };
    let done = match &args.output {
        Some(path) if replaceable(path) => {
            // A new file beside the old one, renamed over it once complete:
            // a failed export leaves an earlier backup as it was.
            let mut done = None;
            let mut failed = None;
            let written = transfer::write_private_with(
                path,
                &mut |file| match export_to(file) {
                    Ok(d) => {
                        done = Some(d);
                        Ok(())
                    }
                    Err(e) => {
                        let text = format!("{e:#}");
                        failed = Some(e);
                        Err(io::Error::other(text))
                    }
                },
                &mut || Ok(()),
            );
            if let Some(e) = failed {
                return Err(e);
            }
            written.with_context(|| format!("while writing {}", path.display()))?;
            done.ok_or_else(|| anyhow!("the export wrote nothing"))?
        }
        Some(path) => {
            // A device or a pipe (e.g. /dev/stdout): written in place.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("while opening {}", path.display()))?;
            let done = export_to(&mut file)?;
            file.flush().context("while writing the export")?;
            done
        }
        None => {
            let mut out = io::stdout().lock();
            let done = export_to(&mut out)?;
            out.flush().context("while writing the export")?;
            done
        }
    };
    match args.format {
        Format::Ldif if args.output.is_some() => eprintln!("exported {} entries", done.entries),
        Format::Ldif => {}
        Format::Json => {
            if done.devices_without_secrets + done.app_passwords_without_secrets > 0 {
                eprintln!(
                    "note: {} MFA devices and {} app passwords are listed without their secrets; \
                     a restore cannot recreate them (export --with-secrets to include them)",
                    done.devices_without_secrets, done.app_passwords_without_secrets
                );
            }
        }
    }
    Ok(())
}

/// True when `path` is missing or a regular file (not a symlink, device or
/// pipe): it may be replaced by a new file (mode 0600) renamed over it.
fn replaceable(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => meta.file_type().is_file(),
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// Runs the export through the server or on the store, into `out`.
fn export_with(
    config: &Config,
    reached: Reach,
    req: &ExportRequest,
    out: &mut dyn Write,
) -> anyhow::Result<Exported> {
    Ok(match reached {
        Reach::Server(mut client) => {
            let req = TransferRequest::Export(*req);
            over_socket(config, &mut client, &req, b"", out, &mut |_, _, _| {})?
        }
        Reach::Store(store) => on_store(config, store, |cx| transfer::export(cx, req, out))?,
    })
}

/// An import or export through the running server: `body` goes out after
/// the request, the file's frames come back into `sink`, and the answer
/// is read as `T`.
fn over_socket<T: serde::de::DeserializeOwned>(
    config: &Config,
    client: &mut crate::admin::socket::AdminClient,
    req: &TransferRequest,
    body: &[u8],
    sink: &mut dyn Write,
    progress: &mut dyn FnMut(&str, usize, Option<usize>),
) -> anyhow::Result<T> {
    let answer = client
        .transfer(req, body, sink, progress)
        .with_context(|| {
            format!(
                "while talking to the server over {}",
                config.admin_socket_path().display()
            )
        })?
        .map_err(|e| anyhow!(e))?;
    serde_json::from_value(answer).context("the server's answer")
}

/// An import or export on the store the CLI opened itself (no server).
fn on_store<T, E: std::fmt::Display>(
    config: &Config,
    store: Store,
    run: impl FnOnce(&TransferContext<'_>) -> Result<T, E>,
) -> anyhow::Result<T> {
    let ctx = offline(config, store)?;
    let cx = TransferContext {
        admin: &ctx,
        mode: Mode::Offline,
        data_dir: &config.data_dir,
        import: import_options(config),
    };
    run(&cx).map_err(|e| anyhow!("{e}"))
}

/// Secrets go to standard output only when it is neither a terminal (a
/// screen, a scrollback, a recorded session) nor a regular file that
/// others can read; pipes are fine (`| gpg -c`). `--force` skips this.
fn refuse_unsafe_stdout() -> anyhow::Result<()> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;
    let stdout = io::stdout();
    if stdout.is_terminal() {
        bail!(
            "refusing to print secrets to a terminal: use --output FILE (created with mode \
             0600), or pass --force"
        );
    }
    let fd = stdout
        .as_fd()
        .try_clone_to_owned()
        .context("while checking standard output")?;
    let meta = File::from(fd)
        .metadata()
        .context("while checking standard output")?;
    let mode = meta.permissions().mode() & 0o777;
    if meta.file_type().is_file() && mode & 0o044 != 0 {
        bail!(
            "refusing to write secrets to standard output: it is a file that others can read \
             (mode {mode:04o}); use --output FILE (created with mode 0600), make the file \
             private first, or pass --force"
        );
    }
    Ok(())
}

fn print(
    json: bool,
    value: &serde_json::Value,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    let s = if json {
        format!("{}\n", serde_json::to_string_pretty(value)?)
    } else {
        text()
    };
    io::stdout()
        .lock()
        .write_all(s.as_bytes())
        .context("while writing to standard output")
}
