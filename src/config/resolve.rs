//! From the raw layer to the typed [`Config`]: every check, with the key
//! and the source of a bad value in its error, and every conversion
//! (addresses, the base DN, the MFA policy, durations, paths), done once.
//!
//! Checks run in a fixed order, so with several bad values the same one is
//! reported first each time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::file::{
    RawAccounts, RawBackup, RawBind, RawConfig, RawImport, RawLdap, RawPassword, RawPortal,
    RawStore, RawThrottle, RawTls,
};
use super::{
    AccountsConfig, BackupConfig, BindConfig, Config, ConfigError, DatabaseUrl, ImportConfig,
    LdapConfig, LogConfig, Origins, PasswordConfig, PortalConfig, PostgresConfig, SledConfig,
    StoreConfig, ThrottleSettings, TlsConfig,
};
use crate::auth::password::HashConfig;
use crate::directory::Dn;
use crate::domain::MfaPolicy;

/// Most names `import.keep_attributes` may list.
pub const MAX_KEEP_ATTRIBUTES: usize = 64;

/// Largest `ldap.max_message_bytes`: requests are small; 64 MiB is plenty.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Deepest `ldap.max_ber_depth`: the parsers recurse once per level.
const MAX_BER_DEPTH: usize = 256;

/// Longest portal session (idle or absolute): 90 days.
const MAX_SESSION_SECS: u64 = 90 * 24 * 3600;
/// Largest `portal.max_body_bytes`: the portal takes forms, not uploads.
const MAX_HTTP_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Longest `portal.header_timeout_secs` and `portal.drain_secs`.
const MAX_HTTP_SECS: u64 = 3600;

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

impl RawConfig {
    /// Checks every value and gives the typed settings; an error names the
    /// key and where its value came from (`origins`).
    pub(super) fn resolve(self, origins: &Origins) -> Result<Config, ConfigError> {
        let o = origins;
        if self.data_dir.as_os_str().is_empty() {
            return Err(o.invalid("data_dir", "must not be empty"));
        }
        let base_dn = base_dn(&self.base_dn).map_err(|m| o.invalid("base_dn", m))?;
        let addr = socket_addr(o, "ldap.addr", &self.ldap.addr)?;
        let ldaps_addr = socket_addr(o, "ldap.ldaps_addr", &self.ldap.ldaps_addr)?;
        let portal = portal(self.portal, o)?;
        check_ldap(&self.ldap, o)?;
        check_argon2(&self.auth, o)?;
        check_hardening(&self.ldap, o)?;
        let tls = tls(self.tls, o)?;
        check_threads(&self.auth, &self.ldap, o)?;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(o.invalid("log.level", format!("not a tracing filter: {e}")));
        }
        let bind = bind(self.bind, o)?;
        let throttle = throttle(self.throttle, o)?;
        check_import(&self.import, o)?;
        let backup = backup(self.backup, o)?;
        check_password(&self.password, o)?;
        check_accounts(&self.accounts, o)?;
        let store = store(self.store, o)?;
        Ok(Config {
            data_dir: self.data_dir,
            base_dn,
            ldap: ldap(self.ldap, addr, ldaps_addr),
            portal,
            auth: self.auth,
            log: LogConfig {
                level: self.log.level,
                json: self.log.json,
            },
            bind,
            throttle,
            tls,
            import: ImportConfig {
                keep_attributes: self.import.keep_attributes,
            },
            backup,
            password: PasswordConfig {
                min_length: self.password.min_length,
                min_strength: self.password.min_strength,
            },
            accounts: AccountsConfig {
                login_shells: self.accounts.login_shells,
            },
            store,
        })
    }
}

/// `[ldap]`, once [`check_ldap`] and [`check_hardening`] have passed.
fn ldap(raw: RawLdap, addr: SocketAddr, ldaps_addr: SocketAddr) -> LdapConfig {
    LdapConfig {
        addr,
        ldaps_addr,
        max_connections: raw.max_connections,
        size_limit: raw.size_limit,
        time_limit: secs_or_none(raw.time_limit_secs),
        search_group: raw.search_group,
        admin_group: raw.admin_group,
        require_tls_for_bind: raw.require_tls_for_bind,
        max_message_bytes: raw.max_message_bytes,
        max_ber_depth: raw.max_ber_depth,
        max_ops_per_connection: raw.max_ops_per_connection,
        tls_handshake_timeout: Duration::from_secs(raw.tls_handshake_timeout_secs),
        first_message_timeout: Duration::from_secs(raw.first_message_timeout_secs),
        idle_timeout: secs_or_none(raw.idle_timeout_secs),
        max_queued_binds: raw.max_queued_binds,
        transitive_member_of: raw.transitive_member_of,
        reactor_threads: raw.reactor_threads,
        paged_results_max_bytes: raw.paged_results_max_bytes,
        paged_results_idle: Duration::from_secs(raw.paged_results_idle_secs),
    }
}

