//! Private scratch files for work too large for memory.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// An anonymous file in `dir`: created 0600 under a fresh name and
/// unlinked at once, so it disappears with the handle whatever happens
/// (a crash included). `what` goes into the name, for whoever lists the
/// directory meanwhile. `dir` must be private to the server's user (the
/// data directory): the file may hold password hashes.
pub fn anonymous_file(dir: &Path, what: &str) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!(".{what}.{}.{n}.tmp", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}
