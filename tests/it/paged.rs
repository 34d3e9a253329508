//! The server-wide cap on what open paged searches keep
//! (`ldap.paged_results_max_bytes`): once it is reached a new paged search
//! gets adminLimitExceeded (11), searches without paging never do, and the
//! memory comes back when paged searches finish or their connections close.
//! A kept user counts its record only while the record cache does not
//! hold it too, so the tests that fill the cap run without that cache
//! (`store.record_cache_mib = 0`), as a directory larger than it does.

use std::time::{Duration, Instant};

use ldap3::controls::{Control, PagedResults};
use ldap3::{LdapConn, Scope};

use crate::harness::{vm_rss_kib, Server, BASE, FAST_HASH_ENV};

const USERS: usize = 200;
/// Room for a couple of searches over the users keeping one attribute
/// (each keeps ~200 entries of some 300 estimated bytes).
const CAP: &str = "150000";
const ADMIN_LIMIT_EXCEEDED: u32 = 11;

fn seed(data: &std::path::Path) {
    let store = portcullis::store::Store::open(data).expect("store");
    for i in 0..USERS {
        store
            .create_user(portcullis::store::NewUser {
                username: format!("pg{i:03}"),
                ..Default::default()
            })
            .expect("user");
    }
    store.flush().expect("flush");
}

/// One page of the search for every `pg*` user: (result code, entries,
/// cookie of the rest).
fn page(c: &mut LdapConn, size: i32, cookie: Vec<u8>) -> (u32, usize, Vec<u8>) {
    let res = c
        .with_controls(PagedResults { size, cookie })
        .search(
            &format!("ou=users,{BASE}"),
            Scope::OneLevel,
            "(uid=pg*)",
            vec!["uid"],
        )
        .expect("paged search");
    let ldap3::SearchResult(entries, result) = res;
    let cookie = result
        .ctrls
        .iter()
        .find(|Control(_, raw)| raw.ctype == "1.2.840.113556.1.4.319")
        .map(|c| c.1.parse::<PagedResults>().cookie)
        .unwrap_or_default();
    if result.rc == ADMIN_LIMIT_EXCEEDED {
        assert!(
            result.text.contains("paged searches"),
            "a clear message: {}",
            result.text
        );
    }
    (result.rc, entries.len(), cookie)
}

/// Every `pg*` user without paging.
fn unpaged(c: &mut LdapConn) -> (u32, usize) {
    let ldap3::SearchResult(entries, result) = c
        .search(
            &format!("ou=users,{BASE}"),
            Scope::OneLevel,
            "(uid=pg*)",
            vec!["uid"],
        )
        .expect("search");
    (result.rc, entries.len())
}

