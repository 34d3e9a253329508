//! Users and groups as the JSON objects that admin commands answer with.
//!
//! Built from store records only: password hashes and other credentials
//! live elsewhere in the store and are never read here.

use serde_json::{json, Map, Value};
use std::collections::HashMap;

use super::{AdminContext, AdminError};
use crate::store::{Group, GroupId, Member, Timestamp, User, UserId};

/// Resolves ids to names, remembering them, so a list costs one lookup per
/// distinct group or user rather than one per membership.
pub(super) struct Names<'a> {
    ctx: &'a AdminContext,
    users: HashMap<UserId, Option<String>>,
    groups: HashMap<GroupId, Option<String>>,
}

impl<'a> Names<'a> {
    pub(super) fn new(ctx: &'a AdminContext) -> Names<'a> {
        Names {
            ctx,
            users: HashMap::new(),
            groups: HashMap::new(),
        }
    }

    fn username(&mut self, id: UserId) -> Result<Option<String>, AdminError> {
        if let Some(name) = self.users.get(&id) {
            return Ok(name.clone());
        }
        let name = self.ctx.store.user(id)?.map(|u| u.username);
        self.users.insert(id, name.clone());
        Ok(name)
    }

    fn group_name(&mut self, id: GroupId) -> Result<Option<String>, AdminError> {
        if let Some(name) = self.groups.get(&id) {
            return Ok(name.clone());
        }
        let name = self.ctx.store.group(id)?.map(|g| g.name);
        self.groups.insert(id, name.clone());
        Ok(name)
    }

    /// Names of the groups `member` is a direct member of, sorted.
    fn parents(&mut self, member: Member) -> Result<Vec<String>, AdminError> {
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

    /// `{id, username, dn, full_name, email, uid_number, gid_number,
    /// disabled, groups, attrs, created, modified, pwd_changed}`.
    pub(super) fn user(&mut self, user: &User) -> Result<Value, AdminError> {
        let groups = self.parents(Member::User(user.id))?;
        let attrs: Map<String, Value> = user
            .attrs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        Ok(json!({
            "id": user.id.to_string(),
            "username": user.username,
            "dn": user_dn(&user.username, &self.ctx.base_dn),
            "full_name": user.full_name,
            "email": user.email,
            "uid_number": user.uid_number,
            "gid_number": user.gid_number,
            "disabled": user.disabled,
            "groups": groups,
            "attrs": attrs,
            "created": rfc3339(user.created),
            "modified": rfc3339(user.modified),
            "pwd_changed": user.pwd_changed.map(rfc3339),
        }))
    }

    /// `{id, name, dn, gid_number, description, members, child_groups,
    /// parent_groups, created, modified}`; members are usernames.
    pub(super) fn group(&mut self, group: &Group) -> Result<Value, AdminError> {
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
        Ok(json!({
            "id": group.id.to_string(),
            "name": group.name,
            "dn": group_dn(&group.name, &self.ctx.base_dn),
            "gid_number": group.gid_number,
            "description": group.description,
            "members": members,
            "child_groups": children,
            "parent_groups": parents,
            "created": rfc3339(group.created),
            "modified": rfc3339(group.modified),
        }))
    }
}

fn sort_names(names: &mut [String]) {
    names.sort_by_cached_key(|n| n.to_lowercase());
}

pub(super) fn user_dn(username: &str, base_dn: &str) -> String {
    format!("cn={},ou=users,{base_dn}", escape_dn_value(username))
}

pub(super) fn group_dn(name: &str, base_dn: &str) -> String {
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

/// A timestamp as RFC 3339 text, e.g. `2025-01-31T12:00:00Z`.
pub(super) fn rfc3339(ts: Timestamp) -> Value {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(Value::Null, Value::String)
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

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), json!("1970-01-01T00:00:00Z"));
        assert_eq!(rfc3339(1_700_000_000), json!("2023-11-14T22:13:20Z"));
        assert_eq!(rfc3339(i64::MAX), Value::Null);
    }
}
