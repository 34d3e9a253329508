//! Settings, counters and the consistent snapshot in PostgreSQL.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};

use tokio_postgres::{GenericClient, IsolationLevel};

use super::groups::{group_row, GROUP_COLUMNS};
use super::mfa::{raw_app_passwords_of, raw_devices_of};
use super::users::{user_row, USER_COLUMNS};
use super::{from_u64, to_u32, to_u64, PgStore, TxResult};
use crate::domain::mfa::{GroupPolicy, MfaPolicy, RawSecondFactors};
use crate::domain::snapshot::{sort_groups_canonically, SnapshotHead, SnapshotSink};
use crate::store::{
    GroupId, Member, Result, Snapshot, SnapshotGroup, SnapshotUser, UserId, FIRST_GID_NUMBER,
    FIRST_UID_NUMBER,
};

async fn counters_of(c: &impl GenericClient) -> TxResult<(u32, u32)> {
    let (mut uid, mut gid) = (FIRST_UID_NUMBER, FIRST_GID_NUMBER);
    for row in c
        .query(
            "SELECT name, value FROM counters WHERE name IN ('next_uid', 'next_gid')",
            &[],
        )
        .await?
    {
        let name: &str = row.try_get("name")?;
        let value = to_u32(row.try_get("value")?, name)?;
        if name == "next_uid" {
            uid = value;
        } else {
            gid = value;
        }
    }
    Ok((uid, gid))
}

pub(super) async fn settings_of(c: &impl GenericClient) -> TxResult<Vec<(String, String)>> {
    c.query(
        "SELECT key, value FROM settings ORDER BY key COLLATE \"C\"",
        &[],
    )
    .await?
    .iter()
    .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
    .collect()
}

/// Every group's direct members: child groups first, then users, each in
/// id order.
pub(super) async fn members_of_all(
    c: &impl GenericClient,
) -> TxResult<HashMap<GroupId, Vec<Member>>> {
    let mut members: HashMap<GroupId, Vec<Member>> = HashMap::new();
    for row in c
        .query(
            "SELECT group_id, child_id FROM group_members ORDER BY group_id, child_id",
            &[],
        )
        .await?
    {
        members
            .entry(GroupId(row.try_get("group_id")?))
            .or_default()
            .push(Member::Group(GroupId(row.try_get("child_id")?)));
    }
    for row in c
        .query(
            "SELECT group_id, user_id FROM user_members ORDER BY group_id, user_id",
            &[],
        )
        .await?
    {
        members
            .entry(GroupId(row.try_get("group_id")?))
            .or_default()
            .push(Member::User(UserId(row.try_get("user_id")?)));
    }
    Ok(members)
}

impl PgStore {
    /// The membership epoch as stored (one round trip; see the module
    /// documentation).
    pub(super) fn membership_epoch(&self) -> Result<u64> {
        self.read(async |c| {
            let v: i64 = c
                .query_one(
                    "SELECT value FROM counters WHERE name = 'membership_epoch'",
                    &[],
                )
                .await?
                .try_get("value")?;
            to_u64(v, "membership epoch")
        })
    }

    /// One statement: `GREATEST` keeps the row's value when it is higher
    /// already, so the epoch never goes back.
    pub(super) fn raise_membership_epoch(&self, at_least: u64) -> Result<u64> {
        crate::blocking::assert_may_block("raising the membership epoch");
        self.read(async |c| {
            let v: i64 = c
                .query_one(
                    "UPDATE counters SET value = GREATEST(value, $1) \
                     WHERE name = 'membership_epoch' RETURNING value",
                    &[&from_u64(at_least, "membership epoch")?],
                )
                .await?
                .try_get("value")?;
            to_u64(v, "membership epoch")
        })
    }

    pub(super) fn setting(&self, key: &str) -> Result<Option<String>> {
        self.read(async |c| {
            let row = c
                .query_opt("SELECT value FROM settings WHERE key = $1", &[&key])
                .await?;
            Ok(row.map(|r| r.try_get("value")).transpose()?)
        })
    }

