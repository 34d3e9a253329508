//! Users in PostgreSQL: records, their unique keys (name, email,
//! uidNumber), password hashes, and number allocation.

use std::collections::HashSet;

use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use super::{
    foreign_key_violation, from_u64, to_u32, to_u64, unique_violation, PgStore, TxError, TxResult,
};
use crate::domain::rules;
use crate::store::{
    now, validate, Member, NewUser, Result, StoreError, User, UserId, FIRST_UID_NUMBER,
};

/// The columns [`user_row`] decodes, in a `SELECT`.
pub(super) const USER_COLUMNS: &str = "id, username, full_name, email, uid_number, gid_number, \
     disabled, attrs, created, modified, pwd_changed, cred_generation";

pub(super) fn user_row(row: &Row) -> TxResult<User> {
    let attrs: serde_json::Value = row.try_get("attrs")?;
    Ok(User {
        id: UserId(row.try_get("id")?),
        username: row.try_get("username")?,
        full_name: row.try_get("full_name")?,
        email: row.try_get("email")?,
        uid_number: to_u32(row.try_get("uid_number")?, "uidNumber")?,
        gid_number: to_u32(row.try_get("gid_number")?, "gidNumber")?,
        disabled: row.try_get("disabled")?,
        attrs: serde_json::from_value(attrs)
            .map_err(|e| StoreError::Backend(format!("corrupt attributes of a user: {e}")))?,
        created: row.try_get("created")?,
        modified: row.try_get("modified")?,
        pwd_changed: row.try_get("pwd_changed")?,
        cred_generation: to_u64(row.try_get("cred_generation")?, "credential generation")?,
    })
}

/// Case-folded key of a user or group name (names are ASCII by rule), as
/// the sled backend keys its index.
pub(super) fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Case-folded key of an email address (which may be internationalised).
pub(super) fn email_key(email: &str) -> String {
    email.to_lowercase()
}

fn attrs_json(user: &User) -> TxResult<serde_json::Value> {
    serde_json::to_value(&user.attrs)
        .map_err(|e| TxError::Store(StoreError::Backend(format!("encoding attributes: {e}"))))
}

/// The refusal of a unique key another record holds, by constraint.
pub(super) fn taken(e: TxError, user: &User) -> TxError {
    match unique_violation(&e) {
        Some("users_username_key_key") => {
            TxError::Store(StoreError::AlreadyExists(format!("user {}", user.username)))
        }
        Some("users_email_key_key") => TxError::Store(StoreError::AlreadyExists(format!(
            "email {}",
            user.email.as_deref().unwrap_or_default()
        ))),
        Some("users_uid_number_key") => TxError::Store(StoreError::AlreadyExists(format!(
            "uidNumber {}",
            user.uid_number
        ))),
        _ => e,
    }
}

/// Inserts a whole user record.
pub(super) async fn insert_user(c: &impl GenericClient, u: &User) -> TxResult<()> {
    write_user_row(
        c,
        "INSERT INTO users (id, username, username_key, full_name, email, email_key, \
         uid_number, gid_number, disabled, attrs, created, modified, pwd_changed, \
         cred_generation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        u,
    )
    .await
}

/// Writes every field of an existing user record but its id.
pub(super) async fn update_user_row(c: &impl GenericClient, u: &User) -> TxResult<()> {
    write_user_row(
        c,
        "UPDATE users SET username = $2, username_key = $3, full_name = $4, email = $5, \
         email_key = $6, uid_number = $7, gid_number = $8, disabled = $9, attrs = $10, \
         created = $11, modified = $12, pwd_changed = $13, cred_generation = $14 WHERE id = $1",
        u,
    )
    .await
}

/// Runs `sql` (an INSERT or UPDATE of one user) with the record's fields
/// as $1 (id) to $14 (credential generation), in the table's column order.
async fn write_user_row(c: &impl GenericClient, sql: &str, u: &User) -> TxResult<()> {
    c.execute(
        sql,
        &[
            &u.id.0,
            &u.username,
            &name_key(&u.username),
            &u.full_name,
            &u.email,
            &u.email.as_deref().map(email_key),
            &i64::from(u.uid_number),
            &i64::from(u.gid_number),
            &u.disabled,
            &attrs_json(u)?,
            &u.created,
            &u.modified,
            &u.pwd_changed,
            &from_u64(u.cred_generation, "credential generation")?,
        ],
    )
    .await
    .map_err(|e| taken(e.into(), u))?;
    Ok(())
}

