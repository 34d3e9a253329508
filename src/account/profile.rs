//! A user's own details, as the portal shows and changes them: username,
//! name, email and portal locale, with the rule of which of them the user
//! may change.
//!
//! The rule (DESIGN.md section 6): the global settings (`[portal]
//! can_change_username|name|email`, defaults no, yes, no), overridden by
//! the attributes `goauthentik.io/user/can-change-username|name|email` on
//! the user's groups (direct or nested; when groups disagree, `false`
//! wins), overridden in turn by the same attribute on the user (the
//! user's own value wins). The operator (CLI) is not bound by it.
//!
//! A username change is a rename: the id, entryUUID, uidNumber and every
//! membership stay, the DN moves, and LDAP sees it at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AccountError, Accounts, Actor};
use crate::blocking::off_reactor;
use crate::directory::tree;
use crate::store::{Member, Store, StoreError, User};

/// The attributes that steer the rule, on users and groups.
pub const CAN_CHANGE_USERNAME: &str = "goauthentik.io/user/can-change-username";
pub const CAN_CHANGE_NAME: &str = "goauthentik.io/user/can-change-name";
pub const CAN_CHANGE_EMAIL: &str = "goauthentik.io/user/can-change-email";
/// The user's portal language (`en`, `de`); none means auto-detect.
pub const LOCALE_ATTR: &str = "portcullis/locale";

/// The longest lifetime the user may give an app password or API token
/// (a duration such as `30d`): see [`crate::account::credentials`].
pub const TOKEN_MAX_LIFETIME: &str = "goauthentik.io/user/token-maximum-lifetime";
/// Portal attributes `user set-attr` and `group set-attr` accept, with
/// the values each takes.
pub const PORTAL_ATTRS: &[&str] = &[
    CAN_CHANGE_USERNAME,
    CAN_CHANGE_NAME,
    CAN_CHANGE_EMAIL,
    TOKEN_MAX_LIFETIME,
];

/// The canonical name of a portal attribute (case-insensitive), if `key`
/// is one; its value must be `true` or `false` (a duration for
/// [`TOKEN_MAX_LIFETIME`]).
pub fn portal_attr(key: &str) -> Option<&'static str> {
    PORTAL_ATTRS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(key))
        .copied()
}

/// Checks the value given for a portal attribute.
pub fn check_portal_attr_value(key: &str, value: &str) -> Result<(), AccountError> {
    if key == TOKEN_MAX_LIFETIME {
        return super::credentials::parse_lifetime(value)
            .map(|_| ())
            .ok_or_else(|| {
                AccountError::Invalid(format!(
                    "{key} takes a duration such as 12h, 30d or 2w, not {value:?}"
                ))
            });
    }
    match value {
        "true" | "false" => Ok(()),
        _ => Err(AccountError::Invalid(format!(
            "{key} takes true or false, not {value:?}"
        ))),
    }
}

/// Which details a user may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanChange {
    pub username: bool,
    pub name: bool,
    pub email: bool,
}

impl Default for CanChange {
    /// Name yes, email no, username no.
    fn default() -> Self {
        CanChange {
            username: false,
            name: true,
            email: false,
        }
    }
}

/// A user's details as the portal shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub dn: String,
    /// `None`: auto-detect.
    pub locale: Option<String>,
    pub can_change: CanChange,
}

/// A change of details: `None` leaves a field alone; an empty name or
/// email removes it; an empty locale means auto-detect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChange {
    pub username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub locale: Option<String>,
}

/// Locales a user may choose (the portal's catalogues).
pub const LOCALES: &[&str] = &["en", "de"];

impl Accounts {
    /// The details of `username`, for the user themself or the operator.
    pub async fn profile(&self, actor: &Actor, username: &str) -> Result<Profile, AccountError> {
        actor.may_manage(username)?;
        let (accounts, name) = (self.clone(), username.to_string());
        off_reactor(move || {
            let user = find(accounts.store(), &name)?;
            accounts.profile_of(&user)
        })
        .await
    }

