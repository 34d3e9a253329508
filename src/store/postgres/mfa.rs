//! Second factors, app passwords and group policies in PostgreSQL.
//! Consuming a code is one statement, so exactly one of any number of
//! concurrent binds (through any instance) wins it.

use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use super::{from_u64, to_u64, unique_violation, PgStore, TxError, TxResult};
use crate::domain::mfa::{label, new_device};
use crate::store::mfa::*;
use crate::store::{GroupId, Result, StoreError, Timestamp, UserId};

pub(super) const DEVICE_COLUMNS: &str = "id, kind, digits, label, created, confirmed";
const APP_PASSWORD_COLUMNS: &str =
    "user_id, id, kind, name, created, expires, last_used, last_used_from";

/// The app password (or API token) whose keyed hash is `hash`, and its
/// owner, on `c`: one round trip, the statement prepared once per pooled
/// connection (a lookup by key: its generic plan is the one any value
/// gets). Asked alone ([`PgStore::app_password_by_hash`]) or with a
/// bind's other reads (`PgInstance::bind_reads`).
pub(super) async fn app_password_by_hash_on(
    c: &deadpool_postgres::Client,
    hash: &KeyedHash,
) -> TxResult<Option<(UserId, AppPassword)>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("SELECT {APP_PASSWORD_COLUMNS} FROM app_passwords WHERE hash = $1")
    });
    let statement = c.prepare_cached(&SQL).await?;
    let row = c.query_opt(&statement, &[&&hash[..]]).await?;
    row.map(|r| Ok((UserId(r.try_get("user_id")?), app_password_row(&r)?)))
        .transpose()
}

pub(super) fn device_row(row: &Row) -> TxResult<Device> {
    let kind: &str = row.try_get("kind")?;
    let kind = match kind {
        "totp" => {
            let digits: Option<i16> = row.try_get("digits")?;
            DeviceKind::Totp {
                digits: digits.and_then(|d| u8::try_from(d).ok()).unwrap_or(6),
            }
        }
        _ => DeviceKind::Static,
    };
    Ok(Device {
        id: DeviceId(row.try_get("id")?),
        kind,
        label: row.try_get("label")?,
        created: row.try_get("created")?,
        confirmed: row.try_get("confirmed")?,
    })
}

fn kind_text(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::AppPassword => "app_password",
        CredentialKind::ApiToken => "api_token",
    }
}

fn app_password_row(row: &Row) -> TxResult<AppPassword> {
    let kind: &str = row.try_get("kind")?;
    Ok(AppPassword {
        id: AppPasswordId(row.try_get("id")?),
        kind: if kind == "api_token" {
            CredentialKind::ApiToken
        } else {
            CredentialKind::AppPassword
        },
        name: row.try_get("name")?,
        created: row.try_get("created")?,
        expires: row.try_get("expires")?,
        last_used: row.try_get("last_used")?,
        last_used_from: row.try_get("last_used_from")?,
    })
}

fn keyed_hash(bytes: &[u8]) -> TxResult<KeyedHash> {
    bytes
        .try_into()
        .map_err(|_| TxError::Store(StoreError::Backend("corrupt keyed hash".into())))
}

/// Bumps the user's credential generation; NotFound when the user is gone.
async fn bump_generation(c: &impl GenericClient, user: UserId) -> TxResult<()> {
    if !bump_generation_if_present(c, user).await? {
        return Err(TxError::Store(StoreError::NotFound(format!("user {user}"))));
    }
    Ok(())
}

/// Bumps the user's credential generation if the user is still there
/// (a credential removed with its user needs no bump): whether it was.
async fn bump_generation_if_present(c: &impl GenericClient, user: UserId) -> TxResult<bool> {
    let n = c
        .execute(
            "UPDATE users SET cred_generation = cred_generation + 1 WHERE id = $1",
            &[&user.0],
        )
        .await?;
    Ok(n > 0)
}

pub(super) async fn devices_of(c: &impl GenericClient, user: UserId) -> TxResult<Vec<Device>> {
    c.query(
        &format!(
            "SELECT {DEVICE_COLUMNS} FROM mfa_devices WHERE user_id = $1 ORDER BY created, id"
        ),
        &[&user.0],
    )
    .await?
    .iter()
    .map(device_row)
    .collect()
}

