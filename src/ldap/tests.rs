//! Handler tests without sockets: requests in, responses out, against a
//! temporary store.

use std::net::SocketAddr;

use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapDerefAliases, LdapFilter, LdapMsg, LdapOp, LdapResultCode,
    LdapSearchRequest, LdapSearchScope,
};

use super::codec::{Codec, Incoming, Outgoing};
use super::handler::{Handler, Limits, Next, Outcome, Session};
use super::result::success;
use crate::auth::password::Hasher;
use crate::auth::Authenticator;
use crate::directory::{Directory, Dn, Identity};
use crate::store::{Member, NewUser, Store};

fn setup() -> Handler {
    setup_with_store().0
}

fn setup_with_store() -> (Handler, Store) {
    let store = Store::temporary().expect("store");
    let hasher = Hasher::for_tests();
    let admins = store.create_group("admins", None).expect("group");
    store.create_group("ldap-search", None).expect("group");
    for name in ["alice", "root"] {
        let u = store
            .create_user(NewUser {
                username: name.into(),
                ..NewUser::default()
            })
            .expect("user");
        let phc = hasher.hash_blocking(&format!("{name}-pw")).expect("hash");
        store.set_password_hash(u.id, &phc).expect("set");
        if name == "root" {
            store
                .add_member(admins.id, Member::User(u.id))
                .expect("member");
        }
    }
    let base = Dn::parse("dc=example,dc=com").expect("dn");
    let directory = Directory::new(store.clone(), base, "admins", "ldap-search");
    let handler = Handler::new(
        directory,
        Authenticator::new(store.clone(), hasher),
        Limits {
            size_limit: 0,
            time_limit: None,
        },
    );
    (handler, store)
}

fn session() -> Session {
    Session::new(SocketAddr::from(([127, 0, 0, 1], 40000)))
}

fn bind(dn: &str, pw: &str) -> LdapMsg {
    LdapMsg::new(
        1,
        LdapOp::BindRequest(LdapBindRequest {
            version: 3,
            dn: dn.into(),
            cred: LdapBindCred::Simple(pw.into()),
        }),
    )
}

fn search(base: &str, scope: LdapSearchScope, filter: LdapFilter) -> LdapMsg {
    LdapMsg::new(
        2,
        LdapOp::SearchRequest(LdapSearchRequest {
            base: base.into(),
            scope,
            aliases: LdapDerefAliases::Never,
            sizelimit: 0,
            timelimit: 0,
            typesonly: false,
            filter,
            attrs: vec![],
        }),
    )
}

fn code(out: &Outgoing) -> LdapResultCode {
    match &out.msg().op {
        LdapOp::BindResponse(r) => r.res.code.clone(),
        LdapOp::SearchResultDone(r)
        | LdapOp::CompareResult(r)
        | LdapOp::AddResponse(r)
        | LdapOp::ModifyResponse(r)
        | LdapOp::DelResponse(r) => r.code.clone(),
        LdapOp::ExtendedResponse(r) => r.res.code.clone(),
        other => panic!("no result in {other:?}"),
    }
}

#[tokio::test]
async fn bind_codes() {
    let h = setup();
    let mut s = session();
    let out = h
        .handle(
            &mut s,
            bind("cn=alice,ou=users,dc=example,dc=com", "alice-pw"),
        )
        .await;
    assert_eq!(code(&out.responses[0]), LdapResultCode::Success);
    assert!(matches!(s.identity, Identity::User { ref username, .. } if username == "alice"));

    let out = h
        .handle(&mut s, bind("cn=alice,ou=users,dc=example,dc=com", "nope"))
        .await;
    assert_eq!(code(&out.responses[0]), LdapResultCode::InvalidCredentials);
    assert_eq!(s.identity, Identity::Anonymous);

    let out = h
        .handle(&mut s, bind("cn=alice,ou=users,dc=example,dc=com", ""))
        .await;
    assert_eq!(code(&out.responses[0]), LdapResultCode::UnwillingToPerform);

    let out = h.handle(&mut s, bind("not a dn", "x")).await;
    assert_eq!(code(&out.responses[0]), LdapResultCode::InvalidDNSyntax);

    let mut v2 = bind("", "");
    if let LdapOp::BindRequest(b) = &mut v2.op {
        b.version = 2;
    }
    let out = h.handle(&mut s, v2).await;
    assert_eq!(code(&out.responses[0]), LdapResultCode::ProtocolError);
}

