//! "My applications" (`GET /`) and the user's details (`GET/POST
//! /settings`), and the answer to any other path.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::extract::{server_error, Ctx, Posted, SignedIn};
use super::i18n::Lang;
use super::{html, see_other, views, Portal};
use crate::account::profile::ProfileChange;
use crate::account::AccountError;

/// `GET /`: admins also get a link to the admin page.
pub async fn home(State(portal): State<Portal>, me: SignedIn) -> Response {
    let user = &me.current.user;
    let name = user.full_name.as_deref().unwrap_or(&user.username);
    let admin = match portal.accounts.may_administer(&me.actor()).await {
        Ok(admin) => admin,
        Err(e) => {
            tracing::error!(error = %e, "deciding whether a user is an admin");
            false
        }
    };
    html(views::home(me.ctx.lang, &me.nav(), name, admin))
}

/// `GET /settings`.
pub async fn settings(State(portal): State<Portal>, me: SignedIn) -> Response {
    match portal
        .accounts
        .profile(&me.actor(), &me.current.user.username)
        .await
    {
        Ok(profile) => html(views::settings(
            me.ctx.lang,
            &me.nav(),
            &views::SettingsView {
                profile: &profile,
                saved: false,
                error: None,
            },
        )),
        Err(e) => {
            tracing::error!(error = %e, "reading a user's details");
            server_error(me.ctx.lang)
        }
    }
}

/// The details form. A field left out is no change.
#[derive(Deserialize)]
pub struct DetailsForm {
    username: Option<String>,
    name: Option<String>,
    email: Option<String>,
    locale: Option<String>,
}

/// `POST /settings`: a change the user may not make (a tampered form) is
/// refused with 403 and changes nothing.
pub async fn save_settings(State(portal): State<Portal>, posted: Posted<DetailsForm>) -> Response {
    let (me, form) = (posted.me, posted.form);
    let change = ProfileChange {
        username: form.username,
        name: form.name,
        email: form.email,
        locale: form.locale,
    };
    let updated = portal
        .accounts
        .update_profile(&me.actor(), &me.current.user.username, change)
        .await;
    let (status, saved, error, profile) = match updated {
        Ok(p) => (StatusCode::OK, true, None, Some(p)),
        Err(AccountError::Denied(_)) => (
            StatusCode::FORBIDDEN,
            false,
            Some(me.ctx.lang.t("not-allowed")),
            None,
        ),
        Err(e @ (AccountError::Invalid(_) | AccountError::AlreadyExists(_))) => {
            let reason = e.to_string();
            (
                StatusCode::BAD_REQUEST,
                false,
                Some(
                    me.ctx
                        .lang
                        .t_with("invalid-details", &[("reason", &reason)]),
                ),
                None,
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "saving a user's details");
            return server_error(me.ctx.lang);
        }
    };
    // Refused: the details as they still are.
    let profile = match profile {
        Some(p) => p,
        None => match portal
            .accounts
            .profile(&me.actor(), &me.current.user.username)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "reading a user's details");
                return server_error(me.ctx.lang);
            }
        },
    };
    let lang = Lang::choose(profile.locale.as_deref(), me.ctx.accept_language.as_deref());
    let page = views::settings(
        lang,
        &me.nav(),
        &views::SettingsView {
            profile: &profile,
            saved,
            error,
        },
    );
    (status, html(page)).into_response()
}

/// 404 for a signed-in browser.
pub fn fallback_for(me: &SignedIn) -> Response {
    (
        StatusCode::NOT_FOUND,
        html(views::message(
            me.ctx.lang,
            Some(&me.nav()),
            &me.ctx.lang.t("not-found"),
        )),
    )
        .into_response()
}

/// Any other path: signed out, to `/login`; signed in, 404.
pub async fn fallback(ctx: Ctx) -> Response {
    match &ctx.session {
        Some(s) if !s.session.pending_code => {
            let nav = views::Nav {
                csrf: &s.session.csrf,
            };
            (
                StatusCode::NOT_FOUND,
                html(views::message(
                    ctx.lang,
                    Some(&nav),
                    &ctx.lang.t("not-found"),
                )),
            )
                .into_response()
        }
        _ => see_other("/login"),
    }
}
