//! The `portcullis` binary: parses the command line and hands it to
//! [`portcullis::cli::run`].

use clap::Parser;
use std::process::ExitCode;

/// mimalloc instead of the system allocator: serving a search allocates
/// and frees many small values (one per attribute value, a 500-member
/// group is 500 of them), and glibc's malloc took a quarter of the
/// server's CPU time on such searches.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    portcullis::cli::run(portcullis::cli::Cli::parse())
}
