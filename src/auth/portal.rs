//! The portal's sign-in: the same decision as an LDAP bind, in two steps.
//! The password step takes the account's password alone (never an app
//! password or an API token: those are for LDAP and the API); the code
//! step, only after a right password and only for a user with a
//! confirmed device, takes a TOTP code or an unused static token and
//! consumes it through the same store calls as a bind, so a code used at
//! the portal is refused over LDAP and the other way round. Both steps
//! count on the same throttle as LDAP binds (account, address, codes).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use super::kept::confirmed_devices;
use super::{
    static_tokens, Authenticator, BindOutcome, Busy, CodeCheck, Key, Method, Refusal, Secret,
    Verdict, MAX_BIND_PASSWORD_LEN,
};
use crate::blocking::off_reactor;
use crate::store::{StoreError, User, UserId};

/// What one step of a portal sign-in decided.
#[derive(Debug, Clone)]
pub enum SignIn {
    /// Signed in.
    Done { user: Box<User>, method: Method },
    /// The password was right; a code must follow ([`Authenticator::sign_in_code`]).
    NeedsCode { user: Box<User> },
    /// Refused; the reason is for the log, the browser sees one text.
    Refused { reason: Refusal },
}

impl Authenticator {
    /// The password step of a portal sign-in of `username` from `peer`.
    pub async fn sign_in_password(
        &self,
        username: &str,
        password: &Secret,
        peer: IpAddr,
        now: SystemTime,
    ) -> SignIn {
        if let Some(refused) = self
            .portal_throttled(&[Key::account(username)], peer, now)
            .await
        {
            return refused;
        }
        let decided = match self.password_step(username, &password.0, now).await {
            Ok(decided) => decided,
            Err(e) => {
                tracing::error!(error = %e, "store failure during a portal sign-in");
                return SignIn::Refused {
                    reason: Refusal::Internal,
                };
            }
        };
        self.count_sign_in(&decided, Method::Password, username, peer, now)
            .await;
        decided
    }

    /// The code step of a portal sign-in: `user` gave the right password
    /// a moment ago (the pending session says so).
    pub async fn sign_in_code(
        &self,
        user: UserId,
        username: &str,
        code: &Secret,
        peer: IpAddr,
        now: SystemTime,
    ) -> SignIn {
        let keys = [Key::account(username), Key::code(username)];
        if let Some(refused) = self.portal_throttled(&keys, peer, now).await {
            return refused;
        }
        let method = if static_tokens::looks_like_token(code.0.trim()) {
            Method::PasswordStatic
        } else {
            Method::PasswordTotp
        };
        let decided = match self.code_step(user, code.0.trim(), now).await {
            Ok(decided) => decided,
            Err(e) => {
                tracing::error!(error = %e, "store failure during a portal sign-in");
                return SignIn::Refused {
                    reason: Refusal::Internal,
                };
            }
        };
        self.count_sign_in(&decided, method, username, peer, now)
            .await;
        decided
    }

    /// Refused before any work while one of `keys` or the address is
    /// throttled.
    async fn portal_throttled(
        &self,
        keys: &[Key],
        peer: IpAddr,
        now: SystemTime,
    ) -> Option<SignIn> {
        let address = Key::Address(peer);
        for key in keys.iter().chain([&address]) {
            if let Verdict::Throttled { .. } = self.throttle_check(key, now).await {
                crate::metrics::throttled();
                return Some(SignIn::Refused {
                    reason: Refusal::Throttled,
                });
            }
        }
        None
    }

    /// Counts a decided step on the throttle, as a bind with `method`
    /// would be: a step that asks for a code counts neither way.
    async fn count_sign_in(
        &self,
        decided: &SignIn,
        method: Method,
        username: &str,
        peer: IpAddr,
        now: SystemTime,
    ) {
        let outcome = match decided {
            SignIn::NeedsCode { .. } => return,
            SignIn::Done { user, method } => BindOutcome::Success {
                user: Arc::new(User::clone(user)),
                method: *method,
                app_password: None,
                cached: false,
            },
            SignIn::Refused { reason } => BindOutcome::Refused {
                reason: *reason,
                method,
            },
        };
        // The sign-in's checks were not kept: a success resets as ever.
        self.count(&outcome, username, peer, now, super::throttle::Found::Count)
            .await;
    }

