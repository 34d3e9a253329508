//! The account layer: every rule about changing an account, written once.
//!
//! LDAP writes and Password Modify (`ldap`), the admin requests of the CLI
//! and the admin socket (`admin`), bootstrap and import call this module
//! rather than the store for anything that changes an account, and so
//! does the portal. It decides who may change what (the acting party is always
//! named: see [`Actor`]), the password policy, the admin set and the
//! last-enabled-admin guard.
//!
//! Layout:
//! - this file: [`Accounts`] (the service the LDAP handler holds),
//!   [`AdminContext`] (what the operator's operations need), [`Actor`],
//!   [`AccountError`].
//! - `password`: the password policy (length, zxcvbn strength, hashing,
//!   generated passwords); [`AccountSettings`] carries the configured one.
//! - `passwd`: a password change over LDAP (and next the portal).
//! - `records`: users and groups as the operator changes them (create,
//!   password, enable/disable, attributes, delete, memberships, nesting).
//! - `mfa`: MFA enrolment and bind policies.
//! - `credentials`: app passwords and API tokens (labelled secrets).
//! - `connections`: the open LDAP connections (who is bound where), listed
//!   and ended by `session list|end` and the portal.
//! - `own`: what a user manages of their own account at the portal (second
//!   factors, app passwords and API tokens, sessions), as [`Accounts`]
//!   methods over the rules of `mfa`, `credentials` and `sessions`.
//! - `manage`: what an admin does at the portal (users enabled or
//!   disabled, group memberships), over the rules of `records`.
//! - `profile`: a user's own details (username, name, email, locale) and
//!   the rule of which the user may change.
//! - `sessions`: portal sessions (opened after a sign-in `auth` decided,
//!   found by the hash of their id, expired, listed, ended).
//! - `admins`: the guard that keeps an enabled admin (who is one:
//!   `directory::admins`).
//! - `bootstrap`: the first start, as the server itself.
//! - `import`: import and restore batches, as the operator.
//! - `view`: the typed answers (`AdminAnswer`, user, group, device, app
//!   password and policy views), which the CLI prints and the JSON API
//!   will serve.
//! - `write`: LDAP add, modify, delete and modify DN mapped onto store
//!   changes, with the write access rules.
//!
//! Below this module: `directory` (the read model: DNs, schema, entries,
//! search), `auth` (bind decisions, hashing) and `store`. Above it: `ldap`,
//! `admin`, `cli`, `server`, which never change the store themselves.

pub mod admins;
pub mod bootstrap;
pub mod connections;
pub mod credentials;
pub mod import;
pub mod manage;
pub mod mfa;
pub mod own;
pub mod passwd;
pub mod password;
pub mod profile;
pub mod records;
pub mod sessions;
pub mod view;
pub mod write;

use crate::auth::keys::ServerKey;
use crate::auth::password::Hasher;
use crate::auth::policy::PolicyDefaults;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::directory::{Directory, Dn, Identity};
use crate::store::{Store, StoreError, UserId};

/// Who asks for a change. Every account operation takes one, and the
/// permission check happens in this module, not in the front end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A client of the LDAP listener as it bound, or a user signed in at
    /// the portal.
    /// Whether it is an admin is decided here, from the directory.
    Bound(Identity),
    /// The local operator: the CLI and the admin socket (whoever can open
    /// the data directory or the socket administers the server).
    Operator,
    /// The server itself: bootstrap and import.
    System,
}

impl From<crate::blocking::TaskFailed> for AccountError {
    fn from(e: crate::blocking::TaskFailed) -> AccountError {
        AccountError::Internal(e.to_string())
    }
}

impl Actor {
    /// Operations only the operator (or the server) makes: creating and
    /// deleting users and groups, setting attributes and policies, TOTP
    /// devices confirmed at once. A bound client is refused. (Users manage
    /// their own devices, credentials and sessions under
    /// [`Actor::may_manage`]; admins at the portal what
    /// [`Actor::require_admin`] allows.)
    pub fn require_operator(&self) -> Result<(), AccountError> {
        match self {
            Actor::Operator | Actor::System => Ok(()),
            Actor::Bound(_) => Err(AccountError::Denied("only the operator may do this".into())),
        }
    }
}

impl Actor {
    /// The operator (or the server), or a bound admin: a member of the
    /// admin group, enabled (the portal's admin page and API). Blocking.
    pub fn require_admin(&self, ctx: &AdminContext) -> Result<(), AccountError> {
        match self {
            Actor::Operator | Actor::System => Ok(()),
            Actor::Bound(who) => {
                if crate::directory::admins::is_admin_in(&ctx.store, &ctx.admin_group, who)? {
                    Ok(())
                } else {
                    Err(AccountError::Denied("only admins may do this".into()))
                }
            }
        }
    }

