//! The open LDAP connections, so that a user (the portal's sessions page)
//! and the operator (`portcullis session list|end`) can see who is bound
//! where and end a connection.
//!
//! The LDAP layer registers each connection when it opens
//! ([`Connections::open`]) and keeps the returned [`LiveConnection`] for its
//! lifetime: a bind sets the identity, every request stamps the time of the
//! last operation (one atomic store, no lock), and dropping it removes the
//! entry. The registry's lock is taken on open, close, listing and ending
//! only, never per request. Ending a connection cancels its token; the
//! connection loop watches it and closes the socket at once.
//!
//! Several instances on one database (issue 14): the registry publishes
//! its bound connections on the store's [`ConnectionBoard`] (in the
//! background: a bind never waits for it), lists and ends the other
//! instances' through it, and closes its own when the board says so (a
//! `session end` through another instance, a user disabled or deleted
//! there). A store only one process opens has no board.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::records::find_user;
use super::view::{rfc3339, AdminAnswer, Removed, SessionView};
use super::{AccountError, Actor, AdminContext};
use crate::directory::Identity;
use crate::store::{now, BoardEntry, BoardEvent, ConnectionBoard, Store, Timestamp, UserId};

/// `session list [USER]`: the signed-in portal sessions and the LDAP
/// connections bound as a user (as `username`, when given), each oldest
/// first.
pub fn session_list(
    ctx: &AdminContext,
    actor: &Actor,
    username: Option<&str>,
) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    let user = username.map(|name| find_user(ctx, name)).transpose()?;
    let mut list =
        super::sessions::portal_session_views(&ctx.store, ctx.sessions, user.as_ref(), now())?;
    list.extend(ldap_rows(&ctx.connections, user.map(|u| u.id)));
    Ok(AdminAnswer::Sessions(list))
}

/// The LDAP connections bound as a user (as `user`, when given): this
/// process's, then the other instances' (when the store is shared; left
/// out, with a warning, while the database cannot be reached).
pub(super) fn ldap_rows(connections: &Connections, user: Option<UserId>) -> Vec<SessionView> {
    let mut rows: Vec<SessionView> = connections
        .bound(user)
        .into_iter()
        .map(|c| SessionView {
            id: c.id.to_string(),
            kind: "ldap".into(),
            username: c.username,
            address: c.peer.ip().to_string(),
            created: rfc3339(c.bound_at),
            last_seen: rfc3339(c.last_op),
            user_agent: None,
        })
        .collect();
    if let Some(board) = connections.board() {
        match board.others(user) {
            Ok(others) => rows.extend(others.into_iter().map(|c| SessionView {
                id: c.id.to_string(),
                kind: "ldap".into(),
                username: c.username,
                address: c.address,
                created: rfc3339(c.bound_at),
                last_seen: rfc3339(c.last_op),
                user_agent: None,
            })),
            Err(e) => {
                tracing::warn!(error = %e, "could not list other instances' LDAP connections")
            }
        }
    }
    rows
}

/// `session end ID`: closes that LDAP connection (within a moment: its
/// task sees the request and closes the socket), or ends that portal
/// session (its browser is signed out at its next request).
pub fn session_end(
    ctx: &AdminContext,
    actor: &Actor,
    id: &str,
) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    let missing = || AccountError::NotFound(format!("no open session {id}"));
    let uuid = Uuid::parse_str(id.trim()).map_err(|_| missing())?;
    let kind = if ctx.connections.end(uuid, None) {
        "ldap"
    } else if super::sessions::end_portal_session(&ctx.store, uuid, None)? {
        "portal"
    } else if ctx.connections.end_elsewhere(uuid, None)? {
        "ldap"
    } else {
        return Err(missing());
    };
    tracing::info!(target: "portcullis::audit", session = %uuid, kind, by = "operator", "session ended");
    Ok(AdminAnswer::Removed(Removed::new(uuid.to_string())))
}

/// Every open LDAP connection of this process. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Connections {
    inner: Arc<Mutex<HashMap<Uuid, Arc<Entry>>>>,
    /// The store's board, when several processes share it.
    board: Arc<OnceLock<Arc<dyn ConnectionBoard>>>,
}

type Registry = Mutex<HashMap<Uuid, Arc<Entry>>>;

fn lock_registry(r: &Registry) -> MutexGuard<'_, HashMap<Uuid, Arc<Entry>>> {
    // A panic while holding this lock leaves a consistent map (each
    // change is one insert or remove): keep serving.
    r.lock().unwrap_or_else(|e| e.into_inner())
}