#[test]
fn paged_searches_share_a_capped_budget() {
    let mut env = FAST_HASH_ENV.to_vec();
    env.push(("PORTCULLIS_LDAP_PAGED_RESULTS_MAX_BYTES", CAP));
    // No record cache: each search holds records of its own, counted.
    env.push(("PORTCULLIS_STORE_RECORD_CACHE_MIB", "0"));
    let s = Server::start_seeded(&env, seed);

    // Connections open paged searches (first page of 1 entry, the rest
    // kept) until one is refused.
    let mut holders = Vec::new();
    let mut cookies = Vec::new();
    let mut refused = loop {
        assert!(holders.len() < 20, "the cap never refused a paged search");
        let mut c = s.admin();
        let (rc, n, cookie) = page(&mut c, 1, Vec::new());
        if rc == ADMIN_LIMIT_EXCEEDED {
            assert_eq!(n, 0, "a refused search sends no entries");
            assert!(cookie.is_empty());
            break c;
        }
        assert_eq!((rc, n), (0, 1));
        assert!(!cookie.is_empty());
        holders.push(c);
        cookies.push(cookie);
    };
    // Room for two at least, so that one search besides `refused`'s fits
    // once the holders are gone.
    assert!(holders.len() >= 2, "CAP holds {} searches", holders.len());

    // Searches that keep nothing are never refused: without paging, or
    // paged with every entry on the first page.
    assert_eq!(unpaged(&mut refused), (0, USERS));
    let (rc, n, cookie) = page(&mut refused, 1000, Vec::new());
    assert_eq!((rc, n), (0, USERS));
    assert!(cookie.is_empty());

    // A holder finishes its search: its bytes come back, so the same
    // search fits again, and the budget is full once more.
    let (rc, n, cookie) = page(&mut holders[0], 1000, cookies[0].clone());
    assert_eq!((rc, n), (0, USERS - 1));
    assert!(cookie.is_empty());
    let (rc, n, refused_cookie) = page(&mut refused, 1, Vec::new());
    assert_eq!((rc, n), (0, 1), "the finished search gave its bytes back");
    assert!(!refused_cookie.is_empty());
    let mut fresh = s.admin();
    assert_eq!(page(&mut fresh, 1, Vec::new()).0, ADMIN_LIMIT_EXCEEDED);
    assert_eq!(unpaged(&mut fresh), (0, USERS));

    // The holders leave with their searches open: the server frees their
    // bytes as it sees each connection close.
    for mut c in holders {
        c.unbind().expect("unbind");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (rc, n, _) = page(&mut fresh, 1, Vec::new());
        if rc == 0 {
            assert_eq!(n, 1);
            break;
        }
        assert_eq!(rc, ADMIN_LIMIT_EXCEEDED);
        assert!(
            Instant::now() < deadline,
            "closed connections did not give their paged bytes back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The search that started while the budget was full still pages on.
    let (rc, n, _) = page(&mut refused, 1000, refused_cookie);
    assert_eq!((rc, n), (0, USERS - 1));
}

const MANY_USERS: usize = 10_000;
const CONNECTIONS: usize = 100;
/// The server's resident memory may grow by at most the shipped cap on
/// paged searches (256 MiB, `ldap.paged_results_max_bytes`) plus this much
/// for everything else that 100 connections and 10,000 decoded entries cost
/// (caches, buffers, allocator slack).
const SLACK_MIB: u64 = 128;
const DEFAULT_CAP_MIB: u64 = 256;

/// 10,000 users as an LDAP import would write them (name, mail, full name),
/// in one batch.
fn seed_many(data: &std::path::Path) {
    let store = portcullis::store::Store::open(data).expect("store");
    let mut ldif = String::from("version: 1\n\n");
    for i in 0..MANY_USERS {
        ldif.push_str(&format!(
            "dn: uid=m{i:05},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: m{i:05}\n\
             cn: Member Number {i}\nsn: Number {i}\ndisplayName: Member Number {i}\n\
             mail: m{i:05}@example.com\ntelephoneNumber: +1 555 {i:05}\n\n"
        ));
    }
    let file = portcullis::ldif::parse_str(&ldif).expect("ldif");
    let plan = portcullis::migrate::import::plan_ldif(&file, &Default::default());
    assert!(!plan.has_errors(), "{}", plan.report());
    portcullis::migrate::import::apply(
        &store,
        &plan,
        &portcullis::auth::password::Hasher::for_tests(),
    )
    .expect("import");
    store.flush().expect("flush");
}

/// 100 connections each hold a paged search over 10,000 users with every
/// attribute (first page of one entry, the rest kept), as many as the
/// shipped budget lets them: those beyond it are refused with 11, and the
/// server's memory stays within the budget plus a stated slack.
#[test]
fn many_connections_holding_paged_searches_stay_within_the_budget() {
    let mut env = FAST_HASH_ENV.to_vec();
    env.push(("PORTCULLIS_STORE_RECORD_CACHE_MIB", "0"));
    let s = Server::start_seeded(&env, seed_many);
    let base = format!("ou=users,{BASE}");
    // Warm: every entry decoded and cached once, so the growth measured
    // below is what the paged searches hold.
    let mut warm = s.admin();
    let ldap3::SearchResult(entries, result) = warm
        .search(&base, Scope::OneLevel, "(uid=m*)", vec!["*"])
        .expect("search");
    assert_eq!((result.rc, entries.len()), (0, MANY_USERS));
    drop(entries);
    let before = vm_rss_kib(s.pid());

    let mut holders = Vec::with_capacity(CONNECTIONS);
    let (mut held, mut refused) = (0, 0);
    for _ in 0..CONNECTIONS {
        let mut c = s.admin();
        let ldap3::SearchResult(entries, result) = c
            .with_controls(PagedResults {
                size: 1,
                cookie: Vec::new(),
            })
            .search(&base, Scope::OneLevel, "(uid=m*)", vec!["*"])
            .expect("paged search");
        match result.rc {
            0 => {
                assert_eq!(entries.len(), 1);
                held += 1;
            }
            ADMIN_LIMIT_EXCEEDED => refused += 1,
            rc => panic!("paged search answered {rc}: {}", result.text),
        }
        holders.push(c);
    }
    let after = vm_rss_kib(s.pid());
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!(
        "{held} paged searches held, {refused} refused; VmRSS {} -> {} MiB",
        before / 1024,
        after / 1024
    );
    assert!(held >= 1, "no paged search fitted the default budget");
    assert!(
        refused >= 1,
        "100 searches over 10,000 entries never reached the budget"
    );
    assert!(
        grown_mib <= DEFAULT_CAP_MIB + SLACK_MIB,
        "VmRSS grew by {grown_mib} MiB with {held} paged searches held"
    );
    // A search without paging still answers in full meanwhile.
    assert_eq!(unpaged_many(&mut warm), (0, MANY_USERS));
}

fn unpaged_many(c: &mut LdapConn) -> (u32, usize) {
    let ldap3::SearchResult(entries, result) = c
        .search(
            &format!("ou=users,{BASE}"),
            Scope::OneLevel,
            "(uid=m*)",
            vec!["uid"],
        )
        .expect("search");
    (result.rc, entries.len())
}

/// A cap far below what 200 built entries with these attributes are
/// counted for (some 700 bytes each), above what 200 kept records cost.
const RECORDS_CAP: &str = "30000";
const NSS_ATTRS: [&str; 8] = [
    "objectClass",
    "uid",
    "uidNumber",
    "gidNumber",
    "cn",
    "homeDirectory",
    "loginShell",
    "memberOf",
];

/// Pages of `size` through `filter` under `ou=users` with the NSS
/// attributes, each answered 0, until the cookie ends: every entry, in
/// order.
fn page_through(c: &mut LdapConn, filter: &str, size: i32, most: usize) -> Vec<ldap3::SearchEntry> {
    let base = format!("ou=users,{BASE}");
    let mut paged = Vec::new();
    let mut cookie = Vec::new();
    for n in 0.. {
        assert!(n <= most, "the pages of {filter} never ended");
        let ldap3::SearchResult(entries, result) = c
            .with_controls(PagedResults { size, cookie })
            .search(&base, Scope::OneLevel, filter, NSS_ATTRS.to_vec())
            .expect("paged search");
        assert_eq!(result.rc, 0, "{filter}, page {n}: {}", result.text);
        paged.extend(entries.into_iter().map(ldap3::SearchEntry::construct));
        cookie = result
            .ctrls
            .iter()
            .find(|Control(_, raw)| raw.ctype == "1.2.840.113556.1.4.319")
            .map(|c| c.1.parse::<PagedResults>().cookie)
            .unwrap_or_default();
        if cookie.is_empty() {
            break;
        }
    }
    paged
}

/// A paged enumeration of every user (a filter every user matches, as
/// SSSD's and nslcd's) keeps the users' shared records for its later
/// pages, not built entries: under a cap their entries would not fit, it
/// pages through the same entries, in the same order, as the search
/// without paging answers. So does a filter evaluated on each entry (a
/// substring of uid, `(mail=*)`, a uidNumber range): the entry it is
/// evaluated on is dropped and the record kept.
#[test]
fn a_paged_enumeration_keeps_records_not_entries() {
    let mut env = FAST_HASH_ENV.to_vec();
    env.push(("PORTCULLIS_LDAP_PAGED_RESULTS_MAX_BYTES", RECORDS_CAP));
    let s = Server::start_seeded(&env, seed);
    let base = format!("ou=users,{BASE}");
    let mut c = s.admin();
    for filter in [
        "(objectClass=posixAccount)",
        "(&(objectClass=posixAccount)(uid=pg*))",
    ] {
        let ldap3::SearchResult(all, result) = c
            .search(&base, Scope::OneLevel, filter, NSS_ATTRS.to_vec())
            .expect("search");
        assert_eq!(result.rc, 0);
        assert!(all.len() >= USERS, "{filter}: every pg user");
        let all: Vec<_> = all.into_iter().map(ldap3::SearchEntry::construct).collect();
        let paged = page_through(&mut c, filter, 7, all.len() / 7 + 1);
        assert_eq!(paged.len(), all.len(), "{filter}");
        for (p, a) in paged.iter().zip(&all) {
            assert_eq!((&p.dn, &p.attrs), (&a.dn, &a.attrs));
        }
        assert!(all.iter().all(|e| e.attrs.contains_key("uidNumber")));
    }
}
