//! The search planner and access rules.
//!
//! A search first narrows the candidates with the store's indexes (equality
//! on uid/cn, mail, uidNumber, gidNumber, memberOf, member, memberUid and
//! objectClass), then builds each candidate's entry once, checks access and
//! evaluates the filter. Access (DESIGN.md section 5): anonymous reads
//! nothing here (the root DSE and subschema are answered by the protocol
//! layer); a bound user reads its own entry and its groups; members of the
//! search group and admins read everything.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

pub use super::cache::Derived;
use super::cache::{AccessInfo, EpochCache};
use super::dn::Dn;
use super::entry::{self, Entry, Wanted};
use super::filter::{Filter, InChain};
use super::tree::{self, Target};
use crate::store::{Group, GroupId, Member, Store, StoreError, User, UserId};

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
    pub base: Dn,
    pub scope: Scope,
    pub filter: Filter,
    /// Stop and report `time_limit_exceeded` after this instant.
    pub deadline: Option<Instant>,
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
    /// The base entry, `ou=users` and `ou=groups`: built once, they never
    /// change.
    containers: [Entry; 3],
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

/// What one identity may read.
enum Access {
    None,
    All,
    Own { user: UserId, info: Arc<AccessInfo> },
}

/// Candidate ids after index planning.
#[derive(Debug)]
enum Cands<T> {
    All,
    Set(BTreeSet<T>),
}

impl<T: Ord + Clone> Cands<T> {
    fn and(self, other: Cands<T>) -> Cands<T> {
        match (self, other) {
            (Cands::All, x) | (x, Cands::All) => x,
            (Cands::Set(a), Cands::Set(b)) => Cands::Set(a.intersection(&b).cloned().collect()),
        }
    }
    fn or(self, other: Cands<T>) -> Cands<T> {
        match (self, other) {
            (Cands::Set(mut a), Cands::Set(b)) => {
                a.extend(b);
                Cands::Set(a)
            }
            _ => Cands::All,
        }
    }
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
                containers: [
                    entry::base_entry(&base),
                    entry::users_ou_entry(&base),
                    entry::groups_ou_entry(&base),
                ],
                base,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn base(&self) -> &Dn {
        &self.inner.base
    }

    /// `ldap.admin_group` and `ldap.search_group` (for the write rules).
    pub fn group_names(&self) -> (&str, &str) {
        (&self.inner.admin_group, &self.inner.search_group)
    }

    /// True when `who` is (transitively) in the admin group.
    pub fn is_admin(&self, who: &Identity) -> Result<bool, StoreError> {
        let Identity::User { id, .. } = who else {
            return Ok(false);
        };
        let Some(admins) = self.store().group_by_name(&self.inner.admin_group)? else {
            return Ok(false);
        };
        Ok(self
            .store()
            .transitive_groups_of(Member::User(*id))?
            .contains(&admins.id))
    }

    /// What `who` may read. `epoch` is the membership epoch, read by the
    /// caller before anything this guards (see `cache`).
    fn access_at(&self, who: &Identity, epoch: u64) -> Result<Access, StoreError> {
        let Identity::User { id, .. } = who else {
            return Ok(Access::None);
        };
        // A user deleted or disabled since binding reads nothing. Not
        // cached: disabling a user does not move the epoch.
        if !self.store().user_is_active(*id)? {
            return Ok(Access::None);
        }
        let info = match self.inner.cache.access(epoch, *id) {
            Some(info) => info,
            None => {
                let groups: HashSet<GroupId> = self
                    .store()
                    .transitive_groups_of(Member::User(*id))?
                    .into_iter()
                    .collect();
                let mut all = false;
                for name in [&self.inner.admin_group, &self.inner.search_group] {
                    if let Some(g) = self.store().group_by_name(name)? {
                        all |= groups.contains(&g.id);
                    }
                }
                let info = Arc::new(AccessInfo { all, groups });
                self.inner.cache.set_access(epoch, *id, info.clone());
                info
            }
        };
        Ok(if info.all {
            Access::All
        } else {
            Access::Own { user: *id, info }
        })
    }