/// Closes what a board's event names, in the registry `weak` (if it is
/// still there).
fn on_board_event(weak: &Weak<Registry>, event: BoardEvent) {
    let Some(registry) = weak.upgrade() else {
        return;
    };
    let entries: Vec<Arc<Entry>> = match event {
        BoardEvent::End(id) => lock_registry(&registry)
            .get(&id)
            .cloned()
            .into_iter()
            .collect(),
        BoardEvent::UserGone(user) => lock_registry(&registry)
            .values()
            .filter(|e| e.bound_user() == Some(user))
            .cloned()
            .collect(),
    };
    for e in entries {
        e.end.cancel();
    }
}

struct Entry {
    peer: SocketAddr,
    opened: Timestamp,
    last_op: AtomicI64,
    /// Who the connection is bound as, and since when.
    bound: Mutex<Option<Bound>>,
    end: CancellationToken,
}

#[derive(Clone)]
struct Bound {
    user: UserId,
    username: String,
    at: Timestamp,
}

/// One open connection as listings show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub id: Uuid,
    pub user: UserId,
    pub username: String,
    pub peer: SocketAddr,
    pub opened: Timestamp,
    pub bound_at: Timestamp,
    pub last_op: Timestamp,
}

impl Entry {
    fn bound_user(&self) -> Option<UserId> {
        self.bound
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|b| b.user)
    }
}

impl Connections {
    /// A registry for a server (or CLI) on `store`: shares its
    /// connections through the store's board when it has one.
    pub fn for_store(store: &Store) -> Connections {
        let connections = Connections::default();
        if let Some(board) = store.connection_board() {
            let weak = Arc::downgrade(&connections.inner);
            board.subscribe(Box::new(move |event| on_board_event(&weak, event)));
            let _ = connections.board.set(board);
        }
        connections
    }

    fn board(&self) -> Option<&Arc<dyn ConnectionBoard>> {
        self.board.get()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Arc<Entry>>> {
        lock_registry(&self.inner)
    }

    /// Asks the instance holding connection `id` (bound as `user`, when
    /// given) to close it; `Ok(false)` when no other instance holds one
    /// (or the store is not shared). Blocking (a database write).
    pub fn end_elsewhere(&self, id: Uuid, user: Option<UserId>) -> crate::store::Result<bool> {
        match self.board() {
            Some(board) => board.end(id, user),
            None => Ok(false),
        }
    }

    /// Registers a new connection from `peer`, anonymous until it binds.
    /// Its end ([`LiveConnection::ended`]) is a child of `within` (the
    /// server's shutdown), so its reader waits on one token for both.
    pub fn open(&self, peer: SocketAddr, within: &CancellationToken) -> LiveConnection {
        let at = now();
        let entry = Arc::new(Entry {
            peer,
            opened: at,
            last_op: AtomicI64::new(at),
            bound: Mutex::new(None),
            end: within.child_token(),
        });
        let id = connection_id();
        self.lock().insert(id, entry.clone());
        LiveConnection {
            id,
            entry,
            registry: self.clone(),
        }
    }

    /// The connections bound as a user (as `user`, when given), oldest
    /// first. Anonymous connections are not listed: they act for nobody.
    pub fn bound(&self, user: Option<UserId>) -> Vec<ConnectionInfo> {
        let entries: Vec<(Uuid, Arc<Entry>)> =
            self.lock().iter().map(|(id, e)| (*id, e.clone())).collect();
        let mut out: Vec<ConnectionInfo> = entries
            .into_iter()
            .filter_map(|(id, e)| {
                let bound = e.bound.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
                if user.is_some_and(|u| u != bound.user) {
                    return None;
                }
                Some(ConnectionInfo {
                    id,
                    user: bound.user,
                    username: bound.username,
                    peer: e.peer,
                    opened: e.opened,
                    bound_at: bound.at,
                    last_op: e.last_op.load(Ordering::Relaxed),
                })
            })
            .collect();
        out.sort_by(|a, b| a.bound_at.cmp(&b.bound_at).then(a.id.cmp(&b.id)));
        out
    }

    /// Closes the connection `id` if it is open and bound as `user` (any
    /// user, when `None`). Returns whether one was ended; its socket is
    /// closed by its own task right after.
    pub fn end(&self, id: Uuid, user: Option<UserId>) -> bool {
        let Some(entry) = self.lock().get(&id).cloned() else {
            return false;
        };
        if let Some(user) = user {
            let owner = entry
                .bound
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|b| b.user);
            if owner != Some(user) {
                return false;
            }
        }
        entry.end.cancel();
        true
    }

    /// Closes every connection bound as `user` (a disabled or deleted
    /// account); returns how many.
    pub fn end_all_of(&self, user: UserId) -> usize {
        self.bound(Some(user))
            .into_iter()
            .filter(|c| self.end(c.id, Some(user)))
            .count()
    }

