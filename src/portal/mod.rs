//! The self-service portal (issue 13, `shared/PORTAL.md`): server-rendered
//! pages and the JSON API under `/api/v1`, mounted by `serve` on the HTTP
//! listener next to `/metrics` and `/healthz`.
//!
//! The portal translates HTTP into calls on the account layer
//! (`crate::account::Accounts`, with an `Actor`) and the auth layer
//! (`crate::auth::Authenticator`, the same one LDAP binds use, so codes
//! and throttling are shared). It never touches the store.
//!
//! Layout:
//! - this file: the state ([`Portal`]), the router, the headers every
//!   response carries, cookies.
//! - `extract`: the request's context (language, client, session) and the
//!   extractors a handler cannot forget: the signed-in user (else 303 to
//!   `/login`, or 401 for the API) and the CSRF-checked form (else 403).
//! - `login`: sign-in (password, then a code when the user has a device)
//!   and sign-out.
//! - `pages`: "My applications" and the user's details.
//! - `password`: change password (page and API).
//! - `mfa`: MFA devices: list, TOTP enrolment, static tokens, delete.
//! - `tokens`: app passwords and API tokens.
//! - `sessions`: the user's portal sessions and LDAP connections.
//! - `admin`: the minimal admin page and `/api/v1/users|groups`.
//! - `openapi`: the API's description, `/api/v1/openapi.json`.
//! - `api`: `/api/v1` (`/me`; the other areas' API handlers sit with
//!   their pages).
//! - `views`: the HTML (maud); `i18n`: the message catalogues.
//!
//! Not yet here (seams): HTTPS on the portal (cookies get
//! `Secure` over HTTPS: [`Ctx::https`]) and
//! `X-Forwarded-*` from trusted proxies.

mod admin;
mod api;
mod extract;
pub mod i18n;
mod login;
mod mfa;
mod openapi;
mod pages;
mod password;
mod sessions;
mod tokens;
mod views;

#[cfg(test)]
mod tests;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;

use crate::account::Accounts;
use crate::auth::Authenticator;

pub use extract::{Ctx, SignedIn};

/// The session cookie.
pub const SESSION_COOKIE: &str = "portcullis_session";
/// The cookie that pairs with the sign-in form's CSRF token (the form is
/// posted before any session exists).
pub const LOGIN_COOKIE: &str = "portcullis_login";

/// The policy every portal response carries: nothing but our own
/// stylesheet (and, later, our own scripts); no inline script, no frames.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the portal's handlers share. Cheap to clone.
#[derive(Clone)]
pub struct Portal {
    accounts: Accounts,
    auth: Authenticator,
}

