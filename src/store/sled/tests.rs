//! Unit tests of the sled store.

use super::*;
use crate::store::NewUser;
use uuid::Uuid;

fn store() -> SledStore {
    SledStore::temporary().expect("temporary store")
}

fn new_user(name: &str) -> NewUser {
    NewUser {
        username: name.into(),
        ..NewUser::default()
    }
}

fn user_with_email(store: &SledStore, name: &str, email: &str) -> User {
    store
        .create_user(NewUser {
            username: name.into(),
            full_name: Some(format!("{name} Example")),
            email: Some(email.into()),
        })
        .expect("create user")
}

fn user(store: &SledStore, name: &str) -> User {
    store.create_user(new_user(name)).expect("create user")
}

fn group(store: &SledStore, name: &str) -> Group {
    store.create_group(name, None).expect("create group")
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Number of entries in each membership direction that mention `id`.
fn membership_entries_mentioning(store: &SledStore, id: Uuid) -> usize {
    let bytes = id.as_bytes();
    let mentions = |tree: &Tree| {
        tree.iter()
            .keys()
            .map(|k| k.expect("key"))
            .filter(|k| k.windows(16).any(|w| w == bytes))
            .count()
    };
    mentions(&store.t.members) + mentions(&store.t.member_of)
}

#[test]
fn create_and_look_up_case_insensitively() {
    let s = store();
    let alice = user_with_email(&s, "Alice", "Alice@Example.COM");
    assert_eq!(alice.username, "Alice");
    assert_eq!(alice.uid_number, FIRST_UID_NUMBER);
    assert_eq!(alice.gid_number, alice.uid_number);
    assert!(!alice.disabled);
    assert_eq!(alice.cred_generation, 0);
    assert_eq!(alice.pwd_changed, None);
    assert_eq!(alice.created, alice.modified);

    assert_eq!(s.user(alice.id).unwrap(), Some(alice.clone()));
    assert_eq!(s.user_by_name("alice").unwrap(), Some(alice.clone()));
    assert_eq!(s.user_by_name("ALICE").unwrap(), Some(alice.clone()));
    assert_eq!(
        s.user_by_email("alice@example.com").unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        s.user_by_uid_number(FIRST_UID_NUMBER).unwrap(),
        Some(alice.clone())
    );
    assert_eq!(s.user_by_name("bob").unwrap(), None);
    assert_eq!(s.user_by_name("not a valid name").unwrap(), None);
    assert_eq!(s.user_by_email("bob@example.com").unwrap(), None);
    assert_eq!(s.user_by_uid_number(FIRST_UID_NUMBER + 1).unwrap(), None);
    assert_eq!(s.user(UserId(Uuid::new_v4())).unwrap(), None);

    let admins = s
        .create_group("Admins", Some("People who run it".into()))
        .unwrap();
    assert_eq!(admins.gid_number, FIRST_GID_NUMBER);
    assert_eq!(s.group_by_name("admins").unwrap(), Some(admins.clone()));
    assert_eq!(s.group_by_name("ADMINS").unwrap(), Some(admins.clone()));
    assert_eq!(
        s.group_by_gid_number(FIRST_GID_NUMBER).unwrap(),
        Some(admins.clone())
    );
    assert_eq!(s.group(admins.id).unwrap(), Some(admins));
    assert_eq!(s.group_by_name("users").unwrap(), None);
}

#[test]
fn users_and_groups_are_listed_by_lowercase_name() {
    let s = store();
    for name in ["carol", "Bob", "alice", "Dave"] {
        user(&s, name);
        group(&s, name);
    }
    let names: Vec<_> = s.users().unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(names, ["alice", "Bob", "carol", "Dave"]);
    let names: Vec<_> = s.groups().unwrap().into_iter().map(|g| g.name).collect();
    assert_eq!(names, ["alice", "Bob", "carol", "Dave"]);
    assert_eq!(s.user_count().unwrap(), 4);
}

#[test]
fn duplicates_are_refused() {
    let s = store();
    user_with_email(&s, "alice", "alice@example.com");
    let err = s.create_user(new_user("ALICE")).unwrap_err();
    assert!(
        matches!(&err, StoreError::AlreadyExists(m) if m == "user ALICE"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "user ALICE already exists");

    let err = s
        .create_user(NewUser {
            username: "alice2".into(),
            email: Some("ALICE@example.com".into()),
            ..NewUser::default()
        })
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::AlreadyExists(m) if m.starts_with("email ")),
        "{err:?}"
    );
    // A refused user leaves nothing behind and uses up no number.
    assert_eq!(s.user_by_name("alice2").unwrap(), None);
    assert_eq!(s.user_count().unwrap(), 1);
    assert_eq!(user(&s, "bob").uid_number, FIRST_UID_NUMBER + 1);

    group(&s, "staff");
    let err = s.create_group("Staff", None).unwrap_err();
    assert!(
        matches!(&err, StoreError::AlreadyExists(m) if m == "group Staff"),
        "{err:?}"
    );
    // Users and groups are separate name spaces.
    group(&s, "alice");
}

