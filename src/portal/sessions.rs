//! Sessions: `/settings/sessions` lists the user's portal sessions (this
//! browser's says "Current session") and the LDAP connections bound as
//! the user, each with "Sign out"; `/api/v1/me/sessions` does the same.
//! Ending another portal session signs that browser out at its next
//! request, ending this one signs out, ending an LDAP row closes that
//! connection at once.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::html;
use serde::Serialize;

use super::extract::{server_error, ApiUser, Posted, SignedIn};
use super::views::{page, when};
use super::{html, see_other, see_other_to, Portal, SESSION_COOKIE};
use crate::account::own::EndedSession;
use crate::account::view::SessionView;
use crate::account::AccountError;

/// `GET /settings/sessions`.
pub async fn list(State(portal): State<Portal>, me: SignedIn) -> Response {
    let lang = me.ctx.lang;
    let rows = match portal
        .accounts
        .own_sessions(&me.actor(), &me.current.user.username)
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "listing a user's sessions");
            return server_error(lang);
        }
    };
    let current = me.current.session.id.0.to_string();
    let nav = me.nav();
    let body = html! {
        h1 { (lang.t("sessions")) }
        p.hint { (lang.t("sessions-hint")) }
        ul.rows {
            @for s in &rows {
                li {
                    div.what {
                        strong {
                            @if s.kind == "ldap" { "LDAP" } @else { (lang.t("portal-session")) }
                            @if s.id == current { span.tag { (lang.t("current-session")) } }
                        }
                        p.meta {
                            (lang.t("address")) ": " (s.address)
                            @if let Some(agent) = s.user_agent.as_deref().filter(|a| !a.is_empty()) {
                                " · " (lang.t("browser")) ": " (agent)
                            }
                        }
                        p.meta {
                            (lang.t(if s.kind == "ldap" { "bound-at" } else { "created" })) ": "
                            (when(s.created.as_deref()))
                            " · " (lang.t("last-seen")) ": " (when(s.last_seen.as_deref()))
                        }
                    }
                    form.inline method="post" action=(format!("/settings/sessions/{}/delete", s.id)) {
                        input type="hidden" name="csrf" value=(nav.csrf);
                        button.danger type="submit" { (lang.t("sign-out")) }
                    }
                }
            }
        }
    };
    html(page(lang, &lang.t("sessions"), Some(&nav), body))
}

/// `POST /settings/sessions/{id}/delete`: this browser's session signs
/// out (to `/login`); any other row ends and the list comes back.
pub async fn delete(
    State(portal): State<Portal>,
    Path(id): Path<String>,
    posted: Posted<serde::de::IgnoredAny>,
) -> Response {
    let me = posted.me;
    let is_current = me.current.session.id.0.to_string() == id.trim();
    match portal
        .accounts
        .end_own_session(&me.actor(), &me.current.user.username, &id)
        .await
    {
        Ok(EndedSession::Portal) if is_current => {
            let mut res = see_other("/login");
            res.headers_mut().append(
                header::SET_COOKIE,
                portal.cookie(&me.ctx, SESSION_COOKIE, None),
            );
            res
        }
        Ok(_) | Err(AccountError::NotFound(_)) => see_other_to("/settings/sessions"),
        Err(e) => {
            tracing::error!(error = %e, "ending a session at the portal");
            server_error(me.ctx.lang)
        }
    }
}

/// An element of `GET /api/v1/me/sessions`.
#[derive(Debug, Serialize)]
pub struct SessionItem {
    pub id: String,
    /// `portal` or `ldap`.
    pub kind: String,
    pub address: String,
    pub created: Option<String>,
    pub last_seen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The session that made this request.
    pub current: bool,
}

fn item(s: SessionView, current: Option<&str>) -> SessionItem {
    SessionItem {
        current: current == Some(s.id.as_str()),
        id: s.id,
        kind: s.kind,
        address: s.address,
        created: s.created,
        last_seen: s.last_seen,
        user_agent: s.user_agent,
    }
}

/// `GET /api/v1/me/sessions`.
pub async fn api_list(State(portal): State<Portal>, me: ApiUser) -> Response {
    let current = me.session.as_ref().map(|s| s.session.id.0.to_string());
    match portal
        .accounts
        .own_sessions(&me.actor(), me.username())
        .await
    {
        Ok(rows) => Json(
            rows.into_iter()
                .map(|s| item(s, current.as_deref()))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => super::api::error(e),
    }
}

/// `DELETE /api/v1/me/sessions/{id}`: 204, or 404 for anything that is
/// not one of the caller's sessions.
pub async fn api_delete(
    State(portal): State<Portal>,
    me: ApiUser,
    Path(id): Path<String>,
) -> Response {
    match portal
        .accounts
        .end_own_session(&me.actor(), me.username(), &id)
        .await
    {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => super::api::error(e),
    }
}
