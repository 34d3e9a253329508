//! Import, export and restore against temporary stores, with the
//! slapcat-style fixture in `fixtures/openldap-slapcat.ldif`.

use super::import::{self, ImportOptions, Listing, Severity};
use super::{export, BackupMember};
use crate::auth::keys::ServerKey;
use crate::auth::legacy;
use crate::auth::password::Hasher;
use crate::auth::{app_password, static_tokens};
use crate::directory::dn::Dn;
use crate::ldif;
use crate::store::import::BatchMember;
use crate::store::{
    DeviceKind, GroupPolicy, Member, MfaPolicy, NewUser, Store, TotpSecret, UserId,
};

const FIXTURE: &str = include_str!("../../fixtures/openldap-slapcat.ldif");
const PW: &str = "correct horse";

fn cheap() -> Hasher {
    Hasher::for_tests()
}

fn fixture_plan(opts: &ImportOptions) -> import::ImportPlan {
    let ldif = ldif::parse_str(FIXTURE).expect("fixture parses");
    import::plan_ldif(&ldif, opts)
}

fn verifies(store: &Store, hasher: &Hasher, name: &str, pw: &str) -> bool {
    let user = store.user_by_name(name).expect("store").expect("user");
    let Some(hash) = store.password_hash(user.id).expect("store") else {
        return false;
    };
    if legacy::is_legacy(&hash) {
        legacy::verify_legacy(&hash, pw)
    } else {
        hasher.verify_blocking(pw, &hash)
    }
}

#[test]
fn plans_the_fixture() {
    let opts = ImportOptions {
        keep_attributes: vec!["employeeType".into()],
    };
    let plan = fixture_plan(&opts);
    let names: Vec<&str> = plan.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol", "dave", "erin", "frank"]);
    let groups: Vec<&str> = plan.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(groups, ["staff", "developers", "ops"]);
    assert_eq!(plan.skipped.len(), 3, "base and two OUs");

    let alice = &plan.users[0];
    assert_eq!(alice.line, 32);
    assert_eq!(alice.full_name.as_deref(), Some("Alice Liddell"));
    assert_eq!(alice.uid_number, Some(1001));
    assert_eq!(
        alice.attrs.get("loginShell").map(String::as_str),
        Some("/bin/zsh")
    );
    assert_eq!(
        alice.attrs.get("employeeType").map(String::as_str),
        Some("staff")
    );
    assert!(alice.attrs["description"].contains("looking-glass worlds and the many"));
    let carol = &plan.users[2];
    assert_eq!(carol.full_name.as_deref(), Some("Zoë Ångström"));
    assert!(plan.users[5].disabled, "pwdAccountLockedTime locks frank");
    let kinds: Vec<String> = plan
        .users
        .iter()
        .map(|u| u.password.as_ref().map(|p| p.kind()).unwrap_or_default())
        .collect();
    assert_eq!(kinds[0], "{SSHA}");
    assert_eq!(kinds[1], "{CRYPT} sha512-crypt");
    assert!(kinds[4].starts_with("cleartext"));

    let staff = &plan.groups[0];
    assert_eq!(
        staff.members,
        [
            BatchMember::User("alice".into()),
            BatchMember::User("bob".into()),
            BatchMember::Group("developers".into()),
        ]
    );
    assert_eq!(plan.groups[1].gid_number, Some(5001));
    assert_eq!(
        plan.groups[1].members,
        [
            BatchMember::User("carol".into()),
            BatchMember::User("dave".into())
        ]
    );
    // A uniqueMember from another tree resolves by its RDN value.
    assert_eq!(
        plan.groups[2].members,
        [
            BatchMember::User("erin".into()),
            BatchMember::User("frank".into())
        ]
    );

    let find = |needle: &str| {
        plan.problems
            .iter()
            .find(|p| p.message.contains(needle))
            .unwrap_or_else(|| panic!("no problem mentions {needle}: {:#?}", plan.problems))
    };
    let ghost = find("ghost");
    assert_eq!((ghost.line, ghost.severity), (113, Severity::Error));
    assert_eq!(find("\"nobody\"").line, 121);
    assert_eq!(find("modify").line, 129);
    assert_eq!(find("shadowLastChange").severity, Severity::Warning);
    let report = plan.report();
    assert!(report.contains("line    113  error"), "{report}");
    assert!(!report.contains("NSZEu"), "no hash in the report");
    // Without keep_attributes the unknown attribute is reported.
    let plain = fixture_plan(&ImportOptions::default());
    assert!(!plain.users[0].attrs.contains_key("employeeType"));
    assert!(plain.problems.iter().any(|p| p.line == 49));
}

