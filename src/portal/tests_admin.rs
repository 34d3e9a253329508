//! Handler tests of the minimal admin page and `/api/v1/users|groups`:
//! admins only, CSRF on every change, the last-admin guard.

use super::*;

fn json_req(method: &str, path: &str, cookies: &str, csrf: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, cookies)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-csrf-token", csrf)
        .body(Body::from(body.to_string()))
        .expect("request")
}

async fn csrf_of(app: &Router, session: &str) -> String {
    send(app, get("/settings", session)).await.csrf()
}

/// alice is an admin; bob (without his device) is not.
async fn setup() -> (Fx, String, String) {
    let fx = fixture();
    let admins = fx.store.create_group("admins", None).expect("group");
    let alice = fx.store.user_by_name("alice").expect("r").expect("alice");
    fx.store
        .add_member(admins.id, Member::User(alice.id))
        .expect("member");
    let bob = fx.store.user_by_name("bob").expect("r").expect("bob");
    let device = fx.store.devices(bob.id).expect("r")[0].id;
    fx.store.remove_device(bob.id, device).expect("remove");
    let a = sign_in(&fx.app, "alice", "alice-pw").await;
    let b = sign_in(&fx.app, "bob", "bob-pw").await;
    (fx, a, b)
}

#[tokio::test]
async fn only_admins_see_the_admin_page_and_api() {
    let (fx, alice, bob) = setup().await;
    let home = send(&fx.app, get("/", &alice)).await;
    assert!(home.body.contains("href=\"/admin\""));
    let home = send(&fx.app, get("/", &bob)).await;
    assert!(!home.body.contains("href=\"/admin\""));

    let page = send(&fx.app, get("/admin", &alice)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("bob") && page.body.contains(">Disable</button>"));
    assert!(page.body.contains("admins"));
    assert_eq!(send(&fx.app, get("/admin", "")).await.location(), "/login");
    assert_eq!(
        send(&fx.app, get("/admin", &bob)).await.status,
        StatusCode::FORBIDDEN
    );
    for path in ["/api/v1/users", "/api/v1/users/alice", "/api/v1/groups"] {
        let res = send(&fx.app, get(path, &bob)).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}");
        let res = send(&fx.app, get(path, &alice)).await;
        assert_eq!(res.status, StatusCode::OK, "{path}");
    }
    let bob_csrf = csrf_of(&fx.app, &bob).await;
    let res = send(
        &fx.app,
        json_req(
            "PATCH",
            "/api/v1/users/alice",
            &bob,
            &bob_csrf,
            r#"{"disabled":true}"#,
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = send(
        &fx.app,
        json_req(
            "POST",
            "/api/v1/groups/admins/members/bob",
            &bob,
            &bob_csrf,
            "",
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = send(
        &fx.app,
        post("/admin/users/alice/disable", &bob, &[("csrf", &bob_csrf)]),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let alice_user = fx.store.user_by_name("alice").expect("r").expect("alice");
    assert!(!alice_user.disabled);
}

#[tokio::test]
async fn admins_disable_enable_and_change_memberships_within_the_guard() {
    let (fx, alice, bob) = setup().await;
    let csrf = csrf_of(&fx.app, &alice).await;
    let res = send(&fx.app, post("/admin/users/bob/disable", &alice, &[])).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "no CSRF token");
    let res = send(
        &fx.app,
        post("/admin/users/bob/disable", &alice, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(res.location(), "/admin");
    assert!(
        fx.store
            .user_by_name("bob")
            .expect("r")
            .expect("bob")
            .disabled
    );
    assert_eq!(send(&fx.app, get("/", &bob)).await.location(), "/login");
    let res = send(
        &fx.app,
        post("/admin/users/bob/enable", &alice, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(res.location(), "/admin");
    assert!(
        !fx.store
            .user_by_name("bob")
            .expect("r")
            .expect("bob")
            .disabled
    );

    // The last enabled admin cannot disable herself or leave the group.
    let res = send(
        &fx.app,
        post("/admin/users/alice/disable", &alice, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
    assert!(res.body.contains("role=\"alert\""));
    let res = send(
        &fx.app,
        json_req(
            "DELETE",
            "/api/v1/groups/admins/members/alice",
            &alice,
            &csrf,
            "",
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);

    // Memberships from the page and the API.
    let res = send(
        &fx.app,
        post(
            "/admin/groups/admins/members",
            &alice,
            &[("csrf", &csrf), ("username", "bob")],
        ),
    )
    .await;
    assert_eq!(res.location(), "/admin");
    let groups = send(&fx.app, get("/api/v1/groups", &alice)).await;
    let v: serde_json::Value = serde_json::from_str(&groups.body).expect("json");
    let admins = v
        .as_array()
        .expect("list")
        .iter()
        .find(|g| g["name"] == "admins")
        .expect("admins")
        .clone();
    assert_eq!(admins["members"], serde_json::json!(["alice", "bob"]));
    let res = send(
        &fx.app,
        post(
            "/admin/groups/admins/members/bob/remove",
            &alice,
            &[("csrf", &csrf)],
        ),
    )
    .await;
    assert_eq!(res.location(), "/admin");
    let res = send(
        &fx.app,
        json_req(
            "POST",
            "/api/v1/groups/admins/members/bob",
            &alice,
            &csrf,
            "",
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let res = send(
        &fx.app,
        json_req(
            "DELETE",
            "/api/v1/groups/admins/members/bob",
            &alice,
            &csrf,
            "",
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    let res = send(
        &fx.app,
        json_req(
            "PATCH",
            "/api/v1/users/bob",
            &alice,
            &csrf,
            r#"{"disabled":true}"#,
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let v: serde_json::Value = serde_json::from_str(&res.body).expect("json");
    assert_eq!(v["disabled"], true);
    let res = send(
        &fx.app,
        json_req(
            "PATCH",
            "/api/v1/users/bob",
            &alice,
            &csrf,
            r#"{"colour":"red"}"#,
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let res = send(
        &fx.app,
        json_req(
            "PATCH",
            "/api/v1/users/nobody",
            &alice,
            &csrf,
            r#"{"disabled":true}"#,
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admins_list_and_end_anyones_sessions_others_do_not() {
    let (fx, alice, bob) = setup().await;
    let bob_csrf = csrf_of(&fx.app, &bob).await;
    let res = send(&fx.app, get("/api/v1/users/alice/sessions", &bob)).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = send(&fx.app, get("/api/v1/users/bob/sessions", &alice)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let rows: serde_json::Value = serde_json::from_str(&res.body).expect("json");
    let id = rows[0]["id"].as_str().expect("id").to_string();
    let alice_rows = send(&fx.app, get("/api/v1/me/sessions", &alice)).await;
    let mine: serde_json::Value = serde_json::from_str(&alice_rows.body).expect("json");
    let alice_id = mine[0]["id"].as_str().expect("id").to_string();
    let res = send(
        &fx.app,
        json_req(
            "DELETE",
            &format!("/api/v1/users/alice/sessions/{alice_id}"),
            &bob,
            &bob_csrf,
            "",
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let csrf = csrf_of(&fx.app, &alice).await;
    let res = send(
        &fx.app,
        json_req(
            "DELETE",
            &format!("/api/v1/users/bob/sessions/{id}"),
            &alice,
            &csrf,
            "",
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert_eq!(send(&fx.app, get("/", &bob)).await.location(), "/login");
    assert_eq!(send(&fx.app, get("/", &alice)).await.status, StatusCode::OK);
}

/// The OpenAPI description is served without a session, and every
/// operation it lists exists in the router and asks for authentication
/// (401 signed out, never 404 or 405); the API routes of the router are
/// all in it.
#[tokio::test]
async fn the_openapi_description_names_only_real_routes() {
    let fx = fixture();
    let res = send(&fx.app, get("/api/v1/openapi.json", "")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.header("content-type").starts_with("application/json"));
    let doc: serde_json::Value = serde_json::from_str(&res.body).expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        for (method, _) in item.as_object().expect("item") {
            let concrete = path
                .replace("{id}", "00000000-0000-0000-0000-000000000000")
                .replace("{username}", "alice")
                .replace("{name}", "admins");
            let req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&concrete)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .expect("request");
            let res = send(&fx.app, req).await;
            assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            operations += 1;
        }
    }
    assert_eq!(operations, 25, "every API operation of the router");
    // Every schema it refers to is defined.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in res.body.split("#/components/schemas/").skip(1) {
        let name = &name[..name.find('"').expect("end")];
        assert!(schemas.contains_key(name), "{name}");
    }
}
