//! Handler tests of the sessions page and API, and of `session list|end`
//! with portal sessions: portal and LDAP rows, ended by their owner only.

use super::own::{csrf_of, json_req};
use super::*;
use crate::account::AdminContext;
use crate::config::Config;

#[tokio::test]
async fn sessions_list_portal_and_ldap_rows_and_end_them() {
    let fx = fixture();
    let mine = sign_in(&fx.app, "alice", "alice-pw").await;
    let other = sign_in(&fx.app, "alice", "alice-pw").await;
    let alice = fx.store.user_by_name("alice").expect("r").expect("alice");
    let ldap_peer: SocketAddr = "198.51.100.4:50000".parse().expect("addr");
    let conn = fx
        .accounts
        .connections()
        .open(ldap_peer, &tokio_util::sync::CancellationToken::new());
    conn.set_identity(&crate::directory::Identity::User {
        id: alice.id,
        username: "alice".into(),
    });

    let page = send(&fx.app, get("/settings/sessions", &mine)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.body.matches("Current session").count(), 1);
    assert!(page.body.contains("LDAP"));
    assert!(page.body.contains("198.51.100.4"));
    assert!(page.body.contains(&PEER.ip().to_string()));
    assert_eq!(
        page.body.matches(">Sign out</button>").count(),
        4,
        "nav + 3 rows"
    );
    let csrf = page.csrf();

    let listed = send(&fx.app, get("/api/v1/me/sessions", &mine)).await;
    let rows: serde_json::Value = serde_json::from_str(&listed.body).expect("json");
    let rows = rows.as_array().expect("rows").clone();
    assert_eq!(rows.len(), 3);
    let current = rows.iter().find(|r| r["current"] == true).expect("current");
    let portal_other = rows
        .iter()
        .find(|r| r["kind"] == "portal" && r["current"] == false)
        .expect("other");
    let ldap = rows.iter().find(|r| r["kind"] == "ldap").expect("ldap");
    assert_eq!(ldap["address"], "198.51.100.4");

    // bob can end none of them.
    let bob = {
        let b = fx.store.user_by_name("bob").expect("r").expect("bob");
        let d = fx.store.devices(b.id).expect("r")[0].id;
        fx.store.remove_device(b.id, d).expect("remove");
        sign_in(&fx.app, "bob", "bob-pw").await
    };
    let bob_csrf = csrf_of(&fx.app, &bob).await;
    for row in &rows {
        let path = format!("/api/v1/me/sessions/{}", row["id"].as_str().expect("id"));
        let res = send(
            &fx.app,
            json_req("DELETE", &path, &bob, Some(&bob_csrf), ""),
        )
        .await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
    }
    assert!(!conn.ended().is_cancelled());
    assert_eq!(send(&fx.app, get("/", &other)).await.status, StatusCode::OK);

    // The other browser: signed out at its next request; mine stays.
    let path = format!(
        "/settings/sessions/{}/delete",
        portal_other["id"].as_str().expect("id")
    );
    assert_eq!(
        send(&fx.app, post(&path, &mine, &[])).await.status,
        StatusCode::FORBIDDEN,
        "no CSRF token"
    );
    let res = send(&fx.app, post(&path, &mine, &[("csrf", &csrf)])).await;
    assert_eq!(res.location(), "/settings/sessions");
    assert_eq!(send(&fx.app, get("/", &other)).await.location(), "/login");
    assert_eq!(send(&fx.app, get("/", &mine)).await.status, StatusCode::OK);

    // The LDAP row: the connection is told to close at once.
    let path = format!("/api/v1/me/sessions/{}", ldap["id"].as_str().expect("id"));
    let res = send(&fx.app, json_req("DELETE", &path, &mine, Some(&csrf), "")).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert!(conn.ended().is_cancelled());

    // The current one: signed out.
    let path = format!(
        "/settings/sessions/{}/delete",
        current["id"].as_str().expect("id")
    );
    let res = send(&fx.app, post(&path, &mine, &[("csrf", &csrf)])).await;
    assert_eq!(res.location(), "/login");
    assert_eq!(res.set_cookie(SESSION_COOKIE).as_deref(), Some(""));
    assert_eq!(send(&fx.app, get("/", &mine)).await.location(), "/login");
}

/// `portcullis session list|end`: portal sessions too.
#[tokio::test]
async fn the_operator_lists_and_ends_portal_sessions_too() {
    let fx = fixture();
    let session = sign_in(&fx.app, "alice", "alice-pw").await;
    let mut ctx = AdminContext::new(fx.store.clone(), Hasher::for_tests(), &Config::default());
    ctx.connections = fx.accounts.connections().clone();
    let op = crate::account::Actor::Operator;
    let listed = tokio::task::spawn_blocking({
        let ctx = ctx.clone();
        move || crate::account::connections::session_list(&ctx, &op, Some("alice"))
    })
    .await
    .expect("task")
    .expect("list");
    let crate::account::view::AdminAnswer::Sessions(rows) = listed else {
        panic!("sessions");
    };
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].kind, "portal");
    let id = rows[0].id.clone();
    tokio::task::spawn_blocking(move || {
        crate::account::connections::session_end(&ctx, &crate::account::Actor::Operator, &id)
    })
    .await
    .expect("task")
    .expect("end");
    assert_eq!(send(&fx.app, get("/", &session)).await.location(), "/login");
}
