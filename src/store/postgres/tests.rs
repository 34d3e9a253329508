//! What only a shared database can show: two instances (two `PgStore`s
//! on one database, as two Portcullis processes would have) deciding
//! atomic steps together. The single-instance contract is the
//! conformance suite's (`store::conformance`).

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use super::testing::Cluster;
use super::PgStore;
use crate::store::import::Batch;
use crate::store::mfa::{KeyedHash, TotpSecret};
use crate::store::{Backend, Member, NewUser, StoreError, User};

/// Two instances on one new database.
fn two_instances() -> (PgStore, PgStore) {
    let cluster = Cluster::get();
    let url = cluster.url(&cluster.create_database());
    (
        PgStore::connect(&url, 8, None).expect("instance A"),
        PgStore::connect(&url, 8, None).expect("instance B"),
    )
}

fn user(s: &PgStore, name: &str) -> User {
    s.create_user(NewUser {
        username: name.into(),
        ..NewUser::default()
    })
    .expect("user")
}

/// Runs `attempt(i)` on `n` threads released together; how many won.
fn race(n: usize, attempt: impl Fn(usize) -> bool + Send + Sync) -> usize {
    let barrier = Barrier::new(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (attempt, barrier) = (&attempt, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    attempt(i)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("racer"))
            .filter(|won| *won)
            .count()
    })
}

#[test]
fn a_code_is_consumed_once_across_instances() {
    let (a, b) = two_instances();
    let alice = user(&a, "alice");
    let token: KeyedHash = [9; 32];
    let paper = a
        .add_static_device(alice.id, "paper", &[token])
        .expect("static");
    let totp = a
        .add_totp(alice.id, "phone", 6, &TotpSecret(vec![3; 20]), true)
        .expect("totp");
    let on = |i: usize| if i.is_multiple_of(2) { &a } else { &b };
    let uses = race(16, |i| {
        on(i)
            .consume_static_token(alice.id, paper.id, &token)
            .expect("consume")
    });
    assert_eq!(uses, 1, "one static token, one use over both instances");
    let uses = race(16, |i| {
        on(i)
            .advance_totp_step(alice.id, totp.id, 5000)
            .expect("advance")
    });
    assert_eq!(uses, 1, "one TOTP step, one use over both instances");
    assert!(!b
        .advance_totp_step(alice.id, totp.id, 5000)
        .expect("replay"));
    assert_eq!(
        b.totp_last_step(alice.id, totp.id).expect("read"),
        Some(5000)
    );
}

#[test]
fn opposite_nesting_through_two_instances_cannot_build_a_cycle() {
    let (a, b) = two_instances();
    for round in 0..20 {
        let x = a.create_group(&format!("x{round}"), None).expect("group");
        let y = a.create_group(&format!("y{round}"), None).expect("group");
        let results: Vec<bool> = std::thread::scope(|scope| {
            let one = scope.spawn(|| a.add_member(x.id, Member::Group(y.id)).is_ok());
            let two = scope.spawn(|| b.add_member(y.id, Member::Group(x.id)).is_ok());
            vec![one.join().expect("thread"), two.join().expect("thread")]
        });
        assert_eq!(
            results.iter().filter(|ok| **ok).count(),
            1,
            "round {round}: {results:?}"
        );
    }
}

#[test]
fn a_delete_and_an_add_through_two_instances_leave_nothing_dangling() {
    let (a, b) = two_instances();
    let staff = a.create_group("staff", None).expect("group");
    for round in 0..20 {
        let u = user(&a, &format!("u{round}"));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let _ = a.add_member(staff.id, Member::User(u.id));
            });
            scope.spawn(|| b.delete_user(u.id).expect("delete"));
        });
        assert_eq!(b.groups_of(Member::User(u.id)).expect("read"), vec![]);
    }
    assert!(a.members(staff.id).expect("read").is_empty());
}

