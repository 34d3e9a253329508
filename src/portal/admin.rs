//! The minimal admin page (`/admin`) and its API (`/api/v1/users`,
//! `/api/v1/groups`): users enabled or disabled, group members added and
//! removed. Only admins (members of the admin group); anyone else gets
//! 403. The rules, the permission and the last-admin guard are the
//! account layer's. A full admin console comes later.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::html;
use serde::Deserialize;

use super::extract::{api_error, server_error, ApiUser, Posted, SignedIn};
use super::views::{alert, page, post_button};
use super::{html, see_other_to, Portal};
use crate::account::AccountError;

/// The page, with an error from the last change when there is one.
async fn render(
    portal: &Portal,
    me: &SignedIn,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let (lang, actor) = (me.ctx.lang, me.actor());
    let users = portal.accounts.users(&actor).await;
    let groups = portal.accounts.groups(&actor).await;
    let (users, groups) = match (users, groups) {
        (Ok(u), Ok(g)) => (u, g),
        (Err(AccountError::Denied(_)), _) | (_, Err(AccountError::Denied(_))) => {
            return super::extract::forbidden_page(lang, me, &lang.t("admins-only"));
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "the admin page");
            return server_error(lang);
        }
    };
    let nav = me.nav();
    let body = html! {
        h1 { (lang.t("admin-title")) }
        (alert(error))
        h2 { (lang.t("users")) }
        ul.rows {
            @for u in &users {
                li {
                    div.what {
                        strong {
                            (u.username)
                            @if u.disabled { span.tag { (lang.t("user-disabled")) } }
                        }
                        p.meta {
                            (u.full_name.as_deref().unwrap_or(""))
                            @if !u.groups.is_empty() { " · " (u.groups.join(", ")) }
                        }
                    }
                    @if u.disabled {
                        (post_button(&format!("/admin/users/{}/enable", u.username), nav.csrf, &lang.t("enable")))
                    } @else {
                        (post_button(&format!("/admin/users/{}/disable", u.username), nav.csrf, &lang.t("disable")))
                    }
                }
            }
        }
        h2 { (lang.t("groups")) }
        ul.rows {
            @for (i, g) in groups.iter().enumerate() {
                li {
                    div.what {
                        strong { (g.name) }
                        @if g.members.is_empty() {
                            p.meta { (lang.t("no-members")) }
                        }
                        ul.members {
                            @for m in &g.members {
                                li {
                                    span { (m) " " }
                                    (post_button(&format!("/admin/groups/{}/members/{}/remove", g.name, m),
                                        nav.csrf, &lang.t("remove")))
                                }
                            }
                        }
                        form method="post" action=(format!("/admin/groups/{}/members", g.name)) {
                            input type="hidden" name="csrf" value=(nav.csrf);
                            label for=(format!("member-{i}")) { (lang.t_with("add-member-to", &[("group", &g.name)])) }
                            input id=(format!("member-{i}")) type="text" name="username"
                                autocapitalize="none" spellcheck="false" required;
                            div.actions { button type="submit" { (lang.t("add-member")) } }
                        }
                    }
                }
            }
        }
    };
    (
        status,
        html(page(lang, &lang.t("admin-title"), Some(&nav), body)),
    )
        .into_response()
}

/// `GET /admin`.
pub async fn show(State(portal): State<Portal>, me: SignedIn) -> Response {
    render(&portal, &me, StatusCode::OK, None).await
}

/// After a change from the page: back to it, or the page with the refusal.
async fn after(portal: &Portal, me: &SignedIn, result: Result<(), AccountError>) -> Response {
    let lang = me.ctx.lang;
    match result {
        Ok(()) => see_other_to("/admin"),
        Err(AccountError::Denied(_)) => {
            super::extract::forbidden_page(lang, me, &lang.t("admins-only"))
        }
        Err(e @ (AccountError::Invalid(_) | AccountError::NotFound(_))) => {
            let text = lang.t_with("admin-refused", &[("reason", &e.to_string())]);
            render(portal, me, StatusCode::BAD_REQUEST, Some(&text)).await
        }
        Err(e) => {
            tracing::error!(error = %e, "an admin change at the portal");
            server_error(lang)
        }
    }
}

