//! The streamed restore of a JSON backup (the offline CLI's, issue 15)
//! against the restore of the document held whole: the same store, the
//! same report, all or nothing, and nothing left in the spill directory.

use super::export::{self, Secrets};
use super::import::{self, ImportError, RestoreReport};
use crate::auth::keys::ServerKey;
use crate::store::conformance::{Harness, SledHarness};
use crate::store::postgres::testing::PgHarness;
use crate::store::{GroupPolicy, Member, MfaPolicy, NewUser, Store, TotpSecret};
use serde_json::Value;
use std::path::Path;

/// Users with every kind of second factor (a used TOTP step, a used
/// static token, app passwords), legacy and argon2 hashes, emails,
/// attributes; nested groups with members, a policy and a portal
/// attribute; settings; allocators past a deleted user.
fn store_with_everything(key: &ServerKey) -> Store {
    let store = Store::temporary().expect("store");
    let staff = store.create_group("staff", None).expect("staff");
    let devs = store
        .create_group("devs", Some("Developers".into()))
        .expect("devs");
    store
        .add_member(staff.id, Member::Group(devs.id))
        .expect("nested");
    for i in 0..40 {
        let u = store
            .create_user(NewUser {
                username: format!("User.{i:02}"),
                full_name: Some(format!("User number {i}")),
                email: (i % 3 != 0).then(|| format!("user{i}@example.org")),
            })
            .expect("user");
        let hash = if i % 2 == 0 {
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
        } else {
            "{SSHA}mUQ0Y5bZZgoFKpNvVbMWJtJmHmFzYWx0"
        };
        store.set_password_hash(u.id, hash).expect("pw");
        store
            .add_member(
                if i % 2 == 0 { staff.id } else { devs.id },
                Member::User(u.id),
            )
            .expect("member");
        if i % 5 == 0 {
            store
                .update_user(u.id, &|u| {
                    u.attrs.insert("loginShell".into(), "/bin/zsh".into());
                    Ok(())
                })
                .expect("attr");
        }
        if i % 7 == 0 {
            let tokens = ["one", "two", "three"].map(|t| format!("{t}-{i}"));
            super::tests::add_second_factors(
                &store,
                u.id,
                key,
                TotpSecret(vec![i as u8 + 1; 20]),
                &tokens.each_ref().map(String::as_str),
                &format!("pca_secret{i}"),
            );
        }
    }
    let gone = store
        .create_user(NewUser {
            username: "gone".into(),
            ..NewUser::default()
        })
        .expect("gone");
    store.delete_user(gone.id).expect("delete");
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
        .set_group_attr(
            devs.id,
            "goauthentik.io/user/can-change-email",
            Some("true"),
        )
        .expect("group attr");
    store
        .set_setting(crate::store::mfa::SETTING_MFA_POLICY, "if-enrolled")
        .expect("global policy");
    store
        .set_setting("portal.title", "Example")
        .expect("setting");
    store
}

fn backup_of(store: &Store, key: &ServerKey) -> Vec<u8> {
    let mut out = Vec::new();
    export::json(store, Secrets::Include(Some(key)), &mut out).expect("export");
    out
}

/// A backup document without its `created`, to compare two stores.
fn comparable(store: &Store, key: &ServerKey) -> Value {
    let mut doc: Value = serde_json::from_slice(&backup_of(store, key)).expect("backup");
    doc.as_object_mut().expect("object").remove("created");
    doc
}

/// The files of `dir` (the spill's directory).
fn files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn streamed(store: &Store, doc: &[u8], dir: &Path) -> Result<RestoreReport, ImportError> {
    let read = import::read_backup_streamed(doc, dir);
    let backup = read?;
    import::restore_streamed(store, backup, false)
}

#[test]
fn a_streamed_restore_writes_what_the_whole_one_writes() {
    streamed_equals_whole(&mut SledHarness::default());
}

#[test]
fn a_streamed_restore_into_postgresql_writes_what_the_whole_one_writes() {
    streamed_equals_whole(&mut PgHarness::default());
}

/// A backup of a store with everything, restored whole into one store
/// of `h` and streamed into another: the same reports, and exports equal
/// to the source's but for their `created`; so again over the restored
/// stores.
fn streamed_equals_whole(h: &mut impl Harness) {
    let key = ServerKey::generate();
    let source = store_with_everything(&key);
    let doc = backup_of(&source, &key);
    let dir = tempfile::tempdir().expect("tmp");

    let whole = h.fresh();
    let backup = import::read_backup(doc.as_slice()).expect("read");
    let whole_report = import::restore(&whole, &backup, false).expect("whole restore");

    let spilled = import::read_backup_streamed(doc.as_slice(), dir.path()).expect("read");
    assert_eq!(
        spilled.needs_server_key(),
        import::needs_server_key(&backup)
    );
    assert!(spilled.needs_server_key());
    assert_eq!(
        import::backup_server_key(spilled.head()).expect("key"),
        Some(key.clone())
    );
    assert!(spilled.head().users.is_empty(), "the users are spilled");
    let spill = files(dir.path());
    assert_eq!(spill.len(), 1);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join(&spill[0]))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the spill holds hashes");
    let restored = h.fresh();
    let report = import::restore_streamed(&restored, spilled, false).expect("streamed restore");
    assert!(files(dir.path()).is_empty(), "the spill is removed");

    assert_eq!(report, whole_report);
    assert_eq!(report.batch.users_created.len(), 40);
    assert!(report.batch.devices_restored > 0 && report.batch.app_passwords_restored > 0);
    let expected = comparable(&source, &key);
    assert_eq!(comparable(&whole, &key), expected);
    assert_eq!(comparable(&restored, &key), expected);

    // Again over what it wrote: the same report as the whole restore's
    // second run (nothing to do), the same store.
    let again = streamed(&restored, &doc, dir.path()).expect("again");
    let whole_again = import::restore(&whole, &backup, false).expect("whole again");
    assert_eq!(again, whole_again);
    assert!(again.batch.users_created.is_empty() && again.batch.memberships_added == 0);
    assert_eq!(comparable(&restored, &key), expected);
    assert!(files(dir.path()).is_empty());
}

