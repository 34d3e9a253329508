//! `portcullis import` of slapcat-style LDIF and `export`: users with
//! legacy hashes bind over LDAP, memberships resolve, a second run changes
//! nothing, and a JSON backup restores into a fresh data directory.

use ldap3::Scope;

use crate::harness::{group_dn, run_cli, search, user_dn, Server};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/openldap-slapcat.ldif"
);
/// The password of every user in the fixture.
const PW: &str = "correct horse";

fn env() -> Vec<(String, String)> {
    crate::harness::FAST_HASH_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn import_ldif_then_bind_and_export() {
    let mut s = Server::start();
    // The CLI refuses to import under a running server.
    let out = s.cli(&["import", FIXTURE]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stop it first"), "{err}");
    assert!(s.stop());

    // Dry run: the plan with line numbers, nothing written.
    let out = run_cli(&s.data, &env(), &["import", FIXTURE, "--dry-run"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("alice") && report.contains("developers"),
        "{report}"
    );
    assert!(
        report.contains("line "),
        "problems carry line numbers: {report}"
    );

    // The fixture has unresolvable members and a modify record: without
    // --force nothing is written.
    let out = run_cli(&s.data, &env(), &["import", FIXTURE], None);
    assert!(!out.status.success());
    let out = run_cli(&s.data, &env(), &["user", "show", "alice"], None);
    assert!(!out.status.success(), "nothing was imported");

    let out = run_cli(
        &s.data,
        &env(),
        &["import", FIXTURE, "--force", "--json"],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(first["users_created"].as_array().map(Vec::len), Some(6));
    // idempotent: a second run creates nothing
    let out = run_cli(
        &s.data,
        &env(),
        &["import", FIXTURE, "--force", "--json"],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(second["users_created"].as_array().map(Vec::len), Some(0));
    assert_eq!(second["groups_created"].as_array().map(Vec::len), Some(0));
    assert_eq!(second["memberships_added"], 0);

    let s = s.restart();
    // Every imported hash scheme verifies over LDAP: {SSHA}, {CRYPT}
    // sha512-crypt, {ARGON2} argon2i, {PBKDF2-SHA512}, hashed {CLEARTEXT}.
    for name in ["alice", "bob", "carol", "dave", "erin"] {
        let mut c = s.conn();
        assert_eq!(
            c.simple_bind(&user_dn(name), PW).expect("bind").rc,
            0,
            "{name}"
        );
        assert_eq!(
            c.simple_bind(&user_dn(name), "wrong").expect("bind").rc,
            49,
            "{name}"
        );
    }
    // frank ({CRYPT} bcrypt) carried pwdAccountLockedTime: imported disabled.
    let mut c = s.conn();
    assert_eq!(c.simple_bind(&user_dn("frank"), PW).expect("bind").rc, 49);
    s.ok(&["user", "enable", "frank"]);
    assert_eq!(c.simple_bind(&user_dn("frank"), PW).expect("bind").rc, 0);
    // uidNumbers kept; members resolved from the source tree's DNs
    let mut admin = s.admin();
    let (_, e) = search(
        &mut admin,
        &user_dn("alice"),
        Scope::Base,
        "(objectClass=*)",
        &["uidNumber", "memberOf", "loginShell"],
    );
    assert_eq!(e[0].attrs["uidNumber"], vec!["1001"]);
    assert_eq!(e[0].attrs["loginShell"], vec!["/bin/zsh"]);
    assert!(
        e[0].attrs["memberOf"].contains(&group_dn("staff")),
        "{:?}",
        e[0].attrs
    );

    // After a successful bind a legacy hash is replaced by argon2id.
    let mut s = s;
    assert!(s.stop());
    let out = run_cli(&s.data, &env(), &["export", "--with-secrets"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ldif = String::from_utf8_lossy(&out.stdout);
    let alice = ldif
        .split("\n\n")
        .find(|e| e.contains("dn: cn=alice,ou=users"))
        .expect("alice exported");
    assert!(
        alice.contains("userPassword: {ARGON2}$argon2id$"),
        "{alice}"
    );
    let out = run_cli(&s.data, &env(), &["export"], None);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("userPassword"));

    // A JSON backup restores into a fresh data directory.
    let out = run_cli(&s.data, &env(), &["export", "--format", "json"], None);
    assert!(out.status.success());
    let tmp = tempfile::tempdir().expect("tmp");
    let backup = tmp.path().join("backup.json");
    std::fs::write(&backup, &out.stdout).expect("write");
    let fresh = tmp.path().join("data");
    let out = run_cli(
        &fresh,
        &env(),
        &["import", "--format", "json", backup.to_str().expect("path")],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_cli(&fresh, &env(), &["user", "show", "carol", "--json"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let carol: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(carol["username"], "carol");
}
