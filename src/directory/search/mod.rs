//! The search planner and access rules.
//!
//! A search first narrows the candidates with the store's indexes (equality
//! on uid/cn, mail, uidNumber, gidNumber, memberOf, member, memberUid and
//! objectClass), then builds each candidate's entry once, with only the
//! attributes asked for and those the filter still has to read, checks
//! access and evaluates what the indexes did not answer exactly (see
//! `plan`). Entries are handed out one by one as they are built
//! ([`Directory::search_each`]): users are read as the store walks them,
//! so a search over every user never lists them all first. Access (DESIGN.md section 5): anonymous reads
//! nothing here (the root DSE and subschema are answered by the protocol
//! layer); a bound user reads its own entry and its groups; members of the
//! search group and admins read everything.
//!
//! Layout:
//! - this file: [`Directory`], the search types, one search from scope to
//!   results.
//! - `access`: what an identity may read (DESIGN.md section 5).
//! - `plan`: the candidates a filter can match, from the store's indexes.
//! - `build`: entries built from records, with what one search's entries
//!   share, and transitive membership for the in-chain rule.
//! - `warm`: what lookups keep, filled in one pass after the server starts.

mod access;
mod build;
mod plan;
mod warm;

use access::Access;
use build::{BuildContext, Chain};
use plan::{add_filter_types, Cands};
pub use warm::Warmed;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

pub use super::cache::Derived;
use super::cache::{EpochCache, KeptIds, KeptMisses, ListedGroup, Missed};
use super::dn::Dn;
use super::entry::{self, Entry, Wanted};
use super::filter::Filter;
use super::tree::{self, Target};
use crate::domain::footprint::Footprint;
use crate::store::{GroupId, Member, Store, StoreError, User, UserId};

/// The most groups a member lookup may return and still run where it is
/// asked ([`Directory::is_few_groups_lookup`]).
pub const FEW_GROUPS: usize = 16;

/// The most members a `(memberOf=G)` lookup may return and still run where
/// it is asked ([`Directory::is_few_groups_lookup`]): some microseconds an
/// entry, so at most a few hundred on the reactor.
pub const FEW_MEMBERS: usize = 32;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Anonymous,
    User { id: UserId, username: String },
}

/// RFC 4511 §4.5.1.2 scopes (and the subordinate scope draft's `children`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Base,
    One,
    Sub,
    Children,
}

/// One search, in domain terms.
#[derive(Debug)]
pub struct SearchQuery {
    /// Shared: a connection keeps the bases it names parsed.
    pub base: Arc<Dn>,
    pub scope: Scope,
    /// Shared: a connection keeps the filters it sends again converted.
    pub filter: Arc<Filter>,
    /// Stop and report `time_limit_exceeded` after this instant.
    pub deadline: Option<Instant>,
}

/// How a search handing its entries out one by one ended
/// ([`Directory::search_each`]).
#[derive(Debug, Default)]
pub struct SearchEnd {
    /// The time limit (or a cancellation) stopped it.
    pub time_limit_exceeded: bool,
}

/// An entry found by [`Directory::search_items`].
pub enum SearchItem<'a> {
    Entry(Entry),
    /// A user's entry, not built for the caller (the filter's residual, if
    /// any, was evaluated on an entry of its own): a caller that only
    /// encodes it may write it from its parts, and one that keeps it for
    /// later keeps the shared record ([`UserEntry::hold`]).
    User(UserEntry<'a>),
    /// A group's full entry (every attribute), shared with the epoch
    /// cache: a caller that encodes it selects the attributes itself, and
    /// may keep the encoded body with the entry (an enumeration of groups
    /// otherwise copies every member of every group, each time).
    Group(CachedGroup),
}

impl SearchItem<'_> {
    /// The entry, built if it was not (a group's with every attribute).
    pub fn into_entry(self) -> Entry {
        match self {
            SearchItem::Entry(e) => e,
            SearchItem::User(u) => u.build(),
            SearchItem::Group(g) => Arc::unwrap_or_clone(g.entry),
        }
    }
}

/// One DN a user's memberOf lists, shared with the epoch cache: a search
/// hands the same group's DN to every entry it writes without copying it.
#[derive(Clone, Debug)]
pub struct MemberOfDn(Arc<ListedGroup>);