/// `[portal]`: the HTTP listener and its limits.
fn portal(raw: RawPortal, o: &Origins) -> Result<PortalConfig, ConfigError> {
    let addr = socket_addr(o, "portal.addr", &raw.addr)?;
    if raw.max_connections == 0 {
        return Err(o.invalid("portal.max_connections", "must be at least 1"));
    }
    if !(1..=MAX_HTTP_SECS).contains(&raw.header_timeout_secs) {
        return Err(o.invalid(
            "portal.header_timeout_secs",
            format!("must be between 1 and {MAX_HTTP_SECS}"),
        ));
    }
    if !(1024..=MAX_HTTP_BODY_BYTES).contains(&raw.max_body_bytes) {
        return Err(o.invalid(
            "portal.max_body_bytes",
            format!("must be between 1024 and {MAX_HTTP_BODY_BYTES}"),
        ));
    }
    if raw.drain_secs > MAX_HTTP_SECS {
        return Err(o.invalid(
            "portal.drain_secs",
            format!("must be at most {MAX_HTTP_SECS}"),
        ));
    }
    if !(60..=MAX_SESSION_SECS).contains(&raw.session_idle_secs) {
        return Err(o.invalid(
            "portal.session_idle_secs",
            format!("must be between 60 and {MAX_SESSION_SECS}"),
        ));
    }
    if !(raw.session_idle_secs..=MAX_SESSION_SECS).contains(&raw.session_max_secs) {
        return Err(o.invalid(
            "portal.session_max_secs",
            format!("must be between portal.session_idle_secs and {MAX_SESSION_SECS}"),
        ));
    }
    let max_expiry = crate::account::mfa::MAX_EXPIRY_SECS;
    if !(60..=max_expiry).contains(&raw.token_max_lifetime_secs) {
        return Err(o.invalid(
            "portal.token_max_lifetime_secs",
            format!("must be between 60 and {max_expiry}"),
        ));
    }
    if !(60..=max_expiry).contains(&raw.token_default_lifetime_secs) {
        return Err(o.invalid(
            "portal.token_default_lifetime_secs",
            format!("must be between 60 and {max_expiry}"),
        ));
    }
    let mut trusted_proxies = Vec::with_capacity(raw.trusted_proxies.len());
    for text in &raw.trusted_proxies {
        match text.parse::<crate::domain::net::Cidr>() {
            Ok(cidr) => trusted_proxies.push(cidr),
            Err(why) => return Err(o.invalid("portal.trusted_proxies", why)),
        }
    }
    Ok(PortalConfig {
        addr,
        max_connections: raw.max_connections,
        header_timeout: Duration::from_secs(raw.header_timeout_secs),
        idle_timeout: secs_or_none(raw.idle_timeout_secs),
        max_body_bytes: raw.max_body_bytes,
        drain: Duration::from_secs(raw.drain_secs),
        session_idle: Duration::from_secs(raw.session_idle_secs),
        session_max: Duration::from_secs(raw.session_max_secs),
        can_change: crate::account::profile::CanChange {
            username: raw.can_change_username,
            name: raw.can_change_name,
            email: raw.can_change_email,
        },
        end_sessions_on_password_change: raw.end_sessions_on_password_change,
        token_lifetimes: crate::account::credentials::Lifetimes {
            // A default above the maximum is cut to it (lowering only the
            // maximum is enough).
            default_secs: raw
                .token_default_lifetime_secs
                .min(raw.token_max_lifetime_secs),
            max_secs: raw.token_max_lifetime_secs,
        },
        tls: raw.tls,
        trusted_proxies,
    })
}

/// A number of seconds where 0 means "no limit".
fn secs_or_none(secs: u64) -> Option<Duration> {
    Some(Duration::from_secs(secs)).filter(|d| !d.is_zero())
}

fn socket_addr(o: &Origins, key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        o.invalid(
            key,
            format!("`{value}` is not an IP address and port such as 127.0.0.1:3389"),
        )
    })
}

