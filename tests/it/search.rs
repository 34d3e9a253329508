//! Search over a directory of 250 users: every filter kind with counts
//! computed from the dataset, scopes, attribute selection, paging, size
//! limits and access rules.

use std::collections::HashSet;

use ldap3::controls::{Control, PagedResults};
use ldap3::{LdapConn, Scope};

use crate::harness::{group_dn, search, tool, user_dn, Server, BASE};

const USERS: usize = 250;
const SVC_PW: &str = "svc-secret-1";
const BOB_PW: &str = "bob;secret;2";

fn name(i: usize) -> String {
    format!("user{i:03}")
}

/// uidNumbers: admin 2000 (first start), user000 = 2001, …, then svc, bob.
fn uid_number(i: usize) -> u32 {
    2001 + i as u32
}

fn has_mail(i: usize) -> bool {
    i.is_multiple_of(2)
}

fn in_staff(i: usize) -> bool {
    i < 50
}

fn in_dev(i: usize) -> bool {
    (40..90).contains(&i)
}

/// Users are created by the CLI while the server runs; groups: staff, dev,
/// ops (child of staff, with bob).
fn seed(s: &Server) {
    for i in 0..USERS {
        let n = name(i);
        let full = format!("User {i} Tester{}", i % 10);
        let mut args = vec!["user", "add", &n, "--name", &full];
        let mail = format!("{n}@example.com");
        if has_mail(i) {
            args.extend(["--email", &mail]);
        }
        s.ok(&args);
    }
    s.add_user("svc", SVC_PW);
    s.add_user("bob", BOB_PW);
    s.ok(&["group", "add-member", "ldap-search", "svc"]);
    for g in ["staff", "dev", "ops"] {
        s.ok(&["group", "add", g]);
    }
    for i in 0..USERS {
        if in_staff(i) {
            s.ok(&["group", "add-member", "staff", &name(i)]);
        }
        if in_dev(i) {
            s.ok(&["group", "add-member", "dev", &name(i)]);
        }
    }
    s.ok(&["group", "add-child", "staff", "ops"]);
    s.ok(&["group", "add-member", "ops", "bob"]);
}

fn count_users(pred: impl Fn(usize) -> bool) -> usize {
    (0..USERS).filter(|&i| pred(i)).count()
}

#[test]
fn search_suite() {
    let s = Server::start();
    seed(&s);
    let mut svc = s.bound(&user_dn("svc"), SVC_PW);
    filters(&mut svc);
    scopes(&mut svc);
    attribute_selection(&mut svc);
    paging(&mut svc);
    access(&s);
    openldap_tools(&s);
}

fn users_count(c: &mut LdapConn, filter: &str) -> usize {
    let (rc, entries) = search(
        c,
        &format!("ou=users,{BASE}"),
        Scope::OneLevel,
        filter,
        &["1.1"],
    );
    assert_eq!(rc, 0, "{filter}");
    entries.len()
}

fn groups_count(c: &mut LdapConn, filter: &str) -> usize {
    let (rc, entries) = search(
        c,
        &format!("ou=groups,{BASE}"),
        Scope::OneLevel,
        filter,
        &["1.1"],
    );
    assert_eq!(rc, 0, "{filter}");
    entries.len()
}

