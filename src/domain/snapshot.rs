//! A whole directory at one instant: what [`crate::store::Backend::snapshot`]
//! answers in memory, and what [`crate::store::Backend::snapshot_streamed`]
//! hands to a [`SnapshotSink`] piece by piece (exports and backups, in
//! bounded memory).
//!
//! A [`Snapshot`] is plain data owned by the caller: once a backend has
//! handed it over, using it holds no lock and no transaction. A streamed
//! one holds the backend's snapshot (sled: its write lock) until the sink
//! is done. Consistency is the backend's promise either way: every
//! record, membership, credential and counter of one snapshot is as it
//! was at the same moment, so each member refers to a user or group of
//! the same snapshot.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// A map keyed by ids (random UUIDs the store made), hashed with FxHash:
/// an export of a million users looks up each user in maps of a million
/// entries, where SipHash was 7% of its CPU. Not for keys a client
/// chooses (no protection against colliding keys).
pub type IdMap<K, V> = HashMap<K, V, rustc_hash::FxBuildHasher>;
/// The set of [`IdMap`].
pub type IdSet<K> = HashSet<K, rustc_hash::FxBuildHasher>;

use super::mfa::{GroupPolicy, RawSecondFactors};
use super::model::{Group, GroupId, Member, User, UserId};
use super::Result;

/// Every record of a store at one instant.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Ordered by lowercase username.
    pub users: Vec<SnapshotUser>,
    /// Ordered by lowercase name.
    pub groups: Vec<SnapshotGroup>,
    /// Every setting, ordered by key.
    pub settings: Vec<(String, String)>,
    /// The allocators: (next uidNumber, next gidNumber).
    pub counters: (u32, u32),
}

/// A user with its credentials.
#[derive(Clone)]
pub struct SnapshotUser {
    pub user: User,
    /// The stored PHC (or scheme-tagged legacy) string.
    pub password_hash: Option<String>,
    /// Devices (with secrets, last steps, unused tokens) and app passwords
    /// (with their keyed hashes).
    pub second_factors: RawSecondFactors,
}

impl fmt::Debug for SnapshotUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotUser")
            .field("user", &self.user)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "********"),
            )
            .field("second_factors", &self.second_factors)
            .finish()
    }
}

impl SnapshotUser {
    /// Where the user stands in a snapshot's canonical order: its
    /// lowercase username, compared bytewise.
    pub fn canonical_key(&self) -> String {
        self.user.username.to_ascii_lowercase()
    }

    /// Devices and app passwords oldest first, then by id; static tokens
    /// by hash (see [`Snapshot::sort_canonically`]).
    pub fn sort_canonically(&mut self) {
        let f = &mut self.second_factors;
        f.devices.sort_by_key(|d| (d.device.created, d.device.id.0));
        for d in &mut f.devices {
            d.static_tokens.sort();
        }
        f.app_passwords
            .sort_by_key(|a| (a.record.created, a.record.id.0));
    }

    /// True when it holds an app password or an unused static token:
    /// hashes keyed with the server key.
    pub fn has_keyed_hashes(&self) -> bool {
        !self.second_factors.app_passwords.is_empty()
            || self
                .second_factors
                .devices
                .iter()
                .any(|d| !d.static_tokens.is_empty())
    }
}

/// Groups by lowercase name, each one's members child groups first, then
/// users, each by id (see [`Snapshot::sort_canonically`]).
pub fn sort_groups_canonically(groups: &mut [SnapshotGroup]) {
    groups.sort_by_cached_key(|g| g.group.name.to_ascii_lowercase());
    for g in groups {
        g.members.sort_by_key(|m| match m {
            Member::Group(id) => (0, id.0),
            Member::User(id) => (1, id.0),
        });
    }
}

/// What a snapshot holds besides its users, handed over first by a
/// streamed snapshot: small next to the users (a group's members are ids),
/// and what rendering a user needs (its groups, whether it is an admin).
#[derive(Clone, Debug, Default)]
pub struct SnapshotHead {
    /// In canonical order ([`Snapshot::sort_canonically`]).
    pub groups: Vec<SnapshotGroup>,
    /// Ordered by key.
    pub settings: Vec<(String, String)>,
    /// (next uidNumber, next gidNumber).
    pub counters: (u32, u32),
}