#[tokio::test]
async fn access_by_identity() {
    let h = setup();
    let all = || LdapFilter::Present("objectClass".into());
    let mut anon = session();
    let out = h
        .handle(
            &mut anon,
            search("dc=example,dc=com", LdapSearchScope::Subtree, all()),
        )
        .await;
    assert_eq!(
        code(out.responses.last().expect("done")),
        LdapResultCode::InsufficentAccessRights
    );
    let out = h
        .handle(&mut anon, search("", LdapSearchScope::Base, all()))
        .await;
    assert_eq!(on_the_wire(&out).1.len(), 2);

    let mut alice = session();
    h.handle(
        &mut alice,
        bind("cn=alice,ou=users,dc=example,dc=com", "alice-pw"),
    )
    .await;
    let out = h
        .handle(
            &mut alice,
            search("dc=example,dc=com", LdapSearchScope::Subtree, all()),
        )
        .await;
    assert_eq!(on_the_wire(&out).1.len(), 2, "alice sees only herself");

    let mut root = session();
    h.handle(
        &mut root,
        bind("uid=root,ou=users,dc=example,dc=com", "root-pw"),
    )
    .await;
    let out = h
        .handle(
            &mut root,
            search("dc=example,dc=com", LdapSearchScope::Subtree, all()),
        )
        .await;
    // base, 2 ous, 2 users, 2 groups, done
    assert_eq!(on_the_wire(&out).1.len(), 8);
}

#[tokio::test]
async fn unsupported_requests_keep_the_connection() {
    let h = setup();
    let mut s = session();
    let out = h
        .handle(
            &mut s,
            LdapMsg::new(
                3,
                LdapOp::DelRequest("cn=alice,ou=users,dc=example,dc=com".into()),
            ),
        )
        .await;
    assert_eq!(out.next, Next::Continue);
    // Anonymous clients may not write (account::write).
    assert_eq!(
        code(&out.responses[0]),
        LdapResultCode::InsufficentAccessRights
    );

    let mut critical = search(
        "",
        LdapSearchScope::Base,
        LdapFilter::Present("objectClass".into()),
    );
    critical.ctrl.push(LdapControl::Unknown {
        oid: "1.2.3.4".into(),
        criticality: true,
        value: None,
    });
    let out = h.handle(&mut s, critical).await;
    assert_eq!(
        code(&out.responses[0]),
        LdapResultCode::UnavailableCriticalExtension
    );

    let out = h
        .handle(&mut s, LdapMsg::new(4, LdapOp::UnbindRequest))
        .await;
    assert_eq!(out.next, Next::Close);
}

/// `ldap.require_tls_for_bind = auto` by the class of the plain listener's
/// address; `always` and `never` regardless of it; TLS always passes.
#[test]
fn confidentiality_rule_by_address_class() {
    use super::handler::Confidentiality;
    use crate::config::RequireTls;
    use std::net::IpAddr;
    let rule = |policy, addr: &str| Confidentiality {
        policy,
        plain_listener: addr.parse::<IpAddr>().expect("ip"),
    };
    for loopback in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
        assert!(
            !rule(RequireTls::Auto, loopback).refuses_cleartext(false),
            "{loopback}"
        );
        assert!(
            rule(RequireTls::Always, loopback).refuses_cleartext(false),
            "{loopback}"
        );
    }
    for remote in [
        "0.0.0.0",
        "::",
        "10.0.0.5",
        "192.168.1.2",
        "203.0.113.7",
        "2001:db8::1",
        "fe80::1",
        "::ffff:10.0.0.1",
    ] {
        assert!(
            rule(RequireTls::Auto, remote).refuses_cleartext(false),
            "{remote}"
        );
        assert!(
            !rule(RequireTls::Never, remote).refuses_cleartext(false),
            "{remote}"
        );
        for policy in [RequireTls::Auto, RequireTls::Always, RequireTls::Never] {
            assert!(
                !rule(policy, remote).refuses_cleartext(true),
                "{remote} over TLS"
            );
        }
    }
}