/// A member named twice (by DN, by another spelling of it, by
/// memberUid) is kept once, where first named; a group naming itself
/// and a reference to nothing are reported at their lines and dropped.
/// Users and groups naming each other, themselves and nobody, by DN (in
/// other spellings too) and by memberUid, some twice.
const MEMBERS: &str = "dn: uid=amy,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: amy
cn: Amy
sn: A

dn: uid=ben,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: ben
cn: Ben
sn: B

dn: cn=crew,ou=groups,dc=example,dc=org
objectClass: groupOfNames
objectClass: posixGroup
cn: crew
gidNumber: 7001
member: uid=ben,ou=people,dc=example,dc=org
member: UID=Amy, OU=People, DC=example, DC=org
memberUid: ben
member: cn=crew,ou=groups,dc=example,dc=org
memberUid: amy
member: uid=nemo,ou=people,dc=example,dc=org

dn: cn=deck,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: deck
member: cn=crew,ou=groups,dc=example,dc=org
member: cn=deck,ou=groups,dc=example,dc=org
member: UID=Amy,OU=People,DC=example,DC=org

dn: cn=hold,ou=groups,dc=example,dc=org
objectClass: groupOfNames
objectClass: posixGroup
cn: hold
description: a group in a group, and a ghost
member: cn=deck,ou=groups,dc=example,dc=org
member: uid=ghost,ou=people,dc=example,dc=org
memberUid: ben
";

#[test]
fn members_are_kept_once_and_a_group_never_holds_itself() {
    let plan = import::plan_ldif(
        &ldif::parse_str(MEMBERS).expect("parses"),
        &ImportOptions::default(),
    );
    assert_eq!(
        plan.groups[0].members,
        [
            BatchMember::User("ben".into()),
            BatchMember::User("amy".into())
        ]
    );
    let lines: Vec<(usize, &str)> = plan
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| (p.line, p.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (
                21,
                "member \"cn=crew,ou=groups,dc=example,dc=org\" is the group itself; dropped"
            ),
            (
                23,
                "member \"uid=nemo,ou=people,dc=example,dc=org\" matches no imported user or \
                 group; dropped"
            ),
            (
                29,
                "member \"cn=deck,ou=groups,dc=example,dc=org\" is the group itself; dropped"
            ),
            (
                38,
                "member \"uid=ghost,ou=people,dc=example,dc=org\" matches no imported user or \
                 group; dropped"
            ),
        ]
    );
}

#[test]
fn members_resolved_on_two_threads_are_those_resolved_on_one() {
    let ldif = ldif::parse_str(MEMBERS).expect("parses");
    let opts = ImportOptions::default();
    // Members and problems, group by group.
    let resolved = |p: import::ImportPlan| {
        let members: Vec<(String, Vec<BatchMember>)> =
            p.groups.into_iter().map(|g| (g.name, g.members)).collect();
        let problems: Vec<(usize, String, String)> = p
            .problems
            .into_iter()
            .map(|p| (p.line, p.dn, p.message))
            .collect();
        (members, problems)
    };
    let one = resolved(import::plan_ldif(&ldif, &opts));
    let two = resolved(import::plan_ldif_on_two_threads(&ldif, &opts));
    let (user, group) = (BatchMember::User, BatchMember::Group);
    assert_eq!(
        one.0,
        [
            ("crew".into(), vec![user("ben".into()), user("amy".into())]),
            (
                "deck".into(),
                vec![group("crew".into()), user("amy".into())]
            ),
            (
                "hold".into(),
                vec![group("deck".into()), user("ben".into())]
            ),
        ]
    );
    assert_eq!(one.1.len(), 4);
    assert_eq!(two, one);
}

