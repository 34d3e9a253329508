//! Settings: defaults, then a TOML file, then `PORTCULLIS_*` environment
//! variables, then command-line flags, resolved into one validated
//! [`Config`] by [`Config::load`].
//!
//! This module knows nothing of clap or of the process environment: flags
//! arrive as [`Overrides`] and the environment as an iterator, so every
//! precedence rule is unit-tested. Every key is documented, with its default,
//! in `config/portcullis.toml`.
//!
//! Environment variables: `PORTCULLIS_DATA_DIR`, `PORTCULLIS_BASE_DN`,
//! `PORTCULLIS_LDAP_ADDR`, `PORTCULLIS_LDAPS_ADDR`, `PORTCULLIS_HTTP_ADDR`
//! (`portal.addr`), and `PORTCULLIS_<SECTION>_<KEY>` for every other key
//! (see [`KEYS`]). `PORTCULLIS_CONFIG` names the config file when no file is
//! given explicitly. Any other `PORTCULLIS_*` variable is an error, so a
//! typo never silently leaves a default in place.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::auth::password::HashConfig;

/// Every setting of the server. Each field's default is DESIGN.md section 2's.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the sled database, the admin socket and generated files live.
    pub data_dir: PathBuf,
    /// Suffix of the served tree.
    pub base_dn: String,
    pub ldap: LdapConfig,
    pub portal: PortalConfig,
    pub auth: HashConfig,
    pub log: LogConfig,
    pub bind: BindConfig,
    pub throttle: ThrottleSettings,
    pub tls: TlsConfig,
    pub import: ImportConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapConfig {
    /// Plain LDAP listener.
    pub addr: String,
    /// LDAPS listener (used once TLS is built).
    pub ldaps_addr: String,
    /// Connections beyond this are closed at once.
    pub max_connections: usize,
    /// Server-side cap on entries per search (0 = none).
    pub size_limit: usize,
    /// Server-side cap on seconds per search (0 = none).
    pub time_limit_secs: u64,
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
    /// Seconds a TLS handshake (LDAPS or StartTLS) may take.
    pub tls_handshake_timeout_secs: u64,
    /// Seconds a new connection may take to send its first request.
    pub first_message_timeout_secs: u64,
    /// Seconds a connection may sit without a request or an operation in
    /// progress before it is closed (0 = never).
    pub idle_timeout_secs: u64,
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

/// Certificates for LDAPS and StartTLS.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first. Empty: a self-signed certificate
    /// is generated into `<data_dir>/tls/` on first start.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for `cert_file`.
    pub key_file: String,
    /// Extra DNS name for the generated certificate (besides localhost,
    /// 127.0.0.1 and ::1), e.g. the name clients use to reach the server.
    pub hostname: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortalConfig {
    /// Self-service portal listener (the portal itself is a later issue).
    pub addr: String,
}

/// MFA-aware bind (DESIGN.md section 4). A section of its own rather than
/// keys under `[auth]`, which holds the password hashing costs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BindConfig {
    /// Code-based MFA on LDAP: `if-enrolled`, `required` or `off`. The CLI
    /// (`mfa policy set`) overrides it, and groups may set their own.
    pub mfa: String,
    /// Whether app passwords bind. The CLI (`app-password policy set`)
    /// overrides it, and groups may set their own.
    pub app_passwords: bool,
    /// Issuer shown by authenticator apps (the otpauth URI's `issuer`).
    pub totp_issuer: String,
    /// The bind cache (issue 5): a repeated identical password bind (no
    /// code) skips argon2 for `cache_ttl_secs`. See `auth::cache`.
    pub cache: bool,
    /// How long a verified password is remembered, in seconds.
    pub cache_ttl_secs: u64,
    /// Most remembered binds; bounds the cache's memory.
    pub cache_max_entries: usize,
}

/// Bind throttling thresholds (DESIGN.md section 4).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleSettings {
    /// Consecutive failures of one account before it is locked for a while.
    pub account_failures: u32,
    /// Lock after the `account_failures`-th failure, in milliseconds;
    /// doubles with each further failure.
    pub account_delay_ms: u64,
    /// Cap of that lock, in seconds.
    pub account_max_delay_secs: u64,
    /// Failures from one source address within the window before that
    /// address is refused until the window ends (0 = no limit).
    pub address_failures: u32,
    /// The per-address window, in seconds.
    pub address_window_secs: u64,
}

/// `portcullis import` of LDIF.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportConfig {
    /// Attributes of imported users that the server does not map (e.g.
    /// `employeeType`, `roomNumber`), kept in the user's record and served
    /// when the schema knows them, instead of being reported and dropped.
    /// Case-insensitive.
    pub keep_attributes: Vec<String>,
}

/// Most names `import.keep_attributes` may list.
pub const MAX_KEEP_ATTRIBUTES: usize = 64;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `portcullis=debug`.
    pub level: String,
    /// Log lines as JSON objects instead of text.
    pub json: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            base_dn: "dc=example,dc=com".into(),
            ldap: LdapConfig::default(),
            portal: PortalConfig::default(),
            auth: HashConfig::default(),
            log: LogConfig::default(),
            bind: BindConfig::default(),
            throttle: ThrottleSettings::default(),
            tls: TlsConfig::default(),
            import: ImportConfig::default(),
        }
    }
}

impl Default for LdapConfig {
    fn default() -> Self {
        LdapConfig {
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
        }
    }
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig {
            addr: "127.0.0.1:8080".into(),
        }
    }
}

impl Default for BindConfig {
    fn default() -> Self {
        BindConfig {
            mfa: "if-enrolled".into(),
            app_passwords: true,
            totp_issuer: "Portcullis".into(),
            cache: true,
            cache_ttl_secs: 60,
            cache_max_entries: 100_000,
        }
    }
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            account_failures: 5,
            account_delay_ms: 1000,
            account_max_delay_secs: 300,
            address_failures: 1000,
            address_window_secs: 60,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            json: false,
        }
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

/// Names the config file when no `--config` flag is given.
pub const CONFIG_ENV: &str = "PORTCULLIS_CONFIG";