#[tokio::test]
async fn cleartext_password_bind_gets_13_anonymous_passes() {
    use super::handler::Confidentiality;
    use crate::config::RequireTls;
    let mut h = setup();
    h.confidentiality = Confidentiality {
        policy: RequireTls::Auto,
        plain_listener: "0.0.0.0".parse().expect("ip"),
    };
    let mut s = session();
    let out = h
        .handle(
            &mut s,
            bind("cn=alice,ou=users,dc=example,dc=com", "alice-pw"),
        )
        .await;
    assert_eq!(
        code(&out.responses[0]),
        LdapResultCode::ConfidentialityRequired
    );
    assert_eq!(s.identity, Identity::Anonymous);
    let out = h.handle(&mut s, bind("", "")).await;
    assert_eq!(code(&out.responses[0]), LdapResultCode::Success);
    s.encrypted = true;
    let out = h
        .handle(
            &mut s,
            bind("cn=alice,ou=users,dc=example,dc=com", "alice-pw"),
        )
        .await;
    assert_eq!(code(&out.responses[0]), LdapResultCode::Success);
}

/// RFC 3062 §2: a change to a given new password answers success with no
/// responseValue (Python's ldap3 cannot read an empty SEQUENCE there); a
/// generated password comes back in one.
#[tokio::test]
async fn password_modify_response_value() {
    use ldap3_proto::proto::LdapExtendedRequest;
    // PasswdModifyRequestValue ::= SEQUENCE { oldPasswd [1], newPasswd [2] }
    let modify = |old: &str, new: Option<&str>| {
        let mut body = vec![0x81, old.len() as u8];
        body.extend_from_slice(old.as_bytes());
        if let Some(new) = new {
            body.extend_from_slice(&[0x82, new.len() as u8]);
            body.extend_from_slice(new.as_bytes());
        }
        let mut value = vec![0x30, body.len() as u8];
        value.extend(body);
        LdapMsg::new(
            5,
            LdapOp::ExtendedRequest(LdapExtendedRequest {
                name: super::OID_PASSWORD_MODIFY.into(),
                value: Some(value),
            }),
        )
    };
    let alice = "cn=alice,ou=users,dc=example,dc=com";
    let h = setup();
    let mut s = session();
    let out = h.handle(&mut s, bind(alice, "alice-pw")).await;
    assert_eq!(code(&out.responses[0]), LdapResultCode::Success);
    let out = h
        .handle(&mut s, modify("alice-pw", Some("alice-pw-2")))
        .await;
    let LdapOp::ExtendedResponse(resp) = &out.responses[0].msg().op else {
        panic!("not an extended response: {:?}", out.responses[0].msg().op);
    };
    assert_eq!(resp.res.code, LdapResultCode::Success);
    assert_eq!(resp.value, None, "no responseValue without genPasswd");

    let out = h.handle(&mut s, modify("alice-pw-2", None)).await;
    let LdapOp::ExtendedResponse(resp) = &out.responses[0].msg().op else {
        panic!("not an extended response: {:?}", out.responses[0].msg().op);
    };
    assert_eq!(resp.res.code, LdapResultCode::Success);
    assert!(resp.value.as_ref().is_some_and(|v| v.len() > 2));
}

/// The bytes a connection writes for `out`, read back as messages.
fn on_the_wire(out: &Outcome) -> (Vec<u8>, Vec<LdapMsg>) {
    use tokio_util::codec::Encoder;
    let mut codec = Codec::new(1 << 24, 32);
    let mut buf = bytes::BytesMut::new();
    for r in &out.responses {
        codec.encode(r.clone(), &mut buf).expect("encode");
    }
    let bytes = buf.to_vec();
    let mut msgs = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (item, used) = codec
            .decode_slice(&bytes[at..])
            .expect("ok")
            .expect("whole");
        let Incoming::Msg(m) = item else {
            panic!("undecodable response");
        };
        msgs.push(m);
        at += used;
    }
    (bytes, msgs)
}