/// Receives one snapshot piece by piece
/// ([`crate::store::Backend::snapshot_streamed`]): [`SnapshotSink::head`]
/// once, then [`SnapshotSink::user`] for every user in canonical order
/// (lowercase username, bytewise), each user's own lists in canonical
/// order too. An error stops the snapshot and is returned by it; a sink
/// that fails for a reason of its own (a full disk) keeps that reason and
/// answers any error here.
pub trait SnapshotSink {
    fn head(&mut self, head: SnapshotHead) -> Result<()>;
    fn user(&mut self, user: SnapshotUser) -> Result<()>;
}

/// A group with its direct members and explicit policy.
#[derive(Clone, Debug)]
pub struct SnapshotGroup {
    pub group: Group,
    /// Direct members: child groups first, then users, each in id order
    /// (as [`crate::store::Backend::members`]).
    pub members: Vec<Member>,
    pub policy: GroupPolicy,
    /// `group set-attr` values (the portal's may-change settings).
    pub attrs: BTreeMap<String, String>,
}

impl Snapshot {
    /// Puts every list in the order the fields document, whatever order
    /// the backend read them in (a database's collation, a tree's key
    /// order): users and groups by lowercase name, compared bytewise;
    /// devices and app passwords oldest first, then by id; static tokens by
    /// hash; members child groups first, then users, each by id; settings
    /// by key. Exports and backups are written from this order, so two of
    /// the same directory are byte-identical, also across backends. Cheap
    /// on lists already in order.
    pub fn sort_canonically(&mut self) {
        self.users.sort_by_cached_key(SnapshotUser::canonical_key);
        for u in &mut self.users {
            u.sort_canonically();
        }
        sort_groups_canonically(&mut self.groups);
        self.settings.sort();
    }

    /// Hands this snapshot to `sink` as a backend's
    /// [`crate::store::Backend::snapshot_streamed`] would: in canonical
    /// order, the head first, then the users. For a backend that reads
    /// everything at once, and for exports of a snapshot already in memory.
    pub fn feed(mut self, sink: &mut dyn SnapshotSink) -> Result<()> {
        self.sort_canonically();
        sink.head(SnapshotHead {
            groups: self.groups,
            settings: self.settings,
            counters: self.counters,
        })?;
        for u in self.users {
            sink.user(u)?;
        }
        Ok(())
    }

    /// True when some app password or unused static token is held: their
    /// hashes are keyed with the server key.
    pub fn has_keyed_hashes(&self) -> bool {
        self.users.iter().any(SnapshotUser::has_keyed_hashes)
    }

    /// The groups each member is a direct member of, in the order of
    /// [`Snapshot::groups`].
    pub fn parents(&self) -> IdMap<Member, Vec<GroupId>> {
        parents(&self.groups)
    }

    /// The users in the group named `name` (case-insensitive) or in any
    /// group nested in it; empty when there is no such group.
    pub fn transitive_user_members(&self, name: &str) -> IdSet<UserId> {
        transitive_user_members(&self.groups, name)
    }

    /// Members that name no user or group of the snapshot: always empty
    /// for a snapshot a backend took (the conformance suite checks it).
    pub fn dangling_members(&self) -> Vec<(GroupId, Member)> {
        let users: HashSet<UserId> = self.users.iter().map(|u| u.user.id).collect();
        let groups: HashSet<GroupId> = self.groups.iter().map(|g| g.group.id).collect();
        let mut out = Vec::new();
        for g in &self.groups {
            for m in &g.members {
                let known = match m {
                    Member::User(u) => users.contains(u),
                    Member::Group(c) => groups.contains(c),
                };
                if !known {
                    out.push((g.group.id, *m));
                }
            }
        }
        out
    }
}

impl SnapshotHead {
    /// The groups each member is a direct member of, in the order of
    /// [`SnapshotHead::groups`].
    pub fn parents(&self) -> IdMap<Member, Vec<GroupId>> {
        parents(&self.groups)
    }

