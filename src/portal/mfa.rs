//! MFA devices: `/settings/mfa` (the list, "Add TOTP device", "Add static
//! tokens"), the TOTP enrolment (`/settings/mfa/totp/{id}`: QR code,
//! secret, name, first code), new static tokens (shown once), deleting a
//! device (confirmed with the account password), and the same under
//! `/api/v1/me/mfa`. The rules are the account layer's.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use super::extract::{api_error, server_error, ApiUser, Posted, SignedIn};
use super::i18n::Lang;
use super::views::{alert, page, post_button, qr_svg, when, Nav};
use super::{html, see_other_to, Portal};
use crate::account::view::{DeviceKindView, DeviceView, TotpAdded};
use crate::account::AccountError;
use crate::auth::Secret;

fn kind_text(lang: Lang, d: &DeviceView) -> String {
    match d.kind {
        DeviceKindView::Totp { .. } => lang.t("kind-totp"),
        DeviceKindView::Static { .. } => lang.t("kind-static"),
    }
}

/// How LDAP clients use a second factor.
fn ldap_hint(lang: Lang) -> Markup {
    html! { p.hint { (lang.t("mfa-ldap-hint")) " " code { "password;123456" } } }
}

fn list_page(lang: Lang, nav: &Nav<'_>, devices: &[DeviceView]) -> Markup {
    let body = html! {
        h1 { (lang.t("mfa-devices")) }
        (ldap_hint(lang))
        @if devices.is_empty() {
            p { (lang.t("no-devices")) }
        } @else {
            ul.rows {
                @for d in devices {
                    li {
                        div.what {
                            strong { (d.label) span.tag { (kind_text(lang, d)) } }
                            p.meta {
                                (lang.t("created")) ": " (when(d.created.as_deref()))
                                " · " (lang.t("last-used")) ": " (when(d.last_used.as_deref()))
                                @if let DeviceKindView::Static { tokens_left } = d.kind {
                                    " · " (lang.t_with("tokens-left", &[("count", &tokens_left.to_string())]))
                                }
                            }
                        }
                        div.button-row {
                            form.inline method="get" action=(format!("/settings/mfa/{}/rename", d.id)) {
                                button type="submit" { (lang.t("rename")) }
                            }
                            form.inline method="get" action=(format!("/settings/mfa/{}/delete", d.id)) {
                                button.danger type="submit" { (lang.t("delete")) }
                            }
                        }
                    }
                }
            }
        }
        div.button-row {
            (post_button("/settings/mfa/totp", nav.csrf, &lang.t("add-totp")))
            (post_button("/settings/mfa/static", nav.csrf, &lang.t("add-static")))
        }
    };
    page(lang, &lang.t("mfa-devices"), Some(nav), body)
}

/// `GET /settings/mfa`.
pub async fn list(State(portal): State<Portal>, me: SignedIn) -> Response {
    match portal
        .accounts
        .own_devices(&me.actor(), &me.current.user.username)
        .await
    {
        Ok(devices) => html(list_page(me.ctx.lang, &me.nav(), &devices)),
        Err(e) => fault(me.ctx.lang, e),
    }
}

fn fault(lang: Lang, e: AccountError) -> Response {
    tracing::error!(error = %e, "portal MFA page");
    server_error(lang)
}

fn not_found(me: &SignedIn) -> Response {
    let lang = me.ctx.lang;
    (
        StatusCode::NOT_FOUND,
        html(super::views::message(
            lang,
            Some(&me.nav()),
            &lang.t("not-found"),
        )),
    )
        .into_response()
}

/// `POST /settings/mfa/totp`: a pending device, then its page.
pub async fn begin_totp(
    State(portal): State<Portal>,
    posted: Posted<serde::de::IgnoredAny>,
) -> Response {
    let me = posted.me;
    match portal
        .accounts
        .begin_totp(&me.actor(), &me.current.user.username)
        .await
    {
        Ok(added) => see_other_to(&format!("/settings/mfa/totp/{}", added.id)),
        Err(e) => fault(me.ctx.lang, e),
    }
}