pub(super) async fn raw_devices_of(
    c: &impl GenericClient,
    user: UserId,
) -> TxResult<Vec<RawDevice>> {
    let mut out = Vec::new();
    for row in c
        .query(
            &format!(
                "SELECT {DEVICE_COLUMNS}, totp_secret, last_step FROM mfa_devices \
                 WHERE user_id = $1 ORDER BY created, id"
            ),
            &[&user.0],
        )
        .await?
    {
        let device = device_row(&row)?;
        let secret: Option<Vec<u8>> = row.try_get("totp_secret")?;
        let step: Option<i64> = row.try_get("last_step")?;
        let static_tokens = c
            .query(
                "SELECT hash FROM mfa_static_tokens WHERE user_id = $1 AND device_id = $2 \
                 ORDER BY hash",
                &[&user.0, &device.id.0],
            )
            .await?
            .iter()
            .map(|r| keyed_hash(r.try_get("hash")?))
            .collect::<TxResult<_>>()?;
        out.push(RawDevice {
            device,
            totp_secret: secret.map(TotpSecret),
            totp_last_step: step.map(|s| to_u64(s, "TOTP step")).transpose()?,
            static_tokens,
        });
    }
    Ok(out)
}

pub(super) async fn raw_app_passwords_of(
    c: &impl GenericClient,
    user: UserId,
) -> TxResult<Vec<RawAppPassword>> {
    c.query(
        &format!(
            "SELECT {APP_PASSWORD_COLUMNS}, hash FROM app_passwords WHERE user_id = $1 \
             ORDER BY created, id"
        ),
        &[&user.0],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(RawAppPassword {
            record: app_password_row(r)?,
            hash: keyed_hash(r.try_get("hash")?)?,
        })
    })
    .collect()
}

pub(super) async fn policy_of(c: &impl GenericClient, group: GroupId) -> TxResult<GroupPolicy> {
    let row = c
        .query_opt(
            "SELECT mfa, app_passwords FROM group_policies WHERE group_id = $1",
            &[&group.0],
        )
        .await?;
    row.as_ref()
        .map(policy_row)
        .transpose()
        .map(Option::unwrap_or_default)
}

pub(super) fn policy_row(row: &Row) -> TxResult<GroupPolicy> {
    let mfa: Option<&str> = row.try_get("mfa")?;
    Ok(GroupPolicy {
        mfa: mfa.and_then(MfaPolicy::parse),
        app_passwords: row.try_get("app_passwords")?,
    })
}

impl PgStore {
    pub(super) fn raw_devices(&self, user: UserId) -> Result<Vec<RawDevice>> {
        self.read(async |c| raw_devices_of(c, user).await)
    }

    pub(super) fn raw_app_passwords(&self, user: UserId) -> Result<Vec<RawAppPassword>> {
        self.uses_written();
        self.read(async |c| raw_app_passwords_of(c, user).await)
    }

    pub(super) fn has_keyed_hashes(&self) -> Result<bool> {
        self.read(async |c| {
            Ok(c.query_one(
                "SELECT EXISTS (SELECT 1 FROM mfa_static_tokens) \
                 OR EXISTS (SELECT 1 FROM app_passwords)",
                &[],
            )
            .await?
            .try_get(0)?)
        })
    }

    pub(super) fn devices(&self, user: UserId) -> Result<Vec<Device>> {
        self.read(async |c| devices_of(c, user).await)
    }

