//! Groups and memberships in sled: records, their indexes (name,
//! gidNumber), both membership trees, nesting without cycles.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use sled::transaction::Transactional;
use sled::Tree;
use uuid::Uuid;

use super::{
    abort, backend, keys, member_label, name_key, once, retrying, settle, tx_allocate,
    tx_check_and_bump_epoch, tx_group, tx_put_group, tx_touch_group, validate, SledStore, EMPTY,
    FIRST_GID_NUMBER, META_NEXT_GID,
};
use crate::store::{now, Group, GroupId, Member, Result, StoreError, UserId};

impl SledStore {
    /// Creates a group, allocating id, gidNumber and timestamps.
    ///
    /// The gidNumber comes from a counter that only goes up, and skips any
    /// number that a user already holds as uidNumber (users' private group
    /// numbers), so the two ranges never collide.
    pub fn create_group(&self, name: &str, description: Option<String>) -> Result<Group> {
        self.committed(self.create_group_uncommitted(name, description))
    }

    pub(super) fn create_group_uncommitted(
        &self,
        name: &str,
        description: Option<String>,
    ) -> Result<Group> {
        validate::name("group", name)?;
        if let Some(description) = &description {
            validate::description(description)?;
        }
        let t = &self.t;
        let id = GroupId(Uuid::new_v4());
        let created = now();
        let hint = self.allocation_hint(META_NEXT_GID, FIRST_GID_NUMBER)?;
        once(
            &self.t,
            (
                &t.groups,
                &t.idx_group_name,
                &t.idx_gid,
                &t.idx_uid,
                &t.meta,
            )
                .transaction(|(groups, idx_group_name, idx_gid, idx_uid, meta)| {
                    let key = name_key(name);
                    if idx_group_name.get(&*key)?.is_some() {
                        return Err(abort(StoreError::AlreadyExists(format!("group {name}"))));
                    }
                    if groups.get(keys::group_key(id))?.is_some() {
                        return Err(abort(StoreError::Backend(format!(
                            "group id {id} collides"
                        ))));
                    }
                    let gid_number = tx_allocate(
                        meta,
                        META_NEXT_GID,
                        FIRST_GID_NUMBER,
                        idx_gid,
                        idx_uid,
                        "gid",
                        hint,
                    )?;
                    let group = Group {
                        id,
                        name: name.to_owned(),
                        gid_number,
                        description: description.clone(),
                        created,
                        modified: created,
                    };
                    tx_put_group(groups, &group)?;
                    let id_bytes = keys::group_key(id);
                    idx_group_name.insert(key, &id_bytes)?;
                    idx_gid.insert(&keys::number_key(gid_number), &id_bytes)?;
                    Ok(group)
                }),
        )
    }

    pub fn group(&self, id: GroupId) -> Result<Option<Group>> {
        Ok(self.group_shared(id)?.map(Arc::unwrap_or_clone))
    }

    /// The group's record as stored now, decoded once per stored version
    /// (see `records.rs`).
    pub fn group_shared(&self, id: GroupId) -> Result<Option<Arc<Group>>> {
        self.t.group_records.read(
            &self.t.groups,
            &keys::group_key(id),
            id,
            "group",
            self.writes(),
        )
    }

    pub(super) fn group_by_index(&self, index: &Tree, key: &[u8]) -> Result<Option<Group>> {
        match Self::id_by_index(index, key)? {
            Some(id) => self.group(GroupId(id)),
            None => Ok(None),
        }
    }

    /// The id of the group with this name (case-insensitive), from the
    /// index alone (see [`SledStore::user_id_by_name`]).
    pub fn group_id_by_name(&self, name: &str) -> Result<Option<GroupId>> {
        Ok(Self::id_by_index(&self.t.idx_group_name, &name_key(name))?.map(GroupId))
    }

    /// [`SledStore::group_id_by_name`] by gidNumber.
    pub fn group_id_by_gid_number(&self, gid_number: u32) -> Result<Option<GroupId>> {
        Ok(Self::id_by_index(&self.t.idx_gid, &keys::number_key(gid_number))?.map(GroupId))
    }

    /// Case-insensitive.
    pub fn group_by_name(&self, name: &str) -> Result<Option<Group>> {
        self.group_by_index(&self.t.idx_group_name, &name_key(name))
    }

    pub fn group_by_gid_number(&self, gid_number: u32) -> Result<Option<Group>> {
        self.group_by_index(&self.t.idx_gid, &keys::number_key(gid_number))
    }

    /// All groups, ordered by lowercase name.
    pub fn groups(&self) -> Result<Vec<Group>> {
        let mut out = Vec::new();
        for entry in self.t.idx_group_name.iter() {
            let (_, id) = entry.map_err(backend)?;
            if let Some(group) = self.group(GroupId(keys::uuid(&id)?))? {
                out.push(group);
            }
        }
        Ok(out)
    }

