//! Unit tests of the write mapping against a temporary store.

use super::*;
use crate::auth::password::Hasher;
use crate::auth::Authenticator;
use crate::directory::Directory;
use crate::store::{NewUser, Store};

const BASE: &str = "dc=example,dc=com";

struct Fixture {
    dir: Accounts,
    admin: Actor,
    alice: Actor,
}

fn setup() -> Fixture {
    let store = Store::temporary().expect("store");
    let admins = store.create_group("admins", None).expect("group");
    store.create_group("ldap-search", None).expect("group");
    let mut ids = Vec::new();
    for name in ["root", "alice"] {
        let u = store
            .create_user(NewUser {
                username: name.into(),
                email: Some(format!("{name}@example.com")),
                ..NewUser::default()
            })
            .expect("user");
        ids.push(Actor::Bound(Identity::User {
            id: u.id,
            username: name.into(),
        }));
        if name == "root" {
            store
                .add_member(admins.id, Member::User(u.id))
                .expect("member");
        }
    }
    let auth = Authenticator::new(store.clone(), Hasher::for_tests());
    let directory = Directory::new(store, Dn::parse(BASE).expect("dn"), "admins", "ldap-search");
    let dir = Accounts::new(directory, auth);
    let alice = ids.pop().expect("alice");
    let admin = ids.pop().expect("root");
    Fixture { dir, admin, alice }
}

fn dn(s: &str) -> Dn {
    Dn::parse(&format!("{s},{BASE}")).expect("dn")
}

fn a(name: &str, values: &[&str]) -> AttrValues {
    AttrValues {
        name: name.into(),
        values: values.iter().map(|v| v.as_bytes().to_vec()).collect(),
    }
}

fn m(kind: ModKind, name: &str, values: &[&str]) -> Modification {
    Modification {
        kind,
        attr: a(name, values),
    }
}

fn person(extra: &[AttrValues]) -> Vec<AttrValues> {
    let mut v = vec![a("objectClass", &["top", "inetOrgPerson", "posixAccount"])];
    v.extend(extra.iter().cloned());
    v
}

fn done(r: Result<Progress>) {
    match r {
        Ok(Progress::Done(_)) => {}
        Ok(Progress::NeedsHash(_)) => panic!("asked for a hash"),
        Err(e) => panic!("refused: {e:?}"),
    }
}

#[test]
fn add_user_with_numbers_and_hash() {
    let f = setup();
    let store = f.dir.store();
    let attrs = person(&[
        a("cn", &["Carol"]),
        a("sn", &["Smith"]),
        a("mail", &["carol@example.com"]),
        a("uidNumber", &["5000"]),
        a("loginShell", &["/bin/zsh"]),
        a(
            "userPassword",
            &["{SSHA}NSZEu/ZzEMKdBO5ESNEYml3qKRYBAgMEBQYHCA=="],
        ),
    ]);
    done(f.dir.add(&f.admin, &dn("cn=carol,ou=users"), &attrs, None));
    let carol = store.user_by_name("carol").expect("read").expect("exists");
    assert_eq!((carol.uid_number, carol.gid_number), (5000, 5000));
    assert_eq!(carol.attrs.get("sn"), Some("Smith"));
    assert_eq!(carol.attrs.get("loginShell"), Some("/bin/zsh"));
    assert!(carol.pwd_changed.is_some());
    assert!(store
        .password_hash(carol.id)
        .expect("hash")
        .is_some_and(|h| h.starts_with("{SSHA}")));
    // The allocator moved past the given number.
    assert!(store.counters().expect("counters").0 > 5000);

    // The same name again: 68; the same uidNumber or mail: 19.
    let again = f
        .dir
        .add(&f.admin, &dn("cn=CAROL,ou=users"), &person(&[]), None);
    assert!(
        matches!(again, Err(WriteError::AlreadyExists(_))),
        "{again:?}"
    );
    for clash in [a("uidNumber", &["5000"]), a("mail", &["Carol@example.com"])] {
        let r = f
            .dir
            .add(&f.admin, &dn("cn=dave,ou=users"), &person(&[clash]), None);
        assert!(
            matches!(r, Err(WriteError::ConstraintViolation(_))),
            "{r:?}"
        );
    }
}

