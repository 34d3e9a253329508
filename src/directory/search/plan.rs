//! The search planner: which users and groups a filter can match, from
//! the store's indexes, and which attribute types the filter reads.
//!
//! Rules (each has a test in `search/tests.rs`, which also checks that a
//! planned search finds exactly what a full scan finds):
//! - AND intersects what its terms can match, OR unites them (and gives up
//!   as soon as one term can match anything); NOT and the other terms
//!   (ranges, substrings, presence, approx) can match anything, so they
//!   narrow nothing and are left to the filter.
//! - Users: equality on `uid`/`cn` (the name index), `mail` (email
//!   index), `uidNumber` (number index); `memberOf` equality (the group's
//!   direct users, or all of its users through nesting with
//!   `ldap.transitive_member_of`); `memberOf` with the in-chain rule (all
//!   of the group's users through nesting). Terms only groups have
//!   (`member`, `uniqueMember`, `memberUid`, group object classes) match
//!   no user.
//! - Groups: equality on `cn` (name index), `gidNumber` (number index),
//!   `memberUid` and `member`/`uniqueMember` (the groups the user or child
//!   group is a direct member of), `memberOf` (a group's direct child
//!   groups, or all nested ones with `ldap.transitive_member_of`); `member` with the in-chain rule (every group the member is
//!   in through nesting) and `memberOf` with it (every group nested under
//!   the group). Terms only users have (`uid`, `mail`, `uidNumber`, user
//!   object classes) match no group.
//! - An object class every user (or group) has costs nothing: it narrows
//!   nothing and is checked by the filter.
//! - An item that is Undefined for every entry (an attribute type the
//!   schema does not know, such as Nextcloud's `mailPrimaryAddress`)
//!   matches nothing where it stands in AND and OR: it is never True.
//!   Under NOT it narrows nothing (NOT is left to the filter whole).

use super::Directory;
use crate::directory::dn::Dn;
use crate::directory::entry::Wanted;
use crate::directory::filter::Filter;
use crate::directory::tree::{self, Target};
use crate::store::{GroupId, Member, StoreError, UserId};
use std::collections::BTreeSet;

/// Candidate ids after index planning.
#[derive(Debug)]
pub(super) enum Cands<T> {
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
    /// Users a filter can match, from the indexes; `All` when it names none.
    pub(super) fn plan_users(&self, f: &Filter) -> Result<Cands<UserId>, StoreError> {
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
                    "member" | "uniqueMember" | "memberUid" => Cands::Set(BTreeSet::new()),
                    _ => Cands::All,
                }
            }
            Filter::InChain { attr, dn } => match attr.name {
                "memberOf" => match self.group_at(dn)? {
                    Some(g) => Cands::Set(store.transitive_user_members(g)?.into_iter().collect()),
                    None => Cands::Set(BTreeSet::new()),
                },
                // Users have no members.
                _ => Cands::Set(BTreeSet::new()),
            },
            Filter::Undefined => Cands::Set(BTreeSet::new()),
            _ => Cands::All,
        })
    }

    /// Groups a filter can match, from the indexes; `All` when it names none.
    pub(super) fn plan_groups(&self, f: &Filter) -> Result<Cands<GroupId>, StoreError> {
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
                    // Its child groups: direct ones, or all of them with
                    // transitive memberOf (as group entries list it).
                    "memberOf" => match self.group_of_dn(value)? {
                        Some(g) if self.inner.options.transitive_member_of => {
                            Cands::Set(self.nested_under(g)?)
                        }
                        Some(g) => Cands::Set(
                            store
                                .members(g)?
                                .into_iter()
                                .filter_map(|m| match m {
                                    Member::Group(child) => Some(child),
                                    Member::User(_) => None,
                                })
                                .collect(),
                        ),
                        None => Cands::Set(BTreeSet::new()),
                    },
                    "uid" | "mail" | "uidNumber" => Cands::Set(BTreeSet::new()),
                    "objectClass" if is_user_class(value) => Cands::Set(BTreeSet::new()),
                    _ => Cands::All,
                }
            }
            Filter::InChain { attr, dn } => match attr.name {
                // Every group the member is in, through nesting.
                "member" => match self.member_of_dn(dn)? {
                    Some(m) => Cands::Set(store.transitive_groups_of(m)?.into_iter().collect()),
                    None => Cands::Set(BTreeSet::new()),
                },
                // Every group nested under the group.
                "memberOf" => match self.group_at(dn)? {
                    Some(g) => Cands::Set(self.nested_under(g)?),
                    None => Cands::Set(BTreeSet::new()),
                },
                _ => Cands::All,
            },
            Filter::Undefined => Cands::Set(BTreeSet::new()),
            _ => Cands::All,
        })
    }

    /// The groups nested under `group`, at any depth (not `group` itself,
    /// unless a cycle the store refuses were there).
    fn nested_under(&self, group: GroupId) -> Result<BTreeSet<GroupId>, StoreError> {
        let mut seen = BTreeSet::new();
        let mut next = vec![group];
        while let Some(g) = next.pop() {
            for m in self.store().members(g)? {
                if let Member::Group(child) = m {
                    if seen.insert(child) {
                        next.push(child);
                    }
                }
            }
        }
        Ok(seen)
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

/// Adds the attribute types `f` reads to `w` (every type, for an
/// extensible match without a type, which reads them all).
pub(super) fn add_filter_types(f: &Filter, w: &mut Wanted) {
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
