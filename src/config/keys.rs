//! The key table: every settable key once, with its dotted name in the
//! TOML file, its environment variable, its flag (if any), and how its text
//! form (environment and flags) is applied to the raw layer.
//!
//! Adding a key: a field in `file`, a line here, its check and typed form
//! in `resolve`, and its documentation in `config/portcullis.toml` (a test
//! checks the example names every key of this table).

use std::path::PathBuf;

use super::file::RawConfig;
use super::RequireTls;

/// One settable key.
pub struct Key {
    /// Dotted name, as in the file and in error messages (`ldap.addr`).
    pub name: &'static str,
    /// Environment variable (`PORTCULLIS_LDAP_ADDR`).
    pub env: &'static str,
    /// Command-line flag that sets it, if there is one (`--ldap-addr`).
    pub flag: Option<&'static str>,
    /// Parses the text form and stores it in the raw layer; the message
    /// of an error says what is wrong with the text.
    pub apply: fn(&mut RawConfig, &str) -> Result<(), String>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name)
            .field("env", &self.env)
            .field("flag", &self.flag)
            .finish_non_exhaustive()
    }
}

/// `key!("dotted.name", "ENV_VAR" [, "--flag"] => field.path: parser)`,
/// where `parser` turns the text into the field's raw type.
macro_rules! key {
    ($name:literal, $env:literal $(, $flag:literal)? => $($field:ident).+ : $parse:expr) => {
        Key {
            name: $name,
            env: $env,
            flag: flag!($($flag)?),
            apply: |raw: &mut RawConfig, value: &str| {
                raw.$($field).+ = $parse(value)?;
                Ok(())
            },
        }
    };
}

macro_rules! flag {
    () => {
        None
    };
    ($flag:literal) => {
        Some($flag)
    };
}

