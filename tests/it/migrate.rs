//! `portcullis import` of slapcat-style LDIF and `export`: users with
//! legacy hashes bind over LDAP, memberships resolve, a second run changes
//! nothing, and a JSON backup restores into a fresh data directory.

use ldap3::Scope;

use crate::harness::{
    group_dn, postgres_database, run_cli, search, user_dn, Server, BASE, FAST_HASH_ENV,
};

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
    // A dry run through the running server: the plan, nothing written.
    let out = s.cli(&["import", FIXTURE, "--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("line "));
    assert!(!s.cli(&["user", "show", "alice"]).status.success());
    // The rest of this test works on the stopped server's store.
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
    alice_is_served_as_imported(&s);

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

/// The fixture's alice as `s` serves her: her uidNumber and login shell
/// kept, her group resolved from the source tree's DN.
fn alice_is_served_as_imported(s: &Server) {
    let (_, e) = search(
        &mut s.admin(),
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
}

/// The offline import and export on a PostgreSQL store, which the CLI
/// opens without a read model: the dry run and a refused import write
/// nothing, the import lands once with its numbers, the allocator goes on
/// past them, the server serves it, and the offline export is byte for
/// byte the one the running server writes.
#[test]
fn offline_import_and_export_on_postgresql() {
    let Some(url) = postgres_database() else {
        return;
    };
    let mut s = Server::start_postgres(&url, FAST_HASH_ENV, None);
    assert!(s.stop());
    let stderr = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();

    let out = s.cli(&["import", FIXTURE, "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("alice") && report.contains("line "),
        "{report}"
    );
    let out = s.cli(&["import", FIXTURE]);
    assert!(!out.status.success(), "the plan has errors");
    assert!(
        stderr(&out).contains("nothing was written"),
        "{}",
        stderr(&out)
    );
    assert!(
        !s.cli(&["user", "show", "alice"]).status.success(),
        "nothing was imported"
    );

    let first: serde_json::Value =
        serde_json::from_str(&s.ok(&["import", FIXTURE, "--force", "--json"])).expect("json");
    assert_eq!(first["users_created"].as_array().map(Vec::len), Some(6));
    let second: serde_json::Value =
        serde_json::from_str(&s.ok(&["import", FIXTURE, "--force", "--json"])).expect("json");
    assert_eq!(second["users_created"].as_array().map(Vec::len), Some(0));
    assert_eq!(second["memberships_added"], 0);
    let offline = s.ok(&["export", "--with-secrets", "--force"]);
    let offline_json = s.ok(&["export", "--format", "json"]);

    let s = s.restart();
    // Before any bind (a bind replaces a legacy hash).
    assert_eq!(
        s.ok(&["export", "--with-secrets", "--force"]),
        offline,
        "the same LDIF offline and served"
    );
    let served_json = s.ok(&["export", "--format", "json"]);
    let users = |backup: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(backup).expect("backup")["users"].clone()
    };
    assert_eq!(users(&served_json), users(&offline_json));

    let mut c = s.conn();
    assert_eq!(c.simple_bind(&user_dn("alice"), PW).expect("bind").rc, 0);
    alice_is_served_as_imported(&s);
    let mut admin = s.admin();
    s.add_user("zed", "zed-pw");
    let (_, all) = search(
        &mut admin,
        &format!("ou=users,{BASE}"),
        Scope::OneLevel,
        "(objectClass=posixAccount)",
        &["uid", "uidNumber"],
    );
    let number =
        |e: &ldap3::SearchEntry| -> u32 { e.attrs["uidNumber"][0].parse().expect("uidNumber") };
    let zed = all
        .iter()
        .find(|e| e.attrs["uid"] == vec!["zed"])
        .expect("zed");
    for e in all.iter().filter(|e| e.attrs["uid"] != vec!["zed"]) {
        assert_ne!(number(e), number(zed), "{:?} and zed", e.attrs["uid"]);
    }
}

/// The TOTP code `offset` steps from now, computed from the base32 secret
/// as an authenticator app would.
fn totp_code(secret_b32: &str, offset: i64) -> String {
    let secret = totp_rs::Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .expect("base32 secret");
    let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret).expect("totp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    totp.generate((now + offset * 30) as u64)
}

fn cli_json(s: &Server, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = s.ok(&all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn bind_rc(s: &Server, user: &str, password: &str) -> u32 {
    s.conn()
        .simple_bind(&user_dn(user), password)
        .expect("bind")
        .rc
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// Issue 6: export with secrets, restore into a fresh data directory, and
/// every credential works there as before: password + TOTP code, static
/// token, app password; a used TOTP step and a used token stay used; a
/// group policy still applies; every entry is the same.
#[test]
fn json_backup_with_secrets_restores_every_credential() {
    let mut s = Server::start();
    s.add_user("alice", "pw;alice");
    s.add_user("bob", "pw-bob");
    s.ok(&["group", "add", "staff"]);
    s.ok(&["group", "add-member", "staff", "alice"]);
    s.ok(&["group", "add-member", "staff", "bob"]);
    s.ok(&["mfa", "policy", "set", "--group", "staff", "required"]);
    let totp = cli_json(&s, &["mfa", "totp", "add", "alice"]);
    let secret = totp["secret"].as_str().expect("secret").to_string();
    let tokens = cli_json(&s, &["mfa", "static", "add", "alice", "--count", "3"]);
    let tokens: Vec<String> = tokens["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t.as_str().expect("token").to_string())
        .collect();
    let app = cli_json(&s, &["app-password", "add", "alice", "--name", "mail"]);
    let app_secret = app["secret"].as_str().expect("app secret").to_string();

    // Before the backup: a TOTP code and one static token are used.
    let used_code = totp_code(&secret, 0);
    assert_eq!(bind_rc(&s, "alice", &format!("pw;alice;{used_code}")), 0);
    assert_eq!(bind_rc(&s, "alice", &format!("pw;alice;{}", tokens[0])), 0);
    assert_eq!(bind_rc(&s, "bob", "pw-bob"), 49, "staff requires MFA");
    assert!(s.stop());

    let tmp = tempfile::tempdir().expect("tmp");
    let backup = tmp.path().join("backup.json");
    // An existing, world-readable file is made private too.
    std::fs::write(&backup, "old").expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let out = run_cli(
        &s.data,
        &env(),
        &[
            "export",
            "--format",
            "json",
            "--with-secrets",
            "--output",
            backup.to_str().expect("path"),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("keep it as secret"),
        "the export warns that the file is secret"
    );
    assert_eq!(mode(&backup), 0o600);
    let before = run_cli(&s.data, &env(), &["export"], None);
    assert!(before.status.success());

    // Restore into a fresh data directory and serve it.
    let admin_password = std::fs::read_to_string(s.data.join("initial-admin-password"))
        .expect("admin password file");
    let source_key = std::fs::read_to_string(s.data.join("server.key")).expect("server key");
    let restore = |data: &std::path::Path| -> serde_json::Value {
        let path = backup.to_str().expect("path");
        let out = run_cli(
            data,
            &env(),
            &["import", "--format", "json", path, "--json"],
            None,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let mut restored = Server::start_seeded(crate::harness::FAST_HASH_ENV, |data| {
        let report = restore(data);
        assert_eq!(report["devices_restored"], 2, "{report}");
        assert_eq!(report["app_passwords_restored"], 1, "{report}");
        assert_eq!(report["group_policies_set"], 1, "{report}");
        // A second run changes nothing.
        let again = restore(data);
        assert_eq!(again["users_created"].as_array().map(Vec::len), Some(0));
        assert_eq!(again["devices_restored"], 0, "{again}");
        assert_eq!(again["app_passwords_restored"], 0, "{again}");
        let key = std::fs::read_to_string(data.join("server.key")).expect("restored key");
        assert_eq!(key.trim(), source_key.trim());
        assert_eq!(mode(&data.join("server.key")), 0o600);
        std::fs::write(data.join("initial-admin-password"), &admin_password).expect("copy");
    });

    // The code used before the backup stays used; a later one works.
    assert_eq!(
        bind_rc(&restored, "alice", &format!("pw;alice;{used_code}")),
        49
    );
    assert_eq!(
        bind_rc(&restored, "alice", "pw;alice"),
        49,
        "a code is needed"
    );
    assert_eq!(
        bind_rc(
            &restored,
            "alice",
            &format!("pw;alice;{}", totp_code(&secret, 1))
        ),
        0
    );
    // The used static token stays used; an unused one works once.
    assert_eq!(
        bind_rc(&restored, "alice", &format!("pw;alice;{}", tokens[0])),
        49
    );
    assert_eq!(
        bind_rc(&restored, "alice", &format!("pw;alice;{}", tokens[1])),
        0
    );
    assert_eq!(
        bind_rc(&restored, "alice", &format!("pw;alice;{}", tokens[1])),
        49
    );
    // The app password binds without a code; the group policy still holds.
    assert_eq!(bind_rc(&restored, "alice", &app_secret), 0);
    assert_eq!(bind_rc(&restored, "bob", "pw-bob"), 49);
    let listed = cli_json(&restored, &["mfa", "list", "alice"]);
    assert!(
        !listed.to_string().contains(&secret),
        "listings never show secrets"
    );

    // Every entry is the same.
    assert!(restored.stop());
    let after = run_cli(&restored.data, &env(), &["export"], None);
    assert!(after.status.success());
    assert_eq!(
        String::from_utf8_lossy(&after.stdout),
        String::from_utf8_lossy(&before.stdout)
    );
}

/// Without --with-secrets the backup carries no second-factor secret, and
/// a restore does not silently drop MFA: it refuses unless --force.
#[test]
fn json_backup_without_secrets_refuses_to_drop_mfa_silently() {
    let mut s = Server::start();
    s.add_user("carl", "pw");
    let totp = cli_json(&s, &["mfa", "totp", "add", "carl"]);
    let secret = totp["secret"].as_str().expect("secret").to_string();
    assert!(s.stop());
    let out = run_cli(&s.data, &env(), &["export", "--format", "json"], None);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("without their secrets"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(&secret) && !text.contains("server_key"));
    let tmp = tempfile::tempdir().expect("tmp");
    let backup = tmp.path().join("backup.json");
    std::fs::write(&backup, &out.stdout).expect("write");
    let fresh = tmp.path().join("data");
    let path = backup.to_str().expect("path");
    let out = run_cli(&fresh, &env(), &["import", "--format", "json", path], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing was written: the forced run finds an empty store (a partial
    // restore would make it conflict).
    let out = run_cli(
        &fresh,
        &env(),
        &["import", "--format", "json", path, "--force"],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not restored"));
    let out = run_cli(&fresh, &env(), &["user", "show", "carl"], None);
    assert!(out.status.success());
}

/// Issue 6: attributes listed in `import.keep_attributes` are kept and
/// served; other unknown attributes are reported with their line and
/// dropped.
#[test]
fn kept_attributes_are_served_and_others_reported() {
    let mut s = Server::start();
    assert!(s.stop());
    let problems = |env: &[(String, String)]| -> Vec<serde_json::Value> {
        let out = run_cli(
            &s.data,
            env,
            &["import", FIXTURE, "--dry-run", "--json"],
            None,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        plan["problems"].as_array().expect("problems").clone()
    };
    let unknown = |problems: &[serde_json::Value], name: &str| -> Option<u64> {
        problems
            .iter()
            .find(|p| {
                p["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(&format!("unknown attribute {name} ")))
            })
            .and_then(|p| p["line"].as_u64())
    };
    // Unlisted: both reported with the line they are on in the fixture.
    let plain = problems(&env());
    assert_eq!(unknown(&plain, "employeeType"), Some(49), "{plain:?}");
    assert_eq!(unknown(&plain, "shadowLastChange"), Some(50), "{plain:?}");

    let mut keep = env();
    keep.push((
        "PORTCULLIS_IMPORT_KEEP_ATTRIBUTES".into(),
        "employeetype".into(),
    ));
    let kept = problems(&keep);
    assert_eq!(unknown(&kept, "employeeType"), None, "{kept:?}");
    assert_eq!(unknown(&kept, "shadowLastChange"), Some(50));
    let out = run_cli(&s.data, &keep, &["import", FIXTURE, "--force"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let s = s.restart();
    let mut admin = s.admin();
    let (rc, e) = search(
        &mut admin,
        &user_dn("alice"),
        Scope::Base,
        "(objectClass=*)",
        &["*"],
    );
    assert_eq!(rc, 0);
    assert_eq!(
        e[0].attrs.get("employeeType"),
        Some(&vec!["staff".to_string()])
    );
    assert!(
        !e[0]
            .attrs
            .keys()
            .any(|k| k.eq_ignore_ascii_case("shadowLastChange")),
        "{:?}",
        e[0].attrs
    );
    let (rc, e) = search(
        &mut admin,
        "ou=users,dc=example,dc=com",
        Scope::Subtree,
        "(employeeType=STAFF)",
        &["uid"],
    );
    assert_eq!(rc, 0);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].attrs["uid"], vec!["alice"]);
}

/// A restore never replaces a server key that already keys stored hashes:
/// those app passwords would stop working.
#[test]
fn restore_refuses_to_replace_a_server_key_in_use() {
    let mut source = Server::start();
    source.add_user("dora", "pw");
    cli_json(&source, &["app-password", "add", "dora", "--name", "imap"]);
    assert!(source.stop());
    let tmp = tempfile::tempdir().expect("tmp");
    let backup = tmp.path().join("backup.json");
    let path = backup.to_str().expect("path");
    let out = run_cli(
        &source.data,
        &env(),
        &[
            "export",
            "--format",
            "json",
            "--with-secrets",
            "--output",
            path,
        ],
        None,
    );
    assert!(out.status.success());

    let mut target = Server::start();
    let app = cli_json(&target, &["app-password", "add", "admin", "--name", "own"]);
    let own = app["secret"].as_str().expect("secret").to_string();
    assert!(target.stop());
    let key_before = std::fs::read(target.data.join("server.key")).expect("key");
    let out = run_cli(
        &target.data,
        &env(),
        &["import", "--format", "json", path],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server key"), "{err}");
    assert_eq!(
        std::fs::read(target.data.join("server.key")).expect("key"),
        key_before
    );
    let target = target.restart();
    assert_eq!(
        bind_rc(&target, "admin", &own),
        0,
        "its own app password still binds"
    );
}

/// An LDIF of a few hundred users with every kind of problem, and the
/// listings of its dry run as the build before the streamed dry run
/// (8b495cc) printed them.
const DRY_RUN_INPUT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/dry-run/input.ldif");
const DRY_RUN_TEXT: &[u8] = include_bytes!("../../fixtures/dry-run/plan.txt");
const DRY_RUN_JSON: &[u8] = include_bytes!("../../fixtures/dry-run/plan.json");

/// A kept attribute the schema does not know (and the dry-run input does
/// not have, so the listings stay the fixtures): its note goes to stderr.
const KEEP_UNSERVED: (&str, &str) = ("PORTCULLIS_IMPORT_KEEP_ATTRIBUTES", "sshPublicKey");

/// The dry run's text and JSON listings of `s`'s data directory (offline
/// or through its running server) are byte for byte the fixtures, and
/// the note on the kept attribute follows on stderr.
fn assert_dry_run_listings(s: &Server, how: &str) {
    for (args, expected) in [
        (&["import", DRY_RUN_INPUT, "--dry-run"][..], DRY_RUN_TEXT),
        (
            &["import", DRY_RUN_INPUT, "--dry-run", "--json"][..],
            DRY_RUN_JSON,
        ),
    ] {
        let out = s.cli(args);
        assert!(
            out.status.success(),
            "{how} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == expected,
            "{how} {args:?}: the listing differs from the fixture; it begins {:?}",
            String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(300)])
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("note: kept attribute sshPublicKey is stored"),
            "{how} {args:?}: {stderr}"
        );
    }
}

/// Nothing of a dry run stays: no user, no spill in the data directory.
fn assert_nothing_written(s: &Server) {
    assert!(
        !s.cli(&["user", "show", "user00001"]).status.success(),
        "a dry run imports nothing"
    );
    let left: Vec<_> = std::fs::read_dir(&s.data)
        .expect("data dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("spill"))
        .collect();
    assert!(left.is_empty(), "spill files left: {left:?}");
}

/// Issue 15: the dry run streams its listing (bounded memory), offline and
/// through the running server, and prints exactly what it printed when
/// it held the whole plan, from a file or from standard input, and
/// writes nothing.
#[test]
fn dry_run_listing_is_unchanged_offline_and_through_the_server() {
    let mut s = Server::start_with(&[FAST_HASH_ENV, &[KEEP_UNSERVED]].concat());
    assert_dry_run_listings(&s, "through the server");
    assert!(s.stop());
    assert_dry_run_listings(&s, "offline");
    let input = std::fs::read_to_string(DRY_RUN_INPUT).expect("fixture");
    let out = s.cli_stdin(&["import", "-", "--dry-run"], Some(&input));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == DRY_RUN_TEXT,
        "the listing of standard input differs"
    );
    assert_nothing_written(&s);
}

/// The same on a PostgreSQL store opened offline.
#[test]
fn dry_run_listing_is_unchanged_on_postgresql() {
    let Some(url) = postgres_database() else {
        return;
    };
    let env = [FAST_HASH_ENV, &[KEEP_UNSERVED]].concat();
    let mut s = Server::start_postgres(&url, &env, None);
    assert!(s.stop());
    assert_dry_run_listings(&s, "offline on PostgreSQL");
    assert_nothing_written(&s);
}
