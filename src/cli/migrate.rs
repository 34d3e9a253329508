//! `import` and `export`: moving a directory in and out (LDIF, JSON backup).
//!
//! Both open the store directly, so the server must be stopped: sled lets one
//! process own the database, and an import is one all-or-nothing batch.

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

use crate::auth::password::Hasher;
use crate::config::Config;
use crate::directory::Dn;
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
    /// left out).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args, PartialEq)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value_t = Format::Ldif)]
    pub format: Format,
    /// Include password hashes (`userPassword: {ARGON2}…`) in LDIF. The JSON
    /// backup always includes them.
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
        let store = open_store(config)?;
        let report = import::json(&store, input)?;
        store.flush()?;
        return print(json, &serde_json::to_value(&report)?, || {
            format!(
                "restored {} users and {} groups\n",
                report.users_created.len() + report.users_updated.len(),
                report.groups_created.len() + report.groups_updated.len()
            )
        });
    }
    let mut progress = |p: import::Progress| {
        if p.done % 1000 == 0 || Some(p.done) == p.total {
            match p.total {
                Some(total) => eprintln!("{}: {}/{}", p.stage, p.done, total),
                None => eprintln!("{}: {}", p.stage, p.done),
            }
        }
    };
    let plan = import::read_and_plan(input, &import::ImportOptions::default(), &mut progress)?;
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
    store.flush()?;
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
    let base = Dn::parse(&config.base_dn)
        .with_context(|| format!("base DN {:?} is not a valid DN", config.base_dn))?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            Box::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(path)
                    .with_context(|| format!("while creating {}", path.display()))?,
            )
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
        Format::Json => export::json(&store, &mut out)?,
    }
    out.flush().context("while writing the export")?;
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
