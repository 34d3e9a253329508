//! Users and groups as the operator changes them (the CLI and the admin
//! socket): create, show, list, password, enable/disable, attributes,
//! delete, memberships and nesting. Every change names its [`Actor`]; the
//! admin set keeps an enabled member ([`ensure_admins_remain`]).

use super::admins::{ensure_admins_remain, Removal};
use super::view::{self, AdminAnswer, GroupChanged, UserChanged};
use super::{password, profile, AccountError, Actor, AdminContext};
use crate::directory::schema;
use crate::store::{Group, GroupId, Member, NewUser, User};

pub(crate) fn find_user(ctx: &AdminContext, username: &str) -> Result<User, AccountError> {
    ctx.store
        .user_by_name(username)?
        .ok_or_else(|| AccountError::NotFound(format!("user {username} not found")))
}

pub(crate) fn find_group(ctx: &AdminContext, name: &str) -> Result<Group, AccountError> {
    ctx.store
        .group_by_name(name)?
        .ok_or_else(|| AccountError::NotFound(format!("group {name} not found")))
}

pub(crate) fn user_changed(
    ctx: &AdminContext,
    user: &User,
    changed: bool,
) -> Result<AdminAnswer, AccountError> {
    let view = view::Names::new(ctx).user(user)?;
    Ok(AdminAnswer::UserChanged(UserChanged::new(changed, view)))
}

pub(crate) fn group_changed(
    ctx: &AdminContext,
    id: GroupId,
    changed: bool,
) -> Result<AdminAnswer, AccountError> {
    let group = ctx
        .store
        .group(id)?
        .ok_or_else(|| AccountError::NotFound("the group was deleted meanwhile".into()))?;
    let view = view::Names::new(ctx).group(&group)?;
    Ok(AdminAnswer::GroupChanged(GroupChanged::new(changed, view)))
}

/// A text field given by the operator: trimmed, and refused when empty.
fn non_empty(what: &str, value: Option<String>) -> Result<Option<String>, AccountError> {
    match value {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => {
            Err(AccountError::Invalid(format!("{what} must not be empty")))
        }
        Some(v) => Ok(Some(v.trim().to_string())),
    }
}

/// Checks `p` against the policy (`context`: the account's name, full
/// name and email) and hashes it.
fn hash(ctx: &AdminContext, p: &str, context: &[&str]) -> Result<String, AccountError> {
    password::hash_blocking(&ctx.hasher, &ctx.settings.password, p, context)
}

pub fn user_add(
    ctx: &AdminContext,
    actor: &Actor,
    username: String,
    full_name: Option<String>,
    email: Option<String>,
    password: Option<&str>,
) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    let full_name = non_empty("the full name", full_name)?;
    // The store validates names and addresses.
    let email = non_empty("the email address", email)?;
    // Fail fast, before spending a hash; the store checks again atomically.
    if ctx.store.user_by_name(&username)?.is_some() {
        return Err(AccountError::AlreadyExists(format!(
            "user {username} already exists"
        )));
    }
    let context = [
        username.as_str(),
        full_name.as_deref().unwrap_or(""),
        email.as_deref().unwrap_or(""),
    ];
    let phc = password.map(|p| hash(ctx, p, &context)).transpose()?;
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

pub fn user_passwd(
    ctx: &AdminContext,
    actor: &Actor,
    username: &str,
    password: &str,
) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    let user = find_user(ctx, username)?;
    let context = [
        user.username.as_str(),
        user.full_name.as_deref().unwrap_or(""),
        user.email.as_deref().unwrap_or(""),
    ];
    let phc = hash(ctx, password, &context)?;
    ctx.store.set_password_hash(user.id, &phc)?;
    let user = ctx.store.user(user.id)?.unwrap_or(user);
    super::bootstrap::forget_initial_password(ctx.initial_password_file.as_deref(), &user.username);
    user_changed(ctx, &user, true)
}

pub fn set_disabled(
    ctx: &AdminContext,
    actor: &Actor,
    username: &str,
    disabled: bool,
) -> Result<AdminAnswer, AccountError> {
    actor.require_admin(ctx)?;
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
    if disabled {
        // Its binds are refused from now on; connections already bound as
        // it are closed too (its portal sessions end at their next request).
        ctx.connections.end_all_of(user.id);
    }
    user_changed(ctx, &user, true)
}