impl MemberOfDn {
    /// A DN as memberOf lists it (outside a search: tests).
    #[cfg(test)]
    pub(crate) fn for_test(dn: &str) -> MemberOfDn {
        MemberOfDn(Arc::new((dn.to_lowercase(), dn.to_string())))
    }
}

impl AsRef<str> for MemberOfDn {
    fn as_ref(&self) -> &str {
        &self.0 .1
    }
}

/// A user's entry in parts: its DN and what [`entry::push_user_attrs`]
/// pushes, the same attributes in the same order as [`UserEntry::build`].
pub struct UserEntry<'a> {
    base: &'a Dn,
    dn: &'a str,
    user: &'a Arc<User>,
    member_of: &'a [MemberOfDn],
    superuser: bool,
    wanted: &'a Wanted,
}

impl<'a> UserEntry<'a> {
    /// The parts of a user's entry, as a search hands them out.
    #[cfg(test)]
    pub(crate) fn for_test(
        base: &'a Dn,
        dn: &'a str,
        user: &'a Arc<User>,
        member_of: &'a [MemberOfDn],
        superuser: bool,
        wanted: &'a Wanted,
    ) -> UserEntry<'a> {
        UserEntry {
            base,
            dn,
            user,
            member_of,
            superuser,
            wanted,
        }
    }

    /// The entry's DN, as the built entry's DN displays.
    pub fn dn(&self) -> &str {
        self.dn
    }

    /// Pushes the entry's attributes into `sink`.
    pub fn push_attrs(&self, sink: &mut dyn entry::AttrSink) {
        entry::push_user_attrs(
            sink,
            self.dn,
            self.user,
            self.member_of,
            self.superuser,
            self.wanted,
        );
    }

    pub fn build(&self) -> Entry {
        entry::user_entry_with(
            self.base,
            self.user,
            self.member_of,
            self.superuser,
            self.wanted,
        )
    }

    /// What a paged search keeps of it for a later page: the record
    /// (shared, not copied) and what the search found about it.
    pub fn hold(&self) -> HeldUser {
        HeldUser {
            user: self.user.clone(),
            member_of: self.member_of.into(),
            superuser: self.superuser,
        }
    }
}

/// A user's entry as a paged search keeps it between pages
/// ([`UserEntry::hold`]): a million users held cost their pointers and
/// memberOf lists, not a million built entries. Written later with
/// [`Directory::held_user`], from the record as it was when the search
/// ran.
pub struct HeldUser {
    user: Arc<User>,
    member_of: Box<[MemberOfDn]>,
    superuser: bool,
}

impl HeldUser {
    /// The memory it holds, for a budget: its own size and its memberOf
    /// list, and the record's footprint when nothing else (the record
    /// cache) holds the record.
    ///
    /// The count is taken when the search is kept and again as each page
    /// is sent; what the reservation holds beyond what the pages gave
    /// back returns when the search ends.
    pub fn bytes(&self) -> usize {
        let own = std::mem::size_of::<HeldUser>()
            + std::mem::size_of_val::<[MemberOfDn]>(&self.member_of);
        let record = if Arc::strong_count(&self.user) > 1 {
            0
        } else {
            self.user.footprint()
        };
        own + record
    }
}

/// Matching entries the identity may read, in tree order.
#[derive(Debug, Default)]
pub struct SearchResults {
    pub entries: Vec<Entry>,
    pub time_limit_exceeded: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The base does not exist; `matched` is its deepest existing ancestor.
    #[error("no such object")]
    NoSuchObject { matched: Option<Dn> },
    #[error("insufficient access: {0}")]
    InsufficientAccess(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The served tree over a store; cheap to clone.
#[derive(Clone)]
pub struct Directory {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    base: Dn,
    admin_group: String,
    search_group: String,
    options: DirectoryOptions,
    /// Memberships and names between searches, per membership epoch.
    cache: EpochCache,
    /// Ids found through the indexes, checked against the record on use.
    user_ids: KeptIds<UserId>,
    user_emails: KeptIds<UserId>,
    user_numbers: KeptIds<UserId>,
    group_ids: KeptIds<GroupId>,
    group_numbers: KeptIds<GroupId>,
    /// Lookups through those indexes that found nothing, while no write
    /// has finished since.
    misses: KeptMisses,
    /// The base entry, `ou=users` and `ou=groups`: built once, they never
    /// change.
    containers: [Entry; 3],
    /// `ou=users,<base>` as a string, the tail of every user's DN.
    users_ou: String,
}

/// How the directory serves entries, beyond the tree's shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectoryOptions {
    /// `memberOf` lists every group reached through nested groups, not
    /// only the direct ones, and `(memberOf=G)` matches the same set
    /// (`ldap.transitive_member_of`, for clients that cannot send the
    /// in-chain rule 1.2.840.113556.1.4.1941).
    pub transitive_member_of: bool,
}

/// A group's entry as the epoch cache holds it ([`Directory::cached_group_read`]).
pub struct CachedGroup {
    /// The full entry (every attribute).
    pub entry: Arc<Entry>,
    /// What callers derived from this entry; dropped with it.
    pub derived: Arc<Derived>,
}

/// What the scope of a search covers, before its filter narrows it.
struct InScope<'a> {
    /// The base entry and OUs the scope includes.
    containers: Vec<&'a Entry>,
    users: Cands<UserId>,
    groups: Cands<GroupId>,
    /// The user or group the base names, if it names one.
    named: Option<Member>,
}

