//! The `mfa` and `app-password` commands: their clap definitions, the
//! requests they become and their human output (the otpauth URI and a QR
//! code drawn in the terminal for a new TOTP device).

use anyhow::bail;
use clap::{Args, Subcommand};
use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;

use super::render::{opt, safe, table, text};
use crate::admin::view::{
    AppPasswordView, DeviceKindView, DeviceView, PolicySource, PolicyView, TotpAdded,
};
use crate::admin::{AdminAnswer, AdminRequest};

#[derive(Debug, Subcommand, PartialEq)]
pub enum MfaCommand {
    /// TOTP devices (authenticator apps).
    #[command(subcommand)]
    Totp(TotpCommand),
    /// Static single-use tokens (recovery codes).
    #[command(subcommand, name = "static")]
    Static(StaticCommand),
    /// List a user's devices (never their secrets).
    List {
        /// Username.
        #[arg(value_name = "USER")]
        username: String,
    },
    /// Remove a device.
    Remove {
        /// Username.
        #[arg(value_name = "USER")]
        username: String,
        /// Device id, as `mfa list` shows it.
        #[arg(value_name = "DEVICE_ID")]
        device: String,
    },
    /// Show or set whether binds need a code (globally or per group).
    #[command(subcommand)]
    Policy(MfaPolicyCommand),
}

#[derive(Debug, Subcommand, PartialEq)]
pub enum TotpCommand {
    /// Add a TOTP device; prints its otpauth URI and QR code once.
    Add {
        /// Username.
        #[arg(value_name = "USER")]
        username: String,
        /// Digits per code.
        #[arg(long, default_value = "6", value_parser = ["6", "8"])]
        digits: String,
        /// Label of the device.
        #[arg(long, value_name = "LABEL")]
        label: Option<String>,
    },
}

#[derive(Debug, Subcommand, PartialEq)]
pub enum StaticCommand {
    /// Add a device of single-use tokens; prints them once.
    Add {
        /// Username.
        #[arg(value_name = "USER")]
        username: String,
        /// Number of tokens.
        #[arg(long, default_value_t = crate::auth::static_tokens::DEFAULT_COUNT)]
        count: u8,
        /// Label of the device.
        #[arg(long, value_name = "LABEL")]
        label: Option<String>,
    },
}

#[derive(Debug, Subcommand, PartialEq)]
pub enum MfaPolicyCommand {
    /// Show the global policy, where it comes from, and group policies.
    Show,
    /// Set the policy: if-enrolled, required, off, or inherit (remove the
    /// setting: the config's value globally, the global one for a group).
    Set {
        /// Set it for this group (and its nested groups) only.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        #[arg(value_name = "POLICY", value_parser = ["if-enrolled", "required", "off", "inherit"])]
        policy: String,
    },
}

/// `app-password add` and `token add`.
#[derive(Debug, Args, PartialEq)]
pub struct CredentialAdd {
    /// Username.
    #[arg(value_name = "USER")]
    pub username: String,
    /// What it is for, e.g. "mail on phone" or "backup script".
    #[arg(long = "name", value_name = "LABEL", required = true)]
    pub name: String,
    /// Lifetime such as 90m, 12h, 30d, 2w (default: no expiry).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub expires: Option<u64>,
}

/// `app-password revoke` and `token revoke`.
#[derive(Debug, Args, PartialEq)]
pub struct CredentialRevoke {
    /// Username.
    #[arg(value_name = "USER")]
    pub username: String,
    /// Its id, as the `list` command shows it.
    #[arg(value_name = "ID")]
    pub id: String,
}

#[derive(Debug, Subcommand, PartialEq)]
pub enum AppPasswordCommand {
    /// Create an app password; prints it once.
    Add(CredentialAdd),
    /// List a user's app passwords (never the secrets).
    List {
        /// Username.
        #[arg(value_name = "USER")]
        username: String,
    },
    /// Revoke an app password; takes effect on the next bind.
    Revoke(CredentialRevoke),
    /// Show or set whether app passwords bind (globally or per group).
    #[command(subcommand)]
    Policy(AppPasswordPolicyCommand),
}

#[derive(Debug, Subcommand, PartialEq)]
pub enum TokenCommand {
    /// Create an API token; prints it once.
    Add(CredentialAdd),
    /// List a user's API tokens (never the secrets).
    List {
        /// Username.
        #[arg(value_name = "USER")]
        username: String,
    },
    /// Revoke an API token; refused from the next request on.
    Revoke(CredentialRevoke),
}