/// The user's row, locked against other writers of the record (not
/// against new memberships, which only share-lock its key).
pub(super) async fn lock_user(c: &impl GenericClient, id: UserId) -> TxResult<Option<User>> {
    let row = c
        .query_opt(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 FOR NO KEY UPDATE"),
            &[&id.0],
        )
        .await?;
    row.as_ref().map(user_row).transpose()
}

/// Locks the allocators (`next_gid`, then `next_uid`: the lock order of
/// the module documentation) and hands out the next number from `counter`
/// by the domain's rule, skipping every uidNumber and gidNumber in use;
/// moves the counter past it.
pub(super) async fn allocate(
    c: &impl GenericClient,
    counter: &str,
    first: u32,
    what: &str,
) -> TxResult<u32> {
    let rows = c
        .query(
            "SELECT name, value FROM counters WHERE name IN ('next_gid', 'next_uid') \
             ORDER BY name FOR UPDATE",
            &[],
        )
        .await?;
    let mut current = None;
    for row in &rows {
        if row.try_get::<_, &str>("name")? == counter {
            current = Some(to_u32(row.try_get("value")?, counter)?);
        }
    }
    let current = current.unwrap_or(first).max(first);
    let used: HashSet<u32> = c
        .query(
            "SELECT uid_number AS n FROM users WHERE uid_number >= $1 \
             UNION SELECT gid_number FROM groups WHERE gid_number >= $1",
            &[&i64::from(current)],
        )
        .await?
        .iter()
        .map(|r| to_u32(r.try_get("n")?, "number"))
        .collect::<TxResult<_>>()?;
    let (n, next) = rules::allocate_number(
        current,
        first,
        |n| Ok::<_, TxError>(used.contains(&n)),
        || TxError::Store(StoreError::Invalid(format!("{what} numbers are exhausted"))),
    )?;
    c.execute(
        "UPDATE counters SET value = $2 WHERE name = $1",
        &[&counter, &i64::from(next)],
    )
    .await?;
    Ok(n)
}

/// Locks the membership epoch row (first of the counters in the lock
/// order) and answers its value. Every transaction that changes
/// memberships or names takes it, and bumps it with [`bump_epoch`].
pub(super) async fn lock_epoch(c: &impl GenericClient) -> TxResult<i64> {
    let row = c
        .query_one(
            "SELECT value FROM counters WHERE name = 'membership_epoch' FOR UPDATE",
            &[],
        )
        .await?;
    Ok(row.try_get("value")?)
}

pub(super) async fn bump_epoch(c: &impl GenericClient) -> TxResult<()> {
    c.execute(
        "UPDATE counters SET value = value + 1 WHERE name = 'membership_epoch'",
        &[],
    )
    .await?;
    Ok(())
}

/// Sets `modified` of the groups `member` is a direct member of.
pub(super) async fn touch_parents(c: &impl GenericClient, member: Member, at: i64) -> TxResult<()> {
    let sql = match member {
        Member::User(_) => {
            "UPDATE groups SET modified = $2 WHERE id IN \
             (SELECT group_id FROM user_members WHERE user_id = $1)"
        }
        Member::Group(_) => {
            "UPDATE groups SET modified = $2 WHERE id IN \
             (SELECT group_id FROM group_members WHERE child_id = $1)"
        }
    };
    let id = match member {
        Member::User(u) => u.0,
        Member::Group(g) => g.0,
    };
    c.execute(sql, &[&id, &at]).await?;
    Ok(())
}

fn not_found(id: UserId) -> TxError {
    TxError::Store(StoreError::NotFound(format!("user {id}")))
}

