//! The argon2 pool: concurrent binds each get their own answer, the hashing
//! runs on `auth.hash_workers` named threads under SCHED_IDLE at nice 10
//! (below the reactor), and memory stays bounded by the workers after a
//! bind burst.

use crate::harness::{user_dn, vm_rss_kib, Server};
use std::thread;

/// One thread of a process, from /proc.
#[derive(Debug)]
struct Task {
    name: String,
    nice: i64,
    /// Scheduling policy (0 SCHED_OTHER, 5 SCHED_IDLE).
    policy: i64,
}

fn threads(pid: u32) -> Vec<Task> {
    let mut out = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir");
    for task in tasks.flatten() {
        let path = task.path();
        let (Ok(comm), Ok(stat), Ok(sched)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("stat")),
            std::fs::read_to_string(path.join("sched")),
        ) else {
            continue; // the thread ended meanwhile
        };
        // Fields after the ")" of the command: state is field 3, nice 19.
        let rest = &stat[stat.rfind(')').expect("stat") + 1..];
        let nice = rest
            .split_whitespace()
            .nth(16)
            .and_then(|n| n.parse().ok())
            .expect("nice");
        // A line "policy    :    5".
        let policy = sched
            .lines()
            .find(|l| l.split(':').next().map(str::trim) == Some("policy"))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.trim().parse().ok())
            .expect("policy");
        out.push(Task {
            name: comm.trim().to_string(),
            nice,
            policy,
        });
    }
    out
}

/// Whether a process started by this one may leave SCHED_IDLE again (what
/// the server checks before using it): CAP_SYS_NICE, or an RLIMIT_NICE
/// that allows nice 10. Root here and in CI.
fn can_leave_sched_idle() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_SYS_NICE: u32 = 23;
    let limits = std::fs::read_to_string("/proc/self/limits").expect("limits");
    let rlimit_nice: u64 = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max nice priority"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    cap_eff & (1 << CAP_SYS_NICE) != 0 || rlimit_nice >= 10
}

#[test]
fn a_bind_burst_runs_on_the_hash_pool_with_bounded_memory() {
    // The real argon2 costs (m=19456 KiB), two workers, no bind cache: every
    // bind below costs one full hash.
    let s = Server::start_with(&[
        ("PORTCULLIS_AUTH_HASH_WORKERS", "2"),
        ("PORTCULLIS_BIND_CACHE", "false"),
    ]);
    for i in 0..4 {
        s.add_user(&format!("u{i}"), &format!("pw-{i}"));
    }

    // 8 connections, 6 binds each, right and wrong passwords interleaved:
    // every bind gets the answer to its own password.
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let mut c = s.conn();
            thread::spawn(move || {
                let mut codes = Vec::new();
                for k in 0..6 {
                    let i = (t + k) % 4;
                    let right = (t + k) % 2 == 0;
                    let pw = if right {
                        format!("pw-{i}")
                    } else {
                        format!("pw-{i}x")
                    };
                    let r = c
                        .simple_bind(&user_dn(&format!("u{i}")), &pw)
                        .expect("bind");
                    codes.push((right, r.rc));
                }
                codes
            })
        })
        .collect();
    for w in workers {
        for (right, rc) in w.join().expect("thread") {
            assert_eq!(rc, if right { 0 } else { 49 }, "right={right}");
        }
    }

    let pid = s.pid();
    let tasks = threads(pid);
    let hashers: Vec<_> = tasks
        .iter()
        .filter(|t| t.name.starts_with("portcullis-hash"))
        .collect();
    assert_eq!(hashers.len(), 2, "{tasks:?}");
    // SCHED_IDLE where the starvation guard can promote them again (else
    // the server keeps them at SCHED_OTHER), nice 10 either way; after the
    // burst the guard has put back any worker it promoted.
    let policy = if can_leave_sched_idle() { 5 } else { 0 };
    assert!(
        hashers.iter().all(|t| t.nice == 10 && t.policy == policy),
        "{hashers:?}"
    );
    // The threads serving requests stay normal.
    assert!(
        tasks
            .iter()
            .filter(|t| t.name.starts_with("tokio") || t.name == "portcullis")
            .all(|t| t.policy == 0 && t.nice == 0),
        "{tasks:?}"
    );
    // Two workers × 19 MiB of argon2 memory plus the server itself; a fresh
    // 19 MiB allocation per hash on arbitrary threads went far beyond.
    let rss = vm_rss_kib(pid);
    assert!(rss < 200 * 1024, "VmRSS {rss} KiB after the burst");
}