/// Every settable key: its dotted name in the TOML file and its environment
/// variable.
pub const KEYS: &[(&str, &str)] = &[
    ("data_dir", "PORTCULLIS_DATA_DIR"),
    ("base_dn", "PORTCULLIS_BASE_DN"),
    ("ldap.addr", "PORTCULLIS_LDAP_ADDR"),
    ("ldap.ldaps_addr", "PORTCULLIS_LDAPS_ADDR"),
    ("ldap.max_connections", "PORTCULLIS_LDAP_MAX_CONNECTIONS"),
    ("ldap.size_limit", "PORTCULLIS_LDAP_SIZE_LIMIT"),
    ("ldap.time_limit_secs", "PORTCULLIS_LDAP_TIME_LIMIT_SECS"),
    ("ldap.search_group", "PORTCULLIS_LDAP_SEARCH_GROUP"),
    ("ldap.admin_group", "PORTCULLIS_LDAP_ADMIN_GROUP"),
    (
        "ldap.transitive_member_of",
        "PORTCULLIS_LDAP_TRANSITIVE_MEMBER_OF",
    ),
    ("portal.addr", "PORTCULLIS_HTTP_ADDR"),
    (
        "auth.argon2_memory_kib",
        "PORTCULLIS_AUTH_ARGON2_MEMORY_KIB",
    ),
    (
        "auth.argon2_iterations",
        "PORTCULLIS_AUTH_ARGON2_ITERATIONS",
    ),
    (
        "auth.argon2_parallelism",
        "PORTCULLIS_AUTH_ARGON2_PARALLELISM",
    ),
    ("auth.hash_workers", "PORTCULLIS_AUTH_HASH_WORKERS"),
    ("ldap.reactor_threads", "PORTCULLIS_LDAP_REACTOR_THREADS"),
    ("log.level", "PORTCULLIS_LOG_LEVEL"),
    ("log.json", "PORTCULLIS_LOG_JSON"),
    ("bind.mfa", "PORTCULLIS_BIND_MFA"),
    ("bind.app_passwords", "PORTCULLIS_BIND_APP_PASSWORDS"),
    ("bind.totp_issuer", "PORTCULLIS_BIND_TOTP_ISSUER"),
    ("bind.cache", "PORTCULLIS_BIND_CACHE"),
    ("bind.cache_ttl_secs", "PORTCULLIS_BIND_CACHE_TTL_SECS"),
    (
        "bind.cache_max_entries",
        "PORTCULLIS_BIND_CACHE_MAX_ENTRIES",
    ),
    (
        "throttle.account_failures",
        "PORTCULLIS_THROTTLE_ACCOUNT_FAILURES",
    ),
    (
        "throttle.account_delay_ms",
        "PORTCULLIS_THROTTLE_ACCOUNT_DELAY_MS",
    ),
    (
        "throttle.account_max_delay_secs",
        "PORTCULLIS_THROTTLE_ACCOUNT_MAX_DELAY_SECS",
    ),
    (
        "throttle.address_failures",
        "PORTCULLIS_THROTTLE_ADDRESS_FAILURES",
    ),
    (
        "throttle.address_window_secs",
        "PORTCULLIS_THROTTLE_ADDRESS_WINDOW_SECS",
    ),
    (
        "ldap.require_tls_for_bind",
        "PORTCULLIS_LDAP_REQUIRE_TLS_FOR_BIND",
    ),
    (
        "ldap.max_message_bytes",
        "PORTCULLIS_LDAP_MAX_MESSAGE_BYTES",
    ),
    ("ldap.max_ber_depth", "PORTCULLIS_LDAP_MAX_BER_DEPTH"),
    (
        "ldap.max_ops_per_connection",
        "PORTCULLIS_LDAP_MAX_OPS_PER_CONNECTION",
    ),
    (
        "ldap.tls_handshake_timeout_secs",
        "PORTCULLIS_LDAP_TLS_HANDSHAKE_TIMEOUT_SECS",
    ),
    (
        "ldap.first_message_timeout_secs",
        "PORTCULLIS_LDAP_FIRST_MESSAGE_TIMEOUT_SECS",
    ),
    (
        "ldap.idle_timeout_secs",
        "PORTCULLIS_LDAP_IDLE_TIMEOUT_SECS",
    ),
    ("ldap.max_queued_binds", "PORTCULLIS_LDAP_MAX_QUEUED_BINDS"),
    ("tls.cert_file", "PORTCULLIS_TLS_CERT_FILE"),
    ("tls.key_file", "PORTCULLIS_TLS_KEY_FILE"),
    ("tls.hostname", "PORTCULLIS_TLS_HOSTNAME"),
    (
        "import.keep_attributes",
        "PORTCULLIS_IMPORT_KEEP_ATTRIBUTES",
    ),
];

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
        let mut config = match file.map(Path::to_path_buf).or(env_file) {
            Some(path) => Config::from_file(&path, &mut origins)?,
            None => Config::default(),
        };

        for (name, value) in &env {
            if name == CONFIG_ENV {
                continue;
            }
            let Some(&(key, env_name)) = KEYS.iter().find(|(_, env_name)| env_name == name) else {
                return Err(ConfigError::UnknownEnv {
                    name: name.clone(),
                    hint: env_hint(name),
                });
            };
            origins.0.insert(key, Origin::Env(env_name.to_string()));
            config
                .set(key, value)
                .map_err(|message| origins.invalid(key, message))?;
        }

        let flags: [(&'static str, &'static str, Option<String>); 5] = [
            (
                "data_dir",
                "--data-dir",
                overrides
                    .data_dir
                    .as_ref()
                    .map(|d| d.to_string_lossy().into_owned()),
            ),
            ("base_dn", "--base-dn", overrides.base_dn.clone()),
            ("ldap.addr", "--ldap-addr", overrides.ldap_addr.clone()),
            (
                "ldap.ldaps_addr",
                "--ldaps-addr",
                overrides.ldaps_addr.clone(),
            ),
            ("portal.addr", "--http-addr", overrides.http_addr.clone()),
        ];
        for (key, flag, value) in flags {
            if let Some(value) = value {
                origins.0.insert(key, Origin::Flag(flag));
                config
                    .set(key, &value)
                    .map_err(|message| origins.invalid(key, message))?;
            }
        }
        // A flag's path is taken as is, even if it is not UTF-8.
        if let Some(dir) = &overrides.data_dir {
            config.data_dir = dir.clone();
        }

        config.validate(&origins)?;
        Ok(config)
    }

    /// The admin socket of a running server: `<data_dir>/admin.sock`.
    pub fn admin_socket_path(&self) -> PathBuf {
        self.data_dir.join("admin.sock")
    }

    /// Where the first start writes the admin's password.
    pub fn initial_password_path(&self) -> PathBuf {
        self.data_dir.join("initial-admin-password")
    }

    fn from_file(path: &Path, origins: &mut Origins) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.to_path_buf(),
            err,
        })?;
        let parse_error = |e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: toml_message(&text, &e),
        };
        let config: Config = toml::from_str(&text).map_err(parse_error)?;
        // Record which keys the file set, for error messages. The typed
        // parse above already refused unknown keys.
        let table: toml::Table = text.parse().map_err(parse_error)?;
        for (name, value) in &table {
            let dotted: Vec<String> = match value.as_table() {
                Some(section) => section.keys().map(|k| format!("{name}.{k}")).collect(),
                None => vec![name.clone()],
            };
            for d in dotted {
                if let Some(&(key, _)) = KEYS.iter().find(|(key, _)| *key == d) {
                    origins.0.insert(key, Origin::File(path.to_path_buf()));
                }
            }
        }
        Ok(config)
    }

    /// Sets one key from its text form (environment variables and flags).
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "data_dir" => self.data_dir = PathBuf::from(value),
            "base_dn" => self.base_dn = value.to_string(),
            "ldap.addr" => self.ldap.addr = value.to_string(),
            "ldap.ldaps_addr" => self.ldap.ldaps_addr = value.to_string(),
            "ldap.max_connections" => self.ldap.max_connections = number(value)?,
            "ldap.size_limit" => self.ldap.size_limit = number(value)?,
            "ldap.time_limit_secs" => self.ldap.time_limit_secs = number(value)?,
            "ldap.search_group" => self.ldap.search_group = value.to_string(),
            "ldap.admin_group" => self.ldap.admin_group = value.to_string(),
            "ldap.transitive_member_of" => self.ldap.transitive_member_of = boolean(value)?,
            "portal.addr" => self.portal.addr = value.to_string(),
            "auth.argon2_memory_kib" => self.auth.argon2_memory_kib = number(value)?,
            "auth.argon2_iterations" => self.auth.argon2_iterations = number(value)?,
            "auth.argon2_parallelism" => self.auth.argon2_parallelism = number(value)?,
            "auth.hash_workers" => self.auth.hash_workers = number(value)?,
            "ldap.reactor_threads" => self.ldap.reactor_threads = number(value)?,
            "log.level" => self.log.level = value.to_string(),
            "log.json" => self.log.json = boolean(value)?,
            "bind.mfa" => self.bind.mfa = value.to_string(),
            "bind.app_passwords" => self.bind.app_passwords = boolean(value)?,
            "bind.totp_issuer" => self.bind.totp_issuer = value.to_string(),
            "bind.cache" => self.bind.cache = boolean(value)?,
            "bind.cache_ttl_secs" => self.bind.cache_ttl_secs = number(value)?,
            "bind.cache_max_entries" => self.bind.cache_max_entries = number(value)?,
            "throttle.account_failures" => self.throttle.account_failures = number(value)?,
            "throttle.account_delay_ms" => self.throttle.account_delay_ms = number(value)?,
            "throttle.account_max_delay_secs" => {
                self.throttle.account_max_delay_secs = number(value)?
            }
            "throttle.address_failures" => self.throttle.address_failures = number(value)?,
            "throttle.address_window_secs" => self.throttle.address_window_secs = number(value)?,
            "ldap.require_tls_for_bind" => {
                self.ldap.require_tls_for_bind = RequireTls::parse(value)?
            }
            "ldap.max_message_bytes" => self.ldap.max_message_bytes = number(value)?,
            "ldap.max_ber_depth" => self.ldap.max_ber_depth = number(value)?,
            "ldap.max_ops_per_connection" => self.ldap.max_ops_per_connection = number(value)?,
            "ldap.tls_handshake_timeout_secs" => {
                self.ldap.tls_handshake_timeout_secs = number(value)?
            }
            "ldap.first_message_timeout_secs" => {
                self.ldap.first_message_timeout_secs = number(value)?
            }
            "ldap.idle_timeout_secs" => self.ldap.idle_timeout_secs = number(value)?,
            "ldap.max_queued_binds" => self.ldap.max_queued_binds = number(value)?,
            "tls.cert_file" => self.tls.cert_file = value.to_string(),
            "tls.key_file" => self.tls.key_file = value.to_string(),
            "tls.hostname" => self.tls.hostname = value.to_string(),
            // A comma-separated list in the environment.
            "import.keep_attributes" => {
                self.import.keep_attributes = value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            other => return Err(format!("unknown key {other}")),
        }
        Ok(())
    }

    fn validate(&self, origins: &Origins) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(origins.invalid("data_dir", "must not be empty"));
        }
        check_base_dn(&self.base_dn).map_err(|m| origins.invalid("base_dn", m))?;
        for (key, value) in [
            ("ldap.addr", &self.ldap.addr),
            ("ldap.ldaps_addr", &self.ldap.ldaps_addr),
            ("portal.addr", &self.portal.addr),
        ] {
            if value.parse::<SocketAddr>().is_err() {
                return Err(origins.invalid(
                    key,
                    format!("`{value}` is not an IP address and port such as 127.0.0.1:3389"),
                ));
            }
        }
        if self.ldap.max_connections == 0 {
            return Err(origins.invalid("ldap.max_connections", "must be at least 1"));
        }
        for (key, value) in [
            ("ldap.search_group", &self.ldap.search_group),
            ("ldap.admin_group", &self.ldap.admin_group),
        ] {
            if value.trim().is_empty() {
                return Err(origins.invalid(key, "must not be empty"));
            }
        }
        self.validate_argon2(origins)?;
        self.validate_hardening(origins)?;
        if self.auth.hash_workers > MAX_HASH_WORKERS {
            return Err(origins.invalid(
                "auth.hash_workers",
                format!("must be at most {MAX_HASH_WORKERS} (0 = number of cores)"),
            ));
        }
        if self.ldap.reactor_threads > MAX_REACTOR_THREADS {
            return Err(origins.invalid(
                "ldap.reactor_threads",
                format!("must be at most {MAX_REACTOR_THREADS} (0 = number of cores)"),
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(origins.invalid("log.level", format!("not a tracing filter: {e}")));
        }
        self.validate_bind(origins)
    }

    fn validate_bind(&self, origins: &Origins) -> Result<(), ConfigError> {
        if crate::store::MfaPolicy::parse(&self.bind.mfa).is_none() {
            return Err(origins.invalid("bind.mfa", "must be if-enrolled, required or off"));
        }
        let issuer = &self.bind.totp_issuer;
        if issuer.trim().is_empty() || issuer.len() > 64 || issuer.contains(':') {
            return Err(origins.invalid(
                "bind.totp_issuer",
                "must be 1 to 64 bytes without `:` (it prefixes the account in the otpauth URI)",
            ));
        }
        if !(1..=MAX_BIND_CACHE_TTL_SECS).contains(&self.bind.cache_ttl_secs) {
            return Err(origins.invalid(
                "bind.cache_ttl_secs",
                format!(
                    "must be between 1 and {MAX_BIND_CACHE_TTL_SECS} (use cache = false to turn the cache off)"
                ),
            ));
        }
        if !(1..=MAX_BIND_CACHE_ENTRIES).contains(&self.bind.cache_max_entries) {
            return Err(origins.invalid(
                "bind.cache_max_entries",
                format!("must be between 1 and {MAX_BIND_CACHE_ENTRIES}"),
            ));
        }
        let t = &self.throttle;
        if t.account_failures == 0 {
            return Err(origins.invalid("throttle.account_failures", "must be at least 1"));
        }
        if t.account_delay_ms == 0 || t.account_delay_ms > 3_600_000 {
            return Err(origins.invalid(
                "throttle.account_delay_ms",
                "must be between 1 and 3600000 (one hour)",
            ));
        }
        if t.account_max_delay_secs.saturating_mul(1000) < t.account_delay_ms
            || t.account_max_delay_secs > 86_400
        {
            return Err(origins.invalid(
                "throttle.account_max_delay_secs",
                "must be at least account_delay_ms and at most 86400 (one day)",
            ));
        }
        if t.address_window_secs == 0 || t.address_window_secs > 86_400 {
            return Err(origins.invalid(
                "throttle.address_window_secs",
                "must be between 1 and 86400 (one day)",
            ));
        }
        let keep = &self.import.keep_attributes;
        if keep.len() > MAX_KEEP_ATTRIBUTES {
            return Err(origins.invalid(
                "import.keep_attributes",
                format!("lists more than {MAX_KEEP_ATTRIBUTES} attributes"),
            ));
        }
        // RFC 4512 §1.4 keystring: an attribute name, without options.
        if let Some(bad) = keep.iter().find(|n| {
            n.is_empty()
                || n.len() > 64
                || !n.starts_with(|c: char| c.is_ascii_alphabetic())
                || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        }) {
            return Err(origins.invalid(
                "import.keep_attributes",
                format!("{bad:?} is not an attribute name (letters, digits and '-', starting with a letter)"),
            ));
        }
        Ok(())
    }

    /// The bind decision's settings: policy defaults and throttle
    /// thresholds. Call on a validated config.
    pub fn auth_settings(&self) -> crate::auth::AuthSettings {
        use std::time::Duration;
        let t = &self.throttle;
        crate::auth::AuthSettings {
            policy: crate::auth::policy::PolicyDefaults {
                mfa: crate::store::MfaPolicy::parse(&self.bind.mfa)
                    .unwrap_or(crate::store::MfaPolicy::IfEnrolled),
                app_passwords: self.bind.app_passwords,
            },
            throttle: crate::auth::throttle::ThrottleConfig {
                account_failures: t.account_failures,
                account_delay: Duration::from_millis(t.account_delay_ms),
                account_max_delay: Duration::from_secs(t.account_max_delay_secs),
                address_failures: t.address_failures,
                address_window: Duration::from_secs(t.address_window_secs),
            },
            cache: crate::auth::cache::CacheConfig {
                enabled: self.bind.cache,
                ttl: Duration::from_secs(self.bind.cache_ttl_secs),
                max_entries: self.bind.cache_max_entries,
            },
        }
    }

    fn validate_argon2(&self, origins: &Origins) -> Result<(), ConfigError> {
        let a = &self.auth;
        if !(1..=MAX_ARGON2_PARALLELISM).contains(&a.argon2_parallelism) {
            return Err(origins.invalid(
                "auth.argon2_parallelism",
                format!("must be between 1 and {MAX_ARGON2_PARALLELISM}"),
            ));
        }
        if !(1..=MAX_ARGON2_ITERATIONS).contains(&a.argon2_iterations) {
            return Err(origins.invalid(
                "auth.argon2_iterations",
                format!("must be between 1 and {MAX_ARGON2_ITERATIONS}"),
            ));
        }
        // argon2 needs at least 8 KiB per lane.
        let min_memory = 8 * a.argon2_parallelism;
        if !(min_memory..=MAX_ARGON2_MEMORY_KIB).contains(&a.argon2_memory_kib) {
            return Err(origins.invalid(
                "auth.argon2_memory_kib",
                format!(
                    "must be between {min_memory} (8 per lane) and {MAX_ARGON2_MEMORY_KIB} (4 GiB)"
                ),
            ));
        }
        Ok(())
    }
}

