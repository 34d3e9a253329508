//! Settings: defaults, then a TOML file, then `PORTCULLIS_*` environment
//! variables, then command-line flags, resolved into one validated, typed
//! [`Config`] by [`Config::load`].
//!
//! Two layers, as ripgrep does it: `file` is the raw layer (the TOML
//! file's shape and every default), `keys` the table that declares each key
//! once (its dotted name, environment variable, flag and text parser, used
//! for both the environment and the flags), and `resolve` checks the raw
//! values and turns them into [`Config`]: socket addresses, a parsed base
//! DN, the MFA policy, durations and paths, so no caller parses a setting
//! again.
//!
//! This module knows nothing of clap or of the process environment: flags
//! arrive as [`Overrides`] and the environment as an iterator, so every
//! precedence rule is unit-tested. Every key is documented, with its default,
//! in `config/portcullis.toml`.
//!
//! Environment variables: `PORTCULLIS_DATA_DIR`, `PORTCULLIS_BASE_DN`,
//! `PORTCULLIS_LDAP_ADDR`, `PORTCULLIS_LDAPS_ADDR`, `PORTCULLIS_HTTP_ADDR`
//! (`portal.addr`), and `PORTCULLIS_<SECTION>_<KEY>` for every other key
//! (see the key table in `keys`). `PORTCULLIS_CONFIG` names the config file
//! when no file is given explicitly. Any other `PORTCULLIS_*` variable is an
//! error, so a typo never silently leaves a default in place.

mod file;
mod keys;
mod resolve;
#[cfg(test)]
mod tests;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::auth::password::HashConfig;
use crate::directory::Dn;
use crate::domain::MfaPolicy;
use file::RawConfig;

pub use resolve::MAX_KEEP_ATTRIBUTES;

/// Every setting of the server, checked and typed. Each default is DESIGN.md
/// section 2's (written once, in the raw layer).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the sled database, the admin socket and generated files live.
    pub data_dir: PathBuf,
    /// Suffix of the served tree.
    pub base_dn: Dn,
    pub ldap: LdapConfig,
    pub portal: PortalConfig,
    pub auth: HashConfig,
    pub log: LogConfig,
    pub bind: BindConfig,
    pub throttle: ThrottleSettings,
    pub tls: TlsConfig,
    pub import: ImportConfig,
    pub backup: BackupConfig,
    pub password: PasswordConfig,
    pub accounts: AccountsConfig,
    pub store: StoreConfig,
}

/// `[ldap]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LdapConfig {
    /// Plain LDAP listener.
    pub addr: SocketAddr,
    /// LDAPS listener.
    pub ldaps_addr: SocketAddr,
    /// Connections beyond this are closed at once.
    pub max_connections: usize,
    /// Server-side cap on entries per search (0 = none).
    pub size_limit: usize,
    /// Server-side cap on the time of a search (`time_limit_secs`; `None`
    /// when it is 0).
    pub time_limit: Option<Duration>,
    /// Members of this group (and admins) may read the whole tree.
    pub search_group: String,
    /// Members of this group administer the directory.
    pub admin_group: String,
    /// When a simple bind with a password needs an encrypted connection.
    pub require_tls_for_bind: RequireTls,
    /// Largest request accepted, in bytes; a larger one closes the
    /// connection before it is read.
    pub max_message_bytes: usize,
    /// Deepest BER nesting accepted (bounds filter depth and parser stack).
    pub max_ber_depth: usize,
    /// Operations one connection may have in progress; more get busy (51).
    pub max_ops_per_connection: usize,
    /// How long a TLS handshake (LDAPS or StartTLS) may take
    /// (`tls_handshake_timeout_secs`).
    pub tls_handshake_timeout: Duration,
    /// How long a new connection may take to send its first request
    /// (`first_message_timeout_secs`).
    pub first_message_timeout: Duration,
    /// How long a connection may sit without a request or an operation in
    /// progress before it is closed (`idle_timeout_secs`; `None`, never,
    /// when it is 0).
    pub idle_timeout: Option<Duration>,
    /// Binds waiting for a password-hashing worker; beyond that a bind
    /// gets busy (51) instead of queueing without bound.
    pub max_queued_binds: usize,
    /// memberOf lists every group reached through nested groups (and
    /// `(memberOf=G)` matches them), for clients that cannot send the
    /// in-chain rule (issue 6). Off: direct groups only (DESIGN.md §3).
    pub transitive_member_of: bool,
    /// Threads that serve LDAP connections, each running its own
    /// single-threaded event loop (0 = number of cores).
    pub reactor_threads: usize,
    /// Estimated bytes all open paged searches together may keep for
    /// their later pages; beyond it a new paged search gets
    /// adminLimitExceeded (11) (issue 16).
    pub paged_results_max_bytes: usize,
    /// A paged search whose next page is not asked for within this is
    /// forgotten and its memory freed (`paged_results_idle_secs`).
    pub paged_results_idle: Duration,
}