    /// Reads one entry, if it exists and `who` may see it.
    pub fn read(&self, who: &Identity, dn: &Dn) -> Result<Entry, DirectoryError> {
        let query = SearchQuery {
            base: dn.clone(),
            scope: Scope::Base,
            filter: Filter::from_ldap(&ldap3_proto::proto::LdapFilter::Present(
                "objectClass".into(),
            )),
            deadline: None,
        };
        self.search(who, &query)?
            .entries
            .pop()
            .ok_or(DirectoryError::NoSuchObject { matched: None })
    }

    /// True when `q` reads at most a few records by key: a base-scope read
    /// of a user or of a group whose entry is cached for the current
    /// membership epoch ([`Directory::is_cached_base_read`]), or a filter
    /// that pins a unique attribute (uid, cn, mail, uidNumber, gidNumber)
    /// by equality at its top or in a top-level AND. Such a search costs
    /// microseconds, so the protocol layer runs it where it is instead of
    /// handing it to a blocking thread.
    pub fn is_point_lookup(&self, q: &SearchQuery) -> bool {
        fn pins(f: &Filter) -> bool {
            match f {
                Filter::Equality(ty, _) => {
                    matches!(ty.name, "uid" | "cn" | "mail" | "uidNumber" | "gidNumber")
                }
                Filter::And(items) => items.iter().any(pins),
                _ => false,
            }
        }
        (q.scope == Scope::Base && self.is_cached_base_read(&q.base)) || pins(&q.filter)
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
        let Some(id) = self.store().group_id_by_name(&name)? else {
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
        // Read before any membership or name (see `cache`).
        let epoch = self.store().membership_epoch()?;
        let access = self.access_at(who, epoch)?;
        if matches!(access, Access::None) {
            return Err(DirectoryError::InsufficientAccess(
                "anonymous clients may read only the root DSE and cn=subschema; bind first",
            ));
        }
        let base = &self.inner.base;
        let store = self.store();

        // Which kinds of entry the scope covers.
        let [base_entry, users_ou_entry, groups_ou_entry] = &self.inner.containers;
        let mut containers: Vec<&Entry> = Vec::new();
        let mut users: Cands<UserId> = Cands::Set(BTreeSet::new());
        let mut groups: Cands<GroupId> = Cands::Set(BTreeSet::new());
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
                    store
                        .user_id_by_name(&name)?
                        .ok_or_else(|| DirectoryError::NoSuchObject {
                            matched: Some(tree::users_ou(base)),
                        })?;
                if base_scope {
                    users = Cands::Set([user].into());
                }
            }
            Target::Group(name) => {
                let group =
                    store
                        .group_id_by_name(&name)?
                        .ok_or_else(|| DirectoryError::NoSuchObject {
                            matched: Some(tree::groups_ou(base)),
                        })?;
                if base_scope {
                    groups = Cands::Set([group].into());
                }
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

        // Narrow with the indexes the filter names. A lone
        // `(memberOf=<group>)` is answered exactly by the membership index
        // (the same memberships the entries list), so its users need no
        // filter evaluation.
        let mut users_exact = false;
        if matches!(users, Cands::All) {
            users = self.plan_users(&q.filter)?;
            users_exact = matches!(&q.filter, Filter::Equality(ty, _) if ty.name == "memberOf");
        }
        let mut user_wanted = selected.clone();
        if !users_exact {
            add_filter_types(&q.filter, &mut user_wanted);
        }
        let mut group_wanted = selected.clone();
        add_filter_types(&q.filter, &mut group_wanted);
        if matches!(groups, Cands::All) {
            groups = self.plan_groups(&q.filter)?;
        }

        let mut ctx = BuildContext::new(self, epoch)?;
        let chain = Chain { dir: self };
        let mut out = SearchResults::default();
        let over_time = |n: usize| {
            n.is_multiple_of(64) && (q.deadline.is_some_and(|d| Instant::now() >= d) || stop())
        };

        if matches!(access, Access::All) {
            for e in containers {
                if q.filter.matches(e, &chain) {
                    out.entries.push(e.clone());
                }
            }
        }

        // A membership listing that asks for names only (cn, uid, the DN):
        // the entries come from the username cache, no user record is
        // read. Same entries, same (id) order as the general path below.
        if users_exact && matches!(access, Access::All) && user_wanted.only_names() {
            if let Cands::Set(ids) = &users {
                let ids: Vec<UserId> = ids.iter().copied().collect();
                for (n, name) in ctx.usernames_in_order(&ids)?.iter().enumerate() {
                    if over_time(n) {
                        out.time_limit_exceeded = true;
                        return Ok(out);
                    }
                    out.entries
                        .push(entry::user_name_entry(base, name, &user_wanted));
                }
                users = Cands::Set(BTreeSet::new());
            }
        }

        let user_list = load(users, || store.users_shared(), |id| store.user_shared(id))?;
        let visible = |user: &Arc<User>| match &access {
            Access::All => true,
            Access::Own { user: me, .. } => *me == user.id,
            Access::None => false,
        };
        let stopped = scan(&user_list, &mut out, &over_time, visible, |u| {
            let e = ctx.user_entry(u, &user_wanted)?;
            Ok((users_exact || q.filter.matches(&e, &chain)).then_some(e))
        })?;
        if stopped {
            return Ok(out);
        }

        let group_list = load(groups, || store.groups(), |id| ctx.group(id))?;
        let visible = |group: &Group| match &access {
            Access::All => true,
            Access::Own { info, .. } => info.groups.contains(&group.id),
            Access::None => false,
        };
        scan(&group_list, &mut out, &over_time, visible, |g| {
            let e = ctx.group_entry(g, &group_wanted)?;
            Ok(q.filter.matches(&e, &chain).then_some(e))
        })?;
        Ok(out)
    }

    /// Users a filter can match, from the indexes; `All` when it names none.
    fn plan_users(&self, f: &Filter) -> Result<Cands<UserId>, StoreError> {
        plan_tree(f, &mut |leaf| self.user_leaf(leaf))
    }

    /// Users one non-boolean filter item can match.
    fn user_leaf(&self, f: &Filter) -> Result<Cands<UserId>, StoreError> {
        let store = self.store();
        // Ids from the indexes only: the scan reads each record once.
        let one = |u: Option<UserId>| Cands::Set(u.into_iter().collect());
        Ok(match f {
            Filter::Equality(ty, value) => {
                let value = value.raw.as_str();
                match ty.name {
                    "uid" | "cn" => one(store.user_id_by_name(value)?),
                    "mail" => one(store.user_id_by_email(value)?),
                    "uidNumber" => match value.trim().parse::<u32>() {
                        Ok(n) => one(store.user_id_by_uid_number(n)?),
                        Err(_) => Cands::Set(BTreeSet::new()),
                    },
                    // The users whose memberOf lists the group: its direct
                    // users, or all of them through nesting.
                    "memberOf" => match self.group_of_dn(value)? {
                        Some(g) if self.inner.options.transitive_member_of => {
                            Cands::Set(store.transitive_user_members(g)?.into_iter().collect())
                        }
                        Some(g) => Cands::Set(
                            store
                                .members(g)?
                                .into_iter()
                                .filter_map(|m| match m {
                                    Member::User(u) => Some(u),
                                    Member::Group(_) => None,
                                })
                                .collect(),
                        ),
                        None => Cands::Set(BTreeSet::new()),
                    },
                    "objectClass" if is_group_class(value) => Cands::Set(BTreeSet::new()),
                    _ => Cands::All,
                }
            }
            _ => Cands::All,
        })
    }

    /// Groups a filter can match, from the indexes; `All` when it names none.
    fn plan_groups(&self, f: &Filter) -> Result<Cands<GroupId>, StoreError> {
        plan_tree(f, &mut |leaf| self.group_leaf(leaf))
    }

    /// Groups one non-boolean filter item can match.
    fn group_leaf(&self, f: &Filter) -> Result<Cands<GroupId>, StoreError> {
        let store = self.store();
        // Ids from the indexes only: the scan reads each record once.
        let one = |g: Option<GroupId>| Cands::Set(g.into_iter().collect());
        let of_user = |u: Option<UserId>| -> Result<Cands<GroupId>, StoreError> {
            Ok(match u {
                Some(u) => Cands::Set(store.groups_of(Member::User(u))?.into_iter().collect()),
                None => Cands::Set(BTreeSet::new()),
            })
        };
        Ok(match f {
            Filter::Equality(ty, value) => {
                let value = value.raw.as_str();
                match ty.name {
                    "cn" => one(store.group_id_by_name(value)?),
                    "gidNumber" => match value.trim().parse::<u32>() {
                        Ok(n) => one(store.group_id_by_gid_number(n)?),
                        Err(_) => Cands::Set(BTreeSet::new()),
                    },
                    "memberUid" => of_user(store.user_id_by_name(value)?)?,
                    "member" | "uniqueMember" => match Dn::parse(value) {
                        Ok(dn) => match tree::classify(&dn, self.base()) {
                            Target::User(name) => of_user(store.user_id_by_name(&name)?)?,
                            Target::Group(name) => match store.group_id_by_name(&name)? {
                                Some(child) => Cands::Set(
                                    store.groups_of(Member::Group(child))?.into_iter().collect(),
                                ),
                                None => Cands::Set(BTreeSet::new()),
                            },
                            _ => Cands::Set(BTreeSet::new()),
                        },
                        Err(_) => Cands::Set(BTreeSet::new()),
                    },
                    "uid" | "mail" | "uidNumber" => Cands::Set(BTreeSet::new()),
                    "objectClass" if is_user_class(value) => Cands::Set(BTreeSet::new()),
                    _ => Cands::All,
                }
            }
            _ => Cands::All,
        })
    }

    /// The groups `member`'s memberOf lists: direct ones, or with
    /// [`DirectoryOptions::transitive_member_of`] every group reached
    /// through nesting (cached per epoch for users).
    fn member_of_ids(&self, epoch: u64, member: Member) -> Result<Arc<Vec<GroupId>>, StoreError> {
        let store = self.store();
        if !self.inner.options.transitive_member_of {
            return Ok(Arc::new(store.groups_of(member)?));
        }
        let Member::User(user) = member else {
            return Ok(Arc::new(store.transitive_groups_of(member)?));
        };
        if let Some(groups) = self.inner.cache.transitive(epoch, user) {
            return Ok(groups);
        }
        let groups = Arc::new(store.transitive_groups_of(member)?);
        self.inner.cache.set_transitive(epoch, user, groups.clone());
        Ok(groups)
    }

    fn group_of_dn(&self, value: &str) -> Result<Option<GroupId>, StoreError> {
        match Dn::parse(value) {
            Ok(dn) => self.group_at(&dn),
            Err(_) => Ok(None),
        }
    }

    fn group_at(&self, dn: &Dn) -> Result<Option<GroupId>, StoreError> {
        match tree::classify(dn, self.base()) {
            Target::Group(name) => self.store().group_id_by_name(&name),
            _ => Ok(None),
        }
    }

    fn member_of_dn(&self, dn: &Dn) -> Result<Option<Member>, StoreError> {
        Ok(match tree::classify(dn, self.base()) {
            Target::User(name) => self.store().user_id_by_name(&name)?.map(Member::User),
            Target::Group(name) => self.store().group_id_by_name(&name)?.map(Member::Group),
            _ => None,
        })
    }
}

/// Combines the index answers of a filter's items: AND intersects, OR
/// unites (or gives up as soon as one branch can match anything).
fn plan_tree<T: Ord + Clone>(
    f: &Filter,
    leaf: &mut dyn FnMut(&Filter) -> Result<Cands<T>, StoreError>,
) -> Result<Cands<T>, StoreError> {
    match f {
        Filter::And(fs) => {
            let mut acc = Cands::All;
            for f in fs {
                acc = acc.and(plan_tree(f, leaf)?);
            }
            Ok(acc)
        }
        Filter::Or(fs) => {
            let mut acc = Cands::Set(BTreeSet::new());
            for f in fs {
                acc = acc.or(plan_tree(f, leaf)?);
                if matches!(acc, Cands::All) {
                    break;
                }
            }
            Ok(acc)
        }
        _ => leaf(f),
    }
}

/// The records a search considers: all of them, or those the indexes named.
fn load<T, I>(
    cands: Cands<I>,
    all: impl FnOnce() -> Result<Vec<T>, StoreError>,
    mut one: impl FnMut(I) -> Result<Option<T>, StoreError>,
) -> Result<Vec<T>, StoreError> {
    match cands {
        Cands::All => all(),
        Cands::Set(ids) => {
            let mut v = Vec::with_capacity(ids.len());
            for id in ids {
                v.extend(one(id)?);
            }
            Ok(v)
        }
    }
}

/// Builds and keeps the entries of the visible `items` that `keep` accepts.
/// Returns true when the time limit (or a cancellation) stopped the scan.
fn scan<T>(
    items: &[T],
    out: &mut SearchResults,
    over_time: &dyn Fn(usize) -> bool,
    visible: impl Fn(&T) -> bool,
    mut keep: impl FnMut(&T) -> Result<Option<Entry>, StoreError>,
) -> Result<bool, StoreError> {
    for (n, item) in items.iter().enumerate() {
        if over_time(n) {
            out.time_limit_exceeded = true;
            return Ok(true);
        }
        if visible(item) {
            out.entries.extend(keep(item)?);
        }
    }
    Ok(false)
}

/// Adds the attribute types `f` reads to `w` (every type, for an
/// extensible match without a type, which reads them all).
fn add_filter_types(f: &Filter, w: &mut Wanted) {
    match f {
        Filter::And(fs) | Filter::Or(fs) => fs.iter().for_each(|f| add_filter_types(f, w)),
        Filter::Not(f) => add_filter_types(f, w),
        Filter::Equality(ty, _)
        | Filter::Approx(ty, _)
        | Filter::GreaterOrEqual(ty, _)
        | Filter::LessOrEqual(ty, _)
        | Filter::Present(ty)
        | Filter::Substring { ty, .. } => w.add(ty),
        Filter::Extensible { ty: Some(ty), .. } => w.add(ty),
        Filter::Extensible { ty: None, .. } => w.add_everything(),
        // In-chain reads the entry's DN only.
        Filter::InChain { .. } | Filter::Undefined => {}
    }
}

fn is_group_class(value: &str) -> bool {
    ["groupOfNames", "posixGroup", "groupOfUniqueNames"]
        .iter()
        .any(|c| c.eq_ignore_ascii_case(value.trim()))
}

fn is_user_class(value: &str) -> bool {
    [
        "person",
        "organizationalPerson",
        "inetOrgPerson",
        "posixAccount",
    ]
    .iter()
    .any(|c| c.eq_ignore_ascii_case(value.trim()))
}

/// Caches what several entries of one search share, in front of the
/// directory's epoch cache.
struct BuildContext<'a> {
    dir: &'a Directory,
    /// The membership epoch read before this search's first read.
    epoch: u64,
    groups: HashMap<GroupId, Option<Group>>,
    /// Users in the admin group at any depth, once asked for.
    admins: Option<Arc<HashSet<UserId>>>,
}

