//! Several Portcullis instances on one PostgreSQL database (issue 14):
//! the harness's `postgres_servers`, real processes, real clients.
//! Skipped (with a message) where PostgreSQL is not installed.

use crate::harness::*;
use crate::mfa::{bind_rc, json, totp_code};

#[test]
fn two_instances_share_one_directory() {
    let Some(servers) = postgres_servers(2, FAST_HASH_ENV) else {
        return;
    };
    let (a, b) = (&servers[0], &servers[1]);
    assert_eq!(a.admin_password, b.admin_password, "bootstrapped once");
    assert!(
        !b.data.join("initial-admin-password").exists(),
        "the second instance created nothing"
    );
    a.add_user("alice", "alice-pw");
    // The user made through A binds through B, and B's CLI finds it.
    b.bound(&user_dn("alice"), "alice-pw");
    assert!(b.ok(&["user", "list"]).contains("alice"));
}

/// The static tokens of a new device of `user`.
fn static_tokens(s: &Server, user: &str) -> Vec<String> {
    json(s, &["mfa", "static", "add", user])["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t.as_str().expect("token").to_string())
        .collect()
}

#[test]
fn a_static_token_used_through_one_instance_is_refused_through_the_other() {
    let Some(servers) = postgres_servers(2, FAST_HASH_ENV) else {
        return;
    };
    let (a, b) = (&servers[0], &servers[1]);
    a.add_user("carol", "pw");
    let tokens = static_tokens(a, "carol");
    let t0 = format!("pw;{}", tokens[0]);
    assert_eq!(bind_rc(a, "carol", &t0), 0);
    assert_eq!(bind_rc(b, "carol", &t0), 49, "used through A");
    assert_eq!(bind_rc(a, "carol", &t0), 49, "and through A again");
    let t1 = format!("pw;{}", tokens[1]);
    assert_eq!(bind_rc(b, "carol", &t1), 0, "an unused one binds through B");
    assert_eq!(bind_rc(a, "carol", &t1), 49);
}

#[test]
fn one_totp_code_binds_once_across_instances() {
    // The 15 losers are failures (replayed codes); keep both softlocks
    // out of the way so they cannot refuse the winner.
    let mut env = FAST_HASH_ENV.to_vec();
    env.push(("PORTCULLIS_THROTTLE_ACCOUNT_FAILURES", "100"));
    env.push(("PORTCULLIS_THROTTLE_CODE_FAILURES", "100"));
    let Some(servers) = postgres_servers(2, &env) else {
        return;
    };
    servers[0].add_user("alice", "pw");
    let secret = json(&servers[0], &["mfa", "totp", "add", "alice"])["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    // The next step's code: still valid when all 16 arrive.
    let password = format!("pw;{}", totp_code(&secret, 6, 1));
    let barrier = std::sync::Barrier::new(16);
    let rcs: Vec<u32> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let (url, password, barrier) = (&servers[i % 2].url, &password, &barrier);
                scope.spawn(move || {
                    let mut c = ldap3::LdapConn::new(url).expect("connect");
                    barrier.wait();
                    c.simple_bind(&user_dn("alice"), password).expect("bind").rc
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(rcs.iter().filter(|&&rc| rc == 0).count(), 1, "{rcs:?}");
    assert!(rcs.iter().all(|&rc| rc == 0 || rc == 49), "{rcs:?}");
}

#[test]
fn kill_9_after_a_code_bind_loses_nothing_and_the_other_instance_serves_on() {
    let Some(mut servers) = postgres_servers(2, FAST_HASH_ENV) else {
        return;
    };
    servers[0].add_user("dave", "pw");
    let tokens = static_tokens(&servers[0], "dave");
    let secret = json(&servers[0], &["mfa", "totp", "add", "dave"])["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let t0 = format!("pw;{}", tokens[0]);
    let code = format!("pw;{}", totp_code(&secret, 6, 0));
    assert_eq!(bind_rc(&servers[0], "dave", &t0), 0);
    assert_eq!(bind_rc(&servers[0], "dave", &code), 0);
    // kill -9 right after the successful binds
    servers[0].kill();
    let b = &servers[1];
    assert_eq!(bind_rc(b, "dave", &t0), 49, "the token stays used");
    assert_eq!(bind_rc(b, "dave", &code), 49, "the code stays used");
    let t1 = format!("pw;{}", tokens[1]);
    assert_eq!(bind_rc(b, "dave", &t1), 0, "B serves on");
    let list = json(b, &["mfa", "list", "dave"]);
    let statics = list
        .as_array()
        .expect("devices")
        .iter()
        .find(|d| d["kind"] == "static")
        .expect("the static device");
    assert_eq!(statics["tokens_left"], 4, "{list}");
    let (rc, entries) = search(
        &mut b.admin(),
        BASE,
        ldap3::Scope::Subtree,
        "(uid=dave)",
        &["uid"],
    );
    assert_eq!((rc, entries.len()), (0, 1));
    // A started again on its data directory finds everything too.
    let a = servers.remove(0).crash_and_restart();
    assert_eq!(bind_rc(&a, "dave", &t1), 49);
    assert_eq!(bind_rc(&a, "dave", &format!("pw;{}", tokens[2])), 0);
}