#[test]
fn add_user_in_clear_asks_for_a_hash() {
    let f = setup();
    let attrs = person(&[a("userPassword", &["Erin-s3cret-Garden"])]);
    let target = dn("cn=erin,ou=users");
    match f.dir.add(&f.admin, &target, &attrs, None) {
        Ok(Progress::NeedsHash(secret)) => assert_eq!(secret.0, "Erin-s3cret-Garden"),
        other => panic!("{other:?}"),
    }
    // Nothing was written by the first pass.
    assert!(f.dir.store().user_by_name("erin").expect("read").is_none());
    done(
        f.dir
            .add(&f.admin, &target, &attrs, Some("$argon2id$v=19$fake")),
    );
    let erin = f
        .dir
        .store()
        .user_by_name("erin")
        .expect("read")
        .expect("exists");
    assert_eq!(
        f.dir
            .store()
            .password_hash(erin.id)
            .expect("hash")
            .as_deref(),
        Some("$argon2id$v=19$fake")
    );
}

#[test]
fn add_refusals_have_their_codes() {
    let f = setup();
    let add = |d: &str, attrs: &[AttrValues]| f.dir.add(&f.admin, &dn(d), attrs, None);
    assert!(matches!(
        add("cn=x,ou=people", &person(&[])),
        Err(WriteError::NoSuchObject { matched: Some(m), .. }) if m == Dn::parse(BASE).expect("dn")
    ));
    assert!(matches!(
        add("ou=people", &person(&[])),
        Err(WriteError::NamingViolation(_))
    ));
    assert!(matches!(
        add("ou=users", &person(&[])),
        Err(WriteError::AlreadyExists(_))
    ));
    assert!(matches!(
        f.dir.add(
            &f.admin,
            &Dn::parse("cn=x,dc=other").expect("dn"),
            &person(&[]),
            None
        ),
        Err(WriteError::NoSuchObject { matched: None, .. })
    ));
    assert!(matches!(
        add("cn=x,ou=users", &[a("cn", &["x"])]),
        Err(WriteError::ObjectClassViolation(_))
    ));
    assert!(matches!(
        add(
            "cn=x,ou=users",
            &[a("objectClass", &["top", "frobnicator"])]
        ),
        Err(WriteError::ObjectClassViolation(_))
    ));
    assert!(matches!(
        add("cn=x,ou=users", &[a("objectClass", &["groupOfNames"])]),
        Err(WriteError::ObjectClassViolation(_))
    ));
    assert!(matches!(
        add("cn=x,ou=users", &person(&[a("favouriteColour", &["blue"])])),
        Err(WriteError::UndefinedAttributeType(_))
    ));
    assert!(matches!(
        add("cn=x,ou=users", &person(&[a("uidNumber", &["many"])])),
        Err(WriteError::InvalidAttributeSyntax(_))
    ));
    assert!(matches!(
        add("cn=x,ou=users", &person(&[a("uidNumber", &["0"])])),
        Err(WriteError::ConstraintViolation(_))
    ));
    assert!(matches!(
        add("cn=x,ou=users", &person(&[a("mail", &["not-an-address"])])),
        Err(WriteError::InvalidAttributeSyntax(_))
    ));
    assert!(matches!(
        add(
            "cn=x,ou=users",
            &person(&[a("entryUUID", &["00000000-0000-0000-0000-000000000000"])])
        ),
        Err(WriteError::ConstraintViolation(_))
    ));
    assert!(matches!(
        add(
            "cn=x,ou=users",
            &person(&[a("memberOf", &["cn=admins,ou=groups,dc=example,dc=com"])])
        ),
        Err(WriteError::ConstraintViolation(_))
    ));
    assert!(matches!(
        add("cn=x,ou=users", &person(&[a("cn", &["Someone Else"])])),
        Err(WriteError::ConstraintViolation(_))
    ));
    assert!(matches!(
        add(
            "cn=x,ou=users",
            &person(&[a("member", &["cn=root,ou=users,dc=example,dc=com"])])
        ),
        Err(WriteError::ObjectClassViolation(_))
    ));
    assert!(matches!(
        add("cn=no way,ou=users", &person(&[])),
        Err(WriteError::NamingViolation(_))
    ));
    assert!(matches!(
        add(
            "cn=x,ou=users",
            &person(&[a("userPassword", &["{MD5}abc"])])
        ),
        Err(WriteError::InvalidAttributeSyntax(_))
    ));
    // Nothing of the above was created.
    assert!(f.dir.store().user_by_name("x").expect("read").is_none());
}