#[test]
fn applies_all_or_nothing_and_idempotently() {
    let hasher = cheap();
    let plan = fixture_plan(&ImportOptions::default());

    // A conflicting user (alice with another uidNumber) aborts everything.
    let store = Store::temporary().expect("store");
    store
        .create_user(NewUser {
            username: "alice".into(),
            ..NewUser::default()
        })
        .expect("alice");
    let err = import::apply(&store, &plan, &hasher).expect_err("conflict");
    assert!(err.to_string().contains("uidNumber"), "{err}");
    assert_eq!(store.users().expect("users").len(), 1);
    assert!(store.groups().expect("groups").is_empty());
    assert_eq!(store.counters().expect("counters"), (2001, 4000));

    let store = Store::temporary().expect("store");
    let mut stages = Vec::new();
    let first = import::apply_with_progress(&store, &plan, &hasher, &mut |p| stages.push(p.stage))
        .expect("import");
    assert!(stages.contains(&"writing"));
    assert_eq!(first.batch.users_created.len(), 6);
    assert_eq!(first.batch.groups_created.len(), 3);
    assert_eq!(first.batch.memberships_added, 7);
    for name in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        assert!(verifies(&store, &hasher, name, PW), "{name}");
        assert!(!verifies(&store, &hasher, name, "wrong"), "{name}");
    }
    let erin = store.user_by_name("erin").expect("store").expect("erin");
    let erin_hash = store.password_hash(erin.id).expect("store").expect("hash");
    assert!(erin_hash.starts_with("$argon2id$"), "cleartext is hashed");
    assert_eq!(erin.uid_number, 2000, "allocated");
    let alice = store.user_by_name("alice").expect("store").expect("alice");
    assert_eq!((alice.uid_number, alice.gid_number), (1001, 1001));
    let developers = store
        .group_by_name("developers")
        .expect("store")
        .expect("g");
    assert_eq!(developers.gid_number, 5001);
    let staff = store.group_by_name("staff").expect("store").expect("g");
    assert!(store
        .members(staff.id)
        .expect("members")
        .contains(&Member::Group(developers.id)));
    let carol = store.user_by_name("carol").expect("store").expect("carol");
    assert!(store
        .transitive_groups_of(Member::User(carol.id))
        .expect("groups")
        .contains(&staff.id));
    // Allocators moved past the imported numbers.
    // erin and frank got 2000 and 2001; staff and ops 5002 and 5003.
    assert_eq!(store.counters().expect("counters"), (2002, 5004));
    let g = store.create_group("later", None).expect("group");
    assert_eq!(g.gid_number, 5004);

    // Rehash on bind: compare-and-swap of the stored string.
    let bob = store.user_by_name("bob").expect("store").expect("bob");
    let old = store.password_hash(bob.id).expect("store").expect("hash");
    assert!(legacy::needs_rehash(&old));
    let new = hasher.hash_blocking(PW).expect("hash");
    assert!(store.rehash_password(bob.id, &old, &new).expect("swap"));
    assert!(!store.rehash_password(bob.id, &old, &new).expect("swap"));
    assert!(verifies(&store, &hasher, "bob", PW));

    // Second run: nothing duplicated, nothing changed, no error; bob
    // keeps his rehashed password.
    let second = import::apply(&store, &plan, &hasher).expect("second import");
    assert!(second.batch.users_created.is_empty(), "{second:?}");
    assert!(second.batch.groups_created.is_empty());
    assert_eq!(second.batch.users_unchanged.len(), 6, "{second:?}");
    assert_eq!(second.batch.memberships_added, 0);
    assert_eq!(store.users().expect("users").len(), 6);
    assert_eq!(store.password_hash(bob.id).expect("store"), Some(new));
}