impl<'a> BuildContext<'a> {
    fn new(dir: &'a Directory, epoch: u64) -> Result<BuildContext<'a>, StoreError> {
        Ok(BuildContext {
            dir,
            epoch,
            groups: HashMap::new(),
            admins: None,
        })
    }

    fn admins(&mut self) -> Result<Arc<HashSet<UserId>>, StoreError> {
        if let Some(a) = &self.admins {
            return Ok(a.clone());
        }
        let cache = &self.dir.inner.cache;
        let admins = match cache.admins(self.epoch) {
            Some(a) => a,
            None => {
                let store = self.dir.store();
                let set: HashSet<UserId> = match store.group_by_name(&self.dir.inner.admin_group)? {
                    Some(g) => store.transitive_user_members(g.id)?.into_iter().collect(),
                    None => HashSet::new(),
                };
                let a = Arc::new(set);
                cache.set_admins(self.epoch, a.clone());
                a
            }
        };
        self.admins = Some(admins.clone());
        Ok(admins)
    }

    fn group(&mut self, id: GroupId) -> Result<Option<Group>, StoreError> {
        if let Some(g) = self.groups.get(&id) {
            return Ok(g.clone());
        }
        let g = self.dir.store().group(id)?;
        self.groups.insert(id, g.clone());
        Ok(g)
    }

    /// The usernames of `ids` (users that no longer exist are left out),
    /// sorted case-insensitively as entries list them.
    fn usernames(&mut self, ids: &[UserId]) -> Result<Vec<Arc<str>>, StoreError> {
        let mut names = self.usernames_in_order(ids)?;
        names.sort_by_cached_key(|n| n.to_lowercase());
        Ok(names)
    }

    /// The usernames of `ids` in their order (users that no longer exist
    /// are left out).
    fn usernames_in_order(&mut self, ids: &[UserId]) -> Result<Vec<Arc<str>>, StoreError> {
        let cache = &self.dir.inner.cache;
        let cached = cache.usernames(self.epoch, ids);
        let mut names = Vec::with_capacity(ids.len());
        let mut fresh = Vec::new();
        for (id, name) in ids.iter().zip(cached) {
            match name {
                Some(n) => names.push(n),
                None => {
                    if let Some(u) = self.dir.store().user(*id)? {
                        let n: Arc<str> = Arc::from(u.username);
                        fresh.push((*id, n.clone()));
                        names.push(n);
                    }
                }
            }
        }
        if !fresh.is_empty() {
            cache.set_usernames(self.epoch, fresh);
        }
        Ok(names)
    }

    /// The groups listed in `member`'s memberOf: its direct groups, or
    /// every group reached through nesting when the directory serves
    /// transitive memberOf. Sorted by name, case-insensitively.
    fn member_of(&mut self, member: Member) -> Result<Vec<Group>, StoreError> {
        let ids = self.dir.member_of_ids(self.epoch, member)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids.iter() {
            if let Some(g) = self.group(*id)? {
                out.push(g);
            }
        }
        out.sort_by_cached_key(|g| g.name.to_lowercase());
        Ok(out)
    }

    fn user_entry(&mut self, user: &User, wanted: &Wanted) -> Result<Entry, StoreError> {
        let groups = if wanted.wants_name("memberOf") {
            self.member_of(Member::User(user.id))?
        } else {
            Vec::new()
        };
        let superuser = wanted.wants_name("ak-superuser") && self.admins()?.contains(&user.id);
        Ok(entry::user_entry_for(
            self.dir.base(),
            user,
            &groups,
            superuser,
            wanted,
        ))
    }

    /// The group's entry with (at least) the `wanted` attributes: copied
    /// from the full entry the epoch cache keeps, built first if needed.
    fn group_entry(&mut self, group: &Group, wanted: &Wanted) -> Result<Entry, StoreError> {
        let full = match self.dir.inner.cache.group_entry(self.epoch, group) {
            Some(e) => e,
            None => self.build_group_entry(group)?,
        };
        Ok(Entry {
            dn: full.dn.clone(),
            attrs: full
                .attrs
                .iter()
                .filter(|a| wanted.wants(a.ty))
                .cloned()
                .collect(),
        })
    }

    fn build_group_entry(&mut self, group: &Group) -> Result<Arc<Entry>, StoreError> {
        let cache = &self.dir.inner.cache;
        let mut user_ids = Vec::new();
        let mut children = Vec::new();
        for m in self.dir.store().members(group.id)? {
            match m {
                Member::User(id) => user_ids.push(id),
                Member::Group(id) => {
                    if let Some(g) = self.group(id)? {
                        children.push(g);
                    }
                }
            }
        }
        let names = self.usernames(&user_ids)?;
        let names: Vec<&str> = names.iter().map(|n| &**n).collect();
        children.sort_by_cached_key(|g| g.name.to_lowercase());
        let parents = self.member_of(Member::Group(group.id))?;
        let e = Arc::new(entry::group_entry_named(
            self.dir.base(),
            group,
            &names,
            &children,
            &parents,
        ));
        cache.set_group_entry(self.epoch, group, e.clone());
        Ok(e)
    }
}

/// Transitive membership for the in-chain matching rule
/// (1.2.840.113556.1.4.1941). A store failure makes the item false.
struct Chain<'a> {
    dir: &'a Directory,
}

