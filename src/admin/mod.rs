//! Admin requests: what the `user` and `group` commands ask for, and their
//! execution against the store.
//!
//! The CLI builds an [`AdminRequest`]; it is either sent over the admin
//! socket to a running server (`socket`), which runs [`execute`] on its
//! blocking pool, or executed in the CLI's own process when no server runs.
//! Either way the result is an [`AdminAnswer`]: its JSON document is what
//! the socket carries and `--json` prints; the CLI renders its human output
//! from the typed views in it.
//!
//! Layout:
//! - this file: [`AdminRequest`], [`AdminError`], [`AdminContext`], [`execute`].
//! - `view`: [`AdminAnswer`] and the views in it (users, groups, devices,
//!   policies; secrets only in the answers that create them).
//! - `mfa`: MFA devices, app passwords and bind policies.
//! - `bootstrap`: the first start (admin user, required groups).
//! - `socket`: the Unix socket server and client.
//!
//! This module speaks store records and knows nothing of LDAP or clap.

pub mod bootstrap;
mod mfa;
pub mod socket;
#[cfg(test)]
mod tests_store;
pub mod view;

pub use bootstrap::bootstrap;
pub use mfa::MAX_EXPIRY_SECS;
pub use view::AdminAnswer;

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::account::admins::{ensure_admins_remain, Removal};
use crate::account::{password, AccountError};
use crate::auth::keys::ServerKey;
use crate::auth::password::Hasher;
use crate::auth::policy::PolicyDefaults;
use crate::config::Config;
use crate::directory::schema;
use crate::store::{Group, GroupId, Member, NewUser, Store, StoreError, User};
use view::{GroupChanged, UserChanged};

/// A password in transit. Its `Debug` never shows it, so a request can be
/// logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    pub fn new(password: String) -> Password {
        Password(password)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// One admin command. Serialized as a JSON object with an `op` field, e.g.
/// `{"op":"user_show","username":"alice"}`; this is the admin socket's
/// request format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminRequest {
    UserAdd {
        username: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        full_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        /// `None` creates a user who cannot bind until a password is set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<Password>,
    },
    UserPasswd {
        username: String,
        password: Password,
    },
    UserShow {
        username: String,
    },
    UserList,
    UserEnable {
        username: String,
    },
    UserDisable {
        username: String,
    },
    UserDelete {
        username: String,
    },
    UserSetAttr {
        username: String,
        key: String,
        value: String,
    },
    UserUnsetAttr {
        username: String,
        key: String,
    },
    GroupAdd {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    GroupDelete {
        name: String,
    },
    GroupShow {
        name: String,
    },
    GroupList,
    GroupAddMember {
        group: String,
        user: String,
    },
    GroupRemoveMember {
        group: String,
        user: String,
    },
    GroupAddChild {
        parent: String,
        child: String,
    },
    GroupRemoveChild {
        parent: String,
        child: String,
    },
    /// `mfa totp add`: answers with the secret, once.
    MfaTotpAdd {
        username: String,
        digits: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
    },
    /// `mfa static add`: answers with the tokens, once.
    MfaStaticAdd {
        username: String,
        count: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
    },
    MfaList {
        username: String,
    },
    MfaRemove {
        username: String,
        device: String,
    },
    /// `mfa policy set`: `if-enrolled`, `required`, `off` or `inherit`
    /// (`inherit` removes the setting), globally or for one group.
    MfaPolicySet {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        policy: String,
    },
    /// `mfa policy show` and `app-password policy show`.
    PolicyShow,
    /// `app-password add`: answers with the secret, once.
    AppPasswordAdd {
        username: String,
        name: String,
        /// Seconds from now; `None` never expires.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_in_secs: Option<u64>,
    },
    AppPasswordList {
        username: String,
    },
    AppPasswordRevoke {
        username: String,
        id: String,
    },
    /// `app-password policy set`: `on`, `off` or `inherit`, globally or for
    /// one group.
    AppPasswordPolicySet {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        setting: String,
    },
}

