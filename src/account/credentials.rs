//! App passwords and API tokens: labelled secrets with an optional expiry,
//! shown once, kept as keyed hashes ([`CredentialKind`]). The operator
//! manages them (`app-password …`, `token …`); the portal will let users
//! manage their own through the same functions. An API token opens the
//! portal's JSON API ([`Accounts::api_token_user`]); an app password an LDAP
//! bind (`auth`).

use super::mfa::{parse_id, MAX_EXPIRY_SECS};
use super::records::find_user;
use super::view::{rfc3339, AdminAnswer, AppPasswordAdded, AppPasswordView, Removed, Secret};
use super::{AccountError, Accounts, Actor, AdminContext};
use crate::auth::{api_token, app_password};
use crate::blocking::off_reactor;
use crate::store::{now, AppPassword, AppPasswordId, CredentialKind, User};

fn view(ap: &AppPassword, at: i64) -> AppPasswordView {
    AppPasswordView {
        id: ap.id.to_string(),
        name: ap.name.clone(),
        created: rfc3339(ap.created),
        expires: ap.expires.and_then(rfc3339),
        expired: ap.expired(at),
        last_used: ap.last_used.and_then(rfc3339),
        last_used_from: ap.last_used_from.clone(),
    }
}

/// `app-password add` and `token add`: a new secret of `kind`, shown in
/// this answer only.
pub fn add(
    ctx: &AdminContext,
    actor: &Actor,
    kind: CredentialKind,
    username: &str,
    name: &str,
    expires_in_secs: Option<u64>,
) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    let user = find_user(ctx, username)?;
    let expires = match expires_in_secs {
        None => None,
        Some(0) => return Err(AccountError::Invalid("--expires must be positive".into())),
        Some(s) if s > MAX_EXPIRY_SECS => {
            return Err(AccountError::Invalid(
                "--expires is longer than ten years".into(),
            ))
        }
        Some(s) => Some(now().saturating_add(i64::try_from(s).unwrap_or(i64::MAX))),
    };
    let (secret, hash) = match kind {
        CredentialKind::AppPassword => {
            let s = app_password::generate();
            let h = app_password::hash(&ctx.server_key, &s);
            (s, h)
        }
        CredentialKind::ApiToken => {
            let s = api_token::generate();
            let h = api_token::hash(&ctx.server_key, &s);
            (s, h)
        }
    };
    let ap = ctx
        .store
        .add_app_password(user.id, kind, name, expires, &hash)?;
    tracing::info!(target: "portcullis::audit", user = %user.username, kind = kind.noun(),
        id = %ap.id, name = %ap.name, "credential created");
    Ok(AdminAnswer::AppPasswordAdded(AppPasswordAdded {
        id: ap.id.to_string(),
        name: ap.name,
        secret: Secret::new(secret),
        expires: ap.expires.and_then(rfc3339),
    }))
}

/// `app-password list` and `token list`: the user's secrets of `kind`
/// (never the secrets themselves), after removing expired ones.
pub fn list(
    ctx: &AdminContext,
    actor: &Actor,
    kind: CredentialKind,
    username: &str,
) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    let user = find_user(ctx, username)?;
    let at = now();
    ctx.store.purge_expired_app_passwords(user.id, at)?;
    let list = ctx
        .store
        .app_passwords(user.id)?
        .iter()
        .filter(|ap| ap.kind == kind)
        .map(|ap| view(ap, at))
        .collect();
    Ok(AdminAnswer::AppPasswords(list))
}

/// `app-password revoke` and `token revoke`: refused at once.
pub fn revoke(
    ctx: &AdminContext,
    actor: &Actor,
    kind: CredentialKind,
    username: &str,
    id: &str,
) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    let user = find_user(ctx, username)?;
    let id = AppPasswordId(parse_id(kind.noun(), id)?);
    let missing = || {
        AccountError::NotFound(format!(
            "user {} has no {} {id}",
            user.username,
            kind.noun()
        ))
    };
    // Only an id of this kind: `app-password revoke` does not take a token.
    if !ctx
        .store
        .app_passwords(user.id)?
        .iter()
        .any(|ap| ap.id == id && ap.kind == kind)
    {
        return Err(missing());
    }
    if !ctx.store.revoke_app_password(user.id, id)? {
        return Err(missing());
    }
    tracing::info!(target: "portcullis::audit", user = %user.username, kind = kind.noun(),
        id = %id, "credential revoked");
    Ok(AdminAnswer::Removed(Removed::new(id.to_string())))
}