#[derive(Debug, Subcommand, PartialEq)]
pub enum AppPasswordPolicyCommand {
    /// Show the global setting, where it comes from, and group settings.
    Show,
    /// Set it: on, off, or inherit (remove the setting).
    Set {
        /// Set it for this group (and its nested groups) only.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        #[arg(value_name = "SETTING", value_parser = ["on", "off", "inherit"])]
        setting: String,
    },
}

/// `90m`, `12h`, `30d`, `2w`, `45s` → seconds.
pub fn parse_duration(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = match number.parse() {
        Ok(n) if n > 0 => n,
        _ => bail!("`{text}` is not a duration such as 90m, 12h, 30d"),
    };
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => bail!("`{text}`: the unit must be s, m, h, d or w (e.g. 30d)"),
    };
    match n.checked_mul(unit_secs) {
        Some(secs) if secs <= crate::admin::MAX_EXPIRY_SECS => Ok(secs),
        _ => bail!("`{text}` is longer than ten years"),
    }
}

pub fn mfa_request(cmd: MfaCommand) -> AdminRequest {
    match cmd {
        MfaCommand::Totp(TotpCommand::Add {
            username,
            digits,
            label,
        }) => AdminRequest::MfaTotpAdd {
            username,
            // clap allows only 6 and 8; the server checks again.
            digits: digits.parse().unwrap_or(0),
            label,
        },
        MfaCommand::Static(StaticCommand::Add {
            username,
            count,
            label,
        }) => AdminRequest::MfaStaticAdd {
            username,
            count,
            label,
        },
        MfaCommand::List { username } => AdminRequest::MfaList { username },
        MfaCommand::Remove { username, device } => AdminRequest::MfaRemove { username, device },
        MfaCommand::Policy(MfaPolicyCommand::Show) => AdminRequest::PolicyShow,
        MfaCommand::Policy(MfaPolicyCommand::Set { group, policy }) => {
            AdminRequest::MfaPolicySet { group, policy }
        }
    }
}

pub fn token_request(cmd: TokenCommand) -> AdminRequest {
    match cmd {
        TokenCommand::Add(CredentialAdd {
            username,
            name,
            expires,
        }) => AdminRequest::TokenAdd {
            username,
            name,
            expires_in_secs: expires,
        },
        TokenCommand::List { username } => AdminRequest::TokenList { username },
        TokenCommand::Revoke(CredentialRevoke { username, id }) => {
            AdminRequest::TokenRevoke { username, id }
        }
    }
}

pub fn app_password_request(cmd: AppPasswordCommand) -> AdminRequest {
    match cmd {
        AppPasswordCommand::Add(CredentialAdd {
            username,
            name,
            expires,
        }) => AdminRequest::AppPasswordAdd {
            username,
            name,
            expires_in_secs: expires,
        },
        AppPasswordCommand::List { username } => AdminRequest::AppPasswordList { username },
        AppPasswordCommand::Revoke(CredentialRevoke { username, id }) => {
            AdminRequest::AppPasswordRevoke { username, id }
        }
        AppPasswordCommand::Policy(AppPasswordPolicyCommand::Show) => AdminRequest::PolicyShow,
        AppPasswordCommand::Policy(AppPasswordPolicyCommand::Set { group, setting }) => {
            AdminRequest::AppPasswordPolicySet { group, setting }
        }
    }
}

/// The otpauth URI as a QR code of half-height block characters, with a
/// quiet zone, dark modules drawn dark.
fn qr(uri: &str) -> String {
    match QrCode::new(uri.as_bytes()) {
        Ok(code) => code
            .render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
        Err(e) => format!("(cannot draw a QR code: {e})"),
    }
}