fn filters(c: &mut LdapConn) {
    let all_users = USERS + 3; // + admin, svc, bob
                               // present
    assert_eq!(users_count(c, "(objectClass=*)"), all_users);
    assert_eq!(users_count(c, "(mail=*)"), count_users(has_mail));
    // equality, case-insensitive, on the indexed and unindexed attributes
    assert_eq!(users_count(c, "(uid=user007)"), 1);
    assert_eq!(users_count(c, "(cn=USER007)"), 1);
    assert_eq!(users_count(c, "(mail=USER008@Example.com)"), 1);
    assert_eq!(users_count(c, "(mail=user007@example.com)"), 0);
    assert_eq!(users_count(c, "(uidNumber=2008)"), 1);
    assert_eq!(users_count(c, "(displayName=user 12 tester2)"), 1);
    assert_eq!(users_count(c, "(objectClass=inetOrgPerson)"), all_users);
    assert_eq!(users_count(c, "(objectClass=posixGroup)"), 0);
    // substrings
    assert_eq!(
        users_count(c, "(uid=user00*)"),
        count_users(|i| name(i).starts_with("user00"))
    );
    assert_eq!(
        users_count(c, "(uid=*9)"),
        count_users(|i| name(i).ends_with('9'))
    );
    assert_eq!(
        users_count(c, "(uid=u*1*2)"),
        count_users(|i| {
            let n = name(i);
            n[1..]
                .find('1')
                .is_some_and(|p| n[1 + p + 1..].ends_with('2'))
        })
    );
    assert_eq!(
        users_count(c, "(displayName=*TESTER3)"),
        count_users(|i| i % 10 == 3)
    );
    // integer ordering, not lexical
    assert_eq!(
        users_count(c, "(uidNumber>=2200)"),
        count_users(|i| uid_number(i) >= 2200) + 2 // svc, bob
    );
    assert_eq!(users_count(c, "(uidNumber<=999)"), 0);
    assert_eq!(
        users_count(c, "(uidNumber<=2010)"),
        count_users(|i| uid_number(i) <= 2010) + 1 // admin
    );
    // and, or, not
    assert_eq!(
        users_count(
            c,
            "(&(objectClass=posixAccount)(memberOf=cn=staff,ou=groups,dc=example,dc=com))"
        ),
        count_users(in_staff)
    );
    assert_eq!(
        users_count(c, "(memberOf=CN=Staff, OU=Groups, DC=Example, DC=Com)"),
        count_users(in_staff)
    );
    assert_eq!(
        users_count(c, "(&(memberOf=cn=staff,ou=groups,dc=example,dc=com)(memberOf=cn=dev,ou=groups,dc=example,dc=com))"),
        count_users(|i| in_staff(i) && in_dev(i))
    );
    assert_eq!(
        users_count(c, "(|(memberOf=cn=staff,ou=groups,dc=example,dc=com)(memberOf=cn=dev,ou=groups,dc=example,dc=com))"),
        count_users(|i| in_staff(i) || in_dev(i))
    );
    assert_eq!(
        users_count(c, "(|(uid=user001)(uid=user002)(mail=user004@example.com))"),
        3
    );
    assert_eq!(
        users_count(c, "(!(uid=user0*))"),
        all_users - count_users(|i| name(i).starts_with("user0"))
    );
    assert_eq!(
        users_count(
            c,
            "(&(mail=*)(!(memberOf=cn=staff,ou=groups,dc=example,dc=com)))"
        ),
        count_users(|i| has_mail(i) && !in_staff(i))
    );
    // approximate match behaves as equality
    assert_eq!(users_count(c, "(displayName~=User 5 Tester5)"), 1);
    // unknown attributes are undefined: false, and so is their negation
    assert_eq!(users_count(c, "(unknownAttr=foo)"), 0);
    assert_eq!(users_count(c, "(!(unknownAttr=foo))"), 0);
    assert_eq!(users_count(c, "(userPassword=*)"), 0);
    // timestamps
    assert_eq!(
        users_count(c, "(createTimestamp>=19700101000000Z)"),
        all_users
    );
    assert_eq!(users_count(c, "(createTimestamp<=19700101000000Z)"), 0);
    // authentik attributes
    assert_eq!(users_count(c, "(ak-superuser=TRUE)"), 1);
    assert_eq!(users_count(c, "(ak-active=true)"), all_users);
    // extensible match: in-chain (transitive) membership
    assert_eq!(
        users_count(
            c,
            "(memberOf:1.2.840.113556.1.4.1941:=cn=staff,ou=groups,dc=example,dc=com)"
        ),
        count_users(in_staff) + 1 // bob through ops
    );
    // groups
    assert_eq!(groups_count(c, "(objectClass=posixGroup)"), 5);
    assert_eq!(
        groups_count(c, "(member=cn=user045,ou=users,dc=example,dc=com)"),
        2
    );
    assert_eq!(groups_count(c, "(memberUid=user045)"), 2);
    assert_eq!(
        groups_count(c, "(member=cn=ops,ou=groups,dc=example,dc=com)"),
        1
    );
    assert_eq!(groups_count(c, "(cn=STAFF)"), 1);
    assert_eq!(groups_count(c, "(gidNumber>=4002)"), 3);
    assert_eq!(
        groups_count(
            c,
            "(member:1.2.840.113556.1.4.1941:=cn=bob,ou=users,dc=example,dc=com)"
        ),
        2 // ops directly, staff through ops
    );
}

