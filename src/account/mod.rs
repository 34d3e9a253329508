//! The account layer: every rule about changing an account, written once.
//!
//! LDAP writes and Password Modify (`ldap`), the admin requests of the CLI
//! and the admin socket (`admin`), bootstrap and import call this module
//! rather than the store for anything that changes an account; the portal
//! will too. It decides who may change what (the acting party is always
//! named: see [`Actor`]), the password policy, the admin set and the
//! last-enabled-admin guard.
//!
//! Layout:
//! - this file: [`Accounts`] (the service the protocol layer holds),
//!   [`Actor`], [`AccountError`].
//! - `password`: the password policy (length limits, generated passwords).
//! - `passwd`: a password change, from any front end.
//! - `admins`: who administers the directory; the guard that keeps one.
//! - `write`: LDAP add, modify, delete and modify DN mapped onto store
//!   changes, with the write access rules.
//!
//! Below this module: `directory` (the read model: DNs, schema, entries,
//! search), `auth` (bind decisions, hashing) and `store`. Above it: `ldap`,
//! `admin`, `cli`, `server`, which never change the store themselves.

pub mod admins;
pub mod passwd;
pub mod password;
pub mod write;

use crate::auth::Authenticator;
use crate::directory::{Directory, Dn, Identity};
use crate::store::{Store, StoreError, UserId};

/// Who asks for a change. Every account operation takes one, and the
/// permission check happens in this module, not in the front end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A client of the LDAP listener (or, next, the portal), as it bound.
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

/// The account service the LDAP layer holds: the read model (for DNs and
/// the admin set), the authenticator (for old passwords, and its hasher
/// for new ones) and the store they share. Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    directory: Directory,
    auth: Authenticator,
}

impl Accounts {
    pub fn new(directory: Directory, auth: Authenticator) -> Accounts {
        Accounts { directory, auth }
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