/// Human output of the answers of this module's requests; `None` when the
/// answer does not fit the request.
pub(super) fn render(req: &AdminRequest, answer: &AdminAnswer) -> Option<String> {
    Some(match (req, answer) {
        (AdminRequest::MfaTotpAdd { username, .. }, AdminAnswer::TotpAdded(t)) => {
            totp_added(username, t)
        }
        (AdminRequest::MfaStaticAdd { username, .. }, AdminAnswer::StaticAdded(s)) => format!(
            "added static token device {} for {}; each token works once, and this is the \
             only time they are shown:\n  {}\n",
            text(&s.id),
            safe(username),
            s.tokens
                .expose()
                .iter()
                .map(|t| safe(t))
                .collect::<Vec<_>>()
                .join("\n  ")
        ),
        (AdminRequest::MfaList { .. }, AdminAnswer::Devices(devices)) => render_devices(devices),
        (AdminRequest::MfaRemove { device, .. }, AdminAnswer::Removed(_)) => {
            format!("removed device {}\n", safe(device))
        }
        (AdminRequest::AppPasswordAdd { username, .. }, AdminAnswer::AppPasswordAdded(a)) => {
            format!(
                "created app password {} ({}) for {}, expires {}:\n  {}\nIt binds without a \
                 code; this is the only time it is shown.\n",
                text(&a.id),
                text(&a.name),
                safe(username),
                match a.expires.as_deref() {
                    None | Some("") => "never".to_string(),
                    Some(t) => safe(t),
                },
                text(a.secret.expose()),
            )
        }
        (AdminRequest::TokenAdd { username, .. }, AdminAnswer::AppPasswordAdded(a)) => {
            format!(
                "created API token {} ({}) for {}, expires {}:\n  {}\nSend it as \
                 `Authorization: Bearer <token>` to /api/v1; it does not bind over LDAP. \
                 This is the only time it is shown.\n",
                text(&a.id),
                text(&a.name),
                safe(username),
                match a.expires.as_deref() {
                    None | Some("") => "never".to_string(),
                    Some(t) => safe(t),
                },
                text(a.secret.expose()),
            )
        }
        (
            AdminRequest::AppPasswordList { .. } | AdminRequest::TokenList { .. },
            AdminAnswer::AppPasswords(list),
        ) => render_app_passwords(list),
        (AdminRequest::AppPasswordRevoke { id, .. }, AdminAnswer::Removed(_)) => {
            format!("revoked app password {}\n", safe(id))
        }
        (AdminRequest::TokenRevoke { id, .. }, AdminAnswer::Removed(_)) => {
            format!("revoked API token {}\n", safe(id))
        }
        (
            AdminRequest::PolicyShow
            | AdminRequest::MfaPolicySet { .. }
            | AdminRequest::AppPasswordPolicySet { .. },
            AdminAnswer::Policy(p),
        ) => render_policy(p),
        _ => return None,
    })
}

fn totp_added(username: &str, t: &TotpAdded) -> String {
    let uri = t.uri.expose();
    format!(
        "added TOTP device {} for {}\n\n{}\n{}\n\nsecret: {}\n\
         Scan the code or enter the secret in an authenticator app; this is the only \
         time it is shown.\nBind over LDAP with `<password>;<code>`.\n",
        text(&t.id),
        safe(username),
        qr(uri),
        safe(uri),
        text(t.secret.expose()),
    )
}

fn render_devices(devices: &[DeviceView]) -> String {
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            let (kind, detail) = match d.kind {
                DeviceKindView::Totp { digits } => ("totp", format!("{digits} digits")),
                DeviceKindView::Static { tokens_left } => {
                    ("static", format!("{tokens_left} tokens left"))
                }
            };
            vec![
                text(&d.id),
                kind.to_string(),
                text(&d.label),
                detail,
                opt(d.created.as_deref()),
            ]
        })
        .collect();
    table(&["ID", "KIND", "LABEL", "DETAIL", "CREATED"], &rows)
}

fn render_app_passwords(list: &[AppPasswordView]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            vec![
                text(&p.id),
                text(&p.name),
                opt(p.created.as_deref()),
                opt(p.expires.as_deref()),
                opt(p.last_used.as_deref()),
                opt(p.last_used_from.as_deref()),
            ]
        })
        .collect();
    table(
        &["ID", "NAME", "CREATED", "EXPIRES", "LAST USED", "FROM"],
        &rows,
    )
}

/// A group's own setting; none inherits.
fn inherit(value: Option<&str>) -> String {
    match opt(value) {
        none if none == "-" => "inherit".into(),
        value => value,
    }
}

