//! Tokens and app passwords: `/settings/tokens` (both lists, "Create app
//! password", "Create token", "Revoke"), the creation form and the page
//! that shows a new secret once (with a "Copy" button, `portal.js`), and
//! `/api/v1/me/app-passwords` and `/api/v1/me/tokens`. Lifetimes (default,
//! maximum, the per-user attribute) are the account layer's rule.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use super::extract::{api_error, server_error, ApiUser, Posted, SignedIn};
use super::i18n::Lang;
use super::views::{alert, page, when, Nav};
use super::{html, see_other_to, Portal};
use crate::account::credentials::parse_expiry;
use crate::account::view::{AppPasswordAdded, AppPasswordView};
use crate::account::AccountError;
use crate::domain::CredentialKind;

/// The kind as forms and paths name it.
fn kind_param(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::AppPassword => "app-password",
        CredentialKind::ApiToken => "token",
    }
}

fn parse_kind(text: &str) -> Option<CredentialKind> {
    match text {
        "app-password" => Some(CredentialKind::AppPassword),
        "token" => Some(CredentialKind::ApiToken),
        _ => None,
    }
}

fn section(lang: Lang, nav: &Nav<'_>, kind: CredentialKind, list: &[AppPasswordView]) -> Markup {
    let (title, empty, create) = match kind {
        CredentialKind::AppPassword => ("app-passwords", "no-app-passwords", "create-app-password"),
        CredentialKind::ApiToken => ("api-tokens", "no-api-tokens", "create-token"),
    };
    html! {
        h2 { (lang.t(title)) }
        @if list.is_empty() {
            p.hint { (lang.t(empty)) }
        } @else {
            ul.rows {
                @for item in list {
                    li {
                        div.what {
                            strong { (item.name) }
                            p.meta {
                                (lang.t("created")) ": " (when(item.created.as_deref()))
                                " · " (lang.t("expires")) ": "
                                @if item.expires.is_some() { (when(item.expires.as_deref())) }
                                @else { (lang.t("no-expiry")) }
                                " · " (lang.t("last-used")) ": " (when(item.last_used.as_deref()))
                                @if kind == CredentialKind::AppPassword {
                                    @if let Some(from) = &item.last_used_from {
                                        " · " (lang.t("address")) ": " (from)
                                    }
                                }
                            }
                        }
                        form.inline method="post" action=(format!("/settings/tokens/{}/revoke", item.id)) {
                            input type="hidden" name="csrf" value=(nav.csrf);
                            input type="hidden" name="kind" value=(kind_param(kind));
                            button.danger type="submit" { (lang.t("revoke")) }
                        }
                    }
                }
            }
        }
        form.inline method="get" action="/settings/tokens/new" {
            input type="hidden" name="kind" value=(kind_param(kind));
            button type="submit" { (lang.t(create)) }
        }
    }
}

/// `GET /settings/tokens`.
pub async fn list(State(portal): State<Portal>, me: SignedIn) -> Response {
    let (actor, name, lang) = (me.actor(), &me.current.user.username, me.ctx.lang);
    let apps = portal
        .accounts
        .own_credentials(&actor, CredentialKind::AppPassword, name)
        .await;
    let tokens = portal
        .accounts
        .own_credentials(&actor, CredentialKind::ApiToken, name)
        .await;
    let (apps, tokens) = match (apps, tokens) {
        (Ok(a), Ok(t)) => (a, t),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "listing a user's tokens");
            return server_error(lang);
        }
    };
    let nav = me.nav();
    let body = html! {
        h1 { (lang.t("tokens")) }
        p.hint { (lang.t("tokens-hint")) }
        (section(lang, &nav, CredentialKind::AppPassword, &apps))
        (section(lang, &nav, CredentialKind::ApiToken, &tokens))
    };
    html(page(lang, &lang.t("tokens"), Some(&nav), body))
}