fn scopes(c: &mut LdapConn) {
    let users_ou = format!("ou=users,{BASE}");
    let total_users = USERS + 3;
    let (rc, e) = search(c, &users_ou, Scope::Base, "(objectClass=*)", &["1.1"]);
    assert_eq!((rc, e.len()), (0, 1));
    assert_eq!(e[0].dn.to_lowercase(), users_ou);
    let (_, e) = search(c, &users_ou, Scope::OneLevel, "(objectClass=*)", &["1.1"]);
    assert_eq!(e.len(), total_users);
    let (_, e) = search(c, &users_ou, Scope::Subtree, "(objectClass=*)", &["1.1"]);
    assert_eq!(e.len(), total_users + 1);
    let (_, e) = search(c, BASE, Scope::Base, "(objectClass=*)", &["1.1"]);
    assert_eq!(e.len(), 1);
    let (_, e) = search(c, BASE, Scope::OneLevel, "(objectClass=*)", &["1.1"]);
    let dns: HashSet<String> = e.iter().map(|e| e.dn.to_lowercase()).collect();
    assert_eq!(
        dns,
        HashSet::from([users_ou.clone(), format!("ou=groups,{BASE}")])
    );
    let (_, e) = search(c, BASE, Scope::Subtree, "(objectClass=*)", &["1.1"]);
    assert_eq!(e.len(), 1 + 2 + total_users + 5);
    // a user entry by its cn= and uid= DNs, base and one-level
    let (rc, e) = search(
        c,
        &user_dn("user001"),
        Scope::Base,
        "(objectClass=*)",
        &["uid"],
    );
    assert_eq!((rc, e.len()), (0, 1));
    assert_eq!(e[0].attrs["uid"], vec!["user001"]);
    let (rc, e) = search(
        c,
        &format!("uid=USER001,ou=users,{BASE}"),
        Scope::Base,
        "(objectClass=*)",
        &["1.1"],
    );
    assert_eq!((rc, e.len()), (0, 1));
    let (rc, e) = search(
        c,
        &user_dn("user001"),
        Scope::OneLevel,
        "(objectClass=*)",
        &["1.1"],
    );
    assert_eq!((rc, e.len()), (0, 0));
    // a missing base: noSuchObject with the matched DN
    let res = c
        .search(
            &user_dn("nobody"),
            Scope::Base,
            "(objectClass=*)",
            vec!["1.1"],
        )
        .expect("search");
    assert_eq!(res.1.rc, 32);
    assert_eq!(res.1.matched.to_lowercase(), users_ou);
    let res = c
        .search(
            "dc=elsewhere,dc=org",
            Scope::Subtree,
            "(objectClass=*)",
            vec!["1.1"],
        )
        .expect("search");
    assert_eq!(res.1.rc, 32);
}

