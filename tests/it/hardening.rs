//! Bounded resources and hostile input: malformed, oversized and deeply
//! nested requests close only their own connection; the connection cap;
//! idle and first-message timeouts; Abandon cutting a long search short;
//! unsupported but well-formed requests answered without closing;
//! invalid message IDs refused with a Notice of Disconnection;
//! `/metrics` and `/healthz`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use ldap3::Scope;
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{LdapFilter, LdapMsg, LdapOp, LdapResultCode};

use crate::harness::{search, user_dn, Server, BASE, FAST_HASH_ENV};
use crate::raw::{self, Got, Raw, OID_WHOAMI};

fn env_with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut env = FAST_HASH_ENV.to_vec();
    env.extend_from_slice(extra);
    env
}

#[test]
fn hostile_input_closes_only_its_own_connection() {
    let s = Server::start();
    let mut admin = s.admin();

    // Garbage bytes.
    let mut c = Raw::connect(&s.addr);
    c.send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(c.closed(), "garbage must close the connection");

    // A 4-GiB length prefix: refused from the header, without waiting.
    let mut c = Raw::connect(&s.addr);
    let started = Instant::now();
    c.send_bytes(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01]);
    assert!(c.closed(), "a 4-GiB length must close the connection");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A filter nested 10,000 deep (about 40 KB, under the size limit).
    let mut c = Raw::connect(&s.addr);
    assert_eq!(
        c.bind(1, &user_dn("admin"), &s.admin_password),
        LdapResultCode::Success
    );
    let _ = c.try_send_bytes(&raw::deep_filter_search(2, 10_000));
    assert!(c.closed(), "a 10,000-deep filter must close the connection");

    // A well-formed search ldap3_proto cannot decode (scope 9): answered
    // with protocolError, and the connection stays.
    let mut c = Raw::connect(&s.addr);
    let mut body = Vec::new();
    body.extend(raw::tlv(0x04, b""));
    body.extend(raw::tlv(0x0a, &[9]));
    body.extend(raw::tlv(0x0a, &[0]));
    body.extend(raw::tlv(0x02, &[0]));
    body.extend(raw::tlv(0x02, &[0]));
    body.extend(raw::tlv(0x01, &[0]));
    body.extend(raw::tlv(0x87, b"objectClass"));
    body.extend(raw::tlv(0x30, b""));
    let mut msg = raw::tlv(0x02, &[4]);
    msg.extend(raw::tlv(0x63, &body));
    c.send_bytes(&raw::tlv(0x30, &msg));
    let resp = c.msg();
    assert_eq!(resp.msgid, 4);
    assert!(
        matches!(&resp.op, LdapOp::SearchResultDone(r) if r.code == LdapResultCode::ProtocolError),
        "{resp:?}"
    );
    c.send(raw::extended(5, OID_WHOAMI));
    assert_eq!(raw::code(&c.msg()), LdapResultCode::Success);

    // Everyone else kept working.
    let (rc, entries) = search(&mut admin, BASE, Scope::Subtree, "(uid=admin)", &["uid"]);
    assert_eq!(rc, 0);
    assert_eq!(entries.len(), 1);
    let mut fresh = s.admin();
    let (rc, _) = search(&mut fresh, BASE, Scope::Base, "(objectClass=*)", &["1.1"]);
    assert_eq!(rc, 0);
}

/// An LDAPMessage with `id` as the raw content of its messageID INTEGER.
fn message_with_raw_id(id: &[u8], op: &[u8]) -> Vec<u8> {
    let mut msg = raw::tlv(0x02, id);
    msg.extend_from_slice(op);
    raw::tlv(0x30, &msg)
}

