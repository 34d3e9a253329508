//! The argon2 pool: concurrent binds each get their own answer, the hashing
//! runs on `auth.hash_workers` named threads at a lower priority than the
//! reactor, and memory stays bounded by the workers after a bind burst.

use crate::harness::{user_dn, Server};
use std::thread;

/// (name, nice) of each thread of a process, from /proc.
fn threads(pid: u32) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir");
    for task in tasks.flatten() {
        let path = task.path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("stat")),
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
        out.push((comm.trim().to_string(), nice));
    }
    out
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
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
    let hashers: Vec<_> = threads(pid)
        .into_iter()
        .filter(|(name, _)| name.starts_with("portcullis-hash"))
        .collect();
    assert_eq!(hashers.len(), 2, "{hashers:?}");
    assert!(hashers.iter().all(|(_, nice)| *nice == 10), "{hashers:?}");
    // Two workers × 19 MiB of argon2 memory plus the server itself; a fresh
    // 19 MiB allocation per hash on arbitrary threads went far beyond.
    let rss = vm_rss_kib(pid);
    assert!(rss < 200 * 1024, "VmRSS {rss} KiB after the burst");
}