impl Config {
    fn validate_hardening(&self, origins: &Origins) -> Result<(), ConfigError> {
        let l = &self.ldap;
        if !(1024..=MAX_MESSAGE_BYTES).contains(&l.max_message_bytes) {
            return Err(origins.invalid(
                "ldap.max_message_bytes",
                format!("must be between 1024 and {MAX_MESSAGE_BYTES}"),
            ));
        }
        if !(4..=MAX_BER_DEPTH).contains(&l.max_ber_depth) {
            return Err(origins.invalid(
                "ldap.max_ber_depth",
                format!("must be between 4 and {MAX_BER_DEPTH}"),
            ));
        }
        for (key, value) in [
            (
                "ldap.max_ops_per_connection",
                l.max_ops_per_connection as u64,
            ),
            (
                "ldap.tls_handshake_timeout_secs",
                l.tls_handshake_timeout_secs,
            ),
            (
                "ldap.first_message_timeout_secs",
                l.first_message_timeout_secs,
            ),
            ("ldap.max_queued_binds", l.max_queued_binds as u64),
        ] {
            if value == 0 {
                return Err(origins.invalid(key, "must be at least 1"));
            }
        }
        if self.tls.cert_file.is_empty() != self.tls.key_file.is_empty() {
            let key = if self.tls.cert_file.is_empty() {
                "tls.cert_file"
            } else {
                "tls.key_file"
            };
            return Err(origins.invalid(
                key,
                "tls.cert_file and tls.key_file are set together (or neither, for a generated certificate)",
            ));
        }
        Ok(())
    }
}