    async fn password_step(
        &self,
        username: &str,
        password: &str,
        now: SystemTime,
    ) -> Result<SignIn, StoreError> {
        let refuse = |outcome: BindOutcome| match outcome {
            BindOutcome::Refused { reason, .. } => SignIn::Refused { reason },
            BindOutcome::Success { .. } => SignIn::Refused {
                reason: Refusal::Internal,
            },
        };
        if password.len() > MAX_BIND_PASSWORD_LEN {
            return Ok(refuse(
                self.refuse_after_hashing(Refusal::WrongPassword, Method::Password)
                    .await,
            ));
        }
        let user = match username.is_empty() {
            true => None,
            false => {
                self.current().await;
                self.store.user_by_name(username)?
            }
        };
        let Some(user) = user else {
            return Ok(refuse(
                self.refuse_after_hashing(Refusal::UnknownUser, Method::Password)
                    .await,
            ));
        };
        let devices = confirmed_devices(&self.store, user.id)?;
        if !devices.is_empty() {
            // As for a bind that needs a code: locked code binds refuse
            // before any hashing.
            if let Verdict::Throttled { .. } = self.throttle_check(&Key::code(username), now).await
            {
                crate::metrics::throttled();
                crate::metrics::code_throttled();
                return Ok(SignIn::Refused {
                    reason: Refusal::Throttled,
                });
            }
        }
        let phc = self.store.password_hash(user.id)?;
        let stored = phc.clone();
        let verified = match self.hasher.try_verify(password.to_string(), phc).await {
            Ok(verified) => verified,
            Err(Busy) => {
                return Ok(SignIn::Refused {
                    reason: Refusal::Busy,
                })
            }
        };
        let reason = match (&stored, verified, user.disabled) {
            (None, _, _) => Some(Refusal::NoPassword),
            (_, false, _) => Some(Refusal::WrongPassword),
            (_, true, true) => Some(Refusal::Disabled),
            _ => None,
        };
        if let Some(reason) = reason {
            return Ok(SignIn::Refused { reason });
        }
        if let Some(stored) = stored.filter(|s| super::legacy::needs_rehash(s)) {
            let _ = self.rehash(user.id, &stored, password).await;
        }
        Ok(if devices.is_empty() {
            SignIn::Done {
                user: Box::new(user),
                method: Method::Password,
            }
        } else {
            SignIn::NeedsCode {
                user: Box::new(user),
            }
        })
    }

    async fn code_step(
        &self,
        user: UserId,
        code: &str,
        now: SystemTime,
    ) -> Result<SignIn, StoreError> {
        let refused = |reason| Ok(SignIn::Refused { reason });
        self.current().await;
        let Some(record) = self.store.user(user)? else {
            return refused(Refusal::UnknownUser);
        };
        if record.disabled {
            return refused(Refusal::Disabled);
        }
        if code.is_empty() {
            return refused(Refusal::CodeMissing);
        }
        let devices = confirmed_devices(&self.store, user)?;
        let (auth, code) = (self.clone(), code.to_string());
        let checked = off_reactor(move || auth.check_code(user, &devices, &code, now)).await?;
        let method = match checked {
            CodeCheck::Totp => Method::PasswordTotp,
            CodeCheck::Static => Method::PasswordStatic,
            CodeCheck::Replayed => return refused(Refusal::CodeReplayed),
            CodeCheck::Wrong => return refused(Refusal::WrongCode),
        };
        Ok(SignIn::Done {
            user: Box::new(record),
            method,
        })
    }
}
