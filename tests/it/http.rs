//! The HTTP listener's limits (issue 16): half-open connections neither
//! starve LDAP nor stay forever, a cap of its own, a body limit, header and
//! idle deadlines, and a bounded drain on SIGTERM. Raw sockets, so a test
//! controls exactly how much of a request is sent.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ldap3::Scope;

use crate::harness::{search, user_dn, Server, BASE, FAST_HASH_ENV};

/// Generous: long enough for a slow machine, short enough that a
/// connection the server forgot to close fails the test.
const READ_BOUND: Duration = Duration::from_secs(60);

fn env_with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut env = FAST_HASH_ENV.to_vec();
    env.extend_from_slice(extra);
    env
}

/// A connection that sent the start of a request and nothing more.
fn half_open(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect to the HTTP listener");
    // The server may already have closed it (beyond the cap).
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: portcullis\r\n");
    s
}

/// What the server sends on `s` until it closes the connection: `Some`
/// of the bytes, or `None` when it kept the connection open for `bound`.
fn until_closed(s: &mut TcpStream, bound: Duration) -> Option<Vec<u8>> {
    s.set_read_timeout(Some(bound)).expect("read timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            // Reset: closed with unread bytes.
            Err(_) => return Some(got),
        }
    }
}

/// The status of a response (0 when there is none).
fn status(response: &[u8]) -> u16 {
    String::from_utf8_lossy(response)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// `GET path` on a new connection with `Connection: close`; the status,
/// or 0 when the connection closed without an answer.
fn get(addr: &str, path: &str) -> u16 {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return 0;
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: portcullis\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    until_closed(&mut s, READ_BOUND).map_or(0, |r| status(&r))
}

/// The body of `/healthz` from a healthy sled-backed server.
pub const HEALTHY: &str = r#"{"status":"ok","store":"sled"}"#;

/// One full keep-alive request on `s`, its response read to its end.
fn keep_alive_healthz(s: &mut TcpStream) -> u16 {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: portcullis\r\n\r\n")
        .expect("write request");
    s.set_read_timeout(Some(READ_BOUND)).expect("read timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    // The answer of /healthz is its JSON body after the headers.
    while !got.ends_with(format!("\r\n\r\n{HEALTHY}").as_bytes()) {
        let n = s.read(&mut buf).expect("read response");
        assert!(n > 0, "closed mid-response: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    status(&got)
}

fn ldap_still_answers(s: &Server) {
    let mut admin = s.admin();
    let (rc, entries) = search(&mut admin, BASE, Scope::Base, "(objectClass=*)", &["dn"]);
    assert_eq!((rc, entries.len()), (0, 1));
}

#[test]
fn half_open_http_connections_do_not_stop_ldap_and_time_out() {
    let s = Server::start_with(&env_with(&[
        ("PORTCULLIS_PORTAL_MAX_CONNECTIONS", "16"),
        ("PORTCULLIS_PORTAL_HEADER_TIMEOUT_SECS", "2"),
    ]));
    let mut held: Vec<TcpStream> = (0..316).map(|_| half_open(&s.http_addr)).collect();

    ldap_still_answers(&s);
    let (code, out, err) = crate::harness::tool(
        "ldapwhoami",
        &[
            "-x",
            "-H",
            &s.url,
            "-D",
            &user_dn("admin"),
            "-w",
            &s.admin_password,
        ],
        &[],
    );
    assert_eq!(code, 0, "ldapwhoami: {out}{err}");

    // The server closes every one of them: those beyond the cap at once,
    // the others when their headers are late. None gets an answer.
    for (i, c) in held.iter_mut().enumerate() {
        let got = until_closed(c, READ_BOUND);
        let got = got.unwrap_or_else(|| panic!("half-open connection {i} still open"));
        assert_ne!(status(&got), 200, "connection {i} got an answer");
    }
    drop(held);
    // Their permits are back: /healthz answers again.
    assert_eq!(get(&s.http_addr, "/healthz"), 200);
    ldap_still_answers(&s);
}

#[test]
fn connections_beyond_the_http_cap_are_closed_at_once() {
    // Deadlines far beyond the read bound: only the cap can close the
    // extra connection within it.
    let s = Server::start_with(&env_with(&[
        ("PORTCULLIS_PORTAL_MAX_CONNECTIONS", "4"),
        ("PORTCULLIS_PORTAL_HEADER_TIMEOUT_SECS", "600"),
        ("PORTCULLIS_PORTAL_IDLE_TIMEOUT_SECS", "0"),
    ]));
    // Each of the four is served (it got an answer) before the next opens,
    // so all four hold a permit.
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut c = TcpStream::connect(&s.http_addr).expect("connect");
            assert_eq!(keep_alive_healthz(&mut c), 200);
            c
        })
        .collect();
    let mut extra = half_open(&s.http_addr);
    let got = until_closed(&mut extra, Duration::from_secs(20))
        .expect("the connection beyond the cap stays open");
    assert!(got.is_empty(), "answered beyond the cap: {got:?}");
    // LDAP has its own cap.
    ldap_still_answers(&s);
    // A held connection still works; closing one lets a new one in.
    assert_eq!(keep_alive_healthz(&mut held[0]), 200);
    drop(held.pop());
    let mut answered = false;
    for _ in 0..100 {
        if get(&s.http_addr, "/healthz") == 200 {
            answered = true;
            break;
        }
        // The server may not have seen the close yet.
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(answered, "no answer after a held connection closed");
}

#[test]
fn sigterm_with_a_half_sent_request_exits_and_keeps_changes() {
    // The header and idle deadlines are far away: only the drain can end
    // the half-sent request in time. One connection at most, so a second
    // one closed at once shows the first is in the server's hands.
    let mut s = Server::start_with(&env_with(&[
        ("PORTCULLIS_PORTAL_MAX_CONNECTIONS", "1"),
        ("PORTCULLIS_PORTAL_HEADER_TIMEOUT_SECS", "600"),
        ("PORTCULLIS_PORTAL_IDLE_TIMEOUT_SECS", "0"),
        ("PORTCULLIS_PORTAL_DRAIN_SECS", "2"),
    ]));
    s.add_user("drained", "drained-pw-1");
    // Shorter than an HTTP/2 preface: before issue 16 this kept SIGTERM
    // from ever finishing.
    let mut c = TcpStream::connect(&s.http_addr).expect("connect");
    c.write_all(b"GET /heal")
        .expect("write half a request line");
    let mut second = half_open(&s.http_addr);
    let got = until_closed(&mut second, Duration::from_secs(20))
        .expect("the first connection does not hold the only permit");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));

    let started = Instant::now();
    assert!(s.stop(), "the server did not exit cleanly after SIGTERM");
    // drain_secs + a generous margin (stop() itself gives up at 30 s).
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(c);

    let s = s.restart();
    let _ = s.bound(&user_dn("drained"), "drained-pw-1");
}

#[test]
fn oversized_body_gets_413_and_slow_headers_are_dropped() {
    let s = Server::start_with(&env_with(&[
        ("PORTCULLIS_PORTAL_MAX_BODY_BYTES", "1024"),
        ("PORTCULLIS_PORTAL_HEADER_TIMEOUT_SECS", "2"),
        ("PORTCULLIS_PORTAL_IDLE_TIMEOUT_SECS", "0"),
    ]));

    let mut c = TcpStream::connect(&s.http_addr).expect("connect");
    c.write_all(b"POST /healthz HTTP/1.1\r\nHost: portcullis\r\nContent-Length: 4096\r\n\r\n")
        .expect("write headers");
    let got = until_closed(&mut c, READ_BOUND).expect("connection kept open after 413");
    assert_eq!(status(&got), 413, "{}", String::from_utf8_lossy(&got));

    // A body within the limit reaches the router (GET-only route: 405).
    let mut c = TcpStream::connect(&s.http_addr).expect("connect");
    c.write_all(
        b"POST /healthz HTTP/1.1\r\nHost: portcullis\r\nConnection: close\r\nContent-Length: 10\r\n\r\n0123456789",
    )
    .expect("write request");
    let got = until_closed(&mut c, READ_BOUND).expect("connection kept open");
    assert_eq!(status(&got), 405, "{}", String::from_utf8_lossy(&got));

    // Headers that never end: dropped after the header timeout (with a
    // 408 at most, never an answer to the request).
    let mut c = half_open(&s.http_addr);
    let got = until_closed(&mut c, READ_BOUND).expect("slow headers kept open");
    assert!(
        got.is_empty() || status(&got) == 408,
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(get(&s.http_addr, "/healthz"), 200);
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let s = Server::start_with(&env_with(&[
        ("PORTCULLIS_PORTAL_HEADER_TIMEOUT_SECS", "600"),
        ("PORTCULLIS_PORTAL_IDLE_TIMEOUT_SECS", "2"),
    ]));
    let mut c = TcpStream::connect(&s.http_addr).expect("connect");
    assert_eq!(keep_alive_healthz(&mut c), 200);
    // Nothing more is sent: the idle deadline, not the header one, ends it.
    let got = until_closed(&mut c, READ_BOUND).expect("idle connection kept open");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
}
