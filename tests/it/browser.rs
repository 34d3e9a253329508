//! The portal in a real browser: Debian's headless Chromium driven over
//! WebDriver (chromedriver, through `fantoccini`), used the way a person
//! uses it — fields found by their visible label, buttons and links by
//! their text (`shared/PORTAL.md`). Every page is also checked at 390 px
//! (mobile emulation through the DevTools call
//! `Emulation.setDeviceMetricsOverride`) and at 1280 px for horizontal
//! overflow and unlabelled inputs, and photographed.
//!
//! Screenshots go to `target/screenshots/`; with
//! `UPDATE_SCREENSHOTS=1` also to `docs/screenshots/`, the ones
//! the README shows.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::harness::Server;

/// chromedriver on a free loopback port; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("chromedriver")
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("chromedriver not runnable (are chromium and chromium-driver installed? scripts/test installs them): {e}")
            });
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chromium's own DevTools commands through chromedriver
/// (`POST /session/{id}/goog/cdp/execute`).
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"cmd": self.cmd, "params": self.params}).to_string();
        (http::Method::POST, Some(body))
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = Capabilities::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--lang=en-US", "--window-size=1280,900",
            ],
            "prefs": {"intl.accept_languages": "en-US"},
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Finds what a person would: an input by its `<label>` (`for=` or
/// wrapping, `aria-label` as a fallback), a button or link by its text,
/// `value` or `aria-label`. Matching ignores case, extra whitespace and a
/// trailing `:` or `*`. Marks the element so WebDriver can find it.
const FIND_JS: &str = r#"
const [kind, wanted] = arguments;
const norm = s => (s || '').replace(/\s+/g, ' ').trim().replace(/[:*]$/, '').trim().toLowerCase();
const want = norm(wanted);
const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
let found = null;
if (kind === 'field') {
  for (const label of document.querySelectorAll('label')) {
    if (norm(label.textContent) !== want) continue;
    found = label.htmlFor ? document.getElementById(label.htmlFor)
                          : label.querySelector('input,select,textarea');
    if (found) break;
  }
  if (!found) found = [...document.querySelectorAll('input,select,textarea')]
    .find(el => norm(el.getAttribute('aria-label')) === want);
} else {
  found = [...document.querySelectorAll('button,a,input[type=submit]')]
    .filter(visible)
    .find(el => [el.textContent, el.value, el.getAttribute('aria-label')].some(t => norm(t) === want));
}
document.querySelectorAll('[data-e2e]').forEach(el => el.removeAttribute('data-e2e'));
if (found) found.setAttribute('data-e2e', '1');
return !!found;
"#;

async fn find(c: &Client, kind: &str, text: &str) -> fantoccini::elements::Element {
    let found = c
        .execute(FIND_JS, vec![json!(kind), json!(text)])
        .await
        .expect("script");
    assert_eq!(
        found,
        json!(true),
        "no {kind} {text:?} on {}",
        c.current_url().await.expect("url")
    );
    c.find(Locator::Css("[data-e2e]")).await.expect("marked")
}

async fn fill(c: &Client, label: &str, value: &str) {
    let field = find(c, "field", label).await;
    field.clear().await.expect("clear");
    field.send_keys(value).await.expect("type");
}

/// Clicks a button or link that loads a page, and waits until the new
/// page has loaded (WebDriver's click may return before a form's
/// submission has navigated).
async fn click(c: &Client, text: &str) {
    let target = find(c, "button", text).await;
    c.execute("window.__e2eOld = true;", vec![])
        .await
        .expect("mark the page");
    target.click().await.expect("click");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let loaded = c
            .execute(
                "return !window.__e2eOld && document.readyState === 'complete';",
                vec![],
            )
            .await
            .unwrap_or(Value::Bool(false));
        if loaded == Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < deadline, "{text:?} did not load a page");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of the first element with `role` (alert, status), if any.
async fn role_text(c: &Client, role: &str) -> Option<String> {
    let v = c
        .execute(
            "const el = document.querySelector(`[role=${arguments[0]}]`); return el ? el.textContent.trim() : null;",
            vec![json!(role)],
        )
        .await
        .expect("script");
    v.as_str().map(str::to_string)
}

/// The text of the element labelled `label` (PORTAL.md: a read-only
/// input its `<label>` points at, or `<dt>label</dt><dd>…</dd>`, or an
/// element with that `aria-label`), spaces for grouping removed.
async fn labelled_text(c: &Client, label: &str) -> String {
    let v = c
        .execute(
            r#"
const norm = s => (s || '').replace(/\s+/g, ' ').trim().replace(/[:*]$/, '').trim().toLowerCase();
const want = norm(arguments[0]);
for (const l of document.querySelectorAll('label')) {
  if (norm(l.textContent) !== want) continue;
  const el = l.htmlFor ? document.getElementById(l.htmlFor) : l.querySelector('input,textarea,output,code');
  if (el) return el.value !== undefined && el.tagName !== 'OUTPUT' ? el.value : el.textContent;
}
for (const dt of document.querySelectorAll('dt')) {
  if (norm(dt.textContent) === want && dt.nextElementSibling) return dt.nextElementSibling.textContent;
}
const el = [...document.querySelectorAll('[aria-label]')].find(e => norm(e.getAttribute('aria-label')) === want);
return el ? (el.value || el.textContent) : null;
"#,
            vec![json!(label)],
        )
        .await
        .expect("script");
    v.as_str()
        .unwrap_or_else(|| panic!("nothing labelled {label:?}"))
        .chars()
        .filter(|ch| !ch.is_whitespace())
        .collect()
}

/// Clicks the button `button` inside the row (PORTAL.md: `tr`, `li`,
/// `article`, `role=row|listitem`) whose text contains `row_text`.
async fn click_in_row(c: &Client, row_text: &str, buttons: &[&str]) {
    let found = c
        .execute(
            r#"
const [rowText, names] = arguments;
const norm = s => (s || '').replace(/\s+/g, ' ').trim().toLowerCase();
const rows = [...document.querySelectorAll('tr,li,article,[role=row],[role=listitem]')]
  .filter(r => norm(r.textContent).includes(norm(rowText)));
document.querySelectorAll('[data-e2e]').forEach(el => el.removeAttribute('data-e2e'));
for (const row of rows.reverse()) {
  const b = [...row.querySelectorAll('button,a,input[type=submit]')]
    .find(el => names.some(n => [el.textContent, el.value, el.getAttribute('aria-label')].some(t => norm(t) === norm(n))));
  if (b) { b.setAttribute('data-e2e', '1'); return true; }
}
return false;
"#,
            vec![json!(row_text), json!(buttons)],
        )
        .await
        .expect("script");
    assert_eq!(found, json!(true), "no row {row_text:?} with {buttons:?}");
    c.execute("window.__e2eOld = true;", vec![])
        .await
        .expect("mark");
    c.find(Locator::Css("[data-e2e]"))
        .await
        .expect("marked")
        .click()
        .await
        .expect("click");
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// After a Delete: confirms in an open `<dialog>`, or on a confirmation
/// page (any page but `list`, the list the row was on), whose button is
/// "Delete" / "Revoke" / "Sign out" again. The navigation's own "Sign
/// out" is never the one clicked.
async fn confirm_if_asked(c: &Client, list: &str, buttons: &[&str]) {
    let on_list = path(c).await == list;
    for name in buttons {
        let asked = c
            .execute(
                r#"
const [name, onList] = arguments;
const norm = s => (s || '').replace(/\s+/g, ' ').trim().toLowerCase();
const scope = document.querySelector('dialog[open]')
  || (onList ? null : (document.querySelector('main') || document.body));
if (!scope) return false;
const b = [...scope.querySelectorAll('button,input[type=submit]')]
  .filter(el => !el.closest('nav,header'))
  .find(el => [el.textContent, el.value].some(t => norm(t) === norm(name)));
document.querySelectorAll('[data-e2e]').forEach(el => el.removeAttribute('data-e2e'));
if (b) b.setAttribute('data-e2e', '1');
return !!b;
"#,
                vec![json!(name), json!(on_list)],
            )
            .await
            .expect("script");
        if asked == json!(true) {
            c.execute("window.__e2eOld = true;", vec![])
                .await
                .expect("mark");
            c.find(Locator::Css("[data-e2e]"))
                .await
                .expect("marked")
                .click()
                .await
                .expect("click");
            tokio::time::sleep(Duration::from_millis(300)).await;
            return;
        }
    }
}

async fn body_text(c: &Client) -> String {
    c.find(Locator::Css("body"))
        .await
        .expect("body")
        .text()
        .await
        .expect("text")
}

async fn path(c: &Client) -> String {
    c.current_url().await.expect("url").path().to_string()
}

/// The layout rules of PORTAL.md at one width, and a screenshot.
async fn check_layout(c: &Client, page: &str, width: u32) {
    let v = c
        .execute(
            r#"
const d = document.documentElement;
const unlabelled = [...document.querySelectorAll('input,select,textarea')]
  .filter(el => el.type !== 'hidden' && (el.offsetWidth || el.offsetHeight))
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map(el => el.name || el.id || el.outerHTML.slice(0, 60));
const viewport = document.querySelector('meta[name=viewport]');
return {scroll: d.scrollWidth, client: d.clientWidth, unlabelled,
        viewport: viewport ? viewport.content : null};
"#,
            vec![],
        )
        .await
        .expect("script");
    let (scroll, client) = (
        v["scroll"].as_u64().expect("n"),
        v["client"].as_u64().expect("n"),
    );
    assert!(
        scroll <= client,
        "{page} at {width}px overflows: scrollWidth {scroll} > clientWidth {client}"
    );
    assert!(
        client <= u64::from(width) && client + 20 >= u64::from(width),
        "{page} at {width}px: clientWidth {client} (is the viewport meta honoured?)"
    );
    assert_eq!(
        v["unlabelled"],
        json!([]),
        "{page} at {width}px: inputs without a label"
    );
    assert!(
        v["viewport"]
            .as_str()
            .is_some_and(|s| s.contains("width=device-width")),
        "{page}: no viewport meta"
    );
    let png = c.screenshot().await.expect("screenshot");
    let name = format!("{page}-{width}.png");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(dir.join(&name), &png).expect("screenshot");
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&docs).expect("docs/screenshots");
        std::fs::write(docs.join(&name), &png).expect("screenshot");
    }
}

