//! Users and groups as admin answers show them: [`UserView`] and
//! [`GroupView`], and the [`Names`] that builds them from store records.
//!
//! Built from store records only: password hashes and other credentials
//! live elsewhere in the store and are never read here.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

use super::rfc3339;
use crate::account::{AccountError, AdminContext};
use crate::store::{Group, GroupId, Member, User, UserId};

/// A user: `user show`, an element of `user list`, and the `user` of a
/// [`UserChanged`](super::UserChanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub dn: String,
    /// `null` when not set.
    pub full_name: Option<String>,
    /// `null` when not set.
    pub email: Option<String>,
    pub uid_number: u32,
    pub gid_number: u32,
    pub disabled: bool,
    /// Names of the groups the user is a direct member of, sorted.
    pub groups: Vec<String>,
    /// Attributes set with `user set-attr`, by canonical LDAP name.
    pub attrs: BTreeMap<String, String>,
    /// RFC 3339 times; `null` only for a timestamp out of range.
    pub created: Option<String>,
    pub modified: Option<String>,
    /// When the password was last set; `null` when it never was (the user
    /// cannot bind).
    pub pwd_changed: Option<String>,
}

/// A group: `group show`, an element of `group list`, and the `group` of a
/// [`GroupChanged`](super::GroupChanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    pub id: String,
    pub name: String,
    pub dn: String,
    pub gid_number: u32,
    /// `null` when not set.
    pub description: Option<String>,
    /// Usernames of the direct members, sorted.
    pub members: Vec<String>,
    /// Names of the groups that are direct members, sorted.
    pub child_groups: Vec<String>,
    /// Names of the groups this one is a direct member of, sorted.
    pub parent_groups: Vec<String>,
    /// RFC 3339 times; `null` only for a timestamp out of range.
    pub created: Option<String>,
    pub modified: Option<String>,
}

/// Resolves ids to names, remembering them, so a list costs one lookup per
/// distinct group or user rather than one per membership.
pub(in crate::account) struct Names<'a> {
    ctx: &'a AdminContext,
    users: HashMap<UserId, Option<String>>,
    groups: HashMap<GroupId, Option<String>>,
}

impl<'a> Names<'a> {
    pub(in crate::account) fn new(ctx: &'a AdminContext) -> Names<'a> {
        Names {
            ctx,
            users: HashMap::new(),
            groups: HashMap::new(),
        }
    }

    fn username(&mut self, id: UserId) -> Result<Option<String>, AccountError> {
        if let Some(name) = self.users.get(&id) {
            return Ok(name.clone());
        }
        let name = self.ctx.store.user(id)?.map(|u| u.username);
        self.users.insert(id, name.clone());
        Ok(name)
    }

    fn group_name(&mut self, id: GroupId) -> Result<Option<String>, AccountError> {
        if let Some(name) = self.groups.get(&id) {
            return Ok(name.clone());
        }
        let name = self.ctx.store.group(id)?.map(|g| g.name);
        self.groups.insert(id, name.clone());
        Ok(name)
    }

    /// Names of the groups `member` is a direct member of, sorted.
    fn parents(&mut self, member: Member) -> Result<Vec<String>, AccountError> {
        let mut names = Vec::new();
        for id in self.ctx.store.groups_of(member)? {
            // A group deleted meanwhile is simply not shown.
            if let Some(name) = self.group_name(id)? {
                names.push(name);
            }
        }
        sort_names(&mut names);
        Ok(names)
    }

    pub(in crate::account) fn user(&mut self, user: &User) -> Result<UserView, AccountError> {
        let groups = self.parents(Member::User(user.id))?;
        Ok(UserView {
            id: user.id.to_string(),
            username: user.username.clone(),
            dn: user_dn(&user.username, &self.ctx.base_dn),
            full_name: user.full_name.clone(),
            email: user.email.clone(),
            uid_number: user.uid_number,
            gid_number: user.gid_number,
            disabled: user.disabled,
            groups,
            attrs: user
                .attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created: rfc3339(user.created),
            modified: rfc3339(user.modified),
            pwd_changed: user.pwd_changed.and_then(rfc3339),
        })
    }

    pub(in crate::account) fn group(&mut self, group: &Group) -> Result<GroupView, AccountError> {
        let mut members = Vec::new();
        let mut children = Vec::new();
        for member in self.ctx.store.members(group.id)? {
            match member {
                Member::User(id) => members.extend(self.username(id)?),
                Member::Group(id) => children.extend(self.group_name(id)?),
            }
        }
        sort_names(&mut members);
        sort_names(&mut children);
        let parents = self.parents(Member::Group(group.id))?;
        Ok(GroupView {
            id: group.id.to_string(),
            name: group.name.clone(),
            dn: group_dn(&group.name, &self.ctx.base_dn),
            gid_number: group.gid_number,
            description: group.description.clone(),
            members,
            child_groups: children,
            parent_groups: parents,
            created: rfc3339(group.created),
            modified: rfc3339(group.modified),
        })
    }
}

fn sort_names(names: &mut [String]) {
    names.sort_by_cached_key(|n| n.to_lowercase());
}

fn user_dn(username: &str, base_dn: &str) -> String {
    format!("cn={},ou=users,{base_dn}", escape_dn_value(username))
}

fn group_dn(name: &str, base_dn: &str) -> String {
    format!("cn={},ou=groups,{base_dn}", escape_dn_value(name))
}

/// Escapes an attribute value for a DN string (RFC 4514 section 2.4).
fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns() {
        assert_eq!(
            user_dn("alice", "dc=example,dc=com"),
            "cn=alice,ou=users,dc=example,dc=com"
        );
        assert_eq!(
            group_dn("ldap-search", "o=x"),
            "cn=ldap-search,ou=groups,o=x"
        );
        assert_eq!(escape_dn_value("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_dn_value(" #x "), "\\ #x\\ ");
        assert_eq!(escape_dn_value("#x"), "\\#x");
    }
}
