//! Second factors, app passwords and bind policies as admin answers show
//! them.
//!
//! A secret (a TOTP secret, static tokens, an app password) is only in the
//! answer that creates it ([`TotpAdded`], [`StaticAdded`],
//! [`AppPasswordAdded`]), wrapped in a [`Secret`] so no `Debug` shows it.
//! Listings show ids, labels and times only.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A value shown to the operator once. Serialized as the value itself; its
/// `Debug` prints `********`, so an answer can be logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// `mfa totp add`: the new device and, this once, its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpAdded {
    pub id: String,
    /// Base32, for typing into an authenticator app.
    pub secret: Secret<String>,
    /// `otpauth://` URI (it contains the secret), for the QR code.
    pub uri: Secret<String>,
    pub digits: u8,
    /// Seconds per code.
    pub period: u64,
    /// Always `SHA1` (RFC 6238's default, the one every app supports).
    pub algorithm: String,
}

/// `mfa static add`: the new device and, this once, its tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticAdded {
    pub id: String,
    pub tokens: Secret<Vec<String>>,
}

/// An element of `mfa list`: never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceView {
    pub id: String,
    pub label: String,
    /// RFC 3339; `null` only for a timestamp out of range.
    pub created: Option<String>,
    /// Only confirmed devices count for bind.
    pub confirmed: bool,
    /// When a code of it was last accepted (TOTP only), RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<String>,
    /// `"kind": "totp", "digits": …` or `"kind": "static", "tokens_left": …`.
    #[serde(flatten)]
    pub kind: DeviceKindView,
}

/// The kind of a [`DeviceView`] and what is worth knowing about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeviceKindView {
    Totp { digits: u8 },
    Static { tokens_left: usize },
}

/// `app-password add`: the new app password and, this once, its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPasswordAdded {
    pub id: String,
    pub name: String,
    pub secret: Secret<String>,
    /// RFC 3339; `null` when it never expires.
    pub expires: Option<String>,
}

/// An element of `app-password list`: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPasswordView {
    pub id: String,
    pub name: String,
    /// RFC 3339 times; `null` when there is none.
    pub created: Option<String>,
    pub expires: Option<String>,
    pub expired: bool,
    pub last_used: Option<String>,
    /// Source address of the last bind with it.
    pub last_used_from: Option<String>,
}

/// `mfa policy show|set` and `app-password policy show|set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyView {
    /// `if-enrolled`, `required` or `off`.
    pub mfa: PolicySource,
    /// `on` or `off`.
    pub app_passwords: PolicySource,
    /// Groups that set a policy of their own, in the store's order.
    pub groups: Vec<GroupPolicyView>,
    /// How group, global and config settings combine, in words.
    pub precedence: String,
}

/// One global setting and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySource {
    /// The config file's value.
    pub config: String,
    /// Set with the CLI; `null` when the config's value holds.
    #[serde(rename = "override")]
    pub overridden: Option<String>,
    /// The value in force.
    pub effective: String,
}

/// A group's own settings; `null` inherits the global one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPolicyView {
    pub group: String,
    pub mfa: Option<String>,
    pub app_passwords: Option<String>,
}
