//! Users in sled: records, their indexes (username, email, uidNumber)
//! and password hashes.

use std::sync::Arc;

use sled::transaction::Transactional;
use sled::Tree;
use uuid::Uuid;

use super::{
    abort, backend, email_key, email_taken, keys, name_key, once, retrying, settle, tx_allocate,
    tx_check_and_bump_epoch, tx_put_user, tx_reindex_email, tx_touch_group, tx_user, validate,
    SledStore, FIRST_UID_NUMBER, META_NEXT_UID,
};
use crate::store::{now, Member, NewUser, Result, StoreError, User, UserId};

impl SledStore {
    /// Creates a user, allocating id, uidNumber (= gidNumber) and timestamps.
    ///
    /// The uidNumber comes from a counter that only goes up, and skips any
    /// number that a group already uses as its gidNumber, so a user's
    /// private gidNumber never names a real group.
    pub fn create_user(&self, new: NewUser) -> Result<User> {
        self.committed(self.create_user_uncommitted(new))
    }

    pub(super) fn create_user_uncommitted(&self, new: NewUser) -> Result<User> {
        validate::name("user", &new.username)?;
        if let Some(email) = &new.email {
            validate::email(email)?;
        }
        if let Some(full_name) = &new.full_name {
            validate::full_name(full_name)?;
        }
        let t = &self.t;
        let id = UserId(Uuid::new_v4());
        let created = now();
        let hint = self.allocation_hint(META_NEXT_UID, FIRST_UID_NUMBER)?;
        once(
            &self.t,
            (
                &t.users,
                &t.idx_username,
                &t.idx_email,
                &t.idx_uid,
                &t.idx_gid,
                &t.meta,
            )
                .transaction(
                    |(users, idx_username, idx_email, idx_uid, idx_gid, meta)| {
                        let name = name_key(&new.username);
                        if idx_username.get(&*name)?.is_some() {
                            return Err(abort(StoreError::AlreadyExists(format!(
                                "user {}",
                                new.username
                            ))));
                        }
                        let email = new.email.as_deref().map(email_key);
                        if let Some(email) = &email {
                            if idx_email.get(&**email)?.is_some() {
                                return Err(abort(StoreError::AlreadyExists(format!(
                                    "email {}",
                                    new.email.as_deref().unwrap_or_default()
                                ))));
                            }
                        }
                        if users.get(keys::user_key(id))?.is_some() {
                            return Err(abort(StoreError::Backend(format!(
                                "user id {id} collides"
                            ))));
                        }
                        let uid_number = tx_allocate(
                            meta,
                            META_NEXT_UID,
                            FIRST_UID_NUMBER,
                            idx_uid,
                            idx_gid,
                            "uid",
                            hint,
                        )?;
                        let user = User {
                            id,
                            username: new.username.clone(),
                            full_name: new.full_name.clone(),
                            email: new.email.clone(),
                            uid_number,
                            gid_number: uid_number,
                            disabled: false,
                            attrs: Default::default(),
                            created,
                            modified: created,
                            pwd_changed: None,
                            cred_generation: 0,
                        };
                        tx_put_user(users, &user)?;
                        let id_bytes = keys::user_key(id);
                        idx_username.insert(name, &id_bytes)?;
                        if let Some(email) = email {
                            idx_email.insert(email, &id_bytes)?;
                        }
                        idx_uid.insert(&keys::number_key(uid_number), &id_bytes)?;
                        Ok(user)
                    },
                ),
        )
    }

    pub fn user(&self, id: UserId) -> Result<Option<User>> {
        Ok(self.user_shared(id)?.map(Arc::unwrap_or_clone))
    }

    /// The user's record as stored now, decoded once per stored version
    /// (see `records.rs`): the stored bytes are read on every call.
    pub fn user_shared(&self, id: UserId) -> Result<Option<Arc<User>>> {
        self.t.user_records.read(
            &self.t.users,
            &keys::user_key(id),
            id,
            "user",
            self.writes(),
        )
    }

    /// Whether the user exists and is enabled (the access check of every
    /// search asks this).
    pub fn user_is_active(&self, id: UserId) -> Result<bool> {
        Ok(self.user_shared(id)?.is_some_and(|user| !user.disabled))
    }

    /// The id an index entry holds, without reading the record it names.
    pub(super) fn id_by_index(index: &Tree, key: &[u8]) -> Result<Option<Uuid>> {
        match index.get(key).map_err(backend)? {
            Some(id) => Ok(Some(keys::uuid(&id)?)),
            None => Ok(None),
        }
    }

