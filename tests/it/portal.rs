//! The portal on the real server: sign-in over HTTP, the details page
//! steered by `group set-attr` while the server runs, a rename that LDAP
//! sees at once, a session that survives a restart; an app password made
//! at the portal that binds with ldapwhoami and ldap3 until revoked, an
//! LDAP connection closed from the sessions page, and a password changed
//! at the portal that LDAP takes at once. (Handler-level checks of every
//! rule are in `src/portal/tests.rs` and `src/portal/tests_own.rs`.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ldap3::Scope;

use std::time::Instant;

use crate::harness::{search, tool, user_dn, Server, BASE};

pub(crate) struct Answer {
    pub(crate) status: u16,
    head: String,
    pub(crate) body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Vec<String> {
        self.head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    /// `name=value` from a `Set-Cookie`.
    fn cookie(&self, name: &str) -> String {
        self.header("set-cookie")
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .and_then(|c| c.split(';').next().map(str::to_string))
            .unwrap_or_else(|| panic!("no {name} cookie in\n{}", self.head))
    }

    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("csrf field")
            + 19;
        let rest = &self.body[at..];
        rest[..rest.find('"').expect("end")].to_string()
    }
}

pub(crate) fn http(
    addr: &str,
    method: &str,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> Answer {
    let body: String = form
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept-Language: en-US\r\n\
         Cookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    Answer {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) fn sign_in(s: &Server, user: &str, password: &str) -> String {
    let page = http(&s.http_addr, "GET", "/login", "", &[]);
    assert_eq!(page.status, 200);
    let login = page.cookie("portcullis_login");
    let res = http(
        &s.http_addr,
        "POST",
        "/login",
        &login,
        &[
            ("csrf", &page.csrf()),
            ("username", user),
            ("password", password),
        ],
    );
    assert_eq!(res.status, 303, "{}\n{}", res.head, res.body);
    assert_eq!(res.header("location"), ["/"]);
    res.cookie("portcullis_session")
}

#[test]
fn sign_in_rename_seen_by_ldap_and_a_session_across_a_restart() {
    let s = Server::start();
    // Signed out: any page but /login goes to /login.
    let res = http(&s.http_addr, "GET", "/settings", "", &[]);
    assert_eq!(
        (res.status, res.header("location")),
        (303, vec!["/login".to_string()])
    );

    s.add_user("alice", "alice-secret-1");
    let session = sign_in(&s, "alice", "alice-secret-1");
    let home = http(&s.http_addr, "GET", "/", &session, &[]);
    assert_eq!(home.status, 200);
    assert!(home.body.contains("My applications"));
    assert_eq!(home.header("cache-control"), ["no-store"]);

    // Defaults: the username is read-only; a group lets its members change it.
    let page = http(&s.http_addr, "GET", "/settings", &session, &[]);
    assert!(page.body.contains("id=\"username\" type=\"text\" name=\"username\" value=\"alice\" autocomplete=\"username\" readonly"), "{}", page.body);
    s.ok(&["group", "add", "movers"]);
    s.ok(&["group", "add-member", "movers", "alice"]);
    let out = s.ok(&[
        "group",
        "set-attr",
        "movers",
        "goauthentik.io/user/can-change-username",
        "true",
    ]);
    assert!(
        out.contains("set goauthentik.io/user/can-change-username of group movers"),
        "{out}"
    );
    let page = http(&s.http_addr, "GET", "/settings", &session, &[]);
    assert!(
        !page
            .body
            .contains("value=\"alice\" autocomplete=\"username\" readonly"),
        "{}",
        page.body
    );

    let mut admin = s.admin();
    let (_, before) = search(
        &mut admin,
        &user_dn("alice"),
        Scope::Base,
        "(objectClass=*)",
        &["entryUUID", "uidNumber"],
    );
    let saved = http(
        &s.http_addr,
        "POST",
        "/settings",
        &session,
        &[
            ("csrf", &page.csrf()),
            ("username", "alicia"),
            ("name", "Alice Liddell"),
        ],
    );
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(saved.body.contains("role=\"status\""));
    // LDAP sees the new name at once, with the same entryUUID and uidNumber.
    let (_, after) = search(
        &mut admin,
        &user_dn("alicia"),
        Scope::Base,
        "(objectClass=*)",
        &["entryUUID", "uidNumber", "memberOf"],
    );
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].attrs["entryUUID"], before[0].attrs["entryUUID"]);
    assert_eq!(after[0].attrs["uidNumber"], before[0].attrs["uidNumber"]);
    assert_eq!(
        after[0].attrs["memberOf"],
        vec![format!("cn=movers,ou=groups,{BASE}")]
    );
    let (_, gone) = search(
        &mut admin,
        &format!("ou=users,{BASE}"),
        Scope::OneLevel,
        "(cn=alice)",
        &["cn"],
    );
    assert!(gone.is_empty());
    drop(admin);

    // The session is in the store: it survives a restart.
    let s = s.restart();
    let home = http(&s.http_addr, "GET", "/", &session, &[]);
    assert_eq!(home.status, 200, "{}", home.head);
    assert!(home.body.contains("Alice Liddell"));
}