#[test]
fn invalid_input_is_refused() {
    let s = store();
    for bad in ["", ".x", "a b", "a,b", "é", &"a".repeat(65)] {
        assert!(
            matches!(s.create_user(new_user(bad)), Err(StoreError::Invalid(_))),
            "{bad:?}"
        );
        assert!(
            matches!(s.create_group(bad, None), Err(StoreError::Invalid(_))),
            "{bad:?}"
        );
    }
    let bad_email = NewUser {
        username: "x".into(),
        email: Some("two@at@signs".into()),
        ..NewUser::default()
    };
    assert!(matches!(
        s.create_user(bad_email),
        Err(StoreError::Invalid(_))
    ));
    let bad_name = NewUser {
        username: "x".into(),
        full_name: Some("line\nbreak".into()),
        ..NewUser::default()
    };
    assert!(matches!(
        s.create_user(bad_name),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.create_group("g", Some(String::new())),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.user_count().unwrap(), 0);
    assert!(s.groups().unwrap().is_empty());
}

#[test]
fn uid_numbers_count_up_and_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        let a = user(&s, "a");
        let b = user(&s, "b");
        let c = user(&s, "c");
        assert_eq!(
            [a.uid_number, b.uid_number, c.uid_number],
            [2000, 2001, 2002]
        );
        s.delete_user(c.id).unwrap();
        s.delete_user(b.id).unwrap();
        assert_eq!(user(&s, "d").uid_number, 2003);
        assert_eq!(user(&s, "b").uid_number, 2004);
        s.flush().unwrap();
    }
    let s = SledStore::open(dir.path()).unwrap();
    let e = user(&s, "e");
    assert_eq!(e.uid_number, 2005);
    s.delete_user(e.id).unwrap();
    s.flush().unwrap();
    drop(s);
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(user(&s, "f").uid_number, 2006);
}

#[test]
fn gid_numbers_count_up_from_4000_and_are_never_reused() {
    let s = store();
    let g1 = group(&s, "g1");
    let g2 = group(&s, "g2");
    assert_eq!([g1.gid_number, g2.gid_number], [4000, 4001]);
    s.delete_group(g2.id).unwrap();
    assert_eq!(group(&s, "g3").gid_number, 4002);
    // Users keep their own counter.
    assert_eq!(user(&s, "u").uid_number, 2000);
}

#[test]
fn uid_and_gid_ranges_never_collide() {
    let s = store();
    let g = group(&s, "g");
    assert_eq!(g.gid_number, 4000);
    // Pretend 2000 users came and went: the next uid would be 4000, which is
    // the gidNumber of group `g`, so the user's private gid would name `g`.
    s.t.meta
        .insert(META_NEXT_UID, &keys::number_key(4000))
        .unwrap();
    let u = user(&s, "u");
    assert_eq!(u.uid_number, 4001);
    assert_eq!(u.gid_number, 4001);
    // And the group counter steps over that user's number.
    assert_eq!(group(&s, "h").gid_number, 4002);
}

#[test]
fn memberships_in_both_directions() {
    let s = store();
    let alice = user(&s, "alice");
    let bob = user(&s, "bob");
    let staff = group(&s, "staff");
    let admins = group(&s, "admins");

    assert!(s.add_member(staff.id, Member::User(alice.id)).unwrap());
    assert!(!s.add_member(staff.id, Member::User(alice.id)).unwrap());
    assert!(s.add_member(staff.id, Member::User(bob.id)).unwrap());
    assert!(s.add_member(admins.id, Member::User(alice.id)).unwrap());
    assert!(s.add_member(staff.id, Member::Group(admins.id)).unwrap());

    let members = s.members(staff.id).unwrap();
    // Child groups first, then users.
    assert_eq!(members[0], Member::Group(admins.id));
    assert_eq!(
        sorted(members),
        sorted(vec![
            Member::User(alice.id),
            Member::User(bob.id),
            Member::Group(admins.id)
        ])
    );
    assert_eq!(
        sorted(s.groups_of(Member::User(alice.id)).unwrap()),
        sorted(vec![staff.id, admins.id])
    );
    assert_eq!(s.groups_of(Member::User(bob.id)).unwrap(), vec![staff.id]);
    assert_eq!(
        s.groups_of(Member::Group(admins.id)).unwrap(),
        vec![staff.id]
    );
    assert!(s.groups_of(Member::Group(staff.id)).unwrap().is_empty());

    assert!(s.remove_member(staff.id, Member::User(bob.id)).unwrap());
    assert!(!s.remove_member(staff.id, Member::User(bob.id)).unwrap());
    assert!(s.groups_of(Member::User(bob.id)).unwrap().is_empty());
    assert!(!s.members(staff.id).unwrap().contains(&Member::User(bob.id)));
}

#[test]
fn add_member_needs_both_ends() {
    let s = store();
    let alice = user(&s, "alice");
    let staff = group(&s, "staff");
    let ghost_group = GroupId(Uuid::new_v4());
    let ghost_user = UserId(Uuid::new_v4());
    assert!(matches!(
        s.add_member(ghost_group, Member::User(alice.id)),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.add_member(staff.id, Member::User(ghost_user)),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.add_member(staff.id, Member::Group(ghost_group)),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.remove_member(ghost_group, Member::User(alice.id)),
        Err(StoreError::NotFound(_))
    ));
    assert!(s.members(staff.id).unwrap().is_empty());
}

