//! Groups in PostgreSQL: records, memberships (both directions), nesting
//! without cycles, attributes, and the membership epoch that guards them
//! (see the module documentation of `postgres`).

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use super::users::{bump_epoch, lock_epoch, name_key, touch_parents};
use super::{to_u32, to_u64, unique_violation, PgStore, TxError, TxResult};
use crate::domain::rules;
use crate::store::{
    now, validate, Group, GroupId, GroupSnapshot, Member, Result, StoreError, UserId,
    FIRST_GID_NUMBER,
};

pub(super) const GROUP_COLUMNS: &str = "id, name, gid_number, description, created, modified";

pub(super) fn group_row(row: &Row) -> TxResult<Group> {
    Ok(Group {
        id: GroupId(row.try_get("id")?),
        name: row.try_get("name")?,
        gid_number: to_u32(row.try_get("gid_number")?, "gidNumber")?,
        description: row.try_get("description")?,
        created: row.try_get("created")?,
        modified: row.try_get("modified")?,
    })
}

fn not_found(id: GroupId) -> TxError {
    TxError::Store(StoreError::NotFound(format!("group {id}")))
}

fn member_label(member: Member) -> String {
    match member {
        Member::User(u) => format!("user {u}"),
        Member::Group(g) => format!("group {g}"),
    }
}

/// The refusal of a group name or gidNumber another group holds.
fn taken(e: TxError, group: &Group) -> TxError {
    match unique_violation(&e) {
        Some("groups_name_key_key") => {
            TxError::Store(StoreError::AlreadyExists(format!("group {}", group.name)))
        }
        Some("groups_gid_number_key") => TxError::Store(StoreError::AlreadyExists(format!(
            "gidNumber {}",
            group.gid_number
        ))),
        _ => e,
    }
}

pub(super) async fn insert_group(c: &impl GenericClient, g: &Group) -> TxResult<()> {
    c.execute(
        "INSERT INTO groups (id, name, name_key, gid_number, description, created, modified) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &g.id.0,
            &g.name,
            &name_key(&g.name),
            &i64::from(g.gid_number),
            &g.description,
            &g.created,
            &g.modified,
        ],
    )
    .await
    .map_err(|e| taken(e.into(), g))?;
    Ok(())
}

pub(super) async fn update_group_row(c: &impl GenericClient, g: &Group) -> TxResult<()> {
    c.execute(
        "UPDATE groups SET name = $2, name_key = $3, gid_number = $4, description = $5, \
         created = $6, modified = $7 WHERE id = $1",
        &[
            &g.id.0,
            &g.name,
            &name_key(&g.name),
            &i64::from(g.gid_number),
            &g.description,
            &g.created,
            &g.modified,
        ],
    )
    .await
    .map_err(|e| taken(e.into(), g))?;
    Ok(())
}

async fn lock_group(c: &impl GenericClient, id: GroupId) -> TxResult<Option<Group>> {
    let row = c
        .query_opt(
            &format!("SELECT {GROUP_COLUMNS} FROM groups WHERE id = $1 FOR NO KEY UPDATE"),
            &[&id.0],
        )
        .await?;
    row.as_ref().map(group_row).transpose()
}

/// Direct members: child groups first, then users, each in id order
/// (PostgreSQL orders uuids by their bytes, as sled orders its keys).
pub(super) async fn members_of(c: &impl GenericClient, group: GroupId) -> TxResult<Vec<Member>> {
    let mut out = Vec::new();
    for row in c
        .query(
            "SELECT child_id FROM group_members WHERE group_id = $1 ORDER BY child_id",
            &[&group.0],
        )
        .await?
    {
        out.push(Member::Group(GroupId(row.try_get("child_id")?)));
    }
    for row in c
        .query(
            "SELECT user_id FROM user_members WHERE group_id = $1 ORDER BY user_id",
            &[&group.0],
        )
        .await?
    {
        out.push(Member::User(UserId(row.try_get("user_id")?)));
    }
    Ok(out)
}

async fn parents_of(c: &impl GenericClient, member: Member) -> TxResult<Vec<GroupId>> {
    let rows = match member {
        Member::User(u) => {
            c.query(
                "SELECT group_id FROM user_members WHERE user_id = $1 ORDER BY group_id",
                &[&u.0],
            )
            .await?
        }
        Member::Group(g) => {
            c.query(
                "SELECT group_id FROM group_members WHERE child_id = $1 ORDER BY group_id",
                &[&g.0],
            )
            .await?
        }
    };
    rows.iter()
        .map(|r| Ok(GroupId(r.try_get("group_id")?)))
        .collect()
}