fn totp_page(
    lang: Lang,
    nav: &Nav<'_>,
    added: &TotpAdded,
    name: &str,
    error: Option<&str>,
) -> Markup {
    let body = html! {
        h1 { (lang.t("add-totp")) }
        div.card.wide {
            (alert(error))
            p { (lang.t("totp-scan")) }
            (qr_svg(added.uri.expose(), &lang.t("qr-code")))
            dl.secret-box {
                dt { (lang.t("secret")) }
                dd { code { (added.secret.expose()) } }
            }
            (ldap_hint(lang))
            form method="post" action=(format!("/settings/mfa/totp/{}", added.id)) {
                input type="hidden" name="csrf" value=(nav.csrf);
                label for="name" { (lang.t("device-name")) }
                input #name type="text" name="name" value=(name) placeholder="authenticator" maxlength="128";
                label for="code" { (lang.t("code")) }
                input #code type="text" name="code" inputmode="numeric" autocomplete="one-time-code"
                    autocapitalize="none" spellcheck="false" required;
                div.actions { button type="submit" { (lang.t("continue")) } }
            }
        }
    };
    page(lang, &lang.t("add-totp"), Some(nav), body)
}

/// `GET /settings/mfa/totp/{id}`: the pending device's QR code and secret.
pub async fn show_totp(
    State(portal): State<Portal>,
    me: SignedIn,
    Path(id): Path<String>,
) -> Response {
    match portal
        .accounts
        .pending_totp(&me.actor(), &me.current.user.username, &id)
        .await
    {
        Ok(added) => html(totp_page(me.ctx.lang, &me.nav(), &added, "", None)),
        Err(AccountError::NotFound(_) | AccountError::Invalid(_)) => not_found(&me),
        Err(e) => fault(me.ctx.lang, e),
    }
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    code: String,
}

/// `POST /settings/mfa/totp/{id}`: a right code activates the device; a
/// wrong one shows the same secret again with an error.
pub async fn confirm_totp(
    State(portal): State<Portal>,
    Path(id): Path<String>,
    posted: Posted<ConfirmForm>,
) -> Response {
    let (me, f) = (posted.me, posted.form);
    let (actor, username, lang) = (me.actor(), me.current.user.username.clone(), me.ctx.lang);
    let confirmed = portal
        .accounts
        .confirm_totp(&actor, &username, &id, &f.code, Some(f.name.clone()))
        .await;
    match confirmed {
        Ok(_) => see_other_to("/settings/mfa"),
        Err(AccountError::Invalid(_)) => {
            match portal.accounts.pending_totp(&actor, &username, &id).await {
                Ok(added) => (
                    StatusCode::BAD_REQUEST,
                    html(totp_page(
                        lang,
                        &me.nav(),
                        &added,
                        &f.name,
                        Some(&lang.t("wrong-code")),
                    )),
                )
                    .into_response(),
                Err(_) => not_found(&me),
            }
        }
        Err(AccountError::NotFound(_)) => not_found(&me),
        Err(e) => fault(lang, e),
    }
}

#[derive(Deserialize)]
pub struct StaticForm {
    #[serde(default)]
    confirm: String,
}

/// `POST /settings/mfa/static`: with a set already, asks first (a new set
/// replaces it); then the new tokens, shown this once.
pub async fn add_static(State(portal): State<Portal>, posted: Posted<StaticForm>) -> Response {
    let (me, f) = (posted.me, posted.form);
    let (actor, username, lang) = (me.actor(), me.current.user.username.clone(), me.ctx.lang);
    if f.confirm != "1" {
        let has_set = match portal.accounts.own_devices(&actor, &username).await {
            Ok(devices) => devices
                .iter()
                .any(|d| matches!(d.kind, DeviceKindView::Static { .. })),
            Err(e) => return fault(lang, e),
        };
        if has_set {
            let body = html! {
                h1 { (lang.t("add-static")) }
                div.card {
                    p { (lang.t("static-replace")) }
                    form method="post" action="/settings/mfa/static" {
                        input type="hidden" name="csrf" value=(me.csrf());
                        input type="hidden" name="confirm" value="1";
                        div.actions {
                            button type="submit" { (lang.t("continue")) }
                            a href="/settings/mfa" { (lang.t("cancel")) }
                        }
                    }
                }
            };
            return html(page(lang, &lang.t("add-static"), Some(&me.nav()), body));
        }
    }
    match portal
        .accounts
        .replace_static_tokens(&actor, &username)
        .await
    {
        Ok(added) => {
            let body = html! {
                h1 { (lang.t("add-static")) }
                div.card.wide {
                    p role="status" { (lang.t("static-once")) }
                    ul.tokens {
                        @for t in added.tokens.expose() { li { code { (t) } } }
                    }
                    (ldap_hint(lang))
                    p.hint { (lang.t("static-print")) }
                    p.no-print { a href="/settings/mfa" { (lang.t("back-to-devices")) } }
                }
            };
            html(page(lang, &lang.t("add-static"), Some(&me.nav()), body))
        }
        Err(e) => fault(lang, e),
    }
}