    pub(super) fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        crate::blocking::assert_may_block("setting a setting");
        self.read(async |c| {
            c.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&key, &value],
            )
            .await?;
            Ok(())
        })
    }

    pub(super) fn remove_setting(&self, key: &str) -> Result<bool> {
        crate::blocking::assert_may_block("removing a setting");
        self.read(async |c| {
            Ok(c.execute("DELETE FROM settings WHERE key = $1", &[&key])
                .await?
                == 1)
        })
    }

    pub(super) fn settings(&self) -> Result<Vec<(String, String)>> {
        self.read(async |c| settings_of(c).await)
    }

    pub(super) fn counters(&self) -> Result<(u32, u32)> {
        self.read(async |c| counters_of(c).await)
    }

    /// Every record in one `REPEATABLE READ, READ ONLY` transaction:
    /// [`PgStore::snapshot_streamed`] collected.
    pub(super) fn snapshot(&self) -> Result<Snapshot> {
        let mut snap = Snapshot::default();
        self.snapshot_streamed(&mut snap)?;
        Ok(snap)
    }

    /// Every record in one `REPEATABLE READ, READ ONLY` transaction,
    /// handed to `sink` as it is read: the head (groups with members,
    /// settings, counters) first, then the users through a cursor in the
    /// canonical order, [`USERS_PER_FETCH`] rows per round trip, so memory
    /// holds one slice of the users table. Writers never wait for it; the
    /// transaction stays open until `sink` has taken the last user.
    pub(super) fn snapshot_streamed(&self, sink: &mut dyn SnapshotSink) -> Result<()> {
        crate::blocking::assert_may_block("a store snapshot");
        // Every use of an app password noted before the snapshot is in it.
        self.uses_written();
        // The body is an `AsyncFn` (it may run again on a retryable error,
        // which a read-only transaction does not meet); the sink is only
        // borrowed between awaits.
        let sink = RefCell::new(sink);
        self.transaction(IsolationLevel::RepeatableRead, true, async |tx| {
            let head = head_of(tx).await?;
            sink.borrow_mut().head(head)?;
            // Second factors are asked for only where there are some: two
            // round trips per user would be most of the time otherwise.
            let mut with_factors = HashSet::new();
            for row in tx
                .query(
                    "SELECT user_id FROM mfa_devices UNION SELECT user_id FROM app_passwords",
                    &[],
                )
                .await?
            {
                with_factors.insert(UserId(row.try_get("user_id")?));
            }
            let users = tx
                .prepare(&format!(
                    "SELECT {USER_COLUMNS}, c.phc FROM users \
                     LEFT JOIN credentials c ON c.user_id = users.id \
                     ORDER BY username_key COLLATE \"C\""
                ))
                .await?;
            let cursor = tx.bind(&users, &[]).await?;
            loop {
                let rows = tx.query_portal(&cursor, USERS_PER_FETCH).await?;
                if rows.is_empty() {
                    return Ok(());
                }
                for row in rows {
                    let user = user_row(&row)?;
                    let id = user.id;
                    let second_factors = if with_factors.contains(&id) {
                        RawSecondFactors {
                            devices: raw_devices_of(tx, id).await?,
                            app_passwords: raw_app_passwords_of(tx, id).await?,
                        }
                    } else {
                        RawSecondFactors::default()
                    };
                    let mut su = SnapshotUser {
                        password_hash: row.try_get("phc")?,
                        second_factors,
                        user,
                    };
                    su.sort_canonically();
                    sink.borrow_mut().user(su)?;
                }
            }
        })
    }
}

/// Users fetched per round trip of a streamed snapshot's cursor.
const USERS_PER_FETCH: i32 = 1000;

/// Everything of a snapshot but the users, in canonical order.
async fn head_of(tx: &tokio_postgres::Transaction<'_>) -> TxResult<SnapshotHead> {
    let mut members = members_of_all(tx).await?;
    let mut policies: HashMap<GroupId, GroupPolicy> = HashMap::new();
    for row in tx
        .query(
            "SELECT group_id, mfa, app_passwords FROM group_policies",
            &[],
        )
        .await?
    {
        let mfa: Option<&str> = row.try_get("mfa")?;
        policies.insert(
            GroupId(row.try_get("group_id")?),
            GroupPolicy {
                mfa: mfa.and_then(MfaPolicy::parse),
                app_passwords: row.try_get("app_passwords")?,
            },
        );
    }
    let mut attrs: HashMap<GroupId, BTreeMap<String, String>> = HashMap::new();
    for row in tx
        .query("SELECT group_id, key, value FROM group_attrs", &[])
        .await?
    {
        attrs
            .entry(GroupId(row.try_get("group_id")?))
            .or_default()
            .insert(row.try_get("key")?, row.try_get("value")?);
    }
    let mut groups = Vec::new();
    for row in tx
        .query(
            &format!("SELECT {GROUP_COLUMNS} FROM groups ORDER BY name_key COLLATE \"C\""),
            &[],
        )
        .await?
    {
        let group = group_row(&row)?;
        let id = group.id;
        groups.push(SnapshotGroup {
            members: members.remove(&id).unwrap_or_default(),
            policy: policies.remove(&id).unwrap_or_default(),
            attrs: attrs.remove(&id).unwrap_or_default(),
            group,
        });
    }
    sort_groups_canonically(&mut groups);
    Ok(SnapshotHead {
        groups,
        settings: settings_of(tx).await?,
        counters: counters_of(tx).await?,
    })
}