/// RFC 4511 §4.1.1: a request under message ID 0, a negative one or one
/// beyond 2^31−1 gets a Notice of Disconnection (protocolError) and the
/// connection closes, as with slapd; it is never answered under the ID
/// ldap3_proto would truncate it to (−5 as 251, 2^32+1 as 1).
#[test]
fn invalid_message_ids_get_a_notice_of_disconnection() {
    let s = Server::start();
    // An anonymous simple bind: version 3, empty name, empty password.
    let mut bind = raw::tlv(0x02, &[3]);
    bind.extend(raw::tlv(0x04, b""));
    bind.extend(raw::tlv(0x80, b""));
    let bind = raw::tlv(0x60, &bind);
    // A base search of the root DSE.
    let mut search = Vec::new();
    search.extend(raw::tlv(0x04, b""));
    search.extend(raw::tlv(0x0a, &[0]));
    search.extend(raw::tlv(0x0a, &[0]));
    search.extend(raw::tlv(0x02, &[0]));
    search.extend(raw::tlv(0x02, &[0]));
    search.extend(raw::tlv(0x01, &[0]));
    search.extend(raw::tlv(0x87, b"objectClass"));
    search.extend(raw::tlv(0x30, b""));
    let search = raw::tlv(0x63, &search);

    // The same bytes under valid IDs are answered under those IDs.
    for (id, want) in [(&[0x01][..], 1), (&[0x7f, 0xff, 0xff, 0xff], i32::MAX)] {
        let mut c = Raw::connect(&s.addr);
        c.send_bytes(&message_with_raw_id(id, &bind));
        let resp = c.msg();
        assert_eq!(
            (resp.msgid, raw::code(&resp)),
            (want, LdapResultCode::Success)
        );
        c.send_bytes(&message_with_raw_id(id, &search));
        let resp = c.msg();
        assert_eq!(resp.msgid, want);
        assert!(matches!(resp.op, LdapOp::SearchResultEntry(_)), "{resp:?}");
    }

    for id in [
        &[0x00][..],                     // 0: only for notifications
        &[0xfb],                         // −5 (read as 251 by ldap3_proto)
        &[0xff, 0xff, 0xff, 0xff],       // −1
        &[0x00, 0x80, 0x00, 0x00, 0x00], // 2^31
        &[0x01, 0x00, 0x00, 0x00, 0x01], // 2^32+1 (read as 1)
    ] {
        for (what, op) in [("bind", &bind), ("search", &search)] {
            let mut c = Raw::connect(&s.addr);
            c.send_bytes(&message_with_raw_id(id, op));
            let notice = c.msg();
            assert_eq!(notice.msgid, 0, "{what} {id:02x?}: {notice:?}");
            let LdapOp::ExtendedResponse(r) = &notice.op else {
                panic!("{what} {id:02x?}: not a notice: {notice:?}");
            };
            assert_eq!(r.name.as_deref(), Some("1.3.6.1.4.1.1466.20036"));
            assert_eq!(r.res.code, LdapResultCode::ProtocolError);
            assert_eq!(r.res.message, "invalid message ID");
            assert!(
                matches!(c.recv(), Got::Eof),
                "{what} {id:02x?}: the connection must close after the notice"
            );
        }
    }
}

#[test]
fn connection_cap_closes_the_excess_at_once() {
    let s = Server::start_with(&env_with(&[("PORTCULLIS_LDAP_MAX_CONNECTIONS", "3")]));
    let mut held: Vec<Raw<TcpStream>> = (0..3)
        .map(|i| {
            let mut c = Raw::connect(&s.addr);
            assert_eq!(c.bind(i + 1, "", ""), LdapResultCode::Success);
            c
        })
        .collect();
    let mut extra = Raw::connect(&s.addr);
    let started = Instant::now();
    let _ = extra.try_send_bytes(&{
        let mut b = bytes::BytesMut::new();
        tokio_util::codec::Encoder::encode(
            &mut ldap3_proto::LdapCodec::default(),
            raw::bind(1, "", ""),
            &mut b,
        )
        .expect("encode");
        b.to_vec()
    });
    assert!(extra.closed(), "the fourth connection must be closed");
    assert!(started.elapsed() < Duration::from_secs(3));
    // The held ones still work; closing one makes room.
    for (i, c) in held.iter_mut().enumerate() {
        c.send(raw::extended(10 + i as i32, OID_WHOAMI));
        assert_eq!(raw::code(&c.msg()), LdapResultCode::Success);
    }
    drop(held.pop());
    let mut ok = false;
    for _ in 0..50 {
        let mut c = Raw::connect(&s.addr);
        c.send(raw::bind(1, "", ""));
        if let Got::Msg(m) = c.recv() {
            ok = raw::code(&m) == LdapResultCode::Success;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "a slot must free up when a connection closes");
}

#[test]
fn idle_and_silent_connections_are_closed() {
    let s = Server::start_with(&env_with(&[
        ("PORTCULLIS_LDAP_IDLE_TIMEOUT_SECS", "1"),
        ("PORTCULLIS_LDAP_FIRST_MESSAGE_TIMEOUT_SECS", "1"),
    ]));
    // Idle after a request.
    let mut c = Raw::connect(&s.addr);
    assert_eq!(c.bind(1, "", ""), LdapResultCode::Success);
    let started = Instant::now();
    assert!(c.closed(), "an idle connection must be closed");
    let idle = started.elapsed();
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(5),
        "{idle:?}"
    );
    // Silent from the start.
    let mut c = Raw::connect(&s.addr);
    let started = Instant::now();
    assert!(c.closed(), "a silent connection must be closed");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A connection that keeps talking stays.
    let mut c = Raw::connect(&s.addr);
    for i in 0..4 {
        c.send(raw::extended(i + 1, OID_WHOAMI));
        assert_eq!(raw::code(&c.msg()), LdapResultCode::Success);
        std::thread::sleep(Duration::from_millis(600));
    }
}

