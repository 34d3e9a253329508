//! Portal sessions, as the account layer keeps them: opened once `auth`
//! has decided a sign-in, found again from the browser's secret id (with
//! the expiry rules here), touched, listed and ended. The store keeps
//! only the SHA-256 hash of each id ([`crate::store::SessionHash`]), so a
//! copy of it signs nobody in.
//!
//! Expiry: a session ends after `idle` without a request and, whatever
//! its use, `absolute` after sign-in; a session still waiting for its
//! code ends after [`PENDING_CODE_SECS`]. A session of a deleted or
//! disabled user ends at its next request. An ended session is removed
//! from the store when it is next presented.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::view::{rfc3339, SessionView};
use super::{AccountError, Accounts, Actor};
use crate::blocking::off_reactor;
use crate::domain::session::{bounded, MAX_ADDRESS_LEN, MAX_USER_AGENT_LEN};
use crate::store::{PortalSession, SessionHash, SessionId, Store, Timestamp, User, UserId};

/// How long the code step of a sign-in may take.
pub const PENDING_CODE_SECS: i64 = 300;
/// A session's last request is written at most this often (a write per
/// request would cost more than the minute of idle time it tells apart).
const TOUCH_EVERY_SECS: i64 = 60;
/// Random bytes in a session id (256 bits) and in a CSRF token.
const ID_BYTES: usize = 32;

/// How long sessions live (`[portal] session_idle_secs` and
/// `session_max_secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// A session without a request for this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, however used.
    pub absolute: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle: Duration::from_secs(2 * 3600),
            absolute: Duration::from_secs(24 * 3600),
        }
    }
}

/// A session's secret id: the value of the browser's cookie. Its `Debug`
/// never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(********)")
    }
}

impl SessionToken {
    fn generate() -> SessionToken {
        SessionToken(random_text())
    }

    /// 256 random bits as text, for tokens that are not session ids (the
    /// sign-in form's CSRF token).
    pub fn random_text() -> String {
        random_text()
    }

    /// A cookie value that has the shape of a session id; `None` for
    /// anything else (which then costs no store read).
    pub fn parse(text: &str) -> Option<SessionToken> {
        let ok = text.len() == 43
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| SessionToken(text.to_string()))
    }

    /// The cookie value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn hash(&self) -> SessionHash {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