#[test]
fn only_admins_add_delete_and_rename() {
    let f = setup();
    for who in [&Actor::Bound(Identity::Anonymous), &f.alice] {
        assert!(matches!(
            f.dir.add(who, &dn("cn=x,ou=users"), &person(&[]), None),
            Err(WriteError::InsufficientAccess(_))
        ));
        assert!(matches!(
            f.dir.delete(who, &dn("cn=alice,ou=users")),
            Err(WriteError::InsufficientAccess(_))
        ));
        assert!(matches!(
            f.dir
                .rename(who, &dn("cn=alice,ou=users"), "cn=alicia", None),
            Err(WriteError::InsufficientAccess(_))
        ));
    }
}

/// The operator (the CLI and the admin socket) and the server write as
/// admins do, with the same rules: the last admin still cannot go.
#[test]
fn the_operator_writes_as_an_admin() {
    let f = setup();
    for who in [Actor::Operator, Actor::System] {
        assert!(matches!(
            f.dir.delete(&who, &dn("cn=root,ou=users")),
            Err(WriteError::UnwillingToPerform(_))
        ));
    }
    assert!(matches!(
        f.dir
            .add(&Actor::Operator, &dn("cn=x,ou=users"), &person(&[]), None),
        Ok(Progress::Done(_))
    ));
    assert!(matches!(
        f.dir.delete(&Actor::Operator, &dn("cn=alice,ou=users")),
        Ok(Progress::Done(_))
    ));
    assert!(f.dir.store().user_by_name("alice").expect("read").is_none());
}

#[test]
fn add_group_with_members_then_modify_them() {
    let f = setup();
    let store = f.dir.store();
    let attrs = vec![
        a("objectClass", &["groupOfNames", "posixGroup"]),
        a("cn", &["staff"]),
        a("description", &["Everyone"]),
        a(
            "member",
            &[
                "cn=alice,ou=users,dc=example,dc=com",
                "cn=admins,ou=groups,dc=example,dc=com",
            ],
        ),
    ];
    done(f.dir.add(&f.admin, &dn("cn=staff,ou=groups"), &attrs, None));
    let staff = store.group_by_name("staff").expect("read").expect("exists");
    let alice = store.user_by_name("alice").expect("read").expect("exists");
    let root = store.user_by_name("root").expect("read").expect("exists");
    let admins = store
        .group_by_name("admins")
        .expect("read")
        .expect("exists");
    assert_eq!(store.members(staff.id).expect("members").len(), 2);

    let target = dn("cn=staff,ou=groups");
    let modify = |changes: &[Modification]| f.dir.modify(&f.admin, &target, changes, None);
    // Add a present member: 20; delete an absent one: 16; unknown: 19.
    assert!(matches!(
        modify(&[m(
            ModKind::Add,
            "member",
            &["CN=Alice,OU=Users,DC=example,DC=com"]
        )]),
        Err(WriteError::AttributeOrValueExists(_))
    ));
    assert!(matches!(
        modify(&[m(ModKind::Delete, "memberUid", &["root"])]),
        Err(WriteError::NoSuchAttribute(_))
    ));
    assert!(matches!(
        modify(&[m(
            ModKind::Add,
            "member",
            &["cn=ghost,ou=users,dc=example,dc=com"]
        )]),
        Err(WriteError::ConstraintViolation(_))
    ));
    // A request that fails half-way changes nothing.
    assert!(matches!(
        modify(&[
            m(ModKind::Add, "memberUid", &["root"]),
            m(ModKind::Delete, "description", &["Nobody"]),
        ]),
        Err(WriteError::NoSuchAttribute(_))
    ));
    assert!(!store
        .members(staff.id)
        .expect("members")
        .contains(&Member::User(root.id)));
    // Add and delete in one request.
    done(modify(&[
        m(ModKind::Add, "memberUid", &["root"]),
        m(
            ModKind::Delete,
            "member",
            &["cn=alice,ou=users,dc=example,dc=com"],
        ),
        m(ModKind::Replace, "description", &["Staff"]),
    ]));
    let members = store.members(staff.id).expect("members");
    assert!(members.contains(&Member::User(root.id)));
    assert!(members.contains(&Member::Group(admins.id)));
    assert!(!members.contains(&Member::User(alice.id)));
    assert_eq!(
        store
            .group(staff.id)
            .expect("g")
            .and_then(|g| g.description),
        Some("Staff".into())
    );
    // A cycle (admins ⊂ staff, so staff ⊄ admins).
    assert!(matches!(
        f.dir.modify(
            &f.admin,
            &dn("cn=admins,ou=groups"),
            &[m(
                ModKind::Add,
                "member",
                &["cn=staff,ou=groups,dc=example,dc=com"]
            )],
            None
        ),
        Err(WriteError::ConstraintViolation(_))
    ));
    // The last admin cannot be taken out of admins.
    assert!(matches!(
        f.dir.modify(
            &f.admin,
            &dn("cn=admins,ou=groups"),
            &[m(ModKind::Delete, "member", &[])],
            None
        ),
        Err(WriteError::UnwillingToPerform(_))
    ));
    // Ordinary users do not write groups. alice has left staff, so she
    // may not read it: it is missing for her (this asserted 50 before the
    // no-disclosure rule, issue 16); back in it, she reads it: 50.
    let alice_modifies = || {
        f.dir.modify(
            &f.alice,
            &target,
            &[m(ModKind::Replace, "description", &["x"])],
            None,
        )
    };
    assert!(matches!(
        alice_modifies(),
        Err(WriteError::NoSuchObject { matched: None, .. })
    ));
    store
        .add_member(staff.id, Member::User(alice.id))
        .expect("member");
    assert!(matches!(
        alice_modifies(),
        Err(WriteError::InsufficientAccess(_))
    ));
}