/// Largest `ldap.max_message_bytes`: requests are small; 64 MiB is plenty.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Deepest `ldap.max_ber_depth`: the parsers recurse once per level.
const MAX_BER_DEPTH: usize = 256;

/// One line for a TOML error: the line number and text it points at (which
/// names the key) and the parser's message.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) if span.start <= text.len() => {
            let before = text.get(..span.start).unwrap_or("");
            let number = before.matches('\n').count() + 1;
            let line = text.lines().nth(number - 1).unwrap_or("").trim();
            format!("line {number} (`{line}`): {message}")
        }
        _ => message,
    }
}

/// Upper bounds that catch a misplaced digit before it stalls every bind.
const MAX_ARGON2_MEMORY_KIB: u32 = 4 * 1024 * 1024;
const MAX_ARGON2_ITERATIONS: u32 = 64;
const MAX_ARGON2_PARALLELISM: u32 = 64;
const MAX_HASH_WORKERS: usize = 1024;
const MAX_REACTOR_THREADS: usize = 1024;
/// The bind cache is meant to be short-lived: one hour at most.
const MAX_BIND_CACHE_TTL_SECS: u64 = 3600;
/// About 100 bytes an entry: 10 million is about 1 GiB.
const MAX_BIND_CACHE_ENTRIES: usize = 10_000_000;

