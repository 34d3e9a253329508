//! The offline LDIF import on sled, written while the file is still read
//! (issue 15): what the overlap makes new. Users land in the store before
//! the plan is known, so a plan refused at its end, a store conflict found
//! mid-stream and a file that cannot be read to its end must each leave
//! the store as it was; and users whose uidNumber is allocated still get
//! numbers past every kept one, wherever those come in the file.

use super::export::{self, Secrets};
use super::import::{self, ImportError, ImportOptions, Progress, Streamed};
use crate::auth::password::Hasher;
use crate::store::{Member, NewUser, Store, StoreError};
use serde_json::Value;
use std::path::Path;

/// Users of the large files: enough that chunks are written while the
/// file is still read (the hand-off holds some 5,000 users, a chunk some
/// 1,700).
const MANY: usize = 11_000;
const BASE: &str = "dc=example,dc=com";
const HASH: &str = "{SSHA}NSZEu/ZzEMKdBO5ESNEYml3qKRYBAgMEBQYHCA==";

fn name(i: usize) -> String {
    format!("u{i:05}")
}

fn user(name: &str, uid: Option<u32>, mail: Option<&str>) -> String {
    let mut e = format!(
        "dn: uid={name},ou=people,{BASE}\nobjectClass: inetOrgPerson\n\
         objectClass: posixAccount\nuid: {name}\ncn: {name}\nsn: {name}\n\
         homeDirectory: /home/{name}\nuserPassword: {HASH}\n"
    );
    if let Some(n) = uid {
        e.push_str(&format!("uidNumber: {n}\ngidNumber: {n}\n"));
    }
    if let Some(m) = mail {
        e.push_str(&format!("mail: {m}\n"));
    }
    e + "\n"
}

fn group(name: &str, members: &[String]) -> String {
    let mut e = format!("dn: cn={name},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {name}\n");
    for m in members {
        e.push_str(&format!("member: uid={m},ou=people,{BASE}\n"));
    }
    e + "\n"
}

/// `MANY` users with kept uidNumbers and emails, `last` at the end.
fn many(mail_of: impl Fn(usize) -> String, last: &str) -> String {
    let mut ldif = String::new();
    for i in 1..=MANY {
        ldif.push_str(&user(&name(i), Some(10_000 + i as u32), Some(&mail_of(i))));
    }
    ldif.push_str(&group("staff", &[name(1), name(MANY)]));
    ldif + last
}

fn mail(i: usize) -> String {
    format!("{}@example.com", name(i))
}

/// A store holding user `old` (old@example.com) in group `staff`.
fn seeded() -> Store {
    let store = Store::temporary().expect("store");
    let old = store
        .create_user(NewUser {
            username: "old".into(),
            email: Some("old@example.com".into()),
            ..NewUser::default()
        })
        .expect("old");
    let staff = store.create_group("staff", None).expect("staff");
    store
        .add_member(staff.id, Member::User(old.id))
        .expect("member");
    store
}

/// The store's JSON backup without its `created`.
fn comparable(store: &Store) -> Value {
    let mut out = Vec::new();
    export::json(store, Secrets::Omit, &mut out).expect("export");
    let mut doc: Value = serde_json::from_slice(&out).expect("backup");
    doc.as_object_mut().expect("object").remove("created");
    doc
}

fn files(dir: &Path) -> usize {
    std::fs::read_dir(dir).expect("dir").count()
}

/// Imports `ldif` offline (the CLI's streamed import). Once the reading
/// is well past the first users of a large file (`MANY` entries less
/// 1,000), checks that the first of them is already in the store: the
/// overlap this file tests.
fn import(store: &Store, dir: &Path, ldif: &str, force: bool) -> Result<Streamed, ImportError> {
    let mut seen_early = None;
    let out = import::import_streamed(
        store,
        ldif.as_bytes(),
        &ImportOptions::default(),
        &Hasher::for_tests(),
        dir,
        force,
        &mut |p: Progress| {
            if p.stage == "reading" && p.done == MANY - 1000 {
                seen_early = Some(store.user_by_name(&name(1)).expect("store").is_some());
            }
        },
    );
    assert_ne!(
        seen_early,
        Some(false),
        "the first users are written while the file is read"
    );
    out
}

#[test]
fn a_plan_refused_at_its_end_leaves_the_store_as_it_was() {
    // The error is found last: a member nobody is, resolved once the
    // whole file is read, after thousands of users were written.
    let ghost = group("late", &["ghost".to_string()]);
    for store in [Store::temporary().expect("store"), seeded()] {
        let dir = tempfile::tempdir().expect("dir");
        let before = comparable(&store);
        let Streamed::Refused(plan) =
            import(&store, dir.path(), &many(mail, &ghost), false).expect("import")
        else {
            panic!("the plan has an error");
        };
        assert_eq!(plan.users_streamed, MANY);
        assert!(plan.report().contains("ghost"), "{}", plan.report());
        assert_eq!(comparable(&store), before, "nothing written");
        assert_eq!(files(dir.path()), 0, "no spill left");

        // The import goes through afterwards, with --force or without the
        // error.
        let Streamed::Done(report) =
            import(&store, dir.path(), &many(mail, &ghost), true).expect("import")
        else {
            panic!("forced");
        };
        assert_eq!(report.batch.users_created.len(), MANY);
        assert_eq!(
            store
                .user_by_name(&name(MANY))
                .expect("store")
                .expect("user")
                .uid_number,
            10_000 + MANY as u32
        );
        assert_eq!(files(dir.path()), 0);
    }
}

