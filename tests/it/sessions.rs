//! `portcullis session list|end` against the running server: LDAP
//! connections bound as a user are listed with their address, and ending
//! one closes its TCP connection.

use std::time::{Duration, Instant};

use ldap3::Scope;
use serde_json::Value;

use crate::harness::{user_dn, Server, BASE};

fn sessions(s: &Server, user: Option<&str>) -> Vec<Value> {
    let mut args = vec!["session", "list"];
    args.extend(user);
    args.push("--json");
    let out = s.ok(&args);
    serde_json::from_str::<Value>(&out)
        .unwrap_or_else(|e| panic!("{e}: {out}"))
        .as_array()
        .expect("a list")
        .clone()
}

#[test]
fn bound_ldap_connections_are_listed_and_ended() {
    let s = Server::start();
    s.add_user("alice", "alice-pw");
    s.add_user("bob", "bob-pw");
    assert!(sessions(&s, None).is_empty());

    // An anonymous connection acts for nobody and is not listed.
    let mut anon = s.conn();
    let mut alice = s.bound(&user_dn("alice"), "alice-pw");
    let mut bob = s.bound(&user_dn("bob"), "bob-pw");
    let all = sessions(&s, None);
    assert_eq!(all.len(), 2, "{all:?}");
    let mine = sessions(&s, Some("alice"));
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["kind"], "ldap");
    assert_eq!(mine[0]["username"], "alice");
    assert_eq!(mine[0]["address"], "127.0.0.1");
    assert!(mine[0]["created"].is_string() && mine[0]["last_seen"].is_string());
    let id = mine[0]["id"].as_str().expect("id").to_string();

    // Ending it closes alice's TCP connection (within 3 s); bob's and the
    // anonymous one keep working.
    let out = s.ok(&["session", "end", &id]);
    assert!(out.contains(&id), "{out}");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let closed = alice
            .search(BASE, Scope::Base, "(objectClass=*)", vec!["1.1"])
            .is_err();
        if closed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ended connection still answers"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(bob
        .search(&user_dn("bob"), Scope::Base, "(objectClass=*)", vec!["1.1"])
        .is_ok());
    assert!(anon.extended(ldap3::exop::WhoAmI).is_ok());
    let left = sessions(&s, None);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["username"], "bob");

    // Ending it again, or a made-up id: an error, exit non-zero.
    assert!(!s.cli(&["session", "end", &id]).status.success());
    assert!(!s.cli(&["session", "end", "not-an-id"]).status.success());
    assert!(!s.cli(&["session", "list", "nobody"]).status.success());

    // A client that leaves is forgotten.
    bob.unbind().expect("unbind");
    let deadline = Instant::now() + Duration::from_secs(3);
    while !sessions(&s, None).is_empty() {
        assert!(
            Instant::now() < deadline,
            "a closed connection is still listed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Disabling or deleting a user closes the LDAP connections bound as it,
/// not only its next binds.
#[test]
fn disabling_or_deleting_a_user_closes_its_connections() {
    let s = Server::start();
    s.add_user("carol", "carol-pw");
    s.add_user("dave", "dave-pw");
    let mut carol = s.bound(&user_dn("carol"), "carol-pw");
    let mut dave = s.bound(&user_dn("dave"), "dave-pw");
    s.ok(&["user", "disable", "carol"]);
    s.ok(&["user", "delete", "dave"]);
    let deadline = Instant::now() + Duration::from_secs(3);
    for (name, conn) in [("carol", &mut carol), ("dave", &mut dave)] {
        while conn
            .search(BASE, Scope::Base, "(objectClass=*)", vec!["1.1"])
            .is_ok()
        {
            assert!(
                Instant::now() < deadline,
                "{name}'s connection still answers"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(sessions(&s, None).is_empty());
}
