//! The raw layer: the TOML file's shape, with every key's default.
//!
//! Values stay as the file writes them (addresses and the base DN as text,
//! durations as numbers of seconds or milliseconds); `resolve` checks them
//! and turns them into the typed [`Config`](super::Config). Environment
//! variables and flags are applied to this layer too (see `keys`), so a bad
//! value gets the same check wherever it came from. The defaults written
//! here are the only ones: DESIGN.md section 2's.

use serde::Deserialize;
use std::path::{Path, PathBuf};

use super::keys::KEYS;
use super::{ConfigError, Origin, Origins, RequireTls};
use crate::auth::password::HashConfig;

/// The whole file. Sections and keys as documented in
/// `config/portcullis.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    pub data_dir: PathBuf,
    pub base_dn: String,
    pub ldap: RawLdap,
    pub portal: RawPortal,
    pub auth: HashConfig,
    pub log: RawLog,
    pub bind: RawBind,
    pub throttle: RawThrottle,
    pub tls: RawTls,
    pub import: RawImport,
    pub backup: RawBackup,
    pub password: RawPassword,
    pub accounts: RawAccounts,
    pub store: RawStore,
}

/// `[ldap]`; see [`LdapConfig`](super::LdapConfig) for what each key does.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLdap {
    pub addr: String,
    pub ldaps_addr: String,
    pub max_connections: usize,
    pub size_limit: usize,
    pub time_limit_secs: u64,
    pub search_group: String,
    pub admin_group: String,
    pub require_tls_for_bind: RequireTls,
    pub max_message_bytes: usize,
    pub max_ber_depth: usize,
    pub max_ops_per_connection: usize,
    pub tls_handshake_timeout_secs: u64,
    pub first_message_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub max_queued_binds: usize,
    pub transitive_member_of: bool,
    pub reactor_threads: usize,
    pub paged_results_max_bytes: usize,
    pub paged_results_idle_secs: u64,
}

/// `[tls]`; empty paths mean "not set".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTls {
    pub cert_file: String,
    pub key_file: String,
    pub hostname: String,
}

/// `[portal]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPortal {
    pub addr: String,
    pub max_connections: usize,
    pub header_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub max_body_bytes: usize,
    pub drain_secs: u64,
    pub session_idle_secs: u64,
    pub session_max_secs: u64,
    pub can_change_username: bool,
    pub can_change_name: bool,
    pub can_change_email: bool,
    pub end_sessions_on_password_change: bool,
    pub token_default_lifetime_secs: u64,
    pub token_max_lifetime_secs: u64,
    pub tls: bool,
    pub trusted_proxies: Vec<String>,
}

/// `[bind]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawBind {
    pub mfa: String,
    pub app_passwords: bool,
    pub totp_issuer: String,
    pub cache: bool,
    pub cache_ttl_secs: u64,
    pub cache_max_entries: usize,
}

/// `[throttle]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawThrottle {
    pub account_failures: u32,
    pub account_delay_ms: u64,
    pub account_max_delay_secs: u64,
    pub code_failures: u32,
    pub code_delay_ms: u64,
    pub code_max_delay_secs: u64,
    pub address_failures: u32,
    pub address_window_secs: u64,
}

/// `[import]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawImport {
    pub keep_attributes: Vec<String>,
}

/// `[backup]`; an empty `dir` means no scheduled backups.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawBackup {
    pub dir: String,
    pub interval_secs: u64,
    pub keep: usize,
}

impl Default for RawBackup {
    fn default() -> Self {
        RawBackup {
            dir: String::new(),
            interval_secs: 86_400,
            keep: 7,
        }
    }
}

/// `[store]`; empty texts mean "not set". Its `Debug` never shows the
/// URL, which may hold a password.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStore {
    pub backend: String,
    pub url: String,
    pub url_file: String,
    pub pool_size: usize,
    pub statement_timeout_ms: u64,
    pub record_cache_mib: usize,
    pub page_cache_mib: usize,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            backend: "sled".into(),
            url: String::new(),
            url_file: String::new(),
            pool_size: 16,
            statement_timeout_ms: 5_000,
            record_cache_mib: crate::store::DEFAULT_RECORD_CACHE_MIB,
            page_cache_mib: crate::store::DEFAULT_PAGE_CACHE_MIB,
        }
    }
}

impl std::fmt::Debug for RawStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawStore")
            .field("backend", &self.backend)
            .field("url", &if self.url.is_empty() { "" } else { "********" })
            .field("url_file", &self.url_file)
            .field("pool_size", &self.pool_size)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .finish()
    }
}

/// `[password]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPassword {
    pub min_length: usize,
    pub min_strength: u8,
}

impl Default for RawPassword {
    fn default() -> Self {
        RawPassword {
            min_length: 8,
            min_strength: 2,
        }
    }
}

/// `[accounts]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAccounts {
    pub login_shells: Vec<String>,
}

