//! The portal's HTML, compiled with the code (maud escapes every value it
//! interpolates). One layout for every page: the viewport meta, our
//! stylesheet, no script; signed-in pages add the nav with "Sign out" and
//! the CSRF token in `<meta name="csrf-token">`.

use maud::{html, Markup, DOCTYPE};

use super::i18n::Lang;

/// What the layout of a signed-in page needs.
pub struct Nav<'a> {
    pub csrf: &'a str,
}

/// A whole page.
pub fn page(lang: Lang, title: &str, nav: Option<&Nav<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(nav) = nav {
                    meta name="csrf-token" content=(nav.csrf);
                }
                title { (title) " · " (lang.t("app-name")) }
                link rel="stylesheet" href="/static/portal.css";
            }
            body {
                header {
                    div.bar {
                        a.brand href="/" { (lang.t("app-name")) }
                        @if let Some(nav) = nav {
                            nav aria-label=(lang.t("skip-nav")) {
                                ul {
                                    li { a href="/" { (lang.t("my-applications")) } }
                                    li { a href="/settings" { (lang.t("settings")) } }
                                    li { a href="/settings/sessions" { (lang.t("sessions")) } }
                                    li { a href="/settings/mfa" { (lang.t("mfa-devices")) } }
                                    li { a href="/settings/tokens" { (lang.t("tokens")) } }
                                    li { (sign_out_form(lang, nav.csrf)) }
                                }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The "Sign out" button: a POST with the CSRF token.
pub fn sign_out_form(lang: Lang, csrf: &str) -> Markup {
    html! {
        form method="post" action="/logout" {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" { (lang.t("sign-out")) }
        }
    }
}

/// An error in `role="alert"`, if any.
pub fn alert(text: Option<&str>) -> Markup {
    html! {
        @if let Some(text) = text {
            p role="alert" { (text) }
        }
    }
}

/// The first step of the sign-in: username and password.
pub fn login(lang: Lang, csrf: &str, error: Option<&str>, username: &str) -> Markup {
    let body = html! {
        div.card.narrow {
            h1 { (lang.t("login-title")) }
            (alert(error))
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                label for="username" { (lang.t("username")) }
                input #username type="text" name="username" value=(username)
                    autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus;
                label for="password" { (lang.t("password")) }
                input #password type="password" name="password" autocomplete="current-password" required;
                div.actions { button type="submit" { (lang.t("sign-in")) } }
            }
        }
    };
    page(lang, &lang.t("login-title"), None, body)
}

/// The second step: a code, after a right password.
pub fn code(lang: Lang, csrf: &str) -> Markup {
    let body = html! {
        div.card.narrow {
            h1 { (lang.t("code-title")) }
            p.hint { (lang.t("code-hint")) }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                label for="code" { (lang.t("code")) }
                input #code type="text" name="code" inputmode="numeric"
                    autocomplete="one-time-code" autocapitalize="none" spellcheck="false" required autofocus;
                div.actions { button type="submit" { (lang.t("continue")) } }
            }
        }
    };
    page(lang, &lang.t("code-title"), None, body)
}

/// `GET /logout`: only the button, which posts.
pub fn logout(lang: Lang, csrf: &str) -> Markup {
    let body = html! {
        div.card.narrow {
            h1 { (lang.t("sign-out-title")) }
            p { (lang.t("sign-out-question")) }
            (sign_out_form(lang, csrf))
        }
    };
    page(lang, &lang.t("sign-out-title"), Some(&Nav { csrf }), body)
}

/// A short page with one message (403, 404, 500).
pub fn message(lang: Lang, nav: Option<&Nav<'_>>, text: &str) -> Markup {
    page(
        lang,
        text,
        nav,
        html! { div.card { p role="alert" { (text) } p { a href="/" { (lang.t("my-applications")) } } } },
    )
}

/// `GET /`: "My applications".
pub fn home(lang: Lang, nav: &Nav<'_>, display_name: &str, admin: bool) -> Markup {
    let body = html! {
        h1 { (lang.t("my-applications")) }
        p { (lang.t_with("signed-in-as", &[("name", display_name)])) }
        p.hint { (lang.t("no-applications")) }
        p { a href="/settings" { (lang.t("settings")) } }
        @if admin { p { a href="/admin" { (lang.t("admin-title")) } } }
    };
    page(lang, &lang.t("my-applications"), Some(nav), body)
}

/// What the details form shows.
pub struct SettingsView<'a> {
    pub profile: &'a crate::account::profile::Profile,
    /// `role="status"` after a save.
    pub saved: bool,
    /// `role="alert"` when a save was refused.
    pub error: Option<String>,
}

/// `GET /settings`: the user's details.
pub fn settings(lang: Lang, nav: &Nav<'_>, v: &SettingsView<'_>) -> Markup {
    let p = v.profile;
    let may = p.can_change;
    let body = html! {
        h1 { (lang.t("settings")) }
        div.card {
            @if v.saved { p role="status" { (lang.t("saved")) } }
            (alert(v.error.as_deref()))
            form method="post" action="/settings" {
                input type="hidden" name="csrf" value=(nav.csrf);
                label for="username" { (lang.t("username")) }
                input #username type="text" name="username" value=(p.username)
                    autocomplete="username" readonly[!may.username];
                label for="name" { (lang.t("name")) }
                input #name type="text" name="name" value=(p.name.as_deref().unwrap_or(""))
                    autocomplete="name" readonly[!may.name];
                label for="email" { (lang.t("email")) }
                input #email type="email" name="email" value=(p.email.as_deref().unwrap_or(""))
                    autocomplete="email" readonly[!may.email];
                label for="locale" { (lang.t("locale")) }
                select #locale name="locale" {
                    option value="" selected[p.locale.is_none()] { (lang.t("auto-detect")) }
                    @for l in Lang::ALL {
                        option value=(l.tag()) selected[p.locale.as_deref() == Some(l.tag())] {
                            (l.t("lang-name"))
                        }
                    }
                }
                div.actions { button type="submit" { (lang.t("save")) } }
            }
            p.sub { a href="/settings/password" { (lang.t("change-password")) } }
        }
    };
    page(lang, &lang.t("settings"), Some(nav), body)
}

/// An RFC 3339 time as the pages show it (`2026-12-03 10:58 UTC`); a
/// dash when there is none.
pub fn when(time: Option<&str>) -> String {
    match time {
        Some(t) if t.len() >= 16 => format!("{} UTC", t[..16].replacen('T', " ", 1)),
        Some(t) => t.to_string(),
        None => "—".to_string(),
    }
}

/// A QR code of `text` as an inline SVG (drawn by the server: one path of
/// dark modules, a quiet zone of four), labelled for screen readers.
pub fn qr_svg(text: &str, label: &str) -> Markup {
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else {
        return html! {};
    };
    let width = code.width();
    let size = width + 8;
    let mut path = String::new();
    for (i, color) in code.to_colors().into_iter().enumerate() {
        if color == qrcode::Color::Dark {
            let (x, y) = (i % width + 4, i / width + 4);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    html! {
        svg.qr xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {size} {size}"))
            role="img" aria-label=(label) shape-rendering="crispEdges" {
            rect width=(size) height=(size) fill="#fff" {}
            path d=(path) fill="#000" {}
        }
    }
}

/// A small form with one button that posts to `action` (with the CSRF
/// token), for the rows' Delete/Revoke and the pages' Add buttons.
pub fn post_button(action: &str, csrf: &str, text: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" { (text) }
        }
    }
}
