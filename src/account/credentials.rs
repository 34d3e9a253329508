//! App passwords and API tokens: labelled secrets with an optional expiry,
//! shown once, kept as keyed hashes ([`CredentialKind`]). The operator
//! manages them (`app-password …`, `token …`); users manage their own at
//! the portal through the same functions (`account::own`). An API token
//! opens the portal's JSON API ([`Accounts::api_token_user`]); an app
//! password an LDAP bind (`auth`).
//!
//! Lifetimes: what a user makes for themself always expires, by default
//! after [`Lifetimes::default_secs`] and at the latest after the user's
//! maximum: [`Lifetimes::max_secs`], lowered by the attribute
//! `goauthentik.io/user/token-maximum-lifetime` (the user's own value, else
//! the shortest among their groups). The operator is bound by neither.

use super::mfa::{parse_id, MAX_EXPIRY_SECS};
use super::profile::TOKEN_MAX_LIFETIME;
use super::records::find_user;
use super::view::{rfc3339, AdminAnswer, AppPasswordAdded, AppPasswordView, Removed, Secret};
use super::{AccountError, Accounts, Actor, AdminContext};
use crate::auth::{api_token, app_password};
use crate::blocking::off_reactor;
use crate::store::{now, AppPassword, AppPasswordId, CredentialKind, Member, Store, User};

/// The lifetimes of what users make for themselves (`[portal]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// When the user names no expiry.
    pub default_secs: u64,
    /// The longest a user may choose.
    pub max_secs: u64,
}

impl Default for Lifetimes {
    /// 30 days by default, a year at most.
    fn default() -> Lifetimes {
        Lifetimes {
            default_secs: 30 * 86400,
            max_secs: 365 * 86400,
        }
    }
}

/// `90m`, `12h`, `30d`, `2w`, `45s` → seconds (positive, at most ten
/// years); `None` for anything else.
pub fn parse_lifetime(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok().filter(|n| *n > 0)?;
    let unit_secs = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return None,
    };
    n.checked_mul(unit_secs).filter(|s| *s <= MAX_EXPIRY_SECS)
}

/// An expiry as people give it: a duration (`30d`) or a day (`2027-01-31`,
/// which ends at that day's end, UTC), as seconds from `at`; `None` when
/// it is neither or not in the future.
pub fn parse_expiry(text: &str, at: i64) -> Option<u64> {
    if let Some(secs) = parse_lifetime(text) {
        return Some(secs);
    }
    let mut parts = text.trim().splitn(3, '-');
    let mut next = || {
        parts
            .next()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
    };
    let (year, month, day) = (next()?, next()?, next()?);
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let month = time::Month::try_from(month.parse::<u8>().ok()?).ok()?;
    let day = time::Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()?;
    let end = day.with_hms(23, 59, 59).ok()?.assume_utc().unix_timestamp();
    u64::try_from(end.checked_sub(at)?).ok().filter(|s| *s > 0)
}

/// The longest lifetime `user` may give what they make: the configured
/// maximum, lowered by the attribute (own value, else the shortest among
/// the user's groups, nested included). Blocking.
fn max_lifetime(store: &Store, lifetimes: Lifetimes, user: &User) -> Result<u64, AccountError> {
    let own = user
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(TOKEN_MAX_LIFETIME))
        .and_then(|(_, v)| parse_lifetime(v));
    let attr = match own {
        Some(secs) => Some(secs),
        None => {
            let mut shortest: Option<u64> = None;
            for group in store.transitive_groups_of(Member::User(user.id))? {
                for (k, v) in store.group_attrs(group)? {
                    if k.eq_ignore_ascii_case(TOKEN_MAX_LIFETIME) {
                        if let Some(secs) = parse_lifetime(&v) {
                            shortest = Some(shortest.map_or(secs, |s| s.min(secs)));
                        }
                    }
                }
            }
            shortest
        }
    };
    Ok(attr.map_or(lifetimes.max_secs, |a| a.min(lifetimes.max_secs)))
}

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
    actor.may_manage(username)?;
    let user = find_user(ctx, username)?;
    let expires_in_secs = if matches!(actor, Actor::Operator | Actor::System) {
        expires_in_secs
    } else {
        let max = max_lifetime(&ctx.store, ctx.token_lifetimes, &user)?;
        let secs = expires_in_secs.unwrap_or(ctx.token_lifetimes.default_secs.min(max));
        if secs > max {
            return Err(AccountError::Invalid(format!(
                "the expiry is too far away: at most {} from now",
                describe_secs(max)
            )));
        }
        Some(secs)
    };
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

