//! What a user manages of their own account at the portal: second factors
//! (list, TOTP enrolment, static tokens, delete), app passwords and API
//! tokens, and sessions (portal and LDAP). Each method takes the acting
//! party and calls the rule written once in `mfa`, `credentials`,
//! `sessions` or `connections` (a bound user may manage only their own;
//! the operator anyone's), off the reactor. The rules that only
//! self-service has are here: deleting a device takes the account's
//! password, a new set of static tokens replaces the old one, a TOTP
//! enrolment keeps one pending device at a time; admins may also list and
//! end anyone's sessions.

use std::net::IpAddr;

use uuid::Uuid;

use super::records::find_user;
use super::view::{
    AdminAnswer, AppPasswordAdded, AppPasswordView, DeviceView, SessionView, StaticAdded, TotpAdded,
};
use super::{connections, credentials, mfa, sessions, AccountError, Accounts, Actor, AdminContext};
use crate::auth::{totp, Secret};
use crate::blocking::off_reactor;
use crate::store::{now, CredentialKind, DeviceId, DeviceKind};

/// How many tokens a new set of static tokens has.
pub const STATIC_TOKENS: u8 = 6;

/// Which kind of session [`Accounts::end_own_session`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedSession {
    Portal,
    Ldap,
}

/// The user themself, the operator, or an admin (who may see and end
/// anyone's sessions). Blocking.
fn self_or_admin(ctx: &AdminContext, actor: &Actor, username: &str) -> Result<(), AccountError> {
    match actor.may_manage(username) {
        Ok(()) => Ok(()),
        Err(AccountError::Denied(_)) => actor.require_admin(ctx),
        Err(e) => Err(e),
    }
}

fn unexpected(answer: AdminAnswer) -> AccountError {
    AccountError::Internal(format!("unexpected answer {answer:?}"))
}

