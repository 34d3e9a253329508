//! The bind cache (issue 5) against the real server, with the cache on (the
//! default): a repeated password bind is a cache hit (seen on /metrics),
//! and every change that must refuse an old credential does so on the very
//! next bind — a password changed with the CLI or with Password Modify, a
//! disabled account, a revoked app password, an MFA policy change — right
//! after that credential was cached. Binds with a code are never cached. A
//! steady binder's entry is verified again in the background before it
//! expires.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ldap3::exop::PasswordModify;
use serde_json::Value;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::harness::{user_dn, Server};

fn json(s: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = s.ok(&all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn bind_rc(s: &Server, user: &str, password: &str) -> u32 {
    let mut c = s.conn();
    c.simple_bind(&user_dn(user), password).expect("bind").rc
}

/// One counter of /metrics.
pub(crate) fn metric(s: &Server, name: &str) -> u64 {
    let mut conn = TcpStream::connect(&s.http_addr).expect("connect to /metrics");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        conn,
        "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        s.http_addr
    )
    .expect("write");
    let mut out = String::new();
    conn.read_to_string(&mut out).expect("read");
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{out}"))
}

fn hits(s: &Server) -> u64 {
    metric(s, "portcullis_bind_cache_hits_total")
}

/// Binds twice with success and asserts that the second bind was answered
/// from the cache, so a refusal right after shows the cache was bypassed.
fn bind_cached(s: &Server, user: &str, password: &str) {
    assert_eq!(bind_rc(s, user, password), 0, "{user}: first bind");
    let before = hits(s);
    assert_eq!(bind_rc(s, user, password), 0, "{user}: repeated bind");
    assert_eq!(hits(s), before + 1, "{user}: the repeated bind was a hit");
}

#[test]
fn a_changed_password_is_refused_on_the_next_bind() {
    let s = Server::start();
    s.add_user("amy", "amy-old-1");
    bind_cached(&s, "amy", "amy-old-1");
    let misses = metric(&s, "portcullis_bind_cache_misses_total");
    assert!(misses >= 1, "the first bind missed");

    // `user passwd` through the admin socket while the server runs
    let out = s.cli_stdin(
        &["user", "passwd", "amy", "--password-stdin"],
        Some("amy-new-2"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(bind_rc(&s, "amy", "amy-old-1"), 49, "old password refused");
    bind_cached(&s, "amy", "amy-new-2");

    // LDAP Password Modify (RFC 3062) by the user, with the old password
    // (itself a cache hit)
    let mut c = s.conn();
    assert_eq!(
        c.simple_bind(&user_dn("amy"), "amy-new-2")
            .expect("bind")
            .rc,
        0
    );
    let r = c
        .extended(PasswordModify {
            user_id: None,
            old_pass: Some("amy-new-2"),
            new_pass: Some("amy-new-3"),
        })
        .expect("password modify");
    assert_eq!(r.1.rc, 0, "{}", r.1.text);
    assert_eq!(bind_rc(&s, "amy", "amy-new-2"), 49, "old password refused");
    bind_cached(&s, "amy", "amy-new-3");

    // the same through ldappasswd by the admin, without the old password
    let (code, _, err) = crate::harness::tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &s.url,
            "-D",
            &user_dn("admin"),
            "-w",
            &s.admin_password,
            "-s",
            "amy-new-4",
            &user_dn("amy"),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(bind_rc(&s, "amy", "amy-new-3"), 49, "old password refused");
    assert_eq!(bind_rc(&s, "amy", "amy-new-4"), 0);
}

#[test]
fn a_disabled_account_and_a_revoked_app_password_are_refused_on_the_next_bind() {
    let s = Server::start();
    s.add_user("bob", "bob-pw-1");
    bind_cached(&s, "bob", "bob-pw-1");
    s.ok(&["user", "disable", "bob"]);
    assert_eq!(bind_rc(&s, "bob", "bob-pw-1"), 49, "disabled");
    s.ok(&["user", "enable", "bob"]);
    assert_eq!(bind_rc(&s, "bob", "bob-pw-1"), 0, "enabled again");

    let ap = json(&s, &["app-password", "add", "bob", "--name", "mail"]);
    let secret = ap["secret"].as_str().expect("secret").to_string();
    let id = ap["id"].as_str().expect("id").to_string();
    for _ in 0..3 {
        assert_eq!(bind_rc(&s, "bob", &secret), 0, "app password binds");
    }
    s.ok(&["app-password", "revoke", "bob", &id]);
    assert_eq!(bind_rc(&s, "bob", &secret), 49, "revoked");
    // the account password is unaffected (its entry is stale since the app
    // password changes bumped the credential generation), and cached again
    bind_cached(&s, "bob", "bob-pw-1");
}

/// The TOTP code of the current step, as an authenticator app computes it.
fn totp_now(secret_b32: &str) -> String {
    let secret = Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .expect("base32 secret");
    let totp = TOTP::new(Algorithm::SHA1, 6, 1, 30, secret).expect("totp");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    totp.generate(now)
}

#[test]
fn policy_changes_apply_at_once_and_codes_are_never_cached() {
    let s = Server::start();
    // `required`: a cached password of a user without a device is refused
    s.add_user("cat", "cat-pw-1");
    bind_cached(&s, "cat", "cat-pw-1");
    s.ok(&["mfa", "policy", "set", "required"]);
    assert_eq!(bind_rc(&s, "cat", "cat-pw-1"), 49, "mfa required");
    s.ok(&["mfa", "policy", "set", "if-enrolled"]);
    assert_eq!(bind_rc(&s, "cat", "cat-pw-1"), 0);

    // an MFA user exempted by `off`: the password alone binds, cached; back
    // to if-enrolled it needs a code again at once
    s.add_user("dan", "dan-pw-1");
    let dev = json(&s, &["mfa", "totp", "add", "dan"]);
    let secret = dev["secret"].as_str().expect("secret").to_string();
    assert_eq!(bind_rc(&s, "dan", "dan-pw-1"), 49, "needs a code");
    s.ok(&["mfa", "policy", "set", "off"]);
    bind_cached(&s, "dan", "dan-pw-1");
    s.ok(&["mfa", "policy", "set", "if-enrolled"]);
    assert_eq!(bind_rc(&s, "dan", "dan-pw-1"), 49, "needs a code again");

    // password;code: accepted once, never remembered, refused when reused
    let before = hits(&s);
    let with_code = format!("dan-pw-1;{}", totp_now(&secret));
    assert_eq!(bind_rc(&s, "dan", &with_code), 0);
    assert_eq!(bind_rc(&s, "dan", &with_code), 49, "reused code");
    assert_eq!(hits(&s), before, "no bind with a code hit the cache");
}

#[test]
fn with_the_cache_off_nothing_is_cached() {
    let mut env = crate::harness::FAST_HASH_ENV.to_vec();
    env.push(("PORTCULLIS_BIND_CACHE", "false"));
    let s = Server::start_with(&env);
    s.add_user("eve", "eve-pw-1");
    for _ in 0..3 {
        assert_eq!(bind_rc(&s, "eve", "eve-pw-1"), 0);
    }
    assert_eq!(hits(&s), 0);
    assert_eq!(metric(&s, "portcullis_bind_cache_misses_total"), 0);
}

#[test]
fn a_steady_binder_is_refreshed_in_the_background_and_never_misses_again() {
    // A 6 s ttl: an entry is due for a refresh from 4.5 s on.
    let mut env = crate::harness::FAST_HASH_ENV.to_vec();
    env.push(("PORTCULLIS_BIND_CACHE_TTL_SECS", "6"));
    let s = Server::start_with(&env);
    s.add_user("fay", "fay-pw-1");
    let misses = || metric(&s, "portcullis_bind_cache_misses_total");
    let refreshes = || metric(&s, "portcullis_bind_cache_refreshes_total");
    let first = std::time::Instant::now();
    assert_eq!(bind_rc(&s, "fay", "fay-pw-1"), 0);
    assert_eq!((misses(), refreshes()), (1, 0));
    std::thread::sleep(Duration::from_millis(4600));
    // A hit in the last quarter: answered, and verified again meanwhile.
    assert_eq!(bind_rc(&s, "fay", "fay-pw-1"), 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while refreshes() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(refreshes(), 1, "refreshed in the background");
    // Past the first verification's ttl: still a hit, no argon2.
    let past = Duration::from_millis(6500).saturating_sub(first.elapsed());
    std::thread::sleep(past);
    let before = hits(&s);
    assert_eq!(bind_rc(&s, "fay", "fay-pw-1"), 0);
    assert_eq!(hits(&s), before + 1, "answered from the refreshed entry");
    assert_eq!(misses(), 1, "never verified on the login path again");
    // A wrong password neither hits nor refreshes.
    assert_eq!(bind_rc(&s, "fay", "wrong"), 49);
    assert_eq!(refreshes(), 1);
}
