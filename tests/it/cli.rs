//! The admin CLI against a running server and without one, first start,
//! restarts, crash recovery and graceful shutdown.

use std::os::unix::fs::PermissionsExt;

use ldap3::Scope;

use crate::harness::{run_cli, search, user_dn, Server};

#[test]
fn first_start_files_are_private() {
    let s = Server::start();
    let pw_file = s.data.join("initial-admin-password");
    let mode = std::fs::metadata(&pw_file)
        .expect("password file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(&pw_file).expect("read").trim(),
        s.admin_password
    );
    let sock = std::fs::metadata(s.data.join("admin.sock")).expect("admin socket");
    assert_eq!(sock.permissions().mode() & 0o777, 0o600);
    // admin is in admins; ldap-search exists
    let groups: serde_json::Value =
        serde_json::from_str(&s.ok(&["group", "list", "--json"])).expect("json");
    let names: Vec<&str> = groups
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert!(
        names.contains(&"admins") && names.contains(&"ldap-search"),
        "{names:?}"
    );
    let admins: serde_json::Value =
        serde_json::from_str(&s.ok(&["group", "show", "admins", "--json"])).expect("json");
    assert_eq!(admins["members"], serde_json::json!(["admin"]));
}

#[test]
fn cli_json_and_errors() {
    let s = Server::start();
    let out = s.ok(&[
        "user",
        "add",
        "gina",
        "--name",
        "Gina Lopez",
        "--email",
        "gina@example.com",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert!(out.trim_end().lines().count() >= 1);
    let shown: serde_json::Value =
        serde_json::from_str(&s.ok(&["user", "show", "gina", "--json"])).expect("json");
    assert_eq!(shown["username"], "gina");
    assert_eq!(shown["email"], "gina@example.com");
    assert_eq!(shown["full_name"], "Gina Lopez");
    assert_eq!(shown["dn"], user_dn("gina"));
    assert!(shown["uid_number"].as_u64().expect("uid") >= 2000);
    let text = serde_json::to_string(&v).expect("json");
    assert!(!text.contains("argon2"), "no hash in output");

    // set-attr shows up in LDAP at once
    s.ok(&["user", "set-attr", "gina", "telephoneNumber", "+1 555 0100"]);
    s.ok(&["user", "set-attr", "gina", "loginShell", "/bin/zsh"]);
    let mut admin = s.admin();
    let (_, e) = search(
        &mut admin,
        &user_dn("gina"),
        Scope::Base,
        "(objectClass=*)",
        &["telephoneNumber", "loginShell", "sn"],
    );
    assert_eq!(e[0].attrs["telephoneNumber"], vec!["+1 555 0100"]);
    assert_eq!(e[0].attrs["loginShell"], vec!["/bin/zsh"]);
    assert_eq!(e[0].attrs["sn"], vec!["Lopez"]);
    s.ok(&["user", "unset-attr", "gina", "telephoneNumber"]);
    let (_, e) = search(
        &mut admin,
        &user_dn("gina"),
        Scope::Base,
        "(objectClass=*)",
        &["telephoneNumber"],
    );
    assert!(!e[0].attrs.contains_key("telephoneNumber"));

    // errors: one line on stderr, non-zero exit
    for args in [
        vec!["user", "add", "gina"],
        vec!["user", "show", "nobody"],
        vec!["user", "set-attr", "gina", "uidNumber", "1"],
        vec!["group", "add-member", "nogroup", "gina"],
        vec!["user", "add", "bad name"],
    ] {
        let out = s.cli(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }

    // nested groups: cycles refused
    s.ok(&["group", "add", "a"]);
    s.ok(&["group", "add", "b"]);
    s.ok(&["group", "add-child", "a", "b"]);
    assert!(!s.cli(&["group", "add-child", "b", "a"]).status.success());
    s.ok(&["group", "remove-child", "a", "b"]);
    s.ok(&["group", "add-child", "b", "a"]);
}

#[test]
fn data_survives_restart_crash_and_offline_cli() {
    let s = Server::start();
    s.add_user("hank", "hank-pw-1");
    s.ok(&["group", "add", "crew"]);
    s.ok(&["group", "add-member", "crew", "hank"]);
    let before: serde_json::Value =
        serde_json::from_str(&s.ok(&["user", "show", "hank", "--json"])).expect("json");

    // graceful restart
    let s = s.restart();
    let after: serde_json::Value =
        serde_json::from_str(&s.ok(&["user", "show", "hank", "--json"])).expect("json");
    assert_eq!(before["uid_number"], after["uid_number"]);
    assert_eq!(before["id"], after["id"]);
    let mut c = s.bound(&user_dn("hank"), "hank-pw-1");
    let (_, e) = search(
        &mut c,
        &user_dn("hank"),
        Scope::Base,
        "(objectClass=*)",
        &["memberOf"],
    );
    assert_eq!(
        e[0].attrs["memberOf"],
        vec![crate::harness::group_dn("crew")]
    );

    // a change through the admin socket survives kill -9
    s.add_user("ivan", "ivan-pw-1");
    let s2 = s.crash_and_restart();
    assert_eq!(
        s2.conn()
            .simple_bind(&user_dn("ivan"), "ivan-pw-1")
            .expect("bind")
            .rc,
        0
    );

    // with the server stopped, the CLI opens the store itself
    let mut s3 = s2;
    assert!(s3.stop(), "graceful shutdown exits 0");
    let env: Vec<(String, String)> = crate::harness::FAST_HASH_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let out = run_cli(
        &s3.data,
        &env,
        &["user", "add", "judy", "--password-stdin"],
        Some("judy-pw-1"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s4 = s3.restart();
    assert_eq!(
        s4.conn()
            .simple_bind(&user_dn("judy"), "judy-pw-1")
            .expect("bind")
            .rc,
        0
    );
    // uid numbers are never reused after a delete
    let judy: serde_json::Value =
        serde_json::from_str(&s4.ok(&["user", "show", "judy", "--json"])).expect("json");
    s4.ok(&["user", "delete", "judy"]);
    s4.ok(&["user", "add", "kate"]);
    let kate: serde_json::Value =
        serde_json::from_str(&s4.ok(&["user", "show", "kate", "--json"])).expect("json");
    assert!(kate["uid_number"].as_u64() > judy["uid_number"].as_u64());
}
