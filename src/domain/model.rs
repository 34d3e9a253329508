//! Records the store keeps: users, groups and memberships.
//!
//! These are plain data types shared by every module. They carry no secrets:
//! password hashes live in their own tree and are reached only through
//! [`crate::store::Backend::password_hash`], so nothing that turns a record into
//! an LDAP entry can leak one.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Seconds since the Unix epoch (UTC).
pub type Timestamp = i64;

/// Current time as a [`Timestamp`]: whole seconds, rounded down. Read
/// from the system clock, not through `OffsetDateTime::now_utc`, whose
/// date fields cost more than the clock: the connection registry stamps
/// every operation with it.
pub fn now() -> Timestamp {
    use std::time::{SystemTime, UNIX_EPOCH};
    let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => secs(since),
        // A clock before 1970: rounded down, as unix_timestamp does.
        Err(e) => {
            let before = e.duration();
            -secs(before) - i64::from(before.subsec_nanos() > 0)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UserId(pub Uuid);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupId(pub Uuid);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A user or group name as names are compared (unique case-insensitively:
/// ASCII letters folded), borrowed when it is in that form already, so a
/// lookup copies nothing.
pub fn folded_name(name: &str) -> std::borrow::Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// A user account. Served as `cn=<username>,ou=users,<base>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    /// Login name; unique case-insensitively; served as `cn` and `uid`.
    pub username: String,
    /// Served as `displayName`; `sn` falls back to the last word of it.
    pub full_name: Option<String>,
    /// Served as `mail`; unique case-insensitively when set.
    pub email: Option<String>,
    /// Allocated from 2000 upward, never reused.
    pub uid_number: u32,
    /// Primary group number served as `gidNumber`.
    pub gid_number: u32,
    /// A disabled user cannot bind; served as `ak-active: FALSE`.
    pub disabled: bool,
    /// Extra attributes set with `user set-attr` (keys are canonical LDAP
    /// attribute names such as `sn`, `givenName`, `loginShell`).
    pub attrs: crate::domain::attrs::Attrs,
    pub created: Timestamp,
    pub modified: Timestamp,
    /// When the password was last set; `None` when it never was.
    pub pwd_changed: Option<Timestamp>,
    /// Increased on every change to the user's credentials or status, so
    /// caches keyed on it are invalidated at once.
    pub cred_generation: u64,
}

#[cfg(test)]
impl User {
    /// A user named `name` with a new id and nothing else set (uid and
    /// gid number 2000), for tests.
    pub fn named(name: &str) -> User {
        User {
            id: UserId(Uuid::new_v4()),
            username: name.into(),
            full_name: None,
            email: None,
            uid_number: 2000,
            gid_number: 2000,
            disabled: false,
            attrs: Default::default(),
            created: 0,
            modified: 0,
            pwd_changed: None,
            cred_generation: 0,
        }
    }
}

/// What `Store::create_user` needs; the store fills in the rest.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewUser {
    pub username: String,
    pub full_name: Option<String>,
    pub email: Option<String>,
}

/// A group. Served as `cn=<name>,ou=groups,<base>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: GroupId,
    /// Unique case-insensitively; served as `cn`.
    pub name: String,
    /// Allocated from 4000 upward, never reused.
    pub gid_number: u32,
    pub description: Option<String>,
    pub created: Timestamp,
    pub modified: Timestamp,
}

/// A direct member of a group: a user or a child group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Member {
    User(UserId),
    Group(GroupId),
}

/// A group with its direct members, as read at one version of the
/// memberships: the change set [`crate::store::Backend::replace_group`]
/// writes only if that version is still current.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSnapshot {
    pub group: Group,
    pub members: std::collections::BTreeSet<Member>,
    /// The membership version (epoch) read before the members; the write
    /// is refused as stale if it moved. Set by the backend.
    pub(crate) epoch: u64,
}

#[cfg(test)]
mod tests {
    /// The system clock read directly gives the seconds the date library
    /// gives.
    #[test]
    fn now_is_the_unix_time_in_seconds() {
        let before = time::OffsetDateTime::now_utc().unix_timestamp();
        let now = super::now();
        let after = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!(before <= now && now <= after, "{before} {now} {after}");
    }
}
