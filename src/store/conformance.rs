//! The conformance suite of the store interface: what every [`Backend`]
//! must do, written once and run against each backend (sled and
//! PostgreSQL, at the end of this file: a backend adds its own [`Harness`]
//! and one line).
//!
//! Each check takes a [`Harness`], which creates an empty store and reopens
//! it (a restart). Together they cover the contract in `backend.rs`:
//! records and their indexes, atomic change sets refused when what they
//! were planned from changed, durability across a restart, codes consumed
//! exactly once under concurrency, the membership epoch, portal
//! sessions, snapshots that never hold half a change set, and import and
//! restore batches that land whole or not at all.
//!
//! A crash (rather than a clean reopen) is checked with the real binary in
//! `tests/it/mfa.rs` (`static_token_once_even_across_a_crash`).

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use super::import::{Batch, BatchGroup, BatchMember, BatchMode, BatchUser};
use super::mfa::{KeyedHash, TotpSecret};
use super::postgres::testing::{PgHarness, PgInstanceHarness};
use super::{
    Group, Member, NewUser, PortalSession, SessionHash, SessionId, Snapshot, SnapshotHead,
    SnapshotSink, SnapshotUser, Store, StoreError, User, UserId, FIRST_GID_NUMBER,
    FIRST_UID_NUMBER,
};

/// A backend under test.
pub trait Harness {
    /// A new, empty store.
    fn fresh(&mut self) -> Store;
    /// The store last made by [`Harness::fresh`], closed (`store` is its
    /// last handle) and opened again, as after a restart.
    fn reopen(&mut self, store: Store) -> Store;
}

/// The sled backend, in a temporary directory.
#[derive(Default)]
pub struct SledHarness {
    dir: Option<tempfile::TempDir>,
}

impl Harness for SledHarness {
    fn fresh(&mut self) -> Store {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        self.dir = Some(dir);
        store
    }

    fn reopen(&mut self, store: Store) -> Store {
        drop(store);
        let dir = self.dir.as_ref().expect("a fresh store first");
        Store::open(dir.path()).expect("reopen")
    }
}

fn user(s: &Store, name: &str, email: Option<&str>) -> User {
    s.create_user(NewUser {
        username: name.into(),
        email: email.map(str::to_string),
        ..NewUser::default()
    })
    .expect("create user")
}

fn group(s: &Store, name: &str) -> Group {
    s.create_group(name, None).expect("create group")
}

