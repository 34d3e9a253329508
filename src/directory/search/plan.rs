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
//! - A user name, email or uidNumber term is answered by the user an
//!   earlier such term of the filter found when that user's record holds
//!   the key, without asking the key's index: each key names at most one
//!   user (Gitea's `(|(uid=X)(mail=X@domain))`).
//! - An object class every user (or group) has costs nothing: it narrows
//!   nothing and is checked by the filter.
//! - Users: NOT of a `uidNumber` equality with a value of plain digits
//!   (SSSD's `(!(uidNumber=0))`) is every user but the one holding that
//!   number, exactly: every user holds one valid uidNumber, so the
//!   equality is never Undefined for a user. Other NOTs narrow nothing.
//! - An item that is Undefined for every entry (an attribute type the
//!   schema does not know, such as Nextcloud's `mailPrimaryAddress`)
//!   matches nothing where it stands in AND and OR: it is never True.
//!   Under NOT it narrows nothing (NOT is left to the filter whole).
//! - What the indexes answer exactly is not evaluated again: a term whose
//!   candidates are exactly the entries it is True for (memberOf,
//!   in-chain, `member` and `memberUid` spelled as the entries spell them,
//!   an object class or a present type every user or group has, a term
//!   that matches nothing) leaves nothing to check, an AND leaves what its
//!   other terms leave, an OR leaves itself whole unless every term is
//!   exact (or one is True for every candidate). The rest (the residual)
//!   is evaluated on each candidate's entry, which is built only with the
//!   attributes the client asked for and those the residual reads: a
//!   group's 500 member DNs are neither copied nor compared to find the
//!   groups of a user.

use super::{same_email, Directory};
use crate::directory::dn::Dn;
use crate::directory::entry::Wanted;
use crate::directory::filter::{Filter, Value};
use crate::directory::schema::{self, AttributeType};
use crate::directory::tree;
use crate::store::{GroupId, Member, StoreError, User, UserId};
use std::collections::BTreeSet;

/// Candidate ids after index planning.
#[derive(Debug)]
pub(super) enum Cands<T> {
    All,
    Set(BTreeSet<T>),
    /// Every entry but these (a NOT the indexes decide, see `user_leaf`).
    AllBut(BTreeSet<T>),
}

impl<T: Ord + Clone> Cands<T> {
    fn is_none(&self) -> bool {
        matches!(self, Cands::Set(s) if s.is_empty())
    }
    fn and(self, other: Cands<T>) -> Cands<T> {
        match (self, other) {
            (Cands::All, x) | (x, Cands::All) => x,
            (Cands::Set(a), Cands::Set(b)) => Cands::Set(a.intersection(&b).cloned().collect()),
            (Cands::Set(s), Cands::AllBut(x)) | (Cands::AllBut(x), Cands::Set(s)) => {
                Cands::Set(s.difference(&x).cloned().collect())
            }
            (Cands::AllBut(mut a), Cands::AllBut(b)) => {
                a.extend(b);
                Cands::AllBut(a)
            }
        }
    }
    fn or(self, other: Cands<T>) -> Cands<T> {
        match (self, other) {
            (Cands::Set(mut a), Cands::Set(b)) => {
                a.extend(b);
                Cands::Set(a)
            }
            (Cands::All, _) | (_, Cands::All) => Cands::All,
            (Cands::Set(s), Cands::AllBut(x)) | (Cands::AllBut(x), Cands::Set(s)) => {
                Cands::AllBut(x.difference(&s).cloned().collect())
            }
            (Cands::AllBut(a), Cands::AllBut(b)) => {
                Cands::AllBut(a.intersection(&b).cloned().collect())
            }
        }
    }
}

/// What a filter can match, from the indexes, and what of it is left to
/// check on each candidate's entry.
#[derive(Debug)]
pub(super) struct Plan<'f, T> {
    pub(super) cands: Cands<T>,
    /// The parts of the filter the indexes did not answer exactly; a
    /// candidate matches when every one of them is True for its entry (none
    /// left: every candidate matches).
    pub(super) residual: Vec<&'f Filter>,
}

/// A filter item's candidates, and whether they are exactly the entries
/// it is True for.
type Leaf<T> = (Cands<T>, bool);

/// The object classes every user entry has.
const USER_CLASSES: &[&str] = &[
    "top",
    "person",
    "organizationalPerson",
    "inetOrgPerson",
    "posixAccount",
];