    /// Changes the details of `username`. A user may change only what
    /// the rule allows; a field given with its current value is no
    /// change. Answers with the details as they are now.
    pub async fn update_profile(
        &self,
        actor: &Actor,
        username: &str,
        change: ProfileChange,
    ) -> Result<Profile, AccountError> {
        actor.may_manage(username)?;
        let operator = matches!(actor, Actor::Operator | Actor::System);
        let (accounts, name) = (self.clone(), username.to_string());
        let by = match actor {
            Actor::Bound(crate::directory::Identity::User { username, .. }) => username.clone(),
            _ => "operator".into(),
        };
        off_reactor(move || {
            let store = accounts.store();
            let user = find(store, &name)?;
            let may = if operator {
                CanChange {
                    username: true,
                    name: true,
                    email: true,
                }
            } else {
                accounts.can_change(&user)?
            };
            let text = |v: Option<String>| v.map(|v| v.trim().to_string());
            let new_name = text(change.name).map(|v| Some(v).filter(|v| !v.is_empty()));
            let new_email = text(change.email).map(|v| Some(v).filter(|v| !v.is_empty()));
            let new_username = text(change.username).filter(|v| *v != user.username);
            let new_locale = text(change.locale).map(|v| Some(v).filter(|v| !v.is_empty()));
            let name_changes = new_name.as_ref().is_some_and(|n| *n != user.full_name);
            let email_changes = new_email.as_ref().is_some_and(|e| *e != user.email);
            for (changes, allowed, what) in [
                (new_username.is_some(), may.username, "username"),
                (name_changes, may.name, "name"),
                (email_changes, may.email, "email"),
            ] {
                if changes && !allowed {
                    return Err(AccountError::Denied(format!("you may not change your {what}")));
                }
            }
            if let Some(Some(l)) = &new_locale {
                if !LOCALES.contains(&l.as_str()) {
                    return Err(AccountError::Invalid(format!("unknown locale {l}")));
                }
            }
            let invalid = |e: StoreError| AccountError::Invalid(e.to_string());
            if let Some(Some(n)) = &new_name {
                Store::check_full_name(n).map_err(invalid)?;
            }
            if let Some(Some(e)) = &new_email {
                Store::check_email(e).map_err(invalid)?;
            }
            if let Some(new) = &new_username {
                Store::check_user_name(new).map_err(invalid)?;
            }
            let mut user = store.update_user(user.id, &|u: &mut User| {
                if let Some(n) = &new_name {
                    u.full_name = n.clone();
                }
                if let Some(e) = &new_email {
                    u.email = e.clone();
                }
                match &new_locale {
                    Some(Some(l)) => {
                        u.attrs.insert(LOCALE_ATTR.into(), l.clone());
                    }
                    Some(None) => {
                        u.attrs.remove(LOCALE_ATTR);
                    }
                    None => {}
                }
                Ok(())
            })
            .map_err(|e| match e {
                StoreError::AlreadyExists(_) => {
                    AccountError::AlreadyExists("that email address is taken".into())
                }
                e => e.into(),
            })?;
            if let Some(new) = &new_username {
                let old = user.username.clone();
                user = store.rename_user(user.id, new).map_err(|e| match e {
                    StoreError::AlreadyExists(_) => {
                        AccountError::AlreadyExists("that username is taken".into())
                    }
                    e => e.into(),
                })?;
                tracing::info!(target: "portcullis::audit", user = %new, old = %old, by = %by, "user renamed");
            }
            tracing::info!(target: "portcullis::audit", user = %user.username, by = %by, "user details changed");
            accounts.profile_of(&user)
        })
        .await
    }

    /// Blocking.
    fn profile_of(&self, user: &User) -> Result<Profile, AccountError> {
        Ok(Profile {
            username: user.username.clone(),
            name: user.full_name.clone(),
            email: user.email.clone(),
            dn: tree::user_dn(self.base(), &user.username).to_string(),
            locale: user.attrs.get(LOCALE_ATTR).map(str::to_string),
            can_change: self.can_change(user)?,
        })
    }