#[test]
fn add_and_remove_member_touch_the_group() {
    let s = store();
    let alice = user(&s, "alice");
    let staff = group(&s, "staff");
    let old = now() - 1000;
    // Backdate so the change is visible with second resolution.
    s.t.groups
        .insert(
            keys::group_key(staff.id),
            encode(
                "group",
                &Group {
                    modified: old,
                    ..staff.clone()
                },
            )
            .unwrap(),
        )
        .unwrap();
    s.add_member(staff.id, Member::User(alice.id)).unwrap();
    assert!(s.group(staff.id).unwrap().unwrap().modified > old);
}

#[test]
fn deleting_a_user_leaves_nothing_dangling() {
    let s = store();
    let alice = user_with_email(&s, "alice", "alice@example.com");
    let staff = group(&s, "staff");
    let admins = group(&s, "admins");
    s.add_member(staff.id, Member::User(alice.id)).unwrap();
    s.add_member(admins.id, Member::User(alice.id)).unwrap();
    s.set_password_hash(alice.id, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
        .unwrap();

    s.delete_user(alice.id).unwrap();
    assert_eq!(s.user(alice.id).unwrap(), None);
    assert_eq!(s.user_by_name("alice").unwrap(), None);
    assert_eq!(s.user_by_email("alice@example.com").unwrap(), None);
    assert_eq!(s.user_by_uid_number(alice.uid_number).unwrap(), None);
    assert_eq!(s.password_hash(alice.id).unwrap(), None);
    assert!(s.members(staff.id).unwrap().is_empty());
    assert!(s.members(admins.id).unwrap().is_empty());
    assert!(s.groups_of(Member::User(alice.id)).unwrap().is_empty());
    assert_eq!(membership_entries_mentioning(&s, alice.id.0), 0);
    assert!(s.t.idx_username.is_empty() && s.t.idx_email.is_empty() && s.t.idx_uid.is_empty());
    assert!(s.t.credentials.is_empty());
    assert!(matches!(
        s.delete_user(alice.id),
        Err(StoreError::NotFound(_))
    ));

    // The name and email are free again (the uid number is not).
    let again = user_with_email(&s, "alice", "alice@example.com");
    assert_ne!(again.uid_number, alice.uid_number);
    assert!(s.groups_of(Member::User(again.id)).unwrap().is_empty());
}

#[test]
fn deleting_a_group_leaves_nothing_dangling() {
    let s = store();
    let alice = user(&s, "alice");
    let parent = group(&s, "parent");
    let middle = group(&s, "middle");
    let child = group(&s, "child");
    s.add_member(parent.id, Member::Group(middle.id)).unwrap();
    s.add_member(middle.id, Member::Group(child.id)).unwrap();
    s.add_member(middle.id, Member::User(alice.id)).unwrap();
    s.add_member(child.id, Member::User(alice.id)).unwrap();

    s.delete_group(middle.id).unwrap();
    assert_eq!(s.group(middle.id).unwrap(), None);
    assert_eq!(s.group_by_name("middle").unwrap(), None);
    assert_eq!(s.group_by_gid_number(middle.gid_number).unwrap(), None);
    assert!(s.members(parent.id).unwrap().is_empty());
    assert!(s.groups_of(Member::Group(child.id)).unwrap().is_empty());
    assert_eq!(s.groups_of(Member::User(alice.id)).unwrap(), vec![child.id]);
    assert_eq!(s.members(child.id).unwrap(), vec![Member::User(alice.id)]);
    assert_eq!(membership_entries_mentioning(&s, middle.id.0), 0);
    assert!(matches!(
        s.delete_group(middle.id),
        Err(StoreError::NotFound(_))
    ));

    s.delete_group(child.id).unwrap();
    s.delete_user(alice.id).unwrap();
    assert!(s.t.members.is_empty() && s.t.member_of.is_empty());
}

#[test]
fn cycles_are_refused() {
    let s = store();
    let a = group(&s, "a");
    let b = group(&s, "b");
    let c = group(&s, "c");

    let err = s.add_member(a.id, Member::Group(a.id)).unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("would create a cycle")),
        "{err:?}"
    );

    // a ∋ b; b ∋ a would close a 2-cycle.
    s.add_member(a.id, Member::Group(b.id)).unwrap();
    let err = s.add_member(b.id, Member::Group(a.id)).unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m == "adding group a to b would create a cycle"),
        "{err:?}"
    );

    // a ∋ b ∋ c; c ∋ a would close a 3-cycle.
    s.add_member(b.id, Member::Group(c.id)).unwrap();
    let err = s.add_member(c.id, Member::Group(a.id)).unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("would create a cycle")),
        "{err:?}"
    );

    // A diamond is not a cycle: a ∋ c directly as well.
    assert!(s.add_member(a.id, Member::Group(c.id)).unwrap());
    assert!(s.groups_of(Member::Group(a.id)).unwrap().is_empty());
}