/// The values of `attr` in the first response, a search result entry.
fn values(msgs: &[LdapMsg], attr: &str) -> Vec<String> {
    let LdapOp::SearchResultEntry(e) = &msgs[0].op else {
        panic!("not an entry: {:?}", msgs[0].op);
    };
    e.attributes
        .iter()
        .filter(|a| a.atype.eq_ignore_ascii_case(attr))
        .flat_map(|a| {
            a.vals
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
        .collect()
}

/// The group entries of a subtree search of ou=groups by `session`
/// selecting `attrs`: (DN, attributes as sorted "type: value" lines).
async fn groups_listed(
    h: &Handler,
    session: &mut Session,
    msgid: i32,
    attrs: &[&str],
    types_only: bool,
) -> Vec<(String, Vec<String>)> {
    let filter = LdapFilter::Equality("objectClass".into(), "posixGroup".into());
    groups_found(h, session, msgid, filter, attrs, types_only).await
}

/// [`groups_listed`] with another filter.
async fn groups_found(
    h: &Handler,
    session: &mut Session,
    msgid: i32,
    filter: LdapFilter,
    attrs: &[&str],
    types_only: bool,
) -> Vec<(String, Vec<String>)> {
    let mut msg = search(
        "ou=groups,dc=example,dc=com",
        LdapSearchScope::Subtree,
        filter,
    );
    msg.msgid = msgid;
    if let LdapOp::SearchRequest(r) = &mut msg.op {
        r.attrs = attrs.iter().map(|a| a.to_string()).collect();
        r.typesonly = types_only;
    }
    let (_, msgs) = on_the_wire(&h.handle(session, msg).await);
    assert!(msgs.iter().all(|m| m.msgid == msgid));
    assert_eq!(
        msgs.last().map(|m| &m.op),
        Some(&LdapOp::SearchResultDone(success()))
    );
    msgs.iter()
        .filter_map(|m| match &m.op {
            LdapOp::SearchResultEntry(e) => {
                let mut lines: Vec<String> = e
                    .attributes
                    .iter()
                    .flat_map(|a| {
                        let vals: Vec<String> = if a.vals.is_empty() {
                            vec![format!("{}:", a.atype)]
                        } else {
                            a.vals
                                .iter()
                                .map(|v| format!("{}: {}", a.atype, String::from_utf8_lossy(v)))
                                .collect()
                        };
                        vals
                    })
                    .collect();
                lines.sort();
                Some((e.dn.clone(), lines))
            }
            _ => None,
        })
        .collect()
}

/// Gives `group` a new description (a new record, the same epoch).
fn describe(store: &Store, group: &crate::store::Group, description: &str) {
    let snapshot = store
        .group_snapshot(group.id)
        .expect("read")
        .expect("group");
    let mut after = snapshot.group.clone();
    after.description = Some(description.into());
    store
        .replace_group(&snapshot, &after, &snapshot.members)
        .expect("write")
        .expect("no race");
}

/// The group devs (description "one") with `members`, a user bob outside
/// it, and a session bound as root.
async fn devs_and_root(
    members: &[&str],
) -> (
    Handler,
    Store,
    crate::store::Group,
    crate::store::User,
    Session,
) {
    let (h, store) = setup_with_store();
    let devs = store
        .create_group("devs", Some("one".into()))
        .expect("group");
    let bob = store
        .create_user(NewUser {
            username: "bob".into(),
            ..NewUser::default()
        })
        .expect("user");
    for name in members {
        let u = store.user_by_name(name).expect("read").expect("user");
        store.add_member(devs.id, Member::User(u.id)).expect("add");
    }
    let mut root = session();
    h.handle(
        &mut root,
        bind("uid=root,ou=users,dc=example,dc=com", "root-pw"),
    )
    .await;
    (h, store, devs, bob, root)
}

#[tokio::test]
async fn an_enumeration_of_groups_follows_every_change_and_selection() {
    let (h, store, devs, bob, mut root) = devs_and_root(&["alice", "root"]).await;
    let devs_dn = "cn=devs,ou=groups,dc=example,dc=com";
    let devs_of = |listed: &[(String, Vec<String>)]| {
        listed
            .iter()
            .find(|(dn, _)| dn == devs_dn)
            .map(|(_, lines)| lines.clone())
            .expect("devs listed")
    };
    let count =
        |lines: &[String], prefix: &str| lines.iter().filter(|l| l.starts_with(prefix)).count();

    // Listed again and again (the bodies kept after the first), under
    // other message IDs: the same entries.
    let first = groups_listed(&h, &mut root, 2, &["member", "description"], false).await;
    assert_eq!(first.len(), 3, "{first:?}");
    let devs_lines = devs_of(&first);
    assert_eq!(count(&devs_lines, "member: "), 2);
    assert!(devs_lines.contains(&"description: one".to_string()));
    for msgid in [3, 70_000, i32::MAX] {
        let again = groups_listed(&h, &mut root, msgid, &["member", "description"], false).await;
        assert_eq!(again, first);
    }
    // Each selection gets its own attributes, whatever was listed before.
    let cn_only = groups_listed(&h, &mut root, 4, &["cn"], false).await;
    assert_eq!(devs_of(&cn_only), ["cn: devs"]);
    let types = groups_listed(&h, &mut root, 5, &["cn"], true).await;
    assert_eq!(devs_of(&types), ["cn:"]);
    let all = groups_listed(&h, &mut root, 6, &[], false).await;
    let all_devs = devs_of(&all);
    assert!(all_devs.contains(&"cn: devs".to_string()), "{all_devs:?}");
    assert_eq!(count(&all_devs, "memberUid: "), 2, "{all_devs:?}");
    assert_eq!(
        groups_listed(&h, &mut root, 7, &["member", "description"], false).await,
        first
    );

    // A membership change, a new description, a rename: each seen at once.
    store
        .add_member(devs.id, Member::User(bob.id))
        .expect("add");
    let listed = groups_listed(&h, &mut root, 8, &["member", "description"], false).await;
    let lines = devs_of(&listed);
    assert_eq!(count(&lines, "member: "), 3);
    assert!(lines.iter().any(|l| l.contains("bob")), "{lines:?}");
    describe(&store, &devs, "two");
    for msgid in [9, 10] {
        let listed = groups_listed(&h, &mut root, msgid, &["member", "description"], false).await;
        assert!(devs_of(&listed).contains(&"description: two".to_string()));
    }
    store.rename_group(devs.id, "builders").expect("rename");
    let listed = groups_listed(&h, &mut root, 11, &["cn"], false).await;
    assert!(listed.iter().all(|(dn, _)| dn != devs_dn), "{listed:?}");
    assert!(listed.iter().any(
        |(dn, lines)| dn == "cn=builders,ou=groups,dc=example,dc=com" && lines == &["cn: builders"]
    ));

    // Alice, in builders only, lists that group alone, though the bodies
    // of the others are kept from root's searches.
    let mut alice = session();
    h.handle(
        &mut alice,
        bind("cn=alice,ou=users,dc=example,dc=com", "alice-pw"),
    )
    .await;
    groups_listed(&h, &mut root, 12, &["member"], false).await;
    let listed = groups_listed(&h, &mut alice, 13, &["member"], false).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].0, "cn=builders,ou=groups,dc=example,dc=com");
    assert_eq!(count(&listed[0].1, "member: "), 3);
}