#[test]
fn json_backup_restores_everything() {
    let hasher = cheap();
    let store = Store::temporary().expect("store");
    import::apply(&store, &fixture_plan(&ImportOptions::default()), &hasher).expect("import");
    store
        .set_setting("portal.title", "Example")
        .expect("setting");
    let extra = store.create_user(NewUser {
        username: "zed".into(),
        ..NewUser::default()
    });
    let zed = extra.expect("zed");
    store.delete_user(zed.id).expect("delete");
    // A group's portal settings (`group set-attr`) travel too.
    let first_group = store.groups().expect("g")[0].id;
    store
        .set_group_attr(
            first_group,
            "goauthentik.io/user/can-change-email",
            Some("true"),
        )
        .expect("group attr");

    let mut out = Vec::new();
    export::json(&store, export::Secrets::Omit, &mut out).expect("export");
    let text = String::from_utf8(out.clone()).expect("utf8");
    assert!(text.contains("\"version\": 2"));
    assert!(text.contains("\"secrets\": false"));
    assert!(!text.contains("server_key"));

    let fresh = Store::temporary().expect("fresh");
    import::json(&fresh, out.as_slice()).expect("restore");
    assert_eq!(fresh.users().expect("u"), store.users().expect("u"));
    assert_eq!(fresh.groups().expect("g"), store.groups().expect("g"));
    for u in store.users().expect("u") {
        assert_eq!(
            fresh.password_hash(u.id).expect("p"),
            store.password_hash(u.id).expect("p")
        );
        assert_eq!(
            fresh.groups_of(Member::User(u.id)).expect("m"),
            store.groups_of(Member::User(u.id)).expect("m")
        );
    }
    for g in store.groups().expect("g") {
        assert_eq!(
            fresh.group_attrs(g.id).expect("attrs"),
            store.group_attrs(g.id).expect("attrs")
        );
        assert_eq!(
            fresh.members(g.id).expect("m"),
            store.members(g.id).expect("m")
        );
    }
    assert_eq!(fresh.settings().expect("s"), store.settings().expect("s"));
    assert_eq!(fresh.counters().expect("c"), store.counters().expect("c"));
    assert!(verifies(&fresh, &hasher, "dave", PW));
    assert!(fresh.user_by_uid_number(1001).expect("idx").is_some());
    assert!(fresh
        .user_by_email("bob@example.org")
        .expect("idx")
        .is_some());

    // Restoring again changes nothing.
    let again = import::json(&fresh, out.as_slice()).expect("restore twice");
    assert!(again.batch.users_created.is_empty() && again.batch.groups_created.is_empty());
    assert_eq!(again.batch.memberships_added, 0);
    assert_eq!(fresh.users().expect("u"), store.users().expect("u"));

    // A store with another alice refuses the restore and stays as it was.
    let other = Store::temporary().expect("other");
    other
        .create_user(NewUser {
            username: "alice".into(),
            ..NewUser::default()
        })
        .expect("alice");
    assert!(import::json(&other, out.as_slice()).is_err());
    assert_eq!(other.users().expect("u").len(), 1);
    assert!(other.groups().expect("g").is_empty());

    let backup: super::Backup = serde_json::from_slice(&out).expect("parse");
    assert!(backup.groups.iter().any(|g| g
        .members
        .iter()
        .any(|m| matches!(m, BackupMember::Group(_)))));
    assert!(
        !format!("{backup:?}").contains("NSZEu"),
        "Debug hides hashes"
    );
}

#[test]
fn ldif_export_reimports() {
    let hasher = cheap();
    let store = Store::temporary().expect("store");
    let opts = ImportOptions {
        keep_attributes: vec!["employeeType".into()],
    };
    import::apply(&store, &fixture_plan(&opts), &hasher).expect("import");
    let base = Dn::parse("dc=example,dc=com").expect("dn");
    // The portal's settings are kept with the user but are no LDAP
    // attributes: the LDIF leaves them out, so it still reads back.
    let first = store.users().expect("users")[0].id;
    store
        .update_user(first, &|u| {
            u.attrs.insert("portcullis/locale".into(), "de".into());
            u.attrs
                .insert("goauthentik.io/user/can-change-name".into(), "false".into());
            Ok(())
        })
        .expect("settings");

    let mut plain = Vec::new();
    let n = export::ldif(&store, &base, false, &mut plain).expect("export");
    assert_eq!(n, 3 + 6 + 3);
    let plain = String::from_utf8(plain).expect("ascii");
    assert!(!plain.to_ascii_lowercase().contains("userpassword"));
    assert!(plain.contains("entryUUID: "));
    assert!(!plain.contains("hasSubordinates"));
    assert!(plain.contains("employeeType: staff"));
    assert!(!plain.contains("portcullis/locale") && !plain.contains("goauthentik.io"));

    let mut secret = Vec::new();
    export::ldif(&store, &base, true, &mut secret).expect("export");
    let secret = String::from_utf8(secret).expect("ascii");
    assert!(secret.contains("userPassword: {SSHA}"));
    assert!(secret.contains("userPassword: {ARGON2}$argon2id$"));

    // The export imports into a fresh store with the same users, groups
    // and passwords.
    let parsed = ldif::parse_str(&secret).expect("reads back");
    let plan = import::plan_ldif(&parsed, &opts);
    assert!(!plan.has_errors(), "{}", plan.report());
    let fresh = Store::temporary().expect("fresh");
    import::apply(&fresh, &plan, &hasher).expect("import");
    for (a, b) in store
        .users()
        .expect("u")
        .iter()
        .zip(fresh.users().expect("u"))
    {
        assert_eq!(a.username, b.username);
        assert_eq!(a.uid_number, b.uid_number);
        assert_eq!(a.full_name, b.full_name);
        assert_eq!(a.email, b.email);
        // The export serves defaults (loginShell, homeDirectory), which
        // the second import keeps as attributes; nothing is lost.
        for (k, v) in a.attrs.iter().filter(|(k, _)| !k.contains('/')) {
            assert_eq!(b.attrs.get(k), Some(v), "{} {k}", a.username);
        }
        assert!(verifies(&fresh, &hasher, &a.username, PW));
    }
    let staff = fresh.group_by_name("staff").expect("g").expect("staff");
    assert_eq!(fresh.members(staff.id).expect("m").len(), 3);
}