impl Portal {
    /// `auth` must be the authenticator LDAP binds use (shared throttle).
    pub fn new(accounts: Accounts, auth: Authenticator) -> Portal {
        Portal { accounts, auth }
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, and Secure
    /// when the request came over HTTPS (`portal.tls`, or a trusted proxy
    /// that says so: [`Ctx::https`]); `None` removes the cookie.
    fn cookie(&self, ctx: &Ctx, name: &str, value: Option<&str>) -> HeaderValue {
        let secure = if ctx.https { "; Secure" } else { "" };
        let text = match value {
            Some(v) => format!("{name}={v}; HttpOnly; SameSite=Lax; Path=/{secure}"),
            None => format!("{name}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{secure}"),
        };
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The portal's routes, to be merged with the listener's own.
pub fn router(portal: Portal) -> Router {
    Router::new()
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", get(login::confirm).post(login::sign_out))
        .route("/", get(pages::home))
        .route("/settings", get(pages::settings).post(pages::save_settings))
        .route(
            "/settings/password",
            get(password::show).post(password::change),
        )
        .route("/settings/mfa", get(mfa::list))
        .route("/settings/mfa/totp", post(mfa::begin_totp))
        .route(
            "/settings/mfa/totp/{id}",
            get(mfa::show_totp).post(mfa::confirm_totp),
        )
        .route("/settings/mfa/static", post(mfa::add_static))
        .route(
            "/settings/mfa/{id}/delete",
            get(mfa::confirm_delete).post(mfa::delete),
        )
        .route(
            "/settings/mfa/{id}/rename",
            get(mfa::rename_form).post(mfa::rename),
        )
        .route("/settings/tokens", get(tokens::list))
        .route(
            "/settings/tokens/new",
            get(tokens::new_form).post(tokens::create),
        )
        .route("/settings/tokens/{id}/revoke", post(tokens::revoke))
        .route("/settings/sessions", get(sessions::list))
        .route("/settings/sessions/{id}/delete", post(sessions::delete))
        .route("/admin", get(admin::show))
        .route("/admin/users/{username}/{action}", post(admin::set_enabled))
        .route("/admin/groups/{name}/members", post(admin::add_member))
        .route(
            "/admin/groups/{name}/members/{username}/remove",
            post(admin::remove_member),
        )
        .route("/api/v1/users", get(admin::api_users))
        .route(
            "/api/v1/users/{username}",
            get(admin::api_user).patch(admin::api_patch_user),
        )
        .route(
            "/api/v1/users/{username}/sessions",
            get(admin::api_user_sessions),
        )
        .route(
            "/api/v1/users/{username}/sessions/{id}",
            delete(admin::api_end_user_session),
        )
        .route("/api/v1/groups", get(admin::api_groups))
        .route(
            "/api/v1/groups/{name}/members/{username}",
            post(admin::api_add_member).delete(admin::api_remove_member),
        )
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/me", get(api::me).patch(api::patch_me))
        .route("/api/v1/me/password", post(password::api_change))
        .route("/api/v1/me/sessions", get(sessions::api_list))
        .route("/api/v1/me/sessions/{id}", delete(sessions::api_delete))
        .route("/api/v1/me/mfa", get(mfa::api_list))
        .route("/api/v1/me/mfa/totp", post(mfa::api_begin_totp))
        .route(
            "/api/v1/me/mfa/totp/{id}/confirm",
            post(mfa::api_confirm_totp),
        )
        .route("/api/v1/me/mfa/static", post(mfa::api_add_static))
        .route(
            "/api/v1/me/mfa/{id}",
            delete(mfa::api_delete).patch(mfa::api_rename),
        )
        .route(
            "/api/v1/me/app-passwords",
            get(tokens::api_list_app_passwords).post(tokens::api_create_app_password),
        )
        .route(
            "/api/v1/me/app-passwords/{id}",
            delete(tokens::api_revoke_app_password),
        )
        .route(
            "/api/v1/me/tokens",
            get(tokens::api_list_tokens).post(tokens::api_create_token),
        )
        .route("/api/v1/me/tokens/{id}", delete(tokens::api_revoke_token))
        .route("/static/portal.css", get(stylesheet))
        .route("/static/portal.js", get(script))
        // Browsers ask for it on every page; no icon (and no redirect to
        // the sign-in page, which a browser would follow for nothing).
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(pages::fallback)
        .layer(middleware::from_fn(security_headers))
        .with_state(portal)
}

/// The stylesheet, compiled in.
async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("portal.css"),
    )
        .into_response()
}

/// The pages' one script (the "Copy" button), compiled in.
async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("portal.js"),
    )
        .into_response()
}

/// The headers of every portal response: the CSP, nosniff, no referrer,
/// and `Cache-Control: no-store` unless the handler chose (pages may hold
/// personal data; only the stylesheet is cached).
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// A page as a response.
fn html(markup: maud::Markup) -> Response {
    axum::response::Html(markup.into_string()).into_response()
}

/// A 303 to `to`.
fn see_other(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

/// A 303 to a path made at run time.
fn see_other_to(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => see_other("/"),
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie_value(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// Equal without telling by timing how much of it matched.
fn same_token(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