/// Users created through A and groups through B at once, with both
/// allocators at the same number: every uidNumber and gidNumber is handed
/// out once, and no user's private group number is a group's.
#[test]
fn numbers_allocated_through_two_instances_never_collide() {
    let (a, b) = two_instances();
    a.apply_batch(&Batch {
        next_uid: Some(4000),
        next_gid: Some(4000),
        ..Batch::default()
    })
    .expect("counters");
    let numbers: Vec<u32> = std::thread::scope(|scope| {
        let users = scope.spawn(|| {
            (0..15)
                .map(|i| user(&a, &format!("u{i}")).uid_number)
                .collect::<Vec<_>>()
        });
        let groups = scope.spawn(|| {
            (0..15)
                .map(|i| {
                    b.create_group(&format!("g{i}"), None)
                        .expect("group")
                        .gid_number
                })
                .collect::<Vec<_>>()
        });
        let mut all = users.join().expect("users");
        all.extend(groups.join().expect("groups"));
        all
    });
    let distinct: HashSet<u32> = numbers.iter().copied().collect();
    assert_eq!(distinct.len(), numbers.len(), "{numbers:?}");
}

#[test]
fn the_membership_epoch_is_shared() {
    let (a, b) = two_instances();
    let staff = a.create_group("staff", None).expect("group");
    let alice = user(&a, "alice");
    let before = b.membership_epoch().expect("epoch");
    a.add_member(staff.id, Member::User(alice.id)).expect("add");
    assert!(b.membership_epoch().expect("epoch") > before);
}

#[test]
fn a_stale_change_set_is_refused_across_instances() {
    let (a, b) = two_instances();
    let alice = user(&a, "alice");
    let mut planned = alice.clone();
    planned.full_name = Some("Alice".into());
    b.update_user(alice.id, &|u: &mut User| {
        u.email = Some("alice@example.com".into());
        Ok(())
    })
    .expect("update through B");
    assert_eq!(
        a.replace_user(&alice, &planned, None).expect("replace"),
        None
    );
    let err = a.create_user(NewUser {
        username: "ALICE".into(),
        ..NewUser::default()
    });
    assert!(matches!(err, Err(StoreError::AlreadyExists(_))), "{err:?}");
}

#[test]
fn the_store_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<PgStore>();
    let _: Arc<dyn Backend> = Arc::new(two_instances().0);
}