/// Gives `user` every kind of second factor: a TOTP device of `secret`
/// whose step 1234 is used, a static device of `tokens` whose first is
/// used, and the app password `app` (keyed with `key`).
pub(super) fn add_second_factors(
    store: &Store,
    user: UserId,
    key: &ServerKey,
    secret: TotpSecret,
    tokens: &[&str],
    app: &str,
) {
    let totp = store
        .add_totp_device(user, "phone", 6, &secret)
        .expect("totp");
    assert!(store.advance_totp_step(user, totp.id, 1234).expect("step"));
    let tokens: Vec<_> = tokens.iter().map(|t| static_tokens::hash(key, t)).collect();
    let st = store
        .add_static_device(user, "paper", &tokens)
        .expect("static");
    assert!(store
        .consume_static_token(user, st.id, &tokens[0])
        .expect("consume"));
    store
        .add_app_password(
            user,
            crate::store::CredentialKind::AppPassword,
            "mail",
            Some(4_000_000_000),
            &app_password::hash(key, app),
        )
        .expect("app password");
}

/// A store with one user holding every kind of second factor, a used TOTP
/// step, a used static token, and group and global policies.
fn store_with_second_factors(key: &ServerKey) -> (Store, UserId) {
    let store = Store::temporary().expect("store");
    let alice = store
        .create_user(NewUser {
            username: "alice".into(),
            ..NewUser::default()
        })
        .expect("alice");
    store
        .set_password_hash(
            alice.id,
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        )
        .expect("pw");
    add_second_factors(
        &store,
        alice.id,
        key,
        TotpSecret(vec![7u8; 20]),
        &["tok-one", "tok-two", "tok-three"],
        "pca_secret",
    );
    let staff = store.create_group("staff", None).expect("staff");
    store
        .add_member(staff.id, Member::User(alice.id))
        .expect("member");
    store
        .set_group_policy(
            staff.id,
            GroupPolicy {
                mfa: Some(MfaPolicy::Required),
                app_passwords: Some(false),
            },
        )
        .expect("policy");
    store
        .set_setting(crate::store::mfa::SETTING_MFA_POLICY, "if-enrolled")
        .expect("global policy");
    (store, alice.id)
}