impl AdminRequest {
    /// The `op` name, for logs.
    pub fn op(&self) -> &'static str {
        match self {
            AdminRequest::UserAdd { .. } => "user_add",
            AdminRequest::UserPasswd { .. } => "user_passwd",
            AdminRequest::UserShow { .. } => "user_show",
            AdminRequest::UserList => "user_list",
            AdminRequest::UserEnable { .. } => "user_enable",
            AdminRequest::UserDisable { .. } => "user_disable",
            AdminRequest::UserDelete { .. } => "user_delete",
            AdminRequest::UserSetAttr { .. } => "user_set_attr",
            AdminRequest::UserUnsetAttr { .. } => "user_unset_attr",
            AdminRequest::GroupAdd { .. } => "group_add",
            AdminRequest::GroupDelete { .. } => "group_delete",
            AdminRequest::GroupShow { .. } => "group_show",
            AdminRequest::GroupList => "group_list",
            AdminRequest::GroupAddMember { .. } => "group_add_member",
            AdminRequest::GroupRemoveMember { .. } => "group_remove_member",
            AdminRequest::GroupAddChild { .. } => "group_add_child",
            AdminRequest::GroupRemoveChild { .. } => "group_remove_child",
            AdminRequest::MfaTotpAdd { .. } => "mfa_totp_add",
            AdminRequest::MfaStaticAdd { .. } => "mfa_static_add",
            AdminRequest::MfaList { .. } => "mfa_list",
            AdminRequest::MfaRemove { .. } => "mfa_remove",
            AdminRequest::MfaPolicySet { .. } => "mfa_policy_set",
            AdminRequest::PolicyShow => "policy_show",
            AdminRequest::AppPasswordAdd { .. } => "app_password_add",
            AdminRequest::AppPasswordList { .. } => "app_password_list",
            AdminRequest::AppPasswordRevoke { .. } => "app_password_revoke",
            AdminRequest::AppPasswordPolicySet { .. } => "app_password_policy_set",
        }
    }
}

/// Why a request failed, in terms the operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The request breaks a rule (bad name, cycle, protected group, …).
    #[error("{0}")]
    Invalid(String),
    /// Storage or hashing failed. The detail is shown to the local CLI and
    /// logged by the server, never sent over the socket.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AdminError {
    /// The `kind` of the socket's error object.
    pub fn kind(&self) -> &'static str {
        match self {
            AdminError::NotFound(_) => "not_found",
            AdminError::AlreadyExists(_) => "already_exists",
            AdminError::Invalid(_) => "invalid",
            AdminError::Internal(_) => "internal",
        }
    }

    /// Rebuilds an error from the socket's `kind` and `message`.
    pub fn from_kind(kind: &str, message: String) -> AdminError {
        match kind {
            "not_found" => AdminError::NotFound(message),
            "already_exists" => AdminError::AlreadyExists(message),
            "invalid" => AdminError::Invalid(message),
            _ => AdminError::Internal(message),
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> AdminError {
        let text = e.to_string();
        match e {
            StoreError::NotFound(_) => AdminError::NotFound(text),
            StoreError::AlreadyExists(_) => AdminError::AlreadyExists(text),
            StoreError::Invalid(message) => AdminError::Invalid(message),
            StoreError::Backend(detail) => AdminError::Internal(detail),
        }
    }
}

impl From<AccountError> for AdminError {
    fn from(e: AccountError) -> AdminError {
        match e {
            AccountError::NotFound(m) => AdminError::NotFound(m),
            AccountError::AlreadyExists(m) => AdminError::AlreadyExists(m),
            AccountError::Invalid(m) | AccountError::Denied(m) => AdminError::Invalid(m),
            AccountError::Password(r) => AdminError::Invalid(r.to_string()),
            AccountError::Store(e) => AdminError::from(e),
            e @ (AccountError::InvalidCredentials
            | AccountError::Busy
            | AccountError::Internal(_)) => AdminError::Internal(e.to_string()),
        }
    }
}

/// What [`execute`] needs. The server builds one and shares it (in an `Arc`)
/// with the admin socket; the CLI builds one when it opens the store itself.
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
}

