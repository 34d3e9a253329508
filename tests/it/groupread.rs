//! Base reads of a group's `member`, which the server answers from the
//! group entry it keeps encoded: whatever changes the group is visible on
//! the very next read.

use std::collections::HashSet;

use ldap3::{LdapConn, Mod, Scope};

use crate::harness::{group_dn, search, user_dn, Server};

/// The members and the description of `dn` read twice (the second read is
/// answered from the kept encoding); both reads must agree.
fn read(c: &mut LdapConn, dn: &str) -> (HashSet<String>, Vec<String>) {
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (rc, entries) = search(
            c,
            dn,
            Scope::Base,
            "(objectClass=*)",
            &["member", "description"],
        );
        assert_eq!(rc, 0, "read of {dn}");
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert!(e.dn.eq_ignore_ascii_case(dn), "{} for {dn}", e.dn);
        let members: HashSet<String> = e
            .attrs
            .get("member")
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.to_lowercase())
            .collect();
        let description = e.attrs.get("description").cloned().unwrap_or_default();
        seen.push((members, description));
    }
    assert_eq!(seen[0], seen[1], "the repeated read of {dn} differs");
    seen.swap_remove(0)
}

#[test]
fn a_group_read_follows_members_description_and_rename() {
    let s = Server::start();
    for n in ["ann", "ben", "cid"] {
        s.ok(&["user", "add", n]);
    }
    s.ok(&["group", "add", "crew"]);
    for n in ["ann", "ben"] {
        s.ok(&["group", "add-member", "crew", n]);
    }
    let mut admin = s.admin();
    let crew = group_dn("crew");
    let (members, description) = read(&mut admin, &crew);
    let want = |names: &[&str]| -> HashSet<String> {
        names.iter().map(|n| user_dn(n).to_lowercase()).collect()
    };
    assert_eq!(members, want(&["ann", "ben"]));
    assert!(description.is_empty());

    // A new member.
    let res = admin
        .modify(
            &crew,
            vec![Mod::Add("member", [user_dn("cid").as_str()].into())],
        )
        .expect("modify");
    assert_eq!(res.rc, 0, "{}", res.text);
    assert_eq!(read(&mut admin, &crew).0, want(&["ann", "ben", "cid"]));

    // A member leaves.
    let res = admin
        .modify(
            &crew,
            vec![Mod::Delete("member", [user_dn("ann").as_str()].into())],
        )
        .expect("modify");
    assert_eq!(res.rc, 0, "{}", res.text);
    assert_eq!(read(&mut admin, &crew).0, want(&["ben", "cid"]));

    // The group record changes.
    let res = admin
        .modify(
            &crew,
            vec![Mod::Replace("description", ["the crew"].into())],
        )
        .expect("modify");
    assert_eq!(res.rc, 0, "{}", res.text);
    assert_eq!(read(&mut admin, &crew).1, ["the crew"]);

    // A rename: the new name reads the same group, the old one is gone.
    let res = admin
        .modifydn(&crew, "cn=team", true, None)
        .expect("modrdn");
    assert_eq!(res.rc, 0, "{}", res.text);
    let (members, description) = read(&mut admin, &group_dn("team"));
    assert_eq!(members, want(&["ben", "cid"]));
    assert_eq!(description, ["the crew"]);
    let (rc, _) = search(
        &mut admin,
        &crew,
        Scope::Base,
        "(objectClass=*)",
        &["member"],
    );
    assert_eq!(rc, 32, "noSuchObject for the old name");
}