pub fn user_delete(
    ctx: &AdminContext,
    actor: &Actor,
    username: &str,
) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    let user = find_user(ctx, username)?;
    ensure_admin_remains(ctx, Removal::User(user.id))?;
    // Render before deleting: the answer shows what was removed.
    let view = view::Names::new(ctx).user(&user)?;
    ctx.store.delete_user(user.id)?;
    ctx.connections.end_all_of(user.id);
    Ok(AdminAnswer::UserChanged(UserChanged::new(true, view)))
}

/// `user set-attr` (`value` is `Some`) and `user unset-attr` (`None`).
pub fn user_set_attr(
    ctx: &AdminContext,
    actor: &Actor,
    username: &str,
    key: &str,
    value: Option<String>,
) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    let user = find_user(ctx, username)?;
    if let (Some(portal_key), Some(v)) = (profile::portal_attr(key), value.as_deref()) {
        profile::check_portal_attr_value(portal_key, v)?;
    }
    let target = match schema::user_settable(key) {
        // The attributes that steer the portal (`account::profile`).
        None if profile::portal_attr(key).is_some() => {
            Target::Attr(profile::portal_attr(key).unwrap_or(key).to_string())
        }
        Some(attr) if attr.name.eq_ignore_ascii_case("displayName") => Target::FullName,
        Some(attr) if attr.name.eq_ignore_ascii_case("mail") => Target::Email,
        Some(attr) => Target::Attr(attr.name.to_string()),
        // Unsetting a stored attribute that is no longer settable is allowed,
        // so nothing can get stuck on a user.
        None if value.is_none() && user.attrs.pair_like(key).is_some() => {
            Target::Attr(key.to_string())
        }
        None => {
            return Err(AccountError::Invalid(format!(
                "attribute {key} cannot be set with set-attr (unknown, or computed by the server)"
            )))
        }
    };
    let value = match value {
        Some(v) if v.is_empty() => {
            return Err(AccountError::Invalid(format!(
                "the value of {key} must not be empty; use unset-attr to remove it"
            )))
        }
        Some(v) => Some(v),
        None => None,
    };
    if let (Target::Attr(name), Some(v)) = (&target, &value) {
        crate::domain::validate::attribute(name, v)
            .map_err(|e| AccountError::Invalid(e.to_string()))?;
    }
    let before = user.clone();
    let updated = ctx.store.update_user(user.id, &|u: &mut User| {
        match &target {
            Target::FullName => u.full_name = value.clone(),
            Target::Email => u.email = value.clone(),
            Target::Attr(name) => {
                // Keys are canonical names; drop any differently-cased copy.
                if let Some(old) = u.attrs.pair_like(name).map(|(k, _)| k.to_string()) {
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

/// `group set-attr` (`value` is `Some`) and `group unset-attr` (`None`):
/// only the attributes that steer the portal
/// (`goauthentik.io/user/can-change-*`, `true` or `false`).
pub fn group_set_attr(
    ctx: &AdminContext,
    actor: &Actor,
    name: &str,
    key: &str,
    value: Option<String>,
) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    let group = find_group(ctx, name)?;
    let Some(key) = profile::portal_attr(key) else {
        return Err(AccountError::Invalid(format!(
            "attribute {key} cannot be set on a group (known: {})",
            profile::PORTAL_ATTRS.join(", ")
        )));
    };
    if let Some(v) = &value {
        profile::check_portal_attr_value(key, v)?;
    }
    let changed = ctx.store.set_group_attr(group.id, key, value.as_deref())?;
    group_changed(ctx, group.id, changed)
}

pub fn group_add(
    ctx: &AdminContext,
    actor: &Actor,
    name: &str,
    description: Option<String>,
) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    let description = non_empty("the description", description)?;
    let group = ctx.store.create_group(name, description)?;
    let view = view::Names::new(ctx).group(&group)?;
    Ok(AdminAnswer::GroupChanged(GroupChanged::new(true, view)))
}

pub fn group_delete(
    ctx: &AdminContext,
    actor: &Actor,
    name: &str,
) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    let group = find_group(ctx, name)?;
    for required in [&ctx.admin_group, &ctx.search_group] {
        if group.name.eq_ignore_ascii_case(required) {
            return Err(AccountError::Invalid(format!(
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
fn ensure_admin_remains(ctx: &AdminContext, removal: Removal) -> Result<(), AccountError> {
    ensure_admins_remain(&ctx.store, &ctx.admin_group, &[removal])
}

/// `user show`.
pub fn user_show(
    ctx: &AdminContext,
    actor: &Actor,
    username: &str,
) -> Result<AdminAnswer, AccountError> {
    actor.require_admin(ctx)?;
    let user = find_user(ctx, username)?;
    view::Names::new(ctx).user(&user).map(AdminAnswer::User)
}

/// `user list`.
pub fn user_list(ctx: &AdminContext, actor: &Actor) -> Result<AdminAnswer, AccountError> {
    actor.require_admin(ctx)?;
    let mut names = view::Names::new(ctx);
    let users = ctx.store.users()?;
    let list = users
        .iter()
        .map(|u| names.user(u))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AdminAnswer::Users(list))
}

/// `group show`.
pub fn group_show(
    ctx: &AdminContext,
    actor: &Actor,
    name: &str,
) -> Result<AdminAnswer, AccountError> {
    actor.require_admin(ctx)?;
    let group = find_group(ctx, name)?;
    view::Names::new(ctx).group(&group).map(AdminAnswer::Group)
}

/// `group list`.
pub fn group_list(ctx: &AdminContext, actor: &Actor) -> Result<AdminAnswer, AccountError> {
    actor.require_admin(ctx)?;
    let mut names = view::Names::new(ctx);
    let groups = ctx.store.groups()?;
    let list = groups
        .iter()
        .map(|g| names.group(g))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AdminAnswer::Groups(list))
}

/// `group add-member`.
pub fn add_member(
    ctx: &AdminContext,
    actor: &Actor,
    group: &str,
    user: &str,
) -> Result<AdminAnswer, AccountError> {
    actor.require_admin(ctx)?;
    let group = find_group(ctx, group)?;
    let user = find_user(ctx, user)?;
    let changed = ctx.store.add_member(group.id, Member::User(user.id))?;
    group_changed(ctx, group.id, changed)
}

/// `group remove-member`: never the last enabled admin.
pub fn remove_member(
    ctx: &AdminContext,
    actor: &Actor,
    group: &str,
    user: &str,
) -> Result<AdminAnswer, AccountError> {
    actor.require_admin(ctx)?;
    let group = find_group(ctx, group)?;
    let user = find_user(ctx, user)?;
    let member = Member::User(user.id);
    ensure_admin_remains(ctx, Removal::Edge(group.id, member))?;
    let changed = ctx.store.remove_member(group.id, member)?;
    group_changed(ctx, group.id, changed)
}

/// `group add-child`: nesting, never a group in itself (the store refuses
/// longer cycles).
pub fn add_child(
    ctx: &AdminContext,
    actor: &Actor,
    parent: &str,
    child: &str,
) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    let parent = find_group(ctx, parent)?;
    let child = find_group(ctx, child)?;
    if parent.id == child.id {
        return Err(AccountError::Invalid(format!(
            "group {} cannot be a member of itself",
            parent.name
        )));
    }
    let changed = ctx.store.add_member(parent.id, Member::Group(child.id))?;
    group_changed(ctx, parent.id, changed)
}

/// `group remove-child`: never the last way an enabled admin is one.
pub fn remove_child(
    ctx: &AdminContext,
    actor: &Actor,
    parent: &str,
    child: &str,
) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    let parent = find_group(ctx, parent)?;
    let child = find_group(ctx, child)?;
    let member = Member::Group(child.id);
    ensure_admin_remains(ctx, Removal::Edge(parent.id, member))?;
    let changed = ctx.store.remove_member(parent.id, member)?;
    group_changed(ctx, parent.id, changed)
}