impl AdminContext {
    pub fn new(store: Store, hasher: Hasher, config: &Config) -> AdminContext {
        AdminContext {
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
        }
    }

    /// Uses the server's key (`<data_dir>/server.key`): required for app
    /// passwords and static tokens that bind.
    pub fn with_server_key(mut self, key: ServerKey) -> AdminContext {
        self.server_key = key;
        self
    }
}

/// Runs one request. Blocking (it may hash a password and it waits on the
/// store): async callers run it inside `tokio::task::spawn_blocking`.
///
/// Reads answer with the view (`user show`, `group show`) or a list of them
/// (`user list`, `group list`). Changes answer with a [`UserChanged`] or
/// [`GroupChanged`] holding the view after the change (before it, for
/// deletions).
pub fn execute(ctx: &AdminContext, req: AdminRequest) -> Result<AdminAnswer, AdminError> {
    match req {
        AdminRequest::UserAdd {
            username,
            full_name,
            email,
            password,
        } => user_add(ctx, username, full_name, email, password),
        AdminRequest::UserPasswd { username, password } => user_passwd(ctx, &username, &password),
        AdminRequest::UserShow { username } => {
            let user = find_user(ctx, &username)?;
            view::Names::new(ctx).user(&user).map(AdminAnswer::User)
        }
        AdminRequest::UserList => {
            let mut names = view::Names::new(ctx);
            let users = ctx.store.users()?;
            let list = users
                .iter()
                .map(|u| names.user(u))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(AdminAnswer::Users(list))
        }
        AdminRequest::UserEnable { username } => set_disabled(ctx, &username, false),
        AdminRequest::UserDisable { username } => set_disabled(ctx, &username, true),
        AdminRequest::UserDelete { username } => user_delete(ctx, &username),
        AdminRequest::UserSetAttr {
            username,
            key,
            value,
        } => user_set_attr(ctx, &username, &key, Some(value)),
        AdminRequest::UserUnsetAttr { username, key } => user_set_attr(ctx, &username, &key, None),
        AdminRequest::GroupAdd { name, description } => group_add(ctx, &name, description),
        AdminRequest::GroupDelete { name } => group_delete(ctx, &name),
        AdminRequest::GroupShow { name } => {
            let group = find_group(ctx, &name)?;
            view::Names::new(ctx).group(&group).map(AdminAnswer::Group)
        }
        AdminRequest::GroupList => {
            let mut names = view::Names::new(ctx);
            let groups = ctx.store.groups()?;
            let list = groups
                .iter()
                .map(|g| names.group(g))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(AdminAnswer::Groups(list))
        }
        AdminRequest::GroupAddMember { group, user } => {
            let group = find_group(ctx, &group)?;
            let user = find_user(ctx, &user)?;
            let changed = ctx.store.add_member(group.id, Member::User(user.id))?;
            group_changed(ctx, group.id, changed)
        }
        AdminRequest::GroupRemoveMember { group, user } => {
            let group = find_group(ctx, &group)?;
            let user = find_user(ctx, &user)?;
            let member = Member::User(user.id);
            ensure_admin_remains(ctx, Removal::Edge(group.id, member))?;
            let changed = ctx.store.remove_member(group.id, member)?;
            group_changed(ctx, group.id, changed)
        }
        AdminRequest::GroupAddChild { parent, child } => {
            let parent = find_group(ctx, &parent)?;
            let child = find_group(ctx, &child)?;
            if parent.id == child.id {
                return Err(AdminError::Invalid(format!(
                    "group {} cannot be a member of itself",
                    parent.name
                )));
            }
            let changed = ctx.store.add_member(parent.id, Member::Group(child.id))?;
            group_changed(ctx, parent.id, changed)
        }
        AdminRequest::GroupRemoveChild { parent, child } => {
            let parent = find_group(ctx, &parent)?;
            let child = find_group(ctx, &child)?;
            let member = Member::Group(child.id);
            ensure_admin_remains(ctx, Removal::Edge(parent.id, member))?;
            let changed = ctx.store.remove_member(parent.id, member)?;
            group_changed(ctx, parent.id, changed)
        }
        AdminRequest::MfaTotpAdd {
            username,
            digits,
            label,
        } => mfa::totp_add(ctx, &username, digits, label),
        AdminRequest::MfaStaticAdd {
            username,
            count,
            label,
        } => mfa::static_add(ctx, &username, count, label),
        AdminRequest::MfaList { username } => mfa::list(ctx, &username),
        AdminRequest::MfaRemove { username, device } => mfa::remove(ctx, &username, &device),
        AdminRequest::MfaPolicySet { group, policy } => {
            mfa::mfa_policy_set(ctx, group.as_deref(), &policy)
        }
        AdminRequest::PolicyShow => mfa::policy_show(ctx),
        AdminRequest::AppPasswordAdd {
            username,
            name,
            expires_in_secs,
        } => mfa::app_password_add(ctx, &username, &name, expires_in_secs),
        AdminRequest::AppPasswordList { username } => mfa::app_password_list(ctx, &username),
        AdminRequest::AppPasswordRevoke { username, id } => {
            mfa::app_password_revoke(ctx, &username, &id)
        }
        AdminRequest::AppPasswordPolicySet { group, setting } => {
            mfa::app_password_policy_set(ctx, group.as_deref(), &setting)
        }
    }
}

