//! Whole-record writes for LDAP modify and modrdn: each request lands in
//! one transaction, or not at all.
//!
//! LDAP applies a modify request as a unit (RFC 4511 §4.6), so the caller
//! plans the complete new record from a snapshot and the store writes it
//! with compare-and-swap semantics: if the record (or, for groups, any
//! membership) changed since the snapshot, the write reports `Ok(None)`
//! and the caller plans again from a fresh snapshot. Indexes (email,
//! username, group name, both membership trees) and the membership epoch
//! are kept exactly as the single-item operations keep them.

use std::collections::BTreeSet;

use sled::transaction::Transactional;

use super::super::GroupSnapshot;
use super::{
    abort, email_taken, keys, name_key, now, once, settle, tx_check_and_bump_epoch, tx_group,
    tx_put_group, tx_put_user, tx_reindex_email, tx_user, validate, Group, GroupId, Member, Result,
    SledStore, StoreError, TxAbort, User, UserId, EMPTY,
};

fn stale<T>() -> super::TxResult<T> {
    Err(sled::transaction::ConflictableTransactionError::Abort(
        TxAbort::Stale,
    ))
}

impl SledStore {
    /// Replaces the user record `before` with `after` (same id, username
    /// and uidNumber) and, with `password_hash`, stores a new password
    /// hash, in one transaction. `Ok(None)` when the stored record is no
    /// longer `before`: plan again. Sets `modified`; a new password sets
    /// `pwd_changed` and, like a change of `disabled`, bumps
    /// `cred_generation` so caches keyed on it drop the old state.
    pub fn replace_user(
        &self,
        before: &User,
        after: &User,
        password_hash: Option<&str>,
    ) -> Result<Option<User>> {
        self.committed(self.replace_user_uncommitted(before, after, password_hash))
    }

    fn replace_user_uncommitted(
        &self,
        before: &User,
        after: &User,
        password_hash: Option<&str>,
    ) -> Result<Option<User>> {
        if after.id != before.id
            || after.username != before.username
            || after.uid_number != before.uid_number
            || after.cred_generation != before.cred_generation
        {
            return Err(StoreError::Invalid(format!(
                "the id, name, uidNumber and credential generation of user {} cannot be changed \
                 this way",
                before.username
            )));
        }
        if let Some(email) = &after.email {
            validate::email(email)?;
        }
        if let Some(full_name) = &after.full_name {
            validate::full_name(full_name)?;
        }
        if password_hash == Some("") {
            return Err(StoreError::Invalid("the password hash is empty".into()));
        }
        let t = &self.t;
        let id = before.id;
        settle(
            &self.t,
            (&t.users, &t.idx_email, &t.credentials).transaction(
                |(users, idx_email, credentials)| {
                    let Some(current) = tx_user(users, id)? else {
                        return Err(abort(StoreError::NotFound(format!(
                            "user {}",
                            before.username
                        ))));
                    };
                    if current != *before {
                        return stale();
                    }
                    let id_bytes = keys::user_key(id);
                    tx_reindex_email(idx_email, before, after, email_taken)?;
                    let mut next = after.clone();
                    let at = now();
                    next.modified = at;
                    let mut bump = next.disabled != before.disabled;
                    if let Some(phc) = password_hash {
                        credentials.insert(&id_bytes, phc.as_bytes())?;
                        next.pwd_changed = Some(at);
                        bump = true;
                    }
                    if bump {
                        next.cred_generation = before.cred_generation.wrapping_add(1);
                    }
                    tx_put_user(users, &next)?;
                    Ok(next)
                },
            ),
        )
    }

    /// Renames a user, keeping every index and membership (they are keyed
    /// by id). Bumps `cred_generation`: the bind name changed.
    pub fn rename_user(&self, id: UserId, new_name: &str) -> Result<User> {
        self.committed(self.rename_user_uncommitted(id, new_name))
    }