fn form_page(
    lang: Lang,
    nav: &Nav<'_>,
    kind: CredentialKind,
    label: &str,
    expires: &str,
    error: Option<&str>,
) -> Markup {
    let title = lang.t(match kind {
        CredentialKind::AppPassword => "create-app-password",
        CredentialKind::ApiToken => "create-token",
    });
    let body = html! {
        h1 { (title) }
        div.card {
            (alert(error))
            form method="post" action="/settings/tokens/new" {
                input type="hidden" name="csrf" value=(nav.csrf);
                input type="hidden" name="kind" value=(kind_param(kind));
                label for="label" { (lang.t("label")) }
                input #label type="text" name="label" value=(label) maxlength="128" required autofocus;
                label for="expires" { (lang.t("expires")) }
                input #expires type="text" name="expires" value=(expires)
                    placeholder="30d" aria-describedby="expires-hint" autocomplete="off";
                p.hint #expires-hint { (lang.t("expires-hint")) }
                div.actions {
                    button type="submit" { (lang.t("create")) }
                    a href="/settings/tokens" { (lang.t("cancel")) }
                }
            }
        }
    };
    page(lang, &title, Some(nav), body)
}

#[derive(Deserialize)]
pub struct KindQuery {
    #[serde(default)]
    kind: String,
}

/// `GET /settings/tokens/new?kind=app-password|token`.
pub async fn new_form(me: SignedIn, Query(q): Query<KindQuery>) -> Response {
    let kind = parse_kind(&q.kind).unwrap_or(CredentialKind::AppPassword);
    html(form_page(me.ctx.lang, &me.nav(), kind, "", "", None))
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    expires: String,
}

fn secret_page(
    lang: Lang,
    nav: &Nav<'_>,
    kind: CredentialKind,
    added: &AppPasswordAdded,
) -> Markup {
    let hint = match kind {
        CredentialKind::AppPassword => "app-password-use",
        CredentialKind::ApiToken => "token-use",
    };
    let body = html! {
        h1 { (added.name) }
        div.card.wide {
            p role="status" { (lang.t("secret-once")) }
            label for="secret" { (lang.t("secret")) }
            input #secret .secret type="text" readonly value=(added.secret.expose())
                autocomplete="off" spellcheck="false";
            div.actions {
                button type="button" data-copy="secret" { (lang.t("copy")) }
            }
            p.hint { (lang.t(hint)) }
            p.meta {
                (lang.t("expires")) ": "
                @if added.expires.is_some() { (when(added.expires.as_deref())) } @else { (lang.t("no-expiry")) }
            }
            p { a href="/settings/tokens" { (lang.t("back-to-tokens")) } }
        }
        script src="/static/portal.js" {}
    };
    page(lang, &added.name, Some(nav), body)
}

/// `POST /settings/tokens/new`: the new secret, shown this once.
pub async fn create(State(portal): State<Portal>, posted: Posted<CreateForm>) -> Response {
    let (me, f) = (posted.me, posted.form);
    let lang = me.ctx.lang;
    let kind = parse_kind(&f.kind).unwrap_or(CredentialKind::AppPassword);
    let refuse = |text: String| {
        (
            StatusCode::BAD_REQUEST,
            html(form_page(
                lang,
                &me.nav(),
                kind,
                &f.label,
                &f.expires,
                Some(&text),
            )),
        )
            .into_response()
    };
    let expires = match f.expires.trim() {
        "" => None,
        text => match parse_expiry(text, crate::domain::now()) {
            Some(secs) => Some(secs),
            None => return refuse(lang.t("expires-invalid")),
        },
    };
    let created = portal
        .accounts
        .create_credential(
            &me.actor(),
            kind,
            &me.current.user.username,
            &f.label,
            expires,
        )
        .await;
    match created {
        Ok(added) => html(secret_page(lang, &me.nav(), kind, &added)),
        Err(AccountError::Invalid(reason)) => {
            refuse(lang.t_with("token-refused", &[("reason", &reason)]))
        }
        Err(e) => {
            tracing::error!(error = %e, "creating a token at the portal");
            server_error(lang)
        }
    }
}

