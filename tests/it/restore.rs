//! The offline restore of a JSON backup, streamed (issue 15): a backup
//! that does not read, or is refused, writes nothing (no user, no server
//! key, no spill file); one with its fields in another order than our
//! export's restores as ours does, and is served with its credentials.

use std::path::Path;

use crate::harness::{run_cli, user_dn, Server, FAST_HASH_ENV};

fn env() -> Vec<(String, String)> {
    FAST_HASH_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Files of `data` whose name says they are a spill.
fn spills(data: &Path) -> Vec<String> {
    std::fs::read_dir(data)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("spill"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn offline_restore_writes_nothing_of_a_broken_backup_and_takes_any_field_order() {
    let mut source = Server::start();
    source.add_user("dora", "dora-pw");
    source.ok(&["group", "add", "staff"]);
    source.ok(&["group", "add-member", "staff", "dora"]);
    let app = source.ok(&["app-password", "add", "dora", "--name", "imap", "--json"]);
    let app: serde_json::Value = serde_json::from_str(&app).expect("json");
    let secret = app["secret"].as_str().expect("secret").to_string();
    assert!(source.stop());
    let tmp = tempfile::tempdir().expect("tmp");
    let backup = tmp.path().join("backup.json");
    let out = run_cli(
        &source.data,
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
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = std::fs::read_to_string(&backup).expect("backup");

    let data = tmp.path().join("data");
    let restore = |text: &str| {
        let file = tmp.path().join("input.json");
        std::fs::write(&file, text).expect("write");
        run_cli(
            &data,
            &env(),
            &["import", "--format", "json", file.to_str().expect("path")],
            None,
        )
    };
    let cut = &doc[..doc.find("\"groups\"").expect("groups")];
    let newer = doc.replacen("\"version\": 2", "\"version\": 3", 1);
    let malformed = doc.replacen("\"username\": \"dora\"", "\"username\": dora", 1);
    for (what, bad, says) in [
        ("cut", cut, "EOF while parsing"),
        ("newer", newer.as_str(), "backup version 3 is newer"),
        ("malformed", malformed.as_str(), "expected value"),
    ] {
        let out = restore(bad);
        assert!(!out.status.success(), "{what}");
        assert!(stderr(&out).contains(says), "{what}: {}", stderr(&out));
        assert!(
            !data.join("server.key").exists(),
            "{what}: no key installed"
        );
        assert!(spills(&data).is_empty(), "{what}: {:?}", spills(&data));
        // (An export, unlike `user list`, makes no admin in a fresh store.)
        let out = run_cli(&data, &env(), &["export", "--format", "json"], None);
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        let left: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(left["users"], serde_json::json!([]), "{what}");
        assert_eq!(left["groups"], serde_json::json!([]), "{what}");
    }

    // The server key and the header after the users, the groups before.
    let value: serde_json::Value = serde_json::from_str(&doc).expect("json");
    let order = [
        "groups",
        "users",
        "server_key",
        "settings",
        "counters",
        "secrets",
        "created",
        "version",
        "format",
    ];
    let fields: Vec<String> = order
        .iter()
        .map(|k| format!("{k:?}: {}", value[*k]))
        .collect();
    let out = restore(&format!("{{{}}}", fields.join(",\n")));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "restored 2 users, 3 groups, 0 MFA devices, 1 app passwords\n"
    );
    assert!(stderr(&out).contains("installed the backup's server key"));
    assert_eq!(
        std::fs::read(data.join("server.key")).expect("key"),
        std::fs::read(source.data.join("server.key")).expect("key")
    );
    assert!(spills(&data).is_empty());

    let restored = Server::start_in(data, FAST_HASH_ENV, &source.admin_password);
    let rc = |password: &str| {
        restored
            .conn()
            .simple_bind(&user_dn("dora"), password)
            .expect("bind")
            .rc
    };
    assert_eq!(rc(&secret), 0, "the app password binds");
    assert_eq!(rc("dora-pw"), 0);
    let groups = restored.ok(&["user", "show", "dora", "--json"]);
    assert!(groups.contains("staff"), "{groups}");
}