fn delete_page(lang: Lang, nav: &Nav<'_>, device: &DeviceView, error: Option<&str>) -> Markup {
    let body = html! {
        h1 { (lang.t("delete-device")) }
        div.card {
            (alert(error))
            p { (lang.t_with("delete-device-question", &[("name", &device.label)])) }
            form method="post" action=(format!("/settings/mfa/{}/delete", device.id)) {
                input type="hidden" name="csrf" value=(nav.csrf);
                label for="password" { (lang.t("password")) }
                input #password type="password" name="password" autocomplete="current-password" required autofocus;
                div.actions {
                    button.danger type="submit" { (lang.t("delete")) }
                    a href="/settings/mfa" { (lang.t("cancel")) }
                }
            }
        }
    };
    page(lang, &lang.t("delete-device"), Some(nav), body)
}

async fn find_device(
    portal: &Portal,
    me: &SignedIn,
    id: &str,
) -> Result<Option<DeviceView>, AccountError> {
    Ok(portal
        .accounts
        .own_devices(&me.actor(), &me.current.user.username)
        .await?
        .into_iter()
        .find(|d| d.id == id))
}

/// `GET /settings/mfa/{id}/delete`: asks for the password.
pub async fn confirm_delete(
    State(portal): State<Portal>,
    me: SignedIn,
    Path(id): Path<String>,
) -> Response {
    match find_device(&portal, &me, &id).await {
        Ok(Some(d)) => html(delete_page(me.ctx.lang, &me.nav(), &d, None)),
        Ok(None) => not_found(&me),
        Err(e) => fault(me.ctx.lang, e),
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    password: String,
}

/// `POST /settings/mfa/{id}/delete`: with the right password, deletes it.
pub async fn delete(
    State(portal): State<Portal>,
    Path(id): Path<String>,
    posted: Posted<DeleteForm>,
) -> Response {
    let (me, f) = (posted.me, posted.form);
    let lang = me.ctx.lang;
    let device = match find_device(&portal, &me, &id).await {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(&me),
        Err(e) => return fault(lang, e),
    };
    let deleted = portal
        .accounts
        .delete_own_device(
            &me.actor(),
            &me.current.user.username,
            &id,
            &Secret(f.password),
            me.ctx.peer,
        )
        .await;
    match deleted {
        Ok(()) => see_other_to("/settings/mfa"),
        Err(AccountError::InvalidCredentials) => (
            StatusCode::FORBIDDEN,
            html(delete_page(
                lang,
                &me.nav(),
                &device,
                Some(&lang.t("current-password-wrong")),
            )),
        )
            .into_response(),
        Err(AccountError::Busy) => (
            StatusCode::SERVICE_UNAVAILABLE,
            html(delete_page(lang, &me.nav(), &device, Some(&lang.t("busy")))),
        )
            .into_response(),
        Err(AccountError::NotFound(_)) => not_found(&me),
        Err(e) => fault(lang, e),
    }
}

fn rename_page(lang: Lang, nav: &Nav<'_>, device: &DeviceView, error: Option<&str>) -> Markup {
    let body = html! {
        h1 { (lang.t("rename-device")) }
        div.card {
            (alert(error))
            form method="post" action=(format!("/settings/mfa/{}/rename", device.id)) {
                input type="hidden" name="csrf" value=(nav.csrf);
                label for="name" { (lang.t("device-name")) }
                input #name type="text" name="name" value=(device.label) maxlength="128" required autofocus;
                div.actions {
                    button type="submit" { (lang.t("save")) }
                    a href="/settings/mfa" { (lang.t("cancel")) }
                }
            }
        }
    };
    page(lang, &lang.t("rename-device"), Some(nav), body)
}

/// `GET /settings/mfa/{id}/rename`.
pub async fn rename_form(
    State(portal): State<Portal>,
    me: SignedIn,
    Path(id): Path<String>,
) -> Response {
    match find_device(&portal, &me, &id).await {
        Ok(Some(d)) => html(rename_page(me.ctx.lang, &me.nav(), &d, None)),
        Ok(None) => not_found(&me),
        Err(e) => fault(me.ctx.lang, e),
    }
}

#[derive(Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    name: String,
}

