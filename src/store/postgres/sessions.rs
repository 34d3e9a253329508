//! Portal sessions in PostgreSQL, under the hash of their secret id. They
//! go with their user (foreign key, cascading).

use tokio_postgres::Row;

use super::{foreign_key_violation, unique_violation, PgStore, TxError, TxResult};
use crate::store::{PortalSession, Result, SessionHash, SessionId, StoreError, Timestamp, UserId};

const SESSION_COLUMNS: &str =
    "hash, id, user_id, created, last_seen, address, user_agent, csrf, pending_code";

fn session_row(row: &Row) -> TxResult<(SessionHash, PortalSession)> {
    let hash: &[u8] = row.try_get("hash")?;
    let hash: SessionHash = hash
        .try_into()
        .map_err(|_| TxError::Store(StoreError::Backend("corrupt session hash".into())))?;
    Ok((
        hash,
        PortalSession {
            id: SessionId(row.try_get("id")?),
            user: UserId(row.try_get("user_id")?),
            created: row.try_get("created")?,
            last_seen: row.try_get("last_seen")?,
            address: row.try_get("address")?,
            user_agent: row.try_get("user_agent")?,
            csrf: row.try_get("csrf")?,
            pending_code: row.try_get("pending_code")?,
        },
    ))
}

impl PgStore {
    pub(super) fn create_session(&self, hash: &SessionHash, s: &PortalSession) -> Result<()> {
        self.read(async |c| {
            c.execute(
                "INSERT INTO portal_sessions (hash, id, user_id, created, last_seen, address, \
                 user_agent, csrf, pending_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &&hash[..],
                    &s.id.0,
                    &s.user.0,
                    &s.created,
                    &s.last_seen,
                    &s.address,
                    &s.user_agent,
                    &s.csrf,
                    &s.pending_code,
                ],
            )
            .await
            .map_err(|e| {
                let e = TxError::from(e);
                if unique_violation(&e) == Some("portal_sessions_pkey") {
                    TxError::Store(StoreError::AlreadyExists("session".into()))
                } else if foreign_key_violation(&e) {
                    TxError::Store(StoreError::NotFound(format!("user {}", s.user)))
                } else {
                    e
                }
            })?;
            Ok(())
        })
    }

    pub(super) fn session(&self, hash: &SessionHash) -> Result<Option<PortalSession>> {
        self.read(async |c| {
            let row = c
                .query_opt(
                    &format!("SELECT {SESSION_COLUMNS} FROM portal_sessions WHERE hash = $1"),
                    &[&&hash[..]],
                )
                .await?;
            Ok(row.as_ref().map(session_row).transpose()?.map(|(_, s)| s))
        })
    }

    pub(super) fn touch_session(&self, hash: &SessionHash, at: Timestamp) -> Result<bool> {
        self.read(async |c| {
            let n = c
                .execute(
                    "UPDATE portal_sessions SET last_seen = greatest(last_seen, $2) \
                     WHERE hash = $1",
                    &[&&hash[..], &at],
                )
                .await?;
            Ok(n == 1)
        })
    }

    pub(super) fn delete_session(&self, hash: &SessionHash) -> Result<bool> {
        self.read(async |c| {
            let n = c
                .execute("DELETE FROM portal_sessions WHERE hash = $1", &[&&hash[..]])
                .await?;
            Ok(n == 1)
        })
    }

    pub(super) fn sessions_of(&self, user: UserId) -> Result<Vec<(SessionHash, PortalSession)>> {
        self.read(async |c| {
            c.query(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM portal_sessions WHERE user_id = $1 \
                     ORDER BY created, id"
                ),
                &[&user.0],
            )
            .await?
            .iter()
            .map(session_row)
            .collect()
        })
    }

    /// Every session, by hash (bytea orders bytewise, as sled's keys).
    pub(super) fn all_sessions(&self) -> Result<Vec<(SessionHash, PortalSession)>> {
        self.read(async |c| {
            c.query(
                &format!("SELECT {SESSION_COLUMNS} FROM portal_sessions ORDER BY hash"),
                &[],
            )
            .await?
            .iter()
            .map(session_row)
            .collect()
        })
    }

    pub(super) fn delete_sessions_of(
        &self,
        user: UserId,
        keep: Option<&SessionHash>,
    ) -> Result<usize> {
        let keep: Option<&[u8]> = keep.map(|k| &k[..]);
        self.read(async |c| {
            let n = c
                .execute(
                    "DELETE FROM portal_sessions WHERE user_id = $1 \
                     AND ($2::bytea IS NULL OR hash <> $2)",
                    &[&user.0, &keep],
                )
                .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }
}
