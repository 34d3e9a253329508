//! Handler tests of the portal: the real router over a real (temporary)
//! sled store, the real account layer and the real authenticator, called
//! with tower's `oneshot`. No mocks.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::account::Accounts;
use crate::auth::keys::ServerKey;
use crate::auth::password::Hasher;
use crate::auth::{AuthSettings, Authenticator, BindOutcome, Refusal, Secret};
use crate::directory::{Directory, Dn};
use crate::store::{Member, NewUser, Store, TotpSecret, UserId};

const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)), 4000);
const SECRET: [u8; 20] = [7; 20];

#[path = "tests_admin.rs"]
mod admin;
#[path = "tests_own.rs"]
mod own;
#[path = "tests_sessions.rs"]
mod sessions;

struct Fx {
    store: Store,
    auth: Authenticator,
    key: ServerKey,
    app: Router,
    accounts: Accounts,
}

fn fixture() -> Fx {
    fixture_on(Store::temporary().expect("store"), true)
}

/// A portal over `store`; with `users`, alice (password "alice-pw") and
/// bob (password "bob-pw", a confirmed TOTP device).
fn fixture_on(store: Store, users: bool) -> Fx {
    let hasher = Hasher::for_tests();
    if users {
        for (name, full) in [("alice", "Alice Liddell"), ("bob", "Bob Builder")] {
            let u = store
                .create_user(NewUser {
                    username: name.into(),
                    full_name: Some(full.into()),
                    email: Some(format!("{name}@example.com")),
                })
                .expect("user");
            let phc = hasher.hash_blocking(&format!("{name}-pw")).expect("hash");
            store.set_password_hash(u.id, &phc).expect("password");
        }
        let bob = store.user_by_name("bob").expect("r").expect("bob");
        store
            .add_totp_device(bob.id, "phone", 6, &TotpSecret(SECRET.to_vec()))
            .expect("totp");
    }
    let key = ServerKey::generate();
    let auth =
        Authenticator::configured(store.clone(), hasher, key.clone(), AuthSettings::default());
    let dir = Directory::new(
        store.clone(),
        Dn::parse("dc=example,dc=com").expect("dn"),
        "admins",
        "ldap-search",
    );
    let accounts = Accounts::new(dir, auth.clone());
    let app = crate::http::router(crate::http::Health::embedded("sled"))
        .merge(router(Portal::new(accounts.clone(), auth.clone())));
    Fx {
        store,
        auth,
        key,
        app,
        accounts,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value `Set-Cookie` gives `name` (empty when it removes it).
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(&format!("{name}=")))
            .map(|v| v.split(';').next().unwrap_or("").to_string())
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the hidden `csrf` field.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field");
        let rest = &self.body[at + 19..];
        rest[..rest.find('"').expect("end")].to_string()
    }
}

async fn send(app: &Router, mut req: Request<Body>) -> Answer {
    req.extensions_mut().insert(crate::http::Peer(PEER));
    let res: Response<Body> = app.clone().oneshot(req).await.expect("answer");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get(path: &str, cookies: &str) -> Request<Body> {
    Request::get(path)
        .header(header::COOKIE, cookies)
        .header(header::ACCEPT_LANGUAGE, "en-US")
        .body(Body::empty())
        .expect("request")
}

fn post(path: &str, cookies: &str, form: &[(&str, &str)]) -> Request<Body> {
    Request::post(path)
        .header(header::COOKIE, cookies)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT_LANGUAGE, "en-US")
        .body(Body::from(serde_urlencoded::to_string(form).expect("form")))
        .expect("request")
}

/// The password step: answers the response and the cookies to go on with.
async fn password_step(app: &Router, user: &str, password: &str) -> (Answer, String) {
    let page = send(app, get("/login", "")).await;
    let login = page.set_cookie(LOGIN_COOKIE).expect("login cookie");
    let cookies = format!("{LOGIN_COOKIE}={login}");
    let res = send(
        app,
        post(
            "/login",
            &cookies,
            &[
                ("csrf", &page.csrf()),
                ("username", user),
                ("password", password),
            ],
        ),
    )
    .await;
    let session = res
        .set_cookie(SESSION_COOKIE)
        .map(|s| format!("{SESSION_COOKIE}={s}"))
        .unwrap_or_default();
    (res, session)
}

/// Signs alice in; answers her session cookie.
async fn sign_in(app: &Router, user: &str, password: &str) -> String {
    let (res, cookie) = password_step(app, user, password).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "/");
    cookie
}

