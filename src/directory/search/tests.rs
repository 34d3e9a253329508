//! Tests of the directory's searches: memberOf, access, caching.

use super::*;
use crate::store::NewUser;
use ldap3_proto::proto::LdapFilter;

const BASE: &str = "dc=example,dc=com";

struct Fx {
    store: Store,
    root: Identity,
    alice: Identity,
    staff: GroupId,
    devs: GroupId,
}

/// root (admin); alice in devs; devs nested in staff.
fn fixture() -> Fx {
    let store = Store::temporary().expect("store");
    let admins = store.create_group("admins", None).expect("group");
    let staff = store.create_group("staff", None).expect("group");
    let devs = store.create_group("devs", None).expect("group");
    let user = |name: &str| {
        let u = new_user(&store, name);
        (
            u.id,
            Identity::User {
                id: u.id,
                username: name.into(),
            },
        )
    };
    let (root_id, root) = user("root");
    let (alice_id, alice) = user("alice");
    store
        .add_member(admins.id, Member::User(root_id))
        .expect("member");
    store
        .add_member(devs.id, Member::User(alice_id))
        .expect("member");
    store
        .add_member(staff.id, Member::Group(devs.id))
        .expect("member");
    Fx {
        store,
        root,
        alice,
        staff: staff.id,
        devs: devs.id,
    }
}

/// A new user named `name`.
fn new_user(store: &Store, name: &str) -> crate::store::User {
    store
        .create_user(NewUser {
            username: name.into(),
            ..NewUser::default()
        })
        .expect("user")
}

/// A user the fixture holds.
fn user_named(store: &Store, name: &str) -> crate::store::User {
    store.user_by_name(name).expect("read").expect(name)
}

fn dir(fx: &Fx, transitive_member_of: bool) -> Directory {
    Directory::with_options(
        fx.store.clone(),
        Dn::parse(BASE).expect("dn"),
        "admins",
        "ldap-search",
        DirectoryOptions {
            transitive_member_of,
        },
    )
}

fn eq(attr: &str, value: &str) -> LdapFilter {
    LdapFilter::Equality(attr.into(), value.into())
}

/// The DNs a subtree search under the base finds.
fn found(d: &Directory, who: &Identity, filter: LdapFilter) -> Vec<String> {
    let q = SearchQuery {
        base: Dn::parse(BASE).expect("dn").into(),
        scope: Scope::Sub,
        filter: Filter::from_ldap(&filter).into(),
        deadline: None,
    };
    let mut dns: Vec<String> = d
        .search(who, &q)
        .expect("search")
        .entries
        .iter()
        .map(|e| e.dn.to_string())
        .collect();
    dns.sort();
    dns
}

fn member_of(d: &Directory, who: &Identity, dn: &str) -> Vec<String> {
    let e = d.read(who, &Dn::parse(dn).expect("dn")).expect("read");
    e.get("memberOf")
        .map(<[String]>::to_vec)
        .unwrap_or_default()
}

const STAFF: &str = "cn=staff,ou=groups,dc=example,dc=com";
const DEVS: &str = "cn=devs,ou=groups,dc=example,dc=com";
const ALICE: &str = "cn=alice,ou=users,dc=example,dc=com";

#[test]
fn direct_member_of_by_default() {
    let fx = fixture();
    let d = dir(&fx, false);
    assert_eq!(member_of(&d, &fx.root, ALICE), [DEVS]);
    // devs is a direct member of staff; alice only through devs.
    assert_eq!(found(&d, &fx.root, eq("memberOf", STAFF)), [DEVS]);
    assert_eq!(found(&d, &fx.root, eq("memberOf", DEVS)), [ALICE]);
    // The in-chain rule resolves nesting whatever the option says.
    let chain = LdapFilter::Extensible(ldap3_proto::proto::LdapMatchingRuleAssertion {
        matching_rule: Some("1.2.840.113556.1.4.1941".into()),
        type_: Some("memberOf".into()),
        match_value: STAFF.into(),
        dn_attributes: false,
    });
    assert_eq!(found(&d, &fx.root, chain), [ALICE, DEVS]);
}

/// The groups memberOf lists are kept per membership epoch: a renamed
/// group is listed under its new name, a deleted one not at all, in name
/// order.
#[test]
fn member_of_lists_groups_as_they_are_named_now() {
    let fx = fixture();
    let d = dir(&fx, false);
    // Twice: the second from what the first kept.
    assert_eq!(member_of(&d, &fx.root, ALICE), [DEVS]);
    assert_eq!(member_of(&d, &fx.root, ALICE), [DEVS]);
    fx.store
        .rename_group(fx.devs, "developers")
        .expect("rename");
    let developers = "cn=developers,ou=groups,dc=example,dc=com";
    assert_eq!(member_of(&d, &fx.root, ALICE), [developers]);
    let alice = user_named(&fx.store, "alice");
    let aardvarks = fx.store.create_group("aardvarks", None).expect("group");
    for g in [fx.staff, aardvarks.id] {
        fx.store
            .add_member(g, Member::User(alice.id))
            .expect("member");
    }
    let aardvarks_dn = "cn=aardvarks,ou=groups,dc=example,dc=com";
    assert_eq!(
        member_of(&d, &fx.root, ALICE),
        [aardvarks_dn, developers, STAFF]
    );
    fx.store.delete_group(fx.staff).expect("delete");
    assert_eq!(member_of(&d, &fx.root, ALICE), [aardvarks_dn, developers]);
    // Asked for by a lookup of users too.
    let f = LdapFilter::And(vec![eq("uid", "alice"), eq("memberOf", developers)]);
    assert_eq!(found(&d, &fx.root, f), [ALICE]);
}