fn check_ldap(l: &RawLdap, o: &Origins) -> Result<(), ConfigError> {
    if l.max_connections == 0 {
        return Err(o.invalid("ldap.max_connections", "must be at least 1"));
    }
    for (key, value) in [
        ("ldap.search_group", &l.search_group),
        ("ldap.admin_group", &l.admin_group),
    ] {
        if value.trim().is_empty() {
            return Err(o.invalid(key, "must not be empty"));
        }
    }
    Ok(())
}

fn check_argon2(a: &HashConfig, o: &Origins) -> Result<(), ConfigError> {
    if !(1..=MAX_ARGON2_PARALLELISM).contains(&a.argon2_parallelism) {
        return Err(o.invalid(
            "auth.argon2_parallelism",
            format!("must be between 1 and {MAX_ARGON2_PARALLELISM}"),
        ));
    }
    if !(1..=MAX_ARGON2_ITERATIONS).contains(&a.argon2_iterations) {
        return Err(o.invalid(
            "auth.argon2_iterations",
            format!("must be between 1 and {MAX_ARGON2_ITERATIONS}"),
        ));
    }
    // argon2 needs at least 8 KiB per lane.
    let min_memory = 8 * a.argon2_parallelism;
    if !(min_memory..=MAX_ARGON2_MEMORY_KIB).contains(&a.argon2_memory_kib) {
        return Err(o.invalid(
            "auth.argon2_memory_kib",
            format!(
                "must be between {min_memory} (8 per lane) and {MAX_ARGON2_MEMORY_KIB} (4 GiB)"
            ),
        ));
    }
    Ok(())
}