    fn rename_user_uncommitted(&self, id: UserId, new_name: &str) -> Result<User> {
        validate::name("user", new_name)?;
        let t = &self.t;
        once(
            &self.t,
            (&t.users, &t.idx_username, &t.meta).transaction(|(users, idx_username, meta)| {
                let mut user = tx_user(users, id)?
                    .ok_or_else(|| abort(StoreError::NotFound(format!("user {id}"))))?;
                let id_bytes = keys::user_key(id);
                let new_key = name_key(new_name);
                if idx_username
                    .get(&*new_key)?
                    .is_some_and(|owner| *owner != id_bytes)
                {
                    return Err(abort(StoreError::AlreadyExists(format!("user {new_name}"))));
                }
                idx_username.remove(name_key(&user.username))?;
                idx_username.insert(new_key, &id_bytes)?;
                user.username = new_name.to_owned();
                user.modified = now();
                user.cred_generation = user.cred_generation.wrapping_add(1);
                tx_put_user(users, &user)?;
                // Names are cached per membership epoch (group member DNs).
                tx_check_and_bump_epoch(meta, None)?;
                Ok(user)
            }),
        )
    }

    /// Renames a group, keeping every index and membership.
    pub fn rename_group(&self, id: GroupId, new_name: &str) -> Result<Group> {
        self.committed(self.rename_group_uncommitted(id, new_name))
    }

    fn rename_group_uncommitted(&self, id: GroupId, new_name: &str) -> Result<Group> {
        validate::name("group", new_name)?;
        let t = &self.t;
        once(
            &self.t,
            (&t.groups, &t.idx_group_name, &t.meta).transaction(
                |(groups, idx_group_name, meta)| {
                    let mut group = tx_group(groups, id)?
                        .ok_or_else(|| abort(StoreError::NotFound(format!("group {id}"))))?;
                    let id_bytes = keys::group_key(id);
                    let new_key = name_key(new_name);
                    if idx_group_name
                        .get(&*new_key)?
                        .is_some_and(|owner| *owner != id_bytes)
                    {
                        return Err(abort(StoreError::AlreadyExists(format!(
                            "group {new_name}"
                        ))));
                    }
                    idx_group_name.remove(name_key(&group.name))?;
                    idx_group_name.insert(new_key, &id_bytes)?;
                    group.name = new_name.to_owned();
                    group.modified = now();
                    tx_put_group(groups, &group)?;
                    // Names are cached per membership epoch (memberOf DNs).
                    tx_check_and_bump_epoch(meta, None)?;
                    Ok(group)
                },
            ),
        )
    }

    /// The group and its direct members at one membership epoch.
    pub fn group_snapshot(&self, id: GroupId) -> Result<Option<GroupSnapshot>> {
        let epoch = self.stored_epoch()?;
        let Some(group) = self.group(id)? else {
            return Ok(None);
        };
        let members = self.members(id)?.into_iter().collect();
        Ok(Some(GroupSnapshot {
            group,
            members,
            epoch,
        }))
    }

    /// Writes the group `after` (same id and gidNumber as the snapshot's;
    /// the description may change) with exactly `members` as its direct
    /// members, in one transaction. `Ok(None)` when the group or any
    /// membership changed since the snapshot: plan again. A member that
    /// does not exist is `NotFound`; a child group that would close a
    /// cycle is `Invalid`.
    pub fn replace_group(
        &self,
        snapshot: &GroupSnapshot,
        after: &Group,
        members: &BTreeSet<Member>,
    ) -> Result<Option<Group>> {
        self.committed(self.replace_group_uncommitted(snapshot, after, members))
    }

