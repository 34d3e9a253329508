//! Tests of hashing, verification and the pool.

use super::*;
use argon2::password_hash::PasswordHash;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

fn cheap() -> Hasher {
    Hasher::for_tests()
}

#[test]
fn hash_then_verify() {
    let h = cheap();
    let phc = h.hash_blocking("s3cret;x").expect("hash");
    assert!(phc.starts_with("$argon2id$"));
    assert!(h.verify_blocking("s3cret;x", &phc));
    assert!(!h.verify_blocking("s3cret", &phc));
    assert!(!h.verify_blocking("s3cret;x", "not a hash"));
}

#[tokio::test]
async fn a_full_queue_answers_busy_and_frees_its_slots() {
    let h = cheap().with_queue_limit(1);
    let phc = h.hash_blocking("pw").expect("hash");
    assert!(!h.queue_full());
    // One worker and one queued place: two checks fit, a third is busy.
    let a = h.try_slot().expect("first");
    let b = h.try_slot().expect("second");
    assert!(h.queue_full());
    assert_eq!(
        h.try_verify("pw".into(), Some(phc.clone())).await,
        Err(Busy)
    );
    drop((a, b));
    assert!(!h.queue_full());
    assert_eq!(h.try_verify("pw".into(), Some(phc)).await, Ok(true));
    assert_eq!(h.in_flight(), 0);
}

#[tokio::test]
async fn unknown_user_never_verifies() {
    let h = cheap();
    assert!(!h.verify("portcullis-dummy-password".into(), None).await);
}

#[test]
fn the_unknown_users_hash_costs_what_a_real_one_does() {
    // An unknown user's bind must take as long as a wrong password: the
    // dummy is verified at the configured costs with an output of the
    // same length, and is a fresh random one per hasher.
    let h = Hasher::new(&HashConfig {
        argon2_memory_kib: 128,
        argon2_iterations: 3,
        argon2_parallelism: 2,
        hash_workers: 1,
    })
    .expect("hasher");
    let real = h.hash_blocking("pw").expect("hash");
    let (real, dummy) = (
        PasswordHash::new(&real).expect("phc"),
        PasswordHash::new(&h.dummy).expect("dummy phc"),
    );
    assert_eq!(dummy.algorithm, real.algorithm);
    assert_eq!(dummy.version, real.version);
    assert_eq!(dummy.params, real.params);
    assert_eq!(dummy.salt.map(|s| s.len()), real.salt.map(|s| s.len()));
    assert_eq!(dummy.hash.map(|o| o.len()), real.hash.map(|o| o.len()));
    assert_ne!(*cheap().dummy, *cheap().dummy);
    assert!(!h.verify_blocking("portcullis-dummy-password", &h.dummy));
    assert!(!h.verify_blocking("", &h.dummy));
}

#[tokio::test]
async fn the_pool_hashes_what_the_argon2_crate_verifies() {
    use argon2::password_hash::PasswordVerifier;
    let h = cheap();
    let phc = h.hash("pool pw".into()).await.expect("hash");
    let parsed = PasswordHash::new(&phc).expect("phc");
    assert!(h.argon2.verify_password(b"pool pw", &parsed).is_ok());
    assert!(h.argon2.verify_password(b"other", &parsed).is_err());
    // And the pool verifies what the crate hashed, twice in a row with
    // the same reused memory.
    let theirs = hash_with(&h.argon2, "theirs").expect("hash");
    assert!(h.verify("theirs".into(), Some(theirs.clone())).await);
    assert!(!h.verify("mine".into(), Some(theirs.clone())).await);
    assert!(h.verify("theirs".into(), Some(theirs)).await);
}

#[tokio::test]
async fn hashes_with_other_costs_and_variants_verify() {
    let h = cheap();
    // More memory than the configured cost (a one-off allocation), and
    // argon2i/argon2d as imported from other directories.
    for (alg, m) in [
        (Algorithm::Argon2id, 256),
        (Algorithm::Argon2i, 32),
        (Algorithm::Argon2d, 64),
    ] {
        let params = Params::new(m, 2, 1, Some(16)).expect("params");
        let other = Argon2::new(alg, Version::V0x10, params);
        let phc = hash_with(&other, "imported").expect("hash");
        assert!(
            h.verify("imported".into(), Some(phc.clone())).await,
            "{phc}"
        );
        assert!(!h.verify("imported!".into(), Some(phc)).await);
    }
    // A truncated hash is a mismatch, not an error.
    let phc = h.hash_blocking("pw").expect("hash");
    assert!(
        !h.verify("pw".into(), Some(phc[..phc.len() - 4].into()))
            .await
    );
}

