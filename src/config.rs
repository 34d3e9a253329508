//! Settings: TOML file, then `PORTCULLIS_*` environment, then flags, resolved
//! into one validated [`Config`].

use serde::Deserialize;
use std::path::PathBuf;

/// Every setting of the server. Each field's default is DESIGN.md section 2's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the sled database, the admin socket and generated files live.
    pub data_dir: PathBuf,
    /// Suffix of the served tree.
    pub base_dn: String,
    pub ldap: LdapConfig,
    pub portal: PortalConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Deserialize)]
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortalConfig {
    /// Self-service portal listener (the portal itself is a later issue).
    pub addr: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// argon2id memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    pub argon2_iterations: u32,
    /// argon2id lanes.
    pub argon2_parallelism: u32,
    /// Hashes computed at once (0 = number of cores).
    pub hash_workers: usize,
}

#[derive(Debug, Clone, Deserialize)]
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
            auth: AuthConfig::default(),
            log: LogConfig::default(),
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

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            argon2_memory_kib: 19456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hash_workers: 0,
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