impl PgStore {
    pub(super) fn create_user(&self, new: NewUser) -> Result<User> {
        validate::name("user", &new.username)?;
        if let Some(email) = &new.email {
            validate::email(email)?;
        }
        if let Some(full_name) = &new.full_name {
            validate::full_name(full_name)?;
        }
        let id = UserId(Uuid::new_v4());
        let created = now();
        self.write("creating a user", async |tx| {
            let uid_number = allocate(tx, "next_uid", FIRST_UID_NUMBER, "uid").await?;
            let user = User {
                id,
                username: new.username.clone(),
                full_name: new.full_name.clone(),
                email: new.email.clone(),
                uid_number,
                gid_number: uid_number,
                disabled: false,
                attrs: Default::default(),
                created,
                modified: created,
                pwd_changed: None,
                cred_generation: 0,
            };
            insert_user(tx, &user).await?;
            Ok(user)
        })
    }

    pub(super) fn user(&self, id: UserId) -> Result<Option<User>> {
        self.read(async |c| {
            let row = c
                .query_opt(
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"),
                    &[&id.0],
                )
                .await?;
            row.as_ref().map(user_row).transpose()
        })
    }

    /// The user found by one unique column.
    fn user_where(
        &self,
        column: &str,
        value: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = $1");
        self.read(async |c| {
            let row = c.query_opt(&sql, &[value]).await?;
            row.as_ref().map(user_row).transpose()
        })
    }

    fn user_id_where(
        &self,
        column: &str,
        value: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<Option<UserId>> {
        let sql = format!("SELECT id FROM users WHERE {column} = $1");
        self.read(async |c| {
            let row = c.query_opt(&sql, &[value]).await?;
            Ok(row.map(|r| r.try_get("id")).transpose()?.map(UserId))
        })
    }

    pub(super) fn user_id_by_name(&self, username: &str) -> Result<Option<UserId>> {
        self.user_id_where("username_key", &name_key(username))
    }

    pub(super) fn user_id_by_email(&self, email: &str) -> Result<Option<UserId>> {
        self.user_id_where("email_key", &email_key(email))
    }

    pub(super) fn user_id_by_uid_number(&self, uid_number: u32) -> Result<Option<UserId>> {
        self.user_id_where("uid_number", &i64::from(uid_number))
    }

    pub(super) fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        self.user_where("username_key", &name_key(username))
    }