#[test]
fn concurrent_opposite_nesting_cannot_build_a_cycle() {
    let s = store();
    for round in 0..50 {
        let a = group(&s, &format!("a{round}"));
        let b = group(&s, &format!("b{round}"));
        let results: Vec<bool> = std::thread::scope(|scope| {
            let one = scope.spawn(|| s.add_member(a.id, Member::Group(b.id)).is_ok());
            let two = scope.spawn(|| s.add_member(b.id, Member::Group(a.id)).is_ok());
            vec![one.join().unwrap(), two.join().unwrap()]
        });
        assert_eq!(
            results.iter().filter(|ok| **ok).count(),
            1,
            "round {round}: {results:?}"
        );
    }
}

#[test]
fn concurrent_delete_and_add_member_leave_nothing_dangling() {
    let s = store();
    let staff = group(&s, "staff");
    for round in 0..50 {
        let u = user(&s, &format!("u{round}"));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let _ = s.add_member(staff.id, Member::User(u.id));
            });
            scope.spawn(|| s.delete_user(u.id).unwrap());
        });
        assert_eq!(
            membership_entries_mentioning(&s, u.id.0),
            0,
            "round {round}"
        );
    }
    assert!(s.members(staff.id).unwrap().is_empty());
}

/// The epoch readers see (kept in memory) moves with every committed
/// change of memberships or names, exactly as the stored one does, and
/// stays put for writes that change neither.
#[test]
fn membership_epoch_follows_every_membership_and_name_change() {
    let s = store();
    let staff = group(&s, "staff");
    let ops = group(&s, "ops");
    let alice = user(&s, "alice");
    let bob = user(&s, "bob");
    let epochs = |s: &SledStore| (s.membership_epoch().unwrap(), s.stored_epoch().unwrap());
    let moved = |what: &str, change: &dyn Fn()| {
        let (mem, stored) = epochs(&s);
        change();
        assert_eq!(epochs(&s), (mem + 1, stored + 1), "{what}");
    };
    let still = |what: &str, change: &dyn Fn()| {
        let before = epochs(&s);
        change();
        assert_eq!(epochs(&s), before, "{what}");
    };
    moved("add a user", &|| {
        s.add_member(staff.id, Member::User(alice.id)).unwrap();
    });
    moved("add a group", &|| {
        s.add_member(staff.id, Member::Group(ops.id)).unwrap();
    });
    moved("remove a member", &|| {
        s.remove_member(staff.id, Member::Group(ops.id)).unwrap();
    });
    moved("rename a user", &|| {
        s.rename_user(bob.id, "robert").unwrap();
    });
    moved("rename a group", &|| {
        s.rename_group(ops.id, "operations").unwrap();
    });
    moved("replace a group's members", &|| {
        let snapshot = s.group_snapshot(staff.id).unwrap().unwrap();
        let members = [Member::User(bob.id)].into();
        let after = snapshot.group.clone();
        s.replace_group(&snapshot, &after, &members)
            .unwrap()
            .unwrap();
    });
    moved("delete a user", &|| s.delete_user(bob.id).unwrap());
    moved("delete a group", &|| s.delete_group(ops.id).unwrap());
    still("set a password", &|| {
        s.set_password_hash(
            alice.id,
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        )
        .unwrap();
    });
    still("change a user's email", &|| {
        s.update_user(alice.id, &|u| {
            u.email = Some("alice@example.com".into());
            Ok(())
        })
        .unwrap();
    });
    // A snapshot taken before another change is refused and moves nothing.
    let snapshot = s.group_snapshot(staff.id).unwrap().unwrap();
    let carol = user(&s, "carol");
    s.add_member(staff.id, Member::User(carol.id)).unwrap();
    still("a stale replace", &|| {
        let after = snapshot.group.clone();
        assert!(s
            .replace_group(&snapshot, &after, &std::collections::BTreeSet::new())
            .unwrap()
            .is_none());
    });
}

/// Concurrent writers: every committed bump of the stored epoch is seen in
/// memory (at least once; a retried attempt may add one, which only empties
/// caches).
#[test]
fn membership_epoch_counts_concurrent_writers() {
    let s = store();
    let staff = group(&s, "staff");
    let users: Vec<User> = (0..64).map(|i| user(&s, &format!("u{i}"))).collect();
    let (mem, stored) = (s.membership_epoch().unwrap(), s.stored_epoch().unwrap());
    std::thread::scope(|scope| {
        for chunk in users.chunks(16) {
            let s = &s;
            scope.spawn(move || {
                for u in chunk {
                    s.add_member(staff.id, Member::User(u.id)).unwrap();
                }
            });
        }
    });
    assert_eq!(s.stored_epoch().unwrap(), stored + 64);
    assert!(s.membership_epoch().unwrap() >= mem + 64);
}