    /// Removes the group and every membership to and from it.
    pub fn delete_group(&self, id: GroupId) -> Result<()> {
        self.committed(self.delete_group_uncommitted(id))
    }

    pub(super) fn delete_group_uncommitted(&self, id: GroupId) -> Result<()> {
        let t = &self.t;
        let as_member = Member::Group(id);
        let deleted = retrying("deleting a group", || {
            let seen = self.stored_epoch()?;
            let children = self.members(id)?;
            let parents = self.groups_of(as_member)?;
            settle(
                &self.t,
                (
                    &t.groups,
                    &t.idx_group_name,
                    &t.idx_gid,
                    &t.members,
                    &t.member_of,
                    &t.meta,
                )
                    .transaction(
                        |(groups, idx_group_name, idx_gid, members, member_of, meta)| {
                            tx_check_and_bump_epoch(meta, Some(seen))?;
                            let group = tx_group(groups, id)?.ok_or_else(|| {
                                abort(StoreError::NotFound(format!("group {id}")))
                            })?;
                            for &child in &children {
                                members.remove(keys::members_key(id, child))?;
                                member_of.remove(keys::member_of_key(child, id))?;
                            }
                            let at = now();
                            for &parent in &parents {
                                members.remove(keys::members_key(parent, as_member))?;
                                member_of.remove(keys::member_of_key(as_member, parent))?;
                                tx_touch_group(groups, parent, at)?;
                            }
                            groups.remove(&keys::group_key(id))?;
                            idx_group_name.remove(name_key(&group.name))?;
                            idx_gid.remove(&keys::number_key(group.gid_number))?;
                            Ok(())
                        },
                    ),
            )
        });
        deleted?;
        self.forget_group_policy(id)?;
        self.t
            .group_attrs
            .remove(keys::group_key(id))
            .map(|_| ())
            .map_err(super::backend)
    }

    /// The group's portal attributes (`group set-attr`).
    pub fn group_attrs(&self, id: GroupId) -> Result<BTreeMap<String, String>> {
        match self
            .t
            .group_attrs
            .get(keys::group_key(id))
            .map_err(super::backend)?
        {
            Some(b) => super::decode(format_args!("attributes of group {id}"), &b),
            None => Ok(BTreeMap::new()),
        }
    }

    /// Sets (`Some`) or removes (`None`) one attribute of an existing
    /// group; `Ok(false)` when nothing changed.
    pub fn set_group_attr(&self, id: GroupId, key: &str, value: Option<&str>) -> Result<bool> {
        let t = &self.t;
        let written = (&t.groups, &t.group_attrs).transaction(|(groups, attrs)| {
            if groups.get(keys::group_key(id))?.is_none() {
                return Err(abort(StoreError::NotFound(format!("group {id}"))));
            }
            let mut map: BTreeMap<String, String> = match attrs.get(keys::group_key(id))? {
                Some(b) => {
                    super::decode(format_args!("attributes of group {id}"), &b).map_err(abort)?
                }
                None => BTreeMap::new(),
            };
            let before = map.clone();
            match value {
                Some(v) => {
                    map.insert(key.to_string(), v.to_string());
                }
                None => {
                    map.remove(key);
                }
            }
            if map == before {
                return Ok(false);
            }
            if map.is_empty() {
                attrs.remove(&keys::group_key(id))?;
            } else {
                let bytes = super::encode("group attributes", &map).map_err(abort)?;
                attrs.insert(&keys::group_key(id), bytes)?;
            }
            Ok(true)
        });
        self.committed(super::once(&self.t, written))
    }

    /// Adds a direct member. `Ok(false)` if it already was one. Refuses a
    /// child group that would create a cycle with `StoreError::Invalid`.
    pub fn add_member(&self, group: GroupId, member: Member) -> Result<bool> {
        self.committed(self.add_member_uncommitted(group, member))
    }

    pub(super) fn add_member_uncommitted(&self, group: GroupId, member: Member) -> Result<bool> {
        if member == Member::Group(group) {
            let name = self
                .group(group)?
                .map_or_else(|| group.to_string(), |g| g.name);
            return Err(StoreError::Invalid(format!(
                "adding group {name} to itself would create a cycle"
            )));
        }
        let t = &self.t;
        retrying("adding a member", || {
            // A child group must not reach `group` downward. The walk is
            // outside the transaction; the epoch check makes the commit
            // fail if any membership changed after it started.
            let seen = match member {
                Member::Group(child) => {
                    let seen = self.stored_epoch()?;
                    if self.descendant_groups(child)?.contains(&group) {
                        let name = |id: GroupId| -> Result<String> {
                            Ok(self.group(id)?.map_or_else(|| id.to_string(), |g| g.name))
                        };
                        return Err(StoreError::Invalid(format!(
                            "adding group {} to {} would create a cycle",
                            name(child)?,
                            name(group)?
                        )));
                    }
                    Some(seen)
                }
                Member::User(_) => None,
            };
            settle(
                &self.t,
                (&t.groups, &t.users, &t.members, &t.member_of, &t.meta).transaction(
                    |(groups, users, members, member_of, meta)| {
                        let mut container = tx_group(groups, group)?
                            .ok_or_else(|| abort(StoreError::NotFound(format!("group {group}"))))?;
                        let exists = match member {
                            Member::User(u) => users.get(keys::user_key(u))?.is_some(),
                            Member::Group(g) => groups.get(keys::group_key(g))?.is_some(),
                        };
                        if !exists {
                            return Err(abort(StoreError::NotFound(member_label(member))));
                        }
                        let key = keys::members_key(group, member);
                        if members.get(&key)?.is_some() {
                            return Ok(false);
                        }
                        tx_check_and_bump_epoch(meta, seen)?;
                        members.insert(key, EMPTY)?;
                        member_of.insert(keys::member_of_key(member, group), EMPTY)?;
                        container.modified = now();
                        tx_put_group(groups, &container)?;
                        Ok(true)
                    },
                ),
            )
        })
    }