impl Accounts {
    /// The user an API token (`Authorization: Bearer`) stands for: `None`
    /// for anything that is not a live token of an enabled user (an app
    /// password, a revoked, expired or unknown token). An expired token is
    /// removed; a use is recorded (address, time) like an app password's.
    pub async fn api_token_user(
        &self,
        secret: &str,
        peer: std::net::IpAddr,
    ) -> Result<Option<User>, AccountError> {
        if !api_token::looks_like_api_token(secret) {
            return Ok(None);
        }
        let hash = api_token::hash(self.auth.server_key(), secret);
        let store = self.store().clone();
        off_reactor(move || {
            let Some((owner, token)) = store.app_password_by_hash(&hash)? else {
                return Ok(None);
            };
            if token.kind != CredentialKind::ApiToken {
                return Ok(None);
            }
            let at = now();
            if token.expired(at) {
                store.revoke_app_password(owner, token.id)?;
                return Ok(None);
            }
            let Some(user) = store.user(owner)?.filter(|u| !u.disabled) else {
                return Ok(None);
            };
            if let Err(e) = store.touch_app_password(owner, token.id, at, &peer.to_string()) {
                tracing::warn!(error = %e, "could not record API token use");
            }
            Ok::<_, AccountError>(Some(user))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::Hasher;
    use crate::auth::Authenticator;
    use crate::directory::Directory;
    use crate::store::{NewUser, Store};
    use std::net::IpAddr;

    fn setup() -> (Accounts, AdminContext) {
        let store = Store::temporary().expect("store");
        let hasher = Hasher::for_tests();
        let base = crate::directory::Dn::parse("dc=example,dc=com").expect("dn");
        let directory = Directory::new(store.clone(), base, "admins", "ldap-search");
        let auth = Authenticator::new(store.clone(), hasher.clone());
        let ctx = AdminContext::new(store.clone(), hasher, &crate::config::Config::default())
            .with_server_key(auth.server_key().clone());
        store
            .create_user(NewUser {
                username: "tess".into(),
                ..Default::default()
            })
            .expect("user");
        (Accounts::new(directory, auth), ctx)
    }

    fn secret_of(answer: AdminAnswer) -> (String, String) {
        match answer {
            AdminAnswer::AppPasswordAdded(a) => (a.id, a.secret.expose().clone()),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_api_token_opens_the_api_until_revoked_and_nothing_else_does() {
        let (accounts, ctx) = setup();
        let peer = IpAddr::from([127, 0, 0, 1]);
        let op = Actor::Operator;
        let (id, token) =
            secret_of(add(&ctx, &op, CredentialKind::ApiToken, "tess", "ci", None).expect("add"));
        let user = accounts.api_token_user(&token, peer).await.expect("lookup");
        assert_eq!(user.map(|u| u.username).as_deref(), Some("tess"));
        // Its use is recorded like an app password's.
        let list = ctx
            .store
            .app_passwords(ctx.store.user_by_name("tess").unwrap().unwrap().id);
        assert_eq!(
            list.expect("list")[0].last_used_from.as_deref(),
            Some("127.0.0.1")
        );

        // An app password, a mangled token, junk: nobody.
        let (_, ap) = secret_of(
            add(&ctx, &op, CredentialKind::AppPassword, "tess", "mail", None).expect("add"),
        );
        for other in [ap.as_str(), &token[..token.len() - 1], "Bearer x", ""] {
            assert!(
                accounts
                    .api_token_user(other, peer)
                    .await
                    .expect("lookup")
                    .is_none(),
                "{other}"
            );
        }

        // A disabled user's token opens nothing; enabled again, it does.
        let tess = ctx.store.user_by_name("tess").unwrap().unwrap();
        ctx.store
            .update_user(tess.id, &|u| {
                u.disabled = true;
                Ok(())
            })
            .expect("disable");
        assert!(accounts
            .api_token_user(&token, peer)
            .await
            .expect("lookup")
            .is_none());
        ctx.store
            .update_user(tess.id, &|u| {
                u.disabled = false;
                Ok(())
            })
            .expect("enable");
        assert!(accounts
            .api_token_user(&token, peer)
            .await
            .expect("lookup")
            .is_some());

        revoke(&ctx, &op, CredentialKind::ApiToken, "tess", &id).expect("revoke");
        assert!(accounts
            .api_token_user(&token, peer)
            .await
            .expect("lookup")
            .is_none());
        // A bound user cannot manage tokens through the operator's calls.
        let bound = Actor::Bound(crate::directory::Identity::User {
            id: tess.id,
            username: "tess".into(),
        });
        assert!(matches!(
            add(&ctx, &bound, CredentialKind::ApiToken, "tess", "x", None),
            Err(AccountError::Denied(_))
        ));
    }
}