/// `group` and every group nested in it, by the domain's walk. Every edge
/// is read first (one query): the walk itself is synchronous.
async fn descendant_groups(c: &impl GenericClient, group: GroupId) -> TxResult<Vec<GroupId>> {
    let mut edges: BTreeMap<GroupId, Vec<GroupId>> = BTreeMap::new();
    for row in c
        .query("SELECT group_id, child_id FROM group_members", &[])
        .await?
    {
        edges
            .entry(GroupId(row.try_get("group_id")?))
            .or_default()
            .push(GroupId(row.try_get("child_id")?));
    }
    rules::walk(group, |g| {
        Ok::<_, TxError>(edges.get(&g).cloned().unwrap_or_default())
    })
}

/// Refuses nesting `child` in `parent` when that closes a cycle. Runs
/// inside a transaction holding the epoch lock, so no membership changes
/// between the walk and the write.
async fn refuse_cycle(c: &impl GenericClient, parent: GroupId, child: GroupId) -> TxResult<()> {
    if child == parent || descendant_groups(c, child).await?.contains(&parent) {
        let name = async |id: GroupId| -> TxResult<String> {
            let row = c
                .query_opt("SELECT name FROM groups WHERE id = $1", &[&id.0])
                .await?;
            Ok(match row {
                Some(r) => r.try_get("name")?,
                None => id.to_string(),
            })
        };
        return Err(TxError::Store(StoreError::Invalid(format!(
            "adding group {} to {} would create a cycle",
            name(child).await?,
            name(parent).await?
        ))));
    }
    Ok(())
}

/// Inserts one membership; `Ok(false)` if it existed. NotFound when the
/// member does not exist.
async fn insert_member(c: &impl GenericClient, group: GroupId, member: Member) -> TxResult<bool> {
    let (exists_sql, insert_sql, id) = match member {
        Member::User(u) => (
            "SELECT 1 FROM users WHERE id = $1 FOR KEY SHARE",
            "INSERT INTO user_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            u.0,
        ),
        Member::Group(g) => (
            "SELECT 1 FROM groups WHERE id = $1 FOR KEY SHARE",
            "INSERT INTO group_members (group_id, child_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
            g.0,
        ),
    };
    if c.query_opt(exists_sql, &[&id]).await?.is_none() {
        return Err(TxError::Store(StoreError::NotFound(member_label(member))));
    }
    Ok(c.execute(insert_sql, &[&group.0, &id]).await? == 1)
}

async fn delete_member(c: &impl GenericClient, group: GroupId, member: Member) -> TxResult<bool> {
    let n = match member {
        Member::User(u) => {
            c.execute(
                "DELETE FROM user_members WHERE group_id = $1 AND user_id = $2",
                &[&group.0, &u.0],
            )
            .await?
        }
        Member::Group(g) => {
            c.execute(
                "DELETE FROM group_members WHERE group_id = $1 AND child_id = $2",
                &[&group.0, &g.0],
            )
            .await?
        }
    };
    Ok(n == 1)
}

impl PgStore {
    pub(super) fn create_group(&self, name: &str, description: Option<String>) -> Result<Group> {
        validate::name("group", name)?;
        if let Some(d) = &description {
            validate::description(d)?;
        }
        let id = GroupId(Uuid::new_v4());
        let created = now();
        self.write("creating a group", async |tx| {
            let gid_number =
                super::users::allocate(tx, "next_gid", FIRST_GID_NUMBER, "gid").await?;
            let group = Group {
                id,
                name: name.to_owned(),
                gid_number,
                description: description.clone(),
                created,
                modified: created,
            };
            insert_group(tx, &group).await?;
            Ok(group)
        })
    }

    pub(super) fn group(&self, id: GroupId) -> Result<Option<Group>> {
        self.group_where("id", &id.0)
    }