fn find_user(ctx: &AdminContext, username: &str) -> Result<User, AdminError> {
    ctx.store
        .user_by_name(username)?
        .ok_or_else(|| AdminError::NotFound(format!("user {username} not found")))
}

fn find_group(ctx: &AdminContext, name: &str) -> Result<Group, AdminError> {
    ctx.store
        .group_by_name(name)?
        .ok_or_else(|| AdminError::NotFound(format!("group {name} not found")))
}

fn internal(e: impl fmt::Display) -> AdminError {
    AdminError::Internal(e.to_string())
}

fn user_changed(ctx: &AdminContext, user: &User, changed: bool) -> Result<AdminAnswer, AdminError> {
    let view = view::Names::new(ctx).user(user)?;
    Ok(AdminAnswer::UserChanged(UserChanged::new(changed, view)))
}

fn group_changed(
    ctx: &AdminContext,
    id: GroupId,
    changed: bool,
) -> Result<AdminAnswer, AdminError> {
    let group = ctx
        .store
        .group(id)?
        .ok_or_else(|| AdminError::NotFound("the group was deleted meanwhile".into()))?;
    let view = view::Names::new(ctx).group(&group)?;
    Ok(AdminAnswer::GroupChanged(GroupChanged::new(changed, view)))
}

/// A text field given by the operator: trimmed, and refused when empty.
fn non_empty(what: &str, value: Option<String>) -> Result<Option<String>, AdminError> {
    match value {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => {
            Err(AdminError::Invalid(format!("{what} must not be empty")))
        }
        Some(v) => Ok(Some(v.trim().to_string())),
    }
}

fn hash(ctx: &AdminContext, password: &Password) -> Result<String, AdminError> {
    let p = password.expose();
    password::check_new(p).map_err(AccountError::from)?;
    ctx.hasher.hash_blocking(p).map_err(internal)
}