    /// The user `username` themself, or the operator (or the server).
    pub fn may_manage(&self, username: &str) -> Result<(), AccountError> {
        match self {
            Actor::Operator | Actor::System => Ok(()),
            Actor::Bound(Identity::User { username: own, .. })
                if own.eq_ignore_ascii_case(username) =>
            {
                Ok(())
            }
            Actor::Bound(_) => Err(AccountError::Denied(
                "only the user themself or the operator may do this".into(),
            )),
        }
    }
}

/// Why an account operation was refused, in terms each front end maps to
/// its own answer (an LDAP result code, an admin error kind).
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The change breaks a rule (the admin guard, a required group, …).
    #[error("{0}")]
    Invalid(String),
    /// The new password does not meet the password policy.
    #[error(transparent)]
    Password(#[from] password::PasswordRefusal),
    /// The actor may not make this change.
    #[error("{0}")]
    Denied(String),
    /// The credentials given with the change are wrong.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The hashing pool is full: try again.
    #[error("the server is busy; try again")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing or a task failed; the detail is logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The account rules that come from the configuration (`[password]`,
/// `[accounts]`). Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSettings {
    /// The policy for new passwords in clear.
    pub password: password::PasswordPolicy,
    /// The shells a user may choose for themself.
    pub login_shells: std::sync::Arc<[String]>,
}

impl AccountSettings {
    pub fn from_config(config: &Config) -> AccountSettings {
        AccountSettings {
            password: password::PasswordPolicy {
                min_length: config.password.min_length,
                min_strength: config.password.min_strength,
            },
            login_shells: config.accounts.login_shells.clone().into(),
        }
    }

    /// The default policy, and the usual shells (tests and fuzzing; the
    /// server takes [`AccountSettings::from_config`]).
    pub fn defaults() -> AccountSettings {
        AccountSettings {
            password: password::PasswordPolicy::default(),
            login_shells: ["/bin/sh", "/bin/bash", "/bin/zsh", "/usr/sbin/nologin"]
                .map(String::from)
                .to_vec()
                .into(),
        }
    }

    /// True when a user may choose `shell` for themself.
    pub fn allows_shell(&self, shell: &str) -> bool {
        self.login_shells.iter().any(|s| s == shell)
    }
}

/// The account service the LDAP layer holds: the read model (for DNs and
/// the admin set), the authenticator (for old passwords, and its hasher
/// for new ones) and the store they share. Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    directory: Directory,
    auth: Authenticator,
    /// `<data_dir>/initial-admin-password`, removed once the admin's
    /// password changes (none in tests that have no data directory).
    initial_password_file: Option<std::path::PathBuf>,
    settings: AccountSettings,
    /// The open LDAP connections of this process.
    connections: connections::Connections,
    /// How long portal sessions live (`[portal]`).
    sessions: sessions::SessionSettings,
    /// `[portal] can_change_*`: what users may change of their details
    /// unless attributes say otherwise.
    profile_defaults: profile::CanChange,
    /// `bind.totp_issuer`, named in the otpauth URI of a new device.
    totp_issuer: String,
    /// `[portal] token_*_lifetime_secs`.
    token_lifetimes: credentials::Lifetimes,
    /// `[portal] end_sessions_on_password_change`.
    end_sessions_on_password_change: bool,
}

impl Accounts {
    pub fn new(directory: Directory, auth: Authenticator) -> Accounts {
        Accounts {
            connections: connections::Connections::for_store(directory.store()),
            directory,
            auth,
            initial_password_file: None,
            settings: AccountSettings::defaults(),
            sessions: sessions::SessionSettings::default(),
            profile_defaults: profile::CanChange::default(),
            totp_issuer: "Portcullis".into(),
            token_lifetimes: credentials::Lifetimes::default(),
            end_sessions_on_password_change: true,
        }
    }

    /// The portal's rules from `[portal]` and `[bind]`: the TOTP issuer,
    /// token lifetimes, whether a password change ends the other sessions.
    pub fn with_portal_rules(
        mut self,
        totp_issuer: &str,
        token_lifetimes: credentials::Lifetimes,
        end_sessions_on_password_change: bool,
    ) -> Accounts {
        self.totp_issuer = totp_issuer.to_string();
        self.token_lifetimes = token_lifetimes;
        self.end_sessions_on_password_change = end_sessions_on_password_change;
        self
    }

    /// What the operator's functions (`mfa`, `credentials`) need, from
    /// this service's parts, so that self-service calls the same rules.
    fn admin_context(&self) -> AdminContext {
        let (admin_group, search_group) = self.group_names();
        AdminContext {
            store: self.store().clone(),
            hasher: self.auth.hasher().clone(),
            base_dn: self.base().to_string(),
            admin_group: admin_group.to_string(),
            search_group: search_group.to_string(),
            server_key: self.auth.server_key().clone(),
            totp_issuer: self.totp_issuer.clone(),
            policy_defaults: PolicyDefaults::default(),
            initial_password_file: self.initial_password_file.clone(),
            settings: self.settings.clone(),
            connections: self.connections.clone(),
            token_lifetimes: self.token_lifetimes,
            sessions: self.sessions,
        }
    }

