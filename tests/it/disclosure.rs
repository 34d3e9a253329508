//! Issue 16 item 3: an entry a client may not read answers exactly as a
//! missing one at the same place (code, matchedDN, message, entries), for
//! searches at every scope, compare and every write; admins keep the real
//! answers.

use std::collections::HashSet;

use ldap3::{LdapConn, LdapResult, Mod, Scope, SearchEntry};

use crate::harness::{group_dn, search, user_dn, Server, BASE};

fn result(r: &LdapResult) -> String {
    format!("rc={} matched={:?} text={:?}", r.rc, r.matched, r.text)
}

/// Every answer `c` gets about `dn`, as text: searches at each scope,
/// compare, modify, delete, modify DN and an add below it.
fn answers(c: &mut LdapConn, dn: &str) -> Vec<String> {
    let mut out = Vec::new();
    for scope in [Scope::Base, Scope::OneLevel, Scope::Subtree] {
        let ldap3::SearchResult(entries, res) = c
            .search(dn, scope, "(objectClass=*)", vec!["*", "+"])
            .expect("search");
        let entries: Vec<_> = entries.into_iter().map(SearchEntry::construct).collect();
        out.push(format!("search {scope:?}: {} {entries:?}", result(&res)));
    }
    let r = c.compare(dn, "cn", "erin").expect("compare");
    out.push(format!("compare: {}", result(&r.0)));
    let r = c
        .modify(dn, vec![Mod::Replace("description", HashSet::from(["x"]))])
        .expect("modify");
    out.push(format!("modify: {}", result(&r)));
    let r = c.delete(dn).expect("delete");
    out.push(format!("delete: {}", result(&r)));
    let r = c.modifydn(dn, "cn=renamed", true, None).expect("modifydn");
    out.push(format!("modrdn: {}", result(&r)));
    let below = format!("cn=y,{dn}");
    let r = c
        .add(
            &below,
            vec![
                ("objectClass", HashSet::from(["inetOrgPerson"])),
                ("sn", HashSet::from(["y"])),
            ],
        )
        .expect("add");
    out.push(format!("add below: {}", result(&r)));
    out
}

#[test]
fn unreadable_entries_answer_as_missing_ones() {
    let s = Server::start();
    s.add_user("dave", "dave-pw-1");
    s.add_user("erin", "erin-pw-1");
    let mut dave = s.bound(&user_dn("dave"), "dave-pw-1");

    for (hidden, missing) in [
        (user_dn("erin"), user_dn("nobody")),
        (group_dn("admins"), group_dn("nogroup")),
    ] {
        let got = answers(&mut dave, &hidden);
        assert_eq!(got, answers(&mut dave, &missing), "{hidden}");
        // Each answer is the plain noSuchObject, with no matchedDN.
        for a in &got {
            assert!(
                a.contains(r#"rc=32 matched="" text="no such object""#),
                "{a}"
            );
        }
        // Anonymous clients learn nothing either (50 for both).
        let mut anon = s.conn();
        let got = answers(&mut anon, &hidden);
        assert_eq!(got, answers(&mut anon, &missing), "anonymous {hidden}");
    }
    // Nothing was changed.
    let mut admin = s.admin();
    let (rc, e) = search(
        &mut admin,
        &user_dn("erin"),
        Scope::Base,
        "(objectClass=*)",
        &["description"],
    );
    assert_eq!((rc, e.len()), (0, 1));
    assert!(!e[0].attrs.contains_key("description"));

    // dave's own entry: readable, so refusals are 50 and reads succeed.
    let own = user_dn("dave");
    let (rc, e) = search(&mut dave, &own, Scope::Base, "(objectClass=*)", &["1.1"]);
    assert_eq!((rc, e.len()), (0, 1));
    assert_eq!(dave.compare(&own, "cn", "dave").expect("compare").0.rc, 6);
    assert_eq!(dave.delete(&own).expect("delete").rc, 50);
    let r = dave
        .modify(&own, vec![Mod::Replace("uidNumber", HashSet::from(["7"]))])
        .expect("modify");
    assert_eq!(r.rc, 50);
    // A group dave is in: readable, so changing it is 50.
    s.ok(&["group", "add", "team"]);
    s.ok(&["group", "add-member", "team", "dave"]);
    let team = group_dn("team");
    let (rc, e) = search(&mut dave, &team, Scope::Base, "(objectClass=*)", &["1.1"]);
    assert_eq!((rc, e.len()), (0, 1));
    let r = dave
        .modify(
            &team,
            vec![Mod::Replace("description", HashSet::from(["x"]))],
        )
        .expect("modify");
    assert_eq!(r.rc, 50);
    assert_eq!(dave.delete(&team).expect("delete").rc, 50);
    // Below the containers dave searches and finds himself.
    let (rc, e) = search(&mut dave, BASE, Scope::Subtree, "(uid=dave)", &["1.1"]);
    assert_eq!((rc, e.len()), (0, 1));
}

#[test]
fn admins_get_the_real_answers() {
    let s = Server::start();
    s.add_user("erin", "erin-pw-1");
    let mut admin = s.admin();
    let users = format!("ou=users,{BASE}");
    let (rc, e) = search(
        &mut admin,
        &user_dn("erin"),
        Scope::Base,
        "(objectClass=*)",
        &["1.1"],
    );
    assert_eq!((rc, e.len()), (0, 1));
    let r = admin
        .search(
            &user_dn("nobody"),
            Scope::Base,
            "(objectClass=*)",
            vec!["1.1"],
        )
        .expect("search");
    assert_eq!((r.1.rc, r.1.matched.to_lowercase()), (32, users.clone()));
    let r = admin
        .compare(&user_dn("erin"), "cn", "erin")
        .expect("compare");
    assert_eq!(r.0.rc, 6);
    let r = admin
        .compare(&user_dn("nobody"), "cn", "x")
        .expect("compare");
    assert_eq!((r.0.rc, r.0.matched.to_lowercase()), (32, users.clone()));
    let r = admin.delete(&user_dn("nobody")).expect("delete");
    assert_eq!((r.rc, r.matched.to_lowercase()), (32, users));
    let r = admin.delete(&user_dn("erin")).expect("delete");
    assert_eq!(r.rc, 0);
}