fn user_add(
    ctx: &AdminContext,
    username: String,
    full_name: Option<String>,
    email: Option<String>,
    password: Option<Password>,
) -> Result<AdminAnswer, AdminError> {
    let full_name = non_empty("the full name", full_name)?;
    // The store validates names and addresses.
    let email = non_empty("the email address", email)?;
    // Fail fast, before spending a hash; the store checks again atomically.
    if ctx.store.user_by_name(&username)?.is_some() {
        return Err(AdminError::AlreadyExists(format!(
            "user {username} already exists"
        )));
    }
    let phc = password.as_ref().map(|p| hash(ctx, p)).transpose()?;
    let user = ctx.store.create_user(NewUser {
        username,
        full_name,
        email,
    })?;
    if let Some(phc) = phc {
        if let Err(e) = ctx.store.set_password_hash(user.id, &phc) {
            // Do not leave behind a user the operator believes has a password.
            if let Err(undo) = ctx.store.delete_user(user.id) {
                tracing::error!(user = %user.username, error = %undo,
                    "could not remove a user whose password could not be stored");
            }
            return Err(e.into());
        }
    }
    let user = ctx.store.user(user.id)?.unwrap_or(user);
    user_changed(ctx, &user, true)
}

fn user_passwd(
    ctx: &AdminContext,
    username: &str,
    password: &Password,
) -> Result<AdminAnswer, AdminError> {
    let user = find_user(ctx, username)?;
    let phc = hash(ctx, password)?;
    ctx.store.set_password_hash(user.id, &phc)?;
    let user = ctx.store.user(user.id)?.unwrap_or(user);
    user_changed(ctx, &user, true)
}

fn set_disabled(
    ctx: &AdminContext,
    username: &str,
    disabled: bool,
) -> Result<AdminAnswer, AdminError> {
    let user = find_user(ctx, username)?;
    if user.disabled == disabled {
        return user_changed(ctx, &user, false);
    }
    if disabled {
        ensure_admin_remains(ctx, Removal::User(user.id))?;
    }
    // The store bumps `cred_generation` itself when `disabled` changes, so
    // caches keyed on it drop the old status at once.
    let user = ctx.store.update_user(user.id, &|u: &mut User| {
        u.disabled = disabled;
        Ok(())
    })?;
    user_changed(ctx, &user, true)
}

fn user_delete(ctx: &AdminContext, username: &str) -> Result<AdminAnswer, AdminError> {
    let user = find_user(ctx, username)?;
    ensure_admin_remains(ctx, Removal::User(user.id))?;
    // Render before deleting: the answer shows what was removed.
    let view = view::Names::new(ctx).user(&user)?;
    ctx.store.delete_user(user.id)?;
    Ok(AdminAnswer::UserChanged(UserChanged::new(true, view)))
}

/// `user set-attr` (`value` is `Some`) and `user unset-attr` (`None`).
fn user_set_attr(
    ctx: &AdminContext,
    username: &str,
    key: &str,
    value: Option<String>,
) -> Result<AdminAnswer, AdminError> {
    let user = find_user(ctx, username)?;
    let target = match schema::user_settable(key) {
        Some(attr) if attr.name.eq_ignore_ascii_case("displayName") => Target::FullName,
        Some(attr) if attr.name.eq_ignore_ascii_case("mail") => Target::Email,
        Some(attr) => Target::Attr(attr.name.to_string()),
        // Unsetting a stored attribute that is no longer settable is allowed,
        // so nothing can get stuck on a user.
        None if value.is_none() && stored_attr_key(&user, key).is_some() => {
            Target::Attr(key.to_string())
        }
        None => {
            return Err(AdminError::Invalid(format!(
                "attribute {key} cannot be set with set-attr (unknown, or computed by the server)"
            )))
        }
    };
    let value = match value {
        Some(v) if v.is_empty() => {
            return Err(AdminError::Invalid(format!(
                "the value of {key} must not be empty; use unset-attr to remove it"
            )))
        }
        Some(v) => Some(v),
        None => None,
    };
    let before = user.clone();
    let updated = ctx.store.update_user(user.id, &|u: &mut User| {
        match &target {
            Target::FullName => u.full_name = value.clone(),
            Target::Email => u.email = value.clone(),
            Target::Attr(name) => {
                // Keys are canonical names; drop any differently-cased copy.
                if let Some(old) = stored_attr_key(u, name) {
                    u.attrs.remove(&old);
                }
                if let Some(v) = &value {
                    u.attrs.insert(name.clone(), v.clone());
                }
            }
        }
        Ok(())
    })?;
    let changed = updated.full_name != before.full_name
        || updated.email != before.email
        || updated.attrs != before.attrs;
    user_changed(ctx, &updated, changed)
}

