//! Bind decisions: credential parsing, password hashes and, with the MFA
//! issue, second factors and throttling. Clock and randomness are
//! parameters, so every rule can be tested without sleeping.
//!
//! Every bind of a named user goes through [`Authenticator::authenticate`];
//! the LDAP layer, the portal and the CLI never verify a password themselves.

pub mod legacy;
pub mod password;

use std::fmt;

use crate::store::{Store, Timestamp, User};
use password::Hasher;

/// How a successful bind proved itself (logged in the audit event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Password,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Password => "password",
        }
    }
}

/// Why a bind was refused. Never sent to the client (every refusal is the
/// same invalidCredentials there); logged for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnknownUser,
    NoPassword,
    WrongPassword,
    Disabled,
    /// The store failed while deciding: never fail open.
    Internal,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownUser => "unknown user",
            Refusal::NoPassword => "no password set",
            Refusal::WrongPassword => "wrong password",
            Refusal::Disabled => "account disabled",
            Refusal::Internal => "internal error",
        }
    }
}

/// The result of one bind decision.
#[derive(Debug, Clone)]
pub enum BindOutcome {
    Success { user: Box<User>, method: Method },
    Refused(Refusal),
}

/// The bind password. Its `Debug` never shows the value.
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// Decides binds against the store.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    hasher: Hasher,
}

impl Authenticator {
    pub fn new(store: Store, hasher: Hasher) -> Authenticator {
        Authenticator { store, hasher }
    }

    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    /// Decides a simple bind of `username` with `password` at time `now`.
    ///
    /// An unknown user, a user without a password and a disabled user all
    /// cost one argon2 verification, like a wrong password, so timing does
    /// not tell them apart.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &Secret,
        _now: Timestamp,
    ) -> BindOutcome {
        let user = match self.store.user_by_name(username) {
            Ok(user) => user,
            Err(e) => {
                tracing::error!(error = %e, "store failure during bind");
                return BindOutcome::Refused(Refusal::Internal);
            }
        };
        let Some(user) = user else {
            self.hasher.verify(password.0.clone(), None).await;
            return BindOutcome::Refused(Refusal::UnknownUser);
        };
        let phc = match self.store.password_hash(user.id) {
            Ok(phc) => phc,
            Err(e) => {
                tracing::error!(error = %e, "store failure during bind");
                return BindOutcome::Refused(Refusal::Internal);
            }
        };
        let has_password = phc.is_some();
        let verified = self.hasher.verify(password.0.clone(), phc).await;
        if !has_password {
            BindOutcome::Refused(Refusal::NoPassword)
        } else if !verified {
            BindOutcome::Refused(Refusal::WrongPassword)
        } else if user.disabled {
            BindOutcome::Refused(Refusal::Disabled)
        } else {
            BindOutcome::Success {
                user: Box::new(user),
                method: Method::Password,
            }
        }
    }
}