/// `POST /settings/mfa/{id}/rename`.
pub async fn rename(
    State(portal): State<Portal>,
    Path(id): Path<String>,
    posted: Posted<RenameForm>,
) -> Response {
    let (me, f) = (posted.me, posted.form);
    let lang = me.ctx.lang;
    match portal
        .accounts
        .rename_own_device(&me.actor(), &me.current.user.username, &id, &f.name)
        .await
    {
        Ok(_) => see_other_to("/settings/mfa"),
        Err(AccountError::Invalid(reason)) => match find_device(&portal, &me, &id).await {
            Ok(Some(d)) => (
                StatusCode::BAD_REQUEST,
                html(rename_page(lang, &me.nav(), &d, Some(&reason))),
            )
                .into_response(),
            _ => not_found(&me),
        },
        Err(AccountError::NotFound(_)) => not_found(&me),
        Err(e) => fault(lang, e),
    }
}

// ---- API ----

/// `PATCH /api/v1/me/mfa/{id}` `{"name"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRename {
    pub name: String,
}

pub async fn api_rename(
    State(portal): State<Portal>,
    me: ApiUser,
    Path(id): Path<String>,
    body: Result<Json<DeviceRename>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else {
        return api_error(StatusCode::BAD_REQUEST, "the body must be {\"name\": …}");
    };
    match portal
        .accounts
        .rename_own_device(&me.actor(), me.username(), &id, &req.name)
        .await
    {
        Ok(view) => Json(view).into_response(),
        Err(e) => super::api::error(e),
    }
}

/// `GET /api/v1/me/mfa`.
pub async fn api_list(State(portal): State<Portal>, me: ApiUser) -> Response {
    match portal
        .accounts
        .own_devices(&me.actor(), me.username())
        .await
    {
        Ok(list) => Json(list).into_response(),
        Err(e) => super::api::error(e),
    }
}

/// `POST /api/v1/me/mfa/totp`: a pending device and, this once, its
/// secret and otpauth URI.
#[derive(Debug, Serialize)]
pub struct TotpBegun {
    pub id: String,
    pub secret: String,
    pub uri: String,
    pub digits: u8,
    pub period: u64,
    pub algorithm: String,
}

pub async fn api_begin_totp(State(portal): State<Portal>, me: ApiUser) -> Response {
    match portal.accounts.begin_totp(&me.actor(), me.username()).await {
        Ok(a) => (
            StatusCode::CREATED,
            Json(TotpBegun {
                id: a.id.clone(),
                secret: a.secret.expose().clone(),
                uri: a.uri.expose().clone(),
                digits: a.digits,
                period: a.period,
                algorithm: a.algorithm.clone(),
            }),
        )
            .into_response(),
        Err(e) => super::api::error(e),
    }
}

/// `POST /api/v1/me/mfa/totp/{id}/confirm` `{"code", "name"?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirm {
    pub code: String,
    #[serde(default)]
    pub name: Option<String>,
}

pub async fn api_confirm_totp(
    State(portal): State<Portal>,
    me: ApiUser,
    Path(id): Path<String>,
    body: Result<Json<TotpConfirm>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else {
        return api_error(StatusCode::BAD_REQUEST, "the body must be {\"code\": …}");
    };
    match portal
        .accounts
        .confirm_totp(&me.actor(), me.username(), &id, &req.code, req.name)
        .await
    {
        Ok(view) => Json(view).into_response(),
        Err(e) => super::api::error(e),
    }
}

/// `POST /api/v1/me/mfa/static`: `{"id", "tokens": [...]}`, shown once;
/// replaces the earlier set.
#[derive(Debug, Serialize)]
pub struct StaticTokens {
    pub id: String,
    pub tokens: Vec<String>,
}

pub async fn api_add_static(State(portal): State<Portal>, me: ApiUser) -> Response {
    match portal
        .accounts
        .replace_static_tokens(&me.actor(), me.username())
        .await
    {
        Ok(a) => (
            StatusCode::CREATED,
            Json(StaticTokens {
                id: a.id.clone(),
                tokens: a.tokens.expose().clone(),
            }),
        )
            .into_response(),
        Err(e) => super::api::error(e),
    }
}

/// `DELETE /api/v1/me/mfa/{id}` `{"password"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceDelete {
    pub password: String,
}

pub async fn api_delete(
    State(portal): State<Portal>,
    me: ApiUser,
    Path(id): Path<String>,
    body: Result<Json<DeviceDelete>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "the body must be {\"password\": …} (the account password)",
        );
    };
    match portal
        .accounts
        .delete_own_device(
            &me.actor(),
            me.username(),
            &id,
            &Secret(req.password),
            me.ctx.peer,
        )
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(AccountError::InvalidCredentials) => {
            api_error(StatusCode::FORBIDDEN, "the password is wrong")
        }
        Err(e) => super::api::error(e),
    }
}