enum Target {
    FullName,
    Email,
    Attr(String),
}

fn stored_attr_key(user: &User, key: &str) -> Option<String> {
    user.attrs
        .keys()
        .find(|k| k.eq_ignore_ascii_case(key))
        .cloned()
}

fn group_add(
    ctx: &AdminContext,
    name: &str,
    description: Option<String>,
) -> Result<AdminAnswer, AdminError> {
    let description = non_empty("the description", description)?;
    let group = ctx.store.create_group(name, description)?;
    let view = view::Names::new(ctx).group(&group)?;
    Ok(AdminAnswer::GroupChanged(GroupChanged::new(true, view)))
}

fn group_delete(ctx: &AdminContext, name: &str) -> Result<AdminAnswer, AdminError> {
    let group = find_group(ctx, name)?;
    for required in [&ctx.admin_group, &ctx.search_group] {
        if group.name.eq_ignore_ascii_case(required) {
            return Err(AdminError::Invalid(format!(
                "group {} is required by the server",
                group.name
            )));
        }
    }
    ensure_admin_remains(ctx, Removal::Group(group.id))?;
    let view = view::Names::new(ctx).group(&group)?;
    ctx.store.delete_group(group.id)?;
    Ok(AdminAnswer::GroupChanged(GroupChanged::new(true, view)))
}