/// Each user's memberOf as a search over every user lists it, in DN order.
fn walked_member_of(d: &Directory, who: &Identity) -> Vec<(String, Vec<String>)> {
    let q = SearchQuery {
        base: Dn::parse("ou=users,dc=example,dc=com").expect("dn").into(),
        scope: Scope::Sub,
        filter: Filter::from_ldap(&LdapFilter::Present("objectClass".into())).into(),
        deadline: None,
    };
    let mut out: Vec<(String, Vec<String>)> = d
        .search(who, &q)
        .expect("search")
        .entries
        .iter()
        .filter(|e| e.dn.to_string() != "ou=users,dc=example,dc=com")
        .map(|e| {
            let listed = e.get("memberOf").map(<[String]>::to_vec);
            (e.dn.to_string(), listed.unwrap_or_default())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_walk_over_every_user_lists_the_groups_each_users_read_does() {
    // A pass over every user takes its memberOf from the directory-wide
    // map of direct groups; a read of one user from the per-user cache.
    for transitive in [false, true] {
        let fx = fixture();
        let d = dir(&fx, transitive);
        let agree = |want_alice: &[&str]| {
            let walked = walked_member_of(&d, &fx.root);
            assert_eq!(walked.len(), 2, "{walked:?}");
            for (dn, listed) in &walked {
                assert_eq!(*listed, member_of(&d, &fx.root, dn), "{dn} {transitive}");
            }
            let alice = walked.iter().find(|(dn, _)| dn == ALICE).expect("alice");
            assert_eq!(alice.1, want_alice, "transitive {transitive}");
        };
        let developers = "cn=developers,ou=groups,dc=example,dc=com";
        if transitive {
            agree(&[DEVS, STAFF]);
        } else {
            agree(&[DEVS]);
        }
        let alice = user_named(&fx.store, "alice");
        fx.store
            .add_member(fx.staff, Member::User(alice.id))
            .expect("member");
        agree(&[DEVS, STAFF]);
        fx.store
            .rename_group(fx.devs, "developers")
            .expect("rename");
        agree(&[developers, STAFF]);
        fx.store
            .remove_member(fx.devs, Member::User(alice.id))
            .expect("remove");
        agree(&[STAFF]);
        fx.store.delete_group(fx.staff).expect("delete");
        agree(&[]);
    }
}

#[test]
fn transitive_member_of_serves_and_filters_the_same_groups() {
    let fx = fixture();
    let d = dir(&fx, true);
    assert_eq!(member_of(&d, &fx.root, ALICE), [DEVS, STAFF]);
    assert_eq!(member_of(&d, &fx.root, DEVS), [STAFF]);
    // The index answer and a filter evaluated per entry agree.
    assert_eq!(found(&d, &fx.root, eq("memberOf", STAFF)), [ALICE, DEVS]);
    let and = LdapFilter::And(vec![
        eq("objectClass", "inetOrgPerson"),
        eq("memberOf", STAFF),
    ]);
    assert_eq!(found(&d, &fx.root, and), [ALICE]);
    let or = LdapFilter::Or(vec![
        eq("memberOf", STAFF),
        LdapFilter::Present("nosuchattribute".into()),
    ]);
    assert_eq!(found(&d, &fx.root, or), [ALICE, DEVS]);
    // A user reads its own entry with the same memberOf.
    assert_eq!(member_of(&d, &fx.alice, ALICE), [DEVS, STAFF]);

    // Unnesting takes effect on the next search (the cache follows
    // the membership epoch).
    fx.store
        .remove_member(fx.staff, Member::Group(fx.devs))
        .expect("remove");
    assert_eq!(member_of(&d, &fx.root, ALICE), [DEVS]);
    assert!(found(&d, &fx.root, eq("memberOf", STAFF)).is_empty());
    assert!(member_of(&d, &fx.root, DEVS).is_empty());
}

#[test]
fn cached_access_and_group_entries_follow_changes() {
    let fx = fixture();
    let d = dir(&fx, false);
    // alice reads her own entry and her groups (nested ones too), not
    // root's entry nor the admins group.
    assert_eq!(
        found(&d, &fx.alice, LdapFilter::Present("objectClass".into())),
        [ALICE, DEVS, STAFF]
    );
    let members = |d: &Directory| {
        let e = d
            .read(&fx.root, &Dn::parse(DEVS).expect("dn"))
            .expect("read");
        e.get("member").map(<[String]>::to_vec).unwrap_or_default()
    };
    assert_eq!(members(&d), [ALICE]);
    let bob = new_user(&fx.store, "Bob");
    fx.store
        .add_member(fx.devs, Member::User(bob.id))
        .expect("member");
    assert_eq!(members(&d), [ALICE, "cn=Bob,ou=users,dc=example,dc=com"]);
    // Served from the cached entry, a selection gives what the full
    // entry gives.
    for req in [&["member"][..], &["cn", "+"], &["1.1"], &["*"]] {
        let req: Vec<String> = req.iter().map(|s| s.to_string()).collect();
        let q = SearchQuery {
            base: Dn::parse(DEVS).expect("dn").into(),
            scope: Scope::Base,
            filter: Filter::from_ldap(&eq("cn", "devs")).into(),
            deadline: None,
        };
        let part = d
            .search_selecting(&fx.root, &q, &Wanted::selected(&req), &|| false)
            .expect("search")
            .entries;
        let full = d.search(&fx.root, &q).expect("search").entries;
        assert_eq!(part.len(), 1);
        assert_eq!(part[0].select(&req, false), full[0].select(&req, false));
    }

    // Disabling does not move the membership epoch, yet takes effect.
    let alice_id = match &fx.alice {
        Identity::User { id, .. } => *id,
        Identity::Anonymous => unreachable!(),
    };
    fx.store
        .update_user(alice_id, &|u| {
            u.disabled = true;
            Ok(())
        })
        .expect("disable");
    let q = SearchQuery {
        base: Dn::parse(BASE).expect("dn").into(),
        scope: Scope::Sub,
        filter: Filter::from_ldap(&LdapFilter::Present("objectClass".into())).into(),
        deadline: None,
    };
    assert!(matches!(
        d.search(&fx.alice, &q),
        Err(DirectoryError::InsufficientAccess(_))
    ));
}

fn at(d: &Directory, who: &Identity, base: &str, scope: Scope) -> Result<usize, String> {
    let q = SearchQuery {
        base: Dn::parse(base).expect("dn").into(),
        scope,
        filter: Filter::from_ldap(&LdapFilter::Present("objectClass".into())).into(),
        deadline: None,
    };
    match d.search(who, &q) {
        Ok(r) => Ok(r.entries.len()),
        Err(DirectoryError::NoSuchObject { matched }) => {
            Err(format!("32 {:?}", matched.map(|m| m.to_string())))
        }
        Err(e) => Err(e.to_string()),
    }
}

const SCOPES: [Scope; 4] = [Scope::Base, Scope::One, Scope::Sub, Scope::Children];

#[test]
fn unreadable_entries_answer_as_missing_ones() {
    let fx = fixture();
    let d = dir(&fx, false);
    let users = format!("ou=users,{BASE}");
    let groups = format!("ou=groups,{BASE}");
    // alice reads neither root nor admins: each answers as a missing
    // entry at the same place does, at every scope, without matchedDN.
    for (hidden, missing) in [
        (format!("cn=root,{users}"), format!("cn=nobody,{users}")),
        (format!("cn=admins,{groups}"), format!("cn=nobody,{groups}")),
    ] {
        for scope in SCOPES {
            let answer = at(&d, &fx.alice, &hidden, scope);
            assert_eq!(answer, Err("32 None".into()), "{hidden} {scope:?}");
            assert_eq!(answer, at(&d, &fx.alice, &missing, scope), "{scope:?}");
        }
        let read = |dn: &str| match d.read(&fx.alice, &Dn::parse(dn).expect("dn")) {
            Err(DirectoryError::NoSuchObject { matched: None }) => true,
            other => panic!("{other:?}"),
        };
        assert!(read(&hidden) && read(&missing));
        // An admin gets the real answers: the entry, and matchedDN.
        assert_eq!(at(&d, &fx.root, &hidden, Scope::Base), Ok(1));
        let parent = if hidden.contains("ou=users") {
            &users
        } else {
            &groups
        };
        assert_eq!(
            at(&d, &fx.root, &missing, Scope::Base),
            Err(format!("32 {:?}", Some(parent)))
        );
    }
    // Below a readable entry or a container: no matchedDN for alice either.
    let under_own = format!("cn=x,cn=alice,{users}");
    assert_eq!(
        at(&d, &fx.alice, &under_own, Scope::Sub),
        Err("32 None".into())
    );
    // What alice reads answers as before.
    assert_eq!(
        at(&d, &fx.alice, &format!("cn=alice,{users}"), Scope::Base),
        Ok(1)
    );
    assert_eq!(
        at(&d, &fx.alice, &format!("cn=staff,{groups}"), Scope::Base),
        Ok(1)
    );
    assert_eq!(
        at(&d, &fx.alice, &format!("cn=alice,{users}"), Scope::One),
        Ok(0)
    );
    assert_eq!(at(&d, &fx.alice, &users, Scope::Sub), Ok(1));
    assert_eq!(at(&d, &fx.alice, BASE, Scope::Sub), Ok(3));
}

#[test]
fn discloses_follows_the_read_rules() {
    let fx = fixture();
    let d = dir(&fx, false);
    let says = |who: &Identity, dn: &str| {
        d.discloses(who, &Dn::parse(dn).expect("dn"))
            .expect("discloses")
    };
    let users = format!("ou=users,{BASE}");
    let groups = format!("ou=groups,{BASE}");
    let shown = [
        String::new(),
        "cn=subschema".into(),
        BASE.into(),
        users.clone(),
        groups.clone(),
        format!("cn=alice,{users}"),
        format!("cn=devs,{groups}"),
        format!("cn=staff,{groups}"),
    ];
    let hidden = [
        format!("cn=root,{users}"),
        format!("cn=nobody,{users}"),
        format!("cn=admins,{groups}"),
        format!("cn=nobody,{groups}"),
        format!("cn=x,cn=alice,{users}"),
        format!("ou=other,{BASE}"),
        "dc=elsewhere,dc=org".into(),
    ];
    for dn in &shown {
        assert!(says(&fx.alice, dn), "alice {dn}");
        assert!(says(&fx.root, dn), "root {dn}");
    }
    for dn in &hidden {
        assert!(!says(&fx.alice, dn), "alice {dn}");
        assert!(says(&fx.root, dn), "root {dn}");
        assert!(!says(&Identity::Anonymous, dn), "anonymous {dn}");
    }
    assert!(says(&Identity::Anonymous, ""));
    assert!(!says(&Identity::Anonymous, &users));
}

/// The fixture plus `ops` nested in devs (staff ⊃ devs ⊃ ops) holding bob.
fn deeper() -> (Fx, UserId, GroupId) {
    let fx = fixture();
    let ops = fx.store.create_group("ops", None).expect("group");
    let bob = new_user(&fx.store, "bob");
    fx.store
        .add_member(ops.id, Member::User(bob.id))
        .expect("member");
    fx.store
        .add_member(fx.devs, Member::Group(ops.id))
        .expect("member");
    (fx, bob.id, ops.id)
}

fn chain(attr: &str, dn: &str) -> LdapFilter {
    LdapFilter::Extensible(ldap3_proto::proto::LdapMatchingRuleAssertion {
        matching_rule: Some("1.2.840.113556.1.4.1941".into()),
        type_: Some(attr.into()),
        match_value: dn.into(),
        dn_attributes: false,
    })
}

/// Which index each filter shape uses: the candidates the planner names
/// (`Set`) or none (`All`, a scan checked by the filter).
#[test]
fn planner_rules() {
    let (fx, bob, ops) = deeper();
    let d = dir(&fx, false);
    let alice = fx.store.user_id_by_name("alice").unwrap().unwrap();
    let users = |f: LdapFilter| match d.plan_users(&Filter::from_ldap(&f)).expect("plan").cands {
        Cands::All => None,
        Cands::Set(s) => Some(s.into_iter().collect::<Vec<_>>()),
        Cands::AllBut(s) => panic!("every user but {s:?}"),
    };
    let epoch = fx.store.membership_epoch().unwrap();
    let groups = |f: LdapFilter| match d
        .plan_groups(&Filter::from_ldap(&f), epoch)
        .expect("plan")
        .cands
    {
        Cands::All => None,
        Cands::Set(s) => Some(s.into_iter().collect::<Vec<_>>()),
        Cands::AllBut(s) => panic!("every group but {s:?}"),
    };
    fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
        v.sort();
        v
    }
    // Users.
    assert_eq!(users(eq("uid", "alice")), Some(vec![alice]));
    assert_eq!(users(eq("cn", "nobody")), Some(vec![]));
    assert_eq!(
        users(eq("memberOf", DEVS)),
        Some(vec![alice]),
        "direct only"
    );
    assert_eq!(
        users(chain("memberOf", STAFF)),
        Some(sorted(vec![alice, bob])),
        "in-chain: through nesting"
    );
    assert_eq!(
        users(eq("member", ALICE)),
        Some(vec![]),
        "users have no members"
    );
    assert_eq!(users(eq("objectClass", "posixGroup")), Some(vec![]));
    // An attribute type the schema does not know is Undefined for every
    // entry: never True, so it matches nothing in AND or OR (Nextcloud's
    // login filter), and narrows nothing under NOT.
    assert_eq!(users(eq("mailPrimaryAddress", "alice")), Some(vec![]));
    assert_eq!(
        users(LdapFilter::Or(vec![
            eq("uid", "alice"),
            eq("mailPrimaryAddress", "alice"),
            eq("mail", "nobody@example.com"),
        ])),
        Some(vec![alice]),
        "an unknown type in an OR leaves the other terms' candidates"
    );
    assert_eq!(
        users(LdapFilter::Not(Box::new(eq("mailPrimaryAddress", "alice")))),
        None,
        "NOT narrows nothing"
    );
    assert_eq!(groups(eq("mailPrimaryAddress", "devs")), Some(vec![]));
    assert_eq!(
        users(eq("objectClass", "inetOrgPerson")),
        None,
        "costs nothing"
    );
    assert_eq!(
        users(LdapFilter::And(vec![
            eq("objectClass", "inetOrgPerson"),
            eq("memberOf", DEVS)
        ])),
        Some(vec![alice]),
        "AND: the index term wherever it stands"
    );
    assert_eq!(
        users(LdapFilter::Or(vec![eq("uid", "alice"), eq("uid", "bob")])),
        Some(sorted(vec![alice, bob])),
        "OR: united"
    );
    assert_eq!(
        users(LdapFilter::Or(vec![
            eq("uid", "alice"),
            LdapFilter::Present("mail".into())
        ])),
        None,
        "OR with a term that can match anything"
    );
    assert_eq!(users(LdapFilter::Not(Box::new(eq("uid", "alice")))), None);
    // Groups.
    assert_eq!(groups(eq("cn", "devs")), Some(vec![fx.devs]));
    assert_eq!(groups(eq("memberUid", "alice")), Some(vec![fx.devs]));
    assert_eq!(groups(eq("member", ALICE)), Some(vec![fx.devs]));
    assert_eq!(
        groups(eq("memberOf", STAFF)),
        Some(vec![fx.devs]),
        "direct children"
    );
    assert_eq!(
        groups(chain("memberOf", STAFF)),
        Some(sorted(vec![fx.devs, ops])),
        "in-chain: every nested group"
    );
    assert_eq!(
        groups(chain("member", "cn=bob,ou=users,dc=example,dc=com")),
        Some(sorted(vec![fx.staff, fx.devs, ops])),
        "in-chain: every group bob is in"
    );
    assert_eq!(groups(eq("uid", "alice")), Some(vec![]));
    assert_eq!(groups(eq("objectClass", "groupOfNames")), None);
    // SSSD's user lookup: (!(uidNumber=N)) removes the user holding N
    // from the name index's answer, and leaves nothing to check.
    let alice_number = fx.store.user(alice).unwrap().unwrap().uid_number;
    let not_number = |n: &str| LdapFilter::Not(Box::new(eq("uidNumber", n)));
    let sssd = |uid: &str, n: &str| {
        LdapFilter::And(vec![
            eq("uid", uid),
            eq("objectclass", "posixAccount"),
            LdapFilter::Present("uid".into()),
            LdapFilter::And(vec![LdapFilter::Present("uidNumber".into()), not_number(n)]),
        ])
    };
    let sssd_filter = Filter::from_ldap(&sssd("alice", "0"));
    let plan = d.plan_users(&sssd_filter).expect("plan");
    assert!(matches!(&plan.cands, Cands::Set(s) if s.iter().eq([&alice])));
    assert!(plan.residual.is_empty(), "{:?}", plan.residual);
    assert_eq!(
        users(sssd("alice", &alice_number.to_string())),
        Some(vec![])
    );
    assert_eq!(
        users(sssd("alice", &format!("00{alice_number}"))),
        Some(vec![])
    );
    // A value the integer rule cannot read is Undefined: left to the filter.
    let plus = Filter::from_ldap(&not_number(&format!("+{alice_number}")));
    let plan = d.plan_users(&plus).expect("plan");
    assert!(matches!(plan.cands, Cands::All) && !plan.residual.is_empty());
    // With transitive memberOf, a group's memberOf lists its ancestors.
    let t = dir(&fx, true);
    match t
        .plan_groups(&Filter::from_ldap(&eq("memberOf", STAFF)), epoch)
        .expect("plan")
        .cands
    {
        Cands::Set(s) => assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            sorted(vec![fx.devs, ops])
        ),
        Cands::All | Cands::AllBut(_) => panic!("memberOf is indexed"),
    }
}

/// What each filter shape leaves to evaluate on the candidates' entries
/// after the indexes: nothing where they answer exactly.
#[test]
fn exact_terms_leave_nothing_to_check() {
    let (fx, _, _) = deeper();
    let d = dir(&fx, false);
    let left = |f: LdapFilter| {
        let f = Filter::from_ldap(&f);
        let users = d.plan_users(&f).expect("plan").residual.len();
        let epoch = fx.store.membership_epoch().unwrap();
        let groups = d.plan_groups(&f, epoch).expect("plan").residual.len();
        (users, groups)
    };
    let present = |a: &str| LdapFilter::Present(a.into());
    // memberOf and in-chain terms are answered by the membership index.
    assert_eq!(left(eq("memberOf", DEVS)), (0, 0));
    assert_eq!(left(chain("memberOf", STAFF)), (0, 0));
    assert_eq!(left(chain("member", ALICE)), (0, 0));
    // member as the entries spell it; `uid=alice` names alice, but no
    // entry lists that DN, so the filter decides.
    assert_eq!(left(eq("member", ALICE)).1, 0);
    assert_eq!(
        left(eq("member", "CN=Alice, OU=users,DC=example,DC=com")).1,
        0
    );
    assert_eq!(
        left(eq("member", "uid=alice,ou=users,dc=example,dc=com")).1,
        1
    );
    assert_eq!(
        left(eq("uniqueMember", ALICE)).1,
        1,
        "groups list member only"
    );
    // memberUid as the entries list it (case-insensitive here).
    assert_eq!(left(eq("memberUid", "alice")).1, 0);
    assert_eq!(left(eq("memberUid", " ALICE ")).1, 0);
    // Classes and types every user or group has cost nothing.
    assert_eq!(left(eq("objectClass", "posixAccount")).0, 0);
    assert_eq!(left(eq("objectClass", "INETORGPERSON")).0, 0);
    assert_eq!(left(eq("objectClass", "posixGroup")).1, 0);
    assert_eq!(left(eq("objectClass", "groupOfNames")), (0, 0));
    assert_eq!(left(eq("objectClass", "device")), (1, 1));
    assert_eq!(left(present("cn")), (0, 0));
    assert_eq!(left(present("uidNumber")), (0, 0), "groups: matches none");
    assert_eq!(left(present("mail")).0, 1, "not every user has a mail");
    // uid and cn narrow to one candidate, exactly: the name index's key
    // is a name's ASCII lowercase, and a value it finds is the name in
    // another ASCII case (planned_searches_find_what_a_scan_finds checks
    // other spellings).
    assert_eq!(left(eq("uid", "alice")).0, 0);
    assert_eq!(left(eq("uid", " ALICE ")).0, 0);
    assert_eq!(left(eq("cn", "Alice")).0, 0);
    assert_eq!(left(eq("cn", "devs")).1, 0);
    // Numbers narrow to one candidate, checked by the filter.
    assert_eq!(left(eq("uidNumber", "2001")).0, 1);
    // AND leaves what its terms leave; OR is exact only when every term is.
    let sssd = LdapFilter::And(vec![
        eq("member", ALICE),
        eq("objectClass", "posixGroup"),
        present("cn"),
    ]);
    assert_eq!(left(sssd).1, 0, "SSSD's initgroups");
    let nslcd = LdapFilter::And(vec![
        eq("objectClass", "posixGroup"),
        LdapFilter::Or(vec![eq("memberUid", "alice"), eq("member", ALICE)]),
    ]);
    assert_eq!(left(nslcd).1, 0, "nslcd's initgroups");
    let partly = LdapFilter::And(vec![
        eq("objectClass", "posixAccount"),
        LdapFilter::Or(vec![eq("uid", "alice"), eq("sn", "alice")]),
    ]);
    assert_eq!(left(partly).0, 1, "the OR is left whole");
    let any = LdapFilter::Or(vec![eq("objectClass", "posixAccount"), eq("uid", "x")]);
    assert_eq!(
        left(any).0,
        0,
        "a term every user matches makes the OR true"
    );
    assert_eq!(
        left(LdapFilter::Not(Box::new(eq("memberOf", DEVS)))),
        (1, 1),
        "NOT is left to the filter"
    );
}

/// A planned search finds exactly what a scan finds: `(!(!F))` plans
/// nothing (NOT narrows nothing) and evaluates like F.
#[test]
fn planned_searches_find_what_a_scan_finds() {
    let (fx, _, _) = deeper();
    let bob = "cn=bob,ou=users,dc=example,dc=com";
    let shapes = vec![
        eq("uid", "alice"),
        eq("cn", "devs"),
        eq("memberOf", DEVS),
        eq("memberOf", STAFF),
        eq("member", ALICE),
        eq("member", DEVS),
        eq("memberUid", "bob"),
        eq("objectClass", "inetOrgPerson"),
        eq("objectClass", "posixGroup"),
        chain("memberOf", STAFF),
        chain("memberOf", DEVS),
        chain("member", bob),
        chain("member", DEVS),
        chain("memberOf", "cn=missing,ou=groups,dc=example,dc=com"),
        LdapFilter::And(vec![
            eq("objectClass", "inetOrgPerson"),
            chain("memberOf", STAFF),
        ]),
        LdapFilter::And(vec![eq("objectClass", "posixGroup"), eq("memberOf", STAFF)]),
        LdapFilter::Or(vec![
            eq("uid", "bob"),
            eq("cn", "staff"),
            chain("member", bob),
        ]),
        LdapFilter::Or(vec![eq("memberOf", STAFF), eq("memberUid", "alice")]),
        // Nextcloud's login filter: a type the schema does not know.
        LdapFilter::And(vec![
            eq("objectClass", "inetOrgPerson"),
            LdapFilter::Or(vec![
                eq("uid", "alice"),
                eq("mailPrimaryAddress", "alice"),
                eq("mail", "alice"),
            ]),
        ]),
        LdapFilter::Not(Box::new(eq("mailPrimaryAddress", "alice"))),
        LdapFilter::Or(vec![
            eq("mailPrimaryAddress", "x"),
            LdapFilter::Not(Box::new(eq("mailPrimaryAddress", "x"))),
        ]),
        // Terms the indexes answer exactly, spelled every way.
        eq("uid", "ALICE"),
        eq("cn", " Alice "),
        eq("cn", "DEVS"),
        eq("uid", "al ice"),
        eq("uid", "alïce"),
        LdapFilter::Not(Box::new(eq("uid", "Alice"))),
        LdapFilter::And(vec![eq("cn", "STAFF"), eq("objectClass", "posixGroup")]),
        eq("member", "CN=Alice, OU=users,DC=example,DC=com"),
        eq("member", "uid=alice,ou=users,dc=example,dc=com"),
        eq("member", "cn=ops,ou=groups,dc=example,dc=com"),
        eq("member", "cn=nobody,ou=users,dc=example,dc=com"),
        eq("uniqueMember", ALICE),
        eq("memberUid", "ALICE"),
        eq("memberUid", "alice"),
        eq("memberUid", " alice "),
        eq("objectClass", "TOP"),
        eq("objectClass", " posixAccount "),
        eq("objectClass", "2.5.6.6"),
        eq("objectClass", "device"),
        LdapFilter::Present("cn".into()),
        LdapFilter::Present("uidNumber".into()),
        LdapFilter::Present("gidNumber".into()),
        LdapFilter::Present("mail".into()),
        LdapFilter::Present("memberUid".into()),
        LdapFilter::Present("uid".into()),
        LdapFilter::And(vec![]),
        LdapFilter::Or(vec![]),
        LdapFilter::And(vec![
            eq("objectClass", "groupOfNames"),
            eq("member", "cn=bob,ou=users,dc=example,dc=com"),
        ]),
        LdapFilter::And(vec![
            eq("member", ALICE),
            eq("objectClass", "posixGroup"),
            LdapFilter::Present("cn".into()),
        ]),
        LdapFilter::And(vec![
            eq("objectClass", "posixGroup"),
            LdapFilter::Or(vec![eq("memberUid", "bob"), eq("member", ALICE)]),
        ]),
        LdapFilter::Or(vec![eq("objectClass", "posixAccount"), eq("uid", "x")]),
        LdapFilter::Or(vec![eq("memberOf", DEVS), eq("objectClass", "posixGroup")]),
        LdapFilter::And(vec![
            eq("objectClass", "posixAccount"),
            LdapFilter::Or(vec![eq("uid", "bob"), eq("mail", "alice")]),
        ]),
    ];
    // NOT of uidNumber equalities, spelled every way, alone and combined.
    let mut shapes = shapes;
    let alice = user_named(&fx.store, "alice");
    let bob_number = user_named(&fx.store, "bob").uid_number;
    let not_number = |n: String| LdapFilter::Not(Box::new(eq("uidNumber", &n)));
    let n = alice.uid_number;
    for value in [
        n.to_string(),
        format!("000{n}"),
        format!(" {n} "),
        format!("+{n}"),
        format!("-{n}"),
        "0".into(),
        "99999999999999".into(),
        "x".into(),
        String::new(),
    ] {
        shapes.push(not_number(value.clone()));
        shapes.push(LdapFilter::And(vec![
            eq("uid", "alice"),
            LdapFilter::Present("uidNumber".into()),
            not_number(value.clone()),
        ]));
        shapes.push(LdapFilter::Or(vec![
            eq("cn", "devs"),
            not_number(value.clone()),
        ]));
        shapes.push(LdapFilter::And(vec![
            not_number(value.clone()),
            not_number(bob_number.to_string()),
        ]));
        shapes.push(LdapFilter::Or(vec![
            not_number(value),
            not_number(bob_number.to_string()),
        ]));
    }
    for transitive in [false, true] {
        let d = dir(&fx, transitive);
        for f in &shapes {
            let planned = found(&d, &fx.root, f.clone());
            let scanned = found(
                &d,
                &fx.root,
                LdapFilter::Not(Box::new(LdapFilter::Not(Box::new(f.clone())))),
            );
            assert_eq!(
                planned, scanned,
                "{f:?} (transitive memberOf: {transitive})"
            );
        }
    }
}

/// Membership lookups the protocol layer may run where they are asked: a
/// member of a few cached groups, a group of a few users, or nothing.
#[test]
fn few_groups_lookups_are_small_and_cached() {
    let fx = fixture();
    let d = dir(&fx, false);
    let few = |attr: &str, value: &str| d.is_few_groups_lookup(attr, value);
    assert!(few("memberOf", DEVS), "devs has one user");
    assert!(few("memberOf", "cn=nothing,ou=groups,dc=example,dc=com"));
    let big = fx.store.create_group("big", None).expect("group");
    for i in 0..=FEW_MEMBERS {
        let u = new_user(&fx.store, &format!("member{i}"));
        fx.store
            .add_member(big.id, Member::User(u.id))
            .expect("member");
    }
    assert!(
        !few("memberOf", "cn=big,ou=groups,dc=example,dc=com"),
        "more users than FEW_MEMBERS go to the blocking pool"
    );
    // A user's groups run where asked once their entries are cached (a
    // large group's first build stays off the reactor).
    assert!(!few("member", ALICE), "devs is not cached yet");
    assert!(!few("memberUid", "alice"));
    assert_eq!(
        found(&d, &fx.root, eq("cn", "devs")),
        vec![DEVS.to_string()]
    );
    assert!(few("member", ALICE));
    assert!(few("memberUid", " alice "));
    assert!(few("member", "cn=nobody,ou=users,dc=example,dc=com"));
    assert!(few("member", "not a DN"));
}

/// Ids kept from lookups by name are used only while the record still
/// carries the name: a rename, a delete and a name taken over by another
/// user or group are answered as the store answers them.
#[test]
fn names_kept_from_lookups_follow_renames_deletes_and_new_holders() {
    let fx = fixture();
    let d = dir(&fx, false);
    let alice_dn = format!("cn=alice,ou=users,{BASE}");
    let devs_dn = format!("cn=devs,ou=groups,{BASE}");
    let by_uid = |name: &str| found(&d, &fx.root, eq("uid", name));
    let alice = user_named(&fx.store, "alice");
    // Twice: the second is answered from the kept id.
    assert_eq!(by_uid("alice"), [alice_dn.as_str()]);
    assert_eq!(by_uid("ALICE"), [alice_dn.as_str()]);
    assert_eq!(at(&d, &fx.root, &alice_dn, Scope::Base), Ok(1));
    assert_eq!(
        found(&d, &fx.root, eq("member", &alice_dn)),
        [devs_dn.as_str()]
    );

    fx.store.rename_user(alice.id, "alicia").expect("rename");
    assert!(by_uid("alice").is_empty());
    assert_eq!(by_uid("alicia"), [format!("cn=alicia,ou=users,{BASE}")]);
    assert!(at(&d, &fx.root, &alice_dn, Scope::Base).is_err());
    assert!(found(&d, &fx.root, eq("member", &alice_dn)).is_empty());

    // Another user takes the name: found, and not through the old id.
    let other = new_user(&fx.store, "alice");
    fx.store
        .add_member(fx.staff, Member::User(other.id))
        .expect("member");
    assert_eq!(by_uid("alice"), [alice_dn.as_str()]);
    assert_eq!(
        found(&d, &fx.root, eq("member", &alice_dn)),
        [format!("cn=staff,ou=groups,{BASE}")]
    );
    fx.store.delete_user(other.id).expect("delete");
    assert!(by_uid("alice").is_empty());
    assert!(at(&d, &fx.root, &alice_dn, Scope::Base).is_err());

    // Groups: the same for a renamed group and its name's new holder.
    let by_cn = |name: &str| found(&d, &fx.root, eq("cn", name));
    assert_eq!(by_cn("devs"), [devs_dn.as_str()]);
    fx.store
        .rename_group(fx.devs, "developers")
        .expect("rename");
    assert!(by_cn("devs").is_empty());
    assert!(at(&d, &fx.root, &devs_dn, Scope::Base).is_err());
    fx.store.create_group("devs", None).expect("group");
    assert_eq!(by_cn("devs"), [devs_dn.as_str()]);
    assert!(found(&d, &fx.root, eq("memberOf", &devs_dn)).is_empty());
}

/// The same for ids kept from lookups by email and by number: a changed
/// email is found on its new holder, a deleted user or group is gone, and
/// a value that is no email address finds nobody.
#[test]
fn emails_and_numbers_kept_from_lookups_follow_changes() {
    let fx = fixture();
    let d = dir(&fx, false);
    let bob = new_user(&fx.store, "bob");
    let set_email = |id: UserId, email: Option<&str>| {
        fx.store
            .update_user(id, &|u| {
                u.email = email.map(str::to_string);
                Ok(())
            })
            .expect("email");
    };
    let alice = user_named(&fx.store, "alice");
    let alice_dn = format!("cn=alice,ou=users,{BASE}");
    let bob_dn = format!("cn=bob,ou=users,{BASE}");
    let by_mail = |mail: &str| found(&d, &fx.root, eq("mail", mail));
    set_email(alice.id, Some("a@example.com"));
    assert_eq!(by_mail("a@example.com"), [alice_dn.as_str()]);
    assert_eq!(by_mail("A@Example.COM"), [alice_dn.as_str()]);
    assert!(by_mail("alice").is_empty());
    assert!(by_mail("@example.com").is_empty());
    set_email(alice.id, Some("alice@example.com"));
    set_email(bob.id, Some("a@example.com"));
    assert_eq!(by_mail("a@example.com"), [bob_dn.as_str()]);
    set_email(bob.id, None);
    assert!(by_mail("a@example.com").is_empty());
    assert_eq!(by_mail("alice@example.com"), [alice_dn.as_str()]);

    let by_number = |n: u32| found(&d, &fx.root, eq("uidNumber", &n.to_string()));
    assert_eq!(by_number(bob.uid_number), [bob_dn.as_str()]);
    assert_eq!(by_number(bob.uid_number), [bob_dn.as_str()]);
    fx.store.delete_user(bob.id).expect("delete");
    assert!(by_number(bob.uid_number).is_empty());

    let ops = fx.store.create_group("ops", None).expect("group");
    let by_gid = |n: u32| found(&d, &fx.root, eq("gidNumber", &n.to_string()));
    let ops_dn = format!("cn=ops,ou=groups,{BASE}");
    assert_eq!(by_gid(ops.gid_number), [ops_dn.as_str()]);
    assert_eq!(by_gid(ops.gid_number), [ops_dn.as_str()]);
    fx.store.delete_group(ops.id).expect("delete");
    assert!(by_gid(ops.gid_number).is_empty());
}

/// Gitea's login filter, an OR of a name and an email term: the user the
/// name found answers the email term when its record holds that email
/// (each email names one user), without asking the email index — nothing
/// is kept under the email then; the same for a uidNumber, and for a name
/// after an email. A key another user holds, or one that moved to
/// another user, is answered by its index.
#[test]
fn a_key_the_found_user_holds_is_answered_without_its_index() {
    let fx = fixture();
    let d = dir(&fx, false);
    let k = &d.inner;
    let alice = user_named(&fx.store, "alice");
    let bob = new_user(&fx.store, "bob");
    let set_email = |id: UserId, email: &str| {
        fx.store
            .update_user(id, &|u| {
                u.email = Some(email.into());
                Ok(())
            })
            .expect("email");
    };
    set_email(alice.id, "alice@example.com");
    set_email(bob.id, "bob@example.com");
    let alice_dn = format!("cn=alice,ou=users,{BASE}");
    let bob_dn = format!("cn=bob,ou=users,{BASE}");
    let gitea = |first: LdapFilter, second: LdapFilter| {
        LdapFilter::And(vec![
            eq("objectClass", "posixAccount"),
            LdapFilter::Or(vec![first, second]),
        ])
    };
    let kept_email = |email: &str| k.user_emails.get(k.user_emails.email_key(email));

    assert_eq!(
        found(
            &d,
            &fx.root,
            gitea(eq("uid", "alice"), eq("mail", "Alice@Example.com"))
        ),
        [alice_dn.as_str()]
    );
    assert_eq!(
        kept_email("alice@example.com"),
        None,
        "the index was not asked"
    );
    let number = alice.uid_number.to_string();
    assert_eq!(
        found(
            &d,
            &fx.root,
            gitea(eq("uid", "alice"), eq("uidNumber", &number))
        ),
        [alice_dn.as_str()]
    );
    assert_eq!(
        k.user_numbers
            .get(k.user_numbers.number_key(alice.uid_number)),
        None
    );
    assert_eq!(
        found(
            &d,
            &fx.root,
            gitea(eq("mail", "bob@example.com"), eq("uid", "BOB"))
        ),
        [bob_dn.as_str()]
    );
    assert_eq!(kept_email("bob@example.com"), Some(bob.id));
    assert_eq!(
        k.user_ids.get(k.user_ids.name_key("bob")),
        None,
        "by its email"
    );

    // Another user's email: both, the second from the index.
    let alices_or_bobs = || gitea(eq("uid", "alice"), eq("mail", "alice@example.com"));
    assert_eq!(
        found(
            &d,
            &fx.root,
            gitea(eq("uid", "alice"), eq("mail", "bob@example.com"))
        ),
        [alice_dn.as_str(), bob_dn.as_str()]
    );
    // alice's email moved to bob: bob holds it now.
    set_email(alice.id, "old@example.com");
    set_email(bob.id, "alice@example.com");
    assert_eq!(
        found(&d, &fx.root, alices_or_bobs()),
        [alice_dn.as_str(), bob_dn.as_str()]
    );
    assert_eq!(kept_email("alice@example.com"), Some(bob.id));
    // And back: alice's record holds it again.
    set_email(bob.id, "bob@example.com");
    set_email(alice.id, "alice@example.com");
    assert_eq!(found(&d, &fx.root, alices_or_bobs()), [alice_dn.as_str()]);
}

/// A warmed directory holds what lookups would have kept (ids by name,
/// email and number, users' groups, groups' ids) and answers as the store
/// does after a rename, a new email, a new membership and a delete; a
/// stopped pass says so; with transitive memberOf no groups are kept.
#[test]
fn warming_keeps_what_lookups_keep_and_answers_follow_changes() {
    let fx = fixture();
    let alice = user_named(&fx.store, "alice");
    let bob = new_user(&fx.store, "bob");
    fx.store
        .update_user(alice.id, &|u| {
            u.email = Some("Alice@Example.com".into());
            Ok(())
        })
        .expect("email");
    let d = dir(&fx, false);
    let warmed = d.warm(&|| false).expect("warm");
    assert_eq!(
        warmed,
        Warmed {
            users: 3,
            groups: 3,
            complete: true
        }
    );
    let k = &d.inner;
    let epoch = fx.store.membership_epoch().expect("epoch");
    assert_eq!(k.user_ids.get(k.user_ids.name_key("ALICE")), Some(alice.id));
    assert_eq!(
        k.user_emails
            .get(k.user_emails.email_key("alice@example.com")),
        Some(alice.id)
    );
    assert_eq!(
        k.user_numbers
            .get(k.user_numbers.number_key(bob.uid_number)),
        Some(bob.id)
    );
    assert_eq!(k.group_ids.get(k.group_ids.name_key("devs")), Some(fx.devs));
    assert_eq!(
        k.cache.member_of(epoch, alice.id).as_deref(),
        Some(&[fx.devs][..])
    );
    assert_eq!(k.cache.member_of(epoch, bob.id).as_deref(), Some(&[][..]));

    let bob_dn = format!("cn=bob,ou=users,{BASE}");
    fx.store.rename_user(alice.id, "alicia").expect("rename");
    assert!(found(&d, &fx.root, eq("uid", "alice")).is_empty());
    fx.store
        .update_user(bob.id, &|u| {
            u.email = Some("alice@example.com".into());
            Ok(())
        })
        .expect_err("alicia holds the address");
    // Bob takes it once she lets it go.
    fx.store
        .update_user(alice.id, &|u| {
            u.email = None;
            Ok(())
        })
        .expect("email");
    fx.store
        .update_user(bob.id, &|u| {
            u.email = Some("alice@example.com".into());
            Ok(())
        })
        .expect("email");
    assert_eq!(
        found(&d, &fx.root, eq("mail", "alice@example.com")),
        [bob_dn.as_str()]
    );
    fx.store
        .add_member(fx.devs, Member::User(bob.id))
        .expect("member");
    assert_eq!(member_of(&d, &fx.root, &bob_dn), [DEVS]);
    fx.store.delete_user(bob.id).expect("delete");
    assert!(found(&d, &fx.root, eq("uidNumber", &bob.uid_number.to_string())).is_empty());

    // Stopped after the first user.
    let stopped = dir(&fx, false).warm(&|| true).expect("warm");
    assert_eq!((stopped.users, stopped.complete), (1, false));
    // Transitive memberOf: ids, not groups.
    let t = dir(&fx, true);
    t.warm(&|| false).expect("warm");
    let epoch = fx.store.membership_epoch().expect("epoch");
    let alicia = user_named(&fx.store, "alicia");
    assert_eq!(
        t.inner.user_ids.get(t.inner.user_ids.name_key("alicia")),
        Some(alicia.id)
    );
    assert!(t.inner.cache.member_of(epoch, alicia.id).is_none());
    assert_eq!(
        member_of(&t, &fx.root, &format!("cn=alicia,ou=users,{BASE}")),
        [DEVS, STAFF]
    );
}

/// Kept ids are stored under 64-bit hashes of their keys, so two keys may
/// share a slot: the id there is then another entry's, and each lookup
/// must still find its own. Planted by hand (a real collision cannot be
/// chosen): alice's id under bob's name, email and number, and the devs
/// group's under another group's name and number.
#[test]
fn an_id_kept_under_a_colliding_key_is_not_answered() {
    let fx = fixture();
    let d = dir(&fx, false);
    let alice = user_named(&fx.store, "alice");
    let bob = new_user(&fx.store, "bob");
    fx.store
        .update_user(bob.id, &|u| {
            u.email = Some("Bob@Example.com".into());
            Ok(())
        })
        .expect("email");
    let ops = fx.store.create_group("ops", None).expect("group");
    let k = &d.inner;
    k.user_ids.insert(k.user_ids.name_key("bob"), alice.id);
    k.user_emails
        .insert(k.user_emails.email_key("bob@example.com"), alice.id);
    k.user_numbers
        .insert(k.user_numbers.number_key(bob.uid_number), alice.id);
    k.group_ids.insert(k.group_ids.name_key("ops"), fx.devs);
    k.group_numbers
        .insert(k.group_numbers.number_key(ops.gid_number), fx.devs);

    let bob_dn = [format!("cn=bob,ou=users,{BASE}")];
    let ops_dn = [format!("cn=ops,ou=groups,{BASE}")];
    assert_eq!(found(&d, &fx.root, eq("uid", "bob")), bob_dn);
    assert_eq!(found(&d, &fx.root, eq("mail", "BOB@example.com")), bob_dn);
    let uid_number = bob.uid_number.to_string();
    assert_eq!(found(&d, &fx.root, eq("uidNumber", &uid_number)), bob_dn);
    assert_eq!(found(&d, &fx.root, eq("cn", "ops")), ops_dn);
    let gid_number = ops.gid_number.to_string();
    assert_eq!(found(&d, &fx.root, eq("gidNumber", &gid_number)), ops_dn);
    // And the lookups put the right ids in those slots.
    assert_eq!(k.user_ids.get(k.user_ids.name_key("BOB")), Some(bob.id));
    assert_eq!(k.group_ids.get(k.group_ids.name_key("ops")), Some(ops.id));
}

/// A lookup that found nothing is answered from what is kept only until
/// the next write finishes: a user, email or group created right after a
/// miss is found at once. A miss kept under another value's key (planted:
/// a real collision cannot be chosen) does not hide the value.
#[test]
fn a_kept_miss_lasts_until_the_next_write() {
    let fx = fixture();
    let d = dir(&fx, false);
    let k = &d.inner;
    let carol_dn = [format!("cn=carol,ou=users,{BASE}")];
    let writes = || fx.store.finished_writes().expect("sled counts writes");

    assert!(found(&d, &fx.root, eq("cn", "carol")).is_empty());
    assert!(found(&d, &fx.root, eq("mail", "carol@example.com")).is_empty());
    let carol_key = k.user_ids.name_key("Carol");
    assert!(k
        .misses
        .is_missing(carol_key, Missed::UserName("CAROL"), writes()));
    assert!(!k
        .misses
        .is_missing(carol_key, Missed::GroupName("carol"), writes()));
    assert!(k.misses.is_missing(
        k.group_ids.name_key("carol"),
        Missed::GroupName("carol"),
        writes()
    ));

    let carol = new_user(&fx.store, "carol");
    assert!(!k
        .misses
        .is_missing(carol_key, Missed::UserName("carol"), writes()));
    assert_eq!(found(&d, &fx.root, eq("cn", "carol")), carol_dn);
    assert!(found(&d, &fx.root, eq("mail", "carol@example.com")).is_empty());
    fx.store
        .update_user(carol.id, &|u| {
            u.email = Some("Carol@Example.com".into());
            Ok(())
        })
        .expect("email");
    assert_eq!(
        found(&d, &fx.root, eq("mail", "carol@example.com")),
        carol_dn
    );

    assert!(found(&d, &fx.root, eq("cn", "ops")).is_empty());
    fx.store.create_group("ops", None).expect("group");
    let ops_dn = [format!("cn=ops,ou=groups,{BASE}")];
    assert_eq!(found(&d, &fx.root, eq("cn", "ops")), ops_dn);

    let alice_key = k.user_ids.name_key("alice");
    k.misses
        .insert(alice_key, Missed::UserName("zed"), writes());
    assert_eq!(
        found(&d, &fx.root, eq("uid", "alice")),
        [format!("cn=alice,ou=users,{BASE}")]
    );
}

/// A lookup of groups by member uses the user's kept direct groups, which
/// follow every membership change.
#[test]
fn groups_by_member_follow_membership_changes() {
    let fx = fixture();
    let d = dir(&fx, false);
    let alice = user_named(&fx.store, "alice");
    let alice_dn = format!("cn=alice,ou=users,{BASE}");
    let by_member = || {
        let mut dns = found(&d, &fx.root, eq("member", &alice_dn));
        dns.sort();
        dns
    };
    let devs = format!("cn=devs,ou=groups,{BASE}");
    let staff = format!("cn=staff,ou=groups,{BASE}");
    assert_eq!(by_member(), [devs.as_str()]);
    assert_eq!(by_member(), [devs.as_str()]);
    fx.store
        .add_member(fx.staff, Member::User(alice.id))
        .expect("member");
    assert_eq!(by_member(), [devs.as_str(), staff.as_str()]);
    fx.store
        .remove_member(fx.devs, Member::User(alice.id))
        .expect("remove");
    assert_eq!(by_member(), [staff.as_str()]);
    let memberuid = found(&d, &fx.root, eq("memberUid", "alice"));
    assert_eq!(memberuid, [staff.as_str()]);
}