/// Every settable key.
#[rustfmt::skip]
pub const KEYS: &[Key] = &[
    key!("data_dir", "PORTCULLIS_DATA_DIR", "--data-dir" => data_dir: path),
    key!("base_dn", "PORTCULLIS_BASE_DN", "--base-dn" => base_dn: text),
    key!("ldap.addr", "PORTCULLIS_LDAP_ADDR", "--ldap-addr" => ldap.addr: text),
    key!("ldap.ldaps_addr", "PORTCULLIS_LDAPS_ADDR", "--ldaps-addr" => ldap.ldaps_addr: text),
    key!("ldap.max_connections", "PORTCULLIS_LDAP_MAX_CONNECTIONS" => ldap.max_connections: number),
    key!("ldap.size_limit", "PORTCULLIS_LDAP_SIZE_LIMIT" => ldap.size_limit: number),
    key!("ldap.time_limit_secs", "PORTCULLIS_LDAP_TIME_LIMIT_SECS" => ldap.time_limit_secs: number),
    key!("ldap.search_group", "PORTCULLIS_LDAP_SEARCH_GROUP" => ldap.search_group: text),
    key!("ldap.admin_group", "PORTCULLIS_LDAP_ADMIN_GROUP" => ldap.admin_group: text),
    key!("ldap.transitive_member_of", "PORTCULLIS_LDAP_TRANSITIVE_MEMBER_OF" => ldap.transitive_member_of: boolean),
    key!("portal.addr", "PORTCULLIS_HTTP_ADDR", "--http-addr" => portal.addr: text),
    key!("portal.max_connections", "PORTCULLIS_PORTAL_MAX_CONNECTIONS" => portal.max_connections: number),
    key!("portal.header_timeout_secs", "PORTCULLIS_PORTAL_HEADER_TIMEOUT_SECS" => portal.header_timeout_secs: number),
    key!("portal.idle_timeout_secs", "PORTCULLIS_PORTAL_IDLE_TIMEOUT_SECS" => portal.idle_timeout_secs: number),
    key!("portal.max_body_bytes", "PORTCULLIS_PORTAL_MAX_BODY_BYTES" => portal.max_body_bytes: number),
    key!("portal.drain_secs", "PORTCULLIS_PORTAL_DRAIN_SECS" => portal.drain_secs: number),
    key!("portal.session_idle_secs", "PORTCULLIS_PORTAL_SESSION_IDLE_SECS" => portal.session_idle_secs: number),
    key!("portal.session_max_secs", "PORTCULLIS_PORTAL_SESSION_MAX_SECS" => portal.session_max_secs: number),
    key!("portal.tls", "PORTCULLIS_PORTAL_TLS" => portal.tls: boolean),
    key!("portal.trusted_proxies", "PORTCULLIS_PORTAL_TRUSTED_PROXIES" => portal.trusted_proxies: list),
    key!("portal.can_change_username", "PORTCULLIS_PORTAL_CAN_CHANGE_USERNAME" => portal.can_change_username: boolean),
    key!("portal.can_change_name", "PORTCULLIS_PORTAL_CAN_CHANGE_NAME" => portal.can_change_name: boolean),
    key!("portal.can_change_email", "PORTCULLIS_PORTAL_CAN_CHANGE_EMAIL" => portal.can_change_email: boolean),
    key!("portal.end_sessions_on_password_change", "PORTCULLIS_PORTAL_END_SESSIONS_ON_PASSWORD_CHANGE" => portal.end_sessions_on_password_change: boolean),
    key!("portal.token_default_lifetime_secs", "PORTCULLIS_PORTAL_TOKEN_DEFAULT_LIFETIME_SECS" => portal.token_default_lifetime_secs: number),
    key!("portal.token_max_lifetime_secs", "PORTCULLIS_PORTAL_TOKEN_MAX_LIFETIME_SECS" => portal.token_max_lifetime_secs: number),
    key!("auth.argon2_memory_kib", "PORTCULLIS_AUTH_ARGON2_MEMORY_KIB" => auth.argon2_memory_kib: number),
    key!("auth.argon2_iterations", "PORTCULLIS_AUTH_ARGON2_ITERATIONS" => auth.argon2_iterations: number),
    key!("auth.argon2_parallelism", "PORTCULLIS_AUTH_ARGON2_PARALLELISM" => auth.argon2_parallelism: number),
    key!("auth.hash_workers", "PORTCULLIS_AUTH_HASH_WORKERS" => auth.hash_workers: number),
    key!("ldap.reactor_threads", "PORTCULLIS_LDAP_REACTOR_THREADS" => ldap.reactor_threads: number),
    key!("log.level", "PORTCULLIS_LOG_LEVEL" => log.level: text),
    key!("log.json", "PORTCULLIS_LOG_JSON" => log.json: boolean),
    key!("bind.mfa", "PORTCULLIS_BIND_MFA" => bind.mfa: text),
    key!("bind.app_passwords", "PORTCULLIS_BIND_APP_PASSWORDS" => bind.app_passwords: boolean),
    key!("bind.totp_issuer", "PORTCULLIS_BIND_TOTP_ISSUER" => bind.totp_issuer: text),
    key!("bind.cache", "PORTCULLIS_BIND_CACHE" => bind.cache: boolean),
    key!("bind.cache_ttl_secs", "PORTCULLIS_BIND_CACHE_TTL_SECS" => bind.cache_ttl_secs: number),
    key!("bind.cache_max_entries", "PORTCULLIS_BIND_CACHE_MAX_ENTRIES" => bind.cache_max_entries: number),
    key!("throttle.account_failures", "PORTCULLIS_THROTTLE_ACCOUNT_FAILURES" => throttle.account_failures: number),
    key!("throttle.account_delay_ms", "PORTCULLIS_THROTTLE_ACCOUNT_DELAY_MS" => throttle.account_delay_ms: number),
    key!("throttle.account_max_delay_secs", "PORTCULLIS_THROTTLE_ACCOUNT_MAX_DELAY_SECS" => throttle.account_max_delay_secs: number),
    key!("throttle.code_failures", "PORTCULLIS_THROTTLE_CODE_FAILURES" => throttle.code_failures: number),
    key!("throttle.code_delay_ms", "PORTCULLIS_THROTTLE_CODE_DELAY_MS" => throttle.code_delay_ms: number),
    key!("throttle.code_max_delay_secs", "PORTCULLIS_THROTTLE_CODE_MAX_DELAY_SECS" => throttle.code_max_delay_secs: number),
    key!("throttle.address_failures", "PORTCULLIS_THROTTLE_ADDRESS_FAILURES" => throttle.address_failures: number),
    key!("throttle.address_window_secs", "PORTCULLIS_THROTTLE_ADDRESS_WINDOW_SECS" => throttle.address_window_secs: number),
    key!("ldap.require_tls_for_bind", "PORTCULLIS_LDAP_REQUIRE_TLS_FOR_BIND" => ldap.require_tls_for_bind: RequireTls::parse),
    key!("ldap.max_message_bytes", "PORTCULLIS_LDAP_MAX_MESSAGE_BYTES" => ldap.max_message_bytes: number),
    key!("ldap.max_ber_depth", "PORTCULLIS_LDAP_MAX_BER_DEPTH" => ldap.max_ber_depth: number),
    key!("ldap.max_ops_per_connection", "PORTCULLIS_LDAP_MAX_OPS_PER_CONNECTION" => ldap.max_ops_per_connection: number),
    key!("ldap.tls_handshake_timeout_secs", "PORTCULLIS_LDAP_TLS_HANDSHAKE_TIMEOUT_SECS" => ldap.tls_handshake_timeout_secs: number),
    key!("ldap.first_message_timeout_secs", "PORTCULLIS_LDAP_FIRST_MESSAGE_TIMEOUT_SECS" => ldap.first_message_timeout_secs: number),
    key!("ldap.idle_timeout_secs", "PORTCULLIS_LDAP_IDLE_TIMEOUT_SECS" => ldap.idle_timeout_secs: number),
    key!("ldap.max_queued_binds", "PORTCULLIS_LDAP_MAX_QUEUED_BINDS" => ldap.max_queued_binds: number),
    key!("ldap.paged_results_max_bytes", "PORTCULLIS_LDAP_PAGED_RESULTS_MAX_BYTES" => ldap.paged_results_max_bytes: number),
    key!("ldap.paged_results_idle_secs", "PORTCULLIS_LDAP_PAGED_RESULTS_IDLE_SECS" => ldap.paged_results_idle_secs: number),
    key!("tls.cert_file", "PORTCULLIS_TLS_CERT_FILE" => tls.cert_file: text),
    key!("tls.key_file", "PORTCULLIS_TLS_KEY_FILE" => tls.key_file: text),
    key!("tls.hostname", "PORTCULLIS_TLS_HOSTNAME" => tls.hostname: text),
    key!("import.keep_attributes", "PORTCULLIS_IMPORT_KEEP_ATTRIBUTES" => import.keep_attributes: list),
    key!("backup.dir", "PORTCULLIS_BACKUP_DIR" => backup.dir: text),
    key!("backup.interval_secs", "PORTCULLIS_BACKUP_INTERVAL_SECS" => backup.interval_secs: number),
    key!("backup.keep", "PORTCULLIS_BACKUP_KEEP" => backup.keep: number),
    key!("password.min_length", "PORTCULLIS_PASSWORD_MIN_LENGTH" => password.min_length: number),
    key!("password.min_strength", "PORTCULLIS_PASSWORD_MIN_STRENGTH" => password.min_strength: number),
    key!("accounts.login_shells", "PORTCULLIS_ACCOUNTS_LOGIN_SHELLS" => accounts.login_shells: list),
    key!("store.backend", "PORTCULLIS_STORE_BACKEND" => store.backend: text),
    key!("store.url", "PORTCULLIS_STORE_URL" => store.url: text),
    key!("store.url_file", "PORTCULLIS_STORE_URL_FILE" => store.url_file: text),
    key!("store.pool_size", "PORTCULLIS_STORE_POOL_SIZE" => store.pool_size: number),
    key!("store.statement_timeout_ms", "PORTCULLIS_STORE_STATEMENT_TIMEOUT_MS" => store.statement_timeout_ms: number),
    key!("store.record_cache_mib", "PORTCULLIS_STORE_RECORD_CACHE_MIB" => store.record_cache_mib: number),
    key!("store.page_cache_mib", "PORTCULLIS_STORE_PAGE_CACHE_MIB" => store.page_cache_mib: number),
];

/// The key an environment variable sets.
pub fn by_env(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.env == name)
}

/// The key a flag sets.
pub fn by_flag(flag: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.flag == Some(flag))
}

/// Points at the right name when an unknown variable is what a key's
/// variable would be called had it followed `PORTCULLIS_<SECTION>_<KEY>`
/// (`PORTCULLIS_PORTAL_ADDR` for `PORTCULLIS_HTTP_ADDR`).
pub fn env_hint(name: &str) -> String {
    KEYS.iter()
        .find(|key| key.env != name && regular_env(key.name) == name)
        .map(|key| format!(" (use {})", key.env))
        .unwrap_or_default()
}

/// `ldap.ldaps_addr` → `PORTCULLIS_LDAP_LDAPS_ADDR`.
fn regular_env(name: &str) -> String {
    format!("PORTCULLIS_{}", name.replace('.', "_").to_ascii_uppercase())
}

fn text(value: &str) -> Result<String, String> {
    Ok(value.to_string())
}

fn path(value: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(value))
}

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

/// A comma-separated list; blanks around items and empty items are dropped.
fn list(value: &str) -> Result<Vec<String>, String> {
    Ok(value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect())
}