fn number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not a non-negative integer in range"))
}

fn boolean(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("`{value}` is not a boolean (true or false)")),
    }
}

/// A light check that catches obvious mistakes (`example.com`, empty); the
/// directory module parses the DN properly.
fn check_base_dn(dn: &str) -> Result<(), String> {
    if dn.trim().is_empty() {
        return Err("must not be empty".into());
    }
    for rdn in split_unescaped(dn, ',') {
        match rdn.split_once('=') {
            Some((attr, _)) if !attr.trim().is_empty() => {}
            _ => {
                return Err(format!(
                    "`{dn}` is not a DN: `{}` lacks attribute=value (e.g. dc=example,dc=com)",
                    rdn.trim()
                ))
            }
        }
    }
    Ok(())
}

/// Splits at `sep` where it is not escaped with a backslash (RFC 4514).
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Points at the right name for near misses of the two variables that do not
/// follow the `PORTCULLIS_<SECTION>_<KEY>` pattern.
fn env_hint(name: &str) -> String {
    match name {
        "PORTCULLIS_PORTAL_ADDR" => " (use PORTCULLIS_HTTP_ADDR)".into(),
        "PORTCULLIS_LDAP_LDAPS_ADDR" => " (use PORTCULLIS_LDAPS_ADDR)".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(vars: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn toml_file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    #[test]
    fn defaults_without_file_env_or_flags() {
        let c = Config::load(None, env(&[]), &Overrides::default()).expect("load");
        assert_eq!(c, Config::default());
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.base_dn, "dc=example,dc=com");
        assert_eq!(c.ldap.addr, "127.0.0.1:3389");
        assert_eq!(c.ldap.ldaps_addr, "127.0.0.1:6636");
        assert_eq!(c.portal.addr, "127.0.0.1:8080");
        assert_eq!(c.ldap.admin_group, "admins");
        assert_eq!(c.ldap.search_group, "ldap-search");
        assert_eq!(c.auth.argon2_memory_kib, 19456);
        assert_eq!(c.auth.argon2_iterations, 2);
        assert_eq!(c.auth.argon2_parallelism, 1);
        assert_eq!(c.admin_socket_path(), PathBuf::from("./data/admin.sock"));
    }

    #[test]
    fn documented_example_gives_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/portcullis.toml");
        let c = Config::load(Some(&path), env(&[]), &Overrides::default()).expect("load");
        assert_eq!(c, Config::default());
    }

    #[test]
    fn documented_example_names_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/portcullis.toml");
        let mut origins = Origins::default();
        Config::from_file(&path, &mut origins).expect("load");
        for (key, _) in KEYS {
            assert!(origins.0.contains_key(key), "{key} not in the example");
        }
    }

    #[test]
    fn file_then_env_then_flags() {
        let f = toml_file(
            "base_dn = \"dc=file,dc=org\"\n\
             data_dir = \"/srv/file\"\n\
             [ldap]\naddr = \"127.0.0.1:1389\"\nmax_connections = 10\n\
             [log]\nlevel = \"debug\"\n",
        );
        // File only.
        let c = Config::load(Some(f.path()), env(&[]), &Overrides::default()).expect("load");
        assert_eq!(c.base_dn, "dc=file,dc=org");
        assert_eq!(c.data_dir, PathBuf::from("/srv/file"));
        assert_eq!(c.ldap.addr, "127.0.0.1:1389");
        assert_eq!(c.ldap.max_connections, 10);
        assert_eq!(c.log.level, "debug");
        assert_eq!(
            c.ldap.ldaps_addr, "127.0.0.1:6636",
            "untouched key keeps its default"
        );

        // Environment beats the file.
        let vars = [
            ("PORTCULLIS_BASE_DN", "dc=env,dc=org"),
            ("PORTCULLIS_LDAP_ADDR", "127.0.0.1:2389"),
            ("PORTCULLIS_LDAP_MAX_CONNECTIONS", "20"),
            ("PORTCULLIS_AUTH_ARGON2_MEMORY_KIB", "65536"),
            ("PORTCULLIS_HTTP_ADDR", "0.0.0.0:8081"),
            ("PORTCULLIS_LOG_JSON", "true"),
            ("HOME", "/root"),
        ];
        let c = Config::load(Some(f.path()), env(&vars), &Overrides::default()).expect("load");
        assert_eq!(c.base_dn, "dc=env,dc=org");
        assert_eq!(c.ldap.addr, "127.0.0.1:2389");
        assert_eq!(c.ldap.max_connections, 20);
        assert_eq!(c.auth.argon2_memory_kib, 65536);
        assert_eq!(c.portal.addr, "0.0.0.0:8081");
        assert!(c.log.json);
        assert_eq!(c.data_dir, PathBuf::from("/srv/file"));

        // Flags beat both.
        let flags = Overrides {
            data_dir: Some("/srv/flag".into()),
            base_dn: Some("dc=flag,dc=org".into()),
            ldap_addr: Some("[::1]:3389".into()),
            ldaps_addr: Some("127.0.0.1:7636".into()),
            http_addr: Some("127.0.0.1:9090".into()),
        };
        let c = Config::load(Some(f.path()), env(&vars), &flags).expect("load");
        assert_eq!(c.base_dn, "dc=flag,dc=org");
        assert_eq!(c.data_dir, PathBuf::from("/srv/flag"));
        assert_eq!(c.ldap.addr, "[::1]:3389");
        assert_eq!(c.ldap.ldaps_addr, "127.0.0.1:7636");
        assert_eq!(c.portal.addr, "127.0.0.1:9090");
        assert_eq!(c.ldap.max_connections, 20, "no flag: env value stays");
    }

    #[test]
    fn every_key_has_a_working_env_variable() {
        let vars = [
            ("PORTCULLIS_DATA_DIR", "/d"),
            ("PORTCULLIS_BASE_DN", "o=x"),
            ("PORTCULLIS_LDAP_ADDR", "127.0.0.1:1"),
            ("PORTCULLIS_LDAPS_ADDR", "127.0.0.1:2"),
            ("PORTCULLIS_LDAP_MAX_CONNECTIONS", "3"),
            ("PORTCULLIS_LDAP_SIZE_LIMIT", "4"),
            ("PORTCULLIS_LDAP_TIME_LIMIT_SECS", "5"),
            ("PORTCULLIS_LDAP_SEARCH_GROUP", "readers"),
            ("PORTCULLIS_LDAP_ADMIN_GROUP", "wheel"),
            ("PORTCULLIS_LDAP_TRANSITIVE_MEMBER_OF", "true"),
            ("PORTCULLIS_HTTP_ADDR", "127.0.0.1:6"),
            ("PORTCULLIS_AUTH_ARGON2_MEMORY_KIB", "1024"),
            ("PORTCULLIS_AUTH_ARGON2_ITERATIONS", "3"),
            ("PORTCULLIS_AUTH_ARGON2_PARALLELISM", "2"),
            ("PORTCULLIS_AUTH_HASH_WORKERS", "7"),
            ("PORTCULLIS_LOG_LEVEL", "portcullis=debug"),
            ("PORTCULLIS_LOG_JSON", "1"),
            ("PORTCULLIS_BIND_MFA", "required"),
            ("PORTCULLIS_BIND_APP_PASSWORDS", "false"),
            ("PORTCULLIS_BIND_TOTP_ISSUER", "Example Inc"),
            ("PORTCULLIS_BIND_CACHE", "false"),
            ("PORTCULLIS_BIND_CACHE_TTL_SECS", "13"),
            ("PORTCULLIS_BIND_CACHE_MAX_ENTRIES", "14"),
            ("PORTCULLIS_THROTTLE_ACCOUNT_FAILURES", "8"),
            ("PORTCULLIS_THROTTLE_ACCOUNT_DELAY_MS", "9"),
            ("PORTCULLIS_THROTTLE_ACCOUNT_MAX_DELAY_SECS", "10"),
            ("PORTCULLIS_THROTTLE_ADDRESS_FAILURES", "11"),
            ("PORTCULLIS_THROTTLE_ADDRESS_WINDOW_SECS", "12"),
            ("PORTCULLIS_LDAP_REACTOR_THREADS", "3"),
        ];
        assert_eq!(vars.len() + HARDENING_ENV.len() + 1, KEYS.len());
        let c = Config::load(None, env(&vars), &Overrides::default()).expect("load");
        let expected = Config {
            data_dir: "/d".into(),
            base_dn: "o=x".into(),
            ldap: LdapConfig {
                addr: "127.0.0.1:1".into(),
                ldaps_addr: "127.0.0.1:2".into(),
                max_connections: 3,
                size_limit: 4,
                time_limit_secs: 5,
                search_group: "readers".into(),
                admin_group: "wheel".into(),
                transitive_member_of: true,
                reactor_threads: 3,
                ..LdapConfig::default()
            },
            portal: PortalConfig {
                addr: "127.0.0.1:6".into(),
            },
            auth: HashConfig {
                argon2_memory_kib: 1024,
                argon2_iterations: 3,
                argon2_parallelism: 2,
                hash_workers: 7,
            },
            log: LogConfig {
                level: "portcullis=debug".into(),
                json: true,
            },
            bind: BindConfig {
                mfa: "required".into(),
                app_passwords: false,
                totp_issuer: "Example Inc".into(),
                cache: false,
                cache_ttl_secs: 13,
                cache_max_entries: 14,
            },
            throttle: ThrottleSettings {
                account_failures: 8,
                account_delay_ms: 9,
                account_max_delay_secs: 10,
                address_failures: 11,
                address_window_secs: 12,
            },
            tls: TlsConfig::default(),
            import: ImportConfig::default(),
        };
        assert_eq!(c, expected);
    }

    #[test]
    fn import_keep_attributes_from_file_and_env() {
        let f = toml_file("[import]\nkeep_attributes = [\"employeeType\", \"roomNumber\"]\n");
        let c = Config::load(Some(f.path()), env(&[]), &Overrides::default()).expect("load");
        assert_eq!(c.import.keep_attributes, ["employeeType", "roomNumber"]);
        let vars = [(
            "PORTCULLIS_IMPORT_KEEP_ATTRIBUTES",
            "carLicense, x-custom ,",
        )];
        let c = Config::load(Some(f.path()), env(&vars), &Overrides::default()).expect("load");
        assert_eq!(c.import.keep_attributes, ["carLicense", "x-custom"]);
        let bad = [("PORTCULLIS_IMPORT_KEEP_ATTRIBUTES", "cn;lang-en")];
        let err = Config::load(None, env(&bad), &Overrides::default()).expect_err("invalid");
        assert!(err.to_string().contains("import.keep_attributes"), "{err}");
    }

    /// The keys of issue 4 (TLS and hardening), with a non-default value.
    const HARDENING_ENV: &[(&str, &str)] = &[
        ("PORTCULLIS_LDAP_REQUIRE_TLS_FOR_BIND", "Always"),
        ("PORTCULLIS_LDAP_MAX_MESSAGE_BYTES", "2048"),
        ("PORTCULLIS_LDAP_MAX_BER_DEPTH", "16"),
        ("PORTCULLIS_LDAP_MAX_OPS_PER_CONNECTION", "4"),
        ("PORTCULLIS_LDAP_TLS_HANDSHAKE_TIMEOUT_SECS", "3"),
        ("PORTCULLIS_LDAP_FIRST_MESSAGE_TIMEOUT_SECS", "4"),
        ("PORTCULLIS_LDAP_IDLE_TIMEOUT_SECS", "0"),
        ("PORTCULLIS_LDAP_MAX_QUEUED_BINDS", "9"),
        ("PORTCULLIS_TLS_CERT_FILE", "/c.pem"),
        ("PORTCULLIS_TLS_KEY_FILE", "/k.pem"),
        ("PORTCULLIS_TLS_HOSTNAME", "ldap.example.com"),
    ];

    #[test]
    fn hardening_keys_from_the_environment() {
        let c = Config::load(None, env(HARDENING_ENV), &Overrides::default()).expect("load");
        assert_eq!(c.ldap.require_tls_for_bind, RequireTls::Always);
        assert_eq!(c.ldap.max_message_bytes, 2048);
        assert_eq!(c.ldap.max_ber_depth, 16);
        assert_eq!(c.ldap.max_ops_per_connection, 4);
        assert_eq!(c.ldap.tls_handshake_timeout_secs, 3);
        assert_eq!(c.ldap.first_message_timeout_secs, 4);
        assert_eq!(c.ldap.idle_timeout_secs, 0);
        assert_eq!(c.ldap.max_queued_binds, 9);
        assert_eq!(c.tls.cert_file, "/c.pem");
        assert_eq!(c.tls.key_file, "/k.pem");
        assert_eq!(c.tls.hostname, "ldap.example.com");

        for (vars, key) in [
            (
                &[("PORTCULLIS_LDAP_REQUIRE_TLS_FOR_BIND", "sometimes")][..],
                "ldap.require_tls_for_bind",
            ),
            (
                &[("PORTCULLIS_LDAP_MAX_BER_DEPTH", "100000")][..],
                "ldap.max_ber_depth",
            ),
            (
                &[("PORTCULLIS_LDAP_MAX_OPS_PER_CONNECTION", "0")][..],
                "ldap.max_ops_per_connection",
            ),
            (
                &[("PORTCULLIS_TLS_CERT_FILE", "/c.pem")][..],
                "tls.key_file",
            ),
        ] {
            let e = Config::load(None, env(vars), &Overrides::default()).expect_err("invalid");
            assert!(
                matches!(e, ConfigError::Invalid { key: k, .. } if k == key),
                "{e}"
            );
        }
        let f = toml_file("[ldap]\nrequire_tls_for_bind = \"never\"\n");
        let c = Config::load(Some(f.path()), env(&[]), &Overrides::default()).expect("load");
        assert_eq!(c.ldap.require_tls_for_bind, RequireTls::Never);
    }

    #[test]
    fn config_file_from_environment_unless_flag_given() {
        let from_env = toml_file("base_dn = \"dc=envfile\"\n");
        let from_flag = toml_file("base_dn = \"dc=flagfile\"\n");
        let path = from_env.path().to_string_lossy().into_owned();
        let vars = [(CONFIG_ENV, path.as_str())];
        let c = Config::load(None, env(&vars), &Overrides::default()).expect("load");
        assert_eq!(c.base_dn, "dc=envfile");
        let c =
            Config::load(Some(from_flag.path()), env(&vars), &Overrides::default()).expect("load");
        assert_eq!(c.base_dn, "dc=flagfile");
    }

    #[test]
    fn unknown_env_variable_is_named() {
        let e = Config::load(
            None,
            env(&[("PORTCULLIS_LDAP_MAX_CONECTIONS", "3")]),
            &Overrides::default(),
        )
        .expect_err("must fail");
        assert!(
            matches!(&e, ConfigError::UnknownEnv { name, .. } if name == "PORTCULLIS_LDAP_MAX_CONECTIONS")
        );
        assert!(e.to_string().contains("PORTCULLIS_LDAP_MAX_CONECTIONS"));

        let e = Config::load(
            None,
            env(&[("PORTCULLIS_PORTAL_ADDR", "127.0.0.1:1")]),
            &Overrides::default(),
        )
        .expect_err("must fail");
        assert!(e.to_string().contains("PORTCULLIS_HTTP_ADDR"), "{e}");
        // Other variables are none of our business.
        Config::load(
            None,
            env(&[("PORTCULLISX", "1"), ("RUST_LOG", "x")]),
            &Overrides::default(),
        )
        .expect("load");
    }

    #[test]
    fn unknown_file_key_is_refused() {
        let f = toml_file("[ldap]\nmax_conections = 3\n");
        let e =
            Config::load(Some(f.path()), env(&[]), &Overrides::default()).expect_err("must fail");
        assert!(matches!(e, ConfigError::Parse { .. }));
        assert!(e.to_string().contains("max_conections"), "{e}");

        let f = toml_file("[ldap]\nmax_connections = \"many\"\n");
        let e =
            Config::load(Some(f.path()), env(&[]), &Overrides::default()).expect_err("must fail");
        assert!(e.to_string().contains("max_connections"), "{e}");
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = Config::load(
            Some(Path::new("/nonexistent/portcullis.toml")),
            env(&[]),
            &Overrides::default(),
        )
        .expect_err("must fail");
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(e.to_string().contains("/nonexistent/portcullis.toml"));
    }

    fn invalid(e: ConfigError) -> (&'static str, Origin, String) {
        match e {
            ConfigError::Invalid {
                key,
                origin,
                message,
            } => (key, origin, message),
            other => panic!("expected Invalid, got {other}"),
        }
    }

    #[test]
    fn validation_names_key_and_source() {
        // From the environment.
        let e = Config::load(
            None,
            env(&[("PORTCULLIS_LDAP_ADDR", "localhost")]),
            &Overrides::default(),
        )
        .expect_err("must fail");
        let (key, origin, _) = invalid(e);
        assert_eq!(key, "ldap.addr");
        assert_eq!(origin, Origin::Env("PORTCULLIS_LDAP_ADDR".into()));

        // From the file.
        let f = toml_file("base_dn = \"example.com\"\n");
        let e =
            Config::load(Some(f.path()), env(&[]), &Overrides::default()).expect_err("must fail");
        let msg = e.to_string();
        let (key, origin, _) = invalid(e);
        assert_eq!(key, "base_dn");
        assert_eq!(origin, Origin::File(f.path().to_path_buf()));
        assert!(
            msg.contains("base_dn") && msg.contains("config file"),
            "{msg}"
        );

        // From a flag.
        let flags = Overrides {
            http_addr: Some("8080".into()),
            ..Overrides::default()
        };
        let e = Config::load(None, env(&[]), &flags).expect_err("must fail");
        let msg = e.to_string();
        let (key, origin, _) = invalid(e);
        assert_eq!(key, "portal.addr");
        assert_eq!(origin, Origin::Flag("--http-addr"));
        assert!(msg.contains("--http-addr"), "{msg}");
    }

    #[test]
    fn validation_rules() {
        let bad: &[(&str, &str, &str)] = &[
            ("PORTCULLIS_BASE_DN", "", "base_dn"),
            ("PORTCULLIS_BASE_DN", "dc=example,com", "base_dn"),
            ("PORTCULLIS_BASE_DN", "=x", "base_dn"),
            ("PORTCULLIS_DATA_DIR", "", "data_dir"),
            ("PORTCULLIS_LDAPS_ADDR", "127.0.0.1", "ldap.ldaps_addr"),
            (
                "PORTCULLIS_LDAP_MAX_CONNECTIONS",
                "0",
                "ldap.max_connections",
            ),
            (
                "PORTCULLIS_LDAP_MAX_CONNECTIONS",
                "-1",
                "ldap.max_connections",
            ),
            ("PORTCULLIS_LDAP_SIZE_LIMIT", "ten", "ldap.size_limit"),
            ("PORTCULLIS_LDAP_ADMIN_GROUP", " ", "ldap.admin_group"),
            (
                "PORTCULLIS_AUTH_ARGON2_MEMORY_KIB",
                "4",
                "auth.argon2_memory_kib",
            ),
            (
                "PORTCULLIS_AUTH_ARGON2_MEMORY_KIB",
                "99999999",
                "auth.argon2_memory_kib",
            ),
            (
                "PORTCULLIS_AUTH_ARGON2_ITERATIONS",
                "0",
                "auth.argon2_iterations",
            ),
            (
                "PORTCULLIS_AUTH_ARGON2_PARALLELISM",
                "0",
                "auth.argon2_parallelism",
            ),
            (
                "PORTCULLIS_AUTH_HASH_WORKERS",
                "100000",
                "auth.hash_workers",
            ),
            (
                "PORTCULLIS_LDAP_REACTOR_THREADS",
                "100000",
                "ldap.reactor_threads",
            ),
            ("PORTCULLIS_LOG_JSON", "maybe", "log.json"),
            ("PORTCULLIS_LOG_LEVEL", "portcullis=loud", "log.level"),
            ("PORTCULLIS_BIND_MFA", "sometimes", "bind.mfa"),
            (
                "PORTCULLIS_BIND_APP_PASSWORDS",
                "perhaps",
                "bind.app_passwords",
            ),
            ("PORTCULLIS_BIND_TOTP_ISSUER", "a:b", "bind.totp_issuer"),
            ("PORTCULLIS_BIND_CACHE", "sometimes", "bind.cache"),
            ("PORTCULLIS_BIND_CACHE_TTL_SECS", "0", "bind.cache_ttl_secs"),
            (
                "PORTCULLIS_BIND_CACHE_TTL_SECS",
                "86400",
                "bind.cache_ttl_secs",
            ),
            (
                "PORTCULLIS_BIND_CACHE_MAX_ENTRIES",
                "0",
                "bind.cache_max_entries",
            ),
            (
                "PORTCULLIS_THROTTLE_ACCOUNT_FAILURES",
                "0",
                "throttle.account_failures",
            ),
            (
                "PORTCULLIS_THROTTLE_ACCOUNT_DELAY_MS",
                "0",
                "throttle.account_delay_ms",
            ),
            (
                "PORTCULLIS_THROTTLE_ADDRESS_WINDOW_SECS",
                "0",
                "throttle.address_window_secs",
            ),
        ];
        for (var, value, expected_key) in bad {
            let e = Config::load(None, env(&[(var, value)]), &Overrides::default())
                .expect_err(&format!("{var}={value} must fail"));
            let (key, origin, _) = invalid(e);
            assert_eq!(key, *expected_key, "{var}={value}");
            assert_eq!(origin, Origin::Env(var.to_string()));
        }
        let ok: &[(&str, &str)] = &[
            ("PORTCULLIS_BASE_DN", "o=Acme\\, Inc.,c=US"),
            ("PORTCULLIS_LDAP_ADDR", "[::]:389"),
            ("PORTCULLIS_AUTH_ARGON2_MEMORY_KIB", "64"),
        ];
        for (var, value) in ok {
            Config::load(None, env(&[(var, value)]), &Overrides::default())
                .unwrap_or_else(|e| panic!("{var}={value}: {e}"));
        }
    }
}