#[tokio::test]
async fn concurrent_checks_all_get_their_own_answer() {
    let h = Hasher::new(&HashConfig {
        argon2_memory_kib: 64,
        argon2_iterations: 1,
        argon2_parallelism: 1,
        hash_workers: 3,
    })
    .expect("params")
    .with_queue_limit(64);
    let phc = h.hash_blocking("right").expect("hash");
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (h, phc) = (h.clone(), phc.clone());
        tasks.push(tokio::spawn(async move {
            let pw = if i % 2 == 0 { "right" } else { "wrong" };
            (i, h.try_verify(pw.into(), Some(phc)).await)
        }));
    }
    for task in tasks {
        let (i, answer) = task.await.expect("task");
        assert_eq!(answer, Ok(i % 2 == 0), "check {i}");
    }
    assert_eq!(h.in_flight(), 0);
}

/// The starvation guard. Twice as many normal-priority threads as cores
/// spin, so SCHED_IDLE workers get next to nothing (weight 3 against
/// 2 × 1024 per core). With the guard, the worker is promoted to nice 10
/// once it makes no progress for STARVED_AFTER, to nice 0 if it is still
/// starved STARVED_AFTER later, and three real-cost hashes in a row end in
/// a second or two. Checked without the guard (`sched::set(_, false)` made
/// a no-op): one hash then took 0.8 s, 6.8 s and 13.2 s in three runs,
/// and the three in a row below 31.8 s, 30.5 s and 14.2 s, far past the
/// bound. With the first step alone (no nice 0), on Linux 6.18 the three
/// took 10.5 s, 23 s, 29.7 s and more than 45 s in four runs. The number
/// of promotions is not asserted: now and then the kernel gives an idle
/// worker a burst of CPU all the same (three hashes in 0.2 s once, with no
/// promotion). Where SCHED_IDLE is not allowed (no CAP_SYS_NICE and a low
/// RLIMIT_NICE), the worker runs at nice 10 from the start and the bound
/// holds as well. Once nothing is in flight, the worker is back at nice 10
/// (and SCHED_IDLE, under the guard): searches keep their CPU after a
/// flood.
#[tokio::test]
async fn real_cost_hashes_complete_while_normal_threads_fill_every_core() {
    let h = Hasher::new(&HashConfig {
        hash_workers: 1,
        ..HashConfig::default()
    })
    .expect("params");
    let phc = h.hash_blocking("pw").expect("hash");
    // Starts the pool and the guard, and sizes the worker's memory.
    assert!(h.verify("pw".into(), Some(phc.clone())).await);

    let stop = Arc::new(AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let spinners: Vec<_> = (0..2 * cores)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let answers = tokio::time::timeout(Duration::from_secs(45), async {
        let mut answers = Vec::new();
        for pw in ["pw", "wrong", "pw"] {
            answers.push(h.verify(pw.into(), Some(phc.clone())).await);
        }
        answers
    })
    .await;
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for s in spinners {
        s.join().expect("spinner");
    }
    assert_eq!(answers, Ok(vec![true, false, true]), "after {took:?}");
    assert!(took < Duration::from_secs(8), "took {took:?}");

    let (tids, guarded) = h.pool().workers_for_tests();
    assert_eq!(tids.len(), 1);
    assert_ne!(tids[0], 0, "the worker has run");
    // SCHED_IDLE is policy 5, SCHED_OTHER 0.
    let want = (HASH_NICE, if guarded { 5 } else { 0 });
    let mut seen = None;
    for _ in 0..100 {
        seen = nice_and_policy(tids[0]);
        if seen == Some(want) {
            break;
        }
        std::thread::sleep(GUARD_TICK);
    }
    assert_eq!(seen, Some(want), "nice and policy after the flood");
}

/// A worker's thread id may be another thread's once the worker ends, so
/// the guard must have none left to renice after the pool is gone.
#[tokio::test]
async fn ended_workers_leave_no_thread_id_to_renice() {
    let h = Hasher::new(&HashConfig {
        argon2_memory_kib: 64,
        argon2_iterations: 1,
        argon2_parallelism: 1,
        hash_workers: 2,
    })
    .expect("params");
    let phc = h.hash_blocking("pw").expect("hash");
    // Starts the pool; each worker stamps its id when its thread starts.
    assert!(h.verify("pw".into(), Some(phc)).await);
    let watch = h.pool().watch_for_tests();
    let settled = |want_started: bool| {
        let mut tids = watch.tids_for_tests();
        for _ in 0..100 {
            if tids.iter().all(|&t| (t != 0) == want_started) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            tids = watch.tids_for_tests();
        }
        tids
    };
    assert!(settled(true).iter().all(|&t| t != 0), "both workers run");
    drop(h);
    assert_eq!(settled(false), [0, 0]);
}

/// A thread of this process: its nice and scheduling policy, from
/// /proc/self/task/TID/stat (fields 19 and 41; the name before them is in
/// parentheses and may hold spaces).
fn nice_and_policy(tid: i32) -> Option<(i32, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // fields[0] is field 3 (the state).
    Some((fields.get(16)?.parse().ok()?, fields.get(38)?.parse().ok()?))
}