/// Users and groups, found through every index, kept in step by updates,
/// renames and deletes; names unique case-insensitively.
pub fn records_and_indexes(h: &mut impl Harness) {
    let s = h.fresh();
    let alice = user(&s, "alice", Some("alice@example.com"));
    let bob = user(&s, "bob", None);
    assert!(alice.uid_number >= FIRST_UID_NUMBER);
    assert_ne!(alice.uid_number, bob.uid_number);
    assert_eq!(s.user_by_name("ALICE").expect("read"), Some(alice.clone()));
    assert_eq!(
        s.user_id_by_email("Alice@Example.com").expect("read"),
        Some(alice.id)
    );
    assert_eq!(
        s.user_id_by_uid_number(bob.uid_number).expect("read"),
        Some(bob.id)
    );
    assert!(matches!(
        s.create_user(NewUser {
            username: "Alice".into(),
            ..NewUser::default()
        }),
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.create_user(NewUser {
            username: "carol".into(),
            email: Some("ALICE@example.com".into()),
            ..NewUser::default()
        }),
        Err(StoreError::AlreadyExists(_) | StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.create_user(NewUser {
            username: "no spaces".into(),
            ..NewUser::default()
        }),
        Err(StoreError::Invalid(_))
    ));

    let updated = s
        .update_user(alice.id, &|u: &mut User| {
            u.email = Some("a@example.org".into());
            Ok(())
        })
        .expect("update");
    assert_eq!(updated.email.as_deref(), Some("a@example.org"));
    assert_eq!(s.user_id_by_email("alice@example.com").expect("read"), None);
    assert_eq!(
        s.user_id_by_email("A@example.org").expect("read"),
        Some(alice.id)
    );

    let staff = group(&s, "staff");
    assert!(staff.gid_number >= FIRST_GID_NUMBER);
    assert_eq!(s.group_by_name("STAFF").expect("read"), Some(staff.clone()));
    assert_eq!(
        s.group_id_by_gid_number(staff.gid_number).expect("read"),
        Some(staff.id)
    );
    assert!(matches!(
        s.create_group("Staff", None),
        Err(StoreError::AlreadyExists(_))
    ));

    let renamed = s.rename_user(bob.id, "robert").expect("rename");
    assert_eq!((renamed.id, renamed.uid_number), (bob.id, bob.uid_number));
    assert_eq!(s.user_id_by_name("bob").expect("read"), None);
    assert_eq!(s.user_id_by_name("Robert").expect("read"), Some(bob.id));

    s.delete_user(alice.id).expect("delete");
    assert_eq!(s.user(alice.id).expect("read"), None);
    assert_eq!(s.user_id_by_name("alice").expect("read"), None);
    assert_eq!(s.user_id_by_email("a@example.org").expect("read"), None);
    assert_eq!(s.user_count().expect("count"), 1);

    assert_eq!(s.setting("k").expect("read"), None);
    s.set_setting("k", "v").expect("set");
    assert_eq!(s.setting("k").expect("read").as_deref(), Some("v"));
    assert!(s.remove_setting("k").expect("remove"));
    assert!(!s.remove_setting("k").expect("remove"));
}

/// Memberships in both directions, nesting, cycles refused, and a
/// deleted record leaves no membership behind.
pub fn memberships(h: &mut impl Harness) {
    let s = h.fresh();
    let (staff, ops, alice) = (
        group(&s, "staff"),
        group(&s, "ops"),
        user(&s, "alice", None),
    );
    assert!(s.add_member(ops.id, Member::User(alice.id)).expect("add"));
    assert!(!s
        .add_member(ops.id, Member::User(alice.id))
        .expect("add again"));
    assert!(s.add_member(staff.id, Member::Group(ops.id)).expect("nest"));
    assert!(matches!(
        s.add_member(ops.id, Member::Group(staff.id)),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        s.members(ops.id).expect("read"),
        vec![Member::User(alice.id)]
    );
    assert_eq!(
        s.groups_of(Member::User(alice.id)).expect("read"),
        vec![ops.id]
    );
    let transitive: BTreeSet<_> = s
        .transitive_groups_of(Member::User(alice.id))
        .expect("read")
        .into_iter()
        .collect();
    assert_eq!(transitive, BTreeSet::from([staff.id, ops.id]));
    assert_eq!(
        s.transitive_user_members(staff.id).expect("read"),
        vec![alice.id]
    );

    s.delete_group(ops.id).expect("delete");
    assert!(s.members(staff.id).expect("read").is_empty());
    assert!(s
        .groups_of(Member::User(alice.id))
        .expect("read")
        .is_empty());
}

/// Change sets planned from a read are refused (`Ok(None)`) once what
/// they were planned from changed, and land whole when it did not.
pub fn change_sets_checked_against_what_was_read(h: &mut impl Harness) {
    let s = h.fresh();
    let alice = user(&s, "alice", None);
    let mut planned = alice.clone();
    planned.full_name = Some("Alice".into());
    // Someone else writes first: the plan is stale.
    s.update_user(alice.id, &|u: &mut User| {
        u.attrs.insert("loginShell".into(), "/bin/sh".into());
        Ok(())
    })
    .expect("update");
    assert_eq!(
        s.replace_user(&alice, &planned, None).expect("replace"),
        None
    );
    assert_eq!(
        s.user(alice.id).expect("read").expect("user").full_name,
        None
    );
    // Planned again from a fresh read, it lands, password included.
    let current = s.user(alice.id).expect("read").expect("user");
    let mut planned = current.clone();
    planned.full_name = Some("Alice".into());
    let written = s
        .replace_user(
            &current,
            &planned,
            Some("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA"),
        )
        .expect("replace")
        .expect("not stale");
    assert_eq!(written.full_name.as_deref(), Some("Alice"));
    assert!(s.password_hash(alice.id).expect("read").is_some());

    let (staff, bob) = (group(&s, "staff"), user(&s, "bob", None));
    let snapshot = s.group_snapshot(staff.id).expect("read").expect("group");
    s.add_member(staff.id, Member::User(bob.id)).expect("add");
    let members = BTreeSet::from([Member::User(alice.id)]);
    assert_eq!(
        s.replace_group(&snapshot, &snapshot.group, &members)
            .expect("replace"),
        None,
        "memberships moved since the snapshot"
    );
    assert_eq!(
        s.members(staff.id).expect("read"),
        vec![Member::User(bob.id)]
    );
    let snapshot = s.group_snapshot(staff.id).expect("read").expect("group");
    s.replace_group(&snapshot, &snapshot.group, &members)
        .expect("replace")
        .expect("not stale");
    assert_eq!(
        s.members(staff.id).expect("read"),
        vec![Member::User(alice.id)]
    );
}

/// What returned `Ok` is there after a restart: records, indexes,
/// credentials, memberships, devices, used codes, settings, the epoch.
pub fn durable_across_a_restart(h: &mut impl Harness) {
    let s = h.fresh();
    let alice = user(&s, "alice", Some("alice@example.com"));
    let staff = group(&s, "staff");
    s.add_member(staff.id, Member::User(alice.id)).expect("add");
    s.set_password_hash(alice.id, "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA")
        .expect("password");
    let totp = s
        .add_totp_device(alice.id, "phone", 6, &TotpSecret(vec![7; 20]))
        .expect("totp");
    let tokens: [KeyedHash; 2] = [[1; 32], [2; 32]];
    let paper = s
        .add_static_device(alice.id, "paper", &tokens)
        .expect("static");
    assert!(s.advance_totp_step(alice.id, totp.id, 1000).expect("step"));
    assert!(s
        .consume_static_token(alice.id, paper.id, &tokens[0])
        .expect("use"));
    s.set_setting("mfa_policy", "required").expect("setting");
    let epoch = s.membership_epoch().expect("epoch");

    let s = h.reopen(s);
    assert_eq!(
        s.user_id_by_email("alice@example.com").expect("read"),
        Some(alice.id)
    );
    assert!(s.password_hash(alice.id).expect("read").is_some());
    assert_eq!(
        s.members(staff.id).expect("read"),
        vec![Member::User(alice.id)]
    );
    assert_eq!(s.devices(alice.id).expect("read").len(), 2);
    assert_eq!(
        s.totp_last_step(alice.id, totp.id).expect("read"),
        Some(1000)
    );
    assert!(!s.advance_totp_step(alice.id, totp.id, 1000).expect("step"));
    assert!(!s
        .consume_static_token(alice.id, paper.id, &tokens[0])
        .expect("used"));
    assert_eq!(s.static_tokens_left(alice.id, paper.id).expect("left"), 1);
    assert_eq!(
        s.setting("mfa_policy").expect("read").as_deref(),
        Some("required")
    );
    assert!(
        s.membership_epoch().expect("epoch") >= epoch,
        "the epoch never goes back"
    );
}

/// Of many concurrent uses of one code, exactly one succeeds; a TOTP step
/// never moves back.
pub fn codes_consumed_exactly_once(h: &mut impl Harness) {
    const RACERS: usize = 8;
    let s = h.fresh();
    let alice = user(&s, "alice", None);
    let token: KeyedHash = [9; 32];
    let paper = s
        .add_static_device(alice.id, "paper", &[token])
        .expect("static");
    let totp = s
        .add_totp_device(alice.id, "phone", 6, &TotpSecret(vec![3; 20]))
        .expect("totp");
    let race = |attempt: Arc<dyn Fn() -> bool + Send + Sync>| {
        let barrier = Arc::new(Barrier::new(RACERS));
        let handles: Vec<_> = (0..RACERS)
            .map(|_| {
                let (attempt, barrier) = (attempt.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    attempt()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("racer"))
            .filter(|won| *won)
            .count()
    };
    let store = s.clone();
    let uses = race(Arc::new(move || {
        store
            .consume_static_token(alice.id, paper.id, &token)
            .expect("consume")
    }));
    assert_eq!(uses, 1, "one static token, one use");
    let store = s.clone();
    let uses = race(Arc::new(move || {
        store
            .advance_totp_step(alice.id, totp.id, 5000)
            .expect("advance")
    }));
    assert_eq!(uses, 1, "one TOTP step, one use");
    assert!(!s
        .advance_totp_step(alice.id, totp.id, 4999)
        .expect("older step"));
    assert!(s
        .advance_totp_step(alice.id, totp.id, 5001)
        .expect("next step"));
}

/// A pending device counts for nothing until confirmed, and confirming
/// it moves the user's credential generation (caches drop what they knew).
pub fn pending_devices_until_confirmed(h: &mut impl Harness) {
    let s = h.fresh();
    let alice = user(&s, "alice", None);
    let device = s
        .add_pending_totp_device(alice.id, "phone", 6, &TotpSecret(vec![5; 20]))
        .expect("pending");
    assert!(!device.confirmed);
    assert_eq!(s.devices(alice.id).expect("read"), vec![device.clone()]);
    let generation = s
        .user(alice.id)
        .expect("read")
        .expect("user")
        .cred_generation;
    assert!(s.confirm_device(alice.id, device.id).expect("confirm"));
    assert!(s.devices(alice.id).expect("read")[0].confirmed);
    let after = s
        .user(alice.id)
        .expect("read")
        .expect("user")
        .cred_generation;
    assert_ne!(after, generation, "confirming changes the credentials");
    assert!(!s.confirm_device(alice.id, device.id).expect("again"));
    let bob = user(&s, "bob", None);
    assert!(matches!(
        s.confirm_device(bob.id, device.id),
        Err(StoreError::NotFound(_))
    ));
    assert!(s
        .rename_device(alice.id, device.id, "tablet")
        .expect("rename"));
    assert!(!s.rename_device(bob.id, device.id, "x").expect("not bob's"));
    assert!(matches!(
        s.rename_device(alice.id, device.id, "  "),
        Err(StoreError::Invalid(_))
    ));
    let s = h.reopen(s);
    assert!(s.devices(alice.id).expect("read")[0].confirmed);
    assert_eq!(s.devices(alice.id).expect("read")[0].label, "tablet");
}

/// The epoch moves with every change to memberships or names, and only
/// forward.
pub fn membership_epoch(h: &mut impl Harness) {
    let s = h.fresh();
    let (staff, ops, alice) = (
        group(&s, "staff"),
        group(&s, "ops"),
        user(&s, "alice", None),
    );
    let mut last = s.membership_epoch().expect("epoch");
    let mut moved = |what: &str, s: &Store| {
        let now = s.membership_epoch().expect("epoch");
        assert!(now > last, "{what} moves the epoch ({last} -> {now})");
        last = now;
    };
    s.add_member(staff.id, Member::User(alice.id)).expect("add");
    moved("adding a member", &s);
    s.add_member(staff.id, Member::Group(ops.id)).expect("nest");
    moved("nesting a group", &s);
    s.remove_member(staff.id, Member::Group(ops.id))
        .expect("remove");
    moved("removing a member", &s);
    s.rename_user(alice.id, "alicia").expect("rename");
    moved("renaming a user", &s);
    s.rename_group(ops.id, "operations").expect("rename");
    moved("renaming a group", &s);
    s.delete_user(alice.id).expect("delete");
    moved("deleting a member", &s);

    // Raised (a store taking over from another), never lowered, and the
    // next change goes on from there.
    assert_eq!(s.raise_membership_epoch(1000).expect("raise"), 1000);
    assert_eq!(s.membership_epoch().expect("epoch"), 1000);
    assert_eq!(s.raise_membership_epoch(3).expect("not lowered"), 1000);
    s.add_member(staff.id, Member::Group(ops.id)).expect("nest");
    assert!(s.membership_epoch().expect("epoch") > 1000);
}

/// A snapshot taken while another thread keeps changing users and
/// memberships holds every change set completely or not at all: no member
/// names a user or group missing from it, and the allocator is past every
/// number it holds.
pub fn snapshot_is_consistent(h: &mut impl Harness) {
    const ROUNDS: usize = 60;
    let s = h.fresh();
    let staff = group(&s, "staff");
    let carol = user(&s, "carol", None);
    s.add_totp_device(carol.id, "phone", 6, &TotpSecret(vec![7; 20]))
        .expect("totp");
    s.add_app_password(
        carol.id,
        crate::domain::mfa::CredentialKind::AppPassword,
        "mail",
        None,
        &[4; 32],
    )
    .expect("app password");
    s.set_password_hash(carol.id, "$argon2id$fake")
        .expect("hash");
    let writer = {
        let s = s.clone();
        std::thread::spawn(move || {
            let mut previous: Option<User> = None;
            for i in 0..ROUNDS {
                let u = user(&s, &format!("u{i}"), None);
                s.add_member(staff.id, Member::User(u.id)).expect("add");
                if let Some(p) = previous.take() {
                    // The user and its memberships go in one change set.
                    s.delete_user(p.id).expect("delete");
                }
                let child = group(&s, &format!("g{i}"));
                s.add_member(staff.id, Member::Group(child.id))
                    .expect("nest");
                s.delete_group(child.id).expect("delete group");
                previous = Some(u);
            }
        })
    };
    let spool = tempfile::tempdir().expect("spool directory");
    let mut taken = 0;
    while !writer.is_finished() || taken < 2 {
        // Collected, or (every other one) spooled as a server exports.
        let snap = if taken % 2 == 0 {
            s.snapshot().expect("snapshot")
        } else {
            let mut snap = Snapshot::default();
            s.snapshot_spooled(&mut snap, spool.path())
                .expect("spooled snapshot");
            snap
        };
        assert_eq!(snap.dangling_members(), vec![], "snapshot {taken}");
        let (next_uid, _) = snap.counters;
        for u in &snap.users {
            assert!(u.user.uid_number < next_uid, "counter behind a user");
        }
        assert!(snap.users.len() <= 3, "at most two writer users at a time");
        taken += 1;
    }
    writer.join().expect("writer");
    let last = s.snapshot().expect("snapshot");
    assert_eq!(last.users.len(), 2);
    let (carols, writers): (Vec<_>, Vec<_>) =
        last.users.iter().partition(|u| u.user.id == carol.id);
    let staff_now = last
        .groups
        .iter()
        .find(|g| g.group.id == staff.id)
        .expect("staff");
    assert_eq!(staff_now.members, vec![Member::User(writers[0].user.id)]);
    // Credentials and second factors come with their user.
    let carol_now = carols[0];
    assert_eq!(carol_now.password_hash.as_deref(), Some("$argon2id$fake"));
    assert_eq!(carol_now.second_factors.devices.len(), 1);
    assert_eq!(
        carol_now.second_factors.devices[0].totp_secret,
        Some(TotpSecret(vec![7; 20]))
    );
    assert_eq!(carol_now.second_factors.app_passwords.len(), 1);
    assert!(writers[0].second_factors.devices.is_empty());
    assert!(last.has_keyed_hashes());
}

/// A streamed snapshot hands over what [`super::Backend::snapshot`]
/// holds, in the order exports are written in: the head first, then each
/// user by lowercase name compared bytewise, whatever case the names
/// have, each with its credentials. A sink's error stops it and comes
/// back, and the store takes writes again afterwards.
pub fn streamed_snapshot_in_canonical_order(h: &mut impl Harness) {
    #[derive(Default)]
    struct Seen {
        head: Option<SnapshotHead>,
        users: Vec<SnapshotUser>,
        user_before_head: bool,
        fail_at: Option<usize>,
    }
    impl SnapshotSink for Seen {
        fn head(&mut self, head: SnapshotHead) -> super::Result<()> {
            self.head = Some(head);
            Ok(())
        }
        fn user(&mut self, user: SnapshotUser) -> super::Result<()> {
            self.user_before_head |= self.head.is_none();
            if self.fail_at == Some(self.users.len()) {
                return Err(StoreError::Backend("the sink is full".into()));
            }
            self.users.push(user);
            Ok(())
        }
    }
    let s = h.fresh();
    let staff = group(&s, "staff");
    let ops = group(&s, "Ops");
    s.add_member(staff.id, Member::Group(ops.id)).expect("nest");
    for name in ["bob", "Alice", "a.b", "a-b", "a_b", "Zed", "carol"] {
        let u = user(&s, name, None);
        s.add_member(staff.id, Member::User(u.id)).expect("add");
        if name == "carol" {
            s.set_password_hash(u.id, "$argon2id$fake").expect("hash");
            s.add_totp_device(u.id, "phone", 6, &TotpSecret(vec![7; 20]))
                .expect("totp");
            s.add_app_password(
                u.id,
                crate::domain::mfa::CredentialKind::AppPassword,
                "mail",
                None,
                &[4; 32],
            )
            .expect("app password");
        }
    }
    let mut seen = Seen::default();
    s.snapshot_streamed(&mut seen).expect("streamed");
    assert!(!seen.user_before_head);
    let names: Vec<&str> = seen
        .users
        .iter()
        .map(|u| u.user.username.as_str())
        .collect();
    assert_eq!(names, ["a-b", "a.b", "a_b", "Alice", "bob", "carol", "Zed"]);
    let head = seen.head.expect("head");
    let groups: Vec<&str> = head.groups.iter().map(|g| g.group.name.as_str()).collect();
    assert_eq!(groups, ["Ops", "staff"]);
    let mut snap = s.snapshot().expect("snapshot");
    snap.sort_canonically();
    assert_eq!(format!("{:?}", head.groups), format!("{:?}", snap.groups));
    assert_eq!(head.settings, snap.settings);
    assert_eq!(head.counters, snap.counters);
    assert_eq!(format!("{:?}", seen.users), format!("{:?}", snap.users));
    let hashes = |users: &[SnapshotUser]| -> Vec<Option<String>> {
        users.iter().map(|u| u.password_hash.clone()).collect()
    };
    assert_eq!(hashes(&seen.users), hashes(&snap.users));
    let carol = &seen.users[5].second_factors;
    assert_eq!((carol.devices.len(), carol.app_passwords.len()), (1, 1));

    // Spooled (a serving process's export), the same in the same order,
    // credentials and secrets included; the spool leaves nothing behind.
    let spool = tempfile::tempdir().expect("spool directory");
    let mut spooled = Seen::default();
    s.snapshot_spooled(&mut spooled, spool.path())
        .expect("spooled");
    assert!(!spooled.user_before_head);
    let spooled_head = spooled.head.expect("head");
    assert_eq!(
        format!("{:?}", spooled_head.groups),
        format!("{:?}", head.groups)
    );
    assert_eq!(spooled_head.settings, head.settings);
    assert_eq!(spooled_head.counters, head.counters);
    assert_eq!(spooled.users.len(), seen.users.len());
    for (a, b) in spooled.users.iter().zip(&seen.users) {
        assert_eq!(a.user, b.user);
        assert_eq!(a.password_hash, b.password_hash);
        assert_eq!(a.second_factors, b.second_factors);
    }
    let mut failing = Seen {
        fail_at: Some(2),
        ..Seen::default()
    };
    assert!(s.snapshot_spooled(&mut failing, spool.path()).is_err());
    assert_eq!(
        failing.users.len(),
        2,
        "nothing handed over after the error"
    );
    let left: Vec<_> = std::fs::read_dir(spool.path())
        .expect("spool directory")
        .collect();
    assert!(left.is_empty(), "the spool left {left:?}");

    let mut failing = Seen {
        fail_at: Some(2),
        ..Seen::default()
    };
    assert!(s.snapshot_streamed(&mut failing).is_err());
    assert_eq!(
        failing.users.len(),
        2,
        "nothing handed over after the error"
    );
    user(&s, "after", None);
}

/// A user of an import batch: a fixed `uid_number`, or one allocated.
pub(crate) fn batch_user(
    name: &str,
    uid_number: Option<u32>,
    password_hash: Option<&str>,
) -> BatchUser {
    let at = crate::store::now();
    BatchUser {
        user: User {
            id: UserId(uuid::Uuid::new_v4()),
            username: name.into(),
            full_name: None,
            email: Some(format!("{name}@example.com")),
            uid_number: uid_number.unwrap_or(0),
            gid_number: 0,
            disabled: false,
            attrs: Default::default(),
            created: at,
            modified: at,
            pwd_changed: None,
            cred_generation: 0,
        },
        allocate_uid: uid_number.is_none(),
        password_hash: password_hash.map(str::to_string),
    }
}

/// The password hash of every [`bulk_user`].
pub(crate) const BULK_HASH: &str = "{SSHA}aGFzaGhhc2g=";

/// The name of [`bulk_user`] `i`.
pub(crate) fn bulk_name(i: usize) -> String {
    format!("bulk{i:06}")
}

/// User `i` of a large streamed import, as the importer makes it: a full
/// name, an email, [`BULK_HASH`], and `uid` as its uidNumber and
/// gidNumber (or both allocated). The backends' tests of their chunked
/// writes (`sled/bulk.rs`, `postgres/chunks.rs`) stream these.
pub(crate) fn bulk_user(i: usize, uid: Option<u32>) -> BatchUser {
    let mut u = batch_user(&bulk_name(i), uid, Some(BULK_HASH));
    u.user.full_name = Some(format!("Bulk {i}"));
    u.user.gid_number = uid.unwrap_or(0);
    u
}

/// A new group of an import batch, its gidNumber allocated.
pub(crate) fn batch_group(name: &str) -> BatchGroup {
    let at = crate::store::now();
    BatchGroup {
        group: Group {
            id: crate::store::GroupId(uuid::Uuid::new_v4()),
            name: name.into(),
            gid_number: 0,
            description: None,
            created: at,
            modified: at,
        },
        allocate_gid: true,
    }
}

/// An import lands whole or not at all: a second run of the same batch
/// changes nothing, a conflict or a cycle anywhere leaves no trace, and
/// the allocators move past every imported number.
pub fn imports_land_whole_or_not_at_all(h: &mut impl Harness) {
    let s = h.fresh();
    let batch = Batch {
        mode: BatchMode::Merge,
        users: vec![
            batch_user("alice", Some(1001), Some("$argon2id$alice")),
            batch_user("bob", None, None),
        ],
        groups: vec![batch_group("staff")],
        memberships: vec![
            ("staff".into(), BatchMember::User("alice".into())),
            ("staff".into(), BatchMember::User("Bob".into())),
        ],
        settings: vec![("mfa_policy".into(), "required".into())],
        ..Batch::default()
    };
    let epoch = s.membership_epoch().expect("epoch");
    let report = s.apply_batch(&batch).expect("import");
    assert_eq!(report.users_created, ["alice", "bob"]);
    assert_eq!(report.groups_created, ["staff"]);
    assert_eq!(report.memberships_added, 2);
    assert_eq!(report.passwords_set, ["alice"]);
    assert_eq!(report.settings_set, 1);
    assert!(s.membership_epoch().expect("epoch") > epoch);
    let alice = s.user_by_name("alice").expect("read").expect("alice");
    let bob = s.user_by_name("bob").expect("read").expect("bob");
    assert_eq!(alice.uid_number, 1001);
    assert!(bob.uid_number >= FIRST_UID_NUMBER);
    assert_eq!(bob.gid_number, bob.uid_number);
    assert_eq!(
        s.password_hash(alice.id).expect("read").as_deref(),
        Some("$argon2id$alice")
    );
    let staff = s.group_by_name("staff").expect("read").expect("staff");
    assert!(staff.gid_number >= FIRST_GID_NUMBER);
    let mut members = s.members(staff.id).expect("read");
    members.sort();
    let mut expected = vec![Member::User(alice.id), Member::User(bob.id)];
    expected.sort();
    assert_eq!(members, expected);
    assert_eq!(
        s.setting("mfa_policy").expect("read").as_deref(),
        Some("required")
    );

    let again = s.apply_batch(&batch).expect("import again");
    assert_eq!(again.users_unchanged, ["alice", "bob"]);
    assert_eq!(again.groups_unchanged, ["staff"]);
    assert_eq!(again.memberships_added, 0);
    assert!(again.passwords_set.is_empty());

    // A uidNumber held by someone else: nothing of the batch lands.
    let clash = Batch {
        users: vec![
            batch_user("carol", None, None),
            batch_user("dave", Some(1001), None),
        ],
        groups: vec![batch_group("ops")],
        ..Batch::default()
    };
    assert!(matches!(
        s.apply_batch(&clash),
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(s.user_id_by_name("carol").expect("read"), None);
    assert_eq!(s.group_id_by_name("ops").expect("read"), None);

    // A cycle through an existing nesting: refused whole.
    let devs = group(&s, "devs");
    s.add_member(staff.id, Member::Group(devs.id))
        .expect("nest");
    let cycle = Batch {
        groups: vec![batch_group("qa")],
        memberships: vec![
            ("devs".into(), BatchMember::Group("qa".into())),
            ("qa".into(), BatchMember::Group("staff".into())),
        ],
        ..Batch::default()
    };
    assert!(matches!(s.apply_batch(&cycle), Err(StoreError::Invalid(_))));
    assert_eq!(s.group_id_by_name("qa").expect("read"), None);
}

/// A streamed import takes its users from the stream: they land with the
/// batch's groups and memberships, and a batch that brings users of its
/// own is refused before anything is written (its users would be lost).
pub fn streamed_imports_take_users_from_the_stream(h: &mut impl Harness) {
    let s = h.fresh();
    let batch = Batch {
        mode: BatchMode::Merge,
        groups: vec![batch_group("big")],
        memberships: (0..3)
            .map(|i| ("big".into(), BatchMember::User(bulk_name(i))))
            .collect(),
        ..Batch::default()
    };
    let with_own = Batch {
        users: vec![batch_user("own", None, None)],
        ..batch.clone()
    };
    let mut stream = (0..3).map(|i| Ok(bulk_user(i, None)));
    assert!(matches!(
        s.apply_batch_streamed(&with_own, &mut stream),
        Err(StoreError::Invalid(m)) if m.contains("takes its users from the stream")
    ));
    assert_eq!(s.user_count().expect("count"), 0);
    assert_eq!(s.group_id_by_name("big").expect("read"), None);

    let report = s
        .apply_batch_streamed(&batch, &mut stream)
        .expect("streamed import");
    assert_eq!(report.users_created.len(), 3, "the stream was not consumed");
    assert_eq!(report.memberships_added, 3);
    let big = s.group_id_by_name("big").expect("read").expect("big");
    assert_eq!(s.members(big).expect("members").len(), 3);
    let last = s.user_by_name(&bulk_name(2)).expect("read").expect("user");
    assert_eq!(
        s.password_hash(last.id).expect("hash").as_deref(),
        Some(BULK_HASH)
    );
}

/// A restore batch built from a snapshot writes every record with its id,
/// credentials and second factors into an empty store: used codes stay
/// used, unused ones still work once, and a second restore changes
/// nothing.
pub fn restores_keep_ids_and_second_factors(h: &mut impl Harness) {
    let s = h.fresh();
    let alice = user(&s, "alice", Some("alice@example.com"));
    let staff = group(&s, "staff");
    s.add_member(staff.id, Member::User(alice.id)).expect("add");
    s.set_password_hash(alice.id, "$argon2id$alice")
        .expect("hash");
    let totp = s
        .add_totp_device(alice.id, "phone", 6, &TotpSecret(vec![7; 20]))
        .expect("totp");
    assert!(s.advance_totp_step(alice.id, totp.id, 77).expect("step"));
    let tokens: [KeyedHash; 2] = [[1; 32], [2; 32]];
    let paper = s
        .add_static_device(alice.id, "paper", &tokens)
        .expect("static");
    assert!(s
        .consume_static_token(alice.id, paper.id, &tokens[0])
        .expect("use"));
    s.add_app_password(
        alice.id,
        crate::domain::mfa::CredentialKind::ApiToken,
        "ci",
        None,
        &[5; 32],
    )
    .expect("token");
    let policy = crate::domain::mfa::GroupPolicy {
        mfa: Some(crate::domain::mfa::MfaPolicy::Required),
        app_passwords: Some(false),
    };
    s.set_group_policy(staff.id, policy).expect("policy");
    let snap = s.snapshot().expect("snapshot");
    drop(s);

    let batch = Batch {
        mode: BatchMode::Restore,
        users: snap
            .users
            .iter()
            .map(|u| BatchUser {
                user: u.user.clone(),
                allocate_uid: false,
                password_hash: u.password_hash.clone(),
            })
            .collect(),
        groups: snap
            .groups
            .iter()
            .map(|g| BatchGroup {
                group: g.group.clone(),
                allocate_gid: false,
            })
            .collect(),
        memberships: vec![("staff".into(), BatchMember::User("alice".into()))],
        next_uid: Some(snap.counters.0),
        next_gid: Some(snap.counters.1),
        second_factors: snap
            .users
            .iter()
            .map(|u| (u.user.username.clone(), u.second_factors.clone()))
            .collect(),
        group_policies: vec![("staff".into(), policy)],
        ..Batch::default()
    };
    let t = h.fresh();
    let report = t.apply_batch(&batch).expect("restore");
    assert_eq!(report.devices_restored, 2);
    assert_eq!(report.app_passwords_restored, 1);
    assert_eq!(report.group_policies_set, 1);
    assert_eq!(
        t.user(alice.id).expect("read"),
        Some(snap.users[0].user.clone())
    );
    assert_eq!(t.counters().expect("counters"), snap.counters);
    assert_eq!(
        t.password_hash(alice.id).expect("read").as_deref(),
        Some("$argon2id$alice")
    );
    assert_eq!(
        t.members(staff.id).expect("read"),
        vec![Member::User(alice.id)]
    );
    assert_eq!(t.group_policy(staff.id).expect("read"), policy);
    assert_eq!(t.devices(alice.id).expect("read").len(), 2);
    assert!(!t.advance_totp_step(alice.id, totp.id, 77).expect("replay"));
    assert!(!t
        .consume_static_token(alice.id, paper.id, &tokens[0])
        .expect("used"));
    assert!(t
        .consume_static_token(alice.id, paper.id, &tokens[1])
        .expect("unused"));
    let (owner, token) = t
        .app_password_by_hash(&[5; 32])
        .expect("read")
        .expect("token");
    assert_eq!((owner, token.name.as_str()), (alice.id, "ci"));

    let again = t.apply_batch(&batch).expect("restore again");
    assert_eq!(
        (again.app_passwords_restored, again.group_policies_set),
        (0, 0),
        "a second restore rewrites no app password or policy"
    );
}

fn session(user: UserId, created: i64, csrf: &str) -> PortalSession {
    PortalSession {
        id: SessionId(uuid::Uuid::new_v4()),
        user,
        created,
        last_seen: created,
        address: "192.0.2.1".into(),
        user_agent: "Test/1.0".into(),
        csrf: csrf.into(),
        pending_code: false,
    }
}

/// Portal sessions: kept under the hash of their id, found, touched,
/// listed per user, ended one by one or all but one, kept across a
/// restart, and gone with their user.
pub fn portal_sessions(h: &mut impl Harness) {
    let s = h.fresh();
    let alice = user(&s, "alice", None);
    let bob = user(&s, "bob", None);
    let (a1, a2, a3, b1): (SessionHash, SessionHash, SessionHash, SessionHash) =
        ([1; 32], [2; 32], [3; 32], [4; 32]);
    let first = session(alice.id, 100, "t1");
    s.create_session(&a1, &first).expect("create");
    s.create_session(&a2, &session(alice.id, 200, "t2"))
        .expect("create");
    s.create_session(&a3, &session(alice.id, 300, "t3"))
        .expect("create");
    s.create_session(&b1, &session(bob.id, 150, "t4"))
        .expect("create");
    assert!(matches!(
        s.create_session(&a1, &session(bob.id, 1, "x")),
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(s.session(&a1).expect("read"), Some(first.clone()));
    assert_eq!(s.session(&[9; 32]).expect("read"), None);

    assert!(s.touch_session(&a1, 500).expect("touch"));
    assert!(!s.touch_session(&[9; 32], 500).expect("touch"));
    assert_eq!(
        s.session(&a1).expect("read").map(|x| x.last_seen),
        Some(500)
    );

    let listed: Vec<SessionHash> = s
        .sessions_of(alice.id)
        .expect("list")
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    assert_eq!(listed, vec![a1, a2, a3], "oldest first, only alice's");

    assert!(s.delete_session(&a2).expect("delete"));
    assert!(!s.delete_session(&a2).expect("delete twice"));
    assert_eq!(s.session(&a2).expect("read"), None);

    let s = h.reopen(s);
    assert_eq!(
        s.session(&a1).expect("read").map(|x| x.last_seen),
        Some(500)
    );
    assert_eq!(s.sessions_of(alice.id).expect("list").len(), 2);

    assert_eq!(
        s.delete_sessions_of(alice.id, Some(&a3)).expect("others"),
        1
    );
    assert_eq!(
        s.sessions_of(alice.id)
            .expect("list")
            .into_iter()
            .map(|(h, _)| h)
            .collect::<Vec<_>>(),
        vec![a3]
    );
    assert_eq!(
        s.sessions_of(bob.id).expect("list").len(),
        1,
        "bob untouched"
    );

    let all: Vec<SessionHash> = s
        .all_sessions()
        .expect("all")
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    assert_eq!(all, vec![a3, b1], "every user's, by hash");

    s.delete_user(bob.id).expect("delete bob");
    assert_eq!(s.session(&b1).expect("read"), None, "gone with its user");
    assert_eq!(s.all_sessions().expect("all").len(), 1);
}

/// Runs every check of the suite against one backend, each on a fresh
/// store: `conformance!(name, Harness::default)` declares one test per
/// check in a module `name`.
macro_rules! conformance {
    ($name:ident, $harness:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn records_and_indexes() {
                super::records_and_indexes(&mut $harness());
            }
            #[test]
            fn memberships() {
                super::memberships(&mut $harness());
            }
            #[test]
            fn change_sets_checked_against_what_was_read() {
                super::change_sets_checked_against_what_was_read(&mut $harness());
            }
            #[test]
            fn durable_across_a_restart() {
                super::durable_across_a_restart(&mut $harness());
            }
            #[test]
            fn codes_consumed_exactly_once() {
                super::codes_consumed_exactly_once(&mut $harness());
            }
            #[test]
            fn pending_devices_until_confirmed() {
                super::pending_devices_until_confirmed(&mut $harness());
            }
            #[test]
            fn membership_epoch() {
                super::membership_epoch(&mut $harness());
            }
            #[test]
            fn snapshot_is_consistent() {
                super::snapshot_is_consistent(&mut $harness());
            }
            #[test]
            fn streamed_snapshot_in_canonical_order() {
                super::streamed_snapshot_in_canonical_order(&mut $harness());
            }
            #[test]
            fn imports_land_whole_or_not_at_all() {
                super::imports_land_whole_or_not_at_all(&mut $harness());
            }
            #[test]
            fn streamed_imports_take_users_from_the_stream() {
                super::streamed_imports_take_users_from_the_stream(&mut $harness());
            }
            #[test]
            fn restores_keep_ids_and_second_factors() {
                super::restores_keep_ids_and_second_factors(&mut $harness());
            }
            #[test]
            fn portal_sessions() {
                super::portal_sessions(&mut $harness());
            }
        }
    };
}

conformance!(sled, SledHarness::default);
conformance!(postgres, PgHarness::default);
conformance!(postgres_instance, PgInstanceHarness::default);