    /// The users in the group named `name` (case-insensitive) or in any
    /// group nested in it; empty when there is no such group.
    pub fn transitive_user_members(&self, name: &str) -> IdSet<UserId> {
        transitive_user_members(&self.groups, name)
    }
}

fn parents(groups: &[SnapshotGroup]) -> IdMap<Member, Vec<GroupId>> {
    let members = groups.iter().map(|g| g.members.len()).sum();
    let mut out: IdMap<Member, Vec<GroupId>> =
        IdMap::with_capacity_and_hasher(members, Default::default());
    for g in groups {
        for m in &g.members {
            out.entry(*m).or_default().push(g.group.id);
        }
    }
    out
}

fn transitive_user_members(groups: &[SnapshotGroup], name: &str) -> IdSet<UserId> {
    let by_id: HashMap<GroupId, &SnapshotGroup> = groups.iter().map(|g| (g.group.id, g)).collect();
    let mut users = IdSet::default();
    let Some(root) = groups
        .iter()
        .find(|g| g.group.name.eq_ignore_ascii_case(name))
    else {
        return users;
    };
    let mut seen = HashSet::from([root.group.id]);
    let mut todo = vec![root];
    while let Some(g) = todo.pop() {
        for m in &g.members {
            match m {
                Member::User(u) => {
                    users.insert(*u);
                }
                Member::Group(c) => {
                    if seen.insert(*c) {
                        todo.extend(by_id.get(c).copied());
                    }
                }
            }
        }
    }
    users
}

/// A streamed snapshot collected into memory (what
/// [`crate::store::Backend::snapshot`] answers).
impl SnapshotSink for Snapshot {
    fn head(&mut self, head: SnapshotHead) -> Result<()> {
        self.groups = head.groups;
        self.settings = head.settings;
        self.counters = head.counters;
        Ok(())
    }

    fn user(&mut self, user: SnapshotUser) -> Result<()> {
        self.users.push(user);
        Ok(())
    }
}

/// Users handed from the reading thread to the sink's at a time by
/// [`read_beside`].
const BESIDE_BATCH: usize = 256;
/// Batches waiting for the sink, at most (the reading runs at most some
/// 1,300 users ahead of the sink).
const BESIDE_QUEUED: usize = 4;

/// What [`read_beside`]'s reading thread hands to the sink's.
enum Piece {
    Head(SnapshotHead),
    User(SnapshotUser),
}

/// The reading thread's sink in [`read_beside`]: sends what it is given.
struct Handoff(crate::handoff::Batches<Piece>);

impl Handoff {
    fn send(&mut self, piece: Piece) -> Result<()> {
        self.0.push(piece).map_err(Handoff::stopped)
    }

    fn flush(&mut self) -> Result<()> {
        self.0.flush().map_err(Handoff::stopped)
    }

    fn stopped(_: crate::handoff::Gone) -> super::StoreError {
        super::StoreError::Backend("the snapshot's sink stopped taking it".into())
    }
}

impl SnapshotSink for Handoff {
    fn head(&mut self, head: SnapshotHead) -> Result<()> {
        self.send(Piece::Head(head))
    }

    fn user(&mut self, user: SnapshotUser) -> Result<()> {
        self.send(Piece::User(user))
    }
}