fn render_policy(p: &PolicyView) -> String {
    let source = |s: &PolicySource| {
        if opt(s.overridden.as_deref()) == "-" {
            "from the config".to_string()
        } else {
            format!("set with the CLI; config says {}", text(&s.config))
        }
    };
    let mut out = format!(
        "mfa:            {} ({})\napp passwords:  {} ({})\n",
        text(&p.mfa.effective),
        source(&p.mfa),
        text(&p.app_passwords.effective),
        source(&p.app_passwords),
    );
    let rows: Vec<Vec<String>> = p
        .groups
        .iter()
        .map(|g| {
            vec![
                text(&g.group),
                inherit(g.mfa.as_deref()),
                inherit(g.app_passwords.as_deref()),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.push_str(
            "\ngroup policies (beat the global one; the strictest of a user's groups wins):\n",
        );
        out.push_str(&table(&["GROUP", "MFA", "APP PASSWORDS"], &rows));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::{parse, parse_err, s};
    use crate::cli::Command;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90m").ok(), Some(5400));
        assert_eq!(parse_duration("12h").ok(), Some(43200));
        assert_eq!(parse_duration("30d").ok(), Some(30 * 86400));
        assert_eq!(parse_duration("2s").ok(), Some(2));
        assert_eq!(parse_duration("1w").ok(), Some(7 * 86400));
        for bad in ["", "30", "d", "0d", "-1d", "3y", "99999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn qr_is_drawn() {
        let q = qr("otpauth://totp/Portcullis:alice?secret=ABC");
        assert!(q.lines().count() > 10);
    }

    #[test]
    fn mfa_and_app_password_commands() {
        let req = |args: &[&str]| match parse(args).command {
            Command::Mfa(cmd) => mfa_request(cmd),
            Command::AppPassword(cmd) => app_password_request(cmd),
            Command::Token(cmd) => token_request(cmd),
            other => panic!("{args:?}: {other:?}"),
        };
        assert_eq!(
            req(&["mfa", "totp", "add", "alice"]),
            AdminRequest::MfaTotpAdd {
                username: s("alice"),
                digits: 6,
                label: None
            }
        );
        assert_eq!(
            req(&["mfa", "totp", "add", "alice", "--digits", "8", "--json"]),
            AdminRequest::MfaTotpAdd {
                username: s("alice"),
                digits: 8,
                label: None
            }
        );
        assert_eq!(
            req(&["mfa", "static", "add", "alice", "--count", "10"]),
            AdminRequest::MfaStaticAdd {
                username: s("alice"),
                count: 10,
                label: None
            }
        );
        assert_eq!(
            req(&["mfa", "remove", "alice", "42"]),
            AdminRequest::MfaRemove {
                username: s("alice"),
                device: s("42")
            }
        );
        assert_eq!(
            req(&["mfa", "policy", "set", "--group", "svc", "off"]),
            AdminRequest::MfaPolicySet {
                group: Some(s("svc")),
                policy: s("off")
            }
        );
        assert_eq!(req(&["mfa", "policy", "show"]), AdminRequest::PolicyShow);
        assert_eq!(
            req(&[
                "app-password",
                "add",
                "bob",
                "--name",
                "mail",
                "--expires",
                "30d"
            ]),
            AdminRequest::AppPasswordAdd {
                username: s("bob"),
                name: s("mail"),
                expires_in_secs: Some(30 * 86400)
            }
        );
        assert_eq!(
            req(&["app-password", "revoke", "bob", "x"]),
            AdminRequest::AppPasswordRevoke {
                username: s("bob"),
                id: s("x")
            }
        );
        assert_eq!(
            req(&["token", "add", "bob", "--name", "ci", "--expires", "12h"]),
            AdminRequest::TokenAdd {
                username: s("bob"),
                name: s("ci"),
                expires_in_secs: Some(12 * 3600)
            }
        );
        assert_eq!(
            req(&["token", "list", "bob"]),
            AdminRequest::TokenList { username: s("bob") }
        );
        assert_eq!(
            req(&["token", "revoke", "bob", "x"]),
            AdminRequest::TokenRevoke {
                username: s("bob"),
                id: s("x")
            }
        );
        assert_eq!(
            req(&["app-password", "policy", "set", "inherit"]),
            AdminRequest::AppPasswordPolicySet {
                group: None,
                setting: s("inherit")
            }
        );
        use clap::error::ErrorKind;
        assert_eq!(
            parse_err(&["mfa", "totp", "add", "alice", "--digits", "7"]),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            parse_err(&["app-password", "add", "bob"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            parse_err(&[
                "app-password",
                "add",
                "bob",
                "--name",
                "x",
                "--expires",
                "3y"
            ]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            parse_err(&["mfa", "policy", "set", "sometimes"]),
            ErrorKind::InvalidValue
        );
    }
}