    pub(super) fn static_tokens_left(&self, user: UserId, device: DeviceId) -> Result<usize> {
        self.read(async |c| {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM mfa_static_tokens WHERE user_id = $1 AND device_id = $2",
                    &[&user.0, &device.0],
                )
                .await?
                .try_get(0)?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    /// Inserts a device after checking (under the user's row lock) that
    /// the user exists and has room for it.
    fn add_device(
        &self,
        user: UserId,
        device: &Device,
        secret: Option<&TotpSecret>,
        token_hashes: &[KeyedHash],
    ) -> Result<()> {
        let (kind, digits) = match device.kind {
            DeviceKind::Totp { digits } => ("totp", Some(i16::from(digits))),
            DeviceKind::Static => ("static", None),
        };
        self.write("adding an MFA device", async |tx| {
            if super::users::lock_user(tx, user).await?.is_none() {
                return Err(TxError::Store(StoreError::NotFound(format!("user {user}"))));
            }
            let n: i64 = tx
                .query_one(
                    "SELECT count(*) FROM mfa_devices WHERE user_id = $1",
                    &[&user.0],
                )
                .await?
                .try_get(0)?;
            if n >= MAX_DEVICES as i64 {
                return Err(TxError::Store(StoreError::Invalid(format!(
                    "a user may have at most {MAX_DEVICES} MFA devices; remove one first"
                ))));
            }
            tx.execute(
                "INSERT INTO mfa_devices (user_id, id, kind, digits, label, created, confirmed, \
                 totp_secret) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &user.0,
                    &device.id.0,
                    &kind,
                    &digits,
                    &device.label,
                    &device.created,
                    &device.confirmed,
                    &secret.map(|s| s.0.as_slice()),
                ],
            )
            .await?;
            for h in token_hashes {
                tx.execute(
                    "INSERT INTO mfa_static_tokens (user_id, device_id, hash) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                    &[&user.0, &device.id.0, &&h[..]],
                )
                .await?;
            }
            bump_generation(tx, user).await
        })
    }

    pub(super) fn add_totp(
        &self,
        user: UserId,
        device_label: &str,
        digits: u8,
        secret: &TotpSecret,
        confirmed: bool,
    ) -> Result<Device> {
        if !matches!(digits, 6 | 8) {
            return Err(StoreError::Invalid("TOTP codes have 6 or 8 digits".into()));
        }
        if secret.0.len() < 16 {
            return Err(StoreError::Invalid(
                "a TOTP secret has at least 128 bits".into(),
            ));
        }
        let mut device = new_device(DeviceKind::Totp { digits }, device_label)?;
        device.confirmed = confirmed;
        self.add_device(user, &device, Some(secret), &[])?;
        Ok(device)
    }

    pub(super) fn add_static_device(
        &self,
        user: UserId,
        device_label: &str,
        token_hashes: &[KeyedHash],
    ) -> Result<Device> {
        if token_hashes.is_empty() || token_hashes.len() > MAX_STATIC_TOKENS {
            return Err(StoreError::Invalid(format!(
                "a static device holds 1 to {MAX_STATIC_TOKENS} tokens"
            )));
        }
        let device = new_device(DeviceKind::Static, device_label)?;
        self.add_device(user, &device, None, token_hashes)?;
        Ok(device)
    }

    pub(super) fn confirm_device(&self, user: UserId, device: DeviceId) -> Result<bool> {
        self.write("confirming an MFA device", async |tx| {
            let row = tx
                .query_opt(
                    "SELECT confirmed FROM mfa_devices WHERE user_id = $1 AND id = $2 FOR UPDATE",
                    &[&user.0, &device.0],
                )
                .await?;
            let Some(row) = row else {
                return Err(TxError::Store(StoreError::NotFound(format!(
                    "device {device}"
                ))));
            };
            if row.try_get::<_, bool>("confirmed")? {
                return Ok(false);
            }
            tx.execute(
                "UPDATE mfa_devices SET confirmed = true WHERE user_id = $1 AND id = $2",
                &[&user.0, &device.0],
            )
            .await?;
            bump_generation(tx, user).await?;
            Ok(true)
        })
    }

    pub(super) fn rename_device(
        &self,
        user: UserId,
        device: DeviceId,
        new_label: &str,
    ) -> Result<bool> {
        let new_label = label("device label", new_label)?;
        self.write("renaming an MFA device", async |tx| {
            let n = tx
                .execute(
                    "UPDATE mfa_devices SET label = $3 WHERE user_id = $1 AND id = $2",
                    &[&user.0, &device.0, &new_label],
                )
                .await?;
            Ok(n > 0)
        })
    }

    pub(super) fn remove_device(&self, user: UserId, device: DeviceId) -> Result<bool> {
        self.write("removing an MFA device", async |tx| {
            let n = tx
                .execute(
                    "DELETE FROM mfa_devices WHERE user_id = $1 AND id = $2",
                    &[&user.0, &device.0],
                )
                .await?;
            if n == 0 {
                return Ok(false);
            }
            // The user may be gone already (its devices went with it).
            bump_generation_if_present(tx, user).await?;
            Ok(true)
        })
    }

    pub(super) fn totp_secret(&self, user: UserId, device: DeviceId) -> Result<Option<TotpSecret>> {
        let sql = "SELECT totp_secret FROM mfa_devices WHERE user_id = $1 AND id = $2";
        self.read_prepared(sql, async |c, sql| {
            let row = c.query_opt(sql, &[&user.0, &device.0]).await?;
            let secret: Option<Vec<u8>> = match row {
                Some(r) => r.try_get("totp_secret")?,
                None => None,
            };
            Ok(secret.map(TotpSecret))
        })
    }

    pub(super) fn totp_last_step(&self, user: UserId, device: DeviceId) -> Result<Option<u64>> {
        let sql = "SELECT last_step FROM mfa_devices WHERE user_id = $1 AND id = $2";
        self.read_prepared(sql, async |c, sql| {
            let row = c.query_opt(sql, &[&user.0, &device.0]).await?;
            let step: Option<i64> = match row {
                Some(r) => r.try_get("last_step")?,
                None => None,
            };
            step.map(|s| to_u64(s, "TOTP step")).transpose()
        })
    }

    /// One statement: of concurrent calls with the same step exactly one
    /// updates the row.
    pub(super) fn advance_totp_step(
        &self,
        user: UserId,
        device: DeviceId,
        step: u64,
    ) -> Result<bool> {
        crate::blocking::assert_may_block("accepting a TOTP step");
        let sql = "UPDATE mfa_devices SET last_step = $3 WHERE user_id = $1 AND id = $2 \
                   AND kind = 'totp' AND (last_step IS NULL OR last_step < $3)";
        self.read_prepared(sql, async |c, sql| {
            let step = from_u64(step, "TOTP step")?;
            let n = c.execute(sql, &[&user.0, &device.0, &step]).await?;
            Ok(n == 1)
        })
    }

    /// One statement: the token's row is deleted by exactly one caller.
    pub(super) fn consume_static_token(
        &self,
        user: UserId,
        device: DeviceId,
        token_hash: &KeyedHash,
    ) -> Result<bool> {
        crate::blocking::assert_may_block("consuming a static token");
        let sql = "DELETE FROM mfa_static_tokens WHERE user_id = $1 AND device_id = $2 \
                   AND hash = $3 RETURNING hash";
        self.read_prepared(sql, async |c, sql| {
            let row = c
                .query_opt(sql, &[&user.0, &device.0, &&token_hash[..]])
                .await?;
            Ok(row.is_some())
        })
    }

    pub(super) fn add_app_password(
        &self,
        user: UserId,
        kind: CredentialKind,
        name: &str,
        expires: Option<Timestamp>,
        hash: &KeyedHash,
    ) -> Result<AppPassword> {
        let record = AppPassword {
            id: AppPasswordId(Uuid::new_v4()),
            kind,
            name: label(&format!("{} name", kind.noun()), name)?,
            created: crate::store::now(),
            expires,
            last_used: None,
            last_used_from: None,
        };
        self.write("adding an app password", async |tx| {
            if super::users::lock_user(tx, user).await?.is_none() {
                return Err(TxError::Store(StoreError::NotFound(format!("user {user}"))));
            }
            let n: i64 = tx
                .query_one(
                    "SELECT count(*) FROM app_passwords WHERE user_id = $1",
                    &[&user.0],
                )
                .await?
                .try_get(0)?;
            if n >= MAX_APP_PASSWORDS as i64 {
                return Err(TxError::Store(StoreError::Invalid(format!(
                    "a user may have at most {MAX_APP_PASSWORDS} app passwords and API tokens; \
                     revoke one first"
                ))));
            }
            tx.execute(
                "INSERT INTO app_passwords (user_id, id, kind, name, created, expires, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &user.0,
                    &record.id.0,
                    &kind_text(kind),
                    &record.name,
                    &record.created,
                    &record.expires,
                    &&hash[..],
                ],
            )
            .await
            .map_err(|e| {
                let e = TxError::from(e);
                if unique_violation(&e) == Some("app_passwords_hash_key") {
                    TxError::Store(StoreError::Backend("app password hash collides".into()))
                } else {
                    e
                }
            })?;
            bump_generation(tx, user).await?;
            Ok(record.clone())
        })
    }