impl InChain for Chain<'_> {
    fn member_of_in_chain(&self, entry: &Entry, group: &Dn) -> bool {
        let found = || -> Result<bool, StoreError> {
            let (Some(member), Some(g)) =
                (self.dir.member_of_dn(&entry.dn)?, self.dir.group_at(group)?)
            else {
                return Ok(false);
            };
            Ok(self.dir.store().transitive_groups_of(member)?.contains(&g))
        };
        found().unwrap_or(false)
    }

    fn member_in_chain(&self, entry: &Entry, member: &Dn) -> bool {
        let found = || -> Result<bool, StoreError> {
            let (Some(member), Target::Group(name)) = (
                self.dir.member_of_dn(member)?,
                tree::classify(&entry.dn, self.dir.base()),
            ) else {
                return Ok(false);
            };
            let Some(g) = self.dir.store().group_id_by_name(&name)? else {
                return Ok(false);
            };
            Ok(self.dir.store().transitive_groups_of(member)?.contains(&g))
        };
        found().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewUser;
    use ldap3_proto::proto::LdapFilter;

    const BASE: &str = "dc=example,dc=com";

    struct Fx {
        store: Store,
        root: Identity,
        alice: Identity,
        staff: GroupId,
        devs: GroupId,
    }

    /// root (admin); alice in devs; devs nested in staff.
    fn fixture() -> Fx {
        let store = Store::temporary().expect("store");
        let admins = store.create_group("admins", None).expect("group");
        let staff = store.create_group("staff", None).expect("group");
        let devs = store.create_group("devs", None).expect("group");
        let user = |name: &str| {
            let u = store
                .create_user(NewUser {
                    username: name.into(),
                    ..NewUser::default()
                })
                .expect("user");
            (
                u.id,
                Identity::User {
                    id: u.id,
                    username: name.into(),
                },
            )
        };
        let (root_id, root) = user("root");
        let (alice_id, alice) = user("alice");
        store
            .add_member(admins.id, Member::User(root_id))
            .expect("member");
        store
            .add_member(devs.id, Member::User(alice_id))
            .expect("member");
        store
            .add_member(staff.id, Member::Group(devs.id))
            .expect("member");
        Fx {
            store,
            root,
            alice,
            staff: staff.id,
            devs: devs.id,
        }
    }

    fn dir(fx: &Fx, transitive_member_of: bool) -> Directory {
        Directory::with_options(
            fx.store.clone(),
            Dn::parse(BASE).expect("dn"),
            "admins",
            "ldap-search",
            DirectoryOptions {
                transitive_member_of,
            },
        )
    }

    fn eq(attr: &str, value: &str) -> LdapFilter {
        LdapFilter::Equality(attr.into(), value.into())
    }

    /// The DNs a subtree search under the base finds.
    fn found(d: &Directory, who: &Identity, filter: LdapFilter) -> Vec<String> {
        let q = SearchQuery {
            base: Dn::parse(BASE).expect("dn"),
            scope: Scope::Sub,
            filter: Filter::from_ldap(&filter),
            deadline: None,
        };
        let mut dns: Vec<String> = d
            .search(who, &q)
            .expect("search")
            .entries
            .iter()
            .map(|e| e.dn.to_string())
            .collect();
        dns.sort();
        dns
    }

    fn member_of(d: &Directory, who: &Identity, dn: &str) -> Vec<String> {
        let e = d.read(who, &Dn::parse(dn).expect("dn")).expect("read");
        e.get("memberOf")
            .map(<[String]>::to_vec)
            .unwrap_or_default()
    }

    const STAFF: &str = "cn=staff,ou=groups,dc=example,dc=com";
    const DEVS: &str = "cn=devs,ou=groups,dc=example,dc=com";
    const ALICE: &str = "cn=alice,ou=users,dc=example,dc=com";

    #[test]
    fn direct_member_of_by_default() {
        let fx = fixture();
        let d = dir(&fx, false);
        assert_eq!(member_of(&d, &fx.root, ALICE), [DEVS]);
        // devs is a direct member of staff; alice only through devs.
        assert_eq!(found(&d, &fx.root, eq("memberOf", STAFF)), [DEVS]);
        assert_eq!(found(&d, &fx.root, eq("memberOf", DEVS)), [ALICE]);
        // The in-chain rule resolves nesting whatever the option says.
        let chain = LdapFilter::Extensible(ldap3_proto::proto::LdapMatchingRuleAssertion {
            matching_rule: Some("1.2.840.113556.1.4.1941".into()),
            type_: Some("memberOf".into()),
            match_value: STAFF.into(),
            dn_attributes: false,
        });
        assert_eq!(found(&d, &fx.root, chain), [ALICE, DEVS]);
    }

    #[test]
    fn transitive_member_of_serves_and_filters_the_same_groups() {
        let fx = fixture();
        let d = dir(&fx, true);
        assert_eq!(member_of(&d, &fx.root, ALICE), [DEVS, STAFF]);
        assert_eq!(member_of(&d, &fx.root, DEVS), [STAFF]);
        // The index answer and a filter evaluated per entry agree.
        assert_eq!(found(&d, &fx.root, eq("memberOf", STAFF)), [ALICE, DEVS]);
        let and = LdapFilter::And(vec![
            eq("objectClass", "inetOrgPerson"),
            eq("memberOf", STAFF),
        ]);
        assert_eq!(found(&d, &fx.root, and), [ALICE]);
        let or = LdapFilter::Or(vec![
            eq("memberOf", STAFF),
            LdapFilter::Present("nosuchattribute".into()),
        ]);
        assert_eq!(found(&d, &fx.root, or), [ALICE, DEVS]);
        // A user reads its own entry with the same memberOf.
        assert_eq!(member_of(&d, &fx.alice, ALICE), [DEVS, STAFF]);

        // Unnesting takes effect on the next search (the cache follows
        // the membership epoch).
        fx.store
            .remove_member(fx.staff, Member::Group(fx.devs))
            .expect("remove");
        assert_eq!(member_of(&d, &fx.root, ALICE), [DEVS]);
        assert!(found(&d, &fx.root, eq("memberOf", STAFF)).is_empty());
        assert!(member_of(&d, &fx.root, DEVS).is_empty());
    }

    #[test]
    fn cached_access_and_group_entries_follow_changes() {
        let fx = fixture();
        let d = dir(&fx, false);
        // alice reads her own entry and her groups (nested ones too), not
        // root's entry nor the admins group.
        assert_eq!(
            found(&d, &fx.alice, LdapFilter::Present("objectClass".into())),
            [ALICE, DEVS, STAFF]
        );
        let members = |d: &Directory| {
            let e = d
                .read(&fx.root, &Dn::parse(DEVS).expect("dn"))
                .expect("read");
            e.get("member").map(<[String]>::to_vec).unwrap_or_default()
        };
        assert_eq!(members(&d), [ALICE]);
        let bob = fx
            .store
            .create_user(NewUser {
                username: "Bob".into(),
                ..NewUser::default()
            })
            .expect("user");
        fx.store
            .add_member(fx.devs, Member::User(bob.id))
            .expect("member");
        assert_eq!(members(&d), [ALICE, "cn=Bob,ou=users,dc=example,dc=com"]);
        // Served from the cached entry, a selection gives what the full
        // entry gives.
        for req in [&["member"][..], &["cn", "+"], &["1.1"], &["*"]] {
            let req: Vec<String> = req.iter().map(|s| s.to_string()).collect();
            let q = SearchQuery {
                base: Dn::parse(DEVS).expect("dn"),
                scope: Scope::Base,
                filter: Filter::from_ldap(&eq("cn", "devs")),
                deadline: None,
            };
            let part = d
                .search_selecting(&fx.root, &q, &Wanted::selected(&req), &|| false)
                .expect("search")
                .entries;
            let full = d.search(&fx.root, &q).expect("search").entries;
            assert_eq!(part.len(), 1);
            assert_eq!(part[0].select(&req, false), full[0].select(&req, false));
        }

        // Disabling does not move the membership epoch, yet takes effect.
        let alice_id = match &fx.alice {
            Identity::User { id, .. } => *id,
            Identity::Anonymous => unreachable!(),
        };
        fx.store
            .update_user(alice_id, &|u| {
                u.disabled = true;
                Ok(())
            })
            .expect("disable");
        let q = SearchQuery {
            base: Dn::parse(BASE).expect("dn"),
            scope: Scope::Sub,
            filter: Filter::from_ldap(&LdapFilter::Present("objectClass".into())),
            deadline: None,
        };
        assert!(matches!(
            d.search(&fx.alice, &q),
            Err(DirectoryError::InsufficientAccess(_))
        ));
    }
}
