//! Background threads that yield to the rest: nice is set per thread on
//! Linux, so a thread can lower its own priority and leave the process's
//! other threads as they are (the hashing workers, the cache warm).

/// Sets the calling thread to nice `nice`. Failing to is harmless: the
/// thread then competes with the others as an equal. `what` names the
/// thread in the debug line that says so.
pub fn lower_own(nice: i32, what: &str) {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice) {
        tracing::debug!(error = %e, "cannot lower the priority of {what}");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (nice, what);
}
