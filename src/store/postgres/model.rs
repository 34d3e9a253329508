//! The in-process read model of one instance: every record searches and
//! binds read (users with their password hashes, groups with their
//! attributes and policies, memberships in both directions, devices as
//! bind sees them, settings, the membership epoch), held in memory and
//! kept in step with the database by the change feed (`feed`).
//!
//! A change row names a record, never its new value: applying it reads
//! that record again as it is committed now ([`Loaded::read`]), so the
//! order in which changes arrive does not matter, and a record read twice
//! is simply the newer state. [`Data::load`] reads everything at once.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use tokio_postgres::GenericClient;

use super::groups::{group_row, members_of, GROUP_COLUMNS};
use super::mfa::{device_row, policy_of, policy_row, DEVICE_COLUMNS};
use super::snapshot::{members_of_all, settings_of};
use super::users::{email_key, name_key, user_row, USER_COLUMNS};
use super::{to_u64, TxResult};
use crate::store::mfa::{Device, GroupPolicy};
use crate::store::{Group, GroupId, Member, User, UserId};

/// Everything the model holds, with the indexes the reads need.
#[derive(Default)]
pub(super) struct Data {
    pub users: HashMap<UserId, Arc<User>>,
    pub hashes: HashMap<UserId, String>,
    /// Lowercase name → id, in the order `users()` lists them.
    pub user_by_name: BTreeMap<String, UserId>,
    pub user_by_email: HashMap<String, UserId>,
    pub user_by_uid: HashMap<u32, UserId>,
    pub devices: HashMap<UserId, Vec<Device>>,
    pub groups: HashMap<GroupId, Arc<Group>>,
    pub group_by_name: BTreeMap<String, GroupId>,
    pub group_by_gid: HashMap<u32, GroupId>,
    pub attrs: HashMap<GroupId, BTreeMap<String, String>>,
    pub policies: BTreeMap<GroupId, GroupPolicy>,
    /// Direct members, child groups first, then users, each in id order
    /// (as the database answers them).
    pub members: HashMap<GroupId, Vec<Member>>,
    /// The reverse: the groups a member is directly in, in id order.
    pub parents: HashMap<Member, BTreeSet<GroupId>>,
    pub settings: BTreeMap<String, String>,
    pub epoch: u64,
}

/// Records read again for a batch of changes: `None` where the record is
/// gone.
#[derive(Default)]
pub(super) struct Loaded {
    users: Vec<(UserId, Option<UserWithHash>)>,
    devices: Vec<(UserId, Vec<Device>)>,
    groups: Vec<(GroupId, Option<LoadedGroup>)>,
    members: Vec<(GroupId, Vec<Member>)>,
    settings: Vec<(String, Option<String>)>,
    epoch: Option<u64>,
}

/// A user's record and password hash, if one is set.
type UserWithHash = (User, Option<String>);

struct LoadedGroup {
    group: Group,
    attrs: BTreeMap<String, String>,
    policy: GroupPolicy,
}

/// What a batch of change rows asks to read again, each record once.
#[derive(Default)]
pub(super) struct Wanted {
    pub users: BTreeSet<UserId>,
    pub devices: BTreeSet<UserId>,
    pub groups: BTreeSet<GroupId>,
    pub members: BTreeSet<GroupId>,
    pub settings: BTreeSet<String>,
    pub epoch: bool,
}

impl Wanted {
    /// Notes one change row; rows of kinds or keys this version does not
    /// know are skipped (a newer instance may write them).
    pub fn note(&mut self, kind: &str, key: &str) {
        let id = || uuid::Uuid::parse_str(key).ok();
        match kind {
            "user" => self.users.extend(id().map(UserId)),
            "devices" => self.devices.extend(id().map(UserId)),
            "group" => self.groups.extend(id().map(GroupId)),
            "members" => self.members.extend(id().map(GroupId)),
            "setting" => {
                self.settings.insert(key.to_string());
            }
            "epoch" => self.epoch = true,
            _ => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.devices.is_empty()
            && self.groups.is_empty()
            && self.members.is_empty()
            && self.settings.is_empty()
            && !self.epoch
    }
}

async fn user_with_hash(c: &impl GenericClient, id: UserId) -> TxResult<Option<UserWithHash>> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {USER_COLUMNS}, c.phc FROM users \
                 LEFT JOIN credentials c ON c.user_id = users.id WHERE users.id = $1"
            ),
            &[&id.0],
        )
        .await?;
    row.map(|r| Ok((user_row(&r)?, r.try_get("phc")?)))
        .transpose()
}

async fn epoch_of(c: &impl GenericClient) -> TxResult<u64> {
    let v: i64 = c
        .query_one(
            "SELECT value FROM counters WHERE name = 'membership_epoch'",
            &[],
        )
        .await?
        .try_get("value")?;
    to_u64(v, "membership epoch")
}

