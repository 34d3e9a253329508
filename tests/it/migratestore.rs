//! `portcullis migrate-store` with the real binary: a round trip sled →
//! PostgreSQL → sled that keeps every credential (binds and the portal's
//! API after each step, used codes still used, byte-identical LDIF), and
//! its refusals (a running sled source, a non-empty target, a bad
//! target), none of which shows the URL's password. The PostgreSQL parts
//! are skipped (with a message) where PostgreSQL is not installed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;
use crate::mfa::{bind_rc, json, totp_code};
use crate::portal::{http, sign_in};

/// Stands in for a real password: the test cluster trusts loopback, so it
/// is never checked, and it must never be printed.
const URL_PASSWORD: &str = "hunter2-never-shown";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `migrate-store --to TARGET [--json]` on `data` (with `env`).
fn migrate(data: &Path, env: &[(String, String)], target: &str, json: bool) -> Output {
    let mut args = vec!["migrate-store", "--to", target];
    if json {
        args.push("--json");
    }
    let out = run_cli(data, env, &args, None);
    assert!(
        !text(&out).contains(URL_PASSWORD),
        "the password shows: {}",
        text(&out)
    );
    out
}

/// `GET /api/v1/me` with an API token: (status, body).
fn api_me(s: &Server, token: &str) -> (u16, String) {
    let mut c = TcpStream::connect(&s.http_addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        c,
        "GET /api/v1/me HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\n\r\n",
        s.http_addr
    )
    .expect("write");
    let mut out = String::new();
    c.read_to_string(&mut out).expect("read");
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

fn ldif(s: &Server) -> String {
    s.ok(&["export", "--with-secrets", "--force"])
}

/// What every step of the round trip must still do.
struct Credentials {
    used_code: String,
    tokens: Vec<String>,
    app_password: String,
    api_token: String,
    portal_session: String,
}

fn check_common(s: &Server, c: &Credentials, step: &str) {
    assert_eq!(bind_rc(s, "bob", "bob-pw"), 0, "{step}: password");
    assert_eq!(
        bind_rc(s, "bob", &c.app_password),
        0,
        "{step}: app password"
    );
    assert_eq!(
        bind_rc(s, "alice", &format!("alice-pw;{}", c.used_code)),
        49,
        "{step}: a used TOTP step stays used"
    );
    assert_eq!(
        bind_rc(s, "alice", &format!("alice-pw;{}", c.tokens[0])),
        49,
        "{step}: a used static token stays used"
    );
    let (status, body) = api_me(s, &c.api_token);
    assert_eq!(status, 200, "{step}: API token: {body}");
    assert!(body.contains("carol"), "{step}: {body}");
    let home = http(&s.http_addr, "GET", "/", &c.portal_session, &[]);
    assert_eq!(home.status, 200, "{step}: the portal session");
}

#[test]
fn round_trip_sled_postgres_sled_keeps_every_credential() {
    let Some(url) = postgres_database() else {
        return;
    };
    let secret_url = url.replacen("postgres@", &format!("postgres:{URL_PASSWORD}@"), 1);
    // Every step checks that used codes are refused: those failures must
    // not lock the code binds that follow.
    let mut env = FAST_HASH_ENV.to_vec();
    env.push(("PORTCULLIS_THROTTLE_CODE_FAILURES", "100"));
    env.push(("PORTCULLIS_THROTTLE_ACCOUNT_FAILURES", "100"));
    let mut s = Server::start_with(&env);
    s.add_user("alice", "alice-pw");
    let totp = json(&s, &["mfa", "totp", "add", "alice"])["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let used_code = totp_code(&totp, 6, 0);
    assert_eq!(bind_rc(&s, "alice", &format!("alice-pw;{used_code}")), 0);
    let tokens: Vec<String> = json(&s, &["mfa", "static", "add", "alice"])["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t.as_str().expect("token").to_string())
        .collect();
    assert_eq!(bind_rc(&s, "alice", &format!("alice-pw;{}", tokens[0])), 0);
    s.add_user("bob", "bob-pw");
    let app_password = json(&s, &["app-password", "add", "bob", "--name", "mail"])["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    s.add_user("carol", "carol-pw");
    let api_token = json(&s, &["token", "add", "carol", "--name", "ci"])["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    for args in [
        &["group", "add", "staff"][..],
        &["group", "add", "ops"],
        &["group", "add", "contractors"],
        &["group", "add-member", "staff", "alice"],
        &["group", "add-child", "staff", "ops"],
        &["group", "add-member", "ops", "bob"],
        &[
            "group",
            "set-attr",
            "staff",
            "goauthentik.io/user/can-change-name",
            "true",
        ],
        &["user", "set-attr", "alice", "loginShell", "/bin/zsh"],
        &["mfa", "policy", "set", "required", "--group", "contractors"],
    ] {
        s.ok(args);
    }
    let c = Credentials {
        used_code,
        portal_session: sign_in(&s, "bob", "bob-pw"),
        tokens,
        app_password,
        api_token,
    };
    check_common(&s, &c, "sled before");
    let before = ldif(&s);
    assert!(before.contains("userPassword:"), "with hashes");

    // A running sled source is refused, and nothing is written.
    let out = migrate(&s.data, &[], &secret_url, false);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("stop it first"), "{}", text(&out));
    s.stop();

    // sled → PostgreSQL, counted.
    let out = migrate(&s.data, &[], &secret_url, true);
    assert!(out.status.success(), "{}", text(&out));
    let counts: Value = serde_json::from_slice(&out.stdout).expect("counts");
    for (kind, n) in [
        ("users", 4), // admin, alice, bob, carol
        ("password_hashes", 4),
        ("user_attributes", 1),
        ("groups", 5), // admins, ldap-search, staff, ops, contractors
        ("group_attributes", 1),
        ("group_policies", 1),
        ("user_memberships", 3),
        ("group_memberships", 1),
        ("totp_devices", 1),
        ("totp_used_steps", 1),
        ("static_devices", 1),
        ("static_tokens_left", c.tokens.len() as u64 - 1),
        ("pending_devices", 0),
        ("app_passwords", 1),
        ("api_tokens", 1),
        ("portal_sessions", 1),
    ] {
        assert_eq!(counts[kind], n, "{kind} in {counts}");
    }
    assert!(text(&out).contains("server.key"), "says where the key goes");

    // A second copy into the same database is refused: it is not empty.
    let out = migrate(&s.data, &[], &secret_url, false);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not empty"), "{}", text(&out));

    // Served from PostgreSQL (the source's key copied in, as the output
    // says): every credential binds, the used ones stay used.
    let mut p = Server::start_postgres(&url, &env, Some(&s));
    check_common(&p, &c, "PostgreSQL");
    assert_eq!(
        bind_rc(&p, "alice", &format!("alice-pw;{}", c.tokens[1])),
        0,
        "an unused static token"
    );
    assert_eq!(ldif(&p), before, "the LDIF is byte-identical");

    // PostgreSQL → sled, into a new data directory, served. A PostgreSQL
    // source may keep serving meanwhile (the copy is one snapshot).
    let pg_env = vec![
        (
            "PORTCULLIS_STORE_BACKEND".to_string(),
            "postgres".to_string(),
        ),
        ("PORTCULLIS_STORE_URL".to_string(), secret_url.clone()),
    ];
    let back = tempfile::tempdir().expect("tempdir");
    let back_data = back.path().join("data");
    let target = format!("sled:{}", back_data.display());
    let out = migrate(&p.data, &pg_env, &target, false);
    assert!(out.status.success(), "{}", text(&out));
    p.stop();
    assert!(text(&out).contains("every count matches"), "{}", text(&out));
    let f = Server::start_in(back_data, &env, &s.admin_password);
    check_common(&f, &c, "sled after");
    assert_eq!(
        bind_rc(&f, "alice", &format!("alice-pw;{}", c.tokens[1])),
        49,
        "the token used on PostgreSQL stays used"
    );
    assert_eq!(
        bind_rc(&f, "alice", &format!("alice-pw;{}", c.tokens[2])),
        0
    );
    assert_eq!(
        bind_rc(&f, "alice", &format!("alice-pw;{}", totp_code(&totp, 6, 1))),
        0,
        "a later TOTP step binds"
    );
    assert_eq!(ldif(&f), before, "the LDIF is byte-identical");
}

#[test]
fn bad_targets_are_refused_without_showing_the_password() {
    let mut s = Server::start();
    s.add_user("alice", "alice-pw");
    json(&s, &["app-password", "add", "alice", "--name", "mail"]);
    s.stop();
    let help = run_cli(&s.data, &[], &["--help"], None);
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("migrate-store  Copy the whole store"),
        "{}",
        text(&help)
    );
    // Not a target at all: a usage error (2) that does not repeat it.
    let out = migrate(
        &s.data,
        &[],
        &format!("mysql://root:{URL_PASSWORD}@127.0.0.1/x"),
        false,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--to must be"), "{}", text(&out));
    // A database that does not answer.
    let out = migrate(
        &s.data,
        &[],
        &format!("postgres://root:{URL_PASSWORD}@127.0.0.1:1/x"),
        false,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("target database"), "{}", text(&out));
    // The source's own directory, and a sled store that holds a user.
    let own = format!("sled:{}", s.data.display());
    let out = migrate(&s.data, &[], &own, false);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("own data directory"), "{}", text(&out));
    let other = tempfile::tempdir().expect("tempdir");
    let other_data = other.path().join("data");
    let out = run_cli(
        &other_data,
        &[],
        &["user", "add", "zed", "--password-stdin"],
        Some("zed-pw"),
    );
    assert!(out.status.success(), "{}", text(&out));
    let other_target = format!("sled:{}", other_data.display());
    let out = migrate(&s.data, &[], &other_target, false);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("another server key"), "{}", text(&out));
    std::fs::copy(s.data.join("server.key"), other_data.join("server.key")).expect("key");
    let out = migrate(&s.data, &[], &other_target, false);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not empty"), "{}", text(&out));
    let users = run_cli(&other_data, &[], &["user", "list"], None);
    assert!(
        String::from_utf8_lossy(&users.stdout).contains("zed"),
        "left as it was"
    );
    // Without the key that made the source's app password hash, no copy
    // (a new key would not fit it).
    std::fs::remove_file(s.data.join("server.key")).expect("remove key");
    let fresh = other.path().join("fresh");
    let out = migrate(&s.data, &[], &format!("sled:{}", fresh.display()), false);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("has no server.key"), "{}", text(&out));
    assert!(!fresh.exists(), "nothing made");
}

