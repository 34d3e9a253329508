//! The decoded-record cache under a memory budget (`store.record_cache_mib`,
//! issue 15): a search whose candidates are many more than the budget
//! holds still returns every entry, as it is stored now.

use crate::harness::{search, user_dn, Server, BASE, FAST_HASH_ENV};
use ldap3::{Mod, Scope};
use std::collections::HashSet;

/// Several times what a 1 MiB budget keeps (some 1,300 user records).
const USERS: usize = 4000;

fn seed(data: &std::path::Path) {
    let store = portcullis::store::Store::open(data).expect("store");
    let mut ldif = String::from("version: 1\n\n");
    for i in 0..USERS {
        ldif.push_str(&format!(
            "dn: uid=c{i:05},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: c{i:05}\n\
             cn: Cached {i}\nsn: Number {i}\nmail: c{i:05}@example.com\n\n"
        ));
    }
    let file = portcullis::ldif::parse_str(&ldif).expect("ldif");
    let plan = portcullis::migrate::import::plan_ldif(&file, &Default::default());
    assert!(!plan.has_errors(), "{}", plan.report());
    let hasher = portcullis::auth::password::Hasher::for_tests();
    portcullis::migrate::import::apply(&store, &plan, &hasher).expect("import");
    store.flush().expect("flush");
}

/// Every `c*` user's mail, by uid.
fn mails(c: &mut ldap3::LdapConn) -> Vec<(String, String)> {
    let (rc, entries) = search(
        c,
        &format!("ou=users,{BASE}"),
        Scope::Subtree,
        "(&(objectClass=inetOrgPerson)(uid=c*))",
        &["uid", "mail"],
    );
    assert_eq!(rc, 0);
    let mut out: Vec<(String, String)> = entries
        .into_iter()
        .map(|e| (e.attrs["uid"][0].clone(), e.attrs["mail"][0].clone()))
        .collect();
    out.sort();
    out
}

#[test]
fn searches_larger_than_the_record_cache_return_current_entries() {
    let mut env = FAST_HASH_ENV.to_vec();
    env.push(("PORTCULLIS_STORE_RECORD_CACHE_MIB", "1"));
    let s = Server::start_seeded(&env, seed);
    let mut c = s.admin();
    let original: Vec<(String, String)> = (0..USERS)
        .map(|i| (format!("c{i:05}"), format!("c{i:05}@example.com")))
        .collect();
    // Twice: the second pass reads through a cache the first one filled
    // and overflowed.
    assert_eq!(mails(&mut c), original);
    assert_eq!(mails(&mut c), original);

    // Every seventh user gets a new address; the next searches see each
    // change at once, whether its record was cached or not.
    let changed: HashSet<usize> = (0..USERS).step_by(7).collect();
    for &i in &changed {
        let new = format!("changed{i:05}@example.org");
        c.modify(
            &user_dn(&format!("c{i:05}")),
            vec![Mod::Replace("mail", HashSet::from([new.as_str()]))],
        )
        .expect("modify")
        .success()
        .expect("modify succeeds");
    }
    let expected: Vec<(String, String)> = (0..USERS)
        .map(|i| {
            let mail = if changed.contains(&i) {
                format!("changed{i:05}@example.org")
            } else {
                format!("c{i:05}@example.com")
            };
            (format!("c{i:05}"), mail)
        })
        .collect();
    assert_eq!(mails(&mut c), expected);
    assert_eq!(mails(&mut c), expected);
}

/// A large answer leaves the server in batches as it is built (issue 15):
/// every entry arrives, in username order, each with what was asked; a
/// size limit cuts the answer at exactly the limit with sizeLimitExceeded.
#[test]
fn a_large_answer_arrives_whole_and_a_size_limit_cuts_it_exactly() {
    let s = Server::start_seeded(FAST_HASH_ENV, seed);
    let mut c = s.admin();
    // Some 350 bytes an entry: many batches of 64 KiB.
    let (rc, entries) = search(
        &mut c,
        &format!("ou=users,{BASE}"),
        Scope::Subtree,
        "(uid=c*)",
        &["*"],
    );
    assert_eq!(rc, 0);
    let uids: Vec<String> = entries.iter().map(|e| e.attrs["uid"][0].clone()).collect();
    let expected: Vec<String> = (0..USERS).map(|i| format!("c{i:05}")).collect();
    assert_eq!(uids, expected, "every entry, in username order");
    assert!(entries
        .iter()
        .all(|e| e.attrs["sn"][0].starts_with("Number ") && e.attrs.contains_key("mail")));

    let limited = c
        .with_search_options(ldap3::SearchOptions::new().sizelimit(1500))
        .search(
            &format!("ou=users,{BASE}"),
            Scope::Subtree,
            "(uid=c*)",
            vec!["uid"],
        )
        .expect("search");
    let ldap3::SearchResult(entries, result) = limited;
    assert_eq!(result.rc, 4, "sizeLimitExceeded");
    assert_eq!(entries.len(), 1500);
}
