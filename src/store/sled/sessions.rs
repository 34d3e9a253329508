//! Portal sessions in sled.
//!
//! # Trees
//! | tree | key | value |
//! | --- | --- | --- |
//! | `portal_sessions` | session hash (32) | [`PortalSession`] as JSON |
//! | `idx_portal_session_user` | user id ++ session hash | empty |
//!
//! The key is the SHA-256 hash of the session's secret id; the id is never
//! stored. A session and its index entry are written and removed in one
//! transaction. Touching a session (its last request) rewrites the record
//! alone and is not flushed: bookkeeping, like an app password's last use.

use sled::transaction::Transactional;
use sled::Tree;

use super::keys::{self, ID_LEN};
use super::{abort, backend, decode, encode, once, Result, SledStore, StoreError, Timestamp};
use crate::store::{PortalSession, SessionHash, UserId};

/// The trees of this module, opened with the rest in `SledStore::open`.
pub(super) struct SessionTrees {
    sessions: Tree,
    by_user: Tree,
}

impl SessionTrees {
    pub(super) fn open(db: &sled::Db) -> Result<SessionTrees> {
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        Ok(SessionTrees {
            sessions: tree("portal_sessions")?,
            by_user: tree("idx_portal_session_user")?,
        })
    }
}

fn user_index_key(user: UserId, hash: &SessionHash) -> Vec<u8> {
    let mut key = keys::user_key(user).to_vec();
    key.extend_from_slice(hash);
    key
}

impl SledStore {
    fn session_trees(&self) -> &SessionTrees {
        &self.t.sessions
    }

    pub fn create_session(&self, hash: &SessionHash, session: &PortalSession) -> Result<()> {
        let t = self.session_trees();
        let bytes = encode("session", session)?;
        let index = user_index_key(session.user, hash);
        let written = (&t.sessions, &t.by_user).transaction(|(sessions, by_user)| {
            if sessions.get(&hash[..])?.is_some() {
                return Err(abort(StoreError::AlreadyExists("session".into())));
            }
            sessions.insert(&hash[..], bytes.as_slice())?;
            by_user.insert(index.as_slice(), super::EMPTY)?;
            Ok(())
        });
        self.committed(once(&self.t, written))
    }

    pub fn session(&self, hash: &SessionHash) -> Result<Option<PortalSession>> {
        match self
            .session_trees()
            .sessions
            .get(&hash[..])
            .map_err(backend)?
        {
            Some(b) => Ok(Some(decode("session", &b)?)),
            None => Ok(None),
        }
    }

    pub fn touch_session(&self, hash: &SessionHash, at: Timestamp) -> Result<bool> {
        let old = self
            .session_trees()
            .sessions
            .fetch_and_update(&hash[..], |old| {
                let mut record: PortalSession = decode("session", old?).ok()?;
                record.last_seen = record.last_seen.max(at);
                encode("session", &record).ok()
            })
            .map_err(backend)?;
        Ok(old.is_some())
    }

    pub fn delete_session(&self, hash: &SessionHash) -> Result<bool> {
        let t = self.session_trees();
        let removed = (&t.sessions, &t.by_user).transaction(|(sessions, by_user)| {
            let Some(old) = sessions.remove(&hash[..])? else {
                return Ok(false);
            };
            let record: PortalSession = decode("session", &old).map_err(abort)?;
            by_user.remove(user_index_key(record.user, hash))?;
            Ok(true)
        });
        self.committed(once(&self.t, removed))
    }

    pub fn sessions_of(&self, user: UserId) -> Result<Vec<(SessionHash, PortalSession)>> {
        let t = self.session_trees();
        let mut out = Vec::new();
        for entry in t.by_user.scan_prefix(keys::user_key(user)) {
            let (key, _) = entry.map_err(backend)?;
            let hash: SessionHash = key
                .get(ID_LEN..)
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| StoreError::Backend("corrupt session index key".into()))?;
            if let Some(record) = self.session(&hash)? {
                out.push((hash, record));
            }
        }
        out.sort_by_key(|(_, s)| (s.created, s.id));
        Ok(out)
    }

    /// Every session, in key (hash) order.
    pub fn all_sessions(&self) -> Result<Vec<(SessionHash, PortalSession)>> {
        let mut out = Vec::new();
        for entry in self.session_trees().sessions.iter() {
            let (key, value) = entry.map_err(backend)?;
            let hash: SessionHash = key[..]
                .try_into()
                .map_err(|_| StoreError::Backend("corrupt session key".into()))?;
            out.push((hash, decode("session", &value)?));
        }
        Ok(out)
    }

    pub fn delete_sessions_of(&self, user: UserId, keep: Option<&SessionHash>) -> Result<usize> {
        let mut removed = 0;
        for (hash, _) in self.sessions_of(user)? {
            if keep == Some(&hash) {
                continue;
            }
            if self.delete_session(&hash)? {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