    /// The registry the LDAP listener registers its connections in.
    pub fn connections(&self) -> &connections::Connections {
        &self.connections
    }

    /// The configured password policy and shells.
    pub fn with_settings(mut self, settings: AccountSettings) -> Accounts {
        self.settings = settings;
        self
    }

    pub fn settings(&self) -> &AccountSettings {
        &self.settings
    }

    /// What users may change of their details by default
    /// (`[portal] can_change_*`).
    pub fn with_profile_defaults(mut self, defaults: profile::CanChange) -> Accounts {
        self.profile_defaults = defaults;
        self
    }

    /// How long portal sessions live (`[portal] session_idle_secs`,
    /// `session_max_secs`).
    pub fn with_session_settings(mut self, settings: sessions::SessionSettings) -> Accounts {
        self.sessions = settings;
        self
    }

    /// Where the first start wrote the admin's password (see
    /// [`bootstrap::forget_initial_password`]).
    pub fn with_initial_password_file(mut self, file: std::path::PathBuf) -> Accounts {
        self.initial_password_file = Some(file);
        self
    }

    /// After a password change of `username`.
    fn password_changed(&self, username: &str) {
        bootstrap::forget_initial_password(self.initial_password_file.as_deref(), username);
    }

    fn store(&self) -> &Store {
        self.directory.store()
    }

    fn base(&self) -> &Dn {
        self.directory.base()
    }

    /// `ldap.admin_group` and `ldap.search_group`.
    fn group_names(&self) -> (&str, &str) {
        self.directory.group_names()
    }

    /// True when `who` is an admin: an enabled user in the admin group,
    /// directly or through nested groups. Blocking.
    pub fn is_admin(&self, who: &Identity) -> Result<bool, StoreError> {
        self.directory.is_admin(who)
    }

    /// The user behind an actor, if it is a bound user.
    fn bound_user(actor: &Actor) -> Option<(UserId, &str)> {
        match actor {
            Actor::Bound(Identity::User { id, username }) => Some((*id, username.as_str())),
            _ => None,
        }
    }
}

/// What the operator's account operations need (the admin requests of the
/// CLI and the admin socket). The server builds one and shares it (in an
/// `Arc`) with the admin socket; the CLI builds one when it opens the store
/// itself.
#[derive(Clone)]
pub struct AdminContext {
    pub store: Store,
    pub hasher: Hasher,
    /// Suffix used to show DNs.
    pub base_dn: String,
    /// `ldap.admin_group`: cannot be deleted, and is never left without an
    /// enabled user.
    pub admin_group: String,
    /// `ldap.search_group`: cannot be deleted.
    pub search_group: String,
    /// Keys the hashes of app passwords and static tokens; see
    /// [`AdminContext::with_server_key`].
    pub server_key: ServerKey,
    /// `bind.totp_issuer`.
    pub totp_issuer: String,
    /// `bind.mfa` and `bind.app_passwords`, for `policy show`.
    pub policy_defaults: PolicyDefaults,
    /// `<data_dir>/initial-admin-password`, removed once the admin's
    /// password changes.
    pub initial_password_file: Option<std::path::PathBuf>,
    /// `[password]` and `[accounts]`.
    pub settings: AccountSettings,
    /// The server's open LDAP connections (`session list|end`); when the
    /// CLI opens the store itself, none of its own, but those of the
    /// instances sharing the store (PostgreSQL).
    pub connections: connections::Connections,
    /// `[portal] token_*_lifetime_secs`: the lifetimes of what a user
    /// makes for themself (the operator is not bound by them).
    pub token_lifetimes: credentials::Lifetimes,
    /// `[portal] session_*_secs`: which stored portal sessions are alive.
    pub sessions: sessions::SessionSettings,
}

impl AdminContext {
    pub fn new(store: Store, hasher: Hasher, config: &Config) -> AdminContext {
        AdminContext {
            connections: connections::Connections::for_store(&store),
            store,
            hasher,
            base_dn: config.base_dn.to_string(),
            admin_group: config.ldap.admin_group.clone(),
            search_group: config.ldap.search_group.clone(),
            // Throw-away until `with_server_key`: what it hashes never
            // matches at bind (fails closed).
            server_key: ServerKey::generate(),
            totp_issuer: config.bind.totp_issuer.clone(),
            policy_defaults: config.auth_settings().policy,
            initial_password_file: Some(config.initial_password_path()),
            settings: AccountSettings::from_config(config),
            token_lifetimes: config.portal.token_lifetimes,
            sessions: sessions::SessionSettings {
                idle: config.portal.session_idle,
                absolute: config.portal.session_max,
            },
        }
    }

    /// Uses the server's key (`<data_dir>/server.key`): required for app
    /// passwords and static tokens that bind.
    pub fn with_server_key(mut self, key: ServerKey) -> AdminContext {
        self.server_key = key;
        self
    }
}
