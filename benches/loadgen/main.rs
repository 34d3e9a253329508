//! `portcullis-bench`: the load generator of issue 5 (docs/benchmarks.md).
//!
//! - `run`: drives an LDAP server on loopback with many concurrent
//!   connections (ldap3's async API on tokio) for a bounded time and reports
//!   operations per second, latency percentiles, errors and, with
//!   `--server-pid`, the server's CPU time per operation.
//! - `seed`: loads the benchmark dataset into a running Portcullis through
//!   its admin socket; `ldif`: writes the same dataset for slapadd.
//! - `table`: turns the JSON lines of many runs into the comparison table.
//!
//! Built only with `--features bench-tools`, so neither the server build nor
//! `cargo test` compiles ldap3 or runs a load.

mod dataset;
mod stats;
mod table;
mod tls;
mod totp;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The load generator shares the cores with the server it measures, so it
/// should cost as little as it can: glibc's malloc was about 40% of its CPU
/// on the 500-member group read (one allocation per BER value), and every
/// cycle it spends is a cycle neither server gets. The same allocator as
/// the server's; it changes nothing in what is sent or checked.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "portcullis-bench",
    about = "Load generator and dataset tools for benchmarking Portcullis against OpenLDAP"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one workload for a bounded time and prints what it measured.
    Run(Box<workload::RunArgs>),
    /// Loads the dataset into a running Portcullis over its admin socket.
    Seed {
        /// The server's data directory (its admin socket is inside).
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        dataset: dataset::Dataset,
        #[command(flatten)]
        totp: dataset::TotpSeed,
    },
    /// Writes the dataset as LDIF (for slapadd) to stdout.
    Ldif {
        #[command(flatten)]
        dataset: dataset::Dataset,
    },
    /// Prints the comparison table from the JSON lines of `run --json`.
    Table {
        /// A file of JSON lines, one report per line.
        results: PathBuf,
        /// Label of the server in the first column of figures.
        #[arg(long, default_value = "portcullis")]
        ours: String,
        /// Label of the reference server.
        #[arg(long, default_value = "slapd")]
        reference: String,
        /// Print Markdown instead of aligned text.
        #[arg(long)]
        markdown: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => workload::run(*args),
        Command::Seed {
            data_dir,
            dataset,
            totp,
        } => dataset::seed(&data_dir, &dataset, &totp),
        Command::Ldif { dataset } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            dataset::write_ldif(&mut out, &dataset).and_then(|()| {
                std::io::Write::flush(&mut out).map_err(|e| format!("writing the LDIF: {e}"))
            })
        }
        Command::Table {
            results,
            ours,
            reference,
            markdown,
        } => table::print(&results, &ours, &reference, markdown),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