/// `POST /settings/tokens/{id}/revoke`: at once, back to the list.
pub async fn revoke(
    State(portal): State<Portal>,
    Path(id): Path<String>,
    posted: Posted<KindQuery>,
) -> Response {
    let me = posted.me;
    let kind = parse_kind(&posted.form.kind).unwrap_or(CredentialKind::AppPassword);
    match portal
        .accounts
        .revoke_credential(&me.actor(), kind, &me.current.user.username, &id)
        .await
    {
        Ok(()) | Err(AccountError::NotFound(_) | AccountError::Invalid(_)) => {
            see_other_to("/settings/tokens")
        }
        Err(e) => {
            tracing::error!(error = %e, "revoking a token at the portal");
            server_error(me.ctx.lang)
        }
    }
}

// ---- API ----

/// `POST /api/v1/me/app-passwords` and `/api/v1/me/tokens`: `{"label",
/// "expires"?}`; `expires` is a duration (`30d`) or a day (`2027-01-31`),
/// absent or null for the default lifetime.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    #[serde(alias = "name")]
    pub label: String,
    #[serde(default)]
    pub expires: Option<String>,
}

/// The answer to a creation: the secret, this once.
#[derive(Debug, Serialize)]
pub struct Created {
    pub id: String,
    pub label: String,
    pub secret: String,
    pub expires: Option<String>,
}

/// An element of the lists.
#[derive(Debug, Serialize)]
pub struct Item {
    pub id: String,
    pub label: String,
    pub created: Option<String>,
    pub expires: Option<String>,
    pub last_used: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_from: Option<String>,
}

async fn api_list(portal: &Portal, me: &ApiUser, kind: CredentialKind) -> Response {
    match portal
        .accounts
        .own_credentials(&me.actor(), kind, me.username())
        .await
    {
        Ok(list) => Json(
            list.into_iter()
                .map(|v| Item {
                    id: v.id,
                    label: v.name,
                    created: v.created,
                    expires: v.expires,
                    last_used: v.last_used,
                    last_used_from: v.last_used_from,
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => super::api::error(e),
    }
}

async fn api_create(
    portal: &Portal,
    me: &ApiUser,
    kind: CredentialKind,
    body: Result<Json<CreateRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "the body must be {\"label\": …, \"expires\": …}",
        );
    };
    let expires = match req.expires.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match parse_expiry(text, crate::domain::now()) {
            Some(secs) => Some(secs),
            None => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "expires must be a duration such as 30d or a day such as 2027-01-31",
                )
            }
        },
    };
    match portal
        .accounts
        .create_credential(&me.actor(), kind, me.username(), &req.label, expires)
        .await
    {
        Ok(a) => (
            StatusCode::CREATED,
            Json(Created {
                id: a.id.clone(),
                label: a.name.clone(),
                secret: a.secret.expose().clone(),
                expires: a.expires.clone(),
            }),
        )
            .into_response(),
        Err(e) => super::api::error(e),
    }
}

async fn api_revoke(portal: &Portal, me: &ApiUser, kind: CredentialKind, id: &str) -> Response {
    match portal
        .accounts
        .revoke_credential(&me.actor(), kind, me.username(), id)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(AccountError::Invalid(_)) => api_error(StatusCode::NOT_FOUND, "no such item"),
        Err(e) => super::api::error(e),
    }
}

pub async fn api_list_app_passwords(State(portal): State<Portal>, me: ApiUser) -> Response {
    api_list(&portal, &me, CredentialKind::AppPassword).await
}

pub async fn api_list_tokens(State(portal): State<Portal>, me: ApiUser) -> Response {
    api_list(&portal, &me, CredentialKind::ApiToken).await
}

pub async fn api_create_app_password(
    State(portal): State<Portal>,
    me: ApiUser,
    body: Result<Json<CreateRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    api_create(&portal, &me, CredentialKind::AppPassword, body).await
}

pub async fn api_create_token(
    State(portal): State<Portal>,
    me: ApiUser,
    body: Result<Json<CreateRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    api_create(&portal, &me, CredentialKind::ApiToken, body).await
}

pub async fn api_revoke_app_password(
    State(portal): State<Portal>,
    me: ApiUser,
    Path(id): Path<String>,
) -> Response {
    api_revoke(&portal, &me, CredentialKind::AppPassword, &id).await
}

pub async fn api_revoke_token(
    State(portal): State<Portal>,
    me: ApiUser,
    Path(id): Path<String>,
) -> Response {
    api_revoke(&portal, &me, CredentialKind::ApiToken, &id).await
}