#[test]
fn json_backup_with_secrets_restores_second_factors() {
    let key = ServerKey::generate();
    let (store, alice) = store_with_second_factors(&key);
    let mut out = Vec::new();
    let left_out =
        export::json(&store, export::Secrets::Include(Some(&key)), &mut out).expect("export");
    assert_eq!(left_out, export::WithoutSecrets::default());
    let backup = import::read_backup(out.as_slice()).expect("parse");
    assert!(backup.secrets);
    assert_eq!(
        import::backup_server_key(&backup).expect("key"),
        Some(key.clone())
    );
    assert!(import::needs_server_key(&backup));
    let shown = format!("{backup:?}");
    assert!(!shown.contains(&key.to_hex()), "Debug hides the key");

    let fresh = Store::temporary().expect("fresh");
    let report = import::restore(&fresh, &backup, false).expect("restore");
    assert_eq!(report.batch.devices_restored, 2);
    assert_eq!(report.batch.app_passwords_restored, 1);
    assert_eq!(report.batch.group_policies_set, 1);
    assert_eq!(
        fresh.raw_devices(alice).expect("devices"),
        store.raw_devices(alice).expect("devices")
    );
    assert_eq!(
        fresh.raw_app_passwords(alice).expect("app passwords"),
        store.raw_app_passwords(alice).expect("app passwords")
    );
    assert_eq!(
        fresh.group_policies().expect("p"),
        store.group_policies().expect("p")
    );
    assert_eq!(fresh.settings().expect("s"), store.settings().expect("s"));
    // The used step and the used token stay used; the others work.
    let devices = fresh.devices(alice).expect("devices");
    let totp_id = devices
        .iter()
        .find(|d| matches!(d.kind, DeviceKind::Totp { .. }))
        .expect("totp")
        .id;
    let static_id = devices
        .iter()
        .find(|d| d.kind == DeviceKind::Static)
        .expect("static")
        .id;
    assert_eq!(
        fresh.totp_last_step(alice, totp_id).expect("step"),
        Some(1234)
    );
    assert!(!fresh
        .advance_totp_step(alice, totp_id, 1234)
        .expect("replay"));
    assert!(!fresh
        .consume_static_token(alice, static_id, &static_tokens::hash(&key, "tok-one"))
        .expect("used"));
    assert!(fresh
        .consume_static_token(alice, static_id, &static_tokens::hash(&key, "tok-two"))
        .expect("unused"));
    assert!(fresh
        .app_password_by_hash(&app_password::hash(&key, "pca_secret"))
        .expect("lookup")
        .is_some());

    // Restoring again puts the backup's state back: the token consumed
    // since then is unused again (a restore is the state of the backup),
    // but a TOTP step never moves back.
    assert!(fresh.advance_totp_step(alice, totp_id, 2000).expect("step"));
    let again = import::restore(&fresh, &backup, false).expect("restore twice");
    assert_eq!(again.batch.devices_restored, 1, "the consumed token");
    assert_eq!(
        fresh.totp_last_step(alice, totp_id).expect("step"),
        Some(2000)
    );
    // A restore over the restored state changes nothing.
    let third = import::restore(&fresh, &backup, false).expect("restore thrice");
    assert_eq!(third.batch.devices_restored, 0);
    assert_eq!(third.batch.app_passwords_restored, 0);
    assert_eq!(third.batch.group_policies_set, 0);
    assert!(third.batch.users_updated.is_empty());
}

#[test]
fn json_backup_without_secrets_lists_factors_and_refuses_without_force() {
    let key = ServerKey::generate();
    let (store, alice) = store_with_second_factors(&key);
    let mut out = Vec::new();
    let left_out = export::json(&store, export::Secrets::Omit, &mut out).expect("export");
    assert_eq!(left_out.devices, 2);
    assert_eq!(left_out.app_passwords, 1);
    let text = String::from_utf8(out.clone()).expect("utf8");
    assert!(!text.contains("server_key") && !text.contains("token_hashes"));
    assert!(text.contains("\"tokens_left\": 2"), "{text}");
    assert!(!text.contains(&crate::auth::totp::secret_base32(&[7u8; 20])));

    let backup = import::read_backup(out.as_slice()).expect("parse");
    assert!(!import::needs_server_key(&backup));
    let fresh = Store::temporary().expect("fresh");
    let err = import::restore(&fresh, &backup, false).expect_err("refused");
    assert!(err.to_string().contains("--with-secrets"), "{err}");
    assert!(fresh.users().expect("u").is_empty(), "nothing written");
    let report = import::restore(&fresh, &backup, true).expect("forced");
    assert_eq!(
        (report.devices_skipped, report.app_passwords_skipped),
        (2, 1)
    );
    assert!(fresh.devices(alice).expect("d").is_empty());
    assert_eq!(
        fresh.group_policies().expect("p"),
        store.group_policies().expect("p")
    );
}

#[test]
fn version_1_backups_still_restore() {
    let v1 = r#"{"format":"portcullis-backup","version":1,"created":1,
        "users":[{"id":"6f1c7d2e-8a51-4a07-9a3e-0c1b2d3e4f50","username":"old","full_name":null,
          "email":null,"uid_number":2000,"gid_number":2000,"disabled":false,"attrs":{},
          "created":1,"modified":1,"pwd_changed":null,"cred_generation":0,"password_hash":null}],
        "groups":[],"settings":{},"counters":{"next_uid":2001,"next_gid":4000},"extra":[]}"#;
    let fresh = Store::temporary().expect("fresh");
    let report = import::json(&fresh, v1.as_bytes()).expect("v1 restores");
    assert_eq!(report.batch.users_created, vec!["old".to_string()]);
    let newer = v1.replace("\"version\":1", "\"version\":3");
    assert!(import::json(&Store::temporary().expect("s"), newer.as_bytes()).is_err());
}