    /// The rule of this module for `user`. Blocking.
    pub fn can_change(&self, user: &User) -> Result<CanChange, AccountError> {
        let store = self.store();
        let mut from_groups: BTreeMap<&str, bool> = BTreeMap::new();
        for group in store.transitive_groups_of(Member::User(user.id))? {
            for (key, value) in store.group_attrs(group)? {
                if let (Some(k), Some(v)) = (portal_attr(&key), parse_bool(&value)) {
                    let slot = from_groups.entry(k).or_insert(v);
                    *slot = *slot && v;
                }
            }
        }
        let own = |key: &str| {
            user.attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .and_then(|(_, v)| parse_bool(v))
        };
        let decide = |key: &'static str, default: bool| {
            own(key)
                .or_else(|| from_groups.get(key).copied())
                .unwrap_or(default)
        };
        let d = self.profile_defaults;
        Ok(CanChange {
            username: decide(CAN_CHANGE_USERNAME, d.username),
            name: decide(CAN_CHANGE_NAME, d.name),
            email: decide(CAN_CHANGE_EMAIL, d.email),
        })
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn find(store: &Store, name: &str) -> Result<User, AccountError> {
    store
        .user_by_name(name)?
        .ok_or_else(|| AccountError::NotFound(format!("user {name} not found")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::records;
    use crate::account::AdminContext;
    use crate::auth::password::Hasher;
    use crate::auth::Authenticator;
    use crate::config::Config;
    use crate::directory::{Directory, Dn};
    use crate::store::NewUser;

    /// `user set-attr` and `group set-attr` take the portal's keys (and
    /// only true/false), and the rule follows them: group, then user.
    #[test]
    fn set_attr_takes_the_portal_keys_and_the_rule_follows_them() {
        let store = Store::temporary().expect("store");
        let ctx = AdminContext::new(store.clone(), Hasher::for_tests(), &Config::default());
        let op = Actor::Operator;
        let alice = store
            .create_user(NewUser {
                username: "alice".into(),
                ..NewUser::default()
            })
            .expect("user");
        let staff = store.create_group("staff", None).expect("group");
        store
            .add_member(staff.id, Member::User(alice.id))
            .expect("member");
        let accounts = Accounts::new(
            Directory::new(
                store.clone(),
                Dn::parse("dc=example,dc=com").expect("dn"),
                "admins",
                "ldap-search",
            ),
            Authenticator::new(store.clone(), Hasher::for_tests()),
        );
        let rule = || {
            let user = store.user(alice.id).expect("r").expect("alice");
            accounts.can_change(&user).expect("rule")
        };
        assert_eq!(rule(), CanChange::default());

        records::group_set_attr(&ctx, &op, "staff", CAN_CHANGE_EMAIL, Some("true".into()))
            .expect("group set-attr");
        records::group_set_attr(&ctx, &op, "STAFF", CAN_CHANGE_NAME, Some("false".into()))
            .expect("group set-attr");
        assert!(matches!(
            records::group_set_attr(&ctx, &op, "staff", CAN_CHANGE_NAME, Some("yes".into())),
            Err(AccountError::Invalid(_))
        ));
        assert!(matches!(
            records::group_set_attr(&ctx, &op, "staff", "loginShell", Some("/bin/sh".into())),
            Err(AccountError::Invalid(_))
        ));
        assert_eq!(
            rule(),
            CanChange {
                username: false,
                name: false,
                email: true
            }
        );
        records::user_set_attr(&ctx, &op, "alice", CAN_CHANGE_NAME, Some("true".into()))
            .expect("user set-attr");
        records::user_set_attr(
            &ctx,
            &op,
            "alice",
            "goauthentik.io/user/can-change-USERNAME",
            Some("true".into()),
        )
        .expect("user set-attr, any case");
        assert!(matches!(
            records::user_set_attr(&ctx, &op, "alice", CAN_CHANGE_NAME, Some("maybe".into())),
            Err(AccountError::Invalid(_))
        ));
        assert_eq!(
            rule(),
            CanChange {
                username: true,
                name: true,
                email: true
            }
        );
        records::group_set_attr(&ctx, &op, "staff", CAN_CHANGE_EMAIL, None).expect("unset");
        records::user_set_attr(&ctx, &op, "alice", CAN_CHANGE_NAME, None).expect("unset");
        assert_eq!(
            rule(),
            CanChange {
                username: true,
                name: false,
                email: false
            }
        );
        // A bound user may not set them.
        let me = Actor::Bound(crate::directory::Identity::User {
            id: alice.id,
            username: "alice".into(),
        });
        assert!(matches!(
            records::group_set_attr(&ctx, &me, "staff", CAN_CHANGE_EMAIL, Some("true".into())),
            Err(AccountError::Denied(_))
        ));
        // The attributes go with their group.
        records::group_delete(&ctx, &op, "staff").expect("delete");
        assert!(store.group_attrs(staff.id).expect("attrs").is_empty());
    }
}
