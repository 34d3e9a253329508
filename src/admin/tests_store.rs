//! `execute` and `bootstrap` against a real (temporary) store.

use super::*;
use crate::auth::password::{HashConfig, Hasher};
use crate::config::Config;
use crate::store::Store;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;

struct Fixture {
    ctx: AdminContext,
    config: Config,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.auth = HashConfig {
        argon2_memory_kib: 64,
        argon2_iterations: 1,
        argon2_parallelism: 1,
        hash_workers: 1,
    };
    let store = Store::temporary().expect("store");
    let hasher = Hasher::for_tests();
    let ctx = AdminContext::new(store, hasher, &config);
    Fixture {
        ctx,
        config,
        _dir: dir,
    }
}

/// A fixture after the first start, with the admin password.
fn bootstrapped() -> (Fixture, String) {
    let f = fixture();
    let pw = bootstrap(&f.ctx.store, &f.ctx.hasher, &f.config)
        .expect("bootstrap")
        .expect("first start");
    (f, pw)
}

/// Runs `req` and gives its answer as the JSON document the socket carries
/// and `--json` prints, so these tests assert the wire format.
fn run(f: &Fixture, req: AdminRequest) -> Result<Value, AdminError> {
    execute(&f.ctx, req).map(|answer| answer.to_json().expect("json"))
}

fn ok(f: &Fixture, req: AdminRequest) -> Value {
    let op = req.op();
    run(f, req).unwrap_or_else(|e| panic!("{op}: {e}"))
}

fn add_user(f: &Fixture, name: &str, password: Option<&str>) -> Value {
    ok(
        f,
        AdminRequest::UserAdd {
            username: name.into(),
            full_name: None,
            email: None,
            password: password.map(|p| Password::new(p.into())),
        },
    )
}

fn add_group(f: &Fixture, name: &str) -> Value {
    ok(
        f,
        AdminRequest::GroupAdd {
            name: name.into(),
            description: None,
        },
    )
}

fn add_member(f: &Fixture, group: &str, user: &str) -> Value {
    ok(
        f,
        AdminRequest::GroupAddMember {
            group: group.into(),
            user: user.into(),
        },
    )
}

fn keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    keys.sort();
    keys
}

fn verifies(f: &Fixture, user: &str, password: &str) -> bool {
    let user = f
        .ctx
        .store
        .user_by_name(user)
        .expect("store")
        .expect("user");
    match f.ctx.store.password_hash(user.id).expect("store") {
        Some(phc) => f.ctx.hasher.verify_blocking(password, &phc),
        None => false,
    }
}

#[test]
fn bootstrap_once() {
    let (f, pw) = bootstrapped();
    assert_eq!(pw.len(), 24);
    assert!(verifies(&f, "admin", &pw));
    let file = f.config.initial_password_path();
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        format!("{pw}\n")
    );
    let mode = std::fs::metadata(&file).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let admins = ok(
        &f,
        AdminRequest::GroupShow {
            name: "admins".into(),
        },
    );
    assert_eq!(admins["members"], json!(["admin"]));
    ok(
        &f,
        AdminRequest::GroupShow {
            name: "ldap-search".into(),
        },
    );
    let admin = ok(
        &f,
        AdminRequest::UserShow {
            username: "admin".into(),
        },
    );
    assert_eq!(admin["full_name"], "Administrator");
    assert_eq!(admin["groups"], json!(["admins"]));

    // Later starts change nothing.
    let again = bootstrap(&f.ctx.store, &f.ctx.hasher, &f.config).expect("bootstrap");
    assert_eq!(again, None);
    assert!(verifies(&f, "admin", &pw));
}

