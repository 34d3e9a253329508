//! Sign-in and sign-out. `GET /login` shows username and password (or,
//! while a right password waits for its code, the code step); `POST
//! /login` takes either step. The password step's form is posted before
//! any session exists, so its CSRF token pairs with a cookie of its own
//! (double submit). Every refusal — unknown user, wrong password, wrong
//! code, disabled or throttled account, an app password or API token
//! typed as the password — gives the same text and never the code step.
//! A successful step always opens a session with a new random id: a
//! value set in the browser before (session fixation) never signs in.

use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::extract::{bad_request, forbidden, server_error, Ctx, Posted, SignedIn};
use super::{
    cookie_value, html, same_token, see_other, views, Portal, LOGIN_COOKIE, SESSION_COOKIE,
};
use crate::account::sessions::{CurrentSession, SessionToken};
use crate::account::Actor;
use crate::auth::portal::SignIn;
use crate::auth::{Refusal, Secret};
use crate::domain::User;

/// `GET /login`.
pub async fn form(State(portal): State<Portal>, ctx: Ctx, headers: HeaderMap) -> Response {
    match &ctx.session {
        Some(s) if !s.session.pending_code => see_other("/"),
        Some(s) => html(views::code(ctx.lang, &s.session.csrf)),
        None => {
            let kept = cookie_value(&headers, LOGIN_COOKIE);
            password_form(&portal, &ctx, None, "", kept.as_deref())
        }
    }
}

/// The first step's form and its token's cookie. A token the browser
/// already holds is kept: every other request of the page (its favicon,
/// another tab, a reload) would otherwise replace the cookie under the form
/// being filled in, and its first submission would fail.
fn password_form(
    portal: &Portal,
    ctx: &Ctx,
    error: Option<&str>,
    username: &str,
    kept: Option<&str>,
) -> Response {
    let token = match kept.filter(|t| SessionToken::parse(t).is_some()) {
        Some(t) => t.to_string(),
        None => SessionToken::random_text(),
    };
    let mut res = html(views::login(ctx.lang, &token, error, username));
    res.headers_mut().append(
        header::SET_COOKIE,
        portal.cookie(ctx, LOGIN_COOKIE, Some(&token)),
    );
    res
}

/// The one answer to every refused sign-in.
fn refused(portal: &Portal, ctx: &Ctx, username: &str, login_token: Option<&str>) -> Response {
    let mut res = password_form(
        portal,
        ctx,
        Some(&ctx.lang.t("login-error")),
        username,
        login_token,
    );
    *res.status_mut() = StatusCode::UNAUTHORIZED;
    res
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    code: Option<String>,
}

/// `POST /login`: the password step, or with `code` the code step.
pub async fn submit(
    State(portal): State<Portal>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<LoginForm>(&body) else {
        return bad_request();
    };
    match (&ctx.session, form.code.as_deref()) {
        (Some(s), _) if !s.session.pending_code => see_other("/"),
        (Some(pending), Some(code)) => {
            if !same_token(&form.csrf, &pending.session.csrf) {
                return forbidden(ctx.lang, None);
            }
            code_step(&portal, &ctx, pending, code).await
        }
        _ => {
            let paired =
                cookie_value(&headers, LOGIN_COOKIE).is_some_and(|c| same_token(&form.csrf, &c));
            if !paired {
                return forbidden(ctx.lang, None);
            }
            password_step(&portal, &ctx, &form.username, form.password, &form.csrf).await
        }
    }
}

async fn password_step(
    portal: &Portal,
    ctx: &Ctx,
    username: &str,
    password: String,
    login_token: &str,
) -> Response {
    let username = username.trim();
    let decided = portal
        .auth
        .sign_in_password(username, &Secret(password), ctx.peer, SystemTime::now())
        .await;
    // A session the browser still held (a pending code step) ends.
    if let Some(old) = &ctx.session {
        let _ = portal.accounts.end_session(&old.token).await;
    }
    match decided {
        SignIn::Done { user, method } => {
            audit_success(&user, ctx, method.as_str());
            open(portal, ctx, &user, false, "/").await
        }
        SignIn::NeedsCode { user } => open(portal, ctx, &user, true, "/login").await,
        SignIn::Refused { reason } => {
            audit_refusal(username, ctx, "password", reason);
            refused(portal, ctx, username, Some(login_token))
        }
    }
}

async fn code_step(portal: &Portal, ctx: &Ctx, pending: &CurrentSession, code: &str) -> Response {
    let user = &pending.user;
    let decided = portal
        .auth
        .sign_in_code(
            user.id,
            &user.username,
            &Secret(code.to_string()),
            ctx.peer,
            SystemTime::now(),
        )
        .await;
    // The pending session is used up either way: a wrong code starts over.
    if let Err(e) = portal.accounts.end_session(&pending.token).await {
        tracing::error!(error = %e, "ending a pending portal session");
        return server_error(ctx.lang);
    }
    match decided {
        SignIn::Done { user, method } => {
            audit_success(&user, ctx, method.as_str());
            open(portal, ctx, &user, false, "/").await
        }
        SignIn::NeedsCode { .. } => refused(portal, ctx, "", None),
        SignIn::Refused { reason } => {
            audit_refusal(&user.username, ctx, "code", reason);
            refused(portal, ctx, "", None)
        }
    }
}

/// Opens a session (a new random id) and sends the browser on to `to`.
async fn open(
    portal: &Portal,
    ctx: &Ctx,
    user: &User,
    pending: bool,
    to: &'static str,
) -> Response {
    let opened = portal
        .accounts
        .open_session(
            &Actor::System,
            user,
            pending,
            &ctx.client(),
            crate::domain::now(),
        )
        .await;
    match opened {
        Ok((token, _)) => {
            let mut res = see_other(to);
            let h = res.headers_mut();
            h.append(
                header::SET_COOKIE,
                portal.cookie(ctx, SESSION_COOKIE, Some(token.as_str())),
            );
            h.append(header::SET_COOKIE, portal.cookie(ctx, LOGIN_COOKIE, None));
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "opening a portal session");
            server_error(ctx.lang)
        }
    }
}

fn audit_success(user: &User, ctx: &Ctx, method: &str) {
    tracing::info!(target: "portcullis::audit", user = %user.username, peer = %ctx.peer, method, outcome = "success", "portal sign-in");
}

fn audit_refusal(username: &str, ctx: &Ctx, step: &str, reason: Refusal) {
    tracing::info!(target: "portcullis::audit", user = %username, peer = %ctx.peer, step, outcome = "refused", reason = reason.as_str(), "portal sign-in");
}

/// `GET /logout`: the "Sign out" button alone; it does not sign out.
pub async fn confirm(me: SignedIn) -> Response {
    html(views::logout(me.ctx.lang, me.csrf()))
}

/// `POST /logout`: ends the session on the server, drops the cookie.
pub async fn sign_out(
    State(portal): State<Portal>,
    posted: Posted<serde::de::IgnoredAny>,
) -> Response {
    let me = posted.me;
    if let Err(e) = portal.accounts.end_session(&me.current.token).await {
        tracing::error!(error = %e, "ending a portal session");
        return server_error(me.ctx.lang);
    }
    tracing::info!(target: "portcullis::audit", user = %me.current.user.username, peer = %me.ctx.peer, "portal sign-out");
    let mut res = see_other("/login");
    res.headers_mut().append(
        header::SET_COOKIE,
        portal.cookie(&me.ctx, SESSION_COOKIE, None),
    );
    res.into_response()
}