/// The JSON backup of a sled server restores into PostgreSQL (offline,
/// into a new data directory that gets the backup's key) and is served
/// there with every credential; its LDIF is byte-identical to the
/// source's.
#[test]
fn a_sled_backup_restores_into_postgresql() {
    let Some(url) = postgres_database() else {
        return;
    };
    let s = Server::start();
    s.add_user("alice", "alice-pw");
    let tokens: Vec<String> = json(&s, &["mfa", "static", "add", "alice"])["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t.as_str().expect("token").to_string())
        .collect();
    assert_eq!(bind_rc(&s, "alice", &format!("alice-pw;{}", tokens[0])), 0);
    s.add_user("bob", "bob-pw");
    let app_password = json(&s, &["app-password", "add", "bob", "--name", "mail"])["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    s.ok(&["group", "add", "staff"]);
    s.ok(&["group", "add-member", "staff", "alice"]);
    let before = ldif(&s);
    let dir = tempfile::tempdir().expect("tempdir");
    let backup = dir.path().join("backup.json");
    s.ok(&[
        "export",
        "--format",
        "json",
        "--with-secrets",
        "--output",
        &backup.display().to_string(),
    ]);

    let data = dir.path().join("data");
    let pg: Vec<(&str, &str)> = vec![
        ("PORTCULLIS_STORE_BACKEND", "postgres"),
        ("PORTCULLIS_STORE_URL", url.as_str()),
    ];
    let owned: Vec<(String, String)> = pg
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let out = run_cli(
        &data,
        &owned,
        &["import", "--format", "json", &backup.display().to_string()],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));

    let mut env = FAST_HASH_ENV.to_vec();
    env.extend(pg);
    let p = Server::start_in(data, &env, &s.admin_password);
    assert_eq!(
        bind_rc(&p, "alice", "alice-pw"),
        49,
        "her device still asks a code"
    );
    assert_eq!(
        bind_rc(&p, "alice", &format!("alice-pw;{}", tokens[0])),
        49,
        "used before the backup"
    );
    assert_eq!(bind_rc(&p, "alice", &format!("alice-pw;{}", tokens[1])), 0);
    assert_eq!(bind_rc(&p, "bob", &app_password), 0);
    assert_eq!(bind_rc(&p, "bob", "bob-pw"), 0);
    assert_eq!(ldif(&p), before, "the LDIF is byte-identical");
}
