//! The `portcullis` binary: parses the command line and hands it to
//! [`portcullis::cli::run`].

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    portcullis::cli::run(portcullis::cli::Cli::parse())
}