/// Users created straight in the store before the server starts: more
/// than loopback's socket buffers hold of their entries (about 12 MB
/// against the 4 MB a sender may buffer and the 64 KiB the test's client
/// caps its receive buffer at; left to grow, that buffer reached 32 MB and
/// held a whole search), so a search over all of them that the client
/// does not read cannot finish before its abandon arrives, however fast
/// the server builds entries.
const SEEDED: usize = 30_000;

fn seed(data: &Path) {
    let store = portcullis::store::Store::open(data).expect("store");
    for i in 0..SEEDED {
        store
            .create_user(portcullis::store::NewUser {
                username: format!("user{i:05}"),
                full_name: Some(format!("Seeded User Number {i} With A Longish Name")),
                email: Some(format!("user{i:05}@example.com")),
            })
            .expect("user");
    }
    store.flush().expect("flush");
}

fn count_until(c: &mut Raw<TcpStream>, search_id: i32, stop_id: i32) -> (usize, bool) {
    let (mut entries, mut done) = (0, false);
    loop {
        let m = c.msg();
        match (&m.op, m.msgid) {
            (LdapOp::SearchResultEntry(_), id) if id == search_id => entries += 1,
            (LdapOp::SearchResultDone(_), id) if id == search_id => done = true,
            (_, id) if id == stop_id => return (entries, done),
            _ => {}
        }
    }
}

#[test]
fn abandon_stops_a_long_search() {
    let s = Server::start_seeded(FAST_HASH_ENV, seed);
    let mut c = Raw::connect(&s.addr);
    c.cap_receive_buffer(64 * 1024);
    c.set_timeout(Duration::from_secs(60));
    assert_eq!(
        c.bind(1, &user_dn("admin"), &s.admin_password),
        LdapResultCode::Success
    );
    let all = || LdapFilter::Present("objectClass".into());

    // Unpaged: ask for everything, read nothing, abandon, then ask who we
    // are. The search must stop: fewer entries than exist and no
    // SearchResultDone (RFC 4511 §4.11), while WhoAmI is answered.
    c.send(raw::search(2, BASE, all()));
    std::thread::sleep(Duration::from_millis(200));
    c.send(LdapMsg::new(3, LdapOp::AbandonRequest(2)));
    c.send(raw::extended(4, OID_WHOAMI));
    let (entries, done) = count_until(&mut c, 2, 4);
    assert!(!done, "the abandoned search must not complete");
    assert!(
        entries < SEEDED,
        "{entries} entries: the search was not cut short"
    );

    // Paged: one big page, abandoned the same way.
    c.send(LdapMsg::new_with_ctrls(
        5,
        LdapOp::SearchRequest(match raw::search(5, BASE, all()).op {
            LdapOp::SearchRequest(r) => r,
            _ => unreachable!(),
        }),
        vec![LdapControl::SimplePagedResults {
            size: SEEDED as i64,
            cookie: Vec::new(),
        }],
    ));
    std::thread::sleep(Duration::from_millis(200));
    c.send(LdapMsg::new(6, LdapOp::AbandonRequest(5)));
    c.send(raw::extended(7, OID_WHOAMI));
    let (entries, done) = count_until(&mut c, 5, 7);
    assert!(!done, "the abandoned paged search must not complete");
    assert!(
        entries < SEEDED,
        "{entries} entries: the paged search was not cut short"
    );

    // Whatever was in flight drains; then the connection still searches.
    c.set_timeout(Duration::from_millis(500));
    while let Got::Msg(_) = c.recv() {}
    c.set_timeout(Duration::from_secs(30));
    c.send(raw::search(
        8,
        BASE,
        LdapFilter::Equality("uid".into(), "user00042".into()),
    ));
    let (entries, done) = count_until_done(&mut c, 8);
    assert_eq!((entries, done), (1, true));
}