/// Records are decoded once per stored version (`records.rs`): every
/// change is still seen on the very next read.
#[test]
fn reads_see_every_change_at_once() {
    let s = store();
    let alice = user(&s, "alice");
    for _ in 0..2 {
        assert!(s.user_is_active(alice.id).unwrap());
        assert_eq!(s.user(alice.id).unwrap().unwrap().email, None);
    }
    s.update_user(alice.id, &|u| {
        u.disabled = true;
        Ok(())
    })
    .unwrap();
    assert!(!s.user_is_active(alice.id).unwrap());
    s.update_user(alice.id, &|u| {
        u.disabled = false;
        u.email = Some("alice@example.com".into());
        Ok(())
    })
    .unwrap();
    assert!(s.user_is_active(alice.id).unwrap());
    let shared = s.user_shared(alice.id).unwrap().unwrap();
    assert_eq!(shared.email.as_deref(), Some("alice@example.com"));
    s.delete_user(alice.id).unwrap();
    assert!(!s.user_is_active(alice.id).unwrap());
    assert!(s.user(alice.id).unwrap().is_none());
    assert_eq!(
        shared.username, "alice",
        "a record already handed out stays whole"
    );

    let staff = group(&s, "staff");
    assert_eq!(s.group_shared(staff.id).unwrap().unwrap().description, None);
    let snapshot = s.group_snapshot(staff.id).unwrap().unwrap();
    let mut after = snapshot.group.clone();
    after.description = Some("Staff".into());
    s.replace_group(&snapshot, &after, &snapshot.members)
        .unwrap()
        .unwrap();
    let read = s.group_shared(staff.id).unwrap().unwrap();
    assert_eq!(read.description.as_deref(), Some("Staff"));
    s.delete_group(staff.id).unwrap();
    assert!(s.group(staff.id).unwrap().is_none());
}

