//! Handler tests of the pages and API a user manages their account with:
//! change password, MFA devices, tokens and app passwords (sessions: in
//! `tests_sessions.rs`). The same real router, store, account layer and
//! authenticator as the parent module.

use super::*;

/// The text between `start` and the next `end` after it.
fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let at = body
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {body}"))
        + start.len();
    let rest = &body[at..];
    &rest[..rest.find(end).expect("end")]
}

pub(super) fn json_req(
    method: &str,
    path: &str,
    cookies: &str,
    csrf: Option<&str>,
    body: &str,
) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, cookies)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = csrf {
        b = b.header("x-csrf-token", t);
    }
    b.body(Body::from(body.to_string())).expect("request")
}

fn bearer_req(method: &str, path: &str, token: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

/// The CSRF token of a signed-in session (from its `<meta>`).
pub(super) async fn csrf_of(app: &Router, session: &str) -> String {
    let page = send(app, get("/settings", session)).await;
    between(&page.body, "name=\"csrf-token\" content=\"", "\"").to_string()
}

async fn binds(fx: &Fx, user: &str, password: &str) -> bool {
    matches!(
        fx.auth
            .authenticate(user, &Secret(password.into()), PEER.ip(), SystemTime::now())
            .await,
        BindOutcome::Success { .. }
    )
}

const NEW_PW: &str = "correct horse battery staple 42";

#[tokio::test]
async fn password_change_refuses_wrong_weak_short_and_mismatched_then_ends_other_sessions() {
    let fx = fixture();
    let mine = sign_in(&fx.app, "alice", "alice-pw").await;
    let other = sign_in(&fx.app, "alice", "alice-pw").await;
    // The old password is in the bind cache now.
    assert!(binds(&fx, "alice", "alice-pw").await);
    let page = send(&fx.app, get("/settings/password", &mine)).await;
    assert_eq!(page.status, StatusCode::OK);
    for label in ["Current password", "New password", "Confirm new password"] {
        assert!(page.body.contains(&format!(">{label}</label>")), "{label}");
    }
    assert!(page.body.contains(">Change password</button>"));
    assert!(page.body.contains("name=\"viewport\""));
    let csrf = page.csrf();
    let change = |current: &str, new: &str, confirm: &str| {
        post(
            "/settings/password",
            &mine,
            &[
                ("csrf", &csrf),
                ("current", current),
                ("new", new),
                ("confirm", confirm),
            ],
        )
    };
    for (current, new, confirm, status) in [
        ("wrong-pw", NEW_PW, NEW_PW, StatusCode::FORBIDDEN),
        ("alice-pw", "password", "password", StatusCode::BAD_REQUEST),
        ("alice-pw", "x7#Qz", "x7#Qz", StatusCode::BAD_REQUEST),
        (
            "alice-pw",
            NEW_PW,
            "something else",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let res = send(&fx.app, change(current, new, confirm)).await;
        assert_eq!(res.status, status, "{new}: {}", res.body);
        assert!(res.body.contains("role=\"alert\""), "{new}");
        assert!(binds(&fx, "alice", "alice-pw").await, "nothing changed");
    }
    let no_token = send(
        &fx.app,
        post(
            "/settings/password",
            &mine,
            &[
                ("current", "alice-pw"),
                ("new", NEW_PW),
                ("confirm", NEW_PW),
            ],
        ),
    )
    .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert_eq!(
        send(&fx.app, get("/", &other)).await.status,
        StatusCode::OK,
        "refusals end no session"
    );

    let done = send(&fx.app, change("alice-pw", NEW_PW, NEW_PW)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("role=\"status\""));
    // LDAP: the new password at once, the old one refused (cache too).
    assert!(binds(&fx, "alice", NEW_PW).await);
    assert!(!binds(&fx, "alice", "alice-pw").await);
    // This browser stays; the other one is signed out.
    assert_eq!(send(&fx.app, get("/", &mine)).await.status, StatusCode::OK);
    assert_eq!(send(&fx.app, get("/", &other)).await.location(), "/login");

    // The API: wrong current 403, then 204.
    let csrf = csrf_of(&fx.app, &mine).await;
    let api = |body: &str| json_req("POST", "/api/v1/me/password", &mine, Some(&csrf), body);
    let wrong = send(
        &fx.app,
        api(r#"{"current":"alice-pw","new":"another long passphrase 7"}"#),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{}", wrong.body);
    assert!(wrong.body.contains("\"error\""));
    let weak = send(
        &fx.app,
        api(&format!(r#"{{"current":"{NEW_PW}","new":"password"}}"#)),
    )
    .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    let ok = send(
        &fx.app,
        api(&format!(
            r#"{{"current":"{NEW_PW}","new":"another long passphrase 7"}}"#
        )),
    )
    .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{}", ok.body);
    assert!(binds(&fx, "alice", "another long passphrase 7").await);
    assert_eq!(send(&fx.app, get("/", &mine)).await.status, StatusCode::OK);
}

/// A TOTP enrolment: QR code and secret, a wrong code keeps the same
/// secret, a right one activates the device (named) and sign-in asks for
/// a code; deleting it takes the password.
#[tokio::test]
async fn totp_enrolment_keeps_the_secret_after_a_wrong_code_and_delete_takes_the_password() {
    let fx = fixture();
    let session = sign_in(&fx.app, "alice", "alice-pw").await;
    let list = send(&fx.app, get("/settings/mfa", &session)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains(">Add TOTP device</button>"));
    assert!(list.body.contains(">Add static tokens</button>"));
    assert!(list.body.contains("<code>password;123456</code>"));
    let csrf = list.csrf();

    let begun = send(
        &fx.app,
        post("/settings/mfa/totp", &session, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(begun.status, StatusCode::SEE_OTHER);
    let path = begun.location().to_string();
    assert!(path.starts_with("/settings/mfa/totp/"), "{path}");
    let page = send(&fx.app, get(&path, &session)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<svg"));
    assert!(page.body.contains("password;123456"));
    assert!(page.body.contains("<label for=\"code\">Code</label>"));
    assert!(page.body.contains("<label for=\"name\">Name</label>"));
    assert!(page.body.contains(">Continue</button>"));
    let secret = between(&page.body, "<dt>Secret</dt><dd><code>", "</code>").to_string();
    assert!(secret.len() >= 26, "{secret}");

    let alice = fx.store.user_by_name("alice").expect("r").expect("alice");
    let device = fx.store.devices(alice.id).expect("devices")[0].clone();
    assert!(!device.confirmed);
    let key = fx
        .store
        .totp_secret(alice.id, device.id)
        .expect("r")
        .expect("secret");
    assert_eq!(crate::auth::totp::secret_base32(&key.0), secret);
    let step = crate::auth::totp::step_of(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("time")
            .as_secs(),
    );
    let wrong = crate::auth::totp::code_at_step(&key.0, 6, step + 100);
    let res = send(
        &fx.app,
        post(
            &path,
            &session,
            &[("csrf", &csrf), ("name", "phone"), ("code", &wrong)],
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(res.body.contains("role=\"alert\""));
    assert_eq!(
        between(&res.body, "<dt>Secret</dt><dd><code>", "</code>"),
        secret,
        "the same secret"
    );
    // Pending: the password alone still signs in.
    sign_in(&fx.app, "alice", "alice-pw").await;

    let right = crate::auth::totp::code_at_step(&key.0, 6, step);
    let res = send(
        &fx.app,
        post(
            &path,
            &session,
            &[("csrf", &csrf), ("name", "phone"), ("code", &right)],
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "/settings/mfa");
    let list = send(&fx.app, get("/settings/mfa", &session)).await;
    assert!(list.body.contains("phone"));
    assert!(list.body.contains(">TOTP<"));
    assert!(list.body.contains(">Delete</button>"));
    // Sign-in asks for a code now.
    let (res, _) = password_step(&fx.app, "alice", "alice-pw").await;
    assert_eq!(res.location(), "/login");
    assert!(res.set_cookie(SESSION_COOKIE).is_some());

    // Rename: a page with "Name"; an empty name is refused.
    let rename = format!("/settings/mfa/{}/rename", device.id);
    let form = send(&fx.app, get(&rename, &session)).await;
    assert!(form.body.contains("<label for=\"name\">Name</label>"));
    let res = send(
        &fx.app,
        post(&rename, &session, &[("csrf", &csrf), ("name", "  ")]),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(res.body.contains("role=\"alert\""));
    let res = send(
        &fx.app,
        post(
            &rename,
            &session,
            &[("csrf", &csrf), ("name", "work phone")],
        ),
    )
    .await;
    assert_eq!(res.location(), "/settings/mfa");
    assert!(send(&fx.app, get("/settings/mfa", &session))
        .await
        .body
        .contains("work phone"));

    // Delete: a confirmation with "Password"; the wrong one changes nothing.
    let delete = format!("/settings/mfa/{}/delete", device.id);
    let ask = send(&fx.app, get(&delete, &session)).await;
    assert!(ask
        .body
        .contains("<label for=\"password\">Password</label>"));
    assert!(ask.body.contains(">Delete</button>"));
    let res = send(
        &fx.app,
        post(&delete, &session, &[("csrf", &csrf), ("password", "nope")]),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.body.contains("role=\"alert\""));
    assert_eq!(fx.store.devices(alice.id).expect("r").len(), 1);
    let res = send(
        &fx.app,
        post(&delete, &session, &[("password", "alice-pw")]),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "no CSRF token");
    let res = send(
        &fx.app,
        post(
            &delete,
            &session,
            &[("csrf", &csrf), ("password", "alice-pw")],
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert!(fx.store.devices(alice.id).expect("r").is_empty());
    sign_in(&fx.app, "alice", "alice-pw").await;
}

fn tokens_of(body: &str) -> Vec<String> {
    let list = between(body, "<ul class=\"tokens\">", "</ul>");
    list.split("<code>")
        .skip(1)
        .map(|t| t[..t.find("</code>").expect("end")].to_string())
        .collect()
}

#[tokio::test]
async fn static_tokens_are_shown_once_and_a_new_set_replaces_the_old() {
    let fx = fixture();
    let session = sign_in(&fx.app, "alice", "alice-pw").await;
    let csrf = csrf_of(&fx.app, &session).await;
    let first = send(
        &fx.app,
        post("/settings/mfa/static", &session, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let old = tokens_of(&first.body);
    assert_eq!(old.len(), 6);
    assert!(first.body.contains("password;123456"));
    let list = send(&fx.app, get("/settings/mfa", &session)).await;
    assert!(list.body.contains(">Static tokens<"));
    assert!(!list.body.contains(&old[0]), "shown once");

    // Again: a confirmation first, then a new set; the old one is void.
    let ask = send(
        &fx.app,
        post("/settings/mfa/static", &session, &[("csrf", &csrf)]),
    )
    .await;
    assert!(ask.body.contains(">Continue</button>"));
    assert!(!ask.body.contains("class=\"tokens\""));
    let second = send(
        &fx.app,
        post(
            "/settings/mfa/static",
            &session,
            &[("csrf", &csrf), ("confirm", "1")],
        ),
    )
    .await;
    let new = tokens_of(&second.body);
    assert_eq!(new.len(), 6);
    assert!(new.iter().all(|t| !old.contains(t)));
    let alice = fx.store.user_by_name("alice").expect("r").expect("alice");
    assert_eq!(fx.store.devices(alice.id).expect("r").len(), 1);
    assert!(!binds(&fx, "alice", &format!("alice-pw;{}", old[0])).await);
    assert!(binds(&fx, "alice", &format!("alice-pw;{}", new[0])).await);
}

#[tokio::test]
async fn mfa_api_enrols_lists_and_deletes_only_the_callers_devices() {
    let fx = fixture();
    let alice = sign_in(&fx.app, "alice", "alice-pw").await;
    let csrf = csrf_of(&fx.app, &alice).await;
    let begun = send(
        &fx.app,
        json_req("POST", "/api/v1/me/mfa/totp", &alice, Some(&csrf), ""),
    )
    .await;
    assert_eq!(begun.status, StatusCode::CREATED, "{}", begun.body);
    let v: serde_json::Value = serde_json::from_str(&begun.body).expect("json");
    let id = v["id"].as_str().expect("id").to_string();
    assert!(v["uri"]
        .as_str()
        .expect("uri")
        .starts_with("otpauth://totp/"));
    let user = fx.store.user_by_name("alice").expect("r").expect("alice");
    let key = fx
        .store
        .totp_secret(user.id, crate::store::DeviceId(id.parse().expect("uuid")))
        .expect("r")
        .expect("secret");
    let step = crate::auth::totp::step_of(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("time")
            .as_secs(),
    );
    let confirm = format!("/api/v1/me/mfa/totp/{id}/confirm");
    let wrong = crate::auth::totp::code_at_step(&key.0, 6, step + 50);
    let res = send(
        &fx.app,
        json_req(
            "POST",
            &confirm,
            &alice,
            Some(&csrf),
            &format!(r#"{{"code":"{wrong}"}}"#),
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let right = crate::auth::totp::code_at_step(&key.0, 6, step);
    let res = send(
        &fx.app,
        json_req(
            "POST",
            &confirm,
            &alice,
            Some(&csrf),
            &format!(r#"{{"code":"{right}","name":"laptop"}}"#),
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let list = send(&fx.app, get("/api/v1/me/mfa", &alice)).await;
    let v: serde_json::Value = serde_json::from_str(&list.body).expect("json");
    assert_eq!(v.as_array().expect("list").len(), 1);
    assert_eq!(v[0]["label"], "laptop");
    assert!(!list
        .body
        .contains(&crate::auth::totp::secret_base32(&key.0)));

    let statics = send(
        &fx.app,
        json_req("POST", "/api/v1/me/mfa/static", &alice, Some(&csrf), ""),
    )
    .await;
    assert_eq!(statics.status, StatusCode::CREATED);
    let v: serde_json::Value = serde_json::from_str(&statics.body).expect("json");
    assert_eq!(v["tokens"].as_array().expect("tokens").len(), 6);

    // bob cannot delete alice's device, even with his own password.
    let bob = {
        fx.store
            .remove_device(
                fx.store.user_by_name("bob").expect("r").expect("bob").id,
                fx.store
                    .devices(fx.store.user_by_name("bob").expect("r").expect("bob").id)
                    .expect("r")[0]
                    .id,
            )
            .expect("bob without device");
        sign_in(&fx.app, "bob", "bob-pw").await
    };
    let bob_csrf = csrf_of(&fx.app, &bob).await;
    let path = format!("/api/v1/me/mfa/{id}");
    let res = send(
        &fx.app,
        json_req(
            "DELETE",
            &path,
            &bob,
            Some(&bob_csrf),
            r#"{"password":"bob-pw"}"#,
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{}", res.body);
    let res = send(
        &fx.app,
        json_req(
            "PATCH",
            &path,
            &bob,
            Some(&bob_csrf),
            r#"{"name":"mine now"}"#,
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "not bob's to rename");
    let res = send(
        &fx.app,
        json_req("PATCH", &path, &alice, Some(&csrf), r#"{"name":"desk"}"#),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(res.body.contains("\"label\":\"desk\""));
    let res = send(
        &fx.app,
        json_req("DELETE", &path, &alice, None, r#"{"password":"alice-pw"}"#),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "no CSRF header");
    let res = send(
        &fx.app,
        json_req(
            "DELETE",
            &path,
            &alice,
            Some(&csrf),
            r#"{"password":"wrong"}"#,
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(fx.store.devices(user.id).expect("r").len(), 2);
    let res = send(
        &fx.app,
        json_req(
            "DELETE",
            &path,
            &alice,
            Some(&csrf),
            r#"{"password":"alice-pw"}"#,
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.body);
    assert_eq!(fx.store.devices(user.id).expect("r").len(), 1);
}

/// The secret on the page that shows a new token or app password.
fn shown_secret(body: &str) -> String {
    assert!(
        body.contains("<label for=\"secret\">Secret</label>"),
        "{body}"
    );
    assert!(body.contains(">Copy</button>"));
    assert!(body.contains("src=\"/static/portal.js\""));
    let input = between(body, "id=\"secret\"", ">");
    between(input, "value=\"", "\"").to_string()
}

#[tokio::test]
async fn tokens_and_app_passwords_live_from_creation_to_revocation() {
    let fx = fixture();
    let session = sign_in(&fx.app, "alice", "alice-pw").await;
    let page = send(&fx.app, get("/settings/tokens", &session)).await;
    assert!(page.body.contains(">Create app password</button>"));
    assert!(page.body.contains(">Create token</button>"));
    let form = send(&fx.app, get("/settings/tokens/new?kind=token", &session)).await;
    for label in ["Label", "Expires"] {
        assert!(form.body.contains(&format!(">{label}</label>")), "{label}");
    }
    assert!(form.body.contains(">Create</button>"));
    let csrf = form.csrf();
    let create = |kind: &str, label: &str, expires: &str| {
        post(
            "/settings/tokens/new",
            &session,
            &[
                ("csrf", &csrf),
                ("kind", kind),
                ("label", label),
                ("expires", expires),
            ],
        )
    };
    // Refusals: no label, an expiry past the maximum, nonsense.
    for (label, expires) in [("", ""), ("ci", "400d"), ("ci", "soon")] {
        let res = send(&fx.app, create("token", label, expires)).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{label} {expires}");
        assert!(res.body.contains("role=\"alert\""));
    }
    let res = send(
        &fx.app,
        post(
            "/settings/tokens/new",
            &session,
            &[("kind", "token"), ("label", "ci")],
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "no CSRF token");

    let made = send(&fx.app, create("token", "ci", "")).await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let token = shown_secret(&made.body);
    let app = send(&fx.app, create("app-password", "mail", "7d")).await;
    let app_password = shown_secret(&app.body);

    // The token: Bearer on /api/v1, no CSRF header needed; not for LDAP
    // nor the login page.
    let me = send(&fx.app, bearer_req("GET", "/api/v1/me", &token, "")).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert!(me.body.contains("\"username\":\"alice\""));
    let by_bearer = send(
        &fx.app,
        bearer_req(
            "POST",
            "/api/v1/me/app-passwords",
            &token,
            r#"{"label":"script","expires":"1d"}"#,
        ),
    )
    .await;
    assert_eq!(by_bearer.status, StatusCode::CREATED, "{}", by_bearer.body);
    assert!(!binds(&fx, "alice", &token).await);
    let (res, _) = password_step(&fx.app, "alice", &token).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);

    // The app password: LDAP yes; Bearer and the login page no.
    assert!(binds(&fx, "alice", &app_password).await);
    let res = send(&fx.app, bearer_req("GET", "/api/v1/me", &app_password, "")).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.body.contains("\"error\""));
    let (res, _) = password_step(&fx.app, "alice", &app_password).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);

    // Lists: label, rows with Revoke, never the secret.
    let page = send(&fx.app, get("/settings/tokens", &session)).await;
    assert!(page.body.contains("mail") && page.body.contains("ci"));
    assert!(page.body.contains(">Revoke</button>"));
    assert!(!page.body.contains(&token) && !page.body.contains(&app_password));
    let listed = send(&fx.app, get("/api/v1/me/tokens", &session)).await;
    let v: serde_json::Value = serde_json::from_str(&listed.body).expect("json");
    assert_eq!(v.as_array().expect("list").len(), 1);
    assert!(v[0]["expires"].is_string(), "the default lifetime applies");
    assert!(!listed.body.contains(&token));
    let token_id = v[0]["id"].as_str().expect("id").to_string();
    let apps = send(
        &fx.app,
        bearer_req("GET", "/api/v1/me/app-passwords", &token, ""),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&apps.body).expect("json");
    let mail = v
        .as_array()
        .expect("list")
        .iter()
        .find(|a| a["label"] == "mail")
        .expect("mail")
        .clone();
    let app_id = mail["id"].as_str().expect("id").to_string();
    assert_eq!(mail["last_used_from"], PEER.ip().to_string());

    // bob cannot revoke alice's token.
    let bob = {
        let b = fx.store.user_by_name("bob").expect("r").expect("bob");
        let d = fx.store.devices(b.id).expect("r")[0].id;
        fx.store.remove_device(b.id, d).expect("remove");
        sign_in(&fx.app, "bob", "bob-pw").await
    };
    let bob_csrf = csrf_of(&fx.app, &bob).await;
    let res = send(
        &fx.app,
        json_req(
            "DELETE",
            &format!("/api/v1/me/tokens/{token_id}"),
            &bob,
            Some(&bob_csrf),
            "",
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(
        send(&fx.app, bearer_req("GET", "/api/v1/me", &token, ""))
            .await
            .status,
        StatusCode::OK
    );

    // Revoke: the app password from the page, the token over the API
    // (with itself); both are refused at once.
    let res = send(
        &fx.app,
        post(
            &format!("/settings/tokens/{app_id}/revoke"),
            &session,
            &[("csrf", &csrf), ("kind", "app-password")],
        ),
    )
    .await;
    assert_eq!(res.location(), "/settings/tokens");
    assert!(!binds(&fx, "alice", &app_password).await);
    let res = send(
        &fx.app,
        bearer_req(
            "DELETE",
            &format!("/api/v1/me/tokens/{token_id}"),
            &token,
            "",
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    let res = send(&fx.app, bearer_req("GET", "/api/v1/me", &token, "")).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_per_user_attribute_caps_token_lifetimes() {
    let fx = fixture();
    let alice = fx.store.user_by_name("alice").expect("r").expect("alice");
    fx.store
        .update_user(alice.id, &|u| {
            u.attrs.insert(
                crate::account::profile::TOKEN_MAX_LIFETIME.into(),
                "2d".into(),
            );
            Ok(())
        })
        .expect("attr");
    let session = sign_in(&fx.app, "alice", "alice-pw").await;
    let csrf = csrf_of(&fx.app, &session).await;
    let api = |body: &str| json_req("POST", "/api/v1/me/tokens", &session, Some(&csrf), body);
    let res = send(&fx.app, api(r#"{"label":"long","expires":"3d"}"#)).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
    let res = send(&fx.app, api(r#"{"label":"short","expires":"1d"}"#)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
}

#[tokio::test]
async fn new_pages_need_a_session_and_their_forms_a_token() {
    let fx = fixture();
    for path in [
        "/settings/password",
        "/settings/mfa",
        "/settings/tokens",
        "/settings/tokens/new",
        "/settings/sessions",
    ] {
        assert_eq!(
            send(&fx.app, get(path, "")).await.location(),
            "/login",
            "{path}"
        );
    }
    for path in ["/api/v1/me/mfa", "/api/v1/me/tokens", "/api/v1/me/sessions"] {
        let res = send(&fx.app, get(path, "")).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{path}");
        let res = send(&fx.app, bearer_req("GET", path, "pct_nonsense", "")).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let session = sign_in(&fx.app, "alice", "alice-pw").await;
    for path in [
        "/settings/password",
        "/settings/mfa",
        "/settings/tokens",
        "/settings/tokens/new?kind=app-password",
        "/settings/sessions",
    ] {
        let page = send(&fx.app, get(path, &session)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_eq!(page.header("cache-control"), "no-store", "{path}");
        assert!(page.body.contains("name=\"viewport\""), "{path}");
        assert!(page.body.contains(">Sign out</button>"), "{path}");
    }
    for path in [
        "/settings/mfa/totp",
        "/settings/mfa/static",
        "/settings/tokens/new",
        "/settings/sessions/00000000-0000-0000-0000-000000000000/delete",
    ] {
        let res = send(&fx.app, post(path, &session, &[])).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}");
    }
    for path in [
        "/api/v1/me/mfa/totp",
        "/api/v1/me/mfa/static",
        "/api/v1/me/tokens",
    ] {
        let res = send(&fx.app, json_req("POST", path, &session, None, "{}")).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}");
    }
    let js = send(&fx.app, get("/static/portal.js", "")).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.header("content-type").starts_with("text/javascript"));
}

#[tokio::test]
async fn the_pages_speak_german_too() {
    let fx = fixture();
    let session = sign_in(&fx.app, "alice", "alice-pw").await;
    let mut req = get("/settings/mfa", &session);
    req.headers_mut()
        .insert(header::ACCEPT_LANGUAGE, "de".parse().expect("header"));
    let page = send(&fx.app, req).await;
    assert!(page.body.contains("TOTP-Gerät hinzufügen"));
}