/// Refuses a change that would leave the admin group without any enabled
/// user (directly or through child groups), so the directory always keeps
/// someone who can administer it over LDAP. A directory that already has no
/// admin is not blocked by this.
fn ensure_admin_remains(ctx: &AdminContext, removal: Removal) -> Result<(), AdminError> {
    Ok(ensure_admins_remain(
        &ctx.store,
        &ctx.admin_group,
        &[removal],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::collections::BTreeSet;

    fn every_request() -> Vec<AdminRequest> {
        let s = |x: &str| x.to_string();
        vec![
            AdminRequest::UserAdd {
                username: s("alice"),
                full_name: Some(s("Alice Liddell")),
                email: Some(s("alice@example.com")),
                password: Some(Password::new(s("s3cret;x"))),
            },
            AdminRequest::UserAdd {
                username: s("bob"),
                full_name: None,
                email: None,
                password: None,
            },
            AdminRequest::UserPasswd {
                username: s("alice"),
                password: Password::new(s("n\u{e9}w \"pw\"")),
            },
            AdminRequest::UserShow {
                username: s("alice"),
            },
            AdminRequest::UserList,
            AdminRequest::UserEnable {
                username: s("alice"),
            },
            AdminRequest::UserDisable {
                username: s("alice"),
            },
            AdminRequest::UserDelete {
                username: s("alice"),
            },
            AdminRequest::UserSetAttr {
                username: s("alice"),
                key: s("loginShell"),
                value: s("/bin/zsh"),
            },
            AdminRequest::UserUnsetAttr {
                username: s("alice"),
                key: s("loginShell"),
            },
            AdminRequest::GroupAdd {
                name: s("staff"),
                description: Some(s("Everyone")),
            },
            AdminRequest::GroupAdd {
                name: s("staff"),
                description: None,
            },
            AdminRequest::GroupDelete { name: s("staff") },
            AdminRequest::GroupShow { name: s("staff") },
            AdminRequest::GroupList,
            AdminRequest::GroupAddMember {
                group: s("staff"),
                user: s("alice"),
            },
            AdminRequest::GroupRemoveMember {
                group: s("staff"),
                user: s("alice"),
            },
            AdminRequest::GroupAddChild {
                parent: s("staff"),
                child: s("devs"),
            },
            AdminRequest::GroupRemoveChild {
                parent: s("staff"),
                child: s("devs"),
            },
            AdminRequest::MfaTotpAdd {
                username: s("alice"),
                digits: 6,
                label: Some(s("phone")),
            },
            AdminRequest::MfaStaticAdd {
                username: s("alice"),
                count: 6,
                label: None,
            },
            AdminRequest::MfaList {
                username: s("alice"),
            },
            AdminRequest::MfaRemove {
                username: s("alice"),
                device: s("0000"),
            },
            AdminRequest::MfaPolicySet {
                group: Some(s("svc")),
                policy: s("off"),
            },
            AdminRequest::PolicyShow,
            AdminRequest::AppPasswordAdd {
                username: s("alice"),
                name: s("mail"),
                expires_in_secs: Some(3600),
            },
            AdminRequest::AppPasswordList {
                username: s("alice"),
            },
            AdminRequest::AppPasswordRevoke {
                username: s("alice"),
                id: s("0000"),
            },
            AdminRequest::AppPasswordPolicySet {
                group: None,
                setting: s("off"),
            },
        ]
    }

    #[test]
    fn every_request_round_trips_through_json() {
        let mut ops = BTreeSet::new();
        for req in every_request() {
            let text = serde_json::to_string(&req).expect("serialize");
            let back: AdminRequest = serde_json::from_str(&text).expect("deserialize");
            assert_eq!(back, req, "{text}");
            let value: Value = serde_json::from_str(&text).expect("json");
            assert_eq!(value["op"], req.op(), "{text}");
            ops.insert(req.op());
        }
        assert_eq!(ops.len(), 27, "every variant covered");
    }

    #[test]
    fn wire_format() {
        let req: AdminRequest =
            serde_json::from_str(r#"{"op":"user_add","username":"carol"}"#).expect("parse");
        assert_eq!(
            req,
            AdminRequest::UserAdd {
                username: "carol".into(),
                full_name: None,
                email: None,
                password: None
            }
        );
        let req = AdminRequest::GroupAddMember {
            group: "admins".into(),
            user: "carol".into(),
        };
        assert_eq!(
            serde_json::to_value(&req).expect("json"),
            json!({"op": "group_add_member", "group": "admins", "user": "carol"})
        );
        assert_eq!(
            serde_json::to_value(AdminRequest::UserList).expect("json"),
            json!({"op": "user_list"})
        );
    }

    #[test]
    fn malformed_requests_are_refused() {
        for bad in [
            r#"{"op":"user_show"}"#,
            r#"{"op":"user_show","username":"a","extra":1}"#,
            r#"{"op":"user_frobnicate","username":"a"}"#,
            r#"{"username":"a"}"#,
            r#""user_list""#,
        ] {
            assert!(serde_json::from_str::<AdminRequest>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_never_show_in_debug() {
        let req = AdminRequest::UserPasswd {
            username: "alice".into(),
            password: Password::new("hunter2".into()),
        };
        let debug = format!("{req:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("********"));
    }

    #[test]
    fn error_kinds_round_trip() {
        for e in [
            AdminError::NotFound("user x not found".into()),
            AdminError::AlreadyExists("user x already exists".into()),
            AdminError::Invalid("bad".into()),
            AdminError::Internal("disk".into()),
        ] {
            let message = match &e {
                AdminError::NotFound(m)
                | AdminError::AlreadyExists(m)
                | AdminError::Invalid(m)
                | AdminError::Internal(m) => m.clone(),
            };
            assert_eq!(AdminError::from_kind(e.kind(), message), e);
        }
    }

    #[test]
    fn store_errors_map_to_admin_errors() {
        assert_eq!(
            AdminError::from(StoreError::NotFound("user x".into())),
            AdminError::NotFound("user x not found".into())
        );
        assert_eq!(
            AdminError::from(StoreError::AlreadyExists("group y".into())),
            AdminError::AlreadyExists("group y already exists".into())
        );
        assert_eq!(
            AdminError::from(StoreError::Invalid("cycle".into())),
            AdminError::Invalid("cycle".into())
        );
        assert!(matches!(
            AdminError::from(StoreError::Backend("io".into())),
            AdminError::Internal(_)
        ));
    }
}