/// `POST /admin/users/{username}/enable|disable`.
pub async fn set_enabled(
    State(portal): State<Portal>,
    Path((username, action)): Path<(String, String)>,
    posted: Posted<serde::de::IgnoredAny>,
) -> Response {
    let me = posted.me;
    let enabled = match action.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return super::pages::fallback_for(&me),
    };
    let result = portal
        .accounts
        .set_user_enabled(&me.actor(), &username, enabled)
        .await
        .map(|_| ());
    after(&portal, &me, result).await
}

#[derive(Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    username: String,
}

/// `POST /admin/groups/{name}/members` (`username`).
pub async fn add_member(
    State(portal): State<Portal>,
    Path(group): Path<String>,
    posted: Posted<MemberForm>,
) -> Response {
    let me = posted.me;
    let result = portal
        .accounts
        .set_member(&me.actor(), &group, posted.form.username.trim(), true)
        .await
        .map(|_| ());
    after(&portal, &me, result).await
}

/// `POST /admin/groups/{name}/members/{username}/remove`.
pub async fn remove_member(
    State(portal): State<Portal>,
    Path((group, username)): Path<(String, String)>,
    posted: Posted<serde::de::IgnoredAny>,
) -> Response {
    let me = posted.me;
    let result = portal
        .accounts
        .set_member(&me.actor(), &group, &username, false)
        .await
        .map(|_| ());
    after(&portal, &me, result).await
}

// ---- API ----

fn answer<T: serde::Serialize>(result: Result<T, AccountError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => super::api::error(e),
    }
}

/// `GET /api/v1/users`.
pub async fn api_users(State(portal): State<Portal>, me: ApiUser) -> Response {
    answer(portal.accounts.users(&me.actor()).await)
}

/// `GET /api/v1/users/{username}`.
pub async fn api_user(
    State(portal): State<Portal>,
    me: ApiUser,
    Path(username): Path<String>,
) -> Response {
    answer(portal.accounts.user(&me.actor(), &username).await)
}

/// `PATCH /api/v1/users/{username}` `{"disabled": bool}` (or
/// `{"enabled": bool}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub disabled: Option<bool>,
    pub enabled: Option<bool>,
}

pub async fn api_patch_user(
    State(portal): State<Portal>,
    me: ApiUser,
    Path(username): Path<String>,
    body: Result<Json<UserPatch>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let enabled = match body {
        Ok(Json(UserPatch {
            disabled: Some(d),
            enabled: None,
        })) => !d,
        Ok(Json(UserPatch {
            disabled: None,
            enabled: Some(e),
        })) => e,
        _ => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "the body must be {\"disabled\": true|false}",
            )
        }
    };
    answer(
        portal
            .accounts
            .set_user_enabled(&me.actor(), &username, enabled)
            .await,
    )
}

/// `GET /api/v1/groups`.
pub async fn api_groups(State(portal): State<Portal>, me: ApiUser) -> Response {
    answer(portal.accounts.groups(&me.actor()).await)
}

/// `POST /api/v1/groups/{name}/members/{username}`.
pub async fn api_add_member(
    State(portal): State<Portal>,
    me: ApiUser,
    Path((group, username)): Path<(String, String)>,
) -> Response {
    answer(
        portal
            .accounts
            .set_member(&me.actor(), &group, &username, true)
            .await,
    )
}

/// `DELETE /api/v1/groups/{name}/members/{username}`.
pub async fn api_remove_member(
    State(portal): State<Portal>,
    me: ApiUser,
    Path((group, username)): Path<(String, String)>,
) -> Response {
    answer(
        portal
            .accounts
            .set_member(&me.actor(), &group, &username, false)
            .await,
    )
}

/// `GET /api/v1/users/{username}/sessions`: that user's portal sessions
/// and LDAP connections (admins; the user themself too).
pub async fn api_user_sessions(
    State(portal): State<Portal>,
    me: ApiUser,
    Path(username): Path<String>,
) -> Response {
    answer(portal.accounts.own_sessions(&me.actor(), &username).await)
}

/// `DELETE /api/v1/users/{username}/sessions/{id}`: 204.
pub async fn api_end_user_session(
    State(portal): State<Portal>,
    me: ApiUser,
    Path((username, id)): Path<(String, String)>,
) -> Response {
    match portal
        .accounts
        .end_own_session(&me.actor(), &username, &id)
        .await
    {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => super::api::error(e),
    }
}