/// One index lookup: where its answers are kept ([`KeptIds`], and
/// [`KeptMisses`] for what it did not find) and the value looked up.
struct Lookup<'a, K> {
    store: &'a Store,
    kept: &'a KeptIds<K>,
    misses: &'a KeptMisses,
    key: u64,
    missed: Missed<'a>,
}

impl<K: Copy> Lookup<'_, K> {
    /// The id kept under the key if its record still carries the key
    /// (`carries`), else nothing if the index found nothing since the last
    /// write finished, else what the index finds (`find`), kept for next
    /// time. The check is what makes a kept id safe to use: it may be
    /// stale, or another key's that hashed alike ([`KeptIds`]).
    fn run(
        self,
        carries: impl FnOnce(K) -> Result<bool, StoreError>,
        find: impl FnOnce() -> Result<Option<K>, StoreError>,
    ) -> Result<Option<K>, StoreError> {
        if let Some(id) = self.kept.get(self.key) {
            if carries(id)? {
                return Ok(Some(id));
            }
        }
        // Read before the index: a write finishing after it moves the
        // count, and the miss kept under the old count is not used again.
        let writes = self.store.finished_writes();
        if let Some(writes) = writes {
            if self.misses.is_missing(self.key, self.missed, writes) {
                return Ok(None);
            }
        }
        let found = find()?;
        match (found, writes) {
            (Some(id), _) => self.kept.insert(self.key, id),
            (None, Some(writes)) => self.misses.insert(self.key, self.missed, writes),
            (None, None) => {}
        }
        Ok(found)
    }
}

/// Whether two email addresses are the same to the email index (equal
/// once lowercased), without allocating when both are ASCII. Equal but
/// for ASCII case means equal once lowercased (other characters are
/// then byte for byte the same).
fn same_email(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
        || (!(a.is_ascii() && b.is_ascii()) && a.to_lowercase() == b.to_lowercase())
}

impl Directory {
    pub fn new(store: Store, base: Dn, admin_group: &str, search_group: &str) -> Directory {
        Directory::with_options(
            store,
            base,
            admin_group,
            search_group,
            DirectoryOptions::default(),
        )
    }