/// The value of the read-only input `id="secret"` on the page that shows
/// a new app password or token.
fn shown_secret(body: &str) -> String {
    let at = body.find("id=\"secret\"").expect("the secret's input");
    let rest = &body[at..];
    let rest = &rest[rest.find("value=\"").expect("value") + 7..];
    rest[..rest.find('"').expect("end")].to_string()
}

fn ldap_bind_rc(s: &Server, user: &str, password: &str) -> u32 {
    let mut c = s.conn();
    c.simple_bind(&user_dn(user), password).expect("bind").rc
}

#[test]
fn an_app_password_from_the_portal_binds_and_an_ldap_row_ended_there_closes() {
    let s = Server::start();
    s.add_user("alice", "alice-secret-1");
    let session = sign_in(&s, "alice", "alice-secret-1");

    // Create an app password on the tokens page.
    let form = http(
        &s.http_addr,
        "GET",
        "/settings/tokens/new?kind=app-password",
        &session,
        &[],
    );
    assert_eq!(form.status, 200);
    let made = http(
        &s.http_addr,
        "POST",
        "/settings/tokens/new",
        &session,
        &[
            ("csrf", &form.csrf()),
            ("kind", "app-password"),
            ("label", "mail"),
            ("expires", ""),
        ],
    );
    assert_eq!(made.status, 200, "{}", made.body);
    let secret = shown_secret(&made.body);
    assert!(secret.len() > 20);

    // ldapwhoami binds with it, and so does ldap3 (no code needed).
    let (code, out, err) = tool(
        "ldapwhoami",
        &["-x", "-H", &s.url, "-D", &user_dn("alice"), "-w", &secret],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("dn:{}", user_dn("alice"))), "{out}");
    let mut conn = s.bound(&user_dn("alice"), &secret);

    // The sessions page lists the LDAP connection; ending it there closes it.
    let page = http(&s.http_addr, "GET", "/settings/sessions", &session, &[]);
    assert!(page.body.contains("LDAP"), "{}", page.body);
    assert!(page.body.contains("Current session"));
    let listed = http(&s.http_addr, "GET", "/api/v1/me/sessions", &session, &[]);
    let rows: serde_json::Value = serde_json::from_str(&listed.body).expect("json");
    let ldap_id = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["kind"] == "ldap")
        .expect("an LDAP row")["id"]
        .as_str()
        .expect("id")
        .to_string();
    // The CLI sees the portal session too.
    let cli = s.ok(&["session", "list", "alice", "--json"]);
    let cli: serde_json::Value = serde_json::from_str(&cli).expect("json");
    assert!(
        cli.as_array()
            .expect("list")
            .iter()
            .any(|r| r["kind"] == "portal" && r["username"] == "alice"),
        "{cli}"
    );
    let ended = http(
        &s.http_addr,
        "POST",
        &format!("/settings/sessions/{ldap_id}/delete"),
        &session,
        &[("csrf", &page.csrf())],
    );
    assert_eq!(ended.status, 303, "{}", ended.body);
    let deadline = Instant::now() + Duration::from_secs(3);
    while conn
        .search(BASE, Scope::Base, "(objectClass=*)", vec!["1.1"])
        .is_ok()
    {
        assert!(
            Instant::now() < deadline,
            "the ended connection still answers"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Revoked on the page: refused at once.
    let list = http(
        &s.http_addr,
        "GET",
        "/api/v1/me/app-passwords",
        &session,
        &[],
    );
    let items: serde_json::Value = serde_json::from_str(&list.body).expect("json");
    let id = items[0]["id"].as_str().expect("id").to_string();
    assert!(!list.body.contains(&secret));
    let revoked = http(
        &s.http_addr,
        "POST",
        &format!("/settings/tokens/{id}/revoke"),
        &session,
        &[("csrf", &page.csrf()), ("kind", "app-password")],
    );
    assert_eq!(revoked.status, 303);
    assert_eq!(ldap_bind_rc(&s, "alice", &secret), 49);

    // A password changed at the portal: LDAP takes the new one and
    // refuses the old one at once (bind cache included).
    assert_eq!(ldap_bind_rc(&s, "alice", "alice-secret-1"), 0);
    let form = http(&s.http_addr, "GET", "/settings/password", &session, &[]);
    let changed = http(
        &s.http_addr,
        "POST",
        "/settings/password",
        &session,
        &[
            ("csrf", &form.csrf()),
            ("current", "alice-secret-1"),
            ("new", "alice-secret-2"),
            ("confirm", "alice-secret-2"),
        ],
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(ldap_bind_rc(&s, "alice", "alice-secret-1"), 49);
    assert_eq!(ldap_bind_rc(&s, "alice", "alice-secret-2"), 0);
    assert_eq!(
        http(&s.http_addr, "GET", "/", &session, &[]).status,
        200,
        "this browser stays signed in"
    );
}