    fn replace_group_uncommitted(
        &self,
        snapshot: &GroupSnapshot,
        after: &Group,
        members: &BTreeSet<Member>,
    ) -> Result<Option<Group>> {
        let before = &snapshot.group;
        let id = before.id;
        if after.id != id || after.name != before.name || after.gid_number != before.gid_number {
            return Err(StoreError::Invalid(format!(
                "the id, name and gidNumber of group {} cannot be changed this way",
                before.name
            )));
        }
        if let Some(d) = &after.description {
            validate::description(d)?;
        }
        if members.contains(&Member::Group(id)) {
            return Err(StoreError::Invalid(format!(
                "group {} cannot be a member of itself",
                before.name
            )));
        }
        let added: Vec<Member> = members.difference(&snapshot.members).copied().collect();
        let removed: Vec<Member> = snapshot.members.difference(members).copied().collect();
        // A new child group must not reach this group downward. The walk
        // is outside the transaction; the epoch check below refuses the
        // commit if any membership changed since the snapshot.
        for m in &added {
            if let Member::Group(child) = *m {
                if self.descendant_groups(child)?.contains(&id) {
                    let name = self
                        .group(child)?
                        .map_or_else(|| child.to_string(), |g| g.name);
                    return Err(StoreError::Invalid(format!(
                        "adding group {name} to {} would create a cycle",
                        before.name
                    )));
                }
            }
        }
        let t = &self.t;
        settle(
            &self.t,
            (&t.groups, &t.users, &t.members, &t.member_of, &t.meta).transaction(
                |(groups, users, member_tree, member_of, meta)| {
                    tx_check_and_bump_epoch(meta, Some(snapshot.epoch))?;
                    let Some(current) = tx_group(groups, id)? else {
                        return Err(abort(StoreError::NotFound(format!(
                            "group {}",
                            before.name
                        ))));
                    };
                    if current != *before {
                        return stale();
                    }
                    for &m in &added {
                        let exists = match m {
                            Member::User(u) => users.get(keys::user_key(u))?.is_some(),
                            Member::Group(g) => groups.get(keys::group_key(g))?.is_some(),
                        };
                        if !exists {
                            return Err(abort(StoreError::NotFound(super::member_label(m))));
                        }
                        member_tree.insert(keys::members_key(id, m), EMPTY)?;
                        member_of.insert(keys::member_of_key(m, id), EMPTY)?;
                    }
                    for &m in &removed {
                        member_tree.remove(keys::members_key(id, m))?;
                        member_of.remove(keys::member_of_key(m, id))?;
                    }
                    let mut next = after.clone();
                    next.modified = now();
                    tx_put_group(groups, &next)?;
                    Ok(next)
                },
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewUser;

    fn user(s: &SledStore, name: &str) -> User {
        s.create_user(NewUser {
            username: name.into(),
            email: Some(format!("{name}@example.com")),
            ..NewUser::default()
        })
        .expect("user")
    }

    #[test]
    fn replace_user_is_compare_and_swap() {
        let s = SledStore::temporary().expect("store");
        let alice = user(&s, "alice");
        user(&s, "bob");
        let mut after = alice.clone();
        after.email = Some("liddell@example.com".into());
        after.attrs.insert("sn".into(), "Liddell".into());
        let written = s
            .replace_user(&alice, &after, Some("$argon2id$x"))
            .expect("write")
            .expect("fresh");
        assert_eq!(written.cred_generation, alice.cred_generation + 1);
        assert!(written.pwd_changed.is_some());
        assert_eq!(
            s.password_hash(alice.id).expect("hash").as_deref(),
            Some("$argon2id$x")
        );
        assert_eq!(s.user_by_email("alice@example.com").expect("idx"), None);
        assert_eq!(
            s.user_by_email("LIDDELL@example.com")
                .expect("idx")
                .map(|u| u.id),
            Some(alice.id)
        );
        // The snapshot is now stale.
        assert_eq!(s.replace_user(&alice, &after, None).expect("stale"), None);
        // Someone else's address is refused.
        let mut clash = written.clone();
        clash.email = Some("bob@example.com".into());
        assert!(matches!(
            s.replace_user(&written, &clash, None),
            Err(StoreError::AlreadyExists(_))
        ));
        let mut renamed = written.clone();
        renamed.username = "eve".into();
        assert!(matches!(
            s.replace_user(&written, &renamed, None),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn renames_keep_indexes_and_memberships() {
        let s = SledStore::temporary().expect("store");
        let alice = user(&s, "alice");
        user(&s, "bob");
        let staff = s.create_group("staff", None).expect("group");
        s.add_member(staff.id, Member::User(alice.id))
            .expect("member");
        let renamed = s.rename_user(alice.id, "alicia").expect("rename");
        assert_eq!(renamed.cred_generation, alice.cred_generation + 1);
        assert_eq!(s.user_by_name("alice").expect("idx"), None);
        assert_eq!(
            s.user_by_name("ALICIA").expect("idx").map(|u| u.id),
            Some(alice.id)
        );
        assert_eq!(
            s.groups_of(Member::User(alice.id)).expect("of"),
            vec![staff.id]
        );
        assert!(matches!(
            s.rename_user(alice.id, "bob"),
            Err(StoreError::AlreadyExists(_))
        ));
        assert!(matches!(
            s.rename_user(alice.id, "no way"),
            Err(StoreError::Invalid(_))
        ));
        // A change of case only is a rename onto the same index key.
        s.rename_user(alice.id, "Alicia").expect("case");
        assert_eq!(
            s.user_by_name("alicia").expect("idx").map(|u| u.username),
            Some("Alicia".into())
        );

        let devs = s.create_group("devs", None).expect("group");
        s.add_member(staff.id, Member::Group(devs.id))
            .expect("child");
        s.rename_group(devs.id, "developers").expect("rename");
        assert_eq!(s.group_by_name("devs").expect("idx"), None);
        assert_eq!(
            s.group_by_name("developers").expect("idx").map(|g| g.id),
            Some(devs.id)
        );
        assert_eq!(s.members(staff.id).expect("members").len(), 2);
        assert!(matches!(
            s.rename_group(devs.id, "staff"),
            Err(StoreError::AlreadyExists(_))
        ));
    }

    #[test]
    fn replace_group_applies_member_diff_atomically() {
        let s = SledStore::temporary().expect("store");
        let alice = user(&s, "alice");
        let bob = user(&s, "bob");
        let staff = s.create_group("staff", None).expect("group");
        let devs = s.create_group("devs", None).expect("group");
        s.add_member(staff.id, Member::User(alice.id))
            .expect("member");
        s.add_member(devs.id, Member::Group(staff.id))
            .expect("child");

        let snap = s.group_snapshot(staff.id).expect("snap").expect("exists");
        let mut after = snap.group.clone();
        after.description = Some("Everyone".into());
        let members = BTreeSet::from([Member::User(bob.id)]);
        s.replace_group(&snap, &after, &members)
            .expect("write")
            .expect("fresh");
        assert_eq!(s.members(staff.id).expect("m"), vec![Member::User(bob.id)]);
        assert_eq!(s.groups_of(Member::User(alice.id)).expect("of"), vec![]);
        assert_eq!(
            s.group(staff.id).expect("g").and_then(|g| g.description),
            Some("Everyone".into())
        );
        // Stale after the write.
        assert_eq!(
            s.replace_group(&snap, &after, &members).expect("stale"),
            None
        );

        // A cycle is refused and nothing is written.
        let snap = s.group_snapshot(staff.id).expect("snap").expect("exists");
        let cyclic = BTreeSet::from([Member::User(alice.id), Member::Group(devs.id)]);
        assert!(matches!(
            s.replace_group(&snap, &snap.group, &cyclic),
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(s.members(staff.id).expect("m"), vec![Member::User(bob.id)]);

        // A member deleted meanwhile: NotFound, nothing written.
        let carol = user(&s, "carol");
        let snap = s.group_snapshot(staff.id).expect("snap").expect("exists");
        s.delete_user(carol.id).expect("delete");
        let with_carol = BTreeSet::from([Member::User(bob.id), Member::User(carol.id)]);
        let r = s.replace_group(&snap, &snap.group, &with_carol);
        // Deleting carol moved the epoch: stale first; a fresh snapshot
        // then finds her missing.
        assert_eq!(r.expect("stale"), None);
        let snap = s.group_snapshot(staff.id).expect("snap").expect("exists");
        assert!(matches!(
            s.replace_group(&snap, &snap.group, &with_carol),
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(s.members(staff.id).expect("m"), vec![Member::User(bob.id)]);
    }
}