/// `ldap.require_tls_for_bind`: when a simple bind with a password must
/// arrive over TLS (LDAPS or after StartTLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequireTls {
    /// Required unless the plain listener is on a loopback address.
    Auto,
    /// Required everywhere.
    Always,
    /// Never required (passwords may cross the network in the clear).
    Never,
}

impl RequireTls {
    fn parse(value: &str) -> Result<RequireTls, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(RequireTls::Auto),
            "always" => Ok(RequireTls::Always),
            "never" => Ok(RequireTls::Never),
            _ => Err(format!("`{value}` is not one of auto, always, never")),
        }
    }
}

/// Certificates for LDAPS and StartTLS. `cert_file` and `key_file` are
/// both set or both `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first. `None`: a self-signed certificate
    /// is generated into `<data_dir>/tls/` on first start.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Extra DNS name for the generated certificate (besides localhost,
    /// 127.0.0.1 and ::1), e.g. the name clients use to reach the server.
    pub hostname: String,
}

/// `[portal]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PortalConfig {
    /// The HTTP listener: the self-service portal, `/metrics`, `/healthz`.
    pub addr: SocketAddr,
    /// HTTP connections beyond this are closed at once; a cap of its own,
    /// so an HTTP flood cannot take LDAP's connections or descriptors.
    pub max_connections: usize,
    /// How long a request's headers may take to arrive, also while a
    /// kept-alive connection waits for its next request
    /// (`header_timeout_secs`); a slower request is dropped.
    pub header_timeout: Duration,
    /// How long a connection may go without reading or writing a byte
    /// before it is closed (`idle_timeout_secs`; `None`, never, when 0).
    pub idle_timeout: Option<Duration>,
    /// Largest request body accepted; a larger one gets 413.
    pub max_body_bytes: usize,
    /// How long requests in flight may take to finish after SIGTERM
    /// before their connections are dropped (`drain_secs`).
    pub drain: Duration,
    /// A portal session without a request for this long ends
    /// (`session_idle_secs`).
    pub session_idle: Duration,
    /// A portal session ends this long after sign-in, however used
    /// (`session_max_secs`).
    pub session_max: Duration,
    /// What users may change of their own details unless the attributes
    /// `goauthentik.io/user/can-change-*` of their groups or their own say
    /// otherwise (`can_change_username|name|email`).
    pub can_change: crate::account::profile::CanChange,
    /// A password change at the portal ends the user's other portal
    /// sessions (`end_sessions_on_password_change`).
    pub end_sessions_on_password_change: bool,
    /// How long an app password or API token made at the portal lives
    /// when its form leaves "Expires" empty, and the longest it may live
    /// (`token_default_lifetime_secs`, `token_max_lifetime_secs`); the
    /// attribute `goauthentik.io/user/token-maximum-lifetime` lowers the
    /// maximum for a user.
    pub token_lifetimes: crate::account::credentials::Lifetimes,
    /// Serve HTTPS with the LDAPS certificate (`tls`); session cookies are
    /// then `Secure`.
    pub tls: bool,
    /// Peers whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed
    /// (`trusted_proxies`); from anyone else they are ignored.
    pub trusted_proxies: Vec<crate::domain::net::Cidr>,
}