impl Default for RawAccounts {
    fn default() -> Self {
        RawAccounts {
            login_shells: [
                "/bin/sh",
                "/bin/bash",
                "/usr/bin/bash",
                "/bin/dash",
                "/usr/bin/dash",
                "/bin/zsh",
                "/usr/bin/zsh",
                "/bin/fish",
                "/usr/bin/fish",
                "/bin/ksh",
                "/usr/bin/ksh",
                "/bin/tcsh",
                "/usr/bin/tcsh",
                "/bin/csh",
                "/usr/bin/csh",
                "/usr/sbin/nologin",
                "/sbin/nologin",
                "/bin/false",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLog {
    pub level: String,
    pub json: bool,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            data_dir: PathBuf::from("./data"),
            base_dn: "dc=example,dc=com".into(),
            ldap: RawLdap::default(),
            portal: RawPortal::default(),
            auth: HashConfig::default(),
            log: RawLog::default(),
            bind: RawBind::default(),
            throttle: RawThrottle::default(),
            tls: RawTls::default(),
            import: RawImport::default(),
            backup: RawBackup::default(),
            store: RawStore::default(),
            password: RawPassword::default(),
            accounts: RawAccounts::default(),
        }
    }
}

impl Default for RawLdap {
    fn default() -> Self {
        RawLdap {
            addr: "127.0.0.1:3389".into(),
            ldaps_addr: "127.0.0.1:6636".into(),
            max_connections: 4096,
            size_limit: 0,
            time_limit_secs: 0,
            search_group: "ldap-search".into(),
            admin_group: "admins".into(),
            require_tls_for_bind: RequireTls::Auto,
            max_message_bytes: 256 * 1024,
            max_ber_depth: 32,
            max_ops_per_connection: 32,
            tls_handshake_timeout_secs: 10,
            first_message_timeout_secs: 10,
            idle_timeout_secs: 600,
            max_queued_binds: 256,
            transitive_member_of: false,
            reactor_threads: 0,
            paged_results_max_bytes: 256 * 1024 * 1024,
            paged_results_idle_secs: 300,
        }
    }
}

impl Default for RawPortal {
    fn default() -> Self {
        RawPortal {
            addr: "127.0.0.1:8080".into(),
            max_connections: 1024,
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_body_bytes: 1024 * 1024,
            drain_secs: 5,
            session_idle_secs: 2 * 3600,
            session_max_secs: 24 * 3600,
            can_change_username: false,
            can_change_name: true,
            can_change_email: false,
            end_sessions_on_password_change: true,
            token_default_lifetime_secs: 30 * 24 * 3600,
            token_max_lifetime_secs: 365 * 24 * 3600,
            tls: false,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for RawBind {
    fn default() -> Self {
        RawBind {
            mfa: "if-enrolled".into(),
            app_passwords: true,
            totp_issuer: "Portcullis".into(),
            cache: true,
            cache_ttl_secs: 60,
            cache_max_entries: 100_000,
        }
    }
}

impl Default for RawThrottle {
    fn default() -> Self {
        RawThrottle {
            account_failures: 5,
            account_delay_ms: 1000,
            account_max_delay_secs: 300,
            code_failures: 3,
            code_delay_ms: 1000,
            code_max_delay_secs: 900,
            address_failures: 1000,
            address_window_secs: 60,
        }
    }
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: "info".into(),
            json: false,
        }
    }
}

impl RawConfig {
    /// Reads `path`, refusing unknown keys and values of the wrong type, and
    /// records in `origins` which keys it set.
    pub fn from_file(path: &Path, origins: &mut Origins) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.to_path_buf(),
            err,
        })?;
        let parse_error = |e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: toml_message(&text, &e),
        };
        let config: RawConfig = toml::from_str(&text).map_err(parse_error)?;
        // Record which keys the file set, for error messages. The typed
        // parse above already refused unknown keys.
        let table: toml::Table = text.parse().map_err(parse_error)?;
        for (name, value) in &table {
            let dotted: Vec<String> = match value.as_table() {
                Some(section) => section.keys().map(|k| format!("{name}.{k}")).collect(),
                None => vec![name.clone()],
            };
            for d in dotted {
                if let Some(key) = KEYS.iter().find(|key| key.name == d) {
                    origins.set(key.name, Origin::File(path.to_path_buf()));
                }
            }
        }
        Ok(config)
    }
}

/// One line for a TOML error: the line number and text it points at (which
/// names the key) and the parser's message.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) if span.start <= text.len() => {
            let before = text.get(..span.start).unwrap_or("");
            let number = before.matches('\n').count() + 1;
            let line = text.lines().nth(number - 1).unwrap_or("").trim();
            // `store.url` may hold a password: its line is not repeated.
            let line = if line.split('=').next().is_some_and(|k| k.trim() == "url") {
                "url = ********"
            } else {
                line
            };
            format!("line {number} (`{line}`): {message}")
        }
        _ => message,
    }
}