    /// How many connections are open (bound or not).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A new connection's id: a version 4 UUID, as `Uuid::new_v4` makes, its
/// 122 random bits drawn from the thread's generator (rand's `ThreadRng`, a
/// ChaCha stream seeded and reseeded from the OS) instead of a `getrandom`
/// system call per connection. Ids stay unique across the instances that
/// share a database's board, and as hard to guess as before.
fn connection_id() -> Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

/// A registered connection; dropping it unregisters.
pub struct LiveConnection {
    id: Uuid,
    entry: Arc<Entry>,
    registry: Connections,
}

impl LiveConnection {
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// After a bind: who the connection now acts for.
    pub fn set_identity(&self, identity: &Identity) {
        let bound = match identity {
            Identity::User { id, username } => Some(Bound {
                user: *id,
                username: username.clone(),
                at: now(),
            }),
            Identity::Anonymous => None,
        };
        if let Some(board) = self.registry.board() {
            board.publish(
                self.id,
                bound.as_ref().map(|b| BoardEntry {
                    id: self.id,
                    user: b.user,
                    username: b.username.clone(),
                    address: self.entry.peer.ip().to_string(),
                    bound_at: b.at,
                    last_op: b.at,
                }),
            );
        }
        *self.entry.bound.lock().unwrap_or_else(|p| p.into_inner()) = bound;
    }

    /// A request arrived.
    pub fn touch(&self) {
        self.entry.last_op.store(now(), Ordering::Relaxed);
    }

    /// Cancelled when someone ends this connection, and when the token it
    /// was opened within is.
    pub fn ended(&self) -> CancellationToken {
        self.entry.end.clone()
    }
}

impl Drop for LiveConnection {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
        if let Some(board) = self.registry.board() {
            if self.entry.bound_user().is_some() {
                board.publish(self.id, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity::User {
            id: UserId(Uuid::from_u128(1)),
            username: "alice".into(),
        }
    }

    #[test]
    fn bound_connections_are_listed_ended_and_forgotten() {
        let reg = Connections::default();
        let peer: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let anon = reg.open(peer, &CancellationToken::new());
        let a = reg.open(peer, &CancellationToken::new());
        assert_eq!(reg.len(), 2);
        assert!(
            reg.bound(None).is_empty(),
            "anonymous connections are not listed"
        );
        a.set_identity(&alice());
        let listed = reg.bound(None);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, a.id());
        assert_eq!(listed[0].username, "alice");
        assert_eq!(listed[0].peer, peer);
        let other = UserId(Uuid::from_u128(2));
        assert!(reg.bound(Some(other)).is_empty());

        // Only the owner (or the operator, `None`) ends it.
        assert!(!reg.end(a.id(), Some(other)));
        assert!(!a.ended().is_cancelled());
        assert!(!reg.end(anon.id(), Some(UserId(Uuid::from_u128(1)))));
        assert!(reg.end(a.id(), Some(UserId(Uuid::from_u128(1)))));
        assert!(a.ended().is_cancelled());

        // A bind as anonymous again unlists it; closing forgets it.
        a.set_identity(&Identity::Anonymous);
        assert!(reg.bound(None).is_empty());
        drop(a);
        drop(anon);
        assert!(reg.is_empty());
        assert!(!reg.end(Uuid::from_u128(9), None));
    }

    #[test]
    fn connection_ids_are_distinct_version_4_uuids_that_end_their_connection() {
        let reg = Connections::default();
        let peer: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let open: Vec<LiveConnection> = (0..10_000)
            .map(|_| reg.open(peer, &CancellationToken::new()))
            .collect();
        let ids: std::collections::HashSet<Uuid> = open.iter().map(LiveConnection::id).collect();
        assert_eq!(ids.len(), open.len(), "every connection has its own id");
        assert!(open.iter().all(
            |c| c.id().get_version_num() == 4 && c.id().get_variant() == uuid::Variant::RFC4122
        ));
        // Ids made on another thread (another reactor) do not repeat them.
        let other = std::thread::spawn({
            let reg = reg.clone();
            move || {
                (0..1_000)
                    .map(|_| reg.open(peer, &CancellationToken::new()).id())
                    .collect::<Vec<_>>()
            }
        })
        .join()
        .expect("thread");
        assert!(other.iter().all(|id| !ids.contains(id)));
        // `session end` finds one by the id listings show.
        let chosen = &open[4_321];
        chosen.set_identity(&alice());
        let listed = reg.bound(None);
        assert_eq!(listed.len(), 1);
        let id = Uuid::parse_str(&listed[0].id.to_string()).expect("parses back");
        assert!(reg.end(id, None));
        assert!(chosen.ended().is_cancelled());
        assert!(!open[0].ended().is_cancelled());
    }
}