/// 32 random bytes from the OS, base64url without padding (43 chars).
fn random_text() -> String {
    let mut bytes = [0u8; ID_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A session presented by a browser and found alive, with its user.
#[derive(Debug, Clone)]
pub struct CurrentSession {
    pub token: SessionToken,
    pub session: PortalSession,
    pub user: User,
}

/// Where a sign-in comes from, as kept with its session.
#[derive(Debug, Clone)]
pub struct Client {
    pub address: String,
    pub user_agent: String,
}

impl Accounts {
    /// Opens a new session for `user`, whose sign-in `auth` decided
    /// (`pending_code`: the password was right and a code is due). Only
    /// the server opens sessions: `actor` is [`Actor::System`]. The id is
    /// new and random every time, so a value planted in a browser before
    /// sign-in is never one that signs in.
    pub async fn open_session(
        &self,
        actor: &Actor,
        user: &User,
        pending_code: bool,
        client: &Client,
        now: Timestamp,
    ) -> Result<(SessionToken, PortalSession), AccountError> {
        if *actor != Actor::System {
            return Err(AccountError::Denied(
                "only the server opens sessions".into(),
            ));
        }
        let token = SessionToken::generate();
        let session = PortalSession {
            id: SessionId(Uuid::new_v4()),
            user: user.id,
            created: now,
            last_seen: now,
            address: bounded(&client.address, MAX_ADDRESS_LEN),
            user_agent: bounded(&client.user_agent, MAX_USER_AGENT_LEN),
            csrf: random_text(),
            pending_code,
        };
        let (store, hash, record) = (self.store().clone(), token.hash(), session.clone());
        off_reactor(move || store.create_session(&hash, &record)).await?;
        Ok((token, session))
    }

    /// The live session behind a cookie value, or `None` (unknown, ended,
    /// expired, or its user gone or disabled: an expired one is removed).
    /// Notes the request as the session's last (at most once a minute).
    pub async fn current_session(
        &self,
        cookie: &str,
        now: Timestamp,
    ) -> Result<Option<CurrentSession>, AccountError> {
        let Some(token) = SessionToken::parse(cookie) else {
            return Ok(None);
        };
        let (store, hash, limits) = (self.store().clone(), token.hash(), self.sessions);
        let found = off_reactor(move || {
            let Some(session) = store.session(&hash)? else {
                return Ok::<_, AccountError>(None);
            };
            let user = store.user(session.user)?;
            let alive = match &user {
                Some(u) if !u.disabled => !expired(&session, limits, now),
                _ => false,
            };
            if !alive {
                store.delete_session(&hash)?;
                return Ok(None);
            }
            if now - session.last_seen >= TOUCH_EVERY_SECS {
                store.touch_session(&hash, now)?;
            }
            Ok(user.map(|u| (session, u)))
        })
        .await?;
        Ok(found.map(|(session, user)| CurrentSession {
            token,
            session,
            user,
        }))
    }

    /// Ends the session behind a cookie value (sign-out); `false` if it
    /// was not alive.
    pub async fn end_session(&self, token: &SessionToken) -> Result<bool, AccountError> {
        let (store, hash) = (self.store().clone(), token.hash());
        Ok(off_reactor(move || store.delete_session(&hash)).await?)
    }

    /// The portal sessions of `username`, oldest first: for the user
    /// themself or the operator.
    pub async fn sessions_of(
        &self,
        actor: &Actor,
        username: &str,
    ) -> Result<Vec<PortalSession>, AccountError> {
        actor.may_manage(username)?;
        let (store, name) = (self.store().clone(), username.to_string());
        off_reactor(move || {
            let user = store
                .user_by_name(&name)?
                .ok_or_else(|| AccountError::NotFound(format!("user {name} not found")))?;
            Ok(store
                .sessions_of(user.id)?
                .into_iter()
                .map(|(_, s)| s)
                .collect())
        })
        .await
    }

    /// Ends every portal session of `username` except `keep` (the caller's
    /// own, after a password change); answers how many ended.
    pub async fn end_other_sessions(
        &self,
        actor: &Actor,
        username: &str,
        keep: Option<&SessionToken>,
    ) -> Result<usize, AccountError> {
        actor.may_manage(username)?;
        let (store, name) = (self.store().clone(), username.to_string());
        let keep = keep.map(SessionToken::hash);
        off_reactor(move || {
            let user = store
                .user_by_name(&name)?
                .ok_or_else(|| AccountError::NotFound(format!("user {name} not found")))?;
            Ok(store.delete_sessions_of(user.id, keep.as_ref())?)
        })
        .await
    }
}

/// The live, signed-in portal sessions (of `user`, or of everyone) as
/// `session list` and the sessions page show them, oldest first. Blocking.
pub(super) fn portal_session_views(
    store: &Store,
    limits: SessionSettings,
    user: Option<&User>,
    at: Timestamp,
) -> Result<Vec<SessionView>, AccountError> {
    let users = match user {
        Some(u) => vec![u.clone()],
        None => store.users()?,
    };
    let mut out = Vec::new();
    for user in users.iter().filter(|u| !u.disabled) {
        let mut own: Vec<PortalSession> = store
            .sessions_of(user.id)?
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| !s.pending_code && !expired(s, limits, at))
            .collect();
        own.sort_by_key(|s| s.created);
        out.extend(own.into_iter().map(|s| SessionView {
            id: s.id.0.to_string(),
            kind: "portal".into(),
            username: user.username.clone(),
            address: s.address,
            created: rfc3339(s.created),
            last_seen: rfc3339(s.last_seen),
            user_agent: Some(s.user_agent),
        }));
    }
    Ok(out)
}

/// Ends the portal session whose (public) id is `id`, of `user` when
/// given, of anyone otherwise; `false` when there is none. Its browser is
/// signed out at its next request. Blocking.
pub(super) fn end_portal_session(
    store: &Store,
    id: Uuid,
    user: Option<UserId>,
) -> Result<bool, AccountError> {
    let owners = match user {
        Some(u) => vec![u],
        None => store.users()?.into_iter().map(|u| u.id).collect(),
    };
    for owner in owners {
        if let Some((hash, _)) = store
            .sessions_of(owner)?
            .into_iter()
            .find(|(_, s)| s.id.0 == id)
        {
            return Ok(store.delete_session(&hash)?);
        }
    }
    Ok(false)
}

/// True when `session` has ended by time at `now`.
fn expired(session: &PortalSession, limits: SessionSettings, now: Timestamp) -> bool {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    if session.pending_code {
        return now >= session.created.saturating_add(PENDING_CODE_SECS);
    }
    now >= session.last_seen.saturating_add(secs(limits.idle))
        || now >= session.created.saturating_add(secs(limits.absolute))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::Hasher;
    use crate::auth::Authenticator;
    use crate::directory::{Directory, Dn, Identity};
    use crate::store::{NewUser, Store};

    fn accounts(store: &Store) -> Accounts {
        let dir = Directory::new(
            store.clone(),
            Dn::parse("dc=example,dc=com").expect("dn"),
            "admins",
            "ldap-search",
        );
        let auth = Authenticator::new(store.clone(), Hasher::for_tests());
        Accounts::new(dir, auth).with_session_settings(SessionSettings {
            idle: Duration::from_secs(100),
            absolute: Duration::from_secs(1000),
        })
    }

    fn client() -> Client {
        Client {
            address: "192.0.2.7".into(),
            user_agent: "Agent\n".repeat(100),
        }
    }

    #[test]
    fn tokens_have_one_shape_and_hide_in_debug() {
        let t = SessionToken::generate();
        assert_eq!(SessionToken::parse(t.as_str()), Some(t.clone()));
        assert_eq!(SessionToken::parse("short"), None);
        assert_eq!(SessionToken::parse(&("a".repeat(42) + "=")), None);
        assert!(!format!("{t:?}").contains(t.as_str()));
        assert_ne!(SessionToken::generate(), t);
    }

    #[tokio::test]
    async fn sessions_expire_idle_absolute_and_pending() {
        let store = Store::temporary().expect("store");
        let a = accounts(&store);
        let alice = store
            .create_user(NewUser {
                username: "alice".into(),
                ..NewUser::default()
            })
            .expect("user");
        let (t, s) = a
            .open_session(&Actor::System, &alice, false, &client(), 1000)
            .await
            .expect("open");
        assert!(s.user_agent.len() <= MAX_USER_AGENT_LEN);
        assert!(!s.user_agent.contains('\n'));
        // Only the hash is stored.
        let stored = store.sessions_of(alice.id).expect("list");
        assert_eq!(stored.len(), 1);
        assert_ne!(&stored[0].0[..], t.as_str().as_bytes());

        let found = a.current_session(t.as_str(), 1099).await.expect("read");
        assert_eq!(found.map(|c| c.user.id), Some(alice.id));
        // touched at 1099: idle counts from there
        assert!(a
            .current_session(t.as_str(), 1198)
            .await
            .expect("r")
            .is_some());
        assert!(a
            .current_session(t.as_str(), 1298)
            .await
            .expect("r")
            .is_none());
        assert!(
            store.sessions_of(alice.id).expect("list").is_empty(),
            "removed"
        );

        // absolute: used every 50 s, still over at created + 1000
        let (t, _) = a
            .open_session(&Actor::System, &alice, false, &client(), 0)
            .await
            .expect("open");
        for now in (60..1000).step_by(60) {
            assert!(a
                .current_session(t.as_str(), now)
                .await
                .expect("r")
                .is_some());
        }
        assert!(a
            .current_session(t.as_str(), 1000)
            .await
            .expect("r")
            .is_none());

        // pending: five minutes for the code
        let (t, _) = a
            .open_session(&Actor::System, &alice, true, &client(), 0)
            .await
            .expect("open");
        assert!(a
            .current_session(t.as_str(), 60)
            .await
            .expect("r")
            .is_some());
        assert!(a
            .current_session(t.as_str(), PENDING_CODE_SECS)
            .await
            .expect("r")
            .is_none());
    }

    #[tokio::test]
    async fn only_the_user_or_operator_lists_and_ends_and_disabled_users_lose_them() {
        let store = Store::temporary().expect("store");
        let a = accounts(&store);
        let mk = |name: &str| {
            store
                .create_user(NewUser {
                    username: name.into(),
                    ..NewUser::default()
                })
                .expect("user")
        };
        let (alice, bob) = (mk("alice"), mk("bob"));
        let mut tokens = Vec::new();
        for now in [10, 20, 30] {
            let (t, _) = a
                .open_session(&Actor::System, &alice, false, &client(), now)
                .await
                .expect("open");
            tokens.push(t);
        }
        let as_bob = Actor::Bound(Identity::User {
            id: bob.id,
            username: "bob".into(),
        });
        let as_alice = Actor::Bound(Identity::User {
            id: alice.id,
            username: "alice".into(),
        });
        assert!(matches!(
            a.sessions_of(&as_bob, "alice").await,
            Err(AccountError::Denied(_))
        ));
        assert!(matches!(
            a.open_session(&as_alice, &alice, false, &client(), 0).await,
            Err(AccountError::Denied(_))
        ));
        assert_eq!(
            a.sessions_of(&as_alice, "alice").await.expect("list").len(),
            3
        );
        assert_eq!(
            a.end_other_sessions(&as_alice, "alice", Some(&tokens[1]))
                .await
                .expect("end"),
            2
        );
        assert!(a
            .current_session(tokens[0].as_str(), 40)
            .await
            .expect("r")
            .is_none());
        assert!(a
            .current_session(tokens[1].as_str(), 40)
            .await
            .expect("r")
            .is_some());
        assert!(a.end_session(&tokens[1]).await.expect("end"));
        assert!(a
            .current_session(tokens[1].as_str(), 41)
            .await
            .expect("r")
            .is_none());

        let (t, _) = a
            .open_session(&Actor::System, &bob, false, &client(), 50)
            .await
            .expect("open");
        store
            .update_user(bob.id, &|u| {
                u.disabled = true;
                Ok(())
            })
            .expect("disable");
        assert!(a
            .current_session(t.as_str(), 51)
            .await
            .expect("r")
            .is_none());
    }
}
