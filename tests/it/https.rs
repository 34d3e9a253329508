//! The portal's listener over HTTPS (`portal.tls`) and behind a reverse
//! proxy (`portal.trusted_proxies`), driven with curl.

use std::process::Command;

use crate::harness::{Server, FAST_HASH_ENV};

/// `curl -i` with `args`; answers (status, head, body).
pub fn curl(args: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "20"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("curl not runnable (scripts/test installs it): {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn csrf(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    body[at..][..body[at..].find('"').expect("end")].to_string()
}

#[test]
fn the_portal_speaks_https_with_the_ldaps_certificate_and_secure_cookies() {
    let mut env = FAST_HASH_ENV.to_vec();
    env.push(("PORTCULLIS_PORTAL_TLS", "true"));
    let s = Server::start_with(&env);
    let ca = s.cacert();
    let ca = ca.to_str().expect("path");
    let url = |path: &str| format!("https://{}{path}", s.http_addr);

    let (status, _, body) = curl(&["--cacert", ca, &url("/healthz")]);
    assert_eq!((status, body.as_str()), (200, crate::http::HEALTHY));
    let (status, head, _) = curl(&["--cacert", ca, &url("/login")]);
    assert_eq!(status, 200, "{head}");
    let cookie = head
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: portcullis_login=")
        })
        .expect("login cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    // Plain HTTP to the HTTPS port gets nothing served.
    let (status, _, _) = curl(&[&format!("http://{}/healthz", s.http_addr)]);
    assert_ne!(status, 200);
}

#[test]
fn forwarded_addresses_count_only_from_trusted_proxies() {
    // Two failed sign-ins from one address lock that address out.
    let mut env = FAST_HASH_ENV.to_vec();
    env.push(("PORTCULLIS_PORTAL_TRUSTED_PROXIES", "127.0.0.1"));
    env.push(("PORTCULLIS_THROTTLE_ADDRESS_FAILURES", "2"));
    env.push(("PORTCULLIS_THROTTLE_ACCOUNT_FAILURES", "100"));
    let s = Server::start_with(&env);
    s.add_user("alice", "alice-pw");
    let dir = tempfile::tempdir().expect("tmp");
    let sign_in = |client: &str, password: &str| -> u16 {
        let jar = dir.path().join(format!("jar-{client}"));
        let jar = jar.to_str().expect("path");
        let xff = format!("X-Forwarded-For: {client}");
        let login = format!("http://{}/login", s.http_addr);
        let (_, _, page) = curl(&["-c", jar, "-b", jar, "-H", &xff, &login]);
        let form = format!("csrf={}&username=alice&password={password}", csrf(&page));
        let (status, _, _) = curl(&["-c", jar, "-b", jar, "-H", &xff, "--data", &form, &login]);
        status
    };
    // A proxy that terminated HTTPS says so: the cookies are Secure.
    let login = format!("http://{}/login", s.http_addr);
    let cookie_line = |extra: &[&str]| {
        let mut args = extra.to_vec();
        args.push(&login);
        let (_, head, _) = curl(&args);
        head.lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with("set-cookie: portcullis_login=")
            })
            .expect("login cookie")
            .to_string()
    };
    assert!(cookie_line(&["-H", "X-Forwarded-Proto: https"]).contains("; Secure"));
    assert!(!cookie_line(&[]).contains("Secure"));

    // The proxy forwards for 203.0.113.1, which fails twice...
    assert_eq!(sign_in("203.0.113.1", "wrong"), 401);
    assert_eq!(sign_in("203.0.113.1", "wrong"), 401);
    // ...and is refused even with the right password now,
    assert_eq!(sign_in("203.0.113.1", "alice-pw"), 401);
    // while another client behind the same proxy signs in.
    assert_eq!(sign_in("203.0.113.2", "alice-pw"), 303);
}