/// Some thousands of users (names in mixed case and with `.`, `_`, `-`,
/// kept and set attributes, legacy and argon2 hashes, second factors),
/// nested groups and an admin group with a nested member: the streamed
/// exports are byte for byte what the whole-snapshot path wrote (LDIF)
/// and what serde_json writes for the backup document (JSON), with and
/// without secrets; and so for an empty store.
#[test]
fn streamed_exports_equal_the_snapshot_built_ones() {
    use crate::store::import::{Batch, BatchGroup, BatchUser};
    use crate::store::{Group, GroupId, User};
    let store = Store::temporary().expect("store");
    let at = crate::store::now();
    let mut batch = Batch::default();
    for i in 0..3000u32 {
        let username = match i % 4 {
            0 => format!("User{i:04}"),
            1 => format!("u.{i}"),
            2 => format!("u_{i}"),
            _ => format!("u-{i}"),
        };
        let mut attrs = std::collections::BTreeMap::new();
        if i % 7 == 0 {
            attrs.insert("employeeType".into(), "staff".into());
            attrs.insert("loginShell".into(), "/bin/zsh".into());
        }
        if i % 11 == 0 {
            // Written in base64, folded, and kept though the schema does
            // not know it.
            attrs.insert("description".into(), format!("Zoë {i}"));
            attrs.insert("l".into(), format!("{i} {}", "Long Street Name ".repeat(6)));
            attrs.insert("x-badge".into(), format!("B{i}"));
        }
        if i % 17 == 0 {
            // One type under two names: the entry merges them.
            attrs.insert("mobile".into(), format!("+1 555 {i:04}"));
            attrs.insert("mobileTelephoneNumber".into(), "+1 555 9999".into());
        }
        batch.users.push(BatchUser {
            user: User {
                id: UserId(uuid::Uuid::new_v4()),
                email: (i % 5 != 0).then(|| format!("{username}@example.com")),
                full_name: (i % 3 != 0).then(|| format!("Person Number {i}")),
                username,
                uid_number: 0,
                gid_number: 0,
                disabled: i % 13 == 0,
                attrs: attrs.into_iter().collect(),
                created: at,
                modified: at,
                pwd_changed: None,
                cred_generation: 0,
            },
            allocate_uid: true,
            password_hash: match i % 3 {
                0 => Some("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into()),
                1 => Some("{SSHA}aGFzaGhhc2hoYXNoaGFzaHNhbHQ=".into()),
                _ => None,
            },
        });
    }
    for name in ["admins", "staff", "Ops", "wheel", "empty"] {
        batch.groups.push(BatchGroup {
            group: Group {
                id: GroupId(uuid::Uuid::new_v4()),
                name: name.into(),
                gid_number: 0,
                description: Some(format!("the {name}")),
                created: at,
                modified: at,
            },
            allocate_gid: true,
        });
    }
    let names: Vec<String> = batch
        .users
        .iter()
        .map(|u| u.user.username.clone())
        .collect();
    for (i, name) in names.iter().enumerate() {
        let member = BatchMember::User(name.clone());
        if i % 2 == 0 {
            batch.memberships.push(("staff".into(), member.clone()));
        }
        if i % 5 == 0 {
            batch.memberships.push(("Ops".into(), member.clone()));
        }
        if i % 500 == 0 {
            batch.memberships.push(("wheel".into(), member));
        }
    }
    batch
        .memberships
        .push(("admins".into(), BatchMember::Group("wheel".into())));
    batch
        .memberships
        .push(("staff".into(), BatchMember::Group("Ops".into())));
    store.apply_batch(&batch).expect("batch");
    let key = ServerKey::generate();
    for name in ["User0000", "u.1", "u_2"] {
        let id = store.user_by_name(name).expect("read").expect("user").id;
        store
            .add_totp_device(id, "phone", 6, &TotpSecret(vec![7u8; 20]))
            .expect("totp");
        let tokens: Vec<_> = ["tok-one", "tok-two"]
            .iter()
            .map(|t| static_tokens::hash(&key, &format!("{t}-{name}")))
            .collect();
        store
            .add_static_device(id, "paper", &tokens)
            .expect("static");
        store
            .add_app_password(
                id,
                crate::store::CredentialKind::AppPassword,
                "mail",
                None,
                &app_password::hash(&key, &format!("pca_secret_{name}")),
            )
            .expect("app password");
    }
    let base = Dn::parse("dc=example,dc=com").expect("dn");
    let same = |what: &str, streamed: &[u8], reference: &[u8]| {
        let at = streamed
            .iter()
            .zip(reference)
            .position(|(a, b)| a != b)
            .unwrap_or(streamed.len().min(reference.len()));
        assert!(
            streamed == reference,
            "{what}: first difference at byte {at} of {} / {}: {:?} vs {:?}",
            streamed.len(),
            reference.len(),
            String::from_utf8_lossy(
                &streamed[at.saturating_sub(80)..(at + 80).min(streamed.len())]
            ),
            String::from_utf8_lossy(
                &reference[at.saturating_sub(80)..(at + 80).min(reference.len())]
            ),
        );
    };
    let empty = Store::temporary().expect("empty store");
    for (label, s) in [("3000 users", &store), ("empty", &empty)] {
        for with_secrets in [false, true] {
            let mut streamed = Vec::new();
            let n = export::ldif(s, &base, with_secrets, &mut streamed).expect("export");
            let mut reference = Vec::new();
            let m = export::reference::ldif_of(
                s.snapshot().expect("snapshot"),
                &base,
                export::DEFAULT_ADMIN_GROUP,
                with_secrets,
                &mut reference,
            )
            .expect("reference");
            assert_eq!(n, m);
            same(&format!("LDIF of {label}"), &streamed, &reference);
        }
        for with in [export::Secrets::Omit, export::Secrets::Include(Some(&key))] {
            let mut streamed = Vec::new();
            let left_out = export::json(s, with, &mut streamed).expect("export");
            let written: super::Backup = serde_json::from_slice(&streamed).expect("reads back");
            let mut reference = export::backup(s, with).expect("backup");
            reference.created = written.created;
            let mut bytes = serde_json::to_vec_pretty(&reference).expect("json");
            bytes.push(b'\n');
            same(&format!("JSON of {label}"), &streamed, &bytes);
            assert_eq!(left_out, reference.without_secrets());
        }
    }
    assert!(
        store.snapshot().expect("snapshot").users.len() == 3000,
        "the export changed nothing"
    );
}

const DRY_RUN_INPUT: &str = include_str!("../../fixtures/dry-run/input.ldif");

fn dry_run(
    input: &str,
    opts: &ImportOptions,
    listing: Listing,
    dir: &std::path::Path,
) -> Result<Vec<u8>, (import::ImportError, Vec<u8>)> {
    let mut out = Vec::new();
    match import::dry_run(input.as_bytes(), opts, listing, dir, &mut out, &mut |_| {}) {
        Ok(()) => Ok(out),
        Err(e) => Err((e, out)),
    }
}

/// Issue 15: the streamed dry run (no planned user held) prints what the
/// plan held whole renders (a refused import's report, the running
/// server's answer), in both formats, and removes its spill.
#[test]
fn the_streamed_dry_run_lists_what_the_whole_plan_does() {
    let dir = tempfile::tempdir().expect("dir");
    for keep in [vec![], vec!["employeeType".to_string()]] {
        let opts = ImportOptions {
            keep_attributes: keep,
        };
        let plan = import::plan_ldif(&ldif::parse_str(DRY_RUN_INPUT).expect("parses"), &opts);
        assert!(plan.users.len() > 200 && plan.has_errors());
        let text = dry_run(DRY_RUN_INPUT, &opts, Listing::Text, dir.path()).expect("text");
        assert_eq!(String::from_utf8(text).expect("utf-8"), plan.report());
        let json = dry_run(DRY_RUN_INPUT, &opts, Listing::Json, dir.path()).expect("json");
        let whole = serde_json::to_string_pretty(&plan.to_json().expect("json")).expect("json");
        assert_eq!(
            String::from_utf8(json).expect("utf-8"),
            format!("{whole}\n")
        );
    }
    let left = std::fs::read_dir(dir.path()).expect("dir").count();
    assert_eq!(left, 0, "the spill is removed");
}

/// A dry run of input that cannot be read fails before it prints
/// anything, and leaves no spill.
#[test]
fn a_dry_run_of_unreadable_ldif_prints_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let bad = format!("{DRY_RUN_INPUT}\ndn: uid=x,dc=example,dc=org\nno colon here\n");
    for listing in [Listing::Text, Listing::Json] {
        let (e, out) =
            dry_run(&bad, &ImportOptions::default(), listing, dir.path()).expect_err("unreadable");
        assert!(matches!(e, import::ImportError::Ldif(_)), "{e}");
        assert!(out.is_empty(), "printed {} bytes", out.len());
    }
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}