    pub fn with_options(
        store: Store,
        base: Dn,
        admin_group: &str,
        search_group: &str,
        options: DirectoryOptions,
    ) -> Directory {
        Directory {
            inner: Arc::new(Inner {
                store,
                admin_group: admin_group.to_string(),
                search_group: search_group.to_string(),
                options,
                cache: EpochCache::default(),
                user_ids: KeptIds::default(),
                user_emails: KeptIds::default(),
                user_numbers: KeptIds::default(),
                group_ids: KeptIds::default(),
                group_numbers: KeptIds::default(),
                misses: KeptMisses::default(),
                containers: [
                    entry::base_entry(&base),
                    entry::users_ou_entry(&base),
                    entry::groups_ou_entry(&base),
                ],
                users_ou: tree::users_ou(&base).to_string(),
                base,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The id of the user named `name` (case-insensitively): the one kept
    /// from an earlier lookup when that user's record still carries the
    /// name (reading a kept record costs a hash lookup, the name index a
    /// walk of sled's pages), else the index's answer.
    pub(super) fn user_id_by_name(&self, name: &str) -> Result<Option<UserId>, StoreError> {
        let store = self.store();
        self.lookup(
            &self.inner.user_ids,
            self.inner.user_ids.name_key(name),
            Missed::UserName(name),
        )
        .run(
            |id| {
                Ok(store
                    .user_shared(id)?
                    .is_some_and(|u| u.username.eq_ignore_ascii_case(name)))
            },
            || store.user_id_by_name(name),
        )
    }

    /// [`Directory::user_id_by_name`] by email address (lowercased, as the
    /// index compares them). A value that is no email address (stored ones
    /// have exactly one `@`, with text on both sides) names nobody, without
    /// asking the index: Nextcloud's login filter tries the login name as
    /// `mail` too.
    pub(super) fn user_id_by_email(&self, email: &str) -> Result<Option<UserId>, StoreError> {
        if !matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
        {
            return Ok(None);
        }
        let store = self.store();
        self.lookup(
            &self.inner.user_emails,
            self.inner.user_emails.email_key(email),
            Missed::Email(email),
        )
        .run(
            |id| {
                Ok(store
                    .user_shared(id)?
                    .is_some_and(|u| u.email.as_deref().is_some_and(|e| same_email(e, email))))
            },
            || store.user_id_by_email(email),
        )
    }

    /// [`Directory::user_id_by_name`] by uidNumber.
    pub(super) fn user_id_by_uid_number(&self, n: u32) -> Result<Option<UserId>, StoreError> {
        let store = self.store();
        self.lookup(
            &self.inner.user_numbers,
            self.inner.user_numbers.number_key(n),
            Missed::UidNumber(n),
        )
        .run(
            |id| Ok(store.user_shared(id)?.is_some_and(|u| u.uid_number == n)),
            || store.user_id_by_uid_number(n),
        )
    }

    fn lookup<'a, K>(
        &'a self,
        kept: &'a KeptIds<K>,
        key: u64,
        missed: Missed<'a>,
    ) -> Lookup<'a, K> {
        Lookup {
            store: self.store(),
            kept,
            misses: &self.inner.misses,
            key,
            missed,
        }
    }

    /// [`Directory::user_id_by_name`] for groups.
    pub(super) fn group_id_by_name(&self, name: &str) -> Result<Option<GroupId>, StoreError> {
        let store = self.store();
        self.lookup(
            &self.inner.group_ids,
            self.inner.group_ids.name_key(name),
            Missed::GroupName(name),
        )
        .run(
            |id| {
                Ok(store
                    .group_shared(id)?
                    .is_some_and(|g| g.name.eq_ignore_ascii_case(name)))
            },
            || store.group_id_by_name(name),
        )
    }

    /// [`Directory::user_id_by_name`] for groups by gidNumber.
    pub(super) fn group_id_by_gid_number(&self, n: u32) -> Result<Option<GroupId>, StoreError> {
        let store = self.store();
        self.lookup(
            &self.inner.group_numbers,
            self.inner.group_numbers.number_key(n),
            Missed::GidNumber(n),
        )
        .run(
            |id| Ok(store.group_shared(id)?.is_some_and(|g| g.gid_number == n)),
            || store.group_id_by_gid_number(n),
        )
    }

    pub fn base(&self) -> &Dn {
        &self.inner.base
    }

    /// `ldap.admin_group` and `ldap.search_group` (for the write rules).
    pub fn group_names(&self) -> (&str, &str) {
        (&self.inner.admin_group, &self.inner.search_group)
    }

    /// Reads one entry, if it exists and `who` may see it.
    pub fn read(&self, who: &Identity, dn: &Dn) -> Result<Entry, DirectoryError> {
        let query = SearchQuery {
            base: Arc::new(dn.clone()),
            scope: Scope::Base,
            filter: Arc::new(Filter::from_ldap(&ldap3_proto::proto::LdapFilter::Present(
                "objectClass".into(),
            ))),
            deadline: None,
        };
        self.search(who, &query)?
            .entries
            .pop()
            .ok_or(DirectoryError::NoSuchObject { matched: None })
    }

    /// True when `(member=value)`, `(uniqueMember=value)` or
    /// `(memberUid=value)` (`attr`) names a member of at most
    /// [`FEW_GROUPS`] groups whose entries the epoch cache holds, or no
    /// member at all: the answer is a few copies of cached entries (a
    /// user's groups, as Grafana, Authelia and SSSD ask for them at every
    /// login); or when `(memberOf=value)` names a group of at most
    /// [`FEW_MEMBERS`] users (or none). A store error says false: the
    /// search then reports it.
    pub fn is_few_groups_lookup(&self, attr: &str, value: &str) -> bool {
        let store = self.store();
        let few = || -> Result<bool, StoreError> {
            let epoch = store.membership_epoch()?;
            if attr == "memberOf" {
                // The group's users (memberOf=G): few, and cached records.
                // Counted once per epoch: a large group is not walked
                // again to learn that it is large.
                let Some(group) = self.group_of_dn(value.trim())? else {
                    return Ok(true);
                };
                let users = match self.inner.cache.users_in(epoch, group) {
                    Some(n) => n,
                    None => {
                        let n = if self.inner.options.transitive_member_of {
                            store.transitive_user_members(group)?.len()
                        } else {
                            store
                                .members(group)?
                                .iter()
                                .filter(|m| matches!(m, Member::User(_)))
                                .count()
                        };
                        self.inner.cache.set_users_in(epoch, group, n);
                        n
                    }
                };
                return Ok(users <= FEW_MEMBERS);
            }
            let member = if attr == "memberUid" {
                self.user_id_by_name(value.trim())?.map(Member::User)
            } else {
                match Dn::parse(value.trim()) {
                    Ok(dn) => self.member_of_dn(&dn)?,
                    Err(_) => None,
                }
            };
            let Some(member) = member else {
                return Ok(true);
            };
            let groups = self.direct_groups_of(epoch, member)?;
            Ok(groups.len() <= FEW_GROUPS
                && groups
                    .iter()
                    .all(|g| self.inner.cache.has_group_entry(epoch, *g)))
        };
        few().unwrap_or(false)
    }

    /// True when a base-scope read of `dn` costs a few key lookups: `dn`
    /// names a user, or a group whose entry the epoch cache holds (a large
    /// group's entry is built once per epoch, which may take milliseconds:
    /// that build stays off the reactor).
    pub fn is_cached_base_read(&self, dn: &Dn) -> bool {
        match tree::classify(dn, self.base()) {
            Target::User(_) => true,
            Target::Group(name) => match self.store().membership_epoch() {
                Ok(epoch) => self.inner.cache.has_group_entry_named(epoch, &name),
                Err(_) => false,
            },
            _ => false,
        }
    }

    /// A base-scope read of the group `dn` by `who`, answered from the
    /// epoch cache: its full entry and what callers derived from it, when
    /// the entry is cached for the group's current record and `who` may
    /// read the group. `None` in every other case (not a group, not cached,
    /// no such group, not readable, …): the caller runs the search, which
    /// answers those as always.
    pub fn cached_group_read(
        &self,
        who: &Identity,
        dn: &Dn,
    ) -> Result<Option<CachedGroup>, DirectoryError> {
        let Target::Group(name) = tree::classify(dn, self.base()) else {
            return Ok(None);
        };
        // Read before any membership or name (see `cache`).
        let epoch = self.store().membership_epoch()?;
        if !self.inner.cache.has_group_entry_named(epoch, &name) {
            return Ok(None);
        }
        let Some(id) = self.group_id_by_name(&name)? else {
            return Ok(None);
        };
        let Some(group) = self.store().group_shared(id)? else {
            return Ok(None);
        };
        let readable = match self.access_at(who, epoch)? {
            Access::All => true,
            Access::Own { info, .. } => info.groups.contains(&group.id),
            Access::None => false,
        };
        if !readable {
            return Ok(None);
        }
        Ok(self
            .inner
            .cache
            .group_entry_derived(epoch, &group)
            .map(|(entry, derived)| CachedGroup { entry, derived }))
    }

    /// Runs a search for `who`.
    pub fn search(&self, who: &Identity, q: &SearchQuery) -> Result<SearchResults, DirectoryError> {
        self.search_until(who, q, &|| false)
    }

    /// Runs a search for `who` that gives up early, like at its deadline,
    /// once `stop` returns true (the operation was abandoned). `stop` is
    /// asked every 64 candidates.
    pub fn search_until(
        &self,
        who: &Identity,
        q: &SearchQuery,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<SearchResults, DirectoryError> {
        self.search_selecting(who, q, &Wanted::everything(), stop)
    }

    /// [`Directory::search_until`] whose entries need to carry only the
    /// attributes in `selected` (what the client asked for): user entries
    /// are built with those and the ones the filter reads, nothing else.
    pub fn search_selecting(
        &self,
        who: &Identity,
        q: &SearchQuery,
        selected: &Wanted,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<SearchResults, DirectoryError> {
        let mut entries = Vec::new();
        let end = self.search_each(who, q, selected, stop, &mut |e| {
            entries.push(e);
            true
        })?;
        Ok(SearchResults {
            entries,
            time_limit_exceeded: end.time_limit_exceeded,
        })
    }

    /// [`Directory::search_selecting`] that hands each entry to `sink` as
    /// soon as it is built, in the same order, instead of collecting them:
    /// a search over a million users holds one user and one entry at a
    /// time. `sink` returns false to end the search there (a size limit
    /// reached, a client gone).
    pub fn search_each(
        &self,
        who: &Identity,
        q: &SearchQuery,
        selected: &Wanted,
        stop: &(dyn Fn() -> bool + Sync),
        sink: &mut dyn FnMut(Entry) -> bool,
    ) -> Result<SearchEnd, DirectoryError> {
        self.search_with(who, q, selected, stop, false, &mut |item| {
            sink(item.into_entry())
        })
    }

    /// [`Directory::search_each`] that hands out the entries of users the
    /// filter needs nothing of unbuilt ([`SearchItem::User`]): a caller
    /// that encodes them writes them from the record, without building
    /// and dropping an entry for each of a million users. Groups come as
    /// their shared full entries ([`SearchItem::Group`]).
    pub fn search_items(
        &self,
        who: &Identity,
        q: &SearchQuery,
        selected: &Wanted,
        stop: &(dyn Fn() -> bool + Sync),
        sink: &mut dyn FnMut(SearchItem<'_>) -> bool,
    ) -> Result<SearchEnd, DirectoryError> {
        self.search_with(who, q, selected, stop, true, sink)
    }

    /// Hands `write` the parts of a user's entry a paged search kept
    /// ([`UserEntry::hold`]), with the `wanted` attributes of that search.
    pub fn held_user<R>(
        &self,
        held: &HeldUser,
        wanted: &Wanted,
        write: impl FnOnce(&UserEntry<'_>) -> R,
    ) -> R {
        let mut dn = String::new();
        entry::push_child_dn(&mut dn, &held.user.username, &self.inner.users_ou);
        write(&UserEntry {
            base: &self.inner.base,
            dn: &dn,
            user: &held.user,
            member_of: &held.member_of,
            superuser: held.superuser,
            wanted,
        })
    }

    /// The search of [`Directory::search_items`]; with `parts` false every
    /// item is an [`SearchItem::Entry`] with only the wanted attributes (a
    /// caller that needs entries pays nothing for the users' DN strings,
    /// and keeps no more of a group than it asked for).
    fn search_with(
        &self,
        who: &Identity,
        q: &SearchQuery,
        selected: &Wanted,
        stop: &(dyn Fn() -> bool + Sync),
        parts: bool,
        sink: &mut dyn FnMut(SearchItem<'_>) -> bool,
    ) -> Result<SearchEnd, DirectoryError> {
        // Read before any membership or name (see `cache`).
        let epoch = self.store().membership_epoch()?;
        let access = self.access_at(who, epoch)?;
        if matches!(access, Access::None) {
            return Err(DirectoryError::InsufficientAccess(
                "anonymous clients may read only the root DSE and cn=subschema; bind first",
            ));
        }
        let InScope {
            containers,
            mut users,
            mut groups,
            named,
        } = self.in_scope(q).map_err(|e| access.hide(e))?;
        // A base the identity may not read is missing for it, at every
        // scope (see `access`).
        if named.is_some_and(|m| !access.reads(m)) {
            return Err(DirectoryError::NoSuchObject { matched: None });
        }
        let base = &self.inner.base;
        let store = self.store();

        // Narrow with the indexes the filter names; what they answer
        // exactly is not evaluated again, and entries carry only what the
        // client asked for and what is left to evaluate (see `plan`). A
        // base that names one entry is checked against the whole filter.
        let whole: Vec<&Filter> = vec![&q.filter];
        let user_residual = match users {
            Cands::All => {
                let plan = self.plan_users(&q.filter)?;
                users = plan.cands;
                plan.residual
            }
            Cands::Set(_) | Cands::AllBut(_) => whole.clone(),
        };
        let group_residual = match groups {
            Cands::All => {
                let plan = self.plan_groups(&q.filter, epoch)?;
                groups = plan.cands;
                plan.residual
            }
            Cands::Set(_) | Cands::AllBut(_) => whole,
        };
        let wanted = |residual: &[&Filter]| {
            let mut w = selected.clone();
            residual.iter().for_each(|f| add_filter_types(f, &mut w));
            w
        };
        let user_wanted = wanted(&user_residual);
        let group_wanted = wanted(&group_residual);
        let chain = Chain { dir: self };
        let matches =
            |residual: &[&Filter], e: &Entry| residual.iter().all(|f| f.matches(e, &chain));

        let mut ctx = BuildContext::new(self, epoch)?;
        let mut end = SearchEnd::default();
        let over_time = |n: usize| {
            n.is_multiple_of(64) && (q.deadline.is_some_and(|d| Instant::now() >= d) || stop())
        };

        if matches!(access, Access::All) {
            for e in containers {
                if q.filter.matches(e, &chain) && !sink(SearchItem::Entry(e.clone())) {
                    return Ok(end);
                }
            }
        }

        // A membership listing that asks for names only (cn, uid, the DN):
        // the entries come from the username cache, no user record is
        // read. Same entries, same (id) order as the general path below.
        if user_residual.is_empty() && matches!(access, Access::All) && user_wanted.only_names() {
            if let Cands::Set(ids) = &users {
                let ids: Vec<UserId> = ids.iter().copied().collect();
                for (n, name) in ctx.usernames_in_order(&ids)?.iter().enumerate() {
                    if over_time(n) {
                        end.time_limit_exceeded = true;
                        return Ok(end);
                    }
                    if !sink(SearchItem::Entry(entry::user_name_entry(
                        base,
                        name,
                        &user_wanted,
                    ))) {
                        return Ok(end);
                    }
                }
                users = Cands::Set(BTreeSet::new());
            }
        }

        // Users, one at a time: from the store's walk, or by id.
        if matches!(users, Cands::All | Cands::AllBut(_)) {
            ctx.scanning();
        }
        let users_ou = &self.inner.users_ou;
        let mut dn = String::new();
        let mut n = 0;
        let mut ended = false;
        let mut each = |user: &Arc<User>| -> Result<bool, StoreError> {
            if over_time(n) {
                end.time_limit_exceeded = true;
                return Ok(false);
            }
            n += 1;
            let visible = match &access {
                Access::All => true,
                Access::Own { user: me, .. } => *me == user.id,
                Access::None => false,
            };
            if visible {
                let more = if parts {
                    // The residual is evaluated on an entry built for it;
                    // a match goes out as the record and its parts, so a
                    // paged search keeps the shared record, not the entry
                    // (a million users pass `(mail=*)`).
                    if !user_residual.is_empty()
                        && !matches(&user_residual, &ctx.user_entry(user, &user_wanted)?)
                    {
                        return Ok(true);
                    }
                    let (member_of, superuser) = ctx.user_shared_parts(user, selected)?;
                    dn.clear();
                    entry::push_child_dn(&mut dn, &user.username, users_ou);
                    sink(SearchItem::User(UserEntry {
                        base,
                        dn: &dn,
                        user,
                        member_of: &member_of,
                        superuser,
                        wanted: selected,
                    }))
                } else {
                    let e = ctx.user_entry(user, &user_wanted)?;
                    !matches(&user_residual, &e) || sink(SearchItem::Entry(e))
                };
                if !more {
                    ended = true;
                    return Ok(false);
                }
            }
            Ok(true)
        };
        match users {
            Cands::All => store.each_user_shared(&mut each)?,
            Cands::AllBut(skip) => store.each_user_shared(&mut |user: &Arc<User>| {
                if skip.contains(&user.id) {
                    Ok(true)
                } else {
                    each(user)
                }
            })?,
            Cands::Set(ids) => {
                for id in ids {
                    if let Some(user) = store.user_shared(id)? {
                        if !each(&user)? {
                            break;
                        }
                    }
                }
            }
        }
        if ended || end.time_limit_exceeded {
            return Ok(end);
        }

        let group_list = match groups {
            Cands::All => store.groups()?,
            Cands::AllBut(skip) => {
                let mut all = store.groups()?;
                all.retain(|g| !skip.contains(&g.id));
                all
            }
            Cands::Set(ids) => {
                let mut v = Vec::with_capacity(ids.len());
                for id in ids {
                    v.extend(ctx.group(id)?);
                }
                v
            }
        };
        for (n, group) in group_list.iter().enumerate() {
            if over_time(n) {
                end.time_limit_exceeded = true;
                return Ok(end);
            }
            let visible = match &access {
                Access::All => true,
                Access::Own { info, .. } => info.groups.contains(&group.id),
                Access::None => false,
            };
            if !visible {
                continue;
            }
            let more = if parts {
                let g = ctx.group_shared(group)?;
                !matches(&group_residual, &g.entry) || sink(SearchItem::Group(g))
            } else {
                let e = ctx.group_entry(group, &group_wanted)?;
                !matches(&group_residual, &e) || sink(SearchItem::Entry(e))
            };
            if !more {
                return Ok(end);
            }
        }
        Ok(end)
    }

    /// Which kinds of entry the scope of `q` covers: the containers it
    /// includes and the users and groups below its base (all of them, or
    /// the one the base names), before the filter narrows them.
    fn in_scope(&self, q: &SearchQuery) -> Result<InScope<'_>, DirectoryError> {
        let base = &self.inner.base;
        let [base_entry, users_ou_entry, groups_ou_entry] = &self.inner.containers;
        let mut containers: Vec<&Entry> = Vec::new();
        let mut users: Cands<UserId> = Cands::Set(BTreeSet::new());
        let mut groups: Cands<GroupId> = Cands::Set(BTreeSet::new());
        let mut named = None;
        let (base_scope, below) = match q.scope {
            Scope::Base => (true, false),
            Scope::One | Scope::Children => (false, true),
            Scope::Sub => (true, true),
        };
        match tree::classify(&q.base, base) {
            Target::Base => {
                if base_scope {
                    containers.push(base_entry);
                }
                if below {
                    containers.push(users_ou_entry);
                    containers.push(groups_ou_entry);
                    if q.scope != Scope::One {
                        users = Cands::All;
                        groups = Cands::All;
                    }
                }
            }
            Target::UsersOu => {
                if base_scope {
                    containers.push(users_ou_entry);
                }
                if below {
                    users = Cands::All;
                }
            }
            Target::GroupsOu => {
                if base_scope {
                    containers.push(groups_ou_entry);
                }
                if below {
                    groups = Cands::All;
                }
            }
            // The index says whether the entry exists; the scan below reads
            // its record once.
            Target::User(name) => {
                let user =
                    self.user_id_by_name(&name)?
                        .ok_or_else(|| DirectoryError::NoSuchObject {
                            matched: Some(tree::users_ou(base)),
                        })?;
                if base_scope {
                    users = Cands::Set([user].into());
                }
                named = Some(Member::User(user));
            }
            Target::Group(name) => {
                let group =
                    self.group_id_by_name(&name)?
                        .ok_or_else(|| DirectoryError::NoSuchObject {
                            matched: Some(tree::groups_ou(base)),
                        })?;
                if base_scope {
                    groups = Cands::Set([group].into());
                }
                named = Some(Member::Group(group));
            }
            Target::Missing => {
                let matched = if q.base.ends_with(&tree::users_ou(base)) {
                    tree::users_ou(base)
                } else if q.base.ends_with(&tree::groups_ou(base)) {
                    tree::groups_ou(base)
                } else {
                    base.clone()
                };
                return Err(DirectoryError::NoSuchObject {
                    matched: Some(matched),
                });
            }
            Target::RootDse | Target::Subschema | Target::Outside => {
                return Err(DirectoryError::NoSuchObject { matched: None })
            }
        }
        Ok(InScope {
            containers,
            users,
            groups,
            named,
        })
    }

    fn group_of_dn(&self, value: &str) -> Result<Option<GroupId>, StoreError> {
        match Dn::parse(value) {
            Ok(dn) => self.group_at(&dn),
            Err(_) => Ok(None),
        }
    }

    fn group_at(&self, dn: &Dn) -> Result<Option<GroupId>, StoreError> {
        match tree::classify(dn, self.base()) {
            Target::Group(name) => self.group_id_by_name(&name),
            _ => Ok(None),
        }
    }

    fn member_of_dn(&self, dn: &Dn) -> Result<Option<Member>, StoreError> {
        Ok(match tree::classify(dn, self.base()) {
            Target::User(name) => self.user_id_by_name(&name)?.map(Member::User),
            Target::Group(name) => self.group_id_by_name(&name)?.map(Member::Group),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests;