    pub(super) fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        self.user_where("email_key", &email_key(email))
    }

    pub(super) fn user_by_uid_number(&self, uid_number: u32) -> Result<Option<User>> {
        self.user_where("uid_number", &i64::from(uid_number))
    }

    pub(super) fn users(&self) -> Result<Vec<User>> {
        self.read(async |c| {
            c.query(
                &format!("SELECT {USER_COLUMNS} FROM users ORDER BY username_key COLLATE \"C\""),
                &[],
            )
            .await?
            .iter()
            .map(user_row)
            .collect()
        })
    }

    pub(super) fn user_count(&self) -> Result<usize> {
        self.read(async |c| {
            let n: i64 = c
                .query_one("SELECT count(*) FROM users", &[])
                .await?
                .try_get(0)?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    pub(super) fn update_user(
        &self,
        id: UserId,
        change: &dyn Fn(&mut User) -> Result<()>,
    ) -> Result<User> {
        self.write("updating a user", async |tx| {
            let before = lock_user(tx, id).await?.ok_or_else(|| not_found(id))?;
            let mut after = before.clone();
            change(&mut after)?;
            crate::domain::rules::checked_user_update(&before, &mut after, now())?;
            update_user_row(tx, &after).await?;
            Ok(after)
        })
    }

    /// Removes the user; its credentials, memberships, devices, app
    /// passwords and sessions go with it (foreign keys cascade), in one
    /// transaction that bumps the membership epoch.
    pub(super) fn delete_user(&self, id: UserId) -> Result<()> {
        self.write("deleting a user", async |tx| {
            lock_epoch(tx).await?;
            touch_parents(tx, Member::User(id), now()).await?;
            let n = tx
                .execute("DELETE FROM users WHERE id = $1", &[&id.0])
                .await?;
            if n == 0 {
                return Err(not_found(id));
            }
            bump_epoch(tx).await
        })
    }

    pub(super) fn password_hash(&self, id: UserId) -> Result<Option<String>> {
        self.read(async |c| {
            let row = c
                .query_opt("SELECT phc FROM credentials WHERE user_id = $1", &[&id.0])
                .await?;
            Ok(row.map(|r| r.try_get("phc")).transpose()?)
        })
    }

    pub(super) fn set_password_hash(&self, id: UserId, phc: &str) -> Result<()> {
        if phc.is_empty() {
            return Err(StoreError::Invalid("the password hash is empty".into()));
        }
        self.write("setting a password", async |tx| {
            let at = now();
            let n = tx
                .execute(
                    "UPDATE users SET pwd_changed = $2, modified = $2, \
                     cred_generation = cred_generation + 1 WHERE id = $1",
                    &[&id.0, &at],
                )
                .await?;
            if n == 0 {
                return Err(not_found(id));
            }
            store_hash(tx, id, phc).await
        })
    }

    pub(super) fn rehash_password(&self, id: UserId, old: &str, new: &str) -> Result<bool> {
        if new.is_empty() {
            return Err(StoreError::Invalid("the password hash is empty".into()));
        }
        crate::blocking::assert_may_block("rehashing a password");
        self.read(async |c| {
            let n = c
                .execute(
                    "UPDATE credentials SET phc = $3 WHERE user_id = $1 AND phc = $2",
                    &[&id.0, &old, &new],
                )
                .await?;
            Ok(n == 1)
        })
    }

    pub(super) fn replace_user(
        &self,
        before: &User,
        after: &User,
        password_hash: Option<&str>,
    ) -> Result<Option<User>> {
        if after.id != before.id
            || after.username != before.username
            || after.uid_number != before.uid_number
            || after.cred_generation != before.cred_generation
        {
            return Err(StoreError::Invalid(format!(
                "the id, name, uidNumber and credential generation of user {} cannot be changed \
                 this way",
                before.username
            )));
        }
        if let Some(email) = &after.email {
            validate::email(email)?;
        }
        if let Some(full_name) = &after.full_name {
            validate::full_name(full_name)?;
        }
        if password_hash == Some("") {
            return Err(StoreError::Invalid("the password hash is empty".into()));
        }
        self.write("replacing a user", async |tx| {
            let Some(current) = lock_user(tx, before.id).await? else {
                return Err(TxError::Store(StoreError::NotFound(format!(
                    "user {}",
                    before.username
                ))));
            };
            if current != *before {
                return Ok(None);
            }
            let mut next = after.clone();
            let at = now();
            next.modified = at;
            let mut bump = next.disabled != before.disabled;
            if let Some(phc) = password_hash {
                store_hash(tx, before.id, phc).await?;
                next.pwd_changed = Some(at);
                bump = true;
            }
            if bump {
                next.cred_generation = before.cred_generation.wrapping_add(1);
            }
            update_user_row(tx, &next).await?;
            Ok(Some(next))
        })
    }

    pub(super) fn rename_user(&self, id: UserId, new_name: &str) -> Result<User> {
        validate::name("user", new_name)?;
        self.write("renaming a user", async |tx| {
            // Names are cached per membership epoch (group member DNs).
            lock_epoch(tx).await?;
            let mut user = lock_user(tx, id).await?.ok_or_else(|| not_found(id))?;
            user.username = new_name.to_owned();
            user.modified = now();
            user.cred_generation = user.cred_generation.wrapping_add(1);
            update_user_row(tx, &user).await?;
            bump_epoch(tx).await?;
            Ok(user)
        })
    }
}

/// Stores the user's password hash (inserted or replaced).
async fn store_hash(c: &impl GenericClient, id: UserId, phc: &str) -> TxResult<()> {
    c.execute(
        "INSERT INTO credentials (user_id, phc) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET phc = EXCLUDED.phc",
        &[&id.0, &phc],
    )
    .await
    .map_err(|e| {
        let e = TxError::from(e);
        if foreign_key_violation(&e) {
            not_found(id)
        } else {
            e
        }
    })?;
    Ok(())
}