    pub(super) fn app_passwords(&self, user: UserId) -> Result<Vec<AppPassword>> {
        self.uses_written();
        self.read(async |c| {
            c.query(
                &format!(
                    "SELECT {APP_PASSWORD_COLUMNS} FROM app_passwords WHERE user_id = $1 \
                     ORDER BY created, id"
                ),
                &[&user.0],
            )
            .await?
            .iter()
            .map(app_password_row)
            .collect()
        })
    }

    pub(super) fn app_password_by_hash(
        &self,
        hash: &KeyedHash,
    ) -> Result<Option<(UserId, AppPassword)>> {
        crate::blocking::assert_may_block("looking up an app password");
        let client = self.client()?;
        futures::executor::block_on(app_password_by_hash_on(&client, hash)).map_err(super::to_store)
    }

    pub(super) fn revoke_app_password(&self, user: UserId, id: AppPasswordId) -> Result<bool> {
        self.write("revoking an app password", async |tx| {
            let n = tx
                .execute(
                    "DELETE FROM app_passwords WHERE user_id = $1 AND id = $2",
                    &[&user.0, &id.0],
                )
                .await?;
            if n == 0 {
                return Ok(false);
            }
            bump_generation_if_present(tx, user).await?;
            Ok(true)
        })
    }

    pub(super) fn purge_expired_app_passwords(
        &self,
        user: UserId,
        now: Timestamp,
    ) -> Result<usize> {
        self.write("purging expired app passwords", async |tx| {
            let n = tx
                .execute(
                    "DELETE FROM app_passwords WHERE user_id = $1 AND expires IS NOT NULL \
                     AND expires <= $2",
                    &[&user.0, &now],
                )
                .await?;
            if n > 0 {
                bump_generation_if_present(tx, user).await?;
            }
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    pub(super) fn touch_app_password(
        &self,
        user: UserId,
        id: AppPasswordId,
        at: Timestamp,
        from: &str,
    ) -> Result<()> {
        let from: String = from.chars().take(64).collect();
        let delay = match self.inner.uses.note(user, id, at, from) {
            super::uses::Schedule::Nothing => return Ok(()),
            super::uses::Schedule::Later => super::uses::DELAY,
            super::uses::Schedule::Now => std::time::Duration::ZERO,
        };
        let (pool, uses) = (self.inner.pool.clone(), self.inner.uses.clone());
        self.runtime()?
            .spawn(super::uses::write_later(pool, uses, delay));
        Ok(())
    }

    /// Writes the app password uses noted and not yet written, and waits
    /// for it (see `uses`).
    pub(super) fn write_uses(&self) -> Result<()> {
        let taken = self.inner.uses.take();
        if taken.is_empty() {
            return Ok(());
        }
        self.read(async move |c| Ok(super::uses::write(c, taken).await?))
            .map(|_| ())
    }

    /// [`PgStore::write_uses`] before a read that shows uses (listings,
    /// snapshots); a failure is logged, and the read goes on.
    pub(super) fn uses_written(&self) {
        if let Err(e) = self.write_uses() {
            tracing::warn!(error = %e, "app password uses not recorded");
        }
    }

    pub(super) fn group_policy(&self, group: GroupId) -> Result<GroupPolicy> {
        self.read(async |c| policy_of(c, group).await)
    }

    pub(super) fn group_policies(&self) -> Result<Vec<(GroupId, GroupPolicy)>> {
        self.read(async |c| {
            c.query(
                "SELECT group_id, mfa, app_passwords FROM group_policies ORDER BY group_id",
                &[],
            )
            .await?
            .iter()
            .map(|r| Ok((GroupId(r.try_get("group_id")?), policy_row(r)?)))
            .collect()
        })
    }

    pub(super) fn set_group_policy(&self, group: GroupId, policy: GroupPolicy) -> Result<()> {
        self.write("setting a group policy", async |tx| {
            if tx
                .query_opt(
                    "SELECT 1 FROM groups WHERE id = $1 FOR KEY SHARE",
                    &[&group.0],
                )
                .await?
                .is_none()
            {
                return Err(TxError::Store(StoreError::NotFound(format!(
                    "group {group}"
                ))));
            }
            if policy.is_empty() {
                tx.execute(
                    "DELETE FROM group_policies WHERE group_id = $1",
                    &[&group.0],
                )
                .await?;
            } else {
                tx.execute(
                    "INSERT INTO group_policies (group_id, mfa, app_passwords) \
                     VALUES ($1, $2, $3) ON CONFLICT (group_id) DO UPDATE \
                     SET mfa = EXCLUDED.mfa, app_passwords = EXCLUDED.app_passwords",
                    &[
                        &group.0,
                        &policy.mfa.map(MfaPolicy::as_str),
                        &policy.app_passwords,
                    ],
                )
                .await?;
            }
            Ok(())
        })
    }
}