/// Runs `read` (which streams one snapshot into the sink it is given, as
/// [`crate::store::Backend::snapshot_streamed`] does) on a second thread
/// and hands what it reads to `sink` on this one, in the same order: the
/// backend's lookups and decoding and the sink's formatting take a core
/// each (a million-user LDIF export spent 3.9 s reading and 3 s
/// formatting, one after the other). At most a few batches of users wait
/// between the two.
///
/// When `sink` fails, the reading is stopped (its next hand-off fails)
/// and `sink`'s error is returned; otherwise the reading's result. A sink
/// that keeps the reason of its own failure (see [`SnapshotSink`]) still
/// has it.
pub fn read_beside<E>(
    read: impl FnOnce(&mut dyn SnapshotSink) -> Result<(), E> + Send,
    sink: &mut dyn SnapshotSink,
) -> Result<(), E>
where
    E: From<super::StoreError> + Send,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(BESIDE_QUEUED);
    let span = tracing::Span::current();
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            span.in_scope(|| {
                let mut handoff = Handoff(crate::handoff::Batches::new(tx, BESIDE_BATCH));
                read(&mut handoff)?;
                handoff.flush().map_err(E::from)
            })
        });
        let mut failed = None;
        for batch in rx.iter() {
            let taken = batch.into_iter().try_for_each(|piece| match piece {
                Piece::Head(head) => sink.head(head),
                Piece::User(user) => sink.user(user),
            });
            if let Err(e) = taken {
                failed = Some(e);
                break;
            }
        }
        // A reading still handing over sees the end.
        drop(rx);
        let read = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match failed {
            Some(e) => Err(E::from(e)),
            None => read,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::StoreError;

    fn user(i: usize) -> SnapshotUser {
        let mut user = User::named(&format!("user{i:05}"));
        user.id = UserId(uuid::Uuid::from_u128(i as u128 + 1));
        SnapshotUser {
            user,
            password_hash: Some(format!("hash{i}")),
            second_factors: RawSecondFactors::default(),
        }
    }

    /// Writes down what it is given; fails at the user named `fail_at`.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        fail_at: Option<String>,
    }

    impl SnapshotSink for Recorder {
        fn head(&mut self, head: SnapshotHead) -> Result<()> {
            self.calls.push(format!("head {:?}", head.counters));
            Ok(())
        }

        fn user(&mut self, user: SnapshotUser) -> Result<()> {
            if self.fail_at.as_deref() == Some(user.user.username.as_str()) {
                return Err(StoreError::Invalid("the disk is full".into()));
            }
            self.calls.push(format!(
                "user {} {:?}",
                user.user.username, user.password_hash
            ));
            Ok(())
        }
    }

    /// A snapshot of `n` users, handed over as a backend streams it;
    /// counts the users it handed over.
    fn reading(
        n: usize,
        handed: &std::sync::atomic::AtomicUsize,
    ) -> impl FnOnce(&mut dyn SnapshotSink) -> Result<()> + Send + '_ {
        move |sink| {
            sink.head(SnapshotHead {
                groups: Vec::new(),
                settings: Vec::new(),
                counters: (7, 9),
            })?;
            for i in 0..n {
                sink.user(user(i))?;
                handed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Ok(())
        }
    }

    #[test]
    fn a_sink_fed_beside_the_reading_gets_what_it_would_get_directly() {
        // More users than a batch, and not a whole number of batches.
        let n = 3 * BESIDE_BATCH + 17;
        let handed = std::sync::atomic::AtomicUsize::new(0);
        let mut direct = Recorder::default();
        reading(n, &handed)(&mut direct).unwrap();
        let mut beside = Recorder::default();
        read_beside(reading(n, &handed), &mut beside).unwrap();
        assert_eq!(beside.calls.len(), n + 1);
        assert_eq!(beside.calls, direct.calls);
    }

    #[test]
    fn a_failing_sink_stops_the_reading_and_its_error_is_returned() {
        let n = 100 * BESIDE_BATCH;
        let handed = std::sync::atomic::AtomicUsize::new(0);
        let mut sink = Recorder {
            fail_at: Some("user00300".into()),
            ..Recorder::default()
        };
        let err = read_beside(reading(n, &handed), &mut sink).unwrap_err();
        assert_eq!(err.to_string(), "the disk is full");
        assert_eq!(sink.calls.len(), 1 + 300);
        // The reading stopped within the hand-offs that may wait.
        let handed = handed.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            handed < 300 + (BESIDE_QUEUED + 2) * BESIDE_BATCH,
            "{handed}"
        );
    }

    #[test]
    fn the_readings_error_is_returned_after_what_it_read() {
        let mut sink = Recorder::default();
        let err = read_beside(
            |s: &mut dyn SnapshotSink| {
                s.user(user(0))?;
                Err(StoreError::Backend("the log is corrupt".into()))
            },
            &mut sink,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "storage failure: the log is corrupt");
        // What was handed over before the error was not taken: the user
        // batch was never full, so nothing reached the sink.
        assert!(sink.calls.is_empty());
    }
}
