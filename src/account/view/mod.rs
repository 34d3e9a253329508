//! What admin requests answer: [`AdminAnswer`] and the views in it.
//!
//! The account operations answer with an [`AdminAnswer`]; the admin
//! socket carries it as a JSON document ([`AdminAnswer::to_json`]), the CLI
//! prints that document with `--json` and renders its text from the typed
//! views, and (next) the portal's JSON API serves the same views. A client
//! of the admin socket turns the document back into the answer knowing the
//! request it sent (`crate::admin::answer_from_json`).
//!
//! Layout:
//! - this file: [`AdminAnswer`], the answers of changes ([`UserChanged`],
//!   [`GroupChanged`], [`Removed`]), times as text.
//! - `directory`: [`UserView`], [`GroupView`] and how they are built.
//! - `mfa`: devices, app passwords, policies, the one-time secrets.

mod directory;
mod mfa;

pub(in crate::account) use directory::Names;
pub use directory::{GroupView, UserView};
pub use mfa::{
    AppPasswordAdded, AppPasswordView, DeviceKindView, DeviceView, GroupPolicyView, PolicySource,
    PolicyView, Secret, StaticAdded, TotpAdded,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::Timestamp;

/// The answer to one admin request (`crate::admin::AdminRequest`). Serialized as the bare view (no
/// tag): the JSON document is the same one the admin socket always carried.
///
/// There is no `Deserialize`: guessing the kind from the document would be
/// ambiguous (an empty list of users is an empty list of devices too), so
/// `crate::admin::answer_from_json` takes it from the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AdminAnswer {
    /// `user show`.
    User(UserView),
    /// `user list`.
    Users(Vec<UserView>),
    /// `user add|passwd|enable|disable|delete|set-attr|unset-attr`.
    UserChanged(UserChanged),
    /// `group show`.
    Group(GroupView),
    /// `group list`.
    Groups(Vec<GroupView>),
    /// `group add|delete|add-member|remove-member|add-child|remove-child`.
    GroupChanged(GroupChanged),
    /// `mfa totp add`.
    TotpAdded(TotpAdded),
    /// `mfa static add`.
    StaticAdded(StaticAdded),
    /// `mfa list`.
    Devices(Vec<DeviceView>),
    /// `mfa remove` and `app-password revoke`.
    Removed(Removed),
    /// `app-password add`.
    AppPasswordAdded(AppPasswordAdded),
    /// `app-password list`.
    AppPasswords(Vec<AppPasswordView>),
    /// `mfa policy show|set` and `app-password policy show|set`.
    Policy(PolicyView),
    /// `session list`.
    Sessions(Vec<SessionView>),
}

/// One session of `session list`: an LDAP connection bound as a user (and,
/// with the portal, a signed-in browser).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    /// What `session end` takes.
    pub id: String,
    /// `ldap` (or `portal`).
    pub kind: String,
    pub username: String,
    /// The client's address.
    pub address: String,
    /// When it bound (or signed in), RFC 3339.
    pub created: Option<String>,
    /// Its last request, RFC 3339.
    pub last_seen: Option<String>,
    /// The browser of a portal session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl AdminAnswer {
    /// The JSON document: what the admin socket carries and `--json`
    /// prints. It is built as a [`Value`], whose objects keep their keys
    /// sorted, so the document's text does not depend on the order of the
    /// views' fields.
    pub fn to_json(&self) -> serde_json::Result<Value> {
        serde_json::to_value(self)
    }
}

/// `{"ok": true, "changed": …, "user": {…}}`: the user after the change
/// (before it, for `user delete`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserChanged {
    /// Always `true`: a refused change is an error, not an answer.
    pub ok: bool,
    /// `false` when the user already was as asked.
    pub changed: bool,
    pub user: UserView,
}

impl UserChanged {
    pub fn new(changed: bool, user: UserView) -> UserChanged {
        UserChanged {
            ok: true,
            changed,
            user,
        }
    }
}

/// `{"ok": true, "changed": …, "group": {…}}`: the group after the change
/// (before it, for `group delete`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupChanged {
    /// Always `true`: a refused change is an error, not an answer.
    pub ok: bool,
    /// `false` when the group already was as asked.
    pub changed: bool,
    pub group: GroupView,
}

impl GroupChanged {
    pub fn new(changed: bool, group: GroupView) -> GroupChanged {
        GroupChanged {
            ok: true,
            changed,
            group,
        }
    }
}

/// `{"ok": true, "changed": true, "id": …}`: a device or app password was
/// removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// Always `true`.
    pub ok: bool,
    /// Always `true`: removing what is not there is an error.
    pub changed: bool,
    pub id: String,
}

impl Removed {
    pub fn new(id: String) -> Removed {
        Removed {
            ok: true,
            changed: true,
            id,
        }
    }
}

/// A timestamp as RFC 3339 text, e.g. `2025-01-31T12:00:00Z`; `None` when
/// it is out of range.
pub(in crate::account) fn rfc3339(ts: Timestamp) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            rfc3339(1_700_000_000).as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(rfc3339(i64::MAX), None);
    }
}
