//! Change password: `GET/POST /settings/password` and `POST
//! /api/v1/me/password`. The account layer checks the current password
//! (throttled like a bind), the policy, hashes off the reactor and ends
//! the user's other portal sessions; this browser stays signed in.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::{html, Markup};
use serde::Deserialize;

use super::extract::{api_error, server_error, ApiUser, Posted, SignedIn};
use super::i18n::Lang;
use super::views::{alert, page, Nav};
use super::{html, Portal};
use crate::account::AccountError;
use crate::auth::Secret;

fn form(lang: Lang, nav: &Nav<'_>, min_length: usize, error: Option<&str>, done: bool) -> Markup {
    let body = html! {
        h1 { (lang.t("change-password")) }
        div.card {
            @if done { p role="status" { (lang.t("password-changed")) } }
            (alert(error))
            p.hint { (lang.t_with("password-hint", &[("min", &min_length.to_string())])) }
            form method="post" action="/settings/password" {
                input type="hidden" name="csrf" value=(nav.csrf);
                label for="current" { (lang.t("current-password")) }
                input #current type="password" name="current" autocomplete="current-password" required;
                label for="new" { (lang.t("new-password")) }
                input #new type="password" name="new" autocomplete="new-password" required;
                label for="confirm" { (lang.t("confirm-password")) }
                input #confirm type="password" name="confirm" autocomplete="new-password" required;
                div.actions { button type="submit" { (lang.t("change-password")) } }
            }
        }
    };
    page(lang, &lang.t("change-password"), Some(nav), body)
}

/// `GET /settings/password`.
pub async fn show(State(portal): State<Portal>, me: SignedIn) -> Response {
    let min = portal.accounts.settings().password.min_length;
    html(form(me.ctx.lang, &me.nav(), min, None, false))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /settings/password`.
pub async fn change(State(portal): State<Portal>, posted: Posted<PasswordForm>) -> Response {
    let (me, f) = (posted.me, posted.form);
    let lang = me.ctx.lang;
    let min = portal.accounts.settings().password.min_length;
    let refuse = |status: StatusCode, text: String| {
        (status, html(form(lang, &me.nav(), min, Some(&text), false))).into_response()
    };
    if f.new != f.confirm {
        return refuse(StatusCode::BAD_REQUEST, lang.t("passwords-differ"));
    }
    let changed = portal
        .accounts
        .change_own_password(
            &me.actor(),
            &Secret(f.current),
            Secret(f.new),
            me.ctx.peer,
            Some(&me.current.token),
        )
        .await;
    match changed {
        Ok(_) => html(form(lang, &me.nav(), min, None, true)),
        Err(e) => match refusal_text(lang, &e) {
            Some((status, text)) => refuse(status, text),
            None => {
                tracing::error!(error = %e, "changing a password at the portal");
                server_error(lang)
            }
        },
    }
}

/// The page's text for a refused change; `None` for a server fault.
fn refusal_text(lang: Lang, e: &AccountError) -> Option<(StatusCode, String)> {
    Some(match e {
        AccountError::InvalidCredentials => {
            (StatusCode::FORBIDDEN, lang.t("current-password-wrong"))
        }
        AccountError::Password(reason) => (
            StatusCode::BAD_REQUEST,
            lang.t_with("password-refused", &[("reason", &reason.to_string())]),
        ),
        AccountError::Invalid(reason) => (
            StatusCode::BAD_REQUEST,
            lang.t_with("password-refused", &[("reason", reason)]),
        ),
        AccountError::Busy => (StatusCode::SERVICE_UNAVAILABLE, lang.t("busy")),
        _ => return None,
    })
}

/// `POST /api/v1/me/password` `{"current", "new"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    pub current: String,
    pub new: String,
}

/// `POST /api/v1/me/password`: 204 on success. A bearer caller keeps no
/// session, so every portal session of the user ends (when configured).
pub async fn api_change(
    State(portal): State<Portal>,
    me: ApiUser,
    body: Result<Json<PasswordChangeRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "the body must be {\"current\": …, \"new\": …}",
        );
    };
    let keep = me.session.as_ref().map(|s| &s.token);
    match portal
        .accounts
        .change_own_password(
            &me.actor(),
            &Secret(req.current),
            Secret(req.new),
            me.ctx.peer,
            keep,
        )
        .await
    {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(AccountError::InvalidCredentials) => {
            api_error(StatusCode::FORBIDDEN, "the current password is wrong")
        }
        Err(e) => super::api::error(e),
    }
}