fn attribute_selection(c: &mut LdapConn) {
    let dn = user_dn("user002");
    let one = |c: &mut LdapConn, attrs: &[&str]| {
        let (rc, mut e) = search(c, &dn, Scope::Base, "(objectClass=*)", attrs);
        assert_eq!((rc, e.len()), (0, 1), "{attrs:?}");
        e.remove(0)
    };
    let e = one(c, &["uid", "MAIL"]);
    let keys: HashSet<&str> = e.attrs.keys().map(|k| k.as_str()).collect();
    assert_eq!(keys, HashSet::from(["uid", "mail"]));
    assert_eq!(e.attrs["mail"], vec!["user002@example.com"]);

    let e = one(c, &["1.1"]);
    assert!(e.attrs.is_empty());

    let e = one(c, &[]);
    for a in [
        "objectClass",
        "cn",
        "uid",
        "sn",
        "displayName",
        "mail",
        "memberOf",
        "uidNumber",
        "gidNumber",
        "homeDirectory",
        "loginShell",
        "ak-active",
        "ak-superuser",
    ] {
        assert!(
            e.attrs.contains_key(a),
            "{a} missing from *: {:?}",
            e.attrs.keys()
        );
    }
    for a in [
        "entryUUID",
        "createTimestamp",
        "modifyTimestamp",
        "userPassword",
    ] {
        assert!(!e.attrs.contains_key(a), "{a} returned without +");
    }
    assert_eq!(e.attrs["homeDirectory"], vec!["/home/user002"]);
    assert_eq!(e.attrs["uidNumber"], vec![uid_number(2).to_string()]);
    assert_eq!(e.attrs["memberOf"], vec![group_dn("staff")]);
    assert_eq!(e.attrs["displayName"], vec!["User 2 Tester2"]);
    assert_eq!(e.attrs["sn"], vec!["Tester2"]);
    let classes: HashSet<String> = e.attrs["objectClass"]
        .iter()
        .map(|c| c.to_lowercase())
        .collect();
    for oc in [
        "top",
        "person",
        "organizationalperson",
        "inetorgperson",
        "posixaccount",
    ] {
        assert!(classes.contains(oc), "{oc}");
    }

    let e = one(c, &["+"]);
    for a in ["entryUUID", "createTimestamp", "modifyTimestamp", "entryDN"] {
        assert!(
            e.attrs.contains_key(a),
            "{a} missing from +: {:?}",
            e.attrs.keys()
        );
    }
    assert!(!e.attrs.contains_key("uid"));
    assert_eq!(e.attrs["entryUUID"][0].len(), 36);

    let e = one(c, &["*", "+"]);
    assert!(e.attrs.contains_key("uid") && e.attrs.contains_key("entryUUID"));

    // group attributes
    let (_, e) = search(c, &group_dn("staff"), Scope::Base, "(objectClass=*)", &[]);
    let g = &e[0];
    assert_eq!(g.attrs["member"].len(), count_users(in_staff) + 1); // + ops
    assert!(g.attrs["member"].contains(&group_dn("ops")));
    assert_eq!(g.attrs["memberUid"].len(), count_users(in_staff));
    assert_eq!(g.attrs["gidNumber"], vec!["4002"]);
    let (_, e) = search(
        c,
        &group_dn("ops"),
        Scope::Base,
        "(objectClass=*)",
        &["memberOf"],
    );
    assert_eq!(e[0].attrs["memberOf"], vec![group_dn("staff")]);
}

fn paging(c: &mut LdapConn) {
    let mut cookie = Vec::new();
    let mut seen = HashSet::new();
    let mut pages = 0;
    loop {
        let res = c
            .with_controls(PagedResults {
                size: 100,
                cookie: cookie.clone(),
            })
            .search(
                &format!("ou=users,{BASE}"),
                Scope::OneLevel,
                "(uid=user*)",
                vec!["uid"],
            )
            .expect("paged search");
        let ldap3::SearchResult(entries, result) = res;
        assert_eq!(result.rc, 0, "{}", result.text);
        pages += 1;
        assert!(entries.len() <= 100);
        for e in entries {
            let e = ldap3::SearchEntry::construct(e);
            assert!(seen.insert(e.dn.clone()), "{} returned twice", e.dn);
        }
        let ctrl = result
            .ctrls
            .iter()
            .find(|Control(_, raw)| raw.ctype == "1.2.840.113556.1.4.319")
            .expect("paged results response control");
        let pr: PagedResults = ctrl.1.parse();
        if pr.cookie.is_empty() {
            break;
        }
        cookie = pr.cookie;
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), USERS);
    // A made-up cookie is refused, and the connection stays usable.
    let res = c
        .with_controls(PagedResults {
            size: 100,
            cookie: b"forged".to_vec(),
        })
        .search(
            &format!("ou=users,{BASE}"),
            Scope::OneLevel,
            "(uid=user*)",
            vec!["uid"],
        )
        .expect("search");
    assert_ne!(res.1.rc, 0);
    assert_eq!(users_count(c, "(uid=user001)"), 1);
}