fn check_hardening(l: &RawLdap, o: &Origins) -> Result<(), ConfigError> {
    if !(1024..=MAX_MESSAGE_BYTES).contains(&l.max_message_bytes) {
        return Err(o.invalid(
            "ldap.max_message_bytes",
            format!("must be between 1024 and {MAX_MESSAGE_BYTES}"),
        ));
    }
    if !(4..=MAX_BER_DEPTH).contains(&l.max_ber_depth) {
        return Err(o.invalid(
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
        (
            "ldap.paged_results_max_bytes",
            l.paged_results_max_bytes as u64,
        ),
        ("ldap.paged_results_idle_secs", l.paged_results_idle_secs),
    ] {
        if value == 0 {
            return Err(o.invalid(key, "must be at least 1"));
        }
    }
    Ok(())
}

/// `[tls]`: the certificate and key files are set together or not at all.
fn tls(raw: RawTls, o: &Origins) -> Result<TlsConfig, ConfigError> {
    if raw.cert_file.is_empty() != raw.key_file.is_empty() {
        let key = if raw.cert_file.is_empty() {
            "tls.cert_file"
        } else {
            "tls.key_file"
        };
        return Err(o.invalid(
            key,
            "tls.cert_file and tls.key_file are set together (or neither, for a generated certificate)",
        ));
    }
    let path = |p: String| Some(PathBuf::from(p)).filter(|p| !p.as_os_str().is_empty());
    Ok(TlsConfig {
        cert_file: path(raw.cert_file),
        key_file: path(raw.key_file),
        hostname: raw.hostname,
    })
}

fn check_threads(a: &HashConfig, l: &RawLdap, o: &Origins) -> Result<(), ConfigError> {
    if a.hash_workers > MAX_HASH_WORKERS {
        return Err(o.invalid(
            "auth.hash_workers",
            format!("must be at most {MAX_HASH_WORKERS} (0 = number of cores)"),
        ));
    }
    if l.reactor_threads > MAX_REACTOR_THREADS {
        return Err(o.invalid(
            "ldap.reactor_threads",
            format!("must be at most {MAX_REACTOR_THREADS} (0 = number of cores)"),
        ));
    }
    Ok(())
}

fn bind(raw: RawBind, o: &Origins) -> Result<BindConfig, ConfigError> {
    let mfa = MfaPolicy::parse(&raw.mfa)
        .ok_or_else(|| o.invalid("bind.mfa", "must be if-enrolled, required or off"))?;
    let issuer = &raw.totp_issuer;
    if issuer.trim().is_empty() || issuer.len() > 64 || issuer.contains(':') {
        return Err(o.invalid(
            "bind.totp_issuer",
            "must be 1 to 64 bytes without `:` (it prefixes the account in the otpauth URI)",
        ));
    }
    if !(1..=MAX_BIND_CACHE_TTL_SECS).contains(&raw.cache_ttl_secs) {
        return Err(o.invalid(
            "bind.cache_ttl_secs",
            format!(
                "must be between 1 and {MAX_BIND_CACHE_TTL_SECS} (use cache = false to turn the cache off)"
            ),
        ));
    }
    if !(1..=MAX_BIND_CACHE_ENTRIES).contains(&raw.cache_max_entries) {
        return Err(o.invalid(
            "bind.cache_max_entries",
            format!("must be between 1 and {MAX_BIND_CACHE_ENTRIES}"),
        ));
    }
    Ok(BindConfig {
        mfa,
        app_passwords: raw.app_passwords,
        totp_issuer: raw.totp_issuer,
        cache: raw.cache,
        cache_ttl: Duration::from_secs(raw.cache_ttl_secs),
        cache_max_entries: raw.cache_max_entries,
    })
}

fn throttle(t: RawThrottle, o: &Origins) -> Result<ThrottleSettings, ConfigError> {
    if t.account_failures == 0 {
        return Err(o.invalid("throttle.account_failures", "must be at least 1"));
    }
    if t.account_delay_ms == 0 || t.account_delay_ms > 3_600_000 {
        return Err(o.invalid(
            "throttle.account_delay_ms",
            "must be between 1 and 3600000 (one hour)",
        ));
    }
    if t.account_max_delay_secs.saturating_mul(1000) < t.account_delay_ms
        || t.account_max_delay_secs > 86_400
    {
        return Err(o.invalid(
            "throttle.account_max_delay_secs",
            "must be at least account_delay_ms and at most 86400 (one day)",
        ));
    }
    if t.code_failures == 0 {
        return Err(o.invalid("throttle.code_failures", "must be at least 1"));
    }
    if t.code_delay_ms == 0 || t.code_delay_ms > 3_600_000 {
        return Err(o.invalid(
            "throttle.code_delay_ms",
            "must be between 1 and 3600000 (one hour)",
        ));
    }
    if t.code_max_delay_secs.saturating_mul(1000) < t.code_delay_ms
        || t.code_max_delay_secs > 86_400
    {
        return Err(o.invalid(
            "throttle.code_max_delay_secs",
            "must be at least code_delay_ms and at most 86400 (one day)",
        ));
    }
    if t.address_window_secs == 0 || t.address_window_secs > 86_400 {
        return Err(o.invalid(
            "throttle.address_window_secs",
            "must be between 1 and 86400 (one day)",
        ));
    }
    Ok(ThrottleSettings {
        account_failures: t.account_failures,
        account_delay: Duration::from_millis(t.account_delay_ms),
        account_max_delay: Duration::from_secs(t.account_max_delay_secs),
        code_failures: t.code_failures,
        code_delay: Duration::from_millis(t.code_delay_ms),
        code_max_delay: Duration::from_secs(t.code_max_delay_secs),
        address_failures: t.address_failures,
        address_window: Duration::from_secs(t.address_window_secs),
    })
}

/// Longest interval between scheduled backups (a year), so the timer's
/// arithmetic never overflows.
const MAX_BACKUP_INTERVAL_SECS: u64 = 366 * 86_400;

fn backup(raw: RawBackup, o: &Origins) -> Result<BackupConfig, ConfigError> {
    if raw.interval_secs == 0 || raw.interval_secs > MAX_BACKUP_INTERVAL_SECS {
        return Err(o.invalid(
            "backup.interval_secs",
            format!("must be between 1 and {MAX_BACKUP_INTERVAL_SECS} seconds"),
        ));
    }
    if raw.keep == 0 {
        return Err(o.invalid(
            "backup.keep",
            "must be at least 1 (the newest backup is always kept)",
        ));
    }
    Ok(BackupConfig {
        dir: (!raw.dir.trim().is_empty()).then(|| PathBuf::from(raw.dir)),
        interval: Duration::from_secs(raw.interval_secs),
        keep: raw.keep,
    })
}

/// Largest `store.record_cache_mib` (1 TiB).
const MAX_RECORD_CACHE_MIB: usize = 1 << 20;
/// Bounds of `store.page_cache_mib`: sled needs a few pages to work with.
const PAGE_CACHE_MIB: std::ops::RangeInclusive<usize> = 8..=(1 << 20);

/// Most connections `store.pool_size` may ask for.
const MAX_POOL_SIZE: usize = 1024;

/// `[store]`. Messages name keys, never the URL's text (it may hold a
/// password).
fn store(raw: RawStore, o: &Origins) -> Result<StoreConfig, ConfigError> {
    let url = raw.url.trim();
    let url_file = raw.url_file.trim();
    match raw.backend.as_str() {
        "sled" => {
            for (key, set) in [
                ("store.url", !url.is_empty()),
                ("store.url_file", !url_file.is_empty()),
            ] {
                if set {
                    return Err(o.invalid(key, "is only for backend = \"postgres\""));
                }
            }
            if raw.record_cache_mib > MAX_RECORD_CACHE_MIB {
                return Err(o.invalid(
                    "store.record_cache_mib",
                    format!("must be at most {MAX_RECORD_CACHE_MIB} (MiB)"),
                ));
            }
            if !PAGE_CACHE_MIB.contains(&raw.page_cache_mib) {
                return Err(o.invalid(
                    "store.page_cache_mib",
                    format!(
                        "must be from {} to {} (MiB)",
                        PAGE_CACHE_MIB.start(),
                        PAGE_CACHE_MIB.end()
                    ),
                ));
            }
            Ok(StoreConfig::Sled(SledConfig {
                record_cache_mib: raw.record_cache_mib,
                page_cache_mib: raw.page_cache_mib,
            }))
        }
        "postgres" => {
            let url = match (url.is_empty(), url_file.is_empty()) {
                (false, true) => DatabaseUrl::Text(url.to_string()),
                (true, false) => DatabaseUrl::File(PathBuf::from(url_file)),
                (false, false) => {
                    return Err(o.invalid("store.url", "set store.url or store.url_file, not both"))
                }
                (true, true) => {
                    return Err(o.invalid(
                        "store.url",
                        "backend = \"postgres\" needs store.url or store.url_file",
                    ))
                }
            };
            if raw.pool_size == 0 || raw.pool_size > MAX_POOL_SIZE {
                return Err(o.invalid(
                    "store.pool_size",
                    format!("must be between 1 and {MAX_POOL_SIZE}"),
                ));
            }
            Ok(StoreConfig::Postgres(PostgresConfig {
                url,
                pool_size: raw.pool_size,
                statement_timeout: (raw.statement_timeout_ms > 0)
                    .then(|| Duration::from_millis(raw.statement_timeout_ms)),
            }))
        }
        other => Err(o.invalid(
            "store.backend",
            format!("{other:?} is not a backend (\"sled\" or \"postgres\")"),
        )),
    }
}

/// Longest `password.min_length`: a minimum above this would refuse
/// passphrases people can type.
const MAX_MIN_PASSWORD_LENGTH: usize = 256;
/// Most shells `accounts.login_shells` may list.
const MAX_LOGIN_SHELLS: usize = 64;

fn check_password(p: &RawPassword, o: &Origins) -> Result<(), ConfigError> {
    if !(1..=MAX_MIN_PASSWORD_LENGTH).contains(&p.min_length) {
        return Err(o.invalid(
            "password.min_length",
            format!("must be between 1 and {MAX_MIN_PASSWORD_LENGTH}"),
        ));
    }
    if p.min_strength > 4 {
        return Err(o.invalid(
            "password.min_strength",
            "must be a zxcvbn score from 0 (no strength check) to 4",
        ));
    }
    Ok(())
}

fn check_accounts(a: &RawAccounts, o: &Origins) -> Result<(), ConfigError> {
    if a.login_shells.len() > MAX_LOGIN_SHELLS {
        return Err(o.invalid(
            "accounts.login_shells",
            format!("lists more than {MAX_LOGIN_SHELLS} shells"),
        ));
    }
    for shell in &a.login_shells {
        if let Err(e) = crate::domain::validate::path("shell", shell) {
            return Err(o.invalid("accounts.login_shells", e.to_string()));
        }
    }
    Ok(())
}

fn check_import(import: &RawImport, o: &Origins) -> Result<(), ConfigError> {
    let keep = &import.keep_attributes;
    if keep.len() > MAX_KEEP_ATTRIBUTES {
        return Err(o.invalid(
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
        return Err(o.invalid(
            "import.keep_attributes",
            format!("{bad:?} is not an attribute name (letters, digits and '-', starting with a letter)"),
        ));
    }
    Ok(())
}

/// The base DN, parsed. A light check first gives a pointed message for
/// the usual mistakes (`example.com`, empty); then the RFC 4514 parser has
/// the last word.
fn base_dn(dn: &str) -> Result<Dn, String> {
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
    Dn::parse(dn).map_err(|e| format!("`{dn}` is not a DN: {e}"))
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