impl Loaded {
    /// Reads the `wanted` records as committed now.
    pub async fn read(c: &impl GenericClient, wanted: &Wanted) -> TxResult<Loaded> {
        let mut out = Loaded::default();
        // The epoch first: a cached value is never older than its epoch.
        if wanted.epoch {
            out.epoch = Some(epoch_of(c).await?);
        }
        for &id in &wanted.users {
            out.users.push((id, user_with_hash(c, id).await?));
        }
        for &id in &wanted.devices {
            out.devices.push((id, super::mfa::devices_of(c, id).await?));
        }
        for &id in &wanted.groups {
            let row = c
                .query_opt(
                    &format!("SELECT {GROUP_COLUMNS} FROM groups WHERE id = $1"),
                    &[&id.0],
                )
                .await?;
            let group = match row {
                None => None,
                Some(row) => Some(LoadedGroup {
                    group: group_row(&row)?,
                    attrs: attrs_of(c, id).await?,
                    policy: policy_of(c, id).await?,
                }),
            };
            out.groups.push((id, group));
        }
        for &id in &wanted.members {
            out.members.push((id, members_of(c, id).await?));
        }
        for key in &wanted.settings {
            let row = c
                .query_opt("SELECT value FROM settings WHERE key = $1", &[key])
                .await?;
            out.settings
                .push((key.clone(), row.map(|r| r.try_get("value")).transpose()?));
        }
        Ok(out)
    }
}

async fn attrs_of(c: &impl GenericClient, id: GroupId) -> TxResult<BTreeMap<String, String>> {
    c.query(
        "SELECT key, value FROM group_attrs WHERE group_id = $1",
        &[&id.0],
    )
    .await?
    .iter()
    .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
    .collect()
}

impl Data {
    /// Every record, in a few queries. The caller runs them in one
    /// `REPEATABLE READ` transaction.
    pub async fn load(c: &impl GenericClient) -> TxResult<Data> {
        let mut d = Data {
            epoch: epoch_of(c).await?,
            ..Data::default()
        };
        for row in c
            .query(
                &format!(
                    "SELECT {USER_COLUMNS}, c.phc FROM users \
                     LEFT JOIN credentials c ON c.user_id = users.id"
                ),
                &[],
            )
            .await?
        {
            let phc: Option<String> = row.try_get("phc")?;
            d.put_user(user_row(&row)?, phc);
        }
        for row in c
            .query(
                &format!("SELECT user_id, {DEVICE_COLUMNS} FROM mfa_devices ORDER BY created, id"),
                &[],
            )
            .await?
        {
            d.devices
                .entry(UserId(row.try_get("user_id")?))
                .or_default()
                .push(device_row(&row)?);
        }
        for row in c
            .query(&format!("SELECT {GROUP_COLUMNS} FROM groups"), &[])
            .await?
        {
            d.put_group(group_row(&row)?);
        }
        for row in c
            .query("SELECT group_id, key, value FROM group_attrs", &[])
            .await?
        {
            d.attrs
                .entry(GroupId(row.try_get("group_id")?))
                .or_default()
                .insert(row.try_get("key")?, row.try_get("value")?);
        }
        for row in c
            .query(
                "SELECT group_id, mfa, app_passwords FROM group_policies",
                &[],
            )
            .await?
        {
            d.policies
                .insert(GroupId(row.try_get("group_id")?), policy_row(&row)?);
        }
        let members = members_of_all(c).await?;
        for (group, list) in members {
            d.set_members(group, list);
        }
        d.settings = settings_of(c).await?.into_iter().collect();
        Ok(d)
    }

    fn put_user(&mut self, user: User, phc: Option<String>) {
        self.remove_user(user.id);
        let id = user.id;
        self.user_by_name.insert(name_key(&user.username), id);
        if let Some(e) = &user.email {
            self.user_by_email.insert(email_key(e), id);
        }
        self.user_by_uid.insert(user.uid_number, id);
        if let Some(phc) = phc {
            self.hashes.insert(id, phc);
        }
        self.users.insert(id, Arc::new(user));
    }

    fn remove_user(&mut self, id: UserId) {
        if let Some(old) = self.users.remove(&id) {
            let key = name_key(&old.username);
            if self.user_by_name.get(&key) == Some(&id) {
                self.user_by_name.remove(&key);
            }
            if let Some(e) = &old.email {
                let key = email_key(e);
                if self.user_by_email.get(&key) == Some(&id) {
                    self.user_by_email.remove(&key);
                }
            }
            if self.user_by_uid.get(&old.uid_number) == Some(&id) {
                self.user_by_uid.remove(&old.uid_number);
            }
        }
        self.hashes.remove(&id);
    }

