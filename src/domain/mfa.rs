//! Second factors and app passwords as the domain sees them: MFA devices,
//! TOTP secrets, keyed hashes of static tokens and app passwords, the raw
//! records a backup carries, and the per-group bind policies. Records that
//! are turned into output ([`Device`], [`AppPassword`], [`GroupPolicy`])
//! carry no secret. How a backend keeps them: `sled/mfa.rs`.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use super::{Result, StoreError, Timestamp};

/// Length of the keyed hashes the store indexes (HMAC-SHA256).
pub const HASH_LEN: usize = 32;
/// A keyed hash of a static token or an app password.
pub type KeyedHash = [u8; HASH_LEN];

/// Most devices one user may have; bounds every per-bind loop over them.
pub const MAX_DEVICES: usize = 16;
/// Most app passwords and API tokens one user may have, together.
pub const MAX_APP_PASSWORDS: usize = 64;
/// Most tokens one static device may hold.
pub const MAX_STATIC_TOKENS: usize = 32;
/// Longest device label or app password name, in bytes.
pub const MAX_LABEL_LEN: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceId(pub Uuid);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AppPasswordId(pub Uuid);

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for AppPasswordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What kind of second factor a device is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// RFC 6238, SHA1, 30-second steps.
    Totp { digits: u8 },
    /// Single-use recovery tokens.
    Static,
}

/// An MFA device. Holds no secret: safe to show and to serialize.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: DeviceId,
    pub kind: DeviceKind,
    pub label: String,
    pub created: Timestamp,
    /// Only confirmed devices count for bind. Devices the CLI creates are
    /// confirmed at once; a self-service enrolment (portal) confirms with a
    /// first code.
    pub confirmed: bool,
}

/// A TOTP shared secret. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(pub Vec<u8>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// What a labelled secret is for. Both kinds are kept alike (a label, an
/// optional expiry, the last use, a keyed hash), as authentik keeps app
/// passwords as tokens with an intent; what they open differs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// Binds over LDAP without a code; nothing else.
    #[default]
    AppPassword,
    /// `Authorization: Bearer` on the portal's `/api/v1`; never an LDAP
    /// bind or the sign-in page.
    ApiToken,
}

impl CredentialKind {
    pub fn is_app_password(&self) -> bool {
        *self == CredentialKind::AppPassword
    }

    /// "app password" or "API token", for messages.
    pub fn noun(&self) -> &'static str {
        match self {
            CredentialKind::AppPassword => "app password",
            CredentialKind::ApiToken => "API token",
        }
    }
}

/// An app password's (or API token's) record. The secret itself is never
/// stored; its keyed hash lives in its own tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppPassword {
    pub id: AppPasswordId,
    /// Absent in records written before API tokens existed: app passwords.
    #[serde(default)]
    pub kind: CredentialKind,
    /// What it is for (`--name`), shown in listings and audit logs.
    pub name: String,
    pub created: Timestamp,
    /// After this time it no longer binds and is removed.
    pub expires: Option<Timestamp>,
    pub last_used: Option<Timestamp>,
    /// Source address of the last bind with it.
    pub last_used_from: Option<String>,
}

impl AppPassword {
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

/// A device with everything a restore needs: its secret, last accepted
/// step and unused static token hashes. Only backups handle it; its
/// `Debug` shows no secret.
#[derive(Clone, PartialEq)]
pub struct RawDevice {
    pub device: Device,
    /// The TOTP secret (TOTP devices).
    pub totp_secret: Option<TotpSecret>,
    /// The last accepted TOTP step, so a code used before a backup stays
    /// used after the restore.
    pub totp_last_step: Option<u64>,
    /// Keyed hashes of the static tokens not used yet (static devices).
    pub static_tokens: Vec<KeyedHash>,
}

impl fmt::Debug for RawDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawDevice")
            .field("device", &self.device)
            .field("totp_secret", &self.totp_secret)
            .field("totp_last_step", &self.totp_last_step)
            .field("static_tokens_left", &self.static_tokens.len())
            .finish()
    }
}

/// An app password's record with its keyed hash (backups only; `Debug`
/// hides the hash).
#[derive(Clone, PartialEq)]
pub struct RawAppPassword {
    pub record: AppPassword,
    pub hash: KeyedHash,
}