fn count_until_done(c: &mut Raw<TcpStream>, id: i32) -> (usize, bool) {
    let mut entries = 0;
    loop {
        let m = c.msg();
        if m.msgid != id {
            continue;
        }
        match &m.op {
            LdapOp::SearchResultEntry(_) => entries += 1,
            LdapOp::SearchResultDone(r) => {
                assert_eq!(r.code, LdapResultCode::Success);
                return (entries, true);
            }
            _ => {}
        }
    }
}

#[test]
fn too_many_operations_on_one_connection_get_busy() {
    let s = Server::start_seeded(
        &env_with(&[("PORTCULLIS_LDAP_MAX_OPS_PER_CONNECTION", "1")]),
        |d| {
            let store = portcullis::store::Store::open(d).expect("store");
            for i in 0..2000 {
                store
                    .create_user(portcullis::store::NewUser {
                        username: format!("u{i}"),
                        ..Default::default()
                    })
                    .expect("user");
            }
            store.flush().expect("flush");
        },
    );
    let mut c = Raw::connect(&s.addr);
    assert_eq!(
        c.bind(1, &user_dn("admin"), &s.admin_password),
        LdapResultCode::Success
    );
    // Two searches back to back: the second arrives while the first runs.
    c.send(raw::search(
        2,
        BASE,
        LdapFilter::Present("objectClass".into()),
    ));
    c.send(raw::search(
        3,
        BASE,
        LdapFilter::Present("objectClass".into()),
    ));
    let mut codes = Vec::new();
    while codes.len() < 2 {
        let m = c.msg();
        if let LdapOp::SearchResultDone(r) = &m.op {
            codes.push((m.msgid, r.code.clone()));
        }
    }
    assert!(codes.contains(&(3, LdapResultCode::Busy)), "{codes:?}");
    assert!(codes.contains(&(2, LdapResultCode::Success)), "{codes:?}");
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn metrics_and_health() {
    let s = Server::start();
    let _admin = s.admin();
    let mut c = s.conn();
    let _ = c.simple_bind(&user_dn("admin"), "wrong");
    let (status, body) = http_get(&s.http_addr, "/healthz");
    assert_eq!((status, body.trim()), (200, crate::http::HEALTHY));
    let (status, body) = http_get(&s.http_addr, "/metrics");
    assert_eq!(status, 200);
    for needle in [
        "portcullis_bind_total{method=\"simple\",outcome=\"success\"} 1",
        "portcullis_bind_total{method=\"simple\",outcome=\"invalid_credentials\"} 1",
        "portcullis_open_connections 2",
        "portcullis_operation_duration_seconds_count{op=\"bind\"} 2",
        "portcullis_bind_throttled_total 0",
    ] {
        assert!(body.contains(needle), "{needle} missing in\n{body}");
    }
    // Any other path belongs to the portal: signed out, it sends the
    // browser to its sign-in page.
    let (status, _) = http_get(&s.http_addr, "/nothing");
    assert_eq!(status, 303);
}

#[test]
fn shutdown_sends_open_connections_a_notice_then_closes_them() {
    let mut s = Server::start();
    // Bound and idle, and anonymous with one answered request: each is
    // being served when the server is told to stop.
    let mut bound = Raw::connect(&s.addr);
    assert_eq!(
        bound.bind(1, &user_dn("admin"), &s.admin_password),
        LdapResultCode::Success
    );
    let mut anonymous = Raw::connect(&s.addr);
    anonymous.send(raw::extended(1, OID_WHOAMI));
    assert_eq!(raw::code(&anonymous.msg()), LdapResultCode::Success);

    assert!(s.stop(), "graceful shutdown exits 0");
    for (who, c) in [("bound", &mut bound), ("anonymous", &mut anonymous)] {
        let notice = c.msg();
        assert_eq!(notice.msgid, 0, "{who}: {notice:?}");
        let LdapOp::ExtendedResponse(r) = &notice.op else {
            panic!("{who}: not a notice: {notice:?}");
        };
        assert_eq!(r.name.as_deref(), Some("1.3.6.1.4.1.1466.20036"));
        assert_eq!(r.res.code, LdapResultCode::Unavailable, "{who}");
        assert!(
            matches!(c.recv(), Got::Eof),
            "{who}: closed after the notice"
        );
    }
}