    fn put_group(&mut self, group: Group) {
        self.remove_group_record(group.id);
        self.group_by_name.insert(name_key(&group.name), group.id);
        self.group_by_gid.insert(group.gid_number, group.id);
        self.groups.insert(group.id, Arc::new(group));
    }

    fn remove_group_record(&mut self, id: GroupId) {
        if let Some(old) = self.groups.remove(&id) {
            let key = name_key(&old.name);
            if self.group_by_name.get(&key) == Some(&id) {
                self.group_by_name.remove(&key);
            }
            if self.group_by_gid.get(&old.gid_number) == Some(&id) {
                self.group_by_gid.remove(&old.gid_number);
            }
        }
    }

    /// Sets the direct members of `group`, keeping the reverse index.
    fn set_members(&mut self, group: GroupId, list: Vec<Member>) {
        if let Some(old) = self.members.remove(&group) {
            for m in old {
                if let Some(set) = self.parents.get_mut(&m) {
                    set.remove(&group);
                    if set.is_empty() {
                        self.parents.remove(&m);
                    }
                }
            }
        }
        if list.is_empty() {
            return;
        }
        for &m in &list {
            self.parents.entry(m).or_default().insert(group);
        }
        self.members.insert(group, list);
    }

    /// Whether the user exists and is enabled.
    fn active(&self, id: UserId) -> bool {
        self.users.get(&id).is_some_and(|u| !u.disabled)
    }

    /// The users active in `self` and not in `newer` (disabled or gone).
    pub fn gone_in(&self, newer: &Data) -> Vec<UserId> {
        self.users
            .keys()
            .copied()
            .filter(|&id| self.active(id) && !newer.active(id))
            .collect()
    }

    /// Applies records read again: each replaces (or removes) what the
    /// model held. Answers the users that were active and are disabled
    /// or gone now.
    pub fn apply(&mut self, loaded: Loaded) -> Vec<UserId> {
        let mut gone = Vec::new();
        if let Some(epoch) = loaded.epoch {
            // The epoch only grows; a read racing a newer one keeps the newer.
            self.epoch = self.epoch.max(epoch);
        }
        for (id, user) in loaded.users {
            let active = user.as_ref().is_some_and(|(u, _)| !u.disabled);
            if self.active(id) && !active {
                gone.push(id);
            }
            match user {
                Some((user, phc)) => self.put_user(user, phc),
                None => {
                    self.remove_user(id);
                    self.devices.remove(&id);
                }
            }
        }
        for (id, devices) in loaded.devices {
            if devices.is_empty() {
                self.devices.remove(&id);
            } else {
                self.devices.insert(id, devices);
            }
        }
        for (id, group) in loaded.groups {
            match group {
                Some(g) => {
                    self.put_group(g.group);
                    if g.attrs.is_empty() {
                        self.attrs.remove(&id);
                    } else {
                        self.attrs.insert(id, g.attrs);
                    }
                    if g.policy == GroupPolicy::default() {
                        self.policies.remove(&id);
                    } else {
                        self.policies.insert(id, g.policy);
                    }
                }
                None => {
                    self.remove_group_record(id);
                    self.attrs.remove(&id);
                    self.policies.remove(&id);
                }
            }
        }
        for (id, list) in loaded.members {
            self.set_members(id, list);
        }
        for (key, value) in loaded.settings {
            match value {
                Some(v) => self.settings.insert(key, v),
                None => self.settings.remove(&key),
            };
        }
        gone
    }

    pub fn members_of(&self, group: GroupId) -> Vec<Member> {
        self.members.get(&group).cloned().unwrap_or_default()
    }

    pub fn groups_of(&self, member: Member) -> Vec<GroupId> {
        self.parents
            .get(&member)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Breadth-first over the parents, nearest first, each once (as the
    /// database layer answers it).
    pub fn transitive_groups_of(&self, member: Member) -> Vec<GroupId> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut queue: VecDeque<GroupId> = self.groups_of(member).into();
        while let Some(g) = queue.pop_front() {
            if !seen.insert(g) {
                continue;
            }
            out.push(g);
            queue.extend(self.groups_of(Member::Group(g)));
        }
        if let Member::Group(own) = member {
            out.retain(|&g| g != own);
        }
        out
    }

    /// Every user in `group` or a group nested in it, each once: groups
    /// in the domain's walk order, users of each in id order.
    pub fn transitive_user_members(&self, group: GroupId) -> Vec<UserId> {
        let walk = crate::domain::rules::walk(group, |g| {
            Ok::<_, ()>(
                self.members_of(g)
                    .into_iter()
                    .filter_map(|m| match m {
                        Member::Group(c) => Some(c),
                        Member::User(_) => None,
                    })
                    .collect(),
            )
        })
        .unwrap_or_default();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for g in walk {
            for m in self.members_of(g) {
                if let Member::User(u) = m {
                    if seen.insert(u) {
                        out.push(u);
                    }
                }
            }
        }
        out
    }
}