impl fmt::Debug for RawAppPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawAppPassword")
            .field("record", &self.record)
            .field("hash", &"********")
            .finish()
    }
}

/// One user's second factors as a restore writes them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawSecondFactors {
    pub devices: Vec<RawDevice>,
    pub app_passwords: Vec<RawAppPassword>,
}

impl RawSecondFactors {
    /// The rules the single-item operations enforce (counts, labels,
    /// digits, secret length), for records that come from a file.
    pub fn check(&self) -> Result<()> {
        if self.devices.len() > MAX_DEVICES {
            return Err(StoreError::Invalid(format!(
                "more than {MAX_DEVICES} MFA devices"
            )));
        }
        if self.app_passwords.len() > MAX_APP_PASSWORDS {
            return Err(StoreError::Invalid(format!(
                "more than {MAX_APP_PASSWORDS} app passwords"
            )));
        }
        for d in &self.devices {
            label("device label", &d.device.label)?;
            match d.device.kind {
                DeviceKind::Totp { digits } => {
                    if !matches!(digits, 6 | 8) {
                        return Err(StoreError::Invalid("TOTP codes have 6 or 8 digits".into()));
                    }
                    if d.totp_secret.as_ref().map_or(0, |s| s.0.len()) < 16 {
                        return Err(StoreError::Invalid(format!(
                            "TOTP device {} has no secret of at least 128 bits",
                            d.device.id
                        )));
                    }
                    if !d.static_tokens.is_empty() {
                        return Err(StoreError::Invalid(format!(
                            "TOTP device {} carries static tokens",
                            d.device.id
                        )));
                    }
                }
                DeviceKind::Static => {
                    if d.static_tokens.len() > MAX_STATIC_TOKENS {
                        return Err(StoreError::Invalid(format!(
                            "static device {} holds more than {MAX_STATIC_TOKENS} tokens",
                            d.device.id
                        )));
                    }
                    if d.totp_secret.is_some() || d.totp_last_step.is_some() {
                        return Err(StoreError::Invalid(format!(
                            "static device {} carries a TOTP secret",
                            d.device.id
                        )));
                    }
                }
            }
        }
        for a in &self.app_passwords {
            label("app password name", &a.record.name)?;
        }
        Ok(())
    }
}

/// Code-based MFA on LDAP binds (DESIGN.md section 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MfaPolicy {
    /// Devices are ignored on LDAP: the whole bind password is the password.
    Off,
    /// Users with a confirmed device must add a code; others need not.
    IfEnrolled,
    /// Password binds of users without a device are refused.
    Required,
}

impl MfaPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            MfaPolicy::Off => "off",
            MfaPolicy::IfEnrolled => "if-enrolled",
            MfaPolicy::Required => "required",
        }
    }

    pub fn parse(s: &str) -> Option<MfaPolicy> {
        match s {
            "off" => Some(MfaPolicy::Off),
            "if-enrolled" => Some(MfaPolicy::IfEnrolled),
            "required" => Some(MfaPolicy::Required),
            _ => None,
        }
    }
}

/// Explicit policies of one group; `None` inherits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<MfaPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_passwords: Option<bool>,
}

impl GroupPolicy {
    pub fn is_empty(&self) -> bool {
        self.mfa.is_none() && self.app_passwords.is_none()
    }
}

/// Store setting that overrides `bind.mfa` of the config when set.
pub const SETTING_MFA_POLICY: &str = "mfa_policy";
/// Store setting that overrides `bind.app_passwords` of the config when set.
pub const SETTING_APP_PASSWORDS: &str = "app_passwords";

/// A new confirmed device of `kind`, created now.
pub(crate) fn new_device(kind: DeviceKind, device_label: &str) -> Result<Device> {
    Ok(Device {
        id: DeviceId(Uuid::new_v4()),
        kind,
        label: label("device label", device_label)?,
        created: super::now(),
        confirmed: true,
    })
}

pub(crate) fn label(what: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(StoreError::Invalid(format!("the {what} must not be empty")));
    }
    if value.len() > MAX_LABEL_LEN {
        return Err(StoreError::Invalid(format!(
            "the {what} is longer than {MAX_LABEL_LEN} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "the {what} must not contain control characters"
        )));
    }
    Ok(value.to_string())
}