    /// The user an index entry points at. `None` for no entry, and for an
    /// entry whose user was deleted since it was read.
    pub(super) fn user_by_index(&self, index: &Tree, key: &[u8]) -> Result<Option<User>> {
        match Self::id_by_index(index, key)? {
            Some(id) => self.user(UserId(id)),
            None => Ok(None),
        }
    }

    /// The id of the user with this name (case-insensitive), from the index
    /// alone: for callers that need only the id (a search planning its
    /// candidates), which then read the record or find it gone.
    pub fn user_id_by_name(&self, username: &str) -> Result<Option<UserId>> {
        Ok(Self::id_by_index(&self.t.idx_username, &name_key(username))?.map(UserId))
    }

    /// [`SledStore::user_id_by_name`] by email address (case-insensitive).
    pub fn user_id_by_email(&self, email: &str) -> Result<Option<UserId>> {
        Ok(Self::id_by_index(&self.t.idx_email, &email_key(email))?.map(UserId))
    }

    /// [`SledStore::user_id_by_name`] by uidNumber.
    pub fn user_id_by_uid_number(&self, uid_number: u32) -> Result<Option<UserId>> {
        Ok(Self::id_by_index(&self.t.idx_uid, &keys::number_key(uid_number))?.map(UserId))
    }

    /// Case-insensitive.
    pub fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        self.user_by_index(&self.t.idx_username, &name_key(username))
    }

    /// Case-insensitive.
    pub fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        self.user_by_index(&self.t.idx_email, &email_key(email))
    }

    pub fn user_by_uid_number(&self, uid_number: u32) -> Result<Option<User>> {
        self.user_by_index(&self.t.idx_uid, &keys::number_key(uid_number))
    }

    /// All users, ordered by lowercase username.
    pub fn users(&self) -> Result<Vec<User>> {
        Ok(self
            .users_shared()?
            .into_iter()
            .map(Arc::unwrap_or_clone)
            .collect())
    }

    /// [`SledStore::users`], each record shared ([`SledStore::user_shared`]).
    pub fn users_shared(&self) -> Result<Vec<Arc<User>>> {
        let mut out = Vec::new();
        self.each_user_shared(&mut |user| {
            out.push(user.clone());
            Ok(true)
        })?;
        Ok(out)
    }

    /// Calls `each` with every user in [`SledStore::users`]'s order, read
    /// as the username index is walked, until it returns false.
    ///
    /// The records are read as [`Records::scan`] reads them: a directory
    /// larger than the record cache does not push the records lookups use
    /// out of it at every pass.
    ///
    /// A walk that went to the end while no write finished keeps what it
    /// found as the user list ([`UserList`]), when the record cache holds
    /// every record in it; the walks after it use that list while no write
    /// has finished since, without the index or the cache (at 100,000
    /// users these were two fifths of an enumeration's work).
    ///
    /// [`Records::scan`]: super::records::Records::scan
    pub fn each_user_shared(&self, each: &mut dyn FnMut(&Arc<User>) -> Result<bool>) -> Result<()> {
        let written = self.writes();
        if let Some(users) = self.t.user_list.current(written) {
            for user in users.iter() {
                if !each(user)? {
                    break;
                }
            }
            return Ok(());
        }
        let mut found = Some(Vec::new());
        for entry in self.t.idx_username.iter() {
            let (_, id) = entry.map_err(backend)?;
            let id = UserId(keys::uuid(&id)?);
            let read = self.t.user_records.scan(
                &self.t.users,
                &keys::user_key(id),
                id,
                "user",
                written,
            )?;
            if let Some((user, kept)) = read {
                match (&mut found, kept) {
                    (Some(list), true) => list.push(user.clone()),
                    (Some(_), false) => found = None,
                    (None, _) => {}
                }
                if !each(&user)? {
                    return Ok(());
                }
            }
        }
        if let Some(list) = found {
            self.t.user_list.keep(written, self.writes(), list);
        }
        Ok(())
    }

    /// Number of users. Walks the user tree: O(users), meant for reports,
    /// not for every request.
    pub fn user_count(&self) -> Result<usize> {
        Ok(self.t.users.len())
    }

    /// Applies `change` to the user atomically, keeping the email index right
    /// and setting `modified`. `change` may run more than once (retries).
    ///
    /// `change` must not call into the store (it runs inside the
    /// transaction). It may not change `id`, `username`, `uid_number` or
    /// `cred_generation` (`Invalid` otherwise); the store bumps
    /// `cred_generation` itself when `disabled` changes. A changed email is
    /// validated and must stay unique.
    pub fn update_user(
        &self,
        id: UserId,
        change: &dyn Fn(&mut User) -> Result<()>,
    ) -> Result<User> {
        self.committed(self.update_user_uncommitted(id, change))
    }

    pub(super) fn update_user_uncommitted(
        &self,
        id: UserId,
        change: &dyn Fn(&mut User) -> Result<()>,
    ) -> Result<User> {
        let t = &self.t;
        once(
            &self.t,
            (&t.users, &t.idx_email).transaction(|(users, idx_email)| {
                let before = tx_user(users, id)?
                    .ok_or_else(|| abort(StoreError::NotFound(format!("user {id}"))))?;
                let mut after = before.clone();
                change(&mut after).map_err(abort)?;
                crate::domain::rules::checked_user_update(&before, &mut after, now())
                    .map_err(abort)?;
                tx_reindex_email(idx_email, &before, &after, email_taken)?;
                tx_put_user(users, &after)?;
                Ok(after)
            }),
        )
    }

    /// Removes the user, its credentials and its memberships.
    pub fn delete_user(&self, id: UserId) -> Result<()> {
        self.committed(self.delete_user_uncommitted(id))
    }

    pub(super) fn delete_user_uncommitted(&self, id: UserId) -> Result<()> {
        let t = &self.t;
        let member = Member::User(id);
        let deleted = retrying("deleting a user", || {
            let seen = self.stored_epoch()?;
            let parents = self.groups_of(member)?;
            settle(
                &self.t,
                (
                    &t.users,
                    &t.credentials,
                    &t.idx_username,
                    &t.idx_email,
                    &t.idx_uid,
                    &t.groups,
                    &t.members,
                    &t.member_of,
                    &t.meta,
                )
                    .transaction(
                        |(
                            users,
                            credentials,
                            idx_username,
                            idx_email,
                            idx_uid,
                            groups,
                            members,
                            member_of,
                            meta,
                        )| {
                            tx_check_and_bump_epoch(meta, Some(seen))?;
                            let user = tx_user(users, id)?
                                .ok_or_else(|| abort(StoreError::NotFound(format!("user {id}"))))?;
                            let id_bytes = keys::user_key(id);
                            users.remove(&id_bytes)?;
                            credentials.remove(&id_bytes)?;
                            idx_username.remove(name_key(&user.username))?;
                            if let Some(email) = &user.email {
                                let key = email_key(email);
                                if idx_email
                                    .get(&*key)?
                                    .is_some_and(|owner| *owner == id_bytes)
                                {
                                    idx_email.remove(key)?;
                                }
                            }
                            idx_uid.remove(&keys::number_key(user.uid_number))?;
                            let at = now();
                            for &group in &parents {
                                members.remove(keys::members_key(group, member))?;
                                member_of.remove(keys::member_of_key(member, group))?;
                                tx_touch_group(groups, group, at)?;
                            }
                            Ok(())
                        },
                    ),
            )
        });
        deleted?;
        // Unreachable once the user is gone (ids are never reused); removed
        // so no secret outlives its user, and no session either.
        self.forget_second_factors(id)?;
        self.delete_sessions_of(id, None).map(|_| ())
    }

    /// The PHC string of the user's password hash, if a password is set.
    pub fn password_hash(&self, id: UserId) -> Result<Option<String>> {
        match self
            .t
            .credentials
            .get(keys::user_key(id))
            .map_err(backend)?
        {
            Some(b) => password_hash_of(id, &b).map(Some),
            None => Ok(None),
        }
    }

    /// Stores a new password hash; sets `pwd_changed`, bumps `cred_generation`.
    pub fn set_password_hash(&self, id: UserId, phc: &str) -> Result<()> {
        self.committed(self.set_password_hash_uncommitted(id, phc))
    }

    pub(super) fn set_password_hash_uncommitted(&self, id: UserId, phc: &str) -> Result<()> {
        if phc.is_empty() {
            return Err(StoreError::Invalid("the password hash is empty".into()));
        }
        let t = &self.t;
        once(
            &self.t,
            (&t.users, &t.credentials).transaction(|(users, credentials)| {
                let mut user = tx_user(users, id)?
                    .ok_or_else(|| abort(StoreError::NotFound(format!("user {id}"))))?;
                let at = now();
                user.pwd_changed = Some(at);
                user.modified = at;
                user.cred_generation = user.cred_generation.wrapping_add(1);
                credentials.insert(&keys::user_key(id), phc.as_bytes())?;
                tx_put_user(users, &user)?;
                Ok(())
            }),
        )
    }
}

/// The password hash of user `id` as stored.
pub(super) fn password_hash_of(id: UserId, stored: &[u8]) -> Result<String> {
    String::from_utf8(stored.to_vec())
        .map_err(|_| StoreError::Backend(format!("corrupt password hash of user {id}")))
}