#[test]
fn modify_user_semantics() {
    let f = setup();
    let store = f.dir.store();
    let target = dn("cn=alice,ou=users");
    let modify = |changes: &[Modification]| f.dir.modify(&f.admin, &target, changes, None);
    done(modify(&[
        m(ModKind::Replace, "mail", &["liddell@example.com"]),
        m(ModKind::Add, "givenName", &["Alice"]),
        m(ModKind::Replace, "displayName", &["Alice Liddell"]),
    ]));
    let alice = store.user_by_name("alice").expect("read").expect("exists");
    assert_eq!(alice.email.as_deref(), Some("liddell@example.com"));
    assert_eq!(alice.full_name.as_deref(), Some("Alice Liddell"));
    assert_eq!(alice.attrs.get("givenName"), Some("Alice"));
    assert!(store
        .user_by_email("alice@example.com")
        .expect("idx")
        .is_none());

    let refused = [
        (m(ModKind::Add, "givenName", &["alice"]), "20"),
        (m(ModKind::Add, "givenName", &["Other"]), "19"),
        (m(ModKind::Delete, "title", &[]), "16"),
        (m(ModKind::Delete, "givenName", &["Bob"]), "16"),
        (m(ModKind::Replace, "uidNumber", &["7"]), "53"),
        (m(ModKind::Replace, "cn", &["bob"]), "67"),
        (m(ModKind::Replace, "objectClass", &["person"]), "69"),
        (m(ModKind::Replace, "memberOf", &[]), "19"),
        (m(ModKind::Replace, "mail", &["root@example.com"]), "19"),
        (m(ModKind::Replace, "bogus", &["x"]), "17"),
        (
            m(
                ModKind::Replace,
                "member",
                &["cn=root,ou=users,dc=example,dc=com"],
            ),
            "65",
        ),
        (m(ModKind::Delete, "userPassword", &[]), "53"),
    ];
    for (change, code) in refused {
        let r = modify(std::slice::from_ref(&change));
        let got = match &r {
            Err(WriteError::AttributeOrValueExists(_)) => "20",
            Err(WriteError::ConstraintViolation(_)) => "19",
            Err(WriteError::NoSuchAttribute(_)) => "16",
            Err(WriteError::UnwillingToPerform(_)) => "53",
            Err(WriteError::NotAllowedOnRdn(_)) => "67",
            Err(WriteError::ObjectClassModsProhibited(_)) => "69",
            Err(WriteError::UndefinedAttributeType(_)) => "17",
            Err(WriteError::ObjectClassViolation(_)) => "65",
            _ => "other",
        };
        assert_eq!(got, code, "{change:?}: {r:?}");
    }
    assert_eq!(
        store.user_by_name("alice").expect("read"),
        Some(alice.clone())
    );

    // An admin sets the password: hashed by the caller, generation bumped.
    let pw = [m(ModKind::Replace, "userPassword", &["n3w-Looking-Glass"])];
    assert!(matches!(modify(&pw), Ok(Progress::NeedsHash(_))));
    done(f.dir.modify(&f.admin, &target, &pw, Some("$argon2id$fake")));
    let after = store.user_by_name("alice").expect("read").expect("exists");
    assert_eq!(after.cred_generation, alice.cred_generation + 1);
    assert_eq!(
        store.password_hash(after.id).expect("hash").as_deref(),
        Some("$argon2id$fake")
    );
}