/// MFA-aware bind (DESIGN.md section 4). A section of its own rather than
/// keys under `[auth]`, which holds the password hashing costs.
#[derive(Debug, Clone, PartialEq)]
pub struct BindConfig {
    /// Code-based MFA on LDAP. The CLI (`mfa policy set`) overrides it, and
    /// groups may set their own.
    pub mfa: MfaPolicy,
    /// Whether app passwords bind. The CLI (`app-password policy set`)
    /// overrides it, and groups may set their own.
    pub app_passwords: bool,
    /// Issuer shown by authenticator apps (the otpauth URI's `issuer`).
    pub totp_issuer: String,
    /// The bind cache (issue 5): a repeated identical password bind (no
    /// code) skips argon2 for `cache_ttl`. See `auth::cache`.
    pub cache: bool,
    /// How long a verified password is remembered (`cache_ttl_secs`).
    pub cache_ttl: Duration,
    /// Most remembered binds; bounds the cache's memory.
    pub cache_max_entries: usize,
}

/// Bind throttling thresholds (DESIGN.md section 4).
#[derive(Debug, Clone, PartialEq)]
pub struct ThrottleSettings {
    /// Consecutive failures of one account before it is locked for a while.
    pub account_failures: u32,
    /// Lock after the `account_failures`-th failure (`account_delay_ms`);
    /// doubles with each further failure.
    pub account_delay: Duration,
    /// Cap of that lock (`account_max_delay_secs`).
    pub account_max_delay: Duration,
    /// Wrong or replayed codes of one account (after a right password)
    /// before its code binds are locked; app passwords keep working, and
    /// only a bind with a correct code resets the count.
    pub code_failures: u32,
    /// Lock after the `code_failures`-th wrong code (`code_delay_ms`);
    /// doubles with each further one.
    pub code_delay: Duration,
    /// Cap of that lock (`code_max_delay_secs`); the count is forgotten
    /// this long after a lock has ended.
    pub code_max_delay: Duration,
    /// Failures from one source address within the window before that
    /// address is refused until the window ends (0 = no limit).
    pub address_failures: u32,
    /// The per-address window (`address_window_secs`).
    pub address_window: Duration,
}

/// `portcullis import` of LDIF.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportConfig {
    /// Attributes of imported users that the server does not map (e.g.
    /// `employeeType`, `roomNumber`), kept in the user's record and served
    /// when the schema knows them, instead of being reported and dropped.
    /// Case-insensitive.
    pub keep_attributes: Vec<String>,
}

/// `[store]`: where the directory lives.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreConfig {
    /// The embedded sled database in the data directory (the default).
    Sled(SledConfig),
    /// A PostgreSQL database that several instances may share (issue 14).
    Postgres(PostgresConfig),
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::Sled(SledConfig::default())
    }
}

/// `[store] backend = "sled"`.
#[derive(Debug, Clone, PartialEq)]
pub struct SledConfig {
    /// Most memory the decoded user and group records may take
    /// (`record_cache_mib`, in MiB; 0 keeps none). The cache grows with
    /// what is read, so a small directory never reaches it.
    pub record_cache_mib: usize,
    /// Most memory sled's own cache of database pages may take
    /// (`page_cache_mib`, in MiB).
    pub page_cache_mib: usize,
}

impl Default for SledConfig {
    fn default() -> Self {
        SledConfig {
            record_cache_mib: crate::store::DEFAULT_RECORD_CACHE_MIB,
            page_cache_mib: crate::store::DEFAULT_PAGE_CACHE_MIB,
        }
    }
}

impl SledConfig {
    pub fn record_cache_bytes(&self) -> usize {
        self.record_cache_mib.saturating_mul(1 << 20)
    }