fn code_now() -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    crate::auth::totp::code_at_step(&SECRET, 6, crate::auth::totp::step_of(now))
}

#[tokio::test]
async fn signed_out_pages_redirect_to_login_and_metrics_stay() {
    let fx = fixture();
    for path in ["/", "/settings", "/logout", "/settings/mfa", "/nowhere"] {
        let res = send(&fx.app, get(path, "")).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(res.location(), "/login", "{path}");
    }
    let res = send(&fx.app, post("/settings", "", &[("name", "x")])).await;
    assert_eq!(res.location(), "/login");
    assert_eq!(
        send(&fx.app, get("/healthz", "")).await.body,
        r#"{"status":"ok","store":"sled"}"#
    );
    assert_eq!(
        send(&fx.app, get("/metrics", "")).await.status,
        StatusCode::OK
    );
    let api = send(&fx.app, get("/api/v1/me", "")).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    assert!(api.body.contains("\"error\""), "{}", api.body);
}

#[tokio::test]
async fn login_page_has_its_fields_and_every_html_answer_its_headers() {
    let fx = fixture();
    let page = send(&fx.app, get("/login", "")).await;
    assert_eq!(page.status, StatusCode::OK);
    for text in [
        "<label for=\"username\">Username</label>",
        "<label for=\"password\">Password</label>",
        ">Sign in</button>",
        "name=\"viewport\" content=\"width=device-width, initial-scale=1\"",
        "/static/portal.css",
    ] {
        assert!(page.body.contains(text), "{text} in {}", page.body);
    }
    assert!(!page.body.contains("<script"), "no script");
    let cookie = page.headers.get(header::SET_COOKIE).expect("cookie");
    let cookie = cookie.to_str().expect("text");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/")
    );

    let session = sign_in(&fx.app, "alice", "alice-pw").await;
    for res in [
        page,
        send(&fx.app, get("/", &session)).await,
        send(&fx.app, get("/settings", &session)).await,
    ] {
        let csp = res.header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval") && !csp.contains('*')
        );
        assert_eq!(res.header("x-content-type-options"), "nosniff");
        assert_eq!(res.header("cache-control"), "no-store");
    }
    let css = send(&fx.app, get("/static/portal.css", "")).await;
    assert!(css.header("content-type").starts_with("text/css"));
}