#[test]
fn self_service_rules() {
    let f = setup();
    let own = dn("cn=alice,ou=users");
    done(f.dir.modify(
        &f.alice,
        &own,
        &[m(ModKind::Replace, "displayName", &["Alice L."])],
        None,
    ));
    for change in [
        m(ModKind::Replace, "uidNumber", &["0"]),
        m(ModKind::Replace, "homeDirectory", &["/root"]),
        m(ModKind::Replace, "userPassword", &["x"]),
        m(ModKind::Replace, "memberOf", &[]),
    ] {
        let r = f.dir.modify(&f.alice, &own, &[change], None);
        assert!(matches!(r, Err(WriteError::InsufficientAccess(_))), "{r:?}");
    }
    // Someone else's entry, which alice may not read, is missing for her
    // (this asserted 50 before the no-disclosure rule, issue 16).
    let r = f.dir.modify(
        &f.alice,
        &dn("cn=root,ou=users"),
        &[m(ModKind::Replace, "displayName", &["pwned"])],
        None,
    );
    assert!(
        matches!(r, Err(WriteError::NoSuchObject { matched: None, .. })),
        "{r:?}"
    );
    let r = f.dir.modify(
        &Actor::Bound(Identity::Anonymous),
        &own,
        &[m(ModKind::Replace, "displayName", &["x"])],
        None,
    );
    assert!(matches!(r, Err(WriteError::InsufficientAccess(_))), "{r:?}");
    // The search group only reads.
    let store = f.dir.store();
    let search = store
        .group_by_name("ldap-search")
        .expect("read")
        .expect("exists");
    let alice = store.user_by_name("alice").expect("read").expect("exists");
    store
        .add_member(search.id, Member::User(alice.id))
        .expect("member");
    let r = f.dir.delete(&f.alice, &dn("cn=root,ou=users"));
    assert!(matches!(r, Err(WriteError::InsufficientAccess(_))), "{r:?}");
}

