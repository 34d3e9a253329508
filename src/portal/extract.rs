//! What a handler gets from a request: its context ([`Ctx`]: language,
//! client, session), the signed-in user ([`SignedIn`], else 303 to
//! `/login`), a form checked against the session's CSRF token
//! ([`Posted`], else 403), and the API's caller ([`ApiUser`]: a session,
//! whose writes need `X-CSRF-Token`, or a Bearer API token; else 401).

use std::net::{IpAddr, Ipv4Addr};

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

use super::i18n::Lang;
use super::{cookie_value, same_token, see_other, views, Portal, SESSION_COOKIE};
use crate::account::sessions::{Client, CurrentSession};
use crate::account::Actor;
use crate::directory::Identity;
use crate::domain::User;
use crate::http::Peer;

pub use crate::account::profile::LOCALE_ATTR;

/// The request's context: who asks, from where, in which language.
pub struct Ctx {
    pub lang: Lang,
    pub peer: IpAddr,
    pub user_agent: String,
    /// The live session the browser presented, if any (also one still
    /// waiting for its code).
    pub session: Option<CurrentSession>,
    /// The `Accept-Language` header, for a language re-chosen after a
    /// change of locale.
    pub accept_language: Option<String>,
    /// The request came over HTTPS (ours, or a trusted proxy's): cookies
    /// are then `Secure`.
    pub https: bool,
}

impl Ctx {
    pub fn client(&self) -> Client {
        Client {
            address: self.peer.to_string(),
            user_agent: self.user_agent.clone(),
        }
    }
}

impl FromRequestParts<Portal> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, portal: &Portal) -> Result<Ctx, Response> {
        let header_text = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let accept_language = header_text(header::ACCEPT_LANGUAGE);
        let peer = parts
            .extensions
            .get::<Peer>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.ip());
        let session = match cookie_value(&parts.headers, SESSION_COOKIE) {
            Some(cookie) => portal
                .accounts
                .current_session(&cookie, crate::domain::now())
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "reading a portal session");
                    server_error(Lang::choose(None, accept_language.as_deref()))
                })?,
            None => None,
        };
        let locale = session
            .as_ref()
            .and_then(|s| s.user.attrs.get(LOCALE_ATTR).map(str::to_string));
        Ok(Ctx {
            lang: Lang::choose(locale.as_deref(), accept_language.as_deref()),
            peer,
            user_agent: header_text(header::USER_AGENT).unwrap_or_default(),
            session,
            accept_language,
            https: parts
                .extensions
                .get::<crate::http::Https>()
                .is_some_and(|h| h.0),
        })
    }
}

/// A signed-in browser: a live session whose sign-in is complete.
pub struct SignedIn {
    pub ctx: Ctx,
    pub current: CurrentSession,
}

impl SignedIn {
    /// The acting party for the account layer: the user themself.
    pub fn actor(&self) -> Actor {
        Actor::Bound(Identity::User {
            id: self.current.user.id,
            username: self.current.user.username.clone(),
        })
    }

    pub fn csrf(&self) -> &str {
        &self.current.session.csrf
    }

    pub fn nav(&self) -> views::Nav<'_> {
        views::Nav { csrf: self.csrf() }
    }
}

impl FromRequestParts<Portal> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, portal: &Portal) -> Result<SignedIn, Response> {
        let mut ctx = Ctx::from_request_parts(parts, portal).await?;
        match ctx.session.take() {
            Some(current) if !current.session.pending_code => Ok(SignedIn { ctx, current }),
            _ => Err(see_other("/login")),
        }
    }
}

/// A form posted by a signed-in browser, with the session's CSRF token in
/// its `csrf` field; without it (or with another) the answer is 403.
pub struct Posted<T> {
    pub me: SignedIn,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<Portal> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, portal: &Portal) -> Result<Posted<T>, Response> {
        let (mut parts, body) = req.into_parts();
        let me = SignedIn::from_request_parts(&mut parts, portal).await?;
        let lang = me.ctx.lang;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), portal)
            .await
            .map_err(IntoResponse::into_response)?;
        let fields: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&bytes).map_err(|_| bad_request())?;
        let token = fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        if !same_token(token, me.csrf()) {
            return Err(forbidden(lang, Some(&me)));
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|_| bad_request())?;
        Ok(Posted { me, form })
    }
}

/// The caller of an API request: a signed-in session (its writes carry
/// `X-CSRF-Token`) or an API token as `Authorization: Bearer` (no CSRF:
/// a browser never adds that header by itself). Without either, or with a
/// bearer value that is not a live API token (an app password, a revoked
/// or expired token): 401 `{"error": …}`.
pub struct ApiUser {
    pub ctx: Ctx,
    pub user: User,
    /// The browser's session, when the cookie authenticated.
    pub session: Option<CurrentSession>,
}

impl ApiUser {
    /// The acting party for the account layer: the user themself.
    pub fn actor(&self) -> Actor {
        Actor::Bound(Identity::User {
            id: self.user.id,
            username: self.user.username.clone(),
        })
    }

    pub fn username(&self) -> &str {
        &self.user.username
    }
}

/// The value of `Authorization: Bearer <value>`, if the request has one.
fn bearer(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

impl FromRequestParts<Portal> for ApiUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, portal: &Portal) -> Result<ApiUser, Response> {
        let unauthorized = || api_error(StatusCode::UNAUTHORIZED, "authentication required");
        let mut ctx = Ctx::from_request_parts(parts, portal).await?;
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let Some(token) = bearer(parts) else {
                return Err(unauthorized());
            };
            let found = portal.accounts.api_token_user(&token, ctx.peer).await;
            return match found {
                Ok(Some(user)) => Ok(ApiUser {
                    ctx,
                    user,
                    session: None,
                }),
                Ok(None) => Err(unauthorized()),
                Err(e) => {
                    tracing::error!(error = %e, "checking an API token");
                    Err(api_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal error",
                    ))
                }
            };
        }
        let current = match ctx.session.take() {
            Some(current) if !current.session.pending_code => current,
            _ => return Err(unauthorized()),
        };
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let token = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !same_token(token, &current.session.csrf) {
                return Err(api_error(
                    StatusCode::FORBIDDEN,
                    "the X-CSRF-Token header is missing or wrong",
                ));
            }
        }
        Ok(ApiUser {
            ctx,
            user: current.user.clone(),
            session: Some(current),
        })
    }
}

/// An API error: `{"error": text}` with `status`.
pub fn api_error(status: StatusCode, text: &str) -> Response {
    (status, Json(serde_json::json!({ "error": text }))).into_response()
}

pub fn bad_request() -> Response {
    (StatusCode::BAD_REQUEST, "malformed form\n").into_response()
}

/// 403: a form without the session's token.
pub fn forbidden(lang: Lang, me: Option<&SignedIn>) -> Response {
    let nav = me.map(SignedIn::nav);
    (
        StatusCode::FORBIDDEN,
        super::html(views::message(lang, nav.as_ref(), &lang.t("forbidden"))),
    )
        .into_response()
}

/// 403: a signed-in user asked for what only others may do.
pub fn forbidden_page(lang: Lang, me: &SignedIn, text: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        super::html(views::message(lang, Some(&me.nav()), text)),
    )
        .into_response()
}

pub fn server_error(lang: Lang) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        super::html(views::message(lang, None, &lang.t("server-error"))),
    )
        .into_response()
}