#[tokio::test]
async fn sign_in_shows_home_with_name_settings_link_and_sign_out() {
    let fx = fixture();
    let session = sign_in(&fx.app, "alice", "alice-pw").await;
    let home = send(&fx.app, get("/", &session)).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        home.body.contains("<h1>My applications</h1>"),
        "{}",
        home.body
    );
    assert!(home.body.contains("Alice Liddell"));
    assert!(home.body.contains("href=\"/settings\">Settings</a>"));
    assert!(home.body.contains(">Sign out</button>"));
    assert!(home.body.contains("<meta name=\"csrf-token\" content=\""));
    // Signed in, /login goes home.
    assert_eq!(send(&fx.app, get("/login", &session)).await.location(), "/");
    // Signed in, an unknown page is a 404.
    assert_eq!(
        send(&fx.app, get("/nowhere", &session)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn every_refusal_gives_the_same_text_and_no_code_step() {
    let fx = fixture();
    let carol = fx
        .store
        .create_user(NewUser {
            username: "carol".into(),
            ..NewUser::default()
        })
        .expect("carol");
    let phc = Hasher::for_tests().hash_blocking("carol-pw").expect("hash");
    fx.store.set_password_hash(carol.id, &phc).expect("pw");
    fx.store
        .update_user(carol.id, &|u| {
            u.disabled = true;
            Ok(())
        })
        .expect("disable");
    let alice = fx.store.user_by_name("alice").expect("r").expect("alice");
    let app_password = crate::auth::app_password::generate();
    fx.store
        .add_app_password(
            alice.id,
            crate::store::CredentialKind::AppPassword,
            "mail",
            None,
            &crate::auth::app_password::hash(&fx.key, &app_password),
        )
        .expect("app password");
    // bob's wrong password, with MFA: no code step either.
    for (user, password) in [
        ("alice", "wrong"),
        ("nobody", "alice-pw"),
        ("carol", "carol-pw"),
        ("alice", app_password.as_str()),
        ("bob", "wrong"),
        ("", ""),
    ] {
        let (res, session) = password_step(&fx.app, user, password).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{user}");
        assert!(
            res.body
                .contains("<p role=\"alert\">Invalid username or password</p>"),
            "{user}: {}",
            res.body
        );
        assert!(!res.body.contains("name=\"code\""), "{user}");
        assert!(session.is_empty(), "{user}: no session");
    }
    // The app password still binds over LDAP: it was only refused here.
    let bound = fx
        .auth
        .authenticate("alice", &Secret(app_password), PEER.ip(), SystemTime::now())
        .await;
    assert!(matches!(bound, BindOutcome::Success { .. }));
}

#[tokio::test]
async fn code_step_only_for_mfa_users_after_the_right_password_and_codes_are_shared_with_ldap() {
    let fx = fixture();
    // alice has no device: straight in.
    sign_in(&fx.app, "alice", "alice-pw").await;
    // bob: the right password leads to the code step, not in.
    let (res, pending) = password_step(&fx.app, "bob", "bob-pw").await;
    assert_eq!(res.location(), "/login");
    assert!(!pending.is_empty());
    assert_eq!(
        send(&fx.app, get("/", &pending)).await.location(),
        "/login",
        "not signed in yet"
    );
    let step = send(&fx.app, get("/login", &pending)).await;
    assert!(
        step.body.contains("<label for=\"code\">Code</label>"),
        "{}",
        step.body
    );
    assert!(step.body.contains(">Continue</button>"));
    // A wrong code: the generic error, and the pending session is gone.
    let wrong = send(
        &fx.app,
        post(
            "/login",
            &pending,
            &[("csrf", &step.csrf()), ("code", "000000x")],
        ),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Invalid username or password"));
    assert!(!wrong.body.contains("name=\"code\""));
    assert_eq!(
        send(&fx.app, get("/login", &pending)).await.csrf().len(),
        43
    );

    // The right code signs in with a new session id.
    let (_, pending) = password_step(&fx.app, "bob", "bob-pw").await;
    let step = send(&fx.app, get("/login", &pending)).await;
    let code = code_now();
    let done = send(
        &fx.app,
        post(
            "/login",
            &pending,
            &[("csrf", &step.csrf()), ("code", &code)],
        ),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/");
    let session = format!(
        "{SESSION_COOKIE}={}",
        done.set_cookie(SESSION_COOKIE).expect("cookie")
    );
    assert_ne!(session, pending, "rotated after the code");
    assert_eq!(
        send(&fx.app, get("/", &session)).await.status,
        StatusCode::OK
    );
    assert_eq!(send(&fx.app, get("/", &pending)).await.location(), "/login");

    // The code is used up: LDAP refuses it now.
    let ldap = fx
        .auth
        .authenticate(
            "bob",
            &Secret(format!("bob-pw;{code}")),
            PEER.ip(),
            SystemTime::now(),
        )
        .await;
    assert!(
        matches!(
            ldap,
            BindOutcome::Refused {
                reason: Refusal::CodeReplayed,
                ..
            }
        ),
        "{ldap:?}"
    );
}

#[tokio::test]
async fn ldap_failures_throttle_the_portal_login() {
    let fx = fixture();
    for _ in 0..5 {
        fx.auth
            .authenticate(
                "alice",
                &Secret("wrong".into()),
                PEER.ip(),
                SystemTime::now(),
            )
            .await;
    }
    let (res, session) = password_step(&fx.app, "alice", "alice-pw").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.body.contains("Invalid username or password"));
    assert!(session.is_empty());
}

#[tokio::test]
async fn csrf_is_required_on_forms_and_api_writes() {
    let fx = fixture();
    // The sign-in form needs its token and cookie.
    let page = send(&fx.app, get("/login", "")).await;
    let res = send(
        &fx.app,
        post(
            "/login",
            "",
            &[
                ("csrf", &page.csrf()),
                ("username", "alice"),
                ("password", "alice-pw"),
            ],
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    let session = sign_in(&fx.app, "alice", "alice-pw").await;
    let settings = send(&fx.app, get("/settings", &session)).await;
    let csrf = settings.csrf();
    let without = send(&fx.app, post("/settings", &session, &[("name", "Mallory")])).await;
    assert_eq!(without.status, StatusCode::FORBIDDEN);
    let wrong = send(
        &fx.app,
        post("/settings", &session, &[("csrf", "x"), ("name", "Mallory")]),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let out = send(&fx.app, post("/logout", &session, &[])).await;
    assert_eq!(
        out.status,
        StatusCode::FORBIDDEN,
        "sign-out needs the token too"
    );
    let ok = send(
        &fx.app,
        post(
            "/settings",
            &session,
            &[("csrf", &csrf), ("name", "Alice L.")],
        ),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert!(ok.body.contains("role=\"status\""));
    let alice = fx.store.user_by_name("alice").expect("r").expect("alice");
    assert_eq!(alice.full_name.as_deref(), Some("Alice L."));

    let patch = |token: Option<&str>| {
        let mut b = Request::patch("/api/v1/me")
            .header(header::COOKIE, &session)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            b = b.header("x-csrf-token", t);
        }
        b.body(Body::from(r#"{"name":"Alice API"}"#))
            .expect("request")
    };
    assert_eq!(
        send(&fx.app, patch(None)).await.status,
        StatusCode::FORBIDDEN
    );
    let done = send(&fx.app, patch(Some(&csrf))).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let me: api::Me = serde_json::from_str(&done.body).expect("json");
    assert_eq!(me.name.as_deref(), Some("Alice API"));
}

#[tokio::test]
async fn a_planted_session_id_never_signs_in() {
    let fx = fixture();
    let planted = format!("{SESSION_COOKIE}={}", "A".repeat(43));
    assert_eq!(send(&fx.app, get("/", &planted)).await.location(), "/login");
    let page = send(&fx.app, get("/login", &planted)).await;
    let login = page.set_cookie(LOGIN_COOKIE).expect("login cookie");
    let res = send(
        &fx.app,
        post(
            "/login",
            &format!("{planted}; {LOGIN_COOKIE}={login}"),
            &[
                ("csrf", &page.csrf()),
                ("username", "alice"),
                ("password", "alice-pw"),
            ],
        ),
    )
    .await;
    let issued = format!(
        "{SESSION_COOKIE}={}",
        res.set_cookie(SESSION_COOKIE).expect("new id")
    );
    assert_ne!(issued, planted);
    assert_eq!(send(&fx.app, get("/", &planted)).await.location(), "/login");
    assert_eq!(
        send(&fx.app, get("/", &issued)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sign_out_ends_the_session_on_the_server() {
    let fx = fixture();
    let session = sign_in(&fx.app, "alice", "alice-pw").await;
    let confirm = send(&fx.app, get("/logout", &session)).await;
    assert!(confirm.body.contains(">Sign out</button>"));
    assert_eq!(
        send(&fx.app, get("/", &session)).await.status,
        StatusCode::OK,
        "GET /logout signs nobody out"
    );
    let out = send(
        &fx.app,
        post("/logout", &session, &[("csrf", &confirm.csrf())]),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/login");
    assert_eq!(out.set_cookie(SESSION_COOKIE).as_deref(), Some(""));
    // The old cookie, sent again, no longer works.
    assert_eq!(send(&fx.app, get("/", &session)).await.location(), "/login");
}

fn can_change(body: &str, field: &str) -> bool {
    let at = body.find(&format!("id=\"{field}\"")).expect(field);
    let tag = &body[at..at + body[at..].find('>').expect("end")];
    !tag.contains("readonly")
}

#[tokio::test]
async fn may_change_rules_defaults_groups_then_user_and_tampered_forms() {
    let fx = fixture();
    let session = sign_in(&fx.app, "alice", "alice-pw").await;
    let page = send(&fx.app, get("/settings", &session)).await;
    for label in [
        "Username",
        "Name",
        "Email",
        "Locale",
        "Change password",
        "Sessions",
        "MFA devices",
        "Tokens and app passwords",
    ] {
        assert!(page.body.contains(&format!(">{label}<")), "{label}");
    }
    assert!(
        page.body
            .contains("<option value=\"\" selected>Auto-detect</option>"),
        "{}",
        page.body
    );
    assert!(page.body.contains(">Save</button>"));
    // Defaults: name yes, email no, username no.
    assert!(can_change(&page.body, "name"));
    assert!(!can_change(&page.body, "email"));
    assert!(!can_change(&page.body, "username"));
    let csrf = page.csrf();
    let tampered = send(
        &fx.app,
        post(
            "/settings",
            &session,
            &[("csrf", &csrf), ("email", "evil@example.com")],
        ),
    )
    .await;
    assert_eq!(tampered.status, StatusCode::FORBIDDEN);
    assert!(tampered.body.contains("role=\"alert\""));
    let tampered = send(
        &fx.app,
        post(
            "/settings",
            &session,
            &[("csrf", &csrf), ("username", "root")],
        ),
    )
    .await;
    assert_eq!(tampered.status, StatusCode::FORBIDDEN);
    let alice = fx.store.user_by_name("alice").expect("r").expect("alice");
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));

    // A group allows email and username; the user's own value forbids the name.
    let staff = fx.store.create_group("staff", None).expect("group");
    fx.store
        .add_member(staff.id, Member::User(alice.id))
        .expect("member");
    fx.store
        .set_group_attr(
            staff.id,
            crate::account::profile::CAN_CHANGE_EMAIL,
            Some("true"),
        )
        .expect("attr");
    fx.store
        .set_group_attr(
            staff.id,
            crate::account::profile::CAN_CHANGE_USERNAME,
            Some("true"),
        )
        .expect("attr");
    fx.store
        .set_group_attr(
            staff.id,
            crate::account::profile::CAN_CHANGE_NAME,
            Some("true"),
        )
        .expect("attr");
    fx.store
        .update_user(alice.id, &|u| {
            u.attrs.insert(
                crate::account::profile::CAN_CHANGE_NAME.into(),
                "false".into(),
            );
            Ok(())
        })
        .expect("user attr");
    let page = send(&fx.app, get("/settings", &session)).await;
    assert!(!can_change(&page.body, "name"), "the user's own value wins");
    assert!(can_change(&page.body, "email"));
    assert!(can_change(&page.body, "username"));
    let refused = send(
        &fx.app,
        post("/settings", &session, &[("csrf", &csrf), ("name", "New")]),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // A change the data model refuses: 400 with the reason, nothing saved.
    let bad = send(
        &fx.app,
        post(
            "/settings",
            &session,
            &[("csrf", &csrf), ("email", "not an address")],
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(
        bad.body
            .contains("<p role=\"alert\">The details were not saved: "),
        "{}",
        bad.body
    );
    // A rename keeps the id, uidNumber and memberships; the session goes on.
    let saved = send(
        &fx.app,
        post(
            "/settings",
            &session,
            &[
                ("csrf", &csrf),
                ("username", "alicia"),
                ("email", "alicia@example.com"),
                ("name", "Alice Liddell"),
                ("locale", "de"),
            ],
        ),
    )
    .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert!(
        saved
            .body
            .contains("<p role=\"status\">Deine Angaben wurden gespeichert.</p>"),
        "{}",
        saved.body
    );
    let renamed = fx
        .store
        .user_by_name("alicia")
        .expect("r")
        .expect("renamed");
    assert_eq!(renamed.id, alice.id);
    assert_eq!(renamed.uid_number, alice.uid_number);
    assert_eq!(renamed.email.as_deref(), Some("alicia@example.com"));
    assert_eq!(
        fx.store.groups_of(Member::User(alice.id)).expect("groups"),
        vec![staff.id]
    );
    assert!(fx.store.user_by_name("alice").expect("r").is_none());
    let api = send(&fx.app, get("/api/v1/me", &session)).await;
    let me: api::Me = serde_json::from_str(&api.body).expect("json");
    assert_eq!(me.username, "alicia");
    assert_eq!(me.dn, "cn=alicia,ou=users,dc=example,dc=com");
    assert_eq!(me.locale.as_deref(), Some("de"));
    assert!(me.can_change.username && me.can_change.email && !me.can_change.name);
    // The new name binds over LDAP at once.
    let bound = fx
        .auth
        .authenticate(
            "alicia",
            &Secret("alice-pw".into()),
            PEER.ip(),
            SystemTime::now(),
        )
        .await;
    assert!(matches!(bound, BindOutcome::Success { .. }), "{bound:?}");
    // The API refuses what the form refuses.
    let patch = Request::patch("/api/v1/me")
        .header(header::COOKIE, &session)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-csrf-token", &csrf)
        .body(Body::from(r#"{"name":"Nope"}"#))
        .expect("request");
    let res = send(&fx.app, patch).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.body.contains("\"error\""));
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(dir.path()).expect("open");
    let fx = fixture_on(store, true);
    let session = sign_in(&fx.app, "alice", "alice-pw").await;
    let alice: UserId = fx.store.user_by_name("alice").expect("r").expect("a").id;
    drop(fx);
    let store = Store::open(dir.path()).expect("reopen");
    let fx = fixture_on(store, false);
    let home = send(&fx.app, get("/", &session)).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.location());
    assert!(home.body.contains("Alice Liddell"));
    assert_eq!(fx.store.sessions_of(alice).expect("list").len(), 1);
}

#[tokio::test]
async fn an_unused_static_token_works_once_at_the_portal_then_not_over_ldap() {
    let fx = fixture();
    let bob = fx.store.user_by_name("bob").expect("r").expect("bob");
    let token = crate::auth::static_tokens::generate();
    fx.store
        .add_static_device(
            bob.id,
            "paper",
            &[crate::auth::static_tokens::hash(&fx.key, &token)],
        )
        .expect("static");
    let (_, pending) = password_step(&fx.app, "bob", "bob-pw").await;
    let step = send(&fx.app, get("/login", &pending)).await;
    let done = send(
        &fx.app,
        post(
            "/login",
            &pending,
            &[("csrf", &step.csrf()), ("code", &token)],
        ),
    )
    .await;
    assert_eq!(done.location(), "/", "{}", done.body);
    let ldap = fx
        .auth
        .authenticate(
            "bob",
            &Secret(format!("bob-pw;{token}")),
            PEER.ip(),
            SystemTime::now(),
        )
        .await;
    assert!(
        matches!(
            ldap,
            BindOutcome::Refused {
                reason: Refusal::WrongCode,
                ..
            }
        ),
        "{ldap:?}"
    );
    // And the other way round: a TOTP code used over LDAP is refused here.
    let code = code_now();
    let ldap = fx
        .auth
        .authenticate(
            "bob",
            &Secret(format!("bob-pw;{code}")),
            PEER.ip(),
            SystemTime::now(),
        )
        .await;
    assert!(matches!(ldap, BindOutcome::Success { .. }), "{ldap:?}");
    let (_, pending) = password_step(&fx.app, "bob", "bob-pw").await;
    let step = send(&fx.app, get("/login", &pending)).await;
    let again = send(
        &fx.app,
        post(
            "/login",
            &pending,
            &[("csrf", &step.csrf()), ("code", &code)],
        ),
    )
    .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(again.body.contains("Invalid username or password"));
}

#[tokio::test]
async fn among_groups_false_wins_and_a_pending_code_step_is_no_sign_in_for_the_api() {
    let fx = fixture();
    let alice = fx.store.user_by_name("alice").expect("r").expect("alice");
    let key = crate::account::profile::CAN_CHANGE_EMAIL;
    for (name, value) in [("yes", "true"), ("no", "false")] {
        let g = fx.store.create_group(name, None).expect("group");
        fx.store
            .add_member(g.id, Member::User(alice.id))
            .expect("member");
        fx.store
            .set_group_attr(g.id, key, Some(value))
            .expect("attr");
    }
    let session = sign_in(&fx.app, "alice", "alice-pw").await;
    let me = send(&fx.app, get("/api/v1/me", &session)).await;
    let me: api::Me = serde_json::from_str(&me.body).expect("json");
    assert!(!me.can_change.email);
    assert!(me.can_change.name && !me.can_change.username);

    let (_, pending) = password_step(&fx.app, "bob", "bob-pw").await;
    let api = send(&fx.app, get("/api/v1/me", &pending)).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
}

/// A browser loads other things while the sign-in form is open (its
/// favicon, another tab, a reload): the form's token and its cookie stay
/// paired, so the first submission signs in.
#[tokio::test]
async fn the_sign_in_form_survives_other_requests_of_the_browser() {
    let fx = fixture();
    let page = send(&fx.app, get("/login", "")).await;
    let login = page.set_cookie(LOGIN_COOKIE).expect("login cookie");
    let cookies = format!("{LOGIN_COOKIE}={login}");
    // The favicon is no page: no redirect, no new cookie.
    let icon = send(&fx.app, get("/favicon.ico", &cookies)).await;
    assert_eq!(icon.status, StatusCode::NO_CONTENT);
    assert!(icon.set_cookie(LOGIN_COOKIE).is_none());
    // Another tab's sign-in page keeps the token the browser holds.
    let again = send(&fx.app, get("/login", &cookies)).await;
    assert_eq!(again.csrf(), page.csrf());
    // A wrong password keeps it too, so the corrected form goes through.
    let wrong = send(
        &fx.app,
        post(
            "/login",
            &cookies,
            &[
                ("csrf", &page.csrf()),
                ("username", "alice"),
                ("password", "nope"),
            ],
        ),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.csrf(), page.csrf());
    let res = send(
        &fx.app,
        post(
            "/login",
            &cookies,
            &[
                ("csrf", &page.csrf()),
                ("username", "alice"),
                ("password", "alice-pw"),
            ],
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "/");
    // A cookie of another shape is not taken as a token.
    let odd = send(&fx.app, get("/login", &format!("{LOGIN_COOKIE}=x"))).await;
    assert_ne!(odd.csrf(), "x");
}
