//! MFA-aware bind against the real server: TOTP and static tokens over
//! `ldapwhoami` and ldap3, replay and crash safety, concurrent use of one
//! code, app passwords (revocation, expiry), throttling (also of wrong codes
//! apart from app passwords), API tokens (which never bind), and secrets
//! that never show in listings or entries.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::bindcache::metric;
use crate::harness::{search, tool, user_dn, Server, FAST_HASH_ENV};

pub fn json(s: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = s.ok(&all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// The code of the step `offset` steps from now, computed from the base32
/// secret as an authenticator app would.
pub fn totp_code(secret_b32: &str, digits: usize, offset: i64) -> String {
    let secret = Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .expect("base32 secret");
    let totp = TOTP::new(Algorithm::SHA1, digits, 1, 30, secret).expect("totp");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    totp.generate((now + offset * 30) as u64)
}

pub fn bind_rc(s: &Server, user: &str, password: &str) -> u32 {
    let mut c = s.conn();
    c.simple_bind(&user_dn(user), password).expect("bind").rc
}

fn whoami(s: &Server, user: &str, password: &str) -> (i32, String) {
    let (code, out, _) = tool(
        "ldapwhoami",
        &["-x", "-H", &s.url, "-D", &user_dn(user), "-w", password],
        &[],
    );
    (code, out)
}

#[test]
fn totp_bind_replay_and_concurrent_use() {
    // The losers of the race below are failures; keep the softlock out of
    // the way so it cannot refuse the winner.
    let mut env = FAST_HASH_ENV.to_vec();
    env.push(("PORTCULLIS_THROTTLE_ACCOUNT_FAILURES", "100"));
    let s = Server::start_with(&env);
    s.add_user("alice", "pa;ss");
    let dev = json(&s, &["mfa", "totp", "add", "alice"]);
    let secret = dev["secret"].as_str().expect("secret").to_string();
    assert_eq!(dev["digits"], 6);
    assert_eq!(dev["period"], 30);
    assert_eq!(dev["algorithm"], "SHA1");
    let uri = dev["uri"].as_str().expect("uri");
    assert!(
        uri.starts_with(&format!(
            "otpauth://totp/Portcullis:alice?secret={secret}&issuer=Portcullis"
        )),
        "{uri}"
    );
    assert!(uri.ends_with("&algorithm=SHA1&digits=6&period=30"), "{uri}");

    // the password alone no longer binds
    assert_eq!(bind_rc(&s, "alice", "pa;ss"), 49);
    // password;code (the password itself contains `;`) binds, with ldapwhoami
    let code = totp_code(&secret, 6, 0);
    let (rc, out) = whoami(&s, "alice", &format!("pa;ss;{code}"));
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains(&user_dn("alice")), "{out}");
    // a replay of the same code fails, with the same text as a wrong password
    let mut c = s.conn();
    let replay = c
        .simple_bind(&user_dn("alice"), &format!("pa;ss;{code}"))
        .expect("bind");
    let wrong = c
        .simple_bind(&user_dn("alice"), "nope;123456")
        .expect("bind");
    assert_eq!(replay.rc, 49);
    assert_eq!(replay.text, wrong.text);
    let (rc, _) = whoami(&s, "alice", &format!("pa;ss;{code}"));
    assert_ne!(rc, 0);

    // several clients racing with one (next-step) code: exactly one wins
    let next = format!("pa;ss;{}", totp_code(&secret, 6, 1));
    let url = s.url.clone();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (url, pw) = (url.clone(), next.clone());
            std::thread::spawn(move || {
                let mut c = ldap3::LdapConn::new(&url).expect("connect");
                c.simple_bind(&user_dn("alice"), &pw).expect("bind").rc
            })
        })
        .collect();
    let rcs: Vec<u32> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(rcs.iter().filter(|&&rc| rc == 0).count(), 1, "{rcs:?}");
    assert!(rcs.iter().all(|&rc| rc == 0 || rc == 49), "{rcs:?}");

    // 8-digit devices work too
    s.add_user("bob", "pw");
    let dev8 = json(&s, &["mfa", "totp", "add", "bob", "--digits", "8"]);
    assert_eq!(dev8["digits"], 8);
    assert!(dev8["uri"].as_str().expect("uri").contains("digits=8"));
    let code8 = totp_code(dev8["secret"].as_str().expect("secret"), 8, 0);
    assert_eq!(bind_rc(&s, "bob", &format!("pw;{code8}")), 0);
}

