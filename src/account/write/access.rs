//! Who writes: admins, or a user on their own entry; and what a refused
//! write tells about the tree (matchedDN).
//!
//! A write never discloses an entry its writer may not read (the rule in
//! `directory::search::access`): for a bound user who does not read
//! everything, a write whose target (for an add, its parent) they may not
//! read answers noSuchObject (32) "no such object" without matchedDN,
//! exactly as a write to a missing entry does; where they read the entry
//! but may not change it (their own entry beyond self-service, their
//! groups, the containers), insufficientAccessRights (50). Admins get
//! the real answers, matchedDN included; anonymous clients get 50 for
//! every write, whatever exists.

use super::*;

impl Accounts {
    /// What `who` may write: the operator and the server write as admins;
    /// a bound client by the access rules.
    pub(super) fn writer(&self, who: &Actor) -> Result<Writer> {
        let identity = match who {
            Actor::Operator | Actor::System => return Ok(Writer::Admin),
            Actor::Bound(identity) => identity,
        };
        let Identity::User { id, .. } = identity else {
            return Err(access("anonymous clients may not write; bind first"));
        };
        // A user deleted or disabled since binding writes nothing.
        let user = match self.store().user(*id)? {
            Some(u) if !u.disabled => u,
            _ => return Err(access("no write access")),
        };
        if self.is_admin(identity)? {
            Ok(Writer::Admin)
        } else {
            Ok(Writer::SelfService(user))
        }
    }

    /// Admits only admins to a write about `dn` (for an add, its parent):
    /// others learn of `dn` only what they may read (see the module docs).
    pub(super) fn admin_only(&self, who: &Actor, dn: &Dn, what: &str) -> Result<()> {
        let writer = self.writer(who)?;
        self.ensure_disclosed(who, &writer, dn)?;
        match writer {
            Writer::Admin => Ok(()),
            Writer::SelfService(_) => Err(access(&format!("only admins may {what}"))),
        }
    }

    /// Refuses as a missing entry would be refused a write about `dn` by a
    /// self-service writer who may not read it. Admins pass without a
    /// look-up.
    pub(super) fn ensure_disclosed(&self, who: &Actor, writer: &Writer, dn: &Dn) -> Result<()> {
        if let (Writer::SelfService(_), Actor::Bound(identity)) = (writer, who) {
            if !self.directory.discloses(identity, dn)? {
                return Err(WriteError::NoSuchObject {
                    matched: None,
                    message: "no such object".into(),
                });
            }
        }
        Ok(())
    }

    /// The deepest existing ancestor of `dn` (for matchedDN).
    pub(super) fn matched(&self, dn: &Dn) -> Result<Option<Dn>> {
        let mut cur = dn.parent();
        while let Some(p) = cur {
            let exists = match tree::classify(&p, self.base()) {
                Target::Base | Target::UsersOu | Target::GroupsOu => true,
                Target::User(n) => self.store().user_by_name(&n)?.is_some(),
                Target::Group(n) => self.store().group_by_name(&n)?.is_some(),
                Target::RootDse => return Ok(None),
                _ => false,
            };
            if exists {
                return Ok(Some(p));
            }
            cur = p.parent();
        }
        Ok(None)
    }

    pub(super) fn no_such(&self, dn: &Dn) -> Result<WriteError> {
        Ok(WriteError::NoSuchObject {
            matched: self.matched(dn)?,
            message: "no such object".into(),
        })
    }

    pub(super) fn find_user(&self, dn: &Dn, name: &str) -> Result<User> {
        match self.store().user_by_name(name)? {
            Some(u) => Ok(u),
            None => Err(self.no_such(dn)?),
        }
    }

    pub(super) fn find_group(&self, dn: &Dn, name: &str) -> Result<Group> {
        match self.store().group_by_name(name)? {
            Some(g) => Ok(g),
            None => Err(self.no_such(dn)?),
        }
    }

    /// A member DN as a user or group of this directory; `None` when it
    /// names nothing that exists.
    pub(super) fn member_by_dn(&self, value: &str) -> Result<Option<Member>> {
        let dn = Dn::parse(value).map_err(|_| {
            WriteError::InvalidAttributeSyntax(format!("member: {value:?} is not a DN"))
        })?;
        Ok(match tree::classify(&dn, self.base()) {
            Target::User(n) => self.store().user_by_name(&n)?.map(|u| Member::User(u.id)),
            Target::Group(n) => self.store().group_by_name(&n)?.map(|g| Member::Group(g.id)),
            _ => None,
        })
    }

    pub(super) fn is_required_group(&self, name: &str) -> bool {
        let (admins, search) = self.group_names();
        name.eq_ignore_ascii_case(admins) || name.eq_ignore_ascii_case(search)
    }
}
