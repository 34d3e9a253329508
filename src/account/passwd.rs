//! A password change, whoever asks: Password Modify (RFC 3062) over LDAP,
//! and the portal's change-password form ([`Accounts::change_own_password`]:
//! the current password alone, since the portal's sign-in took the second
//! factor). The rules:
//! - an anonymous client may change nothing;
//! - a user changes their own password with the old one, which must be
//!   the account's password (an app password manages no account);
//! - an admin sets anyone's password without the old one;
//! - the new password passes the configured [`password::PasswordPolicy`]; none given, the
//!   server generates one and answers with it;
//! - hashing runs on the hashing pool and the write on the blocking pool,
//!   never on the caller's reactor; `Ok` means the new hash is durable.

use std::net::IpAddr;
use std::time::SystemTime;

use super::{password, AccountError, Accounts, Actor};
use crate::auth::portal::SignIn;
use crate::auth::{BindOutcome, Method, Refusal, Secret};
use crate::blocking::off_reactor;
use crate::directory::Identity;
use crate::store::{Store, UserId};

/// One password change.
pub struct PasswordChange {
    /// The user whose password changes: their username.
    pub target: String,
    /// The current password, required when users change their own.
    pub old: Option<Secret>,
    /// The new password; `None` asks the server to generate one.
    pub new: Option<Secret>,
    /// Where the request came from (for throttling the old-password check).
    pub peer: IpAddr,
}

impl Accounts {
    /// Changes a password as `actor`; answers with the generated password
    /// when the change named none.
    pub async fn change_password(
        &self,
        actor: &Actor,
        change: PasswordChange,
    ) -> Result<Option<String>, AccountError> {
        let Some((self_id, self_name)) = Self::bound_user(actor) else {
            return Err(AccountError::Denied(
                "bind before changing a password".into(),
            ));
        };
        let is_self = change.target.eq_ignore_ascii_case(self_name);
        let (accounts, identity, target) = (self.clone(), actor_identity(actor), change.target);
        let (is_admin, user) = off_reactor(move || {
            let is_admin = accounts.is_admin(&identity)?;
            let user = accounts.store().user_by_name(&target)?;
            Ok::<_, AccountError>((is_admin, user))
        })
        .await?;
        if !is_self && !is_admin {
            return Err(AccountError::Denied(
                "only admins may change another user's password".into(),
            ));
        }
        let user = user.ok_or_else(|| AccountError::NotFound("no such user".into()))?;
        if is_self && !is_admin {
            let old = change
                .old
                .filter(|o| !o.0.is_empty())
                .ok_or_else(|| AccountError::Invalid("the old password is required".into()))?;
            self.check_old_password(self_id, self_name, &old, change.peer)
                .await?;
        }
        let (new, generated) = match change.new.filter(|p| !p.0.is_empty()) {
            Some(p) => (p.0, None),
            None => {
                let p = password::generate();
                (p.clone(), Some(p))
            }
        };
        self.store_new_password(&user, new, self_name).await?;
        Ok(generated)
    }

    /// A user's change of their own password at the portal, whose sign-in
    /// already took the second factor: `current` is the account's password
    /// alone, checked with the same throttling as a bind. With
    /// `[portal] end_sessions_on_password_change` the user's other portal
    /// sessions end (all but `keep`, the browser that asks); answers how
    /// many ended. Nothing changes when any check fails.
    pub async fn change_own_password(
        &self,
        actor: &Actor,
        current: &Secret,
        new: Secret,
        peer: IpAddr,
        keep: Option<&super::sessions::SessionToken>,
    ) -> Result<usize, AccountError> {
        let Some((_, username)) = Self::bound_user(actor) else {
            return Err(AccountError::Denied("sign in to change a password".into()));
        };
        let user = self.verify_own_password(actor, current, peer).await?;
        if new.0.is_empty() {
            return Err(AccountError::Invalid("the new password is required".into()));
        }
        self.store_new_password(&user, new.0, username).await?;
        if !self.end_sessions_on_password_change {
            return Ok(0);
        }
        let ended = self.end_other_sessions(actor, username, keep).await?;
        if ended > 0 {
            tracing::info!(target: "portcullis::audit", user = %username, ended, kind = "portal",
                reason = "password changed", "session ended");
        }
        Ok(ended)
    }

    /// The account's password alone (never an app password, an API token
    /// or a code), for a signed-in user who confirms a change with it;
    /// counted on the same throttle as binds and sign-ins. Answers with
    /// the user.
    pub async fn verify_own_password(
        &self,
        actor: &Actor,
        password: &Secret,
        peer: IpAddr,
    ) -> Result<crate::store::User, AccountError> {
        let Some((id, username)) = Self::bound_user(actor) else {
            return Err(AccountError::Denied("sign in first".into()));
        };
        if password.0.is_empty() {
            return Err(AccountError::InvalidCredentials);
        }
        match self
            .auth
            .sign_in_password(username, password, peer, SystemTime::now())
            .await
        {
            SignIn::Done { user, .. } | SignIn::NeedsCode { user } if user.id == id => Ok(*user),
            SignIn::Refused {
                reason: Refusal::Busy,
            } => Err(AccountError::Busy),
            _ => Err(AccountError::InvalidCredentials),
        }
    }

    /// The shared end of every password change: the policy, argon2id on
    /// the hashing pool, the durable write (which moves the user's
    /// credential generation, so the bind cache forgets the old password),
    /// the audit event.
    async fn store_new_password(
        &self,
        user: &crate::store::User,
        new: String,
        by: &str,
    ) -> Result<(), AccountError> {
        self.settings.password.check(
            &new,
            &[
                user.username.as_str(),
                user.full_name.as_deref().unwrap_or(""),
                user.email.as_deref().unwrap_or(""),
            ],
        )?;
        let phc = self.auth.hasher().hash(new).await.map_err(|e| {
            tracing::error!(error = %e, "hashing a new password");
            AccountError::Internal("password change failed".into())
        })?;
        let store = self.store().clone();
        let id = user.id;
        off_reactor(move || set_password_hash(&store, id, &phc)).await?;
        tracing::info!(target: "portcullis::audit", user = %user.username, by = %by, "password changed");
        self.password_changed(&user.username);
        Ok(())
    }

    /// The old password of a self-service change: the account's own
    /// password (with its code, when the account needs one), through the
    /// same checks and throttling as a bind.
    async fn check_old_password(
        &self,
        id: UserId,
        username: &str,
        old: &Secret,
        peer: IpAddr,
    ) -> Result<(), AccountError> {
        match self
            .auth
            .authenticate(username, old, peer, SystemTime::now())
            .await
        {
            // An app password cannot change the account's password: it is
            // for one application, not for managing the account.
            BindOutcome::Success { user, method, .. }
                if user.id == id && method != Method::AppPassword =>
            {
                Ok(())
            }
            BindOutcome::Refused {
                reason: Refusal::Busy,
                ..
            } => Err(AccountError::Busy),
            _ => Err(AccountError::InvalidCredentials),
        }
    }
}

/// Stores a new argon2id hash, durably. Blocking: the one write of every
/// password change (Password Modify here, `user passwd` in `admin`).
pub fn set_password_hash(store: &Store, user: UserId, phc: &str) -> Result<(), AccountError> {
    Ok(store.set_password_hash(user, phc)?)
}

fn actor_identity(actor: &Actor) -> Identity {
    match actor {
        Actor::Bound(identity) => identity.clone(),
        Actor::Operator | Actor::System => Identity::Anonymous,
    }
}