#[test]
fn concurrent_creates_get_distinct_numbers() {
    let s = store();
    let numbers: Vec<u32> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let s = &s;
                scope.spawn(move || {
                    (0..10)
                        .map(|i| user(s, &format!("t{t}-{i}")).uid_number)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(sorted(numbers), (2000..2040).collect::<Vec<_>>());
}

#[test]
fn transitive_helpers() {
    let s = store();
    let alice = user(&s, "alice");
    let bob = user(&s, "bob");
    let carol = user(&s, "carol");
    // top ∋ left, right; left ∋ bottom; right ∋ bottom (a diamond).
    let top = group(&s, "top");
    let left = group(&s, "left");
    let right = group(&s, "right");
    let bottom = group(&s, "bottom");
    let other = group(&s, "other");
    s.add_member(top.id, Member::Group(left.id)).unwrap();
    s.add_member(top.id, Member::Group(right.id)).unwrap();
    s.add_member(left.id, Member::Group(bottom.id)).unwrap();
    s.add_member(right.id, Member::Group(bottom.id)).unwrap();
    s.add_member(bottom.id, Member::User(alice.id)).unwrap();
    s.add_member(left.id, Member::User(alice.id)).unwrap();
    s.add_member(right.id, Member::User(bob.id)).unwrap();
    s.add_member(other.id, Member::User(carol.id)).unwrap();

    assert_eq!(
        sorted(s.transitive_groups_of(Member::User(alice.id)).unwrap()),
        sorted(vec![bottom.id, left.id, right.id, top.id])
    );
    assert_eq!(
        sorted(s.transitive_groups_of(Member::User(bob.id)).unwrap()),
        sorted(vec![right.id, top.id])
    );
    assert_eq!(
        sorted(s.transitive_groups_of(Member::Group(bottom.id)).unwrap()),
        sorted(vec![left.id, right.id, top.id])
    );
    assert!(s
        .transitive_groups_of(Member::Group(top.id))
        .unwrap()
        .is_empty());
    // Nearest first: alice's direct groups (bottom, left) come before the
    // groups she reaches through them (right, top).
    let of_alice = s.transitive_groups_of(Member::User(alice.id)).unwrap();
    assert_eq!(
        sorted(of_alice[..2].to_vec()),
        sorted(vec![bottom.id, left.id])
    );

    assert_eq!(
        sorted(s.transitive_user_members(top.id).unwrap()),
        sorted(vec![alice.id, bob.id])
    );
    assert_eq!(
        s.transitive_user_members(bottom.id).unwrap(),
        vec![alice.id]
    );
    assert_eq!(s.transitive_user_members(other.id).unwrap(), vec![carol.id]);
    assert!(s
        .transitive_user_members(GroupId(Uuid::new_v4()))
        .unwrap()
        .is_empty());
}

#[test]
fn transitive_helpers_survive_a_cycle() {
    // The store refuses cycles, but a damaged or imported database might
    // hold one; the walks must still end.
    let s = store();
    let alice = user(&s, "alice");
    let a = group(&s, "a");
    let b = group(&s, "b");
    s.add_member(a.id, Member::Group(b.id)).unwrap();
    s.add_member(b.id, Member::User(alice.id)).unwrap();
    let (ga, gb) = (Member::Group(a.id), Member::Group(b.id));
    s.t.members
        .insert(keys::members_key(b.id, ga), EMPTY)
        .unwrap();
    s.t.member_of
        .insert(keys::member_of_key(ga, b.id), EMPTY)
        .unwrap();

    assert_eq!(
        sorted(s.transitive_groups_of(Member::User(alice.id)).unwrap()),
        sorted(vec![a.id, b.id])
    );
    assert_eq!(s.transitive_groups_of(gb).unwrap(), vec![a.id]);
    assert_eq!(s.transitive_user_members(a.id).unwrap(), vec![alice.id]);
    assert_eq!(s.transitive_user_members(b.id).unwrap(), vec![alice.id]);
}

#[test]
fn password_hashes_and_credential_generation() {
    let s = store();
    let alice = user(&s, "alice");
    assert_eq!(s.password_hash(alice.id).unwrap(), None);

    s.set_password_hash(alice.id, "$argon2id$first").unwrap();
    assert_eq!(
        s.password_hash(alice.id).unwrap().as_deref(),
        Some("$argon2id$first")
    );
    let after_first = s.user(alice.id).unwrap().unwrap();
    assert_eq!(after_first.cred_generation, 1);
    assert!(after_first.pwd_changed.is_some());

    s.set_password_hash(alice.id, "$argon2id$second").unwrap();
    assert_eq!(
        s.password_hash(alice.id).unwrap().as_deref(),
        Some("$argon2id$second")
    );
    assert_eq!(s.user(alice.id).unwrap().unwrap().cred_generation, 2);

    assert!(matches!(
        s.set_password_hash(UserId(Uuid::new_v4()), "$x"),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.set_password_hash(alice.id, ""),
        Err(StoreError::Invalid(_))
    ));
    // Hashes are not part of the record.
    let json = String::from_utf8(
        s.t.users
            .get(keys::user_key(alice.id))
            .unwrap()
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(!json.contains("argon2id"));
}

#[test]
fn update_user_rules() {
    let s = store();
    let alice = user_with_email(&s, "alice", "alice@example.com");
    user_with_email(&s, "bob", "bob@example.com");

    // Disabling bumps the credential generation; other changes do not.
    let disabled = s
        .update_user(alice.id, &|u| {
            u.disabled = true;
            Ok(())
        })
        .unwrap();
    assert!(disabled.disabled);
    assert_eq!(disabled.cred_generation, 1);
    assert!(disabled.modified >= alice.modified);
    let renamed = s
        .update_user(alice.id, &|u| {
            u.full_name = Some("Alice Liddell".into());
            u.attrs.insert("loginShell".into(), "/bin/zsh".into());
            Ok(())
        })
        .unwrap();
    assert_eq!(renamed.cred_generation, 1);
    assert_eq!(s.user(alice.id).unwrap(), Some(renamed));

    // Email changes move the index entry; clashes are refused.
    s.update_user(alice.id, &|u| {
        u.email = Some("Liddell@Example.com".into());
        Ok(())
    })
    .unwrap();
    assert_eq!(s.user_by_email("alice@example.com").unwrap(), None);
    assert_eq!(
        s.user_by_email("liddell@example.com")
            .unwrap()
            .map(|u| u.id),
        Some(alice.id)
    );
    let err = s
        .update_user(alice.id, &|u| {
            u.email = Some("BOB@example.com".into());
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    // Changing only the case keeps the entry.
    s.update_user(alice.id, &|u| {
        u.email = Some("liddell@example.com".into());
        Ok(())
    })
    .unwrap();
    assert_eq!(
        s.user_by_email("LIDDELL@example.com")
            .unwrap()
            .map(|u| u.id),
        Some(alice.id)
    );
    // Clearing removes it.
    s.update_user(alice.id, &|u| {
        u.email = None;
        Ok(())
    })
    .unwrap();
    assert_eq!(s.user_by_email("liddell@example.com").unwrap(), None);
    assert_eq!(s.t.idx_email.len(), 1);

    // Immutable fields and validation.
    type Change<'a> = &'a dyn Fn(&mut User) -> Result<()>;
    let changes: [Change; 5] = [
        &|u: &mut User| {
            u.username = "mallory".into();
            Ok(())
        },
        &|u: &mut User| {
            u.uid_number = 0;
            Ok(())
        },
        &|u: &mut User| {
            u.cred_generation = 0;
            Ok(())
        },
        &|u: &mut User| {
            u.email = Some("not-an-email".into());
            Ok(())
        },
        &|u: &mut User| {
            u.full_name = Some("bell\u{7}".into());
            Ok(())
        },
    ];
    for change in changes {
        assert!(matches!(
            s.update_user(alice.id, change),
            Err(StoreError::Invalid(_))
        ));
    }
    // The closure's own error comes back unchanged, and nothing is written.
    let before = s.user(alice.id).unwrap();
    let err = s
        .update_user(alice.id, &|u| {
            u.disabled = false;
            Err(StoreError::Invalid("no thanks".into()))
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "no thanks");
    assert_eq!(s.user(alice.id).unwrap(), before);
    assert!(matches!(
        s.update_user(UserId(Uuid::new_v4()), &|_| Ok(())),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn settings() {
    let s = store();
    assert_eq!(s.setting("base_dn").unwrap(), None);
    s.set_setting("base_dn", "dc=example,dc=com").unwrap();
    assert_eq!(
        s.setting("base_dn").unwrap().as_deref(),
        Some("dc=example,dc=com")
    );
    s.set_setting("base_dn", "dc=example,dc=org").unwrap();
    assert_eq!(
        s.setting("base_dn").unwrap().as_deref(),
        Some("dc=example,dc=org")
    );
    // Settings cannot reach the store's own keys.
    s.set_setting("schema_version", "x").unwrap();
    assert!(s
        .t
        .meta
        .get(META_SCHEMA_VERSION)
        .unwrap()
        .is_some_and(|v| *v != *b"x"));
    assert!(s.remove_setting("base_dn").unwrap());
    assert!(!s.remove_setting("base_dn").unwrap());
    assert_eq!(s.setting("base_dn").unwrap(), None);
}

#[test]
fn schema_version_is_written_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        let v = s.t.meta.get(META_SCHEMA_VERSION).unwrap().unwrap();
        assert_eq!(keys::number(&v).unwrap(), SCHEMA_VERSION);
        s.flush().unwrap();
    }
    // Reopening the same version works.
    {
        let s = SledStore::open(dir.path()).unwrap();
        s.t.meta
            .insert(META_SCHEMA_VERSION, &keys::number_key(SCHEMA_VERSION + 1))
            .unwrap();
        s.flush().unwrap();
    }
    let err = SledStore::open(dir.path())
        .err()
        .expect("newer schema refused");
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("newer") && m.contains(&format!("{}", SCHEMA_VERSION + 1))),
        "{err:?}"
    );
}

#[test]
fn data_without_a_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        user(&s, "alice");
        s.t.meta.remove(META_SCHEMA_VERSION).unwrap();
        s.flush().unwrap();
    }
    assert!(matches!(
        SledStore::open(dir.path()),
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn data_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, staff) = {
        let s = SledStore::open(dir.path()).unwrap();
        let alice = user_with_email(&s, "alice", "alice@example.com");
        let staff = s.create_group("staff", Some("Staff".into())).unwrap();
        s.add_member(staff.id, Member::User(alice.id)).unwrap();
        s.set_password_hash(alice.id, "$argon2id$hash").unwrap();
        s.set_setting("k", "v").unwrap();
        s.flush().unwrap();
        (
            s.user(alice.id).unwrap().unwrap(),
            s.group(staff.id).unwrap().unwrap(),
        )
    };
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(s.user_by_name("ALICE").unwrap(), Some(alice.clone()));
    assert_eq!(
        s.user_by_email("alice@example.com").unwrap(),
        Some(alice.clone())
    );
    assert_eq!(s.group_by_name("staff").unwrap(), Some(staff.clone()));
    assert_eq!(s.members(staff.id).unwrap(), vec![Member::User(alice.id)]);
    assert_eq!(s.groups_of(Member::User(alice.id)).unwrap(), vec![staff.id]);
    assert_eq!(
        s.password_hash(alice.id).unwrap().as_deref(),
        Some("$argon2id$hash")
    );
    assert_eq!(s.setting("k").unwrap().as_deref(), Some("v"));
    assert_eq!(group(&s, "more").gid_number, FIRST_GID_NUMBER + 1);
}

#[cfg(unix)]
#[test]
fn database_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let _s = SledStore::open(&dir.path().join("fresh")).unwrap();
    let mode = std::fs::metadata(dir.path().join("fresh/db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn store_is_shareable_across_tasks() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<SledStore>();
}

#[test]
fn a_database_in_use_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _held = SledStore::open(dir.path()).unwrap();
    let started = std::time::Instant::now();
    let err = SledStore::open(dir.path())
        .err()
        .expect("second open refused");
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("in use by another process")),
        "{err:?}"
    );
    assert!(started.elapsed() >= LOCK_WAIT);
}

/// A spooled snapshot (a serving process's export) holds writes off only
/// while it copies the records: a write made while its sink works on the
/// users finishes, and is not in the snapshot. (The streamed snapshot
/// would hold it until the sink took the last user.)
#[test]
fn writes_go_on_while_a_spooled_snapshot_is_handed_over() {
    use crate::store::{Backend, SnapshotHead, SnapshotSink, SnapshotUser};
    use std::sync::mpsc;
    use std::time::Duration;

    struct Sink {
        store: SledStore,
        groups: Vec<String>,
        users: Vec<String>,
        wrote: Option<Result<Group>>,
    }
    impl SnapshotSink for Sink {
        fn head(&mut self, head: SnapshotHead) -> Result<()> {
            self.groups = head.groups.iter().map(|g| g.group.name.clone()).collect();
            Ok(())
        }
        fn user(&mut self, user: SnapshotUser) -> Result<()> {
            if self.wrote.is_none() {
                let (done, wrote) = mpsc::channel();
                let store = self.store.clone();
                std::thread::spawn(move || {
                    let _ = done.send(Backend::create_group(&store, "during", None));
                });
                // Generous: the write waits for nothing but sled.
                self.wrote = Some(wrote.recv_timeout(Duration::from_secs(60)).unwrap_or_else(
                    |_| {
                        Err(StoreError::Backend(
                            "the write waited for the snapshot".into(),
                        ))
                    },
                ));
            }
            self.users.push(user.user.username);
            Ok(())
        }
    }

    let s = store();
    group(&s, "staff");
    user(&s, "ann");
    user(&s, "bob");
    let spool = tempfile::tempdir().expect("spool directory");
    let mut sink = Sink {
        store: s.clone(),
        groups: Vec::new(),
        users: Vec::new(),
        wrote: None,
    };
    s.snapshot_spooled(&mut sink, spool.path())
        .expect("snapshot");
    let during = sink.wrote.expect("the sink saw a user").expect("the write");
    assert_eq!(sink.groups, ["staff"]);
    assert_eq!(sink.users, ["ann", "bob"]);
    assert_eq!(s.group_id_by_name("during").expect("read"), Some(during.id));
}

/// Names and full names of every user, as an enumeration walks them.
fn walked(s: &SledStore) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    s.each_user_shared(&mut |u| {
        out.push((u.username.clone(), u.full_name.clone()));
        Ok(true)
    })
    .unwrap();
    out
}

#[test]
fn a_walk_after_a_write_sees_it_though_the_walk_before_kept_the_list() {
    let s = store();
    let alice = user(&s, "alice");
    user(&s, "bob");
    let named = |names: &[&str]| -> Vec<String> { names.iter().map(|n| n.to_string()).collect() };
    let names = |s: &SledStore| -> Vec<String> { walked(s).into_iter().map(|(n, _)| n).collect() };
    assert_eq!(names(&s), named(&["alice", "bob"]));
    // The walk kept the list, and the next one answers from it.
    assert!(s.t.user_list.current(s.writes()).is_some());
    assert_eq!(names(&s), named(&["alice", "bob"]));

    // Each kind of write: the next walk sees it.
    user(&s, "carol");
    assert!(s.t.user_list.current(s.writes()).is_none());
    assert_eq!(names(&s), named(&["alice", "bob", "carol"]));
    s.update_user(alice.id, &|u| {
        u.full_name = Some("Alice A".into());
        Ok(())
    })
    .unwrap();
    assert_eq!(walked(&s)[0], ("alice".into(), Some("Alice A".into())));
    s.rename_user(alice.id, "alicia").unwrap();
    assert_eq!(names(&s), named(&["alicia", "bob", "carol"]));
    let bob = s.user_by_name("bob").unwrap().unwrap();
    s.delete_user(bob.id).unwrap();
    assert_eq!(names(&s), named(&["alicia", "carol"]));
    assert!(s.t.user_list.current(s.writes()).is_some());

    // A walk that stopped early keeps nothing.
    user(&s, "dave");
    s.each_user_shared(&mut |_| Ok(false)).unwrap();
    assert!(s.t.user_list.current(s.writes()).is_none());
}

#[test]
fn a_walk_that_a_write_overtook_keeps_no_list() {
    let s = store();
    user(&s, "alice");
    user(&s, "bob");
    let mut first = true;
    s.each_user_shared(&mut |_| {
        if std::mem::take(&mut first) {
            user(&s, "carol");
        }
        Ok(true)
    })
    .unwrap();
    assert!(s.t.user_list.current(s.writes()).is_none());
    let names: Vec<String> = walked(&s).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
}

#[test]
fn a_directory_larger_than_the_record_cache_keeps_no_list() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open_with_cache(dir.path(), 0).unwrap();
    user(&s, "alice");
    assert_eq!(walked(&s).len(), 1);
    assert!(s.t.user_list.current(s.writes()).is_none());
}