/// The object classes every group entry has.
const GROUP_CLASSES: &[&str] = &["top", "groupOfNames", "posixGroup"];

/// True when the name index answers `(uid=value)` / `(cn=value)` exactly:
/// for printable ASCII without spaces
/// ([`schema::folds_to_ascii_lowercase`]). The index's key is a name's
/// ASCII lowercase; a name whose key equals such a value is that value in
/// another ASCII case, and caseIgnoreMatch folds both to the same string.
/// Any other value (spaces, non-ASCII, whose folding may differ from the
/// key's) leaves the candidate to be checked against the filter.
fn names_exactly(value: &str) -> bool {
    !value.is_empty() && schema::folds_to_ascii_lowercase(value)
}

/// True when `(objectClass=value)` holds for an entry with `classes`.
fn has_class(ty: &AttributeType, value: &Value, classes: &[&str]) -> bool {
    classes.iter().any(|c| value.equals_stored(ty.syntax, c))
}

impl Directory {
    /// Users a filter can match, from the indexes (`All` when it names
    /// none), and what is left to check.
    pub(super) fn plan_users<'f>(&self, f: &'f Filter) -> Result<Plan<'f, UserId>, StoreError> {
        let mut found = None;
        plan_tree(f, &mut |leaf| self.user_leaf(leaf, &mut found))
    }

    /// The user a name, email or uidNumber term names, by `by_index`; or
    /// `found` (the user an earlier such term of the filter found) when
    /// its record holds the key (`holds`). Each key names at most one
    /// user, so that user is the one the index would give: Gitea's
    /// `(|(uid=X)(mail=X@domain))` asks the email index (at 1M users a
    /// kept-id map's miss in main memory) for the user the name found.
    fn user_by_key(
        &self,
        found: &mut Option<UserId>,
        holds: impl Fn(&User) -> bool,
        by_index: impl FnOnce() -> Result<Option<UserId>, StoreError>,
    ) -> Result<Option<UserId>, StoreError> {
        if let Some(id) = *found {
            if self.store().user_shared(id)?.is_some_and(|u| holds(&u)) {
                return Ok(Some(id));
            }
        }
        let id = by_index()?;
        if id.is_some() {
            *found = id;
        }
        Ok(id)
    }

    /// Users one non-boolean filter item can match, and whether exactly;
    /// `found` is the user an earlier term found by a unique key (see
    /// [`Directory::user_by_key`]).
    fn user_leaf(
        &self,
        f: &Filter,
        found: &mut Option<UserId>,
    ) -> Result<Leaf<UserId>, StoreError> {
        let store = self.store();
        // Ids from the indexes (or kept from an earlier lookup and checked
        // against the kept record): the scan reads each record once.
        let one = |u: Option<UserId>| (Cands::Set(u.into_iter().collect()), false);
        let none = || (Cands::Set(BTreeSet::new()), true);
        Ok(match f {
            Filter::Equality(ty, v) => {
                // Names hold no spaces: the matching rules ignore those around a value.
                let value = v.raw.trim();
                match ty.name {
                    "uid" | "cn" => (
                        Cands::Set(
                            self.user_by_key(
                                found,
                                |u| u.username.eq_ignore_ascii_case(value),
                                || self.user_id_by_name(value),
                            )?
                            .into_iter()
                            .collect(),
                        ),
                        names_exactly(value),
                    ),
                    "mail" => one(self.user_by_key(
                        found,
                        |u| u.email.as_deref().is_some_and(|e| same_email(e, value)),
                        || self.user_id_by_email(value),
                    )?),
                    "uidNumber" => match value.trim().parse::<u32>() {
                        Ok(n) => one(self.user_by_key(
                            found,
                            |u| u.uid_number == n,
                            || self.user_id_by_uid_number(n),
                        )?),
                        Err(_) => none(),
                    },
                    // The users whose memberOf lists the group: its direct
                    // users, or all of them through nesting (exactly what
                    // the entries list).
                    "memberOf" => match self.group_of_dn(value)? {
                        Some(g) if self.inner.options.transitive_member_of => (
                            Cands::Set(store.transitive_user_members(g)?.into_iter().collect()),
                            true,
                        ),
                        Some(g) => (Cands::Set(self.direct_members(g)?.0), true),
                        None => none(),
                    },
                    "objectClass" if has_class(ty, v, USER_CLASSES) => (Cands::All, true),
                    "objectClass" if is_group_class(value) => none(),
                    "member" | "uniqueMember" | "memberUid" => none(),
                    _ => (Cands::All, false),
                }
            }
            Filter::Present(ty) => match ty.name {
                "member" | "uniqueMember" | "memberUid" => none(),
                name => (
                    Cands::All,
                    matches!(
                        name,
                        "objectClass" | "uid" | "cn" | "uidNumber" | "gidNumber"
                    ),
                ),
            },
            Filter::InChain { attr, dn } => match attr.name {
                "memberOf" => match self.group_at(dn)? {
                    Some(g) => (
                        Cands::Set(store.transitive_user_members(g)?.into_iter().collect()),
                        true,
                    ),
                    None => none(),
                },
                // Users have no members.
                _ => none(),
            },
            // NOT of a uidNumber equality with a value of plain digits
            // (SSSD's `(!(uidNumber=0))`): every user holds exactly one
            // uidNumber, a valid integer, so the equality is True for the
            // user holding that number and False, never Undefined, for
            // every other; NOT is True for all users but that one. A value
            // the integer rule cannot read ('+1', text) is Undefined by
            // then; any other ('-1') is left to the filter.
            Filter::Not(inner) => match &**inner {
                Filter::Equality(ty, v)
                    if ty.name == "uidNumber" && is_plain_digits(v.raw.trim()) =>
                {
                    match v.raw.trim().parse::<u32>() {
                        Ok(n) => (
                            Cands::AllBut(self.user_id_by_uid_number(n)?.into_iter().collect()),
                            true,
                        ),
                        // Beyond any uidNumber: no user holds it.
                        Err(_) => (Cands::All, true),
                    }
                }
                _ => (Cands::All, false),
            },
            Filter::Undefined => none(),
            _ => (Cands::All, false),
        })
    }

    /// Groups a filter can match, from the indexes (`All` when it names
    /// none), and what is left to check.
    pub(super) fn plan_groups<'f>(
        &self,
        f: &'f Filter,
        epoch: u64,
    ) -> Result<Plan<'f, GroupId>, StoreError> {
        plan_tree(f, &mut |leaf| self.group_leaf(leaf, epoch))
    }

    /// Groups one non-boolean filter item can match, and whether exactly;
    /// `epoch` is the membership epoch read before the search's first read.
    fn group_leaf(&self, f: &Filter, epoch: u64) -> Result<Leaf<GroupId>, StoreError> {
        let store = self.store();
        // Ids from the indexes only: the scan reads each record once.
        let one = |g: Option<GroupId>| (Cands::Set(g.into_iter().collect()), false);
        let none = || (Cands::Set(BTreeSet::new()), true);
        let groups_of = |m: Member| -> Result<Cands<GroupId>, StoreError> {
            Ok(Cands::Set(
                self.direct_groups_of(epoch, m)?.iter().copied().collect(),
            ))
        };
        Ok(match f {
            Filter::Equality(ty, v) => {
                // Names hold no spaces: the matching rules ignore those around a value.
                let value = v.raw.trim();
                match ty.name {
                    "cn" => (
                        Cands::Set(self.group_id_by_name(value)?.into_iter().collect()),
                        names_exactly(value),
                    ),
                    "gidNumber" => match value.trim().parse::<u32>() {
                        Ok(n) => one(self.group_id_by_gid_number(n)?),
                        Err(_) => none(),
                    },
                    // The user's groups; exact when the value is the
                    // username as memberUid lists it (it is case-exact).
                    "memberUid" => match self.user_id_by_name(value)? {
                        Some(u) => {
                            let exact = store
                                .user_shared(u)?
                                .is_some_and(|user| v.equals_stored(ty.syntax, &user.username));
                            (groups_of(Member::User(u))?, exact)
                        }
                        None => none(),
                    },
                    // The groups the user or child group is a direct member
                    // of; exact when the value equals the DN the entries
                    // list (`cn=<name>`, not `uid=<name>`).
                    "member" | "uniqueMember" => match Dn::parse(value) {
                        Ok(dn) => match self.member_of_dn(&dn)? {
                            Some(m) => {
                                let exact = ty.name == "member"
                                    && self.listed_dn(m)?.is_some_and(|dn| v.equals_dn(&dn));
                                (groups_of(m)?, exact)
                            }
                            None => none(),
                        },
                        Err(_) => none(),
                    },
                    // Its child groups: direct ones, or all of them with
                    // transitive memberOf (as group entries list it).
                    "memberOf" => match self.group_of_dn(value)? {
                        Some(g) if self.inner.options.transitive_member_of => {
                            (Cands::Set(self.nested_under(g)?), true)
                        }
                        Some(g) => (Cands::Set(self.direct_members(g)?.1), true),
                        None => none(),
                    },
                    "uid" | "mail" | "uidNumber" => none(),
                    "objectClass" if has_class(ty, v, GROUP_CLASSES) => (Cands::All, true),
                    "objectClass" if is_user_class(value) => none(),
                    _ => (Cands::All, false),
                }
            }
            Filter::Present(ty) => match ty.name {
                "uid" | "mail" | "uidNumber" => none(),
                name => (
                    Cands::All,
                    matches!(name, "objectClass" | "cn" | "gidNumber"),
                ),
            },
            Filter::InChain { attr, dn } => match attr.name {
                // Every group the member is in, through nesting.
                "member" => match self.member_of_dn(dn)? {
                    Some(m) => (
                        Cands::Set(store.transitive_groups_of(m)?.into_iter().collect()),
                        true,
                    ),
                    None => none(),
                },
                // Every group nested under the group.
                "memberOf" => match self.group_at(dn)? {
                    Some(g) => (Cands::Set(self.nested_under(g)?), true),
                    None => none(),
                },
                _ => (Cands::All, false),
            },
            Filter::Undefined => none(),
            _ => (Cands::All, false),
        })
    }

    /// The DN a group's `member` lists for `m` (`None` if it is gone).
    fn listed_dn(&self, m: Member) -> Result<Option<Dn>, StoreError> {
        let base = self.base();
        Ok(match m {
            Member::User(u) => self
                .store()
                .user_shared(u)?
                .map(|u| tree::user_dn(base, &u.username)),
            Member::Group(g) => self
                .store()
                .group_shared(g)?
                .map(|g| tree::group_dn(base, &g.name)),
        })
    }

    /// The direct members of `group`: its users and its child groups.
    fn direct_members(
        &self,
        group: GroupId,
    ) -> Result<(BTreeSet<UserId>, BTreeSet<GroupId>), StoreError> {
        let mut users = BTreeSet::new();
        let mut groups = BTreeSet::new();
        for m in self.store().members(group)? {
            match m {
                Member::User(u) => users.insert(u),
                Member::Group(g) => groups.insert(g),
            };
        }
        Ok((users, groups))
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

/// Combines the index answers of a filter's items: AND intersects and
/// leaves what its terms leave; OR unites (or gives up as soon as one term
/// can match anything) and leaves itself whole unless every term is exact.
fn plan_tree<'f, T: Ord + Clone>(
    f: &'f Filter,
    leaf: &mut dyn FnMut(&Filter) -> Result<Leaf<T>, StoreError>,
) -> Result<Plan<'f, T>, StoreError> {
    match f {
        Filter::And(fs) => {
            let mut cands = Cands::All;
            let mut residual = Vec::new();
            for f in fs {
                let p = plan_tree(f, leaf)?;
                cands = cands.and(p.cands);
                residual.extend(p.residual);
            }
            Ok(Plan { cands, residual })
        }
        Filter::Or(fs) => {
            let mut cands = Cands::Set(BTreeSet::new());
            let mut exact = true;
            for f in fs {
                let p = plan_tree(f, leaf)?;
                let all = matches!(p.cands, Cands::All);
                if all && p.residual.is_empty() {
                    // True for every candidate: so is the OR.
                    return Ok(Plan {
                        cands: Cands::All,
                        residual: Vec::new(),
                    });
                }
                exact &= p.residual.is_empty();
                cands = cands.or(p.cands);
                if all {
                    break;
                }
            }
            let residual = if exact { Vec::new() } else { vec![f] };
            Ok(Plan { cands, residual })
        }
        _ => {
            let (cands, exact) = leaf(f)?;
            // A term that matches nothing is exact: it is never True.
            let residual = if exact || cands.is_none() {
                Vec::new()
            } else {
                vec![f]
            };
            Ok(Plan { cands, residual })
        }
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

/// One or more ASCII digits, nothing else: a value RFC 4517's INTEGER
/// and `u32::from_str` read alike (when it fits a `u32`).
fn is_plain_digits(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
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