#[test]
fn static_token_once_even_across_a_crash() {
    let s = Server::start();
    s.add_user("carol", "se;cret");
    // without a device, semicolons are ordinary
    assert_eq!(bind_rc(&s, "carol", "se;cret"), 0);
    let dev = json(&s, &["mfa", "static", "add", "carol"]);
    let tokens: Vec<String> = dev["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t.as_str().expect("token").to_string())
        .collect();
    assert_eq!(tokens.len(), 6);
    assert!(tokens.iter().all(|t| t.len() == 12));
    let t0 = format!("se;cret;{}", tokens[0]);
    let (rc, out) = whoami(&s, "carol", &t0);
    assert_eq!(rc, 0, "{out}");
    // kill -9 right after the successful bind, then restart
    let s = s.crash_and_restart();
    assert_eq!(bind_rc(&s, "carol", &t0), 49, "used token after a crash");
    assert_eq!(bind_rc(&s, "carol", &format!("se;cret;{}", tokens[1])), 0);
    assert_eq!(bind_rc(&s, "carol", &format!("se;cret;{}", tokens[1])), 49);

    // listings show devices, never secrets
    let list = json(&s, &["mfa", "list", "carol"]);
    let text = list.to_string();
    assert_eq!(list[0]["kind"], "static");
    assert_eq!(list[0]["tokens_left"], 4);
    for t in &tokens {
        assert!(!text.contains(t.as_str()), "{text}");
    }
    // removing the device makes the password alone work again
    let id = list[0]["id"].as_str().expect("id");
    s.ok(&["mfa", "remove", "carol", id]);
    assert_eq!(bind_rc(&s, "carol", "se;cret"), 0);
}

#[test]
fn app_passwords_revocation_and_expiry() {
    let s = Server::start();
    s.add_user("dave", "pw");
    json(&s, &["mfa", "totp", "add", "dave"]);
    let ap = json(
        &s,
        &["app-password", "add", "dave", "--name", "mail client"],
    );
    let secret = ap["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("pcap_"), "{secret}");
    assert_eq!(ap["name"], "mail client");
    // binds without a code although the user has a device
    let (rc, out) = whoami(&s, "dave", &secret);
    assert_eq!(rc, 0, "{out}");
    // listed with its last use, without the secret
    let list = json(&s, &["app-password", "list", "dave"]);
    assert!(!list.to_string().contains(&secret));
    assert_eq!(list[0]["name"], "mail client");
    assert_eq!(list[0]["last_used_from"], "127.0.0.1");
    assert!(list[0]["last_used"].is_string());
    // revoked: refused on the next bind
    let id = ap["id"].as_str().expect("id");
    s.ok(&["app-password", "revoke", "dave", id]);
    assert_eq!(bind_rc(&s, "dave", &secret), 49);

    // expiry
    let short = json(
        &s,
        &[
            "app-password",
            "add",
            "dave",
            "--name",
            "ci",
            "--expires",
            "2s",
        ],
    );
    let short_secret = short["secret"].as_str().expect("secret");
    assert_eq!(bind_rc(&s, "dave", short_secret), 0);
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(bind_rc(&s, "dave", short_secret), 49);
    // and cleaned up
    assert_eq!(
        json(&s, &["app-password", "list", "dave"]),
        Value::Array(vec![])
    );

    // disabled globally, then for a group only
    let again = json(&s, &["app-password", "add", "dave", "--name", "again"]);
    let again = again["secret"].as_str().expect("secret");
    s.ok(&["app-password", "policy", "set", "off"]);
    assert_eq!(bind_rc(&s, "dave", again), 49);
    s.ok(&["app-password", "policy", "set", "inherit"]);
    assert_eq!(bind_rc(&s, "dave", again), 0);
    s.ok(&["group", "add", "no-apps"]);
    s.ok(&["group", "add-member", "no-apps", "dave"]);
    s.ok(&["app-password", "policy", "set", "--group", "no-apps", "off"]);
    assert_eq!(bind_rc(&s, "dave", again), 49);
    let shown = json(&s, &["mfa", "policy", "show"]);
    assert_eq!(shown["groups"][0]["group"], "no-apps");
    assert_eq!(shown["groups"][0]["app_passwords"], "off");
}

#[test]
fn mfa_policies_from_the_cli() {
    let s = Server::start();
    s.add_user("erin", "pw");
    s.add_user("svc", "pw");
    s.ok(&["mfa", "policy", "set", "required"]);
    assert_eq!(bind_rc(&s, "erin", "pw"), 49, "required without a device");
    s.ok(&["group", "add", "service-accounts"]);
    s.ok(&["group", "add-member", "service-accounts", "svc"]);
    s.ok(&["mfa", "policy", "set", "--group", "service-accounts", "off"]);
    assert_eq!(bind_rc(&s, "svc", "pw"), 0, "exempt group");
    let shown = json(&s, &["mfa", "policy", "show"]);
    assert_eq!(shown["mfa"]["effective"], "required");
    assert_eq!(shown["mfa"]["override"], "required");
    assert_eq!(shown["mfa"]["config"], "if-enrolled");
    s.ok(&["mfa", "policy", "set", "inherit"]);
    assert_eq!(bind_rc(&s, "erin", "pw"), 0);
}

#[test]
fn throttling_softlock_with_a_short_delay() {
    let mut env = FAST_HASH_ENV.to_vec();
    env.extend_from_slice(&[
        ("PORTCULLIS_THROTTLE_ACCOUNT_FAILURES", "3"),
        ("PORTCULLIS_THROTTLE_ACCOUNT_DELAY_MS", "1500"),
    ]);
    let s = Server::start_with(&env);
    s.add_user("frank", "right");
    for _ in 0..3 {
        assert_eq!(bind_rc(&s, "frank", "wrong"), 49);
    }
    // the correct password is refused during the softlock, with the same text
    let mut c = s.conn();
    let locked = c.simple_bind(&user_dn("frank"), "right").expect("bind");
    let wrong = c.simple_bind(&user_dn("nobody"), "x").expect("bind");
    assert_eq!(locked.rc, 49);
    assert_eq!(locked.text, wrong.text);
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(bind_rc(&s, "frank", "right"), 0, "accepted after the delay");
}

#[test]
fn wrong_codes_lock_code_binds_while_app_passwords_keep_working() {
    let mut env = FAST_HASH_ENV.to_vec();
    env.extend_from_slice(&[
        ("PORTCULLIS_THROTTLE_CODE_FAILURES", "3"),
        ("PORTCULLIS_THROTTLE_CODE_DELAY_MS", "2000"),
    ]);
    let s = Server::start_with(&env);
    s.add_user("hank", "pw");
    let dev = json(&s, &["mfa", "totp", "add", "hank"]);
    let secret = dev["secret"].as_str().expect("secret").to_string();
    let ap = json(&s, &["app-password", "add", "hank", "--name", "mail"]);
    let ap = ap["secret"].as_str().expect("secret").to_string();
    let near: Vec<String> = (-2..=2).map(|o| totp_code(&secret, 6, o)).collect();
    let guess = ["123456", "654321", "111111", "222222", "333333", "444444"]
        .into_iter()
        .find(|c| !near.iter().any(|n| n == c))
        .expect("a wrong code");
    // a guesser who knows the password, and the mail client binding with
    // its app password in between (which resets the account's softlock)
    let mut locked_at = std::time::Instant::now();
    for _ in 0..3 {
        locked_at = std::time::Instant::now();
        assert_eq!(bind_rc(&s, "hank", &format!("pw;{guess}")), 49);
        let (rc, out) = whoami(&s, "hank", &ap);
        assert_eq!(rc, 0, "{out}");
    }
    assert_eq!(metric(&s, "portcullis_bind_code_failures_total"), 3);
    assert_eq!(metric(&s, "portcullis_bind_code_locks_total"), 1);
    // now even the right code is refused, with the text of any failure
    let good = format!("pw;{}", totp_code(&secret, 6, 0));
    let mut c = s.conn();
    let locked = c.simple_bind(&user_dn("hank"), &good).expect("bind");
    let wrong = c.simple_bind(&user_dn("nobody"), "x").expect("bind");
    assert_eq!(locked.rc, 49);
    assert_eq!(locked.text, wrong.text);
    let (rc, _) = whoami(&s, "hank", &good);
    assert_ne!(rc, 0);
    assert_eq!(metric(&s, "portcullis_bind_code_throttled_total"), 2);
    // while the app password keeps working
    let (rc, out) = whoami(&s, "hank", &ap);
    assert_eq!(rc, 0, "{out}");
    assert!(
        locked_at.elapsed() < Duration::from_millis(2000),
        "the checks above ran inside the lock"
    );
    // after the delay the right code binds: the refusals consumed nothing
    std::thread::sleep(Duration::from_millis(2100).saturating_sub(locked_at.elapsed()));
    let good = format!("pw;{}", totp_code(&secret, 6, 0));
    let (rc, out) = whoami(&s, "hank", &good);
    assert_eq!(rc, 0, "{out}");
}

#[test]
fn secrets_never_in_entries_or_listings() {
    let s = Server::start();
    s.add_user("gina", "pw");
    let totp = json(&s, &["mfa", "totp", "add", "gina"]);
    let tokens = json(&s, &["mfa", "static", "add", "gina", "--count", "3"]);
    let ap = json(&s, &["app-password", "add", "gina", "--name", "x"]);
    let secrets: Vec<String> = [
        totp["secret"].as_str().expect("s").to_string(),
        ap["secret"].as_str().expect("s").to_string(),
    ]
    .into_iter()
    .chain(
        tokens["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .map(|t| t.as_str().expect("t").to_string()),
    )
    .collect();
    assert_eq!(secrets.len(), 5);
    let listings = [
        s.ok(&["mfa", "list", "gina", "--json"]),
        s.ok(&["mfa", "list", "gina"]),
        s.ok(&["app-password", "list", "gina", "--json"]),
        s.ok(&["app-password", "list", "gina"]),
        s.ok(&["user", "show", "gina", "--json"]),
    ];
    // the entry, as the admin and as the user herself (all attributes)
    let mut admin = s.admin();
    let (rc, entries) = search(
        &mut admin,
        &user_dn("gina"),
        ldap3::Scope::Base,
        "(objectClass=*)",
        &["*", "+"],
    );
    assert_eq!(rc, 0);
    let entry = format!("{entries:?}");
    let (code, ldif, _) = tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &s.url,
            "-D",
            &user_dn("admin"),
            "-w",
            &s.admin_password,
            "-b",
            &user_dn("gina"),
            "*",
            "+",
        ],
        &[],
    );
    assert_eq!(code, 0, "{ldif}");
    for secret in &secrets {
        for text in listings.iter().chain([&entry, &ldif]) {
            assert!(!text.contains(secret.as_str()), "{secret} in {text}");
        }
    }
}

#[test]
fn api_tokens_are_listed_apart_and_never_bind() {
    let s = Server::start();
    s.add_user("tess", "pw");
    let token = json(
        &s,
        &[
            "token",
            "add",
            "tess",
            "--name",
            "backup script",
            "--expires",
            "30d",
        ],
    );
    let secret = token["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("pctk_"), "{secret}");
    assert_eq!(token["name"], "backup script");
    assert!(token["expires"].is_string());
    let token_id = token["id"].as_str().expect("id").to_string();
    // Not an LDAP credential, with or without a code.
    assert_eq!(bind_rc(&s, "tess", &secret), 49);
    assert_eq!(whoami(&s, "tess", &secret).0, 49);

    let ap = json(&s, &["app-password", "add", "tess", "--name", "mail"]);
    let ap_id = ap["id"].as_str().expect("id").to_string();
    // Each listing shows its own kind, and never a secret.
    let tokens = json(&s, &["token", "list", "tess"]);
    assert_eq!(tokens.as_array().expect("list").len(), 1);
    assert_eq!(tokens[0]["id"], token_id.as_str());
    assert!(!tokens.to_string().contains(&secret));
    let aps = json(&s, &["app-password", "list", "tess"]);
    assert_eq!(aps.as_array().expect("list").len(), 1);
    assert_eq!(aps[0]["id"], ap_id.as_str());
    // Neither command revokes the other kind.
    assert!(!s
        .cli(&["app-password", "revoke", "tess", &token_id])
        .status
        .success());
    assert!(!s.cli(&["token", "revoke", "tess", &ap_id]).status.success());
    assert_eq!(
        json(&s, &["token", "list", "tess"])
            .as_array()
            .expect("list")
            .len(),
        1
    );

    let out = s.ok(&["token", "revoke", "tess", &token_id]);
    assert!(out.contains("revoked API token"), "{out}");
    assert!(json(&s, &["token", "list", "tess"])
        .as_array()
        .expect("list")
        .is_empty());
    // The app password is untouched and still binds.
    assert_eq!(
        bind_rc(&s, "tess", ap["secret"].as_str().expect("secret")),
        0
    );
}