    /// `Ok(false)` if it was not a member.
    pub fn remove_member(&self, group: GroupId, member: Member) -> Result<bool> {
        self.committed(self.remove_member_uncommitted(group, member))
    }

    pub(super) fn remove_member_uncommitted(&self, group: GroupId, member: Member) -> Result<bool> {
        let t = &self.t;
        once(
            &self.t,
            (&t.groups, &t.members, &t.member_of, &t.meta).transaction(
                |(groups, members, member_of, meta)| {
                    let mut container = tx_group(groups, group)?
                        .ok_or_else(|| abort(StoreError::NotFound(format!("group {group}"))))?;
                    let key = keys::members_key(group, member);
                    if members.get(&key)?.is_none() {
                        return Ok(false);
                    }
                    tx_check_and_bump_epoch(meta, None)?;
                    members.remove(key)?;
                    member_of.remove(keys::member_of_key(member, group))?;
                    container.modified = now();
                    tx_put_group(groups, &container)?;
                    Ok(true)
                },
            ),
        )
    }

    /// Direct members of a group (users and child groups): child groups
    /// first, then users, each in id order.
    pub fn members(&self, group: GroupId) -> Result<Vec<Member>> {
        let mut out = Vec::new();
        for entry in self.t.members.scan_prefix(keys::group_key(group)) {
            let (key, _) = entry.map_err(backend)?;
            out.push(keys::parse_members_key(&key)?);
        }
        Ok(out)
    }

    /// Groups of which `member` is a direct member.
    pub fn groups_of(&self, member: Member) -> Result<Vec<GroupId>> {
        let mut out = Vec::new();
        for entry in self.t.member_of.scan_prefix(keys::member_key(member)) {
            let (key, _) = entry.map_err(backend)?;
            out.push(keys::parse_member_of_key(&key)?);
        }
        Ok(out)
    }

    /// Child groups of `group`, without its users.
    pub(super) fn child_groups(&self, group: GroupId) -> Result<Vec<GroupId>> {
        let mut out = Vec::new();
        for entry in self
            .t
            .members
            .scan_prefix(keys::members_prefix_of_kind(group, keys::KIND_GROUP))
        {
            let (key, _) = entry.map_err(backend)?;
            if let Member::Group(child) = keys::parse_members_key(&key)? {
                out.push(child);
            }
        }
        Ok(out)
    }

    /// `group` and every group nested in it at any depth, each once.
    pub(super) fn descendant_groups(&self, group: GroupId) -> Result<Vec<GroupId>> {
        crate::domain::rules::walk(group, |g| self.child_groups(g))
    }

    /// Every group `member` belongs to, directly or through nested groups,
    /// each once, nearest first. Safe against cycles (which the store
    /// refuses to create anyway).
    pub fn transitive_groups_of(&self, member: Member) -> Result<Vec<GroupId>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut queue: VecDeque<GroupId> = self.groups_of(member)?.into();
        while let Some(g) = queue.pop_front() {
            if !seen.insert(g) {
                continue;
            }
            out.push(g);
            queue.extend(self.groups_of(Member::Group(g))?);
        }
        // A cycle through `member` itself would list it as its own group.
        if let Member::Group(own) = member {
            out.retain(|&g| g != own);
        }
        Ok(out)
    }

    /// Every user in `group` or in any group nested in it, each once.
    pub fn transitive_user_members(&self, group: GroupId) -> Result<Vec<UserId>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for g in self.descendant_groups(group)? {
            for entry in self
                .t
                .members
                .scan_prefix(keys::members_prefix_of_kind(g, keys::KIND_USER))
            {
                let (key, _) = entry.map_err(backend)?;
                if let Member::User(u) = keys::parse_members_key(&key)? {
                    if seen.insert(u) {
                        out.push(u);
                    }
                }
            }
        }
        Ok(out)
    }
}