    fn group_where(
        &self,
        column: &str,
        value: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<Option<Group>> {
        let sql = format!("SELECT {GROUP_COLUMNS} FROM groups WHERE {column} = $1");
        self.read(async |c| {
            let row = c.query_opt(&sql, &[value]).await?;
            row.as_ref().map(group_row).transpose()
        })
    }

    fn group_id_where(
        &self,
        column: &str,
        value: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<Option<GroupId>> {
        let sql = format!("SELECT id FROM groups WHERE {column} = $1");
        self.read(async |c| {
            let row = c.query_opt(&sql, &[value]).await?;
            Ok(row.map(|r| r.try_get("id")).transpose()?.map(GroupId))
        })
    }

    pub(super) fn group_id_by_name(&self, name: &str) -> Result<Option<GroupId>> {
        self.group_id_where("name_key", &name_key(name))
    }

    pub(super) fn group_id_by_gid_number(&self, gid_number: u32) -> Result<Option<GroupId>> {
        self.group_id_where("gid_number", &i64::from(gid_number))
    }

    pub(super) fn group_by_name(&self, name: &str) -> Result<Option<Group>> {
        self.group_where("name_key", &name_key(name))
    }

    pub(super) fn group_by_gid_number(&self, gid_number: u32) -> Result<Option<Group>> {
        self.group_where("gid_number", &i64::from(gid_number))
    }

    pub(super) fn groups(&self) -> Result<Vec<Group>> {
        self.read(async |c| {
            c.query(
                &format!("SELECT {GROUP_COLUMNS} FROM groups ORDER BY name_key COLLATE \"C\""),
                &[],
            )
            .await?
            .iter()
            .map(group_row)
            .collect()
        })
    }

    /// Removes the group; its memberships (both ways), attributes and
    /// policy go with it (foreign keys cascade).
    pub(super) fn delete_group(&self, id: GroupId) -> Result<()> {
        self.write("deleting a group", async |tx| {
            lock_epoch(tx).await?;
            touch_parents(tx, Member::Group(id), now()).await?;
            let n = tx
                .execute("DELETE FROM groups WHERE id = $1", &[&id.0])
                .await?;
            if n == 0 {
                return Err(not_found(id));
            }
            bump_epoch(tx).await
        })
    }

    pub(super) fn group_attrs(&self, id: GroupId) -> Result<BTreeMap<String, String>> {
        self.read(async |c| {
            let mut out = BTreeMap::new();
            for row in c
                .query(
                    "SELECT key, value FROM group_attrs WHERE group_id = $1",
                    &[&id.0],
                )
                .await?
            {
                out.insert(row.try_get("key")?, row.try_get("value")?);
            }
            Ok(out)
        })
    }

    pub(super) fn set_group_attr(
        &self,
        id: GroupId,
        key: &str,
        value: Option<&str>,
    ) -> Result<bool> {
        self.write("setting a group attribute", async |tx| {
            if tx
                .query_opt("SELECT 1 FROM groups WHERE id = $1 FOR KEY SHARE", &[&id.0])
                .await?
                .is_none()
            {
                return Err(not_found(id));
            }
            let n = match value {
                Some(v) => {
                    tx.execute(
                        "INSERT INTO group_attrs (group_id, key, value) VALUES ($1, $2, $3) \
                         ON CONFLICT (group_id, key) DO UPDATE SET value = EXCLUDED.value \
                         WHERE group_attrs.value IS DISTINCT FROM EXCLUDED.value",
                        &[&id.0, &key, &v],
                    )
                    .await?
                }
                None => {
                    tx.execute(
                        "DELETE FROM group_attrs WHERE group_id = $1 AND key = $2",
                        &[&id.0, &key],
                    )
                    .await?
                }
            };
            Ok(n == 1)
        })
    }

    pub(super) fn add_member(&self, group: GroupId, member: Member) -> Result<bool> {
        self.write("adding a member", async |tx| {
            lock_epoch(tx).await?;
            if lock_group(tx, group).await?.is_none() {
                return Err(not_found(group));
            }
            if let Member::Group(child) = member {
                refuse_cycle(tx, group, child).await?;
            }
            if !insert_member(tx, group, member).await? {
                return Ok(false);
            }
            tx.execute(
                "UPDATE groups SET modified = $2 WHERE id = $1",
                &[&group.0, &now()],
            )
            .await?;
            bump_epoch(tx).await?;
            Ok(true)
        })
    }

    pub(super) fn remove_member(&self, group: GroupId, member: Member) -> Result<bool> {
        self.write("removing a member", async |tx| {
            lock_epoch(tx).await?;
            if lock_group(tx, group).await?.is_none() {
                return Err(not_found(group));
            }
            if !delete_member(tx, group, member).await? {
                return Ok(false);
            }
            tx.execute(
                "UPDATE groups SET modified = $2 WHERE id = $1",
                &[&group.0, &now()],
            )
            .await?;
            bump_epoch(tx).await?;
            Ok(true)
        })
    }

    pub(super) fn members(&self, group: GroupId) -> Result<Vec<Member>> {
        self.read(async |c| members_of(c, group).await)
    }

    pub(super) fn groups_of(&self, member: Member) -> Result<Vec<GroupId>> {
        self.read(async |c| parents_of(c, member).await)
    }

    /// Breadth-first over the parents, nearest first, each once.
    pub(super) fn transitive_groups_of(&self, member: Member) -> Result<Vec<GroupId>> {
        self.read(async |c| {
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            let mut queue: VecDeque<GroupId> = parents_of(c, member).await?.into();
            while let Some(g) = queue.pop_front() {
                if !seen.insert(g) {
                    continue;
                }
                out.push(g);
                queue.extend(parents_of(c, Member::Group(g)).await?);
            }
            if let Member::Group(own) = member {
                out.retain(|&g| g != own);
            }
            Ok(out)
        })
    }

    pub(super) fn transitive_user_members(&self, group: GroupId) -> Result<Vec<UserId>> {
        self.read(async |c| {
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for g in descendant_groups(c, group).await? {
                for row in c
                    .query(
                        "SELECT user_id FROM user_members WHERE group_id = $1 ORDER BY user_id",
                        &[&g.0],
                    )
                    .await?
                {
                    let u = UserId(row.try_get("user_id")?);
                    if seen.insert(u) {
                        out.push(u);
                    }
                }
            }
            Ok(out)
        })
    }

    pub(super) fn rename_group(&self, id: GroupId, new_name: &str) -> Result<Group> {
        validate::name("group", new_name)?;
        self.write("renaming a group", async |tx| {
            // Names are cached per membership epoch (memberOf DNs).
            lock_epoch(tx).await?;
            let mut group = lock_group(tx, id).await?.ok_or_else(|| not_found(id))?;
            group.name = new_name.to_owned();
            group.modified = now();
            update_group_row(tx, &group).await?;
            bump_epoch(tx).await?;
            Ok(group)
        })
    }

    /// The group and its direct members, read in one transaction with the
    /// epoch they are at.
    pub(super) fn group_snapshot(&self, id: GroupId) -> Result<Option<GroupSnapshot>> {
        self.transaction(
            tokio_postgres::IsolationLevel::RepeatableRead,
            true,
            async |tx| {
                let epoch: i64 = tx
                    .query_one(
                        "SELECT value FROM counters WHERE name = 'membership_epoch'",
                        &[],
                    )
                    .await?
                    .try_get("value")?;
                let row = tx
                    .query_opt(
                        &format!("SELECT {GROUP_COLUMNS} FROM groups WHERE id = $1"),
                        &[&id.0],
                    )
                    .await?;
                let Some(group) = row.as_ref().map(group_row).transpose()? else {
                    return Ok(None);
                };
                let members = members_of(tx, id).await?.into_iter().collect();
                Ok(Some(GroupSnapshot {
                    group,
                    members,
                    epoch: to_u64(epoch, "membership epoch")?,
                }))
            },
        )
    }

    pub(super) fn replace_group(
        &self,
        snapshot: &GroupSnapshot,
        after: &Group,
        members: &BTreeSet<Member>,
    ) -> Result<Option<Group>> {
        let before = &snapshot.group;
        let id = before.id;
        if after.id != id || after.name != before.name || after.gid_number != before.gid_number {
            return Err(StoreError::Invalid(format!(
                "the id, name and gidNumber of group {} cannot be changed this way",
                before.name
            )));
        }
        if let Some(d) = &after.description {
            validate::description(d)?;
        }
        if members.contains(&Member::Group(id)) {
            return Err(StoreError::Invalid(format!(
                "group {} cannot be a member of itself",
                before.name
            )));
        }
        let added: Vec<Member> = members.difference(&snapshot.members).copied().collect();
        let removed: Vec<Member> = snapshot.members.difference(members).copied().collect();
        self.write("replacing a group", async |tx| {
            let epoch = to_u64(lock_epoch(tx).await?, "membership epoch")?;
            if epoch != snapshot.epoch {
                return Ok(None);
            }
            let Some(current) = lock_group(tx, id).await? else {
                return Err(TxError::Store(StoreError::NotFound(format!(
                    "group {}",
                    before.name
                ))));
            };
            if current != *before {
                return Ok(None);
            }
            for &m in &added {
                if let Member::Group(child) = m {
                    refuse_cycle(tx, id, child).await?;
                }
                insert_member(tx, id, m).await?;
            }
            for &m in &removed {
                delete_member(tx, id, m).await?;
            }
            let mut next = after.clone();
            next.modified = now();
            update_group_row(tx, &next).await?;
            bump_epoch(tx).await?;
            Ok(Some(next))
        })
    }
}