/// An app password's use is recorded at every bind that uses it: that
/// bookkeeping leaves the count of finished writes (and so every read kept
/// until the next write) as it is, and is read back at once; adding or
/// revoking one is a write like any other.
#[test]
fn recording_an_app_passwords_use_leaves_kept_reads_current() {
    use crate::domain::mfa::CredentialKind;
    use crate::store::Backend;
    let s = store();
    let alice = user(&s, "alice");
    let ap = Backend::add_app_password(
        &s,
        alice.id,
        CredentialKind::AppPassword,
        "mail",
        None,
        &[4; 32],
    )
    .unwrap();
    walked(&s);
    let before = s.writes();
    assert!(s.t.user_list.current(before).is_some());

    Backend::touch_app_password(&s, alice.id, ap.id, 1_900_000_000, "192.0.2.7").unwrap();
    assert_eq!(s.writes(), before, "the count did not move");
    assert!(
        s.t.user_list.current(s.writes()).is_some(),
        "the list is kept"
    );
    let listed = Backend::app_passwords(&s, alice.id).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_used, Some(1_900_000_000));
    assert_eq!(listed[0].last_used_from.as_deref(), Some("192.0.2.7"));

    assert!(Backend::revoke_app_password(&s, alice.id, ap.id).unwrap());
    assert!(s.writes() > before, "a revocation is a write");
}