#[test]
fn user_json_shape_and_no_secrets() {
    let (f, _) = bootstrapped();
    let added = ok(
        &f,
        AdminRequest::UserAdd {
            username: "alice".into(),
            full_name: Some("Alice Liddell".into()),
            email: Some("alice@example.com".into()),
            password: Some(Password::new("s3cret-Dormouse;x".into())),
        },
    );
    assert_eq!(added["ok"], true);
    assert_eq!(added["changed"], true);
    let user = &added["user"];
    assert_eq!(
        keys(user),
        [
            "attrs",
            "created",
            "disabled",
            "dn",
            "email",
            "full_name",
            "gid_number",
            "groups",
            "id",
            "modified",
            "pwd_changed",
            "uid_number",
            "username"
        ]
    );
    assert_eq!(user["username"], "alice");
    assert_eq!(user["dn"], "cn=alice,ou=users,dc=example,dc=com");
    assert_eq!(user["full_name"], "Alice Liddell");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["disabled"], false);
    assert!(user["uid_number"].as_u64().expect("uid") >= 2000);
    assert!(user["pwd_changed"].is_string());
    assert!(user["created"].as_str().expect("created").ends_with('Z'));
    assert!(verifies(&f, "alice", "s3cret-Dormouse;x"));

    let text = serde_json::to_string(&ok(&f, AdminRequest::UserList)).expect("json");
    assert!(!text.contains("argon2"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");

    // Without a password: created, but nothing to bind with.
    let bob = add_user(&f, "bob", None);
    assert_eq!(bob["user"]["pwd_changed"], Value::Null);
    assert!(!verifies(&f, "bob", ""));

    assert!(matches!(
        run(
            &f,
            AdminRequest::UserAdd {
                username: "ALICE".into(),
                full_name: None,
                email: None,
                password: None
            }
        ),
        Err(AdminError::AlreadyExists(_))
    ));
    assert!(matches!(
        run(
            &f,
            AdminRequest::UserShow {
                username: "carol".into()
            }
        ),
        Err(AdminError::NotFound(_))
    ));
    assert!(matches!(
        run(
            &f,
            AdminRequest::UserPasswd {
                username: "bob".into(),
                password: Password::new(String::new())
            }
        ),
        Err(AdminError::Invalid(_))
    ));
    // The password policy: too short, blank, common, or built from the
    // user's own name.
    for weak in ["x", "        ", "password", "12345678", "bob12345"] {
        match run(
            &f,
            AdminRequest::UserPasswd {
                username: "bob".into(),
                password: Password::new(weak.into()),
            },
        ) {
            Err(AdminError::Invalid(m)) => assert!(m.contains("the password"), "{weak}: {m}"),
            other => panic!("{weak:?}: {other:?}"),
        }
        assert!(!verifies(&f, "bob", weak), "{weak:?}");
    }
    ok(
        &f,
        AdminRequest::UserPasswd {
            username: "bob".into(),
            password: Password::new("new-Cheshire-pw".into()),
        },
    );
    assert!(verifies(&f, "bob", "new-Cheshire-pw"));

    let list = ok(&f, AdminRequest::UserList);
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["username"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["admin", "alice", "bob"]);
}

#[test]
fn attributes() {
    let (f, _) = bootstrapped();
    add_user(&f, "alice", None);
    let set = |key: &str, value: &str| {
        run(
            &f,
            AdminRequest::UserSetAttr {
                username: "alice".into(),
                key: key.into(),
                value: value.into(),
            },
        )
    };
    let unset = |key: &str| {
        run(
            &f,
            AdminRequest::UserUnsetAttr {
                username: "alice".into(),
                key: key.into(),
            },
        )
    };
    let v = set("displayName", "Alice L.").expect("displayName");
    assert_eq!(v["user"]["full_name"], "Alice L.");
    let v = set("mail", "a@example.org").expect("mail");
    assert_eq!(v["user"]["email"], "a@example.org");
    let v = set("loginShell", "/bin/zsh").expect("loginShell");
    assert_eq!(v["user"]["attrs"], json!({"loginShell": "/bin/zsh"}));
    assert_eq!(v["changed"], true);
    let v = set("loginshell", "/bin/zsh").expect("same value");
    assert_eq!(v["changed"], false);
    assert_eq!(v["user"]["attrs"], json!({"loginShell": "/bin/zsh"}));

    assert!(matches!(set("uidNumber", "1"), Err(AdminError::Invalid(_))));
    assert!(matches!(set("memberOf", "x"), Err(AdminError::Invalid(_))));
    assert!(matches!(
        set("noSuchAttribute", "x"),
        Err(AdminError::Invalid(_))
    ));
    assert!(matches!(set("sn", ""), Err(AdminError::Invalid(_))));

    let v = unset("loginShell").expect("unset");
    assert_eq!(v["user"]["attrs"], json!({}));
    assert_eq!(v["changed"], true);
    assert_eq!(unset("loginShell").expect("unset again")["changed"], false);
    let v = unset("displayName").expect("unset displayName");
    assert_eq!(v["user"]["full_name"], Value::Null);
    let v = unset("mail").expect("unset mail");
    assert_eq!(v["user"]["email"], Value::Null);
}

#[test]
fn enable_disable_delete() {
    let (f, _) = bootstrapped();
    add_user(&f, "alice", Some("Dormouse-Teapot-9"));
    let generation = |f: &Fixture| {
        f.ctx
            .store
            .user_by_name("alice")
            .expect("store")
            .expect("user")
            .cred_generation
    };
    let g0 = generation(&f);
    let v = ok(
        &f,
        AdminRequest::UserDisable {
            username: "alice".into(),
        },
    );
    assert_eq!(
        (v["changed"].clone(), v["user"]["disabled"].clone()),
        (json!(true), json!(true))
    );
    assert!(generation(&f) > g0);
    let v = ok(
        &f,
        AdminRequest::UserDisable {
            username: "alice".into(),
        },
    );
    assert_eq!(v["changed"], false);
    let v = ok(
        &f,
        AdminRequest::UserEnable {
            username: "alice".into(),
        },
    );
    assert_eq!(v["user"]["disabled"], false);

    let v = ok(
        &f,
        AdminRequest::UserDelete {
            username: "alice".into(),
        },
    );
    assert_eq!(v["user"]["username"], "alice");
    assert!(matches!(
        run(
            &f,
            AdminRequest::UserShow {
                username: "alice".into()
            }
        ),
        Err(AdminError::NotFound(_))
    ));
}

#[test]
fn groups_and_nesting() {
    let (f, _) = bootstrapped();
    add_user(&f, "alice", None);
    add_user(&f, "bob", None);
    let staff = add_group(&f, "staff");
    let staff = &staff["group"];
    assert_eq!(
        keys(staff),
        [
            "child_groups",
            "created",
            "description",
            "dn",
            "gid_number",
            "id",
            "members",
            "modified",
            "name",
            "parent_groups"
        ]
    );
    assert_eq!(staff["dn"], "cn=staff,ou=groups,dc=example,dc=com");
    assert!(staff["gid_number"].as_u64().expect("gid") >= 4000);
    let v = ok(
        &f,
        AdminRequest::GroupAdd {
            name: "devs".into(),
            description: Some("Developers".into()),
        },
    );
    assert_eq!(v["group"]["description"], "Developers");
    assert!(matches!(
        run(
            &f,
            AdminRequest::GroupAdd {
                name: "Staff".into(),
                description: None
            }
        ),
        Err(AdminError::AlreadyExists(_))
    ));

    assert_eq!(add_member(&f, "staff", "bob")["changed"], true);
    assert_eq!(add_member(&f, "staff", "alice")["changed"], true);
    assert_eq!(add_member(&f, "staff", "alice")["changed"], false);
    let v = ok(
        &f,
        AdminRequest::GroupAddChild {
            parent: "staff".into(),
            child: "devs".into(),
        },
    );
    assert_eq!(v["group"]["members"], json!(["alice", "bob"]));
    assert_eq!(v["group"]["child_groups"], json!(["devs"]));
    let devs = ok(
        &f,
        AdminRequest::GroupShow {
            name: "devs".into(),
        },
    );
    assert_eq!(devs["parent_groups"], json!(["staff"]));
    // Cycles and self-membership are refused.
    for (parent, child) in [("devs", "staff"), ("devs", "devs")] {
        assert!(matches!(
            run(
                &f,
                AdminRequest::GroupAddChild {
                    parent: parent.into(),
                    child: child.into()
                }
            ),
            Err(AdminError::Invalid(_))
        ));
    }
    let alice = ok(
        &f,
        AdminRequest::UserShow {
            username: "alice".into(),
        },
    );
    assert_eq!(alice["groups"], json!(["staff"]));

    let v = ok(
        &f,
        AdminRequest::GroupRemoveMember {
            group: "staff".into(),
            user: "alice".into(),
        },
    );
    assert_eq!(
        (v["changed"].clone(), v["group"]["members"].clone()),
        (json!(true), json!(["bob"]))
    );
    let v = ok(
        &f,
        AdminRequest::GroupRemoveChild {
            parent: "staff".into(),
            child: "devs".into(),
        },
    );
    assert_eq!(v["group"]["child_groups"], json!([]));

    let list = ok(&f, AdminRequest::GroupList);
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|g| g["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["admins", "devs", "ldap-search", "staff"]);

    ok(
        &f,
        AdminRequest::GroupDelete {
            name: "devs".into(),
        },
    );
    assert!(matches!(
        run(
            &f,
            AdminRequest::GroupShow {
                name: "devs".into()
            }
        ),
        Err(AdminError::NotFound(_))
    ));
}

#[test]
fn required_groups_cannot_be_deleted() {
    let (f, _) = bootstrapped();
    for name in ["admins", "LDAP-Search"] {
        match run(&f, AdminRequest::GroupDelete { name: name.into() }) {
            Err(AdminError::Invalid(m)) => assert!(m.contains("required by the server"), "{m}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn the_last_admin_stays() {
    let (f, _) = bootstrapped();
    let refused = |req: AdminRequest| {
        let op = req.op();
        match run(&f, req) {
            Err(AdminError::Invalid(m)) => assert!(m.contains("admins"), "{op}: {m}"),
            other => panic!("{op} should be refused: {other:?}"),
        }
    };
    refused(AdminRequest::UserDelete {
        username: "admin".into(),
    });
    refused(AdminRequest::UserDisable {
        username: "admin".into(),
    });
    refused(AdminRequest::GroupRemoveMember {
        group: "admins".into(),
        user: "admin".into(),
    });

    // An admin through a nested group counts.
    add_user(&f, "alice", None);
    add_group(&f, "ops");
    add_member(&f, "ops", "alice");
    ok(
        &f,
        AdminRequest::GroupAddChild {
            parent: "admins".into(),
            child: "ops".into(),
        },
    );
    ok(
        &f,
        AdminRequest::UserDisable {
            username: "admin".into(),
        },
    );
    refused(AdminRequest::UserDisable {
        username: "alice".into(),
    });
    refused(AdminRequest::GroupDelete { name: "ops".into() });
    refused(AdminRequest::GroupRemoveChild {
        parent: "admins".into(),
        child: "ops".into(),
    });
    refused(AdminRequest::GroupRemoveMember {
        group: "ops".into(),
        user: "alice".into(),
    });
    // Once admin is back, alice may go.
    ok(
        &f,
        AdminRequest::UserEnable {
            username: "admin".into(),
        },
    );
    ok(
        &f,
        AdminRequest::UserDelete {
            username: "alice".into(),
        },
    );
}