/// The backup's fields with the users first and `format` and `version`
/// last (the export writes them the other way round).
const USERS_FIRST: [&str; 9] = [
    "users",
    "counters",
    "groups",
    "settings",
    "server_key",
    "secrets",
    "created",
    "version",
    "format",
];

/// The export's document with its fields in `order`.
fn reordered(doc: &[u8], order: &[&str]) -> Vec<u8> {
    let doc: Value = serde_json::from_slice(doc).expect("backup");
    let fields: Vec<String> = order
        .iter()
        .filter_map(|k| doc.get(*k).map(|v| format!("{k:?}: {v}")))
        .collect();
    assert_eq!(fields.len(), doc.as_object().expect("object").len());
    format!("{{{}}}", fields.join(",\n")).into_bytes()
}

/// The fields in another order than our export's (users first, the
/// header and the server key last) restore the same store.
#[test]
fn a_backup_in_another_field_order_restores_the_same() {
    let key = ServerKey::generate();
    let source = store_with_everything(&key);
    let doc = backup_of(&source, &key);
    let other = reordered(&doc, &USERS_FIRST);
    assert_ne!(other, doc);
    let dir = tempfile::tempdir().expect("tmp");
    let whole = Store::temporary().expect("whole");
    let whole_report = import::json(&whole, doc.as_slice()).expect("whole");
    let restored = Store::temporary().expect("restored");
    let spilled = import::read_backup_streamed(other.as_slice(), dir.path()).expect("read");
    assert_eq!(
        import::backup_server_key(spilled.head()).expect("key"),
        Some(key.clone())
    );
    let report = import::restore_streamed(&restored, spilled, false).expect("restore");
    assert_eq!(report, whole_report);
    assert_eq!(comparable(&restored, &key), comparable(&source, &key));
}

/// `doc` with its first group member (a user) replaced by a stranger.
fn stranger(doc: &str) -> String {
    let at = doc.find("\"user\": \"").expect("a user member") + 9;
    let zero = "00000000-0000-0000-0000-000000000000";
    format!("{}{zero}{}", &doc[..at], &doc[at + zero.len()..])
}

/// A document that does not read, or is refused, writes nothing and
/// leaves no spill; so does a batch the store refuses.
#[test]
fn a_broken_or_refused_backup_writes_nothing() {
    let key = ServerKey::generate();
    let source = store_with_everything(&key);
    let doc = backup_of(&source, &key);
    let text = String::from_utf8(doc.clone()).expect("utf8");
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::temporary().expect("store");
    let mut refused = vec![
        // Cut in the users, in the groups, before the end.
        doc[..doc.len() / 3].to_vec(),
        doc[..text.find("\"groups\"").expect("groups") + 20].to_vec(),
        doc[..doc.len() - 2].to_vec(),
        // Malformed in the middle of the users, and after the end.
        text.replacen("\"uid_number\": ", "\"uid_number\": x", 1)
            .into_bytes(),
        [doc.as_slice(), b" {}"].concat(),
        // Not a backup, or a newer one: with the header first (refused
        // before the first user) or last.
        text.replacen("portcullis-backup", "other-backup", 1)
            .into_bytes(),
        text.replacen("\"version\": 2", "\"version\": 3", 1)
            .into_bytes(),
        reordered(
            &text
                .replacen("\"version\": 2", "\"version\": 3", 1)
                .into_bytes(),
            &USERS_FIRST,
        ),
        // A TOTP device this server cannot verify.
        text.replacen("\"SHA1\"", "\"SHA256\"", 1).into_bytes(),
        // A group member that is not in the backup (found after the
        // users were read).
        stranger(&text).into_bytes(),
    ];
    refused.push(text.replacen("{", "[", 1).into_bytes());
    for (i, bad) in refused.iter().enumerate() {
        let err = streamed(&store, bad, dir.path()).expect_err(&format!("document {i}"));
        assert!(matches!(err, ImportError::Json(_)), "document {i}: {err:?}");
        assert!(store.users().expect("users").is_empty(), "document {i}");
        assert!(store.groups().expect("groups").is_empty(), "document {i}");
        assert!(files(dir.path()).is_empty(), "document {i}");
    }

    // A conflict found while the users are written (another User.07 in
    // the store) undoes the users written before it.
    let other = Store::temporary().expect("other");
    other
        .create_user(NewUser {
            username: "user.07".into(),
            ..NewUser::default()
        })
        .expect("user.07");
    let before = comparable(&other, &key);
    let err = streamed(&other, &doc, dir.path()).expect_err("conflict");
    assert!(matches!(err, ImportError::Store(_)), "{err:?}");
    assert_eq!(comparable(&other, &key), before, "left as it was");
    assert!(files(dir.path()).is_empty());
}