#[tokio::test]
async fn a_group_looked_up_on_the_reader_follows_every_change_and_selection() {
    let (h, store, devs, bob, mut root) = devs_and_root(&["alice"]).await;
    // As the connection's reader runs a lookup by key.
    root.on_reader = true;
    let by_name = |name: &str| {
        LdapFilter::And(vec![
            LdapFilter::Equality("objectClass".into(), "posixGroup".into()),
            LdapFilter::Equality("cn".into(), name.into()),
        ])
    };
    let lookup = |msgid: i32, attrs: &'static [&'static str], types_only: bool| {
        let h = &h;
        let filter = by_name("devs");
        let mut s = root.clone();
        async move { groups_found(h, &mut s, msgid, filter, attrs, types_only).await }
    };
    let first = lookup(2, &["memberUid", "description"], false).await;
    assert_eq!(
        first,
        [(
            "cn=devs,ou=groups,dc=example,dc=com".to_string(),
            vec![
                "description: one".to_string(),
                "memberUid: alice".to_string()
            ]
        )]
    );
    for msgid in [3, 70_000] {
        assert_eq!(
            lookup(msgid, &["memberUid", "description"], false).await,
            first
        );
    }
    assert_eq!(lookup(4, &["cn"], false).await[0].1, ["cn: devs"]);
    assert_eq!(lookup(5, &["cn"], true).await[0].1, ["cn:"]);

    store
        .add_member(devs.id, Member::User(bob.id))
        .expect("add");
    assert_eq!(
        lookup(6, &["memberUid"], false).await[0].1,
        ["memberUid: alice", "memberUid: bob"]
    );
    describe(&store, &devs, "two");
    for msgid in [7, 8] {
        assert_eq!(
            lookup(msgid, &["description"], false).await[0].1,
            ["description: two"]
        );
    }
    store.rename_group(devs.id, "builders").expect("rename");
    assert!(lookup(9, &["cn"], false).await.is_empty());
}