#[test]
fn delete_and_rename() {
    let f = setup();
    let store = f.dir.store();
    let del = |d: &str| f.dir.delete(&f.admin, &dn(d));
    assert!(matches!(
        del("ou=users"),
        Err(WriteError::NotAllowedOnNonLeaf(_))
    ));
    assert!(matches!(
        f.dir.delete(&f.admin, &Dn::parse(BASE).expect("dn")),
        Err(WriteError::NotAllowedOnNonLeaf(_))
    ));
    assert!(matches!(
        del("cn=ghost,ou=users"),
        Err(WriteError::NoSuchObject {
            matched: Some(_),
            ..
        })
    ));
    assert!(matches!(
        del("cn=admins,ou=groups"),
        Err(WriteError::UnwillingToPerform(_))
    ));
    // The last admin stays.
    assert!(matches!(
        del("cn=root,ou=users"),
        Err(WriteError::UnwillingToPerform(_))
    ));

    let ren = |d: &str, rdn: &str, sup: Option<&str>| f.dir.rename(&f.admin, &dn(d), rdn, sup);
    done(ren("cn=alice,ou=users", "cn=alicia", None));
    assert!(store.user_by_name("alice").expect("read").is_none());
    assert!(store.user_by_name("alicia").expect("read").is_some());
    assert!(matches!(
        ren("cn=alicia,ou=users", "cn=root", None),
        Err(WriteError::AlreadyExists(_))
    ));
    assert!(matches!(
        ren(
            "cn=alicia,ou=users",
            "cn=x",
            Some("ou=groups,dc=example,dc=com")
        ),
        Err(WriteError::UnwillingToPerform(_))
    ));
    done(ren(
        "uid=alicia,ou=users",
        "uid=alice2",
        Some("ou=users,dc=example,dc=com"),
    ));
    assert!(matches!(
        ren("cn=alice2,ou=users", "sn=x", None),
        Err(WriteError::NamingViolation(_))
    ));
    assert!(matches!(
        ren("cn=admins,ou=groups", "cn=wheel", None),
        Err(WriteError::UnwillingToPerform(_))
    ));
    done(f.dir.add(
        &f.admin,
        &dn("cn=devs,ou=groups"),
        &[a("objectClass", &["groupOfNames"])],
        None,
    ));
    done(ren("cn=devs,ou=groups", "cn=developers", None));
    assert!(store.group_by_name("developers").expect("read").is_some());
    done(del("cn=developers,ou=groups"));
    done(del("cn=alice2,ou=users"));
    assert!(store.user_by_name("alice2").expect("read").is_none());
}

/// A write about an entry the writer may not read answers exactly as one
/// about a missing entry; one about an entry they read but may not change
/// is 50; admins get the real answers.
#[test]
fn writes_disclose_no_unreadable_entry() {
    let f = setup();
    let store = f.dir.store();
    let team = store.create_group("team", None).expect("group");
    let alice = store.user_by_name("alice").expect("read").expect("exists");
    store
        .add_member(team.id, Member::User(alice.id))
        .expect("member");
    let answers = |who: &Actor, target: &str| -> Vec<String> {
        let d = dn(target);
        let change = [m(ModKind::Replace, "description", &["x"])];
        let below = dn(&format!("cn=y,{target}"));
        [
            f.dir.modify(who, &d, &change, None).map(|_| ()),
            f.dir.delete(who, &d).map(|_| ()),
            f.dir.rename(who, &d, "cn=renamed", None).map(|_| ()),
            f.dir.add(who, &below, &person(&[]), None).map(|_| ()),
        ]
        .into_iter()
        .map(|r| format!("{r:?}"))
        .collect()
    };
    let missing = r#"Err(NoSuchObject { matched: None, message: "no such object" })"#;
    for (hidden, absent) in [
        ("cn=root,ou=users", "cn=nobody,ou=users"),
        ("cn=admins,ou=groups", "cn=nobody,ou=groups"),
    ] {
        let got = answers(&f.alice, hidden);
        assert_eq!(got, vec![missing.to_string(); 4], "{hidden}");
        assert_eq!(got, answers(&f.alice, absent), "{hidden}");
        // An admin learns that one exists and the other does not.
        assert_ne!(answers(&f.admin, absent), answers(&f.admin, hidden));
    }
    assert!(matches!(
        f.dir.delete(&f.admin, &dn("cn=nobody,ou=users")),
        Err(WriteError::NoSuchObject {
            matched: Some(_),
            ..
        })
    ));
    // Her own entry and her group: she reads them, so 50.
    for readable in ["cn=alice,ou=users", "cn=team,ou=groups"] {
        let d = dn(readable);
        let r = f.dir.delete(&f.alice, &d);
        assert!(matches!(r, Err(WriteError::InsufficientAccess(_))), "{r:?}");
        let r = f.dir.rename(&f.alice, &d, "cn=renamed", None);
        assert!(matches!(r, Err(WriteError::InsufficientAccess(_))), "{r:?}");
    }
    let r = f.dir.modify(
        &f.alice,
        &dn("cn=team,ou=groups"),
        &[m(ModKind::Replace, "description", &["x"])],
        None,
    );
    assert!(matches!(r, Err(WriteError::InsufficientAccess(_))), "{r:?}");
    // Anonymous clients: 50 whatever exists.
    let anon = Actor::Bound(Identity::Anonymous);
    assert_eq!(
        answers(&anon, "cn=root,ou=users"),
        answers(&anon, "cn=nobody,ou=users")
    );
}