    pub fn page_cache_bytes(&self) -> u64 {
        (self.page_cache_mib as u64).saturating_mul(1 << 20)
    }
}

/// `[store] backend = "postgres"`.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresConfig {
    /// Where the connection URL comes from: `url`, or the file named by
    /// `url_file` (read when the store opens), so the password stays off
    /// command lines and out of the environment.
    pub url: DatabaseUrl,
    /// Most connections one instance holds.
    pub pool_size: usize,
    /// A statement running longer is cancelled by the server (`None`: 0,
    /// no limit).
    pub statement_timeout: Option<Duration>,
}

/// A PostgreSQL URL as configured. Its `Debug` never shows the text, which
/// may hold a password.
#[derive(Clone, PartialEq)]
pub enum DatabaseUrl {
    Text(String),
    File(PathBuf),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Text(_) => f.write_str("Text(********)"),
            DatabaseUrl::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// `[backup]`: scheduled backups of a running server.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupConfig {
    /// Where the backups go (created with mode 0700 if missing); `None`
    /// (the default): no scheduled backups.
    pub dir: Option<PathBuf>,
    /// Time between two backups (`interval_secs`); the first is due one
    /// interval after the newest backup already in `dir`, or at start when
    /// there is none.
    pub interval: Duration,
    /// How many of the newest backups are kept; older ones are removed
    /// after each new one is written.
    pub keep: usize,
}

/// `[password]`: the policy for new passwords in clear (see
/// `account::password::PasswordPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordConfig {
    /// Fewest characters.
    pub min_length: usize,
    /// Lowest zxcvbn score, 0 (off) to 4.
    pub min_strength: u8,
}

/// `[accounts]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountsConfig {
    /// The shells a user may choose for themself (an LDAP modify of their
    /// own loginShell). Admins may set any absolute path.
    pub login_shells: Vec<String>,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `portcullis=debug`.
    pub level: String,
    /// Log lines as JSON objects instead of text.
    pub json: bool,
}

/// The defaults, resolved: what [`Config::load`] gives with no file, no
/// environment and no flags. For tests, which build a `Config` by hand; the
/// server always loads one.
#[cfg(test)]
impl Default for Config {
    fn default() -> Self {
        RawConfig::default()
            .resolve(&Origins::default())
            .expect("the built-in defaults are valid")
    }
}

/// Settings given as command-line flags; `None` leaves the value from the
/// file, the environment or the default in place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
    /// `serve --base-dn`
    pub base_dn: Option<String>,
    /// `serve --ldap-addr`
    pub ldap_addr: Option<String>,
    /// `serve --ldaps-addr`
    pub ldaps_addr: Option<String>,
    /// `serve --http-addr`
    pub http_addr: Option<String>,
}

impl Overrides {
    /// Each flag with its value, if given; the key table says which key
    /// each flag sets.
    fn given(&self) -> [(&'static str, Option<String>); 5] {
        [
            (
                "--data-dir",
                self.data_dir
                    .as_ref()
                    .map(|d| d.to_string_lossy().into_owned()),
            ),
            ("--base-dn", self.base_dn.clone()),
            ("--ldap-addr", self.ldap_addr.clone()),
            ("--ldaps-addr", self.ldaps_addr.clone()),
            ("--http-addr", self.http_addr.clone()),
        ]
    }
}

/// Names the config file when no `--config` flag is given.
pub const CONFIG_ENV: &str = "PORTCULLIS_CONFIG";

/// Where a setting's value came from, so an error can say what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(String),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the default"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `err` is in the message rather than the error chain, so the message
    /// is one line that says it once.
    #[error("cannot read config file {}: {err}", path.display())]
    Read { path: PathBuf, err: std::io::Error },
    /// Syntax errors, unknown keys and values of the wrong type in the file;
    /// `message` is the TOML parser's, which names the key and the line.
    #[error("config file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("unknown environment variable {name}{hint}")]
    UnknownEnv { name: String, hint: String },
    #[error("invalid {key} (from {origin}): {message}")]
    Invalid {
        key: &'static str,
        origin: Origin,
        message: String,
    },
}