fn access(s: &Server) {
    // anonymous: root DSE yes, the tree no
    let mut anon = s.conn();
    let (rc, e) = search(&mut anon, "", Scope::Base, "(objectClass=*)", &["+"]);
    assert_eq!((rc, e.len()), (0, 1));
    let (rc, e) = search(
        &mut anon,
        "cn=subschema",
        Scope::Base,
        "(objectClass=*)",
        &["+"],
    );
    assert_eq!((rc, e.len()), (0, 1));
    let res = anon
        .search(
            &format!("ou=users,{BASE}"),
            Scope::Subtree,
            "(objectClass=*)",
            vec!["1.1"],
        )
        .expect("search");
    assert_eq!(res.1.rc, 50);
    assert!(res.0.is_empty());

    // an ordinary user: own entry and own groups (ops directly, staff via ops)
    let mut bob = s.bound(&user_dn("bob"), BOB_PW);
    let (rc, e) = search(&mut bob, BASE, Scope::Subtree, "(objectClass=*)", &["1.1"]);
    assert_eq!(rc, 0);
    let dns: HashSet<String> = e.iter().map(|e| e.dn.to_lowercase()).collect();
    assert_eq!(
        dns,
        HashSet::from([user_dn("bob"), group_dn("ops"), group_dn("staff")])
    );
    // an entry bob may not read answers as a missing one (this asserted
    // success with no entry, the leak of issue 16)
    let res = bob
        .search(
            &user_dn("user001"),
            Scope::Base,
            "(objectClass=*)",
            vec!["1.1"],
        )
        .expect("search");
    assert_eq!((res.1.rc, res.1.matched.as_str()), (32, ""));
    assert!(res.0.is_empty());

    // the search group and admins see everything
    let mut admin = s.admin();
    let (_, e) = search(
        &mut admin,
        &format!("ou=users,{BASE}"),
        Scope::OneLevel,
        "(objectClass=*)",
        &["1.1"],
    );
    assert_eq!(e.len(), USERS + 3);
    // and once svc leaves the search group, it sees only itself
    s.ok(&["group", "remove-member", "ldap-search", "svc"]);
    let mut svc = s.bound(&user_dn("svc"), SVC_PW);
    let (_, e) = search(
        &mut svc,
        &format!("ou=users,{BASE}"),
        Scope::OneLevel,
        "(objectClass=*)",
        &["1.1"],
    );
    assert_eq!(e.len(), 1);
    s.ok(&["group", "add-member", "ldap-search", "svc"]);
}

fn openldap_tools(s: &Server) {
    let svc = user_dn("svc");
    let users_ou = format!("ou=users,{BASE}");
    // paged search with ldapsearch: every user exactly once
    let (code, out, err) = tool(
        "ldapsearch",
        &[
            "-x",
            "-H",
            &s.url,
            "-D",
            &svc,
            "-w",
            SVC_PW,
            "-b",
            &users_ou,
            "-s",
            "one",
            "-E",
            "pr=100/noprompt",
            "(uid=user*)",
            "1.1",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let dns: Vec<&str> = out.lines().filter(|l| l.starts_with("dn: ")).collect();
    assert_eq!(dns.len(), USERS);
    assert_eq!(dns.iter().collect::<HashSet<_>>().len(), USERS);

    // size limit: code 4 (ldapsearch exits 4) with the partial entries
    let (code, out, _) = tool(
        "ldapsearch",
        &[
            "-x",
            "-H",
            &s.url,
            "-D",
            &svc,
            "-w",
            SVC_PW,
            "-b",
            &users_ou,
            "-s",
            "one",
            "-z",
            "10",
            "(objectClass=*)",
            "1.1",
        ],
        &[],
    );
    assert_eq!(code, 4, "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("dn: ")).count(), 10);
    assert!(out.contains("result: 4 Size limit exceeded"), "{out}");

    // typesOnly
    let (code, out, _) = tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-A",
            "-H",
            &s.url,
            "-D",
            &svc,
            "-w",
            SVC_PW,
            "-b",
            &user_dn("user004"),
            "-s",
            "base",
            "(objectClass=*)",
            "mail",
        ],
        &[],
    );
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.trim() == "mail:"), "{out}");
    assert!(!out.contains("user004@example.com"), "{out}");

    // `dn` is no attribute: asking for it gives valid LDIF (RFC 2849: one
    // `dn:` line, opening the record), and entryDN still gives the DN.
    let dn = user_dn("user004");
    for (attrs, entry_dn) in [
        (&["dn"][..], false),
        (&["DN", "uid"], false),
        (&["dn", "entryDN"], true),
    ] {
        let mut args = vec![
            "-x",
            "-LLL",
            "-H",
            &s.url,
            "-D",
            &svc,
            "-w",
            SVC_PW,
            "-b",
            &dn,
            "-s",
            "base",
            "(objectClass=*)",
        ];
        args.extend_from_slice(attrs);
        let (code, out, err) = tool("ldapsearch", &args, &[]);
        assert_eq!(code, 0, "{attrs:?}: {err}");
        let records: Vec<&str> = out.split("\n\n").filter(|r| !r.trim().is_empty()).collect();
        assert_eq!(records.len(), 1, "{attrs:?}: {out}");
        let lines: Vec<&str> = records[0].lines().collect();
        assert_eq!(lines[0], format!("dn: {dn}"), "{attrs:?}: {out}");
        assert!(
            !lines[1..]
                .iter()
                .any(|l| l.to_ascii_lowercase().starts_with("dn:")),
            "{attrs:?}: a second dn: line: {out}"
        );
        assert_eq!(
            lines.contains(&format!("entryDN: {dn}").as_str()),
            entry_dn,
            "{attrs:?}: {out}"
        );
    }
}

