//! `import` and `export`: moving a directory in and out (LDIF, JSON backup).
//!
//! Both open the store directly, so the server must be stopped: sled lets one
//! process own the database, and an import is one all-or-nothing batch.

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

use crate::auth::keys::{self, ServerKey};
use crate::auth::password::Hasher;
use crate::config::Config;
use crate::migrate::{export, import};
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// RFC 2849 LDIF, e.g. `slapcat` output.
    #[default]
    Ldif,
    /// Portcullis's JSON backup (complete: ids, hashes, settings).
    Json,
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
    /// Write to this file (created with mode 0600) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Import and export open the store directly, which a running server holds.
fn refuse_if_serving(config: &Config) -> anyhow::Result<()> {
    if std::os::unix::net::UnixStream::connect(config.admin_socket_path()).is_ok() {
        bail!(
            "the server is running on {}; stop it first (import and export open the store directly)",
            config.data_dir.display()
        );
    }
    Ok(())
}

fn open_store(config: &Config) -> anyhow::Result<Store> {
    refuse_if_serving(config)?;
    Store::open(&config.data_dir)
        .with_context(|| format!("while opening the store at {}", config.data_dir.display()))
}

pub fn run_import(config: &Config, args: ImportArgs, json: bool) -> anyhow::Result<()> {
    refuse_if_serving(config)?;
    let input: Box<dyn io::BufRead> = if args.file == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(BufReader::new(File::open(&args.file).with_context(
            || format!("while opening {}", args.file.display()),
        )?))
    };
    if args.format == Format::Json {
        if args.dry_run {
            bail!("--dry-run is for LDIF imports");
        }
        let backup = import::read_backup(input)?;
        let key = import::backup_server_key(&backup)?;
        if import::needs_server_key(&backup) && key.is_none() {
            bail!("the backup holds app password or static token hashes but no server_key");
        }
        let store = open_store(config)?;
        if let (Some(key), true) = (&key, import::needs_server_key(&backup)) {
            install_server_key(&config.data_dir, &store, key)?;
        }
        let report = import::restore(&store, &backup, args.force)?;
        if report.devices_skipped + report.app_passwords_skipped > 0 {
            eprintln!(
                "warning: {} MFA devices and {} app passwords were not restored: the backup has \
                 no secrets for them",
                report.devices_skipped, report.app_passwords_skipped
            );
        }
        let b = &report.batch;
        return print(json, &serde_json::to_value(&report)?, || {
            format!(
                "restored {} users, {} groups, {} MFA devices, {} app passwords\n",
                b.users_created.len() + b.users_updated.len(),
                b.groups_created.len() + b.groups_updated.len(),
                b.devices_restored,
                b.app_passwords_restored
            )
        });
    }
    let mut progress = |p: import::Progress| {
        if p.done.is_multiple_of(1000) || Some(p.done) == p.total {
            match p.total {
                Some(total) => eprintln!("{}: {}/{}", p.stage, p.done, total),
                None => eprintln!("{}: {}", p.stage, p.done),
            }
        }
    };
    let opts = import::ImportOptions {
        keep_attributes: config.import.keep_attributes.clone(),
    };
    for name in import::unserved_kept_attributes(&opts) {
        eprintln!(
            "note: kept attribute {name} is stored and exported but not served over LDAP (the \
             server's schema does not know it)"
        );
    }
    let plan = import::read_and_plan(input, &opts, &mut progress)?;
    if args.dry_run {
        return print(json, &plan.to_json(), || plan.report());
    }
    if plan.has_errors() && !args.force {
        eprint!("{}", plan.report());
        bail!("the import has errors (listed above); nothing was written. Fix them, or pass --force to leave those entries out");
    }
    let store = open_store(config)?;
    let hasher = Hasher::new(&config.auth).context("while setting up password hashing")?;
    let report = import::apply_with_progress(&store, &plan, &hasher, &mut progress)?;
    let b = &report.batch;
    print(json, &serde_json::to_value(&report)?, || {
        format!(
            "users: {} created, {} updated, {} unchanged; groups: {} created, {} updated, {} unchanged; {} memberships added\n",
            b.users_created.len(),
            b.users_updated.len(),
            b.users_unchanged.len(),
            b.groups_created.len(),
            b.groups_updated.len(),
            b.groups_unchanged.len(),
            b.memberships_added
        )
    })
}

pub fn run_export(config: &Config, args: ExportArgs) -> anyhow::Result<()> {
    let store = open_store(config)?;
    let base = config.base_dn.clone();
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("while creating {}", path.display()))?;
            // `mode` only applies to a new file: tighten an existing one.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("while making {} private", path.display()))?;
            Box::new(file)
        }
        None => Box::new(io::stdout().lock()),
    };
    match args.format {
        Format::Ldif => {
            let n = export::ldif_with(
                &store,
                &base,
                &config.ldap.admin_group,
                args.with_secrets,
                &mut out,
            )?;
            if args.output.is_some() {
                eprintln!("exported {n} entries");
            }
        }
        Format::Json => {
            let key = if args.with_secrets {
                read_server_key(&config.data_dir)?
            } else {
                None
            };
            let secrets = if args.with_secrets {
                eprintln!(
                    "warning: the backup holds TOTP secrets, token and app password hashes and \
                     the server key: keep it as secret as the data directory"
                );
                export::Secrets::Include(key.as_ref())
            } else {
                export::Secrets::Omit
            };
            let left_out = export::json(&store, secrets, &mut out)?;
            if left_out.devices + left_out.app_passwords > 0 {
                eprintln!(
                    "note: {} MFA devices and {} app passwords are listed without their secrets; \
                     a restore cannot recreate them (export --with-secrets to include them)",
                    left_out.devices, left_out.app_passwords
                );
            }
        }
    }
    out.flush().context("while writing the export")?;
    Ok(())
}

/// `<data>/server.key` if it exists (an export never creates one).
fn read_server_key(data_dir: &Path) -> anyhow::Result<Option<ServerKey>> {
    let path = data_dir.join(keys::FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(ServerKey::from_hex(&text).with_context(|| {
            format!("while reading the server key {}", path.display())
        })?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("while reading {}", path.display())),
    }
}

/// Makes `key` the data directory's server key, which the restored app
/// password and static token hashes are keyed with. Refuses when the
/// directory already has another key and hashes keyed with it; replaces a
/// key that keys nothing yet. Written (0600) to a temporary file, then
/// renamed into place, before the store batch: if the batch then fails,
/// the key keys nothing and is harmless.
fn install_server_key(data_dir: &Path, store: &Store, key: &ServerKey) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(current) = read_server_key(data_dir)? {
        if current == *key {
            return Ok(());
        }
        if store.has_keyed_hashes()? {
            bail!(
                "{} has its own server key and app passwords or static tokens keyed with it; \
                 restore into a fresh data directory",
                data_dir.display()
            );
        }
    }
    let path = data_dir.join(keys::FILE_NAME);
    let tmp = data_dir.join(format!(
        "{}.{}.restore",
        keys::FILE_NAME,
        std::process::id()
    ));
    let written = (|| -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(key.to_hex().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("while writing the server key {}", path.display()))?;
    eprintln!("installed the backup's server key as {}", path.display());
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