#[test]
fn a_conflict_with_a_stored_user_found_mid_stream_undoes_everything() {
    // A user near the end of the file, after thousands were written,
    // takes old's email (the plan cannot know: only the store can).
    let clash = |i| {
        if i == MANY - 100 {
            "OLD@example.com".to_string()
        } else {
            mail(i)
        }
    };
    let store = seeded();
    let dir = tempfile::tempdir().expect("dir");
    let before = comparable(&store);
    let err = import(&store, dir.path(), &many(clash, ""), false).expect_err("conflict");
    assert!(
        matches!(err, ImportError::Store(StoreError::AlreadyExists(_))),
        "{err}"
    );
    assert!(err.to_string().contains(&name(MANY - 100)), "{err}");
    assert_eq!(comparable(&store), before, "nothing written");
    assert_eq!(files(dir.path()), 0);

    // With an error in the plan as well, the plan is refused, as when
    // nothing was written before the plan was whole.
    let ghost = group("late", &["ghost".to_string()]);
    let refused = import(&store, dir.path(), &many(clash, &ghost), false).expect("import");
    assert!(matches!(refused, Streamed::Refused(_)));
    assert_eq!(comparable(&store), before);

    // And the file without the clash imports.
    let done = import(&store, dir.path(), &many(mail, ""), false).expect("import");
    assert!(matches!(done, Streamed::Done(_)));
    assert_eq!(store.users().expect("users").len(), MANY + 1);
}

#[test]
fn a_file_unreadable_at_its_end_leaves_the_store_as_it_was() {
    let broken = format!("dn: cn=broken,ou=groups,{BASE}\ndescription:: !!!\n\n");
    for store in [Store::temporary().expect("store"), seeded()] {
        let dir = tempfile::tempdir().expect("dir");
        let before = comparable(&store);
        let err = import(&store, dir.path(), &many(mail, &broken), true).expect_err("broken");
        assert!(matches!(err, ImportError::Ldif(_)), "{err}");
        assert_eq!(comparable(&store), before);
        assert_eq!(files(dir.path()), 0);
    }
}

#[test]
fn allocated_numbers_go_past_every_kept_one_even_one_later_in_the_file() {
    // Users with kept numbers first (written while the file is read),
    // then one to number, kept numbers after it (the highest last), and
    // groups with and without a gidNumber.
    let mut ldif = String::new();
    let mut order = Vec::new();
    for i in 1..=3000 {
        ldif.push_str(&user(&name(i), Some(4000 + i as u32), None));
        order.push(name(i));
    }
    for (n, uid) in [
        ("a", None),
        ("b", Some(50_000)),
        ("c", None),
        ("d", Some(60_000)),
    ] {
        ldif.push_str(&user(n, uid, None));
        order.push(n.to_string());
    }
    ldif.push_str(&group("staff", &["a".to_string(), "d".to_string()]));
    ldif.push_str(&format!(
        "dn: cn=fixed,ou=groups,{BASE}\nobjectClass: posixGroup\ncn: fixed\ngidNumber: 9000\n\n"
    ));
    for (seeded, store) in [
        (false, Store::temporary().expect("store")),
        (true, seeded()),
    ] {
        let dir = tempfile::tempdir().expect("dir");
        let Streamed::Done(report) = import(&store, dir.path(), &ldif, false).expect("import")
        else {
            panic!("no errors");
        };
        assert_eq!(report.batch.users_created, order, "in file order");
        let number = |n: &str| {
            let u = store.user_by_name(n).expect("store").expect("user");
            (u.uid_number, u.gid_number)
        };
        assert_eq!(number("a"), (60_001, 60_001));
        assert_eq!(number("b"), (50_000, 50_000));
        assert_eq!(number("c"), (60_002, 60_002));
        assert_eq!(number("d"), (60_000, 60_000));
        assert_eq!(number(&name(3000)), (7000, 7000));
        let gid = |n: &str| store.group_by_name(n).expect("store").expect("group");
        assert_eq!(gid("fixed").gid_number, 9000);
        let staff = gid("staff");
        let members = store.members(staff.id).expect("members").len();
        if seeded {
            assert_eq!((members, staff.gid_number), (3, 4000), "merged");
        } else {
            // Past the kept gidNumbers, as before.
            assert_eq!((members, staff.gid_number), (2, 9001));
        }
        assert_eq!(files(dir.path()), 0);
    }
}

#[test]
fn once_the_plan_has_an_error_no_more_users_are_written() {
    // u00002 twice, the second time third in the file: an error, so the
    // import will be refused, and the users after it are not written
    // (without the error, u00003 would be in the store long before the
    // end of the file).
    let ldif = user(&name(2), Some(10_002), Some(&mail(2))) + &many(mail, "");
    let store = seeded();
    let dir = tempfile::tempdir().expect("dir");
    let before = comparable(&store);
    let mut seen = None;
    let out = import::import_streamed(
        &store,
        ldif.as_bytes(),
        &ImportOptions::default(),
        &Hasher::for_tests(),
        dir.path(),
        false,
        &mut |p: Progress| {
            if p.stage == "reading" && p.done == MANY - 1000 {
                seen = Some(store.user_by_name(&name(3)).expect("store").is_some());
            }
        },
    )
    .expect("import");
    assert_eq!(seen, Some(false), "not written");
    let Streamed::Refused(plan) = out else {
        panic!("the plan has an error");
    };
    assert!(
        plan.report().contains("duplicate username"),
        "{}",
        plan.report()
    );
    assert_eq!(comparable(&store), before);
    assert_eq!(files(dir.path()), 0);

    // Forced, the duplicate is left out and the rest is written.
    let Streamed::Done(report) = import(&store, dir.path(), &ldif, true).expect("import") else {
        panic!("forced");
    };
    assert_eq!(report.batch.users_created.len(), MANY);
}