/// `ldap.transitive_member_of`: memberOf lists nested groups, and the
/// `(memberOf=…)` filter finds the same users as the in-chain rule.
#[test]
fn transitive_member_of_option() {
    let mut env = crate::harness::FAST_HASH_ENV.to_vec();
    env.push(("PORTCULLIS_LDAP_TRANSITIVE_MEMBER_OF", "true"));
    let s = Server::start_with(&env);
    for u in ["alice", "carol", "dave"] {
        s.ok(&["user", "add", u]);
    }
    for g in ["staff", "ops"] {
        s.ok(&["group", "add", g]);
    }
    s.ok(&["group", "add-child", "staff", "ops"]);
    s.ok(&["group", "add-member", "ops", "alice"]);
    s.ok(&["group", "add-member", "staff", "carol"]);

    let admin = user_dn("admin");
    let users_ou = format!("ou=users,{BASE}");
    let ldapsearch = |base: &str, scope: &str, filter: &str, attr: &str| {
        let (code, out, err) = tool(
            "ldapsearch",
            &[
                "-x",
                "-LLL",
                "-o",
                "ldif-wrap=no",
                "-H",
                &s.url,
                "-D",
                &admin,
                "-w",
                &s.admin_password,
                "-b",
                base,
                "-s",
                scope,
                filter,
                attr,
            ],
            &[],
        );
        assert_eq!(code, 0, "{filter}: {err}");
        out
    };
    let dns = |out: &str| -> Vec<String> {
        let mut v: Vec<String> = out
            .lines()
            .filter_map(|l| l.strip_prefix("dn: "))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };

    // alice is in ops, ops in staff: both are listed.
    let out = ldapsearch(&user_dn("alice"), "base", "(objectClass=*)", "memberOf");
    let mut member_of: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("memberOf: "))
        .collect();
    member_of.sort();
    assert_eq!(member_of, [group_dn("ops"), group_dn("staff")], "{out}");

    // The plain filter and the in-chain rule agree: alice and carol.
    let staff = group_dn("staff");
    let plain = dns(&ldapsearch(
        &users_ou,
        "one",
        &format!("(memberOf={staff})"),
        "1.1",
    ));
    assert_eq!(plain, [user_dn("alice"), user_dn("carol")]);
    let chain = dns(&ldapsearch(
        &users_ou,
        "one",
        &format!("(memberOf:1.2.840.113556.1.4.1941:={staff})"),
        "1.1",
    ));
    assert_eq!(plain, chain);
    // The same through a filter the index does not answer alone.
    let and = dns(&ldapsearch(
        &users_ou,
        "one",
        &format!("(&(objectClass=person)(|(memberOf={staff})(uid=nobody)))"),
        "1.1",
    ));
    assert_eq!(and, plain);

    // Unnesting takes effect at once.
    s.ok(&["group", "remove-child", "staff", "ops"]);
    let plain = dns(&ldapsearch(
        &users_ou,
        "one",
        &format!("(memberOf={staff})"),
        "1.1",
    ));
    assert_eq!(plain, [user_dn("carol")]);
}