#[test]
fn the_first_key_fingerprint_is_kept_and_another_refused() {
    let (a, b) = two_instances();
    a.check_key_fingerprint("aa").expect("first");
    a.check_key_fingerprint("aa").expect("same again");
    b.check_key_fingerprint("aa").expect("same on B");
    assert!(matches!(
        b.check_key_fingerprint("bb"),
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn one_instance_at_a_time_holds_the_startup_lock() {
    let (a, b) = two_instances();
    let held = a.startup_lock().expect("lock");
    let try_lock = || {
        b.read(async |c| {
            Ok(
                c.query_one("SELECT pg_try_advisory_lock($1)", &[&super::MIGRATION_LOCK])
                    .await?
                    .get::<_, bool>(0),
            )
        })
        .expect("try")
    };
    assert!(!try_lock(), "held by A");
    drop(held);
    // The session of A's lock ends with its connection; the server
    // notices at once, but asynchronously.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut got = false;
    while !got && std::time::Instant::now() < deadline {
        got = try_lock();
        if !got {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    assert!(got, "released when A's guard is dropped");
}

/// A throttle counting in `store`'s shared failure counters.
fn shared_throttle(
    store: &PgStore,
    config: crate::auth::throttle::ThrottleConfig,
) -> crate::auth::throttle::Throttle {
    crate::auth::throttle::Throttle::new(config).with_shared(Backend::failure_counters(store))
}

#[test]
fn the_throttle_rules_hold_with_shared_counters() {
    for (name, scenario) in crate::auth::throttle::tests::SCENARIOS {
        let (a, _) = two_instances();
        eprintln!("scenario {name}");
        scenario(&|config| shared_throttle(&a, config));
    }
}

#[test]
fn failures_through_two_instances_add_up_to_one_softlock() {
    use crate::auth::throttle::{Key, ThrottleConfig, Verdict};
    use std::time::{Duration, SystemTime};
    let (a, b) = two_instances();
    let config = ThrottleConfig {
        account_delay: Duration::from_secs(60),
        ..ThrottleConfig::default()
    };
    let (ta, tb) = (
        shared_throttle(&a, config.clone()),
        shared_throttle(&b, config),
    );
    let key = Key::account("Alice");
    let now = SystemTime::now();
    for _ in 0..4 {
        assert_eq!(ta.failure(&key, now), None);
    }
    assert_eq!(tb.check(&key, now), Verdict::Allowed, "four so far");
    assert_eq!(tb.failure(&key, now), Some(Duration::from_secs(60)));
    for t in [&ta, &tb] {
        assert!(matches!(t.check(&key, now), Verdict::Throttled { .. }));
    }
    // A success through B resets the count for A too.
    tb.success(&key);
    assert_eq!(ta.check(&key, now), Verdict::Allowed);

    // Concurrent failures through both instances each count.
    let bob = Key::account("bob");
    let lenient = ThrottleConfig {
        account_failures: 1000,
        ..ThrottleConfig::default()
    };
    let (ta, tb) = (
        shared_throttle(&a, lenient.clone()),
        shared_throttle(&b, lenient),
    );
    let failed = race(40, |i| {
        let t = if i % 2 == 0 { &ta } else { &tb };
        t.failure(&bob, now).is_none()
    });
    assert_eq!(failed, 40);
    let counted = a
        .read(async |c| {
            Ok(c.query_one(
                "SELECT failures FROM failure_counters WHERE key = $1",
                &[&b"abob".to_vec()],
            )
            .await?
            .get::<_, i32>(0))
        })
        .expect("count");
    assert_eq!(counted, 40);
}

/// The failures the shared counters hold for `key` (`None`: no row).
fn shared_failures(store: &PgStore, key: &[u8]) -> Option<i32> {
    let key = key.to_vec();
    store
        .read(async move |c| {
            Ok(c.query_opt(
                "SELECT failures FROM failure_counters WHERE key = $1",
                &[&key],
            )
            .await?
            .map(|r| r.get::<_, i32>(0)))
        })
        .expect("count")
}

#[test]
fn a_success_resets_the_count_its_check_found_and_only_that() {
    use crate::auth::throttle::{Found, Key, ThrottleConfig, Verdict};
    use std::time::SystemTime;
    let (a, b) = two_instances();
    let (ta, tb) = (
        shared_throttle(&a, ThrottleConfig::default()),
        shared_throttle(&b, ThrottleConfig::default()),
    );
    let key = Key::account("carol");
    let now = SystemTime::now();
    // Nothing counted: the check says so, and the success after it
    // writes nothing, even when a failure through B came in between
    // (it stays counted: the safe side).
    assert_eq!(
        ta.check_found(&key, now),
        (Verdict::Allowed, Found::Nothing)
    );
    assert_eq!(tb.failure(&key, now), None);
    ta.success_after(&key, Found::Nothing);
    assert_eq!(shared_failures(&a, b"acarol"), Some(1));
    // A check that finds the count: the success resets it for both.
    assert_eq!(ta.check_found(&key, now), (Verdict::Allowed, Found::Count));
    ta.success_after(&key, Found::Count);
    assert_eq!(shared_failures(&a, b"acarol"), None);
    assert_eq!(
        tb.check_found(&key, now),
        (Verdict::Allowed, Found::Nothing)
    );
    // Four failures, a success after a check that found them: the fifth
    // failure does not lock.
    for _ in 0..4 {
        assert_eq!(tb.failure(&key, now), None);
    }
    let (verdict, found) = ta.check_found(&key, now);
    assert_eq!((verdict, found), (Verdict::Allowed, Found::Count));
    ta.success_after(&key, found);
    assert_eq!(tb.failure(&key, now), None, "counted from one again");
}

#[test]
fn an_unreachable_database_falls_back_to_the_instances_own_count() {
    use crate::auth::throttle::{Key, ThrottleConfig, Verdict};
    use std::time::{Duration, Instant, SystemTime};
    let cluster = Cluster::start_own(&[], &[]);
    let store =
        PgStore::connect(&cluster.url(&cluster.create_database()), 4, None).expect("connect");
    let t = shared_throttle(&store, ThrottleConfig::default());
    let key = Key::account("alice");
    let now = SystemTime::now();
    for _ in 0..3 {
        t.failure(&key, now);
    }
    cluster.stop();
    let started = Instant::now();
    // Three counted in the database, now unreachable: the instance
    // counts on alone and locks after its own five; nothing hangs.
    for _ in 0..4 {
        assert_eq!(t.check(&key, now), Verdict::Allowed);
        assert_eq!(t.failure(&key, now), None);
    }
    assert!(
        t.failure(&key, now).is_some(),
        "the fifth local failure locks"
    );
    assert!(matches!(t.check(&key, now), Verdict::Throttled { .. }));
    assert!(started.elapsed() < Duration::from_secs(30), "bounded");
    // Back again: the database's count (3) and the memory's lock both
    // hold until a success.
    cluster.start_again().expect("start again");
    assert!(matches!(t.check(&key, now), Verdict::Throttled { .. }));
    t.success(&key);
    assert_eq!(t.check(&key, now), Verdict::Allowed);
}

/// Whether the connection `store` uses is encrypted.
fn encrypted(store: &PgStore) -> bool {
    store
        .read(async |c| {
            Ok(c.query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await?
            .get::<_, bool>(0))
        })
        .expect("pg_stat_ssl")
}

#[test]
fn tls_to_the_database_with_each_sslmode() {
    let (cluster, root, wrong_root) = Cluster::start_tls();
    let db = cluster.create_database();
    let port = cluster.port();
    // A password in the URL (the cluster trusts loopback and ignores it),
    // to check that no error repeats it.
    let url = |host: &str, params: &str| {
        format!("postgres://postgres:n0t-the-s3cret@{host}:{port}/{db}?hostaddr=127.0.0.1&{params}")
    };
    let connect = |url: String| PgStore::connect(&url, 2, None);
    let root = root.display();
    let wrong_root = wrong_root.display();

    for (host, params) in [
        ("127.0.0.1", "sslmode=require".to_string()),
        ("127.0.0.1", "sslmode=prefer".to_string()),
        (
            "localhost",
            format!("sslmode=verify-full&sslrootcert={root}"),
        ),
        // verify-ca checks the chain, not the name.
        ("127.0.0.1", format!("sslmode=verify-ca&sslrootcert={root}")),
    ] {
        let store = connect(url(host, &params)).unwrap_or_else(|e| panic!("{params}: {e}"));
        assert!(encrypted(&store), "{params}");
    }
    let plain = connect(url("127.0.0.1", "sslmode=disable")).expect("disable");
    assert!(!encrypted(&plain));

    for (host, params, why) in [
        (
            "localhost",
            format!("sslmode=verify-full&sslrootcert={wrong_root}"),
            "UnknownIssuer",
        ),
        (
            "127.0.0.1",
            format!("sslmode=verify-full&sslrootcert={root}"),
            "not valid for name",
        ),
        (
            "localhost",
            format!("sslmode=verify-ca&sslrootcert={wrong_root}"),
            "UnknownIssuer",
        ),
    ] {
        let e = match connect(url(host, &params)) {
            Ok(_) => panic!("{params} through {host} connected"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("TLS") && e.contains(why), "{params}: {e}");
        assert!(!e.contains("n0t-the-s3cret"), "{e}");
    }
}

/// A database created with a linguistic collation (ICU's en-US sorts `_`
/// before digits) still lists users, groups and settings bytewise by
/// their lowercase names, as sled does: exports do not depend on how the
/// database was created.
#[test]
fn names_are_listed_bytewise_whatever_the_collation() {
    let cluster = Cluster::get();
    let name = cluster.create_database();
    let icu = format!("{name}_icu");
    cluster.psql(
        "postgres",
        &format!(
            "CREATE DATABASE {icu} TEMPLATE template0 ENCODING 'UTF8' \
             LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
        ),
    );
    let s = PgStore::connect(&cluster.url(&icu), 2, None).expect("connect");
    for n in ["a_b", "a1", "ab"] {
        user(&s, n);
        s.create_group(&format!("g{n}"), None).expect("group");
        s.set_setting(&format!("k{n}"), "v").expect("setting");
    }
    let bytewise = ["a1", "a_b", "ab"];
    let users: Vec<String> = s
        .users()
        .expect("users")
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(users, bytewise);
    let snap = s.snapshot().expect("snapshot");
    let snap_users: Vec<&str> = snap
        .users
        .iter()
        .map(|u| u.user.username.as_str())
        .collect();
    assert_eq!(snap_users, bytewise);
    let groups: Vec<String> = snap.groups.iter().map(|g| g.group.name.clone()).collect();
    assert_eq!(groups, ["ga1", "ga_b", "gab"]);
    let groups: Vec<String> = s
        .groups()
        .expect("groups")
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(groups, ["ga1", "ga_b", "gab"]);
    let keys: Vec<String> = snap.settings.into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["ka1", "ka_b", "kab"]);
}

// --- The read model and the change feed (`feed`, `model`, `instance`) ---

mod read_model {
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, Instant};

    use super::super::testing::Cluster;
    use super::super::{PgInstance, PgStore};
    use super::user;
    use crate::store::{Backend, Member};

    fn database() -> String {
        let cluster = Cluster::get();
        cluster.url(&cluster.create_database())
    }

    /// Polls `check` until it holds or `limit` passes.
    fn within(limit: Duration, check: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if check() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_write_elsewhere_reaches_the_model_through_the_listener() {
        let url = database();
        let writer = PgStore::connect(&url, 4, None).expect("writer");
        let reader =
            PgInstance::start(PgStore::connect(&url, 4, None).expect("db")).expect("reader");
        let admins = writer.create_group("admins", None).expect("group");
        let alice = user(&writer, "alice");
        writer
            .add_member(admins.id, Member::User(alice.id))
            .expect("member");
        writer
            .set_password_hash(alice.id, "$argon2id$new")
            .expect("hash");
        assert!(
            within(Duration::from_secs(1), || {
                reader.user_id_by_name("ALICE").ok().flatten() == Some(alice.id)
                    && reader.groups_of(Member::User(alice.id)).ok() == Some(vec![admins.id])
                    && reader.password_hash(alice.id).ok().flatten().as_deref()
                        == Some("$argon2id$new")
            }),
            "the listener brings a write made elsewhere within a second"
        );
        assert_eq!(
            reader.membership_epoch().expect("epoch"),
            writer.membership_epoch().expect("epoch")
        );
        writer.delete_user(alice.id).expect("delete");
        assert!(within(Duration::from_secs(1), || {
            reader.user(alice.id).ok() == Some(None)
                && reader.members(admins.id).ok() == Some(vec![])
        }));
        assert!(reader.feed_connected());
    }

    /// A writer, and an instance whose model no listener moves (only a
    /// catch-up can), loaded before alice was created and disabled
    /// through the writer.
    fn unfollowed_and_alice_disabled() -> (PgStore, PgInstance, crate::store::User) {
        let url = database();
        let writer = PgStore::connect(&url, 4, None).expect("writer");
        let reader =
            PgInstance::loaded(PgStore::connect(&url, 4, None).expect("db")).expect("reader");
        let alice = user(&writer, "alice");
        writer
            .update_user(alice.id, &|u| {
                u.disabled = true;
                Ok(())
            })
            .expect("disable");
        (writer, reader, alice)
    }

    #[test]
    fn refresh_catches_up_without_any_notification() {
        let (_writer, reader, alice) = unfollowed_and_alice_disabled();
        assert_eq!(reader.user(alice.id).expect("read"), None, "not yet");
        reader.refresh().expect("catch up");
        let seen = reader.user(alice.id).expect("read").expect("alice");
        assert!(seen.disabled);
        assert!(!reader.user_is_active(alice.id).expect("active"));
    }

    /// A bind's questions asked together: the counter answers as
    /// `locked_until` does (locked, and nothing counted), the model is
    /// caught up as by `refresh`, the app password is found as by
    /// `app_password_by_hash` (when asked), and the answer is awaited away
    /// from the store's runtime, as a reactor awaits it.
    #[test]
    fn the_counter_the_catch_up_and_the_app_password_asked_together_answer_all() {
        use crate::domain::mfa::CredentialKind;
        use crate::store::SoftlockRule;
        let (writer, reader, alice) = unfollowed_and_alice_disabled();
        let rule = SoftlockRule {
            threshold: 2,
            first_ms: 60_000,
            cap_ms: 600_000,
            forget_after_lock: false,
        };
        let counters = Backend::failure_counters(&writer).expect("shared counters");
        let now_ms = 1_900_000_000_000;
        counters
            .count_failure(b"aalice", now_ms, &rule)
            .expect("count");
        let (failures, until) = counters
            .count_failure(b"aalice", now_ms, &rule)
            .expect("count");
        assert_eq!((failures, until), (2, now_ms + 60_000), "locked");
        let mail = Backend::add_app_password(
            &writer,
            alice.id,
            CredentialKind::AppPassword,
            "mail",
            None,
            &[7; 32],
        )
        .expect("app password");
        assert_eq!(reader.user(alice.id).expect("read"), None, "not yet");

        let reads = reader
            .bind_reads(b"aalice", Some(&[7; 32]))
            .expect("asked together on an instance");
        let reads = futures::executor::block_on(reads);
        assert_eq!(reads.locked_until.expect("counter"), Some(until));
        reads.caught_up.expect("caught up");
        let (owner, found) = reads
            .app_password
            .expect("asked")
            .expect("looked up")
            .expect("found");
        assert_eq!(
            (owner, found.id, found.name.as_str()),
            (alice.id, mail.id, "mail")
        );
        assert!(
            reader
                .user(alice.id)
                .expect("read")
                .expect("alice")
                .disabled
        );

        let reads = futures::executor::block_on(reader.bind_reads(b"abob", None).expect("asked"));
        assert_eq!(
            reads.locked_until.expect("counter"),
            None,
            "nothing counted"
        );
        reads.caught_up.expect("caught up");
        assert!(reads.app_password.is_none(), "not asked");
        let reads =
            futures::executor::block_on(reader.bind_reads(b"abob", Some(&[8; 32])).expect("asked"));
        assert_eq!(reads.app_password.expect("asked").expect("looked up"), None);
        assert!(
            writer.bind_reads(b"aalice", None).is_none(),
            "the database layer has no model to catch up: asked apart"
        );
    }

    /// A transaction that took its change number first but commits last
    /// is not skipped: the number is a hole asked for again.
    #[test]
    fn a_change_committed_out_of_order_is_not_lost() {
        let url = database();
        let writer = PgStore::connect(&url, 4, None).expect("writer");
        let reader =
            PgInstance::loaded(PgStore::connect(&url, 4, None).expect("db")).expect("reader");
        let alice = user(&writer, "alice");
        reader.refresh().expect("catch up");
        let (taken, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let slow = {
            let (writer, taken, release) = (writer.clone(), taken.clone(), release.clone());
            std::thread::spawn(move || {
                writer
                    .write("a slow write", async |tx| {
                        tx.execute(
                            "UPDATE users SET full_name = 'Alice Slow' WHERE id = $1",
                            &[&alice.id.0],
                        )
                        .await?;
                        taken.wait();
                        release.wait();
                        Ok(())
                    })
                    .expect("slow write")
            })
        };
        taken.wait();
        let bob = user(&writer, "bob");
        reader.refresh().expect("catch up");
        assert!(reader.user(bob.id).expect("read").is_some());
        assert_eq!(
            reader
                .user(alice.id)
                .expect("read")
                .expect("alice")
                .full_name,
            None
        );
        release.wait();
        slow.join().expect("thread");
        reader.refresh().expect("catch up");
        assert_eq!(
            reader
                .user(alice.id)
                .expect("read")
                .expect("alice")
                .full_name
                .as_deref(),
            Some("Alice Slow")
        );
    }

    #[test]
    fn many_changes_at_once_are_all_taken_in() {
        let url = database();
        let writer = PgStore::connect(&url, 4, None).expect("writer");
        let reader =
            PgInstance::loaded(PgStore::connect(&url, 4, None).expect("db")).expect("reader");
        for i in 0..40 {
            user(&writer, &format!("u{i}"));
        }
        reader.refresh().expect("catch up");
        assert_eq!(reader.user_count().expect("count"), 40);
        assert_eq!(
            reader.users().expect("users").len(),
            writer.users().expect("users").len()
        );
    }

    #[test]
    fn a_portal_session_ended_through_one_instance_is_gone_on_the_other_at_once() {
        let url = database();
        let a = PgInstance::start(PgStore::connect(&url, 4, None).expect("db")).expect("A");
        let b = PgInstance::start(PgStore::connect(&url, 4, None).expect("db")).expect("B");
        let alice = user(a.db(), "alice");
        let session = crate::store::PortalSession {
            id: crate::store::SessionId(uuid::Uuid::new_v4()),
            user: alice.id,
            created: 1,
            last_seen: 1,
            address: "192.0.2.1".into(),
            user_agent: "Test/1.0".into(),
            csrf: "t".into(),
            pending_code: false,
        };
        a.create_session(&[7; 32], &session).expect("sign in on A");
        assert_eq!(b.session(&[7; 32]).expect("read"), Some(session));
        assert!(a.delete_session(&[7; 32]).expect("sign out on A"));
        // Sessions are read from the database: no feed delay.
        assert_eq!(b.session(&[7; 32]).expect("read"), None);
    }

    /// A connection that binds and closes before it settles (a web
    /// application's login) never reaches the database; one that stays
    /// is listed on the other instance, and gone once it closes.
    #[test]
    fn only_connections_that_stay_are_written_to_the_board() {
        use crate::store::BoardEntry;
        let url = database();
        let a = PgInstance::start(PgStore::connect(&url, 4, None).expect("db")).expect("A");
        let b = PgInstance::start(PgStore::connect(&url, 4, None).expect("db")).expect("B");
        let alice = user(a.db(), "alice");
        let (board_a, board_b) = (
            a.connection_board().expect("A's board"),
            b.connection_board().expect("B's board"),
        );
        let entry = |id| BoardEntry {
            id,
            user: alice.id,
            username: "alice".into(),
            address: "192.0.2.1".into(),
            bound_at: 1,
            last_op: 1,
        };
        let rows = || {
            a.db()
                .read(async |c| {
                    Ok(c.query_one("SELECT count(*) FROM ldap_connections", &[])
                        .await?
                        .get::<_, i64>(0))
                })
                .expect("count")
        };
        // Every row ever written is remembered, so a row written and
        // removed again cannot hide.
        a.db()
            .read(async |c| {
                c.batch_execute(
                    "CREATE TABLE written (id uuid); \
                     CREATE FUNCTION remember() RETURNS trigger LANGUAGE plpgsql AS \
                       $$ BEGIN INSERT INTO written VALUES (NEW.id); RETURN NEW; END $$; \
                     CREATE TRIGGER remember AFTER INSERT OR UPDATE ON ldap_connections \
                       FOR EACH ROW EXECUTE FUNCTION remember();",
                )
                .await?;
                Ok(())
            })
            .expect("trigger");
        // Both boards have made their first heartbeat, which writes every
        // connection held (as after an outage), settled or not.
        let instances = || {
            a.db()
                .read(async |c| {
                    Ok(c.query_one("SELECT count(*) FROM instances", &[])
                        .await?
                        .get::<_, i64>(0))
                })
                .expect("instances")
        };
        assert!(within(Duration::from_secs(3), || instances() == 2));
        std::thread::sleep(Duration::from_millis(200));
        let (brief, stays) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        board_a.publish(brief, Some(entry(brief)));
        board_a.publish(stays, Some(entry(stays)));
        // Closed well within the settling time (and after the writer has
        // taken the publications in).
        std::thread::sleep(Duration::from_millis(50));
        board_a.publish(brief, None);
        assert!(
            within(Duration::from_secs(3), || board_b
                .others(None)
                .expect("list")
                .iter()
                .any(|e| e.id == stays)),
            "the connection that stays is listed on B"
        );
        std::thread::sleep(Duration::from_millis(500));
        let ever: Vec<uuid::Uuid> = a
            .db()
            .read(async |c| {
                Ok(c.query("SELECT DISTINCT id FROM written", &[])
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect())
            })
            .expect("written");
        assert_eq!(ever, [stays], "the brief connection was never written");
        assert_eq!(rows(), 1);
        board_a.publish(stays, None);
        assert!(
            within(Duration::from_secs(3), || rows() == 0),
            "removed once closed"
        );
    }

    /// How long a change made through one instance takes to be seen by
    /// another's model (a measurement, not a check: run it with
    /// `cargo test --release --lib propagation -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn propagation_delay_between_two_instances() {
        let url = database();
        let a = PgInstance::start(PgStore::connect(&url, 4, None).expect("db")).expect("A");
        let b = PgInstance::start(PgStore::connect(&url, 4, None).expect("db")).expect("B");
        let (mut after_return, mut after_call) = (Vec::new(), Vec::new());
        for i in 0..300 {
            let name = format!("p{i}");
            let called = Instant::now();
            let made = a
                .create_user(crate::store::NewUser {
                    username: name.clone(),
                    ..crate::store::NewUser::default()
                })
                .expect("user");
            let returned = Instant::now();
            while b.user_id_by_name(&name).expect("read") != Some(made.id) {
                std::thread::yield_now();
            }
            after_return.push(returned.elapsed());
            after_call.push(called.elapsed());
        }
        for (what, mut delays) in [
            ("after the write returned", after_return),
            ("after the write was called", after_call),
        ] {
            delays.sort();
            let at = |q: f64| delays[((delays.len() as f64 * q) as usize).min(delays.len() - 1)];
            eprintln!(
                "change seen by the other instance {what}: p50 {:?}, p99 {:?}, max {:?} ({} changes)",
                at(0.5),
                at(0.99),
                delays[delays.len() - 1],
                delays.len()
            );
        }
    }
}

/// An app password's use is written within a second, in a batch; a
/// listing through the instance that noted it, and a flush, write it at
/// once; of two uses the later is kept, whichever instance writes last.
#[test]
fn app_password_uses_are_written_in_batches_and_the_latest_is_kept() {
    use crate::domain::mfa::CredentialKind;
    use std::time::{Duration, Instant};
    let (a, b) = two_instances();
    let alice = user(&a, "alice");
    let ap = Backend::add_app_password(
        &a,
        alice.id,
        CredentialKind::AppPassword,
        "mail",
        None,
        &[9; 32],
    )
    .expect("app password");
    let last = |s: &PgStore| {
        let list = s.app_passwords(alice.id).expect("list");
        (list[0].last_used, list[0].last_used_from.clone())
    };
    a.touch_app_password(alice.id, ap.id, 100, "192.0.2.1")
        .expect("use");
    a.touch_app_password(alice.id, ap.id, 200, "192.0.2.2")
        .expect("use");
    a.touch_app_password(alice.id, ap.id, 150, "192.0.2.3")
        .expect("use");
    assert_eq!(
        last(&a),
        (Some(200), Some("192.0.2.2".into())),
        "listed through A"
    );

    a.touch_app_password(alice.id, ap.id, 300, "192.0.2.4")
        .expect("use");
    let started = Instant::now();
    while last(&b).0 != Some(300) {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "written within a second, seen through B"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    a.touch_app_password(alice.id, ap.id, 500, "192.0.2.5")
        .expect("use");
    Backend::flush(&a).expect("flush");
    b.touch_app_password(alice.id, ap.id, 400, "192.0.2.6")
        .expect("use");
    Backend::flush(&b).expect("flush");
    assert_eq!(
        last(&b),
        (Some(500), Some("192.0.2.5".into())),
        "the later use stays"
    );

    // A snapshot (backups, exports, migrate-store) holds a use noted just
    // before it.
    a.touch_app_password(alice.id, ap.id, 600, "192.0.2.7")
        .expect("use");
    let snap = Backend::snapshot(&a).expect("snapshot");
    let record = &snap.users[0].second_factors.app_passwords[0].record;
    assert_eq!(record.last_used, Some(600));
}
