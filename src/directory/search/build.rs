//! Entries built from records during a search: what several entries of
//! one search share (groups, usernames, admins, memberOf) is looked up
//! once, in front of the directory's epoch cache; and transitive
//! membership for the in-chain matching rule.

use super::{CachedGroup, Directory, MemberOfDn};
use crate::directory::cache::{AllMemberOf, ListedGroup};
use crate::directory::dn::Dn;
use crate::directory::entry::{self, Entry, Wanted};
use crate::directory::filter::InChain;
use crate::directory::tree::{self, Target};
use crate::store::{Group, GroupId, Member, StoreError, User, UserId};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

impl Directory {
    /// The groups `member`'s memberOf lists: direct ones, or with
    /// [`DirectoryOptions::transitive_member_of`] every group reached
    /// through nesting (a user's are cached per epoch: memberships change
    /// only with it).
    ///
    /// `scan`: the search walks every user; a user's groups are then kept
    /// only in room the cache has left ([`EpochCache::set_member_of_if_room`]).
    ///
    /// [`EpochCache::set_member_of_if_room`]: crate::directory::cache::EpochCache::set_member_of_if_room
    pub(super) fn member_of_ids(
        &self,
        epoch: u64,
        member: Member,
        scan: bool,
    ) -> Result<Arc<[GroupId]>, StoreError> {
        let store = self.store();
        let read = || {
            if self.inner.options.transitive_member_of {
                store.transitive_groups_of(member)
            } else {
                store.groups_of(member)
            }
        };
        let Member::User(user) = member else {
            return Ok(read()?.into());
        };
        if let Some(groups) = self.inner.cache.member_of(epoch, user) {
            return Ok(groups);
        }
        let groups: Arc<[GroupId]> = read()?.into();
        if scan {
            self.inner
                .cache
                .set_member_of_if_room(epoch, user, groups.clone());
        } else {
            self.inner.cache.set_member_of(epoch, user, groups.clone());
        }
        Ok(groups)
    }

    /// Every user's direct groups at `epoch` (users in no group absent),
    /// read from the groups' member lists once per epoch, for a pass over
    /// every user; `None` when memberOf lists groups through nesting.
    pub(super) fn all_direct_member_of(
        &self,
        epoch: u64,
    ) -> Result<Option<Arc<AllMemberOf>>, StoreError> {
        if self.inner.options.transitive_member_of {
            return Ok(None);
        }
        let cache = &self.inner.cache;
        if let Some(all) = cache.all_member_of(epoch) {
            return Ok(Some(all));
        }
        let store = self.store();
        let mut lists: HashMap<UserId, Vec<GroupId>, rustc_hash::FxBuildHasher> =
            HashMap::default();
        for group in store.groups()? {
            for m in store.members(group.id)? {
                if let Member::User(user) = m {
                    lists.entry(user).or_default().push(group.id);
                }
            }
        }
        let all: Arc<AllMemberOf> = Arc::new(
            lists
                .into_iter()
                .map(|(user, groups)| (user, groups.into()))
                .collect(),
        );
        cache.set_all_member_of(epoch, all.clone());
        Ok(Some(all))
    }

    /// The groups `member` is a direct member of: a user's from the epoch
    /// cache when memberOf lists direct groups (what the cache keeps for
    /// memberOf), so that `(member=<user>)`, asked at every login, reads no
    /// index once the user's entry or groups were read in the epoch.
    pub(super) fn direct_groups_of(
        &self,
        epoch: u64,
        member: Member,
    ) -> Result<Arc<[GroupId]>, StoreError> {
        match member {
            Member::User(_) if !self.inner.options.transitive_member_of => {
                self.member_of_ids(epoch, member, false)
            }
            _ => Ok(self.store().groups_of(member)?.into()),
        }
    }
}