/// A lifetime in words: `30 days`, `12 hours`, `90 minutes`.
fn describe_secs(secs: u64) -> String {
    match secs {
        s if s % 86400 == 0 => format!("{} days", s / 86400),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

/// `app-password list` and `token list`: the user's secrets of `kind`
/// (never the secrets themselves), after removing expired ones.
pub fn list(
    ctx: &AdminContext,
    actor: &Actor,
    kind: CredentialKind,
    username: &str,
) -> Result<AdminAnswer, AccountError> {
    actor.may_manage(username)?;
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
    actor.may_manage(username)?;
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
        // A bound user manages only their own.
        let bound = Actor::Bound(crate::directory::Identity::User {
            id: tess.id,
            username: "tess".into(),
        });
        assert!(matches!(
            add(&ctx, &bound, CredentialKind::ApiToken, "admin", "x", None),
            Err(AccountError::Denied(_))
        ));
        assert!(matches!(
            revoke(&ctx, &bound, CredentialKind::ApiToken, "admin", &id),
            Err(AccountError::Denied(_))
        ));
    }

    /// What a user makes for themself always expires: by default after
    /// the default lifetime, never later than the maximum, which the
    /// attribute lowers (the user's own value, else the shortest among
    /// groups). The operator is bound by neither.
    #[test]
    fn lifetimes_default_and_cap_with_the_attribute() {
        let (_, mut ctx) = setup();
        ctx.token_lifetimes = Lifetimes {
            default_secs: 7 * 86400,
            max_secs: 30 * 86400,
        };
        let tess = ctx.store.user_by_name("tess").unwrap().unwrap();
        let me = Actor::Bound(crate::directory::Identity::User {
            id: tess.id,
            username: "tess".into(),
        });
        let expires_in = |answer: AdminAnswer| match answer {
            AdminAnswer::AppPasswordAdded(a) => {
                let text = a.expires.expect("expires");
                let at = time::OffsetDateTime::parse(
                    &text,
                    &time::format_description::well_known::Rfc3339,
                )
                .expect("rfc3339")
                .unix_timestamp();
                at - now()
            }
            other => panic!("{other:?}"),
        };
        let kind = CredentialKind::AppPassword;
        let d = expires_in(add(&ctx, &me, kind, "tess", "a", None).expect("add"));
        assert!((7 * 86400 - 5..=7 * 86400).contains(&d), "{d}");
        assert!(matches!(
            add(&ctx, &me, kind, "tess", "b", Some(31 * 86400)),
            Err(AccountError::Invalid(_))
        ));
        let staff = ctx.store.create_group("staff", None).expect("group");
        ctx.store
            .add_member(staff.id, Member::User(tess.id))
            .expect("member");
        ctx.store
            .set_group_attr(staff.id, TOKEN_MAX_LIFETIME, Some("2d"))
            .expect("attr");
        assert!(matches!(
            add(&ctx, &me, kind, "tess", "c", Some(3 * 86400)),
            Err(AccountError::Invalid(_))
        ));
        // The default is cut to the maximum.
        let d = expires_in(add(&ctx, &me, kind, "tess", "d", None).expect("add"));
        assert!((2 * 86400 - 5..=2 * 86400).contains(&d), "{d}");
        // The user's own value wins over the group's.
        ctx.store
            .update_user(tess.id, &|u| {
                u.attrs.insert(TOKEN_MAX_LIFETIME.into(), "10d".into());
                Ok(())
            })
            .expect("attr");
        add(&ctx, &me, kind, "tess", "e", Some(9 * 86400)).expect("within the user's own");
        // The operator is not bound.
        add(&ctx, &Actor::Operator, kind, "tess", "f", Some(300 * 86400)).expect("operator");
        add(&ctx, &Actor::Operator, kind, "tess", "g", None).expect("never expires");
    }

    #[test]
    fn lifetimes_and_expiries_parse() {
        assert_eq!(parse_lifetime("30d"), Some(30 * 86400));
        assert_eq!(parse_lifetime(" 12h "), Some(12 * 3600));
        assert_eq!(parse_lifetime("2w"), Some(14 * 86400));
        for bad in ["", "0d", "d", "12", "3y", "-1d", "99999999w"] {
            assert_eq!(parse_lifetime(bad), None, "{bad}");
        }
        let at = 1_800_000_000; // 2027-01-15T08:00:00Z
        assert_eq!(parse_expiry("1h", at), Some(3600));
        let end_of_day = 1_800_057_599; // 2027-01-15T23:59:59Z
        assert_eq!(
            parse_expiry("2027-01-15", at),
            Some((end_of_day - at) as u64)
        );
        assert_eq!(parse_expiry("2027-01-14", at), None);
        assert_eq!(parse_expiry("tomorrow", at), None);
    }
}
