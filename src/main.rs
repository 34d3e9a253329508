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
    without_huge_pages();
    portcullis::cli::run(portcullis::cli::Cli::parse())
}

/// Turns transparent huge pages off for this process, unless mimalloc's
/// own `MIMALLOC_ALLOW_THP` is set (then it decides). mimalloc marks its
/// arenas for huge pages; the kernel then zeroes a whole 2 MiB page at a
/// fault, again after each purge that split one, and how often depends on
/// how fragmented the machine's memory is. Measured, alternating: the
/// offline import of 100k users took 1.78-3.15 s with huge pages (0.4-2.2 s
/// of it in the kernel, growing from run to run) and 1.73-1.85 s without
/// (0.31-0.41 s), with 20% less memory; a server on a million users, while
/// its caches fill, spent 5-20% less CPU per search and answered its
/// slowest in 26-45 ms instead of 44-85 ms. With a small directory the
/// difference is within noise. slapd asks for no huge pages either.
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // Refused only by kernels older than 3.15; nothing to do then.
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
}