/// Caches what several entries of one search share, in front of the
/// directory's epoch cache.
pub(super) struct BuildContext<'a> {
    dir: &'a Directory,
    /// The membership epoch read before this search's first read.
    epoch: u64,
    groups: HashMap<GroupId, Option<Group>>,
    /// The lowercased name and the DN of each group a user entry of this
    /// search lists in memberOf (`None`: the group is gone).
    group_dns: HashMap<GroupId, Option<Arc<ListedGroup>>>,
    /// Users in the admin group at any depth, once asked for.
    admins: Option<Arc<HashSet<UserId>>>,
    /// The search walks every user ([`BuildContext::scanning`]).
    scan: bool,
    /// Every user's direct groups, once a walk over every user asked
    /// (`Some(None)`: memberOf lists nested groups, looked up per user).
    all_member_of: Option<Option<Arc<AllMemberOf>>>,
}

impl<'a> BuildContext<'a> {
    pub(super) fn new(dir: &'a Directory, epoch: u64) -> Result<BuildContext<'a>, StoreError> {
        Ok(BuildContext {
            dir,
            epoch,
            groups: HashMap::new(),
            group_dns: HashMap::new(),
            admins: None,
            scan: false,
            all_member_of: None,
        })
    }

    /// Marks the search as a walk over every user: what it computes per
    /// user is then cached only in room the epoch cache has left.
    pub(super) fn scanning(&mut self) {
        self.scan = true;
    }

    fn admins(&mut self) -> Result<Arc<HashSet<UserId>>, StoreError> {
        if let Some(a) = &self.admins {
            return Ok(a.clone());
        }
        let cache = &self.dir.inner.cache;
        let admins = match cache.admins(self.epoch) {
            Some(a) => a,
            None => {
                let set = crate::directory::admins::admin_group_members(
                    self.dir.store(),
                    &self.dir.inner.admin_group,
                )?;
                let a = Arc::new(set);
                cache.set_admins(self.epoch, a.clone());
                a
            }
        };
        self.admins = Some(admins.clone());
        Ok(admins)
    }

    pub(super) fn group(&mut self, id: GroupId) -> Result<Option<Group>, StoreError> {
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
    pub(super) fn usernames_in_order(
        &mut self,
        ids: &[UserId],
    ) -> Result<Vec<Arc<str>>, StoreError> {
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
        let ids = self.dir.member_of_ids(self.epoch, member, self.scan)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids.iter() {
            if let Some(g) = self.group(*id)? {
                out.push(g);
            }
        }
        out.sort_by_cached_key(|g| g.name.to_lowercase());
        Ok(out)
    }

    /// The DNs `member`'s memberOf lists, sorted by group name
    /// case-insensitively.
    fn member_of_dns(&mut self, member: Member) -> Result<Vec<MemberOfDn>, StoreError> {
        if let (true, Member::User(user)) = (self.scan, member) {
            if self.all_member_of.is_none() {
                self.all_member_of = Some(self.dir.all_direct_member_of(self.epoch)?);
            }
            // Taken out while its groups are named: no count per entry.
            let taken = self.all_member_of.take();
            let named = match &taken {
                Some(Some(all)) => Some(self.dns_of(all.get(&user).map_or(&[], |g| g))),
                _ => None,
            };
            self.all_member_of = taken;
            if let Some(named) = named {
                return named;
            }
        }
        let ids = self.dir.member_of_ids(self.epoch, member, self.scan)?;
        self.dns_of(&ids)
    }

    /// The memberOf DNs of groups `ids`, sorted by group name
    /// (case-insensitively).
    fn dns_of(&mut self, ids: &[GroupId]) -> Result<Vec<MemberOfDn>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // A search that is not a scan builds one entry or a few: the epoch
        // cache names their groups directly. The search's own map, for
        // scans that meet the same groups for every user, costs a lookup
        // one more allocation and hash each.
        if !self.scan {
            let kept = self.dir.inner.cache.listed_groups(self.epoch, ids);
            if kept.iter().all(Option::is_some) {
                return Ok(by_name(kept.into_iter().flatten().flatten()));
            }
        }
        let missing: Vec<GroupId> = ids
            .iter()
            .filter(|id| !self.group_dns.contains_key(id))
            .copied()
            .collect();
        if !missing.is_empty() {
            // Kept per epoch: a group's name changes only with it.
            let cache = &self.dir.inner.cache;
            let kept = cache.listed_groups(self.epoch, &missing);
            let mut found = Vec::new();
            let mut groups_ou = None;
            for (id, kept) in missing.into_iter().zip(kept) {
                let listed = match kept {
                    Some(listed) => listed,
                    None => {
                        let groups_ou = groups_ou
                            .get_or_insert_with(|| tree::groups_ou(self.dir.base()).to_string());
                        let listed = self.dir.store().group_shared(id)?.map(|g| {
                            Arc::new((
                                g.name.to_lowercase(),
                                entry::child_dn_string(&g.name, groups_ou),
                            ))
                        });
                        found.push((id, listed.clone()));
                        listed
                    }
                };
                self.group_dns.insert(id, listed);
            }
            if !found.is_empty() {
                cache.set_listed_groups(self.epoch, found);
            }
        }
        Ok(by_name(ids.iter().filter_map(|id| {
            self.group_dns.get(id).and_then(Clone::clone)
        })))
    }

    pub(super) fn user_entry(&mut self, user: &User, wanted: &Wanted) -> Result<Entry, StoreError> {
        let (member_of, superuser) = self.user_shared_parts(user, wanted)?;
        Ok(entry::user_entry_with(
            self.dir.base(),
            user,
            &member_of,
            superuser,
            wanted,
        ))
    }

    /// What a user's entry takes from beyond its record: the DNs its
    /// memberOf lists and whether it is a superuser (each only when
    /// `wanted`).
    pub(super) fn user_shared_parts(
        &mut self,
        user: &User,
        wanted: &Wanted,
    ) -> Result<(Vec<MemberOfDn>, bool), StoreError> {
        let member_of = if wanted.wants_name("memberOf") {
            self.member_of_dns(Member::User(user.id))?
        } else {
            Vec::new()
        };
        let superuser = wanted.wants_name("ak-superuser") && self.admins()?.contains(&user.id);
        Ok((member_of, superuser))
    }

    /// The group's entry with (at least) the `wanted` attributes: copied
    /// from the full entry the epoch cache keeps, built first if needed.
    pub(super) fn group_entry(
        &mut self,
        group: &Group,
        wanted: &Wanted,
    ) -> Result<Entry, StoreError> {
        let full = match self.dir.inner.cache.group_entry(self.epoch, group) {
            Some(e) => e,
            None => self.build_group_entry(group)?.entry,
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

    /// The full entry of `group`, shared with the epoch cache, and the
    /// place for what callers derive from it (a fresh one when the entry
    /// could not be kept).
    pub(super) fn group_shared(&mut self, group: &Group) -> Result<CachedGroup, StoreError> {
        match self.dir.inner.cache.group_entry_derived(self.epoch, group) {
            Some((entry, derived)) => Ok(CachedGroup { entry, derived }),
            None => self.build_group_entry(group),
        }
    }

    fn build_group_entry(&mut self, group: &Group) -> Result<CachedGroup, StoreError> {
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
        let derived = cache
            .set_group_entry(self.epoch, group, e.clone())
            .unwrap_or_default();
        Ok(CachedGroup { entry: e, derived })
    }
}

/// Transitive membership for the in-chain matching rule
/// (1.2.840.113556.1.4.1941). A store failure makes the item false.
pub(super) struct Chain<'a> {
    pub(super) dir: &'a Directory,
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
            let Some(g) = self.dir.group_id_by_name(&name)? else {
                return Ok(false);
            };
            Ok(self.dir.store().transitive_groups_of(member)?.contains(&g))
        };
        found().unwrap_or(false)
    }
}

/// The memberOf DNs of `groups`, sorted by group name (case-insensitively).
fn by_name(groups: impl Iterator<Item = Arc<ListedGroup>>) -> Vec<MemberOfDn> {
    let mut named: Vec<MemberOfDn> = groups.map(MemberOfDn).collect();
    named.sort_by(|a, b| a.0 .0.cmp(&b.0 .0));
    named
}