#[tokio::test]
async fn a_cached_group_read_is_sent_preencoded_and_follows_every_change() {
    let (h, store, devs, bob, mut root) = devs_and_root(&["alice", "root"]).await;
    let read = |dn: &str, msgid: i32| {
        let mut msg = search(
            dn,
            LdapSearchScope::Base,
            LdapFilter::Present("objectClass".into()),
        );
        msg.msgid = msgid;
        if let LdapOp::SearchRequest(r) = &mut msg.op {
            r.attrs = vec!["member".into(), "description".into()];
        }
        msg
    };
    let dn = "cn=devs,ou=groups,dc=example,dc=com";

    // The first read builds the entry (and encodes it where it was built);
    // the next ones send the encoded body kept with the cached entry.
    let first = h.handle(&mut root, read(dn, 2)).await;
    let (first_bytes, msgs) = on_the_wire(&first);
    assert_eq!(values(&msgs, "member").len(), 2);
    assert_eq!(values(&msgs, "description"), ["one"]);
    let again = h.handle(&mut root, read(dn, 2)).await;
    assert!(matches!(again.responses[0], Outgoing::Entry { .. }));
    assert_eq!(on_the_wire(&again).0, first_bytes, "the same bytes");
    for msgid in [1, 200, 70_000, i32::MAX] {
        let (_, msgs) = on_the_wire(&h.handle(&mut root, read(dn, msgid)).await);
        assert!(msgs.iter().all(|m| m.msgid == msgid));
        assert_eq!(values(&msgs, "member").len(), 2);
        assert_eq!(
            msgs.last().map(|m| &m.op),
            Some(&LdapOp::SearchResultDone(success()))
        );
    }

    // A membership change moves the epoch: the next read sees it.
    store
        .add_member(devs.id, Member::User(bob.id))
        .expect("add");
    for _ in 0..2 {
        let (_, msgs) = on_the_wire(&h.handle(&mut root, read(dn, 3)).await);
        let members = values(&msgs, "member");
        assert_eq!(members.len(), 3);
        assert!(members.iter().any(|m| m.contains("bob")), "{members:?}");
    }

    // A new description changes the record, not the epoch.
    describe(&store, &devs, "two");
    for _ in 0..2 {
        let (_, msgs) = on_the_wire(&h.handle(&mut root, read(dn, 4)).await);
        assert_eq!(values(&msgs, "description"), ["two"]);
    }

    // A rename: the old name is gone, the new one is read.
    store.rename_group(devs.id, "builders").expect("rename");
    let out = h.handle(&mut root, read(dn, 5)).await;
    assert_eq!(
        code(out.responses.last().expect("done")),
        LdapResultCode::NoSuchObject
    );
    for _ in 0..2 {
        let (_, msgs) = on_the_wire(
            &h.handle(
                &mut root,
                read("cn=builders,ou=groups,dc=example,dc=com", 6),
            )
            .await,
        );
        let LdapOp::SearchResultEntry(e) = &msgs[0].op else {
            panic!("not an entry");
        };
        assert!(e.dn.starts_with("cn=builders,"), "{}", e.dn);
        assert_eq!(values(&msgs, "member").len(), 3);
    }

    // Alice is in the group and may read it; she too gets the cached body,
    // but not the body of a cached group she is not in.
    let mut alice = session();
    h.handle(
        &mut alice,
        bind("cn=alice,ou=users,dc=example,dc=com", "alice-pw"),
    )
    .await;
    let (_, msgs) = on_the_wire(
        &h.handle(
            &mut alice,
            read("cn=builders,ou=groups,dc=example,dc=com", 7),
        )
        .await,
    );
    assert_eq!(values(&msgs, "member").len(), 3);
    let admins = "cn=admins,ou=groups,dc=example,dc=com";
    for _ in 0..2 {
        let (_, msgs) = on_the_wire(&h.handle(&mut root, read(admins, 8)).await);
        assert_eq!(values(&msgs, "member").len(), 1);
    }
    let (_, msgs) = on_the_wire(&h.handle(&mut alice, read(admins, 9)).await);
    assert!(
        !msgs
            .iter()
            .any(|m| matches!(m.op, LdapOp::SearchResultEntry(_))),
        "{msgs:?}"
    );
}
