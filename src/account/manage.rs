//! What an admin does at the portal's minimal admin page and API: list
//! users and groups, enable and disable users, add and remove group
//! members. Each method calls the operator's function in `records`, whose
//! permission ([`Actor::require_admin`]: the operator or a bound admin)
//! and guards (never the last enabled admin) hold for every front end.

use super::records;
use super::view::{AdminAnswer, GroupView, UserView};
use super::{AccountError, Accounts, Actor};
use crate::blocking::off_reactor;

fn unexpected(answer: AdminAnswer) -> AccountError {
    AccountError::Internal(format!("unexpected answer {answer:?}"))
}

fn by(actor: &Actor) -> String {
    match actor {
        Actor::Bound(crate::directory::Identity::User { username, .. }) => username.clone(),
        _ => "operator".into(),
    }
}

impl Accounts {
    /// True when `actor` may use the admin page. Blocking reads, off the
    /// reactor.
    pub async fn may_administer(&self, actor: &Actor) -> Result<bool, AccountError> {
        let (ctx, actor) = (self.admin_context(), actor.clone());
        off_reactor(move || match actor.require_admin(&ctx) {
            Ok(()) => Ok(true),
            Err(AccountError::Denied(_)) => Ok(false),
            Err(e) => Err(e),
        })
        .await
    }

    /// Every user.
    pub async fn users(&self, actor: &Actor) -> Result<Vec<UserView>, AccountError> {
        let (ctx, actor) = (self.admin_context(), actor.clone());
        off_reactor(move || match records::user_list(&ctx, &actor)? {
            AdminAnswer::Users(list) => Ok(list),
            other => Err(unexpected(other)),
        })
        .await
    }

    /// One user.
    pub async fn user(&self, actor: &Actor, username: &str) -> Result<UserView, AccountError> {
        let (ctx, actor, name) = (self.admin_context(), actor.clone(), username.to_string());
        off_reactor(move || match records::user_show(&ctx, &actor, &name)? {
            AdminAnswer::User(u) => Ok(u),
            other => Err(unexpected(other)),
        })
        .await
    }

    /// Enables or disables a user (never the last enabled admin).
    pub async fn set_user_enabled(
        &self,
        actor: &Actor,
        username: &str,
        enabled: bool,
    ) -> Result<UserView, AccountError> {
        let (ctx, actor, name) = (self.admin_context(), actor.clone(), username.to_string());
        off_reactor(move || {
            let answer = records::set_disabled(&ctx, &actor, &name, !enabled)?;
            let AdminAnswer::UserChanged(changed) = answer else {
                return Err(unexpected(answer));
            };
            if changed.changed {
                tracing::info!(target: "portcullis::audit", user = %name, by = %by(&actor),
                    enabled, "user enabled or disabled");
            }
            Ok(changed.user)
        })
        .await
    }

    /// Every group.
    pub async fn groups(&self, actor: &Actor) -> Result<Vec<GroupView>, AccountError> {
        let (ctx, actor) = (self.admin_context(), actor.clone());
        off_reactor(move || match records::group_list(&ctx, &actor)? {
            AdminAnswer::Groups(list) => Ok(list),
            other => Err(unexpected(other)),
        })
        .await
    }

    /// Adds (`member`) or removes a user to or from a group (never the
    /// last enabled admin out of the admin group).
    pub async fn set_member(
        &self,
        actor: &Actor,
        group: &str,
        username: &str,
        member: bool,
    ) -> Result<GroupView, AccountError> {
        let (ctx, actor) = (self.admin_context(), actor.clone());
        let (group, name) = (group.to_string(), username.to_string());
        off_reactor(move || {
            let answer = if member {
                records::add_member(&ctx, &actor, &group, &name)?
            } else {
                records::remove_member(&ctx, &actor, &group, &name)?
            };
            let AdminAnswer::GroupChanged(changed) = answer else {
                return Err(unexpected(answer));
            };
            if changed.changed {
                tracing::info!(target: "portcullis::audit", group = %group, user = %name,
                    by = %by(&actor), member, "group membership changed");
            }
            Ok(changed.group)
        })
        .await
    }
}