/// Checks the current page at 390 px (mobile emulation) and 1280 px.
async fn layouts(c: &Client, page: &str) {
    let here = c.current_url().await.expect("url").to_string();
    c.issue_cmd(Cdp {
        cmd: "Emulation.setDeviceMetricsOverride",
        params: json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
    })
    .await
    .expect("mobile emulation");
    c.goto(&here).await.expect("reload");
    check_layout(c, page, 390).await;
    c.issue_cmd(Cdp {
        cmd: "Emulation.setDeviceMetricsOverride",
        params: json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
    })
    .await
    .expect("desktop");
    c.goto(&here).await.expect("reload");
    check_layout(c, page, 1280).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_changes_details_and_signs_out() {
    let s = tokio::task::spawn_blocking(Server::start)
        .await
        .expect("server");
    let driver = Driver::start();
    let c = browser(&driver).await;
    let base = format!("http://{}", s.http_addr);

    // Signed out, every page leads to the sign-in page.
    c.goto(&format!("{base}/settings")).await.expect("goto");
    assert_eq!(path(&c).await, "/login");
    layouts(&c, "login").await;

    // A wrong password: the generic error, no code step.
    fill(&c, "Username", "admin").await;
    fill(&c, "Password", "not the password").await;
    click(&c, "Sign in").await;
    let alert = role_text(&c, "alert").await.expect("an error");
    assert!(alert.contains("Invalid username or password"), "{alert}");

    fill(&c, "Username", "admin").await;
    fill(&c, "Password", &s.admin_password).await;
    click(&c, "Sign in").await;
    assert_eq!(path(&c).await, "/");
    let body = c
        .find(Locator::Css("body"))
        .await
        .expect("body")
        .text()
        .await
        .expect("text");
    assert!(body.contains("My applications"), "{body}");
    layouts(&c, "home").await;

    click(&c, "Settings").await;
    assert_eq!(path(&c).await, "/settings");
    layouts(&c, "settings").await;
    // The name may change (the default); the username may not.
    let username = find(&c, "field", "Username").await;
    let readonly = username.attr("readonly").await.expect("attr").is_some()
        || username.attr("disabled").await.expect("attr").is_some();
    assert!(readonly, "the username field is editable");
    fill(&c, "Name", "The Administrator").await;
    click(&c, "Save").await;
    let status = role_text(&c, "status")
        .await
        .or(role_text(&c, "alert").await)
        .expect("a confirmation");
    assert!(!status.is_empty());
    let shown = find(&c, "field", "Name")
        .await
        .prop("value")
        .await
        .expect("value");
    assert_eq!(shown.as_deref(), Some("The Administrator"));
    // LDAP sees the new name at once.
    let (rc, entries) = tokio::task::block_in_place(|| {
        crate::harness::search(
            &mut s.admin(),
            &crate::harness::user_dn("admin"),
            ldap3::Scope::Base,
            "(objectClass=*)",
            &["displayName"],
        )
    });
    assert_eq!(rc, 0);
    assert_eq!(entries[0].attrs["displayName"], ["The Administrator"]);

    // Sign out (a POST with the CSRF token) lands on the sign-in page, and
    // the old cookie no longer opens anything.
    let cookie = c.get_named_cookie("portcullis_session").await.ok();
    click(&c, "Sign out").await;
    assert_eq!(path(&c).await, "/login");
    if let Some(cookie) = cookie {
        c.add_cookie(cookie).await.expect("cookie back");
        c.goto(&format!("{base}/")).await.expect("goto");
        assert_eq!(path(&c).await, "/login", "the old session still works");
    }
    c.close().await.expect("close");
}

async fn sign_in(c: &Client, base: &str, user: &str, password: &str) {
    c.goto(&format!("{base}/login")).await.expect("goto");
    fill(c, "Username", user).await;
    fill(c, "Password", password).await;
    click(c, "Sign in").await;
}

/// The flow of issue 13's browser test: TOTP enrolment from the page's
/// secret, a sign-in with a code, an app password that binds over LDAP,
/// an LDAP connection ended from the sessions page, and screenshots of
/// every page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_enrolls_totp_makes_an_app_password_and_ends_an_ldap_connection() {
    let s = tokio::task::spawn_blocking(Server::start)
        .await
        .expect("server");
    let driver = Driver::start();
    let c = browser(&driver).await;
    let base = format!("http://{}", s.http_addr);
    sign_in(&c, &base, "admin", &s.admin_password).await;
    assert_eq!(path(&c).await, "/");

    // TOTP: the secret from the page, a wrong code keeps it, the right
    // one activates the device.
    click(&c, "MFA devices").await;
    assert_eq!(path(&c).await, "/settings/mfa");
    layouts(&c, "mfa").await;
    click(&c, "Add TOTP device").await;
    let secret = labelled_text(&c, "Secret").await;
    assert!(secret.len() >= 16, "{secret}");
    let page = body_text(&c).await;
    assert!(
        page.contains("password;123456") || page.contains("password;code"),
        "the page explains LDAP use"
    );
    let has_qr = c
        .execute(
            "return !!document.querySelector('svg') || [...document.images].some(i => /qr/i.test(i.alt));",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(has_qr, json!(true), "no QR code");
    layouts(&c, "totp").await;
    fill(&c, "Code", "000000").await;
    click(&c, "Continue").await;
    assert!(
        role_text(&c, "alert").await.is_some(),
        "a wrong code is an error"
    );
    assert_eq!(
        labelled_text(&c, "Secret").await,
        secret,
        "a wrong code keeps the secret"
    );
    fill(&c, "Code", &crate::mfa::totp_code(&secret, 6, 0)).await;
    click(&c, "Continue").await;
    assert_eq!(path(&c).await, "/settings/mfa");
    assert!(body_text(&c).await.contains("TOTP"));

    // Signed out and in again: now with a code (a later step than the one
    // used to enrol, which is spent).
    click(&c, "Sign out").await;
    sign_in(&c, &base, "admin", &s.admin_password).await;
    let code_step = find(&c, "field", "Code").await;
    drop(code_step);
    let next_step = crate::mfa::totp_code(&secret, 6, 1);
    fill(&c, "Code", &next_step).await;
    for name in ["Continue", "Sign in", "Verify"] {
        let present = c
            .execute(FIND_JS, vec![json!("button"), json!(name)])
            .await
            .expect("script");
        if present == json!(true) {
            click(&c, name).await;
            break;
        }
    }
    assert_eq!(path(&c).await, "/", "{}", body_text(&c).await);

    // An app password, shown once, binds over LDAP without a code.
    click(&c, "Tokens and app passwords").await;
    assert_eq!(path(&c).await, "/settings/tokens");
    layouts(&c, "tokens").await;
    click(&c, "Create app password").await;
    fill(&c, "Label", "mail on phone").await;
    click(&c, "Create").await;
    let app_password = labelled_text(&c, "Secret").await;
    assert!(app_password.starts_with("pcap_"), "{app_password}");
    find(&c, "button", "Copy").await;
    layouts(&c, "app-password").await;
    let url = s.url.clone();
    let dn = crate::harness::user_dn("admin");
    let (code, out, err) = tokio::task::block_in_place(|| {
        crate::harness::tool(
            "ldapwhoami",
            &["-x", "-H", &url, "-D", &dn, "-w", &app_password],
            &[],
        )
    });
    assert_eq!(code, 0, "ldapwhoami with the app password: {out} {err}");

    // An LDAP connection of the user, ended from the sessions page.
    let mut ldap = tokio::task::block_in_place(|| s.bound(&dn, &app_password));
    click(&c, "Sessions").await;
    assert_eq!(path(&c).await, "/settings/sessions");
    let page = body_text(&c).await;
    assert!(page.contains("Current session"), "{page}");
    assert!(page.contains("LDAP"), "{page}");
    layouts(&c, "sessions").await;
    click_in_row(&c, "LDAP", &["Delete", "Sign out"]).await;
    confirm_if_asked(&c, "/settings/sessions", &["Delete", "Sign out"]).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let closed = tokio::task::block_in_place(|| {
            ldap.search(&dn, ldap3::Scope::Base, "(objectClass=*)", vec!["1.1"])
                .is_err()
        });
        if closed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ended LDAP connection still answers"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The sync client owns a runtime of its own: drop it where it may block.
    tokio::task::block_in_place(|| drop(ldap));

    // The password page, for its layout.
    c.goto(&format!("{base}/settings/password"))
        .await
        .expect("goto");
    find(&c, "field", "Current password").await;
    find(&c, "field", "New password").await;
    find(&c, "field", "Confirm new password").await;
    layouts(&c, "password").await;
    c.close().await.expect("close");
}
