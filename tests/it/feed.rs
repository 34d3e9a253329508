//! The change feed and each instance's read model (issue 14), shown with
//! two real `portcullis serve` processes on one PostgreSQL database:
//! what one instance writes, the other serves within a second, and what
//! must never be stale (passwords, disabled accounts, app passwords) is
//! refused at the other's very next bind, with the bind cache on. Also
//! the database restarted or stopped under the instances. Skipped (with
//! a message) where PostgreSQL is not installed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portcullis::store::postgres::testing::Cluster;

use crate::bindcache::metric;
use crate::harness::*;
use crate::mfa::{bind_rc, json, totp_code};

/// Polls `check` until it holds or `limit` passes.
fn within(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How many entries a subtree search for `filter` as the admin finds.
fn found(s: &Server, filter: &str) -> usize {
    let (rc, entries) = search(
        &mut s.admin(),
        BASE,
        ldap3::Scope::Subtree,
        filter,
        &["uid"],
    );
    assert_eq!(rc, 0, "search {filter}");
    entries.len()
}

/// Binds twice; the second must be a hit of `s`'s bind cache.
fn bind_cached(s: &Server, user: &str, password: &str) {
    assert_eq!(bind_rc(s, user, password), 0, "{user}: first bind");
    let before = metric(s, "portcullis_bind_cache_hits_total");
    assert_eq!(bind_rc(s, user, password), 0, "{user}: repeated bind");
    assert!(
        metric(s, "portcullis_bind_cache_hits_total") > before,
        "{user}: the repeated bind came from the cache"
    );
}

#[test]
fn a_user_added_through_one_instance_is_found_on_the_other_within_a_second() {
    let Some(servers) = postgres_servers(2, FAST_HASH_ENV) else {
        return;
    };
    let (a, b) = (&servers[0], &servers[1]);
    // B's admin connection first: its searches are served from B's model.
    assert_eq!(found(b, "(uid=erin)"), 0);
    a.add_user("erin", "erin-pw");
    let returned = Instant::now();
    assert!(
        within(Duration::from_secs(1), || found(b, "(uid=erin)") == 1),
        "B finds erin within a second of `user add` returning on A"
    );
    eprintln!("seen on B after {:?}", returned.elapsed());
    // And a group membership made through A.
    a.ok(&["group", "add", "staff"]);
    a.ok(&["group", "add-member", "staff", "erin"]);
    assert!(within(Duration::from_secs(1), || found(
        b,
        "(&(cn=staff)(memberUid=erin))"
    ) == 1));
}

#[test]
fn a_password_changed_through_one_instance_is_refused_at_once_on_the_other() {
    let Some(servers) = postgres_servers(2, FAST_HASH_ENV) else {
        return;
    };
    let (a, b) = (&servers[0], &servers[1]);
    a.add_user("amy", "amy-old-1");
    assert!(within(Duration::from_secs(1), || found(b, "(uid=amy)") == 1));
    bind_cached(b, "amy", "amy-old-1");
    let out = a.cli_stdin(
        &["user", "passwd", "amy", "--password-stdin"],
        Some("amy-new-2"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // At once: no waiting for the feed.
    assert_eq!(
        bind_rc(b, "amy", "amy-old-1"),
        49,
        "old password refused on B"
    );
    assert_eq!(bind_rc(b, "amy", "amy-new-2"), 0, "the new one binds on B");
}

#[test]
fn a_disabled_account_and_a_revoked_app_password_are_refused_at_the_next_bind_elsewhere() {
    let Some(servers) = postgres_servers(2, FAST_HASH_ENV) else {
        return;
    };
    let (a, b) = (&servers[0], &servers[1]);
    a.add_user("bob", "bob-pw-1");
    assert!(within(Duration::from_secs(1), || found(b, "(uid=bob)") == 1));
    bind_cached(b, "bob", "bob-pw-1");
    a.ok(&["user", "disable", "bob"]);
    assert_eq!(bind_rc(b, "bob", "bob-pw-1"), 49, "disabled through A");
    a.ok(&["user", "enable", "bob"]);
    assert_eq!(bind_rc(b, "bob", "bob-pw-1"), 0, "enabled again through A");

    let ap = json(a, &["app-password", "add", "bob", "--name", "mail"]);
    let secret = ap["secret"].as_str().expect("secret").to_string();
    let id = ap["id"].as_str().expect("id").to_string();
    assert_eq!(bind_rc(b, "bob", &secret), 0, "the app password binds on B");
    a.ok(&["app-password", "revoke", "bob", &id]);
    assert_eq!(bind_rc(b, "bob", &secret), 49, "revoked through A");
}

/// An app password through a PostgreSQL-backed instance, whose bind looks
/// it up in the round trip of the account's check: its use listed by the
/// same instance at once, refused while app passwords are off, refused and
/// cleaned up once expired, refused once revoked.
#[test]
fn an_app_password_through_one_instance_from_use_to_expiry() {
    let Some(servers) = postgres_servers(1, FAST_HASH_ENV) else {
        return;
    };
    let s = &servers[0];
    s.add_user("dee", "dee-pw-1");
    let ap = json(s, &["app-password", "add", "dee", "--name", "mail"]);
    let secret = ap["secret"].as_str().expect("secret").to_string();
    assert_eq!(bind_rc(s, "dee", &secret), 0);
    let list = json(s, &["app-password", "list", "dee"]);
    assert_eq!(list[0]["last_used_from"], "127.0.0.1", "{list}");
    assert!(list[0]["last_used"].is_string(), "{list}");
    s.ok(&["app-password", "policy", "set", "off"]);
    assert_eq!(bind_rc(s, "dee", &secret), 49, "app passwords off");
    s.ok(&["app-password", "policy", "set", "inherit"]);
    assert_eq!(bind_rc(s, "dee", &secret), 0);
    assert_eq!(bind_rc(s, "dee", &format!("{secret}x")), 49, "not this one");

    let short = json(
        s,
        &[
            "app-password",
            "add",
            "dee",
            "--name",
            "ci",
            "--expires",
            "2s",
        ],
    );
    let short = short["secret"].as_str().expect("secret").to_string();
    assert_eq!(bind_rc(s, "dee", &short), 0);
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(bind_rc(s, "dee", &short), 49, "expired");
    let names: Vec<String> = json(s, &["app-password", "list", "dee"])
        .as_array()
        .expect("list")
        .iter()
        .map(|a| a["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["mail"], "the expired one is revoked");

    let id = ap["id"].as_str().expect("id");
    s.ok(&["app-password", "revoke", "dee", id]);
    assert_eq!(bind_rc(s, "dee", &secret), 49, "revoked");
    assert_eq!(bind_rc(s, "dee", "dee-pw-1"), 0, "the password still binds");
}

#[test]
fn a_policy_changed_or_a_device_added_through_one_instance_applies_at_the_next_bind_elsewhere() {
    let Some(servers) = postgres_servers(2, FAST_HASH_ENV) else {
        return;
    };
    let (a, b) = (&servers[0], &servers[1]);
    a.add_user("cat", "cat-pw-1");
    assert!(within(Duration::from_secs(1), || found(b, "(uid=cat)") == 1));
    bind_cached(b, "cat", "cat-pw-1");
    a.ok(&["mfa", "policy", "set", "required"]);
    assert_eq!(bind_rc(b, "cat", "cat-pw-1"), 49, "mfa required through A");
    a.ok(&["mfa", "policy", "set", "if-enrolled"]);
    assert_eq!(bind_rc(b, "cat", "cat-pw-1"), 0);
    // A device added through A: B asks for a code at once.
    let secret = json(a, &["mfa", "totp", "add", "cat"])["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    assert_eq!(bind_rc(b, "cat", "cat-pw-1"), 49, "needs a code");
    let code = format!("cat-pw-1;{}", totp_code(&secret, 6, 0));
    assert_eq!(bind_rc(b, "cat", &code), 0);
}

/// Runs searches and binds against every server until `stop`; counts
/// the answers (any result code: what matters is that none hangs).
fn load(servers: &[&Server], stop: &AtomicBool, answered: &AtomicUsize) {
    std::thread::scope(|scope| {
        for s in servers {
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut c) = ldap3::LdapConn::with_settings(
                        ldap3::LdapConnSettings::new().set_conn_timeout(Duration::from_secs(5)),
                        &s.url,
                    ) else {
                        continue;
                    };
                    c.with_timeout(Duration::from_secs(10));
                    if c.simple_bind(&user_dn("load"), "load-pw").is_ok() {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    c.with_timeout(Duration::from_secs(10));
                    if c.search(BASE, ldap3::Scope::Subtree, "(uid=load)", vec!["uid"])
                        .is_ok()
                    {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = c.unbind();
                }
            });
        }
    });
}

/// Two instances on a cluster of this test's own (which it stops and
/// starts), on a new database.
fn own_cluster_servers() -> Option<(Cluster, Vec<Server>)> {
    if !Cluster::installed() {
        eprintln!("SKIPPED: PostgreSQL is not installed");
        return None;
    }
    // Commits must survive the immediate stops below (the test clusters
    // run with synchronous_commit off).
    let cluster = Cluster::start_own(&[("synchronous_commit", "on")], &[]);
    let url = cluster.url(&cluster.create_database());
    let a = Server::start_postgres(&url, FAST_HASH_ENV, None);
    let b = Server::start_postgres(&url, FAST_HASH_ENV, Some(&a));
    Some((cluster, vec![a, b]))
}

#[test]
fn both_instances_recover_from_a_database_restart_under_load() {
    let Some((cluster, servers)) = own_cluster_servers() else {
        return;
    };
    let (a, b) = (&servers[0], &servers[1]);
    a.add_user("load", "load-pw");
    assert!(within(Duration::from_secs(1), || found(b, "(uid=load)") == 1));
    let (stop, answered) = (AtomicBool::new(false), AtomicUsize::new(0));
    std::thread::scope(|scope| {
        scope.spawn(|| load(&[a, b], &stop, &answered));
        std::thread::sleep(Duration::from_millis(500));
        cluster.stop();
        std::thread::sleep(Duration::from_millis(500));
        cluster.start_again().expect("start the database again");
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
    });
    assert!(answered.load(Ordering::Relaxed) > 0);
    // Neither instance was restarted: writes go through again, and each
    // sees the other's.
    assert!(
        within(Duration::from_secs(20), || a
            .cli_stdin(
                &["user", "add", "after-a", "--password-stdin"],
                Some("pw-after-a")
            )
            .status
            .success()),
        "A writes again"
    );
    assert!(
        within(Duration::from_secs(5), || found(b, "(uid=after-a)") == 1),
        "B's feed reconnected and caught up"
    );
    b.add_user("after-b", "pw-after-b");
    assert!(within(Duration::from_secs(5), || found(a, "(uid=after-b)") == 1));
    assert_eq!(bind_rc(b, "after-a", "pw-after-a"), 0);
    assert_eq!(bind_rc(a, "after-b", "pw-after-b"), 0);
}

#[test]
fn with_the_database_stopped_searches_and_plain_binds_go_on_and_a_code_bind_is_unavailable() {
    let Some((cluster, servers)) = own_cluster_servers() else {
        return;
    };
    let (a, b) = (&servers[0], &servers[1]);
    a.add_user("plain", "plain-pw");
    a.add_user("coded", "coded-pw");
    let secret = json(a, &["mfa", "totp", "add", "coded"])["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    assert!(within(Duration::from_secs(1), || found(b, "(uid=coded)") == 1));
    let mut admin = b.admin();
    cluster.stop();
    let (rc, entries) = search(
        &mut admin,
        BASE,
        ldap3::Scope::Subtree,
        "(uid=plain)",
        &["uid"],
    );
    assert_eq!(
        (rc, entries.len()),
        (0, 1),
        "searches answered from B's model"
    );
    assert_eq!(
        bind_rc(b, "plain", "plain-pw"),
        0,
        "a plain bind works on B"
    );
    assert_eq!(bind_rc(b, "plain", "wrong"), 49);
    let code = format!("coded-pw;{}", totp_code(&secret, 6, 0));
    assert_eq!(
        bind_rc(b, "coded", &code),
        52,
        "a code bind must write: unavailable"
    );
    cluster.start_again().expect("start the database again");
    assert!(
        within(Duration::from_secs(10), || bind_rc(b, "coded", &code) == 0),
        "the code binds once the database is back"
    );
}

/// `session list --json` on `s` (as `user`, when given).
fn sessions(s: &Server, user: Option<&str>) -> Vec<serde_json::Value> {
    let mut args = vec!["session", "list"];
    args.extend(user);
    json(s, &args).as_array().expect("a list").clone()
}

/// Whether `c`'s connection is closed within a second (a request fails).
fn closed_within_a_second(c: &mut ldap3::LdapConn) -> bool {
    within(Duration::from_secs(1), || {
        c.search(BASE, ldap3::Scope::Base, "(objectClass=*)", vec!["1.1"])
            .is_err()
    })
}

#[test]
fn an_ldap_connection_ended_through_one_instance_is_closed_on_the_other() {
    let Some(servers) = postgres_servers(2, FAST_HASH_ENV) else {
        return;
    };
    let (a, b) = (&servers[0], &servers[1]);
    a.add_user("alice", "alice-pw");
    a.add_user("bob", "bob-pw");
    assert!(within(Duration::from_secs(1), || found(b, "(uid=bob)") == 1));
    let mut alice_on_b = b.bound(&user_dn("alice"), "alice-pw");
    let mut bob_on_b = b.bound(&user_dn("bob"), "bob-pw");
    // A lists B's connections (published in the background).
    assert!(
        within(Duration::from_secs(2), || sessions(a, Some("alice")).len()
            == 1),
        "A lists alice's connection on B"
    );
    let listed = sessions(a, Some("alice"));
    assert_eq!(listed[0]["kind"], "ldap");
    assert_eq!(listed[0]["address"], "127.0.0.1");
    let id = listed[0]["id"].as_str().expect("id").to_string();
    assert!(
        within(Duration::from_secs(2), || sessions(a, None).len() == 2),
        "{:?}",
        sessions(a, None)
    );

    let out = a.ok(&["session", "end", &id]);
    assert!(out.contains(&id), "{out}");
    assert!(
        closed_within_a_second(&mut alice_on_b),
        "ended through A, closed on B"
    );
    assert!(bob_on_b
        .search(
            &user_dn("bob"),
            ldap3::Scope::Base,
            "(objectClass=*)",
            vec!["1.1"]
        )
        .is_ok());
    assert!(within(Duration::from_secs(2), || sessions(
        a,
        Some("alice")
    )
    .is_empty()));
    assert!(!a.cli(&["session", "end", &id]).status.success(), "gone");

    // Disabling a user through A closes its connections on B.
    a.ok(&["user", "disable", "bob"]);
    assert!(
        closed_within_a_second(&mut bob_on_b),
        "disabled through A, closed on B"
    );
}