/// Which source set each key; keys absent here have their default.
#[derive(Debug, Default)]
struct Origins(BTreeMap<&'static str, Origin>);

impl Origins {
    fn set(&mut self, key: &'static str, origin: Origin) {
        self.0.insert(key, origin);
    }
    fn of(&self, key: &'static str) -> Origin {
        self.0.get(key).cloned().unwrap_or(Origin::Default)
    }
    fn invalid(&self, key: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key,
            origin: self.of(key),
            message: message.into(),
        }
    }
}

impl Config {
    /// Resolves the settings: defaults, then `file` (or the file named by
    /// `PORTCULLIS_CONFIG` in `env` when `file` is `None`), then the
    /// `PORTCULLIS_*` variables of `env`, then `overrides`; then validates.
    pub fn load(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut env: Vec<(String, String)> = env
            .filter(|(name, _)| name.starts_with("PORTCULLIS_"))
            .collect();
        env.sort();

        let mut origins = Origins::default();
        let env_file = env
            .iter()
            .find(|(name, value)| name == CONFIG_ENV && !value.is_empty())
            .map(|(_, value)| PathBuf::from(value));
        let mut raw = match file.map(Path::to_path_buf).or(env_file) {
            Some(path) => RawConfig::from_file(&path, &mut origins)?,
            None => RawConfig::default(),
        };

        for (name, value) in &env {
            if name == CONFIG_ENV {
                continue;
            }
            let Some(key) = keys::by_env(name) else {
                return Err(ConfigError::UnknownEnv {
                    name: name.clone(),
                    hint: keys::env_hint(name),
                });
            };
            origins.set(key.name, Origin::Env(key.env.to_string()));
            (key.apply)(&mut raw, value).map_err(|message| origins.invalid(key.name, message))?;
        }

        for (flag, value) in overrides.given() {
            let Some(value) = value else { continue };
            // Every flag of `Overrides` is in the key table (a test checks).
            let key = keys::by_flag(flag).ok_or_else(|| ConfigError::Invalid {
                key: "flags",
                origin: Origin::Flag(flag),
                message: "sets no known key".into(),
            })?;
            origins.set(key.name, Origin::Flag(flag));
            (key.apply)(&mut raw, &value).map_err(|message| origins.invalid(key.name, message))?;
        }
        // A flag's path is taken as is, even if it is not UTF-8.
        if let Some(dir) = &overrides.data_dir {
            raw.data_dir = dir.clone();
        }

        raw.resolve(&origins)
    }

    /// The admin socket of a running server: `<data_dir>/admin.sock`.
    pub fn admin_socket_path(&self) -> PathBuf {
        self.data_dir.join("admin.sock")
    }

    /// Where the first start writes the admin's password.
    pub fn initial_password_path(&self) -> PathBuf {
        self.data_dir.join("initial-admin-password")
    }

    /// The bind decision's settings: policy defaults and throttle
    /// thresholds.
    pub fn auth_settings(&self) -> crate::auth::AuthSettings {
        let t = &self.throttle;
        crate::auth::AuthSettings {
            policy: crate::auth::policy::PolicyDefaults {
                mfa: self.bind.mfa,
                app_passwords: self.bind.app_passwords,
            },
            throttle: crate::auth::throttle::ThrottleConfig {
                account_failures: t.account_failures,
                account_delay: t.account_delay,
                account_max_delay: t.account_max_delay,
                code_failures: t.code_failures,
                code_delay: t.code_delay,
                code_max_delay: t.code_max_delay,
                address_failures: t.address_failures,
                address_window: t.address_window,
            },
            cache: crate::auth::cache::CacheConfig {
                enabled: self.bind.cache,
                ttl: self.bind.cache_ttl,
                max_entries: self.bind.cache_max_entries,
            },
        }
    }
}