impl Accounts {
    /// Runs an operator function with this service's parts, off the
    /// reactor.
    async fn with_ctx<T: Send + 'static>(
        &self,
        f: impl FnOnce(&AdminContext) -> Result<T, AccountError> + Send + 'static,
    ) -> Result<T, AccountError> {
        let ctx = self.admin_context();
        off_reactor(move || f(&ctx)).await
    }

    /// The confirmed second factors of `username`, oldest first.
    pub async fn own_devices(
        &self,
        actor: &Actor,
        username: &str,
    ) -> Result<Vec<DeviceView>, AccountError> {
        let (actor, name) = (actor.clone(), username.to_string());
        self.with_ctx(move |ctx| match mfa::list(ctx, &actor, &name)? {
            AdminAnswer::Devices(list) => Ok(list.into_iter().filter(|d| d.confirmed).collect()),
            other => Err(unexpected(other)),
        })
        .await
    }

    /// Starts a TOTP enrolment: a pending device (counting for nothing
    /// until confirmed) and its secret. Earlier pending devices of the
    /// user are dropped: one enrolment at a time.
    pub async fn begin_totp(
        &self,
        actor: &Actor,
        username: &str,
    ) -> Result<TotpAdded, AccountError> {
        let (actor, name) = (actor.clone(), username.to_string());
        self.with_ctx(move |ctx| {
            actor.may_manage(&name)?;
            let user = find_user(ctx, &name)?;
            for d in ctx.store.devices(user.id)? {
                if !d.confirmed {
                    ctx.store.remove_device(user.id, d.id)?;
                }
            }
            match mfa::totp_begin(ctx, &actor, &name, 6, None)? {
                AdminAnswer::TotpAdded(added) => Ok(added),
                other => Err(unexpected(other)),
            }
        })
        .await
    }

    /// A pending TOTP device and its secret again (the enrolment page
    /// after a wrong code shows the same secret); `NotFound` once it is
    /// confirmed or gone.
    pub async fn pending_totp(
        &self,
        actor: &Actor,
        username: &str,
        device: &str,
    ) -> Result<TotpAdded, AccountError> {
        let (actor, name, device) = (actor.clone(), username.to_string(), device.to_string());
        self.with_ctx(move |ctx| {
            actor.may_manage(&name)?;
            let user = find_user(ctx, &name)?;
            let id = DeviceId(mfa::parse_id("device", &device)?);
            let missing = || AccountError::NotFound(format!("no pending device {device}"));
            let found = ctx
                .store
                .devices(user.id)?
                .into_iter()
                .find(|d| d.id == id && !d.confirmed)
                .ok_or_else(missing)?;
            let DeviceKind::Totp { digits } = found.kind else {
                return Err(missing());
            };
            let secret = ctx.store.totp_secret(user.id, id)?.ok_or_else(missing)?;
            Ok(TotpAdded {
                id: found.id.to_string(),
                secret: super::view::Secret::new(totp::secret_base32(&secret.0)),
                uri: super::view::Secret::new(totp::otpauth_uri(
                    &ctx.totp_issuer,
                    &user.username,
                    &secret.0,
                    digits,
                )),
                digits,
                period: totp::PERIOD,
                algorithm: "SHA1".into(),
            })
        })
        .await
    }

    /// Confirms a pending TOTP device with a current code (and names it,
    /// when `name` is given); from now on it counts for sign-in and LDAP.
    /// A wrong code changes nothing: the same device waits.
    pub async fn confirm_totp(
        &self,
        actor: &Actor,
        username: &str,
        device: &str,
        code: &str,
        name: Option<String>,
    ) -> Result<DeviceView, AccountError> {
        let (actor, username, device, code) = (
            actor.clone(),
            username.to_string(),
            device.to_string(),
            code.to_string(),
        );
        let name = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        let view = self
            .with_ctx(move |ctx| {
                let confirmed = mfa::totp_confirm(
                    ctx,
                    &actor,
                    &username,
                    &device,
                    &code,
                    std::time::SystemTime::now(),
                )?;
                let AdminAnswer::Devices(mut list) = confirmed else {
                    return Err(unexpected(confirmed));
                };
                let mut view = list
                    .pop()
                    .ok_or_else(|| unexpected(AdminAnswer::Devices(vec![])))?;
                if let Some(name) = name {
                    let user = find_user(ctx, &username)?;
                    let id = DeviceId(mfa::parse_id("device", &device)?);
                    if let Err(e) = ctx.store.rename_device(user.id, id, &name) {
                        // The device is confirmed; a bad name keeps the default.
                        tracing::info!(error = %e, "a new device keeps its default name");
                    } else {
                        view.label = name;
                    }
                }
                tracing::info!(target: "portcullis::audit", user = %username, device = %view.id,
                    kind = "totp", "MFA device added");
                Ok(view)
            })
            .await?;
        Ok(view)
    }

    /// A new set of [`STATIC_TOKENS`] static tokens, shown in this answer
    /// only; it replaces the user's earlier sets.
    pub async fn replace_static_tokens(
        &self,
        actor: &Actor,
        username: &str,
    ) -> Result<StaticAdded, AccountError> {
        let (actor, name) = (actor.clone(), username.to_string());
        self.with_ctx(move |ctx| {
            actor.may_manage(&name)?;
            let user = find_user(ctx, &name)?;
            let old: Vec<DeviceId> = ctx
                .store
                .devices(user.id)?
                .into_iter()
                .filter(|d| d.kind == DeviceKind::Static)
                .map(|d| d.id)
                .collect();
            let added = match mfa::static_add(ctx, &actor, &name, STATIC_TOKENS, None)? {
                AdminAnswer::StaticAdded(added) => added,
                other => return Err(unexpected(other)),
            };
            for id in old {
                ctx.store.remove_device(user.id, id)?;
            }
            tracing::info!(target: "portcullis::audit", user = %user.username, device = %added.id,
                kind = "static", "MFA device added");
            Ok(added)
        })
        .await
    }

    /// Deletes a second factor of `username`. A signed-in user confirms
    /// with the account's password (checked like a sign-in); the operator
    /// needs none.
    pub async fn delete_own_device(
        &self,
        actor: &Actor,
        username: &str,
        device: &str,
        password: &Secret,
        peer: IpAddr,
    ) -> Result<(), AccountError> {
        actor.may_manage(username)?;
        if matches!(actor, Actor::Bound(_)) {
            self.verify_own_password(actor, password, peer).await?;
        }
        let (actor, name, device) = (actor.clone(), username.to_string(), device.to_string());
        self.with_ctx(move |ctx| {
            mfa::remove(ctx, &actor, &name, &device)?;
            tracing::info!(target: "portcullis::audit", user = %name, device = %device,
                "MFA device removed");
            Ok(())
        })
        .await
    }

    /// Gives one of the user's confirmed devices a new name.
    pub async fn rename_own_device(
        &self,
        actor: &Actor,
        username: &str,
        device: &str,
        name: &str,
    ) -> Result<DeviceView, AccountError> {
        let (actor, username, device) = (actor.clone(), username.to_string(), device.to_string());
        let name = name.trim().to_string();
        self.with_ctx(move |ctx| {
            actor.may_manage(&username)?;
            let user = find_user(ctx, &username)?;
            let id = DeviceId(mfa::parse_id("device", &device)?);
            let missing = || AccountError::NotFound(format!("device {device} not found"));
            let found = ctx
                .store
                .devices(user.id)?
                .into_iter()
                .find(|d| d.id == id && d.confirmed)
                .ok_or_else(missing)?;
            match ctx.store.rename_device(user.id, id, &name) {
                Ok(true) => {}
                Ok(false) => return Err(missing()),
                Err(crate::store::StoreError::Invalid(reason)) => {
                    return Err(AccountError::Invalid(reason))
                }
                Err(e) => return Err(e.into()),
            }
            tracing::info!(target: "portcullis::audit", user = %user.username, device = %device,
                "MFA device renamed");
            let mut renamed = found;
            renamed.label = name;
            mfa::device_view(ctx, user.id, &renamed)
        })
        .await
    }

    /// The user's app passwords or API tokens (never the secrets).
    pub async fn own_credentials(
        &self,
        actor: &Actor,
        kind: CredentialKind,
        username: &str,
    ) -> Result<Vec<AppPasswordView>, AccountError> {
        let (actor, name) = (actor.clone(), username.to_string());
        self.with_ctx(
            move |ctx| match credentials::list(ctx, &actor, kind, &name)? {
                AdminAnswer::AppPasswords(list) => Ok(list),
                other => Err(unexpected(other)),
            },
        )
        .await
    }

    /// A new app password or API token, its secret shown in this answer
    /// only. `expires_in_secs`: `None` for the default lifetime.
    pub async fn create_credential(
        &self,
        actor: &Actor,
        kind: CredentialKind,
        username: &str,
        label: &str,
        expires_in_secs: Option<u64>,
    ) -> Result<AppPasswordAdded, AccountError> {
        let label = label.trim().to_string();
        if label.is_empty() {
            return Err(AccountError::Invalid("a label is required".into()));
        }
        let (actor, name) = (actor.clone(), username.to_string());
        self.with_ctx(move |ctx| {
            match credentials::add(ctx, &actor, kind, &name, &label, expires_in_secs)? {
                AdminAnswer::AppPasswordAdded(added) => Ok(added),
                other => Err(unexpected(other)),
            }
        })
        .await
    }

    /// Revokes an app password or API token: refused at once.
    pub async fn revoke_credential(
        &self,
        actor: &Actor,
        kind: CredentialKind,
        username: &str,
        id: &str,
    ) -> Result<(), AccountError> {
        let (actor, name, id) = (actor.clone(), username.to_string(), id.to_string());
        self.with_ctx(move |ctx| credentials::revoke(ctx, &actor, kind, &name, &id).map(|_| ()))
            .await
    }

    /// The user's signed-in portal sessions, then the LDAP connections
    /// bound as the user: for the user, an admin or the operator.
    pub async fn own_sessions(
        &self,
        actor: &Actor,
        username: &str,
    ) -> Result<Vec<SessionView>, AccountError> {
        let (actor, name) = (actor.clone(), username.to_string());
        self.with_ctx(move |ctx| {
            self_or_admin(ctx, &actor, &name)?;
            let user = find_user(ctx, &name)?;
            let mut list =
                sessions::portal_session_views(&ctx.store, ctx.sessions, Some(&user), now())?;
            list.extend(connections::ldap_rows(&ctx.connections, Some(user.id)));
            Ok(list)
        })
        .await
    }

    /// Ends one of the user's sessions: a portal session (its browser is
    /// signed out at its next request) or an LDAP connection bound as the
    /// user (closed at once). `NotFound` for anything else, also another
    /// user's session. For the user, an admin or the operator.
    pub async fn end_own_session(
        &self,
        actor: &Actor,
        username: &str,
        id: &str,
    ) -> Result<EndedSession, AccountError> {
        let (actor, name, id) = (actor.clone(), username.to_string(), id.to_string());
        self.with_ctx(move |ctx| {
            self_or_admin(ctx, &actor, &name)?;
            let user = find_user(ctx, &name)?;
            let missing = || AccountError::NotFound(format!("no session {id}"));
            let uuid = Uuid::parse_str(id.trim()).map_err(|_| missing())?;
            let kind = if sessions::end_portal_session(&ctx.store, uuid, Some(user.id))? {
                EndedSession::Portal
            } else if ctx.connections.end(uuid, Some(user.id))
                || ctx.connections.end_elsewhere(uuid, Some(user.id))?
            {
                EndedSession::Ldap
            } else {
                return Err(missing());
            };
            let kind_name = match kind {
                EndedSession::Portal => "portal",
                EndedSession::Ldap => "ldap",
            };
            tracing::info!(target: "portcullis::audit", user = %user.username, session = %uuid,
                kind = kind_name, "session ended");
            Ok(kind)
        })
        .await
    }
}
