//! Unit tests of loading, precedence, validation and the key table.

use super::keys::{self, KEYS};
use super::*;
use std::io::Write;

fn env(vars: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<Vec<_>>()
        .into_iter()
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
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
    assert_eq!(c.base_dn.to_string(), "dc=example,dc=com");
    assert_eq!(c.ldap.addr, addr("127.0.0.1:3389"));
    assert_eq!(c.ldap.ldaps_addr, addr("127.0.0.1:6636"));
    assert_eq!(c.portal.addr, addr("127.0.0.1:8080"));
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
    RawConfig::from_file(&path, &mut origins).expect("load");
    for key in KEYS {
        let key = key.name;
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
    assert_eq!(c.base_dn.to_string(), "dc=file,dc=org");
    assert_eq!(c.data_dir, PathBuf::from("/srv/file"));
    assert_eq!(c.ldap.addr, addr("127.0.0.1:1389"));
    assert_eq!(c.ldap.max_connections, 10);
    assert_eq!(c.log.level, "debug");
    assert_eq!(
        c.ldap.ldaps_addr,
        addr("127.0.0.1:6636"),
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
    assert_eq!(c.base_dn.to_string(), "dc=env,dc=org");
    assert_eq!(c.ldap.addr, addr("127.0.0.1:2389"));
    assert_eq!(c.ldap.max_connections, 20);
    assert_eq!(c.auth.argon2_memory_kib, 65536);
    assert_eq!(c.portal.addr, addr("0.0.0.0:8081"));
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
    assert_eq!(c.base_dn.to_string(), "dc=flag,dc=org");
    assert_eq!(c.data_dir, PathBuf::from("/srv/flag"));
    assert_eq!(c.ldap.addr, addr("[::1]:3389"));
    assert_eq!(c.ldap.ldaps_addr, addr("127.0.0.1:7636"));
    assert_eq!(c.portal.addr, addr("127.0.0.1:9090"));
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
        ("PORTCULLIS_PORTAL_MAX_CONNECTIONS", "15"),
        ("PORTCULLIS_PORTAL_HEADER_TIMEOUT_SECS", "16"),
        ("PORTCULLIS_PORTAL_IDLE_TIMEOUT_SECS", "17"),
        ("PORTCULLIS_PORTAL_MAX_BODY_BYTES", "18000"),
        ("PORTCULLIS_PORTAL_TLS", "true"),
        ("PORTCULLIS_PORTAL_TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
        ("PORTCULLIS_PORTAL_DRAIN_SECS", "19"),
        ("PORTCULLIS_PORTAL_SESSION_IDLE_SECS", "600"),
        ("PORTCULLIS_PORTAL_SESSION_MAX_SECS", "6000"),
        ("PORTCULLIS_PORTAL_CAN_CHANGE_USERNAME", "true"),
        ("PORTCULLIS_PORTAL_CAN_CHANGE_NAME", "false"),
        ("PORTCULLIS_PORTAL_CAN_CHANGE_EMAIL", "true"),
        ("PORTCULLIS_PORTAL_END_SESSIONS_ON_PASSWORD_CHANGE", "false"),
        ("PORTCULLIS_PORTAL_TOKEN_DEFAULT_LIFETIME_SECS", "3600"),
        ("PORTCULLIS_PORTAL_TOKEN_MAX_LIFETIME_SECS", "7200"),
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
        ("PORTCULLIS_THROTTLE_CODE_FAILURES", "15"),
        ("PORTCULLIS_THROTTLE_CODE_DELAY_MS", "16"),
        ("PORTCULLIS_THROTTLE_CODE_MAX_DELAY_SECS", "17"),
        ("PORTCULLIS_THROTTLE_ADDRESS_FAILURES", "11"),
        ("PORTCULLIS_THROTTLE_ADDRESS_WINDOW_SECS", "12"),
        ("PORTCULLIS_LDAP_REACTOR_THREADS", "3"),
        ("PORTCULLIS_BACKUP_DIR", "/b"),
        ("PORTCULLIS_BACKUP_INTERVAL_SECS", "18"),
        ("PORTCULLIS_BACKUP_KEEP", "19"),
        ("PORTCULLIS_PASSWORD_MIN_LENGTH", "20"),
        ("PORTCULLIS_PASSWORD_MIN_STRENGTH", "4"),
        ("PORTCULLIS_ACCOUNTS_LOGIN_SHELLS", "/bin/zsh"),
        ("PORTCULLIS_STORE_BACKEND", "postgres"),
        ("PORTCULLIS_STORE_URL", "postgres://p:secret@db/portcullis"),
        ("PORTCULLIS_STORE_POOL_SIZE", "21"),
        ("PORTCULLIS_STORE_STATEMENT_TIMEOUT_MS", "22"),
        // Read, and unused by the postgres backend.
        ("PORTCULLIS_STORE_RECORD_CACHE_MIB", "23"),
        ("PORTCULLIS_STORE_PAGE_CACHE_MIB", "24"),
    ];
    // PORTCULLIS_STORE_URL_FILE excludes PORTCULLIS_STORE_URL: see
    // store_settings_and_their_refusals.
    assert_eq!(vars.len() + HARDENING_ENV.len() + 2, KEYS.len());
    let c = Config::load(None, env(&vars), &Overrides::default()).expect("load");
    let expected = Config {
        data_dir: "/d".into(),
        base_dn: Dn::parse("o=x").expect("dn"),
        ldap: LdapConfig {
            addr: addr("127.0.0.1:1"),
            ldaps_addr: addr("127.0.0.1:2"),
            max_connections: 3,
            size_limit: 4,
            time_limit: Some(Duration::from_secs(5)),
            search_group: "readers".into(),
            admin_group: "wheel".into(),
            transitive_member_of: true,
            reactor_threads: 3,
            ..Config::default().ldap
        },
        portal: PortalConfig {
            addr: addr("127.0.0.1:6"),
            max_connections: 15,
            header_timeout: Duration::from_secs(16),
            idle_timeout: Some(Duration::from_secs(17)),
            max_body_bytes: 18000,
            drain: Duration::from_secs(19),
            session_idle: Duration::from_secs(600),
            session_max: Duration::from_secs(6000),
            can_change: crate::account::profile::CanChange {
                username: true,
                name: false,
                email: true,
            },
            end_sessions_on_password_change: false,
            token_lifetimes: crate::account::credentials::Lifetimes {
                default_secs: 3600,
                max_secs: 7200,
            },
            tls: true,
            trusted_proxies: vec![
                "10.0.0.0/8".parse().expect("cidr"),
                "::1".parse().expect("ip"),
            ],
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
            mfa: MfaPolicy::Required,
            app_passwords: false,
            totp_issuer: "Example Inc".into(),
            cache: false,
            cache_ttl: Duration::from_secs(13),
            cache_max_entries: 14,
        },
        throttle: ThrottleSettings {
            account_failures: 8,
            account_delay: Duration::from_millis(9),
            account_max_delay: Duration::from_secs(10),
            code_failures: 15,
            code_delay: Duration::from_millis(16),
            code_max_delay: Duration::from_secs(17),
            address_failures: 11,
            address_window: Duration::from_secs(12),
        },
        tls: TlsConfig::default(),
        import: ImportConfig::default(),
        backup: BackupConfig {
            dir: Some("/b".into()),
            interval: Duration::from_secs(18),
            keep: 19,
        },
        password: PasswordConfig {
            min_length: 20,
            min_strength: 4,
        },
        accounts: AccountsConfig {
            login_shells: vec!["/bin/zsh".into()],
        },
        store: StoreConfig::Postgres(PostgresConfig {
            url: DatabaseUrl::Text("postgres://p:secret@db/portcullis".into()),
            pool_size: 21,
            statement_timeout: Some(Duration::from_millis(22)),
        }),
    };
    assert_eq!(c, expected);
    assert_eq!(c.base_dn.to_string(), "o=x");
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

#[test]
fn password_policy_and_shells() {
    let c = Config::default();
    // The defaults in the raw layer are the account layer's.
    let policy = crate::account::AccountSettings::from_config(&c).password;
    assert_eq!(policy, crate::account::password::PasswordPolicy::default());
    assert!(c.accounts.login_shells.iter().any(|s| s == "/bin/bash"));

    let f = toml_file("[password]\nmin_length = 12\nmin_strength = 3\n[accounts]\nlogin_shells = [\"/bin/zsh\"]\n");
    let c = Config::load(Some(f.path()), env(&[]), &Overrides::default()).expect("load");
    assert_eq!((c.password.min_length, c.password.min_strength), (12, 3));
    assert_eq!(c.accounts.login_shells, ["/bin/zsh"]);
    let vars = [
        ("PORTCULLIS_PASSWORD_MIN_LENGTH", "10"),
        ("PORTCULLIS_PASSWORD_MIN_STRENGTH", "0"),
        ("PORTCULLIS_ACCOUNTS_LOGIN_SHELLS", "/bin/sh, /usr/bin/fish"),
    ];
    let c = Config::load(Some(f.path()), env(&vars), &Overrides::default()).expect("load");
    assert_eq!((c.password.min_length, c.password.min_strength), (10, 0));
    assert_eq!(c.accounts.login_shells, ["/bin/sh", "/usr/bin/fish"]);

    for (var, value, key) in [
        ("PORTCULLIS_PASSWORD_MIN_LENGTH", "0", "password.min_length"),
        (
            "PORTCULLIS_PASSWORD_MIN_STRENGTH",
            "5",
            "password.min_strength",
        ),
        (
            "PORTCULLIS_ACCOUNTS_LOGIN_SHELLS",
            "bash",
            "accounts.login_shells",
        ),
        (
            "PORTCULLIS_ACCOUNTS_LOGIN_SHELLS",
            "/bin/x:0:0",
            "accounts.login_shells",
        ),
    ] {
        let err = Config::load(None, env(&[(var, value)]), &Overrides::default()).expect_err(value);
        assert!(err.to_string().contains(key), "{err}");
    }
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
    ("PORTCULLIS_LDAP_PAGED_RESULTS_MAX_BYTES", "65536"),
    ("PORTCULLIS_LDAP_PAGED_RESULTS_IDLE_SECS", "30"),
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
    assert_eq!(c.ldap.tls_handshake_timeout, Duration::from_secs(3));
    assert_eq!(c.ldap.first_message_timeout, Duration::from_secs(4));
    assert_eq!(c.ldap.idle_timeout, None);
    assert_eq!(c.ldap.max_queued_binds, 9);
    assert_eq!(c.ldap.paged_results_max_bytes, 65536);
    assert_eq!(c.ldap.paged_results_idle, Duration::from_secs(30));
    assert_eq!(c.tls.cert_file, Some(PathBuf::from("/c.pem")));
    assert_eq!(c.tls.key_file, Some(PathBuf::from("/k.pem")));
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
    assert_eq!(c.base_dn.to_string(), "dc=envfile");
    let c = Config::load(Some(from_flag.path()), env(&vars), &Overrides::default()).expect("load");
    assert_eq!(c.base_dn.to_string(), "dc=flagfile");
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
    let e = Config::load(Some(f.path()), env(&[]), &Overrides::default()).expect_err("must fail");
    assert!(matches!(e, ConfigError::Parse { .. }));
    assert!(e.to_string().contains("max_conections"), "{e}");

    let f = toml_file("[ldap]\nmax_connections = \"many\"\n");
    let e = Config::load(Some(f.path()), env(&[]), &Overrides::default()).expect_err("must fail");
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
    let e = Config::load(Some(f.path()), env(&[]), &Overrides::default()).expect_err("must fail");
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

/// Lowering only the maximum token lifetime cuts the default to it.
#[test]
fn a_default_token_lifetime_above_the_maximum_is_cut_to_it() {
    let c = Config::load(
        None,
        env(&[("PORTCULLIS_PORTAL_TOKEN_MAX_LIFETIME_SECS", "604800")]),
        &Overrides::default(),
    )
    .expect("load");
    assert_eq!(c.portal.token_lifetimes.max_secs, 604800);
    assert_eq!(c.portal.token_lifetimes.default_secs, 604800);
}

#[test]
fn validation_rules() {
    let bad: &[(&str, &str, &str)] = &[
        ("PORTCULLIS_BASE_DN", "", "base_dn"),
        ("PORTCULLIS_BASE_DN", "dc=example,com", "base_dn"),
        ("PORTCULLIS_BASE_DN", "=x", "base_dn"),
        // Passes the quick check, fails the RFC 4514 parser.
        ("PORTCULLIS_BASE_DN", "dc=a,dc=b\\", "base_dn"),
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
        (
            "PORTCULLIS_PORTAL_MAX_CONNECTIONS",
            "0",
            "portal.max_connections",
        ),
        (
            "PORTCULLIS_PORTAL_HEADER_TIMEOUT_SECS",
            "0",
            "portal.header_timeout_secs",
        ),
        (
            "PORTCULLIS_PORTAL_MAX_BODY_BYTES",
            "10",
            "portal.max_body_bytes",
        ),
        (
            "PORTCULLIS_PORTAL_TOKEN_MAX_LIFETIME_SECS",
            "59",
            "portal.token_max_lifetime_secs",
        ),
        (
            "PORTCULLIS_PORTAL_TOKEN_DEFAULT_LIFETIME_SECS",
            "0",
            "portal.token_default_lifetime_secs",
        ),
        (
            "PORTCULLIS_PORTAL_DRAIN_SECS",
            "999999",
            "portal.drain_secs",
        ),
        (
            "PORTCULLIS_PORTAL_SESSION_IDLE_SECS",
            "5",
            "portal.session_idle_secs",
        ),
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
            "PORTCULLIS_THROTTLE_CODE_FAILURES",
            "0",
            "throttle.code_failures",
        ),
        (
            "PORTCULLIS_THROTTLE_CODE_DELAY_MS",
            "0",
            "throttle.code_delay_ms",
        ),
        (
            "PORTCULLIS_THROTTLE_CODE_MAX_DELAY_SECS",
            "86401",
            "throttle.code_max_delay_secs",
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
        ("PORTCULLIS_PORTAL_IDLE_TIMEOUT_SECS", "0"),
        ("PORTCULLIS_PORTAL_DRAIN_SECS", "0"),
    ];
    for (var, value) in ok {
        Config::load(None, env(&[(var, value)]), &Overrides::default())
            .unwrap_or_else(|e| panic!("{var}={value}: {e}"));
    }
}

#[test]
fn every_flag_sets_a_key_of_the_table() {
    for (flag, _) in Overrides::default().given() {
        assert!(keys::by_flag(flag).is_some(), "{flag} sets no key");
    }
}

#[test]
fn keys_and_variables_are_unique() {
    for (i, key) in KEYS.iter().enumerate() {
        for other in &KEYS[i + 1..] {
            assert_ne!(key.name, other.name);
            assert_ne!(key.env, other.env);
            assert!(key.flag.is_none() || key.flag != other.flag, "{key:?}");
        }
    }
}

#[test]
fn typed_settings_from_the_raw_values() {
    let c = Config::default();
    assert_eq!(c.base_dn, Dn::parse("DC=Example, DC=Com").expect("dn"));
    assert_eq!(c.bind.mfa, MfaPolicy::IfEnrolled);
    assert_eq!(c.ldap.time_limit, None, "0 = no limit");
    assert_eq!(c.ldap.idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!(c.ldap.tls_handshake_timeout, Duration::from_secs(10));
    assert_eq!(c.bind.cache_ttl, Duration::from_secs(60));
    assert_eq!(c.throttle.account_delay, Duration::from_millis(1000));
    assert_eq!(c.tls.cert_file, None);
    let settings = c.auth_settings();
    assert_eq!(settings.policy.mfa, MfaPolicy::IfEnrolled);
    assert_eq!(
        settings.throttle.account_max_delay,
        Duration::from_secs(300)
    );
    assert_eq!(settings.throttle.code_failures, 3);
    assert_eq!(settings.throttle.code_delay, Duration::from_millis(1000));
    assert_eq!(settings.throttle.code_max_delay, Duration::from_secs(900));
    assert_eq!(settings.cache.ttl, Duration::from_secs(60));

    let vars = [
        ("PORTCULLIS_LDAP_TIME_LIMIT_SECS", "7"),
        ("PORTCULLIS_BIND_MFA", "off"),
    ];
    let c = Config::load(None, env(&vars), &Overrides::default()).expect("load");
    assert_eq!(c.ldap.time_limit, Some(Duration::from_secs(7)));
    assert_eq!(c.auth_settings().policy.mfa, MfaPolicy::Off);
}

#[test]
fn backup_settings() {
    let c = Config::default();
    assert_eq!(c.backup.dir, None, "off unless a directory is set");
    assert_eq!(c.backup.interval, Duration::from_secs(86_400));
    assert_eq!(c.backup.keep, 7);
    for (var, value) in [
        ("PORTCULLIS_BACKUP_INTERVAL_SECS", "0"),
        ("PORTCULLIS_BACKUP_KEEP", "0"),
        ("PORTCULLIS_BACKUP_INTERVAL_SECS", "1h"),
    ] {
        let err =
            Config::load(None, env(&[(var, value)]), &Overrides::default()).expect_err("refused");
        assert!(err.to_string().contains(var), "{var}={value}: {err}");
    }
    let f = toml_file("[backup]\ndir = \"/srv/b\"\ninterval_secs = 60\nkeep = 2\n");
    let c = Config::load(Some(f.path()), env(&[]), &Overrides::default()).expect("load");
    assert_eq!(c.backup.dir, Some(PathBuf::from("/srv/b")));
    assert_eq!(c.backup.interval, Duration::from_secs(60));
    assert_eq!(c.backup.keep, 2);
}

#[test]
fn trusted_proxies_must_be_addresses() {
    for bad in ["proxy.example", "10.0.0.0/40"] {
        let vars = [("PORTCULLIS_PORTAL_TRUSTED_PROXIES", bad)];
        let err = Config::load(None, env(&vars), &Overrides::default()).expect_err(bad);
        assert!(err.to_string().contains("portal.trusted_proxies"), "{err}");
    }
}

#[test]
fn store_settings_and_their_refusals() {
    let load = |vars: &[(&str, &str)]| Config::load(None, env(vars), &Overrides::default());
    assert_eq!(
        load(&[]).expect("load").store,
        StoreConfig::Sled(SledConfig {
            record_cache_mib: 768,
            page_cache_mib: crate::store::DEFAULT_PAGE_CACHE_MIB,
        })
    );
    assert_eq!(
        load(&[("PORTCULLIS_STORE_RECORD_CACHE_MIB", "0")])
            .expect("load")
            .store,
        StoreConfig::Sled(SledConfig {
            record_cache_mib: 0,
            page_cache_mib: crate::store::DEFAULT_PAGE_CACHE_MIB,
        })
    );
    let e = load(&[("PORTCULLIS_STORE_RECORD_CACHE_MIB", "2000000")]).expect_err("too large");
    assert!(e.to_string().contains("store.record_cache_mib"), "{e}");
    assert_eq!(
        load(&[("PORTCULLIS_STORE_PAGE_CACHE_MIB", "64")])
            .expect("load")
            .store,
        StoreConfig::Sled(SledConfig {
            record_cache_mib: 768,
            page_cache_mib: 64,
        })
    );
    for refused in ["0", "7", "2000000"] {
        let e = load(&[("PORTCULLIS_STORE_PAGE_CACHE_MIB", refused)]).expect_err(refused);
        assert!(e.to_string().contains("store.page_cache_mib"), "{e}");
    }
    let c = load(&[
        ("PORTCULLIS_STORE_BACKEND", "postgres"),
        ("PORTCULLIS_STORE_URL_FILE", "/run/secrets/db-url"),
    ])
    .expect("load");
    assert_eq!(
        c.store,
        StoreConfig::Postgres(PostgresConfig {
            url: DatabaseUrl::File("/run/secrets/db-url".into()),
            pool_size: 16,
            statement_timeout: Some(Duration::from_secs(5)),
        })
    );
    let secret = "postgres://p:hunter2@db/x";
    for (vars, key) in [
        (vec![("PORTCULLIS_STORE_BACKEND", "postgres")], "store.url"),
        (
            vec![
                ("PORTCULLIS_STORE_BACKEND", "postgres"),
                ("PORTCULLIS_STORE_URL", secret),
                ("PORTCULLIS_STORE_URL_FILE", "/f"),
            ],
            "store.url",
        ),
        (vec![("PORTCULLIS_STORE_URL", secret)], "store.url"),
        (vec![("PORTCULLIS_STORE_BACKEND", "mysql")], "store.backend"),
        (
            vec![
                ("PORTCULLIS_STORE_BACKEND", "postgres"),
                ("PORTCULLIS_STORE_URL", secret),
                ("PORTCULLIS_STORE_POOL_SIZE", "0"),
            ],
            "store.pool_size",
        ),
    ] {
        let err = load(&vars).expect_err("refused").to_string();
        assert!(err.contains(key), "{key}: {err}");
        assert!(!err.contains("hunter2"), "the password leaked: {err}");
    }
    let c = load(&[
        ("PORTCULLIS_STORE_BACKEND", "postgres"),
        ("PORTCULLIS_STORE_URL", secret),
    ])
    .expect("load");
    assert!(
        !format!("{c:?}").contains("hunter2"),
        "Debug shows no password"
    );
}

#[test]
fn a_broken_url_line_is_not_repeated() {
    let f = toml_file("[store]\nbackend = \"postgres\"\nurl = postgres://p:hunter2@db/x\n");
    let err = Config::load(Some(f.path()), env(&[]), &Overrides::default())
        .expect_err("refused")
        .to_string();
    assert!(err.contains("line 3"), "{err}");
    assert!(!err.contains("hunter2"), "the password leaked: {err}");
}
